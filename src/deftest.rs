//! Definition tests (`exportd test`): each `[[tests]]` block of a definition feeds fixture rows
//! through the export's filter, column selection, computed columns and masks, in memory, and
//! checks the rows that come out. No store is opened and nothing is delivered, so a config
//! repository's CI can prove its PII rules with nothing but the definitions.
//!
//! The row path is the pipeline's own: [`crate::filter::Expr::matches`] for the filter and
//! [`Selection::project`] with a [`Masker`] for columns and masks, so a test cannot pass on
//! logic the daemon does not run.

use crate::config::ExportSpec;
use crate::config::export::{Kind, NeverContains, TestDef, UnmaskedKind};
use crate::fields::{Masker, Selection};
use crate::value::Value;
use serde_json::{Map, Value as Json};
use std::path::{Path, PathBuf};

/// Why a test could not run at all (as opposed to failing an assertion).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The NDJSON fixture cannot be read.
    #[error("cannot read fixture `{path}`: {source}; paths are relative to the definition file")]
    Fixture {
        /// The path as resolved.
        path: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// A fixture line is not a JSON object.
    #[error("fixture `{path}` line {line}: {message}; each line must be one JSON object")]
    FixtureLine {
        /// The fixture file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// The parser's complaint.
        message: String,
    },
    /// Summaries aggregate in the store; there is no row path to test.
    #[error(
        "`kind = \"summary\"` exports aggregate in the store and cannot be tested row by row; remove the [[tests]] block"
    )]
    Summary,
    /// The selection leaves no column, or names one twice.
    #[error(transparent)]
    Fields(#[from] crate::fields::Error),
    /// `hash_key` cannot be resolved.
    #[error("{0}; `hash` masks need the key while testing too")]
    Secret(#[from] crate::config::secret::Error),
}

/// The result of one `[[tests]]` block.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    /// The definition file.
    pub file: PathBuf,
    /// Export name.
    pub export: String,
    /// The test's `name`.
    pub test: String,
    /// Every failed assertion, in words; empty when the test passed.
    pub failures: Vec<String>,
}

impl Outcome {
    /// Whether every assertion held.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Runs every `[[tests]]` block of `spec`.
pub fn run_all(spec: &ExportSpec) -> Vec<Outcome> {
    spec.def
        .tests
        .iter()
        .map(|test| {
            let failures = match run_one(spec, test) {
                Ok(failures) => failures,
                Err(e) => vec![e.to_string()],
            };
            Outcome {
                file: spec.file.clone(),
                export: spec.name.clone(),
                test: test.name.clone(),
                failures,
            }
        })
        .collect()
}

/// The output of the export for `input` rows: its header and rows.
pub fn transform(
    spec: &ExportSpec,
    input: &[Map<String, Json>],
) -> Result<(Vec<String>, Vec<Vec<Value>>), Error> {
    if spec.def.kind == Kind::Summary {
        return Err(Error::Summary);
    }
    let mut available: Vec<String> = Vec::new();
    for row in input {
        for key in row.keys() {
            if !available.contains(key) {
                available.push(key.clone());
            }
        }
    }
    let selection = Selection::new(&available, &spec.def.fields, &spec.computed)?;
    let hash_key = spec
        .def
        .fields
        .hash_key
        .as_ref()
        .map(|k| k.resolve())
        .transpose()?;
    let masker = Masker::new(hash_key);
    let mut rows = Vec::new();
    for row in input {
        let lookup = |name: &str| {
            row.get(name)
                .or_else(|| alias(spec.def.kind, name).and_then(|a| row.get(a)))
                .map_or(Value::Null, |v| cell(name, v))
        };
        if spec.filter.as_ref().is_some_and(|f| !f.matches(&lookup)) {
            continue;
        }
        let mut source: Vec<Value> = selection.source_fields.iter().map(|f| lookup(f)).collect();
        let mut out = Vec::new();
        selection.project(&mut source, &masker, &mut out);
        rows.push(out);
    }
    Ok((selection.header(), rows))
}

/// The other name the store answers to for `name` (`lead_id` is the lead's `id`, `timestamp`
/// its `created_at`), so a fixture may use either, as a filter or `include` may.
fn alias(kind: Kind, name: &str) -> Option<&'static str> {
    Some(match (kind, name) {
        (Kind::Leads, "lead_id") => "id",
        (Kind::Leads, "id") => "lead_id",
        (_, "timestamp") => "created_at",
        (_, "created_at") => "timestamp",
        (Kind::Events, "buyer") => "recipient",
        (Kind::Events, "recipient") => "buyer",
        _ => return None,
    })
}

