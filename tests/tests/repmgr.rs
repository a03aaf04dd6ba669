//! a9s-repmgr-reset and a9s-pgrestore's cluster steps against a real PostgreSQL 15 with Debian's
//! postgresql-15-repmgr: repmgr's real tables filled with node and event rows, real physical replication slots
//! (one kept active by a running pg_receivewal), a server in recovery, unprivileged roles, sessions that hold
//! locks or just stay connected.

use std::process::Output;

use a9s_tests::pg::{Cluster, Options, PG_ENV};
use a9s_tests::pg_extra::{logged_statements, make_standby, wait_until, Session, WalReceiver};
use a9s_tests::{assert_status, cmd, stderr};

use a9s_core::pg::{ConnArgs, Session as PgSession, Target};
use a9s_pgrestore::steps;

/// repmgr's state as a primary and two standbys leave it: nodes, events, monitoring history, a voting term.
const REPMGR_ROWS: &str = "
CREATE EXTENSION repmgr;
INSERT INTO repmgr.nodes (node_id, upstream_node_id, active, node_name, type, priority, conninfo, repluser, slot_name,
                          config_file) VALUES
  (1, NULL, true, 'pg-0', 'primary', 100, 'host=10.0.1.10 user=repmgr dbname=repmgr_cluster', 'repmgr',
   'repmgr_slot_1', '/var/vcap/jobs/postgresql-ha/config/repmgr.conf'),
  (2, 1, true, 'pg-1', 'standby', 100, 'host=10.0.1.11 user=repmgr dbname=repmgr_cluster', 'repmgr',
   'repmgr_slot_2', '/var/vcap/jobs/postgresql-ha/config/repmgr.conf'),
  (3, 1, true, 'pg-2', 'standby', 100, 'host=10.0.1.12 user=repmgr dbname=repmgr_cluster', 'repmgr',
   'repmgr_slot_3', '/var/vcap/jobs/postgresql-ha/config/repmgr.conf');
INSERT INTO repmgr.events (node_id, event, successful, details)
  SELECT i % 3 + 1, CASE WHEN i % 2 = 0 THEN 'standby_register' ELSE 'repmgrd_start' END, true, 'event ' || i
  FROM generate_series(1, 25) i;
INSERT INTO repmgr.monitoring_history (primary_node_id, standby_node_id, last_monitor_time, last_wal_primary_location,
                                       replication_lag, apply_lag)
  SELECT 1, 2, now(), '0/3000060', 0, 0 FROM generate_series(1, 4);
INSERT INTO repmgr.voting_term (term) VALUES (1);
CREATE SCHEMA app;
CREATE TABLE app.orders (id int PRIMARY KEY, customer text);
INSERT INTO app.orders SELECT i, 'customer ' || i FROM generate_series(1, 10) i;
CREATE TABLE public.notes (note text);
INSERT INTO public.notes VALUES ('keep me'), ('and me');
";

/// A cluster with database repmgr_cluster set up as on an a9s primary.
fn repmgr_cluster(replication: bool) -> Cluster {
    let pg = Cluster::start_with(Options { replication, ..Default::default() });
    pg.psql("postgres", "CREATE DATABASE repmgr_cluster");
    pg.psql("repmgr_cluster", REPMGR_ROWS);
    pg
}

/// Row counts of repmgr's tables and of the other schemas' tables.
fn counts(pg: &Cluster) -> String {
    pg.psql(
        "repmgr_cluster",
        "SELECT 'nodes=' || (SELECT count(*) FROM repmgr.nodes) || ' events=' || (SELECT count(*) FROM repmgr.events) \
         || ' monitoring_history=' || (SELECT count(*) FROM repmgr.monitoring_history) \
         || ' voting_term=' || (SELECT count(*) FROM repmgr.voting_term) \
         || ' app.orders=' || (SELECT count(*) FROM app.orders) || ' public.notes=' || (SELECT count(*) FROM public.notes)",
    )
}

const FULL: &str = "nodes=3 events=25 monitoring_history=4 voting_term=1 app.orders=10 public.notes=2";

