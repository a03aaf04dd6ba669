//! `--checkpoint FILE`: the committed point recorded as the restore goes, and a restore that died resumed from
//! it — the script read again from its start and skipped (read, hashed, not lexed, nothing run) up to the point,
//! a session opened as the script had it there, and on from the next line.
//!
//! The point is only ever a line end where every effect so far is committed: the lexer holds no partial
//! statement, the server says the session is outside a transaction block, and no `--jobs` session is busy.
//! Statements after it may have run before the restore died (the server committed them, the answer was lost):
//! they run again, and if that meets what they create ("already exists") they count as done.

use a9s_core::error::io_message;

use super::*;
use crate::checkpoint::{self, Checkpoint, HeadHash, InFlight, Position, SessionState, State};

/// How long a checkpoint may stay in the page cache only. A COPY or a `\connect` is synced at once; other
/// statements at most this late, so a crash of the machine running a9s-pgrestore (not the server's) may leave
/// the file this much behind: those statements run again and may report "already exists".
const SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// The live checkpoint of a restore with `--checkpoint`.
pub(super) struct Ckpt {
    store: checkpoint::CheckpointFile,
    file: Checkpoint,
    /// The main session is inside a transaction block, as the server last said.
    in_block: bool,
    /// Something ran since the last write.
    pub(super) dirty: bool,
    /// The next write goes to disk: re-running a COPY or a `\connect` would cost or duplicate.
    pub(super) sync_next: bool,
    last_sync: Instant,
    /// After a resume: the statements that may have run before the restore died.
    in_flight: InFlight,
    /// Where this run resumed (for the summary).
    resumed_from: Option<Checkpoint>,
    /// The checkpoint was refused (another cluster, another script): FILE is left as it is.
    refused: bool,
}

/// What `--checkpoint FILE` says before the script is run.
pub(super) enum Opened {
    /// Restore (from the start or from the point); the script's first bytes, read to name it, are read
    /// again.
    Run,
    /// FILE says this script's restore is complete: the exit status it ended with. Nothing is done.
    Complete(i32),
}

