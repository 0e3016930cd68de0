//! `exportd plan`: for each export, the next nominal runs, their windows and the paths they
//! would write. Suspended and invalid exports are shown as such.

use super::common::parse_time;
use super::{OutputFormat, Paths};
use crate::config::load;
use crate::pipeline::{RunPlan, format_options, part_extension};
use crate::template::RunVars;
use chrono::Utc;
use serde::Serialize;
use std::process::ExitCode;

/// Arguments of `plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Plan from this time instead of now (RFC 3339 or a date).
    #[arg(long)]
    at: Option<String>,
    /// Number of upcoming runs per export.
    #[arg(long, default_value_t = 3)]
    count: usize,
    /// Output for people or machines.
    #[arg(long, value_enum, default_value_t)]
    format: OutputFormat,
}

#[derive(Serialize)]
struct PlannedExport {
    name: String,
    state: &'static str,
    /// Against what the daemon accepted (state store): new, changed, unchanged, removed.
    change: &'static str,
    schedule: Option<String>,
    timezone: Option<String>,
    runs: Vec<PlannedRun>,
    errors: Vec<String>,
}

#[derive(Serialize)]
struct PlannedRun {
    nominal_local: String,
    nominal_utc: String,
    window_start: Option<String>,
    window_end: String,
    paths: Vec<String>,
}

/// Prints the plan.
pub fn cmd(paths: &Paths, args: Args) -> anyhow::Result<ExitCode> {
    let loaded = load::load(&paths.config, &paths.exports);
    // What the running daemon accepted; an unreadable state store just means "unknown".
    let accepted = crate::pipeline::Environment::from_loaded(&loaded)
        .open_state()
        .ok()
        .and_then(|s| s.accepted_revisions().ok())
        .unwrap_or_default();
    let change_of = |name: &str, revision: Option<&str>| match (accepted.get(name), revision) {
        (None, _) => "new",
        (Some(a), Some(r)) if a.sha256 == r => "unchanged",
        (Some(_), _) => "changed",
    };
    let at = match &args.at {
        Some(t) => parse_time(t)?,
        None => Utc::now(),
    };
    let mut planned = Vec::new();
    for spec in &loaded.specs {
        let tz = spec.timezone;
        let state = match (&spec.schedule, spec.def.suspend) {
            (_, true) => "suspended",
            (None, _) => "on demand",
            (Some(_), false) => "scheduled",
        };
        let mut runs = Vec::new();
        if let (Some(schedule), false) = (&spec.schedule, spec.def.suspend) {
            let extension = format_options(spec)
                .ok()
                .zip(crate::pipeline::compression(spec).ok())
                .map(|(f, c)| part_extension(&f, &c, spec.def.encrypt.is_some()))
                .unwrap_or_default();
            let mut after = at;
            for _ in 0..args.count {
                let Some(nominal) = schedule.next_after(after, tz) else {
                    break;
                };
                after = nominal;
                let plan = RunPlan::at(spec, nominal, None);
                let vars = RunVars::new(
                    &spec.name,
                    nominal,
                    plan.window.start,
                    plan.window.end,
                    tz,
                    1,
                    &extension,
                );
                let paths = spec
                    .destinations
                    .iter()
                    .filter_map(|d| {
                        let t = d.path.as_ref()?;
                        Some(match t.render(&vars) {
                            Ok(p) => format!("{}: {p}", d.def.kind_name()),
                            Err(e) => format!("{}: {e}", d.def.kind_name()),
                        })
                    })
                    .collect();
                runs.push(PlannedRun {
                    nominal_local: nominal.with_timezone(&tz).to_rfc3339(),
                    nominal_utc: nominal.to_rfc3339(),
                    window_start: plan.window.start.map(|s| s.with_timezone(&tz).to_rfc3339()),
                    window_end: plan.window.end.with_timezone(&tz).to_rfc3339(),
                    paths,
                });
            }
        }
        planned.push(PlannedExport {
            name: spec.name.clone(),
            state,
            change: change_of(&spec.name, Some(&spec.revision)),
            schedule: spec.schedule.as_ref().map(|s| s.describe()),
            timezone: Some(tz.name().to_owned()),
            runs,
            errors: Vec::new(),
        });
    }
    for (name, file) in &loaded.rejected {
        planned.push(PlannedExport {
            name: name.clone(),
            state: "invalid",
            change: change_of(name, None),
            schedule: None,
            timezone: None,
            runs: Vec::new(),
            errors: loaded
                .diagnostics
                .iter()
                .filter(|d| d.file == *file && d.is_error())
                .map(ToString::to_string)
                .collect(),
        });
    }
    for name in accepted.keys() {
        if !planned.iter().any(|p| &p.name == name) {
            planned.push(PlannedExport {
                name: name.clone(),
                state: "removed",
                change: "removed",
                schedule: None,
                timezone: None,
                runs: Vec::new(),
                errors: Vec::new(),
            });
        }
    }
    planned.sort_by(|a, b| a.name.cmp(&b.name));
    match args.format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&planned)?),
        OutputFormat::Text => {
            for p in &planned {
                let schedule = p.schedule.as_deref().unwrap_or("-");
                let tz = p.timezone.as_deref().unwrap_or("-");
                println!("{} [{}, {}] {schedule} ({tz})", p.name, p.state, p.change);
                for run in &p.runs {
                    println!(
                        "  {} (UTC {}): window {} .. {}",
                        run.nominal_local,
                        run.nominal_utc,
                        run.window_start.as_deref().unwrap_or("beginning"),
                        run.window_end
                    );
                    for path in &run.paths {
                        println!("    {path}");
                    }
                }
                for e in &p.errors {
                    println!("  {e}");
                }
            }
        }
    }
    Ok(super::exit_code(loaded.has_errors()))
}
