//! Alerts: the daemon tells a person when something needs attention, through the `webhook` or
//! `smtp` connection named in `[alerts] connection`.
//!
//! Causes, each keyed by a subject (an export, or a connection for quotas):
//! - `run_failed`: a run failed before delivering (store, query, staging, secrets);
//! - `delivery_failed`: a destination refused or could not take the run;
//! - `large_export`: a run staged more rows or bytes than the export's `alert_rows` /
//!   `alert_bytes` (or `[alerts] large_export_rows` / `large_export_bytes`), checked after
//!   staging and **before** delivery, so the alert leaves before the files do;
//! - `quota`: the bytes the ledger lists at a connection (`local` for local destinations,
//!   summed over the active exports, as `cost` reads them) passed `quota_alert_fraction` of its
//!   `[alerts] quotas` entry;
//! - `definition_rejected`: a definition file failed validation on reload.
//!
//! **Deduplication.** An alert opens once per (subject, cause) and is sent then; while it is
//! open, the same cause raised again (the next failed run, the next reload of the same broken
//! file) sends nothing, until `repeat_hours` (default 24) have passed since the last send, when
//! it is sent again. It closes when the cause goes away: a successful run clears `run_failed`
//! and `delivery_failed`, a run under the thresholds clears `large_export`, a sweep or run that
//! finds the connection under its quota clears `quota`, a reload that accepts the file clears
//! `definition_rejected`. The next occurrence after that is a new alert.
//!
//! **Open alerts live in the daemon's memory, not in the state store.** Every cause is
//! re-derived from the world within one run, sweep or reload, so nothing is lost with the
//! process: after a restart a cause that still holds opens (and is sent) once more, which is a
//! reasonable moment to remind someone. Keeping them out of the state store spares both
//! backends a migration and keeps alert bookkeeping off the path of runs and the ledger. The
//! cost: replicas sharing one PostgreSQL state store dedupe separately, so a broken definition
//! (seen by every replica's reload) is reported once per replica; run causes are not, as each
//! run is claimed by one replica.
//!
//! **Sending** happens on a thread of its own with the destinations' own code
//! ([`WebhookDestination::post_json`], [`EmailDestination::send_text`]: same TLS, signature
//! and retries). A failure is logged and recorded on the alert (`last_error`), and never
//! affects a run. The last [`RECENT`] alerts, open or resolved, are kept for `GET /v1/alerts`.

use crate::config::ExportSpec;
use crate::config::daemon::{AlertsConfig, ConnectionConfig};
use crate::deliver::email::EmailDestination;
use crate::deliver::webhook::WebhookDestination;
use crate::state::StateStore;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use tracing::{info, warn};

/// How many alerts `GET /v1/alerts` lists under `recent`.
pub const RECENT: usize = 100;
/// `[alerts] quota_alert_fraction` when unset.
pub const DEFAULT_QUOTA_FRACTION: f64 = 0.8;
/// `[alerts] repeat_hours` when unset.
pub const DEFAULT_REPEAT_HOURS: u32 = 24;

/// Why an alert was raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// A run failed before delivery.
    RunFailed,
    /// A delivery failed.
    DeliveryFailed,
    /// A run staged more rows or bytes than its threshold.
    LargeExport,
    /// A connection's stored bytes passed the alert fraction of its quota.
    Quota,
    /// A definition file was rejected on reload.
    DefinitionRejected,
}

impl Cause {
    /// Every cause, for metrics that list them all (zeros included).
    pub const ALL: [Cause; 5] = [
        Cause::RunFailed,
        Cause::DeliveryFailed,
        Cause::LargeExport,
        Cause::Quota,
        Cause::DefinitionRejected,
    ];

    /// The name in messages and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::RunFailed => "run_failed",
            Cause::DeliveryFailed => "delivery_failed",
            Cause::LargeExport => "large_export",
            Cause::Quota => "quota",
            Cause::DefinitionRejected => "definition_rejected",
        }
    }

    /// What the subject of this cause is.
    fn subject_kind(self) -> &'static str {
        match self {
            Cause::Quota => "connection",
            _ => "export",
        }
    }
}

