//! The pre-flight check and the progress rules, end to end.
//!
//! - `a9s-decrypt --verify` and `a9s-pgrestore --list` catch a damaged tail, a wrong secret and a cut-off script
//!   in a backup made by the real pg_dumpall, gzip, openssl and split, with no server reachable at all.
//! - Progress: under a pseudo-terminal (`script`), exactly one program of a pipe draws its line; with stderr a
//!   file, timestamped lines; `-q` and `--no-progress` silence them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use a9s_tests::fixtures::{backup_id, encrypt, split_into_parts, text_bytes, Enc};
use a9s_tests::pg::Cluster;
use a9s_tests::{assert_status, bin, sh, stderr};

const SECRET: &str = "NYHD8MVmA55HEqoaYHpQaxfwEMcQ1wkI";

/// A directory holding the key file and whatever a test writes.
struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Dir {
        let d = Dir(tempfile::tempdir().unwrap());
        std::fs::write(d.path("key"), format!("{SECRET}\n")).unwrap();
        std::fs::write(d.path("wrong"), "not-the-secret\n").unwrap();
        d
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
    fn p(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

/// Runs `script` with bash -o pipefail, nothing reachable for libpq: a program that tried to connect would
/// fail, so success proves that no server was touched.
fn offline(script: &str) -> Output {
    let dir = bin("a9s-cat-parts").parent().unwrap().to_path_buf();
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
    Command::new("bash")
        .args(["-o", "pipefail", "-c", script])
        .env("PATH", path)
        .env("PGHOST", "/nonexistent")
        .env("PGPORT", "1")
        .env_remove("A9S_BACKUP_SECRET")
        .env_remove("A9S_PROGRESS_INTERVAL")
        .output()
        .unwrap()
}

fn sha256_hex(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().to_string()
}

/// A real pg_dumpall of a cluster with two databases, a quoted table name, COPY rows and a large object.
fn real_dump() -> Vec<u8> {
    let pg = Cluster::start();
    pg.psql(
        "postgres",
        "CREATE ROLE app LOGIN; CREATE DATABASE shop OWNER app ENCODING 'LATIN1' TEMPLATE template0 LOCALE 'C'",
    );
    pg.psql(
        "shop",
        "CREATE TABLE orders (id int, note text); INSERT INTO orders SELECT g, 'order ' || g FROM generate_series(1, 5000) g;
         CREATE TABLE \"Odd Table\" (x int); INSERT INTO \"Odd Table\" VALUES (1), (2), (3);
         SELECT lo_from_bytea(0, 'hello large object'::bytea);",
    );
    pg.pg_dumpall()
}

#[test]
fn verify_and_list_catch_every_bad_backup_without_a_server() {
    let d = Dir::new();
    let dump = real_dump();
    std::fs::write(d.path("dump.sql"), &dump).unwrap();
    let id = backup_id();
    let enc = encrypt(&dump, SECRET, Enc::default());
    let parts = split_into_parts(&enc, &d.path("good"), &id, 20_000, 0);
    assert!(parts.len() > 1);
    let good = format!("{}/{id}-*", d.p("good"));

    // A good backup: --verify prints what it checked, and the SHA-256 is that of the dump.
    let o = offline(&format!("a9s-cat-parts {good} | a9s-decrypt --pass file:{} --verify", d.p("key")));
    assert_status(&o, 0);
    assert!(o.stdout.is_empty(), "--verify wrote to stdout");
    let line = stderr(&o);
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(line.contains(&format!("backup intact: {} encrypted bytes", enc.len())), "{line}");
    assert!(line.contains(&format!("{} bytes of SQL", dump.len())), "{line}");
    assert!(line.contains(&format!("SHA-256 {}", sha256_hex(&d.path("dump.sql")))), "{line}");

    // The full pre-flight check: the listing of what the backup holds.
    let o = offline(&format!(
        "a9s-cat-parts {good} | a9s-decrypt --pass file:{} | a9s-pgrestore -d postgres --list",
        d.p("key")
    ));
    assert_status(&o, 0);
    let list = String::from_utf8_lossy(&o.stdout);
    assert!(list.starts_with("script: pg_dumpall, complete,"), "{list}");
    assert!(list.contains("roles (2): app, postgres"), "{list}");
    assert!(list.contains("database shop: encoding LATIN1, owner app, 2 tables, 5003 rows"), "{list}");
    assert!(list.contains("  table public.orders: 5000 rows,"), "{list}");
    assert!(list.contains("  table public.\"Odd Table\": 3 rows, 6 B"), "{list}");
    assert!(list.contains("1 large objects (18 B)"), "{list}");
    let o = offline(&format!("a9s-pgrestore --list --json {}", d.p("dump.sql")));
    assert_status(&o, 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["complete"], true);
    assert_eq!(v["totals"]["rows"], 5003);
    assert_eq!(v["totals"]["large_objects"], 1);
    let shop = v["databases"].as_array().unwrap().iter().find(|db| db["name"] == "shop").unwrap();
    assert_eq!(shop["owner"], "app");

    // A wrong secret: caught at the first block, nothing written.
    let o = offline(&format!("a9s-cat-parts {good} | a9s-decrypt --pass file:{} --verify", d.p("wrong")));
    assert_status(&o, 1);
    assert!(stderr(&o).contains("wrong secret"), "{}", stderr(&o));
    let o = offline(&format!("a9s-cat-parts {good} | a9s-decrypt --pass file:{} | a9s-pgrestore --list", d.p("wrong")));
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("wrong secret"), "{}", stderr(&o));

    // A damaged tail: the last part loses its last block, or has a byte changed near its end.
    for (name, damage) in [("short", 0usize), ("flipped", 1)] {
        let dir = d.path(name);
        let mut bytes = enc.clone();
        if damage == 0 {
            bytes.truncate(bytes.len() - 16);
        } else {
            let at = bytes.len() - 40;
            bytes[at] ^= 0x55;
        }
        split_into_parts(&bytes, &dir, &id, 20_000, 0);
        let all = format!("{}/{id}-*", dir.display());
        let o = offline(&format!("a9s-cat-parts {all} | a9s-decrypt --pass file:{} --verify", d.p("key")));
        assert_status(&o, 1);
        let e = stderr(&o);
        assert!(e.contains("truncated") || e.contains("corrupted"), "{name}: {e}");
        let o =
            offline(&format!("a9s-cat-parts {all} | a9s-decrypt --pass file:{} | a9s-pgrestore --list", d.p("key")));
        assert_ne!(o.status.code(), Some(0), "{name}: the listing pipe passed");
    }

    // A cut-off script, encrypted intact: --verify cannot know, --list does, wherever the cut falls.
    for frac in [0.3, 0.6, 0.99] {
        let cut = &dump[..(dump.len() as f64 * frac) as usize];
        let enc = encrypt(cut, SECRET, Enc::default());
        let p = d.path("cut.enc");
        std::fs::write(&p, &enc).unwrap();
        let o = offline(&format!("a9s-decrypt --pass file:{} --verify {}", d.p("key"), p.display()));
        assert_status(&o, 0);
        let o = offline(&format!("a9s-decrypt --pass file:{} {} | a9s-pgrestore --list", d.p("key"), p.display()));
        assert_status(&o, 1);
        let e = stderr(&o);
        assert!(e.contains("closing comment \"-- PostgreSQL database cluster dump complete\" is missing"), "{e}");
        assert!(String::from_utf8_lossy(&o.stdout).starts_with("script: pg_dumpall, INCOMPLETE"));
    }
}

#[test]
fn list_refuses_restore_options_and_a_terminal() {
    let o = offline("a9s-pgrestore --list --terminate-connections /dev/null");
    assert_status(&o, 2);
    let o = offline("a9s-pgrestore --json /dev/null");
    assert_status(&o, 2);
    // An empty script is no dump, and gets no listing: only the error.
    let o = offline("a9s-pgrestore --list /dev/null");
    assert_status(&o, 1);
    assert!(stderr(&o).contains("the input is empty"), "{}", stderr(&o));
    assert!(o.stdout.is_empty(), "{}", String::from_utf8_lossy(&o.stdout));
}

// ----- progress -----

/// A dump-like script of about `mb` MiB with one big COPY, complete, and its encrypted form.
fn big_backup(d: &Dir, mb: usize) -> (PathBuf, PathBuf) {
    let mut s = b"--\n-- PostgreSQL database cluster dump\n--\n\nCREATE ROLE app;\n\\connect postgres\n\
COPY public.big (id, name, n, at) FROM stdin;\n"
        .to_vec();
    let mut rows = text_bytes(mb << 20);
    while rows.last() != Some(&b'\n') {
        rows.pop();
    }
    s.extend_from_slice(&rows);
    s.extend_from_slice(b"\\.\n\n--\n-- PostgreSQL database cluster dump complete\n--\n\n");
    let sql = d.path("big.sql");
    std::fs::write(&sql, &s).unwrap();
    let enc = d.path("big.enc");
    std::fs::write(&enc, encrypt(&s, SECRET, Enc::default())).unwrap();
    (sql, enc)
}

/// Runs `cmd` under a pseudo-terminal (util-linux `script`): every program's stderr is a terminal; returns
/// what the terminal showed.
fn on_terminal(cmd: &str, env: &[(&str, &str)]) -> String {
    let dir = bin("a9s-cat-parts").parent().unwrap().to_path_buf();
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
    let o = Command::new("script")
        .args(["-qec", &format!("set -o pipefail; {cmd}"), "/dev/null"])
        .env("PATH", path)
        // script(1) runs the command with $SHELL; CI's root shell may be dash, which has no pipefail.
        .env("SHELL", "/bin/bash")
        .env_remove("A9S_PROGRESS_INTERVAL")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run script(1) from util-linux");
    assert_status(&o, 0);
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The programs that drew a progress line on the terminal.
fn drawers(screen: &str) -> Vec<&'static str> {
    ["a9s-cat-parts", "a9s-fetch", "a9s-decrypt", "a9s-pgrestore"]
        .into_iter()
        .filter(|p| screen.contains(&format!("\r\x1b[K{p}: ")))
        .collect()
}

#[test]
fn exactly_one_progress_line_on_a_terminal() {
    let d = Dir::new();
    let (_, enc) = big_backup(&d, 48);
    let parts = split_into_parts(&std::fs::read(&enc).unwrap(), &d.path("parts"), &backup_id(), 1 << 20, 0);
    assert!(parts.len() > 1);
    let glob = format!("{}/{}-*", d.p("parts"), backup_id());
    let key = d.p("key");
    let list = d.p("list.txt");

    // The pipe: only its last program draws.
    let pipe = format!("a9s-cat-parts {glob} | a9s-decrypt --pass file:{key} | a9s-pgrestore --list > {list}");
    let screen = on_terminal(&pipe, &[]);
    assert_eq!(drawers(&screen), ["a9s-pgrestore"], "{screen:?}");
    assert!(screen.contains("database postgres, COPY public.big"), "the line names the table: {screen:?}");
    assert!(std::fs::read_to_string(&list).unwrap().starts_with("script: pg_dumpall, complete"));

    // --progress makes a filter draw too (and shows that the test would see it); --no-progress silences.
    let screen = on_terminal(
        &format!("a9s-cat-parts {glob} | a9s-decrypt --progress --pass file:{key} | a9s-pgrestore --list > {list}"),
        &[],
    );
    assert_eq!(drawers(&screen), ["a9s-decrypt", "a9s-pgrestore"], "{screen:?}");
    let screen = on_terminal(
        &format!("a9s-cat-parts {glob} | a9s-decrypt --pass file:{key} | a9s-pgrestore --no-progress --list > {list}"),
        &[],
    );
    assert_eq!(drawers(&screen), Vec::<&str>::new(), "{screen:?}");

    // Writing a file (or only checking), a program is the last of its pipe and draws its own.
    let screen = on_terminal(&format!("a9s-decrypt --pass file:{key} -o {} {}", d.p("out.sql"), enc.display()), &[]);
    assert_eq!(drawers(&screen), ["a9s-decrypt"], "{screen:?}");
    let screen = on_terminal(&format!("a9s-cat-parts {glob} | a9s-decrypt --pass file:{key} --verify"), &[]);
    assert_eq!(drawers(&screen), ["a9s-decrypt"], "{screen:?}");
    let screen = on_terminal(&format!("a9s-cat-parts -o {} {glob}", d.p("joined")), &[]);
    assert_eq!(drawers(&screen), ["a9s-cat-parts"], "{screen:?}");
}

#[test]
fn a_log_shows_life_and_quiet_means_quiet() {
    let d = Dir::new();
    let (_, enc) = big_backup(&d, 24);
    let key = d.p("key");
    let log = d.path("log");
    // stderr of the whole pipe into a file, as `nohup … > restore.log 2>&1` does.
    let pipe = format!("a9s-decrypt --pass file:{key} {} | a9s-pgrestore --list > {}", enc.display(), d.p("list"));
    let o = sh(&format!("A9S_PROGRESS_INTERVAL=0.05 bash -o pipefail -c '{pipe}' 2> {}", log.display()));
    assert_status(&o, 0);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains('\r') && !text.contains('\x1b'), "terminal codes in a log: {text:?}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.iter().all(|l| a9s_tests::is_log_line(l, "a9s-pgrestore")),
        "only timestamped lines of the last program: {text}"
    );
    assert!(lines.iter().any(|l| l.ends_with("database postgres begins at line 6")), "{text}");
    assert!(lines.iter().any(|l| l.contains("table public.big read: ")), "the large table's end: {text}");
    let figures = lines.iter().filter(|l| l.contains("/s") && l.contains("COPY public.big")).count();
    assert!(figures >= 2, "progress lines at the interval: {text}");

    // -q: nothing but errors.
    let quiet = format!("a9s-decrypt --pass file:{key} {} | a9s-pgrestore -q --list > {}", enc.display(), d.p("list"));
    let o = sh(&format!("A9S_PROGRESS_INTERVAL=0.05 bash -o pipefail -c '{quiet}' 2> {}", log.display()));
    assert_status(&o, 0);
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "");
}

