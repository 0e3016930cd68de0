//! What the PostgreSQL lead store and state store share: connecting (URL, password kept out of
//! the URL, TLS), the runtime that drives the connection, binding [`Value`]s as parameters and
//! versioned migrations.
//!
//! The store traits are synchronous and are called from blocking threads AND from async code
//! (the daemon's event loop, the HTTP API). A future cannot be driven with `block_on` from
//! inside a runtime, so each connection gets a one-thread runtime of its own: the connection
//! task and every query run there, and the synchronous caller waits for the result. Waiting
//! blocks only the caller's thread, exactly like a SQLite call does.

use crate::config::secret::Secret;
use crate::value::Value;
use bytes::BytesMut;
use rust_decimal::Decimal;
use std::future::Future;
use std::sync::Arc;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, Config};

/// Errors of a PostgreSQL connection.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL does not parse as a PostgreSQL connection string.
    #[error(
        "invalid PostgreSQL url `{url}`: {message}; write it like `postgres://USER@HOST:5432/DB` and put the password in `password = {{ env = \"NAME\" }}`"
    )]
    Url {
        /// The URL with any password removed.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// The server could not be reached or refused the login.
    #[error(
        "cannot connect to PostgreSQL `{url}`: {}; check that the server runs, the url and the password", describe(.source)
    )]
    Connect {
        /// The URL with any password removed.
        url: String,
        /// What the driver said.
        source: tokio_postgres::Error,
    },
    /// A statement failed.
    #[error("PostgreSQL: {}", describe(.0))]
    Query(#[from] tokio_postgres::Error),
    /// The runtime that drives the connection could not start.
    #[error("cannot start the PostgreSQL runtime: {0}")]
    Runtime(std::io::Error),
    /// The database was migrated by a newer exportd.
    #[error(
        "PostgreSQL database `{url}` has `{table}` schema version {found}, but this exportd knows only up to {supported}: upgrade exportd"
    )]
    TooNew {
        /// The URL with any password removed.
        url: String,
        /// Which schema (`leads` or `state`).
        table: &'static str,
        /// Version in the database.
        found: i64,
        /// Newest version this build knows.
        supported: usize,
    },
}

/// The driver's error with the server's message: tokio-postgres prints only "db error" and
/// keeps the message (and where it points) in the source.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_owned(),
        },
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

/// How long connecting, or unacknowledged data on an open connection, may take before the
/// connection counts as broken (unless the URL sets `connect_timeout` / `tcp_user_timeout`).
const NETWORK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether a store URL names PostgreSQL.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The URL as it may appear in messages and logs: without a password.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}@{host}")
        }
        None => url.to_owned(),
    }
}

/// One connection and the runtime that drives it.
pub struct Connection {
    /// Always `Some` until dropped (see `Drop`).
    runtime: Option<tokio::runtime::Runtime>,
    client: Arc<Client>,
    config: Config,
    url: String,
}

