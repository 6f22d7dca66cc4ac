//! Turning a checked [`Topology`] into certificates with rcgen.
//!
//! rcgen writes the subject, SANs, validity, serial, key usage and EKU. Basic constraints,
//! subject and authority key identifiers are written here as raw extensions, because the
//! topologies need shapes rcgen will not make on its own: a CA without SKI, a leaf with SKI
//! but no basic constraints, an AKI that matches nothing.

use std::collections::BTreeMap;

use rcgen::{
    CertificateParams, CustomExtension, DnType, DnValue, ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose,
    SanType, SerialNumber,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::OffsetDateTime;
use toml::Spanned;

use super::keys::KeyCache;
use super::spec::{AkiSpec, CertSpec, Eku, KeyType, KeyUsage, NameConstraintsSpec, San, Subtree, TimeSpec};
use super::{CertKind, PkiError, Role, Topology, identity_of};

/// One built certificate with its key and everything needed to describe it.
#[derive(Debug)]
pub struct BuiltCert {
    /// The id in the topology (`cucm/tomcat-ECDSA`).
    pub id: String,
    /// Its role.
    pub role: Role,
    /// The issuing certificate's id; `None` when self-signed.
    pub issuer: Option<String>,
    /// The specification it was built from.
    pub spec: CertSpec,
    /// The serial number (from the build counter).
    pub serial: u64,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// The certificate.
    pub der: CertificateDer<'static>,
    /// The private key, PKCS#8.
    pub key_der: Vec<u8>,
    /// Subject key identifier as written (empty when absent).
    pub ski: Vec<u8>,
    key: KeyPair,
    params: CertificateParams,
}

impl BuiltCert {
    /// The private key, as rustls takes it.
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }

    /// The key type.
    pub fn key_type(&self) -> KeyType {
        self.spec.key
    }

    /// PEM of the certificate.
    pub fn pem(&self) -> String {
        pem_block("CERTIFICATE", &self.der)
    }

    /// PEM of the key (PKCS#8).
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// The node and kind, when this is a CUCM-side identity (`cucm/tomcat`).
    pub fn identity(&self) -> Option<(&str, CertKind)> {
        identity_of(&self.id)
    }

    /// The subject's common name, if any.
    pub fn common_name(&self) -> Option<&str> {
        self.spec.subject.CN.as_deref()
    }

    /// Whether the certificate is self-signed.
    pub fn is_self_signed(&self) -> bool {
        self.issuer.is_none()
    }
}

/// A built PKI: every certificate of a topology at one validation time.
#[derive(Debug)]
pub struct Pki {
    topology: Topology,
    validation_time: OffsetDateTime,
    certs: BTreeMap<String, BuiltCert>,
    next_serial: u64,
}

/// Serials start here so that they read as serials, not as small counts.
const FIRST_SERIAL: u64 = 0x1000;

impl Pki {
    /// Builds every certificate of `topology`, with validity relative to `validation_time`.
    pub fn build(topology: &Topology, validation_time: OffsetDateTime, keys: &KeyCache) -> Result<Pki, PkiError> {
        let mut pki =
            Pki { topology: topology.clone(), validation_time, certs: BTreeMap::new(), next_serial: FIRST_SERIAL };
        let mut slots: BTreeMap<KeyType, usize> = BTreeMap::new();
        for id in topology.order() {
            let spec = &topology.spec().certs[id];
            let slot = slots.entry(spec.key).or_default();
            let key = keys.key(spec.key, *slot).map_err(|source| PkiError::Key { cert: id.clone(), source })?;
            *slot += 1;
            let serial = pki.next_serial;
            pki.next_serial += 1;
            let cert = pki.make(id, spec.clone(), key, serial)?;
            pki.certs.insert(id.clone(), cert);
        }
        Ok(pki)
    }

    /// The topology this was built from.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The validation time every relative date is measured from.
    pub fn validation_time(&self) -> OffsetDateTime {
        self.validation_time
    }

    /// Every certificate, by id.
    pub fn certs(&self) -> impl Iterator<Item = &BuiltCert> {
        self.certs.values()
    }

    /// One certificate by id.
    pub fn cert(&self, id: &str) -> Result<&BuiltCert, PkiError> {
        self.certs.get(id).ok_or_else(|| self.topology.unknown_cert(id))
    }

