//! The handlers behind [`super::router`]. Each one reads a snapshot, answers, and keeps no
//! state of its own: everything lives in the registry, the state store or the event loop.

use super::ApiState;
use super::dto::{
    ApiError, ExportDetail, ExportList, ExportSummary, RunDetail, RunList, Triggered,
};
use super::metrics;
use crate::daemon::registry::Registry;
use crate::daemon::{Event, TriggerError};
use crate::state::{RunFilter, RunState};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::sync::{PoisonError, RwLockReadGuard};
use std::time::Duration;

/// Runs shown by `GET /v1/exports/{name}`.
pub const DETAIL_RUNS: usize = 20;
/// Runs returned by `GET /v1/runs` without `limit`.
pub const DEFAULT_RUN_LIMIT: usize = 50;
/// The most runs one `GET /v1/runs` returns; larger limits are clamped to it, so a careless
/// `limit=1000000` cannot make the daemon serialize its whole history.
pub const MAX_RUN_LIMIT: usize = 1000;
/// How long a trigger waits for the event loop. The loop answers between two events, so only a
/// long reconcile delays it; past this the caller is told to retry instead of hanging.
const TRIGGER_TIMEOUT: Duration = Duration::from_secs(10);

/// What the 404 fallback lists, so a mistyped URL tells the caller where to go.
const ROUTES: &str = "GET /healthz, GET /metrics, GET /v1/exports, GET /v1/exports/{name}, \
    GET /v1/runs, GET /v1/runs/{export}/{run}, POST /v1/exports/{name}/run";

pub(super) fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/v1/exports", get(list_exports))
        .route("/v1/exports/{name}", get(export_detail))
        .route("/v1/exports/{name}/run", post(trigger))
        .route("/v1/runs", get(list_runs))
        // Run ids are `EXPORT/RUNID`: as two segments, or one percent-encoded segment.
        .route("/v1/runs/{export}/{run}", get(run_detail_split))
        .route("/v1/runs/{id}", get(run_detail_encoded))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .with_state(state)
}

/// Reads the registry. A poisoned lock means the event loop panicked mid-update; the data is
/// still the best there is, and the API is how an operator finds out what happened.
fn read(state: &ApiState) -> RwLockReadGuard<'_, Registry> {
    state
        .registry
        .read()
        .unwrap_or_else(PoisonError::into_inner)
}

/// Runs state-store calls on the blocking pool: SQLite blocks, and the runtime has only two
/// workers that also drive the event loop.
async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, crate::state::Error> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("a state store query did not finish: {e}")))?
        .map_err(ApiError::internal)
}

fn unknown_export(name: &str) -> ApiError {
    ApiError::not_found(format!(
        "no export named `{name}`: GET /v1/exports lists the exports the daemon knows"
    ))
}

async fn healthz() -> &'static str {
    "ok"
}

async fn metrics_text(State(state): State<ApiState>) -> Response {
    let store = state.state.clone();
    let prices = read(&state).prices;
    let costs = match blocking(move || {
        crate::cost::costs(store.as_ref(), None, prices, chrono::Utc::now())
    })
    .await
    {
        Ok(costs) => costs,
        Err(e) => {
            tracing::warn!(error = ?e, "/metrics: cannot read the ledger; cost gauges left out");
            Vec::new()
        }
    };
    let text = metrics::render(&read(&state), &costs);
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response()
}

