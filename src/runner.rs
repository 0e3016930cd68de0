//! One recorded run: the pipeline plus its bookkeeping in the state store (run state, ledger
//! rows of every delivered object, the `since_last_run` watermark). Shared by `exportd export`,
//! `exportd backfill` and the daemon, so a run is recorded the same way whoever starts it.

use crate::config::ExportSpec;
use crate::pipeline::{self, Environment, RunPlan, RunReport};
use crate::state::{Delivery, RunOutcome, RunStart, StateStore, Trigger};
use chrono::Utc;

/// Why a recorded run failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The run itself failed (it is recorded as failed).
    #[error(transparent)]
    Run(#[from] pipeline::Error),
    /// The lead store could not be opened (the run is recorded as failed).
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    /// The state store failed; the run may have delivered files that are not in the ledger.
    #[error("state store: {0}; check the `[state]` url and free space")]
    State(#[from] crate::state::Error),
}

/// Runs `plan` of `spec` and records it. `progress` gets rows and bytes now and then.
pub fn execute(
    env: &Environment,
    state: &dyn StateStore,
    spec: &ExportSpec,
    plan: &RunPlan,
    trigger: Trigger,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<RunReport, Error> {
    let start = RunStart {
        export: spec.name.clone(),
        nominal: plan.nominal,
        window_start: plan.window.start,
        window_end: plan.window.end,
        trigger,
        revision: spec.revision.clone(),
        started_at: Utc::now(),
    };
    let run_id = start.id();
    let record = state.record_start(&start)?;
    test_delay(&record);
    let result = env.open_store().map_err(Error::from).and_then(|store| {
        Ok(pipeline::run_once(
            env,
            spec,
            plan,
            store.as_ref(),
            progress,
        )?)
    });
    match result {
        Ok(report) => {
            let entries = ledger_entries(spec, &run_id, &report.deliveries);
            state.record_deliveries(&entries)?;
            state.append_audit(&audit_entries(&entries, trigger))?;
            state.record_finish(&run_id, &RunOutcome::from_report(&report), Utc::now())?;
            // Backfills and manual runs of arbitrary windows do not move the watermark: only
            // the schedule's own sequence of windows does.
            if matches!(trigger, Trigger::Schedule | Trigger::CatchUp | Trigger::Api) {
                state.set_watermark(&spec.name, plan.window.end)?;
            }
            Ok(report)
        }
        Err(e) => {
            // Objects that reached a destination before the failure are in the ledger too, so
            // retention and the next attempt know about them.
            if let Error::Run(pipeline::Error::Deliver { delivered, .. }) = &e {
                let entries = ledger_entries(spec, &run_id, delivered);
                state.record_deliveries(&entries)?;
                state.append_audit(&audit_entries(&entries, trigger))?;
            }
            let outcome = RunOutcome::Failed {
                error: format!("{e:#}"),
            };
            state.record_finish(&run_id, &outcome, Utc::now())?;
            Err(e)
        }
    }
}

/// Ledger rows of delivered objects, each with the expiry and location of its destination
/// (found by the index in its ledger name, `s3#1`).
fn ledger_entries(
    spec: &ExportSpec,
    run_id: &str,
    delivered: &[crate::deliver::Delivered],
) -> Vec<Delivery> {
    delivered
        .iter()
        .map(|d| {
            let entry = Delivery::from_delivered(&spec.name, run_id, &d.destination, d);
            let index = d
                .destination
                .rsplit_once('#')
                .and_then(|(_, i)| i.parse::<usize>().ok());
            match index.and_then(|i| spec.destinations.get(i)) {
                Some(dest) => entry.for_destination(&dest.def),
                None => entry,
            }
        })
        .collect()
}

/// One audit line per delivered object.
fn audit_entries(entries: &[Delivery], trigger: Trigger) -> Vec<crate::state::AuditEntry> {
    entries
        .iter()
        .map(|d| {
            crate::state::AuditEntry::new(
                "exportd",
                trigger.as_str(),
                "delivery",
                &format!("{} {}", d.destination, d.key),
                &format!("ok: {} bytes, sha256 {}", d.bytes, d.sha256),
                d.delivered_at,
            )
        })
        .collect()
}

/// TEST ONLY: `EXPORTD_TEST_RUN_DELAY=EXPORT/RUNID=SECONDS` holds the first attempt of that run
/// for SECONDS after it is recorded as running, so tests can kill the replica that holds a run
/// and watch another one take it over. Unset in production; it has no other effect.
fn test_delay(run: &crate::state::RunRecord) {
    let Ok(spec) = std::env::var("EXPORTD_TEST_RUN_DELAY") else {
        return;
    };
    if let Some((id, seconds)) = spec.rsplit_once('=')
        && id == run.id
        && run.attempt == 1
        && let Ok(seconds) = seconds.parse::<u64>()
    {
        std::thread::sleep(std::time::Duration::from_secs(seconds));
    }
}
