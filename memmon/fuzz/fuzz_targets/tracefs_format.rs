//! Tracepoint `format` files: any text gives an offset or None, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        for field in ["group_dead", "comm", "pid", ""] {
            let _ = memmon::probes::tracefs::parse_field_offset(text, field);
        }
    }
});
