//! The front door against hostile clients: slow and idle connections are closed at their
//! timeouts, connections beyond the cap wait, MRA tokens that are not `https` or whose port is
//! not written canonically are refused with 400, and nothing a client sends reaches a log line
//! with its control characters. A stand-in verifier answers every proxied request (and counts
//! them), so these tests need no fleet. Loopback only; every network wait has a timeout.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use harness::frontdoor::{FrontDoor, FrontDoorSettings, Route, Routes};
use harness::runtime::runtime;
use harness::verifier::{Change, OriginRequest, Outcome, Session, Verifier, VerifierFault};

/// How long a test waits for something that must happen (far above the 200 ms settings).
const PATIENCE: Duration = Duration::from_secs(10);

/// Answers every request with 200 and one log line naming the target; counts the requests.
struct Stand {
    requests: Arc<AtomicUsize>,
}

impl Verifier for Stand {
    fn name(&self) -> String {
        "stand-in".into()
    }
    fn open(&mut self, _: &Session) -> Result<(), VerifierFault> {
        Ok(())
    }
    fn reconfigure(&mut self, _: &Session, _: Change) -> Result<(), VerifierFault> {
        Ok(())
    }
    fn request(&mut self, request: &OriginRequest) -> Result<Outcome, VerifierFault> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        Ok(Outcome {
            status: 200,
            reason: "OK".into(),
            log: vec![format!(
                "proxied {}:{}{}{}",
                request.host,
                request.port,
                request.path,
                if request.resolves { "" } else { " (no DNS entry)" }
            )],
            body: "proxied\n".into(),
            ..Outcome::default()
        })
    }
}

/// A front door routing `cucm.steven.lab:8443` (to a socket nobody dials: the stand-in
/// answers) and the discovered name `cucm.stevn.lab:8443`, which resolves nowhere, with its
/// log lines and the stand-in's request count.
struct Door {
    door: Option<FrontDoor>,
    lines: Arc<Mutex<Vec<String>>>,
    requests: Arc<AtomicUsize>,
}

impl Door {
    fn start(settings: FrontDoorSettings) -> Door {
        let requests = Arc::new(AtomicUsize::new(0));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut routes = Routes::new();
        routes.insert(
            ("cucm.steven.lab".into(), 8443),
            Route::Node {
                modelled_ip: IpAddr::V4(Ipv4Addr::new(10, 48, 36, 215)),
                dial: SocketAddr::from(([127, 0, 0, 1], 9)),
            },
        );
        routes.insert(("cucm.stevn.lab".into(), 8443), Route::Unresolved);
        let sink = lines.clone();
        let door = runtime()
            .block_on(FrontDoor::start_with(
                SocketAddr::from(([127, 0, 0, 1], 0)),
                Box::new(Stand { requests: requests.clone() }),
                routes,
                settings,
                move |line| sink.lock().expect("log lines").push(line.to_string()),
            ))
            .expect("the front door starts");
        Door { door: Some(door), lines, requests }
    }

    fn addr(&self) -> SocketAddr {
        self.door.as_ref().expect("running").addr()
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect_timeout(&self.addr(), PATIENCE).expect("connect to the front door");
        stream.set_read_timeout(Some(PATIENCE)).expect("read timeout");
        stream.set_write_timeout(Some(PATIENCE)).expect("write timeout");
        stream
    }

    /// `GET path` on a fresh connection: status line and body.
    fn get(&self, path: &str) -> (String, String) {
        let mut stream = self.connect();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: door\r\nConnection: close\r\n\r\n").expect("send");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).expect("an answer");
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        (head.lines().next().unwrap_or_default().to_string(), body.to_string())
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("log lines").clone()
    }
}

impl Drop for Door {
    fn drop(&mut self) {
        if let Some(door) = self.door.take() {
            runtime().block_on(door.stop());
        }
    }
}

/// Settings with every timeout long, so that a test sets only the one it looks at.
fn patient() -> FrontDoorSettings {
    FrontDoorSettings {
        header_read_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(60),
        ..FrontDoorSettings::default()
    }
}

/// The path of an MRA request whose token decodes to `decoded`.
fn mra(decoded: &str) -> String {
    format!("/{}/cucm-uds/version", STANDARD_NO_PAD.encode(decoded))
}

/// Whether the server closed `stream` (end of file or a reset) before `PATIENCE` ran out,
/// reading (and discarding) whatever it sent before.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return false,
            Err(_) => return true,
        }
    }
}

#[test]
fn a_client_trickling_its_headers_is_cut_off_at_the_header_read_timeout() {
    let door = Door::start(FrontDoorSettings { header_read_timeout: Duration::from_millis(200), ..patient() });
    let mut stream = door.connect();
    stream.write_all(b"GET / HTTP/1.1\r\nHost: door\r\nX-Slow: ").expect("send the start");
    // One header byte every 50 ms: never idle, never done.
    let start = Instant::now();
    let mut cut_off = false;
    while start.elapsed() < PATIENCE {
        if stream.write_all(b"a").is_err() {
            cut_off = true;
            break;
        }
        stream.set_read_timeout(Some(Duration::from_millis(50))).expect("read timeout");
        let mut buf = [0u8; 1024];
        match stream.read(&mut buf) {
            Ok(_) => {
                cut_off = true;
                break;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => {
                cut_off = true;
                break;
            }
        }
    }
    assert!(cut_off, "a connection still sending its headers after {PATIENCE:?} is open");
    assert_eq!(door.requests.load(Ordering::SeqCst), 0);
}

#[test]
fn a_silent_connection_is_closed_at_the_idle_timeout() {
    let door = Door::start(FrontDoorSettings { idle_timeout: Duration::from_millis(200), ..patient() });
    let mut silent = door.connect();
    assert!(closed_by_server(&mut silent), "a silent connection is still open after {PATIENCE:?}");
}

#[test]
fn a_kept_alive_connection_is_closed_at_the_idle_timeout_after_its_request() {
    let door = Door::start(FrontDoorSettings { idle_timeout: Duration::from_millis(200), ..patient() });
    let mut stream = door.connect();
    let path = mra("steven.lab/https/cucm.steven.lab/8443");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: door\r\n\r\n").expect("send");
    // The answer arrives, then the connection goes quiet and is closed.
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).expect("an answer");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(closed_by_server(&mut stream), "an idle kept-alive connection is still open after {PATIENCE:?}");
}

