//! The runner's logic without a server: a scripted session ([`Fake`]) stands in for PostgreSQL behind the
//! [`Conn`] seam, records what the runner sends, and answers as a server would. What it shows: what is sent and
//! in what order, what counts as an error, a stop or a lost connection, and what is never sent after a stop.
//! The same behaviours against the real server and psql are in tests/tests/pgrestore_*.rs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use a9s_core::pg::error::SqlError;
use a9s_core::pg::{ConnArgs, Env, Session, Target};

use super::conn::{Conn, CopySink};
use super::meta::meta_text;
use super::*;

/// What the scripted server saw, and how it answers.
#[derive(Default)]
struct Server {
    /// Everything sent, in order: SQL as sent; `connect DB`; `data: …` for COPY data; `end COPY`.
    sent: Vec<String>,
    /// Answers by the first rule whose text the statement contains; no rule: success.
    rules: Vec<(&'static str, SqlError)>,
    /// `SELECT now() <> statement_timestamp()` answers this (inside a transaction block).
    in_block: bool,
}

#[derive(Clone, Default)]
struct Fake {
    server: Arc<Mutex<Server>>,
    params: HashMap<&'static str, &'static str>,
    closed: bool,
}

impl Fake {
    fn new() -> Fake {
        let mut params = HashMap::new();
        params.insert("standard_conforming_strings", "on");
        params.insert("server_encoding", "UTF8");
        params.insert("client_encoding", "UTF8");
        Fake { params, ..Fake::default() }
    }

    fn rule(self, contains: &'static str, error: SqlError) -> Fake {
        self.server().rules.push((contains, error));
        self
    }

    fn answer(&mut self, sql: &str) -> std::result::Result<(), SqlError> {
        if self.closed {
            return Err(SqlError::broken("connection closed"));
        }
        self.server().sent.push(sql.to_string());
        let rule = self.server().rules.iter().find(|(c, _)| sql.contains(c)).map(|(_, e)| e.clone());
        if let Some(e) = rule {
            self.closed = e.broken || e.server.as_ref().is_some_and(|s| s.severity == "FATAL");
            return Err(e);
        }
        // The settings the runner follows from the server's reports.
        if sql.contains("standard_conforming_strings = off") {
            self.params.insert("standard_conforming_strings", "off");
        }
        if sql.contains("BEGIN") {
            self.server().in_block = true;
        }
        if sql.contains("COMMIT") {
            self.server().in_block = false;
        }
        Ok(())
    }

    fn server(&self) -> std::sync::MutexGuard<'_, Server> {
        self.server.lock().expect("scripted server")
    }

    fn connector(&self) -> Connector {
        let me = self.clone();
        Arc::new(move |target, _notices| {
            let mut fake = me.clone();
            fake.closed = false;
            fake.server().sent.push(format!("connect {}", target.dbname));
            Ok(Box::new(fake) as Box<dyn Conn + Send>)
        })
    }

    fn sent(&self) -> Vec<String> {
        self.server().sent.clone()
    }
}

impl Conn for Fake {
    fn parameter(&self, name: &str) -> Option<&str> {
        self.params.get(name).copied()
    }
    fn is_closed(&self) -> bool {
        self.closed
    }
    fn batch_execute(&mut self, sql: &str) -> std::result::Result<(), SqlError> {
        self.answer(sql)
    }
    fn query_column(&mut self, sql: &str) -> std::result::Result<Vec<Option<String>>, SqlError> {
        if sql.contains("statement_timestamp") {
            let inside = self.server().in_block;
            return Ok(vec![Some(if inside { "t" } else { "f" }.into())]);
        }
        self.answer(sql)?;
        Ok(Vec::new())
    }
    fn copy_in(&mut self, sql: &str) -> std::result::Result<Box<dyn CopySink + '_>, SqlError> {
        self.answer(sql)?;
        Ok(Box::new(FakeCopy { fake: self, data: Vec::new() }))
    }
    fn copy_out(&mut self, sql: &str) -> std::result::Result<u64, SqlError> {
        self.answer(sql).map(|()| 0)
    }
    fn session(&mut self) -> Option<&mut Session> {
        None
    }
    fn cancel_token(&self) -> Option<tokio_postgres::CancelToken> {
        None
    }
}

