//! The daemon's config file: any text gives a config or an error naming
//! the file and line, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = memmon::config::parse_file(text, std::path::Path::new("fuzz.toml"));
    }
});
