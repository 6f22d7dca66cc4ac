//! A run stopped by SIGINT or SIGTERM leaves nothing behind: the `cmd:` verifier's scratch
//! folder (with its private key) and its command's process group, the ats verifier's runroots
//! and its traffic_server. Each run gets its own TMPDIR to look in.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Waits (bounded) until `ready` holds; panics with `what` if it never does.
fn wait_for(what: &str, child: &mut Child, ready: impl Fn() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(child.try_wait().expect("poll").is_none(), "xtask ended before {what}");
        assert!(start.elapsed() < Duration::from_secs(60), "{what} did not happen within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn entries(dir: &Path, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("read TMPDIR")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// Whether a process is gone (absent, or a zombie nobody reaped yet).
fn gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

fn signal(child: &mut Child, signal: &str) -> Option<i32> {
    let status = Command::new("kill").args([signal, &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.code();
        }
        assert!(start.elapsed() < Duration::from_secs(60), "xtask did not exit within 60 s of {signal}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn scenarios(verifier: &str, tmpdir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["scenarios", "seed::tftp-self-signed-ecdsa", "--verifier", verifier])
        .current_dir(workspace())
        .env("TMPDIR", tmpdir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("xtask scenarios")
}

#[test]
fn sigterm_removes_the_cmd_scratch_folder_and_kills_the_commands_group() {
    let tmpdir = tempfile::TempDir::new().expect("temp dir");
    let scripts = tempfile::TempDir::new().expect("temp dir");
    let pids = scripts.path().join("pids");
    let adapter = scripts.path().join("slow.sh");
    // Takes its session, starts a grandchild in its group, and never answers.
    std::fs::write(
        &adapter,
        format!("#!/bin/sh\nread session\nsleep 300 &\necho $$ $! > {}\nsleep 300\n", pids.display()),
    )
    .expect("write adapter");
    std::fs::set_permissions(&adapter, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let mut child = scenarios(&format!("cmd:{}", adapter.display()), tmpdir.path());
    wait_for("the adapter started", &mut child, || std::fs::read_to_string(&pids).is_ok_and(|p| p.ends_with('\n')));
    assert_eq!(entries(tmpdir.path(), "mralab-cmd-").len(), 1, "the scratch folder exists while it runs");
    let code = signal(&mut child, "-TERM");
    assert_eq!(entries(tmpdir.path(), "mralab-cmd-"), Vec::<String>::new(), "scratch folder left behind");
    assert_eq!(code, Some(143), "exit 128 + SIGTERM");
    let text = std::fs::read_to_string(&pids).expect("pids");
    for pid in text.split_whitespace() {
        let start = Instant::now();
        while !gone(pid) && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(gone(pid), "process {pid} of the adapter's group outlived the run");
    }
}

#[test]
fn sigint_removes_the_ats_runroots_and_leaves_no_traffic_server() {
    if harness::verifier::ats::traffic_server_path().is_none() {
        assert!(std::env::var("CI").is_err(), "traffic_server is missing under CI: .ci/run installs it");
        eprintln!("skipped: no traffic_server (apt-get install trafficserver)");
        return;
    }
    let tmpdir = tempfile::TempDir::new().expect("temp dir");
    let mut child = scenarios("ats", tmpdir.path());
    let runroot_with_ats =
        || entries(tmpdir.path(), "mralab-ats-").iter().any(|r| tmpdir.path().join(r).join("runroot.yaml").exists());
    wait_for("a runroot was laid out", &mut child, runroot_with_ats);
    let code = signal(&mut child, "-INT");
    assert_eq!(entries(tmpdir.path(), "mralab-ats-"), Vec::<String>::new(), "runroot left behind");
    assert_eq!(code, Some(130), "exit 128 + SIGINT");
    let root = tmpdir.path().to_string_lossy().into_owned();
    let start = Instant::now();
    loop {
        let left = Command::new("pgrep").args(["-f", &root]).output().expect("pgrep");
        if left.stdout.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "processes still run from the runroot: {}",
            String::from_utf8_lossy(&left.stdout)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
