//! Generated certificate chains for differential runs against the real OpenSSL
//! (`cargo xtask fuzz chain`): a [`ChainSpec`] drawn by proptest ([`chain_spec`]), deterministic
//! from the runner's seed and shrinkable, built into DER by [`build`] with RustCrypto's
//! `x509-cert` and signed with `rsa`, `p256`/`p384`/`p521`, `ed25519-dalek` and `dsa` over keys
//! from a fixed pool (`keys.rs`).
//!
//! It emits what rcgen cannot: any signature algorithm (MD5, SHA-1, RSA-PSS with SHA-1, DSA,
//! ECDSA with any hash on any curve), a signature algorithm that does not fit the issuer's key,
//! explicit EC parameters, X25519/X448/Ed448 keys, extensions absent, critical, duplicated or
//! malformed (OpenSSL then caches the certificate as `EXFLAG_INVALID`), unknown critical
//! extensions, version 1 certificates, SKI/AKI mismatches, name constraints, and the order and
//! extras of what a server sends.

mod keys;

use std::collections::BTreeSet;

use der::Encode as _;
use der::asn1::{BitString, Ia5String, ObjectIdentifier as Oid, OctetString};
use proptest::prelude::*;
use x509_cert::ext::pkix::name::GeneralName;

pub use keys::{KeyKind, explicit_ec_spki};

/// The SPKI (DER) of a pool key.
pub fn pool_spki(kind: KeyKind, index: usize) -> Result<Vec<u8>, GenError> {
    Ok(Pool::get()?.key(kind, index).1.to_vec())
}
use keys::{Pool, PoolKey};

/// The pool's RSA-2048 key `index` (for the model's tests of signatures the generator makes).
#[cfg(test)]
pub(crate) fn pool_rsa_2048(index: usize) -> Result<rsa::RsaPrivateKey, GenError> {
    match Pool::get()?.key(KeyKind::Rsa2048, index).0 {
        PoolKey::Rsa(key) => Ok(key.private.clone()),
        _ => Err(GenError::Pool("the RSA-2048 slot holds another key type".into())),
    }
}

/// A fault of the generator (never a verdict).
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// The key pool did not load.
    #[error("chain generator key pool: {0}")]
    Pool(String),
    /// A DER encoding failed.
    #[error("chain generator DER: {0}")]
    Der(#[from] der::Error),
    /// An SPKI did not decode.
    #[error("chain generator SPKI: {0}")]
    Spki(#[from] spki::Error),
    /// A signature could not be made.
    #[error("chain generator signature: {0}")]
    Sign(String),
}

/// The validation time of every generated chain (2027-01-15).
pub const NOW: i64 = 1_800_000_000;

pub use super::signature::Hash;

/// The signature scheme a certificate's issuer uses, as far as the issuer's key allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigSpec {
    /// What fits the issuer's key (PKCS #1 for RSA), with this hash (Ed25519 ignores it; DSA
    /// and ECDSA fall back to SHA-256 when the hash cannot be used with that key).
    Natural(Hash),
    /// RSA-PSS (an RSA key only; otherwise natural), MGF1 with the same hash, salt as long as the
    /// hash.
    Pss(Hash),
    /// RSA-PSS whose MGF1 uses the second hash (SHA-1 to SHA-512, not the first): OpenSSL reads
    /// MGF1's hash from its own parameter.
    PssMgf1(Hash, Hash),
    /// A signature algorithm of another key family than the issuer's (an Ed25519 OID on an RSA
    /// issuer, ...), with a signature that cannot verify.
    Mismatched,
    /// What fits the issuer's key, written with NULL parameters where RFC 8410 says absent: for
    /// an Ed25519 or Ed448 issuer (1.1.1's `ecd_item_verify` refuses it, 3.0 does not look);
    /// natural for any other.
    EddsaWithNull(Hash),
}

/// How a certificate's public key is written in its SubjectPublicKeyInfo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyForm {
    /// As the key's type is usually written (an EC point uncompressed).
    Standard,
    /// An EC point compressed (`02`/`03` || x); other keys standard.
    Compressed,
    /// An EC point hybrid (`06`/`07` || x || y); other keys standard.
    Hybrid,
    /// A key OpenSSL cannot decode (`X509_get0_pubkey` is NULL), on a CA only: an EC point off
    /// its curve, NULL parameters on an EdDSA or X key, an RSAPublicKey under a SET tag. DSA
    /// keys stay standard.
    Undecodable,
}

/// How one extension appears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExtState {
    /// Not there.
    Absent,
    /// Once, not critical.
    Plain,
    /// Once, critical.
    Critical,
    /// Twice (OpenSSL: `EXFLAG_INVALID`).
    Duplicated,
    /// Once, with a value that does not decode (OpenSSL: `EXFLAG_INVALID` for the extensions it
    /// caches).
    Malformed,
}

impl ExtState {
    fn name(self) -> &'static str {
        match self {
            ExtState::Absent => "absent",
            ExtState::Plain => "plain",
            ExtState::Critical => "critical",
            ExtState::Duplicated => "duplicated",
            ExtState::Malformed => "malformed",
        }
    }
}

/// basicConstraints' content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BcSpec {
    /// How it appears.
    pub state: ExtState,
    /// cA.
    pub ca: bool,
    /// pathLenConstraint.
    pub path_len: Option<u8>,
}

/// keyUsage's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KuSpec {
    /// How it appears.
    pub state: ExtState,
    /// keyCertSign.
    pub cert_sign: bool,
    /// digitalSignature.
    pub digital_signature: bool,
    /// keyEncipherment.
    pub key_encipherment: bool,
}

/// extendedKeyUsage's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EkuContent {
    /// serverAuth.
    ServerAuth,
    /// clientAuth only.
    ClientAuth,
    /// anyExtendedKeyUsage only.
    Any,
}

/// The subject key identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkiSpec {
    /// None.
    Absent,
    /// SHA-1 of the key, as usual.
    Proper,
    /// A fixed identifier that no AKID names.
    Other,
    /// Critical.
    Critical,
    /// Twice.
    Duplicated,
    /// Not an OCTET STRING.
    Malformed,
}

/// The authority key identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AkiSpec {
    /// None.
    Absent,
    /// The issuer's SKI (or SHA-1 of its key if it has none).
    Proper,
    /// A key identifier no certificate has.
    Mismatch,
    /// The issuer's SKI with the issuer's issuer and serial, matching.
    WithIssuerSerial,
    /// The issuer's SKI with a wrong serial.
    WrongSerial,
    /// Critical.
    Critical,
    /// Twice.
    Duplicated,
    /// Not a SEQUENCE.
    Malformed,
}

/// subjectAltName of a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SanSpec {
    /// None.
    Absent,
    /// `DNS:<cn>.corp.example`.
    Dns,
    /// `DNS:other.example`.
    DnsOutside,
    /// `IP:10.0.0.5`.
    Ip,
    /// `email:a@corp.example`.
    Email,
    /// An empty SEQUENCE (OpenSSL refuses to decode it? it decodes; kept as an edge).
    Empty,
    /// Twice.
    Duplicated,
    /// Does not decode.
    Malformed,
    /// Critical, DNS.
    Critical,
    /// `IP:` of five bytes (53 under IP constraints).
    IpBadLength,
    /// `email:` without `@` (53 under email constraints).
    EmailNoAt,
    /// otherName: a Microsoft UPN `a@corp.example` (51 under otherName constraints of the same
    /// OID; 1.1.1 also under those of any other OID).
    Upn,
    /// otherName: an SmtpUTF8Mailbox `a@corp.example` (3.0 holds it against email constraints,
    /// RFC 8398; 1.1.1 against otherName ones).
    SmtpUtf8,
    /// registeredID (51 under registeredID constraints).
    RegisteredId,
    /// ediPartyName (51 under ediPartyName constraints).
    EdiParty,
}

/// nameConstraints of a CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NcSpec {
    /// None.
    Absent,
    /// permitted DNS `.corp.example` (and, critical as RFC 5280 asks).
    PermitDns,
    /// excluded DNS `bad.corp.example`.
    ExcludeDns,
    /// permitted IP 10.0.0.0/8.
    PermitIp,
    /// permitted email `corp.example`.
    PermitEmail,
    /// A subtree with a maximum (49).
    WithMaximum,
    /// Does not decode.
    Malformed,
    /// permitted DNS `.corp.example` with a byte after the value, inside the extension's OCTET
    /// STRING: `X509V3_EXT_d2i` reads the value and ignores the rest (both libraries).
    TrailingByte,
    /// Twice.
    Duplicated,
    /// permitted otherName of the UPN's OID (a type OpenSSL does not check: 51).
    PermitUpn,
    /// permitted otherName of a private OID (51 in 1.1.1 for any otherName; 3.0 skips names of
    /// other OIDs).
    PermitOtherOid,
    /// permitted registeredID (51).
    PermitRegisteredId,
    /// excluded ediPartyName (51).
    ExcludeEdiParty,
}

/// Validity of one certificate, relative to [`NOW`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValiditySpec {
    /// A year either side.
    Current,
    /// Ended a day ago.
    Expired,
    /// Starts tomorrow.
    NotYetValid,
    /// notBefore is exactly now (valid).
    StartsNow,
    /// notAfter is exactly now (expired).
    EndsNow,
    /// Both in GeneralizedTime, long-lived (until 2099).
    LongGeneralized,
}

/// Other extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OtherExt {
    /// None.
    None,
    /// A private OID, critical (34 everywhere).
    UnknownCritical,
    /// A private OID, not critical.
    UnknownPlain,
    /// A critical extension some OpenSSL versions handle and some do not.
    CriticalKnown(KnownExt),
}

/// Extensions whose critical handling differs or may differ between the flavours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KnownExt {
    /// issuerAltName.
    IssuerAltName,
    /// cRLDistributionPoints.
    CrlDistributionPoints,
    /// authorityInfoAccess.
    AuthorityInfoAccess,
    /// certificatePolicies (anyPolicy).
    CertificatePolicies,
    /// nsCertType (server).
    NsCertType,
    /// policyConstraints.
    PolicyConstraints,
    /// inhibitAnyPolicy.
    InhibitAnyPolicy,
    /// TLS feature (status_request).
    TlsFeature,
    /// id-pkix-ocsp-nocheck.
    OcspNoCheck,
}

