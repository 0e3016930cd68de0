//! `to = "webhook"`: the run's records POSTed as JSON batches, or each part POSTed whole.
//!
//! **Batches** (`json` and `ndjson` exports, uncompressed, gzip or zstd): the records of each
//! part are read one at a time ([`super::records`]) and sent `batch_size` (default 1000) per
//! request as `{"export":…,"run_id":…,"batch":N,"records":[…]}`, the records with their exact
//! JSON text. A batch never spans two parts, so it goes to its part's rendered `path`; batch
//! numbers run from 1 across the whole run.
//!
//! **Whole parts** (every other format or compression): each part is one request, its bytes
//! streamed from the staged file with the part's `Content-Type`.
//!
//! Every request carries `Idempotency-Key` (SHA-256 of export, run id and batch or part
//! number: the same across retries and re-runs of the same window), `X-Exportd-Signature:
//! sha256=HEX` (HMAC-SHA256 of the body with the connection's `signing_secret`) and
//! `X-Exportd-Timestamp` (Unix seconds of the attempt; not signed). Failures of 408, 429, 5xx,
//! timeouts and refused connections are retried with [`super::RetryPolicy`], honouring
//! `Retry-After`; any other status fails the run at once, naming the batch and the status.
//!
//! Ledger: one row per request, keyed `ENDPOINT#batch-0001` (or `#part-0001`), with the body's
//! size and SHA-256.

use super::records::{Layout, Records};
use super::{Context, Delivered, Error, RetryPolicy, RunUpload, Upload};
use crate::config::daemon::ConnectionConfig;
use crate::config::export::{CompressionKind, FormatKind, WebhookDeliver};
use crate::config::secret::{Secret, SecretRef};
use crate::template::Template;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::time::Duration;

const KIND: &str = "webhook";
/// Records per request when `batch_size` is not set.
pub const DEFAULT_BATCH_SIZE: u64 = 1000;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Header of the body's HMAC-SHA256 signature.
pub const SIGNATURE_HEADER: &str = "x-exportd-signature";
/// Header of the attempt's Unix time.
pub const TIMESTAMP_HEADER: &str = "x-exportd-timestamp";

/// An HTTP endpoint and the settings of one `[[deliver]]` table.
pub struct WebhookDestination {
    connection_name: String,
    url: String,
    has_path: bool,
    signing_secret: Option<SecretRef>,
    secret_headers: Vec<(HeaderName, SecretRef)>,
    header_templates: Vec<(HeaderName, Template)>,
    batch_size: usize,
    client: reqwest::Client,
    policy: RetryPolicy,
}

/// What one run needs resolved once: secrets and rendered headers.
struct Prepared {
    headers: HeaderMap,
    signing_key: Option<Secret>,
    /// Resolved secret values, removed from any response text quoted in an error.
    secrets: Vec<Secret>,
}

/// One request body and what identifies it.
struct Request<'a> {
    endpoint: &'a str,
    /// `batch-0001` or `part-0001`: the ledger key suffix and the idempotency seed.
    label: String,
    /// For messages: `batch 3 (records 2001-3000 of part 1)`.
    description: String,
    body: Body<'a>,
    content_type: &'static str,
    bytes: u64,
    sha256: String,
    signature: Option<String>,
}

enum Body<'a> {
    Memory(bytes::Bytes),
    File(&'a std::path::Path),
}

