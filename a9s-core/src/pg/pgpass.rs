//! libpq's password file (`~/.pgpass`, `PGPASSFILE`): lookup with libpq's permission checks.

use std::path::Path;

use super::DEFAULT_SOCKET_DIR;

/// The host name a password file line is matched against: `localhost` for the default socket directory
/// (libpq's rule), else the host or socket path as given.
pub fn pgpass_host(host: &str) -> String {
    if host.is_empty() || host == DEFAULT_SOCKET_DIR {
        "localhost".to_string()
    } else {
        host.to_string()
    }
}

/// The result of looking a password up in a password file.
#[derive(Debug, PartialEq, Eq)]
pub enum PgpassLookup {
    Found(String),
    NotFound,
    /// The file exists but was not used (libpq's reasons: not a plain file, group/world access).
    Ignored(String),
}

/// Looks up `host:port:db:user` in a password file, with libpq's checks: a missing file is no error; a file
/// that is not a plain file, or that the group or others may access, is ignored with a warning.
pub fn pgpass_lookup(file: &Path, host: &str, port: &str, db: &str, user: &str) -> PgpassLookup {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(file) else { return PgpassLookup::NotFound };
    if !meta.is_file() {
        return PgpassLookup::Ignored(format!("password file \"{}\" is not a plain file", file.display()));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return PgpassLookup::Ignored(format!(
            "password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
            file.display()
        ));
    }
    match std::fs::read(file) {
        Ok(content) => match pgpass_match(&String::from_utf8_lossy(&content), host, port, db, user) {
            Some(pw) => PgpassLookup::Found(pw),
            None => PgpassLookup::NotFound,
        },
        Err(_) => PgpassLookup::NotFound,
    }
}

/// The password of the first line of a password file that matches: `hostname:port:database:username:password`,
/// `*` matching anything in the first four fields, `\:` and `\\` escaping; `#` lines are comments.
pub fn pgpass_match(content: &str, host: &str, port: &str, db: &str, user: &str) -> Option<String> {
    for line in content.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut rest = line;
        let mut ok = true;
        for want in [host, port, db, user] {
            match match_field(rest, want) {
                Some(r) => rest = r,
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            let mut pw = String::new();
            let mut chars = rest.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            pw.push(n);
                        }
                    }
                    // libpq stops at an unescaped ':' (extra fields are ignored).
                    ':' => break,
                    c => pw.push(c),
                }
            }
            return Some(pw);
        }
    }
    None
}

/// Matches one `:`-terminated field against `want`; returns the rest after the `:`.
fn match_field<'a>(field: &'a str, want: &str) -> Option<&'a str> {
    if let Some(r) = field.strip_prefix("*:") {
        return Some(r);
    }
    let mut w = want.chars();
    let mut it = field.char_indices();
    while let Some((i, c)) = it.next() {
        let c = match c {
            ':' => {
                return if w.next().is_none() { Some(&field[i + 1..]) } else { None };
            }
            '\\' => match it.next() {
                Some((_, n)) => n,
                None => return None,
            },
            c => c,
        };
        if w.next() != Some(c) {
            return None;
        }
    }
    None
}
