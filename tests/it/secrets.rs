//! Secrets never leak: distinctive values are planted in every place exportd takes a secret
//! from (connection credentials by `{ env = … }`, `{ file = … }` and `{ credential = … }` in
//! `$CREDENTIALS_DIRECTORY`: S3 keys, the webhook signing secret and Authorization header, the
//! SFTP and SMTP passwords; `hash_key`, the archive and email zip passwords,
//! `url_signing_key`, the API token and a wrong token), then every command (validate, plan,
//! export, status, audit, retention), the daemon's log at debug level, every API response and
//! every file exportd wrote (manifests, the state database, the audit log, staging) is searched
//! for them: as written, hex-encoded and in URL-encoding. The webhook delivers to the real
//! receiver (its success path), the other connections fail at a closed port after resolving
//! their secrets (the failure path). Ad-hoc definitions go through the API too, one with a
//! secret pasted literally, which must be refused without being repeated.

use crate::util::{Output, Test, service};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// (environment variable, planted value). Every value is distinctive and long enough that a
/// match cannot be chance.
const PLANTED_ENV: &[(&str, &str)] = &[
    ("EXPORTD_T_HASH_KEY", "PLANTED-hash-key-3b1f7a"),
    ("EXPORTD_T_ZIP_PW", "PLANTED-zip-pw-9c2d55"),
    ("EXPORTD_T_URL_KEY", "PLANTED-url-key-51aa08"),
    ("EXPORTD_T_HOOK_SECRET", "PLANTED-hook-signing-77e0c1"),
    ("EXPORTD_T_HOOK_AUTH", "Bearer PLANTED-hook-auth-0d4c9e"),
    ("EXPORTD_T_S3_ID", "PLANTEDs3keyid4e8b12"),
    ("EXPORTD_T_S3_SECRET", "PLANTED-s3-secret-a9f1e3"),
];
/// In a file referenced by `{ file = … }` (the file itself is the one place it may be).
const PLANTED_FILE_SECRET: &str = "PLANTED-sftp-pw-c3d2b7";
const SECRET_FILE: &str = "sftp.pw";
/// A systemd credential (`{ credential = … }`): the file `smtp-password` in
/// `$CREDENTIALS_DIRECTORY`, the one place it may be.
const PLANTED_CREDENTIAL: &str = "PLANTED-smtp-pw-e81f42";
const CREDENTIAL_NAME: &str = "smtp-password";
const CREDENTIALS_DIR: &str = "credentials";
/// The API token the admin uses, and one nobody holds.
const TOKEN: &str = "exd_PLANTEDtoken000000000000000000000000000000000000000000000000000000";
const WRONG_TOKEN: &str = "exd_PLANTEDwrongtoken1111111111111111111111111111111111111111111111";

fn planted() -> Vec<&'static str> {
    PLANTED_ENV
        .iter()
        .map(|(_, v)| *v)
        .chain([PLANTED_FILE_SECRET, PLANTED_CREDENTIAL, TOKEN, WRONG_TOKEN])
        .collect()
}

/// The forms a leaked value might take.
fn forms(secret: &str) -> Vec<Vec<u8>> {
    let core = secret.trim_start_matches("Bearer ");
    let url_encoded: String = core
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    vec![
        core.as_bytes().to_vec(),
        hex::encode(core).into_bytes(),
        url_encoded.into_bytes(),
    ]
}

/// Collected texts, searched at the end so one failure lists every leak.
#[derive(Default)]
struct Evidence {
    items: Vec<(String, Vec<u8>)>,
}

impl Evidence {
    fn add(&mut self, what: impl Into<String>, bytes: impl Into<Vec<u8>>) {
        self.items.push((what.into(), bytes.into()));
    }

    fn command(&mut self, out: &Output) {
        self.add(format!("stdout of `{}`", out.command), out.stdout.clone());
        self.add(format!("stderr of `{}`", out.command), out.stderr.clone());
    }

