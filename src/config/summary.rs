//! Summary metrics (`count`, `count where …`, `sum revenue`, …) and grouping keys of
//! `kind = "summary"` exports.

use crate::filter::{self, Expr};

/// Keys a summary can be grouped by.
pub const SUMMARY_GROUPS: &[&str] = &[
    "date", "hour", "week", "month", "source", "flow", "outcome", "state", "buyer",
];

/// One metric column.
#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    /// Number of rows in the group.
    Count,
    /// Number of rows in the group matching a filter.
    CountWhere(Expr),
    /// Sum of a field (`margin` = revenue − cost).
    Sum(String),
    /// Average of a field.
    Avg(String),
    /// Smallest value of a field.
    Min(String),
    /// Largest value of a field.
    Max(String),
}

impl Metric {
    /// Parses `count`, `count where FILTER`, `sum FIELD`, `avg FIELD`, `min FIELD`, `max FIELD`.
    pub fn parse(text: &str) -> Result<Metric, String> {
        let text = text.trim();
        let (word, rest) = text
            .split_once(char::is_whitespace)
            .map(|(w, r)| (w, r.trim()))
            .unwrap_or((text, ""));
        let field = |rest: &str| -> Result<String, String> {
            let valid = !rest.is_empty()
                && rest
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
            if valid {
                Ok(rest.to_owned())
            } else {
                Err(format!(
                    "`{word}` needs one field name, such as `{word} revenue`"
                ))
            }
        };
        match word.to_ascii_lowercase().as_str() {
            "count" if rest.is_empty() => Ok(Metric::Count),
            "count" => {
                let filter_text = rest
                    .strip_prefix("where")
                    .or_else(|| rest.strip_prefix("WHERE"))
                    .ok_or("write `count` or `count where FILTER`")?;
                filter::parse_filter(filter_text)
                    .map(Metric::CountWhere)
                    .map_err(|e| format!("in `count where`: {}", e.message))
            }
            "sum" => field(rest).map(Metric::Sum),
            "avg" => field(rest).map(Metric::Avg),
            "min" => field(rest).map(Metric::Min),
            "max" => field(rest).map(Metric::Max),
            _ => Err(format!(
                "unknown metric `{word}`: use count, count where FILTER, sum, avg, min or max"
            )),
        }
    }
}
