//! `to = "s3"` and `to = "azure"`: one destination over `object_store`, with a small builder
//! per cloud that turns the `[[deliver]]` table and its connection into a store. (`to = "gcs"`
//! is in [`super::gcs`]: object_store's GCS client speaks the XML API, which the emulator
//! cannot test; it shares this module's chunking, transport rule and error classes.)
//!
//! Small files go up in one PUT. Larger ones stream as a multipart upload: the file is read
//! [`PART_SIZE`] at a time and at most [`MAX_PARTS_IN_FLIGHT`] parts are on the wire, so memory
//! stays near `(MAX_PARTS_IN_FLIGHT + 1) × PART_SIZE` whatever the file size. An upload that
//! fails is aborted, so no half-written multipart upload is left behind, and the object only
//! appears when the upload completes.
//!
//! Every endpoint uses TLS unless the connection says `allow_insecure = true` and the endpoint is
//! on loopback ([`crate::config::daemon::endpoint_problem`], shared with `exportd validate`).

use super::{Delivered, Destination, Error, ObjectInfo, Upload, block_on};
use crate::config::daemon::{AzureConnection, S3Connection, endpoint_problem};
use crate::config::export::{AZURE_ACCESS_TIERS, AzureDeliver, S3Deliver, S3Encryption, one_of};
use bytes::{Bytes, BytesMut};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::MicrosoftAzureBuilder;
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, Attributes, BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt,
    PutMultipartOptions, PutOptions, PutPayload, RetryConfig, WriteMultipart,
};
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

/// Size of each multipart part. S3 needs at least 5 MiB per part (but the last) and allows
/// 10,000 parts, so 16 MiB parts cover objects up to 156 GiB.
pub const PART_SIZE: usize = 16 << 20;
/// Parts uploaded at once: enough to keep a fast link busy, few enough to bound memory.
pub const MAX_PARTS_IN_FLIGHT: usize = 4;
/// Files up to this size go up in one request.
pub const SINGLE_PUT_MAX: u64 = PART_SIZE as u64;
/// `read_small` refuses anything bigger: it is meant for manifests.
const SMALL_OBJECT_MAX: u64 = 64 << 20;

/// An object-store destination.
#[derive(Debug)]
pub struct ObjectDestination {
    kind: &'static str,
    /// Reads, stats and deletes.
    store: Arc<dyn ObjectStore>,
    /// Uploads: the same store, or for S3 Object Lock one that sends the lock headers.
    writer: Arc<dyn ObjectStore>,
    /// Storage class or access tier of every object written.
    attributes: Attributes,
    /// Presigns download URLs (S3 only: object_store cannot sign Azure SAS URLs with a key).
    signer: Option<Arc<object_store::aws::AmazonS3>>,
    /// S3 only: what builds the clients that move objects between storage classes, and those
    /// built so far, by class.
    transitions: Option<Transitions>,
}

/// object_store cannot set a storage class on a copy, so each target class gets its own
/// client whose every request carries `x-amz-storage-class` (like the Object Lock writer).
#[derive(Debug)]
struct Transitions {
    builder: AmazonS3Builder,
    options: ClientOptions,
    clients: std::sync::Mutex<std::collections::HashMap<String, Arc<dyn ObjectStore>>>,
}

impl Transitions {
    fn client(&self, storage_class: &str) -> Result<Arc<dyn ObjectStore>, Error> {
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(client) = clients.get(storage_class) {
            return Ok(client.clone());
        }
        let mut headers = object_store::HeaderMap::new();
        let value = object_store::HeaderValue::from_str(storage_class)
            .map_err(|_| Error::Config(format!("invalid storage class `{storage_class}`")))?;
        headers.insert("x-amz-storage-class", value);
        let client: Arc<dyn ObjectStore> = Arc::new(
            self.builder
                .clone()
                .with_client_options(self.options.clone().with_default_headers(headers))
                .build()
                .map_err(|e| build_error("s3", e))?,
        );
        clients.insert(storage_class.to_owned(), client.clone());
        Ok(client)
    }
}

