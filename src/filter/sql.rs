//! Pushing a filter down to the store as SQL with bound parameters.
//!
//! [`push_down`] translates each top-level `AND` conjunct it can and leaves the rest for Rust
//! ([`Expr::matches`]). A conjunct is pushed only when the SQL gives exactly the same answer as
//! the Rust evaluator, NULLs included; when in doubt it stays residual, which is always correct.
//! Literals always become bound parameters; SQL text comes only from the dialect.

use super::{CmpOp, Expr, Func};
use crate::value::Value;

/// How a field is stored, which decides how literals compared with it are bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// An instant; the dialect decides the storage (e.g. INTEGER epoch milliseconds).
    Timestamp,
    /// Money; the dialect decides the storage (e.g. INTEGER 1/10000 units).
    Money,
    Int,
    Text,
    Bool,
    /// A value of unknown type inside a JSON document; compared only through
    /// [`SqlDialect::json_field`] so the JSON type is checked like Rust checks value types.
    Json,
}

/// The JSON type a literal requires of a [`FieldType::Json`] value to be comparable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonKind {
    Number,
    Text,
    Bool,
}

/// A field as the store sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlField {
    /// SQL expression reading the field (a column or a JSON extraction).
    pub expr: String,
    pub ty: FieldType,
}

/// A pushed-down condition: `sql` with placeholders, and `params` in the order the
/// placeholders appear in `sql`.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlFragment {
    pub sql: String,
    pub params: Vec<Value>,
}

/// What a store's SQL can express. Returning `None` anywhere keeps that part of the filter in
/// Rust, so a dialect only needs to implement what it can match exactly.
pub trait SqlDialect {
    /// SQL expression and storage type for a field path, or None if it cannot be pushed down.
    fn field(&self, path: &str) -> Option<SqlField>;

    /// For a [`FieldType::Json`] field: an expression that is the value when its JSON type is
    /// `kind` and NULL otherwise. Rust compares text with numbers as NULL, while SQL would
    /// order them, so comparisons on JSON values go through this guard.
    fn json_field(&self, path: &str, kind: JsonKind) -> Option<String>;

    /// Placeholder for the n-th (1-based) parameter: `?` for SQLite, `$n` for PostgreSQL.
    fn placeholder(&self, n: usize) -> String;

    /// `func(arg)` in SQL, or None if not supported exactly. Only called with a
    /// [`FieldType::Timestamp`] argument for hour/weekday/date (which must give 0–23, ISO
    /// 1–7 and `YYYY-MM-DD` in UTC) and a [`FieldType::Text`] argument for lower/upper/length.
    fn function(&self, func: Func, arg: &str) -> Option<String>;

    /// A case-sensitive LIKE: the SQL operator (e.g. `GLOB`) and the pattern to bind for a
    /// filter pattern (`%`, `_`, `\` escapes), or None.
    fn like(&self, pattern: &str) -> Option<(&'static str, String)>;

    /// The bound parameter for a literal compared with a field of type `ty` (e.g. a date
    /// string becomes epoch milliseconds), or None if the comparison cannot be pushed exactly
    /// (a type mismatch, which Rust evaluates as NULL, or lost precision).
    fn bind(&self, literal: &Value, ty: FieldType) -> Option<Value>;
}

/// Splits `filter` into SQL for the store and the residual to evaluate in Rust; a row matches
/// the filter exactly when it matches both. Either part is None when empty.
pub fn push_down(filter: &Expr, dialect: &dyn SqlDialect) -> (Option<SqlFragment>, Option<Expr>) {
    let conjuncts = match filter {
        Expr::And(items) => items.iter().collect(),
        other => vec![other],
    };
    let mut b = Builder {
        dialect,
        params: Vec::new(),
    };
    let (mut sql, mut residual) = (Vec::new(), Vec::new());
    for c in conjuncts {
        let mark = b.params.len();
        match b.condition(c) {
            Some(s) => sql.push(s),
            None => {
                b.params.truncate(mark);
                residual.push(c.clone());
            }
        }
    }
    let fragment = (!sql.is_empty()).then(|| SqlFragment {
        sql: sql.join(" AND "),
        params: b.params,
    });
    let residual = match residual.len() {
        0 => None,
        1 => residual.pop(),
        _ => Some(Expr::And(residual)),
    };
    (fragment, residual)
}

struct Builder<'a> {
    dialect: &'a dyn SqlDialect,
    params: Vec<Value>,
}

fn json_kind(v: &Value) -> Option<JsonKind> {
    match v {
        Value::Int(_) | Value::Decimal(_) | Value::Float(_) => Some(JsonKind::Number),
        Value::Text(_) => Some(JsonKind::Text),
        Value::Bool(_) => Some(JsonKind::Bool),
        _ => None,
    }
}

