//! Input encodings. tokio-postgres always speaks UTF-8 to the server, so a dump that sets another
//! `client_encoding` (a LATIN1 or WIN1252 database's section) is transcoded line by line to UTF-8 before it
//! is lexed or copied; the server converts back into the database's encoding, so the stored bytes are the
//! same as when psql sends them in the original encoding.

/// The encodings a dump's input can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    /// Bytes without an encoding. Passed through when they are UTF-8 (a SQL_ASCII server stores them unchanged
    /// whatever the client says); anything else cannot travel over a UTF-8 session.
    SqlAscii,
    /// ISO-8859-1.
    Latin1,
    /// ISO-8859-15.
    Latin9,
    Win1252,
}

impl Encoding {
    /// Parses a PostgreSQL encoding name, ignoring case and punctuation as the server does
    /// (`UTF8`, `utf-8`, `UNICODE`, `LATIN1`, `ISO_8859_1`, `WIN1252`, `windows-1252`…). `None` if unsupported.
    pub fn parse(name: &str) -> Option<Encoding> {
        let clean: String =
            name.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect();
        Some(match clean.as_str() {
            "utf8" | "unicode" => Encoding::Utf8,
            "sqlascii" => Encoding::SqlAscii,
            "latin1" | "iso88591" => Encoding::Latin1,
            "latin9" | "iso885915" => Encoding::Latin9,
            "win1252" | "windows1252" => Encoding::Win1252,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Encoding::Utf8 => "UTF8",
            Encoding::SqlAscii => "SQL_ASCII",
            Encoding::Latin1 => "LATIN1",
            Encoding::Latin9 => "LATIN9",
            Encoding::Win1252 => "WIN1252",
        }
    }

    /// Whether lines pass through unchanged.
    pub fn is_passthrough(self) -> bool {
        matches!(self, Encoding::Utf8 | Encoding::SqlAscii)
    }

    /// Converts `line` to UTF-8 into `out` (cleared first). Returns `Ok(false)` when the line can be used as it
    /// is (nothing written). On a byte with no Unicode equivalent, returns its offset; `out` then holds the
    /// line with U+FFFD in its place, so a lexer can stay in step.
    pub fn to_utf8(self, line: &[u8], out: &mut Vec<u8>) -> Result<bool, usize> {
        if self.is_passthrough() || line.is_ascii() {
            return Ok(false);
        }
        out.clear();
        out.reserve(line.len() + line.len() / 2);
        let mut bad = None;
        for (i, &b) in line.iter().enumerate() {
            if b < 0x80 {
                out.push(b);
                continue;
            }
            let c = match self {
                Encoding::Latin1 => Some(b as u32),
                Encoding::Latin9 => Some(latin9(b)),
                Encoding::Win1252 => win1252(b),
                Encoding::Utf8 | Encoding::SqlAscii => unreachable!("passthrough"),
            };
            let c = match c.and_then(char::from_u32) {
                Some(c) => c,
                None => {
                    bad.get_or_insert(i);
                    '\u{FFFD}'
                }
            };
            let mut tmp = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
        }
        match bad {
            Some(i) => Err(i),
            None => Ok(true),
        }
    }
}

/// The input's encoding: one a9s-pgrestore converts, or the name of one it cannot (only ASCII then passes).
pub type InputEncoding = Result<Encoding, String>;

/// Why text of the input cannot go over the UTF-8 session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Untranslatable {
    /// The byte at offset `at` of the text has no Unicode equivalent in `encoding`.
    Byte { byte: u8, at: usize, encoding: Encoding },
    /// Non-ASCII text in an encoding a9s-pgrestore cannot convert.
    Unsupported { encoding: String },
}

impl Untranslatable {
    /// The reason, worded once for SQL lines and COPY data: `kind` names the text ("text", "data"), and
    /// `column_base` is the text's offset in its line (a COPY piece may start inside a row).
    pub fn reason(&self, kind: &str, column_base: u64) -> String {
        match self {
            Untranslatable::Byte { byte, at, encoding } => format!(
                "byte 0x{byte:02X} at column {} has no Unicode equivalent in encoding {}",
                column_base + *at as u64 + 1,
                encoding.name()
            ),
            Untranslatable::Unsupported { encoding } => {
                format!("non-ASCII {kind} in encoding {encoding}, which a9s-pgrestore cannot convert")
            }
        }
    }
}

