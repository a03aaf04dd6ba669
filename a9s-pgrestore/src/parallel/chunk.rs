//! The pure parts of `--jobs`: the chunks a COPY's rows are dealt out in, their size, the settings a session
//! replays, and mapping a session's `COPY t, line N` back to the script. Functions over values, unit-tested here.

/// Chunk size: large, so that each is one big write and the dealing costs nothing next to the server's work.
pub const DEFAULT_CHUNK_BYTES: usize = 4 << 20;
/// Overrides the chunk size (bytes); for tests, which need many chunks from small tables.
pub const CHUNK_BYTES_ENV: &str = "A9S_PGRESTORE_CHUNK_BYTES";

/// The chunk size from [`CHUNK_BYTES_ENV`], else [`DEFAULT_CHUNK_BYTES`].
pub fn chunk_bytes_from_env() -> std::result::Result<usize, String> {
    parse_chunk_bytes(std::env::var(CHUNK_BYTES_ENV).ok().as_deref())
}

/// [`CHUNK_BYTES_ENV`]'s value: a positive number of bytes; unset or empty means the default.
fn parse_chunk_bytes(value: Option<&str>) -> std::result::Result<usize, String> {
    match value.map(str::trim) {
        None | Some("") => Ok(DEFAULT_CHUNK_BYTES),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{CHUNK_BYTES_ENV}={v} is not a positive number of bytes: fix or unset it")),
        },
    }
}

/// Consecutive COPY data lines of the script, converted to UTF-8, with the script line of the first row that
/// begins in it and the number of rows that begin in it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Chunk {
    pub data: Vec<u8>,
    pub first_line: u64,
    pub lines: u64,
    /// Its last row goes on in the next chunk: a row longer than a chunk is dealt in chunk-sized parts rather
    /// than held whole, and the session that takes an open chunk takes the next one too (it keeps the queue
    /// until the row ends), so a row always reaches one session whole and in order.
    pub open: bool,
}

/// Collects data lines into chunks of at least `limit` bytes (a chunk ends only at a line end, so no row is
/// ever split between sessions).
#[derive(Debug)]
pub struct ChunkBuilder {
    limit: usize,
    cur: Chunk,
}

impl ChunkBuilder {
    pub fn new(limit: usize) -> Self {
        let limit = limit.max(1);
        ChunkBuilder { limit, cur: Self::empty(limit) }
    }

    fn empty(limit: usize) -> Chunk {
        // Room for the last line that crosses the limit, without a reallocation in the common case.
        Chunk {
            data: Vec::with_capacity(limit.saturating_add(64 * 1024).min(limit.saturating_mul(2))),
            ..Chunk::default()
        }
    }

    /// Appends one data line (with its newline) that was line `script_line` of the script.
    pub fn push(&mut self, line: &[u8], script_line: u64) {
        self.cur.data.extend_from_slice(line);
        self.pushed(script_line);
    }

    /// The bytes of the chunk being built, to read a line straight into them (no copy); then call
    /// [`pushed`](Self::pushed), or truncate back what is not data.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.cur.data
    }

    /// Counts a line appended through [`buffer`](Self::buffer).
    pub fn pushed(&mut self, script_line: u64) {
        self.pushed_piece(script_line, true, true);
    }

    /// Counts a piece of a line appended through [`buffer`](Self::buffer): `row_start`, it begins the row on
    /// line `script_line`; `row_end`, it ends it.
    pub fn pushed_piece(&mut self, script_line: u64, row_start: bool, row_end: bool) {
        if row_start {
            if self.cur.lines == 0 {
                self.cur.first_line = script_line;
            }
            debug_assert_eq!(self.cur.first_line + self.cur.lines, script_line, "data lines are consecutive");
            self.cur.lines += 1;
        }
        self.cur.open = !row_end;
    }

    /// Whether the chunk has reached the limit and should be sent.
    pub fn is_full(&self) -> bool {
        self.cur.data.len() >= self.limit
    }

    pub fn is_empty(&self) -> bool {
        self.cur.data.is_empty()
    }

    /// The chunk built so far (none if empty); the builder starts a new one.
    pub fn take(&mut self) -> Option<Chunk> {
        if self.is_empty() {
            return None;
        }
        Some(std::mem::replace(&mut self.cur, Self::empty(self.limit)))
    }
}

/// The script line of row `n` (from 1) of a session that received `chunks` — `(first script line, lines)` in
/// the order it sent them.
pub(super) fn script_line(chunks: &[(u64, u64)], n: u64) -> Option<u64> {
    let mut left = n.checked_sub(1)?;
    for &(first, lines) in chunks {
        if left < lines {
            return Some(first + left);
        }
        left -= lines;
    }
    None
}

