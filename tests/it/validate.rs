//! `exportd validate`: the shipped definitions are valid, and every kind of mistake an operator
//! makes is reported once, at its `file:line:col`, in words that say how to fix it.

use crate::util::{Test, definitions_in, line_col, repo_file};
use expect_test::expect;

const BROKEN_DIR: &str = "tests/fixtures/broken";
const BROKEN_CONFIG: &str = "tests/fixtures/broken/exportd.toml";

/// Where the one diagnostic of each file in `tests/fixtures/broken/` must point.
///
/// `needle` is searched in the fixture outside comment lines, and the expected column is
/// `chars` characters after its start; an empty needle means the start of the file (a problem
/// with the file as a whole, such as a missing key).
const BROKEN: &[Broken] = &[
    // A bad enum value: at the value.
    broken("bad-compression.toml", "\"gzipp\"", 0),
    // A computed column's expression: at the offending token inside the string.
    broken("bad-computed.toml", "* cost", 0),
    // Hour 25 of a cron expression: at the schedule value.
    broken("bad-cron.toml", "\"0 25 * * *\"", 0),
    // `revenue >` with nothing after it: where the missing value should be, the closing quote.
    broken("bad-filter.toml", "revenue >'", 9),
    broken("bad-group-by.toml", "\"sorce\"", 0),
    broken("bad-recipient.toml", "\"marketing team\"", 0),
    broken("bad-retention.toml", "\"90 days\"", 0),
    broken("bad-schedule-day.toml", "\"weekly on mondy", 0),
    broken("bad-window.toml", "\"previous_dya\"", 0),
    // The part size that cannot be emailed.
    broken("email-too-small.toml", "\"50MB\"", 0),
    broken("hash-without-key.toml", "\"hash\"", 0),
    broken("kms-without-key.toml", "\"aws:kms\"", 0),
    broken("literal-password.toml", "\"hunter2\"", 0),
    broken("missing-window.toml", "", 0),
    broken("no-destination.toml", "", 0),
    broken("parts-overwrite.toml", "\"leads/{{date}}.csv\"", 0),
    // At the `..` inside the path template.
    broken("path-escapes-root.toml", "../", 0),
    // At the `{{` that is never closed.
    broken("template-syntax.toml", "{{date.csv", 0),
    // An unterminated string: at the end of the line, where the closing quote is missing.
    broken("toml-syntax.toml", "\"previous_day\n", 13),
    broken("unknown-connection.toml", "\"s3-mian\"", 0),
    broken("unknown-destination.toml", "\"s4\"", 0),
    // An unknown key: at the key.
    broken("unknown-key.toml", "bukcet =", 0),
    // An unknown template variable: at its name inside the template.
    broken("unknown-template-variable.toml", "dat}}", 0),
    broken("unknown-timezone.toml", "\"America/Chicag\"", 0),
    broken("wrong-connection-type.toml", "\"smtp-reports\"", 0),
];

struct Broken {
    file: &'static str,
    needle: &'static str,
    chars: usize,
}

const fn broken(file: &'static str, needle: &'static str, chars: usize) -> Broken {
    Broken {
        file,
        needle,
        chars,
    }
}

/// `(line, column)` of the first occurrence of `needle` outside `#` comment lines, moved
/// `chars` characters to the right.
fn position_of(text: &str, needle: &str, chars: usize) -> (usize, usize) {
    if needle.is_empty() {
        return (1, 1);
    }
    let mut offset = 0;
    let found = text.split_inclusive('\n').find_map(|line| {
        let start = offset;
        offset += line.len();
        let code = !line.trim_start().starts_with('#');
        // A needle may end with the line's newline, so search the line and what follows it.
        let found = text[start..].find(needle).filter(|i| *i < line.len());
        found.filter(|_| code).map(|i| start + i)
    });
    let at = found.unwrap_or_else(|| panic!("`{needle}` not found outside comments"));
    let at = at
        + text[at..]
            .chars()
            .take(chars)
            .map(char::len_utf8)
            .sum::<usize>();
    line_col(text, at)
}

