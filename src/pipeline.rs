//! One run of one export, end to end:
//! plan (nominal time → window) → store query → field selection and masks → encoder →
//! compression → chunker → staged parts + manifest → destinations.
//!
//! Rows stream: the store hands over one row at a time, the encoder writes it into the open
//! part, and compression runs on worker threads. Nothing holds the result set.

use crate::chunk::{Chunker, Limits, StagedPart};
use crate::compress::{self, Compression};
use crate::config::export::{
    CompressionKind, DeliverDef, FormatKind, Kind, LineEnding as LineEndingDef, SplitBy,
    SummaryRecords, TimeFieldDef,
};
use crate::config::{ExportSpec, Metric, load::Loaded};
use crate::deliver::{self, Delivered, Upload};
use crate::encrypt::AgeRecipients;
use crate::fields::{ColumnSource, Masker, Selection};
use crate::filter::{Expr, FieldType, Func};
use crate::format::{self, ColumnType, CsvOptions, FormatOptions, LineEnding, XmlOptions};
use crate::schedule::Window;
use crate::store::{self, Aggregate, LeadStore, Query, SummaryQuery, Table, TimeField};
use crate::template::{self, RunVars};
use crate::value::Value;
use chrono::{DateTime, Datelike, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Name of the manifest written after the parts.
pub const MANIFEST_NAME: &str = "_manifest.json";
/// Name of the optional success marker written last.
pub const SUCCESS_MARKER: &str = "_SUCCESS";

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// The column selection is empty or ambiguous.
    #[error(transparent)]
    Fields(#[from] crate::fields::Error),
    /// Writing a staged part failed.
    #[error("staging in `{dir}` failed: {source}; check free space and permissions")]
    Staging {
        /// The staging directory.
        dir: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// A destination refused a part. What earlier destinations (or earlier parts) received is
    /// in `delivered`, so the ledger still knows about it; the staged files are kept.
    #[error("delivery to `{destination}` failed: {error}")]
    Deliver {
        /// The destination kind.
        destination: &'static str,
        /// The error. Not a `source`: it is in the message already, and error chains printed
        /// with `{:#}` would repeat it.
        error: deliver::Error,
        /// Objects delivered before the failure.
        delivered: Vec<Delivered>,
    },
    /// A secret reference could not be resolved.
    #[error(transparent)]
    Secret(#[from] crate::config::secret::Error),
    /// A path template failed to render.
    #[error(transparent)]
    Template(#[from] template::Error),
    /// The definition asks for something this build cannot do.
    #[error("{0}")]
    Unsupported(String),
    /// An `encrypt.age_recipients` key does not parse (validation reports it first; this
    /// covers specs built without it).
    #[error("invalid `encrypt.age_recipients`: {0}")]
    Encryption(#[from] crate::encrypt::RecipientError),
}

impl Error {
    /// Turns an IO error in the staging directory `dir` into [`Error::Staging`]
    /// (`.map_err(Error::staging(dir))`).
    fn staging(dir: &Path) -> impl Fn(std::io::Error) -> Error + Copy + '_ {
        move |source| Error::Staging {
            dir: dir.to_path_buf(),
            source,
        }
    }
}

/// Where runs stage and deliver files, resolved from exportd.toml.
#[derive(Debug, Clone)]
pub struct Environment {
    /// Root of `to = "local"` paths.
    pub output_dir: PathBuf,
    /// Where parts are staged before delivery.
    pub staging_dir: PathBuf,
    /// URL of the lead store.
    pub store_url: String,
    /// Password of a PostgreSQL lead store.
    pub store_password: Option<crate::config::secret::SecretRef>,
    /// URL of the state store (runs, ledger, watermarks).
    pub state_url: String,
    /// Password of a PostgreSQL state store.
    pub state_password: Option<crate::config::secret::SecretRef>,
    /// How long a replica's claim on a run lasts without renewal (`[state] lease_seconds`).
    pub lease: std::time::Duration,
    /// This replica's name in claims (`[state] replica`, or `HOSTNAME:CONFIG_DIR`).
    pub replica: String,
    /// Directory the store URLs' relative paths resolve against.
    pub base_dir: PathBuf,
    /// The `[connections]` of exportd.toml, for remote destinations.
    pub connections: std::sync::Arc<BTreeMap<String, crate::config::daemon::ConnectionConfig>>,
    /// `[retention]` of exportd.toml: sweep guards and interval.
    pub retention: crate::config::daemon::RetentionConfig,
    /// Prices of cost estimates.
    pub prices: crate::cost::Prices,
    /// `[alerts]` of exportd.toml (the daemon sends alerts).
    pub alerts: Option<crate::config::daemon::AlertsConfig>,
}

impl Environment {
    /// The environment a loaded configuration describes.
    pub fn from_loaded(loaded: &Loaded) -> Environment {
        Environment {
            output_dir: loaded.resolve(&loaded.daemon.defaults.output_dir),
            staging_dir: loaded.resolve(&loaded.daemon.defaults.staging_dir),
            store_url: loaded.daemon.store.url.clone(),
            store_password: loaded.daemon.store.password.clone(),
            state_url: loaded.daemon.state.url.clone(),
            state_password: loaded.daemon.state.password.clone(),
            lease: std::time::Duration::from_secs(loaded.daemon.state.lease_seconds.max(2)),
            replica: loaded.daemon.state.replica.clone().unwrap_or_else(|| {
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .map(|h| h.trim().to_owned())
                    .unwrap_or_else(|_| "localhost".into());
                // Absolute: replicas started from their own directories all see `.`.
                let dir = std::fs::canonicalize(&loaded.base_dir)
                    .unwrap_or_else(|_| loaded.base_dir.clone());
                format!("{host}:{}", dir.display())
            }),
            base_dir: loaded.base_dir.clone(),
            connections: std::sync::Arc::new(loaded.daemon.connections.clone()),
            retention: loaded.daemon.retention.clone(),
            prices: crate::cost::Prices {
                storage_per_gb_month: loaded.daemon.defaults.storage_price_per_gb_month,
                transfer_per_gb: loaded.daemon.defaults.transfer_price_per_gb,
            },
            alerts: loaded.daemon.alerts.clone(),
        }
    }

    /// What destinations are built from.
    pub fn deliver_context(&self) -> deliver::Context {
        deliver::Context {
            output_dir: self.output_dir.clone(),
            connections: self.connections.clone(),
        }
    }

    /// Opens the lead store.
    pub fn open_store(&self) -> Result<Box<dyn LeadStore>, store::Error> {
        store::open(
            &self.store_url,
            self.store_password.as_ref(),
            &self.base_dir,
        )
    }

    /// Opens the state store.
    pub fn open_state(&self) -> Result<Box<dyn crate::state::StateStore>, crate::state::Error> {
        crate::state::open(
            &self.state_url,
            self.state_password.as_ref(),
            &self.base_dir,
        )
    }
}

/// What one run exports: its nominal time and window.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// When the schedule fired (or the time asked for).
    pub nominal: DateTime<Utc>,
    /// The records' time range.
    pub window: Window,
}

impl RunPlan {
    /// The plan for a nominal time, the window derived from it in the export's zone.
    pub fn at(
        spec: &ExportSpec,
        nominal: DateTime<Utc>,
        watermark: Option<DateTime<Utc>>,
    ) -> RunPlan {
        RunPlan {
            nominal,
            window: spec.window.window_for(nominal, spec.timezone, watermark),
        }
    }

    /// Stable identifier of the run.
    pub fn run_id(&self) -> String {
        template::run_id(self.nominal)
    }
}

/// The manifest of a run, written as `_manifest.json` after the parts.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Manifest {
    /// Export name.
    pub export: String,
    /// Run id.
    pub run_id: String,
    /// Nominal time, RFC 3339.
    pub nominal_time: String,
    /// Window start (absent for `all`), RFC 3339.
    pub window_start: Option<String>,
    /// Window end, RFC 3339.
    pub window_end: String,
    /// Column names, in order.
    pub columns: Vec<String>,
    /// Parts, in order.
    pub parts: Vec<ManifestPart>,
    /// Total rows.
    pub total_rows: u64,
    /// Total bytes of the parts.
    pub total_bytes: u64,
    /// Version of exportd that wrote the files.
    pub exportd_version: String,
}

/// One part in the manifest.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ManifestPart {
    /// File name as delivered.
    pub name: String,
    /// Rows.
    pub rows: u64,
    /// Bytes.
    pub bytes: u64,
    /// SHA-256, hex.
    pub sha256: String,
}

/// What a run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunReport {
    /// Export name.
    pub export: String,
    /// Run id.
    pub run_id: String,
    /// Rows exported.
    pub rows: u64,
    /// Bytes staged (all parts).
    pub bytes: u64,
    /// The parts.
    pub parts: Vec<StagedPart>,
    /// Every object delivered, manifests included.
    pub deliveries: Vec<Delivered>,
    /// Wall time.
    pub elapsed_ms: u64,
    /// The manifest.
    pub manifest: Manifest,
}

