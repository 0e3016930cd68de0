//! `exportd audit`: the audit log from the state store, newest first.

use super::common::load_config;
use super::{OutputFormat, Paths};
use crate::pipeline::Environment;
use crate::state::AuditFilter;
use anyhow::Context;
use std::process::ExitCode;

/// Arguments of `audit`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this actor (a token's name, `exportd`, `daemon`).
    #[arg(long)]
    actor: Option<String>,
    /// Only this action: api, delivery, retention, reload.
    #[arg(long)]
    action: Option<String>,
    /// Only entries at or after this time (RFC 3339 or a date).
    #[arg(long)]
    since: Option<String>,
    /// At most this many entries.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Output for people or machines.
    #[arg(long, value_enum, default_value_t)]
    format: OutputFormat,
}

/// Prints the entries.
pub fn cmd(paths: &Paths, args: Args) -> anyhow::Result<ExitCode> {
    let loaded = load_config(paths);
    let env = Environment::from_loaded(&loaded);
    let state = env.open_state().context("cannot open the state store")?;
    let since = args
        .since
        .as_deref()
        .map(super::common::parse_time)
        .transpose()?;
    let entries = state.audit_log(&AuditFilter {
        actor: args.actor,
        action: args.action,
        since,
        limit: Some(args.limit),
    })?;
    match args.format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&entries)?),
        OutputFormat::Text => {
            for e in &entries {
                println!(
                    "{}  {}{}  {}  {}  {}",
                    e.at.to_rfc3339(),
                    e.actor,
                    if e.role.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", e.role)
                    },
                    e.action,
                    e.target,
                    e.outcome
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
