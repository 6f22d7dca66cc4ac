//! The generator's fixed key pool: key generation must not dominate the rate, and the same seed
//! must give the same certificates, so every key is fixed. RSA and DSA keys were made once with
//! `openssl genpkey` (`keys.pem`, PKCS #8); EC, Ed25519 and Ed448 keys come from fixed scalars and
//! seeds.

use std::sync::OnceLock;

use base64::Engine as _;
use der::{Decode as _, Encode as _};
use spki::EncodePublicKey as _;

use super::GenError;

/// A key the generator can put in a certificate, and sign with when it has the private half.
pub enum PoolKey {
    /// RSA (PKCS #1 v1.5 or PSS signatures); its SPKI says rsaEncryption.
    Rsa(Box<RsaKey>),
    /// ECDSA on P-256.
    P256(p256::ecdsa::SigningKey),
    /// ECDSA on P-384.
    P384(p384::ecdsa::SigningKey),
    /// ECDSA on P-521.
    P521(p521::ecdsa::SigningKey),
    /// Ed25519.
    Ed25519(ed25519_dalek::SigningKey),
    /// Ed448.
    Ed448(Box<ed448_goldilocks::SigningKey>),
    /// DSA.
    Dsa(Box<dsa::SigningKey>),
    /// A public key only (X25519, X448): raw bytes under an OID (in the SPKI), never a signer.
    Raw,
}

impl std::fmt::Debug for PoolKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private halves.
        let kind = match self {
            PoolKey::Rsa(_) => "rsa",
            PoolKey::P256(_) => "p-256",
            PoolKey::P384(_) => "p-384",
            PoolKey::P521(_) => "p-521",
            PoolKey::Ed25519(_) => "ed25519",
            PoolKey::Ed448(_) => "ed448",
            PoolKey::Dsa(_) => "dsa",
            PoolKey::Raw => "public key only",
        };
        write!(f, "PoolKey({kind})")
    }
}

/// An RSA key of the pool, in RustCrypto's form (every size, every hash, PSS with a salt the
/// generator chooses) and, from 2048 bits on, in aws-lc's, which signs PKCS #1 v1.5 with SHA-256,
/// SHA-384 and SHA-512 about twenty times faster than `num-bigint-dig`. PKCS #1 v1.5 signatures
/// are deterministic, so both give the same bytes; aws-lc's PSS salts are random, which is why
/// PSS stays with RustCrypto.
pub struct RsaKey {
    /// RustCrypto's key.
    pub private: rsa::RsaPrivateKey,
    /// aws-lc's, when it takes the key (2048 bits and more).
    pub aws: Option<aws_lc_rs::signature::RsaKeyPair>,
}

impl std::fmt::Debug for RsaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private halves.
        write!(f, "RsaKey(aws-lc: {})", self.aws.is_some())
    }
}

impl std::ops::Deref for RsaKey {
    type Target = rsa::RsaPrivateKey;

    fn deref(&self) -> &rsa::RsaPrivateKey {
        &self.private
    }
}

/// Which key of the pool: a kind and an index within that kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyKind {
    /// RSA-512.
    Rsa512,
    /// RSA-1024.
    Rsa1024,
    /// RSA-2048.
    Rsa2048,
    /// RSA-3072.
    Rsa3072,
    /// P-256, named curve.
    P256,
    /// P-384.
    P384,
    /// P-521.
    P521,
    /// Ed25519.
    Ed25519,
    /// DSA-1024 (q 160 bits).
    Dsa1024,
    /// DSA-2048 (q 256 bits).
    Dsa2048,
    /// Ed448.
    Ed448,
    /// X25519 public key (no signer).
    X25519,
    /// X448 public key (no signer).
    X448,
}

impl KeyKind {
    /// Every kind, in pool order.
    pub const ALL: [KeyKind; 13] = [
        KeyKind::Rsa512,
        KeyKind::Rsa1024,
        KeyKind::Rsa2048,
        KeyKind::Rsa3072,
        KeyKind::P256,
        KeyKind::P384,
        KeyKind::P521,
        KeyKind::Ed25519,
        KeyKind::Dsa1024,
        KeyKind::Dsa2048,
        KeyKind::Ed448,
        KeyKind::X25519,
        KeyKind::X448,
    ];

