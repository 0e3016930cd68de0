//! The lead store: where exports read leads and events from.
//!
//! One trait, [`LeadStore`], with one implementation per database (SQLite embedded by default,
//! PostgreSQL in [`postgres`]). The store owns the SQL: the window and the
//! pushable part of the filter become bound parameters, the rest of the filter is evaluated in
//! Rust on the stream, and rows are handed to the caller one at a time (never collected).
//!
//! # Documented schema
//! `leads`: `id`, `created_at`, `updated_at`, `source`, `flow`, `outcome`, `reason`, `revenue`,
//! `cost`, and `doc`, the submitted fields as one JSON object with FLAT dotted keys: typed fields
//! keep their value under their name (`email`) and their parsed components beside it
//! (`email.valid`, `email.domain`, `phone_1.area`), enhancement data under `appended.*`.
//! Nested objects given to `ingest` are flattened to dotted keys on the way in, so an export
//! reads one level only.
//!
//! `events`: `id`, `type` (`source.accepted`, `recipient.delivered`, `recipient.failed`, …),
//! `timestamp`, `lead_id`, `outcome`, `reason`, `recipient` (alias `buyer`), `price`,
//! `duration_ms`, `metadata` (flat JSON, fields `metadata.KEY`) and `lead`, a flat snapshot of
//! the lead when the event happened (fields `lead.KEY`).
//!
//! Money is exact: stored in 1/10000 units and read back as a decimal. Times are UTC.

pub mod demo;
mod doc;
pub mod ingest;
pub mod postgres;
pub mod sqlite;

use crate::filter::Expr;
use crate::value::Value;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value as Json};

pub use sqlite::SqliteStore;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database failed.
    #[error("lead store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The PostgreSQL database failed or cannot be reached.
    #[error("lead store: {0}")]
    Postgres(crate::postgres::Error),
    /// The store URL is not one exportd knows.
    #[error("unsupported store url `{0}`: use `sqlite://PATH` or `postgres://USER@HOST/DB`")]
    UnsupportedUrl(String),
    /// The `[store] password` secret cannot be read.
    #[error("lead store password: {0}")]
    Secret(#[from] crate::config::secret::Error),
    /// The store file or directory could not be created.
    #[error("cannot open lead store `{path}`: {source}")]
    Open {
        /// The path.
        path: std::path::PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// A record given to `insert` was not valid.
    #[error("{0}")]
    InvalidRecord(String),
    /// The consumer of a stream stopped it with an error.
    #[error("{0}")]
    Consumer(String),
}

/// What a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// The `leads` table.
    Leads,
    /// The `events` table.
    Events,
}

/// Which timestamp of a record the window applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeField {
    /// When the lead was created or the event happened.
    #[default]
    Created,
    /// When the lead was last modified (leads only; events never change).
    Updated,
}

/// One extraction: a table, a half-open time window, a filter and the fields to return.
#[derive(Debug, Clone)]
pub struct Query {
    /// Table to read.
    pub table: Table,
    /// Timestamp the window applies to.
    pub time_field: TimeField,
    /// Inclusive start; `None` means from the beginning.
    pub start: Option<DateTime<Utc>>,
    /// Exclusive end.
    pub end: DateTime<Utc>,
    /// Which records; pushed down where the dialect allows.
    pub filter: Option<Expr>,
    /// Field paths each returned row holds, in this order.
    pub fields: Vec<String>,
}

/// The SQL a query runs, for `export --dry-run`.
#[derive(Debug, Clone)]
pub struct Explained {
    /// The statement with `?` placeholders.
    pub sql: String,
    /// Bound parameters, in order.
    pub params: Vec<Value>,
    /// The part of the filter evaluated in Rust, if any.
    pub residual: Option<String>,
}

/// A lead to insert (demo data, ingest).
#[derive(Debug, Clone)]
pub struct NewLead {
    /// Unique id.
    pub id: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last modification.
    pub updated_at: DateTime<Utc>,
    /// Source name.
    pub source: Option<String>,
    /// Flow name.
    pub flow: Option<String>,
    /// `success`, `failure`, `error`.
    pub outcome: Option<String>,
    /// Why the outcome.
    pub reason: Option<String>,
    /// What the lead sold for.
    pub revenue: Option<Decimal>,
    /// What the lead cost.
    pub cost: Option<Decimal>,
    /// Submitted and derived fields, flat dotted keys.
    pub doc: Map<String, Json>,
}

/// An event to insert.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Unique id.
    pub id: String,
    /// `source.accepted`, `recipient.delivered`, `recipient.failed`, …
    pub kind: String,
    /// When it happened.
    pub timestamp: DateTime<Utc>,
    /// The lead it belongs to.
    pub lead_id: Option<String>,
    /// Outcome of the step.
    pub outcome: Option<String>,
    /// Why.
    pub reason: Option<String>,
    /// Buyer / recipient.
    pub recipient: Option<String>,
    /// Price paid.
    pub price: Option<Decimal>,
    /// Duration of the step.
    pub duration_ms: Option<i64>,
    /// Extra data, flat.
    pub metadata: Map<String, Json>,
    /// Snapshot of the lead, flat.
    pub lead: Map<String, Json>,
}

/// Grouped aggregates for summary exports.
#[derive(Debug, Clone)]
pub struct SummaryQuery {
    /// The records aggregated.
    pub query: Query,
    /// Non-time grouping fields (`source`, `state`, `buyer`, …).
    pub keys: Vec<String>,
    /// One aggregate per metric.
    pub aggregates: Vec<Aggregate>,
    /// Width of the time buckets in seconds the store groups by (the caller merges buckets
    /// into local days, weeks or months); `None` groups without time.
    pub bucket_seconds: Option<i64>,
}

