//! The handlers behind [`super::router`]. Each one reads a snapshot, answers, and keeps no
//! state of its own: everything lives in the registry, the state store or the event loop.

use super::ApiState;
use super::dto::{
    ApiError, ExportDetail, ExportList, ExportSummary, RunDetail, RunList, Triggered,
};
use super::guard::{Caller, SignedLink};
use super::metrics;
use crate::access::Permission;
use crate::daemon::registry::Registry;
use crate::daemon::{AdhocError, Event, SuspendError, TriggerError};
use crate::state::{RunFilter, RunState};
use axum::Extension;
use axum::extract::rejection::{JsonRejection, QueryRejection};
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

/// The largest request body the API reads. The only bodies are ad-hoc definitions, a few KiB
/// of TOML; anything far larger is a mistake or an attack, refused before it is buffered.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// What the 404 fallback lists, so a mistyped URL tells the caller where to go.
const ROUTES: &str = "GET / (status page), GET /runs/{export}/{run} (run page), GET /healthz, GET /metrics, GET /v1/exports, GET /v1/exports/{name}, \
    GET /v1/runs, GET /v1/runs/{export}/{run}, POST /v1/exports/{name}/run, \
    GET /v1/runs/{export}/{run}/files, GET /v1/runs/{export}/{run}/files/{name}, \
    POST /v1/runs/{export}/{run}/files/{name}/link, GET /v1/audit, GET /v1/alerts, \
    DELETE /v1/runs/{export}/{run}/files, \
    POST /v1/exports/adhoc, POST /v1/exports/{name}/suspend, POST /v1/exports/{name}/resume";

pub(super) fn router(state: ApiState) -> Router {
    Router::new()
        .route("/", get(super::page::index))
        .route("/runs/{export}/{run}", get(super::page::run_page))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/v1/exports", get(list_exports))
        .route("/v1/exports/{name}", get(export_detail))
        // The static segment wins over `{name}`, so an export named `adhoc` is still readable.
        .route("/v1/exports/adhoc", post(adhoc).get(adhoc_detail))
        .route("/v1/exports/{name}/run", post(trigger))
        .route("/v1/exports/{name}/suspend", post(suspend))
        .route("/v1/exports/{name}/resume", post(resume))
        .route("/v1/runs", get(list_runs))
        // Run ids are `EXPORT/RUNID`: as two segments, or one percent-encoded segment.
        .route("/v1/runs/{export}/{run}", get(run_detail_split))
        .route("/v1/runs/{id}", get(run_detail_encoded))
        .route(
            "/v1/runs/{export}/{run}/files",
            get(list_files).delete(delete_files),
        )
        .route("/v1/runs/{export}/{run}/files/{name}", get(download))
        .route(
            "/v1/runs/{export}/{run}/files/{name}/link",
            post(download_link),
        )
        .route("/v1/audit", get(audit_log))
        .route("/v1/alerts", get(alerts))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        // Extractors stop reading past the limit (chunked bodies have no Content-Length for
        // the guard to check).
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            super::guard::authorize,
        ))
        .with_state(state)
}

/// Reads the registry. A poisoned lock means the event loop panicked mid-update; the data is
/// still the best there is, and the API is how an operator finds out what happened.
pub(super) fn read(state: &ApiState) -> RwLockReadGuard<'_, Registry> {
    state
        .registry
        .read()
        .unwrap_or_else(PoisonError::into_inner)
}

/// Runs state-store calls on the blocking pool: SQLite blocks, and the runtime has only two
/// workers that also drive the event loop.
pub(super) async fn blocking<T, F>(f: F) -> Result<T, ApiError>
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

/// Sends the event loop a request made by `event` and waits up to `timeout` for its answer. A
/// loop that is gone or drops the reply is shutting down: 503, like one that does not answer.
async fn ask_daemon<T>(
    state: &ApiState,
    timeout: Duration,
    event: impl FnOnce(tokio::sync::oneshot::Sender<T>) -> Event,
) -> Result<T, ApiError> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    state
        .events
        .send(event(reply))
        .map_err(|_| shutting_down())?;
    match tokio::time::timeout(timeout, answer).await {
        Err(_) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the daemon did not answer within {} s (it may be reconciling many definitions or deleting many objects); try again, and check the exportd log if it persists",
                timeout.as_secs()
            ),
        )),
        Ok(Err(_)) => Err(shutting_down()),
        Ok(Ok(answer)) => Ok(answer),
    }
}

