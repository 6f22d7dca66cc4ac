//! Captures read back by tshark, as a trainee would open them: the seed's Certificate messages
//! and Unknown CA alert, the decrypted requests (the secrets travel inside the file), and every
//! scenario's capture opening cleanly with one TCP connection per handshake in its snapshot.
//!
//! Without `tshark` these tests print why they skip; under `CI=true` a missing `tshark` fails
//! them (`.ci/run` installs it). The ats verifiers' captures are checked the same way, where
//! their traffic server can run (root and `traffic_server`, or root and the `mralab/ats:8.1`
//! image), and skip otherwise like `tests/ats.rs` and `tests/container.rs`.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use harness::capture::{Origin, file_name};
use harness::pki::KeyCache;
use harness::scenario::batch::run_files_with;
use harness::scenario::catalogue::SnapshotState;
use harness::scenario::login::LoginSpec;
use harness::scenario::run::{FleetTier, run_captured};
use harness::scenario::{Catalogue, RunOptions, ScenarioRun};
use harness::verifier::builtin::BuiltinFactory;
use harness::verifier::{Profile, VerifierFactory, VerifierSpec};

/// One traffic server at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Whether tshark runs here; prints why not, and fails under CI.
fn tshark_available(test: &str) -> bool {
    if Command::new("tshark").arg("-v").output().is_ok_and(|o| o.status.success()) {
        return true;
    }
    assert!(!ci(), "{test}: tshark is not installed, and CI must run the capture tests (apt-get install tshark)");
    println!("{test}: SKIPPED: tshark is not installed (apt-get install tshark)");
    false
}

