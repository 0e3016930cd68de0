//! The embedded SQLite lead store (the default, `sqlite://var/leads.db`).
//!
//! Reading is the hot path of every export. JSON columns are NOT read with `json_extract` per
//! field (that is where `sqlite3 -csv` spends most of its time): each document is parsed once
//! per row, in Rust, and only the keys the export needs are decoded; the others are skipped
//! without allocation.

use super::doc::{WantedKeys, decode_doc};
use super::{
    Aggregate, Error, Explained, LeadStore, NewEvent, NewLead, Query, SummaryQuery, Table,
    TimeField,
};
use crate::filter::{self, Expr, FieldType, Location, SqlDialect, SqliteDialect};
use crate::value::Value;
use chrono::{DateTime, TimeZone, Utc};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, ToSql, params_from_iter};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Money columns hold this many units per currency unit (45.00 is stored as 450000).
pub const MONEY_SCALE: u32 = 4;

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE leads (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    source TEXT, flow TEXT, outcome TEXT, reason TEXT,
    revenue INTEGER, cost INTEGER,
    doc TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX leads_created ON leads (created_at, id);
CREATE INDEX leads_updated ON leads (updated_at, id);
CREATE TABLE events (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    lead_id TEXT, outcome TEXT, reason TEXT, recipient TEXT,
    price INTEGER, duration_ms INTEGER,
    metadata TEXT NOT NULL DEFAULT '{}',
    lead TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_timestamp ON events (timestamp, id);
CREATE INDEX events_lead ON events (lead_id);
CREATE TABLE field_catalog (
    tbl TEXT NOT NULL, name TEXT NOT NULL, first_ms INTEGER NOT NULL, last_ms INTEGER NOT NULL,
    PRIMARY KEY (tbl, name)
) WITHOUT ROWID;
"#,
    r#"
ALTER TABLE field_catalog ADD COLUMN first_updated_ms INTEGER NOT NULL DEFAULT -9223372036854775808;
ALTER TABLE field_catalog ADD COLUMN last_updated_ms INTEGER NOT NULL DEFAULT 9223372036854775807;
"#,
];

/// Secondary indexes, dropped during a bulk load into an empty store and rebuilt after.
const SECONDARY_INDEXES: &[(&str, &str)] = &[
    ("leads_created", "leads (created_at, id)"),
    ("leads_updated", "leads (updated_at, id)"),
    ("events_timestamp", "events (timestamp, id)"),
    ("events_lead", "events (lead_id)"),
];

/// Fixed columns of each table, in the order `available_fields` lists them.
pub(super) const LEAD_COLUMNS: &[&str] = &[
    "id",
    "created_at",
    "updated_at",
    "source",
    "flow",
    "outcome",
    "reason",
    "revenue",
    "cost",
];
pub(super) const EVENT_COLUMNS: &[&str] = &[
    "id",
    "type",
    "timestamp",
    "lead_id",
    "outcome",
    "reason",
    "recipient",
    "price",
    "duration_ms",
];

/// The SQLite store.
pub struct SqliteStore {
    conn: Connection,
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<SqliteStore, Error> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::Open {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // 4 MiB of page cache (default 2 MiB): an export walks an index and fetches each row
        // from the table, and the upper levels of both trees stay resident in far less than
        // this. 16 MiB measured no faster at 1 M rows and cost 13 MiB of the run's 64 MiB.
        conn.pragma_update(None, "cache_size", -4_096)?;
        let store = SqliteStore { conn };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&self) -> Result<(), Error> {
        let version: usize = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))?
            .try_into()
            .unwrap_or(0);
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            self.conn.execute_batch(&format!(
                "BEGIN; {sql}; PRAGMA user_version = {}; COMMIT;",
                i + 1
            ))?;
        }
        Ok(())
    }

    pub(super) fn dialect(table: Table) -> SqliteDialect {
        match table {
            Table::Leads => SqliteDialect::leads(),
            Table::Events => SqliteDialect::events(),
        }
    }

    fn time_column(query: &Query) -> &'static str {
        match (query.table, query.time_field) {
            (Table::Leads, TimeField::Created) => "created_at",
            (Table::Leads, TimeField::Updated) => "updated_at",
            (Table::Events, _) => "timestamp",
        }
    }

    /// WHERE clause (window + pushed filter), its parameters, and the residual filter.
    fn where_clause(query: &Query) -> (String, Vec<Value>, Option<Expr>) {
        let time = Self::time_column(query);
        let mut conditions = vec![format!("\"{time}\" < ?")];
        let mut params = vec![Value::Int(query.end.timestamp_millis())];
        if let Some(start) = query.start {
            conditions.insert(0, format!("\"{time}\" >= ?"));
            params.insert(0, Value::Int(start.timestamp_millis()));
        }
        let mut residual = None;
        if let Some(f) = &query.filter {
            let (pushed, rest) = filter::push_down(f, &Self::dialect(query.table));
            if let Some(pushed) = pushed {
                conditions.push(format!("({})", pushed.sql));
                params.extend(pushed.params);
            }
            residual = rest;
        }
        (conditions.join(" AND "), params, residual)
    }

    fn table_name(table: Table) -> &'static str {
        match table {
            Table::Leads => "leads",
            Table::Events => "events",
        }
    }
}

