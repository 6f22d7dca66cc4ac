//! The container fleet's wire format: how the harness hands one node container its fleet, and
//! what the node program (`mralab-node`, `src/bin/mralab-node.rs`) answers.
//!
//! A node container runs one node of a fleet on the node's modelled address (`10.48.36.215`),
//! inside the private network namespace its run shares with the traffic server. The harness
//! writes the whole fleet ([`NodeProgramConfig`]: every node, so `/cucm-uds/servers` lists the
//! cluster as in-process; only the node served binds anything) to a file in the container, and
//! sends [`Command`]s, one JSON line each, through a FIFO. The program answers on stdout, one
//! JSON [`Reply`] per line: `ready` once every listener is bound, the node's [`NodeEvent`]s
//! (drained after the node went quiet, grouped as [`crate::Fleet::take_events`] groups them)
//! and `done` for each command. Certificates and keys travel as base64 DER: the file and the
//! FIFO live in the container, reached by root through `/proc/<pid>/root`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};

use crate::config::{CertChoice, ClientAuth, FleetConfig, Identity, KeyAlg, NodeConfig, Role, ServiceConfig};
use crate::events::NodeEvent;

/// The version of this format; the program refuses another (an image built from older
/// sources: `cargo xtask images` rebuilds it).
pub const PROTOCOL: u32 = 2;

/// Why a wire value cannot become a fleet.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Base64 that does not decode.
    #[error("{what}: not base64: {source}")]
    Base64 {
        /// Which value.
        what: String,
        /// Why.
        source: base64::DecodeError,
    },
    /// The node to serve is not in the fleet.
    #[error("node '{0}' is not in the fleet")]
    UnknownNode(String),
    /// A node served in a container needs an IPv4 modelled address.
    #[error("node '{node}': the container fleet needs an IPv4 modelled address, not {ip}")]
    NotIpv4 {
        /// The node.
        node: String,
        /// Its address.
        ip: IpAddr,
    },
    /// The program speaks another version of this format.
    #[error("protocol {got}, expected {PROTOCOL} (the image is older than the harness: cargo xtask images)")]
    Protocol {
        /// What the file said.
        got: u32,
    },
}

/// The file a node program is started with.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeProgramConfig {
    /// [`PROTOCOL`].
    pub protocol: u32,
    /// The node this program serves.
    pub serve: String,
    /// The whole fleet.
    pub fleet: WireFleet,
}

/// A [`FleetConfig`] on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireFleet {
    /// The nodes.
    pub nodes: Vec<WireNode>,
    /// [`FleetConfig::handshake_timeout`], in milliseconds.
    pub handshake_timeout_ms: u64,
    /// [`FleetConfig::idle_timeout`], in milliseconds.
    pub idle_timeout_ms: u64,
    /// [`FleetConfig::validation_time`], in seconds and nanoseconds since the epoch.
    pub validation_time: Option<(u64, u32)>,
}

/// A [`NodeConfig`] on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireNode {
    /// The name.
    pub name: String,
    /// The role.
    pub role: Role,
    /// The cluster.
    pub cluster: String,
    /// The FQDN.
    pub fqdn: String,
    /// The modelled address, bound in the container.
    pub modelled_ip: IpAddr,
    /// System > Server.
    pub system_server: String,
    /// TLS 1.3 on.
    pub tls13: bool,
    /// The listeners.
    pub services: Vec<WireService>,
}

/// A [`ServiceConfig`] on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireService {
    /// The port.
    pub port: u16,
    /// The RSA identity.
    pub rsa: Option<WireIdentity>,
    /// The ECDSA identity.
    pub ecdsa: Option<WireIdentity>,
    /// `None`: the client's order; else the server's.
    pub server_order: Option<Vec<KeyAlg>>,
    /// `off`, `request` or `require`.
    pub client_auth: String,
    /// The client-auth trust anchors, base64 DER.
    pub client_trust: Vec<String>,
}

/// An [`Identity`] on the wire: base64 DER.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireIdentity {
    /// `tomcat`.
    pub name: String,
    /// The chain as sent.
    pub chain: Vec<String>,
    /// The PKCS#8 key.
    pub key: String,
}

impl std::fmt::Debug for WireIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("WireIdentity").field("name", &self.name).finish_non_exhaustive()
    }
}

