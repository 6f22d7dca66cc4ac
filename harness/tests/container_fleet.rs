//! The container fleet against the local engine: each node on its modelled address in one
//! private namespace; a node that is down refuses, a partitioned one never answers, and a node
//! whose program dies is a harness fault. Skipped (with a line saying so) where no Docker engine
//! answers or `mralab/node` is not built; `.ci/run` builds it.

use harness::container::image::NODE;
use harness::container::nodes::{ContainerFleet, run_in_namespace};
use harness::container::{self};
use harness::fleet::{FleetFile, ResolvedFleet};
use harness::pki::{KeyCache, Pki};

fn ready() -> bool {
    let why = if !container::engine_available() {
        "no Docker engine".to_string()
    } else if let Err(e) = NODE.check_built() {
        e.to_string()
    } else {
        return true;
    };
    assert!(std::env::var("CI").is_err(), "{why} under CI: .ci/run builds the images");
    eprintln!("skipped: {why}");
    false
}

/// The seed's lab (`cucm` on 10.48.36.215, `cups` on 10.48.36.216) as containers.
fn steven_lab() -> ContainerFleet {
    let (file, topology) = FleetFile::load("steven-lab").expect("built-in");
    let pki = Pki::build(&topology, time::OffsetDateTime::now_utc(), &KeyCache::default()).expect("pki");
    let config = ResolvedFleet::resolve(&file.fleet, &pki).expect("resolves").config(&pki).expect("config");
    ContainerFleet::start(&config).expect("the container fleet starts")
}

/// A TLS handshake with `to` from inside the fleet's namespace, given up after 3 s.
fn handshake(fleet: &ContainerFleet, to: &str) -> Result<String, String> {
    let script = format!(
        "out=$(timeout 3 openssl s_client -connect {to} </dev/null 2>&1); rc=$?; \
         if [ $rc != 0 ]; then echo \"$out\" >&2; echo \"exit $rc\" >&2; exit 1; fi; echo \"$out\""
    );
    run_in_namespace(fleet.netns(), &["sh", "-c", &script])
}

#[test]
fn each_node_answers_on_its_modelled_address_refuses_when_down_and_is_silent_when_cut_off() {
    if !ready() {
        return;
    }
    let fleet = steven_lab();
    let out = handshake(&fleet, "10.48.36.215:8443").expect("the publisher answers at its seed address");
    assert!(out.contains("CN") && out.contains("cucm"), "{out}");
    handshake(&fleet, "10.48.36.216:8443").expect("cups answers at its address");
    let events = fleet.take_events().expect("events");
    assert!(events.iter().any(|e| e.node == "cucm" && e.port == 8443), "{events:?}");

    fleet.node_down("cucm").expect("down");
    let refused = handshake(&fleet, "10.48.36.215:8443").expect_err("refused");
    assert!(refused.contains("refused"), "{refused}");
    fleet.node_up("cucm").expect("up");
    handshake(&fleet, "10.48.36.215:8443").expect("answers again");

    fleet.partition("cucm").expect("partition");
    let silent = handshake(&fleet, "10.48.36.215:8443").expect_err("never answered");
    assert!(silent.contains("exit 124"), "timed out, not refused: {silent}");
    handshake(&fleet, "10.48.36.216:8443").expect("the other node is not cut off");
    fleet.heal("cucm").expect("heal");
    handshake(&fleet, "10.48.36.215:8443").expect("answers once healed");
}

#[test]
fn a_node_program_that_dies_is_a_harness_fault() {
    if !ready() {
        return;
    }
    let fleet = steven_lab();
    let supervisor = fleet.nodes()[0].pid;
    let children = std::fs::read_to_string(format!("/proc/{supervisor}/task/{supervisor}/children")).expect("children");
    for child in children.split_whitespace() {
        let pid = rustix::process::Pid::from_raw(child.parse().expect("pid")).expect("nonzero");
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("kill the node program");
    }
    let err = fleet.take_events().expect_err("a fault, not events");
    let text = err.to_string();
    assert!(text.contains("harness fault") && text.contains("cucm"), "{text}");
}