/// One alert: open while its cause holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// The export (or, for `quota`, the connection) concerned.
    pub subject: String,
    /// Why.
    pub cause: Cause,
    /// What happened and what to do, as last raised.
    pub message: String,
    /// When the cause was first seen.
    pub opened_at: DateTime<Utc>,
    /// When it was last handed to the connection.
    pub last_sent_at: DateTime<Utc>,
    /// Sends so far (1 + repeats).
    pub sends: u32,
    /// When the cause went away; `None` while open.
    pub resolved_at: Option<DateTime<Utc>>,
    /// The last sending failure, if the last send failed.
    pub last_error: Option<String>,
}

/// What `GET /v1/alerts` shows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    /// Whether alerts are configured and their connection usable.
    pub configured: bool,
    /// Alerts whose cause still holds.
    pub open: Vec<Alert>,
    /// The latest alerts sent or resolved, newest first.
    pub recent: Vec<Alert>,
}

/// The pure bookkeeping: which alerts are open and which to send, at a given time.
#[derive(Debug, Default)]
pub struct Book {
    open: BTreeMap<(String, Cause), Alert>,
    recent: VecDeque<Alert>,
}

impl Book {
    /// The cause holds now. Returns the alert to send: when it opens, or when `repeat` has
    /// passed since its last send; `None` while it is open and was sent recently.
    pub fn raise(
        &mut self,
        subject: &str,
        cause: Cause,
        message: &str,
        now: DateTime<Utc>,
        repeat: chrono::Duration,
    ) -> Option<Alert> {
        match self.open.get_mut(&(subject.to_owned(), cause)) {
            Some(alert) => {
                alert.message = message.to_owned();
                if now - alert.last_sent_at < repeat {
                    return None;
                }
                alert.last_sent_at = now;
                alert.sends += 1;
                let alert = alert.clone();
                self.remember(alert.clone());
                Some(alert)
            }
            None => {
                let alert = Alert {
                    subject: subject.to_owned(),
                    cause,
                    message: message.to_owned(),
                    opened_at: now,
                    last_sent_at: now,
                    sends: 1,
                    resolved_at: None,
                    last_error: None,
                };
                self.open.insert((subject.to_owned(), cause), alert.clone());
                self.remember(alert.clone());
                Some(alert)
            }
        }
    }

    /// The cause no longer holds: the alert closes. Returns it if it was open.
    pub fn clear(&mut self, subject: &str, cause: Cause, now: DateTime<Utc>) -> Option<Alert> {
        let mut alert = self.open.remove(&(subject.to_owned(), cause))?;
        alert.resolved_at = Some(now);
        self.remember(alert.clone());
        Some(alert)
    }

    /// Open alerts whose last send is `repeat` ago or more, marked sent now.
    pub fn due(&mut self, now: DateTime<Utc>, repeat: chrono::Duration) -> Vec<Alert> {
        let mut due = Vec::new();
        for alert in self.open.values_mut() {
            if now - alert.last_sent_at >= repeat {
                alert.last_sent_at = now;
                alert.sends += 1;
                due.push(alert.clone());
            }
        }
        for alert in &due {
            self.remember(alert.clone());
        }
        due
    }

    /// When the next open alert is due again.
    pub fn next_due(&self, repeat: chrono::Duration) -> Option<DateTime<Utc>> {
        self.open.values().map(|a| a.last_sent_at + repeat).min()
    }

