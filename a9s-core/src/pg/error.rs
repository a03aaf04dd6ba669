//! The one place that decides what a PostgreSQL error means for a program: is the session gone (exit
//! [`EXIT_BADCONN`], as psql's "connection lost"), or did one statement fail; and the one way to word it.

use crate::error::{exit, Error};

/// Exit status for "cannot connect" / "connection lost", as psql (`EXIT_BADCONN`).
pub const EXIT_BADCONN: i32 = 2;

/// True when the error means the session can no longer be used: the client saw the socket close or fail, the
/// server ended the session (SQLSTATE class 08 "connection exception", class 57P "operator intervention":
/// admin or crash shutdown, cannot connect now, database dropped, idle-session timeout — each sent with FATAL),
/// any FATAL or PANIC, or the client lost step with the server ("unexpected message"). Anything else is one
/// statement's failure and the session goes on. `session_closed` is the client's own view of its socket.
pub fn is_session_lost(e: &postgres::Error, session_closed: bool) -> bool {
    if session_closed || e.is_closed() {
        return true;
    }
    if let Some(db) = e.as_db_error() {
        let c = db.code().code();
        return c.starts_with("08") || c.starts_with("57P") || matches!(db.severity(), "FATAL" | "PANIC");
    }
    // Not from the server. A broken socket, or a protocol message the client did not expect: after either the
    // client and server no longer agree on what comes next, so nothing more may be sent. tokio-postgres has no
    // public kind for the latter, hence the text. A parameter the client could not encode or a row it could
    // not decode leaves the session in step: a statement error.
    let io = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
    io || is_out_of_step(e)
}

/// True when the server sent a protocol message the client did not expect for its request: most often a
/// `CopyInResponse` or `CopyOutResponse` in the middle of a simple query, i.e. the server found a COPY where the
/// client sent none. The session cannot be used after it. tokio-postgres has no public kind for it, hence the
/// text.
pub fn is_out_of_step(e: &postgres::Error) -> bool {
    e.as_db_error().is_none() && !e.is_closed() && e.to_string().contains("unexpected message")
}

/// The server's error as psql words it, on one line: `ERROR: message (SQLSTATE); DETAIL: …; HINT: …`; an error
/// of the client library as `ERROR: its text` ("connection lost" when it has none).
pub fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{}: {} ({})", db.severity(), db.message(), db.code().code());
            if let Some(d) = db.detail() {
                s += &format!("; DETAIL: {d}");
            }
            if let Some(h) = db.hint() {
                s += &format!("; HINT: {h}");
            }
            s
        }
        None => match error_chain(e) {
            s if s.is_empty() => "connection lost".to_string(),
            s => format!("ERROR: {s}"),
        },
    }
}

/// The SQLSTATE of a server error, for summaries.
pub fn sqlstate(e: &postgres::Error) -> Option<String> {
    e.as_db_error().map(|db| db.code().code().to_string())
}

/// An [`Error`] for a failed step: exit [`EXIT_BADCONN`] when the session is gone, 1 otherwise; `what` says what
/// the program was doing.
pub fn sql_error(what: &str, e: &postgres::Error) -> Error {
    let code = if is_session_lost(e, false) { EXIT_BADCONN } else { exit::FAILURE };
    Error::new(code, format!("{what}: {}", describe(e)))
}

/// An error and its sources in one line, without std's "(os error N)".
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        let t = x.to_string();
        if !s.contains(&t) {
            s += ": ";
            s += &t;
        }
        src = x.source();
    }
    while let Some(i) = s.find(" (os error") {
        match s[i..].find(')') {
            Some(j) => s.replace_range(i..i + j + 1, ""),
            None => break,
        }
    }
    s
}

/// The `postgres::Error` inside an `io::Error` from a COPY writer, if there is one; else the I/O error's text.
pub fn io_to_pg(e: std::io::Error) -> std::result::Result<postgres::Error, String> {
    let text = crate::error::describe_io(&e);
    match e.into_inner().map(|inner| inner.downcast::<postgres::Error>()) {
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
