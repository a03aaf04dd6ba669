//! Differential test: random scripts (tests/src/scriptgen.rs) run by the real psql and by a9s-pgrestore on two
//! databases of one server. For every script a9s-pgrestore must either leave its database exactly as psql
//! leaves its own, or stop with exit 3 having run only what psql also ran: then its database equals the one psql
//! makes from the lines before the stop.
//!
//! `A9S_DIFF_SCRIPTS=N` runs N scripts (default 40, a short run for the suite); `A9S_DIFF_SEED` picks the first
//! seed. A failure prints the seed and the script.

use std::process::{Command, Output};

use a9s_tests::pg::{pg_bin, pgrestore_cmd, Cluster, PG_ENV};
use a9s_tests::run_with_input;
use a9s_tests::scriptgen;

const DB_PSQL: &str = "by_psql";
const DB_OURS: &str = "by_ours";
const DB_PREFIX: &str = "by_psql_prefix";

/// psql as the runbook runs it (`psql --quiet postgres < dump`), without ~/.psqlrc.
fn psql(pg: &Cluster, db: &str, script: &str) -> Output {
    let mut c = Command::new(pg_bin("psql"));
    for v in PG_ENV {
        c.env_remove(v);
    }
    c.args(["-X", "--quiet"]).args(pg.conn_args()).args(["-d", db]);
    run_with_input(c, script.as_bytes())
}

fn ours(pg: &Cluster, db: &str, script: &str, summary: &std::path::Path) -> Output {
    let mut c = pgrestore_cmd();
    c.args(pg.conn_args()).args(["-d", db, "-q", "--json-summary"]).arg(summary);
    run_with_input(c, script.as_bytes())
}

/// The database's tables and rows, as pg_dump writes them (without its comments and version-bound lines).
fn state(pg: &Cluster, db: &str) -> String {
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

fn reset(pg: &Cluster, db: &str) {
    pg.psql(db, scriptgen::SETUP);
}

#[test]
fn random_scripts_leave_the_database_as_psql_does_or_stop_safely() {
    let pg = Cluster::start();
    for db in [DB_PSQL, DB_OURS, DB_PREFIX] {
        pg.psql("postgres", &format!("CREATE DATABASE {db}"));
    }
    let count: u64 = std::env::var("A9S_DIFF_SCRIPTS").ok().and_then(|v| v.parse().ok()).unwrap_or(40);
    let first: u64 = std::env::var("A9S_DIFF_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let dir = tempfile::tempdir().unwrap();
    let summary_path = dir.path().join("summary.json");
    let (mut same, mut stopped) = (0, 0);
    for seed in first..first + count {
        let script = scriptgen::script(seed, 12);
        let fail = |why: &str| -> ! { panic!("seed {seed}: {why}\n--- script ---\n{script}--- end ---") };
        reset(&pg, DB_PSQL);
        reset(&pg, DB_OURS);
        let p = psql(&pg, DB_PSQL, &script);
        let o = ours(&pg, DB_OURS, &script, &summary_path);
        let code = o.status.code().unwrap_or(-1);
        let psql_state = state(&pg, DB_PSQL);
        let our_state = state(&pg, DB_OURS);
        match code {
            0 | 1 => {
                if our_state != psql_state {
                    fail(&format!(
                        "exit {code} but the database differs from psql's\n--- psql ---\n{psql_state}\n--- ours ---\n\
                         {our_state}\n--- our stderr ---\n{}\n--- psql stderr ---\n{}",
                        String::from_utf8_lossy(&o.stderr),
                        String::from_utf8_lossy(&p.stderr)
                    ));
                }
                same += 1;
            }
            3 => {
                let summary: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&summary_path).unwrap()).unwrap();
                let line = summary["error_list"]
                    .as_array()
                    .and_then(|l| l.last())
                    .and_then(|e| e["line"].as_u64())
                    .unwrap_or_else(|| fail("exit 3 without an error line"));
                let prefix: String = script.split_inclusive('\n').take(line.saturating_sub(1) as usize).collect();
                reset(&pg, DB_PREFIX);
                psql(&pg, DB_PREFIX, &prefix);
                let prefix_state = state(&pg, DB_PREFIX);
                if our_state != prefix_state && our_state != psql_state {
                    fail(&format!(
                        "stopped at line {line} but the database is neither psql's nor psql's after the lines before \
                         it\n--- psql prefix ---\n{prefix_state}\n--- ours ---\n{our_state}\n--- our stderr ---\n{}",
                        String::from_utf8_lossy(&o.stderr)
                    ));
                }
                stopped += 1;
            }
            _ => fail(&format!("exit {code}: {}", String::from_utf8_lossy(&o.stderr))),
        }
    }
    eprintln!("{count} scripts: {same} left the database as psql does, {stopped} stopped safely (exit 3)");
}
