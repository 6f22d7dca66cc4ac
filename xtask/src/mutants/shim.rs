//! The `cargo` cargo-mutants calls: cargo-mutants runs `$CARGO test ...` for each mutant, and
//! `cargo xtask mutants` points `$CARGO` at a copy of this binary with [`ENV`] naming the real
//! cargo. Everything but `cargo test` goes straight to the real cargo. `cargo test --no-run`
//! (cargo-mutants' build phase) builds the first invocation's test target only; `cargo test`
//! judges the mutant in two passes:
//!
//! 1. `MRALAB_SNAPSHOTS=off`: the written expectations and the unit tests ([`PASS_1_TESTS`]);
//!    if one fails, the mutant is caught and that is the end of it.
//! 2. only when nothing failed: `MRALAB_SNAPSHOTS=only`, the snapshot comparisons alone
//!    ([`PASS_2_TESTS`]); a failure here is a mutant caught by a snapshot alone.
//!
//! Each invocation's targets are built just before it runs, so a mutant the scenario catalogue
//! catches costs the harness library and one test crate, not also the unit-test build of the
//! harness and six more crates (most mutants are caught by the first invocation). A target
//! that does not build there makes the mutant unviable ([`UNVIABLE_LATE`]), as a failed build
//! phase would. The second pass runs only for the mutants the first let through. Each pass
//! prints a marker line, which lands in cargo-mutants' log of that mutant; the report reads them.

use std::ffi::{OsStr, OsString};
use std::process::{Command, ExitCode};

/// The variable that turns the xtask binary into the shim; its value is the real cargo.
pub const ENV: &str = "MRALAB_MUTANTS_SHIM";

/// Printed when pass 1 fails.
pub const PASS_1_CAUGHT: &str = "mralab-mutants: caught in pass 1 (MRALAB_SNAPSHOTS=off: expectations and unit tests)";
/// Printed when pass 1 passes and pass 2 starts.
pub const PASS_2: &str = "mralab-mutants: pass 1 caught nothing; pass 2 (MRALAB_SNAPSHOTS=only: snapshots alone)";
/// Printed when pass 2 fails.
pub const SNAPSHOT_ONLY: &str = "mralab-mutants: caught by a snapshot alone";
/// Printed when neither pass fails.
pub const NOTHING_FAILED: &str = "mralab-mutants: nothing failed";
/// Printed when a test target built in the test phase does not build: the mutant is unviable.
pub const UNVIABLE_LATE: &str = "mralab-mutants: a test target does not build with this mutant (unviable)";

/// One `cargo test` invocation: its targets and an optional test-name filter.
#[derive(Debug, Clone, Copy)]
pub struct Invocation {
    /// `--lib`, `--test=<name>`.
    pub targets: &'static [&'static str],
    /// A test-name filter (a substring), for targets of which only some tests are relevant.
    pub filter: Option<&'static str>,
}

/// Pass 1, cheapest to build and most telling first (`cargo test` stops at the first failing
/// target; the harness's unit tests need a second build of the library, so they come after the
/// integration tests, which need none).
/// The scenario catalogue (expectations), the unit tests, the chain against `openssl verify`,
/// against the real libraries' stored verdicts (`chain_cases`: the minimised disagreements the
/// chain fuzzer found, with the live oracles where built) and on generated chains
/// (`chain_generate`), the cipher strings, the model against `openssl s_client`, and the
/// diagnoses the scenarios declare (read from the model's logs). Left out, as they run no verifier-model code or only
/// repeat these: `pki`, `tidy`, `frontdoor` (a stand-in verifier), `hostile_command`,
/// `container`, `determinism` (two runs compared with each other), `ats` (the real traffic
/// server, where installed), the other `diagnose` tests (log files, archives), `command` (its
/// model checks repeat two catalogue scenarios; its adapters' snapshots are pass 2) and the
/// xtask tests (the CLI over the same catalogue).
pub const PASS_1_TESTS: [Invocation; 4] = [
    Invocation { targets: &["--test=scenarios"], filter: None },
    Invocation {
        targets: &[
            "--test=chain",
            "--test=chain_cases",
            "--test=chain_generate",
            "--test=ciphers",
            "--test=model_oracle",
        ],
        filter: None,
    },
    Invocation { targets: &["--lib"], filter: None },
    Invocation { targets: &["--test=diagnose"], filter: Some("every_scenario_that_declares_a_diagnosis") },
];

