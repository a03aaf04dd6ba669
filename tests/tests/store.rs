//! a9s-ls and a9s-fetch against real S3 and Azure APIs on loopback (moto's server, Azurite), with backups
//! made by the reference tools (gzip | openssl enc | split) and uploaded with the emulators' own client
//! libraries (boto3, azure-storage-blob), plus a fault-injecting proxy between a9s-fetch and moto.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use a9s_tests::azure::{Azurite, AZURE_ENV};
use a9s_tests::fixtures::{self, Enc, INSTANCE, MILLIS};
use a9s_tests::proxy::read_head;
use a9s_tests::s3::{Moto, AWS_ENV};
use a9s_tests::{assert_status, bin, stderr, store_cmd};

const SECRET: &str = "store-test-secret";
const U2: &str = "0c8a3d2e-5f1b-4e7a-9c3d-2b1a0f9e8d7c";
const BUCKET: &str = "a9s-backups";
const CONTAINER: &str = "a9s-backups";

/// One backup as uploaded: its id, its object names and bytes (parts in order, then metadata if any).
struct Made {
    id: String,
    payload: Vec<u8>,
    parts: Vec<(String, PathBuf)>,
    metadata: Option<(String, PathBuf)>,
}

impl Made {
    fn data(&self) -> Vec<u8> {
        self.parts.iter().flat_map(|(_, p)| std::fs::read(p).expect("read part")).collect()
    }
    fn objects(&self) -> Vec<(String, PathBuf)> {
        self.parts.iter().cloned().chain(self.metadata.clone()).collect()
    }
}

/// The backups of both instances, S3-shaped, under `root`.
struct World {
    _root: tempfile::TempDir,
    /// Instance 1: an old complete backup (parts from 1), the newest complete one (14 parts), and a newer one
    /// missing part 3.
    old: Made,
    big: Made,
    gap: Made,
    /// Instance 2: a complete backup and a newer one without metadata.
    other: Made,
    unfinished: Made,
    stray: (String, PathBuf),
}

fn make(root: &Path, id: String, len: usize, seed: u64, first: u64, metadata: bool, drop_index: Option<u64>) -> Made {
    let payload = fixtures::random_bytes(len, seed);
    let enc = fixtures::encrypt(&payload, SECRET, Enc::default());
    let dir = root.join(&id);
    let mut parts: Vec<(String, PathBuf)> = fixtures::split_into_parts(&enc, &dir, &id, 1024, first)
        .into_iter()
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    if let Some(ix) = drop_index {
        parts.retain(|(n, _)| !n.ends_with(&format!("-{ix}")));
    }
    let metadata = metadata.then(|| {
        let name = format!("{id}.json");
        let path = dir.join(&name);
        std::fs::write(&path, format!("{{\"backup_id\":\"{id}\",\"size\":{}}}", enc.len())).unwrap();
        (name, path)
    });
    Made { id, payload, parts, metadata }
}

fn world() -> World {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    let old = make(r, format!("{INSTANCE}-1500000000000"), 2500, 1, 1, true, None);
    let big = make(r, format!("{INSTANCE}-{MILLIS}"), 13_500, 2, 0, true, None);
    let gap = make(r, format!("{INSTANCE}-1600000000000"), 5000, 3, 0, true, Some(3));
    let other = make(r, format!("{U2}-1500000000001"), 1500, 4, 0, true, None);
    let unfinished = make(r, format!("{U2}-1550000000000"), 1500, 5, 0, false, None);
    let stray_path = r.join("README.txt");
    std::fs::write(&stray_path, "not a backup").unwrap();
    assert!(big.parts.len() > 10, "the big backup must have more than 10 parts, has {}", big.parts.len());
    World { _root: root, old, big, gap, other, unfinished, stray: ("README.txt".into(), stray_path) }
}

impl World {
    fn all(&self) -> Vec<&Made> {
        vec![&self.old, &self.big, &self.gap, &self.other, &self.unfinished]
    }
    fn s3_objects(&self) -> Vec<(String, PathBuf)> {
        let mut v: Vec<(String, PathBuf)> = self.all().iter().flat_map(|m| m.objects()).collect();
        v.push(self.stray.clone());
        v
    }
}

