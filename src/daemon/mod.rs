//! The long-running service, `exportd run`: watches the definitions, keeps every valid one
//! scheduled, runs exports at their nominal times and reloads on change or SIGHUP.
//!
//! One event loop consumes a closed set of [`Event`]s, so every trigger is visible in one place.
//! Runs execute on blocking threads; runs of one export never overlap (a run that comes due
//! while the previous one is still running waits for it).
//!
//! Several replicas may share one PostgreSQL state store: before a run starts, its replica
//! claims it ([`StateStore::claim`], key = run id) under a lease renewed while the run lives.
//! A run claimed or finished elsewhere is skipped; a run whose holder stopped renewing is
//! taken over once the lease runs out (see [`Daemon::take_over_expired`]). With SQLite the
//! claim always succeeds and changes nothing.
//!
//! **Invariant:** an invalid definition never stops the daemon. The last valid version of that
//! export keeps its schedule, and the error is logged until the file is fixed.

pub mod reconcile;
pub mod registry;
pub mod scheduler;

use crate::config::ExportSpec;
use crate::pipeline::{Environment, RunPlan, RunReport};
use crate::runner;
use crate::state::{Claim, StateStore, Trigger};
use chrono::{DateTime, Utc};
use reconcile::{Fingerprint, Reconciler};
use registry::{Condition, ExportStatus, SharedRegistry};
use scheduler::ExportSchedule;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

/// How long SIGTERM waits for running runs before recording them as interrupted (they are
/// retried at the next start). systemd's `TimeoutStopSec=` in the shipped unit is longer.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(240);

/// With inotify, the fingerprint is still re-read this often, in case an event was missed
/// (network file systems, directories replaced wholesale).
const SAFETY_POLL: std::time::Duration = std::time::Duration::from_secs(30);

/// How often the exports directory is checked for changes. Two equal readings in a row are
/// needed before a change is applied, so half-written files and editor save dances settle.
const WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

/// What wakes the event loop.
#[derive(Debug)]
pub enum Event {
    /// Time passed: start what is due.
    Tick,
    /// The definitions on disk changed (or SIGHUP): validate and reconcile.
    Reload(&'static str),
    /// A run ended.
    RunFinished {
        /// Export name.
        export: String,
        /// Its nominal time.
        nominal: DateTime<Utc>,
        /// What happened.
        result: Box<Result<RunReport, String>>,
    },
    /// A retention sweep ended.
    SweepFinished(Box<Result<crate::retention::Report, String>>),
    /// `POST /v1/exports/{name}/run`: run an export now. The reply carries the run id, or why
    /// it cannot start (unknown export, already running, shutting down).
    Trigger {
        /// Export name.
        export: String,
        /// Where the answer goes.
        reply: tokio::sync::oneshot::Sender<Result<String, TriggerError>>,
    },
    /// `POST /v1/exports/adhoc`: validate a definition sent to the API as if it were a file in
    /// exports.d, and run it once now. It is never scheduled and never written to disk.
    Adhoc {
        /// The export name (`adhoc-…`).
        name: String,
        /// The definition's TOML text.
        definition: String,
        /// The run id, or why it did not start.
        reply: tokio::sync::oneshot::Sender<Result<String, AdhocError>>,
    },
    /// `POST /v1/exports/{name}/suspend|resume`: stop or restart scheduling an export without
    /// editing its file. Manual triggers still run, as with `suspend = true`.
    Suspend {
        /// Export name.
        export: String,
        /// `true` to suspend, `false` to resume.
        suspend: bool,
        /// Whether anything changed, or why not.
        reply: tokio::sync::oneshot::Sender<Result<bool, SuspendError>>,
    },
    /// `DELETE /v1/runs/{export}/{run}/files`: delete everything the ledger lists for one run,
    /// with the retention sweep's checks (a changed object is kept and reported).
    DeleteRun {
        /// Export name.
        export: String,
        /// Run id (`EXPORT/RUNID`).
        run_id: String,
        /// The token's name, for the audit log.
        actor: String,
        /// What was deleted, kept or skipped.
        reply: tokio::sync::oneshot::Sender<Result<crate::retention::Report, String>>,
    },
    /// SIGTERM / SIGINT: stop scheduling, let running runs finish.
    Shutdown,
}

/// Why an export could not be suspended or resumed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SuspendError {
    /// No valid export of that name.
    #[error("no export named `{0}`")]
    UnknownExport(String),
    /// Its file says `suspend = true`, which only an edit of the file undoes.
    #[error(
        "export `{0}` is suspended by `suspend = true` in its file: set `suspend = false` there; the daemon reloads it"
    )]
    SuspendedInFile(String),
}

/// Why an ad-hoc run did not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdhocError {
    /// The definition has errors; each is `adhoc-NAME.toml:LINE:COL: error: …`.
    #[error("the definition is invalid:\n{}", .0.join("\n"))]
    Invalid(Vec<String>),
    /// The name is taken by an export in exports.d or a running ad-hoc run.
    #[error("export `{0}` already exists or is running; choose another `name`")]
    NameTaken(String),
    /// The daemon is stopping.
    #[error("the daemon is shutting down")]
    ShuttingDown,
}

/// Why a triggered run did not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TriggerError {
    /// No valid export of that name.
    #[error("no export named `{0}`")]
    UnknownExport(String),
    /// A run of the export is in progress; runs of one export never overlap.
    #[error("export `{0}` is already running; try again when it finishes")]
    AlreadyRunning(String),
    /// The daemon is stopping.
    #[error("the daemon is shutting down")]
    ShuttingDown,
}

/// Where the daemon finds its configuration.
#[derive(Debug, Clone)]
pub struct Options {
    /// exportd.toml.
    pub config: PathBuf,
    /// exports.d.
    pub exports: PathBuf,
}

