//! psql's statement splitting, as a pure incremental function over bytes.
//!
//! psql does not send a script line by line: its lexer (`src/fe_utils/psqlscan.l`) collects text until a `;` that is
//! outside quotes, comments, parentheses and `BEGIN … END` blocks of SQL-standard function bodies, and hands
//! backslash meta-commands (`src/bin/psql/psqlscanslash.l`, here [`slash`]) to its own parser. A restore must split
//! exactly where psql does, or a `;` inside a function body becomes two broken statements. This module replicates
//! that lexer on bytes (never assuming UTF-8: LATIN1 dumps work) with one state machine and no per-byte allocation.
//!
//! Like psql, the lexer sees one input line at a time: the line's own `\n` is never a "newline" for psql's lexer
//! (psql strips it before lexing), which matters for the rare cases noted on [`Lexer::push_line`].

use std::mem;

mod slash;
use slash::parse_meta;

/// What the lexer produces, in input order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A complete SQL statement: the bytes exactly as they appeared (including comments inside it and the
    /// terminating `;`), with leading whitespace/blank lines and comments-only prefix lines stripped is OK but the
    /// text sent must be byte-identical in meaning. `first_line` is the 1-based input line where the
    /// statement's first non-whitespace byte is. `variable`: the first reference to a variable psql sets
    /// itself (`:DBNAME`, `:'USER'`, `:{?x}`), which psql would replace and a restore cannot.
    Sql { text: Vec<u8>, first_line: u64, variable: Option<String> },
    /// A backslash meta-command: name without the backslash (e.g. "connect", "restrict", "encoding", "."),
    /// its arguments as psql parses them (quotes removed: `"Quoted Name"` -> `Quoted Name` with `""` -> `"`,
    /// `'a b'` -> `a b` with psql's backslash escapes in single quotes), and its line.
    Meta { name: String, args: Vec<String>, line: u64 },
}

/// Kinds of single-quoted literals; they differ in what may hide a closing quote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quoted {
    /// `'…'` with standard_conforming_strings on, and `U&'…'`: only `''` hides a quote.
    Standard,
    /// `E'…'`, and `'…'` with standard_conforming_strings off: `''` and `\'` hide a quote.
    Escaped,
    /// `B'…'` and `X'…'`: the first quote ends them (psql's xb/xh have no doubling).
    Bits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Initial,
    Str(Quoted),
    /// psql's `xqs`: a literal's closing quote was the last byte of a line; the next line may still continue the
    /// literal (only through a `\r` inside that line, see `quote_continue`).
    QuoteStop(Quoted),
    /// `"…"` and `U&"…"`.
    Ident,
    /// `/* … */`, nesting depth in `Lexer::xc_depth`.
    Comment,
    /// `$tag$ … $tag$`, delimiter in `Lexer::dolq`.
    Dollar,
}

/// psql 14–18 remember the first 4 identifiers of a statement to recognise CREATE [OR REPLACE] FUNCTION|PROCEDURE.
const ROUTINE_IDENTS: usize = 4;

/// The variables psql 15 sets by itself (src/bin/psql: every `SetVariable` of a fixed name). A script that
/// refers to one (`:DBNAME`, `:'USER'`) gets it replaced by psql; a9s-pgrestore cannot know every value psql
/// would use, so such a statement stops the restore instead of running something else.
pub const PSQL_VARIABLES: &[&str] = &[
    "AUTOCOMMIT",
    "COMP_KEYWORD_CASE",
    "DBNAME",
    "ECHO",
    "ECHO_HIDDEN",
    "ENCODING",
    "ERROR",
    "FETCH_COUNT",
    "HIDE_TABLEAM",
    "HIDE_TOAST_COMPRESSION",
    "HISTCONTROL",
    "HISTFILE",
    "HISTSIZE",
    "HOST",
    "IGNOREEOF",
    "LASTOID",
    "LAST_ERROR_MESSAGE",
    "LAST_ERROR_SQLSTATE",
    "ON_ERROR_ROLLBACK",
    "ON_ERROR_STOP",
    "PORT",
    "PROMPT1",
    "PROMPT2",
    "PROMPT3",
    "QUIET",
    "ROW_COUNT",
    "SERVER_VERSION_NAME",
    "SERVER_VERSION_NUM",
    "SHOW_ALL_RESULTS",
    "SHOW_CONTEXT",
    "SINGLELINE",
    "SINGLESTEP",
    "SQLSTATE",
    "USER",
    "VERBOSITY",
    "VERSION",
    "VERSION_NAME",
    "VERSION_NUM",
];

/// psqlscan.l's `variable_char`.
fn is_variable_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

/// psql's SQL lexer, fed one line at a time. See the module documentation.
#[derive(Debug, Clone)]
pub struct Lexer {
    state: State,
    xc_depth: u32,
    dolq: Vec<u8>,
    paren_depth: u32,
    begin_depth: u32,
    ident_count: u32,
    idents: [u8; ROUTINE_IDENTS],
    std_strings: bool,
    /// The partial statement, up to the end of the previous line (the current line is copied in segments).
    buf: Vec<u8>,
    first_line: u64,
    /// The partial statement holds more than whitespace and comments.
    significant: bool,
    line_no: u64,
    /// The first psql variable reference in the partial statement that psql would replace (see [`Item::Sql`]).
    variable: Option<String>,
}

impl Default for Lexer {
    fn default() -> Self {
        Self::new()
    }
}

#[inline]
fn is_space(c: u8) -> bool {
    // psql's {space}: no vertical tab.
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0c)
}

#[inline]
fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

#[inline]
fn is_dolq_cont(c: u8) -> bool {
    is_ident_start(c) || c.is_ascii_digit()
}

#[inline]
fn is_ident_cont(c: u8) -> bool {
    is_dolq_cont(c) || c == b'$'
}

