//! Turns the text of a definition into a checked [`ExportSpec`], or the list of everything wrong
//! with it.
//!
//! Three passes, each reporting every problem it finds: the committed JSON Schema (unknown keys,
//! types, enum values, sizes), the typed deserialisation (the validator of record), then
//! semantic checks no schema can express (schedule, time zone, window, filter, templates,
//! connections, path confinement, coherence of limits). Pure: no IO, no clock.

use super::daemon::{ConnectionConfig, DaemonConfig};
use super::diagnostic::{Diagnostic, Severity, did_you_mean};
use super::export::{CompressionKind, DeliverDef, ExportDef, FormatKind, Kind};
use super::schema::{DAEMON_SCHEMA, EXPORT_SCHEMA};
use super::schema_check::SchemaChecker;
use super::source::{Part, Seg, Source};
use crate::filter::{self, Expr};
use crate::path;
use crate::schedule::{Schedule, WindowKind};
use crate::template::{self, Template};
use chrono_tz::Tz;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Default largest email attachment total.
pub const DEFAULT_EMAIL_MAX_SIZE: u64 = 25_000_000;

/// A definition that passed every check, with its parsed parts.
#[derive(Debug, Clone)]
pub struct ExportSpec {
    /// The file stem.
    pub name: String,
    /// The file it came from.
    pub file: PathBuf,
    /// SHA-256 of the file text: the revision the daemon accepted.
    pub revision: String,
    /// The definition as written.
    pub def: ExportDef,
    /// When it runs; `None` for on-demand exports.
    pub schedule: Option<Schedule>,
    /// Zone of the schedule and the window.
    pub timezone: Tz,
    /// Which records a run exports.
    pub window: WindowKind,
    /// The parsed filter.
    pub filter: Option<Expr>,
    /// Computed columns, in name order.
    pub computed: Vec<(String, Expr)>,
    /// Compiled path and subject templates, one per `[[deliver]]`.
    pub destinations: Vec<DestinationSpec>,
}

/// One checked `[[deliver]]` table.
#[derive(Debug, Clone)]
pub struct DestinationSpec {
    /// The table as written.
    pub def: DeliverDef,
    /// Its compiled path template.
    pub path: Option<std::sync::Arc<Template>>,
    /// Its compiled email subject template.
    pub subject: Option<std::sync::Arc<Template>>,
}

fn export_checker() -> &'static Result<SchemaChecker, String> {
    static CHECKER: OnceLock<Result<SchemaChecker, String>> = OnceLock::new();
    CHECKER.get_or_init(|| SchemaChecker::new(EXPORT_SCHEMA))
}

fn daemon_checker() -> &'static Result<SchemaChecker, String> {
    static CHECKER: OnceLock<Result<SchemaChecker, String>> = OnceLock::new();
    CHECKER.get_or_init(|| SchemaChecker::new(DAEMON_SCHEMA))
}

/// Whether an export name (a file stem) is usable in paths, URLs and metrics labels.
pub fn valid_export_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Deserialises a file that passed the schema; serde is the validator of record.
fn deserialize<T: serde::de::DeserializeOwned>(source: &Source<'_>) -> Result<T, Diagnostic> {
    toml::from_str::<T>(source.text()).map_err(|e| {
        let offset = e.span().map(|s| s.start).unwrap_or(0);
        source.error_at_offset(offset, e.message().trim_end().to_owned())
    })
}

fn schema_errors(source: &Source<'_>, checker: &Result<SchemaChecker, String>) -> Vec<Diagnostic> {
    match checker {
        Ok(checker) => checker.check(source),
        Err(e) => vec![source.error_at_offset(
            0,
            format!("the committed JSON Schema does not compile ({e}); this is a bug in exportd, please report it"),
        )],
    }
}

/// Checks the text of `exportd.toml`.
pub fn check_daemon(file: &Path, text: &str) -> (Option<DaemonConfig>, Vec<Diagnostic>) {
    let source = match Source::parse(file, text) {
        Ok(s) => s,
        Err(d) => return (None, vec![d]),
    };
    let errors = schema_errors(&source, daemon_checker());
    if !errors.is_empty() {
        return (None, errors);
    }
    let config: DaemonConfig = match deserialize(&source) {
        Ok(c) => c,
        Err(d) => return (None, vec![d]),
    };
    let mut diags = Vec::new();
    if let Err(d) = parse_timezone(
        &source,
        &path!["defaults", "timezone"],
        &config.defaults.timezone,
    ) {
        diags.push(d);
    }
    if let Some(alerts) = &config.alerts {
        match config.connections.get(&alerts.connection) {
            Some(ConnectionConfig::Webhook(_) | ConnectionConfig::Smtp(_)) => {}
            Some(other) => diags.push(source.error_at(
                &path!["alerts", "connection"],
                Part::Value,
                format!(
                    "alerts go through a `webhook` or `smtp` connection, and `{}` is of type `{}`",
                    alerts.connection,
                    other.kind_name()
                ),
            )),
            None => diags.push(unknown_connection(
                &source,
                &path!["alerts", "connection"],
                &alerts.connection,
                &config,
            )),
        }
        diags.extend(alerts_problems(&source, alerts, &config));
    }
    for (name, connection) in &config.connections {
        diags.extend(connection_problems(&source, name, connection));
        if !valid_export_name(name) {
            diags.push(source.error_at(
                &path!["connections", name.as_str()],
                Part::Key,
                format!("connection name `{name}` may only contain letters, digits, `-` and `_`"),
            ));
        }
    }
    if diags.is_empty() {
        (Some(config), diags)
    } else {
        (None, diags)
    }
}

/// What makes a connection unusable as written: clear text where it is not allowed, an SFTP
/// server it could not verify, a CA file
/// that would resolve differently depending on the daemon's working directory.
fn connection_problems(
    source: &Source<'_>,
    name: &str,
    connection: &ConnectionConfig,
) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let at = |key: &'static str| path!["connections", name, key];
    match connection {
        ConnectionConfig::Smtp(smtp) => {
            if let Some(problem) = smtp.insecure_problem() {
                diags.push(source.error_at(&at("tls"), Part::Value, problem));
            }
            if let Some(ca) = &smtp.ca_file
                && !ca.is_absolute()
            {
                diags.push(source.error_at(
                    &at("ca_file"),
                    Part::Value,
                    format!(
                        "`ca_file` `{}` must be an absolute path, such as `/etc/exportd/relay-ca.pem`",
                        ca.display()
                    ),
                ));
            }
        }
        ConnectionConfig::Webhook(hook) => {
            if let Some(problem) = hook.insecure_problem() {
                diags.push(source.error_at(&at("url"), Part::Value, problem));
            }
        }
        ConnectionConfig::Sftp(sftp) => {
            if let Some(problem) = sftp.host_key_problem() {
                diags.push(source.error_at(
                    &path!["connections", name],
                    Part::Key,
                    format!("connection `{name}`: {problem}"),
                ));
            }
        }
        _ => {}
    }
    if let Some((endpoint, allow_insecure)) = connection.object_store_endpoint()
        && let Some(problem) = super::daemon::endpoint_problem(endpoint, allow_insecure)
    {
        diags.push(source.error_at(&at("endpoint"), Part::Value, problem));
    }
    diags
}

