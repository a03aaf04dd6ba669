//! `--checkpoint FILE`: the record that lets a restore that died pick up where it stopped.
//!
//! FILE holds the last point of the script up to which every effect is committed on the server — a line end
//! outside a transaction block, with nothing of the lexer's pending and no `--jobs` session busy — and what a
//! new session needs to go on from there: the database and user, the session settings the script made, the
//! input encoding, the `\restrict` state. It names the script by the SHA-256 of its first MiB and of all its
//! bytes up to the point, so a checkpoint is never applied to another script, not even to a later backup of the
//! same cluster that begins alike.
//!
//! This module is the file's format and its reading and writing; the runner decides when to write it.

use std::io::Read;
use std::path::{Path, PathBuf};

use a9s_core::encode::hex;
use a9s_core::error::io_message;
use a9s_core::{Error, Result};
use openssl::sha::Sha256;
use serde::{Deserialize, Serialize};

/// The first line of every checkpoint file's `format`: another value is another program's file or version.
pub const FORMAT: &str = "a9s-pgrestore checkpoint 1";

/// How much of the script's beginning names it before anything is run.
pub const HEAD_BYTES: u64 = 1 << 20;

/// Which script a checkpoint belongs to, known from its first MiB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// SHA-256 (hex) of the first `head_bytes` bytes.
    pub head_sha256: String,
    pub head_bytes: u64,
    /// pg_dumpall's or pg_dump's version comment (`-- Dumped by pg_dump version 15.18 …`), when there is one.
    pub dumped_by: Option<String>,
}

impl Identity {
    /// The identity of a script that begins with `head` (its first [`HEAD_BYTES`], or all of it).
    pub fn of(head: &[u8]) -> Identity {
        let mut h = Sha256::new();
        h.update(head);
        Identity { head_sha256: hex(&h.finish()), head_bytes: head.len() as u64, dumped_by: dumped_by(head) }
    }
}

/// pg_dump's version comment among `text`'s lines, if any.
fn dumped_by(text: &[u8]) -> Option<String> {
    text.split(|&b| b == b'\n')
        .find(|l| l.starts_with(b"-- Dumped by pg_dump") || l.starts_with(b"-- Dumped from database version"))
        .map(|l| String::from_utf8_lossy(l.strip_suffix(b"\r").unwrap_or(l)).into_owned())
}

/// Where a restore stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Running, or killed while running (nothing recorded the end).
    Restoring,
    /// Ended before the end of the script (connection lost, stopped); `interrupted_at_line` says where.
    Interrupted,
    /// Ran to the end of the script; `exit_code` says how.
    Complete,
}

/// A point of the script: everything before it is committed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Lines read (the point is the end of this line).
    pub line: u64,
    /// Bytes read.
    pub offset: u64,
    /// SHA-256 (hex) of those bytes.
    pub prefix_sha256: String,
}

/// The session the script had at the point: what a new session must be given to read on as psql would.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionState {
    pub dbname: String,
    pub user: String,
    /// As a `\connect` would name them: host list and port list, comma-separated.
    pub host: String,
    pub port: String,
    /// The script's session settings in order, each `[setting, statement]`, replayed on the new session.
    pub settings: Vec<(String, String)>,
    /// The input encoding the script had set (`\encoding`, `SET client_encoding`, or the database's).
    pub input_encoding: String,
    /// `\restrict`'s key while meta-commands are restricted.
    pub restrict: Option<String>,
    /// The server's `standard_conforming_strings` at the point; checked again after the settings are replayed.
    pub standard_conforming_strings: bool,
}

/// The content of a checkpoint file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: String,
    /// The a9s-pgrestore version that wrote it.
    pub version: String,
    pub script: Identity,
    pub state: State,
    /// With [`State::Complete`]: the restore's exit status (0, or 1 when it ran to the end with errors).
    pub exit_code: Option<i32>,
    pub position: Position,
    pub session: SessionState,
    /// The line the restore had read when it was interrupted: statements from `position` up to it may have
    /// been in flight, their outcome unknown.
    pub interrupted_at_line: Option<u64>,
    /// The server's `pg_control_system().system_identifier`, when the role may read it: a checkpoint is only
    /// resumed on the cluster it was written for.
    pub system_identifier: Option<String>,
    /// Seconds since the epoch at the last write.
    pub written_at: u64,
}

