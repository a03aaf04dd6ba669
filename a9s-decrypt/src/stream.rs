//! The streaming part: one thread reads and decrypts, the calling thread inflates, a third writes, with bounded
//! channels of fixed-size chunks between them, so memory stays flat whatever the size of the backup and the
//! costs (AES, inflate, the write into a pipe or the page cache) overlap.

use std::io::{Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use a9s_core::progress::{Mode, Progress};
use a9s_core::{Error, Result};
use flate2::{Decompress, FlushDecompress, Status};
use openssl::symm::Crypter;

use crate::kdf::{padding_len, BLOCK};

/// Ciphertext read (and plaintext sent) per step. Large, so that syscalls and channel hand-offs are rare and
/// zlib spends its time in its fast loop; small enough that everything in flight stays a few MiB.
pub const CHUNK: usize = 1 << 20;
/// Decrypted chunks waiting for the inflater; with one being filled and one being inflated, 4 MiB in all.
const IN_FLIGHT: usize = 2;
/// Empty buffers kept for reuse.
const POOL: usize = IN_FLIGHT + 2;
/// Inflated bytes collected before one write.
const OUT_BUF: usize = 1 << 20;
/// Room below which the output buffer is written out first: zlib's fast loop needs at least 258 bytes, and
/// small calls are slow.
const MIN_ROOM: usize = 64 << 10;

/// A decrypted chunk: `buf[..len]` is data; `buf` goes back to the decrypt thread for reuse.
struct Plain {
    buf: Vec<u8>,
    len: usize,
}

/// Decrypts `input` (positioned after the 16-byte header; `first` holds ciphertext already read from it) and
/// writes the plaintext, gunzipped when `gunzip`, to `out`.
pub fn run(
    input: Box<dyn Read + Send>,
    first: Vec<u8>,
    crypter: Crypter,
    gunzip: bool,
    key_verified: bool,
    mut progress: Progress,
    out: &mut (dyn Write + Send),
) -> Result<()> {
    let draws = progress.mode() == Mode::Draw;
    let (tx, rx) = sync_channel::<Result<Plain>>(IN_FLIGHT);
    // Buffers come back through pools, so the steady state allocates nothing, and a new buffer is made only
    // while all others are in a bounded queue or being worked on: memory stays bounded.
    let (plain_pool_tx, plain_pool_rx) = sync_channel::<Vec<u8>>(POOL);
    let reader = std::thread::Builder::new()
        .name("decrypt".into())
        .spawn(move || {
            let mut d =
                Decrypter { input, crypter, carry: first, key_verified, progress: &mut progress, pool: plain_pool_rx };
            if let Err(e) = d.run(&tx) {
                let _ = tx.send(Err(e));
            }
            progress.finish();
        })
        .expect("spawn the decrypt thread");

    // Writing has its own thread too: a write into a pipe or the page cache then never stalls inflating.
    let (wtx, wrx) = sync_channel::<Plain>(IN_FLIGHT);
    let (out_pool_tx, out_pool_rx) = sync_channel::<Vec<u8>>(POOL);
    // Without gunzip, decrypted chunks go to the writer as they are and from there back to the decrypter.
    let writer_pool = if gunzip { out_pool_tx } else { plain_pool_tx.clone() };
    let result = std::thread::scope(|s| {
        let writer = std::thread::Builder::new()
            .name("write".into())
            .spawn_scoped(s, move || write_loop(out, wrx, writer_pool))
            .expect("spawn the write thread");
        let mut q = OutQueue { tx: wtx, pool: out_pool_rx };
        let pumped = pump(&rx, &plain_pool_tx, gunzip, &mut q);
        // Ends the writer's input: it writes what it has and stops.
        drop(q);
        let written = writer.join().unwrap_or_else(|_| Err(Error::failure("internal error: the writer failed")));
        match pumped {
            Ok(()) => written,
            Err(Stop::Failed(e)) => Err(e),
            // The writer stopped first; its error says why.
            Err(Stop::WriterGone) => written.and(Err(Error::failure("internal error: the writer stopped early"))),
        }
    });
    drop(rx);
    if result.is_ok() {
        // The thread has sent its last chunk; this only collects it. After an error we do not wait: it may be
        // blocked reading a slow input, and the process is about to exit.
        let _ = reader.join();
    } else if draws {
        // Clears the decrypt thread's progress line, so the error starts on a clean line.
        eprint!("\r\x1b[K");
    }
    result
}

/// Why the inflating loop stopped early.
enum Stop {
    Failed(Error),
    WriterGone,
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Failed(e)
    }
}