    /// Subjects with an open alert of `cause`.
    pub fn open_subjects(&self, cause: Cause) -> Vec<String> {
        self.open
            .keys()
            .filter(|(_, c)| *c == cause)
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// Records the outcome of a send on the open alert and its latest `recent` entry.
    fn sent(&mut self, subject: &str, cause: Cause, error: Option<String>) {
        if let Some(alert) = self.open.get_mut(&(subject.to_owned(), cause)) {
            alert.last_error.clone_from(&error);
        }
        if let Some(alert) = self
            .recent
            .iter_mut()
            .find(|a| a.subject == subject && a.cause == cause)
        {
            alert.last_error = error;
        }
    }

    fn remember(&mut self, alert: Alert) {
        self.recent.push_front(alert);
        self.recent.truncate(RECENT);
    }

    fn snapshot(&self) -> (Vec<Alert>, Vec<Alert>) {
        (
            self.open.values().cloned().collect(),
            self.recent.iter().cloned().collect(),
        )
    }
}

/// Where alerts go. Built once per reload and shared behind an `Arc`, so the size of the
/// variants does not matter.
#[allow(clippy::large_enum_variant)]
enum Channel {
    Webhook(WebhookDestination),
    Email(EmailDestination),
}

impl Channel {
    fn send(&self, alert: &Alert) -> Result<(), crate::deliver::Error> {
        match self {
            Channel::Webhook(hook) => {
                // The idempotency key is stable across the retries of one send and differs
                // between sends (a repeat is a new message).
                let label = format!(
                    "alert-{}-{}-{}",
                    alert.cause.as_str(),
                    alert.opened_at.timestamp(),
                    alert.sends
                );
                hook.post_json(&alert.subject, &label, &label, &json(alert))
            }
            Channel::Email(mail) => mail.send_text(&subject(alert), &body(alert)),
        }
    }
}

/// The JSON body of a webhook alert.
pub fn json(alert: &Alert) -> serde_json::Value {
    serde_json::json!({
        "alert": {
            "cause": alert.cause,
            alert.cause.subject_kind(): alert.subject,
            "subject": alert.subject,
            "message": alert.message,
            "opened_at": alert.opened_at.to_rfc3339(),
            "sent_at": alert.last_sent_at.to_rfc3339(),
            "repeat": alert.sends > 1,
        }
    })
}

/// The subject line of an email alert.
pub fn subject(alert: &Alert) -> String {
    format!(
        "exportd alert: {} of {} `{}`{}",
        alert.cause.as_str(),
        alert.cause.subject_kind(),
        alert.subject,
        if alert.sends > 1 { " (still open)" } else { "" }
    )
}

fn body(alert: &Alert) -> String {
    format!(
        "{}\n\nCause:   {}\n{:<8} {}\nOpened:  {}\nSent:    {}\n\nThis alert is sent again every repeat_hours while its cause holds.\nSent by exportd {}.\n",
        alert.message,
        alert.cause.as_str(),
        format!("{}:", alert.cause.subject_kind()),
        alert.subject,
        alert.opened_at.to_rfc3339(),
        alert.last_sent_at.to_rfc3339(),
        env!("CARGO_PKG_VERSION")
    )
}

/// The settings of `[alerts]`, resolved.
#[derive(Debug, Clone)]
struct Settings {
    large_rows: Option<u64>,
    large_bytes: Option<u64>,
    quotas: BTreeMap<String, u64>,
    fraction: f64,
    repeat: chrono::Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            large_rows: None,
            large_bytes: None,
            quotas: BTreeMap::new(),
            fraction: DEFAULT_QUOTA_FRACTION,
            repeat: chrono::Duration::hours(i64::from(DEFAULT_REPEAT_HOURS)),
        }
    }
}

#[derive(Default)]
struct Inner {
    book: Book,
    settings: Settings,
    channel: Option<Arc<Channel>>,
}

/// The daemon's alerts: bookkeeping plus the channel they are sent through. Shared by the
/// event loop, run threads and the API.
#[derive(Default)]
pub struct Alerter {
    inner: Mutex<Inner>,
    /// The queue of the sending thread, started with the first alert.
    outbox: std::sync::OnceLock<Mutex<std::sync::mpsc::Sender<Job>>>,
}

