//! `exportd completions SHELL` and `exportd man`: both generated from the clap definition, so
//! they can never list a flag the binary does not have.

use clap::CommandFactory;
use std::io::Write;
use std::process::ExitCode;

/// Arguments of `completions`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: Shell,
}

/// Shells with completion scripts.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Shell {
    /// Bash (source it, or put it in /etc/bash_completion.d/exportd).
    Bash,
    /// Zsh (save as `_exportd` in a directory on `$fpath`).
    Zsh,
    /// Fish (save as ~/.config/fish/completions/exportd.fish).
    Fish,
}

/// Prints the completion script of `shell`.
pub fn cmd(args: Args) -> anyhow::Result<ExitCode> {
    let mut command = super::Cli::command();
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "exportd", &mut script);
    print_all(&script)
}

/// Writes to stdout; a closed pipe (`exportd man | head`) is not an error.
fn print_all(bytes: &[u8]) -> anyhow::Result<ExitCode> {
    match std::io::stdout().write_all(bytes) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Prints the man page (roff): the top-level page, then one section per subcommand with its
/// synopsis, options and example, so `man exportd` alone documents every flag.
pub fn man() -> anyhow::Result<ExitCode> {
    let mut command = super::Cli::command();
    command.build();
    let mut out = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut out)?;
    for sub in command
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let page = clap_mangen::Man::new(sub.clone());
        let mut section = Vec::new();
        page.render_synopsis_section(&mut section)?;
        page.render_options_section(&mut section)?;
        if sub.get_after_help().is_some() {
            page.render_extra_section(&mut section)?;
        }
        writeln!(out, ".SH \"EXPORTD {}\"", sub.get_name().to_uppercase())?;
        if let Some(about) = sub.get_about() {
            writeln!(out, "{}", roff_text(&about.to_string()))?;
        }
        out.extend_from_slice(demote_sections(&String::from_utf8(section)?).as_bytes());
    }
    print_all(&out)
}

/// A subcommand's own `.SH` headings become `.SS` subsections of its section.
fn demote_sections(roff: &str) -> String {
    roff.lines()
        .map(|line| match line.strip_prefix(".SH ") {
            Some(title) if title.contains("EXTRA") => ".SS Example".to_owned(),
            Some(title) => format!(".SS {title}"),
            None => line.to_owned(),
        })
        .map(|line| line + "\n")
        .collect()
}

/// Plain text as a roff paragraph line: a leading `.` or `'` would be read as a request.
fn roff_text(text: &str) -> String {
    let escaped = text.replace('\\', "\\e");
    if escaped.starts_with(['.', '\'']) {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subcommand_headings_become_subsections() {
        assert_eq!(
            demote_sections(".SH SYNOPSIS\nexportd run\n.SH EXTRA\nExample\n"),
            ".SS SYNOPSIS\nexportd run\n.SS Example\nExample\n"
        );
    }

    #[test]
    fn text_that_looks_like_a_request_is_escaped() {
        assert_eq!(roff_text(".hidden"), "\\&.hidden");
        assert_eq!(roff_text("a\\b"), "a\\eb");
    }
}
