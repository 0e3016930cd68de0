//! Compression of part files: none, gzip, zstd, zip, tar.gz and 7z.
//!
//! [`part_writer`] wraps the destination file of one part in a [`PartSink`]. The encoder
//! writes its bytes into the sink; [`PartSink::finish`] completes the container (gzip trailer,
//! zip central directory, tar end blocks, 7z header) and reports sizes. Every sink streams
//! with bounded memory whatever the part size, and none of them compresses on the caller's
//! (the encoding) thread except `None`, which has nothing to compress:
//!
//! | compression | how | memory in flight |
//! |---|---|---|
//! | gzip | 1 MiB blocks compressed as independent gzip members on one worker per core ([`ParallelGzWriter`]) | ≤ (2·cores + 2) MiB of input |
//! | zstd | libzstd's own workers (`zstdmt`, one per core) | libzstd's jobs (a few × 8 MiB at level 3) |
//! | zip | `ZipWriter::new_stream` (deflate, zip64, optional AES-256) on a background thread | ≈ 1.25 MiB pipe |
//! | tar.gz | parallel gzip; the tar header is patched in place at the end (see [`tar_gz`]) | as gzip |
//! | 7z | sevenz-rust2 LZMA2 preset 1 on one thread per core (optional AES-256), fed by a background thread, writing to the seekable file | pipe + 4 MiB chunk per LZMA2 thread |
//!
//! The destination must be a regular file positioned at its start, opened for writing (7z and
//! tar.gz seek back to patch their headers). `finish` leaves the data written to the OS but
//! does not `fsync`: a caller that renames the part into place for durability should
//! `sync_all` it first.
//!
//! The sinks buffer internally, so the encoder's small per-row writes are cheap.

mod archive;
mod gzip;
pub mod tar_gz;

pub use gzip::{DEFAULT_BLOCK_SIZE, ParallelGzWriter};

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Default gzip (and tar.gz, zip deflate) level: zlib's own default.
pub const DEFAULT_GZIP_LEVEL: u32 = 6;
/// Default zstd level: libzstd's own default.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;
/// LZMA2 preset of 7z parts. Presets 1–3 use LZMA's fast mode; from 4 on, the binary-tree
/// match finder costs about 10× the time for 4 % better ratio. Measured on 20 MB of lead CSV
/// (2 vCPUs): preset 1 on 2 threads 12–17 MB/s, ratio 19.3 % (gzip -6: 20.1 %); preset 5
/// 1.1–2.3 MB/s, 15.5 %, so a 1 GB part would take ten minutes or more.
pub const SEVENZ_PRESET: u32 = 1;

/// How one part file is compressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compression {
    /// Plain encoded bytes.
    None,
    /// gzip (multi-member, compressed on all cores); `level` 0–9, above 9 means 9.
    Gzip {
        /// 0 (stored) – 9 (best); default [`DEFAULT_GZIP_LEVEL`].
        level: u32,
    },
    /// Zstandard with one worker per core; `level` 1–22 (negative: faster), clamped by libzstd.
    Zstd {
        /// Default [`DEFAULT_ZSTD_LEVEL`].
        level: i32,
    },
    /// A zip archive holding one deflated entry, AES-256 encrypted when a password is given.
    Zip {
        /// AES-256 (WinZip AE-2) password; `None` for no encryption.
        password: Option<String>,
    },
    /// A tar archive holding one entry, gzip-compressed on all cores.
    TarGz {
        /// gzip level 0–9; default [`DEFAULT_GZIP_LEVEL`].
        level: u32,
    },
    /// A 7z archive holding one LZMA2 entry, AES-256 encrypted (data and file names) when a
    /// password is given.
    SevenZ {
        /// AES-256 password; `None` for no encryption.
        password: Option<String>,
    },
}

