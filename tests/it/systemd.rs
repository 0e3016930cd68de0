//! The systemd integration files under `systemd/` as an operator installs them: the unit passes
//! `systemd-analyze verify`, its sandboxing scores an exposure level of 2.0 or lower, and the
//! sysusers and tmpfiles snippets create the user and directories the unit expects.
//!
//! These tests run systemd's own tools, offline (no running systemd is needed). A missing tool
//! is a failure naming the Debian package, never a skip: a skipped check would let the unit rot
//! unnoticed on machines without systemd installed.

use crate::util::{repo_file, repo_root};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

const UNIT: &str = "systemd/exportd.service";
const SYSUSERS: &str = "systemd/exportd.sysusers";
const TMPFILES: &str = "systemd/exportd.tmpfiles";
/// Where the unit expects the binary (see the install notes at the top of the unit).
const INSTALLED_BINARY: &str = "/usr/local/bin/exportd";
/// The highest `systemd-analyze security` exposure level we accept (10 is fully exposed).
const MAX_EXPOSURE: f64 = 2.0;

/// The path of a systemd tool, or a failure that says how to install it.
fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    // sbin directories too: CI users' PATH often lacks them, Debian puts some tools there.
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/bin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` not found: install the Debian package `systemd` \
                 (apt-get install systemd) to check the files under systemd/"
            )
        })
}

/// Runs a tool; returns (success, exit code, stdout, stderr).
fn run(command: &mut Command) -> (bool, Option<i32>, String, String) {
    // Plain output whatever the terminal: the tests parse it.
    let output = command
        .env("SYSTEMD_COLORS", "0")
        .env("SYSTEMD_PAGER", "")
        .output()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"));
    (
        output.status.success(),
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The unit, copied into `dir` with every command that runs exportd pointing at the binary
/// under test. `systemd-analyze verify` insists that `ExecStart=` and friends exist and are
/// executable, and nothing may be installed under /usr/local/bin by a test; everything else
/// stays byte-for-byte identical, so what is checked is what ships.
fn unit_for_this_build(dir: &Path) -> PathBuf {
    let original = repo_file(UNIT);
    let binary = env!("CARGO_BIN_EXE_exportd");
    let mut rewritten = 0;
    let text: String = original
        .lines()
        .map(|line| {
            let is_exec = ["ExecStart=", "ExecStartPre=", "ExecReload="]
                .iter()
                .any(|key| line.starts_with(key));
            if is_exec && line.contains(INSTALLED_BINARY) {
                rewritten += 1;
                line.replace(INSTALLED_BINARY, binary)
            } else {
                line.to_owned()
            }
        })
        .map(|line| line + "\n")
        .collect();
    // ExecStartPre and ExecReload validate, ExecStart runs: if fewer are found, the unit no
    // longer runs `exportd validate` where the design says it must, or the path moved.
    assert!(
        rewritten >= 3,
        "expected ExecStartPre=, ExecStart= and ExecReload= to run {INSTALLED_BINARY}; \
         found {rewritten} in {UNIT}"
    );
    // The unit's file name is what systemd calls the unit, so keep it.
    let path = dir.join("exportd.service");
    std::fs::write(&path, text).expect("writing the unit copy");
    path
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    let dir = tempfile::tempdir().expect("temp dir");
    let unit = unit_for_this_build(dir.path());
    // `verify` does not resolve User= nor read files named in Environment=, so neither the
    // `exportd` user nor /etc/exportd/exportd.toml has to exist on the test machine. Man pages
    // are not installed by the unit's Documentation= (a file: URL), so `--man` stays on.
    let (ok, code, stdout, stderr) = run(Command::new(tool("systemd-analyze"))
        .arg("verify")
        .arg(&unit));
    assert!(
        ok,
        "systemd-analyze verify {UNIT} exited with {code:?}\n--- stdout\n{stdout}--- stderr\n{stderr}"
    );
    // Unknown keys, bad values and the like are only warnings (exit 0) but always name the unit
    // file; warnings about other units on this machine (targets we order against) are not ours.
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("exportd.service"))
        .collect();
    assert!(
        ours.is_empty(),
        "systemd-analyze verify warns about {UNIT}:\n{}",
        ours.join("\n")
    );
}

#[test]
fn unit_exposure_level_is_at_most_2_0() {
    let dir = tempfile::tempdir().expect("temp dir");
    let unit = unit_for_this_build(dir.path());
    let (ok, code, stdout, stderr) = run(Command::new(tool("systemd-analyze"))
        .args(["security", "--offline=true"])
        .arg(&unit));
    let report = format!("--- stdout\n{stdout}--- stderr\n{stderr}");
    assert!(
        ok,
        "systemd-analyze security exited with {code:?}\n{report}"
    );
    // "→ Overall exposure level for exportd.service: 1.2 OK 🙂"
    let line = stdout
        .lines()
        .find(|line| line.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no \"Overall exposure level\" line\n{report}"));
    let score: f64 = line
        .rsplit_once(": ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the score in {line:?}"));
    // The failing settings are the lines marked ✗; show them so the fix is obvious.
    let exposed: Vec<&str> = stdout.lines().filter(|l| l.starts_with('✗')).collect();
    assert!(
        score <= MAX_EXPOSURE,
        "{UNIT} scores {score}, more than {MAX_EXPOSURE}; exposed settings:\n{}",
        exposed.join("\n")
    );
}

#[test]
fn sysusers_and_tmpfiles_create_what_the_unit_expects() {
    // Both tools apply the snippets to an empty alternative root: a real (not parse-only)
    // check that touches nothing on the host. systemd 252 (Debian 12) has no
    // `systemd-tmpfiles --dry-run`, and `systemd-sysusers --dry-run` would not give tmpfiles
    // the user to resolve, so sysusers really writes the root's /etc/passwd first.
    let root = tempfile::tempdir().expect("temp dir");
    // sysusers takes a lock in <root>/etc and does not create the directory itself.
    std::fs::create_dir(root.path().join("etc")).expect("creating <root>/etc");
    let root_arg = format!("--root={}", root.path().display());

    let (ok, code, stdout, stderr) = run(Command::new(tool("systemd-sysusers"))
        .arg(&root_arg)
        .arg(repo_root().join(SYSUSERS)));
    assert!(
        ok,
        "systemd-sysusers {SYSUSERS} exited with {code:?}\n--- stdout\n{stdout}--- stderr\n{stderr}"
    );
    let passwd =
        std::fs::read_to_string(root.path().join("etc/passwd")).expect("<root>/etc/passwd");
    let user = passwd
        .lines()
        .find(|line| line.starts_with("exportd:"))
        .unwrap_or_else(|| panic!("{SYSUSERS} created no `exportd` user:\n{passwd}"));
    // The unit's User=exportd has its state directory as home and cannot log in.
    let fields: Vec<&str> = user.split(':').collect();
    assert_eq!(fields.get(5), Some(&"/var/lib/exportd"), "home of {user:?}");
    assert!(
        fields
            .get(6)
            .is_some_and(|shell| shell.ends_with("nologin")),
        "shell of {user:?}"
    );
    let uid: u32 = fields[2].parse().expect("uid");
    let group = std::fs::read_to_string(root.path().join("etc/group")).expect("<root>/etc/group");
    let gid: u32 = group
        .lines()
        .find_map(|line| line.strip_prefix("exportd:x:"))
        .and_then(|rest| rest.split(':').next())
        .and_then(|gid| gid.parse().ok())
        .unwrap_or_else(|| panic!("{SYSUSERS} created no `exportd` group:\n{group}"));

    let (ok, code, stdout, stderr) = run(Command::new(tool("systemd-tmpfiles"))
        .arg(&root_arg)
        .arg("--create")
        .arg(repo_root().join(TMPFILES)));
    // Without root, creating works but handing the directories to `exportd` cannot: accept
    // exactly that (exit 73, only fchownat errors), which still proves every line parsed and
    // every user and group resolved.
    let only_chown_denied = code == Some(73)
        && stderr
            .lines()
            .all(|l| l.starts_with("fchownat()") && l.ends_with("Operation not permitted"));
    assert!(
        ok || only_chown_denied,
        "systemd-tmpfiles --create {TMPFILES} exited with {code:?}\n--- stdout\n{stdout}--- stderr\n{stderr}"
    );
    // The state directory belongs to the service; the configuration is root's, readable by
    // the service's group only (it names credentials and connections). Both 0750, matching
    // StateDirectoryMode= and ConfigurationDirectoryMode= in the unit.
    for (dir, owner) in [("var/lib/exportd", uid), ("etc/exportd", 0)] {
        let meta = std::fs::metadata(root.path().join(dir))
            .unwrap_or_else(|e| panic!("{TMPFILES} did not create /{dir}: {e}"));
        assert!(meta.is_dir(), "/{dir} is not a directory");
        assert_eq!(meta.permissions().mode() & 0o7777, 0o750, "mode of /{dir}");
        if ok {
            assert_eq!((meta.uid(), meta.gid()), (owner, gid), "owner of /{dir}");
        }
    }
    let unit = repo_file(UNIT);
    for line in ["StateDirectoryMode=0750", "ConfigurationDirectoryMode=0750"] {
        assert!(
            unit.lines().any(|l| l == line),
            "{UNIT} lacks `{line}`: systemd would re-apply its default 0755 at every start"
        );
    }
}

#[test]
fn unit_runs_the_daemon_as_the_design_says() {
    // What `verify` and `security` cannot know: the daemon's contract with systemd.
    let unit = repo_file(UNIT);
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    let has = |line: &str| lines.contains(&line);
    let validate = format!("{INSTALLED_BINARY} validate");
    for expected in [
        // READY=1 after the first reconcile, WATCHDOG=1 pings.
        "Type=notify",
        "User=exportd",
        "StateDirectory=exportd",
        "ConfigurationDirectory=exportd",
        "Environment=EXPORTD_CONFIG=/etc/exportd/exportd.toml",
        "ExecStart=/usr/local/bin/exportd run",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "CapabilityBoundingSet=",
        "SystemCallFilter=@system-service",
    ] {
        assert!(has(expected), "{UNIT} lacks `{expected}`");
    }
    assert!(
        has(&format!("ExecStartPre={validate}")),
        "{UNIT} must validate before starting"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("WatchdogSec=")),
        "{UNIT} lacks WatchdogSec=; the daemon pings only when systemd asks for it"
    );
    // Reload validates first, so a broken exportd.toml fails `systemctl reload` loudly
    // instead of being silently kept at its previous version by the daemon.
    let reloads: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("ExecReload="))
        .collect();
    assert_eq!(
        reloads,
        [validate.as_str(), "/bin/kill -HUP $MAINPID"],
        "ExecReload= lines of {UNIT}"
    );
    // Network stays reachable for S3, SFTP, SMTP and webhooks.
    for family in ["AF_INET", "AF_INET6", "AF_UNIX"] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("RestrictAddressFamilies=")
                    && l.split(['=', ' ']).any(|f| f == family)),
            "{UNIT} must allow {family}"
        );
    }
    assert!(
        !lines.iter().any(|l| l.starts_with("PrivateNetwork=yes")),
        "PrivateNetwork=yes would cut off remote destinations"
    );
    // Secrets come through systemd credentials; the unit shows how.
    assert!(
        lines.iter().any(|l| l.starts_with("# LoadCredential=")),
        "{UNIT} should show a LoadCredential= example"
    );
}
