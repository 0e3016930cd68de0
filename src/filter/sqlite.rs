//! The SQLite dialect for filter push-down, tied to the embedded store's layout.
//!
//! Table `leads`:
//! `id TEXT`, `created_at INTEGER` (unix epoch milliseconds UTC), `updated_at INTEGER` (ms),
//! `source TEXT`, `flow TEXT`, `outcome TEXT`, `reason TEXT`, `revenue INTEGER`,
//! `cost INTEGER` (money in 1/10000 units: 45.00 is stored as 450000), and `doc TEXT`, a JSON
//! object with flat dotted keys (`{"email.valid": true, "state": "CA", "lead_score": 82}`).
//! Fields: `id`/`lead_id`, `timestamp`/`created_at`, `updated_at`, `source`, `flow`,
//! `outcome`, `reason`, `revenue`, `cost`; any other path is a key of `doc`.
//!
//! Table `events`:
//! `id TEXT`, `type TEXT`, `timestamp INTEGER` (ms), `lead_id TEXT`, `outcome TEXT`,
//! `reason TEXT`, `recipient TEXT`, `price INTEGER` (1/10000 units), `duration_ms INTEGER`,
//! `metadata TEXT` and `lead TEXT` (flat JSON objects).
//! Fields: the columns, `created_at` for `timestamp`, `buyer` for `recipient`,
//! `metadata.<key>` and `lead.<key>` for JSON keys; other paths are not pushed down.

use super::eval::{LikePart, like_parts, parse_timestamp};
use super::{FieldType, Func, JsonKind, SqlDialect, SqlField};
use crate::value::Value;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

/// Money columns hold this many units per currency unit.
const MONEY_SCALE: i64 = 10_000;

/// SQLite push-down for the `leads` or `events` table (see the module docs for the layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqliteDialect {
    table: Table,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    Leads,
    Events,
}

/// Where a field lives: a typed column or a key inside a JSON column. Shared with the
/// SQLite store, which reads JSON columns itself instead of calling `json_extract` per field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location<'a> {
    /// A column and its storage type.
    Column(&'static str, FieldType),
    /// A key of a JSON column: (column, key).
    Json(&'static str, &'a str),
}

/// The lexer only produces paths of this shape; re-checked here because the path is embedded
/// in a JSON path string literal and must not be able to close the quotes.
fn is_safe_path(path: &str) -> bool {
    let mut segments = path.split('.');
    let first_ok = segments.next().is_some_and(|s| {
        s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    });
    first_ok
        && segments
            .all(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

impl SqliteDialect {
    /// Filters on the `leads` table.
    pub fn leads() -> Self {
        SqliteDialect {
            table: Table::Leads,
        }
    }

    /// Filters on the `events` table.
    pub fn events() -> Self {
        SqliteDialect {
            table: Table::Events,
        }
    }

    /// Where `path` is stored, or `None` for a path that is not a field of this table.
    pub fn locate<'a>(&self, path: &'a str) -> Option<Location<'a>> {
        use FieldType::*;
        use Location::Column;
        if !is_safe_path(path) {
            return None;
        }
        Some(match (self.table, path) {
            (_, "id") => Column("id", Text),
            (_, "outcome") => Column("outcome", Text),
            (_, "reason") => Column("reason", Text),
            (Table::Leads, "lead_id") => Column("id", Text),
            (Table::Leads, "timestamp" | "created_at") => Column("created_at", Timestamp),
            (Table::Leads, "updated_at") => Column("updated_at", Timestamp),
            (Table::Leads, "source") => Column("source", Text),
            (Table::Leads, "flow") => Column("flow", Text),
            (Table::Leads, "revenue") => Column("revenue", Money),
            (Table::Leads, "cost") => Column("cost", Money),
            (Table::Leads, key) => Location::Json("doc", key),
            (Table::Events, "type") => Column("type", Text),
            (Table::Events, "timestamp" | "created_at") => Column("timestamp", Timestamp),
            (Table::Events, "lead_id") => Column("lead_id", Text),
            (Table::Events, "recipient" | "buyer") => Column("recipient", Text),
            (Table::Events, "price") => Column("price", Money),
            (Table::Events, "duration_ms") => Column("duration_ms", Int),
            (Table::Events, other) => {
                if let Some(key) = other.strip_prefix("metadata.") {
                    Location::Json("metadata", key)
                } else {
                    Location::Json("lead", other.strip_prefix("lead.")?)
                }
            }
        })
    }
}

