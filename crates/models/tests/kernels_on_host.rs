//! The logic of our CUDA kernels (`src/ops/cuda/kernels.cu`) checked without a GPU: the real
//! `kernels.cu` is compiled as host C++ with `tests/kernels_on_host/shim.h` (CUDA's qualifiers and
//! built-in indices, the `__fmul_rn`-style intrinsics as plain IEEE operations, no fused
//! multiply-adds, no fast math) and `tests/kernels_on_host/driver.cpp`, which runs one kernel over a
//! simulated launch: every (block, thread) of several grid/block shapes, most of them with fewer
//! threads than elements so that the grid-stride loops wrap. Legal because the kernels never
//! synchronise, share memory or use atomics.
//!
//! Every output is compared BIT FOR BIT with the CPU ops of this crate on the same inputs: the
//! padded max-pool forward and backward (f32 and f64; ties, NaNs, windows that are all -inf; the paper's
//! 3x3/2 pad 1 on even planes, which the CPU runs through its own fast path, and odd planes,
//! 2x2/2, 3x3/1, 5x3 pad 2), the ReLU mask, dropout (f32 and f64, rates 0.2/0.5/0.9, several
//! seeds and streams, sizes across the CPU's vector and chunk boundaries) and the fused SGD step
//! (f32 and f64, with and without weight decay, signed zeros and subnormals). The driver fills
//! its outputs with a NaN pattern no input holds first, so an element a kernel skips shows.
//!
//! What this cannot see: the launchers in `kernels.rs` (the test passes the kernels the same
//! arguments they derive: the dropout key and threshold, the scale and hyper-parameters rounded
//! to f32, the decay flag; `tests/cuda_kernels.rs` covers them on a GPU), and the GPU's own
//! arithmetic (flush-to-zero, NaN payloads), which nvcc's flags in `build.rs` pin down.
//!
//! Needs a C++ compiler (`$CXX`, else the first of `c++`, `g++`, `clang++` that runs). Without
//! one the tests say so on stderr and check nothing, so `cargo test --workspace` still works on a
//! machine with only a C compiler; `ALLCONV_REQUIRE_HOST_KERNELS=1` (set by `.ci/run`) makes a
//! missing compiler a failure instead.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use allconv_models::ops::{dropout, dropout_bits, max_pool2d, sgd_step, Dropout};
use allconv_splitmix as splitmix;
use candle_core::{DType, Device, Tensor, Var, WithDType};

// ----------------------------------------------------------------------------------------------
// Building and running the driver.

/// The compiled driver, or `None` when the tests are skipped for want of a compiler.
fn driver() -> Option<&'static Path> {
    static DRIVER: OnceLock<Option<PathBuf>> = OnceLock::new();
    DRIVER.get_or_init(build_driver).as_deref()
}

fn build_driver() -> Option<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("allconv-cuda-host");
    std::fs::create_dir_all(&dir).unwrap();
    let tmp = dir.join(format!("driver.{}.tmp", std::process::id()));
    let candidates = match std::env::var("CXX") {
        Ok(cxx) => vec![cxx],
        Err(_) => ["c++", "g++", "clang++"].map(String::from).to_vec(),
    };
    let mut tried = Vec::new();
    let mut found = None;
    for cxx in candidates {
        // `CXX` may carry arguments (`ccache g++`), as for cc-based build scripts.
        let mut words = cxx.split_whitespace();
        let out = Command::new(words.next().unwrap_or("c++"))
            .args(words)
            .args([
                "-std=c++17",
                "-O2",
                "-ffp-contract=off",
                "-fno-fast-math",
                "-Wall",
            ])
            .arg("-I")
            .arg(manifest.join("tests/kernels_on_host"))
            .arg("-I")
            .arg(manifest.join("src/ops/cuda"))
            .arg(manifest.join("tests/kernels_on_host/driver.cpp"))
            .arg("-o")
            .arg(&tmp)
            .output();
        match out {
            Ok(out) => {
                found = Some((cxx, out));
                break;
            }
            Err(e) => tried.push(format!("`{cxx}` ({e})")),
        }
    }
    let Some((cxx, out)) = found else {
        let tried = tried.join(", ");
        if std::env::var("ALLCONV_REQUIRE_HOST_KERNELS").as_deref() == Ok("1") {
            panic!(
                "these tests compile src/ops/cuda/kernels.cu as host C++, but no C++ compiler \
                 could be run: {tried}; install one (g++ or clang++) or point CXX at it"
            );
        }
        eprintln!(
            "NOT CHECKED: the CUDA kernels' host test needs a C++ compiler and none could be run \
             ({tried}); install g++ or clang++ or set CXX"
        );
        return None;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "`{cxx}` failed ({}) compiling kernels.cu with tests/kernels_on_host/driver.cpp:\n{stderr}",
        out.status
    );
    if !stderr.trim().is_empty() {
        eprintln!("`{cxx}` warnings:\n{stderr}");
    }
    let path = dir.join("driver");
    std::fs::rename(&tmp, &path).unwrap();
    Some(path)
}

