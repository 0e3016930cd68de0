//! End-to-end tests of the API over real HTTP/1.1: the router is served on `127.0.0.1:0` with
//! a SQLite state store in a temp directory, a registry with two exports (one stalled with an
//! error) and a stand-in event loop that answers triggers.
//!
//! Requests are raw HTTP/1.1 over `std::net::TcpStream` on the blocking pool (tokio's
//! `io-util` feature is not enabled in this crate, and `tower` is not a direct dependency), so
//! the tests exercise exactly what a client sees: status line, headers and body bytes.

use super::*;
use crate::daemon::TriggerError;
use crate::daemon::registry::{Condition, ExportStatus, Registry};
use crate::state::{Delivery, RunOutcome, RunStart, SqliteState, Trigger};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::RwLock;
use tokio::sync::{mpsc, oneshot};

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, day, hour, 0, 0).unwrap()
}

fn status(name: &str, condition: Condition) -> ExportStatus {
    ExportStatus {
        description: Some(format!("{name} leads")),
        ..ExportStatus::bare(name, format!("exports.d/{name}.toml").into(), condition)
    }
}

const BROKEN_ERROR: &str =
    "exports.d/broken.toml:3:7: error: unknown field `fromat`, expected `format`";

fn registry() -> SharedRegistry {
    let mut registry = Registry::default();
    let mut daily = status("daily", Condition::Ready);
    daily.reason = "scheduled".into();
    daily.active_revision = Some("ab".repeat(32));
    daily.schedule = Some("every day at 02:00".into());
    daily.timezone = Some("Europe/Berlin".into());
    daily.next_runs = vec![at(17, 1), at(18, 1)];
    registry.exports.insert("daily".into(), daily);
    let mut broken = status("broken", Condition::Stalled);
    broken.reason = "invalid definition; no valid version was ever accepted".into();
    broken.errors = vec![BROKEN_ERROR.into()];
    registry.exports.insert("broken".into(), broken);
    registry.counters.reloads_ok = 2;
    registry.counters.reloads_failed = 1;
    registry
        .counters
        .run_finished("daily", "completed", 120, 4096, 2.5);
    registry.counters.run_finished("daily", "failed", 0, 0, 0.2);
    registry
        .counters
        .last_success
        .insert("daily".into(), at(15, 2));
    registry.started_at = Some(at(15, 0));
    registry.last_reload = Some(at(15, 0));
    Arc::new(RwLock::new(registry))
}

/// Two runs of `daily`: the 15th completed with two deliveries, the 16th failed.
fn state(dir: &std::path::Path) -> Arc<dyn StateStore> {
    let store = SqliteState::open(&dir.join("state.db")).unwrap();
    for (day, outcome) in [
        (
            15,
            RunOutcome::Completed {
                rows: 120,
                bytes: 4096,
                parts: 2,
            },
        ),
        (
            16,
            RunOutcome::Failed {
                error: "lead store unreachable: connection refused".into(),
            },
        ),
    ] {
        let start = RunStart {
            export: "daily".into(),
            nominal: at(day, 2),
            window_start: Some(at(day - 1, 2)),
            window_end: at(day, 2),
            trigger: Trigger::Schedule,
            revision: "ab".repeat(32),
            started_at: at(day, 2),
        };
        let run = store.record_start(&start).unwrap();
        store.record_finish(&run.id, &outcome, at(day, 3)).unwrap();
    }
    let deliveries: Vec<Delivery> = (0..2)
        .map(|part| Delivery {
            export: "daily".into(),
            run_id: "daily/20240115T020000Z".into(),
            destination: "local#0".into(),
            key: format!("daily/20240115/part-{part}.csv.gz"),
            bytes: 2048,
            sha256: format!("{part}").repeat(64),
            delivered_at: at(15, 3),
            expires_at: None,
            location: String::new(),
            transitioned_at: None,
        })
        .collect();
    store.record_deliveries(&deliveries).unwrap();
    Arc::new(store)
}

