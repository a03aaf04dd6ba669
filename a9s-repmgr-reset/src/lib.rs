//! a9s-repmgr-reset: the runbook's "Clean up repmgr" (empty every table of schema `repmgr` on the primary) and
//! "Drop replication slots" (drop the slots no standby uses), as one checked command.
//!
//! Everything is checked before anything changes: a primary, not a standby; schema `repmgr` present; the role
//! may empty every table (and drop slots); no table outside `repmgr` references one of them. The tables are then
//! locked, counted and emptied in one transaction, so the counts are the rows that were removed and either all
//! tables are emptied or none is.

use std::ffi::OsString;
use std::io::Write;

use a9s_core::pg::admin::{self as pg_admin, quote_ident, quote_literal};
use a9s_core::pg::error::{describe, is_session_lost, sql_error};
use a9s_core::pg::Session;
use a9s_core::{Error, Result};
use clap::{CommandFactory, Parser};
use serde::Serialize;
use tokio_postgres::error::SqlState;
use tokio_postgres::SimpleQueryMessage;

/// The database a9s deployments keep repmgr's state in.
pub const DEFAULT_DBNAME: &str = "repmgr_cluster";

#[derive(Parser, Debug)]
#[command(
    name = "a9s-repmgr-reset",
    version = a9s_core::VERSION,
    disable_help_flag = true,
    about = "Empty repmgr's tables on the primary after a restore, and drop inactive replication slots",
    long_about = "Empties every table of schema repmgr (whatever tables the installed repmgr version has) in one \
                  transaction and prints each table with the rows it held; with --drop-inactive-slots also drops \
                  the replication slots no standby is using. Replaces the runbook's hand-typed TRUNCATE loop and \
                  pg_drop_replication_slot query. Run it on the primary, with repmgr stopped (monit stop repmgr)."
)]
pub struct Cli {
    #[command(flatten)]
    pub conn: a9s_core::pg::ConnArgs,

    /// Also drop the replication slots that are not active.
    #[arg(
        long,
        long_help = "Also drop every replication slot that is not active (pg_replication_slots.active is false), \
                     as the runbook's `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE \
                     active <> 't'` does, and list them. An active slot (a standby or pg_receivewal streaming \
                     from it) is never dropped, also when it becomes active between listing and dropping: it is \
                     then reported as skipped. Needs a superuser or a role with the REPLICATION attribute."
    )]
    pub drop_inactive_slots: bool,

    /// Only drop the inactive slots; leave repmgr's tables alone (implies --drop-inactive-slots).
    #[arg(
        long,
        long_help = "Only drop the inactive replication slots and leave repmgr's tables alone: the runbook's \
                     \"Drop replication slots\" step, which comes before the restore. Implies \
                     --drop-inactive-slots; the database needs no schema repmgr then."
    )]
    pub slots_only: bool,

    /// Print what would be done and change nothing.
    #[arg(
        long,
        long_help = "Print exactly what would be done — each table with its current row count, each slot that \
                     would be dropped or kept — and, as `would run:` lines, every statement the real run sends after \
                     its checks, in order (BEGIN, SET LOCAL lock_timeout, LOCK TABLE, the row counts, TRUNCATE, \
                     COMMIT, pg_drop_replication_slot), and change nothing: the checks are read-only and the counts \
                     run in a read-only transaction. The refusals are the same as for a real run."
    )]
    pub dry_run: bool,

    /// Print the result as one JSON object on stdout.
    #[arg(
        long,
        long_help = "Print the result as one JSON object on stdout instead of lines: {\"database\", \"dry_run\", \
                     \"tables\": [{\"table\", \"rows\"}], \"truncated\", \"slots\": [{\"slot_name\", \"slot_type\", \
                     \"database\", \"active\", \"action\"}] or null, \"sql\": [...]}; sql holds every statement sent (or, in a \
                     dry run, to be sent) after the checks, in order. action is one of dropped, \
                     would drop, kept (active), skipped (became active), skipped (already gone)."
    )]
    pub json: bool,

    /// Seconds to wait for the locks on repmgr's tables before giving up.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 30,
        long_help = "How long to wait for exclusive locks on repmgr's tables before giving up (PostgreSQL's \
                     lock_timeout). A session that keeps using them — usually repmgrd still running — would \
                     otherwise make the reset wait forever. 0 waits forever."
    )]
    pub lock_timeout: u32,
}

