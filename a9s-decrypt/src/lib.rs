//! a9s-decrypt: the runbook's `openssl enc -aes256 -md md5 -d -pass … | gunzip -c` in one checked, faster step.
//!
//! The input is `openssl enc` output (`Salted__`, salt, AES-256-CBC, PKCS#7); key and IV come from the
//! secret by EVP_BytesToKey (or PBKDF2). The first block is decrypted on its own to check the secret (it must
//! be a gzip header) before anything is written; then decrypt, inflate and write threads stream the rest.

pub mod kdf;
pub mod stream;
pub mod verify;

use std::ffi::OsString;
use std::path::PathBuf;

use a9s_core::habits::{Habit, Habits};
use a9s_core::input::Input;
use a9s_core::output::Output;
use a9s_core::progress::{Progress, ProgressArgs};
use a9s_core::secret::{self, PassSpec};
use a9s_core::{Error, Result};
use clap::{CommandFactory, Parser, ValueEnum};

use kdf::{Digest, Kdf, BLOCK, HEADER_LEN, MAGIC, PBKDF2_DEFAULT_ITER};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum MdArg {
    /// MD5: what the a9s Backup Manager passes (`-md md5`), and the default of OpenSSL before 1.1.0.
    Md5,
    /// SHA-256: `openssl enc`'s default since OpenSSL 1.1.0, for backups made without `-md md5`.
    Sha256,
    /// SHA-1.
    Sha1,
    /// Whichever of md5, sha256, sha1 turns the first block into a gzip header.
    Auto,
}