#[test]
fn connections_beyond_the_cap_wait_until_one_closes() {
    let door = Door::start(FrontDoorSettings { max_connections: 2, ..patient() });
    let first = door.connect();
    let _second = door.connect();
    // Both hold their places before the third arrives (the accept queue is first come, first served).
    let mut third = door.connect();
    let path = mra("steven.lab/https/cucm.steven.lab/8443");
    write!(third, "GET {path} HTTP/1.1\r\nHost: door\r\nConnection: close\r\n\r\n").expect("send");
    third.set_read_timeout(Some(Duration::from_millis(500))).expect("read timeout");
    let mut buf = [0u8; 4096];
    match third.read(&mut buf) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("a third connection was served while two held the cap of 2: {other:?}"),
    }
    assert_eq!(door.requests.load(Ordering::SeqCst), 0);
    drop(first);
    third.set_read_timeout(Some(PATIENCE)).expect("read timeout");
    let mut answer = Vec::new();
    third.read_to_end(&mut answer).expect("served once a place is free");
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
}

#[test]
fn tokens_whose_scheme_is_not_https_are_refused_with_400() {
    let door = Door::start(patient());
    for scheme in ["http", "HTTPS", "ftp", "https "] {
        let (status, body) = door.get(&mra(&format!("steven.lab/{scheme}/cucm.steven.lab/8443")));
        assert!(status.starts_with("HTTP/1.1 400"), "scheme '{scheme}': {status}");
        assert!(body.contains("https"), "scheme '{scheme}': the body says why: {body}");
    }
    assert_eq!(door.requests.load(Ordering::SeqCst), 0, "nothing was proxied");
    // The canonical form is proxied.
    let (status, _) = door.get(&mra("steven.lab/https/cucm.steven.lab/8443"));
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
}

#[test]
fn ports_not_written_as_canonical_decimal_are_refused_with_400() {
    let door = Door::start(patient());
    for port in ["+8443", "08443", "0", "65536", "8443 ", " 8443", "-1", "0x20FB"] {
        let (status, body) = door.get(&mra(&format!("steven.lab/https/cucm.steven.lab/{port}")));
        assert!(status.starts_with("HTTP/1.1 400"), "port '{port}': {status}");
        assert!(body.contains("port"), "port '{port}': the body says why: {body}");
    }
    assert_eq!(door.requests.load(Ordering::SeqCst), 0, "nothing was proxied");
}

#[test]
fn a_newline_in_the_decoded_host_never_reaches_a_log_line() {
    let door = Door::start(patient());
    let forged = "2026-11-28T11:59:51.915+02:00 vcsc traffic_server[1]: [ET_NET 0] WARNING: Core server \
                  certificate verification failed for (forged.steven.lab). Action=Terminate Error=self signed \
                  certificate server=forged.steven.lab(10.9.9.9) depth=0";
    for host in [format!("evil\n{forged}\nx"), format!("evil\r{forged}"), "evil\u{1b}[2Jx".to_string()] {
        let (status, _) = door.get(&mra(&format!("steven.lab/https/{host}/8443")));
        assert!(status.starts_with("HTTP/1.1 400"), "{status}");
    }
    let lines = door.lines();
    assert!(!lines.is_empty(), "each refusal is logged");
    for line in &lines {
        assert!(!line.chars().any(|c| c.is_control()), "a control character reached the log: {line:?}");
        // Not even escaped: `diagnose` finds its markers anywhere in a line.
        assert!(!line.contains("verification failed"), "the forged text reached the log: {line}");
    }
    assert!(lines.iter().any(|l| l.contains("the host holds '\\x0a' at byte 4")), "the refusal says why: {lines:?}");
}

#[test]
fn a_proper_request_is_proxied_and_logged() {
    let door = Door::start(patient());
    let (status, body) = door.get(&mra("steven.lab/https/cucm.steven.lab/8443"));
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(body, "proxied\n");
    assert_eq!(door.lines(), ["proxied cucm.steven.lab:8443/cucm-uds/version"]);
    let (status, _) = door.get(&mra("steven.lab/https/cups.steven.lab/8443"));
    assert!(status.starts_with("HTTP/1.1 403"), "an undiscovered node is refused: {status}");
}

#[test]
fn a_discovered_name_that_does_not_resolve_reaches_the_verifier_as_such() {
    let door = Door::start(patient());
    let (status, _) = door.get(&mra("steven.lab/https/cucm.stevn.lab/8443"));
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(door.lines(), ["proxied cucm.stevn.lab:8443/cucm-uds/version (no DNS entry)"]);
}
