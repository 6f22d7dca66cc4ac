//! The two small servers the ats verifier's `traffic_server` needs in its namespace besides the
//! relays: a stub DNS server answering from [`DnsRecords`], the modelled network's names that
//! the verifier in the parent module fills as requests name them (a name it does not hold is
//! NXDOMAIN at once), and a readiness responder that answers `200 ready` to anything, the
//! origin of the readiness probe the verifier sends through ATS after each start. Both sockets
//! are made through [`Netns`].

use std::collections::BTreeMap;
use std::io::{self, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use super::netns::{Netns, Service, accept_loop};

/// Why a stub server could not be started.
#[derive(Debug, thiserror::Error)]
pub(super) enum StubError {
    /// The DNS stub (UDP port 53 in the namespace).
    #[error("DNS stub: {source}")]
    Dns {
        /// Why.
        source: io::Error,
    },
    /// The readiness responder.
    #[error("readiness responder: {source}")]
    Ready {
        /// Why.
        source: io::Error,
    },
}

/// How long ATS may keep an answer of the stub DNS. The verifier restarts ATS when a name's
/// answer changes after ATS may have asked for it, so an answer never needs to expire early.
const TTL_SECONDS: u32 = 3600;

/// The names the stub DNS knows, by lower-case name: shared between the verifier, which sets
/// them, and the stub's thread, which answers from them.
#[derive(Debug, Clone, Default)]
pub(super) struct DnsRecords(Arc<Mutex<BTreeMap<String, IpAddr>>>);

impl DnsRecords {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, IpAddr>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `name` resolves to `ip` from now on, or (`None`) is unknown: NXDOMAIN.
    pub(super) fn set(&self, name: &str, ip: Option<IpAddr>) {
        let name = name.to_ascii_lowercase();
        match ip {
            Some(ip) => self.lock().insert(name, ip),
            None => self.lock().remove(&name),
        };
    }

    fn get(&self, name: &str) -> Option<IpAddr> {
        self.lock().get(&name.to_ascii_lowercase()).copied()
    }
}

/// A DNS server answering A and AAAA queries from [`DnsRecords`]: a known name gets its address
/// (or, asked for the other family, no address: NOERROR with no answer), an unknown one
/// NXDOMAIN at once instead of ATS's 30 s DNS timeout. Stopped on drop.
#[derive(Debug)]
pub(super) struct DnsStub {
    stop: Arc<AtomicBool>,
    /// The stub's own socket, to wake its thread on drop with a datagram to itself.
    wake: UdpSocket,
    thread: Option<JoinHandle<()>>,
}

impl DnsStub {
    /// Serves `records` on 127.0.0.1:53 in the namespace.
    pub(super) fn start(netns: &Netns, records: DnsRecords) -> Result<DnsStub, StubError> {
        Self::serve(netns, records).map_err(|source| StubError::Dns { source })
    }

    fn serve(netns: &Netns, records: DnsRecords) -> io::Result<DnsStub> {
        let socket = netns.run(|| UdpSocket::bind((Ipv4Addr::LOCALHOST, 53)))??;
        // A bound on each wait, should the wake-up datagram be lost.
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        let wake = socket.try_clone()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new().name("mralab-ats-dns".into()).spawn(move || {
            let mut buf = [0u8; 1500];
            while !flag.load(Ordering::SeqCst) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else { continue };
                if let Some(answer) = answer(&buf[..n], |name| records.get(name)) {
                    let _ = socket.send_to(&answer, from);
                }
            }
        })?;
        Ok(DnsStub { stop, wake, thread: Some(thread) })
    }
}

/// The question of a DNS query: the name (dots between labels) and where the question ends.
fn question(query: &[u8]) -> Option<(String, usize)> {
    let mut labels = Vec::new();
    let mut at = 12;
    loop {
        let len = usize::from(*query.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        // A query's name is never compressed; longer labels are not labels.
        if len > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(query.get(at..at + len)?).into_owned());
        at += len;
    }
    // QTYPE and QCLASS.
    query.get(at..at + 4)?;
    Some((labels.join("."), at + 4))
}

