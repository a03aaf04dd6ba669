//! a9s-pgrestore --checkpoint against a real PostgreSQL 15 that is killed (`pg_ctl stop -m immediate`) in the
//! middle of a restore — during the globals, inside a large COPY, during index builds, between databases; with
//! one session and with `--jobs 2` — then restarted: the rerun with the same checkpoint resumes, ends with exit
//! 0, and the cluster equals one restored without interruption (per-table row counts and sorted-row checksums,
//! the schema dump, large objects). A checkpoint of another script, or of another cluster, is refused with
//! nothing run; a complete one makes a rerun do nothing.
//!
//! The script is fed through a pipe by the test, so the kill lands where the test stopped writing: a9s-pgrestore
//! has run everything before that point and waits for more.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use a9s_pgrestore::checkpoint::{Checkpoint, CheckpointFile, Identity};
use a9s_tests::pg::{normalized_dump, pgrestore_cmd, Cluster, Options};
use a9s_tests::{assert_status, run_with_input, stderr};

const SETUP_GLOBALS: &str = r#"
CREATE ROLE app LOGIN;
CREATE ROLE reader NOLOGIN;
CREATE ROLE auditor NOLOGIN IN ROLE reader;
CREATE DATABASE shop OWNER app;
CREATE DATABASE archive OWNER app;
"#;

/// A large table loaded by COPY, indexes built after it, a function whose body holds BEGIN … END, a view with
/// CASE … END, and large objects (pg_dump writes their data inside BEGIN … COMMIT blocks).
const SETUP_SHOP: &str = r#"
CREATE SCHEMA s AUTHORIZATION app;
CREATE TABLE s.orders (id int, customer text NOT NULL, note text, amount numeric, at timestamptz);
INSERT INTO s.orders
  SELECT g, 'customer ' || (g % 997), CASE WHEN g % 11 = 0 THEN NULL ELSE repeat(md5(g::text), 1 + g % 3) END,
         g / 7.0, '2021-01-01 00:00+00'::timestamptz + g * interval '1 minute'
  FROM generate_series(1, 60000) g;
ALTER TABLE s.orders ADD CONSTRAINT orders_pkey PRIMARY KEY (id);
CREATE INDEX orders_customer ON s.orders (customer);
CREATE INDEX orders_amount ON s.orders (amount DESC);
CREATE INDEX orders_at ON s.orders (at);
CREATE UNIQUE INDEX orders_customer_id ON s.orders (customer, id);
CREATE TABLE s.items AS SELECT g AS id, g % 60000 + 1 AS order_id, 'item ' || g AS name FROM generate_series(1, 20000) g;
ALTER TABLE s.items ADD CONSTRAINT items_order FOREIGN KEY (order_id) REFERENCES s.orders (id);
CREATE INDEX items_name ON s.items (name);
CREATE FUNCTION s.total(c text) RETURNS numeric LANGUAGE plpgsql AS $$
BEGIN
  RETURN (SELECT sum(amount) FROM s.orders WHERE customer = c);
END
$$;
CREATE VIEW s.sizes AS SELECT id, CASE WHEN amount > 100 THEN 'big' ELSE 'small' END AS size FROM s.orders;
SELECT lo_from_bytea(0, convert_to(repeat('large object ', 5000), 'UTF8'));
SELECT lo_from_bytea(0, '\x00ff'::bytea);
GRANT SELECT ON ALL TABLES IN SCHEMA s TO reader;
"#;

const SETUP_ARCHIVE: &str = r#"
CREATE TABLE old_orders AS SELECT g AS id, 'archived ' || g AS what FROM generate_series(1, 5000) g;
CREATE INDEX old_orders_what ON old_orders (what);
"#;

const TABLES: &[(&str, &str)] = &[("shop", "s.orders"), ("shop", "s.items"), ("archive", "old_orders")];

