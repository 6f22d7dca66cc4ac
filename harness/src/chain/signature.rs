//! `X509_verify(subject, issuer key)` for what aws-lc (behind x509-parser) does not check but
//! OpenSSL does: RSA PKCS #1 v1.5 with MD5, SHA-224 or keys under 2048 bits, RSA-PSS with SHA-1
//! or small keys or an MGF1 hash other than the message's, ECDSA with any hash on P-256, P-384 and
//! P-521 (named, or given by explicit parameters), DSA, Ed25519, Ed448 — with RustCrypto's crates (`rsa`, `p256`, `p384`, `p521`,
//! `dsa`, `ed25519-dalek`, `ed448-goldilocks`, `md-5`, `sha1`, `sha2`). The signature is data
//! from the peer: nothing here panics on it.

use x509_parser::prelude::X509Certificate;
use x509_parser::public_key::PublicKey;
use x509_parser::signature_algorithm::SignatureAlgorithm;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::KeyFamily;

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

    /// MGF1 (RFC 8017 B.2.1) with this hash: `len` bytes of mask from `seed`.
    pub(crate) fn mgf1(self, seed: &[u8], len: usize) -> Vec<u8> {
        let mut mask = Vec::with_capacity(len + self.output_len());
        let mut counter: u32 = 0;
        while mask.len() < len {
            let mut block = seed.to_vec();
            block.extend_from_slice(&counter.to_be_bytes());
            mask.extend(self.digest(&block));
            counter += 1;
        }
        mask.truncate(len);
        mask
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
    Pss { hash: Hash, mgf1: Hash, salt: usize },
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
            if mgf.mgf.to_id_string() != "1.2.840.113549.1.1.8" {
                return None;
            }
            // OpenSSL takes MGF1's hash from its own parameter: it need not be the message's.
            let mgf1 = Hash::of_oid(&mgf.hash.to_id_string())?;
            Scheme::Pss { hash, mgf1, salt: usize::try_from(params.salt_length()).ok()? }
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

/// The curve of an EC key: a named curve's OID, or explicit parameters whose values are those of
/// P-256, P-384 or P-521.
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
    if params.tag() != x509_parser::der_parser::asn1_rs::Tag::Sequence {
        return None;
    }
    let given = Domain::read(params.data)?;
    // The known curves' values, read once.
    static KNOWN: std::sync::LazyLock<Vec<(&'static str, Domain<'static>)>> = std::sync::LazyLock::new(|| {
        EXPLICIT_CURVES.iter().filter_map(|(name, der)| Some((*name, Domain::read(&der[header_len(der)..])?))).collect()
    });
    KNOWN.iter().find(|(_, known)| given.is(known)).map(|(name, _)| *name)
}

/// Whether an EC key's parameters are explicit (a `SpecifiedECDomain`, not a named curve).
pub(super) fn has_explicit_ec_parameters(key: &SubjectPublicKeyInfo<'_>) -> bool {
    key.algorithm.algorithm.to_id_string() == "1.2.840.10045.2.1"
        && key.algorithm.parameters.as_ref().is_some_and(|p| p.tag() == x509_parser::der_parser::asn1_rs::Tag::Sequence)
}

/// The curves the model verifies with, as OpenSSL writes them with explicit parameters
/// (`curves/SOURCE.md`).
pub(crate) const EXPLICIT_CURVES: [(&str, &[u8]); 3] = [
    ("P-256", include_bytes!("curves/prime256v1-explicit.der")),
    ("P-384", include_bytes!("curves/secp384r1-explicit.der")),
    ("P-521", include_bytes!("curves/secp521r1-explicit.der")),
];

/// The length of a DER header (tag and length) at the start of `der`.
fn header_len(der: &[u8]) -> usize {
    match der.get(1) {
        Some(&first) if first & 0x80 != 0 => 2 + usize::from(first & 0x7f),
        _ => 2,
    }
}

