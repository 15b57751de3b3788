//! `metrics.csv`: one row per finished epoch under a fixed header.
//!
//! Written and read by hand rather than with a CSV crate: every cell is a number or empty, so no
//! quoting or escaping can arise and splitting on commas is the whole format.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use crate::error::{IoContext, Result, RunsError};
use crate::RunDir;

/// The exact header of `metrics.csv`.
pub const METRICS_HEADER: &str =
    "epoch,lr,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc,seconds,images_per_sec";

/// One row of `metrics.csv`: the state after one finished epoch. Accuracies are fractions in
/// [0, 1]; a `None` is an empty cell (the validation columns are empty without a validation
/// split, validation and test columns in an epoch that was not evaluated).
#[derive(Debug, Clone, PartialEq)]
pub struct EpochMetrics {
    /// 1-based epoch.
    pub epoch: usize,
    /// Learning rate used in this epoch.
    pub lr: f64,
    /// Mean training cross-entropy over the epoch (dropout on, weights changing); NaN or
    /// infinite in a diverged run.
    pub train_loss: f64,
    /// Training accuracy over the epoch.
    pub train_acc: f64,
    /// Validation loss, if there is a validation split and this epoch was evaluated.
    pub val_loss: Option<f64>,
    /// Validation accuracy.
    pub val_acc: Option<f64>,
    /// Test loss, if this epoch was evaluated.
    pub test_loss: Option<f64>,
    /// Test accuracy.
    pub test_acc: Option<f64>,
    /// Wall seconds of the epoch, training and evaluation.
    pub seconds: f64,
    /// Training images per second (training steps only).
    pub images_per_sec: f64,
}

impl EpochMetrics {
    /// Test error in percent after this epoch, `100 * (1 - test_acc)`.
    pub fn test_error(&self) -> Option<f64> {
        self.test_acc.map(|a| 100.0 * (1.0 - a))
    }

    /// Validation error in percent after this epoch (`None` without a validation split).
    pub fn val_error(&self) -> Option<f64> {
        self.val_acc.map(|a| 100.0 * (1.0 - a))
    }

    /// The CSV line (no newline); absent values are empty cells.
    pub fn csv_row(&self) -> String {
        let opt = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
        format!(
            "{},{},{},{},{},{},{},{},{},{}",
            self.epoch,
            self.lr,
            self.train_loss,
            self.train_acc,
            opt(self.val_loss),
            opt(self.val_acc),
            opt(self.test_loss),
            opt(self.test_acc),
            self.seconds,
            self.images_per_sec
        )
    }

    /// Parses a line written by [`EpochMetrics::csv_row`]; the message names the column.
    pub fn parse(line: &str) -> std::result::Result<Self, String> {
        let columns: Vec<&str> = METRICS_HEADER.split(',').collect();
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if cells.len() != columns.len() {
            return Err(format!("{} cells, expected {}", cells.len(), columns.len()));
        }
        let opt = |i: usize| -> std::result::Result<Option<f64>, String> {
            if cells[i].is_empty() {
                return Ok(None);
            }
            cells[i]
                .parse::<f64>()
                .map(Some)
                .map_err(|_| format!("column {} is {:?}, expected a number", columns[i], cells[i]))
        };
        let num = |i: usize| -> std::result::Result<f64, String> {
            opt(i)?.ok_or_else(|| format!("column {} is empty, expected a number", columns[i]))
        };
        Ok(EpochMetrics {
            epoch: cells[0]
                .parse()
                .map_err(|_| format!("column epoch is {:?}, expected a whole number", cells[0]))?,
            lr: num(1)?,
            train_loss: num(2)?,
            train_acc: num(3)?,
            val_loss: opt(4)?,
            val_acc: opt(5)?,
            test_loss: opt(6)?,
            test_acc: opt(7)?,
            seconds: num(8)?,
            images_per_sec: num(9)?,
        })
    }
}

/// Reads a `metrics.csv`, checking the header and every cell; the error names file, line and
/// column.
pub fn read_metrics(path: &Path) -> Result<Vec<EpochMetrics>> {
    let text = std::fs::read_to_string(path).at(path)?;
    let bad = |line: usize, message: String| RunsError::Metrics {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, header)) if header.trim() == METRICS_HEADER => {}
        Some((_, header)) => {
            return Err(bad(
                1,
                format!("header is {header:?}, expected {METRICS_HEADER:?}"),
            ))
        }
        None => {
            return Err(bad(
                1,
                format!("empty file, expected the header {METRICS_HEADER:?}"),
            ))
        }
    }
    lines
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| EpochMetrics::parse(line).map_err(|message| bad(index + 1, message)))
        .collect()
}

/// The epoch number of a data line, reading only its first cell (a line cut short by a killed
/// process still has it).
fn epoch_of(line: &str) -> Option<usize> {
    line.split(',').next()?.trim().parse().ok()
}

impl RunDir {
    /// Reads every row of `metrics.csv` (see [`read_metrics`]).
    pub fn read_metrics(&self) -> Result<Vec<EpochMetrics>> {
        read_metrics(&self.metrics_path())
    }

    /// Finished epochs: the data lines of `metrics.csv`, 0 when it is absent or unreadable.
    /// For progress displays; it does not check the rows.
    pub fn epochs_done(&self) -> usize {
        std::fs::read_to_string(self.metrics_path())
            .map(|t| t.lines().skip(1).filter(|l| !l.trim().is_empty()).count())
            .unwrap_or(0)
    }

    /// Makes `metrics.csv` hold the header and exactly the rows of epochs `1..=epochs_done`
    /// (dropping rows a killed process appended after its last checkpoint).
    pub fn truncate_metrics(&self, epochs_done: usize) -> Result<()> {
        let path = self.metrics_path();
        let mut out = format!("{METRICS_HEADER}\n");
        if path.exists() {
            let text = std::fs::read_to_string(&path).at(&path)?;
            for (index, line) in text.lines().enumerate().skip(1) {
                if line.trim().is_empty() {
                    continue;
                }
                let epoch = epoch_of(line).ok_or_else(|| RunsError::Metrics {
                    path: path.clone(),
                    line: index + 1,
                    message: format!("no epoch number in {line:?}"),
                })?;
                if epoch <= epochs_done {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        crate::files::write_atomic(&path, out.as_bytes())
    }

    /// Appends one row to `metrics.csv` (which [`RunDir::truncate_metrics`] created).
    pub fn append_metrics(&self, row: &EpochMetrics) -> Result<()> {
        let path = self.metrics_path();
        let mut file = OpenOptions::new().append(true).open(&path).at(&path)?;
        writeln!(file, "{}", row.csv_row()).at(&path)?;
        file.sync_data().at(&path)
    }
}

/// A learning rate as people write it: the shortest decimal of the value rounded to 13
/// significant digits, so that a scheduled rate such as 0.05 x 0.1 (stored as
/// 0.005000000000000001) reads `0.005`. For display only; files keep the exact value.
pub fn display_lr(lr: f64) -> String {
    let rounded: f64 = format!("{lr:.12e}").parse().unwrap_or(lr);
    format!("{rounded}")
}
