use super::*;

fn ms(utc: &str) -> i64 {
    utc.parse::<Timestamp>().unwrap().as_millisecond()
}

fn window(scope: &str, days: &str, from: &str, to: &str) -> MaintenanceWindow {
    MaintenanceWindow::new(scope, days, from, to, "Europe/Berlin").unwrap()
}

const HOUR: i64 = 3_600_000;

#[test]
fn a_step_waits_for_the_server_window_and_says_when_it_opens() {
    let windows = [window("server", "sat", "02:00", "06:00")];
    // Friday noon: the window opens on Saturday at 02:00 CET (01:00 UTC).
    let gate = gate(
        &windows,
        WindowScope::Server,
        ms("2026-12-04T12:00:00Z"),
        HOUR,
    );
    assert_eq!(
        gate,
        Gate::Wait {
            opens_ms: ms("2026-12-05T01:00:00Z"),
            reason: "waiting for the server window (sat 02:00–06:00 Europe/Berlin), opens Sat 2026-12-05 02:00 CET".into(),
        }
    );
    // Inside it, a step of one hour may start until 05:00.
    assert_eq!(
        super::gate(
            &windows,
            WindowScope::Server,
            ms("2026-12-05T03:59:00Z"),
            HOUR
        ),
        Gate::Open {
            closes_ms: ms("2026-12-05T05:00:00Z")
        }
    );
    // At 05:30 it would not finish before 06:00: the next Saturday.
    assert!(matches!(
        super::gate(&windows, WindowScope::Server, ms("2026-12-05T04:30:00Z"), HOUR),
        Gate::Wait { opens_ms, .. } if opens_ms == ms("2026-12-12T01:00:00Z")
    ));
    // Other scopes are free; a window longer than it could ever be is named.
    assert_eq!(
        super::gate(&windows, WindowScope::Clients, 0, HOUR),
        Gate::Free
    );
    assert!(matches!(
        super::gate(&windows, WindowScope::Server, ms("2026-12-04T12:00:00Z"), 5 * HOUR),
        Gate::Never { reason } if reason.contains("never open for the 300 min")
    ));
}

#[test]
fn daylight_saving_changes_shorten_and_lengthen_the_night() {
    // Every night 00:00–06:00 in Berlin. On 29 March 2026 the clocks go
    // from 02:00 to 03:00: that night lasts five hours. On 25 October they
    // go back from 03:00 to 02:00: seven hours.
    let windows = [window("clients", "daily", "00:00", "06:00")];
    let spring = ms("2026-03-28T23:00:00Z"); // 00:00 CET
    let occurrence = windows[0].occurrences(spring)[0];
    assert_eq!(occurrence.start_ms, spring);
    assert_eq!(occurrence.end_ms - occurrence.start_ms, 5 * HOUR);
    // A six-hour step does not fit that night; it waits for the next,
    // whose midnight is already summer time (22:00 UTC).
    assert_eq!(
        gate(&windows, WindowScope::Clients, spring, 6 * HOUR),
        Gate::Wait {
            opens_ms: ms("2026-03-29T22:00:00Z"),
            reason: "waiting for the clients window (daily 00:00–06:00 Europe/Berlin), opens Mon 2026-03-30 00:00 CEST".into(),
        }
    );
    let autumn = ms("2026-10-24T22:00:00Z"); // 00:00 CEST
    assert_eq!(
        gate(&windows, WindowScope::Clients, autumn, 6 * HOUR),
        Gate::Open {
            closes_ms: ms("2026-10-25T05:00:00Z")
        } // 06:00 CET
    );
}

#[test]
fn a_start_in_the_skipped_hour_counts_from_when_it_would_have_been() {
    // 02:30 does not exist on 29 March 2026 in Berlin: the window starts at
    // 03:30 CEST (01:30 UTC) and lasts half an hour that day.
    let windows = [window("web", "sun", "02:30", "04:00")];
    let occurrences = windows[0].occurrences(ms("2026-03-28T12:00:00Z"));
    assert_eq!(
        occurrences[0],
        Occurrence {
            start_ms: ms("2026-03-29T01:30:00Z"),
            end_ms: ms("2026-03-29T02:00:00Z"),
        }
    );
}

#[test]
fn the_same_local_time_moves_in_utc_across_the_year_where_a_fixed_offset_would_drift() {
    let windows = [window("server", "daily", "02:00", "03:00")];
    let winter = windows[0].occurrences(ms("2026-01-15T12:00:00Z"))[0];
    let summer = windows[0].occurrences(ms("2026-07-15T12:00:00Z"))[0];
    assert_eq!(winter.start_ms, ms("2026-01-16T01:00:00Z"));
    assert_eq!(summer.start_ms, ms("2026-07-16T00:00:00Z"));
}

#[test]
fn a_window_may_run_past_midnight() {
    let windows = [window("server", "fri", "22:00", "02:00")];
    // Saturday 01:00 CET is inside Friday's window, which closes at 02:00.
    assert_eq!(
        gate(
            &windows,
            WindowScope::Server,
            ms("2026-12-05T00:00:00Z"),
            30 * 60_000
        ),
        Gate::Open {
            closes_ms: ms("2026-12-05T01:00:00Z")
        }
    );
}

#[test]
fn bad_windows_say_what_to_write() {
    let cases = [
        (
            ("server", "funday", "02:00", "06:00", "Europe/Berlin"),
            "`funday` are no days",
        ),
        (
            ("server", "sat", "25:00", "06:00", "Europe/Berlin"),
            "`25:00` is no time of day",
        ),
        (
            ("server", "sat", "02:00", "02:00", "Europe/Berlin"),
            "is empty",
        ),
        (
            ("server", "sat", "02:00", "06:00", "Mars/Olympus"),
            "`Mars/Olympus` is no IANA time zone",
        ),
        (
            ("database", "sat", "02:00", "06:00", "Europe/Berlin"),
            "unknown scope `database`",
        ),
        (
            ("server", "sat", "2:00", "06:00", "UTC"),
            "`2:00` is no time of day",
        ),
        (
            ("server", "sat", "+2:00", "06:00", "UTC"),
            "`+2:00` is no time of day",
        ),
    ];
    for ((scope, days, from, to, tz), expected) in cases {
        let error = MaintenanceWindow::new(scope, days, from, to, tz)
            .unwrap_err()
            .to_string();
        assert!(error.contains(expected), "{error}");
    }
    for (text, shown) in [
        ("mon-fri", "mon-fri"),
        ("sat,sun", "sat,sun"),
        ("daily", "daily"),
        ("mon,wed,fri", "mon,wed,fri"),
        ("mon-sun", "daily"),
        ("fri-mon", "mon,fri-sun"),
    ] {
        assert_eq!(text.parse::<Weekdays>().unwrap().to_string(), shown);
    }
    assert_eq!(
        WindowScope::of(crate::plan::PhaseKind::Databases),
        WindowScope::Server
    );
    assert_eq!(
        window("server", "fri", "22:00", "02:00").nominal_minutes(),
        240
    );
}