impl KnownExt {
    const ALL: [KnownExt; 9] = [
        KnownExt::OcspNoCheck,
        KnownExt::IssuerAltName,
        KnownExt::CrlDistributionPoints,
        KnownExt::AuthorityInfoAccess,
        KnownExt::CertificatePolicies,
        KnownExt::NsCertType,
        KnownExt::PolicyConstraints,
        KnownExt::InhibitAnyPolicy,
        KnownExt::TlsFeature,
    ];

    fn name(self) -> &'static str {
        match self {
            KnownExt::IssuerAltName => "ian",
            KnownExt::CrlDistributionPoints => "crldp",
            KnownExt::AuthorityInfoAccess => "aia",
            KnownExt::CertificatePolicies => "policies",
            KnownExt::NsCertType => "ns-cert-type",
            KnownExt::PolicyConstraints => "policy-constraints",
            KnownExt::InhibitAnyPolicy => "inhibit-any-policy",
            KnownExt::TlsFeature => "tls-feature",
            KnownExt::OcspNoCheck => "ocsp-nocheck",
        }
    }

    fn oid_and_value(self) -> (&'static str, Vec<u8>) {
        match self {
            // GeneralNames { dNSName "ca.example" }
            KnownExt::IssuerAltName => ("2.5.29.18", tlv(0x30, &tlv(0x82, b"ca.example"))),
            // SEQUENCE { DistributionPoint { [0] { [0] { URI } } } }
            KnownExt::CrlDistributionPoints => {
                ("2.5.29.31", tlv(0x30, &tlv(0x30, &tlv(0xa0, &tlv(0xa0, &tlv(0x86, b"http://crl.example/c"))))))
            }
            // SEQUENCE { AccessDescription { ocsp, URI } }
            KnownExt::AuthorityInfoAccess => (
                "1.3.6.1.5.5.7.1.1",
                tlv(
                    0x30,
                    &tlv(0x30, &[&oid_der("1.3.6.1.5.5.7.48.1")[..], &tlv(0x86, b"http://ocsp.example")].concat()),
                ),
            ),
            // SEQUENCE { PolicyInformation { anyPolicy } }
            KnownExt::CertificatePolicies => ("2.5.29.32", tlv(0x30, &tlv(0x30, &oid_der("2.5.29.32.0")))),
            // BIT STRING: SSL server
            KnownExt::NsCertType => ("2.16.840.1.113730.1.1", vec![0x03, 0x02, 0x06, 0x40]),
            // SEQUENCE { [0] 0 }
            KnownExt::PolicyConstraints => ("2.5.29.36", tlv(0x30, &[0x80, 0x01, 0x00])),
            // INTEGER 0
            KnownExt::InhibitAnyPolicy => ("2.5.29.54", vec![0x02, 0x01, 0x00]),
            // SEQUENCE { INTEGER 5 }
            KnownExt::TlsFeature => ("1.3.6.1.5.5.7.1.24", tlv(0x30, &[0x02, 0x01, 0x05])),
            // NULL
            KnownExt::OcspNoCheck => ("1.3.6.1.5.5.7.48.1.5", vec![0x05, 0x00]),
        }
    }
}

/// How the certificate names its issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IssuerName {
    /// The issuer's subject, as is.
    Exact,
    /// The issuer's subject with the CN in other case and spacing (equal to OpenSSL).
    Canonical,
    /// Another name.
    Wrong,
}

/// One certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertSpec {
    /// Its key.
    pub key: KeyKind,
    /// Which key of that kind in the pool.
    pub key_index: usize,
    /// The key's SPKI with explicit curve parameters (P-256, P-384 and P-521 keys only).
    pub explicit_curve: bool,
    /// How its key is written.
    pub key_form: KeyForm,
    /// The signature its issuer makes on it.
    pub sig: SigSpec,
    /// A flipped bit in the signature.
    pub bad_signature: bool,
    /// Version 1 (no extensions).
    pub version_1: bool,
    /// Validity.
    pub validity: ValiditySpec,
    /// Its own subject equals its issuer's subject (a self-issued intermediate or leaf).
    pub self_issued: bool,
    /// How it names its issuer.
    pub issuer_name: IssuerName,
    /// basicConstraints.
    pub bc: BcSpec,
    /// keyUsage.
    pub ku: KuSpec,
    /// extendedKeyUsage.
    pub eku: (ExtState, EkuContent),
    /// SKI.
    pub ski: SkiSpec,
    /// AKI.
    pub aki: AkiSpec,
    /// SAN.
    pub san: SanSpec,
    /// Name constraints.
    pub nc: NcSpec,
    /// Another extension.
    pub other: OtherExt,
    /// The subject CN is an IP address (name-constraint checks of CNs).
    pub cn_is_ip: bool,
}

/// What the peer sends, beyond the leaf.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerSpec {
    /// Send the root too.
    pub root: bool,
    /// Leave out one intermediate (its index among the intermediates, modulo their count).
    pub drop: Option<usize>,
    /// Reverse the order of what follows the leaf.
    pub reversed: bool,
    /// Send the leaf's issuer twice.
    pub duplicate: bool,
    /// An extra certificate: a twin of the leaf's issuer (same name, another key).
    pub twin: bool,
}

/// What the trust store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrustSpec {
    /// The root.
    Root,
    /// The root and the top intermediate.
    RootAndIntermediate,
    /// The top intermediate only (partial chains are off: not trusted).
    IntermediateOnly,
    /// Nothing.
    Empty,
    /// The root and an unrelated self-signed certificate before it.
    RootAfterStranger,
}

/// One generated case: a chain (root first in `certs`, leaf last), what is sent, what is
/// trusted, and the verification parameters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChainSpec {
    /// Root first, leaf last; each is issued by the one before it (the root by itself).
    pub certs: Vec<CertSpec>,
    /// What the peer sends.
    pub peer: PeerSpec,
    /// What is trusted.
    pub trust: TrustSpec,
    /// Security level 0..=5 (3 to 5 less often: they ask 128, 192 and 256 bits of every key and signature).
    pub security_level: u8,
    /// The ssl_server purpose.
    pub purpose: bool,
    /// Verify depth.
    pub verify_depth: usize,
}

impl ChainSpec {
    /// A root (trusted, not sent) and the leaf it issues, at security level 0.
    pub fn root_and_leaf(root: CertSpec, leaf: CertSpec) -> ChainSpec {
        ChainSpec {
            certs: vec![root, leaf],
            peer: PeerSpec { root: false, drop: None, reversed: false, duplicate: false, twin: false },
            trust: TrustSpec::Root,
            security_level: 0,
            purpose: true,
            verify_depth: 100,
        }
    }
}

/// A built case.
#[derive(Debug, Clone)]
pub struct BuiltChain {
    /// The peer's certificates, leaf first.
    pub peer: Vec<Vec<u8>>,
    /// The trust store.
    pub trusted: Vec<Vec<u8>>,
    /// Validation time.
    pub time: i64,
    /// Security level.
    pub security_level: u8,
    /// The ssl_server purpose.
    pub purpose: bool,
    /// Verify depth.
    pub verify_depth: usize,
    /// The features the case exercises, for the coverage report.
    pub features: BTreeSet<String>,
}

impl BuiltChain {
    /// The peer's certificates and the trust store, as the verifier takes them.
    pub fn ders(&self) -> [Vec<rustls_pki_types::CertificateDer<'_>>; 2] {
        [&self.peer, &self.trusted]
            .map(|v| v.iter().map(|d| rustls_pki_types::CertificateDer::from(d.as_slice())).collect())
    }

    /// The model's input for the case in `flavour`, PERMISSIVE, over [`BuiltChain::ders`].
    pub fn input<'a>(
        &self,
        ders: &'a [Vec<rustls_pki_types::CertificateDer<'a>>; 2],
        flavour: super::OpensslFlavour,
    ) -> super::ChainInput<'a> {
        super::ChainInput {
            peer_chain: &ders[0],
            trusted: &ders[1],
            validation_time: self.time,
            purpose: self.purpose.then_some(super::Purpose::SslServer),
            flavour,
            stop_at_first_error: false,
            security_level: self.security_level,
            verify_depth: self.verify_depth,
        }
    }

    /// A fingerprint of the case as built (certificates and parameters; SHA-256, first 16 hex
    /// digits): a stored sample of generated cases ([`super::oracle::Sample`]) holds it, so that
    /// a generator that no longer draws or builds the same chains is told apart from a model
    /// that changed its verdict.
    pub fn digest(&self) -> String {
        use sha2::Digest as _;
        let mut hash = sha2::Sha256::new();
        for (tag, ders) in [(b'p', &self.peer), (b't', &self.trusted)] {
            for der in ders {
                hash.update([tag]);
                hash.update((der.len() as u64).to_be_bytes());
                hash.update(der);
            }
        }
        hash.update(self.time.to_be_bytes());
        hash.update([self.security_level, u8::from(self.purpose)]);
        hash.update((self.verify_depth as u64).to_be_bytes());
        super::oracle::hex(&hash.finalize()[..8])
    }
}

fn ext_state(weights: [u32; 5]) -> impl Strategy<Value = ExtState> {
    prop_oneof![
        weights[0] => Just(ExtState::Absent),
        weights[1] => Just(ExtState::Plain),
        weights[2] => Just(ExtState::Critical),
        weights[3] => Just(ExtState::Duplicated),
        weights[4] => Just(ExtState::Malformed),
    ]
}

fn hash() -> impl Strategy<Value = Hash> {
    prop_oneof![
        10 => Just(Hash::Sha256),
        2 => Just(Hash::Sha1),
        1 => Just(Hash::Md5),
        1 => Just(Hash::Sha224),
        2 => Just(Hash::Sha384),
        2 => Just(Hash::Sha512),
    ]
}

fn key_kind(leaf: bool) -> impl Strategy<Value = KeyKind> {
    let signers = prop_oneof![
        1 => Just(KeyKind::Rsa512),
        3 => Just(KeyKind::Rsa1024),
        6 => Just(KeyKind::Rsa2048),
        1 => Just(KeyKind::Rsa3072),
        14 => Just(KeyKind::P256),
        5 => Just(KeyKind::P384),
        3 => Just(KeyKind::P521),
        5 => Just(KeyKind::Ed25519),
        2 => Just(KeyKind::Ed448),
        2 => Just(KeyKind::Dsa1024),
        2 => Just(KeyKind::Dsa2048),
    ];
    if leaf {
        // Keys that cannot sign, on leaves only (and now and then on a CA, by the twin).
        prop_oneof![
            44 => signers,
            1 => Just(KeyKind::X25519),
            1 => Just(KeyKind::X448),
        ]
        .boxed()
    } else {
        signers.boxed()
    }
}

