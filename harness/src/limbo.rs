//! The catalogue's certificate cases as x509-limbo test cases (`cargo xtask export limbo DIR`).
//!
//! x509-limbo (C2SP) is a suite of X.509 path-validation cases with harnesses for many
//! libraries; exporting ours lets those harnesses run CUCM-shaped PKIs. One case per scenario,
//! node, port, served identity (RSA, ECDSA) and name (the node's FQDN, then its IP), taken from
//! the scenario's initial state (its PKI at the validation time, the trust store of its first
//! peer); steps (reissues, uploads) are not replayed.
//!
//! The expected result is limbo's, not Expressway's: the chain as OpenSSL 3.0 builds it (RFC 5280
//! path validation with a serverAuth purpose) and the name as limbo reads RFC 6125 (DNS SANs with a
//! leftmost wildcard, IP SANs for an IP, never the CN). A case whose result depends on
//! Expressway's own rules is listed as skipped with its reason, not exported:
//! - `cn-fallback`: the FQDN matches only the subject CN (or matches the SANs only as the traffic
//!   server reads them);
//! - `ip-string`: reached by IP, the traffic server checks the IP *string* against DNS SANs and
//!   the CN and ignores IP SANs: limbo checks IP SANs;
//! - `openssl-versions-disagree`: OpenSSL 1.1.1 and 3.0 give different chain verdicts, so RFC
//!   5280's reading is not settled here;
//! - `leaf-as-trust-anchor`: the trust store holds the leaf itself (Expressway's remedy for a
//!   self-signed certificate), which limbo's harnesses do not all accept as an anchor.
//!
//! The JSON Schema is `harness/data/limbo-schema.json` (copied from x509-limbo, source noted in
//! `harness/data/limbo-schema.SOURCE.md`).

use std::net::IpAddr;

use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer as _, X509Certificate};

use crate::chain::{self, ChainInput, OPENSSL_DEFAULT_VERIFY_DEPTH, OpensslFlavour};
use crate::fleet::ResolvedFleet;
use crate::pki::{KeyCache, Pki};
use crate::scenario::{Catalogue, Scenario, ScenarioError};
use crate::verifier::name_matches;

/// A case left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The id it would have had.
    pub id: String,
    /// `cn-fallback`, `ip-string`, `openssl-versions-disagree`, `leaf-as-trust-anchor`.
    pub reason: &'static str,
    /// The reason in words.
    pub detail: String,
}

/// The export: `limbo.json`'s content and the skipped cases.
#[derive(Debug, Clone)]
pub struct Export {
    /// `{"version": 1, "testcases": [...]}`.
    pub limbo: Value,
    /// Cases left out.
    pub skipped: Vec<Skipped>,
}

/// Whether `wanted` is in the certificate as RFC 6125 reads it: DNS SANs (leftmost `*` label
/// only) for a name, IP SANs for an address, never the CN.
pub fn rfc6125_matches(cert: &X509Certificate<'_>, wanted: &str) -> bool {
    let ip: Option<IpAddr> = wanted.parse().ok();
    let Ok(Some(san)) = cert.subject_alternative_name() else { return false };
    san.value.general_names.iter().any(|name| match (name, ip) {
        (GeneralName::DNSName(dns), None) => dns_matches(dns, wanted),
        (GeneralName::IPAddress(bytes), Some(IpAddr::V4(v4))) => *bytes == v4.octets(),
        (GeneralName::IPAddress(bytes), Some(IpAddr::V6(v6))) => *bytes == v6.octets(),
        _ => false,
    })
}

fn dns_matches(pattern: &str, wanted: &str) -> bool {
    let (pattern, wanted) = (pattern.to_ascii_lowercase(), wanted.to_ascii_lowercase());
    match pattern.strip_prefix("*.") {
        Some(rest) => wanted.split_once('.').is_some_and(|(label, tail)| !label.is_empty() && tail == rest),
        None => pattern == wanted,
    }
}

fn id_part(s: &str) -> String {
    let cleaned: String = s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '-' }).collect();
    if cleaned.starts_with(|c: char| c.is_ascii_alphabetic()) { cleaned } else { format!("n{cleaned}") }
}

