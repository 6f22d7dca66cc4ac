//! `cargo xtask diagnose`'s library: the seed's verbatim lines, every catalogue scenario that
//! declares a diagnosis, the input shapes a real Expressway hands over, and a fuzz run.

use std::io::Write as _;
use std::path::Path;

use harness::diagnose::DiagnosisClass;
use harness::diagnose::{self, DiagnoseError, Finding, Report, WORKAROUND, class_name};
use harness::pki::KeyCache;
use harness::scenario::Catalogue;
use harness::scenario::batch::run_files;
use harness::scenario::login::LoginSpec;
use harness::scenario::run::RunOptions;
use harness::verifier::Profile;
use harness::verifier::builtin::BuiltinFactory;

/// SPEC's "Failure classes and their log lines", verbatim, each with the seed's syslog prefix.
const SEED_SELF_SIGNED: [&str; 2] = [
    "2022-07-11T18:55:26.016+02:00 vcsc traffic_server[18242]: [ET_NET 0] WARNING: Core server certificate verification failed for (cucm.steven.lab). Action=Terminate Error=self signed certificate server=cucm.steven.lab(10.48.36.215) depth=0",
    "2022-07-11T18:55:26.016+02:00 vcsc traffic_server[18242]: [ET_NET 0] ERROR: SSL connection failed for 'cucm.steven.lab': error:1416F086:SSL routines:tls_process_server_certificate:certificate verify failed",
];

/// The seed's second excerpt (pid 3916), with the request lines SPEC gives verbatim, and the
/// header lines as the seed shows them: cut short at `Module="netw`.
const SEED_SNI: [&str; 8] = [
    "2022-07-11T19:49:01.472+02:00 vcsc traffic_server[3916]: UTCTime=\"2022-07-11 17:49:01,472\" Module=\"netw",
    "HTTPMSG:",
    "|GET http://vcs_control.steven.lab:8443/c3RldmVuLmxhYi9odHRwcy8xMC40OC4zNi4yMTUvODQ0Mw/cucm-uds/user/emusk/devices?max=100",
    "2022-07-11T19:49:01.478+02:00 vcsc traffic_server[3916]: UTCTime=\"2022-07-11 17:49:01,478\" Module=\"netw",
    "HTTPMSG:",
    "|GET /cucm-uds/user/emusk/devices?max=100 HTTP/1.1",
    "2022-07-11T19:49:01.491+02:00 vcsc traffic_server[3916]: [ET_NET 2] WARNING: SNI (10.48.36.215) not in certificate. Action=Terminate server=10.48.36.215(10.48.36.215)",
    "2022-07-11T19:49:01.491+02:00 vcsc traffic_server[3916]: [ET_NET 2] ERROR: SSL connection failed for '10.48.36.215': error:1416F086:SSL routines:tls_process_server_certificate:certificate verify failed",
];

/// (server, port, class) of each finding, sorted.
fn triples(report: &Report) -> Vec<(String, Option<u16>, Option<DiagnosisClass>)> {
    let mut out: Vec<_> = report.findings.iter().map(|f| (f.server.clone(), f.port, f.class)).collect();
    out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    out
}

#[track_caller]
fn only(report: &Report) -> &Finding {
    assert_eq!(report.findings.len(), 1, "expected one finding:\n{}", report.render());
    &report.findings[0]
}

fn seed_log() -> Vec<&'static str> {
    SEED_SELF_SIGNED.iter().chain(SEED_SNI.iter()).copied().collect()
}

#[test]
fn the_seeds_verbatim_lines_give_the_seeds_two_diagnoses() {
    let report = diagnose::diagnose_lines(&seed_log());
    assert_eq!(
        triples(&report),
        vec![
            ("10.48.36.215".to_string(), Some(8443), Some(DiagnosisClass::NameNotInCertificate)),
            // The seed shows no request line before its 6972 failure (the header lines are cut
            // at `Module="net`): the port is not in the log.
            ("cucm.steven.lab".to_string(), None, Some(DiagnosisClass::SelfSigned)),
        ],
        "{}",
        report.render()
    );
    let sni = &report.findings[0];
    assert_eq!(sni.address.as_deref(), Some("10.48.36.215"));
    assert_eq!(sni.errors, 1);
    assert!(
        sni.remedy.contains("10.48.36.215")
            && sni.remedy.contains("System > Server")
            && sni.remedy.contains("refresh discovery")
    );
    let self_signed = &report.findings[1];
    assert_eq!((self_signed.depth, self_signed.count, self_signed.errors), (Some(0), 1, 1));
    assert_eq!(self_signed.error, "self signed certificate");
    assert_eq!(self_signed.action.as_deref(), Some("Terminate"));
    assert_eq!(self_signed.last_line, SEED_SELF_SIGNED[0]);
    assert!(self_signed.remedy.starts_with("upload that self-signed certificate"), "{}", self_signed.remedy);
    for finding in &report.findings {
        assert_eq!(finding.workaround, WORKAROUND);
    }
}

#[test]
fn the_seeds_6972_failure_gets_its_port_from_a_request_line_before_it() {
    let mut lines = vec![
        "2022-07-11T18:55:26.006+02:00 vcsc traffic_server[18242]: UTCTime=\"2022-07-11 16:55:26,006\" Module=\"network.http.trafficserver\" Level=\"DEBUG\": Detail=\"Receive Request\" Txn-id=\"2\" HTTPMSG:",
        "|GET http://vcs_control.steven.lab:6972/c3RldmVuLmxhYi9odHRwcy9jdWNtLnN0ZXZlbi5sYWIvNjk3Mg/SPDefault.cnf.xml",
    ];
    lines.extend(SEED_SELF_SIGNED);
    let report = diagnose::diagnose_lines(&lines);
    assert_eq!(only(&report).port, Some(6972));
    assert_eq!(only(&report).concerns, "the self-signed certificate cucm.steven.lab:6972 serves (depth 0)");
}

#[test]
fn the_seeds_ocr_damaged_token_leaves_the_port_unknown_rather_than_guessing() {
    // The seed's own text has `MC400C4z` where the base64 reads `MC40OC4z`: it does not decode.
    let mut lines = seed_log();
    lines[4] =
        "|GET http://vcs_control.steven.lab:8443/c3RldmVuLmxhYi9odHRwcy8xMC400C4zNi4yMTUvODQ0Mw/cucm-uds/user/em";
    let report = diagnose::diagnose_lines(&lines);
    let sni = report.findings.iter().find(|f| f.server == "10.48.36.215").expect("finding");
    assert_eq!(sni.port, None);
}

