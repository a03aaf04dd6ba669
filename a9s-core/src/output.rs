//! The one way our programs write an output file: `-o FILE` appears complete or not at all.
//!
//! The data goes to a temporary file in FILE's own directory (so the final rename is atomic and never crosses
//! a file system), created with O_EXCL|O_NOFOLLOW and mode 0600 (a planted symlink or file is refused, not
//! written through; the data is a database, readable by its owner only). [`AtomicOutput::commit`] syncs it
//! and renames it over FILE; a failure, an early return (drop) or SIGINT/SIGTERM/SIGHUP removes it. Renaming
//! over FILE replaces a symlink of that name instead of writing through it.
//!
//! [`Output`] is `-o` as a whole: `-` is standard output (refused when a terminal), anything else such a file.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicPtr, Ordering};

use crate::error::{Error, IoContext, Result};
use crate::io::refuse_binary_to_terminal;

/// The temporary file to remove if a signal ends the process before it is complete (a leaked C string).
static CLEANUP: AtomicPtr<libc::c_char> = AtomicPtr::new(std::ptr::null_mut());

extern "C" fn remove_temp_and_die(sig: libc::c_int) {
    let p = CLEANUP.swap(std::ptr::null_mut(), Ordering::SeqCst);
    // SAFETY: unlink, signal and raise are async-signal-safe; p is a leaked, NUL-terminated path.
    unsafe {
        if !p.is_null() {
            libc::unlink(p);
        }
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

fn forget_cleanup() {
    let p = CLEANUP.swap(std::ptr::null_mut(), Ordering::SeqCst);
    if !p.is_null() {
        // SAFETY: p came from CString::into_raw and the handler no longer sees it.
        drop(unsafe { CString::from_raw(p) });
    }
}

/// An output file being written: a temporary file until [`AtomicOutput::commit`].
pub struct AtomicOutput {
    file: Option<File>,
    temp: PathBuf,
    path: PathBuf,
}

impl AtomicOutput {
    /// Creates the temporary file for `path`; `prog` goes into its name (`.<name>.<prog>-<pid>.tmp`).
    pub fn create(path: &Path, prog: &str) -> Result<AtomicOutput> {
        let file_name = path
            .file_name()
            .ok_or_else(|| Error::usage(format!("-o {}: give a file name, not a directory", path.display())))?;
        if path.is_dir() {
            return Err(Error::usage(format!("-o {}: is a directory; give a file name", path.display())));
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut temp_name = OsString::from(".");
        temp_name.push(file_name);
        temp_name.push(format!(".{prog}-{}.tmp", std::process::id()));
        let temp = dir.join(temp_name);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&temp)
            .context_io(|| format!("cannot create {}", temp.display()))?;
        if let Ok(c) = CString::new(temp.as_os_str().as_bytes()) {
            forget_cleanup();
            CLEANUP.store(c.into_raw(), Ordering::SeqCst);
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                // SAFETY: installs a handler that only calls async-signal-safe functions.
                unsafe { libc::signal(sig, remove_temp_and_die as *const () as libc::sighandler_t) };
            }
        }
        Ok(AtomicOutput { file: Some(file), temp, path: path.to_path_buf() })
    }

    /// The file to write to.
    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("open until commit or abandon")
    }

    /// The name the output will have.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes the output final: syncs it, renames it over its name and syncs the directory.
    pub fn commit(mut self) -> Result<()> {
        let file = self.file.take().expect("open until commit");
        let done = file.sync_all().context_io(|| format!("cannot write {}", self.temp.display())).and_then(|()| {
            std::fs::rename(&self.temp, &self.path)
                .context_io(|| format!("cannot rename {} to {}", self.temp.display(), self.path.display()))
        });
        drop(file);
        if done.is_ok() {
            // The rename must survive a crash too.
            if let Some(dir) = self.temp.parent() {
                let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
                if let Ok(d) = File::open(dir) {
                    let _ = d.sync_all();
                }
            }
            forget_cleanup();
            self.temp = PathBuf::new();
        }
        done
    }

    /// Removes the incomplete output; returns its would-be name.
    pub fn abandon(mut self) -> PathBuf {
        std::mem::take(&mut self.path)
    }
}

impl Drop for AtomicOutput {
    fn drop(&mut self) {
        if !self.temp.as_os_str().is_empty() {
            self.file.take();
            let _ = std::fs::remove_file(&self.temp);
            forget_cleanup();
        }
    }
}

/// Standard output as a `File`: a duplicate of descriptor 1, so dropping it leaves stdout open. Unbuffered, and
/// std's zero-copy paths (sendfile, splice, copy_file_range) specialise on `File`, not on the line-buffered
/// `Stdout`.
pub fn stdout_file() -> Result<File> {
    let fd = std::io::stdout().as_fd().try_clone_to_owned().context_io(|| "cannot write stdout")?;
    Ok(File::from(fd))
}

/// Where a program's data goes (`-o`): `-` is standard output, a file being written atomically otherwise.
pub enum Output {
    Stdout(File),
    File(AtomicOutput),
}

impl Output {
    /// `-` refuses a terminal (`what` names the data in the message); any other path is an [`AtomicOutput`]
    /// whose temporary name carries `prog`.
    pub fn open(path: &Path, prog: &str, what: &str) -> Result<Output> {
        if path.as_os_str() == "-" {
            refuse_binary_to_terminal(what)?;
            return Ok(Output::Stdout(stdout_file()?));
        }
        Ok(Output::File(AtomicOutput::create(path, prog)?))
    }

    /// The file to write to (stdout's descriptor, or the temporary file).
    pub fn file(&mut self) -> &mut File {
        match self {
            Output::Stdout(f) => f,
            Output::File(o) => o.file(),
        }
    }

    /// Makes the output final: for a file, syncs it and gives it its name.
    pub fn commit(self) -> Result<()> {
        match self {
            Output::Stdout(_) => Ok(()),
            Output::File(o) => o.commit(),
        }
    }

    /// Removes an incomplete output file; returns its would-be name (`None` for stdout).
    pub fn abandon(self) -> Option<PathBuf> {
        match self {
            Output::Stdout(_) => None,
            Output::File(o) => Some(o.abandon()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn complete_or_nothing() {
        let dir = std::env::temp_dir().join(format!("a9s-output-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out");
        let mut o = AtomicOutput::create(&path, "t").unwrap();
        o.file().write_all(b"half").unwrap();
        assert!(!path.exists());
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1);
        let temp = dir.join(&names[0]);
        assert_eq!(std::fs::metadata(&temp).unwrap().permissions().mode() & 0o777, 0o600);
        drop(o);
        assert!(!temp.exists() && !path.exists(), "dropped: removed");

        // A symlink planted at the final name is replaced, its target untouched.
        let target = dir.join("target");
        std::fs::write(&target, b"keep").unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let mut o = AtomicOutput::create(&path, "t").unwrap();
        o.file().write_all(b"data").unwrap();
        o.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"data");
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        assert!(!std::fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