/// One scheduled export.
struct Slot {
    spec: Arc<ExportSpec>,
    queue: ExportSchedule,
    /// The run this replica is executing for the export, if any.
    running_run: Option<String>,
}

/// Everything the event loop works with.
struct Daemon {
    env: Environment,
    /// exportd.toml as of the last reload, for validating ad-hoc definitions.
    config: Arc<crate::config::daemon::DaemonConfig>,
    /// Ad-hoc exports with a run in progress (they have no slot).
    adhoc_running: std::collections::BTreeSet<String>,
    /// Exports suspended through the API. Kept in memory: a restart schedules them again
    /// (the file's `suspend = true` is the durable switch).
    api_suspended: std::collections::BTreeSet<String>,
    state: Arc<dyn StateStore>,
    registry: SharedRegistry,
    slots: BTreeMap<String, Slot>,
    events: mpsc::UnboundedSender<Event>,
    max_catch_up: usize,
    /// After the state store failed to answer a claim, no run starts before this time.
    claims_paused_until: Option<DateTime<Utc>>,
    /// When to look for runs whose holder's lease ran out.
    next_takeover_scan: DateTime<Utc>,
    sweeps: Sweeps,
    /// Open alerts and where they go (shared with the registry for the API).
    alerts: crate::alerts::SharedAlerter,
}

/// When retention sweeps run: after every run and every `[retention] interval_minutes`, one
/// at a time.
#[derive(Debug)]
struct Sweeps {
    running: bool,
    /// A run finished while a sweep was running: sweep again when it ends.
    again: bool,
    next: std::time::Instant,
}

/// The claim a retention sweep holds while it runs, so replicas never sweep at once.
const SWEEP_CLAIM: &str = "retention-sweep";

/// How long a replica waits before claiming again after the state store failed.
const CLAIM_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs the daemon until SIGTERM. Blocks the calling thread.
pub fn run(options: Options) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(event_loop(options))
}

async fn event_loop(options: Options) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    spawn_signal_handlers(tx.clone())?;
    spawn_watcher(options.clone(), tx.clone());

    let mut reconciler = Reconciler::new(options.config.clone(), options.exports.clone());
    let first = reconciler.reload();
    let first_listen = first.listen.clone();
    let access = crate::access::Access::new(&first.access, &first_listen)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if access.is_open() {
        warn!(listen = %first_listen, "[access] lists no tokens: the API is open to anyone on this machine (loopback only). Create tokens with `exportd token new`.");
    }
    let state: Arc<dyn StateStore> = Arc::from(
        first
            .environment
            .open_state()
            .map_err(|e| anyhow::anyhow!("cannot open the state store: {e}"))?,
    );
    let registry: SharedRegistry = Arc::default();
    let alerts = crate::alerts::SharedAlerter::default();
    if let Ok(mut r) = registry.write() {
        r.started_at = Some(Utc::now());
        r.alerts = alerts.clone();
    }
    let mut daemon = Daemon {
        env: first.environment.clone(),
        config: first.daemon.clone(),
        adhoc_running: std::collections::BTreeSet::new(),
        api_suspended: std::collections::BTreeSet::new(),
        state,
        registry,
        slots: BTreeMap::new(),
        events: tx.clone(),
        max_catch_up: 100,
        sweeps: Sweeps {
            running: false,
            again: false,
            next: std::time::Instant::now(),
        },
        claims_paused_until: None,
        next_takeover_scan: Utc::now(),
        alerts,
    };
    daemon.apply(first, Utc::now());
    daemon.recover_interrupted_runs();
    let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
    daemon
        .start_api(&first_listen, Arc::new(access), api_stopped)
        .await?;
    info!(exports = daemon.slots.len(), "exportd is ready.");
    notify("READY=1");
    let watchdog = watchdog_interval();
    let mut last_ping = std::time::Instant::now();
    let mut shutting_down = false;
    let mut grace_ends: Option<std::time::Instant> = None;
    loop {
        // Keep-alives come from this loop, so a loop that stops turning stops them and
        // systemd restarts the service.
        if let Some(every) = watchdog
            && last_ping.elapsed() >= every
        {
            notify("WATCHDOG=1");
            last_ping = std::time::Instant::now();
        }
        let now = Utc::now();
        daemon.alerts.resend_due(now);
        if !shutting_down {
            daemon.take_over_expired(now);
            daemon.start_due_runs(now);
            if std::time::Instant::now() >= daemon.sweeps.next {
                daemon.start_sweep();
            }
        }
        if shutting_down && daemon.slots.values().all(|s| !s.queue.is_running()) {
            let _ = stop_api.send(());
            info!("All runs finished; exiting.");
            return Ok(());
        }
        if grace_ends.is_some_and(|end| std::time::Instant::now() >= end) {
            daemon.interrupt_running();
            let _ = stop_api.send(());
            info!("Grace period over; running runs recorded as interrupted; exiting.");
            return Ok(());
        }
        let wake = daemon
            .slots
            .values()
            .filter_map(|s| s.queue.wake_at(now))
            .min()
            .map(|t| t.max(daemon.claims_paused_until.unwrap_or(t)))
            .into_iter()
            .chain([daemon.next_takeover_scan])
            .chain(daemon.alerts.next_due())
            .min()
            .map(|t| (t - Utc::now()).to_std().unwrap_or_default())
            .unwrap_or(std::time::Duration::from_secs(60))
            .min(std::time::Duration::from_secs(60))
            .min(
                daemon
                    .sweeps
                    .next
                    .saturating_duration_since(std::time::Instant::now()),
            )
            .min(
                grace_ends
                    .map(|end| end.saturating_duration_since(std::time::Instant::now()))
                    .unwrap_or(std::time::Duration::MAX),
            )
            .min(
                watchdog
                    .map(|every| every.saturating_sub(last_ping.elapsed()))
                    .unwrap_or(std::time::Duration::MAX),
            );
        let event = tokio::select! {
            e = rx.recv() => e.unwrap_or(Event::Shutdown),
            _ = tokio::time::sleep(wake) => Event::Tick,
        };
        match event {
            Event::Tick => {}
            Event::Reload(why) => {
                info!(trigger = why, "Reloading definitions.");
                // Validating thousands of files takes a while: off the runtime's threads.
                let (back, outcome) = tokio::task::spawn_blocking(move || {
                    let outcome = reconciler.reload();
                    (reconciler, outcome)
                })
                .await?;
                reconciler = back;
                daemon.apply(outcome, Utc::now());
            }
            Event::RunFinished {
                export,
                nominal,
                result,
            } => {
                daemon.finished(&export, nominal, *result);
                if !shutting_down {
                    daemon.start_sweep();
                }
            }
            Event::SweepFinished(report) => daemon.sweep_finished(*report),
            Event::Trigger { export, reply } => {
                let answer = if shutting_down {
                    Err(TriggerError::ShuttingDown)
                } else {
                    daemon.trigger(&export, Utc::now())
                };
                let _ = reply.send(answer);
            }
            Event::Adhoc {
                name,
                definition,
                reply,
            } => {
                let answer = if shutting_down {
                    Err(AdhocError::ShuttingDown)
                } else {
                    daemon.adhoc(&name, &definition, Utc::now())
                };
                let _ = reply.send(answer);
            }
            Event::Suspend {
                export,
                suspend,
                reply,
            } => {
                let answer = daemon.set_suspended(&export, suspend, Utc::now());
                let _ = reply.send(answer);
            }
            Event::DeleteRun {
                export,
                run_id,
                actor,
                reply,
            } => daemon.delete_run(export, run_id, actor, reply),
            Event::Shutdown => {
                if shutting_down {
                    // A second signal: do not wait any longer.
                    grace_ends = Some(std::time::Instant::now());
                } else {
                    info!(
                        grace_seconds = SHUTDOWN_GRACE.as_secs(),
                        "Shutting down: no new runs; waiting for running ones."
                    );
                    notify("STOPPING=1");
                    grace_ends = Some(std::time::Instant::now() + SHUTDOWN_GRACE);
                }
                shutting_down = true;
            }
        }
    }
}

