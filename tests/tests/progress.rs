//! Progress that shows life and distance, end to end, against a real PostgreSQL 15:
//!
//! - a statement that runs for seconds is named, by its line, first words and elapsed time, at the progress
//!   interval: in a log (stderr a file) as timestamped lines, on a terminal (`script`'s pseudo-terminal) in the
//!   redrawn line; never with a literal;
//! - in `a9s-fetch … -o - | a9s-decrypt | a9s-pgrestore` the last program's log lines give the share of the
//!   backup and an ETA, which only a9s-fetch knows (it tells the last program through a file named after the
//!   pipe, see a9s_core::pipeline); fed by a program that is not ours, it says the total is unknown.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use a9s_tests::fixtures::{backup_id, encrypt, split_into_parts, text_bytes, Enc};
use a9s_tests::pg::Cluster;
use a9s_tests::{assert_status, bin};

const SECRET: &str = "NYHD8MVmA55HEqoaYHpQaxfwEMcQ1wkI";

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Runs `script` with bash -o pipefail, our programs on PATH, the cluster's environment and
/// A9S_PROGRESS_INTERVAL=1; returns the exit status and stderr of the whole pipe, which went to a file.
fn logged(pg: &Cluster, dir: &std::path::Path, script: &str) -> (Option<i32>, String) {
    let bindir = bin("a9s-pgrestore").parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bindir.display(), std::env::var("PATH").unwrap_or_default());
    let log = dir.join("stderr.log");
    let status = Command::new("bash")
        .args(["-o", "pipefail", "-c", script])
        .env("PATH", path)
        .envs(pg.env())
        .env("A9S_PROGRESS_INTERVAL", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .status()
        .unwrap();
    (status.code(), std::fs::read_to_string(&log).unwrap())
}

fn conn(pg: &Cluster) -> String {
    pg.conn_args().iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
}

#[test]
fn a_long_statement_is_named_in_the_log_at_the_interval() {
    let pg = Cluster::start();
    let d = tempfile::tempdir().unwrap();
    let sql = d.path().join("script.sql");
    std::fs::write(
        &sql,
        "SELECT 1;\n\nSELECT pg_sleep(7);\nSELECT pg_sleep(2) AS \"x\",\n  'hunter2' AS secret;\nSELECT 2;\n",
    )
    .unwrap();
    let t = std::time::Instant::now();
    let (code, log) =
        logged(&pg, d.path(), &format!("a9s-pgrestore {} -d postgres {}", conn(&pg), quote(sql.to_str().unwrap())));
    assert_eq!(code, Some(0), "{log}");
    assert!(t.elapsed().as_secs_f64() >= 9.0);
    let named: Vec<&str> = log.lines().filter(|l| l.contains("still running line 3: SELECT pg_sleep(7); (")).collect();
    assert!(named.iter().all(|l| a9s_tests::is_log_line(l, "a9s-pgrestore")), "timestamped: {log}");
    assert!((5..=8).contains(&named.len()), "about one line a second for 7 seconds: {log}");
    // The elapsed time counts up, and the figures follow.
    assert!(named.iter().any(|l| l.contains("(3s); ")) && named.iter().any(|l| l.contains("(5s); ")), "{log}");
    assert!(named.iter().all(|l| l.contains(" of ") && l.contains("%)")), "the file's total: {log}");
    // A statement with a literal is named up to it; the literal never shows.
    assert!(log.contains("still running line 4: SELECT pg_sleep(2) AS \"x\", … (1s)"), "{log}");
    assert!(!log.contains("hunter2"), "{log}");

    // With --jobs an index build runs on another session while the script waits for it: named the same way.
    std::fs::write(
        &sql,
        "CREATE FUNCTION slow(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1 FROM pg_sleep(0.5)';\n\
         CREATE TABLE t AS SELECT generate_series(1, 6) AS a;\n\
         CREATE INDEX t_slow ON t (slow(a));\n\
         SELECT 1;\n",
    )
    .unwrap();
    let (code, log) = logged(
        &pg,
        d.path(),
        &format!("a9s-pgrestore {} -d postgres --jobs 2 {}", conn(&pg), quote(sql.to_str().unwrap())),
    );
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("still running line 3: CREATE INDEX t_slow ON t (slow(a)); (2s)"), "{log}");
}

