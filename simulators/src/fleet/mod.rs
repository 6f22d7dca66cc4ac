//! The running fleet: binds every listener first (so addresses are known before anything is
//! served), then runs one accept loop per listener on the caller's tokio runtime. A connection
//! goes: TCP accept → ClientHello read → identity chosen ([`crate::choice`]) → handshake with
//! that identity's config → HTTP/1.1 with hyper. Every step lands in the node's event log.
//!
//! This module holds [`Fleet`] and its public API, the shared state of the running nodes and the
//! loading of identities before anything is bound. Binding and loopback allocation live in
//! `bind`, the accept loop and each connection's life in `connection`, the text table for
//! people in `table`.

mod bind;
mod connection;
mod table;

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use self::bind::bind_all;
use self::connection::accept_loop;
use crate::config::{CertChoice, ClientAuth, FleetConfig, Identity, NodeConfig, Role};
use crate::events::{EventKind, EventLog, NodeEvent};
use crate::record::{Recorder, Recordings};
use crate::tls::{self, ConfigBase, ServiceTls, TlsSetupError};

pub use table::render_table;

/// Why a fleet could not start or a change could not be applied. Messages name the node.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// Two nodes share a name.
    #[error("node '{node}' is defined twice")]
    DuplicateNode {
        /// The name.
        node: String,
    },
    /// A node lists the same port twice.
    #[error("node '{node}': port {port} is defined twice")]
    DuplicatePort {
        /// The node.
        node: String,
        /// The port.
        port: u16,
    },
    /// A service has neither an RSA nor an ECDSA identity.
    #[error("node '{node}': port {port} has no identity to serve")]
    NoIdentity {
        /// The node.
        node: String,
        /// The port.
        port: u16,
    },
    /// An explicit address outside 127.0.0.0/8: simulators bind loopback only.
    #[error("node '{node}': {addr} is not a loopback address (simulators bind 127.0.0.0/8 only)")]
    NotLoopback {
        /// The node.
        node: String,
        /// The address given.
        addr: Ipv4Addr,
    },
    /// An explicit address and port that something else already holds.
    #[error("node '{node}': {addr} is already in use")]
    PortInUse {
        /// The node.
        node: String,
        /// The address and port.
        addr: SocketAddr,
    },
    /// Binding failed for another reason.
    #[error("node '{node}': cannot bind {addr}: {source}")]
    Bind {
        /// The node.
        node: String,
        /// The address and port.
        addr: SocketAddr,
        /// The operating system's error.
        source: io::Error,
    },
    /// Automatic allocation kept finding addresses taken.
    #[error("node '{node}': no free loopback address for port {port} after {attempts} attempts")]
    NoFreeLoopback {
        /// The first node that could not be placed.
        node: String,
        /// The port that was taken.
        port: u16,
        /// How many block ranges were tried.
        attempts: u32,
    },
    /// An identity or client-auth setting could not be loaded.
    #[error("node '{node}' port {port}: {source}")]
    Tls {
        /// The node.
        node: String,
        /// The port.
        port: u16,
        /// What went wrong.
        source: TlsSetupError,
    },
    /// No node has this name.
    #[error("no node named '{node}'")]
    UnknownNode {
        /// The name asked for.
        node: String,
    },
    /// The node has no service on this port.
    #[error("node '{node}' has no service on port {port}")]
    UnknownService {
        /// The node.
        node: String,
        /// The port asked for.
        port: u16,
    },
}

/// A snapshot of one running node, for tables and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// The node's name.
    pub name: String,
    /// What it stands for.
    pub role: Role,
    /// Its cluster.
    pub cluster: String,
    /// Its FQDN.
    pub fqdn: String,
    /// The address the real network would use.
    pub modelled_ip: IpAddr,
    /// The loopback address actually bound.
    pub loopback: Ipv4Addr,
    /// Its current System > Server name.
    pub system_server: String,
    /// Whether TLS 1.3 is enabled.
    pub tls13: bool,
    /// Its listeners.
    pub services: Vec<ServiceInfo>,
}

/// A snapshot of one listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    /// The modelled port (also the bound port).
    pub port: u16,
    /// The bound address.
    pub addr: SocketAddr,
    /// The current RSA identity's name.
    pub rsa: Option<String>,
    /// The current ECDSA identity's name.
    pub ecdsa: Option<String>,
    /// How the service chooses between them.
    pub choice: CertChoice,
    /// Whether it sends a CertificateRequest: `off`, `request` or `require`.
    pub client_auth: &'static str,
}

