//! `exportd ingest --leads FILE | --events FILE [--strict] [--batch N]`: loads NDJSON (one JSON
//! object per line, `-` for stdin) into the lead store.
//!
//! Each bad line is reported as `FILE:LINE: error: message` and skipped; the good ones load
//! and the exit code is 1. With `--strict` the whole input is checked first and nothing is
//! written if any line is bad (stdin is spooled to a temporary file for the second pass, so
//! memory stays bounded whatever the input size). Exit codes: 0 all loaded, 1 bad lines,
//! 2 usage (including an input that cannot be opened).

use super::Paths;
use crate::store::ingest::{Kind, Loader, parse_line};
use anyhow::Context;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `ingest`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["leads", "events"])))]
pub struct Args {
    /// NDJSON file of leads (`-` reads stdin).
    #[arg(long, value_name = "FILE")]
    leads: Option<PathBuf>,
    /// NDJSON file of events (`-` reads stdin).
    #[arg(long, value_name = "FILE")]
    events: Option<PathBuf>,
    /// Load nothing if any line is bad: the input is checked completely before writing.
    #[arg(long)]
    strict: bool,
    /// Records per transaction.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    batch: u64,
}

/// Exit code for a bad command line or an input that cannot be read.
const USAGE: u8 = 2;

/// Loads records.
pub fn cmd(paths: &Paths, args: Args) -> anyhow::Result<ExitCode> {
    let (kind, path) = match (args.leads, args.events) {
        (Some(p), None) => (Kind::Leads, p),
        (None, Some(p)) => (Kind::Events, p),
        _ => unreachable!("clap requires exactly one of --leads and --events"),
    };
    let stdin = path.as_os_str() == "-";
    let name = if stdin {
        "<stdin>".to_owned()
    } else {
        path.display().to_string()
    };
    let what = match kind {
        Kind::Leads => "leads",
        Kind::Events => "events",
    };

    let (mut store, location) = super::demo::open_store(paths)?;
    // With --strict, stdin is read twice: keep a copy on disk (removed on drop).
    let spool = if stdin && args.strict {
        Some(Spool::from_stdin().context("cannot buffer stdin for --strict")?)
    } else {
        None
    };
    let open = |p: &Path| -> Result<Box<dyn BufRead>, ExitCode> {
        match File::open(p) {
            Ok(f) => Ok(Box::new(BufReader::with_capacity(1 << 16, f))),
            Err(e) => {
                eprintln!("exportd: error: cannot read {}: {e}", p.display());
                Err(ExitCode::from(USAGE))
            }
        }
    };
    let input = || -> Result<Box<dyn BufRead>, ExitCode> {
        match (&spool, stdin) {
            (Some(s), _) => open(&s.path),
            (None, true) => Ok(Box::new(std::io::stdin().lock())),
            (None, false) => open(&path),
        }
    };

    if args.strict {
        let reader = match input() {
            Ok(r) => r,
            Err(code) => return Ok(code),
        };
        let mut bad = false;
        read_lines(reader, &name, |line_no, line| {
            match line.and_then(|l| parse_line(kind, l)) {
                Ok(_) => ControlFlow::Continue(()),
                Err(message) => {
                    eprintln!("{name}:{line_no}: error: {message}");
                    bad = true;
                    ControlFlow::Break(())
                }
            }
        })?;
        if bad {
            eprintln!(
                "exportd: nothing loaded: --strict stops at the first bad line; fix it, or drop --strict to load the good lines"
            );
            return Ok(ExitCode::from(1));
        }
    }

    let reader = match input() {
        Ok(r) => r,
        Err(code) => return Ok(code),
    };
    // --strict: every batch nests in one transaction, so a database error halfway still
    // leaves nothing committed.
    if args.strict {
        store
            .begin_atomic()
            .with_context(|| format!("cannot start a transaction on {location}"))?;
    }
    let strict = args.strict;
    let mut loader = Loader::new(store.as_mut(), args.batch as usize);
    let mut bad_lines = 0u64;
    let mut failure = None;
    read_lines(reader, &name, |line_no, line| {
        match line.and_then(|l| parse_line(kind, l)) {
            Ok(None) => {}
            Ok(Some(record)) => {
                if let Err(e) = loader.push(record) {
                    failure = Some(e);
                    return ControlFlow::Break(());
                }
            }
            Err(message) => {
                eprintln!("{name}:{line_no}: error: {message}");
                bad_lines += 1;
            }
        }
        ControlFlow::Continue(())
    })?;
    let committed = loader.loaded();
    let result = match failure {
        Some(e) => {
            drop(loader);
            Err(e)
        }
        None => loader.finish(),
    };
    let failed_after = if strict { 0 } else { committed };
    let loaded = match result {
        Ok(loaded) if strict => {
            store.commit_atomic().with_context(|| {
                format!("cannot commit the load into {location}; nothing was loaded")
            })?;
            loaded
        }
        Ok(loaded) => loaded,
        Err(e) => {
            if strict {
                store.rollback_atomic().ok();
            }
            return Err(e).with_context(|| {
                format!("loading {name} into {location} failed after {failed_after} {what} were committed")
            });
        }
    };
    let skipped = if bad_lines > 0 {
        format!(", {bad_lines} bad line(s) skipped")
    } else {
        String::new()
    };
    eprintln!("loaded {loaded} {what} from {name} into {location}{skipped}");
    Ok(super::exit_code(bad_lines > 0))
}

