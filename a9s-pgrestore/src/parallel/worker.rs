//! A worker thread and its session: it replays the script's settings, takes its share of a COPY's chunks and
//! streams them, commits or rolls back when told, runs index builds; a session out of step is dropped and
//! reopened for the next job.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};

use a9s_core::pg::error::SqlError;

use super::chunk::{script_line, settings_to_replay};
use super::{Chunk, Cmd, Connect, CopyReport, Failure, Report, Worker};
use crate::runner::conn::{Conn, NoSession};

/// A chunk goes to the server in CopyData messages of this size.
const SEND_PIECE: usize = 256 * 1024;

/// The server process of a session just opened (0 if the server would not say).
fn backend_pid(session: &mut dyn Conn) -> i32 {
    let rows = session.query_column("SELECT pg_catalog.pg_backend_pid()").unwrap_or_default();
    rows.into_iter().flatten().find_map(|v| v.parse().ok()).unwrap_or(0)
}

/// Starts worker `id`'s thread over `client`, its session just opened with `connect`, which notices attribute to
/// `line`; its reports go to `reports`.
pub(super) fn spawn(
    id: usize,
    connect: Connect,
    line: Arc<AtomicU64>,
    mut client: Box<dyn Conn + Send>,
    reports: Sender<Report>,
) -> Worker {
    let (cmd_tx, cmd_rx) = mpsc::channel();
    let pid = Arc::new(AtomicI32::new(backend_pid(&mut *client)));
    let mut w = WorkerState { id, connect, line, client, reopen: false, applied: Vec::new(), pid: pid.clone() };
    let thread = std::thread::Builder::new()
        .name(format!("session-{id}"))
        .spawn(move || w.serve(cmd_rx, reports))
        .expect("spawn a worker thread");
    Worker { cmd: Some(cmd_tx), thread: Some(thread), pid }
}

/// A worker thread's session.
struct WorkerState {
    id: usize,
    connect: Connect,
    /// The line of the statement running, for the session's notices.
    line: Arc<AtomicU64>,
    /// Its session; [`NoSession`] after [`drop_session`](Self::drop_session), until the next job reopens one.
    client: Box<dyn Conn + Send>,
    /// The session was dropped on purpose and is reopened for the next job; one the server closed is lost.
    reopen: bool,
    applied: Vec<(String, String)>,
    /// The server process of `client`, shared with the pool.
    pid: Arc<AtomicI32>,
}

impl WorkerState {
    fn serve(&mut self, cmds: Receiver<Cmd>, reports: Sender<Report>) {
        while let Ok(cmd) = cmds.recv() {
            let report = match cmd {
                Cmd::Copy { sql, line, settings, queue, abort } => {
                    self.line.store(line, Ordering::Relaxed);
                    Report::Copy(self.id, self.copy(&sql, &settings, &queue, &abort))
                }
                Cmd::Decide { commit } => Report::Decided(self.id, self.decide(commit)),
                Cmd::Exec { sql, line, settings } => {
                    self.line.store(line, Ordering::Relaxed);
                    Report::Exec(self.id, self.exec(&sql, &settings))
                }
            };
            if reports.send(report).is_err() {
                return;
            }
        }
    }

    /// Drops the session unused — the way out for one out of step (a COPY refused at its start, a COPY the
    /// server found inside a statement) or that cannot roll back: the server rolls back what it had begun,
    /// and the next job opens a new one.
    fn drop_session(&mut self) {
        self.client = Box::new(NoSession);
        self.reopen = true;
        self.pid.store(0, Ordering::Relaxed);
    }

