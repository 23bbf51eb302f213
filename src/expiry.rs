//! Version and expiry rules (reference/garage-sign.md §5.3), garage-sign 0.7.7 flavour:
//! `--expires T` is used as given; `--expire-after P` is now + a Java `Period` in
//! calendar arithmetic; neither gives max(previous, now + default). A result in the
//! past is refused unless `--force`.

use crate::error::{Error, Result};
use crate::metadata::Expires;
use chrono::{DateTime, Days, Months, Utc};

/// Default lifetimes.
pub const TARGETS_DAYS: u64 = 31;
pub const ROOT_DAYS: u64 = 365;

/// A `java.time.Period`: years, months, days (weeks are folded into days).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    pub years: i64,
    pub months: i64,
    pub days: i64,
}

impl Period {
    /// `Period.parse("P" + s)`: `1Y3M5D`, `2W`, `1M`, lower case and signs accepted.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || {
            Error::Usage(format!(
                "invalid --expire-after {s:?}: use a period like 1Y, 3M, 2W, 10D or 1Y3M5D"
            ))
        };
        let mut rest = s.trim();
        let mut sign = 1;
        if let Some(r) = rest.strip_prefix('-') {
            sign = -1;
            rest = r;
        } else if let Some(r) = rest.strip_prefix('+') {
            rest = r;
        }
        let rest = rest.strip_prefix(['P', 'p']).unwrap_or(rest);
        let (mut years, mut months, mut weeks, mut days) = (None, None, None, None);
        let mut order = 0;
        let mut start = 0;
        for (i, c) in rest.char_indices() {
            if c.is_ascii_digit() || ((c == '-' || c == '+') && i == start) {
                continue;
            }
            let n: i64 = rest[start..i].parse().map_err(|_| bad())?;
            let (slot, pos) = match c.to_ascii_uppercase() {
                'Y' => (&mut years, 1),
                'M' => (&mut months, 2),
                'W' => (&mut weeks, 3),
                'D' => (&mut days, 4),
                _ => return Err(bad()),
            };
            if pos <= order || slot.is_some() {
                return Err(bad());
            }
            order = pos;
            *slot = Some(n);
            start = i + c.len_utf8();
        }
        if start != rest.len() || order == 0 {
            return Err(bad());
        }
        let days = weeks
            .unwrap_or(0)
            .checked_mul(7)
            .and_then(|w| w.checked_add(days.unwrap_or(0)))
            .ok_or_else(bad)?;
        Ok(Period {
            years: sign * years.unwrap_or(0),
            months: sign * months.unwrap_or(0),
            days: sign * days,
        })
    }

    /// `OffsetDateTime.plus(Period)`: months (years folded in) first, clamping to the
    /// month's end, then days.
    pub fn add_to(&self, t: DateTime<Utc>) -> Result<DateTime<Utc>> {
        let overflow = || Error::Usage("the --expire-after period is out of range".into());
        let months = self
            .years
            .checked_mul(12)
            .and_then(|y| y.checked_add(self.months))
            .ok_or_else(overflow)?;
        let m = Months::new(u32::try_from(months.unsigned_abs()).map_err(|_| overflow())?);
        let t = if months >= 0 {
            t.checked_add_months(m)
        } else {
            t.checked_sub_months(m)
        }
        .ok_or_else(overflow)?;
        let d = Days::new(self.days.unsigned_abs());
        if self.days >= 0 {
            t.checked_add_days(d)
        } else {
            t.checked_sub_days(d)
        }
        .ok_or_else(overflow)
    }
}

/// What the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpiryChoice {
    At(Expires),
    After(Period),
    Default,
}

impl ExpiryChoice {
    /// `--expires` and `--expire-after` together are refused (garage-sign checkConfig).
    pub fn from_flags(expires: Option<&str>, expire_after: Option<&str>) -> Result<Self> {
        match (expires, expire_after) {
            (Some(_), Some(_)) => Err(Error::Usage(
                "--expires and --expire-after cannot be used together".into(),
            )),
            (Some(e), None) => Ok(ExpiryChoice::At(Expires::parse(e).map_err(|_| {
                Error::Usage(format!(
                    "invalid --expires {e:?}: use an instant like 2030-01-01T00:00:00Z"
                ))
            })?)),
            (None, Some(p)) => Ok(ExpiryChoice::After(Period::parse(p)?)),
            (None, None) => Ok(ExpiryChoice::Default),
        }
    }

    /// The new `expires`: default = max(previous, now + `default_days`).
    pub fn resolve(
        &self,
        previous: Option<Expires>,
        default_days: u64,
        now: DateTime<Utc>,
        force: bool,
    ) -> Result<Expires> {
        let t = match self {
            ExpiryChoice::At(t) => *t,
            ExpiryChoice::After(p) => Expires::new(p.add_to(now)?),
            ExpiryChoice::Default => {
                let fresh = Expires::new(now + chrono::Duration::days(default_days as i64));
                previous.map_or(fresh, |p| p.max(fresh))
            }
        };
        if t.datetime() < now && !force {
            return Err(Error::PastDate {
                expires: t.to_string(),
            });
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
    }

    #[test]
    fn java_period_syntax() {
        assert_eq!(
            Period::parse("1Y3M5D").unwrap(),
            Period {
                years: 1,
                months: 3,
                days: 5
            }
        );
        assert_eq!(
            Period::parse("2W").unwrap(),
            Period {
                years: 0,
                months: 0,
                days: 14
            }
        );
        assert_eq!(
            Period::parse("1m").unwrap(),
            Period {
                years: 0,
                months: 1,
                days: 0
            }
        );
        assert_eq!(
            Period::parse("-1D").unwrap(),
            Period {
                years: 0,
                months: 0,
                days: -1
            }
        );
        assert_eq!(Period::parse("1W2D").unwrap().days, 9);
        for bad in ["", "Y", "1D1Y", "1X", "1Y1Y", "1.5D", "P"] {
            assert!(Period::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn calendar_arithmetic_clamps_month_end() {
        let p = Period::parse("1M").unwrap();
        assert_eq!(p.add_to(at(2025, 1, 31)).unwrap(), at(2025, 2, 28));
        let p = Period::parse("1Y1M1D").unwrap();
        assert_eq!(p.add_to(at(2024, 1, 31)).unwrap(), at(2025, 3, 1));
    }

    #[test]
    fn default_is_max_of_previous_and_fresh() {
        let now = at(2025, 1, 1);
        let later = Expires::new(at(2026, 1, 1));
        assert_eq!(
            ExpiryChoice::Default
                .resolve(Some(later), 31, now, false)
                .unwrap(),
            later
        );
        let earlier = Expires::new(at(2025, 1, 10));
        assert_eq!(
            ExpiryChoice::Default
                .resolve(Some(earlier), 31, now, false)
                .unwrap(),
            Expires::new(at(2025, 2, 1))
        );
        let past = ExpiryChoice::At(Expires::new(at(2024, 1, 1)));
        assert_eq!(
            past.resolve(None, 31, now, false).unwrap_err().exit_code(),
            1
        );
        assert!(past.resolve(None, 31, now, true).is_ok());
        assert!(ExpiryChoice::from_flags(Some("2030-01-01T00:00:00Z"), Some("1M")).is_err());
    }
}
