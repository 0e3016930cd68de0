//! The PostgreSQL lead store (`[store] url = "postgres://…"`).
//!
//! Same documented schema as the SQLite store, with native types: `TIMESTAMPTZ` times
//! (millisecond precision, as SQLite keeps them, so both stores export the same bytes),
//! `NUMERIC(19,4)` money and `JSONB` documents. Ids use the "C" collation so rows stream in the
//! same byte order of ids on any database locale.
//!
//! Reading: the window and the pushable filter are bound parameters (`$1`, …); rows stream
//! from `query_raw` in batches of [`BATCH`] through a bounded channel, so at most a few batches
//! are in memory whatever the result size. Documents arrive as JSONB text and are decoded like
//! SQLite's, only the keys the export needs. Summaries are grouped by PostgreSQL.
//!
//! Writing: batches go through binary `COPY … FROM STDIN` into a temporary table and are then
//! upserted (`INSERT … ON CONFLICT`), so re-ingesting a lead replaces it as SQLite's `INSERT OR
//! REPLACE` does; a bulk load into an empty store (demo data) copies straight into the tables.

use super::doc::{CellSeed, decode_doc};
use super::sqlite::{
    CatalogUpdate, EVENT_COLUMNS, LEAD_COLUMNS, ReadPlan, Slot, json_into, money_units,
};
use super::{
    Aggregate, Error, Explained, LeadStore, NewEvent, NewLead, Query, SummaryQuery, Table,
    TimeField,
};
use crate::config::secret::Secret;
use crate::filter::{self, Expr, FieldType, JsonKind, Location, PostgresDialect, SqlDialect};
use crate::postgres::{Connection, Param};
use crate::value::Value;
use bytes::{BufMut, Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures::{SinkExt, StreamExt};
use rust_decimal::Decimal;
use std::collections::HashMap;
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

/// Rows per batch handed from the connection to the reading thread.
const BATCH: usize = 1024;

/// Batches in flight between the connection and the reader.
const BATCHES_IN_FLIGHT: usize = 4;

/// Schema migrations of the lead tables, recorded in `schema_migrations` as schema `leads`.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE leads (
    id TEXT COLLATE "C" PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    source TEXT, flow TEXT, outcome TEXT, reason TEXT,
    revenue NUMERIC(19,4), cost NUMERIC(19,4),
    doc JSONB NOT NULL DEFAULT '{}'
);
CREATE INDEX leads_created ON leads (created_at, id);
CREATE INDEX leads_updated ON leads (updated_at, id);
CREATE TABLE events (
    id TEXT COLLATE "C" PRIMARY KEY,
    type TEXT NOT NULL,
    timestamp TIMESTAMPTZ NOT NULL,
    lead_id TEXT, outcome TEXT, reason TEXT, recipient TEXT,
    price NUMERIC(19,4), duration_ms INT8,
    metadata JSONB NOT NULL DEFAULT '{}',
    lead JSONB NOT NULL DEFAULT '{}'
);
CREATE INDEX events_timestamp ON events (timestamp, id);
CREATE INDEX events_lead ON events (lead_id);
CREATE TABLE field_catalog (
    tbl TEXT NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    first_ms INT8 NOT NULL, last_ms INT8 NOT NULL,
    first_updated_ms INT8 NOT NULL, last_updated_ms INT8 NOT NULL,
    PRIMARY KEY (tbl, name)
)
"#];

/// Secondary indexes, dropped during a bulk load into an empty store and rebuilt after.
const SECONDARY_INDEXES: &[(&str, &str)] = &[
    ("leads_created", "leads (created_at, id)"),
    ("leads_updated", "leads (updated_at, id)"),
    ("events_timestamp", "events (timestamp, id)"),
    ("events_lead", "events (lead_id)"),
];

const LEAD_TYPES: &[Type] = &[
    Type::TEXT,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::NUMERIC,
    Type::NUMERIC,
    Type::JSONB,
];

