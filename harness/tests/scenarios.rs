//! One test per scenario file and model profile, found at run time (a new file needs no code):
//! run it with the built-in model, check its written expectations, and compare its snapshot with insta, so
//! that `cargo insta review` works on `snapshots/`. Under `CI=true` insta writes nothing and a
//! mismatch fails. `MRALAB_SNAPSHOTS=off` checks the expectations only, `only` the snapshots
//! only (see `snapshot_mode`).

use std::path::Path;

use harness::pki::KeyCache;
use harness::scenario::login::LoginSpec;
use harness::scenario::{Catalogue, RunOptions, run::run};
use harness::verifier::builtin::BuiltinFactory;
use harness::verifier::{Profile, VerifierSpec};
use libtest_mimic::{Arguments, Failed, Trial};

mod snapshot_mode;
use snapshot_mode::SnapshotMode;

fn check(catalogue: &Catalogue, path: &Path, profile: Profile, mode: SnapshotMode) -> Result<(), Failed> {
    let scenario = catalogue.load(path).map_err(|e| Failed::from(e.to_string()))?;
    let factory = BuiltinFactory(profile);
    let options = RunOptions {
        verifier: &factory,
        keys: KeyCache::default(),
        login: LoginSpec::jabber(),
        fleet: harness::scenario::run::FleetTier::InProcess,
    };
    let run = run(&scenario, &options).map_err(|e| Failed::from(format!("could not run: {e}")))?;
    let mismatches = run.mismatches();
    if mode.expectations() && !mismatches.is_empty() {
        return Err(format!("expectations that do not hold:\n{}", mismatches.join("\n")).into());
    }
    if !mode.snapshots() {
        return Ok(());
    }
    let snapshot_path = catalogue.snapshot_path(&VerifierSpec::Builtin(profile).snapshot_dir(), &run.id);
    let dir = snapshot_path.parent().map(Path::to_path_buf).unwrap_or_default();
    let name = snapshot_path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let snapshot = run.snapshot;
    let outcome = std::panic::catch_unwind(|| {
        insta::with_settings!({ snapshot_path => dir, prepend_module_to_snapshot => false, omit_expression => false }, {
            insta::assert_snapshot!(name, snapshot);
        });
    });
    outcome.map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "snapshot mismatch".into());
        Failed::from(message)
    })
}

/// `MRALAB_SNAPSHOTS`'s values, and a misspelt one refused.
fn snapshot_mode_values() -> Result<(), Failed> {
    let cases = [
        (None, Some(SnapshotMode::On)),
        (Some("on"), Some(SnapshotMode::On)),
        (Some("off"), Some(SnapshotMode::Off)),
        (Some("only"), Some(SnapshotMode::Only)),
        (Some("of"), None),
    ];
    for (value, want) in cases {
        let got = SnapshotMode::parse(value);
        if got != want {
            return Err(format!("{value:?}: {got:?}, want {want:?}").into());
        }
    }
    let checks = |m: SnapshotMode| (m.expectations(), m.snapshots());
    if checks(SnapshotMode::On) != (true, true)
        || checks(SnapshotMode::Off) != (true, false)
        || checks(SnapshotMode::Only) != (false, true)
    {
        return Err("on checks both, off the expectations only, only the snapshots only".into());
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let mode = SnapshotMode::from_env();
    let catalogue = Catalogue::at(&Catalogue::workspace_root());
    let files = match catalogue.files() {
        Ok(files) => files,
        Err(e) => {
            eprintln!("cannot list scenarios: {e}");
            std::process::exit(2);
        }
    };
    // Each scenario under both profiles of the model, each against its own snapshots.
    let trials = Profile::ALL
        .into_iter()
        .flat_map(|profile| {
            let catalogue = catalogue.clone();
            files.clone().into_iter().map(move |path| {
                let id = catalogue.id_of(&path).unwrap_or_else(|| path.display().to_string());
                let catalogue = catalogue.clone();
                Trial::test(format!("scenario::{profile}::{id}"), move || check(&catalogue, &path, profile, mode))
            })
        })
        .chain([Trial::test("snapshot_mode::values", snapshot_mode_values)])
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
