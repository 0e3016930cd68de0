//! Splits filter text into tokens, each with the 1-based character column it starts at.
//!
//! The lexer is the gatekeeper for field paths: they match
//! `[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*`, which is what lets SQL dialects embed a path in a
//! JSON path string without quoting problems.

use super::ParseError;
use crate::value::Value;
use rust_decimal::Decimal;

/// One token. Keywords and function names arrive as [`Tok::Ident`]; the parser decides what
/// they mean from context, case-insensitively.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Ident(String),
    Str(String),
    Num(Value),
    LParen,
    RParen,
    Comma,
    Cmp(super::CmpOp),
    Plus,
    Minus,
    Star,
    Slash,
    Eof,
}

/// A token, where it starts, and its source text (for error messages).
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    pub col: usize,
    pub text: String,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Tokenizes `src`; the last token is always [`Tok::Eof`] at the column after the text.
pub(crate) fn lex(src: &str) -> Result<Vec<Token>, ParseError> {
    use super::CmpOp;
    let chars: Vec<char> = src.chars().collect();
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let start = i;
        let c = chars[i];
        let err = |msg: String| Err(ParseError::new(start + 1, msg));
        let tok = match (c, at(i + 1)) {
            (c, _) if c.is_whitespace() => {
                i += 1;
                continue;
            }
            ('!', '=') | ('<', '>') => Tok::Cmp(CmpOp::Ne),
            ('<', '=') => Tok::Cmp(CmpOp::Le),
            ('>', '=') => Tok::Cmp(CmpOp::Ge),
            ('=', '=') => return err("`==` is not an operator; use `=`".into()),
            ('&', '&') => return err("`&&` is not an operator; use AND".into()),
            ('|', '|') => return err("`||` is not an operator; use OR".into()),
            ('!', _) => return err("unexpected `!`; use NOT, or `!=` for not equal".into()),
            ('(', _) => Tok::LParen,
            (')', _) => Tok::RParen,
            (',', _) => Tok::Comma,
            ('=', _) => Tok::Cmp(CmpOp::Eq),
            ('<', _) => Tok::Cmp(CmpOp::Lt),
            ('>', _) => Tok::Cmp(CmpOp::Gt),
            ('+', _) => Tok::Plus,
            ('-', _) => Tok::Minus,
            ('*', _) => Tok::Star,
            ('/', _) => Tok::Slash,
            ('"' | '\'', _) => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return err(format!("unterminated string; close it with `{c}`"));
                        }
                        Some(&q) if q == c => break,
                        Some('\\') => {
                            s.push(match at(i + 1) {
                                'n' => '\n',
                                't' => '\t',
                                'r' => '\r',
                                e @ ('\\' | '"' | '\'') => e,
                                '\0' if i + 1 >= chars.len() => {
                                    return err(format!(
                                        "unterminated string; close it with `{c}`"
                                    ));
                                }
                                e => {
                                    return Err(ParseError::new(
                                        i + 1,
                                        format!(
                                            "unknown escape `\\{e}`; write `\\\\` for a backslash"
                                        ),
                                    ));
                                }
                            });
                            i += 1;
                        }
                        Some(&other) => s.push(other),
                    }
                    i += 1;
                }
                Tok::Str(s)
            }
            (c, _) if c.is_ascii_digit() => {
                while at(i + 1).is_ascii_digit() {
                    i += 1;
                }
                if at(i + 1) == '.' {
                    i += 1;
                    if !at(i + 1).is_ascii_digit() {
                        return Err(ParseError::new(
                            i + 1,
                            "expected a digit after the decimal point",
                        ));
                    }
                    while at(i + 1).is_ascii_digit() {
                        i += 1;
                    }
                }
                let text: String = chars[start..=i].iter().collect();
                let value = match text.parse::<i64>() {
                    Ok(n) => Value::Int(n),
                    Err(_) => match text.parse::<Decimal>() {
                        Ok(d) => Value::Decimal(d),
                        Err(_) => {
                            return err(format!("number `{text}` is too large or too precise"));
                        }
                    },
                };
                Tok::Num(value)
            }
            (c, _) if is_ident_start(c) => {
                while is_ident_char(at(i + 1)) {
                    i += 1;
                }
                while at(i + 1) == '.' {
                    if !is_ident_char(at(i + 2)) {
                        return Err(ParseError::new(
                            i + 2,
                            "expected a field name after `.` (letters, digits or `_`)",
                        ));
                    }
                    i += 2;
                    while is_ident_char(at(i + 1)) {
                        i += 1;
                    }
                }
                Tok::Ident(chars[start..=i].iter().collect())
            }
            (c, _) => return err(format!("unexpected character `{c}`")),
        };
        if matches!(tok, Tok::Cmp(CmpOp::Ne | CmpOp::Le | CmpOp::Ge)) {
            i += 1;
        }
        i += 1;
        out.push(Token {
            tok,
            col: start + 1,
            text: chars[start..i.min(chars.len())].iter().collect(),
        });
    }
    out.push(Token {
        tok: Tok::Eof,
        col: chars.len() + 1,
        text: String::new(),
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<Tok> {
        lex(src).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn tokens_and_columns() {
        let toks = lex("a.b_1 <> 'it\\'s' >= 12.50").unwrap();
        let cols: Vec<usize> = toks.iter().map(|t| t.col).collect();
        assert_eq!(cols, [1, 7, 10, 18, 21, 26]);
        assert_eq!(toks[2].tok, Tok::Str("it's".into()));
        assert_eq!(toks[4].tok, Tok::Num(Value::Decimal(Decimal::new(1250, 2))));
        assert_eq!(toks[1].text, "<>");
    }

    #[test]
    fn big_integers_become_decimals() {
        assert_eq!(
            kinds("99999999999999999999")[0],
            Tok::Num(Value::Decimal("99999999999999999999".parse().unwrap()))
        );
    }

    #[test]
    fn lexical_errors_point_at_the_problem() {
        let err = |s: &str| lex(s).unwrap_err().to_string();
        assert_eq!(
            err("a = 'x\\q'"),
            "column 7: unknown escape `\\q`; write `\\\\` for a backslash"
        );
        assert_eq!(
            err("a. = 1"),
            "column 2: expected a field name after `.` (letters, digits or `_`)"
        );
        assert_eq!(
            err("a = 1."),
            "column 6: expected a digit after the decimal point"
        );
        assert_eq!(err("a = é"), "column 5: unexpected character `é`");
        assert_eq!(
            err("'abc\\"),
            "column 1: unterminated string; close it with `'`"
        );
    }
}
