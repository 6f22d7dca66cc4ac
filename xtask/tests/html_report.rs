//! `cargo xtask scenarios --report html`: the page loads in headless Chromium without script
//! errors and shows every scenario. Skipped (with the reason) where Chromium is absent, except
//! under `CI=true`, where `.ci/run` installs it and its absence is a failure.

use std::path::Path;
use std::process::Command;

#[test]
fn the_html_report_loads_in_chromium_and_shows_every_scenario() {
    let chromium =
        ["chromium", "chromium-browser"].into_iter().find(|c| Command::new(c).arg("--version").output().is_ok());
    let Some(chromium) = chromium else {
        assert!(std::env::var("CI").is_err(), "Chromium is missing under CI: .ci/run must install it");
        eprintln!("skipped: no chromium on this machine (apt-get install chromium)");
        return;
    };
    let dir = tempfile::TempDir::new().expect("tempdir");
    let report = dir.path().join("report.html");
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["scenarios", "--report", "html"])
        .arg(&report)
        .output()
        .expect("xtask scenarios");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let profile = dir.path().join("chromium-profile");
    let dom = Command::new("timeout")
        .args(["120", chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", report.display()))
        .output()
        .expect("chromium");
    let dom = String::from_utf8_lossy(&dom.stdout);
    let scenarios = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios"))
        .expect("scenarios")
        .flatten()
        .filter(|ns| ns.path().is_dir())
        .flat_map(|ns| {
            let name = ns.file_name().to_string_lossy().into_owned();
            std::fs::read_dir(ns.path())
                .expect("namespace")
                .flatten()
                .filter_map(move |f| f.path().file_stem().map(|s| format!("{name}::{}", s.to_string_lossy())))
        })
        .collect::<Vec<_>>();
    assert!(
        dom.contains(&format!("data-scenarios=\"{}\"", scenarios.len())),
        "every scenario rendered:\n{}",
        &dom[..dom.len().min(2000)]
    );
    assert!(dom.contains("data-errors=\"0\""), "no script errors");
    for id in &scenarios {
        assert!(dom.contains(&format!("data-scenario=\"{id}\"")), "{id} missing from the page");
    }
}
