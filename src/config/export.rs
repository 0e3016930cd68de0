//! The raw form of one export definition (`exports.d/NAME.toml`), exactly as an operator writes
//! it. These types are the single source of `schemas/export.schema.json`: every `///` comment
//! becomes a description there, so write them for operators.
//!
//! Strings that need semantics (schedule, time zone, window, filter, templates) stay strings here
//! and are checked by `config::validate`, which reports every problem in a file at once instead of
//! stopping at the first.

use super::secret::SecretRef;
use super::units::{ByteSize, Retention};
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;

/// One export: what to extract, how to shape and encode it, when, and where to deliver it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "exportd export definition")]
pub struct ExportDef {
    /// What the export is for, shown in `plan`, `status` and the status page.
    #[serde(default)]
    pub description: Option<String>,
    /// What to extract: `leads` (one row per lead), `events` (one row per lead event) or
    /// `summary` (aggregates, see `[summary]`).
    #[serde(default)]
    pub kind: Kind,
    /// When the export runs: `daily at 02:00`, `weekly on monday at 06:00`,
    /// `monthly on day 1 at 00:00`, `hourly at :15`, `every 15m`, `@hourly`, or a cron expression
    /// `0 2 * * *` (minute hour day-of-month month day-of-week). Without a schedule the export
    /// only runs on demand (`exportd export NAME`, the API).
    #[serde(default)]
    #[schemars(example = &"daily at 02:00", example = &"0 2 * * *")]
    pub schedule: Option<String>,
    /// IANA time zone the schedule and the window are computed in, such as `America/Chicago`.
    /// Default: `[defaults] timezone` of exportd.toml, itself `UTC`.
    #[serde(default)]
    #[schemars(example = &"America/Chicago")]
    pub timezone: Option<String>,
    /// Which records a run exports, derived from the run's NOMINAL time (when the schedule fired),
    /// so a late run still exports the period it was meant for: `previous_hour`, `previous_day`,
    /// `previous_week` (ISO, Monday first), `previous_month`, `last_7_days`, `since_last_run`
    /// or `all`.
    #[schemars(example = &"previous_day")]
    pub window: String,
    /// What to do with runs missed while the daemon was down: `all` (run each, oldest first, up to
    /// a bound), `latest` (only the most recent) or `none`. Default: `latest`.
    #[serde(default)]
    pub catch_up: CatchUp,
    /// Which timestamp the window selects on: `created_at` (default) or `updated_at` (leads
    /// modified in the window, for syncs).
    #[serde(default)]
    pub time_field: TimeFieldDef,
    /// `true` keeps the definition loaded and valid but schedules nothing.
    #[serde(default)]
    pub suspend: bool,
    /// Which records to export, such as
    /// `outcome = "success" AND revenue > 0 AND state IN ("CA", "TX")`. Pushed down to the store
    /// as bound SQL parameters where possible.
    #[serde(default)]
    #[schemars(example = &"outcome = \"success\" AND revenue > 0")]
    pub filter: Option<String>,
    /// Which columns to export, computed columns and PII masks.
    #[serde(default)]
    pub fields: FieldsDef,
    /// Aggregates for `kind = "summary"`.
    #[serde(default)]
    pub summary: Option<SummaryDef>,
    /// File format and compression.
    #[serde(default)]
    pub format: FormatDef,
    /// When to start a new part file.
    #[serde(default)]
    pub chunk: ChunkDef,
    /// Encryption of every part (and nothing else) before it is delivered, so files at rest
    /// on a destination are readable only by the holders of the matching identities.
    #[serde(default)]
    pub encrypt: Option<EncryptDef>,
    /// The `_manifest.json` written after the parts.
    #[serde(default)]
    pub manifest: ManifestDef,
    /// Where the files go. Each destination receives every part.
    #[serde(default)]
    pub deliver: Vec<DeliverDef>,
    /// What removing this definition does to what it delivered: `keep` (default: files stay and
    /// still expire by their retention) or `delete`.
    #[serde(default)]
    pub on_remove: OnRemove,
    /// Definition tests run by `exportd test`: fixture rows go through this export's filter,
    /// columns, computed columns and masks in memory (no store, no destination), and the output
    /// is checked, so a config repository's CI can prove its PII rules.
    #[serde(default)]
    pub tests: Vec<TestDef>,
    /// Alert (through `[alerts]` of exportd.toml) when a run exports more rows than this,
    /// checked before delivery. Overrides `[alerts] large_export_rows`.
    #[serde(default)]
    pub alert_rows: Option<u64>,
    /// Alert when a run's parts add up to more bytes than this, checked before delivery.
    /// Overrides `[alerts] large_export_bytes`.
    #[serde(default)]
    pub alert_bytes: Option<ByteSize>,
}