    /// The session, reopened if needed, with the script's settings applied.
    fn session(&mut self, settings: &[(String, String)]) -> std::result::Result<&mut (dyn Conn + Send), Failure> {
        if self.reopen {
            self.applied.clear();
            self.client = (self.connect)(self.line.clone()).map_err(|e| Failure::Lost(e.message))?;
            self.reopen = false;
            self.pid.store(backend_pid(&mut *self.client), Ordering::Relaxed);
        } else if self.client.is_closed() {
            return Err(Failure::Lost(format!("the connection of worker session {} was closed", self.id)));
        }
        for sql in &settings_to_replay(&self.applied, settings) {
            if let Err(e) = self.client.batch_execute(sql) {
                return Err(self.failure(e));
            }
        }
        self.applied = settings.to_vec();
        Ok(&mut *self.client)
    }

    fn failure(&self, e: SqlError) -> Failure {
        if e.is_session_lost(self.client.is_closed()) {
            Failure::Lost(e.describe())
        } else {
            Failure::Sql(e)
        }
    }

    fn exec(&mut self, sql: &str, settings: &[(String, String)]) -> std::result::Result<(), Failure> {
        let client = self.session(settings)?;
        match client.batch_execute(sql) {
            Ok(()) => Ok(()),
            Err(e) => {
                if e.is_out_of_step() && !client.is_closed() {
                    // The server began a COPY inside the statement: the runner judges it as on the main session
                    // (a stop); this session, out of step, is dropped unused, which rolls the statement back.
                    self.drop_session();
                    return Err(Failure::Sql(e));
                }
                Err(self.failure(e))
            }
        }
    }

    fn decide(&mut self, commit: bool) -> std::result::Result<(), Failure> {
        if self.reopen {
            return Err(Failure::Lost(format!("worker session {} is gone", self.id)));
        }
        match self.client.batch_execute(if commit { "COMMIT" } else { "ROLLBACK" }) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.failure(e)),
        }
    }

    fn rollback(&mut self) -> std::result::Result<(), Failure> {
        self.decide(false)
    }

    fn copy(
        &mut self,
        sql: &str,
        settings: &[(String, String)],
        queue: &Mutex<Receiver<Chunk>>,
        abort: &AtomicBool,
    ) -> CopyReport {
        // The queue stays this session's while the chunk it took is open (a row goes on in the next one).
        let held = std::cell::RefCell::new(None);
        let next = || next_chunk(queue, &mut held.borrow_mut());
        let fail = |abort: &AtomicBool| {
            abort.store(true, Ordering::Release);
            // Take what still comes, so the dealer never waits on a full channel.
            while next().is_some() {}
        };
        // Wait for a first chunk before opening a transaction: a small table may need fewer sessions.
        let Some(first) = next() else { return CopyReport::Idle };
        if abort.load(Ordering::Acquire) {
            fail(abort);
            return CopyReport::Cancelled;
        }
        let client = match self.session(settings) {
            Ok(c) => c,
            Err(f) => {
                fail(abort);
                return CopyReport::Failed(f, None);
            }
        };
        if let Err(e) = client.batch_execute("BEGIN") {
            let f = self.failure(e);
            fail(abort);
            return CopyReport::Failed(f, None);
        }
        let mut received: Vec<(u64, u64)> = Vec::new();
        let result = Self::stream(client, sql, first, &next, abort, &mut received);
        match result {
            Streamed::Rows(rows) => CopyReport::Loaded(rows),
            Streamed::Aborted => {
                fail(abort);
                match self.rollback_or_drop() {
                    Ok(()) => CopyReport::Cancelled,
                    Err(f) => CopyReport::Failed(f, None),
                }
            }
            Streamed::Io(msg) => {
                fail(abort);
                let _ = self.rollback_or_drop();
                CopyReport::Failed(Failure::Lost(format!("worker session {}: {msg}", self.id)), None)
            }
            Streamed::Refused(e, at_start) => {
                fail(abort);
                let line = e.copy_row().and_then(|n| script_line(&received, n));
                let f = self.failure(e);
                if at_start {
                    // The session may be out of step after a COPY refused at its start (see the runner's
                    // `reopen`): a new one replaces it; dropping this one rolls its transaction back.
                    self.drop_session();
                } else if let Err(lost) = self.rollback_or_drop() {
                    return CopyReport::Failed(lost, None);
                }
                CopyReport::Failed(f, line)
            }
        }
    }

    /// Streams `first` and the chunks that follow into one COPY, recording what it sent in `received`.
    fn stream(
        client: &mut (dyn Conn + Send),
        sql: &str,
        first: Chunk,
        next: &dyn Fn() -> Option<Chunk>,
        abort: &AtomicBool,
        received: &mut Vec<(u64, u64)>,
    ) -> Streamed {
        let mut writer = match client.copy_in(sql) {
            Ok(w) => w,
            Err(e) => return Streamed::Refused(e, true),
        };
        let mut chunk = Some(first);
        let mut open = false;
        while let Some(c) = chunk.take() {
            open = c.open;
            if abort.load(Ordering::Acquire) {
                // Another session failed: dropping the writer ends this COPY with CopyFail.
                return Streamed::Aborted;
            }
            received.push((c.first_line, c.lines));
            // In pieces: the client library copies each into its own buffers, which would otherwise grow to a
            // whole chunk per session and stay that large.
            if let Err(e) = c.data.chunks(SEND_PIECE).try_for_each(|piece| writer.write_all(piece)) {
                drop(writer);
                // Writing failed without a server error (`io_to_sql`): the connection broke.
                return if e.broken && e.server.is_none() {
                    Streamed::Io(e.describe())
                } else {
                    Streamed::Refused(e, false)
                };
            }
            drop(c);
            chunk = next();
        }
        if open {
            // The feed stopped in the middle of a row: never let the server take half a row.
            return Streamed::Aborted;
        }
        match writer.finish() {
            Ok(rows) => Streamed::Rows(rows),
            Err(e) => Streamed::Refused(e, false),
        }
    }

    /// Rolls back; a session that cannot is dropped (which rolls back too) and reopened for the next job.
    fn rollback_or_drop(&mut self) -> std::result::Result<(), Failure> {
        match self.rollback() {
            Ok(()) => Ok(()),
            Err(Failure::Lost(m)) => Err(Failure::Lost(m)),
            Err(Failure::Sql(_)) => {
                self.drop_session();
                Ok(())
            }
        }
    }
}

