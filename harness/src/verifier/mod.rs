//! The `Verifier` interface: Expressway-C's traffic server, as anything that can answer
//! "what happens to this MRA request?".
//!
//! A verifier is opened with the Expressway-C configuration in force for one peer (a
//! [`Session`]), told which targets the session may request ([`ForeseenTarget`]; a hint, never a
//! promise), told of every change to it, and asked one [`OriginRequest`] at a time. Each
//! answer is an [`Outcome`]: the status the MRA client gets, the traffic server's log lines in
//! order, what the node served, and which check failed. A failed verification is an outcome;
//! only a harness fault (a verifier that cannot run, a file that cannot be written) is an `Err`.
//!
//! The built-in model ([`builtin::BuiltinVerifier`]) implements it with rustls and an
//! OpenSSL-order chain walk; a real Apache Traffic Server and external commands implement the
//! same trait.

pub mod ats;
pub mod builtin;
pub mod command;
mod factory;
pub mod log;
mod name;
mod spec;

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;

use crate::expressway::{ExpresswaySpec, TrustStore};
pub use factory::{Family, VerifierFactory};
pub use log::{LogSettings, Profile};
pub use name::name_matches;
pub use spec::{VerifierSpec, VerifierSpecError};

/// Expressway-C's own certificate and key, presented when a node asks for one (6972).
#[derive(Debug)]
pub struct ClientIdentity {
    /// The chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The key.
    pub key: PrivateKeyDer<'static>,
}

impl ClientIdentity {
    /// Expressway-C's certificate from a PKI: `id` when given (a scenario's `client_cert`),
    /// else the topology's `<peer>/expressway` certificate, if it has one.
    pub fn from_pki(pki: &crate::pki::Pki, id: Option<&str>) -> Result<Option<ClientIdentity>, crate::pki::PkiError> {
        let cert = match id {
            Some(id) => pki.cert(id)?,
            None => {
                match pki.certs().find(|c| c.identity().is_some_and(|(_, k)| k == crate::pki::CertKind::Expressway)) {
                    Some(cert) => cert,
                    None => return Ok(None),
                }
            }
        };
        Ok(Some(ClientIdentity { chain: pki.sent_chain(&cert.id)?, key: cert.private_key() }))
    }
}

impl Clone for ClientIdentity {
    fn clone(&self) -> Self {
        ClientIdentity { chain: self.chain.clone(), key: self.key.clone_key() }
    }
}

/// The Expressway-C configuration in force for one peer.
#[derive(Debug, Clone)]
pub struct Session {
    /// The peer's name (`vcsc`, `vcsc2`).
    pub peer: String,
    /// Version, ciphers, policy, attempts, discovery.
    pub expressway: ExpresswaySpec,
    /// This peer's trust store.
    pub trust: TrustStore,
    /// The client certificate for nodes that ask for one.
    pub client_identity: Option<ClientIdentity>,
    /// What "now" is for certificate validity.
    pub validation_time: OffsetDateTime,
    /// How log lines are stamped.
    pub log: LogSettings,
}

/// What changed in a session, for verifiers that reconfigure rather than reopen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The trust store.
    TrustStore,
    /// The cipher list.
    Ciphers,
    /// VerifyOriginServer, policy or properties.
    Verification,
    /// The version (an upgrade).
    Version,
}

/// Why a request is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// An MRA client's request, proxied by the traffic server.
    Mra,
    /// Expressway-C discovering a cluster from the publisher address typed in; with "TLS
    /// verify mode" On, that address is checked (SAN, validity, trusted CA) even before X14.2.
    Discovery {
        /// The server entry's TLS verify mode.
        tls_verify_mode: bool,
    },
}

/// One request to one origin.
#[derive(Debug, Clone)]
pub struct OriginRequest {
    /// The target host as the request names it: an FQDN or an IP (what is checked).
    pub host: String,
    /// The address the real network would use (what logs show).
    pub modelled_ip: IpAddr,
    /// The origin port (8443, 6972).
    pub port: u16,
    /// The loopback socket to dial.
    pub dial: SocketAddr,
    /// HTTP method.
    pub method: String,
    /// Path and query at the origin.
    pub path: String,
    /// Why the request is made.
    pub purpose: Purpose,
    /// Whether `host` resolves in the modelled network. A name no DNS server knows (a typo in
    /// CUCM's System > Server) makes the traffic server fail at the lookup: nothing is dialled
    /// and no certificate is seen. `modelled_ip` and `dial` are then meaningless (see
    /// [`OriginRequest::unresolved`]).
    pub resolves: bool,
    /// What the node's address does with a connection (a live cluster's failures). Verifiers
    /// that dial the in-process fleet are told; the container fleet's nodes really refuse or
    /// stay silent.
    pub origin_state: OriginState,
}

