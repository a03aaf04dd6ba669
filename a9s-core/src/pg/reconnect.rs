//! psql's `\connect`: which server, user and database a script's `\connect` line leads to, worked out as psql
//! 15's `do_connect` (src/bin/psql/command.c) does, so a restore follows a script exactly where psql would.

use std::collections::BTreeMap;

use super::conninfo::{is_conninfo, parse_dbname_arg};
use super::target::{env_params, Env, Target};
use crate::error::{Error, Result};

/// The arguments of one `\connect` (or `\c`) line: `[-reuse-previous=on|off] [DBNAME|CONNINFO [USER [HOST
/// [PORT]]]]`. A positional argument that is `-` or empty (unquoted) counts as not given, as in psql.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconnect {
    /// `-reuse-previous=…`; by default psql reuses the previous connection's parameters unless DBNAME is a
    /// connection string.
    pub reuse_previous: Option<bool>,
    pub dbname: Option<String>,
    pub user: Option<String>,
    pub host: Option<String>,
    pub port: Option<String>,
}

impl Reconnect {
    /// Reads a `\connect` line's arguments (as the lexer gives them). An invalid `-reuse-previous` value is
    /// psql's error "unrecognized value": the connection is kept.
    pub fn parse(args: &[String]) -> Result<Reconnect> {
        let mut it = args.iter().map(String::as_str).peekable();
        let mut r = Reconnect::default();
        if let Some(v) = it.peek().and_then(|a| a.strip_prefix("-reuse-previous=")) {
            r.reuse_previous = Some(parse_bool(v).ok_or_else(|| {
                Error::failure(format!(
                    "unrecognized value \"{v}\" for \"-reuse-previous\": Boolean expected (psql's error; the \
                     connection is kept)"
                ))
            })?);
            it.next();
        }
        let mut next = || it.next().filter(|a| !a.is_empty() && *a != "-").map(str::to_string);
        r.dbname = next();
        r.user = next();
        r.host = next();
        r.port = next();
        Ok(r)
    }
}

/// psql's `ParseVariableBool`: a case-insensitive prefix of true/false/yes/no, at least two letters of on/off,
/// 1 or 0.
pub fn parse_bool(value: &str) -> Option<bool> {
    let v = value.to_ascii_lowercase();
    let prefix_of = |word: &str| !v.is_empty() && word.starts_with(v.as_str());
    if prefix_of("true") || prefix_of("yes") || (v.len() >= 2 && prefix_of("on")) || v == "1" {
        Some(true)
    } else if prefix_of("false") || prefix_of("no") || (v.len() >= 2 && prefix_of("off")) || v == "0" {
        Some(false)
    } else {
        None
    }
}

impl Target {
    /// Where `\connect` with `r` leads from this target: psql's rules for reusing the previous connection's
    /// parameters, overriding them by the positional arguments or a connection string, dropping the old
    /// password when the user, host or port change (libpq then takes `PGPASSWORD` or the password file) and
    /// the old host address when the host changes. An error is one psql reports before connecting (it keeps
    /// the old connection then).
    pub fn reconnect(&self, r: &Reconnect, program: &str, env: &Env) -> Result<Target> {
        let connstring = r.dbname.as_deref().filter(|d| is_conninfo(d));
        if connstring.is_some() && (r.user.is_some() || r.host.is_some() || r.port.is_some()) {
            return Err(Error::failure(
                "Do not give user, host, or port separately when using a connection string (psql's error; the \
                 connection is kept)",
            ));
        }
        let reuse = r.reuse_previous.unwrap_or(connstring.is_none());
        let mut p: BTreeMap<String, String> = if reuse { self.params() } else { env_params(env) };
        let old = self.params();
        let changed = |p: &BTreeMap<String, String>, k: &str| p.get(k) != old.get(k);
        let mut keep_password = true;
        if let Some(cs) = connstring {
            let mut has_password = false;
            for (k, v) in parse_dbname_arg(cs)? {
                has_password |= k == "password";
                p.insert(k, v);
            }
            if ["user", "host", "hostaddr", "port"].iter().any(|k| changed(&p, k)) {
                keep_password = false;
            }
            keep_password |= has_password;
        } else {
            let host_changed = r.host.as_ref().is_some_and(|h| old.get("host") != Some(h));
            for (k, v) in [("dbname", &r.dbname), ("user", &r.user), ("host", &r.host), ("port", &r.port)] {
                if let Some(v) = v {
                    if k != "dbname" && old.get(k) != Some(v) {
                        keep_password = false;
                    }
                    p.insert(k.to_string(), v.clone());
                }
            }
            if host_changed {
                p.remove("hostaddr");
            }
        }
        if reuse && !keep_password {
            p.remove("password");
            if let Some(pw) = (env.var)("PGPASSWORD").filter(|v| !v.is_empty()) {
                p.insert("password".to_string(), pw);
            }
        }
        Target::from_params(p, program, env)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::ConnArgs;

    fn env() -> Env<'static> {
        fn var(k: &str) -> Option<String> {
            match k {
                "PGHOST" => Some("/envsock".into()),
                "PGPASSWORD" => Some("envpw".into()),
                _ => None,
            }
        }
        Env { var: &var, os_user: "os".into(), home: None }
    }