fn cert_spec(role: Role) -> impl Strategy<Value = CertSpec> {
    let leaf = role == Role::Leaf;
    let ca = !leaf;
    let bc = (
        if ca { ext_state([3, 30, 30, 2, 2]) } else { ext_state([30, 20, 4, 2, 2]) },
        prop_oneof![if ca { 12 } else { 1 } => Just(true), if ca { 1 } else { 8 } => Just(false)],
        prop_oneof![8 => Just(None), 2 => Just(Some(0u8)), 2 => Just(Some(1u8)), 1 => Just(Some(2u8))],
    )
        .prop_map(|(state, ca, path_len)| BcSpec { state, ca, path_len });
    let ku = (
        ext_state([12, 8, 12, 2, 2]),
        prop_oneof![if ca { 10 } else { 1 } => Just(true), if ca { 1 } else { 10 } => Just(false)],
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(state, cert_sign, digital_signature, key_encipherment)| KuSpec {
            state,
            cert_sign,
            digital_signature,
            key_encipherment,
        });
    let eku = (
        if leaf { ext_state([10, 10, 3, 2, 2]) } else { ext_state([25, 3, 2, 1, 1]) },
        prop_oneof![8 => Just(EkuContent::ServerAuth), 2 => Just(EkuContent::ClientAuth), 1 => Just(EkuContent::Any)],
    );
    let ski = prop_oneof![
        4 => Just(SkiSpec::Absent),
        if ca { 20 } else { 8 } => Just(SkiSpec::Proper),
        1 => Just(SkiSpec::Other),
        1 => Just(SkiSpec::Critical),
        1 => Just(SkiSpec::Duplicated),
        1 => Just(SkiSpec::Malformed),
    ];
    let aki = prop_oneof![
        6 => Just(AkiSpec::Absent),
        20 => Just(AkiSpec::Proper),
        2 => Just(AkiSpec::Mismatch),
        1 => Just(AkiSpec::WithIssuerSerial),
        1 => Just(AkiSpec::WrongSerial),
        1 => Just(AkiSpec::Critical),
        1 => Just(AkiSpec::Duplicated),
        1 => Just(AkiSpec::Malformed),
    ];
    let san = if leaf {
        prop_oneof![
            4 => Just(SanSpec::Absent),
            20 => Just(SanSpec::Dns),
            2 => Just(SanSpec::DnsOutside),
            3 => Just(SanSpec::Ip),
            1 => Just(SanSpec::Email),
            1 => Just(SanSpec::Empty),
            1 => Just(SanSpec::Duplicated),
            1 => Just(SanSpec::Malformed),
            1 => Just(SanSpec::Critical),
            2 => Just(SanSpec::IpBadLength),
            2 => Just(SanSpec::EmailNoAt),
            1 => Just(SanSpec::Upn),
            1 => Just(SanSpec::SmtpUtf8),
            1 => Just(SanSpec::RegisteredId),
            1 => Just(SanSpec::EdiParty),
        ]
        .boxed()
    } else {
        prop_oneof![20 => Just(SanSpec::Absent), 1 => Just(SanSpec::Dns), 1 => Just(SanSpec::Malformed)].boxed()
    };
    let nc = if ca {
        prop_oneof![
            30 => Just(NcSpec::Absent),
            3 => Just(NcSpec::PermitDns),
            1 => Just(NcSpec::ExcludeDns),
            2 => Just(NcSpec::PermitIp),
            1 => Just(NcSpec::PermitEmail),
            1 => Just(NcSpec::WithMaximum),
            1 => Just(NcSpec::Malformed),
            1 => Just(NcSpec::TrailingByte),
            1 => Just(NcSpec::Duplicated),
            1 => Just(NcSpec::PermitUpn),
            1 => Just(NcSpec::PermitOtherOid),
            1 => Just(NcSpec::PermitRegisteredId),
            1 => Just(NcSpec::ExcludeEdiParty),
        ]
        .boxed()
    } else {
        Just(NcSpec::Absent).boxed()
    };
    let other = prop_oneof![
        30 => Just(OtherExt::None),
        1 => Just(OtherExt::UnknownCritical),
        1 => Just(OtherExt::UnknownPlain),
        2 => proptest::sample::select(KnownExt::ALL.to_vec()).prop_map(OtherExt::CriticalKnown),
    ];
    let validity = prop_oneof![
        40 => Just(ValiditySpec::Current),
        2 => Just(ValiditySpec::Expired),
        2 => Just(ValiditySpec::NotYetValid),
        1 => Just(ValiditySpec::StartsNow),
        1 => Just(ValiditySpec::EndsNow),
        2 => Just(ValiditySpec::LongGeneralized),
    ];
    let sig = prop_oneof![
        30 => hash().prop_map(SigSpec::Natural),
        5 => hash().prop_map(SigSpec::Pss),
        2 => (hash(), hash()).prop_map(|(h, mgf1)| SigSpec::PssMgf1(h, mgf1)),
        1 => Just(SigSpec::Mismatched),
        1 => hash().prop_map(SigSpec::EddsaWithNull),
    ];
    let issuer_name =
        prop_oneof![30 => Just(IssuerName::Exact), 2 => Just(IssuerName::Canonical), 1 => Just(IssuerName::Wrong)];
    // A leaf's key that does not decode ends 3.0's X509_verify_cert with -1 and no callback,
    // which the model does not give (tests/data/chain-pending/): CAs only.
    let key_form = prop_oneof![
        40 => Just(KeyForm::Standard),
        1 => Just(KeyForm::Compressed),
        1 => Just(KeyForm::Hybrid),
        if leaf { 0 } else { 1 } => Just(KeyForm::Undecodable),
    ];
    (
        proptest::bool::weighted(0.45),
        // Boxed: the whole tuple's value tree inline overflows a test thread's stack in a debug build.
        (key_kind(leaf), 0..2usize, proptest::bool::weighted(0.05), sig, proptest::bool::weighted(0.03), key_form)
            .boxed(),
        (
            proptest::bool::weighted(0.04),
            validity,
            proptest::bool::weighted(if role == Role::Intermediate { 0.05 } else { 0.02 }),
            issuer_name,
        ),
        (bc, ku, eku, ski, aki, san, nc, other, proptest::bool::weighted(if leaf { 0.05 } else { 0.0 })),
    )
        .prop_map(
            move |(
                perturbed,
                (key, key_index, explicit_curve, sig, bad_signature, key_form),
                (version_1, validity, self_issued, issuer_name),
                (bc, ku, eku, ski, aki, san, nc, other, cn_is_ip),
            )| {
                CertSpec {
                    key,
                    key_index,
                    explicit_curve: explicit_curve && matches!(key, KeyKind::P256 | KeyKind::P384 | KeyKind::P521),
                    key_form,
                    sig,
                    bad_signature,
                    version_1,
                    validity,
                    self_issued: self_issued && role != Role::Root,
                    issuer_name: if role == Role::Root { IssuerName::Exact } else { issuer_name },
                    bc,
                    ku,
                    eku,
                    ski,
                    aki,
                    san,
                    nc,
                    other,
                    cn_is_ip,
                }
                .standard_unless(perturbed, role)
            },
        )
}

impl CertSpec {
    /// A root CA (`ca`) or a TLS server certificate as usually issued, with `key`, signed by its
    /// issuer with `sig`; a leaf names itself in a DNS SAN.
    pub fn standard(key: KeyKind, sig: SigSpec, ca: bool) -> CertSpec {
        CertSpec {
            key,
            key_index: 0,
            explicit_curve: false,
            key_form: KeyForm::Standard,
            sig,
            bad_signature: false,
            version_1: false,
            validity: ValiditySpec::Current,
            self_issued: false,
            issuer_name: IssuerName::Exact,
            bc: BcSpec { state: if ca { ExtState::Critical } else { ExtState::Absent }, ca, path_len: None },
            ku: KuSpec { state: ExtState::Critical, cert_sign: ca, digital_signature: true, key_encipherment: !ca },
            eku: (if ca { ExtState::Absent } else { ExtState::Plain }, EkuContent::ServerAuth),
            ski: SkiSpec::Proper,
            aki: if ca { AkiSpec::Absent } else { AkiSpec::Proper },
            san: if ca { SanSpec::Absent } else { SanSpec::Dns },
            nc: NcSpec::Absent,
            other: OtherExt::None,
            cn_is_ip: false,
        }
    }