fn shutting_down() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the daemon is shutting down and starts no new runs; try again after it restarts",
    )
}

/// 202 with the run's id and status URL. The loop may answer with the bare RUNID; the API
/// always speaks `EXPORT/RUNID`, the id `GET /v1/runs/{id}` and the state store use.
fn accepted(export: &str, run_id: String) -> Response {
    let run_id = if run_id.contains('/') {
        run_id
    } else {
        format!("{export}/{run_id}")
    };
    let status_url = format!("/v1/runs/{run_id}");
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, status_url.clone())],
        Json(Triggered { run_id, status_url }),
    )
        .into_response()
}

async fn trigger(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(&state, Permission::Schedule)?;
    let export = name.clone();
    let answer = ask_daemon(&state, TRIGGER_TIMEOUT, |reply| Event::Trigger {
        export,
        reply,
    })
    .await?;
    match answer {
        Ok(run_id) => Ok(accepted(&name, run_id)),
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

async fn suspend(
    state: State<ApiState>,
    caller: Extension<Caller>,
    name: Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    set_suspended(state, caller, name, true).await
}

async fn resume(
    state: State<ApiState>,
    caller: Extension<Caller>,
    name: Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    set_suspended(state, caller, name, false).await
}

/// 200 `{"export", "suspended", "changed"}`; 404 unknown, 409 suspended in its file.
async fn set_suspended(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    suspend: bool,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(&state, Permission::Schedule)?;
    let export = name.clone();
    let answer = ask_daemon(&state, TRIGGER_TIMEOUT, |reply| Event::Suspend {
        export,
        suspend,
        reply,
    })
    .await?;
    match answer {
        Ok(changed) => Ok(Json(
            serde_json::json!({ "export": name, "suspended": suspend, "changed": changed }),
        )),
        Err(SuspendError::UnknownExport(_)) => Err(unknown_export(&name)),
        Err(e @ SuspendError::SuspendedInFile(_)) => {
            Err(ApiError::new(StatusCode::CONFLICT, e.to_string()))
        }
    }
}

/// A JSON body, or the reason it is not one: 413 past [`MAX_BODY_BYTES`], 400 for anything
/// else (malformed JSON, wrong fields, missing content type), always as a JSON error that says
/// what to send instead.
fn json_body<T>(body: Result<Json<T>, JsonRejection>, expected: &str) -> Result<T, ApiError> {
    match body {
        Ok(Json(value)) => Ok(value),
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {MAX_BODY_BYTES} bytes; send {expected}"),
        )),
        Err(e) => Err(ApiError::bad_request(format!(
            "{}; send {expected} with `Content-Type: application/json`",
            e.body_text()
        ))),
    }
}

/// `POST /v1/exports/adhoc` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdhocRequest {
    /// Name suffix: the export is `adhoc-NAME`. Default: the request time.
    name: Option<String>,
    /// The definition, as the TOML text of a file in exports.d.
    definition: String,
}

const ADHOC_BODY: &str = "`{\"definition\": \"TOML text of an export\", \"name\": \"optional\"}`";

/// `GET /v1/exports/adhoc`: the detail of an export that happens to be named `adhoc`.
async fn adhoc_detail(state: State<ApiState>) -> Result<Json<ExportDetail>, ApiError> {
    export_detail(state, Path("adhoc".to_owned())).await
}

