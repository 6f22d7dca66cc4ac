//! The fleet description: which CUCM, IM&P and Unity Connection nodes exist, where they are,
//! and which certificates each serves on 8443 and 6972. This is the TOML format of a scenario's
//! `[fleet]` table and of standalone fleet files; [`ResolvedFleet::config`] turns it and a
//! built PKI into the `simulators` crate's plain [`FleetConfig`].

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use serde::Deserialize;
use simulators::{
    CertChoice, ClientAuth, FleetConfig, Identity, KeyAlg, NodeConfig, Role, ServiceConfig, TFTP_PORT, TOMCAT_PORT,
};

use crate::pki::{Pki, PkiError, Role as PkiRole};
use crate::source::did_you_mean;

/// A standalone fleet file (`cargo xtask fleet up FILE`): a topology by built-in name or
/// inline `[certs."id"]` tables, and the `[fleet]` table a scenario would hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetFile {
    /// A built-in topology name.
    #[serde(default)]
    pub topology: Option<String>,
    /// An inline topology.
    #[serde(default)]
    pub certs: Option<BTreeMap<String, crate::pki::CertSpec>>,
    /// The fleet.
    pub fleet: FleetSpec,
}

/// A fleet file that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FleetFileError {
    /// Neither a built-in name nor a readable file.
    #[error(
        "{path}: {source} (built-in fleets: {}{})",
        BUILTIN_FLEETS.join(", "),
        did_you_mean(path, BUILTIN_FLEETS)
    )]
    Read {
        /// The name or path given.
        path: String,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// Not a valid fleet file (the TOML reader's error with line and column).
    #[error("{name}: {}", crate::source::with_suggestion(&source.to_string(), &[]))]
    Parse {
        /// The file or built-in name.
        name: String,
        /// The TOML reader's error.
        source: Box<toml::de::Error>,
    },
    /// Its topology does not hold together.
    #[error(transparent)]
    Topology(#[from] PkiError),
}

/// Built-in fleet names.
pub const BUILTIN_FLEETS: [&str; 2] = ["steven-lab", "cucm-default"];

impl FleetFile {
    /// Reads a fleet file: a built-in name or a path.
    pub fn load(name_or_path: &str) -> Result<(FleetFile, crate::pki::Topology), FleetFileError> {
        let source = match name_or_path {
            "steven-lab" => {
                crate::source::Source::new("built-in:steven-lab", include_str!("../fleets/steven-lab.toml"))
            }
            "cucm-default" => {
                crate::source::Source::new("built-in:cucm-default", include_str!("../fleets/cucm-default.toml"))
            }
            path => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| FleetFileError::Read { path: path.to_string(), source })?;
                crate::source::Source::new(path, text)
            }
        };
        let file: FleetFile = toml::from_str(&source.text)
            .map_err(|e| FleetFileError::Parse { name: source.name.clone(), source: Box::new(e) })?;
        let topology =
            crate::pki::Topology::named_or_inline(file.topology.as_deref(), file.certs.as_ref(), None, &source)?;
        Ok((file, topology))
    }
}

/// A fleet: nodes by name. A node's certificates are the topology's `<name>/<kind>` ids.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSpec {
    /// Nodes by name (`cucm`, `cucm-sub1`, `cups`, `unity`).
    pub nodes: BTreeMap<String, NodeSpec>,
}

/// The product a node stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, strum::Display)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum RoleSpec {
    /// CUCM publisher: 8443 and 6972.
    CucmPublisher,
    /// CUCM subscriber: 8443 and 6972.
    CucmSubscriber,
    /// IM and Presence: 8443.
    Imp,
    /// Unity Connection: 8443.
    Unity,
}

impl RoleSpec {
    fn role(self) -> Role {
        match self {
            RoleSpec::CucmPublisher => Role::CucmPublisher,
            RoleSpec::CucmSubscriber => Role::CucmSubscriber,
            RoleSpec::Imp => Role::Imp,
            RoleSpec::Unity => Role::Unity,
        }
    }

    /// Whether the node is a CUCM node (UDS on 8443, TFTP on 6972).
    pub fn is_cucm(self) -> bool {
        matches!(self, RoleSpec::CucmPublisher | RoleSpec::CucmSubscriber)
    }
}

