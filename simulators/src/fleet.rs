//! The running fleet: binds every listener first (so addresses are known before anything is
//! served), then runs one accept loop per listener on the caller's tokio runtime. A connection
//! goes: TCP accept → ClientHello read → identity chosen ([`crate::choice`]) → handshake with
//! that identity's config → HTTP/1.1 with hyper. Every step lands in the node's event log.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::server::Acceptor;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::LazyConfigAcceptor;

use crate::choice::{self, Candidate};
use crate::config::{CertChoice, ClientAuth, FleetConfig, Identity, KeyAlg, NodeConfig, Role};
use crate::events::{EventKind, EventLog, NodeEvent, TimeoutPhase};
use crate::http::{self, NodeView};
use crate::loopback;
use crate::tls::{self, ConfigBase, ServiceTls, TlsSetupError};

/// How many times automatic allocation moves to fresh blocks after finding an address taken.
const ALLOCATION_ATTEMPTS: u32 = 32;

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

fn prepare(config: &FleetConfig) -> Result<Vec<Prepared>, FleetError> {
    let provider = tls::provider();
    let mut names = HashSet::new();
    let mut prepared = Vec::with_capacity(config.nodes.len());
    for node in &config.nodes {
        if !names.insert(node.name.as_str()) {
            return Err(FleetError::DuplicateNode { node: node.name.clone() });
        }
        if let Some(addr) = node.loopback
            && !addr.is_loopback()
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

fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Binds every port of every node; returns the listeners in node order.
fn bind_all(prepared: &[Prepared]) -> Result<Vec<Vec<std::net::TcpListener>>, FleetError> {
    bind_all_with(prepared, &mut loopback::reserve_blocks)
}

/// [`bind_all`] with the block reservation passed in, so a test can force a collision.
fn bind_all_with(
    prepared: &[Prepared],
    reserve_blocks: &mut dyn FnMut(u32) -> u32,
) -> Result<Vec<Vec<std::net::TcpListener>>, FleetError> {
    let mut bound: Vec<Option<Vec<std::net::TcpListener>>> = prepared.iter().map(|_| None).collect();
    // Explicit addresses first: a taken one is the caller's error, not something to route around.
    for (i, node) in prepared.iter().enumerate() {
        let Some(ip) = node.config.loopback else {
            continue;
        };
        let mut listeners = Vec::with_capacity(node.services.len());
        for svc in &node.services {
            let addr = SocketAddr::new(IpAddr::V4(ip), svc.port);
            listeners.push(bind(addr).map_err(|source| bind_error(&node.config.name, addr, source))?);
        }
        bound[i] = Some(listeners);
    }
    let auto: Vec<usize> = (0..prepared.len()).filter(|i| prepared[*i].config.loopback.is_none()).collect();
    if !auto.is_empty() {
        let blocks = loopback::blocks_for(auto.len());
        let mut last_taken = None;
        let mut placed = false;
        for _ in 0..ALLOCATION_ATTEMPTS {
            let first_block = reserve_blocks(blocks);
            match bind_auto(prepared, &auto, first_block) {
                Ok(listeners) => {
                    for (i, l) in auto.iter().zip(listeners) {
                        bound[*i] = Some(l);
                    }
                    placed = true;
                    break;
                }
                Err(AutoBindError::Taken { node, port }) => last_taken = Some((node, port)),
                Err(AutoBindError::Other(e)) => return Err(e),
            }
        }
        if !placed {
            let (node, port) = last_taken.unwrap_or_default();
            return Err(FleetError::NoFreeLoopback { node, port, attempts: ALLOCATION_ATTEMPTS });
        }
    }
    Ok(bound.into_iter().map(Option::unwrap_or_default).collect())
}

enum AutoBindError {
    Taken { node: String, port: u16 },
    Other(FleetError),
}

fn bind_auto(
    prepared: &[Prepared],
    auto: &[usize],
    first_block: u32,
) -> Result<Vec<Vec<std::net::TcpListener>>, AutoBindError> {
    let mut all = Vec::with_capacity(auto.len());
    for (k, i) in auto.iter().enumerate() {
        let node = &prepared[*i];
        let ip = loopback::address(first_block, u32::try_from(k).unwrap_or(u32::MAX));
        let mut listeners = Vec::with_capacity(node.services.len());
        for svc in &node.services {
            let addr = SocketAddr::new(IpAddr::V4(ip), svc.port);
            match bind(addr) {
                Ok(l) => listeners.push(l),
                // Dropping `all` and `listeners` releases this attempt's sockets.
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                    return Err(AutoBindError::Taken { node: node.config.name.clone(), port: svc.port });
                }
                Err(e) => {
                    return Err(AutoBindError::Other(bind_error(&node.config.name, addr, e)));
                }
            }
        }
        all.push(listeners);
    }
    Ok(all)
}

fn bind_error(node: &str, addr: SocketAddr, source: io::Error) -> FleetError {
    if source.kind() == io::ErrorKind::AddrInUse {
        FleetError::PortInUse { node: node.to_owned(), addr }
    } else {
        FleetError::Bind { node: node.to_owned(), addr, source }
    }
}

impl Fleet {
    /// Loads every identity, binds every listener, then starts serving. When this returns, each
    /// address in [`Fleet::nodes`] accepts connections: no readiness wait is needed.
    ///
    /// Must be called inside a tokio runtime; the fleet's tasks run on it.
    pub async fn start(config: FleetConfig) -> Result<Fleet, FleetError> {
        let prepared = prepare(&config)?;
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

async fn accept_loop(
    shared: Arc<Shared>,
    node_index: usize,
    service: Arc<Service>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(node) = shared.nodes.get(node_index).cloned() else {
        return;
    };
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _peer)) => {
                    // Without it small TLS records wait for delayed ACKs (FIELD-NOTES).
                    let _ = tcp.set_nodelay(true);
                    shared.open.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let conn_shared = shared.clone();
                    let serving = serve_connection(shared.clone(),
                        node.clone(),
                        service.clone(),
                        tcp,);
                    connections.spawn(async move {
                        serving.await;
                        conn_shared.connection_done();
                    });
                }
                // Out of descriptors or similar: back off briefly rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                // A connection task never panics on peer bytes; if one ever does, say so in the
                // log (tests read it) instead of losing it silently.
                if let Err(e) = done
                    && e.is_panic()
                {
                    node.log.push(
                        service.port,
                        0,
                        EventKind::HandshakeFailed {
                            reason: "internal error: connection task panicked".to_owned(),
                        },
                    );
                }
            }
        }
    }
    drop(listener);
    connections.shutdown().await;
}

