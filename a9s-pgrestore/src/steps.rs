//! The cluster steps around a restore, from the runbook: "Terminate Running Process" before it
//! (`--terminate-connections`) and "Update Database Name" after it (`--rename-database OLD=NEW`), each with
//! `--dry-run`.
//!
//! Both refuse a server in recovery, check privileges before changing anything, and return a [`StepReport`]
//! for the summary. The checks are read-only and run alike in a dry run; what a step sends after them is one
//! plan of fixed statements, built once: the real run sends it, a dry run prints it, so the two cannot
//! differ. The CLI calls [`ClusterSteps::before_restore`] on its first session (before the first
//! statement of the script) and [`ClusterSteps::after_restore`] on a fresh session to
//! [`maintenance_database`] after a restore that succeeded.
//!
//! Which backends `--terminate-connections` ends: client backends and WAL senders (applications, standbys,
//! pg_receivewal, logical subscribers — everything that connects from outside), not the server's own processes
//! (autovacuum, background writer, checkpointer, logical replication workers, parallel workers), which the
//! runbook's `WHERE pid <> pg_backend_pid()` also signals but which either restart at once or are needed.

use a9s_core::pg::admin::{self as pg_admin, escape_literal, quote_ident, quote_literal};
use a9s_core::pg::error::sql_error;
use a9s_core::pg::Session;
use a9s_core::{Error, Result};
use serde::Serialize;
use tokio_postgres::error::SqlState;
use tokio_postgres::SimpleQueryMessage;

/// The clap options of the steps, for `#[command(flatten)]` in a9s-pgrestore's CLI.
#[derive(clap::Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterSteps {
    /// Before the restore, terminate every other client connection (the runbook's pg_terminate_backend).
    #[arg(
        long,
        long_help = "Before the restore, terminate every other session on the server — all client connections \
                     and WAL senders (standbys, pg_receivewal), in every database — as the runbook's \
                     \"Terminate Running Process\" step does, wait until they are gone, and report how many. The \
                     server's own processes (autovacuum, checkpointer, background workers) are left alone. \
                     Connections can come back: block them first (iptables, or stop the applications). Needs a \
                     superuser (or pg_signal_backend for non-superuser sessions); if any session cannot be \
                     terminated, a9s-pgrestore stops before restoring anything."
    )]
    pub terminate_connections: bool,

    /// After a successful restore, drop database NEW if it exists and rename OLD to NEW.
    #[arg(
        long,
        value_name = "OLD=NEW",
        value_parser = parse_rename,
        long_help = "After a restore that succeeded, the runbook's \"Update Database Name\": terminate the \
                     sessions on databases OLD and NEW, drop NEW if it exists, and rename OLD (the old \
                     deployment's database, created by the restore) to NEW (the new deployment's name). Refuses \
                     when OLD does not exist. Runs on a session to database postgres (template1 when OLD or NEW \
                     is postgres), never on OLD or NEW. Not run when the restore had errors."
    )]
    pub rename_database: Option<Rename>,

    /// Print what the steps would do and change nothing.
    #[arg(
        long,
        long_help = "Print what --terminate-connections and --rename-database would do — the sessions that would \
                     be terminated, the databases that would be dropped and renamed — and, as `would run:` lines, \
                     every statement the real run sends after its checks, in order, and change nothing (the checks \
                     are read-only, and a dry run reads no script)."
    )]
    pub dry_run: bool,
}

/// `--rename-database OLD=NEW`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rename {
    pub old: String,
    pub new: String,
}

