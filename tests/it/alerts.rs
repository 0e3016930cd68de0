//! Alerts end to end: a daemon (`exportd run`) with `[alerts]` pointing at the real webhook
//! receiver (`tests/services/hook.py`) or the real SMTP relay (aiosmtpd, STARTTLS, AUTH), runs
//! triggered through the API, and definitions edited on disk. Every kind of alert must arrive
//! exactly once per cause while the cause persists, and again after the cause went away and
//! came back.

use crate::daemon::{Daemon, write};
use crate::util::{Test, repo_root, service};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value as Json;
use sha2::Sha256;
use std::time::{Duration, Instant};

/// A name no other test uses, for recipients and webhook paths.
fn unique(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    format!("{test}-{}-{nanos}", std::process::id())
}

/// Five leads of 2024-01-15.
const LEADS: &str = r#"{"id":"a1","created_at":"2024-01-15T00:00:01Z","state":"CA","revenue":"1.50"}
{"id":"a2","created_at":"2024-01-15T00:00:02Z","state":"TX","revenue":"2.50"}
{"id":"a3","created_at":"2024-01-15T00:00:03Z","state":"CA","revenue":"3.50"}
{"id":"a4","created_at":"2024-01-15T00:00:04Z","state":"NY","revenue":"4.50"}
{"id":"a5","created_at":"2024-01-15T00:00:05Z","state":"CA","revenue":"5.50"}
"#;

/// Exported whole, delivered locally: five rows, over `alert_rows = 2`.
const BIG: &str = r#"
window = "all"
alert_rows = 2
[format]
type = "csv"
[[deliver]]
to = "local"
path = "big/{{run_id}}.csv"
"#;

/// Fails before delivery: its hash key is in an environment variable nobody sets.
const NO_KEY: &str = r#"
window = "all"
[fields]
mask = { state = "hash" }
hash_key = { env = "EXPORTD_TEST_ALERTS_UNSET_KEY" }
[[deliver]]
to = "local"
path = "nokey/{{run_id}}.csv"
"#;

/// Not a valid definition: an unknown window.
const BROKEN: &str = "window = \"yesterday-ish\"\n[[deliver]]\nto = \"local\"\npath = \"x.csv\"\n";
/// Broken differently (another reload of a still-broken file).
const BROKEN_AGAIN: &str = "window = \"all\"\n[[deliver]]\nto = \"nowhere\"\n";
/// Valid.
const FIXED: &str = "window = \"all\"\n[[deliver]]\nto = \"local\"\npath = \"fixed.csv\"\n";

/// A daemon on a directory holding `config`, `files` and the five leads, with `env`.
fn daemon(config: &str, files: &[(&str, &str)], env: &[(&str, &str)]) -> Daemon {
    let dir = tempfile::Builder::new()
        .prefix("exportd-alerts-")
        .tempdir()
        .expect("temp dir");
    let config_path = dir.path().join("exportd.toml");
    write(&config_path, config);
    Test::new()
        .arg("--config")
        .arg(&config_path)
        .file("leads.ndjson", LEADS)
        .args(["ingest", "--leads", "leads.ndjson"])
        .run()
        .success();
    for (name, text) in files {
        write(&dir.path().join(name), text);
    }
    Daemon::spawn_with(dir, env)
}

/// Triggers a run of `export` through the API and waits until it is logged as finished.
fn run(daemon: &Daemon, export: &str) {
    let before = daemon.log_text().len();
    // Run ids have one-second resolution: two runs in the same second would share one.
    std::thread::sleep(Duration::from_millis(1100));
    let (status, body) = daemon.http("POST", &format!("/v1/exports/{export}/run"));
    assert_eq!(status, 202, "trigger {export}: {body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = daemon.log_text();
        let tail = &log[before..];
        if tail.lines().any(|l| {
            (l.contains("Run completed") || l.contains("Run failed"))
                && l.contains(&format!("export={export}"))
        }) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "run of {export} did not finish; log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Rewrites a definition and waits until the daemon reconciled it.
fn edit(daemon: &Daemon, relative: &str, text: &str) {
    let before = daemon.log_text().len();
    write(&daemon.path(relative), text);
    daemon.wait_for_log_after(before, "Definitions reconciled", Duration::from_secs(20));
}

/// Waits until `count` returns at least `n`, then a little longer so a duplicate would show.
fn settle(mut count: impl FnMut() -> usize, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while count() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} alerts arrived",
            count()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
}

// ---------------------------------------------------------------------------------------------
// Webhook
// ---------------------------------------------------------------------------------------------

/// The alert bodies the receiver got under `path`, with their signature checked.
fn webhook_alerts(path: &str, secret: &str) -> Vec<Json> {
    let url = format!(
        "{}/_received?prefix={path}",
        service("EXPORTD_TEST_WEBHOOK_URL")
    );
    let out = std::process::Command::new("curl")
        .args(["-sSf", &url])
        .output()
        .expect("running curl");
    assert!(out.status.success(), "reading the receiver failed");
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let record: Json = serde_json::from_str(line).expect("a JSON line");
            let body = crate::messages::decode_base64(record["body_b64"].as_str().expect("body"));
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(&body);
            assert_eq!(
                record["headers"]["x-exportd-signature"],
                format!("sha256={}", hex::encode(mac.finalize().into_bytes())),
                "every alert is signed like a delivery"
            );
            serde_json::from_slice::<Json>(&body).expect("a JSON body")["alert"].clone()
        })
        .collect()
}