/// One `[[tests]]` block: fixture rows in, assertions on the rows that come out.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestDef {
    /// What the test proves, printed by `exportd test`.
    pub name: String,
    /// Fixture rows given inline, each a table of store fields:
    /// `rows = [{ email = "ann@example.com", state = "CA" }]`. Strings of fields named
    /// `*_at` or `timestamp` are read as timestamps.
    #[serde(default)]
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
    /// An NDJSON file of fixture rows (one JSON object per line), relative to the definition
    /// file; used in addition to `rows`.
    #[serde(default)]
    pub fixture: Option<String>,
    /// The exact output rows, in order, each with every output column:
    /// `expect = [{ email = "a***@example.com", state = "CA" }]`.
    #[serde(default)]
    pub expect: Option<Vec<serde_json::Map<String, serde_json::Value>>>,
    /// The exact output header, in order.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// How many rows pass the filter.
    #[serde(default)]
    pub row_count: Option<u64>,
    /// Checks on output columns: literal text that must not appear, or a value that must not
    /// look unmasked: `never_contains = [{ column = "email", unmasked = "email" }]`.
    #[serde(default)]
    pub never_contains: Vec<NeverContains>,
    /// Fixture fields whose values must not appear anywhere in the output, in any column and
    /// in any letter case (so a rename or a computed `lower(email)` cannot leak them either):
    /// `never_leaks = ["email", "ssn"]`.
    #[serde(default)]
    pub never_leaks: Vec<String>,
}

/// A check on one output column (or every column): give `pattern` or `unmasked`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NeverContains {
    /// Output column name (after renames), or `*` for every column.
    pub column: String,
    /// Literal text (not a regular expression), compared case-sensitively.
    #[serde(default)]
    pub pattern: Option<String>,
    /// A kind of personal value that must not appear in clear: `email` (an address whose
    /// local part has no `*`), `phone` (seven or more digits in a row, separators ignored) or
    /// `ssn` (`123-45-6789` or nine digits).
    #[serde(default)]
    pub unmasked: Option<UnmaskedKind>,
}

/// Shapes of personal values that `never_contains … unmasked` recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnmaskedKind {
    /// `ann.lee@example.com`; masked `a**.l**@example.com` passes.
    Email,
    /// `555-123-4567`; masked `XXX-XXX-4567` passes.
    Phone,
    /// `123-45-6789`; masked `XXX-XX-6789` passes.
    Ssn,
}

/// What an export extracts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// One row per lead.
    #[default]
    Leads,
    /// One row per lead event (`source.accepted`, `recipient.delivered`, …).
    Events,
    /// Aggregated rows, grouped as `[summary]` says.
    Summary,
}

/// The timestamp a window applies to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimeFieldDef {
    /// When the lead was created (events: when it happened).
    #[default]
    CreatedAt,
    /// When the lead was last modified.
    UpdatedAt,
}

/// Policy for nominal runs missed while the daemon was not running.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Run every missed nominal time, oldest first (bounded by the daemon's maximum).
    All,
    /// Run only the most recent missed nominal time.
    #[default]
    Latest,
    /// Skip missed runs; wait for the next nominal time.
    None,
}

/// What happens to delivered files when the definition is removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnRemove {
    /// Keep delivered files; they expire by their destination's retention.
    #[default]
    Keep,
    /// Delete every delivered file recorded in the ledger for this export.
    Delete,
}

