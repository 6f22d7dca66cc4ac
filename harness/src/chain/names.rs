//! Name constraints: `check_name_constraints` (`crypto/x509/x509_vfy.c`) and
//! `NAME_CONSTRAINTS_check` / `NAME_CONSTRAINTS_check_CN` (`v3_ncons.c`), which OpenSSL 1.1.1w
//! and 3.0 share but for two details:
//! - an explicitly encoded `minimum` of 0 in a subtree: 1.1.1 refuses any `minimum` with 49,
//!   3.0 only a non-zero one (`nc_minmax_valid`); a `maximum` is 49 in both;
//! - an `SmtpUTF8Mailbox` otherName: 3.0 checks it against rfc822Name subtrees (RFC 8398),
//!   1.1.1 ignores it there.
//!
//! Each certificate but the trust anchor's top (self-issued CAs skipped, the leaf always
//! checked) is held against the constraints of every certificate above it, the trust anchor
//! included: its subject as a directoryName, its subject's emailAddress attributes, every SAN,
//! and, for the leaf without a DNS SAN, every CN that looks like a host name.

use x509_parser::asn1_rs::{Any, Class, FromDer, Tag};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::X509Name;

use super::{CanonicalAttribute, OpensslFlavour, VerifyErrorCode, canonical_name};

/// One name of a certificate, as `nc_match` sees it (`GENERAL_NAME`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Name {
    Dir(Vec<Vec<CanonicalAttribute>>),
    Dns(Vec<u8>),
    Email(Vec<u8>),
    Uri(Vec<u8>),
    Ip(Vec<u8>),
    /// otherName: its type OID (dotted) and, for `SmtpUTF8Mailbox`, the UTF8String value
    /// (`None` when the value is some other type).
    Other {
        oid: String,
        utf8: Option<Vec<u8>>,
    },
    /// x400Address, ediPartyName, registeredID: only their tag matters here.
    Unhandled(u32),
}

impl Name {
    /// The `GENERAL_NAME` type number, and for otherName the OID compared by 3.0.
    fn kind(&self) -> u32 {
        match self {
            Name::Other { .. } => 0,
            Name::Email(_) => 1,
            Name::Dns(_) => 2,
            Name::Dir(_) => 4,
            Name::Uri(_) => 6,
            Name::Ip(_) => 7,
            Name::Unhandled(tag) => *tag,
        }
    }
}

const SMTP_UTF8_MAILBOX: &str = "1.3.6.1.5.5.7.8.9";

/// One `GeneralSubtree`.
#[derive(Debug, Clone)]
pub(super) struct Subtree {
    base: Name,
    /// `minimum` present: `Some(is zero)`.
    minimum: Option<bool>,
    maximum: bool,
}

/// A certificate's `nameConstraints`.
#[derive(Debug, Clone, Default)]
pub(super) struct NameConstraints {
    permitted: Vec<Subtree>,
    excluded: Vec<Subtree>,
}

/// The names of a certificate that constraints are held against.
#[derive(Debug, Clone, Default)]
pub(super) struct CertNames {
    /// The subject, when it has at least one attribute.
    subject: Option<Vec<Vec<CanonicalAttribute>>>,
    /// emailAddress attributes of the subject: `Ok(value)` for an IA5String, `Err(())` for any
    /// other string type (53).
    subject_emails: Vec<Result<Vec<u8>, ()>>,
    /// subjectAltName entries, in order.
    pub(super) sans: Vec<Name>,
    /// commonName attributes as UTF-8 bytes (`None` when not convertible).
    common_names: Vec<Option<Vec<u8>>>,
}

impl CertNames {
    pub(super) fn read(subject: &X509Name<'_>) -> Self {
        let mut names = CertNames::default();
        let rdns = canonical_name(subject);
        if rdns.iter().any(|rdn| !rdn.is_empty()) {
            names.subject = Some(rdns);
        }
        for atv in subject.iter_attributes() {
            match atv.attr_type().to_id_string().as_str() {
                "1.2.840.113549.1.9.1" => names.subject_emails.push(if atv.attr_value().tag() == Tag::Ia5String {
                    Ok(atv.attr_value().data.to_vec())
                } else {
                    Err(())
                }),
                "2.5.4.3" => names.common_names.push(string_to_utf8(atv.attr_value())),
                _ => {}
            }
        }
        names
    }

