//! Expressway-C as configured: version and upgrade history, cipher list, VerifyOriginServer,
//! the traffic server's verification policy, trust stores per cluster peer, and discovery.
//!
//! SPEC.md's rules live here: before X14.2 the traffic server verifies nothing; from X14.2 on it
//! verifies every request (ENFORCED, properties ALL) unless
//! `xConfiguration EdgeConfigServer VerifyOriginServer: Off`. The default cipher list is
//! Expressway's, prefixed with `ECDHE-RSA-AES256-GCM-SHA384:` (RSA preferred) after an upgrade
//! from X14.0 or later, and before X14.2 (see [`ExpresswaySpec::default_ciphers`]).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use rustls_pki_types::CertificateDer;
use serde::Deserialize;

pub use crate::ciphers::{EXPRESSWAY_DEFAULT as DEFAULT_CIPHERS, RSA_PREFERENCE_PREFIX as RSA_PREFIX};

/// An Expressway version, `X<major>.<minor>[.<patch>]`, compared numerically.
/// X14.2 and X14.2.0 are the same version.
#[derive(Debug, Clone)]
pub struct Version(Vec<u32>);

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl Version {
    /// X14.2: the first version whose traffic server verifies origins.
    pub fn x14_2() -> Version {
        Version(vec![14, 2])
    }

    /// X14.0: upgrades from here on keep RSA preferred.
    pub fn x14_0() -> Version {
        Version(vec![14, 0])
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let len = self.0.len().max(other.0.len());
        let at = |v: &Version, i: usize| v.0.get(i).copied().unwrap_or(0);
        (0..len).map(|i| at(self, i).cmp(&at(other, i))).find(|o| o.is_ne()).unwrap_or(Ordering::Equal)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u32::to_string).collect();
        write!(f, "X{}", parts.join("."))
    }
}

/// A version string that is not `X<major>.<minor>[.<patch>[.<build>]]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("version '{0}' must look like X14.2 or X14.0.7")]
pub struct VersionError(pub String);

impl FromStr for Version {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, VersionError> {
        let body = s.strip_prefix(['X', 'x']).unwrap_or(s);
        let parts: Result<Vec<u32>, _> = body.split('.').map(str::parse).collect();
        match parts {
            Ok(parts) if (2..=4).contains(&parts.len()) => Ok(Version(parts)),
            _ => Err(VersionError(s.to_string())),
        }
    }
}

/// ATS's `proxy.config.ssl.client.verify.server.policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Verify and refuse on failure.
    Enforced,
    /// Verify, log, and go on.
    Permissive,
    /// Do not verify.
    Disabled,
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Policy::Enforced => "ENFORCED",
            Policy::Permissive => "PERMISSIVE",
            Policy::Disabled => "DISABLED",
        })
    }
}

/// ATS's `proxy.config.ssl.client.verify.server.properties`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Properties {
    /// The chain only.
    Signature,
    /// The name only.
    Name,
    /// Both.
    All,
}

impl Properties {
    /// Whether the chain is checked.
    pub fn signature(self) -> bool {
        matches!(self, Properties::Signature | Properties::All)
    }

    /// Whether the name is checked.
    pub fn name(self) -> bool {
        matches!(self, Properties::Name | Properties::All)
    }
}

impl fmt::Display for Properties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Properties::Signature => "SIGNATURE",
            Properties::Name => "NAME",
            Properties::All => "ALL",
        })
    }
}

/// TLS versions Expressway-C offers to origins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

/// A TLS version other than 1.2 and 1.3.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TLS version '{0}' must be \"1.2\" or \"1.3\"")]
pub struct TlsVersionError(pub String);

impl FromStr for TlsVersion {
    type Err = TlsVersionError;
    fn from_str(s: &str) -> Result<Self, TlsVersionError> {
        match s.trim_start_matches("TLSv").trim_start_matches("tls") {
            "1.2" => Ok(TlsVersion::Tls12),
            "1.3" => Ok(TlsVersion::Tls13),
            _ => Err(TlsVersionError(s.to_string())),
        }
    }
}

