//! A container whose first process is `mralab-supervise`, and the one program it runs for the
//! harness; see the module doc of [`crate::container`] for the life cycle.

use std::fs;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use testcontainers::core::WaitFor;
use testcontainers::runners::SyncRunner as _;
use testcontainers::{Container, GenericImage, ImageExt as _};

use super::image::Recipe;
use super::{ContainerError, block_on, engine, engine_error, reap, run_labels};

/// Where the supervisor keeps its FIFO, acknowledgements and the program's output.
const SUPERVISOR_DIR: &str = "/run/mralab";
/// How long the container may take to start and the supervisor to answer a command.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// The program a [`Supervised`] container runs: its command line inside the container.
#[derive(Debug, Clone)]
pub struct Program {
    /// `["env", "TS_RUNROOT=/run/mralab/ats", "traffic_server"]`.
    pub argv: Vec<String>,
}

/// A running container of one of mralab's images, its supervisor waiting for commands. Dropping
/// it closes the control FIFO (the program is killed, the container ends) and removes the
/// container.
pub struct Supervised {
    container: Option<Container<GenericImage>>,
    image: String,
    short_id: String,
    /// The supervisor's pid on the host (`State.Pid`).
    pid: u32,
    control: Option<fs::File>,
    generation: u64,
    /// The program's pid inside the container, while it runs.
    program: Option<u32>,
    /// How long the container took to start, until the supervisor listened.
    pub started_in: Duration,
}

impl std::fmt::Debug for Supervised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervised").field("image", &self.image).field("id", &self.short_id).finish()
    }
}

impl Supervised {
    /// Starts a container of `recipe`'s image (which must be built and current), with no network,
    /// labelled for this run, to run `program` on command. Dead runs' leftovers are reaped first.
    pub fn start(recipe: &Recipe, program: &Program) -> Result<Supervised, ContainerError> {
        Self::start_in(recipe, program, None)
    }

    /// [`Supervised::start`], in the network namespace of another of this run's containers
    /// (`network_mode: container:<id>`) when `join` names one: the container fleet's nodes and
    /// its traffic server share one namespace, still with no network beyond its loopback.
    pub fn start_in(recipe: &Recipe, program: &Program, join: Option<&str>) -> Result<Supervised, ContainerError> {
        let started = Instant::now();
        let network_mode = match join {
            Some(id) => format!("container:{id}"),
            None => "none".to_string(),
        };
        recipe.check_built()?;
        reap()?;
        let mut cmd = vec![super::image::SUPERVISOR.to_string()];
        cmd.extend(program.argv.iter().cloned());
        let container = GenericImage::new(recipe.repository, recipe.tag)
            .with_wait_for(WaitFor::message_on_stdout("mralab-supervise: ready"))
            .with_cmd(cmd)
            .with_labels(run_labels())
            .with_host_config_modifier(move |host| {
                host.network_mode = Some(network_mode.clone());
                // testcontainers publishes every port when none is mapped; the engine refuses
                // that in another container's namespace (and there is nothing to publish).
                host.publish_all_ports = Some(false);
                host.port_bindings = None;
                host.auto_remove = Some(true);
            })
            .with_startup_timeout(START_TIMEOUT)
            .start()
            .map_err(|e| engine_error(&format!("starting a container of {}", recipe.image()), e))?;
        let id = container.id().to_string();
        let short_id: String = id.chars().take(12).collect();
        let inspect =
            block_on(engine()?.inspect_container(&id, None))?.map_err(|e| engine_error("inspecting a container", e))?;
        let pid = inspect.state.and_then(|s| s.pid).filter(|p| *p > 0).ok_or_else(|| ContainerError::Supervisor {
            id: short_id.clone(),
            image: recipe.image(),
            reason: "the engine gives no pid for it: it is not running".into(),
        })?;
        let mut supervised = Supervised {
            container: Some(container),
            image: recipe.image(),
            short_id,
            pid: u32::try_from(pid).unwrap_or(0),
            control: None,
            generation: 0,
            program: None,
            started_in: Duration::ZERO,
        };
        // The supervisor opens its end right after printing `ready`; until it has, opening for
        // writing without blocking fails with ENXIO. Never block: a supervisor that died would
        // hold this thread forever.
        let fifo = supervised.root().join(SUPERVISOR_DIR.trim_start_matches('/')).join("control");
        let control = loop {
            match rustix::fs::open(
                &fifo,
                rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            ) {
                Ok(fd) => {
                    // Writes may block again: they are a few bytes into an empty pipe.
                    let _ = rustix::fs::fcntl_setfl(&fd, rustix::fs::OFlags::empty());
                    break fs::File::from(fd);
                }
                Err(rustix::io::Errno::NXIO) | Err(rustix::io::Errno::NOENT) if started.elapsed() < START_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => {
                    return Err(supervised.fault(format!("cannot open its control FIFO {}: {e}", fifo.display())));
                }
            }
        };
        supervised.control = Some(control);
        supervised.started_in = started.elapsed();
        Ok(supervised)
    }

