//! gzip on all cores: independent gzip members compressed in parallel, written in order.
//!
//! A gzip file may hold several members back to back (RFC 1952 §2.2); `gzip -d`, `zcat`,
//! `tar -z`, Python's `gzip` and flate2's `MultiGzDecoder` read them as one stream. So the
//! input is cut into blocks (1 MiB by default) and each block becomes a complete member,
//! compressed on a pool of one worker per core. Cutting costs a little ratio (each block
//! starts with an empty 32 KiB window: about 0.5–1 % on CSV) and 18 bytes per member, and
//! buys a speed-up close to the number of cores. (pigz instead primes each block with the
//! previous 32 KiB and stitches one member; that needs a dictionary setter and CRC combination,
//! so members it is.)
//!
//! Each member is compressed in one call by libdeflate, which deflates a whole buffer instead
//! of a stream: on exported CSV it is faster than zlib-rs at the same level and its output is
//! within 2 % of GNU `gzip`'s at levels 1 and 6, where zlib-rs' is 9 % (level 6) and 33 %
//! (level 1, a faster strategy) larger (`scripts/bench.sh` prints both sizes).
//!
//! Threads and bounds, per writer:
//! - the caller (the encoding thread) only copies bytes into the current block;
//! - `workers` threads compress blocks (each reuses one deflate state);
//! - one writer thread waits for each block's member in order and writes it to the output;
//! - at most `2·workers` blocks are queued behind the one being written, so memory stays
//!   under about (2·workers + 2) × (block + compressed block), and a slow output slows the
//!   caller down instead of growing queues.
//!
//! Caveat for readers: a decoder that stops after the first member (flate2's `GzDecoder`,
//! some old Java `GZIPInputStream`s) would see only the first block: use `MultiGzDecoder`.

use libdeflater::{CompressionLvl, Compressor};
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Uncompressed bytes per gzip member: large enough that the per-member restart costs little
/// ratio, small enough that every core gets work early and memory stays small.
pub const DEFAULT_BLOCK_SIZE: usize = 1 << 20;

/// A compressed member and the input buffer it came from (returned for reuse).
type MemberResult = io::Result<(Vec<u8>, Vec<u8>)>;

/// One block to compress and where to send its member.
struct Job {
    data: Vec<u8>,
    reply: SyncSender<MemberResult>,
}

/// Compresses `data` into one complete gzip member (header, deflate stream, CRC-32, size).
/// libdeflate needs room for the worst case; that room is `scratch`, kept by the worker, so a
/// block only allocates its member's real size (a quarter of the block on CSV).
pub(crate) fn compress_member(
    compressor: &mut Compressor,
    data: &[u8],
    scratch: &mut Vec<u8>,
) -> io::Result<Vec<u8>> {
    let bound = compressor.gzip_compress_bound(data.len());
    if scratch.len() < bound {
        scratch.resize(bound, 0);
    }
    let written = compressor
        .gzip_compress(data, &mut scratch[..bound])
        .map_err(|e| super::other_error("deflate", e))?;
    Ok(scratch[..written].to_vec())
}

/// The compressor for a gzip `level` (0–9; above 9 means 9).
pub(crate) fn compressor(level: u32) -> Compressor {
    let level = CompressionLvl::new(level.min(9) as i32).unwrap_or_default();
    Compressor::new(level)
}

/// A `Write` that gzips on `workers` threads into `W`, in order. See the module doc.
///
/// Data reaches `W` in whole members: [`Write::flush`] does not cut a block (that would
/// produce tiny members); [`ParallelGzWriter::finish`] writes the rest and returns `W`.
pub struct ParallelGzWriter<W: Write + Send + 'static> {
    block: Vec<u8>,
    block_size: usize,
    jobs: Option<SyncSender<Job>>,
    order: Option<SyncSender<Receiver<MemberResult>>>,
    writer: Option<JoinHandle<io::Result<W>>>,
    workers: Vec<JoinHandle<()>>,
    recycled: Receiver<Vec<u8>>,
    compressed: Arc<AtomicU64>,
    uncompressed: u64,
    members: u64,
    /// Set once the pipeline has failed, so later calls report the same cause.
    failure: Option<(io::ErrorKind, String)>,
}

