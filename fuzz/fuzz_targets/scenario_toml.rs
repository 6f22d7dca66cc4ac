//! A scenario file as `cargo xtask scenarios` reads it: TOML, the spec, the checks and the
//! topology it names or writes inline. Errors are fine; a panic is a bug.
#![no_main]

use std::path::Path;

use harness::scenario::Scenario;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = Scenario::from_text("fuzz::input".to_string(), Path::new("scenarios/fuzz/input.toml"), text);
});
