//! A parsed TOML file that remembers where every key and value was written, so a problem found
//! later (by the JSON Schema, by serde, by a semantic check) can be reported at its line and
//! column.

use super::diagnostic::{Diagnostic, Severity};
use std::ops::Range;
use std::path::Path;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One step of a path into the document: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// A key of a table.
    Key(String),
    /// An index into an array (of tables).
    Index(usize),
}

impl From<&str> for Seg {
    fn from(key: &str) -> Seg {
        Seg::Key(key.to_owned())
    }
}

impl From<usize> for Seg {
    fn from(index: usize) -> Seg {
        Seg::Index(index)
    }
}

/// Builds a path: `path!["deliver", 0, "bucket"]`.
#[macro_export]
macro_rules! path {
    ($($seg:expr),* $(,)?) => { [$($crate::config::source::Seg::from($seg)),*] };
}

/// Whether a diagnostic points at a key or at its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The key (`bukcet = …`): unknown keys.
    Key,
    /// The value: bad values.
    Value,
}

/// A TOML document with spans.
pub struct Source<'a> {
    file: &'a Path,
    text: &'a str,
    root: Spanned<DeTable<'a>>,
}

impl<'a> Source<'a> {
    /// Parses TOML; a syntax error becomes a diagnostic at its position.
    pub fn parse(file: &'a Path, text: &'a str) -> Result<Source<'a>, Diagnostic> {
        match DeTable::parse(text) {
            Ok(root) => Ok(Source { file, text, root }),
            Err(e) => {
                let offset = e.span().map(|s| s.start).unwrap_or(0);
                let (line, column) = line_col(text, offset);
                Err(Diagnostic {
                    file: file.to_path_buf(),
                    line,
                    column,
                    severity: Severity::Error,
                    message: format!("TOML syntax: {}", e.message().trim_end()),
                    help: None,
                })
            }
        }
    }

    /// The document as JSON, for the JSON Schema validator.
    pub fn to_json(&self) -> serde_json::Value {
        table_to_json(self.root.get_ref())
    }

    /// The byte range of the key or value at `path`. A path that does not exist (a missing
    /// key) resolves to the deepest part that does, so "missing key" points at its table.
    pub fn span(&self, path: &[Seg], part: Part) -> Range<usize> {
        let mut current: Option<&Spanned<DeValue<'a>>> = None;
        let mut best = 0..0;
        for (i, seg) in path.iter().enumerate() {
            let last = i + 1 == path.len();
            let table = match current.map(Spanned::get_ref) {
                None => Some(self.root.get_ref()),
                Some(DeValue::Table(t)) => Some(t),
                _ => None,
            };
            let array = match current.map(Spanned::get_ref) {
                Some(DeValue::Array(a)) => Some(a),
                _ => None,
            };
            match (seg, table, array) {
                (Seg::Key(k), Some(t), _) => {
                    let Some((key, v)) = t.iter().find(|(key, _)| key.get_ref() == k) else {
                        return best;
                    };
                    best = if last && part == Part::Value {
                        v.span()
                    } else {
                        key.span()
                    };
                    current = Some(v);
                }
                (Seg::Index(n), _, Some(a)) => {
                    let Some(v) = a.get(*n) else {
                        return best;
                    };
                    best = v.span();
                    current = Some(v);
                }
                _ => return best,
            }
        }
        best
    }

    /// A diagnostic at the key or value at `path`.
    pub fn error_at(&self, path: &[Seg], part: Part, message: impl Into<String>) -> Diagnostic {
        let offset = self.span(path, part).start;
        self.error_at_offset(offset, message)
    }

    /// A diagnostic at a byte offset of the file.
    pub fn error_at_offset(&self, offset: usize, message: impl Into<String>) -> Diagnostic {
        let (line, column) = line_col(self.text, offset);
        Diagnostic {
            file: self.file.to_path_buf(),
            line,
            column,
            severity: Severity::Error,
            message: message.into(),
            help: None,
        }
    }

    /// The byte offset where the value at `path` starts, inside its quotes for a string, so a
    /// column inside the string (a filter's error column) maps to a column of the file.
    pub fn string_start(&self, path: &[Seg]) -> usize {
        let span = self.span(path, Part::Value);
        let raw = &self.text[span.clone()];
        let quote_len = if raw.starts_with("'''") || raw.starts_with("\"\"\"") {
            3
        } else if raw.starts_with('\'') || raw.starts_with('"') {
            1
        } else {
            0
        };
        span.start + quote_len
    }

    /// The file.
    pub fn file(&self) -> &Path {
        self.file
    }

    /// The text.
    pub fn text(&self) -> &str {
        self.text
    }
}

/// 1-based line and character column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

fn table_to_json(table: &DeTable<'_>) -> serde_json::Value {
    serde_json::Value::Object(
        table
            .iter()
            .map(|(k, v)| (k.get_ref().to_string(), value_to_json(v.get_ref())))
            .collect(),
    )
}

fn value_to_json(value: &DeValue<'_>) -> serde_json::Value {
    match value {
        DeValue::String(s) => serde_json::Value::String(s.to_string()),
        DeValue::Integer(i) => i64::from_str_radix(&i.as_str().replace('_', ""), i.radix())
            .map(serde_json::Value::from)
            .unwrap_or(serde_json::Value::Null),
        DeValue::Float(f) => f
            .as_str()
            .replace('_', "")
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        DeValue::Boolean(b) => serde_json::Value::Bool(*b),
        DeValue::Datetime(d) => serde_json::Value::String(d.to_string()),
        DeValue::Array(a) => a.iter().map(|v| value_to_json(v.get_ref())).collect(),
        DeValue::Table(t) => table_to_json(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "kind = \"leads\"\nwindow = \"previous_day\"\n\n[[deliver]]\nto = \"s3\"\nbukcet = \"x\"\n\n[[deliver]]\nto = \"local\"\npath = \"a/{{date}}\"\n";

    #[test]
    fn spans_of_nested_keys_and_values() {
        let file = Path::new("daily.toml");
        let src = Source::parse(file, DOC).unwrap();
        let d = src.error_at(&path!["deliver", 0, "bukcet"], Part::Key, "unknown key");
        assert_eq!((d.line, d.column), (6, 1));
        let d = src.error_at(&path!["deliver", 1, "path"], Part::Value, "bad");
        assert_eq!((d.line, d.column), (10, 8));
        let d = src.error_at(&path!["window"], Part::Value, "bad");
        assert_eq!((d.line, d.column), (2, 10));
        assert_eq!(src.to_json()["deliver"][1]["to"], "local");
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = Source::parse(Path::new("x.toml"), "a = 1\nb = = 2\n")
            .err()
            .unwrap();
        assert_eq!(err.line, 2);
    }
}
