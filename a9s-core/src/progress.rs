//! Progress on stderr, by one policy for every program.
//!
//! In `a9s-fetch … -o - | a9s-decrypt | a9s-pgrestore` the three programs share one terminal; if each redrew
//! its own line they would overwrite each other. So a program whose data goes into a pipe stays quiet unless
//! asked (`--progress`): only the pipe's last program — the one writing to a file, a directory or a database —
//! draws. When stderr is not a terminal (`nohup`, `2>&1 | tee restore.log`), a redrawn line would be garbage in
//! the log, and silence for hours looks like a hang: the program writes sparse timestamped lines instead, one
//! when something worth noting happens ([`Progress::event`]) and one with the figures at least once a minute.
//! `--no-progress` and `-q` turn both off. [`decide`] is the policy, [`Progress`] carries it out.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::io::human_bytes;

/// How a program reports progress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Nothing (errors and summaries are not progress and are printed anyway).
    #[default]
    Off,
    /// One line on the terminal, redrawn a few times a second.
    Draw,
    /// Timestamped lines for a log: events, and the figures at least every [`log_interval`].
    Log,
}

/// `--progress` and `--no-progress`, the same in every program (flattened into its options).
#[derive(clap::Args, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgressArgs {
    /// Report progress even though standard output is a pipe
    #[arg(
        long,
        overrides_with = "no_progress",
        long_help = "Report progress even when standard output is a pipe. Without it a program whose data goes \
                     into a pipe stays quiet, so that in `a9s-fetch … -o - | a9s-decrypt | a9s-pgrestore` only the \
                     last program draws its progress line on the terminal. When standard error is a terminal, \
                     progress is a line redrawn in place; otherwise it is a timestamped line at least once a \
                     minute (the environment variable A9S_PROGRESS_INTERVAL sets another number of seconds), plus \
                     a line for each notable step."
    )]
    pub progress: bool,

    /// Report no progress at all
    #[arg(
        long,
        overrides_with = "progress",
        long_help = "Report no progress: no line on the terminal, no progress lines in a log. Errors and \
                     summaries are still printed."
    )]
    pub no_progress: bool,
}

/// Where the standard streams go, the facts [`decide`] needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Streams {
    pub stderr_terminal: bool,
    /// Standard output is a pipe or a socket (not a terminal, a file or /dev/null).
    pub stdout_pipe: bool,
}

impl Streams {
    pub fn current() -> Streams {
        Streams { stderr_terminal: std::io::stderr().is_terminal(), stdout_pipe: fd_is_pipe(1) }
    }
}

fn fd_is_pipe(fd: libc::c_int) -> bool {
    // SAFETY: fstat only writes the struct it is given.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut st) != 0 {
            return false;
        }
        let kind = st.st_mode & libc::S_IFMT;
        kind == libc::S_IFIFO || kind == libc::S_IFSOCK
    }
}

/// The policy. `data_to_stdout`: the program's data goes to standard output (`-o -`, a filter in a pipe);
/// false when it writes a file or a directory, loads a database, or only checks. `quiet`: `-q`.
pub fn decide(flags: ProgressArgs, data_to_stdout: bool, quiet: bool, streams: Streams) -> Mode {
    if quiet || flags.no_progress {
        return Mode::Off;
    }
    // Not the pipe's last program: the next one reports, unless the operator asked this one to.
    if data_to_stdout && streams.stdout_pipe && !flags.progress {
        return Mode::Off;
    }
    if streams.stderr_terminal {
        Mode::Draw
    } else {
        Mode::Log
    }
}

impl ProgressArgs {
    /// [`decide`] for this process's standard streams.
    pub fn mode(self, data_to_stdout: bool, quiet: bool) -> Mode {
        decide(self, data_to_stdout, quiet, Streams::current())
    }
}

/// Environment variable: seconds between progress lines in a log (default 60).
pub const INTERVAL_ENV: &str = "A9S_PROGRESS_INTERVAL";

/// Time between two progress lines in a log: a minute, or [`INTERVAL_ENV`] seconds.
pub fn log_interval() -> Duration {
    std::env::var(INTERVAL_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(60))
}

pub struct Progress {
    mode: Mode,
    label: String,
    total: Option<u64>,
    done: u64,
    start: Instant,
    last_draw: Instant,
    last_log: Instant,
    log_every: Duration,
    detail: String,
    drawn: bool,
}

const REDRAW: Duration = Duration::from_millis(250);

impl Progress {
    /// Progress of `total` bytes (if known), reported as `mode` says.
    pub fn with_mode(label: impl Into<String>, total: Option<u64>, mode: Mode) -> Self {
        let now = Instant::now();
        Progress {
            mode,
            label: label.into(),
            total,
            done: 0,
            start: now,
            // The first bytes draw at once: a short run shows its line too, if only briefly.
            last_draw: now.checked_sub(REDRAW).unwrap_or(now),
            last_log: now,
            log_every: log_interval(),
            detail: String::new(),
            drawn: false,
        }
    }

    /// A line on the terminal when `enabled`, else nothing.
    pub fn with_enabled(label: impl Into<String>, total: Option<u64>, enabled: bool) -> Self {
        Self::with_mode(label, total, if enabled { Mode::Draw } else { Mode::Off })
    }

