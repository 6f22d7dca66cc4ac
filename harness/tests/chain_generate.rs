//! The chain generator (`harness::chain::generate`): deterministic from its seed, and its
//! standard certificates, signed by every key of the pool that signs, verify in the model.

use harness::chain::generate::{
    self, AkiSpec, BcSpec, CertSpec, ChainSpec, EkuContent, ExtState, Generator, Hash, IssuerName, KeyKind, KuSpec,
    NcSpec, OtherExt, PeerSpec, SanSpec, SigSpec, SkiSpec, TrustSpec, ValiditySpec,
};
use harness::chain::{self, ChainInput, OpensslFlavour, Purpose};
use rustls_pki_types::CertificateDer;

fn standard(key: KeyKind, sig: SigSpec, ca: bool) -> CertSpec {
    CertSpec {
        key,
        key_index: 0,
        explicit_curve: false,
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

fn verify(spec: &ChainSpec, flavour: OpensslFlavour) -> chain::ChainVerdict {
    let built = generate::build(spec).expect("build");
    let peer: Vec<CertificateDer<'_>> = built.peer.iter().map(|d| CertificateDer::from(d.as_slice())).collect();
    let trusted: Vec<CertificateDer<'_>> = built.trusted.iter().map(|d| CertificateDer::from(d.as_slice())).collect();
    chain::verify(&ChainInput {
        peer_chain: &peer,
        trusted: &trusted,
        validation_time: built.time,
        purpose: Some(Purpose::SslServer),
        flavour,
        stop_at_first_error: false,
        security_level: 0,
        verify_depth: 100,
    })
}

#[test]
fn the_same_seed_gives_the_same_certificates() {
    let mut one = Generator::new(7);
    let mut two = Generator::new(7);
    for _ in 0..30 {
        let (a, b) = (one.draw().expect("draw").spec(), two.draw().expect("draw").spec());
        assert_eq!(a, b);
        let (a, b) = (generate::build(&a).expect("build"), generate::build(&b).expect("build"));
        assert_eq!((a.peer, a.trusted), (b.peer, b.trusted));
    }
}

#[test]
fn another_seed_gives_other_chains() {
    let specs = |seed| {
        let mut g = Generator::new(seed);
        (0..10).map(|_| g.draw().expect("draw").spec()).collect::<Vec<_>>()
    };
    assert_ne!(specs(1), specs(2));
}

#[test]
fn standard_chains_signed_by_every_signing_key_and_hash_verify_in_the_model() {
    for issuer in KeyKind::ALL.into_iter().filter(|k| k.signs()) {
        for sig in [SigSpec::Natural(Hash::Sha256), SigSpec::Natural(Hash::Sha1), SigSpec::Pss(Hash::Sha256)] {
            let spec = ChainSpec {
                certs: vec![standard(issuer, sig, true), standard(KeyKind::P256, sig, false)],
                peer: PeerSpec { root: false, drop: None, reversed: false, duplicate: false, twin: false },
                trust: TrustSpec::Root,
                security_level: 0,
                purpose: true,
                verify_depth: 100,
            };
            for flavour in [OpensslFlavour::V1_1_1, OpensslFlavour::V3_0] {
                let verdict = verify(&spec, flavour);
                assert!(verdict.trusted, "{issuer:?} {sig:?} {flavour:?}: {:?}", verdict.errors);
            }
        }
    }
}

#[test]
fn a_corrupted_signature_fails_in_the_model() {
    let mut leaf = standard(KeyKind::P256, SigSpec::Natural(Hash::Sha256), false);
    leaf.bad_signature = true;
    for issuer in [KeyKind::Rsa1024, KeyKind::P521, KeyKind::Dsa2048, KeyKind::Ed25519] {
        let spec = ChainSpec {
            certs: vec![standard(issuer, SigSpec::Natural(Hash::Sha256), true), leaf.clone()],
            peer: PeerSpec { root: false, drop: None, reversed: false, duplicate: false, twin: false },
            trust: TrustSpec::Root,
            security_level: 0,
            purpose: true,
            verify_depth: 100,
        };
        let verdict = verify(&spec, OpensslFlavour::V3_0);
        let codes: Vec<i32> = verdict.errors.iter().map(|e| e.code.code(OpensslFlavour::V3_0)).collect();
        assert_eq!(codes, vec![7], "{issuer:?}");
    }
}