#[test]
fn examples_validate_with_the_example_daemon_config() {
    let output = Test::in_repo()
        .args([
            "--config",
            "examples/exportd.toml",
            "validate",
            "--format",
            "json",
        ])
        .arg("examples/")
        .run()
        .success();
    let report = output.json();
    assert_eq!(report["valid"], true, "{}", output.stdout);
    assert_eq!(
        report["diagnostics"],
        serde_json::json!([]),
        "{}",
        output.stdout
    );
    let stems: Vec<String> = definitions_in("examples")
        .iter()
        .map(|f| stem(f).to_owned())
        .collect();
    assert_eq!(report["exports"], serde_json::json!(stems));
}

#[test]
fn every_seed_pattern_has_an_example() {
    let expected = [
        "compliance-archive",
        "crm-hourly-sync",
        "daily-backup",
        "finance-reconciliation",
        "marketing-weekly-segment",
        "monthly-archive",
        "seed-csv",
        "source-summary",
        "warehouse-daily",
        "warehouse-parquet",
        "weekly-report",
    ];
    let found: Vec<String> = definitions_in("examples")
        .iter()
        .map(|f| stem(f).to_owned())
        .collect();
    assert_eq!(found, expected);
    for file in definitions_in("examples")
        .iter()
        .chain(&definitions_in("exports.d"))
    {
        let text = repo_file(file);
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("#:schema ../schemas/export.schema.json"),
            "{file} starts with the schema directive"
        );
        assert!(
            lines.next().is_some_and(|l| l.starts_with("# ")),
            "{file} says in a comment what it is for"
        );
    }
    let config = repo_file("examples/exportd.toml");
    assert!(config.starts_with("#:schema ../schemas/exportd.schema.json\n"));
}

#[test]
fn default_exports_validate_on_a_fresh_clone_without_a_daemon_config() {
    let files = definitions_in("exports.d");
    assert!(!files.is_empty(), "exports.d/ ships definitions");
    let mut test = Test::new();
    for file in &files {
        test = test.copy_from_repo(file, file);
    }
    let output = test.arg("validate").run().success().stdout_empty();
    assert_eq!(
        output.stderr,
        format!("{} export definition(s) valid\n", files.len())
    );
    for file in &files {
        let text = repo_file(file);
        let value: toml::Value = toml::from_str(&text).expect("valid TOML");
        for deliver in value["deliver"].as_array().expect("[[deliver]]") {
            assert_eq!(
                deliver["to"].as_str(),
                Some("local"),
                "{file} delivers locally only"
            );
        }
    }
}

