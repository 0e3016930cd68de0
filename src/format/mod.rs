//! Row encoders: CSV, TSV, JSON, NDJSON, XML and (with the `parquet` feature) Parquet.
//!
//! An encoder turns one row of [`Value`]s at a time into bytes. It never owns its output:
//! the chunker rotates part files underneath it, so every call takes the `&mut dyn Write` of
//! the part currently open. A part file is `begin` → `write_row`* → `finish`; an encoder can
//! be reused for the next part after `finish` (each `begin` resets its per-part state).
//!
//! Each encoder renders a whole row into an internal buffer and hands it to the writer in a
//! single `write_all`, so the cost of the dynamic dispatch is paid once per row, not per byte
//! or per cell. Wrap the part file in a buffer (the sinks of [`crate::compress`] already are).
//!
//! Cell text is the same in every format: decimals keep their exact text (`45.00`, `0.005`),
//! timestamps are ISO 8601 UTC with `Z`, booleans are `true`/`false` (see [`Value`]).

mod csv;
mod json;
#[cfg(feature = "parquet")]
pub mod parquet;
mod xml;

pub use self::csv::{CsvEncoder, CsvOptions, LineEnding};
pub use self::json::{JsonEncoder, NdjsonEncoder};
#[cfg(test)]
pub(crate) use self::xml::tests::parse as parse_xml_for_tests;
pub use self::xml::{XmlEncoder, XmlOptions, xml_name};

use crate::value::Value;
use std::io::{self, Write};

/// Streams rows of one export into part files.
pub trait Encoder: Send {
    /// Header / opening bracket / XML prolog for a new part file.
    fn begin(&mut self, out: &mut dyn Write) -> io::Result<()>;
    /// Appends one row. `row` must have one cell per column given to [`encoder`]; another
    /// length is an `InvalidInput` error (nothing is written for that row).
    fn write_row(&mut self, out: &mut dyn Write, row: &[Value]) -> io::Result<()>;
    /// Closing bracket / root end tag; the part is complete after this.
    fn finish(&mut self, out: &mut dyn Write) -> io::Result<()>;
    /// File extension without dot: "csv", "tsv", "json", "ndjson", "xml", "parquet".
    fn extension(&self) -> &'static str;
}

/// Which encoder to build, and its options.
#[derive(Debug, Clone, PartialEq)]
pub enum FormatOptions {
    /// Comma-separated values (RFC 4180 by default).
    Csv(CsvOptions),
    /// Tab-separated values: CSV rules with a tab delimiter (the delimiter in the options is
    /// ignored and replaced by `\t`).
    Tsv(CsvOptions),
    /// One JSON array of objects per part; `pretty` indents with two spaces.
    Json {
        /// Indent objects (two spaces, one key per line) instead of one object per line.
        pretty: bool,
    },
    /// One JSON object per line.
    Ndjson,
    /// `<?xml …?>`, a root element, and one element per row with one child per column.
    Xml(XmlOptions),
    /// Apache Parquet, typed columns, compressed inside the file.
    #[cfg(feature = "parquet")]
    Parquet(self::parquet::ParquetOptions),
}

/// The type of a column, for formats that store types (Parquet). Text formats ignore it.
/// Decided before the first row: from the store's schema, the expression of a computed
/// column, or the values of a summary; `Text` when unknown or mixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// UTF-8 text (any value, written as its CSV text).
    Text,
    /// `true` / `false`.
    Bool,
    /// A 64-bit integer.
    Int,
    /// A 64-bit float.
    Float,
    /// An exact decimal (money).
    Decimal,
    /// An instant, UTC.
    Timestamp,
}

impl ColumnType {
    /// The name used in messages and docs.
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::Text => "string",
            ColumnType::Bool => "boolean",
            ColumnType::Int => "integer",
            ColumnType::Float => "double",
            ColumnType::Decimal => "decimal",
            ColumnType::Timestamp => "timestamp",
        }
    }
}

impl FormatOptions {
    /// The file extension the encoder will report, without building one (for path planning).
    pub fn extension(&self) -> &'static str {
        match self {
            FormatOptions::Csv(_) => "csv",
            FormatOptions::Tsv(_) => "tsv",
            FormatOptions::Json { .. } => "json",
            FormatOptions::Ndjson => "ndjson",
            FormatOptions::Xml(_) => "xml",
            #[cfg(feature = "parquet")]
            FormatOptions::Parquet(_) => "parquet",
        }
    }

    /// Checks options that would make output ambiguous or unreadable. Call it when a
    /// definition is validated: [`encoder`] itself never fails, so that building an encoder at
    /// run time cannot abort a run halfway through a window.
    pub fn validate(&self) -> Result<(), FormatError> {
        match self {
            FormatOptions::Csv(o) => o.validate(o.delimiter),
            FormatOptions::Tsv(o) => o.validate(b'\t'),
            FormatOptions::Json { .. } | FormatOptions::Ndjson => Ok(()),
            FormatOptions::Xml(o) => o.validate(),
            #[cfg(feature = "parquet")]
            FormatOptions::Parquet(_) => Ok(()),
        }
    }
}