/// Row count and a checksum of the sorted rows of every table, and the large objects.
fn table_sums(pg: &Cluster) -> Vec<String> {
    let mut sums: Vec<String> = TABLES
        .iter()
        .map(|(db, t)| {
            let sum =
                pg.psql(db, &format!("SELECT count(*), md5(string_agg(x::text, E'\\n' ORDER BY x::text)) FROM {t} x"));
            format!("{db}/{t}: {sum}")
        })
        .collect();
    sums.push(pg.psql(
        "shop",
        "SELECT count(*), md5(string_agg(md5(lo_get(oid)), ',' ORDER BY oid)) FROM pg_largeobject_metadata",
    ));
    sums
}

/// Everything but the rows' physical order (which `--jobs` may change): schema, grants, roles, large objects.
fn schema(pg: &Cluster) -> String {
    normalized_dump(&pg.pg_dumpall_args(&["--schema-only"]))
}

/// A cluster that keeps what it acknowledged when killed: `synchronous_commit` on, as a production server.
fn durable_cluster() -> Cluster {
    Cluster::start_with(Options { extra_conf: vec!["synchronous_commit = on".into()], ..Options::default() })
}

fn pgrestore(pg: &Cluster, jobs: usize, checkpoint: &Path, json: &Path) -> Command {
    let mut c = pgrestore_cmd();
    c.env("A9S_PGRESTORE_CHUNK_BYTES", "65536");
    c.args(pg.conn_args())
        .args(["-d", "postgres", "--jobs", &jobs.to_string(), "--checkpoint"])
        .arg(checkpoint)
        .arg("--json-summary")
        .arg(json);
    c
}

/// The newest record in a checkpoint file, as JSON.
fn read_checkpoint(path: &Path) -> serde_json::Value {
    let (_, c) = CheckpointFile::open(path).unwrap();
    serde_json::to_value(c.expect("a checkpoint")).unwrap()
}

/// Records `value` in a checkpoint file, as a9s-pgrestore would.
fn write_checkpoint(path: &Path, value: &serde_json::Value) {
    let (mut store, _) = CheckpointFile::open(path).unwrap();
    let mut c: Checkpoint = serde_json::from_value(value.clone()).unwrap();
    store.write(&mut c, false).unwrap();
}

fn summary(json: &Path, out: &Output) -> serde_json::Value {
    let text = std::fs::read_to_string(json).unwrap_or_else(|e| panic!("no summary ({e}): {}", stderr(out)));
    serde_json::from_str(&text).unwrap()
}

/// Where the test stops feeding the script and kills the server.
#[derive(Debug, Clone, Copy)]
enum Cut {
    /// After the first roles are created.
    Globals,
    /// Halfway through the data of the large table's COPY.
    InsideCopy,
    /// After the first CREATE INDEX after the data.
    IndexBuilds,
    /// Just before `\connect archive`.
    BetweenDatabases,
    /// Inside the `BEGIN; … COMMIT;` block that writes the large objects' data.
    InsideTransaction,
}

/// What dies.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kill {
    /// The server: `pg_ctl stop -m immediate`, then started again.
    Server,
    /// a9s-pgrestore itself (SIGKILL: as when the VM or its ssh session dies); the server goes on.
    Client,
}

/// The byte offset of `cut` in the script.
fn cut_offset(dump: &[u8], cut: Cut) -> usize {
    let text = String::from_utf8_lossy(dump);
    let line_end = |at: usize| at + text[at..].find('\n').unwrap() + 1;
    match cut {
        Cut::Globals => line_end(text.find("CREATE ROLE reader").expect("CREATE ROLE reader")),
        Cut::InsideCopy => {
            let copy = text.find("COPY s.orders ").expect("COPY s.orders");
            let end = copy + text[copy..].find("\n\\.\n").unwrap();
            line_end(copy + (end - copy) / 2)
        }
        Cut::IndexBuilds => line_end(text.find("CREATE INDEX orders_").expect("CREATE INDEX")),
        Cut::BetweenDatabases => text.find("\\connect archive").expect("\\connect archive"),
        Cut::InsideTransaction => {
            let begin = text.find("\nBEGIN;\n").expect("BEGIN; of the large objects' data");
            line_end(begin + text[begin..].find("lo_open").unwrap())
        }
    }
}

