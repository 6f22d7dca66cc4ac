//! `harness::ciphers` against the real OpenSSL CLI: the derived order must be what
//! `openssl ciphers -s -tls1_2 '<string>'` prints, and, restricted to rustls' six TLS 1.2 suites,
//! the client order the verifier model uses.

use std::process::Command;

use harness::ciphers::{
    CipherError, CipherList, EXPRESSWAY_DEFAULT, KeyPreference, RSA_PREFERENCE_PREFIX, WordOutcome,
    openssl_name,
};
use rstest::rstest;
use rustls::CipherSuite;

/// The TLS 1.2 suites rustls (aws-lc-rs) offers, by OpenSSL name.
const RUSTLS_TLS12: [&str; 6] = [
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-CHACHA20-POLY1305",
];

/// `openssl ciphers [args] '<string>'`, TLS 1.3 names dropped; `None` when OpenSSL refuses it.
fn openssl_ciphers(args: &[&str], cipher_string: &str) -> Option<Vec<String>> {
    let out = Command::new("openssl")
        .arg("ciphers")
        .args(args)
        // A string may start with '-': end the options first.
        .arg("--")
        .arg(cipher_string)
        .output()
        .expect("the openssl CLI runs");
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).expect("openssl prints ASCII");
    Some(
        text.trim()
            .split(':')
            .filter(|n| !n.is_empty() && !n.starts_with("TLS_"))
            .map(str::to_owned)
            .collect(),
    )
}

fn expressway_with_prefix() -> String {
    format!("{RSA_PREFERENCE_PREFIX}{EXPRESSWAY_DEFAULT}")
}

/// The parser agrees with the CLI: error for error, the same `-s -tls1_2` order, the same
/// selection without `-s`, and the rustls order is the CLI's order restricted to rustls.
#[track_caller]
fn check_against_cli(cipher_string: &str) {
    let supported = openssl_ciphers(&["-s", "-tls1_2"], cipher_string);
    let selected = openssl_ciphers(&[], cipher_string);
    let parsed = CipherList::parse(cipher_string);
    match (supported, selected, parsed) {
        (None, None, Err(_)) => {}
        (Some(supported), Some(selected), Ok(list)) => {
            assert_eq!(
                list.openssl_order(),
                supported,
                "-s -tls1_2 order of {cipher_string:?}"
            );
            assert_eq!(
                list.openssl_selection(),
                selected,
                "selection of {cipher_string:?}"
            );
            let rustls: Vec<&str> = supported
                .iter()
                .map(String::as_str)
                .filter(|n| RUSTLS_TLS12.contains(n))
                .collect();
            assert_eq!(
                list.suite_names(),
                rustls,
                "rustls order of {cipher_string:?}"
            );
        }
        (supported, _, parsed) => {
            panic!("{cipher_string:?}: openssl says {supported:?}, the parser {parsed:?}")
        }
    }
}

