//! Reading one name of a cipher string: OpenSSL's cipher names and aliases (`lookup`), and, for
//! a name OpenSSL does not know, why (names OpenSSL 1.1.0 removed: static DH and ECDH, export,
//! Kerberos, SSLv2; TLS 1.3 suite names) or the known name it is probably a typo of.
//!
//! The names themselves are OpenSSL's tables in `table.rs`; `rules.rs` combines what they select.

use super::table::{ALIASES, CIPHERS};

/// A name found in `ca_list`: a cipher (with its id) or an alias.
#[derive(Debug)]
pub(super) struct Part {
    pub(super) cipher_id: Option<u16>,
    pub(super) mkey: u32,
    pub(super) auth: u32,
    pub(super) enc: u32,
    pub(super) mac: u32,
    pub(super) min_tls: u16,
    pub(super) algo_strength: u32,
}

pub(super) fn lookup(name: &str) -> Option<Part> {
    // OpenSSL 3.0 reads OpenSSL names only; IANA names (`TLS_ECDHE_...`) are unknown words.
    if let Some(c) = CIPHERS.iter().find(|c| c.name == name) {
        return Some(Part {
            cipher_id: Some(c.id),
            mkey: c.mkey,
            auth: c.auth,
            enc: c.enc,
            mac: c.mac,
            min_tls: c.min_tls,
            algo_strength: c.algo_strength,
        });
    }
    ALIASES.iter().find(|a| a.name == name).map(|a| Part {
        cipher_id: None,
        mkey: a.mkey,
        auth: a.auth,
        enc: a.enc,
        mac: a.mac,
        min_tls: a.min_tls,
        algo_strength: a.algo_strength,
    })
}

const STATIC_DH: &str = "removed in OpenSSL 1.1.0 with static-DH ciphers";
const STATIC_ECDH: &str = "removed in OpenSSL 1.1.0 with static-ECDH ciphers";
const EXPORT: &str = "removed in OpenSSL 1.1.0 with export ciphers";
const KERBEROS: &str = "removed in OpenSSL 1.1.0 with Kerberos ciphers";
const TLS13: &str = "a TLS 1.3 suite: OpenSSL sets those apart (-ciphersuites), not here";

/// Names OpenSSL 1.0.2 knew and 1.1.0 removed, and TLS 1.3 suites, with why they are unknown:
/// Expressway's own default still says `!aDH`. A look-alike suggestion (`ADH`, anonymous DH)
/// would mislead for these.
const UNKNOWN_FOR_A_REASON: &[(&str, &str)] = &[
    ("aDH", STATIC_DH),
    ("kDH", STATIC_DH),
    ("kDHr", STATIC_DH),
    ("kDHd", STATIC_DH),
    ("aECDH", STATIC_ECDH),
    ("kECDH", STATIC_ECDH),
    ("kECDHr", STATIC_ECDH),
    ("kECDHe", STATIC_ECDH),
    ("EXP", EXPORT),
    ("EXPORT", EXPORT),
    ("EXPORT40", EXPORT),
    ("EXPORT56", EXPORT),
    ("kKRB5", KERBEROS),
    ("aKRB5", KERBEROS),
    ("KRB5", KERBEROS),
    ("SSLv2", "removed in OpenSSL 1.1.0 with SSLv2"),
    ("TLS_AES_256_GCM_SHA384", TLS13),
    ("TLS_CHACHA20_POLY1305_SHA256", TLS13),
    ("TLS_AES_128_GCM_SHA256", TLS13),
    ("TLS_AES_128_CCM_SHA256", TLS13),
    ("TLS_AES_128_CCM_8_SHA256", TLS13),
];

/// Why an unknown word is unknown, when one of its parts is a name listed as such.
pub(super) fn unknown_reason(word: &str) -> Option<&'static str> {
    word.trim_start_matches(['!', '-', '+'])
        .split('+')
        .find_map(|part| UNKNOWN_FOR_A_REASON.iter().find(|(n, _)| *n == part).map(|(_, why)| *why))
}

/// The closest known name to an unknown one, if it is close enough to be a typo.
pub(super) fn suggest(unknown: &str) -> Option<&'static str> {
    if UNKNOWN_FOR_A_REASON.iter().any(|(n, _)| *n == unknown) {
        return None;
    }
    // An IANA name: OpenSSL knows the cipher under its own name.
    if let Some(c) = CIPHERS.iter().find(|c| c.stdname == unknown) {
        return Some(c.name);
    }
    let folded = unknown.to_ascii_lowercase();
    let limit = (unknown.len() / 4).max(2);
    // The distance is at least the difference in length (in characters; names are ASCII):
    // names that differ by more than the limit cannot be the answer, and skipping them spares
    // most of the distance computations.
    let chars = unknown.chars().count();
    let candidates = ALIASES
        .iter()
        .map(|a| a.name)
        .chain(CIPHERS.iter().map(|c| c.name))
        .filter(|name| name.len().abs_diff(chars) <= limit);
    // Closest first; among equals, the one closest in length (`SHAX` is `SHA`, not `SHA1`).
    let (distance, _, best) = candidates
        .map(|name| {
            let d = strsim::levenshtein(&folded, &name.to_ascii_lowercase());
            (d, name.len().abs_diff(unknown.len()), name)
        })
        .min_by_key(|(d, len, _)| (*d, *len))?;
    (distance <= limit).then_some(best)
}
