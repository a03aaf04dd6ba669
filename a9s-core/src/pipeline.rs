//! How far through the backup a pipe is: the first program tells the last through a small file.
//!
//! In `a9s-fetch … -o - | a9s-decrypt | a9s-pgrestore` only a9s-fetch knows the backup's size (the sum of its
//! parts, from the store); a9s-pgrestore, which draws the progress line, sees decompressed SQL of no known
//! length. So the program that knows the total — a9s-fetch or a9s-cat-parts writing into a pipe, or a9s-decrypt
//! reading a regular file — publishes `<bytes done> <total>` in a file named after the pipe it writes into:
//! `a9s-progress-<uid>-<dev>-<inode>` in `$XDG_RUNTIME_DIR` (else `/tmp`), where `<dev>-<inode>` identify the pipe
//! (`fstat` of descriptor 1). A filter between them that does not know the total (a9s-decrypt reading a pipe)
//! writes, under the name of its own output pipe, only `via <dev>-<inode>` of its input pipe. The last program
//! looks up the name of its input pipe and follows the `via`s to the position.
//!
//! Why the pipe and not the process group (which the programs of one shell pipeline share): a script without job
//! control runs every pipeline, including ones in the background at the same time, in its own process group, so
//! a process group names no one pipeline; a pipe is exactly the link between two programs. A program that is
//! not ours in between (`pv`, `tee`) breaks the chain, and the last program then says the total is unknown rather
//! than guess.
//!
//! Safety: the files are created 0600 with `O_EXCL|O_NOFOLLOW`, and read only if they are regular files owned by
//! the user, not readable by others, and (for a position) written by a process still alive; they carry sizes, a
//! process id and the backup's id, nothing secret. The publisher rewrites its fixed-length record in place with
//! `pwrite` at most four times a second, with a check value so that a reader never takes a torn record, and
//! removes the file when it ends (a program killed by a signal leaves it behind; the next pipe with the same
//! inode replaces it, and readers ignore it since its writer is gone).

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

/// How often a publisher rewrites its record, at most.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(250);
/// The first word of every record.
const MAGIC: &str = "a9s-progress 1";
/// `via` hops followed before giving up (a loop, or a pipe of more filters than any real one).
const MAX_HOPS: usize = 8;

/// A pipe (or socket): the device and inode of the descriptor's file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PipeId {
    dev: u64,
    ino: u64,
}

impl PipeId {
    /// The pipe or socket on descriptor `fd`; `None` when it is anything else (a file, a terminal).
    pub fn of_fd(fd: libc::c_int) -> Option<PipeId> {
        // SAFETY: fstat only writes the struct it is given.
        let st = unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            if libc::fstat(fd, &mut st) != 0 {
                return None;
            }
            st
        };
        let kind = st.st_mode & libc::S_IFMT;
        (kind == libc::S_IFIFO || kind == libc::S_IFSOCK).then_some(PipeId { dev: st.st_dev, ino: st.st_ino })
    }

    fn path(self) -> PathBuf {
        let dir = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|d| d.is_absolute() && d.is_dir())
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        // SAFETY: getuid cannot fail.
        let uid = unsafe { libc::getuid() };
        dir.join(format!("a9s-progress-{uid}-{}-{}", self.dev, self.ino))
    }
}

/// Creates the file for `pipe`, replacing a stale one of ours; `None` if that cannot be done safely.
fn create(pipe: PipeId) -> Option<(File, PathBuf)> {
    let path = pipe.path();
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    for _ in 0..2 {
        // SAFETY: a valid C string; the descriptor is owned by the File at once.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o600 as libc::c_uint,
            )
        };
        if fd >= 0 {
            return Some((unsafe { File::from_raw_fd(fd) }, path));
        }
        // The pipe is ours and alive now, so a file of its name is left over from a killed program: remove it
        // if it is ours (someone else's stays, and we publish nothing).
        let meta = std::fs::symlink_metadata(&path).ok()?;
        use std::os::unix::fs::MetadataExt;
        if meta.uid() != unsafe { libc::getuid() } || !meta.file_type().is_file() {
            return None;
        }
        std::fs::remove_file(&path).ok()?;
    }
    None
}

