//! `exportd validate [PATH…]`: every problem, one per line, `file:line:col: error: message`.

use super::{OutputFormat, Paths};
use crate::config::load;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Definition files or directories; default: exportd.toml and the exports directory.
    paths: Vec<PathBuf>,
    /// Output for people (`text`) or machines (`json`).
    #[arg(long, value_enum, default_value_t)]
    format: OutputFormat,
    /// Treat warnings as errors.
    #[arg(long)]
    deny_warnings: bool,
}

/// Checks and prints diagnostics; exit 1 when anything is wrong.
pub fn cmd(paths: &Paths, args: Args) -> anyhow::Result<ExitCode> {
    let loaded = if args.paths.is_empty() {
        load::load(&paths.config, &paths.exports)
    } else {
        load::load_paths(&paths.config, &args.paths)
    };
    let failed = loaded
        .diagnostics
        .iter()
        .any(|d| d.is_error() || args.deny_warnings);
    match args.format {
        OutputFormat::Json => {
            let report = serde_json::json!({
                "valid": !failed,
                "exports": loaded.specs.iter().map(|s| &s.name).collect::<Vec<_>>(),
                "diagnostics": loaded.diagnostics,
            });
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        OutputFormat::Text => {
            for d in &loaded.diagnostics {
                println!("{d}");
            }
            if !failed {
                eprintln!("{} export definition(s) valid", loaded.specs.len());
            }
        }
    }
    Ok(super::exit_code(failed))
}
