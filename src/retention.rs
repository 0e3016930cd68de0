//! Retention: deletes delivered objects once their destination's `retention` has passed.
//!
//! Backup tools teach that deleting by prefix or by age destroys data nobody meant to lose, so
//! a sweep deletes **only what the ledger says exportd wrote**, and only after checking that the
//! object is still what was written:
//!
//! 1. Every ledger entry whose expiry has passed is a candidate. While the export is defined,
//!    its current `retention` decides (like a bucket lifecycle rule); the objects of a removed
//!    definition expire by the retention recorded when they were delivered. `never` (or no
//!    `retention` at all) never expires: there is no silent default.
//! 2. Guards: the newest `keep_last` runs of an export at each destination are never deleted,
//!    however old (a stalled exporter must not age everything out), and a sweep deletes at most
//!    `max_delete_per_sweep` objects, oldest expiry first.
//! 3. Each candidate is checked at the destination: gone already → the ledger row is dropped;
//!    a different size (or, where the destination can tell, a different SHA-256) → skipped and
//!    reported, never deleted; otherwise it is deleted and its ledger row removed.
//! 4. A completed run whose objects are all gone becomes `expired`.
//!
//! Objects under the same prefix that are not in the ledger are never looked at. Email and
//! webhook deliveries have nothing to delete: their ledger rows simply expire.
//!
//! The same sweep moves S3 objects to their destination's `transition` storage class once they
//! are older than its `after` (again only ledger entries, checked by size first, not due for
//! deletion, at most `max_delete_per_sweep` per sweep, oldest first). The ledger records the
//! move, so each object moves once.

use crate::config::ExportSpec;
use crate::config::daemon::RetentionConfig;
use crate::config::export::DeliverDef;
use crate::deliver::{self, Destination};
use crate::state::{Delivery, StateStore};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Why a sweep could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The state store failed.
    #[error(transparent)]
    State(#[from] crate::state::Error),
}

/// Guards of a sweep.
#[derive(Debug, Clone, Copy)]
pub struct Guards {
    /// Newest runs per export and destination that are never deleted.
    pub keep_last: usize,
    /// Most objects deleted by one sweep.
    pub max_delete: usize,
}

impl From<&RetentionConfig> for Guards {
    fn from(config: &RetentionConfig) -> Guards {
        Guards {
            keep_last: config.keep_last as usize,
            max_delete: config.max_delete_per_sweep as usize,
        }
    }
}

/// What happened (or, in a dry run, would happen) to one expired ledger entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Deleted at the destination and forgotten by the ledger.
    Deleted,
    /// A dry run: would be deleted.
    WouldDelete,
    /// Not at the destination any more; only the ledger row was dropped.
    AlreadyGone,
    /// Nothing to delete at this kind of destination (email, webhook); the ledger row expired.
    LedgerOnly,
    /// Left alone, with the reason (changed since delivery, or the destination failed).
    Skipped(String),
}

/// One expired ledger entry and what the sweep did with it.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Export name.
    pub export: String,
    /// Destination (`s3#0`).
    pub destination: String,
    /// Object key or path.
    pub key: String,
    /// Bytes, as delivered.
    pub bytes: u64,
    /// When it was delivered.
    pub delivered_at: DateTime<Utc>,
    /// When it expired.
    pub expired_at: DateTime<Utc>,
    /// Age at the time of the sweep, in days.
    pub age_days: i64,
    /// What was done.
    pub action: Action,
}

/// What happened (or, in a dry run, would happen) to one entry old enough for `transition`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransitionAction {
    /// Moved to the storage class; the ledger records when.
    Transitioned,
    /// A dry run: would be moved.
    WouldTransition,
    /// Left where it is, with the reason; the next sweep tries again.
    Skipped(String),
}

/// One ledger entry old enough for its destination's `transition`, and what the sweep did.
#[derive(Debug, Clone, Serialize)]
pub struct TransitionOutcome {
    /// Export name.
    pub export: String,
    /// Destination (`s3#0`).
    pub destination: String,
    /// Object key.
    pub key: String,
    /// Bytes, as delivered.
    pub bytes: u64,
    /// When it was delivered.
    pub delivered_at: DateTime<Utc>,
    /// Age at the time of the sweep, in days.
    pub age_days: i64,
    /// The storage class it moves to (`GLACIER`).
    pub storage_class: String,
    /// What was done.
    pub action: TransitionAction,
}

/// A sweep's result.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Every expired entry handled, oldest expiry first.
    pub outcomes: Vec<Outcome>,
    /// Every entry moved (or tried) to its `transition` storage class, oldest first.
    pub transitions: Vec<TransitionOutcome>,
    /// Entries old enough to move, left for the next sweep by `max_delete_per_sweep`.
    pub transitions_deferred: usize,
    /// Expired entries kept because they belong to the newest `keep_last` runs.
    pub kept_by_keep_last: usize,
    /// Expired entries left for the next sweep by `max_delete_per_sweep`.
    pub deferred: usize,
    /// Runs that became `expired`.
    pub expired_runs: Vec<String>,
}

