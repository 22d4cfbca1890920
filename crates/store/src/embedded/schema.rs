//! Opening connections: where the database lives, the pragmas each role needs, and the schema.

use std::path::PathBuf;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::rows::sqlite_error;
use crate::{Error, Result};

/// Where the database lives. Both variants are opened by several connections at once (one
/// writer, a few readers), which is why "in memory" is not SQLite's private `:memory:`.
#[derive(Debug, Clone)]
pub(crate) enum Location {
    File(PathBuf),
    /// A `memdb` VFS database with a `/`-prefixed name: shared by every connection of this
    /// process that opens the same name, freed when the last one closes. Rejected alternative:
    /// `mode=memory&cache=shared`, whose table-level locks answer a reader that meets the writer
    /// with SQLITE_LOCKED immediately (busy_timeout does not apply), so reads would fail under load.
    Memory(String),
}

impl Location {
    pub(crate) fn describe(&self) -> String {
        match self {
            Location::File(path) => path.display().to_string(),
            Location::Memory(name) => format!("memdb:{name}"),
        }
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        // NO_MUTEX: each connection is used by one thread at a time (the writer thread, or a
        // reader checked out of the pool), so SQLite's per-connection mutex is pure overhead.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        match self {
            Location::File(path) => Connection::open_with_flags(path, flags),
            Location::Memory(name) => {
                Connection::open_with_flags(format!("file:/{name}?vfs=memdb"), flags)
            }
        }
    }
}

/// Statements per connection that stay prepared: the reader uses up to 8 query_partition
/// shapes plus get / change feed / outbox; the writer a dozen. Above the default 16 on purpose.
const STATEMENT_CACHE: usize = 48;

/// The writer connection: journal mode, durability level and the schema.
pub(crate) fn open_writer(location: &Location, busy_timeout: Duration) -> Result<Connection> {
    let conn = location.open().map_err(|e| open_error(location, e))?;
    conn.busy_timeout(busy_timeout).map_err(sqlite_error)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    if let Location::File(_) = location {
        // WAL: readers never block the writer nor each other, and a commit is one append.
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(sqlite_error)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Backend(format!(
                "{}: could not switch to WAL (journal_mode is {mode})",
                location.describe()
            )));
        }
        // NORMAL under WAL: a commit is durable once it is in the WAL file, so a SIGKILLed
        // process loses nothing it acknowledged; only an OS crash / power loss can drop the last
        // few transactions (fsync happens at checkpoints). FULL would fsync every group commit;
        // rejected because production durability comes from Cosmos DB, not from this file.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sqlite_error)?;
        // Keep the WAL from growing without bound after a burst (bytes kept after checkpoint).
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
            .map_err(sqlite_error)?;
        // Checkpoint every ~32 MiB of WAL instead of SQLite's 1,000 pages (~4 MiB): a NAV day
        // rewrites the same hot pages (latest-NAV documents, outbox) many times between
        // checkpoints, and each checkpoint copies them only once. Measured with perf: the
        // checkpoint was ~12 % of the publisher's writer thread during the AMFI file.
        conn.pragma_update(None, "wal_autocheckpoint", 8000)
            .map_err(sqlite_error)?;
    }
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(sqlite_error)?;
    create_schema(&conn)?;
    Ok(conn)
}

/// A read connection: same database, writes refused at the SQLite level so a bug in a read
/// path can never bypass the single writer (and its seq counter).
pub(crate) fn open_reader(location: &Location, busy_timeout: Duration) -> Result<Connection> {
    let conn = location.open().map_err(|e| open_error(location, e))?;
    conn.busy_timeout(busy_timeout).map_err(sqlite_error)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.pragma_update(None, "query_only", true)
        .map_err(sqlite_error)?;
    Ok(conn)
}

fn open_error(location: &Location, e: rusqlite::Error) -> Error {
    Error::Unavailable(format!("cannot open {}: {e}", location.describe()))
}

/// Idempotent (IF NOT EXISTS), run in one IMMEDIATE transaction so two processes opening the
/// same new file do not interleave half-created schemas.
fn create_schema(conn: &Connection) -> Result<()> {
    conn.execute_batch(
        "BEGIN IMMEDIATE;
         CREATE TABLE IF NOT EXISTS documents (
             container     TEXT NOT NULL,
             partition_key TEXT NOT NULL,
             id            TEXT NOT NULL,
             body          TEXT NOT NULL,
             etag          TEXT NOT NULL,
             seq           INTEGER NOT NULL,
             expires_at    INTEGER,
             PRIMARY KEY (container, partition_key, id)
         );
         CREATE INDEX IF NOT EXISTS documents_feed ON documents (container, seq);
         CREATE INDEX IF NOT EXISTS documents_expiry ON documents (expires_at)
             WHERE expires_at IS NOT NULL;
         CREATE TABLE IF NOT EXISTS outbox (
             seq          INTEGER PRIMARY KEY AUTOINCREMENT,
             message_id   TEXT NOT NULL UNIQUE,
             topic        TEXT NOT NULL,
             key          TEXT NOT NULL,
             payload      BLOB NOT NULL,
             headers      BLOB NOT NULL,
             created_at   INTEGER NOT NULL,
             published_at INTEGER
         );
         CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;
         CREATE INDEX IF NOT EXISTS outbox_published ON outbox (published_at)
             WHERE published_at IS NOT NULL;
         CREATE TABLE IF NOT EXISTS meta (
             key   TEXT PRIMARY KEY,
             value INTEGER NOT NULL
         );
         INSERT OR IGNORE INTO meta (key, value) VALUES ('doc_seq', 0);
         COMMIT;",
    )
    .map_err(|e| {
        // A failed batch leaves the transaction open; close it so the connection stays usable.
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        sqlite_error(e)
    })
}
