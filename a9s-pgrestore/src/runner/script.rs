//! Reading the script: [`Script`] owns the input and everything that follows it as it is read (the line and
//! byte counts, the `--checkpoint` hash, the BOM, the dump's framing, the input encoding, COPY data's end
//! marker); the runner's calls into it below add what reading means to a restore (a signal's stop, the
//! progress line, the error said when the input fails).

use std::io::{BufRead, Read};

use super::*;
use crate::checkpoint::{HeadHash, Identity, PrefixHash};
use crate::encoding::{self, Untranslatable};
use crate::lines;

/// The script being read, and where the reading is.
pub(super) struct Script<'i> {
    input: Box<dyn BufRead + 'i>,
    /// The last line read (counted at its first byte): what every message names.
    line: u64,
    /// Bytes read: the `--checkpoint` offset and the summary's `bytes_read`.
    bytes: u64,
    /// `--checkpoint`: the hashes that name what was read.
    hash: Option<ReadHash>,
    /// What the script's bytes are in: set by the session's server encoding, `PGCLIENTENCODING`,
    /// `\encoding` and `SET client_encoding`.
    enc: InputEncoding,
    /// A line converted to UTF-8 (kept for its capacity: no allocation per converted line).
    conv: Vec<u8>,
    framing: DumpFraming,
    /// COPY data is read in pieces ([`lines::PIECE`]): the last piece did not end its line.
    mid_line: bool,
    /// Where the last piece began in its line, and its length.
    line_at: u64,
    last_piece: usize,
    /// The last COPY's end-of-data line as it came (`\.` and its line end), sent to the server as psql does.
    copy_end: Vec<u8>,
}

/// With `--checkpoint`: the hashes of the bytes read so far, which name the script and the point.
struct ReadHash {
    /// SHA-256 of every byte of the script read so far.
    prefix: PrefixHash,
    /// The script's identity, from its first MiB as it streams by.
    head: HeadHash,
}

impl<'i> Script<'i> {
    pub(super) fn new(input: Box<dyn BufRead + 'i>) -> Self {
        Script {
            input,
            line: 0,
            bytes: 0,
            hash: None,
            enc: Ok(Encoding::Utf8),
            conv: Vec::new(),
            framing: DumpFraming::default(),
            mid_line: false,
            line_at: 0,
            last_piece: 0,
            copy_end: Vec::new(),
        }
    }

    /// The last line read (from 1; 0 before the first).
    pub(super) fn line(&self) -> u64 {
        self.line
    }

    /// Bytes read so far.
    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    pub(super) fn set_encoding(&mut self, enc: InputEncoding) {
        self.enc = enc;
    }

    pub(super) fn enc_name(&self) -> String {
        match &self.enc {
            Ok(e) => e.name().to_string(),
            Err(n) => n.clone(),
        }
    }

    /// The end-of-data line of the last COPY, as it came.
    pub(super) fn copy_end(&self) -> &[u8] {
        &self.copy_end
    }