/// The launch shapes each kernel runs under: `kernels.rs`'s own (one thread per element in
/// blocks of 256), and smaller grids, down to a single thread, whose loops wrap.
fn launches(n: usize) -> Vec<(usize, usize)> {
    vec![(n.div_ceil(256).max(1), 256), (1, 1), (3, 32), (5, 96)]
}

/// An element type the driver reads and writes (raw little-endian).
trait Elem: WithDType + std::fmt::Debug {
    fn to_bits64(self) -> u64;
    fn from_le(b: &[u8]) -> Self;
    fn to_le(self) -> Vec<u8>;
}

impl Elem for f32 {
    fn to_bits64(self) -> u64 {
        u64::from(self.to_bits())
    }
    fn from_le(b: &[u8]) -> Self {
        f32::from_le_bytes(b.try_into().unwrap())
    }
    fn to_le(self) -> Vec<u8> {
        self.to_le_bytes().to_vec()
    }
}

impl Elem for f64 {
    fn to_bits64(self) -> u64 {
        self.to_bits()
    }
    fn from_le(b: &[u8]) -> Self {
        f64::from_le_bytes(b.try_into().unwrap())
    }
    fn to_le(self) -> Vec<u8> {
        self.to_le_bytes().to_vec()
    }
}

fn write_array<T: Elem>(dir: &Path, name: &str, v: &[T]) {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le()).collect();
    std::fs::write(dir.join(format!("{name}.bin")), bytes).unwrap();
}

fn read_array<T: Elem>(dir: &Path, name: &str) -> Vec<T> {
    let bytes = std::fs::read(dir.join(format!("{name}.out"))).unwrap();
    bytes
        .chunks_exact(std::mem::size_of::<T>())
        .map(T::from_le)
        .collect()
}

/// Runs `kernel` with the inputs already written to `dir`, under every launch shape, and returns
/// the named outputs of each run with a description of the launch.
fn run<T: Elem>(
    driver: &Path,
    dir: &Path,
    kernel: &str,
    n: usize,
    scalars: &[String],
    outputs: &[&str],
) -> Vec<(String, Vec<Vec<T>>)> {
    launches(n)
        .into_iter()
        .map(|(grid, block)| {
            let out = Command::new(driver)
                .arg(kernel)
                .arg(grid.to_string())
                .arg(block.to_string())
                .arg(dir)
                .args(scalars)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "driver {kernel} {grid}x{block} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            let values = outputs.iter().map(|o| read_array::<T>(dir, o)).collect();
            (format!("{kernel} grid {grid} x block {block}"), values)
        })
        .collect()
}

