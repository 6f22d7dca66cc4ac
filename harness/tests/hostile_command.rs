//! `--verifier cmd:<path>` against hostile commands: endless or huge answer lines, a flood on
//! stderr, grandchildren left running, a usage line and an exit, and what a command leaves on
//! disk. Each is a fault with a message, never an abort, a leak or a verdict.
//!
//! The memory-hungry cases run as a child process: this test binary again, filtered to one
//! ignored `confined_*` test, under a 1 GiB address-space limit (`prlimit --as`) and killed
//! after 60 s, with `TMPDIR` pointed at a fresh folder that must hold no `mralab-cmd-*` scratch
//! folder when the child has ended. The outer test asserts how the child ended.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::verifier::VerifierFactory as _;
use harness::verifier::command::{CommandFactory, CommandLimits, CommandVerifier};
use harness::verifier::{ClientIdentity, OriginRequest, Session, Verifier, VerifierFault};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

mod command_support;
use command_support::{fault_message, request, script, session};

/// The address-space limit of a confined child.
const ADDRESS_SPACE: u64 = 1 << 30;
/// How long a confined child may run.
const DEADLINE: Duration = Duration::from_secs(60);
/// Set in a confined child's environment; the `confined_*` tests do nothing without it.
const CONFINED: &str = "MRALAB_TEST_CONFINED";

/// Whether `pid` is gone: no `/proc/<pid>`, or a zombie nobody has reaped yet.
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// The pid a command wrote to `file`, waiting a bounded while for it to be written.
#[track_caller]
fn pid_in(file: &Path) -> u32 {
    let start = Instant::now();
    loop {
        if let Some(pid) = std::fs::read_to_string(file).ok().and_then(|t| t.trim().parse().ok()) {
            return pid;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{} was never written", file.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Kills `pid` when dropped unless it is gone already: a failing test leaves no `sleep 300`.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if !gone(self.0) {
            let _ = Command::new("kill").args(["-KILL", &self.0.to_string()]).status();
        }
    }
}