/// moto with the world uploaded.
fn s3_world() -> (Moto, World) {
    let moto = Moto::start();
    let w = world();
    moto.put(BUCKET, &w.s3_objects());
    (moto, w)
}

/// Runs one of our programs with exactly the given store environment.
fn run(prog: &str, args: &[&str], env: &[(String, String)]) -> Output {
    store_cmd(prog, args, env).output().expect("run program")
}

/// A bash pipeline with our programs on PATH and the given environment.
fn pipeline(script: &str, env: &[(String, String)]) -> Output {
    let dir = bin("a9s-fetch").parent().unwrap().to_path_buf();
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut c = Command::new("bash");
    c.args(["-o", "pipefail", "-c", script]).env("PATH", path).env("A9S_TEST_SECRET", SECRET).stdin(Stdio::null());
    for v in AWS_ENV.iter().chain(AZURE_ENV) {
        c.env_remove(v);
    }
    c.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    c.output().expect("run bash")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    stdout(o).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

/// Every file in `dir` (including hidden ones) with its bytes.
fn dir_contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect()
}

fn expected_dir(m: &Made) -> BTreeMap<String, Vec<u8>> {
    m.objects().into_iter().map(|(n, p)| (n, std::fs::read(p).unwrap())).collect()
}

#[test]
fn s3_listing_instances_backups_latest_and_json() {
    let (moto, w) = s3_world();
    let env = moto.env();

    // A bucket: the instance overview.
    let o = run("a9s-ls", &[&format!("s3://{BUCKET}")], &env);
    assert_status(&o, 0);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with(U2) && lines[1].starts_with(INSTANCE), "ordered by newest backup: {out}");
    assert!(lines[1].contains("3 backups (2 complete)"), "{out}");
    assert!(lines[1].contains(&format!("newest complete {}", w.big.id)), "{out}");
    assert!(lines[1].ends_with(&format!("s3://{BUCKET}/{INSTANCE}")), "{out}");
    assert!(lines[0].contains("2 backups (1 complete)"), "{out}");

    // A prefix that is not an instance id lists instances too.
    let o = run("a9s-ls", &[&format!("s3://{BUCKET}/{}", &INSTANCE[..4])], &env);
    assert_status(&o, 0);
    assert_eq!(stdout(&o).lines().count(), 1, "{}", stdout(&o));

    // --json overview.
    let o = run("a9s-ls", &["--json", &format!("s3://{BUCKET}")], &env);
    assert_status(&o, 0);
    let v = json_lines(&o);
    assert_eq!(v[1]["instance"], INSTANCE);
    assert_eq!(v[1]["backups"], 3);
    assert_eq!(v[1]["newest"], w.gap.id.as_str());
    assert_eq!(v[1]["newest_complete"], w.big.id.as_str());

    // One instance: one line per backup, oldest first, problems named.
    let o = run("a9s-ls", &[&format!("s3://{BUCKET}/{INSTANCE}")], &env);
    assert_status(&o, 0);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with(&format!("{}  2017-07-14T02:40:00.000Z", w.old.id)), "{out}");
    assert!(lines[0].ends_with("complete") && !lines[0].contains("INCOMPLETE"), "{out}");
    assert!(lines[1].starts_with(&format!("{}  2019-01-31T20:52:27.154Z", w.big.id)), "{out}");
    assert!(lines[1].contains(&format!("{} parts", w.big.parts.len())), "{out}");
    let size: usize = w.big.data().len();
    assert!(lines[1].contains(&format!(" {size} bytes")), "{out}");
    assert!(lines[2].contains("INCOMPLETE: missing part 3 of"), "{out}");

    let o = run("a9s-ls", &[&format!("s3://{BUCKET}/{U2}")], &env);
    assert_status(&o, 0);
    assert!(stdout(&o).lines().nth(1).unwrap().contains("INCOMPLETE: no metadata"), "{}", stdout(&o));

    // --latest: the newest complete backup, skipping newer incomplete ones.
    let o = run("a9s-ls", &["--latest", &format!("s3://{BUCKET}/{INSTANCE}")], &env);
    assert_status(&o, 0);
    assert_eq!(stdout(&o), format!("{}\n", w.big.id));
    let o = run("a9s-ls", &["--latest", &format!("s3://{BUCKET}/{U2}")], &env);
    assert_eq!(stdout(&o), format!("{}\n", w.other.id));
    // Two instances: which one is "latest" is the operator's call.
    let o = run("a9s-ls", &["--latest", &format!("s3://{BUCKET}")], &env);
    assert_status(&o, 1);
    assert!(stderr(&o).contains("2 instances have backups"), "{}", stderr(&o));
    // Only an incomplete backup: exit 1, the problem named.
    let o = run("a9s-ls", &["--latest", &format!("s3://{BUCKET}/{}", w.gap.id)], &env);
    assert_status(&o, 1);
    assert!(stderr(&o).contains("is incomplete: missing part 3"), "{}", stderr(&o));

    // --json for one instance: every field and the parts.
    let o = run("a9s-ls", &["--json", &format!("s3://{BUCKET}/{INSTANCE}")], &env);
    assert_status(&o, 0);
    let v = json_lines(&o);
    assert_eq!(v.len(), 3);
    let big = &v[1];
    assert_eq!(big["id"], w.big.id.as_str());
    assert_eq!(big["instance"], INSTANCE);
    assert_eq!(big["created"], "2019-01-31T20:52:27.154Z");
    assert_eq!(big["complete"], true);
    assert_eq!(big["size"], size);
    assert_eq!(big["part_count"], w.big.parts.len());
    assert_eq!(big["location"], format!("s3://{BUCKET}/{}", w.big.id));
    assert_eq!(big["metadata"]["name"], format!("{}.json", w.big.id));
    let names: Vec<&str> = big["parts"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    let want: Vec<&str> = w.big.parts.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, want, "natural order, -10 after -9");
    assert_eq!(big["parts"][0]["size"], 1024);
    assert_eq!(big["parts"][0]["md5"].as_str().map(str::len), Some(32));
    assert_eq!(v[2]["complete"], false);
    assert!(v[2]["problems"][0].as_str().unwrap().contains("missing part 3"));

    // Nothing there: exit 1.
    let o = run("a9s-ls", &[&format!("s3://{BUCKET}/ffffffff-ffff-4fff-8fff-ffffffffffff")], &env);
    assert_status(&o, 1);
    assert!(stderr(&o).contains("no a9s backups under"), "{}", stderr(&o));
}

