//! The real Apache Traffic Server (Debian's `trafficserver`, ATS 9.2 with OpenSSL 3) behind the
//! [`Verifier`] interface: the second opinion that keeps the built-in model honest.
//!
//! # How a run is laid out
//! Each [`AtsVerifier`] owns a private runroot in a [`TempDir`] (`runroot.yaml`, a copy of
//! `/etc/trafficserver` as sysconfdir with our `records.config`, `remap.config`, an empty
//! `storage.config`, private log, runtime and cache folders, a hosts file, a `resolv.conf`, the
//! peer's trust store as PEM and Expressway-C's client certificate) and one `traffic_server`
//! process started from it, in the foreground, with no `traffic_manager`.
//!
//! # Addresses: a private network namespace, not a rewritten PKI
//! Reached by IP, ATS checks the IP string it connected to, and it logs the address it connected
//! to (`server=cucm.steven.lab(10.48.36.215)`). So ATS runs where every node really owns its
//! modelled address: a network namespace made by the verifier (`unshare --net`, root only), whose
//! loopback carries `local 0.0.0.0/0` (every IPv4 address is local there; nothing there reaches
//! the outside). The scenario's PKI is used unchanged and no line is mapped back.
//! The simulated fleet stays on the host's loopback. One thread of this process joins the
//! namespace (`setns`) and creates there every socket that must live in it: ATS's own process
//! (spawned from that thread), a relay listener per node address and port (`10.48.36.215:6972`),
//! which forwards each connection to the node's loopback socket, a stub DNS server that answers
//! NXDOMAIN at once (the hosts file is the only source of names), a readiness responder, and the
//! client sockets the HTTP client sends requests through. The relay copies bytes unchanged; it
//! also counts connections (handshake attempts) and reads the node's Certificate message off the
//! wire when it is in clear text (TLS 1.2), to report what the node served. Under TLS 1.3 the
//! certificate is encrypted and `served` stays empty.
//!
//! # Requests
//! Each request is sent as the MRA client's request to Expressway-C's front:
//! `GET http://<front>:<port>/<base64 domain/https/host/port>/<path>`, mapped by a `remap.config`
//! rule per target (`map http://<front>:<port>/<token>/ https://<host>:<port>/`) to the node.
//! Targets are learnt from the requests: a new one (or a configuration change) rewrites the
//! configuration and restarts ATS before the request, as a configuration change does on the
//! product. A restart drops ATS's TLS session cache, HostDB and marked-down origins.
//! Discovery with "TLS verify mode" On while the traffic server verifies nothing gets its rule
//! an `ENFORCED`/`ALL` override (`conf_remap.so`): the nearest the real ATS comes to that check.
//!
//! # Lifetime
//! ATS is killed when the verifier is dropped (also while unwinding from a panic) and when a
//! start fails. It is spawned through `setpriv --pdeathsig KILL` from the namespace thread, so
//! the kernel kills it if that thread (or the whole process, on Ctrl-C) goes away first.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufRead as _, BufReader, Read as _, Seek as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http_body_util::{BodyExt as _, Empty};
use rustls_pki_types::PrivateKeyDer;
use tempfile::TempDir;

use super::builtin::describe;
use super::log::{LogWriter, Profile};
use super::{Change, Failure, OriginRequest, Outcome, Purpose, Session, Verifier, VerifierFault};
use crate::chain::{OpensslFlavour, VerifyErrorCode};
use crate::expressway::{Policy, TlsVersion};

/// The port ATS serves HTTP on, inside its own namespace (nothing else is there).
const ATS_PORT: u16 = 8080;
/// How many readiness names the hosts file holds (one per probe).
const PROBE_NAMES: usize = 200;
/// How long ATS may take to answer on its port and to have read its hosts file.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one request through ATS may take (ATS's own connect timeout is 5 s per attempt).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Where `traffic_server` is, if installed.
pub fn traffic_server_path() -> Option<PathBuf> {
    let from_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("traffic_server")).collect::<Vec<_>>())
        .unwrap_or_default();
    from_path.into_iter().chain([PathBuf::from("/usr/bin/traffic_server")]).find(|p| p.is_file())
}

fn fault(message: impl Into<String>) -> VerifierFault {
    VerifierFault::Config { verifier: "ats".into(), message: message.into() }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------------------------------------
// The private network namespace.

type Job = Box<dyn FnOnce() + Send>;

/// A thread living in a private network namespace, running jobs that must create sockets or
/// processes there.
struct Netns {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Netns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Netns")
    }
}

