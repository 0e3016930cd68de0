//! Recursive-descent parser from tokens to [`Expr`], with errors that say what to do.
//!
//! Nesting (parentheses, NOT, unary minus, function arguments) and operator chains share one
//! depth budget, so hostile input yields an error instead of overflowing the stack, and the
//! resulting trees are shallow enough for the recursive evaluator and printer.

use super::lexer::{Tok, Token, lex};
use super::{ArithOp, Expr, Func, Kind, ParseError};
use crate::value::Value;

/// Maximum nesting depth; real filters use a handful of levels.
const MAX_DEPTH: usize = 64;

/// Parses a whole expression; anything left over is an error.
pub(crate) fn parse(src: &str) -> Result<Expr, ParseError> {
    let mut p = Parser {
        toks: lex(src)?,
        pos: 0,
        depth: 0,
    };
    let expr = p.or()?;
    let t = p.peek();
    match t.tok {
        Tok::Eof => Ok(expr),
        _ => fail(
            t.col,
            format!(
                "unexpected {} after a complete expression; join conditions with AND or OR",
                describe(t)
            ),
        ),
    }
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
    depth: usize,
}

fn fail<T>(column: usize, message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError::new(column, message))
}

/// How a token is named in error messages.
fn describe(t: &Token) -> String {
    match &t.tok {
        Tok::Eof => "end of input".into(),
        Tok::Ident(w) if KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(w)) => {
            format!("keyword `{}`", w.to_ascii_uppercase())
        }
        _ => format!("`{}`", t.text),
    }
}

const KEYWORDS: [&str; 9] = [
    "AND", "OR", "NOT", "IN", "LIKE", "IS", "NULL", "TRUE", "FALSE",
];

/// Refuses a value where a condition is needed (`a = 1 AND revenue`).
pub(crate) fn predicate(e: &Expr, col: usize) -> Result<(), ParseError> {
    match e.kind() {
        Kind::Value => fail(
            col,
            "expected a condition such as `revenue > 0`, found a value; compare it with something",
        ),
        _ => Ok(()),
    }
}

/// Refuses a condition where a value is needed (`(a = 1) + 2`).
fn operand(e: &Expr, col: usize) -> Result<(), ParseError> {
    match e.kind() {
        Kind::Condition => fail(
            col,
            "expected a value, found a condition; a comparison cannot be an operand here",
        ),
        _ => Ok(()),
    }
}

impl Parser {
    fn peek(&self) -> &Token {
        // The token list always ends with Eof and `advance` never moves past it.
        &self.toks[self.pos.min(self.toks.len() - 1)]
    }

    fn advance(&mut self) -> Token {
        let t = self.peek().clone();
        if t.tok != Tok::Eof {
            self.pos += 1;
        }
        t
    }

    fn at_keyword(&self, kw: &str) -> bool {
        matches!(&self.peek().tok, Tok::Ident(w) if w.eq_ignore_ascii_case(kw))
    }

    fn eat_keyword(&mut self, kw: &str) -> bool {
        let found = self.at_keyword(kw);
        if found {
            self.pos += 1;
        }
        found
    }

    /// Text for "after `X`" in messages: the previous token, if any.
    fn after(&self) -> String {
        match self.pos.checked_sub(1).and_then(|i| self.toks.get(i)) {
            Some(t) => format!(" after `{}`", t.text),
            None => String::new(),
        }
    }

    /// "expected `what`, found <current token>" at the current token.
    fn expected<T>(&self, what: &str) -> Result<T, ParseError> {
        let t = self.peek();
        fail(t.col, format!("expected {what}, found {}", describe(t)))
    }

    fn expect(&mut self, tok: Tok, what: &str) -> Result<(), ParseError> {
        if self.peek().tok != tok {
            return self.expected(what);
        }
        self.advance();
        Ok(())
    }

    /// Spends one level of the depth budget; callers restore `self.depth` when done.
    fn deeper(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        match self.depth > MAX_DEPTH {
            true => fail(
                self.peek().col,
                format!(
                    "expression is nested too deeply (more than {MAX_DEPTH} levels); simplify it"
                ),
            ),
            false => Ok(()),
        }
    }

