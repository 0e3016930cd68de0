//! What the daemon knows about its exports right now, shared with the HTTP API: every export
//! (valid or not) with its status conditions, next nominal times and current error, plus the
//! counters `/metrics` reports. Run history lives in the state store, not here.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

/// The registry shared between the event loop (writer) and the API (readers).
pub type SharedRegistry = Arc<RwLock<Registry>>;

/// A condition in the style of Flux: ready, reconciling (running) or stalled, with a reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Scheduled and waiting for its next nominal time.
    Ready,
    /// A run is in progress.
    Running,
    /// `suspend = true`: loaded, nothing scheduled.
    Suspended,
    /// Only runs on demand (no schedule).
    OnDemand,
    /// The file on disk is invalid; `active_revision` (if any) keeps running.
    Stalled,
}

/// One export as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ExportStatus {
    /// Export name (file stem).
    pub name: String,
    /// Its definition file.
    pub file: PathBuf,
    /// Description from the definition.
    pub description: Option<String>,
    /// Current condition.
    pub condition: Condition,
    /// Why, in words.
    pub reason: String,
    /// SHA-256 of the definition that is scheduled; `None` when no valid version was ever
    /// accepted.
    pub active_revision: Option<String>,
    /// Human description of the schedule.
    pub schedule: Option<String>,
    /// IANA time zone.
    pub timezone: Option<String>,
    /// Window kind.
    pub window: Option<String>,
    /// Upcoming nominal times.
    pub next_runs: Vec<DateTime<Utc>>,
    /// The current errors of the file on disk, `file:line:col: error: message`.
    pub errors: Vec<String>,
}

impl ExportStatus {
    /// An export known only by its file, in `condition`, with nothing else known yet (a file
    /// that never validated; the starting point of tests).
    pub fn bare(name: &str, file: PathBuf, condition: Condition) -> ExportStatus {
        ExportStatus {
            name: name.to_owned(),
            file,
            description: None,
            condition,
            reason: String::new(),
            active_revision: None,
            schedule: None,
            timezone: None,
            window: None,
            next_runs: Vec::new(),
            errors: Vec::new(),
        }
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counters {
    /// Reloads that accepted every file.
    pub reloads_ok: u64,
    /// Reloads that rejected at least one file.
    pub reloads_failed: u64,
    /// Runs finished, by (export, state).
    pub runs: BTreeMap<(String, String), u64>,
    /// Rows exported, by export.
    pub rows: BTreeMap<String, u64>,
    /// Bytes written, by export.
    pub bytes: BTreeMap<String, u64>,
    /// Last successful run end, by export.
    pub last_success: BTreeMap<String, DateTime<Utc>>,
    /// Run durations in seconds, by export: histogram bucket counts for [`DURATION_BUCKETS`]
    /// (the last slot is +Inf), sum and count.
    pub durations: BTreeMap<String, (Vec<u64>, f64, u64)>,
    /// Objects retention deleted.
    pub retention_deleted: u64,
    /// Expired objects retention left alone (changed since delivery, or unreachable).
    pub retention_skipped: u64,
}

/// Upper bounds of the run duration histogram, in seconds.
pub const DURATION_BUCKETS: &[f64] = &[1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0];

impl Counters {
    /// Records a retention sweep.
    pub fn retention_swept(&mut self, deleted: u64, skipped: u64) {
        self.retention_deleted += deleted;
        self.retention_skipped += skipped;
    }

    /// Records a finished run.
    pub fn run_finished(&mut self, export: &str, state: &str, rows: u64, bytes: u64, seconds: f64) {
        *self
            .runs
            .entry((export.to_owned(), state.to_owned()))
            .or_default() += 1;
        *self.rows.entry(export.to_owned()).or_default() += rows;
        *self.bytes.entry(export.to_owned()).or_default() += bytes;
        let (buckets, sum, count) = self
            .durations
            .entry(export.to_owned())
            .or_insert_with(|| (vec![0; DURATION_BUCKETS.len() + 1], 0.0, 0));
        let slot = DURATION_BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(DURATION_BUCKETS.len());
        buckets[slot] += 1;
        *sum += seconds;
        *count += 1;
    }
}

/// Everything the API reads.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Registry {
    /// Exports by name.
    pub exports: BTreeMap<String, ExportStatus>,
    /// Counters.
    pub counters: Counters,
    /// When the definitions were last reconciled.
    pub last_reload: Option<DateTime<Utc>>,
    /// When the daemon started.
    pub started_at: Option<DateTime<Utc>>,
    /// Prices of cost estimates, from `[defaults]`.
    pub prices: crate::cost::Prices,
    /// The accepted definitions, for decisions made from them (may a role download a run?).
    #[serde(skip)]
    pub specs: BTreeMap<String, std::sync::Arc<crate::config::ExportSpec>>,
    /// Open and recent alerts.
    #[serde(skip)]
    pub alerts: crate::alerts::SharedAlerter,
    /// How to reach the destinations (connections, local root), for presigned download URLs.
    #[serde(skip)]
    pub deliver: crate::deliver::Context,
}

impl Registry {
    /// Number of definitions whose file is currently invalid.
    pub fn invalid_definitions(&self) -> usize {
        self.exports
            .values()
            .filter(|e| e.condition == Condition::Stalled)
            .count()
    }
}