/// Parses `OLD=NEW` (split at the first `=`; database names of a9s deployments never contain one).
pub fn parse_rename(s: &str) -> std::result::Result<Rename, String> {
    let Some((old, new)) = s.split_once('=') else {
        return Err(format!("expected OLD=NEW (the restored database's name, then the name it should get), got {s:?}"));
    };
    for (what, name) in [("OLD", old), ("NEW", new)] {
        if name.is_empty() {
            return Err(format!("{what} is empty in {s:?}: expected OLD=NEW"));
        }
        // PostgreSQL would silently cut a longer name to 63 bytes (NAMEDATALEN - 1).
        if name.len() > 63 {
            return Err(format!("{what} {name:?} is longer than PostgreSQL's 63 bytes"));
        }
        if name.contains('\0') {
            return Err(format!("{what} contains a NUL byte"));
        }
        if matches!(name, "template0" | "template1") {
            return Err(format!("{what} is {name}: refusing to drop or rename a template database"));
        }
    }
    if old == new {
        return Err(format!("OLD and NEW are the same ({old:?}): nothing to rename"));
    }
    Ok(Rename { old: old.to_string(), new: new.to_string() })
}

/// What a step did (or, in a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepReport {
    /// `terminate-connections` or `rename-database`.
    pub step: &'static str,
    pub dry_run: bool,
    /// Sessions terminated (or that would be).
    pub terminated: u64,
    /// One line per thing done, for stderr (without a program prefix).
    pub lines: Vec<String>,
    /// Every statement sent after the checks (in a dry run: that the real run would send), in order, each as
    /// sent, ready to paste into psql.
    pub sql: Vec<String>,
}

impl StepReport {
    fn new(step: &'static str, dry_run: bool) -> Self {
        StepReport { step, dry_run, terminated: 0, lines: Vec::new(), sql: Vec::new() }
    }
}

impl ClusterSteps {
    /// Whether any step is asked for (a9s-pgrestore's `--dry-run` alone does nothing here).
    pub fn any(&self) -> bool {
        self.terminate_connections || self.rename_database.is_some()
    }

    /// The steps before the restore, on the session the restore will use.
    pub fn before_restore(&self, client: &mut Session) -> Result<Vec<StepReport>> {
        let mut out = Vec::new();
        if let Some(r) = &self.rename_database {
            // Refuse before the restore what would make the rename fail after it.
            check_rename_possible(client, r)?;
        }
        if self.terminate_connections {
            out.push(terminate_connections(client, self.dry_run)?);
        }
        Ok(out)
    }

    /// The steps after a restore that succeeded, on a session to [`maintenance_database`].
    pub fn after_restore(&self, client: &mut Session) -> Result<Vec<StepReport>> {
        let mut out = Vec::new();
        if let Some(r) = &self.rename_database {
            out.push(rename_database(client, &r.old, &r.new, self.dry_run)?);
        }
        Ok(out)
    }
}

impl ClusterSteps {
    /// The steps after the script, for the runner's hook: when a rename is asked for and the restore succeeded
    /// (`restore_exit_code` 0), opens a session to [`maintenance_database`] on the restore's server as its user
    /// and renames; after a restore with errors, only reports that the database was not renamed (the caller
    /// keeps its exit status).
    pub fn after_restore_on(&self, target: &a9s_core::pg::Target, restore_exit_code: i32) -> Result<Vec<StepReport>> {
        let Some(r) = &self.rename_database else { return Ok(Vec::new()) };
        if restore_exit_code != 0 && !self.dry_run {
            let mut report = StepReport::new("rename-database", false);
            report.lines.push(format!(
                "database {} was not renamed to {}: the restore had errors; after fixing them, rename with \
                 a9s-pgrestore --rename-database {}={} -d postgres /dev/null",
                r.old, r.new, r.old, r.new
            ));
            return Ok(vec![report]);
        }
        let mut client = target.with_dbname(maintenance_database(r)).connect()?;
        self.after_restore(&mut client)
    }
}

/// The database to connect to for `--rename-database`: `postgres`, or `template1` when OLD or NEW is `postgres`.
pub fn maintenance_database(r: &Rename) -> &'static str {
    if r.old == "postgres" || r.new == "postgres" {
        "template1"
    } else {
        "postgres"
    }
}

/// A session a step terminates (or, in a dry run, would).
#[derive(Debug, Clone)]
struct Backend {
    pid: String,
    user: String,
    database: String,
    application: String,
    backend_type: String,
}

