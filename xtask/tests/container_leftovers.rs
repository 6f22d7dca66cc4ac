//! The container tier leaves nothing behind: a run killed by SIGKILL or stopped by SIGINT in the
//! middle of the catalogue through `--verifier ats:8.1` leaves no labelled container or network
//! (each container's supervisor ends it when the runner's end of its FIFO closes, and the engine
//! removes it), and the reaper removes what a dead run left. Skipped without a Docker engine or
//! the images (never under CI: `.ci/run` builds them).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harness::container::{self, image::ATS_8_1};
use testcontainers::bollard::query_parameters::ListNetworksOptionsBuilder;
use testcontainers::runners::SyncRunner as _;
use testcontainers::{GenericImage, ImageExt as _};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One container test of this file at a time: every run reaps dead runs' containers when it
/// starts one, so another test's run would remove the reaper test's planted leftover before it
/// is even inspected.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The engine and image are here: this test's turn, held until it ends. `None`: skipped.
fn ready() -> Option<std::sync::MutexGuard<'static, ()>> {
    let why = if !container::engine_available() {
        "no Docker engine".to_string()
    } else if let Err(e) = ATS_8_1.check_built() {
        e.to_string()
    } else {
        return Some(SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    };
    assert!(std::env::var("CI").is_err(), "{why} under CI: .ci/run checks the engine and builds the images");
    eprintln!("skipped: {why}");
    None
}

/// Labelled containers of the run of process `pid`.
fn containers_of(pid: u32) -> Vec<String> {
    container::labelled()
        .expect("list")
        .into_iter()
        .filter(|c| {
            c.labels
                .as_ref()
                .and_then(|l| l.get(container::RUN_LABEL))
                .is_some_and(|run| run.starts_with(&format!("{pid}.")))
        })
        .filter_map(|c| c.id)
        .collect()
}

fn labelled_networks() -> Vec<String> {
    let docker = container::engine().expect("engine");
    let mut filters = std::collections::HashMap::new();
    filters.insert("label", vec![container::RUN_LABEL.to_string()]);
    let options = ListNetworksOptionsBuilder::default().filters(&filters).build();
    let list = harness::runtime::runtime().block_on(docker.list_networks(Some(options))).expect("networks");
    list.into_iter().filter_map(|n| n.name).collect()
}

fn catalogue_through_ats_8_1() -> Child {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["scenarios", "--verifier", "ats:8.1", "--jobs", "2"])
        .current_dir(workspace())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("xtask")
}

fn wait_for_a_container(child: &mut Child) {
    let start = Instant::now();
    while containers_of(child.id()).is_empty() {
        assert!(child.try_wait().expect("poll").is_none(), "xtask ended before starting a container");
        assert!(start.elapsed() < Duration::from_secs(60), "no container within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Mid-catalogue: requests in flight.
    std::thread::sleep(Duration::from_millis(700));
}

/// Nothing of run `pid` is left: every container that ran ends by itself within 30 s. One the
/// engine had created but not yet started when the runner died (a start in flight) never runs,
/// so nothing ends it: the next run's reaper removes it by its labels, which this checks too.
fn assert_nothing_left(pid: u32) {
    let start = Instant::now();
    while container::labelled().expect("list").iter().any(|c| {
        c.labels.as_ref().and_then(|l| l.get(container::RUN_LABEL)).is_some_and(|r| r.starts_with(&format!("{pid}.")))
            && c.state.as_ref().is_some_and(|s| s.to_string() == "running")
    }) {
        assert!(start.elapsed() < Duration::from_secs(30), "containers of the dead run still running after 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    container::reap().expect("reap");
    let start = Instant::now();
    loop {
        let left = containers_of(pid);
        if left.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "containers of the dead run still there after 30 s: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(labelled_networks(), Vec::<String>::new(), "a labelled network was left");
}

#[test]
fn sigkill_mid_catalogue_leaves_no_container_or_network() {
    let Some(_serial) = ready() else { return };
    let mut child = catalogue_through_ats_8_1();
    let pid = child.id();
    wait_for_a_container(&mut child);
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    assert_nothing_left(pid);
}

#[test]
fn sigint_mid_catalogue_exits_130_and_leaves_no_container() {
    let Some(_serial) = ready() else { return };
    let mut child = catalogue_through_ats_8_1();
    let pid = child.id();
    wait_for_a_container(&mut child);
    let status = Command::new("kill").args(["-INT", &pid.to_string()]).status().expect("kill");
    assert!(status.success());
    let code = child.wait().expect("wait").code();
    assert_eq!(code, Some(130), "exit 128 + SIGINT");
    assert_nothing_left(pid);
}

#[test]
fn the_reaper_removes_what_a_dead_run_left() {
    let Some(_serial) = ready() else { return };
    // A container labelled as a run that no longer exists (pid 999999999), on this boot.
    let leftover = GenericImage::new(ATS_8_1.repository, ATS_8_1.tag)
        .with_cmd(["sleep", "120"])
        .with_label(container::RUN_LABEL, "999999999.1")
        .with_label(container::BOOT_LABEL, container::boot_id())
        .with_host_config_modifier(|host| host.network_mode = Some("none".into()))
        .start()
        .expect("start a leftover");
    let id = leftover.id().to_string();
    assert!(container::labelled_containers().expect("list").contains(&id));
    let reaped = container::reap().expect("reap");
    assert!(reaped >= 1, "reaped {reaped}");
    assert!(!container::labelled_containers().expect("list").contains(&id), "the leftover is still there");
    // Its handle's removal now finds nothing to remove; that is fine.
    drop(leftover);
}

#[test]
fn an_unreachable_engine_is_one_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["scenarios", "seed::tftp-self-signed-ecdsa", "--verifier", "ats:8.1"])
        .current_dir(workspace())
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .expect("xtask");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "a harness fault, before any scenario\n{stdout}\n{stderr}");
    let said = format!("{stdout}\n{stderr}");
    assert!(said.contains("no Docker engine at unix:///nonexistent/docker.sock"), "{said}");
    assert!(said.contains("DOCKER_HOST"), "{said}");
}

/// The container fleet's run: node containers joined to one namespace, and ATS 8.1 in it.
fn live_cluster_on_container_fleet() -> Option<Child> {
    use harness::container::image::{NODE, NODE_PROGRAM, program_path};
    if let Err(e) = NODE.check_built() {
        assert!(std::env::var("CI").is_err(), "{e} under CI: .ci/run builds the images");
        eprintln!("skipped: {e}");
        return None;
    }
    let program = program_path(NODE_PROGRAM).expect("checked above");
    Some(
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["scenarios", "live::", "--fleet", "containers", "--verifier", "ats:8.1", "--jobs", "2"])
            // The node program is built: the runner need not ask cargo.
            .env("MRALAB_NODE_PROGRAM", program)
            .current_dir(workspace())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("xtask"),
    )
}

#[test]
fn sigkill_mid_container_fleet_leaves_no_node_or_traffic_server_container() {
    let Some(_serial) = ready() else { return };
    let Some(mut child) = live_cluster_on_container_fleet() else { return };
    let pid = child.id();
    let start = Instant::now();
    // Nodes and a traffic server: at least three containers of the run at once.
    while containers_of(pid).len() < 3 {
        assert!(child.try_wait().expect("poll").is_none(), "xtask ended before its fleet was up");
        assert!(start.elapsed() < Duration::from_secs(60), "no container fleet within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    // The fleet starts eight containers at a time: one may be created, not started.
    assert_nothing_left(pid);
}