    /// The dump's closing line, when its header was seen and the closing line has not come (yet).
    pub(super) fn missing_trailer(&self) -> Option<&'static [u8]> {
        self.framing.trailer.filter(|_| !self.framing.seen_trailer)
    }

    /// Reads the first `n` bytes (to name the script before anything is run) and puts them back in front: they
    /// are read again, counted and hashed as the rest.
    pub(super) fn read_head(&mut self, n: u64) -> std::io::Result<Vec<u8>> {
        let head = crate::checkpoint::read_head(&mut self.input, n)?;
        let rest = std::mem::replace(&mut self.input, Box::new(std::io::empty()));
        self.input = Box::new(std::io::Cursor::new(head.clone()).chain(rest));
        Ok(head)
    }

    /// From now on every byte read is hashed (`--checkpoint`).
    pub(super) fn start_hashing(&mut self) {
        self.hash = Some(ReadHash { prefix: PrefixHash::default(), head: HeadHash::default() });
    }

    /// The hash of everything read (hex), and the script's identity from its first MiB.
    pub(super) fn hashes(&self) -> (String, Identity) {
        let h = self.hash.as_ref().expect("hashing");
        (h.prefix.hex(), h.head.identity())
    }

    /// Bytes read (run or skipped): they name the script.
    fn hash(&mut self, bytes: &[u8]) {
        if let Some(h) = self.hash.as_mut() {
            h.update(bytes);
        }
    }

    /// Reads one line (with its `\n`) onto the end of `buf`; returns its length, 0 at the end.
    pub(super) fn read_line(&mut self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        let n = self.input.read_until(b'\n', buf)?;
        if n > 0 {
            self.line += 1;
            self.bytes += n as u64;
            self.hash(&buf[buf.len() - n..]);
        }
        Ok(n)
    }

    /// Makes a line just read (a SQL line) ready for the lexer: its BOM dropped (line 1), the dump's framing
    /// noted, converted to UTF-8. A byte that cannot be converted gives the reason, for the statement it
    /// belongs to is then reported, not run.
    pub(super) fn decode(&mut self, line: &mut Vec<u8>) -> Option<String> {
        line.drain(..lines::bom_len(line, self.line));
        self.check_framing(line);
        let (converted, bad) = self.transcode(line);
        if converted {
            // Both buffers keep their capacity: no allocation per converted line.
            std::mem::swap(line, &mut self.conv);
        }
        bad
    }

    /// Converts the line to UTF-8 into `self.conv` when the input encoding needs it (true then; false: use the
    /// line as it is), and why it cannot be, if so.
    fn transcode(&mut self, line: &[u8]) -> (bool, Option<String>) {
        match encoding::transcode(&self.enc, line, &mut self.conv) {
            Ok(converted) => (converted, None),
            // `self.conv` holds the line with U+FFFD in place of the bad bytes.
            Err(e @ Untranslatable::Byte { .. }) => (true, Some(e.reason("text", 0))),
            Err(e) => (false, Some(e.reason("text", 0))),
        }
    }

    /// Notes a pg_dump or pg_dumpall header among the first lines, and its closing line.
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

    /// Reads past the next block of the input, up to `lines` whole lines: hashed and counted, nothing else.
    /// Returns the bytes skipped (0 at the end of the input) and whether they end inside a line.
    pub(super) fn skip_block(&mut self, lines: u64) -> std::io::Result<(usize, bool)> {
        let block = self.input.fill_buf()?;
        let (mut take, mut seen) = (block.len(), 0);
        for at in memchr::memchr_iter(b'\n', block) {
            seen += 1;
            if seen == lines {
                take = at + 1;
                break;
            }
        }
        if let Some(h) = self.hash.as_mut() {
            h.update(&block[..take]);
        }
        let partial = take > 0 && block[take - 1] != b'\n';
        self.line += seen.min(lines);
        self.input.consume(take);
        self.bytes += take as u64;
        Ok((take, partial))
    }

    /// The input ended after a last line without its newline, skipped by [`skip_block`](Self::skip_block):
    /// it counts as a line, as [`read_line`](Self::read_line) counts it.
    pub(super) fn count_unended_line(&mut self) {
        self.line += 1;
    }

    /// Reads the next piece of COPY data (at most [`lines::PIECE`] bytes of a row, never more than one row)
    /// onto the end of `out`, converted to UTF-8. Only a piece that is a whole line can be the `\.` end marker.
    /// Counts the line at its first piece, so `line()` is the line being read.
    /// The main session's fast path for COPY data in a UTF-8 script (nothing to convert): the rows already whole
    /// in the input's buffer, at most [`lines::PIECE`] bytes of them, appended to `out` in one go, counted and
    /// hashed as [`Script::copy_piece`] would one by one. It stops before the end-of-data line, a line with a NUL
    /// byte and a line not whole in the buffer, which `copy_piece` then reads alone; reading row by row was most
    /// of the client's own CPU in a restore. Returns the bytes taken, 0 when none.
    pub(super) fn copy_rows(&mut self, out: &mut Vec<u8>) -> std::io::Result<usize> {
        if self.mid_line || !matches!(self.enc, Ok(Encoding::Utf8)) {
            return Ok(0);
        }
        let start = out.len();
        let mut rows = 0;
        {
            let mut buffered: &[u8] = self.input.fill_buf()?;
            while out.len() - start < lines::PIECE {
                let at = out.len();
                // std's read_until over a slice: its newline search runs optimized even in a debug build.
                buffered.read_until(b'\n', out)?;
                let row = &out[at..];
                let whole = row.last() == Some(&b'\n') && out.len() - start <= lines::PIECE;
                if !whole || classify::is_copy_data_end(row) {
                    out.truncate(at);
                    break;
                }
                rows += 1;
            }
        }
        // Checked once for all the rows (almost none has one): from the row holding it on, copy_piece reads.
        if let Some(nul) = lines::find_nul(&out[start..]) {
            let cut = out[start..start + nul].iter().rposition(|&b| b == b'\n').map_or(start, |nl| start + nl + 1);
            rows -= out[cut..].iter().filter(|&&b| b == b'\n').count() as u64;
            out.truncate(cut);
        }
        let taken = out.len() - start;
        if taken > 0 {
            self.input.consume(taken);
            self.line += rows;
            self.line_at = 0;
            self.last_piece = 0;
            self.bytes += taken as u64;
            self.hash(&out[start..]);
        }
        Ok(taken)
    }

    pub(super) fn copy_piece(&mut self, out: &mut Vec<u8>, table: &str) -> std::io::Result<DataPiece> {
        let start = out.len();
        let row_start = !self.mid_line;
        let piece = lines::read_piece(&mut self.input, out, lines::PIECE)?;
        if piece.len == 0 {
            return Ok(DataPiece::Eof);
        }
        if self.mid_line {
            self.line_at += self.last_piece as u64;
        } else {
            self.line += 1;
            self.line_at = 0;
        }
        self.last_piece = piece.len;
        self.mid_line = !piece.ends_line;
        self.bytes += piece.len as u64;
        self.hash(&out[start..]);
        if row_start && classify::is_copy_data_end(&out[start..]) {
            self.copy_end.clear();
            self.copy_end.extend_from_slice(&out[start..]);
            out.truncate(start);
            return Ok(DataPiece::End);
        }
        if let Some(at) = lines::find_nul(&out[start..]) {
            out.truncate(start);
            return Ok(DataPiece::Nul(self.line_at + at as u64 + 1));
        }
        // Single-byte encodings convert byte by byte: a piece boundary splits nothing.
        let bad = match encoding::transcode(&self.enc, &out[start..], &mut self.conv) {
            Ok(false) => None,
            Ok(true) => {
                out.truncate(start);
                out.extend_from_slice(&self.conv);
                None
            }
            Err(e) => Some(format!("COPY {table} aborted at line {}: {}", self.line, e.reason("data", self.line_at))),
        };
        Ok(match bad {
            None => DataPiece::Data { row_start, row_end: piece.ends_line },
            Some(msg) => {
                out.truncate(start);
                DataPiece::Bad(msg)
            }
        })
    }
}