/// tshark's output for `filter` (and the fields, if any), failing on a non-zero exit or on
/// anything it says on stderr other than its warning about running as root.
#[track_caller]
fn tshark(file: &Path, filter: &str, fields: &[&str]) -> String {
    let mut command = Command::new("tshark");
    command.arg("-r").arg(file);
    if !filter.is_empty() {
        command.args(["-Y", filter]);
    }
    if !fields.is_empty() {
        command.args(["-T", "fields", "-E", "separator=|"]);
        for field in fields {
            command.args(["-e", field]);
        }
    }
    let output = command.output().expect("tshark runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let complaints: Vec<&str> = stderr.lines().filter(|l| !l.contains("Running as user")).collect();
    assert!(
        output.status.success() && complaints.is_empty(),
        "tshark -r {} -Y '{filter}': {}\n{stderr}",
        file.display(),
        output.status
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[track_caller]
fn run_seed(factory: &dyn VerifierFactory) -> ScenarioRun {
    run_seed_on(factory, FleetTier::InProcess)
}

#[track_caller]
fn run_seed_on(factory: &dyn VerifierFactory, fleet: FleetTier) -> ScenarioRun {
    let root = Catalogue::workspace_root();
    let catalogue = Catalogue::at(&root);
    let path = root.join("scenarios/seed/tftp-self-signed-ecdsa.toml");
    let scenario = catalogue.load(&path).expect("the seed scenario loads");
    let options = RunOptions { verifier: factory, keys: KeyCache::default(), login: LoginSpec::jabber(), fleet };
    run_captured(&scenario, &options).unwrap_or_else(|e| panic!("{}: {e}", factory.name()))
}

/// What a trainee looks for in the seed's capture: the Certificate on 8443 (CA-signed
/// `cucm-ms`) and on 6972 (self-signed `cucm-EC`), the Unknown CA alert Expressway-C sends on
/// 6972, and the requests in clear.
#[track_caller]
fn check_seed_capture(run: &ScenarioRun, dir: &Path, origin: Origin) {
    let capture = run.capture.as_ref().expect("a captured run has a capture");
    assert_eq!(capture.origin, origin);
    let file = dir.join(file_name(&run.id));
    capture.write(&file).expect("the capture is written");
    let syns = tshark(&file, "tcp.flags.syn == 1 && tcp.flags.ack == 1", &["frame.number"]);
    assert_eq!(syns.lines().count(), snapshot_handshakes(&run.snapshot), "connections against handshakes");

    let certificates = tshark(&file, "tls.handshake.type == 11", &["tcp.srcport", "x509sat.uTF8String"]);
    let sent_by = |port: &str, subject: &str| {
        certificates.lines().any(|l| l.starts_with(&format!("{port}|")) && l.contains(subject))
    };
    assert!(sent_by("8443", "cucm-ms.steven.lab") && sent_by("8443", "steven-DC-CA"), "{certificates}");
    assert!(sent_by("6972", "cucm-EC.steven.lab"), "{certificates}");

    let alerts = tshark(&file, "tls.alert_message.desc == 48", &["ip.src", "tcp.dstport", "tls.alert_message.level"]);
    assert!(
        alerts.lines().any(|l| l == "10.48.36.46|6972|2"),
        "no fatal Unknown CA from Expressway-C on 6972:\n{alerts}"
    );

    let requests = tshark(&file, "http.request", &["http.request.method", "http.request.uri", "tcp.dstport"]);
    for wanted in ["GET|/SPDefault.cnf.xml|6972", "GET|/cucm-uds/user/emusk/devices?max=100|8443"] {
        assert!(requests.lines().any(|l| l == wanted), "no decrypted {wanted}:\n{requests}");
    }
    // Nothing of 127.x: the modelled addresses only.
    let addresses = tshark(&file, "ip.addr == 127.0.0.0/8", &["frame.number"]);
    assert!(addresses.trim().is_empty(), "loopback addresses in the capture: {addresses}");
}

#[test]
fn the_seed_capture_under_the_model_shows_certificates_alert_and_requests() {
    if !tshark_available("the_seed_capture_under_the_model_shows_certificates_alert_and_requests") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let run = run_seed(&BuiltinFactory(Profile::ExpresswayX14_2));
    check_seed_capture(&run, dir.path(), Origin::Synthesised);
}

/// An ats verifier's factory if its traffic server can run here; says why not otherwise, and
/// fails under CI where `.ci/run` provides it.
fn ats_factory(name: &str, test: &str) -> Option<Box<dyn VerifierFactory>> {
    let spec: VerifierSpec = name.parse().expect("a verifier name");
    let factory = spec.factory().expect("a factory");
    match factory.preflight() {
        Ok(()) => Some(factory),
        Err(e) if ci() => panic!("{test}: {name} cannot run under CI: {e}"),
        Err(e) => {
            println!("{test}: SKIPPED: {name} cannot run here: {e}");
            None
        }
    }
}

#[test]
fn the_seed_capture_under_the_hosts_traffic_server_shows_certificates_alert_and_requests() {
    let test = "the_seed_capture_under_the_hosts_traffic_server_shows_certificates_alert_and_requests";
    if !tshark_available(test) {
        return;
    }
    let Some(factory) = ats_factory("ats", test) else { return };
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().expect("temp dir");
    check_seed_capture(&run_seed(factory.as_ref()), dir.path(), Origin::Captured);
}

/// `ats:8.1`'s factory when tshark, a Docker engine and the image are here; says why not
/// otherwise, and fails under CI where `.ci/run` provides them.
fn ats_8_1_factory(test: &str) -> Option<Box<dyn VerifierFactory>> {
    if !tshark_available(test) {
        return None;
    }
    if std::env::var_os("DOCKER_HOST").is_none() && !Path::new("/var/run/docker.sock").exists() {
        assert!(!ci(), "{test}: no Docker engine under CI");
        println!("{test}: SKIPPED: no Docker engine");
        return None;
    }
    ats_factory("ats:8.1", test)
}

#[test]
fn the_seed_capture_under_ats_8_1_shows_certificates_alert_and_requests() {
    let test = "the_seed_capture_under_ats_8_1_shows_certificates_alert_and_requests";
    let Some(factory) = ats_8_1_factory(test) else { return };
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().expect("temp dir");
    check_seed_capture(&run_seed(factory.as_ref()), dir.path(), Origin::Captured);
}

/// The container fleet: ATS 8.1 and the nodes share one namespace, the nodes own their modelled
/// addresses there, and their secrets come back with their events.
#[test]
fn the_seed_capture_on_the_container_fleet_shows_certificates_alert_and_requests() {
    let test = "the_seed_capture_on_the_container_fleet_shows_certificates_alert_and_requests";
    let Some(factory) = ats_8_1_factory(test) else { return };
    if let Err(e) = harness::container::image::NODE.check_built() {
        assert!(!ci(), "{test}: {e}");
        println!("{test}: SKIPPED: {e}");
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().expect("temp dir");
    check_seed_capture(&run_seed_on(factory.as_ref(), FleetTier::Containers), dir.path(), Origin::Captured);
}

/// The handshakes a snapshot shows: one per `node ...` connection line, `(xN)` counting N
/// (a node's `reconfigured` line is no connection).
fn snapshot_handshakes(snapshot: &str) -> usize {
    snapshot
        .lines()
        .filter(|l| l.starts_with("  node ") && !l.contains(": reconfigured: "))
        .map(|l| {
            l.rsplit_once("(x")
                .and_then(|(_, n)| n.strip_suffix(')'))
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(1)
        })
        .sum()
}

/// Every scenario's capture under `factory`: its snapshot is the stored one, tshark reads every
/// frame, none malformed or cut short, and the connections made (SYN-ACKs) are as many as the
/// handshakes its snapshot shows. A live cluster's node that is down or cut off shows its
/// attempts as a SYN answered by a reset, or not at all: no connection, and no handshake in the
/// snapshot either.
fn check_every_capture(factory: &dyn VerifierFactory, snapshot_dir: &str) {
    let root = Catalogue::workspace_root();
    let catalogue = Catalogue::at(&root);
    let mut files = catalogue.files().expect("the catalogue lists");
    // As `cargo xtask scenarios` does: a verifier that reads the real clock skips pinned ones.
    files.retain(|f| catalogue.load(f).is_ok_and(|s| s.runs_on(factory).is_ok()));
    let options = RunOptions {
        verifier: factory,
        keys: KeyCache::default(),
        login: LoginSpec::jabber(),
        fleet: FleetTier::InProcess,
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let entries = run_files_with(&catalogue, &files, &options, snapshot_dir, 2, true, &|_, _, _| {});
    let mut problems = Vec::new();
    for entry in &entries {
        let Ok((run, state)) = &entry.result else {
            problems.push(format!("{}: did not run", entry.id));
            continue;
        };
        // A capture is beside the snapshot, never in it: the snapshot is the stored one.
        if *state != SnapshotState::Same {
            problems.push(format!("{}: snapshot {} with a capture", run.id, state.label()));
        }
        let capture = run.capture.as_ref().expect("a captured run has a capture");
        let file = dir.path().join(file_name(&run.id));
        capture.write(&file).expect("the capture is written");
        let frames = tshark(&file, "", &["tcp.flags.syn", "tcp.flags.ack", "_ws.malformed", "_ws.short"]);
        let bad = frames.lines().filter(|l| l.split('|').skip(2).any(|f| !f.is_empty())).count();
        let connections = frames.lines().filter(|l| l.starts_with("1|1|")).count();
        let expected = snapshot_handshakes(&run.snapshot);
        if bad > 0 || connections != expected || frames.lines().count() != capture.frames.len() {
            problems.push(format!(
                "{}: {} frames read of {}, {bad} malformed or cut short, {connections} connections, snapshot shows {expected} handshakes",
                run.id,
                frames.lines().count(),
                capture.frames.len()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_scenario_capture_opens_cleanly_with_a_connection_per_snapshot_handshake() {
    if !tshark_available("every_scenario_capture_opens_cleanly_with_a_connection_per_snapshot_handshake") {
        return;
    }
    check_every_capture(&BuiltinFactory(Profile::ExpresswayX14_2), "builtin");
}

/// The same with real packets from the host's traffic server's namespace.
#[test]
fn every_scenario_capture_under_the_hosts_traffic_server_opens_cleanly_with_a_connection_per_handshake() {
    let test = "every_scenario_capture_under_the_hosts_traffic_server_opens_cleanly_with_a_connection_per_handshake";
    if !tshark_available(test) {
        return;
    }
    let Some(factory) = ats_factory("ats", test) else { return };
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    check_every_capture(factory.as_ref(), "ats");
}
