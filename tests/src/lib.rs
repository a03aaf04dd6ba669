//! Support for the end-to-end tests: find the built programs, make fixtures with the reference tools
//! (`gzip`, `openssl enc`, `split`), never with our own code, and run pipelines.
//!
//! Servers the tests need live in their own modules: [`pg`] (a throwaway PostgreSQL cluster), [`s3`] (moto),
//! [`azure`] (Azurite), [`http`] (small HTTP peers of our own).

pub mod azure;
pub mod fixtures;
pub mod http;
pub mod pg;
pub mod pg_extra;
pub mod proxy;
pub mod psql_diff;
pub mod s3;
pub mod scriptgen;

use std::path::PathBuf;
use std::process::{Command, Output};

/// Path of a built program of this workspace (`target/<profile>/<name>`).
pub fn bin(name: &str) -> PathBuf {
    // The test executable lives in target/<profile>/deps; the programs one level up.
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace` before the tests (the README's test command does)",
        path.display()
    );
    path
}

/// A command for one of our programs.
pub fn cmd(name: &str) -> Command {
    Command::new(bin(name))
}

/// A command for one of our store programs that sees no AWS or Azure settings of the environment, only `env`;
/// stdin is /dev/null unless the caller sets it.
pub fn store_cmd(prog: &str, args: &[&str], env: &[(String, String)]) -> Command {
    let mut c = cmd(prog);
    c.args(args);
    for v in s3::AWS_ENV.iter().chain(azure::AZURE_ENV) {
        c.env_remove(v);
    }
    c.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    c.stdin(std::process::Stdio::null());
    c
}

/// Runs a shell pipeline with `bash -o pipefail -c`, with our programs on PATH.
pub fn sh(script: &str) -> Output {
    let dir = bin("a9s-cat-parts").parent().expect("bin dir").to_path_buf();
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
    Command::new("bash").args(["-o", "pipefail", "-c", script]).env("PATH", path).output().expect("run bash")
}

/// stderr as text, for assertions.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A progress line as a program writes it into a log: `^YYYY-MM-DDTHH:MM:SSZ program: `.
pub fn is_log_line(l: &str, program: &str) -> bool {
    let b = l.as_bytes();
    l.len() > 21
        && b[4] == b'-'
        && b[10] == b'T'
        && b[19] == b'Z'
        && b[..4].iter().all(u8::is_ascii_digit)
        && l[21..].starts_with(&format!("{program}: "))
}

/// Panics with both streams when a command did not exit as expected.
pub fn assert_status(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "unexpected exit status\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout[..o.stdout.len().min(2000)]),
        stderr(o)
    );
}

/// Runs `c` with `input` written to its stdin from another thread (so a full pipe cannot deadlock us).
pub fn run_with_input(mut c: Command, input: &[u8]) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let data = input.to_vec();
    let w = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait");
    w.join().expect("writer");
    out
}

/// A TCP port free right now on 127.0.0.1 (the server started next binds it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0").local_addr().expect("local addr").port()
}

/// Runs `c` with stdin from `input` and returns its output and its peak resident memory in KiB: the kernel's
/// `ru_maxrss` of that one child, taken with `wait4` (stdout and stderr go through files, so nothing of ours
/// waits on a pipe meanwhile).
pub fn run_peak_rss(mut c: Command, input: std::fs::File) -> (Output, u64) {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let out = std::fs::File::create(&out_path).expect("stdout file");
    let err = std::fs::File::create(&err_path).expect("stderr file");
    let child = c.stdin(input).stdout(out).stderr(err).spawn().expect("spawn");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: a zeroed rusage is valid; wait4 fills it and reaps the child, which `child` never waits for.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        assert_eq!(e.kind(), std::io::ErrorKind::Interrupted, "wait4: {e}");
    }
    drop(child);
    let output = Output {
        status: std::process::ExitStatus::from_raw(status),
        stdout: std::fs::read(&out_path).expect("read stdout"),
        stderr: std::fs::read(&err_path).expect("read stderr"),
    };
    (output, usage.ru_maxrss as u64)
}