/// The clap definition (for `--help` and the man page).
pub fn command() -> clap::Command {
    Cli::command().arg(a9s_core::pg::help_flag()).mut_arg("dbname", |a| {
        a.help("Database name, conninfo string or postgresql:// URI [default: repmgr_cluster]").long_help(
            "repmgr's database: a name, a libpq conninfo string (`host=10.0.0.5 user=postgres \
             dbname=repmgr_cluster`) or a URI (`postgresql://postgres@10.0.0.5/repmgr_cluster`). Default: \
             repmgr_cluster, also when a conninfo or URI names no database; PGDATABASE is not used, so a \
             shell set up for another database cannot redirect the reset.",
        )
    })
}

/// The man page: NAME, SYNOPSIS and OPTIONS from clap, the rest from man.roff.
#[cfg(feature = "man")]
pub fn man_page() -> String {
    a9s_core::man::render(command(), include_str!("../man.roff"))
}

/// Runs the program; returns the exit status.
pub fn run(args: impl IntoIterator<Item = OsString>) -> Result<i32> {
    let cli: Cli = a9s_core::error::parse_args(command(), args)?;
    let opts = Options {
        truncate: !cli.slots_only,
        drop_inactive_slots: cli.drop_inactive_slots || cli.slots_only,
        dry_run: cli.dry_run,
        lock_timeout_secs: cli.lock_timeout,
    };
    let mut client = connect(&cli.conn)?;
    for w in warnings(&mut client, &opts)? {
        eprintln!("a9s-repmgr-reset: warning: {w}");
    }
    let report = reset(&mut client, &opts)?;
    let mut out = std::io::stdout().lock();
    let text = if cli.json {
        let mut s = serde_json::to_string_pretty(&report).expect("report serializes");
        s.push('\n');
        s
    } else {
        report.to_text()
    };
    out.write_all(text.as_bytes()).and_then(|_| out.flush())?;
    if report.dry_run {
        eprintln!("a9s-repmgr-reset: dry run: nothing was changed");
    }
    match report.failed_slots() {
        0 => Ok(0),
        n => Err(Error::failure(format!(
            "{n} inactive replication slot(s) could not be dropped (see above){}",
            if report.truncated { "; repmgr's tables were emptied" } else { "" }
        ))),
    }
}

/// Connects as libpq would, except that the database is repmgr_cluster unless -d names one.
fn connect(args: &a9s_core::pg::ConnArgs) -> Result<Session> {
    let names_db = match &args.dbname {
        Some(d) => a9s_core::pg::parse_dbname_arg(d)?.iter().any(|(k, v)| k == "dbname" && !v.is_empty()),
        None => false,
    };
    let mut target = a9s_core::pg::Target::resolve(args, "a9s-repmgr-reset")?;
    if !names_db {
        target = target.with_dbname(DEFAULT_DBNAME);
    }
    target.connect()
}

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Empty the tables of schema repmgr.
    pub truncate: bool,
    /// Drop the inactive replication slots.
    pub drop_inactive_slots: bool,
    /// Check and report only; change nothing.
    pub dry_run: bool,
    /// lock_timeout for the table locks, in seconds; 0 waits forever.
    pub lock_timeout_secs: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options { truncate: true, drop_inactive_slots: false, dry_run: false, lock_timeout_secs: 30 }
    }
}

/// A table of schema repmgr and the rows it held (or holds, in a dry run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableRows {
    /// Schema-qualified, quoted where needed, e.g. `repmgr.nodes`.
    pub table: String,
    pub rows: i64,
}

/// What happened to a replication slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Slot {
    pub slot_name: String,
    /// `physical` or `logical`.
    pub slot_type: String,
    /// The database of a logical slot.
    pub database: Option<String>,
    /// Active when listed.
    pub active: bool,
    pub action: SlotAction,
}

/// The outcome for one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotAction {
    Dropped,
    WouldDrop,
    /// Active when listed: left alone.
    KeptActive,
    /// Inactive when listed, active when we tried to drop it: PostgreSQL refused, and it is left alone.
    SkippedBecameActive,
    /// Gone when we tried to drop it (someone else dropped it).
    SkippedGone,
    Failed(String),
}

