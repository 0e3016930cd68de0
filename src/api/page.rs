//! The status page: `GET /` (every export) and `GET /runs/{export}/{run}` (one run), HTML
//! rendered on the server from the same registry and state store as the JSON API.
//!
//! No script, no external asset, no build step: one self-contained document per request, with
//! inline CSS and inline SVG charts, so it works from an air-gapped host and in a text browser.
//! States are written as words with a symbol (`✗ failed`), never shown by colour alone.
//! Download links are signed ([`crate::access::Access::sign`]) and only rendered for a caller
//! whose role may download that run, so a link copied out of the page works in a browser that
//! sends no token, and only until it expires.
//!
//! Every string that reaches the HTML goes through [`escape`].

use super::ApiState;
use super::dto::ApiError;
use super::guard::Caller;
use super::routes::{blocking, read};
use crate::cost::Cost;
use crate::daemon::registry::{Condition, ExportStatus};
use crate::state::{Delivery, RunFilter, RunRecord, RunState};
use axum::Extension;
use axum::extract::{Path, State};
use axum::response::Html;
use chrono::{DateTime, Utc};
use std::fmt::Write as _;

/// Runs drawn in each export's chart.
const CHART_RUNS: usize = 30;
/// Runs listed in each export's table.
const TABLE_RUNS: usize = 10;
/// Next nominal runs shown per export.
const NEXT_RUNS: usize = 3;
/// Failed runs listed under "Recent alerts".
const ALERTS: usize = 10;

/// Escapes text for HTML element content and double-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes one URL path segment (export names and run ids come from file names).
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// What one export looks like on the page, read from the state store in one go.
struct ExportView {
    status: ExportStatus,
    /// Newest first, at most [`CHART_RUNS`].
    runs: Vec<RunRecord>,
    /// Local files of the newest completed run, with the run.
    latest_files: Option<(RunRecord, Vec<Delivery>)>,
    costs: Vec<Cost>,
}