#[test]
fn fetch_to_a_directory_logs_each_finished_object() {
    let d = Dir::new();
    let (_, enc) = big_backup(&d, 4);
    let store = d.path("store");
    let parts = split_into_parts(&std::fs::read(&enc).unwrap(), &store, &backup_id(), 1 << 20, 0);
    std::fs::write(store.join(format!("{}.json", backup_id())), "{}").unwrap();
    let out = d.path("out");
    let o = Command::new(bin("a9s-fetch"))
        .arg(format!("{}/{}", store.display(), backup_id()))
        .arg("-o")
        .arg(&out)
        .env("A9S_PROGRESS_INTERVAL", "0.05")
        .output()
        .unwrap();
    assert_status(&o, 0);
    let e = stderr(&o);
    let done: Vec<&str> =
        e.lines().filter(|l| a9s_tests::is_log_line(l, "a9s-fetch") && l.contains(" complete, ")).collect();
    assert_eq!(done.len(), parts.len() + 1, "one line per part and the metadata: {e}");
    assert!(done.iter().any(|l| l.ends_with(&format!("{} of {} files", parts.len() + 1, parts.len() + 1))), "{e}");
    // With -o - its stdout is the pipe to a9s-decrypt: it stays quiet, also in a log.
    let o = sh(&format!(
        "A9S_PROGRESS_INTERVAL=0.05 a9s-fetch {}/{} -o - | a9s-decrypt --pass file:{} --verify",
        store.display(),
        backup_id(),
        d.p("key")
    ));
    assert_status(&o, 0);
    let e = stderr(&o);
    assert!(!e.contains("a9s-fetch"), "{e}");
    assert!(e.lines().any(|l| l.starts_with("a9s-decrypt: backup intact")), "{e}");
}
