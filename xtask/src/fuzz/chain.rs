//! `cargo xtask fuzz chain`: generated chains (`harness::chain::generate`), each verified by the
//! real OpenSSL of each flavour (the oracles of `cargo xtask oracle build`) and by the model, the
//! two compared (every error code and depth the callback saw, the chain built). Prints progress,
//! then a summary: the rate, the disagreements by class with a shrunk example of each, and the
//! coverage report (chains per feature, per real error code). `--write-cases` stores each class's
//! shrunk example under `harness/tests/data/chain/` with both libraries' verdicts. Exits 1 on any
//! disagreement.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use harness::chain::generate::{self, BuiltChain, ChainSpec, Generator};
use harness::chain::oracle::{self, Oracle, OracleRequest, OracleVerdict, Sample, SampleCase, StoredCase};
use harness::chain::{self, OpensslFlavour, Purpose};

use crate::out::outln;

/// `cargo xtask fuzz ...`.
#[derive(Debug, clap::Args)]
pub struct FuzzArgs {
    #[command(subcommand)]
    command: FuzzCommand,
}

#[derive(Debug, clap::Subcommand)]
enum FuzzCommand {
    /// Generated chains: the model against the real OpenSSL 1.1.1w and 3.0.
    Chain(ChainArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum FlavourChoice {
    #[value(name = "1.1.1")]
    V111,
    #[value(name = "3.0")]
    V30,
    Both,
}

#[derive(Debug, clap::Args)]
struct ChainArgs {
    /// How many chains.
    #[arg(long, default_value_t = 1000)]
    cases: u64,
    /// The generator's seed: the same seed gives the same chains.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Which OpenSSL to compare with.
    #[arg(long, value_enum, default_value = "both")]
    flavour: FlavourChoice,
    /// Store each disagreement class's shrunk example as harness/tests/data/chain/fuzz-*.toml.
    #[arg(long)]
    write_cases: bool,
    /// Keep a sample of the run's cases, chosen for coverage, with both libraries' verdicts, in
    /// harness/tests/data/chain-sample.toml (the chain_cases test holds the model to it).
    #[arg(long)]
    write_sample: bool,
    /// With --write-sample: each feature and each real error code in at least this many kept cases.
    #[arg(long, default_value_t = 4)]
    sample_per: usize,
    /// Shrinking steps per class.
    #[arg(long, default_value_t = 400)]
    shrink_steps: usize,
    /// A progress line every this many cases.
    #[arg(long, default_value_t = 5000)]
    progress: u64,
    /// Threads that build chains and run the model ahead of the oracles (default: one per core).
    #[arg(long)]
    jobs: Option<usize>,
}

/// Runs `cargo xtask fuzz`.
pub fn run(args: FuzzArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        FuzzCommand::Chain(args) => run_chain(&args),
    }
}

/// Each flavour's real verdict.
type Verdicts = Vec<(OpensslFlavour, OracleVerdict)>;

struct Oracles {
    running: Vec<(OpensslFlavour, Oracle)>,
}

impl Oracles {
    fn start(choice: FlavourChoice) -> anyhow::Result<Self> {
        let flavours: Vec<OpensslFlavour> = match choice {
            FlavourChoice::V111 => vec![OpensslFlavour::V1_1_1],
            FlavourChoice::V30 => vec![OpensslFlavour::V3_0],
            FlavourChoice::Both => oracle::FLAVOURS.to_vec(),
        };
        let mut running = Vec::new();
        for flavour in flavours {
            let path = oracle::find(flavour).with_context(|| {
                format!(
                    "no {} oracle in {}: run cargo xtask oracle build",
                    oracle::flavour_key(flavour),
                    oracle::default_dir().display()
                )
            })?;
            running.push((flavour, Oracle::start(&path)?));
        }
        Ok(Oracles { running })
    }

    fn flavours(&self) -> Vec<OpensslFlavour> {
        self.running.iter().map(|(flavour, _)| *flavour).collect()
    }