impl Daemon {
    /// Reconciles the scheduled set with a reload's outcome.
    fn apply(&mut self, outcome: reconcile::Outcome, now: DateTime<Utc>) {
        for d in &outcome.diagnostics {
            if d.is_error() {
                error!(diagnostic = %d, "Definition rejected; the last valid version (if any) keeps running.");
            } else {
                warn!(diagnostic = %d, "Definition warning.");
            }
        }
        self.env = outcome.environment.clone();
        self.alerts
            .configure(self.env.alerts.as_ref(), &self.env.connections);
        let rejected: Vec<(String, Vec<String>)> = outcome
            .rejected_files
            .iter()
            .map(|(name, file)| {
                let errors = outcome
                    .diagnostics
                    .iter()
                    .filter(|d| d.file == *file && d.is_error())
                    .map(ToString::to_string)
                    .collect();
                (name.clone(), errors)
            })
            .collect();
        self.alerts.definitions(&rejected);
        self.config = outcome.daemon.clone();
        if let Ok(mut registry) = self.registry.write() {
            registry.prices = self.env.prices;
            registry.specs = outcome.active.clone();
            registry.deliver = self.env.deliver_context();
        }
        self.audit(
            "reload",
            "exports.d",
            &if outcome.rejected.is_empty() {
                format!("ok: {} exports", outcome.active.len())
            } else {
                format!("rejected: {}", outcome.rejected.join(", "))
            },
        );
        for name in &outcome.diff.removed {
            self.alerts.export_removed(name);
            self.api_suspended.remove(name);
            if let Some(slot) = self.slots.remove(name)
                && slot.spec.def.on_remove == crate::config::export::OnRemove::Delete
            {
                self.delete_everything_of(name);
            }
        }
        let last_nominals = self.state.last_nominals().unwrap_or_else(|e| {
            warn!(error = %e, "Cannot read the run history; no catch-up.");
            Default::default()
        });
        let mut accepted = Vec::new();
        for spec in outcome.active.values() {
            let unchanged = self
                .slots
                .get(&spec.name)
                .is_some_and(|s| s.spec.revision == spec.revision);
            if unchanged {
                continue;
            }
            let last = last_nominals.get(&spec.name).copied();
            let mut queue = ExportSchedule::new(
                spec.schedule.clone(),
                spec.timezone,
                spec.def.suspend || self.api_suspended.contains(&spec.name),
                last,
                spec.def.catch_up,
                self.max_catch_up,
                now,
            );
            let previous = self.slots.remove(&spec.name);
            if previous.as_ref().is_some_and(|p| p.queue.is_running()) {
                // The running run finishes under the old revision; the new queue waits for it.
                queue.mark_running();
            }
            if queue.caught_up.0 > 0 || queue.caught_up.1 > 0 {
                info!(
                    export = %spec.name,
                    queued = queue.caught_up.0,
                    skipped = queue.caught_up.1,
                    policy = ?spec.def.catch_up,
                    "Catching up runs missed while the daemon was down."
                );
            }
            accepted.push((spec.name.clone(), spec.revision.clone()));
            self.slots.insert(
                spec.name.clone(),
                Slot {
                    spec: spec.clone(),
                    queue,
                    running_run: previous.and_then(|p| p.running_run),
                },
            );
        }
        if let Err(e) = self.state.set_accepted_revisions(&accepted, now) {
            warn!(error = %e, "Cannot record the accepted revisions.");
        }
        let failed = !outcome.rejected.is_empty();
        // Names only while short: a reload of thousands of files logs counts (names at debug).
        const NAMES_LOGGED: usize = 20;
        let names = |list: &[String]| {
            if list.len() <= NAMES_LOGGED {
                format!("{list:?}")
            } else {
                format!("{} exports", list.len())
            }
        };
        info!(
            added = %names(&outcome.diff.added),
            changed = %names(&outcome.diff.changed),
            removed = %names(&outcome.diff.removed),
            rejected = outcome.rejected.len(),
            "Definitions reconciled."
        );
        debug!(added = ?outcome.diff.added, changed = ?outcome.diff.changed, removed = ?outcome.diff.removed, "Reconcile diff.");
        self.publish(&outcome, failed, now);
    }