impl Report {
    /// Entries that were (or would be) removed from their destination.
    pub fn deleted(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| matches!(o.action, Action::Deleted | Action::WouldDelete))
            .count()
    }

    /// Entries skipped, with a reason.
    pub fn skipped(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes
            .iter()
            .filter(|o| matches!(o.action, Action::Skipped(_)))
    }

    /// Entries that were (or would be) moved to another storage class.
    pub fn transitioned(&self) -> usize {
        self.transitions
            .iter()
            .filter(|t| {
                matches!(
                    t.action,
                    TransitionAction::Transitioned | TransitionAction::WouldTransition
                )
            })
            .count()
    }

    /// Entries that should have moved but did not, with a reason.
    pub fn transitions_skipped(&self) -> impl Iterator<Item = &TransitionOutcome> {
        self.transitions
            .iter()
            .filter(|t| matches!(t.action, TransitionAction::Skipped(_)))
    }
}

/// One expired ledger entry and the `[[deliver]]` table that reaches it.
struct Candidate {
    entry: Delivery,
    expires: DateTime<Utc>,
    def: DeliverDef,
}

/// Which ledger entries a sweep considers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope<'a> {
    /// Only this export's entries (defined or removed).
    pub only: Option<&'a str>,
    /// Check and report, delete nothing.
    pub dry_run: bool,
    /// Every entry is due, whatever its expiry and `keep_last`: an export removed with
    /// `on_remove = "delete"`, or a run deleted through the API. Use only with `only`.
    pub everything: bool,
    /// Only this run's entries (`EXPORT/RUNID`): `DELETE /v1/runs/{export}/{run}/files`.
    pub run: Option<&'a str>,
    /// Who asked, for the audit log (default `exportd`: a scheduled sweep).
    pub actor: Option<&'a str>,
}