    fn has_dns_san(&self) -> bool {
        self.sans.iter().any(|n| matches!(n, Name::Dns(_)))
    }
}

/// `ASN1_STRING_to_UTF8` for the string types a CN is written in.
fn string_to_utf8(value: &Any<'_>) -> Option<Vec<u8>> {
    match value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::VisibleString | Tag::NumericString => {
            Some(value.data.to_vec())
        }
        // Latin-1 (T61String is read as Latin-1 by OpenSSL).
        Tag::T61String => Some(value.data.iter().map(|&b| b as char).collect::<String>().into_bytes()),
        Tag::BmpString => {
            let units: Vec<u16> = value
                .data
                .chunks(2)
                .map(|c| <[u8; 2]>::try_from(c).ok().map(u16::from_be_bytes))
                .collect::<Option<_>>()?;
            Some(String::from_utf16(&units).ok()?.into_bytes())
        }
        Tag::UniversalString => {
            let chars: Option<String> = value
                .data
                .chunks(4)
                .map(|c| {
                    let bytes: [u8; 4] = c.try_into().ok()?;
                    char::from_u32(u32::from_be_bytes(bytes))
                })
                .collect();
            Some(chars?.into_bytes())
        }
        _ => None,
    }
}

/// A `GeneralName` as x509-parser read it.
pub(super) fn name_of(general: &GeneralName<'_>) -> Name {
    match general {
        GeneralName::DNSName(s) => Name::Dns(s.as_bytes().to_vec()),
        GeneralName::RFC822Name(s) => Name::Email(s.as_bytes().to_vec()),
        GeneralName::URI(s) => Name::Uri(s.as_bytes().to_vec()),
        GeneralName::IPAddress(b) => Name::Ip(b.to_vec()),
        GeneralName::DirectoryName(dn) => Name::Dir(canonical_name(dn)),
        GeneralName::OtherName(oid, value) => {
            let oid = oid.to_id_string();
            let utf8 = if oid == SMTP_UTF8_MAILBOX { smtp_utf8_value(value) } else { None };
            Name::Other { oid, utf8 }
        }
        GeneralName::X400Address(_) => Name::Unhandled(3),
        GeneralName::EDIPartyName(_) => Name::Unhandled(5),
        GeneralName::RegisteredID(_) => Name::Unhandled(8),
        GeneralName::Invalid(tag, data) => match tag.0 {
            1 => Name::Email(data.to_vec()),
            2 => Name::Dns(data.to_vec()),
            6 => Name::Uri(data.to_vec()),
            7 => Name::Ip(data.to_vec()),
            other => Name::Unhandled(other),
        },
    }
}

/// The value of an otherName is `[0] EXPLICIT ANY`: x509-parser hands the explicit tag's
/// content, which for SmtpUTF8Mailbox should be a UTF8String.
fn smtp_utf8_value(value: &[u8]) -> Option<Vec<u8>> {
    let (_, any) = Any::from_der(value).ok()?;
    let inner = if any.class() == Class::ContextSpecific { Any::from_der(any.data).ok()?.1 } else { any };
    (inner.tag() == Tag::Utf8String).then(|| inner.data.to_vec())
}

