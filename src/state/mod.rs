//! The state store: what the daemon remembers between restarts.
//!
//! Four records, all keyed by export name:
//! - **runs**: one row per export and nominal time (`EXPORT/RUNID`). Running the same nominal
//!   time again is the same run with `attempt` incremented, so history never shows duplicates
//!   of one window, and a run left `running` by a crash is found again on start-up.
//! - **ledger**: every object delivered, keyed by destination and object key. Delivering the
//!   same key again replaces the row, because re-runs write the same names (idempotent).
//!   Retention deletes only what the ledger lists.
//! - **watermarks**: the end of the last exported window, for `since_last_run`. It only moves
//!   forward, so a late or re-run older window never makes the next run re-export data.
//! - **revisions**: the definition hash (sha256 of the file) the daemon accepted, for
//!   `exportd plan` and the status API.
//!
//! One trait, [`StateStore`], with one implementation per database (SQLite embedded by default,
//! `sqlite://var/state.db`; PostgreSQL for several replicas sharing one history).
//!
//! A fifth record, **claims**, lets replicas share the work: each nominal run is claimed by
//! one replica under a lease it renews while the run is alive (see [`StateStore::claim`]). The trait takes explicit
//! timestamps everywhere instead of reading the wall clock, so the scheduler's injectable clock
//! reaches the records and simulated-time tests see consistent history.
//!
//! All timestamps are `DateTime<Utc>` in the API and milliseconds since the epoch in storage.
//! [`RunRecord`], [`Delivery`] and [`Revision`] are API views: they hold no secrets.

pub mod postgres;
pub mod sqlite;

use crate::deliver::Delivered;
use crate::pipeline::RunReport;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use sqlite::SqliteState;

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database failed.
    #[error("state store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The PostgreSQL database failed or cannot be reached.
    #[error("state store: {0}")]
    Postgres(#[from] crate::postgres::Error),
    /// The state URL is not one exportd knows.
    #[error(
        "unsupported state url `{0}`: use `sqlite://PATH` or `postgres://USER@HOST/DB` in `[state] url`"
    )]
    UnsupportedUrl(String),
    /// The `[state] password` secret cannot be read.
    #[error("state store password: {0}")]
    Secret(#[from] crate::config::secret::Error),
    /// The state file or its directory could not be created.
    #[error(
        "cannot open state store `{path}`: {source}; check that the directory exists and is writable by exportd"
    )]
    Open {
        /// The path.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The file was written by a newer exportd (its schema is ahead of this build).
    #[error(
        "state store `{path}` has schema version {found}, but this exportd knows only up to {supported}: upgrade exportd, or point `[state] url` at another file"
    )]
    TooNew {
        /// The path.
        path: PathBuf,
        /// Version in the file.
        found: i64,
        /// Newest version this build knows.
        supported: usize,
    },
    /// `record_finish` or `mark_*` named a run that was never started.
    #[error("no run `{0}` in the state store: call `record_start` before finishing a run")]
    UnknownRun(String),
    /// A stored value cannot be read back (edited by hand, or written by a newer exportd).
    #[error(
        "state store holds an invalid value: {0}; was the file edited by hand or written by a newer exportd?"
    )]
    Corrupt(String),
}

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Decided by the scheduler, not started yet.
    Scheduled,
    /// Started and not finished. Left in this state by a crash; see
    /// [`StateStore::running_runs`].
    Running,
    /// Every part delivered.
    Completed,
    /// Stopped by an error (see `error`).
    Failed,
    /// Completed, and its deliveries have since been removed by retention.
    Expired,
    /// Stopped by shutdown before it finished; retried on the next start.
    Interrupted,
}

