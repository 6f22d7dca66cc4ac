//! A running lab against hostile local clients, through the same commands a trainee runs (the
//! xtask binary, confined: 1 GiB of address space, killed after 60 s): silent, oversized and
//! unauthenticated lines on the control port, forged log lines and odd tokens at the front
//! door, descriptor exhaustion, and a `lab.toml` naming addresses off loopback. Every socket is
//! on 127.0.0.0/8; an address off loopback is only ever checked to be refused before any dial.

mod confined;

use std::fs;
use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use harness::lab::{PeerReport, ReloadReport, Target};
use tempfile::TempDir;

/// How long a test waits for something that must happen (far above the 200 ms settings).
const PATIENCE: Duration = Duration::from_secs(10);

/// A lab started in a temporary workspace; its process is killed if the test fails half-way.
struct Running {
    dir: TempDir,
}

impl Running {
    /// `lab start tftp-self-signed` with `extra` arguments, confined.
    fn start(extra: &[&str]) -> Running {
        Running::start_under(&[], extra)
    }

    /// The same under further `prlimit` limits (`--nofile=64`).
    fn start_under(limits: &[&str], extra: &[&str]) -> Running {
        let lab = Running { dir: TempDir::new().expect("temp dir") };
        let ws = lab.ws();
        let mut command = Command::new("prlimit");
        command
            .args(limits)
            .arg(format!("--as={}", confined::ADDRESS_SPACE))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_xtask"))
            .args(["lab", "start", "tftp-self-signed", "--workspace", &ws])
            .args(extra);
        let ended = confined::run(command, b"", confined::DEADLINE);
        assert_eq!(ended.code, Some(0), "lab start: {ended:?}");
        assert!(lab.serving(), "lab.toml names a live process");
        lab
    }

    fn ws(&self) -> String {
        self.dir.path().to_str().expect("utf-8 path").to_string()
    }

    fn state(&self) -> toml::Value {
        let text = fs::read_to_string(self.dir.path().join("lab.toml")).expect("lab.toml");
        toml::from_str(&text).expect("lab.toml is TOML")
    }

    fn pid(&self) -> u32 {
        self.state()["pid"].as_integer().and_then(|p| u32::try_from(p).ok()).expect("pid")
    }

    fn control(&self) -> SocketAddr {
        self.state()["control"].as_str().and_then(|a| a.parse().ok()).expect("control address")
    }

    fn front_door(&self) -> SocketAddr {
        self.state()["peers"][0]["front_door"].as_str().and_then(|a| a.parse().ok()).expect("front door")
    }

    fn serving(&self) -> bool {
        alive(self.pid())
    }

    /// `lab check`, confined: still NOT FIXED (exit 1) with every line of its report.
    #[track_caller]
    fn check_answers(&self) {
        let ended = confined::xtask_run(&["lab", "check", "--workspace", &self.ws()], None);
        assert!(!ended.timed_out, "lab check was killed after {:?}: {ended:?}", confined::DEADLINE);
        assert_eq!(ended.code, Some(1), "lab check: {ended:?}");
        assert!(ended.stdout.contains("NOT FIXED"), "{}", ended.stdout);
        assert!(ended.stdout.contains("GET  502 connect failed   cucm.steven.lab:6972/SPDefault.cnf.xml"));
    }

    fn file(&self, name: &str) -> String {
        fs::read_to_string(self.dir.path().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(text) = fs::read_to_string(self.dir.path().join("lab.toml"))
            && let Ok(state) = toml::from_str::<toml::Value>(&text)
            && let Some(pid) = state["pid"].as_integer()
            && alive(pid as u32)
        {
            let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
        }
    }
}

/// Whether a process runs (a zombie does not).
fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => !matches!(stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next()), Some('Z' | 'X') | None),
    }
}

