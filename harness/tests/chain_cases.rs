//! `harness::chain` against stored verdicts of the real OpenSSL 1.1.1w and 3.0: every case under
//! `tests/data/chain/` holds a chain (hex DER), the verification parameters and what both
//! libraries answered (every error their verify callback saw while returning 1, and the chain
//! they built). The cases are minimised disagreements the generator (`cargo xtask fuzz chain`)
//! found, and shapes written by hand; `cargo xtask oracle refresh` re-derives their verdicts.
//!
//! `tests/data/chain-sample.toml` adds generated chains chosen for coverage (every feature of the
//! generator and every real error code, several times over), stored as their place in the
//! generator's sequence with both libraries' verdicts (`cargo xtask fuzz chain --write-sample`).
//!
//! Where the oracles are built (`cargo xtask oracle build`), the stored verdicts are also checked
//! against the live libraries, so a stale file fails here.

use std::path::PathBuf;

use harness::chain::generate::{self, BuiltChain, Generator};
use harness::chain::oracle::{
    FLAVOURS, Oracle, OracleRequest, OracleVerdict, Sample, StoredCase, as_oracle_verdict, flavour_key, sample_path,
};
use harness::chain::{ChainInput, verify};

fn cases() -> Vec<(String, StoredCase)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/chain");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/data/chain")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read case");
            let case: StoredCase = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), case)
        })
        .collect()
}

#[test]
fn the_model_gives_the_stored_verdicts_of_both_libraries() {
    let cases = cases();
    assert!(!cases.is_empty(), "no stored cases");
    let mut failures = Vec::new();
    for (name, case) in &cases {
        let certs = case.certs().expect("hex");
        for flavour in FLAVOURS {
            let key = flavour_key(flavour);
            let Some(real) = case.verdict.get(key) else {
                failures.push(format!("{name}: no {key} verdict stored"));
                continue;
            };
            if real.undecodable.is_some() {
                continue;
            }
            let permissive = verify(&case.input(&certs, flavour));
            let model = as_oracle_verdict(&permissive, flavour);
            if model != *real {
                failures.push(format!("{name} ({key}): model {model:?}\n    real {real:?}"));
            }
            let enforced =
                verify(&harness::chain::ChainInput { stop_at_first_error: true, ..case.input(&certs, flavour) });
            let first: Vec<_> = as_oracle_verdict(&enforced, flavour).errors;
            if first != real.errors.iter().take(1).copied().collect::<Vec<_>>() {
                failures
                    .push(format!("{name} ({key}) ENFORCED: model {first:?}, real first {:?}", real.errors.first()));
            }
        }
    }
    assert!(failures.is_empty(), "{} disagreements:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn the_stored_verdicts_are_the_live_libraries_where_they_are_built() {
    for flavour in FLAVOURS {
        let Some(oracle) = Oracle::start_flavour(flavour) else {
            eprintln!("no {} oracle built: stored verdicts only", flavour_key(flavour));
            continue;
        };
        let mut oracle = oracle.expect("start the oracle");
        for (name, case) in cases() {
            let certs = case.certs().expect("hex");
            let live = oracle.verify(&OracleRequest::of(&case.input(&certs, flavour))).expect("oracle verdict");
            assert_eq!(
                Some(&live),
                case.verdict.get(flavour_key(flavour)),
                "{name}: stored {} verdict is stale (cargo xtask oracle refresh)",
                flavour_key(flavour)
            );
        }
    }
}

/// A sampled case: its index, the chain built again, the stored verdicts.
type Sampled = (u64, BuiltChain, std::collections::BTreeMap<String, OracleVerdict>);

/// The stored sample, each case drawn again from the seed and built (once for both tests), with
/// its stored verdicts.
fn sample() -> &'static [Sampled] {
    static SAMPLE: std::sync::OnceLock<Vec<Sampled>> = std::sync::OnceLock::new();
    // Drawing a case walks proptest's strategy tree, deeper than a test thread's 2 MiB stack
    // holds in an unoptimised build (the fuzzer draws on its main thread).
    SAMPLE.get_or_init(|| {
        std::thread::Builder::new()
            .stack_size(32 << 20)
            .spawn(build_sample)
            .expect("a thread to draw the sample")
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

fn build_sample() -> Vec<Sampled> {
    let path = sample_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let sample: Sample = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(!sample.cases.is_empty(), "{}: no cases", path.display());
    let generator = Generator::new(sample.seed);
    let mut out = Vec::new();
    let mut stale = Vec::new();
    for case in sample.cases {
        let built = generate::build(&generator.at(case.index).expect("draw").spec()).expect("the case builds");
        if built.digest() != case.digest {
            stale.push(case.index);
        }
        out.push((case.index, built, case.verdict));
    }
    assert!(
        stale.is_empty(),
        "the generator no longer draws the stored sample's cases {stale:?} (their digests differ): write it \
         again with `{}`",
        "cargo xtask fuzz chain --cases <n> --seed <seed> --write-sample (see its description)"
    );
    out
}

#[test]
fn the_model_gives_the_sampled_verdicts_of_both_libraries() {
    let mut failures = Vec::new();
    let cases = sample();
    for (index, built, verdicts) in cases {
        let certs = built.ders();
        for flavour in FLAVOURS {
            let key = flavour_key(flavour);
            let Some(real) = verdicts.get(key) else {
                failures.push(format!("case {index}: no {key} verdict stored"));
                continue;
            };
            if real.undecodable.is_some() {
                continue;
            }
            let model = as_oracle_verdict(&verify(&built.input(&certs, flavour)), flavour);
            if model != *real {
                failures.push(format!("case {index} ({key}): model {model:?}\n    real {real:?}"));
            }
            let enforced = verify(&ChainInput { stop_at_first_error: true, ..built.input(&certs, flavour) });
            let first = as_oracle_verdict(&enforced, flavour).errors;
            if first != real.errors.iter().take(1).copied().collect::<Vec<_>>() {
                failures.push(format!(
                    "case {index} ({key}) ENFORCED: model {first:?}, real first {:?}",
                    real.errors.first()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} disagreements over {} sampled cases (features: cargo xtask fuzz chain prints them):\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn the_sampled_verdicts_are_the_live_libraries_where_they_are_built() {
    let cases = sample();
    for flavour in FLAVOURS {
        let Some(oracle) = Oracle::start_flavour(flavour) else {
            eprintln!("no {} oracle built: sampled verdicts only", flavour_key(flavour));
            continue;
        };
        let mut oracle = oracle.expect("start the oracle");
        for (index, built, verdicts) in cases {
            let certs = built.ders();
            let live = oracle.verify(&OracleRequest::of(&built.input(&certs, flavour))).expect("oracle verdict");
            assert_eq!(
                Some(&live),
                verdicts.get(flavour_key(flavour)),
                "sampled case {index}: stored {} verdict is stale (write the sample again)",
                flavour_key(flavour)
            );
        }
    }
}
