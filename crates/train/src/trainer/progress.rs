//! Progress output on stderr: a bar on a terminal, lines otherwise, or nothing.

use std::io::IsTerminal;

use allconv_runs::EpochMetrics;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::options::Progress;

/// Progress output: a bar on a terminal, lines otherwise, or nothing.
pub(crate) struct Reporter {
    mode: Progress,
    terminal: bool,
}

impl Reporter {
    pub(crate) fn new(mode: Progress) -> Self {
        Reporter {
            mode,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    pub(crate) fn line(&self, text: &str) {
        if self.mode != Progress::Silent {
            allconv_runs::errln!("{text}");
        }
    }

    pub(crate) fn bar(&self, total: u64, position: u64, prefix: &str) -> ProgressBar {
        if self.mode != Progress::Auto || !self.terminal {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {percent}% {msg} ETA {eta}")
                .expect("valid progress template")
                .progress_chars("=> "),
        );
        bar.set_prefix(prefix.to_string());
        bar.set_position(position);
        bar.reset_eta();
        bar
    }

    pub(crate) fn epoch_line(
        &self,
        bar: &ProgressBar,
        model: &str,
        row: &EpochMetrics,
        epochs: usize,
        remaining_s: f64,
    ) {
        if self.mode == Progress::Silent {
            return;
        }
        let pct = |v: Option<f64>| {
            v.map(|a| format!("{:.2}%", 100.0 * a))
                .unwrap_or_else(|| "-".into())
        };
        let loss = |v: Option<f64>| v.map(|l| format!("{l:.4}")).unwrap_or_else(|| "-".into());
        let text = format!(
            "{model} epoch {}/{epochs} lr {} | train loss {:.4} acc {:.2}% | val loss {} acc {} | test loss {} acc {} | {:.1} s, {:.0} img/s, ETA {}",
            row.epoch,
            allconv_runs::display_lr(row.lr),
            row.train_loss,
            100.0 * row.train_acc,
            loss(row.val_loss),
            pct(row.val_acc),
            loss(row.test_loss),
            pct(row.test_acc),
            row.seconds,
            row.images_per_sec,
            format_duration(remaining_s)
        );
        if bar.is_hidden() {
            allconv_runs::errln!("{text}");
        } else {
            bar.println(text);
        }
    }
}

/// `1h02m03s`-style duration.
fn format_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m{:02}s", s / 3600, s % 3600 / 60, s % 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}
