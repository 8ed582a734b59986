//! The metadata attacks, each refused with its reason: a tampered
//! catalogue or installer list, expired metadata, a rolled-back version,
//! an installer of another release, a key the root does not certify, a
//! root threshold not met, a root that is not the pinned one, and root
//! rotation done right and wrong.

use super::super::*;
use super::*;

const NOW: i64 = 1_800_000_000_000;
const DAY: i64 = 86_400_000;

struct Keys {
    root: Vec<KeyPair>,
    release: Vec<KeyPair>,
}

fn keys() -> Keys {
    Keys {
        root: (0..3).map(|_| generate_key().unwrap()).collect(),
        release: (0..2).map(|_| generate_key().unwrap()).collect(),
    }
}

fn root_doc(version: u64, root: &[&KeyPair], threshold: u32, release: &[&KeyPair]) -> Root {
    let mut keys = BTreeMap::new();
    for key in root.iter().chain(release) {
        keys.insert(key.key_id(), key.public_hex());
    }
    Root {
        kind: "root".into(),
        version,
        expires_ms: NOW + 365 * DAY,
        keys,
        root: RoleKeys {
            keyids: root.iter().map(|k| k.key_id()).collect(),
            threshold,
        },
        release: RoleKeys {
            keyids: release.iter().map(|k| k.key_id()).collect(),
            threshold: 1,
        },
    }
}

fn envelope<T: serde::Serialize>(doc: &T, signers: &[&KeyPair]) -> Envelope {
    let mut envelope = Envelope {
        payload: serde_json::to_string(doc).unwrap(),
        signatures: Vec::new(),
    };
    for key in signers {
        key.sign(&mut envelope);
    }
    envelope
}

fn release_doc(version: u64) -> Release {
    Release {
        kind: "release".into(),
        version,
        expires_ms: NOW + 7 * DAY,
        catalogue_sha256: "c".repeat(64),
        installers: vec![
            SignedInstaller {
                release: "26.3.100.34058".into(),
                component: "client".into(),
                sha256: "a".repeat(64),
                length: 1000,
            },
            SignedInstaller {
                release: "26.3.100.34058".into(),
                component: "server".into(),
                sha256: "b".repeat(64),
                length: 2000,
            },
        ],
    }
}

/// A root v1 signed by two of three root keys (threshold 2).
fn setup() -> (Keys, Envelope, String) {
    let k = keys();
    let root = root_doc(
        1,
        &[&k.root[0], &k.root[1], &k.root[2]],
        2,
        &[&k.release[0]],
    );
    let signed = envelope(&root, &[&k.root[0], &k.root[1]]);
    let pin = signed.fingerprint();
    (k, signed, pin)
}

#[test]
fn a_good_chain_verifies_and_an_installer_matches() {
    let (k, root, pin) = setup();
    let trusted = trusted_root(&pin, std::slice::from_ref(&root), NOW, None).unwrap();
    let release = envelope(&release_doc(3), &[&k.release[0]]);
    let release = verify_release(&trusted, &release, NOW, Some((2, "x"))).unwrap();
    check_installer(
        &release.release,
        "26.3.100.34058",
        "client",
        &"A".repeat(64),
        1000,
    )
    .unwrap();
    // The same version again, the same bytes: fine.
    let again = envelope(&release_doc(3), &[&k.release[0]]);
    verify_release(&trusted, &again, NOW, Some((3, &release.payload_sha256))).unwrap();
    // Keys round-trip through their stored form.
    let copy = KeyPair::from_pkcs8_hex(k.release[0].to_pkcs8_hex()).unwrap();
    assert_eq!(copy.key_id(), k.release[0].key_id());
}

