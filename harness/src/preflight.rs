//! The preflight: the Expressway-C model aimed at a person's own CUCM cluster, before they
//! upgrade.
//!
//! [`check_one`] sends one request to one endpoint; [`compare_upgrade`] discovers the nodes a
//! publisher advertises and asks each node and port the same question under today's
//! configuration and the configuration the upgrade will leave (cipher order and verification
//! policy), so a node that works today and breaks afterwards is named before the upgrade.
//! `cargo xtask verify` parses arguments, resolves names and prints; every decision is here.
//!
//! This is the one place the harness dials outside loopback, through
//! [`BuiltinVerifier::danger_allow_non_loopback`]: a person aims it at their own servers.

use std::net::{IpAddr, SocketAddr};

use simulators::{TFTP_PORT, TOMCAT_PORT};
use time::OffsetDateTime;

use crate::expressway::{ExpresswaySpec, TrustStore, Version};
use crate::fleet::servers_in;
use crate::verifier::builtin::BuiltinVerifier;
use crate::verifier::{
    ClientIdentity, Failure, LogSettings, OriginRequest, Outcome, Profile, Purpose, Session, Verifier, VerifierFault,
};

/// Why a preflight could not give an answer (as opposed to answering "it fails").
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// The verifier failed as a program.
    #[error(transparent)]
    Verifier(#[from] VerifierFault),
    /// Nothing answered at the endpoint: no TLS, a refused or timed-out connection.
    #[error("nothing answered at {dial}: {reason}")]
    Unreachable {
        /// The address dialled.
        dial: SocketAddr,
        /// What the connection attempt said.
        reason: String,
    },
    /// Discovery from the publisher did not succeed, so there is nothing to compare.
    #[error("discovery from {publisher} failed: {} {}", .outcome.status, .outcome.reason)]
    Discovery {
        /// The publisher's name.
        publisher: String,
        /// What discovery got, to show the person.
        outcome: Box<Outcome>,
    },
    /// An advertised name that could not be turned into an address.
    #[error("{name}:{port}: {reason}")]
    Resolve {
        /// The advertised name.
        name: String,
        /// The port.
        port: u16,
        /// Why.
        reason: String,
    },
}

/// Expressway-C's side of a preflight: what it trusts and presents, and the model's profile.
#[derive(Debug, Clone)]
pub struct Expressway {
    /// The trust store.
    pub trust: TrustStore,
    /// The client certificate presented to nodes that ask for one (6972).
    pub identity: Option<ClientIdentity>,
    /// The model's profile.
    pub profile: Profile,
}

impl Expressway {
    /// A verifier opened on `spec`, validating at the real current time, allowed to dial
    /// outside loopback.
    fn open(&self, spec: ExpresswaySpec) -> Result<BuiltinVerifier, VerifierFault> {
        let now = OffsetDateTime::now_utc();
        let session = Session {
            peer: "vcsc".into(),
            expressway: spec,
            trust: self.trust.clone(),
            client_identity: self.identity.clone(),
            validation_time: now,
            log: LogSettings { pid: std::process::id(), ..LogSettings::seed(now) },
        };
        let mut verifier = BuiltinVerifier::danger_allow_non_loopback(self.profile);
        verifier.open(&session)?;
        Ok(verifier)
    }
}

/// The path asked for when none is given: TFTP's default configuration file on 6972, UDS's
/// version elsewhere.
pub fn default_path(port: u16) -> &'static str {
    if port == TFTP_PORT { "/SPDefault.cnf.xml" } else { "/cucm-uds/version" }
}

fn mra_request(host: &str, dial: SocketAddr, path: &str, purpose: Purpose) -> OriginRequest {
    OriginRequest {
        host: host.to_string(),
        modelled_ip: dial.ip(),
        port: dial.port(),
        dial,
        method: "GET".into(),
        path: path.to_string(),
        purpose,
        resolves: true,
        origin_state: crate::verifier::OriginState::Listening,
    }
}

/// One request to one endpoint under `spec`. A verification failure is an `Ok` outcome; an
/// endpoint where nothing answers is [`PreflightError::Unreachable`].
pub fn check_one(
    expressway: &Expressway,
    spec: ExpresswaySpec,
    host: &str,
    dial: SocketAddr,
    path: Option<&str>,
) -> Result<Outcome, PreflightError> {
    let mut verifier = expressway.open(spec)?;
    let path = path.unwrap_or_else(|| default_path(dial.port()));
    let outcome = verifier.request(&mra_request(host, dial, path, Purpose::Mra))?;
    if let Some(Failure::Connect { reason }) = &outcome.failure
        && outcome.tls.is_none()
    {
        return Err(PreflightError::Unreachable { dial, reason: reason.clone() });
    }
    Ok(outcome)
}

