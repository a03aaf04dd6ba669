//! `--verify`: the whole backup through the same checked decrypt and gunzip, into a sink that only counts and
//! hashes. Nothing is written anywhere, so a backup can be checked in the store (`a9s-fetch … -o - |
//! a9s-decrypt --verify`) without disk space and before anything is done to a cluster.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use a9s_core::io::human_bytes;
use a9s_core::progress::Progress;
use a9s_core::Result;
use openssl::sha::Sha256;
use openssl::symm::Crypter;

use crate::kdf::{Kdf, BLOCK, HEADER_LEN};

/// Decrypts and inflates all of `input` (positioned after the header and the first block, which is `first`);
/// on success, returns the one line that says what was checked.
pub fn run(
    input: Box<dyn Read + Send>,
    first: [u8; BLOCK],
    crypter: Crypter,
    kdf: Kdf,
    progress: Progress,
) -> Result<String> {
    let read = Arc::new(AtomicU64::new(0));
    let counted = Box::new(Counting { inner: input, count: read.clone() });
    let mut sink = Sink { bytes: 0, sha: Sha256::new() };
    crate::stream::run(counted, first.to_vec(), crypter, true, true, progress, &mut sink)?;
    let encrypted = (HEADER_LEN + BLOCK) as u64 + read.load(Ordering::Relaxed);
    Ok(report(encrypted, sink.bytes, kdf, &sink.sha.finish()))
}

/// `backup intact: …` with the figures an operator can compare: the encrypted size with the store's, the
/// SQL size and SHA-256 with a decrypted copy (`sha256sum`).
fn report(encrypted: u64, sql: u64, kdf: Kdf, sha: &[u8; 32]) -> String {
    let hex = a9s_core::encode::hex(sha);
    format!(
        "backup intact: {encrypted} encrypted bytes ({}) decrypted with {kdf}, padding and every gzip member's \
         CRC-32 and length checked; {sql} bytes of SQL ({}), SHA-256 {hex}",
        human_bytes(encrypted),
        human_bytes(sql)
    )
}

struct Counting {
    inner: Box<dyn Read + Send>,
    count: Arc<AtomicU64>,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Where the SQL goes: counted and hashed, then dropped.
struct Sink {
    bytes: u64,
    sha: Sha256,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes += buf.len() as u64;
        self.sha.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kdf::Digest;

    #[test]
    fn report_names_what_was_checked() {
        let line = report(1056, 4096, Kdf::BytesToKey(Digest::Md5), &[0xab; 32]);
        assert!(line.starts_with("backup intact: 1056 encrypted bytes (1.0 KiB) decrypted with -md md5"), "{line}");
        assert!(line.contains("4096 bytes of SQL (4.0 KiB), SHA-256 abab"), "{line}");
    }
}