fn assert_same_bits<T: Elem>(expected: &[T], got: &[T], what: &str) {
    assert_eq!(expected.len(), got.len(), "{what}: lengths differ");
    if let Some(i) = (0..got.len()).find(|&i| expected[i].to_bits64() != got[i].to_bits64()) {
        panic!(
            "{what}: element {i} of {}: CPU {:?} (bits {:#x}), kernel {:?} (bits {:#x})",
            got.len(),
            expected[i],
            expected[i].to_bits64(),
            got[i],
            got[i].to_bits64()
        );
    }
}

fn hex32(x: f32) -> String {
    format!("{:#x}", x.to_bits())
}

fn hex64(x: f64) -> String {
    format!("{:#x}", x.to_bits())
}

// ----------------------------------------------------------------------------------------------
// Inputs.

/// A small deterministic generator (PCG-style LCG, high bits).
struct Lcg(u64);

impl Lcg {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(6_364_136_223_846_793_005) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    /// Uniform in [-1, 1), not dyadic, so roundings matter.
    fn uniform(&mut self) -> f64 {
        (self.next() % 2_000_003) as f64 / 1_000_001.5 - 1.0
    }
}

/// Pool input: values on 5 levels (many ties in every window) with NaNs; in `sparse` planes
/// -inf everywhere but every 29th element, so some windows' maximum is -inf.
fn pool_input(len: usize, plane: usize, seed: u64) -> Vec<f32> {
    let mut rng = Lcg::new(seed);
    (0..len)
        .map(|i| {
            let r = rng.next();
            if (i / plane) % 3 == 2 && i % 29 != 0 {
                f32::NEG_INFINITY
            } else if r % 41 == 0 {
                f32::NAN
            } else {
                (r % 5) as f32 - 2.0
            }
        })
        .collect()
}

// ----------------------------------------------------------------------------------------------
// The tests.

/// The kernel name of `base` for `T` (`max_pool_fwd` -> `max_pool_fwd_f32`).
fn kernel_name<T: Elem>(base: &str) -> String {
    format!("{base}_{}", T::DTYPE.as_str())
}

fn pool_case<T: Elem>(
    driver: &Path,
    case: usize,
    (n, c, h, w): (usize, usize, usize, usize),
    (kernel, stride, pad): (usize, usize, usize),
) {
    let what = format!(
        "{:?} case {case}: [{n}, {c}, {h}, {w}] kernel {kernel} stride {stride} pad {pad}",
        T::DTYPE
    );
    let x_data: Vec<T> = pool_input(n * c * h * w, h * w, case as u64 + 1)
        .into_iter()
        .map(|v| T::from_f64(f64::from(v)))
        .collect();
    // The CPU op and its gradient, through candle's backprop, for a gradient `dy` without zeros
    // or NaNs (so the backprop's own `0 + dy` accumulation leaves the bits alone).
    let x = Var::from_slice(&x_data, (n, c, h, w), &Device::Cpu).unwrap();
    let y = max_pool2d(x.as_tensor(), kernel, stride, pad).unwrap();
    let (_, _, out_h, out_w) = y.dims4().unwrap();
    let mut rng = Lcg::new(1000 + case as u64);
    let dy_data: Vec<T> = (0..y.elem_count())
        .map(|_| loop {
            let v = rng.uniform() * 3.0;
            if v != 0.0 {
                break T::from_f64(v);
            }
        })
        .collect();
    let dy = Tensor::from_slice(&dy_data, y.shape(), &Device::Cpu).unwrap();
    let grads = (&y * &dy).unwrap().sum_all().unwrap().backward().unwrap();
    let dx = grads.get(x.as_tensor()).unwrap();
    let y_cpu: Vec<T> = y.flatten_all().unwrap().to_vec1().unwrap();
    let dx_cpu: Vec<T> = dx.flatten_all().unwrap().to_vec1().unwrap();
    if x_data.len() >= 64 {
        let nan = y_cpu.iter().any(|v| v.to_f64().is_nan());
        assert!(nan, "{what}: the output should hold NaNs");
        let neg_inf = y_cpu.iter().any(|v| v.to_f64() == f64::NEG_INFINITY);
        assert!(neg_inf || c < 3, "{what}: some windows should be all -inf");
    }

    let dir = tempfile::tempdir().unwrap();
    write_array(dir.path(), "x", &x_data);
    write_array(dir.path(), "dy", &dy_data);
    let scalars: Vec<String> = [n * c, h, w, out_h, out_w, kernel, stride, pad]
        .iter()
        .map(|d| d.to_string())
        .collect();
    let forward = kernel_name::<T>("max_pool_fwd");
    for (launch, out) in run::<T>(driver, dir.path(), &forward, y_cpu.len(), &scalars, &["y"]) {
        assert_same_bits(&y_cpu, &out[0], &format!("{what}, {launch}"));
    }
    let backward = kernel_name::<T>("max_pool_bwd");
    for (launch, out) in run::<T>(
        driver,
        dir.path(),
        &backward,
        dx_cpu.len(),
        &scalars,
        &["dx"],
    ) {
        assert_same_bits(&dx_cpu, &out[0], &format!("{what}, {launch}"));
    }
}

