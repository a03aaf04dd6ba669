//! Other tools' spellings that operators type by habit — openssl's single-dash `-pass file:F`, pg_restore's
//! `-e` — read before clap sees the command line. Each one either becomes ours with the same meaning, or is
//! refused with one line naming what to use instead (or why it does not apply), exit status 2: never clap's
//! "to pass '-pass' as a value, use '-- -pass'" or a bare "unexpected argument".
//!
//! Only whole words in option position are read: not the value of an option that takes one, nor anything
//! after `--`.

use std::ffi::OsString;

use crate::{Error, Result};

/// What a habit becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Habit {
    /// The same meaning here: the word is replaced by these words (none: dropped, e.g. openssl's `-d` where
    /// decrypting is all there is, or `-in` whose FILE is the positional argument); a value after it stays.
    Same(&'static [&'static str]),
    /// The same meaning with the value spelled ours: `-kfile F` → `--pass file:F` is `Prefix("--pass", "file:")`.
    Prefix(&'static str, &'static str),
    /// The value after the word is the program's operand: `-in F` → `-- F`, moved to the end, so a file named
    /// like an option stays a file.
    Operand,
    /// Refused, exit status 2, with one line `<program>: <the word>: <this>`.
    Hint(&'static str),
}

/// One word another tool's users type, and what it becomes here.
pub type Habits = [(&'static str, Habit)];

/// Rewrites `args` (with the program name first) by `habits` for `cmd`, whose options are needed to know
/// which words are values. Fails, exit status 2, on the first habit that is a [`Habit::Hint`].
pub fn rewrite(
    cmd: &clap::Command,
    args: impl IntoIterator<Item = OsString>,
    habits: &Habits,
) -> Result<Vec<OsString>> {
    let mut args = args.into_iter();
    let mut out: Vec<OsString> = args.next().into_iter().collect();
    let mut operands = Vec::new();
    let mut had_double_dash = false;
    while let Some(word) = args.next() {
        let Some(w) = word.to_str() else {
            out.push(word);
            continue;
        };
        if w == "--" {
            had_double_dash = true;
            break;
        }
        let takes_value = match habits.iter().find(|(theirs, _)| *theirs == w) {
            Some((_, Habit::Hint(message))) => return Err(Error::usage(format!("{w}: {message}"))),
            Some((_, Habit::Operand)) => {
                operands.push(args.next().ok_or_else(|| Error::usage(format!("{w} needs a value")))?);
                false
            }
            Some((_, Habit::Same(ours))) => {
                out.extend(ours.iter().map(OsString::from));
                ours.last().is_some_and(|o| takes_value(cmd, o))
            }
            Some((_, Habit::Prefix(ours, prefix))) => {
                out.push(ours.into());
                match args.next() {
                    Some(value) => {
                        let mut v = OsString::from(prefix);
                        v.push(value);
                        out.push(v);
                    }
                    None => return Err(Error::usage(format!("{w} needs a value (here: {ours} {prefix}…)"))),
                }
                false
            }
            None => {
                out.push(word.clone());
                takes_value(cmd, w)
            }
        };
        if takes_value {
            out.extend(args.next());
        }
    }
    // What followed `--` (if anything) stays after it, behind the operands moved there.
    let rest: Vec<OsString> = args.collect();
    if !operands.is_empty() || !rest.is_empty() || had_double_dash {
        out.push("--".into());
        out.extend(operands);
        out.extend(rest);
    }
    Ok(out)
}

/// Whether `word` is exactly one of `cmd`'s options (`--long` or `-x`) that takes its value as the next word.
fn takes_value(cmd: &clap::Command, word: &str) -> bool {
    let found = if let Some(long) = word.strip_prefix("--") {
        cmd.get_arguments().find(|a| a.get_long() == Some(long))
    } else {
        let mut chars = word.strip_prefix('-').unwrap_or_default().chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => cmd.get_arguments().find(|a| a.get_short() == Some(c)),
            _ => None,
        }
    };
    found.is_some_and(|a| a.get_action().takes_values())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction, Command};

    const HABITS: &Habits = &[
        ("-pass", Habit::Same(&["--pass"])),
        ("-d", Habit::Same(&[])),
        ("-kfile", Habit::Prefix("--pass", "file:")),
        ("-in", Habit::Operand),
        ("-k", Habit::Hint("-k puts the secret in ps: use --pass file:PATH")),
    ];

    fn cmd() -> Command {
        Command::new("t")
            .arg(Arg::new("pass").long("pass"))
            .arg(Arg::new("output").short('o').long("output"))
            .arg(Arg::new("quiet").short('q').action(ArgAction::SetTrue))
            .arg(Arg::new("file"))
    }

    fn run(args: &[&str]) -> Result<Vec<String>> {
        let args = std::iter::once("t").chain(args.iter().copied()).map(OsString::from);
        rewrite(&cmd(), args, HABITS).map(|v| v[1..].iter().map(|s| s.to_string_lossy().into_owned()).collect())
    }

    #[test]
    fn habits_become_ours() {
        assert_eq!(run(&["-d", "-pass", "file:k", "in.enc"]).unwrap(), ["--pass", "file:k", "in.enc"]);
        assert_eq!(run(&["-kfile", "k", "-q"]).unwrap(), ["--pass", "file:k", "-q"]);
        let e = run(&["-q", "-k", "s3cret"]).unwrap_err();
        assert_eq!(e, Error::usage("-k: -k puts the secret in ps: use --pass file:PATH"));
        assert_eq!(run(&["-kfile"]).unwrap_err().code, crate::error::exit::USAGE);
    }

    #[test]
    fn values_and_what_follows_double_dash_stay() {
        // The value of an option, ours or a habit's, is never read as a habit.
        assert_eq!(
            run(&["-o", "-d", "--pass", "-k", "-pass", "-d"]).unwrap(),
            ["-o", "-d", "--pass", "-k", "--pass", "-d"]
        );
        assert_eq!(run(&["--", "-d", "-k"]).unwrap(), ["--", "-d", "-k"]);
        assert_eq!(run(&["--"]).unwrap(), ["--"]);
        // An operand goes behind `--`: a file named like an option stays a file.
        assert_eq!(run(&["-in", "-d", "-q"]).unwrap(), ["-q", "--", "-d"]);
        assert_eq!(run(&["-in", "a", "--", "b"]).unwrap(), ["--", "a", "b"]);
        assert_eq!(run(&["-in"]).unwrap_err().code, crate::error::exit::USAGE);
        // Only whole words: these are clap's to judge.
        assert_eq!(run(&["-pass=x", "--d", "-dq"]).unwrap(), ["-pass=x", "--d", "-dq"]);
        // A flag's next word is read: -q takes no value.
        assert_eq!(run(&["-q", "-d"]).unwrap(), ["-q"]);
    }
}
