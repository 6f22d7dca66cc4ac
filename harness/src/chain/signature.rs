//! `X509_verify(subject, issuer key)` for what aws-lc (behind x509-parser) does not check but
//! OpenSSL does: RSA PKCS #1 v1.5 with MD5, SHA-224 or keys under 2048 bits, RSA-PSS with SHA-1
//! or small keys, ECDSA with any hash on P-256, P-384 and P-521 (named or, for P-256, explicit
//! parameters), DSA, Ed25519, Ed448 — with RustCrypto's crates (`rsa`, `p256`, `p384`, `p521`,
//! `dsa`, `ed25519-dalek`, `ed448-goldilocks`, `md-5`, `sha1`, `sha2`). The signature is data
//! from the peer: nothing here panics on it.

use x509_parser::prelude::X509Certificate;
use x509_parser::public_key::PublicKey;
use x509_parser::signature_algorithm::SignatureAlgorithm;
use x509_parser::x509::SubjectPublicKeyInfo;

/// A signature's hash, as the model reads it from an algorithm identifier and as the chain
/// generator (`generate/`) signs with it: one list for both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hash {
    /// MD5.
    Md5,
    /// SHA-1.
    Sha1,
    /// SHA-224.
    Sha224,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl Hash {
    /// Every hash, weakest first.
    pub(crate) const ALL: [Hash; 6] = [Hash::Md5, Hash::Sha1, Hash::Sha224, Hash::Sha256, Hash::Sha384, Hash::Sha512];

    /// The hash of a digest algorithm OID.
    pub(crate) fn of_oid(oid: &str) -> Option<Hash> {
        Some(match oid {
            "1.2.840.113549.2.5" => Hash::Md5,
            "1.3.14.3.2.26" => Hash::Sha1,
            "2.16.840.1.101.3.4.2.4" => Hash::Sha224,
            "2.16.840.1.101.3.4.2.1" => Hash::Sha256,
            "2.16.840.1.101.3.4.2.2" => Hash::Sha384,
            "2.16.840.1.101.3.4.2.3" => Hash::Sha512,
            _ => return None,
        })
    }

    /// Lower-case name, for coverage lines.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Hash::Md5 => "md5",
            Hash::Sha1 => "sha1",
            Hash::Sha224 => "sha224",
            Hash::Sha256 => "sha256",
            Hash::Sha384 => "sha384",
            Hash::Sha512 => "sha512",
        }
    }

    /// The digest's length in bytes.
    pub(crate) fn output_len(self) -> usize {
        match self {
            Hash::Md5 => 16,
            Hash::Sha1 => 20,
            Hash::Sha224 => 28,
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }

    /// The digest of `data`.
    pub(crate) fn digest(self, data: &[u8]) -> Vec<u8> {
        use sha2::Digest as _;
        match self {
            Hash::Md5 => md5::Md5::digest(data).to_vec(),
            Hash::Sha1 => sha1::Sha1::digest(data).to_vec(),
            Hash::Sha224 => sha2::Sha224::digest(data).to_vec(),
            Hash::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Hash::Sha384 => sha2::Sha384::digest(data).to_vec(),
            Hash::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    /// RSASSA-PKCS1-v1_5 with this hash.
    pub(crate) fn pkcs1(self) -> rsa::Pkcs1v15Sign {
        match self {
            Hash::Md5 => rsa::Pkcs1v15Sign::new::<md5::Md5>(),
            Hash::Sha1 => rsa::Pkcs1v15Sign::new::<sha1::Sha1>(),
            Hash::Sha224 => rsa::Pkcs1v15Sign::new::<sha2::Sha224>(),
            Hash::Sha256 => rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
            Hash::Sha384 => rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
            Hash::Sha512 => rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
        }
    }

    /// RSASSA-PSS with this hash for the message and MGF1, and a salt of `salt` bytes.
    pub(crate) fn pss(self, salt: usize) -> rsa::Pss {
        match self {
            Hash::Md5 => rsa::Pss::new_with_salt::<md5::Md5>(salt),
            Hash::Sha1 => rsa::Pss::new_with_salt::<sha1::Sha1>(salt),
            Hash::Sha224 => rsa::Pss::new_with_salt::<sha2::Sha224>(salt),
            Hash::Sha256 => rsa::Pss::new_with_salt::<sha2::Sha256>(salt),
            Hash::Sha384 => rsa::Pss::new_with_salt::<sha2::Sha384>(salt),
            Hash::Sha512 => rsa::Pss::new_with_salt::<sha2::Sha512>(salt),
        }
    }
}

enum Scheme {
    Pkcs1(Hash),
    Pss { hash: Hash, salt: usize },
    Ecdsa(Hash),
    Dsa(Hash),
    Ed25519,
    Ed448,
}

fn scheme(subject: &X509Certificate<'_>) -> Option<Scheme> {
    let algorithm = &subject.signature_algorithm;
    Some(match algorithm.algorithm.to_id_string().as_str() {
        "1.2.840.113549.1.1.4" => Scheme::Pkcs1(Hash::Md5),
        "1.2.840.113549.1.1.5" => Scheme::Pkcs1(Hash::Sha1),
        "1.2.840.113549.1.1.14" => Scheme::Pkcs1(Hash::Sha224),
        "1.2.840.113549.1.1.11" => Scheme::Pkcs1(Hash::Sha256),
        "1.2.840.113549.1.1.12" => Scheme::Pkcs1(Hash::Sha384),
        "1.2.840.113549.1.1.13" => Scheme::Pkcs1(Hash::Sha512),
        "1.2.840.113549.1.1.10" => {
            let SignatureAlgorithm::RSASSA_PSS(params) = SignatureAlgorithm::try_from(algorithm).ok()? else {
                return None;
            };
            let hash = Hash::of_oid(&params.hash_algorithm_oid().to_id_string())?;
            let mgf = params.mask_gen_algorithm().ok()?;
            // MGF1 with another hash than the message's is not reproduced.
            if mgf.mgf.to_id_string() != "1.2.840.113549.1.1.8" || Hash::of_oid(&mgf.hash.to_id_string())? != hash {
                return None;
            }
            Scheme::Pss { hash, salt: usize::try_from(params.salt_length()).ok()? }
        }
        "1.2.840.10045.4.1" => Scheme::Ecdsa(Hash::Sha1),
        "1.2.840.10045.4.3.1" => Scheme::Ecdsa(Hash::Sha224),
        "1.2.840.10045.4.3.2" => Scheme::Ecdsa(Hash::Sha256),
        "1.2.840.10045.4.3.3" => Scheme::Ecdsa(Hash::Sha384),
        "1.2.840.10045.4.3.4" => Scheme::Ecdsa(Hash::Sha512),
        "1.2.840.10040.4.3" => Scheme::Dsa(Hash::Sha1),
        "2.16.840.1.101.3.4.3.1" => Scheme::Dsa(Hash::Sha224),
        "2.16.840.1.101.3.4.3.2" => Scheme::Dsa(Hash::Sha256),
        "1.3.101.112" => Scheme::Ed25519,
        "1.3.101.113" => Scheme::Ed448,
        _ => return None,
    })
}

/// The security bits `X509_get_signature_info` gives an RSASSA-PSS signature: those of its hash
/// (3.0 rates SHA-1 at 63 and MD5 at 39, 1.1.1 at 80 and 64); `None` when the parameters do not
/// read.
pub(super) fn pss_security_bits(subject: &X509Certificate<'_>, v3: bool) -> Option<u32> {
    let Scheme::Pss { hash, .. } = scheme(subject)? else { return None };
    Some(match hash {
        Hash::Md5 if v3 => 39,
        Hash::Md5 => 64,
        Hash::Sha1 if v3 => 63,
        Hash::Sha1 => 80,
        Hash::Sha224 => 112,
        Hash::Sha256 => 128,
        Hash::Sha384 => 192,
        Hash::Sha512 => 256,
    })
}

/// The curve of an EC key: a named curve's OID, or P-256 given by explicit parameters in
/// OpenSSL's encoding.
pub(super) fn ec_curve(key: &SubjectPublicKeyInfo<'_>) -> Option<&'static str> {
    let params = key.algorithm.parameters.as_ref()?;
    // (as_oid reads any content as an OID: look at the tag first.)
    if params.tag() == x509_parser::der_parser::asn1_rs::Tag::Oid
        && let Ok(oid) = params.as_oid()
    {
        return match oid.to_id_string().as_str() {
            "1.2.840.10045.3.1.7" => Some("P-256"),
            "1.3.132.0.34" => Some("P-384"),
            "1.3.132.0.35" => Some("P-521"),
            _ => None,
        };
    }
    explicit_p256(key).then_some("P-256")
}

/// Whether an EC key's parameters are explicit (a `SpecifiedECDomain`, not a named curve).
pub(super) fn has_explicit_ec_parameters(key: &SubjectPublicKeyInfo<'_>) -> bool {
    key.algorithm.algorithm.to_id_string() == "1.2.840.10045.2.1"
        && key.algorithm.parameters.as_ref().is_some_and(|p| p.tag() == x509_parser::der_parser::asn1_rs::Tag::Sequence)
}

fn explicit_p256(key: &SubjectPublicKeyInfo<'_>) -> bool {
    let Some(params) = key.algorithm.parameters.as_ref() else { return false };
    // The content of the SEQUENCE, compared with OpenSSL's encoding of P-256 (whose header is
    // 3 bytes: 30 81 f7).
    params.tag() == x509_parser::der_parser::asn1_rs::Tag::Sequence && params.data == &P256_EXPLICIT[3..]
}

/// Whether `subject`'s signature verifies under `issuer_key`.
pub(super) fn verifies(subject: &X509Certificate<'_>, issuer_key: &SubjectPublicKeyInfo<'_>) -> bool {
    let Some(scheme) = scheme(subject) else { return false };
    let tbs = subject.tbs_certificate.as_ref();
    let signature: &[u8] = &subject.signature_value.data;
    match scheme {
        Scheme::Pkcs1(hash) | Scheme::Pss { hash, .. } => {
            let Ok(PublicKey::RSA(rsa_key)) = issuer_key.parsed() else { return false };
            let n = rsa::BigUint::from_bytes_be(rsa_key.modulus);
            let e = rsa::BigUint::from_bytes_be(rsa_key.exponent);
            let Ok(key) = rsa::RsaPublicKey::new_with_max_size(n, e, 16384) else { return false };
            let digest = hash.digest(tbs);
            match scheme {
                Scheme::Pss { salt, .. } => key.verify(hash.pss(salt), &digest, signature).is_ok(),
                _ => key.verify(hash.pkcs1(), &digest, signature).is_ok(),
            }
        }
        Scheme::Ecdsa(hash) => {
            use ecdsa::signature::hazmat::PrehashVerifier as _;
            if issuer_key.algorithm.algorithm.to_id_string() != "1.2.840.10045.2.1" {
                return false;
            }
            let point: &[u8] = &issuer_key.subject_public_key.data;
            let digest = hash.digest(tbs);
            match ec_curve(issuer_key) {
                Some("P-256") => {
                    let (Ok(key), Ok(sig)) = (
                        p256::ecdsa::VerifyingKey::from_sec1_bytes(point),
                        p256::ecdsa::Signature::from_der(signature),
                    ) else {
                        return false;
                    };
                    key.verify_prehash(&digest, &sig).is_ok()
                }
                Some("P-384") => {
                    let (Ok(key), Ok(sig)) = (
                        p384::ecdsa::VerifyingKey::from_sec1_bytes(point),
                        p384::ecdsa::Signature::from_der(signature),
                    ) else {
                        return false;
                    };
                    key.verify_prehash(&digest, &sig).is_ok()
                }
                Some("P-521") => {
                    let (Ok(key), Ok(sig)) = (
                        p521::ecdsa::VerifyingKey::from_sec1_bytes(point),
                        p521::ecdsa::Signature::from_der(signature),
                    ) else {
                        return false;
                    };
                    key.verify_prehash(&digest, &sig).is_ok()
                }
                _ => false,
            }
        }
        Scheme::Dsa(hash) => {
            use dsa::signature::hazmat::PrehashVerifier as _;
            let (Some(key), Ok(sig)) = (dsa_key(issuer_key.raw), <dsa::Signature as der::Decode>::from_der(signature))
            else {
                return false;
            };
            key.verify_prehash(&hash.digest(tbs), &sig).is_ok()
        }
        Scheme::Ed25519 => {
            use ed25519_dalek::Verifier as _;
            if issuer_key.algorithm.algorithm.to_id_string() != "1.3.101.112" {
                return false;
            }
            let point: &[u8] = &issuer_key.subject_public_key.data;
            let (Ok(point), Ok(sig)) = (<[u8; 32]>::try_from(point), ed25519_dalek::Signature::from_slice(signature))
            else {
                return false;
            };
            let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&point) else { return false };
            key.verify(tbs, &sig).is_ok()
        }
        Scheme::Ed448 => {
            // Pure Ed448 (RFC 8032, empty context), as OpenSSL's ED448 verifies certificates.
            if issuer_key.algorithm.algorithm.to_id_string() != "1.3.101.113" {
                return false;
            }
            let point: &[u8] = &issuer_key.subject_public_key.data;
            let (Ok(point), Ok(sig)) = (<[u8; 57]>::try_from(point), ed448_goldilocks::Signature::try_from(signature))
            else {
                return false;
            };
            let Ok(key) = ed448_goldilocks::VerifyingKey::from_bytes(&point) else { return false };
            key.verify_raw(&sig, tbs).is_ok()
        }
    }
}

/// A DSA public key from its SPKI. The dsa crate checks the key's group on every decode (a
/// modular exponentiation per call, a tenth of a fuzz run's time), so the last few decoded keys
/// are kept, by their DER.
pub(super) fn dsa_key(spki_der: &[u8]) -> Option<dsa::VerifyingKey> {
    use spki::DecodePublicKey as _;
    static RECENT: std::sync::Mutex<Vec<(Vec<u8>, dsa::VerifyingKey)>> = std::sync::Mutex::new(Vec::new());
    if let Ok(recent) = RECENT.lock()
        && let Some((_, key)) = recent.iter().find(|(der, _)| der.as_slice() == spki_der)
    {
        return Some(key.clone());
    }
    let key = dsa::VerifyingKey::from_public_key_der(spki_der).ok()?;
    if let Ok(mut recent) = RECENT.lock() {
        if recent.len() >= 16 {
            drop(recent.remove(0));
        }
        recent.push((spki_der.to_vec(), key.clone()));
    }
    Some(key)
}

/// P-256's `SpecifiedECDomain` as `openssl ecparam -name prime256v1 -param_enc explicit` writes
/// it (version 1, prime field, a, b, seed, G uncompressed, n, h = 1).
pub(crate) const P256_EXPLICIT: [u8; 250] = [
    0x30, 0x81, 0xf7, 0x02, 0x01, 0x01, 0x30, 0x2c, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x01, 0x01, 0x02, 0x21,
    0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x30, 0x5b, 0x04, 0x20, 0xff,
    0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfc, 0x04, 0x20, 0x5a, 0xc6, 0x35, 0xd8, 0xaa,
    0x3a, 0x93, 0xe7, 0xb3, 0xeb, 0xbd, 0x55, 0x76, 0x98, 0x86, 0xbc, 0x65, 0x1d, 0x06, 0xb0, 0xcc, 0x53, 0xb0, 0xf6,
    0x3b, 0xce, 0x3c, 0x3e, 0x27, 0xd2, 0x60, 0x4b, 0x03, 0x15, 0x00, 0xc4, 0x9d, 0x36, 0x08, 0x86, 0xe7, 0x04, 0x93,
    0x6a, 0x66, 0x78, 0xe1, 0x13, 0x9d, 0x26, 0xb7, 0x81, 0x9f, 0x7e, 0x90, 0x04, 0x41, 0x04, 0x6b, 0x17, 0xd1, 0xf2,
    0xe1, 0x2c, 0x42, 0x47, 0xf8, 0xbc, 0xe6, 0xe5, 0x63, 0xa4, 0x40, 0xf2, 0x77, 0x03, 0x7d, 0x81, 0x2d, 0xeb, 0x33,
    0xa0, 0xf4, 0xa1, 0x39, 0x45, 0xd8, 0x98, 0xc2, 0x96, 0x4f, 0xe3, 0x42, 0xe2, 0xfe, 0x1a, 0x7f, 0x9b, 0x8e, 0xe7,
    0xeb, 0x4a, 0x7c, 0x0f, 0x9e, 0x16, 0x2b, 0xce, 0x33, 0x57, 0x6b, 0x31, 0x5e, 0xce, 0xcb, 0xb6, 0x40, 0x68, 0x37,
    0xbf, 0x51, 0xf5, 0x02, 0x21, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
    0x02, 0x01, 0x01,
];

#[cfg(test)]
mod tests {
    use x509_parser::prelude::FromDer as _;

    use super::*;

    #[test]
    fn reads_p256_given_by_explicit_parameters() {
        let named = crate::chain::generate::pool_spki(crate::chain::generate::KeyKind::P256, 0).expect("pool");
        let explicit = crate::chain::generate::explicit_p256_spki(&named).expect("explicit");
        let (_, spki) = SubjectPublicKeyInfo::from_der(&explicit).expect("spki");
        assert!(has_explicit_ec_parameters(&spki));
        assert_eq!(ec_curve(&spki), Some("P-256"));
    }
}
