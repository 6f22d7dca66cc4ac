//! The protocol's messages as mralab reads and writes them: an answer line (the schema's
//! `answer`), how a verdict becomes an [`Outcome`], and the `request` message.

use super::*;

/// One answer line, as the schema describes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Answer {
    pub(super) id: u64,
    verdict: Verdict,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    check: Option<Check>,
    #[serde(default)]
    code: Option<i32>,
    #[serde(default)]
    depth: Option<usize>,
    #[serde(default)]
    log_lines: Vec<String>,
    #[serde(default)]
    served_chain: Vec<AnswerCert>,
    #[serde(default)]
    tls: Option<AnswerTls>,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    body: Option<String>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(super) enum Verdict {
    Accept,
    Reject,
    Unsupported,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(super) enum Check {
    Chain,
    Name,
    Handshake,
    Connect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AnswerCert {
    subject: String,
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    pem: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AnswerTls {
    version: String,
    cipher: String,
}

/// Which check an error text names, when the command does not say: OpenSSL's, curl's and
/// Python's wordings for a name mismatch, then for chain errors; anything else is a handshake
/// failure.
pub fn guess_check(error: &str) -> &'static str {
    let e = error.to_ascii_lowercase();
    let name_words =
        ["hostname mismatch", "ip address mismatch", "not in certificate", "doesn't match", "does not match"];
    let chain_words = [
        "self signed",
        "self-signed",
        "issuer",
        "expired",
        "not yet valid",
        "certificate verify failed",
        "unable to get",
        "path length",
        "unsuitable certificate purpose",
        "invalid ca",
    ];
    if name_words.iter().any(|w| e.contains(w)) {
        "name"
    } else if chain_words.iter().any(|w| e.contains(w)) {
        "chain"
    } else {
        "handshake"
    }
}

pub(super) fn outcome_of(answer: Answer, request: &OriginRequest) -> Outcome {
    let served = answer
        .served_chain
        .iter()
        .map(|c| {
            let der = c
                .pem
                .as_deref()
                .and_then(|p| crate::expressway::pem_certificates(p).ok())
                .and_then(|mut v| if v.is_empty() { None } else { Some(v.remove(0)) });
            match der {
                Some(der) => crate::verifier::builtin::describe(&der),
                None => ServedCert {
                    subject: c.subject.clone(),
                    issuer: c.issuer.clone().unwrap_or_default(),
                    key: c.key.clone().unwrap_or_else(|| "key not reported".into()),
                    der: Vec::new(),
                },
            }
        })
        .collect();
    let error = answer.error.clone().unwrap_or_default();
    let mut outcome = Outcome {
        log: answer.log_lines,
        served,
        tls: answer.tls.map(|t| (t.version, t.cipher)),
        attempts: 1,
        body: answer.body.unwrap_or_default(),
        ..Outcome::default()
    };
    match answer.verdict {
        Verdict::Accept => {
            outcome.status = answer.status.unwrap_or(200);
            outcome.reason = if outcome.status == 200 { "OK".into() } else { String::new() };
            // An error with an accept is a verification the command logged and let through
            // (PERMISSIVE).
            if !error.is_empty() {
                outcome.failure = Some(failure_of(answer.check, &error, answer.code, answer.depth, request));
            }
        }
        Verdict::Reject => {
            outcome.status = 502;
            outcome.reason = "connect failed".into();
            outcome.failure = Some(failure_of(answer.check, &error, answer.code, answer.depth, request));
        }
        Verdict::Unsupported => {
            outcome.status = UNSUPPORTED_STATUS;
            outcome.reason = "unsupported".into();
            outcome.failure = Some(Failure::Handshake {
                reason: if error.is_empty() { "unsupported".into() } else { format!("unsupported: {error}") },
            });
        }
    }
    outcome
}

pub(super) fn failure_of(
    check: Option<Check>,
    error: &str,
    code: Option<i32>,
    depth: Option<usize>,
    request: &OriginRequest,
) -> Failure {
    let check = check.unwrap_or(match guess_check(error) {
        "name" => Check::Name,
        "chain" => Check::Chain,
        _ => Check::Handshake,
    });
    match check {
        Check::Chain => Failure::Chain { code: code.unwrap_or(0), text: error.to_string(), depth: depth.unwrap_or(0) },
        Check::Name => Failure::Name { checked: request.host.clone() },
        Check::Handshake => Failure::Handshake { reason: error.to_string() },
        Check::Connect => Failure::Connect { reason: error.to_string() },
    }
}

/// The `request` message for one origin request.
pub fn request_message(id: u64, request: &OriginRequest) -> Value {
    let is_ip = request.host.parse::<std::net::IpAddr>().is_ok();
    json!({
        "type": "request",
        "id": id,
        "host": request.host,
        "connect": request.dial.to_string(),
        "sni": if is_ip { Value::Null } else { json!(request.host) },
        "port": request.port,
        "modelled_ip": request.modelled_ip.to_string(),
        "method": request.method,
        "path": request.path,
        "purpose": match request.purpose {
            crate::verifier::Purpose::Mra => "mra",
            crate::verifier::Purpose::Discovery { .. } => "discovery",
        },
        "tls_verify_mode": matches!(request.purpose, crate::verifier::Purpose::Discovery { tls_verify_mode: true }),
    })
}
