//! `exportd demo [--leads N] [--seed S] [--days D] [--end TIME]`: fills the lead store with
//! realistic synthetic leads and events, so exports have something to export on a fresh install.
//!
//! The generator itself is `store::demo`; this file resolves the store from exportd.toml,
//! shows progress on a terminal and prints a one-line summary.

use super::Paths;
use crate::config::load;
use crate::store::{self, LeadStore, demo::DemoOptions};
use anyhow::{Context, bail};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Arguments of `demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Number of leads to generate (each comes with 1 to 4 events).
    #[arg(long, default_value_t = 10_000)]
    pub leads: u64,
    /// Seed of the random generator: the same seed (and --end) gives the same data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Spread creation times over this many days before the end.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub days: u32,
    /// End of the window (RFC 3339 or a date), default now; fix it for reproducible data.
    #[arg(long, value_name = "TIME")]
    pub end: Option<String>,
}

/// Generates demo data.
pub fn cmd(paths: &Paths, args: Args) -> anyhow::Result<ExitCode> {
    let end = match &args.end {
        Some(text) => super::common::parse_time(text)?,
        None => chrono::Utc::now(),
    };
    let (mut store, location) = open_store(paths)?;
    let options = DemoOptions {
        seed: args.seed,
        days: args.days,
        ..DemoOptions::new(args.leads, end)
    };
    let bar = indicatif::ProgressBar::new(args.leads).with_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} leads, {per_sec}, eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let written = store::demo::generate(store.as_mut(), &options, &mut |n| bar.set_position(n))
        .with_context(|| format!("cannot write demo data to {location}"))?;
    bar.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "wrote {} leads and {} events in {elapsed:.2}s ({:.0} leads/s) to {location}",
        written.leads,
        written.events,
        written.leads as f64 / elapsed.max(1e-9),
    );
    Ok(ExitCode::SUCCESS)
}

/// Opens the lead store exportd.toml names; returns it and where it is, for messages.
///
/// Shared with `ingest`. A broken exportd.toml stops the command rather than silently writing
/// to the default store, which would not be the one the daemon reads.
pub(super) fn open_store(paths: &Paths) -> anyhow::Result<(Box<dyn LeadStore>, String)> {
    let (daemon, diagnostics) = load::load_daemon(&paths.config);
    for d in &diagnostics {
        eprintln!("{d}");
    }
    if diagnostics.iter().any(|d| d.is_error()) {
        bail!(
            "{} is invalid: fix the errors above, then run again",
            paths.config.display()
        );
    }
    let base = load::base_dir(&paths.config);
    let url = &daemon.store.url;
    let location = match url.strip_prefix("sqlite://") {
        Some(p) if PathBuf::from(p).is_absolute() => p.to_owned(),
        Some(p) => base.join(p).display().to_string(),
        None => crate::postgres::redact(url),
    };
    let store = store::open(url, daemon.store.password.as_ref(), &base)
        .with_context(|| format!("cannot open the lead store {location}"))?;
    Ok((store, location))
}
