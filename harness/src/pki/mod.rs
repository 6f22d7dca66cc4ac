//! PKI topologies: every certificate shape a CUCM fleet can present, built with rcgen.
//!
//! A [`TopologySpec`] (TOML, embedded in scenario files or named as a built-in) is checked into
//! a [`Topology`]: issuers exist, no cycles, every CUCM-side identity has a known kind. The
//! builder then turns it into a [`Pki`]: DER and keys for every certificate, the chain each
//! server sends, and trust-store bundles. Validity is relative to a validation time, so the
//! same topology means the same thing on every day it is built.
//!
//! Building is deterministic: certificates are made in a fixed order, serials come from a
//! counter, and keys come from a [`KeyCache`] slot chosen by that order.

mod build;
pub mod builtin;
mod keys;
mod output;
pub mod spec;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use time::OffsetDateTime;

pub use build::{BuiltCert, Pki, pem_block};
pub use keys::{KeyCache, KeyError};
pub use spec::{AkiSpec, CertSpec, Eku, KeyType, KeyUsage, San, SpecError, Subject, TimeSpec, TopologySpec};

use crate::source::{Position, Source, did_you_mean, prefix};

/// Where a certificate stands in its chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// A self-signed CA.
    Root,
    /// A CA signed by another CA.
    Intermediate,
    /// An end-entity certificate (possibly self-signed, as CUCM's defaults are).
    Leaf,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Root => "root",
            Role::Intermediate => "intermediate",
            Role::Leaf => "leaf",
        })
    }
}

/// The certificates a CUCM-side node holds, by the names CUCM's Certificate Management uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CertKind {
    /// Cisco Tomcat, RSA: 8443 on CUCM, IM&P and Unity Connection.
    Tomcat,
    /// Cisco Tomcat, ECDSA.
    TomcatEcdsa,
    /// Cisco CallManager, RSA: 6972 (TFTP over HTTPS) on CUCM.
    CallManager,
    /// Cisco CallManager, ECDSA.
    CallManagerEcdsa,
    /// IM&P `cup` (SIP proxy), RSA.
    Cup,
    /// IM&P `cup-ECDSA`.
    CupEcdsa,
    /// IM&P `cup-xmpp` (XMPP), RSA.
    CupXmpp,
    /// IM&P `cup-xmpp-ECDSA`.
    CupXmppEcdsa,
    /// Expressway-C's own server certificate, also its TLS client certificate on 6972.
    Expressway,
}

impl CertKind {
    /// Every kind, in CUCM's listing order.
    pub const ALL: [CertKind; 9] = [
        CertKind::Tomcat,
        CertKind::TomcatEcdsa,
        CertKind::CallManager,
        CertKind::CallManagerEcdsa,
        CertKind::Cup,
        CertKind::CupEcdsa,
        CertKind::CupXmpp,
        CertKind::CupXmppEcdsa,
        CertKind::Expressway,
    ];