fn count(alerts: &[Json], cause: &str, subject: &str) -> usize {
    alerts
        .iter()
        .filter(|a| a["cause"] == cause && a["subject"] == subject)
        .count()
}

fn script(path: &str, responses: Json) {
    crate::messages::script_receiver(path, responses);
}

#[test]
fn every_alert_kind_reaches_the_webhook_once_per_cause() {
    let base = format!("/{}", unique("alerts"));
    let hook = service("EXPORTD_TEST_WEBHOOK_URL");
    let alerts_path = format!("{base}/alerts");
    let sink_path = format!("{base}/sink");
    // The sink refuses the first two deliveries (400 is not retried), then accepts.
    script(
        &sink_path,
        serde_json::json!([{"status": 400}, {"status": 400}]),
    );
    let config = format!(
        r#"
[http]
listen = "127.0.0.1:0"

[connections.alerts]
type = "webhook"
url = "{hook}{alerts_path}"
allow_insecure = true
signing_secret = {{ env = "EXPORTD_TEST_ALERT_SECRET" }}

[connections.sink]
type = "webhook"
url = "{hook}{sink_path}"
allow_insecure = true

[alerts]
connection = "alerts"
quotas = {{ local = 100 }}
quota_alert_fraction = 0.5
"#
    );
    let sink = "window = \"all\"\n[format]\ntype = \"ndjson\"\n[[deliver]]\nto = \"webhook\"\nconnection = \"sink\"\n";
    let daemon = daemon(
        &config,
        &[
            ("exports.d/big.toml", BIG),
            ("exports.d/nokey.toml", NO_KEY),
            ("exports.d/sink.toml", sink),
            ("exports.d/broken.toml", BROKEN),
        ],
        &[("EXPORTD_TEST_ALERT_SECRET", "alert-signing-key")],
    );
    let received = || webhook_alerts(&alerts_path, "alert-signing-key");

    // Each cause twice (or the rejected file reloaded while still broken): one alert each.
    for export in ["big", "big", "nokey", "nokey", "sink", "sink"] {
        run(&daemon, export);
    }
    edit(&daemon, "exports.d/broken.toml", BROKEN_AGAIN);
    settle(|| received().len(), 5);
    let alerts = received();
    for (cause, subject) in [
        ("large_export", "big"),
        ("quota", "local"),
        ("run_failed", "nokey"),
        ("delivery_failed", "sink"),
        ("definition_rejected", "broken"),
    ] {
        assert_eq!(
            count(&alerts, cause, subject),
            1,
            "{cause} of {subject} once: {alerts:#?}"
        );
    }
    assert_eq!(alerts.len(), 5, "{alerts:#?}");
    let large = alerts
        .iter()
        .find(|a| a["cause"] == "large_export")
        .unwrap();
    assert_eq!(large["export"], "big");
    assert!(
        large["message"]
            .as_str()
            .unwrap()
            .contains("5 rows (more than 2)"),
        "{large}"
    );
    let failed = alerts.iter().find(|a| a["cause"] == "run_failed").unwrap();
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains("EXPORTD_TEST_ALERTS_UNSET_KEY"),
        "{failed}"
    );
    // The large-export alert leaves before delivery: it is logged before the run completes.
    let log = daemon.log_text();
    let position = |wanted: &dyn Fn(&str) -> bool| {
        log.lines()
            .position(wanted)
            .unwrap_or_else(|| panic!("not logged:\n{log}"))
    };
    let first_large = position(&|l| l.contains("Alert.") && l.contains("large_export"));
    let first_big_done = position(&|l| l.contains("Run completed") && l.contains("export=big"));
    assert!(first_large < first_big_done, "{log}");

    // The API lists them open.
    let (status, body) = daemon.http("GET", "/v1/alerts");
    assert_eq!(status, 200, "{body}");
    let snapshot: Json = serde_json::from_str(&body).expect("JSON");
    assert_eq!(snapshot["configured"], true);
    assert_eq!(snapshot["open"].as_array().map(Vec::len), Some(5), "{body}");
    let (_, metrics) = daemon.http("GET", "/metrics");
    for cause in [
        "run_failed",
        "delivery_failed",
        "large_export",
        "quota",
        "definition_rejected",
    ] {
        let line = format!("exportd_alerts_open{{cause=\"{cause}\"}} 1");
        assert!(metrics.contains(&line), "{line} in:\n{metrics}");
    }

    // Causes that go away close their alerts; the next occurrence is a new alert.
    run(&daemon, "sink"); // the sink accepts now
    edit(&daemon, "exports.d/broken.toml", FIXED);
    let (_, body) = daemon.http("GET", "/v1/alerts");
    let snapshot: Json = serde_json::from_str(&body).expect("JSON");
    let mut open: Vec<String> = snapshot["open"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|a| {
            format!(
                "{}/{}",
                a["cause"].as_str().unwrap(),
                a["subject"].as_str().unwrap()
            )
        })
        .collect();
    open.sort();
    assert_eq!(
        open,
        ["large_export/big", "quota/local", "run_failed/nokey"],
        "only causes that still hold stay open: {body}"
    );
    script(&sink_path, serde_json::json!([{"status": 400}]));
    run(&daemon, "sink");
    edit(&daemon, "exports.d/broken.toml", BROKEN);
    settle(|| received().len(), 7);
    let alerts = received();
    assert_eq!(count(&alerts, "delivery_failed", "sink"), 2, "{alerts:#?}");
    assert_eq!(
        count(&alerts, "definition_rejected", "broken"),
        2,
        "{alerts:#?}"
    );
    assert_eq!(alerts.len(), 7, "{alerts:#?}");
}