impl<W: Write + Send + 'static> ParallelGzWriter<W> {
    /// A writer with one worker per core and 1 MiB blocks. `level` 0–9 (above 9 means 9).
    pub fn new(dest: W, level: u32) -> io::Result<Self> {
        Self::with_options(dest, level, super::worker_count(), DEFAULT_BLOCK_SIZE)
    }

    /// A writer with `workers` threads (at least 1) and `block_size`-byte members (at least
    /// 1 KiB).
    pub fn with_options(
        mut dest: W,
        level: u32,
        workers: usize,
        block_size: usize,
    ) -> io::Result<Self> {
        let workers = workers.max(1);
        let block_size = block_size.max(1024);
        let queue = 2 * workers;
        let (jobs_tx, jobs_rx) = sync_channel::<Job>(queue);
        let (order_tx, order_rx) = sync_channel::<Receiver<MemberResult>>(queue);
        let (recycle_tx, recycle_rx) = sync_channel::<Vec<u8>>(queue + 2);
        let compressed = Arc::new(AtomicU64::new(0));

        let jobs_rx = Arc::new(Mutex::new(jobs_rx));
        let mut worker_handles = Vec::with_capacity(workers);
        for i in 0..workers {
            let jobs_rx = Arc::clone(&jobs_rx);
            let handle = std::thread::Builder::new()
                .name(format!("gzip-{i}"))
                .spawn(move || worker(&jobs_rx, level))?;
            worker_handles.push(handle);
        }

        let counter = Arc::clone(&compressed);
        let writer = std::thread::Builder::new()
            .name("gzip-writer".into())
            .spawn(move || -> io::Result<W> {
                for reply in order_rx {
                    let (member, mut input) = reply
                        .recv()
                        .map_err(|_| io::Error::other("gzip worker stopped"))??;
                    dest.write_all(&member)?;
                    counter.fetch_add(member.len() as u64, Ordering::Relaxed);
                    input.clear();
                    // A full recycle queue just means this buffer is freed.
                    let _ = recycle_tx.try_send(input);
                }
                dest.flush()?;
                Ok(dest)
            })?;

        Ok(ParallelGzWriter {
            block: Vec::with_capacity(block_size),
            block_size,
            jobs: Some(jobs_tx),
            order: Some(order_tx),
            writer: Some(writer),
            workers: worker_handles,
            recycled: recycle_rx,
            compressed,
            uncompressed: 0,
            members: 0,
            failure: None,
        })
    }

    /// Compressed bytes written to the output so far (lags by the blocks in flight).
    pub fn compressed_bytes(&self) -> u64 {
        self.compressed.load(Ordering::Relaxed)
    }

    /// Bytes written into this writer so far.
    pub fn uncompressed_bytes(&self) -> u64 {
        self.uncompressed
    }

    /// Compresses the remaining input, waits for every member to be written and returns the
    /// output. An input of zero bytes still produces one (empty) member, so the result is a
    /// valid gzip file.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.block.is_empty() || self.members == 0 {
            self.dispatch()?;
        }
        self.jobs = None;
        self.order = None;
        let result = self.join_writer();
        for handle in self.workers.drain(..) {
            // Workers only exit by their queue closing; a panic would already have failed
            // the writer through the dropped reply channel.
            let _ = handle.join();
        }
        result
    }

    /// Sends the current block to the workers and its reply slot to the writer.
    fn dispatch(&mut self) -> io::Result<()> {
        if let Some((kind, message)) = &self.failure {
            return Err(io::Error::new(*kind, message.clone()));
        }
        let next = self
            .recycled
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(self.block_size));
        let data = std::mem::replace(&mut self.block, next);
        let (reply_tx, reply_rx) = sync_channel(1);
        let sent = match (&self.order, &self.jobs) {
            (Some(order), Some(jobs)) => {
                order.send(reply_rx).is_ok()
                    && jobs
                        .send(Job {
                            data,
                            reply: reply_tx,
                        })
                        .is_ok()
            }
            _ => false,
        };
        if sent {
            self.members += 1;
            return Ok(());
        }
        // The writer thread has stopped: its result says why.
        self.jobs = None;
        self.order = None;
        let error = match self.join_writer() {
            Err(e) => e,
            Ok(_) => io::Error::other("gzip writer stopped early"),
        };
        self.failure = Some((error.kind(), error.to_string()));
        Err(error)
    }

    fn join_writer(&mut self) -> io::Result<W> {
        match self.writer.take() {
            Some(handle) => handle
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("gzip writer thread panicked"))),
            None => Err(io::Error::other("gzip writer already stopped")),
        }
    }
}

/// A worker: compresses jobs until the queue closes.
fn worker(jobs: &Mutex<Receiver<Job>>, level: u32) {
    let mut compressor = compressor(level);
    let mut scratch = Vec::new();
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok(job) = job else { break };
        let result = compress_member(&mut compressor, &job.data, &mut scratch)
            .map(|member| (member, job.data));
        // The writer may have gone away after an error; nothing left to do then.
        let _ = job.reply.send(result);
    }
}

