//! a9s-pgrestore fails safe: each hostile or careless script is run by the real psql and by a9s-pgrestore, and
//! a9s-pgrestore must leave the database exactly as psql does, or stop (exit 3) having run only what psql ran.
//! Also: connect timeouts against a server that never answers, a standby refused before the script is read,
//! a cut-off script reported.

use std::time::{Duration, Instant};

use a9s_tests::pg::{pgrestore_cmd, Cluster};
use a9s_tests::pg_extra::make_standby;
use a9s_tests::psql_diff::{compare, Verdict};
use a9s_tests::{assert_status, run_with_input, stderr};

const SETUP: &str = "DROP TABLE IF EXISTS t, important CASCADE; CREATE TABLE t (a int, b text); \
                     CREATE TABLE important (i int); INSERT INTO important VALUES (1);";

fn check(v: &Verdict, want_code: i32, script: &str) {
    let ours = String::from_utf8_lossy(&v.ours.stderr);
    assert_eq!(v.code, want_code, "exit status\nscript:\n{script}\nours:\n{ours}");
    match want_code {
        3 => assert!(v.stopped_safely, "ran more or less than psql before the stop\nscript:\n{script}\nours:\n{ours}"),
        _ => assert!(v.same_as_psql, "database differs from psql's\nscript:\n{script}\nours:\n{ours}"),
    }
}

fn important_survives(pg: &Cluster) {
    assert_eq!(pg.psql("by_ours", "SELECT count(*) FROM important"), "1", "DROP TABLE important ran");
}

#[test]
fn standard_conforming_strings_is_followed_as_the_server_reports_it() {
    let pg = Cluster::start();
    // The example: with the setting off, 'C:\'); DROP TABLE important; --' is one string.
    for (script, code) in [
        ("SELECT set_config('standard_conforming_strings', 'off', false);\n\
          INSERT INTO t VALUES (1, 'C:\\'); DROP TABLE important; --');\n", 0),
        ("SET standard_conforming_strings = off;\nINSERT INTO t VALUES (1, 'C:\\'); DROP TABLE important; --');\n", 0),
        ("DO $$BEGIN PERFORM set_config('standard_conforming_strings', 'off', false); END$$;\n\
          INSERT INTO t VALUES (2, 'a\\'b');\n", 0),
        // On one line, psql splits the rest of the line with the value it had when the line began.
        ("SET standard_conforming_strings = off; INSERT INTO t VALUES (3, 'x\\\\');\nINSERT INTO t VALUES (4, 'y\\'z');\n", 0),
        ("SET standard_conforming_strings = off;\n\\c\nINSERT INTO t VALUES (5, 'C:\\');\n", 0),
    ] {
        let v = compare(&pg, SETUP, script.as_bytes(), &[]);
        check(&v, code, script);
        important_survives(&pg);
    }
    // Split with the setting on, the query sent spans three lines; the server, with it off, finds a COPY in it,
    // and psql would stream the lines after it as that COPY's data: stop, and what the query did is rolled
    // back (found by the differential test, seed 8176). With --jobs the index build stays on the main session,
    // which stops there before the next index build, which psql would read as COPY data, can start beside it.
    for (script, jobs, nothing_left) in [
        (
            "SET standard_conforming_strings = off; INSERT INTO t SELECT 7, 'a\\'b';\n\
             SELECT 2; -- a quote ' here\ncopy t from stdin;\n8\tx\n\\.\nDROP TABLE important;\n",
            "1",
            "SELECT count(*) FROM t",
        ),
        (
            "SET standard_conforming_strings = off; CREATE INDEX t_b ON t (b) WHERE b <> 'a\\'b';\n\
             SELECT 2; -- a quote ' here\ncopy t from stdin;\nCREATE INDEX t_a ON t (a);\n\\.\n\
             DROP TABLE important;\n",
            "2",
            "SELECT count(*) FROM pg_indexes WHERE tablename = 't'",
        ),
    ] {
        let v = compare(&pg, SETUP, script.as_bytes(), &["--jobs", jobs]);
        check(&v, 3, script);
        important_survives(&pg);
        let err = stderr(&v.ours);
        assert!(err.contains("line 1: the server started a COPY in the middle of this query"), "{err}");
        assert_eq!(pg.psql("by_ours", nothing_left), "0", "what the query did was committed\n{script}");
    }
    // A role's own setting, applied at \connect.
    pg.psql("postgres", "DROP ROLE IF EXISTS oldstyle; CREATE ROLE oldstyle LOGIN SUPERUSER; ALTER ROLE oldstyle SET standard_conforming_strings = off");
    let script = "\\c - oldstyle\nINSERT INTO t VALUES (6, 'C:\\'); DROP TABLE important; --');\n";
    let v = compare(&pg, SETUP, script.as_bytes(), &[]);
    check(&v, 0, script);
    important_survives(&pg);
}

