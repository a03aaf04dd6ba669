//! The one place that decides what a PostgreSQL error means for a program: is the session gone (exit
//! [`EXIT_BADCONN`], as psql's "connection lost"), or did one statement fail; and the one way to word it.

use crate::error::{exit, Error};
use crate::sanitize::one_line;

/// Exit status for "cannot reach the server" / "connection lost" (psql's `EXIT_BADCONN`, which is 2 there):
/// [`exit::UNREACHABLE`], kept apart from a usage error so a script can retry this one alone.
pub const EXIT_BADCONN: i32 = exit::UNREACHABLE;

/// A failed request as the programs judge it: what the server said, or what the client saw. Made from a
/// `tokio_postgres::Error` (whose fields have no public constructor), or directly by a test double of a session, so
/// that the rules below can be driven without a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    /// The server's error, when it sent one (boxed: results that carry a `SqlError` stay small).
    pub server: Option<Box<ServerError>>,
    /// The client saw its socket close or fail.
    pub broken: bool,
    /// The client's own words ("unexpected message from server", an I/O error); empty when it has none.
    pub text: String,
}

/// The fields of a server's ErrorResponse that the programs use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    pub severity: String,
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    /// CONTEXT (`where_`): a COPY's `COPY t, line N`.
    pub context: Option<String>,
}

impl SqlError {
    /// An ERROR (or FATAL, PANIC) the server sent.
    pub fn server(severity: &str, code: &str, message: &str) -> SqlError {
        let server = ServerError {
            severity: severity.into(),
            code: code.into(),
            message: message.into(),
            detail: None,
            hint: None,
            context: None,
        };
        SqlError { server: Some(Box::new(server)), broken: false, text: String::new() }
    }

    /// The client's socket closed or failed.
    pub fn broken(text: impl Into<String>) -> SqlError {
        SqlError { server: None, broken: true, text: text.into() }
    }

    /// An error of the client library alone, the session's socket still open.
    pub fn client(text: impl Into<String>) -> SqlError {
        SqlError { server: None, broken: false, text: text.into() }
    }

    /// True when the error means the session can no longer be used: the client saw the socket close or fail,
    /// the server ended the session (SQLSTATE class 08 "connection exception", class 57P "operator
    /// intervention": admin or crash shutdown, cannot connect now, database dropped, idle-session timeout —
    /// each sent with FATAL), any FATAL or PANIC, or the client lost step with the server. Anything else is one
    /// statement's failure and the session goes on. `session_closed` is the client's own view of its socket.
    pub fn is_session_lost(&self, session_closed: bool) -> bool {
        if session_closed || self.broken {
            return true;
        }
        match &self.server {
            Some(s) => {
                s.code.starts_with("08")
                    || s.code.starts_with("57P")
                    || matches!(s.severity.as_str(), "FATAL" | "PANIC")
            }
            // A protocol message the client did not expect: client and server no longer agree on what comes
            // next, so nothing more may be sent. A parameter the client could not encode or a row it could not
            // decode leaves the session in step: a statement error.
            None => self.is_out_of_step(),
        }
    }

    /// True when the server sent a protocol message the client did not expect for its request: most often a
    /// `CopyInResponse` or `CopyOutResponse` in the middle of a simple query, i.e. the server found a COPY where
    /// the client sent none. The session cannot be used after it. tokio-postgres has no public kind for it,
    /// hence the text.
    pub fn is_out_of_step(&self) -> bool {
        self.server.is_none() && !self.broken && self.text.contains("unexpected message")
    }

    /// The row number of a COPY's data the server named in its CONTEXT (see [`copy_context_line`]).
    pub fn copy_row(&self) -> Option<u64> {
        self.server.as_ref().and_then(|s| s.context.as_deref()).and_then(copy_context_line)
    }

    /// The SQLSTATE of a server error.
    pub fn sqlstate(&self) -> Option<&str> {
        self.server.as_ref().map(|s| s.code.as_str())
    }

