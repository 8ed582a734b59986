//! Fuzz-style property tests of every parser in tierwise-common that reads
//! operator or vendor input: versions, requirements, dates, client waves,
//! error thresholds, names, roles and the release catalogue.
//!
//! The promise checked for every input is "returns Ok or a clean Err, never
//! panics": an operator's typo or a broken vendor file must end in a message,
//! not a crashed controller. Where a parser has a `Display`, valid values must
//! also read back as themselves. Inputs are biased toward each grammar so the
//! deeper branches run, not only the first "this is not a version" check.
//!
//! Each test prints how many cases it ran. PROPTEST_CASES sets the count.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestCaseResult};
use std::cell::Cell;
use std::fmt::Display;
use std::ops::Range;
use tierwise_common::rollout::ErrorThreshold;
use tierwise_common::{validate_name, Catalogue, ClientWaves, Date, Role, Version, VersionReq};
use tierwise_testkit::{apply, edit};

/// The catalogue shipped to operators: the document most likely to be edited by hand.
const SHIPPED_CATALOGUE: &str = include_str!("../../deploy/catalogue/password-secure.toml");

thread_local! {
    /// Inputs the current property saw accepted: shows the deep paths ran.
    static ACCEPTED: Cell<usize> = const { Cell::new(0) };
}

/// Runs `check` through the shared runner; a check marks an accepted input
/// through `outcome`.
fn fuzz<S: Strategy>(name: &str, strategy: S, check: impl Fn(S::Value) -> TestCaseResult) {
    tierwise_testkit::fuzz(name, strategy, |value| {
        let before = ACCEPTED.get();
        check(value)?;
        Ok(ACCEPTED.get() > before)
    });
}

/// `Some(value)` for an accepted input, `None` for a refusal that explains
/// itself; a refusal with an empty message fails the property.
fn outcome<T, E: Display>(result: Result<T, E>) -> Result<Option<T>, TestCaseError> {
    match result {
        Ok(value) => {
            ACCEPTED.with(|a| a.set(a.get() + 1));
            Ok(Some(value))
        }
        Err(e) if e.to_string().trim().is_empty() => Err(TestCaseError::fail("empty error")),
        Err(_) => Ok(None),
    }
}

/// A strategy for text, boxed so helpers can pass it around.
type Text = BoxedStrategy<String>;

/// Text from everywhere: fully arbitrary Unicode, and text made of the
/// characters the grammar `alphabet` uses, so both shallow and deep paths run.
fn text(alphabet: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), alphabet]
}

/// One decimal part: any u32, just past u32::MAX, far past it, a leading zero, a sign.
fn part_text() -> Text {
    prop_oneof![
        6 => any::<u32>().prop_map(|n| n.to_string()),
        1 => Just("4294967296".to_owned()),
        1 => Just("99999999999".to_owned()),
        2 => "0[0-9]{1,3}",
        1 => "[0-9+-]{0,3}",
    ]
    .boxed()
}

/// `n` parts joined by `separator`: near-valid lists for the deeper checks.
fn joined(part: Text, n: Range<usize>, sep: &'static str) -> Text {
    prop::collection::vec(part, n)
        .prop_map(move |p| p.join(sep))
        .boxed()
}

#[test]
fn version_never_panics_and_round_trips() {
    let input = prop_oneof![text("[0-9. +v-]{0,24}"), joined(part_text(), 3..6, ".")];
    fuzz("Version::parse", input, |input| {
        if let Some(v) = outcome(input.parse::<Version>())? {
            prop_assert_eq!(Version::parse(&v.to_string()), Ok(v));
        }
        Ok(())
    });
    // Every version prints in a form that reads back as the same version.
    fuzz("Version display", any::<[u32; 4]>(), |[a, b, c, d]| {
        let v = Version::new(a, b, c, d);
        prop_assert_eq!(outcome(v.to_string().parse::<Version>())?, Some(v));
        Ok(())
    });
}