/// Full buffers on their way to the writer, and empty ones coming back.
struct OutQueue {
    tx: SyncSender<Plain>,
    pool: Receiver<Vec<u8>>,
}

impl OutQueue {
    fn send(&mut self, p: Plain) -> std::result::Result<(), Stop> {
        self.tx.send(p).map_err(|_| Stop::WriterGone)
    }

    fn fresh(&mut self) -> Vec<u8> {
        self.pool.try_recv().unwrap_or_else(|_| vec![0u8; OUT_BUF])
    }
}

/// Takes the decrypted chunks in order and passes them, inflated or not, to the writer.
fn pump(
    rx: &Receiver<Result<Plain>>,
    plain_pool: &SyncSender<Vec<u8>>,
    gunzip: bool,
    q: &mut OutQueue,
) -> std::result::Result<(), Stop> {
    if !gunzip {
        for item in rx.iter() {
            q.send(item?)?;
        }
        return Ok(());
    }
    let mut gz = Gunzip::new(q.fresh());
    for item in rx.iter() {
        let p = item?;
        gz.feed(&p.buf[..p.len], q)?;
        let _ = plain_pool.try_send(p.buf);
    }
    gz.finish(q)
}

fn write_loop(out: &mut (dyn Write + Send), rx: Receiver<Plain>, pool: SyncSender<Vec<u8>>) -> Result<()> {
    for p in rx.iter() {
        out.write_all(&p.buf[..p.len]).map_err(write_error)?;
        let _ = pool.try_send(p.buf);
    }
    out.flush().map_err(write_error)
}

fn write_error(e: std::io::Error) -> Error {
    Error::io("cannot write the output", &e)
}

struct Decrypter<'a> {
    input: Box<dyn Read + Send>,
    crypter: Crypter,
    /// Ciphertext read but not yet decrypted: a partial block, and always the last complete block, which is
    /// held back until end of input since only the very last block carries the padding.
    carry: Vec<u8>,
    /// The first block proved the key right, so bad padding can only mean damaged or truncated data.
    key_verified: bool,
    progress: &'a mut Progress,
    pool: Receiver<Vec<u8>>,
}

