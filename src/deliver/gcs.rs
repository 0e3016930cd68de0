//! `to = "gcs"` over the Cloud Storage JSON API.
//!
//! object_store's GCS client speaks the XML API (`PUT /bucket/object`, XML multipart uploads),
//! which fake-gcs-server, the emulator the tests run against, does not implement (its issues
//! #331 and #852). The JSON API is GCS's primary API and the emulator's, so objects go up as
//! resumable uploads: one session, then the file in [`PART_SIZE`] chunks, one at a time, so
//! memory holds one chunk whatever the file size. A failed upload cancels its session.
//! Credentials still come from object_store's GCS credential chain (service account key,
//! application default credentials, instance metadata), so only the transport differs.

use super::object::{PART_SIZE, client_policy, read_chunk, status_failure};
use super::{Delivered, Destination, Error, ObjectInfo, Upload, block_on};
use crate::config::daemon::GcsConnection;
use crate::config::export::{GCS_STORAGE_CLASSES, GcsDeliver, one_of};
use object_store::gcp::{GcpCredentialProvider, GoogleCloudStorageBuilder};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use std::fmt::Write as _;

const DEFAULT_BASE: &str = "https://storage.googleapis.com";
/// `read_small` refuses anything bigger: it is meant for manifests.
const SMALL_OBJECT_MAX: u64 = 64 << 20;

/// The GCS destination.
#[derive(Debug)]
pub struct GcsDestination {
    base: String,
    bucket: String,
    storage_class: Option<&'static str>,
    credentials: GcpCredentialProvider,
    http: reqwest::Client,
}

impl GcsDestination {
    /// `to = "gcs"` through a `gcs` connection.
    pub fn new(def: &GcsDeliver, connection: &GcsConnection) -> Result<GcsDestination, Error> {
        client_policy(connection.endpoint.as_deref(), connection.allow_insecure)?;
        let mut builder = GoogleCloudStorageBuilder::from_env().with_bucket_name(&def.bucket);
        if let Some(key) = &connection.service_account_key {
            builder = builder.with_service_account_key(key.resolve()?.expose());
        }
        let store = builder.build().map_err(|e| {
            Error::Config(format!(
                "cannot set up the gcs credentials: {e}; check `service_account_key` or the application default credentials"
            ))
        })?;
        let storage_class = match &def.storage_class {
            Some(class) => Some(one_of(class, GCS_STORAGE_CLASSES).ok_or_else(|| {
                Error::Config(format!(
                    "gcs `storage_class = \"{class}\"` is not one of {}",
                    GCS_STORAGE_CLASSES.join(", ")
                ))
            })?),
            None => None,
        };
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(300))
            .build()
            .map_err(|e| Error::Config(format!("cannot set up the gcs HTTP client: {e}")))?;
        Ok(GcsDestination {
            base: connection
                .endpoint
                .as_deref()
                .unwrap_or(DEFAULT_BASE)
                .trim_end_matches('/')
                .to_owned(),
            bucket: def.bucket.clone(),
            storage_class,
            credentials: store.credentials().clone(),
            http,
        })
    }

    fn object_url(&self, key: &str) -> String {
        format!(
            "{}/storage/v1/b/{}/o/{}",
            self.base,
            encode(&self.bucket),
            encode(key)
        )
    }

    async fn request(&self, method: Method, url: &str, key: &str) -> Result<RequestBuilder, Error> {
        let credential = self
            .credentials
            .get_credential()
            .await
            .map_err(|e| remote(key, format!("cannot get a gcs access token: {e}"), true))?;
        let request = self.http.request(method, url);
        Ok(if credential.bearer.is_empty() {
            request
        } else {
            request.bearer_auth(&credential.bearer)
        })
    }

    async fn send(&self, request: RequestBuilder, key: &str) -> Result<Response, Error> {
        request.send().await.map_err(|e| transport(key, e))
    }

    async fn upload(&self, upload: &Upload<'_>) -> Result<(), Error> {
        let url = format!(
            "{}/upload/storage/v1/b/{}/o?uploadType=resumable&name={}",
            self.base,
            encode(&self.bucket),
            encode(upload.key)
        );
        let mut metadata = serde_json::json!({ "name": upload.key });
        if let Some(class) = self.storage_class {
            metadata["storageClass"] = class.into();
        }
        let started = self
            .send(
                self.request(Method::POST, &url, upload.key)
                    .await?
                    .json(&metadata),
                upload.key,
            )
            .await?;
        let started = checked(started, upload.key).await?;
        let session = started
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| {
                remote(
                    upload.key,
                    "the server started no upload session".into(),
                    true,
                )
            })?;
        let sent = self.send_chunks(&session, upload).await;
        if sent.is_err() {
            // Cancelling frees the session at once; GCS would otherwise keep it for a week.
            if let Ok(cancel) = self.request(Method::DELETE, &session, upload.key).await {
                let _ = cancel.send().await;
            }
        }
        sent
    }

    async fn send_chunks(&self, session: &str, upload: &Upload<'_>) -> Result<(), Error> {
        let mut file = std::fs::File::open(upload.file).map_err(|source| Error::Io {
            path: upload.file.to_path_buf(),
            source,
        })?;
        let total = upload.bytes;
        let mut offset = 0u64;
        loop {
            let chunk = read_chunk(&mut file, PART_SIZE).map_err(|source| Error::Io {
                path: upload.file.to_path_buf(),
                source,
            })?;
            let end = offset + chunk.len() as u64;
            let range = if chunk.is_empty() {
                format!("bytes */{total}")
            } else {
                format!(
                    "bytes {offset}-{}/{}",
                    end - 1,
                    if end == total {
                        total.to_string()
                    } else {
                        "*".into()
                    }
                )
            };
            let response = self
                .send(
                    self.request(Method::PUT, session, upload.key)
                        .await?
                        .header(reqwest::header::CONTENT_RANGE, range)
                        .body(chunk),
                    upload.key,
                )
                .await?;
            // 308 "resume incomplete" acknowledges a chunk of an unfinished upload.
            if response.status().as_u16() != 308 {
                checked(response, upload.key).await?;
                if end == total {
                    return Ok(());
                }
                return Err(remote(
                    upload.key,
                    format!("the server closed the upload after {end} of {total} bytes"),
                    true,
                ));
            }
            if end >= total {
                return Err(remote(
                    upload.key,
                    "the server did not finish the upload after the last byte".into(),
                    true,
                ));
            }
            offset = end;
        }
    }
}