/// A stand-in event loop: `daily` starts once and is then running; everything else is
/// unknown (as `broken` is to the real loop: it never had a valid version).
fn answer_triggers(mut rx: mpsc::UnboundedReceiver<Event>) {
    tokio::spawn(async move {
        let mut running = HashSet::new();
        while let Some(event) = rx.recv().await {
            match event {
                Event::Trigger { export, reply } => {
                    let answer = match export.as_str() {
                        "daily" if !running.insert(export.clone()) => {
                            Err(TriggerError::AlreadyRunning(export))
                        }
                        // The real loop answers with the bare RUNID.
                        "daily" => Ok("20240117T000000Z".to_owned()),
                        _ => Err(TriggerError::UnknownExport(export)),
                    };
                    let _ = reply.send(answer);
                }
                // The real loop validates with check_export; this one only echoes.
                Event::Adhoc {
                    name,
                    definition,
                    reply,
                } => {
                    let answer = if definition.contains("fromat") {
                        Err(crate::daemon::AdhocError::Invalid(vec![format!(
                            "{name}.toml:1:1: error: unknown key `fromat`"
                        )]))
                    } else if !running.insert(name.clone()) {
                        Err(crate::daemon::AdhocError::NameTaken(name))
                    } else {
                        Ok("20240117T000000Z".to_owned())
                    };
                    let _ = reply.send(answer);
                }
                // The real loop sweeps the run's ledger entries; this one reports nothing done.
                Event::DeleteRun { reply, .. } => {
                    let _ = reply.send(Ok(crate::retention::Report::default()));
                }
                _ => {}
            }
        }
    });
}

struct Server {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Serves the fixture; `events` decides how triggers are answered.
    async fn start_with(events: mpsc::UnboundedSender<Event>) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path());
        Server::serve(dir, registry(), state, events, open_access()).await
    }

    async fn serve(
        dir: tempfile::TempDir,
        registry: SharedRegistry,
        state: Arc<dyn StateStore>,
        events: mpsc::UnboundedSender<Event>,
        access: crate::access::Access,
    ) -> Server {
        let router = router(registry, state, events, Arc::new(access));
        let listener = bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_on(listener, router, async {
            let _ = rx.await;
        }));
        Server {
            addr,
            shutdown: Some(tx),
            task,
            _dir: dir,
        }
    }

    async fn start() -> Server {
        let (tx, rx) = mpsc::unbounded_channel();
        answer_triggers(rx);
        Server::start_with(tx).await
    }

    async fn get(&self, path: &str) -> Reply {
        request(self.addr, "GET", path).await
    }

    async fn post(&self, path: &str) -> Reply {
        request(self.addr, "POST", path).await
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    /// Lower-cased names.
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{self:?}"
        );
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// The `error` message of an error reply.
    fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .expect("an error message")
            .to_owned()
    }
}

/// No tokens, on loopback: every caller is admin (the default without `[access]`).
fn open_access() -> crate::access::Access {
    crate::access::Access::new(&Default::default(), "127.0.0.1:0").unwrap()
}

/// One HTTP/1.1 request with `Connection: close`, read to the end.
async fn request(addr: SocketAddr, method: &str, path: &str) -> Reply {
    request_with(addr, method, path, None).await
}

/// The same with `Authorization: Bearer TOKEN`.
async fn request_with(addr: SocketAddr, method: &str, path: &str, token: Option<&str>) -> Reply {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let raw = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    send_raw(addr, raw.into_bytes()).await
}

/// A POST with a JSON body (or any bytes) and a bearer token.
async fn post_body(
    addr: SocketAddr,
    path: &str,
    token: &str,
    content_type: &str,
    body: &[u8],
) -> Reply {
    let mut raw = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    send_raw(addr, raw).await
}

/// Sends one raw HTTP/1.1 request and reads the reply to the end.
async fn send_raw(addr: SocketAddr, raw: Vec<u8>) -> Reply {
    let bytes = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        // The server may answer (413) and close before reading the whole body.
        let _ = stream.write_all(&raw);
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).unwrap();
        bytes
    })
    .await
    .unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .expect("a header/body separator");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    let reply = Reply {
        status,
        headers,
        body: body.to_owned(),
    };
    // Every body here has a known length, so no chunked decoding is needed.
    assert_eq!(
        reply
            .header("content-length")
            .map(|l| l.parse::<usize>().unwrap()),
        Some(reply.body.len()),
        "{reply:?}"
    );
    reply
}

#[tokio::test]
async fn healthz_says_ok() {
    let server = Server::start().await;
    let reply = server.get("/healthz").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "ok"));
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
}

