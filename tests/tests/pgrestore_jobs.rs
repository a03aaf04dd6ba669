//! a9s-pgrestore --jobs N against a real PostgreSQL 15: restores over 2 and 4 sessions equal to sequential ones
//! (per-table row counts and sorted-row checksums, schema dumps), a failing COPY chunk rolled back on every
//! session and reported once with its script line, settings replayed on the worker sessions, parallel
//! CREATE INDEX, and a worker session that cannot connect. Tables whose rows depend on each other (a key, a
//! foreign key, a temporary table, a sequence default) loaded as psql loads them, and sessions that wait on each
//! other stopped within a minute instead of hanging.
//!
//! `A9S_PGRESTORE_CHUNK_BYTES` makes the chunks tiny so that test-sized tables are split into many.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use a9s_tests::pg::{normalized_dump, pgrestore_cmd, Cluster};
use a9s_tests::{assert_status, run_with_input, stderr};

/// Small chunks: every table of more than a few hundred rows goes parallel.
const CHUNK: &str = "16384";

/// a9s-pgrestore with a clean libpq environment and tiny chunks.
fn pgrestore() -> Command {
    let mut c = pgrestore_cmd();
    c.env("A9S_PGRESTORE_CHUNK_BYTES", CHUNK);
    c
}

/// Restores `script` into `pg` (starting in `db`) with `--jobs N` and a JSON summary; returns the output and
/// the summary.
fn restore(pg: &Cluster, db: &str, jobs: usize, extra: &[&str], script: &[u8]) -> (Output, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("summary.json");
    let mut c = pgrestore();
    c.args(pg.conn_args()).args(["-d", db, "--jobs", &jobs.to_string(), "--json-summary"]).arg(&json).args(extra);
    let out = run_with_input(c, script);
    let summary = std::fs::read_to_string(&json).unwrap_or_else(|e| panic!("no summary ({e}): {}", stderr(&out)));
    (out, serde_json::from_str(&summary).unwrap())
}

const SETUP_GLOBALS: &str = r#"
CREATE ROLE app LOGIN;
CREATE DATABASE j OWNER app;
CREATE DATABASE l1 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
"#;

/// Tables of several sizes, with what COPY's text format escapes, and indexes to build after the data.
const SETUP_J: &str = r#"
CREATE SCHEMA s AUTHORIZATION app;
CREATE TABLE s.big (id int PRIMARY KEY, h text NOT NULL, pad text, n numeric, t timestamptz, b bytea);
INSERT INTO s.big
  SELECT g, md5(g::text),
         CASE WHEN g % 7 = 0 THEN NULL ELSE repeat(E'x\ty\\z\n', g % 5) || 'ünï € 😀 ' || g END,
         g / 3.0, '2020-01-01 00:00+00'::timestamptz + g * interval '1 minute', decode(md5(g::text), 'hex')
  FROM generate_series(1, 6000) g;
CREATE INDEX big_h ON s.big (h);
CREATE INDEX big_n ON s.big (n DESC);
CREATE UNIQUE INDEX big_h_id ON s.big (h, id);
CREATE TABLE s.wide AS SELECT g AS id, repeat(md5(g::text), 4) AS w1, g % 100 AS k FROM generate_series(1, 3000) g;
ALTER TABLE s.wide ALTER COLUMN k SET NOT NULL;
CREATE INDEX wide_k ON s.wide (k);
CREATE INDEX wide_w ON s.wide (w1);
CREATE TABLE s.small (id int, v text);
INSERT INTO s.small VALUES (1, 'one'), (2, E'two\\.'), (3, NULL);
CREATE TABLE s.empty (id int);
CREATE TABLE "Odd ""Tbl""" ("a b" int, c text);
INSERT INTO "Odd ""Tbl""" SELECT g, 'row ' || g FROM generate_series(1, 2500) g;
CREATE INDEX odd_c ON "Odd ""Tbl""" (c);
ALTER TABLE s.big OWNER TO app;
"#;

const SETUP_L1: &str = r#"
CREATE TABLE lt AS SELECT g AS id, 'café ÿ ½ ' || g AS t FROM generate_series(1, 3000) g;
CREATE INDEX lt_t ON lt (t);
"#;

