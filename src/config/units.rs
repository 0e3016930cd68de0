//! Human-sized quantities in definitions: byte sizes (`"1GB"`, `"25MB"`) and retention periods
//! (`"90d"`, `"7y"`, `"never"`).
//!
//! Both parse at deserialize time (`#[serde(try_from = "String")]`), and their JSON Schema carries
//! the same grammar as a `pattern`, so the schema check reports every bad value in a file at once.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A size in bytes, written `"1GB"`, `"25MB"`, `"512KiB"` or a bare number of bytes.
///
/// `KB`/`MB`/`GB`/`TB` are decimal (1 MB = 1,000,000 bytes, as storage vendors and mail
/// providers count); `KiB`/`MiB`/`GiB`/`TiB` are binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(try_from = "SizeText", into = "String")]
pub struct ByteSize(pub u64);

/// The accepted input forms of [`ByteSize`]: a string with a unit or a bare integer.
#[derive(Deserialize)]
#[serde(untagged)]
enum SizeText {
    Text(String),
    Bytes(u64),
}

/// Grammar of [`ByteSize`], shared by the parser's error text and the JSON Schema pattern.
pub const BYTE_SIZE_PATTERN: &str = r"^[0-9]+(\.[0-9]+)? ?([kKmMgGtT]i?[bB]|[bB])?$";

impl ByteSize {
    /// The number of bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(split);
        let number: f64 = number.parse().map_err(|_| {
            format!("invalid size `{text}`: write a number and a unit, such as `25MB` or `1GiB`")
        })?;
        let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            "tb" => 1_000_000_000_000,
            "kib" => 1 << 10,
            "mib" => 1 << 20,
            "gib" => 1 << 30,
            "tib" => 1 << 40,
            other => {
                return Err(format!(
                    "invalid size unit `{other}` in `{text}`: use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB"
                ));
            }
        };
        let bytes = number * multiplier as f64;
        if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
            return Err(format!("invalid size `{text}`: it must be at least 1 byte"));
        }
        Ok(ByteSize(bytes.round() as u64))
    }
}

impl TryFrom<SizeText> for ByteSize {
    type Error = String;

    fn try_from(value: SizeText) -> Result<Self, Self::Error> {
        match value {
            SizeText::Text(text) => text.parse(),
            SizeText::Bytes(0) => Err("invalid size `0`: it must be at least 1 byte".into()),
            SizeText::Bytes(n) => Ok(ByteSize(n)),
        }
    }
}

impl From<ByteSize> for String {
    fn from(size: ByteSize) -> String {
        size.to_string()
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 4] = [
            (1_000_000_000_000, "TB"),
            (1_000_000_000, "GB"),
            (1_000_000, "MB"),
            (1_000, "KB"),
        ];
        for (size, unit) in UNITS {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{}{unit}", self.0 / size);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl JsonSchema for ByteSize {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ByteSize".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A size: a number with a unit (B, KB, MB, GB, TB decimal; KiB, MiB, GiB, TiB binary) or a bare number of bytes.",
            "anyOf": [
                { "type": "string", "pattern": BYTE_SIZE_PATTERN },
                { "type": "integer", "minimum": 1 }
            ],
            "examples": ["25MB", "1GB", "512MiB"]
        })
    }
}

/// How long delivered objects are kept: `"90d"`, `"12h"`, `"4w"`, `"7y"` or `"never"`.
///
/// A year is 365 days and a week 7 days; retention is a lower bound (a sweep deletes an object
/// at the first sweep after it expired), so calendar precision is not needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub enum Retention {
    /// Never delete.
    Never,
    /// Delete once the object is older than this many seconds.
    After(u64),
}

/// Grammar of [`Retention`], shared with the JSON Schema.
pub const RETENTION_PATTERN: &str = r"^(never|[0-9]+ ?(h|d|w|y))$";

impl Retention {
    /// The retention as a duration, or `None` for `never`.
    pub fn duration(self) -> Option<chrono::Duration> {
        match self {
            Retention::Never => None,
            Retention::After(secs) => chrono::Duration::try_seconds(secs as i64),
        }
    }
}

