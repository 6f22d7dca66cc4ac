//! Where the ats verifier's `traffic_server` runs, behind one interface: the host's own (Debian's
//! `trafficserver` on this machine, in a private namespace made with `unshare`: `--verifier
//! ats`), or one of mralab's images in a container with no network (`--verifier ats:8.1`,
//! `ats:9.2`), whose namespace the verifier joins. Everything else (runroot, relays, stub DNS,
//! readiness, requests, diags.log) is the same for both; the parent module drives it.

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use tempfile::TempDir;

use super::config::{Generation, Runroot};
use super::netns::Netns;
use crate::container::image::{ATS_8_1, ATS_9_2, Recipe};
use crate::container::{Program, Supervised};

/// Where the runroot is inside a container.
const CONTAINER_RUNROOT: &str = "/run/mralab/ats";

/// Which traffic server a verifier runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launch {
    /// The host's `traffic_server` (ATS 9.2 on Debian 12), in a private namespace.
    Host,
    /// `mralab/ats:<version>` in a container.
    Container(Generation),
}

impl Launch {
    /// `ats`, `ats:8.1`, `ats:9.2`.
    pub fn name(self) -> String {
        match self {
            Launch::Host => "ats".to_string(),
            Launch::Container(generation) => format!("ats:{}", generation.version()),
        }
    }

    /// The generation whose configuration and logs apply.
    pub fn generation(self) -> Generation {
        match self {
            Launch::Host => Generation::V9_2,
            Launch::Container(generation) => generation,
        }
    }

    /// The image of a container launch.
    pub fn recipe(self) -> Option<Recipe> {
        match self {
            Launch::Host => None,
            Launch::Container(Generation::V8_1) => Some(ATS_8_1),
            Launch::Container(Generation::V9_2) => Some(ATS_9_2),
        }
    }
}

/// A place `traffic_server` runs, started lazily.
#[derive(Debug)]
pub(super) enum Launcher {
    /// The host's binary, its runroot a temporary folder.
    Host {
        /// `traffic_server`.
        binary: PathBuf,
        /// The runroot.
        dir: TempDir,
        /// The runroot, removed by a signal handler too.
        _registered: crate::cleanup::Registered,
        /// The running process.
        child: Option<Child>,
    },
    /// A container, started at the first [`Launcher::namespace`].
    Container {
        /// Its image.
        recipe: Recipe,
        /// Which traffic server the image holds.
        generation: Generation,
        /// The container once started.
        supervised: Option<Box<Supervised>>,
        /// The container whose network namespace to join (the container fleet's), if any.
        join: Option<String>,
    },
}

impl Launcher {
    /// A launcher for `launch`; the host's needs `traffic_server` installed.
    pub(super) fn new(launch: Launch) -> Result<Launcher, String> {
        match (launch, launch.recipe()) {
            (Launch::Container(generation), Some(recipe)) => {
                Ok(Launcher::Container { recipe, generation, supervised: None, join: None })
            }
            _ => {
                let binary = super::traffic_server_path().ok_or(super::NOT_INSTALLED)?;
                let dir = tempfile::Builder::new()
                    .prefix("mralab-ats-")
                    .tempdir()
                    .map_err(|e| format!("cannot make a runroot: {e}"))?;
                let _registered = crate::cleanup::folder(dir.path());
                Ok(Launcher::Host { binary, dir, _registered, child: None })
            }
        }
    }

    /// Makes the namespace traffic_server runs in: a private one for the host's, the
    /// container's own (the container is started here) otherwise.
    pub(super) fn namespace(&mut self) -> Result<Netns, String> {
        match self {
            Launcher::Host { .. } => Netns::new().map_err(|e| e.to_string()),
            Launcher::Container { recipe, supervised, join, .. } => {
                // The same environment as the host's (`config::environment`): the runroot, and
                // OpenSSL's default CA bundle pointed at an empty file.
                let mut argv = vec!["env".to_string()];
                for (name, value) in super::config::environment(std::path::Path::new(CONTAINER_RUNROOT)) {
                    argv.push(format!("{name}={}", value.display()));
                }
                argv.push("traffic_server".into());
                let program = Program { argv };
                let began = std::time::Instant::now();
                let started = Supervised::start_in(recipe, &program, join.as_deref()).map_err(|e| e.to_string())?;
                let netns = Netns::join(started.netns()).map_err(|e| e.to_string())?;
                super::tally::container_started(began.elapsed());
                fs::create_dir_all(started.host_path(CONTAINER_RUNROOT))
                    .map_err(|e| format!("cannot make the runroot in container {}: {e}", started.id()))?;
                *supervised = Some(Box::new(started));
                Ok(netns)
            }
        }
    }

