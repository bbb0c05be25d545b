//! The one contact policy: whether a customer may be called at a moment,
//! and if not, which rule stops the call and until when.
//!
//! Pure functions over what the store knows about the customer, so the
//! rules read (and are unit-tested) in one place. Time-of-day rules are
//! evaluated in the customer's own IANA zone, daylight-saving changes
//! included (`chrono-tz`).

use callcenter_proto::outbound::{AccountStatus, ContactPolicy};
use chrono::{DateTime, Datelike, Days, LocalResult, NaiveDate, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

pub const DAY_MS: i64 = 86_400_000;
const MINUTE_MS: i64 = 60_000;

/// The rules, as recorded on a stopped call.
pub mod rule {
    pub const NO_CONSENT: &str = "no_consent";
    pub const DO_NOT_CALL: &str = "do_not_call";
    pub const PHONE_INVALID: &str = "phone_invalid";
    pub const ERASED: &str = "erased";
    pub const ACCOUNT_FROZEN: &str = "account_frozen";
    pub const ACCOUNT_DISPUTED: &str = "account_disputed";
    pub const OPEN_COMPLAINT: &str = "open_complaint";
    pub const FREQUENCY_CAP: &str = "frequency_cap";
    pub const QUIET_HOURS: &str = "quiet_hours";
    pub const WEEKDAY: &str = "weekday";
    pub const ATTEMPTS_EXHAUSTED: &str = "attempts_exhausted";
}

/// When the policy is asked: while planning (consent, do-not-call and time
/// rules) or when the call falls due (every rule).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Scheduled,
    Due,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Scheduled => "scheduled",
            Phase::Due => "due",
        }
    }
}

/// What the store knows about the customer, as the policy needs it.
#[derive(Clone, Debug)]
pub struct Customer {
    pub consent_calls: bool,
    pub do_not_call: bool,
    pub phone_invalid: bool,
    pub erased: bool,
    pub account_status: AccountStatus,
    /// The customer's zone (the policy's default when missing or unknown).
    pub timezone: Tz,
    /// Inbound tickets not yet ended.
    pub open_complaints: Vec<i64>,
    /// When other conversations (other call chains) reached or are reaching
    /// the customer, newest or oldest in any order.
    pub contacts_ms: Vec<i64>,
}

/// The call being judged.
#[derive(Clone, Copy, Debug)]
pub struct Call {
    /// The complaint this call follows up, which does not hold it back.
    pub complaint_ticket_id: Option<i64>,
    /// Where to route a frozen or disputed account's call; None: skip it.
    pub restricted_category_id: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Call at `at_ms`; through another category when the account is
    /// restricted and the journey routes such calls (`rule` says why).
    Go {
        at_ms: i64,
        route_category_id: Option<i64>,
        rule: Option<&'static str>,
    },
    /// Not before `until_ms`, because of `rule`.
    Defer {
        rule: &'static str,
        until_ms: i64,
        detail: String,
    },
    /// Never (for this call), because of `rule`.
    Skip { rule: &'static str, detail: String },
}

/// Calling hours and weekdays, parsed from the policy.
#[derive(Clone, Copy, Debug)]
pub struct CallingHours {
    from_min: u32,
    until_min: u32,
    weekdays: [bool; 7],
}

pub fn parse_hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && h.to_string().len() <= 2 && m.to_string().len() <= 2).then_some(h * 60 + m)
}

impl CallingHours {
    pub fn of(policy: &ContactPolicy) -> Option<CallingHours> {
        let from_min = parse_hhmm(&policy.call_from)?;
        let until_min = parse_hhmm(&policy.call_until)?;
        let mut weekdays = [false; 7];
        for &d in &policy.weekdays {
            if !(1..=7).contains(&d) {
                return None;
            }
            weekdays[usize::from(d - 1)] = true;
        }
        (from_min < until_min && weekdays.iter().any(|d| *d)).then_some(CallingHours {
            from_min,
            until_min,
            weekdays,
        })
    }

    fn allows(&self, day: Weekday) -> bool {
        self.weekdays[day.num_days_from_monday() as usize]
    }

    /// The first moment at or after `t_ms` inside calling hours in `tz`, and
    /// the rule that moved it (None when `t_ms` is already allowed).
    pub fn next_allowed(&self, t_ms: i64, tz: Tz) -> (i64, Option<&'static str>) {
        let Some(utc) = DateTime::<Utc>::from_timestamp_millis(t_ms) else {
            return (t_ms, None);
        };
        let today = utc.with_timezone(&tz).date_naive();
        let moved_by = if self.allows(today.weekday()) {
            rule::QUIET_HOURS
        } else {
            rule::WEEKDAY
        };
        for d in 0..=8 {
            let Some(day) = today.checked_add_days(Days::new(d)) else {
                break;
            };
            if !self.allows(day.weekday()) {
                continue;
            }
            let start = local_instant(tz, day, self.from_min);
            let end = local_instant(tz, day, self.until_min);
            if t_ms < start {
                return (start, Some(moved_by));
            }
            if t_ms < end {
                return (t_ms, if d == 0 { None } else { Some(moved_by) });
            }
        }
        (t_ms + 7 * DAY_MS, Some(moved_by))
    }
}