    /// The error as psql words it, on one line: `ERROR: message (SQLSTATE); DETAIL: …; HINT: …`; an error of
    /// the client library as `ERROR: its text` ("connection lost" when it has none).
    pub fn describe(&self) -> String {
        match &self.server {
            Some(db) => {
                // The server's words may quote the data (a value, a name) and so hold any character: each
                // field on one line, with controls escaped, before it reaches a terminal.
                let field = |t: &str| one_line(t, FIELD_MAX);
                let mut s = format!("{}: {} ({})", field(&db.severity), field(&db.message), field(&db.code));
                if let Some(d) = &db.detail {
                    s += &format!("; DETAIL: {}", field(d));
                }
                if let Some(h) = &db.hint {
                    s += &format!("; HINT: {}", field(h));
                }
                s
            }
            None if self.text.is_empty() => "connection lost".to_string(),
            None => format!("ERROR: {}", one_line(&self.text, FIELD_MAX)),
        }
    }
}

/// The bound of each of a server error's fields in [`SqlError::describe`]: generous, the message is the
/// diagnosis.
const FIELD_MAX: usize = 2000;

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl From<&tokio_postgres::Error> for SqlError {
    fn from(e: &tokio_postgres::Error) -> SqlError {
        let server = e.as_db_error().map(|db| {
            Box::new(ServerError {
                severity: db.severity().to_string(),
                code: db.code().code().to_string(),
                message: db.message().to_string(),
                detail: db.detail().map(str::to_string),
                hint: db.hint().map(str::to_string),
                context: db.where_().map(str::to_string),
            })
        });
        // A message the client could not encode (a query with a NUL byte: "string contains embedded null") is
        // an io::Error of kind InvalidInput that never reached the socket: the session is intact.
        let io = std::error::Error::source(e)
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .is_some_and(|io| io.kind() != std::io::ErrorKind::InvalidInput);
        let text = if server.is_some() { String::new() } else { error_chain(e) };
        SqlError { server, broken: e.is_closed() || io, text }
    }
}

impl From<tokio_postgres::Error> for SqlError {
    fn from(e: tokio_postgres::Error) -> SqlError {
        SqlError::from(&e)
    }
}

/// [`SqlError::is_session_lost`] of a `tokio_postgres::Error`.
pub fn is_session_lost(e: &tokio_postgres::Error, session_closed: bool) -> bool {
    SqlError::from(e).is_session_lost(session_closed)
}

/// [`SqlError::describe`] of a `tokio_postgres::Error`.
pub fn describe(e: &tokio_postgres::Error) -> String {
    SqlError::from(e).describe()
}

/// An [`Error`] for a failed step: exit [`EXIT_BADCONN`] when the session is gone, 1 otherwise; `what` says what
/// the program was doing.
pub fn sql_error(what: &str, e: &tokio_postgres::Error) -> Error {
    let code = if is_session_lost(e, false) { EXIT_BADCONN } else { exit::FAILURE };
    Error::new(code, format!("{what}: {}", describe(e)))
}

pub use crate::error::error_chain;

/// The error of a COPY writer's `io::Error`: the `tokio_postgres::Error` inside it, else the socket broke.
pub fn io_to_sql(e: std::io::Error) -> SqlError {
    match io_to_pg(e) {
        Ok(pg) => SqlError::from(&pg),
        Err(text) => SqlError::broken(text),
    }
}

/// The `tokio_postgres::Error` inside an `io::Error` from a COPY writer, if there is one; else the I/O error's text.
pub fn io_to_pg(e: std::io::Error) -> std::result::Result<tokio_postgres::Error, String> {
    let text = crate::error::describe_io(&e);
    match e.into_inner().map(|inner| inner.downcast::<tokio_postgres::Error>()) {
        Some(Ok(pg)) => Ok(*pg),
        _ => Err(text),
    }
}