/// The cases of one scenario.
fn cases_of(
    scenario: &Scenario,
    keys: &KeyCache,
    out: &mut Vec<Value>,
    skipped: &mut Vec<Skipped>,
) -> Result<(), ScenarioError> {
    let spec = &scenario.spec;
    let topology = scenario.topology()?;
    let pki = Pki::build(&topology, spec.validation_time, keys)?;
    let fleet = ResolvedFleet::resolve(&spec.fleet, &pki)
        .map_err(|source| ScenarioError::Fleet { id: scenario.id.clone(), source: Box::new(source) })?;
    let peer = spec.expressway.peers.first().cloned().unwrap_or_default();
    let trust_ids = spec.expressway.trust_of(&peer).to_vec();
    let mut trusted = Vec::new();
    for id in &trust_ids {
        trusted.push(pki.cert(id)?.der.clone());
    }
    let trusted_pem: Vec<String> = trust_ids.iter().filter_map(|id| pki.cert(id).ok().map(|c| c.pem())).collect();
    let when = spec.validation_time;
    let mut seen = std::collections::BTreeSet::new();
    for node in &fleet.nodes {
        for port in &node.ports {
            for (kind, id) in [("rsa", &port.rsa), ("ecdsa", &port.ecdsa)] {
                let Some(id) = id else { continue };
                let leaf = pki.cert(id)?;
                let sent = pki.sent_chain(id)?;
                for (by, name) in [("fqdn", node.spec.fqdn.clone()), ("ip", node.spec.ip.to_string())] {
                    if !seen.insert((id.clone(), name.clone())) {
                        continue;
                    }
                    let case_id = format!(
                        "mralab::{}::{}-{}-{kind}-{by}",
                        scenario.id.split("::").map(id_part).collect::<Vec<_>>().join("::"),
                        id_part(&node.name),
                        port.port
                    );
                    let verdict = |flavour| {
                        chain::verify(&ChainInput {
                            peer_chain: &sent,
                            trusted: &trusted,
                            validation_time: when.unix_timestamp(),
                            purpose: Some(chain::Purpose::SslServer),
                            flavour,
                            stop_at_first_error: true,
                            security_level: 0,
                            verify_depth: OPENSSL_DEFAULT_VERIFY_DEPTH,
                        })
                    };
                    let (v3, v1) = (verdict(OpensslFlavour::V3_0), verdict(OpensslFlavour::V1_1_1));
                    let Ok((_, cert)) = X509Certificate::from_der(leaf.der.as_ref()) else { continue };
                    let rfc = rfc6125_matches(&cert, &name);
                    let expressway = name_matches(&cert, &name, false);
                    let skip = |reason: &'static str, detail: String| Skipped { id: case_id.clone(), reason, detail };
                    if trusted.iter().any(|t| t.as_ref() == leaf.der.as_ref()) {
                        skipped.push(skip(
                            "leaf-as-trust-anchor",
                            format!("{id} is itself in the trust store (the remedy for a self-signed certificate)"),
                        ));
                        continue;
                    }
                    if v3.trusted != v1.trusted {
                        skipped.push(skip(
                            "openssl-versions-disagree",
                            format!("OpenSSL 3.0 says {}, 1.1.1 says {}", v3.trusted, v1.trusted),
                        ));
                        continue;
                    }
                    if rfc != expressway {
                        let (reason, detail) = if by == "ip" {
                            (
                                "ip-string",
                                format!(
                                    "{name}: the traffic server checks the IP string against DNS SANs and the CN ({}), RFC 6125 checks IP SANs ({})",
                                    if expressway { "match" } else { "no match" },
                                    if rfc { "match" } else { "no match" }
                                ),
                            )
                        } else {
                            ("cn-fallback", format!(
                                "{name}: found {} by the traffic server (SANs, then the CN), {} under limbo's RFC 6125 reading (SANs only, never the CN)",
                                if expressway { "" } else { "not" },
                                if rfc { "" } else { "not" }
                            ).replace("  ", " "))
                        };
                        skipped.push(skip(reason, detail));
                        continue;
                    }
                    let ok = v3.trusted && rfc;
                    let why = match (v3.errors.first(), rfc) {
                        (Some(e), _) => format!("the chain fails: {:?} at depth {}", e.code, e.depth),
                        (None, false) => format!("`{name}` is not among the SANs"),
                        (None, true) => "the chain and the name hold".into(),
                    };
                    out.push(json!({
                        "id": case_id,
                        "conflicts_with": [],
                        "features": [],
                        "importance": "medium",
                        "description": format!(
                            "mralab scenario `{}` ({}): {} serves `{id}` ({kind}) on {}; reached as `{name}`: {why}.",
                            scenario.id, spec.title, node.name, port.port
                        ),
                        "validation_kind": "SERVER",
                        "trusted_certs": trusted_pem,
                        "untrusted_intermediates": sent.iter().skip(1).map(|d| pem(d.as_ref())).collect::<Vec<_>>(),
                        "peer_certificate": leaf.pem(),
                        "peer_certificate_key": Value::Null,
                        "validation_time": when.format(&Rfc3339).unwrap_or_default(),
                        "signature_algorithms": [],
                        "key_usage": [],
                        "extended_key_usage": ["serverAuth"],
                        "expected_result": if ok { "SUCCESS" } else { "FAILURE" },
                        "expected_peer_name": {"kind": if by == "ip" { "IP" } else { "DNS" }, "value": name},
                        "expected_peer_names": [],
                        "max_chain_depth": Value::Null,
                        "crls": [],
                    }));
                }
            }
        }
    }
    Ok(())
}

