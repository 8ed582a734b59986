//! The Tierwise domain: what a Password Secure version is, which roles a host
//! can play, and what an agent reports about the components it runs.
//!
//! This crate is pure. It must never do I/O, spawn tasks, read the clock or
//! depend on tokio, sqlx or tonic: the controller and the agent load state,
//! hand it to functions here, and apply what comes back. That keeps every rule
//! testable with plain values and property tests.

/// Serialises a type as its `Display` text and reads it back with
/// `FromStr`, so JSON and TOML carry versions, dates, roles and
/// requirements in the same form people type them.
#[macro_export]
macro_rules! serde_as_text {
    ($ty:ty) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse::<$ty>().map_err(serde::de::Error::custom)
            }
        }
    };
}

pub mod action;
pub mod artifact;
pub mod audit;
pub mod backoff;
pub mod backup;
pub mod catalogue;
pub mod date;
pub mod expiry;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod inventory;
pub mod json;
pub mod licence;
pub mod liveness;
pub mod name;
pub mod notify;
pub mod placement;
pub mod plan;
pub mod promotion;
pub mod ratelimit;
pub mod reported;
pub mod requirement;
pub mod role;
pub mod rollout;
pub mod rules;
pub mod task;
pub mod text;
pub mod trust;
pub mod version;
pub mod waves;
pub mod window;

pub use catalogue::{Artifact, Catalogue, CatalogueError, Note, Release, ReleaseDate, Requirement};
pub use date::{Date, DateError};
/// The 1-based line of a byte offset in `text`, for errors that point into
/// a configuration or catalogue file.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(offset)
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Bytes as lower-case hex (checksums, serials, token parts).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `text` is a SHA-256 in lower-case hex.
pub fn is_sha256(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// 1234567 → "1,234,567", for counts people read.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub use inventory::{
    Check, ClientFacts, Component, Database, DatabaseProfile, Facts, HostRecord, Inventory,
    InventoryError, ProbedVersion, ServerFacts, Volume, VolumePurpose, WebFacts, WebServerKind,
};
pub use licence::Licence;
pub use name::{validate_name, NameError};
pub use placement::{KnownServer, Placement, AUTO_INSTALLATION};
pub use requirement::{RequirementError, VersionReq};
pub use role::{Role, RoleParseError};
pub use version::{Version, VersionError};
pub use waves::{ClientWaves, WavesError};

#[cfg(test)]
mod tests {
    #[test]
    fn groups_thousands() {
        assert_eq!(super::thousands(0), "0");
        assert_eq!(super::thousands(999), "999");
        assert_eq!(super::thousands(1_204), "1,204");
        assert_eq!(super::thousands(99_987), "99,987");
        assert_eq!(super::thousands(1_000_000), "1,000,000");
    }
}
