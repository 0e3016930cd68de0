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
    /// Guards and timing of retention sweeps.
    #[serde(default)]
    pub retention: RetentionConfig,
}

/// Retention sweeps: when they run and what they never delete. Which objects expire is each
/// destination's `retention`; these are the guards around it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// The newest runs of each export whose deliveries are never deleted at a destination,
    /// however old (a stalled exporter must not age everything out). Default 1.
    #[serde(default = "default_keep_last")]
    pub keep_last: u32,
    /// Most objects one sweep deletes; the rest wait for the next sweep. Default 1000.
    #[serde(default = "default_max_delete_per_sweep")]
    #[schemars(range(min = 1))]
    pub max_delete_per_sweep: u32,
    /// Minutes between the daemon's periodic sweeps (it also sweeps after each run). Default 60.
    #[serde(default = "default_sweep_interval_minutes")]
    #[schemars(range(min = 1))]
    pub interval_minutes: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            keep_last: default_keep_last(),
            max_delete_per_sweep: default_max_delete_per_sweep(),
            interval_minutes: default_sweep_interval_minutes(),
        }
    }
}

fn default_keep_last() -> u32 {
    1
}
fn default_max_delete_per_sweep() -> u32 {
    1000
}
fn default_sweep_interval_minutes() -> u32 {
    60
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

impl ConnectionConfig {
    /// The endpoint override of an object-store connection and its `allow_insecure`, for the
    /// transport rule ([`endpoint_problem`]).
    pub fn object_store_endpoint(&self) -> Option<(&str, bool)> {
        match self {
            ConnectionConfig::S3(c) => c.endpoint.as_deref().map(|e| (e, c.allow_insecure)),
            ConnectionConfig::Gcs(c) => c.endpoint.as_deref().map(|e| (e, c.allow_insecure)),
            ConnectionConfig::Azure(c) => c.endpoint.as_deref().map(|e| (e, c.allow_insecure)),
            _ => None,
        }
    }
}

/// Why `endpoint` may not be used, if it may not. Every remote endpoint must use TLS; plain
/// `http://` is accepted only with `allow_insecure = true` AND a loopback host, so a test
/// setting can never send credentials across a network in the clear. Validation and the
/// destinations both ask this, so `exportd validate` and a run refuse the same endpoints.
pub fn endpoint_problem(endpoint: &str, allow_insecure: bool) -> Option<String> {
    let lower = endpoint.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return None;
    }
    let Some(rest) = lower.strip_prefix("http://") else {
        return Some(format!(
            "endpoint `{endpoint}` must be a URL starting with `https://`"
        ));
    };
    if !allow_insecure {
        return Some(format!(
            "endpoint `{endpoint}` is plain `http://`: credentials and data would travel unencrypted; use `https://`, or for a test server on this machine set `allow_insecure = true`"
        ));
    }
    if !is_loopback_host(url_host(rest)) {
        return Some(format!(
            "endpoint `{endpoint}` is plain `http://` and not on loopback: `allow_insecure` only covers 127.0.0.1, ::1 and localhost; use `https://`"
        ));
    }
    None
}

