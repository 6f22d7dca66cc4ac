//! What must not outlive the process, even when a signal ends it.
//!
//! Temporary folders (the ats verifier's runroots, the `cmd:` verifier's scratch folders with a
//! private key in them) and process groups (external verifier commands and what they start) are
//! removed by `Drop` on every normal path. A SIGINT or SIGTERM runs no destructor, so each of
//! them is also registered here while it lives, and [`on_signal_clean_up_and_exit`] (installed by
//! `cargo xtask` for the commands that do not handle signals themselves) removes whatever is
//! registered before the process exits with 128 + the signal.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Something to undo if the process is stopped by a signal.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    /// A folder to remove, with everything in it.
    Dir(PathBuf),
    /// A process group to kill.
    ProcessGroup(rustix::process::Pid),
}

static REGISTRY: Mutex<BTreeMap<u64, Item>> = Mutex::new(BTreeMap::new());
static NEXT: AtomicU64 = AtomicU64::new(1);
/// The signal that arrived, 0 before one does: set in the signal handler itself, before
/// anything the signal causes elsewhere (an interrupted call, a removed folder).
static SIGNALLED: AtomicUsize = AtomicUsize::new(0);

fn registry() -> MutexGuard<'static, BTreeMap<u64, Item>> {
    REGISTRY.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Keeps an item registered while it lives; dropping it unregisters the item (whoever owns the
/// resource has cleaned it up by then, or is about to).
#[derive(Debug)]
pub struct Registered(u64);

impl Drop for Registered {
    fn drop(&mut self) {
        registry().remove(&self.0);
    }
}

fn register(item: Item) -> Registered {
    let key = NEXT.fetch_add(1, Ordering::Relaxed);
    registry().insert(key, item);
    Registered(key)
}

/// Registers a temporary folder, removed if a signal ends the process.
pub fn folder(path: &Path) -> Registered {
    register(Item::Dir(path.to_path_buf()))
}

/// Registers a process group (its leader's pid), killed if a signal ends the process.
pub fn process_group(leader: rustix::process::Pid) -> Registered {
    register(Item::ProcessGroup(leader))
}

/// Kills every registered process group and removes every registered folder, now. Called on
/// the way out after a signal; also usable by tests.
pub fn run_now() {
    let items: Vec<Item> = std::mem::take(&mut *registry()).into_values().collect();
    for item in &items {
        if let Item::ProcessGroup(pid) = item {
            let _ = rustix::process::kill_process_group(*pid, rustix::process::Signal::KILL);
        }
    }
    for item in &items {
        if let Item::Dir(path) = item {
            // Its owner may still be writing into it (a file made while the tree is walked
            // leaves a folder that will not go): try again, briefly, until it is gone.
            for _ in 0..50 {
                let _ = std::fs::remove_dir_all(path);
                if !path.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
    }
}

/// Installs handlers for SIGINT and SIGTERM that clean up what is registered and exit with
/// 128 + the signal (130, 143), as a shell reports a process the signal killed. For commands
/// that have no signal handling of their own; `fleet up` and the lab's serve process stop
/// cleanly on the same signals instead.
pub fn on_signal_clean_up_and_exit() -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    for signal in [SIGINT, SIGTERM] {
        signal_hook::flag::register_usize(signal, &SIGNALLED, usize::try_from(signal).unwrap_or(0))?;
    }
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new().name("mralab-signals".into()).spawn(move || {
        if let Some(signal) = signals.forever().next() {
            run_now();
            std::process::exit(128 + signal);
        }
    })?;
    Ok(())
}

/// Returns at once unless a signal taken by [`on_signal_clean_up_and_exit`]'s handler is ending
/// the process; then never returns: it waits for the handler to finish cleaning up and exit with
/// 128 + the signal (or exits so itself after 10 s). For the end of `main`: a run stopped by a
/// signal often fails quickly (its runroot or command was just removed) and would otherwise
/// race the handler to exit with its own code.
pub fn exit_if_signalled() {
    let signal = SIGNALLED.load(Ordering::SeqCst);
    if signal != 0 {
        std::thread::sleep(std::time::Duration::from_secs(10));
        std::process::exit(i32::try_from(128 + signal).unwrap_or(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_folders_are_removed_by_run_now_and_dropped_ones_are_left() {
        let root = tempfile::TempDir::new().expect("temp dir");
        let kept = root.path().join("kept");
        let removed = root.path().join("removed");
        std::fs::create_dir_all(kept.join("inside")).expect("mkdir");
        std::fs::create_dir_all(removed.join("inside")).expect("mkdir");
        drop(folder(&kept));
        let _registered = folder(&removed);
        run_now();
        assert!(kept.exists(), "an unregistered folder is the owner's business");
        assert!(!removed.exists(), "a registered folder is removed");
    }
}
