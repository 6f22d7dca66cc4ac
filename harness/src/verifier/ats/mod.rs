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
//!
//! # Parts
//! This module is the verifier itself ([`AtsVerifier`]: start, restart, requests) and its
//! [`AtsFactory`]. `netns` makes the namespace and runs jobs in it; `relay` holds the relays
//! and what they read off the wire; `stubs` the DNS stub and the readiness responder; `client`
//! the HTTP client that talks to ATS; `config` lays out the runroot; `diags` reads diags.log.

mod client;
mod config;
mod diags;
mod launch;
mod netns;
mod relay;
mod stubs;

use std::collections::BTreeMap;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::builtin::describe;
use super::log::{LogWriter, Profile};
use super::{Change, Failure, OriginRequest, Outcome, Purpose, Session, Verifier, VerifierFault};
use crate::expressway::Policy;
use client::{http_get, http_send};
pub use config::Generation;
use config::{ATS_PORT, PROBE_NAMES, Runroot, Target};
use diags::DIAGS_LOG;
pub use diags::failure_of;
pub use launch::Launch;
use launch::Launcher;
use netns::Netns;
use relay::{Relay, start_relay};
use stubs::{DnsStub, ReadyResponder};

/// How long ATS may take to answer on its port and to have read its hosts file.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one request through ATS may take (ATS's own connect timeout is 5 s per attempt).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// What to do when the host has no `traffic_server`.
const NOT_INSTALLED: &str = "traffic_server not found: install Apache Traffic Server with `apt-get install \
                             trafficserver`, or use --verifier ats:9.2 (a container)";

/// Where `traffic_server` is, if installed.
pub fn traffic_server_path() -> Option<PathBuf> {
    let from_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("traffic_server")).collect::<Vec<_>>())
        .unwrap_or_default();
    from_path.into_iter().chain([PathBuf::from("/usr/bin/traffic_server")]).find(|p| p.is_file())
}

fn fault_of(launch: Launch, message: impl std::fmt::Display) -> VerifierFault {
    VerifierFault::Config { verifier: launch.name(), message: message.to_string() }
}

/// A running `traffic_server`.
#[derive(Debug)]
struct Running {
    diags_offset: u64,
}

/// The real Apache Traffic Server as a verifier; see the module doc.
#[derive(Debug)]
pub struct AtsVerifier {
    launch: Launch,
    launcher: Launcher,
    session: Option<Session>,
    log: Option<LogWriter>,
    targets: Vec<Target>,
    hosts: BTreeMap<String, IpAddr>,
    relays: BTreeMap<SocketAddr, Relay>,
    dirty: bool,
    running: Option<Running>,
    ready: Option<ReadyResponder>,
    dns: Option<DnsStub>,
    netns: Option<Netns>,
    startups: Vec<Duration>,
    probe: usize,
}

impl AtsVerifier {
    /// A verifier using `traffic_server` from PATH (or /usr/bin), in a private namespace.
    pub fn new() -> Result<AtsVerifier, VerifierFault> {
        Self::launched(Launch::Host)
    }

