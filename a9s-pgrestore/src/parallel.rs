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
//! The pure parts (chunking, the settings to replay, mapping a session's `COPY t, line N` back to the script)
//! are functions over values that unit tests drive; [`Pool`] holds the sessions and their threads.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use a9s_core::pg::error::SqlError;

use crate::outcome::{CopyOutcome, CopyResult, FeedStop};
use crate::runner::conn::{Conn, NoSession};

/// Chunk size: large, so that each is one big write and the dealing costs nothing next to the server's work.
pub const DEFAULT_CHUNK_BYTES: usize = 4 << 20;
/// Overrides the chunk size (bytes); for tests, which need many chunks from small tables.
pub const CHUNK_BYTES_ENV: &str = "A9S_PGRESTORE_CHUNK_BYTES";
/// Most `--jobs` accepted: each is a server session and a backend process.
pub const MAX_JOBS: usize = 64;

/// The chunk size from [`CHUNK_BYTES_ENV`], else [`DEFAULT_CHUNK_BYTES`].
pub fn chunk_bytes_from_env() -> std::result::Result<usize, String> {
    parse_chunk_bytes(std::env::var(CHUNK_BYTES_ENV).ok().as_deref())
}

/// [`CHUNK_BYTES_ENV`]'s value: a positive number of bytes; unset or empty means the default.
pub fn parse_chunk_bytes(value: Option<&str>) -> std::result::Result<usize, String> {
    match value.map(str::trim) {
        None | Some("") => Ok(DEFAULT_CHUNK_BYTES),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{CHUNK_BYTES_ENV}={v} is not a positive number of bytes: fix or unset it")),
        },
    }
}

// ----- the pure parts -----

/// Consecutive COPY data lines of the script, converted to UTF-8, with the script line of the first row that
/// begins in it and the number of rows that begin in it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Chunk {
    pub data: Vec<u8>,
    pub first_line: u64,
    pub lines: u64,
    /// Its last row goes on in the next chunk: a row longer than a chunk is dealt in chunk-sized parts rather
    /// than held whole, and the session that takes an open chunk takes the next one too (it keeps the queue
    /// until the row ends), so a row always reaches one session whole and in order.
    pub open: bool,
}

/// Collects data lines into chunks of at least `limit` bytes (a chunk ends only at a line end, so no row is
/// ever split between sessions).
#[derive(Debug)]
pub struct ChunkBuilder {
    limit: usize,
    cur: Chunk,
}

impl ChunkBuilder {
    pub fn new(limit: usize) -> Self {
        let limit = limit.max(1);
        ChunkBuilder { limit, cur: Self::empty(limit) }
    }

    fn empty(limit: usize) -> Chunk {
        // Room for the last line that crosses the limit, without a reallocation in the common case.
        Chunk {
            data: Vec::with_capacity(limit.saturating_add(64 * 1024).min(limit.saturating_mul(2))),
            ..Chunk::default()
        }
    }

    /// Appends one data line (with its newline) that was line `script_line` of the script.
    pub fn push(&mut self, line: &[u8], script_line: u64) {
        self.cur.data.extend_from_slice(line);
        self.pushed(script_line);
    }

    /// The bytes of the chunk being built, to read a line straight into them (no copy); then call
    /// [`pushed`](Self::pushed), or truncate back what is not data.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.cur.data
    }

    /// Counts a line appended through [`buffer`](Self::buffer).
    pub fn pushed(&mut self, script_line: u64) {
        self.pushed_piece(script_line, true, true);
    }

    /// Counts a piece of a line appended through [`buffer`](Self::buffer): `row_start`, it begins the row on
    /// line `script_line`; `row_end`, it ends it.
    pub fn pushed_piece(&mut self, script_line: u64, row_start: bool, row_end: bool) {
        if row_start {
            if self.cur.lines == 0 {
                self.cur.first_line = script_line;
            }
            debug_assert_eq!(self.cur.first_line + self.cur.lines, script_line, "data lines are consecutive");
            self.cur.lines += 1;
        }
        self.cur.open = !row_end;
    }

    /// Whether the chunk has reached the limit and should be sent.
    pub fn is_full(&self) -> bool {
        self.cur.data.len() >= self.limit
    }

    pub fn is_empty(&self) -> bool {
        self.cur.data.is_empty()
    }

    /// The chunk built so far (none if empty); the builder starts a new one.
    pub fn take(&mut self) -> Option<Chunk> {
        if self.is_empty() {
            return None;
        }
        Some(std::mem::replace(&mut self.cur, Self::empty(self.limit)))
    }
}