async fn list_exports(State(state): State<ApiState>) -> Result<Json<ExportList>, ApiError> {
    let statuses: Vec<_> = read(&state).exports.values().cloned().collect();
    let store = state.state.clone();
    let exports = blocking(move || {
        statuses
            .into_iter()
            .map(|status| {
                let last_run = store
                    .list_runs(&RunFilter {
                        export: Some(status.name.clone()),
                        state: None,
                        limit: Some(1),
                    })?
                    .into_iter()
                    .next();
                Ok(ExportSummary { status, last_run })
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .await?;
    Ok(Json(ExportList { exports }))
}

async fn export_detail(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<ExportDetail>, ApiError> {
    let status = read(&state)
        .exports
        .get(&name)
        .cloned()
        .ok_or_else(|| unknown_export(&name))?;
    let store = state.state.clone();
    let prices = read(&state).prices;
    let (runs, last_success, costs) = blocking(move || {
        let runs = store.list_runs(&RunFilter {
            export: Some(name.clone()),
            state: None,
            limit: Some(DETAIL_RUNS),
        })?;
        let costs = crate::cost::costs(store.as_ref(), Some(&name), prices, chrono::Utc::now())?;
        Ok((runs, store.last_completed(&name)?, costs))
    })
    .await?;
    Ok(Json(ExportDetail {
        status,
        last_success,
        runs,
        costs,
    }))
}

/// `GET /v1/runs` parameters, taken as strings so bad values get our messages, not serde's.
#[derive(Debug, Deserialize)]
struct RunsQuery {
    export: Option<String>,
    state: Option<String>,
    limit: Option<String>,
}

async fn list_runs(
    State(state): State<ApiState>,
    query: Result<Query<RunsQuery>, QueryRejection>,
) -> Result<Json<RunList>, ApiError> {
    let Query(query) = query.map_err(|e| {
        ApiError::bad_request(format!(
            "{}: use `?export=NAME&state=STATE&limit=N`, each at most once",
            e.body_text()
        ))
    })?;
    let filter = RunFilter {
        export: query.export.filter(|e| !e.is_empty()),
        state: match query.state.as_deref() {
            None | Some("") => None,
            Some(s) => Some(
                s.parse::<RunState>()
                    .map_err(|e| ApiError::bad_request(e.to_string()))?,
            ),
        },
        limit: Some(parse_limit(query.limit.as_deref())?),
    };
    let store = state.state.clone();
    let runs = blocking(move || store.list_runs(&filter)).await?;
    Ok(Json(RunList { runs }))
}

/// `limit`: absent → the default, 1..=MAX → itself, above → MAX, anything else → 400.
fn parse_limit(raw: Option<&str>) -> Result<usize, ApiError> {
    match raw {
        None | Some("") => Ok(DEFAULT_RUN_LIMIT),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n.min(MAX_RUN_LIMIT)),
            _ => Err(ApiError::bad_request(format!(
                "invalid limit `{s}`: use a whole number from 1 to {MAX_RUN_LIMIT}"
            ))),
        },
    }
}

async fn run_detail_split(
    State(state): State<ApiState>,
    Path((export, run)): Path<(String, String)>,
) -> Result<Json<RunDetail>, ApiError> {
    run_detail(state, format!("{export}/{run}")).await
}

async fn run_detail_encoded(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<RunDetail>, ApiError> {
    run_detail(state, id).await
}

async fn run_detail(state: ApiState, id: String) -> Result<Json<RunDetail>, ApiError> {
    let store = state.state.clone();
    let lookup = id.clone();
    let found = blocking(move || {
        let Some(run) = store.get_run(&lookup)? else {
            return Ok(None);
        };
        let deliveries = store.deliveries_for_run(&lookup)?;
        Ok(Some(RunDetail { run, deliveries }))
    })
    .await?;
    found.map(Json).ok_or_else(|| {
        ApiError::not_found(format!(
            "no run `{id}`: run ids look like `EXPORT/20240115T020000Z`; GET /v1/runs?export=EXPORT lists the runs of an export"
        ))
    })
}

async fn trigger(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let shutting_down = || {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon is shutting down and starts no new runs; try again after it restarts",
        )
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    let event = Event::Trigger {
        export: name.clone(),
        reply,
    };
    state.events.send(event).map_err(|_| shutting_down())?;
    let answer = match tokio::time::timeout(TRIGGER_TIMEOUT, answer).await {
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the daemon did not answer within {} s (it may be reconciling many definitions); try again, and check the exportd log if it persists",
                    TRIGGER_TIMEOUT.as_secs()
                ),
            ));
        }
        // The loop dropped the reply without answering: it is exiting.
        Ok(Err(_)) => return Err(shutting_down()),
        Ok(Ok(answer)) => answer,
    };
    match answer {
        Ok(run_id) => {
            // The loop may answer with the bare RUNID; the API always speaks `EXPORT/RUNID`,
            // the id `GET /v1/runs/{id}` and the state store use.
            let run_id = if run_id.contains('/') {
                run_id
            } else {
                format!("{name}/{run_id}")
            };
            let status_url = format!("/v1/runs/{run_id}");
            Ok((
                StatusCode::ACCEPTED,
                [(header::LOCATION, status_url.clone())],
                Json(Triggered { run_id, status_url }),
            )
                .into_response())
        }
        Err(TriggerError::UnknownExport(_)) => {
            // Known to the registry but not runnable: a file that never had a valid version.
            let stalled = read(&state).exports.contains_key(&name);
            if stalled {
                Err(ApiError::new(
                    StatusCode::CONFLICT,
                    format!(
                        "export `{name}` has no valid definition to run: fix the errors shown by GET /v1/exports/{name}; the daemon reloads the file when it changes"
                    ),
                ))
            } else {
                Err(unknown_export(&name))
            }
        }
        Err(e @ TriggerError::AlreadyRunning(_)) => {
            Err(ApiError::new(StatusCode::CONFLICT, e.to_string()))
        }
        Err(TriggerError::ShuttingDown) => Err(shutting_down()),
    }
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!(
        "no route `{method} {}`; the API serves {ROUTES}",
        uri.path()
    ))
}

async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "`{}` does not accept {method}; the API serves {ROUTES}",
            uri.path()
        ),
    )
}
