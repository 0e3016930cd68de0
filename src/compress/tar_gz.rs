//! tar.gz parts in one streaming pass, without a spool file.
//!
//! A tar header carries the entry's size, which is only known once the part is complete, and
//! gzip can't be patched in place. We don't spool the encoded bytes to a temporary file and
//! compress them afterwards (that costs a second pass, temp disk of the whole uncompressed
//! part, and a `compressed_bytes_so_far` that says nothing until the end). Instead we use
//! the fact that a gzip file may hold several members back to back:
//!
//! 1. Member 1 holds the tar header blocks (and a GNU long-name record for long names). It is
//!    written with *stored* deflate blocks, so its size depends only on the header's length,
//!    which depends only on the entry name. We reserve that many bytes at the start of the file.
//! 2. The entry data, then its zero padding to 512 bytes and the two zero end-of-archive blocks,
//!    go through [`ParallelGzWriter`] straight into the file (compressed on all cores).
//! 3. At `finish`, the real header (with the size) is built, stored-compressed to exactly the
//!    reserved length, and written over the reservation.
//!
//! The result decompresses to an ordinary tar stream: `tar -xzf`, `gzip -dc | tar -x`,
//! Python's `tarfile` and flate2's `MultiGzDecoder` + `tar::Archive` all read it. It needs a
//! seekable destination, which a part file is. The header member costs 512 uncompressed bytes
//! (+23 bytes of framing) instead of ~50 compressed ones.

use super::gzip::ParallelGzWriter;
use super::{CountingWriter, PartSink, PartStats};
use flate2::Crc;
use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Tar block size.
const BLOCK: u64 = 512;
/// Largest stored deflate block.
const MAX_STORED: usize = 65_535;

/// The tar header blocks for `entry_name` with `size` (GNU format; a long name gets its
/// `././@LongLink` record, exactly as `tar::Builder` writes it).
fn tar_header_blocks(entry_name: &str, size: u64, mtime: u64) -> io::Result<Vec<u8>> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_mtime(mtime);
    header.set_size(size);
    let mut builder = tar::Builder::new(Vec::with_capacity(1024));
    builder.append_data(&mut header, entry_name, io::empty())?;
    // Take the header bytes out before dropping the builder (its drop appends end blocks to
    // the emptied vector, which is then discarded).
    Ok(std::mem::take(builder.get_mut()))
}

/// `data` as one gzip member made of stored (uncompressed) deflate blocks: its length is a
/// function of `data.len()` alone.
fn stored_gzip_member(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 32);
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
    let mut chunks = data.chunks(MAX_STORED).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        // chunks(MAX_STORED) guarantees the length fits in 16 bits.
        let len = chunk.len() as u16;
        out.push(u8::from(last));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    let mut crc = Crc::new();
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// A part written as a one-entry tar.gz (see the module doc).
pub struct TarGzSink {
    gz: ParallelGzWriter<CountingWriter<File>>,
    counter: Arc<AtomicU64>,
    entry_name: String,
    mtime: u64,
    start: u64,
    reserved: usize,
}

impl TarGzSink {
    /// Starts a tar.gz part in `dest` (a regular file, written from its current position)
    /// whose single entry is `entry_name`; gzip `level` 0–9.
    pub fn new(mut dest: File, entry_name: &str, level: u32) -> io::Result<Self> {
        let mtime = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let start = dest.stream_position()?;
        let placeholder = stored_gzip_member(&tar_header_blocks(entry_name, 0, mtime)?);
        let reserved = placeholder.len();
        let mut counting = CountingWriter::new(dest);
        counting.write_all(&placeholder)?;
        let counter = counting.counter();
        Ok(TarGzSink {
            gz: ParallelGzWriter::new(counting, level)?,
            counter,
            entry_name: entry_name.to_string(),
            mtime,
            start,
            reserved,
        })
    }
}