#[test]
fn meta_commands_run_exactly_or_stop_the_restore() {
    let pg = Cluster::start();
    for (script, code) in [
        ("\\if false\nDROP TABLE important;\n\\endif\n", 3),
        ("\\copy t from stdin\n1\tdata\n\\.\nDROP TABLE important;\n", 3),
        ("INSERT INTO t VALUES (1, 'a');\n\\set ON_ERROR_STOP on\nDROP TABLE important;\n", 3),
        ("\\echo hi\nDROP TABLE important;\n", 3),
        ("SELECT 1 \\g\nDROP TABLE important;\n", 3),
        ("SELECT :'DBNAME';\nDROP TABLE important;\n", 3),
        ("\\c `echo postgres`\nDROP TABLE important;\n", 3),
        // psql inside \restrict: an error, the rest of the line dropped, the script goes on.
        ("\\restrict k\n\\if false\nINSERT INTO t VALUES (1, 'runs');\n\\endif\n\\unrestrict k\n", 1),
        ("\\restrict k\n\\echo x \\\\ INSERT INTO t VALUES (2, 'dropped with the line');\n\\unrestrict k\n", 1),
        ("\\unrestrict k\nINSERT INTO t VALUES (3, 'after');\n", 1),
        ("\\encoding NO_SUCH\nINSERT INTO t VALUES (4, 'after');\n", 1),
        ("\\encoding EUC_JP\nINSERT INTO t VALUES (5, 'x');\n", 3),
        ("\\c by_ours\nINSERT INTO t VALUES (6, 'on the same database');\n", 0),
        ("\\connect -reuse-previous=maybe x\nINSERT INTO t VALUES (7, 'kept');\n", 1),
        ("\\connect dbname=x postgres\nINSERT INTO t VALUES (8, 'kept');\n", 1),
    ] {
        // \c to the database by name: each run connects to its own (by_psql for psql): use `-`.
        let script = script.replace("\\c by_ours", "\\c -");
        let v = compare(&pg, SETUP, script.as_bytes(), &[]);
        check(&v, code, &script);
        important_survives(&pg);
    }
}

#[test]
fn copy_edge_cases_as_psql() {
    let pg = Cluster::start();
    for (script, code) in [
        // The server takes FROM STDOUT as FROM STDIN, and psql streams the lines that follow.
        ("COPY t FROM STDOUT;\n1\tone\n2\ttwo\n\\.\nINSERT INTO t VALUES (3, 'after');\n", 0),
        // An end marker ending in CR after rows ending in LF: the server rejects it (psql sends it).
        ("COPY t FROM stdin;\n1\tone\n\\.\r\nINSERT INTO t VALUES (3, 'after');\n", 1),
        ("COPY t FROM stdin;\r\n1\tone\r\n\\.\r\nINSERT INTO t VALUES (3, 'after');\n", 0),
        ("COPY t TO STDOUT;\nINSERT INTO t VALUES (4, 'after');\n", 0),
        ("COPY t FROM stdin;\n1\tone\nx\tbad\n\\.\nINSERT INTO t VALUES (5, 'after');\n", 1),
        // psql would run the data lines of a refused COPY as SQL.
        ("COPY nosuch FROM stdin;\nDROP TABLE important;\n\\.\n", 3),
        ("SELECT 1\\; COPY t FROM stdin;\n1\tx\n\\.\n", 3),
        ("COPY t FROM stdin (FORMAT binary);\nDROP TABLE important;\n", 3),
    ] {
        let v = compare(&pg, SETUP, script.as_bytes(), &[]);
        check(&v, code, script);
        important_survives(&pg);
    }
}

/// Command-line arguments and environment of one way to give a connect timeout.
type Case = (&'static [&'static str], &'static [(&'static str, &'static str)]);

/// A server that accepts connections and never says a word.
fn silent_server() -> (std::net::TcpListener, u16) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

#[test]
fn connect_timeout_is_honoured_against_a_silent_server() {
    let (_listener, port) = silent_server();
    let cases: [Case; 3] = [
        (&["-d", "host=127.0.0.1 connect_timeout=3 dbname=postgres user=postgres"], &[]),
        (&["-d", "postgresql://postgres@127.0.0.1/postgres?connect_timeout=3"], &[]),
        (&["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres"], &[("PGCONNECT_TIMEOUT", "3")]),
    ];
    for (args, env) in cases {
        let mut c = pgrestore_cmd();
        c.args(args).args(["-p", &port.to_string()]).envs(env.iter().copied());
        let start = Instant::now();
        let out = run_with_input(c, b"SELECT 1;\n");
        let took = start.elapsed();
        // The retry status: the server may answer later.
        assert_status(&out, 4);
        assert!(took < Duration::from_secs(8), "took {took:?}");
        assert!(took >= Duration::from_secs(2), "took {took:?}");
        assert!(stderr(&out).contains("timeout expired"), "{}", stderr(&out));
    }
    // a9s-repmgr-reset too.
    let mut c = std::process::Command::new(a9s_tests::bin("a9s-repmgr-reset"));
    c.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"]).env("PGCONNECT_TIMEOUT", "2");
    let start = Instant::now();
    let out = c.output().unwrap();
    assert_status(&out, 4);
    assert!(start.elapsed() < Duration::from_secs(7), "took {:?}", start.elapsed());
}