/// The script line of row `n` (from 1) of a session that received `chunks` — `(first script line, lines)` in
/// the order it sent them.
pub fn script_line(chunks: &[(u64, u64)], n: u64) -> Option<u64> {
    let mut left = n.checked_sub(1)?;
    for &(first, lines) in chunks {
        if left < lines {
            return Some(first + left);
        }
        left -= lines;
    }
    None
}

/// The statements a session that has applied `applied` must run to match `current` (both as the runner keeps
/// them: one `(key, statement)` per setting, in the order of their last change).
pub fn settings_to_replay(applied: &[(String, String)], current: &[(String, String)]) -> Vec<String> {
    current.iter().filter(|s| !applied.contains(s)).map(|(_, sql)| sql.clone()).collect()
}

// ----- the sessions -----

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

/// What the pool asks of a session that is none of its workers (the main session) while it waits for a COPY's
/// sessions: whether one of them waits for a lock that none will release before the COPY ends.
pub trait Watch {
    /// Of the server processes `waiting`, those that wait for a lock held by one of `holding` or by the
    /// watching session itself.
    fn blocked_by(&mut self, waiting: &[i32], holding: &[i32]) -> std::result::Result<Vec<i32>, String>;
    /// Cancels the statement that server process `pid` runs.
    fn cancel(&mut self, pid: i32);
}

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

/// A chunk goes to the server in CopyData messages of this size.
const SEND_PIECE: usize = 256 * 1024;

/// How long to wait for a report before checking that the worker threads are alive (and, in a COPY, that none
/// waits on another session of the restore).
const POLL: Duration = Duration::from_millis(500);

/// Why a COPY's sessions stalled: the server processes that waited.
fn stall_reason(waiting: &[i32]) -> String {
    let pids = waiting.iter().map(i32::to_string).collect::<Vec<_>>().join(", ");
    let who = if waiting.len() == 1 { "server process" } else { "server processes" };
    format!(
        "{who} {pids} waited for a lock held by another session of this restore, which cannot release it before \
         the COPY ends"
    )
}