// ---- the catalogue ----

/// Scenarios whose declared `diagnosis` their own log contradicts: what diagnose finds, and
/// why we believe the log rather than the declaration. Reported, not edited (the scenario
/// files belong to the catalogue). An entry that no longer differs fails as stale.
const DIVERGENCES: &[(&str, &[&str], &str)] = &[];

#[test]
fn every_scenario_that_declares_a_diagnosis_gets_exactly_that_diagnosis_from_its_log() {
    let catalogue = Catalogue::at(&Catalogue::workspace_root());
    let files = catalogue.files().expect("scenarios");
    let factory = BuiltinFactory(Profile::ExpresswayX14_2);
    let options = RunOptions {
        verifier: &factory,
        keys: KeyCache::default(),
        login: LoginSpec::jabber(),
        fleet: harness::scenario::run::FleetTier::InProcess,
    };
    let entries = run_files(&catalogue, &files, &options, "builtin", 2, &|_, _, _| {});
    let temp = tempfile::TempDir::new().expect("temp dir");
    let mut checked = 0;
    let mut failures = Vec::new();
    let ids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
    for (id, _, _) in DIVERGENCES {
        if !ids.iter().any(|i| i == id) {
            failures.push(format!("{id}: stale divergence, no such scenario"));
        }
    }
    for entry in entries {
        let scenario = catalogue.load(&entry.path).expect("loads");
        let (run, _) = entry.result.unwrap_or_else(|err| panic!("{} could not run: {err}", entry.id));
        let log_path = temp.path().join(format!("{}.log", entry.id.replace("::", "-")));
        std::fs::write(&log_path, run.log.join("\n")).expect("write log");
        let report = diagnose::diagnose_path(&log_path).expect("reads");
        let mut got: Vec<String> = report
            .findings
            .iter()
            .map(|f| {
                format!(
                    "{} {} {}",
                    f.server,
                    f.port.map_or("?".into(), |p| p.to_string()),
                    f.class.map_or("unclassified", class_name)
                )
            })
            .collect();
        got.sort();
        let mut want: Vec<String> = scenario
            .spec
            .diagnosis
            .iter()
            .map(|d| format!("{} {} {}", d.server, d.port, class_name(d.class)))
            .collect();
        want.sort();
        if scenario.spec.diagnosis.is_empty() {
            // No declared diagnosis: print what the log gives, for the record.
            if !got.is_empty() {
                eprintln!("{} (no diagnosis declared): {got:?}", entry.id);
            }
            continue;
        }
        checked += 1;
        if entry.id == "seed::remedy-upload-self-signed" {
            // The remedy step made 6972 answer 200: the failure is still reported, marked recovered.
            assert!(report.findings.iter().all(|f| f.recovered), "{}", report.render());
        }
        if entry.id == "seed::tftp-self-signed-ecdsa" {
            assert!(report.findings.iter().all(|f| !f.recovered), "{}", report.render());
        }
        if let Some((_, expected, reason)) = DIVERGENCES.iter().find(|(id, _, _)| *id == entry.id) {
            if got == want {
                failures.push(format!(
                    "{}: stale divergence, the log now gives the declared diagnosis ({reason})",
                    entry.id
                ));
            } else if got != *expected {
                failures
                    .push(format!("{}: declared {want:?}, diagnosed {got:?}, divergence says {expected:?}", entry.id));
            }
            continue;
        }
        if got != want {
            failures.push(format!("{}: declared {want:?}, diagnosed {got:?}\n{}", entry.id, report.render()));
        }
    }
    assert!(checked >= 30, "only {checked} scenarios declare a diagnosis");
    assert!(failures.is_empty(), "{} of {checked} scenarios differ:\n{}", failures.len(), failures.join("\n"));
}

// ---- what real Expressways hand over ----

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

fn tar_gz(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, path, content.as_slice()).expect("tar entry");
    }
    gzip(&builder.into_inner().expect("tar"))
}

fn text(lines: &[&str]) -> Vec<u8> {
    let mut out = lines.join("\n");
    out.push('\n');
    out.into_bytes()
}

fn diagnose_file(path: &Path) -> Report {
    diagnose::diagnose_path(path)
        .unwrap_or_else(|e| panic!("{}: {e}: {:?}", path.display(), std::error::Error::source(&e)))
}

#[test]
fn a_gzipd_log_reads_like_the_plain_one() {
    let temp = tempfile::TempDir::new().expect("temp dir");
    let plain = temp.path().join("traffic_server.log");
    let gz = temp.path().join("traffic_server.log.1.gz");
    std::fs::write(&plain, text(&seed_log())).expect("write");
    std::fs::write(&gz, gzip(&text(&seed_log()))).expect("write");
    let (a, b) = (diagnose_file(&plain), diagnose_file(&gz));
    assert_eq!(triples(&a), triples(&b));
    assert_eq!(a.findings.len(), 2);
}

#[test]
fn a_folder_is_read_recursively_and_its_pids_kept_apart() {
    let temp = tempfile::TempDir::new().expect("temp dir");
    let deep = temp.path().join("vcsc/var/log");
    std::fs::create_dir_all(&deep).expect("mkdir");
    std::fs::write(temp.path().join("vcsc/first.log"), text(&SEED_SELF_SIGNED)).expect("write");
    std::fs::write(deep.join("second.log.gz"), gzip(&text(&SEED_SNI))).expect("write");
    std::fs::write(deep.join("capture.pcap"), [0xd4, 0xc3, 0xb2, 0xa1, 0xff, 0x00, 0x0a, 0xfe]).expect("write");
    let report = diagnose_file(temp.path());
    assert_eq!(report.files, 3);
    assert_eq!(triples(&report), triples(&diagnose::diagnose_lines(&seed_log())));
}

#[test]
fn a_diagnostic_logging_bundle_is_read_with_its_gzipd_members() {
    let temp = tempfile::TempDir::new().expect("temp dir");
    let bundle = temp.path().join("diagnostic_log_vcsc_2022-07-11_16_55_26.tar.gz");
    std::fs::write(
        &bundle,
        tar_gz(&[
            ("loggingsnapshot_vcsc_2022-07-11_16_55_26.txt", text(&SEED_SELF_SIGNED)),
            ("var/log/traffic_server/diags.log.gz", gzip(&text(&SEED_SNI))),
            ("tcpdump/vcsc.pcap", vec![0xd4, 0xc3, 0xb2, 0xa1, 0x02, 0x00, 0x04, 0x00, 0xff, 0xfe]),
        ]),
    )
    .expect("write");
    let report = diagnose_file(&bundle);
    assert_eq!(report.files, 3);
    assert_eq!(triples(&report), triples(&diagnose::diagnose_lines(&seed_log())));
    assert!(
        report.findings[0].source.contains(".tar.gz!var/log/traffic_server/diags.log.gz:7"),
        "{}",
        report.findings[0].source
    );
}

