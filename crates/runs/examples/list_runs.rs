//! Lists the run folders below a runs root with their state, as an outside tool would: only
//! through allconv-runs, without the trainer.
//!
//! `cargo run -p allconv-runs --example list_runs -- runs/quick`

use allconv_runs::{scan, GridFile, RunsRoot};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = RunsRoot::new(std::env::args().nth(1).unwrap_or_else(|| "runs".into()));
    if let Ok(grid) = GridFile::load(&root.grid_path()) {
        println!(
            "{}: grid of {} points",
            root.path().display(),
            grid.points.len()
        );
    }
    for run in scan(root.path())? {
        match &run.read {
            Ok(record) => {
                let state = match &record.result {
                    Some(result) => result.summary(),
                    None => format!("open, {} epochs finished", record.metrics.len()),
                };
                let last_test = record
                    .metrics
                    .iter()
                    .rev()
                    .find_map(|m| m.test_error())
                    .map(|e| format!("{e:.2}%"))
                    .unwrap_or_else(|| "-".into());
                println!(
                    "{}: {state}; last test error {last_test}",
                    run.dir.path().display()
                );
            }
            Err(e) => println!("{}: unreadable: {e}", run.dir.path().display()),
        }
    }
    Ok(())
}
