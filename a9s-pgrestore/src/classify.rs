//! What the runner must know about a statement before sending it: is it a `COPY … FROM stdin` (its data
//! follows in the script), a `SET client_encoding` (handled here, never sent: the session stays UTF-8), a
//! session setting (replayed on other sessions), pg_dumpall's bare `CREATE ROLE x`; and which meta-commands
//! and statements a restore cannot run exactly as psql (they stop it).
//!
//! A small tokenizer over the statement's bytes: the statement is already split, so only its first words
//! matter, but quotes and comments must not fool it.

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    /// A bare word, lower-cased.
    Word(String),
    /// A "quoted identifier", unquoted.
    Ident(String),
    /// A 'string' (or E'…'), unquoted.
    Str(String),
    Punct(u8),
}

pub(crate) struct Tokens<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Tokens<'a> {
    pub(crate) fn new(s: &'a [u8]) -> Self {
        Tokens { s, i: 0 }
    }

    fn skip_space(&mut self) {
        let s = self.s;
        loop {
            while self.i < s.len() && s[self.i].is_ascii_whitespace() {
                self.i += 1;
            }
            if s[self.i..].starts_with(b"--") {
                while self.i < s.len() && s[self.i] != b'\n' {
                    self.i += 1;
                }
            } else if s[self.i..].starts_with(b"/*") {
                let mut depth = 0;
                while self.i < s.len() {
                    if s[self.i..].starts_with(b"/*") {
                        depth += 1;
                        self.i += 2;
                    } else if s[self.i..].starts_with(b"*/") {
                        depth -= 1;
                        self.i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        self.i += 1;
                    }
                }
            } else {
                return;
            }
        }
    }

    /// Offset of the next token (after whitespace and comments).
    fn start(&mut self) -> usize {
        self.skip_space();
        self.i
    }

    fn quoted(&mut self, q: u8, backslash: bool) -> String {
        let s = self.s;
        let mut out = Vec::new();
        self.i += 1;
        while self.i < s.len() {
            let c = s[self.i];
            if backslash && c == b'\\' && self.i + 1 < s.len() {
                out.push(s[self.i + 1]);
                self.i += 2;
            } else if c == q {
                if s.get(self.i + 1) == Some(&q) {
                    out.push(q);
                    self.i += 2;
                } else {
                    self.i += 1;
                    break;
                }
            } else {
                out.push(c);
                self.i += 1;
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl Iterator for Tokens<'_> {
    type Item = Tok;
    fn next(&mut self) -> Option<Tok> {
        self.skip_space();
        let s = self.s;
        let c = *s.get(self.i)?;
        if (c == b'E' || c == b'e') && s.get(self.i + 1) == Some(&b'\'') {
            self.i += 1;
            return Some(Tok::Str(self.quoted(b'\'', true)));
        }
        if c == b'\'' {
            return Some(Tok::Str(self.quoted(b'\'', false)));
        }
        if c == b'"' {
            return Some(Tok::Ident(self.quoted(b'"', false)));
        }
        let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80;
        if word(c) {
            let st = self.i;
            while self.i < s.len() && word(s[self.i]) {
                self.i += 1;
            }
            return Some(Tok::Word(String::from_utf8_lossy(&s[st..self.i]).to_ascii_lowercase()));
        }
        self.i += 1;
        Some(Tok::Punct(c))
    }
}

pub(crate) fn is_word(t: Option<&Tok>, w: &str) -> bool {
    matches!(t, Some(Tok::Word(x)) if x == w)
}

/// Only a `;` (or nothing) may follow.
fn at_end(t: &mut Tokens) -> bool {
    match t.next() {
        None => true,
        Some(Tok::Punct(b';')) => t.next().is_none(),
        _ => false,
    }
}

/// What a `COPY` statement does with the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Copy {
    /// `COPY <table> … FROM STDIN`: data lines follow up to `\.`. Holds the table as written.
    FromStdin(String),
    /// `COPY … TO STDOUT`: psql prints the data; a restore runs it (a query may have effects) and drops them.
    ToStdout,
}

/// Recognizes `COPY … FROM STDIN` and `COPY … TO STDOUT` (and their swapped spellings, which the server
/// accepts).
pub fn copy_kind(stmt: &[u8]) -> Option<Copy> {
    let mut t = Tokens::new(stmt);
    if !is_word(t.next().as_ref(), "copy") {
        return None;
    }
    let table_start = t.start();
    let mut table_end = None;
    let mut depth = 0i32;
    let mut prev: Option<Tok> = None;
    loop {
        let before = t.start();
        let tok = t.next()?;
        let ends_table = match &tok {
            Tok::Punct(b'(') => true,
            Tok::Word(w) => depth == 0 && (w == "from" || w == "to"),
            _ => false,
        };
        if ends_table && table_end.is_none() {
            table_end = Some(before);
        }
        match &tok {
            Tok::Punct(b'(') => depth += 1,
            Tok::Punct(b')') => depth -= 1,
            Tok::Word(w) if depth == 0 => {
                // The server takes FROM STDOUT as FROM STDIN and TO STDIN as TO STDOUT; so does psql.
                let from = is_word(prev.as_ref(), "from");
                let to = is_word(prev.as_ref(), "to");
                if (w == "stdin" || w == "stdout") && from {
                    let end = table_end.unwrap_or(before);
                    let table = String::from_utf8_lossy(&stmt[table_start..end]).trim().to_string();
                    return Some(Copy::FromStdin(table));
                }
                if (w == "stdout" || w == "stdin") && to {
                    return Some(Copy::ToStdout);
                }
            }
            _ => {}
        }
        prev = Some(tok);
    }
}

/// The columns a `COPY <table> (<columns>) FROM STDIN` lists, as the server reads their names (bare words
/// lower-cased, quoted ones as written); `None` without a list (every column). A list it cannot read comes back
/// empty, which names no column.
pub fn copy_columns(stmt: &[u8]) -> Option<Vec<String>> {
    let mut t = Tokens::new(stmt);
    if !is_word(t.next().as_ref(), "copy") {
        return None;
    }
    loop {
        match t.next()? {
            Tok::Punct(b'(') => break,
            Tok::Word(w) if w == "from" || w == "to" => return None,
            _ => {}
        }
    }
    let mut columns = Vec::new();
    loop {
        match t.next() {
            Some(Tok::Word(c) | Tok::Ident(c)) => columns.push(c),
            Some(Tok::Punct(b',')) => {}
            Some(Tok::Punct(b')')) => return Some(columns),
            _ => return Some(Vec::new()),
        }
    }
}

/// The value of `SET [SESSION|LOCAL] client_encoding {=|TO} value` or `RESET client_encoding`
/// (`DEFAULT` for a reset).
pub fn set_client_encoding(stmt: &[u8]) -> Option<String> {
    set_value(stmt, "client_encoding")
}

/// `SET standard_conforming_strings = on|off`, for reading a script without a server (`--list`); a restore takes
/// the server's word instead, which also sees set_config, DO blocks and role settings.
pub fn set_standard_conforming_strings(stmt: &[u8]) -> Option<bool> {
    let v = set_value(stmt, "standard_conforming_strings")?;
    match v.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Some(true),
        "off" | "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

fn set_value(stmt: &[u8], name: &str) -> Option<String> {
    let mut t = Tokens::new(stmt);
    match t.next()? {
        Tok::Word(w) if w == "reset" => {
            return (is_word(t.next().as_ref(), name) && at_end(&mut t)).then(|| "DEFAULT".to_string());
        }
        Tok::Word(w) if w == "set" => {}
        _ => return None,
    }
    let mut tok = t.next()?;
    if matches!(&tok, Tok::Word(w) if w == "session" || w == "local") {
        tok = t.next()?;
    }
    if !matches!(&tok, Tok::Word(w) if w == name) {
        return None;
    }
    match t.next()? {
        Tok::Punct(b'=') => {}
        Tok::Word(w) if w == "to" => {}
        _ => return None,
    }
    let v = match t.next()? {
        Tok::Word(w) if w == "default" => "DEFAULT".to_string(),
        Tok::Word(w) | Tok::Ident(w) | Tok::Str(w) => w,
        Tok::Punct(_) => return None,
    };
    at_end(&mut t).then_some(v)
}

/// A statement that changes session state which must survive a reconnect: `SET [SESSION] name …`,
/// `RESET name`, `SET ROLE`, `SET SESSION AUTHORIZATION`, `SELECT [pg_catalog.]set_config('name', …, false)`.
/// Returns the setting's key (the last statement per key is what counts).
pub fn session_setting(stmt: &[u8]) -> Option<String> {
    let mut t = Tokens::new(stmt);
    match t.next()? {
        Tok::Word(w) if w == "set" => {
            let mut tok = t.next()?;
            if matches!(&tok, Tok::Word(w) if w == "session") {
                tok = t.next()?;
                if matches!(&tok, Tok::Word(w) if w == "authorization") {
                    return Some("session authorization".into());
                }
            }
            match tok {
                Tok::Word(w) if w == "local" || w == "transaction" || w == "constraints" => None,
                Tok::Word(w) | Tok::Ident(w) => Some(w.to_ascii_lowercase()),
                _ => None,
            }
        }
        Tok::Word(w) if w == "reset" => match t.next()? {
            Tok::Word(w) | Tok::Ident(w) => Some(w.to_ascii_lowercase()),
            _ => None,
        },
        Tok::Word(w) if w == "select" => {
            let mut tok = t.next()?;
            if matches!(&tok, Tok::Word(w) if w == "pg_catalog") {
                if t.next()? != Tok::Punct(b'.') {
                    return None;
                }
                tok = t.next()?;
            }
            if !matches!(&tok, Tok::Word(w) if w == "set_config") || t.next()? != Tok::Punct(b'(') {
                return None;
            }
            let Tok::Str(name) = t.next()? else { return None };
            if t.next()? != Tok::Punct(b',') || !matches!(t.next()?, Tok::Str(_)) || t.next()? != Tok::Punct(b',') {
                return None;
            }
            let local = t.next()?;
            (matches!(&local, Tok::Word(w) if w == "false") && t.next()? == Tok::Punct(b')') && at_end(&mut t))
                .then(|| name.to_ascii_lowercase())
        }
        _ => None,
    }
}

/// The role of pg_dumpall's bare `CREATE ROLE name;` (no options), whose failure for an existing role is
/// expected: the `ALTER ROLE name WITH …` that follows sets it up.
pub fn bare_create_role(stmt: &[u8]) -> Option<String> {
    let mut t = Tokens::new(stmt);
    if !is_word(t.next().as_ref(), "create") || !is_word(t.next().as_ref(), "role") {
        return None;
    }
    let name = match t.next()? {
        Tok::Word(w) | Tok::Ident(w) => w,
        _ => return None,
    };
    at_end(&mut t).then_some(name)
}

/// Where the statement really starts (after leading whitespace and comments): the number of newlines before
/// it and its first line, shortened to `max` characters for messages.
pub fn first_line(stmt: &[u8], max: usize) -> (u64, String) {
    let mut t = Tokens::new(stmt);
    let start = t.start().min(stmt.len());
    let newlines = stmt[..start].iter().filter(|&&b| b == b'\n').count() as u64;
    let rest = &stmt[start..];
    let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let line = String::from_utf8_lossy(&rest[..end]);
    let line = line.trim_end();
    let short = if line.chars().count() > max {
        format!("{}…", line.chars().take(max).collect::<String>())
    } else {
        line.to_string()
    };
    (newlines, short)
}

/// The end of a COPY's data in the script: a line `\.` (psql's rule; its own newline optional at the end).
pub fn is_copy_data_end(line: &[u8]) -> bool {
    matches!(line, b"\\.\n" | b"\\.\r\n" | b"\\.")
}

/// The meta-commands a restore runs (psql's names); every other one stops it before it would run.
pub const META_COMMANDS: &[&str] = &["connect", "c", "encoding", "restrict", "unrestrict"];

/// Why psql might read a meta-command's arguments differently from the lexer: a backquote (psql would run a
/// shell command and use its output) or a reference to a variable psql sets itself (it would put its value
/// there). `None` when neither is present.
pub fn meta_args_unsure(args: &[String]) -> Option<String> {
    for a in args {
        if a.contains('`') {
            return Some(format!(
                "argument {a} holds a backquote, which psql would run as a shell command; a restore never runs one"
            ));
        }
        let b = a.as_bytes();
        for (i, _) in b.iter().enumerate().filter(|(_, &c)| c == b':') {
            let rest = &b[i + 1..];
            let rest = rest.strip_prefix(b"'").or_else(|| rest.strip_prefix(b"\"")).unwrap_or(rest);
            let name_len = rest.iter().take_while(|&&c| c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80).count();
            if crate::lexer::PSQL_VARIABLES.iter().any(|v| v.as_bytes() == &rest[..name_len]) {
                return Some(format!(
                    "argument {a} refers to a psql variable, which psql would replace by its own value"
                ));
            }
        }
    }
    None
}

/// A statement of several statements joined by `\;` (psql sends them as one query) that holds a COPY: the
/// server would start the COPY's data transfer in the middle of the query, which cannot be followed here.
pub fn is_compound_with_copy(stmt: &[u8]) -> bool {
    let (mut parts, mut copy, mut at_start, mut depth) = (0, false, true, 0i32);
    for tok in Tokens::new(stmt) {
        match &tok {
            Tok::Punct(b';') if depth == 0 => at_start = true,
            _ => {
                if at_start {
                    parts += 1;
                    copy |= matches!(&tok, Tok::Word(w) if w == "copy");
                    at_start = false;
                }
                match tok {
                    Tok::Punct(b'(') => depth += 1,
                    Tok::Punct(b')') => depth -= 1,
                    _ => {}
                }
            }
        }
    }
    copy && parts > 1
}

/// A `COPY … FROM STDIN` in binary format (`COPY BINARY t`, `WITH BINARY`, `FORMAT binary`): psql reads every
/// remaining byte of its input as the data. Any `binary` word counts: in doubt, it is taken as binary.
pub fn is_binary_copy(stmt: &[u8]) -> bool {
    Tokens::new(stmt).any(|tok| matches!(tok, Tok::Word(w) if w == "binary"))
}

/// `CREATE [UNIQUE] INDEX [CONCURRENTLY] [IF NOT EXISTS] name ON …`, as pg_dump writes them after the data,
/// which may run on any session. An index without a name is not: two at once could pick the same one.
pub fn is_create_index(stmt: &[u8]) -> bool {
    let (_, first) = crate::classify::first_line(stmt, 200);
    let words: Vec<String> = first.split_ascii_whitespace().take(8).map(|w| w.to_ascii_lowercase()).collect();
    let mut w = words.iter().map(String::as_str).peekable();
    if w.next() != Some("create") {
        return false;
    }
    w.next_if_eq(&"unique");
    if w.next() != Some("index") {
        return false;
    }
    w.next_if_eq(&"concurrently");
    if w.next_if_eq(&"if").is_some() && (w.next() != Some("not") || w.next() != Some("exists")) {
        return false;
    }
    // The name, then ON; an unnamed index has ON (or nothing on this line) right away.
    matches!(w.next(), Some(name) if name != "on") && w.next() == Some("on")
}

/// `ALTER TABLE [ONLY] t ADD CONSTRAINT c PRIMARY KEY|UNIQUE (…)`, which pg_dump writes after the data and
/// which builds an index: one table's lock, like CREATE INDEX, so such statements may run side by side too.
/// Not foreign keys (they lock two tables) nor anything with more than one action.
pub fn is_add_key_constraint(stmt: &[u8]) -> bool {
    // Past pg_dump's comment lines before the statement.
    let (skipped, _) = crate::classify::first_line(stmt, 1);
    let start = match skipped {
        0 => 0,
        n => stmt.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(n as usize - 1).map_or(0, |(i, _)| i + 1),
    };
    let text = String::from_utf8_lossy(&stmt[start..]).to_ascii_lowercase();
    let words: Vec<&str> = text.split_ascii_whitespace().collect();
    if words.len() < 7 || words[0] != "alter" || words[1] != "table" {
        return false;
    }
    let Some(add) = words.iter().position(|w| *w == "add") else { return false };
    if words.get(add + 1) != Some(&"constraint") {
        return false;
    }
    let key = match (words.get(add + 3), words.get(add + 4)) {
        (Some(&"primary"), Some(k)) => k.starts_with("key"),
        (Some(u), _) => *u == "unique" || u.starts_with("unique("),
        _ => false,
    };
    key && !has_second_action(&text)
}

/// Whether an ALTER TABLE's text has a second action or refers to another table (a conservative test).
fn has_second_action(text: &str) -> bool {
    // Commas inside the column list are fine; one after the closing parenthesis starts another action.
    let after = text.rfind(')').map_or("", |i| &text[i + 1..]);
    after.contains(',') || text.contains(" references ") || text.contains(" foreign ")
}

/// Statements that may run on any `--jobs` session, side by side with others of their kind: index builds.
pub fn is_index_build(stmt: &[u8]) -> bool {
    is_create_index(stmt) || is_add_key_constraint(stmt)
}

/// Whether a `COPY … FROM stdin` statement uses the text format, where every row is one line (pg_dump's). CSV
/// rows may span lines and binary data has none: such a COPY stays on one session.
pub fn is_text_copy(stmt: &[u8]) -> bool {
    let text = String::from_utf8_lossy(stmt).to_ascii_lowercase();
    let words: Vec<&str> =
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| !w.is_empty()).collect();
    let Some(copy) = words.iter().position(|w| *w == "copy") else { return false };
    // `COPY BINARY t FROM stdin` is the old syntax.
    if words.get(copy + 1) == Some(&"binary") {
        return false;
    }
    let Some(stdin) = words.iter().position(|w| *w == "stdin") else { return false };
    !words[stdin..].iter().any(|w| *w == "csv" || *w == "binary")
}

/// Whether a statement may open or end a transaction block (`BEGIN`, `START TRANSACTION`, `COMMIT`, `END`,
/// `ROLLBACK`, `ABORT`, `PREPARE TRANSACTION`, `… AND CHAIN`): any such word anywhere in its text outside
/// strings and comments. Over-inclusive on purpose (a function body's `BEGIN … END` counts): `--checkpoint`
/// asks the server after these, and must never take a point inside a block for one outside.
pub fn may_change_transaction_block(stmt: &[u8]) -> bool {
    const WORDS: [&str; 8] = ["begin", "start", "commit", "end", "rollback", "abort", "prepare", "chain"];
    // A word may hold dollar quotes (`$$BEGIN`): their parts count too.
    Tokens::new(stmt).any(|t| matches!(t, Tok::Word(w) if w.split('$').any(|p| WORDS.contains(&p))))
}

/// Whether an error says that what the statement creates is there already (a table, index, constraint,
/// schema, function, database, column, or a second primary key): after a resume, a statement that was in
/// flight when the restore died, its outcome unknown, is then done.
pub fn already_done(sqlstate: &str, stmt: &[u8]) -> bool {
    match sqlstate {
        // duplicate_table, duplicate_object, duplicate_schema, duplicate_function, duplicate_database,
        // duplicate_column.
        "42P07" | "42710" | "42P06" | "42723" | "42P04" | "42701" => true,
        // invalid_table_definition: "multiple primary keys for table … are not allowed".
        "42P16" => is_add_key_constraint(stmt) && lower(stmt).contains("primary key"),
        // object_not_in_prerequisite_state: pg_dump's identity columns, "… is already an identity column".
        "55000" => lower(stmt).contains(" add generated "),
        // wrong_object_type: pg_dump's partitions, "… is already a partition" (PostgreSQL 15).
        "42809" => lower(stmt).contains(" attach partition "),
        _ => false,
    }
}

/// The statement lower-cased, its whitespace runs made single spaces: for word tests across line breaks.
fn lower(stmt: &[u8]) -> String {
    String::from_utf8_lossy(stmt).to_ascii_lowercase().split_ascii_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether a COPY's table (as [`copy_kind`] returns it) is a plain, possibly qualified and quoted, name with no
/// column list: one that can be put in `SELECT … FROM` as it is.
pub fn is_plain_table_name(table: &str) -> bool {
    let mut want_name = true;
    let mut parts = 0;
    for tok in Tokens::new(table.as_bytes()) {
        match (&tok, want_name) {
            (Tok::Word(w), true) if !w.starts_with(|c: char| c.is_ascii_digit() || c == '$') => {}
            (Tok::Ident(_), true) => {}
            (Tok::Punct(b'.'), false) => {}
            _ => return false,
        }
        if want_name {
            parts += 1;
        }
        want_name = !want_name;
    }
    (1..=3).contains(&parts) && !want_name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy() {
        assert_eq!(
            copy_kind(b"COPY public.t (a, \"b c\", \"from\") FROM stdin;"),
            Some(Copy::FromStdin("public.t".into()))
        );
        assert_eq!(copy_kind(b"-- c\ncopy \"Odd Tbl\" from STDIN"), Some(Copy::FromStdin("\"Odd Tbl\"".into())));
        assert_eq!(copy_kind(b"COPY t FROM stdin WITH (FORMAT csv);"), Some(Copy::FromStdin("t".into())));
        assert_eq!(copy_kind(b"COPY t TO STDOUT;"), Some(Copy::ToStdout));
        assert_eq!(copy_kind(b"COPY t FROM '/tmp/x';"), None);
        assert_eq!(copy_kind(b"COPY (SELECT 'from stdin') TO '/x';"), None);
        assert_eq!(copy_kind(b"SELECT 1;"), None);
    }

    #[test]
    fn copy_column_list() {
        let cols = |v: &[&str]| Some(v.iter().map(|c| c.to_string()).collect::<Vec<_>>());
        assert_eq!(
            copy_columns(b"COPY public.t (a, \"B c\", \"x,y\", Dd) FROM stdin;"),
            cols(&["a", "B c", "x,y", "dd"])
        );
        assert_eq!(copy_columns(b"COPY t FROM stdin WITH (FORMAT csv);"), None);
        assert_eq!(copy_columns(b"-- (x)\ncopy \"Odd Tbl\" /* ( */ (id) from STDIN"), cols(&["id"]));
        assert_eq!(copy_columns(b"COPY t (a, 'b') FROM stdin;"), cols(&[]));
    }

    #[test]
    fn settings() {
        assert_eq!(set_client_encoding(b"SET client_encoding = 'LATIN1';").as_deref(), Some("LATIN1"));
        assert_eq!(set_client_encoding(b"set session client_encoding to win1252").as_deref(), Some("win1252"));
        assert_eq!(set_client_encoding(b"RESET client_encoding;").as_deref(), Some("DEFAULT"));
        assert_eq!(set_client_encoding(b"SET client_encoding = 'UTF8'; SELECT 1"), None);
        assert_eq!(set_client_encoding(b"SET search_path = '';"), None);
    }

    #[test]
    fn session_settings() {
        assert_eq!(session_setting(b"SET statement_timeout = 0;").as_deref(), Some("statement_timeout"));
        assert_eq!(session_setting(b"SET SESSION search_path TO a;").as_deref(), Some("search_path"));
        assert_eq!(session_setting(b"SET LOCAL search_path TO a;"), None);
        assert_eq!(session_setting(b"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE;"), None);
        assert_eq!(session_setting(b"SET ROLE app;").as_deref(), Some("role"));
        assert_eq!(session_setting(b"SET SESSION AUTHORIZATION app;").as_deref(), Some("session authorization"));
        assert_eq!(
            session_setting(b"SELECT pg_catalog.set_config('search_path', '', false);").as_deref(),
            Some("search_path")
        );
        assert_eq!(session_setting(b"SELECT set_config('search_path', '', true);"), None);
        assert_eq!(session_setting(b"SELECT 1;"), None);
    }

    #[test]
    fn create_role() {
        assert_eq!(bare_create_role(b"CREATE ROLE postgres;").as_deref(), Some("postgres"));
        assert_eq!(bare_create_role(b"CREATE ROLE \"Odd Role\";").as_deref(), Some("Odd Role"));
        assert_eq!(bare_create_role(b"CREATE ROLE x WITH LOGIN;"), None);
        assert_eq!(bare_create_role(b"CREATE TABLE x;"), None);
    }

    #[test]
    fn first_lines() {
        assert_eq!(first_line(b"\n-- c\n/* x\n */ SELECT 1\nFROM t;", 80), (3, "SELECT 1".into()));
        assert_eq!(first_line("SELECT 'ééé'".as_bytes(), 8), (0, "SELECT '…".into()));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = copy_kind(&bytes);
            let _ = set_client_encoding(&bytes);
            let _ = session_setting(&bytes);
            let _ = bare_create_role(&bytes);
            let _ = first_line(&bytes, 10);
        }
    }

    #[test]
    fn key_constraints() {
        let pk = b"--\n-- Name: t t_pkey; Type: CONSTRAINT\n--\n\nALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_pkey PRIMARY KEY (id);";
        assert!(is_add_key_constraint(pk));
        assert!(is_index_build(pk));
        assert!(is_add_key_constraint(b"ALTER TABLE ONLY s.\"Odd Tbl\"\n    ADD CONSTRAINT u UNIQUE (a, b);"));
        assert!(is_add_key_constraint(b"ALTER TABLE t ADD CONSTRAINT u UNIQUE(a);"));
        assert!(!is_add_key_constraint(
            b"ALTER TABLE ONLY public.c\n    ADD CONSTRAINT c_fk FOREIGN KEY (p) REFERENCES public.p(id);"
        ));
        assert!(!is_add_key_constraint(b"ALTER TABLE t ADD CONSTRAINT k PRIMARY KEY (a), ADD COLUMN b int;"));
        assert!(!is_add_key_constraint(b"ALTER TABLE t ADD CONSTRAINT ck CHECK (a > 0);"));
        assert!(!is_add_key_constraint(b"ALTER TABLE t OWNER TO app;"));
        assert!(!is_index_build(b"CREATE TABLE t (a int PRIMARY KEY);"));
    }
    #[test]
    fn text_copy() {
        assert!(is_text_copy(b"COPY public.t (a, b) FROM stdin;"));
        assert!(is_text_copy(b"COPY \"csv\" (binary) FROM stdin;"));
        assert!(!is_text_copy(b"COPY t FROM stdin WITH (FORMAT csv);"));
        assert!(!is_text_copy(b"COPY t FROM STDIN CSV HEADER;"));
        assert!(!is_text_copy(b"COPY t FROM stdin (FORMAT binary);"));
        assert!(!is_text_copy(b"copy binary t from stdin;"));
    }
    #[test]
    fn create_index() {
        assert!(is_create_index(b"--\n-- Name: i; Type: INDEX\n--\n\nCREATE INDEX i ON s.t USING btree (a);"));
        assert!(is_create_index(b"CREATE UNIQUE INDEX u ON t (a);"));
        assert!(is_create_index(b"CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a);"));
        assert!(is_create_index(b"CREATE INDEX \"On\" ON ONLY t (a);"));
        assert!(!is_create_index(b"create  index on t (a);"), "unnamed");
        assert!(!is_create_index(b"CREATE INDEX CONCURRENTLY ON t (a);"), "unnamed");
        assert!(!is_create_index(b"CREATE INDEX IF EXISTS i ON t (a);"));
        assert!(!is_create_index(b"CREATE INDEXED_THING;"));
        assert!(!is_create_index(b"CREATE TABLE t (a int);"));
        assert!(!is_create_index(b"ALTER TABLE ONLY t ADD CONSTRAINT p PRIMARY KEY (a);"));
        assert!(!is_create_index(b"-- CREATE INDEX i ON t (a);\nSELECT 1;"));
    }

    #[test]
    fn copy_data_end() {
        assert!(is_copy_data_end(b"\\.\n") && is_copy_data_end(b"\\.") && !is_copy_data_end(b"\\.x\n"));
    }

    #[test]
    fn transaction_words_and_done_errors() {
        assert!(may_change_transaction_block(b"BEGIN;"));
        assert!(may_change_transaction_block(b"start transaction isolation level serializable;"));
        assert!(may_change_transaction_block(b"COMMIT AND CHAIN;"));
        assert!(may_change_transaction_block(
            b"CREATE FUNCTION f() RETURNS int AS $$BEGIN RETURN 1; END$$ LANGUAGE plpgsql;"
        ));
        assert!(!may_change_transaction_block(b"INSERT INTO t VALUES ('begin'); -- commit\n"));
        assert!(!may_change_transaction_block(b"CREATE TABLE t (a int);"));
        assert!(already_done("42P07", b"CREATE INDEX i ON t (a);"));
        assert!(already_done("42P16", b"ALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_pkey PRIMARY KEY (a);"));
        assert!(!already_done("42P16", b"CREATE TABLE t (a int PRIMARY KEY, b int PRIMARY KEY);"));
        assert!(!already_done("23505", b"INSERT INTO t VALUES (1);"));
        assert!(already_done(
            "55000",
            b"ALTER TABLE public.t ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (\n    SEQUENCE NAME public.t_id_seq\n);"
        ));
        assert!(already_done("42809", b"ALTER TABLE ONLY public.p ATTACH PARTITION public.p1 FOR VALUES IN (1);"));
        assert!(!already_done("55000", b"SELECT pg_catalog.setval('s', 1);"));
    }

    #[test]
    fn plain_table_names() {
        for ok in ["public.t", "t", "\"Odd name\".\"T\"", "db.s.t"] {
            assert!(is_plain_table_name(ok), "{ok}");
        }
        for bad in ["public.t (a, b)", "t; DROP TABLE x", "", "public.", "1t", "a.b.c.d", "(SELECT 1)"] {
            assert!(!is_plain_table_name(bad), "{bad}");
        }
    }
}