impl Destination for GcsDestination {
    fn kind(&self) -> &'static str {
        "gcs"
    }

    fn put(&self, upload: &Upload<'_>) -> Result<Delivered, Error> {
        let started = std::time::Instant::now();
        block_on(self.upload(upload))?;
        super::object::log_upload("gcs", upload, started.elapsed());
        Ok(Delivered {
            destination: "gcs".to_owned(),
            key: upload.key.to_owned(),
            bytes: upload.bytes,
            sha256: upload.sha256.to_owned(),
            delivered_at: chrono::Utc::now(),
        })
    }

    fn read_small(&self, key: &str) -> Option<Vec<u8>> {
        let info = self.stat(key).ok()??;
        if info.bytes > SMALL_OBJECT_MAX {
            return None;
        }
        block_on(async {
            let url = format!("{}?alt=media", self.object_url(key));
            let request = self.request(Method::GET, &url, key).await.ok()?;
            let response = checked(self.send(request, key).await.ok()?, key)
                .await
                .ok()?;
            response.bytes().await.ok().map(|b| b.to_vec())
        })
    }

    fn remove(&self, key: &str) -> Result<(), Error> {
        block_on(async {
            let url = self.object_url(key);
            let response = self
                .send(self.request(Method::DELETE, &url, key).await?, key)
                .await?;
            if response.status() == StatusCode::NOT_FOUND {
                return Ok(());
            }
            checked(response, key).await.map(|_| ())
        })
    }

    fn stat(&self, key: &str) -> Result<Option<ObjectInfo>, Error> {
        block_on(async {
            let url = self.object_url(key);
            let response = self
                .send(self.request(Method::GET, &url, key).await?, key)
                .await?;
            if response.status() == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            let meta: serde_json::Value = checked(response, key)
                .await?
                .json()
                .await
                .map_err(|e| remote(key, format!("unreadable object metadata: {e}"), true))?;
            Ok(Some(ObjectInfo {
                bytes: meta["size"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_default(),
                etag: meta["etag"].as_str().map(str::to_owned),
                modified: meta["updated"]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&chrono::Utc)),
            }))
        })
    }
}

/// `response` if it succeeded, else its status classified.
async fn checked(response: Response, key: &str) -> Result<Response, Error> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    let (message, retriable) = status_failure(status.as_u16(), &body);
    Err(remote(key, message, retriable))
}

/// A request that got no answer; the message leaves out the URL, which for an upload session is
/// a capability to write the object.
fn transport(key: &str, error: reqwest::Error) -> Error {
    remote(
        key,
        format!(
            "cannot reach the server ({}); check the endpoint and that the service is up",
            error.without_url()
        ),
        true,
    )
}

fn remote(key: &str, message: String, retriable: bool) -> Error {
    Error::Remote {
        destination: "gcs",
        key: key.to_owned(),
        message,
        retriable,
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters, as GCS wants object names
/// in a URL path segment or query value.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_encoded_as_one_segment() {
        assert_eq!(encode("a/b c_1.gz"), "a%2Fb%20c_1.gz");
    }
}
