//! Teaching labs: a broken MRA deployment a trainee investigates with real tools and fixes as
//! in the field.
//!
//! A lab is data (`labs/<lab>.toml`: a topology, a `[fleet]`, an `[expressway]` table, the
//! symptom and three graded hints) and a sheet (`labs/<lab>.md`: objectives, symptom, debrief).
//! [`LabServer`] runs it: the fleet, one Expressway-C front door per cluster peer, and a
//! workspace of plain files the trainee edits (`expressway.conf` in `xConfiguration` syntax,
//! the `trust-store/` folder, `cucm-system-server.conf`). [`LabServer::reload`] applies those
//! files through the same paths as the model: trust-store files go through
//! [`TrustStore::add_pem`], so a second certificate with the same CN is refused and named.
//! The `xtask` crate owns processes and the command line; this module owns meaning.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::expressway::{ExpresswaySpec, TrustStore};
use crate::fleet::{FleetSpec, ResolvedFleet, RoleSpec};
use crate::frontdoor::FrontDoor;
use crate::pki::{CertSpec, KeyCache, Pki, Role, San, Topology};
use crate::source::did_you_mean;
use crate::verifier::{ClientIdentity, LogSettings, Session, Verifier as _, builtin::BuiltinVerifier};

/// Every lab: name, definition, sheet.
const CATALOGUE: [(&str, &str, &str); 6] = [
    (
        "tftp-self-signed",
        include_str!("../../../labs/tftp-self-signed.toml"),
        include_str!("../../../labs/tftp-self-signed.md"),
    ),
    (
        "advertised-by-ip",
        include_str!("../../../labs/advertised-by-ip.toml"),
        include_str!("../../../labs/advertised-by-ip.md"),
    ),
    (
        "chain-intermediates",
        include_str!("../../../labs/chain-intermediates.toml"),
        include_str!("../../../labs/chain-intermediates.md"),
    ),
    ("same-cn", include_str!("../../../labs/same-cn.toml"), include_str!("../../../labs/same-cn.md")),
    ("cipher-order", include_str!("../../../labs/cipher-order.toml"), include_str!("../../../labs/cipher-order.md")),
    (
        "cluster-peer-lacks-ca",
        include_str!("../../../labs/cluster-peer-lacks-ca.toml"),
        include_str!("../../../labs/cluster-peer-lacks-ca.md"),
    ),
];

/// The lab names, in teaching order.
pub fn names() -> Vec<&'static str> {
    CATALOGUE.iter().map(|(name, _, _)| *name).collect()
}