/// Sweeps every export with ledger entries (or the scope's one), at `now`.
pub fn sweep(
    specs: &[ExportSpec],
    state: &dyn StateStore,
    context: &deliver::Context,
    guards: Guards,
    now: DateTime<Utc>,
    scope: Scope<'_>,
) -> Result<Report, Error> {
    let Scope {
        only,
        dry_run,
        everything,
        run,
        actor,
    } = scope;
    // "Everything" without an export would empty every destination: never.
    let everything = everything && only.is_some();
    let (guards, now) = if everything {
        (
            Guards {
                keep_last: 0,
                max_delete: usize::MAX,
            },
            DateTime::<Utc>::MAX_UTC,
        )
    } else {
        (guards, now)
    };
    let by_name: HashMap<&str, &ExportSpec> = specs.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut exports: BTreeSet<String> = state.ledger_exports()?.into_iter().collect();
    exports.retain(|e| only.is_none_or(|o| o == e));
    let mut report = Report::default();
    let mut candidates = Vec::new();
    for export in &exports {
        let (mut due, kept) = due_entries(
            by_name.get(export.as_str()).copied(),
            state.deliveries_for_export(export)?,
            guards.keep_last,
            now,
            everything,
        );
        report.kept_by_keep_last += kept;
        candidates.append(&mut due);
    }
    candidates.retain(|c| run.is_none_or(|r| c.entry.run_id == r));
    // Due for deletion (now or, past the cap, at the next sweep): never worth moving.
    let due: BTreeSet<(String, String)> = candidates
        .iter()
        .map(|c| (c.entry.destination.clone(), c.entry.key.clone()))
        .collect();
    candidates.sort_by_key(|c| c.expires);
    if candidates.len() > guards.max_delete {
        report.deferred = candidates.len() - guards.max_delete;
        candidates.truncate(guards.max_delete);
    }

    let mut destinations = Destinations {
        context,
        built: HashMap::new(),
    };
    let mut touched_runs = BTreeSet::new();
    for candidate in candidates {
        let entry = &candidate.entry;
        let action = match destinations.reach(entry, &candidate.def) {
            Err(message) => Action::Skipped(format!("cannot reach the destination: {message}")),
            Ok(destination) => {
                let action = check_and_delete(destination, entry, dry_run);
                if !dry_run
                    && matches!(
                        action,
                        Action::Deleted | Action::AlreadyGone | Action::LedgerOnly
                    )
                {
                    state.remove_delivery(&entry.destination, &entry.key)?;
                    touched_runs.insert(entry.run_id.clone());
                }
                action
            }
        };
        match &action {
            Action::Skipped(reason) => tracing::warn!(
                "retention: kept `{}` at {} of export `{}`: {reason}",
                entry.key,
                entry.destination,
                entry.export
            ),
            Action::Deleted => tracing::info!(
                "retention: deleted `{}` at {} of export `{}` (expired {})",
                entry.key,
                entry.destination,
                entry.export,
                candidate.expires.to_rfc3339()
            ),
            _ => {}
        }
        if !dry_run {
            let outcome = match &action {
                Action::Deleted => "deleted".to_owned(),
                Action::AlreadyGone => "already gone".to_owned(),
                Action::LedgerOnly => "ledger entry expired".to_owned(),
                Action::Skipped(reason) => format!("skipped: {reason}"),
                Action::WouldDelete => unreachable!("not a dry run"),
            };
            audit(state, actor, entry, &outcome);
        }
        report.outcomes.push(Outcome {
            export: entry.export.clone(),
            destination: entry.destination.clone(),
            key: entry.key.clone(),
            bytes: entry.bytes,
            delivered_at: entry.delivered_at,
            expired_at: candidate.expires,
            age_days: (Utc::now().min(now) - entry.delivered_at).num_days(),
            action,
        });
    }
    for run_id in touched_runs {
        if state.deliveries_for_run(&run_id)?.is_empty()
            && let Ok(run) = state.mark_expired(&run_id)
            && run.state == crate::state::RunState::Expired
        {
            report.expired_runs.push(run_id);
        }
    }
    // Deleting a run or a removed export's files moves nothing.
    if !everything && run.is_none() {
        let mut moves = Vec::new();
        for export in &exports {
            let Some(spec) = by_name.get(export.as_str()).copied() else {
                continue;
            };
            for entry in state.deliveries_for_export(export)? {
                if !due.contains(&(entry.destination.clone(), entry.key.clone()))
                    && let Some((def, class)) = transition_due(spec, &entry, now)
                {
                    moves.push((entry, def, class));
                }
            }
        }
        moves.sort_by_key(|(entry, _, _)| entry.delivered_at);
        if moves.len() > guards.max_delete {
            report.transitions_deferred = moves.len() - guards.max_delete;
            moves.truncate(guards.max_delete);
        }
        for (entry, def, class) in moves {
            let action = match destinations.reach(&entry, &def) {
                Err(message) => {
                    TransitionAction::Skipped(format!("cannot reach the destination: {message}"))
                }
                Ok(destination) => check_and_transition(destination, &entry, class, dry_run),
            };
            if action == TransitionAction::Transitioned {
                state.mark_transitioned(&entry.destination, &entry.key, Utc::now())?;
                tracing::info!(
                    "retention: moved `{}` at {} of export `{}` to {class}",
                    entry.key,
                    entry.destination,
                    entry.export
                );
            }
            if let TransitionAction::Skipped(reason) = &action {
                tracing::warn!(
                    "retention: did not move `{}` at {} of export `{}` to {class}: {reason}",
                    entry.key,
                    entry.destination,
                    entry.export
                );
            }
            if !dry_run {
                let outcome = match &action {
                    TransitionAction::Transitioned => format!("transitioned to {class}"),
                    TransitionAction::Skipped(reason) => {
                        format!("transition to {class} skipped: {reason}")
                    }
                    TransitionAction::WouldTransition => unreachable!("not a dry run"),
                };
                audit(state, actor, &entry, &outcome);
            }
            report.transitions.push(TransitionOutcome {
                age_days: (Utc::now().min(now) - entry.delivered_at).num_days(),
                export: entry.export,
                destination: entry.destination,
                key: entry.key,
                bytes: entry.bytes,
                delivered_at: entry.delivered_at,
                storage_class: class.to_owned(),
                action,
            });
        }
    }
    Ok(report)
}

/// Which built destination reaches an entry. The ledger name (`s3#0`) is only unique within
/// an export, and one export's entries may live where an earlier definition put them, so the
/// export and the place are part of it.
/// The destinations a sweep reaches, each built once per export, ledger name and place (see
/// [`reach_key`]); a destination that cannot be built is remembered with its reason.
struct Destinations<'a> {
    context: &'a deliver::Context,
    built: HashMap<String, Result<Box<dyn Destination>, String>>,
}

impl Destinations<'_> {
    fn reach(&mut self, entry: &Delivery, def: &DeliverDef) -> Result<&dyn Destination, &str> {
        let context = self.context;
        let built: &Result<Box<dyn Destination>, String> = self
            .built
            .entry(reach_key(entry, def))
            .or_insert_with(|| deliver::build(def, context).map_err(|e| e.to_string()));
        match built {
            Ok(destination) => Ok(&**destination),
            Err(message) => Err(message),
        }
    }
}

/// One audit line for what a sweep did to one object; a failure to write it is logged, never
/// fatal (the deletion already happened).
fn audit(state: &dyn StateStore, actor: Option<&str>, entry: &Delivery, outcome: &str) {
    let line = crate::state::AuditEntry::new(
        actor.unwrap_or("exportd"),
        "",
        "retention",
        &format!("{} {}", entry.destination, entry.key),
        outcome,
        Utc::now(),
    );
    if let Err(e) = state.append_audit(&[line]) {
        tracing::warn!("retention: cannot write the audit log: {e}");
    }
}