/// `GET /`.
pub async fn index(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Result<Html<String>, ApiError> {
    let (statuses, prices, last_reload) = {
        let registry = read(&state);
        (
            registry.exports.values().cloned().collect::<Vec<_>>(),
            registry.prices,
            registry.last_reload,
        )
    };
    let open_alerts = read(&state).alerts.snapshot().open;
    let store = state.state.clone();
    let now = Utc::now();
    let (views, alerts) = blocking(move || {
        let costs = crate::cost::costs(store.as_ref(), None, prices, now)?;
        let mut views = Vec::with_capacity(statuses.len());
        for status in statuses {
            let runs = store.list_runs(&RunFilter {
                export: Some(status.name.clone()),
                state: None,
                limit: Some(CHART_RUNS),
            })?;
            let latest_files = match runs.iter().find(|r| r.state == RunState::Completed) {
                Some(run) => {
                    let files = local(store.deliveries_for_run(&run.id)?);
                    Some((run.clone(), files))
                }
                None => None,
            };
            let costs = costs
                .iter()
                .filter(|c| c.export == status.name)
                .cloned()
                .collect();
            views.push(ExportView {
                status,
                runs,
                latest_files,
                costs,
            });
        }
        let alerts = store.list_runs(&RunFilter {
            export: None,
            state: Some(RunState::Failed),
            limit: Some(ALERTS),
        })?;
        Ok((views, alerts))
    })
    .await?;
    let mut body = String::new();
    let _ = write!(
        body,
        "<header><h1>exportd</h1><p>{} export(s) · page rendered {} · definitions reloaded {} · \
         <a href=\"/v1/exports\">JSON</a> · <a href=\"/metrics\">metrics</a></p></header>",
        views.len(),
        escape(&utc(now)),
        escape(&last_reload.map_or_else(|| "never".to_owned(), utc)),
    );
    body.push_str(&overview_table(&views));
    body.push_str(&alerts_section(&open_alerts, &alerts));
    for view in &views {
        body.push_str(&export_section(&state, &caller, view, now));
    }
    Ok(Html(document("exportd status", &body)))
}

/// `GET /runs/{export}/{run}`.
pub async fn run_page(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((export, run)): Path<(String, String)>,
) -> Result<Html<String>, ApiError> {
    let id = format!("{export}/{run}");
    let store = state.state.clone();
    let lookup = id.clone();
    let found = blocking(move || {
        let Some(run) = store.get_run(&lookup)? else {
            return Ok(None);
        };
        Ok(Some((run.clone(), store.deliveries_for_run(&lookup)?)))
    })
    .await?;
    let Some((record, deliveries)) = found else {
        return Err(ApiError::not_found(format!(
            "no run `{id}`: open / for the exports and their recent runs"
        )));
    };
    let zone = read(&state)
        .exports
        .get(&record.export)
        .and_then(|s| s.timezone.clone());
    let now = Utc::now();
    let links = download_allowed(&state, &caller, &record, now);
    let mut body = String::new();
    let _ = write!(
        body,
        "<p><a href=\"/\">← all exports</a></p><h1>Run {}</h1>",
        escape(&id)
    );
    let _ = write!(
        body,
        "<table class=\"kv\"><tr><th>Outcome</th><td>{}</td></tr>\
         <tr><th>Nominal time</th><td>{}</td></tr>\
         <tr><th>Window</th><td>{} → {}</td></tr>\
         <tr><th>Attempt</th><td>{} ({})</td></tr>\
         <tr><th>Started / finished</th><td>{} / {}</td></tr>\
         <tr><th>Duration</th><td>{}</td></tr>\
         <tr><th>Rows</th><td>{}</td></tr><tr><th>Bytes</th><td>{}</td></tr>\
         <tr><th>Parts</th><td>{}</td></tr>\
         <tr><th>Definition revision</th><td><code>{}</code></td></tr>",
        run_state_label(record.state),
        escape(&in_zone(record.nominal, zone.as_deref())),
        escape(&record.window_start.map_or_else(
            || "the beginning".to_owned(),
            |t| in_zone(t, zone.as_deref())
        )),
        escape(&in_zone(record.window_end, zone.as_deref())),
        record.attempt,
        escape(record.trigger.as_str()),
        escape(&record.started_at.map_or_else(|| "–".to_owned(), utc)),
        escape(&record.finished_at.map_or_else(|| "–".to_owned(), utc)),
        duration(&record),
        count(record.rows),
        record.bytes.map_or_else(|| "–".to_owned(), human_bytes),
        count(record.parts),
        escape(&record.revision),
    );
    if let Some(error) = &record.error {
        let _ = write!(
            body,
            "<tr><th>Error</th><td class=\"error\">{}</td></tr>",
            escape(error)
        );
    }
    body.push_str("</table><h2>Parts and deliveries</h2>");
    if deliveries.is_empty() {
        body.push_str("<p>Nothing was delivered.</p>");
    } else {
        body.push_str(
            "<table><thead><tr><th>Object</th><th>Destination</th><th>Bytes</th>\
             <th>SHA-256</th><th>Delivered</th><th>Expires</th></tr></thead><tbody>",
        );
        for d in &deliveries {
            let name = file_name(&d.key);
            let object = match (&links, d.destination.starts_with("local#")) {
                (Ok(()), true) => download_link(&state, &record.id, name, now),
                _ => escape(&d.key),
            };
            let _ = write!(
                body,
                "<tr><td>{object}</td><td>{}</td><td class=\"num\">{}</td><td><code>{}</code></td>\
                 <td>{}</td><td>{}</td></tr>",
                escape(&d.destination),
                human_bytes(d.bytes),
                escape(&d.sha256),
                escape(&utc(d.delivered_at)),
                escape(&d.expires_at.map_or_else(|| "never".to_owned(), utc)),
            );
        }
        body.push_str("</tbody></table>");
        if let Err(reason) = links {
            let _ = write!(
                body,
                "<p class=\"note\">No download links: {}</p>",
                escape(&reason)
            );
        }
    }
    Ok(Html(document(&format!("exportd · {id}"), &body)))
}

fn local(deliveries: Vec<Delivery>) -> Vec<Delivery> {
    deliveries
        .into_iter()
        .filter(|d| d.destination.starts_with("local#"))
        .collect()
}

fn file_name(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// Whether the caller may download `run`'s files; the reason when not.
fn download_allowed(
    state: &ApiState,
    caller: &Caller,
    run: &RunRecord,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let spec = read(state).specs.get(&run.export).cloned();
    state
        .access
        .may_download(&caller.0, spec.as_deref(), run, now)
        .map_err(|denied| denied.to_string())
}

/// `<a>` with a signed URL to one delivered file of `run_id`.
fn download_link(state: &ApiState, run_id: &str, name: &str, now: DateTime<Utc>) -> String {
    let (export, run) = run_id.split_once('/').unwrap_or((run_id, ""));
    let path = format!(
        "/v1/runs/{}/{}/files/{}",
        segment(export),
        segment(run),
        segment(name)
    );
    let (url, _) = state.access.sign(&path, now);
    format!(
        "<a class=\"download\" href=\"{}\" download>⤓ {}</a>",
        escape(&url),
        escape(name)
    )
}

/// The state of an export in one word with a symbol, from its condition and newest run.
fn export_state(status: &ExportStatus, newest: Option<&RunRecord>) -> &'static str {
    match status.condition {
        Condition::Stalled => "⚠ invalid",
        Condition::Running => "▶ running",
        Condition::Suspended => "‖ suspended",
        _ if newest.is_some_and(|r| r.state == RunState::Failed) => "✗ failed",
        Condition::OnDemand => "○ on demand",
        Condition::Ready => "✓ ready",
    }
}

fn run_state_label(state: RunState) -> &'static str {
    match state {
        RunState::Scheduled => "… scheduled",
        RunState::Running => "▶ running",
        RunState::Completed => "✓ completed",
        RunState::Failed => "✗ failed",
        RunState::Expired => "⌫ expired",
        RunState::Interrupted => "↯ interrupted",
    }
}