/// One node.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// What it is.
    pub role: RoleSpec,
    /// Its cluster (`cucm` for CUCM and IM&P nodes, `unity` for Unity by default).
    #[serde(default)]
    pub cluster: Option<String>,
    /// Its FQDN.
    pub fqdn: String,
    /// The address the real network would use; logs and snapshots show it.
    pub ip: IpAddr,
    /// CUCM System > Server: what the publisher advertises (FQDN or IP); the FQDN by default.
    #[serde(default)]
    pub system_server: Option<String>,
    /// A fixed loopback address; allocated when absent.
    #[serde(default)]
    pub loopback: Option<Ipv4Addr>,
    /// TLS 1.3 beside TLS 1.2.
    #[serde(default)]
    pub tls13: bool,
    /// Per-port settings, keyed `"8443"` / `"6972"`; the role's ports exist regardless.
    #[serde(default)]
    pub ports: BTreeMap<String, PortSpec>,
}

/// One listener's settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSpec {
    /// The RSA certificate id, `"none"` for no RSA identity; `<node>/tomcat` (8443) or
    /// `<node>/CallManager` (6972) by default.
    #[serde(default)]
    pub rsa: Option<String>,
    /// The ECDSA certificate id, `"none"` for none; the `-ECDSA` kind by default.
    #[serde(default)]
    pub ecdsa: Option<String>,
    /// `client` (follow the client's cipher order, as CUCM does), `server-ecdsa` or `server-rsa`.
    #[serde(default)]
    pub order: Option<OrderSpec>,
    /// `off`, `request` (6972's default: a CertificateRequest, anything accepted) or `require`.
    #[serde(default)]
    pub client_auth: Option<ClientAuthSpec>,
    /// CallManager-trust: certificate ids a client certificate must chain to; every root of
    /// the topology by default.
    #[serde(default)]
    pub client_trust: Option<Vec<String>>,
}

/// Whose order decides between RSA and ECDSA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, strum::Display)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum OrderSpec {
    /// The client's cipher order.
    Client,
    /// The node's own order, ECDSA first.
    ServerEcdsa,
    /// The node's own order, RSA first.
    ServerRsa,
}

/// Client certificate policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, strum::Display)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum ClientAuthSpec {
    /// No CertificateRequest.
    Off,
    /// A CertificateRequest; anything accepted.
    Request,
    /// A certificate chaining to CallManager-trust is required.
    Require,
}

/// Errors in a fleet description.
#[derive(Debug, thiserror::Error)]
pub enum FleetSpecError {
    /// A certificate id the topology lacks.
    #[error("fleet node '{node}' port {port}: field '{field}': {source}")]
    Cert {
        /// The node.
        node: String,
        /// The port.
        port: u16,
        /// `rsa`, `ecdsa` or `client_trust`.
        field: &'static str,
        /// The PKI's error.
        source: Box<PkiError>,
    },
    /// An RSA slot given an ECDSA certificate or the reverse.
    #[error("fleet node '{node}' port {port}: field '{field}' names '{cert}', whose key is {key}")]
    WrongKey {
        /// The node.
        node: String,
        /// The port.
        port: u16,
        /// `rsa` or `ecdsa`.
        field: &'static str,
        /// The certificate.
        cert: String,
        /// Its key type.
        key: String,
    },
    /// A port with no certificate at all.
    #[error(
        "fleet node '{node}' port {port} has no certificate: the topology has neither '{rsa}' nor '{ecdsa}'; name them with ports.\"{port}\".rsa / .ecdsa"
    )]
    NoIdentity {
        /// The node.
        node: String,
        /// The port.
        port: u16,
        /// The default RSA id looked for.
        rsa: String,
        /// The default ECDSA id looked for.
        ecdsa: String,
    },
    /// A port key that is not one of the role's ports.
    #[error("fleet node '{node}': ports.\"{port}\" is not a port of a {role} node (it has {ports:?})")]
    UnknownPort {
        /// The node.
        node: String,
        /// The key written.
        port: String,
        /// The role.
        role: String,
        /// The role's ports.
        ports: Vec<u16>,
    },
    /// A node name the fleet lacks.
    #[error("no node '{node}' in the fleet{suggestion}")]
    UnknownNode {
        /// The name.
        node: String,
        /// ` (did you mean ..)` or empty.
        suggestion: String,
    },
}