impl Write for TarGzSink {
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

impl PartSink for TarGzSink {
    fn finish(mut self: Box<Self>) -> io::Result<PartStats> {
        let size = self.gz.uncompressed_bytes();
        let padding = (BLOCK - size % BLOCK) % BLOCK;
        let zeros = [0u8; 512];
        self.gz.write_all(&zeros[..padding as usize])?;
        // End of archive: two zero blocks.
        self.gz.write_all(&zeros)?;
        self.gz.write_all(&zeros)?;
        let mut file = self.gz.finish()?.into_inner();

        let header = stored_gzip_member(&tar_header_blocks(&self.entry_name, size, self.mtime)?);
        if header.len() != self.reserved {
            return Err(io::Error::other(format!(
                "tar header changed length ({} → {} bytes)",
                self.reserved,
                header.len()
            )));
        }
        let end = file.stream_position()?;
        file.seek(SeekFrom::Start(self.start))?;
        file.write_all(&header)?;
        file.seek(SeekFrom::Start(end))?;
        file.flush()?;
        Ok(PartStats {
            compressed_bytes: end - self.start,
            uncompressed_bytes: size,
        })
    }

    fn compressed_bytes_so_far(&self) -> u64 {
        self.counter.load(Ordering::Relaxed)
    }

    fn uncompressed_bytes_so_far(&self) -> u64 {
        self.gz.uncompressed_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::run_tool;
    use super::*;
    use flate2::read::MultiGzDecoder;
    use std::io::Read;

    fn write_part(path: &std::path::Path, entry: &str, data: &[u8]) -> PartStats {
        let file = File::create(path).expect("create");
        let mut sink: Box<dyn PartSink> = Box::new(TarGzSink::new(file, entry, 6).expect("sink"));
        for chunk in data.chunks(100_000) {
            sink.write_all(chunk).expect("write");
        }
        sink.finish().expect("finish")
    }

    #[test]
    fn stored_member_round_trips_and_has_a_fixed_length() {
        for len in [0usize, 1, 512, 65_535, 65_536, 200_000] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let member = stored_gzip_member(&data);
            assert_eq!(member.len(), 18 + len + 5 * len.div_ceil(MAX_STORED).max(1));
            let mut out = Vec::new();
            MultiGzDecoder::new(&member[..])
                .read_to_end(&mut out)
                .expect("gzip");
            assert_eq!(out, data);
        }
    }

    #[test]
    fn tar_cli_and_tar_crate_read_the_entry() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Crosses several 1 MiB gzip blocks and is not a multiple of 512.
        let data: Vec<u8> = (0..3_000_001u32)
            .map(|i| b"leads,csv\n"[(i % 10) as usize])
            .collect();
        let path = dir.path().join("p.tar.gz");
        let stats = write_part(&path, "leads_001.csv", &data);
        assert_eq!(stats.uncompressed_bytes, data.len() as u64);
        assert_eq!(
            stats.compressed_bytes,
            std::fs::metadata(&path).expect("meta").len()
        );
        let p = path.to_str().expect("utf-8");
        let listing = run_tool("tar", &["-tvzf", p], "tar");
        let listing = String::from_utf8_lossy(&listing);
        assert!(listing.contains("3000001"), "{listing}");
        assert!(listing.trim_end().ends_with("leads_001.csv"), "{listing}");
        assert_eq!(run_tool("tar", &["-xzOf", p], "tar"), data);

        let mut archive = tar::Archive::new(MultiGzDecoder::new(File::open(&path).expect("open")));
        let mut entries = archive.entries().expect("entries");
        let mut entry = entries.next().expect("one entry").expect("entry");
        assert_eq!(entry.path().expect("path").to_str(), Some("leads_001.csv"));
        let mut content = Vec::new();
        entry.read_to_end(&mut content).expect("read");
        assert_eq!(content, data);
        drop(entry);
        assert!(entries.next().is_none());
    }

    #[test]
    fn long_entry_names_use_a_gnu_long_name_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let name = format!("{}/leads_001.csv", "d".repeat(150));
        let path = dir.path().join("long.tar.gz");
        write_part(&path, &name, b"a,b\n1,2\n");
        let p = path.to_str().expect("utf-8");
        let listing = run_tool("tar", &["-tzf", p], "tar");
        assert_eq!(String::from_utf8_lossy(&listing).trim(), name);
        assert_eq!(run_tool("tar", &["-xzOf", p], "tar"), b"a,b\n1,2\n");
    }
}
