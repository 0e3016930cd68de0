//! The status page in a real browser: a daemon with demo leads, one export that delivers, one
//! whose delivery fails and one whose file is invalid; headless Chromium renders `/` and a run's
//! page, and the test checks what an operator would look for, then fetches a download link the
//! page offers and saves a screenshot under `target/test-output/page/`.

use crate::util::service;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A daemon on its own directory, killed when dropped.
struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
}

impl Daemon {
    fn start(dir: tempfile::TempDir) -> Daemon {
        let log = dir.path().join("daemon.log");
        let child = Command::new(env!("CARGO_BIN_EXE_exportd"))
            .arg("run")
            .current_dir(dir.path())
            .env_remove("EXPORTD_CONFIG")
            .env("EXPORTD_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start exportd run");
        let daemon = Daemon { child, dir };
        daemon.wait_for_log("exportd is ready", 1);
        daemon
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// Waits until `needle` is logged `times` times.
    fn wait_for_log(&self, needle: &str, times: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = self.log();
            if text.matches(needle).count() >= times {
                return text;
            }
            assert!(Instant::now() < deadline, "`{needle}` not logged:\n{text}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn address(&self) -> String {
        let text = self.wait_for_log("HTTP API listening", 1);
        let start = text.find("address=").expect("address field") + "address=".len();
        text[start..]
            .split_whitespace()
            .next()
            .expect("address")
            .trim_start_matches("Some(")
            .trim_end_matches(')')
            .to_owned()
    }

    /// One HTTP/1.1 request; (status, body bytes).
    fn http(&self, method: &str, path: &str) -> (u16, Vec<u8>) {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(self.address()).expect("connect");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).expect("read");
        let split = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("headers end");
        let head = String::from_utf8_lossy(&response[..split]);
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        (status, response[split + 4..].to_vec())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// Headless Chromium with the flags of shared/SERVICES.md, plus `extra`; its stdout.
fn chromium(extra: &[&str], url: &str) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let output = Command::new("timeout")
        .arg("90")
        .arg(service("EXPORTD_TEST_CHROMIUM"))
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("run chromium");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("DOM is UTF-8")
}

/// The first `href` after `marker` in `dom`, with `&amp;` undone.
fn href_after(dom: &str, marker: &str) -> String {
    let at = dom
        .find(marker)
        .unwrap_or_else(|| panic!("`{marker}` not in:\n{dom}"));
    let rest = &dom[at..];
    let start = rest.find("href=\"").expect("href") + 6;
    let end = start + rest[start..].find('"').expect("closing quote");
    rest[start..end].replace("&amp;", "&")
}

/// The `<tr>` element that contains `marker`.
fn row_with<'a>(dom: &'a str, marker: &str) -> &'a str {
    let at = dom
        .find(marker)
        .unwrap_or_else(|| panic!("`{marker}` not in:\n{dom}"));
    let start = dom[..at].rfind("<tr").expect("row start");
    let end = at + dom[at..].find("</tr>").expect("row end");
    &dom[start..end]
}

const DELIVERS: &str = r#"
description = "All leads, every morning"
schedule = "daily at 02:00"
timezone = "Europe/Berlin"
window = "all"
[format]
type = "csv"
[[deliver]]
to = "local"
path = "daily/{{run_id}}_{{part}}.csv"
"#;

#[test]
fn status_page_in_a_browser_shows_states_schedules_and_working_download_links() {
    let dir = tempfile::tempdir().expect("temp dir");
    let demo = Command::new(env!("CARGO_BIN_EXE_exportd"))
        .args(["demo", "--leads", "500", "--seed", "7"])
        .args(["--end", "2024-06-01T00:00:00Z"])
        .current_dir(dir.path())
        .env_remove("EXPORTD_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("demo");
    assert!(demo.success());
    write(
        &dir.path().join("exportd.toml"),
        "[http]\nlisten = \"127.0.0.1:0\"\n",
    );
    write(&dir.path().join("exports.d/daily.toml"), DELIVERS);
    // A regular file where the export wants a directory: every delivery fails.
    write(&dir.path().join("var/exports/blocked"), "in the way\n");
    write(
        &dir.path().join("exports.d/blocked.toml"),
        &DELIVERS.replace("daily/{{run_id}}", "blocked/{{run_id}}"),
    );
    write(
        &dir.path().join("exports.d/typo.toml"),
        &DELIVERS.replace("window = \"all\"", "window = \"al\""),
    );
    let daemon = Daemon::start(dir);
    for export in ["daily", "blocked"] {
        let (status, body) = daemon.http("POST", &format!("/v1/exports/{export}/run"));
        assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
    }
    daemon.wait_for_log("Run completed", 1);
    daemon.wait_for_log("Run failed", 1);

    let base = format!("http://{}", daemon.address());
    let dom = chromium(&["--dump-dom"], &format!("{base}/"));

    let daily = row_with(&dom, "data-export=\"daily\"");
    assert!(daily.contains("✓ ready"), "{daily}");
    assert!(
        daily.contains("every day at 02:00 (Europe/Berlin)"),
        "the schedule in its zone: {daily}"
    );
    assert!(
        daily.contains("02:00 CE"),
        "next run in local time: {daily}"
    );
    let blocked = row_with(&dom, "data-export=\"blocked\"");
    assert!(blocked.contains("✗ failed"), "{blocked}");
    let failed_run = row_with(&dom, "data-state=\"failed\"");
    assert!(failed_run.contains("blocked/"), "{failed_run}");
    assert!(failed_run.contains("✗ failed"), "{failed_run}");
    let typo = row_with(&dom, "data-export=\"typo\"");
    assert!(typo.contains("⚠ invalid"), "{typo}");
    assert!(
        dom.contains("exports.d/typo.toml:5:10: error:"),
        "the error with its position:\n{dom}"
    );
    assert!(dom.contains("<svg"), "a chart per export");
    assert!(dom.contains("Recent alerts"));

    // The download link the page offers serves the delivered file.
    let link = href_after(&dom, "class=\"download\"");
    assert!(link.contains("signature="), "{link}");
    let name = link
        .split('?')
        .next()
        .and_then(|p| p.rsplit('/').next())
        .expect("file name")
        .to_owned();
    let (status, bytes) = daemon.http("GET", &link);
    assert_eq!(status, 200, "{link}");
    let on_disk = std::fs::read(daemon.dir.path().join("var/exports/daily").join(&name))
        .expect("the delivered file");
    assert_eq!(bytes, on_disk, "{link}");
    assert!(bytes.starts_with(b"id,") || bytes.len() > 100, "a CSV");

    // The run's page shows its parts with checksums.
    let run_url = href_after(&dom, "Delivered by the newest completed run");
    let run_dom = chromium(&["--dump-dom"], &format!("{base}{run_url}"));
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&on_disk));
    assert!(run_dom.contains(&sha), "the part's SHA-256:\n{run_dom}");
    assert!(run_dom.contains("✓ completed"), "{run_dom}");
    assert!(run_dom.contains("_manifest.json"), "{run_dom}");

    let out_dir = screenshot_dir();
    let png = out_dir.join("status.png");
    let _ = std::fs::remove_file(&png);
    chromium(
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1280,900",
        ],
        &format!("{base}/"),
    );
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "{} is {size} bytes", png.display());
}

/// `target/test-output/page/`, kept after the test for people to look at.
fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-output/page");
    std::fs::create_dir_all(&dir).expect("output dir");
    dir
}