    /// The DER chain the server holding `id` sends, leaf first.
    pub fn sent_chain(&self, id: &str) -> Result<Vec<CertificateDer<'static>>, PkiError> {
        self.cert(id)?;
        self.topology.sends(id).iter().map(|sent| Ok(self.cert(sent)?.der.clone())).collect()
    }

    /// The ids of `id` and its issuers up to the top, leaf first (what a trust path is).
    pub fn path_to_top(&self, id: &str) -> Vec<String> {
        let mut out = vec![id.to_string()];
        let mut at = id;
        while let Some(up) = self.topology.issuer(at) {
            out.push(up.to_string());
            at = up;
        }
        out
    }

    /// Re-issues one certificate after a change to its specification (an added SAN, a new
    /// validity): same issuer, a fresh serial, the rest of the PKI untouched.
    pub fn reissue(&mut self, id: &str, change: impl FnOnce(&mut CertSpec)) -> Result<&BuiltCert, PkiError> {
        let topology = self.topology.with_change(id, change)?;
        let spec = topology.spec().certs[id].clone();
        let old = self.cert(id)?;
        let key =
            KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(old.key_der.clone()), old.key.algorithm())
                .map_err(|e| PkiError::Sign { cert: id.to_string(), message: e.to_string() })?;
        self.topology = topology;
        let serial = self.next_serial;
        self.next_serial += 1;
        let cert = self.make(id, spec, key, serial)?;
        self.certs.insert(id.to_string(), cert);
        self.cert(id)
    }

    /// `not_before` and `not_after` at this PKI's validation time, in UTC: refused when a date
    /// falls outside the years a certificate can carry (rcgen's DER writer would panic on it)
    /// or the validity ends before it starts.
    fn validity(&self, id: &str, spec: &CertSpec) -> Result<(OffsetDateTime, OffsetDateTime), PkiError> {
        let resolve = |field: &'static str, written: &Spanned<TimeSpec>| {
            written.get_ref().resolve(self.validation_time).ok_or_else(|| PkiError::DateOutOfRange {
                at: self.topology.locate(written.span()),
                cert: id.to_string(),
                field,
                written: *written.get_ref(),
                validation_time: self.validation_time,
            })
        };
        let not_before = resolve("not_before", &spec.not_before)?;
        let not_after = resolve("not_after", &spec.not_after)?;
        if not_after < not_before {
            return Err(PkiError::ValidityInverted {
                at: self
                    .topology
                    .locate(spec.not_after.span())
                    .or_else(|| self.topology.locate(spec.not_before.span())),
                cert: id.to_string(),
                not_before: *spec.not_before.get_ref(),
                not_after: *spec.not_after.get_ref(),
            });
        }
        Ok((not_before, not_after))
    }

    fn make(&self, id: &str, spec: CertSpec, key: KeyPair, serial: u64) -> Result<BuiltCert, PkiError> {
        let role = self.topology.role(id).unwrap_or(Role::Leaf);
        let issuer_id = self.topology.issuer(id).map(str::to_string);
        let (not_before, not_after) = self.validity(id, &spec)?;
        let field = |field: &'static str, message: String| PkiError::Field { cert: id.to_string(), field, message };

        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (tag, value) in spec.subject.attributes() {
            let ty = match tag {
                "DC" => DnType::CustomDnType(vec![0, 9, 2342, 19200300, 100, 1, 25]),
                "C" => DnType::CountryName,
                "ST" => DnType::StateOrProvinceName,
                "L" => DnType::LocalityName,
                "O" => DnType::OrganizationName,
                "OU" => DnType::OrganizationalUnitName,
                _ => DnType::CommonName,
            };
            let value = if tag == "DC" {
                DnValue::Ia5String(
                    value.try_into().map_err(|_| field("subject.DC", format!("'{value}' is not ASCII")))?,
                )
            } else if tag == "C" {
                let not_a_country = || field("subject.C", format!("'{value}' is not a country code"));
                // rcgen takes '?' in a PrintableString, as X.680 allows, but its encoder (yasna)
                // panics on it.
                if value.contains('?') {
                    return Err(not_a_country());
                }
                DnValue::PrintableString(value.try_into().map_err(|_| not_a_country())?)
            } else {
                DnValue::Utf8String(value.to_string())
            };
            params.distinguished_name.push(ty, value);
        }
        params.not_before = not_before;
        params.not_after = not_after;
        params.serial_number = Some(SerialNumber::from_slice(&serial.to_be_bytes()));
        params.subject_alt_names = spec
            .san
            .iter()
            .map(|san| match san {
                San::Dns(name) => name
                    .as_str()
                    .try_into()
                    .map(SanType::DnsName)
                    .map_err(|_| field("san", format!("'{name}' is not a valid DNS name"))),
                San::Ip(ip) => Ok(SanType::IpAddress(*ip)),
            })
            .collect::<Result<_, _>>()?;

        let is_ca_role = role != Role::Leaf;
        let ca = spec.ca.or(is_ca_role.then_some(true));
        let self_signed = issuer_id.is_none();
        params.key_usages = match &spec.key_usage {
            Some(usages) => usages.iter().map(|u| key_usage(*u)).collect(),
            None if is_ca_role => {
                vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign]
            }
            None => {
                let mut usages = vec![KeyUsagePurpose::DigitalSignature];
                usages.push(if spec.key.is_rsa() {
                    KeyUsagePurpose::KeyEncipherment
                } else {
                    KeyUsagePurpose::KeyAgreement
                });
                // CUCM's self-signed certificates carry Certificate Sign (they are their own CA).
                if self_signed {
                    usages.push(KeyUsagePurpose::KeyCertSign);
                }
                usages
            }
        };
        params.extended_key_usages = match &spec.eku {
            Some(ekus) => ekus.iter().map(|e| eku(*e)).collect(),
            None if is_ca_role => Vec::new(),
            None => vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth],
        };

        // Basic constraints, SKI and AKI as raw extensions (see the module comment).
        let ski = if spec.ski { params.key_identifier(&key) } else { Vec::new() };
        if let Some(ca) = ca {
            let mut content = Vec::new();
            if ca {
                content.extend_from_slice(&[0x01, 0x01, 0xff]);
                if let Some(len) = spec.path_len {
                    content.extend_from_slice(&[0x02, 0x01, len]);
                }
            }
            let mut ext = CustomExtension::from_oid_content(&[2, 5, 29, 19], der(0x30, &content));
            ext.set_criticality(true);
            params.custom_extensions.push(ext);
        }
        if spec.ski {
            params.custom_extensions.push(CustomExtension::from_oid_content(&[2, 5, 29, 14], der(0x04, &ski)));
        }
        if let Some(nc) = &spec.name_constraints {
            let mut ext = CustomExtension::from_oid_content(&[2, 5, 29, 30], name_constraints_der(nc));
            ext.set_criticality(nc.critical);
            params.custom_extensions.push(ext);
        }
        let issuer_ski = match &issuer_id {
            Some(issuer) => self.cert(issuer)?.ski.clone(),
            None => ski.clone(),
        };
        let aki = match spec.aki {
            AkiSpec::Absent => None,
            // A self-signed certificate without SKI has nothing to point at.
            AkiSpec::Present if issuer_ski.is_empty() => None,
            AkiSpec::Present => Some(issuer_ski),
            AkiSpec::Mismatched => {
                let base = if issuer_ski.is_empty() { params.key_identifier(&key) } else { issuer_ski };
                Some(base.iter().map(|b| b ^ 0x5a).collect())
            }
        };
        if let Some(aki) = aki {
            params
                .custom_extensions
                .push(CustomExtension::from_oid_content(&[2, 5, 29, 35], der(0x30, &der(0x80, &aki))));
        }

        let sign_error = |e: rcgen::Error| PkiError::Sign { cert: id.to_string(), message: e.to_string() };
        let certificate = match &issuer_id {
            None => params.self_signed(&key).map_err(sign_error)?,
            Some(issuer) => {
                let issuer = self.cert(issuer)?;
                let signer = Issuer::from_params(&issuer.params, &issuer.key);
                params.signed_by(&key, &signer).map_err(sign_error)?
            }
        };
        Ok(BuiltCert {
            id: id.to_string(),
            role,
            issuer: issuer_id,
            spec,
            serial,
            not_before,
            not_after,
            der: certificate.der().clone(),
            key_der: key.serialize_der(),
            ski,
            key,
            params,
        })
    }
}