/// Decrypt an a9s backup (openssl enc, AES-256-CBC) and gunzip it.
#[derive(Parser, Debug)]
#[command(
    name = "a9s-decrypt",
    version = a9s_core::VERSION,
    about = "Decrypt an a9s backup (openssl enc, AES-256-CBC) and gunzip it",
    long_about = "Decrypt an a9s backup (openssl enc format, AES-256-CBC) and gunzip it: the runbook's \
`openssl enc -aes256 -md md5 -d -pass … | gunzip -c`, in one step that checks the secret before writing \
anything and fails loudly on a truncated or damaged backup."
)]
struct Args {
    /// The encrypted backup; `-` (the default) reads stdin
    #[arg(
        value_name = "FILE",
        default_value = "-",
        long_help = "The encrypted backup: a single file (an Azure backup blob, or a file made by \
`a9s-cat-parts … > file`). `-`, the default, reads stdin, which is how S3 parts come in: \
`a9s-cat-parts <backup-id>-* | a9s-decrypt …`."
    )]
    input: PathBuf,

    /// Write to FILE instead of stdout (`-` is stdout)
    #[arg(
        short = 'o',
        long = "output",
        value_name = "FILE",
        default_value = "-",
        long_help = "Write the decrypted (and gunzipped) data to FILE instead of stdout; `-` is stdout. The data \
goes to a temporary file in the same directory, created readable by its owner only (it holds the whole \
database), which is renamed to FILE only when everything decrypted and checked out, and removed otherwise: \
FILE exists only if it is complete."
    )]
    output: PathBuf,

    /// Where the secret comes from, in openssl's -pass syntax: file:PATH, env:VAR, fd:N, stdin, pass:SECRET
    #[arg(
        long,
        value_name = "SPEC",
        long_help = "Where the backup's encryption secret comes from, in openssl's -pass syntax: \
`file:PATH` (the first line of the file), `env:VAR` (an environment variable), `fd:N` (the first line read \
from file descriptor N, e.g. `--pass fd:3 3<keyfile`), `stdin` (the first line of stdin; only when the \
backup is a FILE argument), or `pass:SECRET` (works, but the secret is then visible to every user in `ps` \
and in shell history, so a warning is printed). Without --pass, the environment variable A9S_BACKUP_SECRET \
is read if set; else the secret is asked for on the terminal; else a9s-decrypt stops with status 2. \
The secret is never printed."
    )]
    pass: Option<String>,

    /// Digest for the key derivation, as openssl enc -md [default: md5; sha256 with --pbkdf2]
    #[arg(
        long,
        value_enum,
        value_name = "DIGEST",
        long_help = "The digest openssl enc used to turn the secret into key and IV (its -md option). The \
a9s Backup Manager encrypts with `-md md5`, the default here. OpenSSL 1.1.0 changed enc's own default from \
md5 to sha256, so backups made by hand or by older tooling on newer hosts may need `sha256`. `auto` tries \
md5, sha256 and sha1 and takes the one that turns the first block into a gzip header, so the operator does \
not need to know. With --pbkdf2 the default is sha256, as in openssl."
    )]
    md: Option<MdArg>,

    /// Derive key and IV with PBKDF2, as openssl enc -pbkdf2
    #[arg(
        long,
        long_help = "Derive key and IV with PBKDF2-HMAC (digest from --md, sha256 by default) instead of \
EVP_BytesToKey, as `openssl enc -pbkdf2` does. The a9s Backup Manager does not use it; this is for backups \
encrypted by hand with a newer openssl."
    )]
    pbkdf2: bool,

    /// PBKDF2 iteration count, as openssl enc -iter (implies --pbkdf2) [default: 10000]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    iter: Option<u32>,

    /// Write the decrypted bytes as they are, without gunzipping
    #[arg(
        long,
        long_help = "Write the decrypted bytes as they are, without gunzipping (the equivalent of \
`openssl enc -d` alone), e.g. to keep the compressed dump. A wrong secret can then be recognised early only \
if the data is gzip anyway; otherwise it shows as bad padding at the end, after output was written."
    )]
    no_gunzip: bool,

    /// Check the whole backup and write nothing: exit 0 only if it is intact
    #[arg(
        long,
        conflicts_with_all = ["output", "no_gunzip"],
        long_help = "Read the whole backup, decrypt and gunzip it with every check (the secret, the padding, \
every gzip member's CRC-32 and length, nothing after the gzip stream) and write nothing: no output file, \
nothing on stdout. Exit status 0 only if the backup is intact; then one line on stderr says what was checked: \
the encrypted bytes and the key derivation, the bytes of SQL and their SHA-256 (the same as `sha256sum` of \
the decrypted dump). Needs no disk space and no cluster: `a9s-fetch --latest … -o - | a9s-decrypt --verify` \
checks a backup in the store before anything is changed."
    )]
    verify: bool,

    #[command(flatten)]
    progress: ProgressArgs,
}

pub fn command() -> clap::Command {
    Args::command()
}

/// The runbook's `openssl enc -aes256 -md md5 -d -pass file:F -in F -out F`, typed here by habit: what
/// a9s-decrypt has means the same, the rest gets a hint (see the man page, "Coming from openssl").
pub const OPENSSL_HABITS: &Habits = &[
    ("-pass", Habit::Same(&["--pass"])),
    ("-kfile", Habit::Prefix("--pass", "file:")),
    // The backup is the FILE argument.
    ("-in", Habit::Operand),
    ("-out", Habit::Same(&["--output"])),
    // Decrypting AES-256-CBC is all a9s-decrypt does.
    ("-d", Habit::Same(&[])),
    ("-aes256", Habit::Same(&[])),
    ("-aes-256-cbc", Habit::Same(&[])),
    ("-md", Habit::Same(&["--md"])),
    ("-pbkdf2", Habit::Same(&["--pbkdf2"])),
    ("-iter", Habit::Same(&["--iter"])),
    (
        "-k",
        Habit::Hint(
            "openssl's secret on the command line, which every user sees in ps: use --pass file:PATH or \
             --pass env:VAR (--pass pass:SECRET if you must)",
        ),
    ),
    ("-e", Habit::Hint("openssl's encrypt: a9s-decrypt only decrypts (and gunzips); drop it")),
    ("-aes128", Habit::Hint(AES256_ONLY)),
    ("-aes-128-cbc", Habit::Hint(AES256_ONLY)),
    ("-aes192", Habit::Hint(AES256_ONLY)),
    ("-aes-192-cbc", Habit::Hint(AES256_ONLY)),
    ("-a", Habit::Hint(BASE64)),
    ("-base64", Habit::Hint(BASE64)),
];