    /// A short name for coverage lines.
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::Rsa512 => "rsa-512",
            KeyKind::Rsa1024 => "rsa-1024",
            KeyKind::Rsa2048 => "rsa-2048",
            KeyKind::Rsa3072 => "rsa-3072",
            KeyKind::P256 => "p-256",
            KeyKind::P384 => "p-384",
            KeyKind::P521 => "p-521",
            KeyKind::Ed25519 => "ed25519",
            KeyKind::Dsa1024 => "dsa-1024",
            KeyKind::Dsa2048 => "dsa-2048",
            KeyKind::Ed448 => "ed448",
            KeyKind::X25519 => "x25519",
            KeyKind::X448 => "x448",
        }
    }

    /// How many keys of this kind the pool holds.
    pub fn count(self) -> usize {
        match self {
            KeyKind::Rsa1024 | KeyKind::Rsa2048 | KeyKind::P256 | KeyKind::P384 | KeyKind::Ed25519 => 2,
            _ => 1,
        }
    }

    /// Whether the generator can sign with a key of this kind.
    pub fn signs(self) -> bool {
        !matches!(self, KeyKind::X25519 | KeyKind::X448)
    }
}

/// The pool, built once per process.
#[derive(Debug)]
pub struct Pool {
    keys: Vec<(KeyKind, PoolKey, Vec<u8>)>,
}

const KEYS_PEM: &str = include_str!("keys.pem");

fn pkcs8_blocks() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut body = String::new();
    let mut inside = false;
    for line in KEYS_PEM.lines() {
        if line.starts_with("-----BEGIN") {
            inside = true;
            body.clear();
        } else if line.starts_with("-----END") {
            inside = false;
            if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(body.as_bytes()) {
                out.push(bytes);
            }
        } else if inside {
            body.push_str(line.trim());
        }
    }
    out
}

fn fixed_bytes(label: u8, index: usize, len: usize) -> Vec<u8> {
    use sha2::Digest as _;
    let mut out = Vec::with_capacity(len);
    let mut counter = 0u32;
    while out.len() < len {
        let block = sha2::Sha256::new()
            .chain_update(b"mralab chain pool")
            .chain_update([label])
            .chain_update((index as u64).to_be_bytes())
            .chain_update(counter.to_be_bytes())
            .finalize();
        out.extend_from_slice(&block);
        counter += 1;
    }
    out.truncate(len);
    out
}

