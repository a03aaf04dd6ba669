//! The `-o DIR` directory, written only through its own descriptor: every name is one plain component
//! opened with openat(2) and O_NOFOLLOW, new files with O_CREAT|O_EXCL and mode 0600. A symlink planted
//! under a name we write (by another user of a shared directory) is refused, never written through, and so is
//! a hard link (a file with more than one name may be someone else's file), so nothing outside DIR is touched
//! whoever runs us.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use a9s_core::error::{Error, IoContext, Result};

pub struct SafeDir {
    fd: OwnedFd,
    path: PathBuf,
}

/// A file's identity: device and inode.
pub fn file_id(f: &File) -> io::Result<String> {
    let m = f.metadata()?;
    Ok(format!("{}:{}", m.dev(), m.ino()))
}

/// Whether we own the file: one another user planted (in a shared directory) proves nothing, whatever it says.
pub fn ours(f: &File) -> bool {
    // SAFETY: geteuid cannot fail.
    f.metadata().is_ok_and(|m| m.uid() == unsafe { libc::geteuid() })
}

impl SafeDir {
    /// Creates `path` if missing and opens it.
    pub fn open(path: &Path) -> Result<SafeDir> {
        std::fs::create_dir_all(path).context_io(|| format!("cannot create {}", path.display()))?;
        let c = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| Error::usage(format!("-o {}: the path holds a NUL byte", path.display())))?;
        // SAFETY: a valid NUL-terminated path; the descriptor is owned below.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return Err(Error::io(format_args!("cannot open directory {}", path.display()), &e));
        }
        // SAFETY: fd is a fresh descriptor we own.
        Ok(SafeDir { fd: unsafe { OwnedFd::from_raw_fd(fd) }, path: path.to_path_buf() })
    }

    /// `DIR/name` for messages.
    pub fn show(&self, name: &str) -> String {
        self.path.join(a9s_core::store::printable(name)).display().to_string()
    }

    fn err(&self, name: &str, e: io::Error) -> Error {
        Error::io(self.show(name), &e)
    }

    /// One plain name: not empty, not `.` or `..`, no `/` and no NUL, so it cannot resolve outside DIR.
    fn c_name(&self, name: &str) -> Result<CString> {
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Err(Error::failure(format!(
                "refusing to write {:?} under {}: not a plain file name",
                a9s_core::store::printable(name),
                self.path.display()
            )));
        }
        CString::new(name).map_err(|_| Error::failure(format!("refusing a file name with a NUL byte: {name:?}")))
    }

    fn openat(&self, name: &str, flags: libc::c_int) -> Result<io::Result<File>> {
        let c = self.c_name(name)?;
        // SAFETY: a valid directory descriptor and NUL-terminated name; the result is owned below.
        let fd =
            unsafe { libc::openat(self.fd.as_raw_fd(), c.as_ptr(), flags | libc::O_NOFOLLOW | libc::O_CLOEXEC, 0o600) };
        if fd < 0 {
            return Ok(Err(io::Error::last_os_error()));
        }
        // SAFETY: fd is a fresh descriptor we own.
        Ok(Ok(unsafe { File::from_raw_fd(fd) }))
    }

    /// Opens an existing regular file with one name, for reading (and writing when `write`); `None` when there
    /// is none. A symlink, a hard link or anything not a regular file under the name is an error.
    pub fn open_existing(&self, name: &str, write: bool) -> Result<Option<File>> {
        let flags = if write { libc::O_RDWR } else { libc::O_RDONLY } | libc::O_NONBLOCK;
        let f = match self.openat(name, flags)? {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(self.symlink_refused(name)),
            Err(e) => return Err(self.err(name, e)),
        };
        let m = f.metadata().map_err(|e| self.err(name, e))?;
        if !m.file_type().is_file() {
            return Err(Error::failure(format!(
                "{} is not a regular file: refusing to use it; move it away and run again",
                self.show(name)
            )));
        }
        if m.nlink() > 1 {
            return Err(Error::failure(format!(
                "{} has {} hard links (it may be another file's name): refusing to use it; remove it and run again",
                self.show(name),
                m.nlink()
            )));
        }
        Ok(Some(f))
    }

    fn symlink_refused(&self, name: &str) -> Error {
        Error::failure(format!(
            "{} is a symbolic link: refusing to write through it (someone else may have planted it); remove it and \
             run again",
            self.show(name)
        ))
    }

    /// Creates `name` anew (O_CREAT|O_EXCL, mode 0600) after removing whatever file was there; the name itself
    /// is removed, never what a symlink of that name points to.
    pub fn create_new(&self, name: &str) -> Result<File> {
        self.remove(name)?;
        match self.openat(name, libc::O_RDWR | libc::O_CREAT | libc::O_EXCL)? {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists || e.raw_os_error() == Some(libc::ELOOP) => {
                // Planted between our unlink and our create.
                Err(self.symlink_refused(name))
            }
            Err(e) => Err(self.err(name, e)),
        }
    }

    /// Removes `name` (the directory entry only); no error when there is none.
    pub fn remove(&self, name: &str) -> Result<()> {
        let c = self.c_name(name)?;
        // SAFETY: a valid directory descriptor and NUL-terminated name.
        if unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), 0) } != 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::NotFound {
                return Err(self.err(name, e));
            }
        }
        Ok(())
    }

    /// Whether `name` is a symbolic link (lstat, relative to the directory).
    pub fn is_symlink(&self, name: &str) -> Result<bool> {
        let c = self.c_name(name)?;
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid descriptor, name and stat buffer.
        let r = unsafe { libc::fstatat(self.fd.as_raw_fd(), c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
        Ok(r == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFLNK)
    }

    /// Renames `from` to `to` within the directory. A symlink at `to` is refused rather than replaced, so
    /// that its planting is noticed (the rename itself would not write through it).
    pub fn rename(&self, from: &str, to: &str) -> Result<()> {
        if self.is_symlink(to)? {
            return Err(self.symlink_refused(to));
        }
        let (f, t) = (self.c_name(from)?, self.c_name(to)?);
        let fd = self.fd.as_raw_fd();
        // SAFETY: valid descriptor and names.
        if unsafe { libc::renameat(fd, f.as_ptr(), fd, t.as_ptr()) } != 0 {
            return Err(self.err(to, io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Writes a small file atomically: `name.tmp` created anew, synced, renamed to `name`.
    pub fn write_small(&self, name: &str, data: &[u8]) -> Result<()> {
        use std::io::Write;
        let tmp = format!("{name}.tmp");
        let mut f = self.create_new(&tmp)?;
        f.write_all(data).and_then(|()| f.sync_all()).map_err(|e| self.err(&tmp, e))?;
        self.rename(&tmp, name)
    }

    /// Reads a small file of ours (at most 64 KiB), `None` when there is none or it is another user's.
    pub fn read_small(&self, name: &str) -> Result<Option<Vec<u8>>> {
        use std::io::Read;
        let Some(f) = self.open_existing(name, false)? else { return Ok(None) };
        if !ours(&f) {
            return Ok(None);
        }
        let mut buf = Vec::new();
        f.take(64 << 10).read_to_end(&mut buf).map_err(|e| self.err(name, e))?;
        Ok(Some(buf))
    }

    /// Makes renames durable.
    pub fn sync(&self) {
        // SAFETY: a valid descriptor.
        unsafe { libc::fsync(self.fd.as_raw_fd()) };
    }
}