impl ObjectDestination {
    /// `to = "s3"` through an `s3` connection.
    pub fn s3(def: &S3Deliver, connection: &S3Connection) -> Result<ObjectDestination, Error> {
        let options = client_options(connection.endpoint.as_deref(), connection.allow_insecure)?;
        // The standard chain (environment, web identity, ECS, EC2 instance metadata) unless
        // the connection names its keys.
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&def.bucket)
            .with_virtual_hosted_style_request(!connection.path_style)
            .with_retry(retry_config());
        if let Some(region) = &connection.region {
            builder = builder.with_region(region);
        }
        if let Some(endpoint) = &connection.endpoint {
            builder = builder.with_endpoint(if connection.path_style {
                endpoint.clone()
            } else {
                virtual_hosted_endpoint(endpoint, &def.bucket)
            });
        }
        if let Some(key_id) = &connection.access_key_id {
            builder = builder.with_access_key_id(key_id.resolve()?.expose());
            let secret = connection.secret_access_key.as_ref().ok_or_else(|| {
                Error::Config("`access_key_id` needs `secret_access_key` in the connection".into())
            })?;
            builder = builder.with_secret_access_key(secret.resolve()?.expose());
            if let Some(token) = &connection.session_token {
                builder = builder.with_token(token.resolve()?.expose());
            }
        }
        match def.encryption {
            Some(S3Encryption::Aes256) => {
                // The key type of this setting is private to object_store; its name is not.
                let key: AmazonS3ConfigKey = "aws_server_side_encryption"
                    .parse()
                    .map_err(|e| build_error("s3", e))?;
                builder = builder.with_config(key, "AES256");
            }
            Some(S3Encryption::AwsKms) => {
                let key = def.kms_key_id.as_deref().ok_or_else(|| {
                    Error::Config("`encryption = \"aws:kms\"` needs `kms_key_id`".into())
                })?;
                builder = builder.with_sse_kms_encryption(key);
            }
            None => {}
        }
        let mut attributes = Attributes::new();
        if let Some(class) = def.storage_class {
            attributes.insert(Attribute::StorageClass, class.as_str().into());
        }
        let s3 = Arc::new(
            builder
                .clone()
                .with_client_options(options.clone())
                .build()
                .map_err(|e| build_error("s3", e))?,
        );
        let store: Arc<dyn ObjectStore> = s3.clone();
        let writer = match object_lock_headers(def)? {
            // object_store has no per-request headers, so the lock goes on a second client
            // whose every request carries it; only uploads use that client.
            Some(headers) => Arc::new(
                builder
                    .clone()
                    // S3 requires a checksum on every request that sets a retention.
                    .with_checksum_algorithm(object_store::aws::Checksum::SHA256)
                    .with_client_options(options.clone().with_default_headers(headers))
                    .build()
                    .map_err(|e| build_error("s3", e))?,
            ) as Arc<dyn ObjectStore>,
            None => store.clone(),
        };
        Ok(ObjectDestination {
            kind: "s3",
            store,
            writer,
            attributes,
            signer: Some(s3),
            transitions: Some(Transitions {
                builder,
                options,
                clients: Default::default(),
            }),
        })
    }

    /// `to = "azure"` through an `azure` connection.
    pub fn azure(
        def: &AzureDeliver,
        connection: &AzureConnection,
    ) -> Result<ObjectDestination, Error> {
        let options = client_options(connection.endpoint.as_deref(), connection.allow_insecure)?;
        let mut builder = MicrosoftAzureBuilder::from_env()
            // The emulator mode (`AZURE_STORAGE_USE_EMULATOR`) would turn plain HTTP on behind
            // the transport rule's back; Azurite is reached through `endpoint` instead.
            .with_use_emulator(false)
            .with_account(&connection.account)
            .with_container_name(&def.container)
            .with_retry(retry_config())
            .with_client_options(options);
        if let Some(key) = &connection.access_key {
            builder = builder.with_access_key(key.resolve()?.expose());
        }
        if let Some(endpoint) = &connection.endpoint {
            builder = builder.with_endpoint(endpoint.trim_end_matches('/').to_owned());
        }
        let mut attributes = Attributes::new();
        if let Some(tier) = &def.access_tier {
            let tier = one_of(tier, AZURE_ACCESS_TIERS).ok_or_else(|| {
                Error::Config(format!(
                    "azure `access_tier = \"{tier}\"` is not one of {}",
                    AZURE_ACCESS_TIERS.join(", ")
                ))
            })?;
            attributes.insert(Attribute::StorageClass, tier.into());
        }
        let store: Arc<dyn ObjectStore> =
            Arc::new(builder.build().map_err(|e| build_error("azure", e))?);
        Ok(ObjectDestination {
            kind: "azure",
            writer: store.clone(),
            store,
            attributes,
            signer: None,
            transitions: None,
        })
    }

    fn path(&self, key: &str) -> Result<ObjectPath, Error> {
        ObjectPath::parse(key).map_err(|e| {
            Error::Config(format!(
                "{}: `{key}` is not a valid object name ({e}); change the destination's `path`",
                self.kind
            ))
        })
    }

    fn remote(&self, key: &str, error: &object_store::Error) -> Error {
        let (message, retriable) = classify(error);
        Error::Remote {
            destination: self.kind,
            key: key.to_owned(),
            message,
            retriable,
        }
    }

    async fn upload(&self, path: &ObjectPath, upload: &Upload<'_>) -> Result<(), Error> {
        let io = |source| Error::Io {
            path: upload.file.to_path_buf(),
            source,
        };
        let mut file = std::fs::File::open(upload.file).map_err(io)?;
        if upload.bytes <= SINGLE_PUT_MAX {
            let mut data = Vec::with_capacity(upload.bytes as usize);
            file.read_to_end(&mut data).map_err(io)?;
            let options = PutOptions {
                attributes: self.attributes.clone(),
                ..PutOptions::default()
            };
            self.writer
                .put_opts(path, PutPayload::from(data), options)
                .await
                .map_err(|e| self.remote(upload.key, &e))?;
            return Ok(());
        }
        let options = PutMultipartOptions {
            attributes: self.attributes.clone(),
            ..PutMultipartOptions::default()
        };
        let multipart = self
            .writer
            .put_multipart_opts(path, options)
            .await
            .map_err(|e| self.remote(upload.key, &e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(multipart, PART_SIZE);
        let streamed = async {
            loop {
                writer
                    .wait_for_capacity(MAX_PARTS_IN_FLIGHT)
                    .await
                    .map_err(|e| self.remote(upload.key, &e))?;
                let chunk = read_chunk(&mut file, PART_SIZE).map_err(io)?;
                if chunk.is_empty() {
                    return Ok(());
                }
                writer.put(chunk);
            }
        }
        .await;
        match streamed {
            Ok(()) => writer
                .finish()
                .await
                .map(|_| ())
                .map_err(|e| self.remote(upload.key, &e)),
            Err(error) => {
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(
                        "{}: could not abort the multipart upload of `{}` ({abort}); a lifecycle rule for incomplete multipart uploads removes its parts",
                        self.kind,
                        upload.key
                    );
                }
                Err(error)
            }
        }
    }
}