/// Errors of the lab machinery (never a verdict: a failing login is data).
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// No lab of that name.
    #[error("no lab '{name}'{suggestion} (labs: {known})")]
    Unknown {
        /// The name asked for.
        name: String,
        /// ` (did you mean ..?)` or empty.
        suggestion: String,
        /// The catalogue.
        known: String,
    },
    /// A lab definition that does not parse (a build bug, caught by the tests).
    #[error("lab '{lab}': {message}")]
    Definition {
        /// The lab.
        lab: String,
        /// What is wrong.
        message: String,
    },
    /// A workspace file the trainee edited does not parse.
    #[error("{file}:{line}: {message}")]
    Config {
        /// The file, relative to the workspace.
        file: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A re-issue that cannot be done.
    #[error("reissue: {0}")]
    Reissue(String),
    /// The PKI.
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    /// The fleet description.
    #[error(transparent)]
    Fleet(#[from] crate::fleet::FleetSpecError),
    /// The running fleet.
    #[error("fleet: {0}")]
    Simulator(String),
    /// The verifier.
    #[error(transparent)]
    Verifier(#[from] crate::verifier::VerifierFault),
    /// The front door.
    #[error(transparent)]
    FrontDoor(#[from] crate::frontdoor::FrontDoorError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LabError + '_ {
    move |source| LabError::Io { path: path.to_path_buf(), source }
}

/// A file the trust store must keep, and why.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeepFile {
    /// The trust-store file name.
    pub file: String,
    /// Why removing it is not a fix.
    pub reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LabFile {
    title: String,
    symptom: String,
    hints: Vec<String>,
    #[serde(default)]
    keep: Vec<KeepFile>,
    #[serde(default)]
    topology: Option<String>,
    #[serde(default)]
    certs: Option<BTreeMap<String, CertSpec>>,
    fleet: FleetSpec,
    expressway: ExpresswaySpec,
}

/// One lab, loaded.
#[derive(Debug, Clone)]
pub struct Lab {
    /// Its name (`tftp-self-signed`).
    pub name: String,
    /// One line.
    pub title: String,
    /// The symptom as a user reports it.
    pub symptom: String,
    /// Three graded hints: direction, where to look, the fix.
    pub hints: Vec<String>,
    /// Trust-store files removing which is no fix.
    pub keep: Vec<KeepFile>,
    /// The certificates.
    pub topology: Topology,
    /// The nodes.
    pub fleet: FleetSpec,
    /// Expressway-C as the lab starts.
    pub expressway: ExpresswaySpec,
    /// The sheet (`labs/<lab>.md`).
    pub sheet: &'static str,
}

impl Lab {
    /// Loads a lab of the catalogue.
    pub fn load(name: &str) -> Result<Lab, LabError> {
        let Some((name, text, sheet)) = CATALOGUE.iter().find(|(n, _, _)| *n == name) else {
            return Err(LabError::Unknown {
                name: name.to_string(),
                suggestion: did_you_mean(name, names()),
                known: names().join(", "),
            });
        };
        let definition = |message: String| LabError::Definition { lab: name.to_string(), message };
        let file: LabFile = toml::from_str(text).map_err(|e| definition(e.to_string()))?;
        if file.hints.len() != 3 {
            return Err(definition(format!("{} hints, want 3 (direction, where to look, the fix)", file.hints.len())));
        }
        let source = crate::source::Source::new(format!("labs/{name}.toml"), *text);
        let topology = Topology::named_or_inline(file.topology.as_deref(), file.certs.as_ref(), None, &source)?;
        Ok(Lab {
            name: name.to_string(),
            title: file.title,
            symptom: file.symptom,
            hints: file.hints,
            keep: file.keep,
            topology,
            fleet: file.fleet,
            expressway: file.expressway,
            sheet,
        })
    }

    /// Whether Expressway-C is a cluster (one trust-store folder per peer).
    pub fn clustered(&self) -> bool {
        self.expressway.peers.len() > 1
    }

    /// The sheet's debrief: what follows its `## Debrief` heading.
    pub fn debrief(&self) -> &str {
        self.sheet.split_once("## Debrief").map_or("", |(_, rest)| rest.trim())
    }

    /// The sheet up to the debrief: objectives and symptom.
    pub fn brief(&self) -> &str {
        self.sheet.split_once("## Debrief").map_or(self.sheet, |(before, _)| before).trim()
    }
}

/// The workspace's files, by role.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The folder.
    pub dir: PathBuf,
}

impl Workspace {
    /// `lab.toml`: the running lab's pid and addresses.
    pub fn state_file(&self) -> PathBuf {
        self.dir.join("lab.toml")
    }
    /// Expressway-C's configuration, in `xConfiguration` syntax.
    pub fn expressway_conf(&self) -> PathBuf {
        self.dir.join("expressway.conf")
    }
    /// CUCM System > Server.
    pub fn system_server_conf(&self) -> PathBuf {
        self.dir.join("cucm-system-server.conf")
    }
    /// The traffic server's log.
    pub fn log(&self) -> PathBuf {
        self.dir.join("traffic_server.log")
    }
    /// The trust-store folder of one peer.
    pub fn trust_dir(&self, peer: &str, clustered: bool) -> PathBuf {
        if clustered { self.dir.join("trust-store").join(peer) } else { self.dir.join("trust-store") }
    }
    /// Where the trainee's hint count is kept.
    pub fn hint_state(&self) -> PathBuf {
        self.dir.join(".lab").join("hints")
    }
}

/// `lab.toml`: what `check`, `hint`, `reset`, `stop` and `reissue` need to find the lab.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabState {
    /// The lab's name.
    pub lab: String,
    /// The serve process.
    pub pid: u32,
    /// Its control endpoint (one line in, one JSON answer out).
    pub control: SocketAddr,
    /// One front door per Expressway-C peer.
    pub peers: Vec<PeerState>,
    /// The nodes and where they listen.
    pub nodes: Vec<NodeState>,
}

/// One Expressway-C peer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerState {
    /// `vcsc`, `vcsc1`.
    pub name: String,
    /// Its front door (HTTP, MRA paths).
    pub front_door: SocketAddr,
}