/// Feeds `dump` up to `cut`, lets a9s-pgrestore run all of it, kills the server (and feeds the rest) or
/// a9s-pgrestore: the interrupted run's output.
fn interrupted_run(pg: &mut Cluster, mut c: Command, dump: &[u8], cut: usize, kill: Kill) -> Output {
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&dump[..cut]).unwrap();
    stdin.flush().unwrap();
    // What was written runs in well under this; the restore then waits for more input.
    std::thread::sleep(Duration::from_millis(1500));
    if kill == Kill::Client {
        child.kill().unwrap();
        drop(stdin);
        return child.wait_with_output().unwrap();
    }
    pg.stop_mode("immediate");
    let rest = dump[cut..].to_vec();
    let w = std::thread::spawn(move || {
        let _ = stdin.write_all(&rest);
    });
    let out = child.wait_with_output().unwrap();
    w.join().unwrap();
    out
}

struct Source {
    dump: Vec<u8>,
    sums: Vec<String>,
    schema: String,
}

/// The dump, and what an uninterrupted restore of it gives.
fn source() -> Source {
    let src = Cluster::start();
    src.psql("postgres", SETUP_GLOBALS);
    src.psql("shop", SETUP_SHOP);
    src.psql("archive", SETUP_ARCHIVE);
    let dump = src.pg_dumpall();
    drop(src);
    let reference = durable_cluster();
    let dir = tempfile::tempdir().unwrap();
    let c = pgrestore(&reference, 1, &dir.path().join("ckpt"), &dir.path().join("s.json"));
    let out = run_with_input(c, &dump);
    assert_status(&out, 0);
    Source { sums: table_sums(&reference), schema: schema(&reference), dump }
}

fn kill_and_resume(src: &Source, jobs: usize, cases: &[(Cut, Kill)]) {
    for &(cut, kill) in cases {
        let what = format!("--jobs {jobs}, {kill:?} killed {cut:?}");
        let mut pg = durable_cluster();
        let dir = tempfile::tempdir().unwrap();
        let (ckpt, json) = (dir.path().join("restore.checkpoint"), dir.path().join("summary.json"));
        let offset = cut_offset(&src.dump, cut);
        let c = pgrestore(&pg, jobs, &ckpt, &json);
        let out = interrupted_run(&mut pg, c, &src.dump, offset, kill);
        let err = stderr(&out);
        let recorded: serde_json::Value = read_checkpoint(&ckpt);
        if kill == Kill::Server {
            assert_eq!(out.status.code(), Some(4), "{what}: the interrupted run ends with 4 (retry)\n{err}");
            assert!(err.contains("once the server is back, run the same command again"), "{what}: {err}");
            assert_eq!(recorded["state"], "interrupted", "{what}: {recorded}");
        } else {
            // Nothing could record the end: the file holds the last point, as the run left it.
            assert_eq!(recorded["state"], "restoring", "{what}: {recorded}");
        }
        let point = recorded["position"]["offset"].as_u64().unwrap() as usize;
        assert!(point <= offset, "{what}: the point {point} is past what was fed ({offset})");

        if kill == Kill::Server {
            pg.restart();
        }
        let out = run_with_input(pgrestore(&pg, jobs, &ckpt, &json), &src.dump);
        let err = stderr(&out);
        assert_status(&out, 0);
        let s = summary(&json, &out);
        assert_eq!(s["errors"], 0, "{what}: {s}\n{err}");
        assert_eq!(s["resume"]["resumed_after_line"], recorded["position"]["line"], "{what}: {s}");
        assert_eq!(s["resume"]["skipped_bytes"].as_u64(), Some(point as u64), "{what}: {s}");
        // The resume skips what was done before the cut: at least up to this.
        let text = String::from_utf8_lossy(&src.dump);
        let done_before = match cut {
            Cut::Globals => text.find("CREATE ROLE app").unwrap(),
            Cut::InsideCopy => text.find("\\connect shop").unwrap(),
            Cut::IndexBuilds => text.find("COPY s.orders ").unwrap(),
            Cut::BetweenDatabases => text.find("CREATE DATABASE archive").unwrap(),
            Cut::InsideTransaction => text.find("COPY s.orders ").unwrap(),
        };
        assert!(point > done_before, "{what}: resumed from {point} only\n{err}");
        if let Cut::InsideTransaction = cut {
            // Never a point inside the block: it runs again from its BEGIN.
            let begin = text.find("\nBEGIN;\n").unwrap() + 1;
            assert!(point <= begin, "{what}: the point {point} is inside the block at {begin}\n{err}");
        }
        assert_eq!(table_sums(&pg), src.sums, "{what}: data differ from an uninterrupted restore\n{err}");
        assert_eq!(schema(&pg), src.schema, "{what}: schema differs from an uninterrupted restore\n{err}");
        let done: serde_json::Value = read_checkpoint(&ckpt);
        assert_eq!(done["state"], "complete", "{what}: {done}");

        // Complete: a rerun does nothing, and says so.
        let out = run_with_input(pgrestore(&pg, jobs, &ckpt, &json), &src.dump);
        assert_status(&out, 0);
        assert!(stderr(&out).contains("complete already"), "{what}: {}", stderr(&out));
        assert_eq!(summary(&json, &out)["status"], "already_complete");
    }
}