/// One listener, resolved to certificate ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPort {
    /// 8443 or 6972.
    pub port: u16,
    /// RSA certificate id.
    pub rsa: Option<String>,
    /// ECDSA certificate id.
    pub ecdsa: Option<String>,
    /// Who decides.
    pub order: OrderSpec,
    /// Client certificate policy.
    pub client_auth: ClientAuthSpec,
    /// CallManager-trust ids.
    pub client_trust: Vec<String>,
}

/// One node, resolved.
#[derive(Debug, Clone)]
pub struct ResolvedNode {
    /// Name.
    pub name: String,
    /// The description it came from.
    pub spec: NodeSpec,
    /// Cluster.
    pub cluster: String,
    /// Listeners.
    pub ports: Vec<ResolvedPort>,
}

impl ResolvedNode {
    /// The System > Server name in the description (the FQDN unless set).
    pub fn system_server(&self) -> String {
        self.spec.system_server.clone().unwrap_or_else(|| self.spec.fqdn.clone())
    }
}

/// One name discovery found: as advertised, the node whose server entry it is, and whether the
/// modelled network's DNS knows it.
#[derive(Debug, Clone)]
pub struct Discovered<'a> {
    /// The name as advertised (System > Server, or the IM&P / Unity server entry).
    pub name: String,
    /// The node that advertises it: which services it offers, and where its traffic goes when
    /// the name resolves.
    pub node: &'a ResolvedNode,
    /// Whether the name resolves; when it does not, no request to it connects anywhere.
    pub resolves: bool,
}

/// A fleet description checked against a PKI: every node's listeners and certificate ids.
#[derive(Debug, Clone)]
pub struct ResolvedFleet {
    /// Nodes in name order.
    pub nodes: Vec<ResolvedNode>,
}

fn role_ports(role: RoleSpec) -> Vec<u16> {
    if role.is_cucm() { vec![TOMCAT_PORT, TFTP_PORT] } else { vec![TOMCAT_PORT] }
}