fn reach_key(entry: &Delivery, def: &DeliverDef) -> String {
    format!(
        "{}\n{}\n{}",
        entry.export,
        entry.destination,
        def.location()
    )
}

/// The destination and storage class an entry moves to now, if its current definition has a
/// `transition` it is old enough for and it has not moved yet. Objects of a removed definition
/// or of a destination that changed place are not moved: only the current table says where to.
fn transition_due(
    spec: &ExportSpec,
    entry: &Delivery,
    now: DateTime<Utc>,
) -> Option<(DeliverDef, &'static str)> {
    if entry.transitioned_at.is_some() {
        return None;
    }
    let def = current_destination(spec, entry)?;
    let DeliverDef::S3(s3) = def else {
        return None;
    };
    let transition = s3.transition?;
    let at = entry
        .delivered_at
        .checked_add_signed(transition.after.duration()?)?;
    (at <= now).then(|| (def.clone(), transition.storage_class.as_str()))
}

/// Checks that the object is still the one delivered (by size: an object store cannot tell its
/// SHA-256) and moves it to `class`.
fn check_and_transition(
    destination: &dyn Destination,
    entry: &Delivery,
    class: &str,
    dry_run: bool,
) -> TransitionAction {
    match destination.stat(&entry.key) {
        Ok(Some(info)) if info.bytes != entry.bytes => {
            return TransitionAction::Skipped(format!(
                "changed since delivery: {} bytes now, {} delivered; not moved",
                info.bytes, entry.bytes
            ));
        }
        Ok(Some(_)) => {}
        Ok(None) => {
            return TransitionAction::Skipped(
                "not at the destination any more; its ledger entry goes when it expires".into(),
            );
        }
        Err(e) => return TransitionAction::Skipped(format!("cannot check it: {e}")),
    }
    if dry_run {
        return TransitionAction::WouldTransition;
    }
    match destination.transition(&entry.key, class) {
        Ok(true) => TransitionAction::Transitioned,
        Ok(false) => TransitionAction::Skipped(format!(
            "{} destinations have no storage classes to move between",
            destination.kind()
        )),
        Err(e) => {
            TransitionAction::Skipped(format!("transition failed: {e}; the next sweep retries"))
        }
    }
}

/// The expired entries of one export (with the destination that reaches each), and how many
/// expired entries `keep_last` protects.
fn due_entries(
    spec: Option<&ExportSpec>,
    entries: Vec<Delivery>,
    keep_last: usize,
    now: DateTime<Utc>,
    everything: bool,
) -> (Vec<Candidate>, usize) {
    let mut by_destination: BTreeMap<String, Vec<Delivery>> = BTreeMap::new();
    for entry in entries {
        by_destination
            .entry(entry.destination.clone())
            .or_default()
            .push(entry);
    }
    let mut due = Vec::new();
    let mut kept = 0;
    for entries in by_destination.into_values() {
        // The newest `keep_last` runs at this destination, by their latest delivery.
        let mut runs: Vec<(&str, DateTime<Utc>)> = Vec::new();
        for e in &entries {
            match runs.iter_mut().find(|(id, _)| *id == e.run_id) {
                Some((_, at)) => *at = (*at).max(e.delivered_at),
                None => runs.push((&e.run_id, e.delivered_at)),
            }
        }
        runs.sort_by_key(|r| std::cmp::Reverse(r.1));
        let protected: BTreeSet<String> = runs
            .iter()
            .take(keep_last)
            .map(|(id, _)| id.to_string())
            .collect();
        for entry in entries {
            let current = spec.and_then(|s| current_destination(s, &entry));
            let expires = match current {
                Some(def) => expiry(def, &entry),
                None => entry.expires_at,
            };
            let expires = if everything {
                Some(expires.unwrap_or(entry.delivered_at))
            } else {
                expires
            };
            let Some(expires) = expires.filter(|t| *t <= now) else {
                continue;
            };
            if protected.contains(&entry.run_id) {
                kept += 1;
                continue;
            }
            let def = destination_of(spec, &entry);
            match def {
                Some(def) => due.push(Candidate {
                    entry,
                    expires,
                    def,
                }),
                None => tracing::warn!(
                    "retention: `{}` at {} of removed export `{}` has expired, but the ledger \
                     does not say where it lives (delivered by an older exportd); delete it by \
                     hand",
                    entry.key,
                    entry.destination,
                    entry.export
                ),
            }
        }
    }
    (due, kept)
}