/// The Unified CM / IM&P / Unity server entry an administrator types in
/// (Configuration > Unified Communications).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoverySpec {
    /// The publisher address as typed: FQDN or IP.
    pub publisher: String,
    /// "TLS verify mode": before X14.2 the only check, at discovery, of this address only.
    #[serde(default)]
    pub tls_verify_mode: bool,
}

/// Expressway-C's configuration, as a scenario's `[expressway]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpresswaySpec {
    /// The running version.
    pub version: Version,
    /// The version it was upgraded from; absent for a fresh install.
    #[serde(default)]
    pub upgraded_from: Option<Version>,
    /// `xConfiguration Ciphers`; absent for the default of this version and history.
    #[serde(default)]
    pub ciphers: Option<String>,
    /// `xConfiguration EdgeConfigServer VerifyOriginServer` (On by default).
    #[serde(default = "on")]
    pub verify_origin_server: bool,
    /// Overrides the policy the version implies (ATS's setting, for PERMISSIVE/DISABLED labs).
    #[serde(default)]
    pub policy: Option<Policy>,
    /// Overrides the properties (ALL by default).
    #[serde(default)]
    pub properties: Option<Properties>,
    /// Connection attempts per request: ATS's 1 + `connect_attempts_max_retries` (3).
    #[serde(default = "four")]
    pub attempts: u32,
    /// TLS versions offered to origins.
    #[serde(default = "both_tls")]
    pub tls: Vec<TlsVersion>,
    /// The cluster's peers; one trust store each.
    #[serde(default = "one_peer")]
    pub peers: Vec<String>,
    /// Trust store contents (certificate ids) on every peer.
    #[serde(default)]
    pub trust: Vec<String>,
    /// Per-peer trust stores that differ from `trust` (they replace it for that peer).
    #[serde(default)]
    pub peer_trust: BTreeMap<String, Vec<String>>,
    /// The certificate Expressway-C presents as a TLS client (on 6972); a certificate id.
    #[serde(default)]
    pub client_cert: Option<String>,
    /// The MRA domain (`steven.lab`).
    #[serde(default = "steven_lab")]
    pub domain: String,
    /// The name MRA clients' requests arrive for, as the traffic server logs them.
    #[serde(default = "front_name")]
    pub front_name: String,
    /// The Unified CM server entry used for discovery.
    pub discovery: DiscoverySpec,
    /// `proxy.config.http.connect_attempts_timeout` (seconds): set by a scenario's top-level
    /// `connect_attempts_timeout`, ATS's default (30) otherwise.
    #[serde(skip_deserializing, default = "connect_attempts_timeout")]
    pub connect_attempts_timeout: u32,
}

/// ATS's default `proxy.config.http.connect_attempts_timeout`, in seconds.
pub fn connect_attempts_timeout() -> u32 {
    30
}

fn on() -> bool {
    true
}
fn four() -> u32 {
    4
}
fn both_tls() -> Vec<TlsVersion> {
    vec![TlsVersion::Tls12, TlsVersion::Tls13]
}
fn one_peer() -> Vec<String> {
    vec!["vcsc".into()]
}
fn steven_lab() -> String {
    "steven.lab".into()
}
fn front_name() -> String {
    "vcs_control.steven.lab".into()
}

impl ExpresswaySpec {
    /// Defaults for a version and a publisher address, as a command line starts from.
    pub fn new(version: Version, upgraded_from: Option<Version>, publisher: &str) -> ExpresswaySpec {
        ExpresswaySpec {
            version,
            upgraded_from,
            ciphers: None,
            verify_origin_server: true,
            policy: None,
            properties: None,
            attempts: four(),
            connect_attempts_timeout: connect_attempts_timeout(),
            tls: both_tls(),
            peers: one_peer(),
            trust: Vec::new(),
            peer_trust: BTreeMap::new(),
            client_cert: None,
            domain: steven_lab(),
            front_name: front_name(),
            discovery: DiscoverySpec { publisher: publisher.to_string(), tls_verify_mode: false },
        }
    }

    /// Whether the traffic server verifies origins at all: X14.2 or later with
    /// VerifyOriginServer On.
    pub fn verifies_origins(&self) -> bool {
        self.version >= Version::x14_2() && self.verify_origin_server
    }

