//! The resource flags of `allconv reproduce --emit-slurm`, each the override of a `slurm.*` key.

use allconv_train::Setting;

/// Resource flags of `allconv reproduce --emit-slurm` (each overrides its `slurm.*` key).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct SlurmFlags {
    /// slurm.partition: `#SBATCH --partition`.
    #[arg(long, help_heading = "Slurm (with --emit-slurm)")]
    pub partition: Option<String>,
    /// slurm.account: `#SBATCH --account`.
    #[arg(long, help_heading = "Slurm (with --emit-slurm)")]
    pub account: Option<String>,
    /// slurm.qos: `#SBATCH --qos`.
    #[arg(long, help_heading = "Slurm (with --emit-slurm)")]
    pub qos: Option<String>,
    /// slurm.time: time limit of each task (e.g. 24:00:00).
    #[arg(long, help_heading = "Slurm (with --emit-slurm)")]
    pub time: Option<String>,
    /// slurm.gpus_per_task: GPUs per task (`--gres=gpu:N`; a cuda grid's default is 1).
    #[arg(long, help_heading = "Slurm (with --emit-slurm)")]
    pub gpus_per_task: Option<u32>,
    /// slurm.cpus_per_task: CPUs per task, also the trainer's thread count.
    #[arg(long, help_heading = "Slurm (with --emit-slurm)")]
    pub cpus_per_task: Option<u32>,
    /// slurm.mem: memory per task (e.g. 16G).
    #[arg(long, help_heading = "Slurm (with --emit-slurm)")]
    pub mem: Option<String>,
    /// slurm.array_parallelism: at most N tasks at once (`--array=...%N`).
    #[arg(long, help_heading = "Slurm (with --emit-slurm)")]
    pub array_parallelism: Option<u32>,
    /// slurm.max_stalled_requeues: a task fails after N stops in a row without progress.
    #[arg(long, help_heading = "Slurm (with --emit-slurm)")]
    pub max_stalled_requeues: Option<usize>,
    /// slurm.extra: one more `#SBATCH` option, e.g. `--sbatch=--constraint=a100` (repeatable).
    #[arg(
        long = "sbatch",
        value_name = "OPTION",
        help_heading = "Slurm (with --emit-slurm)"
    )]
    pub extra: Vec<String>,
    /// The allconv the tasks run (default: this one); a cuda grid needs one built with CUDA,
    /// which its `--version` says.
    #[arg(long, value_name = "PATH", help_heading = "Slurm (with --emit-slurm)")]
    pub slurm_binary: Option<std::path::PathBuf>,
}

impl SlurmFlags {
    /// The flags given, as spelled on the command line: they only shape the emitted Slurm jobs.
    pub fn given(&self) -> Vec<String> {
        let mut flags: Vec<String> = self
            .settings()
            .iter()
            .map(|s| match s.key.trim_start_matches("slurm.") {
                "extra" => "--sbatch".to_string(),
                key => format!("--{}", key.replace('_', "-")),
            })
            .collect();
        if self.slurm_binary.is_some() {
            flags.push("--slurm-binary".to_string());
        }
        flags
    }

    /// The overrides these flags make.
    pub fn settings(&self) -> Vec<Setting> {
        let mut settings = Vec::new();
        let text = [
            ("slurm.partition", &self.partition),
            ("slurm.account", &self.account),
            ("slurm.qos", &self.qos),
            ("slurm.time", &self.time),
            ("slurm.mem", &self.mem),
        ];
        for (key, value) in text {
            if let Some(v) = value {
                settings.push(Setting::from_flag(&flag_of(key), key, v.clone()));
            }
        }
        let counts = [
            ("slurm.gpus_per_task", self.gpus_per_task),
            ("slurm.cpus_per_task", self.cpus_per_task),
            ("slurm.array_parallelism", self.array_parallelism),
        ];
        for (key, value) in counts {
            if let Some(v) = value {
                settings.push(Setting::from_flag(&flag_of(key), key, v));
            }
        }
        if let Some(v) = self.max_stalled_requeues {
            settings.push(Setting::from_flag(
                "--max-stalled-requeues",
                "slurm.max_stalled_requeues",
                v,
            ));
        }
        if !self.extra.is_empty() {
            settings.push(Setting::from_flag(
                "--sbatch",
                "slurm.extra",
                self.extra.clone(),
            ));
        }
        settings
    }
}

/// The flag of a `slurm.` key: `slurm.cpus_per_task` is `--cpus-per-task`.
fn flag_of(key: &str) -> String {
    format!("--{}", key.trim_start_matches("slurm.").replace('_', "-"))
}