/// Column selection, computed columns and masks.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldsDef {
    /// Column patterns to export, in order: exact names (`email.valid`) or globs (`lead.*`,
    /// `*.valid`). Default: every field found in the window.
    #[serde(default)]
    pub include: Option<Vec<String>>,
    /// Column patterns to leave out, applied after `include` (`user_agent`, `*pii*`).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Extra columns computed from others with the filter language's expressions, such as
    /// `margin = "revenue - cost"`. Appended after the selected columns, in name order.
    #[serde(default)]
    pub computed: BTreeMap<String, String>,
    /// Columns renamed on output: `{ lead_id = "id" }` exports the `id` field under the header
    /// `lead_id`. Keys are output names, values are field names.
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
    /// PII masks by column name or pattern.
    #[serde(default)]
    pub mask: BTreeMap<String, MaskKind>,
    /// Secret key for `hash` masks (HMAC-SHA256), so hashes cannot be reversed by guessing.
    #[serde(default)]
    pub hash_key: Option<SecretRef>,
    /// Personal columns this export sends unmasked on purpose (a CRM that needs the contact's
    /// email): `exportd validate` does not warn about them. They still count as personal for
    /// the access rules (the `analyst` role cannot download them).
    #[serde(default)]
    pub allow_unmasked: Vec<String>,
}

/// How a personal field is masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MaskKind {
    /// `john.doe@example.com` → `j***.d**@example.com`.
    Email,
    /// `555-123-4567` → `XXX-XXX-4567`.
    Last4,
    /// `123-45-6789` → `XXX-XX-6789`.
    Ssn,
    /// `John Doe` → `J.D.`.
    Initials,
    /// A street address becomes its city and state only.
    CityState,
    /// Keyed HMAC-SHA256 of the value, hex (needs `fields.hash_key`).
    Hash,
    /// The column is removed.
    Drop,
}

/// Aggregation for `kind = "summary"`, computed by the store (SQL GROUP BY).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SummaryDef {
    /// Which records are aggregated: `leads` (default) or `events` (needed to group by
    /// `buyer`).
    #[serde(default)]
    pub records: SummaryRecords,
    /// Grouping keys, in order: `date`, `hour`, `week`, `month`, `source`, `flow`, `outcome`,
    /// `state`, `buyer`.
    pub group_by: Vec<String>,
    /// Metric columns by output name: `{ leads = "count", accepted = "count where outcome = \"success\"", revenue = "sum revenue" }`.
    /// Functions: `count`, `count where FILTER`, `sum FIELD`, `avg FIELD`, `min FIELD`,
    /// `max FIELD`, and the field `margin` (revenue − cost).
    pub metrics: BTreeMap<String, String>,
}

/// The table a summary aggregates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SummaryRecords {
    /// One row per lead.
    #[default]
    Leads,
    /// One row per event.
    Events,
}

