//! Running one scenario: build its PKI, start its fleet, open a verifier per Expressway-C
//! peer, play the steps in order, and record what happened for the snapshot and the
//! expectation check.

mod changes;
mod cluster;
mod expect;
mod nodes;
mod traffic;

use std::collections::BTreeMap;

use nodes::Running;
pub use nodes::{FleetTier, RunningError};
use time::OffsetDateTime;

use super::login::LoginSpec;
use super::report::{ChainDiagram, DiagramLink, ScenarioRun, StepReport};
use super::spec::{Clock, RequestStep, ScenarioSpec, Step};
use super::{Scenario, ScenarioError};
use crate::expressway::{ExpresswaySpec, TrustStore};
use crate::fleet::ResolvedFleet;
use crate::pki::{KeyCache, Pki};
use crate::source::did_you_mean;
use crate::verifier::{
    Change, ClientIdentity, ForeseenTarget, LogSettings, Purpose, Session, Verifier, VerifierFactory,
};

/// What to run a scenario with.
pub struct RunOptions<'a> {
    /// The verifier.
    pub verifier: &'a dyn VerifierFactory,
    /// Where keys come from.
    pub keys: KeyCache,
    /// The login every `login` step replays.
    pub login: LoginSpec,
    /// Where the fleet's nodes run.
    pub fleet: FleetTier,
}

impl std::fmt::Debug for RunOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions").field("verifier", &self.verifier.name()).finish_non_exhaustive()
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
    running: Running,
    expressway: ExpresswaySpec,
    peers: Vec<Peer>,
    discovered: Option<Vec<Advertised>>,
    validation_time: OffsetDateTime,
    log: Vec<String>,
    /// Certificates verification failed at, by id, with why (the first failure each): the
    /// report's diagrams mark them.
    failed_at: BTreeMap<String, String>,
    /// Whether to record a capture of the run.
    capture: bool,
    /// Nodes that are down or partitioned (`node-down`, `partition`); the rest listen.
    node_states: BTreeMap<String, crate::verifier::OriginState>,
}

/// Runs a scenario.
pub fn run(scenario: &Scenario, options: &RunOptions<'_>) -> Result<ScenarioRun, ScenarioError> {
    run_with(scenario, options, false)
}

/// Runs a scenario and records every connection to its nodes as a capture
/// ([`ScenarioRun::capture`]); the snapshot is the same as [`run`]'s.
pub fn run_captured(scenario: &Scenario, options: &RunOptions<'_>) -> Result<ScenarioRun, ScenarioError> {
    run_with(scenario, options, true)
}

fn run_with(scenario: &Scenario, options: &RunOptions<'_>, capture: bool) -> Result<ScenarioRun, ScenarioError> {
    let spec: &ScenarioSpec = &scenario.spec;
    let topology = scenario.topology()?;
    scenario.runs_on(options.verifier)?;
    // A pinned clock is the scenario's own time for every verifier that runs it.
    let validation_time = if options.verifier.needs_real_clock() && spec.clock != Clock::Pinned {
        OffsetDateTime::now_utc()
    } else {
        spec.validation_time
    };
    let pki = Pki::build(&topology, validation_time, &options.keys)?;
    let fleet = ResolvedFleet::resolve(&spec.fleet, &pki)
        .map_err(|source| ScenarioError::Fleet { id: scenario.id.clone(), source: Box::new(source) })?;
    let config = fleet.config(&pki)?;
    if options.fleet == FleetTier::Containers && !options.verifier.reaches_container_fleet() {
        return Err(ScenarioError::Invalid {
            id: scenario.id.clone(),
            message: format!(
                "--fleet containers: {} cannot reach a container fleet (use --verifier ats:8.1 or ats:9.2)",
                options.verifier.name()
            ),
        });
    }
    if options.fleet == FleetTier::Containers && spec.expressway.peers.len() > 1 {
        return Err(ScenarioError::Invalid {
            id: scenario.id.clone(),
            message: format!(
                "--fleet containers runs one Expressway-C peer per scenario, not {} (their traffic servers would share \
                 the fleet's namespace and its ports); run it on the in-process fleet",
                spec.expressway.peers.len()
            ),
        });
    }
    let running = Running::start(config, options.fleet)
        .map_err(|source| ScenarioError::Running { id: scenario.id.clone(), source: Box::new(source) })?;
    let mut runner = Runner {
        scenario,
        options,
        pki,
        fleet,
        running,
        expressway: ExpresswaySpec {
            connect_attempts_timeout: spec
                .connect_attempts_timeout
                .unwrap_or_else(crate::expressway::connect_attempts_timeout),
            ..spec.expressway.clone()
        },
        peers: Vec::new(),
        discovered: None,
        validation_time,
        log: Vec::new(),
        failed_at: BTreeMap::new(),
        capture,
        node_states: BTreeMap::new(),
    };
    let result = runner.play();
    let Runner { running, peers, .. } = runner;
    // The verifiers first: a traffic server in the container fleet's namespace goes before it.
    drop(peers);
    running.stop();
    result
}

