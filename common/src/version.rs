//! Password Secure versions: four numeric parts, `major.minor.patch.build`.
//!
//! Both of the vendor's schemes (9.3.1.33994 and the date based 26.3.100.34058)
//! order correctly by plain numeric comparison of the parts, so a version is
//! nothing more than four integers compared left to right.

use std::fmt;
use std::str::FromStr;

/// A four-part Password Secure version such as `9.3.1.33994`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    parts: [u32; 4],
}

/// Why a text is not a Password Secure version. Every message says what a
/// valid version looks like, so the person reading it can fix the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("the version is empty; expected four numeric parts such as 9.3.1.33994")]
    Empty,
    #[error("`{text}` contains whitespace; write the version without spaces, e.g. 9.3.1.33994")]
    Whitespace { text: String },
    #[error(
        "`{text}` has {found} part(s); a Password Secure version has exactly four: \
         major.minor.patch.build, e.g. 9.3.1.33994 or 26.3.100.34058"
    )]
    PartCount { text: String, found: usize },
    #[error("part {position} of `{text}` is empty; every one of the four parts needs digits")]
    EmptyPart { text: String, position: usize },
    #[error("part {position} of `{text}` is `{part}`, which is not a number; use digits only")]
    NotANumber {
        text: String,
        position: usize,
        part: String,
    },
    #[error("part {position} of `{text}` is larger than {max}", max = u32::MAX)]
    Overflow { text: String, position: usize },
}

impl Version {
    pub const fn new(major: u32, minor: u32, patch: u32, build: u32) -> Self {
        Self {
            parts: [major, minor, patch, build],
        }
    }

    pub const fn parts(&self) -> [u32; 4] {
        self.parts
    }

    pub const fn major(&self) -> u32 {
        self.parts[0]
    }

    pub const fn build(&self) -> u32 {
        self.parts[3]
    }

    /// Parses strictly: exactly four dot-separated decimal parts, each fitting
    /// in 32 bits, no whitespace, no signs.
    pub fn parse(text: &str) -> Result<Self, VersionError> {
        if text.is_empty() {
            return Err(VersionError::Empty);
        }
        if text.chars().any(char::is_whitespace) {
            return Err(VersionError::Whitespace { text: text.into() });
        }
        let pieces: Vec<&str> = text.split('.').collect();
        if pieces.len() != 4 {
            return Err(VersionError::PartCount {
                text: text.into(),
                found: pieces.len(),
            });
        }
        let mut parts = [0u32; 4];
        for (index, piece) in pieces.iter().enumerate() {
            let position = index + 1;
            if piece.is_empty() {
                return Err(VersionError::EmptyPart {
                    text: text.into(),
                    position,
                });
            }
            if !piece.bytes().all(|b| b.is_ascii_digit()) {
                return Err(VersionError::NotANumber {
                    text: text.into(),
                    position,
                    part: (*piece).into(),
                });
            }
            parts[index] = piece.parse().map_err(|_| VersionError::Overflow {
                text: text.into(),
                position,
            })?;
        }
        Ok(Self { parts })
    }
}

impl FromStr for Version {
    type Err = VersionError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.parts;
        write!(f, "{a}.{b}.{c}.{d}")
    }
}

crate::serde_as_text!(Version);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_schemes() {
        assert_eq!(
            Version::parse("9.3.1.33994"),
            Ok(Version::new(9, 3, 1, 33994))
        );
        assert_eq!(
            Version::parse("26.3.100.34058"),
            Ok(Version::new(26, 3, 100, 34058))
        );
        assert_eq!(
            Version::new(26, 3, 100, 34058).to_string(),
            "26.3.100.34058"
        );
    }

    #[test]
    fn orders_across_schemes() {
        let texts = [
            "8.16.6.30233",
            "9.0.0.30423",
            "9.1.0.30996",
            "9.2.0.32454",
            "9.2.3.32988",
            "9.2.6.33415",
            "9.3.0.33526",
            "9.3.1.33994",
            "26.3.100.34058",
            "26.4.10.34111",
            "26.5.1.34120",
            "26.6.100.34161",
            "26.8.10.34187",
            "26.9.100.34193",
        ];
        let versions: Vec<Version> = texts.iter().map(|t| t.parse().unwrap()).collect();
        for pair in versions.windows(2) {
            assert!(pair[0] < pair[1], "{} < {}", pair[0], pair[1]);
        }
        // Numeric, not textual: 9 < 26 and 8.16 > 8.5.
        assert!(Version::new(9, 3, 1, 33994) < Version::new(26, 3, 100, 34058));
        assert!(Version::new(8, 16, 6, 30233) > Version::new(8, 5, 0, 14896));
    }

    #[test]
    fn round_trips_through_serde() {
        let v = Version::new(26, 6, 100, 34161);
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, "\"26.6.100.34161\"");
        assert_eq!(serde_json::from_str::<Version>(&json).unwrap(), v);
        let err = serde_json::from_str::<Version>("\"9.3\"").unwrap_err();
        assert!(err.to_string().contains("has 2 part(s)"), "{err}");
    }

    #[test]
    fn rejects_bad_input_with_clear_errors() {
        let cases: &[(&str, &str)] = &[
            ("", "the version is empty"),
            (
                "9.3",
                "`9.3` has 2 part(s); a Password Secure version has exactly four",
            ),
            ("9.3.1.33994.7", "has 5 part(s)"),
            (
                "9.3.1.x",
                "part 4 of `9.3.1.x` is `x`, which is not a number",
            ),
            ("9.3..1", "part 3 of `9.3..1` is empty"),
            (
                "9.3.1.4294967296",
                "part 4 of `9.3.1.4294967296` is larger than 4294967295",
            ),
            ("99999999999.0.0.0", "part 1 of"),
            (" 9.3.1.33994", "contains whitespace"),
            ("9.3.1.33994 ", "contains whitespace"),
            ("9. 3.1.33994", "contains whitespace"),
            ("+9.3.1.1", "is `+9`, which is not a number"),
            ("v9.3.1.1", "is `v9`"),
            ("-1.0.0.0", "is `-1`"),
        ];
        for (input, expected) in cases {
            let message = Version::parse(input).unwrap_err().to_string();
            assert!(
                message.contains(expected),
                "input {input:?}: got {message:?}, wanted it to contain {expected:?}"
            );
        }
    }

    #[test]
    fn largest_parts_are_accepted() {
        let max = u32::MAX;
        let text = format!("{max}.{max}.{max}.{max}");
        assert_eq!(Version::parse(&text), Ok(Version::new(max, max, max, max)));
    }
}
