//! What a restore reports: exit statuses, each error with its line, the summary (text and JSON).

use super::*;

impl Runner<'_> {
    pub(super) fn summary_text(&self) -> String {
        let s = &self.summary;
        let dbs: Vec<String> = s.databases.iter().map(|d| quote_conninfo_value(d)).collect();
        let sessions = match dbs.len() {
            0 => "no session".to_string(),
            1 => format!("1 session ({})", dbs[0]),
            n => format!("{n} sessions ({})", dbs.join(", ")),
        };
        let mut t = format!(
            "{PROG}: {sessions}, {} statements, {} COPY with {} rows, {} in {} lines, {:.1} s; {} error{}",
            s.statements,
            s.copy_commands,
            s.rows_copied,
            human_bytes(s.bytes_read),
            s.lines_read,
            s.elapsed_seconds,
            s.errors,
            if s.errors == 1 { "" } else { "s" },
        );
        if s.expected_errors > 0 {
            t += &format!(" ({} expected, not counted)", s.expected_errors);
        }
        if let Some(r) = &s.resume {
            t += &format!(
                "; resumed after line {} (skipped {} in {:.1} s)",
                r.resumed_after_line,
                human_bytes(r.skipped_bytes),
                r.skip_seconds
            );
        }
        t += match s.exit_code {
            exit::OK => " — restore complete",
            exit::ERRORS if self.ending.ran_to_end => " — ran to the end with errors",
            exit::ERRORS => " — failed: incomplete",
            exit::INTERRUPTED => " — interrupted (SIGINT): incomplete",
            exit::TERMINATED => " — interrupted (SIGTERM): incomplete",
            exit::CONNECTION => " — connection failed or lost: incomplete",
            exit::STOPPED => " — stopped at the first error: incomplete",
            _ => " — failed",
        };
        t
    }
}

/// a9s-pgrestore's exit statuses: psql's, with 1 for "ran to the end with errors", and the shared ones of
/// [`a9s_core::error::exit`] (a lost connection is 4 there, where psql says 2, which is a usage error here).
pub mod exit {
    use a9s_core::error::exit as shared;
    /// Every statement succeeded (expected errors aside).
    pub const OK: i32 = shared::OK;
    /// The script ran to its end, with errors; or it could not run and will not until something is fixed.
    pub const ERRORS: i32 = shared::FAILURE;
    /// The server could not be reached, a `\connect` could not reach it, or the connection was lost: retry.
    pub const CONNECTION: i32 = shared::UNREACHABLE;
    /// Stopped at the first error (`--on-error-stop`), or before what psql would run otherwise.
    pub const STOPPED: i32 = shared::STOPPED;
    /// Ended by SIGINT or SIGTERM, after the summary.
    pub const INTERRUPTED: i32 = shared::INTERRUPTED;
    pub const TERMINATED: i32 = shared::TERMINATED;
}

/// Errors kept in the JSON summary (all are printed).
pub(super) const MAX_ERROR_RECORDS: usize = 1000;

/// One error, for `--json-summary`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ErrorRecord {
    pub line: u64,
    pub database: String,
    pub sqlstate: Option<String>,
    pub message: String,
    /// The statement's first line (shortened), or the meta-command.
    pub statement: String,
}

/// What happened, printed at the end and written by `--json-summary`.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Summary {
    /// `ok`, `errors`, `connection_failed`, `connection_lost`, `stopped` (`--on-error-stop`), `interrupted` (SIGINT,
    /// SIGTERM), or `failed`.
    pub status: String,
    pub exit_code: i32,
    /// Every session in order: the first database, then one per `\connect`.
    pub databases: Vec<String>,
    /// Statements that succeeded (COPY included).
    pub statements: u64,
    pub statements_failed: u64,
    pub copy_commands: u64,
    pub rows_copied: u64,
    /// COPY commands loaded over the `--jobs` sessions at once.
    pub parallel_copies: u64,
    /// Index builds (`CREATE INDEX`, `ADD PRIMARY KEY`/`UNIQUE`) run on the `--jobs` sessions.
    pub parallel_indexes: u64,
    pub bytes_read: u64,
    pub lines_read: u64,
    /// Errors counted against the restore.
    pub errors: u64,
    /// Errors a pg_dumpall provokes on purpose (`CREATE ROLE` of an existing role); not counted.
    pub expected_errors: u64,
    pub elapsed_seconds: f64,
    /// The last input line read.
    pub last_line: u64,
    /// The first errors in detail.
    pub error_list: Vec<ErrorRecord>,
    /// `--checkpoint`: where this run resumed a restore that had died (absent on a first run).
    pub resume: Option<ResumeReport>,
}

/// Where a run with `--checkpoint` resumed, for the summary.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ResumeReport {
    pub checkpoint: String,
    /// Everything up to the end of this line was restored before; the run went on from the next.
    pub resumed_after_line: u64,
    /// Bytes of the script read again and skipped (nothing run), and how long that took.
    pub skipped_bytes: u64,
    pub skip_seconds: f64,
    /// The line the interrupted run had read when it stopped, if it could record it.
    pub interrupted_at_line: Option<u64>,
    /// Statements that may have run before the restore died and met what they create: counted as done.
    pub in_flight_done: u64,
}

/// A server notice as psql prints it, with the database and the line of the statement that caused it.
pub(super) fn notice_text(db: &str, line: u64, n: &tokio_postgres::error::DbError) -> String {
    let mut msg = format!("{PROG}: {db} line {line}: {}: {}", n.severity(), n.message());
    if let Some(d) = n.detail() {
        msg += &format!("; DETAIL: {d}");
    }
    msg
}

impl Runner<'_> {
    /// What to do after the connection was lost: with `--checkpoint`, the same command resumes.
    pub(super) fn loss_advice(&self) -> &'static str {
        if self.has_checkpoint() {
            "check the server's log, then run the same command again: it resumes from the checkpoint"
        } else {
            "check the server's log, then restore again into a fresh cluster"
        }
    }
}
