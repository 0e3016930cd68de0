//! The long-running service, `exportd run`: watches the definitions, keeps every valid one
//! scheduled, runs exports at their nominal times and reloads on change or SIGHUP.
//!
//! One event loop consumes a closed set of [`Event`]s, so every trigger is visible in one place.
//! Runs execute on blocking threads; runs of one export never overlap (a run that comes due
//! while the previous one is still running waits for it).
//!
//! **Invariant:** an invalid definition never stops the daemon. The last valid version of that
//! export keeps its schedule, and the error is logged until the file is fixed.

pub mod reconcile;
pub mod registry;
pub mod scheduler;

use crate::config::ExportSpec;
use crate::pipeline::{self, Environment, RunPlan, RunReport};
use chrono::{DateTime, Utc};
use reconcile::{Fingerprint, Reconciler};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::{error, info, warn};

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
    /// `POST /v1/exports/{name}/run`: run an export now. The reply carries the run id, or why
    /// it cannot start (unknown export, already running, shutting down).
    Trigger {
        /// Export name.
        export: String,
        /// Where the answer goes.
        reply: tokio::sync::oneshot::Sender<Result<String, TriggerError>>,
    },
    /// SIGTERM / SIGINT: stop scheduling, let running runs finish.
    Shutdown,
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
    next: Option<DateTime<Utc>>,
    running: bool,
    /// End of the last exported window, for `since_last_run`.
    watermark: Option<DateTime<Utc>>,
}

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
    let mut slots: BTreeMap<String, Slot> = BTreeMap::new();
    let mut env = apply(&mut reconciler, &mut slots, Utc::now());
    info!(exports = slots.len(), "exportd is ready.");
    notify_ready();
    let mut shutting_down = false;
    loop {
        let now = Utc::now();
        if !shutting_down {
            for (name, slot) in slots.iter_mut() {
                let due = slot.next.filter(|n| *n <= now);
                if let (Some(nominal), false) = (due, slot.running) {
                    slot.running = true;
                    slot.next = slot
                        .spec
                        .schedule
                        .as_ref()
                        .and_then(|s| s.next_after(nominal.max(now), slot.spec.timezone));
                    start_run(&env, slot, name.clone(), nominal, tx.clone());
                }
            }
        }
        if shutting_down && slots.values().all(|s| !s.running) {
            info!("All runs finished; exiting.");
            return Ok(());
        }
        let wake = slots
            .values()
            .filter(|s| !s.running)
            .filter_map(|s| s.next)
            .min()
            .map(|n| (n - Utc::now()).to_std().unwrap_or_default())
            .unwrap_or(std::time::Duration::from_secs(60))
            .min(std::time::Duration::from_secs(60));
        let event = tokio::select! {
            e = rx.recv() => e.unwrap_or(Event::Shutdown),
            _ = tokio::time::sleep(wake) => Event::Tick,
        };
        match event {
            Event::Tick => {}
            Event::Reload(why) => {
                info!(trigger = why, "Reloading definitions.");
                env = apply(&mut reconciler, &mut slots, Utc::now());
            }
            Event::RunFinished {
                export,
                nominal,
                result,
            } => {
                if let Some(slot) = slots.get_mut(&export) {
                    slot.running = false;
                    if let Ok(report) = result.as_ref() {
                        slot.watermark =
                            Some(RunPlan::at(&slot.spec, nominal, slot.watermark).window.end);
                        info!(
                            export = %export,
                            run_id = %report.run_id,
                            rows = report.rows,
                            bytes = report.bytes,
                            parts = report.parts.len(),
                            elapsed_ms = report.elapsed_ms,
                            "Run completed."
                        );
                    }
                }
                if let Err(e) = *result {
                    error!(export = %export, nominal = %nominal.to_rfc3339(), error = %e, "Run failed.");
                }
            }
            Event::Trigger { export, reply } => {
                let answer = match slots.get_mut(&export) {
                    _ if shutting_down => Err(TriggerError::ShuttingDown),
                    None => Err(TriggerError::UnknownExport(export.clone())),
                    Some(slot) if slot.running => Err(TriggerError::AlreadyRunning(export.clone())),
                    Some(slot) => {
                        let nominal = Utc::now();
                        slot.running = true;
                        start_run(&env, slot, export.clone(), nominal, tx.clone());
                        Ok(crate::template::run_id(nominal))
                    }
                };
                let _ = reply.send(answer);
            }
            Event::Shutdown => {
                if !shutting_down {
                    info!("Shutting down: no new runs; waiting for running ones.");
                }
                shutting_down = true;
            }
        }
    }
}