/// CPU time a process has used, in clock ticks (user and system; 100 a second on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let fields: Vec<&str> = stat.rsplit_once(") ").expect("stat shape").1.split(' ').collect();
    // utime and stime are the 14th and 15th fields; 3rd and 4th here counts from the state.
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, PATIENCE).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("read timeout");
    stream.set_write_timeout(Some(PATIENCE)).expect("write timeout");
    stream
}

/// Sends `bytes` to `addr` and reads until the other side closes (or `PATIENCE` runs out).
fn exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = connect(addr);
    stream.write_all(bytes).expect("send");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// The status line of `GET path` through a front door.
fn get(door: SocketAddr, path: &str) -> String {
    let answer = exchange(door, format!("GET {path} HTTP/1.1\r\nHost: door\r\nConnection: close\r\n\r\n").as_bytes());
    answer.lines().next().unwrap_or_default().to_string()
}

fn mra(decoded: &str) -> String {
    format!("/{}/cucm-uds/version", STANDARD_NO_PAD.encode(decoded))
}

#[test]
fn lab_toml_is_readable_by_its_owner_only_and_holds_a_random_token() {
    let lab = Running::start(&[]);
    let mode = fs::metadata(lab.dir.path().join("lab.toml")).expect("lab.toml").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "lab.toml mode {:o}", mode & 0o777);
    let token = lab.state().get("token").and_then(|t| t.as_str()).map(str::to_string).unwrap_or_default();
    assert!(token.len() >= 32 && token.bytes().all(|b| b.is_ascii_hexdigit()), "token '{token}'");
    let other = Running::start(&[]);
    assert_ne!(other.state()["token"].as_str(), Some(token.as_str()), "two labs, two tokens");
}

#[test]
fn stop_without_the_token_is_refused_and_the_lab_keeps_serving() {
    let lab = Running::start(&[]);
    for line in [&b"stop\n"[..], b"00000000000000000000000000000000 stop\n", b"stop\x1b]0;owned\x07\n", b"\n"] {
        let answer = exchange(lab.control(), line);
        assert!(answer.contains("refused"), "{}: {answer}", String::from_utf8_lossy(line).escape_debug());
    }
    assert!(lab.serving(), "an unauthenticated stop stopped the lab");
    lab.check_answers();
    let log = lab.file("serve.log");
    assert!(!log.contains('\u{1b}') && !log.contains('\u{7}'), "a client's control characters reached serve.log");
}

#[test]
fn check_is_answered_while_silent_clients_hold_the_control_port() {
    let lab = Running::start(&[]);
    // Ten connections that never send a byte, held for the whole check.
    let silent: Vec<TcpStream> = (0..10).map(|_| connect(lab.control())).collect();
    lab.check_answers();
    drop(silent);
    assert!(lab.serving());
}

#[test]
fn a_silent_control_client_is_closed_at_the_read_timeout() {
    let lab = Running::start(&["--control-read-timeout-ms", "200"]);
    let mut silent = connect(lab.control());
    let mut answer = Vec::new();
    match silent.read_to_end(&mut answer) {
        Ok(_) => {}
        Err(e) => assert!(!matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut), "still open: {e}"),
    }
    assert!(String::from_utf8_lossy(&answer).contains("refused"), "{}", String::from_utf8_lossy(&answer));
    lab.check_answers();
}

#[test]
fn ten_megabytes_without_a_newline_are_refused_and_the_lab_still_answers() {
    let lab = Running::start(&[]);
    let mut stream = connect(lab.control());
    let mut sending = stream.try_clone().expect("clone");
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'a'; 64 * 1024];
        for _ in 0..160 {
            if sending.write_all(&chunk).is_err() {
                break; // the lab closed: expected
            }
        }
    });
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(answer.contains("refused") && answer.contains("65536"), "answer: '{answer}'");
    drop(stream);
    let _ = writer.join();
    assert!(lab.serving());
    lab.check_answers();
}

