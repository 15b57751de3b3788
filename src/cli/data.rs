//! `allconv data` (not written yet).

/// Flags of `allconv data`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `allconv data`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("allconv data is not implemented yet")
}
