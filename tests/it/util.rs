//! A small harness for running the real `exportd` binary, in the style of `just`'s and
//! ripgrep's test suites:
//!
//! ```ignore
//! Test::new()
//!     .daemon_config("[defaults]\ntimezone = \"UTC\"\n")
//!     .file("exports.d/daily.toml", DAILY)
//!     .args(["validate"])
//!     .run()
//!     .success();
//! ```
//!
//! Every test gets its own temporary directory, which is also the working directory unless
//! [`Test::in_repo`] says otherwise; the directory lives as long as the returned [`Output`], so
//! a test can inspect the files a command wrote.

#![allow(dead_code)]

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use tempfile::TempDir;

/// The root of the repository: fixtures, examples and `exports.d` are read from here.
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Reads a file of the repository (`examples/daily-backup.toml`).
pub fn repo_file(relative: &str) -> String {
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The `*.toml` files of a repository directory (relative paths, sorted), `exportd.toml` excluded.
pub fn definitions_in(relative_dir: &str) -> Vec<String> {
    let dir = repo_root().join(relative_dir);
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| {
            entry
                .expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".toml") && name != "exportd.toml")
        .map(|name| format!("{relative_dir}/{name}"))
        .collect();
    files.sort();
    files
}

/// 1-based `(line, column)` of a byte offset, columns counted in characters.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// One invocation of `exportd` being prepared.
pub struct Test {
    dir: TempDir,
    cwd: Option<PathBuf>,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
}

impl Test {
    /// A fresh temporary directory, used as the working directory.
    pub fn new() -> Test {
        Test {
            dir: tempfile::Builder::new()
                .prefix("exportd-it-")
                .tempdir()
                .expect("creating a temporary directory"),
            cwd: None,
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Runs in the repository root instead, so relative paths such as `examples/` and
    /// `tests/fixtures/…` appear in the output exactly as written. The temporary directory
    /// still exists ([`Test::path`]).
    pub fn in_repo() -> Test {
        Test {
            cwd: Some(repo_root().to_path_buf()),
            ..Test::new()
        }
    }

    /// Writes a file (parents created) under the temporary directory.
    pub fn file(self, relative: impl AsRef<Path>, text: impl AsRef<str>) -> Test {
        let path = self.dir.path().join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("creating parent directories");
        }
        std::fs::write(&path, text.as_ref()).expect("writing a test file");
        self
    }

    /// Writes `exportd.toml` in the temporary directory.
    pub fn daemon_config(self, text: impl AsRef<str>) -> Test {
        self.file("exportd.toml", text)
    }

    /// Copies a file of the repository into the temporary directory.
    pub fn copy_from_repo(self, from: &str, to: impl AsRef<Path>) -> Test {
        let text = repo_file(from);
        self.file(to, text)
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Test {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Test
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable of the process.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Test {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// The temporary directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `exportd` with the arguments and waits for it.
    pub fn run(self) -> Output {
        let cwd = self
            .cwd
            .clone()
            .unwrap_or_else(|| self.dir.path().to_path_buf());
        let mut command = Command::new(env!("CARGO_BIN_EXE_exportd"));
        command
            .args(&self.args)
            .current_dir(&cwd)
            .env_remove("EXPORTD_CONFIG")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        for (key, value) in &self.env {
            command.env(key, value);
        }
        let output = command.output().expect("running exportd");
        Output {
            command: format!("exportd {}", shell_words(&self.args)),
            status: output.status,
            stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
            dir: self.dir,
        }
    }
}

impl Default for Test {
    fn default() -> Test {
        Test::new()
    }
}

fn shell_words(args: &[OsString]) -> String {
    args.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a finished `exportd` printed, and its temporary directory.
pub struct Output {
    /// The command line, for failure messages.
    pub command: String,
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    dir: TempDir,
}

impl Output {
    /// The temporary directory the test ran with (files written by the command are here).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Asserts the exit code, showing both streams when it differs.
    #[track_caller]
    pub fn code(self, expected: i32) -> Output {
        assert_eq!(
            self.status.code(),
            Some(expected),
            "`{}` exited with {}, expected {expected}\n--- stdout\n{}--- stderr\n{}",
            self.command,
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts exit code 0.
    #[track_caller]
    pub fn success(self) -> Output {
        self.code(0)
    }

    /// Asserts exit code 1 (the command ran and found something wrong).
    #[track_caller]
    pub fn failure(self) -> Output {
        self.code(1)
    }

    /// Compares stdout with an `expect![[…]]` snapshot (`UPDATE_EXPECT=1` rewrites it).
    #[track_caller]
    pub fn stdout_is(self, expected: expect_test::Expect) -> Output {
        expected.assert_eq(&self.stdout);
        self
    }

    /// Compares stderr with an `expect![[…]]` snapshot.
    #[track_caller]
    pub fn stderr_is(self, expected: expect_test::Expect) -> Output {
        expected.assert_eq(&self.stderr);
        self
    }

    /// Asserts that stdout is empty.
    #[track_caller]
    pub fn stdout_empty(self) -> Output {
        assert!(
            self.stdout.is_empty(),
            "`{}` printed to stdout:\n{}",
            self.command,
            self.stdout
        );
        self
    }

    /// Stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "`{}` did not print JSON ({e}):\n{}",
                self.command, self.stdout
            )
        })
    }

    /// The lines of stdout.
    pub fn stdout_lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

/// An endpoint or setting of a test service that `scripts/services.sh start` published (see
/// `scripts/test.sh`). Missing means the services are not running: the test fails and says so
/// rather than skipping.
pub fn service(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: this test needs the test services. Run `scripts/test.sh`, or \
             `scripts/services.sh install && scripts/services.sh start /tmp/svc && source /tmp/svc/env` \
             before `cargo test`"
        )
    })
}