/// Formats a webhook can split into JSON records; any other part is POSTed whole.
pub fn webhook_can_split(format: FormatKind, compression: CompressionKind) -> bool {
    matches!(format, FormatKind::Json | FormatKind::Ndjson)
        && matches!(
            compression,
            CompressionKind::None | CompressionKind::Gzip | CompressionKind::Zstd
        )
}

/// Checks the text of one definition. `name` is the file stem.
pub fn check_export(
    name: &str,
    file: &Path,
    text: &str,
    daemon: &DaemonConfig,
) -> (Option<ExportSpec>, Vec<Diagnostic>) {
    let source = match Source::parse(file, text) {
        Ok(s) => s,
        Err(d) => return (None, vec![d]),
    };
    let mut diags = Vec::new();
    if !valid_export_name(name) {
        diags.push(source.error_at_offset(
            0,
            format!("export name `{name}` (the file name) may only contain letters, digits, `-` and `_`; rename the file"),
        ));
    }
    diags.extend(schema_errors(&source, export_checker()));
    if !diags.is_empty() {
        return (None, diags);
    }
    let def: ExportDef = match deserialize(&source) {
        Ok(d) => d,
        Err(d) => return (None, vec![d]),
    };
    let mut checks = Checks {
        source: &source,
        daemon,
        diags,
    };
    let spec = checks.export(name, def);
    let diags = checks.diags;
    if diags.iter().any(Diagnostic::is_error) {
        (None, diags)
    } else {
        (spec, diags)
    }
}

/// Semantic checks of one definition, collecting diagnostics.
struct Checks<'s, 'a> {
    source: &'s Source<'a>,
    daemon: &'s DaemonConfig,
    diags: Vec<Diagnostic>,
}

impl Checks<'_, '_> {
    /// `transition` of an S3 destination: a real age, shorter than `retention`, to a class
    /// other than the one objects are written in, and not on locked objects.
    fn s3_transition(
        &mut self,
        i: usize,
        s3: &super::export::S3Deliver,
        transition: &super::export::S3Transition,
    ) {
        let Some(after) = transition.after.duration() else {
            self.error(
                &path!["deliver", i, "transition", "after"],
                "`transition.after = \"never\"` never moves anything: write an age such as `30d`, or remove `transition`",
            );
            return;
        };
        if let Some(retention) = s3.retention.and_then(|r| r.duration())
            && after >= retention
        {
            self.error(
                &path!["deliver", i, "transition", "after"],
                format!(
                    "`transition.after = \"{}\"` must be shorter than `retention = \"{}\"`: objects would be deleted before they move; shorten `after` or lengthen `retention`",
                    transition.after,
                    s3.retention.map(|r| r.to_string()).unwrap_or_default()
                ),
            );
        }
        if s3.storage_class == Some(transition.storage_class) {
            self.error(
                &path!["deliver", i, "transition", "storage_class"],
                format!(
                    "objects are already written in `{}`: transition to another class, or remove `transition`",
                    transition.storage_class.as_str()
                ),
            );
        }
        if s3.immutable {
            // A copy onto a locked object makes a new version; the locked one would stay
            // behind in the old class, paid for until its lock ends.
            self.error(
                &path!["deliver", i, "transition"],
                "`transition` cannot move objects locked by `immutable = true` (the copy leaves the locked version behind); remove `transition` and use a bucket lifecycle rule instead",
            );
        }
    }

    fn error(&mut self, path: &[Seg], message: impl Into<String>) {
        let d = self.source.error_at(path, Part::Value, message);
        self.diags.push(d);
    }

    fn warning(&mut self, path: &[Seg], message: impl Into<String>) {
        let mut d = self.source.error_at(path, Part::Value, message);
        d.severity = Severity::Warning;
        self.diags.push(d);
    }

    /// An error at a character column inside a string value (filters, templates).
    fn error_in_string(&mut self, path: &[Seg], column: usize, message: impl Into<String>) {
        let start = self.source.string_start(path);
        let rest = &self.source.text()[start..];
        let offset = start
            + rest
                .char_indices()
                .nth(column.saturating_sub(1))
                .map(|(i, _)| i)
                .unwrap_or(0);
        let d = self.source.error_at_offset(offset, message);
        self.diags.push(d);
    }