/// What a node's address does with a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OriginState {
    /// Its services accept.
    #[default]
    Listening,
    /// Its services are stopped: the connection is refused at once (a TCP reset).
    Refusing,
    /// The network drops packets to it: the connection is never answered, each attempt waits
    /// `connect_attempts_timeout`.
    Silent,
}

impl OriginRequest {
    /// A request to a host name the modelled network does not resolve: no address, nothing to
    /// dial (`0.0.0.0`, which no verifier may dial: it is not loopback).
    pub fn unresolved(host: &str, port: u16, method: &str, path: &str, purpose: Purpose) -> OriginRequest {
        OriginRequest {
            host: host.to_string(),
            modelled_ip: IpAddr::from([0, 0, 0, 0]),
            port,
            dial: SocketAddr::from(([0, 0, 0, 0], 0)),
            method: method.to_string(),
            path: path.to_string(),
            purpose,
            resolves: false,
            origin_state: OriginState::Listening,
        }
    }
}

/// A target a session may request: a host as it may be advertised or typed (a node's FQDN, its
/// address, its System > Server name, the discovery publisher), a port and why. Told to a
/// verifier right after [`Verifier::open`] so that one that must prepare per target (the real
/// ATS writes a remap rule each) can prepare them all at once. A hint: a request for a target
/// not foreseen must still work, and a foreseen target may never be requested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeseenTarget {
    /// The host as a request would name it.
    pub host: String,
    /// The origin port (8443, 6972).
    pub port: u16,
    /// Why it would be requested (discovery's "TLS verify mode" included).
    pub purpose: Purpose,
}

/// A certificate as the node served it, for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedCert {
    /// Subject, `KEY=value, ...`.
    pub subject: String,
    /// Issuer, same form.
    pub issuer: String,
    /// `rsa-2048`, `ecdsa-p256`, ...
    pub key: String,
    /// The certificate itself (never shown; used to find it in a PKI).
    pub der: Vec<u8>,
}

impl fmt::Display for ServedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.subject == self.issuer {
            write!(f, "{} (self-signed, {})", self.subject, self.key)
        } else {
            write!(f, "{} (issuer {}, {})", self.subject, self.issuer, self.key)
        }
    }
}

/// Which check failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The chain check, as OpenSSL reports it.
    Chain {
        /// `X509_V_ERR_*`.
        code: i32,
        /// OpenSSL's text for it.
        text: String,
        /// Depth in the built chain.
        depth: usize,
    },
    /// The name check: `checked` is not in the certificate.
    Name {
        /// The SNI or IP string that was checked.
        checked: String,
    },
    /// The handshake failed for another reason (an alert from the node, no common cipher).
    Handshake {
        /// What happened.
        reason: String,
    },
    /// The host name did not resolve: no DNS entry, nothing dialled, no certificate seen.
    Resolve {
        /// The name looked up.
        host: String,
    },
    /// No TCP connection.
    Connect {
        /// What happened.
        reason: String,
    },
    /// The request was refused before any connection (not a discovered node).
    Refused {
        /// Why.
        reason: String,
    },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Chain { code, text, depth } => write!(f, "chain: {text} (error {code} at depth {depth})"),
            Failure::Name { checked } => write!(f, "name: {checked} not in certificate"),
            Failure::Handshake { reason } => write!(f, "handshake: {reason}"),
            Failure::Resolve { host } => write!(f, "resolve: no DNS entry for {host}"),
            Failure::Connect { reason } => write!(f, "connect: {reason}"),
            Failure::Refused { reason } => write!(f, "refused: {reason}"),
        }
    }
}

impl Failure {
    /// The failure in a few words, what failed first: `error 18 at depth 0: self signed
    /// certificate`, `name 10.48.36.215 not in certificate`. For tables, where space is short.
    pub fn brief(&self) -> String {
        match self {
            Failure::Chain { code, text, depth } => format!("error {code} at depth {depth}: {text}"),
            Failure::Name { checked } => format!("name {checked} not in certificate"),
            other => other.to_string(),
        }
    }
}