impl Decrypter<'_> {
    fn run(&mut self, tx: &SyncSender<Result<Plain>>) -> Result<()> {
        let mut cbuf = vec![0u8; CHUNK + 2 * BLOCK];
        let mut len = self.carry.len();
        cbuf[..len].copy_from_slice(&self.carry);
        let mut ciphertext_total = len as u64;
        self.progress.add(len as u64 + crate::kdf::HEADER_LEN as u64);
        loop {
            let (n, eof) = fill(&mut *self.input, &mut cbuf[len..CHUNK + BLOCK])?;
            len += n;
            ciphertext_total += n as u64;
            self.progress.add(n as u64);
            let mut plain = self.pool.try_recv().unwrap_or_else(|_| vec![0u8; CHUNK + 3 * BLOCK]);
            if eof {
                if ciphertext_total == 0 {
                    return Err(Error::failure(
                        "no encrypted data after the Salted__ header: the input is truncated (a missing part?)",
                    ));
                }
                if len % BLOCK != 0 {
                    return Err(Error::failure(format!(
                        "truncated input: the encrypted data ({ciphertext_total} bytes after the header) is not a whole number of 16-byte AES blocks (a missing or short last part?)"
                    )));
                }
                let n = self.update(&cbuf[..len], &mut plain)?;
                let pad = padding_len(&plain[n - BLOCK..n]).ok_or_else(|| {
                    Error::failure(if self.key_verified {
                        "truncated or corrupted input: bad padding in the last block (a part missing at the end, or a damaged part?)"
                    } else {
                        "bad padding in the last block: wrong secret or corrupted data (a truncated stream, or a part missing at the end?)"
                    })
                })?;
                let _ = tx.send(Ok(Plain { buf: plain, len: n - pad }));
                return Ok(());
            }
            // Decrypt all whole blocks but the last; keep it (and any partial block) for the next round.
            let whole = len / BLOCK * BLOCK;
            let upto = whole.saturating_sub(BLOCK);
            if upto == 0 {
                continue;
            }
            let n = self.update(&cbuf[..upto], &mut plain)?;
            if tx.send(Ok(Plain { buf: plain, len: n })).is_err() {
                // The writer stopped with its own error, which is the one to report.
                return Ok(());
            }
            cbuf.copy_within(upto..len, 0);
            len -= upto;
        }
    }

    fn update(&mut self, input: &[u8], out: &mut [u8]) -> Result<usize> {
        let n = self
            .crypter
            .update(input, out)
            .map_err(|e| Error::failure(format!("AES decryption failed in the OpenSSL library: {e}")))?;
        debug_assert_eq!(n, input.len());
        Ok(n)
    }
}

/// Reads until `buf` is full or the input ends.
fn fill(r: &mut dyn Read, buf: &mut [u8]) -> Result<(usize, bool)> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => return Ok((n, true)),
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("cannot read the input", &e)),
        }
    }
    Ok((n, false))
}

/// Reads until `buf` is full or the input ends; for the header, before the threads start.
pub fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> Result<usize> {
    fill(r, buf).map(|(n, _)| n)
}

/// The gzip magic and method every member starts with.
const GZIP_START: [u8; 3] = [0x1f, 0x8b, 0x08];

/// Multi-member gunzip over zlib-rs, which checks each member's header, CRC-32 and length. Done here rather
/// than with flate2's `MultiGzDecoder` to tell the operator precisely what is wrong: a truncated stream,
/// a damaged member, or trailing bytes that are not another member.
struct Gunzip {
    d: Decompress,
    out: Vec<u8>,
    filled: usize,
    /// Inside a member: its header has begun and its trailer has not been checked yet.
    in_member: bool,
    members: u64,
    /// Bytes after a member's end, until we know whether another member starts there.
    probe: Vec<u8>,
    /// Decrypted bytes consumed, for messages.
    consumed: u64,
}

impl Gunzip {
    fn new(out: Vec<u8>) -> Self {
        Gunzip {
            d: Decompress::new_gzip(15),
            out,
            filled: 0,
            in_member: false,
            members: 0,
            probe: Vec::with_capacity(GZIP_START.len()),
            consumed: 0,
        }
    }

    fn feed(&mut self, mut input: &[u8], q: &mut OutQueue) -> std::result::Result<(), Stop> {
        while !input.is_empty() {
            if !self.in_member {
                if self.members == 0 {
                    self.in_member = true;
                } else {
                    let take = (GZIP_START.len() - self.probe.len()).min(input.len());
                    self.probe.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    if !GZIP_START.starts_with(&self.probe) {
                        return Err(self.trailing_garbage().into());
                    }
                    if self.probe.len() < GZIP_START.len() {
                        continue;
                    }
                    // Another member (pigz and concatenated gzip files make these): inflate it too.
                    self.in_member = true;
                    let probe = std::mem::take(&mut self.probe);
                    let used = self.inflate(&probe, q)?;
                    debug_assert_eq!(used, probe.len());
                    self.probe = probe;
                    self.probe.clear();
                    continue;
                }
            }
            let used = self.inflate(input, q)?;
            input = &input[used..];
        }
        Ok(())
    }