impl Checkpoint {
    /// A checkpoint at the start of `script`.
    pub fn new(script: Identity) -> Checkpoint {
        Checkpoint {
            format: FORMAT.to_string(),
            version: a9s_core::VERSION.to_string(),
            script,
            state: State::Restoring,
            exit_code: None,
            position: Position { prefix_sha256: hex(&Sha256::new().finish()), ..Position::default() },
            session: SessionState::default(),
            interrupted_at_line: None,
            system_identifier: None,
            written_at: 0,
        }
    }
}

/// FILE on disk: two slots of [`SLOT`] bytes, written in turn, each a header line `MAGIC seq len sha256` and the
/// checkpoint as JSON. A point is one `pwrite` (microseconds, where replacing a file costs a rename and the
/// journal's work each time): a process killed at any moment leaves the last complete record, and a crash of
/// the machine at worst a torn slot, which its checksum rejects for the other one. The file is opened once
/// (O_NOFOLLOW: never through a symbolic link; mode 0600) and locked (flock) against a second run.
pub struct CheckpointFile {
    file: std::fs::File,
    path: PathBuf,
    seq: u64,
}

/// The name of the user the process runs as (not `$USER`, which `chpst -u` leaves as it was); empty if unknown.
fn effective_user() -> String {
    let mut buf = vec![0u8; 4096];
    // SAFETY: getpwuid_r writes into `pw` and `buf`, both ours and of the sizes given; `name` points into buf.
    unsafe {
        let mut pw: libc::passwd = std::mem::zeroed();
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let uid = libc::geteuid();
        if libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut found) != 0 || found.is_null() {
            return String::new();
        }
        std::ffi::CStr::from_ptr(pw.pw_name).to_string_lossy().into_owned()
    }
}

/// Bytes per slot: far more than any checkpoint needs (a few hundred bytes, plus the script's settings).
pub const SLOT: u64 = 1 << 20;
const MAGIC: &str = "a9s-pgrestore-checkpoint";