#[rstest]
#[case::expressway_default(EXPRESSWAY_DEFAULT)]
#[case::expressway_default_with_rsa_prefix(&expressway_with_prefix())]
#[case::high("HIGH")]
#[case::ecdhe("ECDHE")]
#[case::rsa_then_ecdsa("aRSA:aECDSA")]
#[case::mozilla_style("EECDH+AESGCM:EDH+AESGCM")]
#[case::no_ecdsa("!aECDSA:HIGH")]
#[case::ecdsa_moved_last("HIGH:+aECDSA")]
#[case::chacha_first("CHACHA20:AESGCM")]
#[case::gcm_ecdsa_then_rsa("AESGCM+ECDSA:AESGCM+RSA")]
#[case::all_by_strength("ALL:@STRENGTH")]
#[case::openssl_default("DEFAULT")]
#[case::minus_all_then_one("-ALL:ECDHE-RSA-AES128-GCM-SHA256")]
#[case::two_names_comma("ECDHE-ECDSA-AES128-GCM-SHA256,ECDHE-RSA-AES256-GCM-SHA384")]
#[case::space_separated("kECDHE+aECDSA AES256")]
#[case::high_minus_aes128("HIGH:-AES128")]
#[case::high_kill_sha384("HIGH:!SHA384")]
#[case::field_notes_rsa("ECDHE-RSA-AES256-GCM-SHA384:EECDH:EDH:HIGH")]
#[case::field_notes_ecdsa("EECDH:EDH:HIGH")]
#[case::deleted_come_back_first("HIGH:-ECDHE:ECDHE")]
#[case::ordering_dance("HIGH:-aECDSA:+aRSA:aECDSA")]
#[case::default_then_more("DEFAULT:!ECDSA:+AES128")]
#[case::default_glued("DEFAULTHIGH")]
#[case::edh_only("EDH")]
#[case::psk_only("PSK")]
#[case::everything("ALL:COMPLEMENTOFALL")]
#[case::complement_of_default("COMPLEMENTOFDEFAULT")]
#[case::versions("TLSv1.2:SSLv3:TLSv1")]
#[case::macs("SHA256:SHA384:SHA")]
#[case::seclevel_3("HIGH:@SECLEVEL=3")]
#[case::seclevel_4("ALL:@SECLEVEL=4")]
#[case::seclevel_5("ALL:@SECLEVEL=5")]
#[case::seclevel_0_null_placement("ALL:COMPLEMENTOFALL:@SECLEVEL=0")]
#[case::seclevel_0_sha("SHA:@SECLEVEL=0")]
#[case::seclevel_0_kecdhe("kECDHE:@SECLEVEL=0")]
#[case::seclevel_0_rsa("kRSA:MD5:@SECLEVEL=0")]
#[case::camellia_aria("CAMELLIA:ARIA")]
#[case::ccm("AESCCM:AESCCM8")]
#[case::cbc("CBC")]
#[case::fips("FIPS")]
#[case::high_and_fips("HIGH+FIPS:ECDHE")]
#[case::iana_name("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256:ECDHE")]
#[case::strength_after_selection("ECDHE+SHA:ECDHE+AESGCM:@STRENGTH")]
#[case::unknown_only("EECDHX")]
#[case::unknown_then_known("EECDHX:HIGH")]
#[case::lowercase("high")]
#[case::glued_kill("HIGH!MEDIUM!aECDSA")]
#[case::bad_character("HIGH:*")]
#[case::bad_command("HIGH:@FOO")]
#[case::bad_seclevel("HIGH:@SECLEVEL=9")]
#[case::dangling_plus("AES+")]
#[case::weak_algorithm("3DES:HIGH")]
#[case::exclusive_parts("kECDHE+kDHE:HIGH")]
#[case::killed_name_again("!ECDHE-RSA-AES256-GCM-SHA384:HIGH:ECDHE-RSA-AES256-GCM-SHA384")]
#[case::move_one_name_last("HIGH:+ECDHE-ECDSA-AES256-GCM-SHA384")]
#[case::name_and_alias("ECDHE-RSA-AES256-GCM-SHA384+aRSA:HIGH")]
#[case::semicolons("aECDSA;aRSA")]
fn order_matches_openssl_cli(#[case] cipher_string: &str) {
    check_against_cli(cipher_string);
}

