//! The release catalogue (`Catalogue::parse`): any text gets a catalogue or
//! an error, never a panic; a catalogue that parsed answers its queries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tierwise_common::Catalogue;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Catalogue::parse(text, "fuzz.toml") {
        Ok(catalogue) => {
            let releases = catalogue.releases();
            if let (Some(first), Some(last)) = (releases.first(), releases.last()) {
                assert!(catalogue.get(first.version).is_some());
                let _ = catalogue.between(first.version, last.version).count();
            }
            for release in releases {
                let _ = release.released.span();
            }
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
