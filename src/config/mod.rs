//! Configuration: the daemon's `exportd.toml` and the export definitions in `exports.d/`.
//!
//! Raw serde types (`ExportDef`, `DaemonConfig`) are what operators write and the source of the
//! JSON Schemas. `validate` turns them into checked `ExportSpec`s plus every problem found, as
//! `Diagnostic`s with file, line and column. Nothing here does IO except `load`, and nothing
//! reads the clock.

pub mod daemon;
pub mod diagnostic;
pub mod export;
pub mod load;
pub mod schema;
pub mod schema_check;
pub mod secret;
pub mod source;
pub mod units;

pub use daemon::DaemonConfig;
pub use diagnostic::{Diagnostic, Severity};
pub use export::ExportDef;
pub mod summary;
pub mod validate;

pub use summary::{Metric, SUMMARY_GROUPS};
pub use validate::{ExportSpec, check_daemon, check_export};
