//! `COPY … FROM stdin` on the main session: its data streamed from the script as psql streams it, and what
//! happens when the server refuses it before, during or after its data. `COPY … TO STDOUT` is in the runner.

use super::*;
use crate::lines;

impl Runner<'_> {
    /// A log line for a large table once it is loaded (stderr not a terminal): shows life in a long restore.
    pub(super) fn table_loaded(&mut self, table: &str, rows: u64, started_at: u64) {
        let bytes = self.script.bytes().saturating_sub(started_at);
        if bytes >= crate::framing::LARGE_TABLE {
            self.progress.event(format!("table {table} loaded: {rows} rows, {}", human_bytes(bytes)));
        }
    }

    pub(super) fn copy_in(&mut self, text: &[u8], table: &str, line: u64, first: &str) -> Flow {
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
        if let Flow::Stop(code) = self.check_copy_in_flight(table, line, first) {
            return Flow::Stop(code);
        }
        self.notices.line.store(line, Ordering::Relaxed);
        let started_at = self.script.bytes();
        let mut prefix = Prefetched::default();
        if self.opts.jobs > 1 && classify::is_text_copy(text) {
            // The sessions of --jobs would each be refused; find out first, on the main session, with a COPY
            // that is started and at once abandoned (no row, no effect).
            if let Err(e) = self.probe_copy(sql) {
                return self.copy_refused(&e, line, first);
            }
            match self.parallel_copy(sql, table, line, first) {
                Ok(flow) => return flow,
                Err(p) => prefix = p,
            }
        }
        self.progress.set_detail(format!("database {}, COPY {table}", self.target.dbname));
        // Out of `self` while the writer borrows it, so lines can be read meanwhile.
        let mut conn = std::mem::replace(&mut self.conn, Box::new(NoSession));
        let mut result = self.stream_copy(&mut *conn, sql, table, line, prefix);
        self.conn = conn;
        self.progress.set_detail(format!("database {}", self.target.dbname));
        if let CopyOutcome::Failed { error, row_line } = &mut result.outcome {
            // The server counts data rows from 1 in its `COPY t, line N` context; the data starts on the line
            // after the statement's last.
            *row_line = error.copy_row().map(|n| line + text.iter().filter(|&&b| b == b'\n').count() as u64 + n);
        }
        let copy = CopyStatement { text, table, line, first, started_at };
        self.copy_finished(result, &copy, None)
    }

    /// Reports what a COPY came to, on the main session (`jobs` None) or over the `--jobs` sessions, and skips
    /// the data lines it left unread, so none is ever run as SQL.
    pub(super) fn copy_finished(&mut self, result: CopyResult, c: &CopyStatement, jobs: Option<usize>) -> Flow {
        let (table, line, first) = (c.table, c.line, c.first);
        let mut data_left = result.data_left;
        let flow = match result.outcome {
            CopyOutcome::Done { rows } => {
                self.checkpoint_ran(true);
                self.table_loaded(table, rows, c.started_at);
                self.summary.statements += 1;
                self.summary.copy_commands += 1;
                self.summary.parallel_copies += u64::from(jobs.is_some());
                self.summary.rows_copied += rows;
                return Flow::Go;
            }
            CopyOutcome::Failed { error, row_line } => match jobs {
                None => self.statement_error(&error, row_line.unwrap_or(line), first, c.text),
                // Cancelled by a signal (all sessions rolled back): the signal's stop, not an error of the script.
                Some(_) if self.signalled().is_some() => return Flow::Stop(self.signalled().expect("caught")),
                Some(jobs) => {
                    self.summary.statements_failed += 1;
                    let msg = format!(
                        "{}; in the data of COPY {table} (line {line}), rolled back on all {jobs} sessions: none of \
                         its rows were loaded",
                        error.describe()
                    );
                    self.fail(row_line.unwrap_or(line), error.sqlstate().map(str::to_string), msg, first.into())
                }
            },
            CopyOutcome::StartRefused(error) => return self.copy_refused(&error, line, first),
            CopyOutcome::Stopped(FeedStop::Input(code)) => return Flow::Stop(code),
            CopyOutcome::Stopped(FeedStop::Nul { column }) => {
                let what = format!("COPY {table} was aborted, none of its rows were loaded");
                return self.stop_at_nul(line, column, &what);
            }
            CopyOutcome::Stopped(FeedStop::Message { message, data_left: left }) => {
                data_left = left;
                self.fail(line, None, message, first.into())
            }
            CopyOutcome::Lost(m) => {
                self.progress.finish();
                eprintln!(
                    "{PROG}: a --jobs session to {} was lost during COPY {table} (started at line {line}; last line \
                     read: {}): {m}; the restore is incomplete — {}",
                    self.target.describe(),
                    self.script.line(),
                    self.loss_advice()
                );
                return Flow::Stop(exit::CONNECTION);
            }
            CopyOutcome::Stalled(why) => {
                self.summary.statements_failed += 1;
                let msg = format!(
                    "COPY {table}: the sessions of this restore waited on each other ({why}); rolled back on all {} \
                     --jobs sessions: none of its rows were loaded — run without --jobs for this script; the \
                     restore stopped here",
                    jobs.unwrap_or(1)
                );
                return self.stop(line, msg, first.into());
            }
            CopyOutcome::Partial(message) => {
                let msg = format!(
                    "COPY {table}: COMMIT failed on a --jobs session after others had committed ({message}): the \
                     table is partly loaded — empty it and load it again"
                );
                self.fail(line, None, msg, first.into())
            }
        };
        if data_left {
            self.after_failed_copy(flow)
        } else {
            flow
        }
    }

    /// The server refused a COPY before its data. psql would now read the data lines as SQL statements (and run
    /// any that parse); a restore never does, so it stops here (exit 3), having run what psql ran up to here.
    pub(super) fn copy_refused(&mut self, error: &SqlError, line: u64, first: &str) -> Flow {
        if self.is_lost(error) {
            return self.lost(error, line);
        }
        let msg = format!(
            "{}; the COPY was refused before its data, and psql would now run its data lines as SQL — \
             a9s-pgrestore never does, so the restore stopped here",
            error.describe()
        );
        self.summary.statements_failed += 1;
        self.error(line, error.sqlstate().map(str::to_string), msg, first.to_string());
        Flow::Stop(exit::STOPPED)
    }

    /// After a COPY that failed: its data lines are skipped up to `\.`, never run as SQL; a piece at a time, so
    /// a long row is never held.
    pub(super) fn after_failed_copy(&mut self, flow: Flow) -> Flow {
        if let Flow::Stop(code) = flow {
            return Flow::Stop(code);
        }
        let mut buf = Vec::with_capacity(lines::PIECE);
        loop {
            buf.clear();
            match self.copy_data_piece(&mut buf, "") {
                DataPiece::End | DataPiece::Eof => return Flow::Go,
                // Not sent: whether it converts does not matter.
                DataPiece::Data { .. } | DataPiece::Bad(_) => {}
                // psql would no longer see the `\.` line after it and run the rest of the script as COPY data.
                DataPiece::Nul(column) => {
                    return self.stop_at_nul(
                        self.script.line(),
                        column,
                        "the data of the failed COPY is not skipped further",
                    )
                }
                DataPiece::Input(code) => return Flow::Stop(code),
            }
        }
    }

    /// Starts `sql` (a COPY FROM STDIN) on the main session and abandons it at once: whether the server accepts
    /// it, without loading anything.
    pub(super) fn probe_copy(&mut self, sql: &str) -> std::result::Result<(), SqlError> {
        // Dropped unfinished: CopyFail, and the server ends the COPY with nothing loaded.
        drop(self.conn.copy_in(sql)?);
        Ok(())
    }

    pub(super) fn stream_copy(
        &mut self,
        conn: &mut dyn Conn,
        sql: &str,
        table: &str,
        line: u64,
        prefix: Prefetched,
    ) -> CopyResult {
        let stopped = |message: String, data_left: bool| CopyResult {
            outcome: CopyOutcome::Stopped(FeedStop::Message { message, data_left }),
            data_left,
        };
        let failed = |error: SqlError, data_left: bool| CopyResult {
            outcome: CopyOutcome::Failed { error, row_line: None },
            data_left,
        };
        let mut data_left = !prefix.complete;
        let mut writer = match conn.copy_in(sql) {
            Ok(w) => w,
            Err(error) => return CopyResult { outcome: CopyOutcome::StartRefused(error), data_left },
        };
        let mut chunk: Vec<u8> = prefix.data;
        if prefix.complete {
            chunk.extend_from_slice(self.script.copy_end());
        }
        // Read straight into the chunk, a piece at a time: a row of any size streams through it.
        chunk.reserve((COPY_CHUNK + lines::PIECE).saturating_sub(chunk.len()));
        while data_left {
            // Whole rows, as many as the input has buffered; else one piece, which may end the data.
            if !self.copy_data_rows(&mut chunk) {
                match self.copy_data_piece(&mut chunk, table) {
                    DataPiece::Data { .. } => {}
                    DataPiece::End => {
                        // psql sends the end marker too: the server checks it (a `\.` ending in CR after rows ending
                        // in LF is an error there) and ignores anything after it.
                        chunk.extend_from_slice(self.script.copy_end());
                        data_left = false;
                    }
                    DataPiece::Eof => {
                        drop(writer);
                        return CopyResult {
                            outcome: CopyOutcome::Stopped(FeedStop::truncated(table, line)),
                            data_left: false,
                        };
                    }
                    DataPiece::Bad(msg) => {
                        drop(writer);
                        return stopped(msg, true);
                    }
                    DataPiece::Nul(column) => {
                        // Dropped unfinished: CopyFail, and the server loads none of the rows.
                        drop(writer);
                        return CopyResult { outcome: CopyOutcome::Stopped(FeedStop::Nul { column }), data_left: true };
                    }
                    DataPiece::Input(code) => {
                        return CopyResult { outcome: CopyOutcome::Stopped(FeedStop::Input(code)), data_left: true }
                    }
                }
            }
            if chunk.len() >= COPY_CHUNK {
                if let Err(error) = writer.write_all(&chunk) {
                    drop(writer);
                    return failed(error, data_left);
                }
                chunk.clear();
            }
        }
        if !chunk.is_empty() {
            if let Err(error) = writer.write_all(&chunk) {
                drop(writer);
                return failed(error, false);
            }
        }
        match writer.finish() {
            Ok(rows) => CopyResult { outcome: CopyOutcome::Done { rows }, data_left: false },
            Err(error) => failed(error, false),
        }
    }
}

/// COPY data goes to the server in chunks of about this size: few, large CopyData messages.
pub(super) const COPY_CHUNK: usize = 256 * 1024;

/// COPY data already read (and converted) before the COPY was sent: with `--jobs`, the first chunk, which shows
/// whether the table is small enough to stay on the main session.
#[derive(Default)]
pub(super) struct Prefetched {
    pub(super) data: Vec<u8>,
    /// The `\.` line came: `data` is all of it.
    pub(super) complete: bool,
}

/// The COPY statement being run, for its report.
pub(super) struct CopyStatement<'a> {
    pub(super) text: &'a [u8],
    pub(super) table: &'a str,
    /// The line of its first word.
    pub(super) line: u64,
    /// Its first line, as errors show it.
    pub(super) first: &'a str,
    /// Input bytes read when it began.
    pub(super) started_at: u64,
}
