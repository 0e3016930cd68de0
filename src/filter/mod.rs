//! The filter expression language of export definitions.
//!
//! One grammar serves two purposes: `filter = '…'` (a condition, parsed by [`parse_filter`]) and
//! computed columns such as `margin = "revenue - cost"` (parsed by [`parse_expression`]).
//!
//! ```text
//! filter     := or
//! or         := and ("OR" and)*
//! and        := not ("AND" not)*
//! not        := "NOT" not | comparison
//! comparison := sum [ ("=" | "!=" | "<>" | "<" | "<=" | ">" | ">=") sum
//!                   | ["NOT"] "IN" "(" or ("," or)* ")"
//!                   | ["NOT"] "LIKE" sum
//!                   | "IS" ["NOT"] "NULL" ]
//! sum        := product (("+" | "-") product)*
//! product    := unary (("*" | "/") unary)*
//! unary      := "-" unary | primary
//! primary    := number | string | "true" | "false" | "null" | field | function "(" args ")" | "(" or ")"
//! ```
//!
//! Keywords are case-insensitive; field paths look like `email.valid` or `appended.geo.city`.
//! The AST ([`Expr`]) is evaluated in Rust ([`Expr::eval`], [`Expr::matches`], see `eval.rs`)
//! and, where a store can express it, pushed down to SQL with bound parameters
//! ([`push_down`], see `sql.rs` and the SQLite layout in `sqlite.rs`).

mod eval;
mod lexer;
mod parse;
mod postgres;
mod sql;
mod sqlite;

pub use eval::parse_timestamp;
pub use postgres::{PostgresDialect, jsonb_value};
pub use sql::{FieldType, JsonKind, SqlDialect, SqlField, SqlFragment, push_down};
pub use sqlite::{Location, SqliteDialect};

use crate::value::Value;
use std::fmt;

/// A filter or expression that could not be parsed: where and what to do about it.
///
/// The column is 1-based and counts characters (not bytes), so `exportd validate` can point at
/// the problem inside the TOML string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct ParseError {
    /// 1-based character column inside the expression text.
    pub column: usize,
    /// What was expected, what was found, and how to fix it.
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(column: usize, message: impl Into<String>) -> Self {
        ParseError {
            column,
            message: message.into(),
        }
    }
}

/// Parses a condition (the `filter` of an export). A top level that is a plain value, such as
/// `revenue + 1`, is refused because it would silently match nothing.
pub fn parse_filter(src: &str) -> Result<Expr, ParseError> {
    let expr = parse::parse(src)?;
    let first_column = src.chars().take_while(|c| c.is_whitespace()).count() + 1;
    parse::predicate(&expr, first_column)?;
    Ok(expr)
}

/// Parses a value expression (a computed column such as `revenue - cost`). Conditions are
/// accepted too and evaluate to a boolean (or NULL).
pub fn parse_expression(src: &str) -> Result<Expr, ParseError> {
    parse::parse(src)
}

/// A built-in function. Unknown names are parse errors, so a typo is found by `validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    /// `hour(ts)`: 0–23 in UTC.
    Hour,
    /// `weekday(ts)`: ISO weekday, 1 = Monday … 7 = Sunday.
    Weekday,
    /// `date(ts)`: `"YYYY-MM-DD"` in UTC.
    Date,
    /// `lower(text)`.
    Lower,
    /// `upper(text)`.
    Upper,
    /// `length(text)`: number of characters.
    Length,
    /// `coalesce(a, b, …)`: the first argument that is not NULL.
    Coalesce,
}

impl Func {
    /// Every function, for lookups and "did you mean" suggestions.
    pub const ALL: [Func; 7] = [
        Func::Hour,
        Func::Weekday,
        Func::Date,
        Func::Lower,
        Func::Upper,
        Func::Length,
        Func::Coalesce,
    ];

    /// The name used in filters (lower case).
    pub fn name(self) -> &'static str {
        match self {
            Func::Hour => "hour",
            Func::Weekday => "weekday",
            Func::Date => "date",
            Func::Lower => "lower",
            Func::Upper => "upper",
            Func::Length => "length",
            Func::Coalesce => "coalesce",
        }
    }

    /// Looks a function up by name, case-insensitively.
    pub fn from_name(name: &str) -> Option<Func> {
        Func::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
    }
}