    /// Inflates until `input` is used up or the member ends; returns the bytes used.
    fn inflate(&mut self, input: &[u8], q: &mut OutQueue) -> std::result::Result<usize, Stop> {
        let mut pos = 0;
        loop {
            if self.out.len() - self.filled < MIN_ROOM {
                self.flush(q)?;
            }
            let (in0, out0) = (self.d.total_in(), self.d.total_out());
            let status = self.d.decompress(&input[pos..], &mut self.out[self.filled..], FlushDecompress::None);
            let used = (self.d.total_in() - in0) as usize;
            let made = (self.d.total_out() - out0) as usize;
            pos += used;
            self.filled += made;
            self.consumed += used as u64;
            match status {
                Err(e) => return Err(self.corrupt(e.message()).into()),
                Ok(Status::StreamEnd) => {
                    self.members += 1;
                    self.in_member = false;
                    self.d.reset(true);
                    return Ok(pos);
                }
                Ok(_) if pos == input.len() => return Ok(pos),
                Ok(_) if used == 0 && made == 0 => {
                    return Err(Error::failure("internal error: zlib made no progress with input and room").into())
                }
                Ok(_) => {}
            }
        }
    }

    fn finish(&mut self, q: &mut OutQueue) -> std::result::Result<(), Stop> {
        if self.in_member {
            // zlib may still hold output it had no room for at the last call.
            loop {
                if self.out.len() - self.filled < MIN_ROOM {
                    self.flush(q)?;
                }
                let out0 = self.d.total_out();
                let status = self.d.decompress(&[], &mut self.out[self.filled..], FlushDecompress::None);
                let made = (self.d.total_out() - out0) as usize;
                self.filled += made;
                match status {
                    Err(e) => return Err(self.corrupt(e.message()).into()),
                    Ok(Status::StreamEnd) => {
                        self.members += 1;
                        self.in_member = false;
                        break;
                    }
                    Ok(_) if made == 0 => break,
                    Ok(_) => {}
                }
            }
        }
        if self.in_member {
            return Err(Error::failure(format!(
                "truncated or corrupted input: the gzip stream ends in the middle of member {} after {} decrypted bytes (a missing last part, an interrupted download, or a damaged part?)",
                self.members + 1,
                self.consumed
            ))
            .into());
        }
        if !self.probe.is_empty() {
            return Err(self.trailing_garbage().into());
        }
        if self.members == 0 {
            return Err(Error::failure(
                "the decrypted data is empty, not gzip: if the backup was not compressed, use --no-gunzip",
            )
            .into());
        }
        self.flush(q)
    }

    fn flush(&mut self, q: &mut OutQueue) -> std::result::Result<(), Stop> {
        if self.filled > 0 {
            let fresh = q.fresh();
            let full = std::mem::replace(&mut self.out, fresh);
            q.send(Plain { buf: full, len: self.filled })?;
            self.filled = 0;
        }
        Ok(())
    }

    fn trailing_garbage(&self) -> Error {
        Error::failure(format!(
            "corrupted data: trailing bytes after the gzip stream at decrypted byte {} that do not start another gzip member (a part of another backup appended?)",
            self.consumed
        ))
    }

    fn corrupt(&self, zlib_message: Option<&str>) -> Error {
        let member = self.members + 1;
        let at = self.consumed;
        let what = match zlib_message {
            Some("incorrect data check") => format!("the gzip checksum (CRC-32) of member {member} does not match"),
            Some("incorrect length check") => format!("the gzip length of member {member} does not match"),
            Some(m @ ("incorrect header check" | "unknown compression method" | "unknown header flags set")) => {
                format!("invalid gzip header of member {member} ({m})")
            }
            Some(m) => format!("the deflate data of member {member} is damaged ({m}) near decrypted byte {at}"),
            None => format!("the deflate data of member {member} is damaged near decrypted byte {at}"),
        };
        Error::failure(format!("corrupted data: {what}: a damaged part or download"))
    }
}