/// A fixture value as the store would return it: timestamps for time fields, exact decimals
/// for money (`revenue = 45` computes like the store's `45.00`).
fn cell(name: &str, value: &Json) -> Value {
    let is_time = name.ends_with("_at") || name == "timestamp";
    let is_money = matches!(name, "revenue" | "cost" | "price");
    match value {
        Json::String(text) if is_time => crate::filter::parse_timestamp(text)
            .map_or_else(|| Value::Text(text.clone()), Value::Timestamp),
        Json::Number(n) if is_money => n
            .to_string()
            .parse::<rust_decimal::Decimal>()
            .map_or_else(|_| Value::from_json(value), Value::Decimal),
        other => Value::from_json(other),
    }
}

fn run_one(spec: &ExportSpec, test: &TestDef) -> Result<Vec<String>, Error> {
    let mut input = test.rows.clone();
    if let Some(fixture) = &test.fixture {
        let base = spec.file.parent().unwrap_or(Path::new("."));
        input.extend(read_fixture(&base.join(fixture))?);
    }
    let mut failures = Vec::new();
    let asserts = test.expect.is_some()
        || test.columns.is_some()
        || test.row_count.is_some()
        || !test.never_contains.is_empty()
        || !test.never_leaks.is_empty();
    if !asserts {
        failures.push(
            "the test asserts nothing: add `expect`, `columns`, `row_count`, `never_contains` or `never_leaks`".to_owned(),
        );
    }
    if input.is_empty() {
        failures.push(
            "the test has no fixture rows: add `rows = [{ … }]` or `fixture = \"rows.ndjson\"`"
                .to_owned(),
        );
        // Without rows there are no columns either; nothing else can be judged.
        return Ok(failures);
    }
    let (header, rows) = transform(spec, &input)?;
    let objects: Vec<Map<String, Json>> = rows
        .iter()
        .map(|row| {
            header
                .iter()
                .cloned()
                .zip(row.iter().map(Value::to_json))
                .collect()
        })
        .collect();
    if let Some(columns) = &test.columns
        && *columns != header
    {
        failures.push(format!(
            "columns are [{}], expected [{}]",
            header.join(", "),
            columns.join(", ")
        ));
    }
    if let Some(count) = test.row_count
        && count != rows.len() as u64
    {
        failures.push(format!(
            "{} row(s) passed the filter, expected {count}",
            rows.len()
        ));
    }
    if let Some(expected) = &test.expect {
        failures.extend(compare_rows(&objects, expected));
    }
    for rule in &test.never_contains {
        failures.extend(never_contains(rule, &header, &objects));
    }
    for field in &test.never_leaks {
        failures.extend(never_leaks(field, &input, &objects));
    }
    Ok(failures)
}