/// Reconciles the scheduled set with what is on disk.
fn apply(
    reconciler: &mut Reconciler,
    slots: &mut BTreeMap<String, Slot>,
    now: DateTime<Utc>,
) -> Environment {
    let outcome = reconciler.reload();
    for d in &outcome.diagnostics {
        if d.is_error() {
            error!(diagnostic = %d, "Definition rejected; the last valid version (if any) keeps running.");
        } else {
            warn!(diagnostic = %d, "Definition warning.");
        }
    }
    for name in &outcome.diff.removed {
        slots.remove(name);
    }
    for spec in outcome.active.values() {
        let changed = slots
            .get(&spec.name)
            .is_none_or(|s| s.spec.revision != spec.revision);
        if !changed {
            continue;
        }
        let next = if spec.def.suspend {
            None
        } else {
            spec.schedule
                .as_ref()
                .and_then(|s| s.next_after(now, spec.timezone))
        };
        let previous = slots.remove(&spec.name);
        slots.insert(
            spec.name.clone(),
            Slot {
                spec: spec.clone(),
                next,
                running: previous.as_ref().is_some_and(|p| p.running),
                watermark: previous.and_then(|p| p.watermark),
            },
        );
    }
    info!(
        added = ?outcome.diff.added,
        changed = ?outcome.diff.changed,
        removed = ?outcome.diff.removed,
        rejected = outcome.rejected.len(),
        "Definitions reconciled."
    );
    outcome.environment
}

fn start_run(
    env: &Environment,
    slot: &Slot,
    name: String,
    nominal: DateTime<Utc>,
    tx: mpsc::UnboundedSender<Event>,
) {
    let env = env.clone();
    let spec = slot.spec.clone();
    let watermark = slot.watermark;
    info!(export = %name, nominal = %nominal.to_rfc3339(), "Run started.");
    tokio::task::spawn_blocking(move || {
        let plan = RunPlan::at(&spec, nominal, watermark);
        let result = env
            .open_store()
            .map_err(|e| e.to_string())
            .and_then(|store| {
                pipeline::run_once(&env, &spec, &plan, store.as_ref(), &mut |_, _| {})
                    .map_err(|e| e.to_string())
            });
        let _ = tx.send(Event::RunFinished {
            export: name,
            nominal,
            result: Box::new(result),
        });
    });
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

/// Polls the definitions and the config for changes: cheap (one `read_dir` and a `stat` per
/// file), portable, and immune to the rename dances editors do when saving.
fn spawn_watcher(options: Options, tx: mpsc::UnboundedSender<Event>) {
    tokio::spawn(async move {
        let mut applied = Fingerprint::read(&options.config, &options.exports);
        let mut pending: Option<Fingerprint> = None;
        loop {
            tokio::time::sleep(WATCH_INTERVAL).await;
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

/// Tells systemd the daemon is ready (no-op outside systemd).
fn notify_ready() {
    if let Some(path) = std::env::var_os("NOTIFY_SOCKET") {
        let socket = std::os::unix::net::UnixDatagram::unbound();
        if let Ok(socket) = socket {
            let _ = socket.send_to(b"READY=1", path);
        }
    }
}