/// The `[[deliver]]` table of the current definition an entry was delivered by: the one at
/// the index of its ledger name, if it still points at the same place.
/// The `[[deliver]]` table that reaches a ledger entry: the current definition's when it still
/// points at the same place, else the location recorded at delivery.
pub fn destination_of(spec: Option<&ExportSpec>, entry: &Delivery) -> Option<DeliverDef> {
    match spec.and_then(|s| current_destination(s, entry)) {
        Some(def) => Some(def.clone()),
        None => def_from_location(&entry.location),
    }
}

fn current_destination<'a>(spec: &'a ExportSpec, entry: &Delivery) -> Option<&'a DeliverDef> {
    let index: usize = entry.destination.rsplit_once('#')?.1.parse().ok()?;
    let def = &spec.destinations.get(index)?.def;
    let same_place = entry.location.is_empty()
        || serde_json::from_str::<serde_json::Value>(&entry.location).ok()? == def.location();
    same_place.then_some(def)
}

/// When an entry expires under the current definition. An immutable (object-locked) S3 object
/// cannot be deleted before the lock recorded at delivery ends, whatever the definition says
/// now.
fn expiry(def: &DeliverDef, entry: &Delivery) -> Option<DateTime<Utc>> {
    let current = def
        .retention()
        .and_then(|r| r.duration())
        .and_then(|d| entry.delivered_at.checked_add_signed(d))?;
    match def {
        DeliverDef::S3(s3) if s3.immutable => Some(
            entry
                .expires_at
                .map_or(current, |locked| locked.max(current)),
        ),
        _ => Some(current),
    }
}

/// A `[[deliver]]` table rebuilt from a ledger location (its `path` is never used to delete:
/// ledger keys are already rendered).
fn def_from_location(location: &str) -> Option<DeliverDef> {
    let mut value: serde_json::Value = serde_json::from_str(location).ok()?;
    value["path"] = "".into();
    if value["to"] == "email" {
        value["recipients"] = serde_json::json!(["-"]);
    }
    serde_json::from_value(value).ok()
}

