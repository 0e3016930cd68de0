//! Apache Parquet through the `parquet` crate's low-level column writers (no arrow: it would
//! add about 25 crates and minutes of compile for nothing the flat lead schema needs).
//!
//! Parquet is columnar, and its footer points back at byte offsets of every row group, so a
//! part cannot be written row by row. The encoder buffers one row group column-wise (typed
//! vectors, strings in one contiguous byte buffer), and when it holds `row_group_rows` rows or
//! [`ROW_GROUP_BUFFER_BYTES`] of cell data it encodes and compresses the group into an internal
//! buffer and hands those bytes to the part file. Memory is therefore bounded by one row group
//! whatever the part size; the footer (schema plus a few hundred bytes per row group) is
//! written by `finish`.
//!
//! The schema is fixed before the first row: every column is OPTIONAL with the physical and
//! logical type of its [`ColumnType`]. A value that does not fit its column's type fails the
//! part with a message naming the column (it cannot happen for types derived from the store's
//! schema; see `pipeline::column_types`).

use super::{ColumnType, cell_text, row_length_error};
use crate::value::Value;
use bytes::Bytes;
use parquet::basic::{
    Compression, LogicalType, Repetition, TimeUnit, Type as PhysicalType, ZstdLevel,
};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::{WriterProperties, WriterVersion};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;
use rust_decimal::{Decimal, RoundingStrategy};
use std::io::{self, Write};
use std::sync::Arc;

/// Scale of DECIMAL columns: the store keeps money in 1/10000 units, so four places are exact.
pub const DECIMAL_SCALE: u32 = 4;
/// Precision of DECIMAL columns: the most an INT64 holds (±99,999,999,999,999.9999).
pub const DECIMAL_PRECISION: i32 = 18;
/// Default rows per row group: about 5–20 MiB of buffered lead data, large enough for good
/// compression and column statistics, small enough for a run's memory budget.
pub const DEFAULT_ROW_GROUP_ROWS: usize = 65_536;
/// A row group is also closed once its buffered cell data reaches this many bytes, so wide or
/// text-heavy rows keep memory bounded too.
pub const ROW_GROUP_BUFFER_BYTES: usize = 64 << 20;
/// Values handed to a column writer per call (bounds the temporary `ByteArray` vector).
const WRITE_BATCH: usize = 8192;

/// The column codec inside a Parquet file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParquetCodec {
    /// Uncompressed pages.
    None,
    /// Snappy: fast, widely supported, larger files.
    Snappy,
    /// Zstandard at `level` (1–19).
    Zstd {
        /// 1–19; default 3.
        level: i32,
    },
}

/// Options of the Parquet encoder.
#[derive(Debug, Clone, PartialEq)]
pub struct ParquetOptions {
    /// Page compression.
    pub codec: ParquetCodec,
    /// Rows per row group (at least 1).
    pub row_group_rows: usize,
}

impl Default for ParquetOptions {
    fn default() -> Self {
        ParquetOptions {
            codec: ParquetCodec::Zstd { level: 3 },
            row_group_rows: DEFAULT_ROW_GROUP_ROWS,
        }
    }
}

/// One column's buffered values for the open row group.
enum Values {
    Bool(Vec<bool>),
    Int(Vec<i64>),
    Double(Vec<f64>),
    /// All strings of the group back to back, and where each ends. `u32` offsets suffice: a
    /// group is closed at [`ROW_GROUP_BUFFER_BYTES`], and no single cell reaches 4 GiB (both
    /// stores cap a value at 1 GB).
    Bytes {
        data: Vec<u8>,
        ends: Vec<u32>,
    },
}

struct ColumnBuffer {
    name: String,
    ty: ColumnType,
    values: Values,
    /// Definition levels: 1 = value present, 0 = NULL.
    defs: Vec<i16>,
}

