//! `exportd backfill NAME --from DATE --to DATE`: runs every nominal time of the export's
//! schedule in the range, oldest first, each with the window it would have had.

use super::Paths;
use super::common::{find_export, load_config, parse_time};
use super::export::{progress_bar, run_with_progress};
use crate::pipeline::{Environment, RunPlan};
use crate::state::Trigger;
use anyhow::{Context, bail};
use std::process::ExitCode;

/// Most runs one backfill starts, against typos such as `every 1m` over a year.
const MAX_RUNS: usize = 10_000;

/// Arguments of `backfill`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The export.
    name: String,
    /// First nominal time considered (inclusive), RFC 3339 or a date.
    #[arg(long)]
    from: String,
    /// Last nominal time considered (inclusive).
    #[arg(long)]
    to: String,
    /// List the runs and write nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Runs the backfill; exit 1 if any run failed (the others still run).
pub fn cmd(paths: &Paths, args: Args) -> anyhow::Result<ExitCode> {
    let loaded = load_config(paths);
    let spec = find_export(&loaded, &args.name)?;
    let Some(schedule) = &spec.schedule else {
        bail!(
            "export `{}` has no schedule, so it has no nominal times to backfill; run `exportd export {} --window-start … --window-end …` instead",
            spec.name,
            spec.name
        );
    };
    let from = parse_time(&args.from)?;
    let to = parse_time(&args.to)?;
    if to < from {
        bail!("--to ({to}) is before --from ({from})");
    }
    // `nominal_times` excludes its start, so begin one second earlier to include `from`.
    let nominals: Vec<_> = schedule
        .nominal_times(from - chrono::Duration::seconds(1), to, spec.timezone)
        .take(MAX_RUNS + 1)
        .collect();
    if nominals.len() > MAX_RUNS {
        bail!(
            "the range holds more than {MAX_RUNS} runs of `{}`; split it",
            spec.name
        );
    }
    let env = Environment::from_loaded(&loaded);
    let state = env.open_state().context("cannot open the state store")?;
    let mut failed = 0;
    for nominal in &nominals {
        // Each backfilled run gets the window its nominal time defines; since_last_run has no
        // history to follow here, so it starts where the previous backfilled window ended.
        let plan = RunPlan::at(spec, *nominal, None);
        let window = format!(
            "{} .. {}",
            plan.window
                .start
                .map(|s| s.to_rfc3339())
                .unwrap_or_else(|| "beginning".into()),
            plan.window.end.to_rfc3339()
        );
        if args.dry_run {
            println!("{}: window {window}", nominal.to_rfc3339());
            continue;
        }
        let bar = progress_bar();
        let result = run_with_progress(
            &env,
            state.as_ref(),
            spec,
            &plan,
            Trigger::Backfill,
            bar.as_ref(),
        );
        if let Some(bar) = &bar {
            bar.finish_and_clear();
        }
        match result {
            Ok(report) => println!(
                "{}: {} rows, {} part(s), window {window}",
                nominal.to_rfc3339(),
                report.rows,
                report.parts.len()
            ),
            Err(e) => {
                failed += 1;
                eprintln!("{}: failed: {e:#}", nominal.to_rfc3339());
            }
        }
    }
    println!("{} run(s), {failed} failed", nominals.len());
    Ok(super::exit_code(failed > 0))
}
