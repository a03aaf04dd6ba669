//! One error type and one set of exit statuses, so every program fails the same way: one line on stderr,
//! `<program>: <what is wrong and what to do>`, and a status the man pages document.

use std::fmt;

/// Exit statuses shared by every program, so a script can act on them alike: only [`UNREACHABLE`] says that
/// running the same command again may succeed; every other failure will fail again until something is fixed.
/// a9s-recovery(7) has the table of which program ends with which; each man page its own part of it.
pub mod exit {
    /// Everything worked.
    pub const OK: i32 = 0;
    /// The input or the environment was wrong, or a check failed; the message says what. Output, if any, is
    /// incomplete. Running again fails again until the cause is fixed.
    pub const FAILURE: i32 = 1;
    /// The command line was wrong (clap uses 2 as well), and nothing else.
    pub const USAGE: i32 = 2;
    /// a9s-pgrestore stopped (fail-safe): at the first error with `--on-error-stop`, or before something it
    /// cannot run exactly as psql would.
    pub const STOPPED: i32 = 3;
    /// The server or the store could not be reached, or was lost on the way (after the retries): retry once it
    /// is back. The one "run again" status.
    pub const UNREACHABLE: i32 = 4;
    /// Ended by SIGINT (Ctrl-C), after saying how far it got: 128 + 2, as a shell reports it.
    pub const INTERRUPTED: i32 = 130;
    /// Standard output is a pipe whose reader went away: the program ends quietly, as if killed by SIGPIPE
    /// (128 + 13), since the next program's own message is the one to read.
    pub const PIPE_CLOSED: i32 = 141;
    /// Ended by SIGTERM, after saying how far it got: 128 + 15.
    pub const TERMINATED: i32 = 143;
}

/// An error with the exit status it should end the program with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: i32,
    pub message: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Error { code, message: message.into() }
    }
    /// Bad input or environment: exit status 1.
    pub fn failure(message: impl Into<String>) -> Self {
        Self::new(exit::FAILURE, message)
    }
    /// Bad command line: exit status 2.
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(exit::USAGE, message)
    }
    /// Prefixes context, e.g. the file concerned, keeping the exit status.
    pub fn context(self, what: impl fmt::Display) -> Self {
        Error { code: self.code, message: format!("{what}: {}", self.message) }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Describes an I/O error the way an operator needs it: a closed pipe is said as such, since that usually
/// means the next program in the pipe failed first and its message is the one to read.
pub fn describe_io(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::BrokenPipe => {
            "output pipe closed early (the next program in the pipe stopped; see its message)".to_string()
        }
        _ => {
            // std's Display adds " (os error N)", which helps nobody in a recovery.
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_string(),
                None => s,
            }
        }
    }
}

/// An error and its sources in one line, without std's "(os error N)".
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        let t = x.to_string();
        if !s.contains(&t) {
            s += ": ";
            s += &t;
        }
        src = x.source();
    }
    while let Some(i) = s.find(" (os error") {
        match s[i..].find(')') {
            Some(j) => s.replace_range(i..i + j + 1, ""),
            None => break,
        }
    }
    s
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::new(io_status(&e, exit::FAILURE), describe_io(&e))
    }
}

/// The status of an I/O error: a closed pipe is [`exit::PIPE_CLOSED`] (which [`run`] ends with quietly),
/// anything else `otherwise`.
fn io_status(e: &std::io::Error, otherwise: i32) -> i32 {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        exit::PIPE_CLOSED
    } else {
        otherwise
    }
}

/// `<context>: <the error, described>` ([`describe_io`]): the text of [`Error::io`], for the error types of
/// layers below [`Error`] (a store's `Failure`) and messages that go on after it.
pub fn io_message(context: impl fmt::Display, e: &std::io::Error) -> String {
    format!("{context}: {}", describe_io(e))
}

