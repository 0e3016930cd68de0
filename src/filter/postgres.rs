//! The PostgreSQL dialect for filter push-down, tied to the PostgreSQL store's layout.
//!
//! The tables have the same columns as the SQLite store's (see [`super::SqliteDialect`], whose
//! `locate` decides where a field lives for both), with native types: `created_at`,
//! `updated_at` and `timestamp` are `TIMESTAMPTZ`, money is `NUMERIC(18,4)`, and `doc`,
//! `metadata` and `lead` are `JSONB` objects with flat dotted keys, read with `->>` (one key,
//! dots included: `doc->>'email.valid'`).

use super::eval::{LikePart, like_parts, parse_timestamp};
use super::{FieldType, Func, JsonKind, Location, SqlDialect, SqlField, SqliteDialect};
use crate::value::Value;
use rust_decimal::Decimal;

/// PostgreSQL push-down for the `leads` or `events` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostgresDialect {
    layout: SqliteDialect,
}

impl PostgresDialect {
    /// Filters on the `leads` table.
    pub fn leads() -> Self {
        PostgresDialect {
            layout: SqliteDialect::leads(),
        }
    }

    /// Filters on the `events` table.
    pub fn events() -> Self {
        PostgresDialect {
            layout: SqliteDialect::events(),
        }
    }

    /// Where `path` is stored (the layout is the same as SQLite's).
    pub fn locate<'a>(&self, path: &'a str) -> Option<Location<'a>> {
        self.layout.locate(path)
    }
}

/// `"doc"->'key'`: the JSONB value (JSON null stays a JSON value). `locate` only returns keys
/// made of letters, digits, `_` and `.`, so the key cannot close the string literal.
pub fn jsonb_value(column: &str, key: &str) -> String {
    format!("\"{column}\"->'{key}'")
}

/// `"doc"->>'key'`: the value as text, SQL NULL for a missing key or a JSON null.
fn json_text(column: &str, key: &str) -> String {
    format!("(\"{column}\"->>'{key}')")
}

fn utc(ts: &str) -> String {
    format!("({ts} AT TIME ZONE 'UTC')")
}

impl SqlDialect for PostgresDialect {
    fn field(&self, path: &str) -> Option<SqlField> {
        Some(match self.locate(path)? {
            Location::Column(name, ty) => SqlField {
                expr: format!("\"{name}\""),
                ty,
            },
            Location::Json(column, key) => SqlField {
                expr: json_text(column, key),
                ty: FieldType::Json,
            },
        })
    }

    fn json_field(&self, path: &str, kind: JsonKind) -> Option<String> {
        let Location::Json(column, key) = self.locate(path)? else {
            return None;
        };
        let at = jsonb_value(column, key);
        let text = json_text(column, key);
        Some(match kind {
            JsonKind::Number => {
                format!("CASE WHEN jsonb_typeof({at}) = 'number' THEN {text}::numeric END")
            }
            JsonKind::Text => format!("CASE WHEN jsonb_typeof({at}) = 'string' THEN {text} END"),
            JsonKind::Bool => {
                format!("CASE WHEN jsonb_typeof({at}) = 'boolean' THEN {text}::boolean END")
            }
        })
    }

    fn placeholder(&self, n: usize) -> String {
        format!("${n}")
    }

    /// lower/upper stay in Rust: PostgreSQL folds case by the database's collation, Rust by
    /// Unicode, and the two differ for some letters.
    fn function(&self, func: Func, arg: &str) -> Option<String> {
        match func {
            Func::Hour => Some(format!("EXTRACT(HOUR FROM {})::int8", utc(arg))),
            Func::Weekday => Some(format!("EXTRACT(ISODOW FROM {})::int8", utc(arg))),
            Func::Date => Some(format!("to_char({}, 'YYYY-MM-DD')", utc(arg))),
            Func::Length => Some(format!("char_length({arg})::int8")),
            Func::Lower | Func::Upper | Func::Coalesce => None,
        }
    }

    /// PostgreSQL's LIKE is case-sensitive with `\` as its escape, like the filter language;
    /// the pattern is rebuilt from its parts anyway so both always agree on escapes.
    fn like(&self, pattern: &str) -> Option<(&'static str, String)> {
        let mut out = String::new();
        for part in like_parts(pattern) {
            match part {
                LikePart::Any => out.push('%'),
                LikePart::One => out.push('_'),
                LikePart::Char(c @ ('%' | '_' | '\\')) => out.extend(['\\', c]),
                LikePart::Char(c) => out.push(c),
            }
        }
        Some(("LIKE", out))
    }

