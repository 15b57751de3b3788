// allconv's own CUDA kernels, compiled to PTX by crates/models/build.rs and launched from
// kernels.rs. Each one has the same contract (and, where stated, the same floating-point
// operations in the same order) as the CPU code it mirrors:
//
//   max_pool_fwd   ops/pool/ MaxPoolOp             padded max, -inf padding, NaN wins (f32, f64)
//   max_pool_bwd   ops/pool/ MaxPoolBackwardOp     gradient to the first arg-max, summed in
//                                                  increasing output index (bit-identical)
//   relu_mask      ops/conv/relu.rs ReluBackwardOp dy * (y > 0) (ReluBackward::Backprop)
//   relu_rule      ops/conv/relu.rs ReluBackwardOp the visualisation rules (ReluBackward)
//   dropout        ops/dropout/                    same counter hash, same mask, bit-identical
//   sgd            ops/sgd.rs                      same operations in the same order
//
// Built without --use_fast_math and with --fmad=false (build.rs): fast math would break the NaN
// test of the pool, and a fused multiply-add rounds once where the CPU rounds twice. The
// arithmetic that must match the CPU additionally spells out its roundings (__fmul_rn, ...),
// which the compiler never contracts, so it stays exact whatever the flags.
//
// All pointers point at the tensor's first element (the host applies the layout's start
// offset). Every kernel is a grid-stride loop over 64-bit indices, so any grid size is correct;
// none uses shared memory, __syncthreads or atomics, which lets tests/kernels_on_host.rs
// compile this file as host C++ (tests/kernels_on_host/shim.h) and check it against the CPU ops.

typedef unsigned long long u64;
typedef unsigned int u32;

#define GRID_STRIDE_LOOP(i, n) \
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (u64)blockDim.x * gridDim.x)

// ---------------------------------------------------------------------------------------------
// Max-pool. Geometry: `planes` = N*C planes of height x width in, out_h x out_w out.

// Index (within the plane) of the maximum of output window (oy, ox): the first maximum in
// row-major window order; a NaN wins and stops the scan. Same loop as PoolGeom::argmax.
template <typename T>
__device__ __forceinline__ int window_argmax(const T* plane, int height, int width, int kernel,
                                             int stride, int pad, int oy, int ox) {
    const int y0 = max(oy * stride - pad, 0);
    const int y1 = min(oy * stride + kernel - pad, height);
    const int x0 = max(ox * stride - pad, 0);
    const int x1 = min(ox * stride + kernel - pad, width);
    int best = y0 * width + x0;
    T best_value = plane[best];
    for (int y = y0; y < y1; ++y) {
        for (int x = x0; x < x1; ++x) {
            const T v = plane[y * width + x];
            const bool is_nan = v != v;
            if (v > best_value || is_nan) {
                best = y * width + x;
                best_value = v;
                if (is_nan) {
                    return best;
                }
            }
        }
    }
    return best;
}

// One thread per output element.
template <typename T>
__device__ void max_pool_fwd(const T* x, T* y, u64 planes, int height, int width, int out_h,
                             int out_w, int kernel, int stride, int pad) {
    const u64 out_plane = (u64)out_h * out_w;
    const u64 n = planes * out_plane;
    GRID_STRIDE_LOOP(i, n) {
        const u64 p = i / out_plane;
        const int r = (int)(i - p * out_plane);
        const int oy = r / out_w;
        const int ox = r - oy * out_w;
        const T* plane = x + p * ((u64)height * width);
        y[i] = plane[window_argmax(plane, height, width, kernel, stride, pad, oy, ox)];
    }
}

// One thread per INPUT element: it gathers the gradients of the windows that contain it and
// whose first arg-max it is, in increasing output index order starting from 0 -- the same sums
// in the same order as the CPU's scatter loop, without atomics. Every element is written.
template <typename T>
__device__ void max_pool_bwd(const T* x, const T* dy, T* dx, u64 planes, int height, int width,
                             int out_h, int out_w, int kernel, int stride, int pad) {
    const u64 in_plane = (u64)height * width;
    const u64 n = planes * in_plane;
    GRID_STRIDE_LOOP(i, n) {
        const u64 p = i / in_plane;
        const int r = (int)(i - p * in_plane);
        const int iy = r / width;
        const int ix = r - iy * width;
        // Window oy covers rows [oy*stride - pad, oy*stride - pad + kernel), so it contains iy
        // iff iy + pad - kernel < oy*stride <= iy + pad.
        const int ylo = iy + pad - kernel + 1;
        const int oy0 = ylo <= 0 ? 0 : (ylo + stride - 1) / stride;
        const int oy1 = min((iy + pad) / stride, out_h - 1);
        const int xlo = ix + pad - kernel + 1;
        const int ox0 = xlo <= 0 ? 0 : (xlo + stride - 1) / stride;
        const int ox1 = min((ix + pad) / stride, out_w - 1);
        const T* plane = x + p * in_plane;
        const T* dy_plane = dy + p * ((u64)out_h * out_w);
        T acc = (T)0;
        for (int oy = oy0; oy <= oy1; ++oy) {
            for (int ox = ox0; ox <= ox1; ++ox) {
                if (window_argmax(plane, height, width, kernel, stride, pad, oy, ox) == r) {
                    acc += dy_plane[oy * out_w + ox];
                }
            }
        }
        dx[i] = acc;
    }
}