fn pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = "-----BEGIN CERTIFICATE-----\n".to_string();
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out + "-----END CERTIFICATE-----\n"
}

/// Exports every scenario of the catalogue.
pub fn export(catalogue: &Catalogue, keys: &KeyCache) -> Result<Export, ScenarioError> {
    let mut testcases = Vec::new();
    let mut skipped = Vec::new();
    for file in catalogue.files()? {
        let scenario = catalogue.load(&file)?;
        cases_of(&scenario, keys, &mut testcases, &mut skipped)?;
    }
    Ok(Export { limbo: json!({"version": 1, "testcases": testcases}), skipped })
}

/// A stored chain case that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ChainCaseError {
    /// The folder or a file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file or folder.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not a stored case.
    #[error("{}: {source}", path.display())]
    Parse {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: Box<toml::de::Error>,
    },
    /// A certificate is not hex.
    #[error("{}: {source}", path.display())]
    Hex {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: chain::oracle::HexError,
    },
}

/// The chain cases stored with both real libraries' verdicts (`harness/tests/data/chain/*.toml`:
/// the chain generator's minimised disagreements and the name-constraint cases) as limbo cases,
/// sorted by file name. The expected result is the libraries': SUCCESS when OpenSSL 1.1.1w and
/// 3.0 both report no error. Skipped, with the reason: `openssl-versions-disagree`;
/// `security-level` (a key or digest refused at the case's security level, which limbo does not
/// set); `verify-depth` (a verify depth other than OpenSSL's default).
pub fn chain_cases(dir: &std::path::Path) -> Result<(Vec<Value>, Vec<Skipped>), ChainCaseError> {
    let read_dir = |source| ChainCaseError::Read { path: dir.to_path_buf(), source };
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map_err(read_dir)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(read_dir)?;
    files.retain(|p| p.extension().is_some_and(|e| e == "toml"));
    files.sort();
    let (mut out, mut skipped) = (Vec::new(), Vec::new());
    for path in files {
        let text =
            std::fs::read_to_string(&path).map_err(|source| ChainCaseError::Read { path: path.clone(), source })?;
        let case: chain::oracle::StoredCase = toml::from_str(&text)
            .map_err(|source| ChainCaseError::Parse { path: path.clone(), source: Box::new(source) })?;
        let certs = case.certs().map_err(|source| ChainCaseError::Hex { path: path.clone(), source })?;
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let id = format!("mralab::chain::{}", id_part(&stem));
        let skip = |reason, detail: String| Skipped { id: id.clone(), reason, detail };
        let verdicts: Vec<(&String, &chain::oracle::OracleVerdict)> = case.verdict.iter().collect();
        let trusted: Vec<bool> = verdicts.iter().map(|(_, v)| v.errors.is_empty() && v.undecodable.is_none()).collect();
        let codes = |v: &chain::oracle::OracleVerdict| {
            v.errors.iter().map(|(code, depth)| format!("{code}@{depth}")).collect::<Vec<_>>().join(" ")
        };
        if verdicts.len() < 2 || trusted.iter().any(|t| *t != trusted[0]) {
            let said: Vec<String> = verdicts.iter().map(|(f, v)| format!("{f}: [{}]", codes(v))).collect();
            skipped.push(skip("openssl-versions-disagree", said.join(", ")));
            continue;
        }
        // 66, 67, 68: EE key, CA key, CA digest too weak for the security level.
        if let Some((flavour, _)) =
            verdicts.iter().find(|(_, v)| v.errors.iter().any(|(code, _)| matches!(code, 66..=68)))
        {
            skipped.push(skip(
                "security-level",
                format!("{flavour} refuses a key or digest at security level {}", case.security_level),
            ));
            continue;
        }
        if case.verify_depth != OPENSSL_DEFAULT_VERIFY_DEPTH {
            skipped.push(skip("verify-depth", format!("verify depth {}", case.verify_depth)));
            continue;
        }
        let Some((leaf, intermediates)) = certs.peer.split_first() else { continue };
        let dn_constraint = certs.peer.iter().chain(&certs.trusted).any(|der| {
            X509Certificate::from_der(der.as_ref()).is_ok_and(|(_, cert)| {
                cert.name_constraints().ok().flatten().is_some_and(|nc| {
                    let trees = nc.value.permitted_subtrees.iter().chain(nc.value.excluded_subtrees.iter()).flatten();
                    trees.into_iter().any(|tree| matches!(tree.base, GeneralName::DirectoryName(_)))
                })
            })
        });
        let said: Vec<String> = verdicts
            .iter()
            .map(
                |(f, v)| {
                    if v.errors.is_empty() { format!("{f} trusts it") } else { format!("{f} reports [{}]", codes(v)) }
                },
            )
            .collect();
        let when = time::OffsetDateTime::from_unix_timestamp(case.time).map(|t| t.format(&Rfc3339).unwrap_or_default());
        out.push(json!({
            "id": id,
            "conflicts_with": [],
            "features": if dn_constraint { vec!["name-constraint-dn"] } else { Vec::new() },
            "importance": "medium",
            "description": format!("mralab chain case `{stem}`: {} ({}.)", case.description.trim_end_matches('.'), said.join("; ")),
            "validation_kind": "SERVER",
            "trusted_certs": certs.trusted.iter().map(|d| pem(d.as_ref())).collect::<Vec<_>>(),
            "untrusted_intermediates": intermediates.iter().map(|d| pem(d.as_ref())).collect::<Vec<_>>(),
            "peer_certificate": pem(leaf.as_ref()),
            "peer_certificate_key": Value::Null,
            "validation_time": when.unwrap_or_default(),
            "signature_algorithms": [],
            "key_usage": [],
            "extended_key_usage": if case.ssl_server { vec!["serverAuth"] } else { Vec::new() },
            "expected_result": if trusted[0] { "SUCCESS" } else { "FAILURE" },
            "expected_peer_name": Value::Null,
            "expected_peer_names": [],
            "max_chain_depth": Value::Null,
            "crls": [],
        }));
    }
    Ok((out, skipped))
}

/// `skipped.md`: the cases left out, one line each.
pub fn skipped_markdown(skipped: &[Skipped]) -> String {
    let mut out = String::from(
        "# Cases not exported to x509-limbo\n\nTheir expected result depends on rules of Expressway-C's traffic server that limbo does not share.\n\n| case | reason | detail |\n|---|---|---|\n",
    );
    for s in skipped {
        out.push_str(&format!("| {} | {} | {} |\n", s.id, s.reason, s.detail.replace('|', "\\|")));
    }
    out
}
