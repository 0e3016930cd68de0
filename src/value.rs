//! The value of one cell of an exported row.
//!
//! Every stage after the store speaks `Value`: the filter evaluator, computed columns, masks and
//! the encoders. Money is an exact [`Decimal`]; timestamps are UTC.

use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use std::fmt;

/// One cell of a row.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// Missing or SQL NULL.
    #[default]
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// An exact decimal (money, averages). Rendered without float noise.
    Decimal(Decimal),
    /// A floating-point number that came from a JSON document (never money).
    Float(f64),
    /// Text.
    Text(String),
    /// An instant, rendered as RFC 3339 / ISO 8601 UTC (`2024-01-15T10:30:00Z`).
    Timestamp(DateTime<Utc>),
}

impl Value {
    /// True for [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Money and other decimals are printed with at least two decimal places (`45.00`) and
    /// without trailing zeros beyond that (`0.005`), so the text is exact and stable.
    pub fn format_decimal(d: &Decimal) -> String {
        let mut d = d.normalize();
        if d.scale() < 2 {
            d.rescale(2);
        }
        d.to_string()
    }

    /// A timestamp as ISO 8601 UTC with a `Z`, seconds precision unless sub-second data exists.
    pub fn format_timestamp(t: &DateTime<Utc>) -> String {
        t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }

    /// The value as a JSON value (decimals become JSON numbers with their exact text).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Decimal(d) => {
                // Exact text of the decimal, as a JSON number; falls back to a string if the
                // text could not be represented (never for finite decimals).
                serde_json::from_str(&Value::format_decimal(d))
                    .unwrap_or_else(|_| serde_json::Value::String(Value::format_decimal(d)))
            }
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Text(s) => serde_json::Value::String(s.clone()),
            Value::Timestamp(t) => serde_json::Value::String(Value::format_timestamp(t)),
        }
    }

    /// Converts a JSON document value into a cell (objects and arrays stay JSON text).
    pub fn from_json(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Value::Int(i)
                } else {
                    let text = n.to_string();
                    text.parse::<Decimal>()
                        .map(Value::Decimal)
                        .unwrap_or_else(|_| Value::Float(n.as_f64().unwrap_or(f64::NAN)))
                }
            }
            serde_json::Value::String(s) => Value::Text(s.clone()),
            other => Value::Text(other.to_string()),
        }
    }
}

/// Text form used by CSV, TSV and XML: NULL is the empty string here (encoders substitute
/// their configured null text before calling this).
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => Ok(()),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Decimal(d) => f.write_str(&Value::format_decimal(d)),
            Value::Float(x) => write!(f, "{x}"),
            Value::Text(s) => f.write_str(s),
            Value::Timestamp(t) => f.write_str(&Value::format_timestamp(t)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_print_exactly_with_two_places() {
        assert_eq!(Value::Decimal(Decimal::new(4500, 2)).to_string(), "45.00");
        assert_eq!(Value::Decimal(Decimal::new(45, 0)).to_string(), "45.00");
        assert_eq!(Value::Decimal(Decimal::new(50, 4)).to_string(), "0.005");
        let sum = Decimal::new(1, 1) + Decimal::new(2, 1);
        assert_eq!(Value::Decimal(sum).to_string(), "0.30");
    }
}
