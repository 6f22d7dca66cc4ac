//! The container fleet (`--fleet containers`): every node of a fleet in a container of
//! `mralab/node`, on its modelled address (`10.48.36.215:8443`), all of a run's nodes and its
//! traffic server in one private network namespace.
//!
//! # Layout
//! The first node's container starts with no network (`network_mode: none`); its namespace is
//! the run's. Every other node's container, and the traffic server's (the ats verifier joins
//! through [`ContainerFleet::namespace_container`]), joins it (`container:<id>`): no Docker
//! network, nothing with a route off the machine. The harness, as root, makes every IPv4 address
//! local on that loopback (`ip route replace local 0.0.0.0/0 dev lo`, from a thread that joined
//! the namespace), so each node binds its modelled address as written. Before anything starts,
//! a modelled address inside one of the host's routes is refused ([`host_route_overlap`]): the
//! namespace would then shadow a network a person may mean.
//!
//! # A node
//! Its supervisor (`mralab-supervise`) runs `mralab-node` (`simulators::node`): the harness
//! writes the fleet to `/run/mralab/node.json`, makes the FIFO `/run/mralab/node-control`
//! through `/proc/<pid>/root`, starts the program, waits for its `ready` line, and then sends
//! commands through the FIFO, reading the answers (JSON lines) from the program's output file.
//! A node that exits or stops answering is a [`ContainerError`], a harness fault, never a
//! verdict.
//!
//! # Failures of a live cluster
//! [`ContainerFleet::node_down`] stops a node's program: its address stays, its ports refuse.
//! [`ContainerFleet::partition`] drops every packet to the node's address (an nftables set in
//! the namespace, `nft` run from the joined thread): a connection to it never gets an answer.
//! `node_up` and `heal` undo them.
//!
//! # Events
//! A node's events are taken after it went quiet, as in-process (`Fleet::settle` and
//! `Fleet::take_events` in the node program), and kept here until the runner takes them, in
//! node order. What a node saw since a mark ([`ContainerFleet::mark`], [`ContainerFleet::seen`])
//! is what the ats verifier reports as attempts and the chain served, where in-process a relay
//! counts and reads them off the wire.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use simulators::node::{Command, NodeProgramConfig, PROTOCOL, Reply, WireFleet, WireIdentity};
use simulators::{EventKind, FleetConfig, Identity, NodeEvent};

use super::image::{NODE, NODE_PROGRAM, PROGRAM_DIR};
use super::{ContainerError, Program, Supervised};

/// Where the node's files are inside its container.
const CONFIG: &str = "/run/mralab/node.json";
const CONTROL: &str = "/run/mralab/node-control";
/// How long a node program may take to bind, and to answer a command.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// How many containers or programs start at once.
const PARALLEL: usize = 8;
/// How long a node may take to finish its connections before its events are read.
const SETTLE: Duration = Duration::from_secs(10);

/// What a node saw since the last [`ContainerFleet::mark`] of one of its ports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSeen {
    /// Connections accepted (handshake attempts).
    pub connections: u32,
    /// The chain of the identity last sent, leaf first (DER).
    pub served: Vec<Vec<u8>>,
    /// The protocol version and suite (OpenSSL's name) of the last completed handshake.
    pub handshake: Option<(String, String)>,
}

/// A node's container, for people and benches.
#[derive(Debug, Clone)]
pub struct NodeContainerInfo {
    /// The node's name.
    pub name: String,
    /// Its modelled address.
    pub ip: Ipv4Addr,
    /// The container's short id.
    pub container: String,
    /// The container's first process (its supervisor) on the host.
    pub pid: u32,
    /// Whether its program runs (not `node-down`).
    pub running: bool,
}

/// One node's container and program.
struct NodeContainer {
    name: String,
    ip: Ipv4Addr,
    supervised: Supervised,
    /// The harness's end of the control FIFO while the program runs.
    control: Option<fs::File>,
    /// How much of the current output file has been read.
    offset: u64,
    /// Events taken from the program, not yet taken by the runner.
    pending: Vec<NodeEvent>,
    /// Events taken since the last mark, per port.
    since_mark: BTreeMap<u16, Vec<NodeEvent>>,
    partitioned: bool,
    /// TLS key-log lines the program sent, kept while a capture is asked for.
    secrets: Vec<String>,
    keep_secrets: bool,
}

