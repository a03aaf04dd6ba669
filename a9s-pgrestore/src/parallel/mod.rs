//! `--jobs N`: a large `COPY … FROM stdin` block loaded over N sessions of the same database at once, and
//! consecutive index builds (`CREATE INDEX`, `ADD PRIMARY KEY`/`UNIQUE`) spread over them.
//!
//! psql sends a table's rows over one session, so one server backend parses them all while the server's other
//! cores idle. Here the runner (the only reader of the script) deals the rows out in large line-aligned chunks —
//! a row is one line in COPY's text format: newlines inside values are written `\n` — to N worker sessions, each
//! running its own `BEGIN; COPY … FROM stdin` into the same table. The workers commit only when every chunk of
//! the table has been accepted by every session; if one fails, all roll back, so a table is all or nothing as
//! with one COPY.
//!
//! Each worker first replays the session settings the script has made on the main session (`SET …`,
//! `set_config(…)`, tracked by the runner), so every row is read as psql would read it. The data arrives already
//! converted to UTF-8 by the runner, which is what every `postgres` session speaks.
//!
//! Memory is bounded: the runner fills one chunk while at most N wait in a bounded channel and each worker sends
//! one; no temporary files.
//!
//! The parts: `chunk` (the pure parts: chunking, the settings to replay, mapping a session's `COPY t, line N`
//! back to the script; functions over values that unit tests drive), `worker` (a worker thread and its
//! session), `watch` (stopping a COPY whose sessions wait on each other); here, [`Pool`] — the sessions and
//! their threads as the runner drives them — and the all-or-nothing commit.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use a9s_core::pg::error::SqlError;

use crate::outcome::{CopyOutcome, CopyResult, FeedStop};
use crate::runner::conn::Conn;

mod chunk;
#[cfg(test)]
mod tests;
mod watch;
mod worker;

pub use chunk::{chunk_bytes_from_env, Chunk, ChunkBuilder, CHUNK_BYTES_ENV, DEFAULT_CHUNK_BYTES};
use watch::stall_reason;
pub use watch::Watch;

/// Most `--jobs` accepted: each is a server session and a backend process.
pub const MAX_JOBS: usize = 64;

/// What went wrong on a worker session.
#[derive(Debug)]
pub enum Failure {
    /// The server refused the statement or the data.
    Sql(SqlError),
    /// The session is gone (or could not be reopened): the restore cannot go on.
    Lost(String),
}

/// The runner's side of a parallel COPY: where the chunks come from.
pub enum Feed {
    Chunk(Chunk),
    /// The `\.` line: all the data has come.
    End,
    /// The runner cannot go on with this COPY, for this reason (which comes back in the outcome): roll back.
    Stop(FeedStop),
}

/// An index build run by a worker, to be reported in script order once all sessions are idle.
#[derive(Debug)]
pub struct ExecDone<T> {
    pub line: u64,
    /// What the runner needs to report it (its first line, its text…).
    pub tag: T,
    pub result: std::result::Result<(), Failure>,
}

type Settings = Arc<Vec<(String, String)>>;

/// Opens one more session on the main session's server, user and database. The line it is given is where the
/// session's notices are attributed: the worker sets it to the line of the statement it runs.
pub type Connect = Arc<dyn Fn(Arc<AtomicU64>) -> a9s_core::Result<Box<dyn Conn + Send>> + Send + Sync>;

enum Cmd {
    Copy {
        sql: Arc<str>,
        line: u64,
        settings: Settings,
        queue: Arc<Mutex<Receiver<Chunk>>>,
        abort: Arc<AtomicBool>,
    },
    /// After `Loaded`: commit or roll back the open transaction.
    Decide {
        commit: bool,
    },
    Exec {
        sql: String,
        line: u64,
        settings: Settings,
    },
}

#[derive(Debug)]
enum CopyReport {
    /// Received no chunk: nothing to do.
    Idle,
    /// Its share is accepted; its transaction waits for [`Cmd::Decide`].
    Loaded(u64),
    /// Rolled back because another session failed or the feed stopped.
    Cancelled,
    /// Rolled back; the script line of the row named by the server, if any.
    Failed(Failure, Option<u64>),
}

enum Report {
    Copy(usize, CopyReport),
    Decided(usize, std::result::Result<(), Failure>),
    Exec(usize, std::result::Result<(), Failure>),
}

