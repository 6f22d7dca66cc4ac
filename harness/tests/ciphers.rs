//! `harness::ciphers` against the real OpenSSL CLI: the derived order must be what
//! `openssl ciphers -s -tls1_2 '<string>'` prints, and, restricted to rustls' six TLS 1.2 suites,
//! the client order the verifier model uses.

use std::process::Command;
use std::sync::Arc;

use harness::ciphers::{
    CipherError, CipherList, EXPRESSWAY_DEFAULT, KeyPreference, RSA_PREFERENCE_PREFIX, WordOutcome, iana_name,
    openssl_name,
};
use rstest::rstest;
use rustls::CipherSuite;
use rustls::crypto::CryptoProvider;

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
    Some(text.trim().split(':').filter(|n| !n.is_empty() && !n.starts_with("TLS_")).map(str::to_owned).collect())
}

fn expressway_with_prefix() -> String {
    format!("{RSA_PREFERENCE_PREFIX}{EXPRESSWAY_DEFAULT}")
}

/// The parser agrees with the CLI: error for error, the same `-s -tls1_2` order, the same
/// selection without `-s`, and the rustls order is the CLI's order restricted to rustls.
fn compare_with_cli(cipher_string: &str) -> Result<(), String> {
    let supported = openssl_ciphers(&["-s", "-tls1_2"], cipher_string);
    let selected = openssl_ciphers(&[], cipher_string);
    let parsed = CipherList::parse(cipher_string);
    match (supported, selected, parsed) {
        (None, None, Err(_)) => Ok(()),
        (Some(supported), Some(selected), Ok(list)) => {
            if list.openssl_order() != supported {
                return Err(format!(
                    "-s -tls1_2 order of {cipher_string:?}:\n  openssl {supported:?}\n  parser  {:?}",
                    list.openssl_order()
                ));
            }
            if list.openssl_selection() != selected {
                return Err(format!(
                    "selection of {cipher_string:?}:\n  openssl {selected:?}\n  parser  {:?}",
                    list.openssl_selection()
                ));
            }
            let rustls: Vec<&str> = supported.iter().map(String::as_str).filter(|n| RUSTLS_TLS12.contains(n)).collect();
            if list.suite_names() != rustls {
                return Err(format!(
                    "rustls order of {cipher_string:?}: expected {rustls:?}, got {:?}",
                    list.suite_names()
                ));
            }
            Ok(())
        }
        (supported, _, parsed) => Err(format!("{cipher_string:?}: openssl says {supported:?}, the parser {parsed:?}")),
    }
}

