//! Splits the encoded stream of one run into part files: a new part at `max_rows`, at
//! `max_bytes` of the written (compressed) file, or when the record's local day or week
//! changes (`split_by`). Parts are staged on local disk and described for the manifest.

use crate::compress::{self, Compression, PartSink};
use crate::encrypt::{self, AgeRecipients};
use crate::format::Encoder;
use crate::value::Value;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Limits that end a part.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    /// Rows per part.
    pub max_rows: Option<u64>,
    /// Bytes of the written file per part. Checked after each row, so a part ends at the first
    /// row that reaches the limit; with parallel gzip the written size lags by the blocks in
    /// flight (at most a few MiB), so parts may overshoot by that much.
    pub max_bytes: Option<u64>,
}

/// One finished part file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StagedPart {
    /// Part number, from 1.
    pub number: u32,
    /// Staged file.
    #[serde(skip)]
    pub path: PathBuf,
    /// Rows in the part.
    pub rows: u64,
    /// Bytes of the file (encrypted, when the export encrypts).
    pub bytes: u64,
    /// Bytes before compression.
    pub uncompressed_bytes: u64,
    /// SHA-256 of the file, hex (of the encrypted file when the export encrypts).
    pub sha256: String,
    /// For `split_by`: the start of the day or week the part holds.
    #[serde(skip)]
    pub period_start: Option<DateTime<Utc>>,
}

struct OpenPart {
    sink: Box<dyn PartSink>,
    number: u32,
    path: PathBuf,
    rows: u64,
    period: Option<DateTime<Utc>>,
}

/// Writes rows into rotating part files under a staging directory.
pub struct Chunker {
    encoder: Box<dyn Encoder>,
    compression: Compression,
    limits: Limits,
    dir: PathBuf,
    extension: String,
    open: Option<OpenPart>,
    finished: Vec<StagedPart>,
    entry_names: Option<EntryNamer>,
    encryption: Option<AgeRecipients>,
}

/// Names the file inside a zip, tar.gz or 7z part from its number and split period, so the
/// entry matches the delivered name (`leads_001.csv` inside `leads_001.csv.zip`).
pub type EntryNamer = Box<dyn Fn(u32, Option<DateTime<Utc>>) -> String + Send>;

impl Chunker {
    /// Parts are written as `dir/part-001.EXT`.
    pub fn new(
        encoder: Box<dyn Encoder>,
        compression: Compression,
        limits: Limits,
        dir: &Path,
        extension: &str,
    ) -> Chunker {
        Chunker {
            encoder,
            compression,
            limits,
            dir: dir.to_path_buf(),
            extension: extension.to_owned(),
            open: None,
            finished: Vec::new(),
            entry_names: None,
            encryption: None,
        }
    }

    /// Seals every finished part for `recipients` (see [`crate::encrypt`]); the staged file
    /// and its size and hash are then the encrypted ones.
    pub fn with_encryption(mut self, recipients: AgeRecipients) -> Chunker {
        self.encryption = Some(recipients);
        self
    }

    /// Where the compressor writes: the part itself, or a plaintext file beside it that
    /// sealing replaces.
    fn written_path(&self, part: &Path) -> PathBuf {
        match self.encryption {
            Some(_) => {
                let mut name = part.as_os_str().to_owned();
                name.push(".plain");
                PathBuf::from(name)
            }
            None => part.to_path_buf(),
        }
    }

    /// Names archive entries with `namer` instead of `part-001.EXT`.
    pub fn with_entry_names(mut self, namer: EntryNamer) -> Chunker {
        self.entry_names = Some(namer);
        self
    }

    /// The file name a part gets inside archives and in staging.
    pub fn part_file_name(number: u32, extension: &str) -> String {
        format!("part-{number:03}.{extension}")
    }

    fn start(&mut self, period: Option<DateTime<Utc>>) -> io::Result<()> {
        let number = self.finished.len() as u32 + 1;
        let entry = match &self.entry_names {
            Some(name) => name(number, period),
            None => Self::part_file_name(number, self.encoder.extension()),
        };
        let path = self.dir.join(Self::part_file_name(number, &self.extension));
        let file = std::fs::File::create(self.written_path(&path))?;
        let mut sink = compress::part_writer(&self.compression, &entry, file)?;
        self.encoder.begin(&mut sink)?;
        self.open = Some(OpenPart {
            sink,
            number,
            path,
            rows: 0,
            period,
        });
        Ok(())
    }

    fn close(&mut self) -> io::Result<()> {
        let Some(mut part) = self.open.take() else {
            return Ok(());
        };
        self.encoder.finish(&mut part.sink)?;
        let stats = part.sink.finish()?;
        let written = self.written_path(&part.path);
        let (bytes, sha256) = match &self.encryption {
            Some(recipients) => {
                let sealed = encrypt::seal_file(&written, &part.path, recipients)?;
                (sealed.bytes, sealed.sha256)
            }
            // Hashed from the finished file, not from the bytes as they were written: tar.gz
            // and 7z seek back and rewrite their headers at `finish`, so only the file on
            // disk has the final bytes.
            None => (stats.compressed_bytes, sha256_file(&part.path)?),
        };
        self.finished.push(StagedPart {
            number: part.number,
            sha256,
            path: part.path,
            rows: part.rows,
            bytes,
            uncompressed_bytes: stats.uncompressed_bytes,
            period_start: part.period,
        });
        Ok(())
    }

    /// Writes one row; `period` is the start of the row's split period when `split_by` is set.
    pub fn write_row(&mut self, row: &[Value], period: Option<DateTime<Utc>>) -> io::Result<()> {
        let roll = match &self.open {
            None => true,
            Some(p) => {
                p.period != period
                    || self.limits.max_rows.is_some_and(|m| p.rows >= m)
                    || self
                        .limits
                        .max_bytes
                        .is_some_and(|m| p.sink.compressed_bytes_so_far() >= m)
            }
        };
        if roll {
            self.close()?;
            self.start(period)?;
        }
        if let Some(p) = self.open.as_mut() {
            self.encoder.write_row(&mut p.sink, row)?;
            p.rows += 1;
        }
        Ok(())
    }

    /// Bytes written so far (finished parts plus the open one), for progress.
    pub fn bytes_so_far(&self) -> u64 {
        self.finished.iter().map(|p| p.bytes).sum::<u64>()
            + self
                .open
                .as_ref()
                .map(|p| p.sink.compressed_bytes_so_far())
                .unwrap_or(0)
    }

    /// Closes the last part. A run without rows still gets one (empty) part, so readers can
    /// tell "ran, nothing matched" from "did not run".
    pub fn finish(mut self) -> io::Result<Vec<StagedPart>> {
        if self.open.is_none() && self.finished.is_empty() {
            self.start(None)?;
        }
        self.close()?;
        Ok(self.finished)
    }
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}
