//! When an operator token expires: how long a token may be issued for, and
//! what a rotation may give. Pure: the caller passes the time.

use std::time::Duration;

/// The longest an operator token may work unless it is issued to never
/// expire: ten years (3,653 days, leap days included).
pub const MAX_LIFETIME: Duration = Duration::from_secs(3_653 * 86_400);

/// When a token issued at `now_ms` for `lifetime` expires; `None` when it
/// never expires. A lifetime longer than [`MAX_LIFETIME`] is refused with
/// what to write instead.
pub fn expiry_at(lifetime: Option<Duration>, now_ms: i64) -> Result<Option<i64>, String> {
    let Some(lifetime) = lifetime else {
        return Ok(None);
    };
    if lifetime > MAX_LIFETIME {
        return Err(format!(
            "a token may work at most {} days ({}d given); write `--expires never` for one that does not expire",
            MAX_LIFETIME.as_secs() / 86_400,
            lifetime.as_secs() / 86_400
        ));
    }
    let millis = i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX);
    Ok(Some(now_ms.saturating_add(millis)))
}

/// The expiry of a token an operator issues for themselves in place of one
/// that expires at `current` (`None`: never): never later than `current`,
/// so rotating cannot make a token live longer than it was issued for.
pub fn own_rotation(current: Option<i64>, requested: Option<i64>) -> Option<i64> {
    match (current, requested) {
        (Some(current), Some(requested)) => Some(current.min(requested)),
        (Some(current), None) => Some(current),
        (None, requested) => requested,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;

    #[test]
    fn a_lifetime_is_added_to_now() {
        let day = Duration::from_secs(DAY);
        assert_eq!(expiry_at(Some(day), 1_000), Ok(Some(1_000 + 86_400_000)));
        assert_eq!(expiry_at(None, 1_000), Ok(None));
    }

    #[test]
    fn ten_years_is_the_most_unless_never() {
        assert!(expiry_at(Some(MAX_LIFETIME), 0).is_ok());
        let longer = MAX_LIFETIME + Duration::from_secs(1);
        let refused = expiry_at(Some(longer), 0).unwrap_err();
        assert!(refused.contains("at most 3653 days"), "{refused}");
        assert!(refused.contains("--expires never"), "{refused}");
        assert!(expiry_at(Some(Duration::from_secs(u64::MAX)), 0).is_err());
    }

    #[test]
    fn the_largest_allowed_lifetime_saturates_instead_of_overflowing() {
        assert_eq!(expiry_at(Some(MAX_LIFETIME), i64::MAX), Ok(Some(i64::MAX)));
    }

    #[test]
    fn rotating_ones_own_token_never_moves_its_expiry_later() {
        let hour = 3_600_000;
        assert_eq!(own_rotation(Some(hour), Some(90 * hour)), Some(hour));
        assert_eq!(own_rotation(Some(hour), None), Some(hour));
        assert_eq!(own_rotation(Some(90 * hour), Some(hour)), Some(hour));
        assert_eq!(own_rotation(None, Some(hour)), Some(hour));
        assert_eq!(own_rotation(None, None), None);
    }
}