impl Backend {
    fn describe(&self) -> String {
        let mut s = format!("pid {} ({}", self.pid, self.backend_type);
        if !self.user.is_empty() {
            s += &format!(", user {}", self.user);
        }
        if !self.database.is_empty() {
            s += &format!(", database {}", self.database);
        }
        if !self.application.is_empty() {
            s += &format!(", application {}", self.application);
        }
        s + ")"
    }
}

const BACKEND_COLUMNS: &str = "pid, coalesce(usename::text, ''), coalesce(datname::text, ''), \
                               coalesce(application_name, ''), coalesce(backend_type, '')";

/// `--terminate-connections`' sessions: client backends and WAL senders.
const OUTSIDE_SESSIONS: &str = "backend_type IN ('client backend', 'walsender')";

/// The sessions `filter` selects, other than this one, as a statement; `and` is appended to the columns.
fn sessions_sql(filter: &str, and: &str) -> String {
    format!(
        "SELECT {BACKEND_COLUMNS}{and} FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND {filter} ORDER BY pid"
    )
}

/// The statement that terminates the sessions `filter` selects and returns them, with whether each was
/// signalled (false: it ended by itself meanwhile). pg_terminate_backend fails the whole statement on a session
/// the role may not terminate.
fn terminate_sql(filter: &str) -> String {
    sessions_sql(filter, ", pg_terminate_backend(pid)")
}

/// Waits on the server, up to [`TERMINATE_WAIT_SECS`], until the sessions `filter` selects that connected
/// before the transaction began are gone (pg_terminate_backend only signals: a DROP DATABASE right after could
/// still see them). Sent in the transaction of the [`terminate_sql`] statement: now() is the transaction's start,
/// so it waits for the sessions that statement terminated, not for ones that connect since. pg_stat_activity is
/// a snapshot taken once per transaction, hence pg_stat_clear_snapshot.
fn wait_sql(filter: &str) -> String {
    format!(
        "DO $$BEGIN LOOP PERFORM pg_stat_clear_snapshot(); EXIT WHEN NOT EXISTS (SELECT FROM pg_stat_activity \
         WHERE pid <> pg_backend_pid() AND {filter} AND backend_start < now()); IF clock_timestamp() > now() + \
         interval '{TERMINATE_WAIT_SECS} s' THEN RAISE EXCEPTION 'sessions still running {TERMINATE_WAIT_SECS} s \
         after being terminated: check them in pg_stat_activity'; END IF; PERFORM pg_sleep(0.05); END LOOP; END$$"
    )
}

/// How long terminated sessions get to go away.
const TERMINATE_WAIT_SECS: u32 = 10;

/// The rows of a simple query, each column as text.
fn rows(client: &mut Session, sql: &str) -> std::result::Result<Vec<Vec<String>>, tokio_postgres::Error> {
    Ok(client
        .simple_query(sql)?
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).unwrap_or_default().to_string()).collect())
            }
            _ => None,
        })
        .collect())
}

fn backend(row: &[String]) -> Backend {
    let col = |i: usize| row.get(i).cloned().unwrap_or_default();
    Backend { pid: col(0), user: col(1), database: col(2), application: col(3), backend_type: col(4) }
}

/// The sessions `filter` selects: a read-only check both runs make, for a dry run's `would terminate` lines.
fn backends(client: &mut Session, filter: &str) -> Result<Vec<Backend>> {
    let rows = rows(client, &sessions_sql(filter, "")).map_err(|e| sql_error("listing the sessions", &e))?;
    Ok(rows.iter().map(|r| backend(r)).collect())
}

/// What one statement of a [`Plan`] is for, so the real run can read its result and name its failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Does {
    Begin,
    /// A [`terminate_sql`] statement.
    Terminate,
    /// A [`wait_sql`] statement.
    Wait,
    Commit,
    /// DROP DATABASE or ALTER DATABASE … RENAME, which fail when a session is on the database: sent again after
    /// the [`Does::Terminate`] before it while a session comes back in between, up to [`ATTEMPTS`] times.
    InUse,
}

