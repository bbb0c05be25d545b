//! The system of record: PostgreSQL or SQLite through one SQL implementation.
//!
//! Both backends are reached through sqlx's `Any` driver with the same
//! statements (`$1` placeholders work on both), so the two cannot drift apart;
//! each has its own migrations folder (`migrations/postgres`,
//! `migrations/sqlite`) for the DDL that differs, and [`Dialect`] selects the
//! few statements that must differ at run time. Values are plain integers and
//! text: ids are `BIGINT`, times are Unix milliseconds, flags are 0/1.
//!
//! SQLite runs with one connection: every write is serialized, which is the
//! embedded default's concurrency model (no `database is locked` surprises).

mod boards;
pub mod cache;
pub(crate) mod customers;
mod directory;
pub mod group_commit;
mod presence;
mod tickets;
mod users;

pub use directory::*;
pub use presence::*;
pub use tickets::*;
pub use users::*;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{Any, AnyPool, Executor, Transaction};
use std::time::Duration;

static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
/// Read connections beside SQLite's one writing connection (`Db::reads`).
const READ_CONNECTIONS: u32 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("this idempotency key was used with a different request")]
    IdempotencyMismatch,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    /// Connections for the periodic readings of many rows that need only
    /// what is committed (supervisor boards). On SQLite a pool of its own:
    /// `pool` has the one connection every write goes through, and a board
    /// reading on it made every write wait (WAL lets readers run beside the
    /// writer). On PostgreSQL, and for an in-memory SQLite database (one
    /// per connection), `pool` itself.
    reads: AnyPool,
    dialect: Dialect,
    /// This node's copy of the directory (see [`cache`]); shared by clones.
    cache: std::sync::Arc<cache::DirectoryCache>,
    /// This node's group commit of the lifecycle's writes.
    writer: group_commit::Writer,
    /// Places for transactions that may wait long on locks other
    /// transactions hold (see [`Db::begin_waiting_work`]).
    waiting_work: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Begin a transaction on `pool`. On SQLite it takes the database's write
/// lock at once (`BEGIN IMMEDIATE`): a deferred transaction that reads and
/// then writes cannot wait for a write lock held by another process (an
/// operator command on the same file, say) and failed at once with
/// "database is locked"; this one waits up to the busy timeout. A node has
/// one writing connection to SQLite, so it never waits for itself.
pub(crate) async fn begin(pool: &AnyPool) -> Result<Transaction<'static, Any>, sqlx::Error> {
    if pool.connect_options().database_url.scheme() == "sqlite" {
        pool.begin_with("BEGIN IMMEDIATE").await
    } else {
        pool.begin().await
    }
}

impl Db {
    /// Connect (creating a SQLite file and its folder if needed) and run the
    /// migrations of the backend.
    pub async fn connect(url: &str) -> anyhow::Result<Db> {
        Self::connect_with_writers(url, DEFAULT_WRITERS.into()).await
    }

    /// Connect and migrate, with `writers` group-commit writers on
    /// PostgreSQL (one on SQLite, whose pool has one connection).
    pub async fn connect_with_writers(url: &str, writers: usize) -> anyhow::Result<Db> {
        let db = Self::open(url, writers).await?;
        db.migrate().await?;
        Ok(db)
    }

    /// Connect without migrating.
    pub async fn connect_only(url: &str) -> anyhow::Result<Db> {
        Self::open(url, DEFAULT_WRITERS.into()).await
    }

