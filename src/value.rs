//! The value of one cell of an exported row.
//!
//! Every stage after the store speaks `Value`: the filter evaluator, computed columns, masks and
//! the encoders. Money is an exact [`Decimal`]; timestamps are UTC.

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
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
        let mut text = String::new();
        Value::write_decimal(d, &mut text);
        text
    }

    /// [`Value::format_decimal`] appended to `out`, without allocating (it runs for every
    /// money cell of an export).
    pub fn write_decimal(d: &Decimal, out: &mut String) {
        let mut mantissa = d.mantissa().unsigned_abs();
        let mut scale = d.scale();
        while scale > 2 && mantissa.is_multiple_of(10) {
            mantissa /= 10;
            scale -= 1;
        }
        while scale < 2 {
            mantissa *= 10;
            scale += 1;
        }
        if mantissa >= 1 << 96 {
            // Too large for two decimal places in a Decimal: rust_decimal keeps what scale it
            // can, and so does this.
            let mut d = d.normalize();
            d.rescale(2);
            out.push_str(&d.to_string());
            return;
        }
        if mantissa != 0 && d.is_sign_negative() {
            out.push('-');
        }
        // Digits from the least significant, at least one before the point.
        let scale = scale as usize;
        let mut digits = [0u8; 64];
        let mut len = 0;
        while mantissa != 0 || len <= scale {
            digits[len] = b'0' + (mantissa % 10) as u8;
            mantissa /= 10;
            len += 1;
        }
        for (i, &digit) in digits[..len].iter().enumerate().rev() {
            out.push(char::from(digit));
            if i == scale {
                out.push('.');
            }
        }
    }

    /// A timestamp as ISO 8601 UTC with a `Z`, seconds precision unless sub-second data exists.
    pub fn format_timestamp(t: &DateTime<Utc>) -> String {
        let mut text = String::new();
        Value::write_timestamp(t, &mut text);
        text
    }

    /// [`Value::format_timestamp`] appended to `out`; years 0–9999 (every stored time) without
    /// going through chrono's formatter. Like chrono's `AutoSi`, the fraction has 0, 3, 6 or 9
    /// digits, as few as show it exactly.
    pub fn write_timestamp(t: &DateTime<Utc>, out: &mut String) {
        let (date, time) = (t.date_naive(), t.time());
        let nanos = t.nanosecond();
        if nanos >= 1_000_000_000 || !(0..=9999).contains(&date.year()) {
            // Leap seconds and far-off years: chrono's own text.
            out.push_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true));
            return;
        }
        let (fraction, digits) = match nanos {
            0 => (0, 0),
            n if n % 1_000_000 == 0 => (n / 1_000_000, 3),
            n if n % 1_000 == 0 => (n / 1_000, 6),
            n => (n, 9),
        };
        let mut text = *b"0000-00-00T00:00:00.000000000";
        for (at, value, width) in [
            (0, date.year() as u32, 4),
            (5, date.month(), 2),
            (8, date.day(), 2),
            (11, time.hour(), 2),
            (14, time.minute(), 2),
            (17, time.second(), 2),
            (20, fraction, digits),
        ] {
            let mut value = value;
            for i in (at..at + width).rev() {
                text[i] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        }
        let len = if digits == 0 { 19 } else { 20 + digits };
        out.extend(text[..len].iter().map(|&b| char::from(b)));
        out.push('Z');
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

    #[test]
    fn edge_decimals_and_timestamps() {
        let cases = [
            (Decimal::new(-4510, 2), "-45.10"),
            (Decimal::new(-0, 2), "0.00"),
            (Decimal::new(0, 10), "0.00"),
            (Decimal::new(-5, 3), "-0.005"),
            (Decimal::new(1_000_000, 6), "1.00"),
            (Decimal::MAX, "79228162514264337593543950335"),
            (Decimal::MIN, "-79228162514264337593543950335"),
        ];
        for (d, text) in cases {
            assert_eq!(Value::format_decimal(&d), text, "{d:?}");
        }
        let t = DateTime::parse_from_rfc3339("2024-03-09T07:05:01Z").expect("time");
        assert_eq!(
            Value::format_timestamp(&t.with_timezone(&Utc)),
            "2024-03-09T07:05:01Z"
        );
        let t = DateTime::parse_from_rfc3339("2024-03-09T07:05:01.250Z").expect("time");
        assert_eq!(
            Value::format_timestamp(&t.with_timezone(&Utc)),
            "2024-03-09T07:05:01.250Z"
        );
    }

    use proptest::strategy::Strategy;

    proptest::proptest! {
        /// The allocation-free writers print exactly what rust_decimal and chrono print.
        #[test]
        fn writers_agree_with_the_libraries(
            lo in proptest::prelude::any::<u64>(),
            hi in 0u32..,
            negative in proptest::prelude::any::<bool>(),
            scale in 0u32..=28,
            seconds in -62_135_596_800i64..253_402_300_799,
            nanos in proptest::prop_oneof![
                proptest::prelude::Just(0u32),
                (0u32..1000).prop_map(|ms| ms * 1_000_000),
                (0u32..1_000_000).prop_map(|us| us * 1_000),
                0u32..2_000_000_000,
            ],
        ) {
            let d = Decimal::from_parts(lo as u32, (lo >> 32) as u32, hi, negative, scale);
            let mut expected = d.normalize();
            if expected.scale() < 2 {
                expected.rescale(2);
            }
            proptest::prop_assert_eq!(Value::format_decimal(&d), expected.to_string());
            // Leap-second nanos exist only on a minute's last second.
            let Some(t) = DateTime::from_timestamp(seconds, nanos) else {
                return Ok(());
            };
            proptest::prop_assert_eq!(
                Value::format_timestamp(&t),
                t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
            );
        }
    }
}