/// (database, table) pairs compared between restores.
const TABLES: &[(&str, &str)] =
    &[("j", "s.big"), ("j", "s.wide"), ("j", "s.small"), ("j", "s.empty"), ("j", "\"Odd \"\"Tbl\"\"\""), ("l1", "lt")];

/// Row count and a checksum of the sorted rows of every table in [`TABLES`].
fn table_sums(pg: &Cluster) -> Vec<String> {
    TABLES
        .iter()
        .map(|(db, t)| {
            let sum =
                pg.psql(db, &format!("SELECT count(*), md5(string_agg(x::text, E'\\n' ORDER BY x::text)) FROM {t} x"));
            format!("{db}/{t}: {sum}")
        })
        .collect()
}

fn source_cluster() -> Cluster {
    let src = Cluster::start();
    src.psql("postgres", SETUP_GLOBALS);
    src.psql("j", SETUP_J);
    src.psql("l1", SETUP_L1);
    src
}

#[test]
fn jobs_2_and_4_restore_what_jobs_1_does() {
    let src = source_cluster();
    let dump = src.pg_dumpall();
    let expected = table_sums(&src);
    let mut schemas = Vec::new();
    let mut rows = Vec::new();
    for jobs in [1, 2, 4] {
        let dst = Cluster::start();
        let (out, summary) = restore(&dst, "postgres", jobs, &[], &dump);
        assert_status(&out, 0);
        let err = stderr(&out);
        assert_eq!(table_sums(&dst), expected, "--jobs {jobs}: data differ\n{err}");
        schemas.push(normalized_dump(&dst.pg_dumpall_args(&["--schema-only"])));
        rows.push(summary["rows_copied"].as_u64().unwrap());
        let parallel = summary["parallel_copies"].as_u64().unwrap();
        let indexes = summary["parallel_indexes"].as_u64().unwrap();
        if jobs == 1 {
            assert_eq!((parallel, indexes), (0, 0), "--jobs 1 is sequential: {summary}");
        } else {
            // s.big, s.wide, "Odd ""Tbl""" and lt are larger than one chunk; s.small and s.empty are not.
            assert_eq!(parallel, 4, "--jobs {jobs}: {summary}");
            // Every index build of the dump: s.big's primary key and the seven CREATE INDEX.
            assert_eq!(indexes, 8, "--jobs {jobs}: {summary}");
        }
        assert_eq!(summary["errors"].as_u64(), Some(0), "{summary}");
    }
    assert_eq!(schemas[1], schemas[0], "--jobs 2 schema differs from --jobs 1");
    assert_eq!(schemas[2], schemas[0], "--jobs 4 schema differs from --jobs 1");
    assert_eq!(schemas[0], normalized_dump(&src.pg_dumpall_args(&["--schema-only"])), "schema differs from the source");
    assert!(rows.iter().all(|r| *r == rows[0] && *r > 14_000), "{rows:?}");
}

/// The script lines of a COPY block's data: (line of the `COPY` statement, first data line, `\.` line), 1-based.
/// Bytes: a dump holding a LATIN1 database is not UTF-8.
fn copy_block(script: &[u8], copy_prefix: &str) -> (usize, usize, usize) {
    let lines: Vec<&[u8]> = script.split(|b| *b == b'\n').collect();
    let copy =
        lines.iter().position(|l| l.starts_with(copy_prefix.as_bytes())).unwrap_or_else(|| panic!("no {copy_prefix}"));
    let end = copy + lines[copy..].iter().position(|l| *l == b"\\.").unwrap();
    (copy + 1, copy + 2, end + 1)
}

/// Inserts `row` as script line `at` (1-based).
fn insert_line(script: &[u8], at: usize, row: &str) -> Vec<u8> {
    let mut lines: Vec<&[u8]> = script.split(|b| *b == b'\n').collect();
    lines.insert(at - 1, row.as_bytes());
    lines.join(&b'\n')
}

