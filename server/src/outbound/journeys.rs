//! Journeys: admin-defined, versioned rules that plan outbound calls from
//! events (a purchase, a membership's end, a resolved complaint, a shared
//! date). Each step plans one call, due a number of days from its trigger,
//! with the purpose and script the agent will see.

use super::policy::{self, DAY_MS};
use super::store::NewCall;
use crate::desk::Desk;
use crate::error::ApiResult;
use crate::http::Check;
use callcenter_proto::http::Ticket;
use callcenter_proto::outbound::{
    CallPurpose, Journey, JourneySpec, JourneyTrigger, RestrictedAccounts,
};
use chrono::{DateTime, Datelike, NaiveDate, Utc};

/// A step whose time passed longer ago than this is not planned (for
/// example a check-in for a purchase imported from last year).
pub const LATE_GRACE_MS: i64 = DAY_MS;

/// Something that happened to a customer and may start journeys.
#[derive(Clone, Copy, Debug)]
pub enum Trigger {
    Purchase {
        customer_id: i64,
        purchase_id: i64,
        at_ms: i64,
    },
    MembershipEnd {
        customer_id: i64,
        membership_id: i64,
        ends_at_ms: i64,
    },
    ComplaintResolved {
        customer_id: i64,
        ticket_id: i64,
        at_ms: i64,
    },
    SharedDate {
        customer_id: i64,
        date_id: i64,
        month: u8,
        day: u8,
        /// The year of the occurrence to plan; None: the next one.
        year: Option<i32>,
    },
}

impl Trigger {
    fn kind(&self) -> JourneyTrigger {
        match self {
            Trigger::Purchase { .. } => JourneyTrigger::Purchase,
            Trigger::MembershipEnd { .. } => JourneyTrigger::MembershipEnd,
            Trigger::ComplaintResolved { .. } => JourneyTrigger::ComplaintResolved,
            Trigger::SharedDate { .. } => JourneyTrigger::SharedDate,
        }
    }
}

pub fn validate(spec: &JourneySpec) -> ApiResult<()> {
    let mut check = Check::new();
    check.text("name", &spec.name, 200);
    check.that(
        (1..=10).contains(&spec.steps.len()),
        "steps",
        "1 to 10 steps",
    );
    for (i, step) in spec.steps.iter().enumerate() {
        check.text(&format!("steps[{i}].purpose"), &step.purpose, 200);
        check.text(&format!("steps[{i}].script"), &step.script, 4000);
        check.that(
            step.days <= 3650,
            &format!("steps[{i}].days"),
            "at most 3650 days",
        );
    }
    check.done()
}

impl Desk {
    /// Check that a journey's categories exist.
    pub(crate) async fn check_journey_categories(&self, spec: &JourneySpec) -> ApiResult<()> {
        let mut check = Check::new();
        check.that(
            self.db.category(spec.category_id).await.is_ok(),
            "category_id",
            "no category has this id",
        );
        if let RestrictedAccounts::Route { category_id } = spec.restricted_accounts {
            check.that(
                self.db.category(category_id).await.is_ok(),
                "restricted_accounts.category_id",
                "no category has this id",
            );
        }
        check.done()
    }

    /// Plan the calls of every active journey this event starts. Planning is
    /// idempotent: the same event plans each step once.
    pub async fn journeys_on(&self, trigger: Trigger) -> anyhow::Result<usize> {
        // Purchases and renewals also count as retention after complaints (issue 7).
        self.retention_on(&trigger).await;
        let journeys = self.db.journeys(Some(trigger.kind().as_str())).await?;
        if journeys.is_empty() {
            return Ok(0);
        }
        let now = self.clock.now_ms();
        let mut planned = 0;
        for journey in &journeys {
            for (i, step) in journey.spec.steps.iter().enumerate() {
                let days = i64::from(step.days) * DAY_MS;
                let (customer_id, source_kind, source_id, due, complaint, key_suffix) =
                    match trigger {
                        Trigger::Purchase {
                            customer_id,
                            purchase_id,
                            at_ms,
                        } => (
                            customer_id,
                            "purchase",
                            purchase_id,
                            at_ms + days,
                            None,
                            String::new(),
                        ),
                        Trigger::MembershipEnd {
                            customer_id,
                            membership_id,
                            ends_at_ms,
                        } => (
                            customer_id,
                            "membership",
                            membership_id,
                            ends_at_ms - days,
                            None,
                            String::new(),
                        ),
                        Trigger::ComplaintResolved {
                            customer_id,
                            ticket_id,
                            at_ms,
                        } => (
                            customer_id,
                            "complaint",
                            ticket_id,
                            at_ms + days,
                            Some(ticket_id),
                            String::new(),
                        ),
                        Trigger::SharedDate {
                            customer_id,
                            date_id,
                            month,
                            day,
                            year,
                        } => {
                            let Some((year, midnight)) =
                                self.date_occurrence(customer_id, month, day, year).await?
                            else {
                                continue;
                            };
                            (
                                customer_id,
                                "shared_date",
                                date_id,
                                midnight + days,
                                None,
                                format!(":{year}"),
                            )
                        }
                    };
                if due < now - LATE_GRACE_MS {
                    continue;
                }
                let new = NewCall {
                    dedupe_key: format!(
                        "j{}:s{}:{}:{}{}",
                        journey.id, i, source_kind, source_id, key_suffix
                    ),
                    customer_id,
                    chain_id: None,
                    journey_id: Some(journey.id),
                    journey_version: Some(journey.version),
                    step_index: Some(i as i64),
                    source_kind,
                    source_id,
                    purposes: vec![purpose_of(journey, i)],
                    category_id: journey.spec.category_id,
                    restricted_category_id: match journey.spec.restricted_accounts {
                        RestrictedAccounts::Skip => None,
                        RestrictedAccounts::Route { category_id } => Some(category_id),
                    },
                    complaint_ticket_id: complaint,
                    attempt: 1,
                    due_at_ms: due.max(now),
                };
                if self.plan_call(new).await?.is_some() {
                    planned += 1;
                }
            }
        }
        Ok(planned)
    }