/// The rustls error inside an I/O error from tokio-rustls, if any.
fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

fn handshake_failure(e: &io::Error) -> EventKind {
    match rustls_error(e) {
        Some(rustls::Error::AlertReceived(alert)) => EventKind::AlertReceived { description: tls::alert_name(*alert) },
        Some(err) => EventKind::HandshakeFailed { reason: tls::describe_error(err) },
        None if e.kind() == io::ErrorKind::UnexpectedEof => EventKind::HandshakeFailed {
            reason: "client closed the connection before the handshake completed".to_owned(),
        },
        None => EventKind::HandshakeFailed { reason: e.kind().to_string() },
    }
}

struct Established {
    stream: tokio_rustls::server::TlsStream<TcpStream>,
    identity: String,
    why: String,
}

/// A failed handshake, with the identity chosen for it when the ClientHello got that far.
struct HandshakeError {
    chosen: Option<(String, String)>,
    error: io::Error,
}

async fn handshake(service: &Service, tls13: bool, tcp: TcpStream) -> Result<Established, HandshakeError> {
    let start = LazyConfigAcceptor::new(Acceptor::default(), tcp)
        .await
        .map_err(|error| HandshakeError { chosen: None, error })?;
    let tls = service.current();
    let (alg, why) = {
        let hello = start.client_hello();
        let candidates: Vec<Candidate<'_>> =
            tls.all().map(|s| Candidate { name: &s.name, alg: s.alg, key: s.key.key.as_ref() }).collect();
        let d = choice::decide(hello.cipher_suites(), hello.signature_schemes(), tls13, &service.choice, &candidates);
        (d.alg, d.why)
    };
    // The decision names an identity the service has; fall back to any one to stay total.
    let served = tls
        .served(alg)
        .or_else(|| tls.served(KeyAlg::Rsa))
        .or_else(|| tls.served(KeyAlg::Ecdsa))
        .ok_or_else(|| HandshakeError { chosen: None, error: io::Error::other("service has no identity") })?;
    let stream = start
        .into_stream(served.config.clone())
        .await
        .map_err(|error| HandshakeError { chosen: Some((served.name.clone(), why.clone())), error })?;
    Ok(Established { stream, identity: served.name.clone(), why })
}

async fn serve_connection(shared: Arc<Shared>, node: Arc<Node>, service: Arc<Service>, tcp: TcpStream) {
    let port = service.port;
    let conn = node.log.connected(port);
    let established = match tokio::time::timeout(shared.handshake_timeout, handshake(&service, node.tls13, tcp)).await {
        Err(_) => {
            node.log.push(port, conn, EventKind::TimedOut { phase: TimeoutPhase::Handshake });
            return;
        }
        Ok(Err(HandshakeError { chosen, error })) => {
            if let Some((identity, why)) = chosen {
                node.log.push(port, conn, EventKind::CertificateSent { identity, why });
            }
            node.log.push(port, conn, handshake_failure(&error));
            return;
        }
        Ok(Ok(established)) => established,
    };
    let Established { stream, identity, mut why } = established;
    {
        let (_, state) = stream.get_ref();
        let version = match state.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
            Some(other) => format!("{other:?}"),
            None => "unknown".to_owned(),
        };
        let suite = state
            .negotiated_cipher_suite()
            .map_or_else(|| "unknown".to_owned(), |s| choice::openssl_suite_name(s.suite()));
        if state.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
            why.push_str("; resumed session, no certificate sent");
        }
        node.log.push(port, conn, EventKind::Handshake { version, suite, identity, why });
        if service.client_auth != "off" {
            let subject =
                state.peer_certificates().and_then(|c| c.first()).map_or_else(|| "none".to_owned(), tls::subject_of);
            node.log.push(port, conn, EventKind::ClientCertificate { subject });
        }
    }

    let svc = {
        let node = node.clone();
        let shared = shared.clone();
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let node = node.clone();
            let shared = shared.clone();
            async move { Ok::<_, std::convert::Infallible>(answer(&shared, &node, port, conn, &req)) }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(shared.idle_timeout).keep_alive(true);
    if let Err(e) = builder.serve_connection(TokioIo::new(stream), svc).await {
        if e.is_timeout() {
            node.log.push(port, conn, EventKind::TimedOut { phase: TimeoutPhase::Idle });
        } else if let Some(rustls::Error::AlertReceived(alert)) =
            std::error::Error::source(&e).and_then(|s| s.downcast_ref::<io::Error>()).and_then(rustls_error)
        {
            node.log.push(port, conn, EventKind::AlertReceived { description: tls::alert_name(*alert) });
        }
    }
}

