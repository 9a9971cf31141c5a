//! The one duration parser of the command line: every flag that takes a duration
//! (`--timeout`, `--drain`, `--interval`, ...) parses it with [`parse_duration`].
//!
//! Grammar, as `timeout(1)` and systemd read durations:
//!
//! ```text
//! DURATION = NUMBER [UNIT]
//! NUMBER   = DIGITS ["." [DIGITS]] | "." DIGITS
//! UNIT     = "ms" | "s" | "m" | "h" | "d"        (no unit: seconds)
//! ```
//!
//! So `1.5`, `10s`, `500ms`, `2m`, `1h`, `0.25d` and `0` are durations. The number is read
//! exactly in decimal (no binary floating point, so `0.1` is 100 ms and not 99.999... ms);
//! digits below a nanosecond are dropped. Rejected with a one-line reason that clap prints
//! after `invalid value '...' for '--flag <DUR>'`: an empty text, a sign (`-1`, `+1`),
//! `nan`, `inf`, exponents (`1e3`), spaces, an unknown unit, and anything too long for a
//! [`Duration`].
//!
//! Zero is a valid duration; a flag for which zero means "no limit" says so in its help and
//! turns it into `None` with [`nonzero`].

use std::time::Duration;

/// Parses a command-line duration: a decimal number of seconds, optionally followed by a
/// unit (`ms`, `s`, `m`, `h`, `d`). Usable directly as a clap `value_parser`.
///
/// # Errors
///
/// A lowercase one-line reason if `text` is not a non-negative duration in the grammar of
/// the [module documentation](self), or if it does not fit in a [`Duration`].
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    if text.is_empty() {
        return Err("empty duration (expected e.g. 1.5, 500ms, 2m, 1h)".to_owned());
    }
    if text.starts_with('-') {
        return Err("a duration cannot be negative".to_owned());
    }
    let number_len = text.bytes().take_while(|b| b.is_ascii_digit() || *b == b'.').count();
    let (number, unit) = text.split_at(number_len);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return Err(format!("`{text}` is not a duration (expected e.g. 1.5, 500ms, 2m, 1h)"));
    }
    let nanos_per_unit: u128 = match unit {
        "ms" => 1_000_000,
        "" | "s" => NANOS_PER_SEC,
        "m" => 60 * NANOS_PER_SEC,
        "h" => 3_600 * NANOS_PER_SEC,
        "d" => 86_400 * NANOS_PER_SEC,
        _ => return Err(format!("unknown unit `{unit}` in `{text}` (use ms, s, m, h or d)")),
    };
    let too_long = || format!("`{text}` is too long a duration");
    // Whole units, exactly; the digits were checked above.
    let mut nanos: u128 = 0;
    for digit in whole.bytes() {
        nanos = nanos
            .checked_mul(10)
            .and_then(|n| n.checked_add(u128::from(digit - b'0')))
            .ok_or_else(too_long)?;
    }
    nanos = nanos.checked_mul(nanos_per_unit).ok_or_else(too_long)?;
    // The fraction: its first 20 digits are more than enough for a nanosecond of a day,
    // and 10^20 times a day in nanoseconds still fits in a u128.
    let (mut numerator, mut denominator) = (0u128, 1u128);
    for digit in fraction.bytes().take(20) {
        numerator = numerator * 10 + u128::from(digit - b'0');
        denominator *= 10;
    }
    nanos = nanos.checked_add(numerator * nanos_per_unit / denominator).ok_or_else(too_long)?;
    let secs = u64::try_from(nanos / NANOS_PER_SEC).map_err(|_| too_long())?;
    let subsec = u32::try_from(nanos % NANOS_PER_SEC).map_err(|_| too_long())?;
    Ok(Duration::new(secs, subsec))
}

/// `None` for a zero duration, for flags where `0` means "no limit".
pub(crate) fn nonzero(duration: Duration) -> Option<Duration> {
    (!duration.is_zero()).then_some(duration)
}

const NANOS_PER_SEC: u128 = 1_000_000_000;

#[cfg(test)]
mod tests;
