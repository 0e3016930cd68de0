//! `to = "sftp"` against a real OpenSSH server on loopback (scripts/services/sftp.sh): the
//! files land under the server's `files/` directory, which the tests read directly.
//!
//! Every test writes under a directory of its own (the server is shared by parallel tests).
//! Tests that drop or restart the server start a private sshd with the service's config and
//! keys, so other tests never see their connections cut.

use crate::util::{Output, Test, service};
use exportd::config::daemon::DaemonConfig;
use exportd::deliver::{self, Context, Destination, Upload};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Five leads of 2024-01-15: three parts of at most two rows.
const FIVE_LEADS: &str = r#"{"id":"C1","created_at":"2024-01-15T01:00:00Z","state":"CA"}
{"id":"C2","created_at":"2024-01-15T02:00:00Z","state":"TX"}
{"id":"C3","created_at":"2024-01-15T03:00:00Z","state":"NY"}
{"id":"C4","created_at":"2024-01-15T04:00:00Z","state":"FL"}
{"id":"C5","created_at":"2024-01-15T05:00:00Z","state":"WA"}
"#;

const EXPECTED_PARTS: [(&str, &str); 3] = [
    ("leads_001.csv", "lead_id,state\nC1,CA\nC2,TX\n"),
    ("leads_002.csv", "lead_id,state\nC3,NY\nC4,FL\n"),
    ("leads_003.csv", "lead_id,state\nC5,WA\n"),
];

/// The test server's endpoints, from the environment `scripts/services.sh` writes.
struct Server {
    port: String,
    client_key: String,
    known_hosts: String,
    known_hosts_wrong: String,
    fingerprint: String,
    wrong_fingerprint: String,
    files: PathBuf,
}

impl Server {
    fn get() -> Server {
        Server {
            port: service("EXPORTD_TEST_SFTP_PORT"),
            client_key: service("EXPORTD_TEST_SFTP_CLIENT_KEY"),
            known_hosts: service("EXPORTD_TEST_SFTP_KNOWN_HOSTS"),
            known_hosts_wrong: service("EXPORTD_TEST_SFTP_KNOWN_HOSTS_WRONG"),
            fingerprint: service("EXPORTD_TEST_SFTP_FINGERPRINT"),
            wrong_fingerprint: service("EXPORTD_TEST_SFTP_WRONG_FINGERPRINT"),
            files: PathBuf::from(service("EXPORTD_TEST_SFTP_FILES")),
        }
    }

    /// `[connections.files]` for this server on `port`, with `verify` (known_hosts or a
    /// pinned fingerprint).
    fn connection(&self, port: &str, verify: &str) -> String {
        format!(
            "[connections.files]\ntype = \"sftp\"\nhost = \"127.0.0.1\"\nport = {port}\nusername = \"root\"\nprivate_key = {{ file = \"{}\" }}\ntimeout_seconds = 10\n{verify}\n",
            self.client_key
        )
    }

    fn known_hosts(&self, path: &str) -> String {
        format!("known_hosts = \"{path}\"")
    }
}

/// A store, a definition and exportd.toml; the remote directory is unique to the test.
struct Workspace {
    dir: TempDir,
    remote: String,
}

