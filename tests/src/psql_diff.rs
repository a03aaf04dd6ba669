//! Running one script through the real psql and through a9s-pgrestore on two databases of one server, and
//! comparing what each left behind: the ground truth for "exactly as psql does".

use std::path::Path;
use std::process::{Command, Output};

use crate::pg::{pg_bin, pgrestore_cmd, Cluster, PG_ENV};
use crate::run_with_input;

/// psql as the runbook runs it (`psql --quiet postgres < dump`), without ~/.psqlrc.
pub fn psql(pg: &Cluster, db: &str, script: &[u8]) -> Output {
    let mut c = Command::new(pg_bin("psql"));
    for v in PG_ENV {
        c.env_remove(v);
    }
    c.args(["-X", "--quiet"]).args(pg.conn_args()).args(["-d", db]);
    run_with_input(c, script)
}

/// a9s-pgrestore on `db`, with its JSON summary written to `summary`.
pub fn ours(pg: &Cluster, db: &str, script: &[u8], summary: &Path, extra: &[&str]) -> Output {
    let mut c = pgrestore_cmd();
    c.args(pg.conn_args()).args(["-d", db, "-q", "--json-summary"]).arg(summary).args(extra);
    run_with_input(c, script)
}

/// The database's schema and rows, as pg_dump writes them (without its comments and version-bound lines).
pub fn state(pg: &Cluster, db: &str) -> String {
    let mut c = Command::new(pg_bin("pg_dump"));
    for v in PG_ENV {
        c.env_remove(v);
    }
    let out = c.args(pg.conn_args()).args(["-d", db, "--no-owner"]).output().expect("pg_dump");
    assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("--") && !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The line a9s-pgrestore stopped at (exit 3): the last error's line in its JSON summary.
pub fn stop_line(summary: &Path) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(summary).ok()?).ok()?;
    v["error_list"].as_array()?.last()?["line"].as_u64()
}

/// The lines of `script` before line `line` (1-based).
pub fn lines_before(script: &[u8], line: u64) -> Vec<u8> {
    script.split_inclusive(|&b| b == b'\n').take(line.saturating_sub(1) as usize).flatten().copied().collect()
}

/// What one comparison found.
pub struct Verdict {
    pub code: i32,
    pub ours: Output,
    pub psql: Output,
    /// Our database equals psql's after the whole script.
    pub same_as_psql: bool,
    /// Exit 3, and our database equals psql's after the lines before the stop.
    pub stopped_safely: bool,
}

/// Runs `script` both ways and compares, each on its own database made once per cluster and set up afresh by
/// `setup` (which must undo whatever the scripts make).
pub fn compare(pg: &Cluster, setup: &str, script: &[u8], extra: &[&str]) -> Verdict {
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = dir.path().join("summary.json");
    for db in ["by_psql", "by_ours", "by_psql_prefix"] {
        if pg.psql("postgres", &format!("SELECT count(*) FROM pg_database WHERE datname = '{db}'")) == "0" {
            pg.psql("postgres", &format!("CREATE DATABASE {db}"));
        }
        if !setup.is_empty() {
            pg.psql(db, setup);
        }
    }
    let p = psql(pg, "by_psql", script);
    let o = ours(pg, "by_ours", script, &summary, extra);
    let code = o.status.code().unwrap_or(-1);
    let ours_state = state(pg, "by_ours");
    let same_as_psql = ours_state == state(pg, "by_psql");
    let mut stopped_safely = false;
    if code == 3 {
        if let Some(line) = stop_line(&summary) {
            psql(pg, "by_psql_prefix", &lines_before(script, line));
            stopped_safely = ours_state == state(pg, "by_psql_prefix");
            if !stopped_safely {
                // psql on a cut script sends the statement it still holds at the cut when the input ends; in
                // the whole script it had not sent it at the stop. Cut at the stop line's first backslash (the
                // meta-command that stopped us, in the usual case) and reset the buffer there with `\r`.
                let mut cut = lines_before(script, line);
                let stop = script.split(|&b| b == b'\n').nth(line.saturating_sub(1) as usize).unwrap_or_default();
                let before_meta = stop.iter().position(|&b| b == b'\\').map_or(stop, |i| &stop[..i]);
                cut.extend_from_slice(before_meta);
                cut.extend_from_slice(b"\n\\r\n");
                pg.psql("by_psql_prefix", setup);
                psql(pg, "by_psql_prefix", &cut);
                stopped_safely = ours_state == state(pg, "by_psql_prefix");
            }
        }
    }
    Verdict { code, ours: o, psql: p, same_as_psql, stopped_safely }
}
