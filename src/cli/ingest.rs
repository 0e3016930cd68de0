//! `exportd ingest --leads FILE | --events FILE`: loads NDJSON into the lead store.

use super::Paths;
use std::process::ExitCode;

/// Arguments of `ingest`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Loads records.
pub fn cmd(_paths: &Paths, _args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("ingest is being written")
}
