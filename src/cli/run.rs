//! `exportd run`: the daemon.

use super::Paths;
use crate::daemon::{self, Options};
use std::process::ExitCode;

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Fill an empty lead store with this many demo leads before starting (first-run demo).
    #[arg(long, value_name = "LEADS")]
    demo: Option<u64>,
}

/// Runs until SIGTERM.
pub fn cmd(paths: &Paths, args: Args) -> anyhow::Result<ExitCode> {
    if let Some(leads) = args.demo {
        fill_if_empty(paths, leads)?;
    }
    daemon::run(Options {
        config: paths.config.clone(),
        exports: paths.exports.clone(),
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Generates demo data ending now when the store has no leads yet.
fn fill_if_empty(paths: &Paths, leads: u64) -> anyhow::Result<()> {
    let (mut store, location) = super::demo::open_store(paths)?;
    if store.totals()?.0 > 0 {
        return Ok(());
    }
    let options = crate::store::demo::DemoOptions::new(leads, chrono::Utc::now());
    let written = crate::store::demo::generate(store.as_mut(), &options, &mut |_| {})?;
    eprintln!(
        "exportd: wrote {} demo leads and {} events to {location}",
        written.leads, written.events
    );
    Ok(())
}