impl<W: Write + Send + 'static> Write for ParallelGzWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let take = (self.block_size - self.block.len()).min(buf.len());
            self.block.extend_from_slice(&buf[..take]);
            self.uncompressed += take as u64;
            buf = &buf[take..];
            if self.block.len() >= self.block_size {
                self.dispatch()?;
            }
        }
        Ok(())
    }

    /// Does not cut a member (see the type doc); reports an earlier pipeline failure.
    fn flush(&mut self) -> io::Result<()> {
        match &self.failure {
            Some((kind, message)) => Err(io::Error::new(*kind, message.clone())),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::run_tool;
    use super::*;
    use flate2::read::MultiGzDecoder;
    use std::io::Read;

    /// Deterministic CSV-like text.
    fn sample(len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 100);
        let mut x: u64 = 42;
        while out.len() < len {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            out.extend_from_slice(
                format!(
                    "{},lead-{},{}.{:02},CA\n",
                    x >> 40,
                    x % 9973,
                    x % 500,
                    x % 100
                )
                .as_bytes(),
            );
        }
        out.truncate(len);
        out
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .expect("valid gzip");
        out
    }

    #[test]
    fn members_are_written_in_order_and_decode_with_gzip_and_flate2() {
        let input = sample(3 * 1024 * 1024 + 12345);
        for workers in [1, 3] {
            let mut gz =
                ParallelGzWriter::with_options(Vec::new(), 6, workers, 64 * 1024).expect("writer");
            // Uneven writes straddle block boundaries.
            for chunk in input.chunks(7777) {
                gz.write_all(chunk).expect("write");
            }
            assert_eq!(gz.uncompressed_bytes(), input.len() as u64);
            let out = gz.finish().expect("finish");
            assert_eq!(gunzip(&out), input);
            let members = out.windows(3).filter(|w| w == &[0x1f, 0x8b, 8]).count();
            assert!(members >= 49, "{members} members");
            assert!(out.len() < input.len() / 2);

            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("x.gz");
            std::fs::write(&path, &out).expect("write file");
            let path = path.to_str().expect("utf-8");
            assert_eq!(run_tool("gzip", &["-dc", path], "gzip"), input);
        }
    }

    #[test]
    fn empty_input_is_one_empty_member() {
        let out = ParallelGzWriter::new(Vec::new(), 6)
            .expect("writer")
            .finish()
            .expect("finish");
        assert!(out.starts_with(&[0x1f, 0x8b]));
        assert!(gunzip(&out).is_empty());
    }

    #[test]
    fn every_level_round_trips() {
        let input = sample(300_000);
        for level in [0, 1, 6, 9, 42] {
            let mut gz =
                ParallelGzWriter::with_options(Vec::new(), level, 2, 100_000).expect("writer");
            gz.write_all(&input).expect("write");
            assert_eq!(
                gunzip(&gz.finish().expect("finish")),
                input,
                "level {level}"
            );
        }
    }

    #[test]
    fn compressed_count_matches_output_at_the_end() {
        let input = sample(2_000_000);
        let mut gz = ParallelGzWriter::with_options(Vec::new(), 1, 2, 64 * 1024).expect("writer");
        gz.write_all(&input).expect("write");
        let counted = gz.compressed.clone();
        let out = gz.finish().expect("finish");
        assert_eq!(counted.load(Ordering::Relaxed), out.len() as u64);
    }

    /// A sink that fails after `limit` bytes, like a full disk.
    struct FailingWriter {
        written: usize,
        limit: usize,
    }

    impl Write for FailingWriter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.written + buf.len() > self.limit {
                return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
            }
            self.written += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn output_errors_surface_without_hanging() {
        let input = sample(8 * 1024 * 1024);
        let out = FailingWriter {
            written: 0,
            limit: 100_000,
        };
        let mut gz = ParallelGzWriter::with_options(out, 1, 2, 64 * 1024).expect("writer");
        let write_result = input.chunks(10_000).try_for_each(|c| gz.write_all(c));
        let err = match write_result {
            Err(e) => e,
            Ok(()) => gz.finish().err().expect("finish must fail"),
        };
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        assert!(err.to_string().contains("disk full"));
    }

    /// An output that accepts nothing until `open` is set, like a stalled disk or network.
    struct GateWriter {
        open: Arc<std::sync::atomic::AtomicBool>,
        bytes: usize,
    }

    impl Write for GateWriter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            while !self.open.load(Ordering::SeqCst) {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            self.bytes += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_output_stops_the_producer_after_a_bounded_number_of_blocks() {
        let open = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let progress = Arc::new(AtomicU64::new(0));
        let block = 4096;
        let workers = 2;
        let gate = GateWriter {
            open: Arc::clone(&open),
            bytes: 0,
        };
        let mut gz = ParallelGzWriter::with_options(gate, 1, workers, block).expect("writer");
        let input = sample(block * 50);
        let seen = Arc::clone(&progress);
        let producer = std::thread::spawn(move || {
            for chunk in input.chunks(block) {
                gz.write_all(chunk)?;
                seen.fetch_add(1, Ordering::SeqCst);
            }
            gz.finish()
        });
        std::thread::sleep(std::time::Duration::from_millis(300));
        let accepted = progress.load(Ordering::SeqCst);
        // One member being written, 2·workers queued behind it; the next block waits.
        assert!(
            accepted <= 2 * workers as u64 + 2,
            "{accepted} blocks accepted"
        );
        assert!(accepted >= 1);
        open.store(true, Ordering::SeqCst);
        let gate = producer.join().expect("producer").expect("finish");
        assert!(gate.bytes > 0);
        assert_eq!(progress.load(Ordering::SeqCst), 50);
    }

    #[test]
    fn writer_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<ParallelGzWriter<std::fs::File>>();
    }
}