impl SlotAction {
    fn as_str(&self) -> String {
        match self {
            SlotAction::Dropped => "dropped".into(),
            SlotAction::WouldDrop => "would drop".into(),
            SlotAction::KeptActive => "kept (active)".into(),
            SlotAction::SkippedBecameActive => "skipped (became active)".into(),
            SlotAction::SkippedGone => "skipped (already gone)".into(),
            SlotAction::Failed(m) => format!("failed: {m}"),
        }
    }
}

impl Serialize for SlotAction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_str())
    }
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub database: String,
    pub dry_run: bool,
    /// The tables of schema repmgr with their rows (empty with --slots-only).
    pub tables: Vec<TableRows>,
    /// Whether the tables were emptied (false in a dry run and with --slots-only).
    pub truncated: bool,
    /// The slots, when asked to drop the inactive ones.
    pub slots: Option<Vec<Slot>>,
    /// Every statement sent after the checks (in a dry run: that the real run would send), in order.
    pub sql: Vec<String>,
}

impl Report {
    /// Slots that could not be dropped for a reason other than becoming active or being gone.
    pub fn failed_slots(&self) -> usize {
        self.slots.iter().flatten().filter(|s| matches!(s.action, SlotAction::Failed(_))).count()
    }

    /// The lines printed without --json.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let verb = if self.dry_run { "would empty" } else { "emptied" };
        if self.tables.is_empty() && self.sql.iter().all(|q| !q.starts_with("TRUNCATE")) && self.slots.is_none() {
            s += &format!("schema repmgr in database {} has no tables: nothing to empty\n", self.database);
        }
        for t in &self.tables {
            let rows = if t.rows == 1 { "1 row".to_string() } else { format!("{} rows", t.rows) };
            s += &format!("{verb} {} ({rows})\n", t.table);
        }
        for slot in self.slots.iter().flatten() {
            let mut what = format!("{} slot {}", slot.slot_type, slot.slot_name);
            if let Some(db) = &slot.database {
                what += &format!(" (database {db})");
            }
            s += &match &slot.action {
                SlotAction::Dropped => format!("dropped inactive {what}\n"),
                SlotAction::WouldDrop => format!("would drop inactive {what}\n"),
                SlotAction::KeptActive => format!("kept active {what}\n"),
                SlotAction::SkippedBecameActive => format!("kept {what}: it became active before it was dropped\n"),
                SlotAction::SkippedGone => format!("skipped {what}: someone else dropped it meanwhile\n"),
                SlotAction::Failed(m) => format!("could not drop {what}: {m}\n"),
            };
        }
        if self.slots.as_ref().is_some_and(|v| v.is_empty()) {
            s += "no replication slots\n";
        }
        if self.dry_run {
            for q in &self.sql {
                s += &format!("would run: {q}\n");
            }
        }
        s
    }
}

/// Things worth telling before a reset: other sessions on the database (repmgrd still running?).
pub fn warnings(client: &mut Session, opts: &Options) -> Result<Vec<String>> {
    if !opts.truncate {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT pid, coalesce(usename::text, ''), coalesce(application_name, '') FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend' \
             ORDER BY pid",
            &[],
        )
        .map_err(|e| sql_error("listing the other sessions", &e))?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let who: Vec<String> = rows
        .iter()
        .map(|r| {
            let (pid, user, app): (i32, String, String) = (r.get(0), r.get(1), r.get(2));
            if app.is_empty() {
                format!("pid {pid} ({user})")
            } else {
                format!("pid {pid} ({user}, {app})")
            }
        })
        .collect();
    Ok(vec![format!(
        "{} other session(s) connected to this database: {} — if repmgrd is still running, stop it first (monit \
         stop repmgr)",
        rows.len(),
        who.join(", ")
    )])
}

