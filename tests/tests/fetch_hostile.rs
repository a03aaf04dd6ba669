//! a9s-fetch, a9s-ls, a9s-cat-parts and a9s-decrypt against a hostile directory and misbehaving stores: links
//! planted in `-o DIR`, partial files that are not what they seem, a proxy that lies in ranged responses or
//! never answers, keys no backup tool would make, a secret that must not outlive its use, outputs that must be
//! complete or absent. Stores are moto and Azurite; the lies come from our own proxy (tests/src/proxy.rs).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use a9s_tests::azure::Azurite;
use a9s_tests::fixtures::{self, Enc, INSTANCE, MILLIS};
use a9s_tests::proxy::{Fault, Proxy, Silent};
use a9s_tests::s3::Moto;
use a9s_tests::{assert_status, bin, stderr, store_cmd};

const SECRET: &str = "hostile-test-secret";
const BUCKET: &str = "hostile";

fn run(prog: &str, args: &[&str], env: &[(String, String)]) -> Output {
    store_cmd(prog, args, env).output().expect("run program")
}

fn dir_contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap_or_default()))
        .collect()
}

/// A split backup (parts of 1 KiB and metadata) under `root`: its id and `(name, path)` pairs.
fn split_backup(root: &Path, len: usize, seed: u64) -> (String, Vec<(String, PathBuf)>) {
    let id = format!("{INSTANCE}-{MILLIS}");
    let enc = fixtures::encrypt(&fixtures::random_bytes(len, seed), SECRET, Enc::default());
    let dir = root.join(format!("split-{seed}"));
    let mut objs: Vec<(String, PathBuf)> = fixtures::split_into_parts(&enc, &dir, &id, 1024, 0)
        .into_iter()
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    let meta = dir.join(format!("{id}.json"));
    std::fs::write(&meta, format!("{{\"size\":{}}}", enc.len())).unwrap();
    objs.push((format!("{id}.json"), meta));
    (id, objs)
}

/// Runs a boto3 script against moto with `endpoint, bucket` then the extra arguments in sys.argv.
fn boto3(moto: &Moto, script: &str, args: &[&str]) {
    let prelude = "import sys, boto3\nendpoint, bucket = sys.argv[1:3]\ns3 = boto3.client('s3', endpoint_url=endpoint, aws_access_key_id='testing', aws_secret_access_key='testing', region_name='us-east-1')\ntry:\n    s3.create_bucket(Bucket=bucket)\nexcept s3.exceptions.BucketAlreadyOwnedByYou:\n    pass\n";
    let out = Command::new("python3")
        .args(["-c", &format!("{prelude}{script}"), &moto.endpoint(), BUCKET])
        .args(args)
        .output()
        .expect("python3");
    assert!(out.status.success(), "boto3: {}", String::from_utf8_lossy(&out.stderr));
}

/// Uploads `path` as `key` by a multipart upload (one part): its ETag is `<hex>-1`, not an MD5.
fn put_multipart(moto: &Moto, key: &str, path: &Path) {
    boto3(
        moto,
        "key, path = sys.argv[3:5]\nu = s3.create_multipart_upload(Bucket=bucket, Key=key)\np = s3.upload_part(Bucket=bucket, Key=key, UploadId=u['UploadId'], PartNumber=1, Body=open(path, 'rb').read())\ns3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=u['UploadId'], MultipartUpload={'Parts': [{'ETag': p['ETag'], 'PartNumber': 1}]})\n",
        &[key, path.to_str().unwrap()],
    );
}

// --- 1. No writes through links ---------------------------------------------------------------------------