#[test]
fn max_pool_forward_and_backward_equal_the_cpu_ops_bit_for_bit() {
    let Some(driver) = driver() else { return };
    // (n, c, h, w), (kernel, stride, pad)
    let cases = [
        ((2, 96, 32, 32), (3, 2, 1)), // the network's first pool (the CPU's fast path)
        ((2, 7, 16, 16), (3, 2, 1)),
        ((3, 5, 7, 9), (3, 2, 1)), // odd planes: the CPU's general path
        ((1, 4, 8, 6), (3, 2, 1)),
        ((1, 1, 1, 1), (3, 2, 1)),
        ((2, 3, 6, 6), (2, 2, 0)),
        ((2, 3, 7, 5), (2, 2, 0)),
        ((2, 3, 7, 7), (3, 1, 1)),
        ((1, 3, 9, 11), (3, 1, 0)),
        ((1, 3, 5, 6), (5, 3, 2)),
        ((1, 2, 9, 7), (2, 1, 1)),
        ((1, 2, 10, 9), (3, 3, 0)),
    ];
    for (case, (dims, geometry)) in cases.into_iter().enumerate() {
        pool_case::<f32>(driver, case, dims, geometry);
        pool_case::<f64>(driver, case, dims, geometry);
    }
}

#[test]
fn relu_mask_equals_the_cpu_rule_bit_for_bit() {
    let Some(driver) = driver() else { return };
    // The CPU's ReluMaskOp (crate-private, and on the CPU fused into the convolution's backward)
    // is `if y > 0 { dy } else { 0 }`: a select, so a NaN in `y` gives +0 and a NaN or -0 in
    // `dy` passes through where y > 0.
    let specials = [
        0.0,
        -0.0,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        1e-45,
        -1e-45,
    ];
    for n in [1, 7, 255, 256, 257, 10_001] {
        let mut rng = Lcg::new(n as u64);
        let pick = |rng: &mut Lcg| {
            let r = rng.next();
            if r % 4 == 0 {
                specials[(r / 4) as usize % specials.len()]
            } else {
                rng.uniform() as f32
            }
        };
        let dy: Vec<f32> = (0..n).map(|_| pick(&mut rng)).collect();
        let y: Vec<f32> = (0..n).map(|_| pick(&mut rng)).collect();
        let expected: Vec<f32> = dy
            .iter()
            .zip(&y)
            .map(|(&d, &y)| if y > 0.0 { d } else { 0.0 })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        write_array(dir.path(), "dy", &dy);
        write_array(dir.path(), "y", &y);
        for (launch, out) in run::<f32>(
            driver,
            dir.path(),
            "relu_mask_f32",
            n,
            &[n.to_string()],
            &["out"],
        ) {
            assert_same_bits(&expected, &out[0], &format!("{n} elements, {launch}"));
        }
    }
}