    fn export(&mut self, name: &str, def: ExportDef) -> Option<ExportSpec> {
        let schedule = def.schedule.as_deref().and_then(|text| {
            text.parse::<Schedule>()
                .map_err(|e| {
                    self.error(
                        &path!["schedule"],
                        format!("invalid schedule `{text}`: {e}"),
                    )
                })
                .ok()
        });
        let zone_text = def
            .timezone
            .clone()
            .unwrap_or_else(|| self.daemon.defaults.timezone.clone());
        let timezone = parse_timezone(self.source, &path!["timezone"], &zone_text)
            .map_err(|d| self.diags.push(d))
            .ok();
        let window = def
            .window
            .parse::<WindowKind>()
            .map_err(|e| {
                let choices = WindowKind::ALL
                    .iter()
                    .map(|k| format!("`{}`", k.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ");
                let mut d = self.source.error_at(
                    &path!["window"],
                    Part::Value,
                    format!("unknown window `{}`: use one of {choices}", e.got),
                );
                d.help = e.suggestion.map(|s| format!("did you mean `{s}`?"));
                self.diags.push(d);
            })
            .ok();
        let filter = def
            .filter
            .as_deref()
            .and_then(|text| match filter::parse_filter(text) {
                Ok(expr) => Some(expr),
                Err(e) => {
                    self.error_in_string(
                        &path!["filter"],
                        e.column,
                        format!("invalid filter: {}", e.message),
                    );
                    None
                }
            });
        let mut computed = Vec::new();
        for (column, text) in &def.fields.computed {
            match filter::parse_expression(text) {
                Ok(expr) => computed.push((column.clone(), expr)),
                Err(e) => self.error_in_string(
                    &path!["fields", "computed", column.as_str()],
                    e.column,
                    format!("invalid computed column `{column}`: {}", e.message),
                ),
            }
        }
        self.fields(&def);
        self.personal_data_leaving(&def, &computed);
        self.kind_and_format(&def);
        self.encryption(&def);
        let destinations = self.destinations(name, &def);
        let (Some(timezone), Some(window)) = (timezone, window) else {
            return None;
        };
        if def.schedule.is_some() && schedule.is_none() || def.filter.is_some() && filter.is_none()
        {
            return None;
        }
        Some(ExportSpec {
            name: name.to_owned(),
            file: self.source.file().to_path_buf(),
            revision: hex::encode(Sha256::digest(self.source.text().as_bytes())),
            def,
            schedule,
            timezone,
            window,
            filter,
            computed,
            destinations,
        })
    }

    /// The lint behind `validate --deny-warnings`: personal fields sent unmasked to a
    /// destination that hands files to people or third parties (email, webhook, SFTP), where
    /// no bucket policy or retention stands between the data and its readers. One warning per
    /// column, at the key that brings the column in, so the fix is one edit away.
    fn personal_data_leaving(&mut self, def: &ExportDef, computed: &[(String, filter::Expr)]) {
        if def.kind == Kind::Summary {
            return;
        }
        let leaving: Vec<(usize, &str)> = def
            .deliver
            .iter()
            .enumerate()
            .filter_map(|(i, d)| match d {
                DeliverDef::Email(_) => Some((i, "email")),
                DeliverDef::Webhook(_) => Some((i, "webhook")),
                DeliverDef::Sftp(_) => Some((i, "sftp")),
                _ => None,
            })
            .collect();
        let Some(&(first, _)) = leaving.first() else {
            return;
        };
        let to = leaving
            .iter()
            .map(|(i, kind)| format!("`{kind}` ([[deliver]] #{})", i + 1))
            .collect::<Vec<_>>()
            .join(" and ");
        let fields = &def.fields;
        // Columns the definition names get a warning each, at their key; columns that come in
        // through a pattern (or the default of every field) one warning together, since the
        // fix there is one edit: name the columns, or mask or exclude the personal ones.
        let mut by_pattern = Vec::new();
        for column in crate::fields::unmasked_personal_fields(fields, computed) {
            if fields
                .allow_unmasked
                .iter()
                .any(|p| crate::fields::glob_match(p, &column))
            {
                continue;
            }
            let at: Vec<Seg> =
                if let Some(i) = fields.include.iter().flatten().position(|p| *p == column) {
                    path!["fields", "include", i].to_vec()
                } else if fields.rename.contains_key(&column) {
                    path!["fields", "rename", column.as_str()].to_vec()
                } else if fields.computed.contains_key(&column) {
                    path!["fields", "computed", column.as_str()].to_vec()
                } else {
                    by_pattern.push(column);
                    continue;
                };
            let mask = crate::fields::suggested_mask(&column);
            let key = if column.contains(['.', '-']) {
                format!("\"{column}\"")
            } else {
                column.clone()
            };
            self.warning(
                &at,
                format!(
                    "column `{column}` looks personal and goes unmasked to {to}; mask it (`{key} = \"{mask}\"` in [fields] mask), leave it out (`exclude = [\"{column}\"]` in [fields]), or, if the recipient must have it, list it in [fields] allow_unmasked"
                ),
            );
        }
        if !by_pattern.is_empty() {
            let (at, how): (Vec<Seg>, &str) = if fields.include.is_some() {
                (
                    path!["fields", "include"].to_vec(),
                    "a pattern in [fields] include",
                )
            } else if !fields.exclude.is_empty() || !fields.mask.is_empty() {
                (
                    path!["fields"].to_vec(),
                    "[fields] without `include` (every field)",
                )
            } else {
                (
                    path!["deliver", first, "to"].to_vec(),
                    "no [fields] include (every field)",
                )
            };
            self.warning(
                &at,
                format!(
                    "{how} lets personal columns go unmasked to {to}: {}; name the columns to send in [fields] include, mask the personal ones in [fields] mask, exclude them, or list those the recipient must have in [fields] allow_unmasked",
                    by_pattern.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
                ),
            );
        }
    }

    fn fields(&mut self, def: &ExportDef) {
        use super::export::MaskKind;
        let hashes = def.fields.mask.values().any(|m| *m == MaskKind::Hash);
        if hashes && def.fields.hash_key.is_none() {
            let column = def
                .fields
                .mask
                .iter()
                .find(|(_, m)| **m == MaskKind::Hash)
                .map(|(c, _)| c.clone())
                .unwrap_or_default();
            self.error(
                &path!["fields", "mask", column.as_str()],
                "`hash` masks need a key: add `hash_key = { env = \"EXPORTD_HASH_KEY\" }` to [fields]",
            );
        }
        for column in def.fields.computed.keys() {
            if def.fields.rename.contains_key(column) {
                self.error(
                    &path!["fields", "computed", column.as_str()],
                    format!("`{column}` is both a computed and a renamed column; give one of them another name"),
                );
            }
        }
    }

    fn kind_and_format(&mut self, def: &ExportDef) {
        use super::export::FormatKind;
        match (&def.kind, &def.summary) {
            (Kind::Summary, None) => self.error(
                &path!["kind"],
                "`kind = \"summary\"` needs a [summary] table with `group_by` and `metrics`",
            ),
            (Kind::Leads | Kind::Events, Some(_)) => self.warning(
                &path!["summary"],
                "[summary] is ignored unless `kind = \"summary\"`",
            ),
            (Kind::Summary, Some(summary)) => {
                for (i, key) in summary.group_by.iter().enumerate() {
                    if key == "buyer" && summary.records != super::export::SummaryRecords::Events {
                        self.error(
                            &path!["summary", "group_by", i],
                            "`buyer` is a field of events: add `records = \"events\"` to [summary]",
                        );
                    }
                    if !crate::config::SUMMARY_GROUPS.contains(&key.as_str()) {
                        let mut d = self.source.error_at(
                            &path!["summary", "group_by", i],
                            Part::Value,
                            format!(
                                "cannot group by `{key}`: use {}",
                                crate::config::SUMMARY_GROUPS.join(", ")
                            ),
                        );
                        d.help = did_you_mean(key, crate::config::SUMMARY_GROUPS.iter().copied());
                        self.diags.push(d);
                    }
                }
                for (column, text) in &summary.metrics {
                    if let Err(message) = crate::config::Metric::parse(text) {
                        self.error(
                            &path!["summary", "metrics", column.as_str()],
                            format!("invalid metric `{column}`: {message}"),
                        );
                    }
                }
            }
            _ => {}
        }
        if def.kind == Kind::Events && def.time_field == super::export::TimeFieldDef::UpdatedAt {
            self.error(
                &path!["time_field"],
                "events never change: use `time_field = \"created_at\"` for events",
            );
        }
        let format = &def.format;
        if format.kind == FormatKind::Parquet {
            if !cfg!(feature = "parquet") {
                self.error(
                    &path!["format", "type"],
                    "`parquet` is not available in this build (built without the `parquet` feature); use `csv`, `tsv`, `json`, `ndjson` or `xml`",
                );
            }
            // Parquet compresses each column inside the file; an outer gzip or archive would
            // hide the footer from every Parquet reader (DuckDB, Spark, pyarrow read it by
            // seeking), so only the inner codecs are accepted.
            if !matches!(
                format.compression(),
                CompressionKind::Zstd | CompressionKind::Snappy | CompressionKind::None
            ) {
                self.error(
                    &path!["format", "compression"],
                    "parquet compresses its columns inside the file: use `compression = \"zstd\"` (default), `\"snappy\"` or `\"none\"`",
                );
            }
        } else {
            if format.compression() == CompressionKind::Snappy {
                self.error(
                    &path!["format", "compression"],
                    "`snappy` is a parquet codec; for this format use `gzip`, `zstd`, `zip`, `tar.gz`, `7z` or `none`",
                );
            }
            if format.row_group_rows.is_some() {
                self.error(
                    &path!["format", "row_group_rows"],
                    "`row_group_rows` applies to `type = \"parquet\"` only; remove it",
                );
            }
        }
        if format.row_group_rows == Some(0) {
            self.error(
                &path!["format", "row_group_rows"],
                "`row_group_rows` must be at least 1",
            );
        }
        let level_range = match format.compression() {
            CompressionKind::Gzip | CompressionKind::TarGz => Some(1..=9),
            CompressionKind::Zstd => Some(1..=19),
            _ => None,
        };
        if let Some(level) = format.level {
            match level_range {
                Some(range) if !range.contains(&level) => self.error(
                    &path!["format", "level"],
                    format!(
                        "compression level {level} is out of range {}–{} for this compression",
                        range.start(),
                        range.end()
                    ),
                ),
                None => self.error(
                    &path!["format", "level"],
                    "`level` applies to `gzip`, `tar.gz` and `zstd` only; remove it",
                ),
                _ => {}
            }
        }
        if format.password.is_some()
            && !matches!(
                format.file_compression(),
                CompressionKind::Zip | CompressionKind::SevenZ
            )
        {
            self.error(
                &path!["format", "password"],
                "a password needs `compression = \"zip\"` or `\"7z\"`",
            );
        }
        let single_char =
            |c: Option<char>| c.is_none_or(|c| c.is_ascii() && c != '\n' && c != '\r');
        for (key, value) in [
            ("delimiter", format.delimiter),
            ("quote", format.quote),
            ("escape", format.escape),
        ] {
            if !single_char(value) {
                self.error(
                    &path!["format", key],
                    format!("`{key}` must be one ASCII character other than a line break"),
                );
            }
        }
    }

    /// Every recipient must parse now, so a bad key fails `validate` at its line instead of
    /// the first run.
    fn encryption(&mut self, def: &ExportDef) {
        let Some(encrypt) = &def.encrypt else {
            return;
        };
        if encrypt.age_recipients.is_empty() {
            self.error(
                &path!["encrypt", "age_recipients"],
                "`age_recipients` is empty: add at least one `age1…` public key (the line `age-keygen` prints), or remove `[encrypt]`",
            );
        }
        for (i, key) in encrypt.age_recipients.iter().enumerate() {
            if let Err(e) = crate::encrypt::parse_recipient(key) {
                self.error(&path!["encrypt", "age_recipients", i], e.to_string());
            }
        }
    }

    fn destinations(&mut self, name: &str, def: &ExportDef) -> Vec<DestinationSpec> {
        if def.deliver.is_empty() {
            self.error(
                &[],
                "no destination: add a [[deliver]] table, such as `to = \"local\"` with a `path`",
            );
        }
        let multi_part = def.chunk.max_rows.is_some()
            || def.chunk.max_bytes.is_some()
            || def.chunk.split_by.is_some();
        let sample = template::sample_vars(name);
        let mut specs = Vec::new();
        for (i, dest) in def.deliver.iter().enumerate() {
            if let Some(connection) = dest.connection() {
                self.connection(i, dest, connection);
            }
            let path = dest.path().and_then(|text| {
                // Webhook paths are appended to the connection's URL, so `/sync` is relative to it.
                let allow_absolute = matches!(
                    dest,
                    DeliverDef::Local(_) | DeliverDef::Sftp(_) | DeliverDef::Webhook(_)
                );
                let at = path!["deliver", i, "path"];
                let t = self.template(&at, text, &sample, allow_absolute)?;
                // Attachments and webhook endpoints are not stored objects: parts cannot
                // overwrite each other there.
                if multi_part && !text.contains("{{part}}") && !matches!(dest, DeliverDef::Email(_) | DeliverDef::Webhook(_)) {
                    self.error(&at, "[chunk] can produce several parts, and they would overwrite each other: put `{{part}}` in the path");
                }
                Some(t)
            });
            let subject = match dest {
                DeliverDef::Email(email) => {
                    let at = path!["deliver", i, "subject"];
                    email
                        .subject
                        .as_deref()
                        .and_then(|text| self.template(&at, text, &sample, true))
                }
                _ => None,
            };
            match dest {
                DeliverDef::Email(email) => {
                    let max = email
                        .max_size
                        .map(|s| s.bytes())
                        .unwrap_or(DEFAULT_EMAIL_MAX_SIZE);
                    if let Some(chunk) = def.chunk.max_bytes
                        && chunk.bytes() > max
                    {
                        self.error(
                                &path!["chunk", "max_bytes"],
                                format!(
                                    "parts of up to {chunk} cannot be emailed with `max_size` {}: lower `max_bytes` or raise `max_size` of [[deliver]] {}",
                                    super::units::ByteSize(max),
                                    i + 1
                                ),
                            );
                    }
                    for (r, address) in email.recipients.iter().enumerate() {
                        if !looks_like_address(address) {
                            self.error(
                                &path!["deliver", i, "recipients", r],
                                format!("`{address}` is not an email address"),
                            );
                        }
                    }
                }
                DeliverDef::Webhook(hook) => {
                    for (header, text) in &hook.headers {
                        let at = path!["deliver", i, "headers", header.as_str()];
                        self.template(&at, text, &sample, true);
                    }
                    if hook.batch_size.is_some() && def.encrypt.is_some() {
                        self.error(
                            &path!["deliver", i, "batch_size"],
                            "`batch_size` cannot split encrypted parts into records: each sealed part is POSTed whole; remove `batch_size`, or remove `[encrypt]` to send records",
                        );
                    } else if hook.batch_size.is_some()
                        && !webhook_can_split(def.format.kind, def.format.compression())
                    {
                        self.error(
                            &path!["deliver", i, "batch_size"],
                            "`batch_size` needs records a webhook can split: `[format] type` `json` or `ndjson` with compression `none`, `gzip` or `zstd`; remove `batch_size` to POST each part whole, or change the format",
                        );
                    }
                }
                DeliverDef::S3(s3) => {
                    use super::export::S3Encryption;
                    match (s3.encryption, &s3.kms_key_id) {
                        (Some(S3Encryption::AwsKms), None) => self.error(
                            &path!["deliver", i, "encryption"],
                            "`aws:kms` encryption needs `kms_key_id`",
                        ),
                        (Some(S3Encryption::Aes256) | None, Some(_)) => self.error(
                            &path!["deliver", i, "kms_key_id"],
                            "`kms_key_id` needs `encryption = \"aws:kms\"`",
                        ),
                        _ => {}
                    }
                    if s3.immutable && s3.retention.and_then(|r| r.duration()).is_none() {
                        self.error(
                            &path!["deliver", i, "immutable"],
                            "`immutable = true` locks each object for the retention period: set `retention`, such as `7y`",
                        );
                    }
                    if let Some(transition) = &s3.transition {
                        self.s3_transition(i, s3, transition);
                    }
                }
                DeliverDef::Gcs(gcs) => {
                    use super::export::{GCS_STORAGE_CLASSES, one_of};
                    if let Some(class) = &gcs.storage_class
                        && one_of(class, GCS_STORAGE_CLASSES).is_none()
                    {
                        self.error(
                            &path!["deliver", i, "storage_class"],
                            format!(
                                "unknown gcs storage class `{class}`: use one of {}",
                                GCS_STORAGE_CLASSES.join(", ")
                            ),
                        );
                    }
                }
                DeliverDef::Azure(azure) => {
                    use super::export::{AZURE_ACCESS_TIERS, one_of};
                    if let Some(tier) = &azure.access_tier
                        && one_of(tier, AZURE_ACCESS_TIERS).is_none()
                    {
                        self.error(
                            &path!["deliver", i, "access_tier"],
                            format!(
                                "unknown azure access tier `{tier}`: use one of {}",
                                AZURE_ACCESS_TIERS.join(", ")
                            ),
                        );
                    }
                }
                _ => {}
            }
            specs.push(DestinationSpec {
                def: dest.clone(),
                path: path.map(std::sync::Arc::new),
                subject: subject.map(std::sync::Arc::new),
            });
        }
        specs
    }

    fn connection(&mut self, i: usize, dest: &DeliverDef, name: &str) {
        let at = path!["deliver", i, "connection"];
        let wanted = match dest {
            DeliverDef::Email(_) => "smtp",
            other => other.kind_name(),
        };
        match self.daemon.connections.get(name) {
            None => {
                let d = unknown_connection(self.source, &at, name, self.daemon);
                self.diags.push(d);
            }
            Some(found) if found.kind_name() != wanted => self.error(
                &at,
                format!(
                    "connection `{name}` is of type `{}`, but `to = \"{}\"` needs {} `{wanted}` connection",
                    found.kind_name(),
                    dest.kind_name(),
                    if matches!(wanted, "s3" | "sftp" | "smtp" | "azure") { "an" } else { "a" }
                ),
            ),
            Some(_) => {}
        }
    }

    fn template(
        &mut self,
        at: &[Seg],
        text: &str,
        sample: &template::RunVars,
        allow_absolute: bool,
    ) -> Option<Template> {
        let t = match Template::parse(text) {
            Ok(t) => t,
            Err(template::Error::Syntax {
                column,
                line,
                message,
            }) => {
                let unclosed = text
                    .rfind("{{")
                    .filter(|open| !text[*open..].contains("}}"));
                match unclosed {
                    Some(open) => {
                        let column = text[..open].chars().count() + 1;
                        self.error_in_string(
                            at,
                            column,
                            "invalid template: `{{` is not closed by `}}`",
                        );
                    }
                    None => {
                        let column = if line == 1 { column } else { 1 };
                        self.error_in_string(at, column, format!("invalid template: {message}"));
                    }
                }
                return None;
            }
            Err(e) => {
                self.error(at, e.to_string());
                return None;
            }
        };
        match t.render(sample) {
            Ok(rendered) => {
                if let Err(e) = template::confine(&rendered, allow_absolute) {
                    match text.find("..") {
                        Some(dots) => {
                            let column = text[..dots].chars().count() + 1;
                            self.error_in_string(at, column, e.to_string());
                        }
                        None => self.error(at, e.to_string()),
                    }
                    return None;
                }
            }
            Err(template::Error::UnknownVariable { name }) => {
                let column = text
                    .find(&name)
                    .map(|b| text[..b].chars().count() + 1)
                    .unwrap_or(1);
                let mut d_msg = format!("unknown template variable `{name}`");
                if let Some(hint) = did_you_mean(&name, template::VARIABLES.iter().copied()) {
                    d_msg.push_str("; ");
                    d_msg.push_str(&hint);
                } else {
                    d_msg.push_str(&format!("; available: {}", template::VARIABLES.join(", ")));
                }
                self.error_in_string(at, column, d_msg);
                return None;
            }
            Err(e) => {
                self.error(at, e.to_string());
                return None;
            }
        }
        Some(t)
    }
}

fn unknown_connection(
    source: &Source<'_>,
    at: &[Seg],
    name: &str,
    daemon: &DaemonConfig,
) -> Diagnostic {
    let mut d = source.error_at(
        at,
        Part::Value,
        format!("unknown connection `{name}`: define `[connections.{name}]` in exportd.toml"),
    );
    d.help = did_you_mean(name, daemon.connections.keys().map(String::as_str));
    d
}

fn parse_timezone(source: &Source<'_>, at: &[Seg], text: &str) -> Result<Tz, Diagnostic> {
    text.parse::<Tz>().map_err(|_| {
        let mut d = source.error_at(
            at,
            Part::Value,
            format!(
                "unknown time zone `{text}`: use an IANA name such as `America/Chicago` or `UTC`"
            ),
        );
        d.help = did_you_mean(text, chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()));
        d
    })
}

fn looks_like_address(address: &str) -> bool {
    let mut parts = address.rsplitn(2, '@');
    let domain = parts.next().unwrap_or_default();
    let local = parts.next().unwrap_or_default();
    !local.is_empty() && domain.contains('.') && !address.contains(char::is_whitespace)
}

/// `[alerts]` beyond its connection's type: recipients for smtp, a fraction in (0, 1], quotas
/// of connections that exist.
fn alerts_problems(
    source: &Source<'_>,
    alerts: &crate::config::daemon::AlertsConfig,
    config: &DaemonConfig,
) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    if matches!(
        config.connections.get(&alerts.connection),
        Some(ConnectionConfig::Smtp(_))
    ) && alerts.recipients.is_empty()
    {
        diags.push(source.error_at(
            &path!["alerts", "connection"],
            Part::Value,
            format!(
                "alerts through smtp connection `{}` need `recipients = [\"oncall@example.com\"]` in [alerts]",
                alerts.connection
            ),
        ));
    }
    if let Some(fraction) = alerts.quota_alert_fraction
        && !(fraction > 0.0 && fraction <= 1.0)
    {
        diags.push(source.error_at(
            &path!["alerts", "quota_alert_fraction"],
            Part::Value,
            format!("`quota_alert_fraction` {fraction} must be above 0 and at most 1 (0.8 alerts at 80%)"),
        ));
    }
    for name in alerts.quotas.keys() {
        if name != "local" && !config.connections.contains_key(name) {
            diags.push(source.error_at(
                &path!["alerts", "quotas", name.as_str()],
                Part::Key,
                format!(
                    "`{name}` in [alerts] quotas is neither `local` nor a connection: name a [connections.NAME] your exports deliver to"
                ),
            ));
        }
    }
    diags
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::SplitMix as Rng;