#[test]
fn fetch_never_writes_through_links() {
    let moto = Moto::start();
    let tmp = tempfile::tempdir().unwrap();
    let (id, objs) = split_backup(tmp.path(), 3000, 1);
    moto.put(BUCKET, &objs);
    let env = moto.env();
    let loc = format!("s3://{BUCKET}/{id}");
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let victim = tmp.path().join("victim");
    let first = &objs[0].0;

    // A symlink where the partial file goes, one under a final name, one under the resume record, and a hard
    // link under a final name: each refused, the file outside untouched.
    let plants: Vec<(String, bool)> = vec![
        (format!(".{first}.part"), false),
        (first.clone(), false),
        (format!(".{first}.a9s-fetch"), false),
        (objs[1].0.clone(), true),
    ];
    for (name, hard) in plants {
        std::fs::write(&victim, b"precious").unwrap();
        let planted = out.join(&name);
        if hard {
            std::fs::hard_link(&victim, &planted).unwrap();
        } else {
            std::os::unix::fs::symlink(&victim, &planted).unwrap();
        }
        let o = run("a9s-fetch", &[&loc, "-o", out.to_str().unwrap(), "-j", "1"], &env);
        assert_status(&o, 1);
        let err = stderr(&o);
        let why = if hard { "hard links" } else { "symbolic link: refusing to write through it" };
        assert!(err.contains(&name) && err.contains(why), "{name}: {err}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious", "{name}: the target outside DIR is untouched");
        assert_eq!(std::fs::metadata(&victim).unwrap().nlink(), if hard { 2 } else { 1 });
        std::fs::remove_file(&planted).unwrap();
    }
    // With the links gone the same command completes.
    let o = run("a9s-fetch", &[&loc, "-o", out.to_str().unwrap()], &env);
    assert_status(&o, 0);
    let want: BTreeMap<String, Vec<u8>> = objs.iter().map(|(n, p)| (n.clone(), std::fs::read(p).unwrap())).collect();
    assert_eq!(dir_contents(&out), want);
    let mode = std::fs::metadata(out.join(first)).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o600, "downloads are readable by their owner only");
}

// --- 2. Resume with proof ---------------------------------------------------------------------------------

#[test]
fn resume_only_what_is_provably_the_same_object() {
    let moto = Moto::start();
    let tmp = tempfile::tempdir().unwrap();
    // A whole backup uploaded by multipart: the store states no MD5 for it.
    let id = format!("{INSTANCE}-{MILLIS}");
    let v1 = fixtures::encrypt(&fixtures::random_bytes(40_000, 7), SECRET, Enc::default());
    let v1_path = tmp.path().join("v1");
    std::fs::write(&v1_path, &v1).unwrap();
    put_multipart(&moto, &id, &v1_path);
    let env = moto.env();
    let loc = format!("s3://{BUCKET}/{id}");
    let o = run("a9s-ls", &["--json", &loc], &env);
    assert_status(&o, 0);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("\"md5\""), "no MD5 for a multipart object");

    let out = tmp.path().join("out");
    let outs = out.to_str().unwrap();
    let part = out.join(format!(".{id}.part"));
    let record = out.join(format!(".{id}.a9s-fetch"));

    // Junk in a partial file without a record: never resumed.
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(&part, vec![b'J'; 5000]).unwrap();
    let o = run("a9s-fetch", &[&loc, "-o", outs], &env);
    assert_status(&o, 0);
    assert!(stderr(&o).contains("from byte 0"), "{}", stderr(&o));
    assert!(std::fs::read(out.join(&id)).unwrap() == v1, "the junk did not survive");
    assert!(record.exists(), "without an MD5, the record of the finished file stays");

    // A rerun keeps the finished file (its record names it); the same bytes rewritten in place do not pass.
    let before = std::fs::metadata(out.join(&id)).unwrap().modified().unwrap();
    let o = run("a9s-fetch", &[&loc, "-o", outs], &env);
    assert_status(&o, 0);
    assert_eq!(std::fs::metadata(out.join(&id)).unwrap().modified().unwrap(), before, "kept");
    let mut junk = v1.clone();
    junk[100] ^= 1;
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(out.join(&id), &junk).unwrap();
    let o = run("a9s-fetch", &[&loc, "-o", outs], &env);
    assert_status(&o, 0);
    assert!(stderr(&o).contains("is not provably the object"), "{}", stderr(&o));
    assert!(std::fs::read(out.join(&id)).unwrap() == v1);

    // An interrupted download (the proxy cuts the response, one try) leaves a partial file and its record;
    // the rerun resumes it.
    std::fs::remove_file(out.join(&id)).unwrap();
    let proxy = Proxy::start(moto.port);
    proxy.set(Fault::Cut, usize::MAX);
    let mut penv = env.clone();
    penv.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
    let ep = proxy.endpoint();
    let o = run("a9s-fetch", &["--endpoint-url", &ep, &loc, "-o", outs, "--tries", "1"], &penv);
    assert_status(&o, 1);
    let kept = std::fs::metadata(&part).unwrap().len();
    assert!(kept > 0 && kept < v1.len() as u64, "a partial file of {kept} bytes");
    let o = run("a9s-fetch", &[&loc, "-o", outs], &env);
    assert_status(&o, 0);
    assert!(!stderr(&o).contains("from byte 0"), "resumed: {}", stderr(&o));
    assert!(std::fs::read(out.join(&id)).unwrap() == v1);

    // Interrupted again, then the object is replaced under the same name: the partial file belongs to the
    // old one, so the new one is fetched from byte 0.
    std::fs::remove_file(out.join(&id)).unwrap();
    let o = run("a9s-fetch", &["--endpoint-url", &ep, &loc, "-o", outs, "--tries", "1"], &penv);
    assert_status(&o, 1);
    let v2 = fixtures::encrypt(&fixtures::random_bytes(40_000, 8), SECRET, Enc::default());
    let v2_path = tmp.path().join("v2");
    std::fs::write(&v2_path, &v2).unwrap();
    put_multipart(&moto, &id, &v2_path);
    let o = run("a9s-fetch", &[&loc, "-o", outs], &env);
    assert_status(&o, 0);
    assert!(stderr(&o).contains("from byte 0"), "{}", stderr(&o));
    assert!(std::fs::read(out.join(&id)).unwrap() == v2, "the new object, whole");
}