/// The host of `authority/path…` (no scheme), without user info, port or IPv6 brackets.
fn url_host(rest: &str) -> &str {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
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
    /// Accept a plain `http://` endpoint. Only for a test server on this machine: the endpoint
    /// must still be on loopback (`127.0.0.1`, `::1`, `localhost`), because credentials and data
    /// travel unencrypted. Default `false`: every endpoint must be `https://`.
    #[serde(default)]
    pub allow_insecure: bool,
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
    /// Accept a plain `http://` endpoint. Only for a test server on this machine: the endpoint
    /// must still be on loopback (`127.0.0.1`, `::1`, `localhost`), because credentials and data
    /// travel unencrypted. Default `false`: every endpoint must be `https://`.
    #[serde(default)]
    pub allow_insecure: bool,
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
    /// Endpoint override, for Azurite (`http://127.0.0.1:10000/devstoreaccount1`: the account
    /// is part of the path).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Accept a plain `http://` endpoint. Only for a test server on this machine: the endpoint
    /// must still be on loopback (`127.0.0.1`, `::1`, `localhost`), because credentials and data
    /// travel unencrypted. Default `false`: every endpoint must be `https://`.
    #[serde(default)]
    pub allow_insecure: bool,
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
    /// Private key (OpenSSH format, `-----BEGIN OPENSSH PRIVATE KEY-----`); preferred over a
    /// password.
    #[serde(default)]
    pub private_key: Option<SecretRef>,
    /// Passphrase of an encrypted `private_key`.
    #[serde(default)]
    pub private_key_passphrase: Option<SecretRef>,
    /// Password, if the server allows password login; tried after the key.
    #[serde(default)]
    pub password: Option<SecretRef>,
    /// known_hosts file (OpenSSH format, `[host]:port` entries for other ports than 22) the
    /// server's key must be in.
    #[serde(default)]
    pub known_hosts: Option<PathBuf>,
    /// Pinned server key fingerprint (`SHA256:…`, as `ssh-keygen -lf KEY.pub` prints it),
    /// instead of or besides known_hosts.
    #[serde(default)]
    pub host_key_fingerprint: Option<String>,
    /// Accept any server key without checking it. Only allowed for a server on loopback
    /// (a test server); anything else needs `known_hosts` or `host_key_fingerprint`.
    #[serde(default)]
    pub allow_insecure: bool,
    /// Limit of each step (connecting, logging in, each write, the rename), in seconds.
    /// Default `30`.
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

impl SftpConnection {
    /// Why the server's identity would go unchecked, if it would: no known_hosts, no pinned
    /// fingerprint, and no `allow_insecure` for a loopback host. Validation and the destination
    /// both refuse such a connection, with this message.
    pub fn host_key_problem(&self) -> Option<String> {
        if let Some(fingerprint) = &self.host_key_fingerprint
            && !fingerprint.starts_with("SHA256:")
        {
            return Some(format!(
                "`host_key_fingerprint = \"{fingerprint}\"` is not a SHA-256 fingerprint: write it as `ssh-keygen -lf KEY.pub` prints it, `SHA256:…`"
            ));
        }
        if self.known_hosts.is_some() || self.host_key_fingerprint.is_some() {
            return None;
        }
        if !self.allow_insecure {
            return Some(format!(
                "the SFTP server's host key would not be verified: set `known_hosts = \"/path/known_hosts\"` or `host_key_fingerprint = \"SHA256:…\"` (from `ssh-keyscan -p {} {} | ssh-keygen -lf -`)",
                self.port, self.host
            ));
        }
        if !is_loopback_host(&self.host) {
            return Some(format!(
                "`allow_insecure = true` is only allowed for a server on loopback, and `{}` is not: set `known_hosts` or `host_key_fingerprint`",
                self.host
            ));
        }
        None
    }
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
    /// PEM file (absolute path) of a private CA the relay's certificate is signed by, trusted
    /// in addition to the system's roots: for an internal relay with its own CA.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Permits `tls = "none"`, which sends the password and the data in clear text. Only
    /// honoured for a relay on loopback (`localhost`, `127.0.0.1`, `::1`), such as a local
    /// MTA that relays onwards over TLS itself.
    #[serde(default)]
    pub allow_insecure: bool,
    /// Timeout of each SMTP command, in seconds. Default 60.
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

impl SmtpConnection {
    /// Why this connection must not be used as written, if it must not: clear text is only
    /// acceptable to a relay on this machine, and only when asked for explicitly.
    pub fn insecure_problem(&self) -> Option<String> {
        if self.tls != SmtpTls::None {
            return None;
        }
        if !self.allow_insecure {
            return Some(format!(
                "`tls = \"none\"` sends the password and the export in clear text to `{}`: use `tls = \"starttls\"` or `\"implicit\"`, or set `allow_insecure = true` for a relay on loopback",
                self.host
            ));
        }
        if !is_loopback_host(&self.host) {
            return Some(format!(
                "`tls = \"none\"` is only allowed for a relay on loopback, and `{}` is not one: use `tls = \"starttls\"` or `\"implicit\"`",
                self.host
            ));
        }
        None
    }
}

/// Whether `host` names this machine (`localhost`, `127.0.0.0/8`, `::1`): the only place clear
/// text is acceptable, because the bytes never leave the machine.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
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
    /// Timeout of one request, in seconds. Default 30.
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    /// Permits a plain `http://` URL, which sends the records and headers in clear text. Only
    /// honoured for a receiver on loopback (`localhost`, `127.0.0.1`, `::1`).
    #[serde(default)]
    pub allow_insecure: bool,
}

impl WebhookConnection {
    /// Why this connection must not be used as written, if it must not: only `https://`, or
    /// `http://` to loopback when asked for explicitly.
    pub fn insecure_problem(&self) -> Option<String> {
        let Some((scheme, rest)) = self.url.split_once("://") else {
            return Some(format!(
                "`{}` is not a URL: write it as `https://host/path`",
                self.url
            ));
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => authority.split(':').next().unwrap_or_default(),
        };
        match scheme.to_ascii_lowercase().as_str() {
            "https" => None,
            "http" if !self.allow_insecure => Some(format!(
                "`{}` is plain http: the records and headers would travel in clear text; use `https://`, or set `allow_insecure = true` for a receiver on loopback",
                self.url
            )),
            "http" if !is_loopback_host(host) => Some(format!(
                "plain http is only allowed to a receiver on loopback, and `{host}` is not one: use `https://`"
            )),
            "http" => None,
            other => Some(format!(
                "`{other}://` is not supported: the webhook URL must start with `https://`"
            )),
        }
    }
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
    /// Lifetime of signed download URLs, in minutes. Default 15.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub url_lifetime_minutes: Option<u32>,
    /// Key that signs download URLs (HMAC-SHA256). Replicas behind one address need the same
    /// key; without it each daemon makes a random key at start (its URLs die with it).
    #[serde(default)]
    pub url_signing_key: Option<SecretRef>,
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
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema, clap::ValueEnum,
)]
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
    /// Storage quotas by connection name (`local` for local destinations): alert when the
    /// bytes the ledger lists there pass `quota_alert_fraction` of the quota.
    #[serde(default)]
    pub quotas: BTreeMap<String, ByteSize>,
    /// Fraction of a quota that raises the alert. Default 0.8.
    #[serde(default)]
    pub quota_alert_fraction: Option<f64>,
    /// Hours before an alert that is still true is sent again. Default 24.
    #[serde(default)]
    pub repeat_hours: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook(url: &str, allow_insecure: bool) -> WebhookConnection {
        WebhookConnection {
            url: url.into(),
            signing_secret: None,
            headers: BTreeMap::new(),
            timeout_seconds: None,
            allow_insecure,
        }
    }

    #[test]
    fn loopback_is_localhost_127_8_and_ipv6_one() {
        for host in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "example.com",
            "10.0.0.1",
            "localhost.example.com",
            "0.0.0.0",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn plain_http_needs_allow_insecure_and_a_loopback_host() {
        assert_eq!(
            webhook("https://crm.example.com/x", false).insecure_problem(),
            None
        );
        assert_eq!(
            webhook("http://127.0.0.1:8089/x", true).insecure_problem(),
            None
        );
        assert_eq!(
            webhook("http://user@[::1]:80/x", true).insecure_problem(),
            None
        );
        assert!(
            webhook("http://127.0.0.1:8089/x", false)
                .insecure_problem()
                .is_some()
        );
        let remote = webhook("http://crm.example.com:80/x", true).insecure_problem();
        assert!(remote.unwrap().contains("`crm.example.com` is not one"));
        // A host that only starts like loopback is not loopback.
        assert!(
            webhook("http://localhost.evil.test/x", true)
                .insecure_problem()
                .is_some()
        );
        assert!(
            webhook("ftp://127.0.0.1/x", true)
                .insecure_problem()
                .is_some()
        );
        assert!(
            webhook("crm.example.com", true)
                .insecure_problem()
                .is_some()
        );
    }
}