/// Format options from the definition.
pub fn format_options(spec: &ExportSpec) -> Result<FormatOptions, Error> {
    let f = &spec.def.format;
    let csv = |tab: bool| CsvOptions {
        header: f.header,
        delimiter: f
            .delimiter
            .map(|c| c as u8)
            .unwrap_or(if tab { b'\t' } else { b',' }),
        quote: f.quote.map(|c| c as u8).unwrap_or(b'"'),
        escape: f
            .escape
            .map(|c| c as u8)
            .unwrap_or(f.quote.map(|c| c as u8).unwrap_or(b'"')),
        line_ending: match f.line_ending {
            LineEndingDef::Lf => LineEnding::Lf,
            LineEndingDef::Crlf => LineEnding::CrLf,
        },
        null: f.null.clone().unwrap_or_default(),
        excel: f.excel,
    };
    Ok(match f.kind {
        FormatKind::Csv => FormatOptions::Csv(csv(false)),
        FormatKind::Tsv => FormatOptions::Tsv(csv(true)),
        FormatKind::Json => FormatOptions::Json { pretty: f.pretty },
        FormatKind::Ndjson => FormatOptions::Ndjson,
        FormatKind::Xml => FormatOptions::Xml(XmlOptions {
            root: f
                .root_element
                .clone()
                .unwrap_or_else(|| XmlOptions::default().root),
            row: f
                .row_element
                .clone()
                .unwrap_or_else(|| XmlOptions::default().row),
        }),
        #[cfg(feature = "parquet")]
        FormatKind::Parquet => {
            use crate::format::parquet::{DEFAULT_ROW_GROUP_ROWS, ParquetCodec, ParquetOptions};
            FormatOptions::Parquet(ParquetOptions {
                codec: match f.compression() {
                    CompressionKind::Zstd => ParquetCodec::Zstd {
                        level: f
                            .level
                            .map(|l| l as i32)
                            .unwrap_or(compress::DEFAULT_ZSTD_LEVEL),
                    },
                    CompressionKind::Snappy => ParquetCodec::Snappy,
                    CompressionKind::None => ParquetCodec::None,
                    other => {
                        return Err(Error::Unsupported(format!(
                            "parquet cannot be compressed as `{}`: use `zstd`, `snappy` or `none`",
                            serde_json::to_value(other)
                                .ok()
                                .and_then(|v| v.as_str().map(str::to_owned))
                                .unwrap_or_default()
                        )));
                    }
                },
                row_group_rows: f
                    .row_group_rows
                    .map(|r| r.clamp(1, usize::MAX as u64) as usize)
                    .unwrap_or(DEFAULT_ROW_GROUP_ROWS),
            })
        }
        #[cfg(not(feature = "parquet"))]
        FormatKind::Parquet => {
            return Err(Error::Unsupported(
                "`parquet` is not available in this build (built without the `parquet` feature)"
                    .into(),
            ));
        }
    })
}

/// Compression from the definition (resolves the archive password).
pub fn compression(spec: &ExportSpec) -> Result<Compression, Error> {
    let f = &spec.def.format;
    let password = f.password.as_ref().map(|p| p.resolve()).transpose()?;
    let password = password.map(|p| p.expose().to_owned());
    Ok(match f.file_compression() {
        // Snappy only exists inside parquet files, where `file_compression` is `None`.
        CompressionKind::None | CompressionKind::Snappy => Compression::None,
        CompressionKind::Gzip => Compression::Gzip {
            level: f.level.unwrap_or(compress::DEFAULT_GZIP_LEVEL),
        },
        CompressionKind::Zstd => Compression::Zstd {
            level: f
                .level
                .map(|l| l as i32)
                .unwrap_or(compress::DEFAULT_ZSTD_LEVEL),
        },
        CompressionKind::Zip => Compression::Zip { password },
        CompressionKind::TarGz => Compression::TarGz {
            level: f.level.unwrap_or(compress::DEFAULT_GZIP_LEVEL),
        },
        CompressionKind::SevenZ => Compression::SevenZ { password },
    })
}

/// Extension an encrypted part gains after its compression's (`csv.gz.age`), as `age` does.
pub const ENCRYPTED_EXTENSION: &str = "age";

/// File extension of a part: format, compression and encryption (`ndjson.gz`, `csv.zip.age`).
pub fn part_extension(
    format: &FormatOptions,
    compression: &Compression,
    encrypted: bool,
) -> String {
    let mut extension = format.extension().to_owned();
    for suffix in compression
        .extension()
        .into_iter()
        .chain(encrypted.then_some(ENCRYPTED_EXTENSION))
    {
        extension.push('.');
        extension.push_str(suffix);
    }
    extension
}

/// The age recipients of an encrypting export (validation has checked them).
pub fn encryption(spec: &ExportSpec) -> Result<Option<AgeRecipients>, Error> {
    spec.def
        .encrypt
        .as_ref()
        .map(|e| AgeRecipients::parse(&e.age_recipients))
        .transpose()
        .map_err(Error::from)
}