/// Checks everything, then empties repmgr's tables and/or drops the inactive slots as `opts` says.
///
/// The checks are read-only and run alike in a dry run. What the real run sends after them is one [`Plan`],
/// built once: the real run sends it, a dry run prints it (`would run:`), so the two cannot differ.
pub fn reset(client: &mut Session, opts: &Options) -> Result<Report> {
    pg_admin::refuse_if_in_recovery(client, "a9s-repmgr-reset", a9s_core::error::exit::FAILURE)?;
    let database = pg_admin::current_database(client)?;
    let role = pg_admin::current_role(client)?;
    let mut tables = Vec::new();
    if opts.truncate {
        tables = check_schema(client, &database, &role.name)?;
    }
    if opts.drop_inactive_slots && !(role.superuser || role.replication) {
        return Err(Error::failure(format!(
            "role {} may not drop replication slots (it needs SUPERUSER or REPLICATION): connect as a superuser \
             (-U postgres), or leave out --drop-inactive-slots",
            role.name
        )));
    }
    let mut slots = if opts.drop_inactive_slots { Some(list_slots(client)?) } else { None };
    let plan = Plan::new(&tables, slots.as_deref().unwrap_or_default(), opts);

    let mut report =
        Report { database, dry_run: opts.dry_run, tables: Vec::new(), truncated: false, slots: None, sql: plan.sql() };
    if opts.dry_run {
        report.tables = count_read_only(client, &plan, &tables)?;
        for s in slots.iter_mut().flatten().filter(|s| !s.active) {
            s.action = SlotAction::WouldDrop;
        }
    } else {
        let (counts, truncated) = plan.run(client, &tables, slots.as_deref_mut().unwrap_or_default(), opts)?;
        report.tables = counts;
        report.truncated = truncated;
    }
    report.slots = slots;
    Ok(report)
}

/// A table of schema repmgr, by name (unquoted) and oid.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Table {
    name: String,
    oid: u32,
}

impl Table {
    fn qualified(&self) -> String {
        format!("repmgr.{}", quote_ident_if_needed(&self.name))
    }
}

/// `name` bare when PostgreSQL would read it back unchanged (lower case letters, digits, `_`), else quoted: the
/// report shows `repmgr.nodes`, as psql users know it.
fn quote_ident_if_needed(name: &str) -> String {
    let plain = name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain && !is_reserved(name) {
        name.to_string()
    } else {
        quote_ident(name)
    }
}

fn is_reserved(name: &str) -> bool {
    // Enough to never print an unquoted keyword for the tables repmgr has; anything unusual gets quotes anyway.
    matches!(name, "user" | "table" | "order" | "group" | "select" | "from" | "where" | "all" | "end" | "limit")
}

/// Ordinary tables of schema repmgr (partitions of a partitioned table are ordinary tables too; the parent
/// holds no rows of its own).
const LIST_TABLES: &str =
    "SELECT c.relname::text, c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                           WHERE n.nspname = 'repmgr' AND c.relkind = 'r' ORDER BY c.relname";

/// By the simple query protocol: the server logs the text as it is (the [`Plan`] sends it again).
fn list_tables(client: &mut Session) -> Result<Vec<Table>> {
    let messages =
        client.simple_query(LIST_TABLES).map_err(|e| sql_error("listing the tables of schema repmgr", &e))?;
    let mut tables = Vec::new();
    for m in &messages {
        if let SimpleQueryMessage::Row(r) = m {
            match (r.get(0), r.get(1).and_then(|oid| oid.parse().ok())) {
                (Some(name), Some(oid)) => tables.push(Table { name: name.to_string(), oid }),
                _ => return Err(Error::failure("listing the tables of schema repmgr: the server sent a bad row")),
            }
        }
    }
    Ok(tables)
}