/// Reads a `nameConstraints` extension value; `None` when OpenSSL would not decode it either
/// (it then has no constraints for that certificate). Like `X509V3_EXT_d2i` (in both flavours),
/// it reads the value's first element and ignores any bytes after it.
pub(super) fn parse_name_constraints(value: &[u8]) -> Option<NameConstraints> {
    let (_, outer) = Any::from_der(value).ok()?;
    if outer.tag() != Tag::Sequence {
        return None;
    }
    let mut nc = NameConstraints::default();
    let mut input = outer.data;
    while !input.is_empty() {
        let (rest, part) = Any::from_der(input).ok()?;
        input = rest;
        if part.class() != Class::ContextSpecific {
            return None;
        }
        let list = match part.tag().0 {
            0 => &mut nc.permitted,
            1 => &mut nc.excluded,
            _ => return None,
        };
        let mut subtrees = part.data;
        while !subtrees.is_empty() {
            let (rest, subtree) = Any::from_der(subtrees).ok()?;
            subtrees = rest;
            if subtree.tag() != Tag::Sequence {
                return None;
            }
            let (mut fields, base) = Any::from_der(subtree.data).ok()?;
            let base = GeneralName::try_from(base).ok()?;
            let mut parsed = Subtree { base: name_of(&base), minimum: None, maximum: false };
            while !fields.is_empty() {
                let (rest, field) = Any::from_der(fields).ok()?;
                fields = rest;
                match (field.class(), field.tag().0) {
                    (Class::ContextSpecific, 0) => parsed.minimum = Some(field.data.iter().all(|&b| b == 0)),
                    (Class::ContextSpecific, 1) => parsed.maximum = true,
                    _ => return None,
                }
            }
            list.push(parsed);
        }
    }
    Some(nc)
}

/// `NAME_CONSTRAINTS_check`, then for the leaf without a DNS SAN `NAME_CONSTRAINTS_check_CN`.
pub(super) fn check(
    names: &CertNames,
    nc: &NameConstraints,
    is_leaf: bool,
    flavour: OpensslFlavour,
) -> Option<VerifyErrorCode> {
    if let Some(subject) = &names.subject {
        if let Some(code) = nc_result(&Name::Dir(subject.clone()), nc, flavour) {
            return Some(code);
        }
        for email in &names.subject_emails {
            let Ok(value) = email else {
                return Some(VerifyErrorCode::UnsupportedNameSyntax);
            };
            if let Some(code) = nc_result(&Name::Email(value.clone()), nc, flavour) {
                return Some(code);
            }
        }
    }
    for san in &names.sans {
        if let Some(code) = nc_result(san, nc, flavour) {
            return Some(code);
        }
    }
    if is_leaf && !names.has_dns_san() {
        for cn in names.common_names.iter().flatten() {
            let mut cn = cn.as_slice();
            while let [rest @ .., 0] = cn {
                cn = rest;
            }
            if cn.contains(&0) {
                return Some(VerifyErrorCode::UnsupportedNameSyntax);
            }
            if looks_like_dns_name(cn)
                && let Some(code) = nc_result(&Name::Dns(cn.to_vec()), nc, flavour)
            {
                return Some(code);
            }
        }
    }
    None
}

/// `nc_match`: `None` when the name passes, else the error.
fn nc_result(name: &Name, nc: &NameConstraints, flavour: OpensslFlavour) -> Option<VerifyErrorCode> {
    // 3.0 checks an SmtpUTF8Mailbox otherName as an email (RFC 8398).
    let effective = match (flavour, name) {
        (OpensslFlavour::V3_0, Name::Other { oid, .. }) if oid == SMTP_UTF8_MAILBOX => 1,
        _ => name.kind(),
    };
    let same_type = |sub: &Subtree| -> bool {
        if effective != sub.base.kind() {
            return false;
        }
        match (flavour, name, &sub.base) {
            (OpensslFlavour::V3_0, Name::Other { oid, .. }, Name::Other { oid: base_oid, .. }) => oid == base_oid,
            _ => true,
        }
    };
    let minmax_bad = |sub: &Subtree| -> bool {
        sub.maximum
            || match flavour {
                OpensslFlavour::V1_1_1 => sub.minimum.is_some(),
                OpensslFlavour::V3_0 => sub.minimum == Some(false),
            }
    };
    let mut matched = 0u8;
    for sub in nc.permitted.iter().filter(|s| same_type(s)) {
        if minmax_bad(sub) {
            return Some(VerifyErrorCode::SubtreeMinMax);
        }
        if matched == 2 {
            continue;
        }
        matched = 1;
        match match_single(effective, name, &sub.base) {
            Ok(()) => matched = 2,
            Err(VerifyErrorCode::PermittedViolation) => {}
            Err(other) => return Some(other),
        }
    }
    if matched == 1 {
        return Some(VerifyErrorCode::PermittedViolation);
    }
    for sub in nc.excluded.iter().filter(|s| same_type(s)) {
        if minmax_bad(sub) {
            return Some(VerifyErrorCode::SubtreeMinMax);
        }
        match match_single(effective, name, &sub.base) {
            Ok(()) => return Some(VerifyErrorCode::ExcludedViolation),
            Err(VerifyErrorCode::PermittedViolation) => {}
            Err(other) => return Some(other),
        }
    }
    None
}

