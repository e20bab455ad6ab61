//! The URLs and durations of the `replicant` binary (through its library): the input as a
//! `redis[s]://` URL, with and without a password from the environment, and as a duration
//! (`--round-wait`). Never a panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use replicant::cli::parse_duration;
use replicant::config::parse_endpoint;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_endpoint(text, None);
        let _ = parse_endpoint(text, Some("pw".into()));
        let _ = parse_duration(text);
    }
});
