//! The daemon's own configuration, `exportd.toml`: where the lead store and the state store
//! live, the HTTP listener, defaults for definitions, named connections with their secret
//! references, API access and alerts. Source of `schemas/exportd.schema.json`.
//!
//! Every table is optional: a missing file means all defaults (embedded SQLite under `var/`).

use super::secret::SecretRef;
use super::units::ByteSize;
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Default lead store: embedded SQLite beside the config.
pub const DEFAULT_STORE_URL: &str = "sqlite://var/leads.db";
/// Default state store (run history, ledger, watermarks).
pub const DEFAULT_STATE_URL: &str = "sqlite://var/state.db";
/// Default HTTP listen address (loopback only).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default output directory of local destinations.
pub const DEFAULT_OUTPUT_DIR: &str = "var/exports";

/// The daemon configuration.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "exportd daemon configuration")]
pub struct DaemonConfig {
    /// The lead store exports read from.
    #[serde(default)]
    pub store: StoreConfig,
    /// Where run history, the delivery ledger and watermarks are kept.
    #[serde(default)]
    pub state: StateConfig,
    /// The status API and page.
    #[serde(default)]
    pub http: HttpConfig,
    /// Defaults for every export definition.
    #[serde(default)]
    pub defaults: Defaults,
    /// Named endpoints and credentials that definitions refer to by name.
    #[serde(default)]
    pub connections: BTreeMap<String, ConnectionConfig>,
    /// API tokens and their roles.
    #[serde(default)]
    pub access: AccessConfig,
    /// Where alerts go and when.
    #[serde(default)]
    pub alerts: Option<AlertsConfig>,
}

/// The lead store.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://PATH` (relative to this file's directory) or `postgres://…`.
    #[serde(default = "default_store_url")]
    pub url: String,
    /// Password for a PostgreSQL store, kept out of the URL.
    #[serde(default)]
    pub password: Option<SecretRef>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: default_store_url(),
            password: None,
        }
    }
}

fn default_store_url() -> String {
    DEFAULT_STORE_URL.into()
}

/// The state store.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// `sqlite://PATH` or `postgres://…` (needed for several replicas).
    #[serde(default = "default_state_url")]
    pub url: String,
    /// Password for a PostgreSQL state store.
    #[serde(default)]
    pub password: Option<SecretRef>,
    /// How long a replica's claim on a run lasts without renewal, in seconds. The replica
    /// renews it every third of this while the run is alive; if the replica dies or loses the
    /// database, another replica takes the run over once it runs out.
    #[serde(default = "default_lease_seconds")]
    #[schemars(range(min = 2, max = 86400))]
    pub lease_seconds: u64,
    /// Name of this replica in claims (`HOSTNAME:CONFIG_DIR` by default). It must differ
    /// between replicas sharing a state store and stay the same across restarts of one, so a
    /// restarted replica takes its own interrupted runs back at once.
    #[serde(default)]
    pub replica: Option<String>,
}

/// Default `[state] lease_seconds`.
pub const DEFAULT_LEASE_SECONDS: u64 = 60;

fn default_lease_seconds() -> u64 {
    DEFAULT_LEASE_SECONDS
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            url: default_state_url(),
            password: None,
            lease_seconds: DEFAULT_LEASE_SECONDS,
            replica: None,
        }
    }
}

fn default_state_url() -> String {
    DEFAULT_STATE_URL.into()
}

/// The HTTP listener.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address and port, such as `127.0.0.1:8080`.
    #[serde(default = "default_listen")]
    pub listen: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: default_listen(),
        }
    }
}

fn default_listen() -> String {
    DEFAULT_LISTEN.into()
}

/// Defaults applied to every definition that does not say otherwise.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// IANA time zone of schedules and windows. Default `UTC`.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Root directory of `to = "local"` destinations (relative to this file). Default
    /// `var/exports`.
    #[serde(default = "default_output_dir")]
    pub output_dir: PathBuf,
    /// Working directory for staged part files before delivery. Default `var/staging`.
    #[serde(default = "default_staging_dir")]
    pub staging_dir: PathBuf,
    /// Most missed runs one export catches up after downtime with `catch_up = "all"`.
    #[serde(default = "default_max_catch_up")]
    pub max_catch_up: u32,
    /// Storage price for cost estimates, US dollars per GB-month.
    #[serde(default = "default_storage_price")]
    pub storage_price_per_gb_month: f64,
    /// Transfer price for cost estimates, US dollars per GB.
    #[serde(default = "default_transfer_price")]
    pub transfer_price_per_gb: f64,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            timezone: default_timezone(),
            output_dir: default_output_dir(),
            staging_dir: default_staging_dir(),
            max_catch_up: default_max_catch_up(),
            storage_price_per_gb_month: default_storage_price(),
            transfer_price_per_gb: default_transfer_price(),
        }
    }
}

fn default_timezone() -> String {
    "UTC".into()
}
fn default_output_dir() -> PathBuf {
    DEFAULT_OUTPUT_DIR.into()
}
fn default_staging_dir() -> PathBuf {
    "var/staging".into()
}
fn default_max_catch_up() -> u32 {
    100
}
fn default_storage_price() -> f64 {
    0.023
}
fn default_transfer_price() -> f64 {
    0.09
}