    /// Parses a sub-expression that must be a value (an operand, argument or list item).
    fn value(
        &mut self,
        next: fn(&mut Self) -> Result<Expr, ParseError>,
    ) -> Result<Expr, ParseError> {
        let col = self.peek().col;
        let e = next(self)?;
        operand(&e, col)?;
        Ok(e)
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        self.chain("OR", Self::and, Expr::Or)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        self.chain("AND", Self::not, Expr::And)
    }

    /// `item (KW item)*` as one n-ary node, flattening parenthesized nodes of the same kind.
    fn chain(
        &mut self,
        kw: &str,
        item: fn(&mut Self) -> Result<Expr, ParseError>,
        make: fn(Vec<Expr>) -> Expr,
    ) -> Result<Expr, ParseError> {
        let mut col = self.peek().col;
        let first = item(self)?;
        if !self.at_keyword(kw) {
            return Ok(first);
        }
        let mut items = Vec::new();
        let mut next = Some(first);
        while let Some(e) = next.take() {
            predicate(&e, col)?;
            match (kw, e) {
                ("AND", Expr::And(v)) | ("OR", Expr::Or(v)) => items.extend(v),
                (_, e) => items.push(e),
            }
            if self.eat_keyword(kw) {
                col = self.peek().col;
                next = Some(item(self)?);
            }
        }
        Ok(make(items))
    }

    fn not(&mut self) -> Result<Expr, ParseError> {
        if !self.at_keyword("NOT") {
            return self.comparison();
        }
        self.advance();
        let saved = self.depth;
        self.deeper()?;
        let col = self.peek().col;
        let e = self.not()?;
        predicate(&e, col)?;
        self.depth = saved;
        Ok(Expr::Not(Box::new(e)))
    }

    fn comparison(&mut self) -> Result<Expr, ParseError> {
        let col = self.peek().col;
        let lhs = self.sum()?;
        let t = self.peek();
        if matches!(t.tok, Tok::Cmp(_))
            || ["IS", "NOT", "IN", "LIKE"]
                .iter()
                .any(|k| self.at_keyword(k))
        {
            operand(&lhs, col)?;
        }
        let boxed = Box::new(lhs);
        let e = if let Tok::Cmp(op) = self.peek().tok {
            self.advance();
            Expr::Compare(op, boxed, Box::new(self.value(Self::sum)?))
        } else if self.eat_keyword("IS") {
            let negated = self.eat_keyword("NOT");
            if !self.eat_keyword("NULL") {
                return self.expected("NULL or NOT NULL after IS");
            }
            Expr::IsNull {
                expr: boxed,
                negated,
            }
        } else {
            let negated = self.eat_keyword("NOT");
            if self.eat_keyword("IN") {
                self.expect(
                    Tok::LParen,
                    "`(` after IN, as in `state IN (\"CA\", \"TX\")`",
                )?;
                let list = self.arguments()?;
                if list.is_empty() {
                    return fail(
                        self.toks[self.pos - 1].col,
                        "expected at least one value in the IN list",
                    );
                }
                Expr::In {
                    expr: boxed,
                    list,
                    negated,
                }
            } else if self.eat_keyword("LIKE") {
                let pattern = Box::new(self.value(Self::sum)?);
                Expr::Like {
                    expr: boxed,
                    pattern,
                    negated,
                }
            } else if negated {
                return self.expected("IN or LIKE after NOT");
            } else {
                return Ok(*boxed);
            }
        };
        let t = self.peek();
        if matches!(t.tok, Tok::Cmp(_)) || ["IS", "IN", "LIKE"].iter().any(|k| self.at_keyword(k)) {
            let msg = "comparisons cannot be chained; combine them with AND";
            return fail(t.col, format!("unexpected {}: {msg}", describe(t)));
        }
        Ok(e)
    }

    fn sum(&mut self) -> Result<Expr, ParseError> {
        self.arith(Self::product, |t| match t {
            Tok::Plus => Some(ArithOp::Add),
            Tok::Minus => Some(ArithOp::Sub),
            _ => None,
        })
    }

