//! The PostgreSQL state store (`[state] url = "postgres://…"`): one history for several
//! replicas of the daemon.
//!
//! The tables and their meaning are the SQLite state store's (times in epoch milliseconds,
//! `INT8`), so the two behave the same and the trait's tests describe both. One connection
//! behind a mutex, like SQLite's: state writes are a handful per run. A connection that broke
//! (server restart, partition) is opened again on the next call; until that works every call
//! fails, so a replica that cannot reach the database claims nothing and starts no runs.

use super::{
    AuditEntry, AuditFilter, Claim, Delivery, Error, LedgerTotal, Revision, RunFilter, RunOutcome,
    RunRecord, RunStart, StateStore,
};
use crate::config::secret::Secret;
use crate::postgres::Connection;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use tokio_postgres::{Client, Row};

/// Schema migrations, recorded in `schema_migrations` as schema `state`. Never edit a released
/// entry: append.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    export TEXT NOT NULL,
    nominal INT8 NOT NULL,
    window_start INT8,
    window_end INT8 NOT NULL,
    state TEXT NOT NULL,
    attempt INT8 NOT NULL,
    triggered_by TEXT NOT NULL,
    started_at INT8,
    finished_at INT8,
    row_count INT8,
    byte_count INT8,
    part_count INT8,
    error TEXT,
    revision TEXT NOT NULL
);
CREATE INDEX runs_export_nominal ON runs (export, nominal);
CREATE INDEX runs_state ON runs (state, nominal);
CREATE INDEX runs_nominal ON runs (nominal);
CREATE TABLE ledger (
    destination TEXT NOT NULL,
    object_key TEXT NOT NULL,
    export TEXT NOT NULL,
    run_id TEXT NOT NULL,
    byte_count INT8 NOT NULL,
    sha256 TEXT NOT NULL,
    delivered_at INT8 NOT NULL,
    PRIMARY KEY (destination, object_key)
);
CREATE INDEX ledger_run ON ledger (run_id);
CREATE INDEX ledger_export ON ledger (export, delivered_at);
CREATE TABLE watermarks (
    export TEXT PRIMARY KEY,
    window_end INT8 NOT NULL
);
CREATE TABLE revisions (
    export TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    accepted_at INT8 NOT NULL
);
CREATE TABLE claims (
    claim_key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    lease_until INT8 NOT NULL,
    done BOOLEAN NOT NULL DEFAULT false
)
"#,
    // 2: retention. The expiry and the destination's location are recorded at delivery, so
    // objects of a removed definition still expire on schedule and can still be reached.
    r#"
ALTER TABLE ledger ADD COLUMN expires_at INT8;
ALTER TABLE ledger ADD COLUMN location TEXT NOT NULL DEFAULT ''
"#,
    // 3: the audit log, append-only: a trigger refuses any UPDATE, DELETE or TRUNCATE, so not
    // even a bug in exportd can rewrite history (a superuser can still drop the trigger; the
    // database's own audit covers that).
    r#"
CREATE TABLE audit (
    id BIGSERIAL PRIMARY KEY,
    at INT8 NOT NULL,
    actor TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL
);
CREATE INDEX audit_at ON audit (at);
CREATE FUNCTION exportd_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the audit log is append-only'; END
$$;
CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION exportd_audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION exportd_audit_append_only()
"#,
    // 4: storage class transitions. When retention moved an object, so it is moved once.
    r#"
ALTER TABLE ledger ADD COLUMN transitioned_at INT8
"#,
];

/// Columns of `runs` in the order [`read_run`] decodes them.
const RUN_COLUMNS: &str = "id, export, nominal, window_start, window_end, state, attempt, \
     triggered_by, started_at, finished_at, row_count, byte_count, part_count, error, revision";

/// Columns of `ledger` in the order [`read_delivery`] decodes them.
const LEDGER_COLUMNS: &str = "export, run_id, destination, object_key, byte_count, sha256, \
     delivered_at, expires_at, location, transitioned_at";

/// The PostgreSQL state store.
pub struct PostgresState {
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for PostgresState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PostgresState")
    }
}

type PgResult<T> = Result<T, tokio_postgres::Error>;

impl PostgresState {
    /// Connects and brings the schema up to date.
    pub fn open(url: &str, password: Option<&Secret>) -> Result<PostgresState, Error> {
        let conn = Connection::open(url, password)?;
        conn.migrate("state", MIGRATIONS)?;
        Ok(PostgresState {
            conn: Mutex::new(conn),
        })
    }

