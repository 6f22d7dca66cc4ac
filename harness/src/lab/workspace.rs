//! The lab's workspace: a folder of plain files the trainee reads and edits ([`Workspace`]
//! names each by role), the initial files a lab starts with (certificates as exported from
//! each node, the trust-store folders, the configuration files, the sheet), and `lab.toml`
//! ([`LabState`]): the running lab's pid, addresses, control token and limits, through which
//! every command but `start` finds it. `lab.toml` is written with mode 0600: its token is what
//! lets a local process command the lab.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::fleet::ResolvedFleet;
use crate::frontdoor::FrontDoorSettings;
use crate::pki::{Pki, Role};

use super::conf::{EXPRESSWAY_CONF, SYSTEM_SERVER_CONF, file_name, render_expressway_conf, render_system_server};
use super::control::{ControlError, ControlSettings, ControlToken, loopback_only};
use super::{Lab, LabError, io};

/// The workspace's files, by role.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The folder.
    pub dir: PathBuf,
}

impl Workspace {
    /// `lab.toml`: the running lab's pid, addresses and control token.
    pub fn state_file(&self) -> PathBuf {
        self.dir.join("lab.toml")
    }
    /// Writes `lab.toml` whole or not at all (a temporary file renamed over it), readable and
    /// writable by its owner only (mode 0600): it holds the control token.
    pub fn write_state(&self, state: &LabState) -> Result<(), LabError> {
        let text = toml::to_string(state)
            .map_err(|e| LabError::Definition { lab: state.lab.clone(), message: format!("lab.toml: {e}") })?;
        let temp = self.dir.join(".lab.toml.tmp");
        // A leftover of a crash may have other permissions: start from a new file.
        let _ = fs::remove_file(&temp);
        let mut file =
            fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp).map_err(io(&temp))?;
        file.write_all(text.as_bytes()).map_err(io(&temp))?;
        drop(file);
        let path = self.state_file();
        fs::rename(&temp, &path).map_err(io(&path))
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
    /// What every control line starts with. Missing in a `lab.toml` written before tokens
    /// existed: the empty token then opens nothing on a lab of today, and a lab of then
    /// ignores it.
    #[serde(default)]
    pub token: ControlToken,
    /// The limits the serve process runs with (`reset` restarts it with the same).
    #[serde(default)]
    pub limits: LabLimits,
    /// One front door per Expressway-C peer.
    pub peers: Vec<PeerState>,
    /// The nodes and where they listen.
    pub nodes: Vec<NodeState>,
}

impl LabState {
    /// Refuses, before anything is dialled, a `lab.toml` whose control port or front doors
    /// are not on 127.0.0.0/8: lab commands dial loopback only, whatever the file says.
    pub fn check_loopback(&self) -> Result<(), ControlError> {
        loopback_only("the control port in lab.toml", self.control)?;
        for peer in &self.peers {
            loopback_only(&format!("the front door of {} in lab.toml", peer.name), peer.front_door)?;
        }
        Ok(())
    }
}

/// How long the serve process waits for its clients and how many it serves at once, in
/// `lab.toml`'s words (milliseconds). `lab start` takes each as an option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LabLimits {
    /// A front-door client's time to send its request headers.
    pub header_read_timeout_ms: u64,
    /// How long a front-door connection may stay silent.
    pub idle_timeout_ms: u64,
    /// Connections each front door serves at once.
    pub max_connections: usize,
    /// A control-port client's time to send its line.
    pub control_read_timeout_ms: u64,
}

impl Default for LabLimits {
    fn default() -> LabLimits {
        let (door, control) = (FrontDoorSettings::default(), ControlSettings::default());
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        LabLimits {
            header_read_timeout_ms: ms(door.header_read_timeout),
            idle_timeout_ms: ms(door.idle_timeout),
            max_connections: door.max_connections,
            control_read_timeout_ms: ms(control.read_timeout),
        }
    }
}

impl LabLimits {
    /// The front doors' settings.
    pub fn front_door(&self) -> FrontDoorSettings {
        FrontDoorSettings {
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
            idle_timeout: Duration::from_millis(self.idle_timeout_ms),
            max_connections: self.max_connections,
            ..FrontDoorSettings::default()
        }
    }

    /// The control port's settings.
    pub fn control(&self) -> ControlSettings {
        ControlSettings {
            read_timeout: Duration::from_millis(self.control_read_timeout_ms),
            ..ControlSettings::default()
        }
    }
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
