//! The built-in model against an independent oracle on the wire: for every PKI shape, a fleet
//! node serves it, and the model's chain verdict (code and depth) must equal what
//! `openssl s_client -verify_return_error` says against the same node. The `ats-9.2` profile
//! is compared, since the CLI is OpenSSL 3 like stock ATS 9.2.

use std::process::{Command, Stdio};
use std::time::Duration;

use harness::expressway::{ExpresswaySpec, Properties, TrustStore};
use harness::pki::{KeyCache, Pki, Topology};
use harness::source::Source;
use harness::verifier::builtin::BuiltinVerifier;
use harness::verifier::{Failure, LogSettings, OriginRequest, Profile, Purpose, Session, Verifier};
use rstest::rstest;
use simulators::{CertChoice, ClientAuth, Fleet, FleetConfig, Identity, NodeConfig, Role, ServiceConfig};
use time::macros::datetime;

const VALIDATION_TIME: time::OffsetDateTime = datetime!(2022-07-11 16:55:26 UTC);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime")
}

/// `(code, depth)` of the first verify error `openssl s_client` reports, `None` when it verifies.
fn s_client(addr: std::net::SocketAddr, trust_pem: &std::path::Path) -> Option<(i32, usize)> {
    let out = Command::new("timeout")
        .args(["20", "openssl", "s_client", "-connect", &addr.to_string(), "-verify_return_error", "-CAfile"])
        .arg(trust_pem)
        .args(["-no-CApath", "-no-CAstore", "-attime", &VALIDATION_TIME.unix_timestamp().to_string()])
        .args(["-purpose", "sslserver", "-tls1_2"])
        .stdin(Stdio::null())
        .output()
        .expect("openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let mut depth = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("depth=") {
            depth = rest.split_whitespace().next().and_then(|d| d.parse().ok());
        }
        if let Some(rest) = line.strip_prefix("verify error:num=") {
            let code = rest.split(':').next().and_then(|c| c.parse().ok()).expect("code");
            return Some((code, depth.expect("a depth line before the error")));
        }
    }
    assert!(text.contains("Verify return code: 0 (ok)"), "s_client neither failed nor verified:\n{text}");
    None
}

#[rstest]
#[case("good/tomcat", &["root"])]
#[case("self/tomcat-ECDSA", &["root"])]
#[case("self/tomcat-ECDSA", &["self/tomcat-ECDSA"])]
#[case("foreign/tomcat", &["root"])]
#[case("foreign-with-root/tomcat", &["root"])]
#[case("leafonly/tomcat", &["root"])]
#[case("missing/tomcat", &["root"])]
#[case("disordered/tomcat", &["root"])]
#[case("extra/tomcat", &["root"])]
#[case("expired/tomcat", &["root"])]
#[case("future/tomcat", &["root"])]
#[case("clientonly/tomcat", &["root"])]
#[case("under-expired/tomcat", &["root"])]
#[case("leafonly/tomcat", &["int-1"])]
#[case("reissued/tomcat", &["root"])]
#[case("reissued/tomcat", &["root-reissued"])]
#[case("badaki/tomcat", &["root"])]
#[case("noaki/tomcat", &["root"])]
#[case("expires-at-t/tomcat", &["root"])]
#[case("expired-1s-before-t/tomcat", &["root"])]
#[case("expires-1s-after-t/tomcat", &["root"])]
#[case("starts-at-t/tomcat", &["root"])]
#[case("started-1s-before-t/tomcat", &["root"])]
#[case("starts-1s-after-t/tomcat", &["root"])]
fn the_model_and_openssl_s_client_agree_against_the_fleet(#[case] leaf: &str, #[case] trusted: &[&str]) {
    let topology =
        Topology::from_toml(&Source::new("shapes.toml", include_str!("data/shapes.toml"))).expect("topology");
    let pki = Pki::build(&topology, VALIDATION_TIME, &KeyCache::default()).expect("pki");
    let cert = pki.cert(leaf).expect("leaf");
    let identity = Identity { name: leaf.into(), chain: pki.sent_chain(leaf).expect("chain"), key: cert.private_key() };
    let (rsa, ecdsa) = if cert.key_type().is_rsa() { (Some(identity), None) } else { (None, Some(identity)) };
    let node = NodeConfig {
        name: "node".into(),
        role: Role::CucmPublisher,
        cluster: "lab".into(),
        fqdn: "node.lab".into(),
        modelled_ip: "10.0.0.1".parse().expect("ip"),
        system_server: "node.lab".into(),
        loopback: None,
        tls13: false,
        services: vec![ServiceConfig {
            port: 8443,
            rsa,
            ecdsa,
            choice: CertChoice::ClientOrder,
            client_auth: ClientAuth::Off,
        }],
    };
    let rt = runtime();
    let fleet = rt
        .block_on(Fleet::start(FleetConfig {
            nodes: vec![node],
            handshake_timeout: Duration::from_secs(5),
            ..FleetConfig::default()
        }))
        .expect("fleet");
    let addr = fleet.socket("node", 8443).expect("socket");

    let dir = tempfile::TempDir::new().expect("tempdir");
    let trust_pem = dir.path().join("trust.pem");
    let pem: String = trusted.iter().map(|id| pki.cert(id).expect("trusted").pem()).collect();
    std::fs::write(&trust_pem, pem).expect("write");
    let oracle = s_client(addr, &trust_pem);

    let mut store = TrustStore::default();
    for id in trusted {
        store.add(id, pki.cert(id).expect("trusted").der.clone()).expect("trust");
    }
    let mut expressway = ExpresswaySpec::new("X14.2".parse().expect("v"), None, "node.lab");
    expressway.properties = Some(Properties::Signature);
    expressway.attempts = 1;
    let session = Session {
        peer: "vcsc".into(),
        expressway,
        trust: store,
        client_identity: None,
        validation_time: VALIDATION_TIME,
        log: LogSettings::seed(VALIDATION_TIME),
    };
    let mut model = BuiltinVerifier::new(Profile::Ats9_2);
    model.open(&session).expect("open");
    let outcome = model
        .request(&OriginRequest {
            host: "node.lab".into(),
            modelled_ip: "10.0.0.1".parse().expect("ip"),
            port: 8443,
            dial: addr,
            method: "GET".into(),
            path: "/cucm-uds/version".into(),
            purpose: Purpose::Mra,
            resolves: true,
            origin_state: harness::verifier::OriginState::Listening,
        })
        .expect("request");
    let verdict = match &outcome.failure {
        None => None,
        Some(Failure::Chain { code, depth, .. }) => Some((*code, *depth)),
        Some(other) => panic!("{leaf}: not a chain verdict: {other}"),
    };
    rt.block_on(fleet.stop());
    assert_eq!(
        verdict, oracle,
        "{leaf} trusted by {trusted:?}: model {verdict:?}, s_client {oracle:?}\n{:#?}",
        outcome.log
    );
    assert_eq!(outcome.status == 200, oracle.is_none(), "{leaf}: status {}", outcome.status);
}