#[test]
fn s3_stream_decrypts_and_matches_the_upload() {
    let (moto, w) = s3_world();
    let env = moto.env();
    // The runbook's whole download-and-join step as one pipe, through the reference decryption.
    let o = pipeline(
        &format!(
            "a9s-fetch --latest s3://{BUCKET}/{INSTANCE} -o - | openssl enc -d -aes256 -md md5 -pass env:A9S_TEST_SECRET | gunzip"
        ),
        &env,
    );
    assert_status(&o, 0);
    assert!(o.stdout == w.big.payload, "decrypted stream differs from the payload");
    assert!(stderr(&o).contains(&format!("newest complete backup: {}", w.big.id)), "{}", stderr(&o));

    // Small chunks and a small window: many ranged GETs crossing part boundaries, bytes still in order.
    for (chunk, window, jobs) in [("300", "1K", "3"), ("1K", "1K", "1"), ("7", "70", "8")] {
        let loc = format!("s3://{BUCKET}/{}", w.big.id);
        let o = run("a9s-fetch", &[&loc, "-o", "-", "--chunk-size", chunk, "--read-ahead", window, "-j", jobs], &env);
        assert_status(&o, 0);
        assert!(o.stdout == w.big.data(), "stream differs with chunk {chunk}, window {window}");
    }

    // a9s-decrypt in the pipe, as in the man page.
    let o =
        pipeline(&format!("a9s-fetch s3://{BUCKET}/{} -o - | a9s-decrypt --pass env:A9S_TEST_SECRET", w.old.id), &env);
    assert_status(&o, 0);
    assert!(o.stdout == w.old.payload, "a9s-decrypt output differs");
}

