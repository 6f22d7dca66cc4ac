//! The declarative description of a PKI, as written in topology files and scenario files.
//!
//! Everything here deserializes from TOML with unknown fields refused. Values that can be
//! checked on their own (key types, SANs, times, usages) are parsed while deserializing, so a
//! bad one is reported by the TOML reader with its line and column. References between
//! certificates (issuers, what a server sends) are checked by [`super::Topology::from_spec`],
//! which keeps their spans for the same purpose.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::Deserialize;
use time::{Duration, OffsetDateTime};
use toml::Spanned;

/// A whole topology: named certificates, in any order.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopologySpec {
    /// One line saying what this topology is for.
    #[serde(default)]
    pub description: Option<String>,
    /// Certificates by id. A CUCM-side identity is named `<node>/<kind>`
    /// (`cucm/tomcat-ECDSA`); CAs and anything else take any other name.
    pub certs: BTreeMap<String, CertSpec>,
}

/// One certificate (and its key).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertSpec {
    /// The id of the issuing certificate; absent or `"self"` for a self-signed certificate.
    #[serde(default)]
    pub issuer: Option<Spanned<String>>,
    /// Key type; ECDSA P-256 when absent.
    #[serde(default)]
    pub key: KeyType,
    /// The subject name.
    pub subject: Subject,
    /// Subject alternative names: `dns:NAME`, `ip:ADDRESS`. An IP written as `dns:10.0.0.1`
    /// stays a DNS name, as some CAs issue it.
    #[serde(default)]
    pub san: Vec<San>,
    /// Start of validity, relative to the validation time (`-30d`) or absolute (RFC 3339). The
    /// span is empty when the field was left out or set by code (a re-issue), not written.
    #[serde(default = "default_not_before")]
    pub not_before: Spanned<TimeSpec>,
    /// End of validity, relative to the validation time (`+365d`) or absolute (RFC 3339).
    #[serde(default = "default_not_after")]
    pub not_after: Spanned<TimeSpec>,
    /// Basic constraints: `true` (CA:TRUE), `false` (CA:FALSE), absent (no extension).
    /// When the whole field is absent, CAs (certificates something else names as issuer) get
    /// CA:TRUE and leaves get no extension.
    #[serde(default)]
    pub ca: Option<bool>,
    /// pathLenConstraint, only with `ca = true`.
    #[serde(default)]
    pub path_len: Option<u8>,
    /// Key usage bits; a default by role when absent, no extension when empty.
    #[serde(default)]
    pub key_usage: Option<Vec<KeyUsage>>,
    /// Extended key usage; serverAuth + clientAuth for leaves and nothing for CAs when absent,
    /// no extension when empty.
    #[serde(default)]
    pub eku: Option<Vec<Eku>>,
    /// Subject key identifier: present unless `false`.
    #[serde(default = "yes")]
    pub ski: bool,
    /// Authority key identifier: `present` (the issuer's SKI), `absent`, or `mismatched`
    /// (an identifier no certificate has).
    #[serde(default)]
    pub aki: AkiSpec,
    /// What a server holding this certificate sends, leaf first, by id. Absent: the leaf and
    /// every intermediate up to, not including, the root.
    #[serde(default)]
    pub sends: Option<Vec<Spanned<String>>>,
    /// A nameConstraints extension (RFC 5280 4.2.1.10), for CAs: which names the certificates
    /// below may carry. Absent: no extension.
    #[serde(default)]
    pub name_constraints: Option<NameConstraintsSpec>,
}

/// `name_constraints = { permitted = ["dns:.corp.example"], excluded = ["ip:0.0.0.0/0"] }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameConstraintsSpec {
    /// Permitted subtrees: a name of a type listed here must fall inside one of them.
    #[serde(default)]
    pub permitted: Vec<Subtree>,
    /// Excluded subtrees: no name may fall inside one of them.
    #[serde(default)]
    pub excluded: Vec<Subtree>,
    /// Whether the extension is marked critical (RFC 5280 says it MUST be); true when absent.
    #[serde(default = "yes")]
    pub critical: bool,
}

