//! SVG curves: per model, test accuracy and training loss per epoch, one line per learning rate
//! (and seed).

use std::path::Path;

use plotters::prelude::*;

use crate::summary::RunSummary;
use crate::ReportError;

/// Losses above this are drawn at the top edge: a diverged run's loss would flatten every other
/// curve (chance level is ln 10 = 2.30).
const LOSS_AXIS_CAP: f64 = 5.0;

fn plot_error(path: &Path, error: impl std::fmt::Display) -> ReportError {
    ReportError::Plot {
        path: path.to_path_buf(),
        message: error.to_string(),
    }
}

fn label(run: &RunSummary, several_seeds: bool) -> String {
    if several_seeds {
        format!("lr {} seed {}", run.lr, run.seed)
    } else {
        format!("lr {}", run.lr)
    }
}

/// Writes one model's figure (two panels side by side) to `path`. `runs` are that model's runs
/// with at least one finished epoch.
pub fn model_figure(path: &Path, model: &str, runs: &[&RunSummary]) -> Result<(), ReportError> {
    let max_epoch = runs
        .iter()
        .flat_map(|r| r.metrics.iter().map(|m| m.epoch))
        .max()
        .unwrap_or(1)
        .max(2) as f64;
    let finite_loss_max = runs
        .iter()
        .flat_map(|r| r.metrics.iter().map(|m| m.train_loss))
        .filter(|l| l.is_finite())
        .fold(0.0_f64, f64::max);
    let loss_top = (finite_loss_max * 1.05).clamp(0.1, LOSS_AXIS_CAP);
    let several_seeds = {
        let mut seeds: Vec<u64> = runs.iter().map(|r| r.seed).collect();
        seeds.sort_unstable();
        seeds.dedup();
        seeds.len() > 1
    };

    let root = SVGBackend::new(path, (1100, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
    let (left, right) = root.split_horizontally(550);
    let panels: [(&DrawingArea<_, _>, String, &str, f64); 2] = [
        (
            &left,
            format!("{model}: test accuracy"),
            "test accuracy (%)",
            100.0,
        ),
        (
            &right,
            format!("{model}: training loss"),
            "training loss",
            loss_top,
        ),
    ];
    for (panel_index, (area, caption, y_desc, y_top)) in panels.into_iter().enumerate() {
        let mut chart = ChartBuilder::on(area)
            .caption(caption, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(1.0..max_epoch, 0.0..y_top)
            .map_err(|e| plot_error(path, e))?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(y_desc)
            .draw()
            .map_err(|e| plot_error(path, e))?;
        for (i, run) in runs.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let points: Vec<(f64, f64)> = run
                .metrics
                .iter()
                .filter_map(|m| {
                    let y = if panel_index == 0 {
                        m.test_acc.map(|a| 100.0 * a)
                    } else {
                        let l = m.train_loss;
                        Some(if l.is_finite() { l.min(y_top) } else { y_top })
                    };
                    y.map(|y| (m.epoch as f64, y))
                })
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(|e| plot_error(path, e))?
                .label(label(run, several_seeds))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart
                .draw_series(
                    points
                        .into_iter()
                        .map(|p| Circle::new(p, 3, color.filled())),
                )
                .map_err(|e| plot_error(path, e))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| plot_error(path, e))?;
    }
    root.present().map_err(|e| plot_error(path, e))?;
    Ok(())
}