/// Checks one sample line: `name{k="v",…} value`, with a valid metric name, well-formed
/// (escaped) labels and a float value. Returns the metric name.
fn parse_sample(line: &str) -> String {
    let name_end = line
        .find(['{', ' '])
        .unwrap_or_else(|| panic!("no value in {line:?}"));
    let name = &line[..name_end];
    assert!(
        !name.is_empty()
            && name
                .chars()
                .enumerate()
                .all(|(i, c)| c.is_ascii_alphabetic()
                    || c == '_'
                    || c == ':'
                    || (i > 0 && c.is_ascii_digit())),
        "bad metric name in {line:?}"
    );
    let mut rest = &line[name_end..];
    if let Some(labels) = rest.strip_prefix('{') {
        let mut chars = labels.char_indices().peekable();
        loop {
            let (start, _) = *chars
                .peek()
                .unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
            let key_end = labels[start..]
                .find('=')
                .unwrap_or_else(|| panic!("label without = in {line:?}"))
                + start;
            let key = &labels[start..key_end];
            assert!(
                !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "bad label name {key:?} in {line:?}"
            );
            while chars.peek().is_some_and(|(i, _)| *i <= key_end) {
                chars.next();
            }
            assert_eq!(
                chars.next().map(|(_, c)| c),
                Some('"'),
                "unquoted value in {line:?}"
            );
            loop {
                match chars.next().map(|(_, c)| c) {
                    Some('\\') => {
                        let escaped = chars.next().map(|(_, c)| c);
                        assert!(
                            matches!(escaped, Some('\\' | '"' | 'n')),
                            "bad escape in {line:?}"
                        );
                    }
                    Some('"') => break,
                    Some('\n') | None => panic!("unterminated label value in {line:?}"),
                    Some(_) => {}
                }
            }
            match chars.next() {
                Some((_, ',')) => continue,
                Some((i, '}')) => {
                    rest = &labels[i + 1..];
                    break;
                }
                other => panic!("unexpected {other:?} after a label in {line:?}"),
            }
        }
    }
    let value = rest
        .strip_prefix(' ')
        .unwrap_or_else(|| panic!("no space before the value in {line:?}"));
    assert!(
        matches!(value, "+Inf" | "-Inf" | "NaN") || value.parse::<f64>().is_ok(),
        "bad value {value:?} in {line:?}"
    );
    name.to_owned()
}

#[tokio::test]
async fn metrics_are_valid_prometheus_text() {
    let server = Server::start().await;
    let reply = server.get("/metrics").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = &reply.body;
    assert!(text.ends_with('\n'));
    for line in [
        "# TYPE exportd_runs_total counter",
        r#"exportd_runs_total{export="daily",state="completed"} 1"#,
        r#"exportd_runs_total{export="daily",state="failed"} 1"#,
        r#"exportd_rows_total{export="daily"} 120"#,
        r#"exportd_bytes_total{export="daily"} 4096"#,
        "# TYPE exportd_run_duration_seconds histogram",
        r#"exportd_run_duration_seconds_bucket{export="daily",le="1"} 1"#,
        r#"exportd_run_duration_seconds_bucket{export="daily",le="5"} 2"#,
        r#"exportd_run_duration_seconds_bucket{export="daily",le="+Inf"} 2"#,
        r#"exportd_run_duration_seconds_sum{export="daily"} 2.7"#,
        r#"exportd_run_duration_seconds_count{export="daily"} 2"#,
        r#"exportd_last_success_timestamp_seconds{export="daily"} 1705284000"#,
        r#"exportd_config_reloads_total{result="ok"} 2"#,
        r#"exportd_config_reloads_total{result="failed"} 1"#,
        "# TYPE exportd_invalid_definitions gauge",
        "exportd_invalid_definitions 1",
        r#"exportd_exports{condition="ready"} 1"#,
        r#"exportd_exports{condition="stalled"} 1"#,
        r#"exportd_exports{condition="running"} 0"#,
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    // Every sample parses and belongs to the family declared last (samples of a family are
    // contiguous and follow its HELP and TYPE).
    let mut family: Option<(String, String)> = None;
    let mut helped = HashSet::new();
    for line in text.lines() {
        if let Some(help) = line.strip_prefix("# HELP ") {
            let name = help.split(' ').next().unwrap();
            assert!(
                helped.insert(name.to_owned()),
                "family {name} declared twice"
            );
        } else if let Some(ty) = line.strip_prefix("# TYPE ") {
            let (name, kind) = ty.split_once(' ').unwrap();
            assert!(helped.contains(name), "TYPE before HELP for {name}");
            assert!(matches!(kind, "counter" | "gauge" | "histogram"), "{line}");
            family = Some((name.to_owned(), kind.to_owned()));
        } else {
            assert!(
                !line.starts_with('#') && !line.is_empty(),
                "stray line {line:?}"
            );
            let name = parse_sample(line);
            let (family, kind) = family.as_ref().expect("a sample before any TYPE");
            let ok = if kind == "histogram" {
                ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| name == format!("{family}{s}"))
            } else {
                &name == family
            };
            assert!(ok, "sample {name} outside its family ({family})");
        }
    }
}

