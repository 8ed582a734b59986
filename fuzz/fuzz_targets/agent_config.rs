//! The agent's configuration: TOML text parsed and validated into
//! `Settings` (every key, probe, action and health check), without reading
//! any file the text names. Any text gets settings or an error naming the
//! line, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match tierwise_agent::config::parse_detached(text, "agent.toml", "enroll-token", "fuzz-host") {
        Ok(settings) => {
            let _ = format!("{settings:?}");
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