struct FakeCopy<'a> {
    fake: &'a mut Fake,
    data: Vec<u8>,
}

impl CopySink for FakeCopy<'_> {
    fn write_all(&mut self, data: &[u8]) -> std::result::Result<(), SqlError> {
        self.data.extend_from_slice(data);
        Ok(())
    }
    fn finish(self: Box<Self>) -> std::result::Result<u64, SqlError> {
        let text = String::from_utf8_lossy(&self.data).into_owned();
        let mut server = self.fake.server();
        let mut rows = 0;
        for l in text.lines() {
            server.sent.push(format!("data: {l}"));
            rows += u64::from(l != "\\.");
        }
        server.sent.push("end COPY".into());
        Ok(rows)
    }
}

fn target() -> Target {
    fn no_var(_: &str) -> Option<String> {
        None
    }
    let env = Env { var: &no_var, os_user: "restorer".into(), home: None };
    let args = ConnArgs { dbname: Some("restoredb".into()), ..ConnArgs::default() };
    Target::resolve_with(&args, PROG, &env).expect("target")
}

fn run_with(fake: &Fake, opts: &Options, script: &str) -> Summary {
    let runner = Runner::new(target(), opts).with_connector(fake.connector());
    runner.run(&mut script.as_bytes(), &mut NoHooks)
}

fn run(fake: &Fake, script: &str) -> Summary {
    run_with(fake, &Options { quiet: true, ..Options::default() }, script)
}

fn error(code: &str, message: &str) -> SqlError {
    SqlError::server("ERROR", code, message)
}

#[test]
fn statements_go_one_by_one_as_split() {
    let fake = Fake::new();
    let s = run(&fake, "CREATE TABLE t (a int); INSERT INTO t\n  VALUES (1);\n-- a comment\nSELECT ';';\n");
    assert_eq!(s.exit_code, exit::OK);
    assert_eq!(s.statements, 3);
    assert_eq!(
        fake.sent(),
        ["connect restoredb", "CREATE TABLE t (a int);", "INSERT INTO t\n  VALUES (1);", "SELECT ';';"]
    );
}

#[test]
fn a_failed_statement_is_counted_and_the_script_goes_on() {
    let fake = Fake::new().rule("bad", error("42601", "syntax error at or near \"bad\""));
    let s = run(&fake, "SELECT 1;\nbad;\nSELECT 2;\n");
    assert_eq!(s.exit_code, exit::ERRORS);
    assert_eq!((s.statements, s.statements_failed, s.errors), (2, 1, 1));
    assert_eq!(s.error_list[0].line, 2);
    assert_eq!(s.error_list[0].sqlstate.as_deref(), Some("42601"));
    assert!(fake.sent().contains(&"SELECT 2;".to_string()));
}

#[test]
fn on_error_stop_sends_nothing_after_the_error() {
    let fake = Fake::new().rule("bad", error("42601", "syntax error"));
    let opts = Options { quiet: true, on_error_stop: true, ..Options::default() };
    let s = run_with(&fake, &opts, "bad;\nSELECT 2;\n");
    assert_eq!(s.exit_code, exit::STOPPED);
    assert_eq!(fake.sent().last().map(String::as_str), Some("bad;"));
}

#[test]
fn an_existing_role_is_expected_not_an_error() {
    let fake = Fake::new().rule("CREATE ROLE postgres", error("42710", "role \"postgres\" already exists"));
    let s = run(&fake, "CREATE ROLE postgres;\nALTER ROLE postgres WITH SUPERUSER;\n");
    assert_eq!(s.exit_code, exit::OK);
    assert_eq!((s.expected_errors, s.errors), (1, 0));
}

