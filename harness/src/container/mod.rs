//! The container tier: the local Docker engine, the images mralab builds for it, and the
//! containers it runs there, through testcontainers (and the `bollard` client it re-exports for
//! inspecting, listing and removing). Nothing here shells out to `docker`.
//!
//! # What runs where
//! Every container of mralab starts with no network at all (`network_mode: none`): nothing in it
//! has a route anywhere, and no Docker network with a host-side address is ever made. Its first
//! process is `mralab-supervise` (in every image, see [`image`]), which starts and stops one
//! program when the harness asks through a FIFO and ends the container when the harness closes
//! it: when the harness exits, crashes or is killed by SIGKILL, its end of the FIFO closes with
//! it, the container stops, and the engine removes it (`auto_remove`). The harness reaches inside
//! as root through `/proc/<pid>/root` (files) and `/proc/<pid>/ns/net` (the network namespace,
//! joined the way the ats verifier joins its private one). See [`Supervised`].
//!
//! # Labels and leftovers
//! Everything started is labelled `mralab.run=<run id>` (this process: its pid and start time)
//! and `mralab.boot=<boot id>`. [`reap`] removes the labelled containers of runs whose process is
//! gone; every start of a container reaps first, so even a leftover the engine kept (a daemon
//! restart, an engine that did not auto-remove) goes at the next run.
//!
//! # The engine
//! [`engine`] connects as testcontainers does (`DOCKER_HOST`, else the local socket) and pings,
//! so an unreachable engine is one clear error, not a timeout deep inside a start.

pub mod image;
pub mod nodes;
mod supervised;

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

pub use supervised::{Program, Supervised};
use testcontainers::bollard::Docker;
use testcontainers::bollard::models::ContainerSummary;
use testcontainers::bollard::query_parameters::{ListContainersOptionsBuilder, RemoveContainerOptionsBuilder};

/// The label every container mralab starts carries, with the run's id.
pub const RUN_LABEL: &str = "mralab.run";
/// The label holding the boot id of the machine the run lives on.
pub const BOOT_LABEL: &str = "mralab.boot";

/// How long a call to the engine may take.
const ENGINE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the container tier cannot do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// The engine does not answer.
    #[error(
        "no Docker engine at {endpoint}: {reason}\n  (the container tier needs a running Docker engine; set DOCKER_HOST if \
         it listens elsewhere)"
    )]
    NoEngine {
        /// Where it was looked for.
        endpoint: String,
        /// What went wrong.
        reason: String,
    },
    /// An image mralab builds is not there, or was built from another recipe.
    #[error("{message}\n  build it with: cargo xtask images")]
    Image {
        /// What is wrong with it.
        message: String,
    },
    /// A call to the engine failed.
    #[error("Docker engine: {what}: {reason}")]
    Engine {
        /// What was being done.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// Building an image failed.
    #[error("building {image}: {reason}")]
    Build {
        /// `mralab/ats:8.1`.
        image: String,
        /// Why.
        reason: String,
    },
    /// A node's modelled address lies inside one of the host's routes.
    #[error(
        "node '{node}': its address {ip} lies inside the host's route {route}; the container fleet refuses to model \
         an address of a network this machine reaches (change the node's ip)"
    )]
    Overlap {
        /// The node.
        node: String,
        /// Its modelled address.
        ip: std::net::Ipv4Addr,
        /// The host route, `172.17.0.0/16 dev docker0`.
        route: String,
    },
    /// The supervisor in a container did not do what it was asked.
    #[error("container {id} ({image}): {reason}")]
    Supervisor {
        /// The container's short id.
        id: String,
        /// Its image.
        image: String,
        /// What went wrong.
        reason: String,
    },
}

fn engine_error(what: &str, e: impl std::fmt::Display) -> ContainerError {
    ContainerError::Engine { what: what.to_string(), reason: e.to_string() }
}

/// Where the engine is looked for: `DOCKER_HOST`, else the local socket.
pub fn endpoint() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string())
}

/// A client of the engine, pinged once per process.
pub fn engine() -> Result<&'static Docker, ContainerError> {
    static ENGINE: OnceLock<Result<Docker, String>> = OnceLock::new();
    let engine = ENGINE.get_or_init(|| {
        let docker = Docker::connect_with_defaults().map_err(|e| e.to_string())?;
        match block_on(docker.ping()) {
            Ok(Ok(_)) => Ok(docker),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    });
    engine.as_ref().map_err(|reason| ContainerError::NoEngine { endpoint: endpoint(), reason: reason.clone() })
}

