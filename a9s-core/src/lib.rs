//! Shared pieces of the a9s-recovery programs.
//!
//! Every program is a thin `main` over its own library crate; what two or more programs need lives here once:
//! the backup naming model ([`naming`]), ordering and validation of parts ([`parts`]), reading a secret
//! ([`secret`]), the input (`-`, files, [`input`]) and atomic output files ([`output`]), the error and exit-status
//! conventions with context for I/O errors ([`error`]), other tools' flags typed by habit ([`habits`]), text from
//! peers made safe to print ([`sanitize`]), progress on a terminal or in a log ([`progress`]) and how far through
//! the backup a pipe is ([`pipeline`]), hex and base64 ([`encode`]), and man page rendering ([`man`]).

pub mod encode;
pub mod error;
pub mod habits;
pub mod input;
pub mod io;
#[cfg(feature = "man")]
pub mod man;
pub mod naming;
pub mod output;
pub mod parts;
#[cfg(feature = "pg")]
pub mod pg;
pub mod pipeline;
pub mod progress;
pub mod sanitize;
pub mod secret;
#[cfg(feature = "store")]
pub mod store;

pub use error::{Error, Result};

/// `--version` text: the crate version and the git commit the binary was built from.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("A9S_GIT_COMMIT"), ")");