#[test]
fn a_lost_session_stops_with_the_connection_status_and_nothing_more_is_sent() {
    for lost in [
        SqlError::server("FATAL", "57P01", "terminating connection due to administrator command"),
        SqlError::server("FATAL", "57P05", "terminating connection due to idle-session timeout"),
        SqlError::broken("connection closed"),
    ] {
        let fake = Fake::new().rule("SELECT 2", lost);
        let s = run(&fake, "SELECT 1;\nSELECT 2;\nSELECT 3;\n");
        assert_eq!(s.exit_code, exit::CONNECTION);
        assert_eq!(s.status, "connection_lost");
        assert_eq!(fake.sent().last().map(String::as_str), Some("SELECT 2;"));
    }
}

#[test]
fn a_copy_the_server_starts_inside_a_query_stops_the_restore() {
    // The line was split with the setting on: the INSERT sent runs on to the COPY's `;`. The server, with the
    // setting off, finds the COPY inside, and tokio-postgres says so in these words.
    let fake = Fake::new().rule("copy t from stdin", SqlError::client("unexpected message from server"));
    let script = "SET standard_conforming_strings = off; INSERT INTO t SELECT 7, 'a\\'b';\n\
                  SELECT 2; -- a quote ' here\ncopy t from stdin;\n8\tx\n\\.\nDROP TABLE important;\n";
    let s = run(&fake, script);
    assert_eq!(s.exit_code, exit::STOPPED);
    assert_eq!(s.error_list[0].line, 1, "{:?} {:?}", s.error_list, fake.sent());
    assert!(fake.sent().last().is_some_and(|q| q.ends_with("copy t from stdin;")), "{:?}", fake.sent());
    assert!(s.error_list[0].message.contains("started a COPY in the middle of this query"));
    assert!(!fake.sent().iter().any(|q| q.contains("DROP")), "{:?}", fake.sent());
}

#[test]
fn copy_data_is_streamed_not_run() {
    let fake = Fake::new();
    let s = run(&fake, "COPY t (a, b) FROM stdin;\n1\tDROP TABLE x;\n2\tb\n\\.\nSELECT 1;\n");
    assert_eq!(s.exit_code, exit::OK);
    assert_eq!((s.copy_commands, s.rows_copied), (1, 2));
    assert_eq!(
        fake.sent(),
        [
            "connect restoredb",
            "COPY t (a, b) FROM stdin;",
            "data: 1\tDROP TABLE x;",
            "data: 2\tb",
            "data: \\.",
            "end COPY",
            "SELECT 1;"
        ]
    );
}

#[test]
fn a_refused_copy_stops_before_its_data_is_read_as_sql() {
    let fake = Fake::new().rule("COPY missing", error("42P01", "relation \"missing\" does not exist"));
    let s = run(&fake, "COPY missing FROM stdin;\n1\tx\n\\.\nDROP TABLE important;\n");
    assert_eq!(s.exit_code, exit::STOPPED);
    assert_eq!(fake.sent(), ["connect restoredb", "COPY missing FROM stdin;"]);
}

#[test]
fn standard_conforming_strings_follows_the_session_from_the_next_line() {
    // With the setting off, 'C:\' does not end the string: the DROP is inside it, one statement.
    let fake = Fake::new();
    let s = run(&fake, "SET standard_conforming_strings = off;\nINSERT INTO t VALUES ('C:\\'); DROP TABLE x; --');\n");
    assert_eq!(s.exit_code, exit::OK);
    assert_eq!(s.statements, 2);
    assert_eq!(fake.sent()[2], "INSERT INTO t VALUES ('C:\\'); DROP TABLE x; --');");
}

#[test]
fn an_unsupported_meta_command_stops_before_it_runs() {
    let fake = Fake::new();
    let s = run(&fake, "SELECT 1;\n\\! rm -rf /\nSELECT 2;\n");
    assert_eq!(s.exit_code, exit::STOPPED);
    assert_eq!(s.error_list[0].line, 2);
    assert_eq!(fake.sent(), ["connect restoredb", "SELECT 1;"]);
}