const AES256_ONLY: &str = "a9s-decrypt reads AES-256-CBC only (openssl's -aes256, which the a9s Backup Manager \
                           uses): decrypt a backup made with another cipher with openssl enc -d";
const BASE64: &str = "openssl's base64: a9s backups are binary and read as they are; drop it";

#[cfg(feature = "man")]
pub fn man_page() -> String {
    a9s_core::man::render(command(), include_str!("../man.roff"))
}

pub fn run(args: impl IntoIterator<Item = OsString>) -> Result<i32> {
    let args = a9s_core::habits::rewrite(&command(), args, OPENSSL_HABITS)?;
    let args: Args = a9s_core::error::parse_args(command(), args)?;

    let to_stdout = args.output.as_os_str() == "-";
    let from_stdin = args.input.as_os_str() == "-";
    if to_stdout && !args.verify {
        a9s_core::io::refuse_binary_to_terminal("the decrypted backup")?;
    }
    let spec = args.pass.as_deref().map(PassSpec::parse).transpose()?;
    if from_stdin && spec == Some(PassSpec::Stdin) {
        return Err(Error::usage(
            "--pass stdin: the backup already comes on stdin; give the secret as file:PATH, env:VAR or fd:N, or the backup as a FILE argument",
        ));
    }
    // The stream reads 1 MiB chunks, which bypass a buffer this size once it is drained.
    let mut input = Input::open(
        Some(&args.input),
        64 << 10,
        "the backup is read from stdin, which is a terminal: give it as a FILE argument or pipe it in (e.g. `a9s-cat-parts <backup-id>-* | a9s-decrypt …`)",
    )?;
    let candidates = candidates(&args);
    let total = input.size();
    let mut head = [0u8; HEADER_LEN + BLOCK];
    let got = stream::read_full(&mut input, &mut head)?;
    check_header(&head[..got], input.name())?;
    let salt: [u8; 8] = head[8..16].try_into().expect("8 bytes");
    let first: [u8; BLOCK] = head[HEADER_LEN..].try_into().expect("16 bytes");

    let secret = secret::obtain("a9s-decrypt", spec.as_ref())?;
    let kdf = choose_kdf(&candidates, secret.expose(), &salt, &first, !args.no_gunzip)?;
    let key = kdf::derive(kdf, secret.expose(), &salt)?;
    let key_verified = kdf::looks_like_gzip(&kdf::decrypt_first_block(&key, &first)?);
    drop(secret);
    let crypter = kdf::stream_crypter(&key)?;
    drop(key);
    // With --verify nothing is written: this program is then the pipe's last, and reports progress itself.
    let mode = args.progress.mode(to_stdout && !args.verify, false);
    // Reading a pipe, the share of the backup and the ETA come from the pipe's first program.
    let from_stdin = input.is_stdin();
    let mut progress = Progress::with_mode("a9s-decrypt", total, mode).follow_stdin(from_stdin);
    if args.verify {
        let line = verify::run(Box::new(input), first, crypter, kdf, progress)?;
        eprintln!("a9s-decrypt: {line}");
        return Ok(0);
    }

    let mut output = Output::open(&args.output, "a9s-decrypt", "the decrypted backup")?;
    // Into a pipe, it tells the pipe's last program how far through the backup the pipe is: its own share of a
    // regular file, or (reading a pipe) where to find the position of the program before it.
    let mut _relay = None;
    if to_stdout {
        match total {
            Some(_) => progress = progress.publish_stdout(input.name()),
            None if from_stdin => _relay = a9s_core::pipeline::Relay::stdin_to_stdout(),
            None => {}
        }
    }
    let result =
        stream::run(Box::new(input), first.to_vec(), crypter, !args.no_gunzip, key_verified, progress, output.file());
    match result {
        Ok(()) => {
            output.commit()?;
            Ok(0)
        }
        Err(e) => {
            let msg = match output.abandon() {
                Some(path) => format!("{}; {} was not written", e.message, path.display()),
                None => format!("{}; the output is incomplete", e.message),
            };
            Err(Error::new(e.code, msg))
        }
    }
}