    /// Every file under `dir` except the secret's own source file.
    fn files(&mut self, dir: &Path) {
        for path in walk(dir) {
            if path
                .file_name()
                .is_some_and(|n| n == SECRET_FILE || n == CREDENTIAL_NAME)
            {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap_or_default();
            self.add(format!("file {}", path.display()), bytes);
        }
    }

    fn assert_no_leak(&self) {
        let mut leaks = Vec::new();
        for secret in planted() {
            for form in forms(secret) {
                for (what, bytes) in &self.items {
                    if bytes.windows(form.len()).any(|w| w == form.as_slice()) {
                        leaks.push(format!("`{}` in {what}", String::from_utf8_lossy(&form)));
                    }
                }
            }
        }
        assert!(
            self.items.len() > 20,
            "too little evidence: {}",
            self.items.len()
        );
        assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// A port on 127.0.0.1 nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// A URL path of the shared webhook receiver no other test uses.
fn hook_prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    format!("/secrets-{}-{nanos}", std::process::id())
}

/// The webhook goes to the real receiver (scripts/services/webhook.sh), so its signing secret
/// and Authorization header are used on a successful delivery; every other connection points
/// at a closed port, so its secrets are resolved and then the delivery fails.
fn daemon_config(dir: &Path, hook_prefix: &str) -> String {
    let port = closed_port();
    let hook_url = service("EXPORTD_TEST_WEBHOOK_URL");
    let token_hash = hex::encode(Sha256::digest(TOKEN.as_bytes()));
    format!(
        r#"
[http]
listen = "127.0.0.1:0"

[access]
url_signing_key = {{ env = "EXPORTD_T_URL_KEY" }}

[[access.tokens]]
name = "admin"
role = "admin"
sha256 = "{token_hash}"

[connections.hook]
type = "webhook"
url = "{hook_url}{hook_prefix}"
allow_insecure = true
signing_secret = {{ env = "EXPORTD_T_HOOK_SECRET" }}
headers = {{ Authorization = {{ env = "EXPORTD_T_HOOK_AUTH" }} }}

[connections.bucket]
type = "s3"
endpoint = "http://127.0.0.1:{port}"
path_style = true
region = "us-east-1"
access_key_id = {{ env = "EXPORTD_T_S3_ID" }}
secret_access_key = {{ env = "EXPORTD_T_S3_SECRET" }}
allow_insecure = true

[connections.box]
type = "sftp"
host = "127.0.0.1"
port = {port}
username = "exporter"
password = {{ file = "{}" }}
allow_insecure = true

[connections.relay]
type = "smtp"
host = "127.0.0.1"
port = {port}
tls = "none"
allow_insecure = true
username = "exporter"
password = {{ credential = "{CREDENTIAL_NAME}" }}
from = "exports@example.com"
"#,
        dir.join(SECRET_FILE).display()
    )
}

const LEADS: &str = r#"{"id":"S1","created_at":"2024-01-15T10:00:00Z","email":"ann@example.com","state":"CA"}
{"id":"S2","created_at":"2024-01-15T11:00:00Z","email":"bob@example.com","state":"TX"}
"#;

const LOCAL: &str = r#"
window = "all"
[fields]
include = ["lead_id", "email", "state"]
mask = { email = "hash" }
hash_key = { env = "EXPORTD_T_HASH_KEY" }
[format]
compression = "zip"
password = { env = "EXPORTD_T_ZIP_PW" }
[[deliver]]
to = "local"
path = "local/{{date}}_{{part}}.{{ext}}"
"#;

const WEBHOOK: &str = r#"
window = "all"
[fields]
include = ["lead_id", "state"]
[[deliver]]
to = "webhook"
connection = "hook"
"#;

const S3: &str = r#"
window = "all"
[fields]
include = ["lead_id", "state"]
[[deliver]]
to = "s3"
connection = "bucket"
bucket = "exports"
path = "s3/{{date}}_{{part}}.{{ext}}"
"#;

const SFTP: &str = r#"
window = "all"
[fields]
include = ["lead_id", "state"]
[[deliver]]
to = "sftp"
connection = "box"
path = "sftp/{{date}}_{{part}}.{{ext}}"
"#;

const EMAIL: &str = r#"
window = "all"
[fields]
include = ["lead_id", "state"]
[[deliver]]
to = "email"
connection = "relay"
recipients = ["buyer@example.com"]
zip_password = { env = "EXPORTD_T_ZIP_PW" }
"#;

/// The workspace: config, definitions, the secret file and the ingested leads.
struct Setup {
    dir: tempfile::TempDir,
    hook_prefix: String,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::Builder::new()
            .prefix("exportd-secrets-")
            .tempdir()
            .expect("temp dir");
        let write = |relative: &str, text: &str| {
            let path = dir.path().join(relative);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        };
        let hook_prefix = hook_prefix();
        write("exportd.toml", &daemon_config(dir.path(), &hook_prefix));
        write(SECRET_FILE, &format!("{PLANTED_FILE_SECRET}\n"));
        write(
            &format!("{CREDENTIALS_DIR}/{CREDENTIAL_NAME}"),
            PLANTED_CREDENTIAL,
        );
        for (name, text) in [
            ("local", LOCAL),
            ("webhook", WEBHOOK),
            ("s3", S3),
            ("sftp", SFTP),
            ("email", EMAIL),
        ] {
            write(&format!("exports.d/{name}.toml"), text);
        }
        let setup = Setup { dir, hook_prefix };
        setup
            .exportd()
            .file("leads.ndjson", LEADS)
            .args(["ingest", "--leads", "leads.ndjson"])
            .run()
            .success();
        setup
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `exportd --config DIR/exportd.toml` with every planted variable set.
    fn exportd(&self) -> Test {
        let mut test = Test::new()
            .arg("--config")
            .arg(self.path().join("exportd.toml"))
            .env("EXPORTD_LOG", "debug")
            .env("CREDENTIALS_DIRECTORY", self.path().join(CREDENTIALS_DIR));
        for (key, value) in PLANTED_ENV {
            test = test.env(key, value);
        }
        test
    }
}

#[test]
fn planted_secrets_appear_in_no_output_log_response_or_file() {
    let setup = Setup::new();
    let mut evidence = Evidence::default();

    for args in [
        vec!["validate"],
        vec!["validate", "--format", "json"],
        vec!["plan"],
        vec!["plan", "--format", "json"],
        vec![
            "export",
            "local",
            "--at",
            "2024-01-16T02:00:00Z",
            "--dry-run",
        ],
    ] {
        let out = setup.exportd().args(&args).run().success();
        evidence.command(&out);
    }
    for name in ["local", "webhook"] {
        let out = setup
            .exportd()
            .args(["export", name, "--at", "2024-01-16T02:00:00Z"])
            .run()
            .success();
        evidence.command(&out);
    }
    // Positive control: the receiver did get the planted header and a signature, so the
    // secrets were resolved and used, and the search below would find them if they leaked.
    let received = received_by_hook(&setup.hook_prefix);
    assert!(
        received.contains("PLANTED-hook-auth-0d4c9e") && received.contains("sha256="),
        "the webhook receiver did not get the planted Authorization header:\n{received}"
    );
    for name in ["s3", "sftp", "email"] {
        let out = setup
            .exportd()
            .args(["export", name, "--at", "2024-01-16T02:00:00Z"])
            .run();
        assert!(
            !out.status.success(),
            "delivery of `{name}` to a closed port succeeded:\n{}",
            out.stdout
        );
        // Refused at the closed port: the secrets were resolved (they are resolved before
        // connecting), so the failure path with them in hand is what is searched.
        assert!(
            out.stderr.contains("Connection refused"),
            "`{name}` failed before connecting:\n{}",
            out.stderr
        );
        evidence.command(&out);
    }
    for args in [
        vec!["status"],
        vec!["status", "--format", "json"],
        vec!["audit", "--format", "json"],
        vec!["retention", "--dry-run"],
    ] {
        let out = setup.exportd().args(&args).run();
        evidence.command(&out);
    }

    let mut env: Vec<(&str, String)> = PLANTED_ENV
        .iter()
        .map(|(k, v)| (*k, (*v).to_owned()))
        .collect();
    env.push((
        "CREDENTIALS_DIRECTORY",
        setup.path().join(CREDENTIALS_DIR).display().to_string(),
    ));
    let daemon = Daemon::start(setup.path(), &env);
    for (method, path, token) in [
        ("GET", "/v1/exports", TOKEN),
        ("GET", "/v1/exports/local", TOKEN),
        ("GET", "/v1/exports/webhook", TOKEN),
        ("GET", "/v1/runs", TOKEN),
        ("GET", "/metrics", TOKEN),
        ("GET", "/v1/audit", TOKEN),
        ("POST", "/v1/exports/webhook/run", TOKEN),
        ("POST", "/v1/exports/sftp/run", TOKEN),
        ("POST", "/v1/exports/s3/run", TOKEN),
        ("POST", "/v1/exports/email/run", TOKEN),
        ("GET", "/v1/exports", WRONG_TOKEN),
    ] {
        let (status, body) = daemon.http(method, path, token);
        evidence.add(format!("{method} {path} ({status})"), body);
    }
    // Ad-hoc definitions: one using references, and one with a secret pasted literally (a
    // mistake validation must refuse without repeating the value back).
    for (name, hash_key) in [
        ("refs", "{ env = \"EXPORTD_T_HASH_KEY\" }".to_owned()),
        ("pasted", format!("\"{}\"", PLANTED_ENV[0].1)),
    ] {
        let definition = format!(
            "window = \"all\"\n[fields]\ninclude = [\"lead_id\", \"email\"]\nmask = {{ email = \"hash\" }}\nhash_key = {hash_key}\n[[deliver]]\nto = \"local\"\npath = \"adhoc/{{{{export}}}}.csv\"\n"
        );
        let body = serde_json::json!({ "name": name, "definition": definition }).to_string();
        let (status, reply) = daemon.http_body("POST", "/v1/exports/adhoc", TOKEN, &body);
        let expected = if name == "refs" { 202 } else { 400 };
        assert_eq!(status, expected, "ad-hoc `{name}`: {reply}");
        evidence.add(format!("POST /v1/exports/adhoc {name} ({status})"), reply);
    }
    let (status, runs) = daemon.http("GET", "/v1/runs", TOKEN);
    assert_eq!(status, 200, "{runs}");
    // A file listing carries signed download links: signatures, never the key.
    if let Some(run) = first_run_of(&runs, "local") {
        let path = format!("/v1/runs/local/{run}/files");
        let (status, body) = daemon.http("GET", &path, TOKEN);
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("sig"), "no signed link in {body}");
        evidence.add(format!("GET {path}"), body);
    }
    daemon.wait_for_log("Run failed", Duration::from_secs(20));
    drop(daemon);
    let log = std::fs::read(setup.path().join("daemon.log")).unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&log).contains("DEBUG"),
        "the daemon did not log at debug level"
    );

    evidence.files(setup.path());
    assert!(
        evidence
            .items
            .iter()
            .any(|(what, _)| what.contains("state") || what.contains(".db")),
        "the state database was not searched"
    );
    evidence.assert_no_leak();
}

