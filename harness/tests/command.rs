//! `--verifier cmd:<path>`: the JSON-lines protocol, its schema, faults of broken commands, the
//! shipped adapters against their snapshots, the verifier matrix, and the x509-limbo export.
//!
//! Schemas are checked with Python's `jsonschema` (an independent implementation; `.ci/run`
//! installs it where missing). The adapters need `openssl`, `curl` and `python3`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use harness::pki::KeyCache;
use harness::scenario::catalogue::SnapshotState;
use harness::scenario::login::LoginSpec;
use harness::scenario::matrix::run_matrix;
use harness::scenario::{Catalogue, RunOptions, run::run};
use harness::verifier::VerifierFactory;
use harness::verifier::builtin::BuiltinFactory;
use harness::verifier::command::{CommandFactory, CommandVerifier};
use harness::verifier::{Failure, Profile, Verifier, VerifierFault};

mod command_support;
use command_support::{fault_message, request, script, session};
mod snapshot_mode;
use snapshot_mode::SnapshotMode;

fn root() -> PathBuf {
    Catalogue::workspace_root()
}

fn adapter(name: &str) -> PathBuf {
    root().join("adapters").join(name)
}

#[test]
fn a_command_that_crashes_is_a_fault_with_its_stderr() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = script(dir.path(), "crash.sh", "#!/bin/sh\nread line\necho 'crash.sh: cannot go on' >&2\nexit 3\n");
    let mut verifier = CommandVerifier::new(&path);
    // The session may or may not be written before it dies: either way, no verdict.
    let message = match verifier.open(&session()) {
        Err(VerifierFault::Request { message, .. }) => message,
        Err(other) => panic!("unexpected fault {other:?}"),
        Ok(()) => fault_message(verifier.request(&request("cucm.steven.lab"))),
    };
    assert!(message.contains("crash.sh: cannot go on"), "{message}");
    assert!(message.contains("exited") || message.contains("cannot write"), "{message}");
}

#[test]
fn a_command_that_hangs_is_a_fault_after_the_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = script(dir.path(), "hang.sh", "#!/bin/sh\necho 'hang.sh: thinking' >&2\nwhile read line; do :; done\n");
    let mut verifier = CommandVerifier::new(&path).with_timeout(Duration::from_millis(500));
    verifier.open(&session()).expect("open");
    let start = Instant::now();
    let message = fault_message(verifier.request(&request("cucm.steven.lab")));
    assert!(start.elapsed() < Duration::from_secs(5), "the timeout was not kept");
    assert!(message.contains("no answer within 0.5 s"), "{message}");
    assert!(message.contains("hang.sh: thinking"), "{message}");
}

#[test]
fn a_command_that_prints_garbage_is_a_fault() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = script(
        dir.path(),
        "garbage.sh",
        "#!/bin/sh\nwhile read line; do echo 'garbage.sh: got it' >&2; echo 'OK, accepted!'; done\n",
    );
    let mut verifier = CommandVerifier::new(&path);
    verifier.open(&session()).expect("open");
    let message = fault_message(verifier.request(&request("cucm.steven.lab")));
    assert!(message.contains("not a protocol answer"), "{message}");
    assert!(message.contains("OK, accepted!"), "{message}");
    assert!(message.contains("garbage.sh: got it"), "{message}");
}

#[test]
fn an_answer_for_another_request_is_a_fault() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = script(
        dir.path(),
        "wrong-id.sh",
        "#!/bin/sh\nwhile read line; do case \"$line\" in *request*) echo '{\"id\": 99, \"verdict\": \"accept\"}';; esac; done\n",
    );
    let mut verifier = CommandVerifier::new(&path);
    verifier.open(&session()).expect("open");
    let message = fault_message(verifier.request(&request("cucm.steven.lab")));
    assert!(message.contains("the answer is for request 99"), "{message}");
}

/// A command that answers request N with the N-th canned answer.
fn canned(dir: &Path, answers: &[&str]) -> PathBuf {
    let list = answers.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>().join(", ");
    script(
        dir,
        "canned.py",
        &format!(
            "#!/usr/bin/env python3\nimport json, sys\nanswers = [{list}]\nfor line in sys.stdin:\n    m = json.loads(line)\n    if m['type'] == 'request':\n        a = json.loads(answers[m['id'] - 1]); a['id'] = m['id']\n        print(json.dumps(a), flush=True)\n"
        ),
    )
}

