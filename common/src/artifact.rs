//! Installers in the controller's store, as the catalogue of files an
//! operator manages: what may be removed and what an import of the release
//! catalogue would change. Decisions only; the controller loads the rows
//! and applies what comes back.

use crate::rollout::RolloutState;
use crate::{Catalogue, Version};

/// A rollout, as far as the installers it needs go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutNeed<'a> {
    pub id: &'a str,
    pub state: RolloutState,
    pub target: Version,
}

/// Why an installer of `release` cannot be removed now: the first rollout
/// that may still install it (running, paused, waiting or halted — a
/// halted one can be resumed), with what to do about it.
pub fn removal_blocker(release: Version, rollouts: &[RolloutNeed<'_>]) -> Option<String> {
    let needing = rollouts
        .iter()
        .find(|r| !r.state.is_final() && r.target == release)?;
    Some(format!(
        "rollout {} ({}) to {release} may still install it; let it finish or `tierwise rollout abort {}` first",
        needing.id,
        needing.state.as_str(),
        needing.id
    ))
}

/// The one SHA-256 among `known` that `text` names, in full or by a prefix
/// of at least 8 hexadecimal digits (as operators copy them from a list).
pub fn resolve_sha256<'a>(
    text: &str,
    known: impl IntoIterator<Item = &'a str>,
) -> Result<String, String> {
    let prefix = text.trim().to_ascii_lowercase();
    if prefix.len() < 8 || prefix.len() > 64 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "`{text}` is no SHA-256: give its 64 hexadecimal digits, or at least the first 8, \
             as `tierwise artifacts list` shows them"
        ));
    }
    let mut matches: Vec<&str> = known
        .into_iter()
        .filter(|sha| sha.starts_with(&prefix))
        .collect();
    matches.sort_unstable();
    matches.dedup();
    match matches.as_slice() {
        [one] => Ok((*one).to_owned()),
        [] => Err(format!(
            "no stored installer has the SHA-256 `{prefix}…`; `tierwise artifacts list` shows them"
        )),
        many => Err(format!(
            "`{prefix}` is the start of {} SHA-256s ({}); give more digits",
            many.len(),
            many.join(", ")
        )),
    }
}

/// What replacing the catalogue in force with another one changes, by
/// release, each list in version order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CatalogueChanges {
    pub added: Vec<Version>,
    pub changed: Vec<Version>,
    pub removed: Vec<Version>,
}

impl CatalogueChanges {
    pub fn between(previous: &Catalogue, next: &Catalogue) -> Self {
        let mut changes = Self::default();
        for release in next.releases() {
            match previous.get(release.version) {
                None => changes.added.push(release.version),
                Some(old) if old != release => changes.changed.push(release.version),
                Some(_) => {}
            }
        }
        changes.removed = previous
            .releases()
            .iter()
            .map(|r| r.version)
            .filter(|v| next.get(*v).is_none())
            .collect();
        changes
    }

    /// An import that removes releases goes ahead only when the operator
    /// said so; the refusal names them and the flag.
    pub fn refusal(&self, allow_remove: bool) -> Option<String> {
        if allow_remove || self.removed.is_empty() {
            return None;
        }
        let names: Vec<String> = self.removed.iter().map(Version::to_string).collect();
        Some(format!(
            "the import would remove {} release(s) from the catalogue: {}; check the file, \
             or pass --allow-remove to remove them; nothing was imported",
            names.len(),
            names.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).expect("a version")
    }

    fn catalogue(releases: &[(&str, &str)]) -> Catalogue {
        let mut text = String::new();
        for (version, released) in releases {
            text.push_str(&format!(
                "[[release]]\nversion = \"{version}\"\nreleased = \"{released}\"\n\n"
            ));
        }
        Catalogue::parse(&text, "test").expect("a catalogue")
    }

    #[test]
    fn a_rollout_that_can_still_run_keeps_its_release_installers() {
        for state in [
            RolloutState::Running,
            RolloutState::Paused,
            RolloutState::WaitingForApproval,
            RolloutState::WaitingForOperator,
            RolloutState::Failed,
        ] {
            let rollouts = [RolloutNeed {
                id: "r-1",
                state,
                target: v("9.1.0.1"),
            }];
            let reason = removal_blocker(v("9.1.0.1"), &rollouts).expect("refused");
            assert!(reason.contains("rollout r-1"), "{reason}");
            assert!(reason.contains(state.as_str()), "{reason}");
            assert!(reason.contains("tierwise rollout abort r-1"), "{reason}");
            assert_eq!(removal_blocker(v("9.2.0.1"), &rollouts), None);
        }
    }

    #[test]
    fn ended_rollouts_need_nothing() {
        for state in [RolloutState::Completed, RolloutState::Aborted] {
            let rollouts = [RolloutNeed {
                id: "r-1",
                state,
                target: v("9.1.0.1"),
            }];
            assert_eq!(removal_blocker(v("9.1.0.1"), &rollouts), None);
        }
    }

    #[test]
    fn a_sha256_is_named_in_full_or_by_an_unambiguous_prefix() {
        let a = "ab".repeat(32);
        let b = format!("abababab{}", "cd".repeat(28));
        let known = [a.as_str(), b.as_str(), a.as_str()];
        assert_eq!(resolve_sha256(&a.to_uppercase(), known), Ok(a.clone()));
        assert_eq!(resolve_sha256("ababababcd", known), Ok(b.clone()));
        let ambiguous = resolve_sha256("abababab", known).expect_err("ambiguous");
        assert!(ambiguous.contains("2 SHA-256s"), "{ambiguous}");
        let unknown = resolve_sha256("00000000", known).expect_err("unknown");
        assert!(unknown.contains("artifacts list"), "{unknown}");
        for bad in ["abab", "zzzzzzzzzz", "", &"a".repeat(65)] {
            let error = resolve_sha256(bad, known).expect_err("refused");
            assert!(error.contains("no SHA-256"), "{error}");
        }
    }

    #[test]
    fn changes_list_added_changed_and_removed_releases() {
        let before = catalogue(&[("9.0.0.1", "2026-01-01"), ("9.1.0.1", "2026-02-01")]);
        let after = catalogue(&[("9.1.0.1", "2026-02-02"), ("9.2.0.1", "2026-03-01")]);
        let changes = CatalogueChanges::between(&before, &after);
        assert_eq!(changes.added, vec![v("9.2.0.1")]);
        assert_eq!(changes.changed, vec![v("9.1.0.1")]);
        assert_eq!(changes.removed, vec![v("9.0.0.1")]);
        let refusal = changes.refusal(false).expect("refused");
        assert!(refusal.contains("remove 1 release(s)"), "{refusal}");
        assert!(refusal.contains("9.0.0.1"), "{refusal}");
        assert!(refusal.contains("--allow-remove"), "{refusal}");
        assert_eq!(changes.refusal(true), None);
        assert_eq!(
            CatalogueChanges::between(&before, &before),
            CatalogueChanges::default()
        );
        assert_eq!(
            CatalogueChanges::between(&before, &before).refusal(false),
            None
        );
    }
}
