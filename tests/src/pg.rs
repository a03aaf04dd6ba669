//! A throwaway PostgreSQL 15 cluster for tests: `initdb` in a temporary directory, owned by and run as the
//! `postgres` user (tests run as root in CI; PostgreSQL refuses to run as root), listening on 127.0.0.1 on a
//! free port and on a Unix socket in the temporary directory. Stopped and removed on drop.
//!
//! ```no_run
//! let pg = a9s_tests::pg::Cluster::start();
//! pg.psql("postgres", "CREATE DATABASE x");
//! let dump = pg.pg_dumpall();
//! ```
//!
//! The superuser is always `postgres`, whatever user runs the tests. Authentication is `trust` for every
//! user except the optional password user ([`Options::password_user`]), which needs `scram-sha-256` (or
//! `md5`) over TCP and the socket alike.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Where Debian's postgresql-15 puts the server programs.
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// Path of a PostgreSQL 15 program (`initdb`, `pg_ctl`, `psql`, `pg_dumpall`, `pg_receivewal`, `pgbench`…).
pub fn pg_bin(name: &str) -> PathBuf {
    let p = Path::new(PG_BIN).join(name);
    assert!(
        p.exists(),
        "{} is missing: install Debian's postgresql-15 and postgresql-contrib (the README's test command does)",
        p.display()
    );
    p
}

/// True when the tests run as root, so server programs must be run as `postgres`.
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A command run as the `postgres` user when the tests run as root, else as the current user.
pub fn as_postgres(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    // The server and its tools must not pick up the caller's libpq settings.
    for v in PG_ENV {
        c.env_remove(v);
    }
    c
}

/// libpq variables cleared for the tools the harness runs, so a developer's environment cannot leak in.
pub const PG_ENV: &[&str] = &[
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGDATABASE",
    "PGSSLMODE",
    "PGAPPNAME",
    "PGOPTIONS",
    "PGCONNECT_TIMEOUT",
    "PGSERVICE",
    "PGSERVICEFILE",
];

/// How to set up a cluster. `Options::default()` is a plain fast cluster with trust authentication.
#[derive(Debug, Clone)]
pub struct Options {
    /// A login superuser `(name, password)` that must authenticate with a password (everyone else: trust).
    pub password_user: Option<(String, String)>,
    /// `scram-sha-256` (default) or `md5` for the password user.
    pub password_method: String,
    /// Physical replication: `wal_level=replica`, `max_wal_senders`, `max_replication_slots`, and
    /// `replication` lines in pg_hba.conf (trust). PostgreSQL 15's defaults already allow 10 senders and slots;
    /// this makes it explicit and adds the hba lines.
    pub replication: bool,
    /// `shared_preload_libraries`, e.g. `repmgr` (repmgr 5 needs it only for repmgrd, not CREATE EXTENSION).
    pub shared_preload_libraries: Option<String>,
    /// Extra postgresql.conf lines, e.g. `shared_buffers = '256MB'`.
    pub extra_conf: Vec<String>,
    /// `initdb --encoding`/`--locale` (default UTF8 with locale C).
    pub encoding: String,
    /// `ssl = on` with a self-signed certificate for `localhost` made by the openssl CLI
    /// ([`Cluster::tls_root_cert`] is the file a client verifies it with).
    pub tls: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            password_user: None,
            password_method: "scram-sha-256".into(),
            replication: false,
            shared_preload_libraries: None,
            extra_conf: Vec::new(),
            encoding: "UTF8".into(),
            tls: false,
        }
    }
}

/// A running cluster. Stopped (`-m immediate`) and deleted on drop.
pub struct Cluster {
    dir: tempfile::TempDir,
    /// TCP port on 127.0.0.1 (the Unix socket uses the same number: `.s.PGSQL.<port>`).
    pub port: u16,
    running: bool,
    opts: Options,
}

impl Cluster {
    /// Starts a plain cluster (see [`Options::default`]).
    pub fn start() -> Cluster {
        Self::start_with(Options::default())
    }