#[test]
fn verdicts_map_to_outcomes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = canned(
        dir.path(),
        &[
            r#"{"verdict": "accept", "body": "<server>cucm.steven.lab</server>"}"#,
            r#"{"verdict": "reject", "error": "self-signed certificate", "code": 18, "depth": 0}"#,
            r#"{"verdict": "reject", "error": "hostname mismatch"}"#,
            r#"{"verdict": "reject", "error": "sslv3 alert handshake failure"}"#,
            r#"{"verdict": "reject", "check": "connect", "error": "connection refused"}"#,
            r#"{"verdict": "unsupported", "error": "cannot pin the time"}"#,
        ],
    );
    let mut verifier = CommandVerifier::new(&path);
    verifier.open(&session()).expect("open");
    let r = request("cucm.steven.lab");
    let accept = verifier.request(&r).expect("answer 1");
    assert_eq!((accept.status, accept.failure, accept.body.as_str()), (200, None, "<server>cucm.steven.lab</server>"));
    let chain = verifier.request(&r).expect("answer 2");
    assert_eq!(chain.status, 502);
    assert_eq!(chain.reason, "connect failed");
    assert_eq!(chain.failure, Some(Failure::Chain { code: 18, text: "self-signed certificate".into(), depth: 0 }));
    let name = verifier.request(&r).expect("answer 3");
    assert_eq!(name.failure, Some(Failure::Name { checked: "cucm.steven.lab".into() }));
    let handshake = verifier.request(&r).expect("answer 4");
    assert_eq!(handshake.failure, Some(Failure::Handshake { reason: "sslv3 alert handshake failure".into() }));
    let connect = verifier.request(&r).expect("answer 5");
    assert_eq!(connect.failure, Some(Failure::Connect { reason: "connection refused".into() }));
    let unsupported = verifier.request(&r).expect("answer 6");
    assert_eq!(unsupported.status, 0);
    assert_eq!(unsupported.failure, Some(Failure::Handshake { reason: "unsupported: cannot pin the time".into() }));
}

/// Validates every JSON document (one per line) of `lines` against `schema` (a `$ref` inside it
/// when given) with Python's jsonschema; returns the errors.
fn validate(schema: &Path, reference: Option<&str>, documents: &[String]) -> Vec<String> {
    let check = r#"
import json, sys
import jsonschema
schema = json.load(open(sys.argv[1]))
if sys.argv[2]:
    schema = dict(schema, **{"$ref": sys.argv[2]})
v = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
bad = 0
for n, line in enumerate(sys.stdin):
    for e in v.iter_errors(json.loads(line)):
        bad += 1
        print(f"document {n + 1}: {e.json_path}: {e.message[:300]}")
sys.exit(1 if bad else 0)
"#;
    let mut child = Command::new("python3")
        .args(["-c", check, &schema.display().to_string(), reference.unwrap_or("")])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (with the jsonschema module) must be installed: .ci/run installs it");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for d in documents {
            let one_line: serde_json::Value = serde_json::from_str(d).expect("a JSON document");
            writeln!(stdin, "{one_line}").expect("write to python3");
        }
    }
    let out = child.wait_with_output().expect("python3 ran");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("ModuleNotFoundError"), "python3's jsonschema module is missing: {stderr}");
    let mut errors: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect();
    if !out.status.success() && errors.is_empty() {
        errors.push(format!("the validator failed: {stderr}"));
    }
    errors
}

fn login() -> LoginSpec {
    let path = root().join("scenarios").join("jabber-login.toml");
    toml::from_str(&std::fs::read_to_string(path).expect("jabber-login.toml")).expect("a login spec")
}

