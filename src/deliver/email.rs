//! `to = "email"`: one message per run, every part attached, through an SMTP relay.
//!
//! A run is sent whole or not at all: the size check (`max_size`, attachment bytes before
//! MIME encoding) happens before the relay is contacted, and the message goes out in one SMTP
//! transaction. With `zip_password`, the parts travel inside one AES-256 zip instead
//! (`EXPORT_RUNID.zip`), which `unzip -P`, 7-Zip and Windows' tools open.
//!
//! Transient failures (4xx replies, refused or dropped connections, timeouts) are retried with
//! [`super::RetryPolicy`]; 5xx replies (a wrong password, a refused recipient) and TLS
//! failures are permanent. A relay that accepted the data but dropped the connection before
//! its final reply can, as with any SMTP client, receive the message twice.
//!
//! Ledger: one row per attachment, keyed `mailto:RECIPIENTS#ATTACHMENT` (recipients in the
//! order written, comma-separated), so the same run to other recipients is another row.

use super::{Context, Delivered, Error, RetryPolicy, RunUpload, Upload};
use crate::config::daemon::{ConnectionConfig, SmtpConnection, SmtpTls};
use crate::config::export::EmailDeliver;
use crate::config::secret::SecretRef;
use crate::template::Template;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::time::Duration;

const KIND: &str = "email";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// An SMTP relay and the recipients of one `[[deliver]]` table.
pub struct EmailDestination {
    connection_name: String,
    connection: SmtpConnection,
    from: Mailbox,
    recipients: Vec<Mailbox>,
    subject: Option<Template>,
    max_size: u64,
    zip_password: Option<SecretRef>,
    policy: RetryPolicy,
}

/// One file as it is attached.
struct Attached {
    name: String,
    bytes: Vec<u8>,
    sha256: String,
}

impl EmailDestination {
    /// Checks the connection and addresses; nothing is contacted yet.
    pub fn new(def: &EmailDeliver, context: &Context) -> Result<EmailDestination, Error> {
        let connection = match context.connection(&def.connection)? {
            ConnectionConfig::Smtp(smtp) => smtp.clone(),
            other => return Err(super::wrong_connection(&def.connection, other, "email")),
        };
        if let Some(problem) = connection.insecure_problem() {
            return Err(Error::Config(format!(
                "connection `{}`: {problem}",
                def.connection
            )));
        }
        let address = |text: &str, what: &str| {
            text.parse::<Mailbox>().map_err(|e| {
                Error::Config(format!(
                    "{what} `{text}` is not a valid email address ({e}): correct it"
                ))
            })
        };
        let from = address(
            &connection.from,
            &format!("`from` of connection `{}`", def.connection),
        )?;
        let recipients = def
            .recipients
            .iter()
            .map(|r| address(r, "recipient"))
            .collect::<Result<Vec<_>, _>>()?;
        if recipients.is_empty() {
            return Err(Error::Config(
                "`to = \"email\"` needs at least one address in `recipients`".into(),
            ));
        }
        let subject = def
            .subject
            .as_deref()
            .map(Template::parse)
            .transpose()
            .map_err(Error::Path)?;
        Ok(EmailDestination {
            connection_name: def.connection.clone(),
            connection,
            from,
            recipients,
            subject,
            max_size: def
                .max_size
                .map(|s| s.bytes())
                .unwrap_or(crate::config::validate::DEFAULT_EMAIL_MAX_SIZE),
            zip_password: def.zip_password.clone(),
            policy: RetryPolicy::default(),
        })
    }

    /// A sender of plain-text messages through `connection` to `recipients` (alerts), with
    /// the same TLS, login and retries as run deliveries.
    pub fn for_messages(
        connection: &str,
        recipients: &[String],
        context: &Context,
    ) -> Result<EmailDestination, Error> {
        let def = EmailDeliver {
            connection: connection.to_owned(),
            recipients: recipients.to_vec(),
            subject: None,
            path: None,
            max_size: None,
            zip_password: None,
            retention: None,
        };
        EmailDestination::new(&def, context)
    }

    /// Sends one plain-text message to the recipients.
    pub fn send_text(&self, subject: &str, body: &str) -> Result<(), Error> {
        let mut builder = Message::builder().from(self.from.clone()).subject(subject);
        for recipient in &self.recipients {
            builder = builder.to(recipient.clone());
        }
        let message = builder
            .singlepart(SinglePart::plain(body.to_owned()))
            .map_err(|e| Error::Config(format!("cannot build the email `{subject}`: {e}")))?;
        let raw = message.formatted();
        let what = format!("email `{subject}`");
        super::retry(&self.policy, &what, |_| {
            self.send_once(message.envelope(), &raw)
                .map_err(|e| (e, None))
        })
    }

