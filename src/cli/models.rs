//! `allconv models`: print the networks as the declarative description builds them.

use allconv_models::{spec, ModelOptions, INPUT_CHANNELS, INPUT_SIZE, MODEL_NAMES};
use allconv_report::thousands;
use allconv_runs::outln;
use anyhow::Context;

/// Flags of `allconv models`.
#[derive(clap::Args)]
pub struct Args {
    /// Models to print, comma-separated (case-insensitive); all 12 by default.
    #[arg(long, value_delimiter = ',', num_args = 1.., value_parser = super::choices::model())]
    models: Vec<String>,
    // The model names as arguments, before `--models` named them as everywhere else
    // (`super::deprecated`).
    #[arg(hide = true, value_parser = super::choices::model(), conflicts_with = "models")]
    deprecated_names: Vec<String>,
    /// Number of classes (10 for CIFAR-10; 100 fine or 20 coarse for CIFAR-100).
    #[arg(long, default_value_t = 10)]
    num_classes: usize,
    /// Leave out the ReLU after the final class-score convolution.
    #[arg(long)]
    no_final_relu: bool,
    /// Only the summary table (name, parameters, layers), not every layer.
    #[arg(long)]
    summary: bool,
}

/// Runs `allconv models`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let options = ModelOptions {
        num_classes: args.num_classes,
        final_relu: !args.no_final_relu,
        ..ModelOptions::default()
    };
    let names: Vec<&str> = match (&args.models[..], &args.deprecated_names[..]) {
        ([], []) => MODEL_NAMES.to_vec(),
        ([], names) | (names, _) => names.iter().map(String::as_str).collect(),
    };
    let specs = names
        .iter()
        .map(|name| spec(name, &options).with_context(|| format!("model '{name}'")))
        .collect::<anyhow::Result<Vec<_>>>()?;

    outln!(
        "{:<16} {:>12} {:>7} {:>6}",
        "model",
        "parameters",
        "layers",
        "convs"
    );
    for s in &specs {
        outln!(
            "{:<16} {:>12} {:>7} {:>6}",
            s.name,
            thousands(s.parameter_count() as u64),
            s.layers.len(),
            s.conv_count()
        );
    }
    if args.summary {
        return Ok(());
    }
    for s in &specs {
        outln!();
        outln!(
            "{} ({} parameters), input {INPUT_CHANNELS}x{INPUT_SIZE}x{INPUT_SIZE}",
            s.name,
            thousands(s.parameter_count() as u64)
        );
        for (i, (layer, [c, h, w])) in s.layers.iter().zip(s.shapes()).enumerate() {
            outln!("  {:>2}  {:<36} -> {c}x{h}x{w}", i + 1, layer.to_string());
        }
    }
    Ok(())
}