/// One node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeState {
    /// Name.
    pub name: String,
    /// FQDN.
    pub fqdn: String,
    /// The address the real network would use.
    pub ip: String,
    /// `port -> loopback socket`.
    pub listeners: BTreeMap<String, SocketAddr>,
}

/// Expressway-C's editable settings, as `expressway.conf` holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpresswayConf {
    /// `xConfiguration Ciphers: "..."`; absent: the version's default.
    pub ciphers: Option<String>,
    /// `xConfiguration EdgeConfigServer VerifyOriginServer: On|Off`; absent: On.
    pub verify_origin_server: Option<bool>,
}

const CIPHERS: &str = "Ciphers";
const VERIFY_ORIGIN: &str = "EdgeConfigServer VerifyOriginServer";

/// Parses `expressway.conf`: blank lines, `#` comments, and `xConfiguration <setting>: <value>`
/// lines for the settings a lab supports. Anything else is an error naming the line.
pub fn parse_expressway_conf(file: &str, text: &str) -> Result<ExpresswayConf, LabError> {
    let mut conf = ExpresswayConf::default();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let error = |message: String| LabError::Config { file: file.to_string(), line, message };
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some(rest) = trimmed.strip_prefix("xConfiguration ") else {
            let first = trimmed.split_whitespace().next().unwrap_or_default();
            return Err(error(format!(
                "'{first}': only `xConfiguration <setting>: <value>` lines are read here{}",
                did_you_mean(first, ["xConfiguration"])
            )));
        };
        let Some((setting, value)) = rest.split_once(':') else {
            return Err(error(format!("'{trimmed}': missing ':' between the setting and its value")));
        };
        let setting = setting.split_whitespace().collect::<Vec<_>>().join(" ");
        let value = value.trim();
        let known = [CIPHERS, VERIFY_ORIGIN];
        let Some(key) = known.iter().find(|k| **k == setting) else {
            return Err(error(format!(
                "unknown setting '{setting}'{} (this lab reads: {})",
                did_you_mean(&setting, known),
                known.join(", ")
            )));
        };
        if let Some(first) = seen.insert(key, line) {
            return Err(error(format!("'{setting}' is set twice (first on line {first})")));
        }
        match *key {
            CIPHERS => {
                let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
                    return Err(error(format!("the Ciphers value must be quoted: Ciphers: \"{value}\"")));
                };
                crate::ciphers::CipherList::parse(inner).map_err(|e| error(e.to_string()))?;
                conf.ciphers = Some(inner.to_string());
            }
            _ => {
                conf.verify_origin_server = Some(match value.trim_matches('"') {
                    "On" | "on" => true,
                    "Off" | "off" => false,
                    other => return Err(error(format!("VerifyOriginServer must be On or Off, not '{other}'"))),
                });
            }
        }
    }
    Ok(conf)
}

/// `expressway.conf` as a lab starts.
pub fn render_expressway_conf(lab: &Lab) -> String {
    let e = &lab.expressway;
    let history = match &e.upgraded_from {
        Some(from) => format!("upgraded from {from}"),
        None => "fresh install".to_string(),
    };
    format!(
        "# Expressway-C configuration (cluster-wide) of lab '{}'. Edit, then `cargo xtask lab check`.\n\
         # Software version: {} ({history}); peers: {}. Read-only.\n\
         # Syntax as on the Expressway CLI: xConfiguration <setting>: <value>\n\
         xConfiguration {CIPHERS}: \"{}\"\n\
         xConfiguration {VERIFY_ORIGIN}: {}\n",
        lab.name,
        e.version,
        e.peers.join(", "),
        e.ciphers(),
        if e.verify_origin_server { "On" } else { "Off" }
    )
}

