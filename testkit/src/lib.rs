//! Helpers for the property tests that feed outside input to parsers:
//! [`fuzz`] runs a property with a counted, reported number of cases and
//! turns panics into failures; [`Edit`] is one careless edit of a valid
//! document (a byte changed, added or lost; a line lost or pasted twice).

#![allow(clippy::expect_used)] // Test support: a bad PROPTEST_CASES is a test failure.

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Cases per property when PROPTEST_CASES is not set; a few seconds in a debug build.
const DEFAULT_CASES: u32 = 3000;

/// Whether a check accepted its input; errors are test failures.
pub type Checked = Result<bool, TestCaseError>;

/// Runs `check` on as many inputs from `strategy` as configured, turns a panic
/// into a failure that proptest shrinks to a minimal input, prints the count
/// (and how many documents were accepted, to show the deep paths ran) and
/// checks that every configured case really ran.
pub fn fuzz<S: Strategy>(name: &str, strategy: S, check: impl Fn(S::Value) -> Checked) {
    let cases =
        std::env::var("PROPTEST_CASES").map_or(DEFAULT_CASES, |v| v.parse().expect("a number"));
    // No failure persistence: a failing seed is printed, never written into the tree.
    let mut config = Config::with_cases(cases);
    config.failure_persistence = None;
    let [ran, accepted, panics]: [AtomicUsize; 3] = Default::default();
    let result = TestRunner::new(config).run(&strategy, |value| {
        ran.fetch_add(1, Ordering::Relaxed);
        // The panic hook has already printed the message and the location.
        let ok = catch_unwind(AssertUnwindSafe(|| check(value))).unwrap_or_else(|_| {
            panics.fetch_add(1, Ordering::Relaxed);
            Err(TestCaseError::fail("panicked (message and location above)"))
        })?;
        accepted.fetch_add(usize::from(ok), Ordering::Relaxed);
        Ok(())
    });
    let (ran, accepted, panics) = (ran.into_inner(), accepted.into_inner(), panics.into_inner());
    eprintln!("{name}: {ran} cases ({accepted} accepted), {panics} panics");
    if let Err(failure) = result {
        panic!("{name}: {failure}");
    }
    assert_eq!(ran, cases as usize, "{name}: cases went missing");
}

/// One careless edit of a valid document: a byte changed, added or lost, or a
/// whole line lost or pasted twice.
#[derive(Clone, Debug)]
pub enum Edit {
    Replace(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    DropLine(Index),
    DuplicateLine(Index),
}

pub fn edit() -> impl Strategy<Value = Edit> {
    // Bytes that mean something to TOML are more interesting than random ones.
    let byte = prop_oneof![
        any::<u8>(),
        prop::sample::select(b"[]{}=\"'.,#%<>\n -_0123456789".to_vec())
    ];
    prop_oneof![
        (any::<Index>(), byte.clone()).prop_map(|(at, b)| Edit::Replace(at, b)),
        (any::<Index>(), byte).prop_map(|(at, b)| Edit::Insert(at, b)),
        any::<Index>().prop_map(Edit::Delete),
        any::<Index>().prop_map(Edit::DropLine),
        any::<Index>().prop_map(Edit::DuplicateLine),
    ]
}

/// The document after the edit; bytes that are no longer UTF-8 become U+FFFD,
/// as they would when a file is read as text.
pub fn apply(document: &str, edit: &Edit) -> String {
    let mut bytes = document.as_bytes().to_vec();
    let mut lines: Vec<&str> = document.split('\n').collect();
    let (b_len, l_len) = (bytes.len(), lines.len());
    match edit {
        Edit::Replace(at, b) => bytes[at.index(b_len)] = *b,
        Edit::Insert(at, b) => bytes.insert(at.index(b_len + 1), *b),
        Edit::Delete(at) => drop(bytes.remove(at.index(b_len))),
        Edit::DropLine(at) => {
            lines.remove(at.index(l_len));
            return lines.join("\n");
        }
        Edit::DuplicateLine(at) => {
            lines.insert(at.index(l_len), lines[at.index(l_len)]);
            return lines.join("\n");
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}
