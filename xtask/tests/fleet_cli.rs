//! `cargo xtask fleet up` as a trainee runs it: the table, real clients against the nodes and
//! through Expressway-C's front door, Ctrl-C, and `cargo xtask verify --publisher` against it.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, Stdio};

struct Up {
    child: Child,
    stdout: BufReader<ChildStdout>,
    text: String,
}

impl Up {
    fn start(args: &[&str]) -> Up {
        Up::start_with_tmpdir(args, &std::env::temp_dir())
    }

    fn start_with_tmpdir(args: &[&str], tmpdir: &std::path::Path) -> Up {
        let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["fleet", "up", "steven-lab"])
            .args(args)
            .env("TMPDIR", tmpdir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("xtask fleet up");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut up = Up { child, stdout, text: String::new() };
        loop {
            let mut line = String::new();
            let n = up.stdout.read_line(&mut line).expect("read");
            assert!(n > 0, "fleet up ended early:\n{}", up.text);
            up.text.push_str(&line);
            if line.starts_with("serving until Ctrl-C") {
                break;
            }
        }
        up
    }

    /// The loopback address the table shows for a node's port.
    fn addr(&self, fqdn: &str, port: u16) -> String {
        let row = self.text.lines().find(|l| l.contains(fqdn) && l.contains(&format!(":{port} "))).expect("row");
        row.split_whitespace()
            .find(|w| w.starts_with("127.") && w.ends_with(&format!(":{port}")))
            .expect("addr")
            .to_string()
    }

    fn interrupt(self) -> (i32, String) {
        self.signal("-INT")
    }

    fn signal(mut self, signal: &str) -> (i32, String) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args([signal, &pid]).status().expect("kill");
        assert!(status.success());
        let mut rest = String::new();
        let _ = self.stdout.read_to_string(&mut rest);
        let code = self.child.wait().expect("wait").code().unwrap_or(-1);
        (code, self.text.clone() + &rest)
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl").args(["-s", "-i", "--max-time", "20"]).args(args).output().expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn fleet_up_prints_the_table_serves_real_clients_and_stops_on_ctrl_c() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let up = Up::start(&["--out", dir.path().to_str().expect("utf8")]);
    assert!(up.text.contains("CUCM publisher  cucm.steven.lab  10.48.36.215:6972"), "{}", up.text);
    assert!(up.text.contains("CallManager + CallManager-ECDSA (server order ECDSA>RSA"), "{}", up.text);
    let tomcat = up.addr("cucm.steven.lab", 8443);
    let ip = tomcat.split(':').next().expect("ip");
    let roots = dir.path().join("trust/roots.pem");
    let answer = curl(&[
        "--ciphers",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "--resolve",
        &format!("cucm.steven.lab:8443:{ip}"),
        "--cacert",
        roots.to_str().expect("utf8"),
        "https://cucm.steven.lab:8443/cucm-uds/servers",
    ]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("<server>cucm.steven.lab</server>"), "{answer}");
    let (code, out) = up.interrupt();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("request GET /cucm-uds/servers"), "the event log is printed at the end:\n{out}");
    assert!(out.contains("fleet stopped"), "{out}");
}

#[test]
fn the_front_door_proxies_discovered_nodes_through_the_model_and_refuses_others() {
    let up = Up::start(&["--front-door", "127.0.0.1:0", "--upgraded-from", "X14.0.7"]);
    let front = up
        .text
        .lines()
        .find_map(|l| l.strip_prefix("Expressway-C front door on http://"))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("front door address")
        .to_string();
    // cucm.steven.lab/8443 and /6972, steven.lab domain: the seed's first failure.
    let tomcat =
        curl(&[&format!("http://{front}/c3RldmVuLmxhYi9odHRwcy9jdWNtLnN0ZXZlbi5sYWIvODQ0Mw/cucm-uds/version")]);
    assert!(tomcat.starts_with("HTTP/1.1 200"), "{tomcat}");
    let tftp = curl(&[&format!("http://{front}/c3RldmVuLmxhYi9odHRwcy9jdWNtLnN0ZXZlbi5sYWIvNjk3Mg/SPDefault.cnf.xml")]);
    assert!(tftp.starts_with("HTTP/1.1 502 connect failed"), "{tftp}");
    // steven.lab/https/10.0.0.1/8443 was never discovered: refused, never dialled.
    let other = curl(&[&format!("http://{front}/c3RldmVuLmxhYi9odHRwcy8xMC4wLjAuMS84NDQz/cucm-uds/version")]);
    assert!(other.starts_with("HTTP/1.1 403"), "{other}");
    let bad = curl(&[&format!("http://{front}/!!!/x")]);
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    let (code, out) = up.interrupt();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Error=self signed certificate server=cucm.steven.lab(10.48.36.215) depth=0"), "{out}");
    assert!(out.contains("front door: 403"), "{out}");
}

#[test]
fn verify_publisher_tells_what_breaks_with_the_upgrade() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let up = Up::start(&["--out", dir.path().to_str().expect("utf8")]);
    let publisher = up.addr("cucm.steven.lab", 8443);
    let ip = publisher.split(':').next().expect("ip").to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["verify", "--publisher", &publisher, "--host", "cucm.steven.lab", "--resolve"])
        .arg(format!("cucm.steven.lab:{ip}"))
        .arg("--trust")
        .arg(dir.path().join("trust/roots.pem"))
        .args(["--upgrade-from", "X14.0.7", "--upgrade-to", "X14.2"])
        .output()
        .expect("xtask verify");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("publisher cucm.steven.lab advertises: cucm.steven.lab"), "{text}");
    let tftp = text.split("cucm.steven.lab:6972").nth(1).expect("a 6972 section");
    assert!(
        tftp.contains("today  served C=BE, ST=Belgium, L=Diegem, O=Cisco, OU=TAC, CN=cucm-EC.steven.lab (self-signed"),
        "{text}"
    );
    assert!(tftp.contains("-> 200 OK"), "{text}");
    assert!(tftp.contains("-> 502 connect failed [chain: self signed certificate (error 18 at depth 0)]"), "{text}");
    assert!(tftp.contains("!! breaks with the upgrade"), "{text}");
    assert!(text.contains("1 node port(s) break with the upgrade"), "{text}");
    drop(up);
}

#[test]
fn sigterm_stops_the_fleet_and_removes_its_temporary_pki_whose_keys_were_0600() {
    use std::os::unix::fs::PermissionsExt as _;
    let tmpdir = tempfile::TempDir::new().expect("temp dir");
    let up = Up::start_with_tmpdir(&[], tmpdir.path());
    let dir = up
        .text
        .lines()
        .find_map(|l| l.strip_prefix("PKI written to ")?.split(" (").next().map(std::path::PathBuf::from))
        .expect("the PKI folder is printed");
    assert!(dir.starts_with(tmpdir.path()), "{}", dir.display());
    let key = dir.join("certs/cucm/tomcat.key.pem");
    let mode = std::fs::metadata(&key).expect("key written").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", key.display());
    let (code, text) = up.signal("-TERM");
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("fleet stopped"), "{text}");
    let left: Vec<_> = std::fs::read_dir(tmpdir.path()).expect("read tmpdir").collect();
    assert!(left.is_empty(), "left behind in TMPDIR: {left:?}");
}
