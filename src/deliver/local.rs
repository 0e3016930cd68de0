//! `to = "local"`: a directory on this machine. Relative paths resolve against
//! `[defaults] output_dir`. Each file is copied to a temporary name beside its target, synced,
//! then renamed over it, so a reader never sees half a file.

use super::{Delivered, Destination, Error, ObjectInfo, Upload};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The local destination.
#[derive(Debug, Clone)]
pub struct LocalDestination {
    root: PathBuf,
}

impl LocalDestination {
    /// Files go under `root` unless their path is absolute.
    pub fn new(root: &Path) -> LocalDestination {
        LocalDestination {
            root: root.to_path_buf(),
        }
    }

    /// Where a key lands.
    pub fn target(&self, key: &str) -> Result<PathBuf, Error> {
        let relative = crate::template::confine(key, true)?;
        Ok(if relative.is_absolute() {
            relative
        } else {
            self.root.join(relative)
        })
    }
}

impl Destination for LocalDestination {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn put(&self, upload: &Upload<'_>) -> Result<Delivered, Error> {
        let target = self.target(upload.key)?;
        let io = |source| Error::Io {
            path: target.clone(),
            source,
        };
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file_name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp =
            target.with_file_name(format!(".{file_name}.exportd-{}.tmp", std::process::id()));
        let result = (|| {
            // The staged file is complete and never changed again: on the same file system a
            // hard link publishes it without copying; elsewhere it is copied.
            let _ = std::fs::remove_file(&temp);
            if std::fs::hard_link(upload.file, &temp).is_ok() {
                std::fs::File::open(&temp)?.sync_all()?;
            } else {
                let mut reader = std::fs::File::open(upload.file)?;
                let mut writer = std::fs::File::create(&temp)?;
                std::io::copy(&mut reader, &mut writer)?;
                writer.flush()?;
                writer.sync_all()?;
            }
            std::fs::rename(&temp, &target)
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&temp);
            return Err(io(e));
        }
        Ok(Delivered {
            destination: self.kind().to_owned(),
            key: target.to_string_lossy().into_owned(),
            bytes: upload.bytes,
            sha256: upload.sha256.to_owned(),
            delivered_at: chrono::Utc::now(),
        })
    }

    fn read_small(&self, key: &str) -> Option<Vec<u8>> {
        let target = self.target(key).ok()?;
        let meta = std::fs::metadata(&target).ok()?;
        (meta.len() < 64 << 20).then(|| std::fs::read(&target).ok())?
    }

    fn remove(&self, key: &str) -> Result<(), Error> {
        let target = self.target(key)?;
        match std::fs::remove_file(&target) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Io {
                path: target,
                source: e,
            }),
            _ => Ok(()),
        }
    }

    fn stat(&self, key: &str) -> Result<Option<ObjectInfo>, Error> {
        let target = self.target(key)?;
        match std::fs::metadata(&target) {
            Ok(meta) => Ok(Some(ObjectInfo {
                bytes: meta.len(),
                etag: None,
                modified: meta
                    .modified()
                    .ok()
                    .map(chrono::DateTime::<chrono::Utc>::from),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io {
                path: target,
                source,
            }),
        }
    }

    fn sha256(&self, key: &str) -> Result<Option<String>, Error> {
        let target = self.target(key)?;
        match crate::chunk::sha256_file(&target) {
            Ok(sha) => Ok(Some(sha)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io {
                path: target,
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Delivery checks the key again, whatever rendered it: `..` never leaves the root, and
    /// nothing is written for a refused key.
    #[test]
    fn keys_that_leave_the_root_are_refused_and_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("out");
        let destination = LocalDestination::new(&root);
        let staged = dir.path().join("part");
        std::fs::write(&staged, b"x").unwrap();
        for key in [
            "../escaped.csv",
            "a/../../escaped.csv",
            "a/..",
            ".",
            "",
            "a/",
        ] {
            let upload = Upload {
                file: &staged,
                key,
                bytes: 1,
                sha256: "00",
            };
            let err = destination.put(&upload).unwrap_err().to_string();
            assert!(
                err.contains(key) || key.is_empty(),
                "`{key}` refused without naming it: {err}"
            );
        }
        assert!(!dir.path().join("escaped.csv").exists());
        assert!(!root.exists(), "a refused key created the root");
        assert_eq!(destination.target("a/b.csv").unwrap(), root.join("a/b.csv"));
    }
}
