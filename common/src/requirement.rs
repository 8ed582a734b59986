//! Version requirements in semver-style syntax over four-part versions:
//! `>=9.2, <26.3`, `=9.3` (any 9.3.x.y), `>9.2` (9.3 and later), `*`.
//!
//! A partial version stands for the range of versions that start with it,
//! as in semver: `<=9.3` admits 9.3.1.33994, `>9.2` starts at 9.3.0.0.

use crate::Version;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
}

/// One comparator: an operator and a version of one to four parts.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Comparator {
    op: Op,
    parts: Vec<u32>,
}

/// A set of comparators that must all hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionReq {
    text: String,
    comparators: Vec<Comparator>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a version requirement: {why}; write e.g. \">=9.2, <26.3\"")]
pub struct RequirementError {
    pub text: String,
    pub why: String,
}

impl Comparator {
    /// The lowest version of the prefix, and the lowest version after it.
    fn bounds(&self) -> (Version, Option<Version>) {
        let mut low = [0u32; 4];
        low[..self.parts.len()].copy_from_slice(&self.parts);
        let mut high = low;
        let last = self.parts.len() - 1;
        let next = high[last].checked_add(1).map(|n| {
            high[last] = n;
            for part in high.iter_mut().skip(last + 1) {
                *part = 0;
            }
            Version::new(high[0], high[1], high[2], high[3])
        });
        (Version::new(low[0], low[1], low[2], low[3]), next)
    }

    fn matches(&self, version: Version) -> bool {
        let (low, next) = self.bounds();
        match self.op {
            Op::Eq => version >= low && next.is_none_or(|n| version < n),
            Op::Gt => next.is_some_and(|n| version >= n),
            Op::Ge => version >= low,
            Op::Lt => version < low,
            Op::Le => next.is_none_or(|n| version < n),
        }
    }
}

impl VersionReq {
    pub fn parse(text: &str) -> Result<Self, RequirementError> {
        let error = |why: String| RequirementError {
            text: text.to_owned(),
            why,
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(error("it is empty".into()));
        }
        if trimmed == "*" {
            return Ok(Self {
                text: text.to_owned(),
                comparators: Vec::new(),
            });
        }
        let mut comparators = Vec::new();
        for piece in trimmed.split(',') {
            let piece = piece.trim();
            let (op, rest) = [
                (">=", Op::Ge),
                ("<=", Op::Le),
                (">", Op::Gt),
                ("<", Op::Lt),
                ("=", Op::Eq),
            ]
            .iter()
            .find_map(|(prefix, op)| piece.strip_prefix(prefix).map(|rest| (*op, rest)))
            .unwrap_or((Op::Eq, piece));
            let rest = rest.trim();
            if rest.is_empty() {
                return Err(error(format!("`{piece}` names no version")));
            }
            let parts = rest
                .split('.')
                .map(|p| {
                    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(error(format!(
                            "`{rest}` is not a version of one to four numeric parts"
                        )));
                    }
                    p.parse::<u32>().map_err(|_| {
                        error(format!("a part of `{rest}` is larger than {}", u32::MAX))
                    })
                })
                .collect::<Result<Vec<u32>, _>>()?;
            if parts.len() > 4 {
                return Err(error(format!("`{rest}` has more than four parts")));
            }
            comparators.push(Comparator { op, parts });
        }
        Ok(Self {
            text: text.to_owned(),
            comparators,
        })
    }

    pub fn matches(&self, version: Version) -> bool {
        self.comparators.iter().all(|c| c.matches(version))
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for VersionReq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for VersionReq {
    type Err = RequirementError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

crate::serde_as_text!(VersionReq);

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        text.parse().unwrap()
    }

    #[test]
    fn ranges_over_four_part_versions() {
        let req = VersionReq::parse(">=9.2, <26.3").unwrap();
        assert!(req.matches(v("9.2.0.32454")));
        assert!(req.matches(v("9.3.1.33994")));
        assert!(!req.matches(v("9.1.0.30996")));
        assert!(!req.matches(v("26.3.100.34058")));

        let eq = VersionReq::parse("=9.3").unwrap();
        assert!(eq.matches(v("9.3.0.33526")) && eq.matches(v("9.3.1.33994")));
        assert!(!eq.matches(v("9.4.0.0")));
        let gt = VersionReq::parse(">9.2").unwrap();
        assert!(!gt.matches(v("9.2.6.33415")) && gt.matches(v("9.3.0.0")));
        let le = VersionReq::parse("<=9.3").unwrap();
        assert!(le.matches(v("9.3.1.33994")) && !le.matches(v("26.3.100.34058")));
        let exact = VersionReq::parse("9.3.1.33994").unwrap();
        assert!(exact.matches(v("9.3.1.33994")) && !exact.matches(v("9.3.1.33995")));
        assert!(VersionReq::parse("*").unwrap().matches(v("1.0.0.0")));
        let max = VersionReq::parse(&format!("<={}", u32::MAX)).unwrap();
        assert!(max.matches(v("4294967295.1.2.3")));
    }

    #[test]
    fn refuses_malformed_requirements() {
        for (bad, why) in [
            ("", "it is empty"),
            (">=", "names no version"),
            (">=9.x", "not a version of one to four numeric parts"),
            (">=9.3.1.2.5", "more than four parts"),
            ("~9.3", "not a version"),
            (">=9.2,, <26", "names no version"),
            ("<99999999999", "larger than"),
        ] {
            let err = VersionReq::parse(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