#[test]
fn a_standby_is_refused_before_the_script_is_read() {
    let mut standby = Cluster::start();
    make_standby(&mut standby);
    let mut c = pgrestore_cmd();
    c.args(standby.conn_args()).args(["-d", "postgres"]);
    // A script that is never read to its end: the refusal must come first.
    let out = run_with_input(c, b"CREATE TABLE x (i int);\n");
    // A standby stays one when asked again: 1, not the retry status.
    assert_status(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("standby") && err.contains("primary"), "{err}");
    assert!(!err.contains("postgres line 1:"), "a statement was tried: {err}");
}

#[test]
fn a_cut_off_script_is_still_reported() {
    let pg = Cluster::start();
    let dump = pg.pg_dumpall();
    let cut = &dump[..dump.len() * 2 / 3];
    let mut c = pgrestore_cmd();
    pg.psql("postgres", "CREATE DATABASE cutoff");
    c.args(pg.conn_args()).args(["-d", "cutoff"]);
    let out = run_with_input(c, cut);
    assert_ne!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("truncated"), "{err}");
}

/// Whether stderr reports a lost connection (the main session's or a --jobs session's).
fn is_loss(err: &str) -> bool {
    err.contains("connection lost") || err.contains(" lost at line") || err.contains(" was lost")
}

#[test]
fn a_nul_byte_stops_the_restore_at_its_line_never_as_a_lost_connection() {
    let pg = Cluster::start();
    // psql cuts each line at the NUL and joins it to the next: here a string left open, a comment that swallows
    // the next statement, a COPY row merged with the end marker (psql then streams the rest as data).
    for (script, line) in [
        (&b"INSERT INTO t VALUES (1, 'before');\nINSERT INTO t VALUES (2, 'a\0b');\nINSERT INTO t VALUES (3, 'after');\nDROP TABLE important;\n"[..], 2),
        (b"INSERT INTO t VALUES (1, 'x'); -- c\0x\nDROP TABLE important;\n", 1),
        (b"INSERT INTO t VALUES (1, 'before');\nCOPY t FROM stdin;\n1\tok\n2\tb\0d\n\\.\nDROP TABLE important;\n", 2),
    ] {
        let shown = String::from_utf8_lossy(script).into_owned();
        for extra in [&[][..], &["--jobs", "2"]] {
            let v = compare(&pg, SETUP, script, extra);
            check(&v, 3, &shown);
            important_survives(&pg);
            let err = stderr(&v.ours);
            assert!(err.contains(&format!("line {line}: ")) && err.contains("a NUL byte"), "{err}");
            assert!(!is_loss(&err) && !err.contains("run again"), "{err}");
        }
    }

    // Over --jobs sessions, with chunks small enough that the COPY is dealt out before the NUL comes: all roll
    // back. With --checkpoint, no advice to run again (it would stop at the same line).
    pg.psql("by_ours", SETUP);
    let mut script = b"COPY t FROM stdin;\n".to_vec();
    for i in 1..=50 {
        script.extend_from_slice(format!("{i}\trow {i}\n").as_bytes());
    }
    script.extend_from_slice(b"51\tb\0d\n\\.\nDROP TABLE important;\n");
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt");
    for extra in [vec!["--jobs", "2"], vec!["--checkpoint", ckpt.to_str().unwrap()]] {
        let mut c = pgrestore_cmd();
        c.args(pg.conn_args()).args(["-d", "by_ours"]).args(&extra).env("A9S_PGRESTORE_CHUNK_BYTES", "64");
        let out = run_with_input(c, &script);
        assert_status(&out, 3);
        let err = stderr(&out);
        assert!(err.contains("line 1: script line 52: a NUL byte (column 5)"), "{err}");
        assert!(err.contains("COPY t was aborted, none of its rows were loaded"), "{err}");
        assert!(!is_loss(&err) && !err.contains("run the same command again"), "{err}");
        assert_eq!(pg.psql("by_ours", "SELECT count(*) FROM t"), "0");
        important_survives(&pg);
    }

    // --list says where, and does not call the script complete.
    let mut c = pgrestore_cmd();
    c.arg("--list");
    let out = run_with_input(
        c,
        b"--\n-- PostgreSQL database dump\n--\nSELECT 'a\0b';\n--\n-- PostgreSQL database dump complete\n--\n",
    );
    assert_status(&out, 1);
    assert!(stderr(&out).contains("line 4: a NUL byte (column 10)"), "{}", stderr(&out));

    // Should one ever reach the client library, its "embedded null" is the statement's error: the session goes on.
    let args = a9s_core::pg::ConnArgs { dbname: Some(pg.conninfo("postgres")), ..Default::default() };
    let mut client = a9s_core::pg::Target::resolve(&args, "a9s-tests").unwrap().connect().unwrap();
    let e = client.batch_execute("SELECT 'a\0b'").unwrap_err();
    let e = a9s_core::pg::error::SqlError::from(&e);
    assert!(!e.is_session_lost(client.is_closed()), "{e:?}");
    client.batch_execute("SELECT 1").unwrap();
}
