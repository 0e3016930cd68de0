//! The embedded SQLite state store (the default, `sqlite://var/state.db`).
//!
//! One connection behind a mutex: state writes are a handful per run, so serialising them costs
//! nothing measurable and keeps every read-modify-write (re-attempts, the forward-only
//! watermark) atomic without retry loops. WAL lets `exportd status` and `exportd plan` read the
//! file from another process while the daemon writes; `busy_timeout` makes them wait for a
//! checkpoint instead of failing.
//!
//! Column names avoid SQL keywords (`trigger`, `rows`, `key`) so the same schema carries over to
//! PostgreSQL unchanged.

use super::{
    AuditEntry, AuditFilter, Claim, Delivery, Error, LedgerTotal, Revision, RunFilter, RunOutcome,
    RunRecord, RunStart, RunState, StateStore,
};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Schema migrations, applied in order, each in its own transaction; `PRAGMA user_version`
/// records how many ran. Never edit a released entry: append a new one, so old state files are
/// upgraded in place.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: the four records.
    r#"
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    export TEXT NOT NULL,
    nominal INTEGER NOT NULL,
    window_start INTEGER,
    window_end INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    triggered_by TEXT NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    row_count INTEGER,
    byte_count INTEGER,
    part_count INTEGER,
    error TEXT,
    revision TEXT NOT NULL
);
CREATE INDEX runs_export_nominal ON runs (export, nominal);
CREATE TABLE ledger (
    destination TEXT NOT NULL,
    object_key TEXT NOT NULL,
    export TEXT NOT NULL,
    run_id TEXT NOT NULL,
    byte_count INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    delivered_at INTEGER NOT NULL,
    PRIMARY KEY (destination, object_key)
);
CREATE TABLE watermarks (
    export TEXT PRIMARY KEY,
    window_end INTEGER NOT NULL
);
CREATE TABLE revisions (
    export TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    accepted_at INTEGER NOT NULL
);
"#,
    // 2: indexes for the status API (runs by state, all runs newest first) and for the ledger
    // lookups by run, and by export in age order (retention).
    r#"
CREATE INDEX runs_state ON runs (state, nominal);
CREATE INDEX runs_nominal ON runs (nominal);
CREATE INDEX ledger_run ON ledger (run_id);
CREATE INDEX ledger_export ON ledger (export, delivered_at);
"#,
    // 3: retention. The expiry and the destination's location are recorded at delivery, so
    // objects of a removed definition still expire on schedule and can still be reached.
    r#"
ALTER TABLE ledger ADD COLUMN expires_at INTEGER;
ALTER TABLE ledger ADD COLUMN location TEXT NOT NULL DEFAULT '';
"#,
    // 4: the audit log, append-only: triggers refuse any UPDATE or DELETE, so not even a bug in
    // exportd can rewrite history.
    r#"
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL
);
CREATE INDEX audit_at ON audit (at);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"#,
    // 5: claims, so a run started by a daemon is taken over only once its lease runs out.
    r#"
CREATE TABLE claims (
    claim_key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    lease_until INTEGER NOT NULL,
    done INTEGER NOT NULL DEFAULT 0
);
"#,
    // 6: storage class transitions. When retention moved an object, so it is moved once.
    r#"
ALTER TABLE ledger ADD COLUMN transitioned_at INTEGER;
"#,
];

/// Columns of `runs` in the order [`read_run`] decodes them.
const RUN_COLUMNS: &str = "id, export, nominal, window_start, window_end, state, attempt, \
     triggered_by, started_at, finished_at, row_count, byte_count, part_count, error, revision";

/// Columns of `ledger` in the order [`read_delivery`] decodes them.
const LEDGER_COLUMNS: &str = "export, run_id, destination, object_key, byte_count, sha256, \
     delivered_at, expires_at, location, transitioned_at";

/// The SQLite state store.
#[derive(Debug)]
pub struct SqliteState {
    conn: Mutex<Connection>,
}

impl SqliteState {
    /// Opens (creating it and its directory if needed) and migrates the state file.
    pub fn open(path: &Path) -> Result<SqliteState, Error> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::Open {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let mut conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL, not NORMAL: the ledger decides what retention may delete, so a committed entry
        // must survive a power cut. Writes are a few per run; the fsync is not noticeable.
        conn.pragma_update(None, "synchronous", "FULL")?;
        migrate(&mut conn, path)?;
        Ok(SqliteState {
            conn: Mutex::new(conn),
        })
    }

    /// The connection. A thread that panicked while holding it cannot have left a transaction
    /// open (rusqlite rolls back on drop), so a poisoned lock is still safe to use.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One run by id, on an already locked connection.
    fn run_in(conn: &Connection, id: &str) -> Result<Option<RunRecord>, Error> {
        let mut stmt =
            conn.prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"))?;
        let mut rows = stmt.query([id])?;
        rows.next()?.map(read_run).transpose()
    }

    /// Runs a statement returning run rows.
    fn runs_where(
        conn: &Connection,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<RunRecord>, Error> {
        let mut stmt = conn.prepare_cached(sql)?;
        let mut rows = stmt.query(params)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(read_run(r)?);
        }
        Ok(out)
    }

