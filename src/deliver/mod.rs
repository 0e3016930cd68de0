//! Destinations: where staged parts go. One [`Destination`] implementation per `to = "…"`
//! kind; adding a destination means a module here, a variant of `config::export::DeliverDef`
//! (and of `config::daemon::ConnectionConfig` if it needs credentials) and a line in [`build`].
//!
//! Every destination publishes a file whole or not at all (temp name + rename, multipart
//! complete, one email), and re-delivering the same run writes the same names.
//!
//! Two shapes of destination exist:
//! - **object destinations** (local, S3, GCS, Azure, SFTP) store each part under its rendered
//!   key; the pipeline puts the parts, then the manifest beside the first part, and removes
//!   parts a previous attempt of the same run wrote that this one did not ([`Destination::put`]);
//! - **message destinations** (email, webhook) take the whole run at once
//!   ([`Destination::send_run`]): one email with every part attached, or record batches POSTed
//!   to an endpoint.
//!
//! Remote destinations are async inside (object_store, russh, lettre, reqwest) behind this
//! synchronous trait: the pipeline runs on a blocking thread, and [`block_on`] drives the
//! futures on one shared IO runtime.

pub mod email;
pub mod gcs;
pub mod known_hosts;
pub mod local;
pub mod object;
mod records;
pub mod sftp;
pub mod webhook;

use crate::config::daemon::ConnectionConfig;
use crate::config::export::DeliverDef;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Delivery errors, classified so the caller knows whether to retry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// IO on the destination failed (disk full, permissions); retrying may help.
    #[error("cannot write `{path}`: {source}")]
    Io {
        /// The target.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// A remote destination failed. `retriable` says whether trying again may help
    /// (timeouts, refused connections, 5xx, 408, 429) or not (authentication, a missing
    /// bucket, 4xx).
    #[error("{destination}: `{key}`: {message}")]
    Remote {
        /// The destination kind (`s3`, `sftp`, …).
        destination: &'static str,
        /// The object key, path or endpoint concerned.
        key: String,
        /// What went wrong and what to do next; never contains a secret.
        message: String,
        /// Whether a retry could succeed.
        retriable: bool,
    },
    /// The destination's settings cannot work (unknown connection, insecure endpoint refused,
    /// bad key file). Permanent: fix the configuration.
    #[error("{0}")]
    Config(String),
    /// A run too big for the destination (an email over `max_size`); nothing was sent.
    #[error("{0}")]
    TooLarge(String),
    /// A secret reference could not be resolved.
    #[error(transparent)]
    Secret(#[from] crate::config::secret::Error),
    /// The destination kind is not built into this version.
    #[error(
        "destination `to = \"{0}\"` is not available in this build yet; deliver to `local` for now"
    )]
    Unsupported(&'static str),
    /// A rendered path escaped the destination root.
    #[error(transparent)]
    Path(#[from] crate::template::Error),
}

impl Error {
    /// Whether a retry could succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Io { .. } => true,
            Error::Remote { retriable, .. } => *retriable,
            _ => false,
        }
    }
}

/// One object written to a destination, as the ledger records it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Delivered {
    /// `local`, `s3`, …
    pub destination: String,
    /// Where it went: a path or an object key.
    pub key: String,
    /// Bytes written.
    pub bytes: u64,
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
    /// When the object became visible.
    pub delivered_at: DateTime<Utc>,
}

/// A file to deliver under a rendered key.
#[derive(Debug, Clone)]
pub struct Upload<'a> {
    /// The staged file.
    pub file: &'a Path,
    /// The rendered destination path or key.
    pub key: &'a str,
    /// Its size.
    pub bytes: u64,
    /// Its SHA-256.
    pub sha256: &'a str,
}

/// A whole run handed to a message destination (email, webhook).
#[derive(Debug)]
pub struct RunUpload<'a> {
    /// Export name.
    pub export: &'a str,
    /// Run id (stable per export and nominal time: the base of idempotency keys).
    pub run_id: &'a str,
    /// The parts, each under its rendered name (attachment name, or webhook path).
    pub parts: Vec<Upload<'a>>,
    /// Rows per part, in the same order.
    pub rows: Vec<u64>,
    /// The run's manifest as JSON (for the email body and the webhook's final call).
    pub manifest: &'a serde_json::Value,
    /// The run's template variables (`date`, `week`, `export`, …) for subjects and headers.
    pub vars: &'a serde_json::Value,
    /// The export's `[format] type` (`ndjson`, `csv`, …).
    pub format: &'a str,
    /// The export's `[format] compression` (`none`, `gzip`, …).
    pub compression: &'a str,
    /// Whether the parts are sealed with age (`[encrypt]`): their bytes are opaque, so no
    /// destination may read records out of them.
    pub encrypted: bool,
}