    /// The ledger key of one attachment.
    fn ledger_key(&self, attachment: &str) -> String {
        let to: Vec<String> = self
            .recipients
            .iter()
            .map(|m| m.email.to_string())
            .collect();
        format!("mailto:{}#{attachment}", to.join(","))
    }

    /// Refuses a run whose attachments cannot be sent, before anything is read or sent.
    fn check_size(&self, run: &RunUpload<'_>, bytes: u64, what: &str) -> Result<(), Error> {
        if bytes <= self.max_size {
            return Ok(());
        }
        Err(Error::TooLarge(format!(
            "run `{}/{}` is too large to email: {what} {}, more than `max_size` {} of the email destination; nothing was sent. Raise `max_size` if the relay accepts larger messages, narrow the export (filter, fields, compression), or deliver it to an object store instead",
            run.export,
            run.run_id,
            crate::config::units::ByteSize(bytes),
            crate::config::units::ByteSize(self.max_size),
        )))
    }

    /// The parts as attachments: each under its own name, or all in one AES-256 zip.
    fn attachments(&self, run: &RunUpload<'_>) -> Result<Vec<Attached>, Error> {
        let total: u64 = run.parts.iter().map(|p| p.bytes).sum();
        self.check_size(run, total, "its parts total")?;
        match &self.zip_password {
            None => run
                .parts
                .iter()
                .map(|part| {
                    Ok(Attached {
                        name: attachment_name(part.key),
                        bytes: read_part(part)?,
                        sha256: part.sha256.to_owned(),
                    })
                })
                .collect(),
            Some(password) => {
                let password = password.resolve()?;
                let name = format!("{}_{}.zip", run.export, run.run_id);
                let bytes = encrypted_zip(run, password.expose()).map_err(|e| Error::Io {
                    path: name.clone().into(),
                    source: e,
                })?;
                self.check_size(run, bytes.len() as u64, "its encrypted zip is")?;
                let sha256 = hex::encode(Sha256::digest(&bytes));
                Ok(vec![Attached {
                    name,
                    bytes,
                    sha256,
                }])
            }
        }
    }

    /// The message, which takes the attachments' bytes over (a run can be 25 MB: no copies).
    fn message(&self, run: &RunUpload<'_>, attachments: Vec<Attached>) -> Result<Message, Error> {
        let subject = match &self.subject {
            Some(template) => template.render(run.vars)?,
            None => format!("exportd: {} ({})", run.export, run.run_id),
        };
        let mut builder = Message::builder().from(self.from.clone()).subject(subject);
        for recipient in &self.recipients {
            builder = builder.to(recipient.clone());
        }
        let zipped = self
            .zip_password
            .is_some()
            .then(|| attachments[0].name.as_str());
        let mut body = MultiPart::mixed().singlepart(SinglePart::plain(summary(run, zipped)));
        for attached in attachments {
            let content_type = content_type(&attached.name);
            body =
                body.singlepart(Attachment::new(attached.name).body(attached.bytes, content_type));
        }
        builder.multipart(body).map_err(|e| {
            Error::Config(format!(
                "cannot build the email of run `{}/{}`: {e}",
                run.export, run.run_id
            ))
        })
    }

    fn tls_parameters(&self) -> Result<TlsParameters, Error> {
        let mut builder = TlsParameters::builder(self.connection.host.clone());
        if let Some(ca_file) = &self.connection.ca_file {
            let pem = std::fs::read(ca_file).map_err(|e| {
                Error::Config(format!(
                    "cannot read `ca_file` `{}` of connection `{}`: {e}",
                    ca_file.display(),
                    self.connection_name
                ))
            })?;
            let certificate = Certificate::from_pem(&pem).map_err(|e| {
                Error::Config(format!(
                    "`ca_file` `{}` of connection `{}` is not a PEM certificate ({e}): point it at the CA's certificate",
                    ca_file.display(),
                    self.connection_name
                ))
            })?;
            builder = builder.add_root_certificate(certificate);
        }
        builder.build().map_err(|e| {
            Error::Config(format!(
                "cannot set up TLS for connection `{}`: {e}",
                self.connection_name
            ))
        })
    }