impl WebhookDestination {
    /// Checks the connection and compiles the header templates; nothing is contacted yet.
    pub fn new(def: &WebhookDeliver, context: &Context) -> Result<WebhookDestination, Error> {
        let connection = match context.connection(&def.connection)? {
            ConnectionConfig::Webhook(hook) => hook,
            other => return Err(super::wrong_connection(&def.connection, other, "webhook")),
        };
        if let Some(problem) = connection.insecure_problem() {
            return Err(Error::Config(format!(
                "connection `{}`: {problem}",
                def.connection
            )));
        }
        let header_name = |name: &str| {
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                Error::Config(format!(
                    "`{name}` is not a valid HTTP header name: use letters, digits and `-`"
                ))
            })
        };
        let secret_headers = connection
            .headers
            .iter()
            .map(|(name, secret)| Ok((header_name(name)?, secret.clone())))
            .collect::<Result<Vec<_>, Error>>()?;
        let header_templates = def
            .headers
            .iter()
            .map(|(name, text)| Ok((header_name(name)?, Template::parse(text)?)))
            .collect::<Result<Vec<_>, Error>>()?;
        let timeout = connection
            .timeout_seconds
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TIMEOUT);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            // A redirected POST would become a GET or lose its body: refuse, name the target.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("exportd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(WebhookDestination {
            connection_name: def.connection.clone(),
            url: connection.url.clone(),
            has_path: def.path.is_some(),
            signing_secret: connection.signing_secret.clone(),
            secret_headers,
            header_templates,
            batch_size: usize::try_from(def.batch_size.unwrap_or(DEFAULT_BATCH_SIZE).max(1))
                .unwrap_or(usize::MAX),
            client,
            policy: RetryPolicy::default(),
        })
    }

    /// The URL of a part: the connection's URL, plus its rendered `path` when there is one.
    fn endpoint(&self, part: &Upload<'_>) -> String {
        if !self.has_path {
            return self.url.clone();
        }
        format!(
            "{}/{}",
            self.url.trim_end_matches('/'),
            part.key.trim_start_matches('/')
        )
    }

    /// A destination that POSTs single JSON messages to the connection's URL, with the same
    /// headers, signature and retries as run deliveries (alerts go through it).
    pub fn for_messages(connection: &str, context: &Context) -> Result<WebhookDestination, Error> {
        let def = WebhookDeliver {
            connection: connection.to_owned(),
            path: None,
            headers: Default::default(),
            batch_size: None,
            retention: None,
        };
        WebhookDestination::new(&def, context)
    }

    /// POSTs one JSON document. `export`, `id` and `label` seed the idempotency key and fill
    /// the `X-Exportd-Export` / `X-Exportd-Run` headers.
    pub fn post_json(
        &self,
        export: &str,
        id: &str,
        label: &str,
        body: &serde_json::Value,
    ) -> Result<(), Error> {
        let prepared = self.prepare(&serde_json::Value::Null, export, id)?;
        let body = serde_json::to_vec(body).unwrap_or_default();
        let request = Request {
            endpoint: &self.url,
            label: label.to_owned(),
            description: format!("message `{label}`"),
            content_type: "application/json",
            bytes: body.len() as u64,
            sha256: hex::encode(Sha256::digest(&body)),
            signature: prepared.signing_key.as_ref().map(|k| sign(k, &body)),
            body: Body::Memory(body.into()),
        };
        self.post(export, id, &prepared, &request).map(|_| ())
    }

    fn prepare(
        &self,
        vars: &serde_json::Value,
        export: &str,
        run_id: &str,
    ) -> Result<Prepared, Error> {
        let mut headers = HeaderMap::new();
        let mut secrets = Vec::new();
        for (name, template) in &self.header_templates {
            let value = template.render(vars)?;
            headers.insert(name.clone(), header_value(name, &value)?);
        }
        for (name, secret) in &self.secret_headers {
            let value = secret.resolve()?;
            let mut header = HeaderValue::from_str(value.expose()).map_err(|_| {
                Error::Config(format!(
                    "the secret of header `{name}` of connection `{}` holds characters a header cannot carry (line breaks, control characters)",
                    self.connection_name
                ))
            })?;
            header.set_sensitive(true);
            headers.insert(name.clone(), header);
            secrets.push(value);
        }
        headers.insert("x-exportd-export", header_value_lossy(export));
        headers.insert("x-exportd-run", header_value_lossy(run_id));
        let signing_key = self
            .signing_secret
            .as_ref()
            .map(SecretRef::resolve)
            .transpose()?;
        if let Some(key) = &signing_key {
            secrets.push(key.clone());
        }
        Ok(Prepared {
            headers,
            signing_key,
            secrets,
        })
    }

    /// Batches of records, each part's records to its endpoint.
    fn send_batches(
        &self,
        run: &RunUpload<'_>,
        prepared: &Prepared,
        layout: Layout,
    ) -> Result<Vec<Delivered>, Error> {
        let mut delivered = Vec::new();
        let mut batch_number = 0u64;
        let mut record = Vec::new();
        let prefix = |batch: u64| {
            format!(
                "{{\"export\":{},\"run_id\":{},\"batch\":{batch},\"records\":[",
                serde_json::Value::from(run.export),
                serde_json::Value::from(run.run_id)
            )
            .into_bytes()
        };
        for (index, part) in run.parts.iter().enumerate() {
            let endpoint = self.endpoint(part);
            let io_error = |source| Error::Io {
                path: part.file.to_path_buf(),
                source,
            };
            let mut records =
                Records::open(part.file, run.compression, layout).map_err(io_error)?;
            let mut first_record = 1u64;
            loop {
                let mut body = prefix(batch_number + 1);
                let mut count = 0u64;
                while count < self.batch_size as u64
                    && records.next_into(&mut record).map_err(io_error)?
                {
                    if count > 0 {
                        body.push(b',');
                    }
                    body.extend_from_slice(&record);
                    count += 1;
                }
                if count == 0 {
                    break;
                }
                body.extend_from_slice(b"]}");
                batch_number += 1;
                let description = format!(
                    "batch {batch_number} (records {first_record}-{} of part {})",
                    first_record + count - 1,
                    index + 1
                );
                first_record += count;
                let request = Request {
                    endpoint: &endpoint,
                    label: format!("batch-{batch_number:04}"),
                    description,
                    content_type: "application/json",
                    bytes: body.len() as u64,
                    sha256: hex::encode(Sha256::digest(&body)),
                    signature: prepared.signing_key.as_ref().map(|k| sign(k, &body)),
                    body: Body::Memory(body.into()),
                };
                delivered.push(self.post(run.export, run.run_id, prepared, &request)?);
            }
        }
        Ok(delivered)
    }

    /// Each part in one request, streamed from its staged file.
    fn send_parts(
        &self,
        run: &RunUpload<'_>,
        prepared: &Prepared,
    ) -> Result<Vec<Delivered>, Error> {
        let content_type = if run.encrypted {
            "application/octet-stream"
        } else {
            whole_part_content_type(run.format, run.compression)
        };
        let mut delivered = Vec::new();
        for (index, part) in run.parts.iter().enumerate() {
            let endpoint = self.endpoint(part);
            let signature = match &prepared.signing_key {
                Some(key) => Some(sign_file(key, part.file).map_err(|source| Error::Io {
                    path: part.file.to_path_buf(),
                    source,
                })?),
                None => None,
            };
            let request = Request {
                endpoint: &endpoint,
                label: format!("part-{:04}", index + 1),
                description: format!("part {} (`{}`)", index + 1, part.key),
                body: Body::File(part.file),
                content_type,
                bytes: part.bytes,
                sha256: part.sha256.to_owned(),
                signature,
            };
            delivered.push(self.post(run.export, run.run_id, prepared, &request)?);
        }
        Ok(delivered)
    }

    /// POSTs one request until it succeeds, fails permanently or runs out of attempts.
    fn post(
        &self,
        export: &str,
        run_id: &str,
        prepared: &Prepared,
        request: &Request<'_>,
    ) -> Result<Delivered, Error> {
        let idempotency_key = idempotency_key(export, run_id, &request.label);
        let what = format!("webhook {} of {export}/{run_id}", request.description);
        super::retry(&self.policy, &what, |_| {
            super::block_on(self.attempt(prepared, request, &idempotency_key))
        })?;
        Ok(Delivered {
            destination: KIND.into(),
            key: format!("{}#{}", request.endpoint, request.label),
            bytes: request.bytes,
            sha256: request.sha256.clone(),
            delivered_at: chrono::Utc::now(),
        })
    }

    async fn attempt(
        &self,
        prepared: &Prepared,
        request: &Request<'_>,
        idempotency_key: &str,
    ) -> Result<(), (Error, Option<Duration>)> {
        let mut headers = prepared.headers.clone();
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static(request.content_type),
        );
        headers.insert("idempotency-key", header_value_lossy(idempotency_key));
        headers.insert(
            TIMESTAMP_HEADER,
            header_value_lossy(&chrono::Utc::now().timestamp().to_string()),
        );
        if let Some(signature) = &request.signature {
            headers.insert(
                SIGNATURE_HEADER,
                header_value_lossy(&format!("sha256={signature}")),
            );
        }
        let body = match &request.body {
            Body::Memory(bytes) => reqwest::Body::from(bytes.clone()),
            Body::File(path) => {
                let file = tokio::fs::File::open(path).await.map_err(|source| {
                    (
                        Error::Io {
                            path: path.to_path_buf(),
                            source,
                        },
                        None,
                    )
                })?;
                headers.insert(
                    reqwest::header::CONTENT_LENGTH,
                    HeaderValue::from(request.bytes),
                );
                reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
                    file,
                    256 * 1024,
                ))
            }
        };
        let failure = |message: String, retriable: bool, retry_after: Option<Duration>| {
            (
                Error::Remote {
                    destination: KIND,
                    key: request.endpoint.to_owned(),
                    message: format!("{}: {message}", request.description),
                    retriable,
                },
                retry_after,
            )
        };
        let response = self
            .client
            .post(request.endpoint)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                let retriable = e.is_timeout() || e.is_connect() || e.is_request() || e.is_body();
                failure(
                    format!(
                        "{}; check that the endpoint is reachable and `timeout_seconds` of connection `{}` is long enough",
                        without_url(&e),
                        self.connection_name
                    ),
                    retriable,
                    None,
                )
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.unwrap_or_default();
        let excerpt = redact(&excerpt(&text), &prepared.secrets);
        let retriable = matches!(status.as_u16(), 408 | 429) || status.is_server_error();
        let advice = match status.as_u16() {
            401 | 403 => format!(
                "the endpoint refused the credentials: check `headers` of connection `{}`",
                self.connection_name
            ),
            300..=399 => format!(
                "the endpoint redirects to `{}`: set that URL in connection `{}`",
                location.unwrap_or_default(),
                self.connection_name
            ),
            _ if retriable => "the endpoint may recover: re-run the export then (it sends the same idempotency keys)".into(),
            _ => "the endpoint rejected the request; fix the receiver or the export, then re-run (the same idempotency keys are sent)".into(),
        };
        let body = if excerpt.is_empty() {
            String::new()
        } else {
            format!(" ({excerpt})")
        };
        Err(failure(
            format!("HTTP {status}{body}; {advice}"),
            retriable,
            retry_after,
        ))
    }
}