#[test]
fn an_alert_still_open_is_sent_again_after_the_repeat_interval_and_not_before() {
    let base = format!("/{}", unique("repeat"));
    let hook = service("EXPORTD_TEST_WEBHOOK_URL");
    let alerts_path = format!("{base}/alerts");
    let config = format!(
        "[http]\nlisten = \"127.0.0.1:0\"\n[connections.alerts]\ntype = \"webhook\"\nurl = \"{hook}{alerts_path}\"\nallow_insecure = true\nsigning_secret = {{ env = \"EXPORTD_TEST_ALERT_SECRET\" }}\n[alerts]\nconnection = \"alerts\"\n"
    );
    // `repeat_hours` shortened to 4 s (test hook): the broken file stays broken throughout.
    let _daemon = daemon(
        &config,
        &[("exports.d/broken.toml", BROKEN)],
        &[
            ("EXPORTD_TEST_ALERT_SECRET", "k"),
            ("EXPORTD_TEST_ALERT_REPEAT_SECONDS", "4"),
        ],
    );
    let received = || webhook_alerts(&alerts_path, "k");
    let deadline = Instant::now() + Duration::from_secs(20);
    while received().len() < 3 {
        assert!(Instant::now() < deadline, "not repeated: {:#?}", received());
        std::thread::sleep(Duration::from_millis(200));
    }
    let alerts = received();
    let sent: Vec<chrono::DateTime<chrono::FixedOffset>> = alerts
        .iter()
        .map(|a| chrono::DateTime::parse_from_rfc3339(a["sent_at"].as_str().unwrap()).unwrap())
        .collect();
    assert!(
        alerts
            .iter()
            .all(|a| a["cause"] == "definition_rejected" && a["subject"] == "broken")
    );
    assert_eq!(alerts[0]["repeat"], false);
    assert_eq!(alerts[1]["repeat"], true);
    assert_eq!(
        alerts[0]["opened_at"], alerts[2]["opened_at"],
        "the same alert"
    );
    for pair in sent.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= chrono::Duration::seconds(4) && gap < chrono::Duration::seconds(8),
            "repeats every 4 s, never sooner: {sent:?}"
        );
    }
}

