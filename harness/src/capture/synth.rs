//! Frames built from recorded connections: per connection a three-way handshake from
//! Expressway-C's modelled address and a deterministic source port, the bytes each side
//! wrote as segments of at most [`MSS`] bytes with consistent sequence and acknowledgement
//! numbers, and the FINs in the order the sides closed.
//!
//! Determinism: what a node's reads return depends on timing (one client flight may arrive in
//! one read or two), so consecutive bytes in one direction are joined before they are cut into
//! segments. Times advance by [`FRAME_STEP_NS`] a frame and each connection starts on the next
//! millisecond, so the same recordings give the same frames.

use std::net::{IpAddr, Ipv4Addr};

use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};
use simulators::{ConnectionRecording, Direction, Segment};

use super::{CaptureError, EXPRESSWAY_C_IP, FIRST_CLIENT_PORT, Frame};

/// The largest TCP payload per frame (Ethernet's 1500 less IPv4 and TCP headers).
pub(super) const MSS: usize = 1460;

/// The logical time between two frames.
pub(super) const FRAME_STEP_NS: u64 = 50_000;

const MILLISECOND_NS: u64 = 1_000_000;
const WINDOW: u16 = 64240;
const TTL: u8 = 64;

/// The client port of the `index`th connection (0-based).
pub(super) fn client_port(index: usize) -> u16 {
    let step = u16::try_from(index % 16_000).unwrap_or(0);
    FIRST_CLIENT_PORT.wrapping_add(step.wrapping_mul(2))
}

/// A locally administered MAC made of an IPv4 address.
pub(super) fn mac_of(ip: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = ip.octets();
    [0x02, 0x00, a, b, c, d]
}

fn ipv4(ip: IpAddr) -> Ipv4Addr {
    match ip {
        IpAddr::V4(v4) => v4,
        // Nodes are modelled on IPv4; an IPv6 one is shown as its mapped form, if any.
        IpAddr::V6(v6) => v6.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED),
    }
}

/// One side of a connection as TCP sees it.
struct End {
    ip: Ipv4Addr,
    port: u16,
    /// The next sequence number this side sends.
    next: u32,
}

#[derive(Clone, Copy)]
enum Flags {
    Syn,
    SynAck,
    Ack,
    PshAck,
    FinAck,
}

struct Builder {
    frames: Vec<Frame>,
    now: u64,
}

impl Builder {
    fn push(&mut self, from: &End, to: &End, flags: Flags, payload: &[u8]) -> Result<(), CaptureError> {
        let builder = PacketBuilder::ethernet2(mac_of(from.ip), mac_of(to.ip))
            .ipv4(from.ip.octets(), to.ip.octets(), TTL)
            .tcp(from.port, to.port, from.next, WINDOW);
        let builder = match flags {
            Flags::Syn => builder.syn(),
            Flags::SynAck => builder.syn().ack(to.next),
            Flags::Ack => builder.ack(to.next),
            Flags::PshAck => builder.psh().ack(to.next),
            Flags::FinAck => builder.fin().ack(to.next),
        };
        let mut data = Vec::with_capacity(builder.size(payload.len()));
        builder.write(&mut data, payload).map_err(|e| CaptureError::Frame(e.to_string()))?;
        self.frames.push(Frame { timestamp_ns: self.now, data });
        self.now = self.now.saturating_add(FRAME_STEP_NS);
        Ok(())
    }
}

/// Consecutive bytes in one direction joined; FINs kept in place.
fn canonical(segments: &[Segment]) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::with_capacity(segments.len());
    for segment in segments {
        match (out.last_mut(), segment) {
            (Some(Segment::Data { direction: last, bytes: joined }), Segment::Data { direction, bytes })
                if last == direction =>
            {
                joined.extend_from_slice(bytes)
            }
            _ => out.push(segment.clone()),
        }
    }
    out
}

