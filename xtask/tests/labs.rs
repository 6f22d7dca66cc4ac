//! Acceptance: every lab walked as a trainee would, through the same commands (the xtask
//! binary): start, check fails, apply the long-term fix, check says long-term; reset, apply
//! only the workaround, check says workaround; stop, and no process is left. Then what trainees
//! tripped over: the workspace's `./mralab` wrapper from inside and outside the workspace, start
//! and stop on a stopped lab, the warnings `check` gives before its verdict (a trust-store file
//! no peer reads, an unknown cipher word, an IP SAN) and a System > Server name that does not
//! resolve. Loopback only; one temporary workspace per lab.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use harness::lab::{Lab, LabState};
use tempfile::TempDir;

/// A lab being walked; kills its process if the test fails half-way.
struct Walk {
    lab: &'static str,
    dir: TempDir,
}

impl Drop for Walk {
    fn drop(&mut self) {
        if let Some(pid) = self.pid()
            && alive(pid)
        {
            let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
        }
    }
}

/// Whether a process runs (a zombie waiting for its adopter to reap it does not).
fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => !matches!(stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next()), Some('Z' | 'X') | None),
    }
}

impl Walk {
    fn ws(&self) -> &Path {
        self.dir.path()
    }

    fn pid(&self) -> Option<u32> {
        let text = fs::read_to_string(self.ws().join("lab.toml")).ok()?;
        toml::from_str::<LabState>(&text).ok().map(|s| s.pid)
    }