#[test]
fn a_receiver_that_refuses_alerts_never_breaks_the_run_and_the_error_is_shown() {
    let base = format!("/{}", unique("refused"));
    let hook = service("EXPORTD_TEST_WEBHOOK_URL");
    let alerts_path = format!("{base}/alerts");
    // 400 is permanent: the send fails at once.
    script(&alerts_path, serde_json::json!([{"status": 400}]));
    let config = format!(
        "[http]\nlisten = \"127.0.0.1:0\"\n[connections.alerts]\ntype = \"webhook\"\nurl = \"{hook}{alerts_path}\"\nallow_insecure = true\n[alerts]\nconnection = \"alerts\"\n"
    );
    let daemon = daemon(&config, &[("exports.d/big.toml", BIG)], &[]);
    run(&daemon, "big");
    let log = daemon.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("Run completed") && l.contains("export=big")),
        "{log}"
    );
    let delivered = std::fs::read_dir(daemon.path("var/exports/big"))
        .expect("the run delivered")
        .count();
    assert!(delivered >= 1);
    daemon.wait_for_log("Cannot send the alert", Duration::from_secs(20));
    // The error is recorded on the alert right after it is logged.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = daemon.http("GET", "/v1/alerts");
        let snapshot: Json = serde_json::from_str(&body).expect("JSON");
        let open = &snapshot["open"][0];
        assert_eq!(open["cause"], "large_export", "{body}");
        if open["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("400")
        {
            break;
        }
        assert!(Instant::now() < deadline, "no error recorded: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------------
// Email
// ---------------------------------------------------------------------------------------------

/// (subject, body) of the messages in the relay's Maildir addressed to `recipient`.
fn mails(recipient: &str) -> Vec<(String, String)> {
    let into = tempfile::tempdir().expect("temp dir");
    let output = std::process::Command::new("python3")
        .arg(repo_root().join("tests/services/readmail.py"))
        .arg(service("EXPORTD_TEST_SMTP_MAILDIR"))
        .arg(recipient)
        .arg(into.path())
        .output()
        .expect("python3");
    assert!(output.status.success(), "{output:?}");
    let messages: Json = serde_json::from_slice(&output.stdout).expect("JSON");
    messages
        .as_array()
        .expect("a list")
        .iter()
        .map(|m| {
            (
                m["subject"].as_str().unwrap_or_default().to_owned(),
                m["body"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn alerts_arrive_by_email_once_per_cause() {
    let recipient = format!("{}@example.test", unique("ops"));
    let config = format!(
        r#"
[http]
listen = "127.0.0.1:0"

[connections.relay]
type = "smtp"
host = "{host}"
port = {port}
tls = "starttls"
ca_file = "{ca}"
username = "{user}"
password = {{ env = "EXPORTD_TEST_SMTP_PASSWORD" }}
from = "exportd <exportd@example.test>"
timeout_seconds = 20

[alerts]
connection = "relay"
recipients = ["{recipient}"]
large_export_rows = 3
"#,
        host = service("EXPORTD_TEST_SMTP_HOST"),
        port = service("EXPORTD_TEST_SMTP_PORT"),
        ca = service("EXPORTD_TEST_SMTP_CA"),
        user = service("EXPORTD_TEST_SMTP_USER"),
    );
    // Without `alert_rows`, the default threshold of `[alerts]` applies.
    let big = BIG.replace("alert_rows = 2\n", "");
    let daemon = daemon(
        &config,
        &[
            ("exports.d/big.toml", big.as_str()),
            ("exports.d/nokey.toml", NO_KEY),
            ("exports.d/broken.toml", BROKEN),
        ],
        &[],
    );
    for export in ["big", "big", "nokey", "nokey"] {
        run(&daemon, export);
    }
    edit(&daemon, "exports.d/broken.toml", BROKEN_AGAIN);
    settle(|| mails(&recipient).len(), 3);
    let mut messages = mails(&recipient);
    messages.sort();
    let subjects: Vec<&str> = messages.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        subjects,
        [
            "exportd alert: definition_rejected of export `broken`",
            "exportd alert: large_export of export `big`",
            "exportd alert: run_failed of export `nokey`",
        ]
    );
    let (_, body) = &messages[2];
    assert!(
        body.contains("export `nokey` failed")
            && body.contains("EXPORTD_TEST_ALERTS_UNSET_KEY")
            && body.contains("export:  nokey"),
        "{body}"
    );
    let (_, body) = &messages[1];
    assert!(body.contains("5 rows (more than 3)"), "{body}");
}
