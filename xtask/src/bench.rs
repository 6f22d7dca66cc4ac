//! `cargo xtask bench ...`: the figures the issues ask for, measured in one run.
//! Build with `--release` for figures worth quoting: `cargo run --release -p xtask -- bench pki`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::out::outln;
use clap::{Args, Subcommand};
use harness::pki::{KeyCache, Pki, Topology, builtin};
use harness::source::Source;
use time::OffsetDateTime;

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchWhat,
}

#[derive(Debug, Subcommand)]
enum BenchWhat {
    /// PKI check and build time: steven-lab, a 50-node fleet and a chain of 128 certificates
    /// (the longest a topology may hold), cold and warm key cache.
    Pki {
        /// Repetitions of each warm measurement (the median is shown).
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Verified requests per second through the model, one node and across a 100-node fleet,
    /// beside bare rustls handshakes (+ the same HTTP request) in the same run.
    Verify {
        /// Requests per measurement.
        #[arg(long, default_value_t = 1000)]
        requests: usize,
        /// Nodes in the swept fleet.
        #[arg(long, default_value_t = 100)]
        nodes: usize,
    },
    /// The whole catalogue's wall time, cold and warm key cache, and per scenario.
    Scenarios {
        /// Worker threads (default: the machine's cores).
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// The fleet's start-up, memory and handshake rates (runs simulators/benches/fleet.rs).
    Fleet,
    /// The container fleet (`--fleet containers`): N `mralab/node` containers up and each
    /// answering a TLS handshake on 8443 from inside the namespace, their memory, and the seed
    /// scenarios end to end through ATS 8.1 on it (root; `cargo xtask images`).
    FleetContainers {
        /// Fleet sizes to start, one after the other.
        #[arg(long, value_delimiter = ',', default_value = "10,50")]
        nodes: Vec<usize>,
        /// Skip the seed scenarios.
        #[arg(long)]
        no_scenarios: bool,
    },
    /// The catalogue through the real Apache Traffic Server (`scenarios --verifier ats`, or a
    /// container's with `--verifier ats:8.1|ats:9.2`): wall time, container starts,
    /// traffic_server starts and their mean, requests, their mean and requests per second.
    Ats {
        /// Worker threads (default: the machine's cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// `ats` (the host's traffic_server), `ats:8.1` or `ats:9.2` (containers).
        #[arg(long, default_value = "ats")]
        verifier: String,
    },
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    match args.what {
        BenchWhat::Pki { runs } => pki(runs),
        BenchWhat::Verify { requests, nodes } => crate::bench_verify::verify(requests, nodes),
        BenchWhat::Scenarios { jobs } => scenarios(jobs),
        BenchWhat::Ats { jobs, verifier } => ats(jobs, &verifier),
        BenchWhat::FleetContainers { nodes, no_scenarios } => crate::bench_fleet::containers(&nodes, !no_scenarios),
        BenchWhat::Fleet => {
            let status = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args(["bench", "-p", "simulators", "--bench", "fleet"])
                .status()?;
            Ok(if status.success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// The longest chain a topology may hold: `c0` (self-signed) <- `c1` <- ... <- `c127`.
fn longest_chain() -> Source {
    let mut text = String::from("[certs.c0]\nsubject = { CN = \"c0\" }\n");
    for i in 1..harness::pki::MAX_CHAIN {
        text.push_str(&format!("[certs.c{i}]\nissuer = \"c{}\"\nsubject = {{ CN = \"c{i}\" }}\n", i - 1));
    }
    Source::new(format!("chain:{}", harness::pki::MAX_CHAIN), text)
}

fn pki(runs: usize) -> anyhow::Result<ExitCode> {
    let at = OffsetDateTime::now_utc();
    let runs = runs.max(1);
    outln!(
        "{:<14} {:>6} {:>12} {:>12} {:>12} {:>12}",
        "topology",
        "certs",
        "check",
        "cold",
        "warm disk",
        "warm memory"
    )?;
    for source in [builtin::source("steven-lab")?, builtin::source("fleet:50")?, longest_chain()] {
        let name = source.name.trim_start_matches("built-in:");
        // Reading and checking the TOML: issuers, cycles, chain depths.
        let check = median(
            (0..runs)
                .map(|_| {
                    let start = Instant::now();
                    Topology::from_toml(&source).map(|_| start.elapsed())
                })
                .collect::<Result<_, _>>()?,
        );
        let topology = Topology::from_toml(&source)?;
        let dir = tempfile::TempDir::new()?;
        let cache = KeyCache::at(dir.path());
        KeyCache::forget_in_memory();
        let start = Instant::now();
        let pki = Pki::build(&topology, at, &cache)?;
        let cold = start.elapsed();
        let disk = median(
            (0..runs)
                .map(|_| {
                    KeyCache::forget_in_memory();
                    let start = Instant::now();
                    Pki::build(&topology, at, &cache).map(|_| start.elapsed())
                })
                .collect::<Result<_, _>>()?,
        );
        let memory = median(
            (0..runs)
                .map(|_| {
                    let start = Instant::now();
                    Pki::build(&topology, at, &cache).map(|_| start.elapsed())
                })
                .collect::<Result<_, _>>()?,
        );
        outln!("{:<14} {:>6} {:>12?} {:>12?} {:>12?} {:>12?}", name, pki.certs().count(), check, cold, disk, memory)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn scenarios(jobs: Option<usize>) -> anyhow::Result<ExitCode> {
    use harness::scenario::batch::run_files;
    use harness::scenario::login::LoginSpec;
    use harness::scenario::{Catalogue, RunOptions};
    use harness::verifier::{Profile, builtin::BuiltinFactory};
    let catalogue = Catalogue::at(&Catalogue::workspace_root());
    let files = catalogue.files()?;
    let factory = BuiltinFactory(Profile::ExpresswayX14_2);
    let threads = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let dir = tempfile::TempDir::new()?;
    let mut per_scenario = Vec::new();
    outln!("{} scenarios, {threads} threads", files.len())?;
    for label in ["cold key cache", "warm key cache (disk)", "warm key cache (memory)"] {
        if label != "warm key cache (memory)" {
            KeyCache::forget_in_memory();
        }
        let options = RunOptions {
            verifier: &factory,
            keys: KeyCache::at(dir.path()),
            login: LoginSpec::jabber(),
            fleet: harness::scenario::run::FleetTier::InProcess,
        };
        let start = Instant::now();
        let entries = run_files(&catalogue, &files, &options, "builtin", threads, &|_, _, _| {});
        let wall = start.elapsed();
        let failed = entries.iter().filter(|e| e.result.is_err()).count();
        outln!(
            "{label:<26} {wall:>10.2?}{}",
            if failed > 0 { format!("  ({failed} could not run)") } else { String::new() }
        )?;
        per_scenario = entries.into_iter().map(|e| (e.elapsed, e.id)).collect();
    }
    per_scenario.sort_by_key(|(elapsed, _)| std::cmp::Reverse(*elapsed));
    outln!("\nslowest scenarios (warm):")?;
    for (elapsed, id) in per_scenario.iter().take(10) {
        outln!("  {elapsed:>10.2?}  {id}")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn ats(jobs: Option<usize>, verifier: &str) -> anyhow::Result<ExitCode> {
    use harness::scenario::batch::{BatchEntry, run_files};
    use harness::scenario::login::LoginSpec;
    use harness::scenario::{Catalogue, RunOptions};
    use harness::verifier::VerifierSpec;
    use harness::verifier::ats::tally;
    let spec: VerifierSpec = verifier.parse()?;
    if !matches!(spec, VerifierSpec::Ats(_)) {
        anyhow::bail!("bench ats measures ats, ats:8.1 or ats:9.2, not {verifier}");
    }
    let factory = spec.factory()?;
    factory.preflight()?;
    let snapshots = spec.snapshot_dir();
    let catalogue = Catalogue::at(&Catalogue::workspace_root());
    let files = catalogue.files()?;
    let threads = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let options = RunOptions {
        verifier: factory.as_ref(),
        keys: KeyCache::default(),
        login: LoginSpec::jabber(),
        fleet: harness::scenario::run::FleetTier::InProcess,
    };
    let before = tally();
    let start = Instant::now();
    let entries = run_files(&catalogue, &files, &options, &snapshots, threads, &|_, _, _| {});
    let wall = start.elapsed();
    let spent = tally() - before;
    let failed: Vec<&BatchEntry> = entries.iter().filter(|e| e.failed()).collect();
    let mean = |total: Duration, n: u64| total.checked_div(u32::try_from(n).unwrap_or(u32::MAX)).unwrap_or_default();
    outln!("{} scenarios through {verifier}, {threads} threads", files.len())?;
    outln!("{:<22} {wall:>10.2?}", "wall time")?;
    if spent.containers > 0 {
        outln!(
            "{:<22} {:>10}   mean {:>8.1?}   {:>8.2?} in all",
            "containers started",
            spent.containers,
            mean(spent.container_time, spent.containers),
            spent.container_time
        )?;
    }
    outln!(
        "{:<22} {:>10}   mean {:>8.1?}   {:>8.2?} in all",
        "traffic_server starts",
        spent.starts,
        mean(spent.start_time, spent.starts),
        spent.start_time
    )?;
    outln!(
        "{:<22} {:>10}   mean {:>8.1?}   {:>8.2?} in all (a start before a request not counted)",
        "requests",
        spent.requests,
        mean(spent.request_time, spent.requests),
        spent.request_time
    )?;
    let per_second = if wall.is_zero() { 0.0 } else { spent.requests as f64 / wall.as_secs_f64() };
    outln!("{:<22} {per_second:>10.1}", "requests/s (wall)")?;
    let mut slowest: Vec<(Duration, &str)> = entries.iter().map(|e| (e.elapsed, e.id.as_str())).collect();
    slowest.sort_by_key(|(elapsed, _)| std::cmp::Reverse(*elapsed));
    outln!("\nslowest scenarios:")?;
    for (elapsed, id) in slowest.iter().take(5) {
        outln!("  {elapsed:>10.2?}  {id}")?;
    }
    if failed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "\n{} scenario(s) did not match snapshots/{snapshots} (`cargo xtask scenarios --verifier {verifier}` says how):",
        failed.len()
    )?;
    for entry in failed {
        outln!("  {}", entry.id)?;
    }
    Ok(ExitCode::FAILURE)
}
