//! A CronJob's `spec.schedule`, parsed as Kubernetes parses it (robfig/cron v3
//! `ParseStandard`: minute hour day-of-month month day-of-week, or a descriptor
//! such as `@daily`), and the times it fires in a time zone.
//!
//! Fire times are searched in the zone's civil (wall-clock) time, field by field,
//! then converted to instants:
//! - a civil time that does not exist (spring-forward gap) is skipped, so `30 2 * * *`
//!   does not fire on the day 02:30 is skipped;
//! - a civil time that exists twice (fall-back overlap) fires once, at its earlier
//!   instant; so during the repeated hour even `* * * * *` stays silent, since each of
//!   its minutes already fired in the first pass.
//!
//! robfig (and so the Kubernetes controller) steps instants and fires in both passes
//! of a repeated hour; podctl fires each wall-clock time at most once.

use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{ToSpan, Zoned};

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
    // robfig's star bit: a `*`/`?` day field makes day matching an AND instead of an OR.
    dom_star: bool,
    dow_star: bool,
}

/// Why a schedule or time zone is refused; the Display text is what follows the field path
/// in an API-server style message, e.g. `expected exactly 5 fields, found 4: "* * * *"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    #[error("empty spec string")]
    Empty,
    #[error("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")]
    TzInSchedule,
    #[error("expected exactly 5 fields, found {found}: {fields:?}")]
    FieldCount { found: usize, fields: String },
    #[error("podctl does not support @every schedules yet: {0}")]
    EveryUnsupported(String),
    #[error("unrecognized descriptor: {0}")]
    UnknownDescriptor(String),
    #[error("too many hyphens: {0}")]
    TooManyHyphens(String),
    #[error("too many slashes: {0}")]
    TooManySlashes(String),
    #[error("failed to parse int from {0}")]
    NotANumber(String),
    #[error("negative number ({value}) not allowed: {expr}")]
    Negative { value: i64, expr: String },
    #[error("beginning of range ({start}) below minimum ({min}): {expr}")]
    BelowMinimum { start: u64, min: u64, expr: String },
    #[error("end of range ({end}) above maximum ({max}): {expr}")]
    AboveMaximum { end: u64, max: u64, expr: String },
    #[error("beginning of range ({start}) beyond end of range ({end}): {expr}")]
    StartAfterEnd { start: u64, end: u64, expr: String },
    #[error("step of range should be a positive number: {0}")]
    ZeroStep(String),
    #[error("timeZone must be nil or non-empty string")]
    EmptyTimeZone,
    #[error(
        "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"
    )]
    LocalTimeZone,
    #[error("unknown time zone {0}")]
    UnknownTimeZone(String),
}

struct Bounds {
    min: u64,
    max: u64,
    names: &'static [&'static str],
}

impl Bounds {
    const fn new(min: u64, max: u64, names: &'static [&'static str]) -> Bounds {
        Bounds { min, max, names }
    }
}

const MINUTES: Bounds = Bounds::new(0, 59, &[]);
const HOURS: Bounds = Bounds::new(0, 23, &[]);
const DOMS: Bounds = Bounds::new(1, 31, &[]);
// Names are indexed from the field's minimum.
const MONTHS: Bounds = Bounds::new(1, 12, &MONTH_NAMES);
const MONTH_NAMES: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DOWS: Bounds = Bounds::new(0, 6, &["sun", "mon", "tue", "wed", "thu", "fri", "sat"]);

/// Bits `min..=max`.
fn span(min: u64, max: u64) -> u64 {
    (u64::MAX >> (63 - max)) & (u64::MAX << min)
}

impl Schedule {
    /// Parses a schedule as the API server does (robfig `ParseStandard` plus its TZ rule).
    pub fn parse(text: &str) -> Result<Schedule, CronError> {
        if text.is_empty() {
            return Err(CronError::Empty);
        }
        // Kubernetes validation refuses any "TZ" in the schedule, not only a `TZ=` prefix.
        if text.contains("TZ") {
            return Err(CronError::TzInSchedule);
        }
        // robfig matches descriptors on the untrimmed text: " @daily" is a 1-field spec.
        if text.starts_with('@') {
            return Self::descriptor(text);
        }
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [minute, hour, dom, month, dow] = fields[..] else {
            return Err(CronError::FieldCount {
                found: fields.len(),
                fields: fields.join(" "),
            });
        };
        let (minute, _) = parse_field(minute, &MINUTES)?;
        let (hour, _) = parse_field(hour, &HOURS)?;
        let (dom, dom_star) = parse_field(dom, &DOMS)?;
        let (month, _) = parse_field(month, &MONTHS)?;
        let (dow, dow_star) = parse_field(dow, &DOWS)?;
        Ok(Schedule {
            minute,
            hour,
            dom,
            month,
            dow,
            dom_star,
            dow_star,
        })
    }