impl Workspace {
    fn new(test: &str, daemon_config: &str) -> Workspace {
        let ws = Workspace {
            dir: tempfile::Builder::new()
                .prefix("exportd-sftp-")
                .tempdir()
                .expect("creating a temporary directory"),
            remote: format!("{test}-{}", std::process::id()),
        };
        ws.daemon_config(daemon_config);
        ws.exportd()
            .file("leads.ndjson", FIVE_LEADS)
            .args(["ingest", "--leads", "leads.ndjson"])
            .run()
            .success();
        let definition = format!(
            r#"
window = "previous_day"
[fields]
include = ["lead_id", "state"]
[chunk]
max_rows = 2
[[deliver]]
to = "sftp"
connection = "files"
path = "{}/{{{{date}}}}/nested/deeper/leads_{{{{part}}}}.csv"
"#,
            ws.remote
        );
        let exports = ws.path().join("exports.d");
        std::fs::create_dir_all(&exports).expect("creating exports.d");
        std::fs::write(exports.join("to-sftp.toml"), definition).expect("writing a definition");
        ws
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn daemon_config(&self, text: &str) {
        std::fs::write(self.path().join("exportd.toml"), text).expect("writing exportd.toml");
    }

    fn exportd(&self) -> Test {
        Test::new()
            .arg("--config")
            .arg(self.path().join("exportd.toml"))
    }

    fn export(&self) -> Output {
        self.exportd()
            .args(["export", "to-sftp", "--at", "2024-01-16T02:00:00Z"])
            .run()
    }

    /// The run's directory on the server.
    fn remote_dir(&self, server: &Server) -> PathBuf {
        server
            .files
            .join(&self.remote)
            .join("2024-01-15/nested/deeper")
    }

    /// Files staged by runs that did not finish delivering.
    fn staged(&self) -> Vec<String> {
        files_under(&self.path().join("var/staging"))
    }
}

/// Every file under `dir`, relative to it, sorted (hidden files included).
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let relative = path.strip_prefix(root).expect("under the root");
                out.push(relative.to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The parts and manifest are on the server with the expected bytes, the manifest's sizes and
/// hashes describe them, and no temporary file is left.
fn assert_delivered(ws: &Workspace, server: &Server) {
    let dir = ws.remote_dir(server);
    let mut expected: Vec<&str> = EXPECTED_PARTS.iter().map(|(name, _)| *name).collect();
    expected.insert(0, "_manifest.json");
    assert_eq!(files_under(&dir), expected, "files in {}", dir.display());
    let manifest: Json = serde_json::from_slice(
        &std::fs::read(dir.join("_manifest.json")).expect("reading the manifest"),
    )
    .expect("the manifest is JSON");
    let parts = manifest["parts"].as_array().expect("parts");
    assert_eq!(parts.len(), EXPECTED_PARTS.len(), "{manifest:#}");
    for ((name, text), part) in EXPECTED_PARTS.iter().zip(parts) {
        let bytes = std::fs::read(dir.join(name)).expect("reading a delivered part");
        assert_eq!(String::from_utf8_lossy(&bytes), *text, "{name}");
        assert_eq!(part["name"], *name);
        assert_eq!(part["bytes"], bytes.len() as u64, "bytes of {name}");
        assert_eq!(part["sha256"], sha256_hex(&bytes), "sha256 of {name}");
    }
}

#[test]
fn export_delivers_into_nested_directories_and_a_rerun_overwrites() {
    let server = Server::get();
    let ws = Workspace::new(
        "nested",
        &server.connection(&server.port, &server.known_hosts(&server.known_hosts)),
    );
    ws.export().success();
    assert_delivered(&ws, &server);
    assert!(ws.staged().is_empty(), "staging kept {:?}", ws.staged());

    // A re-run replaces every file in place: a damaged part is repaired, nothing is added.
    let first = ws.remote_dir(&server).join("leads_001.csv");
    std::fs::write(&first, "damaged").expect("damaging a delivered part");
    ws.export().success();
    assert_delivered(&ws, &server);
}

#[test]
fn a_pinned_fingerprint_replaces_known_hosts() {
    let server = Server::get();
    let pinned = format!("host_key_fingerprint = \"{}\"", server.fingerprint);
    let ws = Workspace::new("pinned", &server.connection(&server.port, &pinned));
    ws.export().success();
    assert_delivered(&ws, &server);
}

#[test]
fn unknown_and_changed_host_keys_are_refused_before_anything_is_written() {
    let server = Server::get();
    let empty_known_hosts = tempfile::NamedTempFile::new().expect("an empty known_hosts");
    let cases = [
        (
            "changed",
            server.known_hosts(&server.known_hosts_wrong),
            "does NOT match the key known_hosts",
        ),
        (
            "unknown",
            server.known_hosts(&empty_known_hosts.path().to_string_lossy()),
            "which is not in known_hosts",
        ),
        (
            "mispinned",
            format!("host_key_fingerprint = \"{}\"", server.wrong_fingerprint),
            "pins host_key_fingerprint",
        ),
    ];
    for (case, verify, reason) in cases {
        let ws = Workspace::new(case, &server.connection(&server.port, &verify));
        let started = Instant::now();
        let output = ws.export().failure();
        assert!(output.stderr.contains(reason), "{case}: {}", output.stderr);
        // The message names the key the server showed and how to trust it once checked.
        assert!(
            output.stderr.contains(&server.fingerprint),
            "{case}: {}",
            output.stderr
        );
        assert!(
            output.stderr.contains("refusing to connect"),
            "{case}: {}",
            output.stderr
        );
        // Permanent: no retries (the first backoff alone would take 250 ms or more).
        assert!(
            !output.stderr.contains("retrying"),
            "{case}: {}",
            output.stderr
        );
        assert!(started.elapsed() < Duration::from_secs(20));
        assert!(
            !server.files.join(&ws.remote).exists(),
            "{case}: something was written"
        );
        assert!(!ws.staged().is_empty(), "{case}: the staged parts are kept");
    }
}

#[test]
fn a_server_that_is_down_fails_the_run_after_retries_and_a_later_run_delivers() {
    let server = Server::get();
    let closed = closed_port();
    let known_hosts = server.known_hosts(&server.known_hosts);
    // The known_hosts entry names the real port, so the pinned key stands in while it is down.
    let pinned = format!("host_key_fingerprint = \"{}\"", server.fingerprint);
    let ws = Workspace::new("down", &server.connection(&closed, &pinned));
    let output = ws.export().failure();
    assert!(
        output.stderr.contains("nothing listens there"),
        "{}",
        output.stderr
    );
    assert!(
        output.stderr.contains("attempt 3 of 4"),
        "no retries:\n{}",
        output.stderr
    );
    let staged = ws.staged();
    assert!(
        staged.iter().filter(|f| f.ends_with(".csv")).count() == 3,
        "staged parts: {staged:?}"
    );
    assert!(!server.files.join(&ws.remote).exists());

    ws.daemon_config(&server.connection(&server.port, &known_hosts));
    ws.export().success();
    assert_delivered(&ws, &server);
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a port");
    let port = listener.local_addr().expect("local address").port();
    drop(listener);
    port.to_string()
}

/// A private sshd with the service's config and keys on a port of its own.
struct PrivateServer {
    child: Child,
    port: String,
    log: PathBuf,
}

impl PrivateServer {
    /// Starts sshd on `port`, logging to `dir/LOG_NAME`.
    fn start(dir: &Path, port: &str, log_name: &str) -> PrivateServer {
        let log = dir.join(log_name);
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f", &service("EXPORTD_TEST_SFTP_CONFIG")])
            .args(["-p", port, "-o", "PidFile=none"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("creating the sshd log"))
            .spawn()
            .expect("starting /usr/sbin/sshd");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_err() {
            assert!(Instant::now() < deadline, "the private sshd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        PrivateServer {
            child,
            port: port.to_owned(),
            log,
        }
    }

    /// Logins the server accepted so far.
    fn logins(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches("Accepted publickey")
            .count()
    }

    /// Kills the per-connection sshd processes: every established session drops.
    fn drop_sessions(&self) {
        for pid in children_of(self.child.id()) {
            kill(pid);
        }
    }

    fn stop(mut self) {
        self.drop_sessions();
        kill(self.child.id());
        let _ = self.child.wait();
    }
}

/// PIDs whose parent is `parent` (from /proc).
fn children_of(parent: u32) -> Vec<u32> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("reading /proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`; comm may hold spaces, so parse after the last `)`.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            children.push(pid);
        }
    }
    children
}

fn kill(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}

/// The library's destination for `[connections.files]`.
fn destination(config: &str) -> Box<dyn Destination> {
    let daemon: DaemonConfig = toml::from_str(config).expect("a daemon config");
    let context = Context {
        output_dir: PathBuf::from("/nonexistent"),
        connections: Arc::new(daemon.connections),
    };
    let def = toml::from_str("to = \"sftp\"\nconnection = \"files\"\npath = \"unused/{{part}}\"\n")
        .expect("a [[deliver]] table");
    deliver::build(&def, &context).expect("building the sftp destination")
}

/// Puts `bytes` under `key` as the pipeline does (with its retry policy).
fn put(destination: &dyn Destination, dir: &Path, key: &str, bytes: &[u8]) {
    let file = dir.join(key.replace('/', "_"));
    std::fs::write(&file, bytes).expect("writing a staged file");
    let sha = sha256_hex(bytes);
    let upload = Upload {
        file: &file,
        key,
        bytes: bytes.len() as u64,
        sha256: &sha,
    };
    deliver::retry(&deliver::RetryPolicy::default(), key, |_| {
        destination.put(&upload).map_err(|e| (e, None))
    })
    .unwrap_or_else(|e| panic!("put {key}: {e}"));
}

#[test]
fn a_dropped_connection_or_a_restarted_server_is_reconnected() {
    let server = Server::get();
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let port = closed_port();
    let sshd = PrivateServer::start(scratch.path(), &port, "first.log");
    let pinned = format!("host_key_fingerprint = \"{}\"", server.fingerprint);
    let destination = destination(&server.connection(&sshd.port, &pinned));
    let remote = format!("reconnect-{}", std::process::id());

    put(
        destination.as_ref(),
        scratch.path(),
        &format!("{remote}/one"),
        b"1",
    );
    assert_eq!(sshd.logins(), 1);
    put(
        destination.as_ref(),
        scratch.path(),
        &format!("{remote}/two"),
        b"2",
    );
    assert_eq!(sshd.logins(), 1, "the session is kept between puts");

    sshd.drop_sessions();
    put(
        destination.as_ref(),
        scratch.path(),
        &format!("{remote}/three"),
        b"3",
    );
    assert_eq!(sshd.logins(), 2, "a new session after the drop");

    sshd.stop();
    let sshd = PrivateServer::start(scratch.path(), &port, "second.log");
    put(
        destination.as_ref(),
        scratch.path(),
        &format!("{remote}/four"),
        b"4",
    );
    assert_eq!(sshd.logins(), 1, "a session on the restarted server");
    sshd.stop();

    let dir = server.files.join(&remote);
    assert_eq!(files_under(&dir), ["four", "one", "three", "two"]);
    for (name, text) in [("one", "1"), ("two", "2"), ("three", "3"), ("four", "4")] {
        assert_eq!(std::fs::read_to_string(dir.join(name)).unwrap(), text);
    }
}

#[test]
fn stat_read_small_and_remove_against_the_real_server() {
    let server = Server::get();
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let destination =
        destination(&server.connection(&server.port, &server.known_hosts(&server.known_hosts)));
    let key = format!("objects-{}/a/b/_manifest.json", std::process::id());
    assert_eq!(destination.stat(&key).expect("stat of nothing"), None);
    assert_eq!(destination.read_small(&key), None);

    let before = chrono::Utc::now() - chrono::Duration::seconds(2);
    put(
        destination.as_ref(),
        scratch.path(),
        &key,
        b"{\"parts\":[]}",
    );
    let info = destination.stat(&key).expect("stat").expect("an object");
    assert_eq!(info.bytes, 12);
    let modified = info.modified.expect("an mtime");
    assert!(
        modified >= before && modified <= chrono::Utc::now(),
        "{modified}"
    );
    assert_eq!(
        destination.read_small(&key).as_deref(),
        Some(&b"{\"parts\":[]}"[..])
    );

    destination.remove(&key).expect("remove");
    destination
        .remove(&key)
        .expect("removing a missing object is fine");
    assert_eq!(destination.stat(&key).expect("stat after remove"), None);
    assert!(!server.files.join(&key).exists());
}

#[test]
fn a_server_that_never_answers_times_out_as_a_retriable_error() {
    let server = Server::get();
    // Accepted by the kernel, never served: the SSH banner never comes.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a port");
    let port = silent
        .local_addr()
        .expect("local address")
        .port()
        .to_string();
    let pinned = format!("host_key_fingerprint = \"{}\"", server.fingerprint);
    let config = server
        .connection(&port, &pinned)
        .replace("timeout_seconds = 10", "timeout_seconds = 1");
    let destination = destination(&config);
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let file = scratch.path().join("part");
    std::fs::write(&file, b"x").expect("writing a staged file");
    let started = Instant::now();
    let error = destination
        .put(&Upload {
            file: &file,
            key: "silent/part",
            bytes: 1,
            sha256: &sha256_hex(b"x"),
        })
        .expect_err("nothing answers");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(error.is_retriable(), "{error}");
    assert!(
        error
            .to_string()
            .contains("connecting did not finish within 1 s"),
        "{error}"
    );
}

#[test]
fn allow_insecure_connects_to_a_loopback_server_without_checking_its_key() {
    let server = Server::get();
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let destination = destination(&server.connection(&server.port, "allow_insecure = true"));
    let key = format!("insecure-{}/part", std::process::id());
    put(destination.as_ref(), scratch.path(), &key, b"ok");
    assert_eq!(
        std::fs::read_to_string(server.files.join(&key)).expect("the delivered file"),
        "ok"
    );
}