/// Index of the first `a` or `b` in `hay[from..]`. Quoted text is most of a dump's bytes: this looks at 8 bytes at a
/// time (the classic "has zero byte" test; its only false positives come after a true match, so the lowest flagged
/// byte is exact).
#[inline]
fn find(hay: &[u8], from: usize, a: u8, b: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let (sa, sb) = (LO * u64::from(a), LO * u64::from(b));
    let mut i = from;
    while i + 8 <= hay.len() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&hay[i..i + 8]);
        let w = u64::from_le_bytes(word);
        let (xa, xb) = (w ^ sa, w ^ sb);
        let hit = (xa.wrapping_sub(LO) & !xa & HI) | (xb.wrapping_sub(LO) & !xb & HI);
        if hit != 0 {
            return Some(i + (hit.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    hay[i..].iter().position(|&c| c == a || c == b).map(|p| i + p)
}

/// Index of the `\r`/`\n` ending a `--` comment whose text starts at `from`, or `line.len()`.
#[inline]
fn line_comment_end(line: &[u8], from: usize) -> usize {
    find(line, from, b'\n', b'\r').unwrap_or(line.len())
}

/// psql's `{quotecontinue}` after a literal's closing quote: whitespace and `--` comments including at least one
/// newline, then a quote. Returns the index of that quote. `end` excludes the line's own `\n`, which psql's lexer
/// never sees, so in practice only a `\r` inside a line can continue a literal.
fn quote_continue(line: &[u8], from: usize, end: usize) -> Option<usize> {
    let mut j = from;
    let mut newline = false;
    while j < end {
        match line[j] {
            b' ' | b'\t' | 0x0c => j += 1,
            b'\r' | b'\n' => {
                newline = true;
                j += 1;
            }
            b'-' if j + 1 < end && line[j + 1] == b'-' => {
                j = line_comment_end(&line[..end], j + 2);
                if j >= end {
                    return None;
                }
            }
            b'\'' if newline => return Some(j),
            _ => return None,
        }
    }
    None
}

/// End of a number token starting at the digit `line[i]`, including an identifier glued to it (psql 15+ lexes
/// `1e'x'` or `0x1F` as one token: the letters are neither a keyword nor a string prefix).
fn number_end(line: &[u8], i: usize) -> usize {
    let n = line.len();
    let digits = |mut j: usize| {
        while j < n && (line[j].is_ascii_digit() || line[j] == b'_') {
            j += 1;
        }
        j
    };
    let mut j = digits(i);
    if j < n && line[j] == b'.' && !(j + 1 < n && line[j + 1] == b'.') {
        j = digits(j + 1);
    }
    if j < n && (line[j] == b'e' || line[j] == b'E') {
        let mut k = j + 1;
        if k < n && (line[k] == b'+' || line[k] == b'-') {
            k += 1;
        }
        if k < n && line[k].is_ascii_digit() {
            j = digits(k);
        }
    }
    ident_junk_end(line, j)
}

/// Skips an identifier directly following a number or parameter (psql's `*_junk` rules).
fn ident_junk_end(line: &[u8], mut j: usize) -> usize {
    if j < line.len() && is_ident_start(line[j]) {
        j += 1;
        while j < line.len() && is_ident_cont(line[j]) {
            j += 1;
        }
    }
    j
}

impl Lexer {
    pub fn new() -> Self {
        Lexer {
            state: State::Initial,
            xc_depth: 0,
            dolq: Vec::new(),
            paren_depth: 0,
            begin_depth: 0,
            ident_count: 0,
            idents: [0; ROUTINE_IDENTS],
            std_strings: true,
            buf: Vec::new(),
            first_line: 0,
            significant: false,
            line_no: 0,
            variable: None,
        }
    }

    /// standard_conforming_strings: when off, plain '' strings take backslash escapes (dumps set it on; default on).
    /// Like psql, which reads the setting when it starts lexing a line, the new value applies to literals opened
    /// after the call.
    pub fn set_standard_conforming_strings(&mut self, on: bool) {
        self.std_strings = on;
    }

    /// The standard_conforming_strings the lexer splits with.
    pub fn standard_conforming_strings(&self) -> bool {
        self.std_strings
    }

    /// True when the lexer is in the middle of a statement (a partial statement is buffered).
    pub fn in_statement(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Number of lines consumed so far (pushed plus skipped): the line number of the last line pushed.
    pub fn line_number(&self) -> u64 {
        self.line_no
    }

    /// Counts `n` lines that the caller consumed without pushing them (COPY data), so that later line numbers
    /// stay those of the input.
    pub fn skip_lines(&mut self, n: u64) {
        self.line_no += n;
    }

    /// Feed exactly one input line including its trailing '\n' (the last line of input may lack it).
    /// Completed items are appended to `out`, in input order.
    ///
    /// Items after a `;` on the same line follow in order. A line with a `\n` before its end is accepted (the byte
    /// counts as whitespace), but meta-commands then run to the end of the whole slice.
    pub fn push_line(&mut self, line: &[u8], out: &mut Vec<Item>) {
        let mut from = 0;
        while let Some(next) = self.push_part(line, from, out) {
            from = next;
        }
    }

    /// Lexes `line` from byte `from` (0: a new line) up to the end of the first meta-command it meets, and
    /// returns where the rest of the line starts (`None`: the line is done). psql runs a meta-command before it
    /// lexes the rest of its line, and throws that rest away when the command fails (`HandleSlashCmds`): the
    /// caller runs the command, then either goes on from the returned offset or drops the rest of the line.
    pub fn push_part(&mut self, line: &[u8], from: usize, out: &mut Vec<Item>) -> Option<usize> {
        let mut i = from;
        if from == 0 {
            self.line_no += 1;
            i = crate::lines::bom_len(line, self.line_no);
        }
        let n = line.len();
        // psql lexes the line without its newline.
        let end = if line.last() == Some(&b'\n') { n - 1 } else { n };
        // Start of the part of this line that belongs to the current statement and is not yet in `buf`.
        let mut seg: Option<usize> = if self.buf.is_empty() { None } else { Some(i) };
        while i < n {
            match self.state {
                State::Initial => {
                    let c = line[i];
                    let next = line.get(i + 1).copied();
                    if is_space(c) {
                        i += 1;
                        continue;
                    }
                    if c == b'-' && next == Some(b'-') {
                        // Kept inside a statement, dropped before one (as psql does with leading whitespace).
                        i = line_comment_end(line, i + 2);
                        continue;
                    }
                    if c == b'\\' && next != Some(b';') && next != Some(b':') {
                        if let Some(s) = seg.take() {
                            self.buf.extend_from_slice(&line[s..i]);
                        }
                        let (item, after) = parse_meta(line, i, end, self.line_no);
                        out.push(item);
                        // A meta-command inside a statement leaves the partial statement buffered; on resuming,
                        // the rest of the line continues it.
                        return (after < n).then_some(after);
                    }
                    if seg.is_none() {
                        seg = Some(i);
                        self.first_line = self.line_no;
                    }
                    if c == b'/' && next == Some(b'*') {
                        self.state = State::Comment;
                        self.xc_depth = 0;
                        i += 2;
                        continue;
                    }
                    self.significant = true;
                    match c {
                        b'\'' => {
                            self.state = State::Str(if self.std_strings { Quoted::Standard } else { Quoted::Escaped });
                            i += 1;
                        }
                        b'"' => {
                            self.state = State::Ident;
                            i += 1;
                        }
                        b'$' => i = self.dollar(line, i),
                        b'(' => {
                            self.paren_depth = self.paren_depth.saturating_add(1);
                            i += 1;
                        }
                        b')' => {
                            self.paren_depth = self.paren_depth.saturating_sub(1);
                            i += 1;
                        }
                        b';' => {
                            i += 1;
                            if self.paren_depth == 0 && self.begin_depth == 0 {
                                let s = seg.take().unwrap_or(i - 1);
                                self.buf.extend_from_slice(&line[s..i]);
                                out.push(Item::Sql {
                                    text: mem::take(&mut self.buf),
                                    first_line: self.first_line,
                                    variable: self.variable.take(),
                                });
                                self.end_statement();
                            }
                        }
                        b'\\' => {
                            // `\;` and `\:` put the bare character into the statement; `\;` does not end it.
                            let s = seg.unwrap_or(i);
                            self.buf.extend_from_slice(&line[s..i]);
                            self.buf.push(line[i + 1]);
                            if line[i + 1] == b';' {
                                self.ident_count = 0;
                            }
                            i += 2;
                            seg = Some(i);
                        }
                        b':' => i = self.colon(line, i, end),
                        b'0'..=b'9' => i = number_end(line, i),
                        _ if is_ident_start(c) => i = self.word(line, i),
                        _ => i += 1,
                    }
                }
                State::Str(kind) => {
                    let found =
                        if kind == Quoted::Escaped { find(line, i, b'\'', b'\\') } else { find(line, i, b'\'', b'\'') };
                    let Some(p) = found else {
                        i = n;
                        continue;
                    };
                    if line[p] == b'\\' {
                        // A backslash ending the line escapes nothing: psql never sees the newline.
                        i = if p + 1 < end { p + 2 } else { p + 1 };
                    } else if kind != Quoted::Bits && line.get(p + 1) == Some(&b'\'') {
                        i = p + 2;
                    } else {
                        i = self.close_quote(line, p + 1, end, kind);
                    }
                }
                State::QuoteStop(kind) => {
                    if i >= end {
                        i = n;
                    } else if let Some(q) = quote_continue(line, i, end) {
                        self.state = State::Str(kind);
                        i = q + 1;
                    } else {
                        self.state = State::Initial;
                    }
                }
                State::Ident => match find(line, i, b'"', b'"') {
                    None => i = n,
                    Some(p) if line.get(p + 1) == Some(&b'"') => i = p + 2,
                    Some(p) => {
                        self.state = State::Initial;
                        i = p + 1;
                    }
                },
                State::Comment => match find(line, i, b'*', b'/') {
                    None => i = n,
                    Some(p) => {
                        let next = line.get(p + 1).copied();
                        if line[p] == b'*' && next == Some(b'/') {
                            if self.xc_depth == 0 {
                                self.state = State::Initial;
                            } else {
                                self.xc_depth -= 1;
                            }
                            i = p + 2;
                        } else if line[p] == b'/' && next == Some(b'*') {
                            self.xc_depth = self.xc_depth.saturating_add(1);
                            i = p + 2;
                        } else {
                            i = p + 1;
                        }
                    }
                },
                State::Dollar => match find(line, i, b'$', b'$') {
                    None => i = n,
                    Some(p) => {
                        if line[p..].starts_with(&self.dolq) {
                            i = p + self.dolq.len();
                            self.dolq.clear();
                            self.state = State::Initial;
                        } else {
                            i = p + 1;
                        }
                    }
                },
            }
        }
        if let Some(s) = seg {
            self.buf.extend_from_slice(&line[s..]);
        }
        None
    }

    /// End of input: a non-empty remainder (text after the last `;` that is not only whitespace/comments)
    /// becomes a final `Item::Sql` (psql executes it too).
    pub fn finish(&mut self, out: &mut Vec<Item>) {
        let mut text = mem::take(&mut self.buf);
        if self.significant {
            // psql joins lines with '\n' and sends no final newline.
            if matches!(self.state, State::Initial | State::QuoteStop(_)) {
                while text.last().is_some_and(|&c| is_space(c)) {
                    text.pop();
                }
            } else if text.last() == Some(&b'\n') {
                text.pop();
            }
            out.push(Item::Sql { text, first_line: self.first_line, variable: self.variable.take() });
        }
        self.end_statement();
        self.state = State::Initial;
        self.xc_depth = 0;
        self.dolq.clear();
        self.paren_depth = 0;
        self.begin_depth = 0;
    }

    fn end_statement(&mut self) {
        self.variable = None;
        self.ident_count = 0;
        self.significant = false;
    }

    /// A `:` outside quotes and comments, as psqlscan.l reads it: `::` is a cast; `:name`, `:'name'` and
    /// `:"name"` are replaced by psql when the variable is set, and `:{?name}` always. Returns the index past
    /// what psql takes as one token.
    fn colon(&mut self, line: &[u8], i: usize, end: usize) -> usize {
        let var_end = |from: usize| (from..end).find(|&j| !is_variable_char(line[j])).unwrap_or(end);
        match line.get(i + 1).copied().filter(|_| i + 1 < end) {
            Some(b':') => i + 2,
            Some(q @ (b'\'' | b'"')) => {
                let e = var_end(i + 2);
                if e > i + 2 && e < end && line[e] == q {
                    self.note_variable(&line[i + 2..e]);
                    e + 1
                } else {
                    i + 1
                }
            }
            Some(b'{') if line.get(i + 2) == Some(&b'?') => {
                let e = var_end(i + 3);
                if e > i + 3 && e < end && line[e] == b'}' {
                    // Replaced by TRUE or FALSE whether or not the variable is set.
                    self.variable.get_or_insert_with(|| String::from_utf8_lossy(&line[i..=e]).into_owned());
                    e + 1
                } else {
                    i + 1
                }
            }
            Some(c) if is_variable_char(c) => {
                let e = var_end(i + 1);
                self.note_variable(&line[i + 1..e]);
                e
            }
            _ => i + 1,
        }
    }

    fn note_variable(&mut self, name: &[u8]) {
        if self.variable.is_none() && PSQL_VARIABLES.iter().any(|v| v.as_bytes() == name) {
            self.variable = Some(format!(":{}", String::from_utf8_lossy(name)));
        }
    }

    /// After a literal's closing quote (`after` is the index past it): psql's xqs lookahead for a continuation.
    fn close_quote(&mut self, line: &[u8], after: usize, end: usize, kind: Quoted) -> usize {
        if after >= end {
            self.state = State::QuoteStop(kind);
            after
        } else if let Some(q) = quote_continue(line, after, end) {
            q + 1
        } else {
            self.state = State::Initial;
            after
        }
    }

    /// `$` outside quotes: a parameter `$1`, a dollar-quote delimiter `$tag$`, or a lone `$` (psql's dolqfailed
    /// throws the tag back, so `$foo` lexes as `$` then the identifier `foo`).
    fn dollar(&mut self, line: &[u8], i: usize) -> usize {
        let n = line.len();
        let mut k = i + 1;
        if k < n && line[k].is_ascii_digit() {
            while k < n && line[k].is_ascii_digit() {
                k += 1;
            }
            return ident_junk_end(line, k);
        }
        if k < n && is_ident_start(line[k]) {
            k += 1;
            while k < n && is_dolq_cont(line[k]) {
                k += 1;
            }
        }
        if k < n && line[k] == b'$' {
            self.dolq.clear();
            self.dolq.extend_from_slice(&line[i..=k]);
            self.state = State::Dollar;
            k + 1
        } else {
            i + 1
        }
    }

    /// A token starting with a letter: a prefixed literal (`E'`, `B'`, `X'`, `N'`, `U&'`, `U&"`) or an identifier.
    fn word(&mut self, line: &[u8], i: usize) -> usize {
        let c = line[i];
        let next = line.get(i + 1).copied();
        match (c.to_ascii_lowercase(), next) {
            (b'b' | b'x', Some(b'\'')) => {
                self.state = State::Str(Quoted::Bits);
                return i + 2;
            }
            (b'e', Some(b'\'')) => {
                self.state = State::Str(Quoted::Escaped);
                return i + 2;
            }
            // N'…' is a plain literal after the N.
            (b'n', Some(b'\'')) => return i + 1,
            (b'u', Some(b'&')) => {
                return match line.get(i + 2) {
                    Some(b'\'') => {
                        self.state = State::Str(Quoted::Standard);
                        i + 3
                    }
                    Some(b'"') => {
                        self.state = State::Ident;
                        i + 3
                    }
                    // psql's xufailed: only the U is consumed, and not as an identifier.
                    _ => i + 1,
                };
            }
            _ => {}
        }
        let mut j = i + 1;
        while j < line.len() && is_ident_cont(line[j]) {
            j += 1;
        }
        self.track_identifier(&line[i..j]);
        j
    }

    /// psql 14–18's begin-depth heuristic (psqlscan.l, `{identifier}` rule): the first identifiers of a statement
    /// tell whether it is CREATE [OR REPLACE] FUNCTION|PROCEDURE; only then, at parenthesis depth 0, BEGIN opens a
    /// block, CASE opens one inside a block, END closes one.
    fn track_identifier(&mut self, word: &[u8]) {
        let is = |kw: &str| word.eq_ignore_ascii_case(kw.as_bytes());
        if self.ident_count == 0 {
            self.idents = [0; ROUTINE_IDENTS];
        }
        if (self.ident_count as usize) < ROUTINE_IDENTS
            && (is("create") || is("function") || is("procedure") || is("or") || is("replace"))
        {
            self.idents[self.ident_count as usize] = word[0].to_ascii_lowercase();
        }
        self.ident_count = self.ident_count.saturating_add(1);

        if self.paren_depth != 0 {
            return;
        }
        let id = &self.idents;
        let create_routine = id[0] == b'c'
            && (id[1] == b'f' || id[1] == b'p' || (id[1] == b'o' && id[2] == b'r' && (id[3] == b'f' || id[3] == b'p')));
        if create_routine {
            if is("begin") {
                self.begin_depth = self.begin_depth.saturating_add(1);
            } else if is("case") {
                if self.begin_depth >= 1 {
                    self.begin_depth = self.begin_depth.saturating_add(1);
                }
            } else if is("end") {
                self.begin_depth = self.begin_depth.saturating_sub(1);
            }
        }
    }
}

/// Splits a whole buffer into lines and runs the lexer over it, `finish` included.
pub fn split_all(input: &[u8]) -> Vec<Item> {
    let mut lexer = Lexer::new();
    let mut out = Vec::new();
    for line in input.split_inclusive(|&b| b == b'\n') {
        lexer.push_line(line, &mut out);
    }
    lexer.finish(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn sql(text: &str, first_line: u64) -> Item {
        Item::Sql { text: text.as_bytes().to_vec(), first_line, variable: None }
    }

    pub(super) fn meta(name: &str, args: &[&str], line: u64) -> Item {
        Item::Meta { name: name.to_string(), args: args.iter().map(|a| a.to_string()).collect(), line }
    }

    pub(super) fn split(input: &str) -> Vec<Item> {
        split_all(input.as_bytes())
    }

    /// Statement texts only, for cases where the lines do not matter.
    fn texts(input: &str) -> Vec<String> {
        split(input)
            .into_iter()
            .map(|item| match item {
                Item::Sql { text, .. } => String::from_utf8(text).unwrap(),
                Item::Meta { name, .. } => format!("\\{name}"),
            })
            .collect()
    }

    #[test]
    fn standard_conforming_strings_switch() {
        let line = "INSERT INTO t VALUES ('C:\\'); DROP TABLE important; --');\n";
        let mut on = Lexer::new();
        let mut items = Vec::new();
        on.push_line(line.as_bytes(), &mut items);
        assert_eq!(items.len(), 2, "with the setting on, the backslash is a character: two statements");
        let mut off = Lexer::new();
        off.set_standard_conforming_strings(false);
        let mut items = Vec::new();
        off.push_line(line.as_bytes(), &mut items);
        assert_eq!(items.len(), 1, "with the setting off, \\' hides the quote: one statement");
        // A literal opened before the switch keeps the kind it was opened with.
        let mut l = Lexer::new();
        let mut items = Vec::new();
        l.push_line(b"SELECT 'a\\\n", &mut items);
        l.set_standard_conforming_strings(false);
        l.push_line(b"';\n", &mut items);
        assert_eq!(items.len(), 1);
        // E'' strings take escapes either way.
        let mut l = Lexer::new();
        let mut items = Vec::new();
        l.push_line(b"SELECT E'a\\'; b';\n", &mut items);
        assert_eq!(items.len(), 1);
    }

    #[test]
    fn push_part_stops_after_each_meta_command() {
        let mut l = Lexer::new();
        let mut items = Vec::new();
        let line = b"SELECT 1; \\echo x \\\\ SELECT 2;\n";
        let next = l.push_part(line, 0, &mut items);
        assert_eq!(items.len(), 2, "{items:?}");
        assert!(matches!(&items[1], Item::Meta { name, .. } if name == "echo"));
        let at = next.expect("more on the line");
        items.clear();
        assert_eq!(l.push_part(line, at, &mut items), None);
        assert_eq!(texts_of(&items), vec!["SELECT 2;".to_string()]);
    }

    fn texts_of(items: &[Item]) -> Vec<String> {
        items
            .iter()
            .map(|i| match i {
                Item::Sql { text, .. } => String::from_utf8_lossy(text).into_owned(),
                Item::Meta { name, .. } => format!("\\{name}"),
            })
            .collect()
    }

    #[test]
    fn psql_variables_are_flagged() {
        let var = |sql: &str| match split_all(sql.as_bytes()).pop() {
            Some(Item::Sql { variable, .. }) => variable,
            other => panic!("{other:?}"),
        };
        assert_eq!(var("SELECT :'DBNAME';").as_deref(), Some(":DBNAME"));
        assert_eq!(var("SELECT :USER;").as_deref(), Some(":USER"));
        assert_eq!(var("SELECT :\"HOST\";").as_deref(), Some(":HOST"));
        assert_eq!(var("SELECT :{?anything};").as_deref(), Some(":{?anything}"));
        for plain in [
            "SELECT 1::int;",
            "SELECT ':DBNAME';",
            "SELECT a[1:2] FROM t;",
            "SELECT :undefined_var;",
            "-- :DBNAME\nSELECT 1;",
        ] {
            assert_eq!(var(plain), None, "{plain}");
        }
    }

    #[test]
    fn simple_statements_and_lines() {
        assert_eq!(split("SELECT 1;\nSELECT 2;\n"), vec![sql("SELECT 1;", 1), sql("SELECT 2;", 2)]);
    }

    #[test]
    fn multiple_statements_on_one_line() {
        assert_eq!(
            split("SELECT 1; SELECT 2;SELECT 3;\n"),
            vec![sql("SELECT 1;", 1), sql("SELECT 2;", 1), sql("SELECT 3;", 1)]
        );
    }

    #[test]
    fn statement_spanning_many_lines() {
        let input = "\n\n-- header comment\n\nCREATE TABLE t (\n    a integer,\n    b text\n);\n\nSELECT\n1\n;\n";
        assert_eq!(
            split(input),
            vec![sql("CREATE TABLE t (\n    a integer,\n    b text\n);", 5), sql("SELECT\n1\n;", 10)]
        );
    }

    #[test]
    fn dollar_quote_body_with_semicolons() {
        let input = "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$\nBEGIN\n  PERFORM 1;\n  RETURN 2;\nEND;\n$$;\nSELECT 1;\n";
        assert_eq!(
            split(input),
            vec![
                sql("CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$\nBEGIN\n  PERFORM 1;\n  RETURN 2;\nEND;\n$$;", 1),
                sql("SELECT 1;", 7)
            ]
        );
    }

    #[test]
    fn tagged_dollar_quote_containing_empty_tag() {
        let input = "SELECT $fn$ a $$ ; $x$ ; $$ b $fn$;\nSELECT 2;\n";
        assert_eq!(texts(input), vec!["SELECT $fn$ a $$ ; $x$ ; $$ b $fn$;", "SELECT 2;"]);
        // A delimiter glued to junk: `$junk$fn$` still closes at `$fn$`.
        assert_eq!(texts("SELECT $fn$;$junk$fn$;"), vec!["SELECT $fn$;$junk$fn$;"]);
        // Tags are case-sensitive.
        assert_eq!(texts("SELECT $a$;$A$;$a$;"), vec!["SELECT $a$;$A$;$a$;"]);
    }

    #[test]
    fn dollar_parameter_is_not_a_quote() {
        assert_eq!(texts("PREPARE p AS SELECT $1; SELECT $2;"), vec!["PREPARE p AS SELECT $1;", "SELECT $2;"]);
        // `$1$x$` is the parameter $1 followed by the delimiter `$x$`.
        assert_eq!(texts("SELECT $1$x$;$x$;"), vec!["SELECT $1$x$;$x$;"]);
    }

    #[test]
    fn dollar_inside_identifier_is_not_a_quote() {
        assert_eq!(texts("SELECT a$$b; SELECT foo$1; SELECT 2;"), vec!["SELECT a$$b;", "SELECT foo$1;", "SELECT 2;"]);
    }

    #[test]
    fn unterminated_dollar_tag_is_a_lone_dollar() {
        // `$foo` without a closing `$` is `$` then the identifier foo; the `;` ends the statement.
        assert_eq!(texts("SELECT $foo; SELECT 2;"), vec!["SELECT $foo;", "SELECT 2;"]);
    }

    #[test]
    fn nested_block_comments_with_semicolons() {
        let input = "SELECT /* a; /* b; */ c; */ 1;\nSELECT 2 /* x\n; */;\n";
        assert_eq!(split(input), vec![sql("SELECT /* a; /* b; */ c; */ 1;", 1), sql("SELECT 2 /* x\n; */;", 2)]);
        // `/**/` opens and closes; `*/*` inside a comment closes and the `*` is plain.
        assert_eq!(texts("SELECT /**/ 1; SELECT 2 /* **/;"), vec!["SELECT /**/ 1;", "SELECT 2 /* **/;"]);
    }

    #[test]
    fn line_comments_with_quotes_inside() {
        let input = "SELECT 1 -- it's a \"comment\"; $$ /*\n;\nSELECT 2;\n";
        assert_eq!(split(input), vec![sql("SELECT 1 -- it's a \"comment\"; $$ /*\n;", 1), sql("SELECT 2;", 3)]);
    }

    #[test]
    fn comment_markers_inside_quotes_are_text() {
        assert_eq!(
            texts("SELECT '--;', '/*;', \"--;\";\nSELECT 2;"),
            vec!["SELECT '--;', '/*;', \"--;\";", "SELECT 2;"]
        );
    }

    #[test]
    fn escape_string_with_backslash_quote() {
        assert_eq!(texts(r"SELECT E'it\'s;'; SELECT 2;"), vec![r"SELECT E'it\'s;';", "SELECT 2;"]);
        assert_eq!(texts(r"SELECT e'\\'; SELECT 2;"), vec![r"SELECT e'\\';", "SELECT 2;"]);
        // In a standard string a backslash is a plain character.
        assert_eq!(texts(r"SELECT 'a\'; SELECT 2;"), vec![r"SELECT 'a\';", "SELECT 2;"]);
    }

    #[test]
    fn doubled_quotes() {
        assert_eq!(texts("SELECT 'it''s;', '''', ''; SELECT 2;"), vec!["SELECT 'it''s;', '''', '';", "SELECT 2;"]);
    }

    #[test]
    fn unicode_strings_and_identifiers() {
        assert_eq!(texts(r"SELECT U&'d\0061t;a'; SELECT 2;"), vec![r"SELECT U&'d\0061t;a';", "SELECT 2;"]);
        // U&'' takes no backslash escapes: the backslash does not hide the quote.
        assert_eq!(texts(r"SELECT u&'\'; SELECT 2;"), vec![r"SELECT u&'\';", "SELECT 2;"]);
        assert_eq!(texts("SELECT U&\"a;\"\"b\"; SELECT 2;"), vec!["SELECT U&\"a;\"\"b\";", "SELECT 2;"]);
        // `u&` followed by something else is an operator after the identifier u.
        assert_eq!(texts("SELECT u&1; SELECT 2;"), vec!["SELECT u&1;", "SELECT 2;"]);
    }

    #[test]
    fn bit_hex_and_national_strings() {
        assert_eq!(
            texts("SELECT X'1F;', B'01;', N'n;''x'; SELECT 2;"),
            vec!["SELECT X'1F;', B'01;', N'n;''x';", "SELECT 2;"]
        );
        // B'…' and X'…' end at the first quote; the next quote opens a new literal.
        assert_eq!(texts("SELECT B'0''1;'; SELECT 2;"), vec!["SELECT B'0''1;';", "SELECT 2;"]);
    }

    #[test]
    fn quoted_identifiers_with_semicolon_and_doubled_quote() {
        assert_eq!(
            texts("CREATE TABLE \"we;ird\"\"name\" (\"a;b\" int); SELECT 2;"),
            vec!["CREATE TABLE \"we;ird\"\"name\" (\"a;b\" int);", "SELECT 2;"]
        );
    }

    #[test]
    fn create_rule_with_parenthesized_actions() {
        let input = "CREATE RULE r AS ON INSERT TO t DO INSTEAD (\n  INSERT INTO a VALUES (1);\n  INSERT INTO b VALUES (2);\n);\nSELECT 1;\n";
        assert_eq!(
            split(input),
            vec![
                sql("CREATE RULE r AS ON INSERT TO t DO INSTEAD (\n  INSERT INTO a VALUES (1);\n  INSERT INTO b VALUES (2);\n);", 1),
                sql("SELECT 1;", 5)
            ]
        );
        // A stray `)` does not make the depth negative.
        assert_eq!(texts("SELECT ); SELECT 2;"), vec!["SELECT );", "SELECT 2;"]);
    }

    #[test]
    fn begin_atomic_function_with_case() {
        let input = "CREATE FUNCTION public.f(x integer) RETURNS integer\n    LANGUAGE sql\n    BEGIN ATOMIC\n SELECT CASE WHEN x > 0 THEN 1 ELSE 0 END;\n SELECT 2;\nEND;\nSELECT 3;\n";
        assert_eq!(
            split(input),
            vec![
                sql("CREATE FUNCTION public.f(x integer) RETURNS integer\n    LANGUAGE sql\n    BEGIN ATOMIC\n SELECT CASE WHEN x > 0 THEN 1 ELSE 0 END;\n SELECT 2;\nEND;", 1),
                sql("SELECT 3;", 7)
            ]
        );
    }

    #[test]
    fn create_or_replace_procedure_begin_atomic() {
        let input = "create or replace procedure p() language sql begin atomic insert into t values (1); insert into t values (2); end;\ncall p();\n";
        assert_eq!(
            texts(input),
            vec![
                "create or replace procedure p() language sql begin atomic insert into t values (1); insert into t values (2); end;",
                "call p();"
            ]
        );
    }

    #[test]
    fn begin_transaction_is_not_a_block() {
        assert_eq!(
            split("BEGIN;\nSELECT 1;\nEND;\nBEGIN TRANSACTION; COMMIT;\n"),
            vec![
                sql("BEGIN;", 1),
                sql("SELECT 1;", 2),
                sql("END;", 3),
                sql("BEGIN TRANSACTION;", 4),
                sql("COMMIT;", 4)
            ]
        );
        // CREATE TABLE … (begin int) is no routine either.
        assert_eq!(texts("CREATE TABLE begin (x int); SELECT 2;"), vec!["CREATE TABLE begin (x int);", "SELECT 2;"]);
    }

    #[test]
    fn keywords_only_count_as_whole_unquoted_identifiers() {
        // "begin" quoted, 'begin' in a string, begins/beginning as words, begin in a dollar body: no block.
        let input = "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ begin $$ RETURNS NULL ON NULL INPUT;\n\
                     CREATE FUNCTION \"begin\"() RETURNS text LANGUAGE sql RETURN 'begin';\n\
                     CREATE FUNCTION beginning() RETURNS int LANGUAGE sql RETURN 1;\nSELECT 2;\n";
        assert_eq!(texts(input).len(), 4);
    }

    #[test]
    fn case_outside_a_block_does_not_count() {
        let input = "CREATE FUNCTION f(x int) RETURNS int LANGUAGE sql RETURN CASE WHEN x > 0 THEN 1 END;\nSELECT 2;\n";
        assert_eq!(texts(input).len(), 2);
    }

    #[test]
    fn plpgsql_body_in_quotes_is_opaque() {
        let input =
            "CREATE OR REPLACE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS 'begin return new; end;';\nSELECT 1;\n";
        assert_eq!(texts(input).len(), 2);
    }

    #[test]
    fn meta_inside_partial_statement() {
        let input = "SELECT 1,\n\\encoding UTF8\n2;\n";
        // psql joins the lines with '\n', the meta-command's line included.
        assert_eq!(split(input), vec![meta("encoding", &["UTF8"], 2), sql("SELECT 1,\n\n2;", 1)]);
        let mut lexer = Lexer::new();
        let mut out = Vec::new();
        lexer.push_line(b"SELECT 1 \\restrict K\n", &mut out);
        assert_eq!(out, vec![meta("restrict", &["K"], 1)]);
        assert!(lexer.in_statement());
        lexer.push_line(b";\n", &mut out);
        assert_eq!(out[1], sql("SELECT 1 \n;", 1));
        assert!(!lexer.in_statement());
    }

    #[test]
    fn backslash_semicolon_and_colon() {
        // psql puts a bare `;` into the statement without ending it.
        assert_eq!(texts("SELECT 1 \\; SELECT 2;\nSELECT a\\:b;"), vec!["SELECT 1 ; SELECT 2;", "SELECT a:b;"]);
    }

    #[test]
    fn backslash_inside_quotes_and_comments_is_text() {
        assert_eq!(
            texts("SELECT '\\connect x', $$\\q$$ /* \\x */;\n-- \\connect y\nSELECT 2;"),
            vec!["SELECT '\\connect x', $$\\q$$ /* \\x */;", "SELECT 2;"]
        );
    }

    #[test]
    fn remainder_after_last_semicolon() {
        let mut lexer = Lexer::new();
        let mut out = Vec::new();
        lexer.push_line(b"SELECT 1; SELECT\n", &mut out);
        lexer.push_line(b"  2", &mut out);
        assert_eq!(out, vec![sql("SELECT 1;", 1)]);
        assert!(lexer.in_statement());
        lexer.finish(&mut out);
        assert_eq!(out, vec![sql("SELECT 1;", 1), sql("SELECT\n  2", 1)]);
        assert!(!lexer.in_statement());
        assert_eq!(split("SELECT 1;\nSELECT 2\n\n  \n"), vec![sql("SELECT 1;", 1), sql("SELECT 2", 2)]);
    }

    #[test]
    fn comment_only_remainder_produces_nothing() {
        assert_eq!(split("SELECT 1;\n-- the end\n/* really\n the end */\n\n"), vec![sql("SELECT 1;", 1)]);
        assert_eq!(split("SELECT 1; -- trailing\n"), vec![sql("SELECT 1;", 1)]);
        assert_eq!(split(""), vec![]);
        assert_eq!(split("\n\n"), vec![]);
    }

    #[test]
    fn unterminated_literal_at_end_is_sent() {
        assert_eq!(split("SELECT 'abc  \n"), vec![sql("SELECT 'abc  ", 1)]);
    }

    #[test]
    fn block_comment_before_statement_is_kept() {
        assert_eq!(split("/* hi; */\nSELECT 1;\n"), vec![sql("/* hi; */\nSELECT 1;", 1)]);
        // psql sends a comment-only statement ended by `;`, and a lone `;`.
        assert_eq!(texts("/* x */; ;"), vec!["/* x */;", ";"]);
    }

    #[test]
    fn bom_is_skipped_on_first_line_only() {
        assert_eq!(
            split("\u{feff}SELECT 1;\n\u{feff}SELECT 2;\n"),
            vec![sql("SELECT 1;", 1), sql("\u{feff}SELECT 2;", 2)]
        );
    }

    #[test]
    fn standard_conforming_strings_off() {
        let mut lexer = Lexer::new();
        lexer.set_standard_conforming_strings(false);
        let mut out = Vec::new();
        lexer.push_line(b"SELECT 'it\\'s;'; SELECT N'\\';';\n", &mut out);
        lexer.set_standard_conforming_strings(true);
        lexer.push_line(b"SELECT 'a\\'; SELECT 2;\n", &mut out);
        lexer.finish(&mut out);
        assert_eq!(
            out,
            vec![sql("SELECT 'it\\'s;';", 1), sql("SELECT N'\\';';", 1), sql("SELECT 'a\\';", 2), sql("SELECT 2;", 2)]
        );
    }

    #[test]
    fn non_utf8_bytes() {
        let input = b"INSERT INTO t VALUES ('caf\xe9;'), (\"\xe9;\"), (\xe9$$;);\nSELECT 2;\n";
        let items = split_all(input);
        assert_eq!(items.len(), 2);
        assert_eq!(items[0], Item::Sql { text: input[..input.len() - 11].to_vec(), first_line: 1, variable: None });
        // An identifier may start with a high byte, and then `$$` inside it is no quote.
        assert_eq!(split_all(b"SELECT \xe9$$;\n").len(), 1);
    }

    #[test]
    fn numbers_do_not_start_literals() {
        // psql 15+: `1e` is one (junk) token, the quote opens a standard string.
        assert_eq!(texts(r"SELECT 1e'\'; SELECT 2;"), vec![r"SELECT 1e'\';", "SELECT 2;"]);
        assert_eq!(
            texts("SELECT 1.5e+3, .5, 1..2, 0x1F; SELECT 2;"),
            vec!["SELECT 1.5e+3, .5, 1..2, 0x1F;", "SELECT 2;"]
        );
    }

    #[test]
    fn carriage_return_ends_line_comment_and_continues_literals() {
        // A `--` comment ends at \r, as in psql.
        assert_eq!(texts("SELECT 1 -- c\r; SELECT 2;\n"), vec!["SELECT 1 -- c\r;", "SELECT 2;"]);
        // E'…' continued after a newline inside the line keeps taking escapes (psql's xqs).
        assert_eq!(texts("SELECT E'a'\r'\\';'; SELECT 2;\n"), vec!["SELECT E'a'\r'\\';';", "SELECT 2;"]);
        // Across lines psql never continues a literal: the second one is a standard string.
        assert_eq!(texts("SELECT E'a'\n'\\'; SELECT 2;\n"), vec!["SELECT E'a'\n'\\';", "SELECT 2;"]);
    }

    #[test]
    fn lexer_is_clean_after_copy_statement() {
        let mut lexer = Lexer::new();
        let mut out = Vec::new();
        lexer.push_line(b"COPY public.t (a, b) FROM stdin;\n", &mut out);
        assert_eq!(out, vec![sql("COPY public.t (a, b) FROM stdin;", 1)]);
        assert!(!lexer.in_statement());
        // The runner consumes the data lines itself.
        lexer.skip_lines(3);
        lexer.push_line(b"SELECT 1;\n", &mut out);
        assert_eq!(out[1], sql("SELECT 1;", 5));
        assert_eq!(lexer.line_number(), 5);
    }

    #[test]
    fn incremental_feeding_matches_whole_buffer() {
        let input = "SELECT 'a\nb'; CREATE FUNCTION f() RETURNS int BEGIN ATOMIC\nSELECT 1;\nEND;\n\\connect x\nSELECT $$\n;$$;";
        let mut lexer = Lexer::new();
        let mut out = Vec::new();
        for line in input.as_bytes().split_inclusive(|&b| b == b'\n') {
            lexer.push_line(line, &mut out);
        }
        lexer.finish(&mut out);
        assert_eq!(out, split(input));
        assert_eq!(out.len(), 4);
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        fn chars(set: &'static str, max: usize) -> impl Strategy<Value = String> {
            proptest::collection::vec(proptest::sample::select(set.chars().collect::<Vec<_>>()), 0..max)
                .prop_map(|v| v.into_iter().collect())
        }

        /// Text that may hold any of `;'"$()/*-\` when quoted by its own construct.
        const NOISE: &str = "ab; ()'\"$\\-*/\té\n";

        fn block_comment() -> impl Strategy<Value = String> {
            let leaf = chars("ab; ()'\"$\\-\té\n", 8).prop_map(|s| format!("/*{s}*/"));
            leaf.prop_recursive(3, 8, 2, |inner| {
                (chars("ab; ()'\"$\\\n", 4), inner, chars("ab; \n", 4)).prop_map(|(a, c, b)| format!("/*{a}{c}{b}*/"))
            })
        }

        /// `keywords`: also BEGIN/CASE/END as bare words (which only matter inside CREATE FUNCTION).
        fn fragment(keywords: bool) -> impl Strategy<Value = String> {
            let mut words = vec!["SELECT", "x", "a$$b", "foo$1", "t_1", "é", "Create", "function"];
            if keywords {
                words.extend(["END", "CASE", "begin"]);
            }
            prop_oneof![
                proptest::sample::select(words).prop_map(String::from),
                proptest::sample::select(vec!["$1", "42", "1.5e3", "::", "+", "-", "*", "/", ",", "=", "<>", "."])
                    .prop_map(String::from),
                chars("ab; ()\"$\\-*/é\n", 10).prop_map(|s| format!("'{s}'")),
                proptest::collection::vec(prop_oneof![chars("ab; ()\"$-*/\n", 4), Just("''".to_string())], 0..4)
                    .prop_map(|v| format!("'{}'", v.concat())),
                proptest::collection::vec(
                    prop_oneof![chars("ab; ()\"$-*/\n", 4), Just("\\'".to_string()), Just("\\\\".to_string())],
                    0..4
                )
                .prop_map(|v| format!("E'{}'", v.concat())),
                chars("ab; ()$\\-*/\n", 8).prop_map(|s| format!("U&'{s}'")),
                chars("0123456789ABCDEF;", 6).prop_map(|s| format!("X'{s}'")),
                proptest::collection::vec(prop_oneof![chars("ab; ()'$\\-*/\n", 4), Just("\"\"".to_string())], 0..4)
                    .prop_map(|v| format!("\"{}\"", v.concat())),
                (proptest::sample::select(vec!["", "fn", "_x9", "é"]), chars(NOISE, 12)).prop_filter_map(
                    "body must not contain its delimiter",
                    |(tag, body)| {
                        let delim = format!("${tag}$");
                        let with_end = format!("{body}{delim}");
                        (with_end.find(&delim) == Some(body.len())).then(|| format!("{delim}{body}{delim}"))
                    }
                ),
                block_comment(),
                chars("ab; ()'\"$\\*/é", 10).prop_map(|s| format!("--{s}\n")),
                Just("(a; b)".to_string()),
            ]
        }

        fn statement() -> impl Strategy<Value = String> {
            let plain = proptest::collection::vec(fragment(true), 0..8).prop_map(|f| format!("SELECT {}", f.join(" ")));
            let routine = (
                proptest::sample::select(vec!["CREATE FUNCTION", "create or replace procedure"]),
                proptest::collection::vec(proptest::collection::vec(fragment(false), 0..4), 0..3),
            )
                .prop_map(|(head, inner)| {
                    let body: Vec<String> =
                        inner.into_iter().map(|f| format!("SELECT CASE WHEN {} THEN 1 END;", f.join(" "))).collect();
                    format!("{head} f() LANGUAGE sql BEGIN ATOMIC\n{}\nEND", body.join("\n"))
                });
            prop_oneof![4 => plain, 1 => routine]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

            #[test]
            fn never_panics_on_arbitrary_lines(
                lines in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..12),
                std_off in any::<bool>(),
            ) {
                let mut lexer = Lexer::new();
                lexer.set_standard_conforming_strings(!std_off);
                let mut out = Vec::new();
                for line in &lines {
                    lexer.push_line(line, &mut out);
                }
                lexer.finish(&mut out);
                prop_assert!(!lexer.in_statement());
                let whole: Vec<u8> = lines.concat();
                let _ = split_all(&whole);
            }

            #[test]
            fn find_matches_naive_search(hay in proptest::collection::vec(any::<u8>(), 0..70), from in 0usize..70,
                                         a in any::<u8>(), b in any::<u8>()) {
                let from = from.min(hay.len());
                let naive = hay[from..].iter().position(|&c| c == a || c == b).map(|p| from + p);
                prop_assert_eq!(find(&hay, from, a, b), naive);
            }

            #[test]
            fn never_panics_on_sql_like_bytes(input in proptest::collection::vec(
                proptest::sample::select(b"ab$;'\"\\()-*/\n\rEUX&_1 ".to_vec()), 0..200)
            ) {
                let _ = split_all(&input);
            }

            #[test]
            fn splits_generated_statements(stmts in proptest::collection::vec(statement(), 1..6)) {
                let input: String = stmts.iter().map(|s| format!("{s};\n")).collect();
                let items = split_all(input.as_bytes());
                prop_assert_eq!(items.len(), stmts.len(), "input: {:?} items: {:?}", input, items);
                let mut line = 1u64;
                for (stmt, item) in stmts.iter().zip(&items) {
                    let expected = format!("{stmt};");
                    prop_assert_eq!(item, &Item::Sql { text: expected.clone().into_bytes(), first_line: line, variable: None });
                    line += expected.matches('\n').count() as u64 + 1;
                }
                let joined: String = items
                    .iter()
                    .map(|i| match i {
                        Item::Sql { text, .. } => format!("{}\n", String::from_utf8_lossy(text)),
                        Item::Meta { .. } => String::new(),
                    })
                    .collect();
                prop_assert_eq!(joined, input);
            }
        }
    }
}
