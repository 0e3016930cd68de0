//! PostgreSQL as lead store and state store, against the real server of
//! `scripts/services/postgres.sh` (`EXPORTD_TEST_PG_URL`). Each test creates a database of its
//! own, so tests never see each other's rows.
//!
//! - The same data loaded into SQLite and PostgreSQL exports to the same bytes, through every
//!   format, filters pushed down and kept in Rust, masks, events and summaries.
//! - Filter values are parameters: an injection attempt matches nothing and breaks nothing.
//! - Replicas: three daemons on one PostgreSQL state store run every nominal time exactly once,
//!   and a run whose replica is killed is taken over after its lease.

use crate::util::{Test, service};
use chrono::{DateTime, TimeZone, Timelike, Utc};
use exportd::state::{RunFilter, RunOutcome, RunStart, RunState, StateStore, Trigger};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// Runs statements on the test server as the `postgres` user.
fn admin_sql(url: &str, sql: &str) {
    query(url, sql);
}

/// Rows of a query on `url`.
fn query(url: &str, sql: &str) -> Vec<Vec<Option<String>>> {
    let conn = exportd::postgres::Connection::open(url, None).expect("connect to the test server");
    let client = conn.client();
    let sql = sql.to_owned();
    let messages = conn
        .run(async move { client.simple_query(&sql).await })
        .expect("query");
    messages
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
            }
            _ => None,
        })
        .collect()
}

/// A new empty database on the test server; returns its URL.
fn new_database(tag: &str) -> String {
    let url = service("EXPORTD_TEST_PG_URL");
    let name = format!(
        "it_{tag}_{}_{}",
        std::process::id(),
        Utc::now().timestamp_micros()
    );
    admin_sql(&url, &format!("CREATE DATABASE {name}"));
    let (base, _) = url.rsplit_once('/').expect("a url with a database");
    format!("{base}/{name}")
}

/// A directory with exportd.toml, exports.d/ and var/exports/, like the export tests' workspace.
struct Workspace {
    dir: TempDir,
}

