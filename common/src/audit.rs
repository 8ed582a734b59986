//! The audit log as a hash chain: each entry holds the hash of the one
//! before and its own, over its number, time, actor, action, subject and
//! details. Changing, removing or reordering an entry breaks every hash
//! after it.
//!
//! Three records make the chain hard to cut quietly:
//! - **where it begins** (`Start::chained_from`: entry 1 for a log created
//!   chained): every entry from there on must be hashed, so blanking hashes
//!   no longer passes them off as "from before the chain";
//! - **a key** (`Start::keyed_from` on): from there on an entry's hash is
//!   an HMAC-SHA256 with a key kept in the controller's data directory, not
//!   in the database, so recomputing the chain after a rewrite needs the
//!   key; the start record itself is bound to the key (`start_mac`);
//! - **the head published elsewhere** (`Head`, `SEQ:SHA256`): a head the
//!   operator kept, or one a notification or the controller's log carried,
//!   must still be in the log (`Verifier::expecting`), which finds entries
//!   cut from the end.
//!
//! `tierwise audit verify` checks the linkage and the unkeyed hashes on the
//! operator's side and has the controller (which holds the key) check the
//! keyed ones.

use ring::hmac;
use sha2::{Digest, Sha256};

/// The "previous hash" of the first entry of a chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Bytes in an audit key.
pub const KEY_BYTES: usize = 32;

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

/// The key of the chain's HMAC.
#[derive(Clone, Debug)]
pub struct Key(hmac::Key);

impl Key {
    /// A key from its bytes (`KEY_BYTES` of them, as the key file holds
    /// them in hex).
    pub fn new(bytes: &[u8]) -> Self {
        Key(hmac::Key::new(hmac::HMAC_SHA256, bytes))
    }

    /// The key as the key file holds it: one line of hex.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.len() != KEY_BYTES * 2 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "an audit key is {} hexadecimal digits on one line",
                KEY_BYTES * 2
            ));
        }
        let bytes: Vec<u8> = (0..text.len())
            .step_by(2)
            .filter_map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
            .collect();
        Ok(Key::new(&bytes))
    }
}

/// The fields of an entry, each length prefixed, so no two different
/// entries encode alike.
#[allow(clippy::too_many_arguments)] // The entry's fields, and where they go.
fn encode(
    out: &mut dyn FnMut(&[u8]),
    prev_sha256: &str,
    seq: i64,
    at_ms: i64,
    actor: &str,
    action: &str,
    subject: &str,
    details: &str,
) {
    for field in [
        prev_sha256.as_bytes(),
        &seq.to_be_bytes(),
        &at_ms.to_be_bytes(),
        actor.as_bytes(),
        action.as_bytes(),
        subject.as_bytes(),
        details.as_bytes(),
    ] {
        out(&(field.len() as u64).to_be_bytes());
        out(field);
    }
}

/// The unkeyed hash (SHA-256) of an entry that follows `prev_sha256`: the
/// rule for entries before the chain was keyed.
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
    encode(
        &mut |b| hash.update(b),
        prev_sha256,
        seq,
        at_ms,
        actor,
        action,
        subject,
        details,
    );
    crate::hex(&hash.finalize())
}

/// The keyed hash (HMAC-SHA256) of an entry that follows `prev_sha256`:
/// the rule from `Start::keyed_from` on.
#[allow(clippy::too_many_arguments)] // The entry's fields, as for entry_sha256.
pub fn entry_mac(
    key: &Key,
    prev_sha256: &str,
    seq: i64,
    at_ms: i64,
    actor: &str,
    action: &str,
    subject: &str,
    details: &str,
) -> String {
    let mut context = hmac::Context::with_key(&key.0);
    context.update(b"tierwise audit v2");
    encode(
        &mut |b| context.update(b),
        prev_sha256,
        seq,
        at_ms,
        actor,
        action,
        subject,
        details,
    );
    crate::hex(context.sign().as_ref())
}

/// Where the chain begins and where its keying began, as the store keeps
/// them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Start {
    /// The first entry that must be hashed: 1 for a log created chained;
    /// for a log upgraded from before the chain, its first chained entry.
    pub chained_from: i64,
    /// The first entry whose hash is keyed; 0 while the chain is not keyed.
    pub keyed_from: i64,
}

impl Default for Start {
    /// A log created chained and not (yet) keyed.
    fn default() -> Self {
        Start {
            chained_from: 1,
            keyed_from: 0,
        }
    }
}