    /// The transport, built inside the IO runtime (lettre's pool spawns a task).
    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, Error> {
        let c = &self.connection;
        let tls = match c.tls {
            SmtpTls::Starttls => Tls::Required(self.tls_parameters()?),
            SmtpTls::Implicit => Tls::Wrapper(self.tls_parameters()?),
            SmtpTls::None => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(c.host.as_str())
            .port(c.port)
            .tls(tls)
            .timeout(Some(
                c.timeout_seconds
                    .map(Duration::from_secs)
                    .unwrap_or(DEFAULT_TIMEOUT),
            ));
        if let Some(username) = &c.username {
            let password = match &c.password {
                Some(secret) => secret.resolve()?.expose().to_owned(),
                None => String::new(),
            };
            builder = builder.credentials(Credentials::new(username.clone(), password));
        }
        Ok(builder.build())
    }

    /// Sends the formatted message once; the error says whether trying again may help.
    fn send_once(&self, envelope: &lettre::address::Envelope, raw: &[u8]) -> Result<(), Error> {
        super::block_on(async {
            let transport = self.transport()?;
            transport
                .send_raw(envelope, raw)
                .await
                .map(|_| ())
                .map_err(|e| self.smtp_error(&e))
        })
    }

    fn smtp_error(&self, e: &lettre::transport::smtp::Error) -> Error {
        let c = &self.connection;
        let code = e.status().map(|c| c.to_string());
        let hint = match code.as_deref() {
            Some("530" | "534" | "535" | "538") => format!(
                "the relay refused the login: check `username` and `password` of connection `{}`",
                self.connection_name
            ),
            Some(c) if c.starts_with('5') => {
                "the relay refused the message: check `recipients`, `from` and the relay's size limit".into()
            }
            _ if e.is_tls() => format!(
                "TLS with `{}` failed: check `tls` (starttls on 587, implicit on 465) and, for a private CA, `ca_file` of connection `{}`",
                c.host, self.connection_name
            ),
            _ if e.is_transient() => "the relay asked to try again later".into(),
            _ => format!(
                "check that `{}:{}` is reachable and `tls` of connection `{}` matches the relay",
                c.host, c.port, self.connection_name
            ),
        };
        Error::Remote {
            destination: KIND,
            key: format!("{}:{}", c.host, c.port),
            message: format!("{e}; {hint}"),
            retriable: smtp_retriable(e),
        }
    }
}

/// 4xx replies, connection and network failures, timeouts: the next attempt may work. 5xx
/// replies (a wrong password, a refused recipient), TLS and client errors will not.
fn smtp_retriable(e: &lettre::transport::smtp::Error) -> bool {
    if e.is_transient() || e.is_timeout() {
        return true;
    }
    !(e.is_permanent() || e.is_tls() || e.is_client() || e.is_response())
}

impl super::Destination for EmailDestination {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn takes_whole_runs(&self) -> bool {
        true
    }