/// Encoding and compression of the part files.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FormatDef {
    /// File format: `csv`, `tsv`, `json` (one array), `ndjson` (one object per line), `xml` or
    /// `parquet`.
    #[serde(default, rename = "type")]
    pub kind: FormatKind,
    /// Compression of each part: `none` (default), `gzip`, `zstd`, `zip`, `tar.gz` or `7z`.
    /// Parquet compresses its columns inside the file instead: `zstd` (default for parquet),
    /// `snappy` or `none`.
    #[serde(default)]
    #[schemars(with = "CompressionKind", transform = no_default)]
    pub compression: Option<CompressionKind>,
    /// Compression level: gzip 1–9 (default 6), zstd 1–19 (default 3).
    #[serde(default)]
    #[schemars(range(min = 1, max = 19))]
    pub level: Option<u32>,
    /// Password for `zip` (AES-256) or `7z` archives.
    #[serde(default)]
    pub password: Option<SecretRef>,
    /// CSV/TSV: field delimiter, one character. Default `,` (tab for tsv).
    #[serde(default)]
    pub delimiter: Option<char>,
    /// CSV/TSV: quote character. Default `"`.
    #[serde(default)]
    pub quote: Option<char>,
    /// CSV/TSV: escape character for quotes inside quoted values; default doubles the quote.
    #[serde(default)]
    pub escape: Option<char>,
    /// CSV/TSV: line ending, `lf` (default) or `crlf`.
    #[serde(default)]
    pub line_ending: LineEnding,
    /// CSV/TSV: text written for a missing value. Default: empty.
    #[serde(default)]
    pub null: Option<String>,
    /// CSV/TSV: write a header row. Default `true`.
    #[serde(default = "default_true")]
    pub header: bool,
    /// CSV: Excel-compatible output (UTF-8 byte order mark and CRLF line endings).
    #[serde(default)]
    pub excel: bool,
    /// JSON: indent the output for people.
    #[serde(default)]
    pub pretty: bool,
    /// XML: name of the root element. Default `export`.
    #[serde(default)]
    pub root_element: Option<String>,
    /// XML: name of each row's element. Default `row`.
    #[serde(default)]
    pub row_element: Option<String>,
    /// Parquet: rows per row group (default 65536). The encoder holds one row group in
    /// memory (also capped at 64 MiB of cell data), so this bounds a run's memory; larger
    /// groups compress slightly better.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub row_group_rows: Option<u64>,
}

impl FormatDef {
    /// The compression asked for, with its default: `zstd` for parquet, else `none`.
    pub fn compression(&self) -> CompressionKind {
        self.compression.unwrap_or(match self.kind {
            FormatKind::Parquet => CompressionKind::Zstd,
            _ => CompressionKind::None,
        })
    }

    /// The compression applied to the part file as a whole: none for parquet, which
    /// compresses inside the file.
    pub fn file_compression(&self) -> CompressionKind {
        match self.kind {
            FormatKind::Parquet => CompressionKind::None,
            _ => self.compression(),
        }
    }
}

impl Default for FormatDef {
    fn default() -> Self {
        FormatDef {
            kind: FormatKind::default(),
            compression: None,
            level: None,
            password: None,
            delimiter: None,
            quote: None,
            escape: None,
            line_ending: LineEnding::default(),
            null: None,
            header: true,
            excel: false,
            pretty: false,
            root_element: None,
            row_element: None,
            row_group_rows: None,
        }
    }
}

/// Drops the `default` of a key whose default depends on another key (`null` would mislead
/// editors that complete from the schema).
fn no_default(schema: &mut schemars::Schema) {
    schema.remove("default");
}

fn default_true() -> bool {
    true
}

/// File format of the parts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FormatKind {
    /// Comma-separated values (RFC 4180).
    #[default]
    Csv,
    /// Tab-separated values.
    Tsv,
    /// One JSON array of objects.
    Json,
    /// Newline-delimited JSON, one object per line.
    Ndjson,
    /// XML, one element per row.
    Xml,
    /// Apache Parquet (columnar).
    Parquet,
}

/// Compression of the parts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
pub enum CompressionKind {
    /// No compression.
    #[default]
    #[serde(rename = "none")]
    None,
    /// gzip, compressed on all cores.
    #[serde(rename = "gzip")]
    Gzip,
    /// Zstandard.
    #[serde(rename = "zstd")]
    Zstd,
    /// A zip archive with one entry, optionally AES-256 encrypted.
    #[serde(rename = "zip")]
    Zip,
    /// A gzip-compressed tar archive with one entry.
    #[serde(rename = "tar.gz")]
    TarGz,
    /// A 7z archive with one entry, optionally AES-256 encrypted.
    #[serde(rename = "7z")]
    SevenZ,
    /// Snappy, inside parquet files only.
    #[serde(rename = "snappy")]
    Snappy,
}

/// Encryption at rest with age (<https://age-encryption.org>).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EncryptDef {
    /// Public keys (`age1…`, as printed by `age-keygen`) that can decrypt the parts; each
    /// holder of a matching identity decrypts with `age -d -i KEYFILE`. Parts are encrypted
    /// after compression and gain the extension `.age`; the manifest describes the encrypted
    /// files. Public keys are not secrets, so they are written here directly.
    #[schemars(length(min = 1), example = &["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"])]
    pub age_recipients: Vec<String>,
}

