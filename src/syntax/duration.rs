//! Durations as workflows write them: `500ms`, `60s`, `2m`, `1h`, and sums such as `1h30m`.

use std::time::Duration;

/// Parses a duration; `None` when the text is not one.
pub fn parse(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let amount: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let millis_per_unit = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total = total.checked_add(amount.checked_mul(millis_per_unit)?)?;
    }
    Some(Duration::from_millis(total))
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
    fn format_round_trips() {
        for ms in [1, 500, 1_000, 60_500, 5_400_000, 3_723_004] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse(&format(d)), Some(d));
        }
    }
}