impl Runner<'_> {
    fn invalid(&self, message: impl Into<String>) -> ScenarioError {
        ScenarioError::Invalid { id: self.scenario.id.clone(), message: message.into() }
    }

    fn fleet_error(&self, source: crate::fleet::FleetSpecError) -> ScenarioError {
        ScenarioError::Fleet { id: self.scenario.id.clone(), source: Box::new(source) }
    }

    fn running_error(&self, source: impl Into<RunningError>) -> ScenarioError {
        ScenarioError::Running { id: self.scenario.id.clone(), source: Box::new(source.into()) }
    }

    fn play(&mut self) -> Result<ScenarioRun, ScenarioError> {
        self.open_peers()?;
        self.running.take_events().map_err(|e| self.running_error(e))?;
        self.running.record(self.capture);
        if self.capture {
            for peer in &mut self.peers {
                peer.verifier.capture_packets()?;
            }
        }
        let mut steps = Vec::new();
        for (i, step) in self.scenario.spec.steps.clone().iter().enumerate() {
            let mut report = StepReport::new(i + 1, step.kind());
            self.step(step, &mut report)?;
            if report.actual.is_empty() {
                report.actual = report.outcome.clone();
            }
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
            capture: if self.capture { Some(self.take_capture()?) } else { None },
        })
    }

    /// The run's capture: the packets a verifier captured where it runs in a namespace of its
    /// own, else frames built from what the nodes recorded on the scenario's log clock; the
    /// nodes' TLS secrets in both.
    fn take_capture(&mut self) -> Result<crate::capture::Capture, ScenarioError> {
        use crate::capture::{Capture, client_ports, clock_start_ns};
        self.running.settle(std::time::Duration::from_secs(10));
        let recordings = self.running.take_recordings().map_err(|e| self.running_error(e))?;
        let mut wire: Option<Vec<crate::capture::Frame>> = None;
        for peer in &mut self.peers {
            if let Some(frames) = peer.verifier.take_packets() {
                wire.get_or_insert_with(Vec::new).extend(frames);
            }
        }
        if let Some(mut frames) = wire {
            frames.sort_by_key(|f| f.timestamp_ns);
            let ports = client_ports(&frames);
            return Ok(Capture::captured(&self.scenario.id, frames, &recordings, &ports));
        }
        let start = clock_start_ns(self.scenario.spec.validation_time);
        Capture::synthesised(&self.scenario.id, &recordings, start)
            .map_err(|source| ScenarioError::Capture { id: self.scenario.id.clone(), source: Box::new(source) })
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
                        .map(|c| DiagramLink {
                            id: c.id.clone(),
                            subject: c.spec.subject.to_string(),
                            self_signed: c.is_self_signed(),
                            trusted: trusted.contains(&c.id),
                            failed: self.failed_at.get(&c.id).cloned(),
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
        let foreseen = self.foreseen_targets();
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
            if let Some(fleet) = self.running.containers() {
                verifier.join_fleet(fleet)?;
            }
            verifier.foresee(&foreseen);
            self.peers.push(Peer { name, session, verifier });
        }
        Ok(())
    }

    /// Every target a peer may request in this scenario, as `origin()` in `traffic` builds
    /// them: the publisher as typed for discovery; each node under every name a request can
    /// give it (its FQDN, its address, its System > Server name now and as set-system-server
    /// steps set it) on its ports and the ports request steps ask of it; and the host of each
    /// request step that types one. Names that do not resolve are targets too: their requests
    /// reach the verifier.
    fn foreseen_targets(&self) -> Vec<ForeseenTarget> {
        let steps = &self.scenario.spec.steps;
        let discovery = &self.expressway.discovery;
        let mut targets = vec![ForeseenTarget {
            host: discovery.publisher.clone(),
            port: simulators::TOMCAT_PORT,
            purpose: Purpose::Discovery { tls_verify_mode: discovery.tls_verify_mode },
        }];
        let mut add = |host: &str, port: u16| {
            let target = ForeseenTarget { host: host.to_string(), port, purpose: Purpose::Mra };
            if !targets.contains(&target) {
                targets.push(target);
            }
        };
        for node in &self.fleet.nodes {
            let mut names = vec![node.spec.fqdn.clone(), node.spec.ip.to_string(), node.system_server()];
            let mut ports: Vec<u16> = node.ports.iter().map(|p| p.port).collect();
            for step in steps {
                match step {
                    Step::SetSystemServer(set) if set.node == node.name => names.push(set.name.clone()),
                    Step::Request(request) if request.node.as_ref() == Some(&node.name) => ports.push(request.port),
                    _ => {}
                }
            }
            for name in &names {
                for &port in &ports {
                    add(name, port);
                }
            }
        }
        for step in steps {
            if let Step::Request(RequestStep { host: Some(host), port, .. }) = step {
                add(host, *port);
            }
        }
        targets
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

    /// Plays one step: each kind has its method, in `traffic` (steps that send requests) or
    /// `changes` (steps that change configuration or certificates).
    fn step(&mut self, step: &Step, report: &mut StepReport) -> Result<(), ScenarioError> {
        match step {
            Step::Discover(discover) | Step::RefreshDiscovery(discover) => self.discover(discover, report)?,
            Step::Login(login) => self.login(login, report)?,
            Step::Request(request) => self.request(request, report)?,
            Step::Upgrade(upgrade) => self.upgrade(upgrade, report)?,
            Step::SetCiphers(set) => self.set_ciphers(set, report)?,
            Step::SetVerifyOrigin(set) => self.set_verify_origin(set, report)?,
            Step::SetPolicy(set) => self.set_policy(set, report)?,
            Step::TrustStoreAdd(add) => self.trust_store_add(add, report)?,
            Step::TrustStoreRemove(remove) => self.trust_store_remove(remove, report)?,
            Step::SetSystemServer(set) => self.set_system_server(set, report)?,
            Step::Reissue(reissue) => self.reissue(reissue, report)?,
            Step::NodeDown(node) => self.cluster_change(node, cluster::ClusterChange::Down, report)?,
            Step::NodeUp(node) => self.cluster_change(node, cluster::ClusterChange::Up, report)?,
            Step::Partition(node) => self.cluster_change(node, cluster::ClusterChange::Partition, report)?,
            Step::Heal(node) => self.cluster_change(node, cluster::ClusterChange::Heal, report)?,
        }
        self.collect_events(&mut report.lines)?;
        Ok(())
    }
}
