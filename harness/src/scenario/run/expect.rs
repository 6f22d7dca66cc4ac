//! Written request expectations: how they read in a report, and which of them an outcome
//! breaks.

use crate::scenario::spec::{CheckExpect, RequestExpect};
use crate::verifier::{Failure, Outcome};

/// What the node saw of a request's connections, as its events say.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    /// The last certificate it says it sent (its CUCM name).
    pub sent: Option<String>,
    /// The last TLS alert it received from the verifier (`Unknown CA`).
    pub alert: Option<String>,
    /// The protocol version of its last completed handshake (`TLSv1.3`).
    pub version: Option<String>,
}

/// The verification errors a request's WARNING lines report, in order, as `<error text> at
/// depth <n>` (from `Error=<text> server=<...> depth=<n>`).
pub(super) fn warning_sequence(outcome: &Outcome) -> Vec<String> {
    outcome
        .log
        .iter()
        .filter(|l| l.contains("] WARNING: "))
        .filter_map(|l| {
            let error = l.split(" Error=").nth(1)?.split(" server=").next()?;
            let depth = l.rsplit(" depth=").next()?;
            Some(format!("{error} at depth {depth}"))
        })
        .collect()
}

/// A request expectation in words.
pub(super) fn describe_expect(expect: &RequestExpect) -> String {
    let mut parts = Vec::new();
    if let Some(status) = expect.status {
        parts.push(format!("status {status}"));
    }
    if let Some(reason) = &expect.reason {
        parts.push(format!("reason '{reason}'"));
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
    if let Some(sequence) = &expect.sequence {
        parts.push(format!("errors logged [{}]", sequence.join("; ")));
    }
    if let Some(alert) = &expect.alert {
        parts.push(format!("alert {alert}"));
    }
    if let Some(text) = &expect.failure_text {
        parts.push(format!("failure says '{text}'"));
    }
    if let Some(tls) = &expect.tls {
        parts.push(format!("over {tls}"));
    }
    parts.join(", ")
}

/// The expectations of a request that do not hold.
///
/// `seen.sent` is the certificate the node says it sent: the served expectation is checked
/// against it, since a client cannot always see the certificate (a resumed session, TLS 1.3 seen
/// from outside the handshake). The alert is the one the node received.
pub(super) fn check_request(expect: &RequestExpect, outcome: &Outcome, seen: &Seen) -> Vec<String> {
    let sent = seen.sent.as_deref();
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
    if let Some(reason) = &expect.reason
        && *reason != outcome.reason
    {
        out.push(format!("expected reason '{reason}', got '{}'", outcome.reason));
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
    if let Some(sequence) = &expect.sequence {
        let got = warning_sequence(outcome);
        if *sequence != got {
            out.push(format!("expected errors logged [{}], got [{}]", sequence.join("; "), got.join("; ")));
        }
    }
    if let Some(alert) = &expect.alert {
        let got = seen.alert.as_deref().unwrap_or("none");
        if !alert.eq_ignore_ascii_case(got) {
            out.push(format!("expected alert {alert}, got {got}"));
        }
    }
    if let Some(text) = &expect.failure_text {
        let got = outcome.failure.as_ref().map(ToString::to_string).unwrap_or_default();
        if !got.contains(text.as_str()) {
            out.push(format!("expected the failure to say '{text}', got '{got}'"));
        }
    }
    if let Some(tls) = &expect.tls {
        let node = seen.version.as_deref().unwrap_or("no completed handshake");
        if tls != node {
            out.push(format!("expected {tls}, the node negotiated {node}"));
        }
        if let Some((reported, _)) = &outcome.tls
            && reported != tls
        {
            out.push(format!("expected {tls}, the verifier reports {reported}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(log: &[&str]) -> Outcome {
        Outcome {
            status: 200,
            reason: "OK".into(),
            log: log.iter().map(|l| (*l).to_string()).collect(),
            debug: Vec::new(),
            served: Vec::new(),
            tls: None,
            failure: None,
            attempts: 1,
            body: String::new(),
        }
    }

    const WARN20: &str = "2022-07-11T18:55:26.011+02:00 vcsc traffic_server[18242]: [ET_NET 0] WARNING: Core server \
        certificate verification failed for (cucm.steven.lab). Action=Continue Error=unable to get local issuer \
        certificate server=cucm.steven.lab(10.48.36.215) depth=0";
    const WARN21: &str = "[Jul 11 16:55:26.012] [ET_NET 0] WARNING: Core server certificate verification failed for \
        (cucm.steven.lab). Action=Continue Error=unable to verify the first certificate server=cucm.steven.lab(10.48.36.215) depth=1";

    #[test]
    fn the_sequence_is_every_warning_line_in_order_with_its_depth() {
        let o =
            outcome(&[WARN20, "2022-07-11T18:55:26.013+02:00 vcsc traffic_server[18242]: [ET_NET 0] ERROR: x", WARN21]);
        assert_eq!(
            warning_sequence(&o),
            ["unable to get local issuer certificate at depth 0", "unable to verify the first certificate at depth 1"]
        );
        assert!(warning_sequence(&outcome(&[])).is_empty());
    }

    #[test]
    fn sequence_alert_and_failure_text_each_fail_on_their_own() {
        let o = outcome(&[WARN20]);
        let seen = Seen { alert: Some("Unknown CA".into()), ..Seen::default() };
        let holds = RequestExpect {
            sequence: Some(vec!["unable to get local issuer certificate at depth 0".into()]),
            alert: Some("unknown ca".into()),
            ..RequestExpect::default()
        };
        assert!(check_request(&holds, &o, &seen).is_empty());
        let order = RequestExpect { sequence: Some(Vec::new()), ..RequestExpect::default() };
        assert_eq!(check_request(&order, &o, &seen).len(), 1);
        let none = RequestExpect { alert: Some("none".into()), ..RequestExpect::default() };
        assert_eq!(check_request(&none, &o, &seen), ["expected alert none, got Unknown CA"]);
        assert!(check_request(&none, &o, &Seen::default()).is_empty());
        let text = RequestExpect { failure_text: Some("alert unknown ca".into()), ..RequestExpect::default() };
        assert_eq!(check_request(&text, &o, &seen), ["expected the failure to say 'alert unknown ca', got ''"]);
    }

    #[test]
    fn the_tls_version_is_held_against_the_node_and_the_verifiers_report() {
        let tls13 = RequestExpect { tls: Some("TLSv1.3".into()), ..RequestExpect::default() };
        let node13 = Seen { version: Some("TLSv1.3".into()), ..Seen::default() };
        let reported = |version: &str| Outcome { tls: Some((version.into(), "x".into())), ..outcome(&[]) };
        assert!(check_request(&tls13, &reported("TLSv1.3"), &node13).is_empty());
        // A verifier that reports no version (ATS seen from outside) is held to the node's.
        assert!(check_request(&tls13, &outcome(&[]), &node13).is_empty());
        assert_eq!(
            check_request(&tls13, &reported("TLSv1.2"), &node13),
            ["expected TLSv1.3, the verifier reports TLSv1.2"]
        );
        assert_eq!(
            check_request(&tls13, &outcome(&[]), &Seen::default()),
            ["expected TLSv1.3, the node negotiated no completed handshake"]
        );
        assert_eq!(describe_expect(&tls13), "over TLSv1.3");
    }

    #[test]
    fn the_reason_phrase_is_compared_exactly() {
        let o = Outcome { status: 502, reason: "Connection refused".into(), ..outcome(&[]) };
        let seen = Seen::default();
        let exact = RequestExpect { reason: Some("Connection refused".into()), ..RequestExpect::default() };
        assert!(check_request(&exact, &o, &seen).is_empty());
        let other = RequestExpect { reason: Some("Broken pipe".into()), ..RequestExpect::default() };
        assert_eq!(check_request(&other, &o, &seen), ["expected reason 'Broken pipe', got 'Connection refused'"]);
        let empty = RequestExpect { reason: Some(String::new()), ..RequestExpect::default() };
        assert_eq!(check_request(&empty, &o, &seen).len(), 1);
        assert_eq!(describe_expect(&exact), "reason 'Connection refused'");
    }
}