    /// Runs a statement returning ledger rows.
    fn deliveries_where(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<Delivery>, Error> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(sql)?;
        let mut rows = stmt.query(params)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(read_delivery(r)?);
        }
        Ok(out)
    }
}

/// Applies the migrations the file has not seen yet.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), Error> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > MIGRATIONS.len() as i64 {
        return Err(Error::TooNew {
            path: PathBuf::from(path),
            found: version,
            supported: MIGRATIONS.len(),
        });
    }
    let done = usize::try_from(version).unwrap_or(0);
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        // `user_version` lives in the file header, which is transactional: a migration and its
        // version number commit together or not at all.
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
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

/// Counts are u64 in the API and INTEGER (i64) in SQL; no run gets near the limit.
fn count_in(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn count_out(column: &str, v: Option<i64>) -> Result<Option<u64>, Error> {
    v.map(|v| u64::try_from(v).map_err(|_| Error::Corrupt(format!("`{column}` = {v} is negative"))))
        .transpose()
}

fn read_run(r: &Row<'_>) -> Result<RunRecord, Error> {
    let state: String = r.get(5)?;
    let trigger: String = r.get(7)?;
    let attempt: i64 = r.get(6)?;
    Ok(RunRecord {
        id: r.get(0)?,
        export: r.get(1)?,
        nominal: time("nominal", r.get(2)?)?,
        window_start: opt_time("window_start", r.get(3)?)?,
        window_end: time("window_end", r.get(4)?)?,
        state: state.parse().map_err(|e| Error::Corrupt(format!("{e}")))?,
        attempt: u32::try_from(attempt)
            .map_err(|_| Error::Corrupt(format!("`attempt` = {attempt} is out of range")))?,
        trigger: trigger
            .parse()
            .map_err(|e| Error::Corrupt(format!("{e}")))?,
        started_at: opt_time("started_at", r.get(8)?)?,
        finished_at: opt_time("finished_at", r.get(9)?)?,
        rows: count_out("row_count", r.get(10)?)?,
        bytes: count_out("byte_count", r.get(11)?)?,
        parts: count_out("part_count", r.get(12)?)?,
        error: r.get(13)?,
        revision: r.get(14)?,
    })
}

fn read_delivery(r: &Row<'_>) -> Result<Delivery, Error> {
    Ok(Delivery {
        export: r.get(0)?,
        run_id: r.get(1)?,
        destination: r.get(2)?,
        key: r.get(3)?,
        bytes: count_out("byte_count", r.get(4)?)?.unwrap_or(0),
        sha256: r.get(5)?,
        delivered_at: time("delivered_at", r.get(6)?)?,
        expires_at: r
            .get::<_, Option<i64>>(7)?
            .map(|t| time("expires_at", t))
            .transpose()?,
        location: r.get(8)?,
        transitioned_at: r
            .get::<_, Option<i64>>(9)?
            .map(|t| time("transitioned_at", t))
            .transpose()?,
    })
}

impl StateStore for SqliteState {
    fn record_start(&self, start: &RunStart) -> Result<RunRecord, Error> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "INSERT INTO runs (id, export, nominal, window_start, window_end, state, attempt,
                               triggered_by, started_at, revision)
             VALUES (?1, ?2, ?3, ?4, ?5, 'running', 1, ?6, ?7, ?8)
             ON CONFLICT (id) DO UPDATE SET
               window_start = excluded.window_start,
               window_end = excluded.window_end,
               state = 'running',
               attempt = attempt + 1,
               triggered_by = excluded.triggered_by,
               started_at = excluded.started_at,
               finished_at = NULL,
               row_count = NULL,
               byte_count = NULL,
               part_count = NULL,
               error = NULL,
               revision = excluded.revision
             RETURNING {RUN_COLUMNS}"
        ))?;
        let mut rows = stmt.query(params![
            start.id(),
            start.export,
            ms(start.nominal),
            start.window_start.map(ms),
            ms(start.window_end),
            start.trigger.as_str(),
            ms(start.started_at),
            start.revision,
        ])?;
        match rows.next()? {
            Some(r) => read_run(r),
            None => Err(Error::UnknownRun(start.id())),
        }
    }

    fn record_finish(
        &self,
        id: &str,
        outcome: &RunOutcome,
        finished_at: DateTime<Utc>,
    ) -> Result<RunRecord, Error> {
        let conn = self.conn();
        let changed = match outcome {
            RunOutcome::Completed { rows, bytes, parts } => conn.execute(
                "UPDATE runs SET state = 'completed', finished_at = ?2, row_count = ?3,
                   byte_count = ?4, part_count = ?5, error = NULL
                 WHERE id = ?1",
                params![
                    id,
                    ms(finished_at),
                    count_in(*rows),
                    count_in(*bytes),
                    count_in(*parts)
                ],
            )?,
            RunOutcome::Failed { error } => conn.execute(
                "UPDATE runs SET state = 'failed', finished_at = ?2, row_count = NULL,
                   byte_count = NULL, part_count = NULL, error = ?3
                 WHERE id = ?1",
                params![id, ms(finished_at), error],
            )?,
        };
        if changed == 0 {
            return Err(Error::UnknownRun(id.to_owned()));
        }
        Self::run_in(&conn, id)?.ok_or_else(|| Error::UnknownRun(id.to_owned()))
    }

    fn mark_interrupted(&self, id: &str, at: DateTime<Utc>) -> Result<RunRecord, Error> {
        let conn = self.conn();
        conn.execute(
            "UPDATE runs SET state = 'interrupted', finished_at = ?2,
               error = 'interrupted by shutdown before it finished; retried on the next start'
             WHERE id = ?1 AND state = 'running'",
            params![id, ms(at)],
        )?;
        Self::run_in(&conn, id)?.ok_or_else(|| Error::UnknownRun(id.to_owned()))
    }

    fn mark_expired(&self, id: &str) -> Result<RunRecord, Error> {
        let conn = self.conn();
        conn.execute(
            "UPDATE runs SET state = 'expired' WHERE id = ?1 AND state = 'completed'",
            [id],
        )?;
        Self::run_in(&conn, id)?.ok_or_else(|| Error::UnknownRun(id.to_owned()))
    }

    fn running_runs(&self) -> Result<Vec<RunRecord>, Error> {
        Self::runs_where(
            &self.conn(),
            &format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE state = 'running' ORDER BY nominal, export"
            ),
            [],
        )
    }

    fn get_run(&self, id: &str) -> Result<Option<RunRecord>, Error> {
        Self::run_in(&self.conn(), id)
    }

    fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, Error> {
        // NULL parameters switch a condition off, so one cached statement serves every filter.
        let limit = filter
            .limit
            .map(|l| i64::try_from(l).unwrap_or(i64::MAX))
            .unwrap_or(-1);
        Self::runs_where(
            &self.conn(),
            &format!(
                "SELECT {RUN_COLUMNS} FROM runs
                 WHERE (?1 IS NULL OR export = ?1) AND (?2 IS NULL OR state = ?2)
                 ORDER BY nominal DESC, export
                 LIMIT ?3"
            ),
            params![
                filter.export.as_deref(),
                filter.state.map(RunState::as_str),
                limit
            ],
        )
    }

    fn last_nominal(&self, export: &str) -> Result<Option<DateTime<Utc>>, Error> {
        let ms: Option<i64> = self.conn().query_row(
            "SELECT max(nominal) FROM runs
             WHERE export = ?1 AND triggered_by IN ('schedule', 'catch_up')",
            [export],
            |r| r.get(0),
        )?;
        opt_time("nominal", ms)
    }

    fn last_completed(&self, export: &str) -> Result<Option<RunRecord>, Error> {
        Ok(Self::runs_where(
            &self.conn(),
            &format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE export = ?1 AND state = 'completed'
                 ORDER BY finished_at DESC, nominal DESC LIMIT 1"
            ),
            [export],
        )?
        .pop())
    }

    fn record_deliveries(&self, deliveries: &[Delivery]) -> Result<(), Error> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO ledger
                   (destination, object_key, export, run_id, byte_count, sha256, delivered_at,
                    expires_at, location, transitioned_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (destination, object_key) DO UPDATE SET
                   export = excluded.export,
                   run_id = excluded.run_id,
                   byte_count = excluded.byte_count,
                   sha256 = excluded.sha256,
                   delivered_at = excluded.delivered_at,
                   expires_at = excluded.expires_at,
                   location = excluded.location,
                   transitioned_at = excluded.transitioned_at",
            )?;
            for d in deliveries {
                stmt.execute(params![
                    d.destination,
                    d.key,
                    d.export,
                    d.run_id,
                    count_in(d.bytes),
                    d.sha256,
                    ms(d.delivered_at),
                    d.expires_at.map(ms),
                    d.location,
                    d.transitioned_at.map(ms),
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn deliveries_for_run(&self, run_id: &str) -> Result<Vec<Delivery>, Error> {
        self.deliveries_where(
            &format!(
                "SELECT {LEDGER_COLUMNS} FROM ledger WHERE run_id = ?1
                 ORDER BY destination, object_key"
            ),
            [run_id],
        )
    }

    fn deliveries_for_export(&self, export: &str) -> Result<Vec<Delivery>, Error> {
        self.deliveries_where(
            &format!(
                "SELECT {LEDGER_COLUMNS} FROM ledger WHERE export = ?1
                 ORDER BY delivered_at, destination, object_key"
            ),
            [export],
        )
    }

    fn remove_delivery(&self, destination: &str, key: &str) -> Result<bool, Error> {
        let n = self.conn().execute(
            "DELETE FROM ledger WHERE destination = ?1 AND object_key = ?2",
            [destination, key],
        )?;
        Ok(n > 0)
    }

    fn mark_transitioned(
        &self,
        destination: &str,
        key: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let n = self.conn().execute(
            "UPDATE ledger SET transitioned_at = ?3 WHERE destination = ?1 AND object_key = ?2",
            params![destination, key, ms(at)],
        )?;
        Ok(n > 0)
    }

    fn append_audit(&self, entries: &[AuditEntry]) -> Result<(), Error> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO audit (at, actor, role, action, target, outcome)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for e in entries {
                stmt.execute(params![
                    ms(e.at),
                    e.actor,
                    e.role,
                    e.action,
                    e.target,
                    e.outcome
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn audit_log(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, Error> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, at, actor, role, action, target, outcome FROM audit
             WHERE (?1 IS NULL OR actor = ?1) AND (?2 IS NULL OR action = ?2)
               AND (?3 IS NULL OR at >= ?3)
             ORDER BY id DESC LIMIT ?4",
        )?;
        let limit = filter.limit.map_or(-1, |l| l.min(i64::MAX as usize) as i64);
        let mut rows = stmt.query(params![
            filter.actor,
            filter.action,
            filter.since.map(ms),
            limit
        ])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(AuditEntry {
                id: count_out("id", Some(r.get(0)?))?.unwrap_or(0),
                at: time("at", r.get(1)?)?,
                actor: r.get(2)?,
                role: r.get(3)?,
                action: r.get(4)?,
                target: r.get(5)?,
                outcome: r.get(6)?,
            });
        }
        Ok(out)
    }

    fn ledger_exports(&self) -> Result<Vec<String>, Error> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT DISTINCT export FROM ledger ORDER BY export")?;
        let names = stmt.query_map([], |r| r.get(0))?;
        Ok(names.collect::<Result<_, _>>()?)
    }

    fn ledger_totals(
        &self,
        export: Option<&str>,
        since: DateTime<Utc>,
    ) -> Result<Vec<LedgerTotal>, Error> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT export, destination, COUNT(*), SUM(byte_count),
                    SUM(CASE WHEN delivered_at >= ?2 THEN byte_count ELSE 0 END)
             FROM ledger WHERE ?1 IS NULL OR export = ?1
             GROUP BY export, destination ORDER BY export, destination",
        )?;
        let mut rows = stmt.query(params![export, ms(since)])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(LedgerTotal {
                export: r.get(0)?,
                destination: r.get(1)?,
                objects: count_out("objects", Some(r.get(2)?))?.unwrap_or(0),
                bytes: count_out("byte_count", r.get(3)?)?.unwrap_or(0),
                bytes_since: count_out("byte_count", r.get(4)?)?.unwrap_or(0),
            });
        }
        Ok(out)
    }

    fn watermark(&self, export: &str) -> Result<Option<DateTime<Utc>>, Error> {
        let ms: Option<i64> = self
            .conn()
            .query_row(
                "SELECT window_end FROM watermarks WHERE export = ?1",
                [export],
                |r| r.get(0),
            )
            .optional()?;
        opt_time("window_end", ms)
    }

    fn set_watermark(&self, export: &str, end: DateTime<Utc>) -> Result<DateTime<Utc>, Error> {
        let ms: i64 = self.conn().query_row(
            "INSERT INTO watermarks (export, window_end) VALUES (?1, ?2)
             ON CONFLICT (export) DO UPDATE SET
               window_end = max(window_end, excluded.window_end)
             RETURNING window_end",
            params![export, ms(end)],
            |r| r.get(0),
        )?;
        time("window_end", ms)
    }

    fn accepted_revision(&self, export: &str) -> Result<Option<Revision>, Error> {
        let row: Option<(String, i64)> = self
            .conn()
            .query_row(
                "SELECT sha256, accepted_at FROM revisions WHERE export = ?1",
                [export],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
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
        self.conn().execute(
            "INSERT INTO revisions (export, sha256, accepted_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (export) DO UPDATE SET
               sha256 = excluded.sha256,
               accepted_at = excluded.accepted_at
             WHERE revisions.sha256 <> excluded.sha256",
            params![export, sha256, ms(at)],
        )?;
        Ok(())
    }

    fn set_accepted_revisions(
        &self,
        revisions: &[(String, String)],
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO revisions (export, sha256, accepted_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (export) DO UPDATE SET
                   sha256 = excluded.sha256,
                   accepted_at = excluded.accepted_at
                 WHERE revisions.sha256 <> excluded.sha256",
            )?;
            for (export, sha256) in revisions {
                stmt.execute(params![export, sha256, ms(at)])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn last_nominals(&self) -> Result<BTreeMap<String, DateTime<Utc>>, Error> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT export, max(nominal) FROM runs
             WHERE triggered_by IN ('schedule', 'catch_up') GROUP BY export",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (export, nominal) = row?;
            if let Some(t) = opt_time("nominal", Some(nominal))? {
                out.insert(export, t);
            }
        }
        Ok(out)
    }

    fn remove_accepted_revision(&self, export: &str) -> Result<bool, Error> {
        let n = self
            .conn()
            .execute("DELETE FROM revisions WHERE export = ?1", [export])?;
        Ok(n > 0)
    }

    fn accepted_revisions(&self) -> Result<BTreeMap<String, Revision>, Error> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT export, sha256, accepted_at FROM revisions")?;
        let mut rows = stmt.query([])?;
        let mut out = BTreeMap::new();
        while let Some(r) = rows.next()? {
            out.insert(
                r.get(0)?,
                Revision {
                    sha256: r.get(1)?,
                    accepted_at: time("accepted_at", r.get(2)?)?,
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
        let conn = self.conn();
        let acquired = conn
            .query_row(
                "INSERT INTO claims (claim_key, owner, lease_until) VALUES (?1, ?2, ?4)
                 ON CONFLICT (claim_key) DO UPDATE SET
                   owner = excluded.owner, lease_until = excluded.lease_until
                 WHERE NOT claims.done AND (claims.owner = excluded.owner OR claims.lease_until < ?3)
                 RETURNING owner",
                params![key, owner, ms(now), ms(lease_until)],
                |_| Ok(()),
            )
            .optional()?;
        if acquired.is_some() {
            return Ok(Claim::Acquired);
        }
        let (holder, until, done): (String, i64, bool) = conn.query_row(
            "SELECT owner, lease_until, done FROM claims WHERE claim_key = ?1",
            [key],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        Ok(if done {
            Claim::Done
        } else {
            Claim::Held {
                owner: holder,
                lease_until: time("lease_until", until)?,
            }
        })
    }

    fn renew_claim(
        &self,
        key: &str,
        owner: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let n = self.conn().execute(
            "UPDATE claims SET lease_until = ?3 WHERE claim_key = ?1 AND owner = ?2 AND NOT done",
            params![key, owner, ms(lease_until)],
        )?;
        Ok(n > 0)
    }

    fn finish_claim(&self, key: &str, owner: &str) -> Result<(), Error> {
        self.conn().execute(
            "UPDATE claims SET done = 1 WHERE claim_key = ?1 AND owner = ?2",
            [key, owner],
        )?;
        Ok(())
    }

    fn release_claim(&self, key: &str, owner: &str) -> Result<(), Error> {
        self.conn().execute(
            "DELETE FROM claims WHERE claim_key = ?1 AND owner = ?2 AND NOT done",
            [key, owner],
        )?;
        Ok(())
    }

    fn expired_claims(&self, now: DateTime<Utc>) -> Result<Vec<String>, Error> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT claim_key FROM claims WHERE NOT done AND lease_until < ?1 ORDER BY claim_key",
        )?;
        let keys = stmt.query_map([ms(now)], |r| r.get::<_, String>(0))?;
        Ok(keys.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Trigger, destination_id, run_id};
    use chrono::TimeZone;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, 15, h, m, 0).unwrap()
    }

    fn open(dir: &tempfile::TempDir) -> SqliteState {
        SqliteState::open(&dir.path().join("var/state.db")).unwrap()
    }

    fn start(export: &str, nominal: DateTime<Utc>, trigger: Trigger) -> RunStart {
        RunStart {
            export: export.into(),
            nominal,
            window_start: Some(nominal - chrono::Duration::hours(1)),
            window_end: nominal,
            trigger,
            revision: "abc123".into(),
            started_at: nominal + chrono::Duration::seconds(1),
        }
    }

    fn delivery(run: &str, dest: &str, key: &str, sha: &str, at: DateTime<Utc>) -> Delivery {
        Delivery {
            export: "daily".into(),
            run_id: run.into(),
            destination: dest.into(),
            key: key.into(),
            bytes: 10,
            sha256: sha.into(),
            delivered_at: at,
            expires_at: None,
            location: String::new(),
            transitioned_at: None,
        }
    }

    #[test]
    fn start_then_finish_completed() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(&dir);
        let run = s
            .record_start(&start("daily", t(2, 0), Trigger::Schedule))
            .unwrap();
        assert_eq!(run.id, "daily/20240115T020000Z");
        assert_eq!(run.id, run_id("daily", t(2, 0)));
        assert_eq!(run.state, RunState::Running);
        assert_eq!(run.attempt, 1);
        assert_eq!(run.window_start, Some(t(1, 0)));
        assert_eq!(run.started_at, Some(t(2, 0) + chrono::Duration::seconds(1)));
        let done = s
            .record_finish(
                &run.id,
                &RunOutcome::Completed {
                    rows: 42,
                    bytes: 1000,
                    parts: 2,
                },
                t(2, 5),
            )
            .unwrap();
        assert_eq!(done.state, RunState::Completed);
        assert_eq!(
            (done.rows, done.bytes, done.parts),
            (Some(42), Some(1000), Some(2))
        );
        assert_eq!(done.finished_at, Some(t(2, 5)));
        assert_eq!(s.get_run(&run.id).unwrap(), Some(done.clone()));
        assert_eq!(s.last_completed("daily").unwrap(), Some(done));
        assert!(s.running_runs().unwrap().is_empty());
        let json = serde_json::to_value(s.get_run(&run.id).unwrap()).unwrap();
        assert_eq!(json["state"], "completed");
        assert_eq!(json["trigger"], "schedule");
    }

    #[test]
    fn reattempt_increments_attempt_and_keeps_one_row() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(&dir);
        let first = s
            .record_start(&start("daily", t(2, 0), Trigger::Schedule))
            .unwrap();
        s.record_finish(
            &first.id,
            &RunOutcome::Failed {
                error: "boom".into(),
            },
            t(2, 1),
        )
        .unwrap();
        let mut again = start("daily", t(2, 0), Trigger::Manual);
        again.revision = "def456".into();
        let second = s.record_start(&again).unwrap();
        assert_eq!(second.id, first.id);
        assert_eq!(second.attempt, 2);
        assert_eq!(second.state, RunState::Running);
        assert_eq!(second.trigger, Trigger::Manual);
        assert_eq!(second.revision, "def456");
        assert_eq!(
            second.error, None,
            "the previous attempt's error is cleared"
        );
        assert_eq!(second.finished_at, None);
        assert_eq!(s.record_start(&again).unwrap().attempt, 3);
        assert_eq!(s.list_runs(&RunFilter::default()).unwrap().len(), 1);
    }

    #[test]
    fn failed_run_keeps_error() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(&dir);
        let run = s
            .record_start(&start("daily", t(2, 0), Trigger::Schedule))
            .unwrap();
        let failed = s
            .record_finish(
                &run.id,
                &RunOutcome::Failed {
                    error: "delivery to `local` failed: disk full".into(),
                },
                t(2, 3),
            )
            .unwrap();
        assert_eq!(failed.state, RunState::Failed);
        assert_eq!(
            failed.error.as_deref(),
            Some("delivery to `local` failed: disk full")
        );
        assert_eq!(failed.rows, None);
        assert_eq!(s.last_completed("daily").unwrap(), None);
        // A failure is not a missed run: catch-up starts after it.
        assert_eq!(s.last_nominal("daily").unwrap(), Some(t(2, 0)));
    }

    #[test]
    fn finishing_an_unknown_run_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(&dir);
        let err = s
            .record_finish(
                "daily/20240115T020000Z",
                &RunOutcome::Failed { error: "x".into() },
                t(2, 0),
            )
            .unwrap_err();
        assert!(matches!(err, Error::UnknownRun(_)), "{err}");
        assert!(matches!(
            s.mark_interrupted("nope", t(2, 0)),
            Err(Error::UnknownRun(_))
        ));
    }

    #[test]
    fn running_runs_survive_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = open(&dir);
            s.record_start(&start("daily", t(2, 0), Trigger::Schedule))
                .unwrap();
            s.record_start(&start("hourly", t(1, 0), Trigger::Schedule))
                .unwrap();
            let done = s
                .record_start(&start("hourly", t(0, 0), Trigger::Schedule))
                .unwrap();
            s.record_finish(
                &done.id,
                &RunOutcome::Completed {
                    rows: 1,
                    bytes: 1,
                    parts: 1,
                },
                t(0, 1),
            )
            .unwrap();
            // Dropped without finishing: the process "crashed".
        }
        let s = open(&dir);
        let running: Vec<String> = s
            .running_runs()
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(
            running,
            ["hourly/20240115T010000Z", "daily/20240115T020000Z"],
            "oldest nominal first"
        );
        // The retry after start-up is the next attempt of the same run.
        let retry = s
            .record_start(&start("daily", t(2, 0), Trigger::Schedule))
            .unwrap();
        assert_eq!(retry.attempt, 2);
    }

    #[test]
    fn interrupted_only_from_running() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(&dir);
        let a = s
            .record_start(&start("a", t(2, 0), Trigger::Schedule))
            .unwrap();
        let b = s
            .record_start(&start("b", t(2, 0), Trigger::Schedule))
            .unwrap();
        s.record_finish(
            &b.id,
            &RunOutcome::Completed {
                rows: 0,
                bytes: 0,
                parts: 0,
            },
            t(2, 1),
        )
        .unwrap();
        let a = s.mark_interrupted(&a.id, t(2, 2)).unwrap();
        assert_eq!(a.state, RunState::Interrupted);
        assert_eq!(a.finished_at, Some(t(2, 2)));
        let b = s.mark_interrupted(&b.id, t(2, 2)).unwrap();
        assert_eq!(
            b.state,
            RunState::Completed,
            "a real outcome is never hidden"
        );
        assert_eq!(s.mark_expired(&b.id).unwrap().state, RunState::Expired);
        assert_eq!(s.mark_expired(&a.id).unwrap().state, RunState::Interrupted);
    }

    #[test]
    fn ledger_is_idempotent_per_destination_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(&dir);
        let run = run_id("daily", t(2, 0));
        let dest = destination_id("local", 0);
        assert_eq!(dest, "local#0");
        s.record_deliveries(&[
            delivery(&run, &dest, "out/part-0.csv", "aa", t(2, 1)),
            delivery(&run, &dest, "out/_manifest.json", "bb", t(2, 1)),
            delivery(&run, "local#1", "out/part-0.csv", "aa", t(2, 1)),
        ])
        .unwrap();
        // The re-run delivers the same key again: the row is replaced, not duplicated.
        s.record_delivery(&delivery(&run, &dest, "out/part-0.csv", "cc", t(3, 0)))
            .unwrap();
        let rows = s.deliveries_for_run(&run).unwrap();
        assert_eq!(rows.len(), 3);
        let part = rows
            .iter()
            .find(|d| d.destination == "local#0" && d.key == "out/part-0.csv")
            .unwrap();
        assert_eq!((part.sha256.as_str(), part.delivered_at), ("cc", t(3, 0)));
        let by_export = s.deliveries_for_export("daily").unwrap();
        assert_eq!(by_export.len(), 3);
        assert_eq!(
            by_export.last().unwrap().delivered_at,
            t(3, 0),
            "oldest first"
        );
        assert!(s.remove_delivery("local#0", "out/part-0.csv").unwrap());
        assert!(!s.remove_delivery("local#0", "out/part-0.csv").unwrap());
        assert_eq!(s.deliveries_for_run(&run).unwrap().len(), 2);
        assert!(s.deliveries_for_export("other").unwrap().is_empty());
    }

    #[test]
    fn watermark_only_moves_forward() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(&dir);
        assert_eq!(s.watermark("daily").unwrap(), None);
        assert_eq!(s.set_watermark("daily", t(2, 0)).unwrap(), t(2, 0));
        assert_eq!(s.set_watermark("daily", t(1, 0)).unwrap(), t(2, 0));
        assert_eq!(s.watermark("daily").unwrap(), Some(t(2, 0)));
        assert_eq!(s.set_watermark("daily", t(3, 0)).unwrap(), t(3, 0));
        assert_eq!(s.watermark("daily").unwrap(), Some(t(3, 0)));
        assert_eq!(s.watermark("other").unwrap(), None);
    }

    #[test]
    fn accepted_revisions() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(&dir);
        assert_eq!(s.accepted_revision("daily").unwrap(), None);
        s.set_accepted_revision("daily", "aa", t(1, 0)).unwrap();
        s.set_accepted_revision("daily", "aa", t(2, 0)).unwrap();
        let rev = s.accepted_revision("daily").unwrap().unwrap();
        assert_eq!(
            rev.accepted_at,
            t(1, 0),
            "same revision keeps its first acceptance"
        );
        s.set_accepted_revision("daily", "bb", t(3, 0)).unwrap();
        s.set_accepted_revision("hourly", "cc", t(3, 0)).unwrap();
        let all = s.accepted_revisions().unwrap();
        assert_eq!(all.keys().collect::<Vec<_>>(), ["daily", "hourly"]);
        assert_eq!(all["daily"].sha256, "bb");
        assert_eq!(all["daily"].accepted_at, t(3, 0));
        assert!(s.remove_accepted_revision("hourly").unwrap());
        assert!(!s.remove_accepted_revision("hourly").unwrap());
        assert_eq!(s.accepted_revisions().unwrap().len(), 1);
    }

    #[test]
    fn list_orders_newest_first_and_filters() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(&dir);
        for (export, h) in [("a", 1), ("b", 2), ("a", 3), ("b", 1), ("a", 2)] {
            s.record_start(&start(export, t(h, 0), Trigger::Schedule))
                .unwrap();
        }
        s.record_finish(
            &run_id("a", t(2, 0)),
            &RunOutcome::Failed { error: "x".into() },
            t(2, 1),
        )
        .unwrap();
        let ids = |f: RunFilter| -> Vec<String> {
            s.list_runs(&f).unwrap().into_iter().map(|r| r.id).collect()
        };
        assert_eq!(
            ids(RunFilter::default()),
            [
                "a/20240115T030000Z",
                "a/20240115T020000Z",
                "b/20240115T020000Z",
                "a/20240115T010000Z",
                "b/20240115T010000Z",
            ]
        );
        assert_eq!(
            ids(RunFilter {
                export: Some("a".into()),
                limit: Some(2),
                ..RunFilter::default()
            }),
            ["a/20240115T030000Z", "a/20240115T020000Z"]
        );
        assert_eq!(
            ids(RunFilter {
                state: Some(RunState::Failed),
                ..RunFilter::default()
            }),
            ["a/20240115T020000Z"]
        );
        assert_eq!(
            ids(RunFilter {
                export: Some("b".into()),
                state: Some(RunState::Running),
                limit: Some(10),
            }),
            ["b/20240115T020000Z", "b/20240115T010000Z"]
        );
        assert!(
            ids(RunFilter {
                limit: Some(0),
                ..RunFilter::default()
            })
            .is_empty()
        );
    }

    #[test]
    fn last_nominal_counts_only_scheduler_runs() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(&dir);
        assert_eq!(s.last_nominal("daily").unwrap(), None);
        s.record_start(&start("daily", t(1, 0), Trigger::Schedule))
            .unwrap();
        s.record_start(&start("daily", t(2, 0), Trigger::CatchUp))
            .unwrap();
        s.record_start(&start("daily", t(5, 0), Trigger::Manual))
            .unwrap();
        s.record_start(&start("daily", t(6, 0), Trigger::Api))
            .unwrap();
        s.record_start(&start("daily", t(0, 0), Trigger::Backfill))
            .unwrap();
        assert_eq!(s.last_nominal("daily").unwrap(), Some(t(2, 0)));
        assert_eq!(s.last_nominal("other").unwrap(), None);
        let all = s.last_nominals().unwrap();
        assert_eq!(all.get("daily"), Some(&t(2, 0)));
        assert_eq!(all.len(), 1);
    }

    #[test]
    fn last_completed_is_latest_finished() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(&dir);
        let done = RunOutcome::Completed {
            rows: 1,
            bytes: 1,
            parts: 1,
        };
        let new = s
            .record_start(&start("daily", t(3, 0), Trigger::Schedule))
            .unwrap();
        s.record_finish(&new.id, &done, t(3, 1)).unwrap();
        // A backfill of an older window that finishes later is the latest success.
        let old = s
            .record_start(&start("daily", t(1, 0), Trigger::Backfill))
            .unwrap();
        s.record_finish(&old.id, &done, t(4, 0)).unwrap();
        assert_eq!(s.last_completed("daily").unwrap().unwrap().id, old.id);
    }

    #[test]
    fn conformance() {
        let dir = tempfile::tempdir().unwrap();
        crate::state::conformance::claims(&open(&dir));
        let dir = tempfile::tempdir().unwrap();
        crate::state::conformance::records(&open(&dir));
    }

    #[test]
    fn shared_between_threads() {
        let dir = tempfile::tempdir().unwrap();
        let s: std::sync::Arc<dyn StateStore> = std::sync::Arc::new(open(&dir));
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for m in 0..25 {
                        let run = s
                            .record_start(&start(&format!("e{i}"), t(1, m), Trigger::Schedule))
                            .unwrap();
                        s.record_finish(
                            &run.id,
                            &RunOutcome::Completed {
                                rows: 1,
                                bytes: 1,
                                parts: 1,
                            },
                            t(2, m),
                        )
                        .unwrap();
                        s.set_watermark(&format!("e{i}"), t(1, m)).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let all = s
            .list_runs(&RunFilter {
                state: Some(RunState::Completed),
                ..RunFilter::default()
            })
            .unwrap();
        assert_eq!(all.len(), 100);
        assert_eq!(s.watermark("e3").unwrap(), Some(t(1, 24)));
    }

    #[test]
    fn old_file_is_upgraded_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            // A state file as the first release wrote it: only migration 1.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute(
                "INSERT INTO runs (id, export, nominal, window_start, window_end, state, attempt,
                                   triggered_by, started_at, revision)
                 VALUES ('daily/20240115T020000Z', 'daily', ?1, NULL, ?1, 'completed', 1,
                         'schedule', ?1, 'abc')",
                [ms(t(2, 0))],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO watermarks (export, window_end) VALUES ('daily', ?1)",
                [ms(t(2, 0))],
            )
            .unwrap();
        }
        let s = SqliteState::open(&path).unwrap();
        {
            let conn = s.conn();
            let version: i64 = conn
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .unwrap();
            assert_eq!(version, MIGRATIONS.len() as i64);
            let indexes: i64 = conn
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'index'
                     AND name IN ('runs_state', 'runs_nominal', 'ledger_run', 'ledger_export')",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(indexes, 4);
        }
        let run = s.get_run("daily/20240115T020000Z").unwrap().unwrap();
        assert_eq!(run.state, RunState::Completed);
        assert_eq!(run.nominal, t(2, 0));
        assert_eq!(s.watermark("daily").unwrap(), Some(t(2, 0)));
        drop(s);
        // Opening again is a no-op.
        SqliteState::open(&path).unwrap();
    }

    #[test]
    fn newer_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "user_version", 99).unwrap();
        }
        let err = SqliteState::open(&path).unwrap_err();
        assert!(matches!(err, Error::TooNew { found: 99, .. }), "{err}");
        assert!(err.to_string().contains("upgrade exportd"));
    }

    #[test]
    fn open_resolves_urls() {
        let dir = tempfile::tempdir().unwrap();
        let s = crate::state::open("sqlite://var/state.db", None, dir.path()).unwrap();
        s.set_watermark("x", t(1, 0)).unwrap();
        assert!(dir.path().join("var/state.db").exists());
        let abs = dir.path().join("abs.db");
        crate::state::open(
            &format!("sqlite://{}", abs.display()),
            None,
            Path::new("/nowhere"),
        )
        .unwrap();
        assert!(abs.exists());
        let err = crate::state::open("mysql://db/state", None, dir.path())
            .err()
            .unwrap();
        assert!(matches!(err, Error::UnsupportedUrl(_)), "{err}");
    }

    #[test]
    fn state_and_trigger_names_round_trip() {
        for s in RunState::ALL {
            assert_eq!(s.as_str().parse::<RunState>().unwrap(), s);
        }
        for tr in Trigger::ALL {
            assert_eq!(tr.as_str().parse::<Trigger>().unwrap(), tr);
        }
        assert!("done".parse::<RunState>().is_err());
        assert!("cron".parse::<Trigger>().is_err());
    }

    #[test]
    fn the_audit_log_is_append_only_and_filtered_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteState::open(&dir.path().join("state.db")).unwrap();
        let at = |m: i64| DateTime::from_timestamp(1_700_000_000 + m * 60, 0).unwrap();
        store
            .append_audit(&[
                AuditEntry::new("ops", "operations", "api", "GET /v1/exports", "200", at(0)),
                AuditEntry::new("daemon", "", "reload", "exports.d", "ok", at(1)),
                AuditEntry::new("ops", "operations", "api", "GET /v1/audit", "403", at(2)),
            ])
            .unwrap();
        let all = store.audit_log(&AuditFilter::default()).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].target, "GET /v1/audit", "newest first");
        let ops = store
            .audit_log(&AuditFilter {
                actor: Some("ops".into()),
                limit: Some(1),
                ..AuditFilter::default()
            })
            .unwrap();
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0].outcome, "403");
        let conn = store.conn();
        let refused = conn.execute("UPDATE audit SET outcome = '200'", []);
        assert!(refused.unwrap_err().to_string().contains("append-only"));
        assert!(conn.execute("DELETE FROM audit", []).is_err());
    }
}
