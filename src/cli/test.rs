//! `exportd test [PATH…]`: runs the `[[tests]]` blocks of definitions (see [`crate::deftest`]).

use super::{OutputFormat, Paths};
use crate::config::load;
use crate::deftest::{self, Outcome};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `test`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Definition files or directories; default: the exports directory.
    paths: Vec<PathBuf>,
    /// Output for people (`text`) or machines (`json`).
    #[arg(long, value_enum, default_value_t)]
    format: OutputFormat,
}

/// Runs every test; exit 1 when a definition is invalid, a test fails, or there is no test.
pub fn cmd(paths: &Paths, args: Args) -> anyhow::Result<ExitCode> {
    let loaded = if args.paths.is_empty() {
        load::load(&paths.config, &paths.exports)
    } else {
        load::load_paths(&paths.config, &args.paths)
    };
    let errors: Vec<_> = loaded.diagnostics.iter().filter(|d| d.is_error()).collect();
    let outcomes: Vec<Outcome> = loaded.specs.iter().flat_map(deftest::run_all).collect();
    let failed = outcomes.iter().filter(|o| !o.passed()).count();
    match args.format {
        OutputFormat::Json => {
            let report = serde_json::json!({
                "passed": outcomes.len() - failed,
                "failed": failed,
                "invalid_definitions": errors,
                "tests": outcomes,
            });
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        OutputFormat::Text => {
            for d in &errors {
                println!("{d}");
            }
            for o in &outcomes {
                // `file: test name` first, so an editor or CI annotator can jump to it.
                let mark = if o.passed() { "ok" } else { "FAIL" };
                println!("{}: {mark}: {}", o.file.display(), o.test);
                for f in &o.failures {
                    println!("    {f}");
                }
            }
            if outcomes.is_empty() && errors.is_empty() {
                eprintln!(
                    "no [[tests]] found in the definitions: add one (see docs/operator-experience.md) or point `exportd test` at the files that have them"
                );
            } else {
                eprintln!(
                    "{} passed, {failed} failed{}",
                    outcomes.len() - failed,
                    if errors.is_empty() {
                        String::new()
                    } else {
                        format!(", {} error(s) in definitions", errors.len())
                    }
                );
            }
        }
    }
    Ok(super::exit_code(
        failed > 0 || !errors.is_empty() || outcomes.is_empty(),
    ))
}