impl ResolvedFleet {
    /// Checks `spec` against `pki` and fills every default.
    pub fn resolve(spec: &FleetSpec, pki: &Pki) -> Result<ResolvedFleet, FleetSpecError> {
        let roots: Vec<String> = pki.certs().filter(|c| c.role == PkiRole::Root).map(|c| c.id.clone()).collect();
        let mut nodes = Vec::new();
        for (name, node) in &spec.nodes {
            let ports = role_ports(node.role);
            for key in node.ports.keys() {
                if !key.parse::<u16>().is_ok_and(|p| ports.contains(&p)) {
                    return Err(FleetSpecError::UnknownPort {
                        node: name.clone(),
                        port: key.clone(),
                        role: node.role.to_string(),
                        ports,
                    });
                }
            }
            let mut resolved_ports = Vec::new();
            for port in ports {
                let settings = node.ports.get(&port.to_string()).cloned().unwrap_or_default();
                let (rsa_kind, ecdsa_kind) =
                    if port == TFTP_PORT { ("CallManager", "CallManager-ECDSA") } else { ("tomcat", "tomcat-ECDSA") };
                let default_rsa = format!("{name}/{rsa_kind}");
                let default_ecdsa = format!("{name}/{ecdsa_kind}");
                let pick = |given: &Option<String>, default: &str, field: &'static str, want_rsa: bool| {
                    let id = match given.as_deref() {
                        Some("none") => return Ok(None),
                        Some(id) => id.to_string(),
                        None if pki.cert(default).is_ok() => default.to_string(),
                        None => return Ok(None),
                    };
                    let cert = pki.cert(&id).map_err(|source| FleetSpecError::Cert {
                        node: name.clone(),
                        port,
                        field,
                        source: Box::new(source),
                    })?;
                    if cert.key_type().is_rsa() != want_rsa {
                        return Err(FleetSpecError::WrongKey {
                            node: name.clone(),
                            port,
                            field,
                            cert: id,
                            key: cert.key_type().to_string(),
                        });
                    }
                    Ok(Some(id))
                };
                let rsa = pick(&settings.rsa, &default_rsa, "rsa", true)?;
                let ecdsa = pick(&settings.ecdsa, &default_ecdsa, "ecdsa", false)?;
                if rsa.is_none() && ecdsa.is_none() {
                    return Err(FleetSpecError::NoIdentity {
                        node: name.clone(),
                        port,
                        rsa: default_rsa,
                        ecdsa: default_ecdsa,
                    });
                }
                let client_trust = settings.client_trust.clone().unwrap_or_else(|| roots.clone());
                for id in &client_trust {
                    pki.cert(id).map_err(|source| FleetSpecError::Cert {
                        node: name.clone(),
                        port,
                        field: "client_trust",
                        source: Box::new(source),
                    })?;
                }
                let default_auth = if port == TFTP_PORT { ClientAuthSpec::Request } else { ClientAuthSpec::Off };
                resolved_ports.push(ResolvedPort {
                    port,
                    rsa,
                    ecdsa,
                    order: settings.order.unwrap_or(OrderSpec::Client),
                    client_auth: settings.client_auth.unwrap_or(default_auth),
                    client_trust,
                });
            }
            let cluster = node
                .cluster
                .clone()
                .unwrap_or_else(|| if node.role == RoleSpec::Unity { "unity".into() } else { "cucm".into() });
            nodes.push(ResolvedNode { name: name.clone(), spec: node.clone(), cluster, ports: resolved_ports });
        }
        Ok(ResolvedFleet { nodes })
    }

    /// One node by name.
    pub fn node(&self, name: &str) -> Result<&ResolvedNode, FleetSpecError> {
        self.nodes.iter().find(|n| n.name == name).ok_or_else(|| FleetSpecError::UnknownNode {
            node: name.to_string(),
            suggestion: did_you_mean(name, self.nodes.iter().map(|n| n.name.as_str())),
        })
    }

    /// The node a name or address refers to: its FQDN, its modelled IP, or its
    /// System > Server name.
    pub fn find_by_host(&self, host: &str) -> Option<&ResolvedNode> {
        self.nodes.iter().find(|n| {
            n.spec.fqdn.eq_ignore_ascii_case(host) || n.spec.ip.to_string() == host || n.system_server() == host
        })
    }

    /// Whether the modelled network's DNS knows `host`: an IP address, or a node's FQDN. A
    /// name that is neither (a typo in CUCM's System > Server, `cucm.stevn.lab`) has no record:
    /// the traffic server's lookup fails and it never connects, whatever the certificates say.
    pub fn resolves(&self, host: &str) -> bool {
        host.parse::<std::net::IpAddr>().is_ok() || self.nodes.iter().any(|n| n.spec.fqdn.eq_ignore_ascii_case(host))
    }

    /// What discovery finds from the publisher's `/cucm-uds/servers` answer: each advertised
    /// name with the node that advertises it, in order, then the IM&P and Unity Connection
    /// nodes by the names they advertise (they have server entries of their own in
    /// Configuration > Unified Communications). Each says whether its name resolves
    /// ([`ResolvedFleet::resolves`]); one that does not is still discovered, as on Expressway-C,
    /// and every request to it fails at the name lookup. Advertised names no node answers to
    /// come back apart.
    pub fn discovered(&self, uds_servers: &str) -> (Vec<Discovered<'_>>, Vec<String>) {
        let mut found = Vec::new();
        let mut unmatched = Vec::new();
        for name in servers_in(uds_servers) {
            match self.find_by_host(&name) {
                Some(node) => found.push(Discovered { resolves: self.resolves(&name), name, node }),
                None => unmatched.push(name),
            }
        }
        for other in self.nodes.iter().filter(|n| !n.spec.role.is_cucm()) {
            let name = other.system_server();
            found.push(Discovered { resolves: self.resolves(&name), name, node: other });
        }
        (found, unmatched)
    }

    /// The identities a listener serves now, built from `pki`.
    pub fn identities(&self, pki: &Pki, port: &ResolvedPort) -> Result<(Option<Identity>, Option<Identity>), PkiError> {
        let make = |id: &Option<String>| -> Result<Option<Identity>, PkiError> {
            let Some(id) = id else { return Ok(None) };
            let cert = pki.cert(id)?;
            let name = cert.identity().map(|(_, kind)| kind.name().to_string()).unwrap_or_else(|| id.clone());
            Ok(Some(Identity { name, chain: pki.sent_chain(id)?, key: cert.private_key() }))
        };
        Ok((make(&port.rsa)?, make(&port.ecdsa)?))
    }

    /// The simulators' configuration: every node with its DER chains and keys; client
    /// certificates are checked at the PKI's validation time.
    pub fn config(&self, pki: &Pki) -> Result<FleetConfig, PkiError> {
        let mut nodes = Vec::new();
        for node in &self.nodes {
            let mut services = Vec::new();
            for port in &node.ports {
                let (rsa, ecdsa) = self.identities(pki, port)?;
                let trust = port
                    .client_trust
                    .iter()
                    .map(|id| pki.cert(id).map(|c| c.der.clone()))
                    .collect::<Result<Vec<_>, _>>()?;
                services.push(ServiceConfig {
                    port: port.port,
                    rsa,
                    ecdsa,
                    choice: match port.order {
                        OrderSpec::Client => CertChoice::ClientOrder,
                        OrderSpec::ServerEcdsa => CertChoice::ServerOrder(vec![KeyAlg::Ecdsa, KeyAlg::Rsa]),
                        OrderSpec::ServerRsa => CertChoice::ServerOrder(vec![KeyAlg::Rsa, KeyAlg::Ecdsa]),
                    },
                    client_auth: match port.client_auth {
                        ClientAuthSpec::Off => ClientAuth::Off,
                        ClientAuthSpec::Request => ClientAuth::Request { trust },
                        ClientAuthSpec::Require => ClientAuth::Require { trust },
                    },
                });
            }
            nodes.push(NodeConfig {
                name: node.name.clone(),
                role: node.spec.role.role(),
                cluster: node.cluster.clone(),
                fqdn: node.spec.fqdn.clone(),
                modelled_ip: node.spec.ip,
                system_server: node.system_server(),
                loopback: node.spec.loopback,
                tls13: node.spec.tls13,
                services,
            });
        }
        let validation_time =
            u64::try_from(pki.validation_time().unix_timestamp()).ok().map(std::time::Duration::from_secs);
        Ok(FleetConfig { nodes, validation_time, ..FleetConfig::default() })
    }
}