/// Whether an engine answers (for tests and `.ci/run` checks that skip the tier without one).
pub fn engine_available() -> bool {
    engine().is_ok()
}

/// Runs `future` on the harness runtime, bounded by [`ENGINE_TIMEOUT`]. Not to be called from a
/// runtime thread.
fn block_on<F: std::future::Future>(future: F) -> Result<F::Output, ContainerError> {
    crate::runtime::runtime()
        .block_on(async { tokio::time::timeout(ENGINE_TIMEOUT, future).await })
        .map_err(|_| engine_error("call", format!("no answer within {} s", ENGINE_TIMEOUT.as_secs())))
}

/// This process's run id: `<pid>.<start time in clock ticks since boot>`, which no later process
/// shares even when the pid is reused.
pub fn run_id() -> String {
    let pid = std::process::id();
    format!("{pid}.{}", start_time(pid).unwrap_or(0))
}

/// The machine's boot id (`/proc/sys/kernel/random/boot_id`), empty if unreadable.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// The labels of everything this run starts.
pub fn run_labels() -> [(String, String); 2] {
    [(RUN_LABEL.to_string(), run_id()), (BOOT_LABEL.to_string(), boot_id())]
}

/// Field 22 of `/proc/<pid>/stat`: when the process started, in clock ticks since boot.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after its end.
    let rest = stat.rsplit_once(") ")?.1;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the run with `id` is still alive on this machine.
fn run_alive(id: &str) -> bool {
    let Some((pid, started)) = id.split_once('.') else { return false };
    let (Ok(pid), Ok(started)) = (pid.parse::<u32>(), started.parse::<u64>()) else { return false };
    start_time(pid) == Some(started)
}

/// Removes the labelled containers of dead runs of this machine; returns how many. Containers of
/// live runs, and of other machines sharing the engine, are left alone.
pub fn reap() -> Result<usize, ContainerError> {
    let docker = engine()?;
    let containers = labelled()?;
    let boot = boot_id();
    let mut reaped = 0;
    for container in containers {
        let labels = container.labels.unwrap_or_default();
        let (Some(run), Some(id)) = (labels.get(RUN_LABEL), container.id) else { continue };
        let ours = labels.get(BOOT_LABEL) == Some(&boot);
        let running = container.state.as_ref().is_some_and(|s| s.to_string() == "running");
        // Our boot: the run's process tells. Another boot id: a machine sharing the engine (its
        // running containers are its own business) or this machine before a reboot (nothing of
        // it runs any more): only what stopped is removed.
        if (ours && run_alive(run)) || (!ours && running) {
            continue;
        }
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        match block_on(docker.remove_container(&id, Some(options)))? {
            Ok(()) => reaped += 1,
            // Already gone (auto-removed meanwhile).
            Err(testcontainers::bollard::errors::Error::DockerResponseServerError {
                status_code: 404 | 409, ..
            }) => {}
            Err(e) => return Err(engine_error("removing a leftover container", e)),
        }
    }
    Ok(reaped)
}

/// Every container labelled `mralab.run` (running or not), of any run.
pub fn labelled() -> Result<Vec<ContainerSummary>, ContainerError> {
    let mut filters = HashMap::new();
    filters.insert("label", vec![RUN_LABEL.to_string()]);
    let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
    block_on(engine()?.list_containers(Some(options)))?.map_err(|e| engine_error("listing containers", e))
}

/// The ids of the labelled containers still present, for this run or any other: what the
/// leftover tests look for.
pub fn labelled_containers() -> Result<Vec<String>, ContainerError> {
    Ok(labelled()?.into_iter().filter_map(|c| c.id).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_run_is_alive_and_a_made_up_one_is_not() {
        assert!(run_alive(&run_id()));
        assert!(!run_alive("999999999.1"));
        assert!(!run_alive("not-an-id"));
        let pid = std::process::id();
        assert!(!run_alive(&format!("{pid}.1")), "same pid, other start time: a reused pid");
    }

    #[test]
    fn start_time_survives_a_command_name_with_spaces() {
        assert!(start_time(std::process::id()).is_some());
    }
}
