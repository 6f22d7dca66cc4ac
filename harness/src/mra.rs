//! MRA request paths, as Expressway-C's traffic server sees them.
//!
//! An MRA client asks Expressway-E for `/<token>/<path>`, where the token is the unpadded
//! base64 of `domain/scheme/host/port` (`c3RldmVuLmxhYi9odHRwcy8xMC40OC4zNi4yMTUvODQ0Mw` is
//! `steven.lab/https/10.48.36.215/8443`). Expressway-C decodes it to find the origin.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

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

/// Why an MRA path could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MraPathError {
    /// No token segment.
    #[error("MRA path '{0}' has no target segment (expected /<base64 of domain/https/host/port>/...)")]
    NoToken(String),
    /// Not base64, or not text.
    #[error("MRA path segment '{0}' is not base64 of domain/https/host/port")]
    NotBase64(String),
    /// Decoded, but not `domain/scheme/host/port`.
    #[error("MRA path segment '{token}' decodes to '{decoded}', not domain/https/host/port")]
    Shape {
        /// The segment.
        token: String,
        /// What it decoded to.
        decoded: String,
    },
}

/// The token for a target: unpadded base64 of `domain/https/host/port`.
pub fn token(domain: &str, host: &str, port: u16) -> String {
    STANDARD_NO_PAD.encode(format!("{domain}/https/{host}/{port}"))
}

/// `/<token><path>`: the path an MRA client sends for `path` on `host:port`.
pub fn encode(domain: &str, host: &str, port: u16, path: &str) -> String {
    format!("/{}{}", token(domain, host, port), path)
}

/// Decodes `/<token>/<path>` (standard or URL-safe alphabet, padded or not).
pub fn decode(full_path: &str) -> Result<MraTarget, MraPathError> {
    let trimmed = full_path.trim_start_matches('/');
    let (token, rest) = match trimmed.find(['/', '?']) {
        Some(i) => (&trimmed[..i], &trimmed[i..]),
        None => (trimmed, ""),
    };
    if token.is_empty() {
        return Err(MraPathError::NoToken(full_path.to_string()));
    }
    let unpadded = token.trim_end_matches('=');
    let bytes = STANDARD_NO_PAD
        .decode(unpadded)
        .or_else(|_| URL_SAFE_NO_PAD.decode(unpadded))
        .map_err(|_| MraPathError::NotBase64(token.to_string()))?;
    let decoded = String::from_utf8(bytes).map_err(|_| MraPathError::NotBase64(token.to_string()))?;
    let shape = || MraPathError::Shape { token: token.to_string(), decoded: decoded.clone() };
    let parts: Vec<&str> = decoded.split('/').collect();
    let [domain, scheme, host, port] = parts.as_slice() else { return Err(shape()) };
    let port = port.parse().map_err(|_| shape())?;
    if domain.is_empty() || host.is_empty() {
        return Err(shape());
    }
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
}
