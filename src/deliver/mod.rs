//! Destinations: where staged parts go. One [`Destination`] implementation per `to = "…"`
//! kind; adding a destination means a module here, a variant of `config::export::DeliverDef`
//! and a line in [`build`].
//!
//! Every destination publishes a file whole or not at all (temp name + rename, multipart
//! complete, one email), and re-delivering the same run writes the same names.

pub mod local;

use crate::config::export::DeliverDef;
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};

/// Delivery errors, classified so the daemon knows whether to retry.
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
        matches!(self, Error::Io { .. })
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

/// A place parts are delivered to.
pub trait Destination: Send + Sync {
    /// The `to` value.
    fn kind(&self) -> &'static str;
    /// Publishes one file under `upload.key`, replacing an object of the same name.
    fn put(&self, upload: &Upload<'_>) -> Result<Delivered, Error>;
    /// Reads a small object written earlier (a previous run's manifest), if it exists.
    fn read_small(&self, key: &str) -> Option<Vec<u8>>;
    /// Removes an object this destination wrote earlier; a missing object is not an error.
    fn remove(&self, key: &str) -> Result<(), Error>;
}

/// Builds the destination a `[[deliver]]` table describes.
pub fn build(def: &DeliverDef, output_dir: &Path) -> Result<Box<dyn Destination>, Error> {
    match def {
        DeliverDef::Local(_) => Ok(Box::new(local::LocalDestination::new(output_dir))),
        other => Err(Error::Unsupported(other.kind_name())),
    }
}
