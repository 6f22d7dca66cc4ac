//! Frames read off a namespace's loopback (the ats verifiers) made into a capture's frames:
//! each packet once (a packet socket on `lo` sees every packet twice, leaving and arriving),
//! only TCP to or from a node's modelled address and port, and the client's address (whatever
//! the traffic server's socket took) rewritten to [`EXPRESSWAY_C_IP`], checksums recomputed.

use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddrV4};

use etherparse::{EtherType, Ethernet2Header, NetSlice, SlicedPacket, TransportSlice};

use super::synth::mac_of;
use super::{EXPRESSWAY_C_IP, Frame};

/// Drops the second copy of each packet. On loopback every packet is seen leaving and then
/// arriving, byte for byte the same; pairing equal frames (a multiset) keeps exactly half of
/// each group of equal frames, even when two equal packets interleave.
pub fn drop_loopback_copies(frames: Vec<Frame>) -> Vec<Frame> {
    let mut pending: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut out = Vec::with_capacity(frames.len() / 2 + 1);
    for frame in frames {
        match pending.get_mut(&frame.data) {
            Some(n) if *n > 0 => *n -= 1,
            _ => {
                *pending.entry(frame.data.clone()).or_insert(0) += 1;
                out.push(frame);
            }
        }
    }
    out
}

/// The frame with the modelled addresses, if it is TCP to or from one of `nodes`.
pub fn to_modelled(frame: &Frame, nodes: &BTreeSet<SocketAddrV4>) -> Option<Frame> {
    let sliced = SlicedPacket::from_ethernet(&frame.data).ok()?;
    let Some(NetSlice::Ipv4(ip)) = &sliced.net else { return None };
    let Some(TransportSlice::Tcp(tcp)) = &sliced.transport else { return None };
    let mut ip_header = ip.header().to_header();
    let mut tcp_header = tcp.to_header();
    let source = SocketAddrV4::new(Ipv4Addr::from(ip_header.source), tcp_header.source_port);
    let destination = SocketAddrV4::new(Ipv4Addr::from(ip_header.destination), tcp_header.destination_port);
    if nodes.contains(&destination) {
        ip_header.source = EXPRESSWAY_C_IP.octets();
    } else if nodes.contains(&source) {
        ip_header.destination = EXPRESSWAY_C_IP.octets();
    } else {
        return None;
    }
    let payload = tcp.payload();
    ip_header.header_checksum = ip_header.calc_header_checksum();
    tcp_header.checksum = tcp_header.calc_checksum_ipv4(&ip_header, payload).ok()?;
    let ethernet = Ethernet2Header {
        source: mac_of(Ipv4Addr::from(ip_header.source)),
        destination: mac_of(Ipv4Addr::from(ip_header.destination)),
        ether_type: EtherType::IPV4,
    };
    let mut data = Vec::with_capacity(frame.data.len());
    ethernet.write(&mut data).ok()?;
    ip_header.write(&mut data).ok()?;
    tcp_header.write(&mut data).ok()?;
    data.extend_from_slice(payload);
    Some(Frame { timestamp_ns: frame.timestamp_ns, data })
}

/// The client ports of the connections in `frames`, in the order of their SYNs.
pub fn client_ports(frames: &[Frame]) -> Vec<u16> {
    frames
        .iter()
        .filter_map(|f| match SlicedPacket::from_ethernet(&f.data) {
            Ok(SlicedPacket { transport: Some(TransportSlice::Tcp(tcp)), .. }) if tcp.syn() && !tcp.ack() => {
                Some(tcp.source_port())
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use etherparse::PacketBuilder;

    use super::*;

    fn frame(from: ([u8; 4], u16), to: ([u8; 4], u16), payload: &[u8]) -> Frame {
        let mut data = Vec::new();
        PacketBuilder::ethernet2([0; 6], [0; 6])
            .ipv4(from.0, to.0, 64)
            .tcp(from.1, to.1, 7, 100)
            .write(&mut data, payload)
            .expect("builds");
        Frame { timestamp_ns: 0, data }
    }

    #[test]
    fn each_loopback_packet_is_kept_once_even_when_equal_ones_interleave() {
        let a = frame(([10, 48, 36, 215], 40000), ([10, 48, 36, 215], 6972), b"x");
        let b = frame(([10, 48, 36, 215], 6972), ([10, 48, 36, 215], 40000), b"y");
        let seen = vec![a.clone(), a.clone(), a.clone(), b.clone(), a.clone(), b];
        let kept = drop_loopback_copies(seen);
        assert_eq!(kept.len(), 3);
        assert_eq!(kept.iter().filter(|f| **f == a).count(), 2);
    }

    #[test]
    fn the_client_becomes_expressway_c_with_valid_checksums() {
        let nodes = BTreeSet::from([SocketAddrV4::new(Ipv4Addr::new(10, 48, 36, 215), 6972)]);
        let to_node = frame(([10, 48, 36, 215], 40000), ([10, 48, 36, 215], 6972), b"hello");
        let out = to_modelled(&to_node, &nodes).expect("kept");
        let sliced = SlicedPacket::from_ethernet(&out.data).expect("parses");
        let Some(NetSlice::Ipv4(ip)) = sliced.net else { panic!("ipv4") };
        assert_eq!(ip.header().source_addr(), EXPRESSWAY_C_IP);
        let header = ip.header().to_header();
        assert_eq!(header.header_checksum, header.calc_header_checksum());
        let Some(TransportSlice::Tcp(tcp)) = sliced.transport else { panic!("tcp") };
        assert_eq!(tcp.checksum(), tcp.to_header().calc_checksum_ipv4(&header, tcp.payload()).expect("sums"));
        // DNS, the readiness probe, the client's requests to the traffic server: not kept.
        let other = frame(([127, 0, 0, 1], 40000), ([127, 0, 0, 1], 8080), b"GET /");
        assert_eq!(to_modelled(&other, &nodes), None);
    }
}