/// Checks that the object is what the ledger says and deletes it.
fn check_and_delete(destination: &dyn Destination, entry: &Delivery, dry_run: bool) -> Action {
    if destination.takes_whole_runs() {
        return if dry_run {
            Action::WouldDelete
        } else {
            Action::LedgerOnly
        };
    }
    let info = match destination.stat(&entry.key) {
        Ok(Some(info)) => info,
        Ok(None) => return Action::AlreadyGone,
        Err(e) => return Action::Skipped(format!("cannot check it: {e}")),
    };
    if info.bytes != entry.bytes {
        return Action::Skipped(format!(
            "changed since delivery: {} bytes now, {} delivered; delete it by hand if it is no \
             longer needed",
            info.bytes, entry.bytes
        ));
    }
    // An object moved to an archive class cannot be read back without a restore: its size
    // (checked above) is all there is to check.
    let sha256 = if entry.transitioned_at.is_some() {
        Ok(None)
    } else {
        destination.sha256(&entry.key)
    };
    match sha256 {
        Ok(Some(sha)) if sha != entry.sha256 => {
            return Action::Skipped(
                "changed since delivery: its SHA-256 differs from the ledger's; delete it by \
                 hand if it is no longer needed"
                    .into(),
            );
        }
        Err(e) => return Action::Skipped(format!("cannot check it: {e}")),
        _ => {}
    }
    if dry_run {
        return Action::WouldDelete;
    }
    match destination.remove(&entry.key) {
        Ok(()) => Action::Deleted,
        Err(e) => Action::Skipped(format!("delete failed: {e}; the next sweep retries")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::daemon::DaemonConfig;
    use crate::state::{RunOutcome, RunStart, SqliteState, Trigger};
    use chrono::{Duration, TimeZone};
    use std::path::Path;

    struct World {
        dir: tempfile::TempDir,
        state: SqliteState,
        context: deliver::Context,
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
    }

    fn spec(retention: &str) -> ExportSpec {
        let text = format!(
            "schedule = \"daily at 02:00\"\nwindow = \"previous_day\"\n[[deliver]]\nto = \"local\"\npath = \"daily/{{{{date}}}}.csv\"\nretention = \"{retention}\"\n"
        );
        let (spec, diags) = crate::config::validate::check_export(
            "daily",
            Path::new("daily.toml"),
            &text,
            &DaemonConfig::default(),
        );
        spec.unwrap_or_else(|| panic!("{diags:?}"))
    }

    impl World {
        fn new() -> World {
            let dir = tempfile::tempdir().unwrap();
            let state = SqliteState::open(&dir.path().join("state.db")).unwrap();
            let context = deliver::Context {
                output_dir: dir.path().join("out"),
                ..Default::default()
            };
            World {
                dir,
                state,
                context,
            }
        }

        /// A completed run of `daily` delivered `days_ago`, with one local file.
        fn delivered(&self, spec: &ExportSpec, days_ago: i64, content: &str) -> Delivery {
            let at = now() - Duration::days(days_ago);
            let start = RunStart {
                export: "daily".into(),
                nominal: at,
                window_start: Some(at - Duration::days(1)),
                window_end: at,
                trigger: Trigger::Schedule,
                revision: "r".into(),
                started_at: at,
            };
            let run = self.state.record_start(&start).unwrap();
            let outcome = RunOutcome::Completed {
                rows: 1,
                bytes: content.len() as u64,
                parts: 1,
            };
            self.state.record_finish(&run.id, &outcome, at).unwrap();
            let path = self.dir.path().join(format!("out/daily/{days_ago}.csv"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, content).unwrap();
            let delivered = deliver::Delivered {
                destination: "local#0".into(),
                key: path.to_string_lossy().into_owned(),
                bytes: content.len() as u64,
                sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(content)),
                delivered_at: at,
            };
            let entry = Delivery::from_delivered("daily", &run.id, "local#0", &delivered)
                .for_destination(&spec.destinations[0].def);
            self.state.record_delivery(&entry).unwrap();
            entry
        }

        fn sweep(&self, specs: &[ExportSpec], guards: Guards, dry_run: bool) -> Report {
            sweep(
                specs,
                &self.state,
                &self.context,
                guards,
                now(),
                Scope {
                    dry_run,
                    ..Scope::default()
                },
            )
            .unwrap()
        }
    }

    /// `daily` to S3 with `retention = "90d"` and `transition = { after = "30d", … }`.
    fn s3_spec() -> ExportSpec {
        let daemon: DaemonConfig =
            toml::from_str("[connections.archive]\ntype = \"s3\"\nregion = \"us-east-1\"\n")
                .unwrap();
        let text = "schedule = \"daily at 02:00\"\nwindow = \"previous_day\"\n[[deliver]]\n\
                    to = \"s3\"\nconnection = \"archive\"\nbucket = \"b\"\npath = \"d/{{date}}.csv\"\n\
                    retention = \"90d\"\ntransition = { after = \"30d\", storage_class = \"GLACIER\" }\n";
        let (spec, diags) =
            crate::config::validate::check_export("daily", Path::new("daily.toml"), text, &daemon);
        spec.unwrap_or_else(|| panic!("{diags:?}"))
    }

    /// A ledger entry of `daily` at the S3 destination, delivered `days_ago`.
    fn s3_entry(world: &World, spec: &ExportSpec, days_ago: i64) -> Delivery {
        let at = now() - Duration::days(days_ago);
        let delivered = deliver::Delivered {
            destination: "s3".into(),
            key: format!("d/{days_ago}.csv"),
            bytes: 3,
            sha256: "00".into(),
            delivered_at: at,
        };
        let entry =
            Delivery::from_delivered("daily", &format!("daily/{days_ago}"), "s3#0", &delivered)
                .for_destination(&spec.destinations[0].def);
        world.state.record_delivery(&entry).unwrap();
        entry
    }

    #[test]
    fn transition_is_due_once_after_its_age_and_only_under_the_current_s3_table() {
        let spec = s3_spec();
        let world = World::new();
        let old = s3_entry(&world, &spec, 40);
        let young = s3_entry(&world, &spec, 10);
        let due = transition_due(&spec, &old, now()).map(|(_, class)| class);
        assert_eq!(due, Some("GLACIER"));
        assert!(transition_due(&spec, &young, now()).is_none(), "too young");
        let moved = Delivery {
            transitioned_at: Some(now()),
            ..old.clone()
        };
        assert!(transition_due(&spec, &moved, now()).is_none(), "moved once");
        let elsewhere = Delivery {
            location: r#"{"to":"s3","connection":"archive","bucket":"other"}"#.into(),
            ..old.clone()
        };
        assert!(
            transition_due(&spec, &elsewhere, now()).is_none(),
            "the table points at another bucket now"
        );
        let local = self::spec("90d");
        let local_entry = world.delivered(&local, 40, "x");
        assert!(transition_due(&local, &local_entry, now()).is_none());
    }

    #[test]
    fn a_sweep_moves_only_ledger_entries_old_enough_not_yet_moved_and_not_expiring() {
        let spec = s3_spec();
        let world = World::new();
        // The context has no connections: every S3 call fails before the network, so this
        // checks which entries the sweep picks and that a failed move is not recorded.
        s3_entry(&world, &spec, 2);
        let expired = s3_entry(&world, &spec, 100);
        let older = s3_entry(&world, &spec, 50);
        let old = s3_entry(&world, &spec, 40);
        let moved = s3_entry(&world, &spec, 35);
        world
            .state
            .mark_transitioned(&moved.destination, &moved.key, now())
            .unwrap();
        s3_entry(&world, &spec, 10);
        let guards = Guards {
            keep_last: 1,
            max_delete: 1,
        };

        let report = world.sweep(std::slice::from_ref(&spec), guards, false);
        assert_eq!(report.outcomes.len(), 1, "{report:?}");
        assert_eq!(report.outcomes[0].key, expired.key);
        assert_eq!(report.transitions.len(), 1, "{report:?}");
        assert_eq!(
            report.transitions_deferred, 1,
            "capped by max_delete_per_sweep"
        );
        let tried = &report.transitions[0];
        assert_eq!(
            (tried.key.as_str(), tried.storage_class.as_str()),
            (older.key.as_str(), "GLACIER"),
            "oldest first; the expired entry is not moved, only deleted"
        );
        assert!(
            matches!(&tried.action, TransitionAction::Skipped(r) if r.contains("cannot reach")),
            "{tried:?}"
        );
        assert_eq!(report.transitioned(), 0);
        assert_eq!(report.transitions_skipped().count(), 1);
        let ledger = world.state.deliveries_for_export("daily").unwrap();
        let unmoved: Vec<&str> = ledger
            .iter()
            .filter(|d| d.transitioned_at.is_none())
            .map(|d| d.key.as_str())
            .collect();
        assert!(
            unmoved.contains(&older.key.as_str()) && unmoved.contains(&old.key.as_str()),
            "a failed move is tried again: {unmoved:?}"
        );
        let audit = world
            .state
            .audit_log(&crate::state::AuditFilter::default())
            .unwrap();
        assert!(
            audit.iter().any(|a| a.action == "retention"
                && a.target == format!("s3#0 {}", older.key)
                && a.outcome.starts_with("transition to GLACIER skipped: ")),
            "{audit:?}"
        );

        // Deleting one run moves nothing.
        let report = sweep(
            std::slice::from_ref(&spec),
            &world.state,
            &world.context,
            GUARDS,
            now(),
            Scope {
                only: Some("daily"),
                everything: true,
                run: Some(&old.run_id),
                ..Scope::default()
            },
        )
        .unwrap();
        assert!(report.transitions.is_empty(), "{report:?}");
    }

    #[test]
    fn a_moved_object_is_checked_by_size_only_before_deletion() {
        let world = World::new();
        let spec = spec("1d");
        world.delivered(&spec, 1, "newest");
        let moved = world.delivered(&spec, 5, "abc");
        world
            .state
            .mark_transitioned(&moved.destination, &moved.key, now())
            .unwrap();
        let unmoved = world.delivered(&spec, 6, "xyz");
        // Same size, other bytes: only the SHA-256 tells. An archived object cannot be read
        // back for it, so its size has to do.
        std::fs::write(&moved.key, "def").unwrap();
        std::fs::write(&unmoved.key, "uvw").unwrap();
        let report = world.sweep(std::slice::from_ref(&spec), GUARDS, false);
        let action = |key: &str| {
            report
                .outcomes
                .iter()
                .find(|o| o.key == key)
                .map(|o| o.action.clone())
        };
        assert_eq!(action(&moved.key), Some(Action::Deleted), "{report:?}");
        assert!(matches!(action(&unmoved.key), Some(Action::Skipped(_))));
    }

    const GUARDS: Guards = Guards {
        keep_last: 1,
        max_delete: 100,
    };

    #[test]
    fn deletes_only_expired_ledger_objects_and_keeps_the_newest_run_and_foreign_files() {
        let world = World::new();
        let spec = spec("30d");
        let old = world.delivered(&spec, 40, "old");
        let older = world.delivered(&spec, 50, "older");
        let recent = world.delivered(&spec, 10, "recent");
        let foreign = world.dir.path().join("out/daily/not-ours.csv");
        std::fs::write(&foreign, "someone else's").unwrap();

        let dry = world.sweep(std::slice::from_ref(&spec), GUARDS, true);
        assert_eq!(dry.deleted(), 2);
        assert!(Path::new(&old.key).exists(), "a dry run deletes nothing");

        let report = world.sweep(std::slice::from_ref(&spec), GUARDS, false);
        assert_eq!(report.deleted(), 2, "{report:?}");
        assert!(!Path::new(&old.key).exists());
        assert!(!Path::new(&older.key).exists());
        assert!(Path::new(&recent.key).exists());
        assert!(
            foreign.exists(),
            "files not in the ledger are never touched"
        );
        assert_eq!(report.expired_runs.len(), 2);
        let run = world.state.get_run(&old.run_id).unwrap().unwrap();
        assert_eq!(run.state, crate::state::RunState::Expired);
        assert_eq!(world.state.deliveries_for_export("daily").unwrap().len(), 1);
    }

    #[test]
    fn keep_last_protects_the_newest_runs_even_when_everything_is_old() {
        let world = World::new();
        let spec = spec("7d");
        let newest = world.delivered(&spec, 20, "a");
        let second = world.delivered(&spec, 30, "b");
        let oldest = world.delivered(&spec, 40, "c");
        let guards = Guards {
            keep_last: 2,
            max_delete: 100,
        };
        let report = world.sweep(std::slice::from_ref(&spec), guards, false);
        assert_eq!(report.deleted(), 1);
        assert_eq!(report.kept_by_keep_last, 2);
        assert!(Path::new(&newest.key).exists() && Path::new(&second.key).exists());
        assert!(!Path::new(&oldest.key).exists());
    }

    #[test]
    fn a_changed_object_is_skipped_and_reported_and_a_missing_one_leaves_the_ledger() {
        let world = World::new();
        let spec = spec("1d");
        world.delivered(&spec, 1, "keep me, I am the newest");
        let same_size = world.delivered(&spec, 5, "abc");
        let resized = world.delivered(&spec, 6, "abcd");
        let gone = world.delivered(&spec, 7, "gone");
        std::fs::write(&same_size.key, "xyz").unwrap();
        std::fs::write(&resized.key, "much longer now").unwrap();
        std::fs::remove_file(&gone.key).unwrap();

        let report = world.sweep(std::slice::from_ref(&spec), GUARDS, false);
        let skipped: Vec<&Outcome> = report.skipped().collect();
        assert_eq!(skipped.len(), 2, "{report:?}");
        assert!(Path::new(&same_size.key).exists() && Path::new(&resized.key).exists());
        let gone_outcome = report.outcomes.iter().find(|o| o.key == gone.key).unwrap();
        assert_eq!(gone_outcome.action, Action::AlreadyGone);
        let left: Vec<String> = world
            .state
            .deliveries_for_export("daily")
            .unwrap()
            .into_iter()
            .map(|d| d.key)
            .collect();
        assert!(left.contains(&same_size.key) && left.contains(&resized.key));
        assert!(!left.contains(&gone.key));
    }

    #[test]
    fn max_delete_caps_a_sweep_oldest_first_and_never_means_never() {
        let world = World::new();
        let spec = spec("1d");
        world.delivered(&spec, 2, "newest");
        let a = world.delivered(&spec, 10, "a");
        let b = world.delivered(&spec, 11, "b");
        let c = world.delivered(&spec, 12, "c");
        let guards = Guards {
            keep_last: 1,
            max_delete: 2,
        };
        let report = world.sweep(std::slice::from_ref(&spec), guards, false);
        assert_eq!((report.deleted(), report.deferred), (2, 1));
        assert!(Path::new(&a.key).exists(), "the youngest expiry waits");
        assert!(!Path::new(&b.key).exists() && !Path::new(&c.key).exists());

        let never = self::spec("never");
        let report = world.sweep(std::slice::from_ref(&never), guards, false);
        assert_eq!(report.outcomes.len(), 0, "`never` never expires");
    }

    #[test]
    fn objects_of_a_removed_definition_expire_by_their_recorded_retention() {
        let world = World::new();
        let spec = spec("30d");
        world.delivered(&spec, 1, "newest");
        let old = world.delivered(&spec, 45, "old");
        let young = world.delivered(&spec, 20, "young");
        let report = world.sweep(&[], GUARDS, false);
        assert_eq!(report.deleted(), 1, "{report:?}");
        assert!(!Path::new(&old.key).exists());
        assert!(Path::new(&young.key).exists());
    }

    #[test]
    fn a_removed_export_with_on_remove_delete_loses_everything_it_delivered() {
        let world = World::new();
        let spec = spec("never");
        let newest = world.delivered(&spec, 0, "new");
        let old = world.delivered(&spec, 400, "old");
        let report = sweep(
            &[],
            &world.state,
            &world.context,
            GUARDS,
            now(),
            Scope {
                only: Some("daily"),
                everything: true,
                ..Scope::default()
            },
        )
        .unwrap();
        assert_eq!(report.deleted(), 2, "{report:?}");
        assert!(!Path::new(&newest.key).exists() && !Path::new(&old.key).exists());
        assert!(
            world
                .state
                .deliveries_for_export("daily")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn deleting_one_run_removes_only_its_objects_even_the_newest_and_audits_the_caller() {
        let world = World::new();
        let spec = spec("never");
        let newest = world.delivered(&spec, 0, "new");
        let other = world.delivered(&spec, 3, "other");
        let report = sweep(
            std::slice::from_ref(&spec),
            &world.state,
            &world.context,
            GUARDS,
            now(),
            Scope {
                only: Some("daily"),
                everything: true,
                run: Some(&newest.run_id),
                actor: Some("alice"),
                ..Scope::default()
            },
        )
        .unwrap();
        assert_eq!(report.deleted(), 1, "{report:?}");
        assert_eq!(report.expired_runs, vec![newest.run_id.clone()]);
        assert!(!Path::new(&newest.key).exists());
        assert!(Path::new(&other.key).exists(), "another run's file stays");
        let audit = world
            .state
            .audit_log(&crate::state::AuditFilter::default())
            .unwrap();
        assert_eq!(
            (audit[0].actor.as_str(), audit[0].outcome.as_str()),
            ("alice", "deleted")
        );
    }
}