    /// Runs `work` with the client, connecting again first if the connection broke.
    fn call<T, Fut>(&self, work: impl FnOnce(Arc<Client>) -> Fut) -> Result<T, Error>
    where
        Fut: Future<Output = PgResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        if conn.is_closed() {
            conn.reconnect()?;
        }
        let future = work(conn.client());
        conn.run(future)
            .map_err(|e| Error::Postgres(crate::postgres::Error::from(e)))
    }

    fn runs(&self, sql: String, params: Vec<Param>) -> Result<Vec<RunRecord>, Error> {
        let rows = self.call(move |c| async move { c.query(&sql, &refs(&params)).await })?;
        rows.iter().map(read_run).collect()
    }

    fn deliveries(&self, sql: String, params: Vec<Param>) -> Result<Vec<Delivery>, Error> {
        let rows = self.call(move |c| async move { c.query(&sql, &refs(&params)).await })?;
        rows.iter().map(read_delivery).collect()
    }

    /// Runs one statement once per row of parameters, all in one transaction.
    fn execute_each(&self, sql: &'static str, rows: Vec<Vec<Param>>) -> Result<(), Error> {
        self.call(move |c| async move {
            c.batch_execute("BEGIN").await?;
            let work = async {
                let stmt = c.prepare(sql).await?;
                for row in &rows {
                    c.execute(&stmt, &refs(row)).await?;
                }
                Ok(())
            }
            .await;
            finish_transaction(&c, work).await
        })
    }

    fn run_by_id(&self, id: &str) -> Result<Option<RunRecord>, Error> {
        Ok(self
            .runs(
                format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"),
                vec![id.into()],
            )?
            .pop())
    }
}

/// An owned parameter (queries run on another thread, so they cannot borrow).
#[derive(Debug, Clone)]
enum Param {
    Text(Option<String>),
    Int(Option<i64>),
}

impl From<&str> for Param {
    fn from(s: &str) -> Param {
        Param::Text(Some(s.to_owned()))
    }
}

impl From<i64> for Param {
    fn from(i: i64) -> Param {
        Param::Int(Some(i))
    }
}

impl From<Option<&str>> for Param {
    fn from(s: Option<&str>) -> Param {
        Param::Text(s.map(str::to_owned))
    }
}

impl From<Option<i64>> for Param {
    fn from(i: Option<i64>) -> Param {
        Param::Int(i)
    }
}

fn refs(params: &[Param]) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
    params
        .iter()
        .map(|p| match p {
            Param::Text(t) => t as &(dyn tokio_postgres::types::ToSql + Sync),
            Param::Int(i) => i as &(dyn tokio_postgres::types::ToSql + Sync),
        })
        .collect()
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn time(column: &str, ms: i64) -> Result<DateTime<Utc>, Error> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| Error::Corrupt(format!("`{column}` = {ms} is not a valid time")))
}

fn opt_time(column: &str, ms: Option<i64>) -> Result<Option<DateTime<Utc>>, Error> {
    ms.map(|ms| time(column, ms)).transpose()
}

