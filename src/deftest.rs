//! Definition tests (`exportd test`): each `[[tests]]` block of a definition feeds fixture rows
//! through the export's filter, column selection, computed columns and masks, in memory, and
//! checks the rows that come out. No store is opened and nothing is delivered, so a config
//! repository's CI can prove its PII rules with nothing but the definitions.
//!
//! The row path is the pipeline's own: [`crate::filter::Expr::matches`] for the filter and
//! [`Selection::project`] with a [`Masker`] for columns and masks, so a test cannot pass on
//! logic the daemon does not run.

use crate::config::ExportSpec;
use crate::config::export::{Kind, TestDef};
use crate::fields::{Masker, Selection};
use crate::value::Value;
use serde_json::{Map, Value as Json};
use std::path::Path;

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
    #[error("`kind = \"summary\"` exports aggregate in the store and cannot be tested row by row; remove the [[tests]] block")]
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
        let lookup = |name: &str| row.get(name).map_or(Value::Null, |v| cell(name, v));
        if spec.filter.as_ref().is_some_and(|f| !f.matches(&lookup)) {
            continue;
        }
        let mut source: Vec<Value> = selection
            .source_fields
            .iter()
            .map(|f| lookup(f))
            .collect();
        let mut out = Vec::new();
        selection.project(&mut source, &masker, &mut out);
        rows.push(out);
    }
    Ok((selection.header(), rows))
}

/// A fixture value as the store would return it: timestamps for time fields.
fn cell(name: &str, value: &Json) -> Value {
    let is_time = name.ends_with("_at") || name == "timestamp";
    match value {
        Json::String(text) if is_time => crate::filter::parse_timestamp(text)
            .map_or_else(|| Value::Text(text.clone()), Value::Timestamp),
        other => Value::from_json(other),
    }
}

fn run_one(spec: &ExportSpec, test: &TestDef) -> Result<Vec<String>, Error> {
    let mut input = test.rows.clone();
    if let Some(fixture) = &test.fixture {
        let base = spec.file.parent().unwrap_or(Path::new("."));
        input.extend(read_fixture(&base.join(fixture))?);
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
    let mut failures = Vec::new();
    if let Some(columns) = &test.columns
        && *columns != header
    {
        failures.push(format!("columns are {header:?}, expected {columns:?}"));
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
        for (i, row) in objects.iter().enumerate() {
            for (column, value) in row {
                if rule.column != "*" && rule.column != *column {
                    continue;
                }
                let text = match value {
                    Json::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if text.contains(&rule.pattern) {
                    failures.push(format!(
                        "row {}: column `{column}` contains `{}`: {text:?}",
                        i + 1,
                        rule.pattern
                    ));
                }
            }
        }
        if rule.column != "*" && !header.contains(&rule.column) {
            failures.push(format!(
                "never_contains names column `{}`, which the export does not write (columns: {}); check the name after renames",
                rule.column,
                header.join(", ")
            ));
        }
    }
    Ok(failures)
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
        if !same_row(got, want) {
            failures.push(format!(
                "row {}: got {}, expected {}",
                i + 1,
                Json::Object(got.clone()),
                Json::Object(want.clone())
            ));
        }
    }
    failures
}

/// Same columns and values; numbers compare by value (`12.5` equals `12.50`).
fn same_row(got: &Map<String, Json>, want: &Map<String, Json>) -> bool {
    got.len() == want.len()
        && want.iter().all(|(k, w)| match (got.get(k), w) {
            (Some(Json::Number(a)), Json::Number(b)) => a.as_f64() == b.as_f64(),
            (Some(a), b) => a == b,
            (None, _) => false,
        })
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
    use serde_json::json;

    fn row(value: Json) -> Map<String, Json> {
        value.as_object().cloned().expect("object")
    }

    #[test]
    fn numbers_compare_by_value_and_missing_columns_differ() {
        assert!(same_row(
            &row(json!({"a": 12.5, "b": "x"})),
            &row(json!({"b": "x", "a": 12.50}))
        ));
        assert!(!same_row(&row(json!({"a": 1, "b": 2})), &row(json!({"a": 1}))));
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
}