impl ReadHash {
    fn update(&mut self, bytes: &[u8]) {
        self.prefix.update(bytes);
        self.head.update(bytes);
    }
}

/// A pg_dump or pg_dumpall header seen, and whether its closing line came.
#[derive(Default)]
struct DumpFraming {
    trailer: Option<&'static [u8]>,
    seen_trailer: bool,
}

/// One piece of COPY data read by [`Script::copy_piece`].
pub(super) enum DataPiece {
    /// Appended, converted to UTF-8: `row_start`, it begins a row (the line being read); `row_end`, it ends it.
    Data { row_start: bool, row_end: bool },
    /// The `\.` line (in `copy_end`).
    End,
    /// The input ended.
    Eof,
    /// A piece that cannot be converted: the message.
    Bad(String),
    /// A NUL byte at this column of the line being read (see [`lines::nul_reason`]); nothing appended.
    Nul(u64),
    /// The input could not be read (reported): the exit status.
    Input(i32),
}

impl Runner<'_> {
    /// Reads one line (with its `\n`) into `buf`; returns its length, 0 at the end; or the status to stop with
    /// (a signal, a read that failed).
    pub(super) fn read_line(&mut self, buf: &mut Vec<u8>) -> std::result::Result<usize, i32> {
        if let Some(code) = self.signalled() {
            return Err(code);
        }
        match self.script.read_line(buf) {
            // The end of the input may be the program feeding it ended by the same Ctrl-C.
            Ok(0) => self.signalled().map_or(Ok(0), Err),
            Ok(n) => {
                self.progress.add(n as u64);
                Ok(n)
            }
            Err(e) => Err(self.read_failed(&e)),
        }
    }

    /// The next piece of COPY data (see [`Script::copy_piece`]).
    /// Whole COPY rows in one go when the input has them buffered ([`Script::copy_rows`]): true when it took
    /// some. A read error is left for [`Runner::copy_data_piece`] to meet and report.
    pub(super) fn copy_data_rows(&mut self, out: &mut Vec<u8>) -> bool {
        match self.script.copy_rows(out) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.progress.add(n as u64);
                true
            }
        }
    }

    pub(super) fn copy_data_piece(&mut self, out: &mut Vec<u8>, table: &str) -> DataPiece {
        let before = self.script.bytes();
        let piece = self.script.copy_piece(out, table);
        let read = self.script.bytes() - before;
        if read > 0 {
            self.progress.add(read);
        }
        piece.unwrap_or_else(|e| DataPiece::Input(self.read_failed(&e)))
    }

    /// Skips a block of at most `lines` lines (see [`Script::skip_block`]).
    pub(super) fn skip_block(&mut self, lines: u64) -> std::result::Result<(usize, bool), i32> {
        match self.script.skip_block(lines) {
            Ok((take, partial)) => {
                self.progress.add(take as u64);
                Ok((take, partial))
            }
            Err(e) => Err(self.read_failed(&e)),
        }
    }

    /// The line being read holds a NUL byte at `column` (from 1): the restore stops before it (exit 3), never
    /// sends it (see [`lines::nul_reason`]). `line` is the one named as where the restore stopped: this line, or
    /// the COPY whose data it is (none of whose rows were loaded); `what` says what became of it. A resume
    /// would stop here again, so `--checkpoint` gives no advice to run again.
    pub(super) fn stop_at_nul(&mut self, line: u64, column: u64, what: &str) -> Flow {
        self.ending.dead_end = true;
        let reason = lines::nul_reason(column);
        let msg = if line == self.script.line() {
            format!("{reason}; the restore stopped here: {what}")
        } else {
            format!("script line {}: {reason}; the restore stopped here: {what}", self.script.line())
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
            "{PROG}: {}; the restore is incomplete",
            a9s_core::error::io_message(format_args!("cannot read the input after line {}", self.script.line()), e)
        );
        exit::ERRORS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `copy_rows` takes from `data` in one call, and the line count after it.
    fn rows(data: &'static [u8]) -> (Vec<u8>, u64) {
        let mut script = Script::new(Box::new(std::io::BufReader::with_capacity(64, data)));
        let mut out = Vec::new();
        script.copy_rows(&mut out).unwrap();
        (out, script.line())
    }

    #[test]
    fn whole_rows_are_taken_together_up_to_what_copy_piece_must_see() {
        // Rows whole in the buffer, counted; the end marker is left for copy_piece, in either line end.
        assert_eq!(rows(b"1\ta\n2\tb\n\\.\nSELECT 1;\n"), (b"1\ta\n2\tb\n".to_vec(), 2));
        assert_eq!(rows(b"1\ta\r\n\\.\r\n"), (b"1\ta\r\n".to_vec(), 1));
        // A row with a NUL byte is read alone, so the line and column are named.
        assert_eq!(rows(b"1\n2\0\n3\n"), (b"1\n".to_vec(), 1));
        // A row not whole in the buffer (64 bytes here) is read in pieces.
        assert_eq!(
            rows(b"1\n22222222222222222222222222222222222222222222222222222222222222222222\n"),
            (b"1\n".to_vec(), 1)
        );
        // `\.` inside a row, or a row beginning with it but longer, is data.
        assert_eq!(rows(b"a\\.\n\\.x\n"), (b"a\\.\n\\.x\n".to_vec(), 2));
        assert_eq!(rows(b""), (Vec::new(), 0));
    }

    #[test]
    fn a_converted_encoding_or_a_row_begun_goes_row_by_row() {
        let mut script = Script::new(Box::new(&b"1\n2\n"[..]));
        script.set_encoding(Ok(Encoding::Latin1));
        let mut out = Vec::new();
        assert_eq!(script.copy_rows(&mut out).unwrap(), 0);
        let mut script = Script::new(Box::new(&b"1\n2\n"[..]));
        script.mid_line = true;
        assert_eq!(script.copy_rows(&mut out).unwrap(), 0);
    }
}
