//! Every HTTP endpoint fetched with the real `curl --resolve <fqdn>:<port>:<loopback>`, as
//! Expressway-C's traffic server would reach it: statuses, bodies, live System > Server changes,
//! and the exact event log a request leaves.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use simulators::{ClientAuth, Role};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_fetches_every_endpoint_with_the_expected_status_and_body() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = write(dir.path(), "ca.pem", &lab.ca.pem());

    let publisher = lab.node(
        "pub",
        Role::CucmPublisher,
        vec![lab.tomcat_service(), lab.tftp_service(ClientAuth::Request { trust: vec![lab.ca.der.clone()] })],
    );
    let mut subscriber = lab.node("sub", Role::CucmSubscriber, vec![lab.tomcat_service()]);
    subscriber.fqdn = "cucm-sub.steven.lab".to_owned();
    subscriber.system_server = "10.48.36.216".to_owned();
    let mut imp = lab.node("imp", Role::Imp, vec![lab.tomcat_service()]);
    imp.fqdn = "imp.steven.lab".to_owned();
    imp.cluster = "steven-imp".to_owned();
    let mut unity = lab.node("unity", Role::Unity, vec![lab.tomcat_service()]);
    unity.fqdn = "unity.steven.lab".to_owned();
    unity.cluster = "steven-unity".to_owned();
    let fleet = start(vec![publisher, subscriber, imp, unity]).await;

    let pub_tomcat = fleet.socket("pub", 8443).unwrap();
    let pub_tftp = fleet.socket("pub", 6972).unwrap();
    let fqdn = "cucm.steven.lab";
    let cases: Vec<(std::net::SocketAddr, &str, &str, &str, u16, &str)> = vec![
        (pub_tomcat, fqdn, "GET", "/cucm-uds/version", 200, "<version>14.0.1.11900-132</version>"),
        (
            pub_tomcat,
            fqdn,
            "GET",
            "/cucm-uds/servers",
            200,
            "<servers><server>cucm.steven.lab</server><server>10.48.36.216</server></servers>",
        ),
        (pub_tomcat, fqdn, "GET", "/cucm-uds/user/emusk/devices?max=100", 200, "<name>CSFEMUSK</name>"),
        (pub_tomcat, fqdn, "GET", "/cucm-uds/user/emusk/devices?max=100", 200, "<name>TABEMUSK</name>"),
        (pub_tomcat, fqdn, "GET", "/cucm-uds/nothing-here", 404, "<code>404</code>"),
        (pub_tomcat, fqdn, "POST", "/cucm-uds/version", 405, "<code>405</code>"),
        (fleet.socket("sub", 8443).unwrap(), "cucm-sub.steven.lab", "GET", "/cucm-uds/version", 200, "14.0.1"),
        (
            fleet.socket("imp", 8443).unwrap(),
            "imp.steven.lab",
            "POST",
            "/EPASSoap/service/v105",
            200,
            "<soapenv:Envelope",
        ),
        (fleet.socket("imp", 8443).unwrap(), "imp.steven.lab", "GET", "/EPASSoap/service/v105", 405, "405"),
        (fleet.socket("imp", 8443).unwrap(), "imp.steven.lab", "GET", "/cucm-uds/version", 404, "404"),
        (
            fleet.socket("unity", 8443).unwrap(),
            "unity.steven.lab",
            "GET",
            "/vmrest/version/product",
            200,
            "<ProductName>Cisco Unity Connection</ProductName>",
        ),
        (pub_tftp, fqdn, "GET", "/SPDefault.cnf.xml", 200, "<tftpServer>cucm.steven.lab</tftpServer>"),
        (pub_tftp, fqdn, "GET", "/CSFEMUSK.cnf.xml.sgn", 200, "<deviceName>CSFEMUSK</deviceName>"),
        (pub_tftp, fqdn, "GET", "/ITLFile.tlv", 200, "cucm.steven.lab"),
        (pub_tftp, fqdn, "GET", "/nothing.txt", 404, "404"),
        (pub_tftp, fqdn, "DELETE", "/SPDefault.cnf.xml", 405, "405"),
    ];
    for (addr, host, method, path, status, needle) in cases {
        let (got, body) = curl(addr, host, &ca_file, method, path).await;
        assert_eq!(got, status, "{method} https://{host}{path}: {body}");
        assert!(body.contains(needle), "{method} https://{host}{path}: {body}");
    }

    let (_, two) = curl(pub_tomcat, fqdn, &ca_file, "GET", "/cucm-uds/user/emusk/devices?max=2").await;
    assert_eq!(two.matches("<device>").count(), 2, "{two}");
    within(fleet.stop()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_system_server_change_shows_in_the_next_servers_answer_and_in_the_log() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = write(dir.path(), "ca.pem", &lab.ca.pem());
    let fleet = start(vec![lab.node("pub", Role::CucmPublisher, vec![lab.tomcat_service()])]).await;
    let addr = fleet.socket("pub", 8443).unwrap();

    fleet.set_system_server("pub", "10.48.36.215").unwrap();
    let (status, body) = curl(addr, "cucm.steven.lab", &ca_file, "GET", "/cucm-uds/servers").await;
    assert_eq!(status, 200);
    assert!(body.contains("<servers><server>10.48.36.215</server></servers>"), "{body}");
    assert_eq!(fleet.nodes()[0].system_server, "10.48.36.215");
    assert!(matches!(fleet.set_system_server("nobody", "x"), Err(simulators::FleetError::UnknownNode { .. })));

    let events = wait_for_event(&fleet, "pub", "response").await;
    assert_eq!(
        lines(&events),
        [
            "reconfigured: system server cucm.steven.lab → 10.48.36.215",
            "connected",
            "handshake TLSv1.2 ECDHE-RSA-AES256-GCM-SHA384, served tomcat \
             (client offered ECDHE-RSA-AES256-GCM-SHA384 first → tomcat)",
            "request GET /cucm-uds/servers",
            "response 200",
        ]
    );
    let drained = fleet.take_events();
    assert_eq!(drained.len(), 5);
    assert_eq!(drained[3].to_string(), "pub #3 :8443 conn 1: request GET /cucm-uds/servers");
    assert!(fleet.take_events().is_empty());
    within(fleet.stop()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_table_names_each_node_port_and_certificate() {
    let lab = Lab::new();
    let fleet = start(vec![lab.node(
        "pub",
        Role::CucmPublisher,
        vec![lab.tomcat_service(), lab.tftp_service(ClientAuth::Request { trust: vec![lab.ca.der.clone()] })],
    )])
    .await;
    let table = simulators::render_table(&fleet.nodes());
    let loopback = fleet.nodes()[0].loopback;
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("node"), "{table}");
    assert!(lines[1].contains(&format!("{loopback}:8443")), "{table}");
    assert!(lines[1].contains("tomcat + tomcat-ECDSA (client order, client cert off)"), "{table}");
    assert!(lines[2].contains("10.48.36.215:6972"), "{table}");
    assert!(lines[2].contains("CallManager + CallManager-ECDSA (client order, client cert request)"), "{table}");
    within(fleet.stop()).await;
}
