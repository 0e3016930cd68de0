//! Command-line interface: one file per subcommand, each `pub fn cmd(…) -> anyhow::Result<ExitCode>`.
//!
//! This is the binary's edge, the only place (with `main.rs`) that uses `anyhow`.

mod audit;
mod backfill;
mod common;
mod completions;
mod demo;
mod dry_run;
mod export;
mod ingest;
mod plan;
mod retention;
mod run;
mod schema;
mod status;
mod test;
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
    #[command(after_help = "Example:\n  exportd run --config /etc/exportd/exportd.toml")]
    Run(run::Args),
    /// Check definitions and the daemon config; exit 1 on any error.
    #[command(after_help = "Example:\n  exportd validate --deny-warnings exports.d/")]
    Validate(validate::Args),
    /// Print the JSON Schema of export definitions (or of exportd.toml with --daemon).
    #[command(after_help = "Example:\n  exportd schema > schemas/export.json")]
    Schema(schema::Args),
    /// Show the next runs of every export, their windows and paths.
    #[command(after_help = "Example:\n  exportd plan --count 5")]
    Plan(plan::Args),
    /// Run one export now, in the foreground.
    #[command(after_help = "Example:\n  exportd export daily-backup --at 2024-01-15T02:00:00Z")]
    Export(export::Args),
    /// Run every nominal time of an export's schedule in a range.
    #[command(
        after_help = "Example:\n  exportd backfill daily-backup --from 2024-01-01 --to 2024-01-31"
    )]
    Backfill(backfill::Args),
    /// Every export with its state, next run and last run.
    #[command(after_help = "Example:\n  exportd status --format json")]
    Status(status::Args),
    /// Fill the lead store with realistic synthetic leads and events.
    #[command(after_help = "Example:\n  exportd demo --leads 100000 --seed 7")]
    Demo(demo::Args),
    /// Load NDJSON leads or events into the lead store.
    #[command(
        after_help = "Example:\n  exportd ingest --leads leads.ndjson --events events.ndjson"
    )]
    Ingest(ingest::Args),
    /// Delete delivered objects whose retention has passed (only what the ledger lists).
    #[command(after_help = "Example:\n  exportd retention --dry-run --export daily-backup")]
    Retention(retention::Args),
    /// Make API tokens (`exportd token new NAME --role ROLE`).
    #[command(after_help = "Example:\n  exportd token new grafana --role auditor")]
    Token(token::Args),
    /// Show the audit log: API requests, deliveries, retention deletions, reloads.
    #[command(
        after_help = "Example:\n  exportd audit --action delivery --since 2024-01-01T00:00:00Z"
    )]
    Audit(audit::Args),
    /// Run the definitions' [[tests]]: fixture rows through filter, columns and masks, in memory.
    #[command(after_help = "Example:\n  exportd test exports.d/")]
    Test(test::Args),
    /// Print a shell completion script (bash, zsh or fish).
    #[command(
        after_help = "Example:\n  exportd completions bash > /etc/bash_completion.d/exportd\n  exportd completions zsh > ~/.zfunc/_exportd\n  exportd completions fish > ~/.config/fish/completions/exportd.fish"
    )]
    Completions(completions::Args),
    /// Print the man page (roff), generated from these very options.
    #[command(
        after_help = "Example:\n  exportd man > /usr/local/share/man/man1/exportd.1 && man exportd"
    )]
    Man,
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
        Command::Test(args) => test::cmd(&paths, args),
        Command::Completions(args) => completions::cmd(args),
        Command::Man => completions::man(),
    }
}

/// Whether to colour output: only on a terminal, and never when `NO_COLOR` is set to anything
/// but the empty string (<https://no-color.org>). clap applies the same rule to help and errors.
pub fn colour_wanted(is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    is_terminal && no_color.is_none_or(|v| v.is_empty())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour_wanted(true, None));
        assert!(colour_wanted(true, Some(OsStr::new(""))));
        assert!(!colour_wanted(true, Some(OsStr::new("1"))));
        assert!(!colour_wanted(false, None));
    }

    #[test]
    fn every_subcommand_has_an_example() {
        use clap::CommandFactory;
        for sub in Cli::command().get_subcommands() {
            let help = sub
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            assert!(
                help.starts_with("Example:\n  exportd "),
                "`exportd {}` has no example in its --help",
                sub.get_name()
            );
        }
    }
}