/// Unix milliseconds of a local wall-clock time on `day` in `tz`. A time in
/// a daylight-saving gap moves forward to the first one that exists; an
/// ambiguous one (the hour repeated in autumn) takes the earlier.
pub fn local_instant(tz: Tz, day: NaiveDate, minutes: u32) -> i64 {
    let mut m = minutes;
    loop {
        let Some(naive) = day.and_hms_opt(m / 60, m % 60, 0) else {
            return day
                .and_hms_opt(0, 0, 0)
                .map(|n| n.and_utc().timestamp_millis())
                .unwrap_or_default();
        };
        match tz.from_local_datetime(&naive) {
            LocalResult::Single(t) => return t.timestamp_millis(),
            LocalResult::Ambiguous(a, _) => return a.timestamp_millis(),
            LocalResult::None => m += 15,
        }
    }
}

/// The zone of a customer, or the policy's default.
pub fn zone(name: Option<&str>, default: &str) -> Tz {
    name.and_then(|n| n.parse::<Tz>().ok())
        .or_else(|| default.parse::<Tz>().ok())
        .unwrap_or(Tz::UTC)
}

/// Judge a call wanted at `at_ms` (now, or its planned due time) under the
/// policy.
pub fn judge(
    policy: &ContactPolicy,
    hours: &CallingHours,
    phase: Phase,
    now_ms: i64,
    at_ms: i64,
    customer: &Customer,
    call: &Call,
) -> Verdict {
    let at_ms = at_ms.max(now_ms);
    let skip = |rule, detail: &str| Verdict::Skip {
        rule,
        detail: detail.to_string(),
    };
    if customer.erased {
        return skip(rule::ERASED, "the customer's data was erased");
    }
    if customer.do_not_call {
        return skip(rule::DO_NOT_CALL, "the customer asked not to be called");
    }
    if !customer.consent_calls {
        return skip(rule::NO_CONSENT, "no consent to service calls on record");
    }
    if customer.phone_invalid {
        return skip(rule::PHONE_INVALID, "the last call reached a wrong number");
    }
    let mut route_category_id = None;
    let mut route_rule = None;
    if phase == Phase::Due {
        let restricted = match customer.account_status {
            AccountStatus::Active => None,
            AccountStatus::Frozen => Some(rule::ACCOUNT_FROZEN),
            AccountStatus::Disputed => Some(rule::ACCOUNT_DISPUTED),
        };
        if let Some(r) = restricted {
            match call.restricted_category_id {
                None => return skip(r, "the account is not in good standing"),
                Some(category) => {
                    route_category_id = Some(category);
                    route_rule = Some(r);
                }
            }
        }
        let blocking = customer
            .open_complaints
            .iter()
            .any(|t| Some(*t) != call.complaint_ticket_id);
        if blocking {
            let until = hours.next_allowed(
                at_ms + i64::from(policy.open_complaint_recheck_minutes.max(1)) * MINUTE_MS,
                customer.timezone,
            );
            return Verdict::Defer {
                rule: rule::OPEN_COMPLAINT,
                until_ms: until.0,
                detail: "the customer has an open complaint; looked at again then".into(),
            };
        }
    }
    if let Some(free_at) = cap_frees_at(policy, at_ms, &customer.contacts_ms) {
        let (until_ms, _) = hours.next_allowed(free_at, customer.timezone);
        return Verdict::Defer {
            rule: rule::FREQUENCY_CAP,
            until_ms,
            detail: format!(
                "at most {} outbound contact(s) per {} days",
                policy.max_contacts, policy.window_days
            ),
        };
    }
    match hours.next_allowed(at_ms, customer.timezone) {
        (t, Some(rule)) => Verdict::Defer {
            rule,
            until_ms: t,
            detail: format!(
                "calling hours {}-{} on allowed weekdays in {}",
                policy.call_from,
                policy.call_until,
                customer.timezone.name()
            ),
        },
        (t, None) => Verdict::Go {
            at_ms: t,
            route_category_id,
            rule: route_rule,
        },
    }
}

