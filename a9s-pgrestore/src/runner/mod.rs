//! Runs a psql script (a pg_dumpall) over `postgres` sessions the way psql does: line by line through the
//! lexer, each statement sent alone with the simple query protocol, `COPY … FROM stdin` data streamed through
//! copy-in, the few meta-commands a dump contains honoured and every other one refused.
//!
//! Generic over the input (`impl BufRead`) so tests can drive it; the CLI in lib.rs only wires options.

use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use a9s_core::io::human_bytes;
use a9s_core::pg::error::SqlError;
use a9s_core::pg::Session;
use a9s_core::pg::{quote_conninfo_value, Reconnect, Target};
use a9s_core::progress::{Mode, Progress};
use a9s_core::Result;
use serde::Serialize;
use tokio_postgres::error::SqlState;

use crate::classify::{self, Copy};
use crate::encoding::Encoding;
use crate::lexer::{Item, Lexer};
use crate::lines;
use crate::outcome::{CopyOutcome, CopyResult, FeedStop};
use crate::parallel::{self, ChunkBuilder, Feed, Pool};

pub(crate) mod conn;
mod copy;
mod jobs;
mod meta;
mod report;
mod resume;
mod script;
mod signals;
#[cfg(test)]
mod tests;

use conn::{Conn, Connector, NoSession};
use copy::{CopyStatement, Prefetched};
use jobs::PendingIndex;
pub use report::{exit, ErrorRecord, ResumeReport, Summary};
use report::{notice_text, MAX_ERROR_RECORDS};
use script::{DataPiece, Script};

const PROG: &str = "a9s-pgrestore";

/// Catches SIGINT and SIGTERM from now on: a restore then stops at the next line (its statement in flight
/// cancelled), prints its summary and ends with 130 or 143. Called by the program, not by tests.
pub fn catch_signals() {
    signals::install();
}

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Stop at the first error (psql's `ON_ERROR_STOP`).
    pub on_error_stop: bool,
    /// No notes, no summary; errors only.
    pub quiet: bool,
    /// Progress: a line on the terminal, log lines, or nothing (`a9s_core::progress::decide`).
    pub progress: Mode,
    /// Size of the input when known (a file), for the progress line.
    pub total_bytes: Option<u64>,
    /// The input is standard input: without `total_bytes`, the progress line takes the backup's share and ETA
    /// from the pipe's first program (`a9s_core::pipeline`).
    pub follow_stdin: bool,
    /// `PGCLIENTENCODING`: the input encoding of every session until the script sets one. Otherwise, as
    /// psql in a script, the database's encoding.
    pub client_encoding: Option<Encoding>,
    /// `--jobs`: sessions that load a large COPY, and build consecutive indexes, at once; 0 or 1: everything on
    /// the one session, as psql.
    pub jobs: usize,
    /// Size of the chunks a COPY's data is dealt out in with `jobs` > 1 (0: [`parallel::DEFAULT_CHUNK_BYTES`]).
    pub chunk_bytes: usize,
    /// `--checkpoint FILE`: record the committed point as the restore goes, and resume from it.
    pub checkpoint: Option<std::path::PathBuf>,
}

/// Steps before and after the script (issue 4's cluster steps plug in here).
pub trait Hooks {
    /// On the first session, before the first line of the script is read.
    fn before_restore(&mut self, _client: &mut Session, _target: &Target) -> Result<()> {
        Ok(())
    }
    /// After the script, whatever its outcome (check `summary.exit_code`); `target` is the first session's.
    fn after_restore(&mut self, _target: &Target, _summary: &Summary) -> Result<()> {
        Ok(())
    }
}

/// No steps.
pub struct NoHooks;
impl Hooks for NoHooks {}

enum Flow {
    Go,
    /// psql throws the rest of the line away after a meta-command that failed (`HandleSlashCmds`).
    SkipRestOfLine,
    Stop(i32),
}

use crate::encoding::InputEncoding;