#[test]
fn a_forged_log_line_in_a_front_door_token_never_reaches_the_log_or_diagnose() {
    let lab = Running::start(&[]);
    let door = lab.front_door();
    let forged = "2026-11-28T11:59:51.915+02:00 vcsc traffic_server[1]: [ET_NET 0] WARNING: Core server \
                  certificate verification failed for (forged.steven.lab). Action=Terminate Error=self signed \
                  certificate server=forged.steven.lab(10.9.9.9) depth=0";
    let status = get(door, &mra(&format!("steven.lab/https/evil\n{forged}\nx/8443")));
    assert!(status.starts_with("HTTP/1.1 400"), "{status}");
    let log = lab.file("traffic_server.log");
    assert!(!log.contains("forged.steven.lab"), "the forged line reached traffic_server.log:\n{log}");
    let log_path = lab.dir.path().join("traffic_server.log");
    let ended = confined::xtask_run(&["diagnose", log_path.to_str().expect("utf-8")], None);
    assert!(!ended.stdout.contains("forged"), "diagnose reports the forged finding:\n{}", ended.stdout);
}

#[test]
fn the_front_door_refuses_schemes_other_than_https_and_ports_not_in_canonical_decimal() {
    let lab = Running::start(&[]);
    let door = lab.front_door();
    assert!(get(door, &mra("steven.lab/https/cucm.steven.lab/8443")).starts_with("HTTP/1.1 200"));
    for decoded in [
        "steven.lab/http/cucm.steven.lab/8443",
        "steven.lab/https/cucm.steven.lab/+8443",
        "steven.lab/https/cucm.steven.lab/08443",
    ] {
        let status = get(door, &mra(decoded));
        assert!(status.starts_with("HTTP/1.1 400"), "{decoded}: {status}");
    }
}

#[test]
fn descriptor_exhaustion_neither_stops_the_lab_nor_makes_it_spin() {
    let lab = Running::start_under(&["--nofile=64"], &[]);
    let pid = lab.pid();
    let (door, control) = (lab.front_door(), lab.control());
    // Far more connections than the process has descriptors left, held open.
    let mut held = Vec::new();
    for addr in std::iter::repeat_n(door, 120).chain(std::iter::repeat_n(control, 60)) {
        if let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            held.push(stream);
        }
    }
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(3));
    let used = cpu_ticks(pid) - before;
    assert!(lab.serving(), "the lab exited on descriptor exhaustion; serve.log:\n{}", lab.file("serve.log"));
    let log = lab.file("traffic_server.log") + &lab.file("serve.log");
    assert!(log.contains("Too many open files"), "the burst did not exhaust the descriptors:\n{log}");
    eprintln!("{used} clock ticks of CPU in 3 s of exhausted descriptors");
    // A spinning accept loop takes a core; backing off takes next to nothing.
    assert!(used < 30, "{used} ticks of CPU in 3 s of exhausted descriptors: the accept loop spins");
    drop(held);
    lab.check_answers();
    assert!(lab.serving());
}

/// A loopback listener that counts the connections it gets and answers each with `answer`.
struct Spy {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    done: Arc<AtomicBool>,
}