/// Makes a network namespace with `unshare`, configures its loopback, and moves the calling
/// thread into it.
fn enter_private_netns() -> Result<(), String> {
    let script = "ip link set lo up && ip route add local 0.0.0.0/0 dev lo && echo ready && read _";
    let mut holder = Command::new("setpriv")
        .args(["--pdeathsig", "KILL", "--", "unshare", "--net", "--", "sh", "-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run setpriv/unshare (util-linux): {e}"))?;
    let mut line = String::new();
    if let Some(out) = holder.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    if line.trim() != "ready" {
        let _ = holder.kill();
        let mut err = String::new();
        if let Some(mut e) = holder.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let _ = holder.wait();
        return Err(format!(
            "cannot make a private network namespace (`unshare --net` needs root, `ip` needs iproute2): {}",
            err.trim()
        ));
    }
    let result = fs::File::open(format!("/proc/{}/ns/net", holder.id()))
        .map_err(|e| format!("cannot open the namespace: {e}"))
        .and_then(|ns| {
            rustix::thread::move_into_link_name_space(ns.as_fd(), Some(rustix::thread::LinkNameSpaceType::Network))
                .map_err(|e| format!("setns: {e}"))
        });
    // This thread now holds the namespace; the holder can go.
    drop(holder.stdin.take());
    let _ = holder.wait();
    result
}