#[test]
fn relu_rule_kernel_follows_each_backward_rule() {
    let Some(driver) = driver() else { return };
    // The rules as docs/protocol.md states them, per element: backprop keeps dy where y > 0,
    // deconvnet where dy > 0, guided where both (codes 0, 1, 2 of `ReluBackward`).
    type Keeps = fn(f32, f32) -> bool;
    let rules: [(u32, Keeps); 3] = [
        (0, |_, y| y > 0.0),
        (1, |d, _| d > 0.0),
        (2, |d, y| d > 0.0 && y > 0.0),
    ];
    for n in [1, 257, 10_001] {
        let mut rng = Lcg::new(7 + n as u64);
        let dy: Vec<f32> = (0..n).map(|_| rng.uniform() as f32).collect();
        let y: Vec<f32> = (0..n).map(|_| rng.uniform() as f32).collect();
        let dir = tempfile::tempdir().unwrap();
        write_array(dir.path(), "dy", &dy);
        write_array(dir.path(), "y", &y);
        for (code, keeps) in rules {
            let expected: Vec<f32> = dy
                .iter()
                .zip(&y)
                .map(|(&d, &y)| if keeps(d, y) { d } else { 0.0 })
                .collect();
            for (launch, out) in run::<f32>(
                driver,
                dir.path(),
                "relu_rule_f32",
                n,
                &[n.to_string(), code.to_string()],
                &["out"],
            ) {
                assert_same_bits(&expected, &out[0], &format!("rule {code}, {n}, {launch}"));
            }
        }
    }
}

/// The key the host passes the dropout kernel for `(seed, stream)`: `mix(mix(seed) ^ stream)`
/// (`ops/dropout/mask.rs`, crate-private there), checked against the public [`dropout_bits`].
fn dropout_key(seed: u64, stream: u64) -> u64 {
    let key = splitmix::mix(splitmix::mix(seed) ^ stream);
    for i in [0u64, 1, 2, 1000, u64::from(u32::MAX) + 5] {
        let bits = (splitmix::output(key, i) >> 32) as u32;
        assert_eq!(
            bits,
            dropout_bits(seed, stream, i),
            "the test's transcription of the dropout key disagrees with ops/dropout/mask.rs"
        );
    }
    key
}

fn dropout_case<T: Elem>(driver: &Path, n: usize, rate: f64, seed: u64, stream: u64) {
    let mut rng = Lcg::new(seed ^ (n as u64) << 8 ^ stream);
    let specials = [0.0, -0.0, f64::NAN, f64::INFINITY, -3.5e38];
    let x: Vec<T> = (0..n)
        .map(|i| {
            if i % 97 == 13 {
                T::from_f64(specials[(i / 97) % specials.len()])
            } else {
                T::from_f64(rng.uniform() * 10.0)
            }
        })
        .collect();
    let y = dropout(
        &Tensor::from_slice(&x, n, &Device::Cpu).unwrap(),
        rate,
        seed,
        stream,
    )
    .unwrap();
    let expected: Vec<T> = y.to_vec1().unwrap();
    // The arguments `kernels.rs` passes: key and threshold from the host, the scale rounded to
    // the dtype.
    let op = Dropout::new(rate, seed, stream).unwrap();
    let scale = if T::DTYPE == DType::F32 {
        hex32(op.scale() as f32)
    } else {
        hex64(op.scale())
    };
    let scalars = [
        n.to_string(),
        dropout_key(seed, stream).to_string(),
        op.threshold().to_string(),
        scale,
    ];
    let dir = tempfile::tempdir().unwrap();
    write_array(dir.path(), "x", &x);
    let kernel = kernel_name::<T>("dropout");
    for (launch, out) in run::<T>(driver, dir.path(), &kernel, n, &scalars, &["y"]) {
        let what = format!("{n} elements, rate {rate} seed {seed} stream {stream}, {launch}");
        assert_same_bits(&expected, &out[0], &what);
    }
}