impl RunState {
    /// Every state, in lifecycle order.
    pub const ALL: [RunState; 6] = [
        RunState::Scheduled,
        RunState::Running,
        RunState::Completed,
        RunState::Failed,
        RunState::Expired,
        RunState::Interrupted,
    ];

    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Scheduled => "scheduled",
            RunState::Running => "running",
            RunState::Completed => "completed",
            RunState::Failed => "failed",
            RunState::Expired => "expired",
            RunState::Interrupted => "interrupted",
        }
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown run state or trigger name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}`: expected one of {expected}")]
pub struct ParseError {
    kind: &'static str,
    value: String,
    expected: &'static str,
}

impl FromStr for RunState {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RunState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| ParseError {
                kind: "run state",
                value: s.to_owned(),
                expected: "scheduled, running, completed, failed, expired, interrupted",
            })
    }
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The schedule fired on time.
    Schedule,
    /// A nominal time missed during downtime, run after start-up.
    CatchUp,
    /// `exportd export` or a retry asked for by hand.
    Manual,
    /// `exportd backfill`.
    Backfill,
    /// `POST /v1/exports/{name}/run`.
    Api,
}

impl Trigger {
    /// Every trigger.
    pub const ALL: [Trigger; 5] = [
        Trigger::Schedule,
        Trigger::CatchUp,
        Trigger::Manual,
        Trigger::Backfill,
        Trigger::Api,
    ];

    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::CatchUp => "catch_up",
            Trigger::Manual => "manual",
            Trigger::Backfill => "backfill",
            Trigger::Api => "api",
        }
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Trigger {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Trigger::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| ParseError {
                kind: "run trigger",
                value: s.to_owned(),
                expected: "schedule, catch_up, manual, backfill, api",
            })
    }
}

/// The id of the run of `export` at `nominal`: `EXPORT/RUNID`, such as
/// `daily/20240115T020000Z`. Stable, so re-running a nominal time finds the same run.
pub fn run_id(export: &str, nominal: DateTime<Utc>) -> String {
    format!("{export}/{}", crate::template::run_id(nominal))
}

/// The ledger name of a destination: its kind and its index in the definition (`local#0`),
/// so two destinations of the same kind keep separate ledger entries.
pub fn destination_id(kind: &str, index: usize) -> String {
    format!("{kind}#{index}")
}

/// A run about to start (or to be attempted again).
#[derive(Debug, Clone)]
pub struct RunStart {
    /// Export name.
    pub export: String,
    /// Nominal time; with the export it identifies the run.
    pub nominal: DateTime<Utc>,
    /// Window start; `None` for "from the beginning".
    pub window_start: Option<DateTime<Utc>>,
    /// Window end (exclusive).
    pub window_end: DateTime<Utc>,
    /// What started it.
    pub trigger: Trigger,
    /// sha256 of the definition that runs.
    pub revision: String,
    /// When it started (from the daemon's clock).
    pub started_at: DateTime<Utc>,
}

impl RunStart {
    /// The id of the run: see [`run_id`].
    pub fn id(&self) -> String {
        run_id(&self.export, self.nominal)
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// Every part delivered.
    Completed {
        /// Rows exported.
        rows: u64,
        /// Bytes of all parts.
        bytes: u64,
        /// Number of parts.
        parts: u64,
    },
    /// Stopped by an error.
    Failed {
        /// What went wrong, as shown to the operator (no secrets).
        error: String,
    },
}

impl RunOutcome {
    /// The outcome of a finished pipeline run.
    pub fn from_report(report: &RunReport) -> RunOutcome {
        RunOutcome::Completed {
            rows: report.rows,
            bytes: report.bytes,
            parts: report.parts.len() as u64,
        }
    }
}

/// One run as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunRecord {
    /// `EXPORT/RUNID`.
    pub id: String,
    /// Export name.
    pub export: String,
    /// Nominal time.
    pub nominal: DateTime<Utc>,
    /// Window start; `None` for "from the beginning".
    pub window_start: Option<DateTime<Utc>>,
    /// Window end (exclusive).
    pub window_end: DateTime<Utc>,
    /// Where the run is.
    pub state: RunState,
    /// 1 for the first attempt, incremented by every re-run of the same nominal time.
    pub attempt: u32,
    /// What started the latest attempt.
    pub trigger: Trigger,
    /// When the latest attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When the latest attempt ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Rows exported (completed runs).
    pub rows: Option<u64>,
    /// Bytes of all parts (completed runs).
    pub bytes: Option<u64>,
    /// Number of parts (completed runs).
    pub parts: Option<u64>,
    /// Why it failed or was interrupted.
    pub error: Option<String>,
    /// sha256 of the definition the latest attempt ran.
    pub revision: String,
}