fn json_path(column: &str, key: &str) -> String {
    format!("\"{column}\", '$.\"{key}\"'")
}

/// Epoch milliseconds as fractional seconds, so instants before 1970 are not rounded up.
fn seconds(ms: &str) -> String {
    format!("{ms} / 1000.0, 'unixepoch'")
}

impl SqlDialect for SqliteDialect {
    fn field(&self, path: &str) -> Option<SqlField> {
        Some(match self.locate(path)? {
            Location::Column(name, ty) => SqlField {
                expr: format!("\"{name}\""),
                ty,
            },
            Location::Json(column, key) => SqlField {
                expr: format!("json_extract({})", json_path(column, key)),
                ty: FieldType::Json,
            },
        })
    }

    fn json_field(&self, path: &str, kind: JsonKind) -> Option<String> {
        let Location::Json(column, key) = self.locate(path)? else {
            return None;
        };
        let at = json_path(column, key);
        let types = match kind {
            JsonKind::Number => "'integer', 'real'",
            JsonKind::Text => "'text'",
            JsonKind::Bool => "'true', 'false'",
        };
        Some(format!(
            "CASE WHEN json_type({at}) IN ({types}) THEN json_extract({at}) END"
        ))
    }

    fn placeholder(&self, _n: usize) -> String {
        "?".into()
    }

    /// lower/upper stay in Rust: SQLite's only fold ASCII, Rust's fold all of Unicode.
    fn function(&self, func: Func, arg: &str) -> Option<String> {
        match func {
            Func::Hour => Some(format!("CAST(strftime('%H', {}) AS INTEGER)", seconds(arg))),
            Func::Weekday => Some(format!(
                "((CAST(strftime('%w', {}) AS INTEGER) + 6) % 7 + 1)",
                seconds(arg)
            )),
            Func::Date => Some(format!("strftime('%Y-%m-%d', {})", seconds(arg))),
            Func::Length => Some(format!("length({arg})")),
            Func::Lower | Func::Upper | Func::Coalesce => None,
        }
    }

    /// SQLite's LIKE ignores ASCII case, so the pattern is translated to a GLOB.
    fn like(&self, pattern: &str) -> Option<(&'static str, String)> {
        let mut glob = String::new();
        for part in like_parts(pattern) {
            match part {
                LikePart::Any => glob.push('*'),
                LikePart::One => glob.push('?'),
                LikePart::Char(c @ ('*' | '?' | '[')) => glob.extend(['[', c, ']']),
                LikePart::Char(c) => glob.push(c),
            }
        }
        Some(("GLOB", glob))
    }