#[test]
fn connect_closes_the_old_session_and_opens_the_named_database() {
    let fake = Fake::new();
    let s = run(&fake, "SELECT 1;\n\\connect other\nSELECT 2;\n");
    assert_eq!(s.exit_code, exit::OK);
    assert_eq!(s.databases, ["restoredb", "other"]);
    assert_eq!(fake.sent(), ["connect restoredb", "SELECT 1;", "connect other", "SELECT 2;"]);
}

#[test]
fn a_psql_variable_stops_before_the_statement() {
    let fake = Fake::new();
    let s = run(&fake, "SELECT 1;\nDROP DATABASE :DBNAME;\n");
    assert_eq!(s.exit_code, exit::STOPPED);
    assert_eq!(fake.sent(), ["connect restoredb", "SELECT 1;"]);
}

#[test]
fn meta_display() {
    assert_eq!(meta_text("!", &["rm".into(), "-rf".into(), "/".into()]), "\\! rm -rf /");
}

/// Random scripts of numbered pieces, run over the scripted session: whatever the mix, a COPY's data is never
/// sent as SQL, nothing after a stop is sent, and the exit status says what happened.
mod random_scripts {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone, Copy)]
    enum Piece {
        Ok,
        Fails,
        Copy,
        /// A COPY the server refuses before its data: a stop.
        RefusedCopy,
        /// A meta-command a restore never runs: a stop.
        Shell,
        Connect,
        /// Two statements on one line, the second failing.
        TwoOnALine,
    }

    fn piece() -> impl Strategy<Value = Piece> {
        prop_oneof![
            4 => Just(Piece::Ok),
            2 => Just(Piece::Fails),
            2 => Just(Piece::Copy),
            1 => Just(Piece::RefusedCopy),
            1 => Just(Piece::Shell),
            1 => Just(Piece::Connect),
            1 => Just(Piece::TwoOnALine),
        ]
    }

    fn text(i: usize, p: Piece) -> String {
        match p {
            Piece::Ok => format!("SELECT {i};\n"),
            Piece::Fails => format!("bad {i};\n"),
            Piece::Copy => format!("COPY t{i} FROM stdin;\n{i}\tDATA; SELECT {i};\n{i}\tDATA\n\\.\n"),
            Piece::RefusedCopy => format!("COPY missing{i} FROM stdin;\n{i}\tDATA; DROP TABLE t;\n\\.\n"),
            Piece::Shell => format!("\\! echo {i}\n"),
            Piece::Connect => format!("\\connect db{i}\n"),
            Piece::TwoOnALine => format!("SELECT {i}; bad {i};\n"),
        }
    }

    /// The piece a sent entry came from (`connect db7`, `SELECT 7;`, `bad 7;`, `COPY t7 …`).
    fn piece_of(sent: &str) -> Option<usize> {
        let digits: String =
            sent.chars().skip_while(|c| !c.is_ascii_digit()).take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn data_never_runs_and_nothing_runs_after_a_stop(pieces in proptest::collection::vec(piece(), 0..24)) {
            let script: String = pieces.iter().enumerate().map(|(i, p)| text(i, *p)).collect();
            let fake = Fake::new()
                .rule("bad", error("42601", "syntax error"))
                .rule("COPY missing", error("42P01", "relation does not exist"));
            let s = run(&fake, &script);
            let sent = fake.sent();
            for q in &sent {
                prop_assert!(q.starts_with("data: ") || !q.contains("DATA"), "data run as SQL: {q:?}\n{script}");
            }
            let stop = pieces.iter().position(|p| matches!(p, Piece::RefusedCopy | Piece::Shell));
            if let Some(at) = stop {
                prop_assert_eq!(s.exit_code, exit::STOPPED);
                for q in sent.iter().filter(|q| !q.starts_with("data: ")) {
                    prop_assert!(piece_of(q).is_none_or(|i| i <= at), "sent after the stop at piece {}: {:?}", at, q);
                }
            } else {
                let failing = pieces.iter().any(|p| matches!(p, Piece::Fails | Piece::TwoOnALine));
                prop_assert_eq!(s.exit_code, if failing { exit::ERRORS } else { exit::OK });
                let copies = pieces.iter().filter(|p| matches!(p, Piece::Copy)).count() as u64;
                prop_assert_eq!((s.copy_commands, s.rows_copied), (copies, 2 * copies));
                let connects = pieces.iter().filter(|p| matches!(p, Piece::Connect)).count();
                prop_assert_eq!(s.databases.len(), 1 + connects);
            }
        }
    }
}