/// A restore under way. Its state is grouped by concern: where a new piece of state goes is named by the
/// group's doc comment (the script's reading in [`Script`], the script's session settings in
/// [`SessionTrack`], how the restore ended in [`Ending`]).
pub struct Runner<'o> {
    opts: &'o Options,
    /// The first session's target; `\connect` keeps its server and user.
    base: Target,
    target: Target,
    /// The current session: the server's, or [`NoSession`] between sessions.
    conn: Box<dyn Conn>,
    /// How sessions are opened: to the server, or in unit tests a scripted double.
    connector: Connector,
    /// The script being read (given to [`run`](Self::run)): its input, line and byte counts, encoding.
    script: Script<'o>,
    lexer: Lexer,
    /// A line of the statement being collected could not be transcoded: (line, reason).
    poisoned: Option<(u64, String)>,
    /// What the script set on the current session.
    session: SessionTrack,
    summary: Summary,
    progress: Progress,
    start: Instant,
    /// Where the server's notices are attributed.
    notices: Notices,
    /// `--jobs`: the other sessions on the current database, opened at its first parallel step.
    pool: Option<Pool<PendingIndex>>,
    /// `--checkpoint`: the committed point, recorded as the restore goes.
    ckpt: Option<Box<resume::Ckpt>>,
    /// How the restore ended, for its status and the advice given.
    ending: Ending,
}

/// What the script set that decides how its rest is read and run: a `--jobs` session is given the settings,
/// and `--checkpoint` records them and the `\restrict` state for a resumed session. The settings begin anew
/// with each session; `\restrict` is psql's own state and lasts across `\connect`.
#[derive(Default)]
struct SessionTrack {
    /// Session settings made by the script on the current session: replayed on the `--jobs` sessions, and
    /// recorded by `--checkpoint` for a resumed session.
    settings: Vec<(String, String)>,
    /// `\restrict`: its key while meta-commands are refused.
    restrict: Option<String>,
    /// The last line at whose end standard_conforming_strings had changed: a statement begun on or before it
    /// was split in part with the old value.
    scs_changed_at: u64,
}

/// Where the server's notices are attributed (shared with the notice callback of each session).
#[derive(Default)]
struct Notices {
    /// The line of the statement running.
    line: Arc<AtomicU64>,
    /// The database, as messages name it.
    db: Arc<Mutex<String>>,
}

/// How the restore ended, beyond its exit status: the summary's status and the advice at the end follow it.
#[derive(Default)]
struct Ending {
    /// The first connection or a `\connect` failed (rather than a session being lost).
    connect_failed: bool,
    /// The script was read to its end, its closing line there if it has a header.
    ran_to_end: bool,
    /// A signal's stop was said (once).
    signal_reported: bool,
    /// The restore stopped at something in the script itself (a NUL byte): a resume would stop there again.
    dead_end: bool,
}

impl<'o> Runner<'o> {
    pub fn new(target: Target, opts: &'o Options) -> Self {
        Runner {
            opts,
            base: target.clone(),
            target,
            conn: Box::new(NoSession),
            connector: conn::server_connector(),
            // The input comes with `run`.
            script: Script::new(Box::new(std::io::empty())),
            lexer: Lexer::new(),
            poisoned: None,
            session: SessionTrack::default(),
            summary: Summary::default(),
            progress: Progress::with_mode(PROG, opts.total_bytes, opts.progress).follow_stdin(opts.follow_stdin),
            start: Instant::now(),
            notices: Notices::default(),
            pool: None,
            ckpt: None,
            ending: Ending::default(),
        }
    }

    /// Opens sessions with `connector` instead of connecting to the server (unit tests).
    #[cfg(test)]
    pub(crate) fn with_connector(mut self, connector: Connector) -> Self {
        self.connector = connector;
        self
    }

    /// The script's session settings on the current session, in order (`SET …`, `RESET …`,
    /// `SELECT pg_catalog.set_config(…, false)`; the last per setting): what another session of the same
    /// database must replay to read the script the same way.
    pub fn session_settings(&self) -> impl Iterator<Item = &str> {
        self.session.settings.iter().map(|(_, sql)| sql.as_str())
    }