    fn bind(&self, literal: &Value, ty: FieldType) -> Option<Value> {
        use FieldType as T;
        let whole = |d: &Decimal| (d.fract().is_zero()).then(|| d.to_i64()).flatten();
        match (ty, literal) {
            (_, Value::Null) => Some(Value::Null),
            (T::Timestamp, Value::Text(s)) => {
                let t = parse_timestamp(s)?;
                // Sub-millisecond literals cannot be compared exactly with ms columns.
                (t.timestamp_subsec_nanos() % 1_000_000 == 0)
                    .then(|| Value::Int(t.timestamp_millis()))
            }
            (T::Money, Value::Int(i)) => i.checked_mul(MONEY_SCALE).map(Value::Int),
            (T::Money, Value::Decimal(d)) => {
                whole(&d.checked_mul(Decimal::from(MONEY_SCALE))?).map(Value::Int)
            }
            (T::Int | T::Json, Value::Int(i)) => Some(Value::Int(*i)),
            (T::Int, Value::Decimal(d)) => whole(d).map(Value::Int),
            (T::Json, Value::Decimal(d)) => d.to_f64().map(Value::Float),
            (T::Text | T::Json, Value::Text(s)) => Some(Value::Text(s.clone())),
            // json_extract returns 1/0 for JSON true/false.
            (T::Bool | T::Json, Value::Bool(b)) => Some(Value::Int(i64::from(*b))),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse_filter, push_down};
    use super::*;

    fn sql(dialect: SqliteDialect, src: &str) -> (String, Vec<Value>, Option<String>) {
        let (frag, residual) = push_down(&parse_filter(src).unwrap(), &dialect);
        let frag = frag.unwrap_or(super::super::SqlFragment {
            sql: String::new(),
            params: vec![],
        });
        (frag.sql, frag.params, residual.map(|r| r.to_string()))
    }

    #[test]
    fn leads_columns_money_and_timestamps() {
        let (s, p, r) = sql(
            SqliteDialect::leads(),
            r#"timestamp >= "2024-01-01" AND created_at < "2024-02-01T00:00:00Z" AND revenue > 0.5 AND cost <= 12 AND lead_id = 'L1' AND outcome = "success""#,
        );
        assert_eq!(
            s,
            r#""created_at" >= ? AND "created_at" < ? AND "revenue" > ? AND "cost" <= ? AND "id" = ? AND "outcome" = ?"#
        );
        assert_eq!(
            p,
            [
                Value::Int(1_704_067_200_000),
                Value::Int(1_706_745_600_000),
                Value::Int(5_000),
                Value::Int(120_000),
                Value::Text("L1".into()),
                Value::Text("success".into()),
            ]
        );
        assert_eq!(r, None);
    }

    #[test]
    fn leads_json_fields_and_functions() {
        let (s, p, r) = sql(
            SqliteDialect::leads(),
            "state IN ('CA', 'TX') AND email.valid = true AND hour(timestamp) >= 9 AND weekday(created_at) < 6 AND date(updated_at) = '2024-01-15' AND lower(source) = 'web' AND revenue > 0.00001",
        );
        let state = r#"CASE WHEN json_type("doc", '$."state"') IN ('text') THEN json_extract("doc", '$."state"') END"#;
        let valid = r#"CASE WHEN json_type("doc", '$."email.valid"') IN ('true', 'false') THEN json_extract("doc", '$."email.valid"') END"#;
        let hour = r#"CAST(strftime('%H', "created_at" / 1000.0, 'unixepoch') AS INTEGER)"#;
        let weekday = r#"((CAST(strftime('%w', "created_at" / 1000.0, 'unixepoch') AS INTEGER) + 6) % 7 + 1)"#;
        let date = r#"strftime('%Y-%m-%d', "updated_at" / 1000.0, 'unixepoch')"#;
        assert_eq!(
            s,
            format!(
                "{state} IN (?, ?) AND {valid} = ? AND {hour} >= ? AND {weekday} < ? AND {date} = ?"
            )
        );
        assert_eq!(p[2], Value::Int(1));
        assert_eq!(
            r.as_deref(),
            Some(r#"lower(source) = "web" AND revenue > 0.00001"#)
        );
    }

    #[test]
    fn events_fields() {
        let d = SqliteDialect::events();
        let (s, p, r) = sql(
            d,
            "buyer LIKE 'Acme*%' AND price >= 1.25 AND metadata.attempt > 1 AND lead.email.valid IS NOT NULL AND duration_ms < 100 AND other = 1",
        );
        assert_eq!(
            s,
            r#""recipient" GLOB ? AND "price" >= ? AND CASE WHEN json_type("metadata", '$."attempt"') IN ('integer', 'real') THEN json_extract("metadata", '$."attempt"') END > ? AND json_extract("lead", '$."email.valid"') IS NOT NULL AND "duration_ms" < ?"#
        );
        assert_eq!(p[..2], [Value::Text("Acme[*]*".into()), Value::Int(12_500)]);
        assert_eq!(r.as_deref(), Some("other = 1"));
        assert_eq!(
            d.field("created_at").map(|f| f.expr).as_deref(),
            Some("\"timestamp\"")
        );
    }

    #[test]
    fn unsafe_paths_are_refused() {
        let d = SqliteDialect::leads();
        for bad in ["a'b", "a.\"b", "", "1a", "a..b", "a.", "x y"] {
            assert_eq!(d.field(bad), None, "{bad}");
            assert_eq!(d.json_field(bad, JsonKind::Text), None, "{bad}");
        }
        assert!(d.field("appended.geo.city").is_some());
    }

    #[test]
    fn like_becomes_a_case_sensitive_glob() {
        let d = SqliteDialect::leads();
        assert_eq!(
            d.like("a%b_c\\%[?]"),
            Some(("GLOB", "a*b?c%[[][?]]".to_string()))
        );
        let (s, p, _) = sql(d, "source NOT LIKE '%x'");
        assert_eq!(
            (s.as_str(), p),
            (r#""source" NOT GLOB ?"#, vec![Value::Text("*x".into())])
        );
    }
}