    fn product(&mut self) -> Result<Expr, ParseError> {
        self.arith(Self::unary, |t| match t {
            Tok::Star => Some(ArithOp::Mul),
            Tok::Slash => Some(ArithOp::Div),
            _ => None,
        })
    }

    /// A left-associative chain; every operator spends depth because the tree grows with it.
    fn arith(
        &mut self,
        next: fn(&mut Self) -> Result<Expr, ParseError>,
        op_of: fn(&Tok) -> Option<ArithOp>,
    ) -> Result<Expr, ParseError> {
        let saved = self.depth;
        let col = self.peek().col;
        let mut lhs = next(self)?;
        while let Some(op) = op_of(&self.peek().tok) {
            operand(&lhs, col)?;
            self.advance();
            self.deeper()?;
            let rhs = self.value(next)?;
            lhs = Expr::Arith(op, Box::new(lhs), Box::new(rhs));
        }
        self.depth = saved;
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.peek().tok != Tok::Minus {
            return self.primary();
        }
        self.advance();
        let saved = self.depth;
        self.deeper()?;
        let e = self.value(Self::unary)?;
        self.depth = saved;
        Ok(match e {
            Expr::Literal(Value::Int(n)) if n != i64::MIN => Expr::Literal(Value::Int(-n)),
            Expr::Literal(Value::Decimal(d)) => Expr::Literal(Value::Decimal(-d)),
            e => Expr::Neg(Box::new(e)),
        })
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let t = self.peek().clone();
        match t.tok {
            Tok::Num(v) => {
                self.advance();
                Ok(Expr::Literal(v))
            }
            Tok::Str(s) => {
                self.advance();
                Ok(Expr::Literal(Value::Text(s)))
            }
            Tok::LParen => {
                self.advance();
                let saved = self.depth;
                self.deeper()?;
                let e = self.or()?;
                self.depth = saved;
                self.expect(
                    Tok::RParen,
                    &format!("`)` to close the `(` at column {}", t.col),
                )?;
                Ok(e)
            }
            Tok::Ident(word) => {
                self.advance();
                if self.peek().tok == Tok::LParen {
                    return self.call(&word, t.col);
                }
                match word.to_ascii_uppercase().as_str() {
                    "TRUE" => Ok(Expr::Literal(Value::Bool(true))),
                    "FALSE" => Ok(Expr::Literal(Value::Bool(false))),
                    "NULL" => Ok(Expr::Literal(Value::Null)),
                    kw if KEYWORDS.contains(&kw) => {
                        self.pos -= 1;
                        self.expected_value()
                    }
                    _ => Ok(Expr::Field(word)),
                }
            }
            _ => self.expected_value(),
        }
    }

    fn expected_value<T>(&self) -> Result<T, ParseError> {
        self.expected(&format!("a value{}", self.after()))
    }

    /// `name(args)` with the `(` not yet consumed.
    fn call(&mut self, name: &str, col: usize) -> Result<Expr, ParseError> {
        let Some(func) = Func::from_name(name) else {
            let lower = name.to_ascii_lowercase();
            let best = Func::ALL
                .into_iter()
                .min_by_key(|f| crate::text::edit_distance(&lower, f.name()))
                .filter(|f| crate::text::edit_distance(&lower, f.name()) <= 2);
            let hint = match best {
                Some(f) => format!("did you mean `{}`?", f.name()),
                None => format!(
                    "available functions: {}",
                    Func::ALL.map(Func::name).join(", ")
                ),
            };
            return fail(col, format!("unknown function `{name}`; {hint}"));
        };
        self.advance();
        let saved = self.depth;
        self.deeper()?;
        let args = self.arguments()?;
        self.depth = saved;
        let (ok, want) = match func {
            Func::Coalesce => (args.len() >= 2, "at least 2 arguments"),
            _ => (args.len() == 1, "1 argument"),
        };
        if !ok {
            let name = func.name();
            return fail(
                col,
                format!("function `{name}` takes {want}, found {}", args.len()),
            );
        }
        Ok(Expr::Call(func, args))
    }