const EVERY_CUT: [Cut; 5] =
    [Cut::Globals, Cut::InsideCopy, Cut::IndexBuilds, Cut::BetweenDatabases, Cut::InsideTransaction];

#[test]
fn killed_server_one_session_resumes_to_the_same_cluster() {
    let mut cases: Vec<(Cut, Kill)> = EVERY_CUT.iter().map(|&c| (c, Kill::Server)).collect();
    cases.push((Cut::IndexBuilds, Kill::Client));
    kill_and_resume(&source(), 1, &cases);
}

#[test]
fn killed_server_jobs_2_resumes_to_the_same_cluster() {
    let mut cases: Vec<(Cut, Kill)> = EVERY_CUT.iter().map(|&c| (c, Kill::Server)).collect();
    cases.push((Cut::InsideCopy, Kill::Client));
    kill_and_resume(&source(), 2, &cases);
}

#[test]
fn a_checkpoint_of_another_script_or_cluster_is_refused_with_nothing_run() {
    let pg = durable_cluster();
    let dir = tempfile::tempdir().unwrap();
    let (ckpt, json) = (dir.path().join("c"), dir.path().join("s.json"));
    let first = b"CREATE TABLE one (a int);\nCREATE TABLE two (a int);\n".to_vec();
    let out = run_with_input(pgrestore(&pg, 1, &ckpt, &json), &first);
    assert_status(&out, 0);

    // Another script: refused before anything is connected to or run.
    let other = b"CREATE TABLE three (a int);\n".to_vec();
    let out = run_with_input(pgrestore(&pg, 1, &ckpt, &json), &other);
    // 1, not a retry status: the same command is refused again.
    assert_status(&out, 1);
    assert!(stderr(&out).contains("was written for another script"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("connection"), "no restore summary for a refusal: {}", stderr(&out));
    assert_eq!(summary(&json, &out)["status"], "failed");
    assert_eq!(pg.psql("postgres", "SELECT count(*) FROM pg_class WHERE relname = 'three'"), "0");

    // A script that begins alike but differs before the point (a later backup of the same cluster).
    let mut c: serde_json::Value = read_checkpoint(&ckpt);
    c["state"] = "interrupted".into();
    c["position"]["prefix_sha256"] = "00".repeat(32).into();
    write_checkpoint(&ckpt, &c);
    let out = run_with_input(pgrestore(&pg, 1, &ckpt, &json), &first);
    assert_status(&out, 1);
    assert!(stderr(&out).contains("this is not the script"), "{}", stderr(&out));
    assert_eq!(summary(&json, &out)["status"], "failed");

    // Another cluster: refused too (the refusal above left FILE as it was).
    let mut fresh: serde_json::Value = read_checkpoint(&ckpt);
    fresh["system_identifier"] = "1234".into();
    write_checkpoint(&ckpt, &fresh);
    let out = run_with_input(pgrestore(&pg, 1, &ckpt, &json), &first);
    assert_status(&out, 1);
    assert!(stderr(&out).contains("was written for another cluster"), "{}", stderr(&out));

    // Not a checkpoint at all.
    std::fs::write(&ckpt, b"hello").unwrap();
    let out = run_with_input(pgrestore(&pg, 1, &ckpt, &json), &first);
    assert_status(&out, 1);
    assert!(stderr(&out).contains("is not a checkpoint"), "{}", stderr(&out));
    assert_eq!(summary(&json, &out)["status"], "failed");
}

/// A statement in flight when the restore died, whose effect is there: a note, not an error. Simulated by a
/// checkpoint recorded one statement earlier than the truth (as after a crash of the client's machine).
#[test]
fn an_in_flight_statement_that_had_run_counts_as_done() {
    let pg = durable_cluster();
    let dir = tempfile::tempdir().unwrap();
    let (ckpt, json) = (dir.path().join("c"), dir.path().join("s.json"));
    let script = b"CREATE TABLE t (a int);\nCOPY t FROM stdin;\n1\n2\n\\.\nCREATE INDEX t_a ON t (a);\nCREATE TABLE u (b int);\n".to_vec();
    // Run the first two lines' worth and record the checkpoint they leave.
    let head = b"CREATE TABLE t (a int);\n".to_vec();
    let out = run_with_input(pgrestore(&pg, 1, &ckpt, &json), &head);
    assert_status(&out, 0);
    let mut c: serde_json::Value = read_checkpoint(&ckpt);
    // As if the restore of the whole script had died after CREATE INDEX ran but before its point was written.
    pg.psql("postgres", "INSERT INTO t VALUES (1), (2); CREATE INDEX t_a ON t (a);");
    c["state"] = "interrupted".into();
    c["interrupted_at_line"] = 6.into();
    c["script"] = serde_json::to_value(Identity::of(&script)).unwrap();
    write_checkpoint(&ckpt, &c);
    let out = run_with_input(pgrestore(&pg, 1, &ckpt, &json), &script);
    // The COPY was in flight and its table holds rows: it stops rather than load them twice.
    assert_status(&out, 3);
    assert!(stderr(&out).contains("loading it again would duplicate them"), "{}", stderr(&out));
    assert_eq!(pg.psql("postgres", "SELECT count(*) FROM t"), "2");
    // Emptied, as the message says: the rerun loads it, and the index that exists is a note.
    pg.psql("postgres", "TRUNCATE t");
    let out = run_with_input(pgrestore(&pg, 1, &ckpt, &json), &script);
    assert_status(&out, 0);
    let err = stderr(&out);
    assert!(err.contains("counted as done"), "{err}");
    let s = summary(&json, &out);
    assert_eq!((s["errors"].as_u64(), s["resume"]["in_flight_done"].as_u64()), (Some(0), Some(1)), "{s}");
    assert_eq!(pg.psql("postgres", "SELECT count(*) FROM t"), "2");
    assert_eq!(pg.psql("postgres", "SELECT count(*) FROM pg_class WHERE relname = 'u'"), "1");
}

/// A crash of the machine running a9s-pgrestore may lose its last points (synced after each COPY and \connect,
/// at least every second): resumed from an older point with the end unrecorded, every statement up to the first
/// COPY may have run, and what they created counts as done.
#[test]
fn after_a_crash_statements_up_to_the_first_copy_may_have_run() {
    let pg = durable_cluster();
    let dir = tempfile::tempdir().unwrap();
    let (ckpt, json) = (dir.path().join("c"), dir.path().join("s.json"));
    let script = b"CREATE TABLE a (x int);\nCREATE TABLE b (x int);\nCOMMENT ON TABLE b IS 'b';\n\
CREATE INDEX b_x ON b (x);\nCOPY b FROM stdin;\n1\n\\.\nCREATE TABLE c (x int);\n"
        .to_vec();
    let out = run_with_input(pgrestore(&pg, 1, &ckpt, &json), b"CREATE TABLE a (x int);\n");
    assert_status(&out, 0);
    // The lost points: b, its comment and its index were made.
    pg.psql("postgres", "CREATE TABLE b (x int); COMMENT ON TABLE b IS 'b'; CREATE INDEX b_x ON b (x);");
    let mut c = read_checkpoint(&ckpt);
    c["state"] = "restoring".into();
    c["exit_code"] = serde_json::Value::Null;
    c["script"] = serde_json::to_value(Identity::of(&script)).unwrap();
    write_checkpoint(&ckpt, &c);
    let out = run_with_input(pgrestore(&pg, 1, &ckpt, &json), &script);
    assert_status(&out, 0);
    let s = summary(&json, &out);
    assert_eq!((s["errors"].as_u64(), s["resume"]["in_flight_done"].as_u64()), (Some(0), Some(2)), "{s}");
    assert_eq!(pg.psql("postgres", "SELECT count(*) FROM b"), "1");
    assert_eq!(pg.psql("postgres", "SELECT count(*) FROM pg_class WHERE relname = 'c'"), "1");
}

/// Ctrl-C (SIGINT) or SIGTERM in the middle of a long statement: the statement is cancelled on the server (the
/// restore does not wait for it), the summary says how far the restore got, the command that resumes comes
/// last, and the status is 130 or 143, as a shell reports a signal. The checkpoint's missing folders are made
/// (0700), and the same command then resumes and completes.
#[test]
fn sigint_and_sigterm_end_with_a_summary_and_the_command_that_resumes() {
    use std::os::unix::fs::PermissionsExt;
    let pg = durable_cluster();
    let dir = tempfile::tempdir().unwrap();
    for (sig, name, code) in [(libc::SIGINT, "SIGINT", 130), (libc::SIGTERM, "SIGTERM", 143)] {
        let ckpt = dir.path().join(format!("made/by/{name}/restore.checkpoint"));
        let json = dir.path().join(format!("{name}.json"));
        let script =
            format!("CREATE TABLE before_{sig} (i int);\nSELECT pg_sleep(8);\nCREATE TABLE after_{sig} (i int);\n");
        let mut c = pgrestore(&pg, 1, &ckpt, &json);
        let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
        let sleeping =
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(8)%' AND state = 'active'";
        let t0 = std::time::Instant::now();
        while pg.psql("postgres", sleeping) == "0" {
            assert!(t0.elapsed().as_secs() < 30, "the restore did not reach pg_sleep");
            std::thread::sleep(Duration::from_millis(50));
        }
        let signalled = std::time::Instant::now();
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
        let out = child.wait_with_output().unwrap();
        assert!(
            signalled.elapsed() < Duration::from_secs(5),
            "the statement was not cancelled: {:?}",
            signalled.elapsed()
        );
        assert_status(&out, code);
        assert!(out.stdout.is_empty());
        let err = stderr(&out);
        assert!(err.contains(&format!("a9s-pgrestore: {name} received at line 2")), "{err}");
        assert!(err.contains(&format!("interrupted ({name}): incomplete")), "the summary: {err}");
        assert!(!err.contains("canceling statement"), "the cancel is not an error of the script: {err}");
        let last = err.lines().last().unwrap_or("");
        assert!(
            last.starts_with("a9s-pgrestore: to resume, feed the same backup again from its start (the same pipe) into: a9s-pgrestore ")
                && last.contains(&format!("--checkpoint {}", ckpt.display())),
            "{err}"
        );
        assert_eq!(summary(&json, &out)["status"], "interrupted");
        assert_eq!(pg.psql("postgres", &format!("SELECT count(*) FROM pg_class WHERE relname = 'after_{sig}'")), "0");
        let mode = std::fs::metadata(ckpt.parent().unwrap()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "the folder the checkpoint needed");
        if sig == libc::SIGINT {
            // The same command resumes after the committed CREATE TABLE and completes.
            let out = run_with_input(pgrestore(&pg, 1, &ckpt, &json), script.as_bytes());
            assert_status(&out, 0);
            assert!(stderr(&out).contains("resumed after line 1"), "{}", stderr(&out));
            assert_eq!(
                pg.psql("postgres", &format!("SELECT count(*) FROM pg_class WHERE relname = 'after_{sig}'")),
                "1"
            );
        }
    }
}

/// A checkpoint FILE that cannot be opened: one line naming it, the error and what to do; status 1 (running
/// again fails again), before anything is run.
#[test]
fn a_checkpoint_that_cannot_be_opened_says_what_to_do() {
    let pg = durable_cluster();
    let dir = tempfile::tempdir().unwrap();
    let not_a_folder = dir.path().join("file");
    std::fs::write(&not_a_folder, b"x").unwrap();
    let ckpt = not_a_folder.join("restore.checkpoint");
    let json = dir.path().join("s.json");
    let out = run_with_input(pgrestore(&pg, 1, &ckpt, &json), b"CREATE TABLE never (i int);\n");
    assert_status(&out, 1);
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with(&format!("a9s-pgrestore: cannot open --checkpoint {}: ", ckpt.display())), "{err}");
    assert!(err.contains("give a FILE in a folder the user running a9s-pgrestore"), "{err}");
    assert_eq!(pg.psql("postgres", "SELECT count(*) FROM pg_class WHERE relname = 'never'"), "0");
}