/// The `<server>` names of a `/cucm-uds/servers` answer, in order.
pub fn servers_in(body: &str) -> Vec<String> {
    body.split("<server>")
        .skip(1)
        .filter_map(|rest| rest.split_once("</server>").map(|(name, _)| name.trim().to_string()))
        .filter(|name| !name.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fleet of `(name, role, fqdn, ip, System > Server)` nodes, without listeners.
    fn fleet(nodes: &[(&str, RoleSpec, &str, &str, &str)]) -> ResolvedFleet {
        let nodes = nodes
            .iter()
            .map(|(name, role, fqdn, ip, system_server)| ResolvedNode {
                name: name.to_string(),
                spec: NodeSpec {
                    role: *role,
                    cluster: None,
                    fqdn: fqdn.to_string(),
                    ip: ip.parse().expect("ip"),
                    system_server: Some(system_server.to_string()),
                    loopback: None,
                    tls13: false,
                    ports: BTreeMap::new(),
                },
                cluster: "cucm".into(),
                ports: Vec::new(),
            })
            .collect();
        ResolvedFleet { nodes }
    }

    #[test]
    fn a_node_fqdn_or_any_address_resolves_and_a_misspelt_name_does_not() {
        let fleet = fleet(&[("cucm", RoleSpec::CucmPublisher, "cucm.steven.lab", "10.48.36.215", "cucm.stevn.lab")]);
        assert!(fleet.resolves("cucm.steven.lab"));
        assert!(fleet.resolves("CUCM.Steven.Lab"));
        assert!(fleet.resolves("10.48.36.215"));
        assert!(!fleet.resolves("cucm.stevn.lab"), "System > Server alone gives a name no DNS record");
        // The node that advertises the name is still found: discovery lists it.
        assert_eq!(fleet.find_by_host("cucm.stevn.lab").map(|n| n.name.as_str()), Some("cucm"));
    }

    #[test]
    fn discovery_keeps_an_unresolvable_advertised_name_and_says_so() {
        let fleet = fleet(&[
            ("cucm", RoleSpec::CucmPublisher, "cucm.steven.lab", "10.48.36.215", "cucm.stevn.lab"),
            ("cups", RoleSpec::Imp, "cups.steven.lab", "10.48.36.216", "cups.steven.lab"),
        ]);
        let body = "<servers><server>cucm.stevn.lab</server><server>ghost.steven.lab</server></servers>";
        let (found, unmatched) = fleet.discovered(body);
        let found: Vec<(&str, &str, bool)> =
            found.iter().map(|d| (d.name.as_str(), d.node.name.as_str(), d.resolves)).collect();
        assert_eq!(found, [("cucm.stevn.lab", "cucm", false), ("cups.steven.lab", "cups", true)]);
        assert_eq!(unmatched, ["ghost.steven.lab"]);
    }
}