    /// A verifier running the traffic server `launch` names.
    pub fn launched(launch: Launch) -> Result<AtsVerifier, VerifierFault> {
        let launcher = Launcher::new(launch).map_err(|e| fault_of(launch, e))?;
        Ok(AtsVerifier {
            launch,
            launcher,
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

    fn fault(&self, message: impl std::fmt::Display) -> VerifierFault {
        fault_of(self.launch, message)
    }

    /// The profile whose log format and OpenSSL words ATS's lines are written in: ATS 8.1 is
    /// Expressway X14's generation.
    fn profile(&self) -> Profile {
        match self.launch.generation() {
            Generation::V8_1 => Profile::ExpresswayX14_2,
            Generation::V9_2 => Profile::Ats9_2,
        }
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

    /// The host pid of the running `traffic_server`, if the host's runs.
    pub fn pid(&self) -> Option<u32> {
        self.launcher.pid()
    }

    /// Where it runs: the runroot, or the container (for people debugging a run).
    pub fn place(&self) -> String {
        self.launcher.describe()
    }

    fn netns(&mut self) -> Result<&Netns, VerifierFault> {
        if self.netns.is_none() {
            let netns = self.launcher.namespace().map_err(|e| self.fault(e))?;
            let dns = DnsStub::start(&netns).map_err(|e| self.fault(e))?;
            let ready = ReadyResponder::start(&netns).map_err(|e| self.fault(e))?;
            self.dns = Some(dns);
            self.ready = Some(ready);
            self.netns = Some(netns);
        }
        self.netns.as_ref().ok_or_else(|| self.fault("no namespace"))
    }

    fn stop(&mut self) {
        self.running = None;
        self.launcher.stop();
    }

    fn runroot(&self) -> Result<Runroot, VerifierFault> {
        self.launcher.runroot().ok_or_else(|| self.fault("no runroot yet"))
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.launcher.runroot().map(|r| r.outside.join(rel)).unwrap_or_default()
    }

    /// Writes the runroot for the session and targets in force.
    fn write_config(&self) -> Result<(), VerifierFault> {
        let session = self.session.as_ref().ok_or_else(|| self.fault("no session"))?;
        let ready_port = self.ready.as_ref().map(|r| r.port).unwrap_or(0);
        config::write_runroot(&self.runroot()?, session, &self.targets, &self.hosts, ready_port)
            .map_err(|e| self.fault(e))
    }

    /// What ATS said when it would not start: its stderr and the end of diags.log.
    fn startup_failure(&self, what: &str) -> VerifierFault {
        self.fault(format!(
            "traffic_server {what} ({}).\n--- its output:\n{}\n--- diags.log (last lines):\n{}",
            self.launcher.describe(),
            self.launcher.output().trim_end(),
            diags::last_lines(&self.path(DIAGS_LOG), 15)
        ))
    }

    /// (Re)starts ATS with the configuration in force and waits until it serves and has read
    /// its hosts file.
    fn restart(&mut self) -> Result<(), VerifierFault> {
        self.stop();
        self.netns()?;
        self.write_config()?;
        let started = Instant::now();
        let netns = self.netns.as_ref().ok_or_else(|| self.fault("no namespace"))?;
        self.launcher.spawn(netns).map_err(|e| fault_of(self.launch, e))?;
        self.running = Some(Running { diags_offset: 0 });
        if let Err(e) = self.wait_ready(started) {
            self.stop();
            return Err(e);
        }
        if let Some(unrecognized) = diags::unrecognized(&self.path(DIAGS_LOG)) {
            self.stop();
            return Err(self.fault(format!(
                "traffic_server does not know a setting the harness wrote (a harness fault, not a verdict): {unrecognized}"
            )));
        }
        self.startups.push(started.elapsed());
        if std::env::var_os("MRALAB_ATS_TIMINGS").is_some() {
            // A timing note on stderr; a closed stderr is no reason to panic.
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            let _ = std::io::Write::write_fmt(&mut std::io::stderr(), format_args!("ats: started in {ms:.0} ms\n"));
        }
        self.dirty = false;
        Ok(())
    }

    fn exited(&mut self) -> bool {
        self.running.is_none() || self.launcher.exited()
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
            let netns = self.netns.as_ref().ok_or_else(|| self.fault("no namespace"))?;
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
            let netns = self.netns.as_ref().ok_or_else(|| self.fault("no namespace"))?;
            if let Ok((200, _, _)) = http_get(netns, ats, &host, "/", Duration::from_secs(2)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.probe = 0;
        let offset = fs::metadata(self.path(DIAGS_LOG)).map(|m| m.len()).unwrap_or(0);
        if let Some(r) = self.running.as_mut() {
            r.diags_offset = offset;
        }
        Ok(())
    }

    /// diags.log lines written since the last call, once the file stops growing.
    fn new_diags(&mut self) -> Vec<String> {
        let path = self.path(DIAGS_LOG);
        let Some(running) = self.running.as_mut() else { return Vec::new() };
        diags::lines_since(&path, &mut running.diags_offset)
    }
}

impl Drop for AtsVerifier {
    fn drop(&mut self) {
        self.stop();
        self.relays.clear();
        self.ready = None;
        self.dns = None;
        self.netns = None;
    }
}

impl Verifier for AtsVerifier {
    fn name(&self) -> String {
        self.launch.name()
    }

    fn open(&mut self, session: &Session) -> Result<(), VerifierFault> {
        crate::ciphers::CipherList::parse(&session.expressway.ciphers())
            .map_err(|e| self.fault(format!("xConfiguration Ciphers: {e}")))?;
        self.session = Some(session.clone());
        self.log = Some(LogWriter::new(self.profile(), session.log.clone()));
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
        if request.resolves && !request.dial.ip().is_loopback() {
            return Err(VerifierFault::Request {
                verifier: self.name(),
                message: format!("refusing to dial {}: the harness dials loopback only", request.dial),
            });
        }
        let session = self.session.clone().ok_or_else(|| VerifierFault::Request {
            verifier: self.name(),
            message: "request before the session was opened".into(),
        })?;
        if let Some(why) = config::unsupported_on(self.launch.generation(), &session.expressway) {
            return Ok(Outcome {
                status: crate::verifier::command::UNSUPPORTED_STATUS,
                reason: "unsupported".into(),
                failure: Some(Failure::Handshake { reason: format!("unsupported: {why}") }),
                ..Outcome::default()
            });
        }
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
        // A name that does not resolve gets no hosts line and no relay: ATS asks the stub DNS,
        // which answers NXDOMAIN, as a name no DNS server knows.
        let record = if request.resolves {
            if request.host.parse::<IpAddr>().is_err() && self.hosts.get(&request.host) != Some(&request.modelled_ip) {
                self.hosts.insert(request.host.clone(), request.modelled_ip);
                self.dirty = true;
            }
            let at = SocketAddr::new(request.modelled_ip, request.port);
            if self.relays.get(&at).is_none_or(|r| r.dial != request.dial) {
                self.relays.remove(&at);
                let netns = self.netns()?;
                let relay = start_relay(netns, at, request.dial).map_err(|e| fault_of(self.launch, e))?;
                self.relays.insert(at, relay);
            }
            Some(self.relays.get(&at).map(|r| r.seen.clone()).ok_or_else(|| self.fault("no relay"))?)
        } else if self.hosts.remove(&request.host).is_some() {
            self.dirty = true;
            None
        } else {
            None
        };
        if self.dirty || self.exited() {
            self.restart()?;
        }
        if let Some(record) = &record {
            record.reset();
        }

        let host_header = format!("{}:{}", session.expressway.front_name, request.port);
        let path = format!("{}{}", target.prefix(&session), request.path.trim_start_matches('/'));
        let netns = self.netns.as_ref().ok_or_else(|| self.fault("no namespace"))?;
        let ats = SocketAddr::from((Ipv4Addr::LOCALHOST, ATS_PORT));
        let answer = http_send(netns, ats, &request.method, &host_header, &path, REQUEST_TIMEOUT);
        let diags = self.new_diags();
        if std::env::var_os("MRALAB_ATS_DIAGS").is_some() {
            // The raw diags.log lines of each request, for people checking what ATS wrote.
            for line in &diags {
                let _ = std::io::Write::write_fmt(&mut std::io::stderr(), format_args!("ats diags: {line}\n"));
            }
        }
        let (status, reason, body) = answer.map_err(|e| VerifierFault::Request {
            verifier: self.name(),
            message: format!("GET http://{host_header}{path} through traffic_server: {e}"),
        })?;

        let profile = self.profile();
        let log = self.log.get_or_insert_with(|| LogWriter::new(profile, session.log.clone()));
        log.advance(time::Duration::milliseconds(10));
        let reading = diags::read(&diags, log, profile.flavour());
        let mut outcome = Outcome {
            status,
            reason,
            body,
            log: reading.log,
            debug: reading.debug,
            failure: reading.failure,
            ..Outcome::default()
        };
        let seen = record.map(|r| r.get()).unwrap_or_default();
        outcome.attempts = seen.connections;
        outcome.served = seen.served.iter().map(|d| describe(d)).collect();
        // ATS's "Unknown Host" page (`500 Cannot find server.` from 9.2, `502 Cannot find
        // server.` from 8.1): the name did not resolve.
        if outcome.failure.is_none()
            && !request.resolves
            && matches!(status, 500 | 502)
            && outcome.body.contains("Unknown Host")
        {
            outcome.failure = Some(Failure::Resolve { host: request.host.clone() });
        }
        let ats_error_page = status == 502 && outcome.body.contains("Could Not Connect");
        if outcome.failure.is_none() && ats_error_page {
            outcome.failure = Some(match (reading.ssl_error, seen.connections) {
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

/// Makes [`AtsVerifier`]s of one launch, for the scenario runner.
#[derive(Debug, Clone, Copy)]
pub struct AtsFactory(pub Launch);

impl AtsFactory {
    /// The host's traffic_server (`--verifier ats`).
    pub const HOST: AtsFactory = AtsFactory(Launch::Host);
}

impl crate::verifier::VerifierFactory for AtsFactory {
    fn name(&self) -> String {
        self.0.name()
    }

    fn family(&self) -> crate::verifier::Family {
        match self.0.generation() {
            Generation::V8_1 => crate::verifier::Family::Expressway,
            Generation::V9_2 => crate::verifier::Family::Ats,
        }
    }

    fn make(&self) -> Result<Box<dyn Verifier>, VerifierFault> {
        Ok(Box::new(AtsVerifier::launched(self.0)?))
    }

    fn preflight(&self) -> Result<(), VerifierFault> {
        match self.0.recipe() {
            Some(recipe) => recipe.check_built().map_err(|e| fault_of(self.0, e)),
            None => traffic_server_path().map(|_| ()).ok_or_else(|| fault_of(self.0, NOT_INSTALLED)),
        }
    }

    fn needs_real_clock(&self) -> bool {
        true
    }
}