impl Destination for ObjectDestination {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn put(&self, upload: &Upload<'_>) -> Result<Delivered, Error> {
        let path = self.path(upload.key)?;
        let started = std::time::Instant::now();
        block_on(self.upload(&path, upload))?;
        log_upload(self.kind, upload, started.elapsed());
        Ok(Delivered {
            destination: self.kind.to_owned(),
            key: upload.key.to_owned(),
            bytes: upload.bytes,
            sha256: upload.sha256.to_owned(),
            delivered_at: chrono::Utc::now(),
        })
    }

    fn read_small(&self, key: &str) -> Option<Vec<u8>> {
        let path = self.path(key).ok()?;
        block_on(async {
            let meta = self.store.head(&path).await.ok()?;
            if meta.size > SMALL_OBJECT_MAX {
                return None;
            }
            let result = self.store.get(&path).await.ok()?;
            result.bytes().await.ok().map(|b| b.to_vec())
        })
    }

    fn presigned_get(
        &self,
        key: &str,
        lifetime: std::time::Duration,
    ) -> Result<Option<String>, Error> {
        use object_store::signer::{Method, Signer};
        let Some(signer) = &self.signer else {
            return Ok(None);
        };
        let path = self.path(key)?;
        match block_on(signer.signed_url(Method::GET, &path, lifetime)) {
            Ok(url) => Ok(Some(url.to_string())),
            Err(e) => Err(self.remote(key, &e)),
        }
    }

    fn transition(&self, key: &str, storage_class: &str) -> Result<bool, Error> {
        let Some(transitions) = &self.transitions else {
            return Ok(false);
        };
        let path = self.path(key)?;
        let client = transitions.client(storage_class)?;
        // CopyObject onto itself with a new storage class: same bytes and metadata (the copy
        // keeps them by default), new class. S3 copies up to 5 GB in one request; a bigger
        // object fails here and is reported, the sweep retrying it next time.
        block_on(client.copy(&path, &path)).map_err(|e| self.remote(key, &e))?;
        Ok(true)
    }

