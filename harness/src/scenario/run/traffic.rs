//! The steps that send traffic: discovery, the Jabber login, single requests. Each request goes
//! through one peer's verifier to a fleet node; its outcome and the node's own events are
//! rendered into the step's lines.

use simulators::{EventKind, NodeEvent};

use super::expect::Seen;
use super::{Advertised, Runner};
use crate::fleet::ResolvedNode;
use crate::scenario::ScenarioError;
use crate::scenario::login::Service;
use crate::scenario::report::StepReport;
use crate::scenario::spec::{By, DiscoverStep, LoginStep, RequestStep, Works};
use crate::verifier::{Failure, Family, OriginRequest, Outcome, Purpose};

/// One connection's events being gathered: (node, port, connection number) and event lines.
type Connection = ((String, u16, u64), Vec<String>);

impl Runner<'_> {
    /// Node events since the last call: one line per connection (its events joined), node-wide
    /// events on their own, identical consecutive lines folded (`(x4)`).
    ///
    /// Returns what the node saw: the last certificate it says it sent (its CUCM name), the
    /// served identity as the node saw it, whatever the client could observe, and the last alert
    /// it received.
    pub(super) fn collect_events(&mut self, out: &mut Vec<String>) -> Result<Seen, ScenarioError> {
        let events: Vec<NodeEvent> = self.running.take_events().map_err(|e| self.running_error(e))?;
        let sent = events.iter().rev().find_map(|e| match &e.kind {
            EventKind::Handshake { identity, .. } | EventKind::CertificateSent { identity, .. } => {
                Some(identity.clone())
            }
            _ => None,
        });
        let version = events.iter().rev().find_map(|e| match &e.kind {
            EventKind::Handshake { version, .. } => Some(version.clone()),
            _ => None,
        });
        let alert = events.iter().rev().find_map(|e| match &e.kind {
            EventKind::AlertReceived { description } => Some(description.clone()),
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
        Ok(Seen { sent, alert, version })
    }

    /// Sends one request through one peer and renders it.
    pub(super) fn send(
        &mut self,
        peer: &str,
        request: &OriginRequest,
        lines: &mut Vec<String>,
    ) -> Result<Outcome, ScenarioError> {
        self.send_observed(peer, request, lines).map(|(outcome, _)| outcome)
    }

    /// Sends one request; also returns what the node saw of it.
    pub(super) fn send_observed(
        &mut self,
        peer: &str,
        request: &OriginRequest,
        lines: &mut Vec<String>,
    ) -> Result<(Outcome, Seen), ScenarioError> {
        let Some(p) = self.peers.iter_mut().find(|p| p.name == peer) else {
            return Err(self.invalid(format!("unknown peer '{peer}'")));
        };
        let outcome = p.verifier.request(request)?;
        self.note_failure(&outcome);
        // The node's side of the last connection may still be winding down (a client alert
        // it has yet to read): wait for the fleet to go quiet so that the log is complete.
        let settled = self.running.settle(std::time::Duration::from_secs(10));
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
        lines.push(format!("  <- {}", outcome.summary()));
        if !settled {
            lines.push("  (the fleet did not go quiet within 10 s; node events may be incomplete)".into());
        }
        let seen = self.collect_events(lines)?;
        Ok((outcome, seen))
    }

    /// Remembers the certificate a failed verification points at, for the report's diagrams:
    /// the certificate at the failing depth of the chain built up from the served leaf (the leaf
    /// itself for a name mismatch).
    fn note_failure(&mut self, outcome: &Outcome) {
        let (depth, why) = match &outcome.failure {
            Some(failure @ Failure::Chain { depth, .. }) => (*depth, failure.brief()),
            Some(failure @ Failure::Name { .. }) => (0, failure.brief()),
            _ => return,
        };
        let Some(leaf) = outcome.served.first() else { return };
        let Some(leaf) = self.pki.certs().find(|c| c.der.as_ref() == leaf.der.as_slice()) else { return };
        if let Some(id) = self.pki.path_to_top(&leaf.id).into_iter().nth(depth) {
            self.failed_at.entry(id).or_insert(why);
        }
    }

    /// `; valid -30d .. +365d` for a served certificate the PKI knows.
    pub(super) fn validity_of(&self, der: &[u8]) -> String {
        self.pki
            .certs()
            .find(|c| c.der.as_ref() == der)
            .map(|c| format!("; {}", c.validity(self.validation_time)))
            .unwrap_or_default()
    }

    pub(super) fn origin(
        &self,
        node: &ResolvedNode,
        host: &str,
        port: u16,
        method: &str,
        path: &str,
        purpose: Purpose,
    ) -> Result<OriginRequest, ScenarioError> {
        if !self.fleet.resolves(host) {
            return Ok(OriginRequest::unresolved(host, port, method, path, purpose));
        }
        let dial = self
            .running
            .socket(&node.name, port, node.spec.ip)
            .ok_or_else(|| self.invalid(format!("node '{}' has no listener on port {port}", node.name)))?;
        Ok(OriginRequest {
            host: host.to_string(),
            modelled_ip: node.spec.ip,
            port,
            dial,
            method: method.to_string(),
            path: path.to_string(),
            purpose,
            resolves: true,
            origin_state: self.origin_state(&node.name),
        })
    }

    pub(super) fn discover(&mut self, step: &DiscoverStep, report: &mut StepReport) -> Result<(), ScenarioError> {
        let publisher = self.expressway.discovery.publisher.clone();
        let tls_verify_mode = self.expressway.discovery.tls_verify_mode;
        report.title =
            format!("discover from {publisher} (TLS verify mode {})", if tls_verify_mode { "On" } else { "Off" });
        let peer = self.peers.first().map(|p| p.name.clone()).unwrap_or_default();
        let Some(node) = self.fleet.find_by_host(&publisher).cloned() else {
            return Err(self.invalid(format!("discovery publisher '{publisher}' is no node of the fleet")));
        };
        let request = self.origin(
            &node,
            &publisher,
            simulators::TOMCAT_PORT,
            "GET",
            "/cucm-uds/servers",
            Purpose::Discovery { tls_verify_mode },
        )?;
        let mut lines = Vec::new();
        let (outcome, seen) = self.send_observed(&peer, &request, &mut lines)?;
        report.lines.extend(lines);
        let got = if outcome.ok() { Works::Works } else { Works::Fails };
        let mut advertised = Vec::new();
        if outcome.ok() {
            let (found, unmatched) = self.fleet.discovered(&outcome.body);
            for found in &found {
                if !found.resolves {
                    report.lines.push(format!(
                        "advertised '{}' ({}) does not resolve: no DNS record in the modelled network",
                        found.name, found.node.name
                    ));
                }
            }
            advertised.extend(found.into_iter().map(|f| Advertised { name: f.name, node: f.node.name.clone() }));
            report.lines.extend(unmatched.iter().map(|name| format!("advertised '{name}' matches no node")));
            report.outcome = format!(
                "works: {}",
                advertised
                    .iter()
                    .map(|a| {
                        let unresolved = if self.fleet.resolves(&a.name) { "" } else { ", unresolved" };
                        format!("{} ({}{unresolved})", a.name, a.node)
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            self.discovered = Some(advertised.clone());
        } else {
            self.discovered = Some(Vec::new());
            report.outcome = format!("fails: {}", outcome.summary());
        }
        let want = match (self.options.verifier.family(), step.ats) {
            (Family::Ats, Some(ats)) => ats,
            _ => step.expect,
        };
        let response = step.response.as_ref().map(|r| r.for_family(self.options.verifier.family()));
        report.expected = Some(match &response {
            Some(response) => format!("discovery {want} ({})", super::expect::describe_expect(response)),
            None => format!("discovery {want}"),
        });
        if self.options.verifier.family() != Family::Other {
            if got != want {
                report.mismatches.push(format!("expected discovery {want}, got {got}"));
            }
            for m in response.iter().flat_map(|r| super::expect::check_request(r, &outcome, &seen)) {
                report.mismatches.push(format!("{peer}: {m}"));
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

    pub(super) fn login(&mut self, step: &LoginStep, report: &mut StepReport) -> Result<(), ScenarioError> {
        let Some(discovered) = self.discovered.clone() else {
            return Err(self.invalid("a login step needs a discover step before it"));
        };
        let peers = self.peer_names(&step.via)?;
        report.title = format!("login as {} via {}", self.options.login.user, peers.join(", "));
        let login = self.options.login.clone();
        let mut verdicts = Vec::new();
        for peer in &peers {
            let mut answers = Vec::new();
            let mut first_failure = None;
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
                    let node = self.fleet.node(&advertised.node).map_err(|e| self.fleet_error(e))?.clone();
                    let path = login.expand(&req.path);
                    let request =
                        self.origin(&node, &advertised.name, req.service.port(), &req.method, &path, Purpose::Mra)?;
                    let mut lines = Vec::new();
                    let outcome = self.send(peer, &request, &mut lines)?;
                    report.lines.extend(lines);
                    answers.push((i, outcome.ok()));
                    if !outcome.ok() && first_failure.is_none() {
                        first_failure = Some(format!(
                            "{} {}:{}{} -> {}",
                            req.method,
                            advertised.name,
                            req.service.port(),
                            path,
                            outcome.summary()
                        ));
                    }
                }
            }
            let verdict = crate::scenario::login::verdict(&login, !discovered.is_empty(), &answers);
            verdicts.push((peer.clone(), verdict, first_failure));
        }
        report.outcome =
            verdicts.iter().map(|(peer, v, _)| format!("{peer}: login {v}")).collect::<Vec<_>>().join("; ");
        report.actual = verdicts
            .iter()
            .map(|(peer, v, first)| match first {
                Some(first) => format!("{peer}: login {v} (first failure: {first})"),
                None => format!("{peer}: login {v}"),
            })
            .collect::<Vec<_>>()
            .join("; ");
        let family = self.options.verifier.family();
        let base = if family == Family::Ats { step.ats.unwrap_or(step.expect) } else { step.expect };
        report.expected = Some(format!("login {base}"));
        if family != Family::Other {
            for (peer, got, _) in &verdicts {
                let base = step.per_peer.get(peer).copied().unwrap_or(step.expect);
                let want = if family == Family::Ats { step.ats.unwrap_or(base) } else { base };
                if *got != want {
                    report.mismatches.push(format!("{peer}: expected login {want}, got {got}"));
                }
            }
        }
        Ok(())
    }

    pub(super) fn request(&mut self, step: &RequestStep, report: &mut StepReport) -> Result<(), ScenarioError> {
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
                let node = self.fleet.node(name).map_err(|e| self.fleet_error(e))?.clone();
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
        report.expected = Some(super::expect::describe_expect(&expect));
        let mut outcomes = Vec::new();
        let mut actual = Vec::new();
        for peer in &peers {
            let request = self.origin(&node, &host, step.port, &step.method, &step.path, Purpose::Mra)?;
            let mut lines = Vec::new();
            let (outcome, seen) = self.send_observed(peer, &request, &mut lines)?;
            report.lines.extend(lines);
            if family != Family::Other {
                for m in super::expect::check_request(&expect, &outcome, &seen) {
                    report.mismatches.push(format!("{peer}: {m}"));
                }
            }
            outcomes.push(format!("{peer}: {} {}", outcome.status, outcome.reason).trim_end().to_string());
            let failure = outcome.failure.as_ref().map(|f| format!(" {}", f.brief())).unwrap_or_default();
            actual.push(format!("{peer}: {}{failure}", outcome.status));
        }
        report.outcome = outcomes.join("; ");
        report.actual = actual.join("; ");
        Ok(())
    }
}