impl CheckpointFile {
    /// Opens FILE (creating it, and its missing folders with mode 0700 for the user running the restore), locks
    /// it and reads the newest complete checkpoint in it: `None` for a new file. A symbolic link, a file in use
    /// by another run, one that holds no checkpoint or cannot be opened is an error that says what to do, with
    /// exit status 1: running the same command again meets it again.
    pub fn open(path: &Path) -> Result<(CheckpointFile, Option<Checkpoint>)> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        use std::os::unix::io::AsRawFd;
        let shown = path.display();
        let cannot = |e: &std::io::Error| {
            let user = effective_user();
            let who = if user.is_empty() { String::new() } else { format!(" ({user})") };
            Error::failure(format!(
                "{}; give a FILE in a folder the user running a9s-pgrestore{who} can write, e.g. one made with \
                 `install -d -o {} -m 0700 DIR`",
                io_message(format_args!("cannot open --checkpoint {shown}"), e),
                if user.is_empty() { "USER" } else { &user }
            ))
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| cannot(&e))?;
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| {
                if e.raw_os_error() == Some(libc::ELOOP) {
                    Error::failure(format!(
                        "--checkpoint {shown} is a symbolic link: a9s-pgrestore reads and writes its checkpoint only \
                         as a plain file; give the file's own path"
                    ))
                } else {
                    cannot(&e)
                }
            })?;
        // SAFETY: flock on a descriptor we own; the lock goes with it, however the process ends.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(if e.kind() == std::io::ErrorKind::WouldBlock {
                // A second run beside the first is a mistake, not a reason to retry: 1.
                Error::failure(format!(
                    "--checkpoint {shown}: another a9s-pgrestore is using this checkpoint; wait for it to end"
                ))
            } else {
                Error::failure(io_message(format_args!("cannot lock --checkpoint {shown}"), &e))
            });
        }
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut store = CheckpointFile { file, path: path.to_path_buf(), seq: 0 };
        if len == 0 {
            return Ok((store, None));
        }
        let newest = (0..2).filter_map(|slot| store.read_slot(slot)).max_by_key(|(seq, _)| *seq);
        let not_ours = |why: String| {
            Error::failure(format!(
                "--checkpoint {shown} is not a checkpoint this a9s-pgrestore can resume ({why}); give another FILE, or \
                 remove it to restore from the start"
            ))
        };
        let Some((seq, text)) = newest else {
            return Err(not_ours("no complete record in it".into()));
        };
        let value: serde_json::Value = serde_json::from_slice(&text).map_err(|e| not_ours(e.to_string()))?;
        match value.get("format").and_then(|f| f.as_str()) {
            Some(FORMAT) => {}
            Some(other) => return Err(not_ours(format!("its format is \"{other}\""))),
            None => return Err(not_ours("no format".into())),
        }
        let checkpoint = serde_json::from_value(value).map_err(|e| not_ours(e.to_string()))?;
        store.seq = seq;
        Ok((store, Some(checkpoint)))
    }

    /// A slot's record if it is complete: (seq, JSON).
    fn read_slot(&self, slot: u64) -> Option<(u64, Vec<u8>)> {
        use std::os::unix::fs::FileExt;
        let mut head = [0u8; 160];
        let n = self.file.read_at(&mut head, slot * SLOT).ok()?;
        let end = head[..n].iter().position(|&b| b == b'\n')?;
        let line = std::str::from_utf8(&head[..end]).ok()?;
        let mut f = line.split(' ');
        if f.next()? != MAGIC {
            return None;
        }
        let seq: u64 = f.next()?.parse().ok()?;
        let len: u64 = f.next()?.parse().ok()?;
        let sha = f.next()?;
        if len > SLOT - end as u64 - 1 {
            return None;
        }
        let mut text = vec![0u8; len as usize];
        self.file.read_exact_at(&mut text, slot * SLOT + end as u64 + 1).ok()?;
        let mut h = Sha256::new();
        h.update(&text);
        (hex(&h.finish()) == sha).then_some((seq, text))
    }

    /// Records `c` in the older slot; with `sync`, on disk before it returns.
    pub fn write(&mut self, c: &mut Checkpoint, sync: bool) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        c.written_at =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
        let json = serde_json::to_vec(c).expect("a checkpoint serializes");
        let mut h = Sha256::new();
        h.update(&json);
        let seq = self.seq + 1;
        let mut record = format!("{MAGIC} {seq} {} {}\n", json.len(), hex(&h.finish())).into_bytes();
        record.extend_from_slice(&json);
        record.push(b'\n');
        if record.len() as u64 > SLOT {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the script's session settings are too large for a checkpoint",
            ));
        }
        self.file.write_all_at(&record, (seq % 2) * SLOT)?;
        if sync {
            self.file.sync_data()?;
            if self.seq == 0 {
                // The file's name must survive a crash too.
                if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::File::open(dir)?.sync_all()?;
                }
            }
        }
        self.seq = seq;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The statements of a resumed run whose outcome is unknown: the first one after the point, and any that began
/// up to the line the interrupted run had read. The server may have committed them before the answer was lost.
///
/// When the interrupted run could not record its end (killed, or its machine crashed), its last points may not
/// have reached the disk: they are synced after each COPY and `\connect` and at least every second. Then every
/// statement up to the first COPY or `\connect` after the point is in flight: past that one, nothing can have
/// run without a synced point.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InFlight {
    /// Statements that begin on or before this line are in flight.
    end: u64,
    /// The first statement after the point has not come yet.
    first_pending: bool,
    /// Every statement is in flight until the first COPY or `\connect`.
    until_synced: bool,
}

