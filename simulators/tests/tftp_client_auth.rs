//! Port 6972 (TFTP over HTTPS): the CertificateRequest and its acceptable CA names, `Request`
//! and `Require` client authentication, and the alert a distrusting client sends (the seed's
//! capture: `Alert (Level: Fatal, Description: Unknown CA)`).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use simulators::{ClientAuth, EventKind, Role};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tftp_port_shows_acceptable_client_certificate_ca_names() {
    let lab = Lab::new();
    let trust = vec![lab.ca.der.clone()];
    let fleet =
        start(vec![lab.node("pub", Role::CucmPublisher, vec![lab.tftp_service(ClientAuth::Request { trust })])]).await;

    let out = s_client(fleet.socket("pub", 6972).unwrap(), &["-cipher", "EECDH:EDH:HIGH"]).await;
    let text = out.all();
    let names = text
        .split("Acceptable client certificate CA names")
        .nth(1)
        .unwrap_or_else(|| panic!("no CertificateRequest seen:\n{text}"));
    assert!(names.lines().nth(1).unwrap().contains("C = BE, O = Cisco, CN = steven-DC-CA"), "{text}");
    assert!(out.stdout.contains("CN = cucm-EC.steven.lab"), "{text}");

    let events = wait_for_event(&fleet, "pub", "client certificate").await;
    assert!(lines(&events).contains(&"client certificate: none".to_owned()));
    within(fleet.stop()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_accepts_any_client_certificate_and_records_its_subject() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let other_ca = ca("Expressway-CA");
    let client = signed("vcsc.steven.lab", &["vcsc.steven.lab"], ec_key(), "Expressway-CA", &other_ca);
    let cert = write(dir.path(), "client.pem", &client.pem());
    let key = write(dir.path(), "client.key", &client.key.serialize_pem());

    let trust = vec![lab.ca.der.clone()];
    let fleet =
        start(vec![lab.node("pub", Role::CucmPublisher, vec![lab.tftp_service(ClientAuth::Request { trust })])]).await;
    let out = s_client(
        fleet.socket("pub", 6972).unwrap(),
        &["-tls1_2", "-cert", cert.to_str().unwrap(), "-key", key.to_str().unwrap()],
    )
    .await;
    assert!(out.stdout.contains("Verify return code"), "{}", out.all());

    let events = wait_for_event(&fleet, "pub", "client certificate").await;
    assert!(
        lines(&events).contains(&"client certificate: C=BE, O=Cisco, CN=vcsc.steven.lab".to_owned()),
        "{:?}",
        lines(&events)
    );
    within(fleet.stop()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_rejects_a_foreign_client_certificate_and_logs_the_alert() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let other_ca = ca("Expressway-CA");
    let foreign = signed("vcsc.steven.lab", &["vcsc.steven.lab"], ec_key(), "Expressway-CA", &other_ca);
    let cert = write(dir.path(), "client.pem", &foreign.pem());
    let key = write(dir.path(), "client.key", &foreign.key.serialize_pem());

    let trust = vec![lab.ca.der.clone()];
    let fleet =
        start(vec![lab.node("pub", Role::CucmPublisher, vec![lab.tftp_service(ClientAuth::Require { trust })])]).await;
    let out = s_client(
        fleet.socket("pub", 6972).unwrap(),
        &["-tls1_2", "-cert", cert.to_str().unwrap(), "-key", key.to_str().unwrap()],
    )
    .await;
    assert!(out.all().contains("alert unknown ca"), "{}", out.all());

    let events = wait_for_event(&fleet, "pub", "handshake failed").await;
    let failed: Vec<_> = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::HandshakeFailed { .. }))
        .map(|e| e.kind.to_string())
        .collect();
    assert_eq!(
        failed,
        ["handshake failed: client certificate does not chain to the trust (unknown issuer); \
          sent alert Unknown CA"]
    );
    within(fleet.stop()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_accepts_a_client_certificate_that_chains_to_the_trust() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let client = signed("vcsc.steven.lab", &["vcsc.steven.lab"], ec_key(), "steven-DC-CA", &lab.ca);
    let cert = write(dir.path(), "client.pem", &client.pem());
    let key = write(dir.path(), "client.key", &client.key.serialize_pem());

    let trust = vec![lab.ca.der.clone()];
    let fleet =
        start(vec![lab.node("pub", Role::CucmPublisher, vec![lab.tftp_service(ClientAuth::Require { trust })])]).await;
    let addr = fleet.socket("pub", 6972).unwrap();
    let out = s_client(addr, &["-tls1_2", "-cert", cert.to_str().unwrap(), "-key", key.to_str().unwrap()]).await;
    assert!(!out.all().contains("alert"), "{}", out.all());
    let events = wait_for_event(&fleet, "pub", "client certificate").await;
    assert!(lines(&events).contains(&"client certificate: C=BE, O=Cisco, CN=vcsc.steven.lab".to_owned()));

    // Without a certificate, `Require` refuses.
    let none = s_client(addr, &["-tls1_2"]).await;
    assert!(none.all().contains("alert"), "{}", none.all());
    let events = wait_for_event(&fleet, "pub", "client sent no certificate").await;
    assert!(
        lines(&events)
            .contains(&"handshake failed: client sent no certificate; sent alert Certificate Required".to_owned()),
        "{:?}",
        lines(&events)
    );
    within(fleet.stop()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_distrusts_the_self_signed_ecdsa_certificate_sends_unknown_ca_and_it_is_logged() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = write(dir.path(), "trust.pem", &lab.ca.pem());
    let fleet = start(vec![lab.node(
        "pub",
        Role::CucmPublisher,
        vec![lab.tftp_service(ClientAuth::Request { trust: vec![lab.ca.der.clone()] })],
    )])
    .await;

    // Expressway-C trusts steven-DC-CA only; 6972 serves the self-signed CallManager-ECDSA.
    let out = s_client(
        fleet.socket("pub", 6972).unwrap(),
        &["-tls1_2", "-cipher", "EECDH:EDH:HIGH", "-verify_return_error", "-CAfile", ca_file.to_str().unwrap()],
    )
    .await;
    assert!(out.all().contains("self-signed certificate"), "{}", out.all());

    let events = wait_for_event(&fleet, "pub", "alert received").await;
    assert_eq!(
        lines(&events),
        [
            "connected",
            "sent CallManager-ECDSA (client offered ECDHE-ECDSA-AES256-GCM-SHA384 first → CallManager-ECDSA)",
            "alert received: Unknown CA"
        ],
        "the handshake never completed: the certificate sent, then the client's alert"
    );
    within(fleet.stop()).await;
}
