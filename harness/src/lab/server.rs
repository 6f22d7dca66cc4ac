//! The running lab ([`LabServer`]), the state of the background `lab serve` process: the
//! fleet on loopback, one Expressway-C front door per cluster peer, the appended
//! `traffic_server.log`, and what its loopback control port asks of it. [`LabServer::reload`]
//! applies the workspace's files as Save does on Expressway-C (trust-store files through
//! [`TrustStore::add_pem`] in upload order, so a second certificate with the same CN is refused
//! and named) and refreshes discovery, answering with a [`ReloadReport`];
//! [`LabServer::reissue`] re-issues a node's certificates as its administrator would;
//! [`LabServer::obey`] carries out a command of the control port.

use std::fs;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::expressway::{ExpresswaySpec, TrustStore};
use crate::fleet::{ResolvedFleet, RoleSpec};
use crate::frontdoor::FrontDoor;
use crate::pki::{KeyCache, Pki, Role, San};
use crate::verifier::{ClientIdentity, LogSettings, Session, Verifier as _, builtin::BuiltinVerifier};

use super::conf::{EXPRESSWAY_CONF, SYSTEM_SERVER_CONF, parse_expressway_conf, parse_system_server};
use super::control::{Command, ControlToken, Refused};
use super::workspace::{LabLimits, LabState, NodeState, PeerState, Workspace, write_initial};
use super::{Lab, LabError, io, warnings};

/// What `reissue` changes: which of the node's certificates, and how.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Reissue {
    /// The node.
    pub node: String,
    /// Kinds (`tomcat`, `CallManager`, ...); empty: every certificate the node serves.
    pub certs: Vec<String>,
    /// SANs to add (`dns:NAME`, `ip:ADDRESS`).
    pub san: Vec<String>,
    /// A new issuer (a CA of the lab): the certificate becomes CA-signed.
    pub issuer: Option<String>,
    /// A new subject CN (the "different CNs" remedy for CSCwa12905).
    #[serde(default)]
    pub cn: Option<String>,
    /// The node sends its intermediates from now on (the certificate uploaded to CUCM with
    /// its chain).
    #[serde(default)]
    pub send_chain: bool,
}

/// A `reissue` asked over the control port: what was done, a line per certificate, or why not.
pub type ReissueAnswer = Result<Vec<String>, Refusal>;

/// An error of the serve process as the control port carries it back to the command that
/// asked: its text (the error itself stays in the serve process). In JSON a plain string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(transparent)]
#[error("{0}")]
pub struct Refusal(pub String);

impl From<LabError> for Refusal {
    fn from(error: LabError) -> Refusal {
        Refusal(error.to_string())
    }
}

/// What `capture` wrote: the last `check`'s traffic (from its reload on) as a pcapng in the
/// workspace, and its handshake summary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaptureAnswer {
    /// The pcapng file (`<workspace>/last-check.pcapng`).
    pub path: std::path::PathBuf,
    /// TCP connections in it.
    pub connections: usize,
    /// One line per connection: who sent which certificate, which alert.
    pub handshakes: Vec<String>,
}

/// The capture file `capture` writes in the workspace.
pub const CAPTURE_FILE: &str = "last-check.pcapng";

/// One request of the login as the front door answered it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    /// `uds`, `tftp`, `imp`, `unity`.
    pub service: String,
    /// The host as advertised.
    pub host: String,
    /// 8443 or 6972.
    pub port: u16,
}

/// One peer after a reload: its discovery and the targets its front door routes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerReport {
    /// The peer.
    pub name: String,
    /// Its front door.
    pub front_door: SocketAddr,
    /// `200 OK` or `502 connect failed` with the failure.
    pub discovery: String,
    /// Whether discovery worked.
    pub discovered: bool,
    /// What the login can reach.
    pub targets: Vec<Target>,
    /// Trust-store files in force, in upload order.
    pub trusted: Vec<String>,
}

/// What a reload applied, and what it refused.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReloadReport {
    /// Errors in the edited files; nothing of that file was applied.
    pub errors: Vec<String>,
    /// Trust-store uploads Expressway-C refused, each naming its file.
    pub refused: Vec<String>,
    /// Files that must stay and are gone or refused, with why.
    pub missing: Vec<String>,
    /// What was applied or ignored without an error but cannot do what was meant: trust-store
    /// files no peer reads, unknown cipher words, IP SANs (see [`super::warnings`]). `check`
    /// shows them before its verdict; they do not change it.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// VerifyOriginServer in force.
    pub verify_origin_server: bool,
    /// Whether the traffic server verifies origins at all (X14.2+ and VerifyOriginServer On).
    pub verifies: bool,
    /// The MRA domain.
    pub domain: String,
    /// Per peer.
    pub peers: Vec<PeerReport>,
}