/// Schema repmgr exists, the role may use it and empty each table, and nothing outside the schema references
/// its tables (TRUNCATE would have to empty that too: the runbook's CASCADE would do it silently).
fn check_schema(client: &mut Session, database: &str, role: &str) -> Result<Vec<Table>> {
    let schema = client
        .query_opt("SELECT has_schema_privilege(oid, 'USAGE') FROM pg_namespace WHERE nspname = 'repmgr'", &[])
        .map_err(|e| sql_error("looking for schema repmgr", &e))?;
    let Some(schema) = schema else {
        return Err(Error::failure(format!(
            "database {database} has no schema repmgr: connect to repmgr's database (the default is \
             {DEFAULT_DBNAME}; -d NAME)"
        )));
    };
    if !schema.get::<_, bool>(0) {
        return Err(Error::failure(format!(
            "role {role} may not use schema repmgr (no USAGE privilege): connect as a superuser (-U postgres)"
        )));
    }
    let tables = list_tables(client)?;
    let mut missing = Vec::new();
    for t in &tables {
        let row = client
            .query_one(
                "SELECT has_table_privilege($1::oid, 'SELECT'), has_table_privilege($1::oid, 'TRUNCATE')",
                &[&t.oid],
            )
            .map_err(|e| sql_error("checking privileges", &e))?;
        let (select, truncate): (bool, bool) = (row.get(0), row.get(1));
        let lacks: Vec<&str> =
            [(!select).then_some("SELECT"), (!truncate).then_some("TRUNCATE")].into_iter().flatten().collect();
        if !lacks.is_empty() {
            missing.push(format!("{} on {}", lacks.join(" and "), t.qualified()));
        }
    }
    if !missing.is_empty() {
        return Err(Error::failure(format!(
            "role {role} lacks privileges to empty repmgr's tables ({}): connect as a superuser (-U postgres) or \
             as the owner of the tables",
            missing.join(", ")
        )));
    }
    let refs = client
        .query(
            "SELECT src.oid::regclass::text, con.conname::text, dst.oid::regclass::text FROM pg_constraint con \
             JOIN pg_class src ON src.oid = con.conrelid JOIN pg_namespace sn ON sn.oid = src.relnamespace \
             JOIN pg_class dst ON dst.oid = con.confrelid JOIN pg_namespace dn ON dn.oid = dst.relnamespace \
             WHERE con.contype = 'f' AND dn.nspname = 'repmgr' AND sn.nspname <> 'repmgr' ORDER BY 1, 2",
            &[],
        )
        .map_err(|e| sql_error("looking for foreign keys into schema repmgr", &e))?;
    if !refs.is_empty() {
        let list: Vec<String> = refs
            .iter()
            .map(|r| {
                format!(
                    "{} (constraint {}) references {}",
                    r.get::<_, String>(0),
                    r.get::<_, String>(1),
                    r.get::<_, String>(2)
                )
            })
            .collect();
        return Err(Error::failure(format!(
            "tables outside schema repmgr reference repmgr's tables, and emptying these would empty them too: {}; \
             drop those constraints first, nothing was changed",
            list.join("; ")
        )));
    }
    Ok(tables)
}

/// What one statement of the [`Plan`] is for, so the real run can read its result and name its failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Does {
    Begin,
    LockTimeout,
    Lock,
    /// The tables listed again under the lock: one created or dropped since the checks would be missed or
    /// fail the count.
    CheckTables,
    /// Counts the rows of `tables[i]`.
    Count(usize),
    Truncate,
    Commit,
    /// Drops `slots[i]`.
    DropSlot(usize),
}

/// Every statement the real run sends after its checks, in order, each as sent (simple query protocol, so
/// the server logs exactly this text): printed by `--dry-run`, sent by the real run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    statements: Vec<(Does, String)>,
}

impl Plan {
    fn new(tables: &[Table], slots: &[Slot], opts: &Options) -> Plan {
        let mut statements = Vec::new();
        if opts.truncate && !tables.is_empty() {
            let names: Vec<String> = tables.iter().map(Table::qualified).collect();
            statements.push((Does::Begin, "BEGIN".to_string()));
            let ms = u64::from(opts.lock_timeout_secs) * 1000;
            statements.push((Does::LockTimeout, format!("SET LOCAL lock_timeout = {ms}")));
            statements.push((Does::Lock, format!("LOCK TABLE ONLY {} IN ACCESS EXCLUSIVE MODE", names.join(", "))));
            statements.push((Does::CheckTables, LIST_TABLES.to_string()));
            for (i, name) in names.iter().enumerate() {
                statements.push((Does::Count(i), count_sql(name)));
            }
            // ONLY: a child table that inherits from a repmgr table but lives elsewhere is not repmgr's. Without
            // CASCADE, as checked: nothing outside the schema is emptied.
            statements.push((Does::Truncate, format!("TRUNCATE ONLY {}", names.join(", "))));
            statements.push((Does::Commit, "COMMIT".to_string()));
        }
        for (i, slot) in slots.iter().enumerate().filter(|(_, s)| !s.active) {
            statements.push((Does::DropSlot(i), drop_slot_sql(&slot.slot_name)));
        }
        Plan { statements }
    }

