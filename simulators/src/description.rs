//! The fleet description file: TOML that names nodes, ports and *certificate names*
//! (`tomcat`, `CallManager-ECDSA`), never PEM. The harness resolves those names against a
//! PKI topology into [`Identity`] values, which keeps this crate free of topology types; a
//! scenario file reuses the same table unchanged as its `[fleet]`.
//!
//! ```toml
//! [[nodes]]
//! name = "cucm-pub"
//! role = "cucm-publisher"
//! cluster = "steven"
//! fqdn = "cucm.steven.lab"
//! modelled_ip = "10.48.36.215"
//! system_server = "10.48.36.215"   # default: the FQDN
//!
//! [[nodes.services]]
//! port = 8443
//! rsa = "tomcat"
//! ecdsa = "tomcat-ECDSA"
//!
//! [[nodes.services]]
//! port = 6972
//! rsa = "CallManager"
//! ecdsa = "CallManager-ECDSA"
//! order = ["ECDSA", "RSA"]         # default: "client"
//! client_auth = "request"          # off | request | require
//! trust = ["steven-DC-CA"]
//! ```

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use serde::Deserialize;

use crate::config::{CertChoice, ClientAuth, FleetConfig, Identity, KeyAlg, NodeConfig, Role, ServiceConfig};

/// Why a description could not be read or resolved. Messages name the node and the name.
#[derive(Debug, thiserror::Error)]
pub enum DescriptionError {
    /// The TOML is malformed or has unknown fields.
    #[error("fleet description: {0}")]
    Parse(#[from] toml::de::Error),
    /// A certificate name the resolver does not know.
    #[error("node '{node}' port {port}: unknown identity '{name}'")]
    UnknownIdentity {
        /// The node.
        node: String,
        /// The port.
        port: u16,
        /// The name that did not resolve.
        name: String,
    },
    /// A trust certificate name the resolver does not know.
    #[error("node '{node}' port {port}: unknown trust certificate '{name}'")]
    UnknownTrust {
        /// The node.
        node: String,
        /// The port.
        port: u16,
        /// The name that did not resolve.
        name: String,
    },
    /// `trust` given while `client_auth = "off"`: almost certainly a mistake.
    #[error("node '{node}' port {port}: trust is set but client_auth is off")]
    TrustWithoutClientAuth {
        /// The node.
        node: String,
        /// The port.
        port: u16,
    },
}

/// A whole fleet as written in a file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetDescription {
    /// Handshake timeout in milliseconds (default 10,000).
    #[serde(default)]
    pub handshake_timeout_ms: Option<u64>,
    /// Idle timeout in milliseconds (default 30,000).
    #[serde(default)]
    pub idle_timeout_ms: Option<u64>,
    /// Honour `SSLKEYLOGFILE` (default false).
    #[serde(default)]
    pub key_log: bool,
    /// The nodes.
    pub nodes: Vec<NodeDescription>,
}

/// One node as written in a file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeDescription {
    /// Unique name.
    pub name: String,
    /// `cucm-publisher`, `cucm-subscriber`, `imp` or `unity`.
    pub role: RoleName,
    /// Cluster name.
    pub cluster: String,
    /// FQDN.
    pub fqdn: String,
    /// The address the real network would use.
    pub modelled_ip: IpAddr,
    /// System > Server name; the FQDN when absent.
    #[serde(default)]
    pub system_server: Option<String>,
    /// A fixed loopback address; allocated when absent.
    #[serde(default)]
    pub loopback: Option<Ipv4Addr>,
    /// Enable TLS 1.3 beside TLS 1.2.
    #[serde(default)]
    pub tls13: bool,
    /// The node's listeners.
    pub services: Vec<ServiceDescription>,
}

/// A role as written in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoleName {
    /// [`Role::CucmPublisher`].
    CucmPublisher,
    /// [`Role::CucmSubscriber`].
    CucmSubscriber,
    /// [`Role::Imp`].
    Imp,
    /// [`Role::Unity`].
    Unity,
}

