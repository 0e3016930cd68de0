//! Message destinations end to end against real servers on loopback: `to = "email"` through
//! aiosmtpd (STARTTLS with a private CA, AUTH, a Maildir read back with Python's `email`
//! package) and `to = "webhook"` through the stdlib receiver `tests/services/hook.py`, which
//! can be scripted to fail. Both servers are shared by tests running in parallel, so every test
//! uses recipients or URL paths of its own.

use crate::util::{Output, Test, repo_root, service};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value as Json;
use sha2::Sha256;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// A store, `exports.d/`, an `exportd.toml` with the test servers as connections, and an output
/// directory shared by several `exportd` commands.
struct Workspace {
    dir: TempDir,
    env: Vec<(String, String)>,
}

impl Workspace {
    fn new(config: &str) -> Workspace {
        let dir = tempfile::Builder::new()
            .prefix("exportd-messages-")
            .tempdir()
            .expect("creating a temporary directory");
        std::fs::write(dir.path().join("exportd.toml"), config).expect("writing exportd.toml");
        Workspace {
            dir,
            env: Vec::new(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Sets an environment variable of every later command (secret references).
    fn env(mut self, key: &str, value: &str) -> Workspace {
        self.env.push((key.into(), value.into()));
        self
    }

    fn definition(&self, name: &str, toml: &str) -> &Workspace {
        let path = self.path().join("exports.d").join(format!("{name}.toml"));
        std::fs::create_dir_all(path.parent().expect("exports.d")).expect("creating exports.d");
        std::fs::write(&path, toml).expect("writing a definition");
        self
    }

    fn exportd(&self) -> Test {
        let mut test = Test::new()
            .arg("--config")
            .arg(self.path().join("exportd.toml"));
        for (key, value) in &self.env {
            test = test.env(key, value);
        }
        test
    }

    fn ingest(&self, ndjson: &str) -> &Workspace {
        self.exportd()
            .file("leads.ndjson", ndjson)
            .args(["ingest", "--leads", "leads.ndjson"])
            .run()
            .success();
        self
    }

    /// `exportd export NAME --at AT`, whatever its outcome.
    fn export(&self, name: &str, at: &str) -> Output {
        self.exportd().args(["export", name, "--at", at]).run()
    }

    fn output(&self, relative: &str) -> PathBuf {
        self.path().join("var/exports").join(relative)
    }
}

/// `n` leads (at most 86,399) of 2024-01-15 (UTC), one a second in id order, with ids
/// `{prefix}00001`…, a decimal and a string with characters JSON must escape.
fn leads(prefix: &str, n: usize) -> String {
    (1..=n)
        .map(|i| {
            format!(
                "{{\"id\":\"{prefix}{i:05}\",\"created_at\":\"2024-01-15T{:02}:{:02}:{:02}Z\",\"state\":\"CA\",\"revenue\":\"{i}.50\",\"note\":\"a \\\"quoted\\\", line\\nbreak\"}}\n",
                i / 3600,
                i / 60 % 60,
                i % 60
            )
        })
        .collect()
}

/// The day after the leads: `window = "previous_day"` exports them.
const AT: &str = "2024-01-16T02:00:00Z";

/// A name no other test uses, for recipients and webhook paths.
fn unique(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    format!("{test}-{}-{nanos}", std::process::id())
}

fn hmac_hex(key: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes()).expect("any key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn python(args: &[&str]) -> String {
    let output = Command::new("python3")
        .args(args)
        .output()
        .expect("running python3 (install python3)");
    assert!(
        output.status.success(),
        "python3 {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

// ---------------------------------------------------------------------------------------------
// Email
// ---------------------------------------------------------------------------------------------

/// exportd.toml with the test relay as `relay`: STARTTLS, the test CA, the password from
/// `SMTP_PASSWORD`.
fn smtp_config() -> String {
    format!(
        r#"
[connections.relay]
type = "smtp"
host = "{host}"
port = {port}
tls = "starttls"
ca_file = "{ca}"
username = "{user}"
password = {{ env = "SMTP_PASSWORD" }}
from = "exportd <exportd@example.test>"
timeout_seconds = 20
"#,
        host = service("EXPORTD_TEST_SMTP_HOST"),
        port = service("EXPORTD_TEST_SMTP_PORT"),
        ca = service("EXPORTD_TEST_SMTP_CA"),
        user = service("EXPORTD_TEST_SMTP_USER"),
    )
}

/// The messages in the test relay's Maildir addressed to `recipient`, attachments decoded into
/// `into`.
fn mail_to(recipient: &str, into: &Path) -> Vec<Json> {
    let script = repo_root().join("tests/services/readmail.py");
    let maildir = service("EXPORTD_TEST_SMTP_MAILDIR");
    let text = python(&[
        script.to_str().expect("UTF-8 path"),
        &maildir,
        recipient,
        into.to_str().expect("UTF-8 path"),
    ]);
    serde_json::from_str::<Json>(&text)
        .expect("readmail.py prints JSON")
        .as_array()
        .cloned()
        .expect("a list")
}

fn email_definition(recipients: &[&str], extra: &str) -> String {
    format!(
        r#"
window = "previous_day"
[fields]
include = ["lead_id", "state", "revenue"]
[format]
type = "csv"
[[deliver]]
to = "local"
path = "copy/leads_{{{{date}}}}.csv"
[[deliver]]
to = "email"
connection = "relay"
recipients = {recipients:?}
subject = "Leads {{{{date}}}} of {{{{export}}}} ({{{{week}}}})"
path = "leads_{{{{date}}}}.csv"
{extra}
"#
    )
}

#[test]
fn email_arrives_with_the_rendered_subject_the_summary_and_the_part_attached() {
    let to = format!("{}@example.test", unique("plain"));
    let cc = format!("{}@example.test", unique("second"));
    let ws =
        Workspace::new(&smtp_config()).env("SMTP_PASSWORD", &service("EXPORTD_TEST_SMTP_PASSWORD"));
    ws.definition("mailed", &email_definition(&[&to, &cc], ""))
        .ingest(&leads("M", 40));
    let out = ws.export("mailed", AT).success();

    let got = mail_to(&to, ws.path());
    assert_eq!(got.len(), 1, "exactly one email per run: {got:#?}");
    let mail = &got[0];
    assert_eq!(mail["subject"], "Leads 2024-01-15 of mailed (2024-W03)");
    assert!(mail["to"].as_str().unwrap().contains(&cc), "{mail}");
    assert!(
        mail["from"]
            .as_str()
            .unwrap()
            .contains("exportd@example.test")
    );
    let body = mail["body"].as_str().unwrap();
    let staged = std::fs::read(ws.output("copy/leads_2024-01-15.csv")).expect("local copy");
    let sha = hex::encode(<Sha256 as sha2::Digest>::digest(&staged));
    for expected in [
        "export `mailed`, run 20240116T020000Z",
        "Window: 2024-01-15T00:00:00+00:00 to 2024-01-16T00:00:00+00:00",
        "Rows:   40",
        "Parts:  1",
        &format!("sha256 {sha}"),
    ] {
        assert!(
            body.contains(expected),
            "`{expected}` missing from the body:\n{body}"
        );
    }
    let attachments = mail["attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 1, "{mail}");
    assert_eq!(attachments[0]["name"], "leads_2024-01-15.csv");
    assert_eq!(attachments[0]["content_type"], "text/csv");
    let attached = std::fs::read(attachments[0]["file"].as_str().unwrap()).unwrap();
    assert_eq!(
        attached, staged,
        "the attachment is the staged part, byte for byte"
    );
    assert!(
        String::from_utf8_lossy(&attached).starts_with("lead_id,state,revenue\nM00001,CA,1.50\n")
    );
    assert!(
        out.stderr.is_empty() || !out.stderr.contains("retrying"),
        "{}",
        out.stderr
    );
}

#[test]
fn zip_password_sends_one_aes_256_zip_that_opens_with_the_password_only() {
    let to = format!("{}@example.test", unique("zipped"));
    let ws = Workspace::new(&smtp_config())
        .env("SMTP_PASSWORD", &service("EXPORTD_TEST_SMTP_PASSWORD"))
        .env("ZIP_PASSWORD", "correct horse");
    ws.definition(
        "zipped",
        &email_definition(&[&to], "zip_password = { env = \"ZIP_PASSWORD\" }"),
    )
    .ingest(&leads("Z", 25));
    ws.export("zipped", AT).success();

    let got = mail_to(&to, ws.path());
    assert_eq!(got.len(), 1, "{got:#?}");
    let attachments = got[0]["attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 1, "{:#?}", got[0]);
    assert_eq!(attachments[0]["name"], "zipped_20240116T020000Z.zip");
    assert_eq!(attachments[0]["content_type"], "application/zip");
    let zip = attachments[0]["file"].as_str().unwrap();

    // Info-ZIP `unzip` 6.0 cannot decrypt AES (it reports "need PK compat. v5.1"): 7-Zip can,
    // as can WinZip and macOS' Archive Utility.
    let seven_zip = |args: &[&str]| {
        Command::new("7z")
            .args(args)
            .arg(zip)
            .output()
            .expect("running 7z (apt-get install p7zip-full)")
    };
    let opened = seven_zip(&["x", "-so", "-pcorrect horse"]);
    assert!(
        opened.status.success(),
        "7z -p failed: {}",
        String::from_utf8_lossy(&opened.stderr)
    );
    let staged = std::fs::read(ws.output("copy/leads_2024-01-15.csv")).expect("local copy");
    assert_eq!(opened.stdout, staged, "the zip holds the staged part");
    let listing = String::from_utf8_lossy(&seven_zip(&["l", "-slt"]).stdout).into_owned();
    assert!(listing.contains("Method = AES-256"), "{listing}");
    assert!(listing.contains("Path = leads_2024-01-15.csv"), "{listing}");
    for wrong in [vec!["x", "-so", "-pwrong"], vec!["x", "-so", "-p"]] {
        let out = seven_zip(&wrong);
        assert!(
            !out.status.success() && out.stdout != staged,
            "`7z {}` opened the zip",
            wrong.join(" ")
        );
    }
}

#[test]
fn a_run_over_max_size_fails_before_anything_is_sent() {
    let to = format!("{}@example.test", unique("toolarge"));
    let ws =
        Workspace::new(&smtp_config()).env("SMTP_PASSWORD", &service("EXPORTD_TEST_SMTP_PASSWORD"));
    ws.definition("toolarge", &email_definition(&[&to], "max_size = \"1KB\""))
        .ingest(&leads("T", 200));
    let out = ws.export("toolarge", AT).failure();
    assert!(
        out.stderr.contains("too large to email") && out.stderr.contains("`max_size` 1KB"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("nothing was sent"), "{}", out.stderr);
    assert_eq!(mail_to(&to, ws.path()).len(), 0, "nothing may arrive");
}

#[test]
fn a_wrong_smtp_password_fails_the_run_without_retrying() {
    let to = format!("{}@example.test", unique("badpw"));
    let ws = Workspace::new(&smtp_config()).env("SMTP_PASSWORD", "not-the-password");
    ws.definition("badpw", &email_definition(&[&to], ""))
        .ingest(&leads("P", 3));
    let started = std::time::Instant::now();
    let out = ws.export("badpw", AT).failure();
    assert!(out.stderr.contains("535"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("check `username` and `password` of connection `relay`"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("retrying"),
        "a 5xx is permanent:\n{}",
        out.stderr
    );
    assert!(!out.stderr.contains("not-the-password"), "{}", out.stderr);
    assert!(started.elapsed().as_secs() < 20, "{:?}", started.elapsed());
    assert_eq!(mail_to(&to, ws.path()).len(), 0);
}

#[test]
fn clear_text_smtp_and_http_are_refused_unless_allowed_on_loopback() {
    let config = r#"
[connections.plain-remote]
type = "smtp"
host = "smtp.example.com"
tls = "none"
allow_insecure = true
from = "a@example.com"

[connections.plain-unasked]
type = "smtp"
host = "127.0.0.1"
tls = "none"
from = "a@example.com"

[connections.plain-local]
type = "smtp"
host = "127.0.0.1"
tls = "none"
allow_insecure = true
from = "a@example.com"

[connections.http-remote]
type = "webhook"
url = "http://crm.example.com/api"
allow_insecure = true

[connections.http-unasked]
type = "webhook"
url = "http://127.0.0.1:9/api"

[connections.http-local]
type = "webhook"
url = "http://localhost:9/api"
allow_insecure = true
"#;
    let out = Test::new()
        .daemon_config(config)
        .file(
            "exports.d/x.toml",
            "window = \"all\"\n[[deliver]]\nto = \"local\"\npath = \"x.csv\"\n",
        )
        .args(["--config", "exportd.toml", "validate"])
        .run()
        .failure();
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(text.contains("`smtp.example.com` is not one"), "{text}");
    assert!(
        text.contains("set `allow_insecure = true` for a relay on loopback"),
        "{text}"
    );
    assert!(text.contains("`crm.example.com` is not one"), "{text}");
    assert!(
        text.contains("`http://127.0.0.1:9/api` is plain http"),
        "{text}"
    );
    assert!(
        !text.contains("plain-local") && !text.contains("localhost:9"),
        "{text}"
    );
    assert_eq!(text.matches("error").count(), 4, "{text}");
}

// ---------------------------------------------------------------------------------------------
// Webhook
// ---------------------------------------------------------------------------------------------

const SIGNING_SECRET: &str = "hook-signing-secret";

fn webhook_config() -> String {
    format!(
        r#"
[connections.hook]
type = "webhook"
url = "{url}/in"
allow_insecure = true
signing_secret = {{ env = "HOOK_SIGNING_SECRET" }}
headers = {{ Authorization = {{ env = "HOOK_TOKEN" }} }}
timeout_seconds = 10
"#,
        url = service("EXPORTD_TEST_WEBHOOK_URL"),
    )
}

fn webhook_workspace() -> Workspace {
    Workspace::new(&webhook_config())
        .env("HOOK_SIGNING_SECRET", SIGNING_SECRET)
        .env("HOOK_TOKEN", "Bearer hook-token")
}

/// Answers the next POSTs to exactly `path` (under the connection's `/in`) with these responses.
fn script(path: &str, responses: Json) {
    script_receiver(&format!("/in{path}"), responses);
}

/// Tells the webhook receiver to answer the next POSTs to exactly `path` with `responses`.
pub(crate) fn script_receiver(path: &str, responses: Json) {
    let url = format!("{}/_script", service("EXPORTD_TEST_WEBHOOK_URL"));
    let body = serde_json::json!({ "path": path, "responses": responses });
    let status = Command::new("curl")
        .args([
            "-sSf",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
        ])
        .arg(body.to_string())
        .arg(&url)
        .status()
        .expect("running curl");
    assert!(status.success(), "scripting the receiver failed");
}

/// Every request the receiver got under `/in{prefix}`, in arrival order.
fn received(prefix: &str) -> Vec<Json> {
    let url = format!(
        "{}/_received?prefix=/in{prefix}",
        service("EXPORTD_TEST_WEBHOOK_URL")
    );
    let out = Command::new("curl")
        .args(["-sSf", &url])
        .output()
        .expect("running curl");
    assert!(out.status.success(), "reading the receiver failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn body_of(request: &Json) -> Vec<u8> {
    let text = request["body_b64"].as_str().expect("body_b64");
    decode_base64(text)
}

/// Standard base64 (the receiver's encoding), without a crate for it.
pub(crate) fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let mut out = Vec::new();
    for chunk in text.trim_end_matches('=').as_bytes().chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= u32::from(value(c)) << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

fn header<'a>(request: &'a Json, name: &str) -> &'a str {
    request["headers"][name]
        .as_str()
        .unwrap_or_else(|| panic!("no `{name}` header in {}", request["headers"]))
}

fn webhook_definition(path: &str, format: &str, compression: &str, batch_size: &str) -> String {
    format!(
        r#"
window = "previous_day"
[fields]
include = ["lead_id", "revenue", "note"]
[format]
type = "{format}"
compression = "{compression}"
[[deliver]]
to = "local"
path = "copy/leads.{{{{ext}}}}"
[[deliver]]
to = "webhook"
connection = "hook"
path = "{path}/{{{{export}}}}"
headers = {{ "X-Window-Date" = "{{{{date}}}}" }}
{batch_size}
"#
    )
}

#[test]
fn webhook_delivers_every_record_once_in_signed_batches_despite_500s_and_a_429() {
    let path = format!("/{}", unique("batches"));
    let ws = webhook_workspace();
    ws.definition(
        "hooked",
        &webhook_definition(&path, "ndjson", "gzip", "batch_size = 1000"),
    )
    .ingest(&leads("W", 2500));
    script(
        &format!("{path}/hooked"),
        serde_json::json!([
            {"status": 500},
            {"status": 503},
            {"status": 429, "retry_after": "1"},
        ]),
    );
    let out = ws.export("hooked", AT).success();
    assert_eq!(out.stderr.matches("retrying").count(), 3, "{}", out.stderr);

    let requests = received(&path);
    let ok: Vec<&Json> = requests.iter().filter(|r| r["status"] == 200).collect();
    assert_eq!(requests.len(), 6, "3 batches, the first after 3 failures");
    assert_eq!(ok.len(), 3);
    let mut ids = Vec::new();
    let mut keys = BTreeSet::new();
    for (n, request) in ok.iter().enumerate() {
        assert_eq!(request["path"], format!("/in{path}/hooked"));
        let body = body_of(request);
        assert_eq!(
            header(request, "x-exportd-signature"),
            format!("sha256={}", hmac_hex(SIGNING_SECRET, &body)),
            "batch {}",
            n + 1
        );
        assert_eq!(header(request, "authorization"), "Bearer hook-token");
        assert_eq!(header(request, "x-window-date"), "2024-01-15");
        assert_eq!(header(request, "content-type"), "application/json");
        assert!(
            header(request, "x-exportd-timestamp")
                .parse::<i64>()
                .is_ok()
        );
        keys.insert(header(request, "idempotency-key").to_owned());
        let json: Json = serde_json::from_slice(&body).expect("a JSON body");
        assert_eq!(json["export"], "hooked");
        assert_eq!(json["run_id"], "20240116T020000Z");
        assert_eq!(json["batch"], n + 1);
        let records = json["records"].as_array().unwrap();
        assert_eq!(records.len(), [1000, 1000, 500][n]);
        ids.extend(
            records
                .iter()
                .map(|r| r["lead_id"].as_str().unwrap().to_owned()),
        );
    }
    assert_eq!(keys.len(), 3, "distinct idempotency keys per batch");
    let expected: Vec<String> = (1..=2500).map(|i| format!("W{i:05}")).collect();
    assert!(
        ids == expected,
        "every record exactly once, in order: got {} records, {} distinct",
        ids.len(),
        ids.iter().collect::<BTreeSet<_>>().len()
    );
    // Decimals keep their exact text, and escapes survive.
    let first = String::from_utf8(body_of(ok[0])).unwrap();
    assert!(
        first.contains(r#""revenue":1.50,"note":"a \"quoted\", line\nbreak""#),
        "{}",
        &first[..300]
    );
    // The retries of batch 1 carried its idempotency key, and waited for Retry-After.
    let first_key = header(ok[0], "idempotency-key");
    for failed in &requests[..3] {
        assert_eq!(header(failed, "idempotency-key"), first_key);
    }
    let after_429 =
        requests[3]["received_at"].as_f64().unwrap() - requests[2]["received_at"].as_f64().unwrap();
    assert!(
        after_429 >= 0.95,
        "Retry-After: 1 honoured, waited {after_429:.3} s"
    );
}

#[test]
fn webhook_400_is_not_retried_and_fails_the_run_naming_batch_and_status() {
    let path = format!("/{}", unique("rejected"));
    let ws = webhook_workspace();
    ws.definition(
        "rejected",
        &webhook_definition(&path, "ndjson", "none", "batch_size = 2"),
    )
    .ingest(&leads("R", 5));
    script(
        &format!("{path}/rejected"),
        serde_json::json!([{"status": 400, "body": "missing field `email`; token Bearer hook-token"}]),
    );
    let out = ws.export("rejected", AT).failure();
    assert!(
        out.stderr.contains("batch 1 (records 1-2 of part 1)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("HTTP 400 Bad Request"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("missing field `email`"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("hook-token"),
        "secrets are redacted: {}",
        out.stderr
    );
    assert!(!out.stderr.contains("retrying"), "{}", out.stderr);
    assert_eq!(
        received(&path).len(),
        1,
        "a 400 is not retried, and no later batch is sent"
    );
}

#[test]
fn webhook_rerun_of_a_json_export_sends_the_same_idempotency_keys() {
    let path = format!("/{}", unique("rerun"));
    let ws = webhook_workspace();
    ws.definition(
        "rerun",
        &webhook_definition(&path, "json", "zstd", "batch_size = 2"),
    )
    .ingest(&leads("J", 5));
    ws.export("rerun", AT).success();
    ws.export("rerun", AT).success();
    let requests = received(&path);
    assert_eq!(requests.len(), 6, "3 batches per run");
    let keys: Vec<&str> = requests
        .iter()
        .map(|r| header(r, "idempotency-key"))
        .collect();
    assert_eq!(keys[..3], keys[3..], "a re-run sends the same keys");
    assert_eq!(keys[..3].iter().collect::<BTreeSet<_>>().len(), 3);
    let ids: Vec<String> = requests[..3]
        .iter()
        .flat_map(|r| {
            let json: Json = serde_json::from_slice(&body_of(r)).unwrap();
            json["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["lead_id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(ids, ["J00001", "J00002", "J00003", "J00004", "J00005"]);
}

#[test]
fn webhook_posts_a_csv_part_whole_with_its_content_type() {
    let path = format!("/{}", unique("whole"));
    let ws = webhook_workspace();
    ws.definition("whole", &webhook_definition(&path, "csv", "none", ""))
        .ingest(&leads("C", 4));
    ws.export("whole", AT).success();
    let requests = received(&path);
    assert_eq!(requests.len(), 1);
    let body = body_of(&requests[0]);
    assert_eq!(body, std::fs::read(ws.output("copy/leads.csv")).unwrap());
    assert_eq!(header(&requests[0], "content-type"), "text/csv");
    assert_eq!(
        header(&requests[0], "x-exportd-signature"),
        format!("sha256={}", hmac_hex(SIGNING_SECRET, &body))
    );
}

#[test]
fn batch_size_is_refused_for_a_format_that_cannot_be_split_into_records() {
    let out = Test::new()
        .daemon_config(webhook_config())
        .file(
            "exports.d/csvhook.toml",
            webhook_definition("/x", "csv", "gzip", "batch_size = 10"),
        )
        .args(["--config", "exportd.toml", "validate"])
        .run()
        .failure();
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(
        text.contains("csvhook.toml:")
            && text.contains("`batch_size` needs records a webhook can split"),
        "{text}"
    );
}

#[test]
fn an_encrypted_ndjson_export_is_posted_whole_and_sealed_not_as_records() {
    let path = format!("/{}", unique("sealed"));
    let ws = webhook_workspace();
    let (identity, public) = crate::encrypt::keygen(ws.path(), "key.txt");
    let definition = webhook_definition(&path, "ndjson", "gzip", "")
        + &format!("[encrypt]\nage_recipients = [\"{public}\"]\n");
    ws.definition("sealed", &definition).ingest(&leads("E", 3));
    ws.export("sealed", AT).success();

    let requests = received(&path);
    assert_eq!(
        requests.len(),
        1,
        "one sealed part, one request: {requests:?}"
    );
    let body = body_of(&requests[0]);
    assert!(
        body.starts_with(b"age-encryption.org/v1\n"),
        "the webhook got something other than an age file"
    );
    let local = ws.output("copy/leads.ndjson.gz.age");
    assert_eq!(
        body,
        std::fs::read(&local).unwrap(),
        "every destination gets the same sealed bytes"
    );
    assert_eq!(
        header(&requests[0], "content-type"),
        "application/octet-stream"
    );
    assert_eq!(
        header(&requests[0], "x-exportd-signature"),
        format!("sha256={}", hmac_hex(SIGNING_SECRET, &body))
    );
    let opened = crate::encrypt::age_decrypt(&identity, &local);
    assert!(opened.status.success(), "{opened:?}");
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(&opened.stdout[..]),
        &mut text,
    )
    .expect("the decrypted part is gzip");
    let ids: Vec<_> = text
        .lines()
        .map(|l| serde_json::from_str::<Json>(l).expect("an NDJSON record")["lead_id"].clone())
        .collect();
    assert_eq!(ids, ["E00001", "E00002", "E00003"]);
}

#[test]
fn batch_size_is_refused_for_encrypted_parts() {
    let ws = webhook_workspace();
    let definition = webhook_definition("/x", "ndjson", "none", "batch_size = 10")
        + "[encrypt]\nage_recipients = [\"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\"]\n";
    ws.definition("sealed", &definition);
    let out = ws.exportd().arg("validate").run().failure();
    let report = format!("{}{}", out.stdout, out.stderr);
    assert!(
        report.contains("sealed.toml:16:") && report.contains("cannot split encrypted parts"),
        "{report}"
    );
}