/// A line sink appending to `traffic_server.log`.
#[derive(Clone)]
struct LogFile(Arc<Mutex<fs::File>>);

impl LogFile {
    fn line(&self, line: &str) {
        let mut file = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // The log is for people; a full disk must not take the lab down.
        let _ = writeln!(file, "{line}");
    }
}

struct Peer {
    name: String,
    door: FrontDoor,
    session: Session,
    /// File names accepted so far, in upload order (an upload never displaces an entry).
    uploaded: Vec<String>,
}

/// A running lab: fleet, front doors, workspace.
pub struct LabServer {
    lab: Lab,
    workspace: Workspace,
    pki: Pki,
    resolved: ResolvedFleet,
    fleet: simulators::Fleet,
    peers: Vec<Peer>,
    expressway: ExpresswaySpec,
    log: LogFile,
    limits: LabLimits,
    /// What the nodes recorded since the last reload (a `check` starts with one), and when
    /// that reload began: `capture` writes it.
    last_check: simulators::Recordings,
    check_started: OffsetDateTime,
}

impl std::fmt::Debug for LabServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabServer").field("lab", &self.lab.name).finish_non_exhaustive()
    }
}

impl LabServer {
    /// Builds the PKI for now (real clients read the real clock), writes the workspace's
    /// initial files, starts the fleet and one front door per peer, and applies the files.
    /// `keep_log` appends to an existing `traffic_server.log` (a reset) rather than starting it;
    /// the front doors run with `limits`.
    pub async fn start(
        lab: Lab,
        workspace: Workspace,
        keep_log: bool,
        limits: LabLimits,
    ) -> Result<LabServer, LabError> {
        let now = OffsetDateTime::now_utc();
        let pki = Pki::build(&lab.topology, now, &KeyCache::default())?;
        let resolved = ResolvedFleet::resolve(&lab.fleet, &pki)?;
        write_initial(&lab, &workspace, &pki, &resolved)?;
        let log_path = workspace.log();
        let file = fs::OpenOptions::new()
            .create(true)
            .append(keep_log)
            .write(true)
            .truncate(!keep_log)
            .open(&log_path)
            .map_err(io(&log_path))?;
        let log = LogFile(Arc::new(Mutex::new(file)));
        let config = resolved.config(&pki)?;
        let fleet = simulators::Fleet::start(config).await.map_err(LabError::Simulator)?;
        let identity = ClientIdentity::from_pki(&pki, lab.expressway.client_cert.as_deref())?;
        let mut peers = Vec::new();
        for name in &lab.expressway.peers {
            let session = Session {
                peer: name.clone(),
                expressway: lab.expressway.clone(),
                trust: TrustStore::default(),
                client_identity: identity.clone(),
                validation_time: now,
                log: LogSettings { pid: std::process::id(), hostname: name.clone(), ..LogSettings::seed(now) },
            };
            let mut verifier = BuiltinVerifier::new(crate::verifier::Profile::ExpresswayX14_2);
            verifier.open(&session)?;
            let sink = log.clone();
            let door = FrontDoor::start_with(
                SocketAddr::from(([127, 0, 0, 1], 0)),
                Box::new(verifier),
                Default::default(),
                limits.front_door(),
                move |line| sink.line(line),
            )
            .await?;
            peers.push(Peer { name: name.clone(), door, session, uploaded: Vec::new() });
        }
        let expressway = lab.expressway.clone();
        // The nodes record what crosses their sockets (one check's worth is kept) for `capture`.
        fleet.record(true);
        let mut server = LabServer {
            lab,
            workspace,
            pki,
            resolved,
            fleet,
            peers,
            expressway,
            log,
            limits,
            last_check: simulators::Recordings::default(),
            check_started: now,
        };
        let _initial = tokio::task::block_in_place(|| server.reload());
        Ok(server)
    }

    /// The lab.
    pub fn lab(&self) -> &Lab {
        &self.lab
    }