    const SEED: &str = r#"
description = "x"
schedule = "daily at 02:00"
timezone = "America/Chicago"
window = "previous_day"
filter = 'outcome = "success" AND revenue > 0 AND state IN ("CA", "TX")'
[fields]
include = ["lead_id", "email", "phone"]
rename = { phone = "phone_1" }
computed = { margin = "revenue - cost" }
mask = { email = "email", ssn = "hash" }
hash_key = { env = "K" }
[format]
type = "csv"
compression = "gzip"
level = 6
[chunk]
max_rows = 100
max_bytes = "10MB"
[[deliver]]
to = "local"
path = "a/{{date}}/{{part}}.{{ext}}"
retention = "90d"
[[deliver]]
to = "email"
connection = "smtp"
recipients = ["a@b.co"]
subject = "Weekly {{week}}"
"#;

    const TOKENS: &[&str] = &[
        "[",
        "]",
        "{",
        "}",
        "\"",
        "'",
        "=",
        "\n",
        "{{",
        "}}",
        "..",
        "[[deliver]]",
        "to = ",
        "\u{0}",
        "é",
        "9999999999999999999999",
        "-",
        ".",
        "#",
        "\\",
        "AND",
        "(",
        ")",
    ];

    /// The personal-data lint's warnings for a definition: `line:col: message`.
    fn lint(fields: &str, to: &str) -> Vec<String> {
        let daemon: DaemonConfig = toml::from_str(
            "[connections.hook]\ntype = \"webhook\"\nurl = \"https://h.example.com\"\n\
             [connections.files]\ntype = \"sftp\"\nhost = \"sftp.example.com\"\nusername = \"u\"\nknown_hosts = \"/k\"\n",
        )
        .unwrap();
        let text = format!("window = \"previous_day\"\n[[deliver]]\n{to}\n{fields}");
        let (spec, diags) = check_export("x", Path::new("x.toml"), &text, &daemon);
        assert!(spec.is_some(), "{diags:?}");
        diags
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
            .collect()
    }

