//! The Web Application package reader: arbitrary bytes as the ZIP an agent
//! is asked to deploy, through every check made before the document
//! directory is touched (readable archive, entries inside the directory,
//! no links, the stated version). Reads only: nothing is written.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Cursor;
use std::path::Path;
use tierwise_agent::steps::web::check_package;
use tierwise_common::Version;

fuzz_target!(|data: &[u8]| {
    // The first byte picks whether the package is the controller's artifact
    // (which may state no version) or a local one.
    let Some((&flags, bytes)) = data.split_first() else {
        return;
    };
    let registered = flags & 1 == 1;
    let version = Version::new(26, 3, 100, 34058);
    if let Ok((mut archive, _summary)) = check_package(
        Cursor::new(bytes),
        Path::new("web.zip"),
        version,
        registered,
    ) {
        // What the unzip would then read: every entry's name and content.
        for index in 0..archive.len() {
            if let Ok(mut entry) = archive.by_index(index) {
                let _ = entry.enclosed_name();
                let _ = std::io::copy(
                    &mut std::io::Read::take(&mut entry, 1 << 20),
                    &mut std::io::sink(),
                );
            }
        }
    }
});