/// The derivations to try, from --md, --pbkdf2 and --iter.
fn candidates(args: &Args) -> Vec<Kdf> {
    // openssl's -iter implies -pbkdf2.
    let pbkdf2 = args.pbkdf2 || args.iter.is_some();
    let iter = args.iter.unwrap_or(PBKDF2_DEFAULT_ITER);
    let digests: Vec<Digest> = match (args.md, pbkdf2) {
        (Some(MdArg::Md5), _) => vec![Digest::Md5],
        (Some(MdArg::Sha256), _) => vec![Digest::Sha256],
        (Some(MdArg::Sha1), _) => vec![Digest::Sha1],
        (Some(MdArg::Auto), false) => Digest::ALL.to_vec(),
        (Some(MdArg::Auto), true) => vec![Digest::Sha256, Digest::Md5, Digest::Sha1],
        (None, false) => vec![Digest::Md5],
        (None, true) => vec![Digest::Sha256],
    };
    digests
        .into_iter()
        .map(|digest| if pbkdf2 { Kdf::Pbkdf2 { digest, iter } } else { Kdf::BytesToKey(digest) })
        .collect()
}

/// The start of the input must be `Salted__` and the salt, then at least one block.
fn check_header(head: &[u8], name: &str) -> Result<()> {
    if head.is_empty() {
        return Err(Error::failure(format!(
            "{name} is empty: no backup data came in (did the download or a9s-cat-parts fail?)"
        )));
    }
    // A short input that is a prefix of `Salted__` is a truncated backup, not a foreign file.
    let magic_so_far = head.starts_with(MAGIC) || MAGIC.starts_with(head);
    if !magic_so_far {
        let hint = if head.starts_with(&[0x1f, 0x8b]) {
            "it is gzip data, not encrypted: use `gunzip -c`"
        } else if head.starts_with(b"{") {
            "it looks like JSON (the backup's .json metadata?), not an encrypted backup"
        } else {
            "is it an a9s backup (or all of its parts, in order, starting with the first)?"
        };
        return Err(Error::failure(format!(
            "{name} is not openssl enc data: it does not start with `Salted__`; {hint}"
        )));
    }
    if head.len() < HEADER_LEN + BLOCK {
        return Err(Error::failure(format!(
            "truncated input: {name} ends after {} bytes, before the first encrypted block",
            head.len()
        )));
    }
    Ok(())
}

/// Finds the derivation that turns the first block into a gzip header, or says why none does: a wrong
/// secret, or (when another digest or derivation works) the wrong --md or --pbkdf2.
fn choose_kdf(candidates: &[Kdf], secret: &[u8], salt: &[u8; 8], first: &[u8; BLOCK], gunzip: bool) -> Result<Kdf> {
    for &k in candidates {
        if kdf::yields_gzip(k, secret, salt, first)? {
            return Ok(k);
        }
    }
    let others: Vec<Kdf> = Digest::ALL
        .iter()
        .map(|&d| Kdf::BytesToKey(d))
        .chain(std::iter::once(Kdf::Pbkdf2 { digest: Digest::Sha256, iter: PBKDF2_DEFAULT_ITER }))
        .filter(|k| !candidates.contains(k))
        .collect();
    let mut works = None;
    for k in others {
        if kdf::yields_gzip(k, secret, salt, first)? {
            works = Some(k);
            break;
        }
    }
    let tried = describe(candidates);
    if let Some(w) = works {
        return Err(Error::failure(format!(
            "wrong secret for {tried} (the backup looks encrypted with {w}; try {})",
            suggestion(w)
        )));
    }
    let auto = candidates.len() > 1;
    if !gunzip && !auto {
        // Not necessarily gzip: nothing to recognise the right key by. The padding check at the end decides.
        return Ok(candidates[0]);
    }
    if !gunzip {
        return Err(Error::failure(format!(
            "wrong secret ({tried}: --md auto recognises the digest by the gzip header the backup starts with, and none gives one; if the data is not gzip, name the digest with --md)"
        )));
    }
    Err(Error::failure(format!(
        "wrong secret (the first block does not decrypt to a gzip header with {tried}): check the secret{}",
        if auto {
            "; or, if the data is not gzip, use --no-gunzip"
        } else {
            "; if it is right, try --md auto (or --no-gunzip if the data is not gzip)"
        }
    )))
}

