//! Loopback address allocation: every node gets its own `127.x.y.z` so that all of them listen
//! on the real ports 8443 and 6972. Two fleets in one process never overlap (a process-wide
//! counter hands out blocks), two processes rarely do (each starts at a pid-derived block), and
//! when they do anyway the bind fails with `AddrInUse` and the fleet moves to the next blocks.

use std::net::Ipv4Addr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// Addresses per block: `127.a.b.1` to `127.a.b.254`.
pub(crate) const BLOCK_SIZE: u32 = 254;
/// First second octet used for automatic addresses; below it is left for explicit ones
/// (`127.0.0.1` and friends).
const FIRST_A: u32 = 16;
/// Second octets `FIRST_A..=250`, third octets `0..=255`.
const BLOCKS: u32 = (250 - FIRST_A + 1) * 256;

static NEXT_BLOCK: AtomicU32 = AtomicU32::new(0);
static START_BLOCK: OnceLock<u32> = OnceLock::new();

/// Reserves `count` consecutive blocks for this process and returns the first one's index.
pub(crate) fn reserve_blocks(count: u32) -> u32 {
    let start = *START_BLOCK.get_or_init(|| {
        // Spread processes far apart: a multiplier coprime to BLOCKS scatters nearby pids.
        std::process::id().wrapping_mul(7919) % BLOCKS
    });
    let offset = NEXT_BLOCK.fetch_add(count.max(1), Ordering::Relaxed);
    (start.wrapping_add(offset)) % BLOCKS
}

/// The `index`-th address from block `first_block` on (blocks wrap around the range).
pub(crate) fn address(first_block: u32, index: u32) -> Ipv4Addr {
    let block = (first_block + index / BLOCK_SIZE) % BLOCKS;
    let host = index % BLOCK_SIZE + 1;
    let a = FIRST_A + block / 256;
    let b = block % 256;
    // a <= 250, b <= 255, host <= 254: every octet fits a u8.
    Ipv4Addr::new(127, a as u8, b as u8, host as u8)
}

/// Blocks needed for `nodes` addresses.
pub(crate) fn blocks_for(nodes: usize) -> u32 {
    let nodes = u32::try_from(nodes).unwrap_or(u32::MAX);
    nodes.div_ceil(BLOCK_SIZE).max(1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn addresses_stay_in_loopback_and_skip_network_and_broadcast_octets() {
        let first = BLOCKS - 1;
        for i in [0, 1, 253, 254, 255, 1000] {
            let ip = address(first, i);
            assert!(ip.is_loopback());
            assert!(ip.octets()[3] != 0 && ip.octets()[3] != 255, "{ip}");
            assert!(ip.octets()[1] >= FIRST_A as u8, "{ip}");
        }
        assert_ne!(address(0, 0), address(0, 254));
    }

    #[test]
    fn two_reservations_in_one_process_do_not_overlap() {
        let a = reserve_blocks(4);
        let b = reserve_blocks(1);
        let distance = (b + BLOCKS - a) % BLOCKS;
        assert!(distance >= 4, "{a} then {b}");
    }
}