struct Worker {
    cmd: Option<Sender<Cmd>>,
    thread: Option<JoinHandle<()>>,
    /// The server process of its session (0: not known), for the watch over lock waits.
    pid: Arc<AtomicI32>,
}

/// What waiting for the workers brought.
enum Event {
    Report(Report),
    /// Nothing for a while; every worker that owes a report is alive.
    Tick,
    /// A worker that owes a report is gone without sending it.
    Gone,
}

/// N sessions on the current database, each served by its own thread. Opened on the first parallel job in a
/// database and dropped at `\connect`.
pub struct Pool<T> {
    workers: Vec<Worker>,
    reports: Receiver<Report>,
    /// The index build each worker runs, if any.
    running: Vec<Option<(u64, T)>>,
    done: Vec<ExecDone<T>>,
    dbname: String,
}

/// How long to wait for a report before checking that the worker threads are alive (and, in a COPY, that none
/// waits on another session of the restore).
const POLL: Duration = Duration::from_millis(500);

impl<T> Pool<T> {
    /// Opens `jobs` sessions on `dbname` with `connect` (same server and user as the main session). A session
    /// that cannot be opened is a connection error, as for the main one.
    pub fn open(connect: Connect, dbname: &str, jobs: usize) -> a9s_core::Result<Pool<T>> {
        let mut sessions = Vec::with_capacity(jobs);
        for _ in 0..jobs {
            let line = Arc::new(AtomicU64::new(0));
            sessions.push((connect(line.clone())?, line));
        }
        let (report_tx, reports) = mpsc::channel();
        let workers = sessions
            .into_iter()
            .enumerate()
            .map(|(id, (client, line))| worker::spawn(id, connect.clone(), line, client, report_tx.clone()))
            .collect();
        Ok(Pool {
            workers,
            reports,
            running: (0..jobs).map(|_| None).collect(),
            done: Vec::new(),
            dbname: dbname.to_string(),
        })
    }

    /// The database the sessions are on.
    pub fn dbname(&self) -> &str {
        &self.dbname
    }

    pub fn jobs(&self) -> usize {
        self.workers.len()
    }

    fn send(&self, worker: usize, cmd: Cmd) -> bool {
        self.workers[worker].cmd.as_ref().is_some_and(|c| c.send(cmd).is_ok())
    }

    /// The next report; `None` if a worker that owes one is gone without sending it.
    fn next_report(&self, owing: &dyn Fn(usize) -> bool) -> Option<Report> {
        loop {
            match self.next_event(owing) {
                Event::Report(r) => return Some(r),
                Event::Tick => {}
                Event::Gone => return None,
            }
        }
    }

    /// The next report, or a tick after [`POLL`] without one.
    fn next_event(&self, owing: &dyn Fn(usize) -> bool) -> Event {
        match self.reports.recv_timeout(POLL) {
            Ok(r) => Event::Report(r),
            Err(RecvTimeoutError::Timeout) => {
                let dead = self
                    .workers
                    .iter()
                    .enumerate()
                    .any(|(i, w)| owing(i) && w.thread.as_ref().is_none_or(|t| t.is_finished()));
                if dead {
                    // A report sent just before the thread ended is still in the channel.
                    return self.reports.try_recv().map_or(Event::Gone, Event::Report);
                }
                Event::Tick
            }
            Err(RecvTimeoutError::Disconnected) => Event::Gone,
        }
    }