impl Pool {
    /// The process's pool.
    pub fn get() -> Result<&'static Pool, GenError> {
        static POOL: OnceLock<Result<Pool, String>> = OnceLock::new();
        POOL.get_or_init(|| Pool::build().map_err(|e| e.to_string())).as_ref().map_err(|e| GenError::Pool(e.clone()))
    }

    fn build() -> Result<Pool, GenError> {
        let bad = |what: &str, e: &dyn std::fmt::Display| GenError::Pool(format!("{what}: {e}"));
        let mut keys = Vec::new();
        let blocks = pkcs8_blocks();
        let rsa_kinds =
            [KeyKind::Rsa512, KeyKind::Rsa1024, KeyKind::Rsa1024, KeyKind::Rsa2048, KeyKind::Rsa2048, KeyKind::Rsa3072];
        for (kind, der) in rsa_kinds.iter().zip(&blocks) {
            let info = rsa::pkcs8::PrivateKeyInfo::from_der(der).map_err(|e| bad("rsa pkcs8", &e))?;
            let key = rsa::RsaPrivateKey::try_from(info).map_err(|e| bad("rsa key", &e))?;
            let spki = key.to_public_key().to_public_key_der().map_err(|e| bad("rsa spki", &e))?;
            let aws = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(der).ok();
            keys.push((*kind, PoolKey::Rsa(Box::new(RsaKey { private: key, aws })), spki.as_bytes().to_vec()));
        }
        for (kind, der) in [KeyKind::Dsa1024, KeyKind::Dsa2048].iter().zip(blocks.iter().skip(rsa_kinds.len())) {
            let info = rsa::pkcs8::PrivateKeyInfo::from_der(der).map_err(|e| bad("dsa pkcs8", &e))?;
            let key = dsa::SigningKey::try_from(info).map_err(|e| bad("dsa key", &e))?;
            let spki = key.verifying_key().to_public_key_der().map_err(|e| bad("dsa spki", &e))?;
            keys.push((*kind, PoolKey::Dsa(Box::new(key)), spki.as_bytes().to_vec()));
        }
        for index in 0..KeyKind::P256.count() {
            let key = p256::ecdsa::SigningKey::from_slice(&fixed_bytes(1, index, 32)).map_err(|e| bad("p256", &e))?;
            let point = key.verifying_key().to_encoded_point(false);
            keys.push((KeyKind::P256, PoolKey::P256(key), ec_spki(P256_OID, point.as_bytes())?));
        }
        for index in 0..KeyKind::P384.count() {
            let key = p384::ecdsa::SigningKey::from_slice(&fixed_bytes(2, index, 48)).map_err(|e| bad("p384", &e))?;
            let point = key.verifying_key().to_encoded_point(false);
            keys.push((KeyKind::P384, PoolKey::P384(key), ec_spki(P384_OID, point.as_bytes())?));
        }
        {
            // A 66-byte scalar below the order: the top byte is 0 or 1.
            let mut scalar = fixed_bytes(3, 0, 66);
            scalar[0] = 0;
            let key = p521::ecdsa::SigningKey::from_slice(&scalar).map_err(|e| bad("p521", &e))?;
            let point = p521::ecdsa::VerifyingKey::from(&key).to_encoded_point(false);
            keys.push((KeyKind::P521, PoolKey::P521(key), ec_spki(P521_OID, point.as_bytes())?));
        }
        for index in 0..KeyKind::Ed25519.count() {
            let mut seed = [0u8; 32];
            seed.copy_from_slice(&fixed_bytes(4, index, 32));
            let key = ed25519_dalek::SigningKey::from_bytes(&seed);
            let spki = raw_spki(ED25519_OID, key.verifying_key().as_bytes())?;
            keys.push((KeyKind::Ed25519, PoolKey::Ed25519(key), spki));
        }
        {
            let key = ed448_goldilocks::SigningKey::try_from(fixed_bytes(5, 0, 57).as_slice())
                .map_err(|e| bad("ed448", &e))?;
            let spki = raw_spki(ED448_OID, key.verifying_key().as_bytes())?;
            keys.push((KeyKind::Ed448, PoolKey::Ed448(Box::new(key)), spki));
        }
        for (kind, oid, len, label) in [(KeyKind::X25519, X25519_OID, 32, 6), (KeyKind::X448, X448_OID, 56, 7)] {
            let bytes = fixed_bytes(label, 0, len);
            let spki = raw_spki(oid, &bytes)?;
            keys.push((kind, PoolKey::Raw, spki));
        }
        for kind in KeyKind::ALL {
            let have = keys.iter().filter(|(k, _, _)| *k == kind).count();
            if have != kind.count() {
                return Err(GenError::Pool(format!(
                    "{} keys of kind {}, expected {}",
                    have,
                    kind.name(),
                    kind.count()
                )));
            }
        }
        Ok(Pool { keys })
    }

    /// The key of a kind at an index (taken modulo the kind's count) and its SPKI DER.
    pub fn key(&self, kind: KeyKind, index: usize) -> (&PoolKey, &[u8]) {
        let index = index % kind.count();
        let found = self.keys.iter().filter(|(k, _, _)| *k == kind).nth(index);
        match found {
            Some((_, key, spki)) => (key, spki),
            // Pool::build checked every kind's count.
            None => unreachable!("pool without a {} key", kind.name()),
        }
    }
}

pub(super) const P256_OID: &str = "1.2.840.10045.3.1.7";
pub(super) const P384_OID: &str = "1.3.132.0.34";
pub(super) const P521_OID: &str = "1.3.132.0.35";
pub(super) const EC_PUBLIC_KEY_OID: &str = "1.2.840.10045.2.1";
pub(super) const ED25519_OID: &str = "1.3.101.112";
pub(super) const ED448_OID: &str = "1.3.101.113";
const X25519_OID: &str = "1.3.101.110";
const X448_OID: &str = "1.3.101.111";
const RSA_OID: &str = "1.2.840.113549.1.1.1";

