//! `exportd schema`: prints the JSON Schema the config types generate.

use crate::config::schema;
use std::process::ExitCode;

/// Arguments of `schema`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the schema of exportd.toml instead of export definitions.
    #[arg(long)]
    daemon: bool,
}

/// Prints the schema.
pub fn cmd(args: Args) -> anyhow::Result<ExitCode> {
    let text = if args.daemon {
        schema::generate_daemon_schema()
    } else {
        schema::generate_export_schema()
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}