/// The store query of a leads/events export (without fields).
pub fn base_query(spec: &ExportSpec, plan: &RunPlan) -> Query {
    Query {
        table: match spec.def.kind {
            Kind::Events => Table::Events,
            Kind::Summary
                if spec
                    .def
                    .summary
                    .as_ref()
                    .is_some_and(|s| s.records == SummaryRecords::Events) =>
            {
                Table::Events
            }
            _ => Table::Leads,
        },
        time_field: match spec.def.time_field {
            TimeFieldDef::CreatedAt => TimeField::Created,
            TimeFieldDef::UpdatedAt => TimeField::Updated,
        },
        start: plan.window.start,
        end: plan.window.end,
        filter: spec.filter.clone(),
        fields: Vec::new(),
    }
}

/// The column types of a leads or events export, known before the first row (typed formats
/// write them into the file header). A stored column keeps its store type, a computed one the
/// type its expression always produces, and everything else (JSON document keys, whose values
/// may differ between records, and masked columns) is text, which holds any value.
pub fn column_types(selection: &Selection, table: Table) -> Vec<ColumnType> {
    let field = |name: &str| match store::column_type(table, name) {
        Some(FieldType::Timestamp) => Some(ColumnType::Timestamp),
        Some(FieldType::Money) => Some(ColumnType::Decimal),
        Some(FieldType::Int) => Some(ColumnType::Int),
        Some(FieldType::Bool) => Some(ColumnType::Bool),
        Some(FieldType::Text) => Some(ColumnType::Text),
        Some(FieldType::Json) | None => None,
    };
    selection
        .columns
        .iter()
        .map(|column| {
            if column.mask.is_some() {
                return ColumnType::Text;
            }
            match &column.source {
                ColumnSource::Field(i) => selection
                    .source_fields
                    .get(*i)
                    .and_then(|name| field(name))
                    .unwrap_or(ColumnType::Text),
                ColumnSource::Computed(expr) => expr_type(expr, &field).unwrap_or(ColumnType::Text),
            }
        })
        .collect()
}

/// The type every non-NULL result of `expr` has, following the evaluator's rules
/// (`filter::eval`); `None` when it can vary (a JSON key, mixed arguments). Only types the
/// Parquet encoder accepts for every possible result are claimed: Int ⊕ Int is Int (an i64
/// overflow, which the evaluator turns into a decimal, would fail the part rather than be
/// written wrong), division and decimals are Decimal, a float operand makes Float.
fn expr_type(expr: &Expr, field: &dyn Fn(&str) -> Option<ColumnType>) -> Option<ColumnType> {
    use crate::filter::ArithOp;
    let numeric = |t: Option<ColumnType>| {
        t.filter(|t| matches!(t, ColumnType::Int | ColumnType::Decimal | ColumnType::Float))
    };
    let arith = |div: bool, a: Option<ColumnType>, b: Option<ColumnType>| {
        let (a, b) = (numeric(a)?, numeric(b)?);
        Some(if a == ColumnType::Float || b == ColumnType::Float {
            ColumnType::Float
        } else if div || a == ColumnType::Decimal || b == ColumnType::Decimal {
            ColumnType::Decimal
        } else {
            ColumnType::Int
        })
    };
    match expr {
        Expr::Literal(v) => match v {
            Value::Null => None,
            Value::Bool(_) => Some(ColumnType::Bool),
            Value::Int(_) => Some(ColumnType::Int),
            Value::Decimal(_) => Some(ColumnType::Decimal),
            Value::Float(_) => Some(ColumnType::Float),
            Value::Text(_) => Some(ColumnType::Text),
            Value::Timestamp(_) => Some(ColumnType::Timestamp),
        },
        Expr::Field(name) => field(name),
        Expr::Neg(e) => arith(false, Some(ColumnType::Int), expr_type(e, field)),
        Expr::Arith(op, a, b) => arith(
            *op == ArithOp::Div,
            expr_type(a, field),
            expr_type(b, field),
        ),
        Expr::Compare(..)
        | Expr::In { .. }
        | Expr::Like { .. }
        | Expr::IsNull { .. }
        | Expr::Not(_)
        | Expr::And(_)
        | Expr::Or(_) => Some(ColumnType::Bool),
        Expr::Call(func, args) => match func {
            Func::Hour | Func::Weekday | Func::Length => Some(ColumnType::Int),
            Func::Date | Func::Lower | Func::Upper => Some(ColumnType::Text),
            Func::Coalesce => {
                let mut types = args.iter().map(|a| expr_type(a, field));
                let first = types.next()??;
                types.all(|t| t == Some(first)).then_some(first)
            }
        },
    }
}

/// Column types of summary rows, which are all in memory: the one type of each column's
/// values (integers with decimals make decimals), text when mixed or all NULL.
fn summary_types(columns: usize, rows: &[Vec<Value>]) -> Vec<ColumnType> {
    (0..columns)
        .map(|i| {
            let mut found: Option<ColumnType> = None;
            for value in rows.iter().filter_map(|r| r.get(i)) {
                let t = match value {
                    Value::Null => continue,
                    Value::Bool(_) => ColumnType::Bool,
                    Value::Int(_) => ColumnType::Int,
                    Value::Decimal(_) => ColumnType::Decimal,
                    Value::Float(_) => ColumnType::Float,
                    Value::Text(_) => ColumnType::Text,
                    Value::Timestamp(_) => ColumnType::Timestamp,
                };
                found = Some(match (found, t) {
                    (None, t) => t,
                    (Some(a), b) if a == b => a,
                    (Some(ColumnType::Int), ColumnType::Decimal)
                    | (Some(ColumnType::Decimal), ColumnType::Int) => ColumnType::Decimal,
                    _ => return ColumnType::Text,
                });
            }
            found.unwrap_or(ColumnType::Text)
        })
        .collect()
}

/// The fields rows of the window may have.
fn available_fields(store: &dyn LeadStore, query: &Query) -> Result<Vec<String>, Error> {
    Ok(store.available_fields(query.table, query.time_field, query.start, query.end)?)
}

/// The field the window and `split_by` read.
fn time_field_name(query: &Query) -> &'static str {
    match query.time_field {
        TimeField::Created => "created_at",
        TimeField::Updated => "updated_at",
    }
}

/// The start of the local day or ISO week containing `t`.
fn period_start(t: DateTime<Utc>, split: SplitBy, tz: Tz) -> DateTime<Utc> {
    let local = t.with_timezone(&tz).date_naive();
    let day = match split {
        SplitBy::Day => local,
        SplitBy::Week => {
            local - chrono::Days::new(u64::from(local.weekday().num_days_from_monday()))
        }
    };
    crate::schedule::local_midnight(day, tz).unwrap_or(t)
}

