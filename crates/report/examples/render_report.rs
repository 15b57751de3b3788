//! Renders the report of a runs folder (the run folders written by `allconv train` or
//! `allconv reproduce`) and prints the Table 3 comparison.
//!
//! ```sh
//! cargo run -p allconv-report --example render_report -- RUNS_DIR [OUT_DIR]
//! ```
//!
//! `OUT_DIR` defaults to `RUNS_DIR/report`. Unlike `allconv report`, this example hands the
//! report no settings or provenance (those come from `config.yaml`, which this crate does not
//! parse), so the report shows the first run's `config.yaml` verbatim instead.

use std::path::PathBuf;

use allconv_report::{write_report, ReportOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let runs_root = args
        .next()
        .ok_or("usage: render_report RUNS_DIR [OUT_DIR]")?;
    let out_dir = args.next().unwrap_or_else(|| runs_root.join("report"));
    let written = write_report(&ReportOptions {
        runs_root,
        out_dir,
        expected: Vec::new(),
        settings: Vec::new(),
        provenance: Vec::new(),
        data: Vec::new(),
        experiment: Default::default(),
    })?;
    println!("model            paper   ours    lr");
    for row in &written.summary.rows {
        let paper = row
            .paper
            .map_or("-".to_string(), |p| format!("{:.2}", p.test_error));
        let (ours, lr) = row.by_test.map_or(("-".to_string(), "-".to_string()), |s| {
            (format!("{:.2}", s.test.mean), s.lr.to_string())
        });
        println!("{:16} {paper:>6} {ours:>6}  {lr}", row.model);
    }
    println!("wrote {}", written.markdown.display());
    println!("      {}", written.runs_csv.display());
    println!("      {}", written.table3_csv.display());
    for figure in &written.figures {
        println!("      {}", figure.display());
    }
    Ok(())
}
