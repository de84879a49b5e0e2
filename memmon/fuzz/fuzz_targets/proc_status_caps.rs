//! /proc/PID/status `CapEff:` parsing and the capability message.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some(caps) = memmon::privileges::parse_cap_eff(&text) {
        let _ = memmon::privileges::missing_message(caps);
    }
});