/// Rows left in all tables of schema repmgr, whatever tables this repmgr version has.
fn repmgr_rows_left(pg: &Cluster) -> i64 {
    pg.psql(
        "repmgr_cluster",
        "SELECT coalesce(sum((xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', \
         schemaname, tablename), false, true, '')))[1]::text::bigint), 0) FROM pg_tables WHERE schemaname = 'repmgr'",
    )
    .parse()
    .expect("a number")
}

/// `slot:active` for every replication slot.
fn slots(pg: &Cluster) -> String {
    pg.psql(
        "postgres",
        "SELECT string_agg(slot_name || ':' || active, ',' ORDER BY slot_name) FROM pg_replication_slots",
    )
}

/// Runs a9s-repmgr-reset against the cluster's Unix socket as `postgres`, then `args`.
fn reset(pg: &Cluster, args: &[&str]) -> Output {
    reset_as(pg, "postgres", args)
}

/// Runs a9s-repmgr-reset against the cluster's Unix socket as `user`.
fn reset_as(pg: &Cluster, user: &str, args: &[&str]) -> Output {
    let mut c = cmd("a9s-repmgr-reset");
    for v in PG_ENV {
        c.env_remove(v);
    }
    c.arg("-h").arg(pg.socket_dir()).args(["-p", &pg.port.to_string(), "-U", user]);
    c.args(args).output().expect("run a9s-repmgr-reset")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn connect(pg: &Cluster, db: &str) -> PgSession {
    session(&pg.conninfo(db))
}

/// A session as the programs open one (a9s_core's libpq-style target).
fn session(conninfo: &str) -> PgSession {
    let args = ConnArgs { dbname: Some(conninfo.to_string()), ..Default::default() };
    Target::resolve(&args, "a9s-tests").expect("target").connect().expect("connect")
}

#[test]
fn empties_repmgr_tables_and_drops_only_inactive_slots() {
    let pg = repmgr_cluster(true);
    pg.psql(
        "postgres",
        "SELECT pg_create_physical_replication_slot(s, true) FROM unnest(ARRAY['repmgr_slot_1', 'repmgr_slot_2', \
         'repmgr_slot_3']) s",
    );
    let mut receiver = WalReceiver::start(&pg, "repmgr_slot_1");
    assert_eq!(counts(&pg), FULL);
    assert_eq!(slots(&pg), "repmgr_slot_1:true,repmgr_slot_2:false,repmgr_slot_3:false");

    // Dry run: everything listed, nothing changed.
    let o = reset(&pg, &["--drop-inactive-slots", "--dry-run"]);
    assert_status(&o, 0);
    let out = stdout(&o);
    for line in [
        "would empty repmgr.events (25 rows)\n",
        "would empty repmgr.monitoring_history (4 rows)\n",
        "would empty repmgr.nodes (3 rows)\n",
        "would empty repmgr.voting_term (1 row)\n",
        "kept active physical slot repmgr_slot_1\n",
        "would drop inactive physical slot repmgr_slot_2\n",
        "would drop inactive physical slot repmgr_slot_3\n",
        "would run: TRUNCATE ONLY repmgr.events, repmgr.monitoring_history, repmgr.nodes, repmgr.voting_term\n",
        "would run: SELECT pg_drop_replication_slot('repmgr_slot_2')\n",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    assert!(!out.contains("repmgr_slot_1')"), "{out}");
    assert!(stderr(&o).contains("dry run: nothing was changed"), "{}", stderr(&o));
    assert_eq!(counts(&pg), FULL);
    assert_eq!(slots(&pg), "repmgr_slot_1:true,repmgr_slot_2:false,repmgr_slot_3:false");

    // The same as JSON.
    let o = reset(&pg, &["--drop-inactive-slots", "--dry-run", "--json"]);
    assert_status(&o, 0);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(j["database"], "repmgr_cluster");
    assert_eq!(j["dry_run"], true);
    assert_eq!(j["truncated"], false);
    let tables: Vec<(String, i64)> = j["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["table"].as_str().unwrap().to_string(), t["rows"].as_i64().unwrap()))
        .collect();
    assert!(
        tables.contains(&("repmgr.events".into(), 25)) && tables.contains(&("repmgr.nodes".into(), 3)),
        "{tables:?}"
    );
    let actions: Vec<(String, String)> = j["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["slot_name"].as_str().unwrap().to_string(), s["action"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        actions,
        [("repmgr_slot_1", "kept (active)"), ("repmgr_slot_2", "would drop"), ("repmgr_slot_3", "would drop")]
            .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert_eq!(counts(&pg), FULL);

    // The real thing.
    let o = reset(&pg, &["--drop-inactive-slots"]);
    assert_status(&o, 0);
    let out = stdout(&o);
    for line in [
        "emptied repmgr.events (25 rows)\n",
        "emptied repmgr.monitoring_history (4 rows)\n",
        "emptied repmgr.nodes (3 rows)\n",
        "emptied repmgr.voting_term (1 row)\n",
        "kept active physical slot repmgr_slot_1\n",
        "dropped inactive physical slot repmgr_slot_2\n",
        "dropped inactive physical slot repmgr_slot_3\n",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    assert!(!out.contains("would"), "{out}");
    assert_eq!(repmgr_rows_left(&pg), 0);
    assert_eq!(counts(&pg), "nodes=0 events=0 monitoring_history=0 voting_term=0 app.orders=10 public.notes=2");
    assert_eq!(slots(&pg), "repmgr_slot_1:true");
    assert!(receiver.is_running(), "pg_receivewal must keep streaming");

    // Again: nothing left to empty or drop, still fine.
    let o = reset(&pg, &["--drop-inactive-slots"]);
    assert_status(&o, 0);
    assert!(stdout(&o).contains("emptied repmgr.nodes (0 rows)\n"), "{}", stdout(&o));

    // The race: a slot that is active by the time it is dropped is left alone, and one that is gone is skipped.
    let mut c = connect(&pg, "repmgr_cluster");
    assert_eq!(
        a9s_repmgr_reset::drop_slot(&mut c, "repmgr_slot_1").unwrap(),
        a9s_repmgr_reset::SlotAction::SkippedBecameActive
    );
    assert_eq!(a9s_repmgr_reset::drop_slot(&mut c, "no_such_slot").unwrap(), a9s_repmgr_reset::SlotAction::SkippedGone);
    assert_eq!(slots(&pg), "repmgr_slot_1:true");
    assert!(receiver.is_running());

    // --slots-only leaves the tables alone.
    pg.psql("repmgr_cluster", "INSERT INTO repmgr.voting_term VALUES (2)");
    pg.psql("postgres", "SELECT pg_create_physical_replication_slot('repmgr_slot_4')");
    let o = reset(&pg, &["--slots-only"]);
    assert_status(&o, 0);
    assert_eq!(stdout(&o), "kept active physical slot repmgr_slot_1\ndropped inactive physical slot repmgr_slot_4\n");
    assert_eq!(slots(&pg), "repmgr_slot_1:true");
    assert_eq!(pg.psql("repmgr_cluster", "SELECT count(*) FROM repmgr.voting_term"), "1");
}

#[test]
fn dry_run_prints_every_statement_the_real_run_sends() {
    let pg = Cluster::start_with(Options {
        replication: true,
        extra_conf: vec!["log_statement = 'all'".into(), "log_line_prefix = '%a|'".into()],
        ..Default::default()
    });
    pg.psql("postgres", "CREATE DATABASE repmgr_cluster");
    pg.psql("repmgr_cluster", REPMGR_ROWS);
    for args in [&["--drop-inactive-slots", "--lock-timeout", "7"][..], &["--slots-only"][..], &[][..]] {
        pg.psql("postgres", "SELECT pg_create_physical_replication_slot(s) FROM unnest(ARRAY['old_1', 'old_2']) s");
        let dry_args: Vec<&str> = args.iter().copied().chain(["--dry-run"]).collect();
        let at = pg.log().len();
        let o = reset(&pg, &dry_args);
        assert_status(&o, 0);
        let dry_log = logged_statements(&pg, "a9s-repmgr-reset", at);
        let would_run: Vec<String> =
            stdout(&o).lines().filter_map(|l| l.strip_prefix("would run: ")).map(str::to_string).collect();
        let at = pg.log().len();
        assert_status(&reset(&pg, args), 0);
        let real_log = logged_statements(&pg, "a9s-repmgr-reset", at);

        // The real run: the dry run's checks (up to its read-only count), then exactly what it printed.
        let checks = dry_log.iter().take_while(|s| *s != "BEGIN READ ONLY").cloned().collect::<Vec<_>>();
        assert!(checks.iter().all(|s| s.starts_with("SELECT ")), "{checks:#?}");
        assert_eq!(real_log, [checks, would_run.clone()].concat(), "{args:?}\ndry run printed {would_run:#?}");
        let drops = ["SELECT pg_drop_replication_slot('old_1')", "SELECT pg_drop_replication_slot('old_2')"];
        if args.is_empty() {
            assert!(would_run.iter().all(|s| !s.contains("pg_drop_replication_slot")), "{would_run:#?}");
            pg.psql("postgres", "SELECT pg_drop_replication_slot(s) FROM unnest(ARRAY['old_1', 'old_2']) s");
        } else {
            assert_eq!(would_run[would_run.len() - 2..], drops, "{would_run:#?}");
        }
        if args.contains(&"--slots-only") {
            assert_eq!(would_run, drops);
        } else {
            let tables = "repmgr.events, repmgr.monitoring_history, repmgr.nodes, repmgr.voting_term";
            let timeout = if args.contains(&"7") { "7000" } else { "30000" };
            assert_eq!(
                would_run[..3],
                [
                    "BEGIN".to_string(),
                    format!("SET LOCAL lock_timeout = {timeout}"),
                    format!("LOCK TABLE ONLY {tables} IN ACCESS EXCLUSIVE MODE"),
                ]
            );
            assert!(would_run.contains(&format!("TRUNCATE ONLY {tables}")), "{would_run:#?}");
            assert!(would_run.contains(&"SELECT count(*) FROM ONLY repmgr.nodes".to_string()), "{would_run:#?}");
            assert_eq!(would_run.iter().filter(|s| *s == "COMMIT").count(), 1, "{would_run:#?}");
        }
    }
    assert_eq!(repmgr_rows_left(&pg), 0);
    assert_eq!(slots(&pg), "");
}

#[test]
fn refusals_change_nothing() {
    let pg = repmgr_cluster(true);
    pg.psql("postgres", "SELECT pg_create_physical_replication_slot('old_standby')");

    // A database without schema repmgr.
    let o = reset(&pg, &["-d", "postgres"]);
    assert_status(&o, 1);
    assert!(stderr(&o).contains("database postgres has no schema repmgr"), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    // ... is fine for --slots-only, which needs no repmgr schema (dry run: the slot stays).
    let o = reset(&pg, &["-d", "postgres", "--slots-only", "--dry-run"]);
    assert_status(&o, 0);
    assert_eq!(
        stdout(&o),
        "would drop inactive physical slot old_standby\nwould run: SELECT pg_drop_replication_slot('old_standby')\n"
    );

    // A role without privileges, step by step.
    pg.psql("postgres", "CREATE ROLE app LOGIN");
    let o = reset_as(&pg, "app", &[]);
    assert_status(&o, 1);
    assert!(stderr(&o).contains("role app may not use schema repmgr"), "{}", stderr(&o));
    pg.psql(
        "repmgr_cluster",
        "GRANT USAGE ON SCHEMA repmgr TO app; GRANT SELECT ON ALL TABLES IN SCHEMA repmgr TO app",
    );
    let o = reset_as(&pg, "app", &[]);
    assert_status(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("role app lacks privileges to empty repmgr's tables"), "{err}");
    assert!(err.contains("TRUNCATE on repmgr.events") && err.contains("TRUNCATE on repmgr.nodes"), "{err}");
    assert_eq!(counts(&pg), FULL);
    pg.psql("repmgr_cluster", "GRANT TRUNCATE ON ALL TABLES IN SCHEMA repmgr TO app");
    // Enough for the tables, not for the slots.
    let o = reset_as(&pg, "app", &["--drop-inactive-slots"]);
    assert_status(&o, 1);
    assert!(stderr(&o).contains("role app may not drop replication slots"), "{}", stderr(&o));
    assert_eq!(counts(&pg), FULL);
    assert_eq!(slots(&pg), "old_standby:false");
    let o = reset_as(&pg, "app", &["--dry-run"]);
    assert_status(&o, 0);
    assert!(stdout(&o).contains("would empty repmgr.nodes (3 rows)\n"), "{}", stdout(&o));

    // A table outside schema repmgr referencing one of repmgr's: TRUNCATE … CASCADE would have emptied it.
    pg.psql(
        "repmgr_cluster",
        "CREATE TABLE public.node_notes (node_id int REFERENCES repmgr.nodes (node_id), note text); \
         INSERT INTO public.node_notes VALUES (1, 'primary')",
    );
    let o = reset(&pg, &[]);
    assert_status(&o, 1);
    assert!(
        stderr(&o).contains("node_notes (constraint node_notes_node_id_fkey) references repmgr.nodes"),
        "{}",
        stderr(&o)
    );
    assert_eq!(counts(&pg), FULL);
    assert_eq!(pg.psql("repmgr_cluster", "SELECT count(*) FROM public.node_notes"), "1");
    pg.psql("repmgr_cluster", "DROP TABLE public.node_notes");

    // repmgrd still running (a session holding a lock on a repmgr table): give up after --lock-timeout.
    let holder = Session::open(
        &pg,
        "repmgr_cluster",
        "postgres",
        "fake_repmgrd",
        "BEGIN; LOCK TABLE repmgr.events IN ACCESS SHARE MODE;",
    );
    wait_until(30, "the lock", || {
        pg.psql("repmgr_cluster", "SELECT count(*) FROM pg_locks WHERE relation = 'repmgr.events'::regclass") != "0"
    });
    let o = reset(&pg, &["--lock-timeout", "1", "--drop-inactive-slots"]);
    assert_status(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("warning: 1 other session(s) connected to this database"), "{err}");
    assert!(err.contains("fake_repmgrd"), "{err}");
    assert!(err.contains("could not lock repmgr's tables within 1 s"), "{err}");
    assert_eq!(counts(&pg), FULL);
    assert_eq!(slots(&pg), "old_standby:false", "nothing at all is done when the tables cannot be emptied");
    drop(holder);

    // A usage error is 2; a server that cannot be reached is 4, the retry status.
    assert_status(&reset(&pg, &["--lock-timeout", "soon"]), 2);
    let mut c = cmd("a9s-repmgr-reset");
    for v in PG_ENV {
        c.env_remove(v);
    }
    let o = c.args(["-h", "/nonexistent-socket-dir", "-U", "postgres"]).output().unwrap();
    assert_status(&o, 4);
    assert!(stderr(&o).contains("cannot connect to host=/nonexistent-socket-dir"), "{}", stderr(&o));
    assert!(stderr(&o).contains("dbname=repmgr_cluster"), "{}", stderr(&o));

    // After all that, a real run as the (now privileged) app role works.
    let o = reset_as(&pg, "app", &[]);
    assert_status(&o, 0);
    assert_eq!(repmgr_rows_left(&pg), 0);
}

#[test]
fn refuses_a_standby() {
    let mut pg = repmgr_cluster(false);
    make_standby(&mut pg);
    for args in [&[][..], &["--dry-run", "--drop-inactive-slots"][..]] {
        let o = reset(&pg, args);
        assert_status(&o, 1);
        assert!(
            stderr(&o).contains("the server is in recovery (a standby): run a9s-repmgr-reset on the primary"),
            "{}",
            stderr(&o)
        );
        assert!(o.stdout.is_empty());
    }
    assert_eq!(counts(&pg), FULL);
    // The pgrestore steps refuse it too.
    let mut c = connect(&pg, "postgres");
    let e = steps::terminate_connections(&mut c, false).unwrap_err();
    assert!(e.message.contains("run a9s-pgrestore on the primary"), "{e}");
    let e = steps::rename_database(&mut c, "repmgr_cluster", "x", false).unwrap_err();
    assert!(e.message.contains("in recovery"), "{e}");
}

/// Names of the sessions (application_name) connected now, other than psql probes.
fn sessions(pg: &Cluster) -> String {
    pg.psql(
        "postgres",
        "SELECT coalesce(string_agg(application_name || '@' || datname, ',' ORDER BY application_name), '') \
         FROM pg_stat_activity WHERE application_name LIKE 'holder%'",
    )
}

/// The statement by which a9s-pgrestore's steps terminate the sessions `filter` selects.
fn terminate_on(filter: &str) -> String {
    format!(
        "SELECT pid, coalesce(usename::text, ''), coalesce(datname::text, ''), coalesce(application_name, ''), \
         coalesce(backend_type, ''), pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() \
         AND {filter} ORDER BY pid"
    )
}

#[test]
fn pgrestore_steps_terminate_and_rename() {
    let pg = Cluster::start();
    pg.psql("postgres", "CREATE DATABASE d_old");
    pg.psql("postgres", "CREATE DATABASE d_new");
    pg.psql("d_old", "CREATE TABLE restored (id int); INSERT INTO restored SELECT generate_series(1, 42)");
    pg.psql("d_new", "CREATE TABLE empty_deployment (id int)");
    let _a = Session::open(&pg, "d_old", "postgres", "holder_old", "SELECT 1;");
    let _b = Session::open(&pg, "d_new", "postgres", "holder_new", "SELECT 1;");
    let _c = Session::open(&pg, "postgres", "postgres", "holder_app", "SELECT 1;");
    assert_eq!(sessions(&pg), "holder_app@postgres,holder_new@d_new,holder_old@d_old");

    let mut c = connect(&pg, "postgres");

    // Dry runs change nothing.
    let r = steps::terminate_connections(&mut c, true).unwrap();
    assert!(r.dry_run && r.terminated >= 3, "{r:?}");
    assert!(
        r.lines.iter().any(|l| l.starts_with("would terminate pid ") && l.contains("application holder_old")),
        "{r:?}"
    );
    let r = steps::rename_database(&mut c, "d_old", "d_new", true).unwrap();
    assert_eq!(r.terminated, 2, "{r:?}");
    assert!(r.lines.contains(&"would drop database d_new".to_string()), "{r:?}");
    assert!(r.lines.contains(&"would rename database d_old to d_new".to_string()), "{r:?}");
    let on_both = |old: &str, new: &str| terminate_on(&format!("datname IN ('{old}', '{new}')"));
    assert_eq!(
        r.sql,
        [
            on_both("d_old", "d_new"),
            "DROP DATABASE \"d_new\"".into(),
            on_both("d_old", "d_new"),
            "ALTER DATABASE \"d_old\" RENAME TO \"d_new\"".into()
        ]
    );
    // A dry run before the restore: OLD does not exist yet, which is only noted.
    let r = steps::rename_database(&mut c, "d_later", "d_new", true).unwrap();
    assert!(r.lines[0].contains("database d_later does not exist now"), "{r:?}");
    assert_eq!(sessions(&pg), "holder_app@postgres,holder_new@d_new,holder_old@d_old");

    // Refusals.
    let e = steps::rename_database(&mut c, "d_missing", "d_new", false).unwrap_err();
    assert!(e.message.contains("database d_missing does not exist"), "{e}");
    let mut on_old = connect(&pg, "d_old");
    let e = steps::rename_database(&mut on_old, "d_old", "d_new", false).unwrap_err();
    assert!(e.message.contains("the session is on database d_old") && e.message.contains("connect to postgres"), "{e}");
    drop(on_old);
    pg.psql("postgres", "CREATE ROLE deployer LOGIN CREATEDB");
    let mut as_deployer = session(&format!("host=127.0.0.1 port={} user=deployer dbname=postgres", pg.port));
    let e = steps::rename_database(&mut as_deployer, "d_old", "d_new", false).unwrap_err();
    assert!(e.message.contains("role deployer does not own database d_old"), "{e}");
    for dry_run in [true, false] {
        let e = steps::terminate_connections(&mut as_deployer, dry_run).unwrap_err();
        assert!(e.message.contains("role deployer may not see and terminate other roles' sessions"), "{e}");
    }
    drop(as_deployer);
    // A role that passes the check but may not terminate a superuser's session: the server refuses the
    // terminating statement, and its transaction is rolled back.
    pg.psql("postgres", "CREATE ROLE signaller LOGIN IN ROLE pg_signal_backend, pg_read_all_stats");
    let mut as_signaller = session(&format!("host=127.0.0.1 port={} user=signaller dbname=postgres", pg.port));
    let e = steps::terminate_connections(&mut as_signaller, false).unwrap_err();
    assert!(
        e.message.starts_with("terminating the sessions: ")
            && e.message.ends_with("connect as a superuser (-U postgres)"),
        "{e}"
    );
    as_signaller.simple_query("SELECT 1").expect("no transaction left open");
    drop(as_signaller);
    wait_until(10, "the deployer and signaller sessions to end", || {
        pg.psql("postgres", "SELECT count(*) FROM pg_stat_activity WHERE usename IN ('deployer', 'signaller')") == "0"
    });
    assert_eq!(sessions(&pg), "holder_app@postgres,holder_new@d_new,holder_old@d_old");
    assert_eq!(
        pg.psql(
            "postgres",
            "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database WHERE datname LIKE 'd\\_%'"
        ),
        "d_new,d_old"
    );

    // The rename: sessions on both ended, NEW dropped, OLD renamed; others untouched.
    let r = steps::rename_database(&mut c, "d_old", "d_new", false).unwrap();
    assert!(!r.dry_run && r.terminated == 2, "{r:?}");
    assert_eq!(r.lines.last().unwrap(), "renamed database d_old to d_new");
    assert!(r.lines.contains(&"dropped database d_new".to_string()), "{r:?}");
    assert_eq!(
        pg.psql(
            "postgres",
            "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database WHERE datname LIKE 'd\\_%'"
        ),
        "d_new"
    );
    assert_eq!(pg.psql("d_new", "SELECT count(*) FROM restored"), "42");
    assert_eq!(pg.psql("d_new", "SELECT count(*) FROM pg_tables WHERE tablename = 'empty_deployment'"), "0");
    assert_eq!(sessions(&pg), "holder_app@postgres");

    // Rename when NEW does not exist: just the rename.
    let r = steps::rename_database(&mut c, "d_new", "d_final", false).unwrap();
    assert_eq!(r.sql, [on_both("d_new", "d_final"), "ALTER DATABASE \"d_new\" RENAME TO \"d_final\"".into()]);

    // Terminate: every other client session goes, ours stays.
    let r = steps::terminate_connections(&mut c, false).unwrap();
    assert!(r.terminated >= 1 && r.lines.iter().any(|l| l.contains("application holder_app")), "{r:?}");
    assert_eq!(sessions(&pg), "");
    c.simple_query("SELECT 1").expect("our own session survives");

    // The flags as a9s-pgrestore takes them, through ClusterSteps.
    let s = steps::ClusterSteps {
        terminate_connections: true,
        rename_database: Some(steps::parse_rename("d_final=d_app").unwrap()),
        dry_run: false,
    };
    assert!(s.before_restore(&mut c).unwrap().iter().all(|r| r.step == "terminate-connections"));
    let mut m = connect(&pg, steps::maintenance_database(s.rename_database.as_ref().unwrap()));
    let r = s.after_restore(&mut m).unwrap();
    assert_eq!(r[0].lines.last().unwrap(), "renamed database d_final to d_app");
    assert_eq!(pg.psql("d_app", "SELECT count(*) FROM restored"), "42");

    // As a9s-pgrestore's hook calls it after the script: with the restore's connection target.
    let args = a9s_core::pg::ConnArgs {
        dbname: Some("d_app".into()),
        host: Some(pg.socket_dir().display().to_string()),
        port: Some(pg.port.to_string()),
        username: Some("postgres".into()),
    };
    let target = a9s_core::pg::Target::resolve(&args, "a9s-pgrestore").unwrap();
    let s = steps::ClusterSteps { rename_database: Some(steps::parse_rename("d_app=d_done").unwrap()), ..s };
    let r = s.after_restore_on(&target, 1).unwrap();
    assert!(r[0].lines[0].starts_with("database d_app was not renamed to d_done: the restore had errors"), "{r:?}");
    assert_eq!(pg.psql("d_app", "SELECT count(*) FROM restored"), "42");
    let r = s.after_restore_on(&target, 0).unwrap();
    assert_eq!(r[0].lines.last().unwrap(), "renamed database d_app to d_done");
    assert_eq!(pg.psql("d_done", "SELECT count(*) FROM restored"), "42");
}

/// a9s-pgrestore against the cluster's Unix socket as postgres, on database postgres, then `args`.
fn pgrestore(pg: &Cluster, args: &[&str]) -> Output {
    let o = a9s_tests::pg::pgrestore_cmd().args(pg.socket_args()).args(["-d", "postgres"]).args(args).output();
    o.expect("run a9s-pgrestore")
}

#[test]
fn pgrestore_steps_dry_run_prints_every_statement_the_real_run_sends() {
    let pg = Cluster::start_with(Options {
        extra_conf: vec!["log_statement = 'all'".into(), "log_line_prefix = '%a|'".into()],
        ..Default::default()
    });
    pg.psql("postgres", "CREATE DATABASE d_old");
    pg.psql("postgres", "CREATE DATABASE d_new");
    pg.psql("d_old", "CREATE TABLE restored (id int); INSERT INTO restored SELECT generate_series(1, 42)");
    let kinds = "backend_type IN ('client backend', 'walsender')";
    let cases: [(&[&str], Vec<String>); 2] = [
        (
            &["--terminate-connections"],
            vec![
                "BEGIN".into(),
                terminate_on(kinds),
                format!(
                    "DO $$BEGIN LOOP PERFORM pg_stat_clear_snapshot(); EXIT WHEN NOT EXISTS (SELECT FROM \
                     pg_stat_activity WHERE pid <> pg_backend_pid() AND {kinds} AND backend_start < now()); IF \
                     clock_timestamp() > now() + interval '10 s' THEN RAISE EXCEPTION 'sessions still running 10 s \
                     after being terminated: check them in pg_stat_activity'; END IF; PERFORM pg_sleep(0.05); END \
                     LOOP; END$$"
                ),
                "COMMIT".into(),
            ],
        ),
        (
            &["--rename-database", "d_old=d_new"],
            vec![
                terminate_on("datname IN ('d_old', 'd_new')"),
                "DROP DATABASE \"d_new\"".into(),
                terminate_on("datname IN ('d_old', 'd_new')"),
                "ALTER DATABASE \"d_old\" RENAME TO \"d_new\"".into(),
            ],
        ),
    ];
    for (args, expected) in cases {
        // Live sessions for the real run to terminate: on OLD, on NEW and elsewhere.
        let _a = Session::open(&pg, "d_old", "postgres", "holder_old", "SELECT 1;");
        let _b = Session::open(&pg, "d_new", "postgres", "holder_new", "SELECT 1;");
        let _c = Session::open(&pg, "postgres", "postgres", "holder_app", "SELECT 1;");
        let at = pg.log().len();
        let o = pgrestore(&pg, &[&["--dry-run"], args].concat());
        assert_status(&o, 0);
        let checks = logged_statements(&pg, "a9s-pgrestore", at);
        let would_run: Vec<String> = stderr(&o)
            .lines()
            .filter_map(|l| l.strip_prefix("a9s-pgrestore: would run: "))
            .map(str::to_string)
            .collect();
        assert_eq!(would_run, expected, "{}", stderr(&o));
        assert_eq!(sessions(&pg), "holder_app@postgres,holder_new@d_new,holder_old@d_old");

        let at = pg.log().len();
        let o = pgrestore(&pg, &[args, &["/dev/null"]].concat());
        assert_status(&o, 0);
        // The real run: the dry run's read-only checks, then exactly what it printed.
        assert!(checks.iter().all(|s| s.starts_with("SELECT ")), "{checks:#?}");
        assert_eq!(logged_statements(&pg, "a9s-pgrestore", at), [checks, would_run].concat(), "{args:?}");
        let e = stderr(&o);
        if args[0] == "--terminate-connections" {
            // Gone once the step returns: it waited for them.
            assert_eq!(sessions(&pg), "", "{e}");
            assert!(e.contains("application holder_app)") && e.contains("terminated 3 session(s)"), "{e}");
        } else {
            assert_eq!(sessions(&pg), "holder_app@postgres", "{e}");
            assert!(e.contains("application holder_old)") && e.contains("renamed database d_old to d_new"), "{e}");
        }
    }
    assert_eq!(pg.psql("d_new", "SELECT count(*) FROM restored"), "42");
}