impl Compression {
    /// Extension appended after the format's (`leads.csv` + `gz`), `None` for no compression.
    pub fn extension(&self) -> Option<&'static str> {
        match self {
            Compression::None => None,
            Compression::Gzip { .. } => Some("gz"),
            Compression::Zstd { .. } => Some("zst"),
            Compression::Zip { .. } => Some("zip"),
            Compression::TarGz { .. } => Some("tar.gz"),
            Compression::SevenZ { .. } => Some("7z"),
        }
    }

    /// True for the archive formats (zip, tar.gz, 7z) whose part holds a named entry; for the
    /// others the entry name passed to [`part_writer`] is unused.
    pub fn is_archive(&self) -> bool {
        matches!(
            self,
            Compression::Zip { .. } | Compression::TarGz { .. } | Compression::SevenZ { .. }
        )
    }
}

/// Sizes of a finished part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PartStats {
    /// Bytes of the part file on disk (after compression and container overhead).
    pub compressed_bytes: u64,
    /// Bytes the encoder wrote into the sink.
    pub uncompressed_bytes: u64,
}

/// The writable end of one part file.
pub trait PartSink: Write + Send {
    /// Completes the container, flushes everything to the file and reports the sizes. On
    /// error the part file is incomplete and must be discarded.
    fn finish(self: Box<Self>) -> io::Result<PartStats>;

    /// Bytes written to the file so far, for rolling parts at `max_bytes`. It lags behind
    /// what the final size will be by the data still inside the compressor:
    /// - none: exact (the internal buffer is counted);
    /// - gzip / tar.gz: at most (2·workers + 2) blocks of 1 MiB *uncompressed* input are not yet
    ///   reflected (≈ 1–2 MiB compressed at typical CSV ratios on 2 cores);
    /// - zstd: libzstd's in-flight jobs (up to about workers + 1 jobs of 8 MiB input at level 3);
    /// - zip: the 1.25 MiB pipe plus deflate's internal buffer;
    /// - 7z: the pipe plus LZMA2's buffered input (up to a few MiB).
    ///
    /// The container trailer (zip central directory, 7z header, tar end blocks) is added by
    /// `finish` and is small (< 1 KiB for one entry).
    fn compressed_bytes_so_far(&self) -> u64;

    /// Bytes the encoder has written into the sink so far.
    fn uncompressed_bytes_so_far(&self) -> u64;
}

/// Opens the sink for one part file written to `dest`. `entry_name` names the single entry
/// of zip, tar.gz and 7z archives (for example `leads_001.csv`) and is ignored otherwise.
pub fn part_writer(
    compression: &Compression,
    entry_name: &str,
    dest: File,
) -> io::Result<Box<dyn PartSink>> {
    Ok(match compression {
        Compression::None => Box::new(PlainSink::new(dest)),
        Compression::Gzip { level } => Box::new(GzipSink::new(dest, *level)?),
        Compression::Zstd { level } => Box::new(ZstdSink::new(dest, *level)?),
        Compression::Zip { password } => {
            Box::new(archive::zip_sink(dest, entry_name, password.clone())?)
        }
        Compression::TarGz { level } => Box::new(tar_gz::TarGzSink::new(dest, entry_name, *level)?),
        Compression::SevenZ { password } => {
            Box::new(archive::sevenz_sink(dest, entry_name, password.clone())?)
        }
    })
}

/// Number of compression workers: one per core the process may use.
pub fn worker_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Counts the bytes written through it into a counter other threads can read.
pub(crate) struct CountingWriter<W> {
    inner: W,
    count: Arc<AtomicU64>,
}

impl<W> CountingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        CountingWriter {
            inner,
            count: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A handle on the running count.
    pub(crate) fn counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.count)
    }

    pub(crate) fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf)?;
        self.count.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Seeking is passed through (7z patches its start header); the count stays a count of
/// bytes written, and final sizes come from the file itself.
impl<W: Seek> Seek for CountingWriter<W> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// The size of the finished part: the file's length past where the sink started.
fn file_len_since(file: &File, start: u64) -> io::Result<u64> {
    Ok(file.metadata()?.len().saturating_sub(start))
}

/// Converts a library error into an I/O error, keeping its message.
pub(crate) fn other_error(context: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{context}: {e}"))
}

/// Size of the in-front buffer of the plain and zstd sinks.
const SINK_BUFFER: usize = 256 * 1024;

