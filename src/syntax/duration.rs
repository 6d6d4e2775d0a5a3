//! Durations as workflows write them: `500ms`, `60s`, `2m`, `1h`, and sums such as `1h30m`.

use std::time::Duration;

/// The longest duration a workflow may write: 7 days (`168h`). A timeout, a backoff or a
/// sleep is a wait inside one `kairos run` process; a week is already longer than such a
/// process is expected to stay up (a run that must wait longer pauses at an approval and is
/// resumed), and a bound keeps every deadline representable on every clock. See
/// `docs/workflow.md`.
pub const MAX: Duration = Duration::from_secs(7 * 24 * 3600);

/// Why a text is not a duration a workflow may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// Not a duration at all.
    Syntax,
    /// A duration longer than [`MAX`].
    TooLong,
}

/// Parses a duration; `None` when the text is not one or is longer than [`MAX`].
pub fn parse(text: &str) -> Option<Duration> {
    check(text).ok()
}

/// Parses a duration and says why it cannot be used when it cannot.
pub fn check(text: &str) -> Result<Duration, Invalid> {
    let millis = parse_millis(text).ok_or(Invalid::Syntax)?;
    match u64::try_from(millis) {
        Ok(ms) if ms <= MAX.as_millis() as u64 => Ok(Duration::from_millis(ms)),
        _ => Err(Invalid::TooLong),
    }
}

/// The milliseconds a duration text stands for, saturating (so that any number of digits is
/// read as "too long", not as a typo); `None` when the text is not a duration.
fn parse_millis(text: &str) -> Option<u128> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let amount = rest[..digits].bytes().fold(0u128, |n, d| {
            n.saturating_mul(10).saturating_add(u128::from(d - b'0'))
        });
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let millis_per_unit: u128 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total = total.saturating_add(amount.saturating_mul(millis_per_unit));
    }
    Some(total)
}

/// Formats a duration the way [`parse`] reads it, in the largest exact units.
pub fn format(duration: Duration) -> String {
    let mut ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_sums() {
        assert_eq!(parse("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse("60s"), Some(Duration::from_secs(60)));
        assert_eq!(parse("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse("1m500ms"), Some(Duration::from_millis(60_500)));
    }

    #[test]
    fn rejects_non_durations() {
        for bad in [
            "",
            "10",
            "s",
            "1.5s",
            "10 x",
            "5d",
            "-1s",
            "ms10",
            "99999999999999999999h",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn durations_longer_than_a_week_are_too_long() {
        assert_eq!(check("168h"), Ok(MAX));
        assert_eq!(check("7d"), Err(Invalid::Syntax));
        for long in ["168h1ms", "999999999h", "99999999999999999999h", "10081m"] {
            assert_eq!(check(long), Err(Invalid::TooLong), "{long:?}");
        }
        assert_eq!(check("1h 2x"), Err(Invalid::Syntax));
    }

    #[test]
    fn format_round_trips() {
        for ms in [1, 500, 1_000, 60_500, 5_400_000, 3_723_004] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse(&format(d)), Some(d));
        }
    }
}
