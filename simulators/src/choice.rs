//! Which certificate a service presents, decided from the ClientHello before the handshake goes
//! on: the heart of the seed's problem. CUCM follows the client's cipher order (ECDHE-ECDSA
//! first → the ECDSA certificate), a service may instead follow its own order, and under TLS 1.3
//! the client's signature-scheme order decides. The decision carries a human "why" that the
//! event log records once the handshake completes.

use rustls::{CipherSuite, SignatureScheme};

use crate::config::{CertChoice, KeyAlg};

/// One identity as the chooser sees it: its name, algorithm and whether its key can sign with
/// a given TLS 1.3 signature scheme.
pub(crate) struct Candidate<'a> {
    pub(crate) name: &'a str,
    pub(crate) alg: KeyAlg,
    pub(crate) key: &'a dyn rustls::sign::SigningKey,
}

/// The outcome of a choice: which identity, and the sentence explaining it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decision {
    pub(crate) alg: KeyAlg,
    pub(crate) why: String,
}

/// The suites rustls (aws-lc-rs provider) can negotiate, with their OpenSSL names and the key
/// they need (`None` for TLS 1.3 suites, which say nothing about the key).
const SUITES: &[(CipherSuite, &str, Option<KeyAlg>)] = &[
    (CipherSuite::TLS13_AES_256_GCM_SHA384, "TLS_AES_256_GCM_SHA384", None),
    (CipherSuite::TLS13_AES_128_GCM_SHA256, "TLS_AES_128_GCM_SHA256", None),
    (CipherSuite::TLS13_CHACHA20_POLY1305_SHA256, "TLS_CHACHA20_POLY1305_SHA256", None),
    (CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, "ECDHE-ECDSA-AES256-GCM-SHA384", Some(KeyAlg::Ecdsa)),
    (CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "ECDHE-ECDSA-AES128-GCM-SHA256", Some(KeyAlg::Ecdsa)),
    (CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, "ECDHE-ECDSA-CHACHA20-POLY1305", Some(KeyAlg::Ecdsa)),
    (CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, "ECDHE-RSA-AES256-GCM-SHA384", Some(KeyAlg::Rsa)),
    (CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, "ECDHE-RSA-AES128-GCM-SHA256", Some(KeyAlg::Rsa)),
    (CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, "ECDHE-RSA-CHACHA20-POLY1305", Some(KeyAlg::Rsa)),
];

fn suite_entry(suite: CipherSuite) -> Option<&'static (CipherSuite, &'static str, Option<KeyAlg>)> {
    SUITES.iter().find(|(s, _, _)| *s == suite)
}

/// The OpenSSL name of a suite rustls can negotiate, or rustls' own name for any other.
pub(crate) fn openssl_suite_name(suite: CipherSuite) -> String {
    match suite_entry(suite) {
        Some((_, name, _)) => (*name).to_owned(),
        None => format!("{suite:?}"),
    }
}

/// The IANA (and OpenSSL `-sigalgs`) name of a signature scheme.
pub(crate) fn scheme_name(scheme: SignatureScheme) -> String {
    let name = match scheme {
        SignatureScheme::ECDSA_NISTP256_SHA256 => "ecdsa_secp256r1_sha256",
        SignatureScheme::ECDSA_NISTP384_SHA384 => "ecdsa_secp384r1_sha384",
        SignatureScheme::ECDSA_NISTP521_SHA512 => "ecdsa_secp521r1_sha512",
        SignatureScheme::RSA_PSS_SHA256 => "rsa_pss_rsae_sha256",
        SignatureScheme::RSA_PSS_SHA384 => "rsa_pss_rsae_sha384",
        SignatureScheme::RSA_PSS_SHA512 => "rsa_pss_rsae_sha512",
        SignatureScheme::RSA_PKCS1_SHA256 => "rsa_pkcs1_sha256",
        SignatureScheme::RSA_PKCS1_SHA384 => "rsa_pkcs1_sha384",
        SignatureScheme::RSA_PKCS1_SHA512 => "rsa_pkcs1_sha512",
        SignatureScheme::RSA_PKCS1_SHA1 => "rsa_pkcs1_sha1",
        SignatureScheme::ECDSA_SHA1_Legacy => "ecdsa_sha1",
        SignatureScheme::ED25519 => "ed25519",
        SignatureScheme::ED448 => "ed448",
        other => return format!("{other:?}"),
    };
    name.to_owned()
}

