//! Printing that stops quietly when the reader goes away.
//!
//! Rust ignores SIGPIPE, so writing to a pipe whose reader has closed (`cargo xtask … | head -1`)
//! fails with `EPIPE`, and `println!` turns that failure into a panic (exit 101, a backtrace).
//! Every command prints with [`outln!`] and [`out!`] instead, which return the failure: a closed
//! pipe becomes [`Closed`], which `main` turns into a quiet exit with [`CLOSED_EXIT_CODE`], the
//! status a shell shows for a program that SIGPIPE ended (`seq 1 1000000 | head -1` under
//! `set -o pipefail`): output was cut short, so it is no success, and nothing is printed.
//! Restoring SIGPIPE's default action instead would need `unsafe` (forbidden here) and would end
//! the process before it can clean up (`lab start` stops the lab it started, see `lab.rs`).
//!
//! Progress and notes go to stderr with [`noteln!`] and [`note!`], which drop what cannot be
//! written: there is nowhere left to report that to.

use std::fmt;
use std::io::{self, Write as _};

/// Exit code of a command whose standard output was closed: 128 + SIGPIPE (13).
pub const CLOSED_EXIT_CODE: u8 = 141;

/// Standard output's reader has gone: the command stops and exits with [`CLOSED_EXIT_CODE`].
#[derive(Debug, Clone, Copy)]
pub struct Closed;

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("standard output was closed")
    }
}

impl std::error::Error for Closed {}

/// Writes to standard output; a closed pipe is [`Closed`].
pub fn stdout(args: fmt::Arguments<'_>) -> anyhow::Result<()> {
    match io::stdout().lock().write_fmt(args) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(Closed.into()),
        Err(e) => Err(anyhow::Error::new(e).context("writing to standard output")),
    }
}

/// Writes to standard error, dropping what cannot be written.
pub fn stderr(args: fmt::Arguments<'_>) {
    let _ = io::stderr().lock().write_fmt(args);
}

/// Whether `error` is, or was caused by, standard output being closed.
pub fn is_closed(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| cause.is::<Closed>())
}

/// `println!` that returns an error rather than panicking: `outln!("{x}")?`.
macro_rules! outln {
    () => {
        $crate::out::stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::out::stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that returns an error rather than panicking: `out!("{text}")?`.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::out::stdout(format_args!($($arg)*))
    };
}

/// `eprintln!` that never panics.
macro_rules! noteln {
    () => {
        $crate::out::stderr(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::out::stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprint!` that never panics.
macro_rules! note {
    ($($arg:tt)*) => {
        $crate::out::stderr(format_args!($($arg)*))
    };
}

pub(crate) use {note, noteln, out, outln};
