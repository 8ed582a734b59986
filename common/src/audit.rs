//! The audit log as a hash chain: each entry holds the SHA-256 of the one
//! before and its own, over its number, time, actor, action, subject and
//! details. Changing, removing or reordering an entry breaks every hash
//! after it; `tierwise audit verify` recomputes the chain from what the
//! controller returns, and a copy kept elsewhere (`audit --json --follow`
//! into a SIEM) shows what the chain was.

use sha2::{Digest, Sha256};

/// The "previous hash" of the first entry of a chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One entry, as stored and as shown.
#[derive(Clone, Copy, Debug)]
pub struct Link<'a> {
    pub seq: i64,
    pub at_ms: i64,
    pub actor: &'a str,
    pub action: &'a str,
    pub subject: &'a str,
    pub details: &'a str,
    /// Empty for entries written before the log was chained.
    pub prev_sha256: &'a str,
    pub sha256: &'a str,
}

/// The hash of an entry that follows `prev_sha256`. Every field is length
/// prefixed, so no two different entries encode alike.
pub fn entry_sha256(
    prev_sha256: &str,
    seq: i64,
    at_ms: i64,
    actor: &str,
    action: &str,
    subject: &str,
    details: &str,
) -> String {
    let mut hash = Sha256::new();
    hash.update(b"tierwise audit v1");
    for field in [
        prev_sha256.as_bytes(),
        &seq.to_be_bytes(),
        &at_ms.to_be_bytes(),
        actor.as_bytes(),
        action.as_bytes(),
        subject.as_bytes(),
        details.as_bytes(),
    ] {
        hash.update((field.len() as u64).to_be_bytes());
        hash.update(field);
    }
    crate::hex(&hash.finalize())
}

/// What a verification found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Entries from before the log was chained (not verifiable).
    pub unchained: usize,
    /// Entries whose hashes hold.
    pub chained: usize,
    /// The last entry's number and hash: note them to compare later.
    pub head: Option<(i64, String)>,
}

/// Where the chain breaks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("entry {seq} does not follow entry {before}: an entry between them was removed, or the log was reordered")]
    Gap { before: i64, seq: i64 },
    #[error("entry {seq} does not name the hash of the entry before it: an earlier entry was changed or removed, or its hash blanked")]
    Link { seq: i64 },
    #[error("entry {seq} does not match its hash: it was changed after it was written")]
    Content { seq: i64 },
    #[error("entry {seq} has no hash, but the log was chained before it: it was inserted by hand, or its hash removed")]
    Unhashed { seq: i64 },
    #[error("the log starts at entry {seq}, not 1: the entries before it were removed")]
    Start { seq: i64 },
}

/// Checks entries in order (oldest first), one page at a time if need
/// be. Entries without hashes may only come first (from before the log
/// was chained); the first chained entry must follow them directly (or be
/// entry 1) and name `GENESIS` as the hash before it, so entries removed or
/// unhashed at the start are found too.
#[derive(Clone, Debug, Default)]
pub struct Verifier {
    unchained: usize,
    chained: usize,
    /// The last entry seen: its number, and its hash if chained.
    last: Option<(i64, String)>,
}

impl Verifier {
    pub fn push(&mut self, link: &Link<'_>) -> Result<(), ChainBreak> {
        let expected_seq = self.last.as_ref().map_or(1, |(seq, _)| seq + 1);
        // Entries from before the chain were numbered by the database,
        // which may have skipped numbers (PostgreSQL does on a rollback):
        // they only have to come in order.
        let unchained_in_order =
            link.sha256.is_empty() && self.chained == 0 && link.seq >= expected_seq;
        if link.seq != expected_seq && !unchained_in_order {
            return Err(match &self.last {
                Some((before, _)) => ChainBreak::Gap {
                    before: *before,
                    seq: link.seq,
                },
                None => ChainBreak::Start { seq: link.seq },
            });
        }
        if link.sha256.is_empty() {
            if self.chained > 0 {
                return Err(ChainBreak::Unhashed { seq: link.seq });
            }
            self.unchained += 1;
            self.last = Some((link.seq, String::new()));
            return Ok(());
        }
        let before = match &self.last {
            Some((_, hash)) if !hash.is_empty() => hash.as_str(),
            _ => GENESIS,
        };
        if link.prev_sha256 != before {
            return Err(ChainBreak::Link { seq: link.seq });
        }
        let expected = entry_sha256(
            link.prev_sha256,
            link.seq,
            link.at_ms,
            link.actor,
            link.action,
            link.subject,
            link.details,
        );
        if expected != link.sha256 {
            return Err(ChainBreak::Content { seq: link.seq });
        }
        self.chained += 1;
        self.last = Some((link.seq, link.sha256.to_owned()));
        Ok(())
    }