/// No compression: a buffered file.
struct PlainSink {
    out: BufWriter<CountingWriter<File>>,
    start: u64,
    uncompressed: u64,
}

impl PlainSink {
    fn new(mut dest: File) -> Self {
        let start = dest.stream_position().unwrap_or(0);
        PlainSink {
            out: BufWriter::with_capacity(SINK_BUFFER, CountingWriter::new(dest)),
            start,
            uncompressed: 0,
        }
    }
}

impl Write for PlainSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.uncompressed += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl PartSink for PlainSink {
    fn finish(self: Box<Self>) -> io::Result<PartStats> {
        let file = self
            .out
            .into_inner()
            .map_err(|e| e.into_error())?
            .into_inner();
        Ok(PartStats {
            compressed_bytes: file_len_since(&file, self.start)?,
            uncompressed_bytes: self.uncompressed,
        })
    }

    fn compressed_bytes_so_far(&self) -> u64 {
        self.out.get_ref().count.load(Ordering::Relaxed) + self.out.buffer().len() as u64
    }

    fn uncompressed_bytes_so_far(&self) -> u64 {
        self.uncompressed
    }
}

/// gzip on all cores.
struct GzipSink {
    gz: ParallelGzWriter<File>,
    start: u64,
}

impl GzipSink {
    fn new(mut dest: File, level: u32) -> io::Result<Self> {
        let start = dest.stream_position()?;
        Ok(GzipSink {
            gz: ParallelGzWriter::new(dest, level)?,
            start,
        })
    }
}

impl Write for GzipSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.gz.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.gz.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.gz.flush()
    }
}

impl PartSink for GzipSink {
    fn finish(self: Box<Self>) -> io::Result<PartStats> {
        let uncompressed = self.gz.uncompressed_bytes();
        let file = self.gz.finish()?;
        Ok(PartStats {
            compressed_bytes: file_len_since(&file, self.start)?,
            uncompressed_bytes: uncompressed,
        })
    }

    fn compressed_bytes_so_far(&self) -> u64 {
        self.gz.compressed_bytes()
    }

    fn uncompressed_bytes_so_far(&self) -> u64 {
        self.gz.uncompressed_bytes()
    }
}

/// Zstandard with libzstd's worker threads.
struct ZstdSink {
    out: BufWriter<zstd::stream::write::Encoder<'static, CountingWriter<File>>>,
    counter: Arc<AtomicU64>,
    start: u64,
    uncompressed: u64,
}

impl ZstdSink {
    fn new(mut dest: File, level: i32) -> io::Result<Self> {
        let start = dest.stream_position()?;
        let counting = CountingWriter::new(dest);
        let counter = counting.counter();
        let mut encoder = zstd::stream::write::Encoder::new(counting, level)?;
        // Workers > 0 also moves compression off the calling thread: libzstd then only copies
        // input into its job buffers here.
        encoder.multithread(u32::try_from(worker_count()).unwrap_or(1))?;
        encoder.include_checksum(true)?;
        Ok(ZstdSink {
            out: BufWriter::with_capacity(SINK_BUFFER, encoder),
            counter,
            start,
            uncompressed: 0,
        })
    }
}

impl Write for ZstdSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.uncompressed += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl PartSink for ZstdSink {
    fn finish(self: Box<Self>) -> io::Result<PartStats> {
        let encoder = self.out.into_inner().map_err(|e| e.into_error())?;
        let mut counting = encoder.finish()?;
        counting.flush()?;
        let file = counting.into_inner();
        Ok(PartStats {
            compressed_bytes: file_len_since(&file, self.start)?,
            uncompressed_bytes: self.uncompressed,
        })
    }

    fn compressed_bytes_so_far(&self) -> u64 {
        self.counter.load(Ordering::Relaxed)
    }

