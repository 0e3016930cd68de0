//! zip and 7z parts, compressed on a background thread fed through a bounded pipe.
//!
//! Both archive writers compress on the thread that writes into them (zip's deflate, 7z's
//! LZMA2). Running them behind a bounded channel of 256 KiB chunks keeps that work off the
//! encoding thread, so encoding and compression overlap on two cores, while at most
//! `PIPE_DEPTH` chunks wait in between.
//!
//! - zip: `ZipWriter::new_stream` (no seeking: sizes go in a data descriptor after the entry),
//!   deflate level 6, `large_file(true)` (zip64 sizes, so parts over 4 GiB are fine), optional
//!   WinZip AES-256 (AE-2). Info-ZIP `unzip` 6.0 cannot decrypt AES (use 7-Zip, WinZip,
//!   macOS Archive Utility, Python `pyzipper`); unencrypted parts open everywhere.
//! - 7z: sevenz-rust2 `ArchiveWriter` on the part file itself (it seeks back to write its
//!   start header, hence no spool file), LZMA2 preset [`super::SEVENZ_PRESET`] with one
//!   encoder thread per core, and with a password AES-256 over the data *and* the header
//!   (entry names are hidden too).

use super::{CountingWriter, PartSink, PartStats, other_error};
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// Bytes per chunk sent to the compressing thread.
const CHUNK: usize = 256 * 1024;
/// Chunks that may wait in the pipe.
const PIPE_DEPTH: usize = 4;

/// The compressing thread's end of the pipe.
pub(crate) struct PipeReader {
    rx: Receiver<Vec<u8>>,
    recycle: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
}

impl PipeReader {
    /// The next chunk, or `None` once the writer has finished.
    fn next_chunk(&mut self) -> Option<Vec<u8>> {
        self.rx.recv().ok()
    }

    fn give_back(&self, mut chunk: Vec<u8>) {
        chunk.clear();
        let _ = self.recycle.try_send(chunk);
    }
}

impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            let Some(next) = self.next_chunk() else {
                return Ok(0);
            };
            let done = std::mem::replace(&mut self.current, next);
            self.give_back(done);
            self.pos = 0;
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A part whose compression runs on a background thread reading a [`PipeReader`].
pub(crate) struct PipeSink {
    buf: Vec<u8>,
    tx: Option<SyncSender<Vec<u8>>>,
    recycled: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<io::Result<File>>>,
    counter: Arc<AtomicU64>,
    start: u64,
    uncompressed: u64,
    failure: Option<(io::ErrorKind, String)>,
}

impl PipeSink {
    /// Starts `compress` on its own thread; it reads the part's bytes from the pipe and
    /// returns the file once the container is complete.
    fn spawn<F>(name: &str, start: u64, counter: Arc<AtomicU64>, compress: F) -> io::Result<Self>
    where
        F: FnOnce(PipeReader) -> io::Result<File> + Send + 'static,
    {
        let (tx, rx) = sync_channel::<Vec<u8>>(PIPE_DEPTH);
        let (recycle_tx, recycled) = sync_channel::<Vec<u8>>(PIPE_DEPTH + 2);
        let reader = PipeReader {
            rx,
            recycle: recycle_tx,
            current: Vec::new(),
            pos: 0,
        };
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || compress(reader))?;
        Ok(PipeSink {
            buf: Vec::with_capacity(CHUNK),
            tx: Some(tx),
            recycled,
            thread: Some(thread),
            counter,
            start,
            uncompressed: 0,
            failure: None,
        })
    }

    /// Hands the current chunk to the compressing thread.
    fn send(&mut self) -> io::Result<()> {
        if let Some((kind, message)) = &self.failure {
            return Err(io::Error::new(*kind, message.clone()));
        }
        let next = self
            .recycled
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        let chunk = std::mem::replace(&mut self.buf, next);
        if let Some(tx) = &self.tx
            && tx.send(chunk).is_ok()
        {
            return Ok(());
        }
        // The thread stopped early: its result says why.
        self.tx = None;
        let error = match self.join() {
            Err(e) => e,
            Ok(_) => io::Error::other("compression thread stopped early"),
        };
        self.failure = Some((error.kind(), error.to_string()));
        Err(error)
    }

    fn join(&mut self) -> io::Result<File> {
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("compression thread panicked"))),
            None => Err(io::Error::other("compression thread already stopped")),
        }
    }
}

impl Write for PipeSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let take = (CHUNK - self.buf.len()).min(buf.len());
            self.buf.extend_from_slice(&buf[..take]);
            self.uncompressed += take as u64;
            buf = &buf[take..];
            if self.buf.len() >= CHUNK {
                self.send()?;
            }
        }
        Ok(())
    }

    /// Chunks move at 256 KiB boundaries and at `finish`; reports an earlier failure.
    fn flush(&mut self) -> io::Result<()> {
        match &self.failure {
            Some((kind, message)) => Err(io::Error::new(*kind, message.clone())),
            None => Ok(()),
        }
    }
}

