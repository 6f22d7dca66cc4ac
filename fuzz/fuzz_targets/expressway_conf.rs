//! A lab's `expressway.conf` (xConfiguration lines) as `cargo xtask lab check` reads it after a
//! trainee edited it, cipher list included.
#![no_main]

use harness::lab::parse_expressway_conf;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = parse_expressway_conf("expressway.conf", text);
});