#[tokio::test]
async fn exports_list_shows_every_export_with_its_last_run() {
    let server = Server::start().await;
    let reply = server.get("/v1/exports").await;
    assert_eq!(reply.status, 200);
    let body = reply.json();
    let exports = body["exports"].as_array().unwrap();
    let names: Vec<_> = exports
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["broken", "daily"]);
    let (broken, daily) = (&exports[0], &exports[1]);
    assert_eq!(daily["condition"], "ready");
    assert_eq!(daily["last_run"]["id"], "daily/20240116T020000Z");
    assert_eq!(daily["last_run"]["state"], "failed");
    assert_eq!(daily["next_runs"][0], "2024-01-17T01:00:00Z");
    assert_eq!(broken["condition"], "stalled");
    assert_eq!(broken["last_run"], Value::Null);
    assert_eq!(broken["errors"][0], BROKEN_ERROR);
}

#[tokio::test]
async fn export_detail_shows_status_errors_and_runs() {
    let server = Server::start().await;
    let daily = server.get("/v1/exports/daily").await.json();
    assert_eq!(daily["active_revision"], "ab".repeat(32));
    assert_eq!(daily["schedule"], "every day at 02:00");
    let runs: Vec<_> = daily["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(runs, ["daily/20240116T020000Z", "daily/20240115T020000Z"]);
    assert_eq!(daily["last_success"]["id"], "daily/20240115T020000Z");
    assert_eq!(daily["last_success"]["finished_at"], "2024-01-15T03:00:00Z");

    let broken = server.get("/v1/exports/broken").await.json();
    assert_eq!(broken["condition"], "stalled");
    assert_eq!(broken["active_revision"], Value::Null);
    assert_eq!(broken["errors"], serde_json::json!([BROKEN_ERROR]));
    assert_eq!(broken["runs"], serde_json::json!([]));
}

#[tokio::test]
async fn unknown_export_and_route_are_json_404s() {
    let server = Server::start().await;
    let reply = server.get("/v1/exports/nope").await;
    assert_eq!(reply.status, 404);
    assert!(
        reply.error().starts_with("no export named `nope`"),
        "{reply:?}"
    );

    let reply = server.get("/v2/whatever").await;
    assert_eq!(reply.status, 404);
    assert!(reply.error().contains("GET /v1/exports"), "{reply:?}");

    let reply = server.post("/v1/exports").await;
    assert_eq!(reply.status, 405);
    assert!(reply.error().contains("does not accept POST"), "{reply:?}");
}

#[tokio::test]
async fn runs_list_filters_and_rejects_bad_parameters() {
    let server = Server::start().await;
    let ids = |body: Value| -> Vec<String> {
        body["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        ids(server.get("/v1/runs").await.json()),
        ["daily/20240116T020000Z", "daily/20240115T020000Z"]
    );
    assert_eq!(
        ids(server
            .get("/v1/runs?export=daily&state=completed")
            .await
            .json()),
        ["daily/20240115T020000Z"]
    );
    assert_eq!(
        ids(server.get("/v1/runs?limit=1").await.json()),
        ["daily/20240116T020000Z"]
    );
    assert!(ids(server.get("/v1/runs?export=broken").await.json()).is_empty());
    // Above the maximum is clamped, not refused.
    assert_eq!(ids(server.get("/v1/runs?limit=5000").await.json()).len(), 2);

    let reply = server.get("/v1/runs?state=done").await;
    assert_eq!(reply.status, 400);
    let message = reply.error();
    for state in [
        "scheduled",
        "running",
        "completed",
        "failed",
        "expired",
        "interrupted",
    ] {
        assert!(message.contains(state), "{message}");
    }
    assert!(message.contains("`done`"), "{message}");

    for bad in ["abc", "0", "-1"] {
        let reply = server.get(&format!("/v1/runs?limit={bad}")).await;
        assert_eq!(reply.status, 400, "{bad}");
        assert!(reply.error().contains("from 1 to 1000"), "{reply:?}");
    }
    let reply = server.get("/v1/runs?state=failed&state=completed").await;
    assert_eq!(reply.status, 400, "{reply:?}");
    reply.error();
}

#[tokio::test]
async fn run_detail_includes_deliveries_under_both_id_forms() {
    let server = Server::start().await;
    for path in [
        "/v1/runs/daily/20240115T020000Z",
        "/v1/runs/daily%2F20240115T020000Z",
    ] {
        let reply = server.get(path).await;
        assert_eq!(reply.status, 200, "{path}: {reply:?}");
        let run = reply.json();
        assert_eq!(run["id"], "daily/20240115T020000Z");
        assert_eq!(run["state"], "completed");
        assert_eq!(run["rows"], 120);
        assert_eq!(run["parts"], 2);
        let deliveries = run["deliveries"].as_array().unwrap();
        assert_eq!(deliveries.len(), 2);
        assert_eq!(deliveries[0]["destination"], "local#0");
        assert_eq!(deliveries[0]["key"], "daily/20240115/part-0.csv.gz");
        assert_eq!(deliveries[0]["sha256"], "0".repeat(64));
        assert_eq!(deliveries[1]["bytes"], 2048);
    }

    let failed = server.get("/v1/runs/daily/20240116T020000Z").await.json();
    assert_eq!(failed["state"], "failed");
    assert_eq!(
        failed["error"],
        "lead store unreachable: connection refused"
    );
    assert_eq!(failed["deliveries"], serde_json::json!([]));

    let reply = server.get("/v1/runs/daily/20990101T000000Z").await;
    assert_eq!(reply.status, 404);
    assert!(
        reply.error().starts_with("no run `daily/20990101T000000Z`"),
        "{reply:?}"
    );
}

#[tokio::test]
async fn trigger_starts_once_then_conflicts() {
    let server = Server::start().await;
    let reply = server.post("/v1/exports/daily/run").await;
    assert_eq!(reply.status, 202, "{reply:?}");
    let body = reply.json();
    assert_eq!(body["run_id"], "daily/20240117T000000Z");
    assert_eq!(
        reply.header("location"),
        Some("/v1/runs/daily/20240117T000000Z")
    );

    let reply = server.post("/v1/exports/daily/run").await;
    assert_eq!(reply.status, 409);
    assert!(reply.error().contains("already running"), "{reply:?}");

    let reply = server.post("/v1/exports/nope/run").await;
    assert_eq!(reply.status, 404);
    assert!(reply.error().starts_with("no export named `nope`"));

    // Known, but never valid: a conflict the operator resolves by fixing the file.
    let reply = server.post("/v1/exports/broken/run").await;
    assert_eq!(reply.status, 409);
    assert!(
        reply.error().contains("GET /v1/exports/broken"),
        "{reply:?}"
    );

    let reply = server.get("/v1/exports/daily/run").await;
    assert_eq!(reply.status, 405);
}

#[tokio::test]
async fn trigger_while_shutting_down_is_503() {
    // The loop says so.
    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    tokio::spawn(async move {
        while let Some(Event::Trigger { reply, .. }) = rx.recv().await {
            let _ = reply.send(Err(TriggerError::ShuttingDown));
        }
    });
    let server = Server::start_with(tx).await;
    let reply = server.post("/v1/exports/daily/run").await;
    assert_eq!(reply.status, 503);
    assert!(reply.error().contains("shutting down"), "{reply:?}");

    // The loop is gone.
    let (tx, rx) = mpsc::unbounded_channel::<Event>();
    drop(rx);
    let server = Server::start_with(tx).await;
    let reply = server.post("/v1/exports/daily/run").await;
    assert_eq!(reply.status, 503);
    assert!(reply.error().contains("shutting down"), "{reply:?}");
}

#[tokio::test]
async fn shutdown_signal_stops_the_server() {
    let mut server = Server::start().await;
    assert_eq!(server.get("/healthz").await.status, 200);
    server.shutdown.take().unwrap().send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), &mut server.task)
        .await
        .expect("the server stops after the shutdown signal")
        .unwrap()
        .unwrap();
    let addr = server.addr;
    let refused = tokio::task::spawn_blocking(move || std::net::TcpStream::connect(addr))
        .await
        .unwrap();
    assert!(refused.is_err(), "still accepting connections");
}

