//! The PKI builder checked against an independent oracle: the `openssl` CLI, called as a
//! server's client would check (`openssl verify -purpose sslserver -attime ...`).

use std::path::Path;
use std::process::Command;

use harness::pki::{KeyCache, Pki, PkiError, Topology, builtin};
use harness::source::Source;
use rstest::rstest;
use tempfile::TempDir;
use time::macros::datetime;

const VALIDATION_TIME: time::OffsetDateTime = datetime!(2022-07-11 16:55:26 UTC);

/// Every shape a CUCM-side server can present, in one topology (shared with the model oracle test).
const SHAPES: &str = include_str!("data/shapes.toml");

fn shapes() -> Pki {
    let topology = Topology::from_toml(&Source::new("shapes.toml", SHAPES)).expect("topology");
    Pki::build(&topology, VALIDATION_TIME, &KeyCache::default()).expect("build")
}

fn write_pems(dir: &Path, name: &str, pki: &Pki, ids: &[&str]) -> String {
    let text: String = ids.iter().map(|id| pki.cert(id).expect("cert").pem()).collect();
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path.display().to_string()
}

/// The first `error N at D depth` of `openssl verify`, or `None` when it says OK.
fn openssl_verdict(pki: &Pki, leaf: &str, trusted: &[&str]) -> Option<(u32, u32)> {
    let dir = TempDir::new().expect("tempdir");
    let sent: Vec<String> = pki.topology().sends(leaf);
    let sent: Vec<&str> = sent.iter().map(String::as_str).collect();
    let ca = write_pems(dir.path(), "trust.pem", pki, trusted);
    let untrusted = write_pems(dir.path(), "sent.pem", pki, &sent);
    let leaf_pem = write_pems(dir.path(), "leaf.pem", pki, &[leaf]);
    let out = Command::new("openssl")
        .args(["verify", "-no-CApath", "-no-CAstore", "-purpose", "sslserver", "-attime"])
        .arg(VALIDATION_TIME.unix_timestamp().to_string())
        .args(["-CAfile", &ca, "-untrusted", &untrusted, &leaf_pem])
        .output()
        .expect("openssl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let line = text.lines().find(|l| l.starts_with("error ") && l.contains(" depth lookup"));
    match line {
        None => {
            assert!(out.status.success(), "openssl failed without an error line:\n{text}");
            None
        }
        Some(line) => {
            let words: Vec<&str> = line.split_whitespace().collect();
            Some((words[1].parse().expect("code"), words[3].parse().expect("depth")))
        }
    }
}

#[rstest]
#[case::full_chain_is_accepted("good/tomcat", &["root"], None)]
#[case::self_signed_leaf_is_error_18_at_depth_0("self/tomcat-ECDSA", &["root"], Some((18, 0)))]
#[case::trusted_self_signed_ca_true_leaf_is_accepted("self/tomcat-ECDSA", &["self/tomcat-ECDSA"], None)]
#[case::leaf_of_an_untrusted_ca_is_error_20("foreign/tomcat", &["root"], Some((20, 0)))]
#[case::untrusted_root_sent_in_the_chain_is_error_19("foreign-with-root/tomcat", &["root"], Some((19, 1)))]
#[case::leaf_only_with_intermediates_is_error_20("leafonly/tomcat", &["root"], Some((20, 0)))]
#[case::missing_intermediate_is_error_20("missing/tomcat", &["root"], Some((20, 0)))]
#[case::chain_in_the_wrong_order_is_accepted("disordered/tomcat", &["root"], None)]
#[case::extra_unrelated_certificate_is_accepted("extra/tomcat", &["root"], None)]
#[case::expired_leaf_is_error_10("expired/tomcat", &["root"], Some((10, 0)))]
#[case::not_yet_valid_leaf_is_error_9("future/tomcat", &["root"], Some((9, 0)))]
#[case::client_auth_only_leaf_is_error_26("clientonly/tomcat", &["root"], Some((26, 0)))]
#[case::leaf_without_eku_is_accepted("noeku/tomcat", &["root"], None)]
#[case::expired_intermediate_is_error_10_at_depth_1("under-expired/tomcat", &["root"], Some((10, 1)))]
#[case::only_the_issuing_intermediate_trusted_is_error_2("leafonly/tomcat", &["int-1"], Some((2, 1)))]
#[case::reissued_ca_not_trusted_is_error_20("reissued/tomcat", &["root"], Some((20, 0)))]
#[case::reissued_ca_trusted_is_accepted("reissued/tomcat", &["root", "root-reissued"], None)]
#[case::mismatched_aki_hides_the_issuer("badaki/tomcat", &["root"], Some((20, 0)))]
#[case::absent_aki_and_ski_still_chain("noaki/tomcat", &["root"], None)]
fn openssl_agrees_with_the_shape(#[case] leaf: &str, #[case] trusted: &[&str], #[case] expected: Option<(u32, u32)>) {
    let pki = shapes();
    assert_eq!(openssl_verdict(&pki, leaf, trusted), expected, "{leaf} trusted by {trusted:?}");
}

/// The validity boundaries as the real `openssl verify -attime T` draws them (X509_cmp_time): a
/// notAfter of T itself is expired (10), one a second later is not; a notBefore of T itself is
/// valid, one a second later is not yet (9). The tree's oddities say the same.
#[rstest]
#[case::not_after_at_t_is_expired("expires-at-t/tomcat", Some((10, 0)), Some("expired"))]
#[case::not_after_1s_before_t_is_expired("expired-1s-before-t/tomcat", Some((10, 0)), Some("expired"))]
#[case::not_after_1s_after_t_is_valid("expires-1s-after-t/tomcat", None, None)]
#[case::not_before_at_t_is_valid("starts-at-t/tomcat", None, None)]
#[case::not_before_1s_before_t_is_valid("started-1s-before-t/tomcat", None, None)]
#[case::not_before_1s_after_t_is_not_yet_valid("starts-1s-after-t/tomcat", Some((9, 0)), Some("not yet valid"))]
fn validity_boundaries_are_openssls_to_the_second(
    #[case] leaf: &str,
    #[case] expected: Option<(u32, u32)>,
    #[case] oddity: Option<&str>,
) {
    let pki = shapes();
    let cert = pki.cert(leaf).expect("leaf");
    let t = VALIDATION_TIME;
    let second = time::Duration::SECOND;
    assert!(
        [t - second, t, t + second].contains(&cert.not_after) || [t - second, t, t + second].contains(&cert.not_before),
        "{leaf}: a boundary to the second ({} .. {})",
        cert.not_before,
        cert.not_after
    );
    assert_eq!(openssl_verdict(&pki, leaf, &["root"]), expected, "{leaf}");
    let odd = pki.oddities(cert);
    let dated: Vec<&String> =
        odd.iter().filter(|o| o.starts_with("expired") || o.starts_with("not yet valid")).collect();
    match oddity {
        Some(word) => assert!(dated.len() == 1 && dated[0].starts_with(word), "{leaf}: {odd:?}"),
        None => assert!(dated.is_empty(), "{leaf}: {odd:?}"),
    }
}

fn x509_text(pki: &Pki, id: &str) -> String {
    let dir = TempDir::new().expect("tempdir");
    let path = write_pems(dir.path(), "c.pem", pki, &[id]);
    let out = Command::new("openssl").args(["x509", "-noout", "-text", "-in", &path]).output().expect("openssl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn openssl_shows_the_requested_subject_sans_and_eku() {
    let pki = shapes();
    let text = x509_text(&pki, "good/tomcat");
    assert!(text.contains("Subject: C = BE, ST = Belgium, L = Diegem, O = Cisco, OU = TAC, CN = good.lab"), "{text}");
    assert!(text.contains("DNS:good.lab, IP Address:10.48.36.215, DNS:10.48.36.216, DNS:*.wild.lab"), "{text}");
    assert!(text.contains("TLS Web Server Authentication, TLS Web Client Authentication"), "{text}");
    assert!(text.contains("Issuer: O = lab, CN = lab-intermediate-1"), "{text}");
    let client = x509_text(&pki, "clientonly/tomcat");
    assert!(client.contains("TLS Web Client Authentication") && !client.contains("Server Authentication"));
    let cn_only = x509_text(&pki, "cnonly/tomcat");
    assert!(!cn_only.contains("Subject Alternative Name"), "{cn_only}");
}

#[test]
fn aki_matches_the_issuer_ski_unless_told_otherwise() {
    let pki = shapes();
    let root = x509_text(&pki, "root");
    let ski_line = |text: &str, header: &str| {
        let mut lines = text.lines();
        lines.find(|l| l.contains(header)).map(|_| lines.next().unwrap_or_default().trim().to_string())
    };
    let root_ski = ski_line(&root, "Subject Key Identifier").expect("root has SKI");
    let good_aki = ski_line(&x509_text(&pki, "int-2"), "Authority Key Identifier").expect("AKI");
    assert_eq!(good_aki.trim_start_matches("keyid:"), root_ski);
    let bad_aki = ski_line(&x509_text(&pki, "badaki/tomcat"), "Authority Key Identifier").expect("AKI");
    assert_ne!(bad_aki.trim_start_matches("keyid:"), root_ski);
    let none = x509_text(&pki, "noaki/tomcat");
    assert!(!none.contains("Authority Key Identifier") && !none.contains("Subject Key Identifier"), "{none}");
    assert!(x509_text(&pki, "self/tomcat-ECDSA").contains("CA:TRUE"));
    assert!(x509_text(&pki, "self-noca/tomcat-ECDSA").contains("CA:FALSE"));
}

#[test]
fn same_cn_pairs_and_reissued_cas_have_different_keys() {
    let pki = shapes();
    let a = pki.cert("root").expect("root");
    let b = pki.cert("root-reissued").expect("root-reissued");
    assert_eq!(a.spec.subject, b.spec.subject);
    assert_ne!(a.ski, b.ski);
    assert!(pki.oddities(b).iter().any(|o| o.contains("same subject as CA root")));
}

#[test]
fn building_twice_gives_the_same_serials_subjects_validity_and_chains() {
    let (a, b) = (shapes(), shapes());
    for (x, y) in a.certs().zip(b.certs()) {
        assert_eq!(
            (x.id.as_str(), x.serial, x.not_before, x.not_after),
            (y.id.as_str(), y.serial, y.not_before, y.not_after)
        );
        assert_eq!(x.ski, y.ski, "{} gets the same cached key", x.id);
    }
    assert_eq!(a.tree(), b.tree());
}

#[test]
fn steven_lab_files_verify_as_described() {
    let topology = builtin::topology("steven-lab").expect("steven-lab");
    let pki = Pki::build(&topology, VALIDATION_TIME, &KeyCache::default()).expect("build");
    let dir = TempDir::new().expect("tempdir");
    pki.write_dir(dir.path()).expect("write");
    let verify = |leaf: &str| {
        let out = Command::new("openssl")
            .args(["verify", "-no-CApath", "-no-CAstore", "-purpose", "sslserver", "-attime"])
            .arg(VALIDATION_TIME.unix_timestamp().to_string())
            .arg("-CAfile")
            .arg(dir.path().join("trust/roots.pem"))
            .arg("-untrusted")
            .arg(dir.path().join(format!("chains/{leaf}.pem")))
            .arg(dir.path().join(format!("certs/{leaf}.pem")))
            .output()
            .expect("openssl");
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
    };
    assert!(verify("cucm/tomcat").contains(": OK"));
    assert!(verify("cucm/CallManager").contains(": OK"));
    assert!(verify("cucm/tomcat-ECDSA").contains("error 18 at 0 depth lookup"));
    assert!(verify("cucm/CallManager-ECDSA").contains("error 18 at 0 depth lookup"));
    let tree = std::fs::read_to_string(dir.path().join("tree.txt")).expect("tree");
    assert!(tree.contains("CN=cucm-EC.steven.lab") && tree.contains("! self-signed leaf"), "{tree}");
    assert!(dir.path().join("certs/cucm/tomcat.key.pem").is_file());
    assert!(dir.path().join("certs/cucm/tomcat.der").is_file());
    let key_der = dir.path().join("certs/cucm/tomcat.key.der");
    let out = Command::new("openssl")
        .args(["pkey", "-inform", "DER", "-noout", "-in"])
        .arg(&key_der)
        .output()
        .expect("openssl pkey");
    assert!(out.status.success(), "the DER key reads back: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn vngtp_builds_any_number_of_intermediates() {
    let topology = builtin::topology("vngtp:4").expect("vngtp:4");
    let pki = Pki::build(&topology, VALIDATION_TIME, &KeyCache::default()).expect("build");
    assert_eq!(
        pki.topology().sends("cucm/tomcat"),
        [
            "cucm/tomcat",
            "vngtp-intermediate-CA-1",
            "vngtp-intermediate-CA-2",
            "vngtp-intermediate-CA-3",
            "vngtp-intermediate-CA-4"
        ]
    );
    assert_eq!(openssl_verdict(&pki, "cucm/tomcat", &["vngtp-ACTIVE-DIR-CA"]), None);
}

#[track_caller]
fn check_error(toml: &str, expected: &str) {
    let err = Topology::from_toml(&Source::new("bad.toml", toml)).expect_err("must be refused");
    let message = err.to_string();
    assert!(message.contains(expected), "expected {expected:?} in:\n{message}");
}

#[test]
fn an_unknown_issuer_is_named_with_its_line_and_a_suggestion() {
    check_error(
        "[certs.steven-DC-CA]\nsubject = { CN = \"x\" }\n[certs.leaf]\nissuer = \"steven-DC-CAX\"\nsubject = { CN = \"y\" }\n",
        "bad.toml:4:10: certificate 'leaf': issuer 'steven-DC-CAX' does not exist (did you mean 'steven-DC-CA'?)",
    );
}

#[test]
fn a_cycle_of_issuers_is_refused() {
    check_error(
        "[certs.a]\nissuer = \"b\"\nsubject = { CN = \"a\" }\n[certs.b]\nissuer = \"a\"\nsubject = { CN = \"b\" }\n",
        "certificate 'a': field 'issuer' makes a cycle: a -> b -> a",
    );
}

#[test]
fn a_certificate_that_is_its_own_issuer_is_refused() {
    check_error(
        "[certs.int]\nissuer = \"int\"\nsubject = { CN = \"a\" }\n",
        "bad.toml:2:10: certificate 'int': field 'issuer' names the certificate itself",
    );
}

#[test]
fn bad_key_types_dates_and_fields_name_their_place() {
    check_error("[certs.a]\nkey = \"rsa-1024\"\nsubject = { CN = \"a\" }\n", "unknown key type 'rsa-1024'");
    check_error("[certs.a]\nkey = \"ecdsa-p265\"\nsubject = { CN = \"a\" }\n", "did you mean 'ecdsa-p256'?");
    check_error("[certs.a]\nnot_after = \"+365x\"\nsubject = { CN = \"a\" }\n", "line 2");
    check_error("[certs.a]\nnot_after = \"tomorrow\"\nsubject = { CN = \"a\" }\n", "neither relative");
    check_error("[certs.a]\nsubjekt = { CN = \"a\" }\n", "unknown field `subjekt`");
    check_error("[certs.a]\nsubject = { CN = \"a\" }\nsan = [\"ip:10.1.2\"]\n", "is not an IP address");
    check_error("[certs.\"cucm/tomcat-ecsda\"]\nsubject = { CN = \"a\" }\n", "did you mean 'tomcat-ECDSA'?");
    check_error(
        "[certs.a]\nsubject = { CN = \"a\" }\nsends = [\"a\", \"b\"]\n",
        "bad.toml:3:15: certificate 'a': field 'sends' names 'b', which does not exist",
    );
}

#[test]
fn an_unknown_builtin_topology_suggests_a_close_one() {
    let err = builtin::topology("steven-lap").expect_err("unknown");
    assert!(matches!(err, PkiError::UnknownTopology { .. }));
    assert!(err.to_string().contains("did you mean 'steven-lab'?"), "{err}");
}
