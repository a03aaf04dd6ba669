//! How a pg_dump or pg_dumpall script is framed, for the restore and `--list` alike: the header that names the
//! kind of dump, the comment that closes a complete one, and the size from which a table's data earns a log line.

/// The two dump framings: (kind, the header in the first lines, the comment that closes a complete dump).
pub(crate) const FRAMINGS: [(&str, &str, &[u8]); 2] = [
    ("pg_dumpall", "-- PostgreSQL database cluster dump", b"-- PostgreSQL database cluster dump complete"),
    ("pg_dump", "-- PostgreSQL database dump", b"-- PostgreSQL database dump complete"),
];

/// The header must come within this many lines.
pub(crate) const HEADER_LINES: u64 = 10;

/// A table's COPY data at least this large is worth a line in a log when it ends, in a restore and in a listing.
pub const LARGE_TABLE: u64 = 16 << 20;
