//! The real Apache Traffic Server behind the [`Verifier`] interface: the second opinion that
//! keeps the built-in model honest. Three launches ([`Launch`], module `launch`): the host's
//! Debian `trafficserver` (ATS 9.2 with OpenSSL 3, `--verifier ats`), or mralab's images in a
//! container (`ats:9.2`, the same; `ats:8.1`, ATS 8.1.10 with OpenSSL 1.1.1w, Expressway X14's
//! generation, configured with `verify.server 0|1|2` and read in OpenSSL 1.1.1's words).
//!
//! # How a run is laid out
//! Each [`AtsVerifier`] owns a private runroot (a temporary folder, or a folder in its
//! container written through `/proc/<pid>/root`: `runroot.yaml`, a copy of
//! `/etc/trafficserver` as sysconfdir with our `records.config`, `remap.config`, an empty
//! `storage.config`, private log, runtime and cache folders, an empty hosts file, a
//! `resolv.conf`, the peer's trust store as PEM and Expressway-C's client certificate) and one
//! `traffic_server` process started from it, in the foreground, with no `traffic_manager`, and
//! with OpenSSL's default CA bundle pointed at an empty file (`config::environment`).
//!
//! # Addresses: a private network namespace, not a rewritten PKI
//! Reached by IP, ATS checks the IP string it connected to, and it logs the address it connected
//! to (`server=cucm.steven.lab(10.48.36.215)`). So ATS runs where every node really owns its
//! modelled address: a network namespace made by the verifier (`unshare --net`, root only), or
//! the container's own (started with no network, joined through `/proc/<pid>/ns/net`), whose
//! loopback carries `local 0.0.0.0/0` (every IPv4 address is local there; nothing there reaches
//! the outside). The scenario's PKI is used unchanged and no line is mapped back.
//! The simulated fleet stays on the host's loopback. One thread of this process joins the
//! namespace (`setns`) and creates there every socket that must live in it: ATS's own process
//! (spawned from that thread), a relay listener per node address and port (`10.48.36.215:6972`),
//! which forwards each connection to the node's loopback socket, a stub DNS server, a readiness
//! responder, and the client sockets the HTTP client sends requests through. The stub DNS is
//! the modelled network's: it answers a name a request named with the node's modelled address,
//! and a name that does not resolve (or that no request named) with NXDOMAIN at once. A start
//! is ready when ATS's port answers and one probe through ATS (to an address, no name looked
//! up) gets the readiness responder's 200: ~50 ms, where waiting for ATS to read a hosts file
//! took ~1 s. The relay copies bytes unchanged; it also counts connections (handshake
//! attempts) and reads the node's Certificate message off the wire when it is in clear text
//! (TLS 1.2), to report what the node served. Under TLS 1.3 the certificate is encrypted and
//! `served` stays empty.
//!
//! # Requests
//! Each request is sent as the MRA client's request to Expressway-C's front:
//! `GET http://<front>:<port>/<base64 domain/https/host/port>/<path>`, mapped by a `remap.config`
//! rule per target (`map http://<front>:<port>/<token>/ https://<host>:<port>/`) to the node.
//! The scenario names every target it may request up front ([`Verifier::foresee`]) and the
//! first start writes a rule for each; a target not foreseen gets its rule by a restart.
//! A configuration change restarts ATS before the next request, as it does on the product.
//! A restart drops ATS's per-origin state: its TLS session cache (sessions are resumed by
//! name, across ports), HostDB, and failed-attempt counts (an origin that failed often gets
//! one attempt instead of four). The snapshots show that state, so a target first requested
//! still meets a fresh ATS, as if started for it, unless no request has reached a node since
//! the start (only then is the restart skipped: it would change nothing). A name whose answer
//! changes after ATS may have cached it also restarts ATS.
//! Discovery with "TLS verify mode" On while the traffic server verifies nothing gets its rule
//! an `ENFORCED`/`ALL` override (`conf_remap.so`): the nearest the real ATS comes to that check.
//!
//! # Lifetime
//! ATS is killed when the verifier is dropped (also while unwinding from a panic) and when a
//! start fails. The host's is spawned through `setpriv --pdeathsig KILL` from the namespace
//! thread, so the kernel kills it if that thread (or the whole process, on Ctrl-C) goes away
//! first; a container's is run by its supervisor, which kills it and ends the container when
//! this process's end of its control FIFO closes (see `crate::container`).
//!
//! # Parts
//! This module is the verifier itself ([`AtsVerifier`]: start, restart, requests) and its
//! [`AtsFactory`]. `netns` makes the namespace and runs jobs in it; `relay` holds the relays
//! and what they read off the wire; `stubs` the DNS stub and its records, and the readiness
//! responder; `client` the HTTP client that talks to ATS; `config` lays out the runroot and
//! the environment; `diags` reads diags.log; `tally` counts starts and requests across the
//! process ([`tally()`], for `cargo xtask bench ats`); `packets` captures the namespace's
//! loopback for `--pcap` ([`Verifier::capture_packets`]).