    /// Loads one COPY's data over every session: `first` and then what `feed` gives until [`Feed::End`].
    /// All or nothing: the sessions commit only when all have accepted their share. `watch` looks out for a
    /// session that waits on another of the restore's sessions, which would otherwise wait for ever.
    pub fn copy(
        &mut self,
        sql: &str,
        line: u64,
        settings: &[(String, String)],
        first: Chunk,
        feed: &mut dyn FnMut() -> Feed,
        watch: &mut dyn Watch,
    ) -> CopyResult {
        debug_assert!(self.running.iter().all(Option::is_none), "COPY only when all sessions are idle");
        let n = self.workers.len();
        let (tx, rx): (SyncSender<Chunk>, Receiver<Chunk>) = mpsc::sync_channel(n);
        let queue = Arc::new(Mutex::new(rx));
        let abort = Arc::new(AtomicBool::new(false));
        let sql: Arc<str> = Arc::from(sql);
        let settings: Settings = Arc::new(settings.to_vec());
        let mut started = vec![false; n];
        for (i, s) in started.iter_mut().enumerate() {
            *s = self.send(
                i,
                Cmd::Copy {
                    sql: sql.clone(),
                    line,
                    settings: settings.clone(),
                    queue: queue.clone(),
                    abort: abort.clone(),
                },
            );
        }
        drop(queue);

        // Deal the chunks. A worker that fails raises `abort` and discards what still comes, so a full channel
        // never blocks the dealing for good.
        let mut fed_to_end = false;
        let mut stopped: Option<FeedStop> = None;
        // Set when a session waited on another of ours (see `stalled`).
        let mut stalled: Option<String> = None;
        let mut next = Some(first);
        while let Some(chunk) = next.take() {
            if abort.load(Ordering::Acquire) || !self.deal(&tx, chunk, &abort, &started, watch, &mut stalled) {
                break;
            }
            match feed() {
                Feed::Chunk(c) => next = Some(c),
                Feed::End => fed_to_end = true,
                Feed::Stop(why) => {
                    stopped = Some(why);
                    abort.store(true, Ordering::Release);
                }
            }
        }
        drop(tx);

        // Every session's verdict on its share.
        let mut loaded = vec![None; n];
        let mut failure: Option<(Failure, Option<u64>)> = None;
        let mut lost: Option<String> = None;
        let mut owing = started.clone();
        // Once a session waited on another of ours, the sessions whose share was loaded are rolled back at once,
        // releasing what the others wait for: which were, and whether the report of that ROLLBACK is to come.
        let mut rolled_back = vec![false; n];
        let mut rollback_owed = vec![false; n];
        while owing.iter().any(|o| *o) {
            let owing_now = owing.clone();
            match self.next_event(&|i| owing_now[i]) {
                Event::Tick => {
                    if stalled.is_some() {
                        continue;
                    }
                    let waiting = self.stalled(&owing, &loaded, watch);
                    if waiting.is_empty() {
                        continue;
                    }
                    stalled = Some(stall_reason(&waiting));
                    abort.store(true, Ordering::Release);
                    for (i, r) in rolled_back.iter_mut().enumerate() {
                        if loaded[i].is_some() && self.send(i, Cmd::Decide { commit: false }) {
                            *r = true;
                            rollback_owed[i] = true;
                        }
                    }
                    // The main session's locks stay: the waiting statements are cancelled instead.
                    for pid in waiting {
                        watch.cancel(pid);
                    }
                }
                Event::Report(Report::Copy(i, r)) => {
                    owing[i] = false;
                    match r {
                        CopyReport::Idle | CopyReport::Cancelled => {}
                        CopyReport::Loaded(rows) => loaded[i] = Some(rows),
                        CopyReport::Failed(Failure::Lost(m), _) => {
                            lost.get_or_insert(m);
                        }
                        CopyReport::Failed(f, line) => {
                            // The earliest row in the script is the one psql would have stopped at.
                            let better = match (&failure, line) {
                                (None, _) => true,
                                (Some((_, Some(a))), Some(b)) => b < *a,
                                (Some((_, None)), Some(_)) => true,
                                _ => false,
                            };
                            if better {
                                failure = Some((f, line));
                            }
                        }
                    }
                }
                Event::Report(Report::Decided(i, _)) => rollback_owed[i] = false,
                Event::Report(_) => {}
                Event::Gone => {
                    lost.get_or_insert_with(|| "a worker session's thread ended unexpectedly".to_string());
                    owing.iter_mut().for_each(|o| *o = false);
                }
            }
        }
        if !fed_to_end && failure.is_none() && lost.is_none() && stopped.is_none() && stalled.is_none() {
            // Every worker refused the channel: only possible when all are gone.
            lost = Some("every worker session is gone".into());
        }

        let commit = fed_to_end && failure.is_none() && lost.is_none() && stopped.is_none() && stalled.is_none();
        let mut decided_err: Option<String> = None;
        let mut committed = 0usize;
        let mut owing: Vec<bool> = (0..n).map(|i| loaded[i].is_some() && !rolled_back[i]).collect();
        for (i, o) in owing.iter_mut().enumerate() {
            if rollback_owed[i] {
                // Its early ROLLBACK's report, so that none is left for the next job.
                *o = true;
            } else if *o && !self.send(i, Cmd::Decide { commit }) {
                *o = false;
                decided_err.get_or_insert_with(|| format!("worker session {i} is gone"));
            }
        }
        while owing.iter().any(|o| *o) {
            let owing_now = owing.clone();
            match self.next_report(&|i| owing_now[i]) {
                Some(Report::Decided(i, r)) => {
                    owing[i] = false;
                    match r {
                        Ok(()) => committed += 1,
                        Err(Failure::Lost(m)) => {
                            decided_err.get_or_insert(m);
                        }
                        Err(Failure::Sql(e)) => {
                            decided_err.get_or_insert_with(|| e.describe());
                        }
                    }
                }
                Some(_) => {}
                None => {
                    decided_err.get_or_insert_with(|| "a worker session's thread ended unexpectedly".to_string());
                    owing.iter_mut().for_each(|o| *o = false);
                }
            }
        }

        let outcome = if let Some(m) = lost {
            CopyOutcome::Lost(m)
        } else if let Some(why) = stalled {
            CopyOutcome::Stalled(why)
        } else if let Some(why) = stopped {
            CopyOutcome::Stopped(why)
        } else if let Some((Failure::Sql(error), row_line)) = failure {
            CopyOutcome::Failed { error, row_line }
        } else if let Some((Failure::Lost(m), _)) = failure {
            CopyOutcome::Lost(m)
        } else if let Some(m) = decided_err {
            if commit && committed > 0 {
                CopyOutcome::Partial(m)
            } else {
                CopyOutcome::Lost(m)
            }
        } else {
            CopyOutcome::Done { rows: loaded.iter().flatten().sum() }
        };
        CopyResult { outcome, data_left: !fed_to_end }
    }