#[tokio::test]
async fn bind_failure_names_the_setting() {
    let taken = bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (tx, _rx) = mpsc::unbounded_channel();
    let dir = tempfile::tempdir().unwrap();
    let err = serve(
        &addr,
        registry(),
        state(dir.path()),
        tx,
        Arc::new(open_access()),
        async {},
    )
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("[http] listen"), "{err:#}");
}

// ---------------------------------------------------------------------------------------------
// Tokens, roles, downloads and the audit log
// ---------------------------------------------------------------------------------------------

mod access {
    use super::*;
    use crate::config::daemon::{AccessConfig, DaemonConfig, Role, TokenConfig};

    const TOKENS: [(&str, Role, &str); 4] = [
        ("alice", Role::Admin, "exd_admin"),
        ("ana", Role::Analyst, "exd_analyst"),
        ("otto", Role::Operations, "exd_ops"),
        ("audrey", Role::Auditor, "exd_auditor"),
    ];

    fn access(operations_days: u32) -> crate::access::Access {
        let config = AccessConfig {
            tokens: TOKENS
                .iter()
                .map(|(name, role, token)| TokenConfig {
                    name: (*name).into(),
                    role: *role,
                    sha256: crate::access::token_hash(token),
                })
                .collect(),
            operations_days: Some(operations_days),
            ..AccessConfig::default()
        };
        crate::access::Access::new(&config, "127.0.0.1:0").unwrap()
    }