/// Pass 2: every comparison with committed snapshots: the catalogue under both model profiles,
/// and the adapters' snapshots (their sessions carry the model's cipher order).
pub const PASS_2_TESTS: [Invocation; 2] = [
    Invocation { targets: &["--test=scenarios"], filter: None },
    Invocation { targets: &["--test=command"], filter: Some("matches_its_snapshots") },
];

/// How one pass ended.
enum Judged {
    /// A target of the pass does not build.
    Unviable,
    /// A test failed.
    Failed,
    /// Nothing failed.
    Passed,
}

/// Runs as `cargo <args>`.
pub fn run(real_cargo: &OsStr, args: &[OsString]) -> ExitCode {
    let cargo = |args: &[OsString], extra: &[&str], filter: Option<&str>, snapshots: Option<&str>| {
        let mut command = Command::new(real_cargo);
        command.args(args).args(extra).env_remove(ENV).env("CARGO", real_cargo);
        if let Some(filter) = filter {
            command.args(["--", filter]);
        }
        if let Some(mode) = snapshots {
            command.env("MRALAB_SNAPSHOTS", mode);
        }
        match command.status() {
            Ok(status) => status.code().unwrap_or(1),
            Err(e) => {
                crate::out::noteln!("mralab-mutants: cannot run {}: {e}", real_cargo.to_string_lossy());
                1
            }
        }
    };
    let code = |c: i32| ExitCode::from(u8::try_from(c).unwrap_or(1));
    if args.first().map(OsString::as_os_str) != Some(OsStr::new("test")) {
        return code(cargo(args, &[], None, None));
    }
    if args.iter().any(|a| a == "--no-run") {
        return code(cargo(args, PASS_1_TESTS[0].targets, None, None));
    }
    // The markers go to cargo-mutants' log of the mutant; there is nothing to do if it is gone.
    let mark = |line: &str| {
        let _ = crate::out::stdout(format_args!("{line}\n"));
    };
    // `cargo test <args> --no-run`: the same options, so the build is the one the run then uses.
    let build_args: Vec<OsString> = args.iter().cloned().chain([OsString::from("--no-run")]).collect();
    let judge = |invocations: &[Invocation], mode: &str| -> Judged {
        for i in invocations {
            if cargo(&build_args, i.targets, None, None) != 0 {
                return Judged::Unviable;
            }
            if cargo(args, i.targets, i.filter, Some(mode)) != 0 {
                return Judged::Failed;
            }
        }
        Judged::Passed
    };
    // Each pass with the marker of a failure in it; pass 2 runs only when pass 1 passed.
    let passes: [(&[Invocation], &str, &str); 2] =
        [(&PASS_1_TESTS, "off", PASS_1_CAUGHT), (&PASS_2_TESTS, "only", SNAPSHOT_ONLY)];
    for (index, (invocations, mode, caught)) in passes.into_iter().enumerate() {
        if index == 1 {
            mark(PASS_2);
        }
        match judge(invocations, mode) {
            Judged::Unviable => {
                mark(UNVIABLE_LATE);
                return ExitCode::FAILURE;
            }
            Judged::Failed => {
                mark(caught);
                return ExitCode::FAILURE;
            }
            Judged::Passed => {}
        }
    }
    mark(NOTHING_FAILED);
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every target either pass runs.
    fn build_targets() -> Vec<&'static str> {
        let mut targets: Vec<&'static str> = Vec::new();
        for invocation in PASS_1_TESTS.iter().chain(&PASS_2_TESTS) {
            for target in invocation.targets {
                if !targets.contains(target) {
                    targets.push(target);
                }
            }
        }
        targets
    }

    #[test]
    fn the_build_has_every_target_of_both_passes_once() {
        assert_eq!(
            build_targets(),
            [
                "--test=scenarios",
                "--test=chain",
                "--test=chain_cases",
                "--test=chain_generate",
                "--test=ciphers",
                "--test=model_oracle",
                "--lib",
                "--test=diagnose",
                "--test=command"
            ]
        );
    }

    #[test]
    fn the_scenario_catalogue_and_the_unit_tests_are_in_pass_1() {
        let targets: Vec<&str> = PASS_1_TESTS.iter().flat_map(|i| i.targets.iter().copied()).collect();
        assert!(targets.contains(&"--test=scenarios") && targets.contains(&"--lib"), "{targets:?}");
        assert_eq!(PASS_1_TESTS[0].targets, ["--test=scenarios"], "the catalogue first: it catches most");
    }
}
