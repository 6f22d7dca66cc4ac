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
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
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
        self.dir.read_dir().is_ok_and(|mut entries| entries.next().is_some()) && !self.is_lab()
    }
    /// Whether a lab was started here (running or not).
    pub fn is_lab(&self) -> bool {
        self.dir.join(".lab").is_dir() || self.state_file().exists()
    }
    /// Which lab was started here last, running or not, if the workspace says (`.lab/lab`).
    pub fn lab_name(&self) -> Option<String> {
        let name = fs::read_to_string(self.dir.join(".lab").join("lab")).ok()?;
        let name = name.trim();
        super::names().contains(&name).then(|| name.to_string())
    }
    /// The wrapper script `lab start` writes: the lab's commands for this workspace, from any
    /// folder (`./mralab check`).
    pub fn wrapper(&self) -> PathBuf {
        self.dir.join(WRAPPER)
    }

    /// Whether `lab start <lab>` may write its initial files here. A folder that is no lab's is
    /// refused ([`LabError::ForeignWorkspace`]); one holding a lab that is not running is
    /// refused unless `force` ([`LabError::WouldReplace`]), since its certificates, trust store
    /// and configuration files (the trainee's edits) are replaced; with `force`, the answer says
    /// what is being replaced. (A running lab is the caller's to refuse: it knows processes.)
    pub fn check_start(&self, lab: &str, force: bool) -> Result<Option<String>, LabError> {
        if self.is_foreign() {
            return Err(LabError::ForeignWorkspace { dir: self.dir.clone() });
        }
        if !self.is_lab() {
            return Ok(None);
        }
        let before = self.lab_name().unwrap_or_else(|| "(unknown)".into());
        if !force {
            return Err(LabError::WouldReplace { dir: self.dir.clone(), before, lab: lab.to_string() });
        }
        Ok(Some(format!(
            "replacing the files of lab '{before}' in {} with the initial files of lab '{lab}' ({REPLACED})",
            self.dir.display()
        )))
    }

    /// What a lab command says in a workspace where no lab runs (no `lab.toml`), and `stop`'s
    /// exit code there: 0 when a lab was started here and is stopped (what `stop` wants holds),
    /// 1 when no lab was ever started here (likely the wrong folder).
    pub fn not_running(&self) -> (String, u8) {
        let dir = self.dir.display();
        match (self.is_lab(), self.lab_name()) {
            (true, Some(lab)) => (
                format!(
                    "lab '{lab}' is not running in {dir} (it was stopped); its files stay. \
                     `./{WRAPPER} start --force` starts it again from its initial files"
                ),
                0,
            ),
            (true, None) => (format!("no lab is running in {dir} (it was stopped); its files stay"), 0),
            (false, _) => (
                format!(
                    "no lab in {dir}: it is no lab workspace. Give the lab's folder with --workspace, or \
                     start one with `cargo xtask lab start <lab>`"
                ),
                1,
            ),
        }
    }

    /// `text` (a tip, a hint, a line of the sheet) with `./mralab` made right for a person in
    /// `cwd`: unchanged in the workspace itself, the wrapper's full path anywhere else.
    pub fn tip(&self, text: &str, cwd: Option<&Path>) -> String {
        if cwd.is_some_and(|cwd| cwd == self.dir) {
            return text.to_string();
        }
        text.replace(&format!("./{WRAPPER}"), &self.wrapper().display().to_string())
    }

    /// Writes the wrapper script (mode 0755) for `lab`: `xtask` is the binary to run,
    /// `manifest` the project's `Cargo.toml` to build it from when the binary is gone.
    pub fn write_wrapper(&self, lab: &str, xtask: &Path, manifest: &Path) -> Result<(), LabError> {
        let path = self.wrapper();
        let text = wrapper_script(lab, xtask, manifest, &self.dir);
        let temp = self.dir.join(format!(".{WRAPPER}.tmp"));
        let _ = fs::remove_file(&temp);
        let mut file =
            fs::OpenOptions::new().write(true).create_new(true).mode(0o755).open(&temp).map_err(io(&temp))?;
        file.write_all(&text).map_err(io(&temp))?;
        drop(file);
        fs::rename(&temp, &path).map_err(io(&path))
    }
}

