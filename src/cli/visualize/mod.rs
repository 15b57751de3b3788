//! `allconv visualize`: what a unit or class responds to, reconstructed in input space by
//! plain backpropagation, the deconvnet rule and guided backpropagation (docs/protocol.md,
//! "Visualising what the networks learned"). Writes PNG grids and an `index.json` saying what
//! every picture shows.

mod caption;
mod index;
mod inputs;
mod picture;
mod selection;

use allconv_runs::outln;
use std::path::PathBuf;

use allconv_cifar::{RawDataset, IMAGE_BYTES};
use allconv_models::{Network, ReluBackward, Target};
use anyhow::{bail, Context};
use candle_core::{Device, Tensor};
use serde_json::json;

use super::source::{self, Loaded, SourceArgs};
use index::{check_out, write_index};
use inputs::{preprocessed, read_png, test_pictures, Picture};
use picture::{Layout, Planes};
use selection::{parse_class, parse_images, parse_layer};

/// Flags of `allconv visualize`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    source: SourceArgs,
    /// Test images: `test:A..B` (indices A to B-1) or `test:I,J,...`.
    #[arg(long, default_value = "test:0..8", conflicts_with_all = ["image", "top_patches"])]
    images: String,
    /// A 32x32 RGB PNG instead of test images (repeat for several), preprocessed with the
    /// statistics fitted on the network's training data.
    #[arg(long, conflicts_with = "top_patches")]
    image: Vec<PathBuf>,
    /// The convolution of the target unit(s): conv1, conv2, ...
    #[arg(long)]
    layer: Option<String>,
    /// Target: this channel of --layer, at its largest spatial activation in each image.
    #[arg(long, requires = "layer", conflicts_with_all = ["class", "top_units", "top_patches"])]
    unit: Option<usize>,
    /// Target: the logit of this class (its number, from 0, or its name).
    #[arg(long, conflicts_with_all = ["layer", "top_units", "top_patches"])]
    class: Option<String>,
    /// Target: in each image, its N most active units of --layer (one row each).
    #[arg(long, requires = "layer", conflicts_with = "top_patches")]
    top_units: Option<usize>,
    /// Paper-style figure: for each of --units of --layer, the 9 images of the first --search
    /// test images where it is most active, then their guided reconstructions.
    #[arg(long, requires_all = ["layer", "units"])]
    top_patches: bool,
    /// With --top-patches: the units, e.g. 0,1,2.
    #[arg(long, value_delimiter = ',', requires = "top_patches")]
    units: Vec<usize>,
    /// With --top-patches: how many test images (from the first) to search.
    #[arg(long, default_value_t = 1000, requires = "top_patches")]
    search: usize,
    /// Backward rules, comma-separated, one column each.
    #[arg(
        long,
        value_delimiter = ',',
        num_args = 1..,
        value_parser = super::choices::relu_backward(),
        default_values = ["backprop", "deconvnet", "guided"]
    )]
    method: Vec<ReluBackward>,
    /// Output folder (created; refused if it holds files this command did not write).
    #[arg(long)]
    out: PathBuf,
    /// Pixels per image pixel in the PNG.
    #[arg(long, default_value_t = 3)]
    zoom: usize,
}

/// Runs `allconv visualize`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let conv = check_request(&args)?;
    // Checked now, created only when the first picture is written: a refused request leaves
    // no folder behind.
    check_out(&args.out)?;

    let loaded = args.source.load()?;
    if let Some(conv) = conv {
        let n = loaded.net.conv_count();
        if conv == 0 || conv > n {
            bail!(
                "--layer conv{conv}: {} has conv1..conv{n}",
                loaded.spec.name
            );
        }
    }
    let class = args
        .class
        .as_deref()
        .map(|c| parse_class(c, &loaded.class_names))
        .transpose()?;
    let data = source::raw_data(&loaded.experiment)?;
    let pictures = chosen_pictures(&args, &data, &loaded.class_names)?;
    let x = preprocessed(&loaded, &data, &pictures)?;
    let entry = if args.top_patches {
        let conv = conv.expect("clap requires --layer");
        top_patches(&args, &loaded, &x, &pictures, conv)?
    } else {
        let (file, rows) = target_rows(&args, &loaded.net, &x, pictures.len(), conv, class)?;
        rows_picture(&args, &loaded, &x, &pictures, &args.method, &file, &rows)?
    };
    write_index(&args.out, &loaded, entry)?;
    outln!("wrote {}", args.out.display());
    Ok(())
}

