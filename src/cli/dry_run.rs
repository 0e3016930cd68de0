//! `exportd export NAME --dry-run`: the window, the SQL, the rows, the estimated size and
//! what storing and transferring it would cost per month.

use super::OutputFormat;
use crate::config::ExportSpec;
use crate::config::load::Loaded;
use crate::pipeline::{self, Environment, RunPlan};
use crate::store::LeadStore;
use chrono::Duration;
use std::process::ExitCode;

const GB: f64 = 1e9;

/// Prints the dry run.
pub fn print(
    loaded: &Loaded,
    spec: &ExportSpec,
    plan: &RunPlan,
    store: &dyn LeadStore,
    format: OutputFormat,
) -> anyhow::Result<ExitCode> {
    let env = Environment::from_loaded(loaded);
    let estimate = pipeline::estimate(&env, spec, plan, store)?;
    let runs_per_month = spec
        .schedule
        .as_ref()
        .map(|s| {
            s.nominal_times(
                plan.nominal,
                plan.nominal + Duration::days(30),
                spec.timezone,
            )
            .take(50_000)
            .count() as f64
        })
        .unwrap_or(1.0);
    let monthly_bytes = estimate.bytes as f64 * runs_per_month;
    let defaults = &loaded.daemon.defaults;
    let destinations = spec.destinations.len().max(1) as f64;
    let storage_cost = monthly_bytes / GB * defaults.storage_price_per_gb_month * destinations;
    let transfer_cost = monthly_bytes / GB * defaults.transfer_price_per_gb * destinations;
    let window_start = plan.window.start.map(|s| s.to_rfc3339());
    match format {
        OutputFormat::Json => {
            let report = serde_json::json!({
                "export": spec.name,
                "nominal_time": plan.nominal.to_rfc3339(),
                "window": { "start": window_start, "end": plan.window.end.to_rfc3339() },
                "estimate": estimate,
                "runs_per_month": runs_per_month,
                "monthly_storage_cost_usd": storage_cost,
                "monthly_transfer_cost_usd": transfer_cost,
            });
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        OutputFormat::Text => {
            println!("export:   {}", spec.name);
            println!("nominal:  {}", plan.nominal.to_rfc3339());
            println!(
                "window:   {} .. {}",
                window_start.unwrap_or_else(|| "beginning".into()),
                plan.window.end.to_rfc3339()
            );
            println!("sql:      {}", estimate.sql);
            let params: Vec<String> = estimate.params.iter().map(ToString::to_string).collect();
            println!("params:   [{}]", params.join(", "));
            if let Some(r) = &estimate.residual_filter {
                println!("in Rust:  {r}");
            }
            println!("rows:     {}", estimate.rows);
            println!(
                "size:     ~{:.1} MB in {} part(s) ({:.1} bytes/row measured on {} rows)",
                estimate.bytes as f64 / 1e6,
                estimate.parts,
                estimate.bytes_per_row,
                estimate.sample_rows
            );
            println!(
                "monthly:  {runs_per_month:.0} run(s), ~{:.2} GB to {} destination(s): storage ${storage_cost:.2}/month at ${}/GB-month, transfer ${transfer_cost:.2} at ${}/GB",
                monthly_bytes / GB,
                destinations,
                defaults.storage_price_per_gb_month,
                defaults.transfer_price_per_gb
            );
            println!("nothing was written");
        }
    }
    Ok(ExitCode::SUCCESS)
}