    /// Sends a case to every oracle without waiting: answers come back in the order sent.
    fn submit(&mut self, built: &BuiltChain) -> anyhow::Result<()> {
        let [peer, trusted] = built.ders();
        let request = OracleRequest {
            peer: &peer,
            trusted: &trusted,
            time: built.time,
            security_level: built.security_level,
            purpose: built.purpose.then_some(Purpose::SslServer),
            verify_depth: built.verify_depth,
        };
        for (_, running) in &mut self.running {
            running.submit(&request)?;
        }
        Ok(())
    }

    /// Every flavour's verdict on the oldest case submitted.
    fn receive(&mut self) -> anyhow::Result<Verdicts> {
        let mut out = Vec::new();
        for (flavour, running) in &mut self.running {
            out.push((*flavour, running.receive()?));
        }
        Ok(out)
    }

    /// Every flavour's real verdict, the oracles working at once.
    fn ask(&mut self, built: &BuiltChain) -> anyhow::Result<Verdicts> {
        self.submit(built)?;
        self.receive()
    }
}

/// The model's verdict in the oracle's terms.
fn model(built: &BuiltChain, flavour: OpensslFlavour) -> OracleVerdict {
    let ders = built.ders();
    oracle::as_oracle_verdict(&chain::verify(&built.input(&ders, flavour)), flavour)
}

/// The disagreement classes of one case, one per flavour that disagrees, from the model's
/// verdicts (`mine`, by flavour) and the real ones.
fn classes_of(mine: &Verdicts, real: &Verdicts) -> Vec<String> {
    let mut classes = Vec::new();
    for (flavour, verdict) in real {
        let Some((_, model)) = mine.iter().find(|(f, _)| f == flavour) else { continue };
        if let Some(class) = oracle::disagreement(model, verdict) {
            classes.push(format!("{}: {class}", oracle::flavour_key(*flavour)));
        }
    }
    classes
}

/// The model's verdict in every flavour of the run.
fn models(built: &BuiltChain, flavours: &[OpensslFlavour]) -> Verdicts {
    flavours.iter().map(|&flavour| (flavour, model(built, flavour))).collect()
}

/// The disagreement classes of one case, asked afresh (shrinking).
fn compare(oracles: &mut Oracles, built: &BuiltChain) -> anyhow::Result<(Vec<String>, Verdicts)> {
    let real = oracles.ask(built)?;
    let mine = models(built, &oracles.flavours());
    Ok((classes_of(&mine, &real), real))
}

/// A case built and modelled on a worker thread, waiting for its turn at the oracles.
struct Ready {
    built: BuiltChain,
    mine: Verdicts,
}

/// What the worker threads spent, in total.
#[derive(Debug, Default)]
struct WorkerTime {
    build: std::sync::atomic::AtomicU64,
    model: std::sync::atomic::AtomicU64,
}

impl WorkerTime {
    fn add(counter: &std::sync::atomic::AtomicU64, since: Instant) {
        let nanos = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        counter.fetch_add(nanos, std::sync::atomic::Ordering::Relaxed);
    }