struct Service {
    port: u16,
    addr: SocketAddr,
    choice: CertChoice,
    client_auth: &'static str,
    base: ConfigBase,
    tls: RwLock<Arc<ServiceTls>>,
}

impl Service {
    fn current(&self) -> Arc<ServiceTls> {
        // A poisoned lock still holds a complete Arc: writers only swap it.
        self.tls.read().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

struct Node {
    name: String,
    role: Role,
    cluster: String,
    fqdn: String,
    modelled_ip: IpAddr,
    loopback: Ipv4Addr,
    tls13: bool,
    system_server: RwLock<String>,
    services: Vec<Arc<Service>>,
    log: EventLog,
}

impl Node {
    fn system_server(&self) -> String {
        self.system_server.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn service(&self, port: u16) -> Option<&Arc<Service>> {
        self.services.iter().find(|s| s.port == port)
    }
}

struct Shared {
    nodes: Vec<Arc<Node>>,
    by_name: HashMap<String, usize>,
    handshake_timeout: Duration,
    idle_timeout: Duration,
    /// Connections accepted and not yet finished, across the fleet.
    open: std::sync::atomic::AtomicUsize,
    /// Woken whenever `open` drops to zero.
    idle: tokio::sync::Notify,
    /// What crossed the sockets, when [`Fleet::record`] asked for it.
    recorder: Arc<Recorder>,
}

impl Shared {
    fn node(&self, name: &str) -> Result<&Arc<Node>, FleetError> {
        self.by_name
            .get(name)
            .and_then(|i| self.nodes.get(*i))
            .ok_or_else(|| FleetError::UnknownNode { node: name.to_owned() })
    }

    fn connection_done(&self) {
        if self.open.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
    }

    fn cluster_servers(&self, cluster: &str) -> Vec<String> {
        self.nodes.iter().filter(|n| n.cluster == cluster && n.role.is_cucm()).map(|n| n.system_server()).collect()
    }
}

/// A running fleet of simulated nodes. Dropping it stops the listeners without waiting;
/// [`Fleet::stop`] waits until every task and socket is gone.
pub struct Fleet {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet").field("nodes", &self.shared.nodes.len()).field("listeners", &self.tasks.len()).finish()
    }
}

fn client_auth_kind(c: &ClientAuth) -> &'static str {
    match c {
        ClientAuth::Off => "off",
        ClientAuth::Request { .. } => "request",
        ClientAuth::Require { .. } => "require",
    }
}

/// A node's services loaded but not yet bound.
struct Prepared {
    config: NodeConfig,
    services: Vec<PreparedService>,
}

/// One service of a node with its identities loaded and checked, waiting for its listener.
struct PreparedService {
    /// The modelled port, also the port bound.
    port: u16,
    /// How the service chooses between its RSA and ECDSA identities.
    choice: CertChoice,
    /// Whether it sends a CertificateRequest: `off`, `request` or `require`.
    client_auth: &'static str,
    /// The settings every identity's rustls config shares; kept to build replacements from.
    base: ConfigBase,
    /// The identities served from the start.
    tls: ServiceTls,
}

fn prepare(config: &FleetConfig, modelled: bool, recorder: &Arc<Recorder>) -> Result<Vec<Prepared>, FleetError> {
    let provider = tls::provider();
    let mut names = HashSet::new();
    let mut prepared = Vec::with_capacity(config.nodes.len());
    for node in &config.nodes {
        if !names.insert(node.name.as_str()) {
            return Err(FleetError::DuplicateNode { node: node.name.clone() });
        }
        if let Some(addr) = node.loopback
            && !addr.is_loopback()
            && !modelled
        {
            return Err(FleetError::NotLoopback { node: node.name.clone(), addr });
        }
        let mut ports = HashSet::new();
        let mut services = Vec::with_capacity(node.services.len());
        for svc in &node.services {
            if !ports.insert(svc.port) {
                return Err(FleetError::DuplicatePort { node: node.name.clone(), port: svc.port });
            }
            if svc.rsa.is_none() && svc.ecdsa.is_none() {
                return Err(FleetError::NoIdentity { node: node.name.clone(), port: svc.port });
            }
            let tls_err = |source| FleetError::Tls { node: node.name.clone(), port: svc.port, source };
            let base = ConfigBase::build(
                provider.clone(),
                node.tls13,
                &svc.client_auth,
                config.key_log,
                config.validation_time.map(rustls_pki_types::UnixTime::since_unix_epoch),
                recorder,
            )
            .map_err(tls_err)?;
            let tls = base.service_tls(svc.rsa.as_ref(), svc.ecdsa.as_ref()).map_err(tls_err)?;
            services.push(PreparedService {
                port: svc.port,
                choice: svc.choice.clone(),
                client_auth: client_auth_kind(&svc.client_auth),
                base,
                tls,
            });
        }
        // Keys and chains now live in `services`; keep the rest of the node's description.
        let mut config = node.clone();
        config.services.clear();
        prepared.push(Prepared { config, services });
    }
    Ok(prepared)
}

impl Fleet {
    /// Loads every identity, binds every listener, then starts serving. When this returns, each
    /// address in [`Fleet::nodes`] accepts connections: no readiness wait is needed.
    ///
    /// Must be called inside a tokio runtime; the fleet's tasks run on it.
    pub async fn start(config: FleetConfig) -> Result<Fleet, FleetError> {
        Self::start_prepared(&config, false)
    }