/// With --jobs, Ctrl-C cancels what the other sessions run too: a COPY spread over them (here slowed by a
/// CHECK constraint; a trigger would keep the COPY on one session) is rolled back on all of them at once, and
/// the restore ends with 130 without waiting for it.
#[test]
fn sigint_cancels_the_jobs_sessions_too() {
    let pg = durable_cluster();
    let dir = tempfile::tempdir().unwrap();
    let (ckpt, json) = (dir.path().join("c"), dir.path().join("s.json"));
    let mut script = String::from(
        "CREATE FUNCTION slow_ok(int) RETURNS bool LANGUAGE plpgsql AS $$BEGIN PERFORM pg_sleep(1); RETURN true; END$$;\n\
         CREATE TABLE slow (i int CHECK (slow_ok(i)), pad text);\n\
         COPY slow (i, pad) FROM stdin;\n",
    );
    for i in 0..5000 {
        script += &format!("{i}\t{}\n", "x".repeat(25));
    }
    script += "\\.\n";
    let mut c = pgrestore(&pg, 2, &ckpt, &json);
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(script.as_bytes());
    });
    let copying = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY slow%' AND state = 'active'";
    let t0 = std::time::Instant::now();
    // At least one worker's COPY: a worker whose first chunk sits in its socket's buffer may take the next
    // chunk too before the other worker asks, so both are not always busy at once.
    while pg.psql("postgres", copying) == "0" {
        assert!(
            t0.elapsed().as_secs() < 30,
            "the --jobs sessions did not start their COPY: {}",
            pg.psql(
                "postgres",
                "SELECT string_agg(coalesce(state, '-') || ':' || left(query, 60), ' | ') FROM pg_stat_activity"
            )
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let signalled = std::time::Instant::now();
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(signalled.elapsed() < Duration::from_secs(5), "the COPY was not cancelled: {:?}", signalled.elapsed());
    assert_status(&out, 130);
    let err = stderr(&out);
    assert!(!err.contains("canceling statement"), "the cancel is not an error of the script: {err}");
    assert!(err.lines().last().unwrap_or("").contains("to resume"), "{err}");
    assert_eq!(pg.psql("postgres", "SELECT count(*) FROM slow"), "0");
}
