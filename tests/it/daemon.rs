//! The daemon (`exportd run`) as an operator sees it: it starts on a directory, picks up new
//! definitions, keeps the last valid version of a broken one and says where the error is,
//! reloads on SIGHUP, runs what is due, and exits cleanly on SIGTERM.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A daemon running on its own temporary directory, killed when dropped.
pub(crate) struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
    log: PathBuf,
}

impl Daemon {
    pub(crate) fn start(files: &[(&str, &str)]) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        // Port 0: tests run in parallel; the daemon logs the address it got.
        write(
            &dir.path().join("exportd.toml"),
            "[http]\nlisten = \"127.0.0.1:0\"\n",
        );
        for (name, text) in files {
            write(&dir.path().join(name), text);
        }
        Daemon::spawn(dir)
    }

    pub(crate) fn spawn(dir: tempfile::TempDir) -> Daemon {
        Daemon::spawn_with(dir, &[])
    }

    /// Starts the daemon with extra environment variables (secrets, test hooks).
    pub(crate) fn spawn_with(dir: tempfile::TempDir, env: &[(&str, &str)]) -> Daemon {
        let log = dir.path().join("daemon.log");
        let _ = std::fs::remove_file(&log);
        let child = Command::new(env!("CARGO_BIN_EXE_exportd"))
            .arg("run")
            .current_dir(dir.path())
            .env_remove("EXPORTD_CONFIG")
            .env("EXPORTD_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start exportd run");
        let daemon = Daemon { child, dir, log };
        daemon.wait_for_log("exportd is ready", Duration::from_secs(20));
        daemon
    }

    /// Stops the process with SIGKILL (no clean-up) and starts a new one on the same directory.
    fn crash_and_restart(mut self) -> Daemon {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let previous = self.log_text();
        let dir = tempfile::TempDir::new().expect("placeholder");
        let real = std::mem::replace(&mut self.dir, dir);
        std::fs::write(real.path().join("daemon-before-crash.log"), previous).expect("keep log");
        Daemon::spawn(real)
    }

    /// The API address the daemon logged.
    pub(crate) fn api(&self) -> String {
        let line = self.wait_for_log("HTTP API listening", Duration::from_secs(5));
        let start = line.find("address=").expect("address field") + "address=".len();
        line[start..]
            .split_whitespace()
            .next()
            .expect("address")
            .to_owned()
    }

    /// One HTTP/1.1 request; returns (status, body).
    pub(crate) fn http(&self, method: &str, path: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(self.api()).expect("connect to the API");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
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
            .map(|(_, b)| b)
            .unwrap_or_default();
        (status, body.to_owned())
    }

    pub(crate) fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle` (counting occurrences after `skip` bytes).
    pub(crate) fn wait_for_log_after(&self, skip: usize, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let text = self.log_text();
            if let Some(found) = text.get(skip..).filter(|t| t.contains(needle)) {
                return found.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "`{needle}` not logged within {limit:?}; log:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn wait_for_log(&self, needle: &str, limit: Duration) -> String {
        self.wait_for_log_after(0, needle, limit)
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn write(path: &Path, text: &str) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("create dir");
    }
    std::fs::write(path, text).expect("write file");
}

const HOURLY: &str = r#"
schedule = "daily at 02:00"
window = "previous_day"
[[deliver]]
to = "local"
path = "out/{{export}}/{{date}}.csv"
"#;

#[test]
fn reload_adds_keeps_last_valid_and_reports_position() {
    let daemon = Daemon::start(&[("exports.d/alpha.toml", HOURLY)]);
    daemon.wait_for_log("added=[\"alpha\"]", Duration::from_secs(5));

    // A new file is scheduled within 2 s of being written.
    let mark = daemon.log_text().len();
    let written = Instant::now();
    write(&daemon.path("exports.d/beta.toml"), HOURLY);
    daemon.wait_for_log_after(mark, "added=[\"beta\"]", Duration::from_secs(2));
    assert!(written.elapsed() < Duration::from_secs(2));

    // A broken edit is rejected with file:line:col, and nothing is removed.
    let mark = daemon.log_text().len();
    write(
        &daemon.path("exports.d/alpha.toml"),
        &HOURLY.replace("daily at 02:00", "daily at 25:00"),
    );
    let logged = daemon.wait_for_log_after(mark, "Definitions reconciled", Duration::from_secs(5));
    assert!(
        logged.contains("exports.d/alpha.toml:2:12: error: invalid schedule"),
        "{logged}"
    );
    assert!(
        logged.contains("rejected=1") && logged.contains("removed=[]"),
        "{logged}"
    );

    // Deleting a file unschedules its export.
    let mark = daemon.log_text().len();
    std::fs::remove_file(daemon.path("exports.d/beta.toml")).expect("remove");
    daemon.wait_for_log_after(mark, "removed=[\"beta\"]", Duration::from_secs(5));

    // SIGHUP reloads.
    let mark = daemon.log_text().len();
    daemon.signal("HUP");
    daemon.wait_for_log_after(mark, "trigger=\"SIGHUP\"", Duration::from_secs(5));
}

#[test]
fn sigterm_exits_cleanly() {
    let mut daemon = Daemon::start(&[("exports.d/alpha.toml", HOURLY)]);
    daemon.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = daemon.child.try_wait().expect("wait") {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(Instant::now() < deadline, "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(daemon.log_text().contains("exiting"));
}

#[test]
fn due_export_runs_and_writes_its_files() {
    let every_minute = r#"
schedule = "every 1m"
window = "since_last_run"
[format]
type = "ndjson"
[[deliver]]
to = "local"
path = "out/{{run_id}}_{{part}}.ndjson"
"#;
    let daemon = Daemon::start(&[("exports.d/minutely.toml", every_minute)]);
    // The next minute boundary is at most 60 s away.
    let logged = daemon.wait_for_log("Run completed", Duration::from_secs(75));
    assert!(logged.contains("export=minutely"), "{logged}");
    let out: Vec<_> = std::fs::read_dir(daemon.path("var/exports/out"))
        .expect("output dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(out.iter().any(|n| n.ends_with("_001.ndjson")), "{out:?}");
    assert!(out.iter().any(|n| n == "_manifest.json"), "{out:?}");
}

#[test]
fn api_shows_a_broken_edit_with_its_position_while_the_last_version_runs() {
    let daemon = Daemon::start(&[("exports.d/alpha.toml", HOURLY)]);
    let (status, body) = daemon.http("GET", "/v1/exports/alpha");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"condition\":\"ready\""), "{body}");
    let mark = daemon.log_text().len();
    write(
        &daemon.path("exports.d/alpha.toml"),
        &HOURLY.replace("previous_day", "previous_dya"),
    );
    daemon.wait_for_log_after(mark, "Definitions reconciled", Duration::from_secs(5));
    let (status, body) = daemon.http("GET", "/v1/exports/alpha");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"condition\":\"stalled\""), "{body}");
    assert!(
        body.contains("exports.d/alpha.toml:3:10: error: unknown window"),
        "{body}"
    );
    assert!(
        body.contains("\"active_revision\":\""),
        "the last valid version keeps running: {body}"
    );
    // Fixing the file makes it ready again.
    let mark = daemon.log_text().len();
    write(&daemon.path("exports.d/alpha.toml"), HOURLY);
    daemon.wait_for_log_after(mark, "Definitions reconciled", Duration::from_secs(5));
    let (_, body) = daemon.http("GET", "/v1/exports/alpha");
    assert!(body.contains("\"condition\":\"ready\""), "{body}");
    let (status, metrics) = daemon.http("GET", "/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("exportd_config_reloads_total"),
        "{metrics}"
    );
}

#[test]
fn a_run_killed_midway_is_retried_after_restart_with_one_set_of_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let status = Command::new(env!("CARGO_BIN_EXE_exportd"))
        .args([
            "demo",
            "--leads",
            "60000",
            "--seed",
            "3",
            "--end",
            "2024-06-01T00:00:00Z",
        ])
        .current_dir(dir.path())
        .env_remove("EXPORTD_CONFIG")
        .stdout(Stdio::null())
        .status()
        .expect("demo");
    assert!(status.success());
    write(
        &dir.path().join("exportd.toml"),
        "[http]\nlisten = \"127.0.0.1:0\"\n",
    );
    // 7z compresses slowly, so the run is still going when the process is killed.
    write(
        &dir.path().join("exports.d/slow.toml"),
        r#"
window = "all"
[format]
type = "json"
pretty = true
compression = "7z"
[chunk]
max_rows = 20000
[[deliver]]
to = "local"
path = "out/slow_{{part}}.json.7z"
"#,
    );
    let daemon = Daemon::spawn(dir);
    let (status, body) = daemon.http("POST", "/v1/exports/slow/run");
    assert_eq!(status, 202, "{body}");
    daemon.wait_for_log("Run started", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !daemon.log_text().contains("Run completed"),
        "the run finished before it could be killed; make it slower"
    );
    let daemon = daemon.crash_and_restart();
    let logged = daemon.wait_for_log("Run completed", Duration::from_secs(120));
    assert!(
        logged.contains("Retrying a run interrupted by a crash"),
        "{logged}"
    );
    let mut files: Vec<String> = std::fs::read_dir(daemon.path("var/exports/out"))
        .expect("output dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "_manifest.json",
            "slow_001.json.7z",
            "slow_002.json.7z",
            "slow_003.json.7z"
        ],
        "exactly one set of files, no temporaries"
    );
    let (status, body) = daemon.http("GET", "/v1/runs?export=slow");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"state\":\"completed\""), "{body}");
    assert!(body.contains("\"attempt\":2"), "{body}");
}

#[test]
fn systemd_gets_ready_and_watchdog_keep_alives() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(
        &dir.path().join("exportd.toml"),
        "[http]\nlisten = \"127.0.0.1:0\"\n",
    );
    write(&dir.path().join("exports.d/alpha.toml"), HOURLY);
    let socket_path = dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).expect("bind notify socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut child = Command::new(env!("CARGO_BIN_EXE_exportd"))
        .arg("run")
        .current_dir(dir.path())
        .env_remove("EXPORTD_CONFIG")
        .env("NOTIFY_SOCKET", &socket_path)
        // 200 ms: keep-alives every 100 ms.
        .env("WATCHDOG_USEC", "200000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start exportd run");
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while seen
        .iter()
        .filter(|m: &&String| m.as_str() == "WATCHDOG=1")
        .count()
        < 3
    {
        let n = socket.recv(&mut buf).expect("a notification within 20 s");
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        seen.first().map(String::as_str),
        Some("READY=1"),
        "{seen:?}"
    );
}

#[test]
fn editor_save_by_temp_file_and_rename_is_picked_up_once() {
    let daemon = Daemon::start(&[("exports.d/alpha.toml", HOURLY)]);
    daemon.wait_for_log("added=[\"alpha\"]", Duration::from_secs(5));
    let mark = daemon.log_text().len();
    // What vim and most editors do: write a hidden temporary file, then rename it over the
    // original. The temporary file must never be loaded as a definition.
    let temp = daemon.path("exports.d/.alpha.toml.swp");
    write(&temp, &HOURLY.replace("daily at 02:00", "daily at 03:00"));
    std::thread::sleep(Duration::from_millis(300));
    std::fs::rename(&temp, daemon.path("exports.d/alpha.toml")).expect("rename");
    let logged = daemon.wait_for_log_after(mark, "Definitions reconciled", Duration::from_secs(5));
    assert!(logged.contains("changed=[\"alpha\"]"), "{logged}");
    assert!(
        !logged.contains(".alpha"),
        "the temporary file was loaded: {logged}"
    );
    std::thread::sleep(Duration::from_secs(2));
    let after = daemon.log_text()[mark..]
        .matches("Definitions reconciled")
        .count();
    assert_eq!(after, 1, "one save, one reload");
}

#[test]
fn plan_shows_what_changed_since_the_daemon_accepted_the_definitions() {
    let mut daemon = Daemon::start(&[
        ("exports.d/alpha.toml", HOURLY),
        ("exports.d/gamma.toml", HOURLY),
    ]);
    daemon.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    while daemon.child.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    let plan = || {
        let out = Command::new(env!("CARGO_BIN_EXE_exportd"))
            .args(["plan", "--count", "1"])
            .current_dir(daemon.path(""))
            .env_remove("EXPORTD_CONFIG")
            .output()
            .expect("exportd plan");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(
        plan().contains("alpha [scheduled, unchanged]"),
        "{}",
        plan()
    );
    write(
        &daemon.path("exports.d/alpha.toml"),
        &HOURLY.replace("daily at 02:00", "daily at 04:00"),
    );
    write(&daemon.path("exports.d/beta.toml"), HOURLY);
    std::fs::remove_file(daemon.path("exports.d/gamma.toml")).expect("remove");
    let text = plan();
    assert!(text.contains("alpha [scheduled, changed]"), "{text}");
    assert!(text.contains("beta [scheduled, new]"), "{text}");
    assert!(text.contains("gamma [removed, removed]"), "{text}");
}