/// One alert to send, and where its outcome is recorded.
struct Job {
    alert: Alert,
    channel: Arc<Channel>,
    alerter: Arc<Alerter>,
}

impl std::fmt::Debug for Alerter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Alerter")
    }
}

/// The shared handle.
pub type SharedAlerter = Arc<Alerter>;

impl Alerter {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent-enough data: alerts must go on.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `[alerts]` (at start and on every reload). A channel that cannot be built is
    /// logged; alerts are then still recorded (and shown by the API) but not sent.
    pub fn configure(
        &self,
        config: Option<&AlertsConfig>,
        connections: &Arc<BTreeMap<String, ConnectionConfig>>,
    ) {
        let mut inner = self.lock();
        let Some(config) = config else {
            inner.settings = Settings::default();
            inner.channel = None;
            return;
        };
        inner.settings = Settings {
            large_rows: config.large_export_rows,
            large_bytes: config.large_export_bytes.map(|b| b.bytes()),
            quotas: config
                .quotas
                .iter()
                .map(|(k, v)| (k.clone(), v.bytes()))
                .collect(),
            fraction: config
                .quota_alert_fraction
                .unwrap_or(DEFAULT_QUOTA_FRACTION),
            repeat: test_repeat().unwrap_or_else(|| {
                chrono::Duration::hours(i64::from(
                    config.repeat_hours.unwrap_or(DEFAULT_REPEAT_HOURS),
                ))
            }),
        };
        let context = crate::deliver::Context {
            output_dir: Default::default(),
            connections: connections.clone(),
        };
        let channel = match connections.get(&config.connection) {
            Some(ConnectionConfig::Webhook(_)) => {
                WebhookDestination::for_messages(&config.connection, &context).map(Channel::Webhook)
            }
            Some(ConnectionConfig::Smtp(_)) => {
                EmailDestination::for_messages(&config.connection, &config.recipients, &context)
                    .map(Channel::Email)
            }
            _ => Err(crate::deliver::Error::Config(format!(
                "`[alerts] connection` `{}` must name a `webhook` or `smtp` connection",
                config.connection
            ))),
        };
        inner.channel = match channel {
            Ok(c) => Some(Arc::new(c)),
            Err(e) => {
                warn!(error = %e, "Alerts cannot be sent; they are only recorded (GET /v1/alerts). Fix `[alerts]`.");
                None
            }
        };
    }

    /// Raises `cause` for `subject`, sending the alert if it opens or is due again.
    pub fn raise(self: &Arc<Self>, subject: &str, cause: Cause, message: &str) {
        self.raise_at(subject, cause, message, Utc::now());
    }

    fn raise_at(self: &Arc<Self>, subject: &str, cause: Cause, message: &str, now: DateTime<Utc>) {
        let (alert, channel) = {
            let mut inner = self.lock();
            let repeat = inner.settings.repeat;
            let alert = inner.book.raise(subject, cause, message, now, repeat);
            (alert, inner.channel.clone())
        };
        if let Some(alert) = alert {
            self.dispatch(alert, channel);
        }
    }

    /// `cause` no longer holds for `subject`.
    pub fn clear(&self, subject: &str, cause: Cause) {
        if let Some(alert) = self.lock().book.clear(subject, cause, Utc::now()) {
            info!(subject = %alert.subject, cause = alert.cause.as_str(), "Alert resolved.");
        }
    }

    /// Sends open alerts again whose last send is `repeat_hours` ago (called as time passes).
    pub fn resend_due(self: &Arc<Self>, now: DateTime<Utc>) {
        let (due, channel) = {
            let mut inner = self.lock();
            let repeat = inner.settings.repeat;
            (inner.book.due(now, repeat), inner.channel.clone())
        };
        for alert in due {
            self.dispatch(alert, channel.clone());
        }
    }