struct Inner {
    nodes: Vec<NodeContainer>,
    /// The fleet as the programs are (re)started with: identities and names kept current.
    fleet: WireFleet,
    seq: u64,
    /// The nftables set exists in the namespace.
    cut_ready: bool,
}

/// A fleet whose nodes are containers; see the module doc.
pub struct ContainerFleet {
    inner: Mutex<Inner>,
    /// The first node's container: its namespace is the run's.
    holder: String,
    netns: PathBuf,
    /// How long the containers took to start and answer.
    pub started_in: Duration,
}

impl std::fmt::Debug for ContainerFleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerFleet").field("namespace", &self.holder).finish_non_exhaustive()
    }
}

fn fault(node: &str, reason: impl Into<String>) -> ContainerError {
    ContainerError::Supervisor { id: node.to_string(), image: NODE.image(), reason: reason.into() }
}

/// The host's IPv4 routes (`/proc/net/route`), as (network, prefix length, device), the
/// default route left out.
pub fn host_routes() -> Vec<(Ipv4Addr, u8, String)> {
    let text = fs::read_to_string("/proc/net/route").unwrap_or_default();
    let mut routes = Vec::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(device), Some(dest), Some(mask)) = (fields.first(), fields.get(1), fields.get(7)) else { continue };
        let (Ok(dest), Ok(mask)) = (u32::from_str_radix(dest, 16), u32::from_str_radix(mask, 16)) else { continue };
        // /proc/net/route writes addresses in the host's byte order (little-endian here).
        let (dest, mask) = (Ipv4Addr::from(dest.swap_bytes()), mask.swap_bytes());
        if mask == 0 {
            continue;
        }
        routes.push((dest, u8::try_from(mask.count_ones()).unwrap_or(32), (*device).to_string()));
    }
    routes
}

/// The first host route (other than the default) holding `ip`, as `172.17.0.0/16 dev docker0`.
pub fn host_route_overlap(ip: Ipv4Addr, routes: &[(Ipv4Addr, u8, String)]) -> Option<String> {
    routes.iter().find_map(|(net, len, dev)| {
        let mask = if *len == 0 { 0 } else { u32::MAX << (32 - u32::from(*len)) };
        (u32::from(ip) & mask == u32::from(*net) & mask).then(|| format!("{net}/{len} dev {dev}"))
    })
}

/// Runs `argv` from a thread that joined the network namespace at `netns`; returns its stdout.
pub fn run_in_namespace(netns: &Path, argv: &[&str]) -> Result<String, String> {
    let netns = netns.to_path_buf();
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let ns = fs::File::open(&netns).map_err(|e| format!("{}: {e}", netns.display()))?;
                rustix::thread::move_into_link_name_space(ns.as_fd(), Some(rustix::thread::LinkNameSpaceType::Network))
                    .map_err(|e| format!("joining {}: {e}", netns.display()))?;
                let (program, args) = argv.split_first().ok_or("no command")?;
                let out = Process::new(program)
                    .args(args)
                    .stdin(Stdio::null())
                    .output()
                    .map_err(|e| format!("cannot run {program}: {e}"))?;
                if !out.status.success() {
                    return Err(format!(
                        "`{}` failed: {}",
                        argv.join(" "),
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
                }
                Ok(String::from_utf8_lossy(&out.stdout).into_owned())
            })
            .join()
            .map_err(|_| "the namespace thread panicked".to_string())?
    })
}

