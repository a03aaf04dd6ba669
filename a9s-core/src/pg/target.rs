//! A resolved connection target: libpq's precedence of options, conninfo/URI and `PG*` environment, the
//! defaults, TLS settings, and the one-line messages for a failed connection.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::error::DbError;

use super::args::ConnArgs;
use super::conninfo::{parse_dbname_arg, quote_conninfo_value};
use super::error::{error_chain, EXIT_BADCONN};
use super::pgpass::{pgpass_host, pgpass_lookup, PgpassLookup};
use super::session::{ConnectError, NoticeFn, Session};
use super::{DEFAULT_PORT, DEFAULT_SOCKET_DIR};
use crate::error::{Error, Result};

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
    /// libpq's `connect_timeout`: the whole start-up, per host. Unset: [`DEFAULT_CONNECT_TIMEOUT`]; 0 waits
    /// for ever, as in libpq.
    pub connect_timeout: Option<Duration>,
    /// TCP keepalives (libpq's `keepalives`, `keepalives_idle`, `keepalives_interval`, `keepalives_count`).
    pub keepalives: Keepalives,
}

/// Without `connect_timeout`, libpq waits for ever on a server that accepts and never answers. A recovery tool
/// must not: this bound applies unless the operator sets `connect_timeout=0`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// TCP keepalive settings. libpq turns keepalives on and leaves the timing to the system (2 hours idle on
/// Linux); we probe sooner by default, so a restore over a network path that died ends within minutes of
/// the server falling silent rather than hours. The libpq keywords override each value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalives {
    pub on: bool,
    pub idle: Duration,
    pub interval: Duration,
    pub count: u32,
}

impl Default for Keepalives {
    fn default() -> Self {
        Keepalives { on: true, idle: Duration::from_secs(60), interval: Duration::from_secs(10), count: 6 }
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({})", self.describe())
    }
}

/// The connection parameters the `PG*` environment sets (libpq's defaults before any conninfo).
pub(crate) fn env_params(env: &Env) -> BTreeMap<String, String> {
    let mut p = BTreeMap::new();
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
    p
}

impl Target {
    /// Resolves the target from the options and the process environment. `program` becomes the
    /// `application_name` unless `PGAPPNAME` or the conninfo sets one.
    pub fn resolve(args: &ConnArgs, program: &str) -> Result<Target> {
        Self::resolve_with(args, program, &Env::process())
    }

