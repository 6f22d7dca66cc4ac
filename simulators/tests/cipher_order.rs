//! Which certificate a node serves, checked with the real `openssl s_client`: the client's
//! cipher order (TLS 1.2), its signature-algorithm order (TLS 1.3), a server order, a node with
//! only RSA, and a certificate re-issued on a running fleet.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use simulators::{CertChoice, EventKind, KeyAlg, Role};

const RSA_FIRST: &str = "ECDHE-RSA-AES256-GCM-SHA384:EECDH:EDH:HIGH";
const EXPRESSWAY_DEFAULT: &str = "EECDH:EDH:HIGH";

const TOMCAT_SUBJECT: &str = "subject=C = BE, O = Cisco, CN = cucm-ms.steven.lab";
const TOMCAT_ECDSA_SUBJECT: &str = "subject=C = BE, O = Cisco, CN = cucm-EC.steven.lab";

fn handshake_why(events: &[simulators::NodeEvent]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Handshake { identity, why, .. } => Some((identity.clone(), why.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_first_cipher_string_gets_the_ca_signed_rsa_tomcat() {
    let lab = Lab::new();
    let fleet = start(vec![lab.node("pub", Role::CucmPublisher, vec![lab.tomcat_service()])]).await;
    let addr = fleet.socket("pub", 8443).unwrap();

    let out = s_client(addr, &["-tls1_2", "-cipher", RSA_FIRST]).await;
    assert_eq!(served_subject(&out), TOMCAT_SUBJECT, "{}", out.all());

    let events = wait_for_event(&fleet, "pub", "handshake").await;
    assert_eq!(
        handshake_why(&events),
        [("tomcat".to_owned(), "client offered ECDHE-RSA-AES256-GCM-SHA384 first → tomcat".to_owned())]
    );
    within(fleet.stop()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expressway_default_cipher_string_gets_the_self_signed_tomcat_ecdsa() {
    let lab = Lab::new();
    let fleet = start(vec![lab.node("pub", Role::CucmPublisher, vec![lab.tomcat_service()])]).await;
    let addr = fleet.socket("pub", 8443).unwrap();

    // Without -tls1_2: the node has TLS 1.3 off, so the TLS 1.2 cipher order still decides.
    let out = s_client(addr, &["-cipher", EXPRESSWAY_DEFAULT]).await;
    assert_eq!(served_subject(&out), TOMCAT_ECDSA_SUBJECT, "{}", out.all());
    assert!(out.stdout.contains("Protocol  : TLSv1.2"), "{}", out.all());

    let events = wait_for_event(&fleet, "pub", "handshake").await;
    let line = events.iter().find(|e| matches!(e.kind, EventKind::Handshake { .. })).unwrap().kind.to_string();
    assert_eq!(
        line,
        "handshake TLSv1.2 ECDHE-ECDSA-AES256-GCM-SHA384, served tomcat-ECDSA \
         (client offered ECDHE-ECDSA-AES256-GCM-SHA384 first → tomcat-ECDSA)"
    );
    within(fleet.stop()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_tls13_node_the_client_signature_algorithm_order_decides() {
    let lab = Lab::new();
    let mut node = lab.node("pub", Role::CucmPublisher, vec![lab.tomcat_service()]);
    node.tls13 = true;
    let fleet = start(vec![node]).await;
    let addr = fleet.socket("pub", 8443).unwrap();

    let rsa = s_client(addr, &["-tls1_3", "-sigalgs", "rsa_pss_rsae_sha256:ecdsa_secp256r1_sha256"]).await;
    assert_eq!(served_subject(&rsa), TOMCAT_SUBJECT, "{}", rsa.all());
    assert!(rsa.stdout.contains("TLSv1.3"), "{}", rsa.all());

    let ecdsa = s_client(addr, &["-tls1_3", "-sigalgs", "ecdsa_secp256r1_sha256:rsa_pss_rsae_sha256"]).await;
    assert_eq!(served_subject(&ecdsa), TOMCAT_ECDSA_SUBJECT, "{}", ecdsa.all());

    within(async {
        while handshake_why(&fleet.events("pub")).len() < 2 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(
        handshake_why(&fleet.events("pub")),
        [
            ("tomcat".to_owned(), "client offered rsa_pss_rsae_sha256 first → tomcat".to_owned()),
            ("tomcat-ECDSA".to_owned(), "client offered ecdsa_secp256r1_sha256 first → tomcat-ECDSA".to_owned()),
        ]
    );
    within(fleet.stop()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_order_service_ignores_the_client_order() {
    let lab = Lab::new();
    let mut tftp = lab.tftp_service(simulators::ClientAuth::Off);
    tftp.choice = CertChoice::ServerOrder(vec![KeyAlg::Ecdsa, KeyAlg::Rsa]);
    let fleet = start(vec![lab.node("pub", Role::CucmPublisher, vec![lab.tomcat_service(), tftp])]).await;

    // The seed's lab after X14.0.7 → X14.2: RSA-first client, 8443 gives RSA, 6972 gives ECDSA.
    let tomcat = s_client(fleet.socket("pub", 8443).unwrap(), &["-cipher", RSA_FIRST]).await;
    assert_eq!(served_subject(&tomcat), TOMCAT_SUBJECT, "{}", tomcat.all());
    let tftp = s_client(fleet.socket("pub", 6972).unwrap(), &["-cipher", RSA_FIRST]).await;
    assert_eq!(served_subject(&tftp), TOMCAT_ECDSA_SUBJECT, "{}", tftp.all());

    let events = wait_for_event(&fleet, "pub", "CallManager-ECDSA").await;
    let why: Vec<_> = handshake_why(&events).into_iter().map(|(_, w)| w).collect();
    assert!(why.contains(&"server order prefers ECDSA → CallManager-ECDSA".to_owned()), "{why:?}");
    within(fleet.stop()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_only_rsa_serves_rsa_whatever_the_order() {
    let lab = Lab::new();
    let mut service = lab.tomcat_service();
    service.ecdsa = None;
    let fleet = start(vec![lab.node("old", Role::CucmSubscriber, vec![service])]).await;
    let addr = fleet.socket("old", 8443).unwrap();

    for cipher in [EXPRESSWAY_DEFAULT, RSA_FIRST, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"] {
        let out = s_client(addr, &["-cipher", cipher]).await;
        assert_eq!(served_subject(&out), TOMCAT_SUBJECT, "{cipher}: {}", out.all());
    }
    within(async {
        while handshake_why(&fleet.events("old")).len() < 3 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    for (identity, why) in handshake_why(&fleet.events("old")) {
        assert_eq!(identity, "tomcat");
        assert_eq!(why, "only RSA identity → tomcat");
    }
    within(fleet.stop()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_set_on_a_running_fleet_is_what_the_next_handshake_gets() {
    let lab = Lab::new();
    let fleet = start(vec![lab.node("pub", Role::CucmPublisher, vec![lab.tomcat_service()])]).await;
    let addr = fleet.socket("pub", 8443).unwrap();

    let before = s_client(addr, &["-cipher", EXPRESSWAY_DEFAULT]).await;
    assert_eq!(served_subject(&before), TOMCAT_ECDSA_SUBJECT, "{}", before.all());

    // The tomcat-ECDSA CSR gets signed by the CA: a re-issued certificate, CA-signed now.
    let reissued = signed("cucm-EC-signed.steven.lab", &["cucm.steven.lab"], ec_key(), "steven-DC-CA", &lab.ca);
    fleet
        .set_identities(
            "pub",
            8443,
            Some(lab.tomcat.identity("tomcat", &[&lab.ca])),
            Some(reissued.identity("tomcat-ECDSA", &[&lab.ca])),
        )
        .unwrap();
    assert_eq!(fleet.nodes()[0].services[0].ecdsa.as_deref(), Some("tomcat-ECDSA"));

    let after = s_client(addr, &["-cipher", EXPRESSWAY_DEFAULT]).await;
    assert_eq!(served_subject(&after), "subject=C = BE, O = Cisco, CN = cucm-EC-signed.steven.lab", "{}", after.all());
    assert!(after.stdout.contains("i:C = BE, O = Cisco, CN = steven-DC-CA"), "{}", after.all());

    let events = wait_for_event(&fleet, "pub", "reconfigured").await;
    assert!(
        lines(&events).contains(&"reconfigured: identities rsa=tomcat ecdsa=tomcat-ECDSA".to_owned()),
        "{:?}",
        lines(&events)
    );
    within(fleet.stop()).await;
}
