//! Reading the backup secret the way `openssl -pass` does, without ever printing it.
//!
//! `pass:SECRET` works but puts the secret in `ps` and shell history, so it is warned about; `env:VAR`,
//! `file:PATH` (first line), `fd:N` (first line) and `stdin` are the safe forms. Without a spec, the
//! environment variable [`DEFAULT_ENV`] is read, else the terminal is asked.

use std::fmt;
use std::io::{IsTerminal, Read, Write};

use crate::error::{Error, IoContext, Result};

/// Read when no `--pass` is given.
pub const DEFAULT_ENV: &str = "A9S_BACKUP_SECRET";

/// A secret, wiped from memory when dropped, never shown by `Debug`.
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(bytes)
    }
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

/// Overwrites bytes that held a secret with zeros, in a way the compiler cannot drop as a dead store.
pub fn wipe(bytes: &mut [u8]) {
    for b in bytes.iter_mut() {
        // SAFETY: a valid, aligned pointer to a byte we hold mutably.
        unsafe { std::ptr::write_volatile(b, 0) };
    }
}

/// Where the secret comes from, in openssl's `-pass` syntax.
#[derive(Clone, PartialEq, Eq)]
pub enum PassSpec {
    Pass(String),
    Env(String),
    File(String),
    Fd(i32),
    Stdin,
}

impl fmt::Debug for PassSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PassSpec::Pass(_) => f.write_str("pass:***"),
            PassSpec::Env(v) => write!(f, "env:{v}"),
            PassSpec::File(p) => write!(f, "file:{p}"),
            PassSpec::Fd(n) => write!(f, "fd:{n}"),
            PassSpec::Stdin => f.write_str("stdin"),
        }
    }
}

impl Drop for PassSpec {
    fn drop(&mut self) {
        if let PassSpec::Pass(v) = self {
            let v = std::mem::take(v);
            drop(Secret(v.into_bytes()));
        }
    }
}

impl PassSpec {
    /// Parses `pass:…`, `env:…`, `file:…`, `fd:N` or `stdin`. The error never repeats the argument,
    /// which may be a secret typed without its `pass:` prefix.
    pub fn parse(s: &str) -> Result<PassSpec> {
        if let Some(v) = s.strip_prefix("pass:") {
            return Ok(PassSpec::Pass(v.to_string()));
        }
        if let Some(v) = s.strip_prefix("env:") {
            return Ok(PassSpec::Env(v.to_string()));
        }
        if let Some(v) = s.strip_prefix("file:") {
            return Ok(PassSpec::File(v.to_string()));
        }
        if let Some(v) = s.strip_prefix("fd:") {
            return v.parse().map(PassSpec::Fd).map_err(|_| Error::usage("--pass fd:N needs a file descriptor number"));
        }
        if s == "stdin" {
            return Ok(PassSpec::Stdin);
        }
        Err(Error::usage(
            "--pass takes openssl's syntax: env:VAR, file:PATH, fd:N, stdin or pass:SECRET (the argument is not repeated here in case it is the secret)",
        ))
    }

    /// Warns about a secret on the command line, as it is visible to every user of the machine.
    pub fn warning(&self) -> Option<&'static str> {
        match self {
            PassSpec::Pass(_) => Some(
                "warning: pass:SECRET puts the secret on the command line, visible to other users in ps; prefer file:PATH or env:VAR",
            ),
            _ => None,
        }
    }

    /// Reads the secret. `stdin` conflicts with data on stdin; the caller checks that.
    pub fn read(&self) -> Result<Secret> {
        let secret = match self {
            PassSpec::Pass(v) => Secret(v.as_bytes().to_vec()),
            PassSpec::Env(var) => match std::env::var_os(var) {
                Some(v) => {
                    // into_vec moves the bytes: the one copy is the secret's, wiped on drop.
                    let s = Secret(std::os::unix::ffi::OsStringExt::into_vec(v));
                    wipe_env(var);
                    s
                }
                None => return Err(Error::usage(format!("--pass env:{var}: the variable {var} is not set"))),
            },
            PassSpec::File(path) => {
                let f = std::fs::File::open(path)
                    .context_io(|| format!("--pass file:{path}: cannot read the secret file"))?;
                first_line(f).map_err(|e| e.context(format!("--pass file:{path}")))?
            }
            PassSpec::Fd(n) => {
                // SAFETY: the operator handed us this descriptor for the secret; we take ownership and close it.
                if unsafe { libc::fcntl(*n, libc::F_GETFD) } < 0 {
                    return Err(Error::usage(format!("--pass fd:{n}: file descriptor {n} is not open")));
                }
                let f = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(*n) };
                first_line(f).map_err(|e| e.context(format!("--pass fd:{n}")))?
            }
            PassSpec::Stdin => {
                // Descriptor 0 itself, not std's buffered stdin, whose buffer would keep a copy.
                // ManuallyDrop: descriptor 0 is not ours to close.
                let f =
                    std::mem::ManuallyDrop::new(unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(0) });
                first_line(&*f).map_err(|e| e.context("--pass stdin"))?
            }
        };
        if secret.0.is_empty() {
            return Err(Error::usage(format!("{self:?}: the secret is empty")));
        }
        Ok(secret)
    }
}

/// Longest secret line read: far beyond any real one, and it keeps the line in one allocation that is wiped.
const MAX_LINE: usize = 64 << 10;