mod client;
mod config;
mod diags;
mod launch;
mod netns;
mod packets;
mod relay;
mod stubs;
mod tally;

use std::collections::BTreeMap;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::builtin::describe;
use super::log::{LogWriter, Profile};
use super::{Change, Failure, ForeseenTarget, OriginRequest, OriginState, Outcome, Session, Verifier, VerifierFault};
use client::{http_get, http_send};
pub use config::Generation;
use config::{ATS_PORT, PROBE_HOST, Runroot, Target};
use diags::DIAGS_LOG;
pub use diags::failure_of;
pub use launch::Launch;
use launch::Launcher;
use netns::Netns;
use relay::{Relay, start_relay};
use stubs::{DnsRecords, DnsStub, ReadyResponder};
pub use tally::{Tally, tally};

/// How long ATS may take to answer on its port and to proxy the readiness probe.
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
    /// What the scenario said the session may request ([`Verifier::foresee`]).
    foreseen: Vec<ForeseenTarget>,
    /// The targets requested so far.
    used: Vec<Target>,
    /// The rules of the remap.config the running ATS read.
    rules: Vec<Target>,
    /// Every host name a request named, with what the stub DNS answers for it (`None`:
    /// NXDOMAIN). Once named, ATS may hold the answer in its HostDB.
    names: BTreeMap<String, Option<IpAddr>>,
    /// What the stub DNS answers from.
    records: DnsRecords,
    relays: BTreeMap<SocketAddr, Relay>,
    /// The configuration changed, or ATS may hold a name's old answer: restart before the next
    /// request.
    dirty: bool,
    /// A request reached a node since the start: ATS may hold state a fresh start would not
    /// (an origin TLS session to resume, a record of failed attempts that cuts the next
    /// request's retries).
    touched: bool,
    running: Option<Running>,
    ready: Option<ReadyResponder>,
    dns: Option<DnsStub>,
    netns: Option<Netns>,
    startups: Vec<Duration>,
    /// Whether a capture was asked for ([`Verifier::capture_packets`]), and the capture of
    /// the namespace's loopback once the namespace exists.
    capturing: bool,
    packets: Option<packets::Packets>,
    /// Addresses whose packets are dropped in ATS's namespace (a partitioned node, in-process).
    cut: Vec<Ipv4Addr>,
    /// The nftables set for them exists.
    cut_ready: bool,
    /// The container fleet whose namespace ATS runs in, reaching its nodes directly.
    fleet: Option<std::sync::Arc<crate::container::nodes::ContainerFleet>>,
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
            foreseen: Vec::new(),
            used: Vec::new(),
            rules: Vec::new(),
            names: BTreeMap::new(),
            records: DnsRecords::default(),
            relays: BTreeMap::new(),
            dirty: true,
            touched: false,
            running: None,
            ready: None,
            dns: None,
            netns: None,
            startups: Vec::new(),
            capturing: false,
            packets: None,
            cut: Vec::new(),
            cut_ready: false,
            fleet: None,
        })
    }

    /// How long each start of ATS took, until it proxied the readiness probe.
    pub fn startups(&self) -> &[Duration] {
        &self.startups
    }

    /// Starts ATS now with the session in force and the targets foreseen and seen so far
    /// (requests start it themselves; tests use this to hold a running ATS).
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

    fn netns(&mut self) -> Result<&Netns, VerifierFault> {
        if self.netns.is_none() {
            let netns = self.launcher.namespace().map_err(|e| self.fault(e))?;
            let dns = DnsStub::start(&netns, self.records.clone()).map_err(|e| self.fault(e))?;
            let ready = ReadyResponder::start(&netns).map_err(|e| self.fault(e))?;
            if self.capturing {
                self.packets = Some(packets::Packets::start(&netns).map_err(|e| self.fault(e))?);
            }
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

    /// Writes the runroot for the session in force, with a rule per target requested or
    /// foreseen.
    fn write_config(&mut self) -> Result<(), VerifierFault> {
        let session = self.session.as_ref().ok_or_else(|| self.fault("no session"))?;
        let mut rules = self.used.clone();
        for foreseen in &self.foreseen {
            let target = Target::new(&foreseen.host, foreseen.port, foreseen.purpose, session);
            if !rules.contains(&target) {
                rules.push(target);
            }
        }
        let ready_port = self.ready.as_ref().map(|r| r.port).unwrap_or(0);
        config::write_runroot(&self.runroot()?, session, &rules, ready_port).map_err(|e| self.fault(e))?;
        self.rules = rules;
        Ok(())
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

    /// (Re)starts ATS with the configuration in force and waits until it proxies.
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
        tally::started(started.elapsed());
        self.dirty = false;
        self.touched = false;
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
            // ATS opens its port ~50 ms after it starts; a refused connect costs microseconds.
            std::thread::sleep(Duration::from_millis(1));
        }
        // 2. It proxies: the readiness probe's rule maps to an address, so no name is looked up.
        loop {
            if self.exited() {
                return Err(self.startup_failure("exited while starting"));
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(self.startup_failure("never proxied the readiness probe"));
            }
            let netns = self.netns.as_ref().ok_or_else(|| self.fault("no namespace"))?;
            if let Ok((200, _, _)) = http_get(netns, ats, PROBE_HOST, "/", Duration::from_secs(2)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
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

impl AtsVerifier {
    /// Drops (`cut`) or lets through packets to `ip` in ATS's namespace (in-process tier).
    fn cut(&mut self, ip: IpAddr, cut: bool) -> Result<(), VerifierFault> {
        let IpAddr::V4(v4) = ip else { return Ok(()) };
        if self.cut.contains(&v4) == cut {
            return Ok(());
        }
        let setup = !self.cut_ready;
        let netns = self.netns()?;
        let element = format!("{{ {v4} }}");
        let verb = if cut { "add" } else { "delete" };
        let ran = netns
            .run(move || -> Result<(), String> {
                let mut commands: Vec<Vec<String>> = Vec::new();
                if setup {
                    commands.extend(
                        crate::container::nodes::CUT_SETUP.iter().map(|a| a.iter().map(|s| s.to_string()).collect()),
                    );
                }
                commands.push(
                    ["nft", verb, "element", "inet", "mralab", "cut", &element].iter().map(|s| s.to_string()).collect(),
                );
                for argv in commands {
                    let out = std::process::Command::new(&argv[0])
                        .args(&argv[1..])
                        .stdin(std::process::Stdio::null())
                        .output()
                        .map_err(|e| format!("cannot run nft (apt-get install nftables): {e}"))?;
                    if !out.status.success() {
                        return Err(format!("`{}`: {}", argv.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
                    }
                }
                Ok(())
            })
            .map_err(|e| self.fault(e))?;
        ran.map_err(|e| self.fault(e))?;
        self.cut_ready = true;
        if cut {
            self.cut.push(v4);
        } else {
            self.cut.retain(|c| *c != v4);
        }
        Ok(())
    }
}

impl Drop for AtsVerifier {
    fn drop(&mut self) {
        self.packets = None;
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

    fn foresee(&mut self, targets: &[ForeseenTarget]) {
        // Hosts a URL cannot hold stay unforeseen: a rule for one would stop ATS from loading
        // remap.config; a request for one gets its rule (and ATS's verdict on it) by a restart.
        let fits = |host: &str| {
            host.parse::<IpAddr>().is_ok()
                || !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        };
        for target in targets.iter().filter(|t| fits(&t.host)) {
            if !self.foreseen.contains(target) {
                self.foreseen.push(target.clone());
            }
        }
    }

    fn reconfigure(&mut self, session: &Session, _change: Change) -> Result<(), VerifierFault> {
        // records.config and the CA file are read at start; without traffic_manager,
        // `traffic_ctl config reload` has nobody to talk to: the next request restarts ATS.
        self.session = Some(session.clone());
        self.dirty = true;
        Ok(())
    }

    fn capture_packets(&mut self) -> Result<(), VerifierFault> {
        self.capturing = true;
        if self.packets.is_none()
            && let Some(netns) = &self.netns
        {
            let mut packets = packets::Packets::start(netns).map_err(|e| self.fault(e))?;
            for at in self.relays.keys() {
                packets.node(*at);
            }
            self.packets = Some(packets);
        }
        Ok(())
    }

    fn take_packets(&mut self) -> Option<Vec<crate::capture::Frame>> {
        self.packets.take().map(packets::Packets::take)
    }

    fn join_fleet(
        &mut self,
        fleet: std::sync::Arc<crate::container::nodes::ContainerFleet>,
    ) -> Result<(), VerifierFault> {
        self.launcher.join(fleet.namespace_container()).map_err(|e| self.fault(e))?;
        self.fleet = Some(fleet);
        Ok(())
    }

    fn request(&mut self, request: &OriginRequest) -> Result<Outcome, VerifierFault> {
        if request.resolves && self.fleet.is_none() && !request.dial.ip().is_loopback() {
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
        let target = Target::new(&request.host, request.port, request.purpose, &session);
        // A target first requested meets a fresh ATS, as if it had been started for it: the
        // restart is skipped only when it would change nothing a request can see, that is when
        // the target has its rule and no request reached a node since the start. ATS keeps
        // per-origin state a restart drops and later requests show: TLS sessions it resumes
        // (by name, across ports) and failed attempts (after enough, a request to that origin
        // gets one attempt instead of 1 + retries). A target without a rule needs one: restart.
        if !self.used.contains(&target) {
            if !self.rules.contains(&target) || self.touched {
                self.dirty = true;
            }
            self.used.push(target.clone());
        }
        // The stub DNS answers a name as the modelled network does: a name that does not resolve
        // is NXDOMAIN, as a name no DNS server knows, and gets no relay. A name whose answer
        // changes after ATS may have cached the old one needs a fresh ATS.
        if request.host.parse::<IpAddr>().is_err() {
            let answer = request.resolves.then_some(request.modelled_ip);
            if self.names.insert(request.host.clone(), answer).is_some_and(|old| old != answer) {
                self.dirty = true;
            }
            self.records.set(&request.host, answer);
        }
        let at = SocketAddr::new(request.modelled_ip, request.port);
        // In-process, a live cluster's failures are made here: a node that is down has no
        // relay (its address refuses), a partitioned one has its packets dropped in ATS's
        // namespace. The container fleet's nodes really are down or cut off.
        if self.fleet.is_none() && request.resolves {
            self.cut(request.modelled_ip, request.origin_state == OriginState::Silent)?;
            if request.origin_state == OriginState::Refusing {
                self.relays.remove(&at);
            }
        }
        let record = if request.resolves && self.fleet.is_none() && request.origin_state != OriginState::Refusing {
            let at = SocketAddr::new(request.modelled_ip, request.port);
            if self.relays.get(&at).is_none_or(|r| r.dial != request.dial) {
                self.relays.remove(&at);
                let netns = self.netns()?;
                let relay = start_relay(netns, at, request.dial).map_err(|e| fault_of(self.launch, e))?;
                self.relays.insert(at, relay);
                if let Some(packets) = &mut self.packets {
                    packets.node(at);
                }
            }
            Some(self.relays.get(&at).map(|r| r.seen.clone()).ok_or_else(|| self.fault("no relay"))?)
        } else {
            None
        };
        if self.dirty || self.exited() {
            self.restart()?;
        }
        let sent = Instant::now();
        if let Some(record) = &record {
            record.reset();
        }
        if let Some(fleet) = &self.fleet
            && request.resolves
        {
            fleet.mark(at).map_err(|e| self.fault(e))?;
            // The container fleet's nodes own their addresses in this namespace: their traffic
            // is on its loopback as is.
            if let Some(packets) = &mut self.packets {
                packets.node(at);
            }
        }

        let host_header = format!("{}:{}", session.expressway.front_name, request.port);
        let path = format!("{}{}", target.prefix(&session), request.path.trim_start_matches('/'));
        let netns = self.netns.as_ref().ok_or_else(|| self.fault("no namespace"))?;
        let ats = SocketAddr::from((Ipv4Addr::LOCALHOST, ATS_PORT));
        // Every attempt may wait the whole connect timeout (a partitioned node).
        let patience = REQUEST_TIMEOUT
            + Duration::from_secs(
                u64::from(session.expressway.connect_attempts_timeout + 1) * u64::from(session.expressway.attempts),
            );
        let answer = http_send(netns, ats, &request.method, &host_header, &path, patience);
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
        let mut seen = record.map(|r| r.get()).unwrap_or_default();
        // A container fleet's node counts and names what it served itself (no relay between).
        let mut handshake = None;
        if let Some(fleet) = &self.fleet
            && request.resolves
        {
            let client_tls13 = session.expressway.tls.contains(&crate::expressway::TlsVersion::Tls13);
            let node = fleet.seen(at, client_tls13).map_err(|e| fault_of(self.launch, e))?;
            seen.connections = node.connections;
            seen.served = node.served;
            handshake = node.handshake;
        }
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
        self.touched |= seen.connections > 0;
        let ats_error_page = status == 502 && outcome.body.contains("Could Not Connect");
        if outcome.failure.is_none() && ats_error_page {
            outcome.failure = Some(match (reading.ssl_error.or(reading.read_error), seen.connections) {
                (_, 0) => Failure::Connect { reason: format!("{}: no connection reached the node", request.host) },
                (Some(reason), _) => Failure::Handshake { reason },
                (None, _) => Failure::Handshake { reason: "ATS answered 502 and logged no reason".into() },
            });
        }
        if !ats_error_page && let Some(handshake) = handshake {
            outcome.tls = Some(handshake);
        } else if !ats_error_page && let Some(suite) = seen.hello {
            let name = crate::ciphers::openssl_name(rustls::CipherSuite::from(suite)).unwrap_or("unknown");
            let version = if (0x1301..=0x1305).contains(&suite) { "TLSv1.3" } else { "TLSv1.2" };
            outcome.tls = Some((version.to_string(), name.to_string()));
        }
        tally::requested(sent.elapsed());
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

    fn reaches_container_fleet(&self) -> bool {
        self.0.recipe().is_some()
    }
}