// --- 3. Every response checked ----------------------------------------------------------------------------

fn check_lies(proxy: &Proxy, args: &[&str], env: &[(String, String)], want: &[u8], faults: &[(Fault, &str)]) {
    for (fault, says) in faults {
        // A few lies: retried, and the bytes are the object's.
        proxy.set(*fault, 2);
        let mut a = args.to_vec();
        a.extend(["-o", "-", "--chunk-size", "1K", "--read-ahead", "4K", "-j", "2"]);
        let o = run("a9s-fetch", &a, env);
        assert_status(&o, 0);
        assert!(o.stdout == want, "{fault:?}: bytes differ");
        assert!(stderr(&o).contains(says), "{fault:?}: {}", stderr(&o));
        // Lies all the time: a clear error after the tries, and not one byte written.
        proxy.set(*fault, usize::MAX);
        let mut a = args.to_vec();
        a.extend(["-o", "-", "--tries", "2", "-j", "1"]);
        let o = run("a9s-fetch", &a, env);
        assert_status(&o, 4);
        assert!(o.stdout.is_empty(), "{fault:?}: nothing written");
        let err = stderr(&o);
        let last = err.lines().last().unwrap_or("");
        assert!(last.contains(says) && last.contains("gave up after 2 tries"), "{fault:?}: {err}");
        proxy.set(Fault::None, 0);
    }
}

#[test]
fn s3_ranged_responses_are_checked() {
    let moto = Moto::start();
    let tmp = tempfile::tempdir().unwrap();
    let (id, objs) = split_backup(tmp.path(), 6000, 2);
    moto.put(BUCKET, &objs);
    let want: Vec<u8> = objs[..objs.len() - 1].iter().flat_map(|(_, p)| std::fs::read(p).unwrap()).collect();
    let proxy = Proxy::start(moto.port);
    let mut env = moto.env();
    env.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
    let ep = proxy.endpoint();
    let loc = format!("s3://{BUCKET}/{id}");
    check_lies(
        &proxy,
        &["--endpoint-url", &ep, &loc],
        &env,
        &want,
        &[
            (Fault::OtherRange, "(a different range)"),
            (Fault::Whole200, "without Content-Range"),
            (Fault::OtherEtag, "is not the listing's"),
        ],
    );
    // A folder download under lies all the time writes no final file.
    proxy.set(Fault::OtherRange, usize::MAX);
    let out = tmp.path().join("out");
    let o = run("a9s-fetch", &["--endpoint-url", &ep, &loc, "-o", out.to_str().unwrap(), "--tries", "2"], &env);
    assert_status(&o, 1);
    assert!(dir_contents(&out).keys().all(|n| n.starts_with('.')), "{:?}", dir_contents(&out).keys());
}

