//! The chain generator (`harness::chain::generate`): deterministic from its seed, and its
//! standard certificates, signed by every key of the pool that signs, verify in the model.

use harness::chain::generate::{
    self, CertSpec, ChainSpec, Generator, Hash, KeyForm, KeyKind, NcSpec, SanSpec, SigSpec,
};
use harness::chain::{self, ChainInput, OpensslFlavour, Purpose};
use rustls_pki_types::CertificateDer;

/// The model's error codes for a case, as that flavour numbers them.
fn codes(spec: &ChainSpec, flavour: OpensslFlavour) -> Vec<i32> {
    verify(spec, flavour).errors.iter().map(|e| e.code.code(flavour)).collect()
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
fn a_case_can_be_drawn_again_by_its_place_in_the_sequence() {
    let mut generator = Generator::new(11);
    let drawn: Vec<_> = (0..5).map(|_| generator.draw().expect("draw").spec()).collect();
    for (index, spec) in drawn.iter().enumerate().rev() {
        assert_eq!(generator.at(index as u64).expect("draw").spec(), *spec, "case {index}");
    }
    assert_ne!(drawn[0], drawn[1], "each case has a random source of its own");
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
            let spec = ChainSpec::root_and_leaf(
                CertSpec::standard(issuer, sig, true),
                CertSpec::standard(KeyKind::P256, sig, false),
            );
            for flavour in [OpensslFlavour::V1_1_1, OpensslFlavour::V3_0] {
                let verdict = verify(&spec, flavour);
                assert!(verdict.trusted, "{issuer:?} {sig:?} {flavour:?}: {:?}", verdict.errors);
            }
        }
    }
}

/// An EC root written compressed or hybrid (both decode in OpenSSL) verifies its leaf with every
/// ECDSA hash: those aws-lc does not take (SHA-1 on P-521, SHA-224, ...) go to RustCrypto, which
/// reads a hybrid point only once it is written uncompressed.
#[test]
fn ec_issuers_written_compressed_or_hybrid_verify_with_every_hash() {
    for issuer in [KeyKind::P256, KeyKind::P384, KeyKind::P521] {
        for form in [KeyForm::Compressed, KeyForm::Hybrid] {
            for hash in [Hash::Sha1, Hash::Sha224, Hash::Sha256, Hash::Sha384, Hash::Sha512] {
                let sig = SigSpec::Natural(hash);
                let root = CertSpec { key_form: form, ..CertSpec::standard(issuer, sig, true) };
                let spec = ChainSpec::root_and_leaf(root, CertSpec::standard(KeyKind::P256, sig, false));
                for flavour in [OpensslFlavour::V1_1_1, OpensslFlavour::V3_0] {
                    let verdict = verify(&spec, flavour);
                    assert!(verdict.trusted, "{issuer:?} {form:?} {hash:?} {flavour:?}: {:?}", verdict.errors);
                }
            }
        }
    }
}

#[test]
fn a_corrupted_signature_fails_in_the_model() {
    let mut leaf = CertSpec::standard(KeyKind::P256, SigSpec::Natural(Hash::Sha256), false);
    leaf.bad_signature = true;
    for issuer in
        [KeyKind::Rsa1024, KeyKind::Rsa2048, KeyKind::P521, KeyKind::Dsa2048, KeyKind::Ed25519, KeyKind::Ed448]
    {
        let spec =
            ChainSpec::root_and_leaf(CertSpec::standard(issuer, SigSpec::Natural(Hash::Sha256), true), leaf.clone());
        assert_eq!(codes(&spec, OpensslFlavour::V3_0), vec![7], "{issuer:?}");
    }
}

#[test]
fn cached_signatures_give_the_same_bytes() {
    let cache = generate::SignatureCache::new();
    for seed in [3, 4] {
        // Twice through the cache: the second pass takes every signature from it.
        for _ in 0..2 {
            let mut generator = Generator::new(seed);
            for _ in 0..40 {
                let spec = generator.draw().expect("draw").spec();
                let fresh = generate::build(&spec).expect("build");
                let cached = generate::build_cached(&spec, &cache).expect("build");
                assert_eq!((fresh.peer, fresh.trusted), (cached.peer, cached.trusted), "{spec:?}");
            }
        }
    }
    let (hits, misses) = cache.stats();
    assert!(hits > misses, "{hits} hits, {misses} signatures made");
}

#[test]
fn constraints_of_types_openssl_cannot_check_are_51() {
    let mut root = CertSpec::standard(KeyKind::P256, SigSpec::Natural(Hash::Sha256), true);
    let mut leaf = CertSpec::standard(KeyKind::P256, SigSpec::Natural(Hash::Sha256), false);
    for (nc, san, v111, v30) in [
        // The same otherName OID: both flavours call it unsupported.
        (NcSpec::PermitUpn, SanSpec::Upn, vec![51], vec![51]),
        // Another OID: 1.1.1 compares types only, 3.0 also OIDs and skips the subtree.
        (NcSpec::PermitOtherOid, SanSpec::Upn, vec![51], vec![]),
        (NcSpec::PermitRegisteredId, SanSpec::RegisteredId, vec![51], vec![51]),
        (NcSpec::ExcludeEdiParty, SanSpec::EdiParty, vec![51], vec![51]),
        // A name of a type no subtree has passes.
        (NcSpec::PermitRegisteredId, SanSpec::Dns, vec![], vec![]),
        // 3.0 holds an SmtpUTF8Mailbox against email subtrees (RFC 8398), 1.1.1 against
        // otherName ones.
        (NcSpec::PermitEmail, SanSpec::SmtpUtf8, vec![], vec![]),
        (NcSpec::PermitUpn, SanSpec::SmtpUtf8, vec![51], vec![]),
    ] {
        root.nc = nc;
        leaf.san = san;
        let spec = ChainSpec::root_and_leaf(root.clone(), leaf.clone());
        assert_eq!(codes(&spec, OpensslFlavour::V1_1_1), v111, "1.1.1: {nc:?} {san:?}");
        assert_eq!(codes(&spec, OpensslFlavour::V3_0), v30, "3.0: {nc:?} {san:?}");
    }
}

/// The coverage report names each signature by its key and hashes (`fuzz chain` prints these
/// features, and the sample keeps cases for the ones it has not seen).
#[test]
fn coverage_features_name_each_signatures_hashes() {
    for (sig, feature) in [
        (SigSpec::Natural(Hash::Sha1), "sig:rsa-sha1"),
        (SigSpec::Natural(Hash::Sha256), "sig:rsa-sha256"),
        (SigSpec::Natural(Hash::Sha384), "sig:rsa-sha384"),
        (SigSpec::Natural(Hash::Sha512), "sig:rsa-sha512"),
        (SigSpec::Pss(Hash::Sha384), "sig:rsa-pss-sha384"),
        (SigSpec::PssMgf1(Hash::Sha256, Hash::Sha1), "sig:rsa-pss-sha256-mgf1-sha1"),
    ] {
        let spec = ChainSpec::root_and_leaf(
            CertSpec::standard(KeyKind::Rsa2048, sig, true),
            CertSpec::standard(KeyKind::P256, sig, false),
        );
        let built = generate::build(&spec).expect("build");
        assert!(built.features.contains(feature), "{sig:?}: {:?}", built.features);
    }
}
