//! `--list`: what a script holds, read without any server, as `pg_restore -l` does for archives — the roles,
//! each database (name, encoding, owner), each table's rows and data size, large objects, totals — and whether
//! the script is complete: pg_dump's closing comment present, no statement or COPY data cut off.
//!
//! [`Lister`] is pure: lines in, a [`Listing`] out, split exactly as a restore would split them (the same
//! lexer). [`run`] reads the input, reports progress and prints.

use std::io::{BufRead, Write};
use std::path::Path;

use a9s_core::error::IoContext;
use a9s_core::input::Input;
use a9s_core::io::human_bytes;
use a9s_core::pg::{is_conninfo, parse_dbname_arg};
use a9s_core::progress::{Mode, Progress};
use a9s_core::{Error, Result};
use serde::Serialize;

use crate::classify::{self, Copy};
use crate::framing::{FRAMINGS, HEADER_LINES, LARGE_TABLE};
use crate::lexer::{Item, Lexer};
use crate::lines;

const PROG: &str = "a9s-pgrestore";
const READ_BUFFER: usize = 1 << 20;

/// Exit statuses of `--list`.
pub mod exit {
    /// The script is complete.
    pub const COMPLETE: i32 = 0;
    /// The script is incomplete or cannot be read: cut off, a statement or COPY data unfinished, no closing
    /// comment; or a line holds a NUL byte, where a restore stops. The listing shows what is there; an empty or
    /// unreadable input has none.
    pub const INCOMPLETE: i32 = 1;
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Listing {
    /// `pg_dumpall`, `pg_dump`, or `unknown` (no dump header in the first lines).
    pub kind: String,
    pub complete: bool,
    /// Why the script is not complete, one sentence each.
    pub problems: Vec<String>,
    pub roles: Vec<String>,
    pub databases: Vec<Database>,
    pub totals: Totals,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Database {
    /// None: a pg_dump script without `\connect`, restored into the database given with -d.
    pub name: Option<String>,
    pub encoding: Option<String>,
    pub owner: Option<String>,
    /// Line of its `\connect` (or CREATE DATABASE); 0 for a script without `\connect`.
    pub line: u64,
    pub tables: Vec<Table>,
    pub large_objects: u64,
    pub large_object_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Table {
    /// As the COPY statement writes it: `public.t`, `public."Odd Name"`.
    pub name: String,
    /// COPY data lines (one per row in COPY's text format, which pg_dump writes).
    pub rows: u64,
    /// Bytes of COPY data, newlines included.
    pub bytes: u64,
    pub line: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub roles: u64,
    pub databases: u64,
    pub tables: u64,
    pub rows: u64,
    pub data_bytes: u64,
    pub large_objects: u64,
    pub large_object_bytes: u64,
    pub statements: u64,
    pub lines: u64,
    pub bytes: u64,
}

/// Builds a [`Listing`] from the script's lines.
pub struct Lister {
    lexer: Lexer,
    items: Vec<Item>,
    line: u64,
    listing: Listing,
    /// The current database (index into `listing.databases`), once there is one.
    current: Option<usize>,
    /// Reading COPY data: (database, table) indexes.
    copy: Option<(usize, usize)>,
    trailer: Option<&'static [u8]>,
    seen_trailer: bool,
    /// Something other than comments and `\unrestrict` after the closing comment.
    after_trailer: Option<u64>,
    events: Vec<String>,
    /// Lines with a NUL byte: the first few (line, column), and how many in all.
    nuls: Vec<(u64, u64)>,
    nul_lines: u64,
    /// Bytes of the current line before the next piece (COPY data comes in pieces).
    column: u64,
}

/// Lines with a NUL byte named one by one in the problems; the rest are counted.
const NUL_LINES_NAMED: usize = 5;

impl Default for Lister {
    fn default() -> Self {
        Self::new()
    }
}

impl Lister {
    pub fn new() -> Self {
        Lister {
            lexer: Lexer::new(),
            items: Vec::new(),
            line: 0,
            listing: Listing::default(),
            current: None,
            copy: None,
            trailer: None,
            seen_trailer: false,
            after_trailer: None,
            events: Vec::new(),
            nuls: Vec::new(),
            nul_lines: 0,
            column: 0,
        }
    }

    /// One input line, with its `\n` (the last line may lack it).
    pub fn push_line(&mut self, line: &[u8]) {
        if self.copy.is_some() {
            return self.push_piece(line, true);
        }
        self.line += 1;
        self.listing.totals.lines += 1;
        self.listing.totals.bytes += line.len() as u64;
        self.column = 0;
        self.check_nul(line);
        self.framing(line);
        let mut items = std::mem::take(&mut self.items);
        self.lexer.push_line(line, &mut items);
        for item in items.drain(..) {
            self.item(item);
        }
        self.items = items;
    }

    /// Whether the next line is COPY data: [`run`] reads it in bounded pieces ([`push_piece`](Self::push_piece))
    /// rather than whole, so that a row of any size is never held.
    pub fn in_copy_data(&self) -> bool {
        self.copy.is_some()
    }

    /// A piece of a COPY data line ([`lines::read_piece`]); `line_start`, it begins the line. A piece that
    /// continues a line is never the end marker.
    pub fn push_piece(&mut self, piece: &[u8], line_start: bool) {
        if line_start {
            self.line += 1;
            self.listing.totals.lines += 1;
            self.column = 0;
            // COPY data bypasses the lexer, as in a restore; it still counts the line.
            self.lexer.skip_lines(1);
        }
        self.listing.totals.bytes += piece.len() as u64;
        self.check_nul(piece);
        self.column += piece.len() as u64;
        let Some((d, t)) = self.copy else { return };
        if line_start && classify::is_copy_data_end(piece) {
            self.copy = None;
            let table = &self.listing.databases[d].tables[t];
            if table.bytes >= LARGE_TABLE {
                self.events.push(format!(
                    "table {} read: {} rows, {}",
                    table.name,
                    table.rows,
                    human_bytes(table.bytes)
                ));
            }
        } else {
            let table = &mut self.listing.databases[d].tables[t];
            table.rows += u64::from(line_start);
            table.bytes += piece.len() as u64;
        }
    }

    /// A NUL byte in the line (or piece) just read: a restore stops there; noted once per line.
    fn check_nul(&mut self, bytes: &[u8]) {
        let Some(at) = lines::find_nul(bytes) else { return };
        if self.nuls.last().is_some_and(|(l, _)| *l == self.line) {
            return;
        }
        self.nul_lines += 1;
        if self.nuls.len() < NUL_LINES_NAMED {
            self.nuls.push((self.line, self.column + at as u64 + 1));
        }
    }

    /// End of input: the listing, with what makes it incomplete.
    pub fn finish(mut self) -> Listing {
        let mut items = std::mem::take(&mut self.items);
        self.lexer.finish(&mut items);
        let mut problems = Vec::new();
        if let Some((d, t)) = self.copy {
            let table = &self.listing.databases[d].tables[t];
            problems.push(format!(
                "the script ends inside the COPY data of table {} (started at line {}; no `\\.` line): it is cut off",
                table.name, table.line
            ));
        }
        for item in items.drain(..) {
            if let Item::Sql { first_line, .. } = item {
                problems.push(format!(
                    "the script ends inside the statement that starts at line {first_line} (no closing `;`): it is cut off"
                ));
            }
        }
        match (self.trailer, self.seen_trailer) {
            (Some(t), false) => problems.push(format!(
                "the dump's closing comment \"{}\" is missing after line {}: the script is cut off (did the \
                 program feeding the pipe fail?)",
                String::from_utf8_lossy(t),
                self.line
            )),
            (None, _) => problems.push(
                "no \"-- PostgreSQL database cluster dump\" or \"-- PostgreSQL database dump\" header in the first \
                 lines: not a pg_dumpall or pg_dump plain script, or its start is missing"
                    .to_string(),
            ),
            (Some(_), true) => {}
        }
        for (line, column) in &self.nuls {
            problems
                .push(format!("line {line}: {}; a restore stops at this line (exit 3)", lines::nul_reason(*column)));
        }
        if self.nul_lines > self.nuls.len() as u64 {
            problems.push(format!("{} more lines hold a NUL byte", self.nul_lines - self.nuls.len() as u64));
        }
        if let Some(line) = self.after_trailer {
            problems.push(format!("line {line}: more script after the dump's closing comment (two dumps joined?)"));
        }
        let mut l = self.listing;
        let t = &mut l.totals;
        t.roles = l.roles.len() as u64;
        t.databases = l.databases.iter().filter(|d| d.name.is_some()).count() as u64;
        for d in &l.databases {
            t.tables += d.tables.len() as u64;
            t.rows += d.tables.iter().map(|x| x.rows).sum::<u64>();
            t.data_bytes += d.tables.iter().map(|x| x.bytes).sum::<u64>();
            t.large_objects += d.large_objects;
            t.large_object_bytes += d.large_object_bytes;
        }
        l.complete = problems.is_empty();
        l.problems = problems;
        l
    }

    /// Notable steps since the last call ("database x", "table y read"), for a log.
    pub fn take_events(&mut self) -> Vec<String> {
        std::mem::take(&mut self.events)
    }

    /// What is being read: database and table.
    pub fn detail(&self) -> String {
        let db = self.current.map(|d| &self.listing.databases[d]);
        let name = db.map(|d| display_name(&d.name)).unwrap_or_default();
        match self.copy {
            Some((d, t)) => format!("database {name}, COPY {}", self.listing.databases[d].tables[t].name),
            None if db.is_some() => format!("database {name}"),
            None => String::new(),
        }
    }

    fn framing(&mut self, line: &[u8]) {
        if !line.starts_with(b"-- PostgreSQL database") && self.seen_trailer {
            let l = line.trim_ascii();
            if !(l.is_empty() || l.starts_with(b"--") || l.starts_with(b"\\unrestrict")) {
                self.after_trailer.get_or_insert(self.line);
            }
            return;
        }
        let l = line.strip_suffix(b"\n").unwrap_or(line);
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        for (kind, head, tail) in FRAMINGS {
            if l == head.as_bytes() && self.line <= HEADER_LINES && self.trailer.is_none() {
                self.trailer = Some(tail);
                self.listing.kind = kind.to_string();
            } else if Some(l) == self.trailer {
                self.seen_trailer = true;
            }
        }
    }

    fn item(&mut self, item: Item) {
        match item {
            Item::Meta { name, args, line } if name == "connect" || name == "c" => self.connect(&args, line),
            Item::Meta { .. } => {}
            Item::Sql { text, first_line, .. } => self.statement(&text, first_line),
        }
    }

    fn statement(&mut self, text: &[u8], first_line: u64) {
        self.listing.totals.statements += 1;
        let (skipped, _) = classify::first_line(text, 0);
        let line = first_line + skipped;
        if let Some(Copy::FromStdin(table)) = classify::copy_kind(text) {
            let d = self.database_index();
            let tables = &mut self.listing.databases[d].tables;
            tables.push(Table { name: table, rows: 0, bytes: 0, line });
            self.copy = Some((d, tables.len() - 1));
        } else if let Some(on) = classify::set_standard_conforming_strings(text) {
            self.lexer.set_standard_conforming_strings(on);
        } else if let Some(role) = create_role(text) {
            if !self.listing.roles.contains(&role) {
                self.listing.roles.push(role);
            }
        } else if let Some(def) = create_database(text) {
            let d = self.named(&def.name, line);
            let db = &mut self.listing.databases[d];
            db.encoding = def.encoding.or(db.encoding.take());
            db.owner = def.owner.or(db.owner.take());
        } else if let Some((name, owner)) = alter_database_owner(text) {
            let d = self.named(&name, line);
            self.listing.databases[d].owner = Some(owner);
        } else if is_lo_create(text) {
            let d = self.database_index();
            self.listing.databases[d].large_objects += 1;
        } else if let Some(n) = lowrite_bytes(text) {
            let d = self.database_index();
            self.listing.databases[d].large_object_bytes += n;
        }
    }

    /// `\connect db`, `\connect -reuse-previous=on "dbname='db'"`: the database that follows.
    fn connect(&mut self, args: &[String], line: u64) {
        let positional = args.iter().find(|a| !a.starts_with("-reuse-previous"));
        let name = match positional.map(String::as_str) {
            None | Some("-") => return,
            Some(a) if is_conninfo(a) => match parse_dbname_arg(a) {
                Ok(pairs) => match pairs.into_iter().find(|(k, _)| k == "dbname") {
                    Some((_, v)) => v,
                    None => return,
                },
                Err(_) => return,
            },
            Some(a) => a.to_string(),
        };
        let d = self.named(&name, line);
        if self.current != Some(d) {
            self.events.push(format!("database {} begins at line {line}", display_name(&Some(name))));
        }
        self.current = Some(d);
    }

    /// The database called `name`, added if new.
    fn named(&mut self, name: &str, line: u64) -> usize {
        let dbs = &mut self.listing.databases;
        if let Some(i) = dbs.iter().position(|d| d.name.as_deref() == Some(name)) {
            return i;
        }
        dbs.push(Database { name: Some(name.to_string()), line, ..Database::default() });
        dbs.len() - 1
    }

    /// The database statements go to now: before any `\connect`, the one a restore connects to.
    fn database_index(&mut self) -> usize {
        if let Some(d) = self.current {
            return d;
        }
        self.listing.databases.insert(0, Database::default());
        // Databases only named so far (CREATE DATABASE before its \connect) move up one.
        self.current = Some(0);
        0
    }
}

fn display_name(name: &Option<String>) -> String {
    match name {
        None => "(the -d database)".to_string(),
        Some(n) if n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !n.is_empty() => n.clone(),
        Some(n) => format!("\"{}\"", n.replace('"', "\"\"")),
    }
}

/// The listing as text, for people.
pub fn text(l: &Listing) -> String {
    let mut s = String::new();
    let state = if l.complete { "complete" } else { "INCOMPLETE" };
    s += &format!(
        "script: {}, {state}, {} lines, {}\n",
        if l.kind.is_empty() { "unknown" } else { &l.kind },
        l.totals.lines,
        human_bytes(l.totals.bytes)
    );
    s += &format!("roles ({}): {}\n", l.roles.len(), if l.roles.is_empty() { "-".into() } else { l.roles.join(", ") });
    for d in &l.databases {
        let rows: u64 = d.tables.iter().map(|t| t.rows).sum();
        let bytes: u64 = d.tables.iter().map(|t| t.bytes).sum();
        s += &format!(
            "database {}: encoding {}, owner {}, {} table{}, {rows} rows, {}",
            display_name(&d.name),
            d.encoding.as_deref().unwrap_or("-"),
            d.owner.as_deref().unwrap_or("-"),
            d.tables.len(),
            if d.tables.len() == 1 { "" } else { "s" },
            human_bytes(bytes)
        );
        if d.large_objects > 0 || d.large_object_bytes > 0 {
            s += &format!(", {} large objects ({})", d.large_objects, human_bytes(d.large_object_bytes));
        }
        s += "\n";
        for t in &d.tables {
            s += &format!("  table {}: {} rows, {}\n", t.name, t.rows, human_bytes(t.bytes));
        }
    }
    let t = &l.totals;
    s += &format!(
        "total: {} roles, {} databases, {} tables, {} rows, {} of table data, {} large objects ({}), {} statements\n",
        t.roles,
        t.databases,
        t.tables,
        t.rows,
        human_bytes(t.data_bytes),
        t.large_objects,
        human_bytes(t.large_object_bytes),
        t.statements
    );
    s
}

/// `--list [FILE]`: opens the script (stdin when absent or `-`; a terminal is refused) and lists it.
pub fn run_path(file: Option<&Path>, mode: Mode, json: bool) -> Result<i32> {
    let mut input = Input::open(
        file,
        READ_BUFFER,
        "--list: no script: give FILE or pipe the dump in (e.g. `a9s-decrypt < backup | a9s-pgrestore --list`)",
    )?;
    // A regular file, named or redirected (`< dump.sql`), gives the progress line its total.
    let total = input.size();
    // From a pipe, the share of the backup and the ETA come from the pipe's first program.
    let follow = total.is_none() && input.is_stdin();
    run(&mut input, total, mode, json, follow)
}

/// Reads the whole script, prints the listing on stdout (JSON with `json`), the problems on stderr; returns
/// the exit status. `follow_stdin`: the input is standard input, a pipe whose first program may tell how far it is.
pub fn run(input: &mut dyn BufRead, total: Option<u64>, mode: Mode, json: bool, follow_stdin: bool) -> Result<i32> {
    let mut progress = Progress::with_mode(PROG, total, mode).follow_stdin(follow_stdin);
    let mut lister = Lister::new();
    let mut line = Vec::with_capacity(64 * 1024);
    let mut detail = String::new();
    // The last piece of COPY data did not end its line.
    let mut mid_line = false;
    loop {
        line.clear();
        let in_data = mid_line || lister.in_copy_data();
        let read = if in_data {
            lines::read_piece(input, &mut line, lines::PIECE).map(|p| (p.len, !p.ends_line))
        } else {
            input.read_until(b'\n', &mut line).map(|n| (n, false))
        };
        let (n, cut) = match read {
            Ok(r) => r,
            Err(e) => {
                progress.finish();
                return Err(Error::io(format_args!("cannot read the script after line {}", lister.line), &e));
            }
        };
        if n == 0 {
            break;
        }
        if in_data {
            lister.push_piece(&line, !mid_line);
        } else {
            lister.push_line(&line);
        }
        mid_line = cut;
        for e in lister.take_events() {
            progress.event(e);
        }
        if progress.is_enabled() {
            let d = lister.detail();
            if d != detail {
                progress.set_detail(d.clone());
                detail = d;
            }
        }
        progress.add(n as u64);
    }
    progress.finish();
    let listing = lister.finish();
    if listing.totals.bytes == 0 {
        // No listing of nothing: in a pipe, the program before this one failed and its message is the one to
        // read; a listing on stdout would only look like a result.
        return Err(Error::failure(
            "--list: the input is empty, nothing to list (if it came through a pipe, the program before this one \
             failed: see its message)",
        ));
    }
    let out = if json {
        let mut v = serde_json::to_vec_pretty(&listing).expect("listing serializes");
        v.push(b'\n');
        v
    } else {
        text(&listing).into_bytes()
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&out).and_then(|()| stdout.flush()).context_io(|| "cannot write the listing")?;
    for p in &listing.problems {
        eprintln!("{PROG}: {p}");
    }
    Ok(if listing.complete { exit::COMPLETE } else { exit::INCOMPLETE })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(script: &str) -> Listing {
        let mut l = Lister::new();
        for line in script.as_bytes().split_inclusive(|&b| b == b'\n') {
            l.push_line(line);
        }
        l.finish()
    }

    const DUMPALL: &str = "--\n-- PostgreSQL database cluster dump\n--\n\n\\restrict abc\n\
SET standard_conforming_strings = on;\nCREATE ROLE app;\nALTER ROLE app WITH LOGIN;\nCREATE ROLE postgres;\n\
\\unrestrict abc\n\\connect template1\n--\n-- PostgreSQL database dump\n--\nSET x = 1;\n\
--\n-- PostgreSQL database dump complete\n--\n\
CREATE DATABASE \"Odd Name\" WITH TEMPLATE = template0 ENCODING = 'LATIN1' LOCALE = 'C';\n\
ALTER DATABASE \"Odd Name\" OWNER TO app;\n\\connect -reuse-previous=on \"dbname='Odd Name'\"\n\
CREATE TABLE public.t (a int, b text);\nCOPY public.t (a, b) FROM stdin;\n1\tone\n2\t-- not a comment;\n\\.\n\
COPY public.\"E t\" (x) FROM stdin;\n\\.\nSELECT pg_catalog.lo_create('16400');\nBEGIN;\n\
SELECT pg_catalog.lo_open('16400', 131072);\nSELECT pg_catalog.lowrite(0, '\\x68656c6c6f');\nCOMMIT;\n\
--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict abc\n\n--\n-- PostgreSQL database cluster dump complete\n--\n\n";

    #[test]
    fn a_complete_pg_dumpall_script() {
        let l = list(DUMPALL);
        assert!(l.complete, "{:?}", l.problems);
        assert_eq!(l.kind, "pg_dumpall");
        assert_eq!(l.roles, ["app", "postgres"]);
        let names: Vec<_> = l.databases.iter().map(|d| d.name.clone().unwrap()).collect();
        assert_eq!(names, ["template1", "Odd Name"]);
        let odd = &l.databases[1];
        assert_eq!((odd.encoding.as_deref(), odd.owner.as_deref()), (Some("LATIN1"), Some("app")));
        assert_eq!(odd.tables[0], Table { name: "public.t".into(), rows: 2, bytes: 26, line: 23 });
        assert_eq!(odd.tables[1].rows, 0);
        assert_eq!((odd.large_objects, odd.large_object_bytes), (1, 5));
        assert_eq!((l.totals.databases, l.totals.tables, l.totals.rows), (2, 2, 2));
        let t = text(&l);
        assert!(t.starts_with("script: pg_dumpall, complete,"), "{t}");
        assert!(t.contains("database \"Odd Name\": encoding LATIN1, owner app, 2 tables, 2 rows"), "{t}");
        assert!(t.contains("  table public.t: 2 rows, 26 B\n"), "{t}");
    }

    #[test]
    fn cut_off_scripts_are_incomplete() {
        // Every cut before the closing comment is caught, whatever it falls in.
        let end = DUMPALL.find("-- PostgreSQL database cluster dump complete").unwrap();
        for cut in (0..end).step_by(7) {
            let l = list(&DUMPALL[..cut]);
            assert!(!l.complete, "cut at {cut} passed");
            assert!(!l.problems.is_empty());
        }
        let in_copy = list(&DUMPALL[..DUMPALL.find("2\t--").unwrap()]);
        assert!(in_copy.problems.iter().any(|p| p.contains("inside the COPY data of table public.t")), "{in_copy:?}");
        let in_stmt = list(&DUMPALL[..DUMPALL.find("131072").unwrap()]);
        assert!(in_stmt.problems.iter().any(|p| p.contains("inside the statement that starts at line")), "{in_stmt:?}");
    }

    #[test]
    fn a_pg_dump_script_lists_into_the_target_database() {
        let s = "--\n-- PostgreSQL database dump\n--\nCOPY t FROM stdin;\na\n\\.\n--\n-- PostgreSQL database dump complete\n--\n";
        let l = list(s);
        assert!(l.complete, "{:?}", l.problems);
        assert_eq!(l.kind, "pg_dump");
        assert_eq!(l.databases.len(), 1);
        assert_eq!(l.databases[0].name, None);
        assert_eq!(l.totals.databases, 0);
        assert!(text(&l).contains("database (the -d database):"));
    }

    #[test]
    fn not_a_dump_and_joined_dumps() {
        let l = list("SELECT 1;\n");
        assert!(!l.complete);
        assert!(l.problems[0].contains("no \"-- PostgreSQL database cluster dump\""));
        let twice = format!("{DUMPALL}{DUMPALL}");
        assert!(list(&twice).problems.iter().any(|p| p.contains("after the dump's closing comment")));
    }

    #[test]
    fn nul_bytes_are_flagged() {
        let s = DUMPALL.replace("SET x = 1;", "SET x = '\0';").replace("2\t-- not a", "2\t-- not\0 a");
        let l = list(&s);
        assert!(!l.complete);
        assert!(l.problems[0].starts_with("line 15: a NUL byte (column 10)"), "{:?}", l.problems);
        assert!(l.problems[1].starts_with("line 25: a NUL byte (column 9)"), "{:?}", l.problems);
        assert!(l.problems[1].ends_with("a restore stops at this line (exit 3)"), "{:?}", l.problems);
        assert_eq!(l.problems.len(), 2);
        let many = "\0\n".repeat(NUL_LINES_NAMED + 3);
        let l = list(&DUMPALL.replace("SET x = 1;\n", &many));
        assert!(l.problems.iter().any(|p| p == "3 more lines hold a NUL byte"), "{:?}", l.problems);
    }

    #[test]
    fn copy_data_in_pieces_is_counted_by_lines() {
        let mut l = Lister::new();
        for line in ["--\n", "-- PostgreSQL database dump\n", "--\n", "COPY t FROM stdin;\n"] {
            l.push_line(line.as_bytes());
        }
        assert!(l.in_copy_data());
        // A row whose continuation is `\.` and a newline: not the end marker.
        for (piece, start) in [(&b"xxxx"[..], true), (b"\\.\n", false), (b"y\n", true), (b"\\.\n", true)] {
            l.push_piece(piece, start);
        }
        assert!(!l.in_copy_data());
        for line in ["--\n", "-- PostgreSQL database dump complete\n", "--\n"] {
            l.push_line(line.as_bytes());
        }
        let l = l.finish();
        assert!(l.complete, "{:?}", l.problems);
        assert_eq!(l.databases[0].tables[0], Table { name: "t".into(), rows: 2, bytes: 9, line: 4 });
        assert_eq!((l.totals.lines, l.totals.bytes), (10, 3 + 28 + 3 + 19 + 9 + 3 + 3 + 37 + 3));
    }

    #[test]
    fn json_has_the_same_figures() {
        let v: serde_json::Value = serde_json::to_value(list(DUMPALL)).unwrap();
        assert_eq!(v["complete"], true);
        assert_eq!(v["databases"][1]["tables"][0]["rows"], 2);
        assert_eq!(v["totals"]["large_objects"], 1);
    }
}

// ----- What a statement is, for the listing (over classify's tokenizer) -----

use crate::classify::{is_word, Tok, Tokens};

/// The role of `CREATE ROLE name [options]` (pg_dumpall writes it bare, then `ALTER ROLE … WITH …`).
fn create_role(stmt: &[u8]) -> Option<String> {
    let mut t = Tokens::new(stmt);
    if !is_word(t.next().as_ref(), "create") || !is_word(t.next().as_ref(), "role") {
        return None;
    }
    name(t.next()?)
}

/// A database as pg_dumpall's `CREATE DATABASE` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DatabaseDef {
    name: String,
    encoding: Option<String>,
    owner: Option<String>,
}

/// `CREATE DATABASE name [WITH] [option [=] value] …`: the name, and the ENCODING and OWNER options if given.
fn create_database(stmt: &[u8]) -> Option<DatabaseDef> {
    let mut t = Tokens::new(stmt);
    if !is_word(t.next().as_ref(), "create") || !is_word(t.next().as_ref(), "database") {
        return None;
    }
    let mut def = DatabaseDef { name: name(t.next()?)?, encoding: None, owner: None };
    while let Some(tok) = t.next() {
        let Tok::Word(key) = tok else { continue };
        if key != "encoding" && key != "owner" {
            continue;
        }
        let mut v = t.next();
        if v == Some(Tok::Punct(b'=')) {
            v = t.next();
        }
        let value = match v {
            Some(Tok::Word(w)) | Some(Tok::Ident(w)) | Some(Tok::Str(w)) => w,
            _ => continue,
        };
        if key == "encoding" {
            def.encoding = Some(value.to_ascii_uppercase());
        } else {
            def.owner = Some(value);
        }
    }
    Some(def)
}

/// `ALTER DATABASE name OWNER TO role`: (database, role).
fn alter_database_owner(stmt: &[u8]) -> Option<(String, String)> {
    let mut t = Tokens::new(stmt);
    if !is_word(t.next().as_ref(), "alter") || !is_word(t.next().as_ref(), "database") {
        return None;
    }
    let db = name(t.next()?)?;
    if !is_word(t.next().as_ref(), "owner") || !is_word(t.next().as_ref(), "to") {
        return None;
    }
    Some((db, name(t.next()?)?))
}

/// pg_dump's `SELECT pg_catalog.lo_create('oid');`: one large object.
fn is_lo_create(stmt: &[u8]) -> bool {
    let mut t = Tokens::new(stmt);
    select_call(&mut t).as_deref() == Some("lo_create")
}

/// pg_dump's `SELECT pg_catalog.lowrite(0, '\x…');`: the bytes it writes into a large object.
fn lowrite_bytes(stmt: &[u8]) -> Option<u64> {
    let mut t = Tokens::new(stmt);
    if select_call(&mut t).as_deref() != Some("lowrite") {
        return None;
    }
    let data = t.find_map(|tok| match tok {
        Tok::Str(data) => Some(data),
        _ => None,
    })?;
    Some(match data.strip_prefix("\\x") {
        Some(hex) => hex.len() as u64 / 2,
        None => data.len() as u64,
    })
}

/// `SELECT [pg_catalog.]f(`: f.
fn select_call(t: &mut Tokens) -> Option<String> {
    if !is_word(t.next().as_ref(), "select") {
        return None;
    }
    let mut f = t.next()?;
    if f == Tok::Word("pg_catalog".into()) {
        if t.next()? != Tok::Punct(b'.') {
            return None;
        }
        f = t.next()?;
    }
    let Tok::Word(f) = f else { return None };
    (t.next()? == Tok::Punct(b'(')).then_some(f)
}

fn name(tok: Tok) -> Option<String> {
    match tok {
        Tok::Word(w) | Tok::Ident(w) => Some(w),
        _ => None,
    }
}

#[cfg(test)]
mod rule_tests {
    use super::*;

    #[test]
    fn databases_and_roles() {
        assert_eq!(create_role(b"CREATE ROLE app;"), Some("app".into()));
        assert_eq!(create_role(b"CREATE ROLE \"Odd\" WITH LOGIN;"), Some("Odd".into()));
        assert_eq!(create_role(b"CREATE TABLE x (a int);"), None);
        assert_eq!(
            create_database(
                b"CREATE DATABASE appdb WITH TEMPLATE = template0 ENCODING = 'LATIN1' LOCALE_PROVIDER = libc LOCALE = 'C';"
            ),
            Some(DatabaseDef { name: "appdb".into(), encoding: Some("LATIN1".into()), owner: None })
        );
        assert_eq!(
            create_database(b"CREATE DATABASE \"Odd Name\" WITH OWNER = \"Bob\" ENCODING 'utf8';"),
            Some(DatabaseDef { name: "Odd Name".into(), encoding: Some("UTF8".into()), owner: Some("Bob".into()) })
        );
        assert_eq!(alter_database_owner(b"ALTER DATABASE appdb OWNER TO app;"), Some(("appdb".into(), "app".into())));
        assert_eq!(alter_database_owner(b"ALTER DATABASE appdb SET x = 1;"), None);
    }

    #[test]
    fn large_objects() {
        assert!(is_lo_create(b"SELECT pg_catalog.lo_create('16400');"));
        assert!(!is_lo_create(b"SELECT pg_catalog.lo_open('16400', 131072);"));
        assert_eq!(lowrite_bytes(b"SELECT pg_catalog.lowrite(0, '\\x68656c6c6f');"), Some(5));
        assert_eq!(lowrite_bytes(b"SELECT pg_catalog.lo_close(0);"), None);
    }
}