/// openssl reads the first line and drops its line end; so do we. One byte at a time, straight into the
/// secret's own buffer: a read buffer (BufReader, std's stdin buffer) would keep a copy nobody wipes, and so
/// would a growing Vec's old allocations, hence the one allocation of [`MAX_LINE`].
fn first_line(mut r: impl Read) -> Result<Secret> {
    let mut line = Secret(Vec::with_capacity(MAX_LINE));
    let mut b = [0u8; 1];
    loop {
        match r.read(&mut b) {
            Ok(0) => break,
            Ok(_) if b[0] == b'\n' => break,
            Ok(_) if line.0.len() == MAX_LINE => {
                return Err(Error::usage(format!("the secret's first line is longer than {MAX_LINE} bytes")))
            }
            Ok(_) => line.0.push(b[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
    }
    // The last byte read may be the secret's.
    wipe(&mut b);
    if line.0.last() == Some(&b'\r') {
        line.0.pop();
    }
    Ok(line)
}

/// Keeps the secret out of core dumps and away from ptrace by other processes of the same user: no core
/// file (RLIMIT_CORE 0) and not dumpable (PR_SET_DUMPABLE 0, which also makes /proc/PID/mem unreadable to
/// them). Done before the secret is read, by [`obtain`]; every program that holds the secret goes through it.
pub fn keep_out_of_cores() {
    let zero = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain system calls with valid arguments; failure leaves the defaults, which is no worse.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &zero);
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
}

/// Overwrites the value of an environment variable in place and removes it, so that the copy the process
/// started with does not outlive its use.
fn wipe_env(var: &str) {
    let Ok(name) = std::ffi::CString::new(var) else { return };
    // SAFETY: getenv returns NULL or the NUL-terminated value in the environment block, which we own; we
    // only overwrite its bytes up to the NUL, then unset the variable. Called before any thread is started.
    unsafe {
        let p = libc::getenv(name.as_ptr());
        if !p.is_null() {
            wipe(std::slice::from_raw_parts_mut(p.cast::<u8>(), libc::strlen(p)));
        }
        libc::unsetenv(name.as_ptr());
    }
}

/// The secret from `--pass`, else [`DEFAULT_ENV`], else a prompt on the terminal, else a usage error.
/// `prog` names the program in the warning and the prompt.
pub fn obtain(prog: &str, spec: Option<&PassSpec>) -> Result<Secret> {
    keep_out_of_cores();
    if let Some(spec) = spec {
        if let Some(w) = spec.warning() {
            eprintln!("{prog}: {w}");
        }
        return spec.read();
    }
    if std::env::var_os(DEFAULT_ENV).is_some() {
        return PassSpec::Env(DEFAULT_ENV.to_string()).read();
    }
    match prompt_on_terminal(&format!("{prog}: backup secret: "))? {
        Some(s) if !s.0.is_empty() => Ok(s),
        Some(_) => Err(Error::usage("the secret is empty")),
        None => Err(Error::usage(format!(
            "no secret: give --pass file:PATH (or env:VAR, fd:N), or set {DEFAULT_ENV}; there is no terminal to ask on"
        ))),
    }
}

/// Asks on /dev/tty with echo off (for any secret: the backup secret, a password). `None` when there is no
/// terminal.
pub fn prompt_on_terminal(prompt: &str) -> Result<Option<Secret>> {
    if !std::io::stdin().is_terminal() && !std::io::stderr().is_terminal() {
        // Without a terminal on either side an interactive prompt is surely unwanted (cron, CI, pipes).
        if std::fs::File::open("/dev/tty").is_err() {
            return Ok(None);
        }
    }
    let tty = match std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty") {
        Ok(t) => t,
        Err(_) => return Ok(None),
    };
    use std::os::fd::AsRawFd;
    let fd = tty.as_raw_fd();
    let mut term: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(fd, &mut term) } != 0 {
        return Ok(None);
    }
    let saved = term;
    term.c_lflag &= !libc::ECHO;
    term.c_lflag |= libc::ECHONL;
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &term) };
    let mut out = &tty;
    let _ = write!(out, "{prompt}");
    let _ = out.flush();
    let result = first_line(&tty);
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    result.map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_openssl_syntax() {
        assert_eq!(PassSpec::parse("pass:x").unwrap(), PassSpec::Pass("x".into()));
        assert_eq!(PassSpec::parse("env:K").unwrap(), PassSpec::Env("K".into()));
        assert_eq!(PassSpec::parse("file:/k").unwrap(), PassSpec::File("/k".into()));
        assert_eq!(PassSpec::parse("fd:3").unwrap(), PassSpec::Fd(3));
        assert_eq!(PassSpec::parse("stdin").unwrap(), PassSpec::Stdin);
        let e = PassSpec::parse("hunter2").unwrap_err();
        assert!(!e.message.contains("hunter2"));
        assert_eq!(e.code, 2);
    }

    #[test]
    fn never_shows_the_secret() {
        assert_eq!(format!("{:?}", PassSpec::Pass("hunter2".into())), "pass:***");
        assert_eq!(format!("{:?}", Secret(b"hunter2".to_vec())), "Secret(***)");
    }

    #[test]
    fn reads_the_first_line_of_a_file() {
        let dir = std::env::temp_dir().join(format!("a9s-secret-{}", std::process::id()));
        std::fs::write(&dir, b"s3cret\r\nsecond line\n").unwrap();
        let s = PassSpec::File(dir.display().to_string()).read().unwrap();
        assert_eq!(s.expose(), b"s3cret");
        std::fs::remove_file(&dir).unwrap();
        let e = PassSpec::Env("A9S_TEST_SURELY_UNSET_VAR".into()).read().unwrap_err();
        assert!(e.message.contains("not set"));
    }
}
