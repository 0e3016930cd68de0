//! Reads `exportd.toml` and `exports.d/*.toml` from disk and checks them. The only IO of the
//! config module.
//!
//! Every file is checked on its own: a broken definition is reported and left out, and the
//! others load. The file stem is the export's name.

use super::daemon::DaemonConfig;
use super::diagnostic::{Diagnostic, Severity};
use super::validate::{ExportSpec, check_daemon, check_export};
use std::path::{Path, PathBuf};

/// The result of loading a configuration.
#[derive(Debug)]
pub struct Loaded {
    /// The daemon config, defaults when the file is absent or invalid.
    pub daemon: DaemonConfig,
    /// Whether exportd.toml itself was valid (or absent).
    pub daemon_valid: bool,
    /// Directory that relative paths in exportd.toml resolve against.
    pub base_dir: PathBuf,
    /// Valid definitions, by name order.
    pub specs: Vec<ExportSpec>,
    /// Definitions that failed, by name, with their first error (for status views).
    pub rejected: Vec<(String, PathBuf)>,
    /// Every problem found, in file order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    /// True when there is at least one error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// Resolves a path from exportd.toml against the config's directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }
}

/// Directory of a config file, `.` for a bare file name.
pub fn base_dir(config: &Path) -> PathBuf {
    config
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Loads the daemon config (defaults when absent).
pub fn load_daemon(config: &Path) -> (DaemonConfig, Vec<Diagnostic>) {
    match std::fs::read_to_string(config) {
        Ok(text) => {
            let (parsed, diags) = check_daemon(config, &text);
            (parsed.unwrap_or_default(), diags)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (DaemonConfig::default(), Vec::new()),
        Err(e) => (DaemonConfig::default(), vec![io_diagnostic(config, &e)]),
    }
}

/// Loads the daemon config and every definition in `exports_dir`.
pub fn load(config: &Path, exports_dir: &Path) -> Loaded {
    let (daemon, mut diagnostics) = load_daemon(config);
    let daemon_valid = !diagnostics.iter().any(Diagnostic::is_error);
    let mut loaded = Loaded {
        daemon,
        daemon_valid,
        base_dir: base_dir(config),
        specs: Vec::new(),
        rejected: Vec::new(),
        diagnostics: Vec::new(),
    };
    match definition_files(exports_dir) {
        Ok(files) => load_definitions(&mut loaded, &files, &mut diagnostics),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => diagnostics.push(io_diagnostic(exports_dir, &e)),
    }
    loaded.diagnostics = diagnostics;
    loaded
}

/// Checks the given files (or directories of files) against a daemon config.
pub fn load_paths(config: &Path, paths: &[PathBuf]) -> Loaded {
    let (daemon, mut diagnostics) = load_daemon(config);
    let mut loaded = Loaded {
        daemon_valid: !diagnostics.iter().any(Diagnostic::is_error),
        daemon,
        base_dir: base_dir(config),
        specs: Vec::new(),
        rejected: Vec::new(),
        diagnostics: Vec::new(),
    };
    for path in paths {
        if path.is_dir() {
            match definition_files(path) {
                Ok(files) => {
                    for file in files {
                        if file.file_name().is_some_and(|n| n == "exportd.toml") {
                            // A daemon config inside a checked directory is checked as one.
                            let (_, d) = load_daemon(&file);
                            diagnostics.extend(d);
                        } else {
                            load_definition(&mut loaded, &file, &mut diagnostics);
                        }
                    }
                }
                Err(e) => diagnostics.push(io_diagnostic(path, &e)),
            }
        } else {
            load_definition(&mut loaded, path, &mut diagnostics);
        }
    }
    loaded.diagnostics = diagnostics;
    loaded
}

/// Checks many files on every core (each file is independent), keeping the file order.
fn load_definitions(loaded: &mut Loaded, files: &[PathBuf], diagnostics: &mut Vec<Diagnostic>) {
    const PER_THREAD_MIN: usize = 64;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(files.len().div_ceil(PER_THREAD_MIN))
        .max(1);
    let chunk = files.len().div_ceil(threads).max(1);
    let daemon = &loaded.daemon;
    let results: Vec<Vec<Checked>> = std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(|f| check_file(daemon, f)).collect()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    for checked in results.into_iter().flatten() {
        loaded.absorb(checked, diagnostics);
    }
}

/// One checked definition file.
struct Checked {
    name: String,
    file: PathBuf,
    spec: Option<ExportSpec>,
    diagnostics: Vec<Diagnostic>,
}

fn check_file(daemon: &DaemonConfig, file: &Path) -> Checked {
    let name = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (spec, diagnostics) = match std::fs::read_to_string(file) {
        Ok(text) => check_export(&name, file, &text, daemon),
        Err(e) => (None, vec![io_diagnostic(file, &e)]),
    };
    Checked {
        name,
        file: file.to_path_buf(),
        spec,
        diagnostics,
    }
}

impl Loaded {
    fn absorb(&mut self, checked: Checked, diagnostics: &mut Vec<Diagnostic>) {
        match checked.spec {
            Some(spec) => self.specs.push(spec),
            None => self.rejected.push((checked.name, checked.file)),
        }
        diagnostics.extend(checked.diagnostics);
    }
}

fn load_definition(loaded: &mut Loaded, file: &Path, diagnostics: &mut Vec<Diagnostic>) {
    let checked = check_file(&loaded.daemon, file);
    loaded.absorb(checked, diagnostics);
}

/// The `*.toml` files of a directory, sorted; editor temp files and hidden files are skipped.
pub fn definition_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "toml")
                && p.file_name()
                    .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
                && p.is_file()
        })
        .collect();
    files.sort();
    Ok(files)
}

fn io_diagnostic(path: &Path, e: &std::io::Error) -> Diagnostic {
    Diagnostic {
        file: path.to_path_buf(),
        line: 1,
        column: 1,
        severity: Severity::Error,
        message: format!("cannot read: {e}"),
        help: None,
    }
}
