//! `harness::chain` against stored verdicts of the real OpenSSL 1.1.1w and 3.0: every case under
//! `tests/data/chain/` holds a chain (hex DER), the verification parameters and what both
//! libraries answered (every error their verify callback saw while returning 1, and the chain
//! they built). The cases are minimised disagreements the generator (`cargo xtask fuzz chain`)
//! found, and shapes written by hand; `cargo xtask oracle refresh` re-derives their verdicts.
//!
//! Where the oracles are built (`cargo xtask oracle build`), the stored verdicts are also checked
//! against the live libraries, so a stale file fails here.

use std::path::PathBuf;

use harness::chain::oracle::{FLAVOURS, Oracle, OracleRequest, StoredCase, as_oracle_verdict, flavour_key};
use harness::chain::verify;

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
