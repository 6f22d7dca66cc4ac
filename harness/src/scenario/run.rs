//! Running one scenario: build its PKI, start its fleet, open a verifier per Expressway-C
//! peer, play the steps in order, and record what happened for the snapshot and the
//! expectation check.

use simulators::{EventKind, Fleet, NodeEvent};
use time::OffsetDateTime;

use super::login::{LoginSpec, Service};
use super::spec::{
    Acceptance, By, CheckExpect, DiscoverStep, LoginStep, OnOff, RequestExpect, RequestStep, ScenarioSpec, Step, Works,
};
use super::{Scenario, ScenarioError};
use crate::expressway::{ExpresswaySpec, TrustStore};
use crate::fleet::{ResolvedFleet, ResolvedNode};
use crate::pki::{KeyCache, Pki, Topology};
use crate::runtime::runtime;
use crate::source::did_you_mean;
use crate::verifier::{
    Change, ClientIdentity, Failure, Family, LogSettings, OriginRequest, Outcome, Purpose, Session, Verifier,
    VerifierFactory,
};

/// What to run a scenario with.
pub struct RunOptions<'a> {
    /// The verifier.
    pub verifier: &'a dyn VerifierFactory,
    /// Where keys come from.
    pub keys: KeyCache,
    /// The login every `login` step replays.
    pub login: LoginSpec,
}

impl std::fmt::Debug for RunOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions").field("verifier", &self.verifier.name()).finish_non_exhaustive()
    }
}

/// The result of one step.
#[derive(Debug, Clone)]
pub struct StepReport {
    /// 1-based.
    pub index: usize,
    /// `request GET https://cucm.steven.lab:6972/SPDefault.cnf.xml via vcsc`.
    pub title: String,
    /// What happened, for people (log lines, served certificates, node events).
    pub lines: Vec<String>,
    /// The outcome in one line.
    pub outcome: String,
    /// The written expectation in one line, for steps that have one.
    pub expected: Option<String>,
    /// Expectations that did not hold.
    pub mismatches: Vec<String>,
}

/// The result of one scenario.
#[derive(Debug, Clone)]
pub struct ScenarioRun {
    /// The scenario id.
    pub id: String,
    /// Steps, in order.
    pub steps: Vec<StepReport>,
    /// The snapshot text.
    pub snapshot: String,
    /// Every traffic server line the run produced, in order, as a diagnostic log holds them.
    pub log: Vec<String>,
    /// The scenario's title and description (Markdown), for reports.
    pub title: String,
    /// The description.
    pub description: String,
    /// Each listener's certificates at the start, as chains to draw.
    pub chains: Vec<ChainDiagram>,
}

/// One identity a node serves, with its path to the top, for a report's diagram.
#[derive(Debug, Clone)]
pub struct ChainDiagram {
    /// `cucm:6972 ecdsa`.
    pub label: String,
    /// Leaf first: (certificate id, subject, self-signed, in the first peer's trust store).
    pub links: Vec<(String, String, bool, bool)>,
}

impl ScenarioRun {
    /// Every expectation that did not hold, as `step N: ...`.
    pub fn mismatches(&self) -> Vec<String> {
        self.steps.iter().flat_map(|s| s.mismatches.iter().map(move |m| format!("step {}: {m}", s.index))).collect()
    }
}

/// A discovered node: the name the publisher advertises and the fleet node behind it.
#[derive(Debug, Clone)]
struct Advertised {
    name: String,
    node: String,
}

struct Peer {
    name: String,
    session: Session,
    verifier: Box<dyn Verifier>,
}

struct Runner<'a> {
    scenario: &'a Scenario,
    options: &'a RunOptions<'a>,
    pki: Pki,
    fleet: ResolvedFleet,
    running: Fleet,
    expressway: ExpresswaySpec,
    peers: Vec<Peer>,
    discovered: Option<Vec<Advertised>>,
    validation_time: OffsetDateTime,
    log: Vec<String>,
}