fn never_contains(
    rule: &NeverContains,
    header: &[String],
    rows: &[Map<String, Json>],
) -> Vec<String> {
    let mut failures = Vec::new();
    if rule.pattern.is_some() == rule.unmasked.is_some() {
        failures.push(format!(
            "never_contains for column `{}` needs exactly one of `pattern` or `unmasked`",
            rule.column
        ));
        return failures;
    }
    if rule.column != "*" && !header.contains(&rule.column) {
        failures.push(format!(
            "never_contains names column `{}`, which the export does not write (columns: {}); check the name after renames",
            rule.column,
            header.join(", ")
        ));
    }
    for (i, row) in rows.iter().enumerate() {
        for (column, value) in row {
            if rule.column != "*" && rule.column != *column {
                continue;
            }
            let text = match value {
                Json::String(s) => s.clone(),
                Json::Null => continue,
                other => other.to_string(),
            };
            if let Some(pattern) = &rule.pattern
                && text.contains(pattern.as_str())
            {
                failures.push(format!(
                    "row {}: column `{column}` contains `{pattern}`: {text:?}",
                    i + 1
                ));
            }
            if let Some(kind) = rule.unmasked
                && looks_unmasked(kind, &text)
            {
                failures.push(format!(
                    "row {}: column `{column}` holds an unmasked {}: {text:?}; check [fields] mask",
                    i + 1,
                    unmasked_name(kind)
                ));
            }
        }
    }
    failures
}

fn never_leaks(
    field: &str,
    input: &[Map<String, Json>],
    rows: &[Map<String, Json>],
) -> Vec<String> {
    let mut failures = Vec::new();
    let secrets: Vec<String> = input
        .iter()
        .filter_map(|row| match row.get(field)? {
            Json::String(s) => Some(s.clone()),
            Json::Null | Json::Bool(_) => None,
            other => Some(other.to_string()),
        })
        // One character matches nearly anything, masked or not; it proves nothing.
        .filter(|s| s.chars().count() > 1)
        .map(|s| s.to_lowercase())
        .collect();
    if secrets.is_empty() {
        failures.push(format!(
            "never_leaks names `{field}`, which no fixture row has (with more than one character); give the fixture rows a `{field}`"
        ));
    }
    for (i, row) in rows.iter().enumerate() {
        for (column, value) in row {
            let text = match value {
                Json::String(s) => s.to_lowercase(),
                other => other.to_string().to_lowercase(),
            };
            if let Some(secret) = secrets.iter().find(|s| text.contains(s.as_str())) {
                failures.push(format!(
                    "row {}: column `{column}` leaks fixture field `{field}` ({secret:?}): {value}",
                    i + 1
                ));
            }
        }
    }
    failures
}

fn unmasked_name(kind: UnmaskedKind) -> &'static str {
    match kind {
        UnmaskedKind::Email => "email address",
        UnmaskedKind::Phone => "phone number",
        UnmaskedKind::Ssn => "social security number",
    }
}

/// Whether `text` holds a personal value of `kind` in clear, judged by what the masks leave:
/// the email mask keeps one character of each dot-separated part of the local part, the
/// phone and SSN masks keep the last four digits.
pub fn looks_unmasked(kind: UnmaskedKind, text: &str) -> bool {
    match kind {
        UnmaskedKind::Email => text
            .char_indices()
            .filter(|(_, c)| *c == '@')
            .any(|(at, _)| {
                let local: String = text[..at]
                    .chars()
                    .rev()
                    .take_while(|c| c.is_alphanumeric() || "._%+-*'".contains(*c))
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                let domain = &text[at + 1..];
                domain.contains('.')
                    && local
                        .split('.')
                        .any(|part| part.chars().count() > 1 && !part.contains('*'))
            }),
        UnmaskedKind::Phone => longest_digit_run(text) >= 7,
        UnmaskedKind::Ssn => longest_digit_run(text) >= 9,
    }
}

/// The most digits in a row, reading through the separators numbers are written with.
fn longest_digit_run(text: &str) -> usize {
    let (mut best, mut run) = (0, 0);
    for c in text.chars() {
        if c.is_ascii_digit() {
            run += 1;
            best = best.max(run);
        } else if !" -().+/".contains(c) {
            run = 0;
        }
    }
    best
}