/// What a destination holds under a key now, for retention's "still what we wrote" check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Size in bytes.
    pub bytes: u64,
    /// The destination's content tag (ETag, MD5), if it has one.
    pub etag: Option<String>,
    /// When it was last written, if known.
    pub modified: Option<DateTime<Utc>>,
}

/// A place parts are delivered to.
pub trait Destination: Send + Sync {
    /// The `to` value.
    fn kind(&self) -> &'static str;

    /// Publishes one file under `upload.key`, replacing an object of the same name.
    /// Message destinations (email, webhook) do not take single objects: they keep the
    /// default, which refuses, and implement [`Destination::send_run`].
    fn put(&self, upload: &Upload<'_>) -> Result<Delivered, Error> {
        let _ = upload;
        Err(Error::Unsupported(self.kind()))
    }

    /// Reads a small object written earlier (a previous run's manifest), if it exists.
    fn read_small(&self, key: &str) -> Option<Vec<u8>> {
        let _ = key;
        None
    }

    /// Removes an object this destination wrote earlier; a missing object is not an error.
    fn remove(&self, key: &str) -> Result<(), Error> {
        let _ = key;
        Ok(())
    }

    /// What is stored under `key` now, `None` if nothing is.
    fn stat(&self, key: &str) -> Result<Option<ObjectInfo>, Error> {
        let _ = key;
        Ok(None)
    }

    /// SHA-256 of what is stored under `key`, where the destination can tell (a local file);
    /// `None` where it cannot (object stores expose only sizes and ETags).
    fn sha256(&self, key: &str) -> Result<Option<String>, Error> {
        let _ = key;
        Ok(None)
    }

    /// Moves the object under `key` to `storage_class` in place (S3: a copy onto itself in the
    /// new class). `Ok(false)` where the destination has no storage classes to move between.
    fn transition(&self, key: &str, storage_class: &str) -> Result<bool, Error> {
        let _ = (key, storage_class);
        Ok(false)
    }

    /// A URL that downloads `key` without credentials until `lifetime` runs out (an S3
    /// presigned GET), or `None` where the destination has no such thing.
    fn presigned_get(
        &self,
        key: &str,
        lifetime: std::time::Duration,
    ) -> Result<Option<String>, Error> {
        let _ = (key, lifetime);
        Ok(None)
    }

    /// Whether the destination takes whole runs ([`Destination::send_run`]) instead of objects.
    fn takes_whole_runs(&self) -> bool {
        false
    }

    /// Delivers a whole run at once (email, webhook): one ledger row per part sent.
    fn send_run(&self, run: &RunUpload<'_>) -> Result<Vec<Delivered>, Error> {
        let _ = run;
        Err(Error::Unsupported(self.kind()))
    }
}

/// What building a destination needs besides its `[[deliver]]` table.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Root of `to = "local"` relative paths.
    pub output_dir: PathBuf,
    /// The `[connections]` of exportd.toml, by name.
    pub connections: Arc<BTreeMap<String, ConnectionConfig>>,
}

impl Context {
    /// The named connection, or a message saying where to declare it.
    pub fn connection(&self, name: &str) -> Result<&ConnectionConfig, Error> {
        self.connections.get(name).ok_or_else(|| {
            Error::Config(format!(
                "no connection `{name}`: declare `[connections.{name}]` in exportd.toml"
            ))
        })
    }
}

/// Builds the destination a `[[deliver]]` table describes.
pub fn build(def: &DeliverDef, context: &Context) -> Result<Box<dyn Destination>, Error> {
    match def {
        DeliverDef::Local(_) => Ok(Box::new(local::LocalDestination::new(&context.output_dir))),
        DeliverDef::S3(def) => match context.connection(&def.connection)? {
            ConnectionConfig::S3(c) => Ok(Box::new(object::ObjectDestination::s3(def, c)?)),
            other => Err(wrong_connection(&def.connection, other, "s3")),
        },
        DeliverDef::Gcs(def) => match context.connection(&def.connection)? {
            ConnectionConfig::Gcs(c) => Ok(Box::new(gcs::GcsDestination::new(def, c)?)),
            other => Err(wrong_connection(&def.connection, other, "gcs")),
        },
        DeliverDef::Azure(def) => match context.connection(&def.connection)? {
            ConnectionConfig::Azure(c) => Ok(Box::new(object::ObjectDestination::azure(def, c)?)),
            other => Err(wrong_connection(&def.connection, other, "azure")),
        },
        DeliverDef::Sftp(d) => Ok(Box::new(sftp::SftpDestination::new(
            &d.connection,
            context,
        )?)),
        DeliverDef::Email(def) => Ok(Box::new(email::EmailDestination::new(def, context)?)),
        DeliverDef::Webhook(def) => Ok(Box::new(webhook::WebhookDestination::new(def, context)?)),
    }
}