impl Runner<'_> {
    /// Takes the lock, reads FILE and the script's first MiB, and refuses a checkpoint of another script before
    /// anything is connected to or run.
    pub(super) fn open_checkpoint(&mut self, path: &std::path::Path) -> a9s_core::Result<Opened> {
        let (store, existing) = checkpoint::CheckpointFile::open(path)?;
        // A first run begins at once; a resume first reads as much of the script as names it.
        let n = existing.as_ref().map_or(0, |c| c.script.head_bytes);
        let head = self.script.read_head(n).map_err(|e| {
            a9s_core::Error::new(exit::ERRORS, format!("{}; nothing was run", io_message("cannot read the input", &e)))
        })?;
        if let Some(c) = &existing {
            if !c.script.matches(&head) {
                let by = c.script.dumped_by.as_deref().unwrap_or("a script");
                return Err(a9s_core::Error::new(
                    exit::ERRORS,
                    format!(
                        "--checkpoint {} was written for another script ({by}, first {} bytes with SHA-256 {}…): this \
                         one begins differently; nothing was run — give the backup the checkpoint belongs to, or \
                         another FILE to restore this one from the start",
                        path.display(),
                        c.script.head_bytes,
                        &c.script.head_sha256[..12]
                    ),
                ));
            }
            if c.state == State::Complete {
                eprintln!(
                    "{PROG}: --checkpoint {}: the restore of this script is complete already (it ran to line {}, \
                     exit status {}); nothing was done — remove the file to restore again",
                    path.display(),
                    c.position.line,
                    c.exit_code.unwrap_or(exit::OK)
                );
                return Ok(Opened::Complete(c.exit_code.unwrap_or(exit::OK)));
            }
        }
        // Any record is resumed, even one at line 0: its run may have died in the middle of its first statement.
        let resumed_from = existing;
        // Until this run records a point of its own, FILE keeps the one it had.
        let file = resumed_from.clone().unwrap_or_else(|| Checkpoint::new(HeadHash::default().identity()));
        self.ckpt = Some(Box::new(Ckpt {
            store,
            file,
            in_block: false,
            dirty: false,
            sync_next: false,
            last_sync: Instant::now(),
            in_flight: InFlight::none(),
            resumed_from,
            refused: false,
        }));
        self.script.start_hashing();
        Ok(Opened::Run)
    }

    /// FILE belongs to another script or cluster: nothing is run and FILE is left as it is; exit 1, since
    /// running the same command again meets the same refusal.
    fn refuse_checkpoint(&mut self, line: u64, msg: String) -> Flow {
        self.ckpt.as_mut().expect("checkpoint").refused = true;
        self.error(line, None, msg, String::new());
        Flow::Stop(exit::ERRORS)
    }

    /// On the first session, before the script: a first run writes its checkpoint (so FILE is known to be
    /// writable before anything is run); a resume skips to the point and sets the session up as it was there.
    pub(super) fn start_checkpoint(&mut self) -> Flow {
        let Some(c) = self.ckpt.as_ref() else { return Flow::Go };
        let (recorded, path) = (c.file.system_identifier.clone(), c.store.path().display().to_string());
        let here = self.system_identifier();
        if let (Some(was), Some(now)) = (&recorded, &here) {
            if was != now {
                let msg = format!(
                    "--checkpoint {path} was written for another cluster (system identifier {was}; this server's is \
                     {now}): nothing was run — resume on the cluster the restore began on, or remove the file to \
                     restore from the start"
                );
                return self.refuse_checkpoint(0, msg);
            }
        }
        self.warn_if_not_durable();
        let c = self.ckpt.as_mut().expect("checked");
        c.file.system_identifier = recorded.or(here);
        let Some(from) = c.resumed_from.clone() else {
            return self.write_checkpoint(true);
        };
        if let Flow::Stop(code) = self.skip_to(&from.position) {
            return Flow::Stop(code);
        }
        if let Flow::Stop(code) = self.restore_session(&from.session) {
            return Flow::Stop(code);
        }
        let c = self.ckpt.as_mut().expect("checked");
        c.file.state = State::Restoring;
        c.in_flight = InFlight::after(&from);
        c.dirty = true;
        c.sync_next = true;
        self.write_checkpoint(true)
    }

    /// A checkpoint counts what the server acknowledged; with `synchronous_commit` off a server crash loses its
    /// last acknowledged commits, and a resume would leave them out. Said once, at the start.
    fn warn_if_not_durable(&mut self) {
        let off = self
            .conn
            .query_column("SHOW synchronous_commit")
            .is_ok_and(|rows| rows.iter().any(|v| v.as_deref() == Some("off")));
        if off {
            eprintln!(
                "{PROG}: warning: the server has synchronous_commit = off: if it crashes, its last commits may be lost \
                 while --checkpoint counts them as done, and a resume would leave them out; for the restore, run with \
                 PGOPTIONS='-c synchronous_commit=on'"
            );
        }
    }

    /// The server's system identifier, if the role may read it.
    fn system_identifier(&mut self) -> Option<String> {
        let rows = self.conn.query_column("SELECT system_identifier::text FROM pg_catalog.pg_control_system()").ok()?;
        rows.into_iter().flatten().next()
    }

    /// Reads the script up to the point without running anything, and checks that its bytes are the ones the
    /// checkpoint was written after.
    fn skip_to(&mut self, to: &Position) -> Flow {
        let started = Instant::now();
        self.progress.set_detail(format!("skipping to line {} (restored before)", to.line));
        self.progress.event(format!("resuming: skipping the {} lines restored before", to.line));
        let mut buf = Vec::with_capacity(64 * 1024);
        let path = self.ckpt.as_ref().expect("checkpoint").store.path().display().to_string();
        let differs = |me: &mut Self, why: String| {
            let msg = format!(
                "{why}: this is not the script --checkpoint {path} was written for; nothing was run — give the same \
                 backup, or remove the file to restore from the start into a fresh cluster"
            );
            me.refuse_checkpoint(me.script.line(), msg)
        };
        // The header's lines one by one (they hold the dump's framing, which the end of the restore checks), the
        // rest in whole blocks: reading and hashing only, as fast as the pipe delivers.
        while self.script.line() < to.line && self.script.line() < crate::framing::HEADER_LINES {
            buf.clear();
            match self.read_line(&mut buf) {
                Ok(0) => {
                    let why = format!(
                        "the script ends at line {}, before the checkpoint's line {}",
                        self.script.line(),
                        to.line
                    );
                    return differs(self, why);
                }
                Ok(_) => {}
                Err(code) => return Flow::Stop(code),
            }
            self.script.check_framing(&buf[lines::bom_len(&buf, self.script.line())..]);
        }
        let mut partial = false;
        while self.script.line() < to.line {
            match self.skip_block(to.line - self.script.line()) {
                // A last line without its newline is a line too, as read_line counts it.
                Ok((0, _)) if partial => {
                    self.script.count_unended_line();
                    partial = false;
                }
                Ok((0, _)) => {
                    let why = format!(
                        "the script ends at line {}, before the checkpoint's line {}",
                        self.script.line(),
                        to.line
                    );
                    return differs(self, why);
                }
                Ok((_, p)) => partial = p,
                Err(code) => return Flow::Stop(code),
            }
        }
        let (hash, _) = self.script.hashes();
        if self.script.bytes() != to.offset || hash != to.prefix_sha256 {
            let why = format!("its first {} lines differ from those the checkpoint recorded", to.line);
            return differs(self, why);
        }
        self.lexer.skip_lines(to.line);
        self.summary.resume = Some(report::ResumeReport {
            checkpoint: path,
            resumed_after_line: to.line,
            skipped_bytes: to.offset,
            skip_seconds: started.elapsed().as_secs_f64(),
            interrupted_at_line: self.ckpt.as_ref().and_then(|c| c.resumed_from.as_ref()?.interrupted_at_line),
            in_flight_done: 0,
        });
        self.progress.event(format!(
            "resuming after line {}: skipped {} in {:.1} s",
            to.line,
            human_bytes(to.offset),
            started.elapsed().as_secs_f64()
        ));
        Flow::Go
    }

    /// Opens the session the script had at the point: its database and user, its settings replayed, its input
    /// encoding and `\restrict` state; and checks that the server reads strings as it did then.
    fn restore_session(&mut self, s: &SessionState) -> Flow {
        let same = self.target.dbname == s.dbname
            && self.target.user == s.user
            && self.target.hosts.join(",") == s.host
            && ports(&self.target) == s.port;
        if !same {
            let args = vec![s.dbname.clone(), s.user.clone(), s.host.clone(), s.port.clone()];
            let env = a9s_core::pg::Env::process();
            let target = match Reconnect::parse(&args).and_then(|r| self.target.reconnect(&r, PROG, &env)) {
                Ok(t) => t,
                Err(e) => {
                    self.ending.connect_failed = true;
                    eprintln!("{PROG}: cannot resume in database {}: {}", s.dbname, e.message);
                    return Flow::Stop(exit::CONNECTION);
                }
            };
            self.conn = Box::new(NoSession);
            match self.open(&target) {
                Ok(conn) => self.adopt(conn, target),
                Err(e) => {
                    self.ending.connect_failed = true;
                    eprintln!("{PROG}: cannot resume in database {}: {}", s.dbname, e.message);
                    return Flow::Stop(e.code);
                }
            }
        }
        self.script.set_encoding(Encoding::parse(&s.input_encoding).ok_or_else(|| s.input_encoding.clone()));
        self.session.restrict = s.restrict.clone();
        for (_, sql) in &s.settings {
            if let Err(e) = self.conn.batch_execute(sql) {
                if self.is_lost(&e) {
                    return self.lost(&e, self.script.line());
                }
                let msg = format!(
                    "cannot give the resumed session the script's setting \"{sql}\": {}; nothing after line {} ran",
                    e.describe(),
                    self.script.line()
                );
                return self.stop(self.script.line(), msg, String::new());
            }
        }
        self.session.settings = s.settings.clone();
        let scs = self.conn.parameter("standard_conforming_strings") == Some("on");
        if scs != s.standard_conforming_strings {
            let msg = format!(
                "the resumed session has standard_conforming_strings {}, the script had {} at line {} (changed in a \
                 way a9s-pgrestore cannot replay): it would read the rest differently; nothing after line {} ran",
                on_off(scs),
                on_off(s.standard_conforming_strings),
                self.script.line(),
                self.script.line()
            );
            return self.stop(self.script.line(), msg, String::new());
        }
        self.split_strings_as(scs);
        Flow::Go
    }

    /// A line has ended: if every effect so far is committed, this is the new point.
    pub(super) fn commit_point(&mut self) -> Flow {
        let busy = self.pool.as_ref().is_some_and(|p| p.is_busy());
        let Some(c) = self.ckpt.as_ref() else { return Flow::Go };
        if !c.dirty || c.in_block || busy || self.lexer.in_statement() || self.poisoned.is_some() {
            return Flow::Go;
        }
        let sync = c.sync_next || c.last_sync.elapsed() >= SYNC_INTERVAL;
        self.write_checkpoint(sync)
    }

    /// Records the point: the current line end, the session.
    fn write_checkpoint(&mut self, sync: bool) -> Flow {
        let session = self.session_state();
        let (line, offset) = (self.script.line(), self.script.bytes());
        let (prefix_sha256, head) = self.script.hashes();
        let c = self.ckpt.as_mut().expect("checkpoint");
        c.file.position = Position { line, offset, prefix_sha256 };
        // A resume names the script by what the interrupted run had read of it; never by less.
        if head.head_bytes >= c.file.script.head_bytes {
            c.file.script = head;
        }
        c.file.session = session;
        match c.store.write(&mut c.file, sync) {
            Ok(()) => {
                c.dirty = false;
                if sync {
                    c.sync_next = false;
                    c.last_sync = Instant::now();
                }
                Flow::Go
            }
            Err(e) => {
                let msg = format!(
                    "{}; the restore stopped here (a resume could not be trusted) — free the space or give another \
                     FILE, then run again: it resumes from the last point written",
                    io_message(format_args!("cannot write --checkpoint {}", c.store.path().display()), &e)
                );
                self.stop(self.script.line(), msg, String::new())
            }
        }
    }

    fn session_state(&self) -> SessionState {
        SessionState {
            dbname: self.target.dbname.clone(),
            user: self.target.user.clone(),
            host: self.target.hosts.join(","),
            port: ports(&self.target),
            settings: self.session.settings.clone(),
            input_encoding: self.script.enc_name(),
            restrict: self.session.restrict.clone(),
            standard_conforming_strings: self.conn.parameter("standard_conforming_strings") == Some("on"),
        }
    }

    /// The restore ended: FILE says whether it is complete (ran to the end of the script) or where it stopped.
    pub(super) fn close_checkpoint(&mut self, code: i32, ran_to_end: bool) -> i32 {
        let (line, dead_end) = (self.script.line(), self.ending.dead_end);
        let Some(c) = self.ckpt.as_mut().filter(|c| !c.refused) else { return code };
        if ran_to_end && (code == exit::OK || code == exit::ERRORS) {
            c.file.state = State::Complete;
            c.file.exit_code = Some(code);
            c.file.interrupted_at_line = None;
            c.dirty = true;
            if let Flow::Stop(stop) = self.write_checkpoint(true) {
                return stop;
            }
            return code;
        }
        c.file.state = State::Interrupted;
        // A resumed run that dies before it has passed the statements that were in flight keeps them so.
        c.file.interrupted_at_line = Some(c.in_flight.interrupted_at(line));
        // The point stays where it was: written only at line ends where everything was committed.
        let sync = true;
        match c.store.write(&mut c.file, sync) {
            Ok(()) => {
                if self.opts.quiet {
                } else if dead_end {
                    // Never the advice to run again: the resume would meet the same line and stop there again.
                    eprintln!(
                        "{PROG}: --checkpoint {}: committed up to line {}; running again would stop at line {line} \
                         again: the script itself stops the restore there",
                        c.store.path().display(),
                        c.file.position.line
                    );
                } else {
                    // Running again resumes; whether it gets further depends on why this run ended.
                    let then = match code {
                        exit::CONNECTION => "once the server is back, run the same command again",
                        exit::INTERRUPTED | exit::TERMINATED => "to go on, run the same command again",
                        _ => "after fixing the cause, run the same command again",
                    };
                    eprintln!(
                        "{PROG}: --checkpoint {}: committed up to line {}; {then}, with the same backup fed again from \
                         its start, to resume from there",
                        c.store.path().display(),
                        c.file.position.line
                    );
                }
                code
            }
            Err(e) => {
                eprintln!(
                    "{PROG}: {}; a resume would start from the last point written",
                    io_message(format_args!("cannot write --checkpoint {}", c.store.path().display()), &e)
                );
                code
            }
        }
    }

    /// Notes what a statement did to the main session's transaction block (with `--checkpoint` only): the
    /// server is asked after any statement that may have opened or ended one.
    pub(super) fn track_block(&mut self, text: &[u8]) {
        let Some(c) = self.ckpt.as_mut() else { return };
        if !classify::may_change_transaction_block(text) {
            return;
        }
        // Failing (in an aborted block, or a lost session) counts as inside: no point is taken.
        c.in_block = !matches!(conn::in_transaction_block(&mut *self.conn), Ok(false));
    }

    /// A new session (at `\connect`) has no transaction block, and the next point goes to disk.
    pub(super) fn checkpoint_new_session(&mut self) {
        if let Some(c) = self.ckpt.as_mut() {
            c.in_block = false;
            c.sync_next = true;
            c.in_flight.synced();
        }
    }

    /// Something ran; with `synced`, the next point goes to disk (a COPY).
    pub(super) fn checkpoint_ran(&mut self, synced: bool) {
        if let Some(c) = self.ckpt.as_mut() {
            c.dirty = true;
            c.sync_next |= synced;
            if synced {
                c.in_flight.synced();
            }
        }
    }

    /// After a resume, the first statement (and any that began up to where the restore died) may have been in
    /// flight: called for each statement before it runs, with its text and first line.
    pub(super) fn enter_statement(&mut self, text: &[u8], first_line: u64) {
        if let Some(c) = self.ckpt.as_mut() {
            c.dirty = true;
            c.in_flight.enter(first_line + memchr::memchr_iter(b'\n', text).count() as u64);
        }
    }

    /// FILE was refused (another script or cluster): the run ended before anything of the script ran.
    pub(super) fn checkpoint_refused(&self) -> bool {
        self.ckpt.as_ref().is_some_and(|c| c.refused)
    }

    pub(super) fn has_checkpoint(&self) -> bool {
        self.ckpt.is_some()
    }

    /// Whether the statement at `line` may have run before the restore died (its outcome unknown).
    pub(super) fn in_flight(&self, line: u64) -> bool {
        self.ckpt.as_ref().is_some_and(|c| c.in_flight.contains(line))
    }

    /// A statement that was in flight met what it creates: done by the interrupted run. A note, not an error.
    pub(super) fn done_before(&mut self, line: u64, e: &SqlError) {
        self.summary.statements += 1;
        if let Some(r) = self.summary.resume.as_mut() {
            r.in_flight_done += 1;
        }
        self.note(
            line,
            &format!(
                "{}: the interrupted restore had run this statement before it died (its outcome was unknown); \
                 counted as done",
                e.describe()
            ),
        );
    }

    /// A COPY that may have been in flight: loading it again into a table that already holds rows would
    /// duplicate them, so the restore stops instead (exit 3). A sequential COPY is atomic: an empty table means
    /// it did not commit.
    pub(super) fn check_copy_in_flight(&mut self, table: &str, line: u64, first: &str) -> Flow {
        if !self.in_flight(line) {
            return Flow::Go;
        }
        if !classify::is_plain_table_name(table) {
            let msg = format!(
                "COPY {table} may have run before the interrupted restore died, and a9s-pgrestore cannot check \
                 whether its rows are there; the restore stopped here — check the table, empty it if needed, and \
                 run again"
            );
            return self.stop(line, msg, first.to_string());
        }
        let sql = format!("SELECT 1 FROM {table} LIMIT 1");
        match self.conn.query_column(&sql) {
            Ok(rows) if !rows.is_empty() => {
                let msg = format!(
                    "COPY {table} was in flight when the restore died and the table holds rows now (the interrupted \
                     run loaded them, or some of them with --jobs): loading it again would duplicate them; the \
                     restore stopped here — check the table, TRUNCATE it if it is not complete, and run again"
                );
                self.stop(line, msg, first.to_string())
            }
            // Empty, or not there: the COPY runs, and meets the server's own error if any.
            Ok(_) => Flow::Go,
            Err(e) if self.is_lost(&e) => self.lost(&e, line),
            Err(_) => Flow::Go,
        }
    }
}

fn ports(t: &Target) -> String {
    t.ports.iter().map(u16::to_string).collect::<Vec<_>>().join(",")
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}
