//! Connecting to PostgreSQL the way libpq and psql do, so operators' habits carry over: `-d` takes a database
//! name, a conninfo string (`host=… dbname=…`) or a `postgresql://` URI; `-h/-p/-U`; the `PG*` environment;
//! `~/.pgpass`; and, with no host, the Unix socket in `/var/run/postgresql` (Debian's libpq default — how the
//! runbook's `chpst -u postgres:vcap psql` connects).
//!
//! tokio-postgres reads none of this (rust-postgres #654, #729), so it is resolved here into a
//! [`Target`], which connects and describes itself without the password.
//!
//! Precedence, highest first: the explicit options `-h/-p/-U`, then the conninfo or URI given to `-d`, then the
//! environment, then the defaults (user = the OS user, database = the user, port 5432).
//!
//! - [`args`]: the command-line options; [`conninfo`]: conninfo strings and URIs; [`pgpass`]: the password file;
//! - [`target`]: resolving all of that into a [`Target`]; [`session`]: a connected session;
//! - [`error`]: the one rule for "the session is lost", the one way to word a server error, the exit status;
//! - [`admin`]: what the programs that change the cluster share (quoting, the standby check, the role).

pub mod admin;
pub mod args;
pub mod conninfo;
pub mod error;
pub mod pgpass;
pub mod reconnect;
pub mod session;
pub mod target;

pub use args::{help_flag, ConnArgs};
pub use conninfo::{is_conninfo, parse_conninfo, parse_dbname_arg, parse_uri, quote_conninfo_value};
pub use error::{describe, error_chain, is_session_lost, EXIT_BADCONN};
pub use pgpass::{pgpass_host, pgpass_lookup, pgpass_match, PgpassLookup};
pub use reconnect::Reconnect;
pub use session::Session;
pub use target::{Env, SslMode, Target};
/// What [`Session::cancel_token`] gives and [`Target::cancel`] takes.
pub use tokio_postgres::CancelToken;