    fn descriptor(text: &str) -> Result<Schedule, CronError> {
        let all = |b: &Bounds| span(b.min, b.max);
        let mut s = Schedule {
            minute: 1,
            hour: 1,
            dom: all(&DOMS),
            month: all(&MONTHS),
            dow: all(&DOWS),
            dom_star: true,
            dow_star: true,
        };
        match text {
            "@yearly" | "@annually" => {
                (s.dom, s.dom_star) = (1 << 1, false);
                s.month = 1 << 1;
            }
            "@monthly" => (s.dom, s.dom_star) = (1 << 1, false),
            "@weekly" => (s.dow, s.dow_star) = (1, false),
            "@daily" | "@midnight" => {}
            "@hourly" => s.hour = all(&HOURS),
            _ if text.starts_with("@every ") => {
                return Err(CronError::EveryUnsupported(text.into()))
            }
            _ => return Err(CronError::UnknownDescriptor(text.into())),
        }
        Ok(s)
    }

    /// The first time the schedule fires strictly after `after`, in `after`'s time zone,
    /// always at second 0 (and nanosecond 0); None if none within 5 years (e.g. `0 0 30 2 *`).
    pub fn next_after(&self, after: &Zoned) -> Option<Zoned> {
        let tz = after.time_zone();
        let dt = after.datetime();
        let mut cursor = dt.date().at(dt.hour(), dt.minute(), 0, 0);
        let last_year = cursor.year().checked_add(5)?;
        loop {
            let civil = self.next_civil(cursor, last_year)?;
            let ambiguous = tz.to_ambiguous_zoned(civil);
            if !matches!(ambiguous.offset(), AmbiguousOffset::Gap { .. }) {
                let fire = ambiguous.earlier().ok()?;
                if fire.timestamp() > after.timestamp() {
                    return Some(fire);
                }
            }
            cursor = civil.checked_add(1.minute()).ok()?;
        }
    }

    /// The first matching civil minute at or after `from`, in a year up to `last_year`.
    fn next_civil(&self, from: DateTime, last_year: i16) -> Option<DateTime> {
        let (mut y, mut mo, mut d) = (from.year(), from.month(), from.day());
        let (mut h, mut mi) = (from.hour(), from.minute());
        // Each field that overflows carries into the one above and resets those below;
        // the loop then re-checks from the month down.
        loop {
            if y > last_year {
                return None;
            }
            let Some(m) = next_bit(self.month, mo, 12) else {
                (y, mo, d, h, mi) = (y + 1, 1, 1, 0, 0);
                continue;
            };
            if m != mo {
                (mo, d, h, mi) = (m, 1, 0, 0);
            }
            let month_days = Date::new(y, mo, 1).ok()?.days_in_month();
            let Some(day) = (d..=month_days).find(|&day| self.day_matches(y, mo, day)) else {
                (mo, d, h, mi) = (mo + 1, 1, 0, 0);
                continue;
            };
            if day != d {
                (d, h, mi) = (day, 0, 0);
            }
            let Some(hour) = next_bit(self.hour, h, 23) else {
                (d, h, mi) = (d + 1, 0, 0);
                continue;
            };
            if hour != h {
                (h, mi) = (hour, 0);
            }
            let Some(minute) = next_bit(self.minute, mi, 59) else {
                (h, mi) = (h + 1, 0);
                continue;
            };
            return DateTime::new(y, mo, d, h, minute, 0, 0).ok();
        }
    }

    fn day_matches(&self, y: i16, mo: i8, d: i8) -> bool {
        let Ok(date) = Date::new(y, mo, d) else {
            return false;
        };
        let dom = self.dom & (1 << d) != 0;
        let dow = self.dow & (1 << date.weekday().to_sunday_zero_offset()) != 0;
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }
}

