//! a9s-pgrestore: runs a pg_dumpall script against PostgreSQL exactly as `psql --quiet postgres < dump`
//! would (the runbook's "Recover Backup" step), natively, with a clear account of every error — and never runs
//! what psql would not: where it cannot be sure what psql would do, it stops (exit 3).
//!
//! - [`lexer`]: psql's statement splitting, a pure function over bytes.
//! - [`classify`]: what a statement is (COPY from stdin, SET client_encoding, an index build, …) and which
//!   meta-commands a restore runs.
//! - [`lines`]: reading the script: SQL lines whole, COPY data in bounded pieces, the NUL byte rule.
//! - [`encoding`]: input transcoding to UTF-8 for LATIN1/LATIN9/WIN1252 sections.
//! - [`runner`]: the restore: statements, COPY streaming, meta-commands, errors and the summary;
//!   [`runner::Hooks`] is where steps before and after the restore plug in.
//! - [`parallel`]: the `--jobs` session pool.
//! - [`steps`]: those steps, `--terminate-connections` and `--rename-database`.
//!
//! Connections, sessions and PostgreSQL errors are shared: [`a9s_core::pg`].

pub mod checkpoint;
pub mod classify;
pub mod encoding;
pub mod framing;
pub mod lexer;
pub mod lines;
pub mod list;
pub mod outcome;
pub mod parallel;
pub mod runner;
pub mod steps;

use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::path::PathBuf;

use a9s_core::error::IoContext;
use a9s_core::habits::{Habit, Habits};
use a9s_core::input::Input;
use a9s_core::pg::{ConnArgs, Session, Target};
use a9s_core::progress::ProgressArgs;
use a9s_core::{Error, Result};
use clap::{CommandFactory, Parser};

pub use runner::{exit, Hooks, NoHooks, Options, Summary};

/// Input is read in large blocks: a dump is one long sequential stream.
const READ_BUFFER: usize = 1 << 20;

