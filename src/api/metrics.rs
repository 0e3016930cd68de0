//! `/metrics`: the registry's counters in the Prometheus text exposition format (0.0.4).
//!
//! Written by hand because the format is small and the `prometheus` crates would pull in a
//! second metrics registry next to ours. The rules this follows:
//! - every family starts with `# HELP name text` and `# TYPE name kind`, and all its samples
//!   follow without interruption;
//! - label values escape `\` as `\\`, `"` as `\"` and newline as `\n` (HELP text escapes only
//!   `\` and newline);
//! - counters carry the `_total` suffix in their name; histograms expose cumulative
//!   `_bucket{le="…"}` series ending with `le="+Inf"` (equal to `_count`), then `_sum` and
//!   `_count`;
//! - floats print as Go's Prometheus client prints them (`1`, `0.25`, `+Inf`, `NaN`).
//!
//! Families that describe a fixed set (reload results, export conditions) always list every
//! member, zeros included, so an alert on `exportd_exports{condition="stalled"} > 0` has a
//! series to compare from the first scrape.

use crate::daemon::registry::{Condition, DURATION_BUCKETS, Registry};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every condition with its label value. The `match` in [`condition_label`] fails to compile
/// when a variant is added, which is the reminder to add it here too.
const CONDITIONS: [Condition; 5] = [
    Condition::Ready,
    Condition::Running,
    Condition::Suspended,
    Condition::OnDemand,
    Condition::Stalled,
];

/// The label value of a condition: the same snake_case name the JSON API uses.
fn condition_label(condition: Condition) -> &'static str {
    match condition {
        Condition::Ready => "ready",
        Condition::Running => "running",
        Condition::Suspended => "suspended",
        Condition::OnDemand => "on_demand",
        Condition::Stalled => "stalled",
    }
}

