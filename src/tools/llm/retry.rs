//! Which failed exchanges are worth trying again, and how long the server asks to wait
//! (docs/llm.md, "Retries"). The node's `retry:` block decides whether and how often a call is
//! tried again; this only says when a server's answer rules a retry out, or asks for a longer
//! wait than the backoff.

use crate::net::Head;
use crate::tools::RetryHint;

/// The longest wait a server's `retry-after-ms` or `Retry-After` can ask for: past it the
/// wait is this long (a server that asks for an hour is not waited on for an hour).
pub const MAX_RETRY_AFTER_MS: u64 = 60_000;

/// What a failed HTTP response says about trying again.
///
/// 408, 409, 429 and 5xx are worth another attempt, others are not; `x-should-retry: true` or
/// `false` overrides that, as OpenAI's and Anthropic's SDKs do. A 429 whose body says the
/// quota is exhausted (`insufficient_quota`) is not: the next attempt would be refused too.
pub fn of_status(status: u16, head: &Head, body: &[u8]) -> RetryHint {
    let by_status = matches!(status, 408 | 409 | 429) || status >= 500;
    let retryable = match head.header("x-should-retry") {
        Some("true") => true,
        Some("false") => false,
        _ => by_status,
    } && !(status == 429 && quota_exhausted(body));
    RetryHint {
        retryable,
        after_ms: retryable.then(|| retry_after(head)).flatten(),
    }
}

/// Whether an error body says the account's quota is used up.
fn quota_exhausted(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    text.contains("insufficient_quota")
}

/// The wait a response asks for: `retry-after-ms` (milliseconds, OpenAI), else `Retry-After`
/// in seconds or as an HTTP date (relative to the response's own `Date`, or to now), capped at
/// [`MAX_RETRY_AFTER_MS`]. The wait taken is recorded in the ledger (`Retry.delay_ms`), so a
/// replay does not depend on the clock this reads.
pub fn retry_after(head: &Head) -> Option<u64> {
    let ms = if let Some(v) = head.header("retry-after-ms") {
        let ms: f64 = v.trim().parse().ok()?;
        (ms.is_finite() && ms >= 0.0).then_some(ms.round() as u64)?
    } else {
        let v = head.header("retry-after")?.trim();
        match v.parse::<f64>() {
            Ok(s) if s.is_finite() && s >= 0.0 => (s * 1000.0).round() as u64,
            Ok(_) => return None,
            Err(_) => {
                let at = http_date(v)?;
                let now = head.header("date").and_then(http_date).unwrap_or_else(|| {
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs() as i64)
                });
                (at.saturating_sub(now).max(0) as u64).saturating_mul(1000)
            }
        }
    };
    Some(ms.min(MAX_RETRY_AFTER_MS))
}

/// Seconds since the Unix epoch of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form
/// RFC 9110 requires senders to use.
fn http_date(text: &str) -> Option<i64> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts[..] else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == month)? as i64 + 1;
    let (day, year): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let hms: Vec<i64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, s] = hms[..] else { return None };
    if !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(headers: &[(&str, &str)]) -> Head {
        Head {
            status: 429,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            final_url: String::new(),
            hops: Vec::new(),
        }
    }

    #[test]
    fn transient_statuses_are_retried_and_others_are_not() {
        for status in [408, 409, 429, 500, 502, 503, 529] {
            assert!(of_status(status, &head(&[]), b"").retryable, "{status}");
        }
        for status in [400, 401, 403, 404, 422] {
            assert!(!of_status(status, &head(&[]), b"").retryable, "{status}");
        }
    }

    #[test]
    fn x_should_retry_overrides_the_status() {
        assert!(of_status(400, &head(&[("x-should-retry", "true")]), b"").retryable);
        assert!(!of_status(503, &head(&[("x-should-retry", "false")]), b"").retryable);
    }

    #[test]
    fn an_exhausted_quota_is_not_retried() {
        let body = br#"{"error":{"type":"insufficient_quota","code":"insufficient_quota"}}"#;
        let hint = of_status(429, &head(&[("retry-after", "1")]), body);
        assert_eq!(
            hint,
            RetryHint {
                retryable: false,
                after_ms: None
            }
        );
    }

    #[test]
    fn retry_after_in_milliseconds_seconds_and_dates_is_capped() {
        assert_eq!(retry_after(&head(&[("retry-after-ms", "250")])), Some(250));
        // retry-after-ms wins over Retry-After.
        let both = head(&[("retry-after", "9"), ("retry-after-ms", "1.6")]);
        assert_eq!(retry_after(&both), Some(2));
        assert_eq!(retry_after(&head(&[("retry-after", "2")])), Some(2000));
        assert_eq!(retry_after(&head(&[("retry-after", "0.5")])), Some(500));
        assert_eq!(
            retry_after(&head(&[("retry-after", "86400")])),
            Some(MAX_RETRY_AFTER_MS)
        );
        let dated = head(&[
            ("date", "Wed, 21 Oct 2015 07:28:00 GMT"),
            ("retry-after", "Wed, 21 Oct 2015 07:28:03 GMT"),
        ]);
        assert_eq!(retry_after(&dated), Some(3000));
        let past = head(&[
            ("date", "Wed, 21 Oct 2015 07:28:00 GMT"),
            ("retry-after", "Wed, 21 Oct 2015 07:27:00 GMT"),
        ]);
        assert_eq!(retry_after(&past), Some(0));
        assert_eq!(retry_after(&head(&[("retry-after", "soon")])), None);
        assert_eq!(retry_after(&head(&[("retry-after", "-1")])), None);
        assert_eq!(retry_after(&head(&[])), None);
    }

    #[test]
    fn http_dates_read_as_unix_seconds() {
        assert_eq!(http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(http_date("Sun, 06 Nov 1994 08:49:37 UTC"), None);
        assert_eq!(http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
    }
}
