//! The name check, as Apache Traffic Server's `validate_hostname` does it (observed on stock
//! ATS 9.2, FIELD-NOTES): DNS SANs, `*.` wildcards in the leftmost label, then the subject CN,
//! even when SANs exist. Reached by IP, the IP string is checked the same way, against DNS
//! SANs and the CN; IP SANs count only when the profile says so.

use std::net::IpAddr;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::X509Certificate;

/// Whether `wanted` (an SNI name, or an IP string when there is no SNI) is in the certificate.
pub fn name_matches(cert: &X509Certificate<'_>, wanted: &str, ip_sans_count: bool) -> bool {
    let wanted_ip: Option<IpAddr> = wanted.parse().ok();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) if dns_matches(dns, wanted, wanted_ip.is_some()) => return true,
                GeneralName::IPAddress(bytes) if ip_sans_count => {
                    if let Some(ip) = wanted_ip
                        && ip_bytes_match(bytes, ip)
                    {
                        return true;
                    }
                }
                _ => {}
            }
        }
    }
    cert.subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok())
        .any(|cn| dns_matches(cn, wanted, wanted_ip.is_some()))
}

fn dns_matches(pattern: &str, wanted: &str, wanted_is_ip: bool) -> bool {
    if pattern.eq_ignore_ascii_case(wanted) {
        return true;
    }
    if wanted_is_ip {
        return false;
    }
    match pattern.strip_prefix("*.") {
        Some(suffix) => match wanted.split_once('.') {
            Some((label, rest)) => !label.is_empty() && rest.eq_ignore_ascii_case(suffix) && suffix.contains('.'),
            None => false,
        },
        None => false,
    }
}

fn ip_bytes_match(bytes: &[u8], ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => bytes == v4.octets(),
        IpAddr::V6(v6) => bytes == v6.octets(),
    }
}

#[cfg(test)]
mod tests {
    use super::{dns_matches, name_matches};

    /// A certificate with these SANs (`ip:` or DNS) and CN.
    fn cert_der(sans: &[&str], cn: &str) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        for san in sans {
            params.subject_alt_names.push(match san.strip_prefix("ip:") {
                Some(ip) => rcgen::SanType::IpAddress(ip.parse().expect("an address")),
                None => rcgen::SanType::DnsName((*san).try_into().expect("a DNS name")),
            });
        }
        let key = rcgen::KeyPair::generate().expect("a P-256 key");
        params.self_signed(&key).expect("self-signed").der().to_vec()
    }

    /// IP SANs count only where the profile says so, and then only the same address, v4 or v6.
    #[test]
    fn ip_sans_count_only_when_asked_and_only_for_the_same_address() {
        let der = cert_der(&["ip:10.48.36.215", "ip:2001:db8::1", "cucm.steven.lab"], "cucm-ms");
        let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("parses");
        assert!(!name_matches(&cert, "10.48.36.215", false), "ignored, as stock ATS 9.2 does");
        assert!(name_matches(&cert, "10.48.36.215", true));
        assert!(name_matches(&cert, "2001:db8::1", true));
        assert!(!name_matches(&cert, "10.48.36.216", true), "another address");
        assert!(!name_matches(&cert, "2001:db8::2", true), "another v6 address");
        assert!(!name_matches(&cert, "cucm.other.lab", true), "a name is no address");
        assert!(name_matches(&cert, "cucm.steven.lab", true));
    }

    #[test]
    fn wildcards_cover_one_leftmost_label() {
        assert!(dns_matches("*.steven.lab", "cucm.steven.lab", false));
        assert!(!dns_matches("*.steven.lab", "a.cucm.steven.lab", false));
        assert!(!dns_matches("*.steven.lab", "steven.lab", false));
        assert!(!dns_matches("*.lab", "steven.lab", false));
        assert!(dns_matches("CUCM.steven.lab", "cucm.steven.lab", false));
        assert!(dns_matches("10.48.36.215", "10.48.36.215", true));
    }
}
