//! `cargo xtask lab ...`: teaching labs. `start` re-executes this binary as a detached
//! `lab serve` process (the fleet, the front doors, a control endpoint on loopback) and returns
//! once it serves; the other commands find it through `<workspace>/lab.toml` (mode 0600: it
//! holds the token every control line starts with), and dial only loopback addresses. The meaning
//! (files, reload, re-issue, hints, the login's verdict and `check`'s grade) lives in
//! `harness::lab` and `harness::scenario::login`; this file owns processes and printing.

use std::fs;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use crate::out::outln;
use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use harness::lab::control::{ControlError, ControlPort, ControlToken, Refused, ask, loopback_only};
use harness::lab::{
    CaptureAnswer, Grade, Lab, LabLimits, LabServer, LabState, Refusal, Reissue, ReissueAnswer, ReloadReport, WRAPPER,
    Workspace,
};
use harness::net::{self, Reach};
use harness::scenario::login::{LoginSpec, verdict};

#[derive(Debug, Args)]
pub struct LabArgs {
    #[command(subcommand)]
    what: LabWhat,
}

/// The serve process's limits; each defaults to what `lab.toml`'s `[limits]` says when absent.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Limits of the front doors and the control port")]
struct LimitArgs {
    /// How long a front-door client has to send its request headers, in ms [default: 10000].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    header_read_timeout_ms: Option<u64>,
    /// How long a front-door connection may stay silent, in ms [default: 60000].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    idle_timeout_ms: Option<u64>,
    /// Connections each front door serves at once; more wait [default: 64].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..65536))]
    max_connections: Option<u64>,
    /// How long a control-port client has to send its line, in ms [default: 10000].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    control_read_timeout_ms: Option<u64>,
}

impl LimitArgs {
    /// `base` with the options given.
    fn over(&self, base: LabLimits) -> LabLimits {
        LabLimits {
            header_read_timeout_ms: self.header_read_timeout_ms.unwrap_or(base.header_read_timeout_ms),
            idle_timeout_ms: self.idle_timeout_ms.unwrap_or(base.idle_timeout_ms),
            max_connections: self.max_connections.and_then(|n| usize::try_from(n).ok()).unwrap_or(base.max_connections),
            control_read_timeout_ms: self.control_read_timeout_ms.unwrap_or(base.control_read_timeout_ms),
        }
    }

    /// The options that give `limits` to `lab serve`.
    fn of(limits: &LabLimits) -> Vec<String> {
        [
            ("--header-read-timeout-ms", limits.header_read_timeout_ms.to_string()),
            ("--idle-timeout-ms", limits.idle_timeout_ms.to_string()),
            ("--max-connections", limits.max_connections.to_string()),
            ("--control-read-timeout-ms", limits.control_read_timeout_ms.to_string()),
        ]
        .into_iter()
        .flat_map(|(option, value)| [option.to_string(), value])
        .collect()
    }
}

