//! The paper's pool (3x3 window, stride 2, padding 1; see docs/protocol.md, Networks) on the
//! CPU for even-sized planes, as nine whole-plane loops over parity grids instead of a window
//! scan per output.

use candle_core::WithDType;

use super::geom::{nan_max, PoolGeom};

/// The paper's pool (3x3 window, stride 2, padding 1) on even-sized planes, a whole plane at a
/// time in long vectorisable loops.
///
/// The input is split by row and column parity into four grids, `grid[p][q][oy + 1][ox + 1] =
/// x[2 oy + p][2 ox + q]`, with a leading row and column of -inf standing for the padding. Then
/// window element `(r, c)` of every output is a shifted copy of one grid (input row
/// `2 oy - 1 + r` is an odd row of output row `oy - 1` for r = 0, an even row of `oy` for r = 1,
/// an odd row of `oy` for r = 2; columns alike), so each of the nine window positions is one
/// loop over the whole plane.
pub(super) struct Pool3s2<T> {
    /// Four grids of `(out_h + 1) x (out_w + 1)` cells; parity `(p, q)` is grid `2 p + q`.
    grids: Vec<T>,
    /// Per cell: the window maximum, and (backward pass) the window position of the first
    /// maximum, as a `T` so that it moves in the same vector lanes.
    best: Vec<T>,
    code: Vec<T>,
    /// Grid width `out_w + 1` and cells per grid.
    gw: usize,
    cells: usize,
}

impl<T: WithDType> Pool3s2<T> {
    pub(super) fn applies(g: &PoolGeom) -> bool {
        (g.kernel, g.stride, g.pad) == (3, 2, 1) && g.height % 2 == 0 && g.width % 2 == 0
    }

    pub(super) fn new(g: &PoolGeom) -> Self {
        let (gw, cells) = (g.out_w + 1, (g.out_h + 1) * (g.out_w + 1));
        Self {
            grids: vec![T::from_f64(f64::NEG_INFINITY); 4 * cells],
            best: vec![T::zero(); cells],
            code: vec![T::zero(); cells],
            gw,
            cells,
        }
    }

    /// First output cell `(1, 1)` and the number of cells from there to the end. The pad
    /// column's cells in between compute garbage, never read.
    pub(super) fn span(&self) -> (usize, usize) {
        (self.gw + 1, self.cells - self.gw - 1)
    }

    /// Window element `position = 3 r + c` of the `n` cells from `first`.
    pub(super) fn run(&self, position: usize, first: usize, n: usize) -> &[T] {
        let (r, c) = (position / 3, position % 3);
        // r, c = 0: odd rows/columns of the previous output; 1: even of this one; 2: odd of
        // this one.
        let grid = 2 * usize::from(r != 1) + usize::from(c != 1);
        let start = grid * self.cells + first - usize::from(r == 0) * self.gw - usize::from(c == 0);
        &self.grids[start..start + n]
    }

    /// Fills the grids from one plane `[H, W]`.
    pub(super) fn fill(&mut self, xp: &[T], g: &PoolGeom) {
        let (gw, cells) = (self.gw, self.cells);
        for (y, row) in xp.chunks_exact(g.width).enumerate() {
            // Grids 2p (even columns) and 2p + 1 (odd columns) of row parity p.
            let (even, odd) = self.grids[2 * (y % 2) * cells..].split_at_mut(cells);
            let start = (y / 2 + 1) * gw + 1;
            let (even, odd) = (&mut even[start..start + g.out_w], &mut odd[start..]);
            // One pass over pairs, which vectorises as a deinterleave.
            for ((e, o), pair) in even.iter_mut().zip(odd.iter_mut()).zip(row.chunks_exact(2)) {
                *e = pair[0];
                *o = pair[1];
            }
        }
    }

    /// Fills the grids from one plane `[H, W]` and `best` with every window's maximum.
    pub(super) fn maxima(&mut self, xp: &[T], g: &PoolGeom) {
        self.fill(xp, g);
        let (first, n) = self.span();
        let mut best = std::mem::take(&mut self.best);
        best[first..].copy_from_slice(self.run(0, first, n));
        for position in 1..9 {
            for (b, &v) in best[first..].iter_mut().zip(self.run(position, first, n)) {
                *b = nan_max(*b, v);
            }
        }
        self.best = best;
    }

    pub(super) fn forward(&mut self, xp: &[T], yp: &mut [T], g: &PoolGeom) {
        self.maxima(xp, g);
        for (oy, out) in yp.chunks_exact_mut(g.out_w).enumerate() {
            let start = (oy + 1) * self.gw + 1;
            out.copy_from_slice(&self.best[start..start + g.out_w]);
        }
    }

    /// Adds `dyp` to the first maximum of every window of `xp`, whose maxima (the forward
    /// output) are `yp`; `dxp` must start at zero.
    pub(super) fn backward(&mut self, xp: &[T], yp: &[T], dyp: &[T], dxp: &mut [T], g: &PoolGeom) {
        self.fill(xp, g);
        for (oy, out) in yp.chunks_exact(g.out_w).enumerate() {
            let start = (oy + 1) * self.gw + 1;
            self.best[start..start + g.out_w].copy_from_slice(out);
        }
        let (first, n) = self.span();
        let mut code = std::mem::take(&mut self.code);
        // Backwards through the window, so that the last match kept is the first in order.
        for position in (0..9).rev() {
            let p = T::from_f64(position as f64);
            let cells = code[first..].iter_mut().zip(&self.best[first..]);
            for ((k, &m), &v) in cells.zip(self.run(position, first, n)) {
                // `x != x` is NaN: a NaN maximum is the first NaN.
                #[allow(clippy::eq_op)]
                let hit = (v == m) | ((v != v) & (m != m));
                *k = if hit { p } else { *k };
            }
        }
        let neg_inf = T::from_f64(f64::NEG_INFINITY);
        for (oy, dy_row) in dyp.chunks_exact(g.out_w).enumerate() {
            for (ox, &d) in dy_row.iter().enumerate() {
                let cell = (oy + 1) * self.gw + ox + 1;
                // A border window whose maximum is -inf might have matched the -inf padding.
                let at = if (oy == 0 || ox == 0) && self.best[cell] == neg_inf {
                    g.argmax(xp, oy, ox)
                } else {
                    let position = code[cell].to_f64() as usize;
                    (2 * oy + position / 3 - 1) * g.width + 2 * ox + position % 3 - 1
                };
                dxp[at] += d;
            }
        }
        self.code = code;
    }
}