fn key_usage(usage: KeyUsage) -> KeyUsagePurpose {
    match usage {
        KeyUsage::DigitalSignature => KeyUsagePurpose::DigitalSignature,
        KeyUsage::NonRepudiation => KeyUsagePurpose::ContentCommitment,
        KeyUsage::KeyEncipherment => KeyUsagePurpose::KeyEncipherment,
        KeyUsage::DataEncipherment => KeyUsagePurpose::DataEncipherment,
        KeyUsage::KeyAgreement => KeyUsagePurpose::KeyAgreement,
        KeyUsage::KeyCertSign => KeyUsagePurpose::KeyCertSign,
        KeyUsage::CrlSign => KeyUsagePurpose::CrlSign,
    }
}

fn eku(eku: Eku) -> ExtendedKeyUsagePurpose {
    match eku {
        Eku::ServerAuth => ExtendedKeyUsagePurpose::ServerAuth,
        Eku::ClientAuth => ExtendedKeyUsagePurpose::ClientAuth,
    }
}

/// One DER TLV with a short or long-form length.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// The DER of a nameConstraints value (RFC 5280 4.2.1.10): `[0]` permitted and `[1]` excluded
/// GeneralSubtrees, each a SEQUENCE holding only its base.
fn name_constraints_der(nc: &NameConstraintsSpec) -> Vec<u8> {
    let subtrees = |tag: u8, list: &[Subtree]| -> Vec<u8> {
        if list.is_empty() {
            return Vec::new();
        }
        let content: Vec<u8> = list.iter().flat_map(|s| der(0x30, &general_name_der(s))).collect();
        der(tag, &content)
    };
    let mut content = subtrees(0xa0, &nc.permitted);
    content.extend(subtrees(0xa1, &nc.excluded));
    der(0x30, &content)
}

