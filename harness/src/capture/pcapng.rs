//! The pcapng file: a Section Header Block with the capture's comment, one Interface
//! Description Block (Ethernet, nanosecond timestamps), the Decryption Secrets Block, then an
//! Enhanced Packet Block per frame.
//!
//! pcap-file 2 has no Decryption Secrets Block (pcapng spec, block type 0x0000000A): it is
//! written here by hand as the body of a `Block::Unknown`, which pcap-file frames with the
//! type, both length fields and the padding.

use std::borrow::Cow;
use std::time::Duration;

use pcap_file::DataLink;
use pcap_file::Endianness;
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::Block;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::pcapng::blocks::unknown::UnknownBlock;

use super::{Capture, CaptureError, Origin};

/// The Decryption Secrets Block's type.
const DECRYPTION_SECRETS_BLOCK: u32 = 0x0000_000A;
/// Its secrets type for a TLS key log (`TLSK`).
const TLS_KEY_LOG: u32 = 0x544c_534b;

/// The body of a Decryption Secrets Block holding `key_log` (little-endian, as the section).
pub(super) fn decryption_secrets_body(key_log: &[String]) -> Vec<u8> {
    let mut secrets = String::new();
    for line in key_log {
        secrets.push_str(line);
        secrets.push('\n');
    }
    let len = u32::try_from(secrets.len()).unwrap_or(u32::MAX);
    let mut body = Vec::with_capacity(8 + secrets.len() + 3);
    body.extend_from_slice(&TLS_KEY_LOG.to_le_bytes());
    body.extend_from_slice(&len.to_le_bytes());
    body.extend_from_slice(secrets.as_bytes());
    // Secrets data is padded to 32 bits (pcap-file pads the block too, but only after this).
    body.resize(body.len().next_multiple_of(4), 0);
    body
}

pub(super) fn write(capture: &Capture) -> Result<Vec<u8>, CaptureError> {
    let section = SectionHeaderBlock {
        endianness: Endianness::Little,
        options: vec![
            SectionHeaderOption::Comment(Cow::Borrowed(&capture.comment)),
            SectionHeaderOption::UserApplication(Cow::Borrowed("mralab")),
        ],
        ..SectionHeaderBlock::default()
    };
    let mut writer = PcapNgWriter::with_section_header(Vec::new(), section.into_owned())?;
    let name = match capture.origin {
        Origin::Synthesised => "mralab-synthesised",
        Origin::Captured => "lo (traffic server namespace)",
    };
    writer.write_block(&Block::InterfaceDescription(InterfaceDescriptionBlock {
        linktype: DataLink::ETHERNET,
        snaplen: 0,
        options: vec![
            InterfaceDescriptionOption::IfName(Cow::Borrowed(name)),
            // pcap-file writes Enhanced Packet timestamps in nanoseconds.
            InterfaceDescriptionOption::IfTsResol(9),
        ],
    }))?;
    if !capture.key_log.is_empty() {
        let body = decryption_secrets_body(&capture.key_log);
        let length = u32::try_from(body.len() + 12).unwrap_or(u32::MAX);
        writer.write_block(&Block::Unknown(UnknownBlock::new(DECRYPTION_SECRETS_BLOCK, length, &body)))?;
    }
    for frame in &capture.frames {
        let original_len = u32::try_from(frame.data.len()).unwrap_or(u32::MAX);
        writer.write_block(&Block::EnhancedPacket(EnhancedPacketBlock {
            interface_id: 0,
            timestamp: Duration::from_nanos(frame.timestamp_ns),
            original_len,
            data: Cow::Borrowed(&frame.data),
            options: vec![],
        }))?;
    }
    Ok(writer.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secrets_block_body_is_type_length_and_padded_lines() {
        let body = decryption_secrets_body(&["CLIENT_RANDOM 00 11".to_owned()]);
        assert_eq!(&body[..4], b"KSLT");
        assert_eq!(u32::from_le_bytes([body[4], body[5], body[6], body[7]]), 20);
        assert_eq!(&body[8..28], b"CLIENT_RANDOM 00 11\n");
        assert_eq!(body.len() % 4, 0);
    }
}
