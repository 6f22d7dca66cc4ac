//! `cargo xtask mutants` as CI runs it: listing the scope (needs cargo-mutants; skipped without
//! it) and merging shard reports (of this checkout's commit, which git must know).

use std::path::Path;
use std::process::Command;

fn xtask(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask")).arg("mutants").args(args).output().expect("xtask runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// This checkout's commit: `merge` reads the files of the scope at a report's commit from git.
fn head() -> String {
    let out = Command::new("git").args(["rev-parse", "HEAD"]).output().expect("git runs");
    assert!(out.status.success(), "git rev-parse HEAD: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn shard_report(dir: &Path, shard: &str, name: &str, verdict: &str, seconds: f64) -> String {
    let path = dir.join(format!("shard-{}.json", shard.replace('/', "-of-")));
    let report = serde_json::json!({
        "format": 1,
        "commit": head(),
        "cargo_mutants": "27.1.0",
        "profile": "mutants",
        "modules": ["name"],
        "shards": [shard],
        "seconds": seconds,
        "runs": 1,
        "equivalent": 0,
        "stale": [],
        "mutants": [{ "name": name, "module": "name", "verdict": verdict, "seconds": 30.0 }],
    });
    std::fs::write(&path, report.to_string()).expect("write report");
    path.display().to_string()
}

#[test]
fn shard_reports_merge_into_one_with_the_summed_time() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let a = shard_report(dir.path(), "1/2", "harness/src/verifier/name.rs:13:5: replace x", "expectation", 600.0);
    let b = shard_report(dir.path(), "2/2", "harness/src/verifier/name.rs:52:5: replace y", "snapshot-only", 1200.0);
    let merged = dir.path().join("all.json");
    let (code, text) = xtask(&["merge", &a, &b, "--json", &merged.display().to_string()]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("30m 00s (summed over 2 runs)"), "{text}");
    assert!(text.contains("caught by an expectation or a unit test: 1 of 2 (50.0%"), "{text}");
    assert!(text.contains("caught by a snapshot alone"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&merged).expect("merged report")).expect("JSON");
    assert_eq!(json["seconds"], 1800.0);
    assert_eq!(json["shards"], serde_json::json!(["1/2", "2/2"]));
    assert_eq!(json["counts"]["name"]["snapshot-only"], 1);

    assert_eq!(json["commit"], head());
    assert!(json["files"].as_object().is_some_and(|f| f.contains_key("harness/src/verifier/name.rs")), "{json}");

    // A shard missing: said, and exit 1.
    let (code, text) = xtask(&["merge", &a]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("missing shards: 2/2"), "{text}");
}

#[test]
fn the_scope_lists_every_module_and_the_equivalents_excluded() {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("cargo-mutants").is_file()))
        || std::env::var_os("HOME").is_some_and(|h| Path::new(&h).join(".cargo/bin/cargo-mutants").is_file());
    if !found {
        eprintln!("skipped: no cargo-mutants (cargo install --locked cargo-mutants --version 27.1.0)");
        return;
    }
    let (code, text) = xtask(&["--list", "--module", "name,ciphers"]);
    assert_eq!(code, 0, "{text}");
    for module in ["chain", "name", "builtin", "log", "expressway", "ciphers"] {
        assert!(text.lines().any(|l| l.starts_with(module) && l.contains(" mutants,")), "{module}:\n{text}");
    }
    assert!(text.contains("harness/src/verifier/name.rs:"), "{text}");
    assert!(!text.contains("harness/src/ciphers/table.rs:69:33: replace << with >>"), "an equivalent one:\n{text}");
    assert!(!text.contains("stale"), "{text}");
    let (code, text) = xtask(&["--list", "--module", "nom"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("unknown module 'nom'"), "{text}");

    // What a report lists as not run, and only that: one mutant of `name` the tree has, and
    // one it does not (said, not selected).
    let first = text_first_mutant(&xtask(&["--list", "--module", "name"]).1, "harness/src/verifier/name.rs:");
    let dir = tempfile::TempDir::new().expect("tempdir");
    let left = dir.path().join("left.json");
    let report = serde_json::json!({
        "format": 1, "commit": head(), "cargo_mutants": "27.1.0", "profile": "mutants",
        "modules": ["name"], "shards": [], "seconds": 0.0, "runs": 1, "equivalent": 0, "stale": [],
        "mutants": [], "not_run": [first, "harness/src/verifier/name.rs:1:1: replace gone -> bool with true"],
    });
    std::fs::write(&left, report.to_string()).expect("report");
    let (code, text) = xtask(&["--list", "--not-run-in", &left.display().to_string()]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("1 mutant(s) selected\n"), "{text}");
    assert!(text.starts_with(&format!("{first}\n")), "{text}");
    assert!(text.contains("1 mutant(s) the report lists as not run are not mutants of this tree"), "{text}");
    std::fs::write(&left, report.to_string().replace("\"not_run\"", "\"was_not_run\"")).expect("report");
    let (code, text) = xtask(&["--list", "--not-run-in", &left.display().to_string()]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("lists no mutant as not run"), "{text}");
}