/// Runs one export: extract, encode, stage, deliver. `progress` is called now and then with
/// rows and bytes so far; `staged` once with the run's totals, after staging and before
/// anything is delivered (the large-export alert).
pub fn run_once(
    env: &Environment,
    spec: &ExportSpec,
    plan: &RunPlan,
    store: &dyn LeadStore,
    progress: &mut dyn FnMut(u64, u64),
    staged: &mut dyn FnMut(u64, u64),
) -> Result<RunReport, Error> {
    let started = Instant::now();
    let run_id = plan.run_id();
    let format = format_options(spec)?;
    let compression = compression(spec)?;
    let encryption = encryption(spec)?;
    let extension = part_extension(&format, &compression, encryption.is_some());
    let hash_key = spec
        .def
        .fields
        .hash_key
        .as_ref()
        .map(|k| k.resolve())
        .transpose()?;
    let masker = Masker::new(hash_key);
    let staging = env.staging_dir.join(&spec.name).join(&run_id);
    let staging_err = Error::staging(&staging);
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(staging_err)?;
    }
    std::fs::create_dir_all(&staging).map_err(staging_err)?;
    let limits = Limits {
        max_rows: spec.def.chunk.max_rows,
        max_bytes: spec.def.chunk.max_bytes.map(|b| b.bytes()),
    };

    let new_chunker = |columns: &[String], types: &[ColumnType]| {
        let chunker = Chunker::new(
            format::typed_encoder(&format, columns, types),
            compression.clone(),
            limits,
            &staging,
            &extension,
        )
        .with_entry_names(entry_namer(spec, plan, &format, &extension));
        match &encryption {
            Some(recipients) => chunker.with_encryption(recipients.clone()),
            None => chunker,
        }
    };
    let mut query = base_query(spec, plan);
    let (columns, parts, rows) = if spec.def.kind == Kind::Summary {
        let (columns, rows) = summarize(spec, &query, store)?;
        let mut chunker = new_chunker(&columns, &summary_types(columns.len(), &rows));
        for row in &rows {
            chunker.write_row(row, None).map_err(staging_err)?;
        }
        let parts = chunker.finish().map_err(staging_err)?;
        (columns, parts, rows.len() as u64)
    } else {
        let available = available_fields(store, &query)?;
        let selection = Selection::new(&available, &spec.def.fields, &spec.computed)?;
        let columns = selection.header();
        let split = spec.def.chunk.split_by;
        query.fields = selection.source_fields.clone();
        let time_index = split.map(|_| {
            let name = time_field_name(&query);
            query
                .fields
                .iter()
                .position(|f| f == name)
                .unwrap_or_else(|| {
                    query.fields.push(name.to_owned());
                    query.fields.len() - 1
                })
        });
        let chunker = new_chunker(&columns, &column_types(&selection, query.table));
        let mut out = Vec::with_capacity(columns.len());
        let (selection, masker, tz) = (&selection, &masker, spec.timezone);
        let encode_row = move |chunker: &mut Chunker, source: &mut [Value]| {
            // The period first: `project` moves values out of the row.
            let period = match (split, time_index.and_then(|i| source.get(i))) {
                (Some(s), Some(Value::Timestamp(t))) => Some(period_start(*t, s, tz)),
                _ => None,
            };
            selection.project(source, masker, &mut out);
            chunker.write_row(&out, period)
        };
        let (chunker, count) =
            stream_encoded(store, &query, chunker, encode_row, progress, &staging)?;
        let parts = chunker.finish().map_err(staging_err)?;
        (columns, parts, count)
    };
    let bytes: u64 = parts.iter().map(|p| p.bytes).sum();
    progress(rows, bytes);
    staged(rows, bytes);

    let names = part_names(spec, plan, &parts, &extension)?;
    let manifest = manifest(spec, plan, &columns, &parts, &names);
    let deliveries = deliver_all(
        env, spec, plan, &parts, &extension, &names, &manifest, &staging,
    )?;
    // Staged files are removed only after every destination has them; the export's staging
    // directory goes too once no other run of it is staged.
    let _ = std::fs::remove_dir_all(&staging);
    if let Some(parent) = staging.parent() {
        let _ = std::fs::remove_dir(parent);
    }
    Ok(RunReport {
        export: spec.name.clone(),
        run_id,
        rows,
        bytes,
        parts,
        deliveries,
        elapsed_ms: started.elapsed().as_millis() as u64,
        manifest,
    })
}

/// Rows handed from the reading thread to the encoding thread at a time: enough that the
/// hand-over costs nothing per row, few enough that the batches in flight stay a few MiB.
const BATCH_ROWS: usize = 1024;

/// Full batches queued for the encoding thread before the reader waits for it.
const BATCHES_IN_FLIGHT: usize = 4;

/// Streams the rows of `query` through `encode_row` into `chunker`, with the two halves of the
/// work on two threads: this one reads the store (SQLite or PostgreSQL, and scanning each JSON
/// document), a second one projects, masks, encodes and feeds the compressor. Each half is
/// about half of a run's CPU time, so on a machine with a spare core they overlap instead of
/// adding up; a bounded queue keeps memory flat when one side is slower. Returns the chunker
/// (to finish) and the number of rows written.
fn stream_encoded(
    store: &dyn LeadStore,
    query: &Query,
    mut chunker: Chunker,
    mut encode_row: impl FnMut(&mut Chunker, &mut [Value]) -> std::io::Result<()> + Send,
    progress: &mut dyn FnMut(u64, u64),
    staging: &Path,
) -> Result<(Chunker, u64), Error> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let bytes_so_far = AtomicU64::new(0);
    let staging_err = Error::staging(staging);
    std::thread::scope(|scope| {
        let (full, batches) = std::sync::mpsc::sync_channel::<Vec<Vec<Value>>>(BATCHES_IN_FLIGHT);
        let bytes_so_far = &bytes_so_far;
        let encoder = std::thread::Builder::new()
            .name("encode".into())
            .spawn_scoped(scope, move || -> std::io::Result<(Chunker, u64)> {
                let mut rows = 0u64;
                for mut batch in batches {
                    for row in &mut batch {
                        encode_row(&mut chunker, row)?;
                    }
                    rows += batch.len() as u64;
                    bytes_so_far.store(chunker.bytes_so_far(), Ordering::Relaxed);
                }
                Ok((chunker, rows))
            })
            .map_err(staging_err)?;
        let mut batch = Vec::with_capacity(BATCH_ROWS);
        let mut read = 0u64;
        let streamed = store.stream(query, &mut |source| {
            batch.push(source.iter_mut().map(std::mem::take).collect());
            if batch.len() == BATCH_ROWS {
                let ready = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ROWS));
                if full.send(ready).is_err() {
                    // The encoding thread stopped on an error; it is reported below.
                    return Ok(false);
                }
            }
            read += 1;
            if read.is_multiple_of(65_536) {
                progress(read, bytes_so_far.load(Ordering::Relaxed));
            }
            Ok(true)
        });
        if streamed.is_ok() && !batch.is_empty() {
            let _ = full.send(batch);
        }
        drop(full);
        let encoded = encoder
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        streamed?;
        encoded.map_err(staging_err)
    })
}

