//! Client waves: how many clients each step of the client phase may touch.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Cumulative shares of the clients, in percent, strictly increasing and
/// ending at 100: `1%,10%,50%,100%` updates 1 %, then up to 10 %, ...
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientWaves {
    percents: Vec<u8>,
    /// Largest first wave, in hosts (the default caps it at 100).
    first_wave_cap: Option<usize>,
}

/// The default first wave is at most this many hosts.
pub const DEFAULT_FIRST_WAVE_CAP: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WavesError {
    #[error("no waves given; write e.g. 1%,10%,50%,100%")]
    Empty,
    #[error("wave `{0}` is not a percentage; write e.g. 10%")]
    NotPercent(String),
    #[error("wave {0}% is empty: every wave must be more than 0%")]
    Zero(u32),
    #[error("wave {0}% is more than 100%")]
    TooLarge(u32),
    #[error(
        "waves must grow: {later}% comes after {earlier}% (each wave is the share updated so far)"
    )]
    NotIncreasing { earlier: u8, later: u8 },
    #[error("the last wave is {0}%; it must be 100% so that every client is updated")]
    NotComplete(u8),
}

impl Default for ClientWaves {
    fn default() -> Self {
        Self {
            percents: vec![1, 10, 50, 100],
            first_wave_cap: Some(DEFAULT_FIRST_WAVE_CAP),
        }
    }
}

impl ClientWaves {
    /// The default for a breaking release: a small canary (1 %, at most
    /// 100 hosts), then every other client at once — old clients are locked
    /// out of the new server until they are updated, so no slow waves.
    pub fn breaking_default() -> Self {
        Self {
            percents: vec![1, 100],
            first_wave_cap: Some(DEFAULT_FIRST_WAVE_CAP),
        }
    }

    /// Parses `1%,10%,50%,100%` (the `%` may be left out).
    pub fn parse(text: &str) -> Result<Self, WavesError> {
        if text.trim().is_empty() {
            return Err(WavesError::Empty);
        }
        let mut percents: Vec<u8> = Vec::new();
        for piece in text.split(',') {
            let piece = piece.trim();
            let digits = piece.strip_suffix('%').unwrap_or(piece).trim();
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 9
            {
                return Err(WavesError::NotPercent(piece.to_owned()));
            }
            let value: u32 = digits
                .parse()
                .map_err(|_| WavesError::NotPercent(piece.to_owned()))?;
            if value == 0 {
                return Err(WavesError::Zero(value));
            }
            let percent = u8::try_from(value)
                .ok()
                .filter(|p| *p <= 100)
                .ok_or(WavesError::TooLarge(value))?;
            if let Some(&earlier) = percents.last() {
                if percent <= earlier {
                    return Err(WavesError::NotIncreasing {
                        earlier,
                        later: percent,
                    });
                }
            }
            percents.push(percent);
        }
        match percents.last() {
            Some(100) => Ok(Self {
                percents,
                first_wave_cap: None,
            }),
            Some(&last) => Err(WavesError::NotComplete(last)),
            None => Err(WavesError::Empty),
        }
    }

    /// The cumulative shares, in percent.
    pub fn percents(&self) -> &[u8] {
        &self.percents
    }

    /// The largest first wave, in hosts, if capped.
    pub fn first_wave_cap(&self) -> Option<usize> {
        self.first_wave_cap
    }

    /// Waves from their parts (as they travel), checked as `parse` checks
    /// text.
    pub fn from_parts(percents: &[u8], first_wave_cap: Option<usize>) -> Result<Self, WavesError> {
        let text: Vec<String> = percents.iter().map(u8::to_string).collect();
        Ok(Self {
            first_wave_cap,
            ..Self::parse(&text.join(","))?
        })
    }

    /// Splits `total` clients into waves: (percent, size) of every non-empty
    /// wave, sizes adding up to `total`.
    pub fn split(&self, total: usize) -> Vec<(u8, usize)> {
        let mut waves = Vec::new();
        let mut done = 0usize;
        for (index, &percent) in self.percents.iter().enumerate() {
            let mut upto = (total * usize::from(percent))
                .div_ceil(100)
                .max(1)
                .min(total);
            if index == 0 {
                if let Some(cap) = self.first_wave_cap {
                    upto = upto.min(cap);
                }
            }
            if upto > done {
                waves.push((percent, upto - done));
                done = upto;
            }
        }
        waves
    }
}

impl fmt::Display for ClientWaves {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.percents.iter().map(|p| format!("{p}%")).collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_waves_cap_the_first_at_100_hosts() {
        let waves = ClientWaves::default();
        assert_eq!(
            waves.split(99_987),
            [(1, 100), (10, 9_899), (50, 39_995), (100, 49_993)]
        );
        assert_eq!(waves.split(200), [(1, 2), (10, 18), (50, 80), (100, 100)]);
        assert_eq!(waves.split(3), [(1, 1), (50, 1), (100, 1)]);
        assert_eq!(waves.split(1), [(1, 1)]);
        assert!(waves.split(0).is_empty());
    }

    #[test]
    fn explicit_waves() {
        let waves = ClientWaves::parse("5%, 25%,100").unwrap();
        assert_eq!(waves.to_string(), "5%,25%,100%");
        assert_eq!(waves.split(10_000), [(5, 500), (25, 2_000), (100, 7_500)]);
        assert_eq!(ClientWaves::parse("100%").unwrap().split(7), [(100, 7)]);
    }

    #[test]
    fn malformed_waves_are_refused() {
        let cases = [
            ("0%,100%", "wave 0% is empty"),
            ("10%,150%", "wave 150% is more than 100%"),
            ("50%,10%,100%", "waves must grow: 10% comes after 50%"),
            ("10%,10%,100%", "waves must grow"),
            ("10%,50%", "the last wave is 50%; it must be 100%"),
            ("", "no waves given"),
            ("ten%", "wave `ten%` is not a percentage"),
            ("-5%,100%", "not a percentage"),
            ("1%,,100%", "wave `` is not a percentage"),
            ("99999999999%", "not a percentage"),
        ];
        for (text, expected) in cases {
            let err = ClientWaves::parse(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }
}