/// Debian's libpq `DEFAULT_PGSOCKET_DIR`.
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";
pub const DEFAULT_PORT: u16 = 5432;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Result;
    use std::path::PathBuf;
    use std::time::Duration;

    fn env_from(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    fn resolve(args: ConnArgs, vars: &'static [(&'static str, &'static str)]) -> Result<Target> {
        let f = env_from(vars);
        let env = Env { var: &f, os_user: "osuser".into(), home: Some("/nonexistent-home".into()) };
        Target::resolve_with(&args, "a9s-test", &env)
    }

    fn kv(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn conninfo_quoting() {
        assert_eq!(
            parse_conninfo(r"host=db1 dbname='it\'s a db'  user = bob password=p\ w").unwrap(),
            kv(&[("host", "db1"), ("dbname", "it's a db"), ("user", "bob"), ("password", "p w")])
        );
        assert_eq!(parse_conninfo("dbname=''").unwrap(), kv(&[("dbname", "")]));
        assert_eq!(parse_conninfo(r"dbname='a\\b'").unwrap(), kv(&[("dbname", r"a\b")]));
        assert_eq!(parse_conninfo("dbname='Weird DB''s'").unwrap_err().code, 2);
        assert!(parse_conninfo("dbname='x").unwrap_err().message.contains("unterminated"));
        assert!(parse_conninfo("dbname").unwrap_err().message.contains("missing \"=\""));
        assert!(parse_conninfo("bogus=1").unwrap_err().message.contains("invalid connection option \"bogus\""));
    }

    #[test]
    fn uri_forms() {
        assert_eq!(
            parse_uri("postgresql://us%40er:p%3Aw@db.example:6432/my%20db?sslmode=require&application_name=x").unwrap(),
            kv(&[
                ("user", "us@er"),
                ("password", "p:w"),
                ("host", "db.example"),
                ("port", "6432"),
                ("dbname", "my db"),
                ("sslmode", "require"),
                ("application_name", "x"),
            ])
        );
        assert_eq!(
            parse_uri("postgres:///postgres?host=/var/run/postgresql&port=5433").unwrap(),
            kv(&[("dbname", "postgres"), ("host", "/var/run/postgresql"), ("port", "5433")])
        );
        assert_eq!(parse_uri("postgresql://%2Ftmp%2Fsock/db").unwrap(), kv(&[("host", "/tmp/sock"), ("dbname", "db")]));
        assert_eq!(
            parse_uri("postgresql://[::1]:5433/db").unwrap(),
            kv(&[("host", "::1"), ("port", "5433"), ("dbname", "db")])
        );
        assert_eq!(parse_uri("postgresql://").unwrap(), kv(&[]));
        assert_eq!(parse_uri("postgresql://h?ssl=true").unwrap(), kv(&[("host", "h"), ("sslmode", "require")]));
        assert!(parse_uri("postgresql://h/%zz").is_err());
        assert!(parse_uri("postgresql://h/?nope=1").is_err());
        let e = parse_uri("postgresql://u:secret@[::1/db").unwrap_err();
        assert!(!e.message.contains("secret"), "{}", e.message);
    }

    #[test]
    fn dbname_arg_kinds() {
        assert!(is_conninfo("dbname=x"));
        assert!(is_conninfo("postgres://h"));
        assert!(!is_conninfo("Weird DB's name"));
        assert_eq!(parse_dbname_arg("plain").unwrap(), kv(&[("dbname", "plain")]));
    }

    #[test]
    fn defaults() {
        let t = resolve(ConnArgs::default(), &[]).unwrap();
        assert_eq!(t.hosts, vec![DEFAULT_SOCKET_DIR]);
        assert_eq!(t.ports, vec![5432]);
        assert_eq!(t.user, "osuser");
        assert_eq!(t.dbname, "osuser");
        assert_eq!(t.sslmode, SslMode::Prefer);
        assert_eq!(t.application_name, "a9s-test");
        assert_eq!(t.passfile, Some(PathBuf::from("/nonexistent-home/.pgpass")));
        assert_eq!(t.describe(), "host=/var/run/postgresql port=5432 user=osuser dbname=osuser");
    }

    #[test]
    fn precedence() {
        const ENV: &[(&str, &str)] = &[
            ("PGHOST", "envhost"),
            ("PGPORT", "1111"),
            ("PGUSER", "envuser"),
            ("PGDATABASE", "envdb"),
            ("PGPASSWORD", "envpw"),
            ("PGSSLMODE", "disable"),
            ("PGAPPNAME", "envapp"),
            ("PGCONNECT_TIMEOUT", "1"),
            ("PGOPTIONS", "-c work_mem=64MB"),
        ];
        let t = resolve(ConnArgs::default(), ENV).unwrap();
        assert_eq!(
            (t.hosts[0].as_str(), t.ports[0], t.user.as_str(), t.dbname.as_str()),
            ("envhost", 1111, "envuser", "envdb")
        );
        assert_eq!(t.sslmode, SslMode::Disable);
        assert_eq!(t.application_name, "envapp");
        assert_eq!(t.connect_timeout, Some(Duration::from_secs(2)));
        assert_eq!(t.options.as_deref(), Some("-c work_mem=64MB"));
        assert!(t.has_password());
        // -d conninfo beats the environment.
        let args = ConnArgs { dbname: Some("host=cihost dbname=cidb user=ciuser".into()), ..Default::default() };
        let t = resolve(args.clone(), ENV).unwrap();
        assert_eq!(
            (t.hosts[0].as_str(), t.ports[0], t.user.as_str(), t.dbname.as_str()),
            ("cihost", 1111, "ciuser", "cidb")
        );
        // Explicit options beat both.
        let args =
            ConnArgs { host: Some("/sock".into()), port: Some("2222".into()), username: Some("u".into()), ..args };
        let t = resolve(args, ENV).unwrap();
        assert_eq!((t.hosts[0].as_str(), t.ports[0], t.user.as_str(), t.dbname.as_str()), ("/sock", 2222, "u", "cidb"));
        // dbname defaults to the user.
        let t = resolve(ConnArgs { username: Some("alice".into()), ..Default::default() }, &[]).unwrap();
        assert_eq!(t.dbname, "alice");
        // A plain -d is a name even with odd characters.
        let t = resolve(ConnArgs { dbname: Some("Weird DB's name".into()), ..Default::default() }, &[]).unwrap();
        assert_eq!(t.dbname, "Weird DB's name");
        assert_eq!(t.describe(), r"host=/var/run/postgresql port=5432 user=osuser dbname='Weird DB\'s name'");
        assert_eq!(t.with_dbname("other").dbname, "other");
    }

    #[test]
    fn bad_values() {
        assert!(resolve(ConnArgs { port: Some("x".into()), ..Default::default() }, &[]).is_err());
        assert!(resolve(ConnArgs { port: Some("70000".into()), ..Default::default() }, &[]).is_err());
        const E: &[(&str, &str)] = &[("PGSSLMODE", "sometimes")];
        assert!(resolve(ConnArgs::default(), E).unwrap_err().message.contains("sslmode"));
    }

    #[test]
    fn describe_hides_password() {
        let args = ConnArgs { dbname: Some("postgresql://u:hunter2@h/db".into()), ..Default::default() };
        let t = resolve(args, &[]).unwrap();
        assert!(t.has_password());
        assert!(!t.describe().contains("hunter2"));
        assert!(!format!("{t:?}").contains("hunter2"));
    }

    #[test]
    fn pgpass_matching() {
        let f = "# comment\n\
                 db1:5432:app:bob:pw1\n\
                 *:5432:*:bob:pw2\n\
                 localhost:*:*:*:any\\:colon\\\\x\n\
                 /tmp/s\\:ock:5433:*:carol:sockpw\n";
        assert_eq!(pgpass_match(f, "db1", "5432", "app", "bob").as_deref(), Some("pw1"));
        assert_eq!(pgpass_match(f, "db1", "5432", "other", "bob").as_deref(), Some("pw2"));
        assert_eq!(pgpass_match(f, "db2", "5432", "x", "bob").as_deref(), Some("pw2"));
        assert_eq!(pgpass_match(f, "localhost", "1", "x", "y").as_deref(), Some(r"any:colon\x"));
        assert_eq!(pgpass_match(f, "/tmp/s:ock", "5433", "d", "carol").as_deref(), Some("sockpw"));
        assert_eq!(pgpass_match(f, "db2", "5433", "x", "bob"), None);
        // A prefix is not a match.
        assert_eq!(pgpass_match("db:5432:app:bob:pw\n", "db1", "5432", "app", "bob"), None);
        assert_eq!(pgpass_match("db1:5432:app:bob:pw\n", "db", "5432", "app", "bob"), None);
        assert_eq!(pgpass_host(DEFAULT_SOCKET_DIR), "localhost");
        assert_eq!(pgpass_host("/tmp/x"), "/tmp/x");
    }

    #[test]
    fn pgpass_file_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("a9s-pgpass-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("pgpass");
        std::fs::write(&f, "*:*:*:*:secret\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(pgpass_lookup(&f, "h", "1", "d", "u"), PgpassLookup::Ignored(w) if w.contains("0600")));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(pgpass_lookup(&f, "h", "1", "d", "u"), PgpassLookup::Found("secret".into()));
        assert_eq!(pgpass_lookup(&dir.join("missing"), "h", "1", "d", "u"), PgpassLookup::NotFound);
        assert!(matches!(pgpass_lookup(&dir, "h", "1", "d", "u"), PgpassLookup::Ignored(_)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn clap_args() {
        use clap::{CommandFactory, FromArgMatches, Parser};
        #[derive(Parser, Debug)]
        #[command(disable_help_flag = true)]
        struct Cli {
            #[command(flatten)]
            conn: ConnArgs,
        }
        let cmd = Cli::command().arg(help_flag());
        let m = cmd.clone().try_get_matches_from(["x", "-h", "/sock", "-p", "5433", "-U", "pg", "-d", "db"]).unwrap();
        let c = Cli::from_arg_matches(&m).unwrap();
        assert_eq!(c.conn.host.as_deref(), Some("/sock"));
        assert_eq!(c.conn.port.as_deref(), Some("5433"));
        let e = cmd.try_get_matches_from(["x", "--help"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp);
    }
}