impl Connection {
    /// Connects to `url`; `password` (from `password = { … }`) overrides one in the URL.
    /// TLS is negotiated as the URL's `sslmode` says (`prefer` by default), with the
    /// platform's certificate verifier.
    pub fn open(url: &str, password: Option<&Secret>) -> Result<Connection, Error> {
        let redacted = redact(url);
        let mut config: Config = url.parse().map_err(|e: tokio_postgres::Error| Error::Url {
            url: redacted.clone(),
            message: e.to_string(),
        })?;
        if let Some(password) = password {
            config.password(password.expose().as_bytes());
        }
        if config.get_application_name().is_none() {
            config.application_name("exportd");
        }
        // A partitioned network must show up as an error within a lease, not hang a call (and
        // with it the daemon's event loop) for the kernel's default of many minutes.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(NETWORK_TIMEOUT);
        }
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(NETWORK_TIMEOUT);
        }
        config.keepalives_idle(NETWORK_TIMEOUT);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("exportd-pg")
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let client = Arc::new(connect(&runtime, &config, &redacted)?);
        Ok(Connection {
            runtime: Some(runtime),
            client,
            config,
            url: redacted,
        })
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime
            .as_ref()
            .unwrap_or_else(|| unreachable!("the runtime lives until the connection is dropped"))
    }

    /// The URL without its password, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The client. Cheap to clone into a future given to [`Connection::run`].
    pub fn client(&self) -> Arc<Client> {
        self.client.clone()
    }

    /// Whether the connection broke (server restarted, network partition).
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Connects again after the connection broke.
    pub fn reconnect(&mut self) -> Result<(), Error> {
        self.client = Arc::new(connect(self.runtime(), &self.config, &self.url)?);
        Ok(())
    }

    /// Runs `future` on this connection's runtime and waits for it. Callable from any thread,
    /// inside or outside an async runtime.
    pub fn run<F>(&self, future: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        futures::executor::block_on(self.runtime().spawn(future))
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    /// Spawns `future` on this connection's runtime without waiting (row streams).
    pub fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.runtime().spawn(future);
    }

    /// Applies the migrations `schema` has not seen yet, each in its own transaction, and
    /// records them in `schema_migrations` (one row per schema and version). An advisory lock
    /// keeps replicas that start together from migrating twice.
    pub fn migrate(
        &self,
        schema: &'static str,
        migrations: &'static [&'static str],
    ) -> Result<(), Error> {
        let client = self.client();
        let url = self.url.clone();
        self.run(async move {
            client
                .batch_execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (
                        schema_name TEXT NOT NULL,
                        version INT8 NOT NULL,
                        applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                        PRIMARY KEY (schema_name, version)
                    )",
                )
                .await
                .or_else(ignore_concurrent_create)?;
            // 0x6578706f = "expo": one lock id for every exportd migration.
            client
                .execute("SELECT pg_advisory_lock(1702391919)", &[])
                .await?;
            let result = apply(&client, schema, migrations, &url).await;
            client
                .execute("SELECT pg_advisory_unlock(1702391919)", &[])
                .await?;
            result
        })
    }
}

/// The daemon drops its state store inside its async runtime (the last API handler holding it
/// ends there), where dropping a runtime the normal way panics: shut it down in the background.
impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Two replicas creating `schema_migrations` at the same moment: one of them loses the race
/// on the catalog's unique index, and the table exists all the same.
fn ignore_concurrent_create(e: tokio_postgres::Error) -> Result<(), tokio_postgres::Error> {
    match e.code() {
        Some(c) if *c == tokio_postgres::error::SqlState::UNIQUE_VIOLATION => Ok(()),
        _ => Err(e),
    }
}

async fn apply(
    client: &Client,
    schema: &'static str,
    migrations: &'static [&'static str],
    url: &str,
) -> Result<(), Error> {
    let found: i64 = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations WHERE schema_name = $1",
            &[&schema],
        )
        .await?
        .get(0);
    if found > migrations.len() as i64 {
        return Err(Error::TooNew {
            url: url.to_owned(),
            table: schema,
            found,
            supported: migrations.len(),
        });
    }
    for (i, sql) in migrations.iter().enumerate().skip(found.max(0) as usize) {
        let version = i as i64 + 1;
        let batch = format!(
            "BEGIN; {sql}; INSERT INTO schema_migrations (schema_name, version) \
             VALUES ('{schema}', {version}); COMMIT;"
        );
        if let Err(e) = client.batch_execute(&batch).await {
            // A failed batch leaves the transaction aborted; end it so the lock release works.
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(e.into());
        }
    }
    Ok(())
}

fn connect(runtime: &tokio::runtime::Runtime, config: &Config, url: &str) -> Result<Client, Error> {
    let config = config.clone();
    let url = url.to_owned();
    let task = async move {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let tls = tls_connector();
        let (client, connection) = config.connect(tls).await.map_err(|source| Error::Connect {
            url: url.clone(),
            source,
        })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(url = %url, error = %e, "PostgreSQL connection closed.");
            }
        });
        Ok::<_, Error>(client)
    };
    futures::executor::block_on(runtime.spawn(task))
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

fn tls_connector() -> tokio_postgres_rustls::MakeRustlsConnect {
    use rustls_platform_verifier::ConfigVerifierExt;
    let config = rustls::ClientConfig::with_platform_verifier().unwrap_or_else(|_| {
        // No usable platform roots: an empty root store still allows `sslmode=disable` and
        // `prefer` against a server without TLS; `require` then fails with a clear error.
        rustls::ClientConfig::builder()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
    });
    tokio_postgres_rustls::MakeRustlsConnect::new(config)
}