impl Builder<'_> {
    fn bind(&mut self, v: Value) -> String {
        self.params.push(v);
        self.dialect.placeholder(self.params.len())
    }

    /// SQL for a condition, or None to keep it in Rust.
    fn condition(&mut self, e: &Expr) -> Option<String> {
        match e {
            Expr::And(items) | Expr::Or(items) => {
                let op = if matches!(e, Expr::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                let parts = items
                    .iter()
                    .map(|i| self.condition(i))
                    .collect::<Option<Vec<_>>>()?;
                Some(format!("({})", parts.join(op)))
            }
            Expr::Not(inner) => Some(format!("NOT ({})", self.condition(inner)?)),
            Expr::IsNull { expr, negated } => {
                let (sql, _) = self.value(expr)?;
                Some(format!(
                    "{sql} IS {}NULL",
                    if *negated { "NOT " } else { "" }
                ))
            }
            Expr::Compare(op, a, b) => match (&**a, &**b) {
                (Expr::Literal(_), Expr::Literal(_)) => None,
                (Expr::Literal(v), x) | (x, Expr::Literal(v)) => {
                    let op = if matches!(**a, Expr::Literal(_)) {
                        op.flip()
                    } else {
                        *op
                    };
                    let (sql, ph) = self.typed(x, std::slice::from_ref(v))?;
                    let sym = if op == CmpOp::Ne { "<>" } else { op.symbol() };
                    Some(format!("{sql} {sym} {}", ph.join("")))
                }
                (x, y) => {
                    let ((l, lt), (r, rt)) = (self.value(x)?, self.value(y)?);
                    let sym = if *op == CmpOp::Ne { "<>" } else { op.symbol() };
                    (lt == rt && lt != FieldType::Json).then(|| format!("{l} {sym} {r}"))
                }
            },
            Expr::In {
                expr,
                list,
                negated,
            } => {
                let literals = list
                    .iter()
                    .map(|i| match i {
                        Expr::Literal(v) => Some(v.clone()),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()?;
                let (sql, ph) = self.typed(expr, &literals)?;
                let not = if *negated { "NOT " } else { "" };
                Some(format!("{sql} {not}IN ({})", ph.join(", ")))
            }
            Expr::Like {
                expr,
                pattern,
                negated,
            } => {
                let Expr::Literal(Value::Text(p)) = &**pattern else {
                    return None;
                };
                let sql = match self.value(expr)? {
                    (sql, FieldType::Text) => sql,
                    (_, FieldType::Json) => {
                        self.dialect.json_field(field_path(expr)?, JsonKind::Text)?
                    }
                    _ => return None,
                };
                let (op, bound) = self.dialect.like(p)?;
                let ph = self.bind(Value::Text(bound));
                Some(format!(
                    "{sql} {}{op} {ph}",
                    if *negated { "NOT " } else { "" }
                ))
            }
            _ => None,
        }
    }

    /// SQL and type of a non-literal value: a field or a supported function of one.
    fn value(&mut self, e: &Expr) -> Option<(String, FieldType)> {
        match e {
            Expr::Field(path) => self.dialect.field(path).map(|f| (f.expr, f.ty)),
            Expr::Call(func, args) if args.len() == 1 => {
                let (arg, ty) = self.value(&args[0])?;
                let (want, out) = match func {
                    Func::Hour | Func::Weekday => (FieldType::Timestamp, FieldType::Int),
                    Func::Date => (FieldType::Timestamp, FieldType::Text),
                    Func::Lower | Func::Upper => (FieldType::Text, FieldType::Text),
                    Func::Length => (FieldType::Text, FieldType::Int),
                    Func::Coalesce => return None,
                };
                (ty == want).then_some(())?;
                Some((self.dialect.function(*func, &arg)?, out))
            }
            _ => None,
        }
    }

    /// SQL for `x` and bound placeholders for the literals it is compared with. JSON values
    /// are guarded by the literals' JSON kind, which must be the same for all of them.
    fn typed(&mut self, x: &Expr, literals: &[Value]) -> Option<(String, Vec<String>)> {
        let (mut sql, ty) = self.value(x)?;
        if ty == FieldType::Json {
            let mut kinds = literals.iter().filter(|v| !v.is_null()).map(json_kind);
            if let Some(kind) = kinds.next() {
                let kind = kind?;
                if kinds.any(|k| k != Some(kind)) {
                    return None;
                }
                sql = self.dialect.json_field(field_path(x)?, kind)?;
            }
        }
        let bound = literals
            .iter()
            .map(|v| match v {
                Value::Null => Some(Value::Null),
                v => self.dialect.bind(v, ty),
            })
            .collect::<Option<Vec<_>>>()?;
        Some((sql, bound.into_iter().map(|v| self.bind(v)).collect()))
    }
}

fn field_path(e: &Expr) -> Option<&str> {
    match e {
        Expr::Field(p) => Some(p),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse_filter, parse_timestamp};
    use super::*;

    /// A PostgreSQL-flavoured dialect: typed columns, `$n` placeholders, JSON under `doc`.
    struct TestDialect;

    impl SqlDialect for TestDialect {
        fn field(&self, path: &str) -> Option<SqlField> {
            let (expr, ty) = match path {
                "ts" => ("ts".to_string(), FieldType::Timestamp),
                "revenue" => ("revenue".into(), FieldType::Money),
                "n" => ("n".into(), FieldType::Int),
                "state" => ("state".into(), FieldType::Text),
                "unknown" => return None,
                p => (format!("doc->'{p}'"), FieldType::Json),
            };
            Some(SqlField { expr, ty })
        }
        fn json_field(&self, path: &str, kind: JsonKind) -> Option<String> {
            Some(format!("json_{kind:?}(doc, '{path}')").to_lowercase())
        }
        fn placeholder(&self, n: usize) -> String {
            format!("${n}")
        }
        fn function(&self, func: Func, arg: &str) -> Option<String> {
            (func != Func::Upper).then(|| format!("{}({arg})", func.name()))
        }
        fn like(&self, pattern: &str) -> Option<(&'static str, String)> {
            Some(("LIKE", pattern.to_string()))
        }
        fn bind(&self, literal: &Value, ty: FieldType) -> Option<Value> {
            match (ty, literal) {
                (FieldType::Timestamp, Value::Text(s)) => {
                    parse_timestamp(s).map(|t| Value::Int(t.timestamp_millis()))
                }
                (FieldType::Money | FieldType::Int, Value::Int(i)) => Some(Value::Int(*i)),
                (FieldType::Text | FieldType::Json, v @ Value::Text(_)) => Some(v.clone()),
                (FieldType::Json, v) => Some(v.clone()),
                _ => None,
            }
        }
    }

    fn split(src: &str) -> (String, Vec<Value>, String) {
        let (frag, residual) = push_down(&parse_filter(src).unwrap(), &TestDialect);
        let frag = frag.unwrap_or(SqlFragment {
            sql: String::new(),
            params: vec![],
        });
        (
            frag.sql,
            frag.params,
            residual.map(|r| r.to_string()).unwrap_or_default(),
        )
    }

    #[test]
    fn conjuncts_are_pushed_individually() {
        let (sql, params, residual) = split(
            "ts >= '2024-01-01' AND unknown = 1 AND state IN ('CA', 'TX') AND upper(state) = 'X' AND revenue > 0",
        );
        assert_eq!(sql, "ts >= $1 AND state IN ($2, $3) AND revenue > $4");
        assert_eq!(
            params,
            [
                Value::Int(1_704_067_200_000),
                Value::Text("CA".into()),
                Value::Text("TX".into()),
                Value::Int(0)
            ]
        );
        assert_eq!(residual, r#"unknown = 1 AND upper(state) = "X""#);
    }

    #[test]
    fn json_values_are_type_guarded() {
        let (sql, params, residual) =
            split("score >= 70 AND email.valid = true AND city LIKE 'San%' AND x IN (1, 'a')");
        assert_eq!(
            sql,
            "json_number(doc, 'score') >= $1 AND json_bool(doc, 'email.valid') = $2 AND json_text(doc, 'city') LIKE $3"
        );
        assert_eq!(
            params,
            [
                Value::Int(70),
                Value::Bool(true),
                Value::Text("San%".into())
            ]
        );
        assert_eq!(residual, r#"x IN (1, "a")"#);
    }

    #[test]
    fn three_valued_structure_is_kept() {
        let (sql, params, residual) = split(
            "NOT (0 < n OR state NOT IN ('CA', NULL)) AND hour(ts) != 3 AND state IS NOT NULL AND ts > n",
        );
        assert_eq!(
            sql,
            "NOT ((n > $1 OR state NOT IN ($2, $3))) AND hour(ts) <> $4 AND state IS NOT NULL"
        );
        assert_eq!(params[2], Value::Null);
        assert_eq!(residual, "ts > n");
    }

    #[test]
    fn injection_attempts_are_parameters() {
        let (sql, params, _) = split(r#"state = "CA'; DROP TABLE leads; --""#);
        assert_eq!(sql, "state = $1");
        assert_eq!(params, [Value::Text("CA'; DROP TABLE leads; --".into())]);
    }

    #[test]
    fn mismatched_literals_stay_in_rust() {
        for src in [
            "state = 1",
            "n = 'x'",
            "ts > 'soon'",
            "1 = 1",
            "coalesce(n, 0) > 1",
            "n + 1 > 2",
        ] {
            let (sql, _, residual) = split(src);
            assert_eq!((sql.as_str(), residual.is_empty()), ("", false), "{src}");
        }
    }
}