const EVENT_TYPES: &[Type] = &[
    Type::TEXT,
    Type::TEXT,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::NUMERIC,
    Type::INT8,
    Type::JSONB,
    Type::JSONB,
];

/// The PostgreSQL store.
pub struct PostgresStore {
    conn: Connection,
    /// Inside `begin_atomic` … `commit_atomic`: batches do not commit on their own.
    atomic: bool,
    /// Between `begin_bulk_load` and `end_bulk_load`: batches copy straight into the tables.
    bulk: bool,
}

impl PostgresStore {
    /// Connects and brings the schema up to date.
    pub fn open(url: &str, password: Option<&Secret>) -> Result<PostgresStore, Error> {
        let conn = Connection::open(url, password)?;
        conn.migrate("leads", MIGRATIONS)?;
        Ok(PostgresStore {
            conn,
            atomic: false,
            bulk: false,
        })
    }

    fn dialect(table: Table) -> PostgresDialect {
        match table {
            Table::Leads => PostgresDialect::leads(),
            Table::Events => PostgresDialect::events(),
        }
    }

    fn time_column(query: &Query) -> &'static str {
        match (query.table, query.time_field) {
            (Table::Leads, TimeField::Created) => "created_at",
            (Table::Leads, TimeField::Updated) => "updated_at",
            (Table::Events, _) => "timestamp",
        }
    }

    fn table_name(table: Table) -> &'static str {
        match table {
            Table::Leads => "leads",
            Table::Events => "events",
        }
    }

    /// WHERE clause (window + pushed filter) whose placeholders start after `offset`, its
    /// parameters, and the residual filter.
    fn where_clause(query: &Query, offset: usize) -> (String, Vec<Value>, Option<Expr>) {
        let time = Self::time_column(query);
        let mut conditions = Vec::new();
        let mut params = Vec::new();
        if let Some(start) = query.start {
            params.push(Value::Timestamp(start));
            conditions.push(format!("\"{time}\" >= ${}", offset + params.len()));
        }
        params.push(Value::Timestamp(query.end));
        conditions.push(format!("\"{time}\" < ${}", offset + params.len()));
        let mut residual = None;
        if let Some(f) = &query.filter {
            let dialect = Offset {
                inner: Self::dialect(query.table),
                offset: offset + params.len(),
            };
            let (pushed, rest) = filter::push_down(f, &dialect);
            if let Some(pushed) = pushed {
                conditions.push(format!("({})", pushed.sql));
                params.extend(pushed.params);
            }
            residual = rest;
        }
        (conditions.join(" AND "), params, residual)
    }

    fn select_sql(query: &Query, plan: &ReadPlan, where_sql: &str) -> String {
        format!(
            "SELECT {} FROM {} WHERE {} ORDER BY \"{}\", id",
            plan.select.join(", "),
            Self::table_name(query.table),
            where_sql,
            Self::time_column(query)
        )
    }

    /// Streams the rows of `sql` in batches to `each`, which returns `Ok(false)` to stop.
    fn stream_rows(
        &self,
        sql: String,
        params: Vec<Value>,
        each: &mut dyn FnMut(&Row) -> Result<bool, Error>,
    ) -> Result<(), Error> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<Row>, tokio_postgres::Error>>(
            BATCHES_IN_FLIGHT,
        );
        let client = self.conn.client();
        self.conn.spawn(async move {
            let result = async {
                let rows = client
                    .query_raw(sql.as_str(), params.iter().map(Param))
                    .await?;
                futures::pin_mut!(rows);
                let mut batch = Vec::with_capacity(BATCH);
                while let Some(row) = rows.next().await {
                    batch.push(row?);
                    if batch.len() == BATCH
                        && tx
                            .send(Ok(std::mem::replace(&mut batch, Vec::with_capacity(BATCH))))
                            .await
                            .is_err()
                    {
                        // The reader stopped early; dropping the stream discards the rest.
                        return Ok(());
                    }
                }
                if !batch.is_empty() {
                    let _ = tx.send(Ok(batch)).await;
                }
                Ok(())
            }
            .await;
            if let Err(e) = result {
                let _ = tx.send(Err(e)).await;
            }
        });
        while let Some(batch) = futures::executor::block_on(rx.recv()) {
            for row in batch.map_err(crate::postgres::Error::from)? {
                if !each(&row)? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Runs statements that return nothing.
    fn execute(&self, sql: String) -> Result<(), Error> {
        let client = self.conn.client();
        self.conn
            .run(async move { client.batch_execute(&sql).await })
            .map_err(|e| Error::from(crate::postgres::Error::from(e)))
    }

    /// Copies one encoded batch into `table` (or its staging table), upserts it unless bulk
    /// loading, and records the catalog, all in one transaction unless inside `begin_atomic`.
    fn load(
        &mut self,
        table: Table,
        copy: Bytes,
        catalogs: Vec<(&'static str, CatalogUpdate)>,
    ) -> Result<(), Error> {
        let (name, columns) = match table {
            Table::Leads => ("leads", LEAD_COLUMNS),
            Table::Events => ("events", EVENT_COLUMNS),
        };
        let list = columns
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let updates = columns[1..]
            .iter()
            .map(|c| format!("\"{c}\" = excluded.\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let json_list = match table {
            Table::Leads => format!("{list}, \"doc\""),
            Table::Events => format!("{list}, \"metadata\", \"lead\""),
        };
        let json_updates = match table {
            Table::Leads => format!("{updates}, \"doc\" = excluded.\"doc\""),
            Table::Events => format!(
                "{updates}, \"metadata\" = excluded.\"metadata\", \"lead\" = excluded.\"lead\""
            ),
        };
        // Outside a bulk load, rows go to a staging table first; `n` (the row's position)
        // lets the last version of an id repeated within one batch win, as with SQLite.
        let (copy_sql, staging) = if self.bulk {
            (
                format!("COPY {name} ({json_list}) FROM STDIN (FORMAT binary)"),
                None,
            )
        } else {
            (
                format!("COPY {name}_in ({json_list}, n) FROM STDIN (FORMAT binary)"),
                Some((
                    format!("CREATE TEMP TABLE IF NOT EXISTS {name}_in (LIKE {name}, n INT8)"),
                    format!(
                        "INSERT INTO {name} ({json_list})
                           SELECT DISTINCT ON (id) {json_list} FROM {name}_in ORDER BY id, n DESC
                         ON CONFLICT (id) DO UPDATE SET {json_updates};
                         TRUNCATE {name}_in"
                    ),
                )),
            )
        };
        let own_transaction = !self.atomic;
        let client = self.conn.client();
        let catalog_rows: Vec<(String, String, [i64; 4])> = catalogs
            .into_iter()
            .flat_map(|(prefix, c)| {
                c.0.into_iter()
                    .map(move |(key, range)| (format!("{prefix}{key}"), range))
            })
            .map(|(key, range)| (name.to_owned(), key, range))
            .collect();
        let result = self.conn.run(async move {
            if own_transaction {
                client.batch_execute("BEGIN").await?;
            }
            let work = async {
                if let Some((create, _)) = &staging {
                    client.batch_execute(create).await?;
                }
                let sink = client.copy_in::<_, Bytes>(copy_sql.as_str()).await?;
                futures::pin_mut!(sink);
                sink.send(copy).await?;
                sink.finish().await?;
                if let Some((_, upsert)) = &staging {
                    client.batch_execute(upsert).await?;
                }
                let statement = client
                    .prepare(
                        "INSERT INTO field_catalog
                           (tbl, name, first_ms, last_ms, first_updated_ms, last_updated_ms)
                         VALUES ($1, $2, $3, $4, $5, $6)
                         ON CONFLICT (tbl, name) DO UPDATE SET
                           first_ms = least(field_catalog.first_ms, excluded.first_ms),
                           last_ms = greatest(field_catalog.last_ms, excluded.last_ms),
                           first_updated_ms = least(field_catalog.first_updated_ms, excluded.first_updated_ms),
                           last_updated_ms = greatest(field_catalog.last_updated_ms, excluded.last_updated_ms)",
                    )
                    .await?;
                for (tbl, key, [a, b, c, d]) in &catalog_rows {
                    client
                        .execute(&statement, &[tbl, key, a, b, c, d])
                        .await?;
                }
                Ok::<_, tokio_postgres::Error>(())
            }
            .await;
            match work {
                Ok(()) if own_transaction => client.batch_execute("COMMIT").await,
                Ok(()) => Ok(()),
                Err(e) => {
                    if own_transaction {
                        let _ = client.batch_execute("ROLLBACK").await;
                    }
                    Err(e)
                }
            }
        });
        result.map_err(|e| Error::from(crate::postgres::Error::from(e)))
    }
}

impl From<crate::postgres::Error> for Error {
    fn from(e: crate::postgres::Error) -> Self {
        Error::Postgres(e)
    }
}

/// A dialect whose placeholders are numbered after `offset` others, so a filter can follow
/// other parameters in one statement.
struct Offset {
    inner: PostgresDialect,
    offset: usize,
}

impl SqlDialect for Offset {
    fn field(&self, path: &str) -> Option<filter::SqlField> {
        self.inner.field(path)
    }
    fn json_field(&self, path: &str, kind: JsonKind) -> Option<String> {
        self.inner.json_field(path, kind)
    }
    fn placeholder(&self, n: usize) -> String {
        self.inner.placeholder(n + self.offset)
    }
    fn function(&self, func: filter::Func, arg: &str) -> Option<String> {
        self.inner.function(func, arg)
    }
    fn like(&self, pattern: &str) -> Option<(&'static str, String)> {
        self.inner.like(pattern)
    }
    fn bind(&self, literal: &Value, ty: FieldType) -> Option<Value> {
        self.inner.bind(literal, ty)
    }
}

/// A JSONB column's text: binary JSONB is a version byte (1) and the JSON text.
struct JsonText<'a>(&'a str);

impl<'a> FromSql<'a> for JsonText<'a> {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let text = if *ty == Type::JSONB {
            match raw.split_first() {
                Some((1, rest)) => rest,
                _ => return Err("unsupported JSONB version".into()),
            }
        } else {
            raw
        };
        Ok(JsonText(std::str::from_utf8(text)?))
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::JSONB | Type::JSON | Type::TEXT)
    }
}