#[test]
fn examples_and_default_exports_match_the_committed_json_schema() {
    let schema = |file: &str| -> jsonschema::Validator {
        let schema: serde_json::Value =
            serde_json::from_str(&repo_file(file)).expect("schema JSON");
        jsonschema::validator_for(&schema).expect("the committed schema compiles")
    };
    let export = schema("schemas/export.schema.json");
    let daemon = schema("schemas/exportd.schema.json");
    let mut files = definitions_in("examples");
    files.extend(definitions_in("exports.d"));
    let daemon_files = ["examples/exportd.toml", BROKEN_CONFIG];
    let mut problems = Vec::new();
    for (file, validator) in files
        .iter()
        .map(|f| (f.as_str(), &export))
        .chain(daemon_files.iter().map(|f| (*f, &daemon)))
    {
        let value: toml::Value =
            toml::from_str(&repo_file(file)).unwrap_or_else(|e| panic!("{file} is not TOML: {e}"));
        let instance = serde_json::to_value(value).expect("TOML converts to JSON");
        for error in validator.iter_errors(&instance) {
            problems.push(format!("{file}: {}: {error}", error.instance_path()));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn broken_definitions_each_get_one_diagnostic_at_their_position() {
    let listed: Vec<String> = BROKEN
        .iter()
        .map(|b| format!("{BROKEN_DIR}/{}", b.file))
        .collect();
    assert_eq!(
        listed,
        definitions_in(BROKEN_DIR),
        "every broken fixture has its expected position here"
    );
    let mut wrong = Vec::new();
    for b in BROKEN {
        let file = format!("{BROKEN_DIR}/{}", b.file);
        let (line, column) = position_of(&repo_file(&file), b.needle, b.chars);
        let expected = format!("{file}:{line}:{column}: error: ");
        let output = Test::in_repo()
            .args(["--config", BROKEN_CONFIG, "validate", &file])
            .run();
        let lines = output.stdout_lines();
        let ok =
            output.status.code() == Some(1) && lines.len() == 1 && lines[0].starts_with(&expected);
        if !ok {
            wrong.push(format!(
                "{file}: expected exit 1 and one diagnostic starting `{expected}`, got exit {:?}:\n{}",
                output.status.code(),
                output.stdout
            ));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn broken_definitions_are_explained_in_one_pass() {
    Test::in_repo()
        .args(["--config", BROKEN_CONFIG, "validate", BROKEN_DIR])
        .run()
        .failure()
        .stdout_is(expect![[r#"
            tests/fixtures/broken/bad-compression.toml:6:15: error: `gzipp` is not a valid `compression`: use one of `none`, `gzip`, `zstd`, `zip`, `tar.gz`, `7z`, `snappy`; did you mean `gzip`?
            tests/fixtures/broken/bad-computed.toml:5:34: error: invalid computed column `margin`: expected a value after `-`, found `*`
            tests/fixtures/broken/bad-cron.toml:2:12: error: invalid schedule `0 25 * * *`: hour `25` is out of range 0–23
            tests/fixtures/broken/bad-filter.toml:3:44: error: invalid filter: expected a value after `>`, found end of input
            tests/fixtures/broken/bad-group-by.toml:6:21: error: cannot group by `sorce`: use date, hour, week, month, source, flow, outcome, state, buyer; did you mean `source`?
            tests/fixtures/broken/bad-recipient.toml:7:36: error: `marketing team` is not an email address
            tests/fixtures/broken/bad-retention.toml:7:13: error: invalid retention `90 days`: write a number and a unit h, d, w or y (such as `90d` or `7y`), or `never`
            tests/fixtures/broken/bad-schedule-day.toml:2:12: error: invalid schedule `weekly on mondy at 06:00`: unknown weekday `mondy`; did you mean `monday`?
            tests/fixtures/broken/bad-window.toml:2:10: error: unknown window `previous_dya`: use one of `previous_hour`, `previous_day`, `previous_week`, `previous_month`, `last_7_days`, `since_last_run`, `all`; did you mean `previous_day`?
            tests/fixtures/broken/email-too-small.toml:5:13: error: parts of up to 50MB cannot be emailed with `max_size` 10MB: lower `max_bytes` or raise `max_size` of [[deliver]] 1
            tests/fixtures/broken/hash-without-key.toml:5:18: error: `hash` masks need a key: add `hash_key = { env = "EXPORTD_HASH_KEY" }` to [fields]
            tests/fixtures/broken/kms-without-key.toml:9:14: error: `aws:kms` encryption needs `kms_key_id`
            tests/fixtures/broken/literal-password.toml:7:12: error: secrets are never written literally: use `{ env = "NAME" }`, `{ file = "/path" }` or `{ credential = "NAME" }`
            tests/fixtures/broken/missing-window.toml:1:1: error: missing key `window`
            tests/fixtures/broken/no-destination.toml:1:1: error: no destination: add a [[deliver]] table, such as `to = "local"` with a `path`
            tests/fixtures/broken/parts-overwrite.toml:9:8: error: [chunk] can produce several parts, and they would overwrite each other: put `{{part}}` in the path
            tests/fixtures/broken/path-escapes-root.toml:6:15: error: rendered path `leads/../../etc/2024-01-15.csv` contains `..`; paths must stay inside the destination's root
            tests/fixtures/broken/template-syntax.toml:6:15: error: invalid template: `{{` is not closed by `}}`
            tests/fixtures/broken/toml-syntax.toml:2:23: error: TOML syntax: invalid basic string, expected `"`
            tests/fixtures/broken/unknown-connection.toml:6:14: error: unknown connection `s3-mian`: define `[connections.s3-mian]` in exportd.toml; did you mean `s3-main`?
            tests/fixtures/broken/unknown-destination.toml:5:6: error: unknown `to` value `s4`: use one of `local`, `s3`, `gcs`, `azure`, `sftp`, `email`, `webhook`; did you mean `s3`?
            tests/fixtures/broken/unknown-key.toml:7:1: error: unknown key `bukcet` in [deliver]; did you mean `bucket`?
            tests/fixtures/broken/unknown-template-variable.toml:8:25: error: unknown template variable `dat`; did you mean `date`?
            tests/fixtures/broken/unknown-timezone.toml:3:12: error: unknown time zone `America/Chicag`: use an IANA name such as `America/Chicago` or `UTC`; did you mean `America/Chicago`?
            tests/fixtures/broken/wrong-connection-type.toml:6:14: error: connection `smtp-reports` is of type `smtp`, but `to = "s3"` needs an `s3` connection
        "#]]);
}

#[test]
fn three_problems_in_one_file_give_three_diagnostics() {
    Test::in_repo()
        .args(["--config", BROKEN_CONFIG, "validate"])
        .arg("tests/fixtures/multiple/three-problems.toml")
        .run()
        .failure()
        .stdout_is(expect![[r#"
            tests/fixtures/multiple/three-problems.toml:3:12: error: unknown time zone `America/Chicag`: use an IANA name such as `America/Chicago` or `UTC`; did you mean `America/Chicago`?
            tests/fixtures/multiple/three-problems.toml:5:20: error: invalid filter: expected a value after `>`, found end of input
            tests/fixtures/multiple/three-problems.toml:9:14: error: unknown connection `s3-mian`: define `[connections.s3-mian]` in exportd.toml; did you mean `s3-main`?
        "#]]);
}

#[test]
fn json_format_reports_the_same_diagnostics() {
    let multiple = "tests/fixtures/multiple/three-problems.toml";
    let json = Test::in_repo()
        .args([
            "--config",
            BROKEN_CONFIG,
            "validate",
            "--format",
            "json",
            multiple,
        ])
        .run()
        .failure();
    expect![[r#"
        {
          "valid": false,
          "exports": [],
          "diagnostics": [
            {
              "file": "tests/fixtures/multiple/three-problems.toml",
              "line": 3,
              "column": 12,
              "severity": "error",
              "message": "unknown time zone `America/Chicag`: use an IANA name such as `America/Chicago` or `UTC`",
              "help": "did you mean `America/Chicago`?"
            },
            {
              "file": "tests/fixtures/multiple/three-problems.toml",
              "line": 5,
              "column": 20,
              "severity": "error",
              "message": "invalid filter: expected a value after `>`, found end of input"
            },
            {
              "file": "tests/fixtures/multiple/three-problems.toml",
              "line": 9,
              "column": 14,
              "severity": "error",
              "message": "unknown connection `s3-mian`: define `[connections.s3-mian]` in exportd.toml",
              "help": "did you mean `s3-main`?"
            }
          ]
        }
    "#]]
    .assert_eq(&json.stdout);

    // Over the whole broken directory, JSON and text carry the same diagnostics in the same order.
    for path in [BROKEN_DIR, multiple] {
        let text = Test::in_repo()
            .args(["--config", BROKEN_CONFIG, "validate", path])
            .run()
            .failure();
        let json = Test::in_repo()
            .args([
                "--config",
                BROKEN_CONFIG,
                "validate",
                "--format",
                "json",
                path,
            ])
            .run()
            .failure()
            .json();
        assert_eq!(json["valid"], false);
        let from_json: Vec<String> = json["diagnostics"]
            .as_array()
            .expect("diagnostics array")
            .iter()
            .map(|d| {
                let mut line = format!(
                    "{}:{}:{}: {}: {}",
                    d["file"].as_str().unwrap(),
                    d["line"],
                    d["column"],
                    d["severity"].as_str().unwrap(),
                    d["message"].as_str().unwrap()
                );
                if let Some(help) = d["help"].as_str() {
                    line.push_str("; ");
                    line.push_str(help);
                }
                line
            })
            .collect();
        assert_eq!(from_json, text.stdout_lines());
    }
}

#[test]
fn definitions_in_the_default_exports_dir_are_reported_by_their_path() {
    Test::new()
        .daemon_config(
            "[connections.s3-main]\ntype = \"s3\"\nregion = \"us-east-1\"\n",
        )
        .file(
            "exports.d/daily.toml",
            "window = \"previous_day\"\n\n[[deliver]]\nto = \"s3\"\nconnection = \"s3-mian\"\nbucket = \"b\"\npath = \"leads/{{date}}.csv\"\n",
        )
        .arg("validate")
        .run()
        .failure()
        .stdout_is(expect![[r#"
            exports.d/daily.toml:5:14: error: unknown connection `s3-mian`: define `[connections.s3-mian]` in exportd.toml; did you mean `s3-main`?
        "#]]);
}

#[test]
fn literal_secrets_are_refused_without_being_echoed() {
    let output = Test::new()
        .daemon_config(
            "[connections.s3-main]\ntype = \"s3\"\nsecret_access_key = \"hunter2\"\n",
        )
        .file(
            "exports.d/hashed.toml",
            "window = \"previous_day\"\n\n[fields]\nmask = { email = \"hash\" }\nhash_key = \"hunter2\"\n\n[[deliver]]\nto = \"local\"\npath = \"leads/{{date}}.csv\"\n",
        )
        .arg("validate")
        .run()
        .failure();
    assert!(!output.stdout.contains("hunter2") && !output.stderr.contains("hunter2"));
    output.stdout_is(expect![[r#"
        exportd.toml:3:21: error: secrets are never written literally: use `{ env = "NAME" }`, `{ file = "/path" }` or `{ credential = "NAME" }`
        exports.d/hashed.toml:5:12: error: secrets are never written literally: use `{ env = "NAME" }`, `{ file = "/path" }` or `{ credential = "NAME" }`
    "#]]);
}

#[test]
fn webhook_path_may_start_with_a_slash_as_documented() {
    // export.rs documents `path` of a webhook as "appended to the connection's URL, such as
    // `/sync/{{export}}`". No personal columns, so the personal-data lint stays quiet too.
    Test::new()
        .daemon_config(
            "[connections.crm-webhook]\ntype = \"webhook\"\nurl = \"https://crm.example.com/api\"\n",
        )
        .file(
            "exports.d/crm.toml",
            "window = \"previous_hour\"\n\n[[deliver]]\nto = \"webhook\"\nconnection = \"crm-webhook\"\npath = \"/sync/{{export}}\"\n\n[fields]\ninclude = [\"lead_id\", \"state\"]\n",
        )
        .arg("validate")
        .run()
        .success()
        .stdout_empty();
}

#[test]
fn bad_arguments_are_a_usage_error() {
    let output = Test::new()
        .args(["validate", "--format", "yaml"])
        .run()
        .code(2);
    assert!(output.stderr.contains("--format"), "{}", output.stderr);
}

fn stem(file: &str) -> &str {
    let name = file.rsplit('/').next().unwrap_or(file);
    name.strip_suffix(".toml").unwrap_or(name)
}