/// Arithmetic operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl ArithOp {
    fn symbol(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
        }
    }
}

/// Comparison operators (`!=` and `<>` are the same operator, printed as `!=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    /// The operator as written in filters and in SQL (SQL uses `<>` for `!=`).
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    /// The operator with its operands swapped (`0 < x` is `x > 0`).
    pub fn flip(self) -> CmpOp {
        match self {
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::Le => CmpOp::Ge,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::Ge => CmpOp::Le,
            other => other,
        }
    }
}

/// A parsed filter or expression. `AND` / `OR` are n-ary so long chains stay shallow and the
/// top-level conjuncts can be pushed down one by one.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A number, string, `true`, `false` or `null`.
    Literal(Value),
    /// A field path such as `email.valid`, resolved per row by the caller.
    Field(String),
    /// A built-in function call with an arity checked at parse time.
    Call(Func, Vec<Expr>),
    /// Unary minus of a non-literal (`-5` is folded into the literal).
    Neg(Box<Expr>),
    /// `a + b`, `a - b`, `a * b`, `a / b`.
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    /// `a = b` and friends; NULL or incomparable types give NULL.
    Compare(CmpOp, Box<Expr>, Box<Expr>),
    /// `x [NOT] IN (a, b, …)`, with SQL's NULL rules.
    In {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    /// SQL `LIKE`: `%` any run, `_` one character, `\` escapes the next character; case-sensitive.
    Like {
        expr: Box<Expr>,
        pattern: Box<Expr>,
        negated: bool,
    },
    /// `x IS [NOT] NULL`: never NULL itself.
    IsNull { expr: Box<Expr>, negated: bool },
    /// `NOT c`; `NOT NULL` stays NULL.
    Not(Box<Expr>),
    /// `a AND b AND …`, flattened.
    And(Vec<Expr>),
    /// `a OR b OR …`, flattened.
    Or(Vec<Expr>),
}

/// What an expression produces, as far as the parser can tell without knowing field types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A comparison or boolean combination.
    Condition,
    /// Arithmetic, a number, a string, a function returning a value.
    Value,
    /// A field, `true`/`false`/`null` or `coalesce(…)`: usable either way.
    Either,
}

impl Expr {
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Expr::Compare(..)
            | Expr::In { .. }
            | Expr::Like { .. }
            | Expr::IsNull { .. }
            | Expr::Not(_)
            | Expr::And(_)
            | Expr::Or(_) => Kind::Condition,
            Expr::Field(_) | Expr::Literal(Value::Bool(_) | Value::Null) => Kind::Either,
            Expr::Call(Func::Coalesce, _) => Kind::Either,
            _ => Kind::Value,
        }
    }

    /// The distinct field paths the expression reads, in order of first appearance, so callers
    /// can check them against the known fields or fetch only what is needed.
    pub fn fields(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.collect_fields(&mut out);
        out
    }

    fn collect_fields(&self, out: &mut Vec<String>) {
        match self {
            Expr::Literal(_) => {}
            Expr::Field(path) => {
                if !out.contains(path) {
                    out.push(path.clone());
                }
            }
            Expr::Call(_, args) | Expr::And(args) | Expr::Or(args) => {
                args.iter().for_each(|a| a.collect_fields(out))
            }
            Expr::Neg(e) | Expr::Not(e) | Expr::IsNull { expr: e, .. } => e.collect_fields(out),
            Expr::Arith(_, a, b)
            | Expr::Compare(_, a, b)
            | Expr::Like {
                expr: a,
                pattern: b,
                ..
            } => {
                a.collect_fields(out);
                b.collect_fields(out);
            }
            Expr::In { expr, list, .. } => {
                expr.collect_fields(out);
                list.iter().for_each(|a| a.collect_fields(out));
            }
        }
    }

    /// Binding strength used by `Display` to place the parentheses the parser needs.
    fn precedence(&self) -> u8 {
        match self {
            Expr::Or(_) => 1,
            Expr::And(_) => 2,
            Expr::Not(_) => 3,
            Expr::Compare(..) | Expr::In { .. } | Expr::Like { .. } | Expr::IsNull { .. } => 4,
            Expr::Arith(ArithOp::Add | ArithOp::Sub, ..) => 5,
            Expr::Arith(..) => 6,
            Expr::Neg(_) => 7,
            Expr::Literal(_) | Expr::Field(_) | Expr::Call(..) => 8,
        }
    }
}