    /// [`Fleet::start`] for a fleet inside a private network namespace of its own (a node
    /// container of the container fleet, `mralab-node`): a node's `loopback` may then be any
    /// IPv4 address, its modelled one (`10.48.36.215`), which the namespace's loopback holds.
    /// Never call it in the host's namespace: the listeners would face the host's networks.
    pub async fn start_in_private_namespace(config: FleetConfig) -> Result<Fleet, FleetError> {
        Self::start_prepared(&config, true)
    }

    fn start_prepared(config: &FleetConfig, modelled: bool) -> Result<Fleet, FleetError> {
        let recorder = Arc::new(Recorder::default());
        let prepared = prepare(config, modelled, &recorder)?;
        let listeners = bind_all(&prepared)?;

        let mut nodes = Vec::with_capacity(prepared.len());
        let mut by_name = HashMap::with_capacity(prepared.len());
        let mut to_serve = Vec::new();
        for (i, (p, listeners)) in prepared.into_iter().zip(listeners).enumerate() {
            let mut services = Vec::with_capacity(p.services.len());
            let mut loopback = p.config.loopback;
            for (PreparedService { port, choice, client_auth, base, tls }, listener) in
                p.services.into_iter().zip(listeners)
            {
                let addr = listener.local_addr().map_err(|source| FleetError::Bind {
                    node: p.config.name.clone(),
                    addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
                    source,
                })?;
                if let IpAddr::V4(ip) = addr.ip() {
                    loopback = Some(ip);
                }
                let listener = TcpListener::from_std(listener).map_err(|source| FleetError::Bind {
                    node: p.config.name.clone(),
                    addr,
                    source,
                })?;
                let service =
                    Arc::new(Service { port, addr, choice, client_auth, base, tls: RwLock::new(Arc::new(tls)) });
                to_serve.push((i, service.clone(), listener));
                services.push(service);
            }
            by_name.insert(p.config.name.clone(), i);
            nodes.push(Arc::new(Node {
                log: EventLog::new(&p.config.name),
                name: p.config.name,
                role: p.config.role,
                cluster: p.config.cluster,
                fqdn: p.config.fqdn,
                modelled_ip: p.config.modelled_ip,
                // A node without services binds nothing; show 127.0.0.1 rather than invent one.
                loopback: loopback.unwrap_or(Ipv4Addr::LOCALHOST),
                tls13: p.config.tls13,
                system_server: RwLock::new(p.config.system_server),
                services,
            }));
        }
        let shared = Arc::new(Shared {
            nodes,
            by_name,
            handshake_timeout: config.handshake_timeout,
            idle_timeout: config.idle_timeout,
            open: std::sync::atomic::AtomicUsize::new(0),
            idle: tokio::sync::Notify::new(),
            recorder,
        });
        let (shutdown, _) = watch::channel(false);
        let tasks = to_serve
            .into_iter()
            .map(|(i, service, listener)| {
                tokio::spawn(accept_loop(shared.clone(), i, service, listener, shutdown.subscribe()))
            })
            .collect();
        Ok(Fleet { shared, shutdown, tasks })
    }

    /// Every node, in configuration order, with its bound addresses and current identities.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        self.shared
            .nodes
            .iter()
            .map(|n| NodeInfo {
                name: n.name.clone(),
                role: n.role,
                cluster: n.cluster.clone(),
                fqdn: n.fqdn.clone(),
                modelled_ip: n.modelled_ip,
                loopback: n.loopback,
                system_server: n.system_server(),
                tls13: n.tls13,
                services: n
                    .services
                    .iter()
                    .map(|s| {
                        let tls = s.current();
                        ServiceInfo {
                            port: s.port,
                            addr: s.addr,
                            rsa: tls.rsa.as_ref().map(|x| x.name.clone()),
                            ecdsa: tls.ecdsa.as_ref().map(|x| x.name.clone()),
                            choice: s.choice.clone(),
                            client_auth: s.client_auth,
                        }
                    })
                    .collect(),
            })
            .collect()
    }