    #[test]
    fn personal_columns_leaving_unmasked_are_warned_about_at_their_key() {
        let webhook = "to = \"webhook\"\nconnection = \"hook\"";
        let sftp = "to = \"sftp\"\nconnection = \"files\"\npath = \"l/{{date}}.csv\"";
        let local = "to = \"local\"\npath = \"l/{{date}}.csv\"";
        // Every field, nothing masked: one warning at the destination, listing the columns.
        let all = lint("", webhook);
        assert_eq!(all.len(), 1, "{all:?}");
        assert!(
            all[0].starts_with("3:6: no [fields] include (every field) lets personal columns go unmasked to `webhook` ([[deliver]] #1): `email`, `first_name`"),
            "{all:?}"
        );
        // Named columns: one warning each, at their entry of `include` (or `computed`); the
        // rename does not hide that `contact` is `contact_name`.
        let named = lint(
            "[fields]\ninclude = [\"lead_id\", \"work_email\", \"contact\", \"email.valid\"]\n\
             rename = { contact = \"contact_name\" }\ncomputed = { ip = \"lower(client_ip)\" }\n",
            sftp,
        );
        assert_eq!(named.len(), 3, "{named:?}");
        assert!(named[0].starts_with("7:23: column `work_email` looks personal and goes unmasked to `sftp` ([[deliver]] #1); mask it (`work_email = \"email\"` in [fields] mask)"), "{named:?}");
        assert!(
            named[1].starts_with("7:37: column `contact` looks personal"),
            "{named:?}"
        );
        assert!(
            named[2].starts_with("9:19: column `ip` looks personal"),
            "{named:?}"
        );
        // Masked, excluded, allowed, or kept on a local disk: nothing to say.
        let quiet = [
            (
                "[fields]\ninclude = [\"email\"]\nmask = { email = \"hash\" }\nhash_key = { env = \"K\" }\n",
                webhook,
            ),
            (
                "[fields]\ninclude = [\"email\", \"state\"]\nexclude = [\"email\"]\n",
                webhook,
            ),
            (
                "[fields]\ninclude = [\"email\"]\nallow_unmasked = [\"email\"]\n",
                sftp,
            ),
            ("[fields]\ninclude = [\"email\"]\n", local),
        ];
        for (fields, to) in quiet {
            assert_eq!(lint(fields, to), Vec::<String>::new(), "{fields}");
        }
    }