/// How one requested field is read from a result row.
pub(super) enum Slot {
    /// A typed column at this SELECT position.
    Column(usize, FieldType),
    /// A key of a JSON column; the column's index in `json_columns`.
    Json,
    /// Not a field of this table: always NULL.
    Missing,
}

/// The SELECT list and how to decode each requested field.
pub(super) struct ReadPlan {
    pub(super) select: Vec<String>,
    pub(super) slots: Vec<Slot>,
    /// (SELECT position, wanted keys) per JSON column.
    pub(super) json_columns: Vec<(usize, WantedKeys)>,
}

impl ReadPlan {
    pub(super) fn new(table: Table, fields: &[String]) -> ReadPlan {
        let dialect = SqliteStore::dialect(table);
        let mut plan = ReadPlan {
            select: Vec::new(),
            slots: Vec::new(),
            json_columns: Vec::new(),
        };
        let mut json_index: BTreeMap<&'static str, usize> = BTreeMap::new();
        for (out, field) in fields.iter().enumerate() {
            let slot = match dialect.locate(field) {
                Some(Location::Column(name, ty)) => {
                    let quoted = format!("\"{name}\"");
                    let pos = plan
                        .select
                        .iter()
                        .position(|s| *s == quoted)
                        .unwrap_or_else(|| {
                            plan.select.push(quoted);
                            plan.select.len() - 1
                        });
                    Slot::Column(pos, ty)
                }
                Some(Location::Json(column, key)) => {
                    let j = *json_index.entry(column).or_insert_with(|| {
                        plan.select.push(format!("\"{column}\""));
                        plan.json_columns
                            .push((plan.select.len() - 1, WantedKeys::default()));
                        plan.json_columns.len() - 1
                    });
                    plan.json_columns[j].1.push(key.to_owned(), out);
                    Slot::Json
                }
                None => Slot::Missing,
            };
            plan.slots.push(slot);
        }
        if plan.select.is_empty() {
            plan.select.push("1".into());
        }
        plan
    }

    fn decode(&self, row: &rusqlite::Row<'_>, out: &mut [Value]) -> Result<(), Error> {
        for (i, slot) in self.slots.iter().enumerate() {
            out[i] = match slot {
                Slot::Column(pos, ty) => column_value(row.get_ref(*pos)?, *ty),
                Slot::Json | Slot::Missing => Value::Null,
            };
        }
        for (pos, wanted) in &self.json_columns {
            if let ValueRef::Text(bytes) = row.get_ref(*pos)? {
                decode_doc(bytes, wanted, out);
            }
        }
        Ok(())
    }
}

