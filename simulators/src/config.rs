//! What a fleet is made of, as the harness hands it over: nodes, their services, and for each
//! service the DER chains and PKCS#8 keys to serve. Nothing here knows about PKI topologies; the
//! harness translates a topology into these plain values, and [`crate::Fleet::start`] turns
//! them into listeners.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The product a simulated node stands for; it decides which HTTP endpoints 8443 offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Role {
    /// The CUCM publisher: UDS on 8443, TFTP over HTTPS on 6972.
    CucmPublisher,
    /// A CUCM subscriber: the same services as the publisher.
    CucmSubscriber,
    /// An IM and Presence node: UDS is absent, the EPAS SOAP endpoint is present.
    Imp,
    /// A Unity Connection node: the `vmrest` endpoint.
    Unity,
}

impl Role {
    /// Whether this node is a CUCM node (publisher or subscriber), the only kind serving UDS.
    pub fn is_cucm(self) -> bool {
        matches!(self, Role::CucmPublisher | Role::CucmSubscriber)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::CucmPublisher => "CUCM publisher",
            Role::CucmSubscriber => "CUCM subscriber",
            Role::Imp => "IM&P",
            Role::Unity => "Unity Connection",
        })
    }
}

/// The key algorithm of an identity: what decides which ECDHE suites it can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum KeyAlg {
    /// An RSA key: ECDHE-RSA suites, `rsa_pss_*` / `rsa_pkcs1_*` signatures.
    Rsa,
    /// An ECDSA key: ECDHE-ECDSA suites, `ecdsa_*` signatures.
    Ecdsa,
}

impl fmt::Display for KeyAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyAlg::Rsa => "RSA",
            KeyAlg::Ecdsa => "ECDSA",
        })
    }
}

/// One certificate a service can present: a name as CUCM's certificate list shows it, the chain
/// exactly as the server sends it, and the leaf's private key.
pub struct Identity {
    /// The name CUCM gives the certificate, e.g. `tomcat`, `tomcat-ECDSA`, `CallManager-ECDSA`.
    /// Events and [`crate::NodeInfo`] report identities by this name.
    pub name: String,
    /// Exactly what the server sends, in order: normally the leaf first, then any intermediates.
    /// The first certificate must hold the public half of `key`.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key, PKCS#8 DER.
    pub key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity { name: self.name.clone(), chain: self.chain.clone(), key: self.key.clone_key() }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("Identity")
            .field("name", &self.name)
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// How a service picks between its RSA and ECDSA identity when it has both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertChoice {
    /// Follow the client: the first suite (TLS 1.2) or signature scheme (TLS 1.3) in the
    /// client's list that an identity can serve decides. This is what real CUCM does.
    ClientOrder,
    /// Follow the server's own preference: serve the first algorithm of this list that the
    /// client can accept, e.g. `[Ecdsa, Rsa]` for the seed's 6972 after the X14.2 upgrade.
    ServerOrder(Vec<KeyAlg>),
}

/// Whether a service asks for a client certificate, and what it does with it.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// No CertificateRequest is sent.
    Off,
    /// A CertificateRequest naming the subjects of `trust` is sent; any certificate, or none, is
    /// accepted and recorded. This is CUCM's 6972 by default.
    Request {
        /// Certificates whose subjects are listed as acceptable CA names.
        trust: Vec<CertificateDer<'static>>,
    },
    /// A CertificateRequest is sent and the client must present a certificate chaining to one
    /// of `trust` (CUCM's CallManager-trust); otherwise the handshake fails with an alert.
    Require {
        /// The trust anchors a client certificate must chain to.
        trust: Vec<CertificateDer<'static>>,
    },
}

/// One TLS listener of a node.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The modelled port, also the port bound on the node's loopback address: 8443 (Tomcat,
    /// UDS and friends) or 6972 (TFTP over HTTPS). Any other port serves only 404s.
    pub port: u16,
    /// The RSA identity (`tomcat`, `CallManager`), if the node has one.
    pub rsa: Option<Identity>,
    /// The ECDSA identity (`tomcat-ECDSA`, `CallManager-ECDSA`), if the node has one.
    pub ecdsa: Option<Identity>,
    /// How to choose when both identities exist.
    pub choice: CertChoice,
    /// Whether a CertificateRequest is sent, and how a client certificate is judged.
    pub client_auth: ClientAuth,
}

/// One simulated node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// A name unique within the fleet, used to address the node in the API and events.
    pub name: String,
    /// The product the node stands for.
    pub role: Role,
    /// The cluster the node belongs to; `/cucm-uds/servers` lists the nodes sharing it.
    pub cluster: String,
    /// The node's FQDN, e.g. `cucm.steven.lab`.
    pub fqdn: String,
    /// The address the real network would use (`10.48.36.215`): shown, never bound.
    pub modelled_ip: IpAddr,
    /// The name CUCM's System > Server advertises for this node: an FQDN or an IP string.
    pub system_server: String,
    /// The loopback address to bind; `None` lets the fleet allocate one that no other fleet in
    /// this or another process uses.
    pub loopback: Option<Ipv4Addr>,
    /// Whether TLS 1.3 is enabled beside TLS 1.2 (the seed's captures are TLS 1.2 only).
    pub tls13: bool,
    /// The node's listeners.
    pub services: Vec<ServiceConfig>,
}

/// A whole fleet and the limits every node applies.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// The nodes, in the order [`crate::Fleet::nodes`] and [`crate::Fleet::take_events`] report.
    pub nodes: Vec<NodeConfig>,
    /// How long a client may take from connecting to a completed handshake.
    pub handshake_timeout: Duration,
    /// How long an established connection may sit without a complete request.
    pub idle_timeout: Duration,
    /// Whether to write TLS secrets to the file named by `SSLKEYLOGFILE`, for Wireshark.
    pub key_log: bool,
    /// The time client certificates on 6972 are checked at, as a duration since the Unix
    /// epoch; the real clock when `None`. A scenario pins it to its validation time.
    pub validation_time: Option<Duration>,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            nodes: Vec::new(),
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            key_log: false,
            validation_time: None,
        }
    }
}