    /// The policy in force: an explicit one, else ENFORCED when origins are verified.
    pub fn policy(&self) -> Policy {
        match (self.verifies_origins(), self.policy) {
            (false, _) => Policy::Disabled,
            (true, Some(policy)) => policy,
            (true, None) => Policy::Enforced,
        }
    }

    /// The properties in force (ALL unless overridden).
    pub fn properties(&self) -> Properties {
        self.properties.unwrap_or(Properties::All)
    }

    /// The cipher list this version and history start with.
    ///
    /// X14.2+ fresh, or upgraded from below X14.0: Expressway's default (ECDSA preferred).
    /// Upgraded from X14.0 or later to X14.2+: the default with the RSA prefix. Before X14.2
    /// the model takes the prefixed list (RSA preferred), which is what the seed's X14.0.7 lab
    /// shows on 8443 and why the X14.0+ upgrade path keeps it; the seed does not state it.
    pub fn default_ciphers(&self) -> String {
        let rsa_preferred = self.version < Version::x14_2()
            || self.upgraded_from.as_ref().is_some_and(|from| *from >= Version::x14_0());
        if rsa_preferred { format!("{RSA_PREFIX}{DEFAULT_CIPHERS}") } else { DEFAULT_CIPHERS.to_string() }
    }

    /// The cipher string in force.
    pub fn ciphers(&self) -> String {
        self.ciphers.clone().unwrap_or_else(|| self.default_ciphers())
    }

    /// The trust store contents (certificate ids) of one peer.
    pub fn trust_of(&self, peer: &str) -> &[String] {
        self.peer_trust.get(peer).unwrap_or(&self.trust)
    }

    /// What an upgrade to `to` does: the version changes and, as Expressway's upgrade does,
    /// an unchanged default cipher list is replaced by the new version's default.
    pub fn upgrade(&mut self, to: Version) {
        let had_default = self.ciphers.as_ref().is_none_or(|c| *c == self.default_ciphers());
        self.upgraded_from = Some(self.version.clone());
        self.version = to;
        if had_default {
            self.ciphers = None;
        }
    }
}

crate::deserialize_from_str!(Version, TlsVersion);

/// One certificate in a trust store, with the name it was uploaded under.
#[derive(Debug, Clone)]
pub struct TrustEntry {
    /// The upload's name (a certificate id or a file name).
    pub name: String,
    /// The certificate.
    pub der: CertificateDer<'static>,
    /// Its subject's common name (what Expressway keys the store by).
    pub common_name: String,
}

/// Why Expressway refused a trust-store upload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustStoreRefusal {
    /// The file holds no certificate.
    #[error("'{name}' holds no certificate")]
    NoCertificate {
        /// The upload.
        name: String,
    },
    /// The file holds a private key: a trust store takes certificates only.
    #[error("'{name}' holds a private key; a trust store takes certificates only")]
    PrivateKey {
        /// The upload.
        name: String,
    },
    /// The bytes are not a certificate.
    #[error("'{name}' is not a certificate: {reason}")]
    NotACertificate {
        /// The upload.
        name: String,
        /// The parser's message.
        reason: String,
    },
    /// A different certificate with the same CN is already there (CSCwa12905).
    #[error(
        "'{name}' refused: a different certificate with CN '{common_name}' ('{existing}') is already trusted; Expressway keys its trust store by CN (CSCwa12905)"
    )]
    SameCommonName {
        /// The upload.
        name: String,
        /// The CN both share.
        common_name: String,
        /// The entry already there.
        existing: String,
    },
}

/// Maintenance > Security > Trusted CA certificate, of one peer.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    entries: Vec<TrustEntry>,
}

impl TrustStore {
    /// The certificates, in upload order.
    pub fn entries(&self) -> &[TrustEntry] {
        &self.entries
    }