impl InFlight {
    /// None in flight: a first run.
    pub fn none() -> InFlight {
        InFlight::default()
    }

    /// Resuming from `from`.
    pub fn after(from: &Checkpoint) -> InFlight {
        InFlight {
            end: from.interrupted_at_line.unwrap_or(0).max(from.position.line + 1),
            first_pending: true,
            until_synced: from.state == State::Restoring,
        }
    }

    /// A statement spanning up to `last_line` is about to run.
    pub fn enter(&mut self, last_line: u64) {
        if self.first_pending || self.until_synced {
            self.first_pending = false;
            self.end = self.end.max(last_line);
        }
    }

    /// A COPY or `\connect` has run: its point was synced, so later statements cannot have run unrecorded.
    pub fn synced(&mut self) {
        self.until_synced = false;
    }

    /// Whether the statement that begins at `line` may have run before.
    pub fn contains(&self, line: u64) -> bool {
        line <= self.end
    }

    /// The line to record if this run is interrupted at `line`: a run that dies before it has passed the
    /// statements in flight keeps them so.
    pub fn interrupted_at(&self, line: u64) -> u64 {
        line.max(self.end)
    }
}

/// Reads the first `n` bytes of the script (fewer if it is shorter), to check a checkpoint's identity before
/// anything is run. The caller reads on with these bytes first.
pub fn read_head(input: &mut impl Read, n: u64) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(n.min(HEAD_BYTES) as usize);
    // Not even a read when nothing is wanted: on a pipe it would wait for the writer.
    if n > 0 {
        input.take(n).read_to_end(&mut head)?;
    }
    Ok(head)
}

/// The identity of the script, taken as its first [`HEAD_BYTES`] stream by: a first run does not wait for a
/// whole MiB before it begins, so a checkpoint written sooner names the script by the bytes read until then.
#[derive(Clone)]
pub struct HeadHash {
    sha: Sha256,
    bytes: u64,
    dumped_by: Option<String>,
    /// Once the head is whole, its identity no longer changes: computed once (a point is written per statement).
    whole: Option<Identity>,
}

impl Default for HeadHash {
    fn default() -> Self {
        HeadHash { sha: Sha256::new(), bytes: 0, dumped_by: None, whole: None }
    }
}

impl HeadHash {
    /// Takes the next bytes of the script, a line or a block (only what falls in the head counts).
    pub fn update(&mut self, line: &[u8]) {
        let room = (HEAD_BYTES - self.bytes).min(line.len() as u64) as usize;
        if room == 0 {
            return;
        }
        self.sha.update(&line[..room]);
        self.bytes += room as u64;
        if self.dumped_by.is_none() {
            self.dumped_by = dumped_by(&line[..room]);
        }
        if self.bytes == HEAD_BYTES {
            self.whole = Some(self.compute());
        }
    }

    pub fn identity(&self) -> Identity {
        self.whole.clone().unwrap_or_else(|| self.compute())
    }

    fn compute(&self) -> Identity {
        Identity {
            head_sha256: hex(&self.sha.clone().finish()),
            head_bytes: self.bytes,
            dumped_by: self.dumped_by.clone(),
        }
    }
}

impl Identity {
    /// Whether a script whose first bytes are `head` is the one named (`head` holds at least `head_bytes`).
    pub fn matches(&self, head: &[u8]) -> bool {
        let mut sha = Sha256::new();
        sha.update(head);
        head.len() as u64 == self.head_bytes && hex(&sha.finish()) == self.head_sha256
    }
}

/// The running SHA-256 of the script's bytes read so far.
#[derive(Clone)]
pub struct PrefixHash(Sha256);

impl Default for PrefixHash {
    fn default() -> Self {
        PrefixHash(Sha256::new())
    }
}