    /// The certificate as a CA or a TLS server certificate is usually issued (keeping its key
    /// and signature), unless `perturbed`: so that about half the certificates of a case carry
    /// oddities and whole chains still verify often enough to reach the later checks. Shrinking
    /// moves towards the standard form.
    fn standard_unless(self, perturbed: bool, role: Role) -> CertSpec {
        if perturbed {
            return self;
        }
        let ca = role != Role::Leaf;
        CertSpec {
            key_index: self.key_index,
            aki: if role == Role::Root { AkiSpec::Absent } else { AkiSpec::Proper },
            // Well-formed names and constraints are part of the standard form: an enterprise CA
            // constrained to .corp.example (the CUCM field case) and the names its leaves carry.
            san: match (ca, self.san) {
                (true, _) => SanSpec::Absent,
                (
                    false,
                    san @ (SanSpec::Dns
                    | SanSpec::DnsOutside
                    | SanSpec::Ip
                    | SanSpec::Email
                    | SanSpec::Upn
                    | SanSpec::SmtpUtf8
                    | SanSpec::RegisteredId
                    | SanSpec::EdiParty),
                ) => san,
                (false, _) => SanSpec::Dns,
            },
            nc: match self.nc {
                nc @ (NcSpec::PermitDns
                | NcSpec::ExcludeDns
                | NcSpec::PermitIp
                | NcSpec::PermitEmail
                | NcSpec::PermitUpn
                | NcSpec::PermitOtherOid
                | NcSpec::PermitRegisteredId
                | NcSpec::ExcludeEdiParty) => nc,
                _ => NcSpec::Absent,
            },
            cn_is_ip: self.cn_is_ip,
            ..CertSpec::standard(
                self.key,
                match self.sig {
                    SigSpec::Mismatched => SigSpec::Natural(Hash::Sha256),
                    SigSpec::EddsaWithNull(h) => SigSpec::Natural(h),
                    other => other,
                },
                ca,
            )
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Root,
    Intermediate,
    Leaf,
}

/// The proptest strategy of a whole case.
pub fn chain_spec() -> impl Strategy<Value = ChainSpec> {
    let intermediates = prop_oneof![3 => Just(0usize), 6 => Just(1usize), 3 => Just(2usize), 1 => Just(3usize)];
    let peer = (
        proptest::bool::weighted(0.3),
        proptest::option::weighted(0.05, 0..3usize),
        proptest::bool::weighted(0.2),
        proptest::bool::weighted(0.05),
        proptest::bool::weighted(0.05),
    )
        .prop_map(|(root, drop, reversed, duplicate, twin)| PeerSpec { root, drop, reversed, duplicate, twin });
    let trust = prop_oneof![
        30 => Just(TrustSpec::Root),
        2 => Just(TrustSpec::RootAndIntermediate),
        1 => Just(TrustSpec::IntermediateOnly),
        1 => Just(TrustSpec::Empty),
        1 => Just(TrustSpec::RootAfterStranger),
    ];
    (
        cert_spec(Role::Root),
        intermediates.prop_flat_map(|n| proptest::collection::vec(cert_spec(Role::Intermediate), n..=n)),
        cert_spec(Role::Leaf),
        peer,
        trust,
        prop_oneof![4 => Just(0u8), 4 => Just(1u8), 3 => Just(2u8), 1 => Just(3u8), 1 => Just(4u8), 1 => Just(5u8)],
        proptest::bool::weighted(0.8),
        prop_oneof![20 => Just(100usize), 1 => Just(0usize), 1 => Just(1usize), 1 => Just(2usize)],
        proptest::bool::weighted(0.04),
    )
        .prop_map(|(root, intermediates, leaf, peer, trust, security_level, purpose, verify_depth, lone)| {
            // A lone self-signed leaf (18 unless it is trusted), else root, intermediates, leaf.
            let mut certs = if lone { Vec::new() } else { vec![root] };
            if !lone {
                certs.extend(intermediates);
            }
            certs.push(leaf);
            ChainSpec { certs, peer, trust, security_level, purpose, verify_depth }
        })
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

/// Microsoft's user principal name (an otherName).
const UPN_OID: &str = "1.3.6.1.4.1.311.20.2.3";
/// RFC 8398's SmtpUTF8Mailbox (an otherName).
const SMTP_UTF8_MAILBOX_OID: &str = "1.3.6.1.5.5.7.8.9";
/// The registeredID the generator names and constrains.
const REGISTERED_ID_OID: &str = "1.3.6.1.4.1.55555.2";

/// `otherName [0] { type-id, value [0] EXPLICIT UTF8String }`.
fn other_name(oid: &str, value: &str) -> Vec<u8> {
    tlv(0xa0, &[oid_der(oid), tlv(0xa0, &tlv(0x0c, value.as_bytes()))].concat())
}

/// `registeredID [8] IMPLICIT OBJECT IDENTIFIER`.
fn registered_id(oid: &str) -> Vec<u8> {
    let mut der = oid_der(oid);
    if let Some(tag) = der.first_mut() {
        *tag = 0x88;
    }
    der
}

/// `ediPartyName [5] { partyName [1] EXPLICIT UTF8String }`.
fn edi_party(party: &str) -> Vec<u8> {
    tlv(0xa5, &tlv(0xa1, &tlv(0x0c, party.as_bytes())))
}

/// nameConstraints with one subtree of `base` (a GeneralName's DER), permitted (`0xa0`) or
/// excluded (`0xa1`).
fn raw_constraint(list: u8, base: &[u8]) -> Vec<u8> {
    tlv(0x30, &tlv(list, &tlv(0x30, base)))
}

fn oid_der(oid: &str) -> Vec<u8> {
    Oid::new_unwrap(oid).to_der().unwrap_or_default()
}

/// One certificate's name: `CN=<cn>, O=mralab fuzz`.
fn name(cn: &str) -> Result<x509_cert::name::Name, GenError> {
    use std::str::FromStr as _;
    x509_cert::name::Name::from_str(&format!("CN={cn},O=mralab fuzz")).map_err(GenError::Der)
}

fn cn_of(index: usize, last: usize, spec: &ChainSpec) -> String {
    let cert = &spec.certs[index];
    if index > 0 && cert.self_issued {
        cn_of(index - 1, last, spec)
    } else if index == 0 && index != last {
        "Fuzz Root".to_string()
    } else if index == last {
        if cert.cn_is_ip { "10.0.0.5".to_string() } else { "cucm.corp.example".to_string() }
    } else {
        format!("Fuzz CA {index}")
    }
}

fn time(offset: i64, generalized: bool) -> Result<x509_cert::time::Time, GenError> {
    let at = std::time::Duration::from_secs(u64::try_from(NOW + offset).unwrap_or(0));
    Ok(if generalized {
        x509_cert::time::Time::GeneralTime(der::asn1::GeneralizedTime::from_unix_duration(at)?)
    } else {
        x509_cert::time::Time::UtcTime(der::asn1::UtcTime::from_unix_duration(at)?)
    })
}

const DAY: i64 = 86_400;

fn validity(spec: ValiditySpec) -> Result<x509_cert::time::Validity, GenError> {
    let (from, to, generalized) = match spec {
        ValiditySpec::Current => (-365 * DAY, 365 * DAY, false),
        ValiditySpec::Expired => (-365 * DAY, -DAY, false),
        ValiditySpec::NotYetValid => (DAY, 365 * DAY, false),
        ValiditySpec::StartsNow => (0, 365 * DAY, false),
        ValiditySpec::EndsNow => (-365 * DAY, 0, false),
        ValiditySpec::LongGeneralized => (-365 * DAY, 4_070_908_800 - NOW, true),
    };
    Ok(x509_cert::time::Validity { not_before: time(from, generalized)?, not_after: time(to, generalized)? })
}

fn sha1_of_key(spki: &[u8]) -> Vec<u8> {
    use sha1::Digest as _;
    match spki::SubjectPublicKeyInfoRef::try_from(spki) {
        Ok(info) => sha1::Sha1::digest(info.subject_public_key.raw_bytes()).to_vec(),
        Err(_) => sha1::Sha1::digest(spki).to_vec(),
    }
}

struct Issuer<'p> {
    name: x509_cert::name::Name,
    issuer_name: x509_cert::name::Name,
    serial: Vec<u8>,
    key: &'p PoolKey,
    /// The SPKI of `key` as the pool holds it (the signature cache's name for the key).
    spki: &'p [u8],
    kind: KeyKind,
    key_id: Vec<u8>,
}

fn ext(exts: &mut Vec<x509_cert::ext::Extension>, oid: &str, critical: bool, value: Vec<u8>) -> Result<(), GenError> {
    exts.push(x509_cert::ext::Extension {
        extn_id: Oid::new_unwrap(oid),
        critical,
        extn_value: OctetString::new(value)?,
    });
    Ok(())
}

/// Adds an extension as `state` says, with `malformed` as the undecodable value.
fn ext_by_state(
    exts: &mut Vec<x509_cert::ext::Extension>,
    oid: &str,
    state: ExtState,
    value: Vec<u8>,
    malformed: Vec<u8>,
) -> Result<(), GenError> {
    match state {
        ExtState::Absent => Ok(()),
        ExtState::Plain => ext(exts, oid, false, value),
        ExtState::Critical => ext(exts, oid, true, value),
        ExtState::Duplicated => {
            ext(exts, oid, false, value.clone())?;
            ext(exts, oid, false, value)
        }
        ExtState::Malformed => ext(exts, oid, false, malformed),
    }
}

fn ia5(text: &str) -> Result<Ia5String, GenError> {
    Ok(Ia5String::new(text)?)
}

fn general_names_der(names: Vec<GeneralName>) -> Result<Vec<u8>, GenError> {
    Ok(names.to_der()?)
}

fn extensions(
    cert: &CertSpec,
    own_key_id: &[u8],
    issuer: &Issuer<'_>,
    features: &mut BTreeSet<String>,
) -> Result<Vec<x509_cert::ext::Extension>, GenError> {
    use x509_cert::ext::pkix;
    let mut exts = Vec::new();
    // A truncated SEQUENCE: no OpenSSL decoder takes it.
    let truncated = vec![0x30, 0x03, 0x01, 0x01];

    let bc = pkix::BasicConstraints { ca: cert.bc.ca, path_len_constraint: cert.bc.path_len }.to_der()?;
    ext_by_state(&mut exts, "2.5.29.19", cert.bc.state, bc, truncated.clone())?;
    if cert.bc.state != ExtState::Absent {
        features.insert(format!(
            "bc:{}{}",
            if cert.bc.ca { "ca" } else { "leaf" },
            cert.bc.path_len.map(|p| format!("-pathlen{p}")).unwrap_or_default()
        ));
    }

    let mut flags = der::flagset::FlagSet::<pkix::KeyUsages>::default();
    if cert.ku.cert_sign {
        flags |= pkix::KeyUsages::KeyCertSign;
    }
    if cert.ku.digital_signature {
        flags |= pkix::KeyUsages::DigitalSignature;
    }
    if cert.ku.key_encipherment {
        flags |= pkix::KeyUsages::KeyEncipherment;
    }
    let ku = pkix::KeyUsage(flags).to_der()?;
    ext_by_state(&mut exts, "2.5.29.15", cert.ku.state, ku, vec![0x04, 0x01, 0x00])?;
    if cert.ku.state != ExtState::Absent {
        features.insert(format!(
            "ku:{}{}{}",
            if cert.ku.cert_sign { "S" } else { "-" },
            if cert.ku.digital_signature { "D" } else { "-" },
            if cert.ku.key_encipherment { "E" } else { "-" }
        ));
    }

    let eku_oids = match cert.eku.1 {
        EkuContent::ServerAuth => vec![Oid::new_unwrap("1.3.6.1.5.5.7.3.1"), Oid::new_unwrap("1.3.6.1.5.5.7.3.2")],
        EkuContent::ClientAuth => vec![Oid::new_unwrap("1.3.6.1.5.5.7.3.2")],
        EkuContent::Any => vec![Oid::new_unwrap("2.5.29.37.0")],
    };
    let eku = pkix::ExtendedKeyUsage(eku_oids).to_der()?;
    ext_by_state(&mut exts, "2.5.29.37", cert.eku.0, eku, truncated.clone())?;
    if cert.eku.0 != ExtState::Absent {
        features.insert(format!("eku:{:?}", cert.eku.1).to_lowercase());
    }

    let ski_value = OctetString::new(own_key_id.to_vec())?.to_der()?;
    match cert.ski {
        SkiSpec::Absent => {}
        SkiSpec::Proper => ext(&mut exts, "2.5.29.14", false, ski_value)?,
        SkiSpec::Other => ext(&mut exts, "2.5.29.14", false, OctetString::new(vec![0xab; 20])?.to_der()?)?,
        SkiSpec::Critical => ext(&mut exts, "2.5.29.14", true, ski_value)?,
        SkiSpec::Duplicated => {
            ext(&mut exts, "2.5.29.14", false, ski_value.clone())?;
            ext(&mut exts, "2.5.29.14", false, ski_value)?;
        }
        SkiSpec::Malformed => ext(&mut exts, "2.5.29.14", false, vec![0x02, 0x01, 0x05])?,
    }

    let aki_plain = pkix::AuthorityKeyIdentifier {
        key_identifier: Some(OctetString::new(issuer.key_id.clone())?),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    }
    .to_der()?;
    match cert.aki {
        AkiSpec::Absent => {}
        AkiSpec::Proper => ext(&mut exts, "2.5.29.35", false, aki_plain)?,
        AkiSpec::Mismatch => {
            let value = pkix::AuthorityKeyIdentifier {
                key_identifier: Some(OctetString::new(vec![0xcd; 20])?),
                authority_cert_issuer: None,
                authority_cert_serial_number: None,
            }
            .to_der()?;
            ext(&mut exts, "2.5.29.35", false, value)?;
        }
        AkiSpec::WithIssuerSerial | AkiSpec::WrongSerial => {
            let serial = if cert.aki == AkiSpec::WrongSerial { vec![0x7f, 0x01] } else { issuer.serial.clone() };
            let value = pkix::AuthorityKeyIdentifier {
                key_identifier: Some(OctetString::new(issuer.key_id.clone())?),
                authority_cert_issuer: Some(vec![GeneralName::DirectoryName(issuer.issuer_name.clone())]),
                authority_cert_serial_number: Some(x509_cert::serial_number::SerialNumber::new(&serial)?),
            }
            .to_der()?;
            ext(&mut exts, "2.5.29.35", false, value)?;
        }
        AkiSpec::Critical => ext(&mut exts, "2.5.29.35", true, aki_plain)?,
        AkiSpec::Duplicated => {
            ext(&mut exts, "2.5.29.35", false, aki_plain.clone())?;
            ext(&mut exts, "2.5.29.35", false, aki_plain)?;
        }
        AkiSpec::Malformed => ext(&mut exts, "2.5.29.35", false, vec![0x04, 0x01, 0x00])?,
    }

    let dns = general_names_der(vec![GeneralName::DnsName(ia5("cucm.corp.example")?)])?;
    match cert.san {
        SanSpec::Absent => {}
        SanSpec::Dns => ext(&mut exts, "2.5.29.17", false, dns)?,
        SanSpec::DnsOutside => {
            ext(&mut exts, "2.5.29.17", false, general_names_der(vec![GeneralName::DnsName(ia5("other.example")?)])?)?
        }
        SanSpec::Ip => ext(
            &mut exts,
            "2.5.29.17",
            false,
            general_names_der(vec![GeneralName::IpAddress(OctetString::new(vec![10, 0, 0, 5])?)])?,
        )?,
        SanSpec::Email => ext(
            &mut exts,
            "2.5.29.17",
            false,
            general_names_der(vec![GeneralName::Rfc822Name(ia5("a@corp.example")?)])?,
        )?,
        SanSpec::Empty => ext(&mut exts, "2.5.29.17", false, vec![0x30, 0x00])?,
        SanSpec::Duplicated => {
            ext(&mut exts, "2.5.29.17", false, dns.clone())?;
            ext(&mut exts, "2.5.29.17", false, dns)?;
        }
        SanSpec::Malformed => ext(&mut exts, "2.5.29.17", false, truncated.clone())?,
        SanSpec::Critical => ext(&mut exts, "2.5.29.17", true, dns)?,
        SanSpec::IpBadLength => ext(
            &mut exts,
            "2.5.29.17",
            false,
            general_names_der(vec![GeneralName::IpAddress(OctetString::new(vec![10, 0, 0, 5, 1])?)])?,
        )?,
        SanSpec::EmailNoAt => {
            ext(&mut exts, "2.5.29.17", false, general_names_der(vec![GeneralName::Rfc822Name(ia5("corp.example")?)])?)?
        }
        SanSpec::Upn => ext(&mut exts, "2.5.29.17", false, tlv(0x30, &other_name(UPN_OID, "a@corp.example")))?,
        SanSpec::SmtpUtf8 => {
            ext(&mut exts, "2.5.29.17", false, tlv(0x30, &other_name(SMTP_UTF8_MAILBOX_OID, "a@corp.example")))?
        }
        SanSpec::RegisteredId => ext(&mut exts, "2.5.29.17", false, tlv(0x30, &registered_id(REGISTERED_ID_OID)))?,
        SanSpec::EdiParty => ext(&mut exts, "2.5.29.17", false, tlv(0x30, &edi_party("corp")))?,
    }

    let subtree =
        |base: GeneralName, maximum: Option<u32>| pkix::constraints::name::GeneralSubtree { base, minimum: 0, maximum };
    let nc_permit_dns = pkix::NameConstraints {
        permitted_subtrees: Some(vec![subtree(GeneralName::DnsName(ia5(".corp.example")?), None)]),
        excluded_subtrees: None,
    }
    .to_der()?;
    match cert.nc {
        NcSpec::Absent => {}
        NcSpec::PermitDns => ext(&mut exts, "2.5.29.30", true, nc_permit_dns)?,
        NcSpec::ExcludeDns => {
            let value = pkix::NameConstraints {
                permitted_subtrees: None,
                excluded_subtrees: Some(vec![subtree(GeneralName::DnsName(ia5("cucm.corp.example")?), None)]),
            }
            .to_der()?;
            ext(&mut exts, "2.5.29.30", true, value)?;
        }
        NcSpec::PermitIp => {
            let value = pkix::NameConstraints {
                permitted_subtrees: Some(vec![subtree(
                    GeneralName::IpAddress(OctetString::new(vec![10, 0, 0, 0, 255, 0, 0, 0])?),
                    None,
                )]),
                excluded_subtrees: None,
            }
            .to_der()?;
            ext(&mut exts, "2.5.29.30", true, value)?;
        }
        NcSpec::PermitEmail => {
            let value = pkix::NameConstraints {
                permitted_subtrees: Some(vec![subtree(GeneralName::Rfc822Name(ia5("corp.example")?), None)]),
                excluded_subtrees: None,
            }
            .to_der()?;
            ext(&mut exts, "2.5.29.30", true, value)?;
        }
        NcSpec::WithMaximum => {
            let value = pkix::NameConstraints {
                permitted_subtrees: Some(vec![subtree(GeneralName::DnsName(ia5(".corp.example")?), Some(3))]),
                excluded_subtrees: None,
            }
            .to_der()?;
            ext(&mut exts, "2.5.29.30", true, value)?;
        }
        NcSpec::Malformed => ext(&mut exts, "2.5.29.30", true, truncated.clone())?,
        NcSpec::TrailingByte => ext(&mut exts, "2.5.29.30", true, [&nc_permit_dns[..], &[0x00]].concat())?,
        NcSpec::Duplicated => {
            ext(&mut exts, "2.5.29.30", true, nc_permit_dns.clone())?;
            ext(&mut exts, "2.5.29.30", true, nc_permit_dns)?;
        }
        // Bases of types x509-cert's GeneralSubtree would encode as well, written out so that the
        // bytes are exactly RFC 5280's (otherName's value [0] EXPLICIT, ediPartyName's partyName
        // [1] EXPLICIT).
        NcSpec::PermitUpn => {
            ext(&mut exts, "2.5.29.30", true, raw_constraint(0xa0, &other_name(UPN_OID, "corp.example")))?
        }
        NcSpec::PermitOtherOid => {
            ext(&mut exts, "2.5.29.30", true, raw_constraint(0xa0, &other_name("1.3.6.1.4.1.55555.3", "corp.example")))?
        }
        NcSpec::PermitRegisteredId => {
            ext(&mut exts, "2.5.29.30", true, raw_constraint(0xa0, &registered_id(REGISTERED_ID_OID)))?
        }
        NcSpec::ExcludeEdiParty => ext(&mut exts, "2.5.29.30", true, raw_constraint(0xa1, &edi_party("corp")))?,
    }

    match cert.other {
        OtherExt::None => {}
        OtherExt::UnknownCritical => ext(&mut exts, "1.3.6.1.4.1.55555.1", true, vec![0x05, 0x00])?,
        OtherExt::UnknownPlain => ext(&mut exts, "1.3.6.1.4.1.55555.1", false, vec![0x05, 0x00])?,
        OtherExt::CriticalKnown(known) => {
            let (oid, value) = known.oid_and_value();
            ext(&mut exts, oid, true, value)?;
        }
    }
    Ok(exts)
}

/// The signature algorithm, and the signature over `tbs`, that `issuer` makes as `spec` asks.
type Signer<'p> = Box<dyn Fn(&[u8]) -> Result<Vec<u8>, GenError> + 'p>;

fn sign<'p>(
    spec: SigSpec,
    issuer: &Issuer<'p>,
    features: &mut BTreeSet<String>,
) -> Result<(spki::AlgorithmIdentifierOwned, Signer<'p>), GenError> {
    let alg = |oid: &str, null: bool| spki::AlgorithmIdentifierOwned {
        oid: Oid::new_unwrap(oid),
        parameters: null.then(der::Any::null),
    };
    let fail = |e: &dyn std::fmt::Display| GenError::Sign(e.to_string());
    // EdDSA with NULL parameters (RFC 8410 says absent).
    let null_eddsa = matches!(spec, SigSpec::EddsaWithNull(_));
    let rsa_oid = |h: Hash| match h {
        Hash::Md5 => "1.2.840.113549.1.1.4",
        Hash::Sha1 => "1.2.840.113549.1.1.5",
        Hash::Sha224 => "1.2.840.113549.1.1.14",
        Hash::Sha256 => "1.2.840.113549.1.1.11",
        Hash::Sha384 => "1.2.840.113549.1.1.12",
        Hash::Sha512 => "1.2.840.113549.1.1.13",
    };
    match (spec, issuer.key) {
        (SigSpec::Mismatched, key) => {
            let oid = match key {
                PoolKey::Ed25519(_) | PoolKey::Ed448(_) | PoolKey::Dsa(_) => "1.2.840.113549.1.1.11",
                PoolKey::Rsa(_) => "1.2.840.10045.4.3.2",
                _ => "1.3.101.112",
            };
            features.insert("sig:mismatched".to_string());
            Ok((alg(oid, false), Box::new(|_: &[u8]| Ok(vec![0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]))))
        }
        (SigSpec::Pss(h), PoolKey::Rsa(key)) => {
            let h = if h == Hash::Md5 || h == Hash::Sha224 { Hash::Sha256 } else { h };
            let h = rsa_fit(h, key, true);
            features.insert(format!("sig:rsa-pss-{}", h.name()));
            let params = pss_params(h)?.to_der()?;
            let algorithm = spki::AlgorithmIdentifierOwned {
                oid: Oid::new_unwrap("1.2.840.113549.1.1.10"),
                parameters: Some(der::Any::from_der(&params)?),
            };
            let key: &rsa::RsaPrivateKey = key;
            Ok((
                algorithm,
                Box::new(move |tbs: &[u8]| {
                    use rand_chacha::rand_core::SeedableRng as _;
                    // The salt is fixed by the TBS: the same case gives the same bytes.
                    let mut seed = [0u8; 32];
                    seed.copy_from_slice(&Hash::Sha256.digest(tbs));
                    let mut rng = rand_chacha::ChaCha20Rng::from_seed(seed);
                    let digest = h.digest(tbs);
                    let scheme = h.pss(h.output_len());
                    key.sign_with_rng(&mut rng, scheme, &digest).map_err(|e| fail(&e))
                }),
            ))
        }
        (SigSpec::PssMgf1(h, mgf1), PoolKey::Rsa(key)) => {
            let h = if h == Hash::Md5 || h == Hash::Sha224 { Hash::Sha256 } else { h };
            let h = rsa_fit(h, key, true);
            // Another hash than the message's, that the key can hold beside it.
            let mgf1 =
                [mgf1, Hash::Sha1, Hash::Sha256].into_iter().find(|m| *m != h && *m != Hash::Md5).unwrap_or(Hash::Sha1);
            features.insert(format!("sig:rsa-pss-{}-mgf1-{}", h.name(), mgf1.name()));
            let mut params = pss_params(h)?;
            params.mask_gen = match mgf1 {
                Hash::Sha224 => rsa::pkcs1::RsaPssParams::new::<sha2::Sha224>(0).mask_gen,
                Hash::Sha256 => rsa::pkcs1::RsaPssParams::new::<sha2::Sha256>(0).mask_gen,
                Hash::Sha384 => rsa::pkcs1::RsaPssParams::new::<sha2::Sha384>(0).mask_gen,
                Hash::Sha512 => rsa::pkcs1::RsaPssParams::new::<sha2::Sha512>(0).mask_gen,
                _ => rsa::pkcs1::RsaPssParams::new::<sha1::Sha1>(0).mask_gen,
            };
            let algorithm = spki::AlgorithmIdentifierOwned {
                oid: Oid::new_unwrap("1.2.840.113549.1.1.10"),
                parameters: Some(der::Any::from_der(&params.to_der()?)?),
            };
            let key: &rsa::RsaPrivateKey = key;
            Ok((algorithm, Box::new(move |tbs: &[u8]| pss_sign_mgf1(key, tbs, h, mgf1))))
        }
        (SigSpec::Natural(h), PoolKey::Rsa(key)) => {
            let h = rsa_fit(h, key, false);
            features.insert(format!("sig:rsa-{}", h.name()));
            let key: &keys::RsaKey = key;
            Ok((
                alg(rsa_oid(h), true),
                Box::new(move |tbs: &[u8]| {
                    let encoding: Option<&'static dyn aws_lc_rs::signature::RsaEncoding> = match h {
                        Hash::Sha256 => Some(&aws_lc_rs::signature::RSA_PKCS1_SHA256),
                        Hash::Sha384 => Some(&aws_lc_rs::signature::RSA_PKCS1_SHA384),
                        Hash::Sha512 => Some(&aws_lc_rs::signature::RSA_PKCS1_SHA512),
                        _ => None,
                    };
                    if let (Some(pair), Some(encoding)) = (&key.aws, encoding) {
                        // Deterministic: the random source is never read for PKCS #1 v1.5.
                        let mut signature = vec![0u8; pair.public_modulus_len()];
                        pair.sign(encoding, &aws_lc_rs::rand::SystemRandom::new(), tbs, &mut signature)
                            .map_err(|e| fail(&e))?;
                        return Ok(signature);
                    }
                    let digest = h.digest(tbs);
                    key.sign(h.pkcs1(), &digest).map_err(|e| fail(&e))
                }),
            ))
        }
        (
            SigSpec::Natural(h) | SigSpec::Pss(h) | SigSpec::PssMgf1(h, _),
            PoolKey::P256(_) | PoolKey::P384(_) | PoolKey::P521(_),
        ) => {
            // ecdsa refuses a digest shorter than half the field; MD5 has no ECDSA OID.
            let min = match issuer.kind {
                KeyKind::P384 => Hash::Sha224,
                KeyKind::P521 => Hash::Sha384,
                _ => Hash::Sha1,
            };
            let h = if h == Hash::Md5 || h < min {
                if issuer.kind == KeyKind::P521 { Hash::Sha512 } else { Hash::Sha256 }
            } else {
                h
            };
            let h = if issuer.kind == KeyKind::P384 && h < Hash::Sha256 { Hash::Sha384 } else { h };
            features.insert(format!("sig:ecdsa-{}-{}", issuer.kind.name(), h.name()));
            let oid = match h {
                Hash::Sha1 => "1.2.840.10045.4.1",
                Hash::Sha224 => "1.2.840.10045.4.3.1",
                Hash::Sha384 => "1.2.840.10045.4.3.3",
                Hash::Sha512 => "1.2.840.10045.4.3.4",
                _ => "1.2.840.10045.4.3.2",
            };
            let key = issuer.key;
            Ok((
                alg(oid, false),
                Box::new(move |tbs: &[u8]| {
                    use ecdsa::signature::hazmat::PrehashSigner as _;
                    let digest = h.digest(tbs);
                    match key {
                        PoolKey::P256(k) => {
                            let s: p256::ecdsa::Signature = k.sign_prehash(&digest).map_err(|e| fail(&e))?;
                            Ok(s.to_der().as_bytes().to_vec())
                        }
                        PoolKey::P384(k) => {
                            let s: p384::ecdsa::Signature = k.sign_prehash(&digest).map_err(|e| fail(&e))?;
                            Ok(s.to_der().as_bytes().to_vec())
                        }
                        PoolKey::P521(k) => {
                            use ecdsa::signature::hazmat::RandomizedPrehashSigner as _;
                            use rand_chacha::rand_core::SeedableRng as _;
                            // p521 0.13 signs with a random nonce: a seed from the TBS keeps
                            // the same case byte-identical.
                            let mut seed = [0u8; 32];
                            seed.copy_from_slice(&Hash::Sha256.digest(tbs));
                            let mut rng = rand_chacha::ChaCha20Rng::from_seed(seed);
                            let s: p521::ecdsa::Signature =
                                k.sign_prehash_with_rng(&mut rng, &digest).map_err(|e| fail(&e))?;
                            Ok(s.to_der().as_bytes().to_vec())
                        }
                        _ => Err(GenError::Sign("not an EC key".to_string())),
                    }
                }),
            ))
        }
        (SigSpec::Natural(h) | SigSpec::Pss(h) | SigSpec::PssMgf1(h, _), PoolKey::Dsa(key)) => {
            let h = match h {
                Hash::Sha1 | Hash::Sha224 | Hash::Sha256 => h,
                _ => Hash::Sha256,
            };
            features.insert(format!("sig:dsa-{}", h.name()));
            let oid = match h {
                Hash::Sha1 => "1.2.840.10040.4.3",
                Hash::Sha224 => "2.16.840.1.101.3.4.3.1",
                _ => "2.16.840.1.101.3.4.3.2",
            };
            let key: &dsa::SigningKey = key;
            Ok((
                alg(oid, false),
                Box::new(move |tbs: &[u8]| {
                    let digest = h.digest(tbs);
                    let s = match h {
                        Hash::Sha1 => key.sign_prehashed_rfc6979::<sha1::Sha1>(&digest),
                        Hash::Sha224 => key.sign_prehashed_rfc6979::<sha2::Sha224>(&digest),
                        _ => key.sign_prehashed_rfc6979::<sha2::Sha256>(&digest),
                    }
                    .map_err(|e| fail(&e))?;
                    s.to_der().map_err(GenError::Der)
                }),
            ))
        }
        (
            SigSpec::Natural(_) | SigSpec::Pss(_) | SigSpec::PssMgf1(..) | SigSpec::EddsaWithNull(_),
            PoolKey::Ed25519(key),
        ) => {
            features.insert(format!("sig:ed25519{}", if null_eddsa { "-with-null" } else { "" }));
            Ok((
                alg(keys::ED25519_OID, null_eddsa),
                Box::new(move |tbs: &[u8]| {
                    use ed25519_dalek::Signer as _;
                    Ok(key.sign(tbs).to_bytes().to_vec())
                }),
            ))
        }
        (
            SigSpec::Natural(_) | SigSpec::Pss(_) | SigSpec::PssMgf1(..) | SigSpec::EddsaWithNull(_),
            PoolKey::Ed448(key),
        ) => {
            features.insert(format!("sig:ed448{}", if null_eddsa { "-with-null" } else { "" }));
            let key: &ed448_goldilocks::SigningKey = key;
            Ok((
                alg(keys::ED448_OID, null_eddsa),
                Box::new(move |tbs: &[u8]| Ok(key.sign_raw(tbs).to_bytes().to_vec())),
            ))
        }
        // An issuer of another key type signs as usual.
        (SigSpec::EddsaWithNull(h), _) => sign(SigSpec::Natural(h), issuer, features),
        (SigSpec::Natural(_) | SigSpec::Pss(_) | SigSpec::PssMgf1(..), PoolKey::Raw) => {
            // An X25519/X448 issuer, which cannot sign at all: an EdDSA algorithm, and a signature
            // that cannot verify.
            features.insert("sig:unsignable-issuer".to_string());
            Ok((alg(keys::ED25519_OID, false), Box::new(|_: &[u8]| Ok(vec![0u8; 64]))))
        }
    }
}