extern "C" __global__ void allconv_max_pool_fwd_f32(const float* x, float* y, u64 planes,
                                                    int height, int width, int out_h, int out_w,
                                                    int kernel, int stride, int pad) {
    max_pool_fwd<float>(x, y, planes, height, width, out_h, out_w, kernel, stride, pad);
}

extern "C" __global__ void allconv_max_pool_bwd_f32(const float* x, const float* dy, float* dx,
                                                    u64 planes, int height, int width, int out_h,
                                                    int out_w, int kernel, int stride, int pad) {
    max_pool_bwd<float>(x, dy, dx, planes, height, width, out_h, out_w, kernel, stride, pad);
}

extern "C" __global__ void allconv_max_pool_fwd_f64(const double* x, double* y, u64 planes,
                                                    int height, int width, int out_h, int out_w,
                                                    int kernel, int stride, int pad) {
    max_pool_fwd<double>(x, y, planes, height, width, out_h, out_w, kernel, stride, pad);
}

extern "C" __global__ void allconv_max_pool_bwd_f64(const double* x, const double* dy,
                                                    double* dx, u64 planes, int height, int width,
                                                    int out_h, int out_w, int kernel, int stride,
                                                    int pad) {
    max_pool_bwd<double>(x, dy, dx, planes, height, width, out_h, out_w, kernel, stride, pad);
}

// ---------------------------------------------------------------------------------------------
// ReLU backward from the output: a select, so a NaN in y gives 0 as on the CPU.

extern "C" __global__ void allconv_relu_mask_f32(const float* dy, const float* y, float* out,
                                                 u64 n) {
    GRID_STRIDE_LOOP(i, n) {
        out[i] = y[i] > 0.0f ? dy[i] : 0.0f;
    }
}

// ReLU backward by rule (ReluBackward::code): 0 backprop (y > 0), 1 deconvnet (dy > 0),
// 2 guided (both); selects as above.
extern "C" __global__ void allconv_relu_rule_f32(const float* dy, const float* y, float* out,
                                                 u64 n, unsigned int rule) {
    GRID_STRIDE_LOOP(i, n) {
        const bool forward_open = rule == 1u || y[i] > 0.0f;
        const bool backward_open = rule == 0u || dy[i] > 0.0f;
        out[i] = forward_open && backward_open ? dy[i] : 0.0f;
    }
}

// ---------------------------------------------------------------------------------------------
// Dropout. The mask bit of element i is the high half of the (i+1)-th output of SplitMix64
// started at `key` (the host derives key from seed and stream, ops/dropout/mask.rs): element kept
// iff bits >= threshold = round(rate * 2^32). Integer arithmetic only, identical to the Rust.

__device__ __forceinline__ u64 splitmix64_mix(u64 z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

__device__ __forceinline__ bool dropout_keeps(u64 key, u64 threshold, u64 i) {
    const u32 bits = (u32)(splitmix64_mix(key + (i + 1) * 0x9E3779B97F4A7C15ULL) >> 32);
    return (u64)bits >= threshold;
}

extern "C" __global__ void allconv_dropout_f32(const float* x, float* y, u64 n, u64 key,
                                               u64 threshold, float scale) {
    GRID_STRIDE_LOOP(i, n) {
        y[i] = dropout_keeps(key, threshold, i) ? __fmul_rn(x[i], scale) : 0.0f;
    }
}

extern "C" __global__ void allconv_dropout_f64(const double* x, double* y, u64 n, u64 key,
                                               u64 threshold, double scale) {
    GRID_STRIDE_LOOP(i, n) {
        y[i] = dropout_keeps(key, threshold, i) ? __dmul_rn(x[i], scale) : 0.0;
    }
}

// ---------------------------------------------------------------------------------------------
// Fused SGD step, PyTorch/Caffe semantics, in place on w and v:
//     d = g + (w*wd + 0)   (only when decay)
//     v = (v*m + 0) + d
//     w = w - (v*lr + 0)
// The "+ 0" are candle's affine(mul, 0) of the unfused version, kept so that signed zeros come
// out as they did; every operation rounds separately, as on the CPU.

extern "C" __global__ void allconv_sgd_f32(float* w, float* v, const float* g, u64 n, float lr,
                                           float momentum, float wd, int decay) {
    GRID_STRIDE_LOOP(i, n) {
        const float wi = w[i];
        const float d = decay ? __fadd_rn(g[i], __fadd_rn(__fmul_rn(wi, wd), 0.0f)) : g[i];
        const float vi = __fadd_rn(__fadd_rn(__fmul_rn(v[i], momentum), 0.0f), d);
        v[i] = vi;
        w[i] = __fsub_rn(wi, __fadd_rn(__fmul_rn(vi, lr), 0.0f));
    }
}

extern "C" __global__ void allconv_sgd_f64(double* w, double* v, const double* g, u64 n,
                                           double lr, double momentum, double wd, int decay) {
    GRID_STRIDE_LOOP(i, n) {
        const double wi = w[i];
        const double d = decay ? __dadd_rn(g[i], __dadd_rn(__dmul_rn(wi, wd), 0.0)) : g[i];
        const double vi = __dadd_rn(__dadd_rn(__dmul_rn(v[i], momentum), 0.0), d);
        v[i] = vi;
        w[i] = __dsub_rn(wi, __dadd_rn(__dmul_rn(vi, lr), 0.0));
    }
}