    /// When [`Alerter::resend_due`] next has something to send, so the event loop wakes then.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        let inner = self.lock();
        inner.book.next_due(inner.settings.repeat)
    }

    /// After staging, before delivery: raises or clears `large_export` for the run's totals.
    pub fn staged(self: &Arc<Self>, spec: &ExportSpec, run_id: &str, rows: u64, bytes: u64) {
        let (max_rows, max_bytes) = {
            let inner = self.lock();
            (
                spec.def.alert_rows.or(inner.settings.large_rows),
                spec.def
                    .alert_bytes
                    .map(|b| b.bytes())
                    .or(inner.settings.large_bytes),
            )
        };
        let mut over = Vec::new();
        if let Some(max) = max_rows.filter(|m| rows > *m) {
            over.push(format!("{rows} rows (more than {max})"));
        }
        if let Some(max) = max_bytes.filter(|m| bytes > *m) {
            over.push(format!(
                "{} (more than {})",
                crate::config::units::ByteSize(bytes),
                crate::config::units::ByteSize(max)
            ));
        }
        if over.is_empty() {
            self.clear(&spec.name, Cause::LargeExport);
        } else {
            self.raise(
                &spec.name,
                Cause::LargeExport,
                &format!(
                    "run `{}/{run_id}` staged {} and is being delivered now; if that is unexpected, check the export's window and filter (thresholds: `alert_rows` / `alert_bytes` of the export, `[alerts] large_export_rows` / `large_export_bytes`)",
                    spec.name,
                    over.join(" and ")
                ),
            );
        }
    }

    /// A run ended: a success clears the run's failure alerts, a failure raises one.
    pub fn run_finished(self: &Arc<Self>, export: &str, failure: Option<(Cause, &str)>) {
        match failure {
            None => {
                self.clear(export, Cause::RunFailed);
                self.clear(export, Cause::DeliveryFailed);
            }
            Some((cause, error)) => {
                let what = if cause == Cause::DeliveryFailed {
                    "delivery of export"
                } else {
                    "export"
                };
                self.raise(export, cause, &format!("{what} `{export}` failed: {error}"));
            }
        }
    }

    /// An export was removed: its run alerts can no longer clear by themselves.
    pub fn export_removed(&self, export: &str) {
        for cause in [Cause::RunFailed, Cause::DeliveryFailed, Cause::LargeExport] {
            self.clear(export, cause);
        }
    }

    /// After a reload: `rejected` lists the files rejected now (export name, errors); every
    /// other open `definition_rejected` alert clears.
    pub fn definitions(self: &Arc<Self>, rejected: &[(String, Vec<String>)]) {
        let open = self.lock().book.open_subjects(Cause::DefinitionRejected);
        for name in open {
            if !rejected.iter().any(|(n, _)| *n == name) {
                self.clear(&name, Cause::DefinitionRejected);
            }
        }
        for (name, errors) in rejected {
            self.raise(
                name,
                Cause::DefinitionRejected,
                &format!(
                    "the definition of export `{name}` was rejected (its last valid version, if any, keeps running); fix it: {}",
                    errors.join("; ")
                ),
            );
        }
    }

    /// Compares the ledger's bytes per connection with `[alerts] quotas`.
    pub fn check_quotas(self: &Arc<Self>, specs: &[Arc<ExportSpec>], state: &dyn StateStore) {
        let (quotas, fraction) = {
            let inner = self.lock();
            (inner.settings.quotas.clone(), inner.settings.fraction)
        };
        // A quota removed from the configuration no longer holds.
        let open = self.lock().book.open_subjects(Cause::Quota);
        for connection in open {
            if !quotas.contains_key(&connection) {
                self.clear(&connection, Cause::Quota);
            }
        }
        if quotas.is_empty() {
            return;
        }
        let totals = match state.ledger_totals(None, crate::cost::month_start(Utc::now())) {
            Ok(t) => t,
            Err(e) => {
                warn!(error = %e, "Cannot read the ledger totals; quotas are checked again after the next run.");
                return;
            }
        };
        let used = usage_by_connection(specs, &totals);
        for (connection, quota) in &quotas {
            let bytes = used.get(connection).copied().unwrap_or(0);
            if quota_exceeded(bytes, *quota, fraction) {
                self.raise(
                    connection,
                    Cause::Quota,
                    &format!(
                        "connection `{connection}` holds {} by the ledger, {:.0}% of its quota {} (alert at {:.0}%); shorten `retention` of its exports or raise the quota in `[alerts] quotas`",
                        crate::config::units::ByteSize(bytes),
                        bytes as f64 * 100.0 / (*quota).max(1) as f64,
                        crate::config::units::ByteSize(*quota),
                        fraction * 100.0
                    ),
                );
            } else {
                self.clear(connection, Cause::Quota);
            }
        }
    }

    /// Open and recent alerts.
    pub fn snapshot(&self) -> Snapshot {
        let inner = self.lock();
        let (open, recent) = inner.book.snapshot();
        Snapshot {
            configured: inner.channel.is_some(),
            open,
            recent,
        }
    }

    /// Queues the alert for the sending thread: a slow or failing receiver never holds up a
    /// run or the event loop, and a burst of alerts (the store down for every export) is sent
    /// one after the other by one thread instead of a thread each.
    fn dispatch(self: &Arc<Self>, alert: Alert, channel: Option<Arc<Channel>>) {
        warn!(subject = %alert.subject, cause = alert.cause.as_str(), sends = alert.sends, message = %alert.message, "Alert.");
        let Some(channel) = channel else {
            return;
        };
        let outbox = self.outbox.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel::<Job>();
            std::thread::Builder::new()
                .name("exportd-alerts".into())
                .spawn(move || {
                    for job in rx {
                        send(job);
                    }
                })
                .expect("cannot start the alert thread");
            Mutex::new(tx)
        });
        let job = Job {
            alert,
            channel,
            alerter: self.clone(),
        };
        let sender = outbox.lock().unwrap_or_else(|e| e.into_inner());
        if sender.send(job).is_err() {
            warn!("The alert thread stopped; alerts are only recorded (GET /v1/alerts).");
        }
    }
}