/// Names archive entries after the delivered file, minus the archive's own extension and
/// `.age` (`leads_001.csv` inside `leads_001.csv.zip.age`).
fn entry_namer(
    spec: &ExportSpec,
    plan: &RunPlan,
    format: &FormatOptions,
    extension: &str,
) -> crate::chunk::EntryNamer {
    let template = spec.destinations.iter().find_map(|d| d.path.clone());
    let (name, nominal, window, tz) = (spec.name.clone(), plan.nominal, plan.window, spec.timezone);
    let format_ext = format.extension().to_owned();
    let archive_ext = extension
        .strip_prefix(format_ext.as_str())
        .unwrap_or_default()
        .to_owned();
    let extension = extension.to_owned();
    Box::new(move |number, period| {
        let fallback = Chunker::part_file_name(number, &format_ext);
        let Some(template) = &template else {
            return fallback;
        };
        let vars = RunVars::new(
            &name,
            nominal,
            period.or(window.start),
            window.end,
            tz,
            number,
            &extension,
        );
        match template.render(&vars) {
            Ok(rendered) => {
                let file = rendered.rsplit('/').next().unwrap_or(&rendered);
                file.strip_suffix(archive_ext.as_str())
                    .filter(|f| !f.is_empty())
                    .map(str::to_owned)
                    .unwrap_or(fallback)
            }
            Err(_) => fallback,
        }
    })
}

/// Template values of one part (a split part takes its own day as `date`).
fn part_vars(spec: &ExportSpec, plan: &RunPlan, part: &StagedPart, extension: &str) -> RunVars {
    let start = part.period_start.or(plan.window.start);
    RunVars::new(
        &spec.name,
        plan.nominal,
        start,
        plan.window.end,
        spec.timezone,
        part.number,
        extension,
    )
}

/// File names of the parts as the first path-bearing destination names them.
fn part_names(
    spec: &ExportSpec,
    plan: &RunPlan,
    parts: &[StagedPart],
    extension: &str,
) -> Result<Vec<String>, Error> {
    let template = spec.destinations.iter().find_map(|d| d.path.clone());
    parts
        .iter()
        .map(|p| match &template {
            Some(t) => {
                let rendered = t.render(&part_vars(spec, plan, p, extension))?;
                Ok(rendered.rsplit('/').next().unwrap_or(&rendered).to_owned())
            }
            None => Ok(Chunker::part_file_name(p.number, extension)),
        })
        .collect()
}

fn manifest(
    spec: &ExportSpec,
    plan: &RunPlan,
    columns: &[String],
    parts: &[StagedPart],
    names: &[String],
) -> Manifest {
    Manifest {
        export: spec.name.clone(),
        run_id: plan.run_id(),
        nominal_time: plan.nominal.to_rfc3339(),
        window_start: plan.window.start.map(|s| s.to_rfc3339()),
        window_end: plan.window.end.to_rfc3339(),
        columns: columns.to_vec(),
        parts: parts
            .iter()
            .zip(names)
            .map(|(p, name)| ManifestPart {
                name: name.clone(),
                rows: p.rows,
                bytes: p.bytes,
                sha256: p.sha256.clone(),
            })
            .collect(),
        total_rows: parts.iter().map(|p| p.rows).sum(),
        total_bytes: parts.iter().map(|p| p.bytes).sum(),
        exportd_version: env!("CARGO_PKG_VERSION").to_owned(),
    }
}

#[allow(clippy::too_many_arguments)]
fn deliver_all(
    env: &Environment,
    spec: &ExportSpec,
    plan: &RunPlan,
    parts: &[StagedPart],
    extension: &str,
    names: &[String],
    manifest: &Manifest,
    staging: &Path,
) -> Result<Vec<Delivered>, Error> {
    let mut delivered = Vec::new();
    let manifest_path = staging.join(MANIFEST_NAME);
    let manifest_text = serde_json::to_vec_pretty(manifest).unwrap_or_default();
    std::fs::write(&manifest_path, &manifest_text).map_err(Error::staging(staging))?;
    let manifest_sha =
        crate::chunk::sha256_file(&manifest_path).map_err(Error::staging(staging))?;
    let marker_path = staging.join(SUCCESS_MARKER);
    if spec.def.manifest.success_marker {
        std::fs::write(&marker_path, b"").map_err(Error::staging(staging))?;
    }
    let context = env.deliver_context();
    let policy = deliver::RetryPolicy::default();
    for (index, dest) in spec.destinations.iter().enumerate() {
        let kind = dest.def.kind_name();
        let first_delivery = delivered.len();
        let result = deliver::build(&dest.def, &context).and_then(|destination| {
            let objects = Objects {
                spec,
                plan,
                parts,
                extension,
                names,
                manifest_path: &manifest_path,
                manifest_text: &manifest_text,
                manifest_sha: &manifest_sha,
                marker_path: &marker_path,
            };
            if destination.takes_whole_runs() {
                objects.send_run(destination.as_ref(), dest, manifest, &mut delivered)
            } else {
                objects.put_each(destination.as_ref(), dest, &policy, &mut delivered)
            }
        });
        // The ledger tells destinations of the same kind apart by their position.
        let destination_id = crate::state::destination_id(kind, index);
        for d in &mut delivered[first_delivery..] {
            d.destination = destination_id.clone();
        }
        if let Err(source) = result {
            return Err(Error::Deliver {
                destination: kind,
                error: source,
                delivered,
            });
        }
    }
    Ok(delivered)
}

/// One run's staged files, as every destination of the run receives them.
struct Objects<'a> {
    spec: &'a ExportSpec,
    plan: &'a RunPlan,
    parts: &'a [StagedPart],
    extension: &'a str,
    names: &'a [String],
    manifest_path: &'a Path,
    manifest_text: &'a [u8],
    manifest_sha: &'a str,
    marker_path: &'a Path,
}