/// CSV line ending.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LineEnding {
    /// `\n`.
    #[default]
    Lf,
    /// `\r\n`.
    Crlf,
}

/// When to start a new part file. Parts are numbered `{{part}}` = 001, 002, …
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChunkDef {
    /// Start a new part after this many rows.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_rows: Option<u64>,
    /// Start a new part once the written (compressed) file reaches this size.
    #[serde(default)]
    pub max_bytes: Option<ByteSize>,
    /// Start a new part per calendar `day` or `week` of the record's time (in the export's zone).
    #[serde(default)]
    pub split_by: Option<SplitBy>,
}

/// Calendar split of parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SplitBy {
    /// One part per local day.
    Day,
    /// One part per ISO week.
    Week,
}

/// The run manifest.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManifestDef {
    /// Write `_manifest.json` (export, window, columns, parts with rows, bytes and sha256) after
    /// the parts. Default `true`.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Also write an empty `_SUCCESS` marker last, for loaders that wait for one.
    #[serde(default)]
    pub success_marker: bool,
}

impl Default for ManifestDef {
    fn default() -> Self {
        ManifestDef {
            enabled: true,
            success_marker: false,
        }
    }
}

/// One destination. `to` selects the kind; `path` is a template such as
/// `backups/leads/{{date}}/leads_{{part}}.ndjson.gz`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "to", rename_all = "snake_case")]
pub enum DeliverDef {
    /// A directory on this machine.
    Local(LocalDeliver),
    /// Amazon S3 or an S3-compatible store.
    S3(S3Deliver),
    /// Google Cloud Storage.
    Gcs(GcsDeliver),
    /// Azure Blob Storage.
    Azure(AzureDeliver),
    /// An SFTP server.
    Sftp(SftpDeliver),
    /// Email with the parts attached.
    Email(EmailDeliver),
    /// HTTP POST of the rows (or files) to a URL.
    Webhook(WebhookDeliver),
}

/// Local directory destination.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LocalDeliver {
    /// Path template of each part; relative paths resolve against `[defaults] output_dir`.
    pub path: String,
    /// How long delivered files are kept. Default: never deleted.
    #[serde(default)]
    pub retention: Option<Retention>,
}

/// S3 destination.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3Deliver {
    /// Name of an `[connections.NAME]` of type `s3` in exportd.toml.
    pub connection: String,
    /// Bucket name.
    pub bucket: String,
    /// Object key template of each part.
    pub path: String,
    /// Server-side encryption: `AES256` or `aws:kms` (with `kms_key_id`).
    #[serde(default)]
    pub encryption: Option<S3Encryption>,
    /// KMS key for `encryption = "aws:kms"`.
    #[serde(default)]
    pub kms_key_id: Option<String>,
    /// Storage class: `STANDARD`, `STANDARD_IA`, `ONEZONE_IA`, `INTELLIGENT_TIERING`, `GLACIER`,
    /// `GLACIER_IR`, `DEEP_ARCHIVE`.
    #[serde(default)]
    pub storage_class: Option<S3StorageClass>,
    /// Lock each object (S3 Object Lock, compliance mode) for the retention period.
    #[serde(default)]
    pub immutable: bool,
    /// How long delivered objects are kept. Default: never deleted.
    #[serde(default)]
    pub retention: Option<Retention>,
    /// Move delivered objects to another storage class once they are this old, such as
    /// `{ after = "30d", storage_class = "GLACIER" }`. Only objects the ledger lists are moved.
    #[serde(default)]
    pub transition: Option<S3Transition>,
}

/// `transition` of an S3 destination: a retention sweep copies each delivered object older
/// than `after` onto itself in `storage_class`, once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3Transition {
    /// Age at which an object moves, such as `30d`; shorter than `retention`.
    pub after: Retention,
    /// The storage class it moves to, such as `GLACIER`.
    pub storage_class: S3StorageClass,
}