impl ColumnBuffer {
    fn new(name: &str, ty: ColumnType) -> ColumnBuffer {
        let values = match ty {
            ColumnType::Bool => Values::Bool(Vec::new()),
            ColumnType::Int | ColumnType::Decimal | ColumnType::Timestamp => {
                Values::Int(Vec::new())
            }
            ColumnType::Float => Values::Double(Vec::new()),
            ColumnType::Text => Values::Bytes {
                data: Vec::new(),
                ends: Vec::new(),
            },
        };
        ColumnBuffer {
            name: name.to_owned(),
            ty,
            values,
            defs: Vec::new(),
        }
    }

    /// Checks and converts `value` before anything of the row is buffered.
    fn convert(&self, value: &Value) -> io::Result<Cell> {
        if value.is_null() {
            return Ok(Cell::Null);
        }
        let cell = match (self.ty, value) {
            // Any value has a text form (the same as in CSV).
            (ColumnType::Text, _) => Cell::Text,
            (ColumnType::Bool, Value::Bool(b)) => Cell::Bool(*b),
            (ColumnType::Int, Value::Int(i)) => Cell::Int(*i),
            (ColumnType::Int, Value::Decimal(d)) if d.fract().is_zero() => {
                match i64::try_from(*d) {
                    Ok(i) => Cell::Int(i),
                    Err(_) => return Err(self.mismatch(value)),
                }
            }
            (ColumnType::Float, Value::Float(f)) => Cell::Double(*f),
            (ColumnType::Float, Value::Int(i)) => Cell::Double(*i as f64),
            (ColumnType::Float, Value::Decimal(d)) => {
                Cell::Double(d.to_string().parse().unwrap_or(f64::NAN))
            }
            (ColumnType::Decimal, Value::Decimal(d)) => Cell::Int(self.unscaled(*d)?),
            (ColumnType::Decimal, Value::Int(i)) => Cell::Int(self.unscaled(Decimal::from(*i))?),
            (ColumnType::Decimal, Value::Float(f)) => match Decimal::try_from(*f) {
                Ok(d) => Cell::Int(self.unscaled(d)?),
                Err(_) => return Err(self.mismatch(value)),
            },
            (ColumnType::Timestamp, Value::Timestamp(t)) => Cell::Int(t.timestamp_micros()),
            _ => return Err(self.mismatch(value)),
        };
        Ok(cell)
    }

    /// The INT64 of a DECIMAL(18, 4): `d` × 10⁴, rounded half away from zero past four places
    /// (only averages have more).
    fn unscaled(&self, d: Decimal) -> io::Result<i64> {
        let mut d = d.round_dp_with_strategy(DECIMAL_SCALE, RoundingStrategy::MidpointAwayFromZero);
        d.rescale(DECIMAL_SCALE);
        let m = d.mantissa();
        if m.unsigned_abs() >= 10u128.pow(DECIMAL_PRECISION as u32) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "column `{}`: {d} does not fit DECIMAL({DECIMAL_PRECISION}, {DECIMAL_SCALE}); export it as csv or json",
                    self.name
                ),
            ));
        }
        Ok(m as i64)
    }

    fn mismatch(&self, value: &Value) -> io::Error {
        let kind = match value {
            Value::Null => "NULL",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Decimal(_) => "a decimal",
            Value::Float(_) => "a float",
            Value::Text(_) => "text",
            Value::Timestamp(_) => "a timestamp",
        };
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "column `{}` is {} in the parquet schema but a row has {kind} ({value}); this is a bug in exportd's column typing: export as csv or json meanwhile and report it",
                self.name,
                self.ty.name()
            ),
        )
    }

    /// Appends a converted cell of `value`; returns the bytes it added to the buffer.
    fn push(&mut self, cell: Cell, value: &Value, scratch: &mut String) -> usize {
        match (cell, &mut self.values) {
            (Cell::Null, _) => {
                self.defs.push(0);
                return 2;
            }
            (Cell::Bool(b), Values::Bool(v)) => v.push(b),
            (Cell::Int(i), Values::Int(v)) => v.push(i),
            (Cell::Double(x), Values::Double(v)) => v.push(x),
            (Cell::Text, Values::Bytes { data, ends }) => {
                let text = cell_text(value, scratch);
                data.extend_from_slice(text.as_bytes());
                ends.push(u32::try_from(data.len()).expect("a row group's text stays under 4 GiB"));
                self.defs.push(1);
                return text.len() + 10;
            }
            // `convert` only produces cells of the column's own kind.
            _ => unreachable!("cell kind matches its column"),
        }
        self.defs.push(1);
        10
    }
}

enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    /// The value's text form.
    Text,
}

/// Streams rows into a Parquet file, one row group at a time.
pub struct ParquetEncoder {
    options: ParquetOptions,
    schema: Arc<Type>,
    props: Arc<WriterProperties>,
    columns: Vec<ColumnBuffer>,
    rows: usize,
    buffered_bytes: usize,
    writer: Option<SerializedFileWriter<Vec<u8>>>,
    /// The converted cells of the row being added.
    cells: Vec<Cell>,
    scratch: String,
}

impl ParquetEncoder {
    /// An encoder for `columns` of the given types (same length; missing types are text).
    pub fn new(options: ParquetOptions, columns: &[String], types: &[ColumnType]) -> Self {
        let columns: Vec<ColumnBuffer> = columns
            .iter()
            .enumerate()
            .map(|(i, name)| {
                ColumnBuffer::new(name, types.get(i).copied().unwrap_or(ColumnType::Text))
            })
            .collect();
        let fields = columns
            .iter()
            .map(|c| Arc::new(field_type(&c.name, c.ty)))
            .collect();
        let schema = Type::group_type_builder("schema")
            .with_fields(fields)
            .build()
            .expect("a flat group of primitive columns is a valid schema");
        let codec = match options.codec {
            ParquetCodec::None => Compression::UNCOMPRESSED,
            ParquetCodec::Snappy => Compression::SNAPPY,
            ParquetCodec::Zstd { level } => {
                Compression::ZSTD(ZstdLevel::try_new(level.clamp(1, 19)).unwrap_or_default())
            }
        };
        let props = WriterProperties::builder()
            // Version 1 data pages: what every reader (Spark 2, older Hive) can open.
            .set_writer_version(WriterVersion::PARQUET_1_0)
            .set_compression(codec)
            .set_created_by(format!("exportd {}", env!("CARGO_PKG_VERSION")))
            // Row groups are cut by this encoder; the writer must not split them further.
            .set_max_row_group_row_count(None)
            .build();
        ParquetEncoder {
            options: ParquetOptions {
                row_group_rows: options.row_group_rows.max(1),
                ..options
            },
            schema: Arc::new(schema),
            props: Arc::new(props),
            cells: (0..columns.len()).map(|_| Cell::Null).collect(),
            scratch: String::new(),
            columns,
            rows: 0,
            buffered_bytes: 0,
            writer: None,
        }
    }

    /// Encodes the buffered rows as one row group and moves its bytes to `out`.
    fn flush_row_group(&mut self, out: &mut dyn Write) -> io::Result<()> {
        let Some(writer) = self.writer.as_mut() else {
            return Ok(());
        };
        if self.rows > 0 {
            let mut group = writer.next_row_group().map_err(io::Error::other)?;
            for column in &mut self.columns {
                let Some(mut col) = group.next_column().map_err(io::Error::other)? else {
                    break;
                };
                write_column(&mut col, column).map_err(io::Error::other)?;
                col.close().map_err(io::Error::other)?;
                column.defs.clear();
            }
            group.close().map_err(io::Error::other)?;
            self.rows = 0;
            self.buffered_bytes = 0;
        }
        writer.flush()?;
        drain(writer, out)
    }
}

/// Moves what the file writer produced so far to the part file. The writer counts offsets by
/// the bytes it wrote, not by its buffer's length, so emptying the buffer is safe.
fn drain(writer: &mut SerializedFileWriter<Vec<u8>>, out: &mut dyn Write) -> io::Result<()> {
    let buffer = writer.inner_mut();
    out.write_all(buffer)?;
    buffer.clear();
    // A large row group would otherwise keep its peak capacity for the rest of the part.
    if buffer.capacity() > 16 << 20 {
        buffer.shrink_to(1 << 20);
    }
    Ok(())
}

