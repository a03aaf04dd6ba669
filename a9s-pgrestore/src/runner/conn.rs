//! The main session as the runner sees it: the few requests a script needs, with errors as [`SqlError`].
//!
//! The runner always holds one [`Conn`]: the server's session, or [`NoSession`] before the first connection,
//! after `\connect` closed the old one, or once a session is dropped; every request to the latter fails as a
//! lost connection, so there is no "not connected" case to forget. Being a trait, it is also the seam where
//! the runner's unit tests put a scripted session in place of a server (`runner/tests.rs`).

use std::sync::Arc;

use a9s_core::pg::error::{io_to_sql, SqlError};
use a9s_core::pg::Session;
use a9s_core::Result;

/// What the runner asks of its session.
pub trait Conn {
    /// The value the server last reported for a parameter (ParameterStatus).
    fn parameter(&self, name: &str) -> Option<&str>;
    /// Whether the session has ended.
    fn is_closed(&self) -> bool;
    /// Runs `sql` with the simple query protocol, as psql sends a statement.
    fn batch_execute(&mut self, sql: &str) -> std::result::Result<(), SqlError>;
    /// Runs `sql` with the simple query protocol; the first column of each row.
    fn query_column(&mut self, sql: &str) -> std::result::Result<Vec<Option<String>>, SqlError>;
    /// Starts `COPY … FROM STDIN`. An error here means the COPY never took data: the server refused it.
    fn copy_in(&mut self, sql: &str) -> std::result::Result<Box<dyn CopySink + '_>, SqlError>;
    /// Runs `COPY … TO STDOUT`, dropping its data; the bytes received.
    fn copy_out(&mut self, sql: &str) -> std::result::Result<u64, SqlError>;
    /// The server's session itself, for the standby check and the cluster steps, which only a server has.
    fn session(&mut self) -> Option<&mut Session>;
    /// What cancels the session's running statement from another thread (a signal), if it has a server.
    fn cancel_token(&self) -> Option<tokio_postgres::CancelToken>;
}

/// The data of a started `COPY … FROM STDIN`; dropped without [`CopySink::finish`], the COPY is aborted.
pub trait CopySink {
    fn write_all(&mut self, data: &[u8]) -> std::result::Result<(), SqlError>;
    /// Ends the data; the rows the server loaded.
    fn finish(self: Box<Self>) -> std::result::Result<u64, SqlError>;
}

/// Opens a session to a target, its notices handed to the callback: the one way the runner opens sessions, the
/// main one and those of `--jobs` (from their threads, hence `Send + Sync`).
pub type Connector =
    Arc<dyn Fn(&a9s_core::pg::Target, a9s_core::pg::session::NoticeFn) -> Result<Box<dyn Conn + Send>> + Send + Sync>;

/// The connector of a real run.
pub fn server_connector() -> Connector {
    Arc::new(|target, notices| Ok(Box::new(target.connect_with_notices(notices)?) as Box<dyn Conn + Send>))
}

impl Conn for Session {
    fn parameter(&self, name: &str) -> Option<&str> {
        Session::parameter(self, name)
    }
    fn is_closed(&self) -> bool {
        Session::is_closed(self)
    }
    fn batch_execute(&mut self, sql: &str) -> std::result::Result<(), SqlError> {
        Ok(Session::batch_execute(self, sql)?)
    }
    fn query_column(&mut self, sql: &str) -> std::result::Result<Vec<Option<String>>, SqlError> {
        Ok(self
            .simple_query(sql)?
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
                _ => None,
            })
            .collect())
    }
    fn copy_in(&mut self, sql: &str) -> std::result::Result<Box<dyn CopySink + '_>, SqlError> {
        // Prepared apart, so that a refused COPY can be told from a broken session: a statement refused at the
        // prepare never started, and the session stays in step.
        let statement = self.prepare(sql)?;
        Ok(Box::new(Session::copy_in(self, &statement)?))
    }
    fn copy_out(&mut self, sql: &str) -> std::result::Result<u64, SqlError> {
        Ok(Session::copy_out(self, sql)?)
    }
    fn session(&mut self) -> Option<&mut Session> {
        Some(self)
    }
    fn cancel_token(&self) -> Option<tokio_postgres::CancelToken> {
        Some(Session::cancel_token(self))
    }
}

impl CopySink for a9s_core::pg::session::CopyIn<'_> {
    fn write_all(&mut self, data: &[u8]) -> std::result::Result<(), SqlError> {
        std::io::Write::write_all(self, data).map_err(io_to_sql)
    }
    fn finish(self: Box<Self>) -> std::result::Result<u64, SqlError> {
        Ok((*self).finish()?)
    }
}

/// No session: every request fails as a lost connection.
pub struct NoSession;

impl NoSession {
    fn gone() -> SqlError {
        SqlError::broken("no session")
    }
}

impl Conn for NoSession {
    fn parameter(&self, _: &str) -> Option<&str> {
        None
    }
    fn is_closed(&self) -> bool {
        true
    }
    fn batch_execute(&mut self, _: &str) -> std::result::Result<(), SqlError> {
        Err(Self::gone())
    }
    fn query_column(&mut self, _: &str) -> std::result::Result<Vec<Option<String>>, SqlError> {
        Err(Self::gone())
    }
    fn copy_in(&mut self, _: &str) -> std::result::Result<Box<dyn CopySink + '_>, SqlError> {
        Err(Self::gone())
    }
    fn copy_out(&mut self, _: &str) -> std::result::Result<u64, SqlError> {
        Err(Self::gone())
    }
    fn session(&mut self) -> Option<&mut Session> {
        None
    }
    fn cancel_token(&self) -> Option<tokio_postgres::CancelToken> {
        None
    }
}