/// Which runs [`StateStore::list_runs`] returns.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only this export.
    pub export: Option<String>,
    /// Only runs in this state.
    pub state: Option<RunState>,
    /// At most this many (`None`: all).
    pub limit: Option<usize>,
}

/// One delivered object, as the ledger records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// Export name.
    pub export: String,
    /// The run that delivered it (`EXPORT/RUNID`).
    pub run_id: String,
    /// Destination kind and index, such as `local#0` (see [`destination_id`]).
    pub destination: String,
    /// Path or object key at the destination.
    pub key: String,
    /// Size.
    pub bytes: u64,
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
    /// When it became visible.
    pub delivered_at: DateTime<Utc>,
    /// When retention may delete it, from the destination's `retention` at delivery time;
    /// `None` means never. Governs objects of exports whose definition was removed; while the
    /// definition exists, its current `retention` decides (like a bucket lifecycle rule).
    pub expires_at: Option<DateTime<Utc>>,
    /// Where the object lives, as JSON (`{"to":"s3","connection":…,"bucket":…}`): enough to
    /// reach it again for deletion after its definition is gone. Empty for old entries.
    #[serde(skip)]
    pub location: String,
    /// When retention moved it to the `transition` storage class; `None` while it has not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transitioned_at: Option<DateTime<Utc>>,
}

/// Stored objects and bytes of one export at one destination, for cost estimates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerTotal {
    /// Export name.
    pub export: String,
    /// Destination (`s3#0`).
    pub destination: String,
    /// Objects the ledger lists.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Bytes delivered since the `since` time asked for (this month's transfer).
    pub bytes_since: u64,
}

impl Delivery {
    /// The ledger entry for an object the pipeline delivered. `destination` is the ledger
    /// name ([`destination_id`]), not the bare kind `Delivered` carries.
    pub fn from_delivered(
        export: &str,
        run_id: &str,
        destination: &str,
        delivered: &Delivered,
    ) -> Delivery {
        Delivery {
            export: export.to_owned(),
            run_id: run_id.to_owned(),
            destination: destination.to_owned(),
            key: delivered.key.clone(),
            bytes: delivered.bytes,
            sha256: delivered.sha256.clone(),
            delivered_at: delivered.delivered_at,
            expires_at: None,
            location: String::new(),
            transitioned_at: None,
        }
    }

    /// The same entry with the expiry and location of the `[[deliver]]` table it went to.
    pub fn for_destination(mut self, def: &crate::config::export::DeliverDef) -> Delivery {
        self.expires_at = def
            .retention()
            .and_then(|r| r.duration())
            .and_then(|d| self.delivered_at.checked_add_signed(d));
        self.location = def.location().to_string();
        self
    }
}

/// One line of the audit log: who did what, when, and how it ended. Append-only: nothing in
/// exportd updates or deletes an entry (the SQLite store enforces it with triggers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Position in the log (assigned by the store; 0 before it is appended).
    pub id: u64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who: a token's name, `daemon` for the daemon's own actions, `cli` for commands.
    pub actor: String,
    /// The actor's role (`admin`, …), empty for the daemon.
    pub role: String,
    /// What: `api`, `delivery`, `retention`, `reload`.
    pub action: String,
    /// On what: `GET /v1/exports`, an object key, an export name.
    pub target: String,
    /// How it ended: an HTTP status, `ok`, `denied: …`, `failed: …`.
    pub outcome: String,
}

impl AuditEntry {
    /// A new entry at `at` (its id is assigned when appended).
    pub fn new(
        actor: &str,
        role: &str,
        action: &str,
        target: &str,
        outcome: &str,
        at: DateTime<Utc>,
    ) -> AuditEntry {
        AuditEntry {
            id: 0,
            at,
            actor: actor.to_owned(),
            role: role.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            outcome: outcome.to_owned(),
        }
    }
}

/// Which audit entries [`StateStore::audit_log`] returns.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this actor.
    pub actor: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only entries at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// At most this many, newest first.
    pub limit: Option<usize>,
}

/// The definition revision the daemon accepted for an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Revision {
    /// sha256 of the definition file, hex.
    pub sha256: String,
    /// When this revision was first accepted.
    pub accepted_at: DateTime<Utc>,
}

