//! The private network namespace the ats verifier's `traffic_server` lives in, where every node
//! owns its modelled address. [`Netns`] is one thread of this process that made the namespace
//! (`unshare --net`, root only), joined it (`setns`) and runs every job that must create a
//! socket or a process there; [`Service`] is a background loop on a socket made there (a
//! relay, the readiness responder), stopped on drop. What runs in the namespace is in the
//! sibling modules `relay`, `stubs` and `client`; the verifier in the parent module owns them.

use std::fs;
use std::io::{self, BufRead as _, BufReader, Read as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Why no private network namespace could be made or joined.
#[derive(Debug, thiserror::Error)]
pub(super) enum NetnsError {
    /// `setpriv` or `unshare` could not be run.
    #[error("cannot run setpriv/unshare (util-linux): {source}")]
    Spawn {
        /// Why.
        source: io::Error,
    },
    /// `unshare --net` or the loopback set-up in the new namespace failed.
    #[error("cannot make a private network namespace (`unshare --net` needs root, `ip` needs iproute2): {stderr}")]
    Unshare {
        /// What the holder process wrote on stderr, trimmed.
        stderr: String,
    },
    /// `ip route replace local 0.0.0.0/0 dev lo` failed in a joined namespace.
    #[error("cannot make every address local in the container's namespace (`ip`, iproute2, as root): {stderr}")]
    Route {
        /// What `ip` wrote on stderr, trimmed.
        stderr: String,
    },
    /// The namespace's `/proc/<pid>/ns/net` could not be opened.
    #[error("cannot open the namespace: {source}")]
    Open {
        /// Why.
        source: io::Error,
    },
    /// The thread could not join the namespace.
    #[error("setns: {source}")]
    Setns {
        /// Why.
        source: rustix::io::Errno,
    },
    /// The namespace thread could not be started.
    #[error("cannot start the namespace thread: {source}")]
    Thread {
        /// Why.
        source: io::Error,
    },
    /// The namespace thread ended before saying whether it joined the namespace.
    #[error("the namespace thread died")]
    ThreadDied,
}

type Job = Box<dyn FnOnce() + Send>;

/// A thread living in a private network namespace, running jobs that must create sockets or
/// processes there.
pub(super) struct Netns {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Netns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Netns")
    }
}

/// Makes a network namespace with `unshare`, configures its loopback, and moves the calling
/// thread into it.
fn enter_private_netns() -> Result<(), NetnsError> {
    let script = "ip link set lo up && ip route add local 0.0.0.0/0 dev lo && echo ready && read _";
    let mut holder = Command::new("setpriv")
        .args(["--pdeathsig", "KILL", "--", "unshare", "--net", "--", "sh", "-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| NetnsError::Spawn { source })?;
    let mut line = String::new();
    if let Some(out) = holder.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    if line.trim() != "ready" {
        let _ = holder.kill();
        let mut err = String::new();
        if let Some(mut e) = holder.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let _ = holder.wait();
        return Err(NetnsError::Unshare { stderr: err.trim().to_string() });
    }
    let result = fs::File::open(format!("/proc/{}/ns/net", holder.id()))
        .map_err(|source| NetnsError::Open { source })
        .and_then(|ns| {
            rustix::thread::move_into_link_name_space(ns.as_fd(), Some(rustix::thread::LinkNameSpaceType::Network))
                .map_err(|source| NetnsError::Setns { source })
        });
    // This thread now holds the namespace; the holder can go.
    drop(holder.stdin.take());
    let _ = holder.wait();
    result
}

/// Moves the calling thread into the network namespace at `path` (a container's
/// `/proc/<pid>/ns/net`) and makes every IPv4 address local on its loopback, as in a private one.
fn enter_netns_at(path: &std::path::Path) -> Result<(), NetnsError> {
    let ns = fs::File::open(path).map_err(|source| NetnsError::Open { source })?;
    rustix::thread::move_into_link_name_space(ns.as_fd(), Some(rustix::thread::LinkNameSpaceType::Network))
        .map_err(|source| NetnsError::Setns { source })?;
    // A child spawned from this thread lives in the namespace this thread joined.
    let out = Command::new("ip")
        .args(["route", "replace", "local", "0.0.0.0/0", "dev", "lo"])
        .stdin(Stdio::null())
        .output()
        .map_err(|source| NetnsError::Spawn { source })?;
    if !out.status.success() {
        return Err(NetnsError::Route { stderr: String::from_utf8_lossy(&out.stderr).trim().to_string() });
    }
    Ok(())
}

impl Netns {
    /// Starts the thread and moves it into a new private network namespace.
    pub(super) fn new() -> Result<Netns, NetnsError> {
        Self::start(enter_private_netns)
    }

    /// Starts the thread and moves it into the existing namespace at `path` (a container's,
    /// made with no network: only its loopback).
    pub(super) fn join(path: std::path::PathBuf) -> Result<Netns, NetnsError> {
        Self::start(move || enter_netns_at(&path))
    }

    fn start(enter: impl FnOnce() -> Result<(), NetnsError> + Send + 'static) -> Result<Netns, NetnsError> {
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), NetnsError>>();
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("mralab-ats-netns".into())
            .spawn(move || {
                let entered = enter();
                let ok = entered.is_ok();
                let _ = ready_tx.send(entered);
                if ok {
                    for job in rx {
                        job();
                    }
                }
            })
            .map_err(|source| NetnsError::Thread { source })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Netns { jobs: Some(tx), thread: Some(thread) }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err(NetnsError::ThreadDied),
        }
    }

    /// Runs `f` on the namespace thread.
    pub(super) fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> io::Result<T> {
        let (tx, rx) = mpsc::channel();
        let gone = || io::Error::other("the namespace thread is gone");
        self.jobs
            .as_ref()
            .ok_or_else(gone)?
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .map_err(|_| gone())?;
        rx.recv().map_err(|_| gone())
    }

    /// A listener bound in the namespace.
    pub(super) fn bind(&self, addr: SocketAddr) -> io::Result<TcpListener> {
        self.run(move || TcpListener::bind(addr))?
    }

    /// A connection made from the namespace.
    pub(super) fn connect(&self, addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        self.run(move || crate::net::connect(addr, timeout, crate::net::Reach::Loopback).map_err(io::Error::from))?
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A background loop stopped on drop (its socket shut down to wake a blocked call).
pub(super) struct Service {
    stop: Arc<AtomicBool>,
    wake: Option<TcpListener>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Service")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(l) = &self.wake {
            // Linux wakes a blocked accept() on a listening socket shut down for reading.
            let _ = rustix::net::shutdown(l, rustix::net::Shutdown::Read);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Accepts on `listener` and hands each connection to `handle` on its own thread.
pub(super) fn accept_loop(
    listener: TcpListener,
    name: &str,
    handle: impl Fn(TcpStream) + Send + Sync + 'static,
) -> io::Result<Service> {
    let stop = Arc::new(AtomicBool::new(false));
    let wake = listener.try_clone()?;
    let flag = stop.clone();
    let handle = Arc::new(handle);
    let thread = std::thread::Builder::new().name(name.into()).spawn(move || {
        loop {
            match listener.accept() {
                Ok((stream, _)) if !flag.load(Ordering::SeqCst) => {
                    let handle = handle.clone();
                    let _ = std::thread::Builder::new().name("mralab-ats-conn".into()).spawn(move || handle(stream));
                }
                _ if flag.load(Ordering::SeqCst) => break,
                Ok(_) => break,
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    })?;
    Ok(Service { stop, wake: Some(wake), thread: Some(thread) })
}