    /// The bound address of a node's port, if both exist.
    pub fn socket(&self, node: &str, port: u16) -> Option<SocketAddr> {
        let node = self.shared.node(node).ok()?;
        node.service(port).map(|s| s.addr)
    }

    /// Replaces a service's identities on the running fleet (a re-issued certificate): the next
    /// handshake uses them, connections already established are untouched. Logs a
    /// `Reconfigured` event.
    pub fn set_identities(
        &self,
        node: &str,
        port: u16,
        rsa: Option<Identity>,
        ecdsa: Option<Identity>,
    ) -> Result<(), FleetError> {
        let n = self.shared.node(node)?;
        let service = n.service(port).ok_or_else(|| FleetError::UnknownService { node: node.to_owned(), port })?;
        if rsa.is_none() && ecdsa.is_none() {
            return Err(FleetError::NoIdentity { node: node.to_owned(), port });
        }
        let tls = service.base.service_tls(rsa.as_ref(), ecdsa.as_ref()).map_err(|source| FleetError::Tls {
            node: node.to_owned(),
            port,
            source,
        })?;
        let name = |s: &Option<Identity>| s.as_ref().map_or("none".to_owned(), |i| i.name.clone());
        let what = format!("identities rsa={} ecdsa={}", name(&rsa), name(&ecdsa));
        *service.tls.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(tls);
        n.log.push(port, 0, EventKind::Reconfigured { what });
        Ok(())
    }

    /// Changes a node's System > Server name on the running fleet; `/cucm-uds/servers` shows it
    /// from the next request on. Logs a `Reconfigured` event.
    pub fn set_system_server(&self, node: &str, name: &str) -> Result<(), FleetError> {
        let n = self.shared.node(node)?;
        let old =
            std::mem::replace(&mut *n.system_server.write().unwrap_or_else(PoisonError::into_inner), name.to_owned());
        n.log.push(0, 0, EventKind::Reconfigured { what: format!("system server {old} → {name}") });
        Ok(())
    }

    /// A copy of one node's log (empty for an unknown node): each connection's events together,
    /// connections in accept order, node-wide changes in their place.
    pub fn events(&self, node: &str) -> Vec<NodeEvent> {
        self.shared.node(node).map(|n| n.log.snapshot()).unwrap_or_default()
    }

    /// Drains every node's log: nodes in configuration order, each node's events grouped as
    /// [`Fleet::events`] groups them.
    pub fn take_events(&self) -> Vec<NodeEvent> {
        self.shared.nodes.iter().flat_map(|n| n.log.drain()).collect()
    }

    /// Starts (or stops) recording every connection's bytes and TLS secrets, for captures.
    /// Connections already accepted are not recorded.
    pub fn record(&self, on: bool) {
        self.shared.recorder.set_enabled(on);
    }

    /// Starts (or stops) keeping the TLS secrets of new handshakes without recording bytes
    /// (a node container's program sends them to the harness); [`Fleet::take_recordings`]
    /// drains them.
    pub fn keep_secrets(&self, on: bool) {
        self.shared.recorder.set_secrets(on);
    }

    /// Drains what was recorded: connections that have finished, in accept order, and the TLS
    /// secrets logged so far. Call [`Fleet::settle`] first so every connection has finished.
    pub fn take_recordings(&self) -> Recordings {
        self.shared.recorder.take()
    }

    /// Waits until every accepted connection has finished and logged its last event, or
    /// `timeout` passes; returns whether the fleet went quiet. A client that has finished
    /// talking to the fleet calls this before reading the event log, so that the log does not
    /// depend on how fast the node's side of a closed connection winds down.
    pub async fn settle(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.shared.open.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }

    /// Stops accepting, closes every connection and waits until all tasks and sockets are gone.
    pub async fn stop(self) {
        let Fleet { shared: _, shutdown, tasks } = self;
        // Receivers see the change (or the sender's drop) and wind down their connections.
        let _ = shutdown.send(true);
        for task in tasks {
            // A panicked or cancelled loop has nothing left to release.
            let _ = task.await;
        }
    }
}