#[derive(Parser, Debug)]
#[command(
    name = "a9s-pgrestore",
    version = a9s_core::VERSION,
    disable_help_flag = true,
    about = "Restore a pg_dumpall script like `psql -X postgres < dump`, natively, with a clear account of every error",
    long_about = "Restore a pg_dumpall script (an a9s logical backup, decrypted and decompressed) the way \
                  `psql --quiet postgres < dump` does: statement by statement, COPY data streamed, \\connect \
                  followed — without psql, and with every error reported with its line, an exit status that tells \
                  success from failure, and a summary."
)]
pub struct Cli {
    /// The script to run; stdin when absent or `-`
    #[arg(
        value_name = "FILE",
        long_help = "The pg_dumpall (or pg_dump plain-format) script to run. Without FILE, or with `-`, the script \
                     is read from stdin, normally a pipe from a9s-decrypt; a terminal is refused."
    )]
    pub file: Option<PathBuf>,

    #[command(flatten)]
    pub conn: ConnArgs,

    #[command(flatten)]
    pub steps: steps::ClusterSteps,

    /// Stop at the first error (psql's ON_ERROR_STOP), exit status 3
    #[arg(
        long,
        long_help = "Stop at the first error, as psql with ON_ERROR_STOP=1, with exit status 3. The error that \
                     pg_dumpall provokes on purpose (CREATE ROLE of a role that exists already, followed by the \
                     ALTER ROLE that sets it up) is expected and does not stop the restore. Without this option \
                     the script runs to its end, as psql does, and every error is reported."
    )]
    pub on_error_stop: bool,

    /// Load large tables and build indexes over N sessions at once [default: 1]
    #[arg(
        short = 'j',
        long,
        value_name = "N",
        default_value_t = 1,
        hide_default_value = true,
        value_parser = clap::value_parser!(u16).range(1..=parallel::MAX_JOBS as i64),
        long_help = "Load each large table over N sessions of its database at once, and build consecutive \
                     indexes (CREATE INDEX, ALTER TABLE ... ADD PRIMARY KEY or UNIQUE) on them side by side, to use \
                     the server's cores; 1 (the default) runs everything on one session, as psql does. A table's \
                     rows (one per line in COPY's text format) are dealt out in line-aligned chunks of 4 MiB to N \
                     more sessions of the same server, user and database, each running BEGIN and its own COPY ... \
                     FROM stdin into the table after replaying the session settings the script has made so far \
                     (SET ..., set_config(...)), so every row is read as psql would read it. The sessions commit \
                     only after every chunk has been accepted; if one fails, all roll back and one error names the \
                     table and the script line of the bad row: a table is loaded whole or not at all, as with one \
                     COPY. A table of less than one chunk, a COPY in CSV or binary format and a COPY inside a \
                     transaction block stay on the main session. Anything else waits until all sessions are idle, \
                     so effects happen in the script's order. Memory stays bounded: at most N chunks wait for a \
                     session, one is being read, one waits to be queued and each session sends one — (2N+2) x 4 \
                     MiB, under 40 MB in all at --jobs 2; no temporary files. The data are the same as after a \
                     sequential restore, but a table's physical row order may differ (and with it the order of \
                     rows in a later pg_dump). The server must allow N more connections (max_connections); they \
                     are opened at the first large COPY or index build in each database and closed at its \
                     \\connect. Useful up to about the number of the server's cores."
    )]
    pub jobs: u16,

    /// Record the restore's progress in FILE, and resume from it after a failure
    #[arg(
        long,
        value_name = "FILE",
        long_help = "Record in FILE, as the restore goes, the point of the script up to which everything is \
                     committed on the server (after each statement outside a transaction block, each COPY, each \
                     \\connect), with the database, the session settings and the identity of the script. If the \
                     restore dies (the server restarts, the network drops, the ssh session ends), run the same \
                     command again, with the same FILE and the same backup streamed again: a9s-pgrestore checks that \
                     the script is the same (SHA-256 of its first MiB and of everything up to the point), reads and \
                     skips what was restored without running it, reopens the session as it was and goes on. A \
                     statement that was in flight when the restore died is run again; if it meets what it creates \
                     (\"already exists\") it counts as done, with a note. A COPY that was cut is loaded again whole \
                     (the server rolled it back); one that may have committed into a table that now holds rows \
                     stops the restore (exit 3) rather than load them twice. When the restore ends, FILE says it is \
                     complete, and running again with it does nothing. Without an existing FILE the restore starts \
                     from the beginning and creates it (mode 0600, never through a symbolic link, locked while in \
                     use; a record is never half written: a crash leaves the last complete one), and the folders \
                     missing on its path (mode 0700, owned by the user running a9s-pgrestore). A checkpoint of \
                     another script or another cluster is refused (exit 1) before anything is run. Ctrl-C or \
                     SIGTERM ends the restore with its summary and the command that resumes it."
    )]
    pub checkpoint: Option<PathBuf>,

    /// Also write the summary as JSON to FILE (`-` for stdout)
    #[arg(
        long,
        value_name = "FILE",
        long_help = "Also write the summary as JSON to FILE (`-` for stdout): status (ok, errors, \
                     connection_failed, connection_lost, stopped, interrupted, already_complete), exit_code, databases, statements, \
                     statements_failed, copy_commands, rows_copied, parallel_copies, parallel_indexes (--jobs), \
                     bytes_read, lines_read, errors, expected_errors, elapsed_seconds, last_line, error_list (line, database, sqlstate, message, \
                     statement) and, when --checkpoint resumed a restore, resume (checkpoint, resumed_after_line, \
                     skipped_bytes, skip_seconds, interrupted_at_line, in_flight_done). Status already_complete: \
                     the checkpoint said the restore was complete and nothing was done. Written whatever the \
                     outcome."
    )]
    pub json_summary: Option<PathBuf>,

    /// Print errors only: no notes, no summary
    #[arg(
        short = 'q',
        long,
        long_help = "Print errors only: no notes about expected errors, no summary at the end, no progress. \
                     Without it, a summary goes to stderr at the end, and progress (bytes read, current database \
                     and table) when stderr is a terminal."
    )]
    pub quiet: bool,

    /// List what the script holds, without connecting; exit 0 only if it is complete
    #[arg(
        long,
        long_help = "Read the script and list what it holds, without connecting to any server, as `pg_restore -l` \
                     does for archives: the roles; each database with its encoding and owner (from pg_dumpall's \
                     CREATE DATABASE and \\connect); each table with its rows (COPY data lines) and data size; \
                     large objects; totals. Exit status 0 only if the script is complete: its pg_dumpall or \
                     pg_dump header and closing comment (\"-- PostgreSQL database cluster dump complete\") are \
                     there, and no statement or COPY data is cut off; otherwise 1, each problem on stderr. \
                     `a9s-fetch … -o - | a9s-decrypt | a9s-pgrestore --list` checks the store, the secret, the \
                     backup's integrity and its content before anything is done to a cluster."
    )]
    pub list: bool,

    /// With --list: print the listing as JSON
    #[arg(
        long,
        requires = "list",
        long_help = "With --list: print the listing as one JSON object: kind, complete, problems, roles, databases \
                     (name, encoding, owner, line, tables with name, rows, bytes and line, large_objects, \
                     large_object_bytes) and totals (roles, databases, tables, rows, data_bytes, large_objects, \
                     large_object_bytes, statements, lines, bytes)."
    )]
    pub json: bool,

    #[command(flatten)]
    pub progress: ProgressArgs,

    /// Print help
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
}