    fn seconds(counter: &std::sync::atomic::AtomicU64) -> f64 {
        counter.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e9
    }
}

struct Example {
    count: u64,
    first_case: u64,
    spec: ChainSpec,
    built: BuiltChain,
    verdicts: Verdicts,
}

fn slug(class: &str) -> String {
    let mut out = String::new();
    for c in class.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// Cases drawn ahead of the oracles (built and modelled on the workers meanwhile).
const AHEAD: u64 = 64;
/// Cases sent to the oracles before the oldest answer is read.
const IN_FLIGHT: usize = 8;

/// What the run has found so far, case by case in case order.
#[derive(Default)]
struct Tally {
    classes: BTreeMap<String, Example>,
    features: BTreeMap<String, u64>,
    codes: BTreeMap<(String, i32), u64>,
    disagreeing_cases: u64,
    shrink_time: std::time::Duration,
    /// `--write-sample`: the kept cases, and how many of them hold each coverage key.
    sample: Vec<SampleCase>,
    sampled: BTreeMap<String, usize>,
}

/// What a case covers, for choosing the sample: its features, each flavour's real error codes
/// (`0`: verified) and each flavour's first error with its depth class.
fn coverage_keys(built: &BuiltChain, real: &Verdicts) -> Vec<String> {
    let mut keys: Vec<String> = built.features.iter().map(|f| format!("feature {f}")).collect();
    for (flavour, verdict) in real {
        let flavour = oracle::flavour_key(*flavour);
        if verdict.errors.is_empty() {
            keys.push(format!("{flavour} code 0"));
        }
        for (code, _) in &verdict.errors {
            keys.push(format!("{flavour} code {code}"));
        }
        if let Some((code, depth)) = verdict.errors.first() {
            keys.push(format!("{flavour} first {code} at depth {}", (*depth).min(2)));
        }
        if let Some(position) = verdict.undecodable {
            keys.push(format!("{flavour} undecodable p{}", position.min(1)));
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

fn run_chain(args: &ChainArgs) -> anyhow::Result<ExitCode> {
    if args.write_sample && args.flavour != FlavourChoice::Both {
        anyhow::bail!("--write-sample stores both libraries' verdicts: run it with --flavour both");
    }
    if args.write_sample && args.sample_per == 0 {
        anyhow::bail!("--sample-per must be at least 1");
    }
    let mut oracles = Oracles::start(args.flavour)?;
    let flavours = oracles.flavours();
    let mut generator = Generator::new(args.seed);
    let cache = generate::SignatureCache::new();
    let times = WorkerTime::default();
    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())).max(1);
    let mut tally = Tally::default();
    let mut shrink_oracles: Option<Oracles> = None;
    let mut oracle_wait = std::time::Duration::ZERO;
    let started = Instant::now();
    let (job_tx, job_rx) = std::sync::mpsc::sync_channel::<(u64, ChainSpec)>(AHEAD as usize);
    let job_rx = std::sync::Mutex::new(job_rx);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        // Owned by this closure: dropped when it returns, early or not, which ends the workers.
        let job_tx = job_tx;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<(u64, anyhow::Result<Ready>)>();
        for _ in 0..jobs {
            let ready_tx = ready_tx.clone();
            let (job_rx, cache, times, flavours) = (&job_rx, &cache, &times, &flavours);
            scope.spawn(move || {
                loop {
                    let job = match job_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => break,
                    };
                    let Ok((case, spec)) = job else { break };
                    let building = Instant::now();
                    let built = generate::build_cached(&spec, cache);
                    WorkerTime::add(&times.build, building);
                    let ready = built.map_err(anyhow::Error::from).map(|built| {
                        let modelling = Instant::now();
                        let mine = models(&built, flavours);
                        WorkerTime::add(&times.model, modelling);
                        Ready { built, mine }
                    });
                    if ready_tx.send((case, ready)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(ready_tx);
        let mut drawn: std::collections::VecDeque<generate::Drawn> = std::collections::VecDeque::new();
        let mut waiting: BTreeMap<u64, anyhow::Result<Ready>> = BTreeMap::new();
        let mut in_flight: std::collections::VecDeque<Ready> = std::collections::VecDeque::new();
        let (mut next_draw, mut next_submit, mut done) = (0u64, 0u64, 0u64);
        while done < args.cases {
            while next_draw < args.cases && next_draw - done < AHEAD {
                let draw = generator.draw()?;
                job_tx.send((next_draw, draw.spec())).context("the worker threads stopped")?;
                drawn.push_back(draw);
                next_draw += 1;
            }
            if let Some(result) = waiting.remove(&next_submit) {
                let ready = result?;
                oracles.submit(&ready.built)?;
                in_flight.push_back(ready);
                next_submit += 1;
                continue;
            }
            let must_read = in_flight.len() >= IN_FLIGHT || (next_submit == next_draw && !in_flight.is_empty());
            if !must_read {
                // The next case to send is still being built: wait for it unless an answer can
                // be read meanwhile.
                let arrived = if in_flight.is_empty() {
                    Some(ready_rx.recv().context("the worker threads stopped")?)
                } else {
                    ready_rx.try_recv().ok()
                };
                if let Some((case, ready)) = arrived {
                    waiting.insert(case, ready);
                    continue;
                }
            }
            let Some(ready) = in_flight.pop_front() else { continue };
            let waiting_since = Instant::now();
            let real = oracles.receive()?;
            oracle_wait += waiting_since.elapsed();
            let mut draw = drawn.pop_front().context("a case answered that was never drawn")?;
            let case = done;
            done += 1;
            finish(args, case, &mut draw, ready, real, &mut tally, &mut shrink_oracles)?;
            if args.progress > 0 && done % args.progress == 0 {
                let secs = (started.elapsed() - tally.shrink_time).as_secs_f64().max(1e-9);
                outln!(
                    "fuzz chain: {}/{} cases, {:.0}/s, {} disagreeing, {} classes",
                    done,
                    args.cases,
                    done as f64 / secs,
                    tally.disagreeing_cases,
                    tally.classes.len()
                )?;
            }
        }
        drop(job_tx);
        Ok(())
    })?;
    let Tally { classes, features, codes, disagreeing_cases, shrink_time, sample, sampled } = tally;
    let elapsed = started.elapsed();
    let secs = (elapsed - shrink_time).as_secs_f64().max(1e-9);

    outln!("== coverage: chains per feature")?;
    for (feature, count) in &features {
        outln!("  {feature:<40} {count}")?;
    }
    outln!("== coverage: chains per real error code (0: verified)")?;
    let mut thin = Vec::new();
    for ((flavour, code), count) in &codes {
        let text = chain::VerifyErrorCode::from_code(
            *code,
            if flavour == "3.0" { OpensslFlavour::V3_0 } else { OpensslFlavour::V1_1_1 },
        )
        .map(|c| c.text(if flavour == "3.0" { OpensslFlavour::V3_0 } else { OpensslFlavour::V1_1_1 }))
        .unwrap_or(if *code == 0 { "ok" } else { "(not modelled)" });
        outln!("  {flavour:<7} {code:>3} {count:>8}  {text}")?;
        if *code != 0 && *count < 50 {
            thin.push(format!("{flavour}:{code} ({count})"));
        }
    }
    if !thin.is_empty() {
        outln!("  under 50 chains: {}", thin.join(", "))?;
    }
    outln!("== disagreements by class")?;
    for (class, example) in &classes {
        outln!("  {:>7}  {class}  (first at case {})", example.count, example.first_case)?;
        outln!("           shrunk: {}", describe(&example.spec))?;
        for (flavour, verdict) in &example.verdicts {
            let mine = model(&example.built, *flavour);
            outln!(
                "           {}: real chain {} errors {:?}; model chain {} errors {:?}",
                oracle::flavour_key(*flavour),
                verdict.chain.join(","),
                verdict.errors,
                mine.chain.join(","),
                mine.errors
            )?;
        }
        if args.write_cases {
            let path = write_case(class, example)?;
            outln!("           written: {}", path.display())?;
        }
    }
    if args.write_sample {
        let kept = sample.len();
        let sample = Sample {
            description: format!(
                "cargo xtask fuzz chain --cases {} --seed {} --write-sample --sample-per {}: {kept} of {} generated \
                 cases, kept in order while one held a feature or a real error code fewer than {} kept cases had",
                args.cases, args.seed, args.sample_per, args.cases, args.sample_per
            ),
            seed: args.seed,
            drawn: args.cases,
            per: args.sample_per,
            cases: sample,
        };
        let path = oracle::sample_path();
        std::fs::write(&path, toml::to_string(&sample)?).with_context(|| format!("writing {}", path.display()))?;
        outln!(
            "== sample: {kept} of {} cases kept ({} coverage keys), written to {}",
            args.cases,
            sampled.len(),
            path.display()
        )?;
    }
    let (hits, misses) = cache.stats();
    outln!(
        "== time: {jobs} worker threads building {:.1} s and modelling {:.1} s (wall time, summed); \
         the main thread waited {:.1} s on the oracles; signatures: {hits} from the cache, {misses} made",
        WorkerTime::seconds(&times.build),
        WorkerTime::seconds(&times.model),
        oracle_wait.as_secs_f64(),
    )?;
    outln!(
        "fuzz chain: {} cases (seed {}) in {:.1} s ({:.0} cases/s, shrinking {:.1} s apart), {} disagreeing, {} classes",
        args.cases,
        args.seed,
        elapsed.as_secs_f64(),
        args.cases as f64 / secs,
        shrink_time.as_secs_f64(),
        disagreeing_cases,
        classes.len()
    )?;
    Ok(if classes.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// One case's verdicts counted, and a new disagreement class shrunk (with oracles of its own, so
/// the answers of the cases in flight stay in order).
fn finish(
    args: &ChainArgs,
    case: u64,
    drawn: &mut generate::Drawn,
    ready: Ready,
    real: Verdicts,
    tally: &mut Tally,
    shrink_oracles: &mut Option<Oracles>,
) -> anyhow::Result<()> {
    let found = classes_of(&ready.mine, &real);
    if args.write_sample {
        let keys = coverage_keys(&ready.built, &real);
        if keys.iter().any(|k| tally.sampled.get(k).copied().unwrap_or(0) < args.sample_per) {
            for key in keys {
                *tally.sampled.entry(key).or_default() += 1;
            }
            tally.sample.push(SampleCase {
                index: case,
                digest: ready.built.digest(),
                verdict: real.iter().map(|(f, v)| (oracle::flavour_key(*f).to_string(), v.clone())).collect(),
            });
        }
    }
    for feature in &ready.built.features {
        *tally.features.entry(feature.clone()).or_default() += 1;
    }
    for (flavour, verdict) in &real {
        let mut seen: Vec<i32> = verdict.errors.iter().map(|e| e.0).collect();
        seen.sort_unstable();
        seen.dedup();
        for code in seen {
            *tally.codes.entry((oracle::flavour_key(*flavour).to_string(), code)).or_default() += 1;
        }
        if verdict.errors.is_empty() {
            *tally.codes.entry((oracle::flavour_key(*flavour).to_string(), 0)).or_default() += 1;
        }
    }
    if !found.is_empty() {
        tally.disagreeing_cases += 1;
    }
    for class in found {
        if let Some(example) = tally.classes.get_mut(&class) {
            example.count += 1;
            continue;
        }
        // A new class: shrink it while the same class persists.
        let shrinking = Instant::now();
        let oracles = match shrink_oracles {
            Some(oracles) => oracles,
            None => shrink_oracles.insert(Oracles::start(args.flavour)?),
        };
        let shrunk = drawn.shrink(args.shrink_steps, |candidate| {
            generate::build(candidate)
                .ok()
                .and_then(|b| compare(oracles, &b).ok())
                .is_some_and(|(classes, _)| classes.contains(&class))
        });
        let built = generate::build(&shrunk)?;
        let (_, verdicts) = compare(oracles, &built)?;
        tally.shrink_time += shrinking.elapsed();
        outln!("case {case}: new class '{class}' (shrunk)")?;
        tally.classes.insert(class, Example { count: 1, first_case: case, spec: shrunk, built, verdicts });
    }
    Ok(())
}

fn describe(spec: &ChainSpec) -> String {
    format!("{spec:?}")
}

fn write_case(class: &str, example: &Example) -> anyhow::Result<std::path::PathBuf> {
    let mut case = StoredCase {
        description: format!("cargo xtask fuzz chain, class '{class}': {}", describe(&example.spec)),
        time: example.built.time,
        security_level: example.built.security_level,
        ssl_server: example.built.purpose,
        verify_depth: example.built.verify_depth,
        peer: example.built.peer.iter().map(|d| oracle::hex(d)).collect(),
        trusted: example.built.trusted.iter().map(|d| oracle::hex(d)).collect(),
        verdict: Default::default(),
    };
    // Both libraries' verdicts, whichever flavour the run compared.
    let mut both = super::oracle::start_both()?;
    super::oracle::ask_both(&mut both, &mut case)?;
    let dir = super::oracle::cases_dir();
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("fuzz-{}.toml", slug(class)));
    std::fs::write(&path, toml::to_string(&case)?)?;
    Ok(path)
}
