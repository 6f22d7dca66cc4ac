//! `cargo xtask bench verify`: verified requests per second through the built-in model against
//! the fleet, beside bare rustls (handshake, then the same HTTP request) in the same run.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use crate::out::outln;
use harness::expressway::{ExpresswaySpec, TrustStore};
use harness::fleet::{FleetSpec, ResolvedFleet};
use harness::pki::{KeyCache, Pki, builtin};
use harness::verifier::builtin::BuiltinVerifier;
use harness::verifier::{LogSettings, OriginRequest, Profile, Purpose, Session, Verifier};
use rustls::RootCertStore;
use rustls_pki_types::ServerName;
use simulators::Fleet;
use time::OffsetDateTime;

/// One bare exchange: rustls client with webpki verification, TLS 1.2, the same GET.
fn bare(config: &Arc<rustls::ClientConfig>, addr: SocketAddr, host: &str) -> anyhow::Result<()> {
    let tcp = harness::net::connect(addr, std::time::Duration::from_secs(5), harness::net::Reach::Loopback)?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from(host.to_string())?;
    let conn = rustls::ClientConnection::new(config.clone(), name)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(
        format!("GET /cucm-uds/version HTTP/1.1\r\nHost: {host}:8443\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out);
    anyhow::ensure!(out.starts_with(b"HTTP/1.1 200"), "bare request failed");
    Ok(())
}

pub fn verify(requests: usize, nodes: usize) -> anyhow::Result<ExitCode> {
    let now = OffsetDateTime::now_utc();
    let topology = builtin::topology(&format!("fleet:{nodes}"))?;
    let pki = Pki::build(&topology, now, &KeyCache::default())?;
    let mut spec_text = String::new();
    for i in 1..=nodes {
        spec_text.push_str(&format!(
            "[nodes.cucm-{i:02}]\nrole = \"cucm-subscriber\"\nfqdn = \"cucm-{i:02}.fleet.lab\"\nip = \"10.1.{}.{}\"\n",
            i / 250,
            i % 250 + 1
        ));
    }
    let spec: FleetSpec = toml::from_str(&spec_text)?;
    let resolved = ResolvedFleet::resolve(&spec, &pki)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let fleet = runtime.block_on(Fleet::start(resolved.config(&pki)?))?;
    let targets: Vec<(String, SocketAddr, std::net::IpAddr)> = resolved
        .nodes
        .iter()
        .filter_map(|n| Some((n.spec.fqdn.clone(), fleet.socket(&n.name, simulators::TOMCAT_PORT)?, n.spec.ip)))
        .collect();

    // Bare rustls, RSA preferred as the model's X14.0 -> X14.2 list, TLS 1.2 as the nodes.
    let root = pki.cert("fleet-CA")?;
    let mut roots = RootCertStore::empty();
    roots.add(root.der.clone())?;
    let ciphers = harness::ciphers::CipherList::parse(&format!(
        "{}{}",
        harness::expressway::RSA_PREFIX,
        harness::expressway::DEFAULT_CIPHERS
    ))?;
    let mut bare_config = rustls::ClientConfig::builder_with_provider(Arc::new(ciphers.crypto_provider(false)))
        .with_protocol_versions(&[&rustls::version::TLS12])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // Full handshakes on both sides: the model (Expressway profile) does not resume sessions.
    bare_config.resumption = rustls::client::Resumption::disabled();
    let bare_config = Arc::new(bare_config);

    let mut store = TrustStore::default();
    store.add("fleet-CA", root.der.clone())?;
    let mut expressway = ExpresswaySpec::new(
        "X14.2".parse::<harness::expressway::Version>()?,
        Some("X14.0.7".parse::<harness::expressway::Version>()?),
        "cucm-01.fleet.lab",
    );
    expressway.tls = vec![harness::expressway::TlsVersion::Tls12];
    let session = Session {
        peer: "vcsc".into(),
        expressway,
        trust: store,
        client_identity: None,
        validation_time: now,
        log: LogSettings::seed(now),
    };
    let mut model = BuiltinVerifier::new(Profile::ExpresswayX14_2);
    model.open(&session)?;
    let request = |host: &str, dial: SocketAddr, ip: std::net::IpAddr| OriginRequest {
        host: host.to_string(),
        modelled_ip: ip,
        port: simulators::TOMCAT_PORT,
        dial,
        method: "GET".into(),
        path: "/cucm-uds/version".into(),
        purpose: Purpose::Mra,
        resolves: true,
        origin_state: harness::verifier::OriginState::Listening,
    };

    outln!(
        "{requests} sequential requests each, {} nodes, TLS 1.2 ECDHE-RSA, RSA-2048 CA-signed tomcat",
        targets.len()
    )?;
    outln!("{:<34} {:>12} {:>10}", "", "requests/s", "vs bare")?;
    let mut results = Vec::new();
    for (label, sweep) in [("one node", false), ("swept across the fleet", true)] {
        let pick = |i: usize| &targets[if sweep { i % targets.len() } else { 0 }];
        // Interleave in chunks so that load from elsewhere on the machine hits both alike.
        let (mut bare_time, mut model_time) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
        for chunk in (0..requests).collect::<Vec<_>>().chunks(25) {
            let start = Instant::now();
            for &i in chunk {
                let (host, addr, _) = pick(i);
                bare(&bare_config, *addr, host)?;
            }
            bare_time += start.elapsed();
            let start = Instant::now();
            for &i in chunk {
                let (host, addr, ip) = pick(i);
                let outcome = model.request(&request(host, *addr, *ip))?;
                anyhow::ensure!(outcome.status == 200, "model request failed: {:?}", outcome.failure);
            }
            model_time += start.elapsed();
        }
        let bare_rate = requests as f64 / bare_time.as_secs_f64();
        let model_rate = requests as f64 / model_time.as_secs_f64();
        outln!("{:<34} {:>12.0}", format!("bare rustls, {label}"), bare_rate)?;
        outln!("{:<34} {:>12.0} {:>9.0}%", format!("model, {label}"), model_rate, 100.0 * model_rate / bare_rate)?;
        results.push(model_rate / bare_rate);
        let _ = fleet.take_events();
    }
    runtime.block_on(fleet.stop());
    Ok(ExitCode::SUCCESS)
}