/// The server process of a session just opened (0 if the server would not say).
fn backend_pid(session: &mut dyn Conn) -> i32 {
    let rows = session.query_column("SELECT pg_catalog.pg_backend_pid()").unwrap_or_default();
    rows.into_iter().flatten().find_map(|v| v.parse().ok()).unwrap_or(0)
}

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
            .map(|(id, (mut client, line))| {
                let (cmd_tx, cmd_rx) = mpsc::channel();
                let pid = Arc::new(AtomicI32::new(backend_pid(&mut *client)));
                let mut w = WorkerState {
                    id,
                    connect: connect.clone(),
                    line,
                    client,
                    reopen: false,
                    applied: Vec::new(),
                    pid: pid.clone(),
                };
                let reports = report_tx.clone();
                let thread = std::thread::Builder::new()
                    .name(format!("session-{id}"))
                    .spawn(move || w.serve(cmd_rx, reports))
                    .expect("spawn a worker thread");
                Worker { cmd: Some(cmd_tx), thread: Some(thread), pid }
            })
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

    /// Whether a worker that owes its verdict on a COPY waits for a lock that will not be released before the
    /// COPY ends: one held by a worker whose share is loaded (its transaction stays open until every session
    /// has reported) or by the watching main session (which waits for the COPY). The server sees no deadlock
    /// there — the holder waits on the restore, not on a lock — so nothing else would end the wait. Returns
    /// the waiting server processes.
    fn stalled(&self, owing: &[bool], loaded: &[Option<u64>], watch: &mut dyn Watch) -> Vec<i32> {
        let pids = |want: &dyn Fn(usize) -> bool| -> Vec<i32> {
            (0..self.workers.len())
                .filter(|&i| want(i))
                .map(|i| self.workers[i].pid.load(Ordering::Relaxed))
                .filter(|&p| p != 0)
                .collect()
        };
        let waiting = pids(&|i| owing[i]);
        if waiting.is_empty() {
            return Vec::new();
        }
        // A failed check is not a stall: the next tick tries again.
        watch.blocked_by(&waiting, &pids(&|i| loaded[i].is_some())).unwrap_or_default()
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

    /// Queues `chunk` for the sessions; false if none will take it or they stalled. While the queue is full,
    /// checks every [`POLL`] that the sessions do not wait on the main session, which holds what it locked for
    /// the session (an advisory lock, say) while it waits here: then they are cancelled, and `stalled` says why.
    fn deal(
        &self,
        tx: &SyncSender<Chunk>,
        mut chunk: Chunk,
        abort: &AtomicBool,
        started: &[bool],
        watch: &mut dyn Watch,
        stalled: &mut Option<String>,
    ) -> bool {
        let mut pause = Duration::from_micros(100);
        let mut waited = Duration::ZERO;
        loop {
            match tx.try_send(chunk) {
                Ok(()) => return true,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(c)) => chunk = c,
            }
            if abort.load(Ordering::Acquire) {
                return false;
            }
            // The queue holds a chunk per session, so this short wait never starves them.
            std::thread::sleep(pause);
            waited += pause;
            pause = (pause * 2).min(Duration::from_millis(5));
            if waited >= POLL {
                waited = Duration::ZERO;
                let waiting = self.stalled(started, &vec![None; started.len()], watch);
                if !waiting.is_empty() {
                    *stalled = Some(stall_reason(&waiting));
                    abort.store(true, Ordering::Release);
                    for pid in waiting {
                        watch.cancel(pid);
                    }
                    return false;
                }
            }
        }
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

    fn s(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn chunks_end_at_line_ends() {
        let mut b = ChunkBuilder::new(10);
        let mut out = Vec::new();
        for (i, l) in ["1\ta\n", "2\tbbbbbbbbbbbb\n", "3\tc\n", "4\td\n", "5\te\n"].iter().enumerate() {
            b.push(l.as_bytes(), 100 + i as u64);
            if b.is_full() {
                out.push(b.take().unwrap());
            }
        }
        out.extend(b.take());
        assert!(b.take().is_none());
        assert_eq!(
            out,
            vec![
                Chunk { data: b"1\ta\n2\tbbbbbbbbbbbb\n".to_vec(), first_line: 100, lines: 2, open: false },
                Chunk { data: b"3\tc\n4\td\n5\te\n".to_vec(), first_line: 102, lines: 3, open: false },
            ]
        );
        // Every byte once, in order.
        let all: Vec<u8> = out.iter().flat_map(|c| c.data.clone()).collect();
        assert_eq!(all, b"1\ta\n2\tbbbbbbbbbbbb\n3\tc\n4\td\n5\te\n");
    }

    #[test]
    fn a_row_longer_than_a_chunk_is_dealt_in_open_chunks() {
        // Row 1 (line 10) short, row 2 (line 11) of 25 bytes read in pieces of at most 8, row 3 (line 12) short.
        let mut b = ChunkBuilder::new(10);
        let mut out = Vec::new();
        let pieces: [(&[u8], u64, bool, bool); 6] = [
            (b"a\n", 10, true, true),
            (b"bbbbbbbb", 11, true, false),
            (b"bbbbbbbb", 11, false, false),
            (b"bbbbbbbb", 11, false, false),
            (b"\n", 11, false, true),
            (b"c\n", 12, true, true),
        ];
        for (p, line, start, end) in pieces {
            b.buffer().extend_from_slice(p);
            b.pushed_piece(line, start, end);
            if b.is_full() {
                out.push(b.take().unwrap());
            }
        }
        out.extend(b.take());
        let seen: Vec<(usize, u64, u64, bool)> =
            out.iter().map(|c| (c.data.len(), c.first_line, c.lines, c.open)).collect();
        // The rows that begin in each chunk are counted there; a continuation begins none.
        assert_eq!(seen, [(10, 10, 2, true), (16, 0, 0, true), (3, 12, 1, false)]);
        let received: Vec<(u64, u64)> = out.iter().map(|c| (c.first_line, c.lines)).collect();
        assert_eq!((1..=3).map(|n| script_line(&received, n)).collect::<Vec<_>>(), [Some(10), Some(11), Some(12)]);
    }

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

    #[test]
    fn chunk_read_in_place() {
        let mut b = ChunkBuilder::new(1 << 20);
        b.buffer().extend_from_slice(b"x\n");
        b.pushed(7);
        // A line that turns out not to be data is truncated back.
        let len = b.buffer().len();
        b.buffer().extend_from_slice(b"\\.\n");
        b.buffer().truncate(len);
        assert!(!b.is_full());
        assert_eq!(b.take(), Some(Chunk { data: b"x\n".to_vec(), first_line: 7, lines: 1, open: false }));
        assert!(b.is_empty());
    }

    #[test]
    fn lines_map_back_to_the_script() {
        // A session got the chunks starting at script lines 100 (10 rows) and 300 (5 rows).
        let chunks = [(100, 10), (300, 5)];
        assert_eq!(script_line(&chunks, 1), Some(100));
        assert_eq!(script_line(&chunks, 10), Some(109));
        assert_eq!(script_line(&chunks, 11), Some(300));
        assert_eq!(script_line(&chunks, 15), Some(304));
        assert_eq!(script_line(&chunks, 16), None);
        assert_eq!(script_line(&chunks, 0), None);
        assert_eq!(script_line(&[], 1), None);
    }

    #[test]
    fn settings_replay() {
        let a = vec![s("statement_timeout", "SET statement_timeout = 0;"), s("search_path", "SELECT set_config(…)")];
        assert_eq!(settings_to_replay(&[], &a), vec!["SET statement_timeout = 0;", "SELECT set_config(…)"]);
        assert!(settings_to_replay(&a, &a).is_empty());
        // A changed setting moves to the end of the runner's list; only it is replayed.
        let b = vec![s("search_path", "SELECT set_config(…)"), s("statement_timeout", "SET statement_timeout = 5;")];
        assert_eq!(settings_to_replay(&a, &b), vec!["SET statement_timeout = 5;"]);
        let c = vec![
            s("search_path", "SELECT set_config(…)"),
            s("statement_timeout", "SET statement_timeout = 5;"),
            s("role", "SET ROLE app;"),
        ];
        assert_eq!(settings_to_replay(&b, &c), vec!["SET ROLE app;"]);
    }

    // ----- the pool over scripted sessions -----

    use crate::runner::conn::CopySink;
    use std::sync::Condvar;

    /// What the scripted server saw, and how it answers; shared by every session of a test.
    #[derive(Default)]
    struct Server {
        /// `pid: what` for everything sent, in order; `connect pid` for each session opened.
        log: Vec<String>,
        sessions: i32,
        copies: usize,
        /// A data row containing this text is refused at the COPY's end, as the server names it.
        refuse: Option<&'static str>,
        /// The second session to start a COPY waits at its end, as for a lock the first holds, until cancelled.
        stall_second: bool,
        waiting: Vec<i32>,
        cancelled: bool,
    }

    #[derive(Clone, Default)]
    struct Shared(Arc<(Mutex<Server>, Condvar)>);

    impl Shared {
        fn with<R>(&self, f: impl FnOnce(&mut Server) -> R) -> R {
            let r = f(&mut self.0 .0.lock().unwrap());
            self.0 .1.notify_all();
            r
        }
        /// Waits (at most 5 s) until `ready` holds.
        fn wait_for(&self, ready: impl Fn(&Server) -> bool) {
            let guard = self.0 .0.lock().unwrap();
            let _ = self.0 .1.wait_timeout_while(guard, Duration::from_secs(5), |s| !ready(s)).unwrap();
        }
        fn log(&self) -> Vec<String> {
            self.with(|s| s.log.clone())
        }
        fn connect(&self) -> Connect {
            let shared = self.clone();
            Arc::new(move |_line| {
                let pid = shared.with(|s| {
                    s.sessions += 1;
                    s.log.push(format!("connect {}", s.sessions));
                    s.sessions
                });
                Ok(Box::new(Scripted { pid, shared: shared.clone() }) as Box<dyn Conn + Send>)
            })
        }
    }

    struct Scripted {
        pid: i32,
        shared: Shared,
    }

    impl Conn for Scripted {
        fn parameter(&self, _: &str) -> Option<&str> {
            None
        }
        fn is_closed(&self) -> bool {
            false
        }
        fn batch_execute(&mut self, sql: &str) -> std::result::Result<(), SqlError> {
            self.shared.with(|s| s.log.push(format!("{}: {sql}", self.pid)));
            if sql.contains("OUT OF STEP") {
                return Err(SqlError::client("unexpected message from server"));
            }
            Ok(())
        }
        fn query_column(&mut self, sql: &str) -> std::result::Result<Vec<Option<String>>, SqlError> {
            assert!(sql.contains("pg_backend_pid"), "{sql}");
            Ok(vec![Some(self.pid.to_string())])
        }
        fn copy_in(&mut self, sql: &str) -> std::result::Result<Box<dyn CopySink + '_>, SqlError> {
            let (nth, stall) = self.shared.with(|s| {
                s.log.push(format!("{}: {sql}", self.pid));
                s.copies += 1;
                (s.copies, s.stall_second)
            });
            Ok(Box::new(ScriptedCopy { pid: self.pid, shared: self.shared.clone(), data: Vec::new(), nth, stall }))
        }
        fn copy_out(&mut self, _: &str) -> std::result::Result<u64, SqlError> {
            unreachable!("no COPY TO on a worker")
        }
        fn session(&mut self) -> Option<&mut a9s_core::pg::Session> {
            None
        }
    }

    struct ScriptedCopy {
        pid: i32,
        shared: Shared,
        data: Vec<u8>,
        /// This COPY began as the nth of the test.
        nth: usize,
        stall: bool,
    }

    impl CopySink for ScriptedCopy {
        fn write_all(&mut self, data: &[u8]) -> std::result::Result<(), SqlError> {
            if self.stall && self.nth == 1 {
                // Holds its first rows until the other session has begun, so that both take part.
                self.shared.wait_for(|s| s.copies >= 2);
            }
            self.data.extend_from_slice(data);
            Ok(())
        }
        fn finish(self: Box<Self>) -> std::result::Result<u64, SqlError> {
            let pid = self.pid;
            if self.stall && self.nth == 2 {
                self.shared.with(|s| s.waiting.push(pid));
                self.shared.wait_for(|s| s.cancelled);
                return Err(SqlError::server("ERROR", "57014", "canceling statement due to user request"));
            }
            let text = String::from_utf8_lossy(&self.data).into_owned();
            let refuse = self.shared.with(|s| s.refuse);
            if let Some(n) = refuse.and_then(|r| text.lines().position(|l| l.contains(r))) {
                let mut e = SqlError::server("ERROR", "22P02", "invalid input syntax for type integer");
                e.server.as_mut().unwrap().context = Some(format!("COPY t, line {}", n + 1));
                return Err(e);
            }
            let rows = text.lines().count() as u64;
            self.shared.with(|s| s.log.push(format!("{pid}: {rows} rows")));
            Ok(rows)
        }
    }

    /// The main session's view of the scripted server's lock waits.
    struct ScriptedWatch(Shared);

    impl Watch for ScriptedWatch {
        fn blocked_by(&mut self, waiting: &[i32], holding: &[i32]) -> std::result::Result<Vec<i32>, String> {
            Ok(self
                .0
                .with(|s| s.waiting.iter().copied().filter(|p| waiting.contains(p) && !holding.is_empty()).collect()))
        }
        fn cancel(&mut self, pid: i32) {
            self.0.with(|s| {
                s.log.push(format!("cancel {pid}"));
                s.cancelled = true;
            });
        }
    }

    /// `chunks` chunks of `rows` rows each, as script lines from 100 on; `bad` replaces one row's text.
    fn chunks(chunks: u64, rows: u64, bad: Option<(u64, &str)>) -> Vec<Chunk> {
        (0..chunks)
            .map(|c| {
                let first_line = 100 + c * rows;
                let data = (first_line..first_line + rows)
                    .map(|l| match bad {
                        Some((at, text)) if at == l => format!("{text}\n"),
                        _ => format!("{l}\n"),
                    })
                    .collect::<String>();
                Chunk { data: data.into_bytes(), first_line, lines: rows, open: false }
            })
            .collect()
    }

    fn copy_over(pool: &mut Pool<()>, shared: &Shared, mut all: Vec<Chunk>) -> CopyResult {
        let first = all.remove(0);
        let mut rest = all.into_iter();
        let mut feed = || rest.next().map_or(Feed::End, Feed::Chunk);
        pool.copy("COPY t FROM stdin", 1, &[], first, &mut feed, &mut ScriptedWatch(shared.clone()))
    }

    fn count(log: &[String], what: &str) -> usize {
        log.iter().filter(|l| l.ends_with(what)).count()
    }

    #[test]
    fn a_copy_over_two_sessions_commits_when_all_are_loaded() {
        let shared = Shared::default();
        let mut pool: Pool<()> = Pool::open(shared.connect(), "db", 2).unwrap();
        let result = copy_over(&mut pool, &shared, chunks(6, 10, None));
        assert!(matches!(result.outcome, CopyOutcome::Done { rows: 60 }), "{result:?}");
        assert!(!result.data_left);
        let log = shared.log();
        // Every session that began a transaction commits it, and none rolls back.
        assert_eq!(count(&log, ": BEGIN"), count(&log, ": COMMIT"), "{log:?}");
        assert_eq!(count(&log, ": ROLLBACK"), 0, "{log:?}");
    }

    #[test]
    fn a_refused_row_rolls_every_session_back_and_names_its_script_line() {
        let shared = Shared::default();
        shared.with(|s| s.refuse = Some("bad"));
        let mut pool: Pool<()> = Pool::open(shared.connect(), "db", 2).unwrap();
        let result = copy_over(&mut pool, &shared, chunks(6, 10, Some((137, "bad"))));
        match result.outcome {
            CopyOutcome::Failed { error, row_line } => {
                assert_eq!(error.sqlstate(), Some("22P02"));
                assert_eq!(row_line, Some(137));
            }
            other => panic!("{other:?}"),
        }
        let log = shared.log();
        assert_eq!(count(&log, ": COMMIT"), 0, "{log:?}");
        assert_eq!(count(&log, ": BEGIN"), count(&log, ": ROLLBACK"), "{log:?}");
    }

    #[test]
    fn a_session_waiting_on_another_of_the_pool_stops_the_copy() {
        let shared = Shared::default();
        shared.with(|s| s.stall_second = true);
        let mut pool: Pool<()> = Pool::open(shared.connect(), "db", 2).unwrap();
        let result = copy_over(&mut pool, &shared, chunks(6, 10, None));
        // Whichever session began its COPY second waited.
        let waiter = shared.with(|s| s.waiting.clone());
        assert_eq!(waiter.len(), 1, "{waiter:?}");
        let (waiter, holder) = (waiter[0], 3 - waiter[0]);
        match &result.outcome {
            CopyOutcome::Stalled(why) => assert!(why.contains(&format!("server process {waiter} ")), "{why}"),
            other => panic!("{other:?}"),
        }
        let log = shared.log();
        // The loaded session rolled back, the waiting one was cancelled; nothing committed.
        assert_eq!(count(&log, ": COMMIT"), 0, "{log:?}");
        assert!(log.contains(&format!("{holder}: ROLLBACK")), "{log:?}");
        assert!(log.contains(&format!("cancel {waiter}")), "{log:?}");
        // The pool is usable again, each early report accounted for.
        let result = copy_over(&mut pool, &Shared::default(), chunks(1, 5, None));
        assert!(matches!(result.outcome, CopyOutcome::Done { rows: 5 }), "{result:?}");
    }

    #[test]
    fn a_session_out_of_step_is_dropped_and_reopened_for_the_next_job() {
        let shared = Shared::default();
        let mut pool: Pool<u64> = Pool::open(shared.connect(), "db", 1).unwrap();
        pool.exec("CREATE INDEX a OUT OF STEP".into(), &[], 10, 10);
        pool.exec("CREATE INDEX b".into(), &[("k".into(), "SET k = 1;".into())], 11, 11);
        let done = pool.wait_idle();
        assert!(matches!(&done[0].result, Err(Failure::Sql(e)) if e.is_out_of_step()), "{done:?}");
        assert!(done[1].result.is_ok(), "{done:?}");
        assert_eq!(
            shared.log(),
            ["connect 1", "1: CREATE INDEX a OUT OF STEP", "connect 2", "2: SET k = 1;", "2: CREATE INDEX b"]
        );
    }

    #[test]
    fn chunk_size_env() {
        assert_eq!(parse_chunk_bytes(None), Ok(DEFAULT_CHUNK_BYTES));
        assert_eq!(parse_chunk_bytes(Some(" ")), Ok(DEFAULT_CHUNK_BYTES));
        assert_eq!(parse_chunk_bytes(Some("16384")), Ok(16384));
        assert!(parse_chunk_bytes(Some("0")).unwrap_err().contains(CHUNK_BYTES_ENV));
        assert!(parse_chunk_bytes(Some("4M")).is_err());
    }
}