fn spki_der(algorithm: spki::AlgorithmIdentifierOwned, key: &[u8]) -> Result<Vec<u8>, GenError> {
    let spki = spki::SubjectPublicKeyInfoOwned {
        algorithm,
        subject_public_key: der::asn1::BitString::from_bytes(key).map_err(GenError::Der)?,
    };
    spki.to_der().map_err(GenError::Der)
}

fn ec_spki(curve: &str, point: &[u8]) -> Result<Vec<u8>, GenError> {
    let curve = der::asn1::ObjectIdentifier::new_unwrap(curve);
    spki_der(
        spki::AlgorithmIdentifierOwned {
            oid: der::asn1::ObjectIdentifier::new_unwrap(EC_PUBLIC_KEY_OID),
            parameters: Some(der::Any::from(&curve)),
        },
        point,
    )
}

fn raw_spki(oid: &str, key: &[u8]) -> Result<Vec<u8>, GenError> {
    spki_der(
        spki::AlgorithmIdentifierOwned { oid: der::asn1::ObjectIdentifier::new_unwrap(oid), parameters: None },
        key,
    )
}

/// The SPKI of an EC key (P-256, P-384 or P-521) with explicit curve parameters (RFC 3279
/// `SpecifiedECDomain`, as OpenSSL writes them) instead of the named curve's OID.
pub fn explicit_ec_spki(named: &[u8]) -> Result<Vec<u8>, GenError> {
    let info = spki::SubjectPublicKeyInfoRef::from_der(named).map_err(GenError::Der)?;
    let point = info.subject_public_key.raw_bytes();
    let curve = info.algorithm.parameters_oid().map_err(GenError::Spki)?.to_string();
    let name = match curve.as_str() {
        P256_OID => "P-256",
        P384_OID => "P-384",
        P521_OID => "P-521",
        _ => return Err(GenError::Sign(format!("no explicit parameters for the curve {curve}"))),
    };
    let (_, encoding) = crate::chain::signature::EXPLICIT_CURVES
        .iter()
        .find(|(known, _)| *known == name)
        .ok_or_else(|| GenError::Sign(format!("no explicit parameters for {name}")))?;
    let params = der::Any::from_der(encoding).map_err(GenError::Der)?;
    spki_der(
        spki::AlgorithmIdentifierOwned {
            oid: der::asn1::ObjectIdentifier::new_unwrap(EC_PUBLIC_KEY_OID),
            parameters: Some(params),
        },
        point,
    )
}

