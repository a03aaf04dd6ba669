//! Ctrl-C (SIGINT) and SIGTERM during a restore end it the way a lost connection does: the statement in flight
//! cancelled on the server, the summary printed (what committed, the line reached) and, with `--checkpoint`,
//! the command that resumes — then exit 130 or 143, the statuses a shell gives a program a signal ended.
//!
//! The handler only records the signal (async-signal-safe). The runner checks it before every line it reads,
//! before every statement and after every failed request. A watcher thread, woken through a pipe, asks the
//! server to cancel what the main session runs, so a long statement's wait ends too; and the handler passes a
//! signal that landed on another thread on to the main thread, whose blocked read of the input it interrupts
//! (it is installed without SA_RESTART). A second signal from outside ends the program at once.

use std::ffi::OsString;
use std::io::BufRead;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicUsize, Ordering::SeqCst};
use std::sync::{Mutex, Once};

use a9s_core::pg::{CancelToken, Target};

/// The first signal caught (0: none).
static CAUGHT: AtomicI32 = AtomicI32::new(0);
/// Signals sent from outside (not the handler's own hand-over to the main thread).
static RECEIVED: AtomicU32 = AtomicU32::new(0);
/// The handler handed a signal over to the main thread, which has not run it yet.
static HANDED_OVER: AtomicBool = AtomicBool::new(false);
/// The thread that reads the input and drives the main session.
static MAIN: AtomicUsize = AtomicUsize::new(0);
/// The write end of the watcher's pipe (-1: none).
static WAKE: AtomicI32 = AtomicI32::new(-1);
/// The main session, for the watcher's cancel request.
static SESSION: Mutex<Option<(Target, CancelToken)>> = Mutex::new(None);
/// The `--jobs` sessions opened so far (a few per database; those closed since are ignored by the server).
static WORKERS: Mutex<Vec<(Target, CancelToken)>> = Mutex::new(Vec::new());

extern "C" fn on_signal(sig: libc::c_int) {
    // SAFETY (the whole body): only async-signal-safe calls — pthread_self, pthread_kill, write, signal, raise.
    let main = MAIN.load(SeqCst);
    let on_main = unsafe { libc::pthread_self() } as usize == main;
    if !(on_main && HANDED_OVER.swap(false, SeqCst)) && RECEIVED.fetch_add(1, SeqCst) >= 1 {
        // The second Ctrl-C: the operator will not wait for the summary.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
        return;
    }
    if CAUGHT.compare_exchange(0, sig, SeqCst, SeqCst).is_ok() {
        let fd = WAKE.load(SeqCst);
        if fd >= 0 {
            unsafe { libc::write(fd, b"!".as_ptr().cast(), 1) };
        }
    }
    if !on_main {
        HANDED_OVER.store(true, SeqCst);
        unsafe { libc::pthread_kill(main as libc::pthread_t, sig) };
    }
}

/// Catches SIGINT and SIGTERM from now on, on behalf of the calling thread (the runner's). Once per process.
pub(super) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        MAIN.store(unsafe { libc::pthread_self() } as usize, SeqCst);
        let mut fds = [-1; 2];
        // SAFETY: pipe2 fills two descriptors we own from here on.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == 0 {
            WAKE.store(fds[1], SeqCst);
            let read_end = fds[0];
            let _ = std::thread::Builder::new().name("signals".into()).spawn(move || watch(read_end));
        }
        for sig in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: a zeroed sigaction with our handler, no SA_RESTART (a blocked read returns EINTR).
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(sig, &sa, std::ptr::null_mut());
            }
        }
    });
}

/// The watcher: waits for the handler's word, then cancels the main session's statement.
fn watch(fd: libc::c_int) {
    let mut b = [0u8; 1];
    loop {
        // SAFETY: reads into our own buffer from the pipe's read end, which only this thread uses.
        let n = unsafe { libc::read(fd, b.as_mut_ptr().cast(), 1) };
        if n == 1 {
            break;
        }
        if n == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return;
        }
    }
    let mut sessions: Vec<(Target, CancelToken)> =
        SESSION.lock().map(|s| s.iter().cloned().collect()).unwrap_or_default();
    sessions.extend(WORKERS.lock().map(|w| w.clone()).unwrap_or_default());
    for (target, token) in sessions {
        // Nothing to say if it fails: the statement then ends on its own, and the runner stops after it.
        let _ = target.cancel(&token);
    }
}

