//! The JSON bodies the API returns, and its error type.
//!
//! Response types borrow or wrap the registry's and the state store's own serializable views
//! ([`ExportStatus`], [`RunRecord`], [`Delivery`]) instead of copying their fields, so a field
//! added there shows up here without a second edit. None of those views holds a secret, and
//! nothing in this module adds one: the API can only show what the registry and the state store
//! already chose to expose.

use crate::daemon::registry::ExportStatus;
use crate::state::{Delivery, RunRecord};
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// `GET /v1/exports`: every export the daemon knows, valid or not.
#[derive(Debug, Serialize)]
pub struct ExportList {
    /// By name.
    pub exports: Vec<ExportSummary>,
}

/// One export in the list: its status and its newest run.
#[derive(Debug, Serialize)]
pub struct ExportSummary {
    /// Conditions, revision, schedule, next runs, current errors.
    #[serde(flatten)]
    pub status: ExportStatus,
    /// Newest run by nominal time, in any state; `None` before the first run.
    pub last_run: Option<RunRecord>,
}

/// `GET /v1/exports/{name}`: the status plus recent history.
#[derive(Debug, Serialize)]
pub struct ExportDetail {
    /// Conditions, revision, schedule, next runs, current errors.
    #[serde(flatten)]
    pub status: ExportStatus,
    /// The most recently finished completed run, however far back it is (the recent `runs`
    /// may all have failed, and "when did this last work" is the first question asked).
    pub last_success: Option<RunRecord>,
    /// The newest runs, newest nominal time first (at most 20).
    pub runs: Vec<RunRecord>,
    /// Bytes stored and transferred this month per destination, with estimated costs.
    pub costs: Vec<crate::cost::Cost>,
}

/// `GET /v1/runs`.
#[derive(Debug, Serialize)]
pub struct RunList {
    /// Newest nominal time first.
    pub runs: Vec<RunRecord>,
}

/// `GET /v1/runs/{id}`: the run and what it delivered.
#[derive(Debug, Serialize)]
pub struct RunDetail {
    /// State, window, attempt, rows, bytes, parts, error.
    #[serde(flatten)]
    pub run: RunRecord,
    /// Every object delivered, with its key, size and SHA-256.
    pub deliveries: Vec<Delivery>,
}

/// `POST /v1/exports/{name}/run` accepted.
#[derive(Debug, Serialize)]
pub struct Triggered {
    /// The id of the started run (`EXPORT/RUNID`); poll `GET /v1/runs/{run_id}`.
    pub run_id: String,
    /// Where to follow it.
    pub status_url: String,
}

/// An error answer: an HTTP status and a message telling the caller what to do, sent as
/// `{"error": "…"}` so every client parses failures the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong and what to do about it.
    pub message: String,
}

impl ApiError {
    /// An error with `status`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 500, logged: the caller cannot fix these, the operator can.
    pub fn internal(message: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %message, "API request failed.");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{message} (see the exportd log for details)"),
        )
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: &self.message,
            }),
        )
            .into_response()
    }
}
