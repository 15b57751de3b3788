//! `allconv bench` (not written yet).

/// Flags of `allconv bench`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `allconv bench`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("allconv bench is not implemented yet")
}
