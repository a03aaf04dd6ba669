//! Small I/O conventions: never binary to a terminal, files opened with errors that name them, sizes for people.
//! Reading `-` or a file is [`crate::input::Input`].

use std::fs::File;
use std::io::{self, IsTerminal};
use std::path::Path;

use crate::error::{Error, IoContext, Result};

/// Refuses to write binary data to a terminal: it helps nobody and can wreck the terminal's state.
pub fn refuse_binary_to_terminal(what: &str) -> Result<()> {
    if io::stdout().is_terminal() {
        return Err(Error::usage(format!(
            "refusing to write {what} to a terminal: redirect standard output to a file or a pipe"
        )));
    }
    Ok(())
}

/// Opens a file for reading with an error that names it.
pub fn open_input(path: &Path) -> Result<File> {
    File::open(path).context_io(|| format!("cannot read {}", path.display()))
}

/// Formats a byte count for people: 1.5 GiB.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(1 << 30), "1.0 GiB");
    }
}