    fn remove(&self, key: &str) -> Result<(), Error> {
        let path = self.path(key)?;
        match block_on(self.store.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.remote(key, &e)),
        }
    }

    fn stat(&self, key: &str) -> Result<Option<ObjectInfo>, Error> {
        let path = self.path(key)?;
        match block_on(self.store.head(&path)) {
            Ok(meta) => Ok(Some(ObjectInfo {
                bytes: meta.size,
                etag: meta.e_tag,
                modified: Some(meta.last_modified),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.remote(key, &e)),
        }
    }
}

/// One line per object at debug level: what `scripts/bench-objects.sh` measures delivery by.
pub(super) fn log_upload(kind: &str, upload: &Upload<'_>, took: Duration) {
    let seconds = took.as_secs_f64();
    tracing::debug!(
        "{kind}: uploaded `{}`: {} bytes in {seconds:.3} s ({:.1} MB/s)",
        upload.key,
        upload.bytes,
        upload.bytes as f64 / 1e6 / seconds.max(1e-9)
    );
}

/// Reads up to `size` bytes (less only at the end of the file).
pub(super) fn read_chunk(file: &mut std::fs::File, size: usize) -> std::io::Result<Bytes> {
    let mut buffer = BytesMut::zeroed(size);
    let mut filled = 0;
    while filled < size {
        match file.read(&mut buffer[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    buffer.truncate(filled);
    Ok(buffer.freeze())
}

/// The transport rule of the three clouds: TLS, or plain HTTP to loopback when the connection
/// allows it. Returns whether plain HTTP is allowed.
pub(super) fn client_policy(endpoint: Option<&str>, allow_insecure: bool) -> Result<bool, Error> {
    if let Some(problem) = endpoint.and_then(|e| endpoint_problem(e, allow_insecure)) {
        return Err(Error::Config(problem));
    }
    Ok(endpoint.is_some_and(|e| e.to_ascii_lowercase().starts_with("http://")))
}

/// Client settings: the transport rule, and timeouts long enough for one [`PART_SIZE`] part on
/// a slow link.
fn client_options(endpoint: Option<&str>, allow_insecure: bool) -> Result<ClientOptions, Error> {
    let plain_http = client_policy(endpoint, allow_insecure)?;
    Ok(ClientOptions::new()
        .with_allow_http(plain_http)
        .with_connect_timeout(Duration::from_secs(10))
        .with_timeout(Duration::from_secs(300)))
}

/// object_store's own retries stay short: the pipeline retries each object with backoff
/// ([`super::retry`]), and the two multiplied would keep a run waiting for minutes on a
/// server that is down.
fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 2,
        retry_timeout: Duration::from_secs(30),
    }
}

/// With virtual-hosted addressing object_store expects the bucket in the endpoint's host.
fn virtual_hosted_endpoint(endpoint: &str, bucket: &str) -> String {
    match endpoint.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{bucket}.{}", rest.trim_end_matches('/')),
        None => endpoint.to_owned(),
    }
}

/// The S3 Object Lock headers of `immutable = true`: compliance mode until now + retention.
fn object_lock_headers(def: &S3Deliver) -> Result<Option<object_store::HeaderMap>, Error> {
    if !def.immutable {
        return Ok(None);
    }
    let retention = def.retention.and_then(|r| r.duration()).ok_or_else(|| {
        Error::Config(
            "`immutable = true` locks each object for the retention period: set `retention`".into(),
        )
    })?;
    let until = (chrono::Utc::now() + retention).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut headers = object_store::HeaderMap::new();
    let value = |text: &str| {
        object_store::HeaderValue::from_str(text)
            .map_err(|_| Error::Config(format!("invalid object lock header value `{text}`")))
    };
    headers.insert("x-amz-object-lock-mode", value("COMPLIANCE")?);
    headers.insert("x-amz-object-lock-retain-until-date", value(&until)?);
    // S3 wants a checksum with every retention; object_store sends the SHA-256 itself
    // (`with_checksum_algorithm`) but not this header, which names it.
    headers.insert("x-amz-sdk-checksum-algorithm", value("SHA256")?);
    Ok(Some(headers))
}

fn build_error(kind: &str, error: object_store::Error) -> Error {
    Error::Config(format!(
        "cannot set up the {kind} client: {error}; check the connection's settings"
    ))
}

/// Whether an object_store error may go away on a retry, and a message saying what to do.
/// Timeouts, refused connections, 5xx, 408 and 429 are retriable; authentication, a missing
/// bucket and other 4xx are not. object_store keeps the HTTP status in a private type, so a
/// generic error's status is read from its message.
fn classify(error: &object_store::Error) -> (String, bool) {
    use object_store::Error as E;
    match error {
        E::NotFound { .. } => (
            "not found: check that the bucket or container exists and its name is right".into(),
            false,
        ),
        E::Unauthenticated { .. } => (
            "authentication failed: check the connection's credentials".into(),
            false,
        ),
        E::PermissionDenied { .. } => (
            "access denied (403): check the credentials and that they may write to this bucket or container".into(),
            false,
        ),
        E::Generic { source, .. } => {
            let detail = chain_text(source.as_ref());
            match http_status(&detail) {
                Some(status) => status_failure(status, &detail),
                None if transport_failure(source.as_ref()) => (
                    format!(
                        "cannot reach the server ({}); check the endpoint and that the service is up",
                        short(&detail)
                    ),
                    true,
                ),
                None => (short(&detail), false),
            }
        }
        other => (short(&other.to_string()), false),
    }
}

/// A failed HTTP status, classified: 5xx, 408 and 429 may pass; other statuses will not.
pub(super) fn status_failure(status: u16, detail: &str) -> (String, bool) {
    match status {
        401 => (
            format!(
                "authentication failed (401): check the connection's credentials ({})",
                short(detail)
            ),
            false,
        ),
        403 => (
            format!(
                "access denied (403): check the credentials and that they may write here ({})",
                short(detail)
            ),
            false,
        ),
        404 => (
            format!(
                "not found (404): check that the bucket or container exists ({})",
                short(detail)
            ),
            false,
        ),
        408 | 429 | 500.. => (
            format!(
                "the server answered {status}; retrying may help ({})",
                short(detail)
            ),
            true,
        ),
        _ => (
            format!(
                "the server refused the request with {status}: {}",
                short(detail)
            ),
            false,
        ),
    }
}

/// Whether the failure happened on the wire (connecting, timing out, the connection dropped).
fn transport_failure(error: &(dyn std::error::Error + 'static)) -> bool {
    use object_store::client::{HttpError, HttpErrorKind};
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(http) = e.downcast_ref::<HttpError>() {
            return matches!(
                http.kind(),
                HttpErrorKind::Connect
                    | HttpErrorKind::Request
                    | HttpErrorKind::Timeout
                    | HttpErrorKind::Interrupted
            );
        }
        current = e.source();
    }
    false
}

fn chain_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut current = error.source();
    while let Some(e) = current {
        let next = e.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        current = e.source();
    }
    text
}