fn compare_rows(actual: &[Map<String, Json>], expected: &[Map<String, Json>]) -> Vec<String> {
    let mut failures = Vec::new();
    if actual.len() != expected.len() {
        failures.push(format!(
            "{} output row(s), expected {}",
            actual.len(),
            expected.len()
        ));
    }
    for (i, (got, want)) in actual.iter().zip(expected).enumerate() {
        if same_row(got, want) {
            continue;
        }
        for (column, w) in want {
            match got.get(column) {
                None => failures.push(format!(
                    "row {}: expected column `{column}`, which the export does not write",
                    i + 1
                )),
                Some(g) if !same_value(g, w) => failures.push(format!(
                    "row {}, column `{column}`: got {g}, expected {w}",
                    i + 1
                )),
                Some(_) => {}
            }
        }
        for (column, g) in got {
            if !want.contains_key(column) {
                failures.push(format!(
                    "row {}: column `{column}` = {g} is not in `expect`; list every output column",
                    i + 1
                ));
            }
        }
    }
    failures
}

fn same_value(got: &Json, want: &Json) -> bool {
    match (got, want) {
        (Json::Number(a), Json::Number(b)) => a.as_f64() == b.as_f64(),
        (a, b) => a == b,
    }
}

/// Same columns and values; numbers compare by value (`12.5` equals `12.50`).
fn same_row(got: &Map<String, Json>, want: &Map<String, Json>) -> bool {
    got.len() == want.len()
        && want
            .iter()
            .all(|(k, w)| got.get(k).is_some_and(|g| same_value(g, w)))
}