#[test]
fn a_root_that_is_not_the_pinned_one_or_short_of_its_threshold_is_refused() {
    let (k, root, pin) = setup();
    let other = envelope(
        &root_doc(
            1,
            &[&k.root[0], &k.root[1], &k.root[2]],
            2,
            &[&k.release[1]],
        ),
        &[&k.root[0], &k.root[1]],
    );
    assert!(matches!(
        trusted_root(&pin, &[other], NOW, None),
        Err(TrustError::RootFingerprint { .. })
    ));
    // One signature of the two the threshold needs.
    let doc = root_doc(
        1,
        &[&k.root[0], &k.root[1], &k.root[2]],
        2,
        &[&k.release[0]],
    );
    let short = envelope(&doc, &[&k.root[0]]);
    let error = trusted_root(
        &short.fingerprint(),
        std::slice::from_ref(&short),
        NOW,
        None,
    )
    .unwrap_err();
    assert!(
        matches!(
            error,
            TrustError::Threshold {
                have: 1,
                need: 2,
                ..
            }
        ),
        "{error}"
    );
    // The same key twice is one signature.
    let mut twice = short.clone();
    twice.signatures.push(twice.signatures[0].clone());
    assert!(trusted_root(&twice.fingerprint(), &[twice], NOW, None).is_err());
    let _ = root;
}

#[test]
fn tampered_metadata_is_refused() {
    let (k, root, pin) = setup();
    let trusted = trusted_root(&pin, &[root], NOW, None).unwrap();
    // The catalogue's hash changed after signing.
    let mut release = envelope(&release_doc(3), &[&k.release[0]]);
    release.payload = release.payload.replace(&"c".repeat(64), &"d".repeat(64));
    let error = verify_release(&trusted, &release, NOW, None).unwrap_err();
    assert!(
        matches!(error, TrustError::Threshold { have: 0, .. }),
        "{error}"
    );
    // An installer's hash changed after signing.
    let mut release = envelope(&release_doc(3), &[&k.release[0]]);
    release.payload = release.payload.replace(&"a".repeat(64), &"e".repeat(64));
    assert!(verify_release(&trusted, &release, NOW, None).is_err());
    // An installer that is not in the signed list at all.
    let good = verify_release(
        &trusted,
        &envelope(&release_doc(3), &[&k.release[0]]),
        NOW,
        None,
    )
    .unwrap();
    let error = check_installer(
        &good.release,
        "26.3.100.34058",
        "client",
        &"e".repeat(64),
        1000,
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("not in the signed release metadata"),
        "{error}"
    );
    let error = check_installer(
        &good.release,
        "26.3.100.34058",
        "client",
        &"a".repeat(64),
        999,
    )
    .unwrap_err();
    assert!(
        error.to_string().contains("signed with 1000 bytes"),
        "{error}"
    );
}

#[test]
fn expired_and_rolled_back_metadata_is_refused() {
    let (k, root, pin) = setup();
    let trusted = trusted_root(&pin, std::slice::from_ref(&root), NOW, None).unwrap();
    let release = envelope(&release_doc(3), &[&k.release[0]]);
    assert!(matches!(
        verify_release(&trusted, &release, NOW + 8 * DAY, None),
        Err(TrustError::Expired { .. })
    ));
    assert!(matches!(
        trusted_root(&pin, &[root], NOW + 366 * DAY, None),
        Err(TrustError::Expired { .. })
    ));
    let error = verify_release(&trusted, &release, NOW, Some((4, "x"))).unwrap_err();
    assert!(
        matches!(
            error,
            TrustError::Rollback {
                seen: 4,
                got: 3,
                ..
            }
        ),
        "{error}"
    );
    // The same version with other content is refused too.
    assert!(matches!(
        verify_release(&trusted, &release, NOW, Some((3, "other"))),
        Err(TrustError::Rollback { .. })
    ));
}

