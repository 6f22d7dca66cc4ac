//! `cargo xtask scenarios --report html`: the page loads in headless Chromium without script
//! errors and shows every scenario. Skipped (with the reason) where Chromium is absent, except
//! under `CI=true`, where `.ci/run` installs it and its absence is a failure.

use std::path::Path;
use std::process::Command;

mod catalogue_copy;
use catalogue_copy::copy_dir;

/// The Chromium on this machine; `None` (the test skips, saying why) where there is none,
/// except under CI, where `.ci/run` installs it.
fn chromium() -> Option<&'static str> {
    let chromium =
        ["chromium", "chromium-browser"].into_iter().find(|c| Command::new(c).arg("--version").output().is_ok());
    if chromium.is_none() {
        assert!(std::env::var("CI").is_err(), "Chromium is missing under CI: .ci/run must install it");
        eprintln!("skipped: no chromium on this machine (apt-get install chromium)");
    }
    chromium
}

/// The page's DOM after Chromium loaded it and ran its script.
fn dom(chromium: &str, dir: &Path, report: &Path) -> String {
    let profile = dir.join("chromium-profile");
    let dom = Command::new("timeout")
        .args(["120", chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", report.display()))
        .output()
        .expect("chromium");
    String::from_utf8_lossy(&dom.stdout).into_owned()
}

#[test]
fn the_html_report_loads_in_chromium_and_shows_every_scenario() {
    let Some(chromium) = chromium() else { return };
    let dir = tempfile::TempDir::new().expect("tempdir");
    let report = dir.path().join("report.html");
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["scenarios", "--report", "html"])
        .arg(&report)
        .output()
        .expect("xtask scenarios");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let dom = dom(chromium, dir.path(), &report);
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

/// A failure planted in a copy of the catalogue: step 5 of `seed::tftp-self-signed-ecdsa` now
/// expects 200 where the self-signed CallManager-ECDSA gets 502, and its snapshot has a changed
/// line tail. The page must show the failing step, its expectation, the error code and depth,
/// a highlighted diff span, the certificate verification failed at, and rendered Markdown.
#[test]
fn a_planted_failure_shows_its_step_code_depth_diff_and_certificate_in_chromium() {
    let Some(chromium) = chromium() else { return };
    let dir = tempfile::TempDir::new().expect("tempdir");
    let root = dir.path().join("catalogue");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    copy_dir(&workspace.join("scenarios"), &root.join("scenarios"));
    copy_dir(&workspace.join("snapshots/builtin"), &root.join("snapshots/builtin"));
    let scenario = root.join("scenarios/seed/tftp-self-signed-ecdsa.toml");
    let text = std::fs::read_to_string(&scenario).expect("scenario");
    let planted = text.replace(
        "expect = { status = 502, failed = \"chain\", code = 18",
        "expect = { status = 200, failed = \"chain\", code = 18",
    );
    assert_ne!(planted, text, "the expectation to plant a failure in is there");
    std::fs::write(&scenario, planted).expect("write scenario");
    let snapshot = root.join("snapshots/builtin/seed/tftp-self-signed-ecdsa.snap");
    let text = std::fs::read_to_string(&snapshot).expect("snapshot");
    let planted = text.replacen(
        "server=cucm.steven.lab(10.48.36.215) depth=0",
        "server=cucm.steven.lab(10.48.36.215) depth=9",
        1,
    );
    assert_ne!(planted, text, "the snapshot line to change is there");
    std::fs::write(&snapshot, planted).expect("write snapshot");

    let report = dir.path().join("report.html");
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["scenarios", "tftp-self-signed-ecdsa", "--report", "html"])
        .arg(&report)
        .arg("--root")
        .arg(&root)
        .output()
        .expect("xtask scenarios");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("step 5: status 200"), "the CLI table names the failing step:\n{stdout}");
    assert!(stdout.contains("error 18 at depth 0"), "the CLI table's actual has code and depth:\n{stdout}");

    let dom = dom(chromium, dir.path(), &report);
    assert!(dom.contains("data-errors=\"0\""), "no script errors");
    let section = dom.split("data-scenario=\"seed::tftp-self-signed-ecdsa\"").nth(1).expect("the scenario's section");
    assert!(section.contains("data-failing-step=\"5\""), "the failing step is shown:\n{section}");
    assert!(section.contains("<span class=\"expected\">status 200, chain check fails, error 18, depth 0"), "{section}");
    assert!(section.contains("error 18 at depth 0"), "code and depth in actual:\n{section}");
    assert!(
        section.contains("depth=<mark>0</mark>") && section.contains("depth=<mark>9</mark>"),
        "a highlighted diff span"
    );
    let failed = section.split("data-failed=\"true\"").nth(1).expect("a certificate is marked as failed");
    assert!(
        failed.starts_with("><b>cucm/CallManager-ECDSA</b>"),
        "the self-signed CallManager-ECDSA is marked: {}",
        &failed[..failed.len().min(300)]
    );
    assert!(
        section.contains("<code>") || section.contains("<strong>"),
        "Markdown rendered:\n{}",
        &section[..section.len().min(3000)]
    );
}

/// With `--pcap`, a scenario's section links its capture (relative to the page, and the file is
/// there), lists its connections, and puts the real traffic server's alert beside the model's
/// where a known divergence says they differ (a name mismatch: internal_error against
/// bad_certificate).
#[test]
fn with_captures_the_report_links_each_pcapng_and_shows_both_alerts_of_a_known_divergence() {
    let Some(chromium) = chromium() else { return };
    let dir = tempfile::TempDir::new().expect("tempdir");
    let captures = dir.path().join("caps");
    let report = dir.path().join("report.html");
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["scenarios", "beyond::renamed-host", "--pcap"])
        .arg(&captures)
        .args(["--report", "html"])
        .arg(&report)
        .output()
        .expect("xtask scenarios");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(captures.join("beyond--renamed-host.pcapng").is_file());
    let dom = dom(chromium, dir.path(), &report);
    assert!(dom.contains("data-errors=\"0\""), "no script errors");
    assert!(dom.contains("href=\"caps/beyond--renamed-host.pcapng\""), "the capture is linked relative to the page");
    assert!(
        dom.contains(
            "alert bad_certificate (42) from verifier; the real traffic server sends internal_error (80) here"
        ),
        "both alerts shown:\n{}",
        &dom[..dom.len().min(3000)]
    );
    assert!(dom.contains("data-divergence=\"alert\""));
}