#[test]
fn requirement_never_panics_and_keeps_its_text() {
    let op = prop::sample::select(vec!["", "=", ">", ">=", "<", "<=", "~", " >= "]);
    let clause = (op, joined(part_text(), 1..6, "."))
        .prop_map(|(o, v)| o.to_owned() + &v)
        .boxed();
    let input = prop_oneof![text("[0-9.<>=, *~]{0,30}"), joined(clause, 1..4, ", ")];
    let input = (input, any::<[u32; 4]>());
    fuzz("VersionReq::parse", input, |(input, [a, b, c, d])| {
        if let Some(req) = outcome(input.parse::<VersionReq>())? {
            // The requirement is shown as written and reads back the same.
            prop_assert_eq!(req.to_string(), input.clone());
            prop_assert_eq!(VersionReq::parse(&req.to_string()), Ok(req.clone()));
            // Matching computes upper bounds with +1: try the u32 edge too.
            req.matches(Version::new(a, b, c, d));
            req.matches(Version::new(u32::MAX, u32::MAX, u32::MAX, u32::MAX));
        }
        Ok(())
    });
}

#[test]
fn date_never_panics_and_round_trips() {
    // Multi-byte characters next to the dashes try the parser's byte slicing; the
    // near-calendar dates include month 0, month 13, day 0 and day 32.
    let input = prop_oneof![
        text("[0-9é+ -]{8,12}"),
        "[0-9]{4}-(0[0-9]|1[0-3])-([012][0-9]|3[012])"
    ];
    fuzz("Date::parse", input, |input| {
        if let Some(date) = outcome(input.parse::<Date>())? {
            prop_assert_eq!(date.to_string(), input);
        }
        Ok(())
    });
    let day = (1u16..=9999, 1u8..=12, 1u8..=31);
    fuzz("Date display", day, |(y, m, d)| {
        if let Some(date) = Date::new(y, m, d) {
            prop_assert_eq!(outcome(Date::parse(&date.to_string()))?, Some(date));
        }
        Ok(())
    });
}

#[test]
fn client_waves_never_panic_and_cover_every_client_once() {
    let wave = prop_oneof![part_text(), "[0-9]{1,3}%"].boxed();
    // Growing shares that end at 100, written with and without `%` and spaces.
    let growing = prop::collection::btree_set(1u8..100, 0..6).prop_map(|shares| {
        let mut waves: Vec<String> = shares.iter().map(|p| format!("{p}% ")).collect();
        waves.push("100".into());
        waves.join(",")
    });
    let input = prop_oneof![text("[0-9%, ]{0,30}"), joined(wave, 0..6, ","), growing];
    let input = (input, 0usize..200_000);
    fuzz("ClientWaves::parse", input, |(input, total)| {
        if let Some(waves) = outcome(ClientWaves::parse(&input))? {
            prop_assert_eq!(ClientWaves::parse(&waves.to_string()), Ok(waves.clone()));
            // Every client lands in exactly one non-empty wave.
            let split = waves.split(total);
            prop_assert!(split.iter().all(|(_, n)| *n > 0));
            prop_assert_eq!(split.iter().map(|(_, n)| n).sum::<usize>(), total);
        }
        Ok(())
    });
}

#[test]
fn error_threshold_never_panics_and_round_trips() {
    let input = prop_oneof![text("[0-9% +-]{0,8}"), part_text()];
    fuzz("ErrorThreshold::parse", input, |input| {
        if let Some(threshold) = outcome(ErrorThreshold::parse(&input))? {
            let written = match threshold {
                ErrorThreshold::Percent(p) => format!("{p}%"),
                ErrorThreshold::Count(n) => n.to_string(),
            };
            prop_assert_eq!(ErrorThreshold::parse(&written), Ok(threshold));
            prop_assert!(!matches!(threshold, ErrorThreshold::Percent(101..)));
        }
        Ok(())
    });
}

