//! The snapshot text of a scenario run: what a person reviews when a verifier changes.
//!
//! Meaning, not bytes: subjects, issuers, SANs, key types, validity relative to the validation
//! time, what each node served and why, the traffic server's log lines, statuses, outcomes.
//! Nothing that varies between runs (loopback addresses, ports, real times) appears.

use std::fmt::Write as _;

use time::OffsetDateTime;

use super::Scenario;
use super::report::StepReport;
use crate::fleet::ResolvedFleet;
use crate::pki::Pki;

/// The snapshot of one run.
pub fn snapshot(
    scenario: &Scenario,
    pki: &Pki,
    fleet: &ResolvedFleet,
    steps: &[StepReport],
    validation_time: OffsetDateTime,
) -> String {
    let spec = &scenario.spec;
    let mut out = String::new();
    let _ = writeln!(out, "scenario {}: {}", scenario.id, spec.title);
    let _ = writeln!(out, "validity relative to the validation time T");
    let _ = writeln!(
        out,
        "expressway-c {}{}, peers {}",
        spec.expressway.version,
        spec.expressway.upgraded_from.as_ref().map(|v| format!(" (upgraded from {v})")).unwrap_or_default(),
        spec.expressway.peers.join(", ")
    );
    let _ = writeln!(out, "\n## fleet");
    for node in &fleet.nodes {
        let _ = writeln!(
            out,
            "{} ({}, cluster {}): {} {}, System > Server {}{}",
            node.name,
            node.spec.role,
            node.cluster,
            node.spec.fqdn,
            node.spec.ip,
            node.system_server(),
            if node.spec.tls13 { ", TLS 1.2 and 1.3" } else { "" }
        );
        for port in &node.ports {
            let id = |id: &Option<String>| {
                id.as_ref()
                    .and_then(|id| pki.cert(id).ok())
                    .map(|c| {
                        format!(
                            "{} [{}; {}; SAN {}; {}]",
                            c.id,
                            c.spec.subject,
                            c.key_type(),
                            c.san_list(),
                            c.validity(validation_time)
                        )
                    })
                    .unwrap_or_else(|| "none".into())
            };
            let _ = writeln!(out, "  {} rsa   {}", port.port, id(&port.rsa));
            let _ = writeln!(out, "  {} ecdsa {}", port.port, id(&port.ecdsa));
            let _ = writeln!(
                out,
                "  {} chooses by {} order; client certificate {}",
                port.port, port.order, port.client_auth
            );
        }
    }
    for step in steps {
        let _ = writeln!(out, "\n## step {}: {}", step.index, step.title);
        for line in &step.lines {
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(out, "=> {}", step.outcome);
    }
    out
}