#[test]
fn s3_folder_download_and_resume() {
    let (moto, w) = s3_world();
    let env = moto.env();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("download");
    let loc = format!("s3://{BUCKET}/{}", w.big.id);
    let o = run("a9s-fetch", &[&loc, "-o", dir.to_str().unwrap(), "-j", "3"], &env);
    assert_status(&o, 0);
    let want = expected_dir(&w.big);
    assert_eq!(dir_contents(&dir), want, "parts and metadata under their own names, nothing else");

    // The folder is a location too, and a9s-cat-parts joins it byte for byte.
    let o = run("a9s-ls", &["--latest", dir.to_str().unwrap()], &[]);
    assert_status(&o, 0);
    assert_eq!(stdout(&o).trim(), w.big.id);
    let o = pipeline(&format!("a9s-cat-parts {}/{}-*[0-9]", dir.display(), w.big.id), &[]);
    assert_status(&o, 0);
    assert!(o.stdout == w.big.data());

    // Interrupted run, three ways: a part missing, a part left as a partial temp file without a record of
    // the object it came from, a wrong file under a real name. The rerun keeps what is right, restarts the
    // unproven partial files from byte 0 and fetches the rest.
    let names: Vec<&String> = w.big.parts.iter().map(|(n, _)| n).collect();
    std::fs::remove_file(dir.join(names[2])).unwrap();
    let half = &want[names[5]][..600];
    std::fs::remove_file(dir.join(names[5])).unwrap();
    std::fs::write(dir.join(format!(".{}.part", names[5])), half).unwrap();
    std::fs::write(dir.join(format!(".{}.part", names[6])), b"garbage longer than the part? no, just wrong").unwrap();
    std::fs::remove_file(dir.join(names[6])).unwrap();
    std::fs::write(dir.join(names[8]), b"short").unwrap();
    let before = std::fs::metadata(dir.join(names[0])).unwrap().modified().unwrap();
    let o = run("a9s-fetch", &[&loc, "-o", dir.to_str().unwrap()], &env);
    assert_status(&o, 0);
    assert_eq!(dir_contents(&dir), want);
    assert_eq!(std::fs::metadata(dir.join(names[0])).unwrap().modified().unwrap(), before, "complete files are kept");
    let err = stderr(&o);
    assert!(err.contains(names[8]), "the wrong file is named: {err}");
    for n in [names[5], names[6]] {
        assert!(err.contains(&format!(".{n}.part: not provably")) && err.contains("from byte 0"), "{err}");
    }
    assert!(!err.contains("after resuming"), "no unproven byte was kept: {err}");
}

#[test]
fn s3_refuses_incomplete_backups_before_any_output() {
    let (moto, w) = s3_world();
    let env = moto.env();
    let o = run("a9s-fetch", &[&format!("s3://{BUCKET}/{}", w.gap.id), "-o", "-"], &env);
    assert_status(&o, 1);
    assert!(o.stdout.is_empty());
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("refusing incomplete backup") && err.contains("missing part 3"), "{err}");

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    let o = run("a9s-fetch", &[&format!("s3://{BUCKET}/{}", w.unfinished.id), "-o", dir.to_str().unwrap()], &env);
    assert_status(&o, 1);
    assert!(stderr(&o).contains("no metadata"), "{}", stderr(&o));
    assert!(!dir.exists(), "nothing created for a refused backup");
    // Parts complete, metadata missing: fetched when asked to.
    let o = run("a9s-fetch", &[&format!("s3://{BUCKET}/{}", w.unfinished.id), "-o", "-", "--ignore-metadata"], &env);
    assert_status(&o, 0);
    assert!(o.stdout == w.unfinished.data());

    // Usage errors: an instance without --latest, a backup with it.
    let o = run("a9s-fetch", &[&format!("s3://{BUCKET}/{INSTANCE}"), "-o", "-"], &env);
    assert_status(&o, 2);
    assert!(stderr(&o).contains("--latest"), "{}", stderr(&o));
    let o = run("a9s-fetch", &[&format!("s3://{BUCKET}/nonexistent-{}", w.big.id), "-o", "-"], &env);
    assert_status(&o, 2);
    let o = run("a9s-fetch", &[&format!("s3://{BUCKET}/{}-1", INSTANCE), "-o", "-"], &env);
    assert_status(&o, 1);
    assert!(stderr(&o).contains("no backup"), "{}", stderr(&o));
}

