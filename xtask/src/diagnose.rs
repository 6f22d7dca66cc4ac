//! `cargo xtask diagnose <file, folder or .tar.gz bundle> [--json]`: Expressway-C diagnostic
//! logs in, per affected server the class of origin-verification failure, the certificate or
//! address concerned, the remedy and the workaround out (harness::diagnose does the work).
//!
//! Exit 0: nothing relevant found; 1: failures found; 2: the input could not be read (a path
//! that is not a readable file, folder or archive, or one in which nothing was readable).
//! Entries skipped inside folders and archives, over-long lines and a decompression limit
//! reached are noted on stderr: `note:` lines, or one line of JSON with `--json`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::out::{note, noteln, out, outln};
use anyhow::Context as _;
use clap::Args;
use harness::diagnose::Limits;

#[derive(Debug, Args)]
pub struct DiagnoseArgs {
    /// A log file (plain or gzip'd), a folder (read recursively) or the `.tar.gz` bundle that
    /// Maintenance > Diagnostics > Diagnostic logging downloads.
    input: PathBuf,
    /// Print the findings as a JSON list instead of text for people (and the notes on stderr
    /// as one line of JSON).
    #[arg(long)]
    json: bool,
    /// Stop decompressing after this much output, all gzip layers of the input together:
    /// bytes, or with KiB, MiB, GiB.
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = harness::diagnose::parse_bytes)]
    max_decompressed: u64,
}

pub fn run(args: DiagnoseArgs) -> anyhow::Result<ExitCode> {
    let limits = Limits { decompressed_bytes: args.max_decompressed, ..Limits::default() };
    let report = harness::diagnose::diagnose_path_within(&args.input, &limits)
        .with_context(|| format!("diagnose {}", args.input.display()))?;
    if args.json {
        outln!("{}", report.to_json())?;
        noteln!("{}", report.summary_json());
    } else {
        out!("{}", report.render())?;
        note!("{}", report.notes());
        if report.reading.limit_reached {
            noteln!("note: --max-decompressed SIZE raises the limit");
        }
    }
    Ok(if report.found_failures() { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
