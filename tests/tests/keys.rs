//! `tierwise keys`, the offline side of signed release metadata, as an
//! operator runs it: keys, a root with a threshold, release metadata for a
//! catalogue and an installer, the fingerprint agents pin, and `verify`
//! refusing what an agent must refuse. No controller runs here.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use std::path::Path;
use std::process::Output;

fn keys(dir: &Path, args: &[&str]) -> Output {
    tierwise_e2e::keys_output(dir, args).unwrap()
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = keys(dir, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn refused(dir: &Path, args: &[&str]) -> String {
    let out = keys(dir, args);
    assert!(!out.status.success(), "{args:?} was accepted");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn public(created: &str) -> String {
    tierwise_e2e::public_key(created).unwrap()
}

#[test]
fn offline_keys_sign_roots_and_releases_that_verify_as_agents_check_them() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    let r1 = public(&ok(dir, &["create", "root1.key"]));
    let _r2 = public(&ok(dir, &["create", "root2.key"]));
    let rel = public(&ok(dir, &["create", "release1.key"]));
    let rogue = public(&ok(dir, &["create", "rogue.key"]));
    assert!(refused(dir, &["create", "root1.key"]).contains("is never overwritten"));
    assert_eq!(r1.len(), 64);

    ok(
        dir,
        &[
            "root",
            "--out",
            "root-1.json",
            "--version",
            "1",
            "--root-key",
            "root1.key",
            "--root-key",
            "root2.key",
            "--threshold",
            "2",
            "--release-public",
            &rel,
        ],
    );
    let pin = ok(dir, &["fingerprint", "root-1.json"]).trim().to_owned();
    std::fs::write(dir.join("catalogue.toml"), "# a catalogue\n").unwrap();
    std::fs::write(dir.join("PSClient.msi"), b"the client installer").unwrap();
    ok(
        dir,
        &[
            "release",
            "--out",
            "release-1.json",
            "--version",
            "1",
            "--key",
            "release1.key",
            "--catalogue",
            "catalogue.toml",
            "--installer",
            "PSClient.msi=26.3.100.34058:client",
        ],
    );
    let verified = ok(
        dir,
        &[
            "verify",
            "--pin",
            &pin,
            "--root",
            "root-1.json",
            "--release",
            "release-1.json",
            "--catalogue",
            "catalogue.toml",
            "--installer",
            "PSClient.msi=26.3.100.34058:client",
        ],
    );
    assert!(verified.contains("Root version 1 is trusted"), "{verified}");
    assert!(
        verified.contains("catalogue.toml is the signed catalogue."),
        "{verified}"
    );
    std::fs::write(dir.join("other.toml"), "# another catalogue\n").unwrap();
    let error = refused(
        dir,
        &[
            "verify",
            "--pin",
            &pin,
            "--root",
            "root-1.json",
            "--release",
            "release-1.json",
            "--catalogue",
            "other.toml",
        ],
    );
    assert!(
        error.contains("is not the one release metadata version 1 was signed for"),
        "{error}"
    );
    assert!(
        verified.contains("PSClient.msi is signed for client 26.3.100.34058."),
        "{verified}"
    );

    let verify = |release: &str, installer: &str| {
        refused(
            dir,
            &[
                "verify",
                "--pin",
                &pin,
                "--root",
                "root-1.json",
                "--release",
                release,
                "--installer",
                installer,
            ],
        )
    };
    // The same installer for another release (mix-and-match).
    let error = verify("release-1.json", "PSClient.msi=26.4.10.34111:client");
    assert!(
        error.contains("is signed for client 26.3.100.34058, not for client 26.4.10.34111"),
        "{error}"
    );
    // A changed installer.
    std::fs::write(dir.join("Evil.msi"), b"something else").unwrap();
    let error = verify("release-1.json", "Evil.msi=26.3.100.34058:client");
    assert!(
        error.contains("not in the signed release metadata"),
        "{error}"
    );
    // Release metadata signed by a key the root does not certify.
    ok(
        dir,
        &[
            "release",
            "--out",
            "rogue.json",
            "--version",
            "2",
            "--key",
            "rogue.key",
            "--catalogue",
            "catalogue.toml",
            "--installer",
            "Evil.msi=26.3.100.34058:client",
        ],
    );
    let error = verify("rogue.json", "Evil.msi=26.3.100.34058:client");
    assert!(
        error.contains("0 valid signature(s) of the 1 required"),
        "{error}"
    );
    // A root one key short of its threshold.
    ok(
        dir,
        &[
            "root",
            "--out",
            "short.json",
            "--version",
            "1",
            "--root-key",
            "root1.key",
            "--root-public",
            &rogue,
            "--threshold",
            "2",
            "--release-public",
            &rel,
        ],
    );
    let short_pin = ok(dir, &["fingerprint", "short.json"]).trim().to_owned();
    let error = refused(
        dir,
        &["verify", "--pin", &short_pin, "--root", "short.json"],
    );
    assert!(
        error.contains("1 valid signature(s) of the 2 required"),
        "{error}"
    );
    // A root that is not the pinned one.
    let error = refused(dir, &["verify", "--pin", &pin, "--root", "short.json"]);
    assert!(error.contains("but this agent trusts"), "{error}");

    // Rotation: root 2 drops root key 1 for key 3; the old root's keys sign
    // it too. Signed by the new keys alone, it is refused.
    ok(dir, &["create", "root3.key"]);
    ok(
        dir,
        &[
            "root",
            "--out",
            "root-2.json",
            "--version",
            "2",
            "--root-key",
            "root2.key",
            "--root-key",
            "root3.key",
            "--threshold",
            "2",
            "--release-public",
            &rel,
            "--sign-with",
            "root1.key",
        ],
    );
    let rotated = ok(
        dir,
        &[
            "verify",
            "--pin",
            &pin,
            "--root",
            "root-1.json",
            "--root",
            "root-2.json",
        ],
    );
    assert!(rotated.contains("Root version 2 is trusted"), "{rotated}");
    ok(
        dir,
        &[
            "root",
            "--out",
            "root-2-rogue.json",
            "--version",
            "2",
            "--root-key",
            "root3.key",
            "--root-key",
            "rogue.key",
            "--threshold",
            "2",
            "--release-public",
            &rogue,
        ],
    );
    let error = refused(
        dir,
        &[
            "verify",
            "--pin",
            &pin,
            "--root",
            "root-1.json",
            "--root",
            "root-2-rogue.json",
        ],
    );
    assert!(error.contains("by the previous root's keys"), "{error}");
}
