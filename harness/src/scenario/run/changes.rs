//! The steps that change something rather than send traffic: Expressway-C's configuration
//! (upgrade, ciphers, VerifyOriginServer, policy, trust stores) and the CUCM side (System >
//! Server, re-issued certificates). Each sets the step's title and outcome and tells the
//! verifiers what changed.

use super::Runner;
use crate::ciphers::CipherList;
use crate::scenario::ScenarioError;
use crate::scenario::report::StepReport;
use crate::scenario::spec::{
    Acceptance, OnOff, ReissueStep, SetCiphersStep, SetPolicyStep, SetSystemServerStep, SetVerifyOriginStep,
    TrustStoreStep, UpgradeStep,
};
use crate::verifier::Change;

impl Runner<'_> {
    pub(super) fn upgrade(&mut self, upgrade: &UpgradeStep, report: &mut StepReport) -> Result<(), ScenarioError> {
        let from = self.expressway.version.clone();
        self.expressway.upgrade(upgrade.to.clone());
        report.title = format!("upgrade {from} -> {}", upgrade.to);
        report.outcome = format!(
            "now {} (upgraded from {from}); policy {}; ciphers {}",
            self.expressway.version,
            self.expressway.policy(),
            self.expressway.ciphers()
        );
        self.reconfigure(Change::Version)
    }

    pub(super) fn set_ciphers(&mut self, set: &SetCiphersStep, report: &mut StepReport) -> Result<(), ScenarioError> {
        self.expressway.ciphers = if set.ciphers == "default" { None } else { Some(set.ciphers.clone()) };
        // The string in force: the one given, or the version's default (always valid).
        let list =
            CipherList::parse(&self.expressway.ciphers()).map_err(|e| self.invalid(format!("set-ciphers: {e}")))?;
        report.title = format!("xConfiguration Ciphers: {}", self.expressway.ciphers());
        report.outcome = format!(
            "origin cipher order: {}; a client-order node serves {}",
            list.suite_names().join(":"),
            list.preferred_key().map(|k| k.to_string()).unwrap_or_else(|| "nothing".into())
        );
        self.reconfigure(Change::Ciphers)
    }

    pub(super) fn set_verify_origin(
        &mut self,
        set: &SetVerifyOriginStep,
        report: &mut StepReport,
    ) -> Result<(), ScenarioError> {
        self.expressway.verify_origin_server = set.value == OnOff::On;
        report.title = format!(
            "xConfiguration EdgeConfigServer VerifyOriginServer: {}",
            if set.value == OnOff::On { "On" } else { "Off" }
        );
        report.outcome = format!("policy {}", self.expressway.policy());
        self.reconfigure(Change::Verification)
    }

    pub(super) fn set_policy(&mut self, set: &SetPolicyStep, report: &mut StepReport) -> Result<(), ScenarioError> {
        self.expressway.policy = Some(set.policy);
        if let Some(p) = set.properties {
            self.expressway.properties = Some(p);
        }
        report.title = format!("traffic server policy {} properties {}", set.policy, self.expressway.properties());
        report.outcome = format!("policy {}", self.expressway.policy());
        self.reconfigure(Change::Verification)
    }

    pub(super) fn trust_store_add(
        &mut self,
        add: &TrustStoreStep,
        report: &mut StepReport,
    ) -> Result<(), ScenarioError> {
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
            report.mismatches.push(format!("expected the upload {want}, it was {got}"));
        }
        self.reconfigure(Change::TrustStore)
    }

    pub(super) fn trust_store_remove(
        &mut self,
        remove: &TrustStoreStep,
        report: &mut StepReport,
    ) -> Result<(), ScenarioError> {
        let peers = self.peer_names(&remove.peer)?;
        report.title = format!("trust-store-remove {} on {}", remove.certs.join(", "), peers.join(", "));
        let mut removed = 0;
        for p in self.peers.iter_mut().filter(|p| peers.contains(&p.name)) {
            for id in &remove.certs {
                removed += p.session.trust.remove(id);
            }
        }
        report.outcome = format!("{removed} certificate(s) removed");
        self.reconfigure(Change::TrustStore)
    }

    pub(super) fn set_system_server(
        &mut self,
        set: &SetSystemServerStep,
        report: &mut StepReport,
    ) -> Result<(), ScenarioError> {
        let node = self.fleet.node(&set.node).map_err(|e| self.fleet_error(e))?.name.clone();
        self.running.set_system_server(&node, &set.name).map_err(|e| self.running_error(e))?;
        if let Some(n) = self.fleet.nodes.iter_mut().find(|n| n.name == node) {
            n.spec.system_server = Some(set.name.clone());
        }
        report.title = format!("CUCM System > Server: {node} advertised as {}", set.name);
        report.outcome = "saved; Expressway-C sees it after a discovery refresh".into();
        Ok(())
    }

    pub(super) fn reissue(&mut self, reissue: &ReissueStep, report: &mut StepReport) -> Result<(), ScenarioError> {
        let issuer = reissue.issuer.clone();
        if let Some(issuer) = &issuer {
            self.pki.cert(issuer)?;
        }
        let cert = self.pki.reissue(&reissue.cert, |spec| {
            spec.san.extend(reissue.add_san.iter().cloned());
            if let Some(t) = reissue.not_before {
                spec.not_before = toml::Spanned::new(0..0, t);
            }
            if let Some(t) = reissue.not_after {
                spec.not_after = toml::Spanned::new(0..0, t);
            }
            if let Some(issuer) = &issuer {
                spec.issuer = Some(toml::Spanned::new(0..0, issuer.clone()));
                spec.ca = None;
            }
        })?;
        report.title = format!("reissue {}", reissue.cert);
        report.outcome = format!("{} now: SAN {}; {}", cert.id, cert.san_list(), cert.validity(self.validation_time));
        let users: Vec<(String, u16)> = self
            .fleet
            .nodes
            .iter()
            .flat_map(|n| n.ports.iter().map(move |p| (n, p)))
            .filter(|(_, p)| p.rsa.as_ref() == Some(&reissue.cert) || p.ecdsa.as_ref() == Some(&reissue.cert))
            .map(|(n, p)| (n.name.clone(), p.port))
            .collect();
        for (node, port) in users {
            let resolved = self.fleet.node(&node).map_err(|e| self.fleet_error(e))?;
            let Some(port_spec) = resolved.ports.iter().find(|p| p.port == port) else { continue };
            let (rsa, ecdsa) = self.fleet.identities(&self.pki, port_spec)?;
            self.running.set_identities(&node, port, rsa, ecdsa).map_err(|e| self.running_error(e))?;
            report.lines.push(format!("{node}:{port} serves the re-issued certificate from the next handshake"));
        }
        Ok(())
    }
}