    fn bind(&self, literal: &Value, ty: FieldType) -> Option<Value> {
        use FieldType as T;
        match (ty, literal) {
            (_, Value::Null) => Some(Value::Null),
            (T::Timestamp, Value::Text(s)) => parse_timestamp(s).map(Value::Timestamp),
            (T::Money, Value::Int(i)) => Some(Value::Decimal(Decimal::from(*i))),
            (T::Money | T::Json, Value::Decimal(d)) => Some(Value::Decimal(*d)),
            (T::Int | T::Json, Value::Int(i)) => Some(Value::Int(*i)),
            (T::Int, Value::Decimal(d)) if d.fract().is_zero() => {
                i64::try_from(*d).ok().map(Value::Int)
            }
            (T::Text | T::Json, Value::Text(s)) => Some(Value::Text(s.clone())),
            (T::Bool | T::Json, Value::Bool(b)) => Some(Value::Bool(*b)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{SqlFragment, parse_filter, push_down};
    use super::*;

    fn sql(dialect: PostgresDialect, src: &str) -> (String, Vec<Value>, Option<String>) {
        let (frag, residual) = push_down(&parse_filter(src).expect("filter"), &dialect);
        let frag = frag.unwrap_or(SqlFragment {
            sql: String::new(),
            params: vec![],
        });
        (frag.sql, frag.params, residual.map(|r| r.to_string()))
    }

    #[test]
    fn columns_use_numbered_placeholders_and_native_types() {
        let (s, p, r) = sql(
            PostgresDialect::leads(),
            r#"timestamp >= "2024-01-01" AND revenue > 0.5 AND cost <= 12 AND lead_id = 'L1'"#,
        );
        assert_eq!(
            s,
            r#""created_at" >= $1 AND "revenue" > $2 AND "cost" <= $3 AND "id" = $4"#
        );
        assert_eq!(
            p,
            [
                Value::Timestamp("2024-01-01T00:00:00Z".parse().expect("time")),
                Value::Decimal("0.5".parse().expect("decimal")),
                Value::Decimal(Decimal::from(12)),
                Value::Text("L1".into()),
            ]
        );
        assert_eq!(r, None);
    }

    #[test]
    fn json_keys_are_type_guarded_jsonb_extractions() {
        let (s, p, r) = sql(
            PostgresDialect::leads(),
            "state IN ('CA', 'TX') AND email.valid = true AND score >= 70 AND city IS NULL AND hour(timestamp) >= 9 AND lower(source) = 'web'",
        );
        assert_eq!(
            s,
            concat!(
                r#"CASE WHEN jsonb_typeof("doc"->'state') = 'string' THEN ("doc"->>'state') END IN ($1, $2)"#,
                r#" AND CASE WHEN jsonb_typeof("doc"->'email.valid') = 'boolean' THEN ("doc"->>'email.valid')::boolean END = $3"#,
                r#" AND CASE WHEN jsonb_typeof("doc"->'score') = 'number' THEN ("doc"->>'score')::numeric END >= $4"#,
                r#" AND ("doc"->>'city') IS NULL"#,
                r#" AND EXTRACT(HOUR FROM ("created_at" AT TIME ZONE 'UTC'))::int8 >= $5"#,
            )
        );
        assert_eq!(p[2], Value::Bool(true));
        assert_eq!(r.as_deref(), Some(r#"lower(source) = "web""#));
    }

    #[test]
    fn injection_attempts_are_parameters_and_paths_are_checked() {
        let (s, p, _) = sql(
            PostgresDialect::leads(),
            r#"state = "CA'; DROP TABLE leads; --""#,
        );
        assert_eq!(
            s,
            r#"CASE WHEN jsonb_typeof("doc"->'state') = 'string' THEN ("doc"->>'state') END = $1"#
        );
        assert_eq!(p, [Value::Text("CA'; DROP TABLE leads; --".into())]);
        for bad in ["a'b", "a.\"b", "", "1a", "x y"] {
            assert_eq!(PostgresDialect::leads().field(bad), None, "{bad}");
        }
    }

    #[test]
    fn like_keeps_escapes() {
        let d = PostgresDialect::events();
        assert_eq!(d.like("a%b_c\\%"), Some(("LIKE", "a%b_c\\%".to_string())));
        let (s, p, _) = sql(d, "buyer NOT LIKE 'Acme%'");
        assert_eq!(
            (s.as_str(), p),
            (
                r#""recipient" NOT LIKE $1"#,
                vec![Value::Text("Acme%".into())]
            )
        );
    }
}