/// Calls `each` with the 1-based number and text of every line (without its newline), or a
/// message when the line is not UTF-8, until it breaks. Reads one line at a time: memory does
/// not grow with the input.
fn read_lines(
    mut reader: Box<dyn BufRead>,
    name: &str,
    mut each: impl FnMut(usize, Result<&str, String>) -> ControlFlow<()>,
) -> anyhow::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    let mut line_no = 0;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .with_context(|| format!("cannot read {name}"))?;
        if n == 0 {
            return Ok(());
        }
        line_no += 1;
        let line = std::str::from_utf8(&buf).map_err(|e| {
            format!(
                "not valid UTF-8 at byte {} of the line: save the file as UTF-8",
                e.valid_up_to() + 1
            )
        });
        if each(line_no, line).is_break() {
            return Ok(());
        }
    }
}

/// A private copy of stdin in the temporary directory, deleted when dropped.
struct Spool {
    path: PathBuf,
}

impl Spool {
    fn from_stdin() -> std::io::Result<Spool> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let path = std::env::temp_dir().join(format!(
            "exportd-ingest-{}-{nanos}.ndjson",
            std::process::id()
        ));
        let spool = Spool { path };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&spool.path)?;
        std::io::copy(&mut std::io::stdin().lock(), &mut file)?;
        file.flush()?;
        Ok(spool)
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// A line that can never be a record: `!` cannot start JSON. `bytes` may be invalid UTF-8.
    fn bad_line() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            any::<u8>().prop_filter("no newline", |b| *b != b'\n'),
            0..30,
        )
        .prop_map(|mut bytes| {
            bytes.insert(0, b'!');
            bytes
        })
    }

    fn good_line() -> impl Strategy<Value = Vec<u8>> {
        (0u32..1000, prop::bool::ANY).prop_map(|(i, crlf)| {
            let mut line =
                format!(r#"{{"id":"L{i}","created_at":"2024-05-01T12:00:00Z"}}"#).into_bytes();
            if crlf {
                line.push(b'\r');
            }
            line
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Every bad line is reported with its own 1-based number, and only those.
        #[test]
        fn bad_lines_are_reported_with_their_line_numbers(
            lines in prop::collection::vec(prop_oneof![good_line(), bad_line()], 0..40),
            trailing_newline in prop::bool::ANY,
        ) {
            let expected: Vec<usize> = lines
                .iter()
                .enumerate()
                .filter(|(_, l)| l.first() == Some(&b'!'))
                .map(|(i, _)| i + 1)
                .collect();
            let mut input = lines.join(&b'\n');
            if trailing_newline && !lines.is_empty() {
                input.push(b'\n');
            }
            let mut reported = Vec::new();
            let mut seen = 0;
            read_lines(Box::new(std::io::Cursor::new(input)), "test", |line_no, line| {
                seen = line_no;
                if let Err(message) = line.and_then(|l| parse_line(Kind::Leads, l)) {
                    assert!(!message.is_empty());
                    reported.push(line_no);
                }
                ControlFlow::Continue(())
            })
            .expect("reading from memory");
            prop_assert_eq!(reported, expected);
            // Lines are never empty here, so a final newline adds no line.
            prop_assert_eq!(seen, lines.len());
        }
    }
}