/// What happened to one request.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The HTTP status the MRA client gets.
    pub status: u16,
    /// Its reason phrase (`connect failed`, or empty as stock ATS sends it).
    pub reason: String,
    /// The traffic server's log lines, in order.
    pub log: Vec<String>,
    /// Debug-only lines (stock ATS's `ssl.error` tag): shown, never compared.
    pub debug: Vec<String>,
    /// The chain the node served on the last attempt, leaf first.
    pub served: Vec<ServedCert>,
    /// Negotiated version and suite (OpenSSL names) of the last completed handshake.
    pub tls: Option<(String, String)>,
    /// The first check that failed, if any (the request may still succeed in PERMISSIVE).
    pub failure: Option<Failure>,
    /// Handshakes attempted.
    pub attempts: u32,
    /// The response body (discovery reads the node list from it).
    pub body: String,
}

impl Outcome {
    /// Whether the MRA client got a 200.
    pub fn ok(&self) -> bool {
        self.status == 200
    }

    /// The outcome on one line, as reports and the CLI show it: status, reason phrase and the
    /// failed check (`502 connect failed [chain: 18 self signed certificate at depth 0]`).
    pub fn summary(&self) -> String {
        let failure = self.failure.as_ref().map(|f| format!(" [{f}]")).unwrap_or_default();
        format!("{} {}{failure}", self.status, self.reason)
    }

    /// How many traffic server WARNING lines were logged (the verify callback's).
    pub fn warnings(&self) -> usize {
        self.log.iter().filter(|l| l.contains("] WARNING: ")).count()
    }

    /// How many ERROR lines were logged (Expressway's generation: `SSL connection failed`).
    pub fn errors(&self) -> usize {
        self.log.iter().filter(|l| l.contains("] ERROR: ")).count()
    }
}

/// A fault of the verifier itself: never a verdict.
#[derive(Debug, thiserror::Error)]
pub enum VerifierFault {
    /// The configuration cannot be used (a cipher string OpenSSL refuses, a bad key).
    #[error("verifier {verifier}: {message}")]
    Config {
        /// The verifier's name.
        verifier: String,
        /// What is wrong.
        message: String,
    },
    /// The request cannot be made at all (a target outside loopback).
    #[error("verifier {verifier}: {message}")]
    Request {
        /// The verifier's name.
        verifier: String,
        /// What is wrong.
        message: String,
    },
}

/// Expressway-C's traffic server, or anything standing in for it.
pub trait Verifier: Send {
    /// `builtin:expressway-x14.2`, `ats`, `cmd:./adapters/curl.sh`.
    fn name(&self) -> String;
    /// Starts a session with the configuration in force.
    fn open(&mut self, session: &Session) -> Result<(), VerifierFault>;
    /// Every target the session may request, told once right after [`Verifier::open`]. Nothing
    /// by default; a verifier that prepares per target prepares them here, and must still
    /// answer a request for a target not in `targets`.
    fn foresee(&mut self, targets: &[ForeseenTarget]) {
        let _ = targets;
    }
    /// The configuration changed; `session` is the new one.
    fn reconfigure(&mut self, session: &Session, change: Change) -> Result<(), VerifierFault>;
    /// Answers one request. Blocking; every network wait is bounded.
    fn request(&mut self, request: &OriginRequest) -> Result<Outcome, VerifierFault>;
    /// Starts capturing the packets of this verifier's connections to the nodes, where it can
    /// see real ones (the ats verifiers' private namespace). Nothing by default: the nodes
    /// record what crosses their sockets for every verifier, and in-process traffic is
    /// synthesised from that (`crate::capture`).
    fn capture_packets(&mut self) -> Result<(), VerifierFault> {
        Ok(())
    }
    /// The packets captured since [`Verifier::capture_packets`], with the modelled addresses;
    /// `None` from a verifier that captures none.
    fn take_packets(&mut self) -> Option<Vec<crate::capture::Frame>> {
        None
    }
    /// The fleet's nodes are containers (`--fleet containers`): reach them in `fleet`'s network
    /// namespace, at their modelled addresses, instead of dialling `OriginRequest::dial`. Told
    /// right after [`Verifier::open`]. Only a traffic server in a container can; every other
    /// verifier refuses.
    fn join_fleet(
        &mut self,
        fleet: std::sync::Arc<crate::container::nodes::ContainerFleet>,
    ) -> Result<(), VerifierFault> {
        let _ = fleet;
        Err(VerifierFault::Config {
            verifier: self.name(),
            message: "only a traffic server in a container (--verifier ats:8.1 or ats:9.2) reaches a container fleet"
                .into(),
        })
    }
}