/// The wrapper script's name in the workspace.
pub const WRAPPER: &str = "mralab";

/// What starting a lab replaces in a workspace.
pub(super) const REPLACED: &str = "certs/, trust-store/, expressway.conf, cucm-system-server.conf, LAB.md, the hints given; traffic_server.log is started anew";

/// `path` quoted for `sh`: between single quotes, each `'` as `'\''`. Bytes as they are (a
/// Unix path need not be UTF-8).
fn sh_quote(path: &Path) -> Vec<u8> {
    let mut out = vec![b'\''];
    for &b in path.as_os_str().as_bytes() {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    out
}

/// The wrapper script of `lab` (a name of the catalogue): the lab commands with `--workspace`
/// given, `start` for this lab, `diagnose` on the lab's log, any other xtask command as it is;
/// the xtask binary, or `cargo run` from `manifest` when the binary is gone.
pub fn wrapper_script(lab: &str, xtask: &Path, manifest: &Path, workspace: &Path) -> Vec<u8> {
    const HEAD: &str = r#"#!/bin/sh
# Generated by `cargo xtask lab start`; do not edit (start and reset write it again).
# mralab's commands for the lab in this folder, from any folder:
#   ./mralab check | hint | reissue <node> ... | reset | stop   the lab commands, on this workspace
#   ./mralab diagnose [--json]                                   this lab's traffic_server.log
#   ./mralab start [--force]                                     this lab again, here (after stop)
#   ./mralab <other xtask command>                               e.g. ./mralab ciphers 'EECDH:EDH:HIGH'
"#;
    const BODY: &str = r#"run() {
    if [ -x "$xtask" ]; then exec "$xtask" "$@"; fi
    exec cargo run --quiet --manifest-path "$manifest" --package xtask -- "$@"
}
case "$1" in
    check|hint|reissue|reset|stop) command=$1; shift; run lab "$command" --workspace "$workspace" "$@" ;;
    diagnose) shift; run diagnose "$workspace/traffic_server.log" "$@" ;;
    start) shift; run lab start "$lab" --workspace "$workspace" "$@" ;;
    ''|-h|--help) sed -n '3,7p' "$0" >&2; exit 2 ;;
    *) run "$@" ;;