#[test]
fn dropout_equals_the_cpu_op_bit_for_bit() {
    let Some(driver) = driver() else { return };
    // A rate whose threshold equals the bits of element 5 of (seed 3, stream 4) exactly: that
    // element is kept (`bits >= threshold`), and would be dropped by a `>`.
    let edge = f64::from(dropout_bits(3, 4, 5)) / 4_294_967_296.0;
    assert_eq!(
        Dropout::new(edge, 3, 4).unwrap().threshold(),
        u64::from(dropout_bits(3, 4, 5))
    );
    let cases = [
        (0.5, 17, 1),
        (0.2, 17, 2),
        (0.5, 18, 3),
        (0.2, 0, 0),
        (0.9, 7, 12),
        (edge, 3, 4),
    ];
    for (rate, seed, stream) in cases {
        // Odd sizes, the CPU's vector widths (4, 8) and its chunk boundary (32768).
        for n in [1, 7, 8, 9, 1001, 70_001] {
            dropout_case::<f32>(driver, n, rate, seed, stream);
            dropout_case::<f64>(driver, n, rate, seed, stream);
        }
    }
}

fn sgd_case<T: Elem>(driver: &Path, n: usize, (lr, momentum, wd): (f64, f64, f64), seed: u64) {
    let mut rng = Lcg::new(seed);
    let specials = [0.0, -0.0, 1e-40, -1e-40, 3.0e38, -1e-3];
    let mut values = |scale: f64| -> Vec<T> {
        (0..n)
            .map(|i| {
                if i % 53 == 11 {
                    T::from_f64(specials[(i / 53) % specials.len()])
                } else {
                    T::from_f64(rng.uniform() * scale)
                }
            })
            .collect()
    };
    let (w, v, g) = (values(1.0), values(0.1), values(0.5));
    let tensor = |d: &[T]| Tensor::from_slice(d, n, &Device::Cpu).unwrap();
    let (wt, vt, gt) = (tensor(&w), tensor(&v), tensor(&g));
    sgd_step(&wt, &vt, &gt, lr, momentum, wd).unwrap();
    let (w_cpu, v_cpu): (Vec<T>, Vec<T>) = (wt.to_vec1().unwrap(), vt.to_vec1().unwrap());
    // The arguments `kernels.rs` passes: hyper-parameters rounded to the dtype, decay iff wd != 0.
    let hyper = if T::DTYPE == DType::F32 {
        [lr, momentum, wd].map(|h| hex32(h as f32))
    } else {
        [lr, momentum, wd].map(hex64)
    };
    let mut scalars = vec![n.to_string()];
    scalars.extend(hyper);
    scalars.push(u8::from(wd != 0.0).to_string());
    let dir = tempfile::tempdir().unwrap();
    write_array(dir.path(), "w", &w);
    write_array(dir.path(), "v", &v);
    write_array(dir.path(), "g", &g);
    let kernel = kernel_name::<T>("sgd");
    for (launch, out) in run::<T>(driver, dir.path(), &kernel, n, &scalars, &["w", "v"]) {
        let what = format!("{n} elements, lr {lr} momentum {momentum} wd {wd}, {launch}");
        assert_same_bits(&w_cpu, &out[0], &format!("{what}: weights"));
        assert_same_bits(&v_cpu, &out[1], &format!("{what}: velocity"));
    }
}

#[test]
fn sgd_step_equals_the_cpu_op_bit_for_bit() {
    let Some(driver) = driver() else { return };
    let hypers = [
        (0.05, 0.9, 5e-4),
        (0.05, 0.9, 0.0),
        (0.25, 0.0, 1e-3),
        (1.0 / 3.0, 0.95, 0.001),
        (0.01, 0.9, 0.0),
    ];
    for (h, hyper) in hypers.into_iter().enumerate() {
        for n in [1, 192, 1001, 20_000] {
            sgd_case::<f32>(driver, n, hyper, 100 + h as u64);
            sgd_case::<f64>(driver, n, hyper, 200 + h as u64);
        }
    }
}