/// Sends one alert and records the outcome on it.
fn send(job: Job) {
    let Job {
        alert,
        channel,
        alerter,
    } = job;
    let error = match channel.send(&alert) {
        Ok(()) => {
            info!(subject = %alert.subject, cause = alert.cause.as_str(), "Alert sent.");
            None
        }
        Err(e) => {
            warn!(subject = %alert.subject, cause = alert.cause.as_str(), error = %e, "Cannot send the alert; it is sent again after repeat_hours if its cause still holds.");
            Some(e.to_string())
        }
    };
    alerter.lock().book.sent(&alert.subject, alert.cause, error);
}

/// TEST ONLY: `EXPORTD_TEST_ALERT_REPEAT_SECONDS=N` replaces `repeat_hours`, so an integration
/// test can watch an open alert being sent again. Unset in production; it has no other effect.
fn test_repeat() -> Option<chrono::Duration> {
    std::env::var("EXPORTD_TEST_ALERT_REPEAT_SECONDS")
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
        .map(chrono::Duration::seconds)
}

/// Bytes per connection name (`local` for local destinations) over the active exports'
/// destinations. Ledger entries of removed definitions are not attributed.
pub fn usage_by_connection(
    specs: &[Arc<ExportSpec>],
    totals: &[crate::state::LedgerTotal],
) -> BTreeMap<String, u64> {
    let mut used = BTreeMap::new();
    for spec in specs {
        for (index, dest) in spec.destinations.iter().enumerate() {
            let id = crate::state::destination_id(dest.def.kind_name(), index);
            let connection = dest.def.connection().unwrap_or("local");
            let bytes: u64 = totals
                .iter()
                .filter(|t| t.export == spec.name && t.destination == id)
                .map(|t| t.bytes)
                .sum();
            *used.entry(connection.to_owned()).or_insert(0) += bytes;
        }
    }
    used
}