impl FromStr for Retention {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        if trimmed == "never" {
            return Ok(Retention::Never);
        }
        let split = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(split);
        let hint = "write a number and a unit h, d, w or y (such as `90d` or `7y`), or `never`";
        let number: u64 = number
            .parse()
            .map_err(|_| format!("invalid retention `{text}`: {hint}"))?;
        let unit_secs: u64 = match unit.trim() {
            "h" => 3_600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            "y" => 365 * 86_400,
            _ => return Err(format!("invalid retention `{text}`: {hint}")),
        };
        if number == 0 {
            return Err(format!(
                "invalid retention `{text}`: a zero retention would delete every delivery at once; use at least `1h`, or `never`"
            ));
        }
        number
            .checked_mul(unit_secs)
            .map(Retention::After)
            .ok_or_else(|| format!("invalid retention `{text}`: too long; use `never`"))
    }
}

impl TryFrom<String> for Retention {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<Retention> for String {
    fn from(r: Retention) -> String {
        r.to_string()
    }
}

impl fmt::Display for Retention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Retention::Never => f.write_str("never"),
            Retention::After(secs) => {
                for (unit_secs, unit) in [(365 * 86_400, "y"), (7 * 86_400, "w"), (86_400, "d")] {
                    if secs % unit_secs == 0 {
                        return write!(f, "{}{unit}", secs / unit_secs);
                    }
                }
                write!(f, "{}h", secs / 3_600)
            }
        }
    }
}

impl JsonSchema for Retention {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Retention".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "How long delivered objects are kept before retention deletes them: a number with a unit h, d, w or y (365 days), or `never`.",
            "type": "string",
            "pattern": RETENTION_PATTERN,
            "examples": ["90d", "7y", "never"]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_decimal_and_binary_units() {
        assert_eq!("1GB".parse::<ByteSize>().unwrap().bytes(), 1_000_000_000);
        assert_eq!("25MB".parse::<ByteSize>().unwrap().bytes(), 25_000_000);
        assert_eq!("512KiB".parse::<ByteSize>().unwrap().bytes(), 512 * 1024);
        assert_eq!("1.5 GiB".parse::<ByteSize>().unwrap().bytes(), 3 << 29);
        assert!("12 parsecs".parse::<ByteSize>().is_err());
        assert!("0MB".parse::<ByteSize>().is_err());
        assert_eq!(ByteSize(25_000_000).to_string(), "25MB");
    }

    #[test]
    fn retention_parses_units_and_never() {
        assert_eq!(
            "90d".parse::<Retention>(),
            Ok(Retention::After(90 * 86_400))
        );
        assert_eq!(
            "7y".parse::<Retention>(),
            Ok(Retention::After(7 * 365 * 86_400))
        );
        assert_eq!("never".parse::<Retention>(), Ok(Retention::Never));
        assert!("90 days".parse::<Retention>().is_err());
        assert!("0d".parse::<Retention>().is_err());
        assert_eq!(Retention::After(90 * 86_400).to_string(), "90d");
    }

    #[test]
    fn schema_patterns_agree_with_parsers() {
        let size =
            jsonschema::validator_for(&serde_json::json!({"pattern": BYTE_SIZE_PATTERN})).unwrap();
        let retention =
            jsonschema::validator_for(&serde_json::json!({"pattern": RETENTION_PATTERN})).unwrap();
        for text in [
            "1GB",
            "25MB",
            "512KiB",
            "1.5 GiB",
            "100",
            "12 parsecs",
            "GB",
        ] {
            let json = serde_json::Value::String(text.into());
            assert_eq!(
                size.is_valid(&json),
                text.parse::<ByteSize>().is_ok(),
                "{text}"
            );
        }
        for text in ["90d", "7y", "never", "12h", "4w", "90 days", "d", "7 y"] {
            let json = serde_json::Value::String(text.into());
            assert_eq!(
                retention.is_valid(&json),
                text.parse::<Retention>().is_ok(),
                "{text}"
            );
        }
    }
}