    /// Runs the whole script; every message is printed on the way. The summary carries the exit status.
    pub fn run<R: BufRead>(mut self, input: &'o mut R, hooks: &mut dyn Hooks) -> Summary {
        self.script = Script::new(Box::new(signals::Interruptible(input)));
        let mut code = match self.opts.checkpoint.clone() {
            None => self.run_script(hooks),
            Some(path) => match self.open_checkpoint(&path) {
                Ok(resume::Opened::Run) => self.run_script(hooks),
                Ok(resume::Opened::Complete(code)) => {
                    self.summary.exit_code = code;
                    self.summary.status = "already_complete".into();
                    return self.summary;
                }
                // Refused before anything was connected to or run: no summary of a restore that never began.
                Err(e) => {
                    eprintln!("{PROG}: {}", e.message);
                    self.summary.exit_code = e.code;
                    self.summary.status = if e.code == exit::STOPPED { "stopped" } else { "failed" }.into();
                    return self.summary;
                }
            },
        };
        code = self.close_checkpoint(code, self.ending.ran_to_end);
        self.progress.finish();
        self.summary.exit_code = code;
        self.summary.last_line = self.script.line();
        self.summary.lines_read = self.script.line();
        self.summary.bytes_read = self.script.bytes();
        self.summary.elapsed_seconds = self.start.elapsed().as_secs_f64();
        self.pool = None;
        self.conn = Box::new(NoSession);
        if let Err(e) = hooks.after_restore(&self.base, &self.summary) {
            eprintln!("{PROG}: {}", e.message);
            if code == exit::OK {
                code = e.code;
            }
        }
        self.summary.exit_code = code;
        self.summary.status = match code {
            exit::OK => "ok",
            _ if self.ending.connect_failed => "connection_failed",
            _ if self.checkpoint_refused() => "failed",
            exit::ERRORS if self.summary.errors > 0 => "errors",
            exit::CONNECTION => "connection_lost",
            exit::STOPPED => "stopped",
            exit::INTERRUPTED | exit::TERMINATED => "interrupted",
            _ => "failed",
        }
        .to_string();
        if !self.opts.quiet {
            eprintln!("{}", self.summary_text());
        }
        if matches!(code, exit::INTERRUPTED | exit::TERMINATED) && self.has_checkpoint() {
            eprintln!(
                "{PROG}: to resume, feed the same backup again from its start (the same pipe) into: {}",
                signals::command_line()
            );
        }
        self.summary
    }

    fn run_script(&mut self, hooks: &mut dyn Hooks) -> i32 {
        let target = self.base.clone();
        match self.open(&target) {
            Ok(conn) => self.adopt(conn, target),
            Err(e) => {
                eprintln!("{PROG}: {}", e.message);
                self.ending.connect_failed = true;
                return e.code;
            }
        }
        // Only a server has these (a test double has no cluster).
        if let Some(session) = self.conn.session() {
            // A standby takes no writes: refuse before reading a byte of the script, not statement by statement.
            if let Err(e) = a9s_core::pg::admin::refuse_if_in_recovery(session, PROG, exit::ERRORS) {
                eprintln!("{PROG}: {}", e.message);
                self.ending.connect_failed = true;
                return e.code;
            }
            if let Err(e) = hooks.before_restore(session, &self.base) {
                eprintln!("{PROG}: {}", e.message);
                return e.code;
            }
        }
        if let Flow::Stop(code) = self.start_checkpoint() {
            return code;
        }

        let mut line = Vec::with_capacity(64 * 1024);
        let mut items = Vec::new();
        loop {
            line.clear();
            match self.read_line(&mut line) {
                Ok(0) => break,
                Ok(_) => {}
                Err(code) => return code,
            }
            if let Some(at) = lines::find_nul(&line) {
                // Index builds already running on --jobs sessions are reported first, as before any stop.
                if let Flow::Stop(code) = self.barrier() {
                    return code;
                }
                self.stop_at_nul(
                    self.script.line(),
                    at as u64 + 1,
                    "nothing of this line, nor of a statement it ends, was sent",
                );
                return exit::STOPPED;
            }
            if let Some(reason) = self.script.decode(&mut line) {
                self.poisoned.get_or_insert((self.script.line(), reason));
            }
            let mut from = 0;
            loop {
                let next = self.lexer.push_part(&line, from, &mut items);
                let mut skip_rest = false;
                for item in items.drain(..) {
                    match self.handle(item) {
                        Flow::Go => {}
                        Flow::SkipRestOfLine => skip_rest = true,
                        Flow::Stop(code) => return code,
                    }
                }
                match next {
                    Some(at) if !skip_rest => from = at,
                    _ => break,
                }
            }
            // psql reads standard_conforming_strings from the server when it starts lexing a line.
            if let Flow::Stop(code) = self.follow_server_settings() {
                return code;
            }
            // COPY data lines bypass the lexer; it must still count them for its line numbers.
            let lag = self.script.line().saturating_sub(self.lexer.line_number());
            if lag > 0 {
                self.lexer.skip_lines(lag);
            }
            if let Flow::Stop(code) = self.commit_point() {
                return code;
            }
        }
        self.lexer.finish(&mut items);
        for item in items.drain(..) {
            if let Flow::Stop(code) = self.handle(item) {
                return code;
            }
        }
        if let Flow::Stop(code) = self.barrier() {
            return code;
        }
        self.ending.ran_to_end = self.script.missing_trailer().is_none();
        if let Some(trailer) = self.script.missing_trailer() {
            let msg = format!(
                "input ended at line {} before the dump's last line \"{}\": the dump is truncated (did the program \
                 feeding the pipe fail?); the restore is incomplete",
                self.script.line(),
                String::from_utf8_lossy(trailer)
            );
            self.error(self.script.line(), None, msg, String::new());
            if self.opts.on_error_stop {
                return exit::STOPPED;
            }
        }
        if self.summary.errors > 0 {
            exit::ERRORS
        } else {
            exit::OK
        }
    }

