//! `allconv evaluate`: test error and per-class accuracy of a run folder's weights or of any
//! weights file with our (PyTorch-compatible) tensor names, so that weights trained elsewhere
//! can be checked against our numbers and ours elsewhere.

use allconv_cifar::Order;
use allconv_models::Mode;
use allconv_runs::outln;
use anyhow::Context;
use candle_core::D;

use super::source::{self, Loaded, SourceArgs};

/// Flags of `allconv evaluate`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    source: SourceArgs,
    /// Images per forward pass.
    #[arg(long, default_value_t = 500)]
    batch_size: usize,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

/// What `evaluate` prints with `--json`.
#[derive(serde::Serialize)]
struct Report {
    model: String,
    weights: String,
    preprocessing: String,
    test_images: usize,
    /// In %, as `result.json` states errors.
    test_error: f64,
    /// Per class (10 for CIFAR-10, 100 or 20 for CIFAR-100): fraction of its test images
    /// classified correctly (`null` without any).
    class_accuracy: Vec<Option<f64>>,
}

/// Runs `allconv evaluate`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.batch_size == 0 {
        anyhow::bail!("--batch-size must be at least 1");
    }
    let loaded = args.source.load()?;
    let data = source::prepare_test(&loaded.experiment, &source::raw_data(&loaded.experiment)?)?;
    let test = &data.test;
    if test.is_empty() {
        anyhow::bail!("the test split is empty (data.test_subset = 0?)");
    }
    if loaded.device.is_cpu() {
        allconv_train::memory::check_cpu_batch(
            &loaded.spec,
            args.batch_size.min(test.len()),
            "--batch-size",
        )
        .map_err(anyhow::Error::msg)?;
    }
    let counts = class_counts(&loaded, test, args.batch_size)?;
    let report = Report::new(&loaded, &counts);
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&report).context("writing the report as JSON")?
        );
        return Ok(());
    }
    print_table(&report, &loaded.class_names, &counts.total);
    Ok(())
}

/// Per class: its test images, and how many of them the network classified correctly.
struct ClassCounts {
    correct: Vec<usize>,
    total: Vec<usize>,
}

/// Classifies the test images in batches of `batch_size` and counts per class.
fn class_counts(
    loaded: &Loaded,
    test: &allconv_cifar::Split,
    batch_size: usize,
) -> anyhow::Result<ClassCounts> {
    let classes = loaded.class_names.len();
    let mut counts = ClassCounts {
        correct: vec![0; classes],
        total: vec![0; classes],
    };
    let batches =
        allconv_cifar::batches(test, batch_size, Order::Sequential, true, &loaded.device)?;
    for batch in batches {
        let (x, y) = batch?;
        let logits = loaded.net.forward(&x, Mode::Eval)?;
        let predicted = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
        let labels = y.to_vec1::<u32>()?;
        for (p, l) in predicted.into_iter().zip(labels) {
            let l = l as usize;
            anyhow::ensure!(
                l < classes,
                "test label {l} outside the {classes} classes of {}",
                loaded.experiment.data.kind().name()
            );
            counts.total[l] += 1;
            counts.correct[l] += usize::from(p as usize == l);
        }
    }
    Ok(counts)
}

impl Report {
    /// The report of `loaded`'s network with `counts`.
    fn new(loaded: &Loaded, counts: &ClassCounts) -> Self {
        let n: usize = counts.total.iter().sum();
        let right: usize = counts.correct.iter().sum();
        Report {
            model: loaded.spec.name.clone(),
            weights: loaded.weights.display().to_string(),
            preprocessing: loaded.experiment.data.preprocessing.to_string(),
            test_images: n,
            test_error: 100.0 * (1.0 - right as f64 / n as f64),
            class_accuracy: counts
                .correct
                .iter()
                .zip(&counts.total)
                .map(|(&c, &t)| (t > 0).then(|| c as f64 / t as f64))
                .collect(),
        }
    }
}

/// The report as a table: what was evaluated, the test error, then one line per class with
/// its accuracy and its number of test images (`total`).
fn print_table(report: &Report, names: &[String], total: &[usize]) {
    outln!(
        "{} from {} ({} preprocessing), {} test images",
        report.model,
        report.weights,
        report.preprocessing,
        report.test_images
    );
    outln!("test error: {:.2} %", report.test_error);
    let width = names.iter().map(String::len).max().unwrap_or(0).max(10);
    let digits = (names.len() - 1).to_string().len();
    outln!("{:<w$}  accuracy  images", "class", w = digits + 1 + width);
    for (k, acc) in report.class_accuracy.iter().enumerate() {
        let acc = acc.map_or("-".to_string(), |a| format!("{:.2} %", 100.0 * a));
        outln!("{k:<digits$} {:<width$} {acc:>9} {:>7}", names[k], total[k]);
    }
}
