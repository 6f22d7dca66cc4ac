//! Expressway diagnostic log bytes as `cargo xtask diagnose` reads them (not UTF-8 included),
//! and the report it prints, as text and JSON.
#![no_main]

use harness::diagnose::diagnose_bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let report = diagnose_bytes(data);
    let _ = report.render();
    let _ = report.to_json();
});
