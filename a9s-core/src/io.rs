//! Small I/O conventions: never binary to a terminal, files opened with errors that name them, sizes for people
//! and from them.
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

/// `64MiB`, `64M`, `8m`, `1G`, `4096`: powers of 1024.
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = t.split_at(digits);
    let n: u64 = num.parse().map_err(|_| format!("{s}: expected a size like 64MiB, 256M or 1G"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("{s}: unknown unit (use K, M or G)")),
    };
    let v = n.checked_mul(mult).ok_or_else(|| format!("{s}: too large"))?;
    if v == 0 {
        return Err(format!("{s}: must be more than 0"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("8m"), Ok(8 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("0").is_err());
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn human() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(1 << 30), "1.0 GiB");
    }
}