impl From<RoleName> for Role {
    fn from(r: RoleName) -> Role {
        match r {
            RoleName::CucmPublisher => Role::CucmPublisher,
            RoleName::CucmSubscriber => Role::CucmSubscriber,
            RoleName::Imp => Role::Imp,
            RoleName::Unity => Role::Unity,
        }
    }
}

/// An algorithm as written in a server order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum AlgName {
    /// [`KeyAlg::Rsa`].
    #[serde(rename = "RSA")]
    Rsa,
    /// [`KeyAlg::Ecdsa`].
    #[serde(rename = "ECDSA")]
    Ecdsa,
}

/// `order = "client"` or `order = ["ECDSA", "RSA"]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum OrderDescription {
    /// The literal `"client"`.
    Client(ClientWord),
    /// A server order.
    Server(Vec<AlgName>),
}

/// The word `client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientWord {
    /// Follow the client's order.
    Client,
}

impl Default for OrderDescription {
    fn default() -> Self {
        OrderDescription::Client(ClientWord::Client)
    }
}

/// `client_auth` as written in a file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuthName {
    /// No CertificateRequest.
    #[default]
    Off,
    /// CertificateRequest, anything accepted.
    Request,
    /// CertificateRequest, must chain to `trust`.
    Require,
}

/// One listener as written in a file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceDescription {
    /// 8443 or 6972.
    pub port: u16,
    /// Name of the RSA identity.
    #[serde(default)]
    pub rsa: Option<String>,
    /// Name of the ECDSA identity.
    #[serde(default)]
    pub ecdsa: Option<String>,
    /// Certificate choice.
    #[serde(default)]
    pub order: OrderDescription,
    /// Client authentication.
    #[serde(default)]
    pub client_auth: ClientAuthName,
    /// Names of the certificates whose subjects the CertificateRequest lists.
    #[serde(default)]
    pub trust: Vec<String>,
}

impl FleetDescription {
    /// Parses a description, refusing unknown fields.
    pub fn from_toml(text: &str) -> Result<Self, DescriptionError> {
        Ok(toml::from_str(text)?)
    }