fn write_column(
    col: &mut parquet::file::writer::SerializedColumnWriter<'_>,
    column: &mut ColumnBuffer,
) -> parquet::errors::Result<()> {
    let defs = &column.defs;
    // Values are written in batches of rows; each batch takes as many values as it has
    // non-NULL definition levels.
    let mut taken = 0;
    match &mut column.values {
        Values::Bool(v) => {
            for d in defs.chunks(WRITE_BATCH) {
                let n = d.iter().filter(|&&l| l == 1).count();
                col.typed::<BoolType>()
                    .write_batch(&v[taken..taken + n], Some(d), None)?;
                taken += n;
            }
            v.clear();
        }
        Values::Int(v) => {
            for d in defs.chunks(WRITE_BATCH) {
                let n = d.iter().filter(|&&l| l == 1).count();
                col.typed::<Int64Type>()
                    .write_batch(&v[taken..taken + n], Some(d), None)?;
                taken += n;
            }
            v.clear();
        }
        Values::Double(v) => {
            for d in defs.chunks(WRITE_BATCH) {
                let n = d.iter().filter(|&&l| l == 1).count();
                col.typed::<DoubleType>()
                    .write_batch(&v[taken..taken + n], Some(d), None)?;
                taken += n;
            }
            v.clear();
        }
        Values::Bytes { data, ends } => {
            // Each batch's strings are copied once into a shared buffer and every ByteArray is a
            // zero-copy slice of it. `data` itself stays with the column, so its capacity serves
            // the next group instead of regrowing from empty (the realloc chain and the freed
            // buffers it leaves behind were a third of a Parquet export's peak memory).
            let mut batch = Vec::with_capacity(WRITE_BATCH);
            let mut start = 0;
            for d in defs.chunks(WRITE_BATCH) {
                let n = d.iter().filter(|&&l| l == 1).count();
                let batch_ends = &ends[taken..taken + n];
                let batch_start = start;
                let batch_end = batch_ends.last().map_or(start, |&end| end as usize);
                let shared = Bytes::copy_from_slice(&data[batch_start..batch_end]);
                batch.clear();
                for &end in batch_ends {
                    let end = end as usize;
                    batch.push(ByteArray::from(
                        shared.slice(start - batch_start..end - batch_start),
                    ));
                    start = end;
                }
                col.typed::<ByteArrayType>()
                    .write_batch(&batch, Some(d), None)?;
                taken += n;
            }
            data.clear();
            ends.clear();
        }
    }
    Ok(())
}

/// The Parquet field of one column.
fn field_type(name: &str, ty: ColumnType) -> Type {
    let (physical, logical) = match ty {
        ColumnType::Text => (PhysicalType::BYTE_ARRAY, Some(LogicalType::String)),
        ColumnType::Bool => (PhysicalType::BOOLEAN, None),
        ColumnType::Int => (PhysicalType::INT64, None),
        ColumnType::Float => (PhysicalType::DOUBLE, None),
        ColumnType::Decimal => (
            PhysicalType::INT64,
            Some(LogicalType::decimal(
                DECIMAL_SCALE as i32,
                DECIMAL_PRECISION,
            )),
        ),
        ColumnType::Timestamp => (
            PhysicalType::INT64,
            Some(LogicalType::timestamp(true, TimeUnit::MICROS)),
        ),
    };
    let mut builder = Type::primitive_type_builder(name, physical)
        .with_repetition(Repetition::OPTIONAL)
        .with_logical_type(logical);
    if ty == ColumnType::Decimal {
        builder = builder
            .with_precision(DECIMAL_PRECISION)
            .with_scale(DECIMAL_SCALE as i32);
    }
    builder
        .build()
        .expect("primitive column types are built from fixed, valid parameters")
}

impl super::Encoder for ParquetEncoder {
    fn begin(&mut self, _out: &mut dyn Write) -> io::Result<()> {
        for column in &mut self.columns {
            *column = ColumnBuffer::new(&column.name, column.ty);
        }
        self.rows = 0;
        self.buffered_bytes = 0;
        let writer = SerializedFileWriter::new(Vec::new(), self.schema.clone(), self.props.clone())
            .map_err(io::Error::other)?;
        self.writer = Some(writer);
        // The magic number goes out at the first flush, with the first row group.
        Ok(())
    }

