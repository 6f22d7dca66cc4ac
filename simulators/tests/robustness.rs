//! Hostile and careless clients (garbage, a truncated ClientHello, silence, a thousand idle
//! connections), loopback allocation (two fleets at once, a taken or non-loopback explicit
//! address), bad configurations, and a clean stop.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::*;
use simulators::{EventKind, Fleet, FleetError, Role, TimeoutPhase};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes (or resets) the connection.
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match within(stream.read(&mut buf)).await {
            Ok(0) | Err(_) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
}

async fn start_with_timeouts(nodes: Vec<simulators::NodeConfig>, handshake: Duration, idle: Duration) -> Fleet {
    let mut config = fleet_config(nodes);
    config.handshake_timeout = handshake;
    config.idle_timeout = idle;
    within(Fleet::start(config)).await.unwrap()
}

fn kinds(fleet: &Fleet, node: &str) -> Vec<EventKind> {
    fleet.events(node).into_iter().map(|e| e.kind).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bytes_are_refused_logged_and_the_node_keeps_serving() {
    let lab = Lab::new();
    let fleet = start(vec![lab.node("pub", Role::CucmPublisher, vec![lab.tomcat_service()])]).await;
    let addr = fleet.socket("pub", 8443).unwrap();

    for garbage in [
        &b"GET /cucm-uds/version HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &[0x16, 0x03, 0x01, 0x00, 0x05, 0xff, 0xff, 0xff, 0xff, 0xff][..],
        &[0u8; 300][..],
    ] {
        let mut tcp = within(TcpStream::connect(addr)).await.unwrap();
        within(tcp.write_all(garbage)).await.unwrap();
        read_to_close(&mut tcp).await;
    }
    let events = wait_for_event(&fleet, "pub", "handshake failed").await;
    let failures = within(async {
        loop {
            let n = kinds(&fleet, "pub").iter().filter(|k| matches!(k, EventKind::HandshakeFailed { .. })).count();
            if n == 3 {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(failures, 3, "{:?}", lines(&events));
    // The node logs a failure just after closing, so connections may interleave: sort by one.
    let mut by_connection = fleet.events("pub");
    by_connection.sort_by_key(|e| e.connection);
    assert_eq!(
        lines(&by_connection),
        [
            "connected",
            "handshake failed: received corrupt message of type InvalidContentType; \
             sent alert Decode Error",
            "connected",
            "handshake failed: received corrupt message of type HandshakePayloadTooLarge; \
             sent alert Decode Error",
            "connected",
            "handshake failed: received corrupt message of type InvalidContentType; \
             sent alert Decode Error",
        ]
    );

    let out = s_client(addr, &["-cipher", "EECDH"]).await;
    assert!(out.stdout.contains("CN = cucm-EC.steven.lab"), "{}", out.all());
    within(fleet.stop()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_client_hello_and_a_silent_client_time_out_and_are_logged() {
    let lab = Lab::new();
    let fleet = start_with_timeouts(
        vec![lab.node("pub", Role::CucmPublisher, vec![lab.tomcat_service()])],
        Duration::from_millis(300),
        Duration::from_secs(5),
    )
    .await;
    let addr = fleet.socket("pub", 8443).unwrap();

    // A record header announcing 512 bytes of handshake, then only the first few.
    let mut truncated = within(TcpStream::connect(addr)).await.unwrap();
    within(truncated.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03])).await.unwrap();
    let mut silent = within(TcpStream::connect(addr)).await.unwrap();

    // The node closes both when the handshake timeout expires.
    read_to_close(&mut truncated).await;
    read_to_close(&mut silent).await;

    // A truncated hello whose client then hangs up is a failure, not a timeout.
    let mut hangs_up = within(TcpStream::connect(addr)).await.unwrap();
    within(hangs_up.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])).await.unwrap();
    drop(hangs_up);

    let events = within(async {
        loop {
            let k = kinds(&fleet, "pub");
            let timeouts = k.iter().filter(|k| **k == EventKind::TimedOut { phase: TimeoutPhase::Handshake }).count();
            let failed = k.iter().any(|k| matches!(k, EventKind::HandshakeFailed { .. }));
            if timeouts == 2 && failed {
                return k;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        events.contains(&EventKind::HandshakeFailed {
            reason: "client closed the connection before the handshake completed".to_owned()
        }),
        "{events:?}"
    );
    within(fleet.stop()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_established_connection_without_a_request_times_out_as_idle() {
    let lab = Lab::new();
    let fleet = start_with_timeouts(
        vec![lab.node("pub", Role::CucmPublisher, vec![lab.tomcat_service()])],
        Duration::from_secs(5),
        Duration::from_millis(300),
    )
    .await;
    let addr = fleet.socket("pub", 8443).unwrap();
    let tcp = within(TcpStream::connect(addr)).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("cucm.steven.lab").unwrap();
    let mut tls = within(danger_client().connect(name, tcp)).await.unwrap();
    let mut buf = [0u8; 64];
    // The node closes the connection once the idle timeout expires.
    let _ = within(tls.read(&mut buf)).await;
    wait_for_event(&fleet, "pub", "timed out waiting for a request").await;
    within(fleet.stop()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_connections_time_out_while_other_connections_and_nodes_keep_working() {
    let lab = Lab::new();
    let fleet = start_with_timeouts(
        vec![
            lab.node("pub", Role::CucmPublisher, vec![lab.tomcat_service()]),
            lab.node("sub", Role::CucmSubscriber, vec![lab.tomcat_service()]),
        ],
        Duration::from_secs(2),
        Duration::from_secs(5),
    )
    .await;
    let pub_addr = fleet.socket("pub", 8443).unwrap();
    let mut idle = Vec::with_capacity(1000);
    for _ in 0..1000 {
        idle.push(within(TcpStream::connect(pub_addr)).await.unwrap());
    }
    // While they hang, both the crowded node and its neighbour still hand out certificates.
    for node in ["pub", "sub"] {
        let out = s_client(fleet.socket(node, 8443).unwrap(), &["-cipher", "EECDH"]).await;
        assert!(out.stdout.contains("CN = cucm-EC.steven.lab"), "{node}: {}", out.all());
    }
    for stream in &mut idle {
        read_to_close(stream).await;
    }
    let timeouts = within(async {
        loop {
            let n = kinds(&fleet, "pub")
                .iter()
                .filter(|k| **k == EventKind::TimedOut { phase: TimeoutPhase::Handshake })
                .count();
            if n >= 1000 {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(timeouts, 1000);
    within(fleet.stop()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_fleets_started_at_once_in_one_process_do_not_collide() {
    let lab = Lab::new();
    let nodes = |prefix: &str| {
        (0..300)
            .map(|i| lab.node(&format!("{prefix}{i}"), Role::CucmSubscriber, vec![lab.tomcat_service()]))
            .collect::<Vec<_>>()
    };
    let (a, b) =
        within(async { tokio::join!(Fleet::start(fleet_config(nodes("a"))), Fleet::start(fleet_config(nodes("b")))) })
            .await;
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut seen = std::collections::HashSet::new();
    for info in a.nodes().into_iter().chain(b.nodes()) {
        assert!(info.loopback.is_loopback());
        assert_eq!(info.services[0].addr, SocketAddr::new(IpAddr::V4(info.loopback), 8443));
        assert!(seen.insert(info.loopback), "{} shares {}", info.name, info.loopback);
    }
    assert_eq!(seen.len(), 600);
    within(a.stop()).await;
    within(b.stop()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_loopback_that_is_taken_is_an_error_naming_the_node_and_port() {
    let lab = Lab::new();
    let first = start(vec![lab.node("pub", Role::CucmPublisher, vec![lab.tomcat_service()])]).await;
    let taken = first.nodes()[0].loopback;

    let mut clash = lab.node("clash", Role::CucmSubscriber, vec![lab.tomcat_service()]);
    clash.loopback = Some(taken);
    let err = within(Fleet::start(fleet_config(vec![clash]))).await.unwrap_err();
    assert!(matches!(&err, FleetError::PortInUse { node, addr } if node == "clash" && addr.port() == 8443));
    assert_eq!(err.to_string(), format!("node 'clash': {taken}:8443 is already in use"));
    within(first.stop()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_loopback_explicit_address_is_refused() {
    let lab = Lab::new();
    let mut node = lab.node("pub", Role::CucmPublisher, vec![lab.tomcat_service()]);
    node.loopback = Some(Ipv4Addr::new(10, 48, 36, 215));
    let err = within(Fleet::start(fleet_config(vec![node]))).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "node 'pub': 10.48.36.215 is not a loopback address (simulators bind 127.0.0.0/8 only)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configurations_are_errors_naming_the_node() {
    let lab = Lab::new();
    let dup = vec![
        lab.node("pub", Role::CucmPublisher, vec![lab.tomcat_service()]),
        lab.node("pub", Role::CucmSubscriber, vec![lab.tomcat_service()]),
    ];
    let err = within(Fleet::start(fleet_config(dup))).await.unwrap_err();
    assert_eq!(err.to_string(), "node 'pub' is defined twice");

    let mut swapped = lab.tomcat_service();
    swapped.rsa = Some(lab.tomcat_ecdsa.identity("tomcat-ECDSA", &[]));
    let err = within(Fleet::start(fleet_config(vec![lab.node("pub", Role::CucmPublisher, vec![swapped])])))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "node 'pub' port 8443: identity 'tomcat-ECDSA' has an ECDSA key but was given as the RSA identity"
    );

    let mut empty = lab.tomcat_service();
    empty.rsa = None;
    empty.ecdsa = None;
    let err =
        within(Fleet::start(fleet_config(vec![lab.node("pub", Role::CucmPublisher, vec![empty])]))).await.unwrap_err();
    assert_eq!(err.to_string(), "node 'pub': port 8443 has no identity to serve");

    let mut wrong_key = lab.tomcat_service();
    wrong_key.ecdsa = Some(simulators::Identity {
        name: "tomcat-ECDSA".to_owned(),
        chain: vec![lab.tomcat_ecdsa.der.clone()],
        key: lab.callmanager_ecdsa.key_der(),
    });
    let err = within(Fleet::start(fleet_config(vec![lab.node("pub", Role::CucmPublisher, vec![wrong_key])])))
        .await
        .unwrap_err();
    assert!(matches!(err, FleetError::Tls { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_closes_open_connections_and_releases_every_socket() {
    let lab = Lab::new();
    let fleet = start(vec![lab.node("pub", Role::CucmPublisher, vec![lab.tomcat_service()])]).await;
    let addr = fleet.socket("pub", 8443).unwrap();
    let mut open = within(TcpStream::connect(addr)).await.unwrap();
    wait_for_event(&fleet, "pub", "connected").await;

    within(fleet.stop()).await;
    // The open connection was closed by the stop, not by a timeout.
    read_to_close(&mut open).await;
    // The address is free again at once.
    let again = std::net::TcpListener::bind(addr);
    assert!(again.is_ok(), "{again:?}");
}