/// A `to = "…"` whose named connection is of another kind (`to = "email"` needs `smtp`).
pub(crate) fn wrong_connection(name: &str, found: &ConnectionConfig, to: &str) -> Error {
    let wanted = match to {
        "email" => "smtp",
        other => other,
    };
    Error::Config(format!(
        "connection `{name}` is of type `{}`, but `to = \"{to}\"` needs a `{wanted}` connection; point `connection` at one or change the connection's type",
        found.kind_name()
    ))
}

/// Runs `future` to completion on the shared IO runtime. Call it from blocking code only (the
/// pipeline's thread, a CLI command), never from inside an async task.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            // TLS everywhere uses aws-lc-rs; installing it as the process default keeps
            // rustls from refusing to choose if another provider is ever linked in.
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("exportd-io")
                .enable_all()
                .build()
                .expect("cannot start the IO runtime")
        })
        .block_on(future)
}

/// How often and how patiently a destination retries.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Wait before the second attempt; doubled each time, with jitter.
    pub initial_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` (0-based `attempt` that just failed): exponential,
    /// with "equal jitter" (half fixed, half random) so replicas do not retry in lockstep, and
    /// never less than a server's `Retry-After`.
    pub fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exponential = self
            .initial_backoff
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max_backoff);
        let half = exponential / 2;
        let jitter = half.mul_f64(jitter_fraction());
        let wait = half + jitter;
        match retry_after {
            // A server's wish is honoured up to five minutes; longer waits fail the attempt
            // sooner and leave it to the run's own retry.
            Some(server) => wait.max(server.min(Duration::from_secs(300))),
            None => wait,
        }
    }
}

/// A number in [0, 1) that differs between calls and processes (no RNG crate needed for this).
fn jitter_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Runs `attempt` until it succeeds, fails permanently, or the policy's attempts are used up.
/// `attempt` gets the 0-based attempt number and says, on failure, how long the server asked
/// to wait (`Retry-After`), if it did.
pub fn retry<T>(
    policy: &RetryPolicy,
    what: &str,
    mut attempt: impl FnMut(u32) -> Result<T, (Error, Option<Duration>)>,
) -> Result<T, Error> {
    let mut number = 0;
    loop {
        match attempt(number) {
            Ok(value) => return Ok(value),
            Err((error, retry_after)) => {
                if !error.is_retriable() || number + 1 >= policy.attempts {
                    return Err(error);
                }
                let wait = policy.backoff(number, retry_after);
                tracing::warn!(
                    "{what}: attempt {} of {} failed: {error}; retrying in {:.1}s",
                    number + 1,
                    policy.attempts,
                    wait.as_secs_f64()
                );
                std::thread::sleep(wait);
                number += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(retriable: bool) -> Error {
        Error::Remote {
            destination: "s3",
            key: "k".into(),
            message: "boom".into(),
            retriable,
        }
    }

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let policy = RetryPolicy {
            attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        for attempt in 0..8 {
            let full = Duration::from_millis(100)
                .saturating_mul(1 << attempt)
                .min(Duration::from_secs(1));
            let wait = policy.backoff(attempt, None);
            assert!(wait >= full / 2 && wait <= full, "{attempt}: {wait:?}");
        }
        assert!(policy.backoff(0, Some(Duration::from_secs(3))) >= Duration::from_secs(3));
    }

    #[test]
    fn retry_stops_on_permanent_errors_and_after_the_last_attempt() {
        let policy = RetryPolicy {
            attempts: 3,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
        };
        let mut calls = 0;
        let result: Result<(), _> = retry(&policy, "test", |_| {
            calls += 1;
            Err((remote(false), None))
        });
        assert!(result.is_err());
        assert_eq!(calls, 1);

        let mut calls = 0;
        let result: Result<(), _> = retry(&policy, "test", |_| {
            calls += 1;
            Err((remote(true), None))
        });
        assert!(result.is_err());
        assert_eq!(calls, 3);

        let result = retry(&policy, "test", |n| {
            if n < 2 {
                Err((remote(true), None))
            } else {
                Ok(n)
            }
        });
        assert_eq!(result.unwrap(), 2);
    }
}
