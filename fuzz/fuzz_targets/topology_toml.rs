//! A topology file as `cargo xtask pki <file.toml>` reads it: checked, and, when small, built
//! and printed (the tree and each certificate's oddities).
#![no_main]

use harness::pki::{KeyCache, Pki, Topology};
use harness::source::Source;
use libfuzzer_sys::fuzz_target;
use time::macros::datetime;

/// Topologies up to this many certificates are also built. Keys come from an in-memory cache
/// (each type and slot generated once per process), so a build costs a few signatures; larger
/// topologies add time per input and little new code.
const MAX_BUILT_CERTS: usize = 4;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(topology) = Topology::from_toml(&Source::new("fuzz.toml", text)) else { return };
    if topology.order().len() > MAX_BUILT_CERTS {
        return;
    }
    let Ok(pki) = Pki::build(&topology, datetime!(2024-06-01 12:00 UTC), &KeyCache::in_memory()) else { return };
    let _ = pki.tree();
    for cert in pki.certs() {
        let _ = pki.oddities(cert);
    }
});