    /// Takes the server's word for the settings that change how the script is read, as psql does from the
    /// server's ParameterStatus reports, however they changed (SET, set_config, a DO block, a function, the
    /// role's or database's own setting at `\connect`).
    fn follow_server_settings(&mut self) -> Flow {
        // Every server reports it at start-up; without a session there is nothing to follow.
        let Some(scs) = self.conn.parameter("standard_conforming_strings") else { return Flow::Go };
        // psql: on only if the server says "on".
        self.split_strings_as(scs == "on");
        // The session's client_encoding stays UTF8 (the input is converted instead, see `set_input_encoding`);
        // if the script changed it some other way the server now reads our UTF-8 as something else.
        match self.conn.parameter("client_encoding") {
            Some(e) if !e.eq_ignore_ascii_case("UTF8") => {
                let msg = format!(
                    "the script changed client_encoding to {e} in a way a9s-pgrestore does not follow (only SET \
                     client_encoding and \\encoding are followed); the restore stopped here, nothing after line {} \
                     ran",
                    self.script.line()
                );
                self.stop(self.script.line(), msg, String::new())
            }
            _ => Flow::Go,
        }
    }

    /// The lexer splits literals with standard_conforming_strings `on` from here on; a change is remembered
    /// (see `scs_changed_at`).
    fn split_strings_as(&mut self, on: bool) {
        if on != self.lexer.standard_conforming_strings() {
            self.session.scs_changed_at = self.script.line();
        }
        self.lexer.set_standard_conforming_strings(on);
    }

    /// Stops the restore (exit 3) because going on could run what psql would not: reported as an error.
    fn stop(&mut self, line: u64, message: String, statement: String) -> Flow {
        self.error(line, None, message, statement);
        Flow::Stop(exit::STOPPED)
    }

    /// Connects to `target`, printing the server's notices and warnings as psql does (on stderr, with the
    /// line of the statement that caused them).
    fn open(&mut self, target: &Target) -> Result<Box<dyn Conn>> {
        *self.notices.db.lock().expect("notice db") = quote_conninfo_value(&target.dbname);
        let (line, db, out) = (self.notices.line.clone(), self.notices.db.clone(), self.progress.printer());
        let client = (self.connector)(
            target,
            Arc::new(move |n| {
                let db = db.lock().map(|d| d.clone()).unwrap_or_default();
                // Under the progress line's lock: a notice during a long statement does not garble its line.
                out.line(&notice_text(&db, line.load(Ordering::Relaxed), n));
            }),
        )?;
        Ok(client)
    }

    /// Makes `client` the current session: learns its encoding and string syntax, as psql does on connect.
    fn adopt(&mut self, client: Box<dyn Conn>, target: Target) {
        if let Some(token) = client.cancel_token() {
            signals::watch_session(&target, token);
        }
        // Both are reported by the server at start-up (ParameterStatus).
        let server_encoding = client.parameter("server_encoding").unwrap_or_default().to_string();
        let scs = client.parameter("standard_conforming_strings") == Some("on");
        self.script.set_encoding(match self.opts.client_encoding {
            Some(e) => Ok(e),
            None => Encoding::parse(&server_encoding).ok_or(server_encoding),
        });
        self.split_strings_as(scs);
        self.progress.event(format!("database {} begins at line {}", target.dbname, self.script.line() + 1));
        self.summary.databases.push(target.dbname.clone());
        self.progress.set_detail(format!("database {}", target.dbname));
        self.conn = client;
        self.target = target;
        self.session.settings.clear();
        self.checkpoint_new_session();
    }

