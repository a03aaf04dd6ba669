//! The one way our programs open their input: `-` (or no FILE) is standard input, anything else a file; a
//! terminal on standard input is refused, since nobody types a backup.

use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Read};
use std::os::fd::AsFd;
use std::path::Path;

use crate::error::{Error, IoContext, Result};

/// An opened input, buffered with the capacity the caller chose.
///
/// Standard input is held as a duplicate of descriptor 0 in a [`File`], so an `Input` is `Send` (a9s-decrypt
/// reads it on a thread of its own) and has the same type whatever it was opened from.
pub struct Input {
    reader: BufReader<File>,
    name: String,
    stdin: bool,
    size: Option<u64>,
}

impl Input {
    /// Opens `path`; `None` or `-` is standard input. A terminal on standard input is refused with a usage
    /// error (status 2) of the program's own `on_terminal` text, which says how to give the input instead.
    /// A file that cannot be opened is an error naming it ([`crate::io::open_input`]).
    pub fn open(path: Option<&Path>, capacity: usize, on_terminal: &str) -> Result<Input> {
        let (file, name, stdin) = match path {
            Some(p) if p.as_os_str() != "-" => (crate::io::open_input(p)?, p.display().to_string(), false),
            _ => {
                let stdin = io::stdin();
                if stdin.is_terminal() {
                    return Err(Error::usage(on_terminal));
                }
                let fd = stdin.as_fd().try_clone_to_owned().context_io(|| "cannot read stdin")?;
                (File::from(fd), "stdin".to_string(), true)
            }
        };
        let size = file.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
        Ok(Input { reader: BufReader::with_capacity(capacity, file), name, stdin, size })
    }

    /// `stdin`, or the file's name as given: for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this is standard input.
    pub fn is_stdin(&self) -> bool {
        self.stdin
    }

    /// The size in bytes when the input is a regular file (standard input too, when redirected from one);
    /// `None` for a pipe, a socket, a device.
    pub fn size(&self) -> Option<u64> {
        self.size
    }
}

impl Read for Input {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}

impl BufRead for Input {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.reader.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.reader.consume(amt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file() {
        let dir = std::env::temp_dir().join(format!("a9s-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("in");
        std::fs::write(&path, b"one\ntwo\n").unwrap();
        let mut input = Input::open(Some(&path), 4, "unused").unwrap();
        assert_eq!(input.size(), Some(8));
        assert!(!input.is_stdin());
        assert_eq!(input.name(), path.display().to_string());
        let mut line = String::new();
        input.read_line(&mut line).unwrap();
        assert_eq!(line, "one\n");
        let mut rest = Vec::new();
        input.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"two\n");

        let missing = dir.join("missing");
        let e = Input::open(Some(&missing), 4, "unused").err().unwrap();
        assert_eq!(e, Error::failure(format!("cannot read {}: No such file or directory", missing.display())));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
