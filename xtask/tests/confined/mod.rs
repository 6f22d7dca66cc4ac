//! Runs `cargo xtask …` as a confined child process, for the hostile-input tests: an address
//! space limit of 1 GiB (`prlimit --as`, so a runaway allocation aborts the child, never the
//! machine) and a kill after a deadline (60 s unless told), so a hang is a failed test, not a
//! stuck suite. Include it with `mod confined;` from a test file.

#![allow(dead_code)] // each test file uses a part of it

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The address-space limit of a confined child.
pub const ADDRESS_SPACE: u64 = 1 << 30;
/// How long a confined child may run.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// How a confined child ended.
#[derive(Debug)]
pub struct Ended {
    /// Its exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
    /// Whether it was killed at the deadline.
    pub timed_out: bool,
    /// Everything it wrote.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

impl Ended {
    /// Whether it panicked (Rust's exit code 101, or an abort).
    pub fn panicked(&self) -> bool {
        self.code == Some(101) || self.signal == Some(6) || self.stderr.contains("panicked at")
    }
}

/// `xtask ARGS` under the limits, run from `dir` (the workspace root when `None`).
pub fn xtask(args: &[&str], dir: Option<&Path>) -> Command {
    let mut command = Command::new("prlimit");
    command.arg(format!("--as={ADDRESS_SPACE}")).arg("--").arg(env!("CARGO_BIN_EXE_xtask")).args(args);
    command.current_dir(dir.map(Path::to_path_buf).unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("..")));
    command
}

/// Runs `command` with `stdin` written to it, killed after `deadline`.
pub fn run(mut command: Command, stdin: &[u8], deadline: Duration) -> Ended {
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child: Child = command.spawn().expect("prlimit and xtask start");
    let input = stdin.to_vec();
    let mut pipe = child.stdin.take().expect("stdin piped");
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input); // a child that stops reading is not a test failure
    });
    let read = |mut from: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = from.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = read(Box::new(child.stdout.take().expect("stdout piped")));
    let stderr = read(Box::new(child.stderr.take().expect("stderr piped")));
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if start.elapsed() > deadline {
            timed_out = true;
            let _ = child.kill();
            break child.wait().expect("wait for the killed child");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = writer.join();
    use std::os::unix::process::ExitStatusExt as _;
    Ended {
        code: status.code(),
        signal: status.signal(),
        timed_out,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// `xtask ARGS` confined, with no input, within [`DEADLINE`].
pub fn xtask_run(args: &[&str], dir: Option<&Path>) -> Ended {
    run(xtask(args, dir), b"", DEADLINE)
}

/// `xtask ARGS` under the limits inside a private network namespace that has only a loopback
/// interface (`unshare --net`, which needs root): whatever the command dials, nothing can leave
/// the machine. `None` where no such namespace can be made (not root); under `CI=true` that is a
/// failure, since CI runs as root.
pub fn xtask_in_private_network(args: &[&str], dir: Option<&Path>) -> Option<Command> {
    let usable = Command::new("unshare").args(["--net", "--", "true"]).status().is_ok_and(|s| s.success());
    if !usable {
        assert!(std::env::var("CI").is_err(), "unshare --net must work under CI (root)");
        eprintln!("skipped: cannot make a private network namespace here (unshare --net needs root)");
        return None;
    }
    let inner = xtask(args, dir);
    let mut command = Command::new("unshare");
    command.args(["--net", "--"]).arg(inner.get_program()).args(inner.get_args());
    if let Some(dir) = inner.get_current_dir() {
        command.current_dir(dir);
    }
    Some(command)
}