/// Writes `e`, in parentheses when its precedence is below `min`.
fn child(f: &mut fmt::Formatter<'_>, e: &Expr, min: u8) -> fmt::Result {
    if e.precedence() < min {
        write!(f, "({e})")
    } else {
        write!(f, "{e}")
    }
}

fn list(f: &mut fmt::Formatter<'_>, items: &[Expr], sep: &str, min: u8) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        child(f, item, min)?;
    }
    Ok(())
}

fn write_string(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("\"")
}

/// The canonical form: upper-case keywords, double-quoted strings, single spaces and only the
/// parentheses the grammar needs. Parsing it again gives an equal `Expr`.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.precedence();
        let not = |negated: bool| if negated { "NOT " } else { "" };
        match self {
            Expr::Literal(Value::Null) => f.write_str("NULL"),
            Expr::Literal(Value::Text(s)) => write_string(f, s),
            Expr::Literal(Value::Timestamp(t)) => write_string(f, &Value::format_timestamp(t)),
            Expr::Literal(Value::Decimal(d)) => write!(f, "{d}"),
            Expr::Literal(v) => write!(f, "{v}"),
            Expr::Field(path) => f.write_str(path),
            Expr::Call(func, args) => {
                write!(f, "{}(", func.name())?;
                list(f, args, ", ", 0)?;
                f.write_str(")")
            }
            Expr::Neg(e) => {
                f.write_str("-")?;
                child(f, e, p)
            }
            Expr::Arith(op, a, b) => {
                child(f, a, p)?;
                write!(f, " {} ", op.symbol())?;
                child(f, b, p + 1)
            }
            Expr::Compare(op, a, b) => {
                child(f, a, p + 1)?;
                write!(f, " {} ", op.symbol())?;
                child(f, b, p + 1)
            }
            Expr::In {
                expr,
                list: items,
                negated,
            } => {
                child(f, expr, p + 1)?;
                write!(f, " {}IN (", not(*negated))?;
                list(f, items, ", ", 0)?;
                f.write_str(")")
            }
            Expr::Like {
                expr,
                pattern,
                negated,
            } => {
                child(f, expr, p + 1)?;
                write!(f, " {}LIKE ", not(*negated))?;
                child(f, pattern, p + 1)
            }
            Expr::IsNull { expr, negated } => {
                child(f, expr, p + 1)?;
                write!(f, " IS {}NULL", not(*negated))
            }
            Expr::Not(e) => {
                f.write_str("NOT ")?;
                child(f, e, p)
            }
            Expr::And(items) => list(f, items, " AND ", p + 1),
            Expr::Or(items) => list(f, items, " OR ", p + 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::SplitMix as Rng;

    const SEEDS: [&str; 8] = [
        r#"timestamp >= "2024-01-01" AND timestamp < "2024-02-01""#,
        r#"outcome = "delivered" AND revenue > 0"#,
        r#"state IN ("CA", "TX", "FL") AND lead_score >= 70 AND email.valid = true"#,
        r#"NOT (a.b IS NULL OR c NOT LIKE 'x\'%_') AND d NOT IN (1, -2.5, null)"#,
        "hour(timestamp) * 2 + -weekday(created_at) / 3 <> length(lower(upper(x)))",
        "coalesce(a, b, 0) - (revenue - cost) != date(timestamp)",
        "x IS NOT NULL and y in ('a') or not z = false",
        "((a = 1)) AND (b = 2 OR (c = 3 AND NOT d = 4))",
    ];

    fn check_no_panic_and_round_trip(src: &str) {
        let Ok(expr) = parse_expression(src) else {
            return;
        };
        let printed = expr.to_string();
        let again = parse_expression(&printed)
            .unwrap_or_else(|e| panic!("{src:?} printed as {printed:?} does not parse: {e}"));
        assert_eq!(again, expr, "{src:?} printed as {printed:?}");
        let _ = parse_filter(src);
        let _ = expr.eval(&|_| Value::Int(3));
        let _ = push_down(&expr, &SqliteDialect::leads());
    }

    #[test]
    fn fuzz_never_panics_and_printing_round_trips() {
        let mut rng = Rng(0x5EED);
        let pieces = [
            "a",
            "b.c",
            " ",
            "(",
            ")",
            ",",
            "=",
            "!=",
            "<>",
            "<",
            "<=",
            ">",
            ">=",
            "+",
            "-",
            "*",
            "/",
            "AND",
            "or",
            "NOT",
            "IN",
            "LIKE",
            "IS",
            "NULL",
            "true",
            "1",
            "2.50",
            "\"s\"",
            "'t\\''",
            "hour(",
            "coalesce(",
            "\\",
            "\"",
            ".",
            "é",
            "==",
            "!",
            "&&",
            "9999999999999999999999",
        ];
        for seed in SEEDS {
            let chars: Vec<char> = seed.chars().collect();
            for cut in 0..=chars.len() {
                check_no_panic_and_round_trip(&chars[..cut].iter().collect::<String>());
            }
        }
        for _ in 0..20_000 {
            let src = if rng.below(2) == 0 {
                (0..rng.below(12))
                    .map(|_| pieces[rng.below(pieces.len())])
                    .collect::<Vec<_>>()
                    .join(" ")
            } else {
                let mut chars: Vec<char> = SEEDS[rng.below(SEEDS.len())].chars().collect();
                for _ in 0..1 + rng.below(3) {
                    let at = rng.below(chars.len() + 1);
                    match rng.below(3) {
                        0 if at < chars.len() => {
                            chars.remove(at);
                        }
                        1 => chars.insert(at, (b' ' + rng.below(95) as u8) as char),
                        _ => chars.truncate(at),
                    }
                }
                chars.into_iter().collect()
            };
            check_no_panic_and_round_trip(&src);
        }
        let deep = "(".repeat(100_000) + "a" + &")".repeat(100_000);
        assert!(parse_filter(&deep).is_err());
        let long = vec!["a = 1"; 10_000].join(" AND ");
        assert!(parse_filter(&long).is_ok());
        assert!(parse_expression(&vec!["a"; 10_000].join(" + ")).is_err());
    }

    #[test]
    fn display_is_canonical() {
        let cases = [
            ("a = 1 and not b <> 'x'", r#"a = 1 AND NOT b != "x""#),
            ("(a - (b - c)) * -d / -2", "(a - (b - c)) * -d / -2"),
            ("a or (b or c) and (d and e)", "a OR (b OR c) AND d AND e"),
            ("(a or b) or c", "a OR b OR c"),
            ("not (a or b)", "NOT (a OR b)"),
            (
                r#"x like 'a\\%' and y not in (1,2.50 , NULL)"#,
                r#"x LIKE "a\\%" AND y NOT IN (1, 2.50, NULL)"#,
            ),
            ("HOUR(ts) is not null", "hour(ts) IS NOT NULL"),
        ];
        for (src, want) in cases {
            assert_eq!(
                parse_expression(src).map(|e| e.to_string()),
                Ok(want.to_string())
            );
        }
    }

    #[test]
    fn errors_say_where_and_what() {
        let cases = [
            (
                "revenue >= ",
                "column 12: expected a value after `>=`, found end of input",
            ),
            (
                "hours(timestamp) = 3",
                "column 1: unknown function `hours`; did you mean `hour`?",
            ),
            (
                "hour(a, b) = 1",
                "column 1: function `hour` takes 1 argument, found 2",
            ),
            (
                "revenue + 1",
                "column 1: expected a condition such as `revenue > 0`, found a value; compare it with something",
            ),
            (
                "a = 1 b = 2",
                "column 7: unexpected `b` after a complete expression; join conditions with AND or OR",
            ),
            (
                "a = \"x",
                "column 5: unterminated string; close it with `\"`",
            ),
            (
                "a = 1 AND (b = 2",
                "column 17: expected `)` to close the `(` at column 11, found end of input",
            ),
            ("a == 1", "column 3: `==` is not an operator; use `=`"),
            (
                "a = 1 AND b + 1",
                "column 11: expected a condition such as `revenue > 0`, found a value; compare it with something",
            ),
        ];
        for (src, want) in cases {
            let got = parse_filter(src).map(|e| e.to_string());
            assert_eq!(
                got.map_err(|e| e.to_string()),
                Err(want.to_string()),
                "{src}"
            );
        }
    }

    #[test]
    fn fields_are_listed_once_in_order() {
        let e = parse_filter("coalesce(b, a.x) = 1 AND a.x > 2 OR hour(c) = b").unwrap();
        assert_eq!(e.fields(), ["b", "a.x", "c"]);
    }
}

/// Hostile filters: whatever an operator (or a pasted snippet) writes, parsing, evaluation and
/// push-down never panic, and every error points inside the text.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use rust_decimal::Decimal;

    /// Pieces of the language, including the edges: huge and tiny numbers, division by zero,
    /// unbalanced quotes and parentheses, keywords in odd places.
    const TOKENS: &[&str] = &[
        "revenue",
        "cost",
        "state",
        "email.valid",
        "created_at",
        "a.b.c",
        "AND",
        "OR",
        "NOT",
        "IN",
        "LIKE",
        "IS",
        "NULL",
        "true",
        "false",
        "null",
        "=",
        "!=",
        "<>",
        "<",
        "<=",
        ">",
        ">=",
        "+",
        "-",
        "*",
        "/",
        "%",
        "(",
        ")",
        ",",
        "'",
        "\"",
        "\"CA\"",
        "'x%_\\'",
        "0",
        "1",
        "-1",
        "1.5",
        "0.0001",
        "9223372036854775807",
        "-9223372036854775808",
        "99999999999999999999999999999999",
        "1e308",
        "1e-400",
        "hour(",
        "weekday(",
        "date(",
        "lower(",
        "upper(",
        "length(",
        "coalesce(",
        "\"2024-01-15T10:00:00Z\"",
        "é",
        "\u{0}",
        "\\",
        " ",
    ];

    fn token_soup() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(TOKENS), 0..14).prop_map(|t| t.join(" "))
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            prop_oneof![Just(i64::MAX), Just(i64::MIN), Just(0), any::<i64>()].prop_map(Value::Int),
            prop_oneof![Just(Decimal::MAX), Just(Decimal::MIN), Just(Decimal::ZERO)]
                .prop_map(Value::Decimal),
            prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(0.0), any::<f64>()]
                .prop_map(Value::Float),
            ".{0,12}".prop_map(Value::Text),
            Just(Value::Timestamp(chrono::DateTime::<chrono::Utc>::MAX_UTC)),
            Just(Value::Timestamp(chrono::DateTime::<chrono::Utc>::MIN_UTC)),
        ]
    }

    fn check_error_column(src: &str, e: &ParseError) -> Result<(), TestCaseError> {
        let chars = src.chars().count();
        prop_assert!(
            e.column >= 1 && e.column <= chars + 1,
            "column {} outside `{src}` ({chars} chars): {}",
            e.column,
            e.message
        );
        Ok(())
    }

    fn exercise(src: &str, row: &[Value]) -> Result<(), TestCaseError> {
        let lookup = |field: &str| {
            let i = field.bytes().map(usize::from).sum::<usize>();
            row.get(i % row.len().max(1)).cloned().unwrap_or_default()
        };
        match parse_filter(src) {
            Ok(expr) => {
                expr.matches(&lookup);
                for dialect in [SqliteDialect::leads(), SqliteDialect::events()] {
                    push_down(&expr, &dialect);
                }
            }
            Err(e) => check_error_column(src, &e)?,
        }
        match parse_expression(src) {
            Ok(expr) => {
                expr.eval(&lookup);
            }
            Err(e) => check_error_column(src, &e)?,
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn arbitrary_text_never_panics(src in "\\PC{0,40}", row in prop::collection::vec(value(), 1..4)) {
            exercise(&src, &row)?;
        }

        #[test]
        fn token_soup_never_panics(src in token_soup(), row in prop::collection::vec(value(), 1..4)) {
            exercise(&src, &row)?;
        }
    }
}
