//! Fleet figures, printed as plain text (`cargo bench -p simulators --bench fleet`):
//! start-up time and resident memory for fleets of 10, 100 and 1,000 nodes, and full TLS 1.2
//! handshakes per second against one node, across a 1,000-node fleet, and for a bare rustls
//! server/client pair in the same run (the ceiling). ECDSA P-256 identities sharing one key keep
//! the set-up cheap. Loops are bounded by a handshake count; everything stays on loopback.
#![allow(clippy::unwrap_used, missing_debug_implementations)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use simulators::{
    CertChoice, ClientAuth, Fleet, FleetConfig, Identity, NodeConfig, Role, ServiceConfig, TFTP_PORT, TOMCAT_PORT,
};
use tokio::net::{TcpListener, TcpStream};

const HANDSHAKES: usize = 3000;
const IN_FLIGHT: usize = 4;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[derive(Debug)]
struct DangerAcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for DangerAcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn connector() -> tokio_rustls::TlsConnector {
    let p = provider();
    let mut config = rustls::ClientConfig::builder_with_provider(p.clone())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(DangerAcceptAny(p)))
        .with_no_client_auth();
    // Every handshake a full one.
    config.resumption = rustls::client::Resumption::disabled();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

fn identity() -> Identity {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = CertificateParams::new(vec!["cucm.steven.lab".to_owned()]).unwrap().self_signed(&key).unwrap();
    Identity {
        name: "tomcat-ECDSA".to_owned(),
        chain: vec![cert.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    }
}

fn fleet_config(n: usize, id: &Identity) -> FleetConfig {
    let service = |port| ServiceConfig {
        port,
        rsa: None,
        ecdsa: Some(id.clone()),
        choice: CertChoice::ClientOrder,
        client_auth: if port == TFTP_PORT {
            ClientAuth::Request { trust: vec![id.chain[0].clone()] }
        } else {
            ClientAuth::Off
        },
    };
    FleetConfig {
        nodes: (0..n)
            .map(|i| NodeConfig {
                name: format!("node{i}"),
                role: if i == 0 { Role::CucmPublisher } else { Role::CucmSubscriber },
                cluster: "bench".to_owned(),
                fqdn: format!("cucm{i}.bench.lab"),
                modelled_ip: IpAddr::from([10, 0, (i / 256) as u8, (i % 256) as u8]),
                system_server: format!("cucm{i}.bench.lab"),
                loopback: None,
                tls13: false,
                services: vec![service(TOMCAT_PORT), service(TFTP_PORT)],
            })
            .collect(),
        handshake_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(10),
        key_log: false,
        validation_time: None,
    }
}

/// Runs `HANDSHAKES` full handshakes, `IN_FLIGHT` at a time, cycling through `targets`;
/// returns handshakes per second.
async fn handshakes(targets: &[SocketAddr]) -> f64 {
    let connector = connector();
    let targets = Arc::new(targets.to_vec());
    let start = Instant::now();
    let mut workers = Vec::new();
    for w in 0..IN_FLIGHT {
        let connector = connector.clone();
        let targets = targets.clone();
        workers.push(tokio::spawn(async move {
            let name = ServerName::try_from("cucm.steven.lab").unwrap();
            let mut i = w;
            while i < HANDSHAKES {
                let addr = targets[i % targets.len()];
                let tcp = TcpStream::connect(addr).await.unwrap();
                tcp.set_nodelay(true).unwrap();
                let tls = tokio::time::timeout(Duration::from_secs(10), connector.connect(name.clone(), tcp))
                    .await
                    .unwrap()
                    .unwrap();
                drop(tls);
                i += IN_FLIGHT;
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    HANDSHAKES as f64 / start.elapsed().as_secs_f64()
}

/// A bare tokio-rustls server with the same identity: accept, handshake, drop.
async fn bare_server(id: &Identity) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(id.chain.clone(), id.key.clone_key())
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(tcp).await;
            });
        }
    });
    (addr, task)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let id = identity();
        println!("simulators fleet bench: ECDSA P-256 identities (one shared key), 8443 + 6972 per node");
        println!("{:>6} {:>12} {:>14} {:>12}", "nodes", "start (ms)", "RSS +MiB", "stop (ms)");
        let mut big = None;
        for n in [10usize, 100, 1000] {
            let config = fleet_config(n, &id);
            let before = rss_kib();
            let t = Instant::now();
            let fleet = Fleet::start(config).await.unwrap();
            let started = t.elapsed();
            let grown = rss_kib().saturating_sub(before);
            if n == 1000 {
                println!(
                    "{n:>6} {:>12.1} {:>14.1} {:>12}",
                    started.as_secs_f64() * 1e3,
                    grown as f64 / 1024.0,
                    "(kept)"
                );
                big = Some(fleet);
            } else {
                let t = Instant::now();
                fleet.stop().await;
                println!(
                    "{n:>6} {:>12.1} {:>14.1} {:>12.1}",
                    started.as_secs_f64() * 1e3,
                    grown as f64 / 1024.0,
                    t.elapsed().as_secs_f64() * 1e3
                );
            }
        }
        let fleet = big.unwrap();
        println!("process RSS with the 1000-node fleet up: {:.1} MiB", rss_kib() as f64 / 1024.0);

        let (bare_addr, bare_task) = bare_server(&id).await;
        // Warm-up, then the measured runs.
        handshakes(&[bare_addr]).await;
        let bare = handshakes(&[bare_addr]).await;
        let one = vec![fleet.socket("node0", TOMCAT_PORT).unwrap()];
        let one_rate = handshakes(&one).await;
        let _ = fleet.take_events();
        let all: Vec<SocketAddr> = fleet.nodes().iter().map(|n| n.services[0].addr).collect();
        let all_rate = handshakes(&all).await;
        let events = fleet.take_events().len();
        println!(
            "full TLS 1.2 handshakes/s ({HANDSHAKES} each, {IN_FLIGHT} in flight, client and server share 2 cores):"
        );
        println!("  bare rustls server/client pair : {bare:>8.0}");
        println!("  one fleet node (8443)          : {one_rate:>8.0}");
        println!("  across 1000 nodes (8443)       : {all_rate:>8.0}  ({events} events logged)");
        // The design choice: one prebuilt config per identity, picked per connection (an Arc
        // clone), against building a ServerConfig per connection.
        let key =
            Arc::new(rustls::sign::CertifiedKey::from_der(id.chain.clone(), id.key.clone_key(), &provider()).unwrap());
        let p = provider();
        let rounds = 20_000u32;
        let t = Instant::now();
        for _ in 0..rounds {
            let config = rustls::ServerConfig::builder_with_provider(p.clone())
                .with_protocol_versions(&[&rustls::version::TLS12])
                .unwrap()
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(key.clone())));
            std::hint::black_box(Arc::new(config));
        }
        let per_build = t.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
        println!(
            "ServerConfig built per connection would cost {per_build:.2} µs each \
             (a full handshake here costs {:.0} µs of the pair's time); prebuilt configs cost an Arc clone",
            1e6 / bare
        );
        bare_task.abort();
        let t = Instant::now();
        fleet.stop().await;
        println!("stop of the 1000-node fleet: {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
    });
}
