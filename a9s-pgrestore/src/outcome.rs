//! What a `COPY … FROM stdin` came to, whether it ran on the main session or was dealt over the `--jobs`
//! sessions: one type, so the runner reports both the same way (`Runner::copy_finished`).

use a9s_core::pg::error::SqlError;

/// A COPY's outcome, and whether its data lines are still to be read up to `\.` (so never run as SQL).
#[derive(Debug)]
pub struct CopyResult {
    pub outcome: CopyOutcome,
    pub data_left: bool,
}

#[derive(Debug)]
pub enum CopyOutcome {
    /// Every row loaded: their number.
    Done { rows: u64 },
    /// The server refused the data or a row, or the main session broke; with `--jobs`, every session rolled
    /// back. `row_line`: the script line of the row the server named.
    Failed { error: SqlError, row_line: Option<u64> },
    /// The server refused the COPY before its data: psql would run the data lines as SQL.
    StartRefused(SqlError),
    /// The runner stopped feeding the COPY, for its own reason; nothing was loaded.
    Stopped(FeedStop),
    /// A `--jobs` session is gone.
    Lost(String),
    /// A `--jobs` session waited on another of the restore's sessions, which would have lasted for ever (why):
    /// every session rolled back, nothing was loaded.
    Stalled(String),
    /// `--jobs` sessions committed unevenly (a COMMIT failed after others succeeded): the table is partly
    /// loaded.
    Partial(String),
}

/// Why the runner stopped feeding a COPY.
#[derive(Debug)]
pub enum FeedStop {
    /// The input could not be read (reported already): the exit status.
    Input(i32),
    /// A data line it cannot send (not convertible, a cut input, an odd end marker): the error to report, and
    /// whether data lines are left to skip.
    Message { message: String, data_left: bool },
    /// A NUL byte at this column of the line being read: the restore stops there (exit 3), as for a SQL line.
    Nul { column: u64 },
}

impl FeedStop {
    /// The input ended inside a COPY's data, on either path: psql would end the COPY there and keep what came,
    /// but a cut stream must not look complete.
    pub fn truncated(table: &str, line: u64) -> FeedStop {
        FeedStop::Message {
            message: format!(
                "input ended inside the data of COPY {table} (started at line {line}): the dump is truncated; the \
                 COPY was aborted"
            ),
            data_left: false,
        }
    }
}
