//! Connecting to PostgreSQL the way libpq and psql do, so operators' habits carry over: `-d` takes a database
//! name, a conninfo string (`host=… dbname=…`) or a `postgresql://` URI; `-h/-p/-U`; the `PG*` environment;
//! `~/.pgpass`; and, with no host, the Unix socket in `/var/run/postgresql` (Debian's libpq default — how the
//! runbook's `chpst -u postgres:vcap psql` connects).
//!
//! The `postgres` crate reads none of this (rust-postgres #654, #729), so it is resolved here into a
//! [`Target`], which connects and describes itself without the password.
//!
//! Precedence, highest first: the explicit options `-h/-p/-U`, then the conninfo or URI given to `-d`, then the
//! environment, then the defaults (user = the OS user, database = the user, port 5432).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};

/// Debian's libpq `DEFAULT_PGSOCKET_DIR`.
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";
pub const DEFAULT_PORT: u16 = 5432;

/// Exit status for "cannot connect" / "connection lost", as psql (`EXIT_BADCONN`).
pub const EXIT_BADCONN: i32 = 2;

/// The connection options, as psql spells them. Flatten into a program's arguments with
/// `#[command(flatten)] conn: ConnArgs`, and give that command `#[command(disable_help_flag = true)]` plus a
/// long-only help flag (see [`help_flag`]) so that `-h` is the host, as in psql.
#[derive(clap::Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnArgs {
    /// Database name, conninfo string or postgresql:// URI [env: PGDATABASE]
    #[arg(
        short = 'd',
        long = "dbname",
        value_name = "DBNAME",
        long_help = "Database to connect to first: a name (`postgres`), a libpq conninfo string \
                     (`host=10.0.0.5 port=5432 user=postgres dbname=postgres sslmode=require`) or a URI \
                     (`postgresql://postgres@10.0.0.5:5432/postgres?sslmode=require`). Values in a conninfo or \
                     URI yield to -h, -p and -U when both are given, and take precedence over the PG* \
                     environment. Default: $PGDATABASE, else the user name."
    )]
    pub dbname: Option<String>,

    /// Server host name, or a Unix-socket directory if it starts with / [env: PGHOST]
    #[arg(
        short = 'h',
        long = "host",
        value_name = "HOST",
        long_help = "Server host name or IP address; a value starting with / is the directory of the server's \
                     Unix socket. Default: $PGHOST, else the Unix socket in /var/run/postgresql (Debian's libpq \
                     default)."
    )]
    pub host: Option<String>,

    /// Server port [env: PGPORT] [default: 5432]
    #[arg(
        short = 'p',
        long = "port",
        value_name = "PORT",
        long_help = "Server port, also the number in the Unix socket's name (.s.PGSQL.PORT). \
                     Default: $PGPORT, else 5432."
    )]
    pub port: Option<String>,

    /// User name to connect as [env: PGUSER]
    #[arg(
        short = 'U',
        long = "username",
        value_name = "USER",
        long_help = "PostgreSQL user to connect as. Default: $PGUSER, else the operating-system user name. \
                     The password comes from $PGPASSWORD or the password file ($PGPASSFILE, else ~/.pgpass); \
                     there is no password option (one in a -d conninfo or URI works, but shows in the process \
                     list)."
    )]
    pub username: Option<String>,
}

/// A `--help` flag without a short form, for commands that give `-h` to the host (as psql does).
pub fn help_flag() -> clap::Arg {
    clap::Arg::new("help").long("help").help("Print help").action(clap::ArgAction::Help)
}

/// Where the environment comes from; tests pass their own.
pub struct Env<'a> {
    pub var: &'a dyn Fn(&str) -> Option<String>,
    /// The operating-system user name (libpq's default user).
    pub os_user: String,
    /// Home directory, for `~/.pgpass` and `~/.postgresql/root.crt`.
    pub home: Option<PathBuf>,
}

