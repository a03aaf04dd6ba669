//! The watch over a COPY's sessions: one that waits for a lock held by another session of the restore (a
//! worker whose share is loaded, or the main session) would wait for ever, as the server sees no deadlock; the
//! main session ([`Watch`], answered with `pg_blocking_pids` in `runner/`) finds it and the COPY is stopped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::Duration;

use super::{Chunk, Pool, POLL};

/// What the pool asks of a session that is none of its workers (the main session) while it waits for a COPY's
/// sessions: whether one of them waits for a lock that none will release before the COPY ends.
pub trait Watch {
    /// Of the server processes `waiting`, those that wait for a lock held by one of `holding` or by the
    /// watching session itself.
    fn blocked_by(&mut self, waiting: &[i32], holding: &[i32]) -> std::result::Result<Vec<i32>, String>;
    /// Cancels the statement that server process `pid` runs.
    fn cancel(&mut self, pid: i32);
}

/// Why a COPY's sessions stalled: the server processes that waited.
pub(super) fn stall_reason(waiting: &[i32]) -> String {
    let pids = waiting.iter().map(i32::to_string).collect::<Vec<_>>().join(", ");
    let who = if waiting.len() == 1 { "server process" } else { "server processes" };
    format!(
        "{who} {pids} waited for a lock held by another session of this restore, which cannot release it before \
         the COPY ends"
    )
}

impl<T> Pool<T> {
    /// Whether a worker that owes its verdict on a COPY waits for a lock that will not be released before the
    /// COPY ends: one held by a worker whose share is loaded (its transaction stays open until every session
    /// has reported) or by the watching main session (which waits for the COPY). The server sees no deadlock
    /// there — the holder waits on the restore, not on a lock — so nothing else would end the wait. Returns
    /// the waiting server processes.
    pub(super) fn stalled(&self, owing: &[bool], loaded: &[Option<u64>], watch: &mut dyn Watch) -> Vec<i32> {
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

    /// Queues `chunk` for the sessions; false if none will take it or they stalled. While the queue is full,
    /// checks every [`POLL`] that the sessions do not wait on the main session, which holds what it locked for
    /// the session (an advisory lock, say) while it waits here: then they are cancelled, and `stalled` says why.
    pub(super) fn deal(
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
}