/// Whether `bytes` passed `fraction` of `quota`.
pub fn quota_exceeded(bytes: u64, quota: u64, fraction: f64) -> bool {
    bytes as f64 >= quota as f64 * fraction
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, hour, 0, 0).unwrap()
    }

    #[test]
    fn an_alert_is_sent_once_while_its_cause_holds_then_again_after_repeat() {
        let mut book = Book::default();
        let repeat = chrono::Duration::hours(6);
        let first = book.raise("daily", Cause::RunFailed, "boom", t(0), repeat);
        assert_eq!(first.map(|a| a.sends), Some(1));
        assert_eq!(
            book.raise("daily", Cause::RunFailed, "boom again", t(1), repeat),
            None
        );
        // Another cause or another export is another alert.
        assert!(
            book.raise("daily", Cause::DeliveryFailed, "x", t(1), repeat)
                .is_some()
        );
        assert!(
            book.raise("weekly", Cause::RunFailed, "x", t(1), repeat)
                .is_some()
        );
        assert_eq!(book.due(t(5), repeat), Vec::new());
        assert_eq!(book.next_due(repeat), Some(t(6)));
        let again = book.raise("daily", Cause::RunFailed, "still", t(6), repeat);
        let again = again.expect("sent again after repeat");
        assert_eq!((again.sends, again.opened_at), (2, t(0)));
        assert_eq!(again.message, "still");
        // Time alone sends the others again.
        let due: Vec<_> = book
            .due(t(7), repeat)
            .into_iter()
            .map(|a| (a.subject, a.cause))
            .collect();
        assert_eq!(
            due,
            vec![
                ("daily".to_owned(), Cause::DeliveryFailed),
                ("weekly".to_owned(), Cause::RunFailed)
            ]
        );
    }

    #[test]
    fn a_cleared_alert_opens_anew_at_the_next_occurrence() {
        let mut book = Book::default();
        let repeat = chrono::Duration::hours(24);
        assert!(
            book.raise("daily", Cause::Quota, "m", t(0), repeat)
                .is_some()
        );
        let cleared = book.clear("daily", Cause::Quota, t(1)).expect("was open");
        assert_eq!(cleared.resolved_at, Some(t(1)));
        assert_eq!(book.clear("daily", Cause::Quota, t(1)), None);
        let reopened = book
            .raise("daily", Cause::Quota, "m", t(2), repeat)
            .unwrap();
        assert_eq!((reopened.sends, reopened.opened_at), (1, t(2)));
        let (open, recent) = book.snapshot();
        assert_eq!(open.len(), 1);
        assert_eq!(recent.len(), 3);
        assert_eq!(recent[0].opened_at, t(2));
        assert_eq!(recent[1].resolved_at, Some(t(1)));
    }

    #[test]
    fn quotas_compare_against_the_fraction() {
        assert!(!quota_exceeded(79, 100, 0.8));
        assert!(quota_exceeded(80, 100, 0.8));
        assert!(quota_exceeded(200, 100, 0.8));
    }

    #[test]
    fn messages_name_cause_and_subject() {
        let alert = Alert {
            subject: "daily".into(),
            cause: Cause::LargeExport,
            message: "too big".into(),
            opened_at: t(0),
            last_sent_at: t(0),
            sends: 1,
            resolved_at: None,
            last_error: None,
        };
        assert_eq!(
            subject(&alert),
            "exportd alert: large_export of export `daily`"
        );
        let body = json(&alert);
        assert_eq!(body["alert"]["cause"], "large_export");
        assert_eq!(body["alert"]["export"], "daily");
        assert_eq!(body["alert"]["repeat"], false);
        assert!(super::body(&alert).contains("export:  daily"));
    }
}