/// The lowest set bit of `bits` in `from..=max`.
fn next_bit(bits: u64, from: i8, max: u64) -> Option<i8> {
    let from = u64::try_from(from).ok().filter(|&f| f <= max)?;
    let found = bits & span(from, max);
    (found != 0).then(|| found.trailing_zeros() as i8)
}

/// A comma-separated list of ranges: its bits, and whether a range was a star.
fn parse_field(field: &str, bounds: &Bounds) -> Result<(u64, bool), CronError> {
    let (mut bits, mut star) = (0, false);
    // Like robfig, empty list items are ignored (a field of only commas matches nothing).
    for expr in field.split(',').filter(|e| !e.is_empty()) {
        let (b, s) = parse_range(expr, bounds)?;
        bits |= b;
        star |= s;
    }
    Ok((bits, star))
}

/// `*`, `?`, `a` or `a-b`, each optionally with `/step`, checked in robfig's order.
fn parse_range(expr: &str, bounds: &Bounds) -> Result<(u64, bool), CronError> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_high: Vec<&str> = range_and_step[0].split('-').collect();
    let (start, mut end, mut star) = if low_high[0] == "*" || low_high[0] == "?" {
        // robfig ignores whatever follows a star's hyphen.
        (bounds.min, bounds.max, true)
    } else {
        let start = parse_value(low_high[0], bounds)?;
        match low_high[..] {
            [_] => (start, start, false),
            [_, high] => (start, parse_value(high, bounds)?, false),
            _ => return Err(CronError::TooManyHyphens(expr.into())),
        }
    };
    let step = match range_and_step[..] {
        [_] => 1,
        [_, step] => {
            let step = parse_number(step)?;
            if low_high.len() == 1 {
                end = bounds.max;
            }
            // `*/1` stays a star, `*/2` does not.
            star &= step <= 1;
            step
        }
        _ => return Err(CronError::TooManySlashes(expr.into())),
    };
    let (expr, min, max) = (expr.to_string(), bounds.min, bounds.max);
    if start < min {
        return Err(CronError::BelowMinimum { start, min, expr });
    }
    if end > max {
        return Err(CronError::AboveMaximum { end, max, expr });
    }
    if start > end {
        return Err(CronError::StartAfterEnd { start, end, expr });
    }
    if step == 0 {
        return Err(CronError::ZeroStep(expr));
    }
    let bits = (start..=end).step_by(usize::try_from(step).unwrap_or(usize::MAX));
    Ok((bits.fold(0, |acc, v| acc | (1 << v)), star))
}

fn parse_value(text: &str, bounds: &Bounds) -> Result<u64, CronError> {
    let lower = text.to_ascii_lowercase();
    match bounds.names.iter().position(|&n| n == lower) {
        Some(i) => Ok(bounds.min + i as u64),
        None => parse_number(text),
    }
}

/// Go's `strconv.Atoi` (optional sign, 64-bit), then refusing negatives.
fn parse_number(text: &str) -> Result<u64, CronError> {
    let value: i64 = text
        .parse()
        .map_err(|_| CronError::NotANumber(text.into()))?;
    u64::try_from(value).map_err(|_| CronError::Negative {
        value,
        expr: text.into(),
    })
}