fn azure_env(az: &Azurite) -> Vec<(String, String)> {
    let _ = az;
    vec![
        ("AZURE_STORAGE_ACCOUNT".to_string(), a9s_tests::azure::ACCOUNT.to_string()),
        ("AZURE_STORAGE_KEY".to_string(), a9s_tests::azure::KEY.to_string()),
    ]
}

#[test]
fn azure_ranged_responses_are_checked() {
    let az = Azurite::start();
    let tmp = tempfile::tempdir().unwrap();
    let id = format!("{INSTANCE}-{MILLIS}");
    let data = fixtures::encrypt(&fixtures::random_bytes(6000, 3), SECRET, Enc::default());
    let p = tmp.path().join("blob");
    std::fs::write(&p, &data).unwrap();
    az.put(BUCKET, &[(id.clone(), p)]);
    let proxy = Proxy::start(az.port);
    let ep = format!("{}/{}", proxy.endpoint(), a9s_tests::azure::ACCOUNT);
    let loc = format!("az://{BUCKET}/{id}");
    check_lies(
        &proxy,
        &["--blob-endpoint", &ep, &loc],
        &azure_env(&az),
        &data,
        &[
            (Fault::OtherRange, "Requested "),
            (Fault::Whole200, "non-partial response"),
            (Fault::OtherEtag, "is not the listing's"),
        ],
    );
    // Azure states an MD5 for the blob, and a folder download leaves nothing but the blob.
    let o = run("a9s-ls", &["--json", "--blob-endpoint", &ep, &loc], &azure_env(&az));
    assert_status(&o, 0);
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"md5\""), "{}", String::from_utf8_lossy(&o.stdout));
}

// --- 4. Time bounds ---------------------------------------------------------------------------------------

/// Runs and checks that it ended, with status 4 (the store did not answer: retry), within `limit`.
fn ends_within(prog: &str, args: &[&str], env: &[(String, String)], limit: Duration) -> String {
    let t = Instant::now();
    let o = run(prog, args, env);
    let took = t.elapsed();
    assert_status(&o, 4);
    assert!(took < limit, "{prog} took {took:?}");
    stderr(&o)
}

