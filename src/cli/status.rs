//! `exportd status`: every export with its state, schedule, next run and last run, read from
//! the definitions on disk and the state store (so it works whether or not the daemon runs).

use super::{OutputFormat, Paths};
use crate::config::load;
use crate::pipeline::Environment;
use crate::state::{RunFilter, RunRecord};
use anyhow::Context;
use chrono::Utc;
use serde::Serialize;
use std::process::ExitCode;

/// Arguments of `status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output for people or machines.
    #[arg(long, value_enum, default_value_t)]
    format: OutputFormat,
}

#[derive(Serialize)]
struct Row {
    export: String,
    state: String,
    schedule: String,
    next_run: Option<String>,
    last_run: Option<RunRecord>,
    errors: Vec<String>,
    /// Bytes stored and transferred per destination, with estimated costs.
    costs: Vec<crate::cost::Cost>,
}

/// Prints the table.
pub fn cmd(paths: &Paths, args: Args) -> anyhow::Result<ExitCode> {
    let loaded = load::load(&paths.config, &paths.exports);
    let env = Environment::from_loaded(&loaded);
    let state = env.open_state().context("cannot open the state store")?;
    let now = Utc::now();
    let last_run = |export: &str| -> anyhow::Result<Option<RunRecord>> {
        Ok(state
            .list_runs(&RunFilter {
                export: Some(export.to_owned()),
                state: None,
                limit: Some(1),
            })?
            .into_iter()
            .next())
    };
    let costs = |export: &str| -> anyhow::Result<Vec<crate::cost::Cost>> {
        Ok(crate::cost::costs(
            state.as_ref(),
            Some(export),
            env.prices,
            now,
        )?)
    };
    let mut rows = Vec::new();
    for spec in &loaded.specs {
        let next = spec
            .schedule
            .as_ref()
            .filter(|_| !spec.def.suspend)
            .and_then(|s| s.next_after(now, spec.timezone));
        rows.push(Row {
            export: spec.name.clone(),
            state: if spec.def.suspend {
                "suspended"
            } else {
                "valid"
            }
            .to_owned(),
            schedule: spec
                .schedule
                .as_ref()
                .map(|s| format!("{} ({})", s.describe(), spec.timezone.name()))
                .unwrap_or_else(|| "on demand".into()),
            next_run: next.map(|t| t.with_timezone(&spec.timezone).to_rfc3339()),
            last_run: last_run(&spec.name)?,
            errors: Vec::new(),
            costs: costs(&spec.name)?,
        });
    }
    for (name, file) in &loaded.rejected {
        rows.push(Row {
            export: name.clone(),
            state: "invalid".into(),
            schedule: "-".into(),
            next_run: None,
            last_run: last_run(name)?,
            costs: costs(name)?,
            errors: loaded
                .diagnostics
                .iter()
                .filter(|d| d.file == *file && d.is_error())
                .map(ToString::to_string)
                .collect(),
        });
    }
    rows.sort_by(|a, b| a.export.cmp(&b.export));
    match args.format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        OutputFormat::Text => {
            println!(
                "{:<28} {:<10} {:<44} {:<26} LAST RUN",
                "EXPORT", "STATE", "SCHEDULE", "NEXT RUN"
            );
            for row in &rows {
                let last = row
                    .last_run
                    .as_ref()
                    .map(|r| {
                        format!(
                            "{} {} ({} rows, {} bytes)",
                            r.state,
                            r.nominal.to_rfc3339(),
                            r.rows.unwrap_or(0),
                            r.bytes.unwrap_or(0)
                        )
                    })
                    .unwrap_or_else(|| "never".into());
                println!(
                    "{:<28} {:<10} {:<44} {:<26} {last}",
                    row.export,
                    row.state,
                    row.schedule,
                    row.next_run.as_deref().unwrap_or("-")
                );
                for e in &row.errors {
                    println!("    {e}");
                }
                for c in &row.costs {
                    println!(
                        "    {}: {} objects, {} bytes stored, {} bytes sent this month, ~${:.2}/month",
                        c.destination,
                        c.objects,
                        c.stored_bytes,
                        c.transferred_bytes_this_month,
                        c.storage_usd_per_month + c.transfer_usd_this_month
                    );
                }
            }
        }
    }
    Ok(super::exit_code(loaded.has_errors()))
}