/// One subtree of a name constraint: `dns:.corp.example` (a leading dot: subdomains only;
/// without: the name and its subdomains), `ip:10.0.0.0/8`, `email:corp.example` (a host, a
/// `.domain`, or one mailbox), `dn:O=Corp` (a subject prefix: attributes C, ST, L, O, OU, CN
/// separated by `,`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subtree {
    /// A dNSName subtree.
    Dns(String),
    /// An iPAddress subtree: address and prefix length.
    Ip(IpAddr, u8),
    /// An rfc822Name subtree.
    Email(String),
    /// A directoryName subtree: attributes in order.
    Dn(Vec<(String, String)>),
}

impl fmt::Display for Subtree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subtree::Dns(name) => write!(f, "dns:{name}"),
            Subtree::Ip(ip, prefix) => write!(f, "ip:{ip}/{prefix}"),
            Subtree::Email(name) => write!(f, "email:{name}"),
            Subtree::Dn(attrs) => {
                let parts: Vec<String> = attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(f, "dn:{}", parts.join(","))
            }
        }
    }
}

impl FromStr for Subtree {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        let bad = || SpecError::SubtreeForm { written: s.to_string() };
        match s.split_once(':') {
            Some(("dns", name)) if name.is_ascii() && !name.contains(' ') => Ok(Subtree::Dns(name.to_string())),
            Some(("email", name)) if name.is_ascii() && !name.contains(' ') => Ok(Subtree::Email(name.to_string())),
            Some(("ip", cidr)) => {
                let (addr, prefix) = cidr.split_once('/').ok_or_else(bad)?;
                let addr: IpAddr = addr.parse().map_err(|_| bad())?;
                let prefix: u8 = prefix.parse().map_err(|_| bad())?;
                let max = if addr.is_ipv4() { 32 } else { 128 };
                if prefix > max {
                    return Err(bad());
                }
                Ok(Subtree::Ip(addr, prefix))
            }
            Some(("dn", attrs)) => {
                let parsed: Option<Vec<(String, String)>> = attrs
                    .split(',')
                    .map(|part| {
                        let (k, v) = part.trim().split_once('=')?;
                        ["C", "ST", "L", "O", "OU", "CN"]
                            .contains(&k)
                            .then(|| (k.to_string(), v.to_string()))
                            .filter(|(_, v)| !v.is_empty())
                    })
                    .collect();
                parsed.filter(|p| !p.is_empty()).map(Subtree::Dn).ok_or_else(bad)
            }
            _ => Err(bad()),
        }
    }
}

fn yes() -> bool {
    true
}

fn default_not_before() -> Spanned<TimeSpec> {
    Spanned::new(0..0, TimeSpec::Relative(Duration::days(-30)))
}

fn default_not_after() -> Spanned<TimeSpec> {
    Spanned::new(0..0, TimeSpec::Relative(Duration::days(365)))
}

/// A value in a topology that cannot be read: a key type, a SAN or a time. The TOML reader
/// reports it with its line and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// A key type that is not one of [`KeyType::ALL`] (nor an alias).
    #[error("unknown key type '{written}'{suggestion}; expected one of {}", KeyType::ALL.map(KeyType::name).join(", "))]
    UnknownKeyType {
        /// As written.
        written: String,
        /// ` (did you mean ..)` or empty.
        suggestion: String,
    },
    /// `ip:` followed by something that is not an IP address.
    #[error("'{address}' in SAN '{written}' is not an IP address")]
    SanAddress {
        /// The whole SAN as written.
        written: String,
        /// The part after `ip:`.
        address: String,
    },
    /// A name-constraint subtree that cannot be read.
    #[error("subtree '{written}' must be 'dns:NAME', 'ip:ADDRESS/PREFIX', 'email:NAME' or 'dn:O=..,CN=..'")]
    SubtreeForm {
        /// As written.
        written: String,
    },
    /// A SAN that is neither `dns:NAME` nor `ip:ADDRESS`.
    #[error("SAN '{written}' must be 'dns:NAME' or 'ip:ADDRESS'")]
    SanForm {
        /// As written.
        written: String,
    },
    /// A relative time whose count is not a number.
    #[error("time '{written}' must look like -30d, +365d, +2h, -90s or +1y")]
    TimeCount {
        /// As written.
        written: String,
    },
    /// A relative time with an unknown unit.
    #[error("time '{written}' has unit '{unit}'; use s, m, h, d or y")]
    TimeUnit {
        /// As written.
        written: String,
        /// The unit.
        unit: String,
    },
    /// A relative time so far away that no validation time brings it into the years a
    /// certificate can carry.
    #[error(
        "time '{written}' is more than {MAX_OFFSET_YEARS} years from the validation time; certificates carry dates in the years 0 to 9999"
    )]
    TimeTooFar {
        /// As written.
        written: String,
    },
    /// Neither a relative time nor an RFC 3339 date.
    #[error("time '{written}' is neither relative (-30d, +365d) nor RFC 3339 (2022-07-11T16:55:26Z)")]
    TimeForm {
        /// As written.
        written: String,
    },
}

