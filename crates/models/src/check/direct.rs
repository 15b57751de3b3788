//! The reference definitions of the ops on the CPU: plain loops straight from each op's
//! definition, in f64 where the comparison has a tolerance, in f32 with the op's own order of
//! roundings where it is bit for bit. Nothing here calls the code under test.
//!
//! Why by hand: the point is an implementation that shares no code (no im2col, no GEMM, no
//! vector loop) with the ops being checked; no crate offers these definitions. The dropout
//! mask's generator, SplitMix64, is part of the definition (docs/protocol.md, Dropout) and comes
//! from allconv-splitmix, whose own test pins it to the reference implementation.

use allconv_splitmix as splitmix;

/// The inputs of one convolution case, row-major: `x [n, c, h, w]`, `weight [o, c, k, k]`,
/// `bias [o]` and the upstream gradient `upstream` of the output.
pub(crate) struct ConvInput {
    pub(crate) dims: [usize; 4],
    pub(crate) out: usize,
    pub(crate) kernel: usize,
    pub(crate) stride: usize,
    pub(crate) pad: usize,
    pub(crate) relu: bool,
    pub(crate) x: Vec<f64>,
    pub(crate) weight: Vec<f64>,
    pub(crate) bias: Vec<f64>,
    pub(crate) upstream: Vec<f64>,
}

impl ConvInput {
    /// Output height and width.
    pub(crate) fn out_hw(&self) -> (usize, usize) {
        let [_, _, h, w] = self.dims;
        let size = |s: usize| (s + 2 * self.pad - self.kernel) / self.stride + 1;
        (size(h), size(w))
    }
}

/// Output and gradients of one convolution case (the loss is `sum(y * upstream)`).
pub(crate) struct ConvOutput {
    pub(crate) y: Vec<f64>,
    pub(crate) dx: Vec<f64>,
    pub(crate) dw: Vec<f64>,
    pub(crate) db: Vec<f64>,
}