impl ContainerFleet {
    /// Starts every node of `config` in its container; returns when each listens.
    pub fn start(config: &FleetConfig) -> Result<ContainerFleet, ContainerError> {
        let began = Instant::now();
        let routes = host_routes();
        let mut addresses = Vec::new();
        for node in &config.nodes {
            let IpAddr::V4(ip) = node.modelled_ip else {
                return Err(fault(
                    &node.name,
                    format!("the container fleet needs IPv4 addresses, not {}", node.modelled_ip),
                ));
            };
            if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() || ip.is_broadcast() {
                return Err(fault(&node.name, format!("{ip} cannot be a node's address in the container fleet")));
            }
            if let Some(route) = host_route_overlap(ip, &routes) {
                return Err(ContainerError::Overlap { node: node.name.clone(), ip, route });
            }
            if addresses.contains(&ip) {
                return Err(fault(&node.name, format!("{ip} is another node's address too")));
            }
            addresses.push(ip);
        }
        let first = config.nodes.first().ok_or_else(|| fault("-", "a fleet with no node"))?;
        NODE.check_built()?;
        let program =
            Program { argv: vec![format!("{PROGRAM_DIR}/{NODE_PROGRAM}"), CONFIG.to_string(), CONTROL.to_string()] };
        let holder = Supervised::start_in(&NODE, &program, None)?;
        let holder_id = holder.id().to_string();
        let netns = holder.netns();
        run_in_namespace(&netns, &["ip", "route", "replace", "local", "0.0.0.0/0", "dev", "lo"])
            .map_err(|e| fault(&first.name, e))?;
        // The other containers start side by side: each is mostly the engine's work.
        // At most PARALLEL at a time: more only queue in the engine and starve the machine.
        let mut others: Vec<Result<Supervised, ContainerError>> = Vec::new();
        for chunk in config.nodes[1..].chunks(PARALLEL) {
            others.extend(std::thread::scope(|scope| {
                let handles: Vec<_> = chunk
                    .iter()
                    .map(|_| scope.spawn(|| Supervised::start_in(&NODE, &program, Some(&holder_id))))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|_| Err(fault("-", "starting a node container panicked"))))
                    .collect::<Vec<_>>()
            }));
        }
        let mut supervised = vec![holder];
        for started in others {
            supervised.push(started?);
        }
        let fleet = WireFleet::of(config);
        let nodes = config
            .nodes
            .iter()
            .zip(supervised)
            .zip(addresses)
            .map(|((node, supervised), ip)| NodeContainer {
                name: node.name.clone(),
                ip,
                supervised,
                control: None,
                offset: 0,
                pending: Vec::new(),
                since_mark: BTreeMap::new(),
                partitioned: false,
                secrets: Vec::new(),
                keep_secrets: false,
            })
            .collect();
        let mut inner = Inner { nodes, fleet, seq: 0, cut_ready: false };
        // The programs start side by side too.
        let fleet = inner.fleet.clone();
        let mut results: Vec<Result<(), ContainerError>> = Vec::new();
        for chunk in inner.nodes.chunks_mut(PARALLEL) {
            results.extend(std::thread::scope(|scope| {
                let handles: Vec<_> = chunk.iter_mut().map(|node| scope.spawn(|| node.launch(&fleet))).collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|_| Err(fault("-", "starting a node program panicked"))))
                    .collect::<Vec<_>>()
            }));
        }
        for result in results {
            result?;
        }
        Ok(ContainerFleet { inner: Mutex::new(inner), holder: holder_id, netns, started_in: began.elapsed() })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The container whose network namespace is the run's: the traffic server joins it.
    pub fn namespace_container(&self) -> &str {
        &self.holder
    }

    /// The run's network namespace, seen from the host.
    pub fn netns(&self) -> &Path {
        &self.netns
    }

    /// Each node's container, in fleet order.
    pub fn nodes(&self) -> Vec<NodeContainerInfo> {
        let inner = self.lock();
        inner
            .nodes
            .iter()
            .map(|n| NodeContainerInfo {
                name: n.name.clone(),
                ip: n.ip,
                container: n.supervised.id().to_string(),
                pid: n.supervised.pid(),
                running: n.control.is_some(),
            })
            .collect()
    }

    /// Every node's events not taken yet, after each node went quiet: nodes in fleet order.
    pub fn take_events(&self) -> Result<Vec<NodeEvent>, ContainerError> {
        let mut inner = self.lock();
        let mut out = Vec::new();
        for i in 0..inner.nodes.len() {
            inner.take(i)?;
            out.append(&mut inner.nodes[i].pending);
        }
        Ok(out)
    }

    /// Starts (or stops) keeping the TLS secrets the nodes send, for a capture.
    pub fn keep_secrets(&self, on: bool) {
        for node in &mut self.lock().nodes {
            node.keep_secrets = on;
        }
    }

    /// The TLS key-log lines kept since the last call, every node's: each running node is
    /// asked first (it sends its secrets with its events, which stay for the runner).
    pub fn take_secrets(&self) -> Result<Vec<String>, ContainerError> {
        let mut inner = self.lock();
        for i in 0..inner.nodes.len() {
            inner.take(i)?;
        }
        Ok(inner.nodes.iter_mut().flat_map(|n| std::mem::take(&mut n.secrets)).collect())
    }

    /// Forgets what the node at `at` saw on that port (its events stay for the runner).
    pub fn mark(&self, at: SocketAddr) -> Result<(), ContainerError> {
        let mut inner = self.lock();
        let Some(i) = inner.index_at(at.ip()) else { return Ok(()) };
        inner.take(i)?;
        inner.nodes[i].since_mark.remove(&at.port());
        Ok(())
    }

    /// What the node at `at` saw on that port since the last [`ContainerFleet::mark`], with the
    /// chain served as a client reads it off the wire (the in-process relay's view): none on a
    /// resumed session or under TLS 1.3 (encrypted), which a failed handshake ran when both the
    /// node and the client (`client_tls13`) enable it.
    pub fn seen(&self, at: SocketAddr, client_tls13: bool) -> Result<NodeSeen, ContainerError> {
        let mut inner = self.lock();
        let Some(i) = inner.index_at(at.ip()) else { return Ok(NodeSeen::default()) };
        inner.take(i)?;
        let node = &inner.nodes[i];
        let mut seen = NodeSeen::default();
        for event in node.since_mark.get(&at.port()).into_iter().flatten() {
            match &event.kind {
                EventKind::Connected => seen.connections += 1,
                EventKind::Handshake { version, suite, identity, why } => {
                    // What a client sees on the wire, as the in-process relay reads it: a
                    // resumed session sends no certificate, and TLS 1.3 encrypts it.
                    seen.served = if why.contains("no certificate sent") || version == "TLSv1.3" {
                        Vec::new()
                    } else {
                        inner.chain_of(&node.name, at.port(), identity)
                    };
                    seen.handshake = Some((version.clone(), suite.clone()));
                }
                EventKind::CertificateSent { identity, .. } => {
                    let tls13 = client_tls13 && inner.fleet.nodes.iter().any(|n| n.name == node.name && n.tls13);
                    seen.served = if tls13 { Vec::new() } else { inner.chain_of(&node.name, at.port(), identity) };
                }
                _ => {}
            }
        }
        Ok(seen)
    }

    /// Replaces a service's identities (a re-issued certificate), as `Fleet::set_identities`.
    pub fn set_identities(
        &self,
        node: &str,
        port: u16,
        rsa: Option<Identity>,
        ecdsa: Option<Identity>,
    ) -> Result<(), ContainerError> {
        let mut inner = self.lock();
        let i = inner.index(node)?;
        let (rsa, ecdsa) = (rsa.as_ref().map(WireIdentity::of), ecdsa.as_ref().map(WireIdentity::of));
        if let Some(service) = inner
            .fleet
            .nodes
            .iter_mut()
            .find(|n| n.name == node)
            .and_then(|n| n.services.iter_mut().find(|s| s.port == port))
        {
            service.rsa = rsa.clone();
            service.ecdsa = ecdsa.clone();
        }
        if inner.nodes[i].control.is_some() {
            let seq = inner.next_seq();
            inner.nodes[i].command(&Command::SetIdentities { seq, port, rsa, ecdsa }, seq)?;
        }
        Ok(())
    }

    /// Changes a node's System > Server name, on every node (each lists the cluster).
    pub fn set_system_server(&self, node: &str, name: &str) -> Result<(), ContainerError> {
        let mut inner = self.lock();
        inner.index(node)?;
        if let Some(n) = inner.fleet.nodes.iter_mut().find(|n| n.name == node) {
            n.system_server = name.to_string();
        }
        for i in 0..inner.nodes.len() {
            if inner.nodes[i].control.is_some() {
                let seq = inner.next_seq();
                let command = Command::SetSystemServer { seq, node: node.to_string(), name: name.to_string() };
                inner.nodes[i].command(&command, seq)?;
            }
        }
        Ok(())
    }

    /// Stops a node's program: its ports refuse connections. Its events so far are kept.
    pub fn node_down(&self, node: &str) -> Result<(), ContainerError> {
        let mut inner = self.lock();
        let i = inner.index(node)?;
        if inner.nodes[i].control.is_none() {
            return Ok(());
        }
        inner.take(i)?;
        let n = &mut inner.nodes[i];
        n.control = None;
        n.supervised.halt()
    }

    /// Starts a stopped node's program again, with the identities and names now in force.
    pub fn node_up(&self, node: &str) -> Result<(), ContainerError> {
        let mut inner = self.lock();
        let i = inner.index(node)?;
        if inner.nodes[i].control.is_some() {
            return Ok(());
        }
        let fleet = inner.fleet.clone();
        inner.nodes[i].launch(&fleet)
    }

    /// Drops every packet to the node's address: connections to it never get an answer.
    pub fn partition(&self, node: &str) -> Result<(), ContainerError> {
        let mut inner = self.lock();
        let i = inner.index(node)?;
        if !inner.cut_ready {
            for argv in CUT_SETUP {
                run_in_namespace(&self.netns, argv).map_err(|e| fault(node, e))?;
            }
            inner.cut_ready = true;
        }
        let ip = inner.nodes[i].ip.to_string();
        let element = format!("{{ {ip} }}");
        run_in_namespace(&self.netns, &["nft", "add", "element", "inet", "mralab", "cut", &element])
            .map_err(|e| fault(node, e))?;
        inner.nodes[i].partitioned = true;
        Ok(())
    }

    /// Lets packets to the node's address through again.
    pub fn heal(&self, node: &str) -> Result<(), ContainerError> {
        let mut inner = self.lock();
        let i = inner.index(node)?;
        if !inner.nodes[i].partitioned {
            return Ok(());
        }
        let element = format!("{{ {} }}", inner.nodes[i].ip);
        run_in_namespace(&self.netns, &["nft", "delete", "element", "inet", "mralab", "cut", &element])
            .map_err(|e| fault(node, e))?;
        inner.nodes[i].partitioned = false;
        Ok(())
    }
}