    /// `pii` exports emails unmasked; `anon` masks them. Each has one completed run whose
    /// window ended on 2024-01-15 with one local file.
    async fn server(operations_days: u32) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteState::open(&dir.path().join("state.db")).unwrap();
        let mut registry = Registry::default();
        for (name, fields) in [
            ("pii", "include = [\"email\", \"state\"]"),
            (
                "anon",
                "include = [\"email\", \"state\"]\nmask = { email = \"email\" }",
            ),
        ] {
            let text = format!(
                "schedule = \"daily at 02:00\"\nwindow = \"previous_day\"\n[fields]\n{fields}\n[[deliver]]\nto = \"local\"\npath = \"x.csv\"\n"
            );
            let (spec, diags) = crate::config::validate::check_export(
                name,
                std::path::Path::new("x.toml"),
                &text,
                &DaemonConfig::default(),
            );
            registry.specs.insert(
                name.into(),
                Arc::new(spec.unwrap_or_else(|| panic!("{diags:?}"))),
            );
            let start = RunStart {
                export: name.into(),
                nominal: at(15, 2),
                window_start: Some(at(14, 2)),
                window_end: at(15, 2),
                trigger: Trigger::Schedule,
                revision: "ab".repeat(32),
                started_at: at(15, 2),
            };
            let run = store.record_start(&start).unwrap();
            let done = RunOutcome::Completed {
                rows: 1,
                bytes: 12,
                parts: 1,
            };
            store.record_finish(&run.id, &done, at(15, 3)).unwrap();
            let file = dir.path().join(format!("{name}.csv"));
            std::fs::write(&file, format!("{name} content")).unwrap();
            store
                .record_delivery(&Delivery {
                    export: name.into(),
                    run_id: run.id.clone(),
                    destination: "local#0".into(),
                    key: file.to_string_lossy().into_owned(),
                    bytes: format!("{name} content").len() as u64,
                    sha256: "00".repeat(32),
                    delivered_at: at(15, 3),
                    expires_at: None,
                    location: String::new(),
                    transitioned_at: None,
                })
                .unwrap();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        answer_triggers(rx);
        Server::serve(
            dir,
            Arc::new(RwLock::new(registry)),
            Arc::new(store),
            tx,
            access(operations_days),
        )
        .await
    }

    async fn as_(server: &Server, token: &str, method: &str, path: &str) -> Reply {
        request_with(server.addr, method, path, Some(token)).await
    }

    #[tokio::test]
    async fn every_route_but_healthz_needs_a_known_token() {
        let server = server(7).await;
        assert_eq!(server.get("/healthz").await.status, 200);
        for path in ["/metrics", "/v1/exports", "/v1/runs", "/v1/audit"] {
            let reply = server.get(path).await;
            assert_eq!(reply.status, 401, "{path}: {reply:?}");
            assert!(reply.error().contains("Authorization: Bearer"));
            let wrong = as_(&server, "exd_guess", "GET", path).await;
            assert_eq!(wrong.status, 401, "{path}");
        }
        assert_eq!(
            as_(&server, "exd_auditor", "GET", "/v1/exports")
                .await
                .status,
            200
        );
    }

    #[tokio::test]
    async fn roles_follow_the_permission_matrix() {
        let server = server(100_000).await;
        let trigger = "/v1/exports/daily/run";
        assert_eq!(as_(&server, "exd_admin", "POST", trigger).await.status, 202);
        // Allowed, and refused by the (stand-in) event loop only because the run is running.
        assert_eq!(as_(&server, "exd_ops", "POST", trigger).await.status, 409);
        let denied = as_(&server, "exd_analyst", "POST", trigger).await;
        assert_eq!(denied.status, 403);
        assert!(
            denied.error().contains("role `analyst`"),
            "{}",
            denied.error()
        );
        assert_eq!(
            as_(&server, "exd_auditor", "POST", trigger).await.status,
            403
        );

        assert_eq!(
            as_(&server, "exd_auditor", "GET", "/v1/audit").await.status,
            200
        );
        assert_eq!(
            as_(&server, "exd_admin", "GET", "/v1/audit").await.status,
            200
        );
        assert_eq!(
            as_(&server, "exd_ops", "GET", "/v1/audit").await.status,
            403
        );
        assert_eq!(
            as_(&server, "exd_analyst", "GET", "/v1/audit").await.status,
            403
        );

        let pii = "/v1/runs/pii/20240115T020000Z/files/pii.csv";
        let anon = "/v1/runs/anon/20240115T020000Z/files/anon.csv";
        let got = as_(&server, "exd_admin", "GET", pii).await;
        assert_eq!((got.status, got.body.as_str()), (200, "pii content"));
        let denied = as_(&server, "exd_analyst", "GET", pii).await;
        assert_eq!(denied.status, 403);
        assert!(
            denied.error().contains("email"),
            "names the unmasked field: {}",
            denied.error()
        );
        let got = as_(&server, "exd_analyst", "GET", anon).await;
        assert_eq!((got.status, got.body.as_str()), (200, "anon content"));
        assert_eq!(as_(&server, "exd_auditor", "GET", anon).await.status, 403);
        assert_eq!(as_(&server, "exd_ops", "GET", pii).await.status, 200);

        let delete = "/v1/runs/pii/20240115T020000Z/files";
        for token in ["exd_ops", "exd_analyst", "exd_auditor"] {
            let denied = as_(&server, token, "DELETE", delete).await;
            assert_eq!(denied.status, 403, "{token}");
            assert!(denied.error().contains("delete delivered files"), "{token}");
        }
        let deleted = as_(&server, "exd_admin", "DELETE", delete).await;
        assert_eq!(deleted.status, 200, "{deleted:?}");
        assert_eq!(deleted.json()["run_id"], "pii/20240115T020000Z");
        let missing = as_(
            &server,
            "exd_admin",
            "DELETE",
            "/v1/runs/pii/20990101T000000Z/files",
        );
        assert_eq!(missing.await.status, 404);
    }