impl Objects<'_> {
    fn key(
        &self,
        dest: &crate::config::validate::DestinationSpec,
        part: &StagedPart,
    ) -> Result<String, deliver::Error> {
        let Some(template) = &dest.path else {
            return Err(deliver::Error::Config(format!(
                "`to = \"{}\"` needs a `path`",
                dest.def.kind_name()
            )));
        };
        Ok(template.render_path(
            &part_vars(self.spec, self.plan, part, self.extension),
            // A webhook path is appended to its connection's URL: `/sync/…` is relative to it.
            matches!(
                dest.def,
                DeliverDef::Local(_) | DeliverDef::Sftp(_) | DeliverDef::Webhook(_)
            ),
        )?)
    }

    /// Object destinations: every part, then the manifest (and marker) beside the first part;
    /// parts an earlier attempt of the same run wrote that this one did not are removed.
    fn put_each(
        &self,
        destination: &dyn deliver::Destination,
        dest: &crate::config::validate::DestinationSpec,
        policy: &deliver::RetryPolicy,
        delivered: &mut Vec<Delivered>,
    ) -> Result<(), deliver::Error> {
        let put = |upload: &Upload<'_>| {
            deliver::retry(
                policy,
                &format!("{} {}", destination.kind(), upload.key),
                |_| destination.put(upload).map_err(|e| (e, None)),
            )
        };
        let mut first_key = None;
        for part in self.parts {
            let key = self.key(dest, part)?;
            first_key.get_or_insert_with(|| key.clone());
            delivered.push(put(&Upload {
                file: &part.path,
                key: &key,
                bytes: part.bytes,
                sha256: &part.sha256,
            })?);
        }
        let dir = first_key
            .as_deref()
            .and_then(|k| k.rsplit_once('/').map(|(d, _)| d.to_owned()));
        let beside = |name: &str| match &dir {
            Some(d) => format!("{d}/{name}"),
            None => name.to_owned(),
        };
        // A re-run of the same window may have fewer parts than the run it replaces: the
        // previous manifest at the same place lists what that run wrote, and parts it listed
        // that this run did not write again are removed once the new manifest is in place.
        let previous_parts = destination
            .read_small(&beside(MANIFEST_NAME))
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .filter(|m| {
                m["export"] == self.spec.name.as_str() && m["run_id"] == self.plan.run_id().as_str()
            })
            .and_then(|m| {
                m["parts"].as_array().map(|parts| {
                    parts
                        .iter()
                        .filter_map(|p| p["name"].as_str().map(str::to_owned))
                        .collect::<Vec<_>>()
                })
            })
            .unwrap_or_default();
        if self.spec.def.manifest.enabled {
            let key = beside(MANIFEST_NAME);
            delivered.push(put(&Upload {
                file: self.manifest_path,
                key: &key,
                bytes: self.manifest_text.len() as u64,
                sha256: self.manifest_sha,
            })?);
        }
        for stale in previous_parts
            .iter()
            .filter(|name| !self.names.contains(name))
        {
            // Only plain file names from our own manifest: never a path that could leave the
            // directory.
            if !stale.contains('/') && !stale.starts_with('.') {
                let key = beside(stale);
                deliver::retry(
                    policy,
                    &format!("{} remove {key}", destination.kind()),
                    |_| destination.remove(&key).map_err(|e| (e, None)),
                )?;
            }
        }
        if self.spec.def.manifest.success_marker {
            let key = beside(SUCCESS_MARKER);
            delivered.push(put(&Upload {
                file: self.marker_path,
                key: &key,
                bytes: 0,
                sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            })?);
        }
        Ok(())
    }

    /// Message destinations (email, webhook): the whole run at once; they retry inside.
    fn send_run(
        &self,
        destination: &dyn deliver::Destination,
        dest: &crate::config::validate::DestinationSpec,
        manifest: &Manifest,
        delivered: &mut Vec<Delivered>,
    ) -> Result<(), deliver::Error> {
        let keys = self
            .parts
            .iter()
            .zip(self.names)
            .map(|(part, name)| match &dest.path {
                Some(_) => self.key(dest, part),
                None => Ok(name.clone()),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let manifest = serde_json::to_value(manifest).unwrap_or_default();
        let vars = RunVars::new(
            &self.spec.name,
            self.plan.nominal,
            self.plan.window.start,
            self.plan.window.end,
            self.spec.timezone,
            1,
            self.extension,
        );
        let vars = serde_json::to_value(vars).unwrap_or_default();
        let f = &self.spec.def.format;
        let format = serde_json::to_value(f.kind).unwrap_or_default();
        let compression = serde_json::to_value(f.file_compression()).unwrap_or_default();
        let run_id = self.plan.run_id();
        let run = deliver::RunUpload {
            export: &self.spec.name,
            run_id: &run_id,
            parts: self
                .parts
                .iter()
                .zip(&keys)
                .map(|(part, key)| Upload {
                    file: &part.path,
                    key,
                    bytes: part.bytes,
                    sha256: &part.sha256,
                })
                .collect(),
            rows: self.parts.iter().map(|p| p.rows).collect(),
            manifest: &manifest,
            vars: &vars,
            format: format.as_str().unwrap_or_default(),
            compression: compression.as_str().unwrap_or_default(),
            encrypted: self.spec.def.encrypt.is_some(),
        };
        delivered.extend(destination.send_run(&run)?);
        Ok(())
    }
}

/// A summary: SQL GROUP BY over 15-minute buckets (so zones with :30 and :45 offsets work),
/// merged in Rust into the export's local days, hours, weeks or months.
fn summarize(
    spec: &ExportSpec,
    query: &Query,
    store: &dyn LeadStore,
) -> Result<(Vec<String>, Vec<Vec<Value>>), Error> {
    let Some(def) = &spec.def.summary else {
        return Err(Error::Unsupported(
            "`kind = \"summary\"` needs [summary]".into(),
        ));
    };
    const TIME_KEYS: [&str; 4] = ["date", "hour", "week", "month"];
    let time_keys: Vec<&str> = def
        .group_by
        .iter()
        .map(String::as_str)
        .filter(|k| TIME_KEYS.contains(k))
        .collect();
    let field_keys: Vec<String> = def
        .group_by
        .iter()
        .filter(|k| !TIME_KEYS.contains(&k.as_str()))
        .map(|k| {
            if k == "buyer" {
                "recipient".to_owned()
            } else {
                k.clone()
            }
        })
        .collect();
    // Each metric maps to one or two SQL aggregates.
    let mut aggregates = Vec::new();
    let mut slots = Vec::new();
    for text in def.metrics.values() {
        let metric = Metric::parse(text).map_err(Error::Unsupported)?;
        let first = aggregates.len();
        match &metric {
            Metric::Count => aggregates.push(Aggregate::Count(None)),
            Metric::CountWhere(e) => aggregates.push(Aggregate::Count(Some(e.clone()))),
            Metric::Sum(f) => aggregates.push(Aggregate::Sum(f.clone())),
            Metric::Min(f) => aggregates.push(Aggregate::Min(f.clone())),
            Metric::Max(f) => aggregates.push(Aggregate::Max(f.clone())),
            Metric::Avg(f) => {
                aggregates.push(Aggregate::Sum(f.clone()));
                aggregates.push(Aggregate::CountOf(f.clone()));
            }
        }
        slots.push((metric, first));
    }
    let bucketed = !time_keys.is_empty();
    let summary = SummaryQuery {
        query: query.clone(),
        keys: field_keys.clone(),
        aggregates: aggregates.clone(),
        bucket_seconds: bucketed.then_some(900),
    };
    let tz = spec.timezone;
    let mut groups: BTreeMap<Vec<String>, (Vec<Value>, Vec<Value>)> = BTreeMap::new();
    store.summarize(&summary, &mut |row| {
        let (time, rest) = if bucketed {
            (row.first(), &row[1..])
        } else {
            (None, row)
        };
        let mut key_text = Vec::new();
        let mut key_values = Vec::new();
        if let Some(Value::Timestamp(t)) = time {
            let local = t.with_timezone(&tz);
            for k in &time_keys {
                let v = match *k {
                    "date" => local.format("%Y-%m-%d").to_string(),
                    "hour" => local.format("%Y-%m-%dT%H:00").to_string(),
                    "week" => {
                        let w = local.iso_week();
                        format!("{}-W{:02}", w.year(), w.week())
                    }
                    _ => local.format("%Y-%m").to_string(),
                };
                key_text.push(v.clone());
                key_values.push(Value::Text(v));
            }
        }
        for v in &rest[..field_keys.len()] {
            key_text.push(v.to_string());
            key_values.push(v.clone());
        }
        let values = &rest[field_keys.len()..];
        let entry = groups
            .entry(key_text)
            .or_insert_with(|| (key_values, vec![Value::Null; values.len()]));
        for (i, (acc, v)) in entry.1.iter_mut().zip(values).enumerate() {
            *acc = merge(&aggregates[i], acc, v);
        }
        Ok(())
    })?;
    let mut columns: Vec<String> = time_keys.iter().map(|k| (*k).to_owned()).collect();
    columns.extend(
        def.group_by
            .iter()
            .filter(|k| !TIME_KEYS.contains(&k.as_str()))
            .cloned(),
    );
    columns.extend(def.metrics.keys().cloned());
    let rows = groups
        .into_values()
        .map(|(mut keys, accs)| {
            for (metric, first) in &slots {
                keys.push(match metric {
                    Metric::Avg(_) => average(&accs[*first], &accs[first + 1]),
                    Metric::Count | Metric::CountWhere(_) => match &accs[*first] {
                        Value::Null => Value::Int(0),
                        v => v.clone(),
                    },
                    _ => accs[*first].clone(),
                });
            }
            keys
        })
        .collect();
    Ok((columns, rows))
}

fn as_decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::Int(i) => Some(Decimal::from(*i)),
        Value::Decimal(d) => Some(*d),
        Value::Float(f) => Decimal::try_from(*f).ok(),
        _ => None,
    }
}

