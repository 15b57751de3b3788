//! `allconv models` (not written yet).

/// Flags of `allconv models`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `allconv models`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("allconv models is not implemented yet")
}
