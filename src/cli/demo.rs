//! `exportd demo [--leads N]`: fills the lead store with synthetic data.

use super::Paths;
use std::process::ExitCode;

/// Arguments of `demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Number of leads to generate.
    #[arg(long, default_value_t = 10_000)]
    pub leads: u64,
}

/// Generates demo data.
pub fn cmd(_paths: &Paths, _args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("demo data generation is being written")
}