/// When the frequency cap lets another contact happen, if it does not at `at_ms`.
pub fn cap_frees_at(policy: &ContactPolicy, at_ms: i64, contacts_ms: &[i64]) -> Option<i64> {
    let window = i64::from(policy.window_days) * DAY_MS;
    let mut recent: Vec<i64> = contacts_ms
        .iter()
        .copied()
        .filter(|t| *t > at_ms - window && *t <= at_ms)
        .collect();
    let max = policy.max_contacts as usize;
    if recent.len() < max.max(1) && max > 0 {
        return None;
    }
    recent.sort_unstable();
    // Dropping the oldest `len - max + 1` contacts makes room for one more.
    let idx = recent.len().saturating_sub(max);
    Some(recent.get(idx).copied().unwrap_or(at_ms) + window)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .unwrap()
            .timestamp_millis()
    }

    fn customer(tz: &str) -> Customer {
        Customer {
            consent_calls: true,
            do_not_call: false,
            phone_invalid: false,
            erased: false,
            account_status: AccountStatus::Active,
            timezone: tz.parse().unwrap(),
            open_complaints: vec![],
            contacts_ms: vec![],
        }
    }

    const CALL: Call = Call {
        complaint_ticket_id: None,
        restricted_category_id: None,
    };

    #[test]
    fn calling_hours_follow_daylight_saving_in_new_york() {
        let policy = ContactPolicy::default();
        let hours = CallingHours::of(&policy).unwrap();
        let tz: Tz = "America/New_York".parse().unwrap();
        // Saturday 2026-03-07, 05:00 local (EST, UTC-5): 09:00 local is 14:00 UTC.
        assert_eq!(
            hours.next_allowed(ms(2026, 3, 7, 10, 0), tz),
            (ms(2026, 3, 7, 14, 0), Some(rule::QUIET_HOURS))
        );
        // After the change on Sunday 2026-03-08 (a day off): Monday 09:00 EDT is 13:00 UTC.
        assert_eq!(
            hours.next_allowed(ms(2026, 3, 8, 15, 0), tz),
            (ms(2026, 3, 9, 13, 0), Some(rule::WEEKDAY))
        );
        // Inside the hours nothing moves.
        assert_eq!(
            hours.next_allowed(ms(2026, 3, 9, 13, 30), tz),
            (ms(2026, 3, 9, 13, 30), None)
        );
        // After 20:00 local: the next morning.
        assert_eq!(
            hours.next_allowed(ms(2026, 3, 10, 1, 0), tz),
            (ms(2026, 3, 10, 13, 0), Some(rule::QUIET_HOURS))
        );
    }

    #[test]
    fn a_wall_clock_time_in_the_gap_moves_forward() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 3, 29).unwrap();
        // 02:30 does not exist that night; 03:00 CEST is 01:00 UTC.
        assert_eq!(local_instant(tz, day, 150), ms(2026, 3, 29, 1, 0));
    }

    #[test]
    fn the_cap_counts_contacts_inside_the_window() {
        let policy = ContactPolicy::default();
        let now = ms(2026, 3, 10, 12, 0);
        assert_eq!(cap_frees_at(&policy, now, &[]), None);
        assert_eq!(cap_frees_at(&policy, now, &[now - 8 * DAY_MS]), None);
        assert_eq!(
            cap_frees_at(&policy, now, &[now - 2 * DAY_MS]),
            Some(now + 5 * DAY_MS)
        );
        let two = ContactPolicy {
            max_contacts: 2,
            ..ContactPolicy::default()
        };
        assert_eq!(cap_frees_at(&two, now, &[now - DAY_MS]), None);
        assert_eq!(
            cap_frees_at(&two, now, &[now - DAY_MS, now - 3 * DAY_MS]),
            Some(now + 4 * DAY_MS)
        );
    }

    #[test]
    fn consent_and_account_rules_decide_before_time() {
        let policy = ContactPolicy::default();
        let hours = CallingHours::of(&policy).unwrap();
        let now = ms(2026, 3, 10, 12, 0);
        let mut c = customer("UTC");
        c.consent_calls = false;
        assert!(matches!(
            judge(&policy, &hours, Phase::Due, now, now, &c, &CALL),
            Verdict::Skip {
                rule: rule::NO_CONSENT,
                ..
            }
        ));
        let mut c = customer("UTC");
        c.account_status = AccountStatus::Frozen;
        assert!(matches!(
            judge(&policy, &hours, Phase::Due, now, now, &c, &CALL),
            Verdict::Skip {
                rule: rule::ACCOUNT_FROZEN,
                ..
            }
        ));
        // Planning does not judge the account: it may be settled by then.
        assert!(matches!(
            judge(&policy, &hours, Phase::Scheduled, now, now, &c, &CALL),
            Verdict::Go { .. }
        ));
        let routed = Call {
            restricted_category_id: Some(9),
            ..CALL
        };
        assert_eq!(
            judge(&policy, &hours, Phase::Due, now, now, &c, &routed),
            Verdict::Go {
                at_ms: now,
                route_category_id: Some(9),
                rule: Some(rule::ACCOUNT_FROZEN)
            }
        );
    }
}