    /// What `lab.toml` records, `control` being the control endpoint's address and `token`
    /// what its lines must start with.
    pub fn state(&self, control: SocketAddr, token: &ControlToken) -> LabState {
        LabState {
            lab: self.lab.name.clone(),
            pid: std::process::id(),
            control,
            token: token.clone(),
            limits: self.limits,
            peers: self.peers.iter().map(|p| PeerState { name: p.name.clone(), front_door: p.door.addr() }).collect(),
            nodes: self
                .resolved
                .nodes
                .iter()
                .map(|n| NodeState {
                    name: n.name.clone(),
                    fqdn: n.spec.fqdn.clone(),
                    ip: n.spec.ip.to_string(),
                    listeners: n
                        .ports
                        .iter()
                        .filter_map(|p| self.fleet.socket(&n.name, p.port).map(|s| (p.port.to_string(), s)))
                        .collect(),
                })
                .collect(),
        }
    }

    /// Re-reads `expressway.conf`, the trust-store folders and `cucm-system-server.conf`,
    /// applies what parses, and refreshes discovery on every peer. Blocking (discovery
    /// dials the publisher): call it from a blocking context.
    pub fn reload(&mut self) -> ReloadReport {
        // A check starts here: what came before is not its traffic.
        let _ = self.fleet.take_recordings();
        self.last_check = simulators::Recordings::default();
        self.check_started = OffsetDateTime::now_utc();
        let mut report = ReloadReport { domain: self.expressway.domain.clone(), ..ReloadReport::default() };
        // expressway.conf
        let path = self.workspace.expressway_conf();
        match fs::read_to_string(&path).map_err(io(&path)).and_then(|t| parse_expressway_conf(EXPRESSWAY_CONF, &t)) {
            Ok(conf) => {
                report.warnings.extend(conf.warnings);
                self.expressway.ciphers = conf.ciphers;
                self.expressway.verify_origin_server = conf.verify_origin_server.unwrap_or(true);
            }
            Err(e) => report.errors.push(format!("{e} ({EXPRESSWAY_CONF} not applied)")),
        }
        report.verify_origin_server = self.expressway.verify_origin_server;
        report.verifies = self.expressway.verifies_origins();
        // System > Server
        let path = self.workspace.system_server_conf();
        match fs::read_to_string(&path)
            .map_err(io(&path))
            .and_then(|t| parse_system_server(SYSTEM_SERVER_CONF, &t, &self.resolved))
        {
            Ok(names) => {
                for node in &mut self.resolved.nodes {
                    let name = names.get(&node.name).cloned().unwrap_or_else(|| node.spec.fqdn.clone());
                    if node.system_server() != name {
                        if let Err(e) = self.fleet.set_system_server(&node.name, &name) {
                            report.errors.push(format!("System > Server of {}: {e}", node.name));
                            continue;
                        }
                        node.spec.system_server = Some(name);
                    }
                }
            }
            Err(e) => report.errors.push(format!("{e} ({SYSTEM_SERVER_CONF} not applied)")),
        }
        // Trust stores, per peer, in upload order.
        let clustered = self.lab.clustered();
        report.warnings.extend(warnings::trust_store(&self.workspace, &self.expressway.peers, clustered));
        let publisher = self.expressway.discovery.publisher.clone();
        for peer in &mut self.peers {
            let dir = self.workspace.trust_dir(&peer.name, clustered);
            let prefix = dir.strip_prefix(&self.workspace.dir).unwrap_or(&dir).display().to_string();
            let mut files: Vec<String> = match fs::read_dir(&dir) {
                Ok(entries) => entries
                    .filter_map(Result::ok)
                    .filter(|e| e.path().is_file())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.'))
                    .collect(),
                Err(e) => {
                    report.errors.push(format!("{prefix}: {e}"));
                    Vec::new()
                }
            };
            files.sort();
            let mut order: Vec<String> = peer.uploaded.iter().filter(|f| files.contains(f)).cloned().collect();
            order.extend(files.into_iter().filter(|f| !peer.uploaded.contains(f)));
            let mut store = TrustStore::default();
            let mut accepted = Vec::new();
            for file in order {
                let shown = format!("{prefix}/{file}");
                let text = match fs::read_to_string(dir.join(&file)) {
                    Ok(text) => text,
                    Err(e) => {
                        report.refused.push(format!("{}: {shown}: {e}", peer.name));
                        continue;
                    }
                };
                // Expressway refuses a file as a whole: apply it to a copy first.
                let mut trial = store.clone();
                match trial.add_pem(&shown, &text) {
                    Ok(_) => {
                        store = trial;
                        accepted.push(file);
                    }
                    Err(refusal) => report.refused.push(format!("{}: {refusal}", peer.name)),
                }
            }
            for keep in &self.lab.keep {
                if !accepted.contains(&keep.file) {
                    report
                        .missing
                        .push(format!("{}: {prefix}/{} is no longer trusted: {}", peer.name, keep.file, keep.reason));
                }
            }
            peer.uploaded = accepted.clone();
            peer.session.trust = store;
            peer.session.expressway = self.expressway.clone();
            let session = peer.session.clone();
            let resolved = &self.resolved;
            let fleet = &self.fleet;
            let sink = self.log.clone();
            let result = peer.door.with_verifier(|verifier| -> Result<_, crate::verifier::VerifierFault> {
                verifier.reconfigure(&session, crate::verifier::Change::TrustStore)?;
                verifier.reconfigure(&session, crate::verifier::Change::Ciphers)?;
                verifier.reconfigure(&session, crate::verifier::Change::Verification)?;
                crate::frontdoor::discover(verifier, &publisher, resolved, fleet, false)
            });
            let (routes, discovery, discovered) = match result {
                Ok((routes, outcome)) => {
                    for line in &outcome.log {
                        sink.line(line);
                    }
                    let failure = outcome.failure.as_ref().map(|f| format!(": {f}")).unwrap_or_default();
                    (routes, format!("{} {}{failure}", outcome.status, outcome.reason), outcome.ok())
                }
                Err(e) => (Default::default(), format!("harness fault: {e}"), false),
            };
            let mut targets = Vec::new();
            for (host, port) in routes.keys() {
                let Some(node) = self.resolved.find_by_host(host) else { continue };
                let services: &[&str] = match (node.spec.role, port) {
                    (RoleSpec::CucmPublisher | RoleSpec::CucmSubscriber, 6972) => &["tftp"],
                    (RoleSpec::CucmPublisher | RoleSpec::CucmSubscriber, _) => &["uds"],
                    (RoleSpec::Imp, _) => &["imp"],
                    (RoleSpec::Unity, _) => &["unity"],
                };
                for service in services {
                    targets.push(Target { service: service.to_string(), host: host.clone(), port: *port });
                }
            }
            for warning in warnings::ip_sans(&self.pki, &self.resolved, &routes.keys().cloned().collect::<Vec<_>>()) {
                if !report.warnings.contains(&warning) {
                    report.warnings.push(warning);
                }
            }
            peer.door.set_routes(routes);
            report.peers.push(PeerReport {
                name: peer.name.clone(),
                front_door: peer.door.addr(),
                discovery: format!("discovery of {publisher} via {}: {discovery}", peer.name),
                discovered,
                targets,
                trusted: accepted,
            });
        }
        report
    }