fn state_class(label: &str) -> &'static str {
    if label.contains("failed") || label.contains("invalid") {
        "bad"
    } else {
        "ok"
    }
}

fn overview_table(views: &[ExportView]) -> String {
    let mut out = String::from(
        "<h2>Exports</h2><table id=\"overview\"><thead><tr><th>Export</th><th>State</th>\
         <th>Schedule</th><th>Next run</th><th>Last run</th><th>Stored</th>\
         <th>Est. cost / month</th></tr></thead><tbody>",
    );
    for view in views {
        let s = &view.status;
        let label = export_state(s, view.runs.first());
        let stored: u64 = view.costs.iter().map(|c| c.stored_bytes).sum();
        // Folded from +0.0: an empty f64 `sum()` is -0.0, which prints as `$-0.0000`.
        let monthly = view
            .costs
            .iter()
            .fold(0.0, |total, c| total + c.storage_usd_per_month);
        let _ = write!(
            out,
            "<tr class=\"export\" data-export=\"{name}\"><td><a href=\"#export-{name}\">{name}</a></td>\
             <td class=\"state {class}\">{label}</td><td class=\"schedule\">{schedule}</td>\
             <td>{next}</td><td>{last}</td><td class=\"num\">{stored}</td>\
             <td class=\"num\">${monthly:.4}</td></tr>",
            name = escape(&s.name),
            class = state_class(label),
            schedule = escape(&schedule(s)),
            next = escape(
                &s.next_runs
                    .first()
                    .map_or_else(|| "–".to_owned(), |t| in_zone(*t, s.timezone.as_deref()))
            ),
            last = view.runs.first().map_or_else(
                || "never".to_owned(),
                |r| format!(
                    "{} {}",
                    run_state_label(r.state),
                    escape(&in_zone(r.nominal, s.timezone.as_deref()))
                )
            ),
            stored = human_bytes(stored),
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// Open alerts (causes that still hold, as `[alerts]` sends them), then recent failed runs.
fn alerts_section(open: &[crate::alerts::Alert], alerts: &[RunRecord]) -> String {
    let mut out = String::from("<h2>Recent alerts</h2>");
    if open.is_empty() {
        out.push_str("<p>No open alerts.</p>");
    } else {
        out.push_str("<ul class=\"alerts open\">");
        for alert in open {
            let _ = write!(
                out,
                "<li>⚠ <strong>{}</strong> {} since {} (sent {}×): {}</li>",
                escape(alert.cause.as_str()),
                escape(&alert.subject),
                escape(&utc(alert.opened_at)),
                alert.sends,
                escape(&alert.message),
            );
        }
        out.push_str("</ul>");
    }
    if alerts.is_empty() {
        out.push_str("<p>No failed runs.</p>");
        return out;
    }
    out.push_str("<ul class=\"alerts\">");
    for run in alerts {
        let _ = write!(
            out,
            "<li>✗ <a href=\"{}\">{}</a> failed at {}: {}</li>",
            escape(&run_url(&run.id)),
            escape(&run.id),
            escape(&run.finished_at.map_or_else(|| "–".to_owned(), utc)),
            escape(run.error.as_deref().unwrap_or("no error recorded")),
        );
    }
    out.push_str("</ul>");
    out
}

fn run_url(id: &str) -> String {
    let (export, run) = id.split_once('/').unwrap_or((id, ""));
    format!("/runs/{}/{}", segment(export), segment(run))
}

fn schedule(s: &ExportStatus) -> String {
    match (&s.schedule, &s.timezone) {
        (Some(schedule), Some(zone)) => format!("{schedule} ({zone})"),
        (Some(schedule), None) => schedule.clone(),
        (None, _) if s.condition == Condition::OnDemand => "on demand".to_owned(),
        (None, _) => "–".to_owned(),
    }
}

fn export_section(
    state: &ApiState,
    caller: &Caller,
    view: &ExportView,
    now: DateTime<Utc>,
) -> String {
    let s = &view.status;
    let zone = s.timezone.as_deref();
    let label = export_state(s, view.runs.first());
    let mut out = String::new();
    let _ = write!(
        out,
        "<section class=\"export\" id=\"export-{name}\"><h2>{name} <span class=\"state {class}\">{label}</span></h2>",
        name = escape(&s.name),
        class = state_class(label),
    );
    if let Some(description) = &s.description {
        let _ = write!(out, "<p>{}</p>", escape(description));
    }
    let _ = write!(
        out,
        "<table class=\"kv\"><tr><th>File</th><td><code>{}</code></td></tr>\
         <tr><th>Schedule</th><td>{}</td></tr><tr><th>Window</th><td>{}</td></tr>\
         <tr><th>Why</th><td>{}</td></tr><tr><th>Next runs</th><td>{}</td></tr></table>",
        escape(&s.file.display().to_string()),
        escape(&schedule(s)),
        escape(s.window.as_deref().unwrap_or("–")),
        escape(&s.reason),
        escape(
            &s.next_runs
                .iter()
                .take(NEXT_RUNS)
                .map(|t| in_zone(*t, zone))
                .collect::<Vec<_>>()
                .join(" · ")
        )
        .replace(" · ", "<br>"),
    );
    if !s.errors.is_empty() {
        out.push_str("<div class=\"errors\"><p><strong>⚠ The file on disk is invalid");
        if s.active_revision.is_some() {
            out.push_str(" (the last valid version keeps running)");
        }
        out.push_str(":</strong></p><ul>");
        for e in &s.errors {
            let _ = write!(out, "<li><code>{}</code></li>", escape(e));
        }
        out.push_str("</ul></div>");
    }
    if !view.costs.is_empty() {
        out.push_str(
            "<table><thead><tr><th>Destination</th><th>Objects</th><th>Stored</th>\
             <th>Est. storage / month</th><th>Transfer this month</th></tr></thead><tbody>",
        );
        for c in &view.costs {
            let _ = write!(
                out,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">${:.4}</td><td class=\"num\">{} (${:.4})</td></tr>",
                escape(&c.destination),
                c.objects,
                human_bytes(c.stored_bytes),
                c.storage_usd_per_month,
                human_bytes(c.transferred_bytes_this_month),
                c.transfer_usd_this_month,
            );
        }
        out.push_str("</tbody></table>");
    }
    if !view.runs.is_empty() {
        out.push_str(&chart(&s.name, &view.runs));
        out.push_str(&runs_table(&view.runs, zone));
    }
    if let Some((run, files)) = &view.latest_files {
        out.push_str(&latest_files(state, caller, run, files, now));
    }
    out.push_str("</section>");
    out
}

fn runs_table(runs: &[RunRecord], zone: Option<&str>) -> String {
    let mut out = String::from(
        "<table class=\"runs\"><thead><tr><th>Run</th><th>Nominal time</th><th>Outcome</th>\
         <th>Rows</th><th>Bytes</th><th>Duration</th><th>Error</th></tr></thead><tbody>",
    );
    for run in runs.iter().take(TABLE_RUNS) {
        let label = run_state_label(run.state);
        let _ = write!(
            out,
            "<tr class=\"run\" data-run=\"{id}\" data-state=\"{state}\"><td><a href=\"{url}\">{id}</a></td>\
             <td>{nominal}</td><td class=\"state {class}\">{label}</td><td class=\"num\">{rows}</td>\
             <td class=\"num\">{bytes}</td><td class=\"num\">{duration}</td><td class=\"error\">{error}</td></tr>",
            id = escape(&run.id),
            state = run.state.as_str(),
            url = escape(&run_url(&run.id)),
            nominal = escape(&in_zone(run.nominal, zone)),
            class = state_class(label),
            rows = count(run.rows),
            bytes = run.bytes.map_or_else(|| "–".to_owned(), human_bytes),
            duration = duration(run),
            error = escape(run.error.as_deref().unwrap_or("")),
        );
    }
    out.push_str("</tbody></table>");
    out
}

fn latest_files(
    state: &ApiState,
    caller: &Caller,
    run: &RunRecord,
    files: &[Delivery],
    now: DateTime<Utc>,
) -> String {
    let mut out = format!(
        "<h3>Delivered by the newest completed run, <a href=\"{}\">{}</a></h3>",
        escape(&run_url(&run.id)),
        escape(&run.id)
    );
    if files.is_empty() {
        out.push_str("<p>No local files (remote destinations are listed on the run's page).</p>");
        return out;
    }
    match download_allowed(state, caller, run, now) {
        Ok(()) => {
            out.push_str("<ul class=\"files\">");
            for f in files {
                let _ = write!(
                    out,
                    "<li>{} ({})</li>",
                    download_link(state, &run.id, file_name(&f.key), now),
                    human_bytes(f.bytes)
                );
            }
            out.push_str("</ul>");
        }
        Err(reason) => {
            let _ = write!(
                out,
                "<p class=\"note\">{} file(s); no download links: {}</p>",
                files.len(),
                escape(&reason)
            );
        }
    }
    out
}

/// Bars of rows and bytes per run, oldest on the left; a failed run is a cross on the axis.
fn chart(name: &str, runs_newest_first: &[RunRecord]) -> String {
    const WIDTH: usize = 600;
    const BAR: usize = WIDTH / CHART_RUNS;
    const HEIGHT: u64 = 40;
    let runs: Vec<&RunRecord> = runs_newest_first.iter().take(CHART_RUNS).rev().collect();
    let mut out = String::new();
    let _ = write!(
        out,
        "<figure class=\"chart\"><svg viewBox=\"0 0 {WIDTH} {}\" width=\"{WIDTH}\" height=\"{}\" \
         role=\"img\" aria-label=\"rows and bytes of the last {} runs of {}\">",
        2 * HEIGHT + 30,
        2 * HEIGHT + 30,
        runs.len(),
        escape(name)
    );
    for (row, (title, values)) in [
        ("rows", runs.iter().map(|r| r.rows).collect::<Vec<_>>()),
        ("bytes", runs.iter().map(|r| r.bytes).collect()),
    ]
    .into_iter()
    .enumerate()
    {
        let top = row as u64 * (HEIGHT + 15) + 12;
        let max = values.iter().flatten().copied().max().unwrap_or(0).max(1);
        let _ = write!(
            out,
            "<text x=\"0\" y=\"{}\" class=\"axis\">{title} (max {})</text>",
            top - 2,
            if title == "bytes" {
                human_bytes(max)
            } else {
                max.to_string()
            }
        );
        for (i, (run, value)) in runs.iter().zip(&values).enumerate() {
            let x = i * BAR;
            match value {
                Some(v) if run.state != RunState::Failed => {
                    let h = (v * HEIGHT).div_ceil(max).max(1);
                    let _ = write!(
                        out,
                        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{h}\"><title>{}: {v} {title}</title></rect>",
                        x + 1,
                        top + HEIGHT - h,
                        BAR - 2,
                        escape(&run.id)
                    );
                }
                _ => {
                    let _ = write!(
                        out,
                        "<text x=\"{}\" y=\"{}\" class=\"fail\">✗<title>{}: {}</title></text>",
                        x + 2,
                        top + HEIGHT,
                        escape(&run.id),
                        run.state.as_str()
                    );
                }
            }
        }
    }
    let _ = write!(
        out,
        "</svg><figcaption>Rows (top) and bytes (bottom) of the last {} runs, oldest left; ✗ marks a run without output.</figcaption></figure>",
        runs.len()
    );
    out
}

fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A time in the export's zone (`2024-01-15 02:00 CET`), or UTC when the zone is unknown.
fn in_zone(t: DateTime<Utc>, zone: Option<&str>) -> String {
    match zone.and_then(|z| z.parse::<chrono_tz::Tz>().ok()) {
        Some(tz) => t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string(),
        None => t.format("%Y-%m-%d %H:%M UTC").to_string(),
    }
}

fn duration(run: &RunRecord) -> String {
    match (run.started_at, run.finished_at) {
        (Some(start), Some(end)) => {
            let ms = (end - start).num_milliseconds().max(0);
            if ms < 60_000 {
                format!("{:.1} s", ms as f64 / 1000.0)
            } else {
                format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
            }
        }
        _ => "–".to_owned(),
    }
}

fn count(n: Option<u64>) -> String {
    n.map_or_else(|| "–".to_owned(), |n| n.to_string())
}

/// Bytes in binary units, one decimal (`1.5 MiB`).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The whole document: inline style readable in monochrome (states carry words and symbols).
fn document(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>",
        escape(title)
    )
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1rem auto;max-width:1200px;\
padding:0 1rem;color:#111;background:#fff}h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:1.5rem}\
table{border-collapse:collapse;margin:.5rem 0;width:100%}th,td{border:1px solid #999;padding:.2rem .4rem;\
text-align:left;vertical-align:top}th{background:#eee}.kv{width:auto}.kv th{width:12rem}\
.num{text-align:right;font-variant-numeric:tabular-nums}code{font-size:.9em;word-break:break-all}\
.state{font-weight:bold;white-space:nowrap}.bad{color:#a00}.ok{color:#060}\
.error{color:#700}.errors{border:2px dashed #a00;padding:.3rem .8rem}\
section.export{border-top:2px solid #333;margin-top:1.5rem}\
svg rect{fill:#456}svg .axis{font-size:10px}svg .fail{font-size:12px;fill:#a00}\
.note{font-style:italic}figure{margin:.5rem 0}figcaption{font-size:.85em}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_alerts_are_listed_escaped_before_failed_runs() {
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let alert = crate::alerts::Alert {
            subject: "daily<x>".into(),
            cause: crate::alerts::Cause::Quota,
            message: "s3 is at 95% of its quota".into(),
            opened_at: at,
            last_sent_at: at,
            sends: 2,
            resolved_at: None,
            last_error: None,
        };
        let html = alerts_section(&[alert], &[]);
        assert!(
            html.contains("<strong>quota</strong> daily&lt;x&gt;"),
            "{html}"
        );
        assert!(
            html.contains("(sent 2×): s3 is at 95% of its quota"),
            "{html}"
        );
        assert!(html.contains("No failed runs."), "{html}");
        assert!(alerts_section(&[], &[]).contains("No open alerts."));
    }

    #[test]
    fn escape_neutralises_markup_and_attribute_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x&y")</script> it's"#),
            "&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt; it&#39;s"
        );
        assert_eq!(escape("plain"), "plain");
        assert_eq!(escape("é ✓"), "é ✓");
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(segment("daily_01.csv"), "daily_01.csv");
        assert_eq!(segment("a b/\"c"), "a%20b%2F%22c");
    }

    #[test]
    fn times_are_shown_in_the_export_zone() {
        let t = "2024-01-15T01:00:00Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(in_zone(t, Some("Europe/Berlin")), "2024-01-15 02:00 CET");
        assert_eq!(in_zone(t, None), "2024-01-15 01:00 UTC");
    }

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