/// Parses `cucm-system-server.conf`: `<node>: <name>` per line.
pub fn parse_system_server(
    file: &str,
    text: &str,
    fleet: &ResolvedFleet,
) -> Result<BTreeMap<String, String>, LabError> {
    let mut out = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let error = |message: String| LabError::Config { file: file.to_string(), line, message };
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some((node, name)) = trimmed.split_once(':') else {
            return Err(error(format!("'{trimmed}': want `<node>: <host name or IP address>`")));
        };
        let (node, name) = (node.trim(), name.trim());
        if fleet.nodes.iter().all(|n| n.name != node) {
            return Err(error(format!(
                "no node '{node}'{}",
                did_you_mean(node, fleet.nodes.iter().map(|n| n.name.as_str()))
            )));
        }
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(error(format!("'{name}' is not a host name or an IP address")));
        }
        if out.insert(node.to_string(), name.to_string()).is_some() {
            return Err(error(format!("node '{node}' is listed twice")));
        }
    }
    Ok(out)
}

fn render_system_server(fleet: &ResolvedFleet) -> String {
    let mut out = String::from(
        "# CUCM System > Server: how each node is advertised to Expressway-C (`<node>: <host name or IP>`).\n\
         # Edit, then `cargo xtask lab check` (it refreshes Expressway-C's discovery).\n",
    );
    for node in &fleet.nodes {
        out.push_str(&format!("{}: {}\n", node.name, node.system_server()));
    }
    out
}

/// A trust-store file name for a certificate id (`cups/cup-xmpp` -> `cups-cup-xmpp.pem`).
pub fn file_name(id: &str) -> String {
    format!("{}.pem", id.replace('/', "-"))
}

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
}

impl std::fmt::Debug for LabServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabServer").field("lab", &self.lab.name).finish_non_exhaustive()
    }
}

impl LabServer {
    /// Builds the PKI for now (real clients read the real clock), writes the workspace's
    /// initial files, starts the fleet and one front door per peer, and applies the files.
    /// `keep_log` appends to an existing `traffic_server.log` (a reset) rather than starting it.
    pub async fn start(lab: Lab, workspace: Workspace, keep_log: bool) -> Result<LabServer, LabError> {
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
        let fleet = simulators::Fleet::start(config).await.map_err(|e| LabError::Simulator(e.to_string()))?;
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
            let door = FrontDoor::start(
                SocketAddr::from(([127, 0, 0, 1], 0)),
                Box::new(verifier),
                Default::default(),
                move |line| sink.line(line),
            )
            .await?;
            peers.push(Peer { name: name.clone(), door, session, uploaded: Vec::new() });
        }
        let expressway = lab.expressway.clone();
        let mut server = LabServer { lab, workspace, pki, resolved, fleet, peers, expressway, log };
        let _initial = tokio::task::block_in_place(|| server.reload());
        Ok(server)
    }

    /// The lab.
    pub fn lab(&self) -> &Lab {
        &self.lab
    }

    /// What `lab.toml` records, `control` being the control endpoint's address.
    pub fn state(&self, control: SocketAddr) -> LabState {
        LabState {
            lab: self.lab.name.clone(),
            pid: std::process::id(),
            control,
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
        let mut report = ReloadReport { domain: self.expressway.domain.clone(), ..ReloadReport::default() };
        // expressway.conf
        let path = self.workspace.expressway_conf();
        match fs::read_to_string(&path).map_err(io(&path)).and_then(|t| parse_expressway_conf("expressway.conf", &t)) {
            Ok(conf) => {
                self.expressway.ciphers = conf.ciphers;
                self.expressway.verify_origin_server = conf.verify_origin_server.unwrap_or(true);
            }
            Err(e) => report.errors.push(format!("{e} (expressway.conf not applied)")),
        }
        report.verify_origin_server = self.expressway.verify_origin_server;
        report.verifies = self.expressway.verifies_origins();
        // System > Server
        let path = self.workspace.system_server_conf();
        match fs::read_to_string(&path)
            .map_err(io(&path))
            .and_then(|t| parse_system_server("cucm-system-server.conf", &t, &self.resolved))
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
            Err(e) => report.errors.push(format!("{e} (cucm-system-server.conf not applied)")),
        }
        // Trust stores, per peer, in upload order.
        let clustered = self.lab.clustered();
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
                    return Err(LabError::Reissue(format!(
                        "node '{}' has no certificate '{kind}'{} (it has: {})",
                        node.name,
                        did_you_mean(kind, kinds.iter().map(String::as_str)),
                        kinds.join(", ")
                    )));
                }
                ids.push(id);
            }
        }
        let sans: Vec<San> =
            change.san.iter().map(|s| s.parse::<San>()).collect::<Result<_, _>>().map_err(LabError::Reissue)?;
        if let Some(issuer) = &change.issuer {
            let cert = self.pki.cert(issuer)?;
            if cert.role == Role::Leaf {
                return Err(LabError::Reissue(format!("'{issuer}' is not a CA of this lab")));
            }
        }
        if sans.is_empty() && change.issuer.is_none() && change.cn.is_none() && !change.send_chain {
            return Err(LabError::Reissue("nothing to change: give --san, --issuer, --cn and/or --send-chain".into()));
        }
        if let Some(cn) = &change.cn
            && (cn.is_empty() || cn.contains(char::is_whitespace))
        {
            return Err(LabError::Reissue(format!("'{cn}' is not a host name")));
        }
        let mut done = Vec::new();
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
            self.fleet
                .set_identities(&node.name, port.port, rsa, ecdsa)
                .map_err(|e| LabError::Simulator(e.to_string()))?;
        }
        Ok(done)
    }

    /// Stops the front doors and the fleet.
    pub async fn stop(self) {
        for peer in self.peers {
            peer.door.stop().await;
        }
        self.fleet.stop().await;
    }
}