#[test]
fn silent_servers_end_in_a_clear_error() {
    let silent = Silent::start();
    let limit = Duration::from_secs(30);
    let quick = ["--idle-timeout", "1", "--tries", "2"];
    // Listing against a server that accepts and never answers: S3 and Azure.
    let s3env = vec![
        ("AWS_ACCESS_KEY_ID".to_string(), "testing".to_string()),
        ("AWS_SECRET_ACCESS_KEY".to_string(), "testing".to_string()),
        ("AWS_REGION".to_string(), "us-east-1".to_string()),
        ("AWS_EC2_METADATA_DISABLED".to_string(), "true".to_string()),
    ];
    let ep = silent.endpoint();
    let azep = format!("{ep}/{}", a9s_tests::azure::ACCOUNT);
    let azenv = vec![
        ("AZURE_STORAGE_ACCOUNT".to_string(), a9s_tests::azure::ACCOUNT.to_string()),
        ("AZURE_STORAGE_KEY".to_string(), a9s_tests::azure::KEY.to_string()),
    ];
    let mut args = vec!["--endpoint-url", &ep, "s3://b"];
    args.extend(quick);
    let err = ends_within("a9s-ls", &args, &s3env, limit);
    assert!(err.lines().last().unwrap().contains("no response for 1 s"), "{err}");
    let mut args = vec!["--blob-endpoint", &azep, "az://c"];
    args.extend(quick);
    let err = ends_within("a9s-ls", &args, &azenv, limit);
    assert!(err.lines().last().unwrap().contains("no response for 1 s"), "{err}");
    let loc = format!("az://c/{INSTANCE}-{MILLIS}");
    let mut args = vec!["--blob-endpoint", &azep, &loc, "-o", "-"];
    args.extend(quick);
    let err = ends_within("a9s-fetch", &args, &azenv, limit);
    assert!(err.contains("no response for 1 s"), "{err}");

    // Listing answered, object GETs never: S3 (moto) and Azure (Azurite) behind the proxy.
    let moto = Moto::start();
    let tmp = tempfile::tempdir().unwrap();
    let (id, objs) = split_backup(tmp.path(), 2000, 4);
    moto.put(BUCKET, &objs);
    let proxy = Proxy::start(moto.port);
    proxy.set(Fault::Silent, usize::MAX);
    let mut env = moto.env();
    env.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
    let pep = proxy.endpoint();
    let loc = format!("s3://{BUCKET}/{id}");
    let mut args = vec!["--endpoint-url", &pep, &loc, "-o", "-"];
    args.extend(quick);
    let err = ends_within("a9s-fetch", &args, &env, limit);
    // Two parts are fetched at once: our idle timer or the SDK's read timeout (both 1 s) may speak last.
    let last = err.lines().last().unwrap();
    let timed_out = last.contains("no response for 1 s") || last.contains("read timeout occurred after 1s");
    assert!(timed_out && err.contains(&objs[0].0), "{err}");

    let az = Azurite::start();
    let p = tmp.path().join("blob");
    std::fs::write(&p, b"Salted__12345678 and more").unwrap();
    az.put(BUCKET, &[(id.clone(), p)]);
    let aproxy = Proxy::start(az.port);
    aproxy.set(Fault::Silent, usize::MAX);
    let apep = format!("{}/{}", aproxy.endpoint(), a9s_tests::azure::ACCOUNT);
    let loc = format!("az://{BUCKET}/{id}");
    let mut args = vec!["--blob-endpoint", &apep, &loc, "-o", "-"];
    args.extend(quick);
    let err = ends_within("a9s-fetch", &args, &azure_env(&az), limit);
    assert!(err.lines().last().unwrap().contains("no response for 1 s"), "{err}");
}

// --- 5. Listing tolerates any key -------------------------------------------------------------------------