impl Env<'static> {
    /// The real process environment.
    pub fn process() -> Env<'static> {
        fn var(k: &str) -> Option<String> {
            std::env::var(k).ok()
        }
        let (name, pw_home) = os_user();
        let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from).or(pw_home);
        Env { var: &var, os_user: name.unwrap_or_default(), home }
    }
}

/// The effective user's name and home directory from the password database.
fn os_user() -> (Option<String>, Option<PathBuf>) {
    use std::ffi::CStr;
    use std::os::unix::ffi::OsStrExt;
    let mut buf = vec![0u8; 16384];
    // SAFETY: getpwuid_r writes into pwd and buf (of the length given); result points to pwd or is null.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(libc::geteuid(), &mut pwd, buf.as_mut_ptr().cast(), buf.len(), &mut result);
        if rc != 0 || result.is_null() {
            return (None, None);
        }
        let name = CStr::from_ptr(pwd.pw_name).to_string_lossy().into_owned();
        let dir = PathBuf::from(std::ffi::OsStr::from_bytes(CStr::from_ptr(pwd.pw_dir).to_bytes()));
        (Some(name), Some(dir))
    }
}

/// libpq's sslmode. `allow` is taken as `disable` (plain first, which is what `allow` tries first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Result<SslMode> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => {
                return Err(Error::usage(format!(
                    "invalid sslmode \"{s}\": use disable, allow, prefer, require, verify-ca or verify-full"
                )))
            }
        })
    }
}

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

/// A resolved connection target. Cloning is cheap; `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    /// Host names or socket directories (one, or a comma list tried in turn). Never empty.
    pub hosts: Vec<String>,
    pub hostaddr: Option<String>,
    /// One port, or one per host.
    pub ports: Vec<u16>,
    pub user: String,
    pub dbname: String,
    /// From the conninfo, URI or PGPASSWORD; else looked up in `passfile` at connect time.
    password: Option<String>,
    pub passfile: Option<PathBuf>,
    pub sslmode: SslMode,
    pub sslrootcert: Option<PathBuf>,
    pub sslcert: Option<PathBuf>,
    pub sslkey: Option<PathBuf>,
    pub application_name: String,
    pub options: Option<String>,
    pub connect_timeout: Option<Duration>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({})", self.describe())
    }
}

impl Target {
    /// Resolves the target from the options and the process environment. `program` becomes the
    /// `application_name` unless `PGAPPNAME` or the conninfo sets one.
    pub fn resolve(args: &ConnArgs, program: &str) -> Result<Target> {
        Self::resolve_with(args, program, &Env::process())
    }

    /// As [`Target::resolve`], with an explicit environment (for tests).
    pub fn resolve_with(args: &ConnArgs, program: &str, env: &Env) -> Result<Target> {
        let mut p: BTreeMap<String, String> = BTreeMap::new();
        // Lowest first: environment, then -d's conninfo, then explicit options.
        for (var, key) in [
            ("PGHOST", "host"),
            ("PGHOSTADDR", "hostaddr"),
            ("PGPORT", "port"),
            ("PGUSER", "user"),
            ("PGPASSWORD", "password"),
            ("PGPASSFILE", "passfile"),
            ("PGDATABASE", "dbname"),
            ("PGSSLMODE", "sslmode"),
            ("PGSSLROOTCERT", "sslrootcert"),
            ("PGSSLCERT", "sslcert"),
            ("PGSSLKEY", "sslkey"),
            ("PGAPPNAME", "application_name"),
            ("PGOPTIONS", "options"),
            ("PGCONNECT_TIMEOUT", "connect_timeout"),
        ] {
            if let Some(v) = (env.var)(var) {
                if !v.is_empty() {
                    p.insert(key.to_string(), v);
                }
            }
        }
        if let Some(d) = &args.dbname {
            for (k, v) in parse_dbname_arg(d)? {
                p.insert(k, v);
            }
        }
        for (key, v) in [("host", &args.host), ("port", &args.port), ("user", &args.username)] {
            if let Some(v) = v {
                p.insert(key.to_string(), v.clone());
            }
        }
        Self::from_params(p, program, env)
    }