/// The first line of a listing that starts with `prefix`.
fn text_first_mutant(listing: &str, prefix: &str) -> String {
    listing.lines().find(|l| l.starts_with(prefix)).expect("a mutant listed").to_string()
}

#[test]
fn a_run_cut_short_still_gives_the_report_of_what_it_judged() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let judged = "harness/src/verifier/name.rs:13:5: replace dns_matches -> bool with true";
    let left = "harness/src/verifier/name.rs:52:5: replace ip_bytes_match -> bool with true";
    let run = serde_json::json!({
        "report": {
            "format": 1, "commit": head(), "cargo_mutants": "27.1.0", "profile": "mutants",
            "modules": ["name"], "shards": ["1/3"], "seconds": 0.0, "runs": 1, "equivalent": 0,
            "stale": [], "mutants": [],
        },
        "selected": [judged, left],
    });
    std::fs::write(dir.path().join("mralab-run.json"), run.to_string()).expect("run record");
    let out = dir.path().join("mutants.out");
    std::fs::create_dir_all(out.join("log")).expect("log folder");
    std::fs::write(
        out.join("log/a.log"),
        "     Running `/t/mutants/deps/scenarios-8fde3d4a`\ntest result: FAILED.\n\
         mralab-mutants: caught in pass 1 (MRALAB_SNAPSHOTS=off: expectations and unit tests)\n",
    )
    .expect("log");
    let outcomes = serde_json::json!({ "outcomes": [
        { "scenario": "Baseline", "summary": "Success", "log_path": "log/baseline.log", "phase_results": [] },
        { "scenario": { "Mutant": { "name": judged } }, "summary": "CaughtMutant", "log_path": "log/a.log",
          "phase_results": [{ "phase": "Build", "duration": 5.0 }, { "phase": "Test", "duration": 3.0 }] },
    ]});
    std::fs::write(out.join("outcomes.json"), outcomes.to_string()).expect("outcomes");
    let json = dir.path().join("report.json");
    let (code, text) = xtask(&["report", &dir.path().display().to_string(), "--json", &json.display().to_string()]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("caught by an expectation or a unit test: 1 of 1"), "{text}");
    assert!(text.contains("caught first by (test target): scenarios 1"), "{text}");
    assert!(
        text.contains(&format!("not run yet (of the selection; in a merge, of the scope): 1 (name 1)\n  {left}")),
        "{text}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("report")).expect("JSON");
    assert_eq!(report["seconds"], 8.0);
    assert_eq!(report["mutants"][0]["caught_by"], "scenarios");
    assert_eq!(report["not_run"], serde_json::json!([left]));
    // No run record: said.
    let (code, text) = xtask(&["report", &out.display().to_string()]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("mralab-run.json"), "{text}");
}