/// A [`Value`] bound as a parameter, encoded for whatever type PostgreSQL inferred for its
/// placeholder: the dialect decides WHAT is compared, the server's inference decides the wire
/// type, so `revenue > $1` gets NUMERIC and `hour(…) = $1` gets INT8 from the same `Int`.
#[derive(Debug)]
pub struct Param<'a>(pub &'a Value);

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let mismatch = || -> Box<dyn std::error::Error + Sync + Send> {
            format!("cannot bind {:?} as {ty}", self.0).into()
        };
        match (self.0, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Bool(b), &Type::BOOL) => b.to_sql(ty, out),
            (Value::Int(i), &Type::INT8) => i.to_sql(ty, out),
            (Value::Int(i), &Type::INT4) => {
                i32::try_from(*i).map_err(|_| mismatch())?.to_sql(ty, out)
            }
            (Value::Int(i), &Type::INT2) => {
                i16::try_from(*i).map_err(|_| mismatch())?.to_sql(ty, out)
            }
            (Value::Int(i), &Type::NUMERIC) => Decimal::from(*i).to_sql(ty, out),
            (Value::Int(i), &Type::FLOAT8) => (*i as f64).to_sql(ty, out),
            (Value::Decimal(d), &Type::NUMERIC) => d.to_sql(ty, out),
            (Value::Decimal(d), &Type::FLOAT8) => {
                use rust_decimal::prelude::ToPrimitive;
                d.to_f64().ok_or_else(mismatch)?.to_sql(ty, out)
            }
            (Value::Float(f), &Type::FLOAT8) => f.to_sql(ty, out),
            (Value::Float(f), &Type::NUMERIC) => Decimal::try_from(*f)
                .map_err(|_| mismatch())?
                .to_sql(ty, out),
            (Value::Timestamp(t), &Type::TIMESTAMPTZ) => t.to_sql(ty, out),
            (Value::Timestamp(t), &Type::INT8) => t.timestamp_millis().to_sql(ty, out),
            (Value::Text(s), &Type::TEXT | &Type::VARCHAR | &Type::BPCHAR | &Type::NAME) => {
                s.as_str().to_sql(ty, out)
            }
            (v, &Type::TEXT | &Type::VARCHAR) => v.to_string().as_str().to_sql(ty, out),
            _ => Err(mismatch()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A fresh database on the test server (`EXPORTD_TEST_PG_URL`, started by
/// `scripts/services.sh`), so each test sees only its own rows. Returns its URL.
#[cfg(test)]
pub(crate) fn test_database() -> String {
    let Ok(url) = std::env::var("EXPORTD_TEST_PG_URL") else {
        panic!(
            "EXPORTD_TEST_PG_URL is not set: start the test services with \
             `scripts/services.sh start DIR postgres && source DIR/env`, or run scripts/test.sh"
        );
    };
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let name = format!(
        "unit_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        chrono::Utc::now().timestamp_micros()
    );
    let admin = Connection::open(&url, None).expect("connecting to the test server");
    let client = admin.client();
    let statement = format!("CREATE DATABASE {name}");
    admin
        .run(async move { client.batch_execute(&statement).await })
        .expect("creating a test database");
    let (base, _) = url.rsplit_once('/').expect("a url with a database");
    format!("{base}/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_drops_the_password() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u@h:5432/db"
        );
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
    }

    #[test]
    fn connection_errors_name_the_url_without_password() {
        let err = Connection::open("postgres://u:hunter2@127.0.0.1:1/db", None)
            .err()
            .expect("nothing listens on port 1");
        let text = err.to_string();
        assert!(text.contains("postgres://u@127.0.0.1:1/db"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn migrations_run_once_and_a_newer_schema_is_refused() {
        let url = test_database();
        let conn = Connection::open(&url, None).expect("connect");
        conn.migrate("t", &["CREATE TABLE t1 (x INT)"])
            .expect("first");
        conn.migrate("t", &["CREATE TABLE t1 (x INT)", "CREATE TABLE t2 (x INT)"])
            .expect("second only applies migration 2");
        let err = conn
            .migrate("t", &["CREATE TABLE t1 (x INT)"])
            .expect_err("too new");
        assert!(matches!(err, Error::TooNew { found: 2, .. }), "{err}");
    }
}