    fn from_params(mut p: BTreeMap<String, String>, program: &str, env: &Env) -> Result<Target> {
        let get = |p: &BTreeMap<String, String>, k: &str| p.get(k).filter(|v| !v.is_empty()).cloned();
        let hosts: Vec<String> = match get(&p, "host") {
            Some(h) => h
                .split(',')
                .map(|h| if h.is_empty() { DEFAULT_SOCKET_DIR.to_string() } else { h.to_string() })
                .collect(),
            None => vec![DEFAULT_SOCKET_DIR.to_string()],
        };
        let ports = match get(&p, "port") {
            Some(s) => s
                .split(',')
                .map(|x| {
                    if x.is_empty() {
                        return Ok(DEFAULT_PORT);
                    }
                    x.trim().parse::<u16>().ok().filter(|n| *n > 0).ok_or_else(|| {
                        Error::usage(format!("invalid port \"{x}\": give a number from 1 to 65535 (-p, PGPORT)"))
                    })
                })
                .collect::<Result<Vec<u16>>>()?,
            None => vec![DEFAULT_PORT],
        };
        if ports.len() != 1 && ports.len() != hosts.len() {
            return Err(Error::usage(format!(
                "could not match {} port numbers to {} hosts: give one port, or one per host",
                ports.len(),
                hosts.len()
            )));
        }
        let user = match get(&p, "user") {
            Some(u) => u,
            None if !env.os_user.is_empty() => env.os_user.clone(),
            None => {
                return Err(Error::usage("cannot determine the user name: give -U or set PGUSER"));
            }
        };
        let dbname = get(&p, "dbname").unwrap_or_else(|| user.clone());
        let sslmode = match get(&p, "sslmode") {
            Some(s) => SslMode::parse(&s)?,
            None => SslMode::Prefer,
        };
        let connect_timeout = match get(&p, "connect_timeout") {
            Some(s) => {
                let n: i64 = s.trim().parse().map_err(|_| {
                    Error::usage(format!("invalid connect_timeout \"{s}\": give whole seconds (PGCONNECT_TIMEOUT)"))
                })?;
                // libpq: zero or less waits forever; 1 is taken as 2.
                if n <= 0 {
                    None
                } else {
                    Some(Duration::from_secs(n.max(2) as u64))
                }
            }
            None => None,
        };
        let home_file = |rel: &str| env.home.as_ref().map(|h| h.join(rel));
        let passfile = get(&p, "passfile").map(PathBuf::from).or_else(|| home_file(".pgpass"));
        let sslrootcert = get(&p, "sslrootcert").map(PathBuf::from);
        let application_name = get(&p, "application_name")
            .or_else(|| get(&p, "fallback_application_name"))
            .unwrap_or_else(|| program.to_string());
        if let Some(a) = get(&p, "hostaddr") {
            a.parse::<std::net::IpAddr>().map_err(|_| Error::usage(format!("invalid hostaddr \"{a}\"")))?;
        }
        Ok(Target {
            hosts,
            hostaddr: get(&p, "hostaddr"),
            ports,
            user,
            dbname,
            password: p.remove("password"),
            passfile,
            sslmode,
            sslrootcert: sslrootcert.or_else(|| home_file(".postgresql/root.crt").filter(|f| f.exists())),
            sslcert: get(&p, "sslcert").map(PathBuf::from),
            sslkey: get(&p, "sslkey").map(PathBuf::from),
            application_name,
            options: get(&p, "options"),
            connect_timeout,
        })
    }

    /// The same server and user, another database (psql's `\connect db`).
    pub fn with_dbname(&self, dbname: &str) -> Target {
        Target { dbname: dbname.to_string(), ..self.clone() }
    }

    /// `host=… port=… user=… dbname=…` for messages; never the password.
    pub fn describe(&self) -> String {
        let ports: Vec<String> = self.ports.iter().map(|p| p.to_string()).collect();
        let mut s = format!("host={} ", self.hosts.join(","));
        if let Some(a) = &self.hostaddr {
            s += &format!("hostaddr={a} ");
        }
        s + &format!("port={} user={} dbname={}", ports.join(","), self.user, quote_conninfo_value(&self.dbname))
    }