/// The next chunk from the queue shared by the sessions; `held` keeps the queue locked after an open chunk, so
/// that the rest of its row comes to this session too (the runner is the one sender: the order is the script's).
fn next_chunk<'q>(
    queue: &'q Mutex<Receiver<Chunk>>,
    held: &mut Option<MutexGuard<'q, Receiver<Chunk>>>,
) -> Option<Chunk> {
    let guard = match held.take() {
        Some(g) => g,
        None => queue.lock().ok()?,
    };
    let chunk = guard.recv().ok()?;
    if chunk.open {
        *held = Some(guard);
    }
    Some(chunk)
}

enum Streamed {
    Rows(u64),
    Aborted,
    /// The server refused (at the COPY's start: the session may be out of step).
    Refused(SqlError, bool),
    /// Writing failed without a server error.
    Io(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_chunk_keeps_the_queue_until_its_row_ends() {
        let (tx, rx) = mpsc::sync_channel(4);
        let queue = Mutex::new(rx);
        for (i, open) in [true, true, false].into_iter().enumerate() {
            tx.send(Chunk { data: vec![b'x'; i + 1], open, ..Chunk::default() }).unwrap();
        }
        drop(tx);
        let mut held = None;
        assert!(next_chunk(&queue, &mut held).unwrap().open);
        assert!(queue.try_lock().is_err(), "another session could take the rest of the row");
        assert!(next_chunk(&queue, &mut held).unwrap().open);
        assert_eq!(next_chunk(&queue, &mut held).unwrap().data.len(), 3);
        assert!(held.is_none());
        assert!(queue.try_lock().is_ok());
        assert!(next_chunk(&queue, &mut held).is_none());
    }
}
