//! SHA-256 fingerprints of certificates, written the way `openssl x509
//! -fingerprint -sha256` prints them (`AB:CD:…`).

use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a SHA-256 fingerprint: write 64 hexadecimal digits, with or without colons (`tierwise pki show` prints it)")]
pub struct FingerprintError(String);

impl FromStr for Fingerprint {
    type Err = FingerprintError;

    /// Accepts `AB:CD:…`, `abcd…`, and either with a `sha256:` or `SHA256=`
    /// prefix; spaces around are ignored.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || {
            let shown: String = text.chars().take(120).collect();
            FingerprintError(shown)
        };
        let trimmed = text.trim();
        let lower = trimmed.to_ascii_lowercase();
        let body = lower
            .strip_prefix("sha256:")
            .or_else(|| lower.strip_prefix("sha256="))
            .unwrap_or(&lower);
        let digits: Vec<u8> = body.bytes().filter(|b| *b != b':').collect();
        if digits.len() != 64 || !digits.iter().all(u8::is_ascii_hexdigit) {
            return Err(error());
        }
        let mut bytes = [0u8; 32];
        for (i, pair) in digits.chunks(2).enumerate() {
            let hex = std::str::from_utf8(pair).map_err(|_| error())?;
            bytes[i] = u8::from_str_radix(hex, 16).map_err(|_| error())?;
        }
        Ok(Self(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_and_reads_back_in_every_accepted_spelling() {
        let fp = Fingerprint::of(b"certificate");
        let shown = fp.to_string();
        assert_eq!(shown.len(), 32 * 3 - 1);
        assert_eq!(shown.parse::<Fingerprint>(), Ok(fp));
        let plain = shown.replace(':', "").to_lowercase();
        assert_eq!(plain.parse::<Fingerprint>(), Ok(fp));
        assert_eq!(format!("sha256:{plain}").parse::<Fingerprint>(), Ok(fp));
        assert_eq!(format!(" SHA256={shown} ").parse::<Fingerprint>(), Ok(fp));
    }

    #[test]
    fn refuses_what_is_not_64_hex_digits() {
        for bad in [
            "",
            "abc",
            &"g".repeat(64),
            &"a".repeat(63),
            &"a".repeat(65),
            "é",
        ] {
            let error = bad.parse::<Fingerprint>().unwrap_err();
            assert!(error.to_string().contains("tierwise pki show"), "{error}");
        }
    }
}
