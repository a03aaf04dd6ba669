//! The pool over scripted sessions ([`Scripted`]): what each session is sent, and what the COPY comes to.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use a9s_core::pg::error::SqlError;

use super::*;
use crate::outcome::{CopyOutcome, CopyResult};
use crate::runner::conn::{Conn, CopySink};

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
    fn cancel_token(&self) -> Option<tokio_postgres::CancelToken> {
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
        Ok(self.0.with(|s| s.waiting.iter().copied().filter(|p| waiting.contains(p) && !holding.is_empty()).collect()))
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