#[test]
fn a_failing_chunk_rolls_back_the_table_on_every_session_and_is_reported_once() {
    let src = source_cluster();
    let dump = src.pg_dumpall();
    // A NOT NULL violation in the middle of s.big, a type error late in s.wide.
    let (big_copy, big_first, big_end) = copy_block(&dump, "COPY s.big ");
    let bad_big = (big_first + big_end) / 2;
    let script = insert_line(&dump, bad_big, "999999\t\\N\tpad\t1\t2020-01-01 00:00:00+00\t\\\\x00");
    let (wide_copy, wide_first, wide_end) = copy_block(&script, "COPY s.wide ");
    let bad_wide = wide_end - 3;
    assert!(bad_wide > wide_first + 100);
    let script = insert_line(&script, bad_wide, "abc\tw\t5");
    let dst = Cluster::start();
    let (out, summary) = restore(&dst, "postgres", 2, &[], &script);
    let err = stderr(&out);
    assert_status(&out, 1);
    assert_eq!(summary["errors"].as_u64(), Some(2), "{summary}\n{err}");
    // Each reported once, with the line of the bad row in the script and the table.
    let error_lines: Vec<&str> = err.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(error_lines.len(), 2, "{err}");
    assert!(
        error_lines[0].starts_with(&format!("a9s-pgrestore: j line {bad_big}: ")),
        "expected line {bad_big} (COPY at {big_copy}): {err}"
    );
    assert!(error_lines[0].contains("null value in column \"h\""), "{err}");
    assert!(error_lines[0].contains("23502"), "{err}");
    assert!(error_lines[0].contains("s.big"), "{err}");
    assert!(error_lines[1].starts_with(&format!("a9s-pgrestore: j line {bad_wide}: ")), "COPY at {wide_copy}: {err}");
    assert!(error_lines[1].contains("invalid input syntax for type integer: \"abc\""), "{err}");
    assert!(error_lines[1].contains("s.wide"), "{err}");
    // All or nothing: nothing of either table, on any session; the rest is there.
    assert_eq!(dst.psql("j", "SELECT count(*) FROM s.big"), "0");
    assert_eq!(dst.psql("j", "SELECT count(*) FROM s.wide"), "0");
    assert_eq!(dst.psql("j", "SELECT count(*) FROM \"Odd \"\"Tbl\"\"\""), "2500");
    assert_eq!(dst.psql("l1", "SELECT count(*) FROM lt"), "3000");
    // The statements after the failed COPY ran (indexes built on the empty table).
    assert_eq!(dst.psql("j", "SELECT count(*) FROM pg_indexes WHERE indexname IN ('big_h', 'wide_k')"), "2");
    let list = summary["error_list"].as_array().unwrap();
    assert_eq!(list[0]["line"].as_u64(), Some(bad_big as u64), "{summary}");
    assert_eq!(list[0]["sqlstate"].as_str(), Some("23502"));
    assert_eq!(list[1]["line"].as_u64(), Some(bad_wide as u64));
}

#[test]
fn on_error_stop_stops_at_a_failing_parallel_copy() {
    let pg = Cluster::start();
    let mut script = String::from("CREATE TABLE t (i int NOT NULL);\nCOPY t (i) FROM stdin;\n");
    for i in 1..=20_000 {
        script += &format!("{i}\n");
        if i == 15_000 {
            script += "\\N\n";
        }
    }
    script += "\\.\nCREATE TABLE after_stop (i int);\n";
    let (out, _) = restore(&pg, "postgres", 2, &["--on-error-stop"], script.as_bytes());
    assert_status(&out, 3);
    let err = stderr(&out);
    assert!(err.contains("postgres line 15003: ERROR: null value in column \"i\""), "{err}");
    assert_eq!(err.lines().filter(|l| l.contains("ERROR")).count(), 1, "{err}");
    assert_eq!(pg.psql("postgres", "SELECT count(*) FROM t"), "0");
    assert_eq!(pg.psql("postgres", "SELECT count(*) FROM pg_class WHERE relname = 'after_stop'"), "0");
}