/// Every alias OpenSSL 3.0 knows, alone and at security level 0 (so that eNULL, aNULL and MD5
/// ciphers are listed too), selects what the CLI selects: this checks every attribute and the
/// place of every row of the table.
#[test]
fn every_alias_selects_what_openssl_selects() {
    let aliases = [
        "ALL",
        "COMPLEMENTOFALL",
        "COMPLEMENTOFDEFAULT",
        "kRSA",
        "kEDH",
        "kDHE",
        "DH",
        "kEECDH",
        "kECDHE",
        "ECDH",
        "kPSK",
        "kRSAPSK",
        "kECDHEPSK",
        "kDHEPSK",
        "kSRP",
        "aRSA",
        "aDSS",
        "DSS",
        "aNULL",
        "aECDSA",
        "ECDSA",
        "aPSK",
        "aSRP",
        "EDH",
        "DHE",
        "EECDH",
        "ECDHE",
        "NULL",
        "RSA",
        "ADH",
        "AECDH",
        "PSK",
        "SRP",
        "eNULL",
        "AES128",
        "AES256",
        "AES",
        "AESGCM",
        "AESCCM",
        "AESCCM8",
        "CAMELLIA128",
        "CAMELLIA256",
        "CAMELLIA",
        "CHACHA20",
        "ARIA",
        "ARIAGCM",
        "ARIA128",
        "ARIA256",
        "CBC",
        "MD5",
        "SHA1",
        "SHA",
        "SHA256",
        "SHA384",
        "SSLv3",
        "TLSv1",
        "TLSv1.0",
        "TLSv1.2",
        "HIGH",
        "FIPS",
    ];
    let mut mismatches = Vec::new();
    for alias in aliases {
        for s in [
            format!("{alias}:@SECLEVEL=0"),
            format!("{alias}:@STRENGTH:@SECLEVEL=0"),
        ] {
            let cli = openssl_ciphers(&[], &s);
            let ours = CipherList::parse(&s)
                .ok()
                .map(|l| l.openssl_selection().to_vec());
            let ours: Option<Vec<String>> =
                ours.map(|v| v.into_iter().map(str::to_owned).collect());
            if cli != ours {
                mismatches.push(format!("{s}: openssl {cli:?}\n  parser {ours:?}"));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn expressway_default_prefers_ecdsa() {
    let list = CipherList::parse(EXPRESSWAY_DEFAULT).expect("the default parses");
    assert_eq!(list.preferred_key(), Some(KeyPreference::Ecdsa));
    assert_eq!(
        list.suite_names(),
        [
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            "ECDHE-RSA-AES256-GCM-SHA384",
            "ECDHE-ECDSA-CHACHA20-POLY1305",
            "ECDHE-RSA-CHACHA20-POLY1305",
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            "ECDHE-RSA-AES128-GCM-SHA256",
        ]
    );
}

#[test]
fn rsa_prefix_makes_rsa_preferred() {
    let list = CipherList::parse(&expressway_with_prefix()).expect("the prefixed default parses");
    assert_eq!(list.preferred_key(), Some(KeyPreference::Rsa));
    assert_eq!(list.suite_names()[0], "ECDHE-RSA-AES256-GCM-SHA384");
}

#[test]
fn unknown_word_is_reported_with_a_suggestion() {
    let list = CipherList::parse("EECDHX:HIGH").expect("HIGH still selects ciphers");
    assert_eq!(list.words()[0].word, "EECDHX");
    assert_eq!(
        list.words()[0].outcome,
        WordOutcome::Unknown {
            suggestion: Some("EECDH".to_owned())
        }
    );
    let list = CipherList::parse("HIGH:-AES265+SHA").expect("HIGH selects ciphers");
    assert_eq!(
        list.words()[1].outcome,
        WordOutcome::Unknown {
            suggestion: Some("-AES256+SHA".to_owned())
        }
    );
}

#[test]
fn unknown_word_alone_is_no_cipher_match() {
    assert_eq!(
        CipherList::parse("EECDHX").map(|l| l.openssl_order().to_vec()),
        Err(CipherError::NoCipherMatch {
            string: "EECDHX".to_owned()
        })
    );
}

#[test]
fn edh_alone_matches_no_rustls_suite() {
    let list = CipherList::parse("EDH").expect("EDH selects DHE ciphers");
    let [word] = list.words() else {
        panic!("one word expected: {:?}", list.words())
    };
    let WordOutcome::MatchedNoRustlsSuite { openssl } = &word.outcome else {
        panic!("unexpected outcome {:?}", word.outcome)
    };
    assert!(openssl.contains(&"DHE-RSA-AES256-GCM-SHA384".to_owned()));
    assert!(list.rustls_suites().is_empty());
    assert_eq!(list.preferred_key(), None);
    assert!(list.report().contains("no TLS 1.2 rustls suite"));
}

#[test]
fn default_string_reports_every_word() {
    let list = CipherList::parse(EXPRESSWAY_DEFAULT).expect("the default parses");
    let words: Vec<&str> = list.words().iter().map(|w| w.word.as_str()).collect();
    assert_eq!(
        words,
        [
            "EECDH",
            "EDH",
            "HIGH",
            "-AES256+SHA",
            "!MEDIUM",
            "!LOW",
            "!3DES",
            "!MD5",
            "!PSK",
            "!eNULL",
            "!aNULL",
            "!aDH"
        ]
    );
    let outcome = |w: &str| {
        &list
            .words()
            .iter()
            .find(|r| r.word == w)
            .expect("word present")
            .outcome
    };
    assert!(matches!(outcome("EECDH"), WordOutcome::Matched { rustls, .. } if rustls.len() == 6));
    assert!(matches!(
        outcome("-AES256+SHA"),
        WordOutcome::MatchedNoRustlsSuite { .. }
    ));
    assert_eq!(outcome("!MEDIUM"), &WordOutcome::MatchedNothing);
    assert_eq!(outcome("!3DES"), &WordOutcome::MatchedNothing);
    assert!(matches!(outcome("!aDH"), WordOutcome::Unknown { .. }));
}

#[test]
fn commands_are_reported_and_bad_ones_refused() {
    let list = CipherList::parse("HIGH:@STRENGTH:@SECLEVEL=3").expect("valid commands");
    assert!(matches!(
        list.words()[1].outcome,
        WordOutcome::Command { .. }
    ));
    assert_eq!(list.security_level(), 3);
    assert_eq!(
        CipherList::parse("HIGH:@SECLEVEL=9").map(|_| ()),
        Err(CipherError::Command {
            string: "HIGH:@SECLEVEL=9".to_owned(),
            command: "SECLEVEL=9".to_owned()
        })
    );
    assert_eq!(
        CipherList::parse("HIGH:*").map(|_| ()),
        Err(CipherError::Syntax {
            string: "HIGH:*".to_owned(),
            position: 5,
            text: "*".to_owned()
        })
    );
}

#[test]
fn crypto_provider_puts_tls13_first_then_derived_order() {
    let list = CipherList::parse(&expressway_with_prefix()).expect("parses");
    let names = |tls13| -> Vec<&'static str> {
        list.crypto_provider(tls13)
            .cipher_suites
            .iter()
            .map(|s| openssl_name(s.suite()).expect("every rustls suite has an OpenSSL name"))
            .collect()
    };
    let mut expected = vec![
        "TLS_AES_256_GCM_SHA384",
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS_AES_128_GCM_SHA256",
    ];
    expected.extend(list.suite_names());
    assert_eq!(names(true), expected);
    assert_eq!(names(false), list.suite_names());
}

#[test]
fn openssl_name_covers_all_nine_rustls_suites() {
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    assert_eq!(provider.cipher_suites.len(), 9);
    for suite in &provider.cipher_suites {
        assert!(openssl_name(suite.suite()).is_some(), "{:?}", suite.suite());
    }
    assert_eq!(
        openssl_name(CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384),
        Some("ECDHE-RSA-AES256-GCM-SHA384")
    );
    assert_eq!(
        openssl_name(CipherSuite::TLS13_AES_128_GCM_SHA256),
        Some("TLS_AES_128_GCM_SHA256")
    );
}

#[test]
fn report_names_order_words_and_certificate() {
    let report = CipherList::parse(&format!(
        "{RSA_PREFERENCE_PREFIX}EECDHX:{EXPRESSWAY_DEFAULT}"
    ))
    .expect("parses")
    .report();
    assert!(
        report.contains("1. ECDHE-RSA-AES256-GCM-SHA384"),
        "{report}"
    );
    assert!(report.contains("EECDHX"), "{report}");
    assert!(report.contains("did you mean 'EECDH'?"), "{report}");
    assert!(report.contains("serves its RSA certificate"), "{report}");
}