/// RSASSA-PSS parameters with `h` for the message and MGF1, and a salt as long as `h`'s output
/// (`h` is SHA-1, SHA-384, SHA-512 or otherwise SHA-256).
fn pss_params(h: Hash) -> Result<rsa::pkcs1::RsaPssParams<'static>, GenError> {
    Ok(match h {
        Hash::Sha1 => rsa::pkcs1::RsaPssParams::new::<sha1::Sha1>(20),
        Hash::Sha384 => rsa::pkcs1::RsaPssParams::new::<sha2::Sha384>(48),
        Hash::Sha512 => rsa::pkcs1::RsaPssParams::new::<sha2::Sha512>(64),
        _ => rsa::pkcs1::RsaPssParams::new::<sha2::Sha256>(32),
    })
}

/// An RSASSA-PSS signature (RFC 8017 8.1.1, EMSA-PSS-ENCODE 9.1.1) whose MGF1 uses `mgf1`, which
/// the `rsa` crate cannot make (it masks with the message's hash): the encoding is made here, the
/// private operation is the crate's. The salt (as long as `h`'s output) is seeded from the TBS.
pub(crate) fn pss_sign_mgf1(key: &rsa::RsaPrivateKey, tbs: &[u8], h: Hash, mgf1: Hash) -> Result<Vec<u8>, GenError> {
    use rand_chacha::rand_core::{RngCore as _, SeedableRng as _};
    use rsa::traits::PublicKeyParts as _;
    let mut seed = [0u8; 32];
    seed.copy_from_slice(&Hash::Sha256.digest(tbs));
    let mut salt = vec![0u8; h.output_len()];
    rand_chacha::ChaCha20Rng::from_seed(seed).fill_bytes(&mut salt);
    let em_bits = key.n().bits() - 1;
    let em = pss_encode(&h.digest(tbs), &salt, h, mgf1, em_bits)
        .ok_or_else(|| GenError::Sign(format!("a {}-bit key cannot hold PSS with {}", em_bits + 1, h.name())))?;
    rsa_private_operation(key, &em)
}