/// S3 server-side encryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum S3Encryption {
    /// SSE-S3.
    #[serde(rename = "AES256")]
    Aes256,
    /// SSE-KMS.
    #[serde(rename = "aws:kms")]
    AwsKms,
}

/// S3 storage class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)]
pub enum S3StorageClass {
    /// Frequent access.
    Standard,
    /// Infrequent access.
    StandardIa,
    /// Infrequent access, one zone.
    OnezoneIa,
    /// Automatic tiering.
    IntelligentTiering,
    /// Glacier Flexible Retrieval.
    Glacier,
    /// Glacier Instant Retrieval.
    GlacierIr,
    /// Glacier Deep Archive.
    DeepArchive,
}

impl S3StorageClass {
    /// The name S3 uses (`x-amz-storage-class`).
    pub fn as_str(self) -> &'static str {
        match self {
            S3StorageClass::Standard => "STANDARD",
            S3StorageClass::StandardIa => "STANDARD_IA",
            S3StorageClass::OnezoneIa => "ONEZONE_IA",
            S3StorageClass::IntelligentTiering => "INTELLIGENT_TIERING",
            S3StorageClass::Glacier => "GLACIER",
            S3StorageClass::GlacierIr => "GLACIER_IR",
            S3StorageClass::DeepArchive => "DEEP_ARCHIVE",
        }
    }
}

/// The values `[[deliver]] to = "gcs"` accepts for `storage_class` (any case).
pub const GCS_STORAGE_CLASSES: &[&str] = &["STANDARD", "NEARLINE", "COLDLINE", "ARCHIVE"];
/// The values `[[deliver]] to = "azure"` accepts for `access_tier` (any case).
pub const AZURE_ACCESS_TIERS: &[&str] = &["Hot", "Cool", "Cold", "Archive"];

/// The spelling a cloud expects of `value`, if `value` is one of `allowed` in any case.
pub fn one_of(value: &str, allowed: &[&'static str]) -> Option<&'static str> {
    allowed
        .iter()
        .copied()
        .find(|a| a.eq_ignore_ascii_case(value))
}

/// Google Cloud Storage destination.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GcsDeliver {
    /// Name of an `[connections.NAME]` of type `gcs`.
    pub connection: String,
    /// Bucket name.
    pub bucket: String,
    /// Object name template of each part.
    pub path: String,
    /// Storage class: `STANDARD`, `NEARLINE`, `COLDLINE` or `ARCHIVE`.
    #[serde(default)]
    pub storage_class: Option<String>,
    /// How long delivered objects are kept. Default: never deleted.
    #[serde(default)]
    pub retention: Option<Retention>,
}

/// Azure Blob Storage destination.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AzureDeliver {
    /// Name of an `[connections.NAME]` of type `azure`.
    pub connection: String,
    /// Container name.
    pub container: String,
    /// Blob name template of each part.
    pub path: String,
    /// Access tier: `Hot`, `Cool`, `Cold` or `Archive`.
    #[serde(default)]
    pub access_tier: Option<String>,
    /// How long delivered blobs are kept. Default: never deleted.
    #[serde(default)]
    pub retention: Option<Retention>,
}

/// SFTP destination. Host, port, user and keys live in the connection.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SftpDeliver {
    /// Name of an `[connections.NAME]` of type `sftp`.
    pub connection: String,
    /// Remote path template of each part; directories are created as needed.
    pub path: String,
    /// How long delivered files are kept. Default: never deleted.
    #[serde(default)]
    pub retention: Option<Retention>,
}

/// Email destination: one message per run with every part attached.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailDeliver {
    /// Name of an `[connections.NAME]` of type `smtp`.
    pub connection: String,
    /// Recipient addresses.
    #[schemars(length(min = 1))]
    pub recipients: Vec<String>,
    /// Subject template, such as `Weekly Lead Export - {{week}}`.
    #[serde(default)]
    pub subject: Option<String>,
    /// Attachment file name template. Default: the part name.
    #[serde(default)]
    pub path: Option<String>,
    /// Largest total attachment size; a bigger run fails before anything is sent. Default `25MB`.
    #[serde(default)]
    pub max_size: Option<ByteSize>,
    /// Password of a zip attachment (AES-256); implies zip compression of the attachment.
    #[serde(default)]
    pub zip_password: Option<SecretRef>,
    /// Ledger rows of emailed parts expire after this (nothing can be deleted from a mailbox).
    #[serde(default)]
    pub retention: Option<Retention>,
}