    /// Runs `cargo xtask lab ARGS` in the workspace (as a trainee who `cd`-ed into it).
    fn lab(&self, args: &[&str]) -> Output {
        let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .arg("lab")
            .args(args)
            .current_dir(self.ws())
            .output()
            .expect("running xtask");
        eprintln!(
            "--- {}: lab {}\n{}{}",
            self.lab,
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// Runs the workspace's `mralab` wrapper with `args`, from `cwd`.
    fn wrapper(&self, cwd: &Path, args: &[&str]) -> Output {
        let output =
            Command::new(self.ws().join("mralab")).args(args).current_dir(cwd).output().expect("running mralab");
        eprintln!(
            "--- {}: mralab {} (in {})\n{}{}",
            self.lab,
            args.join(" "),
            cwd.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    #[track_caller]
    fn expect(&self, args: &[&str], code: i32, says: &str) -> String {
        let output = self.lab(args);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert_eq!(
            output.status.code(),
            Some(code),
            "{}: lab {}: exit code; stdout:\n{stdout}",
            self.lab,
            args.join(" ")
        );
        assert!(stdout.contains(says), "{}: lab {}: wanted '{says}' in:\n{stdout}", self.lab, args.join(" "));
        stdout
    }

    fn start(lab: &'static str) -> Walk {
        let dir = TempDir::new().expect("temp dir");
        let walk = Walk { lab, dir };
        let ws = walk.ws().to_str().expect("utf-8 path").to_string();
        let out = walk.expect(&["start", lab, "--workspace", &ws], 0, "The ticket says");
        let symptom = Lab::load(lab).expect("lab").symptom;
        assert!(out.contains(&symptom), "start prints the symptom");
        assert!(walk.pid().is_some_and(alive), "lab.toml names a live process");
        walk
    }

    fn copy(&self, from: &str, to: &str) {
        fs::copy(self.ws().join(from), self.ws().join(to)).unwrap_or_else(|e| panic!("copy {from} -> {to}: {e}"));
    }

    fn edit(&self, file: &str, from: &str, to: &str) {
        let path: PathBuf = self.ws().join(file);
        let text = fs::read_to_string(&path).expect("read");
        assert!(text.contains(from), "{file} holds '{from}':\n{text}");
        fs::write(&path, text.replace(from, to)).expect("write");
    }

    fn fails(&self) {
        self.expect(&["check"], 1, "NOT FIXED");
    }

    fn fixed_long_term(&self) {
        let out = self.expect(&["check"], 0, "FIXED, the long-term fix");
        let debrief = Lab::load(self.lab).expect("lab").debrief().lines().next().unwrap_or_default().to_string();
        assert!(out.contains(&debrief), "check prints the debrief once solved");
    }

    fn reset(&self) {
        self.expect(&["reset"], 0, "reset: initial files restored");
        assert!(self.pid().is_some_and(alive));
    }

    fn workaround_only(&self) {
        self.reset();
        self.fails();
        self.edit("expressway.conf", "VerifyOriginServer: On", "VerifyOriginServer: Off");
        self.expect(&["check"], 3, "ONLY THE WORKAROUND");
    }

    fn stop(self) {
        let pid = self.pid().expect("pid");
        self.expect(&["stop"], 0, "stopped");
        assert!(!alive(pid), "pid {pid} still runs after stop");
        assert!(!self.ws().join("lab.toml").exists());
    }
}

#[test]
fn tftp_self_signed_is_fixed_by_uploading_callmanager_ecdsa() {
    let walk = Walk::start("tftp-self-signed");
    walk.fails();
    walk.expect(&["hint"], 0, "Hint 1/3 (direction)");
    walk.expect(&["hint"], 0, "Hint 2/3 (where to look)");
    walk.expect(&["hint"], 0, "Hint 3/3 (the fix)");
    walk.copy("certs/cucm/CallManager-ECDSA.pem", "trust-store/CallManager-ECDSA.pem");
    walk.fixed_long_term();
    walk.workaround_only();
    walk.expect(&["hint"], 0, "Hint 1/3");
    let ws = walk.ws().to_str().expect("utf-8").to_string();
    walk.expect(&["start", "tftp-self-signed", "--workspace", &ws], 2, "");
    walk.stop();
}

#[test]
fn list_names_six_labs_and_start_refuses_a_folder_that_is_not_a_lab() {
    let dir = TempDir::new().expect("temp dir");
    let walk = Walk { lab: "none", dir };
    let out = walk.expect(&["list"], 0, "same-cn");
    assert_eq!(out.lines().count(), 6, "{out}");
    fs::write(walk.ws().join("notes.txt"), "mine").expect("write");
    let ws = walk.ws().to_str().expect("utf-8").to_string();
    let output = walk.lab(&["start", "same-cn", "--workspace", &ws]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is no lab workspace"));
    assert!(walk.ws().join("notes.txt").exists());
}

#[test]
fn advertised_by_ip_is_fixed_by_system_server_or_by_reissue() {
    let walk = Walk::start("advertised-by-ip");
    let out = walk.expect(&["check"], 1, "NOT FIXED");
    assert!(out.contains("10.48.36.215:8443"), "the login goes to the advertised IP");
    walk.edit("cucm-system-server.conf", "cucm: 10.48.36.215", "cucm: cucm.steven.lab");
    walk.fixed_long_term();
    walk.reset();
    walk.fails();
    walk.expect(&["reissue", "cucm", "--san", "dns:10.48.36.215"], 0, "re-issued");
    let pem = fs::read_to_string(walk.ws().join("certs/cucm/tomcat.pem")).expect("exported");
    assert!(pem.contains("BEGIN CERTIFICATE"));
    walk.fixed_long_term();
    walk.workaround_only();
    walk.stop();
}

#[test]
fn chain_intermediates_needs_every_intermediate_or_a_node_that_sends_them() {
    let walk = Walk::start("chain-intermediates");
    walk.fails();
    walk.copy("certs/ca/lab-Issuing-CA.pem", "trust-store/lab-Issuing-CA.pem");
    walk.fails();
    walk.copy("certs/ca/lab-Policy-CA.pem", "trust-store/lab-Policy-CA.pem");
    walk.fixed_long_term();
    // The other remedy: the node sends its intermediates; the root alone is then enough.
    walk.reset();
    walk.fails();
    walk.expect(&["reissue", "cucm", "--send-chain"], 0, "re-issued");
    walk.fixed_long_term();
    walk.workaround_only();
    walk.stop();
}

#[test]
fn same_cn_refuses_the_second_upload_and_is_fixed_by_ca_signing_or_a_distinct_cn() {
    let walk = Walk::start("same-cn");
    // The ticket and check use the same words: the login fails.
    let said = walk.expect(&["check"], 1, "NOT FIXED: the MRA login still fails");
    assert!(said.contains("login as emusk: fails"), "{said}");
    let lab = Lab::load("same-cn").expect("lab");
    assert!(lab.symptom.contains("MRA login fails") && !lab.symptom.contains("log in but"), "{}", lab.symptom);
    walk.copy("certs/cups/tomcat.pem", "trust-store/tomcat.pem");
    let out = walk.expect(&["check"], 1, "NOT FIXED");
    assert!(out.contains("refused") && out.contains("trust-store/tomcat.pem"), "check names the refused file");
    fs::remove_file(walk.ws().join("trust-store/tomcat.pem")).expect("remove");
    walk.expect(&["reissue", "cups", "--cert", "tomcat", "--issuer", "lab-CA"], 0, "issuer lab-CA");
    walk.fixed_long_term();
    // The other remedy: a different CN, then the upload is accepted.
    walk.reset();
    walk.expect(
        &["reissue", "cups", "--cert", "tomcat", "--cn", "cups-tomcat.steven.lab"],
        0,
        "CN cups-tomcat.steven.lab",
    );
    walk.copy("certs/cups/tomcat.pem", "trust-store/tomcat.pem");
    walk.fixed_long_term();
    // Making room by deleting the certificate someone else relies on is not the fix.
    walk.reset();
    fs::remove_file(walk.ws().join("trust-store/cups-cup-xmpp.pem")).expect("remove");
    walk.copy("certs/cups/tomcat.pem", "trust-store/tomcat.pem");
    walk.expect(&["check"], 3, "NOT THE LONG-TERM FIX");
    walk.workaround_only();
    walk.stop();
}

#[test]
fn cipher_order_is_fixed_by_the_rsa_prefix() {
    let walk = Walk::start("cipher-order");
    walk.fails();
    walk.edit("expressway.conf", "xConfiguration Ciphers:", "xConfiguration Cipher:");
    let out = walk.expect(&["check"], 1, "expressway.conf:4: unknown setting 'Cipher'");
    assert!(out.contains("did you mean"), "{out}");
    walk.edit(
        "expressway.conf",
        "xConfiguration Cipher: \"EECDH",
        "xConfiguration Ciphers: \"ECDHE-RSA-AES256-GCM-SHA384:EECDH",
    );
    walk.fixed_long_term();
    walk.workaround_only();
    walk.stop();
}

#[test]
fn cluster_peer_lacking_the_ca_is_fixed_on_every_peer() {
    let walk = Walk::start("cluster-peer-lacks-ca");
    let out = walk.expect(&["check"], 1, "NOT FIXED: the MRA login still fails or is degraded via vcsc2.");
    assert!(out.contains("via vcsc1"));
    walk.copy("certs/ca/lab-CA.pem", "trust-store/vcsc2/lab-CA.pem");
    walk.fixed_long_term();
    walk.workaround_only();
    walk.stop();
}

/// `said` holds `warning` on a line before the verdict line starting with `verdict`.
#[track_caller]
fn warned_before_verdict(said: &str, warning: &str, verdict: &str) {
    let at = said.find(warning).unwrap_or_else(|| panic!("no '{warning}' in:\n{said}"));
    let verdict_at = said.find(&format!("\n{verdict}")).unwrap_or_else(|| panic!("no verdict '{verdict}' in:\n{said}"));
    assert!(at < verdict_at, "the warning comes after the verdict:\n{said}");
}

#[test]
fn advertised_by_ip_says_why_an_ip_san_does_not_help_and_a_misspelt_name_fails_at_the_lookup() {
    let walk = Walk::start("advertised-by-ip");
    // An IP SAN: re-issued, yet still NOT FIXED; both reissue and check say why.
    let said = walk.expect(&["reissue", "cucm", "--san", "ip:10.48.36.215"], 0, "re-issued");
    assert!(
        said.contains("note: ip:10.48.36.215 is an IP SAN. Expressway-C's traffic server does not match IP SANs")
            && said.contains("`--san dns:10.48.36.215`")
            && said.contains("advertising the FQDN"),
        "{said}"
    );
    let said = walk.expect(&["check"], 1, "NOT FIXED");
    warned_before_verdict(&said, "  warning: certs/cucm/CallManager.pem, ", "NOT FIXED");
    assert!(said.contains("hold ip:10.48.36.215, which does not count"), "{said}");
    // A typo in System > Server: the name resolves nowhere. As in the field, nothing is dialled
    // and no certificate is checked: 502 Cannot find server. (ATS 8.1), no name-check line.
    walk.reset();
    walk.edit("cucm-system-server.conf", "cucm: 10.48.36.215", "cucm: cucm.stevn.lab");
    let said = walk.expect(&["check"], 1, "NOT FIXED");
    assert!(said.contains("502 Cannot find server. cucm.stevn.lab:8443/cucm-uds/version  REQUIRED"), "{said}");
    assert!(!said.contains("warning:"), "{said}");
    let log = fs::read_to_string(walk.ws().join("traffic_server.log")).expect("log");
    assert!(log.contains("|HTTP/1.1 502 Cannot find server."), "{log}");
    assert!(!log.contains("SNI (cucm.stevn.lab)") && !log.contains("for (cucm.stevn.lab)"), "{log}");
    walk.edit("cucm-system-server.conf", "cucm: cucm.stevn.lab", "cucm: cucm.steven.lab");
    walk.fixed_long_term();
    walk.stop();
}

#[test]
fn a_trust_store_file_no_peer_reads_and_an_unknown_cipher_word_are_warned_of() {
    let walk = Walk::start("cluster-peer-lacks-ca");
    walk.copy("certs/ca/lab-CA.pem", "trust-store/lab-CA.pem");
    let said = walk.expect(&["check"], 1, "NOT FIXED");
    warned_before_verdict(
        &said,
        "  warning: trust-store/lab-CA.pem is ignored: this Expressway-C is a cluster (vcsc1, vcsc2)",
        "NOT FIXED",
    );
    assert!(said.contains("put it in trust-store/vcsc1/ or trust-store/vcsc2/"), "{said}");
    fs::remove_file(walk.ws().join("trust-store/lab-CA.pem")).expect("remove");
    walk.edit("expressway.conf", "Ciphers: \"EECDH:", "Ciphers: \"ECDHE-RSA-AES256-GCM-SHA384:EECDHX:");
    let said = walk.expect(&["check"], 1, "NOT FIXED");
    warned_before_verdict(
        &said,
        "  warning: expressway.conf:4: Ciphers: 'EECDHX': unknown, ignored by OpenSSL (did you mean 'EECDH'?)",
        "NOT FIXED",
    );
    // A warning does not change the verdict: fixed on every peer, it is fixed.
    walk.copy("certs/ca/lab-CA.pem", "trust-store/vcsc2/lab-CA.pem");
    let said = walk.expect(&["check"], 0, "FIXED, the long-term fix");
    assert!(said.contains("'EECDHX'"), "{said}");
    walk.stop();
}

#[test]
fn the_workspace_wrapper_runs_the_lab_from_anywhere_and_stop_and_start_say_what_they_do() {
    let walk = Walk::start("tftp-self-signed");
    let ws = walk.ws().canonicalize().expect("workspace");
    let wrapper = ws.join("mralab").display().to_string();
    // In the workspace: `./mralab`, and tips that say so.
    let output = walk.wrapper(&ws, &["check"]);
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert!(said.contains("Read traffic_server.log (`./mralab diagnose`), or `./mralab hint`."), "{said}");
    // Anywhere else: by its full path, and tips that name it so.
    let elsewhere = TempDir::new().expect("temp dir");
    let output = walk.wrapper(elsewhere.path(), &["check"]);
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert!(said.contains(&format!("(`{wrapper} diagnose`), or `{wrapper} hint`.")), "{said}");
    let output = walk.wrapper(elsewhere.path(), &["hint"]);
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("Hint 1/3 (direction)"));
    let output = walk.wrapper(elsewhere.path(), &["diagnose"]);
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(1), "diagnose finds the failure in the lab's log:\n{said}");
    assert!(said.contains("self-signed"), "{said}");
    let output = walk.wrapper(elsewhere.path(), &["ciphers", "EECDH:EDH:HIGH"]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("ECDSA certificate"));
    // Stop, then stop again: said plainly, exit 0. Other commands say the lab is not running.
    let pid = walk.pid().expect("pid");
    let output = walk.wrapper(&ws, &["stop"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(!alive(pid));
    walk.expect(&["stop"], 0, "lab 'tftp-self-signed' is not running in");
    let output = walk.lab(&["check"]);
    assert_eq!(output.status.code(), Some(2));
    let said = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(said.contains("is not running") && said.contains("./mralab start --force"), "{said}");
    // Start over a stopped lab: refused with what would be lost, unless --force.
    fs::write(ws.join("trust-store/mine.pem"), "an upload of the trainee's").expect("write");
    let output = walk.lab(&["start", "tftp-self-signed", "--workspace", ws.to_str().expect("utf-8")]);
    assert_eq!(output.status.code(), Some(2));
    let said = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        said.contains("holds the files of lab 'tftp-self-signed', which is not running") && said.contains("--force"),
        "{said}"
    );
    assert!(ws.join("trust-store/mine.pem").exists(), "a refused start replaced nothing");
    let output = walk.wrapper(elsewhere.path(), &["start", "--force"]);
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(0), "{said}");
    assert!(said.starts_with(&format!("replacing the files of lab 'tftp-self-signed' in {}", ws.display())), "{said}");
    assert!(!ws.join("trust-store/mine.pem").exists(), "--force replaced the trust store");
    assert!(walk.pid().is_some_and(alive));
    walk.stop();
    // A folder that holds no lab: nothing to stop, exit 1.
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["lab", "stop"])
        .current_dir(elsewhere.path())
        .output()
        .expect("running xtask");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).contains("no lab in"));
}