    /// A comma-separated list of values after `(`, up to and including the `)`.
    fn arguments(&mut self) -> Result<Vec<Expr>, ParseError> {
        let open = self.toks[self.pos.saturating_sub(1)].col;
        let mut args = Vec::new();
        if self.peek().tok == Tok::RParen {
            self.advance();
            return Ok(args);
        }
        loop {
            args.push(self.value(Self::or)?);
            match self.peek().tok {
                Tok::Comma => {
                    self.advance();
                }
                Tok::RParen => {
                    self.advance();
                    return Ok(args);
                }
                _ => {
                    let what = format!("`,` or `)` to close the `(` at column {open}");
                    return self.expect(Tok::RParen, &what).map(|()| args);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{CmpOp, parse_expression, parse_filter};
    use super::*;

    fn field(p: &str) -> Box<Expr> {
        Box::new(Expr::Field(p.into()))
    }

    #[test]
    fn precedence_and_associativity() {
        let e = parse_expression("a - b - c * -d").unwrap();
        let want = Expr::Arith(
            ArithOp::Sub,
            Box::new(Expr::Arith(ArithOp::Sub, field("a"), field("b"))),
            Box::new(Expr::Arith(
                ArithOp::Mul,
                field("c"),
                Box::new(Expr::Neg(field("d"))),
            )),
        );
        assert_eq!(e, want);
        let e = parse_filter("x = 1 OR y = 2 AND NOT z <> -3").unwrap();
        assert_eq!(e.to_string(), "x = 1 OR y = 2 AND NOT z != -3");
        assert!(matches!(e, Expr::Or(ref v) if v.len() == 2 && matches!(v[1], Expr::And(_))));
    }

    #[test]
    fn examples_from_the_design_parse() {
        let e =
            parse_filter(r#"state in ("CA", 'TX') and Lead_Score >= 70 AND email.valid = TRUE"#)
                .unwrap();
        let Expr::And(parts) = e else {
            panic!("not an AND")
        };
        assert_eq!(
            parts[2],
            Expr::Compare(
                CmpOp::Eq,
                field("email.valid"),
                Box::new(Expr::Literal(Value::Bool(true)))
            )
        );
        assert!(
            parse_filter("appended.geo.city LIKE 'San%' AND weekday(timestamp) IN (6, 7)").is_ok()
        );
        assert!(
            parse_filter("email.valid").is_ok(),
            "a bare field may be used as a condition"
        );
    }

    #[test]
    fn more_errors() {
        let err = |s: &str| parse_filter(s).unwrap_err().to_string();
        assert_eq!(
            err("a = 1 AND"),
            "column 10: expected a value after `AND`, found end of input"
        );
        assert_eq!(
            err("a IS 3"),
            "column 6: expected NULL or NOT NULL after IS, found `3`"
        );
        assert_eq!(
            err("a NOT = 3"),
            "column 7: expected IN or LIKE after NOT, found `=`"
        );
        assert_eq!(
            err("a IN ()"),
            "column 7: expected at least one value in the IN list"
        );
        assert_eq!(
            err("a IN (1 2)"),
            "column 9: expected `,` or `)` to close the `(` at column 6, found `2`"
        );
        assert_eq!(
            err("a = 1 = 2"),
            "column 7: unexpected `=`: comparisons cannot be chained; combine them with AND"
        );
        assert_eq!(
            err("(a = 1) + 2 > 0"),
            "column 1: expected a value, found a condition; a comparison cannot be an operand here"
        );
        assert_eq!(
            err("frob(a)"),
            "column 1: unknown function `frob`; available functions: hour, weekday, date, lower, upper, length, coalesce"
        );
        assert_eq!(
            err("coalesce(a) = 1"),
            "column 1: function `coalesce` takes at least 2 arguments, found 1"
        );
        assert_eq!(
            err("a = OR"),
            "column 5: expected a value after `=`, found keyword `OR`"
        );
    }
}