    /// Rebuilds the registry the API reads.
    fn publish(&self, outcome: &reconcile::Outcome, failed: bool, now: DateTime<Utc>) {
        let Ok(mut registry) = self.registry.write() else {
            return;
        };
        if failed {
            registry.counters.reloads_failed += 1;
        } else {
            registry.counters.reloads_ok += 1;
        }
        registry.last_reload = Some(now);
        registry.exports.clear();
        for (name, slot) in &self.slots {
            registry.exports.insert(name.clone(), self.status_of(slot));
        }
        for (name, file) in &outcome.rejected_files {
            let errors: Vec<String> = outcome
                .diagnostics
                .iter()
                .filter(|d| d.file == *file && d.is_error())
                .map(ToString::to_string)
                .collect();
            let entry = registry
                .exports
                .entry(name.clone())
                .or_insert_with(|| ExportStatus::bare(name, file.clone(), Condition::Stalled));
            entry.condition = Condition::Stalled;
            entry.reason = if entry.active_revision.is_some() {
                "the file on disk is invalid; the last valid version keeps running".into()
            } else {
                "the file on disk is invalid and no valid version was ever accepted".into()
            };
            entry.errors = errors;
        }
    }

    fn status_of(&self, slot: &Slot) -> ExportStatus {
        let spec = &slot.spec;
        let (condition, reason) = if slot.queue.is_running() {
            (Condition::Running, "a run is in progress".to_owned())
        } else if spec.def.suspend {
            (Condition::Suspended, "`suspend = true`".to_owned())
        } else if self.api_suspended.contains(&spec.name) {
            (
                Condition::Suspended,
                format!(
                    "suspended through the API; POST /v1/exports/{}/resume schedules it again",
                    spec.name
                ),
            )
        } else if spec.schedule.is_none() {
            (
                Condition::OnDemand,
                "no schedule: runs on demand".to_owned(),
            )
        } else {
            (Condition::Ready, "scheduled".to_owned())
        };
        ExportStatus {
            name: spec.name.clone(),
            file: spec.file.clone(),
            description: spec.def.description.clone(),
            condition,
            reason,
            active_revision: Some(spec.revision.clone()),
            schedule: spec.schedule.as_ref().map(|s| s.describe()),
            timezone: Some(spec.timezone.name().to_owned()),
            window: Some(spec.window.as_str().to_owned()),
            next_runs: slot.queue.upcoming(3),
            errors: Vec::new(),
        }
    }

    fn refresh_status(&self, export: &str) {
        if let (Some(slot), Ok(mut registry)) = (self.slots.get(export), self.registry.write()) {
            let status = self.status_of(slot);
            let entry = registry
                .exports
                .entry(export.to_owned())
                .or_insert(status.clone());
            // A stalled export keeps its file errors while its last valid version runs.
            let errors = std::mem::take(&mut entry.errors);
            let stalled = entry.condition == Condition::Stalled;
            *entry = status;
            if stalled && !errors.is_empty() {
                entry.condition = Condition::Stalled;
                entry.errors = errors;
            }
        }
    }

    /// Records the runs this replica is still executing as interrupted (shutdown after the
    /// grace period) and gives their claims up, so whoever starts next retries them at once.
    /// Runs of other replicas are theirs to record.
    fn interrupt_running(&self) {
        for id in self.slots.values().filter_map(|s| s.running_run.as_ref()) {
            if let Err(e) = self.state.mark_interrupted(id, Utc::now()) {
                warn!(run_id = %id, error = %e, "Cannot record the run as interrupted.");
            }
            if let Err(e) = self.state.release_claim(id, &self.env.replica) {
                warn!(run_id = %id, error = %e, "Cannot release the claim on the run.");
            }
        }
    }

    /// Claims the run `id` for this replica for one lease.
    fn claim(&self, id: &str, now: DateTime<Utc>) -> Result<Claim, crate::state::Error> {
        let until = now + chrono::Duration::from_std(self.env.lease).unwrap_or_default();
        self.state.claim(id, &self.env.replica, now, until)
    }

    /// Queues the runs whose holder stopped renewing its claim (it died or lost the database):
    /// they start again here, as their next attempt, once this replica claims them.
    fn take_over_expired(&mut self, now: DateTime<Utc>) {
        if now < self.next_takeover_scan {
            return;
        }
        self.next_takeover_scan =
            now + chrono::Duration::from_std(self.env.lease / 2).unwrap_or_default();
        let expired = match self.state.expired_claims(now) {
            Ok(keys) => keys,
            Err(e) => {
                warn!(error = %e, "Cannot read the claims; no run is taken over.");
                return;
            }
        };
        for key in expired {
            let Some((export, _)) = key.split_once('/') else {
                continue;
            };
            let Some(slot) = self.slots.get_mut(export) else {
                continue;
            };
            if slot.running_run.as_deref() == Some(key.as_str()) {
                continue;
            }
            if let Ok(Some(run)) = self.state.get_run(&key)
                && matches!(
                    run.state,
                    crate::state::RunState::Running | crate::state::RunState::Interrupted
                )
                && !slot.queue.pending_contains(run.nominal)
            {
                info!(export = %run.export, run_id = %run.id, "Taking over a run whose replica stopped renewing its claim.");
                slot.queue.push_front(run.nominal, run.trigger);
            }
        }
    }