    /// The name as CUCM shows it (`tomcat-ECDSA`).
    pub fn name(self) -> &'static str {
        match self {
            CertKind::Tomcat => "tomcat",
            CertKind::TomcatEcdsa => "tomcat-ECDSA",
            CertKind::CallManager => "CallManager",
            CertKind::CallManagerEcdsa => "CallManager-ECDSA",
            CertKind::Cup => "cup",
            CertKind::CupEcdsa => "cup-ECDSA",
            CertKind::CupXmpp => "cup-xmpp",
            CertKind::CupXmppEcdsa => "cup-xmpp-ECDSA",
            CertKind::Expressway => "expressway",
        }
    }

    /// Parses the exact name CUCM uses.
    pub fn from_name(name: &str) -> Option<CertKind> {
        CertKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for CertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Errors in a topology or while building it. Each names the certificate and the field.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// The TOML could not be read into a topology (its message carries line and column).
    #[error("{source_name}: {message}")]
    Toml {
        /// The file or built-in name.
        source_name: String,
        /// The TOML reader's message.
        message: String,
    },
    /// An `issuer` that names no certificate.
    #[error("{}certificate '{cert}': issuer '{issuer}' does not exist{suggestion}", prefix(.at))]
    UnknownIssuer {
        /// Where the issuer was written.
        at: Option<Position>,
        /// The certificate.
        cert: String,
        /// The missing issuer.
        issuer: String,
        /// ` (did you mean ..)` or empty.
        suggestion: String,
    },
    /// A certificate that names itself as issuer.
    #[error(
        "{}certificate '{cert}': field 'issuer' names the certificate itself; leave it out or write \"self\" for a self-signed certificate",
        prefix(.at)
    )]
    OwnIssuer {
        /// Where the issuer was written.
        at: Option<Position>,
        /// The certificate.
        cert: String,
    },
    /// Issuers that loop.
    #[error("certificate '{cert}': field 'issuer' makes a cycle: {}", .path.join(" -> "))]
    Cycle {
        /// The certificate where the loop was found.
        cert: String,
        /// The loop, as issuer steps.
        path: Vec<String>,
    },
    /// A chain (a certificate and its issuers up to a self-signed one) longer than
    /// [`MAX_CHAIN`].
    #[error(
        "{}certificate '{cert}': its chain holds {length} certificates (up to '{top}'); at most {MAX_CHAIN} are allowed",
        prefix(.at)
    )]
    ChainTooLong {
        /// Where the certificate's issuer was written.
        at: Option<Position>,
        /// The certificate at the bottom of the longest chain.
        cert: String,
        /// How many certificates its chain holds, itself and the top included.
        length: usize,
        /// The self-signed certificate at the top.
        top: String,
    },
    /// A validity date outside the years a certificate can carry ([`spec::CERT_YEARS`]).
    #[error(
        "{}certificate '{cert}': field '{field}': {} falls outside the years 0 to 9999 a certificate can carry",
        prefix(.at),
        moment(.written, .validation_time)
    )]
    DateOutOfRange {
        /// Where the date was written (`None` when left out or set by a re-issue).
        at: Option<Position>,
        /// The certificate.
        cert: String,
        /// `not_before` or `not_after`.
        field: &'static str,
        /// The date as written.
        written: TimeSpec,
        /// The validation time a relative date counts from.
        validation_time: OffsetDateTime,
    },
    /// A validity that ends before it starts.
    #[error("{}certificate '{cert}': field 'not_after': {not_after} is before not_before ({not_before})", prefix(.at))]
    ValidityInverted {
        /// Where `not_after` (or, when it was left out, `not_before`) was written.
        at: Option<Position>,
        /// The certificate.
        cert: String,
        /// As written.
        not_before: TimeSpec,
        /// As written.
        not_after: TimeSpec,
    },
    /// A `sends` entry that names no certificate.
    #[error("{}certificate '{cert}': field 'sends' names '{sent}', which does not exist{suggestion}", prefix(.at))]
    UnknownSent {
        /// Where the entry was written.
        at: Option<Position>,
        /// The certificate.
        cert: String,
        /// The missing name.
        sent: String,
        /// ` (did you mean ..)` or empty.
        suggestion: String,
    },
    /// `<node>/<kind>` with a kind CUCM does not have.
    #[error("certificate '{cert}': unknown certificate kind '{kind}'{suggestion}; kinds are {}", CertKind::ALL.map(CertKind::name).join(", "))]
    UnknownKind {
        /// The certificate.
        cert: String,
        /// The kind written after the slash.
        kind: String,
        /// ` (did you mean ..)` or empty.
        suggestion: String,
    },
    /// A field whose value does not fit the rest of the certificate.
    #[error("certificate '{cert}': field '{field}': {message}")]
    Field {
        /// The certificate.
        cert: String,
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A key could not be produced.
    #[error("certificate '{cert}': field 'key': {source}")]
    Key {
        /// The certificate.
        cert: String,
        /// The cause.
        source: KeyError,
    },
    /// rcgen refused to sign.
    #[error("certificate '{cert}': could not be signed: {message}")]
    Sign {
        /// The certificate.
        cert: String,
        /// rcgen's message.
        message: String,
    },
    /// A file (scenario, fleet, lab) that names a built-in topology and also writes certificates
    /// inline, or does neither.
    #[error(
        "{source_name}: give either `topology = \"<built-in>\"` or inline [certs.\"<id>\"] tables, not both or neither"
    )]
    TopologyChoice {
        /// The file or built-in name.
        source_name: String,
    },
    /// A topology name that is not built in.
    #[error("unknown topology '{name}'{suggestion}; built-in topologies are {}", builtin::NAMES.join(", "))]
    UnknownTopology {
        /// The name asked for.
        name: String,
        /// ` (did you mean ..)` or empty.
        suggestion: String,
    },
    /// A certificate asked for by id that the PKI does not have.
    #[error("no certificate '{cert}' in this topology{suggestion}")]
    UnknownCert {
        /// The id asked for.
        cert: String,
        /// ` (did you mean ..)` or empty.
        suggestion: String,
    },
    /// Writing the output directory failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// `+30d from the validation time 2022-07-11T16:55:26Z`, or an absolute date as written.
