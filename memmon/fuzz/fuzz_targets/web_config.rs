//! The endpoint's web config file (exporter-toolkit YAML): any text gives
//! settings or an error, never a panic. Relative certificate paths resolve
//! under a directory that does not exist, so nothing is read from disk.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = memmon::daemon::web_config::parse(text, std::path::Path::new("/nonexistent-fuzz"));
    }
});