/// The time zone of a CronJob's `spec.timeZone`: None means the host's local zone
/// (jiff::tz::TimeZone::system()); Some(name) must be an IANA name found in the tz database
/// (jiff::tz::TimeZone::get); an unknown name is CronError::UnknownTimeZone (message:
/// `unknown time zone <name>`, as the API server says).
pub fn time_zone(name: Option<&str>) -> Result<TimeZone, CronError> {
    let Some(name) = name else {
        return Ok(TimeZone::system());
    };
    if name.is_empty() {
        return Err(CronError::EmptyTimeZone);
    }
    if name.eq_ignore_ascii_case("Local") {
        return Err(CronError::LocalTimeZone);
    }
    // jiff looks names up case-insensitively; Go's LoadLocation (on Linux) does not.
    match TimeZone::get(name) {
        Ok(tz) if tz.iana_name() == Some(name) => Ok(tz),
        _ => Err(CronError::UnknownTimeZone(name.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Up to `n` fire times after `from` (UTC unless it names a zone), then `none`.
    fn fires(spec: &str, from: &str, n: usize) -> String {
        let schedule = Schedule::parse(spec).unwrap();
        let zoned = match from.contains('[') {
            true => from.to_string(),
            false => format!("{from}[UTC]"),
        };
        let mut at: Zoned = zoned.parse().unwrap();
        let mut out = vec![];
        for _ in 0..n {
            let Some(next) = schedule.next_after(&at) else {
                out.push("none".to_string());
                break;
            };
            assert_eq!(next.subsec_nanosecond(), 0);
            at = next;
            let time = at.strftime("%FT%T%:z").to_string();
            out.push(time.trim_end_matches("+00:00").to_string());
        }
        out.join(" ")
    }

    fn err(spec: &str) -> String {
        Schedule::parse(spec).unwrap_err().to_string()
    }

    #[test]
    fn descriptors() {
        let p = |t| Schedule::parse(t).unwrap();
        for (d, f) in [
            ("@yearly", "0 0 1 1 *"),
            ("@annually", "0 0 1 1 *"),
            ("@monthly", "0 0 1 * *"),
            ("@weekly", "0 0 * * 0"),
            ("@daily", "0 0 * * *"),
            ("@midnight", "0 0 * * *"),
            ("@hourly", "0 * * * *"),
        ] {
            assert_eq!(p(d), p(f), "{d}");
        }
        assert_eq!(
            err("@every 1h"),
            "podctl does not support @every schedules yet: @every 1h"
        );
        assert_eq!(err("@fortnightly"), "unrecognized descriptor: @fortnightly");
        assert_eq!(err("@daily "), "unrecognized descriptor: @daily ");
    }

    #[test]
    fn field_syntax() {
        let p = |t| Schedule::parse(t).unwrap();
        assert_eq!(p("*/15 * * * *").minute, 1 | 1 << 15 | 1 << 30 | 1 << 45);
        assert_eq!(p("5/20 * * * *").minute, 1 << 5 | 1 << 25 | 1 << 45);
        assert_eq!(
            p("1-10/3 * * * *").minute,
            1 << 1 | 1 << 4 | 1 << 7 | 1 << 10
        );
        assert_eq!(p("1,3,5-6,, 12 * * *").minute, 0b110_1010);
        assert_eq!(p("0 0 * * MON-FRI").dow, 0b11_1110);
        assert_eq!(p("0 0 * jan,JUL *").month, 1 << 1 | 1 << 7);
        assert_eq!(p("0 0 ? * ?"), p("0 0 * * *"));
        assert_eq!(p("0 0 */1 * *"), p("0 0 * * *"));
        assert!(!p("0 0 */2 * *").dom_star);
        assert!(!p("0 0 1-31 * *").dom_star);
        assert_eq!(p("  0\t0 *  * *  "), p("0 0 * * *"));
    }

    #[test]
    fn errors() {
        let tz = "cannot use TZ or CRON_TZ in schedule, use timeZone field instead";
        #[rustfmt::skip]
        let cases = [
            ("", "empty spec string"),
            ("* * * *", r#"expected exactly 5 fields, found 4: "* * * *""#),
            ("0 0 * * * *", r#"expected exactly 5 fields, found 6: "0 0 * * * *""#),
            ("TZ=UTC 0 0 * * *", tz),
            ("CRON_TZ=Europe/Berlin @daily", tz),
            ("60 * * * *", "end of range (60) above maximum (59): 60"),
            ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
            ("* * * * 7", "end of range (7) above maximum (6): 7"),
            ("* 5-2 * * *", "beginning of range (5) beyond end of range (2): 5-2"),
            ("*/0 * * * *", "step of range should be a positive number: */0"),
            ("x * * * *", "failed to parse int from x"),
            ("* * * * MON-FRX", "failed to parse int from FRX"),
            ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
            ("*/2/3 * * * *", "too many slashes: */2/3"),
            ("*/-1 * * * *", "negative number (-1) not allowed: -1"),
        ];
        for (spec, msg) in cases {
            assert_eq!(err(spec), msg, "{spec:?}");
        }
    }

    #[test]
    fn next_after() {
        #[rustfmt::skip]
        let cases = [
            // Neither day field a star: the 13th OR Fridays (2026-02-13 is a Friday).
            ("0 0 13 * FRI", "2026-02-01T00:00", 5,
             "2026-02-06T00:00:00 2026-02-13T00:00:00 2026-02-20T00:00:00 2026-02-27T00:00:00 \
              2026-03-06T00:00:00"),
            // `*/2` clears the star: odd days OR Fridays (2026-03-06 is a Friday).
            ("0 0 */2 * FRI", "2026-03-03T00:00", 3,
             "2026-03-05T00:00:00 2026-03-06T00:00:00 2026-03-07T00:00:00"),
            // A star day of month (even `*/1`): Fridays only.
            ("0 0 * * FRI", "2026-03-03T00:00", 2, "2026-03-06T00:00:00 2026-03-13T00:00:00"),
            ("0 0 */1 * 5", "2026-03-03T00:00", 1, "2026-03-06T00:00:00"),
            ("@weekly", "2026-01-01T00:00", 1, "2026-01-04T00:00:00"),
            ("@yearly", "2026-01-01T00:00", 1, "2027-01-01T00:00:00"),
            ("@hourly", "2026-01-01T00:00", 1, "2026-01-01T01:00:00"),
            ("0 0 29 2 *", "2025-03-01T00:00", 2, "2028-02-29T00:00:00 2032-02-29T00:00:00"),
            ("0 0 29 2 *", "2097-03-01T00:00", 1, "none"),
            ("0 0 30 2 *", "2025-03-01T00:00", 1, "none"),
            ("59 23 31 12 *", "2025-12-31T23:59", 1, "2026-12-31T23:59:00"),
            ("0 0 * * *", "2025-12-31T23:59:59.9", 1, "2026-01-01T00:00:00"),
            ("15 10 31 * *", "2026-04-01T00:00", 1, "2026-05-31T10:15:00"),
            ("* * * * *", "2026-05-01T12:00:30", 2, "2026-05-01T12:01:00 2026-05-01T12:02:00"),
            ("* * * * *", "2026-05-01T12:01:00", 1, "2026-05-01T12:02:00"),
            ("0 9 * * *", "2026-05-01T10:00+02:00[Europe/Berlin]", 1, "2026-05-02T09:00:00+02:00"),
        ];
        for (spec, from, n, want) in cases {
            assert_eq!(fires(spec, from, n), want, "{spec:?} after {from}");
        }
    }

    #[test]
    fn daylight_saving() {
        #[rustfmt::skip]
        let cases = [
            // New York skips 2026-03-08 02:00-02:59.
            ("30 2 * * *", "2026-03-07T03:00-05:00[America/New_York]", 2,
             "2026-03-09T02:30:00-04:00 2026-03-10T02:30:00-04:00"),
            ("* * * * *", "2026-03-08T01:59-05:00[America/New_York]", 1, "2026-03-08T03:00:00-04:00"),
            // New York repeats 2026-11-01 01:00-01:59; each minute fires in the first pass only.
            ("30 1 * * *", "2026-11-01T00:00-04:00[America/New_York]", 2,
             "2026-11-01T01:30:00-04:00 2026-11-02T01:30:00-05:00"),
            ("30 1 * * *", "2026-11-01T01:10-05:00[America/New_York]", 1, "2026-11-02T01:30:00-05:00"),
            ("* * * * *", "2026-11-01T01:59-04:00[America/New_York]", 1, "2026-11-01T02:00:00-05:00"),
        ];
        for (spec, from, n, want) in cases {
            assert_eq!(fires(spec, from, n), want, "{spec:?} after {from}");
        }
    }

    #[test]
    fn time_zones() {
        let berlin = time_zone(Some("Europe/Berlin")).unwrap();
        assert_eq!(berlin.iana_name(), Some("Europe/Berlin"));
        let mars = time_zone(Some("Mars/Base")).unwrap_err();
        assert_eq!(mars.to_string(), "unknown time zone Mars/Base");
        let lower = time_zone(Some("europe/berlin")).unwrap_err();
        assert_eq!(lower, CronError::UnknownTimeZone("europe/berlin".into()));
        assert_eq!(time_zone(Some("")), Err(CronError::EmptyTimeZone));
        assert_eq!(time_zone(Some("Local")), Err(CronError::LocalTimeZone));
        assert!(time_zone(None).is_ok());
    }
}