    fn handle(&mut self, item: Item) -> Flow {
        if let Some(code) = self.signalled() {
            return Flow::Stop(code);
        }
        // With --jobs, consecutive index builds (CREATE INDEX, ADD PRIMARY KEY/UNIQUE) run at once; anything else
        // waits for them to end.
        let concurrent =
            matches!(&item, Item::Sql { text, .. } if self.opts.jobs > 1 && classify::is_index_build(text));
        if !concurrent {
            if let Flow::Stop(code) = self.barrier() {
                return Flow::Stop(code);
            }
        }
        match item {
            Item::Meta { name, args, line } => {
                self.checkpoint_ran(false);
                self.poisoned = None;
                self.meta(&name, &args, line)
            }
            Item::Sql { first_line, variable: Some(var), .. } => {
                let msg = format!(
                    "the statement refers to the psql variable {var}, which psql would replace by its own value; \
                     a9s-pgrestore runs only what it can run exactly as psql, so the restore stopped here, before \
                     this statement"
                );
                self.stop(first_line, msg, String::new())
            }
            Item::Sql { text, first_line, variable: None } => {
                self.enter_statement(&text, first_line);
                self.statement(&text, first_line)
            }
        }
    }

    // ----- errors -----

    fn db(&self) -> String {
        quote_conninfo_value(&self.target.dbname)
    }

    /// Prints and counts an error; `--on-error-stop` turns it into a stop.
    fn fail(&mut self, line: u64, sqlstate: Option<String>, message: String, statement: String) -> Flow {
        self.error(line, sqlstate, message, statement);
        if self.opts.on_error_stop {
            eprintln!("{PROG}: stopped at line {line} (--on-error-stop); the restore is incomplete");
            Flow::Stop(exit::STOPPED)
        } else {
            Flow::Go
        }
    }

    fn error(&mut self, line: u64, sqlstate: Option<String>, message: String, statement: String) {
        self.progress.finish();
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{PROG}: {} line {line}: {message}", self.db());
        if !statement.is_empty() {
            let _ = writeln!(err, "    in: {statement}");
        }
        drop(err);
        self.summary.errors += 1;
        if self.summary.error_list.len() < MAX_ERROR_RECORDS {
            self.summary.error_list.push(ErrorRecord {
                line,
                database: self.target.dbname.clone(),
                sqlstate,
                message,
                statement,
            });
        }
    }

    fn note(&mut self, line: u64, message: &str) {
        if !self.opts.quiet {
            self.progress.finish();
            eprintln!("{PROG}: {} line {line}: note: {message}", self.db());
        }
    }

    /// Whether an error means the session is gone.
    fn is_lost(&self, e: &SqlError) -> bool {
        e.is_session_lost(self.conn.is_closed())
    }

    /// SIGINT or SIGTERM was caught: said once, with the line reached; the status to stop with.
    fn signalled(&mut self) -> Option<i32> {
        let (name, code) = signals::describe(signals::caught()?);
        if !self.ending.signal_reported {
            self.ending.signal_reported = true;
            self.progress.finish();
            eprintln!(
                "{PROG}: {name} received at line {} of the input; the restore stopped there and is incomplete",
                self.script.line()
            );
        }
        Some(code)
    }

    fn lost(&mut self, e: &SqlError, line: u64) -> Flow {
        self.progress.finish();
        eprintln!(
            "{PROG}: connection to {} lost at line {line} (last line read: {}): {}; the restore is incomplete — {}",
            self.target.describe(),
            self.script.line(),
            e.describe(),
            self.loss_advice()
        );
        Flow::Stop(exit::CONNECTION)
    }