    fn uncompressed_bytes_so_far(&self) -> u64 {
        self.uncompressed
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Running the standard CLI tools in golden tests.
    use std::process::Command;

    /// Runs `tool args…` and returns its stdout. Panics with the Debian package to install
    /// when the tool is missing, and with stderr when it fails: a golden test must never be
    /// skipped silently.
    pub fn run_tool(tool: &str, args: &[&str], package: &str) -> Vec<u8> {
        let output = match Command::new(tool).args(args).output() {
            Ok(o) => o,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "`{tool}` is not installed: install the Debian package `{package}` \
                 (apt-get install -y {package})"
            ),
            Err(e) => panic!("cannot run `{tool}`: {e}"),
        };
        assert!(
            output.status.success(),
            "`{tool} {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::run_tool;
    use super::*;
    use crate::format::fixtures::{columns, rows};
    use crate::format::{CsvOptions, FormatOptions, XmlOptions, encoder};
    use crate::value::Value;

    fn formats() -> Vec<FormatOptions> {
        vec![
            FormatOptions::Csv(CsvOptions::default()),
            FormatOptions::Tsv(CsvOptions::tsv()),
            FormatOptions::Json { pretty: true },
            FormatOptions::Ndjson,
            FormatOptions::Xml(XmlOptions::default()),
        ]
    }

    fn compressions() -> Vec<Compression> {
        vec![
            Compression::None,
            Compression::Gzip { level: 6 },
            Compression::Zstd { level: 3 },
            Compression::Zip { password: None },
            Compression::Zip {
                password: Some("s3cr3t pw".into()),
            },
            Compression::TarGz { level: 6 },
            Compression::SevenZ { password: None },
            Compression::SevenZ {
                password: Some("s3cr3t pw".into()),
            },
        ]
    }

    /// Encodes the fixture rows with `format` into a `Vec`.
    fn encoded(format: &FormatOptions) -> Vec<u8> {
        let mut enc = encoder(format, &columns());
        let mut out = Vec::new();
        enc.begin(&mut out).expect("begin");
        for row in rows() {
            enc.write_row(&mut out, &row).expect("row");
        }
        enc.finish(&mut out).expect("finish");
        out
    }

    /// The fixture rows as text cells (NULL → None), the common form every parser below
    /// reduces its output to.
    fn expected_cells() -> Vec<Vec<Option<String>>> {
        rows()
            .iter()
            .map(|r| {
                r.iter()
                    .map(|v| (!v.is_null()).then(|| v.to_string()))
                    .collect()
            })
            .collect()
    }

    /// Parses decompressed bytes back into rows of text cells, with the reference parsers.
    fn parse_back(format: &FormatOptions, bytes: &[u8]) -> Vec<Vec<Option<String>>> {
        let text = std::str::from_utf8(bytes).expect("utf-8");
        let json_cell = |v: &serde_json::Value| match Value::from_json(v) {
            Value::Null => None,
            other => Some(other.to_string()),
        };
        let json_row = |o: &serde_json::Value| -> Vec<Option<String>> {
            let o = o.as_object().expect("object");
            let keys: Vec<&String> = o.keys().collect();
            assert_eq!(keys, columns().iter().collect::<Vec<_>>());
            o.values().map(json_cell).collect()
        };
        match format {
            FormatOptions::Csv(_) | FormatOptions::Tsv(_) => {
                let delimiter = if matches!(format, FormatOptions::Tsv(_)) {
                    b'\t'
                } else {
                    b','
                };
                let mut reader = ::csv::ReaderBuilder::new()
                    .delimiter(delimiter)
                    .from_reader(bytes);
                let header: Vec<String> = reader
                    .headers()
                    .expect("header")
                    .iter()
                    .map(str::to_string)
                    .collect();
                assert_eq!(header, columns());
                // NULL and "" both read back as "" from a plain CSV reader.
                reader
                    .records()
                    .map(|r| {
                        r.expect("record")
                            .iter()
                            .map(|c| (!c.is_empty()).then(|| c.to_string()))
                            .collect()
                    })
                    .collect()
            }
            FormatOptions::Json { .. } => {
                let v: serde_json::Value = serde_json::from_str(text).expect("json");
                v.as_array().expect("array").iter().map(json_row).collect()
            }
            FormatOptions::Ndjson => text
                .lines()
                .map(|l| json_row(&serde_json::from_str(l).expect("json line")))
                .collect(),
            FormatOptions::Xml(_) => {
                let (_, rows) = crate::format::parse_xml_for_tests(text).expect("xml");
                rows.into_iter()
                    .map(|r| {
                        r.into_iter()
                            .map(|(_, v)| v.map(|s| s.replace('\u{FFFD}', "\u{1}")))
                            .collect()
                    })
                    .collect()
            }
            // Parquet is never wrapped in an outer compression (see `format::parquet`).
            #[cfg(feature = "parquet")]
            FormatOptions::Parquet(_) => unreachable!("not a text format"),
        }
    }

    /// The cells a format can give back: CSV cannot tell NULL from "", and JSON numbers go
    /// through f64 in serde_json (`1.0` → `1`, `45.00` → `45`: the text itself is checked
    /// byte for byte, so only values are compared here).
    fn comparable(
        format: &FormatOptions,
        cells: Vec<Vec<Option<String>>>,
    ) -> Vec<Vec<Option<String>>> {
        cells
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .map(|c| match (format, c) {
                        (FormatOptions::Csv(_) | FormatOptions::Tsv(_), Some(s))
                            if s.is_empty() =>
                        {
                            None
                        }
                        (FormatOptions::Json { .. } | FormatOptions::Ndjson, Some(s)) => {
                            Some(s.parse::<f64>().map(|f| f.to_string()).unwrap_or(s))
                        }
                        (_, c) => c,
                    })
                    .collect()
            })
            .collect()
    }