#[test]
fn every_message_both_ways_follows_the_protocol_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sent = dir.path().join("sent.jsonl");
    let answered = dir.path().join("answered.jsonl");
    // The openssl adapter, with both directions recorded.
    let path = script(
        dir.path(),
        "recorded.sh",
        &format!(
            "#!/bin/sh\ntee -a '{}' | '{}' | tee -a '{}'\n",
            sent.display(),
            adapter("openssl.sh").display(),
            answered.display()
        ),
    );
    let catalogue = Catalogue::at(&root());
    let factory = CommandFactory::new(path);
    for id in ["seed/tftp-self-signed-ecdsa", "beyond/permissive-policy", "seed/cucm-advertised-by-ip"] {
        let scenario = catalogue.load(&root().join("scenarios").join(format!("{id}.toml"))).expect("load");
        let options = RunOptions {
            verifier: &factory,
            keys: KeyCache::default(),
            login: login(),
            fleet: harness::scenario::run::FleetTier::InProcess,
        };
        run(&scenario, &options).expect("the scenario runs");
    }
    let read = |p: &Path| -> Vec<String> {
        std::fs::read_to_string(p).expect("recorded").lines().filter(|l| !l.is_empty()).map(String::from).collect()
    };
    let (sent, answered) = (read(&sent), read(&answered));
    for kind in ["\"type\":\"session\"", "\"type\":\"reconfigure\"", "\"type\":\"request\""] {
        assert!(sent.iter().any(|l| l.contains(kind)), "no {kind} message was sent");
    }
    assert!(answered.iter().any(|l| l.contains("\"reject\"")) && answered.iter().any(|l| l.contains("\"accept\"")));
    let schema = root().join("adapters").join("protocol.schema.json");
    let sent_errors = validate(&schema, Some("#/$defs/session"), &sent[..1]);
    assert!(sent_errors.is_empty(), "{sent_errors:#?}");
    let all: Vec<String> = sent.iter().chain(&answered).cloned().collect();
    let errors = validate(&schema, None, &all);
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn a_malformed_answer_fails_the_schema_too() {
    let schema = root().join("adapters").join("protocol.schema.json");
    let errors = validate(&schema, Some("#/$defs/answer"), &[r#"{"id": 1, "verdict": "maybe"}"#.into()]);
    assert!(errors.iter().any(|e| e.contains("$.verdict") && e.contains("'maybe'")), "{errors:?}");
}

/// Runs the scenarios `ids` with the adapter and compares with its committed snapshots; nothing
/// under `MRALAB_SNAPSHOTS=off` (written expectations do not apply to adapters).
fn adapter_matches_its_snapshots(name: &str, ids: &[&str]) {
    if !SnapshotMode::from_env().snapshots() {
        return;
    }
    let catalogue = Catalogue::at(&root());
    let path = adapter(name);
    let dir = CommandFactory::snapshot_dir(&path);
    let factory = CommandFactory::new(path);
    for id in ids {
        let scenario = catalogue.load(&root().join("scenarios").join(format!("{id}.toml"))).expect("load");
        let options = RunOptions {
            verifier: &factory,
            keys: KeyCache::default(),
            login: login(),
            fleet: harness::scenario::run::FleetTier::InProcess,
        };
        let run = run(&scenario, &options).unwrap_or_else(|e| panic!("{name} on {id}: {e}"));
        assert!(run.mismatches().is_empty(), "written expectations do not apply to adapters");
        let state = catalogue.compare(&catalogue.snapshot_path(&dir, &run.id), &run.snapshot);
        assert_eq!(state, SnapshotState::Same, "{name} on {id}: the snapshot in snapshots/{dir} differs");
    }
}

const SAMPLE: [&str; 4] = [
    "seed/tftp-self-signed-ecdsa",
    "beyond/ip-san-only-fails-by-ip",
    "beyond/san-other-host-cn-matches",
    "beyond/expired-leaf",
];

#[test]
fn openssl_adapter_matches_its_snapshots() {
    adapter_matches_its_snapshots("openssl.sh", &SAMPLE);
}

#[test]
fn curl_adapter_matches_its_snapshots() {
    adapter_matches_its_snapshots("curl.sh", &SAMPLE);
}

#[test]
fn python_adapter_matches_its_snapshots() {
    adapter_matches_its_snapshots("python_ssl.py", &SAMPLE);
}

#[test]
fn snapshot_folders_come_from_the_file_stem() {
    assert_eq!(CommandFactory::snapshot_dir(Path::new("adapters/openssl.sh")), "cmd-openssl");
    assert_eq!(CommandFactory::snapshot_dir(Path::new("adapters/python_ssl.py")), "cmd-python");
}

#[test]
fn the_matrix_lines_up_five_verifiers_and_marks_where_they_disagree() {
    let catalogue = Catalogue::at(&root());
    let files: Vec<PathBuf> = ["beyond/ip-san-only-fails-by-ip", "beyond/san-other-host-cn-matches"]
        .iter()
        .map(|id| root().join("scenarios").join(format!("{id}.toml")))
        .collect();
    let builtin = BuiltinFactory(Profile::ExpresswayX14_2);
    let ats = BuiltinFactory(Profile::Ats9_2);
    let openssl = CommandFactory::new(adapter("openssl.sh"));
    let curl = CommandFactory::new(adapter("curl.sh"));
    let python = CommandFactory::new(adapter("python_ssl.py"));
    let verifiers: Vec<&dyn VerifierFactory> = vec![&builtin, &ats, &openssl, &curl, &python];
    let matrix = run_matrix(&catalogue, &files, &verifiers, &KeyCache::default(), &login(), 2, &|_, _, _| {});
    assert_eq!(matrix.verifiers.len(), 5);
    assert!(!matrix.faulted(), "{}", matrix.table(60));
    // By IP with only an IP SAN: Expressway (IP string vs DNS SANs and CN) refuses, the three
    // RFC 6125 verifiers accept.
    let by_ip = matrix
        .rows
        .iter()
        .find(|r| r.scenario == "beyond::ip-san-only-fails-by-ip" && r.request.contains("https://10.48.36.215:8443"))
        .expect("a row for the request by IP");
    let verdicts: Vec<&str> = by_ip.cells.iter().map(|c| c.as_ref().map_or("-", |c| c.verdict.as_str())).collect();
    assert_eq!(verdicts, ["reject", "reject", "accept", "accept", "accept"]);
    assert!(by_ip.disagrees());
    // CN fallback: the traffic server finds the name in the CN; the others do not.
    let cn = matrix
        .rows
        .iter()
        .find(|r| r.scenario == "beyond::san-other-host-cn-matches" && r.step == 1)
        .expect("the discovery row");
    let verdicts: Vec<&str> = cn.cells.iter().map(|c| c.as_ref().map_or("-", |c| c.verdict.as_str())).collect();
    assert_eq!(verdicts, ["accept", "accept", "reject", "reject", "reject"]);
    let table = matrix.table(60);
    assert!(table.lines().next().is_some_and(|h| h.contains("cmd:") && h.contains("builtin:ats-9.2")), "{table}");
    assert!(table.contains('≠'));
    let json: serde_json::Value = serde_json::from_str(&matrix.json()).expect("json report");
    assert_eq!(json["verifiers"].as_array().map(Vec::len), Some(5));
    assert!(matrix.markdown().contains("| ≠ |"));
    assert!(matrix.junit().contains("DISAGREE"));
}

#[test]
fn the_limbo_export_validates_against_the_schema_and_lists_what_it_skips() {
    let catalogue = Catalogue::at(&root());
    let export = harness::limbo::export(&catalogue, &KeyCache::default()).expect("export");
    let cases = export.limbo["testcases"].as_array().expect("testcases");
    assert!(cases.len() > 100, "{} cases", cases.len());
    let schema = root().join("harness").join("data").join("limbo-schema.json");
    let errors = validate(&schema, Some("#/$defs/Limbo"), &[export.limbo.to_string()]);
    assert!(errors.is_empty(), "{errors:#?}");
    let reasons: std::collections::BTreeSet<&str> = export.skipped.iter().map(|s| s.reason).collect();
    assert!(reasons.contains("cn-fallback") && reasons.contains("ip-string"), "{reasons:?}");
    // A skipped case is not exported.
    for s in &export.skipped {
        assert!(!cases.iter().any(|c| c["id"] == s.id.as_str()), "{} is both exported and skipped", s.id);
    }
    // The seed's self-signed CallManager-ECDSA on 6972 fails under limbo's rules too.
    let tftp = cases
        .iter()
        .find(|c| c["id"] == "mralab::seed::tftp-self-signed-ecdsa::cucm-6972-ecdsa-fqdn")
        .expect("the seed's TFTP case");
    assert_eq!(tftp["expected_result"], "FAILURE");
}

#[test]
fn the_stored_chain_cases_export_to_limbo_with_the_real_libraries_verdicts() {
    let (cases, skipped) =
        harness::limbo::chain_cases(&root().join("harness/tests/data/chain")).expect("the stored cases export");
    assert!(cases.len() >= 20, "{} cases", cases.len());
    let limbo = serde_json::json!({"version": 1, "testcases": cases});
    let schema = root().join("harness").join("data").join("limbo-schema.json");
    let errors = validate(&schema, Some("#/$defs/Limbo"), &[limbo.to_string()]);
    assert!(errors.is_empty(), "{errors:#?}");
    let case = |id: &str| cases.iter().find(|c| c["id"] == id).unwrap_or_else(|| panic!("{id} exported"));
    // Both libraries verify PSS with another MGF1 hash; both refuse a name outside the subtree.
    assert_eq!(case("mralab::chain::fuzz-rsa-pss-mgf1-another-hash")["expected_result"], "SUCCESS");
    assert_eq!(case("mralab::chain::nc-dns-outside-permitted")["expected_result"], "FAILURE");
    // A DN constraint is tagged as limbo tags it.
    let dn = case("mralab::chain::nc-dirname-permitted-other-org");
    assert_eq!(dn["features"], serde_json::json!(["name-constraint-dn"]));
    // 3.0 reports explicit EC parameters (94), 1.1.1w does not: the verdict is not settled.
    assert!(
        skipped
            .iter()
            .any(|s| s.id == "mralab::chain::fuzz-explicit-ec-p384-p521" && s.reason == "openssl-versions-disagree")
    );
    for s in &skipped {
        assert!(!cases.iter().any(|c| c["id"] == s.id.as_str()), "{} is both exported and skipped", s.id);
    }
}
