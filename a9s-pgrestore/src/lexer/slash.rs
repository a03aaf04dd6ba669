//! psql's backslash meta-commands (`src/bin/psql/psqlscanslash.l`): a command's name and its arguments as psql
//! parses them, once the statement scanner has met the backslash.

use super::{find, is_space, Item};

/// Parses the meta-command whose backslash is at `line[i]` (psqlscanslash.l): the name runs to whitespace or a
/// backslash; arguments are whitespace-separated, with '…' (backslash escapes, `''`) and "…" quoting, up to the end
/// of the line or an unquoted backslash. A `\\` there ends the command and the rest of the line is SQL again; another
/// backslash starts the next command. Returns the item and the index where lexing resumes.
pub(super) fn parse_meta(line: &[u8], i: usize, end: usize, line_no: u64) -> (Item, usize) {
    let mut j = i + 1;
    let name = if j < end && line[j] == b'\\' {
        j += 1;
        "\\".to_string()
    } else {
        let start = j;
        while j < end && !is_space(line[j]) && line[j] != b'\\' {
            j += 1;
        }
        String::from_utf8_lossy(&line[start..j]).into_owned()
    };
    // psql's \connect reads its arguments as OT_SQLIDHACK: double quotes removed, case kept. Other commands use
    // OT_NORMAL, which keeps double quotes.
    let sql_ident = name == "connect" || name == "c";
    let mut args = Vec::new();
    let mut resume = end;
    loop {
        while j < end && is_space(line[j]) {
            j += 1;
        }
        if j >= end {
            break;
        }
        if line[j] == b'\\' {
            if j + 1 < end && line[j + 1] == b'\\' {
                resume = j + 2;
            } else {
                resume = j;
            }
            break;
        }
        let mut arg = Vec::new();
        let mut quoted = false;
        // Unquoted characters at the end of the argument: only those may be stripped as trailing semicolons.
        let mut unquoted_tail = 0usize;
        while j < end && !is_space(line[j]) && line[j] != b'\\' {
            match line[j] {
                b'\'' => {
                    quoted = true;
                    unquoted_tail = 0;
                    j = single_quoted(line, j + 1, end, &mut arg);
                }
                q @ (b'"' | b'`') => {
                    // Double quotes are copied verbatim, quotes included. Backquotes would run a shell command in
                    // psql; here their text is taken literally and nothing is ever executed.
                    quoted = true;
                    unquoted_tail = 0;
                    let close = find(&line[..end], j + 1, q, q).map_or(end, |p| p + 1);
                    arg.extend_from_slice(&line[j..close]);
                    j = close;
                }
                c => {
                    arg.push(c);
                    unquoted_tail += 1;
                    j += 1;
                }
            }
        }
        while unquoted_tail > 0 && arg.last() == Some(&b';') {
            arg.pop();
            unquoted_tail -= 1;
        }
        if sql_ident {
            arg = dequote_identifier(&arg);
        }
        if arg.is_empty() && !quoted {
            continue;
        }
        args.push(String::from_utf8_lossy(&arg).into_owned());
    }
    (Item::Meta { name, args, line: line_no }, resume)
}

/// Inside a single-quoted meta-command argument starting at `j`: `''` is a quote, `\n \t \b \r \f`, octal `\ooo`,
/// hex `\xhh` and `\c` (any other character) are escapes. Returns the index past the closing quote.
fn single_quoted(line: &[u8], mut j: usize, end: usize, arg: &mut Vec<u8>) -> usize {
    while j < end {
        let c = line[j];
        if c == b'\'' {
            if j + 1 < end && line[j + 1] == b'\'' {
                arg.push(b'\'');
                j += 2;
                continue;
            }
            return j + 1;
        }
        if c != b'\\' || j + 1 >= end {
            arg.push(c);
            j += 1;
            continue;
        }
        let e = line[j + 1];
        match e {
            b'n' => arg.push(b'\n'),
            b't' => arg.push(b'\t'),
            b'b' => arg.push(0x08),
            b'r' => arg.push(b'\r'),
            b'f' => arg.push(0x0c),
            b'0'..=b'7' => {
                let mut k = j + 1;
                let mut v: u32 = 0;
                while k < end && k < j + 4 && (b'0'..=b'7').contains(&line[k]) {
                    v = v * 8 + u32::from(line[k] - b'0');
                    k += 1;
                }
                arg.push(v as u8);
                j = k;
                continue;
            }
            b'x' if j + 2 < end && line[j + 2].is_ascii_hexdigit() => {
                let mut k = j + 2;
                let mut v: u32 = 0;
                while k < end && k < j + 4 && line[k].is_ascii_hexdigit() {
                    v = v * 16 + (line[k] as char).to_digit(16).unwrap_or(0);
                    k += 1;
                }
                arg.push(v as u8);
                j = k;
                continue;
            }
            other => arg.push(other),
        }
        j += 2;
    }
    end
}

