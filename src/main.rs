//! The `exportd` binary: parses the command line and hands over to `cli::run`.

use clap::Parser;
use std::process::ExitCode;

/// mimalloc: an export allocates each row's cells on the reading thread and frees them on the
/// encoding thread, which glibc's allocator serves slowly (measured in `scripts/bench.sh`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its place in `mi_option_e`, stable across v2 and v3).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;
/// How long freed memory stays with the allocator before it goes back to the OS, in ms.
const PURGE_DELAY_MS: std::ffi::c_long = 10;

unsafe extern "C" {
    #[cfg(test)]
    fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// mimalloc v3 keeps freed memory for a second before returning it to the OS. An export turns
/// over its batch and row-group buffers far faster than that, so peak RSS became the sum of
/// everything freed within a second: a 1 M-row Parquet export peaked at 72 MiB with 31 MiB
/// live (heaptrack). 10 ms (v2's default) brings it to 60–63 MiB for about 0.15 s more
/// system time per million rows (`scripts/bench-parquet.sh`); CSV exports stay at 35–40 MiB.
/// An operator's own `MIMALLOC_PURGE_DELAY` still wins.
fn return_freed_memory_promptly() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a plain integer option; mimalloc reads it at each purge decision.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
    }
}

/// Environment variable with the log filter (`info` by default, e.g. `exportd=debug`).
const LOG_ENV: &str = "EXPORTD_LOG";

fn main() -> ExitCode {
    return_freed_memory_promptly();
    let filter = tracing_subscriber::EnvFilter::try_from_env(LOG_ENV)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(exportd::cli::colour_wanted(
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
            std::env::var_os("NO_COLOR").as_deref(),
        ))
        .init();
    let cli = exportd::cli::Cli::parse();
    match exportd::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("exportd: error: {err:#}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        // The option index is hard-coded: v3's default purge delay (1000 ms) proves it names
        // that option before the binary changes it (unless the environment already did).
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) }, 1000);
        }
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
        assert_eq!(
            unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) },
            PURGE_DELAY_MS
        );
    }
}