fn count_in(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn count_out(column: &str, v: Option<i64>) -> Result<Option<u64>, Error> {
    v.map(|v| u64::try_from(v).map_err(|_| Error::Corrupt(format!("`{column}` = {v} is negative"))))
        .transpose()
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(r: &'a Row, i: usize) -> Result<T, Error> {
    r.try_get(i)
        .map_err(|e| Error::Corrupt(format!("column {i}: {e}")))
}

fn read_run(r: &Row) -> Result<RunRecord, Error> {
    let state: String = get(r, 5)?;
    let trigger: String = get(r, 7)?;
    let attempt: i64 = get(r, 6)?;
    Ok(RunRecord {
        id: get(r, 0)?,
        export: get(r, 1)?,
        nominal: time("nominal", get(r, 2)?)?,
        window_start: opt_time("window_start", get(r, 3)?)?,
        window_end: time("window_end", get(r, 4)?)?,
        state: state.parse().map_err(|e| Error::Corrupt(format!("{e}")))?,
        attempt: u32::try_from(attempt)
            .map_err(|_| Error::Corrupt(format!("`attempt` = {attempt} is out of range")))?,
        trigger: trigger
            .parse()
            .map_err(|e| Error::Corrupt(format!("{e}")))?,
        started_at: opt_time("started_at", get(r, 8)?)?,
        finished_at: opt_time("finished_at", get(r, 9)?)?,
        rows: count_out("row_count", get(r, 10)?)?,
        bytes: count_out("byte_count", get(r, 11)?)?,
        parts: count_out("part_count", get(r, 12)?)?,
        error: get(r, 13)?,
        revision: get(r, 14)?,
    })
}

fn read_delivery(r: &Row) -> Result<Delivery, Error> {
    Ok(Delivery {
        export: get(r, 0)?,
        run_id: get(r, 1)?,
        destination: get(r, 2)?,
        key: get(r, 3)?,
        bytes: count_out("byte_count", get(r, 4)?)?.unwrap_or(0),
        sha256: get(r, 5)?,
        delivered_at: time("delivered_at", get(r, 6)?)?,
        expires_at: opt_time("expires_at", get(r, 7)?)?,
        location: get(r, 8)?,
        transitioned_at: opt_time("transitioned_at", get(r, 9)?)?,
    })
}

/// Upserts an accepted revision, keeping `accepted_at` when the revision did not change.
const SET_REVISION: &str = "INSERT INTO revisions (export, sha256, accepted_at) VALUES ($1, $2, $3)
     ON CONFLICT (export) DO UPDATE SET
       sha256 = excluded.sha256,
       accepted_at = excluded.accepted_at
     WHERE revisions.sha256 <> excluded.sha256";

impl StateStore for PostgresState {
    fn record_start(&self, start: &RunStart) -> Result<RunRecord, Error> {
        let sql = format!(
            "INSERT INTO runs (id, export, nominal, window_start, window_end, state, attempt,
                               triggered_by, started_at, revision)
             VALUES ($1, $2, $3, $4, $5, 'running', 1, $6, $7, $8)
             ON CONFLICT (id) DO UPDATE SET
               window_start = excluded.window_start,
               window_end = excluded.window_end,
               state = 'running',
               attempt = runs.attempt + 1,
               triggered_by = excluded.triggered_by,
               started_at = excluded.started_at,
               finished_at = NULL,
               row_count = NULL,
               byte_count = NULL,
               part_count = NULL,
               error = NULL,
               revision = excluded.revision
             RETURNING {RUN_COLUMNS}"
        );
        let params = vec![
            start.id().as_str().into(),
            start.export.as_str().into(),
            ms(start.nominal).into(),
            Param::Int(start.window_start.map(ms)),
            ms(start.window_end).into(),
            start.trigger.as_str().into(),
            ms(start.started_at).into(),
            start.revision.as_str().into(),
        ];
        self.runs(sql, params)?
            .pop()
            .ok_or_else(|| Error::UnknownRun(start.id()))
    }

    fn record_finish(
        &self,
        id: &str,
        outcome: &RunOutcome,
        finished_at: DateTime<Utc>,
    ) -> Result<RunRecord, Error> {
        let (sql, params): (&str, Vec<Param>) = match outcome {
            RunOutcome::Completed { rows, bytes, parts } => (
                "UPDATE runs SET state = 'completed', finished_at = $2, row_count = $3,
                   byte_count = $4, part_count = $5, error = NULL
                 WHERE id = $1",
                vec![
                    id.into(),
                    ms(finished_at).into(),
                    count_in(*rows).into(),
                    count_in(*bytes).into(),
                    count_in(*parts).into(),
                ],
            ),
            RunOutcome::Failed { error } => (
                "UPDATE runs SET state = 'failed', finished_at = $2, row_count = NULL,
                   byte_count = NULL, part_count = NULL, error = $3
                 WHERE id = $1",
                vec![id.into(), ms(finished_at).into(), error.as_str().into()],
            ),
        };
        let changed = self.call(move |c| async move { c.execute(sql, &refs(&params)).await })?;
        if changed == 0 {
            return Err(Error::UnknownRun(id.to_owned()));
        }
        self.run_by_id(id)?
            .ok_or_else(|| Error::UnknownRun(id.to_owned()))
    }

    fn mark_interrupted(&self, id: &str, at: DateTime<Utc>) -> Result<RunRecord, Error> {
        let params: Vec<Param> = vec![id.into(), ms(at).into()];
        self.call(move |c| async move {
            c.execute(
                "UPDATE runs SET state = 'interrupted', finished_at = $2,
                   error = 'interrupted by shutdown before it finished; retried on the next start'
                 WHERE id = $1 AND state = 'running'",
                &refs(&params),
            )
            .await
        })?;
        self.run_by_id(id)?
            .ok_or_else(|| Error::UnknownRun(id.to_owned()))
    }

    fn mark_expired(&self, id: &str) -> Result<RunRecord, Error> {
        let params: Vec<Param> = vec![id.into()];
        self.call(move |c| async move {
            c.execute(
                "UPDATE runs SET state = 'expired' WHERE id = $1 AND state = 'completed'",
                &refs(&params),
            )
            .await
        })?;
        self.run_by_id(id)?
            .ok_or_else(|| Error::UnknownRun(id.to_owned()))
    }

    fn running_runs(&self) -> Result<Vec<RunRecord>, Error> {
        self.runs(
            format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE state = 'running' ORDER BY nominal, export"
            ),
            vec![],
        )
    }

    fn get_run(&self, id: &str) -> Result<Option<RunRecord>, Error> {
        self.run_by_id(id)
    }

    fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, Error> {
        self.runs(
            format!(
                "SELECT {RUN_COLUMNS} FROM runs
                 WHERE ($1::text IS NULL OR export = $1) AND ($2::text IS NULL OR state = $2)
                 ORDER BY nominal DESC, export
                 LIMIT $3"
            ),
            vec![
                Param::Text(filter.export.clone()),
                Param::Text(filter.state.map(|s| s.as_str().to_owned())),
                Param::Int(filter.limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX))),
            ],
        )
    }

    fn last_nominal(&self, export: &str) -> Result<Option<DateTime<Utc>>, Error> {
        let export = export.to_owned();
        let ms: Option<i64> = self.call(move |c| async move {
            c.query_one(
                "SELECT max(nominal) FROM runs
                 WHERE export = $1 AND triggered_by IN ('schedule', 'catch_up')",
                &[&export],
            )
            .await
            .map(|r| r.get(0))
        })?;
        opt_time("nominal", ms)
    }

    fn last_completed(&self, export: &str) -> Result<Option<RunRecord>, Error> {
        Ok(self
            .runs(
                format!(
                    "SELECT {RUN_COLUMNS} FROM runs WHERE export = $1 AND state = 'completed'
                     ORDER BY finished_at DESC, nominal DESC LIMIT 1"
                ),
                vec![export.into()],
            )?
            .pop())
    }

    fn record_deliveries(&self, deliveries: &[Delivery]) -> Result<(), Error> {
        let rows: Vec<Vec<Param>> = deliveries
            .iter()
            .map(|d| {
                vec![
                    d.destination.as_str().into(),
                    d.key.as_str().into(),
                    d.export.as_str().into(),
                    d.run_id.as_str().into(),
                    count_in(d.bytes).into(),
                    d.sha256.as_str().into(),
                    ms(d.delivered_at).into(),
                    d.expires_at.map(ms).into(),
                    d.location.as_str().into(),
                    d.transitioned_at.map(ms).into(),
                ]
            })
            .collect();
        self.execute_each(
            "INSERT INTO ledger
                           (destination, object_key, export, run_id, byte_count, sha256,
                            delivered_at, expires_at, location, transitioned_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                         ON CONFLICT (destination, object_key) DO UPDATE SET
                           export = excluded.export,
                           run_id = excluded.run_id,
                           byte_count = excluded.byte_count,
                           sha256 = excluded.sha256,
                           delivered_at = excluded.delivered_at,
                           expires_at = excluded.expires_at,
                           location = excluded.location,
                   transitioned_at = excluded.transitioned_at",
            rows,
        )
    }

    fn deliveries_for_run(&self, run_id: &str) -> Result<Vec<Delivery>, Error> {
        self.deliveries(
            format!(
                "SELECT {LEDGER_COLUMNS} FROM ledger WHERE run_id = $1
                 ORDER BY destination, object_key"
            ),
            vec![run_id.into()],
        )
    }

    fn deliveries_for_export(&self, export: &str) -> Result<Vec<Delivery>, Error> {
        self.deliveries(
            format!(
                "SELECT {LEDGER_COLUMNS} FROM ledger WHERE export = $1
                 ORDER BY delivered_at, destination, object_key"
            ),
            vec![export.into()],
        )
    }

    fn remove_delivery(&self, destination: &str, key: &str) -> Result<bool, Error> {
        let params: Vec<Param> = vec![destination.into(), key.into()];
        let n = self.call(move |c| async move {
            c.execute(
                "DELETE FROM ledger WHERE destination = $1 AND object_key = $2",
                &refs(&params),
            )
            .await
        })?;
        Ok(n > 0)
    }

    fn mark_transitioned(
        &self,
        destination: &str,
        key: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let params: Vec<Param> = vec![destination.into(), key.into(), ms(at).into()];
        let n = self.call(move |c| async move {
            c.execute(
                "UPDATE ledger SET transitioned_at = $3 WHERE destination = $1 AND object_key = $2",
                &refs(&params),
            )
            .await
        })?;
        Ok(n > 0)
    }

    fn append_audit(&self, entries: &[AuditEntry]) -> Result<(), Error> {
        let rows: Vec<Vec<Param>> = entries
            .iter()
            .map(|e| {
                vec![
                    ms(e.at).into(),
                    e.actor.as_str().into(),
                    e.role.as_str().into(),
                    e.action.as_str().into(),
                    e.target.as_str().into(),
                    e.outcome.as_str().into(),
                ]
            })
            .collect();
        self.execute_each(
            "INSERT INTO audit (at, actor, role, action, target, outcome)
                         VALUES ($1, $2, $3, $4, $5, $6)",
            rows,
        )
    }

    fn audit_log(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, Error> {
        let params: Vec<Param> = vec![
            filter.actor.as_deref().into(),
            filter.action.as_deref().into(),
            filter.since.map(ms).into(),
            filter
                .limit
                .map(|l| i64::try_from(l).unwrap_or(i64::MAX))
                .into(),
        ];
        let rows = self.call(move |c| async move {
            c.query(
                "SELECT id, at, actor, role, action, target, outcome FROM audit
                 WHERE ($1::text IS NULL OR actor = $1) AND ($2::text IS NULL OR action = $2)
                   AND ($3::int8 IS NULL OR at >= $3)
                 ORDER BY id DESC LIMIT $4",
                &refs(&params),
            )
            .await
        })?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    id: count_out("id", Some(get(r, 0)?))?.unwrap_or(0),
                    at: time("at", get(r, 1)?)?,
                    actor: get(r, 2)?,
                    role: get(r, 3)?,
                    action: get(r, 4)?,
                    target: get(r, 5)?,
                    outcome: get(r, 6)?,
                })
            })
            .collect()
    }

    fn ledger_exports(&self) -> Result<Vec<String>, Error> {
        let rows = self.call(move |c| async move {
            c.query("SELECT DISTINCT export FROM ledger ORDER BY export", &[])
                .await
        })?;
        rows.iter().map(|r| get(r, 0)).collect()
    }

    fn ledger_totals(
        &self,
        export: Option<&str>,
        since: DateTime<Utc>,
    ) -> Result<Vec<LedgerTotal>, Error> {
        let params: Vec<Param> = vec![export.into(), ms(since).into()];
        // SUM of INT8 is NUMERIC in PostgreSQL: cast back so the totals decode as i64.
        let rows = self.call(move |c| async move {
            c.query(
                "SELECT export, destination, COUNT(*), SUM(byte_count)::int8,
                        SUM(CASE WHEN delivered_at >= $2 THEN byte_count ELSE 0 END)::int8
                 FROM ledger WHERE $1::text IS NULL OR export = $1
                 GROUP BY export, destination ORDER BY export, destination",
                &refs(&params),
            )
            .await
        })?;
        rows.iter()
            .map(|r| {
                Ok(LedgerTotal {
                    export: get(r, 0)?,
                    destination: get(r, 1)?,
                    objects: count_out("objects", Some(get(r, 2)?))?.unwrap_or(0),
                    bytes: count_out("byte_count", get(r, 3)?)?.unwrap_or(0),
                    bytes_since: count_out("byte_count", get(r, 4)?)?.unwrap_or(0),
                })
            })
            .collect()
    }

    fn watermark(&self, export: &str) -> Result<Option<DateTime<Utc>>, Error> {
        let export = export.to_owned();
        let ms: Option<i64> = self.call(move |c| async move {
            c.query_opt(
                "SELECT window_end FROM watermarks WHERE export = $1",
                &[&export],
            )
            .await
            .map(|r| r.map(|r| r.get(0)))
        })?;
        opt_time("window_end", ms)
    }

    fn set_watermark(&self, export: &str, end: DateTime<Utc>) -> Result<DateTime<Utc>, Error> {
        let params: Vec<Param> = vec![export.into(), ms(end).into()];
        let ms: i64 = self.call(move |c| async move {
            c.query_one(
                "INSERT INTO watermarks (export, window_end) VALUES ($1, $2)
                 ON CONFLICT (export) DO UPDATE SET
                   window_end = greatest(watermarks.window_end, excluded.window_end)
                 RETURNING window_end",
                &refs(&params),
            )
            .await
            .map(|r| r.get(0))
        })?;
        time("window_end", ms)
    }

    fn accepted_revision(&self, export: &str) -> Result<Option<Revision>, Error> {
        let export = export.to_owned();
        let row: Option<(String, i64)> = self.call(move |c| async move {
            c.query_opt(
                "SELECT sha256, accepted_at FROM revisions WHERE export = $1",
                &[&export],
            )
            .await
            .map(|r| r.map(|r| (r.get(0), r.get(1))))
        })?;
        row.map(|(sha256, at)| {
            Ok(Revision {
                sha256,
                accepted_at: time("accepted_at", at)?,
            })
        })
        .transpose()
    }

    fn set_accepted_revision(
        &self,
        export: &str,
        sha256: &str,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.set_accepted_revisions(&[(export.to_owned(), sha256.to_owned())], at)
    }

    fn set_accepted_revisions(
        &self,
        revisions: &[(String, String)],
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let rows: Vec<Vec<Param>> = revisions
            .iter()
            .map(|(e, s)| vec![e.as_str().into(), s.as_str().into(), ms(at).into()])
            .collect();
        self.execute_each(SET_REVISION, rows)
    }

    fn last_nominals(&self) -> Result<BTreeMap<String, DateTime<Utc>>, Error> {
        let rows = self.call(|c| async move {
            c.query(
                "SELECT export, max(nominal) FROM runs
                 WHERE triggered_by IN ('schedule', 'catch_up') GROUP BY export",
                &[],
            )
            .await
        })?;
        let mut out = BTreeMap::new();
        for r in &rows {
            out.insert(get::<String>(r, 0)?, time("nominal", get(r, 1)?)?);
        }
        Ok(out)
    }

    fn remove_accepted_revision(&self, export: &str) -> Result<bool, Error> {
        let export = export.to_owned();
        let n = self.call(move |c| async move {
            c.execute("DELETE FROM revisions WHERE export = $1", &[&export])
                .await
        })?;
        Ok(n > 0)
    }

    fn accepted_revisions(&self) -> Result<BTreeMap<String, Revision>, Error> {
        let rows = self.call(|c| async move {
            c.query("SELECT export, sha256, accepted_at FROM revisions", &[])
                .await
        })?;
        let mut out = BTreeMap::new();
        for r in &rows {
            out.insert(
                get::<String>(r, 0)?,
                Revision {
                    sha256: get(r, 1)?,
                    accepted_at: time("accepted_at", get(r, 2)?)?,
                },
            );
        }
        Ok(out)
    }

    fn claim(
        &self,
        key: &str,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Claim, Error> {
        let params: Vec<Param> = vec![
            key.into(),
            owner.into(),
            ms(now).into(),
            ms(lease_until).into(),
        ];
        // One statement: the primary key makes concurrent claims of one key wait for each
        // other, and the WHERE decides who wins.
        let row = self.call(move |c| async move {
            let won = c
                .query_opt(
                    "INSERT INTO claims (claim_key, owner, lease_until) VALUES ($1, $2, $4)
                     ON CONFLICT (claim_key) DO UPDATE SET
                       owner = excluded.owner, lease_until = excluded.lease_until
                     WHERE NOT claims.done
                       AND (claims.owner = excluded.owner OR claims.lease_until < $3)
                     RETURNING owner",
                    &refs(&params),
                )
                .await?;
            if won.is_some() {
                return Ok(None);
            }
            c.query_opt(
                "SELECT owner, lease_until, done FROM claims WHERE claim_key = $1",
                &refs(&params[..1]),
            )
            .await
            .map(|r| {
                r.map(|r| {
                    (
                        r.get::<_, String>(0),
                        r.get::<_, i64>(1),
                        r.get::<_, bool>(2),
                    )
                })
            })
        })?;
        Ok(match row {
            None => Claim::Acquired,
            Some((_, _, true)) => Claim::Done,
            Some((owner, until, false)) => Claim::Held {
                owner,
                lease_until: time("lease_until", until)?,
            },
        })
    }

    fn renew_claim(
        &self,
        key: &str,
        owner: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let params: Vec<Param> = vec![key.into(), owner.into(), ms(lease_until).into()];
        let n = self.call(move |c| async move {
            c.execute(
                "UPDATE claims SET lease_until = $3
                 WHERE claim_key = $1 AND owner = $2 AND NOT done",
                &refs(&params),
            )
            .await
        })?;
        Ok(n > 0)
    }

    fn finish_claim(&self, key: &str, owner: &str) -> Result<(), Error> {
        let params: Vec<Param> = vec![key.into(), owner.into()];
        self.call(move |c| async move {
            c.execute(
                "UPDATE claims SET done = true WHERE claim_key = $1 AND owner = $2",
                &refs(&params),
            )
            .await
        })?;
        Ok(())
    }

    fn release_claim(&self, key: &str, owner: &str) -> Result<(), Error> {
        let params: Vec<Param> = vec![key.into(), owner.into()];
        self.call(move |c| async move {
            c.execute(
                "DELETE FROM claims WHERE claim_key = $1 AND owner = $2 AND NOT done",
                &refs(&params),
            )
            .await
        })?;
        Ok(())
    }

    fn expired_claims(&self, now: DateTime<Utc>) -> Result<Vec<String>, Error> {
        let now = ms(now);
        let rows = self.call(move |c| async move {
            c.query(
                "SELECT claim_key FROM claims WHERE NOT done AND lease_until < $1
                 ORDER BY claim_key",
                &[&now],
            )
            .await
        })?;
        rows.iter().map(|r| get(r, 0)).collect()
    }
}