/// Every connection's frames, connections one after the other from `start_ns`.
pub(super) fn frames(connections: &[ConnectionRecording], start_ns: u64) -> Result<Vec<Frame>, CaptureError> {
    let mut b = Builder { frames: Vec::new(), now: start_ns };
    for (index, connection) in connections.iter().enumerate() {
        // Each connection starts on the next whole millisecond of the logical clock.
        b.now = b.now.div_ceil(MILLISECOND_NS).saturating_mul(MILLISECOND_NS);
        let order = u32::try_from(connection.order % 4096).unwrap_or(0);
        let mut client =
            End { ip: EXPRESSWAY_C_IP, port: client_port(index), next: 0x1000_0000 ^ order.wrapping_mul(0x9e37) };
        let mut node = End {
            ip: ipv4(connection.modelled_ip),
            port: connection.port,
            next: 0x2000_0000 ^ order.wrapping_mul(0x7f4a),
        };
        b.push(&client, &node, Flags::Syn, &[])?;
        client.next = client.next.wrapping_add(1);
        b.push(&node, &client, Flags::SynAck, &[])?;
        node.next = node.next.wrapping_add(1);
        b.push(&client, &node, Flags::Ack, &[])?;
        let mut first_fin: Option<Direction> = None;
        for segment in canonical(&connection.segments) {
            match segment {
                Segment::Data { direction, bytes } => {
                    let (from, to) = match direction {
                        Direction::ToNode => (&mut client, &mut node),
                        Direction::FromNode => (&mut node, &mut client),
                    };
                    for chunk in bytes.chunks(MSS) {
                        b.push(from, to, Flags::PshAck, chunk)?;
                        let len = u32::try_from(chunk.len()).unwrap_or(0);
                        from.next = from.next.wrapping_add(len);
                    }
                    // The receiver acknowledges what it got.
                    b.push(to, from, Flags::Ack, &[])?;
                }
                Segment::Fin(direction) => {
                    let (from, to) = match direction {
                        Direction::ToNode => (&mut client, &mut node),
                        Direction::FromNode => (&mut node, &mut client),
                    };
                    b.push(from, to, Flags::FinAck, &[])?;
                    from.next = from.next.wrapping_add(1);
                    first_fin.get_or_insert(direction);
                }
            }
        }
        // The side that closed first acknowledges the other's FIN.
        match first_fin {
            Some(Direction::ToNode) => b.push(&client, &node, Flags::Ack, &[])?,
            Some(Direction::FromNode) => b.push(&node, &client, Flags::Ack, &[])?,
            None => {}
        }
    }
    Ok(b.frames)
}

/// Whether a frame is a TCP SYN without ACK (a connection's first frame).
pub(super) fn is_syn(frame: &[u8]) -> bool {
    match SlicedPacket::from_ethernet(frame) {
        Ok(SlicedPacket { transport: Some(TransportSlice::Tcp(tcp)), .. }) => tcp.syn() && !tcp.ack(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(segments: Vec<Segment>) -> ConnectionRecording {
        ConnectionRecording {
            order: 0,
            node: "cucm".into(),
            modelled_ip: IpAddr::V4(Ipv4Addr::new(10, 48, 36, 215)),
            port: 6972,
            peer: "127.0.0.1:40000".parse().expect("literal"),
            segments,
        }
    }

    fn data(direction: Direction, n: usize) -> Segment {
        Segment::Data { direction, bytes: vec![0x16; n] }
    }

    #[test]
    fn reads_split_differently_give_the_same_frames() {
        let one = connection(vec![data(Direction::ToNode, 300), data(Direction::FromNode, 2000)]);
        let two = connection(vec![
            data(Direction::ToNode, 100),
            data(Direction::ToNode, 200),
            data(Direction::FromNode, 1500),
            data(Direction::FromNode, 500),
        ]);
        assert_eq!(frames(&[one], 0).expect("frames"), frames(&[two], 0).expect("frames"));
    }

    #[test]
    fn sequence_numbers_count_every_byte_and_fin() {
        let c = connection(vec![
            data(Direction::ToNode, 10),
            data(Direction::FromNode, 3000),
            Segment::Fin(Direction::ToNode),
            Segment::Fin(Direction::FromNode),
        ]);
        let frames = frames(&[c], 0).expect("frames");
        let tcp: Vec<_> = frames
            .iter()
            .map(|f| match SlicedPacket::from_ethernet(&f.data).expect("parses").transport {
                Some(TransportSlice::Tcp(t)) => (t.source_port(), t.sequence_number(), t.payload().len(), t.fin()),
                other => panic!("not tcp: {other:?}"),
            })
            .collect();
        // SYN, SYN-ACK, ACK, data, ACK, 3 node segments (1460, 1460, 80), ACK, FIN, FIN, ACK.
        assert_eq!(tcp.len(), 12);
        let client_isn = tcp[0].1;
        let client_fin = tcp.iter().find(|t| t.0 == FIRST_CLIENT_PORT && t.3).expect("client fin");
        assert_eq!(client_fin.1, client_isn.wrapping_add(1 + 10));
        let node_isn = tcp[1].1;
        let node_fin = tcp.iter().find(|t| t.0 == 6972 && t.3).expect("node fin");
        assert_eq!(node_fin.1, node_isn.wrapping_add(1 + 3000));
        assert!(tcp.iter().all(|t| t.2 <= MSS));
    }

    #[test]
    fn retries_come_from_new_source_ports_two_apart() {
        assert_eq!([client_port(0), client_port(1), client_port(2)], [31576, 31578, 31580]);
    }
}