impl PartSink for PipeSink {
    fn finish(mut self: Box<Self>) -> io::Result<PartStats> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        self.tx = None;
        let file = self.join()?;
        Ok(PartStats {
            compressed_bytes: file.metadata()?.len().saturating_sub(self.start),
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

/// A one-entry zip part (see the module doc).
pub(crate) fn zip_sink(
    mut dest: File,
    entry_name: &str,
    password: Option<String>,
) -> io::Result<PipeSink> {
    use zip::write::SimpleFileOptions;
    let start = dest.stream_position()?;
    let counting = CountingWriter::new(BufWriter::with_capacity(64 * 1024, dest));
    let counter = counting.counter();
    let entry_name = entry_name.to_string();
    PipeSink::spawn("zip", start, counter, move |mut reader| {
        let mut options = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .compression_level(Some(i64::from(super::DEFAULT_GZIP_LEVEL)))
            .large_file(true)
            .unix_permissions(0o644);
        if let Some(password) = password.as_deref() {
            options = options.with_aes_encryption(zip::AesMode::Aes256, password);
        }
        let mut zip = zip::ZipWriter::new_stream(counting);
        zip.start_file(entry_name.as_str(), options)
            .map_err(|e| other_error("zip", e))?;
        while let Some(chunk) = reader.next_chunk() {
            zip.write_all(&chunk)?;
            reader.give_back(chunk);
        }
        let stream = zip.finish().map_err(|e| other_error("zip", e))?;
        let mut counting = stream.into_inner();
        counting.flush()?;
        counting
            .into_inner()
            .into_inner()
            .map_err(|e| e.into_error())
    })
}

/// A one-entry 7z part (see the module doc).
pub(crate) fn sevenz_sink(
    mut dest: File,
    entry_name: &str,
    password: Option<String>,
) -> io::Result<PipeSink> {
    use sevenz_rust2::encoder_options::{AesEncoderOptions, Lzma2Options};
    use sevenz_rust2::{ArchiveEntry, ArchiveWriter, EncoderConfiguration, NtTime, Password};
    let start = dest.stream_position()?;
    if start != 0 {
        // The 7z start header is written at offset 0 by the library.
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a 7z part must start at the beginning of its file",
        ));
    }
    let counting = CountingWriter::new(dest);
    let counter = counting.counter();
    let entry_name = entry_name.to_string();
    let threads = u32::try_from(super::worker_count()).unwrap_or(1);
    PipeSink::spawn("7z", start, counter, move |reader| {
        let mut writer = ArchiveWriter::new(counting).map_err(|e| other_error("7z", e))?;
        // Each thread encodes its own 4 MiB chunks: small enough to keep both cores busy on
        // modest parts, large against preset 1's 1 MiB dictionary (ratio loss < 0.1 %).
        let lzma2: EncoderConfiguration =
            Lzma2Options::from_level_mt(super::SEVENZ_PRESET, threads, 4 << 20).into();
        let methods = match password.as_deref() {
            Some(pw) => vec![AesEncoderOptions::new(Password::new(pw)).into(), lzma2],
            None => vec![lzma2],
        };
        writer.set_content_methods(methods);
        writer.set_encrypt_header(password.is_some());
        let mut entry = ArchiveEntry::new_file(&entry_name);
        entry.has_last_modified_date = true;
        entry.last_modified_date = NtTime::now();
        writer
            .push_archive_entry(entry, Some(reader))
            .map_err(|e| other_error("7z", e))?;
        let mut counting = writer.finish()?;
        counting.flush()?;
        Ok(counting.into_inner())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zip_round_trips_with_the_zip_crate_including_aes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data: Vec<u8> = (0..700_000u32)
            .map(|i| b"0123456789,\n"[(i % 12) as usize])
            .collect();
        for password in [None, Some("pw")] {
            let path = dir.path().join("a.zip");
            let file = File::create(&path).expect("create");
            let mut sink: Box<dyn PartSink> =
                Box::new(zip_sink(file, "a.csv", password.map(str::to_string)).expect("sink"));
            sink.write_all(&data).expect("write");
            sink.finish().expect("finish");
            let mut archive = zip::ZipArchive::new(File::open(&path).expect("open")).expect("zip");
            let mut out = Vec::new();
            let mut entry = match password {
                Some(pw) => archive.by_index_decrypt(0, pw.as_bytes()).expect("decrypt"),
                None => archive.by_index(0).expect("entry"),
            };
            assert_eq!(entry.name().expect("name"), "a.csv");
            entry.read_to_end(&mut out).expect("read");
            assert_eq!(out, data);
        }
    }

    #[test]
    fn sevenz_round_trips_with_sevenz_rust2() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data: Vec<u8> = (0..300_000u32)
            .map(|i| b"abc,def\n"[(i % 8) as usize])
            .collect();
        let path = dir.path().join("a.7z");
        let file = File::create(&path).expect("create");
        let mut sink: Box<dyn PartSink> =
            Box::new(sevenz_sink(file, "a.csv", Some("pw".into())).expect("sink"));
        sink.write_all(&data).expect("write");
        let stats = sink.finish().expect("finish");
        assert_eq!(stats.uncompressed_bytes, data.len() as u64);
        let out = dir.path().join("out");
        sevenz_rust2::decompress_file_with_password(&path, &out, "pw".into()).expect("7z");
        assert_eq!(std::fs::read(out.join("a.csv")).expect("read"), data);
    }

    #[test]
    fn a_7z_part_must_start_at_offset_zero() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut file = File::create(dir.path().join("x.7z")).expect("create");
        file.write_all(b"junk").expect("write");
        let err = sevenz_sink(file, "a", None).err().expect("refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