/// EMSA-PSS-ENCODE (RFC 8017 9.1.1) of the message digest `m_hash` with `salt`, the hash `h` and
/// MGF1 with `mgf1`, for `em_bits` (the modulus' bits less one): EM, or `None` when it cannot
/// hold them.
pub(crate) fn pss_encode(m_hash: &[u8], salt: &[u8], h: Hash, mgf1: Hash, em_bits: usize) -> Option<Vec<u8>> {
    let h_len = h.output_len();
    let em_len = em_bits.div_ceil(8);
    let ps_len = em_len.checked_sub(salt.len() + h_len + 2)?;
    let mut m_prime = vec![0u8; 8];
    m_prime.extend_from_slice(m_hash);
    m_prime.extend_from_slice(salt);
    let hashed = h.digest(&m_prime);
    // DB = PS (zeros) || 0x01 || salt, masked with MGF1(H).
    let mut db = vec![0u8; ps_len];
    db.push(0x01);
    db.extend_from_slice(salt);
    for (byte, mask) in db.iter_mut().zip(mgf1.mgf1(&hashed, em_len - h_len - 1)) {
        *byte ^= mask;
    }
    db[0] &= 0xffu8 >> (8 * em_len - em_bits);
    let mut em = db;
    em.extend_from_slice(&hashed);
    em.push(0xbc);
    Some(em)
}