fn moment(written: &TimeSpec, validation_time: &OffsetDateTime) -> String {
    match written {
        TimeSpec::Relative(_) => {
            format!("{written} from the validation time {}", TimeSpec::Absolute(*validation_time))
        }
        TimeSpec::Absolute(_) => written.to_string(),
    }
}

/// The most certificates one chain may hold, its leaf and its self-signed top included.
/// Deeper topologies are refused: OpenSSL's default verify depth is 100 and ATS's 7, so a
/// longer chain shows nothing more, and the limit bounds every walk up a chain.
pub const MAX_CHAIN: usize = 128;

/// A checked topology: every reference resolves, issuers form a forest, kinds are known,
/// no chain holds more than [`MAX_CHAIN`] certificates.
#[derive(Debug, Clone)]
pub struct Topology {
    spec: TopologySpec,
    /// The text the spec was read from, for the place of errors found when building.
    source: Option<Arc<Source>>,
    /// Ids in build order: issuers before what they issue, then by depth and id.
    order: Vec<String>,
    /// Issuer id of each certificate; `None` when self-signed.
    issuers: BTreeMap<String, Option<String>>,
    roles: BTreeMap<String, Role>,
}

impl Topology {
    /// Reads a topology from TOML. `source` names the text in messages.
    pub fn from_toml(source: &Source) -> Result<Topology, PkiError> {
        let spec: TopologySpec = toml::from_str(&source.text)
            .map_err(|e| PkiError::Toml { source_name: source.name.clone(), message: e.to_string() })?;
        Topology::from_spec(spec, Some(source))
    }

    /// The topology a scenario, fleet or lab file names (`topology = "<built-in>"`) or writes
    /// inline (`[certs."<id>"]` tables): the one way any file states its PKI. `source` is the
    /// file, for messages and line numbers; `description` says what the topology is for.
    pub fn named_or_inline(
        name: Option<&str>,
        certs: Option<&BTreeMap<String, CertSpec>>,
        description: Option<String>,
        source: &Source,
    ) -> Result<Topology, PkiError> {
        match (name, certs) {
            (Some(name), None) => builtin::topology(name),
            (None, Some(certs)) => {
                Topology::from_spec(TopologySpec { description, certs: certs.clone() }, Some(source))
            }
            _ => Err(PkiError::TopologyChoice { source_name: source.name.clone() }),
        }
    }

    /// Checks a topology. With a `source`, errors point at the line and column of the
    /// offending reference.
    pub fn from_spec(spec: TopologySpec, source: Option<&Source>) -> Result<Topology, PkiError> {
        Topology::check(spec, source.map(|s| Arc::new(s.clone())))
    }