impl Start {
    fn is_keyed(&self, seq: i64) -> bool {
        self.keyed_from > 0 && seq >= self.keyed_from
    }
}

/// The MAC binding the start record to the key: someone with the database
/// but not the key cannot move where the chain or its keying begins.
pub fn start_mac(key: &Key, start: &Start) -> String {
    let mut context = hmac::Context::with_key(&key.0);
    context.update(b"tierwise audit start v2");
    context.update(&start.chained_from.to_be_bytes());
    context.update(&start.keyed_from.to_be_bytes());
    crate::hex(context.sign().as_ref())
}

/// Whether two MACs (in hex) are the same, in time independent of where
/// they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

/// Whether `mac` is the start record's MAC under `key`.
pub fn check_start(key: &Key, start: &Start, mac: &str) -> Result<(), ChainBreak> {
    let expected = start_mac(key, start);
    if !same(&expected, mac) {
        return Err(ChainBreak::StartRecord {
            chained_from: start.chained_from,
            keyed_from: start.keyed_from,
        });
    }
    Ok(())
}

/// The chain's newest entry, as operators keep it and notifications and
/// the controller's log publish it: `SEQ:SHA256`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Head {
    pub seq: i64,
    pub sha256: String,
}

impl std::fmt::Display for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, self.sha256)
    }
}

impl std::str::FromStr for Head {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let wrong = || {
            format!(
                "{text:?} is not an audit head: give it as SEQ:SHA256, as `tierwise audit verify` prints it (e.g. 42:{})",
                &GENESIS[..8]
            )
        };
        let (seq, sha256) = text.trim().split_once(':').ok_or_else(wrong)?;
        let seq: i64 = seq.parse().map_err(|_| wrong())?;
        let sha256 = sha256.to_ascii_lowercase();
        if seq < 1 || !crate::is_sha256(&sha256) {
            return Err(wrong());
        }
        Ok(Head { seq, sha256 })
    }
}

/// What a verification found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Entries from before the log was chained (not verifiable).
    pub unchained: usize,
    /// Entries whose hashes hold (keyed ones included).
    pub chained: usize,
    /// Of those, entries with a keyed hash: checked with the key when the
    /// verifier had it, otherwise only their links.
    pub keyed: usize,
    /// The last entry's number and hash: note them to compare later.
    pub head: Option<(i64, String)>,
    /// The last entry's number, chained or not.
    pub last_seq: Option<i64>,
}

impl Verified {
    /// The head as `SEQ:SHA256`.
    pub fn head(&self) -> Option<Head> {
        self.head.as_ref().map(|(seq, sha256)| Head {
            seq: *seq,
            sha256: sha256.clone(),
        })
    }
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
    #[error("entry {seq} does not match its keyed hash: it was changed after it was written, and its hash recomputed without the controller's audit key")]
    Keyed { seq: i64 },
    #[error("entry {seq} has no hash, but the chain began at entry {chained_from}: it was inserted by hand, or its hash removed")]
    Unhashed { seq: i64, chained_from: i64 },
    #[error("entry {seq} has a hash, but the chain is recorded to begin only at entry {chained_from}: the record of where it begins was changed")]
    HashedBeforeStart { seq: i64, chained_from: i64 },
    #[error("the chain begins at entry {chained_from}, but the next entry in the log is {seq}: the entries before it were removed")]
    Start { chained_from: i64, seq: i64 },
    #[error("the record of where the chain begins (entry {chained_from}) and where its keying began (entry {keyed_from}) does not match the controller's audit key: it was changed in the database, or the key is not the one the log was keyed with")]
    StartRecord { chained_from: i64, keyed_from: i64 },
    #[error("the kept head {expected} is not in the log: entry {} holds sha256 {found}, so it or an entry before it was rewritten", expected.seq)]
    ExpectedDiffers { expected: Head, found: String },
    #[error("the kept head {expected} is not in the log, which ends at {}: entries were removed from its end", .last.map_or_else(|| "no entry".to_owned(), |seq| format!("entry {seq}")))]
    ExpectedMissing { expected: Head, last: Option<i64> },
    #[error("the log ends at {}, but the chain's recorded head is entry {recorded}: entries were removed from its end, or added behind the controller's back", .last.map_or_else(|| "no entry".to_owned(), |seq| format!("entry {seq}")))]
    HeadRecord { last: Option<i64>, recorded: i64 },
}

/// The rules a verification applies.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    pub start: Start,
    /// Without it keyed hashes are checked only for their links and form.
    pub key: Option<Key>,
    /// Heads kept earlier: each must still be in the log, unchanged.
    pub expected: Vec<Head>,
}