fn pwrite_all(file: &File, data: &[u8]) -> bool {
    // SAFETY: writes from a valid buffer of its length.
    let n = unsafe { libc::pwrite(file.as_raw_fd(), data.as_ptr().cast(), data.len(), 0) };
    n == data.len() as isize
}

fn check_value(pid: u64, done: u64, total: u64) -> u64 {
    (done ^ total.rotate_left(21) ^ pid.rotate_left(42) ^ 0xA9A9_5EC0_DE00_0001).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// One record: fixed length for a given id, so each rewrite covers the last.
fn position_record(pid: u64, done: u64, total: u64, id: &str) -> String {
    format!("{MAGIC} {pid:010} {done:020} {total:020} {:020} {id}\n", check_value(pid, done, total))
}

/// What a file says: a position, or where to look next.
#[derive(Debug, PartialEq, Eq)]
enum Record {
    Position { pid: u64, done: u64, total: u64 },
    Via(PipeId),
}

fn parse_record(text: &str) -> Option<Record> {
    let rest = text.strip_prefix(MAGIC)?.strip_prefix(' ')?;
    let mut w = rest.split(' ');
    let first = w.next()?;
    if first == "via" {
        let (dev, ino) = w.next()?.trim_end().split_once('-')?;
        return Some(Record::Via(PipeId { dev: dev.parse().ok()?, ino: ino.parse().ok()? }));
    }
    let pid: u64 = first.parse().ok()?;
    let done: u64 = w.next()?.parse().ok()?;
    let total: u64 = w.next()?.parse().ok()?;
    let check: u64 = w.next()?.trim_end().parse().ok()?;
    (check == check_value(pid, done, total) && done <= total).then_some(Record::Position { pid, done, total })
}

/// The first program's side: its position in the backup, for the pipe it writes into.
pub struct Publisher {
    file: File,
    path: PathBuf,
    pid: u64,
    total: u64,
    id: String,
    done: u64,
}

impl Publisher {
    /// For standard output when it is a pipe: `total` bytes to come, of the backup `id`. `None` when standard
    /// output is no pipe, or the file cannot be made safely (progress is a courtesy, never a reason to fail).
    pub fn for_stdout(total: u64, id: &str) -> Option<Publisher> {
        let (file, path) = create(PipeId::of_fd(1)?)?;
        let id = id.chars().filter(|c| c.is_ascii_graphic()).take(120).collect();
        let mut p = Publisher { file, path, pid: std::process::id().into(), total, id, done: 0 };
        p.write();
        Some(p)
    }

    /// `done` bytes so far (the caller calls it a few times a second at most: [`PUBLISH_EVERY`]).
    pub fn update(&mut self, done: u64) {
        self.done = done.min(self.total);
        self.write();
    }

    fn write(&mut self) {
        let _ = pwrite_all(&self.file, position_record(self.pid, self.done, self.total, &self.id).as_bytes());
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A filter's side (a9s-decrypt reading a pipe, writing a pipe): points the next program to its own input.
pub struct Relay {
    path: PathBuf,
}

impl Relay {
    /// When both standard input and standard output are pipes.
    pub fn stdin_to_stdout() -> Option<Relay> {
        let from = PipeId::of_fd(0)?;
        let (file, path) = create(PipeId::of_fd(1)?)?;
        // Made first, so that the file goes away with it even if the write fails.
        let relay = Relay { path };
        pwrite_all(&file, format!("{MAGIC} via {}-{}\n", from.dev, from.ino).as_bytes()).then_some(relay)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Where the first program is: bytes done of the total.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub done: u64,
    pub total: u64,
}

/// The last program's side: reads the position published for the pipe it reads from.
pub struct Source {
    start: PipeId,
    /// The publisher's file, once found (kept open: its last record stays readable after it is removed).
    found: Option<File>,
}

impl Source {
    /// For standard input when it is a pipe.
    pub fn for_stdin() -> Option<Source> {
        Some(Source { start: PipeId::of_fd(0)?, found: None })
    }

    /// The latest position; `None` while none is published (the publisher may not have started yet).
    pub fn read(&mut self) -> Option<Position> {
        if self.found.is_none() {
            self.found = self.resolve();
        }
        match parse_record(&read_small(self.found.as_ref()?)?)? {
            Record::Position { done, total, .. } => Some(Position { done, total }),
            Record::Via(_) => None,
        }
    }

    fn resolve(&self) -> Option<File> {
        let mut at = self.start;
        for _ in 0..MAX_HOPS {
            let file = open_checked(at.path())?;
            match parse_record(&read_small(&file)?)? {
                Record::Via(next) => at = next,
                // SAFETY: signal 0 only checks that the process exists.
                Record::Position { pid, .. } if unsafe { libc::kill(pid as libc::pid_t, 0) } == 0 => return Some(file),
                Record::Position { .. } => return None,
            }
        }
        None
    }
}

/// Opens a file only if it is a regular file of ours that nobody else can read or write.
fn open_checked(path: PathBuf) -> Option<File> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    // O_NONBLOCK: a FIFO planted under the name must not block the open.
    // SAFETY: a valid C string; the descriptor is owned by the File at once.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    let file = unsafe { File::from_raw_fd(fd) };
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata().ok()?;
    (meta.file_type().is_file() && meta.uid() == unsafe { libc::getuid() } && meta.mode() & 0o077 == 0).then_some(file)
}

fn read_small(file: &File) -> Option<String> {
    let mut buf = [0u8; 512];
    // SAFETY: reads into a valid buffer of its length.
    let n = unsafe { libc::pread(file.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    let text = std::str::from_utf8(buf.get(..usize::try_from(n).ok()?)?).ok()?;
    // Only a whole line: a record being written for the first time may be short.
    text.ends_with('\n').then(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_torn_ones_are_refused() {
        let r = position_record(4242, 1_000, 5_000, "b6f4c071-1548967947154");
        assert_eq!(parse_record(&r), Some(Record::Position { pid: 4242, done: 1_000, total: 5_000 }));
        // Same length whatever the figures: a rewrite covers the last one.
        assert_eq!(r.len(), position_record(1, 4_999, 5_000, "b6f4c071-1548967947154").len());
        // A mix of two records (the done of a newer one) fails the check.
        let torn = r.replace("00000000000000001000", "00000000000000002000");
        assert_eq!(parse_record(&torn), None);
        assert_eq!(parse_record("a9s-progress 1 via 15-4711\n"), Some(Record::Via(PipeId { dev: 15, ino: 4711 })));
        assert_eq!(parse_record("something else\n"), None);
        assert_eq!(parse_record(&position_record(1, 6, 5, "x")), None, "done beyond the total");
    }

    #[test]
    fn publisher_relay_and_source_over_real_pipes() {
        // Two pipes: publisher → (relay) → source. Descriptors 0 and 1 are not ours to redirect in a test, so the
        // pieces are driven by their pipe ids.
        let mut p = [0; 2];
        let mut q = [0; 2];
        assert_eq!(unsafe { libc::pipe(p.as_mut_ptr()) }, 0);
        assert_eq!(unsafe { libc::pipe(q.as_mut_ptr()) }, 0);
        let (a, b) = (PipeId::of_fd(p[1]).unwrap(), PipeId::of_fd(q[1]).unwrap());
        assert_ne!(a, b);
        let (file, path) = create(a).unwrap();
        let mut publ = Publisher { file, path, pid: std::process::id().into(), total: 100, id: "id".into(), done: 0 };
        publ.update(40);
        let (relay_file, relay_path) = create(b).unwrap();
        assert!(pwrite_all(&relay_file, format!("{MAGIC} via {}-{}\n", a.dev, a.ino).as_bytes()));
        let _relay = Relay { path: relay_path };
        let mut src = Source { start: b, found: None };
        assert_eq!(src.read(), Some(Position { done: 40, total: 100 }));
        publ.update(100);
        assert_eq!(src.read(), Some(Position { done: 100, total: 100 }));
        // A file of another mode is not trusted.
        let leftover = PipeId { dev: a.dev, ino: u64::MAX - 1 };
        std::fs::write(leftover.path(), "x\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(leftover.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(open_checked(leftover.path()).is_none());
        std::fs::remove_file(leftover.path()).unwrap();
        drop(publ);
        assert!(!a.path().exists(), "removed at the end");
        for fd in p.into_iter().chain(q) {
            unsafe { libc::close(fd) };
        }
    }
}
