//! `cargo xtask diagnose <file, folder or .tar.gz bundle> [--json]`: Expressway-C diagnostic
//! logs in, per affected server the class of origin-verification failure, the certificate or
//! address concerned, the remedy and the workaround out (harness::diagnose does the work).
//!
//! Exit 0: nothing relevant found; 1: failures found; 2: the input could not be read.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::out::{out, outln};
use anyhow::Context as _;
use clap::Args;

#[derive(Debug, Args)]
pub struct DiagnoseArgs {
    /// A log file (plain or gzip'd), a folder (read recursively) or the `.tar.gz` bundle that
    /// Maintenance > Diagnostics > Diagnostic logging downloads.
    input: PathBuf,
    /// Print the findings as a JSON list instead of text for people.
    #[arg(long)]
    json: bool,
}

pub fn run(args: DiagnoseArgs) -> anyhow::Result<ExitCode> {
    let report =
        harness::diagnose::diagnose_path(&args.input).with_context(|| format!("diagnose {}", args.input.display()))?;
    if args.json {
        outln!("{}", report.to_json())?;
    } else {
        out!("{}", report.render())?;
    }
    Ok(if report.found_failures() { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