/// Refuses flags that cannot make a picture, before anything is loaded; returns the layer of
/// `--layer` (its convolution's number).
fn check_request(args: &Args) -> anyhow::Result<Option<usize>> {
    if args.zoom == 0 || args.zoom > 16 {
        bail!("--zoom must be in 1..=16, got {}", args.zoom);
    }
    if args.top_patches && args.search == 0 {
        bail!("--search must be at least 1 (test images to search)");
    }
    let conv = args.layer.as_deref().map(parse_layer).transpose()?;
    if !args.top_patches && args.unit.is_none() && args.class.is_none() && args.top_units.is_none()
    {
        bail!("say what to visualise: --layer convK --unit U, --class K, --layer convK --top-units N, or --top-patches");
    }
    if args.top_units == Some(0) {
        bail!("--top-units must be at least 1 (units shown per image), got 0");
    }
    Ok(conv)
}

/// The pictures the flags choose: the first `--search` test images (`--top-patches`), the PNGs
/// of `--image`, or the test images of `--images`.
fn chosen_pictures(
    args: &Args,
    data: &RawDataset,
    names: &[String],
) -> anyhow::Result<Vec<Picture>> {
    if args.top_patches {
        test_pictures(&data.test, 0..args.search.min(data.test.len()), names)
    } else if !args.image.is_empty() {
        args.image.iter().map(|p| read_png(p)).collect()
    } else {
        test_pictures(
            &data.test,
            parse_images(&args.images, data.test.len())?,
            names,
        )
    }
}

/// The picture file of a `--unit`, `--class` or `--top-units` request and its rows: one
/// `(picture, target)` each.
fn target_rows(
    args: &Args,
    net: &Network,
    x: &Tensor,
    pictures: usize,
    conv: Option<usize>,
    class: Option<usize>,
) -> anyhow::Result<(String, Vec<(usize, Target)>)> {
    Ok(if let Some(unit) = args.unit {
        let conv = conv.expect("clap requires --layer");
        let rows = (0..pictures)
            .map(|i| (i, Target::Unit { conv, unit }))
            .collect();
        (format!("conv{conv}-unit{unit}.png"), rows)
    } else if let Some(k) = class {
        let rows = (0..pictures).map(|i| (i, Target::Class(k))).collect();
        (format!("class-{k}.png"), rows)
    } else {
        let n = args.top_units.expect("one target is given");
        let conv = conv.expect("clap requires --layer");
        let rows = top_units(net, x, conv, n)?;
        (format!("conv{conv}-top{n}.png"), rows)
    })
}

/// Per image, its `n` units of `conv` with the largest (spatial maximum) activation.
fn top_units(
    net: &Network,
    x: &Tensor,
    conv: usize,
    n: usize,
) -> anyhow::Result<Vec<(usize, Target)>> {
    let maxima = unit_maxima(net, x, conv)?;
    let mut rows = Vec::new();
    for (i, m) in maxima.iter().enumerate() {
        let mut order: Vec<usize> = (0..m.len()).collect();
        order.sort_by(|&a, &b| m[b].total_cmp(&m[a]));
        rows.extend(
            order
                .into_iter()
                .take(n)
                .map(|unit| (i, Target::Unit { conv, unit })),
        );
    }
    Ok(rows)
}

/// `[image][unit]`: the largest activation of each unit of `conv` in each image.
fn unit_maxima(net: &Network, x: &Tensor, conv: usize) -> anyhow::Result<Vec<Vec<f32>>> {
    let mut out = Vec::new();
    for start in (0..x.dim(0)?).step_by(100) {
        let len = 100.min(x.dim(0)? - start);
        let traced =
            net.forward_traced(&x.narrow(0, start, len)?.detach(), ReluBackward::Backprop)?;
        let a = traced.conv_outputs[conv - 1].detach();
        out.extend(
            a.flatten_from(2)?
                .max(2)?
                .to_device(&Device::Cpu)?
                .to_vec2::<f32>()?,
        );
    }
    Ok(out)
}

/// The gradient of `target` for picture `i` by `rule`, min-max scaled.
fn reconstruction(
    net: &Network,
    x: &Tensor,
    i: usize,
    target: Target,
    rule: ReluBackward,
) -> anyhow::Result<Planes> {
    let g = net.input_gradient(&x.narrow(0, i, 1)?, target, rule)?;
    let g = g
        .flatten_all()?
        .to_dtype(candle_core::DType::F32)?
        .to_device(&Device::Cpu)?
        .to_vec1::<f32>()?;
    Ok(picture::min_max_scaled(&g))
}

fn planes(raw: &[u8]) -> Planes {
    let mut p = [0u8; IMAGE_BYTES];
    p.copy_from_slice(raw);
    p
}