/// Writes the lab's initial workspace files (certificates as exported, trust store,
/// configuration), replacing any earlier ones.
fn write_initial(lab: &Lab, workspace: &Workspace, pki: &Pki, fleet: &ResolvedFleet) -> Result<(), LabError> {
    let dir = &workspace.dir;
    fs::create_dir_all(dir).map_err(io(dir))?;
    for sub in ["certs", "trust-store", ".lab"] {
        let path = dir.join(sub);
        if path.exists() {
            fs::remove_dir_all(&path).map_err(io(&path))?;
        }
        fs::create_dir_all(&path).map_err(io(&path))?;
    }
    for cert in pki.certs() {
        let path = match cert.identity() {
            Some((node, kind)) => dir.join("certs").join(node).join(format!("{}.pem", kind.name())),
            None if cert.role != Role::Leaf => dir.join("certs").join("ca").join(format!("{}.pem", cert.id)),
            None => continue,
        };
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io(parent))?;
        }
        fs::write(&path, cert.pem()).map_err(io(&path))?;
    }
    let clustered = lab.clustered();
    for peer in &lab.expressway.peers {
        let trust = workspace.trust_dir(peer, clustered);
        fs::create_dir_all(&trust).map_err(io(&trust))?;
        for id in lab.expressway.trust_of(peer) {
            let path = trust.join(file_name(id));
            fs::write(&path, pki.cert(id)?.pem()).map_err(io(&path))?;
        }
    }
    let path = dir.join("LAB.md");
    fs::write(&path, format!("{}\n", lab.brief())).map_err(io(&path))?;
    let path = workspace.expressway_conf();
    fs::write(&path, render_expressway_conf(lab)).map_err(io(&path))?;
    let path = workspace.system_server_conf();
    fs::write(&path, render_system_server(fleet)).map_err(io(&path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_lab_loads_and_has_a_debrief() {
        for name in names() {
            let lab = Lab::load(name).unwrap_or_else(|e| panic!("{e}"));
            assert!(!lab.debrief().is_empty(), "{name}: the sheet has no `## Debrief`");
        }
    }

    #[test]
    fn expressway_conf_errors_name_the_line() {
        let text = "# c\nxConfiguration Ciphers: \"EECDH\"\nxConfiguration EdgeConfigServer VerifyOrigin: Off\n";
        let e = parse_expressway_conf("expressway.conf", text).expect_err("unknown setting");
        assert!(e.to_string().starts_with("expressway.conf:3: unknown setting"), "{e}");
        let e = parse_expressway_conf("expressway.conf", "xConfiguration Ciphers: EECDH\n").expect_err("quotes");
        assert!(e.to_string().contains(":1: the Ciphers value must be quoted"), "{e}");
        let ok = parse_expressway_conf("expressway.conf", "xConfiguration EdgeConfigServer VerifyOriginServer: Off\n")
            .expect("parses");
        assert_eq!(ok.verify_origin_server, Some(false));
    }
}