#[test]
fn unreadable_input_is_an_error_not_a_diagnosis() {
    let temp = tempfile::TempDir::new().expect("temp dir");
    let missing = temp.path().join("nope.log");
    assert!(matches!(diagnose::diagnose_path(&missing), Err(DiagnoseError::Read { .. })));
    let corrupt_gz = temp.path().join("bad.log.gz");
    let mut bytes = gzip(&text(&seed_log()));
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&corrupt_gz, &bytes).expect("write");
    assert!(matches!(diagnose::diagnose_path(&corrupt_gz), Err(DiagnoseError::Gzip { .. })));
    let corrupt_tar = temp.path().join("bad.tar.gz");
    let mut tar = tar_gz(&[("a.log", text(&seed_log())), ("b.log", vec![b'x'; 4096])]);
    let plain_tar = {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(tar.as_slice()), &mut out).expect("gunzip");
        out
    };
    // A tar cut inside its second member: gzip is whole, the archive is not.
    tar = gzip(&plain_tar[..512 + 1024 + 512 + 100]);
    std::fs::write(&corrupt_tar, &tar).expect("write");
    assert!(
        matches!(diagnose::diagnose_path(&corrupt_tar), Err(DiagnoseError::Tar { .. })),
        "{:?}",
        diagnose::diagnose_path(&corrupt_tar)
    );
}

#[test]
fn interleaved_pids_tie_each_warning_to_its_own_pids_request() {
    let request = |pid: u32, port: u16, txn: u32| {
        let token = harness::mra::token("steven.lab", "cucm.steven.lab", port);
        [
            format!(
                "2022-07-11T18:55:26.000+02:00 vcsc traffic_server[{pid}]: UTCTime=\"2022-07-11 16:55:26,000\" Module=\"network.http.trafficserver\" Level=\"DEBUG\": Detail=\"Receive Request\" Txn-id=\"{txn}\" HTTPMSG:"
            ),
            format!("|GET http://vcs_control.steven.lab:{port}/{token}/x"),
        ]
    };
    let warning = |pid: u32, error: &str| {
        format!(
            "2022-07-11T18:55:26.016+02:00 vcsc traffic_server[{pid}]: [ET_NET 1] WARNING: Core server certificate verification failed for (cucm.steven.lab). Action=Terminate Error={error} server=cucm.steven.lab(10.48.36.215) depth=0"
        )
    };
    let [a1, a2] = request(100, 6972, 1);
    let [b1, b2] = request(200, 8443, 1);
    let lines = vec![
        a1,
        a2,
        b1,
        b2,
        warning(100, "self signed certificate"),
        warning(200, "unable to get local issuer certificate"),
    ];
    let report = diagnose::diagnose_lines(&lines);
    assert_eq!(
        triples(&report),
        vec![
            ("cucm.steven.lab".into(), Some(6972), Some(DiagnosisClass::SelfSigned)),
            ("cucm.steven.lab".into(), Some(8443), Some(DiagnosisClass::UnknownIssuer)),
        ]
    );
}

#[test]
fn truncated_lines_are_read_as_far_as_they_go() {
    let whole = SEED_SELF_SIGNED[0];
    let cut_after_error = &whole[..whole.find(" server=").expect("server=") + 20];
    let cut_before_error = &whole[..whole.find("Error=").expect("Error=") - 3];
    let report = diagnose::diagnose_lines(&[cut_after_error]);
    assert_eq!(only(&report).class, Some(DiagnosisClass::SelfSigned));
    assert_eq!(only(&report).depth, None);
    // A line cut before its error still counts, but does not hide what a whole line said.
    let report = diagnose::diagnose_lines(&[whole, cut_before_error]);
    let finding = only(&report);
    assert_eq!((finding.class, finding.count), (Some(DiagnosisClass::SelfSigned), 2));
    // Alone, it is a failure without a class.
    assert_eq!(only(&diagnose::diagnose_lines(&[cut_before_error])).class, None);
    // The seed's own cut header lines are skipped.
    let report = diagnose::diagnose_lines(&[
        "2022-07-11T18:55:26.000+02:00 vcsc traffic\\_server[18242]: UTCTime=\"2022-07-11 16:55:26,000\" Module=\"net",
    ]);
    assert!(report.findings.is_empty());
}

#[test]
fn stock_ats_diags_log_lines_with_openssl_3_wording_are_classified() {
    let diags = |rest: &str| format!("[Jul 11 16:55:26.016] [ET_NET 0] WARNING: {rest}");
    let cases = [
        (
            "Core server certificate verification failed for (cucm.steven.lab). Action=Terminate Error=self-signed certificate server=cucm.steven.lab(10.48.36.215) depth=0",
            DiagnosisClass::SelfSigned,
        ),
        (
            "Core server certificate verification failed for (cucm.steven.lab). Action=Terminate Error=self-signed certificate in certificate chain server=cucm.steven.lab(10.48.36.215) depth=2",
            DiagnosisClass::UntrustedRoot,
        ),
        (
            "Core server certificate verification failed for (cucm.steven.lab). Action=Terminate Error=unsuitable certificate purpose server=cucm.steven.lab(10.48.36.215) depth=0",
            DiagnosisClass::WrongPurpose,
        ),
        (
            "Core server certificate verification failed for (cucm.steven.lab). Action=Terminate Error=unable to get local issuer certificate server=cucm.steven.lab(10.48.36.215) depth=1",
            DiagnosisClass::UnknownIssuer,
        ),
        (
            "SNI (cucm.steven.lab) not in certificate. Action=Terminate server=cucm.steven.lab(10.48.36.215)",
            DiagnosisClass::NameNotInCertificate,
        ),
    ];
    for (rest, class) in cases {
        let report = diagnose::diagnose_lines(&[diags(rest)]);
        let finding = only(&report);
        assert_eq!(finding.class, Some(class), "{rest}");
        assert_eq!(
            (finding.server.as_str(), finding.address.as_deref(), finding.port),
            ("cucm.steven.lab", Some("10.48.36.215"), None)
        );
        assert!(finding.peers.is_empty());
    }
}