impl Error {
    /// An I/O error with what was being done: `<context>: <the error, described>` ([`describe_io`]), exit
    /// status 1 ([`exit::PIPE_CLOSED`] for a closed pipe).
    pub fn io(context: impl fmt::Display, e: &std::io::Error) -> Self {
        Error::new(io_status(e, exit::FAILURE), io_message(context, e))
    }
    /// The server or the store could not be reached or was lost: exit status 4, retry once it is back.
    pub fn unreachable(message: impl Into<String>) -> Self {
        Self::new(exit::UNREACHABLE, message)
    }
}

/// Context for I/O errors, as uucore's `FromIo`: `.context_io(|| format!("cannot read {}", p.display()))?`
/// gives the [`Error`] `"cannot read FILE: <the error, described>"`, so no call site formats
/// [`describe_io`] by hand. The closure runs only on an error.
pub trait IoContext<T> {
    /// `<context>: <the error>`, exit status 1 (bad input or environment).
    fn context_io<C: fmt::Display>(self, context: impl FnOnce() -> C) -> Result<T>;
    /// `<context>: <the error>`, exit status 2 (the command line named something unusable).
    fn usage_context_io<C: fmt::Display>(self, context: impl FnOnce() -> C) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn context_io<C: fmt::Display>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| Error::io(context(), &e))
    }
    fn usage_context_io<C: fmt::Display>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| Error::new(io_status(&e, exit::USAGE), io_message(context(), &e)))
    }
}

/// Runs a program's body and exits with its status, printing an error as one line `<prog>: <message>`. A
/// closed output pipe ends it without a word: the next program in the pipe stopped first, and its message is
/// the one to read (one fault, one error).
pub fn run(prog: &str, body: impl FnOnce() -> Result<i32>) -> ! {
    let code = match body() {
        Ok(code) => code,
        // --help and --version, already printed.
        Err(e) if e.code == exit::OK && e.message.is_empty() => exit::OK,
        Err(e) if e.code == exit::PIPE_CLOSED => exit::PIPE_CLOSED,
        Err(e) => {
            // One write, so the line is not interleaved with other programs' messages in a pipe.
            use std::io::Write;
            let _ = std::io::stderr().write_all(format!("{prog}: {}\n", e.message).as_bytes());
            e.code
        }
    };
    std::process::exit(code)
}

/// Parses a program's command line without ending the process: `--help` and `--version` are printed here (on
/// stdout) and come back as an [`Error`] with status 0 and no message; a usage error comes back with clap's
/// own text (which names the option and shows the usage) and status 2. Only `main`, through [`run`], exits.
pub fn parse_args<T: clap::FromArgMatches>(
    command: clap::Command,
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> Result<T> {
    let clap_error = |e: clap::Error| {
        use clap::error::ErrorKind;
        match e.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                if e.exit_code() == 0 =>
            {
                let _ = e.print();
                Error::new(exit::OK, "")
            }
            _ => {
                let text = e.render().to_string();
                // clap starts with "error: "; the program's name takes its place, as for every other error.
                let text = text.strip_prefix("error: ").unwrap_or(&text).trim_end().to_string();
                Error::new(e.exit_code(), text)
            }
        }
    };
    let matches = command.try_get_matches_from(args).map_err(clap_error)?;
    T::from_arg_matches(&matches).map_err(clap_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Error as IoError, ErrorKind};

    #[test]
    fn io_context() {
        let r: std::io::Result<()> = Err(IoError::from_raw_os_error(libc::ENOENT));
        let e = r.context_io(|| "cannot read /x").unwrap_err();
        assert_eq!(e, Error::failure("cannot read /x: No such file or directory"));
        let r: std::io::Result<()> = Err(IoError::from(ErrorKind::BrokenPipe));
        let e = r.usage_context_io(|| format!("cannot write {}", "y")).unwrap_err();
        assert_eq!(e.code, exit::PIPE_CLOSED);
        assert_eq!(
            e.message,
            "cannot write y: output pipe closed early (the next program in the pipe stopped; see its message)"
        );
        assert_eq!(Ok::<_, IoError>(7).context_io(|| -> String { unreachable!() }), Ok(7));
    }
}