    async fn open(url: &str, writers: usize) -> anyhow::Result<Db> {
        install_default_drivers();
        let (dialect, url) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Dialect::Postgres, with_statement_cache(url))
        } else if let Some(path) = url.strip_prefix("sqlite://") {
            let file = path.split('?').next().unwrap_or(path);
            if let Some(dir) = std::path::Path::new(file).parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir)?;
            }
            let sep = if url.contains('?') { '&' } else { '?' };
            let url = if url.contains("mode=") {
                url.to_string()
            } else {
                format!("{url}{sep}mode=rwc")
            };
            (Dialect::Sqlite, url)
        } else {
            anyhow::bail!("DATABASE_URL must start with postgres:// or sqlite://");
        };
        let writers = match dialect {
            Dialect::Postgres => writers.max(1),
            Dialect::Sqlite => 1,
        };
        let options = match dialect {
            // The writers have connections of their own (below): the node
            // keeps 16 in all (more with over 8 writers).
            Dialect::Postgres => AnyPoolOptions::new().max_connections(
                POSTGRES_CONNECTIONS
                    .saturating_sub(writers as u32)
                    .max(MIN_SHARED_CONNECTIONS),
            ),
            Dialect::Sqlite => AnyPoolOptions::new()
                .max_connections(1)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                         PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
                        )
                        .await?;
                        Ok(())
                    })
                }),
        };
        let pool = options
            .acquire_timeout(Duration::from_secs(10))
            .connect(&url)
            .await?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let reads = match dialect {
            Dialect::Sqlite if !in_memory => {
                // Opened after the writers' pool, which has set WAL mode
                // (kept in the file).
                AnyPoolOptions::new()
                    .max_connections(READ_CONNECTIONS)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(
                                "PRAGMA busy_timeout = 5000; PRAGMA query_only = ON; \
                                 PRAGMA foreign_keys = ON;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(&url)
                    .await?
            }
            _ => pool.clone(),
        };
        // On PostgreSQL the group-commit writers draw on a pool of their own,
        // one connection each: the lifecycle's writes never wait for a
        // connection held by other work (compensation decisions wait on
        // locks with theirs: when they all waited on the ledger's, at a
        // thousand lifecycles a second enough of them queued to take every
        // shared connection, the writers stalled and the line never
        // drained). SQLite's one
        // connection carries every write.
        let writes = match dialect {
            Dialect::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(writers as u32)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(&url)
                    .await?
            }
            Dialect::Sqlite => pool.clone(),
        };
        // Half the shared connections at most for work that may wait on
        // locks (one on SQLite, whose one connection every write shares).
        let waiting_work = (pool.options().get_max_connections() / 2).max(1) as usize;
        Ok(Db {
            reads,
            writer: group_commit::Writer::start(writes, writers),
            waiting_work: std::sync::Arc::new(tokio::sync::Semaphore::new(waiting_work)),
            pool,
            dialect,
            cache: Default::default(),
        })
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self.dialect {
            Dialect::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
            Dialect::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Begin a transaction that may wait long on locks others hold (a
    /// compensation decision waits for every decision before it on the
    /// same requester or customer), in one of the places for such work:
    /// keep the place (the permit) until the transaction ends. Such
    /// transactions hold at most half the node's shared connections:
    /// however many queue up (a burst of grants for one customer, a
    /// decision stuck behind a long transaction), reads, sign-ins and the
    /// node's periodic work still find a connection; the rest wait for a
    /// place, holding none. (Waiting compensation decisions once held every
    /// shared connection of their nodes, whose periodic work then starved:
    /// agents were taken away as offline.)
    pub(crate) async fn begin_waiting_work(
        &self,
    ) -> StoreResult<(tokio::sync::OwnedSemaphorePermit, Transaction<'static, Any>)> {
        let place = self
            .waiting_work
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        Ok((place, begin(&self.pool).await?))
    }

    /// Where periodic readings of committed data go (see `reads`).
    pub(crate) fn reads(&self) -> &AnyPool {
        &self.reads
    }

    /// This node's directory cache (see [`cache`]).
    pub fn cache(&self) -> &cache::DirectoryCache {
        &self.cache
    }

    /// Run `work` in the next transaction this node's writer commits, with
    /// the works of other requests that queued meanwhile ([`group_commit`]).
    pub(crate) async fn commit_with_others<W: group_commit::Work>(
        &self,
        work: W,
    ) -> StoreResult<W::Output> {
        self.writer.commit(&self.pool, work).await
    }

    /// This node's group commit, for `/metrics` and tests.
    pub fn group_commit(&self) -> &group_commit::Writer {
        &self.writer
    }

    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.reads.close().await;
        self.pool.close().await;
    }
}

/// Group-commit writers of a node on PostgreSQL unless configured: several
/// keep the database busy (one batch runs while another commits) and let
/// the writes of concurrent requests share transactions. Measured on 2-core
/// machines: one writer bounded a node at 360 lifecycles/s, two carried
/// 585/s and four no more on one machine; on another, asked for 1,000/s,
/// two carried 509–550/s and four 555–590/s (the machine busier: 82 %
/// against 75 %), eight no more than four, and at 200/s four made no
/// difference to the offer latency.
pub const DEFAULT_WRITERS: u16 = 4;

/// A node's PostgreSQL connections: the writers' and the shared pool's
/// together (the shared pool keeps at least [`MIN_SHARED_CONNECTIONS`]).
const POSTGRES_CONNECTIONS: u32 = 16;
const MIN_SHARED_CONNECTIONS: u32 = 8;

/// Prepared statements each PostgreSQL connection keeps (sqlx's default is
/// 100): the group commit's statements for several works of a kind differ
/// by their number of rows (one text per number), beside the few dozen
/// other statements a node runs. A URL that says otherwise is kept.
const STATEMENT_CACHE: u32 = 300;

fn with_statement_cache(url: &str) -> String {
    if url.contains("statement-cache-capacity=") {
        return url.to_string();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}statement-cache-capacity={STATEMENT_CACHE}")
}

/// Whether the error is a unique-constraint violation.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

pub(crate) fn flag(b: bool) -> i64 {
    b as i64
}
