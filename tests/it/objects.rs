//! `to = "s3" | "gcs" | "azure"` against real servers on loopback (moto, fake-gcs-server,
//! Azurite; see scripts/services/): `exportd export` delivers, and a client independent of the
//! one under test reads every object back (boto3 for S3, the JSON API with curl for GCS,
//! object_store for Azure) to compare its bytes with the manifest.

use crate::util::{Output, Test, service};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;

/// Demo data ends here; every export runs at this nominal time.
const AT: &str = "2024-02-01T00:00:00Z";

/// A workspace whose exportd.toml declares one connection per object store, each with
/// `allow_insecure = true` (the servers are plain HTTP on loopback) and credentials by
/// `{ env = "…" }` reference.
struct Workspace {
    dir: TempDir,
}

impl Workspace {
    fn new() -> Workspace {
        let ws = Workspace {
            dir: tempfile::Builder::new()
                .prefix("exportd-objects-")
                .tempdir()
                .expect("creating a temporary directory"),
        };
        ws.connections(&service("EXPORTD_TEST_S3_ENDPOINT"));
        ws
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes exportd.toml with the S3 connection pointed at `s3_endpoint`.
    fn connections(&self, s3_endpoint: &str) {
        let text = format!(
            r#"
[connections.s3-test]
type = "s3"
region = "us-east-1"
endpoint = "{s3_endpoint}"
path_style = true
allow_insecure = true
access_key_id = {{ env = "TEST_S3_KEY_ID" }}
secret_access_key = {{ env = "TEST_S3_SECRET" }}

[connections.gcs-test]
type = "gcs"
endpoint = "{gcs}"
allow_insecure = true
service_account_key = {{ env = "TEST_GCS_KEY" }}

[connections.azure-test]
type = "azure"
account = "{account}"
endpoint = "{azure}"
allow_insecure = true
access_key = {{ env = "TEST_AZURE_KEY" }}
"#,
            gcs = service("EXPORTD_TEST_GCS_ENDPOINT"),
            azure = service("EXPORTD_TEST_AZURE_ENDPOINT"),
            account = service("EXPORTD_TEST_AZURE_ACCOUNT"),
        );
        std::fs::write(self.path().join("exportd.toml"), text).expect("writing exportd.toml");
    }

    fn definition(&self, name: &str, toml: &str) {
        let dir = self.path().join("exports.d");
        std::fs::create_dir_all(&dir).expect("creating exports.d");
        std::fs::write(dir.join(format!("{name}.toml")), toml).expect("writing a definition");
    }

    fn exportd(&self) -> Test {
        // fake-gcs-server checks no token: a key that turns OAuth off is enough.
        let gcs_key = r#"{"private_key":"unused","private_key_id":"unused","client_email":"exportd@test.invalid","disable_oauth":true}"#;
        Test::new()
            .arg("--config")
            .arg(self.path().join("exportd.toml"))
            .env("TEST_S3_KEY_ID", service("EXPORTD_TEST_S3_ACCESS_KEY_ID"))
            .env(
                "TEST_S3_SECRET",
                service("EXPORTD_TEST_S3_SECRET_ACCESS_KEY"),
            )
            .env("TEST_GCS_KEY", gcs_key)
            .env("TEST_AZURE_KEY", service("EXPORTD_TEST_AZURE_ACCESS_KEY"))
    }

    fn demo(&self, leads: u64) {
        self.exportd()
            .args([
                "demo",
                "--leads",
                &leads.to_string(),
                "--seed",
                "11",
                "--days",
                "3",
            ])
            .args(["--end", AT])
            .run()
            .success();
    }

    fn export(&self, name: &str) -> Output {
        self.exportd().args(["export", name, "--at", AT]).run()
    }

    fn scratch(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }
}

/// A fresh key prefix per test, so tests sharing a bucket never see each other's objects.
fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    format!("{test}-{}-{nanos}", std::process::id())
}

fn sha256_file(path: &Path) -> String {
    use std::io::Read;
    let mut hasher = Sha256::new();
    let mut file = std::fs::File::open(path).expect("opening a downloaded object");
    let mut buffer = vec![0; 1 << 20];
    loop {
        match file.read(&mut buffer).expect("reading a downloaded object") {
            0 => break,
            n => hasher.update(&buffer[..n]),
        }
    }
    hex::encode(hasher.finalize())
}

// --- independent readers -----------------------------------------------------------------

