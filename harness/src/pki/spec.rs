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
use time::{Duration, OffsetDateTime, UtcOffset};
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
    /// Start of validity, relative to the validation time (`-30d`) or absolute (RFC 3339).
    #[serde(default = "default_not_before")]
    pub not_before: TimeSpec,
    /// End of validity, relative to the validation time (`+365d`) or absolute (RFC 3339).
    #[serde(default = "default_not_after")]
    pub not_after: TimeSpec,
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
}

fn yes() -> bool {
    true
}

fn default_not_before() -> TimeSpec {
    TimeSpec::Relative(Duration::days(-30))
}

fn default_not_after() -> TimeSpec {
    TimeSpec::Relative(Duration::days(365))
}

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
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let normal = s.to_ascii_lowercase().replace(['_', ' '], "-");
        let found = match normal.as_str() {
            "ecdsa-p256" | "p256" | "p-256" | "ec-p256" | "ecdsa" | "ec" => KeyType::EcdsaP256,
            "ecdsa-p384" | "p384" | "p-384" | "ec-p384" => KeyType::EcdsaP384,
            "rsa-2048" | "rsa2048" | "rsa" => KeyType::Rsa2048,
            "rsa-3072" | "rsa3072" => KeyType::Rsa3072,
            "rsa-4096" | "rsa4096" => KeyType::Rsa4096,
            _ => {
                let names = KeyType::ALL.map(KeyType::name);
                return Err(format!(
                    "unknown key type '{s}'{}; expected one of {}",
                    crate::source::did_you_mean(s, names),
                    names.join(", ")
                ));
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
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            Some(("dns", name)) if !name.is_empty() && name.is_ascii() && !name.contains(' ') => {
                Ok(San::Dns(name.to_string()))
            }
            Some(("ip", addr)) => {
                addr.parse().map(San::Ip).map_err(|_| format!("'{addr}' in SAN '{s}' is not an IP address"))
            }
            _ => Err(format!("SAN '{s}' must be 'dns:NAME' or 'ip:ADDRESS'")),
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

/// The years a certificate's validity can state: GeneralizedTime has four digits (and rcgen's
/// encoder panics outside them).
const CERTIFICATE_YEARS: std::ops::RangeInclusive<i32> = 0..=9999;

impl TimeSpec {
    /// The instant this names, given the validation time; `None` when it falls outside the
    /// years 0 to 9999 (in UTC) that a certificate's validity can state.
    pub fn resolve(self, validation_time: OffsetDateTime) -> Option<OffsetDateTime> {
        let at = match self {
            TimeSpec::Relative(offset) => validation_time.checked_add(offset)?,
            TimeSpec::Absolute(at) => at,
        };
        let utc = at.checked_to_offset(UtcOffset::UTC)?;
        CERTIFICATE_YEARS.contains(&utc.year()).then_some(at)
    }
}

impl FromStr for TimeSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(sign) = s.chars().next().filter(|c| *c == '+' || *c == '-') {
            let body = &s[1..];
            let split = body.find(|c: char| !c.is_ascii_digit()).unwrap_or(body.len());
            let (digits, unit) = body.split_at(split);
            let n: i64 =
                digits.parse().map_err(|_| format!("time '{s}' must look like -30d, +365d, +2h, -90s or +1y"))?;
            let n = if sign == '-' { -n } else { n };
            let seconds_per_unit: i64 = match unit {
                "s" => 1,
                "m" => 60,
                "h" => 3_600,
                "d" => 86_400,
                "y" => 365 * 86_400,
                _ => return Err(format!("time '{s}' has unit '{unit}'; use s, m, h, d or y")),
            };
            let seconds = n
                .checked_mul(seconds_per_unit)
                .ok_or_else(|| format!("time '{s}' is too far from the validation time"))?;
            return Ok(TimeSpec::Relative(Duration::seconds(seconds)));
        }
        OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .map(TimeSpec::Absolute)
            .map_err(|_| format!("time '{s}' is neither relative (-30d, +365d) nor RFC 3339 (2022-07-11T16:55:26Z)"))
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

crate::deserialize_from_str!(KeyType, San, TimeSpec);

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn an_offset_past_what_a_duration_holds_is_an_error_not_a_panic() {
        // The topology_toml fuzz target panicked here: Duration::days overflowed.
        let e = "+99999999999999999d".parse::<TimeSpec>().expect_err("too far");
        assert!(e.contains("too far from the validation time"), "{e}");
        assert!("-99999999999999999y".parse::<TimeSpec>().is_err());
        assert_eq!("+2y".parse::<TimeSpec>(), Ok(TimeSpec::Relative(Duration::days(730))));
    }

    #[test]
    fn an_instant_outside_the_years_a_certificate_can_state_resolves_to_none() {
        // The topology_toml fuzz target panicked here: the addition, and rcgen's encoder.
        let t = datetime!(2022-07-11 16:55:26 UTC);
        let resolve = |s: &str| s.parse::<TimeSpec>().expect("parses").resolve(t);
        assert_eq!(resolve("+9999999999y"), None);
        assert_eq!(resolve("-1000000d"), None);
        assert_eq!(resolve("0000-01-01T00:00:00+01:00"), None);
        assert_eq!(resolve("9999-12-31T23:59:59-01:00"), None);
        assert_eq!(resolve("+365d"), Some(datetime!(2023-07-11 16:55:26 UTC)));
        assert_eq!(resolve("0000-01-01T00:00:00Z"), Some(datetime!(0000-01-01 0:00 UTC)));
    }
}