#[track_caller]
fn check_against_cli(cipher_string: &str) {
    if let Err(mismatch) = compare_with_cli(cipher_string) {
        panic!("{mismatch}");
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
// A strength class after a part without one: the class is taken as is (Pattern::and).
#[case::strength_after_kx("kRSA+HIGH:kECDHE+MEDIUM:@SECLEVEL=0")]
#[case::strength_last_of_three("ECDHE+AESGCM+HIGH:RSA+LOW:@SECLEVEL=0")]
// COMPLEMENTOFDEFAULT twice: the second narrows the default bit (the 56 non-default ciphers
// remain) and keeps the strength class (no MEDIUM cipher is outside DEFAULT: no match).
#[case::complement_twice("COMPLEMENTOFDEFAULT+COMPLEMENTOFDEFAULT:@SECLEVEL=0")]
#[case::complement_twice_keeps_strength("MEDIUM+COMPLEMENTOFDEFAULT+COMPLEMENTOFDEFAULT:@SECLEVEL=0")]
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
#[case::strength_class_replaces_not_default("COMPLEMENTOFDEFAULT+ECDHE-RSA-CHACHA20-POLY1305")]
#[case::not_default_after_class("HIGH+COMPLEMENTOFDEFAULT")]
// FIPS narrowed by the name's classes is FIPS alone, so HIGH then excludes it: the first rule
// selects nothing.
#[case::name_not_in_default_narrows_the_class("FIPS+DHE-DSS-AES256-GCM-SHA384+HIGH:ECDHE-RSA-AES128-GCM-SHA256")]
#[case::removed_names("aDH:kECDH:EXPORT:SSLv2:KRB5:HIGH")]
#[case::tls13_name("TLS_AES_128_GCM_SHA256:ECDHE")]
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
        // Aliases of ciphers OpenSSL 3.0's default provider does not offer: each selects nothing
        // ("no cipher match"), which an alias whose mask were lost (0: any) would not.
        "kGOST",
        "kGOST18",
        "aGOST01",
        "aGOST12",
        "aGOST",
        "GOST",
        "GOST2012-GOST8912-GOST8912",
        "GOST94",
        "GOST89MAC",
        "GOST12",
        "3DES",
        "RC4",
        "RC2",
        "IDEA",
        "SEED",
        "LOW",
        "MEDIUM",
    ];
    let mut mismatches = Vec::new();
    for alias in aliases {
        for s in [format!("{alias}:@SECLEVEL=0"), format!("{alias}:@STRENGTH:@SECLEVEL=0")] {
            let cli = openssl_ciphers(&[], &s);
            let ours = CipherList::parse(&s).ok().map(|l| l.openssl_selection().to_vec());
            let ours: Option<Vec<String>> = ours.map(|v| v.into_iter().map(str::to_owned).collect());
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
    // The rustls suites a client offers are those, in that order.
    let offered: Vec<&str> =
        list.rustls_suites().iter().map(|suite| openssl_name(suite.suite()).expect("an OpenSSL name")).collect();
    assert_eq!(offered, list.suite_names());
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
    assert_eq!(list.words()[0].outcome, WordOutcome::Unknown { suggestion: Some("EECDH".to_owned()) });
    let list = CipherList::parse("HIGH:-AES265+SHA").expect("HIGH selects ciphers");
    assert_eq!(list.words()[1].outcome, WordOutcome::Unknown { suggestion: Some("-AES256+SHA".to_owned()) });
    // A long name with two pairs of digits swapped (four edits): the limit grows with the
    // name's length (a quarter of it).
    let list = CipherList::parse("HIGH:ECDHE-ECDSA-AES265-GCM-SHA348").expect("HIGH selects ciphers");
    assert_eq!(
        list.words()[1].outcome,
        WordOutcome::Unknown { suggestion: Some("ECDHE-ECDSA-AES256-GCM-SHA384".to_owned()) }
    );
}

#[test]
fn iana_and_tls13_names_are_explained() {
    let list = CipherList::parse("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256:TLS_AES_128_GCM_SHA256:HIGH")
        .expect("HIGH selects ciphers");
    assert_eq!(
        list.words()[0].outcome,
        WordOutcome::Unknown { suggestion: Some("ECDHE-RSA-AES128-GCM-SHA256".to_owned()) }
    );
    assert_eq!(list.words()[1].outcome, WordOutcome::Unknown { suggestion: None });
    assert!(list.report().contains("a TLS 1.3 suite"), "{}", list.report());
}

#[test]
fn unknown_word_alone_is_no_cipher_match() {
    assert_eq!(
        CipherList::parse("EECDHX").map(|l| l.openssl_order().to_vec()),
        Err(CipherError::NoCipherMatch { string: "EECDHX".to_owned() })
    );
}

#[test]
fn edh_alone_matches_no_rustls_suite() {
    let list = CipherList::parse("EDH").expect("EDH selects DHE ciphers");
    // The verifier names the string as given when it leaves no suite to offer.
    assert_eq!(list.source(), "EDH");
    let [word] = list.words() else { panic!("one word expected: {:?}", list.words()) };
    let WordOutcome::MatchedNoRustlsSuite { openssl } = &word.outcome else {
        panic!("unexpected outcome {:?}", word.outcome)
    };
    assert!(openssl.contains(&"DHE-RSA-AES256-GCM-SHA384".to_owned()));
    assert!(list.rustls_suites().is_empty());
    assert_eq!(list.preferred_key(), None);
    assert!(list.report().contains("no TLS 1.2 suite rustls offers is selected"));
}

#[test]
fn default_string_reports_every_word() {
    let list = CipherList::parse(EXPRESSWAY_DEFAULT).expect("the default parses");
    let words: Vec<&str> = list.words().iter().map(|w| w.word.as_str()).collect();
    assert_eq!(
        words,
        ["EECDH", "EDH", "HIGH", "-AES256+SHA", "!MEDIUM", "!LOW", "!3DES", "!MD5", "!PSK", "!eNULL", "!aNULL", "!aDH"]
    );
    let outcome = |w: &str| &list.words().iter().find(|r| r.word == w).expect("word present").outcome;
    assert!(matches!(outcome("EECDH"), WordOutcome::Matched { rustls, .. } if rustls.len() == 6));
    assert!(matches!(outcome("-AES256+SHA"), WordOutcome::MatchedNoRustlsSuite { .. }));
    assert_eq!(outcome("!MEDIUM"), &WordOutcome::MatchedNothing);
    assert_eq!(outcome("!3DES"), &WordOutcome::MatchedNothing);
    // aDH (static-DH certificates) left OpenSSL in 1.1.0: unknown, and no look-alike suggested.
    assert_eq!(outcome("!aDH"), &WordOutcome::Unknown { suggestion: None });
    assert!(list.report().contains("removed in OpenSSL 1.1.0"));
}

#[test]
fn commands_are_reported_and_bad_ones_refused() {
    let list = CipherList::parse("HIGH:@STRENGTH:@SECLEVEL=3").expect("valid commands");
    assert!(matches!(list.words()[1].outcome, WordOutcome::Command { .. }));
    assert_eq!(list.security_level(), 3);
    assert_eq!(
        CipherList::parse("HIGH:@SECLEVEL=9").map(|_| ()),
        Err(CipherError::Command { string: "HIGH:@SECLEVEL=9".to_owned(), command: "SECLEVEL=9".to_owned() })
    );
    assert_eq!(
        CipherList::parse("HIGH:*").map(|_| ()),
        Err(CipherError::Syntax { string: "HIGH:*".to_owned(), position: 5, text: "*".to_owned() })
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
    let mut expected = vec!["TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_GCM_SHA256"];
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
    let mut tls12: Vec<&str> =
        provider.cipher_suites.iter().filter(|s| s.tls13().is_none()).filter_map(|s| openssl_name(s.suite())).collect();
    tls12.sort_unstable();
    let mut expected = RUSTLS_TLS12;
    expected.sort_unstable();
    assert_eq!(tls12, expected, "the six suites this file assumes");
    assert_eq!(openssl_name(CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384), Some("ECDHE-RSA-AES256-GCM-SHA384"));
    assert_eq!(openssl_name(CipherSuite::TLS13_AES_128_GCM_SHA256), Some("TLS_AES_128_GCM_SHA256"));
}

#[test]
fn report_names_order_words_and_certificate() {
    let report =
        CipherList::parse(&format!("{RSA_PREFERENCE_PREFIX}EECDHX:{EXPRESSWAY_DEFAULT}")).expect("parses").report();
    assert!(report.contains("1. ECDHE-RSA-AES256-GCM-SHA384"), "{report}");
    assert!(report.contains("EECDHX"), "{report}");
    assert!(report.contains("did you mean 'EECDH'?"), "{report}");
    assert!(report.contains("serves its RSA certificate"), "{report}");
    assert!(report.contains("with TLS 1.3 on, TLS_AES_256_GCM_SHA384"), "{report}");
}

/// Every row's OpenSSL name and IANA name, as `openssl ciphers -V -stdname` pairs them.
#[test]
fn table_rows_and_iana_names_match_the_cli() {
    let out = Command::new("openssl")
        .args(["ciphers", "-V", "-stdname", "--", "ALL:COMPLEMENTOFALL:@SECLEVEL=0"])
        .output()
        .expect("the openssl CLI runs");
    let text = String::from_utf8(out.stdout).expect("ASCII");
    let mut rows = 0;
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // 0xC0,0x2C - TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 - ECDHE-ECDSA-... TLSv1.2 ...
        let (iana, name, version) = (fields[2], fields[4], fields[5]);
        if version == "TLSv1.3" {
            continue;
        }
        rows += 1;
        assert_eq!(iana_name(name), Some(iana), "{line}");
    }
    let all = CipherList::parse("ALL:COMPLEMENTOFALL:@SECLEVEL=0").expect("parses");
    assert_eq!(all.openssl_selection().len(), rows);
}

/// The cipher suites a rustls client built on the provider puts in its ClientHello, in order.
fn client_hello_suites(provider: CryptoProvider) -> Vec<CipherSuite> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .expect("the provider supports TLS 1.2 and 1.3")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = "cucm.steven.lab".try_into().expect("a DNS name");
    let mut client = rustls::ClientConnection::new(Arc::new(config), name).expect("client starts");
    let mut hello = Vec::new();
    client.write_tls(&mut hello).expect("writes to a Vec");
    let mut acceptor = rustls::server::Acceptor::default();
    acceptor.read_tls(&mut hello.as_slice()).expect("reads from a slice");
    let accepted = acceptor.accept().map_err(|(e, _)| e).expect("a valid ClientHello").expect("a whole ClientHello");
    accepted
        .client_hello()
        .cipher_suites()
        .iter()
        .copied()
        .filter(|s| *s != CipherSuite::TLS_EMPTY_RENEGOTIATION_INFO_SCSV)
        .collect()
}

#[rstest]
#[case::expressway_default(EXPRESSWAY_DEFAULT)]
#[case::expressway_default_with_rsa_prefix(&expressway_with_prefix())]
#[case::chacha_first("CHACHA20:AESGCM")]
fn client_hello_offers_the_derived_order(#[case] cipher_string: &str) {
    let list = CipherList::parse(cipher_string).expect("parses");
    let offered: Vec<&str> = client_hello_suites(list.crypto_provider(true))
        .into_iter()
        .map(|s| openssl_name(s).expect("known suite"))
        .collect();
    let mut expected = vec!["TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_GCM_SHA256"];
    expected.extend(list.suite_names());
    assert_eq!(offered, expected);
}

/// FIELD-NOTES: `openssl s_client -cipher` with the RSA prefix got the RSA certificate, without
/// it the ECDSA one.
#[rstest]
#[case("ECDHE-RSA-AES256-GCM-SHA384:EECDH:EDH:HIGH", KeyPreference::Rsa)]
#[case("EECDH:EDH:HIGH", KeyPreference::Ecdsa)]
#[case("aRSA:aECDSA", KeyPreference::Rsa)]
#[case("HIGH:+aECDSA", KeyPreference::Rsa)]
fn preferred_key_follows_the_first_suite(#[case] cipher_string: &str, #[case] key: KeyPreference) {
    let list = CipherList::parse(cipher_string).expect("parses");
    assert_eq!(list.preferred_key(), Some(key));
}

/// Random cipher strings built from aliases, names, prefixes, `+` joins, commands, separators
/// and junk: the parser and the CLI agree on every one. A fixed seed keeps it repeatable;
/// `MRALAB_CIPHER_SEED=<u64>` explores others.
#[test]
fn random_cipher_strings_match_openssl_cli() {
    const TOKENS: &[&str] = &[
        "HIGH",
        "ECDHE",
        "EECDH",
        "EDH",
        "DHE",
        "aRSA",
        "aECDSA",
        "RSA",
        "kRSA",
        "AESGCM",
        "AES256",
        "AES128",
        "AES",
        "CHACHA20",
        "SHA",
        "SHA256",
        "SHA384",
        "ALL",
        "DEFAULT",
        "COMPLEMENTOFALL",
        "COMPLEMENTOFDEFAULT",
        "eNULL",
        "aNULL",
        "MEDIUM",
        "3DES",
        "PSK",
        "CAMELLIA",
        "ARIA",
        "TLSv1.2",
        "SSLv3",
        "FIPS",
        "ECDSA",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "DHE-RSA-AES256-GCM-SHA384",
        "AES128-SHA",
        "FOO",
    ];
    const PREFIXES: &[&str] = &["", "", "", "!", "-", "+"];
    const COMMANDS: &[&str] = &["@STRENGTH", "@SECLEVEL=0", "@SECLEVEL=3", "@SECLEVEL=1"];
    const SEPARATORS: &[&str] = &[":", ":", ",", " ", ";"];
    let mut state: u64 = std::env::var("MRALAB_CIPHER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&s| s != 0)
        .unwrap_or(0x9E37_79B9_7F4A_7C15);
    let mut next = |n: usize| -> usize {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let mut mismatches = Vec::new();
    for _ in 0..300 {
        let words = 1 + next(6);
        let mut s = String::new();
        for w in 0..words {
            if w > 0 {
                s.push_str(SEPARATORS[next(SEPARATORS.len())]);
            }
            match next(20) {
                0 => s.push_str(COMMANDS[next(COMMANDS.len())]),
                1 => s.push('*'),
                _ => {
                    s.push_str(PREFIXES[next(PREFIXES.len())]);
                    let parts = 1 + next(2) * next(3);
                    for p in 0..parts {
                        if p > 0 {
                            s.push('+');
                        }
                        s.push_str(TOKENS[next(TOKENS.len())]);
                    }
                }
            }
        }
        if let Err(mismatch) = compare_with_cli(&s) {
            mismatches.push(mismatch);
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn unknown_words_are_named_with_the_likely_typo() {
    let list = CipherList::parse("ECDHE-RSA-AES256-GCM-SHA384:EECDHX:EDH:HIGH").expect("parses");
    assert_eq!(list.unknown_words(), ["'EECDHX': unknown, ignored by OpenSSL (did you mean 'EECDH'?)"]);
    assert!(CipherList::parse(EXPRESSWAY_DEFAULT).expect("parses").unknown_words().is_empty());
}

#[test]
fn a_name_openssl_removed_is_no_unknown_word() {
    let list = CipherList::parse("EECDH:!aDH:!QQQQQQQQ").expect("parses");
    assert_eq!(list.unknown_words(), ["'!QQQQQQQQ': unknown, ignored by OpenSSL"]);
}

#[test]
fn the_report_counts_each_words_ciphers_in_words() {
    let list = CipherList::parse("ECDHE-RSA-AES256-GCM-SHA384:ECDHE+AESGCM:DHE-DSS-AES256-GCM-SHA384")
        .expect("a valid cipher string");
    let report = list.report();
    assert!(report.contains("matched 1 OpenSSL cipher; rustls: "), "{report}");
    assert!(report.contains("OpenSSL ciphers; rustls: "), "{report}");
    assert!(report.contains("matched 1 OpenSSL cipher, no rustls suite"), "{report}");
}