    /// A statement failed: expected, counted, a stop, or a lost connection.
    fn statement_error(&mut self, e: &SqlError, line: u64, first: &str, text: &[u8]) -> Flow {
        // Cancelled by the signal, or failed while it came: the signal's stop, not an error of the script.
        if let Some(code) = self.signalled() {
            return Flow::Stop(code);
        }
        if e.is_out_of_step() && !self.conn.is_closed() {
            // The server split the query otherwise than the lexer (whose string syntax is fixed for the whole
            // line, as psql's) and met a COPY in it. psql would stream the next lines as that COPY's data; the
            // session is dropped unused, so the server rolls back what of the query is still uncommitted.
            self.conn = Box::new(NoSession);
            let msg = "the server started a COPY in the middle of this query (it split the query otherwise than \
                       psql's line-by-line reading, e.g. after standard_conforming_strings changed on the line): \
                       psql would stream the following lines as its data, which a9s-pgrestore does not reproduce; \
                       the restore stopped here"
                .to_string();
            return self.stop(line, msg, first.to_string());
        }
        if self.is_lost(e) {
            return self.lost(e, line);
        }
        if let Some(state) = e.sqlstate() {
            if self.in_flight(line) && classify::already_done(state, text) {
                self.done_before(line, e);
                return Flow::Go;
            }
        }
        self.summary.statements_failed += 1;
        if e.sqlstate() == Some(SqlState::DUPLICATE_OBJECT.code()) {
            if let Some(role) = classify::bare_create_role(text) {
                self.summary.expected_errors += 1;
                self.summary.statements_failed -= 1;
                self.note(line, &format!("role \"{role}\" exists already (expected with pg_dumpall: the ALTER ROLE that follows sets it up)"));
                return Flow::Go;
            }
        }
        self.fail(line, e.sqlstate().map(str::to_string), e.describe(), first.to_string())
    }

    // ----- statements -----

    fn statement(&mut self, text: &[u8], first_line: u64) -> Flow {
        let (skipped, first) = classify::first_line(text, 100);
        let line = first_line + skipped;
        if let Some((bad, reason)) = self.poisoned.take() {
            if let Some(Copy::FromStdin(_)) = classify::copy_kind(text) {
                let msg = format!(
                    "not executed: line {bad}: {reason}; psql would send it, have it refused and run the COPY's data \
                     lines as SQL: the restore stopped here"
                );
                return self.stop(line, msg, first);
            }
            return self.fail(line, None, format!("not executed: line {bad}: {reason}"), first);
        }
        if classify::is_compound_with_copy(text) {
            let msg = "a COPY joined to other statements with \\; (sent as one query): psql would stream its data \
                       from the middle of the query, which a9s-pgrestore does not reproduce; the restore stopped \
                       here, before this statement"
                .to_string();
            return self.stop(line, msg, first);
        }
        match classify::copy_kind(text) {
            Some(Copy::FromStdin(table)) => return self.copy_in(text, &table, line, &first),
            Some(Copy::ToStdout) => return self.copy_out(text, line, first),
            None => {}
        }
        if let Some(value) = classify::set_client_encoding(text) {
            // Not sent: the session stays UTF-8; the input is converted from here on instead.
            return self.set_input_encoding(&value, line, first, text);
        }
        let Ok(sql) = std::str::from_utf8(text) else {
            let msg =
                format!("not executed: the statement is not valid UTF-8 (input encoding {})", self.script.enc_name());
            return self.fail(line, None, msg, first);
        };
        if self.opts.jobs > 1 && classify::is_index_build(text) {
            if let Some(flow) = self.parallel_index(sql, line, &first, text) {
                return flow;
            }
        }
        self.notices.line.store(line, Ordering::Relaxed);
        self.progress.statement_started(line, text);
        let result = self.conn.batch_execute(sql);
        self.progress.statement_ended();
        // A session out of step takes nothing more (the probe would be read as COPY data).
        if !matches!(&result, Err(e) if e.is_out_of_step()) {
            self.track_block(text);
        }
        match result {
            Ok(()) => {
                self.summary.statements += 1;
                if let Some(key) = classify::session_setting(text) {
                    self.session.settings.retain(|(k, _)| *k != key);
                    self.session.settings.push((key, sql.to_string()));
                }
                Flow::Go
            }
            Err(e) => self.statement_error(&e, line, &first, text),
        }
    }

    /// `COPY … TO STDOUT`: run as psql runs it (its query may have effects); the data are dropped, where psql
    /// would print them.
    fn copy_out(&mut self, text: &[u8], line: u64, first: String) -> Flow {
        let Ok(sql) = std::str::from_utf8(text) else {
            return self.fail(line, None, "not executed: the statement is not valid UTF-8".into(), first);
        };
        self.notices.line.store(line, Ordering::Relaxed);
        self.progress.statement_started(line, text);
        let copied = self.conn.copy_out(sql);
        self.progress.statement_ended();
        match copied {
            Ok(_) => {
                self.summary.statements += 1;
                Flow::Go
            }
            Err(e) => self.statement_error(&e, line, &first, text),
        }
    }
}