/// One row per `(picture, target)`: the original, then one reconstruction per method.
fn rows_picture(
    args: &Args,
    loaded: &Loaded,
    x: &Tensor,
    pictures: &[Picture],
    methods: &[ReluBackward],
    file: &str,
    rows: &[(usize, Target)],
) -> anyhow::Result<serde_json::Value> {
    let names = &loaded.class_names;
    let mut cells = Vec::new();
    let mut described = Vec::new();
    for &(i, target) in rows {
        let mut row = vec![planes(&pictures[i].raw)];
        for &rule in methods {
            row.push(reconstruction(&loaded.net, x, i, target, rule)?);
        }
        cells.push(row);
        let peak = match target {
            Target::Unit { conv, unit } => {
                let peaks = loaded.net.unit_peaks(&x.narrow(0, i, 1)?, conv, unit)?;
                peaks.first().copied()
            }
            Target::Class(_) => None,
        };
        let mut entry = json!({
            "image": pictures[i].name,
            "label": pictures[i].label,
            "target": caption::describe(target, names, peak.as_ref()),
        });
        if let Some(peak) = &peak {
            entry["peak"] = caption::peak_fields(peak);
        }
        described.push(entry);
    }
    let layout = Layout {
        rows: rows.len(),
        cols: 1 + methods.len(),
        zoom: args.zoom,
        gap: 2,
    };
    let mut columns = vec!["original (before preprocessing)".to_string()];
    columns.extend(methods.iter().map(|m| m.name().to_string()));
    save(
        args,
        layout,
        &cells,
        file,
        json!({ "columns": columns, "rows": described }),
    )
}

/// For each unit, the 9 most activating pictures, then their guided reconstructions.
fn top_patches(
    args: &Args,
    loaded: &Loaded,
    x: &Tensor,
    pictures: &[Picture],
    conv: usize,
) -> anyhow::Result<serde_json::Value> {
    const TOP: usize = 9;
    let names = &loaded.class_names;
    let maxima = unit_maxima(&loaded.net, x, conv)?;
    let channels = maxima.first().map_or(0, Vec::len);
    let mut cells = Vec::new();
    let mut described = Vec::new();
    for &unit in &args.units {
        if unit >= channels {
            bail!(
                "--units: conv{conv} of {} has units 0..{channels}, not {unit}",
                loaded.spec.name
            );
        }
        let mut order: Vec<usize> = (0..pictures.len()).collect();
        order.sort_by(|&a, &b| maxima[b][unit].total_cmp(&maxima[a][unit]));
        order.truncate(TOP);
        let target = Target::Unit { conv, unit };
        let mut row: Vec<Planes> = order.iter().map(|&i| planes(&pictures[i].raw)).collect();
        for &i in &order {
            row.push(reconstruction(
                &loaded.net,
                x,
                i,
                target,
                ReluBackward::Guided,
            )?);
        }
        cells.push(row);
        let peaks = order
            .iter()
            .map(|&i| Ok(loaded.net.unit_peaks(&x.narrow(0, i, 1)?, conv, unit)?[0]))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let inactive: Vec<&str> = (order.iter().zip(&peaks))
            .filter(|(_, p)| !p.fired())
            .map(|(&i, _)| pictures[i].name.as_str())
            .collect();
        let mut target_text = caption::describe(target, names, None);
        if !inactive.is_empty() {
            target_text.push_str(&format!("; unit inactive in {}", inactive.join(", ")));
        }
        described.push(json!({
            "target": target_text,
            "images": order.iter().map(|&i| &pictures[i].name).collect::<Vec<_>>(),
            "activations": order.iter().map(|&i| maxima[i][unit]).collect::<Vec<_>>(),
            "peaks": peaks.iter().map(caption::peak_fields).collect::<Vec<_>>(),
        }));
    }
    let layout = Layout {
        rows: args.units.len(),
        cols: 2 * TOP,
        zoom: args.zoom,
        gap: 2,
    };
    let file = format!("conv{conv}-top-patches.png");
    let columns = format!(
        "columns 1-{TOP}: the {TOP} of the first {} test images where the unit is most active \
         (largest first); columns {}-{}: their guided-backpropagation reconstructions",
        pictures.len(),
        TOP + 1,
        2 * TOP
    );
    save(
        args,
        layout,
        &cells,
        &file,
        json!({ "columns": columns, "rows": described }),
    )
}

fn save(
    args: &Args,
    layout: Layout,
    cells: &[Vec<Planes>],
    file: &str,
    mut entry: serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let path = args.out.join(file);
    picture::compose(layout, cells)
        .save(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    let (w, h) = layout.size();
    entry["file"] = json!(file);
    entry["width"] = json!(w);
    entry["height"] = json!(h);
    entry["cell"] = json!(layout.cell());
    entry["gap"] = json!(layout.gap);
    Ok(entry)
}
