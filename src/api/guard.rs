//! Authentication, authorisation and the audit trail of every API request.
//!
//! One middleware in front of every route but `/healthz`: it names the caller from the bearer
//! token (401 when there is none or it is unknown), or accepts a signed download link on a file
//! route, lets the request through, and appends `token name, role, route, status` to the audit
//! log. Each handler then asks [`crate::access::Access`] whether the caller's role has the
//! permission it needs (403 with the reason).

use super::ApiState;
use super::dto::ApiError;
use crate::access::{Denied, Permission, Principal, role_name};
use crate::state::AuditEntry;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Marks a request authorised by a signed download link instead of a token.
#[derive(Debug, Clone)]
pub struct SignedLink;

/// The caller of a request, put there by [`authorize`].
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl From<Denied> for ApiError {
    fn from(denied: Denied) -> ApiError {
        match denied {
            Denied::Unauthenticated(m) => ApiError::new(StatusCode::UNAUTHORIZED, m),
            Denied::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, m),
        }
    }
}

impl Caller {
    /// 403 unless the caller's role has `permission`.
    pub fn require(&self, state: &ApiState, permission: Permission) -> Result<(), ApiError> {
        Ok(state.access.check(&self.0, permission)?)
    }
}

/// The middleware: see the module documentation.
pub async fn authorize(
    State(state): State<ApiState>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    if path == "/healthz" {
        return next.run(request).await;
    }
    let target = format!("{} {path}", request.method());
    let signed = signed_link(&request);
    let caller = match signed {
        Some((expires, signature)) if is_file_route(&path) => {
            match state
                .access
                .verify(&path, expires, &signature, chrono::Utc::now())
            {
                Ok(()) => {
                    request.extensions_mut().insert(SignedLink);
                    Principal {
                        name: "signed link".into(),
                        role: crate::config::daemon::Role::Auditor,
                    }
                }
                Err(denied) => {
                    record(&state, "signed link", "", &target, "403").await;
                    return ApiError::from(denied).into_response();
                }
            }
        }
        _ => {
            let header = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            match state.access.authenticate(header) {
                Ok(principal) => principal,
                Err(denied) => {
                    record(&state, "unknown", "", &target, "401").await;
                    return ApiError::from(denied).into_response();
                }
            }
        }
    };
    request.extensions_mut().insert(Caller(caller.clone()));
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // Refused before any handler reads a byte of it; the audit log still names the caller.
    let response = if declared.is_some_and(|n| n > super::routes::MAX_BODY_BYTES as u64) {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is larger than {} bytes; an export definition is a few KiB",
                super::routes::MAX_BODY_BYTES
            ),
        )
        .into_response()
    } else {
        next.run(request).await
    };
    record(
        &state,
        &caller.name,
        role_name(caller.role),
        &target,
        response.status().as_str(),
    )
    .await;
    response
}

/// `?expires=…&signature=…` of a signed link.
fn signed_link(request: &Request) -> Option<(i64, String)> {
    let query = request.uri().query()?;
    let mut expires = None;
    let mut signature = None;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("expires", v)) => expires = v.parse().ok(),
            Some(("signature", v)) => signature = Some(v.to_owned()),
            _ => {}
        }
    }
    Some((expires?, signature?))
}

/// Signed links open file downloads only, never another route.
fn is_file_route(path: &str) -> bool {
    path.starts_with("/v1/runs/") && path.contains("/files/") && !path.ends_with("/link")
}

async fn record(state: &ApiState, actor: &str, role: &str, target: &str, outcome: &str) {
    let entry = AuditEntry::new(actor, role, "api", target, outcome, chrono::Utc::now());
    let store = state.state.clone();
    let written = tokio::task::spawn_blocking(move || store.append_audit(&[entry])).await;
    if !matches!(written, Ok(Ok(()))) {
        tracing::warn!("cannot write the audit log for `{target}`");
    }
}
