//! Where each child of a grid runs: `--jobs N` places with no GPU of their own, or, with
//! `--gpus 0,1,2,3 --jobs-per-gpu K`, K places on each of those GPUs.
//!
//! A child on a GPU sees only that GPU: it is started with `CUDA_VISIBLE_DEVICES` naming it, so
//! inside the child it is `cuda:0`, the device the grid's experiment must name (`training.device:
//! cuda` or `cuda:0`). The recorded configuration is then the same whichever GPU ran a point (a
//! run resumes on any of them); the GPU numbers are the parent's own (`cuda:N` as this process
//! sees them, so a `CUDA_VISIBLE_DEVICES` of the parent is honoured). A child that ends, whatever
//! its status, frees its place and the next point takes it: one failing run takes down no other.

use allconv_vocab::Device;

/// One child's place: on a GPU (its number as this process sees it), or on none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Slot {
    /// The GPU, or `None` (`--jobs`: the child uses the device of the experiment as it is).
    pub gpu: Option<usize>,
}

/// The places children run in, and how many of each are taken.
#[derive(Debug, Clone)]
pub(super) struct Slots {
    /// One lane per GPU (or one lane without a GPU), with its running children.
    lanes: Vec<(Option<usize>, usize)>,
    /// Children at once per lane.
    per_lane: usize,
}

impl Slots {
    /// `jobs` places on no particular GPU (`--jobs`).
    pub fn jobs(jobs: usize) -> Self {
        Slots {
            lanes: vec![(None, 0)],
            per_lane: jobs.max(1),
        }
    }

    /// `per_gpu` places on each of `gpus` (`--gpus`, `--jobs-per-gpu`).
    pub fn gpus(gpus: &[usize], per_gpu: usize) -> Self {
        Slots {
            lanes: gpus.iter().map(|&g| (Some(g), 0)).collect(),
            per_lane: per_gpu.max(1),
        }
    }

    /// A free place on the lane with the fewest running children (the first of equals), so runs
    /// spread over the GPUs before any GPU takes a second one; `None` when all are taken.
    pub fn take(&mut self) -> Option<Slot> {
        let per_lane = self.per_lane;
        let (gpu, running) = self
            .lanes
            .iter_mut()
            .filter(|(_, running)| *running < per_lane)
            .min_by_key(|(_, running)| *running)?;
        *running += 1;
        Some(Slot { gpu: *gpu })
    }

    /// Frees the place of a child that ended (done, diverged or failed alike).
    pub fn release(&mut self, slot: Slot) {
        if let Some((_, running)) = self.lanes.iter_mut().find(|(g, _)| *g == slot.gpu) {
            *running = running.saturating_sub(1);
        }
    }

    /// Children running on each lane, in the order the lanes were given.
    #[cfg(test)]
    pub fn running(&self) -> Vec<usize> {
        self.lanes.iter().map(|(_, running)| *running).collect()
    }
}

/// The `CUDA_VISIBLE_DEVICES` of a child on `gpu` (a number as the parent sees its GPUs): the
/// parent's own list's entry `gpu` when the parent has one (`parent`), else `gpu` itself.
pub(super) fn child_visible_devices(parent: Option<&str>, gpu: usize) -> Result<String, String> {
    match parent.map(str::trim).filter(|p| !p.is_empty()) {
        None => Ok(gpu.to_string()),
        Some(list) => {
            let visible: Vec<&str> = list.split(',').map(str::trim).collect();
            visible.get(gpu).map(|v| v.to_string()).ok_or_else(|| {
                format!(
                    "--gpus {gpu}: this process sees {} GPU(s) (CUDA_VISIBLE_DEVICES={list}), \
                     numbered 0 to {}",
                    visible.len(),
                    visible.len().saturating_sub(1)
                )
            })
        }
    }
}

/// Refuses `--gpus` where it cannot do what it says, naming the flag: on a CPU experiment, with
/// a device other than the child's `cuda:0`, with a GPU listed twice, or for a Slurm array
/// (whose tasks get their GPU from `--gres`).
pub(super) fn check_gpus(gpus: &[usize], device: Device, emit_slurm: bool) -> Result<(), String> {
    if gpus.is_empty() {
        return Ok(());
    }
    let list = gpus
        .iter()
        .map(|g| g.to_string())
        .collect::<Vec<_>>()
        .join(",");
    if emit_slurm {
        return Err(format!(
            "--gpus {list} spreads the runs of this machine over its GPUs; the tasks of \
             --emit-slurm each get their own GPU from Slurm (slurm.gpus_per_task): drop --gpus"
        ));
    }
    match device {
        Device::Cpu => Err(format!(
            "--gpus {list}: the experiment trains on the cpu (training.device); --gpus spreads \
             CUDA runs over GPUs: pass --device cuda as well, or drop --gpus"
        )),
        Device::Cuda(n) if n != 0 => Err(format!(
            "--gpus {list}: each run sees only its GPU, as cuda:0, but training.device is \
             cuda:{n}: pass --device cuda"
        )),
        Device::Cuda(_) => match gpus
            .iter()
            .enumerate()
            .find(|(i, g)| gpus[..*i].contains(g))
        {
            Some((_, g)) => Err(format!("--gpus {list}: GPU {g} is listed twice")),
            None => Ok(()),
        },
    }
}