    fn fault(&self, reason: impl Into<String>) -> ContainerError {
        ContainerError::Supervisor { id: self.short_id.clone(), image: self.image.clone(), reason: reason.into() }
    }

    /// The container's root folder, seen from the host.
    pub fn root(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.pid))
    }

    /// The container's network namespace, seen from the host.
    pub fn netns(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.pid))
    }

    /// A path inside the container, seen from the host.
    pub fn host_path(&self, inside: &str) -> PathBuf {
        self.root().join(inside.trim_start_matches('/'))
    }

    /// The container's id, shortened.
    pub fn id(&self) -> &str {
        &self.short_id
    }

    /// The supervisor's pid on the host.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Which generation of the program's output [`Supervised::output`] reads.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The program's output file of `generation`, seen from the host.
    pub fn output_path(&self, generation: u64) -> PathBuf {
        self.host_path(&format!("{SUPERVISOR_DIR}/out.{generation}"))
    }

    fn command(&mut self, verb: &str) -> Result<String, ContainerError> {
        self.generation += 1;
        let generation = self.generation;
        let state = self.host_path(&format!("{SUPERVISOR_DIR}/state"));
        let Some(control) = self.control.as_mut() else { return Err(self.fault("its control FIFO is closed")) };
        control.write_all(format!("{verb} {generation}\n").as_bytes()).map_err(|e| ContainerError::Supervisor {
            id: self.short_id.clone(),
            image: self.image.clone(),
            reason: format!("the supervisor is gone ({e})"),
        })?;
        let asked = Instant::now();
        loop {
            if let Ok(ack) = fs::read_to_string(&state)
                && let Some((g, rest)) = ack.trim().split_once(' ')
                && g == generation.to_string()
            {
                return Ok(rest.to_string());
            }
            if asked.elapsed() > COMMAND_TIMEOUT {
                return Err(self.fault(format!("the supervisor did not acknowledge `{verb}` within 10 s")));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Starts the program, killing the one that runs.
    pub fn launch(&mut self) -> Result<(), ContainerError> {
        let pid = self.command("start")?;
        self.program = pid.parse().ok();
        Ok(())
    }

    /// Kills the program.
    pub fn halt(&mut self) -> Result<(), ContainerError> {
        self.command("stop")?;
        self.program = None;
        Ok(())
    }

    /// What the program last started wrote on stdout and stderr.
    pub fn output(&self) -> String {
        fs::read_to_string(self.host_path(&format!("{SUPERVISOR_DIR}/out.{}", self.generation))).unwrap_or_default()
    }

    /// Whether the program started last still runs (not exited, not a zombie).
    pub fn program_running(&self) -> bool {
        let Some(inside) = self.program else { return false };
        // The program is the supervisor's child; find it on the host by its pid inside
        // (the last `NSpid` field) among the supervisor's children.
        let Ok(entries) = fs::read_dir("/proc") else { return false };
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else { continue };
            let field = |name: &str| {
                status.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_string()).unwrap_or_default()
            };
            if field("PPid:") != self.pid.to_string() {
                continue;
            }
            if field("NSpid:").split_whitespace().last() == Some(inside.to_string().as_str()) {
                return !field("State:").starts_with('Z');
            }
        }
        false
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        // The supervisor reads EOF, kills the program and exits; then the container is removed.
        drop(self.control.take());
        drop(self.container.take());
    }
}
