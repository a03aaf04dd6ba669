//! What the programs that change the cluster around a restore (a9s-repmgr-reset, a9s-pgrestore's cluster steps)
//! share: quoting, turning a server error into one operator line with the right exit status, and the checks
//! every such step makes before touching anything (a primary, not a standby; the role's attributes).

use crate::error::exit;
use crate::{Error, Result};
use postgres::GenericClient;

/// `"name"` with embedded quotes doubled, as PostgreSQL's `quote_ident` does but always quoted, so a name is
/// never read as a keyword nor case-folded.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'` with embedded quotes doubled (standard_conforming_strings). Statements here pass values as
/// parameters; this is for the SQL that dry runs print, so an operator can paste it into psql.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// True when the error means the session is gone (refused, lost, server shutting down), not that a statement
/// failed: the programs exit 2 then, as psql does.
pub fn is_connection_error(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        // Class 08 (connection exception) and 57P01..57P05 (admin/crash shutdown, cannot connect now…);
        // 57014 (query_canceled) is a statement error.
        Some(c) => {
            let c = c.code();
            c.starts_with("08") || c.starts_with("57P")
        }
        // Not from the server: a broken socket is a lost connection; a parameter the client could not encode
        // or a row it could not decode is a statement error.
        None => std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()),
    }
}

/// The server's message in psql's words, `ERROR: message (SQLSTATE)`, or the client library's error.
pub fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{}: {} ({})", db.severity(), db.message(), db.code().code());
            if let Some(d) = db.detail() {
                s += &format!("; {d}");
            }
            s
        }
        None => {
            let s = e.to_string();
            if s.is_empty() {
                "connection lost".to_string()
            } else {
                s
            }
        }
    }
}

/// An [`Error`] for a failed statement: exit 2 when the connection is gone, 1 otherwise; `what` says what we
/// were doing.
pub fn sql_error(what: &str, e: &postgres::Error) -> Error {
    let code = if is_connection_error(e) { exit::USAGE } else { exit::FAILURE };
    Error::new(code, format!("{what}: {}", describe(e)))
}

/// Refuses a server in recovery: the changes must be made on the primary (a standby is read-only and gets
/// them by replication).
pub fn refuse_if_in_recovery(client: &mut impl GenericClient, program_hint: &str) -> Result<()> {
    let row =
        client.query_one("SELECT pg_is_in_recovery()", &[]).map_err(|e| sql_error("checking for recovery", &e))?;
    if row.get::<_, bool>(0) {
        return Err(Error::failure(format!(
            "the server is in recovery (a standby): run {program_hint} on the primary (`repmgr cluster show` \
             tells which node that is)"
        )));
    }
    Ok(())
}

/// The session's role and the attributes the steps need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub name: String,
    pub superuser: bool,
    pub replication: bool,
    pub createdb: bool,
}

/// The current role (`current_user`) and its attributes.
pub fn current_role(client: &mut impl GenericClient) -> Result<Role> {
    let row = client
        .query_one(
            "SELECT current_user::text, rolsuper, rolreplication, rolcreatedb FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .map_err(|e| sql_error("reading the role's attributes", &e))?;
    Ok(Role { name: row.get(0), superuser: row.get(1), replication: row.get(2), createdb: row.get(3) })
}

/// `current_database()`.
pub fn current_database(client: &mut impl GenericClient) -> Result<String> {
    let row = client
        .query_one("SELECT current_database()::text", &[])
        .map_err(|e| sql_error("reading the current database", &e))?;
    Ok(row.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("repmgr"), "\"repmgr\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