    /// Re-issues a node's certificates as its administrator would (an added SAN, a CA
    /// signature), serves them from the next handshake on, and re-exports them to `certs/`.
    pub fn reissue(&mut self, change: &Reissue) -> Result<Vec<String>, LabError> {
        let node = self.resolved.node(&change.node)?.clone();
        let served: Vec<String> =
            node.ports.iter().flat_map(|p| [p.rsa.clone(), p.ecdsa.clone()]).flatten().collect::<Vec<_>>();
        let mut ids = Vec::new();
        if change.certs.is_empty() {
            for id in served {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        } else {
            for kind in &change.certs {
                let id = format!("{}/{kind}", node.name);
                if self.pki.cert(&id).is_err() {
                    let kinds: Vec<String> = self
                        .pki
                        .certs()
                        .filter_map(|c| {
                            c.identity().filter(|(n, _)| *n == node.name).map(|(_, k)| k.name().to_string())
                        })
                        .collect();
                    return Err(LabError::ReissueUnknownCert { node: node.name.clone(), kind: kind.clone(), kinds });
                }
                ids.push(id);
            }
        }
        let sans: Vec<San> = change
            .san
            .iter()
            .map(|s| s.parse::<San>().map_err(|source| LabError::ReissueSan { san: s.clone(), source }))
            .collect::<Result<_, _>>()?;
        if let Some(issuer) = &change.issuer {
            let cert = self.pki.cert(issuer)?;
            if cert.role == Role::Leaf {
                return Err(LabError::ReissueNotCa { issuer: issuer.clone() });
            }
        }
        if sans.is_empty() && change.issuer.is_none() && change.cn.is_none() && !change.send_chain {
            return Err(LabError::ReissueNothingToChange);
        }
        if let Some(cn) = &change.cn
            && (cn.is_empty() || cn.contains(char::is_whitespace))
        {
            return Err(LabError::ReissueCn { cn: cn.clone() });
        }
        let mut done = Vec::new();
        let notes = warnings::ip_san_notes(&sans);
        for id in &ids {
            let cert = self.pki.reissue(id, |spec| {
                for san in &sans {
                    if !spec.san.contains(san) {
                        spec.san.push(san.clone());
                    }
                }
                if let Some(cn) = &change.cn {
                    spec.subject.CN = Some(cn.clone());
                }
                if change.send_chain {
                    // The default: the leaf and every intermediate up to the root.
                    spec.sends = None;
                }
                if let Some(issuer) = &change.issuer {
                    spec.issuer = Some(toml::Spanned::new(0..0, issuer.clone()));
                    // A CA issues a leaf, not a CA certificate.
                    spec.ca = Some(false);
                    spec.sends = None;
                }
            })?;
            let issuer = cert.issuer.clone().unwrap_or_else(|| "itself".into());
            done.push(format!(
                "{id}: re-issued, CN {}, SAN {:?}, issuer {issuer}",
                cert.common_name().unwrap_or("(none)"),
                cert.spec.san.iter().map(|s| s.to_string()).collect::<Vec<_>>()
            ));
            if let Some((node, kind)) = cert.identity() {
                let path = self.workspace.dir.join("certs").join(node).join(format!("{}.pem", kind.name()));
                fs::write(&path, cert.pem()).map_err(io(&path))?;
            }
        }
        for port in &node.ports {
            let (rsa, ecdsa) = self.resolved.identities(&self.pki, port)?;
            self.fleet.set_identities(&node.name, port.port, rsa, ecdsa).map_err(LabError::Simulator)?;
        }
        done.extend(notes);
        Ok(done)
    }

    /// Writes the traffic since the last reload (the last `check`: its discovery and login) as
    /// a pcapng in the workspace, synthesised from what the nodes' sockets saw, with the TLS
    /// secrets inside. Blocking: call it from a blocking context inside the runtime.
    pub fn capture(&mut self) -> Result<CaptureAnswer, LabError> {
        let settle = self.fleet.settle(std::time::Duration::from_secs(10));
        tokio::runtime::Handle::current().block_on(settle);
        let recorded = self.fleet.take_recordings();
        self.last_check.connections.extend(recorded.connections);
        self.last_check.key_log.extend(recorded.key_log);
        let title = format!("lab {}: the last check", self.lab.name);
        let start = crate::capture::clock_start_ns(self.check_started);
        let capture = crate::capture::Capture::synthesised(&title, &self.last_check, start)
            .map_err(|e| LabError::Capture(Box::new(e)))?;
        let path = self.workspace.dir.join(CAPTURE_FILE);
        capture.write(&path).map_err(|e| LabError::Capture(Box::new(e)))?;
        Ok(CaptureAnswer {
            path,
            connections: capture.handshakes.len(),
            handshakes: capture.handshakes.iter().map(crate::capture::HandshakeSummary::line).collect(),
        })
    }

    /// Carries out a command of the control port: its JSON answer, and whether the lab is to
    /// stop. Blocking (a reload dials the publisher): call it from a blocking context.
    pub fn obey(&mut self, command: &Command) -> (String, bool) {
        let json = |answer: Result<String, serde_json::Error>| {
            answer.unwrap_or_else(|e| Refused::json(format!("the answer did not serialise: {e}")))
        };
        match command {
            Command::Reload => (json(serde_json::to_string(&self.reload())), false),
            Command::Reissue(change) => {
                let result: ReissueAnswer = serde_json::from_str::<Reissue>(change)
                    .map_err(|e| Refusal(e.to_string()))
                    .and_then(|change| self.reissue(&change).map_err(Refusal::from));
                (json(serde_json::to_string(&result)), false)
            }
            Command::Capture => {
                let result: Result<CaptureAnswer, Refusal> = self.capture().map_err(Refusal::from);
                (json(serde_json::to_string(&result)), false)
            }
            Command::Stop => (json(serde_json::to_string("stopping")), true),
        }
    }

    /// Stops the front doors and the fleet.
    pub async fn stop(self) {
        for peer in self.peers {
            peer.door.stop().await;
        }
        self.fleet.stop().await;
    }
}