fn read_fixture(path: &Path) -> Result<Vec<Map<String, Json>>, Error> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| Error::Fixture {
        path: shown.clone(),
        source,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str::<Map<String, Json>>(line).map_err(|e| Error::FixtureLine {
                path: shown.clone(),
                line: i + 1,
                message: e.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DaemonConfig;
    use crate::config::validate::check_export;
    use serde_json::json;

    fn row(value: Json) -> Map<String, Json> {
        value.as_object().cloned().expect("object")
    }

    /// A definition with `body` appended (its [fields] and [[tests]]), checked as validate
    /// would; `dir` is where a fixture path resolves.
    fn spec_in(dir: &Path, body: &str) -> ExportSpec {
        let text = format!(
            "kind = \"leads\"\nwindow = \"previous_day\"\nfilter = 'outcome = \"success\"'\n\
             [[deliver]]\nto = \"local\"\npath = \"x/{{{{date}}}}.csv\"\n{body}"
        );
        let file = dir.join("crm.toml");
        let (spec, diags) = check_export("crm", &file, &text, &DaemonConfig::default());
        spec.unwrap_or_else(|| panic!("definition invalid: {diags:?}\n{text}"))
    }

    fn spec(body: &str) -> ExportSpec {
        spec_in(Path::new("."), body)
    }

    const ROWS: &str = r#"rows = [
  { id = "L1", outcome = "success", email = "ann.lee@example.com", phone_1 = "555-123-4567", revenue = 45, cost = 12.5 },
  { id = "L2", outcome = "failure", email = "bob@example.com", phone_1 = "555-987-6543", revenue = 0, cost = 3 },
]"#;

    fn failures_of(spec: &ExportSpec) -> Vec<String> {
        let outcomes = run_all(spec);
        assert_eq!(outcomes.len(), 1);
        outcomes[0].failures.clone()
    }

    #[test]
    fn a_missing_mask_fails_and_the_fixed_definition_passes() {
        let test = format!(
            "[[tests]]\nname = \"email is masked\"\n{ROWS}\n\
             never_contains = [{{ column = \"email\", unmasked = \"email\" }}]\n\
             never_leaks = [\"email\"]\n\
             expect = [{{ lead_id = \"L1\", email = \"a**.l**@example.com\", margin = 32.5 }}]\n"
        );
        let fields = "[fields]\ninclude = [\"lead_id\", \"email\"]\ncomputed = { margin = \"revenue - cost\" }\n";
        let wrong = spec(&format!("{fields}mask = {{ phone_1 = \"last4\" }}\n{test}"));
        assert_eq!(
            failures_of(&wrong),
            [
                "row 1, column `email`: got \"ann.lee@example.com\", expected \"a**.l**@example.com\"",
                "row 1: column `email` holds an unmasked email address: \"ann.lee@example.com\"; check [fields] mask",
                "row 1: column `email` leaks fixture field `email` (\"ann.lee@example.com\"): \"ann.lee@example.com\"",
            ]
        );
        let fixed = spec(&format!("{fields}mask = {{ email = \"email\" }}\n{test}"));
        assert_eq!(failures_of(&fixed), Vec::<String>::new());
    }

    #[test]
    fn the_filter_runs_and_aliases_resolve() {
        let spec = spec(&format!(
            "[fields]\ninclude = [\"lead_id\", \"timestamp\", \"revenue\"]\n\
             [[tests]]\nname = \"only sold leads\"\n{ROWS}\nrow_count = 1\n\
             columns = [\"lead_id\", \"timestamp\", \"revenue\"]\n\
             expect = [{{ lead_id = \"L1\", timestamp = \"2024-01-15T10:00:00Z\", revenue = 45.00 }}]\n"
        )
        .replace("{ id = \"L1\",", "{ id = \"L1\", created_at = \"2024-01-15T10:00:00Z\","));
        assert_eq!(failures_of(&spec), Vec::<String>::new());
        let (header, rows) = transform(&spec, &spec.def.tests[0].rows).unwrap();
        assert_eq!(header, ["lead_id", "timestamp", "revenue"]);
        // Money is exact like the store's, and the time field a timestamp, not text.
        assert_eq!(rows[0][2].to_string(), "45.00");
        assert!(matches!(rows[0][1], Value::Timestamp(_)));
    }

    #[test]
    fn a_computed_copy_of_a_masked_field_leaks() {
        let spec = spec(&format!(
            "[fields]\ninclude = [\"email\"]\nmask = {{ email = \"email\" }}\n\
             computed = {{ contact = \"upper(email)\" }}\n\
             [[tests]]\nname = \"no raw email anywhere\"\n{ROWS}\nnever_leaks = [\"email\"]\n"
        ));
        assert_eq!(
            failures_of(&spec),
            [
                "row 1: column `contact` leaks fixture field `email` (\"ann.lee@example.com\"): \"ANN.LEE@EXAMPLE.COM\""
            ]
        );
    }

    #[test]
    fn wrong_counts_columns_and_names_are_reported() {
        let spec = spec(&format!(
            "[fields]\ninclude = [\"lead_id\", \"email\"]\nmask = {{ email = \"email\" }}\n\
             [[tests]]\nname = \"shape\"\n{ROWS}\nrow_count = 2\ncolumns = [\"lead_id\"]\n\
             never_contains = [{{ column = \"mail\", pattern = \"@\" }}, {{ column = \"email\" }}]\n\
             expect = [{{ lead_id = \"L1\" }}]\n"
        ));
        assert_eq!(
            failures_of(&spec),
            [
                "columns are [lead_id, email], expected [lead_id]",
                "1 row(s) passed the filter, expected 2",
                "row 1: column `email` = \"a**.l**@example.com\" is not in `expect`; list every output column",
                "never_contains names column `mail`, which the export does not write (columns: lead_id, email); check the name after renames",
                "never_contains for column `email` needs exactly one of `pattern` or `unmasked`",
            ]
        );
    }

    #[test]
    fn a_test_that_asserts_nothing_or_has_no_rows_fails() {
        let spec = spec("[[tests]]\nname = \"empty\"\n");
        let failures = failures_of(&spec);
        assert_eq!(failures.len(), 2, "{failures:#?}");
        assert!(failures[0].starts_with("the test asserts nothing"));
        assert!(failures[1].starts_with("the test has no fixture rows"));
    }

    #[test]
    fn fixture_files_are_read_beside_the_definition() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("rows.ndjson"),
            "{\"id\":\"L1\",\"outcome\":\"success\",\"ssn\":\"123-45-6789\"}\n\n\
             {\"id\":\"L2\",\"outcome\":\"success\",\"ssn\":\"987-65-4321\"}\n",
        )
        .unwrap();
        let body = "[fields]\ninclude = [\"lead_id\", \"ssn\"]\nmask = { ssn = \"ssn\" }\n\
                    [[tests]]\nname = \"ssn masked\"\nfixture = \"rows.ndjson\"\n\
                    never_contains = [{ column = \"ssn\", unmasked = \"ssn\" }]\n\
                    expect = [{ lead_id = \"L1\", ssn = \"XXX-XX-6789\" }, { lead_id = \"L2\", ssn = \"XXX-XX-4321\" }]\n";
        assert_eq!(
            failures_of(&spec_in(dir.path(), body)),
            Vec::<String>::new()
        );
        std::fs::write(dir.path().join("rows.ndjson"), "{\"id\":\"L1\"}\n[1]\n").unwrap();
        let failures = failures_of(&spec_in(dir.path(), body));
        assert_eq!(failures.len(), 1);
        assert!(
            failures[0].contains("rows.ndjson` line 2:")
                && failures[0].ends_with("each line must be one JSON object"),
            "{failures:?}"
        );
        std::fs::remove_file(dir.path().join("rows.ndjson")).unwrap();
        let failures = failures_of(&spec_in(dir.path(), body));
        assert!(
            failures[0].starts_with("cannot read fixture"),
            "{failures:?}"
        );
    }

    #[test]
    fn unmasked_shapes() {
        use UnmaskedKind::*;
        assert!(looks_unmasked(Email, "ann.lee@example.com"));
        assert!(looks_unmasked(Email, "contact: bob@example.com"));
        assert!(!looks_unmasked(Email, "a**.l**@example.com"));
        assert!(!looks_unmasked(Email, "b**@example.com"));
        assert!(!looks_unmasked(Email, "no address"));
        assert!(looks_unmasked(Phone, "(555) 123-4567"));
        assert!(looks_unmasked(Phone, "+1 555 123 4567"));
        assert!(!looks_unmasked(Phone, "XXX-XXX-4567"));
        assert!(looks_unmasked(Ssn, "123-45-6789"));
        assert!(looks_unmasked(Ssn, "123456789"));
        assert!(!looks_unmasked(Ssn, "XXX-XX-6789"));
        // The masks themselves pass their own check.
        assert!(!looks_unmasked(
            Email,
            &crate::fields::mask::email("john.doe@example.com")
        ));
    }

    #[test]
    fn numbers_compare_by_value_and_missing_columns_differ() {
        assert!(same_row(
            &row(json!({"a": 12.5, "b": "x"})),
            &row(json!({"b": "x", "a": 12.50}))
        ));
        assert!(!same_row(
            &row(json!({"a": 1, "b": 2})),
            &row(json!({"a": 1}))
        ));
    }

    #[test]
    fn time_fields_become_timestamps() {
        assert!(matches!(
            cell("created_at", &json!("2024-01-15T10:00:00Z")),
            Value::Timestamp(_)
        ));
        assert!(matches!(
            cell("city", &json!("2024-01-15T10:00:00Z")),
            Value::Text(_)
        ));
    }

    #[test]
    fn summaries_cannot_be_tested_row_by_row() {
        let text = "kind = \"summary\"\nwindow = \"previous_day\"\n\
                    [summary]\ngroup_by = [\"date\"]\nmetrics = { leads = \"count\" }\n\
                    [[deliver]]\nto = \"local\"\npath = \"s/{{date}}.csv\"\n\
                    [[tests]]\nname = \"x\"\nrows = [{ id = \"L1\" }]\nrow_count = 1\n";
        let (spec, diags) = check_export("s", Path::new("s.toml"), text, &DaemonConfig::default());
        let spec = spec.unwrap_or_else(|| panic!("{diags:?}"));
        assert!(failures_of(&spec)[0].contains("cannot be tested row by row"));
    }
}