/// A named connection. `type` selects the kind.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ConnectionConfig {
    /// Amazon S3 or an S3-compatible server.
    S3(S3Connection),
    /// Google Cloud Storage.
    Gcs(GcsConnection),
    /// Azure Blob Storage.
    Azure(AzureConnection),
    /// An SFTP server.
    Sftp(SftpConnection),
    /// An SMTP relay.
    Smtp(SmtpConnection),
    /// An HTTP endpoint.
    Webhook(WebhookConnection),
}

impl ConnectionConfig {
    /// The `type` value, for messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            ConnectionConfig::S3(_) => "s3",
            ConnectionConfig::Gcs(_) => "gcs",
            ConnectionConfig::Azure(_) => "azure",
            ConnectionConfig::Sftp(_) => "sftp",
            ConnectionConfig::Smtp(_) => "smtp",
            ConnectionConfig::Webhook(_) => "webhook",
        }
    }
}

/// S3 endpoint and credentials.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3Connection {
    /// AWS region, such as `us-east-1`.
    #[serde(default)]
    pub region: Option<String>,
    /// Endpoint of an S3-compatible server, such as `http://127.0.0.1:9000`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Use path-style addressing (`endpoint/bucket/key`), needed by most S3-compatible servers.
    #[serde(default)]
    pub path_style: bool,
    /// Access key id. Without it, the standard AWS credential chain is used.
    #[serde(default)]
    pub access_key_id: Option<SecretRef>,
    /// Secret access key.
    #[serde(default)]
    pub secret_access_key: Option<SecretRef>,
    /// Session token for temporary credentials.
    #[serde(default)]
    pub session_token: Option<SecretRef>,
}

/// Google Cloud Storage credentials.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GcsConnection {
    /// Service account key JSON. Without it, application default credentials are used.
    #[serde(default)]
    pub service_account_key: Option<SecretRef>,
    /// Endpoint override, for an emulator.
    #[serde(default)]
    pub endpoint: Option<String>,
}

/// Azure Blob Storage account.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AzureConnection {
    /// Storage account name.
    pub account: String,
    /// Account access key.
    #[serde(default)]
    pub access_key: Option<SecretRef>,
    /// Endpoint override, for Azurite.
    #[serde(default)]
    pub endpoint: Option<String>,
}

/// SFTP server and login.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SftpConnection {
    /// Host name or address.
    pub host: String,
    /// Port. Default 22.
    #[serde(default = "default_ssh_port")]
    pub port: u16,
    /// Login name.
    pub username: String,
    /// Private key (OpenSSH format); preferred over a password.
    #[serde(default)]
    pub private_key: Option<SecretRef>,
    /// Password, if the server allows password login.
    #[serde(default)]
    pub password: Option<SecretRef>,
    /// known_hosts file the server's key must be in.
    #[serde(default)]
    pub known_hosts: Option<PathBuf>,
    /// Pinned server key fingerprint (`SHA256:…`), instead of known_hosts.
    #[serde(default)]
    pub host_key_fingerprint: Option<String>,
}

fn default_ssh_port() -> u16 {
    22
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// STARTTLS upgrade (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No TLS: only for a relay on loopback.
    None,
}

/// SMTP relay.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SmtpConnection {
    /// Relay host.
    pub host: String,
    /// Port. Default 587.
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// `starttls` (default), `implicit` or `none`.
    #[serde(default)]
    pub tls: SmtpTls,
    /// Login name, if the relay needs one.
    #[serde(default)]
    pub username: Option<String>,
    /// Login password.
    #[serde(default)]
    pub password: Option<SecretRef>,
    /// Sender address.
    pub from: String,
}

fn default_smtp_port() -> u16 {
    587
}

/// HTTP endpoint.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookConnection {
    /// Base URL.
    pub url: String,
    /// Secret for an HMAC-SHA256 signature header of each body.
    #[serde(default)]
    pub signing_secret: Option<SecretRef>,
    /// Secret headers, such as `Authorization`.
    #[serde(default)]
    pub headers: BTreeMap<String, SecretRef>,
    /// Timeout of one request. Default `30s`.
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

/// API access.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessConfig {
    /// API tokens; `exportd token new NAME --role ROLE` prints an entry.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// Days of data the `operations` role may download. Default 7.
    #[serde(default)]
    pub operations_days: Option<u32>,
}

/// One API token.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds the token, for the audit log.
    pub name: String,
    /// `admin`, `analyst`, `operations` or `auditor`.
    pub role: Role,
    /// SHA-256 of the token, hex; the token itself is never stored.
    pub sha256: String,
}

/// API roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything.
    Admin,
    /// Status, and downloads of fully anonymised exports.
    Analyst,
    /// Trigger, suspend, resume, and download recent runs.
    Operations,
    /// Read-only status, runs and audit log.
    Auditor,
}

/// Alerts.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// A `webhook` or `smtp` connection alerts are sent through.
    pub connection: String,
    /// Recipients when the connection is smtp.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// Alert when a run exports more rows than this.
    #[serde(default)]
    pub large_export_rows: Option<u64>,
    /// Alert when a run writes more bytes than this.
    #[serde(default)]
    pub large_export_bytes: Option<ByteSize>,
}