#[test]
fn the_error_text_decides_before_the_depth() {
    use diagnose::{ErrorMeaning, classify};
    let cases: [(&str, Option<u32>, ErrorMeaning); 14] = [
        ("self signed certificate", Some(0), ErrorMeaning::Class(DiagnosisClass::SelfSigned)),
        ("self signed certificate", None, ErrorMeaning::Class(DiagnosisClass::SelfSigned)),
        ("self signed certificate in certificate chain", Some(1), ErrorMeaning::Class(DiagnosisClass::UntrustedRoot)),
        ("Self-signed certificate in certificate chain", Some(0), ErrorMeaning::Class(DiagnosisClass::UntrustedRoot)),
        ("unable to get local issuer certificate", Some(0), ErrorMeaning::Class(DiagnosisClass::UnknownIssuer)),
        ("unable to get local issuer certificate", Some(3), ErrorMeaning::Class(DiagnosisClass::UnknownIssuer)),
        ("unable to get issuer certificate", Some(1), ErrorMeaning::Class(DiagnosisClass::MissingRoot)),
        ("certificate has expired", Some(2), ErrorMeaning::Class(DiagnosisClass::Expired)),
        ("certificate is not yet valid", Some(0), ErrorMeaning::Class(DiagnosisClass::NotYetValid)),
        ("unsupported certificate purpose", Some(0), ErrorMeaning::Class(DiagnosisClass::WrongPurpose)),
        ("unsuitable certificate purpose", Some(0), ErrorMeaning::Class(DiagnosisClass::WrongPurpose)),
        ("unable to verify the first certificate", Some(0), ErrorMeaning::FollowOn),
        ("path length constraint exceeded", Some(2), ErrorMeaning::Other),
        ("", None, ErrorMeaning::Other),
    ];
    for (error, depth, want) in cases {
        assert_eq!(classify(error, depth), want, "{error} at {depth:?}");
    }
}

#[test]
fn permissives_follow_on_line_is_no_finding_of_its_own() {
    let line = "2022-07-11T18:55:26.016+02:00 vcsc traffic_server[18242]: [ET_NET 0] WARNING: Core server certificate verification failed for (cucm.steven.lab). Action=Continue Error=unable to verify the first certificate server=cucm.steven.lab(10.48.36.215) depth=0";
    assert!(diagnose::diagnose_lines(&[line]).findings.is_empty());
    assert!(!diagnose::diagnose_lines(&[line]).found_failures());
}

#[test]
fn no_remedy_uploads_a_ca_signed_leaf_and_every_finding_names_the_workaround() {
    let line = |error: &str, depth: u32| {
        format!(
            "x traffic_server[1]: WARNING: Core server certificate verification failed for (cucm.steven.lab). Action=Terminate Error={error} server=cucm.steven.lab(10.48.36.215) depth={depth}"
        )
    };
    let lines = [
        line("unable to get local issuer certificate", 0),
        line("certificate has expired", 0),
        line("unsupported certificate purpose", 0),
        line("certificate is not yet valid", 0),
        line("unable to get issuer certificate", 1),
    ];
    for l in &lines {
        let report = diagnose::diagnose_lines(&[l]);
        let finding = only(&report);
        assert!(!finding.remedy.contains("upload that self-signed certificate"), "{}", finding.remedy);
        assert!(
            !finding.remedy.contains("upload the certificate") && !finding.remedy.contains("upload the leaf"),
            "{}",
            finding.remedy
        );
        assert_eq!(finding.workaround, "xConfiguration EdgeConfigServer VerifyOriginServer: Off");
        assert!(report.render().contains("xConfiguration EdgeConfigServer VerifyOriginServer: Off"));
    }
}

#[test]
fn json_lists_each_finding_with_its_fields() {
    let report = diagnose::diagnose_lines(&seed_log());
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("json");
    let list = json.as_array().expect("a list");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["server"], "10.48.36.215");
    assert_eq!(list[0]["port"], 8443);
    assert_eq!(list[0]["class"], "name-not-in-certificate");
    assert_eq!(list[1]["class"], "self-signed");
    assert_eq!(list[1]["port"], serde_json::Value::Null);
    assert_eq!(list[1]["depth"], 0);
    assert_eq!(list[1]["error"], "self signed certificate");
    for key in ["address", "count", "last_line", "remedy", "workaround", "concerns", "peers", "recovered"] {
        assert!(list[1].get(key).is_some(), "no {key}");
    }
    assert_eq!(diagnose::diagnose_lines(&[""]).to_json(), "[]");
}

// ---- fuzz ----

mod fuzz {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use proptest::prelude::*;

    use super::*;

    const DIAGS: &str = "[Jul 11 16:55:26.016] [ET_NET 0] WARNING: Core server certificate verification failed for (cucm.steven.lab). Action=Terminate Error=self-signed certificate in certificate chain server=cucm.steven.lab(10.48.36.215) depth=2";