/// Whether the session is inside a transaction block (the script ran `BEGIN`): then other sessions would not
/// see what it did, and could wait on its locks. In autocommit, `now()` (the transaction's start) is this
/// statement's own timestamp.
pub fn in_transaction_block(conn: &mut dyn Conn) -> std::result::Result<bool, SqlError> {
    let rows = conn.query_column("SELECT pg_catalog.now() <> pg_catalog.statement_timestamp()")?;
    Ok(rows.last().is_some_and(|v| v.as_deref() == Some("t")))
}

/// Why the rows of a `COPY` into `table` (as written in the statement, resolved as the server resolves it with
/// the session's search_path) must all go over one session, as psql sends them; `None` when chunks of them can
/// go to separate `--jobs` sessions. Over several sessions each chunk is an uncommitted transaction of its
/// own, so a row whose insertion depends on rows of another chunk — a unique or exclusion index (the row waits
/// for the other chunk's outcome: for ever, as that chunk waits for this one to commit), a foreign key (the
/// referenced row is not visible yet), a trigger, a partitioned or otherwise special target — would wait on
/// the restore itself or get another answer than psql's one COPY. A temporary table exists for the main
/// session alone (the others would load a table of the same name elsewhere in the search_path, or none).
/// pg_dump creates tables bare and adds these after the data, so a dump's tables keep their parallel loading.
///
/// `columns`: the COPY's column list, if it has one. A column left out of it with a default (a sequence, a
/// clock) or an identity gets its values in the order the rows are inserted, which over several sessions is
/// not the script's.
pub fn one_session_reason(
    conn: &mut dyn Conn,
    table: &str,
    columns: Option<&[String]>,
) -> std::result::Result<Option<String>, SqlError> {
    let defaults = match columns {
        None => String::new(),
        Some(listed) => format!(
            // Through jsonb: attidentity and attgenerated do not exist on every server version.
            "WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 \
                            AND NOT a.attisdropped AND a.attname <> ALL (ARRAY[{}]::pg_catalog.name[]) \
                            AND ((a.atthasdef \
                                  AND COALESCE(pg_catalog.to_jsonb(a) ->> 'attgenerated', '') = '') \
                                 OR COALESCE(pg_catalog.to_jsonb(a) ->> 'attidentity', '') <> '')) \
               THEN 'the COPY leaves out a column whose default or identity gives each row its value' ",
            listed.iter().map(|c| a9s_core::pg::admin::escape_literal(c)).collect::<Vec<_>>().join(", ")
        ),
    };
    let sql = format!(
        "SELECT CASE \
           WHEN c.oid IS NULL THEN 'the server found no table of that name' \
           WHEN c.relkind = 'p' THEN 'the table is partitioned' \
           WHEN c.relkind <> 'r' THEN 'it is not a plain table' \
           WHEN c.relpersistence = 't' THEN 'the table is a temporary table of the main session' \
           WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid \
                          AND (i.indisunique OR i.indisexclusion)) \
             THEN 'the table has a primary key, unique or exclusion index' \
           WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'f') \
             THEN 'the table has a foreign key' \
           WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t WHERE t.tgrelid = c.oid \
                          AND (NOT t.tgisinternal OR t.tgconstraint = 0)) \
             THEN 'the table has a trigger' \
           {defaults}\
           ELSE '' END \
         FROM (SELECT pg_catalog.to_regclass({}) AS oid) r LEFT JOIN pg_catalog.pg_class c ON c.oid = r.oid",
        a9s_core::pg::admin::escape_literal(table)
    );
    let rows = conn.query_column(&sql)?;
    Ok(match rows.last() {
        Some(Some(why)) if why.is_empty() => None,
        Some(Some(why)) => Some(why.clone()),
        _ => Some("the server could not tell what the table has".into()),
    })
}

/// Of the server processes `waiting`, those waiting for a lock that one of `holding` or this session holds.
pub fn blocked_by(conn: &mut dyn Conn, waiting: &[i32], holding: &[i32]) -> std::result::Result<Vec<i32>, SqlError> {
    let list = |pids: &[i32]| pids.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
    let sql = format!(
        "SELECT w FROM pg_catalog.unnest('{{{}}}'::int[]) AS w \
         WHERE pg_catalog.pg_blocking_pids(w) && ('{{{}}}'::int[] || pg_catalog.pg_backend_pid())",
        list(waiting),
        list(holding)
    );
    Ok(conn.query_column(&sql)?.into_iter().flatten().filter_map(|p| p.parse().ok()).collect())
}

/// Asks the server to cancel the statement server process `pid` runs (one of this restore's sessions).
pub fn cancel_backend(conn: &mut dyn Conn, pid: i32) -> std::result::Result<(), SqlError> {
    conn.query_column(&format!("SELECT pg_catalog.pg_cancel_backend({pid})")).map(drop)
}