impl super::Destination for WebhookDestination {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn takes_whole_runs(&self) -> bool {
        true
    }

    fn send_run(&self, run: &RunUpload<'_>) -> Result<Vec<Delivered>, Error> {
        let prepared = self.prepare(run.vars, run.export, run.run_id)?;
        let format = serde_json::from_value::<FormatKind>(run.format.into()).ok();
        let compression = serde_json::from_value::<CompressionKind>(run.compression.into()).ok();
        match (format, compression) {
            // Sealed parts are opaque: they go whole, still encrypted.
            (Some(format), Some(compression))
                if !run.encrypted
                    && crate::config::validate::webhook_can_split(format, compression) =>
            {
                let layout = if format == FormatKind::Ndjson {
                    Layout::Lines
                } else {
                    Layout::Array
                };
                self.send_batches(run, &prepared, layout)
            }
            _ => self.send_parts(run, &prepared),
        }
    }
}

/// Stable across retries and re-runs of the same window, distinct per batch, export and run.
pub fn idempotency_key(export: &str, run_id: &str, label: &str) -> String {
    hex::encode(Sha256::digest(format!("{export}\n{run_id}\n{label}")))
}

/// HMAC-SHA256 of `body` with `key`, hex.
fn sign(key: &Secret, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.expose().as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn sign_file(key: &Secret, path: &std::path::Path) -> std::io::Result<String> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.expose().as_bytes())
        .expect("HMAC takes keys of any length");
    let mut file = std::fs::File::open(path)?;
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        mac.update(&buffer[..n]);
    }
    Ok(hex::encode(mac.finalize().into_bytes()))
}