#[test]
fn worker_sessions_replay_the_script_settings() {
    let pg = Cluster::start();
    pg.psql("postgres", "CREATE DATABASE other");
    // Day-first dates are read as such only with the script's DateStyle; without it, 31/12 is an error.
    let mut script = String::from(
        "CREATE SCHEMA ds;\nCREATE TABLE ds.d (id int, day date NOT NULL);\nSET datestyle = 'SQL, DMY';\n\
         SELECT pg_catalog.set_config('search_path', 'ds', false);\nCOPY d (id, day) FROM stdin;\n",
    );
    for i in 1..=5000 {
        script += &format!("{i}\t31/12/{}\n", 2000 + i % 20);
    }
    script += "\\.\n\\connect other\nCREATE TABLE m (id int, day date);\nCOPY m (id, day) FROM stdin;\n";
    // A new database: new sessions, and none of the first database's settings (month first again).
    for i in 1..=5000 {
        script += &format!("{i}\t12/31/{}\n", 2000 + i % 20);
    }
    script += "\\.\n";
    let (out, summary) = restore(&pg, "postgres", 2, &[], script.as_bytes());
    assert_status(&out, 0);
    assert_eq!(summary["parallel_copies"].as_u64(), Some(2), "{summary}");
    assert_eq!(summary["rows_copied"].as_u64(), Some(10_000), "{summary}");
    assert_eq!(pg.psql("postgres", "SELECT count(*) FROM ds.d WHERE extract(day FROM day) = 31"), "5000");
    assert_eq!(pg.psql("other", "SELECT count(*) FROM m WHERE extract(month FROM day) = 12"), "5000");
}

#[test]
fn parallel_create_index_errors_are_reported_with_their_lines() {
    let pg = Cluster::start();
    let script = "CREATE TABLE ix (a int, b text);\n\
                  INSERT INTO ix SELECT g % 100, md5(g::text) FROM generate_series(1, 5000) g;\n\
                  CREATE INDEX ix_a ON ix (a);\n\
                  CREATE UNIQUE INDEX ix_a_unique ON ix (a);\n\
                  CREATE INDEX ix_b ON ix (b);\n\
                  CREATE INDEX ix_nope ON nosuchtable (x);\n\
                  CREATE INDEX ix_ab ON ix (a, b);\n\
                  ALTER TABLE ONLY ix\n    ADD CONSTRAINT ix_pk PRIMARY KEY (a);\n\
                  CREATE TABLE after_indexes (i int);\n";
    let (out, summary) = restore(&pg, "postgres", 2, &[], script.as_bytes());
    assert_status(&out, 1);
    let err = stderr(&out);
    let errors: Vec<&str> = err.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 3, "{err}");
    assert!(errors[0].starts_with("a9s-pgrestore: postgres line 4: ERROR: could not create unique index"), "{err}");
    assert!(errors[1].starts_with("a9s-pgrestore: postgres line 6: ERROR: relation \"nosuchtable\""), "{err}");
    assert!(
        errors[2].starts_with("a9s-pgrestore: postgres line 8: ERROR: could not create unique index \"ix_pk\""),
        "{err}"
    );
    assert!(err.contains("    in: CREATE UNIQUE INDEX ix_a_unique ON ix (a);"), "{err}");
    assert!(err.contains("    in: ALTER TABLE ONLY ix"), "{err}");
    assert_eq!(summary["parallel_indexes"].as_u64(), Some(6), "{summary}");
    assert_eq!(summary["statements_failed"].as_u64(), Some(3), "{summary}");
    assert_eq!(
        pg.psql(
            "postgres",
            "SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE tablename = 'ix'"
        ),
        "ix_a,ix_ab,ix_b"
    );
    assert_eq!(pg.psql("postgres", "SELECT count(*) FROM after_indexes"), "0");
}

#[test]
fn a_worker_session_that_cannot_connect_is_a_connection_error() {
    let pg = Cluster::start();
    pg.psql("postgres", "CREATE ROLE lim LOGIN CONNECTION LIMIT 1; CREATE DATABASE limdb OWNER lim");
    let mut script = String::from("CREATE TABLE t (i int);\nCOPY t (i) FROM stdin;\n");
    for i in 1..=10_000 {
        script += &format!("{i}\n");
    }
    script += "\\.\n";
    let mut c = pgrestore();
    c.args(["-h", "127.0.0.1", "-p", &pg.port.to_string(), "-U", "lim", "-d", "limdb", "--jobs", "2"]);
    let out = run_with_input(c, script.as_bytes());
    assert_status(&out, 4);
    let err = stderr(&out);
    assert!(err.contains("too many connections for role \"lim\""), "{err}");
    assert!(err.contains("line 2"), "{err}");
    assert_eq!(pg.psql("limdb", "SELECT count(*) FROM t"), "0");
}

