//! The `exportd` binary: parses the command line and hands over to `cli::run`.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = exportd::cli::Cli::parse();
    match exportd::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("exportd: error: {err:#}");
            ExitCode::from(1)
        }
    }
}
