//! Timing a measurement: warm-up calls, the device synchronised around the clock, and the rate
//! per wall-clock and per CPU second.

use std::time::Instant;

use candle_core::Device;

/// Untimed calls before a measurement: one on the CPU (first-touch page faults); three on
/// CUDA, where the first calls also choose the cuDNN algorithms and fill the allocator.
pub(super) fn warm_up_calls(device: &Device) -> usize {
    if device.is_cpu() {
        1
    } else {
        3
    }
}

/// Images per wall-clock second and per CPU-second of `work` over `iters` timed calls after
/// [`warm_up_calls`] untimed ones. The device is synchronised before the clock starts and
/// before it stops, so queued GPU work is counted.
pub(super) fn images_per_second(
    device: &Device,
    batch: usize,
    iters: usize,
    mut work: impl FnMut(usize) -> anyhow::Result<()>,
) -> anyhow::Result<Rate> {
    let warm_up = warm_up_calls(device);
    for i in 0..warm_up {
        work(i)?;
    }
    timed(device, batch, iters, |i| work(warm_up + i))
}

/// [`images_per_second`] without the warm-up: `iters` timed calls of `work`.
pub(super) fn timed(
    device: &Device,
    batch: usize,
    iters: usize,
    mut work: impl FnMut(usize) -> anyhow::Result<()>,
) -> anyhow::Result<Rate> {
    device.synchronize()?;
    let (start, cpu_start) = (Instant::now(), cpu_seconds());
    for i in 0..iters {
        work(i)?;
    }
    device.synchronize()?;
    let images = batch as f64 * iters as f64; // As floats: the product of two flags may overflow.
    Ok(Rate {
        wall: images / start.elapsed().as_secs_f64(),
        cpu: cpu_seconds()
            .zip(cpu_start)
            .map(|(end, start)| images / (end - start).max(1e-9)),
    })
}

/// A measured throughput.
pub(super) struct Rate {
    /// Images per wall-clock second.
    pub(super) wall: f64,
    /// Images per CPU-second of this process (Linux only): on a busy machine, where the
    /// wall-clock rate understates what an idle one gives, `cpu * cores` bounds it from above.
    cpu: Option<f64>,
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.cpu {
            Some(cpu) => write!(f, "{:.1} ({:.1}/cpu-s)", self.wall, cpu),
            None => write!(f, "{:.1}", self.wall),
        }
    }
}

/// User + system CPU seconds of this process (from `/proc/self/stat`; `None` elsewhere).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) start at field 3 ("state").
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    // Clock ticks are 100 per second on every Linux platform this runs on (USER_HZ).
    Some((user + system) / 100.0)
}
