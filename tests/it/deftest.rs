//! `exportd test` and the personal-data lint of `exportd validate --deny-warnings`, on a config
//! repository (`tests/fixtures/config-repo/`) whose mask rule is wrong, then fixed: what an
//! operator's CI runs before a definition reaches the daemon.

use crate::util::{Test, repo_file};
use expect_test::expect;

const REPO: &str = "tests/fixtures/config-repo";
const DEFINITION: &str = "exports.d/partner-push.toml";
const WRONG_MASK: &str = "mask = { phone_1 = \"last4\" }\n";
const FIXED_MASK: &str = "mask = { email = \"email\", phone_1 = \"last4\" }\n";

/// The fixture repository in a temporary directory; `fixed` corrects the mask rule.
fn config_repo(fixed: bool) -> Test {
    let definition = repo_file(&format!("{REPO}/{DEFINITION}"));
    assert!(definition.contains(WRONG_MASK), "the fixture's mask rule");
    let definition = if fixed {
        definition.replace(WRONG_MASK, FIXED_MASK)
    } else {
        definition
    };
    Test::new()
        .copy_from_repo(&format!("{REPO}/exportd.toml"), "exportd.toml")
        .copy_from_repo(
            &format!("{REPO}/exports.d/fixtures/partner-push.ndjson"),
            "exports.d/fixtures/partner-push.ndjson",
        )
        .file(DEFINITION, definition)
}

#[test]
fn a_wrong_mask_rule_fails_its_tests_and_passes_once_fixed() {
    let out = config_repo(false)
        .arg("test")
        .run()
        .failure()
        .stdout_is(expect![[r#"
            exports.d/partner-push.toml: FAIL: contact details leave masked
                row 1, column `email`: got "ann.lee@example.com", expected "a**.l**@example.com"
                row 1: column `email` holds an unmasked email address: "ann.lee@example.com"; check [fields] mask
            exports.d/partner-push.toml: FAIL: a day of sold leads never carries a raw address
                row 1: column `email` leaks fixture field `email` ("carol.diaz@example.org"): "carol.diaz@example.org"
                row 2: column `email` leaks fixture field `email` ("dan@example.net"): "dan@example.net"
                row 3: column `email` leaks fixture field `email` ("frank.o@example.com"): "frank.o@example.com"
        "#]])
        .stderr_is(expect![[r#"
            0 passed, 2 failed
        "#]]);
    // Neither the store nor the state store was opened (their files would be under var/).
    assert!(!out.path().join("var").exists());

    let out = config_repo(true)
        .arg("test")
        .run()
        .success()
        .stdout_is(expect![[r#"
            exports.d/partner-push.toml: ok: contact details leave masked
            exports.d/partner-push.toml: ok: a day of sold leads never carries a raw address
        "#]]);
    assert!(!out.path().join("var").exists());

    let report = config_repo(false)
        .args(["test", DEFINITION, "--format", "json"])
        .run()
        .failure()
        .json();
    assert_eq!(report["passed"], 0);
    assert_eq!(report["failed"], 2);
    assert_eq!(report["tests"][0]["file"], DEFINITION);
    assert_eq!(report["tests"][0]["test"], "contact details leave masked");
}

#[test]
fn the_lint_names_the_unmasked_column_at_its_key_and_deny_warnings_fails() {
    let out = config_repo(false).arg("validate").run().success();
    let definition = repo_file(&format!("{REPO}/{DEFINITION}"));
    let line = definition
        .lines()
        .position(|l| l.starts_with("include = "))
        .expect("include line")
        + 1;
    let column = definition
        .lines()
        .nth(line - 1)
        .unwrap()
        .find("\"email\"")
        .unwrap()
        + 1;
    assert_eq!(
        out.stdout,
        format!(
            "{DEFINITION}:{line}:{column}: warning: column `email` looks personal and goes unmasked to `webhook` ([[deliver]] #1); mask it (`email = \"email\"` in [fields] mask), leave it out (`exclude = [\"email\"]` in [fields]), or, if the recipient must have it, list it in [fields] allow_unmasked\n"
        )
    );
    let out = config_repo(false)
        .args(["validate", "--deny-warnings"])
        .run()
        .failure();
    assert!(
        out.stdout.contains("column `email` looks personal"),
        "{}",
        out.stdout
    );

    config_repo(true)
        .args(["validate", "--deny-warnings"])
        .run()
        .success()
        .stdout_empty();
    // Saying the recipient must have it is the other way to a clean run.
    let allowed = repo_file(&format!("{REPO}/{DEFINITION}")).replace(
        WRONG_MASK,
        &format!("{WRONG_MASK}allow_unmasked = [\"email\"]\n"),
    );
    config_repo(false)
        .file(DEFINITION, allowed)
        .args(["validate", "--deny-warnings"])
        .run()
        .success()
        .stdout_empty();
}

#[test]
fn exportd_test_without_tests_or_with_an_invalid_definition_fails() {
    let out = Test::new()
        .file(
            "exports.d/plain.toml",
            "window = \"previous_day\"\n[[deliver]]\nto = \"local\"\npath = \"p/{{date}}.csv\"\n",
        )
        .arg("test")
        .run()
        .failure()
        .stdout_empty();
    assert!(
        out.stderr
            .starts_with("no [[tests]] found in the definitions"),
        "{}",
        out.stderr
    );
    let out = Test::new()
        .file(
            "exports.d/broken.toml",
            "window = \"previous_dya\"\n[[deliver]]\nto = \"local\"\npath = \"p/{{date}}.csv\"\n",
        )
        .arg("test")
        .run()
        .failure();
    assert!(
        out.stdout
            .starts_with("exports.d/broken.toml:1:10: error: unknown window"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("1 error(s) in definitions"),
        "{}",
        out.stderr
    );
}

#[test]
fn the_examples_tests_pass() {
    Test::in_repo()
        .args(["--config", "examples/exportd.toml", "test", "examples/"])
        .run()
        .success()
        .stdout_is(expect![[r#"
            examples/marketing-weekly-segment.toml: ok: only high scores, contact details masked
        "#]]);
}