    /// Turns names into certificates: `identity` maps a certificate name to the chain and key
    /// the node serves, `certificate` maps a trust name to a certificate.
    pub fn resolve(
        &self,
        identity: &dyn Fn(&str) -> Option<Identity>,
        certificate: &dyn Fn(&str) -> Option<CertificateDer<'static>>,
    ) -> Result<FleetConfig, DescriptionError> {
        let defaults = FleetConfig::default();
        let mut nodes = Vec::with_capacity(self.nodes.len());
        for n in &self.nodes {
            let mut services = Vec::with_capacity(n.services.len());
            for s in &n.services {
                let find = |name: &Option<String>| -> Result<Option<Identity>, DescriptionError> {
                    name.as_ref()
                        .map(|name| {
                            identity(name).ok_or_else(|| DescriptionError::UnknownIdentity {
                                node: n.name.clone(),
                                port: s.port,
                                name: name.clone(),
                            })
                        })
                        .transpose()
                };
                let trust = s
                    .trust
                    .iter()
                    .map(|name| {
                        certificate(name).ok_or_else(|| DescriptionError::UnknownTrust {
                            node: n.name.clone(),
                            port: s.port,
                            name: name.clone(),
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let client_auth = match s.client_auth {
                    ClientAuthName::Off if !trust.is_empty() => {
                        return Err(DescriptionError::TrustWithoutClientAuth { node: n.name.clone(), port: s.port });
                    }
                    ClientAuthName::Off => ClientAuth::Off,
                    ClientAuthName::Request => ClientAuth::Request { trust },
                    ClientAuthName::Require => ClientAuth::Require { trust },
                };
                let choice = match &s.order {
                    OrderDescription::Client(_) => CertChoice::ClientOrder,
                    OrderDescription::Server(algs) => CertChoice::ServerOrder(
                        algs.iter()
                            .map(|a| match a {
                                AlgName::Rsa => KeyAlg::Rsa,
                                AlgName::Ecdsa => KeyAlg::Ecdsa,
                            })
                            .collect(),
                    ),
                };
                services.push(ServiceConfig {
                    port: s.port,
                    rsa: find(&s.rsa)?,
                    ecdsa: find(&s.ecdsa)?,
                    choice,
                    client_auth,
                });
            }
            nodes.push(NodeConfig {
                name: n.name.clone(),
                role: n.role.into(),
                cluster: n.cluster.clone(),
                fqdn: n.fqdn.clone(),
                modelled_ip: n.modelled_ip,
                system_server: n.system_server.clone().unwrap_or_else(|| n.fqdn.clone()),
                loopback: n.loopback,
                tls13: n.tls13,
                services,
            });
        }
        Ok(FleetConfig {
            nodes,
            handshake_timeout: self.handshake_timeout_ms.map_or(defaults.handshake_timeout, Duration::from_millis),
            idle_timeout: self.idle_timeout_ms.map_or(defaults.idle_timeout, Duration::from_millis),
            key_log: self.key_log,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    use super::*;

    const STEVEN_LAB: &str = r#"
        [[nodes]]
        name = "cucm-pub"
        role = "cucm-publisher"
        cluster = "steven"
        fqdn = "cucm.steven.lab"
        modelled_ip = "10.48.36.215"
        system_server = "10.48.36.215"

        [[nodes.services]]
        port = 8443
        rsa = "tomcat"
        ecdsa = "tomcat-ECDSA"

        [[nodes.services]]
        port = 6972
        rsa = "CallManager"
        ecdsa = "CallManager-ECDSA"
        order = ["ECDSA", "RSA"]
        client_auth = "request"
        trust = ["steven-DC-CA"]
    "#;

    fn identity(name: &str) -> Option<Identity> {
        Some(Identity {
            name: name.to_owned(),
            chain: vec![CertificateDer::from(vec![1, 2, 3])],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(vec![0x30, 0x00])),
        })
    }

    fn certificate(name: &str) -> Option<CertificateDer<'static>> {
        (name == "steven-DC-CA").then(|| CertificateDer::from(vec![4, 5, 6]))
    }

    #[test]
    fn the_steven_lab_description_resolves_to_the_seed_fleet() {
        let d = FleetDescription::from_toml(STEVEN_LAB).unwrap();
        let config = d.resolve(&identity, &certificate).unwrap();
        let node = &config.nodes[0];
        assert_eq!(node.role, Role::CucmPublisher);
        assert_eq!(node.system_server, "10.48.36.215");
        assert!(!node.tls13);
        assert_eq!(node.services[0].choice, CertChoice::ClientOrder);
        assert_eq!(node.services[1].choice, CertChoice::ServerOrder(vec![KeyAlg::Ecdsa, KeyAlg::Rsa]));
        assert!(matches!(&node.services[1].client_auth, ClientAuth::Request { trust } if trust.len() == 1));
        assert_eq!(node.services[1].ecdsa.as_ref().unwrap().name, "CallManager-ECDSA");
        assert_eq!(config.handshake_timeout, Duration::from_secs(10));
    }

    #[test]
    fn unknown_fields_and_names_are_errors_naming_them() {
        let typo = STEVEN_LAB.replace("modelled_ip", "modeled_ip");
        assert!(FleetDescription::from_toml(&typo).unwrap_err().to_string().contains("modeled_ip"));

        let d = FleetDescription::from_toml(&STEVEN_LAB.replace("\"tomcat-ECDSA\"", "\"tomcat-ECSDA\"")).unwrap();
        let none = |_: &str| None;
        let err = d.resolve(&none, &certificate).unwrap_err();
        assert_eq!(err.to_string(), "node 'cucm-pub' port 8443: unknown identity 'tomcat'");

        let d = FleetDescription::from_toml(&STEVEN_LAB.replace("\"steven-DC-CA\"", "\"other-CA\"")).unwrap();
        let err = d.resolve(&identity, &certificate).unwrap_err();
        assert_eq!(err.to_string(), "node 'cucm-pub' port 6972: unknown trust certificate 'other-CA'");
    }
}
