//! Hostile topologies and scenario files through the command line, each run confined (1 GiB of
//! address space, killed after 60 s): no panic, no hang, a clear message with the place. And
//! every command stops quietly (exit 141, nothing on stderr) when its reader goes away
//! (`cargo xtask … | head -1`), `lab start` leaving no lab behind.

mod confined;

use std::fs;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use confined::Ended;
use tempfile::TempDir;

mod catalogue_copy;
use catalogue_copy::copy_dir;

const AT: &str = "2022-07-11T16:55:26Z";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `cargo xtask pki FILE --at AT` on `toml`, written to `topology.toml` in a temporary folder
/// that is also the working directory (so messages name `topology.toml`).
fn pki(toml: &str) -> Ended {
    let dir = TempDir::new().expect("tempdir");
    fs::write(dir.path().join("topology.toml"), toml).expect("write topology");
    confined::xtask_run(&["pki", "topology.toml", "--at", AT], Some(dir.path()))
}

/// The topology is refused (exit 2) with `message` on stderr, and nothing panicked or hung.
#[track_caller]
fn refused(toml: &str, message: &str) {
    let ended = pki(toml);
    assert!(!ended.panicked() && !ended.timed_out, "{ended:?}");
    assert_eq!(ended.code, Some(2), "{ended:?}");
    assert!(ended.stderr.contains(message), "wanted {message:?} in:\n{}", ended.stderr);
}

fn one_cert(fields: &str) -> String {
    format!("[certs.a]\nsubject = {{ CN = \"a\" }}\n{fields}\n")
}

/// `c0` (self-signed) <- `c1` <- ... <- `c{n-1}`: a chain of `n` certificates.
fn chain(n: usize) -> String {
    let mut text = String::from("[certs.c0]\nsubject = { CN = \"c0\" }\n");
    for i in 1..n {
        text.push_str(&format!("[certs.c{i}]\nissuer = \"c{}\"\nsubject = {{ CN = \"c{i}\" }}\n", i - 1));
    }
    text
}

#[test]
fn a_validity_past_the_year_9999_is_refused_with_its_place() {
    refused(
        &one_cert("not_after = \"+3000000d\""),
        "topology.toml:3:13: certificate 'a': field 'not_after': +3000000d from the validation time 2022-07-11T16:55:26Z falls outside the years 0 to 9999",
    );
}

#[test]
fn a_validity_before_the_year_0_is_refused_with_its_place() {
    refused(
        &one_cert("not_before = \"-3000000d\""),
        "topology.toml:3:14: certificate 'a': field 'not_before': -3000000d from the validation time 2022-07-11T16:55:26Z falls outside the years 0 to 9999",
    );
}

#[test]
fn a_relative_time_further_than_any_certificate_date_is_refused_where_it_is_read() {
    for (field, time) in
        [("not_after", "+99999999999d"), ("not_before", "-4000000d"), ("not_after", "+999999999999999999d")]
    {
        refused(
            &one_cert(&format!("{field} = \"{time}\"")),
            &format!("time '{time}' is more than 10000 years from the validation time"),
        );
        refused(&one_cert(&format!("{field} = \"{time}\"")), "topology.toml: TOML parse error at line 3");
    }
}

#[test]
fn an_absolute_date_whose_utc_time_is_outside_the_years_0_to_9999_is_refused() {
    refused(
        &one_cert("not_before = \"0000-01-01T00:00:00+01:00\""),
        "topology.toml:3:14: certificate 'a': field 'not_before': 0000-01-01T00:00:00+01:00 falls outside the years 0 to 9999",
    );
    refused(
        &one_cert("not_after = \"9999-12-31T23:30:00-01:00\""),
        "topology.toml:3:13: certificate 'a': field 'not_after': 9999-12-31T23:30:00-01:00 falls outside the years 0 to 9999",
    );
}

#[test]
fn a_validity_that_ends_before_it_starts_is_refused() {
    refused(
        &one_cert("not_before = \"+10d\"\nnot_after = \"-10d\""),
        "topology.toml:4:13: certificate 'a': field 'not_after': -10d is before not_before (+10d)",
    );
}

#[test]
fn a_chain_of_128_certificates_builds_and_one_of_129_is_refused() {
    let ended = pki(&chain(128));
    assert!(!ended.panicked() && ended.code == Some(0), "{}", ended.stderr);
    refused(
        &chain(129),
        "topology.toml:385:10: certificate 'c128': its chain holds 129 certificates (up to 'c0'); at most 128 are allowed",
    );
}

#[test]
fn a_chain_of_ten_thousand_certificates_is_refused_at_once() {
    let start = std::time::Instant::now();
    refused(&chain(10_000), "certificate 'c9999': its chain holds 10000 certificates (up to 'c0')");
    assert!(start.elapsed() < std::time::Duration::from_secs(20), "took {:?}", start.elapsed());
}

/// A copy of the catalogue with `beyond::expired-far-future`: `beyond::expired-leaf` with a
/// leaf valid until 8,000 years from now.
fn catalogue_with_a_hostile_scenario() -> TempDir {
    let dir = TempDir::new().expect("tempdir");
    copy_dir(&workspace().join("scenarios"), &dir.path().join("scenarios"));
    copy_dir(&workspace().join("snapshots"), &dir.path().join("snapshots"));
    let text = fs::read_to_string(dir.path().join("scenarios/beyond/expired-leaf.toml")).expect("expired-leaf");
    let hostile = text.replacen("not_after = \"-5d\"", "not_after = \"+3000000d\"", 1);
    assert_ne!(text, hostile);
    fs::write(dir.path().join("scenarios/beyond/expired-far-future.toml"), hostile).expect("write");
    dir
}