/// What the upgrade is: today's version and cipher string, and the version after.
#[derive(Debug, Clone)]
pub struct Upgrade {
    /// The version running today.
    pub from: Version,
    /// The version after the upgrade.
    pub to: Version,
    /// `xConfiguration Ciphers` today, when not the version's default.
    pub ciphers: Option<String>,
}

/// One node and port under both configurations.
#[derive(Debug, Clone)]
pub struct PortComparison {
    /// The advertised name.
    pub name: String,
    /// 8443 or 6972.
    pub port: u16,
    /// Today's outcome.
    pub today: Outcome,
    /// The outcome after the upgrade.
    pub after: Outcome,
}

impl PortComparison {
    /// Works today (anything but 502) and fails after the upgrade.
    pub fn breaks(&self) -> bool {
        self.today.status != 502 && self.after.status == 502
    }
}

/// The whole comparison.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The names the publisher advertises, in its order.
    pub advertised: Vec<String>,
    /// The configuration today.
    pub today: ExpresswaySpec,
    /// The configuration the upgrade leaves.
    pub after: ExpresswaySpec,
    /// Every advertised node and port that listens.
    pub ports: Vec<PortComparison>,
    /// Advertised node ports where nothing listens.
    pub not_listening: Vec<(String, u16)>,
}

impl Comparison {
    /// How many node ports break with the upgrade.
    pub fn breaks(&self) -> usize {
        self.ports.iter().filter(|p| p.breaks()).count()
    }
}

/// Discovers the nodes `publisher` advertises (reached at `publisher_dial`) and compares each
/// node's 8443 and 6972 today and after `upgrade`. `resolve` turns an advertised name and a
/// port into the address to dial (the caller's resolver, or its `--resolve` overrides).
pub fn compare_upgrade(
    expressway: &Expressway,
    upgrade: &Upgrade,
    publisher: &str,
    publisher_dial: SocketAddr,
    mut resolve: impl FnMut(&str, u16) -> Result<SocketAddr, PreflightError>,
) -> Result<Comparison, PreflightError> {
    let mut today_spec = ExpresswaySpec::new(upgrade.from.clone(), None, publisher);
    today_spec.ciphers.clone_from(&upgrade.ciphers);
    let mut after_spec = today_spec.clone();
    after_spec.upgrade(upgrade.to.clone());
    let mut today = expressway.open(today_spec.clone())?;
    let mut after = expressway.open(after_spec.clone())?;

    let discovery = today.request(&mra_request(
        publisher,
        publisher_dial,
        "/cucm-uds/servers",
        Purpose::Discovery { tls_verify_mode: false },
    ))?;
    if !discovery.ok() {
        return Err(PreflightError::Discovery { publisher: publisher.to_string(), outcome: Box::new(discovery) });
    }
    let advertised = servers_in(&discovery.body);
    let mut ports = Vec::new();
    let mut not_listening = Vec::new();
    for name in &advertised {
        for port in [TOMCAT_PORT, TFTP_PORT] {
            let dial = resolve(name, port)?;
            let request = mra_request(name, dial, default_path(port), Purpose::Mra);
            let now = today.request(&request)?;
            if now.tls.is_none() && matches!(now.failure, Some(Failure::Connect { .. })) {
                not_listening.push((name.clone(), port));
                continue;
            }
            let later = after.request(&request)?;
            ports.push(PortComparison { name: name.clone(), port, today: now, after: later });
        }
    }
    Ok(Comparison { advertised, today: today_spec, after: after_spec, ports, not_listening })
}

/// Which address a `--resolve NAME:ADDR` list gives a name, if any.
pub fn resolved(overrides: &[(String, IpAddr)], name: &str, port: u16) -> Option<SocketAddr> {
    overrides.iter().find(|(n, _)| n == name).map(|(_, ip)| SocketAddr::new(*ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(status: u16) -> Outcome {
        Outcome { status, ..Outcome::default() }
    }

    #[test]
    fn a_port_breaks_when_it_works_today_and_fails_after() {
        let compare = |today, after| PortComparison {
            name: "cucm".into(),
            port: TFTP_PORT,
            today: outcome(today),
            after: outcome(after),
        };
        assert!(compare(200, 502).breaks());
        assert!(compare(404, 502).breaks());
        assert!(!compare(502, 502).breaks());
        assert!(!compare(200, 200).breaks());
        assert!(!compare(502, 200).breaks());
    }

    #[test]
    fn the_default_path_follows_the_port() {
        assert_eq!(default_path(TFTP_PORT), "/SPDefault.cnf.xml");
        assert_eq!(default_path(TOMCAT_PORT), "/cucm-uds/version");
    }

    #[test]
    fn overrides_give_the_named_address_on_the_asked_port() {
        let ip: IpAddr = [127, 0, 0, 9].into();
        let overrides = [("cucm.lab".to_string(), ip)];
        assert_eq!(resolved(&overrides, "cucm.lab", TFTP_PORT), Some(SocketAddr::new(ip, TFTP_PORT)));
        assert_eq!(resolved(&overrides, "other", 6972), None);
    }
}