/// The values of a prime-field `SpecifiedECDomain` (RFC 3279), integers without leading zeros.
/// OpenSSL (`EC_GROUP_new_from_ecparameters`) reads them as numbers, so their encoding (leading
/// zeros, a compressed base point, the seed) does not change the group: two domains are one curve
/// when p, a, b, G and n agree, and the cofactor, when given, too.
struct Domain<'a> {
    p: &'a [u8],
    a: &'a [u8],
    b: &'a [u8],
    /// The base point as encoded: 04 || x || y, or 02/03 || x.
    g: &'a [u8],
    n: &'a [u8],
    h: Option<&'a [u8]>,
}

impl<'a> Domain<'a> {
    /// Reads the content of a `SpecifiedECDomain` SEQUENCE; `None` for anything but a prime field.
    fn read(content: &'a [u8]) -> Option<Domain<'a>> {
        use x509_parser::der_parser::asn1_rs::{Any, FromDer as _, Tag};
        let next = |input: &'a [u8], tag: Tag| -> Option<(&'a [u8], &'a [u8])> {
            let (rest, any) = Any::from_der(input).ok()?;
            (any.tag() == tag).then_some((rest, any.data))
        };
        let (rest, _version) = next(content, Tag::Integer)?;
        let (rest, field) = next(rest, Tag::Sequence)?;
        let (field_rest, field_type) = next(field, Tag::Oid)?;
        // prime-field (1.2.840.10045.1.1)
        if field_type != [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x01, 0x01] {
            return None;
        }
        let (_, p) = next(field_rest, Tag::Integer)?;
        let (rest, curve) = next(rest, Tag::Sequence)?;
        let (curve_rest, a) = next(curve, Tag::OctetString)?;
        let (_, b) = next(curve_rest, Tag::OctetString)?;
        let (rest, g) = next(rest, Tag::OctetString)?;
        let (rest, n) = next(rest, Tag::Integer)?;
        let h = if rest.is_empty() { None } else { Some(next(rest, Tag::Integer)?.1) };
        let trim = |v: &'a [u8]| -> &'a [u8] {
            let zeros = v.iter().take_while(|b| **b == 0).count();
            &v[zeros..]
        };
        Some(Domain { p: trim(p), a: trim(a), b: trim(b), g, n: trim(n), h: h.map(trim) })
    }

    /// Whether `self` (from a certificate) is `known` (OpenSSL's encoding of a named curve).
    fn is(&self, known: &Domain<'_>) -> bool {
        let same_point = match (self.g.first(), known.g.split_first()) {
            (Some(0x04), _) => self.g == known.g,
            // Compressed: x, and y's parity in the prefix.
            (Some(prefix @ (0x02 | 0x03)), Some((0x04, xy))) => {
                let (x, y) = xy.split_at(xy.len() / 2);
                self.g[1..] == *x && *prefix == 0x02 + (y.last().copied().unwrap_or(0) & 1)
            }
            _ => false,
        };
        self.p == known.p
            && self.a == known.a
            && self.b == known.b
            && same_point
            && self.n == known.n
            && self.h.is_none_or(|h| Some(h) == known.h)
    }
}

