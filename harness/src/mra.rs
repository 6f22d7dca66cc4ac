//! MRA request paths, as Expressway-C's traffic server sees them.
//!
//! An MRA client asks Expressway-E for `/<token>/<path>`, where the token is the unpadded
//! base64 of `domain/scheme/host/port` (`c3RldmVuLmxhYi9odHRwcy8xMC40OC4zNi4yMTUvODQ0Mw` is
//! `steven.lab/https/10.48.36.215/8443`). Expressway-C decodes it to find the origin.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

use crate::source::printable;

/// The decoded target of an MRA path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MraTarget {
    /// The MRA domain (`steven.lab`).
    pub domain: String,
    /// `https` for the origins that matter here.
    pub scheme: String,
    /// The host as the request names it: FQDN or IP.
    pub host: String,
    /// The origin port (8443, 6972).
    pub port: u16,
    /// The rest of the path, with its leading `/` and query.
    pub path: String,
}

/// Why an MRA path could not be decoded. The messages go to logs and consoles: they show the
/// token (base64, or escaped) and what is wrong with which field, never a decoded field that
/// failed its check, so that nothing a client encodes can pass for a log line of its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MraPathError {
    /// No token segment.
    #[error("MRA path '{}' has no target segment (expected /<base64 of domain/https/host/port>/...)", printable(.0))]
    NoToken(String),
    /// Not base64, or not text.
    #[error("MRA path segment '{}' is not base64 of domain/https/host/port", printable(.0))]
    NotBase64(String),
    /// Decoded, but not four `/`-separated fields.
    #[error("MRA path segment '{token}' decodes to {fields} '/'-separated field(s), not domain/https/host/port")]
    Shape {
        /// The segment.
        token: String,
        /// How many fields it held.
        fields: usize,
    },
    /// A scheme other than `https`: the traffic server reaches origins over TLS only.
    #[error("MRA path segment '{token}' names the scheme {}, not https (MRA origins are reached over https only)", shown(.scheme))]
    Scheme {
        /// The segment.
        token: String,
        /// The scheme it named.
        scheme: String,
    },
    /// A port that is not a canonical decimal number from 1 to 65535.
    #[error(
        "MRA path segment '{token}' names the port {}: a port is a decimal number from 1 to 65535, \
         without sign or leading zero",
        shown(.port)
    )]
    Port {
        /// The segment.
        token: String,
        /// The port field as written.
        port: String,
    },
    /// A domain or host that is no host name or IP address.
    #[error("MRA path segment '{token}': the {field} {}", name_problem(.value))]
    Name {
        /// The segment.
        token: String,
        /// `domain` or `host`.
        field: &'static str,
        /// The field as decoded.
        value: String,
    },
    /// The path after the token holds a byte that is not printable ASCII.
    #[error("MRA path '{}' holds characters other than printable ASCII after its token", printable(.0))]
    Path(String),
}

/// A field shown in a message: quoted when it is short and plain (graphic ASCII), described
/// otherwise.
fn shown(field: &str) -> String {
    if !field.is_empty() && field.len() <= 32 && field.bytes().all(|b| b.is_ascii_graphic()) {
        format!("'{field}'")
    } else {
        format!("field of {} byte(s) that is not a plain word", field.len())
    }
}

/// Whether `name` is a host name or an IP address as an MRA token writes it: 1 to 253 bytes of
/// letters, digits, `.`, `-`, `_`, and `:` `[` `]` for IPv6.
fn name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']'))
}

/// What is wrong with a name that is not [`name_ok`]: its length, or its first odd character.
fn name_problem(name: &str) -> String {
    if name.is_empty() {
        return "is empty".into();
    }
    if name.len() > 253 {
        return format!("is {} bytes long; a host name is at most 253", name.len());
    }
    match name.char_indices().find(|(_, c)| !(c.is_ascii_alphanumeric() || ".-_:[]".contains(*c))) {
        Some((at, c)) => format!(
            "holds '{}' at byte {at}, which is not allowed in a host name or an IP address",
            printable(&c.to_string())
        ),
        None => "is no host name".into(),
    }
}

/// `port` if it is written as a canonical decimal number from 1 to 65535: digits only, no sign,
/// no leading zero.
fn canonical_port(port: &str) -> Option<u16> {
    let digits = !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
    if !digits || port.starts_with('0') {
        return None;
    }
    port.parse().ok()
}

/// The token for a target: unpadded base64 of `domain/https/host/port`.
pub fn token(domain: &str, host: &str, port: u16) -> String {
    STANDARD_NO_PAD.encode(format!("{domain}/https/{host}/{port}"))
}

/// `/<token><path>`: the path an MRA client sends for `path` on `host:port`.
pub fn encode(domain: &str, host: &str, port: u16, path: &str) -> String {
    format!("/{}{}", token(domain, host, port), path)
}

