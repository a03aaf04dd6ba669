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
use a9s_core::pg::error::{describe, error_chain, io_to_pg, is_session_lost, sqlstate};
use a9s_core::pg::Session;
use a9s_core::pg::{quote_conninfo_value, Reconnect, Target};
use a9s_core::progress::Progress;
use a9s_core::Result;
use postgres::error::SqlState;
use serde::Serialize;

use crate::classify::{self, Copy};
use crate::encoding::Encoding;
use crate::lexer::{Item, Lexer};
use crate::parallel::{self, ChunkBuilder, Feed, Pool};

/// a9s-pgrestore's exit statuses (psql's, plus 1 for "ran to the end with errors").
pub mod exit {
    /// Every statement succeeded (expected errors aside).
    pub const OK: i32 = 0;
    /// The script ran to its end, with errors.
    pub const ERRORS: i32 = 1;
    /// The connection could not be made, a `\connect` failed, or the connection was lost.
    pub const CONNECTION: i32 = 2;
    /// Stopped at the first error (`--on-error-stop`).
    pub const STOPPED: i32 = 3;
}

/// COPY data goes to the server in chunks of about this size: few, large CopyData messages.
const COPY_CHUNK: usize = 256 * 1024;
/// Errors kept in the JSON summary (all are printed).
const MAX_ERROR_RECORDS: usize = 1000;
const PROG: &str = "a9s-pgrestore";

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Stop at the first error (psql's `ON_ERROR_STOP`).
    pub on_error_stop: bool,
    /// No notes, no summary; errors only.
    pub quiet: bool,
    /// Draw progress on stderr (the CLI sets this when stderr is a terminal).
    pub progress: bool,
    /// Size of the input when known (a file), for the progress line.
    pub total_bytes: Option<u64>,
    /// `PGCLIENTENCODING`: the input encoding of every session until the script sets one. Otherwise, as
    /// psql in a script, the database's encoding.
    pub client_encoding: Option<Encoding>,
    /// `--jobs`: sessions that load a large COPY, and build consecutive indexes, at once; 0 or 1: everything on
    /// the one session, as psql.
    pub jobs: usize,
    /// Size of the chunks a COPY's data is dealt out in with `jobs` > 1 (0: [`parallel::DEFAULT_CHUNK_BYTES`]).
    pub chunk_bytes: usize,
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
    /// `ok`, `errors`, `connection_failed`, `connection_lost`, `stopped` (`--on-error-stop`), or `failed`.
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
}

enum Flow {
    Go,
    /// psql throws the rest of the line away after a meta-command that failed (`HandleSlashCmds`).
    SkipRestOfLine,
    Stop(i32),
}

/// The input's encoding: supported, or a name we cannot transcode (only ASCII lines then pass).
type InputEncoding = std::result::Result<Encoding, String>;

/// A pg_dump or pg_dumpall header seen, and whether its closing line came.
#[derive(Default)]
struct DumpFraming {
    trailer: Option<&'static [u8]>,
    seen_trailer: bool,
}

pub struct Runner<'o> {
    opts: &'o Options,
    /// The first session's target; `\connect` keeps its server and user.
    base: Target,
    target: Target,
    client: Option<Session>,
    lexer: Lexer,
    enc: InputEncoding,
    restrict: Option<String>,
    line: u64,
    summary: Summary,
    progress: Progress,
    start: Instant,
    conv: Vec<u8>,
    /// A line of the statement being collected could not be transcoded: (line, reason).
    poisoned: Option<(u64, String)>,
    framing: DumpFraming,
    /// Session settings made by the script on the current session, to re-apply if it must be reopened.
    settings: Vec<(String, String)>,
    /// Where the server's notices are attributed: the line of the statement running, the database.
    notice_line: Arc<AtomicU64>,
    notice_db: Arc<Mutex<String>>,
    /// The first connection or a `\connect` failed (rather than a session being lost).
    connect_failed: bool,
    /// `--jobs`: the other sessions on the current database, opened at its first parallel step.
    pool: Option<Pool<PendingIndex>>,
    /// The last COPY's end-of-data line as it came (`\.` and its line end), sent to the server as psql does.
    copy_end: Vec<u8>,
}

impl<'o> Runner<'o> {
    pub fn new(target: Target, opts: &'o Options) -> Self {
        Runner {
            opts,
            base: target.clone(),
            target,
            client: None,
            lexer: Lexer::new(),
            enc: Ok(Encoding::Utf8),
            restrict: None,
            line: 0,
            summary: Summary::default(),
            progress: Progress::with_enabled(PROG, opts.total_bytes, opts.progress),
            start: Instant::now(),
            conv: Vec::new(),
            poisoned: None,
            framing: DumpFraming::default(),
            settings: Vec::new(),
            notice_line: Arc::new(AtomicU64::new(0)),
            notice_db: Arc::new(Mutex::new(String::new())),
            connect_failed: false,
            pool: None,
            copy_end: Vec::new(),
        }
    }

    /// The script's session settings on the current session, in order (`SET …`, `RESET …`,
    /// `SELECT pg_catalog.set_config(…, false)`; the last per setting): what another session of the same
    /// database must replay to read the script the same way.
    pub fn session_settings(&self) -> impl Iterator<Item = &str> {
        self.settings.iter().map(|(_, sql)| sql.as_str())
    }

    /// Runs the whole script; every message is printed on the way. The summary carries the exit status.
    pub fn run<R: BufRead>(mut self, input: &mut R, hooks: &mut dyn Hooks) -> Summary {
        let mut code = self.run_script(input, hooks);
        self.progress.finish();
        self.summary.exit_code = code;
        self.summary.last_line = self.line;
        self.summary.lines_read = self.line;
        self.summary.bytes_read = self.progress.done();
        self.summary.elapsed_seconds = self.start.elapsed().as_secs_f64();
        self.pool = None;
        self.client = None;
        if let Err(e) = hooks.after_restore(&self.base, &self.summary) {
            eprintln!("{PROG}: {}", e.message);
            if code == exit::OK {
                code = e.code;
            }
        }
        self.summary.exit_code = code;
        self.summary.status = match code {
            exit::OK => "ok",
            exit::ERRORS if self.summary.errors > 0 => "errors",
            exit::CONNECTION if self.connect_failed => "connection_failed",
            exit::CONNECTION => "connection_lost",
            exit::STOPPED => "stopped",
            _ => "failed",
        }
        .to_string();
        if !self.opts.quiet {
            eprintln!("{}", self.summary_text());
        }
        self.summary
    }

