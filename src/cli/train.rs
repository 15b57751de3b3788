//! `allconv train` (not written yet).

/// Flags of `allconv train`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `allconv train`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("allconv train is not implemented yet")
}