    fn corpus() -> Vec<&'static str> {
        let mut lines = seed_log();
        lines.push(DIAGS);
        lines.push("2022-07-11T18:55:26.033+02:00 vcsc traffic_server[18242]: UTCTime=\"2022-07-11 16:55:26,033\" Module=\"network.http.trafficserver\" Level=\"DEBUG\": Detail=\"Sending Response\" Txn-id=\"2\" HTTPMSG:");
        lines.push("|HTTP/1.1 200 OK");
        lines.push("2022-07-11T18:55:26.006+02:00 vcsc traffic_server[18242]: UTCTime=\"2022-07-11 16:55:26,006\" Module=\"network.http.trafficserver\" Level=\"DEBUG\": Detail=\"Receive Request\" Txn-id=\"2\" HTTPMSG:");
        lines.push("|GET http://vcs_control.steven.lab:6972/c3RldmVuLmxhYi9odHRwcy9jdWNtLnN0ZXZlbi5sYWIvNjk3Mg/SPDefault.cnf.xml");
        lines
    }

    #[derive(Debug, Clone)]
    enum Mutation {
        Truncate(usize),
        Insert(usize, Vec<u8>),
        Overwrite(usize, u8),
        SwapFields(usize, usize),
        Delete(usize, usize),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            any::<usize>().prop_map(Mutation::Truncate),
            (any::<usize>(), prop::collection::vec(any::<u8>(), 1..12))
                .prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
            (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Mutation::Overwrite(at, b)),
            (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapFields(a, b)),
            (any::<usize>(), 1usize..40).prop_map(|(at, n)| Mutation::Delete(at, n)),
        ]
    }

    fn apply(line: &[u8], mutations: &[Mutation]) -> Vec<u8> {
        let mut bytes = line.to_vec();
        for m in mutations {
            let len = bytes.len().max(1);
            match m {
                Mutation::Truncate(at) => bytes.truncate(at % len),
                Mutation::Insert(at, new) => {
                    let at = at % (bytes.len() + 1);
                    bytes.splice(at..at, new.iter().copied());
                }
                Mutation::Overwrite(at, b) => {
                    if !bytes.is_empty() {
                        bytes[at % len] = *b;
                    }
                }
                Mutation::SwapFields(a, b) => {
                    let mut fields: Vec<Vec<u8>> = bytes.split(|c| *c == b' ').map(<[u8]>::to_vec).collect();
                    let n = fields.len();
                    fields.swap(a % n, b % n);
                    bytes = fields.join(&b' ');
                }
                Mutation::Delete(at, n) => {
                    let at = at % (bytes.len() + 1);
                    let end = (at + n).min(bytes.len());
                    bytes.drain(at..end);
                }
            }
        }
        bytes
    }

    fn mutated_log() -> impl Strategy<Value = Vec<u8>> {
        let corpus = corpus();
        let n = corpus.len();
        prop::collection::vec((0..n, prop::collection::vec(mutation(), 0..4)), 1..6).prop_map(move |picks| {
            let mut out = Vec::new();
            for (i, mutations) in picks {
                out.extend(apply(corpus[i].as_bytes(), &mutations));
                out.push(b'\n');
            }
            out
        })
    }

    /// Each generated case is a log proptest builds (and shrinks on a panic) plus `variants - 1`
    /// more derived from it by a seeded xorshift: each byte mutated, cut or duplicated. Debug
    /// builds of proptest's generation cost ~0.4 ms a case; the parser far less.
    fn run(cases: u32, variants: usize) -> usize {
        let ran = AtomicUsize::new(0);
        let config =
            ProptestConfig { cases, failure_persistence: None, max_shrink_iters: 2_000, ..ProptestConfig::default() };
        proptest!(config, |(log in mutated_log(), seed in any::<u64>())| {
            let mut state = seed | 1;
            let mut next = move || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            };
            for variant in 0..variants {
                let mut input = log.clone();
                for _ in 0..variant.min(6) {
                    let r = next();
                    let len = input.len().max(1);
                    let at = (r >> 8) as usize % len;
                    match r % 4 {
                        0 => input.truncate(at),
                        1 => if let Some(b) = input.get_mut(at) { *b = (r >> 40) as u8 },
                        2 => input.insert(at.min(input.len()), (r >> 32) as u8),
                        _ => {
                            let copy: Vec<u8> = input.get(at..).unwrap_or_default().iter().take(64).copied().collect();
                            input.splice(at.min(input.len())..at.min(input.len()), copy);
                        }
                    }
                }
                let report = diagnose::diagnose_bytes(&input);
                // Whatever it found renders and serialises.
                let _ = report.render();
                let _ = report.to_json();
                ran.fetch_add(1, Ordering::Relaxed);
            }
        });
        ran.into_inner()
    }

    /// 100,000 mutated logs of 1 to 5 lines each (5,000 proptest cases of 20 variants): none
    /// panics.
    #[test]
    fn a_hundred_thousand_mutated_logs_run_without_a_panic() {
        let started = std::time::Instant::now();
        let ran = run(5_000, 20);
        eprintln!("fuzz: {ran} mutated logs ran without a panic in {:.1?}", started.elapsed());
        assert_eq!(ran, 100_000);
    }

    /// The long run, every input from proptest itself:
    /// `cargo test -p harness --test diagnose -- --ignored`.
    #[test]
    #[ignore = "long: 200,000 proptest cases (about 90 s in a debug build)"]
    fn two_hundred_thousand_proptest_logs_run_without_a_panic() {
        let started = std::time::Instant::now();
        let ran = run(200_000, 1);
        eprintln!("fuzz: {ran} mutated logs ran without a panic in {:.1?}", started.elapsed());
        assert_eq!(ran, 200_000);
    }
}

#[cfg(unix)]
#[test]
fn a_folder_with_a_symlink_loop_is_read_once() {
    let temp = tempfile::TempDir::new().expect("temp dir");
    std::fs::write(temp.path().join("a.log"), text(&SEED_SELF_SIGNED)).expect("write");
    std::os::unix::fs::symlink(temp.path(), temp.path().join("loop")).expect("symlink");
    let report = diagnose_file(temp.path());
    assert_eq!(report.files, 1);
    assert_eq!(only(&report).class, Some(DiagnosisClass::SelfSigned));
}

#[test]
fn a_clusters_merged_log_keeps_peers_apart_even_with_the_same_pid() {
    let header = |peer: &str, detail: &str, txn: u32| {
        format!(
            "2022-07-11T18:55:26.000+02:00 {peer} traffic_server[18242]: UTCTime=\"2022-07-11 16:55:26,000\" Module=\"network.http.trafficserver\" Level=\"DEBUG\": Detail=\"{detail}\" Txn-id=\"{txn}\" HTTPMSG:"
        )
    };
    let target = |port: u16| {
        format!(
            "|GET http://vcs_control.steven.lab:{port}/{}/x",
            harness::mra::token("steven.lab", "cucm.steven.lab", port)
        )
    };
    let warning = |peer: &str| {
        format!(
            "2022-07-11T18:55:26.016+02:00 {peer} traffic_server[18242]: [ET_NET 0] WARNING: Core server certificate verification failed for (cucm.steven.lab). Action=Terminate Error=unable to get local issuer certificate server=cucm.steven.lab(10.48.36.215) depth=0"
        )
    };
    let lines = vec![
        header("vcsc2", "Receive Request", 1),
        target(8443),
        header("vcsc1", "Receive Request", 1),
        target(6972),
        warning("vcsc2"),
        // vcsc1 gets its answer from 8443 afterwards: vcsc2 has not recovered for that.
        header("vcsc1", "Receive Request", 2),
        target(8443),
        header("vcsc1", "Sending Response", 2),
        "|HTTP/1.1 200 OK".to_string(),
    ];
    let report = diagnose::diagnose_lines(&lines);
    let finding = only(&report);
    assert_eq!(
        (finding.port, finding.peers.clone(), finding.recovered),
        (Some(8443), vec!["vcsc2".to_string()], false)
    );
    let mut recovered = lines.clone();
    recovered.extend([
        header("vcsc2", "Receive Request", 3),
        target(8443),
        header("vcsc2", "Sending Response", 3),
        "|HTTP/1.1 200 OK".into(),
    ]);
    assert!(only(&diagnose::diagnose_lines(&recovered)).recovered);
}