/// The row number N of the server's `COPY t, line N[, column …]` context (a session's own count, from 1),
/// from an error's `where_`. Several context lines (a trigger's) may precede it; the COPY one is the last.
pub fn copy_context_line(context: &str) -> Option<u64> {
    let l = context.lines().rev().find(|l| l.starts_with("COPY "))?;
    let mut rest = l;
    // The relation's name comes first and could itself contain ", line ": take the first one followed by a
    // number that ends the context or is followed by `,` or `:`.
    while let Some(i) = rest.find(", line ") {
        let after = &rest[i + 7..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            let tail = &after[digits..];
            if tail.is_empty() || tail.starts_with(',') || tail.starts_with(':') {
                return after[..digits].parse().ok();
            }
        }
        rest = after;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_for_a_lost_session() {
        let lost = |e: SqlError| e.is_session_lost(false);
        // The server ended the session: class 08, every 57P (57P04 and 57P05 included), any FATAL or PANIC.
        for code in ["08006", "08P01", "57P01", "57P02", "57P03", "57P04", "57P05"] {
            assert!(lost(SqlError::server("FATAL", code, "x")), "{code}");
        }
        assert!(lost(SqlError::server("FATAL", "28000", "role does not exist")));
        assert!(lost(SqlError::server("PANIC", "XX000", "x")));
        // The client saw the socket go, or lost step with the server.
        assert!(lost(SqlError::broken("connection reset by peer")));
        assert!(lost(SqlError::client("unexpected message from server")));
        // One statement's failure: the session goes on.
        assert!(!lost(SqlError::server("ERROR", "42P07", "relation \"t\" already exists")));
        assert!(!lost(SqlError::server("ERROR", "57014", "canceling statement due to statement timeout")));
        assert!(!lost(SqlError::client("error serializing parameter 0")));
        // Whatever the error, a session the client knows closed is lost.
        assert!(SqlError::server("ERROR", "42601", "x").is_session_lost(true));
    }

    #[test]
    fn out_of_step_only_without_a_server_error_on_an_open_socket() {
        assert!(SqlError::client("unexpected message from server").is_out_of_step());
        assert!(!SqlError::broken("unexpected message from server").is_out_of_step());
        assert!(!SqlError::server("ERROR", "42601", "unexpected message").is_out_of_step());
    }

    #[test]
    fn described_as_psql_words_it() {
        let mut e = SqlError::server("ERROR", "23505", "duplicate key value violates unique constraint \"t_pkey\"");
        let s = e.server.as_mut().expect("server");
        s.detail = Some("Key (a)=(1) already exists.".into());
        s.hint = Some("h".into());
        assert_eq!(
            e.describe(),
            "ERROR: duplicate key value violates unique constraint \"t_pkey\" (23505); DETAIL: Key (a)=(1) already \
             exists.; HINT: h"
        );
        assert_eq!(e.sqlstate(), Some("23505"));
        assert_eq!(SqlError::broken("").describe(), "connection lost");
        assert_eq!(SqlError::broken("db error").describe(), "ERROR: db error");
        // A value quoted by the server cannot reach the terminal as escapes or break the line.
        let mut e = SqlError::server("ERROR", "22P02", "invalid input syntax for type integer: \"\u{1b}[2J\"");
        e.server.as_mut().expect("server").detail = Some("line one\nline two\u{9b}".into());
        assert_eq!(
            e.describe(),
            "ERROR: invalid input syntax for type integer: \"\\u{1b}[2J\" (22P02); DETAIL: line one line two\\u{9b}"
        );
    }

    #[test]
    fn context_lines() {
        assert_eq!(copy_context_line("COPY t, line 5"), Some(5));
        assert_eq!(copy_context_line("COPY t, line 12, column v: \"x\""), Some(12));
        assert_eq!(copy_context_line("COPY big, line 3: \"3\tabc\""), Some(3));
        assert_eq!(copy_context_line("COPY weird, line x, line 9, column a: \"\""), Some(9));
        assert_eq!(
            copy_context_line("PL/pgSQL function f() line 3 at RAISE\nCOPY t, line 41"),
            Some(41),
            "a trigger's context comes first"
        );
        assert_eq!(copy_context_line("SQL statement \"SELECT 1\""), None);
        assert_eq!(copy_context_line(""), None);
    }
}