    fn check(spec: TopologySpec, source: Option<Arc<Source>>) -> Result<Topology, PkiError> {
        let locate = |span: Range<usize>| locate(source.as_deref(), span);
        let ids: Vec<&str> = spec.certs.keys().map(String::as_str).collect();
        let mut issuers = BTreeMap::new();
        for (id, cert) in &spec.certs {
            if let Some((_, kind)) = id.split_once('/')
                && CertKind::from_name(kind).is_none()
            {
                return Err(PkiError::UnknownKind {
                    cert: id.clone(),
                    kind: kind.to_string(),
                    suggestion: did_you_mean(kind, CertKind::ALL.map(CertKind::name)),
                });
            }
            let issuer = match &cert.issuer {
                None => None,
                Some(name) if name.get_ref() == "self" => None,
                Some(name) if name.get_ref() == id => {
                    return Err(PkiError::OwnIssuer { at: locate(name.span()), cert: id.clone() });
                }
                Some(name) if spec.certs.contains_key(name.get_ref()) => Some(name.get_ref().clone()),
                Some(name) => {
                    return Err(PkiError::UnknownIssuer {
                        at: locate(name.span()),
                        cert: id.clone(),
                        issuer: name.get_ref().clone(),
                        suggestion: did_you_mean(name.get_ref(), ids.iter().copied()),
                    });
                }
            };
            for sent in cert.sends.iter().flatten() {
                if !spec.certs.contains_key(sent.get_ref()) {
                    return Err(PkiError::UnknownSent {
                        at: locate(sent.span()),
                        cert: id.clone(),
                        sent: sent.get_ref().clone(),
                        suggestion: did_you_mean(sent.get_ref(), ids.iter().copied()),
                    });
                }
            }
            if cert.path_len.is_some() && cert.ca == Some(false) {
                return Err(PkiError::Field {
                    cert: id.clone(),
                    field: "path_len",
                    message: "a path length needs ca = true".into(),
                });
            }
            if cert.subject.DC.len() > 1 {
                return Err(PkiError::Field {
                    cert: id.clone(),
                    field: "subject.DC",
                    message: "only one domain component can be written (rcgen keeps one value per attribute)".into(),
                });
            }
            issuers.insert(id.clone(), issuer);
        }

        let depth = depths(&issuers)?;
        if let Some((cert, &length)) =
            depth.iter().filter(|(_, d)| **d > MAX_CHAIN).max_by_key(|(id, d)| (**d, std::cmp::Reverse(*id)))
        {
            let mut top = cert.as_str();
            while let Some(Some(up)) = issuers.get(top) {
                top = up;
            }
            return Err(PkiError::ChainTooLong {
                at: spec.certs[cert].issuer.as_ref().and_then(|i| locate(i.span())),
                cert: cert.clone(),
                length,
                top: top.to_string(),
            });
        }
        let mut order: Vec<String> = spec.certs.keys().cloned().collect();
        order.sort_by(|a, b| depth[a].cmp(&depth[b]).then_with(|| a.cmp(b)));

        let issuing: BTreeSet<&String> = issuers.values().flatten().collect();
        let roles = spec
            .certs
            .iter()
            .map(|(id, cert)| {
                let self_signed = issuers[id].is_none();
                let is_ca = issuing.contains(id) || (self_signed && cert.ca == Some(true) && !id.contains('/'));
                let role = match (is_ca, self_signed) {
                    (true, true) => Role::Root,
                    (true, false) => Role::Intermediate,
                    (false, _) => Role::Leaf,
                };
                (id.clone(), role)
            })
            .collect();
        Ok(Topology { spec, source, order, issuers, roles })
    }

    /// The `file:line:column` of a span in the text this topology was read from; `None` for
    /// an empty span (a value left out or set by code) or a topology read from no text.
    pub fn locate(&self, span: Range<usize>) -> Option<Position> {
        locate(self.source.as_deref(), span)
    }

    /// The specification this topology was checked from.
    pub fn spec(&self) -> &TopologySpec {
        &self.spec
    }

    /// Certificate ids in build order (issuers first).
    pub fn order(&self) -> &[String] {
        &self.order
    }

