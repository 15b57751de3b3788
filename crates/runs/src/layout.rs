//! Where every file of a runs root, a run folder, its checkpoint and a Slurm folder lives. The
//! only place in the project that spells these names.

use std::path::{Path, PathBuf};

/// Prefix of a run's learning-rate folder (`lr-0.05`).
pub const LR_PREFIX: &str = "lr-";
/// Prefix of a run's seed folder (`seed-0`).
pub const SEED_PREFIX: &str = "seed-";

const GRID_FILE: &str = "grid.json";
const REPORT_DIR: &str = "report";
const CONFIG_FILE: &str = "config.yaml";
const METRICS_FILE: &str = "metrics.csv";
const RESULT_FILE: &str = "result.json";
const CHECKPOINT_DIR: &str = "checkpoint";
const FINAL_WEIGHTS_FILE: &str = "weights.safetensors";
const LOCK_FILE: &str = "lock";
const GRID_LOCK_FILE: &str = "reproduce.lock";
const TRAIN_LOG_FILE: &str = "train.log";
const STATE_FILE: &str = "state.json";
const WEIGHTS_PREFIX: &str = "weights-";
const MOMENTUM_PREFIX: &str = "momentum-";
const SAFETENSORS_SUFFIX: &str = ".safetensors";
const SLURM_SCRIPT_FILE: &str = "grid.sbatch";
const SLURM_REPORT_SCRIPT_FILE: &str = "report.sbatch";
const SLURM_SUBMIT_FILE: &str = "submit.sh";
const SLURM_LOGS_DIR: &str = "logs";
const DEVICE_CHECK_DIR: &str = "device-check";

/// The run folder of one grid point below a runs root: `<runs>/<model>/lr-<lr>/seed-<seed>/`,
/// with the learning rate in its shortest exact decimal form (0.1 -> `lr-0.1`, 0.05 ->
/// `lr-0.05`).
pub fn run_dir(runs: &Path, model: &str, lr: f64, seed: u64) -> PathBuf {
    runs.join(model)
        .join(format!("{LR_PREFIX}{lr}"))
        .join(format!("{SEED_PREFIX}{seed}"))
}

/// A runs root: one experiment's run folders, its `grid.json` and its `report/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunsRoot {
    root: PathBuf,
}

impl RunsRoot {
    /// The runs root at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RunsRoot { root: root.into() }
    }
    /// The folder itself.
    pub fn path(&self) -> &Path {
        &self.root
    }
    /// `reproduce.lock`: held (flock) by the process running this root's grid.
    pub fn grid_lock_path(&self) -> PathBuf {
        self.root.join(GRID_LOCK_FILE)
    }
    /// The run folder of one grid point (see [`run_dir`]).
    pub fn run(&self, model: &str, lr: f64, seed: u64) -> RunDir {
        RunDir::new(run_dir(&self.root, model, lr, seed))
    }
    /// `grid.json`: the grid `allconv reproduce` is running here.
    pub fn grid_path(&self) -> PathBuf {
        self.root.join(GRID_FILE)
    }
    /// `report/`: where the report of these runs goes by default.
    pub fn report_dir(&self) -> PathBuf {
        self.root.join(REPORT_DIR)
    }
    /// `device-check/<key>.json`: a remembered `allconv check` (see [`crate::DeviceCheckRecord`]).
    pub fn device_check_path(&self, key: &str) -> PathBuf {
        self.root.join(DEVICE_CHECK_DIR).join(format!("{key}.json"))
    }
}

/// One run folder: the paths of its files. Reading and writing them is in the other modules
/// (metrics, result, lock), as methods of this type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// The run folder at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RunDir { root: root.into() }
    }
    /// The folder itself.
    pub fn path(&self) -> &Path {
        &self.root
    }
    /// `config.yaml`: resolved configuration and provenance.
    pub fn config_path(&self) -> PathBuf {
        self.root.join(CONFIG_FILE)
    }
    /// `metrics.csv`: one row per finished epoch.
    pub fn metrics_path(&self) -> PathBuf {
        self.root.join(METRICS_FILE)
    }
    /// `result.json`: written when the run ends.
    pub fn result_path(&self) -> PathBuf {
        self.root.join(RESULT_FILE)
    }
    /// `checkpoint/`.
    pub fn checkpoint_path(&self) -> PathBuf {
        self.root.join(CHECKPOINT_DIR)
    }
    /// The files of `checkpoint/`.
    pub fn checkpoint(&self) -> CheckpointFiles {
        CheckpointFiles::new(self.checkpoint_path())
    }
    /// `weights.safetensors`: the final weights, written when the run ends.
    pub fn final_weights_path(&self) -> PathBuf {
        self.root.join(FINAL_WEIGHTS_FILE)
    }
    /// `lock`: held while a process trains the folder.
    pub fn lock_path(&self) -> PathBuf {
        self.root.join(LOCK_FILE)
    }
    /// `train.log`: the trainer's output when `allconv reproduce` started it.
    pub fn train_log_path(&self) -> PathBuf {
        self.root.join(TRAIN_LOG_FILE)
    }
}