/// One SQL aggregate.
#[derive(Debug, Clone)]
pub enum Aggregate {
    /// `COUNT(*)`, or the count of rows matching a filter.
    Count(Option<Expr>),
    /// `COUNT(field)`: rows where the field is not NULL (the divisor of an average).
    CountOf(String),
    /// `SUM(field)`.
    Sum(String),
    /// `MIN(field)`.
    Min(String),
    /// `MAX(field)`.
    Max(String),
}

/// A lead store.
pub trait LeadStore: Send {
    /// Every field a row of `table` may have in the window: fixed columns first, then JSON
    /// keys in name order. Answered from a catalog the store keeps at insert time (by creation
    /// and by update time), so the header is known before the first row streams.
    fn available_fields(
        &self,
        table: Table,
        time_field: TimeField,
        start: Option<DateTime<Utc>>,
        end: DateTime<Utc>,
    ) -> Result<Vec<String>, Error>;

    /// Calls `row` for every matching record, with `query.fields` in order. The cells are
    /// lent mutably so the caller may move values out instead of cloning them. `row` returns
    /// `Ok(false)` to stop early. Returns the number of rows passed on.
    fn stream(
        &self,
        query: &Query,
        row: &mut dyn FnMut(&mut [Value]) -> Result<bool, Error>,
    ) -> Result<u64, Error>;

    /// The number of matching records.
    fn count(&self, query: &Query) -> Result<u64, Error>;

    /// The SQL `stream` would run.
    fn explain(&self, query: &Query) -> Explained;

    /// Grouped aggregates: each row is the bucket start (a timestamp, if bucketed), the keys,
    /// then one value per aggregate.
    fn summarize(
        &self,
        summary: &SummaryQuery,
        row: &mut dyn FnMut(&[Value]) -> Result<(), Error>,
    ) -> Result<(), Error>;

    /// Inserts or replaces leads, in one transaction.
    fn insert_leads(&mut self, leads: &[NewLead]) -> Result<(), Error>;

    /// Inserts or replaces events, in one transaction.
    fn insert_events(&mut self, events: &[NewEvent]) -> Result<(), Error>;

    /// Number of leads and events stored.
    fn totals(&self) -> Result<(u64, u64), Error>;

    /// Starts a unit of work: the inserts until [`LeadStore::commit_atomic`] become visible
    /// together, or not at all after [`LeadStore::rollback_atomic`] (`ingest --strict`).
    /// Each `insert_*` batch nests inside it.
    fn begin_atomic(&mut self) -> Result<(), Error>;

    /// Makes every insert since [`LeadStore::begin_atomic`] visible.
    fn commit_atomic(&mut self) -> Result<(), Error>;

    /// Discards every insert since [`LeadStore::begin_atomic`].
    fn rollback_atomic(&mut self) -> Result<(), Error>;

    /// Prepares for a large load into an EMPTY store (demo data): secondary indexes are built
    /// once at the end instead of row by row. Stores that gain nothing do nothing.
    fn begin_bulk_load(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// Ends a bulk load; the store is fully indexed again.
    fn end_bulk_load(&mut self) -> Result<(), Error> {
        Ok(())
    }
}

/// The stored type of a fixed column of `table` (`revenue` is money, `created_at` a timestamp);
/// `None` for keys of the JSON documents, whose values may differ from record to record.
/// Both stores keep the same documented columns, so one answer serves both.
pub fn column_type(table: Table, field: &str) -> Option<crate::filter::FieldType> {
    match SqliteStore::dialect(table).locate(field) {
        Some(crate::filter::Location::Column(_, ty)) => Some(ty),
        _ => None,
    }
}

/// Opens the store a URL names (`[store] url`, with `[store] password` for PostgreSQL).
/// Relative SQLite paths resolve against `base`.
pub fn open(
    url: &str,
    password: Option<&crate::config::secret::SecretRef>,
    base: &std::path::Path,
) -> Result<Box<dyn LeadStore>, Error> {
    if crate::postgres::is_postgres_url(url) {
        let password = password.map(|p| p.resolve()).transpose()?;
        return Ok(Box::new(postgres::PostgresStore::open(
            url,
            password.as_ref(),
        )?));
    }
    match url.strip_prefix("sqlite://") {
        Some(path) => {
            let path = std::path::Path::new(path);
            let path = if path.is_absolute() {
                path.to_path_buf()
            } else {
                base.join(path)
            };
            Ok(Box::new(SqliteStore::open(&path)?))
        }
        None => Err(Error::UnsupportedUrl(url.to_owned())),
    }
}

/// Flattens nested objects into dotted keys (`{"email": {"valid": true}}` → `email.valid`).
/// An object under a key that also has a plain value keeps both (`email` and `email.valid`).
pub fn flatten(object: Map<String, Json>) -> Map<String, Json> {
    fn walk(prefix: &str, value: Json, out: &mut Map<String, Json>) {
        match value {
            Json::Object(map) if !map.is_empty() => {
                for (k, v) in map {
                    let key = if prefix.is_empty() {
                        k
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            other => {
                out.insert(prefix.to_owned(), other);
            }
        }
    }
    let mut out = Map::new();
    for (k, v) in object {
        walk(&k, v, &mut out);
    }
    out
}