/// `Retry-After` as seconds or an HTTP date.
fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or_default(),
    )
}

/// The `Content-Type` of a part POSTed whole: its compression's, or else its format's.
fn whole_part_content_type(format: &str, compression: &str) -> &'static str {
    match compression {
        "gzip" | "tar.gz" => "application/gzip",
        "zstd" => "application/zstd",
        "zip" => "application/zip",
        "7z" => "application/x-7z-compressed",
        _ => match format {
            "csv" => "text/csv",
            "tsv" => "text/tab-separated-values",
            "json" => "application/json",
            "ndjson" => "application/x-ndjson",
            "xml" => "application/xml",
            "parquet" => "application/vnd.apache.parquet",
            _ => "application/octet-stream",
        },
    }
}

fn header_value(name: &HeaderName, value: &str) -> Result<HeaderValue, Error> {
    HeaderValue::from_str(value).map_err(|_| {
        Error::Config(format!(
            "header `{name}` rendered to a value with line breaks or control characters: fix its template"
        ))
    })
}

/// Export names and run ids are `[A-Za-z0-9_-]`, and keys hex: always valid header values.
fn header_value_lossy(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// A reqwest error without its URL (which is already in the message's key).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text
            .replace(&format!(" ({url})"), "")
            .replace(url.as_str(), "the endpoint");
    }
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        text.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    text
}

