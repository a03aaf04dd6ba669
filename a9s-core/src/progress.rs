//! Progress on stderr, only when stderr is a terminal: bytes, rate and ETA, redrawn a few times a second.
//! In a pipe or a log nothing is printed, so scripts see only real messages.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::io::human_bytes;

pub struct Progress {
    enabled: bool,
    label: String,
    total: Option<u64>,
    done: u64,
    start: Instant,
    last_draw: Instant,
    detail: String,
}

const REDRAW: Duration = Duration::from_millis(250);

impl Progress {
    /// A progress line for `total` bytes (if known), drawn only when stderr is a terminal.
    pub fn new(label: impl Into<String>, total: Option<u64>) -> Self {
        Self::with_enabled(label, total, std::io::stderr().is_terminal())
    }

    pub fn with_enabled(label: impl Into<String>, total: Option<u64>, enabled: bool) -> Self {
        let now = Instant::now();
        Progress { enabled, label: label.into(), total, done: 0, start: now, last_draw: now, detail: String::new() }
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Counts `n` more bytes; redraws at most every 250 ms.
    pub fn add(&mut self, n: u64) {
        self.done += n;
        if self.enabled && self.last_draw.elapsed() >= REDRAW {
            self.draw();
        }
    }

    /// Extra text after the figures (the current part, database or table).
    pub fn set_detail(&mut self, detail: impl Into<String>) {
        self.detail = detail.into();
    }

    pub fn done(&self) -> u64 {
        self.done
    }

    fn draw(&mut self) {
        self.last_draw = Instant::now();
        let secs = self.start.elapsed().as_secs_f64().max(0.001);
        let rate = self.done as f64 / secs;
        let mut line = format!("{}: {}", self.label, human_bytes(self.done));
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
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K{line}");
        let _ = err.flush();
    }

    /// Clears the line, so the next message starts clean.
    pub fn finish(&mut self) {
        if self.enabled {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
    }
}
