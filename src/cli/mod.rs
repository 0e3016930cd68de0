//! Command-line interface: one file per subcommand, each `pub fn cmd(…) -> anyhow::Result<ExitCode>`.
//!
//! This is the binary's edge, the only place (with `main.rs`) that uses `anyhow`.

mod audit;
mod backfill;
mod common;
mod demo;
mod dry_run;
mod export;
mod ingest;
mod plan;
mod retention;
mod run;
mod schema;
mod status;
mod token;
mod validate;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Environment variable naming the daemon config file.
pub const CONFIG_ENV: &str = "EXPORTD_CONFIG";

/// exportd: declarative exports of lead data.
#[derive(Debug, Parser)]
#[command(name = "exportd", version, about)]
pub struct Cli {
    /// Daemon config file; defaults apply when it does not exist.
    #[arg(long, global = true, env = CONFIG_ENV, default_value = "exportd.toml")]
    pub config: PathBuf,
    /// Directory of export definitions. Default: `exports.d` beside the config.
    #[arg(long, global = true)]
    pub exports: Option<PathBuf>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Output for people or machines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Text for people.
    #[default]
    Text,
    /// JSON for machines.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: schedule every export, reload on change or SIGHUP.
    Run(run::Args),
    /// Check definitions and the daemon config; exit 1 on any error.
    Validate(validate::Args),
    /// Print the JSON Schema of export definitions (or of exportd.toml with --daemon).
    Schema(schema::Args),
    /// Show the next runs of every export, their windows and paths.
    Plan(plan::Args),
    /// Run one export now, in the foreground.
    Export(export::Args),
    /// Run every nominal time of an export's schedule in a range.
    Backfill(backfill::Args),
    /// Every export with its state, next run and last run.
    Status(status::Args),
    /// Fill the lead store with realistic synthetic leads and events.
    Demo(demo::Args),
    /// Load NDJSON leads or events into the lead store.
    Ingest(ingest::Args),
    /// Delete delivered objects whose retention has passed (only what the ledger lists).
    Retention(retention::Args),
    /// Make API tokens (`exportd token new NAME --role ROLE`).
    Token(token::Args),
    /// Show the audit log: API requests, deliveries, retention deletions, reloads.
    Audit(audit::Args),
}

/// Exit status of a command that completed: 1 when something it checked or ran failed (an
/// invalid definition, a failed run, a bad input line), 0 otherwise. Usage errors (2) come from
/// clap.
pub fn exit_code(failed: bool) -> ExitCode {
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Runs one command.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let paths = exportd_paths(&cli);
    match cli.command {
        Command::Run(args) => run::cmd(&paths, args),
        Command::Validate(args) => validate::cmd(&paths, args),
        Command::Schema(args) => schema::cmd(args),
        Command::Plan(args) => plan::cmd(&paths, args),
        Command::Export(args) => export::cmd(&paths, args),
        Command::Backfill(args) => backfill::cmd(&paths, args),
        Command::Status(args) => status::cmd(&paths, args),
        Command::Demo(args) => demo::cmd(&paths, args),
        Command::Ingest(args) => ingest::cmd(&paths, args),
        Command::Retention(args) => retention::cmd(&paths, args),
        Command::Token(args) => token::cmd(args),
        Command::Audit(args) => audit::cmd(&paths, args),
    }
}

/// Where the config and the definitions are.
#[derive(Debug, Clone)]
pub struct Paths {
    /// exportd.toml (may not exist).
    pub config: PathBuf,
    /// exports.d.
    pub exports: PathBuf,
}

fn exportd_paths(cli: &Cli) -> Paths {
    // A bare `exportd.toml` keeps paths relative (`exports.d/x.toml`, not `./exports.d/x.toml`)
    // so diagnostics read the way operators wrote them.
    let exports = match cli.config.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => dir.join("exports.d"),
        None => PathBuf::from("exports.d"),
    };
    Paths {
        config: cli.config.clone(),
        exports: cli.exports.clone().unwrap_or(exports),
    }
}
