//! The GEMM candidates behind the CPU convolution, on the product shapes of the 12 networks
//! (per image or image group, as `ops::conv` calls them): the `gemm` crate (the portable path)
//! and `private-gemm-x86` with 256-bit (AVX2 + FMA) and 512-bit (AVX-512F) kernels. One thread,
//! f32, the three operand layouts of a training step: forward `W x cols`, weight gradient
//! `dY x cols^T`, input gradient `W^T x dY`. Prints GFLOP/s per thread-CPU-second (best of 5),
//! which a busy machine barely disturbs, and the largest difference from the `gemm` crate.
//!
//! `cargo bench -p allconv-models --bench gemm_kernels`. The decision it informed and its
//! numbers are in docs/benchmarks.md (CPU kernels).

#[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
fn main() {
    use x86::Product;

    let kernels = x86::available_kernels();
    println!(
        "{}; one thread, f32, GFLOP/s per thread-CPU-second, best of 5",
        allconv_models::ops::cpu_model()
    );
    for (name, shape) in x86::SHAPES {
        for p in [Product::Forward, Product::WeightGrad, Product::InputGrad] {
            println!("{}", x86::line(name, p, shape, &kernels));
        }
    }
}

/// The candidates, the shapes and the measurement.
#[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
mod x86 {
    use private_gemm_x86 as pg;

    /// CPU seconds of the calling thread.
    fn thread_cpu_seconds() -> f64 {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `t` is a valid timespec to write; the clock id is a constant of the platform.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
        t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
    }

    /// The three operand layouts of a training step.
    #[derive(Clone, Copy, Debug)]
    pub enum Product {
        Forward,
        WeightGrad,
        InputGrad,
    }

    /// ((lhs row, col stride), (rhs row, col stride)) of `dst [m, n] = lhs x rhs`.
    fn strides(p: Product, m: usize, n: usize, k: usize) -> ((isize, isize), (isize, isize)) {
        let (m, n, k) = (m as isize, n as isize, k as isize);
        match p {
            Product::Forward => ((k, 1), (n, 1)),
            // rhs = cols^T with cols [n, k] row-major.
            Product::WeightGrad => ((k, 1), (1, k)),
            // lhs = W^T with W [k, m] row-major.
            Product::InputGrad => ((1, m), (n, 1)),
        }
    }

    fn multiply(
        kernel: &str,
        p: Product,
        (m, n, k): (usize, usize, usize),
        a: &[f32],
        b: &[f32],
        c: &mut [f32],
    ) {
        let ((lrs, lcs), (rrs, rcs)) = strides(p, m, n, k);
        let alpha = 1.0f32;
        // SAFETY: a, b, c hold m*k, k*n, m*n elements, addressed through the strides above.
        unsafe {
            match kernel {
                "gemm" => gemm::gemm(
                    m,
                    n,
                    k,
                    c.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    a.as_ptr(),
                    lcs,
                    lrs,
                    b.as_ptr(),
                    rcs,
                    rrs,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                ),
                _ => pg::gemm(
                    pg::DType::F32,
                    pg::IType::U64,
                    if kernel == "avx512" {
                        pg::InstrSet::Avx512
                    } else {
                        pg::InstrSet::Avx256
                    },
                    m,
                    n,
                    k,
                    c.as_mut_ptr() as *mut (),
                    n as isize,
                    1,
                    std::ptr::null(),
                    std::ptr::null(),
                    pg::DstKind::Full,
                    pg::Accum::Replace,
                    a.as_ptr() as *const (),
                    lrs,
                    lcs,
                    false,
                    std::ptr::null(),
                    0,
                    b.as_ptr() as *const (),
                    rrs,
                    rcs,
                    false,
                    &alpha as *const f32 as *const (),
                    1,
                ),
            }
        }
    }

    /// The kernels this CPU runs: always `gemm`, then `avx2` and `avx512` where supported.
    pub fn available_kernels() -> Vec<&'static str> {
        let avx512 = std::arch::is_x86_feature_detected!("avx512f");
        let avx2 = std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma");
        ["gemm", "avx2", "avx512"]
            .into_iter()
            .filter(|k| match *k {
                "avx512" => avx512,
                "avx2" => avx2,
                _ => true,
            })
            .collect()
    }

    /// (m, n, k) = (out channels, columns, in channels * kh * kw) as the convolution groups them.
    pub const SHAPES: [(&str, (usize, usize, usize)); 11] = [
        ("model-a conv1 5x5 3->96 @32", (96, 1024, 75)),
        ("model-a conv2 5x5 96->192 @16", (192, 256, 2400)),
        ("model-c conv1 3x3 3->96 @32", (96, 1024, 27)),
        (
            "model-c conv2 3x3 96->96 @32 (256-column blocks)",
            (96, 256, 864),
        ),
        ("model-c conv3 3x3 96->192 @16", (192, 256, 864)),
        ("model-c conv4 3x3 192->192 @16", (192, 256, 1728)),
        (
            "all-cnn-c conv6 3x3/2 192->192 @16 (4 images)",
            (192, 256, 1728),
        ),
        ("top 3x3 192->192 @6 unpadded (8 images)", (192, 288, 1728)),
        ("top 1x1 192->192 @6 (8 images)", (192, 288, 192)),
        ("top 1x1 192->10 @6 (8 images)", (10, 288, 192)),
        ("model-b 1x1 96->96 @32", (96, 1024, 96)),
    ];

    /// One line of the table: shape `name`, product `p`, then each kernel's GFLOP/s per
    /// thread-CPU-second (best of 5) and its largest difference from the `gemm` crate.
    pub fn line(
        name: &str,
        p: Product,
        (m, n, k): (usize, usize, usize),
        kernels: &[&str],
    ) -> String {
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 104_729) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let mut reference = vec![0f32; m * n];
        multiply("gemm", p, (m, n, k), &a, &b, &mut reference);
        let mut line = format!("{name:<48} {:<10}", format!("{p:?}"));
        for &kernel in kernels {
            let mut c = vec![0f32; m * n];
            let flop = 2.0 * (m * n * k) as f64;
            let iters = ((1e9 / flop) as usize).max(3);
            let mut best = f64::INFINITY;
            for _ in 0..5 {
                let start = thread_cpu_seconds();
                for _ in 0..iters {
                    multiply(kernel, p, (m, n, k), &a, &b, &mut c);
                }
                best = best.min((thread_cpu_seconds() - start) / iters as f64);
            }
            let diff = c
                .iter()
                .zip(&reference)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
            line += &format!(" {kernel} {:>4.0} (diff {diff:.0e})", flop / best / 1e9);
        }
        line
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu")))]
fn main() {
    println!("gemm_kernels compares x86-64 kernels (and reads the thread CPU clock on Linux): nothing to do here");
}
