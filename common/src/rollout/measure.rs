//! How long a step took, bounded: agents report their own start and finish
//! times, and a made-up pair (`1` and `i64::MAX`) must not become a
//! measurement that outweighs every real one or overflows a stored sum.

/// The longest a step may be measured to take: seven days. No install,
/// backup or restart of a Password Secure component runs that long; a
/// longer figure is a broken clock or a lie.
pub const MAX_STEP_MS: i64 = 7 * 24 * 3600 * 1000;

/// The duration to record for a step that succeeded, in milliseconds, or
/// `None` when there is nothing trustworthy to record.
///
/// `started_ms`/`finished_ms` are what the agent reports; `measured_ms` is
/// the controller's own measure (dispatch to result) when it knows the
/// dispatch time. The agent's figure is kept only when it lies in
/// `0..=MAX_STEP_MS` and is never longer than the controller's measure
/// (the step cannot have run longer than it was out); without a usable
/// agent figure the controller's measure is recorded, clamped to the same
/// range.
pub fn step_duration_ms(
    started_ms: i64,
    finished_ms: i64,
    measured_ms: Option<i64>,
) -> Option<i64> {
    let in_range = |ms: i64| (0..=MAX_STEP_MS).contains(&ms);
    let reported = (started_ms > 0)
        .then(|| finished_ms.checked_sub(started_ms))
        .flatten()
        .filter(|ms| in_range(*ms));
    let measured = measured_ms
        .filter(|ms| *ms >= 0)
        .map(|ms| ms.min(MAX_STEP_MS));
    match (reported, measured) {
        (Some(reported), Some(measured)) => Some(reported.min(measured)),
        (reported, measured) => reported.or(measured),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plausible_report_is_kept() {
        assert_eq!(step_duration_ms(1_000, 61_000, None), Some(60_000));
        assert_eq!(step_duration_ms(1_000, 61_000, Some(65_000)), Some(60_000));
        assert_eq!(step_duration_ms(1_000, 1_000, None), Some(0));
    }

    #[test]
    fn the_report_never_exceeds_the_controllers_measure() {
        assert_eq!(step_duration_ms(1_000, 61_000, Some(5_000)), Some(5_000));
    }

    #[test]
    fn an_absurd_report_is_ignored() {
        assert_eq!(step_duration_ms(1, i64::MAX, None), None);
        assert_eq!(step_duration_ms(i64::MIN, i64::MAX, None), None);
        assert_eq!(step_duration_ms(0, 5_000, None), None);
        assert_eq!(step_duration_ms(-5, 5_000, None), None);
        assert_eq!(step_duration_ms(10_000, 5_000, None), None);
        assert_eq!(step_duration_ms(1, MAX_STEP_MS + 2, None), None);
        assert_eq!(
            step_duration_ms(1, MAX_STEP_MS + 1, None),
            Some(MAX_STEP_MS)
        );
    }

    #[test]
    fn an_absurd_report_falls_back_to_the_controllers_measure() {
        assert_eq!(step_duration_ms(1, i64::MAX, Some(42_000)), Some(42_000));
        assert_eq!(
            step_duration_ms(1, i64::MAX, Some(i64::MAX)),
            Some(MAX_STEP_MS)
        );
        assert_eq!(step_duration_ms(1, i64::MAX, Some(-1)), None);
    }
}