/// Faults the proxy injects into object GETs (`?list-type` listings pass untouched).
#[derive(Default)]
struct Faults {
    /// Reset this many responses after sending part of their body.
    resets: AtomicUsize,
    /// Answer this many requests with 503 SlowDown.
    slowdowns: AtomicUsize,
    /// Answer every object GET with 503 (a store that stays down).
    always_503: AtomicBool,
    /// Object GETs seen.
    gets: AtomicUsize,
}

/// An HTTP proxy on 127.0.0.1 in front of moto: one request per connection, forwarded with
/// `Connection: close`, and faults injected into object GETs: every other GET is either reset mid-body (RST
/// after the head and part of the body) or answered 503 SlowDown, while the budgets last.
struct FaultProxy {
    port: u16,
    faults: Arc<Faults>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    fn start(upstream: u16, faults: Faults) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let faults = Arc::new(faults);
        let stop = Arc::new(AtomicBool::new(false));
        let (f, s) = (faults.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let f = f.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, upstream, &f);
                });
            }
        });
        FaultProxy { port, faults, stop }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn with_connection_close(head: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut out = String::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

/// SO_LINGER 0: closing sends RST, as a dropped connection does, instead of an orderly FIN.
fn reset(s: TcpStream) {
    use std::os::fd::AsRawFd;
    let l = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: a valid socket and a correctly sized option value.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(s);
}

fn take(budget: &AtomicUsize) -> bool {
    budget.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
}

fn serve(mut client: TcpStream, upstream: u16, f: &Faults) -> std::io::Result<()> {
    let head = read_head(&mut client)?;
    let first = String::from_utf8_lossy(&head).lines().next().unwrap_or("").to_string();
    let object_get = first.starts_with("GET ") && first.contains(INSTANCE) && !first.contains("list-type");
    if object_get {
        let n = f.gets.fetch_add(1, Ordering::SeqCst);
        let slow = f.always_503.load(Ordering::SeqCst) || (n % 2 == 1 && take(&f.slowdowns));
        if slow {
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
            let resp = format!(
                "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            client.write_all(resp.as_bytes())?;
            return Ok(());
        }
    }
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    up.write_all(&with_connection_close(&head))?;
    let mut resp = Vec::new();
    up.read_to_end(&mut resp)?;
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4).unwrap_or(resp.len());
    let (rhead, body) = resp.split_at(split);
    if object_get && body.len() > 1 && take(&f.resets) {
        client.write_all(&with_connection_close(rhead))?;
        client.write_all(&body[..body.len() / 2])?;
        client.flush()?;
        std::thread::sleep(Duration::from_millis(20));
        reset(client);
        return Ok(());
    }
    client.write_all(&with_connection_close(rhead))?;
    client.write_all(body)?;
    client.shutdown(Shutdown::Write)?;
    Ok(())
}

#[test]
fn s3_network_faults_are_survived_with_identical_bytes() {
    let (moto, w) = s3_world();
    let proxy = FaultProxy::start(
        moto.port,
        Faults { resets: AtomicUsize::new(6), slowdowns: AtomicUsize::new(4), ..Default::default() },
    );
    let mut env = moto.env();
    env.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
    let loc = format!("s3://{BUCKET}/{}", w.big.id);
    let ep = proxy.endpoint();
    let o = run(
        "a9s-fetch",
        &["--endpoint-url", &ep, &loc, "-o", "-", "--chunk-size", "2K", "--read-ahead", "8K", "-j", "2"],
        &env,
    );
    assert_status(&o, 0);
    assert!(o.stdout == w.big.data(), "streamed bytes differ after faults");
    let err = stderr(&o);
    assert!(err.contains("SlowDown"), "503s were met and retried: {err}");
    assert!(err.contains("resuming"), "{err}");
    assert_eq!(proxy.faults.resets.load(Ordering::SeqCst), 0, "every reset was used");
    assert_eq!(proxy.faults.slowdowns.load(Ordering::SeqCst), 0, "every 503 was used");

    // The same through a folder download.
    proxy.faults.resets.store(5, Ordering::SeqCst);
    proxy.faults.slowdowns.store(3, Ordering::SeqCst);
    let tmp = tempfile::tempdir().unwrap();
    let o = run("a9s-fetch", &["--endpoint-url", &ep, &loc, "-o", tmp.path().to_str().unwrap()], &env);
    assert_status(&o, 0);
    assert_eq!(dir_contents(tmp.path()), expected_dir(&w.big));
    assert_eq!(proxy.faults.resets.load(Ordering::SeqCst), 0);

    // A store that stays down: a clear error naming the object and the last error, after the tries.
    proxy.faults.always_503.store(true, Ordering::SeqCst);
    let o = run("a9s-fetch", &["--endpoint-url", &ep, &loc, "-o", "-", "--tries", "3"], &env);
    // 4: the store is unreachable for now; the same command may work later.
    assert_status(&o, 4);
    let err = stderr(&o);
    let last = err.lines().last().unwrap_or("");
    assert!(last.starts_with("a9s-fetch: "), "{err}");
    assert!(
        last.contains(&w.big.parts[0].0) && last.contains("SlowDown") && last.contains("gave up after 3 tries"),
        "{err}"
    );
}

#[test]
fn s3_credentials_missing_is_one_clear_line() {
    let (moto, _w) = s3_world();
    let env: Vec<(String, String)> = moto
        .env()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("AWS_ACCESS_KEY_ID") && !k.starts_with("AWS_SECRET"))
        .chain([("HOME".to_string(), "/nonexistent/a9s-tests-home".to_string())])
        .collect();
    for prog in ["a9s-ls", "a9s-fetch"] {
        let args: Vec<&str> = if prog == "a9s-ls" { vec!["s3://b"] } else { vec!["--latest", "s3://b/x", "-o", "-"] };
        let o = run(prog, &args, &env);
        assert_status(&o, 1);
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with(&format!("{prog}: no AWS credentials found")), "{err}");
        assert!(err.contains("AWS_ACCESS_KEY_ID") && err.contains("AWS_PROFILE"), "{err}");
        assert!(!err.contains("ProviderError") && !err.contains('{'), "no Debug text: {err}");
    }
}