/// JSON text bound as JSONB without parsing it again on the client.
#[derive(Debug)]
struct JsonbParam<'a>(&'a [u8]);

impl ToSql for JsonbParam<'_> {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.put_u8(1);
        out.put_slice(self.0);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB
    }

    to_sql_checked!();
}

/// One cell of a result row, by the type PostgreSQL reports for the column.
fn cell(row: &Row, i: usize) -> Result<Value, Error> {
    let get = |e: tokio_postgres::Error| Error::from(crate::postgres::Error::from(e));
    let ty = row.columns()[i].type_().clone();
    Ok(match ty {
        Type::INT8 => row
            .try_get::<_, Option<i64>>(i)
            .map_err(get)?
            .map(Value::Int),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(i)
            .map_err(get)?
            .map(|v| Value::Int(v.into())),
        Type::NUMERIC => row
            .try_get::<_, Option<Decimal>>(i)
            .map_err(get)?
            .map(Value::Decimal),
        Type::TIMESTAMPTZ => row
            .try_get::<_, Option<DateTime<Utc>>>(i)
            .map_err(get)?
            .map(Value::Timestamp),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(i)
            .map_err(get)?
            .map(Value::Bool),
        Type::FLOAT8 => row
            .try_get::<_, Option<f64>>(i)
            .map_err(get)?
            .map(Value::Float),
        Type::JSONB | Type::JSON => match row.try_get::<_, Option<JsonText>>(i).map_err(get)? {
            Some(JsonText(text)) => serde_json::from_str::<CellSeed>(text).map(|c| c.0).ok(),
            None => None,
        },
        _ => row
            .try_get::<_, Option<&str>>(i)
            .map_err(get)?
            .map(|s| Value::Text(s.to_owned())),
    }
    .unwrap_or(Value::Null))
}