fn column_value(v: ValueRef<'_>, ty: FieldType) -> Value {
    match (v, ty) {
        (ValueRef::Null, _) => Value::Null,
        (ValueRef::Integer(ms), FieldType::Timestamp) => Utc
            .timestamp_millis_opt(ms)
            .single()
            .map(Value::Timestamp)
            .unwrap_or(Value::Null),
        (ValueRef::Integer(units), FieldType::Money) => {
            Value::Decimal(Decimal::new(units, MONEY_SCALE))
        }
        (ValueRef::Integer(i), FieldType::Bool) => Value::Bool(i != 0),
        (ValueRef::Integer(i), _) => Value::Int(i),
        (ValueRef::Real(f), _) => Value::Float(f),
        (ValueRef::Text(t), _) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        (ValueRef::Blob(b), _) => Value::Text(hex::encode(b)),
    }
}

/// Binds a cell as an SQLite parameter.
struct Param<'a>(&'a Value);

impl ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        use rusqlite::types::Value as V;
        Ok(ToSqlOutput::Owned(match self.0 {
            Value::Null => V::Null,
            Value::Bool(b) => V::Integer(i64::from(*b)),
            Value::Int(i) => V::Integer(*i),
            Value::Decimal(d) => V::Text(d.to_string()),
            Value::Float(f) => V::Real(*f),
            Value::Text(s) => V::Text(s.clone()),
            Value::Timestamp(t) => V::Integer(t.timestamp_millis()),
        }))
    }
}

/// Serialises a document into a reused buffer.
pub(super) fn json_into(
    buf: &mut Vec<u8>,
    doc: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), Error> {
    buf.clear();
    serde_json::to_writer(&mut *buf, doc).map_err(|e| Error::InvalidRecord(e.to_string()))
}

/// serde_json writes UTF-8, so this never falls back.
fn json_text(buf: &[u8]) -> &str {
    std::str::from_utf8(buf).unwrap_or("{}")
}

pub(super) fn money_units(d: Option<Decimal>) -> Result<Option<i64>, Error> {
    d.map(|d| {
        let scaled = d * Decimal::from(10_i64.pow(MONEY_SCALE));
        if !scaled.fract().is_zero() {
            return Err(Error::InvalidRecord(format!(
                "amount `{d}` has more than {MONEY_SCALE} decimal places"
            )));
        }
        i64::try_from(scaled)
            .map_err(|_| Error::InvalidRecord(format!("amount `{d}` is too large")))
    })
    .transpose()
}

/// Catalog of JSON keys seen per table, with the time range they were seen in.
#[derive(Default)]
pub(super) struct CatalogUpdate(pub(super) HashMap<String, [i64; 4]>);

impl CatalogUpdate {
    /// Records that `name` was seen on a record created at `created_ms` and last updated at
    /// `updated_ms`, so both kinds of windows can ask which fields they may contain.
    pub(super) fn see(&mut self, name: &str, created_ms: i64, updated_ms: i64) {
        match self.0.get_mut(name) {
            Some(e) => {
                e[0] = e[0].min(created_ms);
                e[1] = e[1].max(created_ms);
                e[2] = e[2].min(updated_ms);
                e[3] = e[3].max(updated_ms);
            }
            None => {
                self.0.insert(
                    name.to_owned(),
                    [created_ms, created_ms, updated_ms, updated_ms],
                );
            }
        }
    }