/// psql's dequote_downcase_identifier without downcasing: removes double quotes, `""` inside quotes is one quote.
fn dequote_identifier(arg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(arg.len());
    let mut in_quotes = false;
    let mut k = 0;
    while k < arg.len() {
        if arg[k] == b'"' {
            if in_quotes && arg.get(k + 1) == Some(&b'"') {
                out.push(b'"');
                k += 2;
            } else {
                in_quotes = !in_quotes;
                k += 1;
            }
        } else {
            out.push(arg[k]);
            k += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::lexer::tests::{meta, split, sql};

    #[test]
    fn connect_plain_and_quoted() {
        assert_eq!(
            split("\\connect foo\n\\connect \"Quoted Name\"\n\\connect \"a\"\"b\"\n\\c postgres\n"),
            vec![
                meta("connect", &["foo"], 1),
                meta("connect", &["Quoted Name"], 2),
                meta("connect", &["a\"b"], 3),
                meta("c", &["postgres"], 4)
            ]
        );
    }

    #[test]
    fn connect_reuse_previous_as_pg_dump_writes_it() {
        // appendPsqlMetaConnect: "\connect -reuse-previous=on " + fmtId("dbname=" + appendConnStrVal(name)).
        // For the name it's "quoted": appendConnStrVal gives 'it\'s "quoted"', fmtId doubles the double quotes.
        let input = "\\encoding SQL_ASCII\n\\connect -reuse-previous=on \"dbname='it\\'s \"\"quoted\"\"'\"\n";
        assert_eq!(
            split(input),
            vec![
                meta("encoding", &["SQL_ASCII"], 1),
                meta("connect", &["-reuse-previous=on", "dbname='it\\'s \"quoted\"'"], 2)
            ]
        );
        assert_eq!(
            split("\\connect -reuse-previous=on \"dbname='my-db'\"\n"),
            vec![meta("connect", &["-reuse-previous=on", "dbname='my-db'"], 1)]
        );
    }

    #[test]
    fn restrict_unrestrict_encoding() {
        let input = "\\restrict aB3xYz09\nSET x = 1;\n\\unrestrict aB3xYz09\n\\encoding SQL_ASCII\n";
        assert_eq!(
            split(input),
            vec![
                meta("restrict", &["aB3xYz09"], 1),
                sql("SET x = 1;", 2),
                meta("unrestrict", &["aB3xYz09"], 3),
                meta("encoding", &["SQL_ASCII"], 4)
            ]
        );
    }

    #[test]
    fn meta_argument_quoting() {
        // Single quotes: escapes and doubling; trailing unquoted semicolons stripped; double quotes kept for
        // commands other than \connect (psql's OT_NORMAL).
        let input = "\\echo 'a b' 'it''s' 'x\\ty\\101\\x41\\q' \"k;\" foo;; ';'\n";
        assert_eq!(split(input), vec![meta("echo", &["a b", "it's", "x\ty\u{41}\u{41}q", "\"k;\"", "foo", ";"], 1)]);
        // Adjacent quoted parts form one argument.
        assert_eq!(split("\\connect \"My\"'Db'x\n"), vec![meta("connect", &["MyDbx"], 1)]);
        // CRLF line endings: the \r is whitespace.
        assert_eq!(split("\\connect foo\r\n"), vec![meta("connect", &["foo"], 1)]);
    }

    #[test]
    fn meta_separators() {
        // `\\` ends the command and the rest of the line is SQL; a single backslash starts the next command.
        assert_eq!(
            split("\\encoding UTF8 \\\\ SELECT 1;\n\\restrict K \\unrestrict K\n"),
            vec![
                meta("encoding", &["UTF8"], 1),
                sql("SELECT 1;", 1),
                meta("restrict", &["K"], 2),
                meta("unrestrict", &["K"], 2)
            ]
        );
        assert_eq!(split("\\\\ x\n"), vec![meta("\\", &["x"], 1)]);
        assert_eq!(split("\\\n"), vec![meta("", &[], 1)]);
    }

    #[test]
    fn backslash_dot_and_other_commands() {
        assert_eq!(split("\\.\n"), vec![meta(".", &[], 1)]);
        assert_eq!(split("\\! rm -rf /\n"), vec![meta("!", &["rm", "-rf", "/"], 1)]);
        assert_eq!(split("\\i `cat x`\n"), vec![meta("i", &["`cat x`"], 1)]);
    }
}