/// What [`StateStore::claim`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The caller holds the claim until the lease it asked for.
    Acquired,
    /// Another owner holds it and its lease has not run out.
    Held {
        /// Who holds it.
        owner: String,
        /// Until when, unless renewed.
        lease_until: DateTime<Utc>,
    },
    /// The work was finished by whoever held it: nobody may claim it again.
    Done,
}

/// A state store. Called from several blocking threads at once, hence `Send + Sync` and `&self`
/// everywhere: implementations serialise access internally.
pub trait StateStore: Send + Sync {
    // ---- runs ----

    /// Records that a run starts. A new nominal time creates the run with attempt 1; a nominal
    /// time that already has a run (re-run, retry after a crash, backfill over history) becomes
    /// its next attempt: state `running`, attempt + 1, the previous outcome cleared. Returns the
    /// run as stored.
    fn record_start(&self, start: &RunStart) -> Result<RunRecord, Error>;

    /// Records how a run ended, at `finished_at`. Overwrites any state, so a run that finishes
    /// after it was marked interrupted still ends up with its true outcome.
    fn record_finish(
        &self,
        id: &str,
        outcome: &RunOutcome,
        finished_at: DateTime<Utc>,
    ) -> Result<RunRecord, Error>;

    /// Marks a `running` run `interrupted` (shutdown grace period over). A run in any other
    /// state is left alone, so a late call never hides a real outcome.
    fn mark_interrupted(&self, id: &str, at: DateTime<Utc>) -> Result<RunRecord, Error>;

    /// Marks a `completed` run `expired` (retention removed its deliveries). Other states are
    /// left alone.
    fn mark_expired(&self, id: &str) -> Result<RunRecord, Error>;

    /// Runs left `running`, oldest nominal first: after a crash these are the runs to retry.
    fn running_runs(&self) -> Result<Vec<RunRecord>, Error>;

    /// One run.
    fn get_run(&self, id: &str) -> Result<Option<RunRecord>, Error>;

    /// Runs matching the filter, newest nominal time first (ties by export name).
    fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, Error>;

    /// The latest nominal time the scheduler acted on for `export`: the newest run triggered by
    /// `schedule` or `catch_up`, in ANY state. Catch-up after downtime starts after this time.
    ///
    /// Failed runs count: a failure is not a missed run, and retrying it is the operator's or
    /// the retry policy's decision, not catch-up's. Manual, API and backfill runs do not count:
    /// their nominal times are not schedule points (a manual run "now" must not hide the
    /// scheduled runs missed before it, and a backfill must not move catch-up back).
    fn last_nominal(&self, export: &str) -> Result<Option<DateTime<Utc>>, Error>;

    /// The most recently finished completed run of `export` (by `finished_at`), for "last
    /// success" in status and metrics.
    fn last_completed(&self, export: &str) -> Result<Option<RunRecord>, Error>;

    // ---- ledger ----

    /// Records delivered objects in one transaction. An entry for the same destination and key
    /// replaces the existing one (re-runs deliver the same names).
    fn record_deliveries(&self, deliveries: &[Delivery]) -> Result<(), Error>;

    /// Records one delivered object; see [`StateStore::record_deliveries`].
    fn record_delivery(&self, delivery: &Delivery) -> Result<(), Error> {
        self.record_deliveries(std::slice::from_ref(delivery))
    }

    /// Objects a run delivered, by destination and key.
    fn deliveries_for_run(&self, run_id: &str) -> Result<Vec<Delivery>, Error>;

    /// Objects an export delivered, oldest first (the order retention walks them in).
    fn deliveries_for_export(&self, export: &str) -> Result<Vec<Delivery>, Error>;

    /// Forgets a delivered object (after retention deleted it). Returns whether it was listed.
    fn remove_delivery(&self, destination: &str, key: &str) -> Result<bool, Error>;