fn describe(candidates: &[Kdf]) -> String {
    match candidates {
        [one] => one.to_string(),
        many => {
            let names: Vec<&str> = many
                .iter()
                .map(|k| match k {
                    Kdf::BytesToKey(d) | Kdf::Pbkdf2 { digest: d, .. } => d.name(),
                })
                .collect();
            let base = match many[0] {
                Kdf::BytesToKey(_) => String::new(),
                Kdf::Pbkdf2 { iter, .. } => format!("-pbkdf2 -iter {iter} "),
            };
            format!("{base}-md {}", names.join(", "))
        }
    }
}

fn suggestion(k: Kdf) -> String {
    match k {
        Kdf::BytesToKey(_) => "--md auto".to_string(),
        Kdf::Pbkdf2 { digest: Digest::Sha256, .. } => "--pbkdf2".to_string(),
        Kdf::Pbkdf2 { digest, .. } => format!("--pbkdf2 --md {}", digest.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_habit_is_in_the_man_page() {
        let roff = include_str!("../man.roff");
        assert!(roff.contains(".B Coming from openssl."));
        for (word, _) in OPENSSL_HABITS {
            assert!(roff.contains(&word.replace('-', "\\-")), "{word} is missing from man.roff (Coming from openssl)");
        }
    }

    fn args(v: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("a9s-decrypt").chain(v.iter().copied())).unwrap()
    }

    #[test]
    fn derivations_follow_openssl_defaults() {
        assert_eq!(candidates(&args(&[])), vec![Kdf::BytesToKey(Digest::Md5)]);
        assert_eq!(candidates(&args(&["--md", "sha256"])), vec![Kdf::BytesToKey(Digest::Sha256)]);
        assert_eq!(candidates(&args(&["--md", "auto"])).len(), 3);
        assert_eq!(candidates(&args(&["--pbkdf2"])), vec![Kdf::Pbkdf2 { digest: Digest::Sha256, iter: 10_000 }]);
        assert_eq!(
            candidates(&args(&["--iter", "5", "--md", "md5"])),
            vec![Kdf::Pbkdf2 { digest: Digest::Md5, iter: 5 }]
        );
        assert!(Args::try_parse_from(["a9s-decrypt", "--iter", "0"]).is_err());
    }

    #[test]
    fn header_errors_are_precise() {
        assert!(check_header(b"", "stdin").unwrap_err().message.contains("empty"));
        assert!(check_header(b"Salt", "stdin").unwrap_err().message.contains("truncated"));
        assert!(check_header(b"\x1f\x8b\x08\0", "x").unwrap_err().message.contains("gunzip"));
        assert!(check_header(b"hello world, this is text", "x").unwrap_err().message.contains("Salted__"));
        assert!(check_header(&[b'S'; 40], "x").unwrap_err().message.contains("Salted__"));
        let mut ok = b"Salted__12345678".to_vec();
        ok.extend_from_slice(&[0; 16]);
        assert!(check_header(&ok, "x").is_ok());
    }

    #[cfg(feature = "man")]
    #[test]
    fn man_page_renders() {
        let page = man_page();
        for s in [".SH DESCRIPTION", ".SH OPTIONS", ".SH \"EXIT STATUS\"", ".SH ENVIRONMENT", ".SH EXAMPLES"] {
            assert!(page.contains(s), "{s} missing");
        }
    }
}