/// Renders the whole exposition from a snapshot of the registry and the ledger's costs.
pub fn render(registry: &Registry, costs: &[crate::cost::Cost]) -> String {
    let c = &registry.counters;
    let mut out = Exposition::default();

    out.family(
        "exportd_runs_total",
        "counter",
        "Runs finished since the daemon started, by export and final state.",
    );
    for ((export, state), n) in &c.runs {
        out.sample(
            "exportd_runs_total",
            &[("export", export), ("state", state)],
            *n as f64,
        );
    }

    out.family(
        "exportd_rows_total",
        "counter",
        "Rows exported since the daemon started, by export.",
    );
    for (export, n) in &c.rows {
        out.sample("exportd_rows_total", &[("export", export)], *n as f64);
    }

    out.family(
        "exportd_bytes_total",
        "counter",
        "Bytes written (all parts, after compression) since the daemon started, by export.",
    );
    for (export, n) in &c.bytes {
        out.sample("exportd_bytes_total", &[("export", export)], *n as f64);
    }

    out.family(
        "exportd_run_duration_seconds",
        "histogram",
        "Wall-clock duration of finished runs, by export.",
    );
    for (export, (buckets, sum, count)) in &c.durations {
        out.histogram(
            "exportd_run_duration_seconds",
            export,
            buckets,
            *sum,
            *count,
        );
    }

    out.family(
        "exportd_last_success_timestamp_seconds",
        "gauge",
        "Unix time at which the last successful run of the export finished.",
    );
    for (export, at) in &c.last_success {
        out.sample(
            "exportd_last_success_timestamp_seconds",
            &[("export", export)],
            unix_seconds(*at),
        );
    }

    out.family(
        "exportd_config_reloads_total",
        "counter",
        "Reconciles of the definitions: ok when every file was accepted, failed when at least one was rejected.",
    );
    out.sample(
        "exportd_config_reloads_total",
        &[("result", "ok")],
        c.reloads_ok as f64,
    );
    out.sample(
        "exportd_config_reloads_total",
        &[("result", "failed")],
        c.reloads_failed as f64,
    );

    out.family(
        "exportd_invalid_definitions",
        "gauge",
        "Definition files currently rejected (their last valid version, if any, keeps running).",
    );
    out.sample(
        "exportd_invalid_definitions",
        &[],
        registry.invalid_definitions() as f64,
    );

    out.family(
        "exportd_alerts_open",
        "gauge",
        "Alerts whose cause still holds, by cause (see GET /v1/alerts).",
    );
    let open = registry.alerts.snapshot().open;
    for cause in crate::alerts::Cause::ALL {
        let n = open.iter().filter(|a| a.cause == cause).count();
        out.sample(
            "exportd_alerts_open",
            &[("cause", cause.as_str())],
            n as f64,
        );
    }

    out.family(
        "exportd_exports",
        "gauge",
        "Exports known to the daemon, by condition.",
    );
    let mut by_condition: BTreeMap<&str, u64> = CONDITIONS
        .iter()
        .map(|c| (condition_label(*c), 0))
        .collect();
    for status in registry.exports.values() {
        *by_condition
            .entry(condition_label(status.condition))
            .or_default() += 1;
    }
    for condition in CONDITIONS {
        let label = condition_label(condition);
        out.sample(
            "exportd_exports",
            &[("condition", label)],
            by_condition[label] as f64,
        );
    }

    out.family(
        "exportd_retention_deleted_objects_total",
        "counter",
        "Delivered objects retention deleted since the daemon started.",
    );
    out.sample(
        "exportd_retention_deleted_objects_total",
        &[],
        c.retention_deleted as f64,
    );
    out.family(
        "exportd_retention_skipped_objects_total",
        "counter",
        "Expired objects retention left alone (changed since delivery, or unreachable) since the daemon started.",
    );
    out.sample(
        "exportd_retention_skipped_objects_total",
        &[],
        c.retention_skipped as f64,
    );

    type Gauge = fn(&crate::cost::Cost) -> f64;
    let cost_families: [(&str, &str, Gauge); 3] = [
        (
            "exportd_stored_bytes",
            "Bytes of delivered objects the ledger lists, by export and destination.",
            |c| c.stored_bytes as f64,
        ),
        (
            "exportd_transferred_bytes_this_month",
            "Bytes delivered since the start of the month (UTC), by export and destination.",
            |c| c.transferred_bytes_this_month as f64,
        ),
        (
            "exportd_estimated_monthly_cost_usd",
            "Estimated monthly storage cost plus this month's transfer, US dollars, by export and destination.",
            |c| c.storage_usd_per_month + c.transfer_usd_this_month,
        ),
    ];
    for (name, help, value) in cost_families {
        out.family(name, "gauge", help);
        for cost in costs {
            out.sample(
                name,
                &[("export", &cost.export), ("destination", &cost.destination)],
                value(cost),
            );
        }
    }

    if let Some(at) = registry.last_reload {
        out.family(
            "exportd_last_reload_timestamp_seconds",
            "gauge",
            "Unix time of the last reconcile of the definitions.",
        );
        out.sample(
            "exportd_last_reload_timestamp_seconds",
            &[],
            unix_seconds(at),
        );
    }
    if let Some(at) = registry.started_at {
        out.family(
            "exportd_start_time_seconds",
            "gauge",
            "Unix time at which the daemon started.",
        );
        out.sample("exportd_start_time_seconds", &[], unix_seconds(at));
    }

    out.text
}

fn unix_seconds(at: chrono::DateTime<chrono::Utc>) -> f64 {
    at.timestamp_millis() as f64 / 1000.0
}

/// The text being built. `write!` into a `String` cannot fail, hence the ignored results.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{key}=\"{}\"", escape_label(value));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", format_float(value));
    }

    /// One histogram series. The registry keeps per-bucket counts (the last slot is +Inf);
    /// Prometheus wants cumulative ones, so they are summed here.
    fn histogram(&mut self, name: &str, export: &str, buckets: &[u64], sum: f64, count: u64) {
        let bucket_name = format!("{name}_bucket");
        let mut cumulative = 0u64;
        for (i, bound) in DURATION_BUCKETS.iter().enumerate() {
            cumulative += buckets.get(i).copied().unwrap_or(0);
            let le = format_float(*bound);
            self.sample(
                &bucket_name,
                &[("export", export), ("le", &le)],
                cumulative as f64,
            );
        }
        // +Inf is the total by definition; using `count` keeps it consistent with `_count`
        // even if the bucket vector were shorter than expected.
        self.sample(
            &bucket_name,
            &[("export", export), ("le", "+Inf")],
            count as f64,
        );
        self.sample(&format!("{name}_sum"), &[("export", export)], sum);
        self.sample(
            &format!("{name}_count"),
            &[("export", export)],
            count as f64,
        );
    }
}