    #[test]
    fn s3_transition_must_come_before_retention_and_change_the_class() {
        let daemon: DaemonConfig =
            toml::from_str("[connections.archive]\ntype = \"s3\"\nregion = \"us-east-1\"\n")
                .unwrap();
        let check = |extra: &str| {
            let text = format!(
                "window = \"previous_day\"\n[[deliver]]\nto = \"s3\"\nconnection = \"archive\"\n\
                 bucket = \"b\"\npath = \"d/{{{{date}}}}.csv\"\n{extra}"
            );
            let (spec, diags) = check_export("x", Path::new("x.toml"), &text, &daemon);
            (
                spec,
                diags.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            )
        };
        let good =
            "retention = \"90d\"\ntransition = { after = \"30d\", storage_class = \"GLACIER\" }\n";
        let (spec, diags) = check(good);
        assert!(diags.is_empty(), "{diags:?}");
        let Some(DeliverDef::S3(s3)) = spec.map(|s| s.destinations[0].def.clone()) else {
            panic!("an S3 destination");
        };
        let transition = s3.transition.unwrap();
        assert_eq!(transition.after.to_string(), "30d");
        assert_eq!(transition.storage_class.as_str(), "GLACIER");
        // No retention: objects move and stay.
        assert!(
            check("transition = { after = \"30d\", storage_class = \"DEEP_ARCHIVE\" }\n")
                .1
                .is_empty()
        );

        let (spec, diags) = check(
            "retention = \"30d\"\ntransition = { after = \"30d\", storage_class = \"GLACIER\" }\n",
        );
        assert!(spec.is_none());
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert!(
            diags[0].starts_with("x.toml:8:24: error: `transition.after = \"30d\"` must be shorter than `retention = \"30d\"`"),
            "{diags:?}"
        );
        assert!(diags[0].contains("shorten `after` or lengthen `retention`"));

        let (_, diags) = check(
            "storage_class = \"GLACIER\"\ntransition = { after = \"30d\", storage_class = \"GLACIER\" }\n",
        );
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert!(diags[0].contains("x.toml:8:"), "{diags:?}");
        assert!(
            diags[0].contains("already written in `GLACIER`"),
            "{diags:?}"
        );

        let (_, diags) = check("transition = { after = \"never\", storage_class = \"GLACIER\" }\n");
        assert!(diags[0].contains("never moves anything"), "{diags:?}");

        let (_, diags) = check(
            "immutable = true\nretention = \"7y\"\ntransition = { after = \"30d\", storage_class = \"GLACIER\" }\n",
        );
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert!(diags[0].contains("bucket lifecycle rule"), "{diags:?}");

        let (_, diags) = check("transition = { after = \"30 days\", storage_class = \"COLD\" }\n");
        assert!(
            diags
                .iter()
                .any(|d| d.contains("x.toml:7:24") && d.contains("invalid retention `30 days`")),
            "{diags:?}"
        );
        assert!(
            diags.iter().any(|d| d.contains("x.toml:7:51")
                && d.contains("`COLD` is not a valid `storage_class`")),
            "{diags:?}"
        );
    }

