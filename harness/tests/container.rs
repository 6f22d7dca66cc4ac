//! The container tier's plumbing against the local engine: a supervised container with no
//! network runs its program on command and leaves nothing behind. Skipped (with a line saying
//! so) where no Docker engine answers or the images are not built.

use std::time::{Duration, Instant};

use harness::container::image::ATS_8_1;
use harness::container::{self, Program, Supervised};

fn ready() -> bool {
    if !container::engine_available() {
        eprintln!("skipped: no Docker engine");
        return false;
    }
    if let Err(e) = ATS_8_1.check_built() {
        eprintln!("skipped: {e}");
        return false;
    }
    true
}

fn gone(id: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        let left = container::labelled_containers().expect("list");
        if !left.iter().any(|c| c.starts_with(id)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn a_supervised_container_runs_its_program_on_command_and_leaves_nothing() {
    if !ready() {
        return;
    }
    let program = Program { argv: vec!["sleep".into(), "1000".into()] };
    let mut supervised = Supervised::start(&ATS_8_1, &program).expect("start");
    let id = supervised.id().to_string();
    assert!(!supervised.program_running());
    supervised.launch().expect("launch");
    assert!(supervised.program_running(), "sleep runs after start");
    supervised.launch().expect("relaunch");
    assert!(supervised.program_running(), "sleep runs again after a restart");
    // Its own root filesystem: Debian 11's openssl.
    let os = std::fs::read_to_string(supervised.host_path("/etc/debian_version")).expect("debian_version");
    assert!(os.starts_with("11."), "{os}");
    // No network but its loopback.
    let net_dev = supervised.root().with_file_name("net").join("dev");
    let dev = std::fs::read_to_string(&net_dev).expect("net/dev");
    let interfaces: Vec<&str> = dev.lines().skip(2).filter_map(|l| l.split(':').next()).map(str::trim).collect();
    assert_eq!(interfaces, ["lo"], "{dev}");
    supervised.halt().expect("halt");
    assert!(!supervised.program_running());
    drop(supervised);
    assert!(gone(&id), "container {id} is still there after drop");
}

#[test]
fn a_program_that_exits_is_seen_to_have_stopped() {
    if !ready() {
        return;
    }
    let program = Program { argv: vec!["sh".into(), "-c".into(), "echo started; exit 3".into()] };
    let mut supervised = Supervised::start(&ATS_8_1, &program).expect("start");
    supervised.launch().expect("launch");
    let deadline = Instant::now() + Duration::from_secs(5);
    while supervised.program_running() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!supervised.program_running());
    assert_eq!(supervised.output().trim(), "started");
}

#[test]
fn a_missing_image_names_the_command_that_builds_it() {
    if !container::engine_available() {
        eprintln!("skipped: no Docker engine");
        return;
    }
    let missing = harness::container::image::Recipe { tag: "no-such-tag-for-a-test", ..ATS_8_1 };
    let e = missing.check_built().expect_err("no such image");
    let text = e.to_string();
    assert!(text.contains("image mralab/ats:no-such-tag-for-a-test is missing"), "{text}");
    assert!(text.contains("cargo xtask images"), "{text}");
}