#[test]
fn s3_listing_tolerates_any_key() {
    let moto = Moto::start();
    let tmp = tempfile::tempdir().unwrap();
    let (id, objs) = split_backup(tmp.path(), 2500, 5);
    moto.put(BUCKET, &objs);
    let junk = tmp.path().join("junk");
    std::fs::write(&junk, b"x").unwrap();
    // Keys no backup tool makes: an ESC sequence, a name beside the backup's, a double slash.
    boto3(
        &moto,
        "path = sys.argv[3]\nfor k in ['\\x1b[2Jevil', sys.argv[4] + '//x', sys.argv[4] + '-junk\\x07']:\n    s3.put_object(Bucket=bucket, Key=k, Body=open(path, 'rb').read())\n",
        &[junk.to_str().unwrap(), &id],
    );
    let env = moto.env();
    let o = run("a9s-ls", &[&format!("s3://{BUCKET}")], &env);
    assert_status(&o, 0);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = stderr(&o);
    assert!(out.contains(INSTANCE) && out.lines().count() == 1, "{out}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("skipped 3 objects") && err.contains("\\u{1b}"), "{err}");
    assert!(!err.contains('\x1b') && !out.contains('\x1b') && !err.contains('\x07'), "control characters escaped");
    let o = run("a9s-ls", &["--json", &format!("s3://{BUCKET}/{INSTANCE}")], &env);
    assert_status(&o, 0);
    let v: serde_json::Value = serde_json::from_slice(o.stdout.split(|&b| b == b'\n').next().unwrap()).unwrap();
    assert_eq!(v["skipped_objects"], 2, "{v}");
    assert_eq!(v["complete"], true);
    let o = run("a9s-fetch", &["--latest", &format!("s3://{BUCKET}/{INSTANCE}"), "-o", "-"], &env);
    assert_status(&o, 0);
    let want: Vec<u8> = objs[..objs.len() - 1].iter().flat_map(|(_, p)| std::fs::read(p).unwrap()).collect();
    assert!(o.stdout == want);
}

#[test]
fn azure_listing_tolerates_any_name() {
    let az = Azurite::start();
    let tmp = tempfile::tempdir().unwrap();
    let id = format!("{INSTANCE}-{MILLIS}");
    let data = fixtures::encrypt(&fixtures::random_bytes(3000, 6), SECRET, Enc::default());
    let p = tmp.path().join("blob");
    std::fs::write(&p, &data).unwrap();
    let junk = tmp.path().join("junk");
    std::fs::write(&junk, b"x").unwrap();
    az.put(BUCKET, &[(id.clone(), p), (format!("{id}//x"), junk.clone()), ("x//y".to_string(), junk.clone())]);
    let env = vec![("AZURE_STORAGE_CONNECTION_STRING".to_string(), az.connection_string())];
    for loc in [format!("az://{BUCKET}"), format!("az://{BUCKET}/{INSTANCE}")] {
        let o = run("a9s-ls", &[&loc], &env);
        assert_status(&o, 0);
        assert!(String::from_utf8_lossy(&o.stdout).contains(if loc.ends_with(INSTANCE) { &id } else { INSTANCE }));
        let n = if loc.ends_with(INSTANCE) { "skipped 1 object " } else { "skipped 2 objects" };
        assert!(stderr(&o).contains(n), "{}", stderr(&o));
    }
    let o = run("a9s-fetch", &[&format!("az://{BUCKET}/{id}"), "-o", "-"], &env);
    assert_status(&o, 0);
    assert!(o.stdout == data);
}

// --- 6. The secret stays out of cores ---------------------------------------------------------------------

#[test]
fn decrypt_keeps_the_secret_out_of_cores_and_memory_copies() {
    let tmp = tempfile::tempdir().unwrap();
    let enc = fixtures::encrypt(&fixtures::random_bytes(100_000, 9), SECRET, Enc::default());
    let var_value = format!("{SECRET}-from-env");
    let enc2 = fixtures::encrypt(&fixtures::random_bytes(100_000, 9), &var_value, Enc::default());
    let _ = enc;
    let out = tmp.path().join("db.sql");
    let mut c = store_cmd("a9s-decrypt", &["--pass", "env:A9S_HOSTILE_SECRET", "-o", out.to_str().unwrap()], &[]);
    c.env("A9S_HOSTILE_SECRET", &var_value).stdin(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    use std::io::Write;
    // The head and some data; then the pipe stays open, so a9s-decrypt holds the secret, waiting.
    stdin.write_all(&enc2[..4096]).unwrap();
    let pid = child.id();
    let t = Instant::now();
    let limits = loop {
        let l = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap_or_default();
        let temp = std::fs::read_dir(tmp.path()).unwrap().count() > 0;
        if temp || t.elapsed() > Duration::from_secs(10) {
            break l;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let core = limits.lines().find(|l| l.starts_with("Max core file size")).unwrap_or("").to_string();
    assert!(core.split_whitespace().skip(4).take(2).all(|v| v == "0"), "{core}");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    assert!(!environ.windows(var_value.len()).any(|w| w == var_value.as_bytes()), "the variable's value was wiped");
    // SIGTERM while writing: no output file, no temporary file.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    assert!(!o.status.success());
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0, "no output and no temporary file left");
}

// --- 7. Atomic outputs ------------------------------------------------------------------------------------

#[test]
fn cat_parts_output_is_complete_or_absent() {
    let tmp = tempfile::tempdir().unwrap();
    let (id, objs) = split_backup(tmp.path(), 20_000, 10);
    let parts: Vec<String> = objs[..objs.len() - 1].iter().map(|(_, p)| p.display().to_string()).collect();
    let dest = tmp.path().join("dest");
    std::fs::create_dir_all(&dest).unwrap();
    let out = dest.join(format!("{id}.enc"));
    // A full disk, as the file size limit: write fails part-way.
    let script = format!(
        "trap '' XFSZ; ulimit -f 8; exec {} -o {} {}",
        bin("a9s-cat-parts").display(),
        out.display(),
        parts.join(" ")
    );
    let o = Command::new("bash").args(["-c", &script]).output().unwrap();
    assert_status(&o, 1);
    assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 0, "no partial FILE, no temporary file");
    // A symlink at FILE is replaced, its target untouched; the file is its owner's only.
    let victim = tmp.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    std::os::unix::fs::symlink(&victim, &out).unwrap();
    let mut args = vec!["-o", out.to_str().unwrap()];
    args.extend(parts.iter().map(String::as_str));
    let o = run("a9s-cat-parts", &args, &[]);
    assert_status(&o, 0);
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    let want: Vec<u8> = objs[..objs.len() - 1].iter().flat_map(|(_, p)| std::fs::read(p).unwrap()).collect();
    assert!(std::fs::read(&out).unwrap() == want);
    assert_eq!(std::fs::symlink_metadata(&out).unwrap().mode() & 0o777, 0o600);
}

// --- 6. A store's words reach the terminal escaped, its echoes of our credentials hidden ----------------

#[test]
fn store_error_pages_print_no_escape_and_no_credential() {
    use a9s_tests::http::{response, Server};
    const KEY_ID: &str = "AKIDHOSTILETEST";
    const SECRET_KEY: &str = "hostile-secret-access-key";
    // Every request answered with an error whose code, message and reason hold terminal escapes and which
    // quotes the request's Authorization header (an S3 signature, an Azure SharedKey signature) and more.
    let server = Server::start(|req| {
        let auth = req.header("authorization").unwrap_or("").to_string();
        let body = format!(
            "<?xml version=\"1.0\"?><Error><Code>Access\u{1b}[2JDenied</Code><Message>denied \u{1b}]0;owned\u{7} \
             for Authorization: {auth} and \u{9b}1m x-amz-security-token: tok</Message></Error>"
        );
        // hyper refuses a reason phrase with controls outright; the body is where they get through.
        response(403, "Forbidden", "application/xml", body.as_bytes())
    });
    let signature = |s: &Server| -> Vec<String> {
        s.requests()
            .iter()
            .filter_map(|r| r.header("authorization").map(str::to_string))
            .flat_map(|a| {
                let sig = a.rsplit(['=', ':']).next().unwrap_or("").to_string();
                [sig]
            })
            .filter(|s| s.len() >= 8)
            .collect()
    };
    let s3_env: Vec<(String, String)> = [
        ("AWS_ACCESS_KEY_ID", KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let az_env: Vec<(String, String)> = [
        ("AZURE_STORAGE_ACCOUNT", a9s_tests::azure::ACCOUNT),
        ("AZURE_STORAGE_KEY", a9s_tests::azure::KEY),
        ("PATH", "/usr/bin:/bin"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let ep = server.url();
    let blob = format!("{ep}/{}", a9s_tests::azure::ACCOUNT);
    let s3_loc = format!("s3://{BUCKET}/{INSTANCE}-{MILLIS}");
    let az_loc = format!("az://{BUCKET}/{INSTANCE}-{MILLIS}");
    type Case<'a> = (&'a str, Vec<&'a str>, &'a [(String, String)]);
    let cases: Vec<Case> = vec![
        ("a9s-ls", vec!["--endpoint-url", &ep, &s3_loc], &s3_env),
        ("a9s-fetch", vec!["--endpoint-url", &ep, &s3_loc, "-o", "-"], &s3_env),
        ("a9s-ls", vec!["--blob-endpoint", &blob, &az_loc], &az_env),
        ("a9s-fetch", vec!["--blob-endpoint", &blob, &az_loc, "-o", "-"], &az_env),
    ];
    for (prog, args, env) in cases {
        let o = run(prog, &args, env);
        assert_status(&o, 1);
        let all = [o.stdout.as_slice(), o.stderr.as_slice()].concat();
        let text = String::from_utf8_lossy(&all);
        assert!(!all.contains(&0x1b) && !text.contains('\u{9b}') && !text.contains('\u{7}'), "{prog} {args:?}: {text}");
        assert!(!text.contains(SECRET_KEY) && !text.contains(a9s_tests::azure::KEY), "{prog} {args:?}: {text}");
        for sig in signature(&server) {
            assert!(!text.contains(&sig), "{prog} {args:?}: the request's signature {sig} was printed: {text}");
        }
        assert!(!text.contains("tok<") && !text.contains(": tok"), "{prog} {args:?}: {text}");
        assert_eq!(text.lines().count(), 1, "a refusal is not retried: {prog} {args:?}: {text}");
    }
}
