//! `cargo xtask diagnose` as a user runs it: exit codes 0/1/2, text and `--json`.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;

const SEED: &str = "\
2022-07-11T18:55:26.016+02:00 vcsc traffic_server[18242]: [ET_NET 0] WARNING: Core server certificate verification failed for (cucm.steven.lab). Action=Terminate Error=self signed certificate server=cucm.steven.lab(10.48.36.215) depth=0
2022-07-11T18:55:26.016+02:00 vcsc traffic_server[18242]: [ET_NET 0] ERROR: SSL connection failed for 'cucm.steven.lab': error:1416F086:SSL routines:tls_process_server_certificate:certificate verify failed
2022-07-11T19:49:01.472+02:00 vcsc traffic_server[3916]: UTCTime=\"2022-07-11 17:49:01,472\" Module=\"netw
|GET http://vcs_control.steven.lab:8443/c3RldmVuLmxhYi9odHRwcy8xMC40OC4zNi4yMTUvODQ0Mw/cucm-uds/user/emusk/devices?max=100
2022-07-11T19:49:01.491+02:00 vcsc traffic_server[3916]: [ET_NET 2] WARNING: SNI (10.48.36.215) not in certificate. Action=Terminate server=10.48.36.215(10.48.36.215)
";

/// Runs `cargo xtask diagnose ARGS`: exit code, stdout, stderr.
fn diagnose(args: &[&Path], json: bool) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command.arg("diagnose").args(args);
    if json {
        command.arg("--json");
    }
    let out = command.output().expect("xtask runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_seeds_log_exits_1_with_both_diagnoses_in_text_and_json() {
    let temp = tempfile::TempDir::new().expect("temp dir");
    let log = temp.path().join("traffic_server.log.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(SEED.as_bytes()).expect("gzip");
    std::fs::write(&log, gz.finish().expect("gzip")).expect("write");

    let (code, text, _) = diagnose(&[&log], false);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("\n10.48.36.215 port 8443: name-not-in-certificate\n"), "{text}");
    assert!(text.contains("cucm.steven.lab (10.48.36.215) port ?: self-signed"), "{text}");
    assert!(text.contains("xConfiguration EdgeConfigServer VerifyOriginServer: Off"), "{text}");

    let (code, json, _) = diagnose(&[&log], true);
    assert_eq!(code, 1);
    let findings: serde_json::Value = serde_json::from_str(&json).expect("json");
    let classes: Vec<(&str, &str)> = findings
        .as_array()
        .expect("list")
        .iter()
        .map(|f| (f["server"].as_str().unwrap_or_default(), f["class"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(classes, vec![("10.48.36.215", "name-not-in-certificate"), ("cucm.steven.lab", "self-signed")]);
}

#[test]
fn a_clean_log_exits_0_and_unreadable_input_exits_2() {
    let temp = tempfile::TempDir::new().expect("temp dir");
    let clean = temp.path().join("clean.log");
    std::fs::write(
        &clean,
        "2022-07-11T18:55:26.016+02:00 vcsc traffic_server[18242]: [ET_NET 0] NOTE: nothing to see\n",
    )
    .expect("write");
    let (code, text, _) = diagnose(&[&clean], false);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("no origin certificate verification failures found"));
    let (code, json, _) = diagnose(&[&clean], true);
    assert_eq!((code, json.trim()), (0, "[]"));

    let (code, _, stderr) = diagnose(&[&temp.path().join("missing.log")], false);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("missing.log"), "{stderr}");
    // The system's words once, after the path.
    assert_eq!(stderr.matches("No such file or directory").count(), 1, "{stderr}");
    assert!(
        stderr.contains("cannot read '") && stderr.contains("missing.log': No such file or directory (os error 2)"),
        "{stderr}"
    );

    let corrupt = temp.path().join("bundle.tar.gz");
    std::fs::write(&corrupt, [0x1f, 0x8b, 0x08, 0x00, 0xde, 0xad]).expect("write");
    let (code, _, stderr) = diagnose(&[&corrupt], true);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("gzip"), "{stderr}");
}

mod confined;

#[test]
fn a_confined_run_reports_its_exit_code_and_output() {
    let ended = confined::xtask_run(&["diagnose", "no/such/file.log"], None);
    assert_eq!(ended.code, Some(2), "{ended:?}");
    assert!(!ended.timed_out && !ended.panicked(), "{ended:?}");
    assert!(ended.stderr.contains("no/such/file.log"), "{ended:?}");
}

