// Lets crates/models/src/ops/cuda/kernels.cu compile as host C++ (tests/kernels_on_host.rs).
//
// The kernels are grid-stride loops without shared memory, __syncthreads or atomics, so a launch
// can be simulated by calling the kernel once per (block, thread) in any order, with the
// built-in indices below set by the driver. The rounding intrinsics become plain arithmetic,
// which rounds each operation separately when compiled with -ffp-contract=off (no fused
// multiply-adds) and without fast math, as the test does.
#pragma once

#define __global__
#define __device__
#define __forceinline__ inline

struct allconv_uint3 {
    unsigned int x, y, z;
};

// CUDA's built-in variables, set by the driver before each simulated thread.
static allconv_uint3 blockIdx, blockDim, threadIdx, gridDim;

// CUDA's integer min/max overloads (the kernels use them on int).
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }

// Round-to-nearest arithmetic intrinsics: one IEEE operation each.
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline double __dmul_rn(double a, double b) { return a * b; }
static inline double __dadd_rn(double a, double b) { return a + b; }
static inline double __dsub_rn(double a, double b) { return a - b; }