/// RSA's private operation (RSASP1) on `em`, as many bytes as the modulus; an error when `em`
/// is not under it.
pub(crate) fn rsa_private_operation(key: &rsa::RsaPrivateKey, em: &[u8]) -> Result<Vec<u8>, GenError> {
    use rsa::traits::PublicKeyParts as _;
    let s = rsa::hazmat::rsa_decrypt_and_check::<rand_chacha::ChaCha20Rng>(key, None, &rsa::BigUint::from_bytes_be(em))
        .map_err(|e| GenError::Sign(e.to_string()))?;
    let s = s.to_bytes_be();
    let mut signature = vec![0u8; key.size() - s.len()];
    signature.extend_from_slice(&s);
    Ok(signature)
}

/// The hash itself, or a shorter one if the modulus cannot hold it (RSA-512 with SHA-512).
fn rsa_fit(h: Hash, key: &rsa::RsaPrivateKey, pss: bool) -> Hash {
    use rsa::traits::PublicKeyParts as _;
    let k = key.size();
    let fits = |h: Hash| if pss { k >= 2 * h.output_len() + 2 } else { k >= 19 + h.output_len() + 11 };
    if fits(h) {
        h
    } else if fits(Hash::Sha256) {
        Hash::Sha256
    } else {
        Hash::Sha1
    }
}

/// Signatures already made, by signing key and TBS. Every signature the generator makes is a
/// function of the two (PKCS #1 v1.5, RFC 6979 ECDSA and DSA, EdDSA; PSS salts and P-521 nonces
/// are seeded from the TBS), so a cached one is byte for byte the one signing would make again:
/// the cache changes the rate, never a chain. Standard certificates (about half of those drawn)
/// repeat across cases, and so do their signatures. Shared by the threads that build cases.
#[derive(Debug, Default)]
pub struct SignatureCache {
    map: std::sync::Mutex<std::collections::HashMap<[u8; 32], Vec<u8>>>,
    hits: std::sync::atomic::AtomicU64,
    misses: std::sync::atomic::AtomicU64,
}

impl SignatureCache {
    /// Signatures kept at most; the cache starts over when it is full (about 40 MB).
    pub const CAPACITY: usize = 1 << 17;

    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Signatures found in the cache, and signatures made.
    pub fn stats(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.hits.load(Relaxed), self.misses.load(Relaxed))
    }

    fn signature(
        &self,
        spki: &[u8],
        tbs: &[u8],
        make: impl FnOnce() -> Result<Vec<u8>, GenError>,
    ) -> Result<Vec<u8>, GenError> {
        use sha2::Digest as _;
        use std::sync::atomic::Ordering::Relaxed;
        // The TBS holds the signature algorithm; the key is named by its SPKI.
        let key: [u8; 32] = sha2::Sha256::new()
            .chain_update((spki.len() as u64).to_be_bytes())
            .chain_update(spki)
            .chain_update(tbs)
            .finalize()
            .into();
        if let Some(found) = self.map.lock().ok().and_then(|map| map.get(&key).cloned()) {
            self.hits.fetch_add(1, Relaxed);
            return Ok(found);
        }
        self.misses.fetch_add(1, Relaxed);
        let made = make()?;
        if let Ok(mut map) = self.map.lock() {
            if map.len() >= Self::CAPACITY {
                map.clear();
            }
            map.insert(key, made.clone());
        }
        Ok(made)
    }
}

/// The signature `signer` makes over `tbs`, from the cache when there is one.
fn signature_over(
    signer: &Issuer<'_>,
    signer_fn: &Signer<'_>,
    tbs: &[u8],
    cache: Option<&SignatureCache>,
) -> Result<Vec<u8>, GenError> {
    match cache {
        Some(cache) => cache.signature(signer.spki, tbs, || signer_fn(tbs)),
        None => signer_fn(tbs),
    }
}

/// Builds a case's certificates, signing every one.
pub fn build(spec: &ChainSpec) -> Result<BuiltChain, GenError> {
    build_with(spec, None)
}

/// Builds a case's certificates, taking the signatures `cache` already holds (the same bytes as
/// [`build`]).
pub fn build_cached(spec: &ChainSpec, cache: &SignatureCache) -> Result<BuiltChain, GenError> {
    build_with(spec, Some(cache))
}