/// A `--jobs` session whose statement a signal cancels too.
pub(super) fn watch_worker(target: &Target, token: CancelToken) {
    if let Ok(mut w) = WORKERS.lock() {
        w.push((target.clone(), token));
    }
}

/// The session whose statement a signal cancels from now on.
pub(super) fn watch_session(target: &Target, token: CancelToken) {
    if let Ok(mut s) = SESSION.lock() {
        *s = Some((target.clone(), token));
    }
}

/// The signal caught, if any: SIGINT or SIGTERM.
pub(super) fn caught() -> Option<i32> {
    match CAUGHT.load(SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}

/// The name and the exit status of a signal caught.
pub(super) fn describe(sig: i32) -> (&'static str, i32) {
    if sig == libc::SIGTERM {
        ("SIGTERM", super::exit::TERMINATED)
    } else {
        ("SIGINT", super::exit::INTERRUPTED)
    }
}

/// The input as the runner reads it: a read the signal interrupted fails (std's `read_until` would retry it).
pub(super) struct Interruptible<R>(pub R);

impl<R: std::io::Read> std::io::Read for Interruptible<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match self.0.read(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                    if caught().is_some() {
                        return Err(std::io::Error::other("interrupted by a signal"));
                    }
                }
                r => return r,
            }
        }
    }
}

impl<R: BufRead> BufRead for Interruptible<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        // A loop would hold the borrow of the buffer across tries: ask first, then borrow.
        loop {
            match self.0.fill_buf() {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                    if caught().is_some() {
                        return Err(std::io::Error::other("interrupted by a signal"));
                    }
                }
                Err(e) => return Err(e),
                Ok(_) => break,
            }
        }
        self.0.fill_buf()
    }
    fn consume(&mut self, n: usize) {
        self.0.consume(n)
    }
}

/// This program's command line, quoted for a shell, passwords in connection strings replaced by `***`: the
/// command that resumes a restore with `--checkpoint`.
pub(super) fn command_line() -> String {
    command_line_of(std::env::args_os())
}

fn command_line_of(args: impl IntoIterator<Item = OsString>) -> String {
    let mut words = Vec::new();
    for (i, a) in args.into_iter().enumerate() {
        let a = a.to_string_lossy().into_owned();
        // The program as it was called, or its bare name when called by a path of the build.
        let a = if i == 0 { a.rsplit('/').next().unwrap_or(&a).to_string() } else { redact(&a) };
        words.push(shell_quote(&a));
    }
    words.join(" ")
}

/// `password=VALUE` (conninfo) and `scheme://user:VALUE@` (URI) with VALUE replaced by `***`.
fn redact(arg: &str) -> String {
    let mut out = arg.to_string();
    if let Some(at) = out.to_ascii_lowercase().find("password=") {
        let from = at + "password=".len();
        let rest = &out[from..];
        let end = if let Some(q) = rest.strip_prefix('\'') {
            1 + q.find('\'').map_or(q.len(), |e| e + 1)
        } else {
            rest.find(char::is_whitespace).unwrap_or(rest.len())
        };
        out.replace_range(from..from + end, "***");
    }
    if let Some(scheme) = out.find("://") {
        let auth_end = out[scheme + 3..].find(['/', '?']).map_or(out.len(), |e| scheme + 3 + e);
        if let Some(at) = out[scheme + 3..auth_end].rfind('@').map(|a| scheme + 3 + a) {
            if let Some(colon) = out[scheme + 3..at].find(':').map(|c| scheme + 3 + c) {
                out.replace_range(colon + 1..at, "***");
            }
        }
    }
    out
}

fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resume_command_is_quoted_without_passwords() {
        let args = ["/usr/local/bin/a9s-pgrestore", "-d", "host=db password='s e' user=x", "--checkpoint", "/r/it's"];
        assert_eq!(
            command_line_of(args.iter().map(OsString::from)),
            "a9s-pgrestore -d 'host=db password=*** user=x' --checkpoint '/r/it'\\''s'"
        );
        assert_eq!(redact("postgresql://u:secret@h:5432/db"), "postgresql://u:***@h:5432/db");
        assert_eq!(redact("password=abc"), "password=***");
        assert_eq!(redact("postgres"), "postgres");
    }
}