/// The topology a scenario names or writes inline.
pub fn topology_of(scenario: &Scenario) -> Result<Topology, ScenarioError> {
    let spec = &scenario.spec;
    Ok(Topology::named_or_inline(
        spec.topology.as_deref(),
        spec.certs.as_ref(),
        Some(spec.title.clone()),
        &scenario.source,
    )?)
}

/// Runs a scenario.
pub fn run(scenario: &Scenario, options: &RunOptions<'_>) -> Result<ScenarioRun, ScenarioError> {
    let spec: &ScenarioSpec = &scenario.spec;
    let topology = topology_of(scenario)?;
    let validation_time =
        if options.verifier.needs_real_clock() { OffsetDateTime::now_utc() } else { spec.validation_time };
    let pki = Pki::build(&topology, validation_time, &options.keys)?;
    let fleet = ResolvedFleet::resolve(&spec.fleet, &pki)
        .map_err(|e| ScenarioError::Fleet { id: scenario.id.clone(), message: e.to_string() })?;
    let config = fleet.config(&pki)?;
    let running = runtime()
        .block_on(Fleet::start(config))
        .map_err(|e| ScenarioError::Fleet { id: scenario.id.clone(), message: e.to_string() })?;
    let mut runner = Runner {
        scenario,
        options,
        pki,
        fleet,
        running,
        expressway: spec.expressway.clone(),
        peers: Vec::new(),
        discovered: None,
        validation_time,
        log: Vec::new(),
    };
    let result = runner.play();
    let Runner { running, .. } = runner;
    runtime().block_on(running.stop());
    result
}