#[test]
fn a_long_statement_on_a_terminal_shows_in_the_line() {
    let pg = Cluster::start();
    let d = tempfile::tempdir().unwrap();
    let sql = d.path().join("script.sql");
    std::fs::write(&sql, "SELECT 1;\nSELECT pg_sleep(3);\n").unwrap();
    let cmd = format!("{} {} -d postgres {}", bin("a9s-pgrestore").display(), conn(&pg), quote(sql.to_str().unwrap()));
    // `script` gives the program a pseudo-terminal as stderr.
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("SHELL", "/bin/bash")
        .env_remove("A9S_PROGRESS_INTERVAL")
        .envs(pg.env())
        .stdin(Stdio::null())
        .output()
        .expect("run script(1) from util-linux");
    assert_status(&o, 0);
    let screen = String::from_utf8_lossy(&o.stdout);
    for s in ["1s", "2s"] {
        let drawn = format!("\r\x1b[Ka9s-pgrestore: still running line 2: SELECT pg_sleep(3); ({s}); ");
        assert!(screen.contains(&drawn), "{drawn:?} in {screen:?}");
    }
    // The line is cleared before the summary.
    assert!(screen.contains("\r\x1b[Ka9s-pgrestore: "), "{screen:?}");
}

/// A script of `segments` COPYs of `mib` MiB each, a short statement after each: the restore takes a few
/// seconds, at a pace set by the server.
fn paced_script(segments: usize, mib: usize) -> Vec<u8> {
    let mut s = b"CREATE TABLE big (id int, name text, n int, at timestamp);\n".to_vec();
    let mut rows = text_bytes(mib << 20);
    while rows.last() != Some(&b'\n') {
        rows.pop();
    }
    for _ in 0..segments {
        s.extend_from_slice(b"COPY big (id, name, n, at) FROM stdin;\n");
        s.extend_from_slice(&rows);
        s.extend_from_slice(b"\\.\nSELECT pg_sleep(0.4);\n");
    }
    s
}

#[test]
fn the_pipe_log_gives_the_share_of_the_backup_and_an_eta() {
    let pg = Cluster::start();
    let d = tempfile::tempdir().unwrap();
    let key = d.path().join("key");
    std::fs::write(&key, format!("{SECRET}\n")).unwrap();
    let script = paced_script(10, 2);
    // Not gzipped (a9s-decrypt --no-gunzip): what is in flight between the programs stays small against the
    // backup, whose share then moves while the restore runs.
    let enc = encrypt(&script, SECRET, Enc { gzip: false, ..Enc::default() });
    let store: PathBuf = d.path().join("store");
    split_into_parts(&enc, &store, &backup_id(), 4 << 20, 0);
    std::fs::write(store.join(format!("{}.json", backup_id())), "{}").unwrap();
    let location = format!("{}/{}", store.display(), backup_id());
    let key = quote(key.to_str().unwrap());

    let pipe = format!(
        "a9s-fetch {} -o - | a9s-decrypt --no-gunzip --pass file:{key} | a9s-pgrestore {} -d postgres",
        quote(&location),
        conn(&pg)
    );
    let (code, log) = logged(&pg, d.path(), &pipe);
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(
        pg.psql("postgres", "SELECT count(*) FROM big").trim(),
        (10 * text_bytes(2 << 20).iter().filter(|&&b| b == b'\n').count()).to_string()
    );
    let figures: Vec<&str> =
        log.lines().filter(|l| a9s_tests::is_log_line(l, "a9s-pgrestore") && l.contains(" read, ")).collect();
    assert!(figures.len() >= 2, "a line a second: {log}");
    let total = format!("of {:.1} MiB", enc.len() as f64 / (1 << 20) as f64);
    assert!(figures.iter().all(|l| l.contains("; backup ") && l.contains(&total)), "the backup's share: {log}");
    let under_way = figures.iter().find(|l| {
        let pct = l.split("; backup ").nth(1).and_then(|r| r.split('%').next()).and_then(|p| p.parse::<u32>().ok());
        pct.is_some_and(|p| p < 100) && l.contains(", ETA 0:")
    });
    assert!(under_way.is_some(), "a share under 100% with an ETA: {log}");
    assert!(!log.contains("total unknown"), "{log}");
    assert!(!log.contains("a9s-fetch:") && !log.contains("a9s-decrypt:"), "only the last program reports: {log}");

    // From a program that is not ours, nobody knows the total: it says so.
    let plain = d.path().join("plain.sql");
    std::fs::write(&plain, b"SELECT pg_sleep(2.5);\n").unwrap();
    let pipe = format!("cat {} | a9s-pgrestore {} -d postgres", quote(plain.to_str().unwrap()), conn(&pg));
    let (code, log) = logged(&pg, d.path(), &pipe);
    assert_eq!(code, Some(0), "{log}");
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| a9s_tests::is_log_line(l, "a9s-pgrestore") && l.contains("still running line 1"))
        .collect();
    assert!(!lines.is_empty() && lines.iter().all(|l| l.contains("total unknown") && !l.contains('%')), "{log}");
}
