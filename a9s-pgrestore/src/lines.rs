//! Reading the script's lines: a SQL line whole (the lexer needs it, and psql holds a statement whole too), COPY
//! data in bounded pieces, so that one row of any size (a 300 MiB bytea) streams through a restore, `--jobs`,
//! `--list` and the `--checkpoint` hash with the memory of one piece; and the rule for a NUL byte, which no
//! line of a dump can carry as psql reads it.

use std::io::BufRead;

/// COPY data is read, converted, hashed and sent in pieces of at most this many bytes: a row longer than this
/// is never held whole.
pub const PIECE: usize = 64 << 10;

/// The UTF-8 byte order mark.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// How many bytes at the start of `line`, the script's line `line_no` (from 1), are a BOM to skip: as psql, one
/// at the very start of the script only, for the restore, the lexer, `--list` and a resume alike.
pub fn bom_len(line: &[u8], line_no: u64) -> usize {
    if line_no == 1 && line.starts_with(BOM) {
        BOM.len()
    } else {
        0
    }
}

/// What [`read_piece`] read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// Bytes appended (0: the input has ended).
    pub len: usize,
    /// The piece ends its line (with the `\n`).
    pub ends_line: bool,
}

/// Appends to `out` the next bytes of the current line: up to and including its `\n`, or at most `max` bytes,
/// or what is left at the end of the input. On a fresh line the piece holds the whole line whenever it is no
/// longer than `max`, so a COPY end marker (`\.`) is always seen whole.
pub fn read_piece<R: BufRead + ?Sized>(input: &mut R, out: &mut Vec<u8>, max: usize) -> std::io::Result<Piece> {
    // std's read_until: its newline search is compiled optimized even in a debug build, where the memchr
    // crate's is not (it made the restore of many short rows twice as slow there).
    let len = std::io::Read::take(&mut *input, max as u64).read_until(b'\n', out)?;
    Ok(Piece { len, ends_line: len > 0 && out.last() == Some(&b'\n') })
}

/// Where a NUL byte is in `bytes`, if any.
pub fn find_nul(bytes: &[u8]) -> Option<usize> {
    // Checked first with `contains`, which std runs optimized even in a debug build: almost no line has one.
    if !bytes.contains(&0) {
        return None;
    }
    bytes.iter().position(|&b| b == 0)
}

/// Why a line with a NUL byte at `column` (from 1) cannot be run. psql reads a script with fgets and measures what
/// it read with strlen (psql's `gets_fromFile`, and `handleCopyIn` for COPY data): the bytes from the NUL to the
/// end of the line, its newline included, are silently dropped and the line is joined to the next — a string
/// left open, a comment that swallows the next statement, a COPY row merged with the next or an end marker no
/// longer seen, so psql would stream the rest of the script as COPY data. The protocol cannot carry the byte
/// either. Neither can be reproduced safely, so a restore stops before the line.
pub fn nul_reason(column: u64) -> String {
    format!(
        "a NUL byte (column {column}), which no SQL text or COPY row can carry: psql would cut the \
         line there and join it to the next one, so it would run something else than the script says; the dump is \
         damaged, or not a pg_dump script"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads everything in pieces of `max` through a reader that hands out `block` bytes at a time.
    fn pieces(data: &[u8], max: usize, block: usize) -> Vec<(Vec<u8>, bool)> {
        let mut input = std::io::BufReader::with_capacity(block, data);
        let mut out = Vec::new();
        loop {
            let mut buf = Vec::new();
            let p = read_piece(&mut input, &mut buf, max).unwrap();
            if p.len == 0 {
                return out;
            }
            assert_eq!(p.len, buf.len());
            out.push((buf, p.ends_line));
        }
    }

    #[test]
    fn pieces_end_at_line_ends_or_at_the_limit() {
        let data = b"ab\ncdefghij\n\\.\nxyz";
        for block in [1, 2, 3, 5, 64] {
            let got = pieces(data, 4, block);
            let want: Vec<(Vec<u8>, bool)> = vec![
                (b"ab\n".to_vec(), true),
                (b"cdef".to_vec(), false),
                (b"ghij".to_vec(), false),
                (b"\n".to_vec(), true),
                (b"\\.\n".to_vec(), true),
                (b"xyz".to_vec(), false),
            ];
            assert_eq!(got, want, "block {block}");
        }
        // Nothing is lost or reordered, whatever the sizes.
        let long: Vec<u8> = (0..10_000u32).map(|i| if i % 777 == 0 { b'\n' } else { b'a' + (i % 26) as u8 }).collect();
        for (max, block) in [(1, 7), (100, 33), (PIECE, 8192)] {
            let joined: Vec<u8> = pieces(&long, max, block).into_iter().flat_map(|(p, _)| p).collect();
            assert_eq!(joined, long);
        }
    }

    #[test]
    fn nul_is_found_and_named() {
        assert_eq!(find_nul(b"abc"), None);
        assert_eq!(find_nul(b"a\0c"), Some(1));
        let r = nul_reason(3);
        assert!(r.starts_with("a NUL byte (column 3), which"), "{r}");
    }

    #[test]
    fn bom_is_skipped_at_the_start_of_line_one_only() {
        assert_eq!(bom_len(b"\xEF\xBB\xBFSELECT 1;\n", 1), 3);
        assert_eq!(bom_len(b"\xEF\xBB\xBFSELECT 1;\n", 2), 0);
        assert_eq!(bom_len(b"SELECT \xEF\xBB\xBF;\n", 1), 0);
        assert_eq!(bom_len(b"\xEF\xBB", 1), 0);
    }
}