async fn adhoc(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<AdhocRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    caller.require(&state, Permission::Create)?;
    let request = json_body(body, ADHOC_BODY)?;
    let suffix = request
        .name
        .unwrap_or_else(|| chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string());
    let name = format!("adhoc-{suffix}");
    if !crate::config::validate::valid_export_name(&name) {
        return Err(ApiError::bad_request(format!(
            "`{name}` is not a valid export name: use letters, digits, `-` and `_` in `name`"
        )));
    }
    let adhoc_name = name.clone();
    let answer = ask_daemon(&state, TRIGGER_TIMEOUT, |reply| Event::Adhoc {
        name: adhoc_name,
        definition: request.definition,
        reply,
    })
    .await?;
    match answer {
        Ok(run_id) => Ok(accepted(&name, run_id)),
        Err(e @ AdhocError::Invalid(_)) => Err(ApiError::bad_request(format!(
            "{e}\nfix the definition (`exportd validate` reports the same errors for a file) and send it again"
        ))),
        Err(e @ AdhocError::NameTaken(_)) => {
            Err(ApiError::new(StatusCode::CONFLICT, e.to_string()))
        }
        Err(AdhocError::ShuttingDown) => Err(shutting_down()),
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

/// The files of a run that can be downloaded: its deliveries to local destinations (streamed
/// by the daemon) and to S3 (through presigned URLs), local ones first so a name delivered to
/// both is served from this machine.
async fn downloadable_files(
    state: &ApiState,
    run_id: &str,
) -> Result<(crate::state::RunRecord, Vec<crate::state::Delivery>), ApiError> {
    let store = state.state.clone();
    let id = run_id.to_owned();
    let found = blocking(move || {
        let Some(run) = store.get_run(&id)? else {
            return Ok(None);
        };
        Ok(Some((run, store.deliveries_for_run(&id)?)))
    })
    .await?;
    let Some((run, deliveries)) = found else {
        return Err(ApiError::not_found(format!(
            "no run `{run_id}`: GET /v1/runs?export=EXPORT lists the runs of an export"
        )));
    };
    let (local, remote): (Vec<_>, Vec<_>) = deliveries
        .into_iter()
        .filter(|d| d.destination.starts_with("local#") || d.destination.starts_with("s3#"))
        .partition(|d| d.destination.starts_with("local#"));
    Ok((run, local.into_iter().chain(remote).collect()))
}

fn is_local(file: &crate::state::Delivery) -> bool {
    file.destination.starts_with("local#")
}

/// A presigned GET URL of a file delivered to S3, valid for `[access] url_lifetime_minutes`.
async fn presigned_url(
    state: &ApiState,
    run: &crate::state::RunRecord,
    file: &crate::state::Delivery,
) -> Result<String, ApiError> {
    let (spec, context) = {
        let registry = read(state);
        (
            registry.specs.get(&run.export).cloned(),
            registry.deliver.clone(),
        )
    };
    let lifetime = state.access.url_lifetime();
    let file = file.clone();
    let cannot = |e: &dyn std::fmt::Display| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("cannot presign a download URL: {e}; check the destination's connection"),
        )
    };
    let signed = tokio::task::spawn_blocking(move || {
        let def = crate::retention::destination_of(spec.as_deref(), &file).ok_or_else(|| {
            format!(
                "`{}` has no destination to reach it through (removed definition without a recorded location)",
                file.key
            )
        })?;
        let destination = crate::deliver::build(&def, &context).map_err(|e| e.to_string())?;
        destination
            .presigned_get(&file.key, lifetime)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{} cannot presign URLs", destination.kind()))
    })
    .await
    .map_err(|e| cannot(&e))?;
    signed.map_err(|e| cannot(&e))
}

fn file_name(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// 403 unless the caller may download this run (role rules of [`crate::access`]).
fn may_download(
    state: &ApiState,
    caller: &Caller,
    run: &crate::state::RunRecord,
) -> Result<(), ApiError> {
    let spec = read(state).specs.get(&run.export).cloned();
    Ok(state
        .access
        .may_download(&caller.0, spec.as_deref(), run, chrono::Utc::now())?)
}

async fn list_files(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((export, run)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = format!("{export}/{run}");
    let (record, files) = downloadable_files(&state, &id).await?;
    may_download(&state, &caller, &record)?;
    let files: Vec<_> = files
        .iter()
        .map(|d| {
            serde_json::json!({
                "name": file_name(&d.key),
                "destination": d.destination,
                "bytes": d.bytes,
                "sha256": d.sha256,
                "url": format!("/v1/runs/{id}/files/{}", file_name(&d.key)),
            })
        })
        .collect();
    Ok(Json(serde_json::json!({ "run_id": id, "files": files })))
}

/// How long a deletion may take before the caller is told to look at the run instead: it
/// deletes one object at a time, at remote destinations too.
const DELETE_TIMEOUT: Duration = Duration::from_secs(300);

/// `DELETE /v1/runs/{export}/{run}/files` (admins): deletes every object the ledger lists for
/// the run, at every destination, with the retention sweep's checks: an object that changed
/// since delivery is kept and reported (409), one already gone only leaves the ledger. The run
/// becomes `expired` once nothing of it is left. Each deletion is audited under the caller.
async fn delete_files(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((export, run)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    caller.require(&state, Permission::Delete)?;
    let id = format!("{export}/{run}");
    let store = state.state.clone();
    let lookup = id.clone();
    if blocking(move || store.get_run(&lookup)).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "no run `{id}`: GET /v1/runs?export=EXPORT lists the runs of an export"
        )));
    }
    let run_id = id.clone();
    let actor = caller.0.name.clone();
    let report = ask_daemon(&state, DELETE_TIMEOUT, |reply| Event::DeleteRun {
        export,
        run_id,
        actor,
        reply,
    })
    .await?
    .map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the deletion failed: {e}; GET /v1/runs/{id} shows what is left, and DELETE again finishes it"),
        )
    })?;
    let skipped = report.skipped().count();
    let status = if skipped > 0 {
        StatusCode::CONFLICT
    } else {
        StatusCode::OK
    };
    let body = serde_json::json!({
        "run_id": id,
        "deleted": report.deleted(),
        "skipped": skipped,
        "expired": report.expired_runs.contains(&id),
        "objects": report.outcomes,
    });
    Ok((status, Json(body)).into_response())
}

