//! The memory a batch size asks for, checked before it is allocated: a request larger than the
//! machine is refused with an error naming the flag or key, never left to abort the process
//! when the allocation fails (Rust aborts on a failed allocation; it cannot be caught).

use allconv_models::ModelSpec;

/// Bytes of one image's activations in one forward pass of `spec`: its input and the output of
/// every layer, in f32. A training step holds at least these for the backward pass (and more:
/// their gradients, im2col buffers), so this is a lower bound on what a batch needs.
pub fn activation_bytes_per_image(spec: &ModelSpec) -> u64 {
    let input = (allconv_models::INPUT_CHANNELS * allconv_models::INPUT_SIZE.pow(2)) as u64;
    let outputs: u64 = spec
        .shapes()
        .iter()
        .map(|[c, h, w]| (c * h * w) as u64)
        .sum();
    4 * (input + outputs)
}

/// The machine's physical memory in bytes, where the operating system says.
fn physical_memory() -> Option<u64> {
    #[cfg(unix)]
    {
        // SAFETY: sysconf only reads system parameters.
        let (pages, page_size) = unsafe {
            (
                libc::sysconf(libc::_SC_PHYS_PAGES),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        if pages > 0 && page_size > 0 {
            return Some(pages as u64 * page_size as u64);
        }
    }
    None
}

/// A batch whose forward activations alone exceed the machine's physical memory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{what} {batch}: {model} on the CPU needs at least {:.1} GiB for the activations of {batch} \
     images, more than this machine's {:.1} GiB of memory; use a smaller batch",
    gib(*needed_bytes),
    gib(*memory_bytes)
)]
pub struct BatchTooLarge {
    /// The flag or key the batch size came from (`--batch`, `training.batch_size`).
    pub what: String,
    /// The batch size.
    pub batch: usize,
    /// The network's name.
    pub model: String,
    /// Bytes its activations need at least.
    pub needed_bytes: u64,
    /// The machine's physical memory in bytes.
    pub memory_bytes: u64,
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

/// Refuses `batch` images of `spec` on the CPU when even their forward activations
/// ([`activation_bytes_per_image`]) exceed the machine's physical memory; `what` names the flag
/// or key the batch size came from.
pub fn check_cpu_batch(spec: &ModelSpec, batch: usize, what: &str) -> Result<(), BatchTooLarge> {
    let Some(memory) = physical_memory() else {
        return Ok(());
    };
    let needed = activation_bytes_per_image(spec).saturating_mul(batch as u64);
    if needed > memory {
        return Err(BatchTooLarge {
            what: what.to_string(),
            batch,
            model: spec.name.clone(),
            needed_bytes: needed,
            memory_bytes: memory,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activations_of_a_known_network_add_up() {
        // Model-A as `allconv models` lists it (docs/protocol.md, Networks), by hand: input
        // 3x32x32 = 3,072; dropout 3,072; conv 5x5 96 pad 2: 96x32x32 = 98,304; 3x3/2 max-pool
        // pad 1: 96x16x16 = 24,576; dropout 24,576; conv 5x5 192 pad 2: 192x16x16 = 49,152;
        // pool: 192x8x8 = 12,288; dropout 12,288; conv 3x3 192 pad 0: 192x6x6 = 6,912; conv
        // 1x1 192: 6,912; conv 1x1 10: 360; global average pool: 10. Sum 241,522 floats.
        let spec =
            allconv_models::spec("model-a", &allconv_models::ModelOptions::default()).unwrap();
        assert_eq!(activation_bytes_per_image(&spec), 4 * 241_522);
    }

    #[test]
    fn a_batch_beyond_the_memory_is_refused_naming_the_flag() {
        let spec =
            allconv_models::spec("model-a", &allconv_models::ModelOptions::default()).unwrap();
        // 1e8 images need about 100 TB: more than any machine this runs on.
        let err = check_cpu_batch(&spec, 100_000_000, "--batch")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("--batch 100000000: "), "{err}");
        check_cpu_batch(&spec, 2, "--batch").unwrap();
    }
}