/// The years a certificate's dates can be written in: UTCTime covers 1950 to 2049 and
/// GeneralizedTime four-digit years (rcgen's DER writer, yasna, refuses any other).
pub const CERT_YEARS: std::ops::RangeInclusive<i32> = 0..=9999;

/// The largest relative time, in years (of 365 days) either way: from any validation time in
/// [`CERT_YEARS`], anything further lands outside them.
pub const MAX_OFFSET_YEARS: i64 = 10_000;

/// A subject name: any of C, ST, L, O, OU, CN, and domain components.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case)]
pub struct Subject {
    /// Domain components, most significant first as written (`["lab", "vngtp"]`).
    #[serde(default)]
    pub DC: Vec<String>,
    /// Country.
    #[serde(default)]
    pub C: Option<String>,
    /// State or province.
    #[serde(default)]
    pub ST: Option<String>,
    /// Locality.
    #[serde(default)]
    pub L: Option<String>,
    /// Organisation.
    #[serde(default)]
    pub O: Option<String>,
    /// Organisational unit.
    #[serde(default)]
    pub OU: Option<String>,
    /// Common name.
    #[serde(default)]
    pub CN: Option<String>,
}

impl Subject {
    /// A subject with only a common name.
    pub fn cn(cn: impl Into<String>) -> Self {
        Subject { CN: Some(cn.into()), ..Subject::default() }
    }

    /// The attributes in the order they are written into the certificate.
    pub fn attributes(&self) -> Vec<(&'static str, &str)> {
        let mut out: Vec<(&'static str, &str)> = self.DC.iter().map(|d| ("DC", d.as_str())).collect();
        for (tag, value) in
            [("C", &self.C), ("ST", &self.ST), ("L", &self.L), ("O", &self.O), ("OU", &self.OU), ("CN", &self.CN)]
        {
            if let Some(v) = value {
                out.push((tag, v.as_str()));
            }
        }
        out
    }
}

impl fmt::Display for Subject {
    /// `C=BE, ST=Belgium, ..., CN=cucm-ms.steven.lab`, as a person reads it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.attributes().iter().map(|(t, v)| format!("{t}={v}")).collect();
        f.write_str(&parts.join(", "))
    }
}

/// Key algorithm and size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyType {
    /// ECDSA on P-256, CUCM's default for the -ECDSA certificates.
    #[default]
    EcdsaP256,
    /// ECDSA on P-384.
    EcdsaP384,
    /// RSA 2048 bits.
    Rsa2048,
    /// RSA 3072 bits.
    Rsa3072,
    /// RSA 4096 bits.
    Rsa4096,
}

impl KeyType {
    /// Every key type, in the order they are documented.
    pub const ALL: [KeyType; 5] =
        [KeyType::EcdsaP256, KeyType::EcdsaP384, KeyType::Rsa2048, KeyType::Rsa3072, KeyType::Rsa4096];

    /// The spelling used in files and output.
    pub fn name(self) -> &'static str {
        match self {
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::EcdsaP384 => "ecdsa-p384",
            KeyType::Rsa2048 => "rsa-2048",
            KeyType::Rsa3072 => "rsa-3072",
            KeyType::Rsa4096 => "rsa-4096",
        }
    }

    /// Whether this is an RSA key (and so an RSA identity on a node).
    pub fn is_rsa(self) -> bool {
        matches!(self, KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096)
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeyType {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        let normal = s.to_ascii_lowercase().replace(['_', ' '], "-");
        let found = match normal.as_str() {
            "ecdsa-p256" | "p256" | "p-256" | "ec-p256" | "ecdsa" | "ec" => KeyType::EcdsaP256,
            "ecdsa-p384" | "p384" | "p-384" | "ec-p384" => KeyType::EcdsaP384,
            "rsa-2048" | "rsa2048" | "rsa" => KeyType::Rsa2048,
            "rsa-3072" | "rsa3072" => KeyType::Rsa3072,
            "rsa-4096" | "rsa4096" => KeyType::Rsa4096,
            _ => {
                return Err(SpecError::UnknownKeyType {
                    written: s.to_string(),
                    suggestion: crate::source::did_you_mean(s, KeyType::ALL.map(KeyType::name)),
                });
            }
        };
        Ok(found)
    }
}