fn answer(shared: &Shared, node: &Node, port: u16, conn: u64, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().as_str().to_owned();
    let target = req.uri().path_and_query().map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
    node.log.push(port, conn, EventKind::Request { method: method.clone(), path: target.clone() });
    let servers = || shared.cluster_servers(&node.cluster);
    let view = NodeView { role: node.role, fqdn: &node.fqdn, cluster_servers: &servers };
    let reply = http::respond(&view, port, &method, &target);
    node.log.push(port, conn, EventKind::Response { status: reply.status });
    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() =
        hyper::StatusCode::from_u16(reply.status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(reply.content_type));
    response
}

/// A plain-text table of a running fleet for people (`cargo xtask fleet up`): one row per node
/// and port with its role, FQDN, modelled IP, bound address and the certificates it serves.
/// Columns are padded to their widest cell.
pub fn render_table(nodes: &[NodeInfo]) -> String {
    let mut rows = vec![[
        "node".to_owned(),
        "role".to_owned(),
        "fqdn".to_owned(),
        "modelled ip".to_owned(),
        "listening on".to_owned(),
        "certificates".to_owned(),
    ]];
    for n in nodes {
        for s in &n.services {
            let certs: Vec<&str> = s.rsa.iter().chain(s.ecdsa.iter()).map(String::as_str).collect();
            let choice = match &s.choice {
                CertChoice::ClientOrder => "client order".to_owned(),
                CertChoice::ServerOrder(order) => {
                    format!("server order {}", order.iter().map(ToString::to_string).collect::<Vec<_>>().join(">"))
                }
            };
            rows.push([
                n.name.clone(),
                n.role.to_string(),
                n.fqdn.clone(),
                format!("{}:{}", n.modelled_ip, s.port),
                s.addr.to_string(),
                format!("{} ({choice}, client cert {})", certs.join(" + "), s.client_auth),
            ]);
        }
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row.iter().zip(widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    use super::*;
    use crate::config::ServiceConfig;

    fn node(name: &str) -> NodeConfig {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert =
            rcgen::CertificateParams::new(vec!["cucm.steven.lab".to_owned()]).unwrap().self_signed(&key).unwrap();
        NodeConfig {
            name: name.to_owned(),
            role: Role::CucmPublisher,
            cluster: "c".to_owned(),
            fqdn: "cucm.steven.lab".to_owned(),
            modelled_ip: IpAddr::from([10, 48, 36, 215]),
            system_server: "cucm.steven.lab".to_owned(),
            loopback: None,
            tls13: false,
            services: vec![ServiceConfig {
                port: 8443,
                rsa: None,
                ecdsa: Some(Identity {
                    name: "tomcat-ECDSA".to_owned(),
                    chain: vec![cert.der().clone()],
                    key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
                }),
                choice: CertChoice::ClientOrder,
                client_auth: ClientAuth::Off,
            }],
        }
    }

    #[test]
    fn automatic_allocation_moves_to_the_next_blocks_when_an_address_is_taken() {
        let config = FleetConfig { nodes: vec![node("a"), node("b")], ..FleetConfig::default() };
        let prepared = prepare(&config).unwrap();
        // Another process holds the second address of the first range offered.
        let (taken_block, free_block) = (40_000, 40_100);
        let squatter =
            std::net::TcpListener::bind(SocketAddr::new(IpAddr::V4(loopback::address(taken_block, 1)), 8443));
        let Ok(_squatter) = squatter else {
            return; // Someone else holds it already: the collision exists either way.
        };
        let mut offered = vec![free_block, taken_block];
        let listeners = bind_all_with(&prepared, &mut |_| offered.pop().unwrap()).unwrap();
        let ips: Vec<IpAddr> = listeners.iter().map(|l| l[0].local_addr().unwrap().ip()).collect();
        assert_eq!(ips, [IpAddr::V4(loopback::address(free_block, 0)), IpAddr::V4(loopback::address(free_block, 1)),]);
    }
}