/// The status of object_store's "Server returned non-2xx status code: 503 …".
fn http_status(text: &str) -> Option<u16> {
    let (_, rest) = text.split_once("status code: ")?;
    rest.get(..3)?.parse().ok()
}

/// Error text bounded for logs and the ledger (servers may answer with whole XML documents).
fn short(text: &str) -> String {
    const MAX: usize = 300;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_read_from_object_store_messages() {
        assert_eq!(
            http_status(
                "Error performing PUT http://x in 1ms - Server returned non-2xx status code: 503 Service Unavailable: "
            ),
            Some(503)
        );
        assert_eq!(http_status("connection refused"), None);
    }

    #[test]
    fn generic_errors_are_classified_by_status() {
        let generic = |text: &str| object_store::Error::Generic {
            store: "S3",
            source: text.to_owned().into(),
        };
        for (text, retriable) in [
            (
                "Server returned non-2xx status code: 503 Service Unavailable",
                true,
            ),
            (
                "Server returned non-2xx status code: 429 Too Many Requests",
                true,
            ),
            (
                "Server returned non-2xx status code: 400 Bad Request: <Error/>",
                false,
            ),
        ] {
            assert_eq!(classify(&generic(text)).1, retriable, "{text}");
        }
        let denied = object_store::Error::PermissionDenied {
            path: "k".into(),
            source: "403".to_owned().into(),
        };
        assert!(!classify(&denied).1);
    }

    #[test]
    fn virtual_hosted_endpoints_carry_the_bucket() {
        assert_eq!(
            virtual_hosted_endpoint("https://s3.example.com/", "b"),
            "https://b.s3.example.com"
        );
    }
}