/// RSASSA-PSS verification (RFC 8017 8.1.2 and EMSA-PSS-VERIFY, 9.1.2) with an MGF1 hash other
/// than the message's, which OpenSSL allows and the `rsa` crate does not (it masks with the
/// message's hash): the public operation is the crate's, the encoding is checked here.
fn pss_verifies(key: &rsa::RsaPublicKey, m_hash: &[u8], signature: &[u8], hash: Hash, mgf1: Hash, salt: usize) -> bool {
    use rsa::traits::PublicKeyParts as _;
    // As the crate's own PSS verification: a signature is exactly as long as the modulus.
    if signature.len() != key.size() {
        return false;
    }
    let s = rsa::BigUint::from_bytes_be(signature);
    if &s >= key.n() {
        return false;
    }
    let Ok(m) = rsa::hazmat::rsa_encrypt(key, &s) else { return false };
    let em_bits = key.n().bits() - 1;
    let em_len = em_bits.div_ceil(8);
    let m = m.to_bytes_be();
    if m.len() > em_len {
        return false;
    }
    let mut em = vec![0u8; em_len - m.len()];
    em.extend_from_slice(&m);
    let h_len = hash.output_len();
    if em_len < h_len + salt + 2 || em[em_len - 1] != 0xbc {
        return false;
    }
    let (masked_db, h) = em[..em_len - 1].split_at(em_len - h_len - 1);
    // The bits above emBits are zero.
    let top = 0xffu8 >> (8 * em_len - em_bits);
    if masked_db[0] & !top != 0 {
        return false;
    }
    let mut db: Vec<u8> = masked_db.iter().zip(mgf1.mgf1(h, masked_db.len())).map(|(m, k)| m ^ k).collect();
    db[0] &= top;
    // DB = PS (zeros) || 0x01 || salt
    let ps_len = em_len - h_len - salt - 2;
    if db[..ps_len].iter().any(|b| *b != 0) || db[ps_len] != 0x01 {
        return false;
    }
    let mut m_prime = vec![0u8; 8];
    m_prime.extend_from_slice(m_hash);
    m_prime.extend_from_slice(&db[ps_len + 1..]);
    hash.digest(&m_prime) == h
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
                Scheme::Pss { mgf1, salt, .. } if mgf1 != hash => {
                    pss_verifies(&key, &digest, signature, hash, mgf1, salt)
                }
                Scheme::Pss { salt, .. } => key.verify(hash.pss(salt), &digest, signature).is_ok(),
                _ => key.verify(hash.pkcs1(), &digest, signature).is_ok(),
            }
        }
        Scheme::Ecdsa(hash) => {
            use ecdsa::signature::hazmat::PrehashVerifier as _;
            if issuer_key.algorithm.algorithm.to_id_string() != "1.2.840.10045.2.1" {
                return false;
            }
            let point = sec1(&issuer_key.subject_public_key.data);
            let point: &[u8] = &point;
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

/// Whether OpenSSL decodes the public key (`X509_get0_pubkey` is not NULL, in both flavours):
/// when it does not, the certificate issues nothing (`check_sig_alg_match` has no key) and its
/// key has no security bits. `family` is the key's, by its algorithm OID.
///
/// - X25519, X448, Ed25519, Ed448 (`ecx_key_op`): no parameters, not even NULL, and exactly the
///   key's length.
/// - RSA and RSASSA-PSS: the bit string holds an RSAPublicKey (`d2i_RSAPublicKey`).
/// - EC: see [`ec_key_decodes`].
/// - DSA: as the model reads the key elsewhere (its group is checked when it verifies).
pub(super) fn key_decodes(key: &SubjectPublicKeyInfo<'_>, family: KeyFamily) -> bool {
    let bits: &[u8] = &key.subject_public_key.data;
    let exact = |len: usize| key.algorithm.parameters.is_none() && bits.len() == len;
    match family {
        KeyFamily::Ed25519 | KeyFamily::X25519 => exact(32),
        KeyFamily::Ed448 => exact(57),
        KeyFamily::X448 => exact(56),
        KeyFamily::Rsa | KeyFamily::RsaPss => {
            use x509_parser::prelude::FromDer as _;
            x509_parser::public_key::RSAPublicKey::from_der(bits).is_ok()
        }
        KeyFamily::Ec => ec_key_decodes(key),
        KeyFamily::Dsa => true,
    }
}

/// `eckey_pub_decode`: the parameters name a curve OpenSSL knows ([`OPENSSL_NAMED_CURVES`]) or
/// are explicit, and the point decodes (`EC_POINT_oct2point`): the point at infinity (`00`),
/// compressed (`02`, `03`: x), uncompressed (`04`) or hybrid (`06`, `07`: the tag's low bit is
/// y's), with the curve's field size, and on the curve. The model checks that last for P-256,
/// P-384 and P-521 (named or explicit), which it has the arithmetic of; on other curves it checks
/// the encoding alone, and explicit parameters of another curve are taken as they come.
fn ec_key_decodes(key: &SubjectPublicKeyInfo<'_>) -> bool {
    use x509_parser::der_parser::asn1_rs::Tag;
    let Some(params) = key.algorithm.parameters.as_ref() else { return false };
    let point: &[u8] = &key.subject_public_key.data;
    let curve = ec_curve(key);
    let field = match (params.tag(), curve) {
        (_, Some("P-256")) => 32,
        (_, Some("P-384")) => 48,
        (_, Some("P-521")) => 66,
        (Tag::Oid, None) => {
            let Ok(oid) = params.as_oid() else { return false };
            let oid = oid.to_id_string();
            match OPENSSL_NAMED_CURVES.iter().find(|(known, _)| *known == oid) {
                Some((_, field)) => *field,
                None => return false,
            }
        }
        (Tag::Sequence, None) => return true,
        _ => return false,
    };
    let encoded_as_uncompressed = match (point.first(), point.len()) {
        (Some(0x00), 1) => return true,
        (Some(0x02 | 0x03), n) if n == 1 + field => None,
        (Some(0x04), n) if n == 1 + 2 * field => None,
        (Some(tag @ (0x06 | 0x07)), n) if n == 1 + 2 * field => {
            if point.last().is_none_or(|y| y & 1 != tag & 1) {
                return false;
            }
            Some([&[0x04], &point[1..]].concat())
        }
        _ => return false,
    };
    let sec1 = encoded_as_uncompressed.as_deref().unwrap_or(point);
    match curve {
        Some("P-256") => p256::PublicKey::from_sec1_bytes(sec1).is_ok(),
        Some("P-384") => p384::PublicKey::from_sec1_bytes(sec1).is_ok(),
        Some("P-521") => p521::PublicKey::from_sec1_bytes(sec1).is_ok(),
        _ => true,
    }
}

/// An EC point as RustCrypto's `from_sec1_bytes` reads it: a hybrid point (`06`/`07` || x || y,
/// which OpenSSL decodes when the tag's low bit is y's) written uncompressed (`04`); any other
/// as it is.
fn sec1(point: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    match point.split_first() {
        Some((tag @ (0x06 | 0x07), xy)) if xy.last().is_some_and(|y| y & 1 == tag & 1) => {
            std::borrow::Cow::Owned([&[0x04][..], xy].concat())
        }
        _ => std::borrow::Cow::Borrowed(point),
    }
}

/// The named curves OpenSSL 1.1.1 and 3.0 decode keys on (`openssl ecparam -list_curves`, those
/// with an OID), with the size of their field in bytes: the OID, the size, the curve's name.
const OPENSSL_NAMED_CURVES: [(&str, usize); 80] = [
    ("1.3.132.0.6", 14),           // secp112r1
    ("1.3.132.0.7", 14),           // secp112r2
    ("1.3.132.0.28", 16),          // secp128r1
    ("1.3.132.0.29", 16),          // secp128r2
    ("1.3.132.0.9", 20),           // secp160k1
    ("1.3.132.0.8", 20),           // secp160r1
    ("1.3.132.0.30", 20),          // secp160r2
    ("1.3.132.0.31", 24),          // secp192k1
    ("1.3.132.0.32", 28),          // secp224k1
    ("1.3.132.0.33", 28),          // secp224r1
    ("1.3.132.0.10", 32),          // secp256k1
    ("1.3.132.0.34", 48),          // secp384r1
    ("1.3.132.0.35", 66),          // secp521r1
    ("1.2.840.10045.3.1.1", 24),   // prime192v1
    ("1.2.840.10045.3.1.2", 24),   // prime192v2
    ("1.2.840.10045.3.1.3", 24),   // prime192v3
    ("1.2.840.10045.3.1.4", 30),   // prime239v1
    ("1.2.840.10045.3.1.5", 30),   // prime239v2
    ("1.2.840.10045.3.1.6", 30),   // prime239v3
    ("1.2.840.10045.3.1.7", 32),   // prime256v1
    ("1.3.132.0.4", 15),           // sect113r1
    ("1.3.132.0.5", 15),           // sect113r2
    ("1.3.132.0.22", 17),          // sect131r1
    ("1.3.132.0.23", 17),          // sect131r2
    ("1.3.132.0.1", 21),           // sect163k1
    ("1.3.132.0.2", 21),           // sect163r1
    ("1.3.132.0.15", 21),          // sect163r2
    ("1.3.132.0.24", 25),          // sect193r1
    ("1.3.132.0.25", 25),          // sect193r2
    ("1.3.132.0.26", 30),          // sect233k1
    ("1.3.132.0.27", 30),          // sect233r1
    ("1.3.132.0.3", 30),           // sect239k1
    ("1.3.132.0.16", 36),          // sect283k1
    ("1.3.132.0.17", 36),          // sect283r1
    ("1.3.132.0.36", 52),          // sect409k1
    ("1.3.132.0.37", 52),          // sect409r1
    ("1.3.132.0.38", 72),          // sect571k1
    ("1.3.132.0.39", 72),          // sect571r1
    ("1.2.840.10045.3.0.1", 21),   // c2pnb163v1
    ("1.2.840.10045.3.0.2", 21),   // c2pnb163v2
    ("1.2.840.10045.3.0.3", 21),   // c2pnb163v3
    ("1.2.840.10045.3.0.4", 22),   // c2pnb176v1
    ("1.2.840.10045.3.0.5", 24),   // c2tnb191v1
    ("1.2.840.10045.3.0.6", 24),   // c2tnb191v2
    ("1.2.840.10045.3.0.7", 24),   // c2tnb191v3
    ("1.2.840.10045.3.0.10", 26),  // c2pnb208w1
    ("1.2.840.10045.3.0.11", 30),  // c2tnb239v1
    ("1.2.840.10045.3.0.12", 30),  // c2tnb239v2
    ("1.2.840.10045.3.0.13", 30),  // c2tnb239v3
    ("1.2.840.10045.3.0.16", 34),  // c2pnb272w1
    ("1.2.840.10045.3.0.17", 38),  // c2pnb304w1
    ("1.2.840.10045.3.0.18", 45),  // c2tnb359v1
    ("1.2.840.10045.3.0.19", 46),  // c2pnb368w1
    ("1.2.840.10045.3.0.20", 54),  // c2tnb431r1
    ("2.23.43.1.4.1", 15),         // wap-wsg-idm-ecid-wtls1
    ("2.23.43.1.4.3", 21),         // wap-wsg-idm-ecid-wtls3
    ("2.23.43.1.4.4", 15),         // wap-wsg-idm-ecid-wtls4
    ("2.23.43.1.4.5", 21),         // wap-wsg-idm-ecid-wtls5
    ("2.23.43.1.4.6", 14),         // wap-wsg-idm-ecid-wtls6
    ("2.23.43.1.4.7", 20),         // wap-wsg-idm-ecid-wtls7
    ("2.23.43.1.4.8", 14),         // wap-wsg-idm-ecid-wtls8
    ("2.23.43.1.4.9", 20),         // wap-wsg-idm-ecid-wtls9
    ("2.23.43.1.4.10", 30),        // wap-wsg-idm-ecid-wtls10
    ("2.23.43.1.4.11", 30),        // wap-wsg-idm-ecid-wtls11
    ("2.23.43.1.4.12", 28),        // wap-wsg-idm-ecid-wtls12
    ("1.3.36.3.3.2.8.1.1.1", 20),  // brainpoolP160r1
    ("1.3.36.3.3.2.8.1.1.2", 20),  // brainpoolP160t1
    ("1.3.36.3.3.2.8.1.1.3", 24),  // brainpoolP192r1
    ("1.3.36.3.3.2.8.1.1.4", 24),  // brainpoolP192t1
    ("1.3.36.3.3.2.8.1.1.5", 28),  // brainpoolP224r1
    ("1.3.36.3.3.2.8.1.1.6", 28),  // brainpoolP224t1
    ("1.3.36.3.3.2.8.1.1.7", 32),  // brainpoolP256r1
    ("1.3.36.3.3.2.8.1.1.8", 32),  // brainpoolP256t1
    ("1.3.36.3.3.2.8.1.1.9", 40),  // brainpoolP320r1
    ("1.3.36.3.3.2.8.1.1.10", 40), // brainpoolP320t1
    ("1.3.36.3.3.2.8.1.1.11", 48), // brainpoolP384r1
    ("1.3.36.3.3.2.8.1.1.12", 48), // brainpoolP384t1
    ("1.3.36.3.3.2.8.1.1.13", 64), // brainpoolP512r1
    ("1.3.36.3.3.2.8.1.1.14", 64), // brainpoolP512t1
    ("1.2.156.10197.1.301", 32),   // SM2
];

/// 1.1.1's `ecd_item_verify`: an Ed25519 or Ed448 signature whose AlgorithmIdentifier carries
/// parameters (RFC 8410: absent; NULL included) does not verify. 3.0 verifies through its
/// provider and never looks at them.
pub(super) fn eddsa_with_parameters(subject: &X509Certificate<'_>) -> bool {
    let algorithm = &subject.signature_algorithm;
    matches!(algorithm.algorithm.to_id_string().as_str(), "1.3.101.112" | "1.3.101.113")
        && algorithm.parameters.is_some()
}

#[cfg(test)]
mod tests {
    use x509_parser::prelude::FromDer as _;

    use super::*;

    #[test]
    fn reads_each_curve_given_by_explicit_parameters() {
        use crate::chain::generate::KeyKind;
        for (kind, name) in [(KeyKind::P256, "P-256"), (KeyKind::P384, "P-384"), (KeyKind::P521, "P-521")] {
            let named = crate::chain::generate::pool_spki(kind, 0).expect("pool");
            let explicit = crate::chain::generate::explicit_ec_spki(&named).expect("explicit");
            let (_, spki) = SubjectPublicKeyInfo::from_der(&explicit).expect("spki");
            assert!(has_explicit_ec_parameters(&spki), "{name}");
            assert_eq!(ec_curve(&spki), Some(name));
            let (_, named) = SubjectPublicKeyInfo::from_der(&named).expect("spki");
            assert!(!has_explicit_ec_parameters(&named), "{name}");
            assert_eq!(ec_curve(&named), Some(name));
        }
    }

    #[test]
    fn explicit_parameters_are_compared_by_value() {
        let der = EXPLICIT_CURVES[0].1;
        let known = Domain::read(&der[header_len(der)..]).expect("P-256 reads");
        let same = |d: &Domain<'_>| d.is(&known);
        // The base point compressed: x and the parity of y (P-256's y is odd: 03).
        let x = known.g[1..33].to_vec();
        let compressed = [&[0x03][..], &x].concat();
        assert!(same(&Domain { g: &compressed, ..Domain::read(&der[header_len(der)..]).expect("reads") }));
        let wrong_parity = [&[0x02][..], &x].concat();
        assert!(!same(&Domain { g: &wrong_parity, ..Domain::read(&der[header_len(der)..]).expect("reads") }));
        // No cofactor is the same curve; another cofactor or b is not.
        assert!(same(&Domain { h: None, ..Domain::read(&der[header_len(der)..]).expect("reads") }));
        assert!(!same(&Domain { h: Some(&[2]), ..Domain::read(&der[header_len(der)..]).expect("reads") }));
        let b = [&known.b[..31], &[known.b[31] ^ 1][..]].concat();
        assert!(!same(&Domain { b: &b, ..Domain::read(&der[header_len(der)..]).expect("reads") }));
        // P-384's parameters are not P-256's.
        let p384 = EXPLICIT_CURVES[1].1;
        assert!(!Domain::read(&p384[header_len(p384)..]).expect("P-384 reads").is(&known));
    }

    #[test]
    fn pss_with_another_mgf1_hash_verifies_as_rfc_8017_says() {
        let key = crate::chain::generate::pool_rsa_2048(0).expect("an RSA-2048 key");
        let public = rsa::RsaPublicKey::from(&key);
        let tbs = b"to be signed";
        // The hand-made encoding agrees with the rsa crate where the crate can check it.
        let same = crate::chain::generate::pss_sign_mgf1(&key, tbs, Hash::Sha256, Hash::Sha256).expect("signs");
        let digest = Hash::Sha256.digest(tbs);
        assert!(public.verify(Hash::Sha256.pss(32), &digest, &same).is_ok());
        assert!(pss_verifies(&public, &digest, &same, Hash::Sha256, Hash::Sha256, 32));
        let crate_made = {
            use rand_chacha::rand_core::SeedableRng as _;
            key.sign_with_rng(&mut rand_chacha::ChaCha20Rng::from_seed([7; 32]), Hash::Sha256.pss(32), &digest)
                .expect("the crate signs")
        };
        assert!(pss_verifies(&public, &digest, &crate_made, Hash::Sha256, Hash::Sha256, 32));
        // MGF1 with SHA-1 under a SHA-256 message: only the right MGF1 hash and salt length verify.
        let other = crate::chain::generate::pss_sign_mgf1(&key, tbs, Hash::Sha256, Hash::Sha1).expect("signs");
        assert!(pss_verifies(&public, &digest, &other, Hash::Sha256, Hash::Sha1, 32));
        assert!(!pss_verifies(&public, &digest, &other, Hash::Sha256, Hash::Sha256, 32));
        assert!(!pss_verifies(&public, &digest, &other, Hash::Sha256, Hash::Sha1, 20));
        assert!(public.verify(Hash::Sha256.pss(32), &digest, &other).is_err());
        let mut flipped = other.clone();
        flipped[100] ^= 1;
        assert!(!pss_verifies(&public, &digest, &flipped, Hash::Sha256, Hash::Sha1, 32));
        assert!(!pss_verifies(&public, &digest, &other[1..], Hash::Sha256, Hash::Sha1, 32));
    }

    /// The generator's EMSA-PSS encoding with SHA-256 and MGF1-SHA-1, changed by `tweak`, then
    /// signed with the raw private operation: `(signature, EM)`; `None` when the changed EM is not
    /// under the modulus.
    fn hand_made_pss(
        key: &rsa::RsaPrivateKey,
        digest: &[u8],
        salt: &[u8],
        tweak: impl FnOnce(&mut Vec<u8>),
    ) -> Option<(Vec<u8>, Vec<u8>)> {
        use rsa::traits::PublicKeyParts as _;
        let em_bits = key.n().bits() - 1;
        let mut em = crate::chain::generate::pss_encode(digest, salt, Hash::Sha256, Hash::Sha1, em_bits)?;
        tweak(&mut em);
        let signature = crate::chain::generate::rsa_private_operation(key, &em).ok()?;
        Some((signature, em))
    }

    /// Where EM holds DB's separator byte (masking is a XOR: flipping a bit of EM there flips
    /// the separator's): after PS, before the salt, H (32 bytes) and 0xbc.
    fn separator_at(em: &[u8], salt_len: usize) -> usize {
        em.len() - 32 - 2 - salt_len
    }

    #[test]
    fn pss_encodings_at_their_limits() {
        let key = crate::chain::generate::pool_rsa_2048(0).expect("an RSA-2048 key");
        let public = rsa::RsaPublicKey::from(&key);
        let digest = Hash::Sha256.digest(b"to be signed");
        let verifies =
            |signature: &[u8], salt: usize| pss_verifies(&public, &digest, signature, Hash::Sha256, Hash::Sha1, salt);
        let signed = |salt: &[u8], tweak: fn(&mut Vec<u8>, usize)| {
            hand_made_pss(&key, &digest, salt, |em| tweak(em, salt.len())).expect("EM under n").0
        };
        let as_made = |_: &mut Vec<u8>, _: usize| {};
        let separator_0x02 = |em: &mut Vec<u8>, salt_len: usize| {
            let at = separator_at(em, salt_len);
            em[at] ^= 0x01 ^ 0x02;
        };
        // An encoding whose first byte is zero: the integer is a byte shorter than EM.
        let (signature, _) = (0u32..)
            .filter_map(|i| hand_made_pss(&key, &digest, &Hash::Sha256.digest(&i.to_be_bytes()), |_| {}))
            .find(|(_, em)| em[0] == 0)
            .expect("one in 128 salts");
        assert!(verifies(&signature, 32));
        // The longest salt the key holds: no zero padding before the separator.
        let longest = 256 - 32 - 2;
        let signature = signed(&vec![0x5a; longest], as_made);
        assert!(verifies(&signature, longest));
        assert!(!verifies(&signature, longest + 1));
        // A separator other than 0x01 is refused, with or without padding before it.
        assert!(!verifies(&signed(&[0x5a; 32], separator_0x02), 32));
        assert!(!verifies(&signed(&vec![0x5a; longest], separator_0x02), longest));
        // A trailer other than 0xbc is refused.
        let signature = signed(&[0x5a; 32], |em, _| *em.last_mut().expect("EM") = 0xbd);
        assert!(!verifies(&signature, 32));
        // A salt length one short: the separator is read as padding that is not zero.
        let signature = signed(&[0x5a; 32], as_made);
        assert!(verifies(&signature, 32));
        assert!(!verifies(&signature, 31));
    }

    /// A modulus whose size is not a multiple of 8 (527 bits: emBits 526, so EM's first byte
    /// has two bits above it): an encoding that leaves the lower of them set is refused.
    #[test]
    fn pss_refuses_bits_above_em_bits() {
        use rand_chacha::rand_core::SeedableRng as _;
        let key = rsa::RsaPrivateKey::new(&mut rand_chacha::ChaCha20Rng::from_seed([3; 32]), 527).expect("a key");
        let public = rsa::RsaPublicKey::from(&key);
        let digest = Hash::Sha256.digest(b"to be signed");
        let verifies = |signature: &[u8]| pss_verifies(&public, &digest, signature, Hash::Sha256, Hash::Sha1, 16);
        let (signature, _) = hand_made_pss(&key, &digest, &[0x5a; 16], |_| {}).expect("EM under n");
        assert!(verifies(&signature));
        // The second bit put back as the mask makes it (only the top one cleared), for a salt
        // whose mask sets it while EM stays under the modulus.
        let (signature, em) = (0u32..)
            .filter_map(|i| {
                hand_made_pss(&key, &digest, &Hash::Sha1.digest(&i.to_be_bytes())[..16], |em| {
                    let h = em[em.len() - 33..em.len() - 1].to_vec();
                    em[0] |= Hash::Sha1.mgf1(&h, 1)[0] & 0x40;
                })
            })
            .find(|(_, em)| em[0] & 0x40 != 0)
            .expect("a salt");
        assert_eq!(em[0] & 0x80, 0);
        assert!(!verifies(&signature));
    }
}
