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
use harness::chain::oracle::{self, Oracle, OracleRequest, OracleVerdict, StoredCase};
use harness::chain::{self, ChainInput, OpensslFlavour, Purpose};
use rustls_pki_types::CertificateDer;

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
    /// Shrinking steps per class.
    #[arg(long, default_value_t = 400)]
    shrink_steps: usize,
    /// A progress line every this many cases.
    #[arg(long, default_value_t = 5000)]
    progress: u64,
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

    /// Every flavour's real verdict, the oracles working at once.
    fn ask(&mut self, built: &BuiltChain) -> anyhow::Result<Verdicts> {
        let peer: Vec<CertificateDer<'_>> = built.peer.iter().map(|d| CertificateDer::from(d.as_slice())).collect();
        let trusted: Vec<CertificateDer<'_>> =
            built.trusted.iter().map(|d| CertificateDer::from(d.as_slice())).collect();
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
        let mut out = Vec::new();
        for (flavour, running) in &mut self.running {
            out.push((*flavour, running.receive()?));
        }
        Ok(out)
    }
}

/// The model's verdict in the oracle's terms.
fn model(built: &BuiltChain, flavour: OpensslFlavour) -> OracleVerdict {
    let peer: Vec<CertificateDer<'_>> = built.peer.iter().map(|d| CertificateDer::from(d.as_slice())).collect();
    let trusted: Vec<CertificateDer<'_>> = built.trusted.iter().map(|d| CertificateDer::from(d.as_slice())).collect();
    let input = ChainInput {
        peer_chain: &peer,
        trusted: &trusted,
        validation_time: built.time,
        purpose: built.purpose.then_some(Purpose::SslServer),
        flavour,
        stop_at_first_error: false,
        security_level: built.security_level,
        verify_depth: built.verify_depth,
    };
    oracle::as_oracle_verdict(&chain::verify(&input), flavour)
}

/// The disagreement classes of one case, one per flavour that disagrees.
fn compare(oracles: &mut Oracles, built: &BuiltChain) -> anyhow::Result<(Vec<String>, Verdicts)> {
    let real = oracles.ask(built)?;
    let mut classes = Vec::new();
    for (flavour, verdict) in &real {
        let mine = model(built, *flavour);
        if let Some(class) = oracle::disagreement(&mine, verdict) {
            classes.push(format!("{}: {class}", oracle::flavour_key(*flavour)));
        }
    }
    Ok((classes, real))
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

fn run_chain(args: &ChainArgs) -> anyhow::Result<ExitCode> {
    let mut oracles = Oracles::start(args.flavour)?;
    let mut generator = Generator::new(args.seed);
    let mut classes: BTreeMap<String, Example> = BTreeMap::new();
    let mut features: BTreeMap<String, u64> = BTreeMap::new();
    let mut codes: BTreeMap<(String, i32), u64> = BTreeMap::new();
    let mut disagreeing_cases = 0u64;
    let started = Instant::now();
    let mut shrink_time = std::time::Duration::ZERO;
    for case in 0..args.cases {
        let mut drawn = generator.draw()?;
        let spec = drawn.spec();
        let built = generate::build(&spec)?;
        let (found, real) = compare(&mut oracles, &built)?;
        for feature in &built.features {
            *features.entry(feature.clone()).or_default() += 1;
        }
        for (flavour, verdict) in &real {
            let mut seen: Vec<i32> = verdict.errors.iter().map(|e| e.0).collect();
            seen.sort_unstable();
            seen.dedup();
            for code in seen {
                *codes.entry((oracle::flavour_key(*flavour).to_string(), code)).or_default() += 1;
            }
            if verdict.errors.is_empty() {
                *codes.entry((oracle::flavour_key(*flavour).to_string(), 0)).or_default() += 1;
            }
        }
        if !found.is_empty() {
            disagreeing_cases += 1;
        }
        for class in found {
            if let Some(example) = classes.get_mut(&class) {
                example.count += 1;
                continue;
            }
            // A new class: shrink it while the same class persists.
            let shrinking = Instant::now();
            let shrunk = drawn.shrink(args.shrink_steps, |candidate| {
                generate::build(candidate)
                    .ok()
                    .and_then(|b| compare(&mut oracles, &b).ok())
                    .is_some_and(|(classes, _)| classes.contains(&class))
            });
            let built = generate::build(&shrunk)?;
            let (_, verdicts) = compare(&mut oracles, &built)?;
            shrink_time += shrinking.elapsed();
            outln!("case {case}: new class '{class}' (shrunk)")?;
            classes.insert(class, Example { count: 1, first_case: case, spec: shrunk, built, verdicts });
        }
        if args.progress > 0 && (case + 1) % args.progress == 0 {
            let secs = (started.elapsed() - shrink_time).as_secs_f64().max(1e-9);
            outln!(
                "fuzz chain: {}/{} cases, {:.0}/s, {} disagreeing, {} classes",
                case + 1,
                args.cases,
                (case + 1) as f64 / secs,
                disagreeing_cases,
                classes.len()
            )?;
        }
    }
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