impl Runner<'_> {
    fn invalid(&self, message: impl Into<String>) -> ScenarioError {
        ScenarioError::Invalid { id: self.scenario.id.clone(), message: message.into() }
    }

    fn play(&mut self) -> Result<ScenarioRun, ScenarioError> {
        self.open_peers()?;
        let _ = self.running.take_events();
        let mut steps = Vec::new();
        for (i, step) in self.scenario.spec.steps.clone().iter().enumerate() {
            let mut report = StepReport {
                index: i + 1,
                title: step.kind().to_string(),
                lines: Vec::new(),
                outcome: String::new(),
                expected: None,
                mismatches: Vec::new(),
            };
            self.step(step, &mut report)?;
            steps.push(report);
        }
        let snapshot = super::render::snapshot(self.scenario, &self.pki, &self.fleet, &steps, self.validation_time);
        Ok(ScenarioRun {
            id: self.scenario.id.clone(),
            steps,
            snapshot,
            log: std::mem::take(&mut self.log),
            title: self.scenario.spec.title.clone(),
            description: self.scenario.spec.description.clone(),
            chains: self.chains(),
        })
    }

    /// The chains each listener serves (as the scenario ends), for diagrams.
    fn chains(&self) -> Vec<ChainDiagram> {
        let trusted: Vec<String> =
            self.expressway.trust_of(self.expressway.peers.first().map_or("", String::as_str)).to_vec();
        let mut out = Vec::new();
        for node in &self.fleet.nodes {
            for port in &node.ports {
                for (alg, id) in [("rsa", &port.rsa), ("ecdsa", &port.ecdsa)] {
                    let Some(id) = id else { continue };
                    let links = self
                        .pki
                        .path_to_top(id)
                        .into_iter()
                        .filter_map(|link| self.pki.cert(&link).ok())
                        .map(|c| {
                            (c.id.clone(), c.spec.subject.to_string(), c.is_self_signed(), trusted.contains(&c.id))
                        })
                        .collect();
                    out.push(ChainDiagram { label: format!("{}:{} {alg}", node.name, port.port), links });
                }
            }
        }
        out
    }

    fn trust_store(&self, peer: &str) -> Result<TrustStore, ScenarioError> {
        let mut store = TrustStore::default();
        for id in self.expressway.trust_of(peer) {
            let cert = self.pki.cert(id)?;
            store.add(id, cert.der.clone()).map_err(|e| self.invalid(format!("[expressway] trust: {e}")))?;
        }
        Ok(store)
    }

    fn client_identity(&self) -> Result<Option<ClientIdentity>, ScenarioError> {
        Ok(ClientIdentity::from_pki(&self.pki, self.expressway.client_cert.as_deref())?)
    }

    fn open_peers(&mut self) -> Result<(), ScenarioError> {
        for peer in self.expressway.peer_trust.keys() {
            if !self.expressway.peers.contains(peer) {
                return Err(self.invalid(format!(
                    "[expressway] peer_trust names '{peer}', not one of peers {:?}{}",
                    self.expressway.peers,
                    did_you_mean(peer, self.expressway.peers.iter().map(String::as_str))
                )));
            }
        }
        let identity = self.client_identity()?;
        for name in self.expressway.peers.clone() {
            let session = Session {
                peer: name.clone(),
                expressway: self.expressway.clone(),
                trust: self.trust_store(&name)?,
                client_identity: identity.clone(),
                validation_time: self.validation_time,
                log: LogSettings { hostname: name.clone(), ..LogSettings::seed(self.scenario.spec.validation_time) },
            };
            let mut verifier = self.options.verifier.make()?;
            verifier.open(&session)?;
            self.peers.push(Peer { name, session, verifier });
        }
        Ok(())
    }

    fn peer_names(&self, via: &Option<String>) -> Result<Vec<String>, ScenarioError> {
        match via {
            None => Ok(self.peers.iter().map(|p| p.name.clone()).collect()),
            Some(via) if self.peers.iter().any(|p| &p.name == via) => Ok(vec![via.clone()]),
            Some(via) => Err(self.invalid(format!(
                "unknown Expressway-C peer '{via}'{}",
                did_you_mean(via, self.peers.iter().map(|p| p.name.as_str()))
            ))),
        }
    }

    /// Hands every peer's verifier the configuration now in force (trust stores are per peer
    /// and already edited in place by the trust-store steps).
    fn reconfigure(&mut self, change: Change) -> Result<(), ScenarioError> {
        for peer in &mut self.peers {
            peer.session.expressway = self.expressway.clone();
            peer.verifier.reconfigure(&peer.session, change)?;
        }
        Ok(())
    }

    fn step(&mut self, step: &Step, report: &mut StepReport) -> Result<(), ScenarioError> {
        match step {
            Step::Discover(discover) | Step::RefreshDiscovery(discover) => self.discover(discover, report)?,
            Step::Login(login) => self.login(login, report)?,
            Step::Request(request) => self.request(request, report)?,
            Step::Upgrade(upgrade) => {
                let from = self.expressway.version.clone();
                self.expressway.upgrade(upgrade.to.clone());
                report.title = format!("upgrade {from} -> {}", upgrade.to);
                report.outcome = format!(
                    "now {} (upgraded from {from}); policy {}; ciphers {}",
                    self.expressway.version,
                    self.expressway.policy(),
                    self.expressway.ciphers()
                );
                self.reconfigure(Change::Version)?;
            }
            Step::SetCiphers(set) => {
                let ciphers = if set.ciphers == "default" { None } else { Some(set.ciphers.clone()) };
                if let Some(c) = &ciphers {
                    crate::ciphers::CipherList::parse(c).map_err(|e| self.invalid(format!("set-ciphers: {e}")))?;
                }
                self.expressway.ciphers = ciphers;
                report.title = format!("xConfiguration Ciphers: {}", self.expressway.ciphers());
                let list = crate::ciphers::CipherList::parse(&self.expressway.ciphers())
                    .map_err(|e| self.invalid(format!("set-ciphers: {e}")))?;
                report.outcome = format!(
                    "origin cipher order: {}; a client-order node serves {}",
                    list.suite_names().join(":"),
                    list.preferred_key().map(|k| k.to_string()).unwrap_or_else(|| "nothing".into())
                );
                self.reconfigure(Change::Ciphers)?;
            }
            Step::SetVerifyOrigin(set) => {
                self.expressway.verify_origin_server = set.value == OnOff::On;
                report.title = format!(
                    "xConfiguration EdgeConfigServer VerifyOriginServer: {}",
                    if set.value == OnOff::On { "On" } else { "Off" }
                );
                report.outcome = format!("policy {}", self.expressway.policy());
                self.reconfigure(Change::Verification)?;
            }
            Step::SetPolicy(set) => {
                self.expressway.policy = Some(set.policy);
                if let Some(p) = set.properties {
                    self.expressway.properties = Some(p);
                }
                report.title =
                    format!("traffic server policy {} properties {}", set.policy, self.expressway.properties());
                report.outcome = format!("policy {}", self.expressway.policy());
                self.reconfigure(Change::Verification)?;
            }
            Step::TrustStoreAdd(add) => {
                let peers = self.peer_names(&add.peer)?;
                report.title = format!("trust-store-add {} on {}", add.certs.join(", "), peers.join(", "));
                let mut refused = Vec::new();
                for peer in &peers {
                    for id in &add.certs {
                        let der = self.pki.cert(id)?.der.clone();
                        let entry = self.peers.iter_mut().find(|p| &p.name == peer);
                        if let Some(p) = entry
                            && let Err(e) = p.session.trust.add(id, der)
                        {
                            report.lines.push(format!("{peer}: {e}"));
                            refused.push(e);
                        }
                    }
                }
                let got = if refused.is_empty() { Acceptance::Accepted } else { Acceptance::Refused };
                report.outcome = if refused.is_empty() { "accepted".into() } else { "refused".into() };
                let want = add.expect.unwrap_or(Acceptance::Accepted);
                if got != want {
                    report.mismatches.push(format!("expected the upload {want:?}, it was {got:?}"));
                }
                self.reconfigure(Change::TrustStore)?;
            }
            Step::TrustStoreRemove(remove) => {
                let peers = self.peer_names(&remove.peer)?;
                report.title = format!("trust-store-remove {} on {}", remove.certs.join(", "), peers.join(", "));
                let mut removed = 0;
                for p in self.peers.iter_mut().filter(|p| peers.contains(&p.name)) {
                    for id in &remove.certs {
                        removed += p.session.trust.remove(id);
                    }
                }
                report.outcome = format!("{removed} certificate(s) removed");
                self.reconfigure(Change::TrustStore)?;
            }
            Step::SetSystemServer(set) => {
                let node = self.fleet.node(&set.node).map_err(|e| self.invalid(e.to_string()))?.name.clone();
                self.running.set_system_server(&node, &set.name).map_err(|e| self.invalid(e.to_string()))?;
                if let Some(n) = self.fleet.nodes.iter_mut().find(|n| n.name == node) {
                    n.spec.system_server = Some(set.name.clone());
                }
                report.title = format!("CUCM System > Server: {node} advertised as {}", set.name);
                report.outcome = "saved; Expressway-C sees it after a discovery refresh".into();
            }
            Step::Reissue(reissue) => {
                let issuer = reissue.issuer.clone();
                if let Some(issuer) = &issuer {
                    self.pki.cert(issuer)?;
                }
                let cert = self.pki.reissue(&reissue.cert, |spec| {
                    spec.san.extend(reissue.add_san.iter().cloned());
                    if let Some(t) = reissue.not_before {
                        spec.not_before = t;
                    }
                    if let Some(t) = reissue.not_after {
                        spec.not_after = t;
                    }
                    if let Some(issuer) = &issuer {
                        spec.issuer = Some(toml::Spanned::new(0..0, issuer.clone()));
                        spec.ca = None;
                    }
                })?;
                report.title = format!("reissue {}", reissue.cert);
                report.outcome =
                    format!("{} now: SAN {}; {}", cert.id, cert.san_list(), cert.validity(self.validation_time));
                let users: Vec<(String, u16)> = self
                    .fleet
                    .nodes
                    .iter()
                    .flat_map(|n| n.ports.iter().map(move |p| (n, p)))
                    .filter(|(_, p)| p.rsa.as_ref() == Some(&reissue.cert) || p.ecdsa.as_ref() == Some(&reissue.cert))
                    .map(|(n, p)| (n.name.clone(), p.port))
                    .collect();
                for (node, port) in users {
                    let resolved = self.fleet.node(&node).map_err(|e| self.invalid(e.to_string()))?;
                    let Some(port_spec) = resolved.ports.iter().find(|p| p.port == port) else { continue };
                    let (rsa, ecdsa) = self.fleet.identities(&self.pki, port_spec)?;
                    self.running.set_identities(&node, port, rsa, ecdsa).map_err(|e| self.invalid(e.to_string()))?;
                    report
                        .lines
                        .push(format!("{node}:{port} serves the re-issued certificate from the next handshake"));
                }
            }
        }
        let _ = self.collect_events(&mut report.lines);
        Ok(())
    }

    /// Node events since the last call: one line per connection (its events joined), node-wide
    /// events on their own, identical consecutive lines folded (`(x4)`).
    ///
    /// Returns the last certificate a node says it sent (its CUCM name), the served identity as
    /// the node saw it, whatever the client could observe.
    fn collect_events(&mut self, out: &mut Vec<String>) -> Option<String> {
        let events: Vec<NodeEvent> = self.running.take_events();
        let sent = events.iter().rev().find_map(|e| match &e.kind {
            EventKind::Handshake { identity, .. } | EventKind::CertificateSent { identity, .. } => {
                Some(identity.clone())
            }
            _ => None,
        });
        let mut lines: Vec<(String, usize)> = Vec::new();
        let mut current: Option<Connection> = None;
        let flush = |current: &mut Option<Connection>, lines: &mut Vec<(String, usize)>| {
            if let Some(((node, port, _), kinds)) = current.take() {
                if kinds.is_empty() {
                    return;
                }
                let line = if port == 0 {
                    format!("node {node}: {}", kinds.join("; "))
                } else {
                    format!("node {node}:{port}: {}", kinds.join("; "))
                };
                match lines.last_mut() {
                    Some((last, n)) if *last == line => *n += 1,
                    _ => lines.push((line, 1)),
                }
            }
        };
        for event in events {
            let key = (event.node.clone(), event.port, event.connection);
            let same = current.as_ref().is_some_and(|(k, _)| *k == key) && event.connection != 0;
            if !same {
                flush(&mut current, &mut lines);
                current = Some((key, Vec::new()));
            }
            if !matches!(event.kind, EventKind::Connected)
                && let Some((_, kinds)) = current.as_mut()
            {
                kinds.push(event.kind.to_string());
            }
        }
        flush(&mut current, &mut lines);
        for (line, n) in lines {
            out.push(if n > 1 { format!("  {line} (x{n})") } else { format!("  {line}") });
        }
        sent
    }

    /// Sends one request through one peer and renders it.
    fn send(&mut self, peer: &str, request: &OriginRequest, lines: &mut Vec<String>) -> Result<Outcome, ScenarioError> {
        self.send_observed(peer, request, lines).map(|(outcome, _)| outcome)
    }

    /// Sends one request; also returns the certificate the node says it sent.
    fn send_observed(
        &mut self,
        peer: &str,
        request: &OriginRequest,
        lines: &mut Vec<String>,
    ) -> Result<(Outcome, Option<String>), ScenarioError> {
        let Some(p) = self.peers.iter_mut().find(|p| p.name == peer) else {
            return Err(self.invalid(format!("unknown peer '{peer}'")));
        };
        let outcome = p.verifier.request(request)?;
        // The node's side of the last connection may still be winding down (a client alert
        // it has yet to read): wait for the fleet to go quiet so that the log is complete.
        let settled = runtime().block_on(self.running.settle(std::time::Duration::from_secs(10)));
        lines.push(format!("{peer} -> {} https://{}:{}{}", request.method, request.host, request.port, request.path));
        for (i, served) in outcome.served.iter().enumerate() {
            let validity = self.validity_of(&served.der);
            lines.push(format!("  served[{i}] {served}{validity}"));
        }
        if let Some((version, suite)) = &outcome.tls {
            lines.push(format!("  tls {version} {suite}"));
        }
        for line in &outcome.log {
            lines.push(format!("  | {line}"));
        }
        self.log.extend(outcome.log.iter().cloned());
        for line in &outcome.debug {
            lines.push(format!("  (debug) {line}"));
        }
        lines.push(format!(
            "  <- {} {}{}",
            outcome.status,
            outcome.reason,
            outcome.failure.as_ref().map(|f| format!(" [{f}]")).unwrap_or_default()
        ));
        if !settled {
            lines.push("  (the fleet did not go quiet within 10 s; node events may be incomplete)".into());
        }
        let sent = self.collect_events(lines);
        Ok((outcome, sent))
    }

    /// `; valid -30d .. +365d` for a served certificate the PKI knows.
    fn validity_of(&self, der: &[u8]) -> String {
        self.pki
            .certs()
            .find(|c| c.der.as_ref() == der)
            .map(|c| format!("; {}", c.validity(self.validation_time)))
            .unwrap_or_default()
    }

    fn origin(
        &self,
        node: &ResolvedNode,
        host: &str,
        port: u16,
        method: &str,
        path: &str,
        purpose: Purpose,
    ) -> Result<OriginRequest, ScenarioError> {
        let dial = self
            .running
            .socket(&node.name, port)
            .ok_or_else(|| self.invalid(format!("node '{}' has no listener on port {port}", node.name)))?;
        Ok(OriginRequest {
            host: host.to_string(),
            modelled_ip: node.spec.ip,
            port,
            dial,
            method: method.to_string(),
            path: path.to_string(),
            purpose,
        })
    }

    fn discover(&mut self, step: &DiscoverStep, report: &mut StepReport) -> Result<(), ScenarioError> {
        let publisher = self.expressway.discovery.publisher.clone();
        let tls_verify_mode = self.expressway.discovery.tls_verify_mode;
        report.title =
            format!("discover from {publisher} (TLS verify mode {})", if tls_verify_mode { "On" } else { "Off" });
        let peer = self.peers.first().map(|p| p.name.clone()).unwrap_or_default();
        let Some(node) = self.fleet.find_by_host(&publisher).cloned() else {
            return Err(self.invalid(format!("discovery publisher '{publisher}' is no node of the fleet")));
        };
        let request =
            self.origin(&node, &publisher, 8443, "GET", "/cucm-uds/servers", Purpose::Discovery { tls_verify_mode })?;
        let mut lines = Vec::new();
        let outcome = self.send(&peer, &request, &mut lines)?;
        report.lines.extend(lines);
        let got = if outcome.ok() { Works::Works } else { Works::Fails };
        let mut advertised = Vec::new();
        if outcome.ok() {
            let (found, unmatched) = self.fleet.discovered(&outcome.body);
            advertised.extend(found.into_iter().map(|(name, node)| Advertised { name, node: node.name.clone() }));
            report.lines.extend(unmatched.iter().map(|name| format!("advertised '{name}' matches no node")));
            report.outcome = format!(
                "works: {}",
                advertised.iter().map(|a| format!("{} ({})", a.name, a.node)).collect::<Vec<_>>().join(", ")
            );
            self.discovered = Some(advertised.clone());
        } else {
            self.discovered = Some(Vec::new());
            report.outcome = format!(
                "fails: {} {}{}",
                outcome.status,
                outcome.reason,
                outcome.failure.as_ref().map(|f| format!(" [{f}]")).unwrap_or_default()
            );
        }
        let want = match (self.options.verifier.family(), step.ats) {
            (Family::Ats, Some(ats)) => ats,
            _ => step.expect,
        };
        report.expected = Some(format!("discovery {}", format!("{want:?}").to_lowercase()));
        if self.options.verifier.family() != Family::Other {
            if got != want {
                report.mismatches.push(format!("expected discovery {want:?}, got {got:?}"));
            }
            if let (Some(names), Works::Works) = (&step.advertised, got) {
                let got_names: Vec<&str> = advertised.iter().map(|a| a.name.as_str()).collect();
                if names.iter().map(String::as_str).collect::<Vec<_>>() != got_names {
                    report.mismatches.push(format!("expected advertised {names:?}, got {got_names:?}"));
                }
            }
        }
        Ok(())
    }

    fn login(&mut self, step: &LoginStep, report: &mut StepReport) -> Result<(), ScenarioError> {
        let Some(discovered) = self.discovered.clone() else {
            return Err(self.invalid("a login step needs a discover step before it"));
        };
        let peers = self.peer_names(&step.via)?;
        report.title = format!("login as {} via {}", self.options.login.user, peers.join(", "));
        let login = self.options.login.clone();
        let mut verdicts = Vec::new();
        for peer in &peers {
            let mut answers = Vec::new();
            for (i, req) in login.requests.iter().enumerate() {
                let nodes: Vec<&Advertised> = discovered
                    .iter()
                    .filter(|a| {
                        let Ok(node) = self.fleet.node(&a.node) else { return false };
                        match req.service {
                            Service::Uds | Service::Tftp => node.spec.role.is_cucm(),
                            Service::Imp => node.spec.role == crate::fleet::RoleSpec::Imp,
                            Service::Unity => node.spec.role == crate::fleet::RoleSpec::Unity,
                        }
                    })
                    .collect();
                for advertised in nodes {
                    let node = self.fleet.node(&advertised.node).map_err(|e| self.invalid(e.to_string()))?.clone();
                    let path = login.expand(&req.path);
                    let request =
                        self.origin(&node, &advertised.name, req.service.port(), &req.method, &path, Purpose::Mra)?;
                    let mut lines = Vec::new();
                    let outcome = self.send(peer, &request, &mut lines)?;
                    report.lines.extend(lines);
                    answers.push((i, outcome.ok()));
                }
            }
            let verdict = super::login::verdict(&login, !discovered.is_empty(), &answers);
            verdicts.push((peer.clone(), verdict));
        }
        report.outcome = verdicts
            .iter()
            .map(|(peer, v)| format!("{peer}: login {}", format!("{v:?}").to_lowercase()))
            .collect::<Vec<_>>()
            .join("; ");
        let family = self.options.verifier.family();
        let base = if family == Family::Ats { step.ats.unwrap_or(step.expect) } else { step.expect };
        report.expected = Some(format!("login {}", format!("{base:?}").to_lowercase()));
        if family != Family::Other {
            for (peer, got) in &verdicts {
                let base = step.per_peer.get(peer).copied().unwrap_or(step.expect);
                let want = if family == Family::Ats { step.ats.unwrap_or(base) } else { base };
                if *got != want {
                    report.mismatches.push(format!(
                        "{peer}: expected login {}, got {}",
                        format!("{want:?}").to_lowercase(),
                        format!("{got:?}").to_lowercase()
                    ));
                }
            }
        }
        Ok(())
    }

    fn request(&mut self, step: &RequestStep, report: &mut StepReport) -> Result<(), ScenarioError> {
        let (node, host) = match (&step.host, &step.node) {
            (Some(host), _) => {
                let node = self
                    .fleet
                    .find_by_host(host)
                    .cloned()
                    .ok_or_else(|| self.invalid(format!("request host '{host}' is no node of the fleet")))?;
                (node, host.clone())
            }
            (None, Some(name)) => {
                let node = self.fleet.node(name).map_err(|e| self.invalid(e.to_string()))?.clone();
                let host = match step.by {
                    By::Fqdn => node.spec.fqdn.clone(),
                    By::Ip => node.spec.ip.to_string(),
                    By::Advertised => node.system_server(),
                };
                (node, host)
            }
            (None, None) => return Err(self.invalid("a request step needs `node` or `host`")),
        };
        let peers = self.peer_names(&step.via)?;
        report.title =
            format!("request {} https://{host}:{}{} via {}", step.method, step.port, step.path, peers.join(", "));
        let family = self.options.verifier.family();
        let expect = step.expect.for_family(family);
        if step.expect.is_empty() {
            return Err(self.invalid(format!("step {}: a request must state an expectation", report.index)));
        }
        report.expected = Some(describe_expect(&expect));
        let mut outcomes = Vec::new();
        for peer in &peers {
            let request = self.origin(&node, &host, step.port, &step.method, &step.path, Purpose::Mra)?;
            let mut lines = Vec::new();
            let (outcome, sent) = self.send_observed(peer, &request, &mut lines)?;
            report.lines.extend(lines);
            if family != Family::Other {
                for m in check_request(&expect, &outcome, sent.as_deref()) {
                    report.mismatches.push(format!("{peer}: {m}"));
                }
            }
            outcomes.push(format!("{peer}: {} {}", outcome.status, outcome.reason).trim_end().to_string());
        }
        report.outcome = outcomes.join("; ");
        Ok(())
    }
}