/// A format option that cannot produce readable output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Delimiter, quote and escape must be single ASCII bytes.
    #[error("csv {what} must be a single ASCII character other than CR and LF")]
    NotAscii {
        /// Which option: "delimiter", "quote" or "escape".
        what: &'static str,
    },
    /// The delimiter and the quote are the same character.
    #[error("csv delimiter and quote must differ")]
    DelimiterIsQuote,
    /// The escape is neither the quote (doubling) nor distinct from the delimiter.
    #[error("csv escape must be the quote character (doubling) or differ from the delimiter")]
    EscapeIsDelimiter,
    /// An XML root or row element name is not a valid XML name.
    #[error("xml {what} element name {name:?} is not a valid XML name (try {suggestion:?})")]
    XmlName {
        /// "root" or "row".
        what: &'static str,
        /// The name as configured.
        name: String,
        /// The sanitised name that would be used.
        suggestion: String,
    },
}

/// Builds the encoder for `options`, with one column per entry of `columns` (in order), every
/// column typed as text.
pub fn encoder(options: &FormatOptions, columns: &[String]) -> Box<dyn Encoder> {
    typed_encoder(options, columns, &[])
}

/// [`encoder`] with column types. `types` matters to typed formats only (Parquet); a missing
/// entry is [`ColumnType::Text`].
pub fn typed_encoder(
    options: &FormatOptions,
    columns: &[String],
    #[cfg_attr(not(feature = "parquet"), allow(unused_variables))] types: &[ColumnType],
) -> Box<dyn Encoder> {
    match options {
        FormatOptions::Csv(o) => Box::new(CsvEncoder::new(o.clone(), columns, "csv")),
        FormatOptions::Tsv(o) => {
            let mut o = o.clone();
            o.delimiter = b'\t';
            Box::new(CsvEncoder::new(o, columns, "tsv"))
        }
        FormatOptions::Json { pretty } => Box::new(JsonEncoder::new(columns, *pretty)),
        FormatOptions::Ndjson => Box::new(NdjsonEncoder::new(columns)),
        FormatOptions::Xml(o) => Box::new(XmlEncoder::new(o, columns)),
        #[cfg(feature = "parquet")]
        FormatOptions::Parquet(o) => Box::new(self::parquet::ParquetEncoder::new(
            o.clone(),
            columns,
            types,
        )),
    }
}

/// The error for a row whose length differs from the column count.
pub(crate) fn row_length_error(got: usize, expected: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("row has {got} cells but the export has {expected} columns"),
    )
}

/// The display text of a cell (shared by CSV and XML, which then escape it; NULL is empty).
/// Text is borrowed, not copied, which is the common case on the hot path; other kinds are
/// rendered into `scratch`.
pub(crate) fn cell_text<'a>(value: &'a Value, scratch: &'a mut String) -> &'a str {
    use std::fmt::Write as _;
    match value {
        Value::Text(s) => s,
        Value::Bool(true) => "true",
        Value::Bool(false) => "false",
        Value::Null => "",
        Value::Decimal(d) => {
            scratch.clear();
            Value::write_decimal(d, scratch);
            scratch
        }
        Value::Timestamp(t) => {
            scratch.clear();
            Value::write_timestamp(t, scratch);
            scratch
        }
        Value::Int(i) => {
            scratch.clear();
            scratch.push_str(itoa::Buffer::new().format(*i));
            scratch
        }
        other => {
            scratch.clear();
            // Writing into a String cannot fail.
            let _ = write!(scratch, "{other}");
            scratch
        }
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! The fixed row set every golden test (here and in `compress`) encodes.
    use crate::value::Value;
    use chrono::{TimeZone, Utc};
    use rust_decimal::Decimal;

    /// Column names: a dotted one, one starting with a digit, one with a space.
    pub fn columns() -> Vec<String> {
        [
            "id",
            "name",
            "email.valid",
            "revenue",
            "created_at",
            "note",
            "1st score",
            "ratio",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// Quotes, delimiters, newlines, unicode, nulls, decimals and timestamps.
    pub fn rows() -> Vec<Vec<Value>> {
        let ts = Utc.with_ymd_and_hms(2024, 1, 15, 10, 30, 0).single();
        let ts = ts.map(Value::Timestamp).unwrap_or(Value::Null);
        let ts_ms = Utc
            .timestamp_millis_opt(1_705_314_600_123)
            .single()
            .map(Value::Timestamp)
            .unwrap_or(Value::Null);
        vec![
            vec![
                Value::Int(1),
                Value::Text("Ann \"Nan\" O'Neil".into()),
                Value::Bool(true),
                Value::Decimal(Decimal::new(4500, 2)),
                ts,
                Value::Text("a,b;c\td".into()),
                Value::Int(-7),
                Value::Float(0.25),
            ],
            vec![
                Value::Int(2),
                Value::Text("Zoë 日本 🚀".into()),
                Value::Bool(false),
                Value::Decimal(Decimal::new(50, 4)),
                ts_ms,
                Value::Text("line1\nline2\r\nline3".into()),
                Value::Null,
                Value::Float(1.0),
            ],
            vec![
                Value::Int(3),
                Value::Text(String::new()),
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Text("<b>&amp;</b> \\ back\\slash \u{1}".into()),
                Value::Int(0),
                Value::Null,
            ],
        ]
    }
}