/// Asserts that `pid` is gone within a bounded wait, killing it (and failing) if it is not.
#[track_caller]
fn assert_gone(pid: u32, what: &str) {
    let start = Instant::now();
    while !gone(pid) {
        if start.elapsed() > Duration::from_secs(5) {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            panic!("{what} (pid {pid}) outlived the verifier");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The `mralab-cmd-*` folders in the temporary folder (the confined child's `TMPDIR`).
fn scratch_folders(tmp: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(tmp) else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("mralab-cmd-"))
        .collect()
}

/// Whether this process is a confined child (see [`confined`]).
fn confined_here() -> bool {
    let here = std::env::var_os(CONFINED).is_some();
    if !here {
        eprintln!("run confined by its outer test, not directly");
    }
    here
}

/// How a confined child ended.
#[derive(Debug)]
struct Ended {
    code: Option<i32>,
    signal: Option<i32>,
    timed_out: bool,
    output: String,
    /// `mralab-cmd-*` folders left in its `TMPDIR`.
    leftovers: Vec<String>,
}

/// Runs the ignored test `inner` of this binary as a confined child (1 GiB of address space,
/// killed after [`DEADLINE`], `TMPDIR` a fresh folder).
fn confined(inner: &str) -> Ended {
    let tmp = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("the test binary");
    let mut child = Command::new("prlimit")
        .arg(format!("--as={ADDRESS_SPACE}"))
        .arg("--")
        .arg(exe)
        .args(["--exact", inner, "--ignored", "--nocapture", "--test-threads=1"])
        .env("TMPDIR", tmp.path())
        .env(CONFINED, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("prlimit (util-linux) runs the test binary");
    let read = |from: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut from) = from {
                let _ = from.read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = read(child.stdout.take().map(|s| Box::new(s) as _));
    let stderr = read(child.stderr.take().map(|s| Box::new(s) as _));
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if start.elapsed() > DEADLINE {
            timed_out = true;
            let _ = child.kill();
            break child.wait().expect("wait for the killed child");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    use std::os::unix::process::ExitStatusExt as _;
    let output = format!("{}{}", stdout.join().unwrap_or_default(), stderr.join().unwrap_or_default());
    Ended { code: status.code(), signal: status.signal(), timed_out, output, leftovers: scratch_folders(tmp.path()) }
}

/// Asserts that the confined test `inner` passed and left no scratch folder behind.
#[track_caller]
fn assert_confined_passes(inner: &str) {
    let ended = confined(inner);
    let shown: String = ended.output.chars().take(4000).collect();
    assert!(
        !ended.timed_out && ended.signal.is_none() && ended.code == Some(0) && ended.output.contains("1 passed"),
        "{inner}: exit code {:?}, signal {:?}, timed out {}:\n{shown}",
        ended.code,
        ended.signal,
        ended.timed_out
    );
    assert!(ended.leftovers.is_empty(), "{inner} left {:?} behind", ended.leftovers);
}

#[test]
fn an_endless_answer_line_is_a_fault_not_an_abort() {
    assert_confined_passes("confined_endless_answer_line");
}

#[test]
#[ignore = "run confined by an_endless_answer_line_is_a_fault_not_an_abort"]
fn confined_endless_answer_line() {
    if !confined_here() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = script(
        dir.path(),
        "endless.sh",
        "#!/bin/sh\nwhile read line; do case \"$line\" in *request*) yes 'endless ' | tr -d '\\n';; esac; done\n",
    );
    let mut verifier = CommandVerifier::new(&path);
    verifier.open(&session()).expect("open");
    let message = fault_message(verifier.request(&request("cucm.steven.lab")));
    assert!(message.contains("request 1: an answer line longer than 1048576 bytes"), "{message}");
    assert!(message.contains("endless endless"), "the fault shows how the line starts: {message}");
    assert!(message.len() < 8192, "the fault does not quote the whole line: {} bytes", message.len());
    assert_eq!(scratch_folders(&std::env::temp_dir()), Vec::<String>::new(), "scratch folders after the fault");
}

#[test]
fn a_gigabyte_on_stderr_is_a_fault_quoting_its_last_bytes() {
    assert_confined_passes("confined_gigabyte_on_stderr");
}

#[test]
#[ignore = "run confined by a_gigabyte_on_stderr_is_a_fault_quoting_its_last_bytes"]
fn confined_gigabyte_on_stderr() {
    if !confined_here() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = script(
        dir.path(),
        "flood.sh",
        "#!/bin/sh\nwhile read line; do case \"$line\" in *request*) head -c 1000000000 /dev/zero | tr '\\0' e >&2; echo 'flood.sh: the end' >&2; exit 4;; esac; done\n",
    );
    // Generous: the point is the memory a gigabyte costs, not the time.
    let mut verifier = CommandVerifier::new(&path).with_timeout(Duration::from_secs(45));
    verifier.open(&session()).expect("open");
    let message = fault_message(verifier.request(&request("cucm.steven.lab")));
    assert!(message.contains("request 1: the command exited without answering"), "{message}");
    assert!(message.trim_end().ends_with("eeeeflood.sh: the end"), "the fault quotes the end of stderr: {message}");
    let total = 1_000_000_000 + "flood.sh: the end\n".len();
    assert!(message.contains(&format!("[{} earlier bytes dropped]", total - 64 * 1024)), "{message}");
    assert!(message.len() < 70 * 1024, "the fault quotes at most the last 64 KiB: {} bytes", message.len());
}

#[test]
fn a_hundred_megabyte_answer_line_is_a_fault() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = script(
        dir.path(),
        "huge.sh",
        "#!/bin/sh\nwhile read line; do case \"$line\" in *request*) printf '{\"id\": 1, \"verdict\": \"accept\", \"body\": \"'; head -c 100000000 /dev/zero | tr '\\0' x; printf '\"}\\n';; esac; done\n",
    );
    let mut verifier = CommandVerifier::new(&path);
    verifier.open(&session()).expect("open");
    let message = fault_message(verifier.request(&request("cucm.steven.lab")));
    assert!(message.contains("request 1: an answer line longer than 1048576 bytes"), "{message}");
    assert!(message.contains(r#"{"id": 1, "verdict": "accept", "body": "xxx"#), "{message}");
}

#[test]
fn a_grandchild_does_not_outlive_a_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("grandchild.pid");
    let path = script(
        dir.path(),
        "spawner.sh",
        &format!("#!/bin/sh\nsleep 300 &\necho $! > '{}'\nwhile read line; do :; done\n", pid_file.display()),
    );
    let mut verifier = CommandVerifier::new(&path).with_timeout(Duration::from_millis(200));
    verifier.open(&session()).expect("open");
    let grandchild = pid_in(&pid_file);
    let _reap = KillOnDrop(grandchild);
    let message = fault_message(verifier.request(&request("cucm.steven.lab")));
    assert!(message.contains("request 1: no answer within 0.2 s"), "{message}");
    assert_gone(grandchild, "the command's `sleep 300 &`, after the fault");
}

#[test]
fn a_grandchild_does_not_outlive_the_verifier() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("grandchild.pid");
    let path = script(
        dir.path(),
        "spawner.sh",
        &format!(
            "#!/bin/sh\nsleep 300 &\necho $! > '{}'\nwhile read line; do case \"$line\" in *request*) echo '{{\"id\": 1, \"verdict\": \"accept\"}}';; esac; done\n",
            pid_file.display()
        ),
    );
    let mut verifier = CommandVerifier::new(&path);
    verifier.open(&session()).expect("open");
    assert_eq!(verifier.request(&request("cucm.steven.lab")).expect("an answer").status, 200);
    let grandchild = pid_in(&pid_file);
    let _reap = KillOnDrop(grandchild);
    drop(verifier);
    assert_gone(grandchild, "the command's `sleep 300 &`, after the verifier was dropped");
}

#[test]
fn a_command_that_exits_while_its_grandchild_holds_stdout_has_exited() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("grandchild.pid");
    let path = script(
        dir.path(),
        "daemon.sh",
        &format!(
            "#!/bin/sh\nsleep 300 &\necho $! > '{}'\nwhile read line; do case \"$line\" in *request*) echo 'daemon.sh: leaving' >&2; exit 5;; esac; done\n",
            pid_file.display()
        ),
    );
    // Long enough that a timeout is not mistaken for an exit.
    let mut verifier = CommandVerifier::new(&path).with_timeout(Duration::from_secs(20));
    verifier.open(&session()).expect("open");
    let grandchild = pid_in(&pid_file);
    let _reap = KillOnDrop(grandchild);
    let message = fault_message(verifier.request(&request("cucm.steven.lab")));
    assert!(message.contains("request 1: the command exited without answering (exit status: 5)"), "{message}");
    assert!(message.contains("daemon.sh: leaving"), "{message}");
    assert_gone(grandchild, "the command's `sleep 300 &`, after the fault");
}

#[test]
fn scratch_folders_are_removed_after_faults_and_drops() {
    assert_confined_passes("confined_scratch_folders");
}

#[test]
#[ignore = "run confined by scratch_folders_are_removed_after_faults_and_drops"]
fn confined_scratch_folders() {
    if !confined_here() {
        return;
    }
    let tmp = std::env::temp_dir();
    let dir = tempfile::tempdir().expect("tempdir");
    let hang = script(dir.path(), "hang.sh", "#!/bin/sh\nwhile read line; do :; done\n");
    let mut verifier = CommandVerifier::new(&hang).with_timeout(Duration::from_millis(200));
    verifier.open(&session()).expect("open");
    assert_eq!(scratch_folders(&tmp).len(), 1, "the session's files are written to a scratch folder");
    fault_message(verifier.request(&request("cucm.steven.lab")));
    assert_eq!(scratch_folders(&tmp), Vec::<String>::new(), "after a timeout, before the verifier is dropped");
    drop(verifier);

    let crash = script(dir.path(), "crash.sh", "#!/bin/sh\nread line\necho 'crash.sh: no' >&2\nexit 3\n");
    let mut verifier = CommandVerifier::new(&crash);
    if verifier.open(&session()).is_ok() {
        fault_message(verifier.request(&request("cucm.steven.lab")));
    }
    assert_eq!(scratch_folders(&tmp), Vec::<String>::new(), "after a crash, before the verifier is dropped");
    drop(verifier);

    let answer = script(
        dir.path(),
        "answer.sh",
        "#!/bin/sh\nwhile read line; do case \"$line\" in *request*) echo '{\"id\": 1, \"verdict\": \"accept\"}';; esac; done\n",
    );
    let mut verifier = CommandVerifier::new(&answer);
    verifier.open(&session()).expect("open");
    assert_eq!(verifier.request(&request("cucm.steven.lab")).expect("an answer").status, 200);
    assert_eq!(scratch_folders(&tmp).len(), 1);
    drop(verifier);
    assert_eq!(scratch_folders(&tmp), Vec::<String>::new(), "after the verifier is dropped");
}

/// A session with a client identity (a fresh self-signed ECDSA certificate).
fn session_with_client_identity() -> Session {
    let issued = rcgen::generate_simple_self_signed(vec!["expressway.steven.lab".to_string()]).expect("rcgen");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(issued.signing_key.serialize_der()));
    Session { client_identity: Some(ClientIdentity { chain: vec![issued.cert.der().clone()], key }), ..session() }
}

#[test]
fn the_client_key_and_its_folder_are_its_owners_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let modes = dir.path().join("modes");
    let path = script(
        dir.path(),
        "modes.py",
        &format!(
            "#!/usr/bin/env python3\nimport json, os, sys\nm = json.loads(sys.stdin.readline())\nwith open({:?}, 'w') as f:\n    for k in ('trust_store_pem', 'client_cert_pem', 'client_key_pem'):\n        f.write(f\"{{k}} {{oct(os.stat(m[k]).st_mode & 0o777)}}\\n\")\n    f.write(f\"folder {{oct(os.stat(os.path.dirname(m['client_key_pem'])).st_mode & 0o777)}}\\n\")\nfor line in sys.stdin:\n    r = json.loads(line)\n    if r['type'] == 'request':\n        print(json.dumps({{'id': r['id'], 'verdict': 'accept'}}), flush=True)\n",
            modes.display().to_string()
        ),
    );
    let mut verifier = CommandVerifier::new(&path);
    verifier.open(&session_with_client_identity()).expect("open");
    // Its answer says it has written the modes.
    assert_eq!(verifier.request(&request("cucm.steven.lab")).expect("an answer").status, 200);
    drop(verifier);
    let modes = std::fs::read_to_string(&modes).expect("the command wrote the modes");
    assert!(modes.contains("client_key_pem 0o600\n"), "{modes}");
    assert!(modes.contains("folder 0o700\n"), "{modes}");
}

/// A command that reads the session, prints a usage line instead of speaking the protocol, and
/// exits; its pid is written to `pid_file`.
fn usage_command(dir: &Path, pid_file: &Path) -> PathBuf {
    script(
        dir,
        "usage.sh",
        &format!("#!/bin/sh\necho $$ > '{}'\nread line\necho 'usage: usage.sh CONFIG'\nexit 2\n", pid_file.display()),
    )
}

#[track_caller]
fn assert_not_a_protocol_line(message: &str) {
    assert!(message.contains("request 1: not a protocol answer ("), "{message}");
    assert!(message.contains("): usage: usage.sh CONFIG"), "{message}");
}

#[test]
fn a_line_and_an_exit_is_not_a_protocol_line_when_the_request_cannot_be_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("usage.pid");
    let mut verifier = CommandVerifier::new(usage_command(dir.path(), &pid_file));
    verifier.open(&session()).expect("open: the command reads the session before it exits");
    // The request is written after the command has exited: the write fails (a broken pipe).
    let pid = pid_in(&pid_file);
    let start = Instant::now();
    while !gone(pid) {
        assert!(start.elapsed() < Duration::from_secs(10), "usage.sh did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_not_a_protocol_line(&fault_message(verifier.request(&request("cucm.steven.lab"))));
}

#[test]
fn a_line_and_an_exit_is_not_a_protocol_line_whatever_the_timing() {
    let dir = tempfile::tempdir().expect("tempdir");
    for n in 0..5 {
        let pid_file = dir.path().join(format!("usage-{n}.pid"));
        let mut verifier = CommandVerifier::new(usage_command(dir.path(), &pid_file));
        verifier.open(&session()).expect("open: the command reads the session before it exits");
        std::thread::sleep(Duration::from_millis(n * 5));
        assert_not_a_protocol_line(&fault_message(verifier.request(&request("cucm.steven.lab"))));
    }
}

#[test]
fn a_command_that_stops_reading_its_stdin_is_a_fault_not_a_hang() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("deaf.pid");
    let path = script(
        dir.path(),
        "deaf.sh",
        &format!("#!/bin/sh\necho 'deaf.sh: not listening' >&2\necho $$ > '{}'\nexec sleep 300\n", pid_file.display()),
    );
    // A request line far larger than a pipe holds.
    let long = OriginRequest { path: format!("/{}", "x".repeat(4 << 20)), ..request("cucm.steven.lab") };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut verifier = CommandVerifier::new(&path).with_timeout(Duration::from_millis(200));
        let result = verifier.open(&session()).and_then(|()| {
            pid_in(&pid_file); // it has said what it says on stderr
            verifier.request(&long)
        });
        let _ = tx.send(result);
    });
    let result = rx.recv_timeout(Duration::from_secs(30)).expect("the request returns: a blocked write is a fault");
    let message = fault_message(result);
    assert!(message.contains("request 1: the command took nothing from its stdin for 0.2 s"), "{message}");
    assert!(message.contains("deaf.sh: not listening"), "{message}");
}

