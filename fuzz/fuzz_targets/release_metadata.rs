//! The release metadata verifier (`common/src/trust`): arbitrary bytes as
//! signed metadata against a fixed root generated at start. The first byte
//! picks what the rest is:
//!
//! - 0: a release envelope (JSON) checked from the pinned root to the
//!   installer, as an agent does before it runs one;
//! - 1: the payload of release metadata, signed by the release key, so the
//!   fuzzer reaches what comes after the signature check;
//! - 2: the payload of a next root (rotation), signed by the root key;
//! - 3: payloads of a chain of roots (separated by `@NEXT`), each signed
//!   by the root key, the first one pinned;
//! - 4: a chain of root envelopes (a JSON array) from the pin;
//! - 5: what an agent remembers as seen (`Seen`, JSON).
//!
//! In payloads, `@RK`/`@RP` become the root key's id/public key, `@LK`/`@LP`
//! the release key's, `@PIN` the root's fingerprint and `@CAT` the
//! catalogue's SHA-256, so the fuzzer can name the real keys.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use tierwise_common::trust::{
    check_installer, check_step_installer, generate_key, trusted_root, verify_metadata,
    verify_release, Envelope, Fetched, KeyPair, Seen, StepInstaller,
};

const NOW: i64 = 1_780_000_000_000;
const CATALOGUE: &str = "[[release]]\nversion = \"26.3.100.34058\"\n";

struct Fixed {
    root_key: KeyPair,
    release_key: KeyPair,
    root: Envelope,
    pin: String,
    catalogue_sha256: String,
}

fn fixed() -> &'static Fixed {
    static FIXED: OnceLock<Fixed> = OnceLock::new();
    FIXED.get_or_init(|| {
        let root_key = generate_key().expect("a key");
        let release_key = generate_key().expect("a key");
        let payload = format!(
            r#"{{"type":"root","version":1,"expires_ms":{},"keys":{{"{}":"{}","{}":"{}"}},"root":{{"keyids":["{}"],"threshold":1}},"release":{{"keyids":["{}"],"threshold":1}}}}"#,
            NOW + 365 * 86_400_000,
            root_key.key_id(),
            root_key.public_hex(),
            release_key.key_id(),
            release_key.public_hex(),
            root_key.key_id(),
            release_key.key_id(),
        );
        let mut root = Envelope {
            payload,
            signatures: Vec::new(),
        };
        root_key.sign(&mut root);
        let pin = root.fingerprint();
        let catalogue_sha256 = Envelope {
            payload: CATALOGUE.into(),
            signatures: Vec::new(),
        }
        .fingerprint();
        Fixed {
            root_key,
            release_key,
            root,
            pin,
            catalogue_sha256,
        }
    })
}

fn expand(text: &str, f: &Fixed) -> String {
    text.replace("@RK", &f.root_key.key_id())
        .replace("@RP", &f.root_key.public_hex())
        .replace("@LK", &f.release_key.key_id())
        .replace("@LP", &f.release_key.public_hex())
        .replace("@PIN", &f.pin)
        .replace("@CAT", &f.catalogue_sha256)
}

fn signed(payload: String, key: &KeyPair) -> Envelope {
    let mut envelope = Envelope {
        payload,
        signatures: Vec::new(),
    };
    key.sign(&mut envelope);
    envelope
}

/// Everything an agent does with release metadata from the pinned root.
fn check_release(f: &Fixed, release: &Envelope, seen: &Seen) {
    let roots = [f.root.clone()];
    let fetched = Fetched {
        roots: &roots,
        release,
        catalogue: CATALOGUE,
    };
    if let Ok(verified) = verify_metadata(&f.pin, &fetched, NOW, seen) {
        let installer = StepInstaller {
            release: "26.3.100.34058".parse().expect("a version"),
            component: "client",
            sha256: "ab",
            length: 1000,
        };
        let _ = check_step_installer(&verified, &installer);
        for signed in &verified.release.installers {
            let _ = check_installer(
                &verified.release,
                &signed.release,
                &signed.component,
                &signed.sha256,
                signed.length,
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let f = fixed();
    match mode % 6 {
        0 => {
            if let Ok(release) = Envelope::parse(text) {
                check_release(f, &release, &Seen::default());
            }
        }
        1 => {
            let release = signed(expand(text, f), &f.release_key);
            check_release(f, &release, &Seen::default());
            // Against what was seen before: rollback checks.
            let root = trusted_root(&f.pin, std::slice::from_ref(&f.root), NOW, None)
                .expect("the fixed root verifies");
            let _ = verify_release(&root, &release, NOW, Some((u64::MAX, "x")));
            let _ = verify_release(&root, &release, i64::MIN, Some((0, "")));
            let _ = verify_release(&root, &release, i64::MAX, None);
        }
        2 => {
            let next = signed(expand(text, f), &f.root_key);
            let chain = [f.root.clone(), next];
            let _ = trusted_root(&f.pin, &chain, NOW, None);
            let _ = trusted_root(&f.pin, &chain, NOW, Some(u64::MAX));
        }
        3 => {
            // Roots separated by `@NEXT`, each signed by the root key; the
            // first is pinned.
            let chain: Vec<Envelope> = text
                .split("@NEXT")
                .take(8)
                .map(|payload| signed(expand(payload, f), &f.root_key))
                .collect();
            let pin = chain[0].fingerprint();
            let _ = trusted_root(&pin, &chain, NOW, None);
            let _ = trusted_root(&pin, &chain, NOW, Some(u64::MAX));
        }
        4 => {
            if let Ok(chain) = serde_json::from_str::<Vec<Envelope>>(text) {
                let _ = trusted_root(&f.pin, &chain, NOW, None);
            }
        }
        _ => {
            if let Ok(seen) = serde_json::from_str::<Seen>(text) {
                if let Ok(seen) = seen.under(&f.pin) {
                    let release = signed(
                        format!(
                            r#"{{"type":"release","version":3,"expires_ms":{},"catalogue_sha256":"{}","installers":[]}}"#,
                            NOW + 1,
                            f.catalogue_sha256
                        ),
                        &f.release_key,
                    );
                    check_release(f, &release, &seen);
                }
            }
        }
    }
});