/// Combines one bucket's aggregate into the group's.
fn merge(aggregate: &Aggregate, acc: &Value, v: &Value) -> Value {
    if acc.is_null() {
        return v.clone();
    }
    if v.is_null() {
        return acc.clone();
    }
    match aggregate {
        Aggregate::Count(_) | Aggregate::CountOf(_) | Aggregate::Sum(_) => match (acc, v) {
            (Value::Int(a), Value::Int(b)) => Value::Int(a + b),
            _ => match (as_decimal(acc), as_decimal(v)) {
                (Some(a), Some(b)) => Value::Decimal(a + b),
                _ => acc.clone(),
            },
        },
        Aggregate::Min(_) | Aggregate::Max(_) => {
            let less = match (as_decimal(acc), as_decimal(v)) {
                (Some(a), Some(b)) => b < a,
                _ => v.to_string() < acc.to_string(),
            };
            let take_v = matches!(aggregate, Aggregate::Min(_)) == less;
            if take_v { v.clone() } else { acc.clone() }
        }
    }
}

fn average(sum: &Value, count: &Value) -> Value {
    match (as_decimal(sum), as_decimal(count)) {
        (Some(s), Some(c)) if !c.is_zero() => Value::Decimal((s / c).round_dp(4)),
        _ => Value::Null,
    }
}

/// What a dry run reports: the query, the rows and an estimate of the output.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Estimate {
    /// The statement.
    pub sql: String,
    /// Its parameters, in order.
    pub params: Vec<serde_json::Value>,
    /// The part of the filter evaluated in Rust.
    pub residual_filter: Option<String>,
    /// Rows the run would export.
    pub rows: u64,
    /// Rows encoded to measure the size.
    pub sample_rows: u64,
    /// Bytes per row after compression, measured on the sample.
    pub bytes_per_row: f64,
    /// Estimated bytes of the run.
    pub bytes: u64,
    /// Estimated number of parts.
    pub parts: u64,
}

/// Rows encoded and compressed to estimate a run's size.
const SAMPLE_ROWS: u64 = 5_000;

