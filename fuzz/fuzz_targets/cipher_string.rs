//! An OpenSSL cipher string (`cargo xtask ciphers`, `set-ciphers` steps, `xConfiguration
//! Ciphers`), and the report printed for it.
#![no_main]

use harness::ciphers::CipherList;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(list) = CipherList::parse(text) else { return };
    let _ = list.report();
    let _ = list.preferred_key();
});