/// A subject alternative name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum San {
    /// A dNSName; may be a wildcard (`*.steven.lab`) or an IP address written as text.
    Dns(String),
    /// An iPAddress.
    Ip(IpAddr),
}

impl fmt::Display for San {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            San::Dns(name) => write!(f, "dns:{name}"),
            San::Ip(ip) => write!(f, "ip:{ip}"),
        }
    }
}

impl FromStr for San {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        match s.split_once(':') {
            Some(("dns", name)) if !name.is_empty() && name.is_ascii() && !name.contains(' ') => {
                Ok(San::Dns(name.to_string()))
            }
            Some(("ip", addr)) => addr
                .parse()
                .map(San::Ip)
                .map_err(|_| SpecError::SanAddress { written: s.to_string(), address: addr.to_string() }),
            _ => Err(SpecError::SanForm { written: s.to_string() }),
        }
    }
}

/// A point in time, relative to the scenario's validation time or absolute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSpec {
    /// An offset from the validation time: `-30d`, `+365d`, `+2h`, `-90s`, `+1y` (365 days).
    Relative(Duration),
    /// A fixed date, for the scenarios that are about one.
    Absolute(OffsetDateTime),
}

impl TimeSpec {
    /// The instant this names given the validation time, in UTC; `None` when that instant is
    /// not one a certificate can carry (outside [`CERT_YEARS`]).
    pub fn resolve(self, validation_time: OffsetDateTime) -> Option<OffsetDateTime> {
        let at = match self {
            TimeSpec::Relative(offset) => validation_time.checked_add(offset)?,
            TimeSpec::Absolute(at) => at,
        };
        at.checked_to_offset(time::UtcOffset::UTC).filter(|at| CERT_YEARS.contains(&at.year()))
    }
}

impl fmt::Display for TimeSpec {
    /// As it could be written: `-30d`, `+2h`, `-90s`, or RFC 3339.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeSpec::Relative(offset) => {
                let secs = offset.whole_seconds();
                let sign = if secs < 0 { '-' } else { '+' };
                let abs = secs.unsigned_abs();
                if abs % 86_400 == 0 {
                    write!(f, "{sign}{}d", abs / 86_400)
                } else if abs % 3_600 == 0 {
                    write!(f, "{sign}{}h", abs / 3_600)
                } else {
                    write!(f, "{sign}{abs}s")
                }
            }
            TimeSpec::Absolute(at) => match at.format(&time::format_description::well_known::Rfc3339) {
                Ok(text) => f.write_str(&text),
                Err(_) => write!(f, "{at}"),
            },
        }
    }
}

impl FromStr for TimeSpec {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        let s = s.trim();
        let written = || s.to_string();
        if let Some(sign) = s.chars().next().filter(|c| *c == '+' || *c == '-') {
            let body = &s[1..];
            let split = body.find(|c: char| !c.is_ascii_digit()).unwrap_or(body.len());
            let (digits, unit) = body.split_at(split);
            let n: i64 = digits.parse().map_err(|_| SpecError::TimeCount { written: written() })?;
            let unit_seconds: i64 = match unit {
                "s" => 1,
                "m" => 60,
                "h" => 3_600,
                "d" => 86_400,
                "y" => 365 * 86_400,
                _ => return Err(SpecError::TimeUnit { written: written(), unit: unit.to_string() }),
            };
            let secs = n
                .checked_mul(unit_seconds)
                .filter(|secs| *secs <= MAX_OFFSET_YEARS * 365 * 86_400)
                .ok_or_else(|| SpecError::TimeTooFar { written: written() })?;
            return Ok(TimeSpec::Relative(Duration::seconds(if sign == '-' { -secs } else { secs })));
        }
        OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .map(TimeSpec::Absolute)
            .map_err(|_| SpecError::TimeForm { written: written() })
    }
}

/// Key usage bits, named as in RFC 5280.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub enum KeyUsage {
    DigitalSignature,
    NonRepudiation,
    KeyEncipherment,
    DataEncipherment,
    KeyAgreement,
    KeyCertSign,
    CrlSign,
}

