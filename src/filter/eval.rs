//! Evaluates an [`Expr`] against one row, with SQL semantics.
//!
//! The rules mirror what the SQL push-down produces, so a conjunct gives the same answer
//! whether the store or Rust evaluates it:
//! - three-valued logic: a comparison involving NULL is NULL, `NOT NULL` is NULL, and only
//!   TRUE matches; values of incomparable types (text vs number) also compare as NULL;
//! - numbers compare numerically across Int/Decimal/Float; Int/Decimal arithmetic is exact;
//! - a timestamp compared with text parses the text ([`parse_timestamp`]);
//! - `LIKE` is case-sensitive, `%` matches any run, `_` one character, `\` escapes.

use super::{ArithOp, CmpOp, Expr, Func};
use crate::value::Value;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use std::cmp::Ordering;

/// Parses the timestamp text accepted in filters: RFC 3339, `YYYY-MM-DD` (midnight UTC) or
/// `YYYY-MM-DDTHH:MM:SS[.fff]` (UTC; a space instead of `T` also works).
pub fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .map(|t| t.and_utc())
}

fn timestamp_of(v: &Value) -> Option<DateTime<Utc>> {
    match v {
        Value::Timestamp(t) => Some(*t),
        Value::Text(s) => parse_timestamp(s),
        _ => None,
    }
}

/// SQL comparison of two values; `None` means the answer is NULL.
pub(crate) fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    use Value::*;
    match (a, b) {
        (Int(x), Int(y)) => Some(x.cmp(y)),
        (Int(_) | Decimal(_), Int(_) | Decimal(_)) => Some(decimal(a)?.cmp(&decimal(b)?)),
        (Int(_) | Decimal(_) | Float(_), Int(_) | Decimal(_) | Float(_)) => {
            float(a)?.partial_cmp(&float(b)?)
        }
        (Text(x), Text(y)) => Some(x.cmp(y)),
        (Bool(x), Bool(y)) => Some(x.cmp(y)),
        (Timestamp(x), Timestamp(y)) => Some(x.cmp(y)),
        (Timestamp(x), Text(s)) => Some(x.cmp(&parse_timestamp(s)?)),
        (Text(s), Timestamp(y)) => Some(parse_timestamp(s)?.cmp(y)),
        _ => None,
    }
}

fn decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::Int(i) => Some(Decimal::from(*i)),
        Value::Decimal(d) => Some(*d),
        _ => None,
    }
}

fn float(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Decimal(d) => d.to_f64(),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

/// Arithmetic: Int with Int stays Int (Decimal on overflow or division), Decimal is exact,
/// Float only if an operand is Float; NULL, non-numbers and division by zero give NULL.
fn arith(op: ArithOp, a: &Value, b: &Value) -> Value {
    if let (Value::Int(x), Value::Int(y), false) = (a, b, op == ArithOp::Div) {
        let r = match op {
            ArithOp::Add => x.checked_add(*y),
            ArithOp::Sub => x.checked_sub(*y),
            _ => x.checked_mul(*y),
        };
        if let Some(r) = r {
            return Value::Int(r);
        }
    }
    if let (Some(x), Some(y)) = (decimal(a), decimal(b)) {
        let r = match op {
            ArithOp::Add => x.checked_add(y),
            ArithOp::Sub => x.checked_sub(y),
            ArithOp::Mul => x.checked_mul(y),
            ArithOp::Div => x.checked_div(y),
        };
        return r.map_or(Value::Null, Value::Decimal);
    }
    if let (Some(x), Some(y)) = (float(a), float(b)) {
        let r = match op {
            ArithOp::Add => x + y,
            ArithOp::Sub => x - y,
            ArithOp::Mul => x * y,
            ArithOp::Div if y == 0.0 => return Value::Null,
            ArithOp::Div => x / y,
        };
        return if r.is_finite() {
            Value::Float(r)
        } else {
            Value::Null
        };
    }
    Value::Null
}

/// One element of a LIKE pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LikePart {
    /// `%`
    Any,
    /// `_`
    One,
    /// A character that must match exactly (including an escaped `%`, `_` or `\`).
    Char(char),
}

/// Splits a LIKE pattern; `\` makes the next character literal (a trailing `\` is literal).
pub(crate) fn like_parts(pattern: &str) -> Vec<LikePart> {
    let mut out = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        out.push(match c {
            '%' => LikePart::Any,
            '_' => LikePart::One,
            '\\' => LikePart::Char(chars.next().unwrap_or('\\')),
            c => LikePart::Char(c),
        });
    }
    out
}

