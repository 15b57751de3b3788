//! How a number, a run's epochs or its status is written in a table cell.

use crate::summary::{RunState, RunSummary, Stats};

/// Marks a Table 3 row whose finished runs did not all read the official CIFAR-10 files.
pub const NOT_OFFICIAL_MARK: &str = "†";

pub(super) fn error(value: f64) -> String {
    format!("{value:.2}")
}

/// An error in percent, or `–` where there is none.
pub(super) fn optional_error(value: Option<f64>) -> String {
    value.map(error).unwrap_or_else(|| "–".to_string())
}

/// A run's folder as code, or `–` for a grid point without one.
pub(super) fn folder_cell(run: &RunSummary) -> String {
    run.dir
        .as_ref()
        .map(|d| format!("`{}`", d.display()))
        .unwrap_or_else(|| "–".to_string())
}

pub(super) fn stats(s: &Stats) -> String {
    match s.std {
        Some(std) => format!("{:.2} ± {:.2} (n={})", s.mean, std, s.n),
        None => error(s.mean),
    }
}

/// A difference with its sign, from the two-decimal values shown beside it (so `9.08 - 9.08`
/// prints `+0.00`, not `-0.00` from a rounding residue).
pub(super) fn signed(ours: f64, paper: f64) -> String {
    let difference = (ours * 100.0).round() / 100.0 - paper;
    let rounded = (difference * 100.0).round() / 100.0;
    format!("{:+.2}", if rounded == 0.0 { 0.0 } else { rounded })
}

/// `n` in decimal with a comma between groups of three digits, as the report and the command
/// line print parameter counts: `1369738` -> `1,369,738`.
///
/// ```
/// assert_eq!(allconv_report::thousands(1_369_738), "1,369,738");
/// ```
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(super) fn epochs(run: &RunSummary) -> String {
    match run.epochs_planned {
        Some(n) => format!("{}/{}", run.epochs_done, n),
        None => format!("{}/?", run.epochs_done),
    }
}

/// Short status of one run, as in the tables: `done`, `diverged after 3/350 epochs (reason)`,
/// `partial 5/350 (running)` (a trainer holds its lock), `partial 5/350 (interrupted)`,
/// `missing`.
pub fn status_text(run: &RunSummary) -> String {
    match &run.state {
        RunState::Done => "done".to_string(),
        RunState::Diverged { reason } => match reason {
            Some(r) if !r.is_empty() => format!("diverged after {} epochs ({r})", epochs(run)),
            _ => format!("diverged after {} epochs", epochs(run)),
        },
        RunState::Ended { status, reason } => match reason {
            Some(r) if !r.is_empty() => format!("{status} after {} epochs ({r})", epochs(run)),
            _ => format!("{status} after {} epochs", epochs(run)),
        },
        RunState::Partial if run.running => format!("partial {} (running)", epochs(run)),
        RunState::Partial => format!("partial {} (interrupted)", epochs(run)),
        RunState::Missing => "missing".to_string(),
        RunState::Unreadable { .. } => "unreadable (see Runs that could not be read)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(1_369_738), "1,369,738");
        assert_eq!(thousands(839_242), "839,242");
        assert_eq!(thousands(12), "12");
    }
}
