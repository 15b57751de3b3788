//! The emitted scripts' text: what is requested, what is quoted, what runs.

use std::path::Path;

use allconv_runs::SlurmFolder;
use allconv_train::config::SlurmConfig;

use super::scripts::{array_script, report_script, submit_script, Paths};

fn paths_in<'a>(folder: &'a SlurmFolder, workdir: &'a Path) -> Paths<'a> {
    Paths {
        exe: Path::new("/opt/all conv/allconv"),
        workdir,
        folder,
        runs: Path::new("/home/o'brien/runs dir"),
    }
}

#[test]
fn a_cpu_script_requests_no_gpu_and_only_what_is_set() {
    let folder = SlurmFolder::new("/tmp/slurm dir");
    let workdir = Path::new("/home/o'brien/allconv");
    let script = array_script(
        &paths_in(&folder, workdir),
        &SlurmConfig::default(),
        false,
        48,
    );
    // 48 points: indices 0..=47.
    assert!(script.contains("#SBATCH --array=0-47\n"), "{script}");
    assert!(script.contains("#SBATCH --time=24:00:00\n"), "{script}");
    assert!(script.contains("#SBATCH --requeue\n"), "{script}");
    assert!(script.contains("#SBATCH --signal=B:USR1@120\n"), "{script}");
    for absent in [
        "gres",
        "gpus",
        "cpus-per-task",
        "partition",
        "account",
        "qos",
        "mem",
    ] {
        let option = format!("--{absent}");
        assert!(
            !script.contains(&option),
            "`{option}` in a default cpu script:\n{script}"
        );
    }
    assert!(
        script.contains("#SBATCH --output=\"/tmp/slurm dir/logs/%A_%a.out\"\n"),
        "{script}"
    );
    assert!(
        script.contains(r"cd '/home/o'\''brien/allconv'"),
        "{script}"
    );
    assert!(
        script.contains("if [ -z \"${ALLCONV:-}\" ]; then ALLCONV='/opt/all conv/allconv'; fi"),
        "{script}"
    );
    assert!(
        script.contains(r#"export RAYON_NUM_THREADS="${SLURM_CPUS_PER_TASK:-1}""#),
        "{script}"
    );
    assert!(
        script.contains(r#""$ALLCONV" train --lines --grid "$GRID" --index "$task" &"#),
        "{script}"
    );
    assert!(
        script.contains("trap on_usr1 USR1\ntrap on_term TERM\n"),
        "{script}"
    );
}

#[test]
fn resources_from_the_slurm_section_are_all_emitted() {
    let folder = SlurmFolder::new("/tmp/slurm");
    let slurm = SlurmConfig {
        partition: Some("gpu".into()),
        account: Some("proj42".into()),
        qos: Some("normal".into()),
        time: "2-00:00:00".into(),
        gpus_per_task: Some(2),
        cpus_per_task: Some(6),
        mem: Some("16G".into()),
        array_parallelism: Some(4),
        signal_lead: 300,
        max_stalled_requeues: 5,
        extra: vec!["--constraint=a100".into()],
    };
    let script = array_script(&paths_in(&folder, Path::new("/w")), &slurm, true, 3);
    for line in [
        "#SBATCH --array=0-2%4\n",
        "#SBATCH --partition=gpu\n",
        "#SBATCH --account=proj42\n",
        "#SBATCH --qos=normal\n",
        "#SBATCH --time=2-00:00:00\n",
        "#SBATCH --gres=gpu:2\n",
        "#SBATCH --cpus-per-task=6\n",
        "#SBATCH --mem=16G\n",
        "#SBATCH --signal=B:USR1@300\n",
        "#SBATCH --constraint=a100\n",
        "after 5 stops in a row",
    ] {
        assert!(script.contains(line), "no {line:?} in\n{script}");
    }
    // sbatch stops reading options at the first command: every #SBATCH line comes first.
    let first_command = script.find("set -euo").unwrap();
    assert!(script.rfind("#SBATCH").unwrap() < first_command, "{script}");
    // A cuda grid without gpus_per_task asks for one GPU.
    let one = array_script(
        &paths_in(&folder, Path::new("/w")),
        &SlurmConfig::default(),
        true,
        3,
    );
    assert!(one.contains("#SBATCH --gres=gpu:1\n"), "{one}");
}

#[test]
fn submit_chains_the_report_after_the_array_with_quoted_paths() {
    let folder = SlurmFolder::new("/tmp/slurm dir");
    let paths = paths_in(&folder, Path::new("/w"));
    let submit = submit_script(&paths);
    assert!(
        submit.contains("array=$(sbatch --parsable \"$@\" '/tmp/slurm dir/grid.sbatch')"),
        "{submit}"
    );
    assert!(
        submit.contains(
            "sbatch --parsable --dependency=afterany:\"$array\" '/tmp/slurm dir/report.sbatch'"
        ),
        "{submit}"
    );
    let report = report_script(&paths, &SlurmConfig::default());
    assert!(
        report.contains(r#""$ALLCONV" report --runs '/home/o'\''brien/runs dir'"#),
        "{report}"
    );
    assert!(
        report.contains("#SBATCH --output=\"/tmp/slurm dir/logs/report-%j.out\""),
        "{report}"
    );
}