    /// Starts a cluster set up as `opts` says.
    pub fn start_with(opts: Options) -> Cluster {
        let dir = tempfile::Builder::new().prefix("a9s-pg-").tempdir().expect("create temp dir");
        let root = dir.path();
        std::fs::create_dir(root.join("sock")).expect("mkdir sock");
        if is_root() {
            let st = Command::new("chown").args(["-R", "postgres:postgres"]).arg(root).status().expect("run chown");
            assert!(st.success(), "chown postgres {}", root.display());
        }
        let mut initdb = as_postgres(pg_bin("initdb"));
        initdb
            .arg("-D")
            .arg(root.join("data"))
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "--locale=C"])
            .arg(format!("--encoding={}", opts.encoding));
        run_ok(&mut initdb, "initdb");

        let mut hba = String::new();
        if let Some((user, _)) = &opts.password_user {
            let m = &opts.password_method;
            hba += &format!("local all {user} {m}\nhost all {user} 127.0.0.1/32 {m}\n");
        }
        hba += "local all all trust\nhost all all 127.0.0.1/32 trust\n";
        if opts.replication {
            hba += "local replication all trust\nhost replication all 127.0.0.1/32 trust\n";
        }
        write_as_postgres(&root.join("data/pg_hba.conf"), &hba);

        if opts.tls {
            let data = root.join("data");
            let out = Command::new("openssl")
                .args(["req", "-new", "-x509", "-days", "2", "-nodes", "-subj", "/CN=localhost"])
                .args(["-addext", "subjectAltName=DNS:localhost", "-newkey", "rsa:2048", "-keyout"])
                .arg(data.join("server.key"))
                .arg("-out")
                .arg(data.join("server.crt"))
                .output()
                .expect("run openssl req");
            assert!(out.status.success(), "openssl req: {}", String::from_utf8_lossy(&out.stderr));
            std::fs::copy(data.join("server.crt"), root.join("root.crt")).expect("copy root.crt");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(data.join("server.key"), std::fs::Permissions::from_mode(0o600)).expect("chmod");
            if is_root() {
                let st = Command::new("chown")
                    .arg("postgres:postgres")
                    .arg(data.join("server.key"))
                    .arg(data.join("server.crt"))
                    .status()
                    .expect("chown");
                assert!(st.success());
            }
        }
        let mut cluster = Cluster { dir, port: 0, running: false, opts };
        // A free port can be taken between probing and binding; try a few.
        let mut last = String::new();
        for _ in 0..5 {
            cluster.port = free_port();
            cluster.write_conf();
            match cluster.try_pg_ctl_start() {
                Ok(()) => {
                    cluster.running = true;
                    cluster.after_start();
                    return cluster;
                }
                Err(e) => last = e,
            }
        }
        panic!("PostgreSQL did not start: {last}");
    }

    fn write_conf(&self) {
        let o = &self.opts;
        let mut conf = std::fs::read_to_string(self.data_dir().join("postgresql.conf")).expect("read postgresql.conf");
        if let Some(i) = conf.find("\n# a9s-tests\n") {
            conf.truncate(i);
        }
        conf += "\n# a9s-tests\n";
        conf += &format!(
            "listen_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\n",
            self.port,
            self.socket_dir().display()
        );
        conf += "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n";
        conf += "max_connections = 50\nshared_buffers = '64MB'\n";
        if o.password_user.is_some() && o.password_method == "md5" {
            conf += "password_encryption = 'md5'\n";
        }
        if o.replication {
            conf += "wal_level = replica\nmax_wal_senders = 10\nmax_replication_slots = 10\n";
        }
        if o.tls {
            conf += "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n";
        }
        if let Some(libs) = &o.shared_preload_libraries {
            conf += &format!("shared_preload_libraries = '{libs}'\n");
        }
        for l in &o.extra_conf {
            conf += l;
            conf.push('\n');
        }
        write_as_postgres(&self.data_dir().join("postgresql.conf"), &conf);
    }

    fn try_pg_ctl_start(&self) -> Result<(), String> {
        let out = as_postgres(pg_bin("pg_ctl"))
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_file())
            .args(["-w", "-t", "60", "start"])
            .stdin(Stdio::null())
            .output()
            .expect("run pg_ctl");
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "pg_ctl start: {}{}\nlog: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(self.log_file()).unwrap_or_default()
            ))
        }
    }

    fn after_start(&self) {
        if let Some((user, pw)) = &self.opts.password_user {
            self.psql("postgres", &format!("CREATE ROLE {user} LOGIN SUPERUSER PASSWORD '{pw}'"));
        }
    }

    /// The temporary directory holding `data/`, `sock/` and `log`.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The data directory (owned by `postgres`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The Unix-socket directory (a host starting with `/`).
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    /// The certificate that verifies the server's (with [`Options::tls`]).
    pub fn tls_root_cert(&self) -> PathBuf {
        self.dir.path().join("root.crt")
    }

    /// The server log.
    pub fn log_file(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    /// The server log's content, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    /// Connection options over TCP as the superuser: `-h 127.0.0.1 -p PORT -U postgres`.
    pub fn conn_args(&self) -> Vec<String> {
        vec!["-h".into(), "127.0.0.1".into(), "-p".into(), self.port.to_string(), "-U".into(), "postgres".into()]
    }

    /// Connection options over the Unix socket as the superuser: `-h /tmp/…/sock -p PORT -U postgres`.
    pub fn socket_args(&self) -> Vec<String> {
        vec![
            "-h".into(),
            self.socket_dir().display().to_string(),
            "-p".into(),
            self.port.to_string(),
            "-U".into(),
            "postgres".into(),
        ]
    }

    /// A libpq conninfo string for `db` over TCP as the superuser.
    pub fn conninfo(&self, db: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname='{}'",
            self.port,
            db.replace('\\', "\\\\").replace('\'', "\\'")
        )
    }

    /// `PGHOST`/`PGPORT`/`PGUSER` for the superuser over TCP, for `Command::envs`.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("PGHOST".into(), "127.0.0.1".into()),
            ("PGPORT".into(), self.port.to_string()),
            ("PGUSER".into(), "postgres".into()),
        ]
    }

    /// A real `psql -X -A -t -v ON_ERROR_STOP=1` command on `db` over the socket, input not yet set.
    pub fn psql_cmd(&self, db: &str) -> Command {
        let mut c = Command::new(pg_bin("psql"));
        for v in PG_ENV {
            c.env_remove(v);
        }
        // SQL in tests is Rust text: UTF-8, whatever the database's encoding (psql in a pipe would otherwise use
        // the database's).
        c.env("PGCLIENTENCODING", "UTF8");
        c.args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"]).args(self.socket_args()).args(["-d", db]);
        c
    }

    /// Runs `sql` with the real psql on `db`; panics on failure; returns stdout (unaligned, tuples only).
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = self.psql_output(db, sql);
        assert!(
            out.status.success(),
            "psql on {db} failed: {}\nSQL: {}",
            String::from_utf8_lossy(&out.stderr),
            &sql[..sql.len().min(2000)]
        );
        String::from_utf8_lossy(&out.stdout).trim_end_matches('\n').to_string()
    }

    /// Runs `sql` (fed on stdin, so meta-commands and COPY data work) with the real psql; never panics.
    pub fn psql_output(&self, db: &str, sql: &str) -> Output {
        let mut child = self
            .psql_cmd(db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run psql");
        let mut stdin = child.stdin.take().expect("stdin");
        let sql = sql.as_bytes().to_vec();
        let w = std::thread::spawn(move || {
            use std::io::Write;
            let _ = stdin.write_all(&sql);
        });
        let out = child.wait_with_output().expect("wait psql");
        let _ = w.join();
        out
    }

    /// `pg_dumpall` of the whole cluster, as bytes.
    pub fn pg_dumpall(&self) -> Vec<u8> {
        self.pg_dumpall_args(&[])
    }

    /// `pg_dumpall` with extra arguments (e.g. `--roles-only`).
    pub fn pg_dumpall_args(&self, extra: &[&str]) -> Vec<u8> {
        let mut c = Command::new(pg_bin("pg_dumpall"));
        for v in PG_ENV {
            c.env_remove(v);
        }
        let out = c.args(self.socket_args()).args(extra).output().expect("run pg_dumpall");
        assert!(out.status.success(), "pg_dumpall failed: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    /// Stops the server with `pg_ctl stop -m MODE` (`fast`, `immediate`, `smart`).
    pub fn stop_mode(&mut self, mode: &str) {
        if !self.running {
            return;
        }
        let out = as_postgres(pg_bin("pg_ctl"))
            .arg("-D")
            .arg(self.data_dir())
            .args(["-w", "-t", "60", "-m", mode, "stop"])
            .stdin(Stdio::null())
            .output()
            .expect("run pg_ctl stop");
        self.running = false;
        assert!(out.status.success(), "pg_ctl stop: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Stops the server (`-m fast`).
    pub fn stop(&mut self) {
        self.stop_mode("fast")
    }

    /// Starts a stopped server again, same port and settings (e.g. after adding `standby.signal`).
    pub fn restart(&mut self) {
        if self.running {
            self.stop();
        }
        self.write_conf();
        self.try_pg_ctl_start().unwrap_or_else(|e| panic!("PostgreSQL did not restart: {e}"));
        self.running = true;
    }

    /// Whether the harness believes the server is running.
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Writes a file into the data directory, owned by `postgres` (e.g. `standby.signal`).
    pub fn write_data_file(&self, name: &str, content: &str) {
        write_as_postgres(&self.data_dir().join(name), content);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.running {
            let _ = as_postgres(pg_bin("pg_ctl"))
                .arg("-D")
                .arg(self.data_dir())
                .args(["-w", "-t", "30", "-m", "immediate", "stop"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

pub use crate::free_port;

fn run_ok(c: &mut Command, what: &str) {
    let out = c.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn write_as_postgres(path: &Path, content: &str) {
    std::fs::write(path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    if is_root() {
        let st = Command::new("chown").arg("postgres:postgres").arg(path).status().expect("chown");
        assert!(st.success());
    }
}

/// a9s-pgrestore with a clean libpq environment: no PG* variable and never a developer's ~/.pgpass.
pub fn pgrestore_cmd() -> std::process::Command {
    let mut c = crate::cmd("a9s-pgrestore");
    for v in PG_ENV {
        c.env_remove(v);
    }
    c.env_remove("PGCLIENTENCODING");
    c.env("PGPASSFILE", "/nonexistent/pgpass");
    c
}

/// A pg_dumpall output without the lines that legitimately differ between two runs: the `\restrict` keys and
/// the version comments.
pub fn normalized_dump(dump: &[u8]) -> String {
    let text = String::from_utf8_lossy(dump);
    text.lines()
        .filter(|l| {
            !l.starts_with("\\restrict ")
                && !l.starts_with("\\unrestrict ")
                && !l.starts_with("-- Dumped from database version")
                && !l.starts_with("-- Dumped by pg_dump version")
                && !l.starts_with("-- Dumped by pg_dumpall version")
        })
        .collect::<Vec<_>>()
        .join("\n")
}
