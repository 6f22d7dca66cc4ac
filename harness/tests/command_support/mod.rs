//! What the `cmd:` verifier tests share: a session, a request, a throwaway command, and the
//! fault a request gave. Included with `mod command_support;`.

#![allow(dead_code)] // each test file uses a part of it

use std::path::{Path, PathBuf};

use harness::expressway::{ExpresswaySpec, TrustStore, Version};
use harness::verifier::{LogSettings, OriginRequest, Outcome, Purpose, Session, VerifierFault};
use time::macros::datetime;

/// Expressway-C X14.2 with an empty trust store, at the seed's time.
pub fn session() -> Session {
    let t = datetime!(2022-07-11 16:55:26 UTC);
    Session {
        peer: "vcsc".into(),
        expressway: ExpresswaySpec::new(Version::x14_2(), None, "cucm.steven.lab"),
        trust: TrustStore::default(),
        client_identity: None,
        validation_time: t,
        log: LogSettings::seed(t),
    }
}

/// A UDS request to `host` (dialled at a port nothing listens on: commands never dial it).
pub fn request(host: &str) -> OriginRequest {
    OriginRequest {
        host: host.into(),
        modelled_ip: "10.48.36.215".parse().expect("an IP"),
        port: 8443,
        dial: "127.0.0.1:9".parse().expect("a socket address"),
        method: "GET".into(),
        path: "/cucm-uds/version".into(),
        purpose: Purpose::Mra,
        resolves: true,
        origin_state: harness::verifier::OriginState::Listening,
    }
}

/// A throwaway command in `dir`.
pub fn script(dir: &Path, name: &str, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write the script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// The fault's message; an outcome is a failure, shown without its (possibly huge) body.
#[track_caller]
pub fn fault_message(result: Result<Outcome, VerifierFault>) -> String {
    match result {
        Err(VerifierFault::Request { message, .. }) => message,
        Err(other) => panic!("expected a request fault, got {other:?}"),
        Ok(outcome) => panic!(
            "expected a verifier fault, got an outcome: status {}, a body of {} bytes",
            outcome.status,
            outcome.body.len()
        ),
    }
}
