//! Progress on stderr, by one policy for every program.
//!
//! In `a9s-fetch … -o - | a9s-decrypt | a9s-pgrestore` the three programs share one terminal; if each redrew
//! its own line they would overwrite each other. So a program whose data goes into a pipe stays quiet unless
//! asked (`--progress`): only the pipe's last program — the one writing to a file, a directory or a database —
//! draws. When stderr is not a terminal (`nohup`, `2>&1 | tee restore.log`), a redrawn line would be garbage in
//! the log, and silence for hours looks like a hang: the program writes sparse timestamped lines instead, one
//! when something worth noting happens ([`Progress::event`]) and one with the figures at least once a minute.
//! `--no-progress` and `-q` turn both off. [`decide`] is the policy, [`Progress`] carries it out.
//!
//! Liveness: a program can wait minutes or hours with no byte moving (an index build on a big table). So the
//! figures line of a log, and the redraw of a terminal line when nothing else redraws it, come from a ticker
//! thread (one per program), not from the bytes; and a statement marked running ([`Progress::statement_started`]
//! — a short copy and an atomic store, nothing per statement beyond that) is named, by its line, its first words
//! ([`statement_head`], which never shows a literal or what follows PASSWORD) and its elapsed time, once it has
//! run a second: `still running line 812: CREATE INDEX i ON public.big USING btree (a) (1m 20s); …`. Every
//! write to stderr goes under one lock, so the ticker's lines never interleave with the program's.
//!
//! How far and how long: a program that knows its total (a9s-fetch, a9s-cat-parts, a9s-decrypt or a9s-pgrestore
//! reading a regular file) shows its share and an ETA. The pipe's last program, which reads decompressed text of
//! no known length, takes them from the pipe's first program through [`crate::pipeline`]: `backup 45% of 4.7 GiB,
//! ETA 0:12:30`. Without either it says `total unknown`, not a guess. The ETA divides what is left by a rate
//! smoothed over about half a minute ([`Rate`]).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::io::human_bytes;
use crate::pipeline::{Position, Publisher, Source, PUBLISH_EVERY};

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
                     a line for each notable step. With a known total (a regular file's size, or the backup's \
                     size, which the pipe's first program passes on to its last) the line gives the share done \
                     and an ETA; without one it says the total is unknown."
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
        Streams {
            stderr_terminal: std::io::stderr().is_terminal(),
            stdout_pipe: crate::pipeline::PipeId::of_fd(1).is_some(),
        }
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

/// A statement in flight is named on the line once it has run this long.
const NAME_AFTER: Duration = Duration::from_secs(1);
/// On a terminal, how often the line is redrawn while nothing else happens (a statement running, a stall).
const REDRAW_IDLE: Duration = Duration::from_secs(1);
/// Bytes of a statement kept for naming it (its first words are all that is shown).
const STATEMENT_KEEP: usize = 512;
/// Characters of a statement shown.
const STATEMENT_SHOW: usize = 60;

const REDRAW: Duration = Duration::from_millis(250);

/// What the program's thread and the ticker share. Counters are atomics so the hot path (a line, a chunk) takes
/// no lock; everything written to stderr is written under `state`'s lock, so lines never interleave.
struct Shared {
    mode: Mode,
    start: Instant,
    done: AtomicU64,
    /// When the statement in flight began, in nanoseconds since `start` plus one; 0: none.
    running_since: AtomicU64,
    /// When the line was last drawn, in nanoseconds since `start` plus one; 0: never.
    last_draw: AtomicU64,
    /// When the position was last published, likewise.
    last_publish: AtomicU64,
    state: Mutex<State>,
    stop: Mutex<bool>,
    wake: Condvar,
}

struct State {
    label: String,
    total: Option<u64>,
    detail: String,
    drawn: bool,
    last_log: Instant,
    log_every: Duration,
    /// The statement in flight (valid while `running_since` is not 0): its line and first bytes.
    statement_line: u64,
    statement: Vec<u8>,
    /// Our own bytes' rate, for the ETA against our own total.
    rate: Rate,
    /// The pipe's first program, when we follow it ([`Progress::follow_stdin`]), its last position and rate.
    source: Option<Source>,
    position: Option<Position>,
    source_rate: Rate,
    publisher: Option<Publisher>,
}

pub struct Progress {
    shared: Arc<Shared>,
    ticker: Option<std::thread::JoinHandle<()>>,
    publishing: bool,
}

impl Shared {
    fn nanos(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The statement in flight, if it has run at least [`NAME_AFTER`]: its elapsed time.
    fn running_for(&self, now: u64) -> Option<Duration> {
        let since = self.running_since.load(Ordering::Relaxed);
        let d = Duration::from_nanos(now.saturating_sub(since.checked_sub(1)?));
        (d >= NAME_AFTER).then_some(d)
    }

    /// The figures: bytes, share of the total, rate, ETA, detail.
    fn status(&self, st: &State, now: u64) -> String {
        let done = self.done.load(Ordering::Relaxed);
        let secs = (now as f64 / 1e9).max(0.001);
        let avg = done as f64 / secs;
        let mut line = human_bytes(done);
        match (st.total, st.position) {
            (Some(total), _) => {
                line +=
                    &format!(" of {} ({}), {}/s", human_bytes(total), percent(done, total), human_bytes(avg as u64));
                if let Some(eta) = eta(done, total, st.rate.per_second().unwrap_or(avg)) {
                    line += &format!(", ETA {eta}");
                }
            }
            (None, Some(pos)) => {
                line += &format!(
                    " read, {}/s; backup {} of {}",
                    human_bytes(avg as u64),
                    percent(pos.done, pos.total),
                    human_bytes(pos.total)
                );
                match st.source_rate.per_second().and_then(|r| eta(pos.done, pos.total, r)) {
                    Some(eta) => line += &format!(", ETA {eta}"),
                    None if pos.done < pos.total => line += ", ETA unknown yet",
                    None => {}
                }
            }
            (None, None) => line += &format!(" read, {}/s, total unknown", human_bytes(avg as u64)),
        }
        if !st.detail.is_empty() {
            line += &format!(" — {}", st.detail);
        }
        line
    }

    /// The status, led by the statement in flight when it has run long enough.
    fn report(&self, st: &State, now: u64) -> String {
        match self.running_for(now) {
            Some(d) => format!(
                "still running line {}: {} ({}); {}",
                st.statement_line,
                statement_head(&st.statement, STATEMENT_SHOW),
                human_duration(d),
                self.status(st, now)
            ),
            None => self.status(st, now),
        }
    }

    fn draw(&self, st: &mut State, now: u64) {
        self.last_draw.store(now + 1, Ordering::Relaxed);
        st.drawn = true;
        let line = format!("\r\x1b[K{}: {}", st.label, self.report(st, now));
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(line.as_bytes());
        let _ = err.flush();
    }

    fn log(&self, st: &State, text: &str) {
        let line = format!("{} {}: {text}\n", timestamp(SystemTime::now()), st.label);
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn clear(&self, st: &mut State) {
        if st.drawn {
            st.drawn = false;
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
    }

    /// The ticker's beat: rates, the source's position, a redraw on a terminal when nothing else draws, the
    /// periodic line in a log.
    fn tick(&self) {
        let mut st = self.lock();
        let now = self.nanos();
        let secs = now as f64 / 1e9;
        let done = self.done.load(Ordering::Relaxed);
        st.rate.observe(secs, done);
        if let Some(pos) = st.source.as_mut().and_then(Source::read) {
            st.position = Some(pos);
            st.source_rate.observe(secs, pos.done);
        }
        match self.mode {
            Mode::Draw => {
                let last = self.last_draw.load(Ordering::Relaxed);
                // Only while the line is up (after a message it comes back with the next bytes) or a statement
                // runs, so nothing is drawn between the program's `finish` and its message.
                let idle = last == 0 || now + 1 >= last + REDRAW_IDLE.as_nanos() as u64;
                if idle && (st.drawn || self.running_for(now).is_some()) {
                    self.draw(&mut st, now);
                }
            }
            Mode::Log if st.last_log.elapsed() >= st.log_every => {
                st.last_log = Instant::now();
                let line = self.report(&st, now);
                self.log(&st, &line);
            }
            _ => {}
        }
    }
}

fn due(last: u64, now: u64, gap: Duration) -> bool {
    last == 0 || now + 1 >= last + gap.as_nanos() as u64
}

impl Progress {
    /// Progress of `total` bytes (if known), reported as `mode` says.
    pub fn with_mode(label: impl Into<String>, total: Option<u64>, mode: Mode) -> Self {
        let log_every = log_interval();
        let shared = Arc::new(Shared {
            mode,
            start: Instant::now(),
            done: AtomicU64::new(0),
            running_since: AtomicU64::new(0),
            last_draw: AtomicU64::new(0),
            last_publish: AtomicU64::new(0),
            state: Mutex::new(State {
                label: label.into(),
                total,
                detail: String::new(),
                drawn: false,
                last_log: Instant::now(),
                log_every,
                statement_line: 0,
                statement: Vec::with_capacity(STATEMENT_KEEP),
                rate: Rate::default(),
                source: None,
                position: None,
                source_rate: Rate::default(),
                publisher: None,
            }),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        // One thread per program, not per statement: it keeps the log going and names a long statement while
        // the program's own thread waits for the server.
        let ticker = (mode != Mode::Off).then(|| {
            let period = if mode == Mode::Log { log_every.min(REDRAW) } else { REDRAW };
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("progress".into())
                .spawn(move || {
                    let mut stop = shared.stop.lock().unwrap_or_else(|e| e.into_inner());
                    loop {
                        stop = shared.wake.wait_timeout(stop, period).unwrap_or_else(|e| e.into_inner()).0;
                        if *stop {
                            return;
                        }
                        drop(stop);
                        shared.tick();
                        stop = shared.stop.lock().unwrap_or_else(|e| e.into_inner());
                    }
                })
                .ok()
        });
        Progress { shared, ticker: ticker.flatten(), publishing: false }
    }

    /// A line on the terminal when `enabled`, else nothing.
    pub fn with_enabled(label: impl Into<String>, total: Option<u64>, enabled: bool) -> Self {
        Self::with_mode(label, total, if enabled { Mode::Draw } else { Mode::Off })
    }

    /// The pipe's last program: without a total of its own, takes the backup's share and ETA from the
    /// program at the head of the pipe that feeds standard input ([`crate::pipeline`]). `follow` false: nothing.
    pub fn follow_stdin(self, follow: bool) -> Self {
        let mut st = self.shared.lock();
        if follow && st.total.is_none() && self.shared.mode != Mode::Off {
            st.source = Source::for_stdin();
        }
        drop(st);
        self
    }

    /// The pipe's first program: publishes its position in the backup `id` (of the total given) for the pipe's
    /// last program, when standard output is a pipe ([`crate::pipeline`]). Whatever the mode: the point is to
    /// tell the program that reports.
    pub fn publish_stdout(mut self, id: &str) -> Self {
        let mut st = self.shared.lock();
        if let Some(total) = st.total {
            st.publisher = Publisher::for_stdout(total, id);
            self.publishing = st.publisher.is_some();
        }
        drop(st);
        self
    }

    pub fn is_enabled(&self) -> bool {
        self.shared.mode != Mode::Off
    }

    pub fn mode(&self) -> Mode {
        self.shared.mode
    }

    /// Counts `n` more bytes; redraws at most every 250 ms. (Log lines come from the ticker, at the interval.)
    pub fn add(&mut self, n: u64) {
        let done = self.shared.done.fetch_add(n, Ordering::Relaxed) + n;
        if self.shared.mode != Mode::Draw && !self.publishing {
            return;
        }
        let now = self.shared.nanos();
        if self.shared.mode == Mode::Draw && due(self.shared.last_draw.load(Ordering::Relaxed), now, REDRAW) {
            let mut st = self.shared.lock();
            self.shared.draw(&mut st, now);
        }
        if self.publishing && due(self.shared.last_publish.load(Ordering::Relaxed), now, PUBLISH_EVERY) {
            self.shared.last_publish.store(now + 1, Ordering::Relaxed);
            if let Some(p) = self.shared.lock().publisher.as_mut() {
                p.update(done);
            }
        }
    }

    /// Extra text after the figures (the current part, database or table).
    pub fn set_detail(&mut self, detail: impl Into<String>) {
        if self.shared.mode != Mode::Off {
            self.shared.lock().detail = detail.into();
        }
    }

    /// A statement of the script `line` begins: if it runs longer than a second, the line and the log name it
    /// with its elapsed time until [`Progress::statement_ended`]. Cheap (a short copy and an atomic store): the
    /// ticker, not this call, does the work.
    pub fn statement_started(&self, line: u64, text: &[u8]) {
        if self.shared.mode == Mode::Off {
            return;
        }
        let mut st = self.shared.lock();
        st.statement_line = line;
        st.statement.clear();
        st.statement.extend_from_slice(&text[..text.len().min(STATEMENT_KEEP)]);
        drop(st);
        self.shared.running_since.store(self.shared.nanos() + 1, Ordering::Relaxed);
    }

    pub fn statement_ended(&self) {
        self.shared.running_since.store(0, Ordering::Relaxed);
    }

    /// Something worth a line in a log: "starting database x", "finished table y (n rows)". Only in a log:
    /// on a terminal the detail of the redrawn line shows the same.
    pub fn event(&mut self, text: impl AsRef<str>) {
        if self.shared.mode == Mode::Log {
            let st = self.shared.lock();
            self.shared.log(&st, text.as_ref());
        }
    }

    pub fn done(&self) -> u64 {
        self.shared.done.load(Ordering::Relaxed)
    }

    /// A handle that prints a message from another place (the server's notices) without garbling the line.
    pub fn printer(&self) -> Printer {
        Printer(self.shared.clone())
    }

    /// Clears the line, so the next message starts clean; publishes the last position.
    pub fn finish(&mut self) {
        let mut st = self.shared.lock();
        self.shared.clear(&mut st);
        let done = self.done();
        if let Some(p) = st.publisher.as_mut() {
            p.update(done);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        *self.shared.stop.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}

/// Prints whole lines on stderr under the progress line's lock, clearing the line first.
#[derive(Clone)]
pub struct Printer(Arc<Shared>);

impl Printer {
    pub fn line(&self, text: &str) {
        let mut st = self.0.lock();
        self.0.clear(&mut st);
        let _ = std::io::stderr().lock().write_all(format!("{text}\n").as_bytes());
    }
}

/// A rate of bytes per second, smoothed over about half a minute so that the ETA neither jumps with each
/// burst nor lags behind a real change (a slower part of the backup) for long.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rate {
    last: Option<(f64, u64)>,
    rate: Option<f64>,
}

impl Rate {
    const SMOOTHING_SECS: f64 = 30.0;
    const MIN_STEP_SECS: f64 = 0.5;

    /// `done` bytes at `secs` seconds.
    pub fn observe(&mut self, secs: f64, done: u64) {
        let Some((t0, d0)) = self.last else {
            self.last = Some((secs, done));
            return;
        };
        // The clock starts with the first byte: the wait before it (connecting, listing the store) is no rate.
        if self.rate.is_none() && done == d0 {
            self.last = Some((secs, done));
            return;
        }
        let dt = secs - t0;
        if dt < Self::MIN_STEP_SECS {
            return;
        }
        let r = done.saturating_sub(d0) as f64 / dt;
        let a = 1.0 - (-dt / Self::SMOOTHING_SECS).exp();
        self.rate = Some(self.rate.map_or(r, |old| old + a * (r - old)));
        self.last = Some((secs, done));
    }

    pub fn per_second(&self) -> Option<f64> {
        self.rate
    }
}

/// `45%` (`99%` until the last byte: never 100% before the end).
pub fn percent(done: u64, total: u64) -> String {
    if total == 0 || done >= total {
        return "100%".into();
    }
    format!("{}%", (done as u128 * 100 / total as u128).min(99))
}

/// Time left at `rate` bytes a second, as `H:MM:SS`; `None` when the end is reached or the rate is 0.
pub fn eta(done: u64, total: u64, rate: f64) -> Option<String> {
    if done >= total || rate.is_nan() || rate <= 0.0 {
        return None;
    }
    let s = ((total - done) as f64 / rate).ceil().min(99.0 * 3600.0) as u64;
    Some(format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60))
}

/// `7s`, `1m 20s`, `2h 03m`.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s / 60) % 60),
    }
}

/// A statement for one progress line: its first words on one line, at most `max` characters, and nothing from
/// its first literal on (`'…'`, `$$…$$`, a parameter), nor after words that introduce secrets (PASSWORD,
/// CONNECTION, OPTIONS); a role statement (`CREATE ROLE name …`, `ALTER USER …`) shows three words only.
pub fn statement_head(text: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(text);
    let mut rest = text.trim_start();
    // Leading comments say nothing about the statement.
    loop {
        if let Some(r) = rest.strip_prefix("--") {
            rest = r.split_once('\n').map_or("", |(_, after)| after).trim_start();
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map_or("", |(_, after)| after).trim_start();
        } else {
            break;
        }
    }
    let words: Vec<&str> =
        rest.split(|c: char| c.is_whitespace() || c.is_control()).filter(|w| !w.is_empty()).collect();
    let upper = |i: usize| words.get(i).map(|w| w.to_ascii_uppercase()).unwrap_or_default();
    let role = matches!(upper(0).as_str(), "CREATE" | "ALTER")
        && matches!(upper(1).as_str(), "ROLE" | "USER" | "GROUP")
        && upper(2) != "MAPPING";
    let mut out = String::new();
    let mut cut = false;
    for (i, w) in words.iter().enumerate() {
        let u = w.to_ascii_uppercase();
        let secretish = w.contains(['\'', '$']) || w.contains("--") || w.contains("/*");
        if (role && i >= 3) || secretish || matches!(u.as_str(), "PASSWORD" | "CONNECTION" | "OPTIONS") {
            cut = true;
            break;
        }
        let sep = if out.is_empty() { "" } else { " " };
        if out.chars().count() + sep.len() + w.chars().count() > max {
            let room = max.saturating_sub(out.chars().count() + sep.len());
            if room >= 4 {
                out += sep;
                out.extend(w.chars().take(room));
            }
            cut = true;
            break;
        }
        out += sep;
        out += w;
    }
    if cut {
        out += if out.is_empty() { "…" } else { " …" };
    }
    out
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

    #[test]
    fn statements_are_named_by_their_first_words_without_secrets() {
        let h = |t: &str| statement_head(t.as_bytes(), 60);
        assert_eq!(h("SELECT pg_sleep(7);\n"), "SELECT pg_sleep(7);");
        assert_eq!(
            h("-- build it\n/* x */  CREATE INDEX i\n    ON public.t USING btree (a);"),
            "CREATE INDEX i ON public.t USING btree (a);"
        );
        assert_eq!(h("CREATE ROLE alice WITH LOGIN PASSWORD 'SCRAM-SHA-256$4096:s3cret';"), "CREATE ROLE alice …");
        assert_eq!(h("ALTER ROLE bob WITH SUPERUSER;"), "ALTER ROLE bob …");
        assert_eq!(
            h("CREATE USER MAPPING FOR bob SERVER s OPTIONS (password 'x');"),
            "CREATE USER MAPPING FOR bob SERVER s …"
        );
        assert_eq!(h("CREATE SUBSCRIPTION s CONNECTION 'password=x' PUBLICATION p;"), "CREATE SUBSCRIPTION s …");
        assert_eq!(h("COMMENT ON TABLE t IS 'hunter2';"), "COMMENT ON TABLE t IS …");
        assert_eq!(h("DO $$BEGIN PERFORM 1; END$$;"), "DO …");
        assert_eq!(h("INSERT INTO t VALUES (E'\\x41');"), "INSERT INTO t VALUES …");
        // One line, and short.
        let long = format!("CREATE INDEX {} ON t (a);", "x".repeat(100));
        let shown = statement_head(long.as_bytes(), 40);
        assert!(shown.chars().count() <= 42 && shown.ends_with(" …") && !shown.contains('\n'), "{shown}");
        assert_eq!(h("SELECT\t1\r\n+\x0b2;"), "SELECT 1 + 2;");
        assert_eq!(h(""), "");
    }

    #[test]
    fn percent_eta_and_durations() {
        assert_eq!(percent(0, 100), "0%");
        assert_eq!(percent(45, 100), "45%");
        assert_eq!(percent(999, 1000), "99%", "never 100% before the end");
        assert_eq!(percent(1000, 1000), "100%");
        assert_eq!(percent(0, 0), "100%");
        assert_eq!(percent(u64::MAX / 2, u64::MAX), "49%");
        assert_eq!(eta(0, 1000, 10.0).as_deref(), Some("0:01:40"));
        assert_eq!(eta(0, 36_000_000, 1000.0).as_deref(), Some("10:00:00"));
        assert_eq!(eta(1000, 1000, 10.0), None);
        assert_eq!(eta(0, 1000, 0.0), None, "stalled: no guess");
        assert_eq!(eta(0, 1000, f64::NAN), None);
        assert_eq!(eta(0, u64::MAX, 1.0).as_deref(), Some("99:00:00"), "bounded");
        assert_eq!(human_duration(Duration::from_secs(7)), "7s");
        assert_eq!(human_duration(Duration::from_secs(80)), "1m 20s");
        assert_eq!(human_duration(Duration::from_secs(2 * 3600 + 3 * 60 + 9)), "2h 03m");
    }

    #[test]
    fn the_rate_is_smoothed_and_follows_a_change() {
        let mut r = Rate::default();
        r.observe(0.0, 0);
        assert_eq!(r.per_second(), None, "one sample is no rate");
        r.observe(5.0, 0);
        assert_eq!(r.per_second(), None, "nothing moved yet: no rate (and no zero to start from)");
        r.observe(5.1, 0);
        r.observe(0.2, 1_000_000);
        assert_eq!(r.per_second(), None, "too short a step");
        r.observe(6.1, 1000);
        assert_eq!(r.per_second(), Some(1000.0));
        // A burst moves it a little, not all the way.
        r.observe(7.1, 101_000);
        let after_burst = r.per_second().unwrap();
        assert!(after_burst > 1000.0 && after_burst < 10_000.0, "{after_burst}");
        // A lasting change wins within a few minutes.
        let mut done = 101_000;
        for s in 8..300 {
            done += 100;
            r.observe(s as f64, done);
        }
        let later = r.per_second().unwrap();
        assert!((later - 100.0).abs() < 10.0, "{later}");
    }

    #[test]
    fn a_statement_running_is_named_by_the_status() {
        let p = Progress::with_mode("t", Some(1000), Mode::Off);
        let s = &p.shared;
        s.running_since.store(1, Ordering::Relaxed);
        assert_eq!(s.running_for(500_000_000), None, "half a second: not yet");
        assert_eq!(s.running_for(2_000_000_000), Some(Duration::from_secs(2)));
        let mut st = s.lock();
        st.statement_line = 12;
        st.statement = b"CREATE INDEX i ON t (a);".to_vec();
        let line = s.report(&st, 80_000_000_001);
        assert!(line.starts_with("still running line 12: CREATE INDEX i ON t (a); (1m 20s); 0 B of"), "{line}");
        st.position = Some(Position { done: 450, total: 1000 });
        st.total = None;
        s.running_since.store(0, Ordering::Relaxed);
        let line = s.report(&st, 1_000_000_000);
        assert!(line.contains("read, 0 B/s; backup 45% of 1000 B, ETA unknown yet"), "{line}");
        st.position = None;
        assert!(s.report(&st, 1_000_000_000).ends_with("total unknown"));
    }
}