#[test]
fn the_answer_line_cap_counts_the_bytes_before_the_newline() {
    let answer = r#"{"id": 1, "verdict": "accept"}"#;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = script(
        dir.path(),
        "answer.sh",
        &format!("#!/bin/sh\nwhile read line; do case \"$line\" in *request*) echo '{answer}';; esac; done\n"),
    );
    let limits = |max| CommandLimits { max_answer_line: max, ..CommandLimits::DEFAULT };
    let mut at_the_cap = CommandVerifier::new(&path).with_limits(limits(answer.len()));
    at_the_cap.open(&session()).expect("open");
    assert_eq!(at_the_cap.request(&request("cucm.steven.lab")).expect("a line at the cap is read").status, 200);
    let mut over = CommandVerifier::new(&path).with_limits(limits(answer.len() - 1));
    over.open(&session()).expect("open");
    let message = fault_message(over.request(&request("cucm.steven.lab")));
    assert!(message.contains(&format!("request 1: an answer line longer than 29 bytes: {answer}…")), "{message}");
}

#[test]
fn the_factory_hands_its_limits_to_every_verifier() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = script(dir.path(), "hang.sh", "#!/bin/sh\nwhile read line; do :; done\n");
    let limits = CommandLimits { answer_timeout: Duration::from_millis(200), ..CommandLimits::DEFAULT };
    let factory = CommandFactory::new(&path).with_limits(limits);
    let mut verifier = factory.make().expect("a verifier");
    verifier.open(&session()).expect("open");
    let message = fault_message(verifier.request(&request("cucm.steven.lab")));
    assert!(message.contains("request 1: no answer within 0.2 s (hung?)"), "{message}");
}

#[test]
fn stderr_is_kept_as_its_last_bytes_with_a_note_of_what_was_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = script(
        dir.path(),
        "chatty.sh",
        "#!/bin/sh\nread line\ni=0\nwhile [ $i -lt 100 ]; do printf 'line %03d of stderr\\n' $i >&2; i=$((i+1)); done\nexit 1\n",
    );
    // 100 lines of 19 bytes; the last 10 are kept.
    let mut verifier =
        CommandVerifier::new(&path).with_limits(CommandLimits { stderr_kept: 190, ..CommandLimits::DEFAULT });
    let message = match verifier.open(&session()) {
        Err(VerifierFault::Request { message, .. }) => message,
        Err(other) => panic!("unexpected fault {other:?}"),
        Ok(()) => fault_message(verifier.request(&request("cucm.steven.lab"))),
    };
    assert!(message.contains("its stderr:\n[1710 earlier bytes dropped]\nline 090 of stderr\n"), "{message}");
    assert!(message.ends_with("line 099 of stderr"), "{message}");
}
