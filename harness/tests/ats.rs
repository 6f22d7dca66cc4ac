//! The real Apache Traffic Server as a verifier: the seed's verdicts, the IP cases under both
//! verifiers, and no `traffic_server` left behind.
//!
//! Without `traffic_server` installed these tests print why they skip; under `CI=true` a
//! missing `traffic_server` fails them (`.ci/run` installs it).

use std::path::Path;
use std::sync::Mutex;

use harness::expressway::{ExpresswaySpec, TrustStore, Version};
use harness::pki::KeyCache;
use harness::scenario::ScenarioRun;
use harness::scenario::login::LoginSpec;
use harness::scenario::run::run;
use harness::scenario::{Catalogue, RunOptions};
use harness::verifier::VerifierFactory;
use harness::verifier::ats::{AtsFactory, AtsVerifier, traffic_server_path};
use harness::verifier::builtin::BuiltinFactory;
use harness::verifier::{LogSettings, Profile, Session, Verifier};

/// One ATS test at a time: the process check below looks at every child of this process.
static SERIAL: Mutex<()> = Mutex::new(());

/// Whether ATS can run here; prints why not, and fails under CI.
fn ats_available(test: &str) -> bool {
    if traffic_server_path().is_some() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "{test}: traffic_server is not installed, and CI must run the ats tests (apt-get install trafficserver)"
        );
    }
    println!("{test}: SKIPPED: traffic_server is not installed (apt-get install trafficserver)");
    false
}

#[track_caller]
fn run_scenario(id_path: &str, factory: &dyn VerifierFactory) -> ScenarioRun {
    let catalogue = Catalogue::at(&Catalogue::workspace_root());
    let path = Catalogue::workspace_root().join("scenarios").join(id_path);
    let scenario = catalogue.load(&path).unwrap_or_else(|e| panic!("{id_path}: {e}"));
    let options = RunOptions {
        verifier: factory,
        keys: KeyCache::default(),
        login: LoginSpec::jabber(),
        fleet: harness::scenario::run::FleetTier::InProcess,
    };
    run(&scenario, &options).unwrap_or_else(|e| panic!("{id_path} with {}: {e}", factory.name()))
}

/// The `traffic_server` processes whose parent is this test process.
fn our_traffic_servers() -> Vec<u32> {
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let exe = std::fs::read_link(entry.path().join("exe")).unwrap_or_default();
        if !exe.to_string_lossy().ends_with("traffic_server") {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
        let ppid = stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().nth(1)).and_then(|p| p.parse().ok());
        if ppid == Some(me) {
            found.push(pid);
        }
    }
    found
}

fn step_text(run: &ScenarioRun, index: usize) -> String {
    run.steps.iter().find(|s| s.index == index).map(|s| s.lines.join("\n")).unwrap_or_default()
}

#[test]
fn rejects_the_self_signed_tftp_certificate_at_depth_zero_with_502() {
    if !ats_available("rejects_the_self_signed_tftp_certificate_at_depth_zero_with_502") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let run = run_scenario("seed/tftp-self-signed-ecdsa.toml", &AtsFactory::HOST);
    assert_eq!(run.mismatches(), Vec::<String>::new(), "{}", run.snapshot);
    let step = step_text(&run, 5);
    assert!(
        step.contains(
            "WARNING: Core server certificate verification failed for (cucm.steven.lab). Action=Terminate \
             Error=self-signed certificate server=cucm.steven.lab(10.48.36.215) depth=0"
        ),
        "{step}"
    );
    assert!(step.contains("<- 502  [chain: self-signed certificate (error 18 at depth 0)]"), "{step}");
    assert!(
        step.contains("(ssl.error) SSL connection failed") || step.contains("<ssl.error> SSL connection failed"),
        "{step}"
    );
    assert!(our_traffic_servers().is_empty(), "traffic_server left running: {:?}", our_traffic_servers());
}

/// The scenarios where the address a request names is an IP: ATS checks that string against
/// DNS SANs and the CN only. Both verifiers must meet the scenarios' written expectations.
#[test]
fn ip_targets_give_the_same_verdicts_under_ats_and_the_model() {
    if !ats_available("ip_targets_give_the_same_verdicts_under_ats_and_the_model") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let cases = [
        ("beyond/ip-as-dns-san-works-by-ip.toml", None),
        (
            "beyond/ip-san-only-fails-by-ip.toml",
            Some("WARNING: SNI (10.48.36.215) not in certificate. Action=Terminate server=10.48.36.215(10.48.36.215)"),
        ),
        (
            "seed/cucm-advertised-by-ip.toml",
            Some("WARNING: SNI (10.48.36.215) not in certificate. Action=Terminate server=10.48.36.215(10.48.36.215)"),
        ),
    ];
    for (path, line) in cases {
        let ats = run_scenario(path, &AtsFactory::HOST);
        let model = run_scenario(path, &BuiltinFactory(Profile::Ats9_2));
        assert_eq!(ats.mismatches(), Vec::<String>::new(), "ats on {path}:\n{}", ats.snapshot);
        let outcomes = |r: &ScenarioRun| r.steps.iter().map(|s| s.outcome.clone()).collect::<Vec<_>>();
        assert_eq!(outcomes(&ats), outcomes(&model), "{path}: step outcomes differ\n{}", ats.snapshot);
        if let Some(line) = line {
            assert!(ats.log.iter().any(|l| l.ends_with(line)), "{path}: ats never said {line}\n{}", ats.snapshot);
            assert!(model.log.iter().any(|l| l.ends_with(line)), "{path}: the model never said {line}");
        } else {
            assert!(!ats.log.iter().any(|l| l.contains("not in certificate")), "{path}\n{}", ats.snapshot);
        }
    }
    assert!(our_traffic_servers().is_empty(), "traffic_server left running: {:?}", our_traffic_servers());
}

#[test]
fn leaves_no_traffic_server_behind_after_a_panic() {
    if !ats_available("leaves_no_traffic_server_behind_after_a_panic") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let session = Session {
        peer: "vcsc".into(),
        expressway: ExpresswaySpec::new(Version::x14_2(), None, "cucm.steven.lab"),
        trust: TrustStore::default(),
        client_identity: None,
        validation_time: time::OffsetDateTime::now_utc(),
        log: LogSettings::seed(time::OffsetDateTime::now_utc()),
    };
    let result = std::panic::catch_unwind(move || {
        let mut verifier = AtsVerifier::new().expect("an ats verifier");
        verifier.open(&session).expect("open");
        verifier.start().expect("traffic_server starts");
        let pid = verifier.pid().expect("a pid");
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        assert_eq!(our_traffic_servers(), vec![pid]);
        panic!("a test failing while ATS runs");
    });
    assert!(result.is_err());
    assert!(our_traffic_servers().is_empty(), "traffic_server left running: {:?}", our_traffic_servers());
}