/// Calls `f(n, o, oy, ox, c, ky, kx, y_index, x_index, w_index)` for every product term of the
/// convolution that lands inside the input (zero padding contributes nothing).
fn for_each_term(input: &ConvInput, mut f: impl FnMut(usize, usize, usize, usize)) {
    let [n, c, h, w] = input.dims;
    let (oh, ow) = input.out_hw();
    let k = input.kernel;
    for b in 0..n {
        for o in 0..input.out {
            for oy in 0..oh {
                for ox in 0..ow {
                    let yi = ((b * input.out + o) * oh + oy) * ow + ox;
                    for ch in 0..c {
                        for ky in 0..k {
                            let iy = (oy * input.stride + ky) as isize - input.pad as isize;
                            if iy < 0 || iy >= h as isize {
                                continue;
                            }
                            for kx in 0..k {
                                let ix = (ox * input.stride + kx) as isize - input.pad as isize;
                                if ix < 0 || ix >= w as isize {
                                    continue;
                                }
                                let xi = ((b * c + ch) * h + iy as usize) * w + ix as usize;
                                let wi = ((o * c + ch) * k + ky) * k + kx;
                                f(yi, o, xi, wi);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `conv(x, weight) + bias`, before any ReLU.
pub(crate) fn conv_pre_activation(input: &ConvInput) -> Vec<f64> {
    let (oh, ow) = input.out_hw();
    let mut y: Vec<f64> = (0..input.dims[0] * input.out * oh * ow)
        .map(|i| input.bias[(i / (oh * ow)) % input.out])
        .collect();
    for_each_term(input, |yi, _, xi, wi| {
        y[yi] += input.weight[wi] * input.x[xi]
    });
    y
}

/// `y = [relu](conv(x, weight) + bias)` and the gradients of `sum(y * upstream)` with respect
/// to `x`, `weight` and `bias` (through the ReLU: the upstream gradient where `y > 0`).
pub(crate) fn conv(input: &ConvInput) -> ConvOutput {
    let (oh, ow) = input.out_hw();
    let per_image = input.out * oh * ow;
    let mut y: Vec<f64> = (0..input.dims[0] * per_image)
        .map(|i| input.bias[(i / (oh * ow)) % input.out])
        .collect();
    for_each_term(input, |yi, _, xi, wi| {
        y[yi] += input.weight[wi] * input.x[xi]
    });
    let mut g = input.upstream.clone();
    if input.relu {
        for (v, g) in y.iter_mut().zip(&mut g) {
            if *v <= 0.0 {
                *v = 0.0;
                *g = 0.0;
            }
        }
    }
    let mut dx = vec![0.0; input.x.len()];
    let mut dw = vec![0.0; input.weight.len()];
    let mut db = vec![0.0; input.out];
    for (yi, &gv) in g.iter().enumerate() {
        db[(yi / (oh * ow)) % input.out] += gv;
    }
    for_each_term(input, |yi, _, xi, wi| {
        dx[xi] += g[yi] * input.weight[wi];
        dw[wi] += g[yi] * input.x[xi];
    });
    ConvOutput { y, dx, dw, db }
}

/// Max-pool of `x [planes, h, w]` with a square window, stride and -inf padding, and the
/// gradient of `sum(y * upstream)`: each window's upstream value goes to its first maximum in
/// row-major window order among the real (unpadded) elements, as PyTorch's `MaxPool2d`.
/// Returns `(y, dx)`; sums of gradients are exact when the upstream values are multiples of a
/// power of two, which the check arranges.
pub(crate) fn max_pool(
    x: &[f64],
    [planes, h, w]: [usize; 3],
    kernel: usize,
    stride: usize,
    pad: usize,
    upstream: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let oh = (h + 2 * pad - kernel) / stride + 1;
    let ow = (w + 2 * pad - kernel) / stride + 1;
    let mut y = Vec::with_capacity(planes * oh * ow);
    let mut dx = vec![0.0; x.len()];
    for p in 0..planes {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut best: Option<usize> = None;
                for ky in 0..kernel {
                    for kx in 0..kernel {
                        let (iy, ix) = (oy * stride + ky, ox * stride + kx);
                        if iy < pad || ix < pad || iy - pad >= h || ix - pad >= w {
                            continue;
                        }
                        let i = (p * h + iy - pad) * w + ix - pad;
                        if best.is_none_or(|b| x[i] > x[b]) {
                            best = Some(i);
                        }
                    }
                }
                // Every window holds a real element (pad <= kernel / 2).
                let b = best.expect("a window with a real element");
                dx[b] += upstream[y.len()];
                y.push(x[b]);
            }
        }
    }
    (y, dx)
}

/// Inverted dropout of f32 values, from the definition in `docs/protocol.md` (Dropout):
/// element `i` of stream `(seed, stream)` is kept iff the high 32 bits of the `(i+1)`-th
/// SplitMix64 output from `mix(mix(seed) ^ stream)` are at least `round(rate * 2^32)`, and
/// kept elements are multiplied by `1 / (1 - rate)` rounded to f32.
pub(crate) fn dropout(x: &[f32], rate: f64, seed: u64, stream: u64) -> Vec<f32> {
    let key = splitmix::mix(splitmix::mix(seed) ^ stream);
    let threshold = (rate * 4_294_967_296.0).round() as u64;
    let scale = (1.0 / (1.0 - rate)) as f32;
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            if splitmix::output(key, i as u64) >> 32 >= threshold {
                v * scale
            } else {
                0.0
            }
        })
        .collect()
}

/// One SGD step with momentum and weight decay in f32, in the order of the documented update
/// `v' = (v*m + 0) + (g + (w*wd + 0))`, `w' = w - (v'*lr + 0)` (the decay term left out when
/// `wd` is 0; `+ 0` turns -0 into +0, as an affine map does). Returns `(w', v')`.
pub(crate) fn sgd(
    w: &[f32],
    v: &[f32],
    g: &[f32],
    lr: f64,
    momentum: f64,
    wd: f64,
) -> (Vec<f32>, Vec<f32>) {
    let (lr32, m32, wd32) = (lr as f32, momentum as f32, wd as f32);
    let mut w_out = Vec::with_capacity(w.len());
    let mut v_out = Vec::with_capacity(w.len());
    for ((&w, &v), &g) in w.iter().zip(v).zip(g) {
        let d = if wd != 0.0 { g + (w * wd32 + 0.0) } else { g };
        let vel = (v * m32 + 0.0) + d;
        v_out.push(vel);
        w_out.push(w - (vel * lr32 + 0.0));
    }
    (w_out, v_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_on_a_hand_computed_case() {
        // x = 1..=9 as one 3x3 image, w = ones 3x3, bias 0.5, pad 1, stride 2: the four windows
        // sum 1+2+4+5 = 12, 2+3+5+6 = 16, 4+5+7+8 = 24, 5+6+8+9 = 28. Upstream ones: db = 4,
        // dw[ky][kx] = the sum of the inputs it met, e.g. the centre met 1, 3, 7, 9 -> 20.
        let input = ConvInput {
            dims: [1, 1, 3, 3],
            out: 1,
            kernel: 3,
            stride: 2,
            pad: 1,
            relu: false,
            x: (1..=9).map(f64::from).collect(),
            weight: vec![1.0; 9],
            bias: vec![0.5],
            upstream: vec![1.0; 4],
        };
        let out = conv(&input);
        assert_eq!(out.y, vec![12.5, 16.5, 24.5, 28.5]);
        assert_eq!(out.db, vec![4.0]);
        assert_eq!(out.dw[4], 20.0);
        // x[1][1] = 5 lies in all four windows -> dx = 4; the corner x[0][0] in one.
        assert_eq!(out.dx[4], 4.0);
        assert_eq!(out.dx[0], 1.0);
    }

    #[test]
    fn max_pool_sends_ties_and_all_minus_infinity_windows_to_the_first_element() {
        // One 2x2 plane, 3x3/2 pad 1 -> one window holding all four; ties at 1.0.
        let x = [0.5, 1.0, 1.0, 0.0];
        let (y, dx) = max_pool(&x, [1, 2, 2], 3, 2, 1, &[2.0]);
        assert_eq!(y, vec![1.0]);
        assert_eq!(dx, vec![0.0, 2.0, 0.0, 0.0]);
        let x = [f64::NEG_INFINITY; 4];
        let (y, dx) = max_pool(&x, [1, 2, 2], 3, 2, 1, &[2.0]);
        assert_eq!(y, vec![f64::NEG_INFINITY]);
        assert_eq!(dx, vec![2.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn sgd_on_a_hand_computed_case() {
        // v' = 0.5*0.9 + (1 + 2*0.5) = 2.45; w' = 2 - 0.1*2.45 = 1.755 (in f32).
        let (w, v) = sgd(&[2.0], &[0.5], &[1.0], 0.1, 0.9, 0.5);
        assert_eq!(v, vec![0.5f32 * 0.9 + 2.0]);
        assert_eq!(w, vec![2.0f32 - v[0] * 0.1]);
        assert!((w[0] - 1.755).abs() < 1e-6);
    }
}