#[test]
fn jobs_usage() {
    for bad in ["0", "x", "1000"] {
        let out = pgrestore().args(["--jobs", bad, "/dev/null"]).output().unwrap();
        assert_status(&out, 2);
    }
    let out = pgrestore().env("A9S_PGRESTORE_CHUNK_BYTES", "lots").args(["--jobs", "2", "/dev/null"]).output().unwrap();
    assert_status(&out, 2);
    assert!(stderr(&out).contains("A9S_PGRESTORE_CHUNK_BYTES"), "{}", stderr(&out));
}

#[test]
fn a_worker_session_lost_mid_copy_stops_with_4() {
    let pg = Cluster::start();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("s.json");
    let mut c = pgrestore();
    c.args(pg.conn_args()).args(["-d", "postgres", "--jobs", "2", "--json-summary"]).arg(&json);
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut head = String::from("CREATE TABLE lost (i int, pad text);\nCOPY lost (i, pad) FROM stdin;\n");
    for i in 1..=5000 {
        head += &format!("{i}\t{}\n", "x".repeat(20));
    }
    stdin.write_all(head.as_bytes()).unwrap();
    stdin.flush().unwrap();
    // The worker sessions are in their COPY: end them as a server restart or an administrator would.
    let t0 = std::time::Instant::now();
    let copying = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY lost%' AND state = 'active'";
    while pg.psql("postgres", copying) == "0" {
        assert!(t0.elapsed().as_secs() < 30, "the worker sessions did not start their COPY");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    pg.psql("postgres", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'COPY lost%'");
    let mut tail = String::new();
    for i in 5001..=20_000 {
        tail += &format!("{i}\t{}\n", "x".repeat(20));
    }
    tail += "\\.\nCREATE TABLE after_lost (i int);\n";
    let _ = stdin.write_all(tail.as_bytes());
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_status(&out, 4);
    let err = stderr(&out);
    assert!(err.contains("a --jobs session to host=127.0.0.1"), "{err}");
    assert!(err.contains("was lost during COPY lost (started at line 2"), "{err}");
    assert!(err.contains("the restore is incomplete"), "{err}");
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(summary["status"].as_str(), Some("connection_lost"), "{summary}");
    assert_eq!(pg.psql("postgres", "SELECT count(*) FROM lost"), "0");
    assert_eq!(pg.psql("postgres", "SELECT count(*) FROM pg_class WHERE relname = 'after_lost'"), "0");
}

/// Runs `c` with `input` on stdin; kills it and fails the test if it has not ended within `limit` (a restore
/// whose sessions wait on each other would otherwise hang the suite).
fn run_within(mut c: Command, input: &[u8], limit: std::time::Duration) -> Output {
    use std::io::Read;
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let reader = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = reader(Box::new(child.stdout.take().unwrap()));
    let err = reader(Box::new(child.stderr.take().unwrap()));
    let t0 = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let err = String::from_utf8_lossy(&err.join().unwrap()).into_owned();
            panic!("a9s-pgrestore did not end within {limit:?}:\n{err}");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let _ = writer.join();
    Output { status, stdout: out.join().unwrap(), stderr: err.join().unwrap() }
}

/// `script` through psql on database `by_psql` and through a9s-pgrestore `--jobs 2` (tiny chunks) on `by_ours`,
/// each set up afresh with `setup`; a9s-pgrestore must end within 60 s. Returns its output and whether both
/// databases ended alike.
fn jobs_versus_psql(pg: &Cluster, setup: &str, script: &[u8]) -> (Output, bool) {
    for db in ["by_psql", "by_ours"] {
        pg.psql("postgres", &format!("DROP DATABASE IF EXISTS {db}"));
        pg.psql("postgres", &format!("CREATE DATABASE {db}"));
        pg.psql(db, setup);
    }
    a9s_tests::psql_diff::psql(pg, "by_psql", script);
    let mut c = pgrestore();
    c.args(pg.conn_args()).args(["-d", "by_ours", "--jobs", "2"]);
    let out = run_within(c, script, std::time::Duration::from_secs(60));
    let same = a9s_tests::psql_diff::state(pg, "by_ours") == a9s_tests::psql_diff::state(pg, "by_psql");
    (out, same)
}

/// A COPY of 20 000 rows (many chunks) into `table`, with `extra` inserted after row `at`; then a statement
/// that must run after it. The COPY is on line 2, so row `k` is on line `2 + k`.
fn copy_script(table: &str, row: impl Fn(u32) -> String, at: u32, extra: &str) -> String {
    let mut s = format!("SET lock_timeout = 0;\nCOPY {table} FROM stdin;\n");
    for i in 1..=20_000 {
        s += &row(i);
        s.push('\n');
        if i == at {
            s += extra;
            s.push('\n');
        }
    }
    s += "\\.\nINSERT INTO after_copy VALUES (1);\n";
    s
}

#[test]
fn a_key_repeated_in_a_later_chunk_fails_as_under_psql_without_waiting() {
    // The table already has its primary key: over two sessions, the second would wait for the first's
    // uncommitted key while the first waits for the second to finish. It is loaded over one session instead.
    let pg = Cluster::start();
    let setup = "CREATE TABLE pk (id int PRIMARY KEY, pad text); CREATE TABLE after_copy (i int);";
    let script = copy_script("pk (id, pad)", |i| format!("{i}\t{}", "x".repeat(20)), 15_000, "10\tdup");
    let (out, same) = jobs_versus_psql(&pg, setup, script.as_bytes());
    let err = stderr(&out);
    assert_status(&out, 1);
    assert!(same, "the database differs from psql's\n{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].starts_with("a9s-pgrestore: by_ours line 15003: ERROR: duplicate key value"), "{err}");
    assert!(errors[0].contains("23505") && errors[0].contains("(id)=(10) already exists"), "{err}");
    assert_eq!(pg.psql("by_ours", "SELECT count(*) FROM pk"), "0");
    assert_eq!(pg.psql("by_ours", "SELECT count(*) FROM after_copy"), "1");
}

#[test]
fn rows_referencing_rows_of_another_chunk_load_as_under_psql() {
    // Each row's parent comes later in the data, most in another chunk: psql's one COPY checks the foreign key
    // at its end, when all are there. Over separate sessions the parent would be invisible or locked.
    let pg = Cluster::start();
    let setup = "CREATE TABLE tree (id int PRIMARY KEY, parent int REFERENCES tree, pad text); \
                 CREATE TABLE after_copy (i int);";
    let script = copy_script(
        "tree (id, parent, pad)",
        |i| match i {
            20_000 => format!("{i}\t\\N\troot"),
            _ => format!("{i}\t{}\t{}", (i + 7_000).min(20_000), "x".repeat(20)),
        },
        0,
        "",
    );
    let (out, same) = jobs_versus_psql(&pg, setup, script.as_bytes());
    let err = stderr(&out);
    assert_status(&out, 0);
    assert!(same, "the database differs from psql's\n{err}");
    assert_eq!(pg.psql("by_ours", "SELECT count(*) FROM tree"), "20000");
}

#[test]
fn a_temporary_table_is_loaded_on_the_session_that_made_it() {
    // The main session's temporary table shadows a permanent one of the same name: other sessions would load
    // the permanent one.
    let pg = Cluster::start();
    let setup = "CREATE TABLE t (id int, pad text); CREATE TABLE kept (id int, pad text); \
                 CREATE TABLE after_copy (i int);";
    let script = copy_script("t (id, pad)", |i| format!("{i}\t{}", "x".repeat(20)), 0, "").replacen(
        "SET lock_timeout = 0;",
        "CREATE TEMP TABLE t (id int, pad text);",
        1,
    ) + "INSERT INTO kept SELECT * FROM pg_temp.t;\n";
    let (out, same) = jobs_versus_psql(&pg, setup, script.as_bytes());
    let err = stderr(&out);
    assert_status(&out, 0);
    assert!(same, "the database differs from psql's\n{err}");
    assert_eq!(pg.psql("by_ours", "SELECT count(*) FROM kept"), "20000");
    assert_eq!(pg.psql("by_ours", "SELECT count(*) FROM public.t"), "0");
}

#[test]
fn rows_that_draw_from_a_sequence_get_psqls_values() {
    // The COPY leaves out a serial column: psql's one session numbers the rows in the script's order.
    let pg = Cluster::start();
    let setup = "CREATE TABLE seq_t (id serial, v text); CREATE TABLE after_copy (i int);";
    let script = copy_script("seq_t (v)", |i| format!("row {i}"), 0, "");
    let (out, same) = jobs_versus_psql(&pg, setup, script.as_bytes());
    let err = stderr(&out);
    assert_status(&out, 0);
    assert!(same, "the database differs from psql's\n{err}");
    assert_eq!(pg.psql("by_ours", "SELECT count(*) FROM seq_t WHERE v <> 'row ' || id"), "0");
}

#[test]
fn sessions_waiting_on_each_other_stop_the_restore() {
    // A check that takes a transaction-long lock: the catalog shows nothing that ties the chunks together,
    // yet the second session waits for the first, which holds the lock until all have loaded. psql loads it;
    // --jobs must not wait for ever: it stops (3) before the COPY, with every session rolled back.
    let pg = Cluster::start();
    let setup = "CREATE FUNCTION one_at_a_time(int) RETURNS boolean LANGUAGE plpgsql \
                   AS $$BEGIN PERFORM pg_advisory_xact_lock(42); RETURN true; END$$; \
                 CREATE TABLE serial_t (id int CHECK (one_at_a_time(id)), pad text); \
                 CREATE TABLE after_copy (i int);";
    let script = copy_script("serial_t (id, pad)", |i| format!("{i}\t{}", "x".repeat(20)), 0, "");
    let (out, _) = jobs_versus_psql(&pg, setup, script.as_bytes());
    let err = stderr(&out);
    assert_status(&out, 3);
    assert!(err.contains("by_ours line 2: COPY serial_t: the sessions of this restore waited on each other"), "{err}");
    assert!(err.contains("run without --jobs for this script"), "{err}");
    assert_eq!(pg.psql("by_psql", "SELECT count(*) FROM serial_t"), "20000");
    assert_eq!(pg.psql("by_ours", "SELECT count(*) FROM serial_t"), "0");
    assert_eq!(pg.psql("by_ours", "SELECT count(*) FROM after_copy"), "0");
    // No session of the restore is left behind (the server ends them as the connections close).
    let t0 = std::time::Instant::now();
    while pg.psql("postgres", "SELECT count(*) FROM pg_stat_activity WHERE datname = 'by_ours'") != "0" {
        assert!(t0.elapsed().as_secs() < 10, "sessions of the restore are left");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn sessions_waiting_on_the_main_session_stop_the_restore() {
    // The script's own session holds an advisory lock for its life; psql takes it again for each row on that
    // same session. Every --jobs session waits for it and none takes another chunk, while the main session
    // waits for them to: a stop (3), not a hang.
    let pg = Cluster::start();
    let setup = "CREATE FUNCTION one_at_a_time(int) RETURNS boolean LANGUAGE plpgsql \
                   AS $$BEGIN PERFORM pg_advisory_xact_lock(42); RETURN true; END$$; \
                 CREATE TABLE serial_t (id int CHECK (one_at_a_time(id)), pad text); \
                 CREATE TABLE after_copy (i int);";
    let script = copy_script("serial_t (id, pad)", |i| format!("{i}\t{}", "x".repeat(20)), 0, "").replacen(
        "SET lock_timeout = 0;",
        "SELECT pg_advisory_lock(42);",
        1,
    );
    let (out, _) = jobs_versus_psql(&pg, setup, script.as_bytes());
    let err = stderr(&out);
    assert_status(&out, 3);
    assert!(err.contains("by_ours line 2: COPY serial_t: the sessions of this restore waited on each other"), "{err}");
    assert_eq!(pg.psql("by_psql", "SELECT count(*) FROM serial_t"), "20000");
    assert_eq!(pg.psql("by_ours", "SELECT count(*) FROM serial_t"), "0");
    assert_eq!(pg.psql("by_ours", "SELECT count(*) FROM after_copy"), "0");
}