    /// The certificates as DER, in upload order.
    pub fn ders(&self) -> Vec<CertificateDer<'static>> {
        self.entries.iter().map(|e| e.der.clone()).collect()
    }

    /// Adds one certificate. The same certificate again is accepted (nothing changes); a
    /// different one with the CN of one already there is refused, as Expressway does.
    pub fn add(&mut self, name: &str, der: CertificateDer<'static>) -> Result<(), TrustStoreRefusal> {
        let common_name = common_name(&der)
            .map_err(|e| TrustStoreRefusal::NotACertificate { name: name.to_string(), reason: e.to_string() })?;
        if self.entries.iter().any(|e| e.der == der) {
            return Ok(());
        }
        if let Some(existing) = self.entries.iter().find(|e| e.common_name == common_name) {
            return Err(TrustStoreRefusal::SameCommonName {
                name: name.to_string(),
                common_name,
                existing: existing.name.clone(),
            });
        }
        self.entries.push(TrustEntry { name: name.to_string(), der, common_name });
        Ok(())
    }

    /// Adds every certificate of a PEM file; refuses a file with a key or without certificates.
    pub fn add_pem(&mut self, name: &str, pem: &str) -> Result<usize, TrustStoreRefusal> {
        if pem.contains("PRIVATE KEY-----") {
            return Err(TrustStoreRefusal::PrivateKey { name: name.to_string() });
        }
        let ders = pem_certificates(pem)
            .map_err(|e| TrustStoreRefusal::NotACertificate { name: name.to_string(), reason: e.to_string() })?;
        if ders.is_empty() {
            return Err(TrustStoreRefusal::NoCertificate { name: name.to_string() });
        }
        let count = ders.len();
        for der in ders {
            self.add(name, der)?;
        }
        Ok(count)
    }

    /// Removes every certificate uploaded under `name`; returns how many went.
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.entries.len();
        self.entries.retain(|e| e.name != name);
        before - self.entries.len()
    }
}