/// Whether tshark runs here; says why not, and fails under CI (`.ci/run` installs it).
fn tshark_available(test: &str) -> bool {
    if Command::new("tshark").arg("-v").output().is_ok_and(|o| o.status.success()) {
        return true;
    }
    assert!(
        !std::env::var("CI").is_ok_and(|v| v == "true"),
        "{test}: tshark is not installed, and CI must run the capture tests (apt-get install tshark)"
    );
    println!("{test}: SKIPPED: tshark is not installed (apt-get install tshark)");
    false
}

/// tshark's fields for `filter` in `file`, failing on a non-zero exit.
#[track_caller]
fn tshark_fields(file: &Path, filter: &str, fields: &[&str]) -> String {
    let mut command = Command::new("tshark");
    command.arg("-r").arg(file).args(["-Y", filter, "-T", "fields", "-E", "separator=|"]);
    for field in fields {
        command.args(["-e", field]);
    }
    let output = command.output().expect("tshark runs");
    assert!(output.status.success(), "tshark: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn capture_after_check_shows_the_tftp_certificate_and_the_unknown_ca_alert() {
    if !tshark_available("capture_after_check_shows_the_tftp_certificate_and_the_unknown_ca_alert") {
        return;
    }
    let walk = Walk::start("tftp-self-signed");
    walk.fails();
    let out = walk.expect(&["capture"], 0, "last-check.pcapng");
    assert!(out.contains("10.48.36.215:6972: node sent certificate") && out.contains("CN=cucm-EC.steven.lab"), "{out}");
    assert!(out.contains("alert unknown_ca (48) from verifier"), "{out}");
    let file = walk.ws().join("last-check.pcapng");
    let certificates = tshark_fields(&file, "tls.handshake.type == 11", &["tcp.srcport", "x509sat.uTF8String"]);
    assert!(certificates.lines().any(|l| l.starts_with("6972|") && l.contains("cucm-EC.steven.lab")), "{certificates}");
    let alerts = tshark_fields(&file, "tls.alert_message.desc == 48", &["ip.src", "tcp.dstport"]);
    assert!(alerts.lines().any(|l| l == "10.48.36.46|6972"), "{alerts}");
    let requests = tshark_fields(&file, "http.request", &["http.request.uri"]);
    assert!(requests.lines().any(|l| l.starts_with("/cucm-uds/")), "decrypted UDS requests: {requests}");
    walk.stop();
}