    /// The issuer of `id`, `None` when it is self-signed.
    pub fn issuer(&self, id: &str) -> Option<&str> {
        self.issuers.get(id).and_then(|i| i.as_deref())
    }

    /// The role of `id` in its chain.
    pub fn role(&self, id: &str) -> Option<Role> {
        self.roles.get(id).copied()
    }

    /// What the server holding `id` sends, by id: the explicit `sends`, or the leaf and its
    /// intermediates up to, not including, the root.
    pub fn sends(&self, id: &str) -> Vec<String> {
        let Some(cert) = self.spec.certs.get(id) else { return Vec::new() };
        if let Some(sends) = &cert.sends {
            return sends.iter().map(|s| s.get_ref().clone()).collect();
        }
        let mut out = vec![id.to_string()];
        let mut at = id;
        while let Some(up) = self.issuer(at) {
            if self.issuer(up).is_none() {
                break;
            }
            out.push(up.to_string());
            at = up;
        }
        out
    }

    /// Applies a change to one certificate's specification and checks the result, as a CUCM
    /// administrator re-issuing a certificate would.
    pub fn with_change(&self, id: &str, change: impl FnOnce(&mut CertSpec)) -> Result<Topology, PkiError> {
        let mut spec = self.spec.clone();
        let cert = spec.certs.get_mut(id).ok_or_else(|| self.unknown_cert(id))?;
        change(cert);
        Topology::check(spec, self.source.clone())
    }

    /// The error for an id this topology lacks, with a suggestion.
    pub fn unknown_cert(&self, id: &str) -> PkiError {
        PkiError::UnknownCert {
            cert: id.to_string(),
            suggestion: did_you_mean(id, self.spec.certs.keys().map(String::as_str)),
        }
    }
}

fn locate(source: Option<&Source>, span: Range<usize>) -> Option<Position> {
    if span.is_empty() { None } else { source.map(|s| s.position(span.start)) }
}

/// How many certificates each certificate's chain holds (itself up to its self-signed top), or
/// the first cycle of issuers in id order. Linear: every certificate is walked over once, each
/// walk stopping at the first certificate whose count is already known.
fn depths(issuers: &BTreeMap<String, Option<String>>) -> Result<BTreeMap<String, usize>, PkiError> {
    let mut depth: HashMap<&str, usize> = HashMap::with_capacity(issuers.len());
    for start in issuers.keys() {
        if depth.contains_key(start.as_str()) {
            continue;
        }
        // Up from `start` to a certificate that is self-signed or already counted.
        let mut path: Vec<&str> = vec![start];
        let mut on_path: HashSet<&str> = HashSet::from([start.as_str()]);
        let above = loop {
            let at = path[path.len() - 1];
            let Some(Some(up)) = issuers.get(at) else { break 0 };
            if let Some(&known) = depth.get(up.as_str()) {
                break known;
            }
            if !on_path.insert(up) {
                let mut cycle: Vec<String> = path.iter().map(|id| id.to_string()).collect();
                cycle.push(up.clone());
                return Err(PkiError::Cycle { cert: start.clone(), path: cycle });
            }
            path.push(up);
        };
        for (i, id) in path.iter().enumerate() {
            depth.insert(id, above + path.len() - i);
        }
    }
    Ok(depth.into_iter().map(|(id, d)| (id.to_string(), d)).collect())
}