async fn download(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    signed: Option<Extension<SignedLink>>,
    Path((export, run, name)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let id = format!("{export}/{run}");
    let (record, files) = downloadable_files(&state, &id).await?;
    // A signed link was authorised when it was made; a token is checked now.
    if signed.is_none() {
        may_download(&state, &caller, &record)?;
    }
    let Some(file) = files.iter().find(|d| file_name(&d.key) == name) else {
        return Err(ApiError::not_found(format!(
            "run `{id}` delivered no downloadable file `{name}`; GET /v1/runs/{id}/files lists them"
        )));
    };
    if !is_local(file) {
        let url = presigned_url(&state, &record, file).await?;
        return Ok((
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, url)],
            "",
        )
            .into_response());
    }
    let opened = tokio::fs::File::open(&file.key).await.map_err(|e| {
        ApiError::new(
            StatusCode::GONE,
            format!("`{name}` is no longer on disk ({e}); retention may have deleted it"),
        )
    })?;
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(opened));
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, file.bytes.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", name.replace('"', "")),
            ),
        ],
        body,
    )
        .into_response())
}

async fn download_link(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((export, run, name)): Path<(String, String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = format!("{export}/{run}");
    let (record, files) = downloadable_files(&state, &id).await?;
    may_download(&state, &caller, &record)?;
    let Some(file) = files.iter().find(|d| file_name(&d.key) == name) else {
        return Err(ApiError::not_found(format!(
            "run `{id}` delivered no downloadable file `{name}`; GET /v1/runs/{id}/files lists them"
        )));
    };
    if !is_local(file) {
        let url = presigned_url(&state, &record, file).await?;
        let expires = chrono::Utc::now()
            + chrono::Duration::from_std(state.access.url_lifetime()).unwrap_or_default();
        return Ok(Json(
            serde_json::json!({ "url": url, "expires_at": expires.to_rfc3339() }),
        ));
    }
    let (url, expires) = state
        .access
        .sign(&format!("/v1/runs/{id}/files/{name}"), chrono::Utc::now());
    Ok(Json(
        serde_json::json!({ "url": url, "expires_at": expires.to_rfc3339() }),
    ))
}

/// `GET /v1/audit` parameters.
#[derive(Debug, Deserialize)]
struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    since: Option<String>,
    limit: Option<String>,
}

/// `GET /v1/alerts`: open alerts and the latest ones sent or resolved.
async fn alerts(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<crate::alerts::Snapshot>, ApiError> {
    caller.require(&state, Permission::Read)?;
    let alerts = read(&state).alerts.clone();
    Ok(Json(alerts.snapshot()))
}

async fn audit_log(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(&state, Permission::Audit)?;
    let Query(query) = query.map_err(|e| {
        ApiError::bad_request(format!(
            "{}: use `?actor=NAME&action=api|delivery|retention|reload&since=RFC3339&limit=N`",
            e.body_text()
        ))
    })?;
    let since = match query.since.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            chrono::DateTime::parse_from_rfc3339(s)
                .map_err(|e| {
                    ApiError::bad_request(format!(
                        "invalid since `{s}`: {e}; use RFC 3339 such as 2024-01-15T00:00:00Z"
                    ))
                })?
                .with_timezone(&chrono::Utc),
        ),
    };
    let filter = crate::state::AuditFilter {
        actor: query.actor.filter(|a| !a.is_empty()),
        action: query.action.filter(|a| !a.is_empty()),
        since,
        limit: Some(parse_limit(query.limit.as_deref())?),
    };
    let store = state.state.clone();
    let entries = blocking(move || store.audit_log(&filter)).await?;
    Ok(Json(serde_json::json!({ "entries": entries })))
}