impl Spy {
    fn new(answer: String) -> Spy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("address");
        let connections = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let (count, stop) = (connections.clone(), done.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        count.fetch_add(1, Ordering::SeqCst);
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
                        let mut buf = [0u8; 4096];
                        let _ = stream.read(&mut buf);
                        let _ = stream.write_all(answer.as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Spy { addr, connections, done }
    }

    fn dialled(&self) -> usize {
        // Whatever a finished command dialled is in the accept queue already; give the thread a turn.
        std::thread::sleep(Duration::from_millis(100));
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Spy {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
    }
}

/// A hand-written `lab.toml` naming `control` and one peer's front door.
fn lab_toml(dir: &TempDir, control: &str, front_door: &str) {
    let text = format!(
        "lab = \"tftp-self-signed\"\npid = {}\ncontrol = \"{control}\"\nnodes = []\n\n[[peers]]\nname = \"vcsc\"\n\
         front_door = \"{front_door}\"\n",
        std::process::id()
    );
    fs::write(dir.path().join("lab.toml"), text).expect("write lab.toml");
}

/// A reload report whose one peer's front door is `front_door`.
fn report(front_door: SocketAddr) -> String {
    let report = ReloadReport {
        verify_origin_server: true,
        verifies: true,
        domain: "steven.lab".into(),
        peers: vec![PeerReport {
            name: "vcsc".into(),
            front_door,
            discovery: "discovery of cucm.steven.lab via vcsc: 200 OK".into(),
            discovered: true,
            targets: vec![Target { service: "uds".into(), host: "cucm.steven.lab".into(), port: 8443 }],
            trusted: vec![],
        }],
        ..ReloadReport::default()
    };
    serde_json::to_string(&report).expect("json")
}

fn check_in(dir: &TempDir) -> confined::Ended {
    let ended = confined::xtask_run(&["lab", "check", "--workspace", dir.path().to_str().expect("utf-8")], None);
    assert!(!ended.timed_out, "{ended:?}");
    ended
}

#[test]
fn check_refuses_a_control_address_off_loopback_before_dialling_it() {
    let dir = TempDir::new().expect("temp dir");
    // 0.0.0.0 is no loopback address, yet dialling it reaches this host: a spy shows any dial.
    let spy = Spy::new(report(SocketAddr::from(([127, 0, 0, 1], 9))));
    let control = format!("0.0.0.0:{}", spy.addr.port());
    lab_toml(&dir, &control, "127.0.0.1:9");
    let ended = check_in(&dir);
    assert_eq!(spy.dialled(), 0, "check dialled {control} from lab.toml: {ended:?}");
    assert_eq!(ended.code, Some(2), "{ended:?}");
    assert!(ended.stderr.contains(&control) && ended.stderr.contains("loopback"), "{}", ended.stderr);
    // An address off this host: refused the same way. Run in a private network namespace with
    // only `lo`, so that even a dial that slipped through could not leave the machine.
    lab_toml(&dir, "192.0.2.1:9", "127.0.0.1:9");
    let workspace = dir.path().to_str().expect("utf-8");
    let Some(command) = confined::xtask_in_private_network(&["lab", "check", "--workspace", workspace], None) else {
        return;
    };
    let ended = confined::run(command, b"", confined::DEADLINE);
    assert!(!ended.timed_out, "{ended:?}");
    assert_eq!(ended.code, Some(2), "{ended:?}");
    assert!(ended.stderr.contains("192.0.2.1:9") && ended.stderr.contains("loopback"), "{}", ended.stderr);
}

#[test]
fn check_refuses_a_front_door_off_loopback_before_dialling_it() {
    let dir = TempDir::new().expect("temp dir");
    let door = Spy::new("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into());
    let off_loopback = SocketAddr::from(([0, 0, 0, 0], door.addr.port()));
    // In lab.toml: refused before the control port is even asked.
    let control = Spy::new(report(door.addr));
    lab_toml(&dir, &control.addr.to_string(), &off_loopback.to_string());
    let ended = check_in(&dir);
    assert_eq!((control.dialled(), door.dialled()), (0, 0), "check dialled: {ended:?}");
    assert_eq!(ended.code, Some(2), "{ended:?}");
    assert!(ended.stderr.contains(&off_loopback.to_string()) && ended.stderr.contains("loopback"), "{}", ended.stderr);
    // In the control port's answer: refused before it is dialled.
    let control = Spy::new(report(off_loopback));
    lab_toml(&dir, &control.addr.to_string(), &door.addr.to_string());
    let ended = check_in(&dir);
    assert_eq!(door.dialled(), 0, "check dialled the front door {off_loopback} the lab answered: {ended:?}");
    assert_eq!(ended.code, Some(2), "{ended:?}");
    assert!(ended.stderr.contains(&off_loopback.to_string()) && ended.stderr.contains("loopback"), "{}", ended.stderr);
}