    /// Runs left `running` by a crash, or `interrupted` by a shutdown, are started again first.
    fn recover_interrupted_runs(&mut self) {
        let interrupted = self
            .state
            .list_runs(&crate::state::RunFilter {
                export: None,
                state: Some(crate::state::RunState::Interrupted),
                limit: None,
            })
            .unwrap_or_default();
        let mut running = self.state.running_runs().unwrap_or_else(|e| {
            warn!(error = %e, "Cannot read runs left running; none recovered.");
            Vec::new()
        });
        running.extend(interrupted);
        for run in running {
            match self.slots.get_mut(&run.export) {
                Some(slot) => {
                    info!(export = %run.export, run_id = %run.id, state = %run.state.as_str(), "Retrying a run interrupted by a crash or shutdown.");
                    slot.queue.push_front(run.nominal, run.trigger);
                }
                None if run.state == crate::state::RunState::Running => {
                    // Only a run nobody else holds: another replica may still be running it.
                    if let Ok(Claim::Acquired) = self.claim(&run.id, Utc::now()) {
                        let _ = self.state.mark_interrupted(&run.id, Utc::now());
                        let _ = self.state.release_claim(&run.id, &self.env.replica);
                    }
                }
                None => {}
            }
        }
    }

    /// Starts every due run this replica can claim. A run claimed by a live replica, or
    /// already finished by one, is skipped and the export's next due run is tried. If the state
    /// store cannot be reached nothing starts: the run goes back to the queue and claiming
    /// pauses for [`CLAIM_RETRY`].
    fn start_due_runs(&mut self, now: DateTime<Utc>) {
        if self.claims_paused_until.is_some_and(|until| now < until) {
            return;
        }
        self.claims_paused_until = None;
        let names: Vec<String> = self.slots.keys().cloned().collect();
        for name in names {
            while let Some(slot) = self.slots.get_mut(&name) {
                let Some((nominal, trigger)) = slot.queue.poll(now) else {
                    break;
                };
                let spec = slot.spec.clone();
                let id = crate::state::run_id(&name, nominal);
                match self.claim(&id, now) {
                    Ok(Claim::Acquired) => {
                        if let Some(slot) = self.slots.get_mut(&name) {
                            slot.running_run = Some(id);
                        }
                        self.start_run(spec, nominal, trigger);
                        self.refresh_status(&name);
                        break;
                    }
                    Ok(claim) => {
                        debug!(run_id = %id, claim = ?claim, "Run claimed by another replica; skipped.");
                        if let Some(slot) = self.slots.get_mut(&name) {
                            slot.queue.finished();
                        }
                    }
                    Err(e) => {
                        warn!(run_id = %id, error = %e, "Cannot claim the run: the state store does not answer; no run starts until it does.");
                        if let Some(slot) = self.slots.get_mut(&name) {
                            slot.queue.finished();
                            slot.queue.push_front(nominal, trigger);
                        }
                        self.claims_paused_until =
                            Some(now + chrono::Duration::from_std(CLAIM_RETRY).unwrap_or_default());
                        return;
                    }
                }
            }
        }
    }

    fn trigger(&mut self, export: &str, now: DateTime<Utc>) -> Result<String, TriggerError> {
        let slot = self
            .slots
            .get_mut(export)
            .ok_or_else(|| TriggerError::UnknownExport(export.to_owned()))?;
        if slot.queue.is_running() {
            return Err(TriggerError::AlreadyRunning(export.to_owned()));
        }
        slot.queue.push_front(now, Trigger::Api);
        self.start_due_runs(now);
        Ok(crate::state::run_id(export, now))
    }

    /// Suspends or resumes scheduling `export`; returns whether anything changed. The queue
    /// is rebuilt as a reload would: suspending drops the runs waiting to start, resuming
    /// catches up what was missed as the export's `catch_up` says. A running run goes on.
    fn set_suspended(
        &mut self,
        export: &str,
        suspend: bool,
        now: DateTime<Utc>,
    ) -> Result<bool, SuspendError> {
        let Some(slot) = self.slots.get(export) else {
            return Err(SuspendError::UnknownExport(export.to_owned()));
        };
        let action = if suspend { "suspend" } else { "resume" };
        if !suspend && slot.spec.def.suspend {
            self.audit(action, export, "refused: `suspend = true` in its file");
            return Err(SuspendError::SuspendedInFile(export.to_owned()));
        }
        let changed = if suspend {
            self.api_suspended.insert(export.to_owned())
        } else {
            self.api_suspended.remove(export)
        };
        if changed {
            let last = self
                .state
                .last_nominals()
                .unwrap_or_else(|e| {
                    warn!(error = %e, "Cannot read the run history; no catch-up.");
                    Default::default()
                })
                .get(export)
                .copied();
            let max_catch_up = self.max_catch_up;
            if let Some(slot) = self.slots.get_mut(export) {
                let spec = slot.spec.clone();
                let mut queue = ExportSchedule::new(
                    spec.schedule.clone(),
                    spec.timezone,
                    suspend,
                    last,
                    spec.def.catch_up,
                    max_catch_up,
                    now,
                );
                if slot.queue.is_running() {
                    queue.mark_running();
                }
                slot.queue = queue;
            }
            info!(export = %export, "{}", if suspend { "Suspended through the API." } else { "Resumed through the API." });
        }
        self.audit(action, export, if changed { "ok" } else { "unchanged" });
        self.refresh_status(export);
        self.start_due_runs(now);
        Ok(changed)
    }

