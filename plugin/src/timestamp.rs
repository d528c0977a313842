//! The API's ISO 8601 times (`2018-12-04T12:15:04.3825985Z`) as milliseconds since the Unix
//! epoch, to tell an action created by this call from an older one.

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction][Z|±HH:MM]`; a time without a zone is UTC, as the
/// API's `...Utc` members are. Anything else is `None`.
pub fn parse_ms(text: &str) -> Option<u64> {
    let (date, time) = text.trim().split_once(['T', ' '])?;
    let mut date_parts = date.splitn(3, '-');
    let year: i64 = number(date_parts.next()?, 4)?;
    let month: i64 = number(date_parts.next()?, 2)?;
    let day: i64 = number(date_parts.next()?, 2)?;

    let (clock, offset_minutes) = split_zone(time)?;
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let mut hms_parts = hms.splitn(3, ':');
    let hour: i64 = number(hms_parts.next()?, 2)?;
    let minute: i64 = number(hms_parts.next()?, 2)?;
    let second: i64 = number(hms_parts.next()?, 2)?;
    let valid = (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && hour < 24
        && minute < 60
        && second <= 60;
    if !valid || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let millis: i64 = format!("{fraction:0<3}")[..3].parse().ok()?;
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_minutes * 60;
    u64::try_from(seconds * 1000 + millis).ok()
}

/// Splits the zone off the clock time, as an offset in minutes east of UTC.
fn split_zone(time: &str) -> Option<(&str, i64)> {
    if let Some(clock) = time.strip_suffix(['Z', 'z']) {
        return Some((clock, 0));
    }
    match time.rfind(['+', '-']) {
        Some(at) if at >= 8 => {
            let (clock, zone) = time.split_at(at);
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let (h, m) = zone[1..].split_once(':')?;
            Some((clock, sign * (number(h, 2)? * 60 + number(m, 2)?)))
        }
        _ => Some((time, 0)),
    }
}

fn number(text: &str, digits: usize) -> Option<i64> {
    (text.len() == digits && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
/// Writes milliseconds since the Unix epoch as an OData `DateTimeOffset` literal in UTC,
/// floored to the second: `2026-11-27T00:00:00Z`, for a `$filter`.
pub fn format_secs(ms: u64) -> String {
    let seconds = ms / 1000;
    let days = i64::try_from(seconds / 86_400).unwrap_or(0);
    let of_day = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// The calendar date of a day counted from 1970-01-01 (the inverse of `days_from_civil`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_filter_literals_that_parse_back_to_the_second() {
        assert_eq!(format_secs(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_secs(1_795_737_600_999), "2026-11-27T00:00:00Z");
        assert_eq!(format_secs(951_782_400_000), "2000-02-29T00:00:00Z");
        for ms in [
            0,
            86_399_999,
            951_868_799_000,
            1_795_737_659_123,
            253_402_300_799_000,
        ] {
            assert_eq!(parse_ms(&format_secs(ms)), Some(ms / 1000 * 1000), "{ms}");
        }
    }

    #[test]
    fn parses_the_apis_spellings() {
        assert_eq!(parse_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_ms("2018-12-04T12:15:04.3825985Z"),
            Some(1_543_925_704_382)
        );
        assert_eq!(parse_ms("2018-12-04T12:15:04Z"), Some(1_543_925_704_000));
        assert_eq!(parse_ms("2018-12-04T12:15:04"), Some(1_543_925_704_000));
        assert_eq!(
            parse_ms("2018-12-04T13:15:04+01:00"),
            Some(1_543_925_704_000)
        );
        assert_eq!(parse_ms("2024-02-29T00:00:00.5Z"), Some(1_709_164_800_500));
    }

    #[test]
    fn refuses_anything_else() {
        for bad in [
            "",
            "yesterday",
            "2018-13-04T12:15:04Z",
            "2018-12-04",
            "2018-12-04T12:15Z",
        ] {
            assert_eq!(parse_ms(bad), None, "{bad}");
        }
    }
}