    pub fn is_enabled(&self) -> bool {
        self.mode != Mode::Off
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Counts `n` more bytes; redraws at most every 250 ms, or logs once per interval.
    pub fn add(&mut self, n: u64) {
        self.done += n;
        match self.mode {
            Mode::Draw if self.last_draw.elapsed() >= REDRAW => self.draw(),
            Mode::Log if self.last_log.elapsed() >= self.log_every => {
                self.last_log = Instant::now();
                let line = self.status();
                self.log(&line);
            }
            _ => {}
        }
    }

    /// Extra text after the figures (the current part, database or table).
    pub fn set_detail(&mut self, detail: impl Into<String>) {
        self.detail = detail.into();
    }

    /// Something worth a line in a log: "starting database x", "finished table y (n rows)". Only in a log:
    /// on a terminal the detail of the redrawn line shows the same.
    pub fn event(&mut self, text: impl AsRef<str>) {
        if self.mode == Mode::Log {
            self.log(text.as_ref());
        }
    }

    pub fn done(&self) -> u64 {
        self.done
    }

    /// The figures: bytes, share of the total, rate, ETA, detail.
    fn status(&self) -> String {
        let secs = self.start.elapsed().as_secs_f64().max(0.001);
        let rate = self.done as f64 / secs;
        let mut line = human_bytes(self.done);
        if let Some(total) = self.total {
            let pct = if total > 0 { self.done as f64 * 100.0 / total as f64 } else { 100.0 };
            line += &format!(" of {} ({pct:.0}%)", human_bytes(total));
        }
        line += &format!(", {}/s", human_bytes(rate as u64));
        if let Some(total) = self.total {
            if rate > 0.0 && total > self.done {
                let eta = ((total - self.done) as f64 / rate) as u64;
                line += &format!(", ETA {}:{:02}:{:02}", eta / 3600, (eta / 60) % 60, eta % 60);
            }
        }
        if !self.detail.is_empty() {
            line += &format!(" — {}", self.detail);
        }
        line
    }

    fn draw(&mut self) {
        self.last_draw = Instant::now();
        self.drawn = true;
        let line = format!("{}: {}", self.label, self.status());
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K{line}");
        let _ = err.flush();
    }

    fn log(&self, text: &str) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{} {}: {text}", timestamp(SystemTime::now()), self.label);
    }

    /// Clears the line, so the next message starts clean.
    pub fn finish(&mut self) {
        if self.mode == Mode::Draw && self.drawn {
            self.drawn = false;
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
    }
}

/// `2026-12-01T23:40:05Z`: UTC, to the second, sortable.
pub fn timestamp(t: SystemTime) -> String {
    let millis = t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let iso = crate::naming::iso8601_from_millis(millis - millis % 1000);
    format!("{}Z", iso.trim_end_matches(".000Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTY_FILE: Streams = Streams { stderr_terminal: true, stdout_pipe: false };
    const TTY_PIPE: Streams = Streams { stderr_terminal: true, stdout_pipe: true };
    const LOG_FILE: Streams = Streams { stderr_terminal: false, stdout_pipe: false };
    const LOG_PIPE: Streams = Streams { stderr_terminal: false, stdout_pipe: true };
    const ON: ProgressArgs = ProgressArgs { progress: true, no_progress: false };
    const OFF: ProgressArgs = ProgressArgs { progress: false, no_progress: true };
    const DEFAULT: ProgressArgs = ProgressArgs { progress: false, no_progress: false };

    #[test]
    fn only_the_last_program_of_a_pipe_draws() {
        // A filter into a pipe: quiet, unless asked.
        assert_eq!(decide(DEFAULT, true, false, TTY_PIPE), Mode::Off);
        assert_eq!(decide(ON, true, false, TTY_PIPE), Mode::Draw);
        // The pipe's last program, or one writing a file: draws.
        assert_eq!(decide(DEFAULT, true, false, TTY_FILE), Mode::Draw);
        assert_eq!(decide(DEFAULT, false, false, TTY_PIPE), Mode::Draw);
        // --no-progress and -q win over everything.
        assert_eq!(decide(OFF, false, false, TTY_FILE), Mode::Off);
        assert_eq!(decide(DEFAULT, false, true, TTY_FILE), Mode::Off);
        assert_eq!(decide(ON, false, true, LOG_FILE), Mode::Off);
    }

    #[test]
    fn stderr_not_a_terminal_means_log_lines() {
        assert_eq!(decide(DEFAULT, false, false, LOG_FILE), Mode::Log);
        assert_eq!(decide(DEFAULT, true, false, LOG_FILE), Mode::Log);
        assert_eq!(decide(DEFAULT, true, false, LOG_PIPE), Mode::Off);
        assert_eq!(decide(ON, true, false, LOG_PIPE), Mode::Log);
    }

    #[test]
    fn timestamps_are_utc_seconds() {
        let t = UNIX_EPOCH + Duration::from_millis(1_569_935_509_279);
        assert_eq!(timestamp(t), "2019-10-01T13:11:49Z");
    }

    #[test]
    fn flags_override_each_other() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            p: ProgressArgs,
        }
        let p = |args: &[&str]| Cli::try_parse_from(std::iter::once("x").chain(args.iter().copied())).unwrap().p;
        assert_eq!(p(&[]), DEFAULT);
        assert_eq!(p(&["--progress", "--no-progress"]), OFF);
        assert_eq!(p(&["--no-progress", "--progress"]), ON);
    }
}