/// The answer to one DNS query, from `lookup`; `None` for a datagram that is no query.
fn answer(query: &[u8], lookup: impl Fn(&str) -> Option<IpAddr>) -> Option<Vec<u8>> {
    const A: u16 = 1;
    const AAAA: u16 = 28;
    const IN: u16 = 1;
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return None;
    }
    let one_question = query[4..6] == [0, 1];
    let parsed = if one_question { question(query) } else { None };
    let Some((name, end)) = parsed else {
        // Not one question: refused, as the header alone.
        let mut answer = query[..12].to_vec();
        answer[2] = (answer[2] | 0x80) & !0x02;
        answer[3] = 0x80 | 5;
        answer[4..12].fill(0);
        return Some(answer);
    };
    let qtype = u16::from_be_bytes([query[end - 4], query[end - 3]]);
    let qclass = u16::from_be_bytes([query[end - 2], query[end - 1]]);
    let mut answer = query[..end].to_vec();
    answer[2] = (answer[2] | 0x80 | 0x04) & !0x02; // QR, AA; not truncated
    answer[6..12].fill(0); // no answer yet, no authority, no additional records (EDNS dropped)
    let rdata: Option<Vec<u8>> = match (lookup(&name), qtype, qclass) {
        (None, _, _) => {
            answer[3] = 0x80 | 3; // RA, NXDOMAIN
            return Some(answer);
        }
        (Some(IpAddr::V4(v4)), A, IN) => Some(v4.octets().to_vec()),
        (Some(IpAddr::V6(v6)), AAAA, IN) => Some(v6.octets().to_vec()),
        _ => None,
    };
    answer[3] = 0x80; // RA, NOERROR
    if let Some(rdata) = rdata {
        answer[7] = 1; // one answer
        answer.extend_from_slice(&[0xc0, 0x0c]); // the question's name
        answer.extend_from_slice(&qtype.to_be_bytes());
        answer.extend_from_slice(&IN.to_be_bytes());
        answer.extend_from_slice(&TTL_SECONDS.to_be_bytes());
        answer.extend_from_slice(&u16::try_from(rdata.len()).unwrap_or(0).to_be_bytes());
        answer.extend_from_slice(&rdata);
    }
    Some(answer)
}

impl Drop for DnsStub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // An empty datagram is no query: the thread sees the flag at once instead of at the end
        // of its read timeout.
        if let Ok(me) = self.wake.local_addr() {
            let _ = self.wake.send_to(&[], me);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers `200 ready` to anything: the target of the readiness probes. Stopped on drop.
#[derive(Debug)]
pub(super) struct ReadyResponder {
    /// Its port on 127.0.0.1 in the namespace.
    pub(super) port: u16,
    _service: Service,
}

impl ReadyResponder {
    /// Serves on a free port of 127.0.0.1 in the namespace.
    pub(super) fn start(netns: &Netns) -> Result<ReadyResponder, StubError> {
        Self::serve(netns).map_err(|source| StubError::Ready { source })
    }

    fn serve(netns: &Netns) -> io::Result<ReadyResponder> {
        let listener = netns.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
        let port = listener.local_addr()?.port();
        let service = accept_loop(listener, "mralab-ats-ready", |mut stream| {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 4096];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nready");
        })?;
        Ok(ReadyResponder { port, _service: service })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query for `name` of type `qtype` with an EDNS record, as resolvers send it.
    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
        for label in name.split('.') {
            q.push(u8::try_from(label.len()).expect("short label"));
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&[0, 1]);
        q.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
        q
    }

    fn lookup(name: &str) -> Option<IpAddr> {
        (name.eq_ignore_ascii_case("cucm.steven.lab")).then(|| IpAddr::from([10, 48, 36, 215]))
    }

    #[test]
    fn a_known_name_gets_its_address() {
        let q = query("CUCM.steven.lab", 1);
        let a = answer(&q, lookup).expect("an answer");
        assert_eq!(a[..2], [0x12, 0x34], "the query's id");
        assert_eq!(a[3] & 0x0f, 0, "NOERROR");
        assert_eq!(a[6..12], [0, 1, 0, 0, 0, 0], "one answer, no EDNS record");
        assert_eq!(a[a.len() - 4..], [10, 48, 36, 215]);
    }

    #[test]
    fn a_known_name_has_no_address_of_the_other_family_and_an_unknown_one_is_nxdomain() {
        let aaaa = answer(&query("cucm.steven.lab", 28), lookup).expect("an answer");
        assert_eq!((aaaa[3] & 0x0f, aaaa[7]), (0, 0), "NOERROR, no answer");
        let typo = answer(&query("cucm.stevn.lab", 1), lookup).expect("an answer");
        assert_eq!((typo[3] & 0x0f, typo[7]), (3, 0), "NXDOMAIN");
    }

    #[test]
    fn garbage_gets_no_answer_or_a_refusal() {
        assert!(answer(&[1, 2, 3], lookup).is_none());
        let mut q = query("cucm.steven.lab", 1);
        q.truncate(20);
        let refused = answer(&q, lookup).expect("an answer");
        assert_eq!((refused.len(), refused[3] & 0x0f), (12, 5));
    }
}
