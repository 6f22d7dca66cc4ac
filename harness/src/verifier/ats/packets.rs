//! Real packets from the namespace: an `AF_PACKET` socket made on the namespace thread sees
//! every frame on its loopback (the only interface there), which a reader thread stamps with the
//! real clock and keeps until [`Packets::take`]. `harness::capture` then keeps each packet once
//! and only the traffic server's connections to the nodes' modelled addresses.

use std::collections::BTreeSet;
use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::net::{AddressFamily, RecvFlags, SocketType};

use super::netns::Netns;
use crate::capture::{self, Frame};

/// At most this many frames are kept (both loopback copies counted): a run that makes more
/// keeps its first ones rather than all of memory.
const MAX_FRAMES: usize = 400_000;
/// Loopback's MTU is 65536: a frame is never larger than this with its Ethernet header.
const FRAME_BUFFER: usize = 65_536 + 64;

/// The capture of a namespace's loopback, running until taken or dropped.
#[derive(Debug)]
pub(super) struct Packets {
    stop: Arc<AtomicBool>,
    frames: Arc<Mutex<Vec<Frame>>>,
    reader: Option<JoinHandle<()>>,
    /// The nodes' modelled addresses and ports (the relays' listeners) seen so far.
    nodes: BTreeSet<SocketAddrV4>,
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn read_into(socket: &OwnedFd, buffer: &mut [u8], frames: &Mutex<Vec<Frame>>, flags: RecvFlags) -> io::Result<()> {
    let (_, len) = rustix::net::recv(socket, &mut *buffer, flags)?;
    let data = buffer.get(..len.min(buffer.len())).unwrap_or_default().to_vec();
    let mut frames = frames.lock().unwrap_or_else(PoisonError::into_inner);
    if frames.len() < MAX_FRAMES {
        frames.push(Frame { timestamp_ns: now_ns(), data });
    }
    Ok(())
}

impl Packets {
    /// Opens the packet socket in `netns` and starts reading.
    pub(super) fn start(netns: &Netns) -> io::Result<Packets> {
        let socket = netns.run(|| {
            let socket = rustix::net::socket(AddressFamily::PACKET, SocketType::RAW, Some(rustix::net::eth::ALL))?;
            rustix::net::sockopt::set_socket_timeout(
                &socket,
                rustix::net::sockopt::Timeout::Recv,
                Some(Duration::from_millis(50)),
            )?;
            Ok::<_, io::Error>(socket)
        })??;
        let stop = Arc::new(AtomicBool::new(false));
        let frames = Arc::new(Mutex::new(Vec::new()));
        let (flag, kept) = (stop.clone(), frames.clone());
        let reader = std::thread::Builder::new().name("mralab-ats-packets".into()).spawn(move || {
            let mut buffer = vec![0u8; FRAME_BUFFER];
            while !flag.load(Ordering::SeqCst) {
                match read_into(&socket, &mut buffer, &kept, RecvFlags::empty()) {
                    Ok(()) => {}
                    Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
                    Err(_) => break,
                }
            }
            // What the kernel queued before the stop: everything the run sent has been looped.
            while read_into(&socket, &mut buffer, &kept, RecvFlags::DONTWAIT).is_ok() {}
        })?;
        Ok(Packets { stop, frames, reader: Some(reader), nodes: BTreeSet::new() })
    }

    /// A node's modelled address and port (a relay's listener) whose traffic the capture keeps.
    pub(super) fn node(&mut self, at: SocketAddr) {
        if let SocketAddr::V4(v4) = at {
            self.nodes.insert(v4);
        }
    }

    /// Stops reading and returns the traffic to the nodes, each packet once, modelled addresses.
    pub(super) fn take(mut self) -> Vec<Frame> {
        self.finish();
        let frames = std::mem::take(&mut *self.frames.lock().unwrap_or_else(PoisonError::into_inner));
        capture::drop_loopback_copies(frames).iter().filter_map(|f| capture::to_modelled(f, &self.nodes)).collect()
    }

    fn finish(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

impl Drop for Packets {
    fn drop(&mut self) {
        self.finish();
    }
}
