//! What the programs that change the cluster around a restore (a9s-repmgr-reset, a9s-pgrestore's cluster steps)
//! share: quoting, turning a server error into one operator line with the right exit status, and the checks
//! every such step makes before touching anything (a primary, not a standby; the role's attributes).

use super::error::sql_error;
use super::session::Session;
use crate::{Error, Result};

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

/// `E'text'` with quotes and backslashes doubled: read the same whatever `standard_conforming_strings` is, for
/// a value that a script's session must read in a simple query.
pub fn escape_literal(text: &str) -> String {
    format!("E'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// Refuses a server in recovery, with exit status `code`: the changes must be made on the primary (a standby is
/// read-only and gets them by replication).
pub fn refuse_if_in_recovery(client: &mut Session, program_hint: &str, code: i32) -> Result<()> {
    let row =
        client.query_one("SELECT pg_is_in_recovery()", &[]).map_err(|e| sql_error("checking for recovery", &e))?;
    if row.get::<_, bool>(0) {
        return Err(Error::new(
            code,
            format!(
                "the server is in recovery (a standby): run {program_hint} on the primary (`repmgr cluster show` \
             tells which node that is)"
            ),
        ));
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
pub fn current_role(client: &mut Session) -> Result<Role> {
    let row = client
        .query_one(
            "SELECT current_user::text, rolsuper, rolreplication, rolcreatedb FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .map_err(|e| sql_error("reading the role's attributes", &e))?;
    Ok(Role { name: row.get(0), superuser: row.get(1), replication: row.get(2), createdb: row.get(3) })
}

/// `current_database()`.
pub fn current_database(client: &mut Session) -> Result<String> {
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
        assert_eq!(escape_literal("a\\'; DROP"), "E'a\\\\''; DROP'");
    }
}