    fn run_script<R: BufRead>(&mut self, input: &mut R, hooks: &mut dyn Hooks) -> i32 {
        let target = self.base.clone();
        match self.open(&target) {
            Ok(client) => {
                if let Err(e) = self.adopt(client, target) {
                    eprintln!("{PROG}: cannot set up the session on {}: {}", self.target.describe(), error_chain(&e));
                    return exit::CONNECTION;
                }
            }
            Err(e) => {
                eprintln!("{PROG}: {}", e.message);
                self.connect_failed = true;
                return exit::CONNECTION;
            }
        }
        // A standby takes no writes: refuse before reading a byte of the script, not statement by statement.
        if let Err(e) =
            a9s_core::pg::admin::refuse_if_in_recovery(self.client.as_mut().expect("connected"), PROG, exit::CONNECTION)
        {
            eprintln!("{PROG}: {}", e.message);
            self.connect_failed = true;
            return e.code;
        }
        if let Err(e) = hooks.before_restore(self.client.as_mut().expect("connected"), &self.base) {
            eprintln!("{PROG}: {}", e.message);
            return e.code;
        }

        let mut line = Vec::with_capacity(64 * 1024);
        let mut items = Vec::new();
        loop {
            line.clear();
            match self.read_line(input, &mut line) {
                Ok(0) => break,
                Ok(_) => {}
                Err(code) => return code,
            }
            if self.line == 1 && line.starts_with(b"\xEF\xBB\xBF") {
                line.drain(..3);
            }
            self.check_framing(&line);
            if let Some(converted) = self.transcode(&line) {
                line = converted;
            }
            let mut from = 0;
            loop {
                let next = self.lexer.push_part(&line, from, &mut items);
                let mut skip_rest = false;
                for item in items.drain(..) {
                    match self.handle(item, input) {
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
            let lag = self.line.saturating_sub(self.lexer.line_number());
            if lag > 0 {
                self.lexer.skip_lines(lag);
            }
        }
        self.lexer.finish(&mut items);
        for item in items.drain(..) {
            if let Flow::Stop(code) = self.handle(item, input) {
                return code;
            }
        }
        if let Flow::Stop(code) = self.barrier() {
            return code;
        }
        if let (Some(trailer), false) = (self.framing.trailer, self.framing.seen_trailer) {
            let msg = format!(
                "input ended at line {} before the dump's last line \"{}\": the dump is truncated (did the program \
                 feeding the pipe fail?); the restore is incomplete",
                self.line,
                String::from_utf8_lossy(trailer)
            );
            self.error(self.line, None, msg, String::new());
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

    /// The line in UTF-8 when the input encoding needs converting (`None`: as it is). A byte that cannot be
    /// converted poisons the statement it belongs to (it is reported, not run).
    fn transcode(&mut self, line: &[u8]) -> Option<Vec<u8>> {
        match &self.enc {
            Ok(enc) => match enc.to_utf8(line, &mut self.conv) {
                Ok(false) => None,
                Ok(true) => Some(std::mem::take(&mut self.conv)),
                Err(at) => {
                    let reason = format!(
                        "byte 0x{:02X} at column {} has no Unicode equivalent in encoding {}",
                        line[at],
                        at + 1,
                        enc.name()
                    );
                    self.poisoned.get_or_insert((self.line, reason));
                    Some(std::mem::take(&mut self.conv))
                }
            },
            Err(name) => {
                if !line.is_ascii() {
                    let reason = format!("non-ASCII text in encoding {name}, which a9s-pgrestore cannot convert");
                    self.poisoned.get_or_insert((self.line, reason));
                }
                None
            }
        }
    }

    /// Takes the server's word for the settings that change how the script is read, as psql does from the
    /// server's ParameterStatus reports, however they changed (SET, set_config, a DO block, a function, the
    /// role's or database's own setting at `\connect`).
    fn follow_server_settings(&mut self) -> Flow {
        let Some(session) = self.client.as_ref() else { return Flow::Go };
        // psql: on only if the server says "on".
        let scs = session.parameter("standard_conforming_strings") == Some("on");
        self.lexer.set_standard_conforming_strings(scs);
        // The session's client_encoding stays UTF8 (the input is converted instead, see `set_input_encoding`);
        // if the script changed it some other way the server now reads our UTF-8 as something else.
        match session.parameter("client_encoding") {
            Some(e) if !e.eq_ignore_ascii_case("UTF8") => {
                let msg = format!(
                    "the script changed client_encoding to {e} in a way a9s-pgrestore does not follow (only SET \
                     client_encoding and \\encoding are followed); the restore stopped here, nothing after line {} \
                     ran",
                    self.line
                );
                self.stop(self.line, msg, String::new())
            }
            _ => Flow::Go,
        }
    }

    /// Stops the restore (exit 3) because going on could run what psql would not: reported as an error.
    fn stop(&mut self, line: u64, message: String, statement: String) -> Flow {
        self.error(line, None, message, statement);
        Flow::Stop(exit::STOPPED)
    }

    /// Reads one line (with its `\n`) into `buf`; returns its length, 0 at the end.
    fn read_line<R: BufRead>(&mut self, input: &mut R, buf: &mut Vec<u8>) -> std::result::Result<usize, i32> {
        match input.read_until(b'\n', buf) {
            Ok(0) => Ok(0),
            Ok(n) => {
                self.line += 1;
                self.progress.add(n as u64);
                Ok(n)
            }
            Err(e) => {
                self.progress.finish();
                eprintln!(
                    "{PROG}: cannot read the input after line {}: {}; the restore is incomplete",
                    self.line,
                    a9s_core::error::describe_io(&e)
                );
                Err(exit::ERRORS)
            }
        }
    }

    fn check_framing(&mut self, line: &[u8]) {
        if !line.starts_with(b"-- PostgreSQL database") {
            return;
        }
        let l = line.strip_suffix(b"\n").unwrap_or(line);
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        const PAIRS: [(&[u8], &[u8]); 2] = [
            (b"-- PostgreSQL database cluster dump", b"-- PostgreSQL database cluster dump complete"),
            (b"-- PostgreSQL database dump", b"-- PostgreSQL database dump complete"),
        ];
        for (head, tail) in PAIRS {
            if l == head && self.line <= 10 && self.framing.trailer.is_none() {
                self.framing.trailer = Some(tail);
            } else if Some(l) == self.framing.trailer {
                self.framing.seen_trailer = true;
            }
        }
    }

    /// Connects to `target`, printing the server's notices and warnings as psql does (on stderr, with the
    /// line of the statement that caused them).
    fn open(&mut self, target: &Target) -> Result<Session> {
        *self.notice_db.lock().expect("notice db") = quote_conninfo_value(&target.dbname);
        let (line, db) = (self.notice_line.clone(), self.notice_db.clone());
        target.connect_with_notices(Arc::new(move |n| {
            let db = db.lock().map(|d| d.clone()).unwrap_or_default();
            eprintln!("{}", notice_text(&db, line.load(Ordering::Relaxed), n));
        }))
    }

    /// Makes `client` the current session: learns its encoding and string syntax, as psql does on connect.
    fn adopt(&mut self, client: Session, target: Target) -> std::result::Result<(), postgres::Error> {
        // Both are reported by the server at start-up (ParameterStatus).
        let server_encoding = client.parameter("server_encoding").unwrap_or_default().to_string();
        let scs = client.parameter("standard_conforming_strings") == Some("on");
        self.enc = match self.opts.client_encoding {
            Some(e) => Ok(e),
            None => Encoding::parse(&server_encoding).ok_or(server_encoding),
        };
        self.lexer.set_standard_conforming_strings(scs);
        self.summary.databases.push(target.dbname.clone());
        self.progress.set_detail(format!("database {}", target.dbname));
        self.client = Some(client);
        self.target = target;
        self.settings.clear();
        Ok(())
    }

    fn handle<R: BufRead>(&mut self, item: Item, input: &mut R) -> Flow {
        // With --jobs, consecutive index builds (CREATE INDEX, ADD PRIMARY KEY/UNIQUE) run at once; anything else
        // waits for them to end.
        let concurrent =
            matches!(&item, Item::Sql { text, .. } if self.opts.jobs > 1 && parallel::is_index_build(text));
        if !concurrent {
            if let Flow::Stop(code) = self.barrier() {
                return Flow::Stop(code);
            }
        }
        match item {
            Item::Meta { name, args, line } => {
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
            Item::Sql { text, first_line, variable: None } => self.statement(&text, first_line, input),
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
    fn is_lost(&self, e: &postgres::Error) -> bool {
        is_session_lost(e, self.client.as_ref().is_some_and(|c| c.is_closed()))
    }

    fn lost(&mut self, e: &postgres::Error, line: u64) -> Flow {
        self.progress.finish();
        eprintln!(
            "{PROG}: connection to {} lost at line {line} (last line read: {}): {}; the restore is incomplete — \
             check the server's log, then restore again into a fresh cluster",
            self.target.describe(),
            self.line,
            describe(e)
        );
        Flow::Stop(exit::CONNECTION)
    }

    /// A statement failed: expected, counted, a stop, or a lost connection.
    fn statement_error(&mut self, e: &postgres::Error, line: u64, first: &str, text: &[u8]) -> Flow {
        if self.is_lost(e) {
            return self.lost(e, line);
        }
        self.summary.statements_failed += 1;
        if let Some(db) = e.as_db_error() {
            if *db.code() == SqlState::DUPLICATE_OBJECT {
                if let Some(role) = classify::bare_create_role(text) {
                    self.summary.expected_errors += 1;
                    self.summary.statements_failed -= 1;
                    self.note(line, &format!("role \"{role}\" exists already (expected with pg_dumpall: the ALTER ROLE that follows sets it up)"));
                    return Flow::Go;
                }
            }
        }
        self.fail(line, sqlstate(e), describe(e), first.to_string())
    }

    // ----- statements -----

    fn statement<R: BufRead>(&mut self, text: &[u8], first_line: u64, input: &mut R) -> Flow {
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
            Some(Copy::FromStdin(table)) => return self.copy_in(text, &table, line, &first, input),
            Some(Copy::ToStdout) => return self.copy_out(text, line, first),
            None => {}
        }
        if let Some(value) = classify::set_client_encoding(text) {
            // Not sent: the session stays UTF-8; the input is converted from here on instead.
            return self.set_input_encoding(&value, line, first, text);
        }
        let Ok(sql) = std::str::from_utf8(text) else {
            let msg = format!("not executed: the statement is not valid UTF-8 (input encoding {})", self.enc_name());
            return self.fail(line, None, msg, first);
        };
        if self.opts.jobs > 1 && parallel::is_index_build(text) {
            if let Some(flow) = self.parallel_index(sql, line, &first, text) {
                return flow;
            }
        }
        self.notice_line.store(line, Ordering::Relaxed);
        let client = self.client.as_mut().expect("connected");
        match client.batch_execute(sql) {
            Ok(()) => {
                self.summary.statements += 1;
                if let Some(key) = classify::session_setting(text) {
                    self.settings.retain(|(k, _)| *k != key);
                    self.settings.push((key, sql.to_string()));
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
        self.notice_line.store(line, Ordering::Relaxed);
        match self.client.as_mut().expect("connected").copy_out(sql) {
            Ok(_) => {
                self.summary.statements += 1;
                Flow::Go
            }
            Err(e) => self.statement_error(&e, line, &first, text),
        }
    }

    fn enc_name(&self) -> String {
        match &self.enc {
            Ok(e) => e.name().to_string(),
            Err(n) => n.clone(),
        }
    }

    /// `SET client_encoding`: not sent (the session stays UTF-8); the input is converted from here on, which
    /// reads the script exactly as the server would in that encoding. A name the server does not know is sent,
    /// for the server's own error; a real encoding a9s-pgrestore cannot convert stops the restore.
    fn set_input_encoding(&mut self, value: &str, line: u64, first: String, text: &[u8]) -> Flow {
        let name = if value.eq_ignore_ascii_case("default") {
            self.client.as_ref().and_then(|c| c.parameter("server_encoding")).unwrap_or_default().to_string()
        } else {
            value.to_string()
        };
        if let Some(e) = Encoding::parse(&name) {
            self.enc = Ok(e);
            self.summary.statements += 1;
            return Flow::Go;
        }
        match self.server_knows_encoding(&name) {
            Ok(false) => {
                let sql = String::from_utf8_lossy(text).into_owned();
                match self.client.as_mut().expect("connected").batch_execute(&sql) {
                    Err(e) => self.statement_error(&e, line, &first, text),
                    Ok(()) => {
                        let msg = format!(
                            "SET client_encoding to {name} was accepted by the server but not \
                                           understood here; the restore stopped here"
                        );
                        self.stop(line, msg, first)
                    }
                }
            }
            Ok(true) => {
                let msg = format!(
                    "client_encoding {name}: a9s-pgrestore converts only UTF8, SQL_ASCII, LATIN1, LATIN9 and WIN1252, \
                     so it cannot read what follows as psql would; the restore stopped here, before this statement"
                );
                self.stop(line, msg, first)
            }
            Err(flow) => flow,
        }
    }

    // ----- COPY -----

    fn copy_in<R: BufRead>(&mut self, text: &[u8], table: &str, line: u64, first: &str, input: &mut R) -> Flow {
        let Ok(sql) = std::str::from_utf8(text) else {
            // The server would refuse it, and psql would run the data lines as SQL.
            let msg = "the COPY statement is not valid UTF-8: the server would refuse it and psql would run its data \
                       lines as SQL; the restore stopped here"
                .to_string();
            return self.stop(line, msg, first.into());
        };
        if classify::is_binary_copy(text) {
            let msg = "COPY in binary format from the script: psql would read the rest of the script as its data; \
                       the restore stopped here, before it"
                .to_string();
            return self.stop(line, msg, first.into());
        }
        self.notice_line.store(line, Ordering::Relaxed);
        let mut prefix = Prefetched::default();
        if self.opts.jobs > 1 && parallel::is_text_copy(text) {
            // The sessions of --jobs would each be refused; find out first, on the main session, with a COPY
            // that is started and at once abandoned (no row, no effect).
            if let Err(e) = self.probe_copy(sql) {
                return self.copy_refused(&e, line, first);
            }
            match self.parallel_copy(sql, table, line, first, input) {
                Ok(flow) => return flow,
                Err(p) => prefix = p,
            }
        }
        self.progress.set_detail(format!("database {}, COPY {table}", self.target.dbname));
        // Out of `self` while the writer borrows it, so lines can be read meanwhile.
        let mut client = self.client.take().expect("connected");
        let result = self.stream_copy(&mut client, sql, table, line, input, prefix);
        self.client = Some(client);
        self.progress.set_detail(format!("database {}", self.target.dbname));
        match result {
            CopyOutcome::Done(rows) => {
                self.summary.statements += 1;
                self.summary.copy_commands += 1;
                self.summary.rows_copied += rows;
                Flow::Go
            }
            CopyOutcome::Failed { error, data_left } => {
                // A bad row is reported at its own line, as with --jobs: the server counts data rows from 1 in
                // its `COPY t, line N` context, and the data starts on the line after the statement's last.
                let row_line = error
                    .as_db_error()
                    .and_then(|db| db.where_())
                    .and_then(parallel::copy_context_line)
                    .map(|n| line + text.iter().filter(|&&b| b == b'\n').count() as u64 + n);
                let flow = self.statement_error(&error, row_line.unwrap_or(line), first, text);
                if data_left {
                    self.after_failed_copy(flow, input)
                } else {
                    flow
                }
            }
            CopyOutcome::Refused { message, data_left } => {
                let flow = self.fail(line, None, message, first.into());
                if data_left {
                    self.after_failed_copy(flow, input)
                } else {
                    flow
                }
            }
            CopyOutcome::Broken { message, data_left } => {
                if self.client.as_ref().is_some_and(|c| c.is_closed()) {
                    self.progress.finish();
                    eprintln!(
                        "{PROG}: connection to {} lost at line {} during COPY {table} (started at line {line}): \
                         {message}; the restore is incomplete — check the server's log, then restore again into a \
                         fresh cluster",
                        self.target.describe(),
                        self.line
                    );
                    return Flow::Stop(exit::CONNECTION);
                }
                let flow = self.fail(line, None, format!("COPY {table} failed: {message}"), first.into());
                if data_left {
                    self.after_failed_copy(flow, input)
                } else {
                    flow
                }
            }
            CopyOutcome::StartRefused { error } => self.copy_refused(&error, line, first),
            CopyOutcome::InputError(code) => Flow::Stop(code),
        }
    }

    /// The server refused a COPY before its data. psql would now read the data lines as SQL statements (and run
    /// any that parse); a restore never does, so it stops here (exit 3), having run what psql ran up to here.
    fn copy_refused(&mut self, error: &postgres::Error, line: u64, first: &str) -> Flow {
        if self.is_lost(error) {
            return self.lost(error, line);
        }
        let msg = format!(
            "{}; the COPY was refused before its data, and psql would now run its data lines as SQL — \
             a9s-pgrestore never does, so the restore stopped here",
            describe(error)
        );
        self.summary.statements_failed += 1;
        self.error(line, sqlstate(error), msg, first.to_string());
        Flow::Stop(exit::STOPPED)
    }

    /// After a COPY that failed: its data lines are skipped up to `\.`, never run as SQL.
    fn after_failed_copy<R: BufRead>(&mut self, flow: Flow, input: &mut R) -> Flow {
        if let Flow::Stop(code) = flow {
            return Flow::Stop(code);
        }
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match self.read_line(input, &mut buf) {
                Ok(0) => return Flow::Go,
                Ok(_) if is_copy_end(&buf) => return Flow::Go,
                Ok(_) => {}
                Err(code) => return Flow::Stop(code),
            }
        }
    }

    /// Starts `sql` (a COPY FROM STDIN) on the main session and abandons it at once: whether the server accepts
    /// it, without loading anything.
    fn probe_copy(&mut self, sql: &str) -> std::result::Result<(), postgres::Error> {
        let session = self.client.as_mut().expect("connected");
        let statement = session.prepare(sql)?;
        // Dropped unfinished: CopyFail, and the server ends the COPY with nothing loaded.
        drop(session.copy_in(&statement)?);
        Ok(())
    }

    fn stream_copy<R: BufRead>(
        &mut self,
        client: &mut Session,
        sql: &str,
        table: &str,
        line: u64,
        input: &mut R,
        prefix: Prefetched,
    ) -> CopyOutcome {
        let data_left = !prefix.complete;
        // Prepared apart, so that a refused COPY can be told from a broken session (see `reopen`).
        let statement = match client.prepare(sql) {
            Ok(s) => s,
            Err(error) => return CopyOutcome::StartRefused { error },
        };
        let mut writer = match client.copy_in(&statement) {
            Ok(w) => w,
            Err(error) => return CopyOutcome::StartRefused { error },
        };
        let mut chunk: Vec<u8> = prefix.data;
        if prefix.complete {
            chunk.extend_from_slice(&self.copy_end);
        }
        chunk.reserve(COPY_CHUNK + 64 * 1024);
        let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
        let enc = self.enc.clone();
        loop {
            if !data_left {
                // All the data came with the prefix.
                break;
            }
            buf.clear();
            match self.read_line(input, &mut buf) {
                Ok(0) => {
                    // psql would end the COPY here and keep what came; a cut stream must not look complete.
                    drop(writer);
                    return CopyOutcome::Refused {
                        message: format!(
                            "input ended inside the data of COPY {table} (started at line {line}): the dump is \
                             truncated; the COPY was aborted"
                        ),
                        data_left: false,
                    };
                }
                Ok(_) => {}
                Err(code) => return CopyOutcome::InputError(code),
            }
            if is_copy_end(&buf) {
                // psql sends the end marker too: the server checks it (a `\.` ending in CR after rows ending in
                // LF is an error there) and ignores anything after it.
                chunk.extend_from_slice(&buf);
                break;
            }
            let data: &[u8] = match &enc {
                Ok(e) => match e.to_utf8(&buf, &mut self.conv) {
                    Ok(false) => &buf,
                    Ok(true) => &self.conv,
                    Err(at) => {
                        drop(writer);
                        return CopyOutcome::Refused {
                            message: format!(
                                "COPY {table} aborted at line {}: byte 0x{:02X} at column {} has no Unicode \
                                 equivalent in encoding {}",
                                self.line,
                                buf[at],
                                at + 1,
                                e.name()
                            ),
                            data_left: true,
                        };
                    }
                },
                Err(name) if !buf.is_ascii() => {
                    let msg = format!(
                        "COPY {table} aborted at line {}: non-ASCII data in encoding {name}, which a9s-pgrestore \
                         cannot convert",
                        self.line
                    );
                    drop(writer);
                    return CopyOutcome::Refused { message: msg, data_left: true };
                }
                Err(_) => &buf,
            };
            chunk.extend_from_slice(data);
            if chunk.len() >= COPY_CHUNK {
                if let Err(e) = writer.write_all(&chunk) {
                    drop(writer);
                    return io_failure(e, true);
                }
                chunk.clear();
            }
        }
        if !chunk.is_empty() {
            if let Err(e) = writer.write_all(&chunk) {
                drop(writer);
                return io_failure(e, false);
            }
        }
        match writer.finish() {
            Ok(rows) => CopyOutcome::Done(rows),
            Err(error) => CopyOutcome::Failed { error, data_left: false },
        }
    }

    // ----- meta-commands -----

    /// A meta-command, as psql 15 runs it in a script — or, for any that a restore cannot run exactly, a stop
    /// before it (exit 3): nothing after it runs.
    fn meta(&mut self, name: &str, args: &[String], line: u64) -> Flow {
        let shown = meta_text(name, args);
        if self.restrict.is_some() && name != "unrestrict" {
            // psql: an error, the rest of the line thrown away, and the script goes on.
            self.error(
                line,
                None,
                format!("\\{name} refused: backslash commands are restricted; only \\unrestrict is allowed"),
                shown,
            );
            return self.after_error(line);
        }
        if !classify::META_COMMANDS.contains(&name) {
            let msg = format!(
                "meta-command \\{name} is not supported: a9s-pgrestore runs only \\connect (\\c), \\encoding, \\restrict \
                 and \\unrestrict, and never runs a program or reads a file a script names; the restore stopped \
                 here, nothing after line {line} ran"
            );
            return self.stop(line, msg, shown);
        }
        if let Some(why) = classify::meta_args_unsure(args) {
            let msg = format!("\\{name}: {why}; the restore stopped here, nothing after line {line} ran");
            return self.stop(line, msg, shown);
        }
        match name {
            "connect" | "c" => self.connect(args, line, shown),
            "restrict" => match args.first().filter(|k| !k.is_empty()) {
                None => self.meta_error(line, "\\restrict: missing required argument", shown),
                Some(key) => {
                    self.restrict = Some(key.clone());
                    Flow::Go
                }
            },
            "unrestrict" => match (args.first().filter(|k| !k.is_empty()), &self.restrict) {
                (None, _) => self.meta_error(line, "\\unrestrict: missing required argument", shown),
                (Some(_), None) => self.meta_error(line, "\\unrestrict: not currently in restricted mode", shown),
                (Some(k), Some(key)) if k == key => {
                    self.restrict = None;
                    Flow::Go
                }
                _ => self.meta_error(line, "\\unrestrict: wrong key (meta-commands stay refused)", shown),
            },
            "encoding" => match args.first() {
                // psql prints the encoding.
                None => Flow::Go,
                Some(e) => self.encoding_command(e, line, shown),
            },
            _ => unreachable!("META_COMMANDS lists the commands handled here"),
        }
    }

    /// A meta-command failed as it fails in psql: reported and counted, the rest of its line dropped.
    fn meta_error(&mut self, line: u64, message: &str, shown: String) -> Flow {
        self.error(line, None, message.to_string(), shown);
        self.after_error(line)
    }

    /// After an error that psql survives: `--on-error-stop` stops, else the rest of the line is dropped.
    fn after_error(&mut self, line: u64) -> Flow {
        if self.opts.on_error_stop {
            eprintln!("{PROG}: stopped at line {line} (--on-error-stop); the restore is incomplete");
            Flow::Stop(exit::STOPPED)
        } else {
            Flow::SkipRestOfLine
        }
    }

    /// `\encoding NAME`: psql sets the session's client encoding, and the server reads the script's bytes in
    /// it from then on. Here the session stays UTF-8 and the input is converted instead, which is the same for
    /// every encoding a9s-pgrestore converts. A name the server does not know is psql's error; a real encoding
    /// that a9s-pgrestore cannot convert is a stop, since lines in it would be read differently.
    fn encoding_command(&mut self, name: &str, line: u64, shown: String) -> Flow {
        if let Some(enc) = Encoding::parse(name) {
            self.enc = Ok(enc);
            return Flow::Go;
        }
        match self.server_knows_encoding(name) {
            Ok(false) => {
                self.error(
                    line,
                    None,
                    format!("{name}: invalid encoding name or conversion procedure not found"),
                    shown,
                );
                // \encoding never drops the rest of its line, even when it fails.
                Flow::Go
            }
            Ok(true) => {
                let msg = format!(
                    "\\encoding {name}: a9s-pgrestore converts only UTF8, SQL_ASCII, LATIN1, LATIN9 and WIN1252, so it \
                     cannot read what follows as psql would; the restore stopped here, nothing after line {line} ran"
                );
                self.stop(line, msg, shown)
            }
            Err(flow) => flow,
        }
    }

    /// Whether the server knows an encoding name (`pg_char_to_encoding`), as libpq's `PQsetClientEncoding`
    /// would find out.
    fn server_knows_encoding(&mut self, name: &str) -> std::result::Result<bool, Flow> {
        let session = self.client.as_mut().expect("connected");
        match session.query_one("SELECT pg_catalog.pg_char_to_encoding($1) >= 0", &[&name]) {
            Ok(row) => Ok(row.get(0)),
            Err(e) => Err(self.lost(&e, self.line)),
        }
    }

    /// `\connect` in every form psql 15 accepts (see [`a9s_core::pg::Reconnect`]). Arguments psql refuses
    /// before connecting are an error and the old session is kept; a failed connection stops the restore
    /// (exit 2): psql, in a script, closes the old one and runs nothing more of the script's statements.
    fn connect(&mut self, args: &[String], line: u64, shown: String) -> Flow {
        let env = a9s_core::pg::Env::process();
        let target = match Reconnect::parse(args).and_then(|r| self.target.reconnect(&r, PROG, &env)) {
            Ok(t) => t,
            Err(e) => return self.meta_error(line, &format!("\\connect: {}", e.message), shown),
        };
        let refuse = |me: &mut Self, why: String| {
            me.connect_failed = true;
            me.error(line, None, format!("\\connect failed: {why}; the restore stopped here"), shown.clone());
            Flow::Stop(exit::CONNECTION)
        };
        // The old session ends first, as in psql (and so it holds no locks the new one could wait on); so do the
        // --jobs sessions on the old database.
        self.pool = None;
        self.client = None;
        match self.open(&target) {
            Ok(client) => match self.adopt(client, target) {
                Ok(()) => Flow::Go,
                Err(e) => refuse(self, error_chain(&e)),
            },
            Err(e) => refuse(self, e.message),
        }
    }

    fn summary_text(&self) -> String {
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
        t += match s.exit_code {
            exit::OK => " — restore complete",
            exit::ERRORS => " — ran to the end with errors",
            exit::CONNECTION => " — connection failed or lost: incomplete",
            exit::STOPPED => " — stopped at the first error: incomplete",
            _ => " — failed",
        };
        t
    }
}

/// An index build running on a `--jobs` session: what its error report needs.
#[derive(Debug)]
struct PendingIndex {
    first: String,
    text: Vec<u8>,
}

/// COPY data already read (and converted) before the COPY was sent: with `--jobs`, the first chunk, which shows
/// whether the table is small enough to stay on the main session.
#[derive(Default)]
struct Prefetched {
    data: Vec<u8>,
    /// The `\.` line came: `data` is all of it.
    complete: bool,
}

/// One COPY data line read by [`Runner::copy_data_line`].
enum DataLine {
    /// Appended, converted to UTF-8.
    Data,
    /// The `\.` line.
    End,
    /// The input ended.
    Eof,
    /// A line that cannot be converted: the message.
    Bad(String),
    /// The input could not be read (reported): the exit status.
    Input(i32),
}

/// Why a parallel COPY's feed stopped.
enum FeedStop {
    /// An error to report; whether data lines are left to skip.
    Message(String, bool),
    Input(i32),
}

/// `--jobs`: COPY over several sessions, CREATE INDEX spread over them (see [`parallel`]).
impl Runner<'_> {
    /// Reads the next COPY data line onto the end of `out`, converted to UTF-8 as `stream_copy` converts it.
    fn copy_data_line<R: BufRead>(&mut self, input: &mut R, out: &mut Vec<u8>, table: &str) -> DataLine {
        let start = out.len();
        match self.read_line(input, out) {
            Ok(0) => return DataLine::Eof,
            Ok(_) => {}
            Err(code) => return DataLine::Input(code),
        }
        if is_copy_end(&out[start..]) {
            self.copy_end.clear();
            self.copy_end.extend_from_slice(&out[start..]);
            out.truncate(start);
            return DataLine::End;
        }
        let bad = match self.enc.clone() {
            Ok(e) => match e.to_utf8(&out[start..], &mut self.conv) {
                Ok(false) => None,
                Ok(true) => {
                    out.truncate(start);
                    out.extend_from_slice(&self.conv);
                    None
                }
                Err(at) => Some(format!(
                    "COPY {table} aborted at line {}: byte 0x{:02X} at column {} has no Unicode equivalent in \
                     encoding {}",
                    self.line,
                    out[start + at],
                    at + 1,
                    e.name()
                )),
            },
            Err(name) if !out[start..].is_ascii() => Some(format!(
                "COPY {table} aborted at line {}: non-ASCII data in encoding {name}, which a9s-pgrestore cannot \
                 convert",
                self.line
            )),
            Err(_) => None,
        };
        match bad {
            None => DataLine::Data,
            Some(msg) => {
                out.truncate(start);
                DataLine::Bad(msg)
            }
        }
    }

    /// Loads a COPY whose data is larger than one chunk over the `--jobs` sessions, all or nothing. A smaller
    /// one, or one inside a transaction block, stays on the main session: then its data read so far comes back.
    fn parallel_copy<R: BufRead>(
        &mut self,
        sql: &str,
        table: &str,
        line: u64,
        first: &str,
        input: &mut R,
    ) -> std::result::Result<Flow, Prefetched> {
        let limit = if self.opts.chunk_bytes == 0 { parallel::DEFAULT_CHUNK_BYTES } else { self.opts.chunk_bytes };
        let mut chunks = ChunkBuilder::new(limit);
        loop {
            match self.copy_data_line(input, chunks.buffer(), table) {
                DataLine::Data => {
                    chunks.pushed(self.line);
                    if chunks.is_full() {
                        break;
                    }
                }
                DataLine::End => {
                    return Err(Prefetched { data: chunks.take().map(|c| c.data).unwrap_or_default(), complete: true })
                }
                // The main session's COPY meets the end of the input and says so.
                DataLine::Eof => {
                    return Err(Prefetched { data: chunks.take().map(|c| c.data).unwrap_or_default(), complete: false })
                }
                DataLine::Bad(msg) => {
                    let flow = self.fail(line, None, msg, first.into());
                    return Ok(self.after_failed_copy(flow, input));
                }
                DataLine::Input(code) => return Ok(Flow::Stop(code)),
            }
        }
        // Other sessions would not see a table created in the main session's open transaction block (and
        // would wait for its locks): such a COPY stays on the main session, as does one that cannot be checked.
        if !matches!(parallel::in_transaction_block(self.client.as_mut().expect("connected")), Ok(false)) {
            return Err(Prefetched { data: chunks.take().map(|c| c.data).unwrap_or_default(), complete: false });
        }
        if let Flow::Stop(code) = self.ensure_pool(line) {
            return Ok(Flow::Stop(code));
        }
        let mut pool = self.pool.take().expect("sessions open");
        let jobs = pool.jobs();
        self.progress.set_detail(format!("database {}, COPY {table} over {jobs} sessions", self.target.dbname));
        let settings = self.settings.clone();
        let first_chunk = chunks.take().expect("a full chunk");
        let mut stop: Option<FeedStop> = None;
        let mut ended = false;
        let result = {
            let mut feed = || -> Feed {
                if ended {
                    return Feed::End;
                }
                loop {
                    match self.copy_data_line(input, chunks.buffer(), table) {
                        DataLine::Data => {
                            chunks.pushed(self.line);
                            if chunks.is_full() {
                                return Feed::Chunk(chunks.take().expect("a full chunk"));
                            }
                        }
                        DataLine::End if self.copy_end != b"\\.\n" => {
                            // The server would check this marker against the rows' line ends in one stream; over
                            // several sessions it cannot. Rare outside hand-made scripts.
                            let msg = format!(
                                "COPY {table}: the end-of-data line at line {} is not the `\\.` with a plain newline \
                                 that pg_dump writes; run without --jobs to have the server judge it as under psql",
                                self.line
                            );
                            stop = Some(FeedStop::Message(msg, false));
                            return Feed::Stop;
                        }
                        DataLine::End => {
                            ended = true;
                            return chunks.take().map_or(Feed::End, Feed::Chunk);
                        }
                        DataLine::Eof => {
                            let msg = format!(
                                "input ended inside the data of COPY {table} (started at line {line}): the dump is \
                                 truncated; the COPY was aborted"
                            );
                            stop = Some(FeedStop::Message(msg, false));
                            return Feed::Stop;
                        }
                        DataLine::Bad(msg) => {
                            stop = Some(FeedStop::Message(msg, true));
                            return Feed::Stop;
                        }
                        DataLine::Input(code) => {
                            stop = Some(FeedStop::Input(code));
                            return Feed::Stop;
                        }
                    }
                }
            };
            pool.copy(sql, line, &settings, first_chunk, &mut feed)
        };
        self.pool = Some(pool);
        self.progress.set_detail(format!("database {}", self.target.dbname));
        let skip = |me: &mut Self, flow: Flow, input: &mut R, data_left: bool| {
            if data_left {
                me.after_failed_copy(flow, input)
            } else {
                flow
            }
        };
        let data_left = !result.fed_to_end;
        Ok(match result.outcome {
            parallel::CopyOutcome::Done { rows, .. } => {
                self.summary.statements += 1;
                self.summary.copy_commands += 1;
                self.summary.parallel_copies += 1;
                self.summary.rows_copied += rows;
                Flow::Go
            }
            parallel::CopyOutcome::Stopped => match stop {
                Some(FeedStop::Input(code)) => Flow::Stop(code),
                Some(FeedStop::Message(msg, left)) => {
                    let flow = self.fail(line, None, msg, first.into());
                    skip(self, flow, input, left)
                }
                None => Flow::Go,
            },
            parallel::CopyOutcome::Failed { line: row, error } => {
                self.summary.statements_failed += 1;
                let (msg, sqlstate) = (describe(&error), sqlstate(&error));
                let msg = format!(
                    "{msg}; in the data of COPY {table} (line {line}), rolled back on all {jobs} sessions: none of \
                     its rows were loaded"
                );
                let flow = self.fail(row.unwrap_or(line), sqlstate, msg, first.into());
                skip(self, flow, input, data_left)
            }
            parallel::CopyOutcome::Lost(m) => {
                self.progress.finish();
                eprintln!(
                    "{PROG}: a --jobs session to {} was lost during COPY {table} (started at line {line}; last line \
                     read: {}): {m}; the restore is incomplete — check the server's log, then restore again into a \
                     fresh cluster",
                    self.target.describe(),
                    self.line
                );
                Flow::Stop(exit::CONNECTION)
            }
            parallel::CopyOutcome::Partial { message } => {
                let msg = format!(
                    "COPY {table}: COMMIT failed on a --jobs session after others had committed ({message}): the \
                     table is partly loaded — empty it and load it again"
                );
                let flow = self.fail(line, None, msg, first.into());
                skip(self, flow, input, data_left)
            }
        })
    }

    /// Runs an index build on a `--jobs` session; `None` when it must run on the main session (inside a
    /// transaction block), after the sessions are idle.
    fn parallel_index(&mut self, sql: &str, line: u64, first: &str, text: &[u8]) -> Option<Flow> {
        if !matches!(parallel::in_transaction_block(self.client.as_mut().expect("connected")), Ok(false)) {
            return match self.barrier() {
                Flow::Go => None,
                stop => Some(stop),
            };
        }
        if let Flow::Stop(code) = self.ensure_pool(line) {
            return Some(Flow::Stop(code));
        }
        let settings = self.settings.clone();
        let pending = PendingIndex { first: first.to_string(), text: text.to_vec() };
        self.pool.as_mut().expect("sessions open").exec(sql.to_string(), &settings, line, pending);
        self.summary.parallel_indexes += 1;
        Some(Flow::Go)
    }

    /// Waits until the `--jobs` sessions are idle and reports what they ran, in script order.
    fn barrier(&mut self) -> Flow {
        let Some(pool) = self.pool.as_mut() else { return Flow::Go };
        for done in pool.wait_idle() {
            self.notice_line.store(done.line, Ordering::Relaxed);
            match done.result {
                Ok(()) => self.summary.statements += 1,
                Err(parallel::Failure::Sql(e)) => {
                    if let Flow::Stop(code) = self.statement_error(&e, done.line, &done.tag.first, &done.tag.text) {
                        return Flow::Stop(code);
                    }
                }
                Err(parallel::Failure::Lost(m)) => {
                    self.progress.finish();
                    eprintln!(
                        "{PROG}: a --jobs session to {} was lost at line {} (last line read: {}): {m}; the restore \
                         is incomplete — check the server's log, then restore again into a fresh cluster",
                        self.target.describe(),
                        done.line,
                        self.line
                    );
                    return Flow::Stop(exit::CONNECTION);
                }
            }
        }
        Flow::Go
    }

    /// Opens the `--jobs` sessions on the current database if they are not open yet.
    fn ensure_pool(&mut self, line: u64) -> Flow {
        if self.pool.as_ref().is_some_and(|p| p.dbname() == self.target.dbname) {
            return Flow::Go;
        }
        self.pool = None;
        let target = self.target.clone();
        let db = quote_conninfo_value(&target.dbname);
        let connect: parallel::Connect = Arc::new(move |line: Arc<AtomicU64>| {
            let db = db.clone();
            target.connect_with_notices(Arc::new(move |n| {
                eprintln!("{}", notice_text(&db, line.load(Ordering::Relaxed), n))
            }))
        });
        match Pool::open(connect, &self.target.dbname, self.opts.jobs) {
            Ok(pool) => {
                self.pool = Some(pool);
                Flow::Go
            }
            Err(e) => {
                self.progress.finish();
                self.connect_failed = true;
                eprintln!(
                    "{PROG}: {} line {line}: cannot open the {} sessions of --jobs: {}; the restore stopped here",
                    self.db(),
                    self.opts.jobs,
                    e.message
                );
                Flow::Stop(exit::CONNECTION)
            }
        }
    }
}

/// A server notice as psql prints it, with the database and the line of the statement that caused it.
fn notice_text(db: &str, line: u64, n: &postgres::error::DbError) -> String {
    let mut msg = format!("{PROG}: {db} line {line}: {}: {}", n.severity(), n.message());
    if let Some(d) = n.detail() {
        msg += &format!("; DETAIL: {d}");
    }
    msg
}

fn io_failure(e: std::io::Error, data_left: bool) -> CopyOutcome {
    match io_to_pg(e) {
        Ok(error) => CopyOutcome::Failed { error, data_left },
        Err(message) => CopyOutcome::Broken { message, data_left },
    }
}

enum CopyOutcome {
    Done(u64),
    /// The server refused or the session broke.
    Failed {
        error: postgres::Error,
        data_left: bool,
    },
    /// The server refused the COPY before its data (at the prepare or the start; after the latter the session
    /// is out of step, which is no matter: the restore stops).
    StartRefused {
        error: postgres::Error,
    },
    /// Writing failed without a server error.
    Broken {
        message: String,
        data_left: bool,
    },
    /// We aborted it.
    Refused {
        message: String,
        data_left: bool,
    },
    InputError(i32),
}

/// The `\.` line that ends COPY data.
fn is_copy_end(line: &[u8]) -> bool {
    matches!(line, b"\\.\n" | b"\\.\r\n" | b"\\.")
}

fn meta_text(name: &str, args: &[String]) -> String {
    let mut s = format!("\\{name}");
    for a in args {
        s.push(' ');
        s += a;
    }
    if s.chars().count() > 100 {
        s = s.chars().take(100).collect::<String>() + "…";
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_end() {
        assert!(is_copy_end(b"\\.\n"));
        assert!(is_copy_end(b"\\.\r\n"));
        assert!(is_copy_end(b"\\."));
        assert!(!is_copy_end(b"\\.x\n"));
        assert!(!is_copy_end(b"a\\.\n"));
    }

    #[test]
    fn meta_display() {
        assert_eq!(meta_text("!", &["rm".into(), "-rf".into(), "/".into()]), "\\! rm -rf /");
    }
}