    /// Records that retention moved a delivered object to another storage class at `at`, so
    /// it is moved once. Returns whether it was listed.
    fn mark_transitioned(
        &self,
        destination: &str,
        key: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, Error>;

    /// Every export with entries in the ledger, defined or not (retention also sweeps the
    /// objects of removed definitions).
    fn ledger_exports(&self) -> Result<Vec<String>, Error>;

    /// Objects and bytes per export and destination (one export, or all), with the bytes
    /// delivered since `since`.
    fn ledger_totals(
        &self,
        export: Option<&str>,
        since: DateTime<Utc>,
    ) -> Result<Vec<LedgerTotal>, Error>;

    // ---- watermarks ----

    /// End of the last exported window of `export`, for `since_last_run`.
    fn watermark(&self, export: &str) -> Result<Option<DateTime<Utc>>, Error>;

    /// Moves the watermark of `export` forward to `end`. An earlier `end` is ignored, so an
    /// older window finishing late never makes the next run export data twice. Returns the
    /// watermark now stored.
    fn set_watermark(&self, export: &str, end: DateTime<Utc>) -> Result<DateTime<Utc>, Error>;

    // ---- accepted revisions ----

    /// The revision of `export` the daemon accepted.
    fn accepted_revision(&self, export: &str) -> Result<Option<Revision>, Error>;

    /// Records that the daemon accepted revision `sha256` of `export` at `at`. Accepting the
    /// same revision again keeps the original `accepted_at`.
    fn set_accepted_revision(
        &self,
        export: &str,
        sha256: &str,
        at: DateTime<Utc>,
    ) -> Result<(), Error>;

    /// Records many accepted revisions in one transaction (a reload of thousands of
    /// definitions must not pay one disk flush each).
    fn set_accepted_revisions(
        &self,
        revisions: &[(String, String)],
        at: DateTime<Utc>,
    ) -> Result<(), Error>;

    /// [`StateStore::last_nominal`] of every export at once, for start-up and reloads.
    fn last_nominals(&self) -> Result<BTreeMap<String, DateTime<Utc>>, Error>;

    /// Forgets the accepted revision of a removed export. Returns whether there was one.
    fn remove_accepted_revision(&self, export: &str) -> Result<bool, Error>;

    /// Every accepted revision, by export name.
    fn accepted_revisions(&self) -> Result<BTreeMap<String, Revision>, Error>;

    // ---- audit log (append-only) ----

    /// Appends entries to the audit log, in one transaction.
    fn append_audit(&self, entries: &[AuditEntry]) -> Result<(), Error>;

    /// Audit entries matching the filter, newest first.
    fn audit_log(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, Error>;

    // ---- claims (replicas) ----

    /// Claims the work named `key` (a run id, or any other name such as a retention sweep's)
    /// for `owner` until `lease_until`. Succeeds when nobody holds it, when `owner` already
    /// does (a restarted replica taking its own work back), or when the holder's lease ran
    /// out before `now` (it died or lost the database); never once the work is done. Atomic:
    /// of replicas claiming at the same moment exactly one gets [`Claim::Acquired`].
    fn claim(
        &self,
        key: &str,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Claim, Error>;

    /// Extends a claim `owner` holds. Returns false if it lost the claim (taken over after its
    /// lease ran out, or finished).
    fn renew_claim(
        &self,
        key: &str,
        owner: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, Error>;

    /// Marks claimed work done, so it is never claimed again (a completed or failed run).
    fn finish_claim(&self, key: &str, owner: &str) -> Result<(), Error>;

    /// Gives a claim up so anyone may take it at once (a run interrupted by shutdown).
    fn release_claim(&self, key: &str, owner: &str) -> Result<(), Error>;

    /// Keys of unfinished claims whose lease ran out before `now`: work whose holder died,
    /// for another replica to take over.
    fn expired_claims(&self, now: DateTime<Utc>) -> Result<Vec<String>, Error>;
}

/// Opens the state store a URL names (`[state] url`, with `[state] password` for PostgreSQL).
/// Relative paths resolve against `base`, the directory of exportd.toml, like
/// [`crate::store::open`].
pub fn open(
    url: &str,
    password: Option<&crate::config::secret::SecretRef>,
    base: &Path,
) -> Result<Box<dyn StateStore>, Error> {
    if crate::postgres::is_postgres_url(url) {
        let password = password.map(|p| p.resolve()).transpose()?;
        return Ok(Box::new(postgres::PostgresState::open(
            url,
            password.as_ref(),
        )?));
    }
    match url.strip_prefix("sqlite://") {
        Some(path) => {
            let path = Path::new(path);
            let path = if path.is_absolute() {
                path.to_path_buf()
            } else {
                base.join(path)
            };
            Ok(Box::new(SqliteState::open(&path)?))
        }
        None => Err(Error::UnsupportedUrl(url.to_owned())),
    }
}

/// Behaviour every state store shares, run against each implementation by its tests.
#[cfg(test)]
pub(crate) mod conformance {
    use super::*;
    use chrono::TimeZone;

    fn t(minute: u32, second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, 15, 2, minute, second)
            .unwrap()
    }

    /// Claims: one winner, renewals by the holder only, take-over after the lease, never
    /// after done, release for an immediate retry.
    pub(crate) fn claims(s: &dyn StateStore) {
        let key = "daily/20240115T020000Z";
        assert_eq!(
            s.claim(key, "a", t(0, 0), t(1, 0)).unwrap(),
            Claim::Acquired
        );
        assert_eq!(
            s.claim(key, "b", t(0, 30), t(1, 30)).unwrap(),
            Claim::Held {
                owner: "a".into(),
                lease_until: t(1, 0)
            }
        );
        // The holder claiming again (a restart) keeps it.
        assert_eq!(
            s.claim(key, "a", t(0, 40), t(1, 40)).unwrap(),
            Claim::Acquired
        );
        assert!(s.renew_claim(key, "a", t(2, 0)).unwrap());
        assert!(!s.renew_claim(key, "b", t(3, 0)).unwrap());
        assert_eq!(s.expired_claims(t(1, 59)).unwrap(), Vec::<String>::new());
        assert_eq!(s.expired_claims(t(2, 1)).unwrap(), vec![key.to_owned()]);
        // After the lease, another owner takes it over; the old holder cannot renew.
        assert_eq!(
            s.claim(key, "b", t(2, 1), t(3, 0)).unwrap(),
            Claim::Acquired
        );
        assert!(!s.renew_claim(key, "a", t(4, 0)).unwrap());
        s.finish_claim(key, "b").unwrap();
        assert_eq!(s.claim(key, "c", t(9, 0), t(10, 0)).unwrap(), Claim::Done);
        assert_eq!(s.claim(key, "b", t(9, 0), t(10, 0)).unwrap(), Claim::Done);
        assert_eq!(s.expired_claims(t(30, 0)).unwrap(), Vec::<String>::new());
        // Released work is free at once.
        let other = "daily/20240115T030000Z";
        assert_eq!(
            s.claim(other, "a", t(0, 0), t(5, 0)).unwrap(),
            Claim::Acquired
        );
        s.release_claim(other, "a").unwrap();
        assert_eq!(
            s.claim(other, "b", t(0, 1), t(5, 0)).unwrap(),
            Claim::Acquired
        );
    }

    /// Runs, ledger, watermarks and revisions round-trip the same way in every store.
    pub(crate) fn records(s: &dyn StateStore) {
        let start = RunStart {
            export: "daily".into(),
            nominal: t(0, 0),
            window_start: Some(t(0, 0) - chrono::Duration::days(1)),
            window_end: t(0, 0),
            trigger: Trigger::Schedule,
            revision: "abc".into(),
            started_at: t(0, 1),
        };
        let first = s.record_start(&start).unwrap();
        assert_eq!((first.state, first.attempt), (RunState::Running, 1));
        assert_eq!(s.running_runs().unwrap().len(), 1);
        let done = s
            .record_finish(
                &first.id,
                &RunOutcome::Completed {
                    rows: 10,
                    bytes: 200,
                    parts: 1,
                },
                t(0, 5),
            )
            .unwrap();
        assert_eq!(
            (done.state, done.rows, done.finished_at),
            (RunState::Completed, Some(10), Some(t(0, 5)))
        );
        let again = s.record_start(&start).unwrap();
        assert_eq!((again.attempt, again.rows), (2, None));
        let failed = s
            .record_finish(
                &again.id,
                &RunOutcome::Failed {
                    error: "boom".into(),
                },
                t(0, 9),
            )
            .unwrap();
        assert_eq!(
            (failed.state, failed.error.as_deref()),
            (RunState::Failed, Some("boom"))
        );
        assert!(matches!(
            s.record_finish("nope/1", &RunOutcome::Failed { error: "x".into() }, t(0, 9)),
            Err(Error::UnknownRun(_))
        ));
        assert_eq!(s.last_nominal("daily").unwrap(), Some(t(0, 0)));
        assert_eq!(s.last_nominals().unwrap().get("daily"), Some(&t(0, 0)));
        let listed = s
            .list_runs(&RunFilter {
                export: Some("daily".into()),
                state: Some(RunState::Failed),
                limit: Some(5),
            })
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(s.get_run(&first.id).unwrap().unwrap().attempt, 2);
        let delivery = Delivery {
            export: "daily".into(),
            run_id: first.id.clone(),
            destination: "local#0".into(),
            key: "a.csv".into(),
            bytes: 5,
            sha256: "00".into(),
            delivered_at: t(0, 4),
            expires_at: Some(t(30, 0)),
            location: r#"{"to":"local"}"#.into(),
            transitioned_at: None,
        };
        s.record_deliveries(&[delivery.clone(), delivery.clone()])
            .unwrap();
        assert_eq!(
            s.deliveries_for_run(&first.id).unwrap(),
            vec![delivery.clone()]
        );
        assert_eq!(s.deliveries_for_export("daily").unwrap().len(), 1);
        assert_eq!(s.ledger_exports().unwrap(), vec!["daily".to_owned()]);
        let totals = s.ledger_totals(Some("daily"), t(0, 5)).unwrap();
        assert_eq!(
            (totals.len(), totals[0].objects, totals[0].bytes),
            (1, 1, 5)
        );
        assert_eq!(totals[0].bytes_since, 0, "delivered before `since`");
        assert!(s.ledger_totals(Some("other"), t(0, 0)).unwrap().is_empty());
        s.append_audit(&[
            AuditEntry::new(
                "ops",
                "operations",
                "download",
                "daily/a.csv",
                "ok",
                t(1, 0),
            ),
            AuditEntry::new(
                "exportd",
                "schedule",
                "delivery",
                "local#0 a.csv",
                "ok",
                t(2, 0),
            ),
        ])
        .unwrap();
        let all = s.audit_log(&AuditFilter::default()).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].action, "delivery", "newest first");
        let by_ops = s
            .audit_log(&AuditFilter {
                actor: Some("ops".into()),
                ..AuditFilter::default()
            })
            .unwrap();
        assert_eq!((by_ops.len(), by_ops[0].at), (1, t(1, 0)));
        let recent = s
            .audit_log(&AuditFilter {
                since: Some(t(1, 30)),
                limit: Some(5),
                ..AuditFilter::default()
            })
            .unwrap();
        assert_eq!(recent.len(), 1);
        assert!(s.mark_transitioned("local#0", "a.csv", t(31, 0)).unwrap());
        assert!(
            !s.mark_transitioned("local#0", "nope.csv", t(31, 0))
                .unwrap()
        );
        let moved = s.deliveries_for_export("daily").unwrap().remove(0);
        assert_eq!(moved.transitioned_at, Some(t(31, 0)));
        assert_eq!(
            Delivery {
                transitioned_at: None,
                ..moved
            },
            delivery,
            "only the transition time changed"
        );
        // A re-delivery under the same name is a new object, in the class it was written in.
        s.record_delivery(&delivery).unwrap();
        assert_eq!(
            s.deliveries_for_run(&first.id).unwrap()[0].transitioned_at,
            None
        );
        assert!(s.remove_delivery("local#0", "a.csv").unwrap());
        assert!(!s.remove_delivery("local#0", "a.csv").unwrap());
        assert_eq!(s.set_watermark("daily", t(5, 0)).unwrap(), t(5, 0));
        assert_eq!(s.set_watermark("daily", t(1, 0)).unwrap(), t(5, 0));
        assert_eq!(s.watermark("daily").unwrap(), Some(t(5, 0)));
        s.set_accepted_revision("daily", "r1", t(0, 0)).unwrap();
        s.set_accepted_revisions(&[("daily".into(), "r1".into())], t(9, 0))
            .unwrap();
        assert_eq!(
            s.accepted_revision("daily").unwrap().unwrap().accepted_at,
            t(0, 0)
        );
        assert_eq!(s.accepted_revisions().unwrap().len(), 1);
        assert!(s.remove_accepted_revision("daily").unwrap());
        assert_eq!(s.accepted_revision("daily").unwrap(), None);
    }
}