/// Webhook destination.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookDeliver {
    /// Name of an `[connections.NAME]` of type `webhook` (URL, signing secret, headers).
    pub connection: String,
    /// Path template appended to the connection's URL, such as `/sync/{{export}}`.
    #[serde(default)]
    pub path: Option<String>,
    /// Extra non-secret headers, templates rendered with the run's variables
    /// (`X-Export-Date = "{{date}}"`); put secret headers in the connection.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Records per POST, for `json` and `ndjson` exports (default 1000): each body is
    /// `{"export", "run_id", "batch", "records": […]}`. Other formats are POSTed one part per
    /// request, as the part's bytes, and refuse `batch_size`.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub batch_size: Option<u64>,
    /// Ledger rows of posted batches expire after this.
    #[serde(default)]
    pub retention: Option<Retention>,
}

impl DeliverDef {
    /// The `to` value, for messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            DeliverDef::Local(_) => "local",
            DeliverDef::S3(_) => "s3",
            DeliverDef::Gcs(_) => "gcs",
            DeliverDef::Azure(_) => "azure",
            DeliverDef::Sftp(_) => "sftp",
            DeliverDef::Email(_) => "email",
            DeliverDef::Webhook(_) => "webhook",
        }
    }

    /// The named connection, for every kind but `local`.
    pub fn connection(&self) -> Option<&str> {
        match self {
            DeliverDef::Local(_) => None,
            DeliverDef::S3(d) => Some(&d.connection),
            DeliverDef::Gcs(d) => Some(&d.connection),
            DeliverDef::Azure(d) => Some(&d.connection),
            DeliverDef::Sftp(d) => Some(&d.connection),
            DeliverDef::Email(d) => Some(&d.connection),
            DeliverDef::Webhook(d) => Some(&d.connection),
        }
    }

    /// The path template, if the destination has one.
    pub fn path(&self) -> Option<&str> {
        match self {
            DeliverDef::Local(d) => Some(&d.path),
            DeliverDef::S3(d) => Some(&d.path),
            DeliverDef::Gcs(d) => Some(&d.path),
            DeliverDef::Azure(d) => Some(&d.path),
            DeliverDef::Sftp(d) => Some(&d.path),
            DeliverDef::Email(d) => d.path.as_deref(),
            DeliverDef::Webhook(d) => d.path.as_deref(),
        }
    }

    /// Where this destination's objects live, as JSON: the kind plus the connection and the
    /// bucket or container. The ledger keeps it, so retention can still reach the objects of a
    /// definition that was removed (a `[[deliver]]` table rebuilt from it with an empty `path`).
    pub fn location(&self) -> serde_json::Value {
        let mut location = serde_json::json!({ "to": self.kind_name() });
        if let Some(connection) = self.connection() {
            location["connection"] = connection.into();
        }
        match self {
            DeliverDef::S3(d) => location["bucket"] = d.bucket.clone().into(),
            DeliverDef::Gcs(d) => location["bucket"] = d.bucket.clone().into(),
            DeliverDef::Azure(d) => location["container"] = d.container.clone().into(),
            _ => {}
        }
        location
    }

    /// The retention; `None` means never delete.
    pub fn retention(&self) -> Option<Retention> {
        match self {
            DeliverDef::Local(d) => d.retention,
            DeliverDef::S3(d) => d.retention,
            DeliverDef::Gcs(d) => d.retention,
            DeliverDef::Azure(d) => d.retention,
            DeliverDef::Sftp(d) => d.retention,
            DeliverDef::Email(d) => d.retention,
            DeliverDef::Webhook(d) => d.retention,
        }
    }
}