/// `spki` (DER) with its key written in `form` (see [`super::KeyForm`]); unchanged where the
/// form does not apply to the key's type.
pub fn in_form(spki: &[u8], form: super::KeyForm) -> Result<Vec<u8>, GenError> {
    use super::KeyForm;
    if form == KeyForm::Standard {
        return Ok(spki.to_vec());
    }
    let info = spki::SubjectPublicKeyInfoRef::from_der(spki).map_err(GenError::Der)?;
    let algorithm = spki::AlgorithmIdentifierOwned {
        oid: info.algorithm.oid,
        parameters: info.algorithm.parameters.map(|p| p.into()),
    };
    let key = info.subject_public_key.raw_bytes();
    let oid = algorithm.oid.to_string();
    let written = match (oid.as_str(), form) {
        (EC_PUBLIC_KEY_OID, _) if key.first() == Some(&0x04) => {
            let (x, y) = key[1..].split_at((key.len() - 1) / 2);
            let odd = y.last().copied().unwrap_or(0) & 1;
            match form {
                KeyForm::Compressed => [&[0x02 | odd][..], x].concat(),
                KeyForm::Hybrid => [&[0x06 | odd][..], x, y].concat(),
                // y's last bit flipped: off the curve.
                _ => [&[0x04][..], x, &y[..y.len() - 1], &[y[y.len() - 1] ^ 1]].concat(),
            }
        }
        (ED25519_OID | ED448_OID | X25519_OID | X448_OID, KeyForm::Undecodable) => {
            return spki_der(spki::AlgorithmIdentifierOwned { parameters: Some(der::Any::null()), ..algorithm }, key);
        }
        (RSA_OID, KeyForm::Undecodable) if key.first() == Some(&0x30) => [&[0x31][..], &key[1..]].concat(),
        _ => return Ok(spki.to_vec()),
    };
    spki_der(algorithm, &written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::signature::Hash;

    #[test]
    fn aws_lc_signs_pkcs1_as_rustcrypto_does() {
        let pool = Pool::get().expect("pool");
        let message = b"tbsCertificate";
        for kind in [KeyKind::Rsa2048, KeyKind::Rsa3072] {
            for index in 0..kind.count() {
                let PoolKey::Rsa(key) = pool.key(kind, index).0 else { panic!("{kind:?} is not RSA") };
                let pair = key.aws.as_ref().expect("aws-lc takes keys of 2048 bits and more");
                for (hash, encoding) in [
                    (Hash::Sha256, &aws_lc_rs::signature::RSA_PKCS1_SHA256),
                    (Hash::Sha384, &aws_lc_rs::signature::RSA_PKCS1_SHA384),
                    (Hash::Sha512, &aws_lc_rs::signature::RSA_PKCS1_SHA512),
                ] {
                    let mut aws = vec![0u8; pair.public_modulus_len()];
                    pair.sign(encoding, &aws_lc_rs::rand::SystemRandom::new(), message, &mut aws).expect("aws-lc");
                    let rustcrypto = key.sign(hash.pkcs1(), &hash.digest(message)).expect("rsa");
                    assert_eq!(aws, rustcrypto, "{kind:?} {hash:?}");
                }
            }
        }
        let PoolKey::Rsa(small) = pool.key(KeyKind::Rsa1024, 0).0 else { panic!("RSA-1024 is not RSA") };
        assert!(small.aws.is_none(), "aws-lc refuses keys under 2048 bits");
    }

    #[test]
    fn each_key_form_rewrites_the_keys_it_applies_to() {
        use super::super::KeyForm;
        use der::Tagged as _;
        let pool = Pool::get().expect("pool");
        let point_of = |der: &[u8]| {
            let info = spki::SubjectPublicKeyInfoRef::from_der(der).expect("an SPKI");
            (info.algorithm.parameters.map(|p| p.tag()), info.subject_public_key.raw_bytes().to_vec())
        };
        let (_, p256) = pool.key(KeyKind::P256, 0);
        let (_, uncompressed) = point_of(p256);
        let odd = uncompressed[64] & 1;
        let (_, compressed) = point_of(&in_form(p256, KeyForm::Compressed).expect("compressed"));
        assert_eq!(compressed, [&[0x02 | odd][..], &uncompressed[1..33]].concat());
        let (_, hybrid) = point_of(&in_form(p256, KeyForm::Hybrid).expect("hybrid"));
        assert_eq!(hybrid, [&[0x06 | odd][..], &uncompressed[1..]].concat());
        let (_, off) = point_of(&in_form(p256, KeyForm::Undecodable).expect("off the curve"));
        assert_eq!(off[..64], uncompressed[..64]);
        assert_eq!(off[64], uncompressed[64] ^ 1);
        let (_, ed25519) = pool.key(KeyKind::Ed25519, 0);
        let (params, _) = point_of(&in_form(ed25519, KeyForm::Undecodable).expect("with NULL"));
        assert_eq!(params, Some(der::Tag::Null));
        assert_eq!(in_form(ed25519, KeyForm::Compressed).expect("as it was"), ed25519);
        let (_, rsa) = pool.key(KeyKind::Rsa2048, 0);
        let (_, set) = point_of(&in_form(rsa, KeyForm::Undecodable).expect("under a SET"));
        assert_eq!(set[0], 0x31);
        let (_, dsa) = pool.key(KeyKind::Dsa2048, 0);
        assert_eq!(in_form(dsa, KeyForm::Undecodable).expect("as it was"), dsa);
    }
}
