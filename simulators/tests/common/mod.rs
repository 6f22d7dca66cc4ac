//! Shared test fixtures: the seed's lab certificates made with rcgen, fleets built from them,
//! and the real `openssl s_client` / `curl` as clients, each bounded by a timeout.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use simulators::{CertChoice, ClientAuth, Fleet, FleetConfig, Identity, NodeConfig, NodeEvent, Role, ServiceConfig};

/// The one RSA-2048 key every RSA leaf shares: generation costs up to 130 ms.
pub fn rsa_key() -> KeyPair {
    static PEM: OnceLock<String> = OnceLock::new();
    let pem = PEM.get_or_init(|| KeyPair::generate_for(&PKCS_RSA_SHA256).unwrap().serialize_pem());
    KeyPair::from_pem(pem).unwrap()
}

pub fn ec_key() -> KeyPair {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap()
}

fn params(cn: &str, sans: &[&str], ca: bool) -> CertificateParams {
    let mut p = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CountryName, "BE");
    p.distinguished_name.push(DnType::OrganizationName, "Cisco");
    p.distinguished_name.push(DnType::CommonName, cn);
    if ca {
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    }
    p
}

/// A certificate with its key, as the tests hand it around.
pub struct Made {
    pub der: CertificateDer<'static>,
    pub key: KeyPair,
}

impl Made {
    pub fn pem(&self) -> String {
        format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", base64(self.der.as_ref()))
    }

    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()))
    }

    pub fn identity(&self, name: &str, chain_extra: &[&Made]) -> Identity {
        let mut chain = vec![self.der.clone()];
        chain.extend(chain_extra.iter().map(|m| m.der.clone()));
        Identity { name: name.to_owned(), chain, key: self.key_der() }
    }
}

fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for (i, chunk) in bytes.chunks(3).enumerate() {
        if i > 0 && i % 16 == 0 {
            out.push('\n');
        }
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(T[((n >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The seed's lab: a CA, a CA-signed RSA `tomcat`/`CallManager`, self-signed ECDSA variants.
pub struct Lab {
    pub ca: Made,
    pub tomcat: Made,
    pub tomcat_ecdsa: Made,
    pub callmanager: Made,
    pub callmanager_ecdsa: Made,
}

pub fn self_signed(cn: &str, sans: &[&str], key: KeyPair) -> Made {
    let der = params(cn, sans, false).self_signed(&key).unwrap().der().clone();
    Made { der, key }
}

pub fn ca(cn: &str) -> Made {
    let key = ec_key();
    let der = params(cn, &[], true).self_signed(&key).unwrap().der().clone();
    Made { der, key }
}

pub fn signed(cn: &str, sans: &[&str], key: KeyPair, issuer_cn: &str, issuer: &Made) -> Made {
    let issuer_params = params(issuer_cn, &[], true);
    let issuer = Issuer::from_params(&issuer_params, &issuer.key);
    let der = params(cn, sans, false).signed_by(&key, &issuer).unwrap().der().clone();
    Made { der, key }
}

impl Lab {
    pub fn new() -> Lab {
        let ca = ca("steven-DC-CA");
        let sans =
            ["cucm.steven.lab", "cucm-ms.steven.lab", "cucm-sub.steven.lab", "imp.steven.lab", "unity.steven.lab"];
        let tomcat = signed("cucm-ms.steven.lab", &sans, rsa_key(), "steven-DC-CA", &ca);
        let callmanager = signed("cucm.steven.lab", &sans, rsa_key(), "steven-DC-CA", &ca);
        let tomcat_ecdsa = self_signed("cucm-EC.steven.lab", &["cucm.steven.lab"], ec_key());
        let callmanager_ecdsa = self_signed("cucm-EC.steven.lab", &["cucm.steven.lab"], ec_key());
        Lab { ca, tomcat, tomcat_ecdsa, callmanager, callmanager_ecdsa }
    }

    pub fn tomcat_service(&self) -> ServiceConfig {
        ServiceConfig {
            port: 8443,
            rsa: Some(self.tomcat.identity("tomcat", &[&self.ca])),
            ecdsa: Some(self.tomcat_ecdsa.identity("tomcat-ECDSA", &[])),
            choice: CertChoice::ClientOrder,
            client_auth: ClientAuth::Off,
        }
    }

    pub fn tftp_service(&self, client_auth: ClientAuth) -> ServiceConfig {
        ServiceConfig {
            port: 6972,
            rsa: Some(self.callmanager.identity("CallManager", &[&self.ca])),
            ecdsa: Some(self.callmanager_ecdsa.identity("CallManager-ECDSA", &[])),
            choice: CertChoice::ClientOrder,
            client_auth,
        }
    }

    pub fn node(&self, name: &str, role: Role, services: Vec<ServiceConfig>) -> NodeConfig {
        NodeConfig {
            name: name.to_owned(),
            role,
            cluster: "steven".to_owned(),
            fqdn: "cucm.steven.lab".to_owned(),
            modelled_ip: IpAddr::from([10, 48, 36, 215]),
            system_server: "cucm.steven.lab".to_owned(),
            loopback: None,
            tls13: false,
            services,
        }
    }
}

pub fn fleet_config(nodes: Vec<NodeConfig>) -> FleetConfig {
    FleetConfig {
        nodes,
        handshake_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(5),
        key_log: false,
        validation_time: None,
    }
}

pub async fn start(nodes: Vec<NodeConfig>) -> Fleet {
    within(Fleet::start(fleet_config(nodes))).await.unwrap()
}

/// Every network await in these tests goes through this.
pub async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f).await.expect("timed out")
}

/// The output of a command run off the runtime, killed after 15 s.
pub struct Output {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

pub async fn run(program: &str, args: Vec<String>) -> Output {
    let program = program.to_owned();
    within(tokio::task::spawn_blocking(move || {
        let out = Command::new("timeout")
            .arg("15")
            .arg(&program)
            .args(&args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        Output {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }))
    .await
    .unwrap()
}

/// `openssl s_client -connect <addr> <extra...> </dev/null`.
pub async fn s_client(addr: SocketAddr, extra: &[&str]) -> Output {
    let mut args = vec!["s_client".to_owned(), "-connect".to_owned(), addr.to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    run("openssl", args).await
}

/// The subject line s_client prints for the server certificate.
pub fn served_subject(out: &Output) -> String {
    out.stdout
        .lines()
        .find(|l| l.starts_with("subject="))
        .unwrap_or_else(|| panic!("no subject in s_client output:\n{}", out.all()))
        .to_owned()
}

pub fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

/// The `Display` lines of a node's events, for exact comparisons.
pub fn lines(events: &[NodeEvent]) -> Vec<String> {
    events.iter().map(|e| e.kind.to_string()).collect()
}

/// Waits (bounded) until the node's log holds a line containing `needle`: the server logs a
/// handshake asynchronously after the client has seen it complete.
pub async fn wait_for_event(fleet: &Fleet, node: &str, needle: &str) -> Vec<NodeEvent> {
    within(async {
        loop {
            let events = fleet.events(node);
            if events.iter().any(|e| e.kind.to_string().contains(needle)) {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

/// `curl` through `--resolve <fqdn>:<port>:<loopback>`, trusting `ca_file`, asking for an
/// ECDHE-RSA suite (the CA-signed RSA certificates). Returns the status and the body.
pub async fn curl(addr: SocketAddr, fqdn: &str, ca_file: &Path, method: &str, path: &str) -> (u16, String) {
    let port = addr.port();
    let mut args = vec![
        "-sS".to_owned(),
        "--max-time".to_owned(),
        "10".to_owned(),
        "--resolve".to_owned(),
        format!("{fqdn}:{port}:{}", addr.ip()),
        "--cacert".to_owned(),
        ca_file.to_str().unwrap().to_owned(),
        "--ciphers".to_owned(),
        "ECDHE-RSA-AES256-GCM-SHA384".to_owned(),
        "-X".to_owned(),
        method.to_owned(),
        "-w".to_owned(),
        "\n%{http_code}".to_owned(),
    ];
    if method == "POST" {
        args.push("-d".to_owned());
        args.push("<login/>".to_owned());
    }
    args.push(format!("https://{fqdn}:{port}{path}"));
    let out = run("curl", args).await;
    let (body, status) = out.stdout.rsplit_once('\n').unwrap_or_else(|| panic!("curl failed: {}", out.all()));
    (status.trim().parse().unwrap_or_else(|_| panic!("curl: {}", out.all())), body.to_owned())
}

/// A client verifier that accepts any server certificate: these tests look at what the node
/// serves and logs, not at whether a client would trust it.
#[derive(Debug)]
pub struct DangerAcceptAnyServerCert(pub std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for DangerAcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A rustls client (aws-lc-rs provider, TLS 1.2 and 1.3) that trusts anything.
pub fn danger_client() -> tokio_rustls::TlsConnector {
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(DangerAcceptAnyServerCert(provider)))
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
}
