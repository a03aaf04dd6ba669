//! Reading the script: lines, the dump's framing (is its closing line there?), the input encoding.

use super::*;
use crate::lines;

impl Runner<'_> {
    /// Converts the line to UTF-8 into `self.conv` when the input encoding needs it (returns true then; false:
    /// use the line as it is). A byte that cannot be converted poisons the statement it belongs to (it is
    /// reported, not run).
    pub(super) fn transcode(&mut self, line: &[u8]) -> bool {
        match &self.enc {
            Ok(enc) => match enc.to_utf8(line, &mut self.conv) {
                Ok(false) => false,
                Ok(true) => true,
                Err(at) => {
                    let reason = format!(
                        "byte 0x{:02X} at column {} has no Unicode equivalent in encoding {}",
                        line[at],
                        at + 1,
                        enc.name()
                    );
                    self.poisoned.get_or_insert((self.line, reason));
                    true
                }
            },
            Err(name) => {
                if !line.is_ascii() {
                    let reason = format!("non-ASCII text in encoding {name}, which a9s-pgrestore cannot convert");
                    self.poisoned.get_or_insert((self.line, reason));
                }
                false
            }
        }
    }

    /// Reads one line (with its `\n`) into `buf`; returns its length, 0 at the end.
    pub(super) fn read_line<R: BufRead>(
        &mut self,
        input: &mut R,
        buf: &mut Vec<u8>,
    ) -> std::result::Result<usize, i32> {
        if let Some(code) = self.signalled() {
            return Err(code);
        }
        match input.read_until(b'\n', buf) {
            // The end of the input may be the program feeding it ended by the same Ctrl-C.
            Ok(0) => self.signalled().map_or(Ok(0), Err),
            Ok(n) => {
                self.line += 1;
                self.progress.add(n as u64);
                if let Some(c) = self.ckpt.as_mut() {
                    c.read(&buf[buf.len() - n..]);
                }
                Ok(n)
            }
            Err(e) => Err(self.read_failed(&e)),
        }
    }

    /// Reads the next piece of the current line (COPY data) onto the end of `out`: at most
    /// [`lines::PIECE`] bytes, up to the line's end (see [`lines::read_piece`]). Counts the line at its first
    /// piece, so `self.line` is the line being read, as after [`read_line`](Self::read_line); `self.line_at` is
    /// where the piece begins in it.
    pub(super) fn read_piece<R: BufRead>(
        &mut self,
        input: &mut R,
        out: &mut Vec<u8>,
    ) -> std::result::Result<lines::Piece, i32> {
        let start = out.len();
        let piece = lines::read_piece(input, out, lines::PIECE).map_err(|e| self.read_failed(&e))?;
        if piece.len == 0 {
            return Ok(piece);
        }
        if self.mid_line {
            self.line_at += self.last_piece as u64;
        } else {
            self.line += 1;
            self.line_at = 0;
        }
        self.last_piece = piece.len;
        self.mid_line = !piece.ends_line;
        self.progress.add(piece.len as u64);
        if let Some(c) = self.ckpt.as_mut() {
            c.read(&out[start..]);
        }
        Ok(piece)
    }

    /// The line being read holds a NUL byte at `column` (from 1): the restore stops before it (exit 3), never
    /// sends it (see [`lines::nul_reason`]). `line` is the one named as where the restore stopped: this line, or
    /// the COPY whose data it is (none of whose rows were loaded); `what` says what became of it. A resume
    /// would stop here again, so `--checkpoint` gives no advice to run again.
    pub(super) fn stop_at_nul(&mut self, line: u64, column: u64, what: &str) -> Flow {
        self.dead_end = true;
        let reason = lines::nul_reason(column);
        let msg = if line == self.line {
            format!("{reason}; the restore stopped here: {what}")
        } else {
            format!("script line {}: {reason}; the restore stopped here: {what}", self.line)
        };
        self.stop(line, msg, String::new())
    }

    /// The input could not be read: says so and gives the exit status.
    pub(super) fn read_failed(&mut self, e: &std::io::Error) -> i32 {
        if let Some(code) = self.signalled() {
            return code;
        }
        self.progress.finish();
        eprintln!(
            "{PROG}: cannot read the input after line {}: {}; the restore is incomplete",
            self.line,
            a9s_core::error::describe_io(e)
        );
        exit::ERRORS
    }

    pub(super) fn check_framing(&mut self, line: &[u8]) {
        if !line.starts_with(b"-- PostgreSQL database") {
            return;
        }
        let l = line.strip_suffix(b"\n").unwrap_or(line);
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        for (_, head, tail) in crate::framing::FRAMINGS {
            if l == head.as_bytes() && self.line <= crate::framing::HEADER_LINES && self.framing.trailer.is_none() {
                self.framing.trailer = Some(tail);
            } else if Some(l) == self.framing.trailer {
                self.framing.seen_trailer = true;
            }
        }
    }

    pub(super) fn enc_name(&self) -> String {
        match &self.enc {
            Ok(e) => e.name().to_string(),
            Err(n) => n.clone(),
        }
    }
}

/// A pg_dump or pg_dumpall header seen, and whether its closing line came.
#[derive(Default)]
pub(super) struct DumpFraming {
    pub(super) trailer: Option<&'static [u8]>,
    pub(super) seen_trailer: bool,
}