/// The start of a response body, on one line.
fn excerpt(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    flat.trim().to_owned()
}

/// A receiver that echoes a request back must not put a secret into our error messages.
fn redact(text: &str, secrets: &[Secret]) -> String {
    secrets
        .iter()
        .filter(|s| s.expose().len() >= 4)
        .fold(text.to_owned(), |t, s| t.replace(s.expose(), "***"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_as_seconds_or_an_http_date() {
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:27:58Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(parse_retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn idempotency_keys_depend_on_export_run_and_batch_only() {
        let a = idempotency_key("daily", "20240116T020000Z", "batch-0001");
        assert_eq!(
            a,
            idempotency_key("daily", "20240116T020000Z", "batch-0001")
        );
        assert_ne!(
            a,
            idempotency_key("daily", "20240116T020000Z", "batch-0002")
        );
        assert_ne!(
            a,
            idempotency_key("daily", "20240117T020000Z", "batch-0001")
        );
        assert_ne!(
            a,
            idempotency_key("weekly", "20240116T020000Z", "batch-0001")
        );
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn signatures_are_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        let key = Secret::for_tests("Jefe");
        assert_eq!(
            sign(&key, b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn echoed_secrets_are_redacted_from_response_excerpts() {
        let secrets = [Secret::for_tests("Bearer s3cr3t")];
        assert_eq!(
            redact(&excerpt("bad header:\nBearer s3cr3t\n"), &secrets),
            "bad header: ***"
        );
    }

    #[test]
    fn whole_parts_are_typed_by_compression_then_format() {
        assert_eq!(whole_part_content_type("csv", "none"), "text/csv");
        assert_eq!(whole_part_content_type("csv", "gzip"), "application/gzip");
        assert_eq!(whole_part_content_type("ndjson", "zip"), "application/zip");
        assert_eq!(whole_part_content_type("xml", "none"), "application/xml");
    }
}
