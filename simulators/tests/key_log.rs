//! `SSLKEYLOGFILE` is honoured when `key_log` is set, so a capture opens decrypted in Wireshark.
//! The variable is read when a fleet starts; setting it inside this process would need
//! `unsafe`, so the test re-runs itself as a child process with the variable set.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use simulators::{Fleet, Role};

const CHILD_TEST: &str = "child_fleet_writes_tls_secrets_to_sslkeylogfile";

#[test]
fn a_fleet_with_key_log_writes_tls_secrets_to_sslkeylogfile() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("keys.log");
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", CHILD_TEST, "--include-ignored", "--test-threads=1"])
        .env("SSLKEYLOGFILE", &log)
        .env("SIMULATORS_KEY_LOG_CHILD", "1")
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.lines().any(|l| l.starts_with("CLIENT_RANDOM ")), "no TLS 1.2 secret logged: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by a_fleet_with_key_log_writes_tls_secrets_to_sslkeylogfile with SSLKEYLOGFILE set"]
async fn child_fleet_writes_tls_secrets_to_sslkeylogfile() {
    if std::env::var_os("SIMULATORS_KEY_LOG_CHILD").is_none() {
        return;
    }
    let lab = Lab::new();
    let mut config = fleet_config(vec![lab.node("pub", Role::CucmPublisher, vec![lab.tomcat_service()])]);
    config.key_log = true;
    let fleet = within(Fleet::start(config)).await.unwrap();
    let out = s_client(fleet.socket("pub", 8443).unwrap(), &["-cipher", "EECDH"]).await;
    assert!(out.stdout.contains("cucm-EC.steven.lab"), "{}", out.all());
    within(fleet.stop()).await;
}
