//! `cargo xtask bench ...`: the figures the issues ask for, measured in one run.
//! Build with `--release` for figures worth quoting: `cargo run --release -p xtask -- bench pki`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use harness::pki::{KeyCache, Pki, builtin};
use time::OffsetDateTime;

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchWhat,
}

#[derive(Debug, Subcommand)]
enum BenchWhat {
    /// PKI build time: steven-lab and a 50-node fleet, cold and warm key cache.
    Pki {
        /// Repetitions of each warm measurement (the median is shown).
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    match args.what {
        BenchWhat::Pki { runs } => pki(runs),
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn pki(runs: usize) -> anyhow::Result<ExitCode> {
    let at = OffsetDateTime::now_utc();
    println!("{:<14} {:>6} {:>12} {:>12} {:>12}", "topology", "certs", "cold", "warm disk", "warm memory");
    for name in ["steven-lab", "fleet:50"] {
        let topology = builtin::topology(name)?;
        let dir = tempfile::TempDir::new()?;
        let cache = KeyCache::at(dir.path());
        KeyCache::forget_in_memory();
        let start = Instant::now();
        let pki = Pki::build(&topology, at, &cache)?;
        let cold = start.elapsed();
        let disk = median(
            (0..runs.max(1))
                .map(|_| {
                    KeyCache::forget_in_memory();
                    let start = Instant::now();
                    Pki::build(&topology, at, &cache).map(|_| start.elapsed())
                })
                .collect::<Result<_, _>>()?,
        );
        let memory = median(
            (0..runs.max(1))
                .map(|_| {
                    let start = Instant::now();
                    Pki::build(&topology, at, &cache).map(|_| start.elapsed())
                })
                .collect::<Result<_, _>>()?,
        );
        println!("{:<14} {:>6} {:>12?} {:>12?} {:>12?}", name, pki.certs().count(), cold, disk, memory);
    }
    Ok(ExitCode::SUCCESS)
}