    /// Writes the ranges; `prefix` names the JSON column for event fields (`metadata.`).
    fn write(self, tx: &Connection, table: &str, prefix: &str) -> Result<(), Error> {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO field_catalog
               (tbl, name, first_ms, last_ms, first_updated_ms, last_updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (tbl, name) DO UPDATE SET
               first_ms = min(first_ms, excluded.first_ms),
               last_ms = max(last_ms, excluded.last_ms),
               first_updated_ms = min(first_updated_ms, excluded.first_updated_ms),
               last_updated_ms = max(last_updated_ms, excluded.last_updated_ms)",
        )?;
        for (name, [first, last, first_updated, last_updated]) in self.0 {
            stmt.execute(rusqlite::params![
                table,
                format!("{prefix}{name}"),
                first,
                last,
                first_updated,
                last_updated
            ])?;
        }
        Ok(())
    }
}

impl LeadStore for SqliteStore {
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
        let mut fields: Vec<String> = fixed.iter().map(|s| (*s).to_owned()).collect();
        let mut stmt = self.conn.prepare_cached(match time_field {
            TimeField::Created => {
                "SELECT name FROM field_catalog WHERE tbl = ?1 AND last_ms >= ?2 AND first_ms < ?3
                 ORDER BY name"
            }
            TimeField::Updated => {
                "SELECT name FROM field_catalog
                 WHERE tbl = ?1 AND last_updated_ms >= ?2 AND first_updated_ms < ?3
                 ORDER BY name"
            }
        })?;
        let start_ms = start.map(|s| s.timestamp_millis()).unwrap_or(i64::MIN);
        let names = stmt.query_map(
            rusqlite::params![Self::table_name(table), start_ms, end.timestamp_millis()],
            |r| r.get::<_, String>(0),
        )?;
        for name in names {
            fields.push(name?);
        }
        Ok(fields)
    }

    fn stream(
        &self,
        query: &Query,
        row: &mut dyn FnMut(&mut [Value]) -> Result<bool, Error>,
    ) -> Result<u64, Error> {
        let (where_sql, params, residual) = Self::where_clause(query);
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
        let sql = format!(
            "SELECT {} FROM {} WHERE {} ORDER BY \"{}\", id",
            plan.select.join(", "),
            Self::table_name(query.table),
            where_sql,
            Self::time_column(query)
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let mut rows = stmt.query(params_from_iter(params.iter().map(Param)))?;
        let mut cells = vec![Value::Null; fields.len()];
        let wanted = query.fields.len();
        let mut passed = 0;
        while let Some(r) = rows.next()? {
            plan.decode(r, &mut cells)?;
            if let Some(residual) = &residual {
                let lookup = |name: &str| {
                    index
                        .get(name)
                        .map(|&i| cells[i].clone())
                        .unwrap_or(Value::Null)
                };
                if !residual.matches(&lookup) {
                    continue;
                }
            }
            passed += 1;
            if !row(&mut cells[..wanted])? {
                break;
            }
        }
        Ok(passed)
    }

    fn count(&self, query: &Query) -> Result<u64, Error> {
        let (where_sql, params, residual) = Self::where_clause(query);
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
        let n: i64 =
            self.conn
                .query_row(&sql, params_from_iter(params.iter().map(Param)), |r| {
                    r.get(0)
                })?;
        Ok(n.max(0) as u64)
    }

    fn explain(&self, query: &Query) -> Explained {
        let (where_sql, params, residual) = Self::where_clause(query);
        let plan = ReadPlan::new(query.table, &query.fields);
        Explained {
            sql: format!(
                "SELECT {} FROM {} WHERE {} ORDER BY \"{}\", id",
                plan.select.join(", "),
                Self::table_name(query.table),
                where_sql,
                Self::time_column(query)
            ),
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
        let (where_sql, mut params, residual) = Self::where_clause(query);
        if let Some(residual) = residual {
            return Err(Error::Consumer(format!(
                "summary exports need a filter the store can evaluate; `{residual}` cannot be pushed down: simplify it"
            )));
        }
        let dialect = Self::dialect(query.table);
        let field_sql = |name: &str| -> Result<(String, FieldType), Error> {
            if name == "margin" {
                return Ok((
                    "(coalesce(revenue, 0) - coalesce(cost, 0))".into(),
                    FieldType::Money,
                ));
            }
            dialect
                .field(name)
                .map(|f| (f.expr, f.ty))
                .ok_or_else(|| Error::Consumer(format!("`{name}` is not a field of this table")))
        };
        let mut select = Vec::new();
        let mut types = Vec::new();
        let time = Self::time_column(query);
        if let Some(bucket) = summary.bucket_seconds {
            let ms = bucket * 1000;
            select.push(format!("(\"{time}\" / {ms}) * {ms}"));
            types.push(FieldType::Timestamp);
        }
        for key in &summary.keys {
            let (sql, ty) = field_sql(key)?;
            select.push(sql);
            types.push(ty);
        }
        let group_count = select.len();
        let mut aggregate_params = Vec::new();
        for a in &summary.aggregates {
            let (sql, ty) = match a {
                Aggregate::Count(None) => ("count(*)".to_owned(), FieldType::Int),
                Aggregate::Count(Some(cond)) => {
                    let (pushed, rest) = filter::push_down(cond, &dialect);
                    match (pushed, rest) {
                        (Some(p), None) => {
                            aggregate_params.extend(p.params);
                            (
                                format!("sum(CASE WHEN {} THEN 1 ELSE 0 END)", p.sql),
                                FieldType::Int,
                            )
                        }
                        _ => {
                            return Err(Error::Consumer(format!(
                                "`count where {cond}` cannot be evaluated by the store: simplify it"
                            )));
                        }
                    }
                }
                Aggregate::CountOf(f) => {
                    let (sql, _) = field_sql(f)?;
                    (format!("count({sql})"), FieldType::Int)
                }
                Aggregate::Sum(f) => {
                    let (sql, ty) = field_sql(f)?;
                    (format!("sum({sql})"), ty)
                }
                Aggregate::Min(f) => {
                    let (sql, ty) = field_sql(f)?;
                    (format!("min({sql})"), ty)
                }
                Aggregate::Max(f) => {
                    let (sql, ty) = field_sql(f)?;
                    (format!("max({sql})"), ty)
                }
            };
            select.push(sql);
            types.push(ty);
        }
        aggregate_params.append(&mut params);
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
        let mut stmt = self.conn.prepare(&sql)?;
        let mut rows = stmt.query(params_from_iter(aggregate_params.iter().map(Param)))?;
        let mut cells = vec![Value::Null; types.len()];
        while let Some(r) = rows.next()? {
            for (i, ty) in types.iter().enumerate() {
                cells[i] = column_value(r.get_ref(i)?, *ty);
            }
            row(&cells)?;
        }
        Ok(())
    }

    fn insert_leads(&mut self, leads: &[NewLead]) -> Result<(), Error> {
        let tx = self.conn.savepoint()?;
        let mut catalog = CatalogUpdate::default();
        let mut doc_buf = Vec::with_capacity(1024);
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR REPLACE INTO leads
                 (id, created_at, updated_at, source, flow, outcome, reason, revenue, cost, doc)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?;
            for lead in leads {
                let created = lead.created_at.timestamp_millis();
                let updated = lead.updated_at.timestamp_millis();
                for key in lead.doc.keys() {
                    catalog.see(key, created, updated);
                }
                json_into(&mut doc_buf, &lead.doc)?;
                let doc = json_text(&doc_buf);
                stmt.execute(rusqlite::params![
                    lead.id,
                    created,
                    lead.updated_at.timestamp_millis(),
                    lead.source,
                    lead.flow,
                    lead.outcome,
                    lead.reason,
                    money_units(lead.revenue)?,
                    money_units(lead.cost)?,
                    doc,
                ])?;
            }
        }
        catalog.write(&tx, "leads", "")?;
        tx.commit()?;
        Ok(())
    }

    fn insert_events(&mut self, events: &[NewEvent]) -> Result<(), Error> {
        let tx = self.conn.savepoint()?;
        let mut metadata_keys = CatalogUpdate::default();
        let mut lead_keys = CatalogUpdate::default();
        // Documents are serialised into reused buffers: one allocation per batch, not per row.
        let (mut metadata, mut lead) = (Vec::with_capacity(256), Vec::with_capacity(512));
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR REPLACE INTO events
                 (id, type, timestamp, lead_id, outcome, reason, recipient, price, duration_ms, metadata, lead)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            for event in events {
                let at = event.timestamp.timestamp_millis();
                for key in event.metadata.keys() {
                    metadata_keys.see(key, at, at);
                }
                for key in event.lead.keys() {
                    lead_keys.see(key, at, at);
                }
                json_into(&mut metadata, &event.metadata)?;
                json_into(&mut lead, &event.lead)?;
                stmt.execute(rusqlite::params![
                    event.id,
                    event.kind,
                    at,
                    event.lead_id,
                    event.outcome,
                    event.reason,
                    event.recipient,
                    money_units(event.price)?,
                    event.duration_ms,
                    json_text(&metadata),
                    json_text(&lead),
                ])?;
            }
        }
        metadata_keys.write(&tx, "events", "metadata.")?;
        lead_keys.write(&tx, "events", "lead.")?;
        tx.commit()?;
        Ok(())
    }

    fn begin_atomic(&mut self) -> Result<(), Error> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(())
    }

    fn commit_atomic(&mut self) -> Result<(), Error> {
        self.conn.execute_batch("COMMIT")?;
        Ok(())
    }

    fn rollback_atomic(&mut self) -> Result<(), Error> {
        if !self.conn.is_autocommit() {
            self.conn.execute_batch("ROLLBACK")?;
        }
        Ok(())
    }

    fn begin_bulk_load(&mut self) -> Result<(), Error> {
        for (name, _) in SECONDARY_INDEXES {
            self.conn
                .execute_batch(&format!("DROP INDEX IF EXISTS {name}"))?;
        }
        Ok(())
    }

    fn end_bulk_load(&mut self) -> Result<(), Error> {
        for (name, on) in SECONDARY_INDEXES {
            self.conn
                .execute_batch(&format!("CREATE INDEX IF NOT EXISTS {name} ON {on}"))?;
        }
        Ok(())
    }

    fn totals(&self) -> Result<(u64, u64), Error> {
        let count = |t: &str| -> Result<u64, Error> {
            let n: i64 = self
                .conn
                .query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))?;
            Ok(n.max(0) as u64)
        };
        Ok((count("leads")?, count("events")?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ingest::parse_lead;

    fn leads(ids: &[&str]) -> Vec<NewLead> {
        ids.iter()
            .map(|id| {
                parse_lead(&format!(
                    r#"{{"id": "{id}", "created_at": "2024-01-15T10:00:00Z", "revenue": "45.10", "email": "a@b.co"}}"#
                ))
                .expect("valid lead")
            })
            .collect()
    }

    #[test]
    fn atomic_units_commit_together_or_not_at_all() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = SqliteStore::open(&dir.path().join("leads.db")).expect("open");
        store.begin_atomic().expect("begin");
        store.insert_leads(&leads(&["a", "b"])).expect("batch 1");
        store.insert_leads(&leads(&["c"])).expect("batch 2");
        store.rollback_atomic().expect("rollback");
        assert_eq!(store.totals().expect("totals"), (0, 0));
        store.begin_atomic().expect("begin");
        store.insert_leads(&leads(&["a", "b"])).expect("batch 1");
        store.insert_leads(&leads(&["c"])).expect("batch 2");
        store.commit_atomic().expect("commit");
        assert_eq!(store.totals().expect("totals"), (3, 0));
        // Outside a unit of work each batch commits on its own.
        store.insert_leads(&leads(&["d"])).expect("batch 3");
        assert_eq!(store.totals().expect("totals"), (4, 0));
    }
}