    /// Whether a password is set explicitly (conninfo, URI or PGPASSWORD).
    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    /// The password to send: the explicit one, else the password file's matching line.
    fn password_for_connect(&self) -> (Option<String>, Option<String>) {
        if let Some(pw) = &self.password {
            return (Some(pw.clone()), None);
        }
        let Some(file) = &self.passfile else { return (None, None) };
        let host = pgpass_host(&self.hosts[0]);
        let port = self.ports[0].to_string();
        match pgpass_lookup(file, &host, &port, &self.dbname, &self.user) {
            PgpassLookup::Found(pw) => (Some(pw), None),
            PgpassLookup::NotFound => (None, None),
            PgpassLookup::Ignored(warning) => (None, Some(warning)),
        }
    }

    /// The `postgres` crate's configuration for this target, with the password to use (if any).
    pub fn config(&self) -> postgres::Config {
        let mut c = postgres::Config::new();
        for h in &self.hosts {
            c.host(h);
        }
        if let Some(a) = &self.hostaddr {
            if let Ok(ip) = a.parse() {
                c.hostaddr(ip);
            }
        }
        for p in &self.ports {
            c.port(*p);
        }
        c.user(&self.user).dbname(&self.dbname).application_name(&self.application_name);
        if let Some(o) = &self.options {
            c.options(o);
        }
        if let Some(t) = self.connect_timeout {
            c.connect_timeout(t);
        }
        c
    }

    fn all_sockets(&self) -> bool {
        self.hostaddr.is_none() && self.hosts.iter().all(|h| h.starts_with('/'))
    }

    /// Connects. On failure: one line naming the target and the server's message, and what to check;
    /// exit status [`EXIT_BADCONN`].
    pub fn connect(&self) -> Result<postgres::Client> {
        self.connect_config(self.config())
    }

    /// As [`Target::connect`], passing the server's notices and warnings to `on_notice` (by default the
    /// `postgres` crate drops them).
    pub fn connect_with_notices(
        &self,
        on_notice: impl Fn(&postgres::error::DbError) + Send + Sync + 'static,
    ) -> Result<postgres::Client> {
        let mut config = self.config();
        config.notice_callback(move |n| on_notice(&n));
        self.connect_config(config)
    }

    fn connect_config(&self, mut config: postgres::Config) -> Result<postgres::Client> {
        let (password, warning) = self.password_for_connect();
        if let Some(w) = &warning {
            eprintln!("warning: {w}");
        }
        let from_file = password.is_some() && self.password.is_none();
        if let Some(pw) = &password {
            config.password(pw);
        }
        // libpq ignores sslmode on Unix sockets; the server would refuse TLS there anyway.
        let result = if self.all_sockets() || matches!(self.sslmode, SslMode::Disable | SslMode::Allow) {
            config.ssl_mode(postgres::config::SslMode::Disable);
            config.connect(postgres::NoTls)
        } else {
            let tls = self.tls_connector().map_err(|e| Error::new(EXIT_BADCONN, e))?;
            config.ssl_mode(if self.sslmode == SslMode::Prefer {
                postgres::config::SslMode::Prefer
            } else {
                postgres::config::SslMode::Require
            });
            config.connect(tls)
        };
        result.map_err(|e| Error::new(EXIT_BADCONN, self.connect_error(&e, from_file)))
    }

