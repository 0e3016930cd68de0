//! `exportd export NAME`: one run now, in the foreground.

use super::common::{find_export, load_config, parse_time};
use super::{OutputFormat, Paths};
use crate::pipeline::{Environment, RunPlan};
use crate::runner;
use crate::schedule::Window;
use crate::state::Trigger;
use anyhow::Context;
use chrono::Utc;
use std::io::IsTerminal;
use std::process::ExitCode;

/// Arguments of `export`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The export (its file stem in exports.d).
    name: String,
    /// Nominal time of the run (default: now); the window is derived from it.
    #[arg(long, conflicts_with_all = ["window_start", "window_end"])]
    at: Option<String>,
    /// Explicit window start (inclusive), instead of the definition's window.
    #[arg(long, requires = "window_end")]
    window_start: Option<String>,
    /// Explicit window end (exclusive).
    #[arg(long)]
    window_end: Option<String>,
    /// Show what would run (window, SQL, rows, size, cost) and write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Output for people or machines.
    #[arg(long, value_enum, default_value_t)]
    format: OutputFormat,
}

/// Runs the export once.
pub fn cmd(paths: &Paths, args: Args) -> anyhow::Result<ExitCode> {
    let loaded = load_config(paths);
    let spec = find_export(&loaded, &args.name)?;
    let env = Environment::from_loaded(&loaded);
    let nominal = match &args.at {
        Some(t) => parse_time(t)?,
        None => Utc::now(),
    };
    let mut plan = RunPlan::at(spec, nominal, None);
    if let Some(end) = &args.window_end {
        plan.window = Window {
            start: args.window_start.as_deref().map(parse_time).transpose()?,
            end: parse_time(end)?,
        };
    }
    let store = env.open_store().context("cannot open the lead store")?;
    if args.dry_run {
        return super::dry_run::print(&loaded, spec, &plan, store.as_ref(), args.format);
    }
    let state = env.open_state().context("cannot open the state store")?;
    let bar = progress_bar();
    let report = run_with_progress(
        &env,
        state.as_ref(),
        spec,
        &plan,
        Trigger::Manual,
        bar.as_ref(),
    );
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let report = report.with_context(|| format!("export `{}` failed", spec.name))?;
    match args.format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Text => {
            let secs = report.elapsed_ms as f64 / 1000.0;
            println!(
                "{}: {} rows, {} part(s), {} bytes in {:.2}s ({:.0} rows/s), window {} .. {}",
                report.export,
                report.rows,
                report.parts.len(),
                report.bytes,
                secs,
                report.rows as f64 / secs.max(0.001),
                plan.window
                    .start
                    .map(|s| s.to_rfc3339())
                    .unwrap_or_else(|| "beginning".into()),
                plan.window.end.to_rfc3339()
            );
            const SHOWN: usize = 10;
            for d in report.deliveries.iter().take(SHOWN) {
                println!("  {} {} ({} bytes)", d.destination, d.key, d.bytes);
            }
            if report.deliveries.len() > SHOWN {
                println!(
                    "  … and {} more (see the manifest)",
                    report.deliveries.len() - SHOWN
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs and records one plan, feeding the progress bar (if any).
pub(super) fn run_with_progress(
    env: &Environment,
    state: &dyn crate::state::StateStore,
    spec: &crate::config::ExportSpec,
    plan: &RunPlan,
    trigger: Trigger,
    bar: Option<&indicatif::ProgressBar>,
) -> Result<crate::pipeline::RunReport, crate::runner::Error> {
    let started = std::time::Instant::now();
    runner::execute(
        env,
        state,
        spec,
        plan,
        trigger,
        &mut |rows, bytes| {
            if let Some(bar) = bar {
                let secs = started.elapsed().as_secs_f64().max(0.001);
                bar.set_message(format!(
                    "{rows} rows, {:.1} MB, {:.0} rows/s",
                    bytes as f64 / 1e6,
                    rows as f64 / secs
                ));
            }
        },
        &mut |_, _| {},
    )
}

/// A spinner with rows, bytes and rate when stderr is a terminal.
pub(super) fn progress_bar() -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    Some(bar)
}