/// `nc_match_single`: `Ok` on a match, `Err(PermittedViolation)` on none, another error when the
/// name cannot be checked.
fn match_single(effective: u32, name: &Name, base: &Name) -> Result<(), VerifyErrorCode> {
    use VerifyErrorCode::{PermittedViolation, UnsupportedConstraintType};
    match (name, base) {
        (Name::Other { utf8, .. }, Name::Email(base)) if effective == 1 => match utf8 {
            Some(value) => email_eai(value, base),
            None => Err(VerifyErrorCode::UnsupportedNameSyntax),
        },
        (Name::Dir(name), Name::Dir(base)) => {
            if base.len() <= name.len() && name[..base.len()] == base[..] {
                Ok(())
            } else {
                Err(PermittedViolation)
            }
        }
        (Name::Dns(name), Name::Dns(base)) => dns(name, base),
        (Name::Email(name), Name::Email(base)) => email(name, base),
        (Name::Uri(name), Name::Uri(base)) => uri(name, base),
        (Name::Ip(name), Name::Ip(base)) => ip(name, base),
        _ => Err(UnsupportedConstraintType),
    }
}

fn eq_ignore_case(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// `nc_dns`.
fn dns(name: &[u8], base: &[u8]) -> Result<(), VerifyErrorCode> {
    if base.is_empty() {
        return Ok(());
    }
    if name.len() < base.len() {
        return Err(VerifyErrorCode::PermittedViolation);
    }
    let tail = &name[name.len() - base.len()..];
    if name.len() > base.len() && base[0] != b'.' && name[name.len() - base.len() - 1] != b'.' {
        return Err(VerifyErrorCode::PermittedViolation);
    }
    if eq_ignore_case(tail, base) { Ok(()) } else { Err(VerifyErrorCode::PermittedViolation) }
}

/// `nc_email`.
fn email(name: &[u8], base: &[u8]) -> Result<(), VerifyErrorCode> {
    use VerifyErrorCode::{PermittedViolation, UnsupportedNameSyntax};
    let Some(name_at) = name.iter().rposition(|&b| b == b'@') else {
        return Err(UnsupportedNameSyntax);
    };
    let base_at = base.iter().rposition(|&b| b == b'@');
    if base_at.is_none() && base.first() == Some(&b'.') {
        if name.len() > base.len() && eq_ignore_case(&name[name.len() - base.len()..], base) {
            return Ok(());
        }
        return Err(PermittedViolation);
    }
    let mut base_host = base;
    if let Some(base_at) = base_at {
        if base_at != 0 {
            if base_at != name_at {
                return Err(PermittedViolation);
            }
            if base[..base_at].contains(&0) || name[..name_at].contains(&0) {
                return Err(UnsupportedNameSyntax);
            }
            if base[..base_at] != name[..name_at] {
                return Err(PermittedViolation);
            }
        }
        base_host = &base[base_at + 1..];
    }
    let name_host = &name[name_at + 1..];
    if eq_ignore_case(name_host, base_host) { Ok(()) } else { Err(PermittedViolation) }
}

/// `nc_email_eai` (3.0) for ASCII constraints: the host part compared as in `nc_email`, except
/// for a leading-dot base (see below; OpenSSL 3.0.22's `v3_ncons.c`).
fn email_eai(name: &[u8], base: &[u8]) -> Result<(), VerifyErrorCode> {
    use VerifyErrorCode::{PermittedViolation, UnsupportedNameSyntax};
    if base.contains(&0) {
        return Err(UnsupportedNameSyntax);
    }
    let Some(name_at) = name.iter().rposition(|&b| b == b'@') else {
        return Err(UnsupportedNameSyntax);
    };
    if base.first() == Some(&b'.') {
        // 3.0 writes a '.' and then the converted base, which keeps its own leading '.': the
        // tail compared is "..host", so no ordinary mailbox meets a leading-dot constraint.
        let dotted = [b".", base].concat();
        if name.len() > dotted.len() && eq_ignore_case(&name[name.len() - dotted.len()..], &dotted) {
            return Ok(());
        }
        return Err(PermittedViolation);
    }
    if eq_ignore_case(&name[name_at + 1..], base) { Ok(()) } else { Err(PermittedViolation) }
}

/// `nc_uri`.
fn uri(name: &[u8], base: &[u8]) -> Result<(), VerifyErrorCode> {
    use VerifyErrorCode::{PermittedViolation, UnsupportedNameSyntax};
    let Some(colon) = name.iter().position(|&b| b == b':') else {
        return Err(UnsupportedNameSyntax);
    };
    if name.len() - colon < 3 || name[colon + 1] != b'/' || name[colon + 2] != b'/' {
        return Err(UnsupportedNameSyntax);
    }
    let host_start = colon + 3;
    let rest = &name[host_start..];
    let host_len =
        rest.iter().position(|&b| b == b':').or_else(|| rest.iter().position(|&b| b == b'/')).unwrap_or(rest.len());
    if host_len == 0 {
        return Err(UnsupportedNameSyntax);
    }
    let host = &rest[..host_len];
    if base.first() == Some(&b'.') {
        if host.len() > base.len() && eq_ignore_case(&host[host.len() - base.len()..], base) {
            return Ok(());
        }
        return Err(PermittedViolation);
    }
    if eq_ignore_case(host, base) { Ok(()) } else { Err(PermittedViolation) }
}

/// `nc_ip`.
fn ip(name: &[u8], base: &[u8]) -> Result<(), VerifyErrorCode> {
    use VerifyErrorCode::{PermittedViolation, UnsupportedNameSyntax};
    if !(name.len() == 4 || name.len() == 16) || !(base.len() == 8 || base.len() == 32) {
        return Err(UnsupportedNameSyntax);
    }
    if name.len() * 2 != base.len() {
        return Err(PermittedViolation);
    }
    let (address, mask) = base.split_at(name.len());
    if name.iter().zip(address).zip(mask).all(|((n, a), m)| n & m == a & m) { Ok(()) } else { Err(PermittedViolation) }
}

/// `cn2dnsid`'s test: letters, digits and `_`, with `-` and `.` inside, at least one `.` that
/// has neither `.` nor `-` beside it.
fn looks_like_dns_name(cn: &[u8]) -> bool {
    let mut is_dns = false;
    for (i, &c) in cn.iter().enumerate() {
        if c.is_ascii_alphanumeric() || c == b'_' {
            continue;
        }
        if i > 0 && i + 1 < cn.len() {
            if c == b'-' {
                continue;
            }
            if c == b'.' && cn[i + 1] != b'.' && cn[i - 1] != b'-' && cn[i + 1] != b'-' {
                is_dns = true;
                continue;
            }
        }
        return false;
    }
    is_dns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_subtrees_match_as_openssl_does() {
        assert!(dns(b"cucm.corp.example", b".corp.example").is_ok());
        assert!(dns(b"cucm.corp.example", b"corp.example").is_ok());
        assert!(dns(b"corp.example", b"corp.example").is_ok());
        assert!(dns(b"corp.example", b".corp.example").is_err());
        assert!(dns(b"xcorp.example", b"corp.example").is_err());
        assert!(dns(b"CUCM.Corp.Example", b"corp.example").is_ok());
        assert!(dns(b"anything", b"").is_ok());
    }

    #[test]
    fn common_names_that_look_like_host_names() {
        assert!(looks_like_dns_name(b"cucm.corp.example"));
        assert!(looks_like_dns_name(b"10.0.0.5"));
        assert!(!looks_like_dns_name(b"cucm"));
        assert!(!looks_like_dns_name(b"cucm..example"));
        assert!(!looks_like_dns_name(b"-a.example"));
        assert!(!looks_like_dns_name(b"Cisco Unified CM"));
    }

    /// `nc_email` (crypto/x509/v3_ncons.c, the same in 1.1.1w and 3.0).
    #[test]
    fn email_subtrees_match_as_openssl_does() {
        use VerifyErrorCode::{PermittedViolation, UnsupportedNameSyntax};
        // A whole mailbox: the local part case-sensitively, the host not.
        assert_eq!(email(b"user@host.example", b"user@host.example"), Ok(()));
        assert_eq!(email(b"user@HOST.example", b"user@host.example"), Ok(()));
        assert_eq!(email(b"User@host.example", b"user@host.example"), Err(PermittedViolation));
        assert_eq!(email(b"other@host.example", b"user@host.example"), Err(PermittedViolation));
        assert_eq!(email(b"us@host.example", b"user@host.example"), Err(PermittedViolation));
        // `@host` and `host`: any mailbox at exactly that host.
        assert_eq!(email(b"x@host.example", b"@host.example"), Ok(()));
        assert_eq!(email(b"x@host.example", b"host.example"), Ok(()));
        assert_eq!(email(b"x@sub.host.example", b"host.example"), Err(PermittedViolation));
        // `.host`: any host under it, not the host itself.
        assert_eq!(email(b"x@sub.host.example", b".host.example"), Ok(()));
        assert_eq!(email(b"x@host.example", b".host.example"), Err(PermittedViolation));
        assert_eq!(email(b"no-at-sign", b"host.example"), Err(UnsupportedNameSyntax));
    }

    /// `nc_uri` (v3_ncons.c): the host between `scheme://` and a port or a path.
    #[test]
    fn uri_subtrees_match_the_host_as_openssl_does() {
        use VerifyErrorCode::{PermittedViolation, UnsupportedNameSyntax};
        assert_eq!(uri(b"https://host.example", b"host.example"), Ok(()));
        assert_eq!(uri(b"https://host.example/path", b"host.example"), Ok(()));
        assert_eq!(uri(b"https://host.example:8443/path", b"HOST.example"), Ok(()));
        assert_eq!(uri(b"https://other.example/", b"host.example"), Err(PermittedViolation));
        assert_eq!(uri(b"https://sub.host.example/x", b".host.example"), Ok(()));
        assert_eq!(uri(b"https://host.example/x", b".host.example"), Err(PermittedViolation));
        assert_eq!(uri(b"https://xhost.example", b".host.example"), Err(PermittedViolation));
        // Not `scheme://host`.
        assert_eq!(uri(b"no-colon", b"host.example"), Err(UnsupportedNameSyntax));
        assert_eq!(uri(b"https:/x.example", b"x.example"), Err(UnsupportedNameSyntax));
        assert_eq!(uri(b"https:x/example", b"x.example"), Err(UnsupportedNameSyntax));
        assert_eq!(uri(b"https:/", b"x.example"), Err(UnsupportedNameSyntax));
        assert_eq!(uri(b"https:///path", b"x.example"), Err(UnsupportedNameSyntax));
    }

    #[test]
    fn ip_subtrees_need_the_same_family() {
        assert!(ip(&[10, 0, 0, 5], &[10, 0, 0, 0, 255, 0, 0, 0]).is_ok());
        assert_eq!(ip(&[10, 0, 0, 5], &[0; 32]), Err(VerifyErrorCode::PermittedViolation));
        assert_eq!(ip(&[10, 0, 0], &[0; 8]), Err(VerifyErrorCode::UnsupportedNameSyntax));
    }
}