/// Extended key usages that matter to TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Eku {
    /// id-kp-serverAuth: needed by a TLS server certificate.
    ServerAuth,
    /// id-kp-clientAuth: Expressway-C's certificate when it is a TLS client on 6972.
    ClientAuth,
}

/// How the authority key identifier is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AkiSpec {
    /// The issuer's subject key identifier.
    #[default]
    Present,
    /// No AKI extension.
    Absent,
    /// An identifier that matches no certificate: chain builders that trust AKI/SKI (CUCM,
    /// OpenSSL) will not find the issuer by it.
    Mismatched,
}

crate::deserialize_from_str!(KeyType, San, Subtree, TimeSpec);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_are_typed_errors_naming_what_was_written() {
        assert_eq!(
            "ecdsa-p265".parse::<KeyType>(),
            Err(SpecError::UnknownKeyType {
                written: "ecdsa-p265".into(),
                suggestion: " (did you mean 'ecdsa-p256'?)".into()
            })
        );
        assert_eq!(
            "ip:10.1.2".parse::<San>(),
            Err(SpecError::SanAddress { written: "ip:10.1.2".into(), address: "10.1.2".into() })
        );
        assert_eq!("uri:x".parse::<San>(), Err(SpecError::SanForm { written: "uri:x".into() }));
        assert_eq!("+x".parse::<TimeSpec>(), Err(SpecError::TimeCount { written: "+x".into() }));
        assert_eq!("+5w".parse::<TimeSpec>(), Err(SpecError::TimeUnit { written: "+5w".into(), unit: "w".into() }));
        assert_eq!("tomorrow".parse::<TimeSpec>(), Err(SpecError::TimeForm { written: "tomorrow".into() }));
    }

    #[test]
    fn a_relative_time_beyond_ten_thousand_years_is_refused_without_overflowing() {
        for written in ["+99999999999d", "-4000000d", "+999999999999999999d", "+9223372036854775807s", "-10001y"] {
            assert_eq!(written.parse::<TimeSpec>(), Err(SpecError::TimeTooFar { written: written.into() }));
        }
        assert!("-10000y".parse::<TimeSpec>().is_ok());
        assert!("+3000000d".parse::<TimeSpec>().is_ok());
    }

    #[test]
    fn resolving_refuses_dates_outside_the_years_0_to_9999_in_utc() {
        let at = time::macros::datetime!(2022-07-11 16:55:26 UTC);
        let resolve = |s: &str| s.parse::<TimeSpec>().expect("parses").resolve(at);
        assert_eq!(resolve("+30d"), Some(at + Duration::days(30)));
        assert_eq!(resolve("+3000000d"), None, "year 10235");
        assert_eq!(resolve("-3000000d"), None, "year -6191");
        assert_eq!(resolve("0000-01-01T00:00:00+01:00"), None, "year -1 in UTC");
        assert_eq!(resolve("9999-12-31T23:30:00-01:00"), None, "year 10000 in UTC");
        assert!(resolve("0000-01-01T00:00:00Z").is_some());
        assert!(resolve("9999-12-31T23:59:59Z").is_some());
    }

    #[test]
    fn times_show_as_they_could_be_written() {
        for written in ["+365d", "-30d", "+2h", "-90s", "2022-07-11T16:55:26Z", "0000-01-01T00:00:00+01:00"] {
            assert_eq!(written.parse::<TimeSpec>().expect("parses").to_string(), written);
        }
        assert_eq!("+1y".parse::<TimeSpec>().expect("parses").to_string(), "+365d");
    }

    #[test]
    fn name_constraint_subtrees_read_and_show_as_written() {
        for written in [
            "dns:.corp.example",
            "dns:corp.example",
            "ip:10.0.0.0/8",
            "ip:::/0",
            "email:corp.example",
            "dn:O=Corp,CN=x",
        ] {
            assert_eq!(written.parse::<Subtree>().expect("parses").to_string(), written);
        }
        for bad in ["ip:10.0.0.0", "ip:10.0.0.0/33", "dn:X=1", "dn:", "uri:x", "dns:a b"] {
            assert_eq!(bad.parse::<Subtree>(), Err(SpecError::SubtreeForm { written: bad.into() }), "{bad}");
        }
    }
}
