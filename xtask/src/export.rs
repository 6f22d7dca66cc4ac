//! `cargo xtask export limbo DIR`: the catalogue's certificate cases, and the stored chain cases
//! (`harness/tests/data/chain/`), for other projects' harnesses.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::out::outln;
use anyhow::Context as _;
use clap::{Args, ValueEnum};
use harness::pki::KeyCache;
use harness::scenario::Catalogue;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// x509-limbo (`limbo.json`, and `skipped.md` for the cases limbo's rules cannot judge).
    Limbo,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The format.
    format: Format,
    /// The folder to write into (created if missing).
    dir: PathBuf,
    /// The workspace whose scenarios/ to export (default: this one).
    #[arg(long)]
    root: Option<PathBuf>,
}

pub fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let root = args.root.clone().unwrap_or_else(Catalogue::workspace_root);
    let catalogue = Catalogue::at(&root);
    match args.format {
        Format::Limbo => {
            let mut export =
                harness::limbo::export(&catalogue, &KeyCache::default()).context("exporting the catalogue")?;
            // The stored chain cases (the generator's shapes, with both real libraries' verdicts).
            let chain_dir = root.join("harness/tests/data/chain");
            let (chain_cases, chain_skipped) = if chain_dir.is_dir() {
                harness::limbo::chain_cases(&chain_dir).context("exporting the stored chain cases")?
            } else {
                (Vec::new(), Vec::new())
            };
            outln!("{}: {} stored chain case(s) exported", chain_dir.display(), chain_cases.len())?;
            if let Some(cases) = export.limbo["testcases"].as_array_mut() {
                cases.extend(chain_cases);
            }
            export.skipped.extend(chain_skipped);
            std::fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
            let limbo = args.dir.join("limbo.json");
            let text = serde_json::to_string_pretty(&export.limbo).context("serialising limbo.json")?;
            std::fs::write(&limbo, text + "\n").with_context(|| format!("writing {}", limbo.display()))?;
            let skipped = args.dir.join("skipped.md");
            std::fs::write(&skipped, harness::limbo::skipped_markdown(&export.skipped))
                .with_context(|| format!("writing {}", skipped.display()))?;
            let count = export.limbo["testcases"].as_array().map_or(0, Vec::len);
            outln!("{}: {count} test case(s)", limbo.display())?;
            outln!("{}: {} case(s) skipped", skipped.display(), export.skipped.len())?;
            let mut reasons = std::collections::BTreeMap::new();
            for s in &export.skipped {
                *reasons.entry(s.reason).or_insert(0) += 1;
            }
            for (reason, n) in reasons {
                outln!("  {reason}: {n}")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
