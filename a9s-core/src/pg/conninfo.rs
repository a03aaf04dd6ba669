//! libpq's connection strings: `key=value` conninfo, `postgresql://` URIs, and which one `-d` holds.

use crate::error::{Error, Result};

/// Connection keywords this module understands (libpq's names).
const KEYWORDS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "connect_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "options",
    "application_name",
    "fallback_application_name",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "client_encoding",
];

/// Parses a libpq conninfo string: `key=value` pairs separated by whitespace; a value is either single-quoted
/// (with `\'` and `\\`) or runs to the next whitespace (a backslash escapes the next character).
pub fn parse_conninfo(s: &str) -> Result<Vec<(String, String)>> {
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    loop {
        while i < b.len() && b[i].is_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let start = i;
        while i < b.len() && b[i] != '=' && !b[i].is_whitespace() {
            i += 1;
        }
        let key: String = b[start..i].iter().collect();
        while i < b.len() && b[i].is_whitespace() {
            i += 1;
        }
        if i >= b.len() || b[i] != '=' {
            return Err(Error::usage(format!("missing \"=\" after \"{key}\" in connection info string")));
        }
        i += 1;
        while i < b.len() && b[i].is_whitespace() {
            i += 1;
        }
        let mut val = String::new();
        if i < b.len() && b[i] == '\'' {
            i += 1;
            loop {
                if i >= b.len() {
                    return Err(Error::usage("unterminated quoted string in connection info string"));
                }
                match b[i] {
                    '\\' if i + 1 < b.len() => {
                        val.push(b[i + 1]);
                        i += 2;
                    }
                    '\'' => {
                        i += 1;
                        break;
                    }
                    c => {
                        val.push(c);
                        i += 1;
                    }
                }
            }
        } else {
            while i < b.len() && !b[i].is_whitespace() {
                if b[i] == '\\' && i + 1 < b.len() {
                    i += 1;
                }
                val.push(b[i]);
                i += 1;
            }
        }
        check_keyword(&key)?;
        out.push((key, val));
    }
    Ok(out)
}

fn check_keyword(key: &str) -> Result<()> {
    if KEYWORDS.contains(&key) {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "invalid connection option \"{key}\" (supported: {})",
            KEYWORDS.iter().filter(|k| **k != "client_encoding").copied().collect::<Vec<_>>().join(", ")
        )))
    }
}

fn percent_decode(s: &str) -> Result<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let v = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
            match v {
                Some(0) => return Err(Error::usage(format!("forbidden value %00 in percent-encoded value \"{s}\""))),
                Some(v) => {
                    out.push(v);
                    i += 3;
                }
                None => return Err(Error::usage(format!("invalid percent-encoded token in URI: \"{s}\""))),
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| Error::usage(format!("percent-encoded value is not UTF-8 in URI: \"{s}\"")))
}

/// Parses a `postgresql://` or `postgres://` URI into conninfo pairs:
/// `postgresql://[user[:password]@][host][:port][,host[:port]…][/dbname][?key=value&…]`, percent-decoded.
pub fn parse_uri(uri: &str) -> Result<Vec<(String, String)>> {
    let rest = uri
        .strip_prefix("postgresql://")
        .or_else(|| uri.strip_prefix("postgres://"))
        .ok_or_else(|| Error::usage(format!("invalid URI \"{}\": must start with postgresql://", redact_uri(uri))))?;
    let mut out = Vec::new();
    let (main, query) = match rest.find('?') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let (authority, path) = match main.find('/') {
        Some(i) => (&main[..i], Some(&main[i + 1..])),
        None => (main, None),
    };
    let hostport = match authority.rfind('@') {
        Some(i) => {
            let userinfo = &authority[..i];
            let (user, pw) = match userinfo.find(':') {
                Some(j) => (&userinfo[..j], Some(&userinfo[j + 1..])),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                out.push(("user".to_string(), percent_decode(user)?));
            }
            if let Some(pw) = pw {
                out.push(("password".to_string(), percent_decode(pw)?));
            }
            &authority[i + 1..]
        }
        None => authority,
    };
    if !hostport.is_empty() {
        let mut hosts = Vec::new();
        let mut ports = Vec::new();
        for hp in hostport.split(',') {
            let (h, p) = if let Some(r) = hp.strip_prefix('[') {
                let end = r.find(']').ok_or_else(|| {
                    Error::usage(format!("missing \"]\" in IPv6 host address in URI \"{}\"", redact_uri(uri)))
                })?;
                let after = &r[end + 1..];
                let port = match after.strip_prefix(':') {
                    Some(p) => p,
                    None if after.is_empty() => "",
                    None => {
                        return Err(Error::usage(format!(
                            "unexpected \"{after}\" after IPv6 host address in URI \"{}\"",
                            redact_uri(uri)
                        )))
                    }
                };
                (r[..end].to_string(), port)
            } else {
                match hp.rfind(':') {
                    Some(j) => (percent_decode(&hp[..j])?, &hp[j + 1..]),
                    None => (percent_decode(hp)?, ""),
                }
            };
            hosts.push(h);
            ports.push(percent_decode(p)?);
        }
        if hosts.iter().any(|h| !h.is_empty()) {
            out.push(("host".to_string(), hosts.join(",")));
        }
        if ports.iter().any(|p| !p.is_empty()) {
            out.push(("port".to_string(), ports.join(",")));
        }
    }
    if let Some(db) = path {
        if !db.is_empty() {
            out.push(("dbname".to_string(), percent_decode(db)?));
        }
    }
    if let Some(q) = query {
        for kv in q.split('&').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv.split_once('=').ok_or_else(|| {
                Error::usage(format!("missing key/value separator \"=\" in URI query parameter \"{kv}\""))
            })?;
            let (k, v) = (percent_decode(k)?, percent_decode(v)?);
            // libpq's JDBC-style alias.
            if k == "ssl" && v == "true" {
                out.push(("sslmode".to_string(), "require".to_string()));
                continue;
            }
            check_keyword(&k)?;
            out.push((k, v));
        }
    }
    Ok(out)
}

/// A URI with its password replaced, for error messages.
fn redact_uri(uri: &str) -> String {
    if let Some(scheme_end) = uri.find("://") {
        let rest = &uri[scheme_end + 3..];
        let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
        if let Some(at) = rest[..auth_end].rfind('@') {
            if let Some(colon) = rest[..at].find(':') {
                return format!("{}{}:***{}", &uri[..scheme_end + 3], &rest[..colon], &rest[at..]);
            }
        }
    }
    uri.to_string()
}

/// Whether `-d`'s value is a conninfo string or URI rather than a plain name (libpq's rule).
pub fn is_conninfo(s: &str) -> bool {
    s.starts_with("postgresql://") || s.starts_with("postgres://") || s.contains('=')
}

/// Parses `-d`'s value as libpq does: URI, conninfo, or a plain database name.
pub fn parse_dbname_arg(s: &str) -> Result<Vec<(String, String)>> {
    if s.starts_with("postgresql://") || s.starts_with("postgres://") {
        parse_uri(s)
    } else if s.contains('=') {
        parse_conninfo(s)
    } else {
        Ok(vec![("dbname".to_string(), s.to_string())])
    }
}

/// A conninfo value quoted if it needs to be (for descriptions).
pub fn quote_conninfo_value(v: &str) -> String {
    if !v.is_empty() && !v.chars().any(|c| c.is_whitespace() || c == '\'' || c == '\\') {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}