    /// Validates an ad-hoc definition exactly as a file in exports.d (against the current
    /// exportd.toml) and starts its one run, unscheduled and unclaimed: the request reached
    /// one replica only.
    fn adhoc(
        &mut self,
        name: &str,
        definition: &str,
        now: DateTime<Utc>,
    ) -> Result<String, AdhocError> {
        if self.slots.contains_key(name) || self.adhoc_running.contains(name) {
            return Err(AdhocError::NameTaken(name.to_owned()));
        }
        let file = PathBuf::from(format!("{name}.toml"));
        let (spec, diagnostics) =
            crate::config::validate::check_export(name, &file, definition, &self.config);
        let Some(spec) = spec.filter(|_| !diagnostics.iter().any(|d| d.is_error())) else {
            self.audit("adhoc", name, "invalid");
            return Err(AdhocError::Invalid(
                diagnostics
                    .iter()
                    .filter(|d| d.is_error())
                    .map(ToString::to_string)
                    .collect(),
            ));
        };
        self.adhoc_running.insert(name.to_owned());
        self.audit("adhoc", name, "started");
        self.start_run(Arc::new(spec), now, Trigger::Api);
        Ok(crate::state::run_id(name, now))
    }

    /// Appends the daemon's own action to the audit log (a failure to write it is logged: the
    /// daemon keeps working).
    fn audit(&self, action: &str, target: &str, outcome: &str) {
        let entry =
            crate::state::AuditEntry::new("daemon", "", action, target, outcome, Utc::now());
        if let Err(e) = self.state.append_audit(&[entry]) {
            warn!(error = %e, "Cannot write the audit log.");
        }
    }

    /// Starts a retention sweep on a blocking thread, unless one is running (then it runs
    /// again when that one ends).
    fn start_sweep(&mut self) {
        let every = std::time::Duration::from_secs(
            u64::from(self.env.retention.interval_minutes.max(1)) * 60,
        );
        self.sweeps.next = std::time::Instant::now() + every;
        if self.sweeps.running {
            self.sweeps.again = true;
            return;
        }
        self.sweeps.running = true;
        let specs: Vec<ExportSpec> = self.slots.values().map(|s| (*s.spec).clone()).collect();
        let active = self.active_specs();
        let alerts = self.alerts.clone();
        let env = self.env.clone();
        let state = self.state.clone();
        let tx = self.events.clone();
        tokio::task::spawn_blocking(move || {
            let report = exclusive_sweep(&state, &env.replica, env.lease, || {
                crate::retention::sweep(
                    &specs,
                    state.as_ref(),
                    &env.deliver_context(),
                    crate::retention::Guards::from(&env.retention),
                    Utc::now(),
                    crate::retention::Scope::default(),
                )
                .map_err(|e| e.to_string())
            });
            // A sweep frees space: a quota alert may clear.
            alerts.check_quotas(&active, state.as_ref());
            let _ = tx.send(Event::SweepFinished(Box::new(report)));
        });
    }

