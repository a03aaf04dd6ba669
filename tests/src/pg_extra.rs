//! More of a test cluster's surroundings than [`crate::pg`] sets up: a real `pg_receivewal` keeping a
//! replication slot active, a server in recovery (standby mode), and sessions held open in the background.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::pg::{pg_bin, Cluster, PG_ENV};

/// uid and gid of the `postgres` user when the tests run as root (None otherwise).
fn postgres_ids() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let id = |flag: &str| -> u32 {
        let out = Command::new("id").args([flag, "postgres"]).output().expect("run id");
        assert!(out.status.success(), "no postgres user: install Debian's postgresql-15");
        String::from_utf8_lossy(&out.stdout).trim().parse().expect("numeric id")
    };
    Some((id("-u"), id("-g")))
}

/// Polls `cond` every 50 ms for up to `secs` seconds.
pub fn wait_until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out after {secs} s waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running `pg_receivewal --slot SLOT`, which makes the slot active. Killed on drop.
pub struct WalReceiver {
    child: Child,
    pub slot: String,
    pub dir: PathBuf,
}

impl WalReceiver {
    /// Starts `pg_receivewal` on `slot` (which must exist) over the cluster's Unix socket and waits until the
    /// slot is active. Runs as `postgres` directly (not through runuser), so killing it kills the receiver.
    pub fn start(pg: &Cluster, slot: &str) -> WalReceiver {
        let dir = pg.root().join(format!("wal-{slot}"));
        std::fs::create_dir(&dir).expect("mkdir wal dir");
        let mut c = Command::new(pg_bin("pg_receivewal"));
        if let Some((uid, gid)) = postgres_ids() {
            let st = Command::new("chown").arg("postgres:postgres").arg(&dir).status().expect("chown");
            assert!(st.success());
            use std::os::unix::process::CommandExt;
            c.uid(uid).gid(gid);
        }
        for v in PG_ENV {
            c.env_remove(v);
        }
        c.arg("-D")
            .arg(&dir)
            .args(["--slot", slot, "--no-loop", "--no-password", "-h"])
            .arg(pg.socket_dir())
            .args(["-p", &pg.port.to_string(), "-U", "postgres"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = c.spawn().expect("run pg_receivewal");
        let mut r = WalReceiver { child, slot: slot.to_string(), dir };
        let q = format!("SELECT active FROM pg_replication_slots WHERE slot_name = '{slot}'");
        wait_until(30, &format!("pg_receivewal to make slot {slot} active"), || {
            if let Ok(Some(st)) = r.child.try_wait() {
                panic!("pg_receivewal exited early: {st}\nserver log: {}", pg.log());
            }
            pg.psql("postgres", &q) == "t"
        });
        r
    }

    /// Whether pg_receivewal still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for WalReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Puts a stopped-and-restarted cluster into standby mode: `standby.signal`, no primary to follow, so it
/// stays in recovery and accepts read-only connections (hot_standby is on by default). Returns when
/// `pg_is_in_recovery()` is true.
pub fn make_standby(pg: &mut Cluster) {
    pg.stop();
    pg.write_data_file("standby.signal", "");
    pg.restart();
    wait_until(30, "the server to be in recovery", || pg.psql("postgres", "SELECT pg_is_in_recovery()") == "t");
}

/// A psql session kept open in the background (running `sql`, e.g. a `pg_sleep` or a lock held in an open
/// transaction), killed on drop.
pub struct Session {
    child: Child,
}

impl Session {
    /// Starts `psql` on `db` as `user`, feeding `sql` on stdin and keeping stdin open, so the session lives until
    /// it is terminated or dropped. Waits until the server lists it in pg_stat_activity (application_name
    /// `tag`).
    pub fn open(pg: &Cluster, db: &str, user: &str, tag: &str, sql: &str) -> Session {
        let mut c = Command::new(pg_bin("psql"));
        for v in PG_ENV {
            c.env_remove(v);
        }
        c.env("PGAPPNAME", tag)
            .args(["-X", "-q", "-h"])
            .arg(pg.socket_dir())
            .args(["-p", &pg.port.to_string(), "-U", user, "-d", db])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = c.spawn().expect("run psql");
        {
            use std::io::Write;
            let stdin = child.stdin.as_mut().expect("stdin");
            stdin.write_all(sql.as_bytes()).expect("write sql");
            stdin.write_all(b"\n").expect("write sql");
            stdin.flush().expect("flush");
        }
        let q = format!("SELECT count(*) FROM pg_stat_activity WHERE application_name = '{tag}'");
        wait_until(30, &format!("session {tag}"), || pg.psql("postgres", &q) != "0");
        Session { child }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The statements the sessions of `application` sent, in order, from the server log from byte `from` on: simple
/// (`statement: `) and extended (`execute s0: `) alike. Needs `log_statement = 'all'` and
/// `log_line_prefix = '%a|'` in [`crate::pg::Options::extra_conf`]; a statement spanning lines is cut at its
/// first line.
pub fn logged_statements(pg: &Cluster, application: &str, from: usize) -> Vec<String> {
    let log = pg.log();
    let prefix = format!("{application}|");
    log[from..]
        .lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .filter_map(|l| {
            let l = l.split_once("LOG:  ")?.1;
            l.strip_prefix("statement: ").or_else(|| l.strip_prefix("execute ")?.split_once(": ").map(|(_, s)| s))
        })
        .map(str::to_string)
        .collect()
}
