//! `cargo xtask diagnose` as a user runs it: exit codes 0/1/2, text and `--json`.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;

const SEED: &str = "\
2022-07-11T18:55:26.016+02:00 vcsc traffic_server[18242]: [ET_NET 0] WARNING: Core server certificate verification failed for (cucm.steven.lab). Action=Terminate Error=self signed certificate server=cucm.steven.lab(10.48.36.215) depth=0
2022-07-11T18:55:26.016+02:00 vcsc traffic_server[18242]: [ET_NET 0] ERROR: SSL connection failed for 'cucm.steven.lab': error:1416F086:SSL routines:tls_process_server_certificate:certificate verify failed
2022-07-11T19:49:01.472+02:00 vcsc traffic_server[3916]: UTCTime=\"2022-07-11 17:49:01,472\" Module=\"netw
|GET http://vcs_control.steven.lab:8443/c3RldmVuLmxhYi9odHRwcy8xMC40OC4zNi4yMTUvODQ0Mw/cucm-uds/user/emusk/devices?max=100
2022-07-11T19:49:01.491+02:00 vcsc traffic_server[3916]: [ET_NET 2] WARNING: SNI (10.48.36.215) not in certificate. Action=Terminate server=10.48.36.215(10.48.36.215)
";

/// Runs `cargo xtask diagnose ARGS`: exit code, stdout, stderr.
fn diagnose(args: &[&Path], json: bool) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command.arg("diagnose").args(args);
    if json {
        command.arg("--json");
    }
    let out = command.output().expect("xtask runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_seeds_log_exits_1_with_both_diagnoses_in_text_and_json() {
    let temp = tempfile::TempDir::new().expect("temp dir");
    let log = temp.path().join("traffic_server.log.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(SEED.as_bytes()).expect("gzip");
    std::fs::write(&log, gz.finish().expect("gzip")).expect("write");

    let (code, text, _) = diagnose(&[&log], false);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("10.48.36.215 (10.48.36.215) port 8443: name-not-in-certificate"), "{text}");
    assert!(text.contains("cucm.steven.lab (10.48.36.215) port ?: self-signed"), "{text}");
    assert!(text.contains("xConfiguration EdgeConfigServer VerifyOriginServer: Off"), "{text}");

    let (code, json, _) = diagnose(&[&log], true);
    assert_eq!(code, 1);
    let findings: serde_json::Value = serde_json::from_str(&json).expect("json");
    let classes: Vec<(&str, &str)> = findings
        .as_array()
        .expect("list")
        .iter()
        .map(|f| (f["server"].as_str().unwrap_or_default(), f["class"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(classes, vec![("10.48.36.215", "name-not-in-certificate"), ("cucm.steven.lab", "self-signed")]);
}

#[test]
fn a_clean_log_exits_0_and_unreadable_input_exits_2() {
    let temp = tempfile::TempDir::new().expect("temp dir");
    let clean = temp.path().join("clean.log");
    std::fs::write(
        &clean,
        "2022-07-11T18:55:26.016+02:00 vcsc traffic_server[18242]: [ET_NET 0] NOTE: nothing to see\n",
    )
    .expect("write");
    let (code, text, _) = diagnose(&[&clean], false);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("no origin certificate verification failures found"));
    let (code, json, _) = diagnose(&[&clean], true);
    assert_eq!((code, json.trim()), (0, "[]"));

    let (code, _, stderr) = diagnose(&[&temp.path().join("missing.log")], false);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("missing.log"), "{stderr}");

    let corrupt = temp.path().join("bundle.tar.gz");
    std::fs::write(&corrupt, [0x1f, 0x8b, 0x08, 0x00, 0xde, 0xad]).expect("write");
    let (code, _, stderr) = diagnose(&[&corrupt], true);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("gzip"), "{stderr}");
}

mod confined;

#[test]
fn a_confined_run_reports_its_exit_code_and_output() {
    let ended = confined::xtask_run(&["diagnose", "no/such/file.log"], None);
    assert_eq!(ended.code, Some(2), "{ended:?}");
    assert!(!ended.timed_out && !ended.panicked(), "{ended:?}");
    assert!(ended.stderr.contains("no/such/file.log"), "{ended:?}");
}