    /// The start (local midnight, in the customer's zone) of the date's
    /// occurrence in `year`, or the next one from today. None for a date that
    /// does not occur that year (29 February).
    async fn date_occurrence(
        &self,
        customer_id: i64,
        month: u8,
        day: u8,
        year: Option<i32>,
    ) -> anyhow::Result<Option<(i32, i64)>> {
        let p = self.db.contact_policy().await?;
        let tz_name = self.db.customer(customer_id).await?.timezone;
        let tz = policy::zone(tz_name.as_deref(), &p.default_timezone);
        let now = self.clock.now_ms();
        let today = DateTime::<Utc>::from_timestamp_millis(now)
            .unwrap_or_default()
            .with_timezone(&tz)
            .date_naive();
        let at = |y: i32| {
            NaiveDate::from_ymd_opt(y, u32::from(month), u32::from(day))
                .map(|d| (y, policy::local_instant(tz, d, 0)))
        };
        Ok(match year {
            Some(y) => at(y),
            None => {
                let this_year =
                    NaiveDate::from_ymd_opt(today.year(), u32::from(month), u32::from(day));
                match this_year {
                    Some(d) if d >= today => at(today.year()),
                    _ => (1..=4).find_map(|n| at(today.year() + n)),
                }
            }
        })
    }

    /// When a greeting falls due, plan next year's.
    pub(crate) async fn plan_next_greeting(
        &self,
        call: &super::store::CallRow,
    ) -> anyhow::Result<()> {
        let Ok(date) = self.db.shared_date(call.source_id).await else {
            return Ok(());
        };
        let now = self.clock.now_ms();
        let year = DateTime::<Utc>::from_timestamp_millis(now)
            .unwrap_or_default()
            .year();
        for y in year + 1..=year + 4 {
            if NaiveDate::from_ymd_opt(y, u32::from(date.month), u32::from(date.day)).is_some() {
                self.journeys_on(Trigger::SharedDate {
                    customer_id: date.customer_id,
                    date_id: date.id,
                    month: date.month,
                    day: date.day,
                    year: Some(y),
                })
                .await?;
                break;
            }
        }
        Ok(())
    }

    /// A ticket was resolved: a resolved inbound complaint starts the
    /// `complaint_resolved` journeys. Failures are logged, never returned:
    /// the resolve itself is already committed.
    pub async fn ticket_resolved(&self, ticket: &Ticket) {
        if ticket.kind != "inbound" || !ticket.outcome.as_ref().is_some_and(|o| o.resolved) {
            return;
        }
        let trigger = Trigger::ComplaintResolved {
            customer_id: ticket.customer_id,
            ticket_id: ticket.id,
            at_ms: ticket.resolved_at_ms.unwrap_or_else(|| self.clock.now_ms()),
        };
        if let Err(e) = self.journeys_on(trigger).await {
            tracing::warn!(error = %e, ticket_id = ticket.id, "could not plan follow-up calls");
        }
    }

    /// A purchase was recorded: start the `purchase` journeys.
    pub async fn purchase_recorded(&self, customer_id: i64, purchase_id: i64, at_ms: i64) {
        let trigger = Trigger::Purchase {
            customer_id,
            purchase_id,
            at_ms,
        };
        if let Err(e) = self.journeys_on(trigger).await {
            tracing::warn!(error = %e, purchase_id, "could not plan check-in calls");
        }
    }
}

fn purpose_of(journey: &Journey, step: usize) -> CallPurpose {
    let s = &journey.spec.steps[step];
    CallPurpose {
        journey_id: Some(journey.id),
        journey_version: Some(journey.version),
        purpose: s.purpose.clone(),
        script: s.script.clone(),
    }
}