/// Checks entries in order (oldest first), one page at a time if need
/// be. Entries before `Start::chained_from` are unhashed and only have to
/// come in order; from there on every entry is hashed, numbered without
/// gaps, and the first names `GENESIS` as the hash before it; from
/// `Start::keyed_from` on the hashes are keyed.
#[derive(Clone, Debug, Default)]
pub struct Verifier {
    rules: Rules,
    unchained: usize,
    chained: usize,
    keyed: usize,
    /// The last entry seen: its number, and its hash if chained.
    last: Option<(i64, String)>,
}

impl Verifier {
    pub fn new(rules: Rules) -> Self {
        Verifier {
            rules,
            ..Verifier::default()
        }
    }

    pub fn push(&mut self, link: &Link<'_>) -> Result<(), ChainBreak> {
        let start = self.rules.start;
        let last_seq = self.last.as_ref().map(|(seq, _)| *seq);
        if link.seq < start.chained_from {
            // Entries from before the chain were numbered by the database,
            // which may have skipped numbers (PostgreSQL does on a
            // rollback): they only have to come in order, unhashed.
            if !link.sha256.is_empty() {
                return Err(ChainBreak::HashedBeforeStart {
                    seq: link.seq,
                    chained_from: start.chained_from,
                });
            }
            if let Some(before) = last_seq.filter(|before| link.seq <= *before) {
                return Err(ChainBreak::Gap {
                    before,
                    seq: link.seq,
                });
            }
            self.unchained += 1;
            self.last = Some((link.seq, String::new()));
            return Ok(());
        }
        let first_chained = last_seq.is_none_or(|before| before < start.chained_from);
        if first_chained && link.seq != start.chained_from {
            return Err(ChainBreak::Start {
                chained_from: start.chained_from,
                seq: link.seq,
            });
        }
        if let Some(before) = last_seq.filter(|before| !first_chained && link.seq != before + 1) {
            return Err(ChainBreak::Gap {
                before,
                seq: link.seq,
            });
        }
        if link.sha256.is_empty() {
            return Err(ChainBreak::Unhashed {
                seq: link.seq,
                chained_from: start.chained_from,
            });
        }
        let before = match &self.last {
            Some((_, hash)) if !first_chained => hash.as_str(),
            _ => GENESIS,
        };
        if link.prev_sha256 != before {
            return Err(ChainBreak::Link { seq: link.seq });
        }
        if start.is_keyed(link.seq) {
            let holds = match &self.rules.key {
                Some(key) => {
                    let expected = entry_mac(
                        key,
                        link.prev_sha256,
                        link.seq,
                        link.at_ms,
                        link.actor,
                        link.action,
                        link.subject,
                        link.details,
                    );
                    same(&expected, link.sha256)
                }
                None => crate::is_sha256(link.sha256),
            };
            if !holds {
                return Err(ChainBreak::Keyed { seq: link.seq });
            }
            self.keyed += 1;
        } else {
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
        }
        if let Some(expected) = self.rules.expected.iter().find(|h| h.seq == link.seq) {
            if expected.sha256 != link.sha256 {
                return Err(ChainBreak::ExpectedDiffers {
                    expected: expected.clone(),
                    found: link.sha256.to_owned(),
                });
            }
        }
        self.chained += 1;
        self.last = Some((link.seq, link.sha256.to_owned()));
        Ok(())
    }

    /// The result, once every entry was pushed: fails when a kept head was
    /// never reached (the log was cut before it).
    pub fn finish(self) -> Result<Verified, ChainBreak> {
        let last = self.last.as_ref().map(|(seq, _)| *seq);
        if let Some(expected) = self
            .rules
            .expected
            .iter()
            .find(|h| last.is_none_or(|last| h.seq > last))
        {
            return Err(ChainBreak::ExpectedMissing {
                expected: expected.clone(),
                last,
            });
        }
        Ok(Verified {
            unchained: self.unchained,
            chained: self.chained,
            keyed: self.keyed,
            last_seq: last,
            head: self.last.filter(|(_, hash)| !hash.is_empty()),
        })
    }
}

/// The log must end where the store's record of its head says: entries
/// removed from the end with the record left alone show here (moving the
/// record back too is what a kept or published head finds).
pub fn check_head(verified: &Verified, recorded_seq: i64) -> Result<(), ChainBreak> {
    let last = verified.last_seq;
    if last.unwrap_or(0) != recorded_seq {
        return Err(ChainBreak::HeadRecord {
            last,
            recorded: recorded_seq,
        });
    }
    Ok(())
}

