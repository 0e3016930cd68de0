//! Shell completions, the man page and `--help` examples, through the real binary.

use crate::util::Test;

/// Subcommands every completion script and the man page must know.
const SUBCOMMANDS: &[&str] = &["run", "validate", "export", "backfill", "status", "test"];

#[test]
fn completions_for_each_shell_know_the_subcommands() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Test::new().args(["completions", shell]).run().success();
        assert!(out.stdout.len() > 1000, "{shell}: {}", out.stdout);
        for sub in SUBCOMMANDS {
            assert!(
                out.stdout.contains(sub),
                "{shell} completion does not mention `{sub}`"
            );
        }
        // fish declares long options as `-l NAME`, bash and zsh write them out.
        let flag = if shell == "fish" {
            "-l deny-warnings"
        } else {
            "--deny-warnings"
        };
        assert!(out.stdout.contains(flag), "{shell}: flags too");
    }
    let bash = Test::new().args(["completions", "bash"]).run().success();
    assert!(
        bash.stdout.contains("complete -F _exportd"),
        "{}",
        bash.stdout
    );
}

#[test]
fn completions_for_an_unknown_shell_is_a_usage_error() {
    let out = Test::new().args(["completions", "tcsh"]).run().code(2);
    assert!(out.stderr.contains("bash, zsh, fish"), "{}", out.stderr);
}

#[test]
fn the_man_page_is_roff_with_every_subcommand_and_its_options() {
    let out = Test::new().arg("man").run().success();
    let page = &out.stdout;
    assert!(page.contains(".TH exportd 1"), "{page}");
    for sub in SUBCOMMANDS {
        let heading = format!(".SH \"EXPORTD {}\"", sub.to_uppercase());
        assert!(page.contains(&heading), "no `{heading}` in the man page");
    }
    assert!(page.contains("deny\\-warnings"), "options are listed");
    assert!(
        page.contains("exportd export daily\\-backup"),
        "examples too"
    );
}

#[test]
fn help_shows_an_example_and_no_colour_off_a_terminal() {
    let out = Test::new().args(["backfill", "--help"]).run().success();
    assert!(
        out.stdout
            .contains("Example:\n  exportd backfill daily-backup --from"),
        "{}",
        out.stdout
    );
    // Not a terminal (a pipe), and NO_COLOR is unset: still no escape sequences.
    let plain = Test::new()
        .args(["backfill", "--help"])
        .env("NO_COLOR", "")
        .run()
        .success();
    assert!(!plain.stdout.contains('\u{1b}'), "{}", plain.stdout);
}
