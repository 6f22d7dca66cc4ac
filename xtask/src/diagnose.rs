//! `cargo xtask diagnose <file, folder or bundle> [--json]`: Expressway-C diagnostic logs in,
//! per affected server the class of origin-verification failure, the certificate or address
//! concerned, the request that tied it to its port, the remedy and the workaround out
//! (harness::diagnose does the work).
//!
//! Exit 0: logs read, nothing relevant found; 1: failures found; 2: the input could not be read
//! as logs (a path that is not a readable file, folder or archive, an archive that does not
//! open, one in which nothing was readable, or input in which no line looks like a log line:
//! binary, empty, text of another kind). Entries skipped inside folders and archives, over-long
//! lines and a decompression limit reached are noted on stderr: `note:` lines, or one line of
//! JSON with `--json`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::out::{note, noteln, out, outln};
use anyhow::Context as _;
use clap::Args;
use harness::diagnose::{DiagnoseError, Limits, Reading};

#[derive(Debug, Args)]
pub struct DiagnoseArgs {
    /// A log file (plain, gzip'd, bzip2'd or xz'd), a folder (read recursively) or a bundle: the
    /// `.tar.gz` that Maintenance > Diagnostics > Diagnostic logging downloads, a `.zip`,
    /// `.tar.bz2` or `.tar.xz` (recognised by their first bytes, not their names).
    input: PathBuf,
    /// Print the findings as a JSON list instead of text for people (and the notes on stderr
    /// as one line of JSON).
    #[arg(long)]
    json: bool,
    /// Stop decompressing after this much output, all decompression layers of the input
    /// together: bytes, or with KiB, MiB, GiB.
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = harness::diagnose::parse_bytes)]
    max_decompressed: u64,
}

pub fn run(args: DiagnoseArgs) -> anyhow::Result<ExitCode> {
    let limits = Limits { decompressed_bytes: args.max_decompressed, ..Limits::default() };
    let report = match harness::diagnose::diagnose_path_within(&args.input, &limits) {
        Ok(report) => report,
        Err(error) => {
            // Read, but not as logs: how it was read (a limit reached, entries skipped) comes
            // with the error.
            if let DiagnoseError::NotLogs { files, lines, reading, .. } = &error {
                notes(*files, *lines, reading, args.json);
            }
            return Err(error).with_context(|| format!("diagnose {}", args.input.display()));
        }
    };
    if args.json {
        outln!("{}", report.to_json())?;
    } else {
        out!("{}", report.render())?;
    }
    notes(report.files, report.lines, &report.reading, args.json);
    Ok(if report.found_failures() { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// How the input was read, on stderr: `note:` lines, or one line of JSON.
fn notes(files: usize, lines: usize, reading: &Reading, json: bool) {
    if json {
        noteln!("{}", harness::diagnose::summary_json(files, lines, reading));
    } else {
        note!("{}", reading.notes());
        if reading.limit_reached {
            noteln!("note: --max-decompressed SIZE raises the limit");
        }
    }
}