/// The command line definition (for --help and the man page).
pub fn command() -> clap::Command {
    Cli::command()
}

/// pg_restore's options, typed here by habit: what a9s-pgrestore has means the same, the rest gets a hint
/// (see the man page, "Coming from pg_restore").
pub const PG_RESTORE_HABITS: &Habits = &[
    // pg_restore -l lists an archive's contents without restoring; --list does that for a script.
    ("-l", Habit::Same(&["--list"])),
    ("-e", Habit::Same(&["--on-error-stop"])),
    ("--exit-on-error", Habit::Same(&["--on-error-stop"])),
    ("-1", Habit::Hint(SINGLE_TRANSACTION)),
    ("--single-transaction", Habit::Hint(SINGLE_TRANSACTION)),
    ("-v", Habit::Hint(VERBOSE)),
    ("--verbose", Habit::Hint(VERBOSE)),
];

const SINGLE_TRANSACTION: &str = "pg_restore's --single-transaction does not apply: a pg_dumpall script's CREATE \
                                  DATABASE and \\connect cannot run inside a transaction; use --on-error-stop to \
                                  stop at the first error, and --checkpoint FILE to resume after one";
const VERBOSE: &str = "pg_restore's --verbose is not needed: a9s-pgrestore reports every error with its line, and \
                       a summary at the end, without it (and progress with --progress); drop it";

/// Runs the program; returns its exit status.
pub fn run(args: impl IntoIterator<Item = OsString>) -> Result<i32> {
    let args = a9s_core::habits::rewrite(&command(), args, PG_RESTORE_HABITS)?;
    let cli: Cli = a9s_core::error::parse_args(command(), args)?;
    if cli.list {
        // Reads the script only: no connection is resolved or made.
        if cli.steps.any() || cli.json_summary.is_some() || cli.checkpoint.is_some() {
            return Err(Error::usage("--list reads the script only: drop the restore and cluster step options"));
        }
        return list::run_path(cli.file.as_deref(), cli.progress.mode(true, cli.quiet), cli.json);
    }
    if cli.steps.dry_run && cli.checkpoint.is_some() {
        return Err(Error::usage("--dry-run restores nothing: drop --checkpoint"));
    }
    if cli.steps.dry_run && !cli.steps.any() {
        return Err(Error::usage("--dry-run goes with --terminate-connections or --rename-database"));
    }
    if cli.steps.any() {
        let mut hooks = StepHooks { steps: cli.steps.clone(), reports: Vec::new() };
        run_cli(cli, &mut hooks)
    } else {
        run_cli(cli, &mut NoHooks)
    }
}

/// Runs the cluster steps around the restore and prints what they did.
struct StepHooks {
    steps: steps::ClusterSteps,
    reports: Vec<steps::StepReport>,
}

impl StepHooks {
    fn print(&mut self, reports: Vec<steps::StepReport>) {
        let mut err = std::io::stderr().lock();
        for r in &reports {
            for line in &r.lines {
                let _ = writeln!(err, "a9s-pgrestore: {line}");
            }
            if r.dry_run {
                for sql in &r.sql {
                    let _ = writeln!(err, "a9s-pgrestore: would run: {sql}");
                }
            }
        }
        self.reports.extend(reports);
    }
}

impl Hooks for StepHooks {
    fn before_restore(&mut self, client: &mut Session, _target: &Target) -> Result<()> {
        let reports = self.steps.before_restore(client)?;
        self.print(reports);
        Ok(())
    }

    fn after_restore(&mut self, target: &Target, summary: &Summary) -> Result<()> {
        let reports = self.steps.after_restore_on(target, summary.exit_code)?;
        self.print(reports);
        Ok(())
    }
}