#[test]
fn a_nul_byte_stops_the_restore_before_its_line() {
    // In SQL text, in a COPY row (the COPY is abandoned: nothing of it loaded), in the data of a failed COPY.
    for (script, line, column, sent) in [
        ("SELECT 1;\nSELECT 'a\0b';\nSELECT 2;\n", 2, 10, "SELECT 1;"),
        ("SELECT 1; -- c\0x\nSELECT 2;\n", 1, 15, "connect restoredb"),
        // The COPY is named: none of it ran.
        ("COPY t FROM stdin;\n1\tok\n2\tb\0d\n\\.\nSELECT 2;\n", 1, 4, "COPY t FROM stdin;"),
    ] {
        let fake = Fake::new();
        let s = run(&fake, script);
        assert_eq!((s.exit_code, s.status.as_str()), (exit::STOPPED, "stopped"), "{script:?}");
        assert_eq!(s.error_list[0].line, line, "{script:?}");
        let m = &s.error_list[0].message;
        let at = if script.starts_with("COPY") { "script line 3: " } else { "" };
        assert!(m.starts_with(&format!("{at}a NUL byte (column {column})")), "{m}");
        assert!(m.contains("psql would cut the line there"), "{m}");
        assert_eq!(fake.sent().last().map(String::as_str), Some(sent), "{script:?}");
        assert!(!fake.sent().iter().any(|q| q == "end COPY" || q == "SELECT 2;"), "{:?}", fake.sent());
    }
    let fake = Fake::new();
    // The COPY fails at a byte WIN1252 does not define; its data is skipped up to the NUL.
    let opts = Options { quiet: true, client_encoding: Some(Encoding::Win1252), ..Options::default() };
    let script = b"COPY t FROM stdin;\n2\t\x81\n3\tx\0\n\\.\nSELECT 2;\n";
    let s = Runner::new(target(), &opts).with_connector(fake.connector()).run(&mut &script[..], &mut NoHooks);
    assert_eq!(s.exit_code, exit::STOPPED);
    assert_eq!(s.error_list.iter().map(|e| e.line).collect::<Vec<_>>(), [1, 3]);
    assert!(s.error_list[1].message.ends_with("the data of the failed COPY is not skipped further"));
    assert!(!fake.sent().iter().any(|q| q == "SELECT 2;"), "{:?}", fake.sent());
}

#[test]
fn a_row_longer_than_a_piece_streams_whole_and_only_a_whole_line_ends_the_data() {
    let fake = Fake::new().rule("bad", error("42601", "syntax error"));
    // A row whose second piece is `\.` and its newline: the continuation of a row, never the end marker.
    let big = "x".repeat(crate::lines::PIECE);
    let huge = "y".repeat(3 * crate::lines::PIECE + 5);
    let script = format!("COPY t FROM stdin;\n{big}\\.\n{huge}\n2\tb\n\\.\nbad;\n");
    let s = run(&fake, &script);
    assert_eq!(s.exit_code, exit::ERRORS);
    assert_eq!(s.rows_copied, 3);
    assert_eq!(s.error_list[0].line, 6, "lines are counted once per line, not per piece");
    let sent = fake.sent();
    assert_eq!(sent[2], format!("data: {big}\\."));
    assert_eq!(sent[3], format!("data: {huge}"));
    assert_eq!(sent[4..7], ["data: 2\tb", "data: \\.", "end COPY"]);
}