    /// The statements' text, in order.
    pub fn sql(&self) -> Vec<String> {
        self.statements.iter().map(|(_, sql)| sql.clone()).collect()
    }

    /// Sends every statement. Returns the row counts taken under the lock and whether the tables were
    /// emptied. A failure inside the transaction rolls it back: the tables are emptied all together or not at
    /// all.
    fn run(
        &self,
        client: &mut Session,
        tables: &[Table],
        slots: &mut [Slot],
        opts: &Options,
    ) -> Result<(Vec<TableRows>, bool)> {
        let mut counts = Vec::with_capacity(tables.len());
        let mut in_transaction = false;
        let mut truncated = false;
        for (does, sql) in &self.statements {
            let step = match *does {
                Does::Begin => {
                    in_transaction = true;
                    client.batch_execute(sql).map_err(|e| sql_error("starting the transaction", &e))
                }
                Does::LockTimeout => client.batch_execute(sql).map_err(|e| sql_error("setting lock_timeout", &e)),
                Does::Lock => client.batch_execute(sql).map_err(|e| {
                    if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
                        Error::failure(format!(
                            "could not lock repmgr's tables within {} s: another session is using them — is \
                             repmgrd still running? stop it first (monit stop repmgr); nothing was changed",
                            opts.lock_timeout_secs
                        ))
                    } else {
                        sql_error("locking repmgr's tables", &e)
                    }
                }),
                Does::CheckTables => list_tables(client).and_then(|now| {
                    if now == tables {
                        Ok(())
                    } else {
                        Err(Error::failure(
                            "the tables of schema repmgr changed while a9s-repmgr-reset started: run it again; \
                             nothing was changed",
                        ))
                    }
                }),
                Does::Count(i) => count_rows(client, sql, &tables[i].qualified())
                    .map(|rows| counts.push(TableRows { table: tables[i].qualified(), rows })),
                Does::Truncate => client
                    .batch_execute(sql)
                    .map_err(|e| sql_error("emptying repmgr's tables (nothing was changed)", &e)),
                Does::Commit => {
                    let r = client.batch_execute(sql).map_err(|e| sql_error("committing (nothing was changed)", &e));
                    in_transaction = false;
                    truncated = r.is_ok();
                    r
                }
                Does::DropSlot(i) => drop_slot(client, &slots[i].slot_name).map(|a| slots[i].action = a),
            };
            if let Err(e) = step {
                if in_transaction {
                    let _ = client.batch_execute("ROLLBACK");
                }
                return Err(e);
            }
        }
        Ok((counts, truncated))
    }
}

fn count_sql(qualified: &str) -> String {
    format!("SELECT count(*) FROM ONLY {qualified}")
}

fn drop_slot_sql(name: &str) -> String {
    format!("SELECT pg_drop_replication_slot({})", quote_literal(name))
}

/// The first column of the first row of a simple query, as text.
fn first_value(client: &mut Session, sql: &str) -> std::result::Result<Option<String>, tokio_postgres::Error> {
    let messages = client.simple_query(sql)?;
    Ok(messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    }))
}

fn count_rows(client: &mut Session, sql: &str, name: &str) -> Result<i64> {
    let what = || format!("counting the rows of {name}");
    first_value(client, sql)
        .map_err(|e| sql_error(&what(), &e))?
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::failure(format!("{}: the server returned no count", what())))
}

/// A dry run's counts: the plan's count statements in a read-only transaction, without the lock.
fn count_read_only(client: &mut Session, plan: &Plan, tables: &[Table]) -> Result<Vec<TableRows>> {
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    client.batch_execute("BEGIN READ ONLY").map_err(|e| sql_error("starting the read-only transaction", &e))?;
    let mut counts = Vec::with_capacity(tables.len());
    for (does, sql) in &plan.statements {
        if let Does::Count(i) = *does {
            match count_rows(client, sql, &tables[i].qualified()) {
                Ok(rows) => counts.push(TableRows { table: tables[i].qualified(), rows }),
                Err(e) => {
                    let _ = client.batch_execute("ROLLBACK");
                    return Err(e);
                }
            }
        }
    }
    client.batch_execute("ROLLBACK").map_err(|e| sql_error("ending the read-only transaction", &e))?;
    Ok(counts)
}

