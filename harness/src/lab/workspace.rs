//! The lab's workspace: a folder of plain files the trainee reads and edits ([`Workspace`]
//! names each by role), the initial files a lab starts with (certificates as exported from
//! each node, the trust-store folders, the configuration files, the sheet), and `lab.toml`
//! ([`LabState`]): the running lab's pid and addresses, through which every command but
//! `start` finds it.

use std::collections::BTreeMap;
use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::fleet::ResolvedFleet;
use crate::pki::{Pki, Role};

use super::conf::{EXPRESSWAY_CONF, SYSTEM_SERVER_CONF, file_name, render_expressway_conf, render_system_server};
use super::{Lab, LabError, io};

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
        self.dir.join(EXPRESSWAY_CONF)
    }
    /// CUCM System > Server.
    pub fn system_server_conf(&self) -> PathBuf {
        self.dir.join(SYSTEM_SERVER_CONF)
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
    /// Whether the folder holds files and is no lab's workspace. A lab replaces `certs/` and
    /// `trust-store/`: that must never happen to a folder of someone's own.
    pub fn is_foreign(&self) -> bool {
        self.dir.read_dir().is_ok_and(|mut entries| entries.next().is_some())
            && !self.dir.join(".lab").is_dir()
            && !self.state_file().exists()
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

/// Writes the lab's initial workspace files (certificates as exported, trust store,
/// configuration), replacing any earlier ones.
pub(super) fn write_initial(
    lab: &Lab,
    workspace: &Workspace,
    pki: &Pki,
    fleet: &ResolvedFleet,
) -> Result<(), LabError> {
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