/// A NUMERIC aggregate of JSON numbers as the value SQLite returns for it.
fn json_number(d: Decimal) -> Value {
    use rust_decimal::prelude::ToPrimitive;
    match i64::try_from(d) {
        Ok(i) if d.fract().is_zero() => Value::Int(i),
        _ => d.to_f64().map(Value::Float).unwrap_or(Value::Decimal(d)),
    }
}

/// Decodes one streamed row into the requested fields.
fn decode(plan: &ReadPlan, row: &Row, out: &mut [Value]) -> Result<(), Error> {
    for (i, slot) in plan.slots.iter().enumerate() {
        out[i] = match slot {
            Slot::Column(pos, _) => cell(row, *pos)?,
            Slot::Json | Slot::Missing => Value::Null,
        };
    }
    for (pos, wanted) in &plan.json_columns {
        if let Ok(Some(JsonText(text))) = row.try_get::<_, Option<JsonText>>(*pos) {
            decode_doc(text.as_bytes(), wanted, out);
        }
    }
    Ok(())
}

/// Times are kept to the millisecond, as in the SQLite store, so both export the same bytes.
fn millis(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// Writes rows in PostgreSQL's binary COPY format.
struct CopyWriter {
    buf: BytesMut,
}

impl CopyWriter {
    fn new() -> CopyWriter {
        let mut buf = BytesMut::with_capacity(1 << 20);
        buf.put_slice(b"PGCOPY\n\xff\r\n\0");
        buf.put_i32(0);
        buf.put_i32(0);
        CopyWriter { buf }
    }

    fn row(&mut self, fields: usize) {
        self.buf.put_i16(fields as i16);
    }

    fn field(&mut self, value: &dyn ToSql, ty: &Type) -> Result<(), Error> {
        let at = self.buf.len();
        self.buf.put_i32(0);
        let is_null = value
            .to_sql_checked(ty, &mut self.buf)
            .map_err(|e| Error::InvalidRecord(e.to_string()))?;
        let len = match is_null {
            IsNull::Yes => -1,
            IsNull::No => i32::try_from(self.buf.len() - at - 4)
                .map_err(|_| Error::InvalidRecord("a record is larger than 2 GiB".into()))?,
        };
        self.buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }

    fn finish(mut self) -> Bytes {
        self.buf.put_i16(-1);
        self.buf.freeze()
    }
}

impl LeadStore for PostgresStore {
    fn available_fields(
        &self,
        table: Table,
        time_field: TimeField,
        start: Option<DateTime<Utc>>,
        end: DateTime<Utc>,
    ) -> Result<Vec<String>, Error> {
        let fixed = match table {
            Table::Leads => LEAD_COLUMNS,
            Table::Events => EVENT_COLUMNS,
        };
        let sql = match time_field {
            TimeField::Created => {
                "SELECT name FROM field_catalog WHERE tbl = $1 AND last_ms >= $2 AND first_ms < $3
                 ORDER BY name"
            }
            TimeField::Updated => {
                "SELECT name FROM field_catalog
                 WHERE tbl = $1 AND last_updated_ms >= $2 AND first_updated_ms < $3
                 ORDER BY name"
            }
        };
        let client = self.conn.client();
        let start_ms = start.map(|s| s.timestamp_millis()).unwrap_or(i64::MIN);
        let end_ms = end.timestamp_millis();
        let tbl = Self::table_name(table);
        let rows = self
            .conn
            .run(async move { client.query(sql, &[&tbl, &start_ms, &end_ms]).await })
            .map_err(crate::postgres::Error::from)?;
        let mut fields: Vec<String> = fixed.iter().map(|s| (*s).to_owned()).collect();
        fields.extend(rows.iter().map(|r| r.get::<_, String>(0)));
        Ok(fields)
    }

    fn stream(
        &self,
        query: &Query,
        row: &mut dyn FnMut(&mut [Value]) -> Result<bool, Error>,
    ) -> Result<u64, Error> {
        let (where_sql, params, residual) = Self::where_clause(query, 0);
        let mut fields = query.fields.clone();
        let mut index: HashMap<String, usize> = HashMap::new();
        if let Some(residual) = &residual {
            for f in residual.fields() {
                if !fields.contains(&f) {
                    fields.push(f);
                }
            }
            index = fields
                .iter()
                .enumerate()
                .map(|(i, f)| (f.clone(), i))
                .collect();
        }
        let plan = ReadPlan::new(query.table, &fields);
        let sql = Self::select_sql(query, &plan, &where_sql);
        let mut cells = vec![Value::Null; fields.len()];
        let wanted = query.fields.len();
        let mut passed = 0;
        self.stream_rows(sql, params, &mut |r| {
            decode(&plan, r, &mut cells)?;
            if let Some(residual) = &residual {
                let lookup = |name: &str| {
                    index
                        .get(name)
                        .map(|&i| cells[i].clone())
                        .unwrap_or(Value::Null)
                };
                if !residual.matches(&lookup) {
                    return Ok(true);
                }
            }
            passed += 1;
            row(&mut cells[..wanted])
        })?;
        Ok(passed)
    }

    fn count(&self, query: &Query) -> Result<u64, Error> {
        let (where_sql, params, residual) = Self::where_clause(query, 0);
        if residual.is_some() {
            let mut q = query.clone();
            q.fields.clear();
            return self.stream(&q, &mut |_| Ok(true));
        }
        let sql = format!(
            "SELECT count(*) FROM {} WHERE {}",
            Self::table_name(query.table),
            where_sql
        );
        let mut n = 0;
        self.stream_rows(sql, params, &mut |r| {
            n = r.try_get::<_, i64>(0).unwrap_or(0);
            Ok(false)
        })?;
        Ok(n.max(0) as u64)
    }

    fn explain(&self, query: &Query) -> Explained {
        let (where_sql, params, residual) = Self::where_clause(query, 0);
        let plan = ReadPlan::new(query.table, &query.fields);
        Explained {
            sql: Self::select_sql(query, &plan, &where_sql),
            params,
            residual: residual.map(|r| r.to_string()),
        }
    }

    fn summarize(
        &self,
        summary: &SummaryQuery,
        row: &mut dyn FnMut(&[Value]) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let query = &summary.query;
        let dialect = Self::dialect(query.table);
        // A JSON key is read as its JSONB value, so a grouping key or a MIN keeps its JSON type
        // (numbers stay numbers) as SQLite's json_extract does.
        let field_sql = |name: &str| -> Result<(String, FieldType), Error> {
            if name == "margin" {
                return Ok((
                    "(coalesce(\"revenue\", 0) - coalesce(\"cost\", 0))".into(),
                    FieldType::Money,
                ));
            }
            match dialect.locate(name) {
                Some(Location::Column(c, ty)) => Ok((format!("\"{c}\""), ty)),
                Some(Location::Json(column, key)) => {
                    Ok((filter::jsonb_value(column, key), FieldType::Json))
                }
                None => Err(Error::Consumer(format!(
                    "`{name}` is not a field of this table"
                ))),
            }
        };
        let number = |name: &str| -> Result<String, Error> {
            let (sql, ty) = field_sql(name)?;
            Ok(match ty {
                FieldType::Json => dialect.json_field(name, JsonKind::Number).unwrap_or(sql),
                _ => sql,
            })
        };
        let mut select = Vec::new();
        let time = Self::time_column(query);
        if let Some(bucket) = summary.bucket_seconds {
            select.push(format!(
                "date_bin('{bucket} seconds'::interval, \"{time}\", TIMESTAMPTZ '1970-01-01 00:00:00+00')"
            ));
        }
        for key in &summary.keys {
            select.push(field_sql(key)?.0);
        }
        let group_count = select.len();
        let mut params = Vec::new();
        // Aggregates of JSON numbers come back as SQLite's do: whole numbers as integers,
        // others as floats (json_extract yields INTEGER or REAL).
        let mut json_numbers = Vec::new();
        for a in &summary.aggregates {
            select.push(match a {
                Aggregate::Count(None) => "count(*)".to_owned(),
                Aggregate::Count(Some(cond)) => {
                    let offset = Offset {
                        inner: dialect,
                        offset: params.len(),
                    };
                    match filter::push_down(cond, &offset) {
                        (Some(p), None) => {
                            params.extend(p.params);
                            format!("sum(CASE WHEN {} THEN 1 ELSE 0 END)::int8", p.sql)
                        }
                        _ => {
                            return Err(Error::Consumer(format!(
                                "`count where {cond}` cannot be evaluated by the store: simplify it"
                            )));
                        }
                    }
                }
                Aggregate::CountOf(f) => format!("count({})", field_sql(f)?.0),
                Aggregate::Sum(f) | Aggregate::Min(f) | Aggregate::Max(f) => {
                    let function = match a {
                        Aggregate::Sum(_) => "sum",
                        Aggregate::Min(_) => "min",
                        _ => "max",
                    };
                    let ty = field_sql(f)?.1;
                    if ty == FieldType::Json {
                        json_numbers.push(select.len());
                    }
                    match (a, ty) {
                        (Aggregate::Sum(_), FieldType::Int) => format!("sum({})::int8", number(f)?),
                        _ => format!("{function}({})", number(f)?),
                    }
                }
            });
        }
        let (where_sql, where_params, residual) = Self::where_clause(query, params.len());
        if let Some(residual) = residual {
            return Err(Error::Consumer(format!(
                "summary exports need a filter the store can evaluate; `{residual}` cannot be pushed down: simplify it"
            )));
        }
        params.extend(where_params);
        let group_by: Vec<String> = (1..=group_count).map(|i| i.to_string()).collect();
        let sql = format!(
            "SELECT {} FROM {} WHERE {}{}",
            select.join(", "),
            Self::table_name(query.table),
            where_sql,
            if group_by.is_empty() {
                String::new()
            } else {
                format!(" GROUP BY {0} ORDER BY {0}", group_by.join(", "))
            }
        );
        let mut cells = vec![Value::Null; select.len()];
        self.stream_rows(sql, params, &mut |r| {
            for (i, c) in cells.iter_mut().enumerate() {
                *c = match cell(r, i)? {
                    Value::Decimal(d) if json_numbers.contains(&i) => json_number(d),
                    other => other,
                };
            }
            row(&cells)?;
            Ok(true)
        })
    }

    fn insert_leads(&mut self, leads: &[NewLead]) -> Result<(), Error> {
        let mut catalog = CatalogUpdate::default();
        let mut copy = CopyWriter::new();
        let mut doc = Vec::with_capacity(1024);
        for (n, lead) in leads.iter().enumerate() {
            let (created, updated) = (millis(lead.created_at), millis(lead.updated_at));
            for key in lead.doc.keys() {
                catalog.see(key, created.timestamp_millis(), updated.timestamp_millis());
            }
            let revenue = money_units(lead.revenue)?.map(|u| Decimal::new(u, 4));
            let cost = money_units(lead.cost)?.map(|u| Decimal::new(u, 4));
            json_into(&mut doc, &lead.doc)?;
            copy.row(if self.bulk { 10 } else { 11 });
            copy.field(&lead.id, &LEAD_TYPES[0])?;
            copy.field(&created, &LEAD_TYPES[1])?;
            copy.field(&updated, &LEAD_TYPES[2])?;
            copy.field(&lead.source, &LEAD_TYPES[3])?;
            copy.field(&lead.flow, &LEAD_TYPES[4])?;
            copy.field(&lead.outcome, &LEAD_TYPES[5])?;
            copy.field(&lead.reason, &LEAD_TYPES[6])?;
            copy.field(&revenue, &LEAD_TYPES[7])?;
            copy.field(&cost, &LEAD_TYPES[8])?;
            copy.field(&JsonbParam(&doc), &LEAD_TYPES[9])?;
            if !self.bulk {
                copy.field(&(n as i64), &Type::INT8)?;
            }
        }
        self.load(Table::Leads, copy.finish(), vec![("", catalog)])
    }

    fn insert_events(&mut self, events: &[NewEvent]) -> Result<(), Error> {
        let mut metadata_keys = CatalogUpdate::default();
        let mut lead_keys = CatalogUpdate::default();
        let mut copy = CopyWriter::new();
        let (mut metadata, mut lead) = (Vec::with_capacity(256), Vec::with_capacity(512));
        for (n, event) in events.iter().enumerate() {
            let at = millis(event.timestamp);
            for key in event.metadata.keys() {
                metadata_keys.see(key, at.timestamp_millis(), at.timestamp_millis());
            }
            for key in event.lead.keys() {
                lead_keys.see(key, at.timestamp_millis(), at.timestamp_millis());
            }
            let price = money_units(event.price)?.map(|u| Decimal::new(u, 4));
            json_into(&mut metadata, &event.metadata)?;
            json_into(&mut lead, &event.lead)?;
            copy.row(if self.bulk { 11 } else { 12 });
            copy.field(&event.id, &EVENT_TYPES[0])?;
            copy.field(&event.kind, &EVENT_TYPES[1])?;
            copy.field(&at, &EVENT_TYPES[2])?;
            copy.field(&event.lead_id, &EVENT_TYPES[3])?;
            copy.field(&event.outcome, &EVENT_TYPES[4])?;
            copy.field(&event.reason, &EVENT_TYPES[5])?;
            copy.field(&event.recipient, &EVENT_TYPES[6])?;
            copy.field(&price, &EVENT_TYPES[7])?;
            copy.field(&event.duration_ms, &EVENT_TYPES[8])?;
            copy.field(&JsonbParam(&metadata), &EVENT_TYPES[9])?;
            copy.field(&JsonbParam(&lead), &EVENT_TYPES[10])?;
            if !self.bulk {
                copy.field(&(n as i64), &Type::INT8)?;
            }
        }
        self.load(
            Table::Events,
            copy.finish(),
            vec![("metadata.", metadata_keys), ("lead.", lead_keys)],
        )
    }

    fn totals(&self) -> Result<(u64, u64), Error> {
        let client = self.conn.client();
        let (leads, events): (i64, i64) = self
            .conn
            .run(async move {
                let r = client
                    .query_one(
                        "SELECT (SELECT count(*) FROM leads), (SELECT count(*) FROM events)",
                        &[],
                    )
                    .await?;
                Ok::<_, tokio_postgres::Error>((r.get(0), r.get(1)))
            })
            .map_err(crate::postgres::Error::from)?;
        Ok((leads.max(0) as u64, events.max(0) as u64))
    }

    fn begin_atomic(&mut self) -> Result<(), Error> {
        self.execute("BEGIN".into())?;
        self.atomic = true;
        Ok(())
    }

    fn commit_atomic(&mut self) -> Result<(), Error> {
        self.atomic = false;
        self.execute("COMMIT".into())
    }

    fn rollback_atomic(&mut self) -> Result<(), Error> {
        if self.atomic {
            self.atomic = false;
            self.execute("ROLLBACK".into())?;
        }
        Ok(())
    }

    fn begin_bulk_load(&mut self) -> Result<(), Error> {
        for (name, _) in SECONDARY_INDEXES {
            self.execute(format!("DROP INDEX IF EXISTS {name}"))?;
        }
        self.bulk = true;
        Ok(())
    }

    fn end_bulk_load(&mut self) -> Result<(), Error> {
        self.bulk = false;
        for (name, on) in SECONDARY_INDEXES {
            self.execute(format!("CREATE INDEX IF NOT EXISTS {name} ON {on}"))?;
        }
        self.execute("ANALYZE leads; ANALYZE events".into())
    }
}
