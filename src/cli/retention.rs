//! `exportd retention [--dry-run] [--export NAME]`: one retention sweep now, or with
//! `--dry-run` the list of what it would delete (or move to another storage class) and why.

use super::common::load_config;
use super::{OutputFormat, Paths};
use crate::pipeline::Environment;
use crate::retention::{self, Action, Guards, TransitionAction};
use anyhow::Context;
use std::process::ExitCode;

/// Arguments of `retention`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Check and list what would be deleted; delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Only this export's deliveries (also an export whose definition was removed).
    #[arg(long)]
    export: Option<String>,
    /// Output for people or machines.
    #[arg(long, value_enum, default_value_t)]
    format: OutputFormat,
}

/// Sweeps; exit 1 when an expired object had to be skipped (changed, or unreachable), or an
/// object due for its `transition` could not be moved.
pub fn cmd(paths: &Paths, args: Args) -> anyhow::Result<ExitCode> {
    let loaded = load_config(paths);
    let env = Environment::from_loaded(&loaded);
    let state = env.open_state().context("cannot open the state store")?;
    let report = retention::sweep(
        &loaded.specs,
        state.as_ref(),
        &env.deliver_context(),
        Guards::from(&loaded.daemon.retention),
        chrono::Utc::now(),
        retention::Scope {
            only: args.export.as_deref(),
            dry_run: args.dry_run,
            ..Default::default()
        },
    )?;
    let skipped = report.skipped().count();
    let not_moved = report.transitions_skipped().count();
    if args.format == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(super::exit_code(skipped + not_moved > 0));
    }
    if report.outcomes.is_empty() {
        println!("nothing has expired");
    }
    for o in &report.outcomes {
        let action = match &o.action {
            Action::Deleted => "deleted".to_owned(),
            Action::WouldDelete => "would delete".to_owned(),
            Action::AlreadyGone => "already gone (ledger entry dropped)".to_owned(),
            Action::LedgerOnly => "ledger entry expired".to_owned(),
            Action::Skipped(reason) => format!("SKIPPED: {reason}"),
        };
        println!(
            "{}  {}  {}  {} days  {} bytes  expired {}  {action}",
            o.export,
            o.destination,
            o.key,
            o.age_days,
            o.bytes,
            o.expired_at.to_rfc3339()
        );
    }
    let verb = if args.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    println!(
        "{verb} {} object(s); {skipped} skipped; {} kept by keep_last; {} left for the next sweep; {} run(s) expired",
        report.deleted(),
        report.kept_by_keep_last,
        report.deferred,
        report.expired_runs.len()
    );
    if !report.transitions.is_empty() || report.transitions_deferred > 0 {
        for t in &report.transitions {
            let action = match &t.action {
                TransitionAction::Transitioned => format!("transitioned to {}", t.storage_class),
                TransitionAction::WouldTransition => {
                    format!("would transition to {}", t.storage_class)
                }
                TransitionAction::Skipped(reason) => {
                    format!("NOT TRANSITIONED to {}: {reason}", t.storage_class)
                }
            };
            println!(
                "{}  {}  {}  {} days  {} bytes  {action}",
                t.export, t.destination, t.key, t.age_days, t.bytes
            );
        }
        let verb = if args.dry_run {
            "would transition"
        } else {
            "transitioned"
        };
        println!(
            "{verb} {} object(s) to another storage class; {not_moved} not transitioned; {} left for the next sweep",
            report.transitioned(),
            report.transitions_deferred
        );
    }
    Ok(super::exit_code(skipped + not_moved > 0))
}