    /// Decompresses `path` with the standard CLI tool for `compression`.
    fn decompress_with_cli(compression: &Compression, path: &str, entry: &str) -> Vec<u8> {
        match compression {
            Compression::None => std::fs::read(path).expect("read"),
            Compression::Gzip { .. } => {
                run_tool("gzip", &["-t", path], "gzip");
                run_tool("gzip", &["-dc", path], "gzip")
            }
            Compression::Zstd { .. } => run_tool("zstd", &["-dcq", path], "zstd"),
            Compression::Zip { password: None } => {
                let names = run_tool("unzip", &["-Z1", path], "unzip");
                assert_eq!(String::from_utf8_lossy(&names).trim(), entry);
                run_tool("unzip", &["-p", path, entry], "unzip")
            }
            // Info-ZIP's unzip 6.0 knows only ZipCrypto, not AES (method 99): 7-Zip reads it.
            Compression::Zip { password: Some(pw) }
            | Compression::SevenZ { password: Some(pw) } => {
                let pw_arg = format!("-p{pw}");
                run_tool("7z", &["t", &pw_arg, path], "p7zip-full");
                run_tool("7z", &["x", "-so", &pw_arg, path], "p7zip-full")
            }
            Compression::TarGz { .. } => {
                let names = run_tool("tar", &["-tzf", path], "tar");
                assert_eq!(String::from_utf8_lossy(&names).trim(), entry);
                run_tool("tar", &["-xzOf", path], "tar")
            }
            Compression::SevenZ { password: None } => {
                let listing = run_tool("7z", &["l", "-slt", path], "p7zip-full");
                assert!(String::from_utf8_lossy(&listing).contains(&format!("Path = {entry}")));
                run_tool("7z", &["x", "-so", path], "p7zip-full")
            }
        }
    }