impl Workspace {
    /// SQLite store and state (the defaults) when `pg` is None.
    fn new(pg: Option<&str>) -> Workspace {
        let dir = tempfile::Builder::new()
            .prefix("exportd-pg-")
            .tempdir()
            .expect("temp dir");
        let mut config = String::from("[http]\nlisten = \"127.0.0.1:0\"\n");
        if let Some(url) = pg {
            // The password comes from a secret reference, not the URL.
            let (scheme_user, rest) = url.split_once(":testpw@").expect("test url with password");
            config.push_str(&format!(
                "[store]\nurl = \"{scheme_user}@{rest}\"\npassword = {{ env = \"EXPORTD_TEST_PG_PASSWORD\" }}\n\
                 [state]\nurl = \"{url}\"\n"
            ));
        }
        std::fs::write(dir.path().join("exportd.toml"), config).expect("exportd.toml");
        Workspace { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn exportd(&self) -> Test {
        Test::new()
            .env("EXPORTD_TEST_PG_PASSWORD", "testpw")
            .arg("--config")
            .arg(self.path().join("exportd.toml"))
    }

    fn definition(&self, name: &str, toml: &str) {
        let path = self.path().join("exports.d").join(format!("{name}.toml"));
        std::fs::create_dir_all(path.parent().expect("exports.d")).expect("exports.d");
        std::fs::write(path, toml).expect("definition");
    }

    /// Every exported file except manifests (they hold run times), by relative path.
    fn outputs(&self) -> BTreeMap<String, Vec<u8>> {
        fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten() {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    walk(root, &path, out);
                } else if !path.ends_with("_manifest.json") {
                    let relative = path.strip_prefix(root).expect("under root");
                    out.insert(
                        relative.to_string_lossy().into_owned(),
                        std::fs::read(&path).expect("read output"),
                    );
                }
            }
        }
        let mut out = BTreeMap::new();
        let root = self.path().join("var/exports");
        walk(&root, &root, &mut out);
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Same bytes as SQLite
// ---------------------------------------------------------------------------------------------

/// Edge cases on top of the demo data: nested objects (flattened), escapes, unicode, exact
/// decimals, a big integer, JSON nulls, money with four decimals, and a lead ingested twice
/// (the second replaces the first). One key never mixes numbers and text across leads: min,
/// max and sum of such a key differ between the stores (docs/postgresql.md).
const EDGE_LEADS: &str = r#"{"id":"E1","created_at":"2024-01-20T10:00:00.123456Z","source":"google","state":"CA","email":{"value":"a@b.co","valid":true},"note":"Smith, \"Jr\" <&> 'x'\ttab","revenue":"10.1234","cost":0.1,"lead_score":82,"big":12345678901234567,"ratio":0.1,"none":null}
{"id":"E2","created_at":"2024-01-20T11:00:00Z","source":"Google","state":"TX","note":"José 🙂 line\nbreak","revenue":45,"grade":"n/a"}
{"id":"E3","created_at":"2024-01-20T12:00:00Z","state":"CA","revenue":"99.99","lead_score":70.5}
{"id":"E1","created_at":"2024-01-20T10:00:00.123Z","source":"google","state":"CA","email":"a@b.co","revenue":"11","cost":"0.1000","lead_score":83}
"#;

/// Events ingested on top of the demo's (the upsert path, not the bulk copy).
const EDGE_EVENTS: &str = r#"{"id":"ev1","type":"recipient.delivered","timestamp":"2024-01-20T12:00:00.123Z","lead_id":"E1","buyer":"buyer-ü","price":"12.50","duration_ms":240,"metadata":{"http_status":200,"retry":{"count":1}},"lead":{"email":"a@b.co","state":"CA"}}
{"id":"ev2","type":"recipient.failed","timestamp":"2024-01-20T12:00:01Z","lead_id":"E2","buyer":"buyer-x","price":"7.0001","reason":"timeout"}
{"id":"ev1","type":"recipient.delivered","timestamp":"2024-01-20T12:00:00.123Z","lead_id":"E1","buyer":"buyer-ü","price":"13","duration_ms":250,"metadata":{"http_status":201}}
"#;

const COMPARED: &[(&str, &str)] = &[
    (
        "all-csv",
        r#"
        window = "all"
        [[deliver]]
        to = "local"
        path = "all/leads.csv"
        "#,
    ),
    (
        "filtered-json",
        r#"
        window = "all"
        filter = "state IN ('CA', 'TX') AND revenue > 10 AND hour(timestamp) >= 9 AND lower(source) = 'google' AND lead_score >= 50"
        [fields]
        include = ["lead_id", "timestamp", "source", "state", "email", "phone_1", "revenue", "cost", "lead_score", "note", "big", "ratio", "none"]
        computed = { margin = "revenue - cost" }
        mask = { email = "email", phone_1 = "last4" }
        [format]
        type = "json"
        [[deliver]]
        to = "local"
        path = "filtered/leads.json"
        "#,
    ),
    (
        "like-xml",
        r#"
        window = "all"
        filter = "email LIKE '%@gmail.com' AND email.valid = true AND date(created_at) >= '2024-01-25' AND weekday(timestamp) < 6"
        [fields]
        include = ["lead_id", "timestamp", "email", "first_name", "state"]
        [format]
        type = "xml"
        [[deliver]]
        to = "local"
        path = "like/leads.xml"
        "#,
    ),
    (
        "events-ndjson",
        r#"
        kind = "events"
        window = "all"
        filter = "buyer IS NOT NULL AND price > 5 AND type LIKE 'recipient.%' AND (metadata.http_status IS NULL OR metadata.http_status >= 200)"
        [format]
        type = "ndjson"
        compression = "gzip"
        [[deliver]]
        to = "local"
        path = "events/events.ndjson.gz"
        "#,
    ),
    (
        "chunked-tsv",
        r#"
        window = "all"
        filter = "outcome = 'success' AND (state = 'NY' OR cost IS NULL)"
        [format]
        type = "tsv"
        [chunk]
        max_rows = 40
        [[deliver]]
        to = "local"
        path = "chunked/{{part}}.tsv"
        "#,
    ),
    (
        "summary",
        r#"
        kind = "summary"
        timezone = "America/Chicago"
        window = "all"
        [summary]
        group_by = ["date", "source", "state"]
        [summary.metrics]
        leads = "count"
        sold = 'count where outcome = "success" AND revenue > 20'
        revenue = "sum revenue"
        avg_revenue = "avg revenue"
        margin = "sum margin"
        best = "max lead_score"
        total_score = "sum lead_score"
        cheapest = "min cost"
        [[deliver]]
        to = "local"
        path = "summary/by_source.csv"
        "#,
    ),
];

#[test]
fn postgres_exports_the_same_bytes_as_sqlite() {
    let url = new_database("same_bytes");
    let sqlite = Workspace::new(None);
    let postgres = Workspace::new(Some(&url));
    for ws in [&sqlite, &postgres] {
        ws.exportd()
            .args([
                "demo",
                "--leads",
                "3000",
                "--seed",
                "7",
                "--end",
                "2024-02-01",
            ])
            .run()
            .success();
        ws.exportd()
            .file("edge.ndjson", EDGE_LEADS)
            .args(["ingest", "--leads", "edge.ndjson", "--batch", "2"])
            .run()
            .success();
        ws.exportd()
            .file("events.ndjson", EDGE_EVENTS)
            .args(["ingest", "--events", "events.ndjson"])
            .run()
            .success();
        for (name, toml) in COMPARED {
            ws.definition(name, toml);
        }
        for (name, _) in COMPARED {
            ws.exportd()
                .args(["export", name, "--at", "2024-02-01T00:00:00Z"])
                .run()
                .success();
        }
    }
    let (a, b) = (sqlite.outputs(), postgres.outputs());
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "both stores write the same files"
    );
    assert!(
        a.len() > COMPARED.len(),
        "chunking made several parts: {:?}",
        a.keys()
    );
    for (path, bytes) in &a {
        assert!(
            bytes.len() > 100,
            "{path} is nearly empty: the test would prove little"
        );
        if *bytes != b[path] {
            let (x, y) = (
                String::from_utf8_lossy(bytes),
                String::from_utf8_lossy(&b[path]),
            );
            let differing: Vec<(&str, &str)> = x
                .lines()
                .zip(y.lines())
                .filter(|(l, r)| l != r)
                .take(5)
                .collect();
            panic!(
                "{path} differs ({} vs {} bytes); first differing lines (sqlite, postgres):\n{differing:#?}",
                bytes.len(),
                b[path].len()
            );
        }
    }
    // The lead ingested twice is stored once, as its second version.
    let rows = query(
        &url,
        "SELECT doc->>'lead_score', revenue::text FROM leads WHERE id = 'E1'",
    );
    assert_eq!(rows, [[Some("83".to_owned()), Some("11.0000".to_owned())]]);
    // Schema versions are recorded (state: 1 runs/ledger/claims, 2 retention, 3 audit log,
    // 4 storage-class transitions).
    let versions = query(
        &url,
        "SELECT schema_name, max(version)::text FROM schema_migrations GROUP BY 1 ORDER BY 1",
    );
    assert_eq!(
        versions,
        [
            [Some("leads".to_owned()), Some("1".to_owned())],
            [Some("state".to_owned()), Some("4".to_owned())]
        ]
    );
}

#[test]
fn filter_injection_matches_nothing_and_the_table_survives() {
    let url = new_database("injection");
    let ws = Workspace::new(Some(&url));
    ws.exportd()
        .file("edge.ndjson", EDGE_LEADS)
        .args(["ingest", "--leads", "edge.ndjson"])
        .run()
        .success();
    ws.definition(
        "evil",
        r#"
        window = "all"
        filter = "state = \"CA'; DROP TABLE leads; --\" OR source = \"x') OR 1=1 --\""
        [fields]
        include = ["lead_id"]
        [[deliver]]
        to = "local"
        path = "evil/leads.csv"
        "#,
    );
    ws.exportd()
        .args(["export", "evil", "--at", "2024-02-01T00:00:00Z"])
        .run()
        .success();
    let text = std::fs::read_to_string(ws.path().join("var/exports/evil/leads.csv")).expect("csv");
    assert_eq!(text, "lead_id\n", "no row matches");
    let leads = query(&url, "SELECT count(*)::text FROM leads");
    assert_eq!(leads, [[Some("3".to_owned())]], "the table is intact");
}

#[test]
fn strict_ingest_into_postgres_loads_nothing_when_a_line_is_bad() {
    let url = new_database("strict");
    let ws = Workspace::new(Some(&url));
    ws.exportd()
        .file(
            "bad.ndjson",
            "{\"id\":\"A\",\"created_at\":\"2024-01-01T00:00:00Z\"}\n{\"id\":\"B\",\"created_at\":\"2024-01-01T00:00:00Z\",\"revenue\":\"1.00001\"}\n",
        )
        .args(["ingest", "--leads", "bad.ndjson", "--strict", "--batch", "1"])
        .run()
        .failure();
    assert_eq!(
        query(&url, "SELECT count(*)::text FROM leads"),
        [[Some("0".to_owned())]]
    );
}

// ---------------------------------------------------------------------------------------------
// Replicas
// ---------------------------------------------------------------------------------------------

/// One `exportd run` replica on its own directory, killed when dropped.
struct Replica {
    child: Child,
    dir: TempDir,
}

impl Replica {
    fn start(config: &str, definition: &str, env: &[(&str, &str)]) -> Replica {
        let dir = tempfile::Builder::new()
            .prefix("exportd-replica-")
            .tempdir()
            .expect("temp dir");
        std::fs::write(dir.path().join("exportd.toml"), config).expect("config");
        std::fs::create_dir_all(dir.path().join("exports.d")).expect("exports.d");
        std::fs::write(dir.path().join("exports.d/minutely.toml"), definition).expect("definition");
        let mut command = Command::new(env!("CARGO_BIN_EXE_exportd"));
        command
            .arg("run")
            .current_dir(dir.path())
            .env_remove("EXPORTD_CONFIG")
            .env("EXPORTD_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("daemon.log")).expect("log"));
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command.spawn().expect("start exportd run");
        Replica { child, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// The API address, once the daemon is ready.
    fn api(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = self.log();
            if let Some(line) = log.lines().find(|l| l.contains("HTTP API listening")) {
                let start = line.find("address=").expect("address") + "address=".len();
                return line[start..]
                    .split_whitespace()
                    .next()
                    .expect("address")
                    .to_owned();
            }
            assert!(Instant::now() < deadline, "replica not ready:\n{log}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn get(&self, path: &str) -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(self.api()).expect("connect to the API");
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read");
        response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default()
    }

    /// SIGKILL: no clean-up, the lease just stops being renewed. The directory (and log) stays.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn owner(&self) -> String {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
        format!("{}:{}", host.trim(), self.dir.path().display())
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Three replicas, one state store: 24 catch-up runs of an `every 1m` export, each run once;
/// the replica holding one of them is killed with SIGKILL and another completes that run once
/// the 3 s lease has run out. (Catch-up makes the replicas race for 24 nominal times at once,
/// which exercises the claim exactly as 24 real minutes would.)
#[test]
fn replicas_run_each_nominal_time_once_and_take_over_a_killed_holder() {
    let url = new_database("replicas");
    let shared = tempfile::tempdir().expect("shared output");
    let config = format!(
        "[http]\nlisten = \"127.0.0.1:0\"\n[store]\nurl = \"{url}\"\n\
         [state]\nurl = \"{url}\"\nlease_seconds = 3\n\
         [defaults]\noutput_dir = \"{}\"\n",
        shared.path().display()
    );
    let definition = r#"
        schedule = "every 1m"
        catch_up = "all"
        window = "all"
        [fields]
        include = ["lead_id", "state", "revenue"]
        [[deliver]]
        to = "local"
        path = "out/{{run_id}}/leads.csv"
    "#;
    // Some data, and a scheduled run 25 minutes ago: the replicas start 24 runs behind.
    let seed = Workspace::new(Some(&url));
    seed.exportd()
        .args(["demo", "--leads", "300"])
        .run()
        .success();
    let state = exportd::state::open(&url, None, Path::new("/")).expect("state store");
    let now = Utc::now();
    let minute = |t: DateTime<Utc>| {
        Utc.timestamp_opt(t.timestamp() - i64::from(t.second()), 0)
            .single()
            .expect("time")
    };
    let last = minute(now) - chrono::Duration::minutes(25);
    record_completed(state.as_ref(), last);
    let expected: Vec<DateTime<Utc>> = (1..=24)
        .map(|i| last + chrono::Duration::minutes(i))
        .collect();
    let slow = expected[4];
    let slow_id = format!("minutely/{}", slow.format("%Y%m%dT%H%M%SZ"));
    let delay = format!("{slow_id}=600");
    let env = [("EXPORTD_TEST_RUN_DELAY", delay.as_str())];
    let mut replicas: Vec<Replica> = (0..3)
        .map(|_| Replica::start(&config, definition, &env))
        .collect();
    let logs = |replicas: &[Replica]| {
        replicas
            .iter()
            .map(Replica::log)
            .collect::<Vec<_>>()
            .join("\n----\n")
    };

    // Wait for the slow run to be held, then kill its holder.
    let deadline = Instant::now() + Duration::from_secs(60);
    let holder = loop {
        let owner = query(
            &url,
            &format!("SELECT owner FROM claims WHERE claim_key = '{slow_id}' AND NOT done"),
        );
        if let Some(Some(owner)) = owner.first().and_then(|r| r.first()).cloned() {
            let running = state.get_run(&slow_id).expect("run").map(|r| r.state);
            if running == Some(RunState::Running) {
                break owner;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the slow run never started; logs:\n{}",
            logs(&replicas)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let index = replicas
        .iter()
        .position(|r| r.owner() == holder)
        .unwrap_or_else(|| panic!("holder `{holder}` is none of the replicas"));
    replicas[index].kill();

    // Every nominal time completes.
    let deadline = Instant::now() + Duration::from_secs(120);
    let runs = loop {
        let runs = state
            .list_runs(&RunFilter {
                export: Some("minutely".into()),
                ..RunFilter::default()
            })
            .expect("runs");
        // Runs after the catch-up window are the live schedule going on; not counted.
        let runs: Vec<_> = runs
            .into_iter()
            .filter(|r| r.nominal <= expected[expected.len() - 1])
            .collect();
        let done = runs
            .iter()
            .filter(|r| r.state == RunState::Completed)
            .count();
        if done == expected.len() + 1 {
            break runs;
        }
        assert!(
            Instant::now() < deadline,
            "only {done} runs completed: {:#?}\nlogs:\n{}",
            runs.iter()
                .map(|r| (&r.id, r.state, r.attempt))
                .collect::<Vec<_>>(),
            logs(&replicas)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut nominals: Vec<DateTime<Utc>> = runs.iter().map(|r| r.nominal).collect();
    nominals.sort();
    assert_eq!(
        nominals[1..],
        expected[..],
        "one run row per nominal time, no other"
    );
    for run in &runs {
        let expected_attempt = if run.id == slow_id { 2 } else { 1 };
        if run.nominal != last {
            assert_eq!(
                (run.state, run.attempt),
                (RunState::Completed, expected_attempt),
                "{}",
                run.id
            );
            let delivered = state.deliveries_for_run(&run.id).expect("ledger");
            assert_eq!(delivered.len(), 2, "{}: csv and manifest", run.id);
        }
    }
    // Each nominal time ran to completion exactly once over all replicas (the killed one's
    // attempt never completed), and its files are complete.
    let all_logs = logs(&replicas);
    for t in &expected {
        let id = format!("minutely/{}", t.format("%Y%m%dT%H%M%SZ"));
        let completions = all_logs
            .lines()
            .filter(|l| {
                l.contains("Run completed.")
                    && l.contains(&format!("run_id={}", t.format("%Y%m%dT%H%M%SZ")))
            })
            .count();
        assert_eq!(
            completions, 1,
            "{id} completed {completions} times:\n{all_logs}"
        );
        let csv = shared
            .path()
            .join(format!("out/{}/leads.csv", t.format("%Y%m%dT%H%M%SZ")));
        let text =
            std::fs::read_to_string(&csv).unwrap_or_else(|e| panic!("{}: {e}", csv.display()));
        let rows = runs.iter().find(|r| r.id == id).and_then(|r| r.rows);
        assert!(rows.is_some_and(|n| n > 0), "{id} exported {rows:?} rows");
        assert_eq!(
            Some(text.lines().count() as u64 - 1),
            rows,
            "{}: one header and the run's rows",
            csv.display()
        );
    }
    // Every surviving replica's status API shows the same runs.
    let survivors: Vec<&Replica> = replicas
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != index)
        .map(|(_, r)| r)
        .collect();
    // Runs of the live schedule may start between two requests: compare the catch-up window.
    let caught_up = |body: String| -> Vec<serde_json::Value> {
        let list: serde_json::Value = serde_json::from_str(&body).expect("JSON run list");
        list["runs"]
            .as_array()
            .expect("runs")
            .iter()
            .filter(|r| {
                r["nominal"]
                    .as_str()
                    .and_then(|t| t.parse::<DateTime<Utc>>().ok())
                    .is_some_and(|t| t <= expected[expected.len() - 1])
            })
            .cloned()
            .collect()
    };
    let views: Vec<Vec<serde_json::Value>> = survivors
        .iter()
        .map(|r| caught_up(r.get("/v1/runs?export=minutely&limit=100")))
        .collect();
    assert_eq!(views[0].len(), expected.len() + 1, "{:#?}", views[0]);
    assert!(views[0].iter().any(|r| r["id"] == slow_id.as_str()));
    assert_eq!(views[0], views[1], "both replicas list the same runs");
}

fn record_completed(state: &dyn StateStore, nominal: DateTime<Utc>) {
    let start = RunStart {
        export: "minutely".into(),
        nominal,
        window_start: None,
        window_end: nominal,
        trigger: Trigger::Schedule,
        revision: "seed".into(),
        started_at: nominal,
    };
    let id = start.id();
    state.record_start(&start).expect("record start");
    state
        .record_finish(
            &id,
            &RunOutcome::Completed {
                rows: 0,
                bytes: 0,
                parts: 0,
            },
            nominal,
        )
        .expect("record finish");
}

/// A TCP forwarder to the test server that the test can cut and restore: a network partition
/// between one replica and its state store, on loopback.
struct Partition {
    port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Partition {
    fn to(target_port: u16) -> Partition {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let open = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (cut2, open2) = (cut.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if cut2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", target_port)) else {
                    continue;
                };
                let mut guard = open2.lock().expect("lock");
                for s in [&client, &server] {
                    guard.push(s.try_clone().expect("clone"));
                }
                drop(guard);
                for (mut from, mut to) in [
                    (
                        client.try_clone().expect("clone"),
                        server.try_clone().expect("clone"),
                    ),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Partition { port, cut, open }
    }

    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for s in self.open.lock().expect("lock").drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A replica that cannot reach its state store starts no run; once the network is back it
/// runs the nominal time it missed, once.
#[test]
fn a_replica_cut_off_from_the_state_store_starts_no_run() {
    let url = new_database("partition");
    let pg_port: u16 = service("EXPORTD_TEST_PG_PORT").parse().expect("port");
    let partition = Partition::to(pg_port);
    let state_url = url.replace(&format!(":{pg_port}/"), &format!(":{}/", partition.port));
    let config = format!(
        "[http]\nlisten = \"127.0.0.1:0\"\n[store]\nurl = \"{url}\"\n\
         [state]\nurl = \"{state_url}\"\nlease_seconds = 3\n"
    );
    let definition = r#"
        schedule = "every 1m"
        catch_up = "none"
        window = "all"
        [[deliver]]
        to = "local"
        path = "out/{{run_id}}.csv"
    "#;
    let replica = Replica::start(&config, definition, &[]);
    replica.api();
    partition.cut();
    // Past the next minute, plus time for a few claim attempts.
    let now = Utc::now();
    let next = Utc
        .timestamp_opt(now.timestamp() - i64::from(now.second()) + 60, 0)
        .single()
        .expect("time");
    let wait = (next - now).to_std().expect("future") + Duration::from_secs(8);
    std::thread::sleep(wait);
    let log = replica.log();
    assert!(log.contains("Cannot claim the run"), "{log}");
    assert!(
        !log.contains("Run started."),
        "a run started without the state store:\n{log}"
    );
    partition.restore();
    let deadline = Instant::now() + Duration::from_secs(40);
    while !replica.log().contains("Run completed.") {
        assert!(
            Instant::now() < deadline,
            "the run never completed after the network came back:\n{}",
            replica.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let state = exportd::state::open(&url, None, Path::new("/")).expect("state store");
    let id = format!("minutely/{}", next.format("%Y%m%dT%H%M%SZ"));
    let run = state
        .get_run(&id)
        .expect("read")
        .expect("the missed run ran");
    assert_eq!((run.state, run.attempt), (RunState::Completed, 1));
}