/// What the harness asks of a running node program, one JSON line each.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Command {
    /// Wait until the node is quiet (at most `settle_ms`), then send its events and `done`.
    Take {
        /// Echoed in `done`.
        seq: u64,
        /// How long to wait for open connections to finish.
        settle_ms: u64,
    },
    /// [`crate::Fleet::set_identities`].
    SetIdentities {
        /// Echoed in `done`.
        seq: u64,
        /// The port.
        port: u16,
        /// The new RSA identity.
        rsa: Option<WireIdentity>,
        /// The new ECDSA identity.
        ecdsa: Option<WireIdentity>,
    },
    /// [`crate::Fleet::set_system_server`], for any node of the fleet (the cluster list).
    SetSystemServer {
        /// Echoed in `done`.
        seq: u64,
        /// The node.
        node: String,
        /// The new name.
        name: String,
    },
}

/// What a node program says, one JSON line each.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Reply {
    /// Every listener is bound.
    Ready {
        /// [`PROTOCOL`].
        protocol: u32,
        /// The node served.
        node: String,
        /// The bound sockets.
        listening: Vec<SocketAddr>,
    },
    /// One event of the node served.
    Event(NodeEvent),
    /// One TLS key-log line (`CLIENT_RANDOM <hex> <hex>`, a TLS 1.3 label) of the node's
    /// connections since the last `take`, sent after its events: what decrypts a capture of the
    /// container fleet's traffic.
    Secret(String),
    /// A command was carried out.
    Done {
        /// The command's `seq`.
        seq: u64,
        /// For `take`: whether the node went quiet in time.
        quiet: bool,
    },
    /// A command failed.
    Failed {
        /// The command's `seq`.
        seq: u64,
        /// Why.
        error: String,
    },
}

fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

fn unb64(what: &str, text: &str) -> Result<Vec<u8>, WireError> {
    STANDARD.decode(text).map_err(|source| WireError::Base64 { what: what.to_string(), source })
}

impl WireIdentity {
    /// The identity on the wire.
    pub fn of(identity: &Identity) -> WireIdentity {
        WireIdentity {
            name: identity.name.clone(),
            chain: identity.chain.iter().map(|c| b64(c)).collect(),
            key: b64(identity.key.secret_der()),
        }
    }

    /// The identity back.
    pub fn identity(&self) -> Result<Identity, WireError> {
        let chain =
            self.chain.iter().map(|c| unb64(&self.name, c).map(CertificateDer::from)).collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(unb64(&self.name, &self.key)?));
        Ok(Identity { name: self.name.clone(), chain, key })
    }
}

impl WireFleet {
    /// The fleet on the wire.
    pub fn of(config: &FleetConfig) -> WireFleet {
        WireFleet {
            nodes: config
                .nodes
                .iter()
                .map(|n| WireNode {
                    name: n.name.clone(),
                    role: n.role,
                    cluster: n.cluster.clone(),
                    fqdn: n.fqdn.clone(),
                    modelled_ip: n.modelled_ip,
                    system_server: n.system_server.clone(),
                    tls13: n.tls13,
                    services: n.services.iter().map(WireService::of).collect(),
                })
                .collect(),
            handshake_timeout_ms: u64::try_from(config.handshake_timeout.as_millis()).unwrap_or(u64::MAX),
            idle_timeout_ms: u64::try_from(config.idle_timeout.as_millis()).unwrap_or(u64::MAX),
            validation_time: config.validation_time.map(|t| (t.as_secs(), t.subsec_nanos())),
        }
    }

    /// The fleet for the program serving `serve`: every node, but only `serve` has listeners,
    /// bound on its modelled address; the others are there for the cluster's server list.
    pub fn serving(&self, serve: &str) -> Result<FleetConfig, WireError> {
        if !self.nodes.iter().any(|n| n.name == serve) {
            return Err(WireError::UnknownNode(serve.to_string()));
        }
        let mut nodes = Vec::with_capacity(self.nodes.len());
        for n in &self.nodes {
            let served = n.name == serve;
            let loopback = if served {
                match n.modelled_ip {
                    IpAddr::V4(ip) => ip,
                    ip => return Err(WireError::NotIpv4 { node: n.name.clone(), ip }),
                }
            } else {
                Ipv4Addr::LOCALHOST
            };
            let services = if served {
                n.services.iter().map(WireService::service).collect::<Result<Vec<_>, _>>()?
            } else {
                Vec::new()
            };
            nodes.push(NodeConfig {
                name: n.name.clone(),
                role: n.role,
                cluster: n.cluster.clone(),
                fqdn: n.fqdn.clone(),
                modelled_ip: n.modelled_ip,
                system_server: n.system_server.clone(),
                loopback: Some(loopback),
                tls13: n.tls13,
                services,
            });
        }
        Ok(FleetConfig {
            nodes,
            handshake_timeout: Duration::from_millis(self.handshake_timeout_ms),
            idle_timeout: Duration::from_millis(self.idle_timeout_ms),
            key_log: false,
            validation_time: self.validation_time.map(|(s, n)| Duration::new(s, n)),
        })
    }
}

