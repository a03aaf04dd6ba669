//! a9s-decrypt against backups made by the real `gzip`, `openssl enc` and `split`.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use a9s_tests::fixtures::{backup_id, encrypt, random_bytes, split_into_parts, text_bytes, Enc};
use a9s_tests::{assert_status, bin, sh, stderr};

const SECRET: &str = "NYHD8MVmA55HEqoaYHpQaxfwEMcQ1wkI";
const WRONG: &str = "wrong-secret-4711";

/// A temp dir with the secret in `key` (with a line end, as operators write files).
struct Fx {
    dir: tempfile::TempDir,
}

impl Fx {
    fn new() -> Fx {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("key"), format!("{SECRET}\n")).unwrap();
        Fx { dir }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn key_spec(&self) -> String {
        format!("file:{}", self.path("key").display())
    }
    /// Writes `data` to a file in the dir and returns its path.
    fn file(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, data).unwrap();
        p
    }
    /// The dir's entries, to see that nothing (no temporary file) was left behind.
    fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into())
            .collect();
        v.sort();
        v
    }
}

/// a9s-decrypt without a controlling terminal (so it can never prompt) and without the default variable.
fn decrypt_cmd() -> Command {
    let mut c = Command::new(bin("a9s-decrypt"));
    c.env_remove("A9S_BACKUP_SECRET");
    // SAFETY: setsid is async-signal-safe; it detaches from the terminal so "no tty" is really no tty.
    unsafe {
        c.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    c
}

/// Runs `c` with `input` on stdin.
fn run_with_stdin(mut c: Command, input: &[u8]) -> Output {
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let w = std::thread::spawn(move || {
        // The program may rightly stop reading early (a bad header); a broken pipe here is fine.
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    w.join().unwrap();
    out
}

fn decrypt(args: &[&str], input: &[u8]) -> Output {
    let mut c = decrypt_cmd();
    c.args(args);
    run_with_stdin(c, input)
}

/// Asserts a failure with `code`, nothing on stdout, a one-line message containing `needle`, and no secret.
fn assert_fails(out: &Output, code: i32, needle: &str) {
    assert_status(out, code);
    assert!(out.stdout.is_empty(), "stdout should be empty, got {} bytes", out.stdout.len());
    let err = stderr(out);
    assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
    assert!(!err.contains(SECRET) && !err.contains(WRONG), "the secret leaked: {err}");
    assert!(err.starts_with("a9s-decrypt: ") || err.starts_with("warning: "), "{err}");
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut c = Command::new("gzip");
    c.arg("-c");
    let out = run_with_stdin(c, data);
    assert!(out.status.success());
    out.stdout
}

fn payloads() -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    for len in [0, 1, 15, 16, 17, (1 << 20) + 1] {
        v.push((format!("random {len}"), random_bytes(len, len as u64 + 1)));
        v.push((format!("text {len}"), text_bytes(len)));
    }
    v
}

#[test]
fn decrypts_and_gunzips_byte_for_byte() {
    let fx = Fx::new();
    let key = fx.key_spec();
    for (what, payload) in payloads() {
        let enc = encrypt(&payload, SECRET, Enc::default());
        let out = decrypt(&["--pass", &key], &enc);
        assert_status(&out, 0);
        assert!(out.stdout == payload, "{what}: output differs");
        assert_eq!(stderr(&out), "", "{what}");
        // The same from a file argument.
        let f = fx.file("backup", &enc);
        let out = decrypt(&["--pass", &key, f.to_str().unwrap()], b"");
        assert_status(&out, 0);
        assert!(out.stdout == payload, "{what} (file argument): output differs");
    }
}

#[test]
fn large_input_crosses_many_chunks() {
    // Several of the program's 1 MiB chunks, random (stored deflate blocks) and text (real compression).
    let fx = Fx::new();
    for payload in [random_bytes(5 * (1 << 20) + 123, 99), text_bytes(24 << 20)] {
        let enc = encrypt(&payload, SECRET, Enc::default());
        let out = decrypt(&["--pass", &fx.key_spec()], &enc);
        assert_status(&out, 0);
        assert!(out.stdout == payload);
    }
}

#[test]
fn parts_through_a9s_cat_parts() {
    let fx = Fx::new();
    let payload = text_bytes(3 << 20);
    let enc = encrypt(&payload, SECRET, Enc::default());
    let parts_dir = fx.path("parts");
    let parts = split_into_parts(&enc, &parts_dir, &backup_id(), enc.len() / 12, 0);
    assert!(parts.len() > 10);
    let script = format!(
        "cd {} && a9s-cat-parts {}-* | a9s-decrypt --pass {} > {}",
        parts_dir.display(),
        backup_id(),
        fx.key_spec(),
        fx.path("dump").display()
    );
    let out = sh(&script);
    assert_status(&out, 0);
    assert!(std::fs::read(fx.path("dump")).unwrap() == payload);
}

#[test]
fn digests_md5_sha256_sha1_and_auto() {
    let fx = Fx::new();
    let key = fx.key_spec();
    let payload = text_bytes(100_000);
    for md in ["md5", "sha256", "sha1"] {
        let enc = encrypt(&payload, SECRET, Enc { md, ..Enc::default() });
        let out = decrypt(&["--pass", &key, "--md", md], &enc);
        assert_status(&out, 0);
        assert!(out.stdout == payload, "--md {md}");
        let out = decrypt(&["--pass", &key, "--md", "auto"], &enc);
        assert_status(&out, 0);
        assert!(out.stdout == payload, "--md auto on {md}");
    }
    // A backup made on an OpenSSL 1.1+ host without -md md5: the default fails early, with a hint.
    let enc = encrypt(&payload, SECRET, Enc { md: "sha256", ..Enc::default() });
    let out = decrypt(&["--pass", &key], &enc);
    assert_fails(&out, 1, "wrong secret");
    assert!(stderr(&out).contains("the backup looks encrypted with -md sha256; try --md auto"), "{}", stderr(&out));
}

#[test]
fn pbkdf2_as_openssl() {
    let fx = Fx::new();
    let key = fx.key_spec();
    let payload = text_bytes(50_000);
    let enc = encrypt(&payload, SECRET, Enc { md: "sha256", pbkdf2_iter: Some(10_000), gzip: true });
    let out = decrypt(&["--pass", &key, "--pbkdf2"], &enc);
    assert_status(&out, 0);
    assert!(out.stdout == payload);
    // Without --pbkdf2 the first block says what to do.
    let out = decrypt(&["--pass", &key], &enc);
    assert_fails(&out, 1, "try --pbkdf2");

    let enc = encrypt(&payload, SECRET, Enc { md: "md5", pbkdf2_iter: Some(1000), gzip: true });
    let out = decrypt(&["--pass", &key, "--pbkdf2", "--iter", "1000", "--md", "md5"], &enc);
    assert_status(&out, 0);
    assert!(out.stdout == payload);
    // -iter implies -pbkdf2, as in openssl; --md auto finds the digest.
    let out = decrypt(&["--pass", &key, "--iter", "1000", "--md", "auto"], &enc);
    assert_status(&out, 0);
    assert!(out.stdout == payload);
    let out = decrypt(&["--pass", &key, "--iter", "999", "--md", "md5"], &enc);
    assert_fails(&out, 1, "wrong secret");
}

#[test]
fn no_gunzip_writes_the_decrypted_bytes() {
    let fx = Fx::new();
    let key = fx.key_spec();
    for (what, payload) in payloads() {
        let enc = encrypt(&payload, SECRET, Enc { gzip: false, ..Enc::default() });
        let out = decrypt(&["--pass", &key, "--no-gunzip"], &enc);
        assert_status(&out, 0);
        assert!(out.stdout == payload, "{what}: output differs");
    }
    // A gzip backup with --no-gunzip gives exactly what openssl enc -d gives.
    let payload = text_bytes(200_000);
    let gz = gzip(&payload);
    let enc = encrypt(&gz, SECRET, Enc { gzip: false, ..Enc::default() });
    let out = decrypt(&["--pass", &key, "--no-gunzip"], &enc);
    assert_status(&out, 0);
    assert!(out.stdout == gz);
    // Not gzip and a wrong secret: only the padding can tell, at the end.
    let enc = encrypt(&random_bytes(1000, 5), SECRET, Enc { gzip: false, ..Enc::default() });
    let out = decrypt(&["--pass", &format!("pass:{WRONG}"), "--no-gunzip"], &enc);
    assert_status(&out, 1);
    assert!(stderr(&out).contains("wrong secret or corrupted data"), "{}", stderr(&out));
    assert!(!stderr(&out).contains(WRONG));
}

#[test]
fn wrong_secret_is_caught_before_any_output() {
    let fx = Fx::new();
    let payload = text_bytes(3 << 20);
    let enc = encrypt(&payload, SECRET, Enc::default());
    for md in ["md5", "auto"] {
        let out = decrypt(&["--pass", &format!("pass:{WRONG}"), "--md", md], &enc);
        assert_fails(&out, 1, "wrong secret");
    }
    std::fs::write(fx.path("wrongkey"), WRONG).unwrap();
    let wrong = format!("file:{}", fx.path("wrongkey").display());
    let out = decrypt(&["--pass", &wrong], &enc);
    assert_fails(&out, 1, "wrong secret (");
    // With -o no file appears.
    let dst = fx.path("dump.sql");
    let out = decrypt(&["--pass", &wrong, "-o", dst.to_str().unwrap()], &enc);
    assert_fails(&out, 1, "wrong secret");
    assert_eq!(fx.entries(), ["key", "wrongkey"]);
}

#[test]
fn truncated_streams_fail() {
    let fx = Fx::new();
    let payload = text_bytes(300_000);
    let enc = encrypt(&payload, SECRET, Enc::default());
    let n = enc.len();
    assert!(n > 1000);
    let mid = 16 + (n - 16) / 2 / 16 * 16;
    for (what, cut) in [
        ("mid-block", n - 7),
        ("missing last block", n - 16),
        ("missing two blocks", n - 32),
        ("at a block boundary in the middle", mid),
        ("mid-block in the middle", mid + 5),
        ("only the first block", 32),
        ("only the header", 16),
        ("inside the header", 12),
        ("inside the first block", 20),
    ] {
        let out = decrypt(&["--pass", &fx.key_spec()], &enc[..cut]);
        assert_status(&out, 1);
        let err = stderr(&out);
        assert!(err.contains("truncated"), "{what}: {err}");
        assert!(err.starts_with("a9s-decrypt: ") && err.lines().count() == 1, "{what}: {err}");
        let dst = fx.path("out");
        let out = decrypt(&["--pass", &fx.key_spec(), "-o", dst.to_str().unwrap()], &enc[..cut]);
        assert_status(&out, 1);
        assert_eq!(fx.entries(), ["key"], "{what}: -o left a file");
    }
    // Cut inside the gzip stream but re-encrypted whole: only gzip can tell.
    let gz = gzip(&payload);
    for cut in [gz.len() - 1, gz.len() - 8, gz.len() / 2, 11] {
        let enc = encrypt(&gz[..cut], SECRET, Enc { gzip: false, ..Enc::default() });
        let out = decrypt(&["--pass", &fx.key_spec()], &enc);
        assert_status(&out, 1);
        assert!(stderr(&out).contains("truncated"), "gzip cut at {cut}: {}", stderr(&out));
    }
}

#[test]
fn corrupted_streams_fail() {
    let fx = Fx::new();
    for payload in [text_bytes(300_000), random_bytes(300_000, 3)] {
        let enc = encrypt(&payload, SECRET, Enc::default());
        // A flipped byte in the middle: the gzip CRC (or the deflate data) tells.
        for at in [enc.len() / 2, enc.len() / 3 + 5, enc.len() - 20] {
            let mut bad = enc.clone();
            bad[at] ^= 0x40;
            let out = decrypt(&["--pass", &fx.key_spec()], &bad);
            assert_status(&out, 1);
            assert!(stderr(&out).contains("corrupted"), "flip at {at}: {}", stderr(&out));
            let dst = fx.path("out");
            let out = decrypt(&["--pass", &fx.key_spec(), "-o", dst.to_str().unwrap()], &bad);
            assert_status(&out, 1);
            assert_eq!(fx.entries(), ["key"]);
        }
        // A flipped byte in a random payload stored in gzip: the CRC is what catches it.
        let gz = gzip(&payload);
        let mut bad = gz.clone();
        let at = gz.len() - 12;
        bad[at] ^= 1;
        let enc = encrypt(&bad, SECRET, Enc { gzip: false, ..Enc::default() });
        let out = decrypt(&["--pass", &fx.key_spec()], &enc);
        assert_status(&out, 1);
        assert!(stderr(&out).contains("corrupted"), "{}", stderr(&out));
    }
    // CRC and length fields themselves.
    let payload = random_bytes(10_000, 4);
    let gz = gzip(&payload);
    for (what, at) in [("CRC", gz.len() - 8), ("length", gz.len() - 4)] {
        let mut bad = gz.clone();
        bad[at] ^= 1;
        let enc = encrypt(&bad, SECRET, Enc { gzip: false, ..Enc::default() });
        let out = decrypt(&["--pass", &fx.key_spec()], &enc);
        assert_status(&out, 1);
        assert!(stderr(&out).contains(what), "{what}: {}", stderr(&out));
    }
}

#[test]
fn multi_member_gzip_and_trailing_garbage() {
    let fx = Fx::new();
    let (a, b) = (text_bytes(70_000), random_bytes(5000, 8));
    let mut two = gzip(&a);
    two.extend_from_slice(&gzip(&b));
    let enc = encrypt(&two, SECRET, Enc { gzip: false, ..Enc::default() });
    let out = decrypt(&["--pass", &fx.key_spec()], &enc);
    assert_status(&out, 0);
    assert!(out.stdout == [a.as_slice(), b.as_slice()].concat());
    // Members of empty payloads too.
    let mut empties = gzip(b"");
    empties.extend_from_slice(&gzip(b""));
    empties.extend_from_slice(&gzip(b"x"));
    let out = decrypt(&["--pass", &fx.key_spec()], &encrypt(&empties, SECRET, Enc { gzip: false, ..Enc::default() }));
    assert_status(&out, 0);
    assert_eq!(out.stdout, b"x");

    for garbage in [&b"garbage after the stream"[..], b"\0\0\0\0", b"\x1f", b"\x1f\x8b", b"\x1f\x8b\x08"] {
        let mut data = gzip(&a);
        data.extend_from_slice(garbage);
        let enc = encrypt(&data, SECRET, Enc { gzip: false, ..Enc::default() });
        let out = decrypt(&["--pass", &fx.key_spec()], &enc);
        assert_status(&out, 1);
        let err = stderr(&out);
        assert!(err.contains("trailing") || err.contains("truncated"), "{garbage:?}: {err}");
    }
}

#[test]
fn bad_inputs_are_named() {
    let fx = Fx::new();
    let key = fx.key_spec();
    assert_fails(&decrypt(&["--pass", &key], b""), 1, "empty");
    let empty = fx.file("empty", b"");
    assert_fails(&decrypt(&["--pass", &key, empty.to_str().unwrap()], b""), 1, "empty");
    assert_fails(&decrypt(&["--pass", &key], b"CREATE TABLE t (id int);\n"), 1, "does not start with `Salted__`");
    assert_fails(&decrypt(&["--pass", &key], &gzip(b"plain dump")), 1, "gunzip");
    assert_fails(&decrypt(&["--pass", &key], b"{\"backup_id\": \"x\"}"), 1, "JSON");
    assert_fails(&decrypt(&["--pass", &key, "/nonexistent/backup"], b""), 1, "/nonexistent/backup");
    // openssl's format but with nothing gzip inside, and the right secret: not a wrong-secret claim per se,
    // but no output either.
    let enc = encrypt(b"plain, not gzip", SECRET, Enc { gzip: false, ..Enc::default() });
    assert_fails(&decrypt(&["--pass", &key], &enc), 1, "wrong secret");
}

#[test]
fn output_file_appears_only_when_complete() {
    let fx = Fx::new();
    let payload = text_bytes(2 << 20);
    let enc = encrypt(&payload, SECRET, Enc::default());
    let dst = fx.path("dump.sql");
    let out = decrypt(&["--pass", &fx.key_spec(), "-o", dst.to_str().unwrap()], &enc);
    assert_status(&out, 0);
    assert!(out.stdout.is_empty());
    assert!(std::fs::read(&dst).unwrap() == payload);
    assert_eq!(fx.entries(), ["dump.sql", "key"]);
    // A failure leaves an existing file alone and no temporary file behind.
    let mut bad = enc.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 1;
    let out = decrypt(&["--pass", &fx.key_spec(), "-o", dst.to_str().unwrap()], &bad);
    assert_status(&out, 1);
    assert!(stderr(&out).contains("was not written"), "{}", stderr(&out));
    assert!(std::fs::read(&dst).unwrap() == payload);
    assert_eq!(fx.entries(), ["dump.sql", "key"]);
    // `-o -` is stdout.
    let out = decrypt(&["--pass", &fx.key_spec(), "-o", "-"], &enc);
    assert_status(&out, 0);
    assert!(out.stdout == payload);
    // A relative name lands in the current directory.
    let mut c = decrypt_cmd();
    c.current_dir(fx.dir.path()).args(["--pass", &fx.key_spec(), "-o", "rel.sql"]);
    let out = run_with_stdin(c, &enc);
    assert_status(&out, 0);
    assert!(std::fs::read(fx.path("rel.sql")).unwrap() == payload);
    // A directory is refused.
    let out = decrypt(&["--pass", &fx.key_spec(), "-o", fx.dir.path().to_str().unwrap()], &enc);
    assert_status(&out, 2);
}

#[test]
fn every_pass_form() {
    let fx = Fx::new();
    let payload = text_bytes(10_000);
    let enc = encrypt(&payload, SECRET, Enc::default());
    let backup = fx.file("backup", &enc);
    let backup = backup.to_str().unwrap();

    // file: (first line, line end dropped)
    let out = decrypt(&["--pass", &fx.key_spec()], &enc);
    assert_status(&out, 0);
    assert!(out.stdout == payload);

    // pass: works, with a warning that does not repeat the secret.
    let out = decrypt(&["--pass", &format!("pass:{SECRET}")], &enc);
    assert_status(&out, 0);
    assert!(out.stdout == payload);
    assert!(stderr(&out).contains("warning") && !stderr(&out).contains(SECRET), "{}", stderr(&out));

    // env:
    let mut c = decrypt_cmd();
    c.args(["--pass", "env:MY_BACKUP_KEY"]).env("MY_BACKUP_KEY", SECRET);
    let out = run_with_stdin(c, &enc);
    assert_status(&out, 0);
    assert!(out.stdout == payload);
    let out = decrypt(&["--pass", "env:A9S_SURELY_UNSET_VARIABLE"], &enc);
    assert_fails(&out, 2, "A9S_SURELY_UNSET_VARIABLE");

    // fd: from bash's redirection.
    let dst = fx.path("via-fd");
    let out = sh(&format!("a9s-decrypt --pass fd:3 3<{} < {backup} > {}", fx.path("key").display(), dst.display()));
    assert_status(&out, 0);
    assert!(std::fs::read(&dst).unwrap() == payload);
    let out = decrypt(&["--pass", "fd:9"], &enc);
    assert_fails(&out, 2, "fd:9");

    // stdin: only when the backup is a file argument.
    let out = decrypt(&["--pass", "stdin", backup], format!("{SECRET}\n").as_bytes());
    assert_status(&out, 0);
    assert!(out.stdout == payload);
    let out = decrypt(&["--pass", "stdin"], &enc);
    assert_fails(&out, 2, "stdin");

    // No --pass: A9S_BACKUP_SECRET.
    let mut c = decrypt_cmd();
    c.env("A9S_BACKUP_SECRET", SECRET);
    let out = run_with_stdin(c, &enc);
    assert_status(&out, 0);
    assert!(out.stdout == payload);
    assert_eq!(stderr(&out), "");

    // No secret at all and no terminal to ask on: a usage error.
    let out = decrypt(&[], &enc);
    assert_fails(&out, 2, "A9S_BACKUP_SECRET");

    // A bad spec is not echoed (it may be a secret typed without `pass:`).
    let out = decrypt(&["--pass", SECRET], &enc);
    assert_fails(&out, 2, "--pass");
}

/// openssl enc's command line, typed by habit: what a9s-decrypt has means the same, the rest gets a hint.
#[test]
fn openssl_habits() {
    let fx = Fx::new();
    let payload = text_bytes(10_000);
    let enc = encrypt(&payload, SECRET, Enc::default());
    let backup = fx.file("backup", &enc);
    let key = fx.path("key");
    let (backup, key) = (backup.to_str().unwrap(), key.to_str().unwrap());

    // The runbook's `openssl enc -aes256 -md md5 -d -pass file:F -in F -out F`, word for word.
    let restored = fx.path("restored.sql");
    let out = decrypt(
        &[
            "-aes256",
            "-md",
            "md5",
            "-d",
            "-pass",
            &format!("file:{key}"),
            "-in",
            backup,
            "-out",
            restored.to_str().unwrap(),
        ],
        b"",
    );
    assert_status(&out, 0);
    assert_eq!(stderr(&out), "");
    assert!(std::fs::read(&restored).unwrap() == payload);
    // -aes-256-cbc, -kfile, stdin in and out.
    let out = decrypt(&["-d", "-aes-256-cbc", "-kfile", key], &enc);
    assert_status(&out, 0);
    assert!(out.stdout == payload);
    // -pbkdf2 -iter, as openssl.
    let enc2 = encrypt(&payload, SECRET, Enc { md: "sha256", pbkdf2_iter: Some(1000), ..Enc::default() });
    let out = decrypt(&["-d", "-pbkdf2", "-iter", "1000", "-pass", &fx.key_spec()], &enc2);
    assert_status(&out, 0);
    assert!(out.stdout == payload);

    // What does not apply: one line naming the flag and what to do, exit 2, the secret not repeated.
    for (args, needle) in [
        (&["-k", SECRET][..], "a9s-decrypt: -k: openssl's secret on the command line"),
        (&["-e", "-pass", "file:x"][..], "a9s-decrypt: -e: openssl's encrypt"),
        (&["-aes-128-cbc"][..], "a9s-decrypt: -aes-128-cbc: a9s-decrypt reads AES-256-CBC only"),
        (&["-a"][..], "a9s-decrypt: -a: openssl's base64"),
    ] {
        let out = decrypt(args, &enc);
        assert_fails(&out, 2, needle);
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    }
    assert!(stderr(&decrypt(&["-k", SECRET], &enc)).contains("--pass file:PATH"));

    // Only words in option position: after `--`, or as -in's value, `-d` is a file name.
    std::fs::write(fx.path("-d"), &enc).unwrap();
    let mut c = decrypt_cmd();
    c.current_dir(fx.dir.path()).args(["--pass", &fx.key_spec(), "--", "-d"]);
    let out = run_with_stdin(c, b"");
    assert_status(&out, 0);
    assert!(out.stdout == payload);
    let mut c = decrypt_cmd();
    c.current_dir(fx.dir.path()).args(["-pass", &fx.key_spec(), "-in", "-d", "-out", "out.sql"]);
    let out = run_with_stdin(c, b"");
    assert_status(&out, 0);
    assert!(std::fs::read(fx.path("out.sql")).unwrap() == payload);
}

#[test]
fn help_and_version() {
    let out = decrypt_cmd().arg("--help").output().unwrap();
    assert_status(&out, 0);
    let help = String::from_utf8_lossy(&out.stdout);
    for opt in ["--pass", "--md", "--pbkdf2", "--iter", "--no-gunzip", "--output"] {
        assert!(help.contains(opt), "{opt} missing from --help");
    }
    let out = decrypt_cmd().arg("--version").output().unwrap();
    assert_status(&out, 0);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("a9s-decrypt "));
    let out = decrypt_cmd().args(["--md", "sha512"]).output().unwrap();
    assert_status(&out, 2);
}

/// One fault, one error: with a wrong secret in the verify pipe, a9s-decrypt alone says so. a9s-fetch before it
/// ends quietly on the closed pipe (status 141, no message), and a9s-pgrestore --list after it prints no
/// listing of its empty input (stdout empty; only its own short error, status 1).
#[test]
fn a_wrong_secret_in_the_verify_pipe_is_one_error() {
    let dir = tempfile::tempdir().unwrap();
    let id = backup_id();
    // Larger than a pipe's buffer, so that a9s-fetch is still writing when a9s-decrypt gives up.
    let enc = encrypt(&random_bytes(3 << 20, 7), SECRET, Enc::default());
    split_into_parts(&enc, dir.path(), &id, 1 << 20, 0);
    std::fs::write(dir.path().join(format!("{id}.json")), format!("{{\"size\":{}}}", enc.len())).unwrap();
    let script = format!(
        "cd {d} && A9S_WRONG={WRONG} && export A9S_WRONG && \
         a9s-fetch {d}/{id} -o - 2>fetch.err | a9s-decrypt --pass env:A9S_WRONG 2>decrypt.err \
         | a9s-pgrestore --list 2>list.err; echo \"${{PIPESTATUS[*]}}\" >status",
        d = dir.path().display()
    );
    let out = sh(&script);
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
    assert!(out.stdout.is_empty(), "a listing of nothing: {}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(read("fetch.err"), "", "a9s-fetch stays quiet about the closed pipe");
    assert!(read("decrypt.err").contains("wrong secret"), "{}", read("decrypt.err"));
    let list = read("list.err");
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(list.contains("the input is empty"), "{list}");
    assert_eq!(read("status").trim(), "141 1 1", "a9s-fetch, a9s-decrypt, a9s-pgrestore --list");
}