fn azure_world() -> (Azurite, World) {
    let az = Azurite::start();
    let w = world();
    // On Azure a backup is one blob `<backup-id>`.
    let root = w._root.path().join("azure");
    std::fs::create_dir_all(&root).unwrap();
    let mut blobs = Vec::new();
    for m in [&w.old, &w.big, &w.other] {
        let p = root.join(&m.id);
        std::fs::write(&p, m.data()).unwrap();
        blobs.push((m.id.clone(), p));
    }
    blobs.push(w.stray.clone());
    az.put(CONTAINER, &blobs);
    (az, w)
}

#[test]
fn azure_listing_streaming_and_download() {
    let (az, w) = azure_world();
    let env = vec![("AZURE_STORAGE_CONNECTION_STRING".to_string(), az.connection_string())];

    let o = run("a9s-ls", &[&format!("az://{CONTAINER}")], &env);
    assert_status(&o, 0);
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.lines().nth(1).unwrap().contains(&format!("2 backups (2 complete)  newest {}", w.big.id)), "{out}");

    let o = run("a9s-ls", &[&format!("az://{CONTAINER}/{INSTANCE}")], &env);
    assert_status(&o, 0);
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.lines().nth(1).unwrap().contains("1 blob") && out.ends_with("complete\n"), "{out}");

    let o = run("a9s-ls", &["--json", &format!("az://{CONTAINER}/{}", w.big.id)], &env);
    assert_status(&o, 0);
    let v = json_lines(&o);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0]["whole"], true);
    assert_eq!(v[0]["size"], w.big.data().len());
    assert_eq!(v[0]["parts"][0]["name"], w.big.id.as_str());

    let o = run("a9s-ls", &["--latest", &format!("az://{CONTAINER}/{INSTANCE}")], &env);
    assert_eq!(stdout(&o), format!("{}\n", w.big.id));

    // Stream the newest into the decryption, in small ranged GETs.
    let o = pipeline(
        &format!(
            "a9s-fetch --latest az://{CONTAINER}/{INSTANCE} -o - --chunk-size 1000 --read-ahead 4000 | a9s-decrypt --pass env:A9S_TEST_SECRET"
        ),
        &env,
    );
    assert_status(&o, 0);
    assert!(o.stdout == w.big.payload, "decrypted Azure stream differs");

    // Folder download, with --blob-endpoint and the account's key instead of a connection string.
    let env2 = vec![
        ("AZURE_STORAGE_ACCOUNT".to_string(), a9s_tests::azure::ACCOUNT.to_string()),
        ("AZURE_STORAGE_KEY".to_string(), a9s_tests::azure::KEY.to_string()),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let o = run(
        "a9s-fetch",
        &[
            "--blob-endpoint",
            &az.blob_endpoint(),
            &format!("az://{CONTAINER}/{}", w.other.id),
            "-o",
            tmp.path().to_str().unwrap(),
        ],
        &env2,
    );
    assert_status(&o, 0);
    let got = dir_contents(tmp.path());
    assert_eq!(got.len(), 1);
    assert!(got[&w.other.id] == w.other.data());

    // A wrong key: one line naming where the credential came from, and no secret in it.
    let bad = az.connection_string().replace(a9s_tests::azure::KEY, "d3Jvbmcga2V5IGZvciB0aGUgdGVzdA==");
    let o = run("a9s-ls", &[&format!("az://{CONTAINER}")], &[("AZURE_STORAGE_CONNECTION_STRING".into(), bad)]);
    assert_status(&o, 1);
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("Azure rejected the credential from AZURE_STORAGE_CONNECTION_STRING"), "{err}");
    assert!(!err.contains("d3Jvbmcga2V5"), "{err}");

    // A missing container.
    let o = run("a9s-ls", &["az://nothing-here"], &env);
    assert_status(&o, 1);
    assert!(stderr(&o).contains("no such container"), "{}", stderr(&o));

    // No credentials at all: one line naming the variables looked at, before any network access.
    let o = run("a9s-ls", &[&format!("az://{CONTAINER}")], &[("PATH".into(), "/nonexistent".into())]);
    assert_status(&o, 1);
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("AZURE_STORAGE_CONNECTION_STRING") && err.contains("AZURE_STORAGE_KEY"), "{err}");
}