    fn write_row(&mut self, out: &mut dyn Write, row: &[Value]) -> io::Result<()> {
        if row.len() != self.columns.len() {
            return Err(row_length_error(row.len(), self.columns.len()));
        }
        // Convert the whole row first, so a bad cell leaves no half-written row behind.
        for ((cell, column), value) in self.cells.iter_mut().zip(&self.columns).zip(row) {
            *cell = column.convert(value)?;
        }
        for ((column, cell), value) in self.columns.iter_mut().zip(&mut self.cells).zip(row) {
            let cell = std::mem::replace(cell, Cell::Null);
            self.buffered_bytes += column.push(cell, value, &mut self.scratch);
        }
        self.rows += 1;
        if self.rows >= self.options.row_group_rows || self.buffered_bytes >= ROW_GROUP_BUFFER_BYTES
        {
            self.flush_row_group(out)?;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut dyn Write) -> io::Result<()> {
        self.flush_row_group(out)?;
        if let Some(mut writer) = self.writer.take() {
            writer.finish().map_err(io::Error::other)?;
            drain(&mut writer, out)?;
        }
        Ok(())
    }

    fn extension(&self) -> &'static str {
        "parquet"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Encoder;
    use crate::format::fixtures::{columns, rows};
    use parquet::basic::Compression as Codec;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    /// The fixture columns with their natural types.
    fn types() -> Vec<ColumnType> {
        use ColumnType::*;
        vec![Int, Text, Bool, Decimal, Timestamp, Text, Int, Float]
    }

    fn encode(options: ParquetOptions, rows: &[Vec<Value>]) -> Vec<u8> {
        let mut enc = ParquetEncoder::new(options, &columns(), &types());
        let mut out = Vec::new();
        enc.begin(&mut out).unwrap();
        for row in rows {
            enc.write_row(&mut out, row).unwrap();
        }
        enc.finish(&mut out).unwrap();
        out
    }

    fn reader(bytes: Vec<u8>) -> SerializedFileReader<Bytes> {
        SerializedFileReader::new(Bytes::from(bytes)).expect("a valid parquet file")
    }

    /// Every row as `name=value` cells, NULLs included.
    fn read_rows(file: &SerializedFileReader<Bytes>) -> Vec<Vec<String>> {
        file.get_row_iter(None)
            .unwrap()
            .map(|row| {
                row.unwrap()
                    .get_column_iter()
                    .map(|(name, field)| format!("{name}={field}"))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn columns_have_store_types_and_values_round_trip() {
        let file = reader(encode(ParquetOptions::default(), &rows()));
        let schema = file.metadata().file_metadata().schema_descr();
        let described: Vec<String> = schema
            .columns()
            .iter()
            .map(|c| {
                format!(
                    "{} {} {:?}",
                    c.name(),
                    c.physical_type(),
                    c.logical_type_ref()
                )
            })
            .collect();
        assert_eq!(
            described,
            [
                "id INT64 None",
                "name BYTE_ARRAY Some(String)",
                "email.valid BOOLEAN None",
                "revenue INT64 Some(Decimal(DecimalType { scale: 4, precision: 18 }))",
                "created_at INT64 Some(Timestamp(TimestampType { is_adjusted_to_u_t_c: true, unit: MICROS }))",
                "note BYTE_ARRAY Some(String)",
                "1st score INT64 None",
                "ratio DOUBLE None",
            ]
        );
        assert_eq!(file.metadata().file_metadata().num_rows(), 3);
        let rows = read_rows(&file);
        assert_eq!(
            rows[0],
            [
                "id=1",
                "name=\"Ann \"Nan\" O'Neil\"",
                "email.valid=true",
                "revenue=45.0000",
                "created_at=2024-01-15 10:30:00.000000 +00:00",
                "note=\"a,b;c\td\"",
                "1st score=-7",
                "ratio=0.25",
            ]
        );
        // Decimals keep their exact value at scale 4; milliseconds survive.
        assert_eq!(rows[1][3], "revenue=0.0050");
        assert_eq!(rows[1][4], "created_at=2024-01-15 10:30:00.123000 +00:00");
        assert_eq!(rows[1][1], "name=\"Zoë 日本 🚀\"");
        assert_eq!(rows[1][6], "1st score=null");
        // NULL stays NULL in every type; the empty string stays a string.
        assert_eq!(
            rows[2],
            [
                "id=3",
                "name=\"\"",
                "email.valid=null",
                "revenue=null",
                "created_at=null",
                "note=\"<b>&amp;</b> \\ back\\slash \u{1}\"",
                "1st score=0",
                "ratio=null",
            ]
        );
    }

    #[test]
    fn text_columns_hold_any_value_as_its_csv_text() {
        let mut enc = ParquetEncoder::new(
            ParquetOptions::default(),
            &columns(),
            &[ColumnType::Text; 8],
        );
        let mut out = Vec::new();
        enc.begin(&mut out).unwrap();
        enc.write_row(&mut out, &rows()[0]).unwrap();
        enc.finish(&mut out).unwrap();
        let rows = read_rows(&reader(out));
        assert_eq!(rows[0][0], "id=\"1\"");
        assert_eq!(rows[0][2], "email.valid=\"true\"");
        assert_eq!(rows[0][3], "revenue=\"45.00\"");
        assert_eq!(rows[0][4], "created_at=\"2024-01-15T10:30:00Z\"");
    }

    #[test]
    fn row_groups_stream_to_the_part_as_they_fill() {
        let options = ParquetOptions {
            row_group_rows: 10,
            ..ParquetOptions::default()
        };
        let mut enc = ParquetEncoder::new(options, &columns(), &types());
        let mut out = Vec::new();
        enc.begin(&mut out).unwrap();
        let row = &rows()[0];
        for _ in 0..9 {
            enc.write_row(&mut out, row).unwrap();
        }
        assert!(
            out.is_empty(),
            "nothing is written before a row group fills"
        );
        enc.write_row(&mut out, row).unwrap();
        let after_first = out.len();
        assert!(after_first > 4, "the first row group is in the part");
        assert_eq!(&out[..4], b"PAR1");
        for _ in 0..15 {
            enc.write_row(&mut out, row).unwrap();
        }
        assert!(
            out.len() > after_first,
            "the second row group is in the part"
        );
        enc.finish(&mut out).unwrap();
        let file = reader(out);
        let sizes: Vec<i64> = file
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows())
            .collect();
        assert_eq!(sizes, [10, 10, 5]);
        assert_eq!(read_rows(&file).len(), 25);
    }

    #[test]
    fn text_survives_write_batches_nulls_and_reused_group_buffers() {
        // 20,000 rows in groups of 12,000: each group spans several write batches of 8,192
        // values, and the second group (8,000 rows) reuses the first group's text buffers.
        let columns = ["n".to_owned(), "text".to_owned()];
        let types = [ColumnType::Int, ColumnType::Text];
        let text_of = |i: usize| match i % 7 {
            0 => Value::Null,
            1 => Value::Text(String::new()),
            _ => Value::Text(format!("v{i}-{}", "é".repeat(i % 5))),
        };
        let options = ParquetOptions {
            row_group_rows: 12_000,
            ..ParquetOptions::default()
        };
        let mut enc = ParquetEncoder::new(options, &columns, &types);
        let mut out = Vec::new();
        enc.begin(&mut out).unwrap();
        for i in 0..20_000 {
            enc.write_row(&mut out, &[Value::Int(i as i64), text_of(i)])
                .unwrap();
        }
        enc.finish(&mut out).unwrap();
        let file = reader(out);
        let sizes: Vec<i64> = file
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows())
            .collect();
        assert_eq!(sizes, [12_000, 8_000]);
        let rows = read_rows(&file);
        assert_eq!(rows.len(), 20_000);
        for (i, row) in rows.iter().enumerate() {
            let expected = match text_of(i) {
                Value::Text(t) => format!("text=\"{t}\""),
                _ => "text=null".to_owned(),
            };
            assert_eq!(row, &[format!("n={i}"), expected], "row {i}");
        }
    }

    #[test]
    fn the_encoder_is_reused_for_the_next_part() {
        let mut enc = ParquetEncoder::new(ParquetOptions::default(), &columns(), &types());
        let mut parts = Vec::new();
        for rows in [&rows()[..2], &rows()[2..]] {
            let mut out = Vec::new();
            enc.begin(&mut out).unwrap();
            for row in rows {
                enc.write_row(&mut out, row).unwrap();
            }
            enc.finish(&mut out).unwrap();
            parts.push(read_rows(&reader(out)));
        }
        assert_eq!(parts[0].len(), 2);
        assert_eq!(parts[1].len(), 1);
        assert_eq!(parts[1][0][0], "id=3");
    }

    #[test]
    fn an_empty_part_is_a_valid_file_with_the_schema() {
        let file = reader(encode(ParquetOptions::default(), &[]));
        assert_eq!(file.metadata().file_metadata().num_rows(), 0);
        assert_eq!(
            file.metadata().file_metadata().schema_descr().num_columns(),
            8
        );
    }

    #[test]
    fn every_codec_is_written_into_the_column_chunks() {
        for (codec, expected) in [
            (ParquetCodec::None, Codec::UNCOMPRESSED),
            (ParquetCodec::Snappy, Codec::SNAPPY),
            (
                ParquetCodec::Zstd { level: 3 },
                Codec::ZSTD(ZstdLevel::try_new(3).unwrap()),
            ),
        ] {
            let options = ParquetOptions {
                codec,
                ..ParquetOptions::default()
            };
            let file = reader(encode(options, &rows()));
            let chunk = file.metadata().row_group(0).column(1);
            // The level is not stored in the file; compare the codec only.
            assert_eq!(
                std::mem::discriminant(&chunk.compression()),
                std::mem::discriminant(&expected),
                "{codec:?}"
            );
            assert_eq!(read_rows(&file).len(), 3, "{codec:?}");
        }
    }

    #[test]
    fn a_value_of_another_type_fails_the_row_and_names_the_column() {
        let mut enc = ParquetEncoder::new(ParquetOptions::default(), &columns(), &types());
        let mut out = Vec::new();
        enc.begin(&mut out).unwrap();
        let mut row = rows()[0].clone();
        row[6] = Value::Text("high".into());
        let err = enc.write_row(&mut out, &row).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(
            err.to_string()
                .contains("column `1st score` is integer in the parquet schema but a row has text"),
            "{err}"
        );
        // Nothing of the bad row was buffered: the next good row completes a valid file.
        enc.write_row(&mut out, &rows()[1]).unwrap();
        enc.finish(&mut out).unwrap();
        let rows = read_rows(&reader(out));
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0][0], "id=2");
        let err = enc.write_row(&mut Vec::new(), &[Value::Null]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn decimals_round_past_four_places_and_refuse_what_int64_cannot_hold() {
        let column = ColumnBuffer::new("avg_revenue", ColumnType::Decimal);
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        assert_eq!(column.unscaled(d("12.34565")).unwrap(), 123_457);
        assert_eq!(column.unscaled(d("-0.00005")).unwrap(), -1);
        assert_eq!(column.unscaled(d("7")).unwrap(), 70_000);
        assert_eq!(
            column.unscaled(d("99999999999999.9999")).unwrap(),
            999_999_999_999_999_999
        );
        let err = column.unscaled(d("100000000000000")).unwrap_err();
        assert!(err.to_string().contains("`avg_revenue`"), "{err}");
        // Integers and floats are accepted in decimal columns (computed `revenue * 2`).
        assert!(matches!(
            column.convert(&Value::Int(3)),
            Ok(Cell::Int(30_000))
        ));
        assert!(matches!(
            column.convert(&Value::Float(0.5)),
            Ok(Cell::Int(5_000))
        ));
    }
}