/// The seed as a bundle holds it: `var/log/traffic_server.log` beside a capture.
fn tar_of_seed() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in
        [("var/log/traffic_server.log", SEED.as_bytes()), ("tcpdump/vcsc.pcap", &[0xd4, 0xc3, 0xb2, 0xa1, 0, 0][..])]
    {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, path, content).expect("tar entry");
    }
    builder.into_inner().expect("tar")
}

fn zip_of_seed() -> Vec<u8> {
    use zip::write::SimpleFileOptions;
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file("diagnostic_log/var/log/traffic_server.log", options).expect("member");
    zip.write_all(SEED.as_bytes()).expect("write");
    zip.finish().expect("zip").into_inner()
}

#[test]
fn zip_tar_bz2_and_tar_xz_bundles_exit_1_with_the_seeds_diagnoses() {
    let temp = tempfile::TempDir::new().expect("temp dir");
    let bz2 = {
        let mut encoder = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        encoder.write_all(&tar_of_seed()).expect("bzip2");
        encoder.finish().expect("bzip2")
    };
    let xz = {
        let mut encoder = lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::with_preset(6)).expect("xz");
        encoder.write_all(&tar_of_seed()).expect("xz");
        encoder.finish().expect("xz")
    };
    for (name, bytes) in
        [("diagnostic_log.zip", zip_of_seed()), ("diagnostic_log.tar.bz2", bz2), ("diagnostic_log.tar.xz", xz)]
    {
        let bundle = temp.path().join(name);
        std::fs::write(&bundle, bytes).expect("write");
        let (code, text, stderr) = diagnose(&[&bundle], false);
        assert_eq!(code, 1, "{name}: {text}{stderr}");
        assert!(text.contains("\n10.48.36.215 port 8443: name-not-in-certificate\n"), "{name}: {text}");
        assert!(text.contains("\ncucm.steven.lab (10.48.36.215) port ?: self-signed\n"), "{name}: {text}");
        assert!(text.contains(&format!("{name}!")), "{name}: {text}");

        let (code, json, _) = diagnose(&[&bundle], true);
        assert_eq!(code, 1, "{name}");
        let findings: serde_json::Value = serde_json::from_str(&json).expect("json");
        assert_eq!(findings[0]["request"]["decoded"], "steven.lab/https/10.48.36.215/8443", "{name}: {json}");
        assert_eq!(findings[0]["request"]["path"], "/cucm-uds/user/emusk/devices?max=100", "{name}: {json}");
        assert_eq!(findings[1]["class"], "self-signed", "{name}: {json}");
    }
}

#[test]
fn the_findings_say_the_request_the_port_hint_and_the_dns_san_remedy() {
    let temp = tempfile::TempDir::new().expect("temp dir");
    let log = temp.path().join("traffic_server.log");
    std::fs::write(&log, SEED).expect("write");
    let (code, text, _) = diagnose(&[&log], false);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("  request:    steven.lab/https/10.48.36.215/8443 (host 10.48.36.215, port 8443), path /cucm-uds/user/emusk/devices?max=100"),
        "{text}"
    );
    assert!(
        text.contains("a DNS SAN holding the address text (dns:10.48.36.215), as IP SANs are not matched"),
        "{text}"
    );
    let hint = text.lines().find(|l| l.starts_with("  port:")).expect("a port hint for the self-signed finding");
    assert!(
        hint.contains("HTTPMSG:") && hint.contains("DEBUG") && hint.contains("network.http.trafficserver"),
        "{hint}"
    );
}

#[test]
fn random_binary_input_exits_2_saying_it_cannot_be_read_as_logs() {
    let temp = tempfile::TempDir::new().expect("temp dir");
    let mut state = 0x853c_49e6_748f_ea9bu64;
    let random: Vec<u8> = (0..65_536)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    let file = temp.path().join("customer.log");
    std::fs::write(&file, &random).expect("write");
    for json in [false, true] {
        let (code, stdout, stderr) = diagnose(&[&file], json);
        assert_eq!(code, 2, "{stdout}{stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        assert!(stderr.contains("cannot be read as logs: it looks binary"), "{stderr}");
        assert!(!stderr.contains("no origin certificate verification failures found"), "{stderr}");
    }
    // Also inside an archive: a zip of random bytes is no clean bill of health either.
    let zip = temp.path().join("bundle.zip");
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    writer.start_file("logs/traffic_server.log", zip::write::SimpleFileOptions::default()).expect("member");
    writer.write_all(&random).expect("write");
    std::fs::write(&zip, writer.finish().expect("zip").into_inner()).expect("write");
    let (code, _, stderr) = diagnose(&[&zip], false);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("cannot be read as logs"), "{stderr}");
}