    #[tokio::test]
    async fn operations_downloads_only_recent_windows() {
        let server = server(7).await;
        let reply = as_(
            &server,
            "exd_ops",
            "GET",
            "/v1/runs/pii/20240115T020000Z/files/pii.csv",
        )
        .await;
        assert_eq!(reply.status, 403);
        assert!(reply.error().contains("within 7 days"), "{}", reply.error());
    }

    #[tokio::test]
    async fn signed_links_work_without_a_token_until_they_expire_or_are_tampered_with() {
        let server = server(7).await;
        let link = as_(
            &server,
            "exd_admin",
            "POST",
            "/v1/runs/pii/20240115T020000Z/files/pii.csv/link",
        )
        .await;
        assert_eq!(link.status, 200, "{link:?}");
        let url = link.json()["url"].as_str().unwrap().to_owned();
        let got = server.get(&url).await;
        assert_eq!((got.status, got.body.as_str()), (200, "pii content"));

        let tampered = url.replace("pii.csv", "anon.csv");
        assert_eq!(server.get(&tampered).await.status, 403);
        // Change the last hex digit of the signature (to a digit it is not: a fixed `0` left
        // one link in 16 unchanged).
        let flipped = if url.ends_with('0') { '1' } else { '0' };
        let bad_signature = format!("{}{flipped}", &url[..url.len() - 1]);
        assert_eq!(server.get(&bad_signature).await.status, 403);
        let (path, _) = url.split_once('?').unwrap();
        let expired = format!("{path}?expires=1&signature={}", "00".repeat(32));
        let reply = server.get(&expired).await;
        assert_eq!(reply.status, 403);
        assert!(reply.error().contains("expired"));
        // A link opens its file, never another route.
        let query = url.split_once('?').unwrap().1;
        assert_eq!(server.get(&format!("/v1/audit?{query}")).await.status, 401);
        // An auditor cannot mint links.
        let denied = as_(
            &server,
            "exd_auditor",
            "POST",
            "/v1/runs/pii/20240115T020000Z/files/pii.csv/link",
        )
        .await;
        assert_eq!(denied.status, 403);
    }

