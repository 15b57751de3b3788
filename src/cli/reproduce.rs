//! `allconv reproduce` (not written yet).

/// Flags of `allconv reproduce`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `allconv reproduce`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("allconv reproduce is not implemented yet")
}
