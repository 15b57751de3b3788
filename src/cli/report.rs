//! `allconv report` (not written yet).

/// Flags of `allconv report`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `allconv report`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("allconv report is not implemented yet")
}
