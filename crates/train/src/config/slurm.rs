//! `slurm:` the resources and requeue policy of the array job that `allconv reproduce
//! --emit-slurm` writes. Training itself never reads them, so they are not compared when a run
//! resumes: a resubmission may ask for other resources.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `slurm:` resources of each array task, and how requeues are bounded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlurmConfig {
    /// `--partition`; `null`: the cluster's default partition.
    pub partition: Option<String>,
    /// `--account`; `null`: the user's default account.
    pub account: Option<String>,
    /// `--qos`; `null`: the default QOS.
    pub qos: Option<String>,
    /// `--time` of each task (Slurm's formats, e.g. `24:00:00`, `2-00:00:00`, `90`).
    pub time: String,
    /// GPUs of each task (`--gres=gpu:N`); `null`: 1 for a `cuda` grid. A `cpu` grid requests
    /// none whatever is set here.
    pub gpus_per_task: Option<u32>,
    /// `--cpus-per-task`, also the trainer's thread count; `null`: no request (Slurm's default
    /// of one CPU, one thread).
    pub cpus_per_task: Option<u32>,
    /// `--mem` of each task (e.g. `16G`); `null`: the partition's default.
    pub mem: Option<String>,
    /// At most this many tasks at once (`--array=0-N%P`); `null`: no limit.
    pub array_parallelism: Option<u32>,
    /// Seconds before the time limit at which Slurm signals the task (`--signal=B:USR1@S`) to
    /// checkpoint at its current step and requeue itself.
    pub signal_lead: u32,
    /// A requeued task fails, saying why, once its run has been stopped this many times in a row
    /// without training a single step (e.g. a time limit shorter than the data loading plus the
    /// signal lead); 0: no limit.
    pub max_stalled_requeues: usize,
    /// Further `#SBATCH` options, one per line, written as given (e.g. `--constraint=a100`).
    pub extra: Vec<String>,
}

impl Default for SlurmConfig {
    fn default() -> Self {
        SlurmConfig {
            partition: None,
            account: None,
            qos: None,
            time: "24:00:00".into(),
            gpus_per_task: None,
            cpus_per_task: None,
            mem: None,
            array_parallelism: None,
            signal_lead: 120,
            max_stalled_requeues: 3,
            extra: Vec::new(),
        }
    }
}

impl SlurmConfig {
    /// Checks what would make the `#SBATCH` lines malformed; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let texts = [
            ("slurm.partition", self.partition.as_deref()),
            ("slurm.account", self.account.as_deref()),
            ("slurm.qos", self.qos.as_deref()),
            ("slurm.time", Some(self.time.as_str())),
            ("slurm.mem", self.mem.as_deref()),
        ];
        for (key, value) in texts {
            if let Some(v) = value {
                if v.is_empty()
                    || v.chars()
                        .any(|c| c.is_whitespace() || c == '"' || c == '\'')
                {
                    return Err(ConfigError::out_of_range(
                        key,
                        "one word without spaces or quotes",
                        format!("{v:?}"),
                    ));
                }
            }
        }
        if !is_slurm_time(&self.time) {
            return Err(ConfigError::inconsistent(
                "slurm.time",
                format!(
                    "slurm.time {:?} is not a Slurm time limit: write minutes (`90`), `MM:SS`, \
                     `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS` or `UNLIMITED` (sbatch --time)",
                    self.time
                ),
            ));
        }
        for (key, value) in [
            ("slurm.gpus_per_task", self.gpus_per_task),
            ("slurm.cpus_per_task", self.cpus_per_task),
            ("slurm.array_parallelism", self.array_parallelism),
        ] {
            if value == Some(0) {
                return Err(ConfigError::out_of_range(
                    key,
                    "at least 1 (leave it out for the default)",
                    0,
                ));
            }
        }
        for line in &self.extra {
            if !line.starts_with('-') || line.contains('\n') {
                return Err(ConfigError::inconsistent(
                    "slurm.extra",
                    format!(
                        "slurm.extra: each entry is one sbatch option starting with `-` (e.g. \
                         `--constraint=a100`), got {line:?}"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Whether `text` is one of the time formats sbatch's `--time` accepts: `minutes`,
/// `minutes:seconds`, `hours:minutes:seconds`, `days-hours`, `days-hours:minutes`,
/// `days-hours:minutes:seconds`, or no limit (`UNLIMITED`, `INFINITE`, any case).
fn is_slurm_time(text: &str) -> bool {
    if text.eq_ignore_ascii_case("unlimited") || text.eq_ignore_ascii_case("infinite") {
        return true;
    }
    // Nine digits at most: far beyond any limit, and never an overflow in Slurm's parser.
    let number = |s: &str| (1..=9).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    let fields_ok = |s: &str| {
        let fields: Vec<&str> = s.split(':').collect();
        (1..=3).contains(&fields.len()) && fields.iter().all(|f| number(f))
    };
    match text.split_once('-') {
        Some((days, clock)) => number(days) && fields_ok(clock),
        None => fields_ok(text),
    }
}

#[cfg(test)]
mod tests {
    use super::is_slurm_time;

    #[test]
    fn the_time_formats_of_sbatch_are_accepted_and_others_refused() {
        // The formats listed under --time in sbatch(1).
        for ok in [
            "90",
            "30:00",
            "24:00:00",
            "2-12",
            "2-12:30",
            "2-12:30:00",
            "UNLIMITED",
            "infinite",
            "0",
        ] {
            assert!(is_slurm_time(ok), "{ok}");
        }
        for bad in [
            "forever",
            "",
            "1:2:3:4",
            "2-",
            "-5",
            "1h",
            "24:00:",
            "2-1:2:3:4",
            "1.5",
            "1234567890",
        ] {
            assert!(!is_slurm_time(bad), "{bad}");
        }
    }
}