/// Decodes `/<token>/<path>` (standard or URL-safe alphabet, padded or not), strictly: four
/// fields, the scheme `https`, a domain and a host made of host-name characters, a canonical
/// decimal port from 1 to 65535, and a path of printable ASCII.
pub fn decode(full_path: &str) -> Result<MraTarget, MraPathError> {
    let trimmed = full_path.trim_start_matches('/');
    let (token, rest) = match trimmed.find(['/', '?']) {
        Some(i) => (&trimmed[..i], &trimmed[i..]),
        None => (trimmed, ""),
    };
    if token.is_empty() {
        return Err(MraPathError::NoToken(full_path.to_string()));
    }
    if !rest.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(MraPathError::Path(full_path.to_string()));
    }
    let unpadded = token.trim_end_matches('=');
    let bytes = STANDARD_NO_PAD
        .decode(unpadded)
        .or_else(|_| URL_SAFE_NO_PAD.decode(unpadded))
        .map_err(|_| MraPathError::NotBase64(token.to_string()))?;
    let decoded = String::from_utf8(bytes).map_err(|_| MraPathError::NotBase64(token.to_string()))?;
    let token = token.to_string();
    let parts: Vec<&str> = decoded.split('/').collect();
    let [domain, scheme, host, port] = parts.as_slice() else {
        return Err(MraPathError::Shape { token, fields: parts.len() });
    };
    for (field, value) in [("domain", domain), ("host", host)] {
        if !name_ok(value) {
            return Err(MraPathError::Name { token, field, value: value.to_string() });
        }
    }
    if *scheme != "https" {
        return Err(MraPathError::Scheme { token, scheme: scheme.to_string() });
    }
    let port =
        canonical_port(port).ok_or_else(|| MraPathError::Port { token: token.clone(), port: port.to_string() })?;
    let path = if rest.is_empty() { "/".to_string() } else { rest.to_string() };
    Ok(MraTarget { domain: domain.to_string(), scheme: scheme.to_string(), host: host.to_string(), port, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_token_decodes_to_the_advertised_ip() {
        let target = decode("/c3RldmVuLmxhYi9odHRwcy8xMC40OC4zNi4yMTUvODQ0Mw/cucm-uds/user/emusk/devices?max=100")
            .expect("decodes");
        assert_eq!(target.domain, "steven.lab");
        assert_eq!(target.host, "10.48.36.215");
        assert_eq!(target.port, 8443);
        assert_eq!(target.path, "/cucm-uds/user/emusk/devices?max=100");
        assert_eq!(token("steven.lab", "10.48.36.215", 8443), "c3RldmVuLmxhYi9odHRwcy8xMC40OC4zNi4yMTUvODQ0Mw");
    }

    #[test]
    fn undecodable_paths_say_why() {
        assert!(matches!(decode("/"), Err(MraPathError::NoToken(_))));
        assert!(matches!(decode("/!!!/x"), Err(MraPathError::NotBase64(_))));
        assert!(matches!(decode(&format!("/{}/x", STANDARD_NO_PAD.encode("a/b"))), Err(MraPathError::Shape { .. })));
    }

    #[track_caller]
    fn refused(decoded: &str) -> MraPathError {
        decode(&format!("/{}/cucm-uds/version", STANDARD_NO_PAD.encode(decoded))).expect_err(decoded)
    }

    #[test]
    fn schemes_other_than_https_are_refused() {
        for scheme in ["http", "HTTPS", "ftp", "", "https "] {
            let error = refused(&format!("steven.lab/{scheme}/cucm.steven.lab/8443"));
            assert!(matches!(&error, MraPathError::Scheme { scheme: s, .. } if s == scheme), "{error:?}");
        }
        assert!(refused("steven.lab/http/cucm.steven.lab/8443").to_string().contains("scheme 'http', not https"));
    }

    #[test]
    fn ports_must_be_canonical_decimal_from_1_to_65535() {
        for port in ["+8443", "08443", "0", "00", "65536", "99999", "-1", " 8443", "8443 ", "0x20FB", "", "8443\n"] {
            assert!(matches!(refused(&format!("steven.lab/https/cucm/{port}")), MraPathError::Port { .. }), "{port:?}");
        }
        for (port, value) in [("1", 1), ("6972", 6972), ("8443", 8443), ("65535", 65535)] {
            let target = decode(&encode("steven.lab", "cucm", value, "/")).expect(port);
            assert_eq!(target.port, value);
        }
    }

    #[test]
    fn hosts_and_domains_are_host_names_or_addresses() {
        for host in ["evil\nWARNING: forged", "a b", "a\u{1b}[2J", "caf\u{e9}", "(x)", ""] {
            let error = refused(&format!("steven.lab/https/{host}/8443"));
            assert!(matches!(&error, MraPathError::Name { field: "host", .. }), "{host:?}: {error:?}");
        }
        assert!(matches!(refused("steven lab/https/cucm/8443"), MraPathError::Name { field: "domain", .. }));
        for host in ["cucm.steven.lab", "10.48.36.215", "[2001:db8::1]", "cucm_1-a"] {
            assert_eq!(decode(&encode("steven.lab", host, 8443, "/")).expect(host).host, host);
        }
    }

    #[test]
    fn messages_never_carry_a_refused_field_as_decoded() {
        let forged = "x\n2026-11-28T11:59:51.915+02:00 vcsc traffic_server[1]: [ET_NET 0] WARNING: Core server \
                      certificate verification failed for (forged.steven.lab)";
        for decoded in [
            format!("steven.lab/https/{forged}/8443"),
            format!("steven.lab/{forged}/cucm/8443"),
            format!("steven.lab/https/cucm/{forged}"),
            format!("{forged}/https/cucm/8443"),
        ] {
            let message = refused(&decoded).to_string();
            assert!(!message.contains("verification failed") && !message.contains('\n'), "{message}");
        }
        let message = refused("steven.lab/https/evil\nWARNING/8443").to_string();
        assert!(message.contains("the host holds '\\x0a' at byte 4"), "{message}");
    }

    #[test]
    fn a_path_of_other_than_printable_ascii_is_refused() {
        let token = token("steven.lab", "cucm", 8443);
        assert!(matches!(decode(&format!("/{token}/caf\u{e9}")), Err(MraPathError::Path(_))));
        assert!(matches!(decode(&format!("/{token}/a\u{7f}")), Err(MraPathError::Path(_))));
        assert!(decode(&format!("/{token}/cucm-uds/user/emusk/devices?max=100")).is_ok());
    }
}