    #[tokio::test]
    async fn every_request_lands_in_the_audit_log_with_its_token_and_outcome() {
        let server = server(7).await;
        as_(&server, "exd_analyst", "GET", "/v1/exports").await;
        as_(&server, "exd_analyst", "GET", "/v1/audit").await;
        server.get("/v1/runs").await;
        let log = as_(&server, "exd_auditor", "GET", "/v1/audit?limit=10")
            .await
            .json();
        let lines: Vec<String> = log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{} {} {} {}",
                    e["actor"], e["role"], e["target"], e["outcome"]
                )
            })
            .collect();
        assert!(
            lines.contains(&r#""ana" "analyst" "GET /v1/exports" "200""#.to_owned()),
            "{lines:#?}"
        );
        assert!(
            lines.contains(&r#""ana" "analyst" "GET /v1/audit" "403""#.to_owned()),
            "{lines:#?}"
        );
        assert!(
            lines.contains(&r#""unknown" "" "GET /v1/runs" "401""#.to_owned()),
            "{lines:#?}"
        );
        let only = as_(&server, "exd_admin", "GET", "/v1/audit?actor=ana")
            .await
            .json();
        assert_eq!(only["entries"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn an_open_api_is_refused_off_loopback() {
        let refused = crate::access::Access::new(&AccessConfig::default(), "0.0.0.0:8080");
        assert!(
            refused
                .unwrap_err()
                .to_string()
                .contains("exportd token new")
        );
        assert!(crate::access::Access::new(&AccessConfig::default(), "[::1]:8080").is_ok());
    }

    #[tokio::test]
    async fn adhoc_needs_create_which_only_admins_have() {
        let server = server(100_000).await;
        let body = br#"{"name": "q1", "definition": "window = \"all\""}"#;
        for token in ["exd_analyst", "exd_ops", "exd_auditor"] {
            let reply = post_body(
                server.addr,
                "/v1/exports/adhoc",
                token,
                "application/json",
                body,
            )
            .await;
            assert_eq!(reply.status, 403, "{token}: {reply:?}");
            assert!(
                reply.error().contains("may not create exports"),
                "{reply:?}"
            );
        }
        let reply = post_body(
            server.addr,
            "/v1/exports/adhoc",
            "exd_admin",
            "application/json",
            body,
        )
        .await;
        assert_eq!(reply.status, 202, "{reply:?}");
        assert_eq!(reply.json()["run_id"], "adhoc-q1/20240117T000000Z");
        assert_eq!(
            reply.header("location"),
            Some("/v1/runs/adhoc-q1/20240117T000000Z")
        );
        // The same name while it runs: 409.
        let again = post_body(
            server.addr,
            "/v1/exports/adhoc",
            "exd_admin",
            "application/json",
            body,
        )
        .await;
        assert_eq!(again.status, 409, "{again:?}");
        let audit = as_(&server, "exd_admin", "GET", "/v1/audit?action=api")
            .await
            .json();
        let targets: Vec<String> = audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{} {} {}",
                    e["actor"].as_str().unwrap(),
                    e["target"].as_str().unwrap(),
                    e["outcome"].as_str().unwrap()
                )
            })
            .collect();
        for expected in [
            "ana POST /v1/exports/adhoc 403",
            "alice POST /v1/exports/adhoc 202",
            "alice POST /v1/exports/adhoc 409",
        ] {
            assert!(
                targets.iter().any(|t| t == expected),
                "{expected} not in {targets:?}"
            );
        }
    }

    #[tokio::test]
    async fn malformed_or_oversized_bodies_are_400_and_413_as_json() {
        let server = server(100_000).await;
        let path = "/v1/exports/adhoc";
        for (content_type, body) in [
            ("application/json", &b"{\"definition\": "[..]),
            ("application/json", &b"not json"[..]),
            ("application/json", &b"[1, 2]"[..]),
            ("application/json", &b"{\"definition\": 5}"[..]),
            (
                "application/json",
                &b"{\"definition\": \"x\", \"extra\": 1}"[..],
            ),
            ("application/json", &b"\xff\xfe"[..]),
            ("text/plain", &b"{\"definition\": \"x\"}"[..]),
        ] {
            let reply = post_body(server.addr, path, "exd_admin", content_type, body).await;
            assert_eq!(
                reply.status,
                400,
                "{}: {reply:?}",
                String::from_utf8_lossy(body)
            );
            assert!(reply.error().contains("send `{\"definition\""), "{reply:?}");
        }
        let invalid = post_body(
            server.addr,
            path,
            "exd_admin",
            "application/json",
            br#"{"definition": "fromat = 1"}"#,
        )
        .await;
        assert_eq!(invalid.status, 400, "{invalid:?}");
        assert!(
            invalid
                .error()
                .contains(":1:1: error: unknown key `fromat`"),
            "{invalid:?}"
        );
        let bad_name = post_body(
            server.addr,
            path,
            "exd_admin",
            "application/json",
            br#"{"name": "../x", "definition": ""}"#,
        )
        .await;
        assert_eq!(bad_name.status, 400, "{bad_name:?}");

        // Declared too large: refused before the body is read, whatever the route.
        let huge = vec![b' '; crate::api::routes::MAX_BODY_BYTES + 1];
        for route in [path, "/v1/exports/daily/run"] {
            let reply = post_body(server.addr, route, "exd_admin", "application/json", &huge).await;
            assert_eq!(reply.status, 413, "{route}: {reply:?}");
            assert!(reply.error().contains("larger than"), "{reply:?}");
        }
        // Chunked, so no Content-Length to check: the extractor's limit stops it.
        let mut raw = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer exd_admin\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        .into_bytes();
        let chunk = vec![b' '; 64 * 1024];
        for _ in 0..5 {
            raw.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            raw.extend_from_slice(&chunk);
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(b"0\r\n\r\n");
        let reply = send_raw(server.addr, raw).await;
        assert_eq!(reply.status, 413, "{reply:?}");
        assert!(reply.error().contains("larger than"), "{reply:?}");
    }
}