    /// Deletes one run's delivered objects on the blocking pool and answers the API.
    fn delete_run(
        &self,
        export: String,
        run_id: String,
        actor: String,
        reply: tokio::sync::oneshot::Sender<Result<crate::retention::Report, String>>,
    ) {
        warn!(run_id = %run_id, actor = %actor, "Deleting a run's delivered files on request.");
        let specs: Vec<ExportSpec> = self.slots.values().map(|s| (*s.spec).clone()).collect();
        let env = self.env.clone();
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || {
            let report = crate::retention::sweep(
                &specs,
                state.as_ref(),
                &env.deliver_context(),
                crate::retention::Guards::from(&env.retention),
                Utc::now(),
                crate::retention::Scope {
                    only: Some(&export),
                    everything: true,
                    run: Some(&run_id),
                    actor: Some(&actor),
                    ..Default::default()
                },
            )
            .map_err(|e| e.to_string());
            let _ = reply.send(report);
        });
    }

    /// An export removed with `on_remove = "delete"`: everything the ledger says it delivered
    /// is deleted now (with the same checks as a sweep: changed objects are kept).
    fn delete_everything_of(&self, export: &str) {
        warn!(
            export,
            "Definition removed with on_remove = \"delete\": deleting its delivered files."
        );
        let env = self.env.clone();
        let state = self.state.clone();
        let export = export.to_owned();
        tokio::task::spawn_blocking(move || {
            let report = crate::retention::sweep(
                &[],
                state.as_ref(),
                &env.deliver_context(),
                crate::retention::Guards::from(&env.retention),
                Utc::now(),
                crate::retention::Scope {
                    only: Some(&export),
                    everything: true,
                    ..Default::default()
                },
            );
            match report {
                Ok(r) => info!(
                    export,
                    deleted = r.deleted(),
                    skipped = r.skipped().count(),
                    "Files of the removed export deleted."
                ),
                Err(e) => {
                    warn!(export, error = %e, "Cannot delete the files of the removed export; `exportd retention` reports them.")
                }
            }
        });
    }

    fn sweep_finished(&mut self, report: Result<crate::retention::Report, String>) {
        self.sweeps.running = false;
        match report {
            Ok(report) => {
                let skipped = report.skipped().count();
                if report.deleted() > 0 || skipped > 0 || !report.transitions.is_empty() {
                    info!(
                        deleted = report.deleted(),
                        skipped,
                        transitioned = report.transitioned(),
                        not_transitioned = report.transitions_skipped().count(),
                        kept_by_keep_last = report.kept_by_keep_last,
                        deferred = report.deferred,
                        expired_runs = report.expired_runs.len(),
                        "Retention sweep done."
                    );
                }
                if let Ok(mut registry) = self.registry.write() {
                    registry
                        .counters
                        .retention_swept(report.deleted() as u64, skipped as u64);
                }
            }
            Err(e) => warn!(error = %e, "Retention sweep failed; it runs again later."),
        }
        if std::mem::take(&mut self.sweeps.again) {
            self.start_sweep();
        }
    }

    /// The accepted definitions.
    fn active_specs(&self) -> Vec<Arc<ExportSpec>> {
        self.slots.values().map(|s| s.spec.clone()).collect()
    }

    fn start_run(&self, spec: Arc<ExportSpec>, nominal: DateTime<Utc>, trigger: Trigger) {
        let alerts = self.alerts.clone();
        let active = self.active_specs();
        let env = self.env.clone();
        let state = self.state.clone();
        let tx = self.events.clone();
        info!(export = %spec.name, nominal = %nominal.to_rfc3339(), trigger = trigger.as_str(), "Run started.");
        tokio::task::spawn_blocking(move || {
            let id = crate::state::run_id(&spec.name, nominal);
            let lease = renew_lease(state.clone(), id.clone(), env.replica.clone(), env.lease);
            let watermark = state.watermark(&spec.name).ok().flatten();
            let plan = RunPlan::at(&spec, nominal, watermark);
            let run_id = plan.run_id();
            let result = runner::execute(
                &env,
                state.as_ref(),
                &spec,
                &plan,
                trigger,
                &mut |_, _| {},
                &mut |rows, bytes| alerts.staged(&spec, &run_id, rows, bytes),
            );
            // Alerts never change a run's outcome: they are raised after it is recorded.
            let result = match result {
                Ok(report) => {
                    alerts.run_finished(&spec.name, None);
                    Ok(report)
                }
                Err(e) => {
                    let text = format!("{e:#}");
                    let cause = if e.is_delivery() {
                        crate::alerts::Cause::DeliveryFailed
                    } else {
                        crate::alerts::Cause::RunFailed
                    };
                    alerts.run_finished(&spec.name, Some((cause, &text)));
                    Err(text)
                }
            };
            alerts.check_quotas(&active, state.as_ref());
            drop(lease);
            if let Err(e) = state.finish_claim(&id, &env.replica) {
                warn!(run_id = %id, error = %e, "Cannot mark the claim on the run finished; another replica may run it again after the lease.");
            }
            let _ = tx.send(Event::RunFinished {
                export: spec.name.clone(),
                nominal,
                result: Box::new(result),
            });
        });
    }

    fn finished(
        &mut self,
        export: &str,
        nominal: DateTime<Utc>,
        result: Result<RunReport, String>,
    ) {
        self.adhoc_running.remove(export);
        if let Some(slot) = self.slots.get_mut(export) {
            slot.queue.finished();
            slot.running_run = None;
        }
        let seconds;
        if let Ok(mut registry) = self.registry.write() {
            match &result {
                Ok(report) => {
                    seconds = report.elapsed_ms as f64 / 1000.0;
                    registry.counters.run_finished(
                        export,
                        "completed",
                        report.rows,
                        report.bytes,
                        seconds,
                    );
                    registry
                        .counters
                        .last_success
                        .insert(export.to_owned(), Utc::now());
                }
                Err(_) => registry.counters.run_finished(export, "failed", 0, 0, 0.0),
            }
        }
        match result {
            Ok(report) => info!(
                export = %export,
                run_id = %report.run_id,
                rows = report.rows,
                bytes = report.bytes,
                parts = report.parts.len(),
                elapsed_ms = report.elapsed_ms,
                "Run completed."
            ),
            Err(e) => {
                error!(export = %export, nominal = %nominal.to_rfc3339(), error = %e, "Run failed.")
            }
        }
        self.refresh_status(export);
    }

    /// Serves the HTTP API until `stop` fires. The listener is bound before READY=1, so a port
    /// already in use fails start-up instead of a background task.
    async fn start_api(
        &self,
        listen: &str,
        access: Arc<crate::access::Access>,
        stop: tokio::sync::oneshot::Receiver<()>,
    ) -> anyhow::Result<()> {
        let listener = crate::api::bind(listen).await?;
        let address = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| listen.to_owned());
        info!(address = %address, "HTTP API listening.");
        let router = crate::api::router(
            self.registry.clone(),
            self.state.clone(),
            self.events.clone(),
            access,
        );
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop.await;
            };
            if let Err(e) = crate::api::serve_on(listener, router, shutdown).await {
                error!(error = %e, "HTTP API stopped.");
            }
        });
        Ok(())
    }
}

/// Runs `sweep` while holding the claim [`SWEEP_CLAIM`], so replicas sharing a state store take
/// turns: the claim is renewed like a run's and released at the end, so the next sweep anywhere
/// may take it. While another replica holds it, this sweep is skipped (an empty report).
fn exclusive_sweep(
    state: &Arc<dyn StateStore>,
    replica: &str,
    lease: std::time::Duration,
    sweep: impl FnOnce() -> Result<crate::retention::Report, String>,
) -> Result<crate::retention::Report, String> {
    let until = Utc::now() + chrono::Duration::from_std(lease).unwrap_or_default();
    match state.claim(SWEEP_CLAIM, replica, Utc::now(), until) {
        Ok(Claim::Acquired) => {
            let renewing = renew_lease(
                state.clone(),
                SWEEP_CLAIM.to_owned(),
                replica.to_owned(),
                lease,
            );
            let report = sweep();
            drop(renewing);
            if let Err(e) = state.release_claim(SWEEP_CLAIM, replica) {
                warn!(error = %e, "Cannot release the retention sweep's claim; other replicas sweep again once its lease runs out.");
            }
            report
        }
        Ok(claim) => {
            debug!(claim = ?claim, "Another replica is sweeping; this sweep is skipped.");
            Ok(crate::retention::Report::default())
        }
        Err(e) => Err(format!("cannot claim the retention sweep: {e}")),
    }
}