    /// Makes a container launch join the network namespace of `container` (the container
    /// fleet's); only before the container started.
    pub(super) fn join(&mut self, container: &str) -> Result<(), String> {
        match self {
            Launcher::Container { join, supervised: None, .. } => {
                *join = Some(container.to_string());
                Ok(())
            }
            Launcher::Container { .. } => Err("the traffic server's container already runs".into()),
            Launcher::Host { .. } => {
                Err("the host's traffic_server does not reach a container fleet: use ats:8.1 or ats:9.2".into())
            }
        }
    }

    /// The runroot, once [`Launcher::namespace`] made the place.
    pub(super) fn runroot(&self) -> Option<Runroot> {
        match self {
            Launcher::Host { dir, .. } => Some(Runroot {
                outside: dir.path().to_path_buf(),
                inside: dir.path().to_path_buf(),
                stock_etc: PathBuf::from("/etc/trafficserver"),
                generation: Generation::V9_2,
            }),
            Launcher::Container { supervised, generation, .. } => supervised.as_ref().map(|s| Runroot {
                outside: s.host_path(CONTAINER_RUNROOT),
                inside: PathBuf::from(CONTAINER_RUNROOT),
                stock_etc: s.host_path("/etc/trafficserver"),
                generation: *generation,
            }),
        }
    }

    /// Where the runroot is, or the container, for people debugging a run.
    pub(super) fn describe(&self) -> String {
        match self {
            Launcher::Host { dir, .. } => format!("runroot {}", dir.path().display()),
            Launcher::Container { supervised: Some(s), recipe, .. } => {
                format!("container {} of {}, runroot {CONTAINER_RUNROOT}", s.id(), recipe.image())
            }
            Launcher::Container { recipe, .. } => format!("no container of {} yet", recipe.image()),
        }
    }

    /// Starts traffic_server (stopping the one that runs); the host's is spawned from the
    /// namespace thread.
    pub(super) fn spawn(&mut self, netns: &Netns) -> Result<(), String> {
        self.stop();
        match self {
            Launcher::Host { binary, dir, child, .. } => {
                let out = fs::File::create(dir.path().join("traffic_server.out"))
                    .map_err(|e| format!("cannot write traffic_server.out: {e}"))?;
                let err = out.try_clone().map_err(|e| e.to_string())?;
                let binary = binary.clone();
                let runroot = dir.path().to_path_buf();
                let spawned = netns
                    .run(move || {
                        Command::new("setpriv")
                            .args(["--pdeathsig", "KILL", "--"])
                            .arg(&binary)
                            .envs(super::config::environment(&runroot))
                            .stdin(Stdio::null())
                            .stdout(out)
                            .stderr(err)
                            .spawn()
                    })
                    .and_then(|r| r)
                    .map_err(|e| format!("cannot start traffic_server: {e}"))?;
                *child = Some(spawned);
                Ok(())
            }
            Launcher::Container { supervised, .. } => {
                let supervised = supervised.as_mut().ok_or("no container")?;
                supervised.launch().map_err(|e| e.to_string())
            }
        }
    }

    /// Stops traffic_server if it runs.
    pub(super) fn stop(&mut self) {
        match self {
            Launcher::Host { child, .. } => {
                if let Some(mut running) = child.take() {
                    let _ = running.kill();
                    let _ = running.wait();
                }
            }
            Launcher::Container { supervised: Some(supervised), .. } => {
                let _ = supervised.halt();
            }
            Launcher::Container { supervised: None, .. } => {}
        }
    }

    /// Whether traffic_server is not running (never started, exited or killed).
    pub(super) fn exited(&mut self) -> bool {
        match self {
            Launcher::Host { child, .. } => child.as_mut().is_none_or(|c| !matches!(c.try_wait(), Ok(None))),
            Launcher::Container { supervised, .. } => !supervised.as_ref().is_some_and(|s| s.program_running()),
        }
    }

    /// What traffic_server wrote on stdout and stderr.
    pub(super) fn output(&self) -> String {
        match self {
            Launcher::Host { dir, .. } => fs::read_to_string(dir.path().join("traffic_server.out")).unwrap_or_default(),
            Launcher::Container { supervised, .. } => supervised.as_ref().map(|s| s.output()).unwrap_or_default(),
        }
    }

    /// The host pid of the host's traffic_server while it runs.
    pub(super) fn pid(&self) -> Option<u32> {
        match self {
            Launcher::Host { child, .. } => child.as_ref().map(Child::id),
            Launcher::Container { .. } => None,
        }
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        self.stop();
    }
}