    #[test]
    fn sftp_connections_must_verify_the_server() {
        let check = |extra: &str| {
            let text = format!(
                "[connections.files]\ntype = \"sftp\"\nhost = \"sftp.example.com\"\nusername = \"u\"\n{extra}"
            );
            let (config, diags) = check_daemon(Path::new("exportd.toml"), &text);
            (
                config.is_some(),
                diags.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            )
        };
        let (ok, diags) = check("");
        assert!(!ok);
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert!(diags[0].contains("exportd.toml:1:"), "{diags:?}");
        assert!(
            diags[0].contains("host key would not be verified"),
            "{diags:?}"
        );
        assert!(diags[0].contains("known_hosts"), "{diags:?}");

        let (ok, diags) = check("allow_insecure = true\n");
        assert!(!ok);
        assert!(
            diags[0].contains("only allowed for a server on loopback"),
            "{diags:?}"
        );

        let (ok, diags) = check("host_key_fingerprint = \"MD5:ab:cd\"\n");
        assert!(!ok);
        assert!(diags[0].contains("SHA256:"), "{diags:?}");

        assert!(check("known_hosts = \"/etc/exportd/known_hosts\"\n").0);
        assert!(check("host_key_fingerprint = \"SHA256:abc\"\n").0);
        let loopback = "[connections.t]\ntype = \"sftp\"\nhost = \"127.0.0.1\"\nusername = \"u\"\nallow_insecure = true\n";
        let (config, diags) = check_daemon(Path::new("exportd.toml"), loopback);
        assert!(config.is_some(), "{diags:?}");
    }

    /// The loader must turn any text into diagnostics, never a panic.
    #[test]
    fn loader_never_panics_on_mutated_definitions() {
        let daemon: DaemonConfig =
            toml::from_str("[connections.smtp]\ntype = \"smtp\"\nhost = \"h\"\nfrom = \"a@b.co\"")
                .unwrap();
        let (spec, diags) = check_export("seed", Path::new("seed.toml"), SEED, &daemon);
        assert!(spec.is_some(), "{diags:?}");
        let mut rng = Rng(7);
        for _ in 0..3_000 {
            let mut text: Vec<char> = SEED.chars().collect();
            for _ in 0..=rng.below(4) {
                let at = rng.below(text.len() + 1);
                match rng.below(3) {
                    0 if !text.is_empty() => {
                        let end = (at + rng.below(12)).min(text.len());
                        text.drain(at.min(end)..end);
                    }
                    1 => {
                        let token = TOKENS[rng.below(TOKENS.len())];
                        for (i, c) in token.chars().enumerate() {
                            text.insert((at + i).min(text.len()), c);
                        }
                    }
                    _ => text.truncate(at),
                }
            }
            let text: String = text.into_iter().collect();
            let (spec, diags) = check_export("fuzz", Path::new("fuzz.toml"), &text, &daemon);
            assert!(
                spec.is_some() || diags.iter().any(Diagnostic::is_error),
                "{text}"
            );
            for d in diags {
                assert!(d.line >= 1 && d.column >= 1, "{d}");
            }
        }
    }
}