    fn send_run(&self, run: &RunUpload<'_>) -> Result<Vec<Delivered>, Error> {
        let attachments = self.attachments(run)?;
        let sent: Vec<(String, u64, String)> = attachments
            .iter()
            .map(|a| (a.name.clone(), a.bytes.len() as u64, a.sha256.clone()))
            .collect();
        let message = self.message(run, attachments)?;
        let raw = message.formatted();
        let envelope = message.envelope().clone();
        drop(message);
        let what = format!("email of {}/{}", run.export, run.run_id);
        super::retry(&self.policy, &what, |_| {
            self.send_once(&envelope, &raw).map_err(|e| (e, None))
        })?;
        let delivered_at = chrono::Utc::now();
        Ok(sent
            .into_iter()
            .map(|(name, bytes, sha256)| Delivered {
                destination: KIND.into(),
                key: self.ledger_key(&name),
                bytes,
                sha256,
                delivered_at,
            })
            .collect())
    }
}

/// The file name of an attachment: the last segment of the part's rendered name.
fn attachment_name(key: &str) -> String {
    key.rsplit('/').next().unwrap_or(key).to_owned()
}

fn read_part(part: &Upload<'_>) -> Result<Vec<u8>, Error> {
    std::fs::read(part.file).map_err(|source| Error::Io {
        path: part.file.to_path_buf(),
        source,
    })
}

/// Every part in one AES-256 zip, in memory (bounded by `max_size`). Parts that are already
/// compressed are stored, not deflated again.
fn encrypted_zip(run: &RunUpload<'_>, password: &str) -> std::io::Result<Vec<u8>> {
    use zip::write::SimpleFileOptions;
    let method = if run.compression == "none" {
        zip::CompressionMethod::Deflated
    } else {
        zip::CompressionMethod::Stored
    };
    let options = SimpleFileOptions::default()
        .compression_method(method)
        .large_file(true)
        .unix_permissions(0o644)
        .with_aes_encryption(zip::AesMode::Aes256, password);
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let mut buffer = vec![0u8; 256 * 1024];
    for part in &run.parts {
        zip.start_file(attachment_name(part.key), options)
            .map_err(std::io::Error::other)?;
        let mut file = std::fs::File::open(part.file)?;
        loop {
            let n = file.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            zip.write_all(&buffer[..n])?;
        }
    }
    Ok(zip.finish().map_err(std::io::Error::other)?.into_inner())
}

fn content_type(name: &str) -> ContentType {
    let lower = name.to_ascii_lowercase();
    let mime = [
        (".csv", "text/csv"),
        (".tsv", "text/tab-separated-values"),
        (".ndjson", "application/x-ndjson"),
        (".json", "application/json"),
        (".xml", "application/xml"),
        (".gz", "application/gzip"),
        (".zst", "application/zstd"),
        (".zip", "application/zip"),
        (".7z", "application/x-7z-compressed"),
        (".parquet", "application/vnd.apache.parquet"),
    ]
    .iter()
    .find(|(ext, _)| lower.ends_with(ext))
    .map_or("application/octet-stream", |(_, mime)| mime);
    ContentType::parse(mime).unwrap_or(ContentType::TEXT_PLAIN)
}

/// The plain-text body: what the run exported, from its manifest.
fn summary(run: &RunUpload<'_>, zipped: Option<&str>) -> String {
    let m = run.manifest;
    let text = |key: &str| m[key].as_str().unwrap_or("").to_owned();
    let start = m["window_start"].as_str().unwrap_or("(all records)");
    let parts = m["parts"].as_array().cloned().unwrap_or_default();
    let mut body = format!(
        "exportd export `{}`, run {}\n\nWindow: {start} to {}\nRows:   {}\nParts:  {}\n\n",
        run.export,
        run.run_id,
        text("window_end"),
        m["total_rows"],
        parts.len(),
    );
    for part in &parts {
        body.push_str(&format!(
            "  {}  {} rows  {} bytes\n    sha256 {}\n",
            part["name"].as_str().unwrap_or(""),
            part["rows"],
            part["bytes"],
            part["sha256"].as_str().unwrap_or(""),
        ));
    }
    if let Some(name) = zipped {
        body.push_str(&format!(
            "\nThe parts are in the AES-256 encrypted zip `{name}`; its password is shared separately.\n"
        ));
    }
    body.push_str(&format!(
        "\nSent by exportd {}.\n",
        env!("CARGO_PKG_VERSION")
    ));
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachments_are_named_after_the_last_path_segment_and_typed_by_extension() {
        assert_eq!(attachment_name("a/b/leads_001.csv.gz"), "leads_001.csv.gz");
        assert_eq!(attachment_name("leads.csv"), "leads.csv");
        assert_eq!(
            content_type("x.CSV"),
            ContentType::parse("text/csv").unwrap()
        );
        assert_eq!(
            content_type("x.ndjson.gz"),
            ContentType::parse("application/gzip").unwrap()
        );
        assert_eq!(
            content_type("x.bin"),
            ContentType::parse("application/octet-stream").unwrap()
        );
    }

    #[test]
    fn the_body_lists_window_rows_and_every_part_with_its_checksum() {
        let manifest = serde_json::json!({
            "window_start": "2024-01-15T00:00:00+00:00",
            "window_end": "2024-01-16T00:00:00+00:00",
            "total_rows": 3,
            "parts": [{"name": "leads.csv", "rows": 3, "bytes": 120, "sha256": "ab12"}],
        });
        let vars = serde_json::json!({});
        let run = RunUpload {
            export: "daily",
            run_id: "20240116T020000Z",
            parts: Vec::new(),
            rows: Vec::new(),
            manifest: &manifest,
            vars: &vars,
            format: "csv",
            compression: "none",
            encrypted: false,
        };
        let body = summary(&run, Some("daily_20240116T020000Z.zip"));
        for expected in [
            "export `daily`, run 20240116T020000Z",
            "Window: 2024-01-15T00:00:00+00:00 to 2024-01-16T00:00:00+00:00",
            "Rows:   3",
            "Parts:  1",
            "leads.csv  3 rows  120 bytes",
            "sha256 ab12",
            "encrypted zip `daily_20240116T020000Z.zip`",
        ] {
            assert!(body.contains(expected), "{expected} not in:\n{body}");
        }
    }
}
