//! The `exportd` binary: parses the command line and hands over to `cli::run`.

use clap::Parser;
use std::process::ExitCode;

/// mimalloc: an export allocates each row's cells on the reading thread and frees them on the
/// encoding thread, which glibc's allocator serves slowly (measured in `scripts/bench.sh`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Environment variable with the log filter (`info` by default, e.g. `exportd=debug`).
const LOG_ENV: &str = "EXPORTD_LOG";

fn main() -> ExitCode {
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