/// Escapes a label value: `\`, `"` and newline.
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes HELP text: `\` and newline only (quotes are literal there).
fn escape_help(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Formats a sample value or bucket bound the way Prometheus clients do: shortest round-trip
/// decimal (`1`, `0.25`, `3600`), and `+Inf`, `-Inf`, `NaN` for the special values.
fn format_float(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::registry::ExportStatus;
    use chrono::TimeZone;

    fn status(name: &str, condition: Condition) -> ExportStatus {
        ExportStatus::bare(name, format!("exports.d/{name}.toml").into(), condition)
    }

    #[test]
    fn escapes_label_values_and_help() {
        assert_eq!(escape_label(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
        assert_eq!(escape_help("a \"q\" \\ \n"), "a \"q\" \\\\ \\n");
    }

    #[test]
    fn formats_floats_like_prometheus_clients() {
        assert_eq!(format_float(1.0), "1");
        assert_eq!(format_float(0.25), "0.25");
        assert_eq!(format_float(3600.0), "3600");
        assert_eq!(format_float(f64::INFINITY), "+Inf");
        assert_eq!(format_float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_float(f64::NAN), "NaN");
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf() {
        let mut registry = Registry::default();
        for seconds in [0.5, 3.0, 3.0, 10_000.0] {
            registry
                .counters
                .run_finished("daily", "completed", 1, 1, seconds);
        }
        let text = render(&registry, &[]);
        let expected = [
            r#"exportd_run_duration_seconds_bucket{export="daily",le="1"} 1"#,
            r#"exportd_run_duration_seconds_bucket{export="daily",le="5"} 3"#,
            r#"exportd_run_duration_seconds_bucket{export="daily",le="15"} 3"#,
            r#"exportd_run_duration_seconds_bucket{export="daily",le="3600"} 3"#,
            r#"exportd_run_duration_seconds_bucket{export="daily",le="+Inf"} 4"#,
            r#"exportd_run_duration_seconds_sum{export="daily"} 10006.5"#,
            r#"exportd_run_duration_seconds_count{export="daily"} 4"#,
        ];
        for line in expected {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        // Buckets never decrease.
        let counts: Vec<f64> = text
            .lines()
            .filter(|l| l.starts_with("exportd_run_duration_seconds_bucket"))
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(counts.len(), DURATION_BUCKETS.len() + 1);
        assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
    }

    #[test]
    fn fixed_sets_are_always_listed_and_labels_escaped() {
        let mut registry = Registry::default();
        registry
            .exports
            .insert("a".into(), status("a", Condition::Ready));
        registry
            .exports
            .insert("b".into(), status("b", Condition::Stalled));
        registry
            .counters
            .run_finished("we\"ird\\name", "failed", 0, 0, 1.0);
        registry.counters.last_success.insert(
            "a".into(),
            chrono::Utc.with_ymd_and_hms(2024, 1, 15, 2, 0, 0).unwrap(),
        );
        let text = render(&registry, &[]);
        for line in [
            r#"exportd_config_reloads_total{result="ok"} 0"#,
            r#"exportd_config_reloads_total{result="failed"} 0"#,
            "exportd_invalid_definitions 1",
            r#"exportd_exports{condition="ready"} 1"#,
            r#"exportd_exports{condition="stalled"} 1"#,
            r#"exportd_exports{condition="on_demand"} 0"#,
            r#"exportd_runs_total{export="we\"ird\\name",state="failed"} 1"#,
            r#"exportd_last_success_timestamp_seconds{export="a"} 1705284000"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
    }
}