/// Case-sensitive SQL LIKE in linear-ish time (greedy `%` with backtracking to the last `%`).
pub(crate) fn like(text: &str, pattern: &str) -> bool {
    let t: Vec<char> = text.chars().collect();
    let p = like_parts(pattern);
    let (mut ti, mut pi) = (0, 0);
    let mut retry: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(LikePart::Any) => {
                retry = Some((pi, ti));
                pi += 1;
            }
            Some(LikePart::One) => (ti, pi) = (ti + 1, pi + 1),
            Some(LikePart::Char(c)) if *c == t[ti] => (ti, pi) = (ti + 1, pi + 1),
            _ => match retry {
                Some((rp, rt)) => {
                    (pi, ti) = (rp + 1, rt + 1);
                    retry = Some((rp, rt + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|x| *x == LikePart::Any)
}

fn truth(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        _ => None,
    }
}

fn from_truth(b: Option<bool>) -> Value {
    b.map_or(Value::Null, Value::Bool)
}

impl Expr {
    /// Evaluates the expression for one row; `lookup` returns a field's value (NULL if absent).
    /// Conditions yield `Bool` or `Null` (unknown).
    pub fn eval(&self, lookup: &dyn Fn(&str) -> Value) -> Value {
        let ev = |e: &Expr| e.eval(lookup);
        match self {
            Expr::Literal(v) => v.clone(),
            Expr::Field(path) => lookup(path),
            Expr::Call(func, args) => call(*func, args, lookup),
            Expr::Neg(e) => arith(ArithOp::Sub, &Value::Int(0), &ev(e)),
            Expr::Arith(op, a, b) => arith(*op, &ev(a), &ev(b)),
            Expr::Compare(op, a, b) => from_truth(compare(&ev(a), &ev(b)).map(|o| match op {
                CmpOp::Eq => o.is_eq(),
                CmpOp::Ne => o.is_ne(),
                CmpOp::Lt => o.is_lt(),
                CmpOp::Le => o.is_le(),
                CmpOp::Gt => o.is_gt(),
                CmpOp::Ge => o.is_ge(),
            })),
            Expr::In {
                expr,
                list,
                negated,
            } => {
                let v = ev(expr);
                // x IN (a, b) is x = a OR x = b: TRUE wins, then NULL, then FALSE.
                let mut result = Some(false);
                if v.is_null() {
                    result = None;
                }
                for item in list {
                    match compare(&v, &ev(item)) {
                        Some(Ordering::Equal) => {
                            result = Some(true);
                            break;
                        }
                        None => result = None,
                        Some(_) => {}
                    }
                }
                from_truth(result.map(|b| b != *negated))
            }
            Expr::Like {
                expr,
                pattern,
                negated,
            } => match (ev(expr), ev(pattern)) {
                (Value::Text(t), Value::Text(p)) => Value::Bool(like(&t, &p) != *negated),
                _ => Value::Null,
            },
            Expr::IsNull { expr, negated } => Value::Bool(ev(expr).is_null() != *negated),
            Expr::Not(e) => from_truth(truth(&ev(e)).map(|b| !b)),
            Expr::And(items) => {
                let mut result = Some(true);
                for item in items {
                    match truth(&ev(item)) {
                        Some(false) => return Value::Bool(false),
                        None => result = None,
                        Some(true) => {}
                    }
                }
                from_truth(result)
            }
            Expr::Or(items) => {
                let mut result = Some(false);
                for item in items {
                    match truth(&ev(item)) {
                        Some(true) => return Value::Bool(true),
                        None => result = None,
                        Some(false) => {}
                    }
                }
                from_truth(result)
            }
        }
    }

    /// True when the row passes the filter: the condition is TRUE (not FALSE, not NULL).
    pub fn matches(&self, lookup: &dyn Fn(&str) -> Value) -> bool {
        self.eval(lookup) == Value::Bool(true)
    }
}

fn call(func: Func, args: &[Expr], lookup: &dyn Fn(&str) -> Value) -> Value {
    if func == Func::Coalesce {
        return args
            .iter()
            .map(|a| a.eval(lookup))
            .find(|v| !v.is_null())
            .unwrap_or(Value::Null);
    }
    let Some(v) = args.first().map(|a| a.eval(lookup)) else {
        return Value::Null;
    };
    if v.is_null() {
        return Value::Null;
    }
    let text = || match &v {
        Value::Text(s) => s.clone(),
        other => other.to_string(),
    };
    match func {
        Func::Hour => timestamp_of(&v).map_or(Value::Null, |t| Value::Int(t.hour().into())),
        Func::Weekday => timestamp_of(&v).map_or(Value::Null, |t| {
            Value::Int(t.weekday().number_from_monday().into())
        }),
        Func::Date => timestamp_of(&v).map_or(Value::Null, |t| {
            Value::Text(t.format("%Y-%m-%d").to_string())
        }),
        Func::Lower => Value::Text(text().to_lowercase()),
        Func::Upper => Value::Text(text().to_uppercase()),
        Func::Length => Value::Int(text().chars().count().try_into().unwrap_or(i64::MAX)),
        Func::Coalesce => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse_expression, parse_filter};
    use super::*;

    fn row(name: &str) -> Value {
        let ts = parse_timestamp("2024-01-15T10:30:00Z").unwrap();
        match name {
            "revenue" => Value::Decimal(Decimal::new(4500, 2)),
            "cost" => Value::Decimal(Decimal::new(1250, 2)),
            "timestamp" => Value::Timestamp(ts),
            "state" => Value::Text("CA".into()),
            "lead_score" => Value::Int(82),
            "score_f" => Value::Float(82.5),
            "email.valid" => Value::Bool(true),
            "email" => Value::Text("John@X.com".into()),
            _ => Value::Null,
        }
    }

    fn eval(src: &str) -> Value {
        parse_expression(src).unwrap().eval(&row)
    }

    #[test]
    fn arithmetic_is_exact() {
        assert_eq!(
            eval("revenue - cost"),
            Value::Decimal(Decimal::new(3250, 2))
        );
        assert_eq!(eval("7 / 2"), Value::Decimal(Decimal::new(35, 1)));
        assert_eq!(eval("2 + 3 * 4"), Value::Int(14));
        assert_eq!(eval("-lead_score"), Value::Int(-82));
        assert_eq!(
            eval("9223372036854775807 + 1"),
            Value::Decimal("9223372036854775808".parse().unwrap())
        );
        assert_eq!(eval("score_f * 2"), Value::Float(165.0));
        for null in ["revenue / 0", "missing + 1", "state * 2", "1.5 / 0"] {
            assert_eq!(eval(null), Value::Null, "{null}");
        }
    }

    #[test]
    fn functions() {
        assert_eq!(eval("hour(timestamp)"), Value::Int(10));
        assert_eq!(eval("weekday(timestamp)"), Value::Int(1));
        assert_eq!(eval("date(timestamp)"), Value::Text("2024-01-15".into()));
        assert_eq!(eval("weekday('2024-01-14')"), Value::Int(7));
        assert_eq!(eval("lower(email) = 'john@x.com'"), Value::Bool(true));
        assert_eq!(eval("upper(state)"), Value::Text("CA".into()));
        assert_eq!(eval("length('héllo')"), Value::Int(5));
        assert_eq!(eval("coalesce(missing, null, lead_score)"), Value::Int(82));
        assert_eq!(eval("hour(missing)"), Value::Null);
    }

    #[test]
    fn filters_match_rows() {
        let yes = [
            r#"timestamp >= "2024-01-01" AND timestamp < "2024-02-01""#,
            "timestamp = '2024-01-15T10:30:00' AND timestamp > '2024-01-15T05:00:00-04:00'",
            r#"state IN ("CA", "TX", "FL") AND lead_score >= 70 AND email.valid = true"#,
            "revenue > 0 AND revenue = 45 AND lead_score < 82.5 AND score_f > lead_score",
            "email LIKE 'John@%.c_m' AND email NOT LIKE 'john%' AND 'a%b' LIKE 'a\\\\%b'",
            "missing IS NULL AND state IS NOT NULL AND email.valid",
            "NOT (state = 'TX') AND state NOT IN ('TX', 'FL') AND state != 'ca'",
            "missing = 1 OR state = 'CA'",
        ];
        for src in yes {
            assert!(parse_filter(src).unwrap().matches(&row), "{src}");
        }
        let unknown = [
            "missing = 1",
            "NOT missing = 1",
            "state NOT IN ('TX', NULL)",
            "state = 1",
            "timestamp > 'not a date'",
            "missing LIKE 'a%'",
            "state = 'CA' AND missing > 0",
            "missing > 0 OR state = 'TX'",
        ];
        for src in unknown {
            assert_eq!(eval(src), Value::Null, "{src}");
        }
        assert_eq!(eval("state IN ('TX', NULL, 'CA')"), Value::Bool(true));
        assert_eq!(eval("missing > 0 AND state = 'TX'"), Value::Bool(false));
    }

    #[test]
    fn like_corner_cases() {
        assert!(like("", "%"));
        assert!(like("abc", "a%%c"));
        assert!(like("aaab", "%a_b"));
        assert!(!like("abc", "a_"));
        assert!(like("50%", "50\\%"));
        assert!(!like("500", "50\\%"));
        assert!(like("x\\", "x\\"));
        assert!(like(&"a".repeat(5000), &"%a".repeat(50)));
    }
}