/// Renews the claim on run `id` every third of `lease` until the returned sender is dropped
/// (the run ended). A renewal that fails is logged: the run goes on, and if the lease runs out
/// meanwhile another replica may start the same run, which writes the same object names.
fn renew_lease(
    state: Arc<dyn StateStore>,
    id: String,
    owner: String,
    lease: std::time::Duration,
) -> std::sync::mpsc::Sender<()> {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(lease / 3)
        {
            let until = Utc::now() + chrono::Duration::from_std(lease).unwrap_or_default();
            match state.renew_claim(&id, &owner, until) {
                Ok(true) => {}
                Ok(false) => {
                    warn!(run_id = %id, "Lost the claim on a running run: another replica took it over.");
                    break;
                }
                Err(e) => {
                    warn!(run_id = %id, error = %e, "Cannot renew the claim on a running run; retrying.");
                }
            }
        }
    });
    stop
}

fn spawn_signal_handlers(tx: mpsc::UnboundedSender<Event>) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                _ = hup.recv() => Event::Reload("SIGHUP"),
                _ = term.recv() => Event::Shutdown,
                _ = int.recv() => Event::Shutdown,
            };
            if tx.send(event).is_err() {
                break;
            }
        }
    });
    Ok(())
}

/// Watches the definitions and the config. inotify (through `notify`) says *that* something
/// changed; the fingerprint (names, sizes, mtimes) decides *whether* it changed, and a change
/// is applied once two readings 0.5 s apart agree, so half-written files and editors'
/// temp-file-and-rename saves settle first. Without inotify (or as a safety net, every 30 s)
/// the fingerprint is simply polled.
fn spawn_watcher(options: Options, tx: mpsc::UnboundedSender<Event>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dirty = Arc::new(AtomicBool::new(true));
    let watcher = {
        let dirty = dirty.clone();
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            // Reads (`Access`) change nothing; everything else might.
            if event.is_ok_and(|e| !matches!(e.kind, notify::EventKind::Access(_))) {
                dirty.store(true, Ordering::Relaxed);
            }
        })
        .and_then(|mut w| {
            use notify::Watcher;
            w.watch(&options.exports, notify::RecursiveMode::NonRecursive)?;
            let config_dir = options
                .config
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            w.watch(config_dir, notify::RecursiveMode::NonRecursive)?;
            Ok(w)
        })
    };
    let inotify = match watcher {
        Ok(w) => Some(w),
        Err(e) => {
            warn!(error = %e, "Cannot watch the definitions with inotify; polling instead.");
            None
        }
    };
    tokio::spawn(async move {
        // Keeps the watcher alive as long as the task.
        let _inotify = inotify;
        let polling = _inotify.is_none();
        let mut applied = Fingerprint::read(&options.config, &options.exports);
        let mut pending: Option<Fingerprint> = None;
        let mut since_check = std::time::Duration::ZERO;
        loop {
            tokio::time::sleep(WATCH_INTERVAL).await;
            since_check += WATCH_INTERVAL;
            let woken = dirty.swap(false, Ordering::Relaxed);
            if !(polling || woken || pending.is_some() || since_check >= SAFETY_POLL) {
                continue;
            }
            since_check = std::time::Duration::ZERO;
            let now = Fingerprint::read(&options.config, &options.exports);
            if now == applied {
                pending = None;
                continue;
            }
            if pending.as_ref() == Some(&now) {
                applied = now;
                pending = None;
                if tx.send(Event::Reload("file change")).is_err() {
                    break;
                }
            } else {
                pending = Some(now);
            }
        }
    });
}

/// Half the watchdog interval systemd asks for (`WatchdogSec=` sets `WATCHDOG_USEC`).
fn watchdog_interval() -> Option<std::time::Duration> {
    std::env::var("WATCHDOG_USEC")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|m| *m > 0)
        .map(|micros| std::time::Duration::from_micros(micros / 2))
}

/// Sends a state line to systemd (no-op outside systemd).
fn notify(state: &str) {
    if let Some(path) = std::env::var_os("NOTIFY_SOCKET")
        && let Ok(socket) = std::os::unix::net::UnixDatagram::unbound()
    {
        let _ = socket.send_to(state.as_bytes(), path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_runs_only_while_no_other_replica_holds_the_sweep_claim() {
        let dir = tempfile::tempdir().unwrap();
        let state: Arc<dyn StateStore> =
            Arc::new(crate::state::sqlite::SqliteState::open(&dir.path().join("s.db")).unwrap());
        let lease = std::time::Duration::from_secs(60);
        let until = Utc::now() + chrono::Duration::seconds(60);
        assert_eq!(
            state
                .claim(SWEEP_CLAIM, "other", Utc::now(), until)
                .unwrap(),
            Claim::Acquired
        );
        let mut ran = false;
        exclusive_sweep(&state, "me", lease, || {
            ran = true;
            Ok(crate::retention::Report::default())
        })
        .unwrap();
        assert!(!ran, "another replica is sweeping");

        state.release_claim(SWEEP_CLAIM, "other").unwrap();
        exclusive_sweep(&state, "me", lease, || {
            ran = true;
            Ok(crate::retention::Report::default())
        })
        .unwrap();
        assert!(ran);
        // Released at the end: the other replica's next sweep may claim it at once.
        assert_eq!(
            state
                .claim(SWEEP_CLAIM, "other", Utc::now(), until)
                .unwrap(),
            Claim::Acquired
        );
    }
}
