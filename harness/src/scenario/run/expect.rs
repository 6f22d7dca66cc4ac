//! Written request expectations: how they read in a report, and which of them an outcome
//! breaks.

use crate::scenario::spec::{CheckExpect, RequestExpect};
use crate::verifier::{Failure, Outcome};

/// A request expectation in words.
pub(super) fn describe_expect(expect: &RequestExpect) -> String {
    let mut parts = Vec::new();
    if let Some(status) = expect.status {
        parts.push(format!("status {status}"));
    }
    match expect.failed {
        Some(CheckExpect::None) => parts.push("no check fails".into()),
        Some(failed) => parts.push(format!("{failed} check fails")),
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
    if let Some(attempts) = expect.attempts {
        parts.push(format!("{attempts} attempt(s)"));
    }
    if let Some(warnings) = expect.warnings {
        parts.push(format!("{warnings} WARNING line(s)"));
    }
    if let Some(errors) = expect.errors {
        parts.push(format!("{errors} ERROR line(s)"));
    }
    parts.join(", ")
}

/// The expectations of a request that do not hold.
///
/// `sent` is the certificate the node says it sent: the served expectation is checked against
/// it, since a client cannot always see the certificate (a resumed session, TLS 1.3 seen from
/// outside the handshake).
pub(super) fn check_request(expect: &RequestExpect, outcome: &Outcome, sent: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    // A verifier that cannot be configured as the scenario asks (ATS 8.1 and properties NAME)
    // takes no part: its answer is no verdict to hold against the expectation.
    if outcome.status == crate::verifier::command::UNSUPPORTED_STATUS && outcome.reason == "unsupported" {
        return out;
    }
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
        Some(Failure::Resolve { .. }) => CheckExpect::Resolve,
        Some(Failure::Connect { .. } | Failure::Refused { .. }) => CheckExpect::Connect,
    };
    if let Some(want) = expect.failed
        && want != failed
    {
        out.push(format!("expected failed check {want}, got {failed}"));
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
    if let Some(attempts) = expect.attempts
        && attempts != outcome.attempts
    {
        out.push(format!("expected {attempts} attempt(s), got {}", outcome.attempts));
    }
    if let Some(warnings) = expect.warnings
        && warnings != outcome.warnings()
    {
        out.push(format!("expected {warnings} WARNING line(s), got {}", outcome.warnings()));
    }
    if let Some(errors) = expect.errors
        && errors != outcome.errors()
    {
        out.push(format!("expected {errors} ERROR line(s), got {}", outcome.errors()));
    }
    out
}