#[test]
fn a_scenario_with_an_impossible_validity_is_an_error_row_and_the_others_still_run() {
    let dir = catalogue_with_a_hostile_scenario();
    let root = dir.path().display().to_string();
    let ended = confined::xtask_run(&["scenarios", "expired", "--jobs", "2", "--root", &root], None);
    assert!(!ended.panicked() && !ended.timed_out, "{ended:?}");
    assert_eq!(ended.code, Some(1), "{ended:?}");
    let row = ended.stdout.lines().find(|l| l.starts_with("beyond::expired-far-future ")).unwrap_or_default();
    assert!(row.trim_end().ends_with("ERROR"), "the table's row: {row:?}\n{}", ended.stdout);
    assert!(
        ended.stdout.contains("expired-far-future.toml:32:13: certificate 'cucm/tomcat-ECDSA': field 'not_after'"),
        "{}",
        ended.stdout
    );
    for other in ["expired-intermediate", "expired-leaf", "expired-root", "expired-self-signed"] {
        assert!(ended.stderr.contains(&format!("ok beyond::{other} ")), "beyond::{other} ran:\n{}", ended.stderr);
    }
    assert!(ended.stdout.contains("5 scenarios with builtin:expressway-x14.2"), "{}", ended.stdout);
    assert!(ended.stdout.contains("4 passed, 1 failed"), "{}", ended.stdout);
}

/// `cargo xtask ARGS` (confined) whose stdout reader reads `lines` lines and goes away. With no
/// line to read, the reader is gone before the command starts (a pipe whose read end is already
/// closed): closing it after the spawn would race a command whose whole output fits the pipe.
fn reader_leaves_after(lines: usize, args: &[&str], dir: Option<&Path>) -> (Option<i32>, String) {
    if lines == 0 {
        let (reader, writer) = std::io::pipe().expect("a pipe");
        drop(reader);
        let output = confined::xtask(args, dir)
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .expect("xtask runs");
        return (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let mut child = confined::xtask(args, dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("xtask starts");
    let mut reader = BufReader::new(child.stdout.take().expect("stdout piped"));
    for _ in 0..lines {
        let mut line = String::new();
        reader.read_line(&mut line).expect("a line");
    }
    drop(reader); // the read end is closed
    let output = child.wait_with_output().expect("xtask ends");
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[track_caller]
fn stops_quietly(lines: usize, args: &[&str], dir: Option<&Path>) {
    let (code, stderr) = reader_leaves_after(lines, args, dir);
    assert_eq!(code, Some(141), "cargo xtask {}: exit code; stderr:\n{stderr}", args.join(" "));
    assert!(!stderr.contains("panicked"), "cargo xtask {}:\n{stderr}", args.join(" "));
    assert!(!stderr.contains("error"), "cargo xtask {}: no message for a closed pipe:\n{stderr}", args.join(" "));
}

#[test]
fn every_command_stops_quietly_when_its_reader_goes_away() {
    let dir = TempDir::new().expect("tempdir");
    fs::write(dir.path().join("chain.toml"), chain(128)).expect("write");
    // A log line (diagnose refuses input with none, exit 2), with nothing to report.
    let quiet = "2022-07-11T18:55:26.016+02:00 vcsc traffic_server[18242]: [ET_NET 0] NOTE: nothing to see\n";
    fs::write(dir.path().join("quiet.log"), quiet).expect("write");
    let log = dir.path().join("quiet.log").display().to_string();
    // More than a pipe holds (64 KiB), so the reader that leaves after one line is noticed.
    stops_quietly(1, &["pki", "chain.toml"], Some(dir.path()));
    let root = workspace().display().to_string();
    for args in [
        &["scenarios", "--list"][..],
        &["scenarios", "seed::tftp-self-signed-ecdsa", "--root", &root],
        &["pki", "steven-lab"],
        &["keys"],
        &["ciphers", "EECDH:EDH:HIGH"],
        &["lab", "list"],
        &["diagnose", &log],
    ] {
        stops_quietly(0, args, None);
    }
}

/// Reads the serve process's pid from its log.
fn serve_pid(ws: &Path) -> Option<u32> {
    let log = fs::read_to_string(ws.join("serve.log")).ok()?;
    let line = log.lines().find(|l| l.starts_with("serving lab "))?;
    line.split("(pid ").nth(1)?.split(')').next()?.parse().ok()
}

fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => !matches!(stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next()), Some('Z' | 'X') | None),
    }
}

#[test]
fn a_lab_start_whose_reader_went_away_leaves_no_lab_running() {
    let dir = TempDir::new().expect("tempdir");
    let ws = dir.path().join("lab");
    // Not confined: the serve process would inherit the address-space limit, which a tokio
    // runtime's thread arenas can reach. `lab start` gives up on its own after 120 s.
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["lab", "start", "tftp-self-signed", "--workspace"])
        .arg(&ws)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("xtask starts");
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("xtask ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let pid = serve_pid(&ws);
    let left_running = pid.is_some_and(alive);
    if left_running && let Some(pid) = pid {
        let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
    }
    assert!(pid.is_some(), "the lab came up: {stderr}");
    assert!(!left_running, "the lab's process {pid:?} was left running; stderr:\n{stderr}");
    assert!(!ws.join("lab.toml").exists(), "lab.toml is left behind");
    assert_eq!(output.status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