/// Commits after `work` succeeded, rolls back otherwise.
async fn finish_transaction(c: &Client, work: PgResult<()>) -> PgResult<()> {
    match work {
        Ok(()) => c.batch_execute("COMMIT").await,
        Err(e) => {
            let _ = c.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> PostgresState {
        PostgresState::open(&crate::postgres::test_database(), None).expect("open")
    }

    #[test]
    fn conformance() {
        crate::state::conformance::claims(&open());
        crate::state::conformance::records(&open());
    }

    #[test]
    fn concurrent_claims_have_one_winner() {
        let url = crate::postgres::test_database();
        let stores: Vec<PostgresState> = (0..4)
            .map(|_| PostgresState::open(&url, None).expect("open"))
            .collect();
        let now = Utc::now();
        let until = now + chrono::Duration::seconds(60);
        for round in 0..20 {
            let key = format!("x/{round}");
            let won: usize = std::thread::scope(|scope| {
                let handles: Vec<_> = stores
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        let key = key.clone();
                        scope.spawn(move || s.claim(&key, &format!("r{i}"), now, until).unwrap())
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap())
                    .filter(|c| *c == Claim::Acquired)
                    .count()
            });
            assert_eq!(won, 1, "round {round}");
        }
    }

    #[test]
    fn the_audit_log_refuses_updates_deletes_and_truncation() {
        let store = open();
        store
            .append_audit(&[AuditEntry::new(
                "ops",
                "operations",
                "download",
                "a.csv",
                "ok",
                Utc::now(),
            )])
            .expect("append");
        for statement in [
            "UPDATE audit SET outcome = 'denied'",
            "DELETE FROM audit",
            "TRUNCATE audit",
        ] {
            let refused = store.call(move |c| async move { c.batch_execute(statement).await });
            let message = format!("{:?}", refused.expect_err(statement));
            assert!(message.contains("append-only"), "{statement}: {message}");
        }
        assert_eq!(store.audit_log(&AuditFilter::default()).unwrap().len(), 1);
    }

    #[test]
    fn a_second_open_does_not_migrate_again() {
        let url = crate::postgres::test_database();
        let a = PostgresState::open(&url, None).expect("first");
        a.set_watermark("x", Utc::now()).expect("write");
        let b = PostgresState::open(&url, None).expect("second");
        assert!(b.watermark("x").expect("read").is_some());
    }
}
