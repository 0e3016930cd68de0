//! Turns what is on disk into the set of active exports: every file is validated before
//! anything is swapped; an invalid file keeps the last valid version of its export active.

use crate::config::ExportSpec;
use crate::config::diagnostic::Diagnostic;
use crate::config::load;
use crate::pipeline::Environment;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// Names of exports added, changed and removed by a reload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// New exports.
    pub added: Vec<String>,
    /// Exports whose accepted revision changed.
    pub changed: Vec<String>,
    /// Exports whose file is gone.
    pub removed: Vec<String>,
}

/// The result of one reload.
#[derive(Debug)]
pub struct Outcome {
    /// Active exports after the reload.
    pub active: BTreeMap<String, Arc<ExportSpec>>,
    /// What changed.
    pub diff: Diff,
    /// Files rejected this time (their last valid version, if any, stays active).
    pub rejected: Vec<String>,
    /// The same, with their files.
    pub rejected_files: Vec<(String, PathBuf)>,
    /// Every problem found.
    pub diagnostics: Vec<Diagnostic>,
    /// Output and staging locations.
    pub environment: Environment,
    /// `[http] listen` (read at start-up; changing it needs a restart).
    pub listen: String,
    /// `[access]` (read at start-up; changing tokens needs a restart).
    pub access: crate::config::daemon::AccessConfig,
    /// The whole exportd.toml, to validate ad-hoc definitions as files are validated.
    pub daemon: Arc<crate::config::daemon::DaemonConfig>,
}

/// Keeps the accepted version of every export across reloads.
pub struct Reconciler {
    config: PathBuf,
    exports: PathBuf,
    accepted: BTreeMap<String, Arc<ExportSpec>>,
}

impl Reconciler {
    /// Nothing accepted yet.
    pub fn new(config: PathBuf, exports: PathBuf) -> Reconciler {
        Reconciler {
            config,
            exports,
            accepted: BTreeMap::new(),
        }
    }

    /// Validates everything and returns the new active set and the diff.
    pub fn reload(&mut self) -> Outcome {
        let loaded = load::load(&self.config, &self.exports);
        let environment = Environment::from_loaded(&loaded);
        let listen = loaded.daemon.http.listen.clone();
        let access = loaded.daemon.access.clone();
        let daemon = Arc::new(loaded.daemon.clone());
        let on_disk: BTreeSet<String> = loaded
            .specs
            .iter()
            .map(|s| s.name.clone())
            .chain(loaded.rejected.iter().map(|(n, _)| n.clone()))
            .collect();
        let mut next: BTreeMap<String, Arc<ExportSpec>> = BTreeMap::new();
        let mut diff = Diff::default();
        for spec in loaded.specs {
            match self.accepted.get(&spec.name) {
                None => diff.added.push(spec.name.clone()),
                Some(old) if old.revision != spec.revision => diff.changed.push(spec.name.clone()),
                Some(_) => {}
            }
            next.insert(spec.name.clone(), Arc::new(spec));
        }
        let rejected: Vec<String> = loaded.rejected.iter().map(|(n, _)| n.clone()).collect();
        for name in &rejected {
            if let Some(old) = self.accepted.get(name) {
                next.insert(name.clone(), old.clone());
            }
        }
        for name in self.accepted.keys() {
            if !on_disk.contains(name) {
                diff.removed.push(name.clone());
            }
        }
        self.accepted = next.clone();
        Outcome {
            active: next,
            diff,
            rejected,
            rejected_files: loaded.rejected.clone(),
            listen,
            diagnostics: loaded.diagnostics,
            environment,
            access,
            daemon,
        }
    }
}

/// Names, sizes and modification times of the watched files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(std::collections::BTreeMap<PathBuf, (u64, Option<SystemTime>)>);

impl Fingerprint {
    /// Reads the current fingerprint with one directory listing and one `stat` per file (it
    /// runs twice a second, so with thousands of definitions every syscall counts). Missing
    /// files simply do not appear.
    pub fn read(config: &Path, exports: &Path) -> Fingerprint {
        let mut files = std::collections::BTreeMap::new();
        let mut add = |path: PathBuf, meta: std::fs::Metadata| {
            if meta.is_file() {
                files.insert(path, (meta.len(), meta.modified().ok()));
            }
        };
        if let Ok(entries) = std::fs::read_dir(exports) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if !name.ends_with(".toml") || name.starts_with('.') {
                    continue;
                }
                // Follows symlinks, like the loader does.
                if let Ok(meta) = std::fs::metadata(entry.path()) {
                    add(entry.path(), meta);
                }
            }
        }
        if let Ok(meta) = std::fs::metadata(config) {
            add(config.to_path_buf(), meta);
        }
        Fingerprint(files)
    }
}