// ---- zip, bzip2 and xz bundles ----

/// A zip of `entries`, deflated, written by the `zip` crate: with its sizes in each local
/// header (`streamed: false`, what a seekable writer makes), or after each member's data in a
/// data descriptor (`streamed: true`, what macOS, Java and every streaming writer make).
fn zip_of(entries: &[(&str, Vec<u8>)], streamed: bool) -> Vec<u8> {
    use zip::write::SimpleFileOptions;
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let write = |writer: &mut dyn FnMut(&str, &[u8])| {
        for (path, content) in entries {
            writer(path, content);
        }
    };
    if streamed {
        let mut zip = zip::ZipWriter::new_stream(Vec::new());
        zip.add_directory("var/", options).expect("folder");
        write(&mut |path, content| {
            zip.start_file(path, options).expect("member");
            zip.write_all(content).expect("write");
        });
        zip.finish().expect("zip").into_inner()
    } else {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        zip.add_directory("var/", options).expect("folder");
        write(&mut |path, content| {
            zip.start_file(path, options).expect("member");
            zip.write_all(content).expect("write");
        });
        zip.finish().expect("zip").into_inner()
    }
}

fn tar_of(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, path, content.as_slice()).expect("tar entry");
    }
    builder.into_inner().expect("tar")
}

fn bzip2(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    encoder.write_all(bytes).expect("bzip2");
    encoder.finish().expect("bzip2")
}

fn xz(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::with_preset(6)).expect("xz");
    encoder.write_all(bytes).expect("xz");
    encoder.finish().expect("xz")
}

/// The seed's two excerpts as a bundle holds them: one plain, one gzip'd, beside a capture.
fn bundle_entries() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("loggingsnapshot_vcsc_2022-07-11_16_55_26.txt", text(&SEED_SELF_SIGNED)),
        ("var/log/traffic_server/diags.log.gz", gzip(&text(&SEED_SNI))),
        ("tcpdump/vcsc.pcap", vec![0xd4, 0xc3, 0xb2, 0xa1, 0x02, 0x00, 0x04, 0x00, 0xff, 0xfe]),
    ]
}

#[track_caller]
fn assert_reads_like_the_seed(bundle: &Path, member: &str) {
    let report = diagnose_file(bundle);
    assert_eq!(report.files, 3, "{}", report.render());
    assert_eq!(triples(&report), triples(&diagnose::diagnose_lines(&seed_log())), "{}", report.render());
    assert!(report.findings[0].source.ends_with(member), "{}", report.findings[0].source);
    assert_eq!(report.reading.skipped.count, 0, "{:?}", report.reading.skipped);
}

#[test]
fn a_zip_bundle_reads_like_the_tar_gz_one_with_or_without_data_descriptors() {
    let temp = tempfile::TempDir::new().expect("temp dir");
    for (name, streamed) in [("sized.zip", false), ("streamed.zip", true)] {
        let bundle = temp.path().join(name);
        let bytes = zip_of(&bundle_entries(), streamed);
        let flags = local_header(&bytes, 1) + 6;
        assert_eq!(bytes[flags] & 8 != 0, streamed, "data descriptor flag of {name}");
        std::fs::write(&bundle, bytes).expect("write");
        assert_reads_like_the_seed(&bundle, &format!("{name}!var/log/traffic_server/diags.log.gz:7"));
    }
    // A zip inside a .tar.gz is read from the stream as well.
    let nested = temp.path().join("outer.tar.gz");
    std::fs::write(&nested, tar_gz(&[("inner.zip", zip_of(&bundle_entries(), true))])).expect("write");
    assert_reads_like_the_seed(&nested, "outer.tar.gz!inner.zip!var/log/traffic_server/diags.log.gz:7");
}

#[test]
fn tar_bz2_and_tar_xz_bundles_read_like_the_tar_gz_one() {
    let temp = tempfile::TempDir::new().expect("temp dir");
    let tar = tar_of(&bundle_entries());
    for (name, bytes) in [("bundle.tar.bz2", bzip2(&tar)), ("bundle.tar.xz", xz(&tar))] {
        let bundle = temp.path().join(name);
        std::fs::write(&bundle, bytes).expect("write");
        assert_reads_like_the_seed(&bundle, &format!("{name}!var/log/traffic_server/diags.log.gz:7"));
    }
    // Formats go by their first bytes, not their names: bzip2'd and xz'd logs too.
    let log = temp.path().join("traffic_server.log");
    for bytes in [bzip2(&text(&seed_log())), xz(&text(&seed_log()))] {
        std::fs::write(&log, bytes).expect("write");
        assert_eq!(triples(&diagnose_file(&log)), triples(&diagnose::diagnose_lines(&seed_log())));
    }
}

/// The offset of the `n`th (from 0) local header of `zip`.
fn local_header(zip: &[u8], n: usize) -> usize {
    zip.windows(4).enumerate().filter(|(_, w)| *w == b"PK\x03\x04").nth(n).expect("local header").0
}

#[test]
fn a_damaged_or_unsupported_zip_member_is_skipped_and_the_members_after_it_read() {
    let temp = tempfile::TempDir::new().expect("temp dir");
    let entries = [("a.log", text(&SEED_SNI)), ("b.log", text(&SEED_SNI)), ("c.log", text(&SEED_SELF_SIGNED))];
    let zip = zip_of(&entries, false);
    // Member 1 is the folder `var/`: a.log is 1, b.log is 2.
    let mut damaged = zip.clone();
    let b = local_header(&damaged, 2);
    let name_len = usize::from(u16::from_le_bytes([damaged[b + 26], damaged[b + 27]]));
    let extra_len = usize::from(u16::from_le_bytes([damaged[b + 28], damaged[b + 29]]));
    damaged[b + 30 + name_len + extra_len + 3] ^= 0x55;
    let path = temp.path().join("damaged.zip");
    std::fs::write(&path, &damaged).expect("write");
    let report = diagnose_file(&path);
    assert_eq!(
        report.reading.skipped.by_reason.get(&diagnose::SkipReason::CorruptZip),
        Some(&1),
        "{:?}",
        report.reading
    );
    assert_eq!(report.reading.skipped.entries[0].name, format!("{}!b.log", path.display()));
    assert!(report.findings.iter().any(|f| f.class == Some(DiagnosisClass::SelfSigned)), "c.log was read");

    let mut unsupported = zip;
    let b = local_header(&unsupported, 2);
    unsupported[b + 8..b + 10].copy_from_slice(&14u16.to_le_bytes()); // LZMA
    let path = temp.path().join("unsupported.zip");
    std::fs::write(&path, &unsupported).expect("write");
    let report = diagnose_file(&path);
    let skipped = &report.reading.skipped.entries[0];
    assert_eq!(
        (skipped.reason, skipped.detail.as_deref()),
        (diagnose::SkipReason::Unsupported, Some("compression method 14 (LZMA), not read"))
    );
    assert_eq!(report.files, 2);
}