impl WireService {
    fn of(s: &ServiceConfig) -> WireService {
        let (client_auth, trust) = match &s.client_auth {
            ClientAuth::Off => ("off", &[][..]),
            ClientAuth::Request { trust } => ("request", &trust[..]),
            ClientAuth::Require { trust } => ("require", &trust[..]),
        };
        WireService {
            port: s.port,
            rsa: s.rsa.as_ref().map(WireIdentity::of),
            ecdsa: s.ecdsa.as_ref().map(WireIdentity::of),
            server_order: match &s.choice {
                CertChoice::ClientOrder => None,
                CertChoice::ServerOrder(order) => Some(order.clone()),
            },
            client_auth: client_auth.to_string(),
            client_trust: trust.iter().map(|c| b64(c)).collect(),
        }
    }

    fn service(&self) -> Result<ServiceConfig, WireError> {
        let trust = self
            .client_trust
            .iter()
            .map(|c| unb64("client trust", c).map(CertificateDer::from))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ServiceConfig {
            port: self.port,
            rsa: self.rsa.as_ref().map(WireIdentity::identity).transpose()?,
            ecdsa: self.ecdsa.as_ref().map(WireIdentity::identity).transpose()?,
            choice: match &self.server_order {
                None => CertChoice::ClientOrder,
                Some(order) => CertChoice::ServerOrder(order.clone()),
            },
            client_auth: match self.client_auth.as_str() {
                "request" => ClientAuth::Request { trust },
                "require" => ClientAuth::Require { trust },
                _ => ClientAuth::Off,
            },
        })
    }
}

impl NodeProgramConfig {
    /// Checks the version.
    pub fn check(&self) -> Result<(), WireError> {
        if self.protocol != PROTOCOL {
            return Err(WireError::Protocol { got: self.protocol });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fleet_survives_the_wire_and_only_the_served_node_binds() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let cert = rcgen::CertificateParams::new(vec!["cucm.example".into()]).expect("params").self_signed(&key);
        let cert = cert.expect("cert");
        let identity = Identity {
            name: "tomcat-ECDSA".into(),
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        };
        let node = |name: &str, ip: [u8; 4]| NodeConfig {
            name: name.into(),
            role: Role::CucmPublisher,
            cluster: "c".into(),
            fqdn: format!("{name}.example"),
            modelled_ip: IpAddr::from(ip),
            system_server: format!("{name}.example"),
            loopback: None,
            tls13: false,
            services: vec![ServiceConfig {
                port: 8443,
                rsa: None,
                ecdsa: Some(identity.clone()),
                choice: CertChoice::ServerOrder(vec![KeyAlg::Ecdsa]),
                client_auth: ClientAuth::Request { trust: vec![cert.der().clone()] },
            }],
        };
        let config =
            FleetConfig { nodes: vec![node("a", [10, 0, 0, 1]), node("b", [10, 0, 0, 2])], ..Default::default() };
        let text = serde_json::to_string(&NodeProgramConfig {
            protocol: PROTOCOL,
            serve: "b".into(),
            fleet: WireFleet::of(&config),
        })
        .expect("json");
        let back: NodeProgramConfig = serde_json::from_str(&text).expect("parse");
        back.check().expect("protocol");
        let served = back.fleet.serving("b").expect("serving");
        assert!(served.nodes[0].services.is_empty());
        assert_eq!(served.nodes[1].loopback, Some(Ipv4Addr::new(10, 0, 0, 2)));
        let svc = &served.nodes[1].services[0];
        assert_eq!(svc.ecdsa.as_ref().expect("ecdsa").chain, vec![cert.der().clone()]);
        assert_eq!(svc.choice, CertChoice::ServerOrder(vec![KeyAlg::Ecdsa]));
        assert!(matches!(&svc.client_auth, ClientAuth::Request { trust } if trust.len() == 1));
        assert!(matches!(back.fleet.serving("c"), Err(WireError::UnknownNode(_))));
    }
}