/// Hostile definitions through proptest: arbitrary text and mutations of a valid definition
/// (including every table that takes secrets and keys) become diagnostics inside the file,
/// never a panic.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    const VALID: &str = r#"
schedule = "daily at 02:00"
timezone = "America/Chicago"
window = "previous_day"
filter = 'outcome = "success" AND revenue > 0'
[fields]
include = ["lead_id", "email"]
mask = { email = "hash" }
hash_key = { env = "K" }
[format]
type = "csv"
compression = "zip"
password = { file = "/run/pw" }
[encrypt]
age_recipients = ["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"]
[chunk]
max_rows = 100
[[deliver]]
to = "local"
path = "a/{{date}}/{{part}}.{{ext}}"
"#;

    const TOKENS: &[&str] = &[
        "[",
        "]",
        "{",
        "}",
        "\"",
        "'",
        "'''",
        "\"\"\"",
        "=",
        "\n",
        "{{",
        "}}",
        "..",
        "../",
        "[[deliver]]",
        "[encrypt]",
        "age1",
        "AGE-SECRET-KEY-1",
        "{ env = \"X\" }",
        "= 1",
        "\u{0}",
        "é",
        "\u{feff}",
        "9999999999999999999999",
        "-",
        ".",
        "#",
        "\\",
        "\\u",
        "1979-05-27T07:32:00Z",
        "inf",
        "nan",
        "true",
    ];

    #[derive(Debug, Clone)]
    enum Edit {
        Delete(usize, usize),
        Insert(usize, &'static str),
        Truncate(usize),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            (any::<usize>(), 1usize..16).prop_map(|(at, len)| Edit::Delete(at, len)),
            (any::<usize>(), prop::sample::select(TOKENS)).prop_map(|(at, t)| Edit::Insert(at, t)),
            any::<usize>().prop_map(Edit::Truncate),
        ]
    }

    fn apply(text: &str, edits: &[Edit]) -> String {
        let mut chars: Vec<char> = text.chars().collect();
        for edit in edits {
            let n = chars.len() + 1;
            match *edit {
                Edit::Delete(at, len) => {
                    let at = at % n;
                    let end = (at + len).min(chars.len());
                    chars.drain(at.min(end)..end);
                }
                Edit::Insert(at, token) => {
                    let at = at % n;
                    chars.splice(at..at, token.chars());
                }
                Edit::Truncate(at) => chars.truncate(at % n),
            }
        }
        chars.into_iter().collect()
    }

    fn daemon() -> DaemonConfig {
        DaemonConfig::default()
    }

    fn check(text: &str) -> Result<(), TestCaseError> {
        let (spec, diags) = check_export("fuzz", Path::new("fuzz.toml"), text, &daemon());
        accepted_or_located(spec.is_some(), &diags, text)
    }

    /// Text is either accepted or refused with an error, and every diagnostic points inside it.
    fn accepted_or_located(
        accepted: bool,
        diags: &[Diagnostic],
        text: &str,
    ) -> Result<(), TestCaseError> {
        prop_assert!(accepted || diags.iter().any(Diagnostic::is_error));
        let lines = text.split('\n').count();
        for d in diags {
            prop_assert!(
                d.line >= 1 && d.line <= lines + 1 && d.column >= 1,
                "{d} outside the {lines}-line text"
            );
        }
        Ok(())
    }

    #[test]
    fn the_seed_is_valid() {
        let (spec, diags) = check_export("seed", Path::new("seed.toml"), VALID, &daemon());
        assert!(spec.is_some(), "{diags:?}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            check(&text)?;
        }

        #[test]
        fn mutated_definitions_never_panic(edits in prop::collection::vec(edit(), 1..6)) {
            check(&apply(VALID, &edits))?;
        }

        #[test]
        fn mutated_daemon_configs_never_panic(edits in prop::collection::vec(edit(), 1..6)) {
            check_daemon_text(&apply(DAEMON, &edits))?;
        }

        #[test]
        fn arbitrary_daemon_configs_never_panic(text in "\\PC{0,200}") {
            check_daemon_text(&text)?;
        }
    }

    /// exportd.toml with every table that takes secrets, endpoints and tokens.
    const DAEMON: &str = r#"
[defaults]
output_dir = "/srv/exports"
[http]
listen = "127.0.0.1:8080"
[access]
url_signing_key = { env = "K" }
[[access.tokens]]
name = "a"
role = "admin"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
[connections.s3]
type = "s3"
endpoint = "https://s3.example.com"
access_key_id = { env = "A" }
secret_access_key = { file = "/run/s" }
[connections.hook]
type = "webhook"
url = "https://hooks.example.com/x"
signing_secret = { credential = "hook" }
[connections.relay]
type = "smtp"
host = "smtp.example.com"
from = "x@example.com"
password = { env = "P" }
"#;

    fn check_daemon_text(text: &str) -> Result<(), TestCaseError> {
        let (config, diags) = check_daemon(Path::new("exportd.toml"), text);
        accepted_or_located(config.is_some(), &diags, text)
    }

    #[test]
    fn the_daemon_seed_is_valid() {
        let (config, diags) = check_daemon(Path::new("exportd.toml"), DAEMON);
        assert!(
            config.is_some() && !diags.iter().any(Diagnostic::is_error),
            "{diags:?}"
        );
    }
}

#[cfg(test)]
mod endpoint_tests {
    use super::*;

    fn problems(connection: &str) -> Vec<String> {
        let text = format!("[connections.store]\n{connection}\n");
        let (_, diags) = check_daemon(Path::new("exportd.toml"), &text);
        diags
            .into_iter()
            .map(|d| format!("{}: {}", d.line, d.message))
            .collect()
    }

    #[test]
    fn plain_http_needs_allow_insecure_and_loopback() {
        let s3 = "type = \"s3\"\nendpoint = ";
        let refused = problems(&format!("{s3}\"http://127.0.0.1:9000\""));
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(refused[0].starts_with("3: ") && refused[0].contains("allow_insecure = true"));
        let remote = problems(&format!(
            "{s3}\"http://s3.example.com\"\nallow_insecure = true"
        ));
        assert!(remote[0].contains("not on loopback"), "{remote:?}");
        assert!(problems(&format!("{s3}\"http://[::1]:9000\"\nallow_insecure = true")).is_empty());
        assert!(problems(&format!("{s3}\"https://s3.example.com\"")).is_empty());
        let azure = "type = \"azure\"\naccount = \"a\"\nendpoint = \"http://localhost:1/a\"";
        assert_eq!(problems(azure).len(), 1);
        let gcs = "type = \"gcs\"\nendpoint = \"ftp://127.0.0.1\"\nallow_insecure = true";
        assert!(problems(gcs)[0].contains("https://"));
    }

    #[test]
    fn alerts_need_recipients_for_smtp_a_sane_fraction_and_known_quota_names() {
        let smtp = "[connections.relay]\ntype = \"smtp\"\nhost = \"smtp.example.com\"\nfrom = \"x@example.com\"\n";
        let check = |alerts: &str| -> Vec<String> {
            let text = format!("{smtp}[alerts]\nconnection = \"relay\"\n{alerts}");
            check_daemon(Path::new("exportd.toml"), &text)
                .1
                .into_iter()
                .filter(|d| d.is_error())
                .map(|d| format!("{}: {}", d.line, d.message))
                .collect()
        };
        assert_eq!(
            check(
                "recipients = [\"a@example.com\"]\nquotas = { local = \"1GB\", relay = 10 }\nquota_alert_fraction = 1.0\n"
            ),
            Vec::<String>::new()
        );
        let missing = check("");
        assert_eq!(missing.len(), 1, "{missing:?}");
        assert!(
            missing[0].starts_with("6: ") && missing[0].contains("recipients"),
            "{missing:?}"
        );
        let wrong = check(
            "recipients = [\"a@example.com\"]\nquota_alert_fraction = 80\nquotas = { archive = \"1TB\" }\n",
        );
        assert_eq!(wrong.len(), 2, "{wrong:?}");
        assert!(
            wrong[0].starts_with("8: ") && wrong[0].contains("at most 1"),
            "{wrong:?}"
        );
        assert!(
            wrong[1].starts_with("9: ") && wrong[1].contains("`archive`"),
            "{wrong:?}"
        );
    }
}