    fn base() -> Target {
        let args = ConnArgs {
            dbname: Some("host=db1 port=5433 user=alice dbname=first password=pw".into()),
            ..Default::default()
        };
        Target::resolve_with(&args, "t", &env()).unwrap()
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn positional_forms_reuse_the_previous_connection() {
        let b = base();
        let t = b.reconnect(&Reconnect::parse(&args(&["second"])).unwrap(), "t", &env()).unwrap();
        assert_eq!(
            (t.hosts[0].as_str(), t.ports[0], t.user.as_str(), t.dbname.as_str()),
            ("db1", 5433, "alice", "second")
        );
        assert!(t.has_password());
        let t = b.reconnect(&Reconnect::parse(&args(&["-", "bob"])).unwrap(), "t", &env()).unwrap();
        assert_eq!((t.user.as_str(), t.dbname.as_str()), ("bob", "first"));
        let t = b.reconnect(&Reconnect::parse(&args(&["x", "-", "db2", "5999"])).unwrap(), "t", &env()).unwrap();
        assert_eq!((t.hosts[0].as_str(), t.ports[0], t.user.as_str()), ("db2", 5999, "alice"));
        let t = b.reconnect(&Reconnect::parse(&args(&[])).unwrap(), "t", &env()).unwrap();
        assert_eq!(t, b);
    }

    #[test]
    fn connection_strings_start_afresh_unless_told_to_reuse() {
        let b = base();
        let t = b.reconnect(&Reconnect::parse(&args(&["dbname=other"])).unwrap(), "t", &env()).unwrap();
        // Not reused: libpq's defaults, from the environment.
        assert_eq!(
            (t.hosts[0].as_str(), t.ports[0], t.user.as_str(), t.dbname.as_str()),
            ("/envsock", 5432, "os", "other")
        );
        let r = Reconnect::parse(&args(&["-reuse-previous=on", "dbname='it''s'"])).unwrap();
        assert_eq!(r.reuse_previous, Some(true));
        let t =
            b.reconnect(&Reconnect::parse(&args(&["-reuse-previous=on", "dbname=x"])).unwrap(), "t", &env()).unwrap();
        assert_eq!((t.hosts[0].as_str(), t.user.as_str(), t.dbname.as_str()), ("db1", "alice", "x"));
        let e = b.reconnect(&Reconnect::parse(&args(&["dbname=x", "bob"])).unwrap(), "t", &env()).unwrap_err();
        assert!(e.message.contains("Do not give user"), "{e}");
        let t =
            b.reconnect(&Reconnect::parse(&args(&["-reuse-previous=off", "second"])).unwrap(), "t", &env()).unwrap();
        assert_eq!((t.hosts[0].as_str(), t.user.as_str()), ("/envsock", "os"));
        assert!(Reconnect::parse(&args(&["-reuse-previous=maybe", "x"])).is_err());
    }

    #[test]
    fn a_new_user_or_host_does_not_inherit_the_password() {
        let b = base();
        let t = b.reconnect(&Reconnect::parse(&args(&["-", "bob"])).unwrap(), "t", &env()).unwrap();
        assert_eq!(t.params().get("password").map(String::as_str), Some("envpw"));
        let t = b.reconnect(&Reconnect::parse(&args(&["other"])).unwrap(), "t", &env()).unwrap();
        assert_eq!(t.params().get("password").map(String::as_str), Some("pw"));
    }

    #[test]
    fn booleans_as_psql_reads_them() {
        for (v, want) in [("on", Some(true)), ("OFF", Some(false)), ("o", None), ("t", Some(true)), ("ye", Some(true))]
        {
            assert_eq!(parse_bool(v), want, "{v}");
        }
        for (v, want) in [("1", Some(true)), ("0", Some(false)), ("", None), ("2", None), ("nope", None)] {
            assert_eq!(parse_bool(v), want, "{v}");
        }
    }
}