    /// As [`Target::resolve`], with an explicit environment (for tests).
    pub fn resolve_with(args: &ConnArgs, program: &str, env: &Env) -> Result<Target> {
        // Lowest first: environment, then -d's conninfo, then explicit options.
        let mut p = env_params(env);
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

    pub(crate) fn from_params(mut p: BTreeMap<String, String>, program: &str, env: &Env) -> Result<Target> {
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
            None => Some(DEFAULT_CONNECT_TIMEOUT),
        };
        let mut keepalives = Keepalives::default();
        let seconds = |key: &str| -> Result<Option<u64>> {
            match get(&p, key) {
                None => Ok(None),
                Some(s) => s.trim().parse::<u64>().map(Some).map_err(|_| {
                    Error::usage(format!("invalid {key} \"{s}\": give a whole number of seconds (or a count)"))
                }),
            }
        };
        if let Some(v) = seconds("keepalives")? {
            keepalives.on = v != 0;
        }
        if let Some(v) = seconds("keepalives_idle")?.filter(|v| *v > 0) {
            keepalives.idle = Duration::from_secs(v);
        }
        if let Some(v) = seconds("keepalives_interval")?.filter(|v| *v > 0) {
            keepalives.interval = Duration::from_secs(v);
        }
        if let Some(v) = seconds("keepalives_count")?.filter(|v| *v > 0) {
            keepalives.count = v.min(u32::MAX as u64) as u32;
        }
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
            keepalives,
        })
    }

    /// The target as libpq keywords (what `PQconninfo` gives psql for the connection in use), password included.
    pub(crate) fn params(&self) -> BTreeMap<String, String> {
        let mut p = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            p.insert(k.to_string(), v);
        };
        put("host", self.hosts.join(","));
        put("port", self.ports.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(","));
        put("user", self.user.clone());
        put("dbname", self.dbname.clone());
        put("application_name", self.application_name.clone());
        put(
            "sslmode",
            match self.sslmode {
                SslMode::Disable => "disable",
                SslMode::Allow => "allow",
                SslMode::Prefer => "prefer",
                SslMode::Require => "require",
                SslMode::VerifyCa => "verify-ca",
                SslMode::VerifyFull => "verify-full",
            }
            .to_string(),
        );
        put("connect_timeout", self.connect_timeout.map_or(0, |t| t.as_secs()).to_string());
        put("keepalives", u8::from(self.keepalives.on).to_string());
        put("keepalives_idle", self.keepalives.idle.as_secs().to_string());
        put("keepalives_interval", self.keepalives.interval.as_secs().to_string());
        put("keepalives_count", self.keepalives.count.to_string());
        let path = |f: &Option<PathBuf>| f.as_ref().map(|f| f.display().to_string());
        for (k, v) in [
            ("hostaddr", self.hostaddr.clone()),
            ("password", self.password.clone()),
            ("passfile", path(&self.passfile)),
            ("sslrootcert", path(&self.sslrootcert)),
            ("sslcert", path(&self.sslcert)),
            ("sslkey", path(&self.sslkey)),
            ("options", self.options.clone()),
        ] {
            if let Some(v) = v {
                put(k, v);
            }
        }
        p
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

    /// tokio-postgres's configuration for this target (without the password, added at connect time).
    pub fn config(&self) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
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
        c.keepalives(self.keepalives.on)
            .keepalives_idle(self.keepalives.idle)
            .keepalives_interval(self.keepalives.interval)
            .keepalives_retries(self.keepalives.count);
        c
    }

    fn all_sockets(&self) -> bool {
        self.hostaddr.is_none() && self.hosts.iter().all(|h| h.starts_with('/'))
    }

    /// Connects, dropping the server's notices. On failure: one line naming the target and the server's
    /// message, and what to check; exit status [`EXIT_BADCONN`] when the server could not be reached (or may
    /// take connections later), 1 when it answered with a refusal that a retry meets again ([`connect_status`]).
    pub fn connect(&self) -> Result<Session> {
        self.connect_with_notices(Arc::new(|_: &DbError| {}))
    }

    /// As [`Target::connect`], passing the server's notices and warnings to `on_notice`.
    pub fn connect_with_notices(&self, on_notice: NoticeFn) -> Result<Session> {
        let mut config = self.config();
        let (password, warning) = self.password_for_connect();
        if let Some(w) = &warning {
            eprintln!("warning: {w}");
        }
        let from_file = password.is_some() && self.password.is_none();
        if let Some(pw) = &password {
            config.password(pw);
        }
        // libpq's connect_timeout is per host tried.
        let timeout = self.connect_timeout.map(|t| t * self.hosts.len().max(1) as u32);
        // libpq ignores sslmode on Unix sockets; the server would refuse TLS there anyway.
        let result = if self.all_sockets() || matches!(self.sslmode, SslMode::Disable | SslMode::Allow) {
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
            Session::connect(&config, tokio_postgres::NoTls, timeout, on_notice)
        } else {
            // A TLS setup that cannot be made (a certificate file) fails again until it is fixed.
            let tls = self.tls_connector().map_err(Error::failure)?;
            config.ssl_mode(if self.sslmode == SslMode::Prefer {
                tokio_postgres::config::SslMode::Prefer
            } else {
                tokio_postgres::config::SslMode::Require
            });
            Session::connect(&config, tls, timeout, on_notice)
        };
        result.map_err(|e| {
            let mut code = EXIT_BADCONN;
            let message = match e {
                ConnectError::Pg(e) => {
                    code = connect_status(&e);
                    self.connect_error(&e, from_file)
                }
                ConnectError::Timeout(t) => format!(
                    "cannot connect to {}: timeout expired after {} s without the server completing the start-up \
                     (connect_timeout); check the host and port (-h, -p, PGHOST, PGPORT), or raise \
                     PGCONNECT_TIMEOUT",
                    self.describe(),
                    t.as_secs()
                ),
                ConnectError::Setup(e) => format!("cannot connect to {}: {e}", self.describe()),
            };
            Error::new(code, message)
        })
    }

    /// Asks the server to cancel the statement a session of this target is running, as psql does on Ctrl-C
    /// (libpq's PQcancel): a new connection carrying the session's key, bounded by `connect_timeout`.
    pub fn cancel(&self, token: &tokio_postgres::CancelToken) -> std::result::Result<(), String> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        let wait = self.connect_timeout.filter(|t| !t.is_zero()).unwrap_or(Duration::from_secs(10));
        rt.block_on(async {
            // libpq sends a cancel in clear unless the session required TLS.
            let sent = if self.all_sockets()
                || !matches!(self.sslmode, SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull)
            {
                tokio::time::timeout(wait, token.cancel_query(tokio_postgres::NoTls)).await
            } else {
                tokio::time::timeout(wait, token.cancel_query(self.tls_connector()?)).await
            };
            match sent {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(error_chain(&e)),
                Err(_) => Err(format!("no answer within {} s", wait.as_secs())),
            }
        })
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

    fn connect_error(&self, e: &tokio_postgres::Error, password_from_file: bool) -> String {
        let target = self.describe();
        if let Some(db) = e.as_db_error() {
            use tokio_postgres::error::SqlState;
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
            return format!("cannot connect to {target}: {}; {hint}", super::error::SqlError::from(e).describe());
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

/// The exit status of a failed connection: [`EXIT_BADCONN`] (retry once the server is back) unless the server
/// answered and refused what a retry would send again — the password or the user (class 28), the database
/// (3D000), a password the client does not have, a certificate that does not verify — which is 1.
fn connect_status(e: &tokio_postgres::Error) -> i32 {
    use tokio_postgres::error::SqlState;
    match e.as_db_error().map(|db| db.code()) {
        Some(c) if c.code().starts_with("28") || *c == SqlState::INVALID_CATALOG_NAME => crate::error::exit::FAILURE,
        Some(_) => EXIT_BADCONN,
        // No password to give, or a certificate that does not verify: the same again on every try.
        None if ["password missing", "certificate"].iter().any(|w| error_chain(e).contains(w)) => {
            crate::error::exit::FAILURE
        }
        None => EXIT_BADCONN,
    }
}