/// How often a [`Does::InUse`] statement is tried.
const ATTEMPTS: usize = 5;

/// Every statement a step sends after its checks, in order, each as sent (simple query protocol, so the server
/// logs exactly this text): printed by `--dry-run`, sent by the real run. None depends on what the checks found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Plan {
    statements: Vec<(Does, String)>,
}

impl Plan {
    fn push(&mut self, does: Does, sql: String) {
        self.statements.push((does, sql));
    }

    fn sql(&self) -> Vec<String> {
        self.statements.iter().map(|(_, sql)| sql.clone()).collect()
    }

    /// Sends every statement, recording each in `report.sql` and each terminated session in `report.lines`.
    /// A failure inside the transaction rolls it back.
    fn run(&self, client: &mut Session, report: &mut StepReport) -> Result<()> {
        let mut in_transaction = false;
        for (i, (does, sql)) in self.statements.iter().enumerate() {
            let step = match does {
                Does::Begin => {
                    in_transaction = true;
                    send(client, sql, report).map_err(|e| sql_error("starting the transaction", &e))
                }
                Does::Terminate => terminate(client, sql, report),
                Does::Wait => {
                    send(client, sql, report).map_err(|e| sql_error("waiting for the terminated sessions to end", &e))
                }
                Does::Commit => {
                    in_transaction = false;
                    send(client, sql, report).map_err(|e| sql_error("committing", &e))
                }
                Does::InUse => self.retry_in_use(client, i, report),
            };
            if let Err(e) = step {
                if in_transaction {
                    let _ = client.batch_execute("ROLLBACK");
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Sends statement `i`; while it fails because a session came back on the database, the [`Does::Terminate`]
    /// before it and it again.
    fn retry_in_use(&self, client: &mut Session, i: usize, report: &mut StepReport) -> Result<()> {
        let sql = &self.statements[i].1;
        for attempt in 1..=ATTEMPTS {
            if attempt > 1 {
                terminate(client, &self.statements[i - 1].1, report)?;
            }
            match send(client, sql, report) {
                Ok(()) => return Ok(()),
                Err(e) if e.code() == Some(&SqlState::OBJECT_IN_USE) && attempt < ATTEMPTS => continue,
                Err(e) => {
                    let mut err = sql_error(sql, &e);
                    if e.code() == Some(&SqlState::OBJECT_IN_USE) {
                        err.message += " — sessions keep reconnecting: stop the applications or block port 5432 first";
                    }
                    return Err(err);
                }
            }
        }
        unreachable!("the last attempt returns")
    }
}

/// Sends `sql` and records it as sent.
fn send(client: &mut Session, sql: &str, report: &mut StepReport) -> std::result::Result<(), tokio_postgres::Error> {
    report.sql.push(sql.to_string());
    client.batch_execute(sql)
}

/// Sends a [`terminate_sql`] statement; reports each session it terminated.
fn terminate(client: &mut Session, sql: &str, report: &mut StepReport) -> Result<()> {
    report.sql.push(sql.to_string());
    let rows = rows(client, sql).map_err(|e| {
        let mut err = sql_error("terminating the sessions", &e);
        if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) {
            err.message += " — connect as a superuser (-U postgres)";
        }
        err
    })?;
    for row in rows.iter().filter(|r| r.last().is_some_and(|t| t == "t")) {
        report.terminated += 1;
        report.lines.push(format!("terminated {}", backend(row).describe()));
    }
    Ok(())
}

/// A value as a literal for a simple query: `'…'`, or `E'…'` when it holds a backslash (read the same whatever
/// standard_conforming_strings is).
fn literal(text: &str) -> String {
    if text.contains('\\') {
        escape_literal(text)
    } else {
        quote_literal(text)
    }
}

/// `--terminate-connections`: terminates every other client backend and WAL sender on the server.
pub fn terminate_connections(client: &mut Session, dry_run: bool) -> Result<StepReport> {
    pg_admin::refuse_if_in_recovery(client, "a9s-pgrestore", a9s_core::error::exit::FAILURE)?;
    let role = pg_admin::current_role(client)?;
    if !role.superuser {
        // Without pg_read_all_stats, other roles' sessions show no backend_type in pg_stat_activity: they would
        // silently be left running.
        let may = client
            .query_one(
                "SELECT pg_has_role('pg_read_all_stats', 'MEMBER') AND pg_has_role('pg_signal_backend', 'MEMBER')",
                &[],
            )
            .map_err(|e| sql_error("checking the role's privileges", &e))?;
        if !may.get::<_, bool>(0) {
            return Err(Error::failure(format!(
                "role {} may not see and terminate other roles' sessions (it needs SUPERUSER, or membership in \
                 pg_read_all_stats and pg_signal_backend): connect as a superuser (-U postgres)",
                role.name
            )));
        }
    }
    let targets = backends(client, OUTSIDE_SESSIONS)?;
    let mut plan = Plan::default();
    plan.push(Does::Begin, "BEGIN".to_string());
    plan.push(Does::Terminate, terminate_sql(OUTSIDE_SESSIONS));
    plan.push(Does::Wait, wait_sql(OUTSIDE_SESSIONS));
    plan.push(Does::Commit, "COMMIT".to_string());
    let mut report = StepReport::new("terminate-connections", dry_run);
    if dry_run {
        for b in &targets {
            report.lines.push(format!("would terminate {}", b.describe()));
        }
        report.terminated = targets.len() as u64;
        report.lines.push(format!("would terminate {} session(s)", targets.len()));
        report.sql = plan.sql();
        return Ok(report);
    }
    plan.run(client, &mut report)?;
    report.lines.push(format!("terminated {} session(s)", report.terminated));
    Ok(report)
}

/// A database's existence and whether the current role may drop/rename it.
struct Db {
    owned: bool,
}

fn database(client: &mut Session, name: &str) -> Result<Option<Db>> {
    let row = client
        .query_opt("SELECT pg_has_role(current_user, datdba, 'MEMBER') FROM pg_database WHERE datname = $1", &[&name])
        .map_err(|e| sql_error(&format!("looking up database {name}"), &e))?;
    Ok(row.map(|r| Db { owned: r.get(0) }))
}

/// Refusals that do not depend on the restore: a standby, a session on OLD or NEW, missing privileges.
fn check_rename_possible(client: &mut Session, r: &Rename) -> Result<()> {
    pg_admin::refuse_if_in_recovery(client, "a9s-pgrestore", a9s_core::error::exit::FAILURE)?;
    let role = pg_admin::current_role(client)?;
    if !role.superuser && !role.createdb {
        return Err(Error::failure(format!(
            "role {} may not rename databases (it needs CREATEDB and to own {}): connect as a superuser \
             (-U postgres)",
            role.name, r.old
        )));
    }
    if !role.superuser {
        for name in [&r.old, &r.new] {
            if let Some(db) = database(client, name)? {
                if !db.owned {
                    return Err(Error::failure(format!(
                        "role {} does not own database {name} and so may not drop or rename it: connect as a \
                         superuser (-U postgres)",
                        role.name
                    )));
                }
            }
        }
    }
    Ok(())
}

/// `--rename-database OLD=NEW`: terminates the sessions on both, drops NEW if it exists, renames OLD to NEW.
/// Refuses when OLD does not exist (a dry run only notes it: the restore creates OLD) and when `client` is
/// connected to OLD or NEW.
///
/// Each of DROP DATABASE and ALTER DATABASE comes right after a statement that terminates the sessions on OLD
/// and NEW; both wait up to 5 s themselves for terminated sessions to end, and are sent again (after the
/// terminating statement) when a session came back in between.
pub fn rename_database(client: &mut Session, old: &str, new: &str, dry_run: bool) -> Result<StepReport> {
    let r = parse_rename(&format!("{old}={new}")).map_err(|e| Error::usage(format!("--rename-database: {e}")))?;
    let mut report = StepReport::new("rename-database", dry_run);
    let current = pg_admin::current_database(client)?;
    if current == old || current == new {
        return Err(Error::failure(format!(
            "the session is on database {current}, which --rename-database {old}={new} must drop or rename: \
             connect to {} instead",
            maintenance_database(&r)
        )));
    }
    check_rename_possible(client, &r)?;
    let old_db = database(client, old)?;
    let new_db = database(client, new)?;
    if old_db.is_none() {
        if !dry_run {
            return Err(Error::failure(format!(
                "database {old} does not exist, so there is nothing to rename to {new}: check the name the dump \
                 creates (grep '^CREATE DATABASE' in the dump); nothing was changed"
            )));
        }
        report.lines.push(format!("database {old} does not exist now: the restore must create it"));
    }
    let on_both = format!("datname IN ({}, {})", literal(old), literal(new));
    let sessions = backends(client, &on_both)?;
    let (qold, qnew) = (quote_ident(old), quote_ident(new));
    let mut plan = Plan::default();
    if new_db.is_some() {
        plan.push(Does::Terminate, terminate_sql(&on_both));
        plan.push(Does::InUse, format!("DROP DATABASE {qnew}"));
    }
    plan.push(Does::Terminate, terminate_sql(&on_both));
    plan.push(Does::InUse, format!("ALTER DATABASE {qold} RENAME TO {qnew}"));
    if dry_run {
        for b in &sessions {
            report.lines.push(format!("would terminate {}", b.describe()));
        }
        report.terminated = sessions.len() as u64;
        if new_db.is_some() {
            report.lines.push(format!("would drop database {new}"));
        }
        report.lines.push(format!("would rename database {old} to {new}"));
        report.lines.push(format!(
            "when a session comes back before {} (\"being accessed by other users\"), the real run sends the \
             terminating SELECT and that statement again, up to {} times in all",
            if new_db.is_some() { "DROP DATABASE or ALTER DATABASE" } else { "ALTER DATABASE" },
            ATTEMPTS
        ));
        report.sql = plan.sql();
        return Ok(report);
    }
    plan.run(client, &mut report)?;
    if new_db.is_some() {
        report.lines.push(format!("dropped database {new}"));
    }
    report.lines.push(format!("renamed database {old} to {new}"));
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Demo {
        #[command(flatten)]
        steps: ClusterSteps,
    }

    #[test]
    fn parses_rename() {
        assert_eq!(parse_rename("a=b"), Ok(Rename { old: "a".into(), new: "b".into() }));
        assert_eq!(parse_rename("a=b=c").unwrap().new, "b=c");
        assert!(parse_rename("ab").is_err());
        assert!(parse_rename("=b").is_err());
        assert!(parse_rename("a=").is_err());
        assert!(parse_rename("a=a").is_err());
        assert!(parse_rename("template1=x").is_err());
        assert!(parse_rename(&format!("a={}", "x".repeat(64))).is_err());
    }

    #[test]
    fn flattens() {
        let d = Demo::try_parse_from(["x", "--terminate-connections", "--rename-database", "d_old=d_new", "--dry-run"])
            .unwrap();
        assert!(d.steps.terminate_connections && d.steps.dry_run && d.steps.any());
        assert_eq!(d.steps.rename_database.as_ref().unwrap().new, "d_new");
        assert!(Demo::try_parse_from(["x", "--rename-database", "nope"]).is_err());
    }

    #[test]
    fn maintenance_db() {
        let r = |o: &str, n: &str| Rename { old: o.into(), new: n.into() };
        assert_eq!(maintenance_database(&r("a", "b")), "postgres");
        assert_eq!(maintenance_database(&r("postgres", "b")), "template1");
    }
}