/// Bytes that could not be read as certificates.
#[derive(Debug, thiserror::Error)]
pub enum CertificateReadError {
    /// A PEM block that does not decode.
    #[error(transparent)]
    Pem(#[from] x509_parser::error::PEMError),
    /// DER that is no X.509 certificate.
    #[error(transparent)]
    Der(#[from] x509_parser::nom::Err<x509_parser::error::X509Error>),
}

/// The CERTIFICATE blocks of a PEM text, as DER.
pub fn pem_certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>, CertificateReadError> {
    let mut out = Vec::new();
    for item in x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes()) {
        let item = item?;
        if item.label == "CERTIFICATE" {
            out.push(CertificateDer::from(item.contents));
        }
    }
    Ok(out)
}

/// The subject CN of a certificate (empty when it has none).
pub fn common_name(der: &[u8]) -> Result<String, CertificateReadError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)?;
    Ok(cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).unwrap_or_default().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(version: &str, from: Option<&str>) -> ExpresswaySpec {
        let from = from.map(|f| format!("upgraded_from = \"{f}\"\n")).unwrap_or_default();
        toml::from_str(&format!("version = \"{version}\"\n{from}discovery = {{ publisher = \"cucm\" }}\n"))
            .expect("spec")
    }

    #[test]
    fn versions_compare_numerically() {
        let v = |s: &str| s.parse::<Version>().expect("version");
        assert!(v("X12.7") < v("X14.0"));
        assert!(v("X14.0.7") < v("X14.2"));
        assert!(v("X14.2") == v("X14.2.0"));
        assert!(v("X14.2") != v("X14.2.1") && v("X14.2") != v("X14.3") && v("X14.0.7") != v("X14.2"));
        assert!(v("X14.10") > v("X14.2"));
        assert!("14".parse::<Version>().is_err());
    }

    /// A self-signed certificate with this CN, as PEM.
    fn pem(cn: &str) -> String {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        params.self_signed(&key).expect("certificate").pem()
    }

    #[test]
    fn the_trust_store_counts_what_it_adds_and_removes() {
        let (a, b) = (pem("ca-a"), pem("ca-b"));
        let mut store = TrustStore::default();
        assert_eq!(store.add_pem("bundle", &format!("{a}{b}")), Ok(2));
        let cns: Vec<&str> = store.entries().iter().map(|e| e.common_name.as_str()).collect();
        assert_eq!(cns, ["ca-a", "ca-b"], "in upload order");
        assert_eq!(store.ders().len(), 2);
        // The same certificate again: accepted, counted as read, nothing added.
        assert_eq!(store.add_pem("again", &a), Ok(1));
        assert_eq!(store.entries().len(), 2);
        let c = pem("ca-c");
        assert_eq!(store.add_pem("third", &c), Ok(1));
        assert_eq!(store.remove("bundle"), 2);
        assert_eq!(store.remove("bundle"), 0);
        let names: Vec<&str> = store.entries().iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["third"]);
        // Another certificate with a CN already there is refused, as Expressway does.
        assert!(matches!(store.add_pem("clash", &pem("ca-c")), Err(TrustStoreRefusal::SameCommonName { .. })));
    }

    #[test]
    fn an_upgrade_replaces_the_default_cipher_list_only() {
        // The old default written out explicitly is still the default: replaced.
        let mut e = spec("X12.7", None);
        e.ciphers = Some(e.default_ciphers());
        e.upgrade(Version::x14_2());
        assert_eq!(e.ciphers, None);
        assert_eq!(e.ciphers(), DEFAULT_CIPHERS);
        // A list the administrator changed is kept.
        let mut custom = spec("X12.7", None);
        custom.ciphers = Some("ECDHE-RSA-AES128-GCM-SHA256".into());
        custom.upgrade(Version::x14_2());
        assert_eq!(custom.ciphers(), "ECDHE-RSA-AES128-GCM-SHA256");
    }

    #[test]
    fn policy_and_properties_print_as_ats_reads_them() {
        // The values of proxy.config.ssl.client.verify.server.policy and .properties.
        let policies = [Policy::Enforced, Policy::Permissive, Policy::Disabled].map(|p| p.to_string());
        assert_eq!(policies, ["ENFORCED", "PERMISSIVE", "DISABLED"]);
        let properties = [Properties::Signature, Properties::Name, Properties::All].map(|p| p.to_string());
        assert_eq!(properties, ["SIGNATURE", "NAME", "ALL"]);
    }

    #[test]
    fn tls_versions_read_as_written_with_or_without_their_prefix() {
        let t = |s: &str| s.parse::<TlsVersion>();
        assert_eq!(t("1.2"), Ok(TlsVersion::Tls12));
        assert_eq!(t("1.3"), Ok(TlsVersion::Tls13));
        assert_eq!(t("TLSv1.2"), Ok(TlsVersion::Tls12));
        assert_eq!(t("tls1.3"), Ok(TlsVersion::Tls13));
        assert_eq!(t("1.1"), Err(TlsVersionError("1.1".into())));
        assert!(t("TLSv1.4").is_err());
    }

    #[test]
    fn a_scenario_without_connect_attempts_timeout_gets_ats_default() {
        // records.config's documented default for proxy.config.http.connect_attempts_timeout.
        assert_eq!(spec("X14.2", None).connect_attempts_timeout, 30);
        assert_eq!(ExpresswaySpec::new(Version::x14_2(), None, "cucm").connect_attempts_timeout, 30);
    }

    #[test]
    fn the_three_upgrade_paths_give_spec_cipher_defaults() {
        assert_eq!(spec("X14.2", None).ciphers(), DEFAULT_CIPHERS);
        assert_eq!(spec("X14.2", Some("X12.7")).ciphers(), DEFAULT_CIPHERS);
        assert_eq!(spec("X14.2", Some("X14.0.7")).ciphers(), format!("{RSA_PREFIX}{DEFAULT_CIPHERS}"));
    }

    #[test]
    fn verification_starts_at_x14_2_unless_verify_origin_server_is_off() {
        assert_eq!(spec("X14.0.7", None).policy(), Policy::Disabled);
        assert_eq!(spec("X14.2", None).policy(), Policy::Enforced);
        let mut off = spec("X14.2.1", None);
        off.verify_origin_server = false;
        assert_eq!(off.policy(), Policy::Disabled);
    }

    #[test]
    fn upgrading_from_x14_0_7_keeps_rsa_preferred() {
        let mut e = spec("X14.0.7", None);
        e.upgrade("X14.2".parse().expect("version"));
        assert_eq!(e.ciphers(), format!("{RSA_PREFIX}{DEFAULT_CIPHERS}"));
        let mut old = spec("X12.7", None);
        old.upgrade("X14.2".parse().expect("version"));
        assert_eq!(old.ciphers(), DEFAULT_CIPHERS);
    }
}
