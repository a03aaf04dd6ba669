//! Backups made the a9s way by the reference tools: `gzip -c | openssl enc -aes256 -md MD -pass … | split`,
//! parts renamed `<backup-id>-<n>`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A backup id in the naming model.
pub const INSTANCE: &str = "b6f4c071-ef44-4af2-9608-531b4ce4823f";
pub const MILLIS: u64 = 1548967947154;

pub fn backup_id() -> String {
    format!("{INSTANCE}-{MILLIS}")
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Dump-like text: COPY rows with tabs, as pg_dumpall writes.
pub fn text_bytes(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 100);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(format!("{i}\tcustomer {i}\t{}\t2019-01-31 20:52:27\n", i * 7919 % 100_003).as_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

/// How to encrypt.
#[derive(Clone, Copy, Debug)]
pub struct Enc<'a> {
    pub md: &'a str,
    pub pbkdf2_iter: Option<u32>,
    pub gzip: bool,
}

impl Default for Enc<'_> {
    fn default() -> Self {
        Enc { md: "md5", pbkdf2_iter: None, gzip: true }
    }
}

/// `[gzip -c |] openssl enc -aes256 -md MD -pass pass:SECRET` of `payload`, by the real CLIs.
pub fn encrypt(payload: &[u8], secret: &str, enc: Enc) -> Vec<u8> {
    let mut script = String::new();
    if enc.gzip {
        script += "gzip -c | ";
    }
    script += &format!("openssl enc -aes256 -md {} -pass env:A9S_FIXTURE_SECRET", enc.md);
    if let Some(iter) = enc.pbkdf2_iter {
        script += &format!(" -pbkdf2 -iter {iter}");
    }
    let mut child = Command::new("bash")
        .args(["-o", "pipefail", "-c", &script])
        .env("A9S_FIXTURE_SECRET", secret)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run gzip | openssl");
    let mut stdin = child.stdin.take().expect("stdin");
    let data = payload.to_vec();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().expect("openssl output");
    writer.join().expect("writer");
    assert!(out.status.success(), "openssl enc failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// Splits `data` with the real `split -b SIZE -d` into `dir`, renaming the parts `<id>-<n>` from `first`.
/// Returns the part paths in order.
pub fn split_into_parts(data: &[u8], dir: &Path, id: &str, part_size: usize, first: u64) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).expect("mkdir");
    let whole = dir.join("whole.tmp");
    std::fs::write(&whole, data).expect("write whole");
    let prefix = dir.join("split.");
    let st = Command::new("split")
        .args(["-b", &part_size.to_string(), "-d", "-a", "4"])
        .arg(&whole)
        .arg(&prefix)
        .status()
        .expect("run split");
    assert!(st.success());
    std::fs::remove_file(&whole).expect("rm whole");
    let mut pieces: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("readdir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("split.")))
        .collect();
    pieces.sort();
    pieces
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let dst = dir.join(format!("{id}-{}", first + i as u64));
            std::fs::rename(&p, &dst).expect("rename part");
            dst
        })
        .collect()
}