/// What the webhook receiver recorded under `prefix` (JSON lines with headers).
fn received_by_hook(prefix: &str) -> String {
    let url = format!(
        "{}/_received?prefix={prefix}",
        service("EXPORTD_TEST_WEBHOOK_URL")
    );
    let out = Command::new("curl")
        .args(["-sSf", &url])
        .output()
        .expect("running curl");
    assert!(out.status.success(), "reading the receiver failed: {out:?}");
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// The run id of the first run of `export` in a `/v1/runs` body.
fn first_run_of(body: &str, export: &str) -> Option<String> {
    let json: serde_json::Value = serde_json::from_str(body).ok()?;
    let runs = json.as_array().or_else(|| json["runs"].as_array())?;
    runs.iter()
        .filter(|r| r["export"] == export)
        .find_map(|r| r["run_id"].as_str().map(str::to_owned))
}

/// `exportd run` on a directory with its exportd.toml, killed when dropped; logs to
/// DIR/daemon.log.
pub(crate) struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    pub(crate) fn start(dir: &Path, env: &[(&str, String)]) -> Daemon {
        let log = dir.join("daemon.log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_exportd"));
        command
            .arg("--config")
            .arg(dir.join("exportd.toml"))
            .arg("run")
            .current_dir(dir)
            .env_remove("EXPORTD_CONFIG")
            .env("EXPORTD_LOG", "debug")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        for (key, value) in env {
            command.env(key, value);
        }
        let daemon = Daemon {
            child: command.spawn().expect("start exportd run"),
            log,
        };
        daemon.wait_for_log("exportd is ready", Duration::from_secs(20));
        daemon
    }

    pub(crate) fn wait_for_log(&self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "`{needle}` not logged within {limit:?}; log:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn api(&self) -> String {
        let text = self.wait_for_log("HTTP API listening", Duration::from_secs(5));
        let line = text
            .lines()
            .find(|l| l.contains("HTTP API listening"))
            .expect("listening line");
        let start = line.find("address=").expect("address field") + "address=".len();
        line[start..]
            .split_whitespace()
            .next()
            .expect("address")
            .to_owned()
    }

    /// One HTTP/1.1 request with a bearer token; returns (status, body).
    pub(crate) fn http(&self, method: &str, path: &str, token: &str) -> (u16, String) {
        self.http_body(method, path, token, "")
    }

    /// The same with a JSON body.
    pub(crate) fn http_body(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: &str,
    ) -> (u16, String) {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(self.api()).expect("connect to the API");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("send");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read");
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status line");
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