impl Netns {
    fn new() -> Result<Netns, String> {
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("mralab-ats-netns".into())
            .spawn(move || {
                let entered = enter_private_netns();
                let ok = entered.is_ok();
                let _ = ready_tx.send(entered);
                if ok {
                    for job in rx {
                        job();
                    }
                }
            })
            .map_err(|e| format!("cannot start the namespace thread: {e}"))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Netns { jobs: Some(tx), thread: Some(thread) }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err("the namespace thread died".into()),
        }
    }

    /// Runs `f` on the namespace thread.
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> io::Result<T> {
        let (tx, rx) = mpsc::channel();
        let gone = || io::Error::other("the namespace thread is gone");
        self.jobs
            .as_ref()
            .ok_or_else(gone)?
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .map_err(|_| gone())?;
        rx.recv().map_err(|_| gone())
    }

    fn bind(&self, addr: SocketAddr) -> io::Result<TcpListener> {
        self.run(move || TcpListener::bind(addr))?
    }

    fn connect(&self, addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        self.run(move || TcpStream::connect_timeout(&addr, timeout))?
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Small servers inside the namespace: relays, the DNS stub, the readiness responder.

/// A background loop stopped on drop (its socket shut down to wake a blocked call).
struct Service {
    stop: Arc<AtomicBool>,
    wake: Option<TcpListener>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Service")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(l) = &self.wake {
            // Linux wakes a blocked accept() on a listening socket shut down for reading.
            let _ = rustix::net::shutdown(l, rustix::net::Shutdown::Read);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Accepts on `listener` and hands each connection to `handle` on its own thread.
fn accept_loop(
    listener: TcpListener,
    name: &str,
    handle: impl Fn(TcpStream) + Send + Sync + 'static,
) -> io::Result<Service> {
    let stop = Arc::new(AtomicBool::new(false));
    let wake = listener.try_clone()?;
    let flag = stop.clone();
    let handle = Arc::new(handle);
    let thread = std::thread::Builder::new().name(name.into()).spawn(move || {
        loop {
            match listener.accept() {
                Ok((stream, _)) if !flag.load(Ordering::SeqCst) => {
                    let handle = handle.clone();
                    let _ = std::thread::Builder::new().name("mralab-ats-conn".into()).spawn(move || handle(stream));
                }
                _ if flag.load(Ordering::SeqCst) => break,
                Ok(_) => break,
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    })?;
    Ok(Service { stop, wake: Some(wake), thread: Some(thread) })
}

/// What one relay saw since it was last reset.
#[derive(Debug, Default, Clone)]
struct RelayRecord {
    connections: u32,
    served: Vec<Vec<u8>>,
    hello: Option<u16>,
}

/// A relay from a node's modelled address (in the namespace) to its loopback socket.
#[derive(Debug)]
struct Relay {
    dial: SocketAddr,
    record: Arc<Mutex<RelayRecord>>,
    _service: Service,
}

fn start_relay(netns: &Netns, at: SocketAddr, dial: SocketAddr) -> io::Result<Relay> {
    let listener = netns.bind(at)?;
    let record = Arc::new(Mutex::new(RelayRecord::default()));
    let rec = record.clone();
    let service = accept_loop(listener, "mralab-ats-relay", move |client| {
        lock(&rec).connections += 1;
        let Ok(node) = TcpStream::connect_timeout(&dial, Duration::from_secs(3)) else { return };
        let _ = client.set_nodelay(true);
        let _ = node.set_nodelay(true);
        let (Ok(mut client_r), Ok(mut node_w)) = (client.try_clone(), node.try_clone()) else { return };
        let up = std::thread::spawn(move || {
            let _ = io::copy(&mut client_r, &mut node_w);
            let _ = node_w.shutdown(std::net::Shutdown::Write);
        });
        let mut sniffer = Sniffer::default();
        let (mut node_r, mut client_w) = (node, client);
        let mut buf = [0u8; 16 * 1024];
        loop {
            match node_r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sniffer.feed(&buf[..n]) {
                        let mut r = lock(&rec);
                        if let Some(certs) = sniffer.certs.take() {
                            r.served = certs;
                        }
                        r.hello = sniffer.suite.or(r.hello);
                    }
                    if client_w.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = client_w.shutdown(std::net::Shutdown::Write);
        let _ = up.join();
    })?;
    Ok(Relay { dial, record, _service: service })
}

/// Reads the server's ServerHello (cipher suite) and Certificate message off a TLS stream,
/// while they are in clear text.
#[derive(Debug, Default)]
struct Sniffer {
    records: Vec<u8>,
    handshake: Vec<u8>,
    done: bool,
    suite: Option<u16>,
    certs: Option<Vec<Vec<u8>>>,
}

fn u24(b: &[u8]) -> usize {
    (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2])
}

impl Sniffer {
    /// Feeds bytes from the server; true when something new was learnt.
    fn feed(&mut self, data: &[u8]) -> bool {
        if self.done {
            return false;
        }
        let mut learnt = false;
        self.records.extend_from_slice(data);
        while self.records.len() >= 5 && !self.done {
            let len = usize::from(u16::from_be_bytes([self.records[3], self.records[4]]));
            if self.records.len() < 5 + len {
                break;
            }
            let kind = self.records[0];
            let payload: Vec<u8> = self.records.drain(..5 + len).skip(5).collect();
            if kind != 22 {
                self.done = true;
                break;
            }
            self.handshake.extend_from_slice(&payload);
            while self.handshake.len() >= 4 {
                let len = u24(&self.handshake[1..4]);
                if self.handshake.len() < 4 + len {
                    break;
                }
                let kind = self.handshake[0];
                let body: Vec<u8> = self.handshake.drain(..4 + len).skip(4).collect();
                match kind {
                    2 => {
                        let sid = body.get(34).map(|&l| usize::from(l)).unwrap_or(0);
                        if let Some(s) = body.get(35 + sid..37 + sid) {
                            self.suite = Some(u16::from_be_bytes([s[0], s[1]]));
                            learnt = true;
                        }
                    }
                    11 => {
                        let mut certs = Vec::new();
                        let mut at = 3;
                        while at + 3 <= body.len() {
                            let len = u24(&body[at..at + 3]);
                            let Some(der) = body.get(at + 3..at + 3 + len) else { break };
                            certs.push(der.to_vec());
                            at += 3 + len;
                        }
                        self.certs = Some(certs);
                        self.done = true;
                        return true;
                    }
                    _ => {}
                }
            }
        }
        if self.records.len() > 1 << 20 {
            self.done = true;
        }
        learnt
    }
}

/// A DNS server that answers every query NXDOMAIN: names come from the hosts file only, and a
/// name looked up too early fails at once instead of hanging for ATS's 30 s DNS timeout.
fn start_dns_stub(netns: &Netns) -> io::Result<(Arc<AtomicBool>, JoinHandle<()>)> {
    let socket = netns.run(|| UdpSocket::bind((Ipv4Addr::LOCALHOST, 53)))??;
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new().name("mralab-ats-dns".into()).spawn(move || {
        let mut buf = [0u8; 1500];
        while !flag.load(Ordering::SeqCst) {
            let Ok((n, from)) = socket.recv_from(&mut buf) else { continue };
            if n < 12 {
                continue;
            }
            let mut answer = buf[..n].to_vec();
            answer[2] |= 0x80; // QR: a response
            answer[3] = 0x80 | 3; // RA, RCODE 3: NXDOMAIN
            answer[6..10].fill(0); // no answers, no authority
            let _ = socket.send_to(&answer, from);
        }
    })?;
    Ok((stop, thread))
}

/// Answers `200 ready` to anything: the target of the readiness probes.
fn start_ready_responder(netns: &Netns) -> io::Result<(u16, Service)> {
    let listener = netns.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
    let port = listener.local_addr()?.port();
    let service = accept_loop(listener, "mralab-ats-ready", |mut stream| {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut buf = [0u8; 4096];
        let mut seen = Vec::new();
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nready");
    })?;
    Ok((port, service))
}

// ---------------------------------------------------------------------------------------------
// The verifier.

/// One remap rule: a target the requests named.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Target {
    host: String,
    port: u16,
    /// Discovery with "TLS verify mode" On while the traffic server verifies nothing.
    discovery_check: bool,
}

impl Target {
    fn prefix(&self, session: &Session) -> String {
        let token = crate::mra::token(&session.expressway.domain, &self.host, self.port);
        if self.discovery_check { format!("/discovery-{token}/") } else { format!("/{token}/") }
    }
}

/// A running `traffic_server`.
#[derive(Debug)]
struct Running {
    child: Child,
    diags_offset: u64,
}

/// The real Apache Traffic Server as a verifier; see the module doc.
#[derive(Debug)]
pub struct AtsVerifier {
    binary: PathBuf,
    dir: TempDir,
    session: Option<Session>,
    log: Option<LogWriter>,
    targets: Vec<Target>,
    hosts: BTreeMap<String, IpAddr>,
    relays: BTreeMap<SocketAddr, Relay>,
    dirty: bool,
    running: Option<Running>,
    ready: Option<(u16, Service)>,
    dns: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
    netns: Option<Netns>,
    startups: Vec<Duration>,
    probe: usize,
}

impl AtsVerifier {
    /// A verifier using `traffic_server` from PATH (or /usr/bin).
    pub fn new() -> Result<AtsVerifier, VerifierFault> {
        let binary = traffic_server_path().ok_or_else(|| {
            fault("traffic_server not found: install Apache Traffic Server with `apt-get install trafficserver`")
        })?;
        let dir = tempfile::Builder::new()
            .prefix("mralab-ats-")
            .tempdir()
            .map_err(|e| fault(format!("cannot make a runroot: {e}")))?;
        Ok(AtsVerifier {
            binary,
            dir,
            session: None,
            log: None,
            targets: Vec::new(),
            hosts: BTreeMap::new(),
            relays: BTreeMap::new(),
            dirty: true,
            running: None,
            ready: None,
            dns: None,
            netns: None,
            startups: Vec::new(),
            probe: 0,
        })
    }

    /// How long each start of ATS took, until it answered and had read its hosts file.
    pub fn startups(&self) -> &[Duration] {
        &self.startups
    }

    /// Starts ATS now with the session in force and the targets seen so far (requests start it
    /// themselves; tests use this to hold a running ATS).
    pub fn start(&mut self) -> Result<(), VerifierFault> {
        self.restart()
    }

    /// The pid of the running `traffic_server`, if one runs.
    pub fn pid(&self) -> Option<u32> {
        self.running.as_ref().map(|r| r.child.id())
    }

    /// The runroot (for people debugging a run).
    pub fn runroot(&self) -> &Path {
        self.dir.path()
    }

    fn netns(&mut self) -> Result<&Netns, VerifierFault> {
        if self.netns.is_none() {
            let netns = Netns::new().map_err(fault)?;
            let dns = start_dns_stub(&netns).map_err(|e| fault(format!("DNS stub: {e}")))?;
            let ready = start_ready_responder(&netns).map_err(|e| fault(format!("readiness responder: {e}")))?;
            self.dns = Some(dns);
            self.ready = Some(ready);
            self.netns = Some(netns);
        }
        self.netns.as_ref().ok_or_else(|| fault("no namespace"))
    }

    fn stop(&mut self) {
        if let Some(mut running) = self.running.take() {
            let _ = running.child.kill();
            let _ = running.child.wait();
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes the runroot for the session and targets in force.
    fn write_config(&self) -> Result<(), VerifierFault> {
        let session = self.session.as_ref().ok_or_else(|| fault("no session"))?;
        let io = |what: &str, e: io::Error| fault(format!("writing {what} in {}: {e}", self.dir.path().display()));
        let root = self.dir.path();
        let etc = root.join("etc");
        if !etc.exists() {
            copy_dir(Path::new("/etc/trafficserver"), &etc).map_err(|e| io("a copy of /etc/trafficserver", e))?;
        }
        for d in ["log", "run", "cache", "capath"] {
            fs::create_dir_all(root.join(d)).map_err(|e| io(d, e))?;
        }
        let r = root.display();
        let runroot = format!(
            "prefix: {r}\nexec_prefix: /usr\nbindir: /usr/bin\nsbindir: /usr/sbin\nsysconfdir: {r}/etc\n\
             datadir: /usr/share/trafficserver\nincludedir: /usr/include\nlibdir: /usr/lib/trafficserver\n\
             libexecdir: /usr/lib/trafficserver/modules\nlocalstatedir: {r}/run\nruntimedir: {r}/run\n\
             logdir: {r}/log\ncachedir: {r}/cache\n"
        );
        fs::write(root.join("runroot.yaml"), runroot).map_err(|e| io("runroot.yaml", e))?;
        fs::write(etc.join("storage.config"), "").map_err(|e| io("storage.config", e))?;

        let expressway = &session.expressway;
        let retries = expressway.attempts.max(1) - 1;
        let trust: String = session.trust.ders().iter().map(|d| pem("CERTIFICATE", d)).collect();
        fs::write(root.join("trust.pem"), &trust).map_err(|e| io("trust.pem", e))?;
        let mut records = String::from(
            "# Generated by mralab's ats verifier for one Expressway-C peer; do not edit.\n\
             CONFIG proxy.config.admin.user_id STRING #-1\n\
             CONFIG proxy.config.exec_thread.autoconfig INT 0\n\
             CONFIG proxy.config.exec_thread.limit INT 1\n\
             CONFIG proxy.config.task_threads INT 1\n\
             CONFIG proxy.config.net.connections_throttle INT 1000\n\
             CONFIG proxy.config.http.cache.http INT 0\n\
             CONFIG proxy.config.reverse_proxy.enabled INT 1\n\
             CONFIG proxy.config.url_remap.remap_required INT 1\n\
             CONFIG proxy.config.log.logging_enabled INT 0\n\
             CONFIG proxy.config.diags.debug.enabled INT 1\n\
             CONFIG proxy.config.diags.debug.tags STRING ssl.error\n\
             CONFIG proxy.config.diags.output.debug STRING L\n\
             CONFIG proxy.config.http.connect_attempts_timeout INT 5\n\
             CONFIG proxy.config.http.keep_alive_enabled_out INT 0\n\
             CONFIG proxy.config.dns.nameservers STRING 127.0.0.1\n\
             CONFIG proxy.config.ssl.client.TLSv1 INT 0\n\
             CONFIG proxy.config.ssl.client.TLSv1_1 INT 0\n",
        );
        let _ = writeln!(records, "CONFIG proxy.config.http.server_ports STRING {ATS_PORT}:ipv4:ip-in=127.0.0.1");
        let _ = writeln!(records, "CONFIG proxy.config.ssl.client.verify.server.policy STRING {}", expressway.policy());
        let _ = writeln!(
            records,
            "CONFIG proxy.config.ssl.client.verify.server.properties STRING {}",
            expressway.properties()
        );
        if trust.is_empty() {
            // OpenSSL refuses an empty CA file; an empty folder trusts nothing, as an empty store.
            let _ = writeln!(records, "CONFIG proxy.config.ssl.client.CA.cert.filename STRING NULL");
        } else {
            let _ = writeln!(records, "CONFIG proxy.config.ssl.client.CA.cert.filename STRING {r}/trust.pem");
        }
        let _ = writeln!(records, "CONFIG proxy.config.ssl.client.CA.cert.path STRING {r}/capath");
        let _ = writeln!(records, "CONFIG proxy.config.ssl.client.cipher_suite STRING {}", expressway.ciphers());
        let tls12 = expressway.tls.contains(&TlsVersion::Tls12);
        let tls13 = expressway.tls.contains(&TlsVersion::Tls13);
        let _ = writeln!(records, "CONFIG proxy.config.ssl.client.TLSv1_2 INT {}", u8::from(tls12));
        let _ = writeln!(records, "CONFIG proxy.config.ssl.client.TLSv1_3 INT {}", u8::from(tls13));
        let _ = writeln!(records, "CONFIG proxy.config.http.connect_attempts_max_retries INT {retries}");
        let _ = writeln!(records, "CONFIG proxy.config.http.connect_attempts_rr_retries INT {retries}");
        let _ = writeln!(records, "CONFIG proxy.config.hostdb.host_file.path STRING {r}/hosts");
        let _ = writeln!(records, "CONFIG proxy.config.dns.resolv_conf STRING {r}/resolv.conf");
        if let Some(identity) = &session.client_identity {
            let chain: String = identity.chain.iter().map(|c| pem("CERTIFICATE", c)).collect();
            let key = match &identity.key {
                PrivateKeyDer::Pkcs1(k) => pem("RSA PRIVATE KEY", k.secret_pkcs1_der()),
                PrivateKeyDer::Sec1(k) => pem("EC PRIVATE KEY", k.secret_sec1_der()),
                PrivateKeyDer::Pkcs8(k) => pem("PRIVATE KEY", k.secret_pkcs8_der()),
                _ => return Err(fault("Expressway-C's client key is in a form this verifier cannot write")),
            };
            fs::write(root.join("client.pem"), chain).map_err(|e| io("client.pem", e))?;
            fs::write(root.join("client.key"), key).map_err(|e| io("client.key", e))?;
            let _ = writeln!(records, "CONFIG proxy.config.ssl.client.cert.path STRING {r}");
            let _ = writeln!(records, "CONFIG proxy.config.ssl.client.cert.filename STRING client.pem");
            let _ = writeln!(records, "CONFIG proxy.config.ssl.client.private_key.path STRING {r}");
            let _ = writeln!(records, "CONFIG proxy.config.ssl.client.private_key.filename STRING client.key");
        }
        fs::write(etc.join("records.config"), records).map_err(|e| io("records.config", e))?;

        let ready_port = self.ready.as_ref().map(|(p, _)| *p).unwrap_or(0);
        let mut remap = String::from("# Generated by mralab's ats verifier; do not edit.\n");
        let mut hosts = String::from("127.0.0.1 localhost\n");
        for i in 0..PROBE_NAMES {
            let _ = writeln!(remap, "map http://mralab-ready-{i}/ http://mralab-ready-{i}.invalid:{ready_port}/");
            let _ = writeln!(hosts, "127.0.0.1 mralab-ready-{i}.invalid");
        }
        for target in &self.targets {
            let host = match target.host.parse::<IpAddr>() {
                Ok(IpAddr::V6(v6)) => format!("[{v6}]"),
                _ => target.host.clone(),
            };
            let _ = write!(
                remap,
                "map http://{}:{}{} https://{host}:{}/",
                expressway.front_name,
                target.port,
                target.prefix(session),
                target.port
            );
            if target.discovery_check {
                remap.push_str(
                    " @plugin=conf_remap.so @pparam=proxy.config.ssl.client.verify.server.policy=ENFORCED \
                     @pparam=proxy.config.ssl.client.verify.server.properties=ALL",
                );
            }
            remap.push('\n');
        }
        for (name, ip) in &self.hosts {
            let _ = writeln!(hosts, "{ip} {name}");
        }
        fs::write(etc.join("remap.config"), remap).map_err(|e| io("remap.config", e))?;
        fs::write(root.join("hosts"), hosts).map_err(|e| io("hosts", e))?;
        fs::write(root.join("resolv.conf"), "nameserver 127.0.0.1\n").map_err(|e| io("resolv.conf", e))?;
        Ok(())
    }

    /// What ATS said when it would not start: its stderr and the end of diags.log.
    fn startup_failure(&self, what: &str) -> VerifierFault {
        let stderr = fs::read_to_string(self.path("traffic_server.out")).unwrap_or_default();
        let diags = fs::read_to_string(self.path("log/diags.log")).unwrap_or_default();
        let tail: Vec<&str> = diags.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect();
        fault(format!(
            "traffic_server {what} (runroot {}).\n--- its output:\n{}\n--- diags.log (last lines):\n{}",
            self.dir.path().display(),
            stderr.trim_end(),
            tail.join("\n")
        ))
    }

    /// (Re)starts ATS with the configuration in force and waits until it serves and has read
    /// its hosts file.
    fn restart(&mut self) -> Result<(), VerifierFault> {
        self.stop();
        self.netns()?;
        self.write_config()?;
        let started = Instant::now();
        let out = fs::File::create(self.path("traffic_server.out"))
            .map_err(|e| fault(format!("cannot write traffic_server.out: {e}")))?;
        let err = out.try_clone().map_err(|e| fault(e.to_string()))?;
        let binary = self.binary.clone();
        let runroot = self.dir.path().to_path_buf();
        let netns = self.netns.as_ref().ok_or_else(|| fault("no namespace"))?;
        let child = netns
            .run(move || {
                Command::new("setpriv")
                    .args(["--pdeathsig", "KILL", "--"])
                    .arg(&binary)
                    .env("TS_RUNROOT", &runroot)
                    .stdin(Stdio::null())
                    .stdout(out)
                    .stderr(err)
                    .spawn()
            })
            .and_then(|r| r)
            .map_err(|e| fault(format!("cannot start traffic_server: {e}")))?;
        self.running = Some(Running { child, diags_offset: 0 });
        if let Err(e) = self.wait_ready(started) {
            self.stop();
            return Err(e);
        }
        self.startups.push(started.elapsed());
        if std::env::var_os("MRALAB_ATS_TIMINGS").is_some() {
            eprintln!("ats: started in {:.0} ms", started.elapsed().as_secs_f64() * 1000.0);
        }
        self.dirty = false;
        Ok(())
    }

    fn exited(&mut self) -> bool {
        self.running.as_mut().is_none_or(|r| !matches!(r.child.try_wait(), Ok(None)))
    }

    fn wait_ready(&mut self, started: Instant) -> Result<(), VerifierFault> {
        let ats = SocketAddr::from((Ipv4Addr::LOCALHOST, ATS_PORT));
        // 1. The port answers.
        loop {
            if self.exited() {
                return Err(self.startup_failure("exited while starting"));
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(self.startup_failure("did not open its port in time"));
            }
            let netns = self.netns.as_ref().ok_or_else(|| fault("no namespace"))?;
            if netns.connect(ats, Duration::from_millis(200)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // 2. A hosts-file name resolves: a fresh name per probe, since a name looked up before
        // the hosts file was read is cached as unknown.
        loop {
            if self.exited() {
                return Err(self.startup_failure("exited while starting"));
            }
            if started.elapsed() > START_TIMEOUT || self.probe >= PROBE_NAMES {
                return Err(self.startup_failure("never resolved a name of its hosts file"));
            }
            let host = format!("mralab-ready-{}", self.probe);
            self.probe += 1;
            let netns = self.netns.as_ref().ok_or_else(|| fault("no namespace"))?;
            if let Ok((200, _, _)) = http_get(netns, ats, &host, "/", Duration::from_secs(2)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.probe = 0;
        let offset = fs::metadata(self.path("log/diags.log")).map(|m| m.len()).unwrap_or(0);
        if let Some(r) = self.running.as_mut() {
            r.diags_offset = offset;
        }
        Ok(())
    }

    /// diags.log lines written since the last call, once the file stops growing.
    fn new_diags(&mut self) -> Vec<String> {
        let path = self.path("log/diags.log");
        let Some(running) = self.running.as_mut() else { return Vec::new() };
        let mut last = u64::MAX;
        for _ in 0..20 {
            let len = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            if len == last {
                break;
            }
            last = len;
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut text = String::new();
        if let Ok(mut f) = fs::File::open(&path)
            && f.seek(io::SeekFrom::Start(running.diags_offset)).is_ok()
        {
            let _ = f.read_to_string(&mut text);
        }
        // Whole lines only.
        let whole = text.rfind('\n').map_or(0, |i| i + 1);
        running.diags_offset += whole as u64;
        text[..whole].lines().map(str::to_string).collect()
    }
}

impl Drop for AtsVerifier {
    fn drop(&mut self) {
        self.stop();
        self.relays.clear();
        self.ready = None;
        if let Some((stop, thread)) = self.dns.take() {
            stop.store(true, Ordering::SeqCst);
            let _ = thread.join();
        }
        self.netns = None;
    }
}

fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    let _ = writeln!(out, "-----END {label}-----");
    out
}

/// One HTTP/1.1 GET through ATS with hyper, on a socket made in the namespace.
fn http_get(
    netns: &Netns,
    ats: SocketAddr,
    host: &str,
    path: &str,
    timeout: Duration,
) -> Result<(u16, String, String), String> {
    http_send(netns, ats, "GET", host, path, timeout)
}

/// One HTTP/1.1 request with an empty body through ATS with hyper, on a socket made in the
/// namespace.
fn http_send(
    netns: &Netns,
    ats: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    timeout: Duration,
) -> Result<(u16, String, String), String> {
    let stream = netns.connect(ats, Duration::from_secs(2)).map_err(|e| format!("connect to ATS: {e}"))?;
    let _ = stream.set_nodelay(true);
    stream.set_nonblocking(true).map_err(|e| e.to_string())?;
    let method = hyper::Method::from_bytes(method.as_bytes()).map_err(|e| format!("method '{method}': {e}"))?;
    // ATS answers 411 to a POST without a length: say the body is empty.
    let length = if matches!(method, hyper::Method::GET | hyper::Method::HEAD) { None } else { Some("0") };
    let mut builder = hyper::Request::builder().method(method).uri(path);
    if let Some(length) = length {
        builder = builder.header(hyper::header::CONTENT_LENGTH, length);
    }
    let request = builder
        .header(hyper::header::HOST, host)
        .header(hyper::header::USER_AGENT, "mralab-mra-client")
        .header(hyper::header::CONNECTION, "close")
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    crate::runtime::runtime().block_on(async move {
        let exchange = async move {
            let stream = tokio::net::TcpStream::from_std(stream).map_err(|e| e.to_string())?;
            let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            let response = send.send_request(request).await.map_err(|e| e.to_string())?;
            let status = response.status();
            let reason = match response.extensions().get::<hyper::ext::ReasonPhrase>() {
                Some(r) => String::from_utf8_lossy(r.as_bytes()).into_owned(),
                None => status.canonical_reason().unwrap_or("").to_string(),
            };
            let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
            Ok::<_, String>((status.as_u16(), reason, String::from_utf8_lossy(&body).into_owned()))
        };
        tokio::time::timeout(timeout, exchange).await.map_err(|_| "timed out".to_string())?
    })
}

/// The `X509_V_ERR_*` code OpenSSL 3 prints as `text`.
fn code_of(text: &str) -> i32 {
    (0..100)
        .filter_map(|c| VerifyErrorCode::from_code(c, OpensslFlavour::V3_0))
        .find(|c| c.text(OpensslFlavour::V3_0) == text)
        .map_or(0, |c| c.code(OpensslFlavour::V3_0))
}

/// The failure a WARNING line of ATS's origin verify callback states, if it is one.
pub fn failure_of(line: &str) -> Option<Failure> {
    if let Some(rest) = line.split("Core server certificate verification failed for (").nth(1) {
        let text = rest.split(" Error=").nth(1)?.split(" server=").next()?.to_string();
        let depth = rest.rsplit(" depth=").next()?.trim().parse().ok()?;
        return Some(Failure::Chain { code: code_of(&text), text, depth });
    }
    if let Some(rest) = line.split("SNI (").nth(1) {
        let checked = rest.split(") not in certificate").next()?.to_string();
        if rest.contains(") not in certificate") {
            return Some(Failure::Name { checked });
        }
    }
    None
}

/// Splits `[Nov 26 22:41:56.719] [ET_NET 0] WARNING: ...` into thread and body.
fn diags_body(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('[')?.split_once("] ")?.1;
    let rest = rest.strip_prefix('[')?;
    rest.split_once("] ")
}

impl Verifier for AtsVerifier {
    fn name(&self) -> String {
        "ats".into()
    }

    fn open(&mut self, session: &Session) -> Result<(), VerifierFault> {
        crate::ciphers::CipherList::parse(&session.expressway.ciphers())
            .map_err(|e| fault(format!("xConfiguration Ciphers: {e}")))?;
        self.session = Some(session.clone());
        self.log = Some(LogWriter::new(Profile::Ats9_2, session.log.clone()));
        self.dirty = true;
        Ok(())
    }

    fn reconfigure(&mut self, session: &Session, _change: Change) -> Result<(), VerifierFault> {
        // records.config and the CA file are read at start; without traffic_manager,
        // `traffic_ctl config reload` has nobody to talk to: the next request restarts ATS.
        self.session = Some(session.clone());
        self.dirty = true;
        Ok(())
    }

    fn request(&mut self, request: &OriginRequest) -> Result<Outcome, VerifierFault> {
        if !request.dial.ip().is_loopback() {
            return Err(VerifierFault::Request {
                verifier: self.name(),
                message: format!("refusing to dial {}: the harness dials loopback only", request.dial),
            });
        }
        let session = self.session.clone().ok_or_else(|| VerifierFault::Request {
            verifier: "ats".into(),
            message: "request before the session was opened".into(),
        })?;
        let target = Target {
            host: request.host.clone(),
            port: request.port,
            discovery_check: matches!(request.purpose, Purpose::Discovery { tls_verify_mode: true })
                && session.expressway.policy() == Policy::Disabled,
        };
        if !self.targets.contains(&target) {
            self.targets.push(target.clone());
            self.dirty = true;
        }
        if request.host.parse::<IpAddr>().is_err() && self.hosts.get(&request.host) != Some(&request.modelled_ip) {
            self.hosts.insert(request.host.clone(), request.modelled_ip);
            self.dirty = true;
        }
        let at = SocketAddr::new(request.modelled_ip, request.port);
        if self.relays.get(&at).is_none_or(|r| r.dial != request.dial) {
            self.relays.remove(&at);
            let netns = self.netns()?;
            let relay = start_relay(netns, at, request.dial)
                .map_err(|e| fault(format!("relay {at} -> {}: {e}", request.dial)))?;
            self.relays.insert(at, relay);
        }
        if self.dirty || self.exited() {
            self.restart()?;
        }
        let record = self.relays.get(&at).map(|r| r.record.clone()).ok_or_else(|| fault("no relay"))?;
        *lock(&record) = RelayRecord::default();

        let host_header = format!("{}:{}", session.expressway.front_name, request.port);
        let path = format!("{}{}", target.prefix(&session), request.path.trim_start_matches('/'));
        let netns = self.netns.as_ref().ok_or_else(|| fault("no namespace"))?;
        let ats = SocketAddr::from((Ipv4Addr::LOCALHOST, ATS_PORT));
        let answer = http_send(netns, ats, &request.method, &host_header, &path, REQUEST_TIMEOUT);
        let diags = self.new_diags();
        let (status, reason, body) = answer.map_err(|e| VerifierFault::Request {
            verifier: "ats".into(),
            message: format!("GET http://{host_header}{path} through traffic_server: {e}"),
        })?;

        let mut outcome = Outcome { status, reason, body, ..Outcome::default() };
        let log = self.log.get_or_insert_with(|| LogWriter::new(Profile::Ats9_2, session.log.clone()));
        log.advance(time::Duration::milliseconds(10));
        let mut ssl_error = None;
        for line in &diags {
            let Some((thread, body)) = diags_body(line) else { continue };
            if let Some(rest) = body.strip_prefix("DEBUG: ") {
                // `<SSLNetVConnection.cc:1577 (sslClientHandShakeEvent)> (ssl.error) text`
                let rest = rest.split_once("> ").map_or(rest, |(_, r)| r);
                // Only the `SSL connection failed` line, as the model writes it: the tag's other
                // lines (SSL_ERROR_WANT_READ, ...) are the state machine's chatter.
                if let Some((tag, text)) = rest.strip_prefix('(').and_then(|r| r.split_once(") "))
                    && tag == "ssl.error"
                    && text.starts_with("SSL connection failed")
                {
                    ssl_error = Some(text.rsplit("': ").next().unwrap_or(text).to_string());
                    outcome.debug.push(log.debug(tag, text));
                }
            } else if body.starts_with("WARNING: ") {
                if outcome.failure.is_none() {
                    outcome.failure = failure_of(body);
                }
                outcome.log.push(if thread == "ET_NET 0" { log.net(body) } else { format!("[{thread}] {body}") });
            }
        }
        let seen = lock(&record).clone();
        outcome.attempts = seen.connections;
        outcome.served = seen.served.iter().map(|d| describe(d)).collect();
        let ats_error_page = status == 502 && outcome.body.contains("Could Not Connect");
        if outcome.failure.is_none() && ats_error_page {
            outcome.failure = Some(match (ssl_error, seen.connections) {
                (_, 0) => Failure::Connect { reason: format!("{}: no connection reached the node", request.host) },
                (Some(reason), _) => Failure::Handshake { reason },
                (None, _) => Failure::Handshake { reason: "ATS answered 502 and logged no reason".into() },
            });
        }
        if !ats_error_page && let Some(suite) = seen.hello {
            let name = crate::ciphers::openssl_name(rustls::CipherSuite::from(suite)).unwrap_or("unknown");
            let version = if (0x1301..=0x1305).contains(&suite) { "TLSv1.3" } else { "TLSv1.2" };
            outcome.tls = Some((version.to_string(), name.to_string()));
        }
        Ok(outcome)
    }
}

/// Makes [`AtsVerifier`]s, for the scenario runner.
#[derive(Debug, Clone, Copy, Default)]
pub struct AtsFactory;

impl crate::verifier::VerifierFactory for AtsFactory {
    fn name(&self) -> String {
        "ats".into()
    }

    fn family(&self) -> crate::verifier::Family {
        crate::verifier::Family::Ats
    }

    fn make(&self) -> Result<Box<dyn Verifier>, VerifierFault> {
        Ok(Box::new(AtsVerifier::new()?))
    }

    fn needs_real_clock(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_chain_warning_of_the_verify_callback() {
        let line = "WARNING: Core server certificate verification failed for (cucm.steven.lab). Action=Terminate Error=self-signed certificate server=cucm.steven.lab(10.48.36.215) depth=0";
        assert_eq!(
            failure_of(line),
            Some(Failure::Chain { code: 18, text: "self-signed certificate".into(), depth: 0 })
        );
    }

    #[test]
    fn reads_the_name_warning_of_the_verify_callback() {
        let line = "WARNING: SNI (10.48.36.215) not in certificate. Action=Terminate server=10.48.36.215(10.48.36.215)";
        assert_eq!(failure_of(line), Some(Failure::Name { checked: "10.48.36.215".into() }));
    }

    #[test]
    fn splits_a_diags_line() {
        let line = "[Nov 26 22:41:56.719] [ET_NET 0] WARNING: x";
        assert_eq!(diags_body(line), Some(("ET_NET 0", "WARNING: x")));
    }
}