/// Counts the rows and measures a sample, writing nothing outside a scratch directory.
pub fn estimate(
    env: &Environment,
    spec: &ExportSpec,
    plan: &RunPlan,
    store: &dyn LeadStore,
) -> Result<Estimate, Error> {
    let mut query = base_query(spec, plan);
    let format = format_options(spec)?;
    let compression = compression(spec)?;
    // Sizes are estimated unencrypted: age adds 16 bytes per 64 KiB and a header of about
    // 200 bytes per recipient.
    let extension = part_extension(&format, &compression, false);
    let scratch = env
        .staging_dir
        .join(format!(".estimate-{}", std::process::id()));
    let staging_err = Error::staging(&scratch);
    std::fs::create_dir_all(&scratch).map_err(staging_err)?;
    let (rows, sample_rows, sample_bytes) = if spec.def.kind == Kind::Summary {
        let (_, rows) = summarize(spec, &query, store)?;
        (rows.len() as u64, 0, 0)
    } else {
        let available = available_fields(store, &query)?;
        let selection = Selection::new(&available, &spec.def.fields, &spec.computed)?;
        query.fields = selection.source_fields.clone();
        let rows = store.count(&query)?;
        let mut chunker = Chunker::new(
            format::typed_encoder(
                &format,
                &selection.header(),
                &column_types(&selection, query.table),
            ),
            compression,
            Limits::default(),
            &scratch,
            &extension,
        );
        let masker = Masker::new(None);
        let mut out = Vec::new();
        let mut sampled = 0;
        let mut failed = None;
        store.stream(&query, &mut |source| {
            selection.project(source, &masker, &mut out);
            if let Err(e) = chunker.write_row(&out, None) {
                failed = Some(e);
                return Ok(false);
            }
            sampled += 1;
            Ok(sampled < SAMPLE_ROWS)
        })?;
        if let Some(e) = failed {
            return Err(staging_err(e));
        }
        let parts = chunker.finish().map_err(staging_err)?;
        (rows, sampled, parts.iter().map(|p| p.bytes).sum::<u64>())
    };
    let _ = std::fs::remove_dir_all(&scratch);
    let bytes_per_row = if sample_rows > 0 {
        sample_bytes as f64 / sample_rows as f64
    } else {
        0.0
    };
    let bytes = (bytes_per_row * rows as f64).round() as u64;
    let by_rows = spec.def.chunk.max_rows.map(|m| rows.div_ceil(m.max(1)));
    let by_bytes = spec
        .def
        .chunk
        .max_bytes
        .map(|m| bytes.div_ceil(m.bytes().max(1)));
    let parts = by_rows
        .into_iter()
        .chain(by_bytes)
        .max()
        .unwrap_or(1)
        .max(1);
    let explained = store.explain(&query);
    Ok(Estimate {
        sql: explained.sql,
        params: explained.params.iter().map(Value::to_json).collect(),
        residual_filter: explained.residual,
        rows,
        sample_rows,
        bytes_per_row,
        bytes,
        parts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::export::FieldsDef;
    use crate::filter::parse_expression;
    use ColumnType::*;

    fn types_of(
        table: Table,
        toml_fields: &str,
        computed: &[(&str, &str)],
    ) -> Vec<(String, ColumnType)> {
        let fields: FieldsDef = toml::from_str(toml_fields).unwrap();
        let computed: Vec<(String, Expr)> = computed
            .iter()
            .map(|(n, e)| (n.to_string(), parse_expression(e).unwrap()))
            .collect();
        let available: Vec<String> = [
            "id",
            "created_at",
            "updated_at",
            "source",
            "revenue",
            "cost",
            "duration_ms",
            "price",
            "timestamp",
            "email",
            "email.valid",
            "lead_score",
            "score_f",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let selection = Selection::new(&available, &fields, &computed).unwrap();
        selection
            .header()
            .into_iter()
            .zip(column_types(&selection, table))
            .collect()
    }

    /// A store of `leads` demo leads and a query for their ids in order.
    fn demo_store(dir: &Path, leads: u64) -> (store::SqliteStore, Query) {
        let mut store = store::SqliteStore::open(&dir.join("leads.db")).expect("store");
        let end = DateTime::parse_from_rfc3339("2024-06-01T00:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        store::demo::generate(
            &mut store,
            &store::demo::DemoOptions::new(leads, end),
            &mut |_| {},
        )
        .expect("demo");
        let query = Query {
            table: Table::Leads,
            time_field: TimeField::Created,
            start: None,
            end,
            filter: None,
            fields: vec!["id".into(), "email".into()],
        };
        (store, query)
    }

    fn ndjson_chunker(dir: &Path) -> Chunker {
        let columns = ["id".to_owned(), "email".to_owned()];
        let encoder = format::encoder(&FormatOptions::Ndjson, &columns);
        Chunker::new(encoder, Compression::None, Limits::default(), dir, "ndjson")
    }

    #[test]
    fn rows_reach_the_encoding_thread_whole_and_in_store_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (store, query) = demo_store(dir.path(), 3_000);
        let mut expected = Vec::new();
        store
            .stream(&query, &mut |row| {
                expected.push(row.to_vec());
                Ok(true)
            })
            .expect("direct read");
        let mut seen = Vec::new();
        let mut progress_calls = 0;
        let (_, rows) = stream_encoded(
            &store,
            &query,
            ndjson_chunker(dir.path()),
            |_, row: &mut [Value]| {
                seen.push(row.to_vec());
                Ok(())
            },
            &mut |_, _| progress_calls += 1,
            dir.path(),
        )
        .expect("pipelined read");
        assert_eq!(rows, 3_000);
        assert_eq!(seen.len(), expected.len());
        assert!(seen == expected, "rows differ from a direct read");
        assert!(
            seen.iter()
                .all(|r| matches!(&r[1], Value::Text(e) if e.contains('@')))
        );
        assert_eq!(progress_calls, 0, "progress is reported every 65,536 rows");
    }

    #[test]
    fn an_encoding_error_stops_the_reader_and_is_reported_as_staging() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (store, query) = demo_store(dir.path(), 20_000);
        let mut encoded = 0u64;
        let result = stream_encoded(
            &store,
            &query,
            ndjson_chunker(dir.path()),
            |_, _: &mut [Value]| {
                encoded += 1;
                if encoded == 1_500 {
                    return Err(std::io::Error::other("disk full"));
                }
                Ok(())
            },
            &mut |_, _| {},
            dir.path(),
        );
        match result {
            Err(Error::Staging { dir: d, source }) => {
                assert_eq!(d, dir.path());
                assert_eq!(source.to_string(), "disk full");
            }
            other => panic!("expected a staging error, got {:?}", other.map(|(_, n)| n)),
        }
        assert_eq!(encoded, 1_500, "no row is encoded after the error");
    }

    #[test]
    fn stored_columns_keep_their_type_and_json_keys_are_text() {
        let got = types_of(
            Table::Leads,
            r#"
            include = ["lead_id", "timestamp", "updated_at", "source", "paid", "email", "email.valid", "lead_score"]
            mask = { email = "email" }
            rename = { paid = "revenue" }
            "#,
            &[],
        );
        let want = [
            ("lead_id", Text),
            ("timestamp", Timestamp),
            ("updated_at", Timestamp),
            ("source", Text),
            ("paid", Decimal),
            ("email", Text),
            ("email.valid", Text),
            ("lead_score", Text),
        ];
        assert_eq!(got, want.map(|(n, t)| (n.to_string(), t)));
        let events = types_of(
            Table::Events,
            r#"include = ["duration_ms", "price", "timestamp"]"#,
            &[],
        );
        assert_eq!(
            events.iter().map(|(_, t)| *t).collect::<Vec<_>>(),
            [Int, Decimal, Timestamp]
        );
    }

    #[test]
    fn computed_columns_take_the_type_their_expression_always_has() {
        let got = types_of(
            Table::Leads,
            r#"include = ["id"]"#,
            &[
                ("margin", "revenue - cost"),
                ("double", "revenue * 2"),
                ("ratio", "revenue / cost"),
                ("profitable", "revenue > cost"),
                ("hour", "hour(created_at)"),
                ("day", "date(created_at)"),
                ("negative", "-revenue"),
                ("count", "1 + 2"),
                ("half", "1 / 2"),
                ("json_math", "lead_score * 2"),
                ("json_value", "coalesce(lead_score, 0)"),
                ("money", "coalesce(revenue, cost)"),
                ("nothing", "null"),
            ],
        );
        let got: std::collections::BTreeMap<String, ColumnType> = got.into_iter().collect();
        for (name, want) in [
            ("margin", Decimal),
            ("double", Decimal),
            ("ratio", Decimal),
            ("profitable", Bool),
            ("hour", Int),
            ("day", Text),
            ("negative", Decimal),
            ("count", Int),
            ("half", Decimal),
            ("json_math", Text),
            ("json_value", Text),
            ("money", Decimal),
            ("nothing", Text),
        ] {
            assert_eq!(got[name], want, "{name}");
        }
    }

    #[test]
    fn summary_columns_take_the_one_type_of_their_values() {
        let rows = vec![
            vec![
                Value::Int(1),
                Value::Int(2),
                Value::Text("a".into()),
                Value::Null,
                Value::Bool(true),
            ],
            vec![
                Value::Int(3),
                Value::Decimal(rust_decimal::Decimal::new(15, 1)),
                Value::Int(4),
                Value::Null,
                Value::Null,
            ],
        ];
        assert_eq!(summary_types(5, &rows), [Int, Decimal, Text, Text, Bool]);
    }
}