esac
"#;
    let mut out = HEAD.as_bytes().to_vec();
    out.extend_from_slice(format!("lab='{lab}'\n").as_bytes());
    for (name, path) in [("workspace", workspace), ("xtask", xtask), ("manifest", manifest)] {
        out.extend_from_slice(name.as_bytes());
        out.push(b'=');
        out.extend(sh_quote(path));
        out.push(b'\n');
    }
    out.extend_from_slice(BODY.as_bytes());
    out
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
    let path = dir.join(".lab").join("lab");
    fs::write(&path, format!("{}\n", lab.name)).map_err(io(&path))?;
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
    use std::os::unix::fs::PermissionsExt as _;
    use std::process::Command;

    use super::*;

    fn workspace() -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let ws = Workspace { dir: dir.path().to_path_buf() };
        (dir, ws)
    }

    /// What `lab start` leaves behind once stopped: `.lab/lab` and the files, no `lab.toml`.
    fn stopped(ws: &Workspace, lab: &str) {
        fs::create_dir_all(ws.dir.join(".lab")).expect(".lab");
        fs::write(ws.dir.join(".lab").join("lab"), format!("{lab}\n")).expect(".lab/lab");
        fs::write(ws.expressway_conf(), "# edited\n").expect("conf");
    }

    #[test]
    fn start_takes_an_empty_folder_and_refuses_someone_elses() {
        let (_dir, ws) = workspace();
        assert_eq!(ws.check_start("same-cn", false).expect("empty"), None);
        fs::write(ws.dir.join("notes.txt"), "mine").expect("write");
        let e = ws.check_start("same-cn", true).expect_err("foreign, even with --force");
        assert!(matches!(e, LabError::ForeignWorkspace { .. }), "{e}");
    }

    #[test]
    fn start_over_a_stopped_lab_needs_force_and_says_what_it_replaces() {
        let (_dir, ws) = workspace();
        stopped(&ws, "cipher-order");
        let e = ws.check_start("same-cn", false).expect_err("a stopped lab's edits");
        assert!(
            matches!(&e, LabError::WouldReplace { before, lab, .. } if before == "cipher-order" && lab == "same-cn")
        );
        let text = e.to_string();
        assert!(text.contains("which is not running") && text.contains("your edits are lost"), "{text}");
        assert!(text.contains("--force"), "{text}");
        let notice = ws.check_start("same-cn", true).expect("forced").expect("a notice");
        assert!(notice.starts_with("replacing the files of lab 'cipher-order' in "), "{notice}");
        assert!(
            notice.contains("with the initial files of lab 'same-cn' (certs/, trust-store/, expressway.conf"),
            "{notice}"
        );
    }

    #[test]
    fn not_running_is_plain_and_exits_0_for_a_stopped_lab_1_for_no_lab() {
        let (_dir, ws) = workspace();
        let (text, code) = ws.not_running();
        assert_eq!(code, 1);
        assert!(text.starts_with("no lab in ") && !text.contains("os error"), "{text}");
        stopped(&ws, "same-cn");
        let (text, code) = ws.not_running();
        assert_eq!(code, 0);
        assert!(text.starts_with("lab 'same-cn' is not running in "), "{text}");
        assert!(text.contains("`./mralab start --force`"), "{text}");
    }

    #[test]
    fn tips_name_the_wrapper_by_its_full_path_outside_the_workspace() {
        let ws = Workspace { dir: PathBuf::from("/tmp/lab") };
        let tip = "run `./mralab check`, then `./mralab hint`";
        assert_eq!(ws.tip(tip, Some(Path::new("/tmp/lab"))), tip);
        assert_eq!(ws.tip(tip, Some(Path::new("/work"))), "run `/tmp/lab/mralab check`, then `/tmp/lab/mralab hint`");
        assert_eq!(ws.tip(tip, None), "run `/tmp/lab/mralab check`, then `/tmp/lab/mralab hint`");
    }

    #[test]
    fn the_wrapper_gives_the_workspace_to_lab_commands_and_quotes_every_path() {
        let (dir, _) = workspace();
        let base = dir.path().join("it's a lab");
        fs::create_dir_all(&base).expect("dir");
        // A stand-in for the xtask binary that prints its arguments, one a line.
        let xtask = base.join("xtask");
        fs::write(&xtask, "#!/bin/sh\nprintf '%s\\n' \"$@\"\n").expect("xtask");
        fs::set_permissions(&xtask, fs::Permissions::from_mode(0o755)).expect("chmod");
        let ws = Workspace { dir: base.clone() };
        ws.write_wrapper("same-cn", &xtask, &base.join("Cargo.toml")).expect("wrapper");
        assert_eq!(fs::metadata(ws.wrapper()).expect("wrapper").permissions().mode() & 0o777, 0o755);
        let run = |args: &[&str]| {
            let out = Command::new(ws.wrapper()).args(args).current_dir("/").output().expect("runs");
            String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect::<Vec<_>>()
        };
        let dir = base.display().to_string();
        assert_eq!(
            run(&["reissue", "cups", "--cn", "a b"]),
            ["lab", "reissue", "--workspace", &dir, "cups", "--cn", "a b"]
        );
        assert_eq!(run(&["check"]), ["lab", "check", "--workspace", &dir]);
        assert_eq!(run(&["diagnose", "--json"]), ["diagnose", &format!("{dir}/traffic_server.log"), "--json"]);
        assert_eq!(run(&["start", "--force"]), ["lab", "start", "same-cn", "--workspace", &dir, "--force"]);
        assert_eq!(run(&["ciphers", "EECDH"]), ["ciphers", "EECDH"]);
    }
}
