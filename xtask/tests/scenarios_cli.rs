//! `cargo xtask scenarios` as a user runs it, on a copy of the catalogue.

use std::path::Path;
use std::process::Command;

mod catalogue_copy;
use catalogue_copy::copy_dir;
#[path = "../../harness/tests/snapshot_mode/mod.rs"]
mod snapshot_mode;
use snapshot_mode::SnapshotMode;

fn workspace() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `cargo xtask scenarios ARGS --root ROOT`: exit code, stdout (the report), stderr
/// (progress and errors).
fn xtask_split(root: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("scenarios")
        .args(args)
        .arg("--root")
        .arg(root)
        .output()
        .expect("xtask runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn xtask(root: &Path, args: &[&str]) -> (i32, String) {
    let (code, stdout, stderr) = xtask_split(root, args);
    (code, stdout + &stderr)
}

#[test]
fn a_changed_snapshot_line_fails_the_run_naming_that_scenario_and_line_only() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    copy_dir(&workspace().join("scenarios"), &dir.path().join("scenarios"));
    copy_dir(&workspace().join("snapshots"), &dir.path().join("snapshots"));
    let target = dir.path().join("snapshots/builtin/seed/cucm-advertised-by-ip.snap");
    let text = std::fs::read_to_string(&target).expect("snapshot");
    let original = text.lines().find(|l| l.contains("WARNING: SNI (10.48.36.215)")).expect("the SNI line").to_string();
    let changed = original.replace("Action=Terminate", "Action=Continue");
    std::fs::write(&target, text.replacen(&original, &changed, 1)).expect("write");

    let (code, output, _progress) = xtask_split(dir.path(), &[]);
    assert_ne!(code, 0, "{output}");
    assert!(output.contains("seed::cucm-advertised-by-ip"), "{output}");
    assert!(output.contains(&format!("-{changed}")), "the changed line is shown as removed:\n{output}");
    assert!(output.contains(&format!("+{original}")), "and the real line as added:\n{output}");
    let mut catalogue_ids = Vec::new();
    for namespace in std::fs::read_dir(dir.path().join("scenarios")).expect("scenarios").flatten() {
        if !namespace.path().is_dir() {
            continue;
        }
        let ns = namespace.file_name().to_string_lossy().into_owned();
        for file in std::fs::read_dir(namespace.path()).expect("namespace").flatten() {
            if let Some(stem) = file.path().file_stem() {
                catalogue_ids.push(format!("{ns}::{}", stem.to_string_lossy()));
            }
        }
    }
    assert!(catalogue_ids.len() > 1);
    for id in catalogue_ids.iter().filter(|id| *id != "seed::cucm-advertised-by-ip") {
        assert!(!output.contains(&format!("{id} ")) && !output.contains(&format!("{id}\n")), "{id} named:\n{output}");
    }
}

/// The model's runs against the committed snapshots (and expectations): nothing to do under
/// `MRALAB_SNAPSHOTS=off`, where the harness's scenario tests check the expectations.
#[test]
fn the_unchanged_catalogue_passes() {
    if !SnapshotMode::from_env().snapshots() {
        return;
    }
    let (code, output) = xtask(&workspace(), &["seed::"]);
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("0 failed"), "{output}");
}

#[test]
fn a_scenario_without_an_expectation_is_refused_with_its_place() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    copy_dir(&workspace().join("scenarios/seed"), &dir.path().join("scenarios/seed"));
    std::fs::copy(workspace().join("scenarios/jabber-login.toml"), dir.path().join("scenarios/jabber-login.toml"))
        .expect("copy login");
    let path = dir.path().join("scenarios/seed/tftp-self-signed-ecdsa.toml");
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(&path, text.replace("login = { expect = \"fails\" }", "login = { via = \"vcsc\" }")).expect("write");
    let (code, output) = xtask(dir.path(), &["tftp-self-signed"]);
    assert_ne!(code, 0);
    assert!(output.contains("missing field `expect`"), "{output}");
    assert!(output.contains("tftp-self-signed-ecdsa.toml"), "{output}");
    assert!(output.contains("line "), "{output}");
}

#[test]
fn a_misspelt_field_gets_a_suggestion() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    copy_dir(&workspace().join("scenarios/seed"), &dir.path().join("scenarios/seed"));
    std::fs::copy(workspace().join("scenarios/jabber-login.toml"), dir.path().join("scenarios/jabber-login.toml"))
        .expect("copy login");
    let path = dir.path().join("scenarios/seed/before-x14-2.toml");
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(&path, text.replace("system_server =", "system_sever =")).expect("write");
    let (code, output) = xtask(dir.path(), &["before-x14-2"]);
    assert_ne!(code, 0);
    assert!(output.contains("unknown field `system_sever`"), "{output}");
    assert!(output.contains("did you mean 'system_server'?"), "{output}");
}

/// `--accept` writes what changed, except for a scenario whose written expectations fail: its
/// old snapshot stays, the failed expectation is named, and the run exits 1.
#[test]
fn accept_refuses_the_snapshot_of_a_scenario_whose_expectations_fail_and_writes_the_others() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    copy_dir(&workspace().join("scenarios/seed"), &dir.path().join("scenarios/seed"));
    std::fs::copy(workspace().join("scenarios/jabber-login.toml"), dir.path().join("scenarios/jabber-login.toml"))
        .expect("copy login");
    copy_dir(&workspace().join("snapshots/builtin/seed"), &dir.path().join("snapshots/builtin/seed"));
    let snapshot = |id: &str| dir.path().join(format!("snapshots/builtin/seed/{id}.snap"));
    let committed = |id: &str| std::fs::read_to_string(workspace().join(format!("snapshots/builtin/seed/{id}.snap")));

    // A careless edit: the expectation says 200 where the model gives 502, and the snapshot is
    // stale, so --accept would rewrite it.
    let scenario = dir.path().join("scenarios/seed/cucm-advertised-by-ip.toml");
    let text = std::fs::read_to_string(&scenario).expect("read");
    let planted =
        text.replacen("expect = { status = 502, failed = \"name\"", "expect = { status = 200, failed = \"name\"", 1);
    assert_ne!(planted, text, "the expectation to change is there");
    std::fs::write(&scenario, planted).expect("write");
    let stale = "---\nsource: harness/tests/scenarios.rs\nexpression: snapshot\n---\nstale\n";
    std::fs::write(snapshot("cucm-advertised-by-ip"), stale).expect("write");
    // Another scenario's snapshot is stale too, and its expectations hold: it is rewritten.
    std::fs::write(snapshot("tftp-self-signed-ecdsa"), stale).expect("write");
    // And one has none yet.
    std::fs::remove_file(snapshot("before-x14-2")).expect("remove");

    let (code, output) = xtask(dir.path(), &["--accept"]);
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("NOT WRITTEN"), "{output}");
    assert!(output.contains("seed::cucm-advertised-by-ip does not meet its written expectations"), "{output}");
    assert!(output.contains("expected status 200, got 502"), "the failed expectation is named:\n{output}");
    assert!(output.contains("2 snapshot(s) written, 1 refused"), "{output}");
    assert_eq!(std::fs::read_to_string(snapshot("cucm-advertised-by-ip")).expect("kept"), stale);
    for id in ["tftp-self-signed-ecdsa", "before-x14-2"] {
        assert_eq!(std::fs::read_to_string(snapshot(id)).expect("written"), committed(id).expect("committed"), "{id}");
    }
}
