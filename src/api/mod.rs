//! The HTTP status API of `exportd run` (default `127.0.0.1:8080`, `[http] listen`).
//!
//! Read-only views of what the daemon knows, plus a few actions:
//!
//! | Route | Answer |
//! |---|---|
//! | `GET /` | the status page (HTML, see [`page`]) |
//! | `GET /runs/{export}/{run}` | a run's page (HTML) |
//! | `GET /healthz` | 200 `ok` (plain text) while the server runs |
//! | `GET /metrics` | Prometheus text exposition (see [`metrics`]) |
//! | `GET /v1/exports` | every export with its conditions and newest run |
//! | `GET /v1/exports/{name}` | status, current errors, last success, newest 20 runs; 404 |
//! | `GET /v1/runs?export=&state=&limit=` | runs, newest first (limit 50, at most 1000); 400 |
//! | `GET /v1/runs/{export}/{run}` | a run and its deliveries; 404 |
//! | `POST /v1/exports/{name}/run` | 202 `{"run_id"}`; 404, 409, 503 |
//! | `POST /v1/exports/adhoc` | body `{"definition": TOML, "name"}`: 202 `{"run_id"}`; 400, 409, 413 |
//! | `POST /v1/exports/{name}/suspend`, `…/resume` | 200 `{"export", "suspended", "changed"}`; 404, 409 |
//!
//! Run ids contain a slash (`daily/20240115T020000Z`), so `GET /v1/runs/{id}` takes the id as
//! two path segments, literally `/v1/runs/daily/20240115T020000Z`; the percent-encoded form
//! `/v1/runs/daily%2F20240115T020000Z` works too.
//!
//! Where the data comes from: statuses and counters from the [`SharedRegistry`] the event loop
//! writes (read under a short lock, never held across an `.await`), history from the
//! [`StateStore`] (blocking SQLite calls, run on the blocking pool so a slow query never stalls
//! the runtime's two workers), and triggers go to the event loop as [`Event::Trigger`], which
//! alone decides whether a run may start (so the no-overlap rule lives in one place).
//!
//! Errors are always JSON `{"error": "…"}` with a message that says what to do. Secrets never
//! appear: the registry and the state store hold none, and this module only serializes them.

pub mod dto;
mod guard;
pub mod metrics;
pub mod page;
mod routes;

#[cfg(test)]
mod tests;

use crate::daemon::Event;
use crate::daemon::registry::SharedRegistry;
use crate::state::StateStore;
use anyhow::Context as _;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::mpsc::UnboundedSender;

/// What every handler needs. Cheap to clone (three handles).
#[derive(Clone)]
pub struct ApiState {
    /// Export statuses and counters, written by the event loop.
    pub registry: SharedRegistry,
    /// Run history and the delivery ledger.
    pub state: Arc<dyn StateStore>,
    /// The event loop's inbox, for triggered runs.
    pub events: UnboundedSender<Event>,
    /// Tokens, roles and signed links.
    pub access: Arc<crate::access::Access>,
}

/// The API's routes over the daemon's registry, state store and event channel. Exposed on its
/// own (besides [`serve`]) so tests and embedders can mount or serve it themselves.
pub fn router(
    registry: SharedRegistry,
    state: Arc<dyn StateStore>,
    events: UnboundedSender<Event>,
    access: Arc<crate::access::Access>,
) -> axum::Router {
    routes::router(ApiState {
        registry,
        state,
        events,
        access,
    })
}

/// Binds the listen address, with an error that names the setting to change. Separate from
/// [`serve_on`] so the daemon can bind before it reports ready: a port conflict then fails
/// start-up instead of surfacing later in a background task.
pub async fn bind(listen: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(listen).await.with_context(|| {
        format!(
            "cannot listen on `{listen}`: set `[http] listen` in exportd.toml to a free host:port, or stop the process that holds it"
        )
    })
}

/// Serves the API on `listen` until `shutdown` resolves, then stops accepting connections and
/// waits for requests in flight to finish (graceful shutdown).
pub async fn serve(
    listen: &str,
    registry: SharedRegistry,
    state: Arc<dyn StateStore>,
    events: UnboundedSender<Event>,
    access: Arc<crate::access::Access>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = bind(listen).await?;
    serve_on(listener, router(registry, state, events, access), shutdown).await
}

/// Serves `router` on an already bound listener until `shutdown` resolves; see [`serve`].
pub async fn serve_on(
    listener: TcpListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr().ok();
    tracing::info!(addr = ?addr, "HTTP API listening.");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .context("the HTTP API server failed")?;
    tracing::info!("HTTP API stopped.");
    Ok(())
}