    /// Runs `sql` (an index build) on an idle session, waiting for one if all are busy. Its outcome comes
    /// back from [`wait_idle`](Self::wait_idle).
    pub fn exec(&mut self, sql: String, settings: &[(String, String)], line: u64, tag: T) {
        let free = loop {
            if let Some(i) = self.running.iter().position(Option::is_none) {
                break i;
            }
            if !self.collect_one() {
                // Every busy worker is gone: their jobs are recorded as lost; run this one nowhere either.
                self.done.push(ExecDone {
                    line,
                    tag,
                    result: Err(Failure::Lost("the worker sessions are gone".into())),
                });
                return;
            }
        };
        let settings: Settings = Arc::new(settings.to_vec());
        if self.send(free, Cmd::Exec { sql, line, settings }) {
            self.running[free] = Some((line, tag));
        } else {
            self.done.push(ExecDone {
                line,
                tag,
                result: Err(Failure::Lost(format!("worker session {free} is gone"))),
            });
        }
    }

    /// Whether an index build is still running.
    pub fn is_busy(&self) -> bool {
        self.running.iter().any(Option::is_some)
    }

    /// Waits for one running statement; false if none could be collected (all gone).
    fn collect_one(&mut self) -> bool {
        let running: Vec<bool> = self.running.iter().map(Option::is_some).collect();
        match self.next_report(&|i| running[i]) {
            Some(Report::Exec(i, result)) => {
                if let Some((line, tag)) = self.running[i].take() {
                    self.done.push(ExecDone { line, tag, result });
                }
                true
            }
            Some(_) => true,
            None => {
                for slot in self.running.iter_mut() {
                    if let Some((line, tag)) = slot.take() {
                        self.done.push(ExecDone {
                            line,
                            tag,
                            result: Err(Failure::Lost("a worker session's thread ended unexpectedly".into())),
                        });
                    }
                }
                false
            }
        }
    }

    /// Waits until every session is idle; returns the statements run since the last call, in script order.
    pub fn wait_idle(&mut self) -> Vec<ExecDone<T>> {
        while self.is_busy() {
            self.collect_one();
        }
        let mut done = std::mem::take(&mut self.done);
        done.sort_by_key(|d| d.line);
        done
    }
}

impl<T> Drop for Pool<T> {
    fn drop(&mut self) {
        // Closing the command channels ends the threads, which close their sessions. Wait for them only when
        // idle: a statement still running (the restore is being abandoned) must not hold up the exit.
        let idle = !self.is_busy();
        for w in &mut self.workers {
            w.cmd = None;
        }
        if idle {
            for w in &mut self.workers {
                if let Some(t) = w.thread.take() {
                    let _ = t.join();
                }
            }
        }
    }
}
