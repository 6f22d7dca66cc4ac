//! `Fleet::record`: what crossed a node's socket, in order, and the session's TLS secrets, for
//! captures; nothing at all while recording is off.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use simulators::{Direction, Fleet, Role, Segment};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// One HTTPS request to `pub`:8443 through a rustls client that closes after the answer.
async fn one_request(fleet: &Fleet) -> Vec<u8> {
    let tcp = tokio::net::TcpStream::connect(fleet.socket("pub", 8443).unwrap()).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("cucm.steven.lab").unwrap();
    let mut tls = danger_client().connect(name, tcp).await.unwrap();
    tls.write_all(b"GET /cucm-uds/version HTTP/1.1\r\nHost: cucm.steven.lab\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_connection_holds_its_bytes_in_order_both_fins_and_the_secrets() {
    let lab = Lab::new();
    let fleet = start(vec![lab.node("pub", Role::CucmPublisher, vec![lab.tomcat_service()])]).await;
    let _ = within(one_request(&fleet)).await;
    assert!(within(fleet.settle(std::time::Duration::from_secs(5))).await);
    assert_eq!(fleet.take_recordings(), simulators::Recordings::default(), "recording is off by default");

    fleet.record(true);
    let answer = within(one_request(&fleet)).await;
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    assert!(within(fleet.settle(std::time::Duration::from_secs(5))).await);
    let recorded = fleet.take_recordings();
    assert_eq!(recorded.connections.len(), 1);
    let connection = &recorded.connections[0];
    assert_eq!((connection.node.as_str(), connection.port), ("pub", 8443));
    assert_eq!(connection.modelled_ip, "10.48.36.215".parse::<std::net::IpAddr>().unwrap());
    // A ClientHello (handshake record) first, from the client; the node answers with one.
    match connection.segments.first() {
        Some(Segment::Data { direction: Direction::ToNode, bytes }) => assert_eq!(bytes[0], 22),
        other => panic!("first segment: {other:?}"),
    }
    assert!(connection.segments.iter().any(|s| matches!(s, Segment::Data { direction: Direction::FromNode, .. })));
    for side in [Direction::ToNode, Direction::FromNode] {
        assert_eq!(connection.segments.iter().filter(|s| **s == Segment::Fin(side)).count(), 1, "{side:?} FIN");
    }
    assert!(!recorded.key_log.is_empty(), "secrets of the session");
    let labels: Vec<&str> = recorded.key_log.iter().filter_map(|l| l.split(' ').next()).collect();
    assert!(
        labels.iter().all(|l| *l == "CLIENT_RANDOM" || l.ends_with("_TRAFFIC_SECRET_0") || l.contains("HANDSHAKE")),
        "{labels:?}"
    );
    assert_eq!(fleet.take_recordings(), simulators::Recordings::default(), "taken once");
    within(fleet.stop()).await;
}
