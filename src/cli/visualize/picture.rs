//! The picture grid: cells of 32x32 images (the original, then one reconstruction per method),
//! enlarged by whole pixels, with a white gap around every cell.

use image::{Rgb, RgbImage};

/// Side of one CIFAR image in pixels.
pub const SIDE: usize = 32;
const PLANE: usize = SIDE * SIDE;

/// Geometry of a grid of `rows x cols` cells, each image enlarged `zoom` times.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Pixels per image pixel.
    pub zoom: usize,
    /// White pixels between cells and around the border.
    pub gap: usize,
}

impl Layout {
    /// Side of one cell in pixels.
    pub fn cell(&self) -> usize {
        SIDE * self.zoom
    }

    /// `(width, height)` of the whole picture.
    pub fn size(&self) -> (usize, usize) {
        let span = |n: usize| n * self.cell() + (n + 1) * self.gap;
        (span(self.cols), span(self.rows))
    }

    /// Top-left pixel of cell `(row, col)`.
    pub fn origin(&self, row: usize, col: usize) -> (usize, usize) {
        let at = |i: usize| self.gap + i * (self.cell() + self.gap);
        (at(col), at(row))
    }
}

/// An RGB image as 32x32 bytes per channel, R, G, B planes (the CIFAR layout).
pub type Planes = [u8; 3 * PLANE];

/// Min-max scales a gradient `[3, 32, 32]` (CHW) of one image to 0..=255 over all its
/// channels together, so that its colours keep their balance; a constant gradient is mid-grey.
pub fn min_max_scaled(gradient: &[f32]) -> Planes {
    let (lo, hi) = gradient
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let mut out = [128u8; 3 * PLANE];
    if hi > lo {
        for (o, &v) in out.iter_mut().zip(gradient) {
            *o = (255.0 * (v - lo) / (hi - lo)).round() as u8;
        }
    }
    out
}

/// The grid: `cells[row][col]` drawn at its place, everything else white.
pub fn compose(layout: Layout, cells: &[Vec<Planes>]) -> RgbImage {
    let (w, h) = layout.size();
    let mut img = RgbImage::from_pixel(w as u32, h as u32, Rgb([255, 255, 255]));
    for (r, row) in cells.iter().enumerate() {
        for (c, planes) in row.iter().enumerate() {
            let (x0, y0) = layout.origin(r, c);
            for y in 0..layout.cell() {
                for x in 0..layout.cell() {
                    let i = (y / layout.zoom) * SIDE + x / layout.zoom;
                    let px = Rgb([planes[i], planes[PLANE + i], planes[2 * PLANE + i]]);
                    img.put_pixel((x0 + x) as u32, (y0 + y) as u32, px);
                }
            }
        }
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_and_cells_are_where_the_layout_says() {
        let layout = Layout {
            rows: 2,
            cols: 3,
            zoom: 2,
            gap: 1,
        };
        // 3 cells of 64 px plus 4 gaps of 1 px; 2 cells plus 3 gaps.
        assert_eq!(layout.size(), (3 * 64 + 4, 2 * 64 + 3));
        let mut a = [0u8; 3 * PLANE];
        a[0] = 10; // R of pixel (0, 0)
        a[PLANE + 33] = 20; // G of pixel (1, 1)
        let b = [200u8; 3 * PLANE];
        let img = compose(layout, &[vec![a, b], vec![b]]);
        assert_eq!(img.dimensions(), (196, 131));
        // Cell (0, 0) starts at (1, 1); pixel (1, 1) of the image covers (3..5, 3..5).
        assert_eq!(img.get_pixel(1, 1).0, [10, 0, 0]);
        assert_eq!(img.get_pixel(2, 2).0, [10, 0, 0]);
        assert_eq!(img.get_pixel(4, 4).0, [0, 20, 0]);
        // Cell (0, 1) starts at x = 1 + 64 + 1 = 66; the gap before it is white.
        assert_eq!(img.get_pixel(65, 1).0, [255, 255, 255]);
        assert_eq!(img.get_pixel(66, 1).0, [200, 200, 200]);
        // Cell (1, 2) was not given: white.
        assert_eq!(img.get_pixel(131, 66).0, [255, 255, 255]);
    }

    #[test]
    fn min_max_scaling_spans_0_to_255() {
        let mut g = vec![0.5f32; 3 * PLANE];
        g[0] = -1.0;
        g[1] = 2.0;
        let s = min_max_scaled(&g);
        // (0.5 - -1) / 3 * 255 = 127.5, rounded half away from zero: 128.
        assert_eq!((s[0], s[1], s[2]), (0, 255, 128));
        assert!(min_max_scaled(&vec![3.0; 3 * PLANE])
            .iter()
            .all(|&v| v == 128));
    }
}