/// The files of a run's `checkpoint/` folder: `state.json` names the tensor files of the last
/// complete checkpoint, `weights-000k.safetensors` and `momentum-000k.safetensors` for epoch `k`
/// (`weights-000k-step-00000s.safetensors` after step `s` of the next epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointFiles {
    dir: PathBuf,
}

impl CheckpointFiles {
    /// The checkpoint folder `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        CheckpointFiles { dir: dir.into() }
    }
    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }
    /// `state.json`, written last: the trainer state and the names of the tensor files.
    pub fn state_path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }
    /// Name (relative to the folder) of the weights file of epoch `epoch`.
    pub fn weights_name(epoch: usize) -> String {
        format!("{WEIGHTS_PREFIX}{epoch:04}{SAFETENSORS_SUFFIX}")
    }
    /// Name (relative to the folder) of the momentum file of epoch `epoch`.
    pub fn momentum_name(epoch: usize) -> String {
        format!("{MOMENTUM_PREFIX}{epoch:04}{SAFETENSORS_SUFFIX}")
    }
    /// Name of the weights file after `step` steps of the epoch following epoch `epoch` (a
    /// checkpoint written part-way through an epoch); [`CheckpointFiles::weights_name`] for
    /// step 0.
    pub fn weights_name_at(epoch: usize, step: usize) -> String {
        Self::at_step(Self::weights_name(epoch), step)
    }
    /// Name of the momentum file matching [`CheckpointFiles::weights_name_at`].
    pub fn momentum_name_at(epoch: usize, step: usize) -> String {
        Self::at_step(Self::momentum_name(epoch), step)
    }
    fn at_step(name: String, step: usize) -> String {
        match (step, name.strip_suffix(SAFETENSORS_SUFFIX)) {
            (0, _) | (_, None) => name,
            (_, Some(stem)) => format!("{stem}-step-{step:06}{SAFETENSORS_SUFFIX}"),
        }
    }
    /// A file of the folder by its name.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
    /// Whether `name` is a tensor file of some checkpoint or a leftover temporary file: the
    /// files that may be deleted once a newer checkpoint is complete.
    pub fn is_replaceable(name: &str) -> bool {
        name.starts_with(WEIGHTS_PREFIX)
            || name.starts_with(MOMENTUM_PREFIX)
            || name.contains(crate::files::TEMP_MARKER)
    }
}

/// The folder `allconv reproduce --emit-slurm DIR` writes: `grid.json`, the array script
/// `grid.sbatch`, the report job `report.sbatch`, `submit.sh` (submits both) and `logs/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmFolder {
    dir: PathBuf,
}

impl SlurmFolder {
    /// The folder `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SlurmFolder { dir: dir.into() }
    }
    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }
    /// `grid.json`.
    pub fn grid_path(&self) -> PathBuf {
        self.dir.join(GRID_FILE)
    }
    /// `grid.sbatch`.
    pub fn script_path(&self) -> PathBuf {
        self.dir.join(SLURM_SCRIPT_FILE)
    }
    /// `report.sbatch`: the job that writes the report once the array has ended.
    pub fn report_script_path(&self) -> PathBuf {
        self.dir.join(SLURM_REPORT_SCRIPT_FILE)
    }
    /// `submit.sh`: submits the array, then the report job depending on it.
    pub fn submit_path(&self) -> PathBuf {
        self.dir.join(SLURM_SUBMIT_FILE)
    }
    /// `logs/`: one output file per array task.
    pub fn logs_path(&self) -> PathBuf {
        self.dir.join(SLURM_LOGS_DIR)
    }
}