/// The replication slots, each with the action [`SlotAction::KeptActive`] until something is done to it.
fn list_slots(client: &mut Session) -> Result<Vec<Slot>> {
    let rows = client
        .query(
            "SELECT slot_name::text, slot_type, database::text, active FROM pg_replication_slots ORDER BY slot_name",
            &[],
        )
        .map_err(|e| sql_error("listing the replication slots", &e))?;
    Ok(rows
        .iter()
        .map(|r| Slot {
            slot_name: r.get(0),
            slot_type: r.get(1),
            database: r.get(2),
            active: r.get(3),
            action: SlotAction::KeptActive,
        })
        .collect())
}

/// Drops one slot unless it is active. PostgreSQL refuses to drop an active slot (it does not wait), which is
/// what makes this safe when a standby connects between listing and dropping.
pub fn drop_slot(client: &mut Session, name: &str) -> Result<SlotAction> {
    match client.batch_execute(&drop_slot_sql(name)) {
        Ok(()) => Ok(SlotAction::Dropped),
        Err(e) if e.code() == Some(&SqlState::OBJECT_IN_USE) => Ok(SlotAction::SkippedBecameActive),
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_OBJECT) => Ok(SlotAction::SkippedGone),
        Err(e) if is_session_lost(&e, false) => Err(sql_error(&format!("dropping slot {name}"), &e)),
        Err(e) => Ok(SlotAction::Failed(describe(&e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted_only_when_needed() {
        assert_eq!(quote_ident_if_needed("nodes"), "nodes");
        assert_eq!(quote_ident_if_needed("monitoring_history"), "monitoring_history");
        assert_eq!(quote_ident_if_needed("Nodes"), "\"Nodes\"");
        assert_eq!(quote_ident_if_needed("a b"), "\"a b\"");
        assert_eq!(quote_ident_if_needed("1x"), "\"1x\"");
        assert_eq!(quote_ident_if_needed("user"), "\"user\"");
    }

    #[test]
    fn text_report() {
        let r = Report {
            database: "repmgr_cluster".into(),
            dry_run: true,
            tables: vec![
                TableRows { table: "repmgr.nodes".into(), rows: 1 },
                TableRows { table: "repmgr.events".into(), rows: 7 },
            ],
            truncated: false,
            slots: Some(vec![Slot {
                slot_name: "s1".into(),
                slot_type: "physical".into(),
                database: None,
                active: false,
                action: SlotAction::WouldDrop,
            }]),
            sql: vec![
                "TRUNCATE ONLY repmgr.events, repmgr.nodes".into(),
                "SELECT pg_drop_replication_slot('s1')".into(),
            ],
        };
        let t = r.to_text();
        assert!(t.contains("would empty repmgr.nodes (1 row)\n"), "{t}");
        assert!(t.contains("would empty repmgr.events (7 rows)\n"), "{t}");
        assert!(t.contains("would drop inactive physical slot s1\n"), "{t}");
        assert!(t.contains("would run: TRUNCATE ONLY repmgr.events, repmgr.nodes\n"), "{t}");
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["slots"][0]["action"], "would drop");
    }

    #[test]
    fn help_parses() {
        command().debug_assert();
    }

    #[cfg(feature = "man")]
    #[test]
    fn man_page_sections_in_order() {
        let page = man_page();
        let at = |s: &str| page.find(s).unwrap_or_else(|| panic!("no {s}"));
        let order = [
            ".SH NAME",
            ".SH SYNOPSIS",
            ".SH DESCRIPTION",
            ".SH OPTIONS",
            ".SH \"EXIT STATUS\"",
            ".SH ENVIRONMENT",
            ".SH EXAMPLES",
            ".SH \"SEE ALSO\"",
        ];
        assert!(order.windows(2).all(|w| at(w[0]) < at(w[1])), "{page}");
        assert!(page.contains("drop\\-inactive\\-slots"), "{page}");
    }
}