/// The nftables table whose set `cut` holds the partitioned addresses: packets to them are
/// dropped on their way out of any socket of the namespace.
pub const CUT_SETUP: [&[&str]; 4] = [
    &["nft", "add", "table", "inet", "mralab"],
    &["nft", "add", "set", "inet", "mralab", "cut", "{ type ipv4_addr; }"],
    &["nft", "add", "chain", "inet", "mralab", "out", "{ type filter hook output priority 0; policy accept; }"],
    &["nft", "add", "rule", "inet", "mralab", "out", "ip", "daddr", "@cut", "drop"],
];

impl Inner {
    fn index(&self, node: &str) -> Result<usize, ContainerError> {
        self.nodes.iter().position(|n| n.name == node).ok_or_else(|| fault(node, "no such node in the fleet"))
    }

    fn index_at(&self, ip: IpAddr) -> Option<usize> {
        self.nodes.iter().position(|n| IpAddr::V4(n.ip) == ip)
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Takes a running node's events into `pending` and `since_mark`.
    fn take(&mut self, i: usize) -> Result<(), ContainerError> {
        if self.nodes[i].control.is_none() {
            return Ok(());
        }
        let seq = self.next_seq();
        let settle_ms = u64::try_from(SETTLE.as_millis()).unwrap_or(u64::MAX);
        let events = self.nodes[i].command(&Command::Take { seq, settle_ms }, seq)?;
        let node = &mut self.nodes[i];
        for event in events {
            node.since_mark.entry(event.port).or_default().push(event.clone());
            node.pending.push(event);
        }
        Ok(())
    }

    /// The DER chain of the identity `name` on a node's port, as now configured.
    fn chain_of(&self, node: &str, port: u16, name: &str) -> Vec<Vec<u8>> {
        use base64::Engine as _;
        let Some(service) =
            self.fleet.nodes.iter().find(|n| n.name == node).and_then(|n| n.services.iter().find(|s| s.port == port))
        else {
            return Vec::new();
        };
        [&service.rsa, &service.ecdsa]
            .into_iter()
            .flatten()
            .find(|i| i.name == name)
            .map(|i| i.chain.iter().filter_map(|c| base64::engine::general_purpose::STANDARD.decode(c).ok()).collect())
            .unwrap_or_default()
    }
}

impl NodeContainer {
    /// Writes the fleet, makes the FIFO, starts the program and waits for its `ready`.
    fn launch(&mut self, fleet: &WireFleet) -> Result<(), ContainerError> {
        let config = NodeProgramConfig { protocol: PROTOCOL, serve: self.name.clone(), fleet: fleet.clone() };
        let text = serde_json::to_string(&config).map_err(|e| fault(&self.name, e.to_string()))?;
        fs::write(self.supervised.host_path(CONFIG), text)
            .map_err(|e| fault(&self.name, format!("writing {CONFIG}: {e}")))?;
        let fifo = self.supervised.host_path(CONTROL);
        let _ = fs::remove_file(&fifo);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .map_err(|e| fault(&self.name, format!("making {CONTROL}: {e}")))?;
        self.supervised.launch()?;
        self.offset = 0;
        let started = Instant::now();
        // 1. The program binds and says so.
        loop {
            let replies = self.take_replies()?;
            match replies.first() {
                Some(Reply::Ready { protocol, .. }) if *protocol == PROTOCOL => break,
                Some(other) => return Err(self.crashed(&format!("said {other:?} instead of ready"))),
                None => {}
            }
            if !self.supervised.program_running() {
                return Err(self.crashed("exited while starting"));
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(self.crashed("was not ready within 20 s"));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        // 2. Its FIFO: opening for writing fails with ENXIO until the program opened it.
        loop {
            match rustix::fs::open(
                &fifo,
                rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            ) {
                Ok(fd) => {
                    let _ = rustix::fs::fcntl_setfl(&fd, rustix::fs::OFlags::empty());
                    self.control = Some(fs::File::from(fd));
                    return Ok(());
                }
                Err(rustix::io::Errno::NXIO) if started.elapsed() < READY_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => return Err(self.crashed(&format!("never opened its control FIFO ({e})"))),
            }
        }
    }

    fn crashed(&self, what: &str) -> ContainerError {
        fault(
            &self.name,
            format!(
                "node {} ({}, container {}): mralab-node {what} (a harness fault, not a verdict).\n--- its output:\n{}",
                self.name,
                self.ip,
                self.supervised.id(),
                self.supervised.output().trim_end()
            ),
        )
    }

    /// Reads the whole lines not read yet and moves past them.
    fn take_replies(&mut self) -> Result<Vec<Reply>, ContainerError> {
        let path = self.supervised.output_path(self.supervised.generation());
        let Ok(file) = fs::File::open(path) else { return Ok(Vec::new()) };
        let mut reader = std::io::BufReader::new(file);
        let _ = std::io::Seek::seek(&mut reader, std::io::SeekFrom::Start(self.offset));
        let mut replies = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader.read_line(&mut line).map_err(|e| fault(&self.name, e.to_string()))?;
            if n == 0 || !line.ends_with('\n') {
                break;
            }
            self.offset += n as u64;
            let reply = serde_json::from_str::<Reply>(line.trim_end())
                .map_err(|_| self.crashed(&format!("wrote a line that is not a reply: {}", line.trim_end())))?;
            replies.push(reply);
        }
        Ok(replies)
    }

    /// Sends a command and collects the events answered until its `done`.
    fn command(&mut self, command: &Command, seq: u64) -> Result<Vec<NodeEvent>, ContainerError> {
        let line = serde_json::to_string(command).map_err(|e| fault(&self.name, e.to_string()))?;
        let control = self.control.as_mut().ok_or_else(|| fault(&self.name, "the node is down"))?;
        if let Err(e) = control.write_all(format!("{line}\n").as_bytes()) {
            return Err(self.crashed(&format!("does not read its commands ({e})")));
        }
        let asked = Instant::now();
        let mut events = Vec::new();
        loop {
            for reply in self.take_replies()? {
                match reply {
                    Reply::Event(event) => events.push(event),
                    Reply::Secret(line) if self.keep_secrets => self.secrets.push(line),
                    Reply::Done { seq: s, .. } if s == seq => return Ok(events),
                    Reply::Failed { seq: s, error } if s == seq => {
                        return Err(fault(&self.name, format!("node {}: {error}", self.name)));
                    }
                    _ => {}
                }
            }
            if !self.supervised.program_running() {
                return Err(self.crashed("exited"));
            }
            if asked.elapsed() > ANSWER_TIMEOUT {
                return Err(self.crashed("did not answer within 30 s"));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_inside_a_host_route_is_an_overlap() {
        let routes = vec![
            (Ipv4Addr::new(172, 17, 0, 0), 16, "docker0".to_string()),
            (Ipv4Addr::new(10, 48, 0, 0), 16, "eth1".to_string()),
        ];
        assert_eq!(
            host_route_overlap(Ipv4Addr::new(172, 17, 3, 4), &routes).as_deref(),
            Some("172.17.0.0/16 dev docker0")
        );
        assert_eq!(
            host_route_overlap(Ipv4Addr::new(10, 48, 36, 215), &routes).as_deref(),
            Some("10.48.0.0/16 dev eth1")
        );
        assert_eq!(host_route_overlap(Ipv4Addr::new(10, 49, 36, 215), &routes), None);
        assert_eq!(host_route_overlap(Ipv4Addr::new(192, 168, 1, 1), &[]), None);
    }

    #[test]
    fn host_routes_read_without_the_default() {
        assert!(host_routes().iter().all(|(_, len, _)| *len > 0));
    }
}