/// Whether a signature scheme may sign a TLS 1.3 CertificateVerify (RFC 8446 4.2.3: no PKCS#1
/// v1.5, no SHA-1).
fn usable_in_tls13(scheme: SignatureScheme) -> bool {
    !matches!(
        scheme,
        SignatureScheme::RSA_PKCS1_SHA1
            | SignatureScheme::RSA_PKCS1_SHA256
            | SignatureScheme::RSA_PKCS1_SHA384
            | SignatureScheme::RSA_PKCS1_SHA512
            | SignatureScheme::ECDSA_SHA1_Legacy
    )
}

/// Whether TLS 1.3 will be negotiated: the node enables it and the client offers a TLS 1.3
/// suite (OpenSSL leaves them out of a ClientHello capped at TLS 1.2).
pub(crate) fn will_use_tls13(client_suites: &[CipherSuite], tls13_enabled: bool) -> bool {
    tls13_enabled && client_suites.iter().any(|s| matches!(suite_entry(*s), Some((_, _, None))))
}

/// Decides which identity to present. `candidates` holds the identities the service has (one
/// or two); it must not be empty.
pub(crate) fn decide(
    client_suites: &[CipherSuite],
    client_schemes: &[SignatureScheme],
    tls13_enabled: bool,
    choice: &CertChoice,
    candidates: &[Candidate<'_>],
) -> Decision {
    let Some(first) = candidates.first() else {
        // Invariant upheld by the caller (a service always has an identity); stay total anyway.
        return Decision { alg: KeyAlg::Rsa, why: "no identity".to_owned() };
    };
    if candidates.len() == 1 {
        return Decision { alg: first.alg, why: format!("only {} identity → {}", first.alg, first.name) };
    }
    let tls13 = will_use_tls13(client_suites, tls13_enabled);

    // What the client offers that each candidate can serve, in client order.
    let client_picks: Vec<(&Candidate<'_>, String)> = if tls13 {
        client_schemes
            .iter()
            .filter(|s| usable_in_tls13(**s))
            .filter_map(|s| {
                candidates.iter().find(|c| c.key.choose_scheme(&[*s]).is_some()).map(|c| (c, scheme_name(*s)))
            })
            .collect()
    } else {
        client_suites
            .iter()
            .filter_map(|s| match suite_entry(*s) {
                Some((_, name, Some(alg))) => {
                    candidates.iter().find(|c| c.alg == *alg).map(|c| (c, (*name).to_owned()))
                }
                _ => None,
            })
            .collect()
    };

    match choice {
        CertChoice::ClientOrder => match client_picks.first() {
            Some((c, offered)) => {
                Decision { alg: c.alg, why: format!("client offered {offered} first → {}", c.name) }
            }
            None => Decision {
                alg: first.alg,
                why: format!("client offered nothing the node can serve → {}", first.name),
            },
        },
        CertChoice::ServerOrder(order) => {
            let preferred = order.iter().find(|alg| candidates.iter().any(|c| c.alg == **alg));
            for alg in order {
                if let Some((c, _)) = client_picks.iter().find(|(c, _)| c.alg == *alg) {
                    let why = match preferred {
                        Some(p) if p != alg => format!("server order prefers {p}, client cannot take it → {}", c.name),
                        _ => format!("server order prefers {alg} → {}", c.name),
                    };
                    return Decision { alg: c.alg, why };
                }
            }
            let fallback = order.iter().find_map(|alg| candidates.iter().find(|c| c.alg == *alg)).unwrap_or(first);
            Decision {
                alg: fallback.alg,
                why: format!("server order: client accepts none of its algorithms → {}", fallback.name),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use rustls::sign::SigningKey;
    use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    use super::*;

    fn key(alg: &'static rcgen::SignatureAlgorithm) -> Arc<dyn SigningKey> {
        let pair = rcgen::KeyPair::generate_for(alg).unwrap();
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pair.serialize_der()));
        rustls::crypto::aws_lc_rs::default_provider().key_provider.load_private_key(der).unwrap()
    }

    fn keys() -> (Arc<dyn SigningKey>, Arc<dyn SigningKey>) {
        use std::sync::OnceLock;
        static RSA: OnceLock<Arc<dyn SigningKey>> = OnceLock::new();
        let rsa = RSA.get_or_init(|| key(&rcgen::PKCS_RSA_SHA256)).clone();
        (rsa, key(&rcgen::PKCS_ECDSA_P256_SHA256))
    }

    #[track_caller]
    fn check(
        suites: &[CipherSuite],
        schemes: &[SignatureScheme],
        tls13: bool,
        choice: &CertChoice,
        expected: (KeyAlg, &str),
    ) {
        let (rsa, ecdsa) = keys();
        let candidates = [
            Candidate { name: "tomcat", alg: KeyAlg::Rsa, key: rsa.as_ref() },
            Candidate { name: "tomcat-ECDSA", alg: KeyAlg::Ecdsa, key: ecdsa.as_ref() },
        ];
        let d = decide(suites, schemes, tls13, choice, &candidates);
        assert_eq!((d.alg, d.why.as_str()), expected);
    }

    use CipherSuite as C;
    use SignatureScheme as S;

    #[test]
    fn tls12_first_servable_suite_decides_skipping_suites_rustls_lacks() {
        check(
            &[
                C::TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
                C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
                C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            ],
            &[S::ECDSA_NISTP256_SHA256],
            false,
            &CertChoice::ClientOrder,
            (KeyAlg::Rsa, "client offered ECDHE-RSA-AES128-GCM-SHA256 first → tomcat"),
        );
    }

    #[test]
    fn tls13_suites_are_ignored_when_the_node_has_tls13_off() {
        check(
            &[C::TLS13_AES_256_GCM_SHA384, C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256],
            &[S::RSA_PSS_SHA256, S::ECDSA_NISTP256_SHA256],
            false,
            &CertChoice::ClientOrder,
            (KeyAlg::Ecdsa, "client offered ECDHE-ECDSA-CHACHA20-POLY1305 first → tomcat-ECDSA"),
        );
    }

    #[test]
    fn tls13_skips_pkcs1_and_schemes_no_key_can_sign() {
        check(
            &[C::TLS13_AES_256_GCM_SHA384, C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384],
            &[S::RSA_PKCS1_SHA256, S::ECDSA_NISTP384_SHA384, S::RSA_PSS_SHA384, S::ECDSA_NISTP256_SHA256],
            true,
            &CertChoice::ClientOrder,
            (KeyAlg::Rsa, "client offered rsa_pss_rsae_sha384 first → tomcat"),
        );
    }

    #[test]
    fn server_order_falls_back_when_the_client_cannot_take_its_preference() {
        let order = CertChoice::ServerOrder(vec![KeyAlg::Ecdsa, KeyAlg::Rsa]);
        check(
            &[C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384],
            &[],
            false,
            &order,
            (KeyAlg::Ecdsa, "server order prefers ECDSA → tomcat-ECDSA"),
        );
        check(
            &[C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384],
            &[],
            false,
            &order,
            (KeyAlg::Rsa, "server order prefers ECDSA, client cannot take it → tomcat"),
        );
    }

    #[test]
    fn a_client_offering_nothing_servable_gets_the_first_identity_and_a_reason() {
        check(
            &[C::TLS_RSA_WITH_AES_128_GCM_SHA256],
            &[],
            false,
            &CertChoice::ClientOrder,
            (KeyAlg::Rsa, "client offered nothing the node can serve → tomcat"),
        );
    }
}