    #[test]
    fn every_format_and_compression_round_trips_through_the_cli_tools() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut checked = 0;
        for format in formats() {
            let plain = encoded(&format);
            for compression in compressions() {
                let entry = format!("leads_001.{}", format.extension());
                let mut name = entry.clone();
                if let Some(ext) = compression.extension() {
                    name = format!("{name}.{ext}");
                }
                let path = dir.path().join(format!("{checked}-{name}"));
                let file = File::create(&path).expect("create");
                let mut sink = part_writer(&compression, &entry, file).expect("sink");
                let mut enc = encoder(&format, &columns());
                enc.begin(&mut sink).expect("begin");
                for row in rows() {
                    enc.write_row(&mut sink, &row).expect("row");
                }
                enc.finish(&mut sink).expect("finish encoder");
                assert_eq!(sink.uncompressed_bytes_so_far(), plain.len() as u64);
                let stats = sink.finish().expect("finish sink");
                let on_disk = std::fs::metadata(&path).expect("metadata").len();
                assert_eq!(stats.compressed_bytes, on_disk, "{compression:?}");
                assert_eq!(stats.uncompressed_bytes, plain.len() as u64);

                let path_str = path.to_str().expect("utf-8 path");
                let bytes = decompress_with_cli(&compression, path_str, &entry);
                assert!(bytes == plain, "{format:?} × {compression:?}: bytes differ");
                let cells = parse_back(&format, &bytes);
                assert_eq!(
                    comparable(&format, cells),
                    comparable(&format, expected_cells()),
                    "{format:?} × {compression:?}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 40);
    }

    #[test]
    fn passwords_are_required_to_read_encrypted_archives() {
        let dir = tempfile::tempdir().expect("tempdir");
        for compression in [
            Compression::Zip {
                password: Some("right".into()),
            },
            Compression::SevenZ {
                password: Some("right".into()),
            },
        ] {
            let path = dir
                .path()
                .join(format!("p.{}", compression.extension().unwrap_or("x")));
            let mut sink = part_writer(&compression, "a.csv", File::create(&path).expect("create"))
                .expect("sink");
            sink.write_all(b"secret payload\n").expect("write");
            sink.finish().expect("finish");
            let raw = std::fs::read(&path).expect("read");
            assert!(
                !raw.windows(6).any(|w| w == b"secret"),
                "{compression:?} leaks plaintext"
            );
            let status = std::process::Command::new("7z")
                .args(["x", "-so", "-pwrong"])
                .arg(&path)
                .output()
                .expect("7z is installed (Debian package p7zip-full)");
            assert!(!status.status.success() || !status.stdout.starts_with(b"secret"));
        }
    }

    #[test]
    fn empty_parts_are_valid_archives() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (i, compression) in compressions().into_iter().enumerate() {
            let path = dir.path().join(format!("empty{i}"));
            let sink = part_writer(&compression, "e.csv", File::create(&path).expect("create"))
                .expect("sink");
            let stats = sink.finish().expect("finish");
            assert_eq!(stats.uncompressed_bytes, 0);
            let bytes = decompress_with_cli(&compression, path.to_str().expect("path"), "e.csv");
            assert!(bytes.is_empty(), "{compression:?}");
        }
    }

    #[test]
    fn compressed_size_grows_while_writing_large_parts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let line = b"12345,Some Name,someone@example.com,45.00,2024-01-15T10:30:00Z,CA\n";
        for compression in [
            Compression::None,
            Compression::Gzip { level: 1 },
            Compression::Zstd { level: 1 },
            Compression::TarGz { level: 1 },
            Compression::Zip { password: None },
        ] {
            let path = dir.path().join("big");
            let mut sink = part_writer(&compression, "b.csv", File::create(&path).expect("create"))
                .expect("sink");
            // 40 MiB of input with a varying field so the data does not collapse to nothing.
            let mut n = 0u64;
            let mut text = Vec::with_capacity(line.len() + 20);
            while sink.uncompressed_bytes_so_far() < 40 << 20 {
                text.clear();
                text.extend_from_slice(format!("{n},").as_bytes());
                text.extend_from_slice(line);
                sink.write_all(&text).expect("write");
                n = n
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
            }
            let so_far = sink.compressed_bytes_so_far();
            assert!(so_far > 0, "{compression:?} reports no progress");
            let stats = sink.finish().expect("finish");
            assert!(so_far <= stats.compressed_bytes, "{compression:?}");
            assert!(stats.uncompressed_bytes >= 40 << 20);
        }
    }

    #[test]
    fn extensions() {
        let exts: Vec<_> = compressions().iter().map(Compression::extension).collect();
        assert_eq!(
            exts,
            [
                None,
                Some("gz"),
                Some("zst"),
                Some("zip"),
                Some("zip"),
                Some("tar.gz"),
                Some("7z"),
                Some("7z")
            ]
        );
        assert!(Compression::TarGz { level: 6 }.is_archive());
        assert!(!Compression::Gzip { level: 6 }.is_archive());
    }
}