    fn tls_connector(&self) -> std::result::Result<postgres_openssl::MakeTlsConnector, String> {
        use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVerifyMode};
        let ctx = |what: &str, e: openssl::error::ErrorStack| format!("TLS setup for {}: {what}: {e}", self.describe());
        let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(|e| ctx("openssl", e))?;
        // libpq's `require` verifies the chain only when a root certificate file is present.
        let verify = match self.sslmode {
            SslMode::VerifyCa | SslMode::VerifyFull => true,
            SslMode::Require => self.sslrootcert.as_ref().is_some_and(|f| f.exists()),
            _ => false,
        };
        if verify {
            match &self.sslrootcert {
                Some(f) => {
                    b.set_ca_file(f).map_err(|e| ctx(&format!("cannot load root certificate {}", f.display()), e))?
                }
                None => {
                    return Err(format!(
                        "sslmode={} needs the server's root certificate: set sslrootcert or PGSSLROOTCERT, or put \
                         it in ~/.postgresql/root.crt",
                        if self.sslmode == SslMode::VerifyFull { "verify-full" } else { "verify-ca" }
                    ))
                }
            }
            b.set_verify(SslVerifyMode::PEER);
        } else {
            b.set_verify(SslVerifyMode::NONE);
        }
        if let Some(cert) = &self.sslcert {
            if cert.exists() {
                b.set_certificate_chain_file(cert)
                    .map_err(|e| ctx(&format!("client certificate {}", cert.display()), e))?;
                let key = self.sslkey.clone().unwrap_or_else(|| cert.with_extension("key"));
                b.set_private_key_file(&key, SslFiletype::PEM)
                    .map_err(|e| ctx(&format!("client key {}", key.display()), e))?;
            }
        }
        let mut m = postgres_openssl::MakeTlsConnector::new(b.build());
        let full = self.sslmode == SslMode::VerifyFull;
        m.set_callback(move |cfg, _domain| {
            cfg.set_verify_hostname(full);
            Ok(())
        });
        Ok(m)
    }

    fn connect_error(&self, e: &postgres::Error, password_from_file: bool) -> String {
        let target = self.describe();
        if let Some(db) = e.as_db_error() {
            use postgres::error::SqlState;
            let code = db.code();
            let hint = if *code == SqlState::INVALID_PASSWORD || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            {
                if password_from_file {
                    "check the password retrieved from the password file, and pg_hba.conf"
                } else {
                    "check the user, its password (PGPASSWORD or ~/.pgpass) and pg_hba.conf"
                }
            } else if *code == SqlState::INVALID_CATALOG_NAME {
                "check the database name (-d)"
            } else if *code == SqlState::TOO_MANY_CONNECTIONS {
                "wait for connections to end or raise max_connections"
            } else {
                "check the server's log"
            };
            return format!(
                "cannot connect to {target}: {}: {} ({}); {hint}",
                db.severity(),
                db.message(),
                code.code()
            );
        }
        let msg = error_chain(e);
        let hint = if msg.contains("password missing") {
            "the server asks for a password: set PGPASSWORD or add a line to ~/.pgpass (or PGPASSFILE)"
        } else if msg.contains("timed out") {
            "check the host, port and firewall (-h, -p, PGHOST, PGPORT, PGCONNECT_TIMEOUT)"
        } else if msg.contains("TLS") || msg.contains("ssl") || msg.contains("SSL") || msg.contains("certificate") {
            "check sslmode and the certificates (PGSSLMODE, PGSSLROOTCERT)"
        } else if self.all_sockets() {
            "check that the server runs and listens on that Unix socket directory and port (-h /dir, -p)"
        } else {
            "check that the server runs and accepts TCP connections on that host and port (-h, -p, PGHOST, PGPORT)"
        };
        format!("cannot connect to {target}: {msg}; {hint}")
    }
}

/// An error and its sources in one line, without std's "(os error N)".
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        let t = x.to_string();
        if !s.contains(&t) {
            s += ": ";
            s += &t;
        }
        src = x.source();
    }
    while let Some(i) = s.find(" (os error") {
        match s[i..].find(')') {
            Some(j) => s.replace_range(i..i + j + 1, ""),
            None => break,
        }
    }
    s
}

/// A conninfo value quoted if it needs to be (for descriptions).
pub fn quote_conninfo_value(v: &str) -> String {
    if !v.is_empty() && !v.chars().any(|c| c.is_whitespace() || c == '\'' || c == '\\') {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

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