#[test]
fn an_archive_that_does_not_open_is_an_error_never_a_clean_bill() {
    let temp = tempfile::TempDir::new().expect("temp dir");
    let zip = zip_of(&[("a.log", text(&seed_log()))], true);
    let cases: [(&str, Vec<u8>); 4] = [
        ("cut.zip", zip[..zip.len() / 2].to_vec()),
        ("empty.zip", b"PK\x05\x06".iter().copied().chain([0; 18]).collect()),
        ("cut.tar.bz2", bzip2(&tar_of(&bundle_entries()))[..200].to_vec()),
        ("cut.tar.xz", xz(&tar_of(&bundle_entries()))[..200].to_vec()),
    ];
    for (name, bytes) in cases {
        let path = temp.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        let result = diagnose::diagnose_path(&path);
        assert!(
            matches!(
                result,
                Err(DiagnoseError::Zip { .. }
                    | DiagnoseError::Bzip2 { .. }
                    | DiagnoseError::Xz { .. }
                    | DiagnoseError::NothingReadable { .. })
            ),
            "{name}: {result:?}"
        );
    }
}

// ---- what cannot be read as logs ----

#[test]
fn random_bytes_an_empty_file_and_prose_cannot_be_read_as_logs() {
    let temp = tempfile::TempDir::new().expect("temp dir");
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("random.bin", random.clone(), "it looks binary, not text ("),
        ("random.gz", gzip(&random), "it looks binary, not text ("),
        ("empty.log", Vec::new(), "it is empty"),
        (
            "README.txt",
            b"Collect the logs with tcpdump on.\nThen upload them.\n".to_vec(),
            "no line of it looks like a syslog or diags.log line (2 line(s) read)",
        ),
    ];
    for (name, bytes, why) in cases {
        let path = temp.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        match diagnose::diagnose_path(&path) {
            Err(error @ DiagnoseError::NotLogs { .. }) => {
                let message = error.to_string();
                assert!(message.starts_with(&format!("'{}' cannot be read as logs: ", path.display())), "{message}");
                assert!(message.contains(why), "{message}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    // One log line is enough, whatever else is beside it.
    let path = temp.path().join("mixed");
    std::fs::create_dir(&path).expect("mkdir");
    std::fs::write(path.join("capture.bin"), &random).expect("write");
    std::fs::write(path.join("clean.log"), "[Jul 11 16:55:26.016] [ET_NET 0] NOTE: traffic server running\n")
        .expect("write");
    assert!(diagnose_file(&path).findings.is_empty());
}

#[test]
fn log_lines_are_told_by_their_stamp_tag_or_content() {
    for line in [
        "2022-07-11T18:55:26.016+02:00 vcsc traffic_server[18242]: [ET_NET 0] NOTE: x",
        "2022-07-11 18:55:26,016 anything",
        "Jul  1 18:55:26 vcsc kernel: x",
        "[Jul 11 16:55:26.016] [ET_NET 0] NOTE: x",
        "vcsc traffic_server[18242]: x",
        "WARNING: SNI (10.48.36.215) not in certificate. Action=Terminate server=10.48.36.215(10.48.36.215)",
        "|GET http://vcs_control.steven.lab:8443/c3RldmVuLmxhYi9odHRwcy8xMC40OC4zNi4yMTUvODQ0Mw/x",
    ] {
        assert!(diagnose::looks_like_log(line), "{line}");
    }
    for line in ["", "hello", "Julia 11 18:55:26", "2022-07-11", "|HTTP/1.1 200 OK", "\u{0}\u{1}PK\u{3}\u{4}"] {
        assert!(!diagnose::looks_like_log(line), "{line}");
    }
}

#[test]
fn an_error_prints_its_cause_once() {
    let temp = tempfile::TempDir::new().expect("temp dir");
    let error = diagnose::diagnose_path(&temp.path().join("missing.log")).expect_err("missing");
    let message = error.to_string();
    let cause = std::error::Error::source(&error).map(ToString::to_string).unwrap_or_default();
    assert!(message.ends_with("missing.log'") && cause.contains("os error 2"), "{message} / {cause}");
    assert!(!message.contains("os error"), "{message}");
}

// ---- what a finding says ----

const SNI_WARNING: &str = "2022-07-11T19:49:01.491+02:00 vcsc traffic_server[3916]: [ET_NET 2] WARNING: SNI (10.48.36.215) not in certificate. Action=Terminate server=10.48.36.215(10.48.36.215)";
const HEADER: &str = "2022-07-11T19:49:01.472+02:00 vcsc traffic_server[3916]: UTCTime=\"2022-07-11 17:49:01,472\" Module=\"network.http.trafficserver\" Level=\"DEBUG\": Detail=\"Receive Request\" Txn-id=\"7\" HTTPMSG:";
const SEED_REQUEST: &str = "|GET http://vcs_control.steven.lab:8443/c3RldmVuLmxhYi9odHRwcy8xMC40OC4zNi4yMTUvODQ0Mw/cucm-uds/user/emusk/devices?max=100";

#[test]
fn requests_logged_on_the_header_line_or_through_a_syslog_relay_give_the_port() {
    let forms = [
        vec![HEADER.to_string(), SEED_REQUEST.to_string()],
        vec![format!("{HEADER}{SEED_REQUEST}")],
        vec![format!("{HEADER}#012{SEED_REQUEST} HTTP/1.1#012|Host: vcs_control.steven.lab:8443#012")],
        vec![format!("{HEADER}#012{SEED_REQUEST}#012|Host: vcs_control.steven.lab:8443")],
    ];
    for mut lines in forms {
        lines.push(SNI_WARNING.to_string());
        let report = diagnose::diagnose_lines(&lines);
        let finding = only(&report);
        assert_eq!((finding.port, finding.port_from), (Some(8443), diagnose::PortSource::Request), "{lines:?}");
        let request = finding.request.as_ref().expect("the request");
        assert_eq!(
            (request.decoded.as_str(), request.host.as_str(), request.port, request.path.as_str()),
            ("steven.lab/https/10.48.36.215/8443", "10.48.36.215", 8443, "/cucm-uds/user/emusk/devices?max=100"),
            "{lines:?}"
        );
    }
}

#[test]
fn each_finding_shows_the_decoded_request_that_gave_its_port() {
    let report = diagnose::diagnose_lines(&seed_log());
    let sni = &report.findings[0];
    let request = sni.request.as_ref().expect("request");
    assert_eq!((request.domain.as_str(), request.source.as_str()), ("steven.lab", "<lines>:5"));
    let text = report.render();
    assert!(
        text.contains("  request:    steven.lab/https/10.48.36.215/8443 (host 10.48.36.215, port 8443), path /cucm-uds/user/emusk/devices?max=100 (at <lines>:5)"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("json");
    assert_eq!(json[0]["request"]["decoded"], "steven.lab/https/10.48.36.215/8443");
    assert_eq!(json[0]["request"]["path"], "/cucm-uds/user/emusk/devices?max=100");
    assert_eq!(json[0]["port_from"], "request");
    assert_eq!(json[1]["request"], serde_json::Value::Null);
    assert_eq!(json[1]["port_from"], "unknown");
}

#[test]
fn an_unknown_port_names_the_log_lines_that_would_tell_it() {
    let report = diagnose::diagnose_lines(&SEED_SELF_SIGNED);
    let text = report.render();
    assert!(text.contains("cucm.steven.lab (10.48.36.215) port ?: self-signed"), "{text}");
    let hint = text.lines().find(|l| l.starts_with("  port:")).expect("a port line");
    for words in ["HTTPMSG:", "|GET http://<expressway>:<port>/<token>/", "DEBUG", "network.http.trafficserver"] {
        assert!(hint.contains(words), "{hint}");
    }
}

#[test]
fn the_address_is_printed_once_when_it_is_the_server_name() {
    let text = diagnose::diagnose_lines(&seed_log()).render();
    assert!(text.contains("\n10.48.36.215 port 8443: name-not-in-certificate\n"), "{text}");
    assert!(!text.contains("10.48.36.215 (10.48.36.215)"), "{text}");
    assert!(text.contains("\ncucm.steven.lab (10.48.36.215) port ?: self-signed\n"), "{text}");
}

#[test]
fn an_address_not_in_the_certificate_asks_for_a_dns_san_holding_it_never_an_ip_san() {
    let report = diagnose::diagnose_lines(&seed_log());
    let remedy = &report.findings[0].remedy;
    assert!(remedy.contains("a DNS SAN holding the address text (dns:10.48.36.215)"), "{remedy}");
    assert!(remedy.contains("IP SANs are not matched"), "{remedy}");
    assert!(remedy.contains("advertise the FQDN"), "{remedy}");
    assert!(!remedy.contains("with 10.48.36.215 in its SAN"), "{remedy}");
    // A name: a DNS SAN of that name.
    let line = "[Jul 11 16:55:26.016] [ET_NET 0] WARNING: SNI (cucm.steven.lab) not in certificate. Action=Terminate server=cucm.steven.lab(10.48.36.215)";
    let report = diagnose::diagnose_lines(&[line]);
    assert!(
        only(&report).remedy.contains("with cucm.steven.lab as a DNS SAN (dns:cucm.steven.lab)"),
        "{}",
        only(&report).remedy
    );
}

#[test]
fn a_missing_issuer_is_named_as_the_issuer_of_the_certificate_at_its_depth() {
    let warning = "2022-07-11T18:55:26.016+02:00 vcsc traffic_server[18242]: [ET_NET 0] WARNING: Core server certificate verification failed for (cucm.vngtp.lab). Action=Terminate Error=unable to get issuer certificate server=cucm.vngtp.lab(10.48.36.220) depth=1";
    let report = diagnose::diagnose_lines(&[warning]);
    let finding = only(&report);
    assert_eq!(finding.class, Some(DiagnosisClass::MissingRoot));
    assert!(
        finding.remedy.starts_with(
            "upload the issuer of the certificate at depth 1, and every CA certificate above it up to its root"
        ),
        "{}",
        finding.remedy
    );
    assert!(!finding.remedy.contains("root CA above the uploaded intermediate"), "{}", finding.remedy);
    // When the log shows the subject at that depth (OpenSSL's verify callback line), it is named.
    let chain = "2022-07-11T18:55:26.015+02:00 vcsc traffic_server[18242]: [ET_NET 0] DEBUG: <ssl.verify> depth=1 DC = vngtp, CN = vngtp-intermediate-CA-1";
    let report = diagnose::diagnose_lines(&[chain, warning]);
    let finding = only(&report);
    assert!(
        finding.remedy.starts_with("upload the issuer of the certificate at depth 1, the CA that signed DC = vngtp, CN = vngtp-intermediate-CA-1, and every CA certificate above it"),
        "{}",
        finding.remedy
    );
    assert!(finding.concerns.contains("(DC = vngtp, CN = vngtp-intermediate-CA-1)"), "{}", finding.concerns);
}

// ---- containers under mutation ----

/// Damaged archives of every kind never panic: each is an error, or what could be read of it.
#[test]
fn two_thousand_mutated_archives_are_read_without_a_panic() {
    let temp = tempfile::TempDir::new().expect("temp dir");
    let tar = tar_of(&bundle_entries());
    let archives =
        [zip_of(&bundle_entries(), false), zip_of(&bundle_entries(), true), bzip2(&tar), xz(&tar), gzip(&tar)];
    let path = temp.path().join("mutated");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..2_000 {
        let mut bytes = archives[i % archives.len()].clone();
        for _ in 0..1 + next() % 4 {
            let r = next();
            let at = (r >> 8) as usize % bytes.len();
            match r % 3 {
                0 => bytes[at] = (r >> 40) as u8,
                1 => bytes.truncate(at.max(4)),
                _ => bytes[at] ^= 1 << ((r >> 32) % 8),
            }
        }
        std::fs::write(&path, &bytes).expect("write");
        let _ = diagnose::diagnose_path(&path);
    }
}
