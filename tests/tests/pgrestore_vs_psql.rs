//! Differential test: random scripts (tests/src/scriptgen.rs) run by the real psql and by a9s-pgrestore on two
//! databases of one server. For every script a9s-pgrestore must either leave its database exactly as psql
//! leaves its own, or stop with exit 3 having run only what psql also ran: then its database equals the one psql
//! makes from the lines before the stop.
//!
//! `A9S_DIFF_SCRIPTS=N` runs N scripts (default 40, a short run for the suite); `A9S_DIFF_SEED` picks the first
//! seed. A failure prints the seed and the script.

use a9s_tests::pg::Cluster;
use a9s_tests::psql_diff::compare;
use a9s_tests::scriptgen;

#[test]
fn random_scripts_leave_the_database_as_psql_does_or_stop_safely() {
    let pg = Cluster::start();
    let count: u64 = std::env::var("A9S_DIFF_SCRIPTS").ok().and_then(|v| v.parse().ok()).unwrap_or(40);
    let first: u64 = std::env::var("A9S_DIFF_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let (mut same, mut stopped) = (0, 0);
    for seed in first..first + count {
        let script = scriptgen::script(seed, 12);
        let v = compare(&pg, scriptgen::SETUP, script.as_bytes(), &[]);
        let ok = match v.code {
            0 | 1 => v.same_as_psql,
            3 => v.stopped_safely || v.same_as_psql,
            _ => false,
        };
        assert!(
            ok,
            "seed {seed}: exit {}, database {}\n--- script ---\n{script}--- our stderr ---\n{}\n--- psql stderr ---\n{}",
            v.code,
            if v.code == 3 { "neither psql's nor psql's up to the stop" } else { "differs from psql's" },
            String::from_utf8_lossy(&v.ours.stderr),
            String::from_utf8_lossy(&v.psql.stderr)
        );
        if v.code == 3 {
            stopped += 1;
        } else {
            same += 1;
        }
    }
    eprintln!("{count} scripts: {same} left the database as psql does, {stopped} stopped safely (exit 3)");
}