/// The statements a session that has applied `applied` must run to match `current` (both as the runner keeps
/// them: one `(key, statement)` per setting, in the order of their last change).
pub(super) fn settings_to_replay(applied: &[(String, String)], current: &[(String, String)]) -> Vec<String> {
    current.iter().filter(|s| !applied.contains(s)).map(|(_, sql)| sql.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn chunks_end_at_line_ends() {
        let mut b = ChunkBuilder::new(10);
        let mut out = Vec::new();
        for (i, l) in ["1\ta\n", "2\tbbbbbbbbbbbb\n", "3\tc\n", "4\td\n", "5\te\n"].iter().enumerate() {
            b.push(l.as_bytes(), 100 + i as u64);
            if b.is_full() {
                out.push(b.take().unwrap());
            }
        }
        out.extend(b.take());
        assert!(b.take().is_none());
        assert_eq!(
            out,
            vec![
                Chunk { data: b"1\ta\n2\tbbbbbbbbbbbb\n".to_vec(), first_line: 100, lines: 2, open: false },
                Chunk { data: b"3\tc\n4\td\n5\te\n".to_vec(), first_line: 102, lines: 3, open: false },
            ]
        );
        // Every byte once, in order.
        let all: Vec<u8> = out.iter().flat_map(|c| c.data.clone()).collect();
        assert_eq!(all, b"1\ta\n2\tbbbbbbbbbbbb\n3\tc\n4\td\n5\te\n");
    }

    #[test]
    fn a_row_longer_than_a_chunk_is_dealt_in_open_chunks() {
        // Row 1 (line 10) short, row 2 (line 11) of 25 bytes read in pieces of at most 8, row 3 (line 12) short.
        let mut b = ChunkBuilder::new(10);
        let mut out = Vec::new();
        let pieces: [(&[u8], u64, bool, bool); 6] = [
            (b"a\n", 10, true, true),
            (b"bbbbbbbb", 11, true, false),
            (b"bbbbbbbb", 11, false, false),
            (b"bbbbbbbb", 11, false, false),
            (b"\n", 11, false, true),
            (b"c\n", 12, true, true),
        ];
        for (p, line, start, end) in pieces {
            b.buffer().extend_from_slice(p);
            b.pushed_piece(line, start, end);
            if b.is_full() {
                out.push(b.take().unwrap());
            }
        }
        out.extend(b.take());
        let seen: Vec<(usize, u64, u64, bool)> =
            out.iter().map(|c| (c.data.len(), c.first_line, c.lines, c.open)).collect();
        // The rows that begin in each chunk are counted there; a continuation begins none.
        assert_eq!(seen, [(10, 10, 2, true), (16, 0, 0, true), (3, 12, 1, false)]);
        let received: Vec<(u64, u64)> = out.iter().map(|c| (c.first_line, c.lines)).collect();
        assert_eq!((1..=3).map(|n| script_line(&received, n)).collect::<Vec<_>>(), [Some(10), Some(11), Some(12)]);
    }

    #[test]
    fn chunk_read_in_place() {
        let mut b = ChunkBuilder::new(1 << 20);
        b.buffer().extend_from_slice(b"x\n");
        b.pushed(7);
        // A line that turns out not to be data is truncated back.
        let len = b.buffer().len();
        b.buffer().extend_from_slice(b"\\.\n");
        b.buffer().truncate(len);
        assert!(!b.is_full());
        assert_eq!(b.take(), Some(Chunk { data: b"x\n".to_vec(), first_line: 7, lines: 1, open: false }));
        assert!(b.is_empty());
    }

    #[test]
    fn lines_map_back_to_the_script() {
        // A session got the chunks starting at script lines 100 (10 rows) and 300 (5 rows).
        let chunks = [(100, 10), (300, 5)];
        assert_eq!(script_line(&chunks, 1), Some(100));
        assert_eq!(script_line(&chunks, 10), Some(109));
        assert_eq!(script_line(&chunks, 11), Some(300));
        assert_eq!(script_line(&chunks, 15), Some(304));
        assert_eq!(script_line(&chunks, 16), None);
        assert_eq!(script_line(&chunks, 0), None);
        assert_eq!(script_line(&[], 1), None);
    }

    #[test]
    fn settings_replay() {
        let a = vec![s("statement_timeout", "SET statement_timeout = 0;"), s("search_path", "SELECT set_config(…)")];
        assert_eq!(settings_to_replay(&[], &a), vec!["SET statement_timeout = 0;", "SELECT set_config(…)"]);
        assert!(settings_to_replay(&a, &a).is_empty());
        // A changed setting moves to the end of the runner's list; only it is replayed.
        let b = vec![s("search_path", "SELECT set_config(…)"), s("statement_timeout", "SET statement_timeout = 5;")];
        assert_eq!(settings_to_replay(&a, &b), vec!["SET statement_timeout = 5;"]);
        let c = vec![
            s("search_path", "SELECT set_config(…)"),
            s("statement_timeout", "SET statement_timeout = 5;"),
            s("role", "SET ROLE app;"),
        ];
        assert_eq!(settings_to_replay(&b, &c), vec!["SET ROLE app;"]);
    }

    #[test]
    fn chunk_size_env() {
        assert_eq!(parse_chunk_bytes(None), Ok(DEFAULT_CHUNK_BYTES));
        assert_eq!(parse_chunk_bytes(Some(" ")), Ok(DEFAULT_CHUNK_BYTES));
        assert_eq!(parse_chunk_bytes(Some("16384")), Ok(16384));
        assert!(parse_chunk_bytes(Some("0")).unwrap_err().contains(CHUNK_BYTES_ENV));
        assert!(parse_chunk_bytes(Some("4M")).is_err());
    }
}