#[test]
fn names_and_roles_never_panic() {
    let input = prop_oneof![text("[A-Za-z0-9._ /-]{0,260}"), "[A-Za-z0-9._-]{0,260}"];
    fuzz("validate_name", input, |input| {
        if outcome(validate_name("host id", &input))?.is_some() {
            let allowed = |b: u8| b.is_ascii_alphanumeric() || b".-_".contains(&b);
            prop_assert!(input.len() <= 253 && input.bytes().all(allowed));
        }
        Ok(())
    });
    let known = prop::sample::select(vec!["server", "app_server", "web", "client"]);
    let input = prop_oneof![text("[a-z_]{0,12}"), known.prop_map(String::from)];
    fuzz("Role::from_str", input, |input| {
        if let Some(role) = outcome(input.parse::<Role>())? {
            prop_assert_eq!(role.to_string(), input);
        }
        Ok(())
    });
}

/// The line an error points at: "line N: ..." from the validation or
/// "TOML parse error at line N, column M" from the TOML reader.
fn pointed_line(message: &str) -> Option<usize> {
    let rest = (message.strip_prefix("line "))
        .or_else(|| message.strip_prefix("TOML parse error at line "))?;
    let digits = rest.split(|c: char| !c.is_ascii_digit()).next()?;
    digits.parse().ok()
}

/// The catalogue's promise: Ok with sorted unique releases, or an error that
/// names the source and points at a line that exists.
fn check_catalogue(document: &str) -> TestCaseResult {
    match Catalogue::parse(document, "fuzz.toml") {
        Ok(catalogue) => {
            ACCEPTED.with(|a| a.set(a.get() + 1));
            let releases = catalogue.releases();
            prop_assert!(releases.windows(2).all(|p| p[0].version < p[1].version));
            // `span` builds calendar days from a parsed month: it must not panic either.
            for release in releases {
                release.released.span();
            }
        }
        Err(e) => {
            prop_assert_eq!(e.origin.as_str(), "fuzz.toml");
            prop_assert!(!e.message.is_empty());
            let line = pointed_line(&e.message);
            prop_assert!(line.is_some(), "the error points at no line: {}", e.message);
            let lines = document.split('\n').count();
            let inside = line.is_some_and(|n| (1..=lines).contains(&n));
            prop_assert!(inside, "line {line:?} of {lines}: {}", e.message);
        }
    }
    Ok(())
}

/// Lines a catalogue is made of, filled with near-valid values.
fn catalogue_line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("[[release]]".to_owned()),
        Just("[[release.note]]".to_owned()),
        "\\[release\\.artifact\\.(server|app_server|web|client|db)\\]",
        "(version|oldest_client) = \"[0-9.]{0,14}\"",
        "released = \"[0-9+-]{0,11}\"",
        "(breaking|file|id|text) = \"[ -~]{0,12}\"",
        "upgrade_from = \"[0-9.<>=, *]{0,16}\"",
        "requires = \\[(\"web_websocket\"|\"x\")?\\]",
        "sha256 = \"[0-9a-fA-Fg]{62,66}\"",
        "[a-z_\\[\\]=\" .\n]{0,20}",
    ]
}

#[test]
fn catalogue_never_panics() {
    // The shipped catalogue itself must of course be accepted.
    assert!(Catalogue::parse(SHIPPED_CATALOGUE, "shipped").is_ok());
    let assembled = prop::collection::vec(catalogue_line(), 0..16).prop_map(|l| l.join("\n"));
    let input = prop_oneof![any::<String>(), assembled];
    fuzz("Catalogue::parse (arbitrary, assembled)", input, |doc| {
        check_catalogue(&doc)
    });
    fuzz("Catalogue::parse (edited shipped)", edit(), |edit| {
        check_catalogue(&apply(SHIPPED_CATALOGUE, &edit))
    });
}