/// One connection's events being gathered: (node, port, connection number) and event lines.
type Connection = ((String, u16, u64), Vec<String>);

/// A request expectation in words.
fn describe_expect(expect: &RequestExpect) -> String {
    let mut parts = Vec::new();
    if let Some(status) = expect.status {
        parts.push(format!("status {status}"));
    }
    match expect.failed {
        Some(CheckExpect::None) => parts.push("no check fails".into()),
        Some(failed) => parts.push(format!("{} check fails", format!("{failed:?}").to_lowercase())),
        None => {}
    }
    if let Some(code) = expect.code {
        parts.push(format!("error {code}"));
    }
    if let Some(depth) = expect.depth {
        parts.push(format!("depth {depth}"));
    }
    if let Some(served) = &expect.served {
        parts.push(format!("{served} served"));
    }
    parts.join(", ")
}

/// The expectations of a request that do not hold.
///
/// `sent` is the certificate the node says it sent: the served expectation is checked against
/// it, since a client cannot always see the certificate (a resumed session, TLS 1.3 seen from
/// outside the handshake).
fn check_request(expect: &RequestExpect, outcome: &Outcome, sent: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(status) = expect.status
        && status != outcome.status
    {
        out.push(format!("expected status {status}, got {}", outcome.status));
    }
    let failed = match &outcome.failure {
        None => CheckExpect::None,
        Some(Failure::Chain { .. }) => CheckExpect::Chain,
        Some(Failure::Name { .. }) => CheckExpect::Name,
        Some(Failure::Handshake { .. }) => CheckExpect::Handshake,
        Some(Failure::Connect { .. } | Failure::Refused { .. }) => CheckExpect::Connect,
    };
    if let Some(want) = expect.failed
        && want != failed
    {
        out.push(format!("expected failed check {want:?}, got {failed:?}"));
    }
    if let Some(code) = expect.code {
        match &outcome.failure {
            Some(Failure::Chain { code: got, .. }) if *got == code => {}
            other => out.push(format!("expected chain error {code}, got {other:?}")),
        }
    }
    if let Some(depth) = expect.depth {
        match &outcome.failure {
            Some(Failure::Chain { depth: got, .. }) if *got == depth => {}
            other => out.push(format!("expected depth {depth}, got {other:?}")),
        }
    }
    if let Some(served) = &expect.served
        && sent != Some(served.as_str())
    {
        out.push(format!("expected {served} served, got {}", sent.unwrap_or("nothing")));
    }
    out
}