/// Runs a parsed command line with `hooks` around the restore.
pub fn run_cli(cli: Cli, hooks: &mut dyn Hooks) -> Result<i32> {
    let target = Target::resolve(&cli.conn, "a9s-pgrestore")?;
    let client_encoding = match std::env::var("PGCLIENTENCODING") {
        Ok(v) if !v.is_empty() => Some(encoding::Encoding::parse(&v).ok_or_else(|| {
            Error::usage(format!(
                "PGCLIENTENCODING={v} is not supported: use UTF8, SQL_ASCII, LATIN1, LATIN9 or WIN1252, or unset it"
            ))
        })?),
        _ => None,
    };
    let chunk_bytes = parallel::chunk_bytes_from_env().map_err(Error::usage)?;
    // Refuse what cannot work before connecting. A dry run of the steps reads no script: it restores nothing.
    let (mut input, total, follow_stdin): (Box<dyn BufRead>, Option<u64>, bool) = if cli.steps.dry_run {
        (Box::new(std::io::empty()), None, false)
    } else {
        let input = Input::open(
            cli.file.as_deref(),
            READ_BUFFER,
            "no script: give FILE or pipe the dump in (e.g. `a9s-decrypt --pass file:key < dump.enc | \
             a9s-pgrestore -d postgres`)",
        )?;
        // A regular file, named or redirected (`< dump.sql`), gives the progress line its total.
        let total = input.size();
        let follow_stdin = input.is_stdin();
        (Box::new(input), total, follow_stdin)
    };
    let mut json_out: Option<Box<dyn std::io::Write>> = match &cli.json_summary {
        None => None,
        Some(p) if p.as_os_str() == "-" => Some(Box::new(std::io::stdout())),
        Some(p) => Some(Box::new(
            std::fs::File::create(p).usage_context_io(|| format!("cannot write --json-summary {}", p.display()))?,
        )),
    };
    let opts = Options {
        on_error_stop: cli.on_error_stop,
        quiet: cli.quiet,
        progress: cli.progress.mode(false, cli.quiet),
        total_bytes: total,
        follow_stdin,
        client_encoding,
        jobs: cli.jobs.into(),
        chunk_bytes,
        checkpoint: cli.checkpoint.clone(),
    };
    runner::catch_signals();
    let summary = runner::Runner::new(target, &opts).run(&mut input, hooks);
    let mut code = summary.exit_code;
    if let Some(out) = json_out.as_mut() {
        let mut text = serde_json::to_vec_pretty(&summary).expect("summary serializes");
        text.push(b'\n');
        if let Err(e) = out.write_all(&text).and_then(|_| out.flush()) {
            eprintln!("a9s-pgrestore: {}", Error::io("cannot write the JSON summary", &e));
            if code == exit::OK {
                code = exit::ERRORS;
            }
        }
    }
    Ok(code)
}

/// The complete man page.
#[cfg(feature = "man")]
pub fn man_page() -> String {
    a9s_core::man::render(command(), include_str!("../man.roff"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_habit_is_in_the_man_page() {
        let roff = include_str!("../man.roff");
        assert!(roff.contains(".B Coming from pg_restore."));
        for (word, _) in PG_RESTORE_HABITS {
            assert!(
                roff.contains(&word.replace('-', "\\-")),
                "{word} is missing from man.roff (Coming from pg_restore)"
            );
        }
    }

    #[test]
    fn cli_definition() {
        command().debug_assert();
        // -h is the host, as in psql; --help stays.
        let m = command().try_get_matches_from(["a9s-pgrestore", "-h", "/sock", "-d", "postgres", "dump.sql"]).unwrap();
        let cli = <Cli as clap::FromArgMatches>::from_arg_matches(&m).unwrap();
        assert_eq!(cli.conn.host.as_deref(), Some("/sock"));
        assert_eq!(cli.file.as_deref(), Some(std::path::Path::new("dump.sql")));
        let e = command().try_get_matches_from(["a9s-pgrestore", "--help"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp);
    }

    #[cfg(feature = "man")]
    #[test]
    fn man_page_has_every_section() {
        let page = man_page();
        for section in [".SH DESCRIPTION", ".SH OPTIONS", ".SH \"EXIT STATUS\"", ".SH ENVIRONMENT", ".SH EXAMPLES"] {
            assert!(page.contains(section), "{section} missing");
        }
    }
}