fn build_with(spec: &ChainSpec, cache: Option<&SignatureCache>) -> Result<BuiltChain, GenError> {
    let pool = Pool::get()?;
    let mut features = BTreeSet::new();
    let last = spec.certs.len() - 1;
    let mut ders: Vec<Vec<u8>> = Vec::new();
    let mut issuer: Option<Issuer<'_>> = None;
    let mut twin: Option<Vec<u8>> = None;
    for (index, cert) in spec.certs.iter().enumerate() {
        let role = if index == 0 {
            "root"
        } else if index == last {
            "leaf"
        } else {
            "ca"
        };
        let (key, named_spki) = pool.key(cert.key, cert.key_index);
        let spki_der = if cert.explicit_curve { keys::explicit_ec_spki(named_spki)? } else { named_spki.to_vec() };
        let spki_der = keys::in_form(&spki_der, cert.key_form)?;
        features.insert(format!("key:{}{}", cert.key.name(), if cert.explicit_curve { "-explicit" } else { "" }));
        if cert.key_form != KeyForm::Standard && spki_der != named_spki {
            features.insert(format!("{role}-key-form:{:?}", cert.key_form).to_lowercase());
        }
        features.insert(format!("{role}-key:{}", cert.key.name()));
        let key_id = sha1_of_key(&spki_der);
        let subject = name(&cn_of(index, last, spec))?;
        let serial = vec![0x10, index as u8 + 1];
        let own = Issuer {
            name: subject.clone(),
            issuer_name: issuer.as_ref().map(|i| i.name.clone()).unwrap_or_else(|| subject.clone()),
            serial: serial.clone(),
            key,
            spki: named_spki,
            kind: cert.key,
            key_id: if cert.ski == SkiSpec::Other { vec![0xab; 20] } else { key_id.clone() },
        };
        let signer = issuer.as_ref().unwrap_or(&own);
        let issuer_field = match (cert.issuer_name, index) {
            (_, 0) | (IssuerName::Exact, _) => signer.name.clone(),
            (IssuerName::Canonical, _) => {
                features.insert("issuer-name:canonical".to_string());
                let cn = cn_of(index - 1, last, spec).to_uppercase();
                let spaced = format!("  {}  ", cn.replace(' ', "   "));
                name(&spaced.replace(',', "\\,"))?
            }
            (IssuerName::Wrong, _) => {
                features.insert("issuer-name:wrong".to_string());
                name("Somebody Else")?
            }
        };
        let (algorithm, signer_fn) = sign(cert.sig, signer, &mut features)?;
        let exts = if cert.version_1 {
            features.insert(format!("{role}:v1"));
            Vec::new()
        } else {
            extensions(cert, &key_id, signer, &mut features)?
        };
        for (what, state) in [("bc", cert.bc.state), ("ku", cert.ku.state), ("eku", cert.eku.0)] {
            if !cert.version_1 {
                features.insert(format!("{role}-{what}:{}", state.name()));
            }
        }
        if !cert.version_1 {
            features.insert(format!("{role}-ski:{:?}", cert.ski).to_lowercase());
            features.insert(format!("{role}-aki:{:?}", cert.aki).to_lowercase());
            features.insert(format!("{role}-san:{:?}", cert.san).to_lowercase());
            features.insert(format!("{role}-nc:{:?}", cert.nc).to_lowercase());
            match cert.other {
                OtherExt::None => {}
                OtherExt::UnknownCritical => {
                    features.insert("ext:unknown-critical".to_string());
                }
                OtherExt::UnknownPlain => {
                    features.insert("ext:unknown-plain".to_string());
                }
                OtherExt::CriticalKnown(k) => {
                    features.insert(format!("ext:critical-{}", k.name()));
                }
            }
        }
        features.insert(format!("validity:{:?}", cert.validity).to_lowercase());
        if cert.self_issued {
            features.insert(format!("{role}:self-issued"));
        }
        if cert.cn_is_ip {
            features.insert("leaf:cn-is-ip".to_string());
        }
        let tbs = x509_cert::TbsCertificate {
            version: if cert.version_1 { x509_cert::Version::V1 } else { x509_cert::Version::V3 },
            serial_number: x509_cert::serial_number::SerialNumber::new(&serial)?,
            signature: algorithm.clone(),
            issuer: issuer_field,
            validity: validity(cert.validity)?,
            subject,
            subject_public_key_info: spki::SubjectPublicKeyInfoOwned::try_from(spki_der.as_slice())?,
            issuer_unique_id: None,
            subject_unique_id: None,
            extensions: (!exts.is_empty()).then_some(exts),
        };
        let tbs_der = tbs.to_der()?;
        let mut signature = signature_over(signer, &signer_fn, &tbs_der, cache)?;
        if cert.bad_signature {
            features.insert("sig:corrupted".to_string());
            if let Some(byte) = signature.last_mut() {
                *byte ^= 1;
            }
        }
        let certificate = x509_cert::Certificate {
            tbs_certificate: tbs,
            signature_algorithm: algorithm,
            signature: BitString::from_bytes(&signature)?,
        };
        ders.push(certificate.to_der()?);
        // The twin of the leaf's issuer: same subject and SKI choice, another key, signed by the
        // same issuer.
        if spec.peer.twin && index + 1 == last {
            let mut twin_spec = cert.clone();
            twin_spec.key = if cert.key == KeyKind::P256 { KeyKind::P384 } else { KeyKind::P256 };
            twin_spec.validity = ValiditySpec::Expired;
            twin = Some(build_twin(&twin_spec, index, &cn_of(index, last, spec), signer, pool, cache, &mut features)?);
        }
        issuer = Some(own);
    }

    let intermediates: Vec<usize> = (1..last).collect();
    let mut peer = vec![ders[last].clone()];
    let mut rest: Vec<Vec<u8>> = Vec::new();
    for (i, &index) in intermediates.iter().rev().enumerate() {
        if spec.peer.drop.is_some_and(|d| !intermediates.is_empty() && d % intermediates.len() == i) {
            features.insert("peer:dropped-intermediate".to_string());
            continue;
        }
        rest.push(ders[index].clone());
    }
    if spec.peer.root {
        features.insert("peer:root".to_string());
        rest.push(ders[0].clone());
    }
    if spec.peer.duplicate && last > 0 {
        features.insert("peer:duplicate".to_string());
        rest.push(ders[last - 1].clone());
    }
    if let Some(twin) = twin {
        features.insert("peer:twin".to_string());
        rest.insert(0, twin);
    }
    if spec.peer.reversed {
        features.insert("peer:reversed".to_string());
        rest.reverse();
    }
    peer.extend(rest);

    let trusted = match spec.trust {
        TrustSpec::Root => vec![ders[0].clone()],
        TrustSpec::RootAndIntermediate => {
            let mut t = vec![ders[0].clone()];
            if last > 1 {
                t.push(ders[1].clone());
            }
            t
        }
        TrustSpec::IntermediateOnly => {
            if last > 1 {
                vec![ders[1].clone()]
            } else {
                Vec::new()
            }
        }
        TrustSpec::Empty => Vec::new(),
        TrustSpec::RootAfterStranger => vec![stranger(pool, cache)?, ders[0].clone()],
    };
    features.insert(format!("trust:{:?}", spec.trust).to_lowercase());
    features.insert(format!("level:{}", spec.security_level));
    features.insert(format!("purpose:{}", if spec.purpose { "ssl-server" } else { "none" }));
    features.insert(format!("depth:{}", spec.verify_depth));
    features.insert(format!("chain-length:{}", spec.certs.len()));
    Ok(BuiltChain {
        peer,
        trusted,
        time: NOW,
        security_level: spec.security_level,
        purpose: spec.purpose,
        verify_depth: spec.verify_depth,
        features,
    })
}

/// A same-name twin of the certificate at `index`: `cn` is that certificate's common name.
fn build_twin(
    cert: &CertSpec,
    index: usize,
    cn: &str,
    signer: &Issuer<'_>,
    pool: &Pool,
    cache: Option<&SignatureCache>,
    features: &mut BTreeSet<String>,
) -> Result<Vec<u8>, GenError> {
    let (_, spki_der) = pool.key(cert.key, 1);
    let key_id = sha1_of_key(spki_der);
    let (algorithm, signer_fn) = sign(SigSpec::Natural(Hash::Sha256), signer, features)?;
    let exts = extensions(cert, &key_id, signer, &mut BTreeSet::new())?;
    let tbs = x509_cert::TbsCertificate {
        version: x509_cert::Version::V3,
        serial_number: x509_cert::serial_number::SerialNumber::new(&[0x20, index as u8 + 1])?,
        signature: algorithm.clone(),
        issuer: signer.name.clone(),
        validity: validity(cert.validity)?,
        subject: name(cn)?,
        subject_public_key_info: spki::SubjectPublicKeyInfoOwned::try_from(spki_der)?,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: (!exts.is_empty()).then_some(exts),
    };
    let signature = signature_over(signer, &signer_fn, &tbs.to_der()?, cache)?;
    Ok(x509_cert::Certificate {
        tbs_certificate: tbs,
        signature_algorithm: algorithm,
        signature: BitString::from_bytes(&signature)?,
    }
    .to_der()?)
}

/// An unrelated self-signed CA (P-256) in the trust store.
fn stranger(pool: &Pool, cache: Option<&SignatureCache>) -> Result<Vec<u8>, GenError> {
    let (key, spki_der) = pool.key(KeyKind::P256, 1);
    let subject = name("Stranger Root")?;
    let own = Issuer {
        name: subject.clone(),
        issuer_name: subject.clone(),
        serial: vec![0x30],
        key,
        spki: spki_der,
        kind: KeyKind::P256,
        key_id: sha1_of_key(spki_der),
    };
    let (algorithm, signer_fn) = sign(SigSpec::Natural(Hash::Sha256), &own, &mut BTreeSet::new())?;
    let tbs = x509_cert::TbsCertificate {
        version: x509_cert::Version::V3,
        serial_number: x509_cert::serial_number::SerialNumber::new(&[0x30])?,
        signature: algorithm.clone(),
        issuer: subject.clone(),
        validity: validity(ValiditySpec::Current)?,
        subject,
        subject_public_key_info: spki::SubjectPublicKeyInfoOwned::try_from(spki_der)?,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(vec![x509_cert::ext::Extension {
            extn_id: Oid::new_unwrap("2.5.29.19"),
            critical: true,
            extn_value: OctetString::new(
                x509_cert::ext::pkix::BasicConstraints { ca: true, path_len_constraint: None }.to_der()?,
            )?,
        }]),
    };
    let signature = signature_over(&own, &signer_fn, &tbs.to_der()?, cache)?;
    Ok(x509_cert::Certificate {
        tbs_certificate: tbs,
        signature_algorithm: algorithm,
        signature: BitString::from_bytes(&signature)?,
    }
    .to_der()?)
}

/// Every hash the generator can ask for (for the coverage report's list).
pub fn hashes() -> impl Iterator<Item = &'static str> {
    Hash::ALL.iter().map(|h| h.name())
}

use der::Decode as _;

/// Cases drawn from [`chain_spec`], deterministic from a seed, each shrinkable. Each case has a
/// random source of its own, seeded from the generator's seed and the case's place in the
/// sequence, so that one case can be drawn again without the ones before it ([`Generator::at`]).
pub struct Generator {
    seed: u64,
    next: u64,
    strategy: BoxedStrategy<ChainSpec>,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Generator")
    }
}

/// One drawn case, which can be shrunk.
pub struct Drawn {
    tree: Box<dyn proptest::strategy::ValueTree<Value = ChainSpec>>,
}

impl std::fmt::Debug for Drawn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Drawn").field("spec", &self.tree.current()).finish()
    }
}

impl Generator {
    /// A generator whose cases depend on `seed` only.
    pub fn new(seed: u64) -> Self {
        Generator { seed, next: 0, strategy: chain_spec().boxed() }
    }

    /// The next case.
    pub fn draw(&mut self) -> Result<Drawn, GenError> {
        let drawn = self.at(self.next);
        self.next += 1;
        drawn
    }

    /// The case at `index` in the sequence (0: the first [`Generator::draw`] gives), whatever
    /// has been drawn so far.
    pub fn at(&self, index: u64) -> Result<Drawn, GenError> {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&self.seed.to_le_bytes());
        bytes[8..16].copy_from_slice(&index.to_le_bytes());
        let rng = proptest::test_runner::TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &bytes);
        let mut runner = proptest::test_runner::TestRunner::new_with_rng(proptest::test_runner::Config::default(), rng);
        let tree = self.strategy.new_tree(&mut runner).map_err(|e| GenError::Sign(format!("proptest: {e}")))?;
        Ok(Drawn { tree })
    }
}

impl Drawn {
    /// The case as drawn (or as shrunk so far).
    pub fn spec(&self) -> ChainSpec {
        self.tree.current()
    }

    /// Shrinks the case while `still_fails` holds for the simpler one (proptest's loop: simplify
    /// while it fails, complicate when it passes), at most `steps` tries; returns the simplest
    /// failing case found.
    pub fn shrink(&mut self, steps: usize, mut still_fails: impl FnMut(&ChainSpec) -> bool) -> ChainSpec {
        let mut best = self.tree.current();
        if !self.tree.simplify() {
            return best;
        }
        for _ in 0..steps {
            let candidate = self.tree.current();
            let moved = if still_fails(&candidate) {
                best = candidate;
                self.tree.simplify()
            } else {
                self.tree.complicate()
            };
            if !moved {
                break;
            }
        }
        best
    }
}