    pub fn finish(self) -> Verified {
        Verified {
            unchained: self.unchained,
            chained: self.chained,
            head: self.last.filter(|(_, hash)| !hash.is_empty()),
        }
    }
}

/// Checks a whole log (see `Verifier`).
pub fn verify(links: &[Link<'_>]) -> Result<Verified, ChainBreak> {
    let mut verifier = Verifier::default();
    for link in links {
        verifier.push(link)?;
    }
    Ok(verifier.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Entry {
        seq: i64,
        details: String,
        prev: String,
        sha: String,
    }

    fn chain(n: i64) -> Vec<Entry> {
        chain_from(1, n)
    }

    /// A chain whose first entry is number `first` (entries before it are
    /// from before the log was chained).
    fn chain_from(first: i64, n: i64) -> Vec<Entry> {
        let mut prev = GENESIS.to_owned();
        (first..first + n)
            .map(|seq| {
                let details = format!("change {seq}");
                let sha = entry_sha256(
                    &prev,
                    seq,
                    seq * 10,
                    "admin",
                    "rollout start",
                    "prod",
                    &details,
                );
                let entry = Entry {
                    seq,
                    details,
                    prev: prev.clone(),
                    sha: sha.clone(),
                };
                prev = sha;
                entry
            })
            .collect()
    }

    fn links(entries: &[Entry]) -> Vec<Link<'_>> {
        entries
            .iter()
            .map(|e| Link {
                seq: e.seq,
                at_ms: e.seq * 10,
                actor: "admin",
                action: "rollout start",
                subject: "prod",
                details: &e.details,
                prev_sha256: &e.prev,
                sha256: &e.sha,
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies_and_names_its_head() {
        let entries = chain(5);
        let verified = verify(&links(&entries)).unwrap();
        assert_eq!((verified.unchained, verified.chained), (0, 5));
        assert_eq!(verified.head, Some((5, entries[4].sha.clone())));
        assert_eq!(verify(&[]).unwrap().head, None);
    }

    #[test]
    fn every_kind_of_tampering_is_found() {
        let entries = chain(5);
        let mut changed = links(&entries);
        changed[2].details = "something else";
        assert_eq!(verify(&changed), Err(ChainBreak::Content { seq: 3 }));

        let mut removed = links(&entries);
        removed.remove(2);
        assert_eq!(verify(&removed), Err(ChainBreak::Gap { before: 2, seq: 4 }));

        let mut swapped = links(&entries);
        swapped.swap(1, 2);
        assert!(verify(&swapped).is_err());

        // Rewriting one entry with a fresh hash still breaks the next link.
        let mut entries = chain(5);
        entries[2].details = "rewritten".into();
        entries[2].sha = entry_sha256(
            &entries[2].prev,
            3,
            30,
            "admin",
            "rollout start",
            "prod",
            "rewritten",
        );
        assert_eq!(verify(&links(&entries)), Err(ChainBreak::Link { seq: 4 }));

        // Only the oldest entries may lack a hash.
        let entries = chain(3);
        let mut inserted = links(&entries);
        inserted.insert(
            2,
            Link {
                seq: 3,
                at_ms: 0,
                actor: "x",
                action: "x",
                subject: "x",
                details: "x",
                prev_sha256: "",
                sha256: "",
            },
        );
        assert_eq!(verify(&inserted), Err(ChainBreak::Unhashed { seq: 3 }));
        let later = chain_from(2, 3);
        let mut legacy = vec![Link {
            seq: 1,
            at_ms: 0,
            actor: "admin",
            action: "operator add",
            subject: "vera",
            details: "",
            prev_sha256: "",
            sha256: "",
        }];
        legacy.extend(links(&later));
        assert_eq!(verify(&legacy).unwrap().unchained, 1);
    }

    #[test]
    fn entries_removed_or_unhashed_at_the_start_are_found() {
        let entries = chain(5);
        let all = links(&entries);
        assert_eq!(verify(&all[2..]), Err(ChainBreak::Start { seq: 3 }));
        // Their hashes blanked so that they pass for entries from before
        // the chain: the first hashed one does not follow from GENESIS.
        let mut blanked = links(&entries);
        for link in &mut blanked[..2] {
            link.sha256 = "";
            link.prev_sha256 = "";
        }
        assert_eq!(verify(&blanked), Err(ChainBreak::Link { seq: 3 }));
        // Page by page gives the same answer as all at once.
        let mut verifier = Verifier::default();
        for link in &all {
            verifier.push(link).unwrap();
        }
        assert_eq!(verifier.finish(), verify(&all).unwrap());
    }
}