/// Checks a whole log created chained (see `Verifier`), without a key.
pub fn verify(links: &[Link<'_>]) -> Result<Verified, ChainBreak> {
    verify_with(Rules::default(), links)
}

/// Checks a whole log under `rules`.
pub fn verify_with(rules: Rules, links: &[Link<'_>]) -> Result<Verified, ChainBreak> {
    let mut verifier = Verifier::new(rules);
    for link in links {
        verifier.push(link)?;
    }
    verifier.finish()
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
    /// from before the log was chained), unkeyed.
    fn chain_from(first: i64, n: i64) -> Vec<Entry> {
        build_chain(first, n, None)
    }

    /// Entries `first ..first + n`, each hashed with the unkeyed rule, or,
    /// with `keyed` (the key and the first keyed entry), keyed from there on.
    fn build_chain(first: i64, n: i64, keyed: Option<(&Key, i64)>) -> Vec<Entry> {
        let mut prev = GENESIS.to_owned();
        (first..first + n)
            .map(|seq| {
                let details = format!("change {seq}");
                let (at, actor, action, subject) = (seq * 10, "admin", "rollout start", "prod");
                let sha = match keyed {
                    Some((key, from)) if seq >= from => {
                        entry_mac(key, &prev, seq, at, actor, action, subject, &details)
                    }
                    _ => entry_sha256(&prev, seq, at, actor, action, subject, &details),
                };
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

    /// Every hash recomputed with the unkeyed rule over the entries as they
    /// now are, as someone with the database alone can.
    fn rehash_unkeyed(entries: &mut [Entry]) {
        let mut prev = GENESIS.to_owned();
        for e in entries {
            e.prev = prev.clone();
            e.sha = entry_sha256(
                &prev,
                e.seq,
                e.seq * 10,
                "admin",
                "rollout start",
                "prod",
                &e.details,
            );
            prev = e.sha.clone();
        }
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
        assert_eq!(
            verify(&inserted),
            Err(ChainBreak::Unhashed {
                seq: 3,
                chained_from: 1
            })
        );
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
        // A log upgraded from before the chain records where it began.
        let upgraded = Rules {
            start: Start {
                chained_from: 2,
                keyed_from: 0,
            },
            ..Rules::default()
        };
        assert_eq!(verify_with(upgraded, &legacy).unwrap().unchained, 1);
        // A log created chained has no entries from before it.
        assert_eq!(
            verify(&legacy),
            Err(ChainBreak::Unhashed {
                seq: 1,
                chained_from: 1
            })
        );
    }

    #[test]
    fn entries_removed_or_unhashed_at_the_start_are_found() {
        let entries = chain(5);
        let all = links(&entries);
        assert_eq!(
            verify(&all[2..]),
            Err(ChainBreak::Start {
                chained_from: 1,
                seq: 3
            })
        );
        // Their hashes blanked so that they pass for entries from before
        // the chain: the first hashed one does not follow from GENESIS.
        let mut blanked = links(&entries);
        for link in &mut blanked[..2] {
            link.sha256 = "";
            link.prev_sha256 = "";
        }
        assert_eq!(
            verify(&blanked),
            Err(ChainBreak::Unhashed {
                seq: 1,
                chained_from: 1
            })
        );
        // Every hash blanked: the log no longer passes for one from before
        // the chain.
        let mut all_blank = links(&entries);
        for link in &mut all_blank {
            link.sha256 = "";
            link.prev_sha256 = "";
        }
        assert_eq!(
            verify(&all_blank),
            Err(ChainBreak::Unhashed {
                seq: 1,
                chained_from: 1
            })
        );
        // Page by page gives the same answer as all at once.
        let mut verifier = Verifier::default();
        for link in &all {
            verifier.push(link).unwrap();
        }
        assert_eq!(verifier.finish(), verify(&all));
    }

    /// A chain keyed from entry `keyed_from` on (entries before it hashed
    /// with the unkeyed rule).
    fn keyed_chain(n: i64, keyed_from: i64, key: &Key) -> Vec<Entry> {
        build_chain(1, n, Some((key, keyed_from)))
    }

    fn keyed_rules(keyed_from: i64, key: Option<&Key>) -> Rules {
        Rules {
            start: Start {
                chained_from: 1,
                keyed_from,
            },
            key: key.cloned(),
            expected: Vec::new(),
        }
    }

    #[test]
    fn a_keyed_chain_verifies_only_with_its_key() {
        let key = Key::new(&[7; KEY_BYTES]);
        let entries = keyed_chain(6, 3, &key);
        let verified = verify_with(keyed_rules(3, Some(&key)), &links(&entries)).unwrap();
        assert_eq!((verified.chained, verified.keyed), (6, 4));
        // Without the key (the CLI): the links and their form only.
        let verified = verify_with(keyed_rules(3, None), &links(&entries)).unwrap();
        assert_eq!(verified.keyed, 4);
        // Another key: the first keyed entry does not hold.
        let other = Key::new(&[8; KEY_BYTES]);
        assert_eq!(
            verify_with(keyed_rules(3, Some(&other)), &links(&entries)),
            Err(ChainBreak::Keyed { seq: 3 })
        );
    }

    #[test]
    fn a_rewrite_with_every_hash_recomputed_needs_the_key() {
        let key = Key::new(&[7; KEY_BYTES]);
        let mut entries = keyed_chain(5, 1, &key);
        entries[1].details = "rewritten".into();
        // Recomputed unkeyed, as someone with the database alone can.
        rehash_unkeyed(&mut entries);
        assert_eq!(
            verify_with(keyed_rules(1, Some(&key)), &links(&entries)),
            Err(ChainBreak::Keyed { seq: 1 })
        );
        // The unkeyed rule holds for it: keying is what finds it.
        assert!(verify(&links(&entries)).is_ok());
    }

    #[test]
    fn the_start_record_is_bound_to_the_key() {
        let key = Key::new(&[7; KEY_BYTES]);
        let start = Start {
            chained_from: 1,
            keyed_from: 4,
        };
        let mac = start_mac(&key, &start);
        assert_eq!(check_start(&key, &start, &mac), Ok(()));
        let moved = Start {
            chained_from: 9,
            keyed_from: 4,
        };
        assert!(check_start(&key, &moved, &mac).is_err());
        assert!(check_start(&key, &start, "").is_err());
        assert!(check_start(&Key::new(&[1; KEY_BYTES]), &start, &mac).is_err());
        // Entries hashed before a start moved later are found too.
        let entries = chain(3);
        let rules = Rules {
            start: Start {
                chained_from: 3,
                keyed_from: 0,
            },
            ..Rules::default()
        };
        assert_eq!(
            verify_with(rules, &links(&entries)),
            Err(ChainBreak::HashedBeforeStart {
                seq: 1,
                chained_from: 3
            })
        );
    }

    #[test]
    fn a_kept_head_must_still_be_in_the_log() {
        let entries = chain(5);
        let kept = Head {
            seq: 4,
            sha256: entries[3].sha.clone(),
        };
        let rules = |kept: &Head| Rules {
            expected: vec![kept.clone()],
            ..Rules::default()
        };
        assert!(verify_with(rules(&kept), &links(&entries)).is_ok());
        // Cut from the end: entry 4 is gone.
        assert_eq!(
            verify_with(rules(&kept), &links(&entries[..3])),
            Err(ChainBreak::ExpectedMissing {
                expected: kept.clone(),
                last: Some(3)
            })
        );
        // Rewritten behind it, and every hash recomputed.
        let mut renewed = chain(5);
        renewed[0].details = "other".into();
        rehash_unkeyed(&mut renewed);
        assert!(matches!(
            verify_with(rules(&kept), &links(&renewed)),
            Err(ChainBreak::ExpectedDiffers { .. })
        ));
    }

    #[test]
    fn heads_read_and_print_as_seq_colon_sha256() {
        let head: Head = format!("42:{}", "A".repeat(64)).parse().unwrap();
        assert_eq!(head.seq, 42);
        assert_eq!(head.to_string(), format!("42:{}", "a".repeat(64)));
        for wrong in ["", "42", "x:abc", "0:", &format!("-1:{}", "a".repeat(64))] {
            let error = wrong.parse::<Head>().unwrap_err();
            assert!(error.contains("SEQ:SHA256"), "{error}");
        }
        assert!(Key::parse(&"0a".repeat(32)).is_ok());
        assert!(Key::parse("0a").is_err());
    }

    #[test]
    fn the_log_must_end_at_its_recorded_head() {
        let entries = chain(5);
        let verified = verify(&links(&entries[..3])).unwrap();
        assert_eq!(
            check_head(&verified, 5),
            Err(ChainBreak::HeadRecord {
                last: Some(3),
                recorded: 5
            })
        );
        assert_eq!(check_head(&verified, 3), Ok(()));
        assert_eq!(check_head(&verify(&[]).unwrap(), 0), Ok(()));
    }
}