#[derive(Debug, Args)]
struct Where {
    /// The lab's workspace (default: the current directory).
    #[arg(long)]
    workspace: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum LabWhat {
    /// The labs, with their titles.
    List,
    /// Start a lab in the background; returns once it serves.
    Start {
        /// The lab (`cargo xtask lab list`).
        lab: String,
        /// Where its files go (default: ./lab-<lab>).
        #[arg(long)]
        workspace: Option<PathBuf>,
        /// Replace the files of a lab that was stopped there (its certificates, trust store and
        /// configuration: the edits are lost).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Apply the edited files, re-run the MRA login, and say whether it is fixed, and how.
    /// Exit 0: fixed for the long term; 1: still failing; 3: works, but only by a workaround.
    Check(Where),
    /// The last `check`'s traffic as a decrypted Wireshark capture (`last-check.pcapng` in the
    /// workspace, TLS secrets inside): every connection of its discovery and login, and which
    /// certificate and alert each showed.
    Capture {
        /// Also copy it here.
        #[arg(long, short)]
        out: Option<PathBuf>,
        #[command(flatten)]
        at: Where,
    },
    /// The next hint (three: direction, where to look, the fix).
    Hint(Where),
    /// Restore the lab's initial files and state (the lab restarts).
    Reset(Where),
    /// Stop the lab's process. Exit 0 also when it was not running (it was stopped before);
    /// 1 when the folder holds no lab at all.
    Stop(Where),
    /// Re-issue a node's certificates as its administrator would, and re-export them.
    Reissue {
        /// The node (`cucm`, `cups`).
        node: String,
        /// A SAN to add: dns:NAME or ip:ADDRESS (repeatable).
        #[arg(long)]
        san: Vec<String>,
        /// Which certificate (`tomcat`, `CallManager`, ...; repeatable); default: every one
        /// the node serves.
        #[arg(long = "cert")]
        certs: Vec<String>,
        /// Have it signed by this CA of the lab (e.g. `lab-CA`) instead.
        #[arg(long)]
        issuer: Option<String>,
        /// Give it this subject CN instead.
        #[arg(long)]
        cn: Option<String>,
        /// Have the node send its intermediates too (the certificate uploaded with its chain).
        #[arg(long)]
        send_chain: bool,
        #[command(flatten)]
        at: Where,
    },
    /// The background process `start` leaves (internal).
    #[command(hide = true)]
    Serve {
        lab: String,
        #[arg(long)]
        workspace: PathBuf,
        #[arg(long)]
        keep_log: bool,
        #[command(flatten)]
        limits: LimitArgs,
    },
}

pub fn run(args: LabArgs) -> anyhow::Result<ExitCode> {
    match args.what {
        LabWhat::List => {
            for name in harness::lab::names() {
                let lab = Lab::load(name)?;
                outln!("{name:24} {}", lab.title)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        LabWhat::Start { lab, workspace, force, limits } => {
            let dir = workspace.unwrap_or_else(|| PathBuf::from(format!("lab-{lab}")));
            let replace = if force { Replace::Force } else { Replace::Refuse };
            start(&lab, &dir, replace, limits.over(LabLimits::default()))
        }
        LabWhat::Check(at) => check(&workspace(at)?),
        LabWhat::Capture { out, at } => capture(&workspace(at)?, out.as_deref()),
        LabWhat::Hint(at) => hint(&workspace(at)?),
        LabWhat::Reset(at) => reset(&workspace(at)?),
        LabWhat::Stop(at) => {
            let ws = workspace(at)?;
            if !ws.state_file().exists() {
                let (message, code) = ws.not_running();
                outln!("{}", ws.tip(&message, cwd().as_deref()))?;
                return Ok(ExitCode::from(code));
            }
            let state = read_state(&ws)?;
            stop(&ws, &state)?;
            outln!("lab '{}' stopped (pid {}); its files stay in {}", state.lab, state.pid, ws.dir.display())?;
            Ok(ExitCode::SUCCESS)
        }
        LabWhat::Reissue { node, san, certs, issuer, cn, send_chain, at } => {
            let ws = workspace(at)?;
            let state = read_state(&ws)?;
            let change = Reissue { node, certs, san, issuer, cn, send_chain };
            let answer: ReissueAnswer = control(&state, &format!("reissue {}", serde_json::to_string(&change)?))?;
            match answer {
                Ok(lines) => {
                    for line in lines {
                        outln!("{line}")?;
                    }
                    let tip = format!("exported to certs/{}/; `./{WRAPPER} check` to see the effect", change.node);
                    outln!("{}", ws.tip(&tip, cwd().as_deref()))?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(refusal) => Err(refusal.into()),
            }
        }
        LabWhat::Serve { lab, workspace, keep_log, limits } => {
            serve(&lab, workspace, keep_log, limits.over(LabLimits::default()))
        }
    }
}

/// The current directory, if it can be read (tips are written for a person standing there).
fn cwd() -> Option<PathBuf> {
    std::env::current_dir().ok().and_then(|d| d.canonicalize().ok())
}

fn workspace(at: Where) -> anyhow::Result<Workspace> {
    let dir = match at.workspace {
        Some(dir) => dir,
        None => std::env::current_dir()?,
    };
    // Absolute, so that tips name the wrapper by a path that works from anywhere.
    Ok(Workspace { dir: dir.canonicalize().unwrap_or(dir) })
}

fn read_state(ws: &Workspace) -> anyhow::Result<LabState> {
    let path = ws.state_file();
    if !path.exists() {
        bail!("{}", ws.tip(&ws.not_running().0, cwd().as_deref()));
    }
    let text = fs::read_to_string(&path).with_context(|| {
        format!(
            "{}: no running lab here (start one with `cargo xtask lab start <lab>`, or give --workspace)",
            path.display()
        )
    })?;
    let state: LabState = toml::from_str(&text).with_context(|| format!("{}: not a lab state file", path.display()))?;
    state.check_loopback().with_context(|| format!("{}: refusing to dial", path.display()))?;
    Ok(state)
}

/// Whether `pid` is a live `lab serve` process (not gone, not a zombie, not a reused pid).
pub fn serving(pid: u32) -> bool {
    running(pid)
        && fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| c.split(|b| *b == 0).any(|arg| arg == b"serve"))
            .unwrap_or(false)
}

/// Whether `pid` still exists and is not a zombie. A process that is exiting loses its
/// command line before it is gone, so waiting for an exit must not look at the command line.
fn running(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
    !matches!(state, None | Some('Z' | 'X'))
}

/// Whether `start` may replace the files of a lab that is not running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replace {
    /// No: refuse, saying what would be lost.
    Refuse,
    /// Yes (`--force`): say what is replaced.
    Force,
    /// Yes, quietly, keeping `traffic_server.log`: `reset` says what it does itself.
    Reset,
}

fn start(name: &str, dir: &Path, replace: Replace, limits: LabLimits) -> anyhow::Result<ExitCode> {
    let lab = Lab::load(name)?;
    let found = Workspace { dir: dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf()) };
    if let Ok(state) = read_state(&found)
        && serving(state.pid)
    {
        bail!(
            "lab '{}' already runs in {} (pid {}): `{} stop` first",
            state.lab,
            found.dir.display(),
            state.pid,
            found.wrapper().display()
        );
    }
    // A lab replaces certs/ and trust-store/: never do that to a folder that is not a lab's,
    // nor to a stopped lab's edits unless asked.
    if let Some(notice) = found.check_start(name, replace != Replace::Refuse)?
        && replace == Replace::Force
    {
        outln!("{notice}")?;
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    let ws = Workspace { dir: dir.clone() };
    if ws.state_file().exists() {
        fs::remove_file(ws.state_file())?;
    }
    let xtask = std::env::current_exe()?;
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("Cargo.toml");
    ws.write_wrapper(name, &xtask, &manifest.canonicalize().unwrap_or(manifest))?;
    let serve_log = dir.join("serve.log");
    let out = fs::File::create(&serve_log).with_context(|| format!("creating {}", serve_log.display()))?;
    let err = out.try_clone()?;
    let mut command = Command::new(&xtask);
    command.args(["lab", "serve", name, "--workspace"]).arg(&dir).args(LimitArgs::of(&limits));
    if replace == Replace::Reset {
        command.arg("--keep-log");
    }
    // Detached: no terminal, its own process group (Ctrl-C in the shell does not reach it).
    let mut child = command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .context("starting the lab's background process")?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let state = loop {
        if let Some(status) = child.try_wait()? {
            let log = fs::read_to_string(&serve_log).unwrap_or_default();
            bail!("the lab's process exited ({status}) before serving:\n{log}");
        }
        // The serve process writes lab.toml (atomically) only once everything listens.
        if let Ok(state) = read_state(&ws)
            && state.pid == child.id()
        {
            break state;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the lab did not come up within 120 s; see {}", serve_log.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if let Err(error) = print_intro(&lab, &ws, &state) {
        // Nobody learnt where the lab is or how to stop it (stdout closed, `| head -1`): stop
        // it rather than leave a process behind.
        if let Err(stopping) = stop(&ws, &state) {
            return Err(error.context(format!("and stopping the lab failed: {stopping:#}")));
        }
        return Err(error);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_intro(lab: &Lab, ws: &Workspace, state: &LabState) -> anyhow::Result<()> {
    let dir = ws.dir.display();
    let cwd = cwd();
    let tip = |text: &str| ws.tip(text, cwd.as_deref());
    outln!("lab '{}': {}", lab.name, lab.title)?;
    outln!("\nThe ticket says:\n  \"{}\"\n", lab.symptom)?;
    outln!("Workspace {dir} (process {}):", state.pid)?;
    outln!("  certs/<node>/<kind>.pem    certificates as exported from each node; certs/ca/: your CAs")?;
    if lab.clustered() {
        outln!("  trust-store/<peer>/*.pem   what is uploaded on each Expressway-C peer's trust store")?;
    } else {
        outln!("  trust-store/*.pem          what is uploaded to Expressway-C's trust store")?;
    }
    outln!("  expressway.conf            Expressway-C's configuration (xConfiguration syntax); edit it")?;
    outln!("  cucm-system-server.conf    CUCM System > Server; edit it")?;
    outln!("  traffic_server.log         the traffic server's log: {}", tip(&format!("`./{WRAPPER} diagnose`")))?;
    outln!("  LAB.md                     the lab sheet: objectives and symptom")?;
    outln!("  {WRAPPER:26} the lab's commands from any folder: {}", tip(&format!("`./{WRAPPER} check`")))?;
    outln!(
        "Edits take effect at `lab check`, which applies them (as Save does on Expressway-C) and refreshes discovery."
    )?;
    outln!("\nNodes (the lab's loopback addresses stand for the modelled IPs):")?;
    for node in &state.nodes {
        for (port, addr) in &node.listeners {
            outln!("  {:6} {:18} {:14} port {port}: {addr}", node.name, node.fqdn, node.ip)?;
        }
    }
    if let Some(node) = state.nodes.first()
        && let Some(addr) = node.listeners.values().next()
    {
        let ip = addr.ip();
        outln!("\nTry:")?;
        outln!(
            "  openssl s_client -connect {ip}:8443 -servername {} -cipher 'EECDH:EDH:HIGH' -showcerts </dev/null",
            node.fqdn
        )?;
        outln!(
            "  openssl s_client -connect {ip}:6972 -servername {} -cipher 'ECDHE-RSA-AES256-GCM-SHA384:EECDH:EDH:HIGH' </dev/null",
            node.fqdn
        )?;
    }
    // What Expressway-C's discovery shows now, and a request through each peer's front door
    // to a node as discovered (the front door refuses names it has not discovered).
    let discovered: anyhow::Result<ReloadReport> = control(state, "reload");
    if let Ok(report) = discovered {
        for peer in &report.peers {
            outln!("  {}", peer.discovery)?;
            let (host, port) = peer
                .targets
                .iter()
                .find(|t| t.service == "uds")
                .map_or((lab.expressway.discovery.publisher.clone(), 8443), |t| (t.host.clone(), t.port));
            outln!(
                "  curl -i http://{}{}",
                peer.front_door,
                harness::mra::encode(&report.domain, &host, port, "/cucm-uds/version"),
            )?;
        }
    }
    let here = if cwd.as_deref() == Some(ws.dir.as_path()) { String::new() } else { format!(", in {dir}") };
    outln!(
        "\nThen{here}: ./{WRAPPER} check  |  ./{WRAPPER} hint  |  ./{WRAPPER} reissue <node> --san dns:NAME  |  ./{WRAPPER} diagnose  |  ./{WRAPPER} reset  |  ./{WRAPPER} stop"
    )?;
    Ok(())
}

/// Sends one command to the serve process, with the lab's token, and reads its JSON answer.
fn control<T: serde::de::DeserializeOwned>(state: &LabState, command: &str) -> anyhow::Result<T> {
    let answer = match ask(state.control, &state.token, command, Duration::from_secs(120)) {
        Ok(answer) => answer,
        Err(e @ ControlError::Connect { .. }) => {
            return Err(anyhow::Error::new(e)).with_context(|| {
                format!("reaching lab '{}' (pid {}) at {}: is it running?", state.lab, state.pid, state.control)
            });
        }
        Err(e) => {
            return Err(anyhow::Error::new(e)).with_context(|| {
                let word = command.split(' ').next().unwrap_or_default();
                format!("asking lab '{}' (pid {}) to {word}", state.lab, state.pid)
            });
        }
    };
    if let Ok(answer) = serde_json::from_str(&answer) {
        return Ok(answer);
    }
    match serde_json::from_str::<Refused>(&answer) {
        Ok(refused) => bail!("lab '{}' (pid {}) refused the command: {}", state.lab, state.pid, refused.refused),
        Err(_) => bail!("the lab answered: {}", harness::source::printable(&answer)),
    }
}

/// One HTTP/1.1 request through a front door (on loopback): the status line.
fn http(door: SocketAddr, method: &str, path: &str) -> anyhow::Result<(u16, String)> {
    loopback_only("the front door", door)?;
    let mut stream = net::connect(door, Duration::from_secs(5), Reach::Loopback)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: {door}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")?;
    let mut first = String::new();
    BufReader::new(stream.take(64 * 1024)).read_line(&mut first)?;
    let mut parts = first.trim_end().splitn(3, ' ');
    let _version = parts.next();
    let status = parts.next().and_then(|s| s.parse().ok()).with_context(|| format!("bad status line '{first}'"))?;
    Ok((status, parts.next().unwrap_or_default().to_string()))
}

fn check(ws: &Workspace) -> anyhow::Result<ExitCode> {
    let state = read_state(ws)?;
    let lab = Lab::load(&state.lab)?;
    let report: ReloadReport = control(&state, "reload")?;
    for peer in &report.peers {
        loopback_only(&format!("the front door of {} (as the lab answered)", peer.name), peer.front_door)?;
    }
    outln!("lab '{}': applied the workspace files", lab.name)?;
    for e in &report.errors {
        outln!("  error: {e}")?;
    }
    for r in &report.refused {
        outln!("  trust store refused: {r}")?;
    }
    for w in &report.warnings {
        outln!("  warning: {w}")?;
    }
    outln!(
        "  VerifyOriginServer: {}{}",
        if report.verify_origin_server { "On" } else { "Off" },
        if report.verifies { "" } else { " (the traffic server verifies nothing)" }
    )?;
    let login = LoginSpec::jabber();
    let mut verdicts = Vec::new();
    for peer in &report.peers {
        outln!(
            "\nvia {} (trust store: {}):",
            peer.name,
            if peer.trusted.is_empty() { "empty".into() } else { peer.trusted.join(", ") }
        )?;
        outln!("  {}", peer.discovery)?;
        if !peer.discovered {
            let verdict = verdict(&login, false, &[]);
            outln!("  login as {}: {} (nothing discovered)", login.user, verdict)?;
            verdicts.push((peer.name.clone(), verdict));
            continue;
        }
        // (request index, answered 200) per node the request went to.
        let mut answers = Vec::new();
        for (index, request) in login.requests.iter().enumerate() {
            for target in peer.targets.iter().filter(|t| t.service == request.service.name()) {
                let path = login.expand(&request.path);
                let mra = harness::mra::encode(&report.domain, &target.host, target.port, &path);
                let (status, reason) = http(peer.front_door, &request.method, &mra)
                    .with_context(|| format!("{} {mra} through {}", request.method, peer.front_door))?;
                let ok = status == 200;
                answers.push((index, ok));
                outln!(
                    "  {:4} {:3} {:16} {}:{}{}  {}",
                    request.method,
                    status,
                    reason,
                    target.host,
                    target.port,
                    path,
                    if ok {
                        ""
                    } else if request.required {
                        "REQUIRED"
                    } else {
                        "optional"
                    }
                )?;
            }
        }
        let verdict = verdict(&login, true, &answers);
        outln!("  login as {}: {}", login.user, verdict)?;
        verdicts.push((peer.name.clone(), verdict));
    }
    outln!()?;
    let grade = harness::lab::grade(&report, &verdicts);
    match &grade {
        Grade::NotFixed { failing } => {
            outln!("NOT FIXED: the MRA login still fails or is degraded via {}.", failing.join(", "))?;
            let tip = format!("Read traffic_server.log (`./{WRAPPER} diagnose`), or `./{WRAPPER} hint`.");
            outln!("{}", ws.tip(&tip, cwd().as_deref()))?;
        }
        Grade::WorkaroundOnly => {
            outln!("WORKS, BUT ONLY THE WORKAROUND: VerifyOriginServer is Off, so Expressway-C verifies no")?;
            outln!("origin certificate at all (pre-X14.2 behaviour). Find the long-term fix, then set")?;
            outln!("`xConfiguration EdgeConfigServer VerifyOriginServer: On` again.")?;
        }
        Grade::NotLongTerm { reasons } => {
            outln!("WORKS, BUT NOT THE LONG-TERM FIX:")?;
            for reason in reasons {
                outln!("  {reason}")?;
            }
        }
        Grade::Fixed => {
            outln!("FIXED, the long-term fix: MRA login works through every peer with origin verification On.")?;
            outln!("\n{}", ws.tip(lab.debrief(), cwd().as_deref()))?;
        }
    }
    Ok(ExitCode::from(grade.exit_code()))
}

fn capture(ws: &Workspace, out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let state = read_state(ws)?;
    let answer: Result<CaptureAnswer, Refusal> = control(&state, "capture")?;
    let answer = answer?;
    outln!("the last check's traffic: {} TCP connection(s)", answer.connections)?;
    for line in &answer.handshakes {
        outln!("  {line}")?;
    }
    let path = match out {
        Some(out) => {
            std::fs::copy(&answer.path, out)
                .with_context(|| format!("copying {} to {}", answer.path.display(), out.display()))?;
            out.to_path_buf()
        }
        None => answer.path,
    };
    outln!("capture: {} (TLS secrets inside)", path.display())?;
    let tip = format!(
        "open it with `wireshark {p}`, or `tshark -r {p} -Y 'tls.handshake.type == 11 || tls.alert_message'`",
        p = path.display()
    );
    outln!("{}", ws.tip(&tip, cwd().as_deref()))?;
    Ok(ExitCode::SUCCESS)
}

fn hint(ws: &Workspace) -> anyhow::Result<ExitCode> {
    let state = read_state(ws)?;
    let lab = Lab::load(&state.lab)?;
    let path = ws.hint_state();
    let given: usize = fs::read_to_string(&path).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0);
    let hint = lab.hint(given);
    let cwd = cwd();
    outln!("Hint {}/{} ({}): {}", hint.number, hint.of, hint.label, ws.tip(hint.text, cwd.as_deref()))?;
    if hint.again {
        outln!("{}", ws.tip(&format!("(that was the last hint; `./{WRAPPER} reset` starts over)"), cwd.as_deref()))?;
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(&path, format!("{}\n", given + 1))?;
    Ok(ExitCode::SUCCESS)
}

fn reset(ws: &Workspace) -> anyhow::Result<ExitCode> {
    let state = read_state(ws)?;
    stop(ws, &state)?;
    outln!("lab '{}' reset: initial files restored, hints start over\n", state.lab)?;
    start(&state.lab, &ws.dir, Replace::Reset, state.limits)
}

fn stop(ws: &Workspace, state: &LabState) -> anyhow::Result<()> {
    if serving(state.pid) {
        // A lab that no longer answers is killed below.
        let _: Result<String, _> = control(state, "stop");
        // The pid was checked to be our serve process; from here on, wait for it to be gone.
        let deadline = Instant::now() + Duration::from_secs(15);
        while running(state.pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if running(state.pid) {
            let status = Command::new("kill").arg("-KILL").arg(state.pid.to_string()).status()?;
            if !status.success() {
                bail!("could not stop pid {}", state.pid);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while running(state.pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    let path = ws.state_file();
    if path.exists() {
        fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(())
}

/// The background process: serves the lab until a `stop` arrives on the control endpoint.
fn serve(name: &str, dir: PathBuf, keep_log: bool, limits: LabLimits) -> anyhow::Result<ExitCode> {
    let lab = Lab::load(name)?;
    let ws = Workspace { dir };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        // No terminal owns this process; a hang-up of the shell that started it is no reason to go.
        let _hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        let mut server = LabServer::start(lab, ws.clone(), keep_log, limits).await?;
        let token = ControlToken::generate()?;
        let (port, mut asked) = ControlPort::start(limits.control(), token.clone(), |line| {
            let _ = outln!("{line}");
        })
        .await?;
        let state = server.state(port.addr(), &token);
        ws.write_state(&state)?;
        outln!("serving lab '{}' (pid {}), control on {}", name, state.pid, port.addr())?;
        // One command at a time; every connection was read and checked in a task of its own.
        while let Some(asked) = asked.recv().await {
            let (answer, stop) = tokio::task::block_in_place(|| server.obey(&asked.command));
            asked.answer(answer);
            if stop {
                break;
            }
        }
        drop(asked);
        port.stop().await;
        server.stop().await;
        outln!("stopped")?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
