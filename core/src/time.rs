//! RFC 3339 times as docker and containerd write them, to and from [`Time`].

use crate::stat::Time;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn digits(s: &[u8]) -> Option<i64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0i64, |n, d| {
        n.checked_mul(10)?.checked_add(i64::from(d - b'0'))
    })
}

/// Parses an RFC 3339 time as docker writes them
/// (`2024-01-02T03:04:05.123456789Z`, or with a `+hh:mm` offset).
pub fn parse_rfc3339(text: &str) -> Option<Time> {
    let s = text.trim().as_bytes();
    if s.len() < 20 || s[4] != b'-' || s[7] != b'-' || s[13] != b':' || s[16] != b':' {
        return None;
    }
    if !matches!(s[10], b'T' | b't' | b' ') {
        return None;
    }
    let year = digits(&s[0..4])?;
    let month = u32::try_from(digits(&s[5..7])?).ok()?;
    let day = u32::try_from(digits(&s[8..10])?).ok()?;
    let hour = digits(&s[11..13])?;
    let minute = digits(&s[14..16])?;
    let second = digits(&s[17..19])?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    // 60: a leap second, counted as the next second.
    if second > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut nsec = 0i64;
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        for i in 0..9 {
            nsec = nsec * 10
                + frac
                    .get(i)
                    .filter(|_| i < n)
                    .map_or(0, |d| i64::from(d - b'0'));
        }
        rest = &frac[n..];
    }
    let offset = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = digits(&[*h1, *h2])?;
            let m = digits(&[*m1, *m2])?;
            let o = h * 3600 + m * 60;
            if *sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    let sec =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some(Time { sec, nsec })
}

/// `2024-01-02T03:04:05.123456789Z`: RFC 3339, UTC, nanoseconds.
pub fn format_rfc3339(t: Time) -> String {
    let days = t.sec.div_euclid(86_400);
    let secs = t.sec.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let nsec = t.nsec.clamp(0, 999_999_999);
    if let Ok(year @ 0..=9999) = u32::try_from(y) {
        // By hand: timelines format millions of these.
        let mut out = [0u8; 30];
        let fields: [(u64, usize, u8); 7] = [
            (year.into(), 4, b'-'),
            (m.into(), 2, b'-'),
            (d.into(), 2, b'T'),
            (u64::try_from(secs / 3600).unwrap_or(0), 2, b':'),
            (u64::try_from(secs / 60 % 60).unwrap_or(0), 2, b':'),
            (u64::try_from(secs % 60).unwrap_or(0), 2, b'.'),
            (u64::try_from(nsec).unwrap_or(0), 9, b'Z'),
        ];
        let mut at = 0;
        for (mut value, width, sep) in fields {
            for i in (0..width).rev() {
                out[at + i] = b'0' + (value % 10) as u8;
                value /= 10;
            }
            out[at + width] = sep;
            at += width + 1;
        }
        return String::from_utf8_lossy(&out[..at]).into_owned();
    }
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        nsec
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_every_field_padded() {
        let t = |sec, nsec| format_rfc3339(Time { sec, nsec });
        assert_eq!(
            t(1_709_251_199, 123_456_789),
            "2024-02-29T23:59:59.123456789Z"
        );
        assert_eq!(t(0, 7), "1970-01-01T00:00:00.000000007Z");
        assert_eq!(t(-1, 0), "1969-12-31T23:59:59.000000000Z");
        // Years past 9999 and before 0 take the general path.
        assert_eq!(t(253_402_300_800, 0), "10000-01-01T00:00:00.000000000Z");
        assert!(t(-62_167_219_201, 0).starts_with("-001-12-31T23:59:59"));
    }

    #[test]
    fn rfc3339_round_trips() {
        let cases = [
            ("1970-01-01T00:00:00Z", 0, 0),
            ("2021-03-04T05:06:07Z", 1_614_834_367, 0),
            ("1999-01-01T00:00:00Z", 915_148_800, 0),
            ("2026-11-26T06:38:16.00031178Z", 1_795_675_096, 311_780),
            ("2024-02-29T23:59:59.123456789Z", 1_709_251_199, 123_456_789),
            ("1969-12-31T23:59:59.5Z", -1, 500_000_000),
        ];
        for (text, sec, nsec) in cases {
            let t = parse_rfc3339(text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!((t.sec, t.nsec), (sec, nsec), "{text}");
            assert_eq!(parse_rfc3339(&format_rfc3339(t)), Some(t), "{text}");
        }
        assert_eq!(
            format_rfc3339(Time { sec: 0, nsec: 7 }),
            "1970-01-01T00:00:00.000000007Z"
        );
        let offset = parse_rfc3339("2021-03-04T07:06:07.25+02:00");
        assert_eq!(
            offset,
            Some(Time {
                sec: 1_614_834_367,
                nsec: 250_000_000
            })
        );
        for bad in [
            "",
            "yesterday",
            "2021-13-01T00:00:00Z",
            "2021-03-04T05:06:07",
            "2021-03-04T05:06:07.Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
