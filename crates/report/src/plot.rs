//! SVG curves: per model, test accuracy and training loss per epoch, one line per learning rate
//! (and seed).

use std::path::Path;

use plotters::coord::Shift;
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
    let axes = Axes::of(runs);
    let root = SVGBackend::new(path, (1100, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
    let (left, right) = root.split_horizontally(550);
    draw_panel(path, &left, model, Curve::TestAccuracy, &axes, runs)?;
    draw_panel(path, &right, model, Curve::TrainingLoss, &axes, runs)?;
    root.present().map_err(|e| plot_error(path, e))?;
    Ok(())
}

/// What both panels of a figure share.
struct Axes {
    /// The last epoch on the x axis (at least 2, so a single epoch still spans an axis).
    max_epoch: f64,
    /// The top of the loss axis: the largest finite loss plus 5%, within 0.1..=[`LOSS_AXIS_CAP`].
    loss_top: f64,
    /// Whether the runs have more than one seed (then the legend names the seed).
    several_seeds: bool,
}

impl Axes {
    fn of(runs: &[&RunSummary]) -> Axes {
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
        Axes {
            max_epoch,
            loss_top,
            several_seeds,
        }
    }
}

/// The curve a panel draws.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Curve {
    /// Test accuracy in percent (the left panel).
    TestAccuracy,
    /// Training loss, drawn at the top edge where it leaves the axis (the right panel).
    TrainingLoss,
}

/// Draws one panel: its axes, one line (with dots) per run, and the legend.
fn draw_panel(
    path: &Path,
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    model: &str,
    curve: Curve,
    axes: &Axes,
    runs: &[&RunSummary],
) -> Result<(), ReportError> {
    let (caption, y_desc, y_top) = match curve {
        Curve::TestAccuracy => (
            format!("{model}: test accuracy"),
            "test accuracy (%)",
            100.0,
        ),
        Curve::TrainingLoss => (
            format!("{model}: training loss"),
            "training loss",
            axes.loss_top,
        ),
    };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(50)
        .build_cartesian_2d(1.0..axes.max_epoch, 0.0..y_top)
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
                let y = if curve == Curve::TestAccuracy {
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
            .label(label(run, axes.several_seeds))
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
    Ok(())
}