/// Runs tests/services/s3_probe.py (boto3) against the S3 test server.
pub(crate) fn s3_probe(args: &[&str]) -> String {
    let output = Command::new(service("EXPORTD_TEST_S3_PYTHON"))
        .arg(crate::util::repo_root().join("tests/services/s3_probe.py"))
        .arg(service("EXPORTD_TEST_S3_ENDPOINT"))
        .args(args)
        .output()
        .expect("running s3_probe.py");
    assert!(
        output.status.success(),
        "s3_probe {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

fn s3_head(bucket: &str, key: &str) -> Json {
    serde_json::from_str(&s3_probe(&["head", bucket, key])).expect("head JSON")
}

fn s3_list(bucket: &str, prefix: &str) -> Vec<String> {
    serde_json::from_str(&s3_probe(&["list", bucket, prefix])).expect("list JSON")
}

fn s3_download(bucket: &str, key: &str, to: &Path) {
    s3_probe(&["get", bucket, key, to.to_str().expect("UTF-8 path")]);
}

pub(crate) fn gcs_url(path: &str) -> String {
    format!(
        "{}/storage/v1/b/{}{path}",
        service("EXPORTD_TEST_GCS_ENDPOINT"),
        service("EXPORTD_TEST_GCS_BUCKET")
    )
}

pub(crate) fn curl(args: &[&str]) -> Vec<u8> {
    let output = Command::new("curl")
        .args(["-sSf"])
        .args(args)
        .output()
        .expect("running curl");
    assert!(
        output.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn gcs_download(key: &str, to: &Path) {
    let url = gcs_url(&format!("/o/{}?alt=media", key.replace('/', "%2F")));
    curl(&["-o", to.to_str().expect("UTF-8 path"), &url]);
}

pub(crate) fn gcs_list(prefix: &str) -> Vec<String> {
    let listing: Json =
        serde_json::from_slice(&curl(&[&gcs_url(&format!("/o?prefix={prefix}"))])).expect("JSON");
    listing["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|o| o["name"].as_str().expect("name").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn azure_store() -> object_store::azure::MicrosoftAzure {
    object_store::azure::MicrosoftAzureBuilder::new()
        .with_account(service("EXPORTD_TEST_AZURE_ACCOUNT"))
        .with_access_key(service("EXPORTD_TEST_AZURE_ACCESS_KEY"))
        .with_container_name(service("EXPORTD_TEST_AZURE_CONTAINER"))
        .with_endpoint(service("EXPORTD_TEST_AZURE_ENDPOINT"))
        .with_allow_http(true)
        .build()
        .expect("an Azurite client")
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn azure_download(key: &str, to: &Path) {
    use object_store::ObjectStoreExt;
    let bytes = runtime().block_on(async {
        let store = azure_store();
        let path = object_store::path::Path::parse(key).expect("a blob name");
        store
            .get(&path)
            .await
            .expect("GET blob")
            .bytes()
            .await
            .expect("blob body")
    });
    std::fs::write(to, bytes).expect("writing the blob");
}

pub(crate) fn azure_list(prefix: &str) -> Vec<String> {
    use futures::TryStreamExt;
    use object_store::ObjectStore;
    runtime().block_on(async {
        let store = azure_store();
        let prefix = object_store::path::Path::parse(prefix).expect("a prefix");
        let objects: Vec<_> = store
            .list(Some(&prefix))
            .try_collect()
            .await
            .expect("listing blobs");
        objects
            .into_iter()
            .map(|o| o.location.to_string())
            .collect()
    })
}

/// The manifest's parts as (name, bytes, sha256).
fn manifest_parts(manifest: &Path) -> Vec<(String, u64, String)> {
    let manifest: Json =
        serde_json::from_slice(&std::fs::read(manifest).expect("reading the manifest"))
            .expect("manifest JSON");
    manifest["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().expect("name").to_owned(),
                p["bytes"].as_u64().expect("bytes"),
                p["sha256"].as_str().expect("sha256").to_owned(),
            )
        })
        .collect()
}

/// Downloads the manifest under `dir` and every part it lists, and checks each part's size
/// and SHA-256 against it. Returns the parts.
fn assert_parts_match_manifest(
    ws: &Workspace,
    label: &str,
    dir: &str,
    download: impl Fn(&str, &Path),
) -> Vec<(String, u64, String)> {
    let manifest = ws.scratch(&format!("{label}-manifest.json"));
    download(&format!("{dir}/_manifest.json"), &manifest);
    let parts = manifest_parts(&manifest);
    assert!(!parts.is_empty(), "{label}: the manifest lists no parts");
    for (name, bytes, sha256) in &parts {
        let local = ws.scratch(&format!("{label}-{name}"));
        download(&format!("{dir}/{name}"), &local);
        let got = std::fs::metadata(&local).expect("downloaded").len();
        assert_eq!(got, *bytes, "{label}: size of {name}");
        assert_eq!(sha256_file(&local), *sha256, "{label}: sha256 of {name}");
        std::fs::remove_file(&local).expect("removing a download");
    }
    parts
}

// --- tests -------------------------------------------------------------------------------

/// Parts of about 20 MB (more than one 16 MiB multipart part, upload chunk or block) reach
/// all three stores whole, and a second run of the same window replaces them instead of adding
/// objects.
#[test]
fn parts_reach_s3_gcs_and_azure_whole_and_a_rerun_replaces_them() {
    let ws = Workspace::new();
    ws.demo(25_000);
    let prefix = unique_prefix("three");
    let s3_bucket = service("EXPORTD_TEST_S3_BUCKET");
    ws.definition(
        "three",
        &format!(
            r#"
window = "all"
[format]
type = "ndjson"
[chunk]
max_bytes = "15MB"
[[deliver]]
to = "s3"
connection = "s3-test"
bucket = "{s3_bucket}"
path = "{prefix}/{{{{date}}}}/leads_{{{{part}}}}.ndjson"
storage_class = "STANDARD_IA"
[[deliver]]
to = "gcs"
connection = "gcs-test"
bucket = "{gcs_bucket}"
path = "{prefix}/{{{{date}}}}/leads_{{{{part}}}}.ndjson"
[[deliver]]
to = "azure"
connection = "azure-test"
container = "{container}"
path = "{prefix}/{{{{date}}}}/leads_{{{{part}}}}.ndjson"
access_tier = "Cool"
"#,
            gcs_bucket = service("EXPORTD_TEST_GCS_BUCKET"),
            container = service("EXPORTD_TEST_AZURE_CONTAINER"),
        ),
    );
    ws.export("three").success();
    let dir = format!("{prefix}/2024-02-01");
    let s3_parts =
        assert_parts_match_manifest(&ws, "s3", &dir, |key, to| s3_download(&s3_bucket, key, to));
    let gcs_parts = assert_parts_match_manifest(&ws, "gcs", &dir, gcs_download);
    let azure_parts = assert_parts_match_manifest(&ws, "azure", &dir, azure_download);
    assert!(s3_parts.len() >= 2, "15MB parts of ~20 MB: {s3_parts:?}");
    assert!(
        s3_parts.iter().any(|(_, bytes, _)| *bytes > 16 << 20) || s3_parts.len() >= 2,
        "{s3_parts:?}"
    );
    assert_eq!(s3_parts, gcs_parts);
    assert_eq!(s3_parts, azure_parts);
    let first = &s3_parts[0].0;
    assert_eq!(
        s3_head(&s3_bucket, &format!("{dir}/{first}"))["storage_class"],
        "STANDARD_IA"
    );

    let before = (
        s3_list(&s3_bucket, &prefix),
        gcs_list(&prefix),
        azure_list(&prefix),
    );
    assert_eq!(before.0.len(), s3_parts.len() + 1, "{:?}", before.0);
    ws.export("three").success();
    let after = (
        s3_list(&s3_bucket, &prefix),
        gcs_list(&prefix),
        azure_list(&prefix),
    );
    assert_eq!(
        before, after,
        "a re-run of the same window changed the set of objects"
    );
}

/// A 200 MB part goes to S3 as a multipart upload (the ETag of a multipart object ends in
/// `-PARTS`), with the requested encryption and storage class, and no upload is left open.
#[test]
fn a_200_mb_part_goes_to_s3_as_an_encrypted_multipart_upload() {
    let ws = Workspace::new();
    ws.demo(240_000);
    let prefix = unique_prefix("big");
    let bucket = service("EXPORTD_TEST_S3_BUCKET");
    ws.definition(
        "big",
        &format!(
            r#"
window = "all"
[format]
type = "ndjson"
[[deliver]]
to = "s3"
connection = "s3-test"
bucket = "{bucket}"
path = "{prefix}/leads_{{{{part}}}}.ndjson"
encryption = "AES256"
storage_class = "STANDARD_IA"
"#
        ),
    );
    ws.export("big").success();
    let parts =
        assert_parts_match_manifest(&ws, "big", &prefix, |key, to| s3_download(&bucket, key, to));
    let (name, bytes, _) = &parts[0];
    assert!(*bytes >= 200_000_000, "the part is only {bytes} bytes");
    let head = s3_head(&bucket, &format!("{prefix}/{name}"));
    let expected_parts = bytes.div_ceil(16 << 20);
    assert!(
        head["etag"]
            .as_str()
            .expect("etag")
            .ends_with(&format!("-{expected_parts}")),
        "not a {expected_parts}-part multipart upload: {head}"
    );
    assert_eq!(head["encryption"], "AES256", "{head}");
    assert_eq!(head["storage_class"], "STANDARD_IA", "{head}");
    let manifest_head = s3_head(&bucket, &format!("{prefix}/_manifest.json"));
    assert_eq!(manifest_head["encryption"], "AES256", "{manifest_head}");
    assert!(!manifest_head["etag"].as_str().expect("etag").contains('-'));
    assert_eq!(s3_probe(&["uploads", &bucket]).trim(), "0");
}

/// `immutable = true` puts each object under S3 Object Lock in compliance mode until the end
/// of the retention period.
#[test]
fn immutable_s3_objects_are_locked_in_compliance_mode_for_the_retention() {
    let ws = Workspace::new();
    ws.demo(200);
    let prefix = unique_prefix("locked");
    let bucket = service("EXPORTD_TEST_S3_LOCKED_BUCKET");
    ws.definition(
        "locked",
        &format!(
            r#"
window = "all"
[format]
type = "csv"
compression = "gzip"
[[deliver]]
to = "s3"
connection = "s3-test"
bucket = "{bucket}"
path = "{prefix}/leads_{{{{part}}}}.csv.gz"
immutable = true
retention = "30d"
"#
        ),
    );
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    ws.export("locked").success();
    assert_parts_match_manifest(&ws, "locked", &prefix, |key, to| {
        s3_download(&bucket, key, to)
    });
    for key in s3_list(&bucket, &prefix) {
        let head = s3_head(&bucket, &key);
        assert_eq!(head["lock_mode"], "COMPLIANCE", "{key}: {head}");
        let until = head["lock_until"].as_f64().expect("a retain-until date");
        let thirty_days = 30.0 * 86_400.0;
        assert!(
            (until - started - thirty_days).abs() < 120.0,
            "{key}: locked until {until}, expected about {}",
            started + thirty_days
        );
    }
}

/// With the store down, the run fails after its retries and says why, the staged files stay;
/// once the store is back, running the same window again delivers.
#[test]
fn an_unreachable_store_fails_the_run_keeps_staging_and_a_rerun_delivers() {
    let ws = Workspace::new();
    ws.demo(300);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a port");
    let closed_port = closed.local_addr().expect("address").port();
    drop(closed);
    ws.connections(&format!("http://127.0.0.1:{closed_port}"));
    let prefix = unique_prefix("down");
    let bucket = service("EXPORTD_TEST_S3_BUCKET");
    ws.definition(
        "down",
        &format!(
            r#"
window = "all"
[format]
type = "ndjson"
compression = "gzip"
[[deliver]]
to = "s3"
connection = "s3-test"
bucket = "{bucket}"
path = "{prefix}/leads_{{{{part}}}}.ndjson.gz"
"#
        ),
    );
    let failed = ws.export("down").code(1);
    assert!(
        failed.stderr.contains("cannot reach the server")
            && failed.stderr.contains(&format!("127.0.0.1:{closed_port}")),
        "{}",
        failed.stderr
    );
    assert!(
        failed.stderr.contains("attempt 3 of 4 failed"),
        "no retries logged: {}",
        failed.stderr
    );
    let staged = staged_files(&ws.path().join("var/staging/down"));
    assert!(
        staged.iter().any(|f| f.ends_with("part-001.ndjson.gz")),
        "the staged part is gone: {staged:?}"
    );
    assert!(s3_list(&bucket, &prefix).is_empty());

    ws.connections(&service("EXPORTD_TEST_S3_ENDPOINT"));
    ws.export("down").success();
    assert_parts_match_manifest(&ws, "down", &prefix, |key, to| {
        s3_download(&bucket, key, to)
    });
}

fn staged_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.to_string_lossy().into_owned());
            }
        }
    }
    out
}