fn general_name_der(subtree: &Subtree) -> Vec<u8> {
    match subtree {
        Subtree::Dns(name) => der(0x82, name.as_bytes()),
        Subtree::Email(name) => der(0x81, name.as_bytes()),
        Subtree::Ip(addr, prefix) => {
            let (mut bytes, bits) = match addr {
                std::net::IpAddr::V4(v4) => (v4.octets().to_vec(), 32u32),
                std::net::IpAddr::V6(v6) => (v6.octets().to_vec(), 128u32),
            };
            let prefix = u32::from(*prefix).min(bits);
            let mask: Vec<u8> = (0..bits / 8)
                .map(|i| {
                    let have = prefix.saturating_sub(i * 8).min(8);
                    (0xffu16 << (8 - have)) as u8
                })
                .collect();
            bytes.extend(mask);
            der(0x87, &bytes)
        }
        Subtree::Dn(attrs) => {
            let rdns: Vec<u8> = attrs
                .iter()
                .flat_map(|(key, value)| {
                    let oid: &[u8] = match key.as_str() {
                        "C" => &[0x55, 0x04, 0x06],
                        "ST" => &[0x55, 0x04, 0x08],
                        "L" => &[0x55, 0x04, 0x07],
                        "O" => &[0x55, 0x04, 0x0a],
                        "OU" => &[0x55, 0x04, 0x0b],
                        _ => &[0x55, 0x04, 0x03],
                    };
                    // As the subject is written (build: C as PrintableString, the rest UTF8String).
                    let value_tag = if key == "C" { 0x13 } else { 0x0c };
                    let mut atv = der(0x06, oid);
                    atv.extend(der(value_tag, value.as_bytes()));
                    der(0x31, &der(0x30, &atv))
                })
                .collect();
            der(0xa4, &der(0x30, &rdns))
        }
    }
}

/// PEM armour for DER bytes.
pub fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::source::Source;

    #[test]
    fn a_country_with_a_question_mark_is_a_field_error_not_a_panic() {
        // The topology_toml fuzz target panicked here: rcgen accepts '?' in a PrintableString,
        // yasna's writer does not.
        let text = "[certs.a]\nsubject = { C = \"B?\", CN = \"a\" }\n";
        let topology = Topology::from_toml(&Source::new("t.toml", text)).expect("checks");
        let e = Pki::build(&topology, datetime!(2022-07-11 16:55:26 UTC), &KeyCache::in_memory())
            .expect_err("not a country");
        assert!(matches!(&e, PkiError::Field { field: "subject.C", .. }), "{e}");
    }
}
