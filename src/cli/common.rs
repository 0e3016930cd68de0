//! Shared pieces of the commands: loading the configuration, finding an export by name,
//! parsing times given on the command line.

use super::Paths;
use crate::config::ExportSpec;
use crate::config::diagnostic::did_you_mean;
use crate::config::load::{self, Loaded};
use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, Utc};

/// Loads exportd.toml and exports.d, printing diagnostics of files that failed to stderr.
pub fn load_config(paths: &Paths) -> Loaded {
    let loaded = load::load(&paths.config, &paths.exports);
    for d in &loaded.diagnostics {
        eprintln!("{d}");
    }
    loaded
}

/// The spec of a named export, or an error that says what exists.
pub fn find_export<'a>(loaded: &'a Loaded, name: &str) -> anyhow::Result<&'a ExportSpec> {
    if let Some(spec) = loaded.specs.iter().find(|s| s.name == name) {
        return Ok(spec);
    }
    if loaded.rejected.iter().any(|(n, _)| n == name) {
        bail!("export `{name}` is invalid: fix the errors above, then run again");
    }
    let names: Vec<&str> = loaded.specs.iter().map(|s| s.name.as_str()).collect();
    let hint = did_you_mean(name, names.iter().copied())
        .map(|h| format!("; {h}"))
        .unwrap_or_else(|| format!("; known exports: {}", names.join(", ")));
    bail!("no export named `{name}`{hint}")
}

/// Parses `2024-01-15`, `2024-01-15T02:00:00` (UTC) or RFC 3339.
pub fn parse_time(text: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S") {
        return Ok(t.and_utc());
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").with_context(|| {
        format!("invalid time `{text}`: use RFC 3339 (2024-01-15T02:00:00Z) or a date (2024-01-15)")
    })?;
    Ok(date.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
}