/// `exportd validate` refuses a plain-HTTP endpoint unless the connection allows it, and even
/// then only on loopback, pointing at the line.
#[test]
fn validate_refuses_plain_http_endpoints_without_allow_insecure_on_loopback() {
    let output = Test::new()
        .daemon_config(
            r#"
[connections.minio]
type = "s3"
endpoint = "http://127.0.0.1:9000"
path_style = true

[connections.remote]
type = "azure"
account = "acct"
endpoint = "http://blob.example.com/acct"
allow_insecure = true

[connections.local]
type = "gcs"
endpoint = "http://localhost:4443"
allow_insecure = true
"#,
        )
        .args(["--config", "exportd.toml", "validate"])
        .run()
        .code(1);
    let report = &output.stdout;
    assert!(
        report.contains(
            "exportd.toml:4:12: error: endpoint `http://127.0.0.1:9000` is plain `http://`"
        ) && report.contains("set `allow_insecure = true`"),
        "{report}"
    );
    assert!(
        report.contains("exportd.toml:10:12: error:") && report.contains("not on loopback"),
        "{report}"
    );
    assert!(!report.contains("exportd.toml:15:"), "{report}");
}

/// Downloads of files delivered to S3 go through presigned URLs (issue: time-limited URLs for
/// S3): the link route returns one valid for `[access] url_lifetime_minutes`, it fetches the
/// delivered bytes with no credentials, and the file route redirects to one.
#[test]
fn s3_downloads_are_presigned_urls_that_return_the_delivered_bytes() {
    let ws = Workspace::new();
    ws.demo(300);
    let prefix = unique_prefix("presign");
    let token_hash = hex::encode(Sha256::digest(b"exd_admin_presign"));
    let connections = std::fs::read_to_string(ws.path().join("exportd.toml")).unwrap();
    std::fs::write(
        ws.path().join("exportd.toml"),
        format!(
            "[http]\nlisten = \"127.0.0.1:0\"\n\n[access]\nurl_lifetime_minutes = 5\n\n\
             [[access.tokens]]\nname = \"alice\"\nrole = \"admin\"\nsha256 = \"{token_hash}\"\n\
             {connections}"
        ),
    )
    .unwrap();
    ws.definition(
        "signed",
        &format!(
            r#"
schedule = "daily at 02:00"
window = "all"
[fields]
include = ["lead_id", "state"]
[[deliver]]
to = "s3"
connection = "s3-test"
bucket = "{bucket}"
path = "{prefix}/{{{{run_id}}}}/part_{{{{part}}}}.csv"
"#,
            bucket = service("EXPORTD_TEST_S3_BUCKET"),
        ),
    );
    let daemon = crate::secrets::Daemon::start(
        ws.path(),
        &[
            ("TEST_S3_KEY_ID", service("EXPORTD_TEST_S3_ACCESS_KEY_ID")),
            (
                "TEST_S3_SECRET",
                service("EXPORTD_TEST_S3_SECRET_ACCESS_KEY"),
            ),
        ],
    );
    let token = "exd_admin_presign";
    let (code, body) = daemon.http("POST", "/v1/exports/signed/run", token);
    assert_eq!(code, 202, "{body}");
    let run_id = serde_json::from_str::<Json>(&body).unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, run) = daemon.http("GET", &format!("/v1/runs/{run_id}"), token);
        if run.contains("\"completed\"") {
            break;
        }
        assert!(!run.contains("\"failed\""), "{run}");
        assert!(std::time::Instant::now() < deadline, "{run}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    let (code, body) = daemon.http("GET", &format!("/v1/runs/{run_id}/files"), token);
    assert_eq!(code, 200, "{body}");
    let files: Json = serde_json::from_str(&body).unwrap();
    let part = files["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "part_001.csv")
        .unwrap_or_else(|| panic!("part_001.csv listed: {files}"))
        .clone();
    assert_eq!(part["destination"], "s3#0", "{part}");

    let (code, body) = daemon.http(
        "POST",
        &format!("/v1/runs/{run_id}/files/part_001.csv/link"),
        token,
    );
    assert_eq!(code, 200, "{body}");
    let link: Json = serde_json::from_str(&body).unwrap();
    let url = link["url"].as_str().unwrap();
    assert!(
        url.contains("X-Amz-Signature=") && url.contains("X-Amz-Expires=300"),
        "a SigV4 presigned URL valid 5 minutes: {url}"
    );
    let bytes = curl(&[url]);
    assert!(
        String::from_utf8_lossy(&bytes).starts_with("lead_id,state\n"),
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    assert_eq!(
        hex::encode(Sha256::digest(&bytes)),
        part["sha256"].as_str().unwrap(),
        "the presigned URL returns exactly the delivered object"
    );

    let (code, body) = daemon.http(
        "GET",
        &format!("/v1/runs/{run_id}/files/part_001.csv"),
        token,
    );
    assert_eq!(
        code, 307,
        "the file route redirects to a presigned URL: {body}"
    );
}