#[test]
fn local_directory_location() {
    let w = world();
    let tmp = tempfile::tempdir().unwrap();
    for m in w.all() {
        for (n, p) in m.objects() {
            std::fs::copy(p, tmp.path().join(n)).unwrap();
        }
    }
    let d = tmp.path().to_str().unwrap();
    let o = run("a9s-ls", &[d], &[]);
    assert_status(&o, 0);
    assert_eq!(stdout(&o).lines().count(), 2);
    let o = run("a9s-ls", &[&format!("{d}/{INSTANCE}")], &[]);
    assert_status(&o, 0);
    assert!(stdout(&o).lines().nth(2).unwrap().contains("INCOMPLETE: missing part 3"), "{}", stdout(&o));
    let o = run("a9s-fetch", &["--latest", &format!("{d}/{INSTANCE}"), "-o", "-"], &[]);
    assert_status(&o, 0);
    assert!(o.stdout == w.big.data());
    let o = run("a9s-fetch", &[&format!("{d}/{}", w.gap.id), "-o", "-"], &[]);
    assert_status(&o, 1);
    assert!(o.stdout.is_empty() && stderr(&o).contains("missing part 3"));
    let o = run("a9s-ls", &["/nonexistent/dir"], &[]);
    assert_status(&o, 2);
}
