//! The same scenario gives byte-identical snapshots on every run: the catalogue run twice, the
//! second time in reverse order and on more threads, snapshot by snapshot.

use harness::pki::KeyCache;
use harness::scenario::Catalogue;
use harness::scenario::batch::run_files;
use harness::scenario::login::LoginSpec;
use harness::scenario::run::RunOptions;
use harness::verifier::Profile;
use harness::verifier::builtin::BuiltinFactory;

#[test]
fn the_catalogue_twice_and_in_reverse_order_gives_identical_snapshots() {
    let catalogue = Catalogue::at(&Catalogue::workspace_root());
    let files = catalogue.files().expect("scenarios");
    assert!(!files.is_empty());
    let factory = BuiltinFactory(Profile::ExpresswayX14_2);
    let options = RunOptions {
        verifier: &factory,
        keys: KeyCache::default(),
        login: LoginSpec::jabber(),
        fleet: harness::scenario::run::FleetTier::InProcess,
    };
    let snapshots = |files: &[std::path::PathBuf], threads: usize| {
        let mut out: Vec<(String, String)> = run_files(&catalogue, files, &options, "builtin", threads, &|_, _, _| {})
            .into_iter()
            .map(|e| {
                let (run, _) = e.result.unwrap_or_else(|err| panic!("{} could not run: {err}", e.id));
                (run.id, run.snapshot)
            })
            .collect();
        out.sort();
        out
    };
    let forward = snapshots(&files, 1);
    let mut reversed_files = files.clone();
    reversed_files.reverse();
    let backward = snapshots(&reversed_files, 3);
    assert_eq!(forward.len(), backward.len());
    for ((id, a), (_, b)) in forward.iter().zip(&backward) {
        assert!(a == b, "{id} differs between runs:\n{}", harness::scenario::catalogue::diff(a, b));
    }
}