/// Splits `node/kind` into its parts, when the id names a CUCM-side identity.
pub fn identity_of(id: &str) -> Option<(&str, CertKind)> {
    let (node, kind) = id.split_once('/')?;
    Some((node, CertKind::from_name(kind)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `c0` (self-signed) <- `c1` <- ... <- `c{n-1}`: one chain of `n` certificates.
    fn chain(n: usize) -> String {
        let mut text = String::from("[certs.c0]\nsubject = { CN = \"c0\" }\n");
        for i in 1..n {
            text.push_str(&format!("[certs.c{i}]\nissuer = \"c{}\"\nsubject = {{ CN = \"c{i}\" }}\n", i - 1));
        }
        text
    }

    fn topology(text: &str) -> Result<Topology, PkiError> {
        Topology::from_toml(&Source::new("t.toml", text))
    }

    #[test]
    fn a_chain_of_128_certificates_is_accepted_in_issuer_order() {
        let topology = topology(&chain(MAX_CHAIN)).expect("128 certificates are allowed");
        let expected: Vec<String> = (0..MAX_CHAIN).map(|i| format!("c{i}")).collect();
        assert_eq!(topology.order(), expected);
        assert_eq!(topology.sends("c127").len(), MAX_CHAIN - 1, "the leaf and every intermediate");
    }

    #[test]
    fn a_chain_of_129_certificates_is_refused_naming_the_deepest_and_its_issuer_line() {
        let err = topology(&chain(MAX_CHAIN + 1)).expect_err("129 certificates");
        assert!(
            matches!(&err, PkiError::ChainTooLong { cert, length: 129, top, .. } if cert == "c128" && top == "c0"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "t.toml:385:10: certificate 'c128': its chain holds 129 certificates (up to 'c0'); at most 128 are allowed"
        );
    }

    #[test]
    fn depths_count_each_certificate_once_however_the_chains_share_issuers() {
        // A root, a trunk of 50 intermediates, and 2,000 leaves hanging off its bottom and
        // its middle: the old walk per certificate re-walked the trunk for every leaf.
        let mut text = chain(51);
        for i in 0..2000 {
            let issuer = if i % 2 == 0 { 50 } else { 25 };
            text.push_str(&format!("[certs.leaf{i:04}]\nissuer = \"c{issuer}\"\nsubject = {{ CN = \"l{i}\" }}\n"));
        }
        let topology = topology(&text).expect("topology");
        let issuers: BTreeMap<String, Option<String>> =
            topology.spec().certs.keys().map(|id| (id.clone(), topology.issuer(id).map(str::to_string))).collect();
        let depth = depths(&issuers).expect("no cycle");
        assert_eq!(depth["c0"], 1);
        assert_eq!(depth["c50"], 51);
        assert_eq!(depth["leaf0000"], 52);
        assert_eq!(depth["leaf0001"], 27);
        let order = topology.order();
        assert_eq!(order.len(), 2051);
        assert!(order.iter().position(|id| id == "leaf0001") < order.iter().position(|id| id == "c27"));
        assert!(order.iter().position(|id| id == "c50") < order.iter().position(|id| id == "leaf0000"));
    }

    #[test]
    fn a_chain_of_ten_thousand_certificates_is_refused_in_linear_time() {
        // The old walk per certificate took O(n³): minutes for 10,000 (5.2 s for 1,000).
        let start = std::time::Instant::now();
        let err = topology(&chain(10_000)).expect_err("far too deep");
        assert!(matches!(err, PkiError::ChainTooLong { length: 10_000, .. }), "{err:?}");
        assert!(start.elapsed() < std::time::Duration::from_secs(10), "took {:?}", start.elapsed());
    }

    #[test]
    fn a_cycle_is_named_from_the_first_certificate_that_reaches_it() {
        let text = "[certs.a]\nissuer = \"b\"\nsubject = { CN = \"a\" }\n[certs.b]\nissuer = \"c\"\nsubject = { CN = \"b\" }\n\
                    [certs.c]\nissuer = \"b\"\nsubject = { CN = \"c\" }\n[certs.root]\nsubject = { CN = \"r\" }\n";
        let err = topology(text).expect_err("cycle");
        assert_eq!(err.to_string(), "certificate 'a': field 'issuer' makes a cycle: a -> b -> c -> b");
    }

    #[test]
    fn an_empty_span_has_no_place() {
        let topology = topology(&chain(2)).expect("topology");
        assert_eq!(topology.locate(0..0), None);
        assert_eq!(topology.locate(0..1).map(|p| p.to_string()).as_deref(), Some("t.toml:1:1"));
    }
}