/// Transcode `text` of the input or refuse it: the one decision, for SQL lines and COPY data alike. `Ok(true)`:
/// `out` holds the text in UTF-8; `Ok(false)`: the text goes as it is. On [`Untranslatable::Byte`], `out` holds
/// the text with U+FFFD in place of the bad bytes, so a lexer can stay in step.
pub fn transcode(enc: &InputEncoding, text: &[u8], out: &mut Vec<u8>) -> Result<bool, Untranslatable> {
    match enc {
        Ok(encoding) => {
            encoding.to_utf8(text, out).map_err(|at| Untranslatable::Byte { byte: text[at], at, encoding: *encoding })
        }
        Err(name) if !text.is_ascii() => Err(Untranslatable::Unsupported { encoding: name.clone() }),
        Err(_) => Ok(false),
    }
}

fn latin9(b: u8) -> u32 {
    match b {
        0xA4 => 0x20AC,
        0xA6 => 0x0160,
        0xA8 => 0x0161,
        0xB4 => 0x017D,
        0xB8 => 0x017E,
        0xBC => 0x0152,
        0xBD => 0x0153,
        0xBE => 0x0178,
        b => b as u32,
    }
}

/// Windows-1252; 0x81, 0x8D, 0x8F, 0x90 and 0x9D are undefined (PostgreSQL refuses them too).
fn win1252(b: u8) -> Option<u32> {
    const HIGH: [u32; 32] = [
        0x20AC, 0, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0, 0x017D,
        0, 0, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,
        0x017E, 0x0178,
    ];
    match b {
        0x80..=0x9F => Some(HIGH[(b - 0x80) as usize]).filter(|c| *c != 0),
        b => Some(b as u32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(e: Encoding, line: &[u8]) -> Result<String, usize> {
        let mut out = Vec::new();
        match e.to_utf8(line, &mut out)? {
            true => Ok(String::from_utf8(out).unwrap()),
            false => Ok(String::from_utf8(line.to_vec()).unwrap()),
        }
    }

    #[test]
    fn names() {
        assert_eq!(Encoding::parse("UTF8"), Some(Encoding::Utf8));
        assert_eq!(Encoding::parse("utf-8"), Some(Encoding::Utf8));
        assert_eq!(Encoding::parse("ISO_8859_1"), Some(Encoding::Latin1));
        assert_eq!(Encoding::parse("latin9"), Some(Encoding::Latin9));
        assert_eq!(Encoding::parse("Windows-1252"), Some(Encoding::Win1252));
        assert_eq!(Encoding::parse("SQL_ASCII"), Some(Encoding::SqlAscii));
        assert_eq!(Encoding::parse("EUC_JP"), None);
    }

    #[test]
    fn conversions() {
        assert_eq!(conv(Encoding::Latin1, b"caf\xe9 \xff\n").unwrap(), "café ÿ\n");
        assert_eq!(conv(Encoding::Latin9, b"\xa4\xbd\n").unwrap(), "€œ\n");
        assert_eq!(conv(Encoding::Win1252, b"\x80\x93x\x94\n").unwrap(), "€“x”\n");
        assert_eq!(conv(Encoding::Win1252, b"ab\x81"), Err(2));
        assert_eq!(conv(Encoding::Latin1, b"plain\n").unwrap(), "plain\n");
        let mut out = Vec::new();
        assert_eq!(Encoding::Utf8.to_utf8("é".as_bytes(), &mut out), Ok(false));
        // Every Latin-1 byte round-trips.
        let all: Vec<u8> = (1..=255u8).collect();
        let s = conv(Encoding::Latin1, &all).unwrap();
        assert_eq!(s.chars().map(|c| c as u32 as u8).collect::<Vec<u8>>(), all);
    }

    #[test]
    fn transcode_or_refuse_is_decided_once() {
        let mut out = Vec::new();
        assert_eq!(transcode(&Ok(Encoding::Utf8), "é".as_bytes(), &mut out), Ok(false));
        assert_eq!(transcode(&Ok(Encoding::Latin1), b"\xE9", &mut out), Ok(true));
        assert_eq!(out, "é".as_bytes());
        let bad = transcode(&Ok(Encoding::Win1252), b"ab\x81", &mut out).unwrap_err();
        assert_eq!(out, "ab\u{FFFD}".as_bytes());
        assert_eq!(bad.reason("text", 0), "byte 0x81 at column 3 has no Unicode equivalent in encoding WIN1252");
        assert_eq!(bad.reason("data", 10), "byte 0x81 at column 13 has no Unicode equivalent in encoding WIN1252");
        let euc = Err("EUC_JP".to_string());
        assert_eq!(transcode(&euc, b"ascii", &mut out), Ok(false));
        let refused = transcode(&euc, b"\xA4", &mut out).unwrap_err();
        assert_eq!(refused.reason("data", 0), "non-ASCII data in encoding EUC_JP, which a9s-pgrestore cannot convert");
    }
}
