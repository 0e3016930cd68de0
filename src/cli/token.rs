//! `exportd token new NAME --role ROLE`: a fresh API token, printed once, with the line to
//! paste into exportd.toml (which stores only its SHA-256).

use crate::access::{new_token, role_name, token_hash};
use crate::config::daemon::Role;
use anyhow::Context;
use std::process::ExitCode;

/// Arguments of `token`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TokenCommand {
    /// Make a new token for NAME with ROLE.
    ///
    /// Example: `exportd token new grafana --role auditor`
    New {
        /// Who holds the token (shown in the audit log).
        name: String,
        /// admin, analyst, operations or auditor.
        #[arg(long, value_enum)]
        role: Role,
    },
}

/// Prints the token and the config line.
pub fn cmd(args: Args) -> anyhow::Result<ExitCode> {
    let TokenCommand::New { name, role } = args.command;
    let token = new_token().context("cannot read /dev/urandom for a new token")?;
    println!("token (shown once; give it to {name}): {token}");
    println!();
    println!("add to exportd.toml, then restart exportd:");
    println!("[[access.tokens]]");
    println!("name = {}", toml_string(&name));
    println!("role = \"{}\"", role_name(role));
    println!("sha256 = \"{}\"", token_hash(&token));
    Ok(ExitCode::SUCCESS)
}

fn toml_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| format!("\"{text}\""))
}