/// Refuses a Slurm array on a GPU other than `cuda:0`: a task sees only the GPU Slurm gives it,
/// as `cuda:0`.
pub(super) fn check_slurm_device(device: Device) -> Result<(), String> {
    match device {
        Device::Cuda(n) if n != 0 => Err(format!(
            "training.device is cuda:{n}, but each Slurm task sees only the GPU it is given, as \
             cuda:0: emit the grid with --device cuda"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_spread_over_the_gpus_k_at_a_time() {
        let mut slots = Slots::gpus(&[0, 1, 2, 3], 2);
        // The first four runs take one GPU each, the next four a second place on each.
        let first: Vec<Option<usize>> = (0..4).map(|_| slots.take().unwrap().gpu).collect();
        assert_eq!(first, [Some(0), Some(1), Some(2), Some(3)]);
        let second: Vec<Option<usize>> = (0..4).map(|_| slots.take().unwrap().gpu).collect();
        assert_eq!(second, [Some(0), Some(1), Some(2), Some(3)]);
        assert_eq!(slots.take(), None, "8 places, all taken");
        assert_eq!(slots.running(), [2, 2, 2, 2]);
    }

    /// A grid as `run_grid` drives it: runs `0..total` started in order into free places.
    struct Simulated {
        slots: Slots,
        total: usize,
        /// The GPU of each run started so far, by run.
        placed: Vec<Option<usize>>,
        /// The running runs with their places.
        running: Vec<(usize, Slot)>,
    }

    impl Simulated {
        /// Starts runs while there are runs left and free places.
        fn fill(&mut self) {
            while self.placed.len() < self.total {
                let Some(slot) = self.slots.take() else { break };
                self.running.push((self.placed.len(), slot));
                self.placed.push(slot.gpu);
            }
        }

        /// Run `run` ends (done or failed alike), then the free places are filled.
        fn end(&mut self, run: usize) {
            let at = self.running.iter().position(|(r, _)| *r == run).unwrap();
            let (_, slot) = self.running.remove(at);
            self.slots.release(slot);
            self.fill();
        }
    }

    #[test]
    fn a_child_that_ends_frees_its_place_for_the_next_run() {
        // A grid of 7 runs on GPUs 5 and 7, 2 per GPU.
        let mut grid = Simulated {
            slots: Slots::gpus(&[5, 7], 2),
            total: 7,
            placed: Vec::new(),
            running: Vec::new(),
        };
        grid.fill();
        assert_eq!(grid.placed, [Some(5), Some(7), Some(5), Some(7)]);
        // Run 1 (on GPU 7) fails first: its place is the only free one, and run 4 takes it; the
        // other runs go on where they were.
        grid.end(1);
        assert_eq!(grid.placed[4], Some(7));
        assert_eq!(
            grid.slots.running(),
            [2, 2],
            "the failure took no other place"
        );
        let still: Vec<usize> = grid.running.iter().map(|(r, _)| *r).collect();
        assert_eq!(still, [0, 2, 3, 4]);
        // Everything else ends in turn: every run gets a place, never more than 2 on a GPU.
        while let Some(&(run, _)) = grid.running.first() {
            grid.end(run);
            assert!(grid.slots.running().iter().all(|&r| r <= 2));
        }
        assert_eq!(grid.placed.len(), 7, "every run was started");
        assert_eq!(grid.slots.running(), [0, 0]);
    }

    #[test]
    fn jobs_without_gpus_are_places_on_no_gpu() {
        let mut slots = Slots::jobs(3);
        let taken: Vec<Slot> = (0..3).map(|_| slots.take().unwrap()).collect();
        assert!(taken.iter().all(|s| s.gpu.is_none()));
        assert_eq!(slots.take(), None);
        slots.release(taken[0]);
        assert_eq!(slots.take(), Some(Slot { gpu: None }));
    }

    #[test]
    fn a_child_sees_its_gpu_by_the_parents_numbering() {
        assert_eq!(child_visible_devices(None, 2).unwrap(), "2");
        assert_eq!(child_visible_devices(Some(""), 3).unwrap(), "3");
        // The parent sees physical GPUs 4 and 6 as cuda:0 and cuda:1.
        assert_eq!(child_visible_devices(Some("4,6"), 1).unwrap(), "6");
        assert_eq!(
            child_visible_devices(Some("GPU-aa, GPU-bb"), 0).unwrap(),
            "GPU-aa"
        );
        let err = child_visible_devices(Some("4,6"), 2).unwrap_err();
        assert!(
            err.contains("--gpus 2") && err.contains("numbered 0 to 1"),
            "{err}"
        );
    }

    #[test]
    fn gpus_are_refused_where_they_cannot_apply_naming_the_flag() {
        assert!(check_gpus(&[], Device::Cpu, false).is_ok(), "not given");
        assert!(check_gpus(&[0, 1], Device::Cuda(0), false).is_ok());
        let err = check_gpus(&[0, 1], Device::Cpu, false).unwrap_err();
        assert!(
            err.starts_with("--gpus 0,1: ") && err.contains("cpu"),
            "{err}"
        );
        let err = check_gpus(&[0], Device::Cuda(2), false).unwrap_err();
        assert!(err.contains("--gpus 0") && err.contains("cuda:2"), "{err}");
        let err = check_gpus(&[1, 2, 1], Device::Cuda(0), false).unwrap_err();
        assert!(err.contains("GPU 1 is listed twice"), "{err}");
        let err = check_gpus(&[0], Device::Cuda(0), true).unwrap_err();
        assert!(
            err.contains("--gpus 0") && err.contains("--emit-slurm"),
            "{err}"
        );
    }

    #[test]
    fn a_slurm_array_runs_on_the_gpu_each_task_is_given() {
        assert!(check_slurm_device(Device::Cuda(0)).is_ok());
        assert!(check_slurm_device(Device::Cpu).is_ok());
        let err = check_slurm_device(Device::Cuda(1)).unwrap_err();
        assert!(
            err.contains("cuda:1") && err.contains("--device cuda"),
            "{err}"
        );
    }
}
