//! `cargo xtask verify` against an `openssl s_server` the test starts, and against the fleet.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn pki(dir: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["pki", "steven-lab", "--out"])
        .arg(dir)
        .output()
        .expect("xtask pki");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `openssl s_server -www` serving one certificate of the PKI on loopback.
fn s_server(dir: &Path, cert: &str) -> (Server, SocketAddr) {
    let port = free_port();
    let child = Command::new("openssl")
        .args(["s_server", "-accept", &format!("127.0.0.1:{port}"), "-www", "-cert"])
        .arg(dir.join(format!("certs/{cert}.pem")))
        .arg("-key")
        .arg(dir.join(format!("certs/{cert}.key.pem")))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "s_server did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    (Server(child), addr)
}

fn verify(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask")).arg("verify").args(args).output().expect("xtask verify");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn a_trusted_ca_signed_tomcat_by_its_name_would_succeed() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    pki(dir.path());
    let (_server, addr) = s_server(dir.path(), "cucm/tomcat");
    let trust = dir.path().join("trust/roots.pem");
    let (code, out) = verify(&[
        "--connect",
        &addr.to_string(),
        "--host",
        "cucm.steven.lab",
        "--path",
        "/",
        "--trust",
        trust.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("served[0] C=BE, ST=Belgium, L=Diegem, O=Cisco, OU=TAC, CN=cucm-ms.steven.lab"), "{out}");
    assert!(out.contains("status 200"), "{out}");
}

#[test]
fn the_same_server_by_ip_fails_the_name_check() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    pki(dir.path());
    let (_server, addr) = s_server(dir.path(), "cucm/tomcat");
    let trust = dir.path().join("trust/roots.pem");
    let (code, out) =
        verify(&["--connect", &addr.to_string(), "--path", "/", "--trust", trust.to_str().expect("utf8")]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("WARNING: SNI (127.0.0.1) not in certificate. Action=Terminate server=127.0.0.1(127.0.0.1)"),
        "{out}"
    );
    assert!(out.contains("status 502 connect failed"), "{out}");
}

#[test]
fn a_self_signed_ecdsa_tomcat_fails_at_depth_0_and_permissive_lets_it_through() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    pki(dir.path());
    let (_server, addr) = s_server(dir.path(), "cucm/tomcat-ECDSA");
    let trust = dir.path().join("trust/roots.pem");
    let trust = trust.to_str().expect("utf8");
    let base = ["--connect", &addr.to_string(), "--host", "cucm.steven.lab", "--path", "/", "--trust", trust];
    let (code, out) = verify(&base);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("Error=self signed certificate server=cucm.steven.lab(127.0.0.1) depth=0"), "{out}");
    let mut permissive = base.to_vec();
    permissive.extend(["--policy", "permissive"]);
    let (code, out) = verify(&permissive);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Action=Continue"), "{out}");
}

#[test]
fn harness_faults_exit_2_with_their_own_message() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    pki(dir.path());
    let trust = dir.path().join("trust/roots.pem");
    let nothing = format!("127.0.0.1:{}", free_port());
    let (code, out) =
        verify(&["--connect", &nothing, "--host", "cucm.steven.lab", "--trust", trust.to_str().expect("utf8")]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("nothing answered"), "{out}");
    let key = dir.path().join("certs/cucm/tomcat.key.pem");
    let (code, out) = verify(&["--connect", &nothing, "--trust", key.to_str().expect("utf8")]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("private key"), "{out}");
    let (code, out) = verify(&["--connect", &nothing, "--trust", "/nonexistent/ca.pem"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("reading --trust /nonexistent/ca.pem"), "{out}");
    let (code, out) = verify(&["--connect", &nothing, "--trust", trust.to_str().expect("utf8"), "--ciphers", "NOPE"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("--ciphers 'NOPE'"), "{out}");
}
