//! Unit tests of the duration parser: accepted forms and the reasons for rejections.

use std::time::Duration;

use crate::duration::{nonzero, parse_duration};

fn check(text: &str, expected: Result<Duration, &str>) {
    let actual = parse_duration(text);
    match expected {
        Ok(duration) => assert_eq!(actual, Ok(duration), "{text:?}"),
        Err(needle) => {
            let reason = actual.expect_err(text);
            assert!(reason.contains(needle), "{text:?}: {reason:?} lacks {needle:?}");
        }
    }
}

#[test]
fn accepts_seconds_and_units() {
    check("0", Ok(Duration::ZERO));
    check("0s", Ok(Duration::ZERO));
    check("10", Ok(Duration::from_secs(10)));
    check("10s", Ok(Duration::from_secs(10)));
    check("1.5", Ok(Duration::from_millis(1500)));
    check("1.", Ok(Duration::from_secs(1)));
    check(".5", Ok(Duration::from_millis(500)));
    check("500ms", Ok(Duration::from_millis(500)));
    check("1.5ms", Ok(Duration::from_micros(1500)));
    check("2m", Ok(Duration::from_secs(120)));
    check("1.5m", Ok(Duration::from_secs(90)));
    check("1h", Ok(Duration::from_secs(3600)));
    check("0.25d", Ok(Duration::from_secs(21_600)));
    check("007", Ok(Duration::from_secs(7)));
}

#[test]
fn reads_decimals_exactly() {
    check("0.1", Ok(Duration::from_millis(100)));
    check("0.000000001", Ok(Duration::from_nanos(1)));
    // Below a nanosecond is dropped, however many digits follow.
    check("0.0000000019999999999999999999999", Ok(Duration::from_nanos(1)));
    check("0.001ms", Ok(Duration::from_micros(1)));
}

#[test]
fn rejects_what_is_not_a_duration() {
    check("", Err("empty duration"));
    check("-1", Err("cannot be negative"));
    check("-0.5s", Err("cannot be negative"));
    check("+1", Err("is not a duration"));
    check("nan", Err("is not a duration"));
    check("NaN", Err("is not a duration"));
    check("inf", Err("is not a duration"));
    check("infinity", Err("is not a duration"));
    check(".", Err("is not a duration"));
    check("1.2.3", Err("is not a duration"));
    check("s", Err("is not a duration"));
    check(" 1", Err("is not a duration"));
    check("1e3", Err("unknown unit `e3`"));
    check("1 s", Err("unknown unit ` s`"));
    check("10x", Err("unknown unit `x`"));
    check("5sec", Err("unknown unit `sec`"));
    check("1h30m", Err("unknown unit `h30m`"));
    check("0x10", Err("unknown unit `x10`"));
}

#[test]
fn rejects_overflow() {
    let max = u64::MAX.to_string();
    check(&max, Ok(Duration::from_secs(u64::MAX)));
    check(&format!("{max}.999999999"), Ok(Duration::MAX));
    check(&format!("{max}.9999999999"), Ok(Duration::MAX));
    check("18446744073709551616", Err("too long a duration"));
    check(&format!("{max}m"), Err("too long a duration"));
    check("99999999999999999999999999999999999999999", Err("too long a duration"));
}

#[test]
fn zero_means_none_where_asked() {
    assert_eq!(nonzero(Duration::ZERO), None);
    assert_eq!(nonzero(Duration::from_millis(1)), Some(Duration::from_millis(1)));
}