#[test]
fn an_installer_of_another_release_or_component_is_refused() {
    let (k, root, pin) = setup();
    let trusted = trusted_root(&pin, &[root], NOW, None).unwrap();
    let good = verify_release(
        &trusted,
        &envelope(&release_doc(3), &[&k.release[0]]),
        NOW,
        None,
    )
    .unwrap();
    let error = check_installer(
        &good.release,
        "26.4.10.34111",
        "client",
        &"a".repeat(64),
        1000,
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("is signed for client 26.3.100.34058, not for client 26.4.10.34111"),
        "{error}"
    );
    let error = check_installer(
        &good.release,
        "26.3.100.34058",
        "client",
        &"b".repeat(64),
        2000,
    )
    .unwrap_err();
    assert!(error.to_string().contains("signed for server"), "{error}");
}

#[test]
fn a_key_the_root_does_not_certify_does_not_count() {
    let (k, root, pin) = setup();
    let trusted = trusted_root(&pin, &[root], NOW, None).unwrap();
    // Signed by the second release key, which root v1 does not certify,
    // and by a root key (not a release key).
    let release = envelope(&release_doc(3), &[&k.release[1], &k.root[0]]);
    let error = verify_release(&trusted, &release, NOW, None).unwrap_err();
    assert!(
        matches!(
            error,
            TrustError::Threshold {
                have: 0,
                need: 1,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn rotation_needs_the_old_and_the_new_root_keys_in_order() {
    let (k, v1, pin) = setup();
    let new_root_key = generate_key().unwrap();
    // v2: root keys 1, 2 and a new one; release key 2 replaces key 1.
    let v2_doc = root_doc(
        2,
        &[&k.root[1], &k.root[2], &new_root_key],
        2,
        &[&k.release[1]],
    );
    let v2 = envelope(&v2_doc, &[&k.root[0], &k.root[1], &new_root_key]);
    let trusted = trusted_root(&pin, &[v1.clone(), v2.clone()], NOW, None).unwrap();
    assert_eq!(trusted.version, 2);
    // Once root 2 is trusted, a chain cut short at root 1 (whose retired
    // release key may have leaked) is refused.
    assert!(matches!(
        trusted_root(&pin, std::slice::from_ref(&v1), NOW, Some(2)),
        Err(TrustError::Rollback {
            seen: 2,
            got: 1,
            ..
        })
    ));
    let release = envelope(&release_doc(5), &[&k.release[1]]);
    verify_release(&trusted, &release, NOW, None).unwrap();
    // The retired release key no longer counts.
    let old = envelope(&release_doc(5), &[&k.release[0]]);
    assert!(verify_release(&trusted, &old, NOW, None).is_err());

    // Signed only by the new keys: the old root did not agree.
    let rogue = envelope(&v2_doc, &[&k.root[2], &new_root_key]);
    let error = trusted_root(&pin, &[v1.clone(), rogue], NOW, None).unwrap_err();
    assert!(
        error.to_string().contains("by the previous root's keys"),
        "{error}"
    );
    // A skipped version.
    let v3 = envelope(
        &root_doc(
            3,
            &[&k.root[0], &k.root[1], &k.root[2]],
            2,
            &[&k.release[0]],
        ),
        &[&k.root[0], &k.root[1]],
    );
    assert!(matches!(
        trusted_root(&pin, &[v1, v3], NOW, None),
        Err(TrustError::RootGap {
            previous: 1,
            got: 3
        })
    ));
}

#[test]
fn a_root_whose_threshold_cannot_be_met_is_malformed() {
    let k = keys();
    let doc = root_doc(1, &[&k.root[0]], 2, &[&k.release[0]]);
    let signed = envelope(&doc, &[&k.root[0]]);
    assert!(matches!(
        trusted_root(&signed.fingerprint(), &[signed], NOW, None),
        Err(TrustError::Malformed(_))
    ));
}

const CATALOGUE: &str = "[[release]]\nversion = \"26.3.100.34058\"\n";

fn sha(text: &str) -> String {
    use sha2::{Digest, Sha256};
    crate::hex(&Sha256::digest(text.as_bytes()))
}

/// Release metadata for `CATALOGUE` with one client installer.
fn signed_for_catalogue(k: &Keys, version: u64) -> Envelope {
    let mut doc = release_doc(version);
    doc.catalogue_sha256 = sha(CATALOGUE);
    envelope(&doc, &[&k.release[0]])
}

fn client_installer(sha256: &str) -> super::super::StepInstaller<'_> {
    super::super::StepInstaller {
        release: "26.3.100.34058".parse().unwrap(),
        component: "client",
        sha256,
        length: 1000,
    }
}

#[test]
fn a_step_is_checked_from_the_pin_to_the_installer_and_remembers_what_it_trusted() {
    use super::super::{Fetched, Seen};
    let (k, root, pin) = setup();
    let roots = [root];
    let release = signed_for_catalogue(&k, 4);
    let fetched = Fetched {
        roots: &roots,
        release: &release,
        catalogue: CATALOGUE,
    };
    let a = "a".repeat(64);
    let seen = check_step(&pin, &fetched, &client_installer(&a), NOW, &Seen::default()).unwrap();
    assert_eq!(seen.root_version, Some(1));
    assert_eq!(seen.release_version, Some(4));
    // Once version 4 was trusted, version 3 is a rollback.
    let older = signed_for_catalogue(&k, 3);
    let error = check_step(
        &pin,
        &Fetched {
            release: &older,
            ..fetched.clone()
        },
        &client_installer(&a),
        NOW,
        &seen,
    )
    .unwrap_err();
    assert!(matches!(error, TrustError::Rollback { .. }), "{error}");
    // A catalogue changed by one byte is not the signed one.
    let tampered = CATALOGUE.replace("34058", "34059");
    let error = check_step(
        &pin,
        &Fetched {
            catalogue: &tampered,
            ..fetched.clone()
        },
        &client_installer(&a),
        NOW,
        &seen,
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("is not the one release metadata version 4 was signed for"),
        "{error}"
    );
    // The server's installer offered for a client step: mix and match.
    let b = "b".repeat(64);
    let error = check_step(&pin, &fetched, &client_installer(&b), NOW, &seen).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("signed for server 26.3.100.34058, not for client"),
        "{error}"
    );
    // A release the signed catalogue does not list.
    let mut other = client_installer(&a);
    other.release = "26.4.10.34111".parse().unwrap();
    let error = check_step(&pin, &fetched, &other, NOW, &seen).unwrap_err();
    assert!(
        error.to_string().contains("not in the signed catalogue"),
        "{error}"
    );
}

#[test]
fn a_plan_with_unsigned_installers_is_blocked_unless_unsigned_releases_are_allowed() {
    use super::super::{signing_finding, SigningInput};
    use crate::fixtures::{client, licence, password_secure_catalogue};
    use crate::plan::{plan, PlanRequest};
    use crate::rules::{Rule, Severity};
    use crate::{Check, ClientWaves, ProbedVersion, Role};
    let v = |t: &str| t.parse::<crate::Version>().unwrap();
    let hosts = vec![
        crate::fixtures::server(
            "srv",
            "prod",
            v("26.3.100.34058"),
            &[("DB", true, v("26.3.100.34058"))],
        ),
        client(
            "cl",
            "prod",
            ProbedVersion::Installed(v("9.3.1.33994")),
            Check::No,
        ),
    ];
    let catalogue = password_secure_catalogue();
    let planned = plan(&PlanRequest {
        installation: "prod",
        hosts: &hosts,
        catalogue: &catalogue,
        licence: Some(&licence("prod", "2026-12-31")),
        target: v("26.3.100.34058"),
        waves: &ClientWaves::parse("100%").unwrap(),
        web_packages: None,
    })
    .unwrap();
    assert!(!planned.blocked);
    let release = release_doc(1);
    let signed_client: std::collections::BTreeMap<Role, (String, u64)> =
        [(Role::Client, ("a".repeat(64), 1000))].into();
    let input = SigningInput {
        release: Ok(&release),
        catalogue_sha256: &"c".repeat(64),
        installers: &signed_client,
        allow_unsigned: false,
    };
    assert_eq!(signing_finding(&planned, &input), None);
    // Another file stored for the client than the one signed.
    let tampered: std::collections::BTreeMap<Role, (String, u64)> =
        [(Role::Client, ("d".repeat(64), 1000))].into();
    let finding = signing_finding(
        &planned,
        &SigningInput {
            installers: &tampered,
            ..input.clone()
        },
    )
    .unwrap();
    assert_eq!(
        (finding.severity, finding.rule),
        (Severity::Blocker, Rule::SignedRelease)
    );
    assert!(
        finding
            .reason
            .contains("is not in the signed release metadata"),
        "{}",
        finding.reason
    );
    let mut blocked = planned.clone();
    blocked.add_finding(finding);
    assert!(blocked.blocked);
    // No metadata, a catalogue other than the signed one.
    let none = signing_finding(
        &planned,
        &SigningInput {
            release: Err("no signed release metadata imported".into()),
            ..input.clone()
        },
    )
    .unwrap();
    assert!(none.reason.contains("no signed release metadata imported"));
    let other = signing_finding(
        &planned,
        &SigningInput {
            catalogue_sha256: &"e".repeat(64),
            ..input.clone()
        },
    )
    .unwrap();
    assert!(
        other.reason.contains("signed for another catalogue"),
        "{}",
        other.reason
    );
    // Allowed: a warning that says so, and the plan is not blocked.
    let allowed = signing_finding(
        &planned,
        &SigningInput {
            installers: &tampered,
            allow_unsigned: true,
            ..input
        },
    )
    .unwrap();
    assert_eq!(allowed.severity, Severity::Warning);
    assert!(allowed.reason.starts_with("UNSIGNED RELEASE ALLOWED"));
    let mut warned = planned;
    warned.add_finding(allowed);
    assert!(!warned.blocked);
}

#[test]
fn what_was_seen_counts_only_under_its_root_and_must_be_whole() {
    use super::super::Seen;
    let seen = Seen {
        root_fingerprint: Some("ab".repeat(32)),
        root_version: Some(2),
        release_version: Some(7),
        release_sha256: Some("c".repeat(64)),
    };
    assert_eq!(seen.clone().under(&"AB".repeat(32)), Ok(seen.clone()));
    // The agent was pinned to another root on purpose: start afresh.
    assert_eq!(seen.clone().under(&"cd".repeat(32)), Ok(Seen::default()));
    // A version without its hash would turn the rollback check off.
    let half = Seen {
        release_sha256: None,
        ..seen
    };
    assert!(half.under(&"ab".repeat(32)).is_err());
}

/// Both checks of a step, as an agent makes them; what to remember as seen.
fn check_step(
    pinned_root: &str,
    fetched: &super::super::Fetched<'_>,
    installer: &super::super::StepInstaller<'_>,
    now_ms: i64,
    seen: &super::super::Seen,
) -> Result<super::super::Seen, TrustError> {
    let verified = super::super::verify_metadata(pinned_root, fetched, now_ms, seen)?;
    super::super::check_step_installer(&verified, installer)?;
    Ok(verified.seen)
}

/// Found while writing the `release_metadata` fuzz target (whose chain mode
/// reproduces it): a root of version `u64::MAX` followed by any other root
/// overflowed `version + 1` — a panic with overflow checks, and without
/// them a wrap that let a root of version 0 follow.
#[test]
fn a_root_of_the_highest_version_has_no_next_one() {
    let k = keys();
    let last = root_doc(u64::MAX, &[&k.root[0]], 1, &[&k.release[0]]);
    let last = envelope(&last, &[&k.root[0]]);
    let pin = last.fingerprint();
    let next = envelope(
        &root_doc(0, &[&k.root[0]], 1, &[&k.release[0]]),
        &[&k.root[0]],
    );
    assert_eq!(
        trusted_root(&pin, &[last, next], NOW, None),
        Err(TrustError::RootGap {
            previous: u64::MAX,
            got: 0
        })
    );
}