impl PrefixHash {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    /// The digest so far (hex); the hash goes on.
    pub fn hex(&self) -> String {
        hex(&self.0.clone().finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_names_the_head_and_the_version() {
        let head = b"--\n-- PostgreSQL database cluster dump\n--\n-- Dumped from database version 15.18\r\n";
        let id = Identity::of(head);
        assert_eq!(id.head_bytes, head.len() as u64);
        assert_eq!(id.dumped_by.as_deref(), Some("-- Dumped from database version 15.18"));
        assert_ne!(Identity::of(b"other").head_sha256, id.head_sha256);
        // The empty prefix's hash is SHA-256 of nothing.
        assert_eq!(
            Checkpoint::new(id).position.prefix_sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn head_hash_streams_the_identity() {
        let script = b"--\n-- Dumped by pg_dump version 15.18\nSELECT 1;\n";
        let mut h = HeadHash::default();
        for line in script.split_inclusive(|&b| b == b'\n') {
            h.update(line);
        }
        assert_eq!(h.identity(), Identity::of(script));
        assert!(h.identity().matches(script));
        assert!(!h.identity().matches(&script[..10]));
    }

    #[test]
    fn in_flight_statements() {
        assert!(!InFlight::none().contains(1));
        let mut c = Checkpoint::new(Identity::of(b""));
        c.position.line = 10;
        c.state = State::Interrupted;
        // Killed client: nothing says how far it had read; the next statement, whatever its length, is in flight.
        let mut f = InFlight::after(&c);
        assert!(f.contains(11) && !f.contains(14));
        f.enter(14);
        assert!(f.contains(14) && !f.contains(15));
        f.enter(40);
        assert!(!f.contains(15), "only the first statement extends it");
        assert_eq!(f.interrupted_at(12), 14);
        // Lost server: everything up to the line read.
        c.interrupted_at_line = Some(30);
        c.state = State::Interrupted;
        let f = InFlight::after(&c);
        assert!(f.contains(30) && !f.contains(31));
        // The end not recorded (a crash may have lost the last unsynced points): up to the first COPY.
        c.interrupted_at_line = None;
        c.state = State::Restoring;
        let mut f = InFlight::after(&c);
        f.enter(12);
        f.enter(20);
        f.enter(25); // the COPY
        f.synced();
        f.enter(40);
        assert!(f.contains(25) && !f.contains(26));
    }

    #[test]
    fn prefix_hash_goes_on_after_a_digest() {
        let mut h = PrefixHash::default();
        h.update(b"ab");
        let _ = h.hex();
        h.update(b"c");
        let mut whole = PrefixHash::default();
        whole.update(b"abc");
        assert_eq!(h.hex(), whole.hex());
    }

    #[test]
    fn two_slots_survive_a_torn_record_and_refusals() {
        use std::os::unix::fs::FileExt;
        let dir = std::env::temp_dir().join(format!("a9s-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ckpt");
        let (mut store, none) = CheckpointFile::open(&path).unwrap();
        assert_eq!(none, None);
        let mut c = Checkpoint::new(Identity::of(b"x"));
        for line in 1..=3 {
            c.position.line = line;
            store.write(&mut c, line == 3).unwrap();
        }
        // Locked while open.
        let e = CheckpointFile::open(&path).err().unwrap();
        assert!(e.message.contains("another a9s-pgrestore"), "{}", e.message);
        drop(store);
        let (_, got) = CheckpointFile::open(&path).unwrap();
        assert_eq!(got.unwrap().position.line, 3);
        // The newest record torn (a crash in the middle of its write): the other slot's is taken.
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(b"garbage", SLOT + 200).unwrap();
        let (_, got) = CheckpointFile::open(&path).unwrap();
        assert_eq!(got.unwrap().position.line, 2);

        std::fs::write(&path, b"{\"format\": \"something else\"}").unwrap();
        let e = CheckpointFile::open(&path).err().unwrap();
        assert!(e.message.contains("is not a checkpoint"), "{}", e.message);
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(dir.join("elsewhere"), &path).unwrap();
        let e = CheckpointFile::open(&path).err().unwrap();
        assert!(e.message.contains("symbolic link"), "{}", e.message);
        assert!(!dir.join("elsewhere").exists(), "nothing created through the link");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
