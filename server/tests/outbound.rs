//! Outbound service calls over simulated weeks: journeys plan calls from
//! purchases, memberships and resolved complaints; the one contact policy
//! holds them back (days of silence, one frequency cap across journeys,
//! calling hours in the customer's zone across a daylight-saving change, a
//! frozen account, an open complaint); calls due together merge; outcomes
//! retry with backoff or call back at the requested time.

mod outbound_support;
mod support;

use callcenter_proto::outbound::{
    CallOutcome, CallResult, CallStatus, ContactPolicy, OutcomeReport,
};
use callcenter_proto::ws::{Command, ReplyResult, WsErrorCode};
use outbound_support::*;
use reqwest::StatusCode;
use serde_json::json;

fn reached() -> CallOutcome {
    CallOutcome {
        result: CallResult::Reached,
        reason_code: None,
        callback_at_ms: None,
        note: "All good".into(),
        confirmation: None,
    }
}

fn no_answer() -> CallOutcome {
    CallOutcome {
        result: CallResult::NoAnswer,
        reason_code: None,
        callback_at_ms: None,
        note: String::new(),
        confirmation: None,
    }
}

outbound_stories!(monday_morning();
    check_in_waits_for_days_of_silence_then_reaches_an_agent,
    inbound_outranks_outbound,
    one_cap_holds_across_journeys,
    frozen_account_is_skipped_with_its_reason_or_routed,
    open_complaint_holds_calls_back_and_resolution_is_followed_up,
    two_journeys_due_together_become_one_call,
    unanswered_call_is_retried_with_backoff_then_stops,
    callback_is_made_at_the_requested_time_and_refusals_are_reported,
    no_consent_or_do_not_call_means_no_call,
    greeting_on_a_shared_date_every_year,
);

outbound_stories!(utc(2026, 3, 7, 3, 0);
    calling_hours_hold_in_two_zones_across_daylight_saving,
);

async fn check_in_waits_for_days_of_silence_then_reaches_an_agent(mut c: Center) {
    c.journey("check-in", "purchase", &[(3, "Check-in after delivery")])
        .await;
    let anna = c.customer("anna", "Europe/Moscow").await;
    let mut console = c.console().await;
    c.purchase(anna, "order-1").await;
    let call = c.only_call(anna).await;
    assert_eq!(call.status, CallStatus::Scheduled);
    assert_eq!(call.due_at_ms, monday_morning() + 3 * DAY);

    // Two days of silence: nothing happens.
    c.advance(2 * DAY).await;
    c.run().await;
    assert_eq!(c.only_call(anna).await.status, CallStatus::Scheduled);

    // On the third day the call is made, with its purpose and script.
    c.advance(DAY).await;
    c.run().await;
    let offer = take_and_record(&mut console, reached()).await;
    assert_eq!(offer.ticket.kind, "outbound");
    assert_eq!(offer.ticket.description, "Check-in after delivery");
    assert_eq!(offer.customer.external_id, "anna");
    let brief = offer.outbound.expect("an outbound brief");
    assert_eq!(brief.purposes.len(), 1);
    assert_eq!(brief.purposes[0].purpose, "Check-in after delivery");
    assert!(brief.purposes[0].script.contains("no selling"));

    let call = c.only_call(anna).await;
    assert_eq!(call.status, CallStatus::Done);
    assert_eq!(call.outcome, Some(CallResult::Reached));
    assert_eq!(call.ticket_id, Some(offer.ticket.id));
    // An outcome is recorded once.
    let twice = console
        .command(Command::CallOutcome {
            ticket_id: offer.ticket.id,
            outcome: no_answer(),
        })
        .await;
    let ReplyResult::Error(error) = twice else {
        panic!("a second outcome was accepted: {twice:?}")
    };
    assert_eq!(error.code, WsErrorCode::Conflict);
    assert_eq!(c.only_call(anna).await.outcome, Some(CallResult::Reached));
    let history = c
        .app
        .get(
            &format!("/api/tickets/{}/history", offer.ticket.id),
            &c.app.admin_token,
        )
        .await;
    let resolved = history.body["ticket"]["outcome"]["code"].as_str();
    assert_eq!(resolved, Some("call_reached"));
}

async fn inbound_outranks_outbound(mut c: Center) {
    c.journey("check-in", "purchase", &[(1, "Check-in")]).await;
    let anna = c.customer("anna", "Europe/Moscow").await;
    let boris = c.customer("boris", "Europe/Moscow").await;
    c.purchase(anna, "order-1").await;
    c.advance(DAY).await;
    c.run().await;
    assert_eq!(c.only_call(anna).await.status, CallStatus::Fired);
    // The outbound call waits; a complaint comes in after it.
    let filed = c
        .app
        .complain(
            &c.app.admin_token,
            "k-1",
            boris,
            c.category,
            "Broken on arrival",
        )
        .await;
    assert_eq!(filed.status, StatusCode::CREATED, "{}", filed.body);
    // The agent (one ticket at a time) is offered the complaint first.
    let mut console = c.console().await;
    let first = next_offer(&mut console).await;
    assert_eq!(first.ticket.kind, "inbound");
    assert_eq!(first.ticket.customer_id, boris);
}

async fn one_cap_holds_across_journeys(mut c: Center) {
    c.set_policy(&ContactPolicy {
        merge_window_hours: 0,
        ..ContactPolicy::default()
    })
    .await;
    c.journey("check-in", "purchase", &[(1, "Check-in")]).await;
    c.journey("renewal", "membership_end", &[(3, "Renewal reminder")])
        .await;
    c.journey("welcome-gift", "purchase", &[(5, "Gift follow-up")])
        .await;
    let anna = c.customer("anna", "Europe/Moscow").await;
    c.purchase(anna, "order-1").await;
    c.membership(anna, "plan-1", monday_morning() + 6 * DAY)
        .await;

    // Tuesday: the check-in is the one contact of the week.
    c.advance(DAY).await;
    c.run().await;
    // Thursday, Saturday: the renewal reminder and the gift call wait for the
    // week to pass, each with the rule and the time recorded.
    c.advance(2 * DAY).await;
    c.advance(2 * DAY).await;
    c.run().await;
    let calls = c.calls(anna).await;
    let fired_at = calls[0].fired_at_ms.expect("check-in fired");
    assert_eq!(fired_at, monday_morning() + DAY);
    let held: Vec<_> = calls
        .iter()
        .filter(|x| x.status == CallStatus::Scheduled)
        .collect();
    assert_eq!(held.len(), 2, "{calls:#?}");
    for call in &held {
        assert_eq!(call.stopped_by.as_deref(), Some("frequency_cap"));
        assert_eq!(call.stopped_until_ms, Some(fired_at + 7 * DAY));
        assert!(call.decisions.iter().any(|d| d.action == "defer"
            && d.rule.as_deref() == Some("frequency_cap")
            && d.phase == "due"));
    }

    // A week after the check-in both fall due together: one call, not two.
    c.advance_to(fired_at + 7 * DAY).await;
    c.run().await;
    let calls = c.calls(anna).await;
    let fired: Vec<i64> = calls.iter().filter_map(|x| x.fired_at_ms).collect();
    assert_eq!(fired, vec![fired_at, fired_at + 7 * DAY], "{calls:#?}");
    assert_eq!(
        statuses(&calls[1..]),
        vec![CallStatus::Fired, CallStatus::Merged]
    );
    assert_eq!(calls[1].purposes.len(), 2);
}

async fn frozen_account_is_skipped_with_its_reason_or_routed(mut c: Center) {
    let journey = c.journey("check-in", "purchase", &[(1, "Check-in")]).await;
    let anna = c.customer("anna", "Europe/Moscow").await;
    c.purchase(anna, "order-1").await;
    c.contact(
        anna,
        json!({ "account_status": "frozen", "source": "billing" }),
    )
    .await;
    c.advance(DAY).await;
    c.run().await;
    let call = c.only_call(anna).await;
    assert_eq!(call.status, CallStatus::Skipped);
    assert_eq!(call.stopped_by.as_deref(), Some("account_frozen"));
    assert_eq!(call.ticket_id, None);

    // Version 2 of the journey routes restricted accounts to a special queue.
    let (special_queue, special_category) = c.app.queue("accounts", &[("accounts", 1)], 60).await;
    let updated = c
        .app
        .put(
            &format!("/api/admin/journeys/{journey}"),
            &c.app.admin_token,
            &json!({ "name": "check-in", "trigger": "purchase", "category_id": c.category,
                     "restricted_accounts": { "action": "route", "category_id": special_category },
                     "steps": [{ "days": 1, "purpose": "Check-in", "script": "Ask, do not sell." }] }),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.body["version"], 2);
    let boris = c.customer("boris", "Europe/Moscow").await;
    c.contact(
        boris,
        json!({ "account_status": "disputed", "source": "billing" }),
    )
    .await;
    c.purchase(boris, "order-2").await;
    c.advance(DAY).await;
    c.run().await;
    let call = c.only_call(boris).await;
    assert_eq!(call.status, CallStatus::Fired);
    assert_eq!(call.purposes[0].journey_version, Some(2));
    let route = call.decisions.last().expect("a decision");
    assert_eq!(
        (route.action.as_str(), route.rule.as_deref()),
        ("route", Some("account_disputed"))
    );
    let ticket = c
        .app
        .get(
            &format!("/api/tickets/{}", call.ticket_id.unwrap()),
            &c.app.admin_token,
        )
        .await;
    assert_eq!(ticket.body["queue_id"], special_queue);
}

async fn open_complaint_holds_calls_back_and_resolution_is_followed_up(mut c: Center) {
    c.set_policy(&ContactPolicy {
        max_contacts: 3,
        merge_window_hours: 0,
        ..ContactPolicy::default()
    })
    .await;
    c.journey("check-in", "purchase", &[(1, "Check-in")]).await;
    c.journey("confirm", "complaint_resolved", &[(2, "Did the fix hold?")])
        .await;
    let anna = c.customer("anna", "Europe/Moscow").await;
    c.purchase(anna, "order-1").await;
    let complaint = c
        .app
        .complain(&c.app.admin_token, "k-1", anna, c.category, "It leaks")
        .await;
    let complaint_id = complaint.body["id"].as_i64().unwrap();

    // The complaint is still open a day later: the check-in waits.
    c.advance(DAY).await;
    c.run().await;
    let call = c.only_call(anna).await;
    assert_eq!(call.stopped_by.as_deref(), Some("open_complaint"));
    assert_eq!(call.stopped_until_ms, Some(c.now() + HOUR));

    // The agent resolves it; a confirmation call is planned two days out.
    let mut console = c.console().await;
    let offer = next_offer(&mut console).await;
    assert_eq!(offer.ticket.id, complaint_id);
    console
        .command(Command::Accept {
            ticket_id: complaint_id,
            version: offer.version,
        })
        .await;
    let resolved = console
        .command(Command::Resolve {
            ticket_id: complaint_id,
            outcome: callcenter_proto::http::Outcome {
                code: "replaced".into(),
                resolved: true,
                note: String::new(),
            },
        })
        .await;
    assert!(matches!(resolved, ReplyResult::Ok { .. }), "{resolved:?}");
    let resolved_at = c.now();

    // An hour later the check-in goes ahead.
    c.advance(HOUR).await;
    c.run().await;
    let calls = c.calls(anna).await;
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert_eq!(calls[0].status, CallStatus::Fired);
    let confirm = &calls[1];
    assert_eq!(confirm.status, CallStatus::Scheduled);
    assert_eq!(confirm.purposes[0].purpose, "Did the fix hold?");
    assert_eq!(confirm.due_at_ms, resolved_at + 2 * DAY);

    // A new complaint holds the confirmation back too, until it is resolved.
    c.app
        .complain(
            &c.app.admin_token,
            "k-2",
            anna,
            c.category,
            "Now it rattles",
        )
        .await;
    c.advance(2 * DAY).await;
    c.run().await;
    let confirm = c.calls(anna).await.remove(1);
    assert_eq!(confirm.status, CallStatus::Scheduled);
    assert_eq!(confirm.stopped_by.as_deref(), Some("open_complaint"));
}

async fn two_journeys_due_together_become_one_call(mut c: Center) {
    c.journey("check-in", "purchase", &[(2, "Check-in")]).await;
    c.journey("renewal", "membership_end", &[(1, "Renewal reminder")])
        .await;
    let anna = c.customer("anna", "Europe/Moscow").await;
    let mut console = c.console().await;
    c.purchase(anna, "order-1").await;
    c.membership(anna, "plan-1", monday_morning() + 3 * DAY + HOUR)
        .await;

    c.advance(2 * DAY).await;
    c.run().await;
    let offer = take_and_record(&mut console, reached()).await;
    let purposes: Vec<String> = offer
        .outbound
        .expect("brief")
        .purposes
        .into_iter()
        .map(|p| p.purpose)
        .collect();
    assert_eq!(purposes, vec!["Check-in", "Renewal reminder"]);
    assert_eq!(offer.ticket.description, "Check-in; Renewal reminder");

    let calls = c.calls(anna).await;
    assert_eq!(statuses(&calls), vec![CallStatus::Done, CallStatus::Merged]);
    assert_eq!(calls[1].merged_into, Some(calls[0].id));
    assert_eq!(calls[1].ticket_id, None);
    // And it stays one call: the merged reminder never fires on its own.
    c.advance(DAY + 2 * HOUR).await;
    c.run().await;
    let calls = c.calls(anna).await;
    assert_eq!(statuses(&calls), vec![CallStatus::Done, CallStatus::Merged]);
}

async fn unanswered_call_is_retried_with_backoff_then_stops(mut c: Center) {
    c.set_policy(&ContactPolicy {
        retry_backoff_minutes: vec![120, 1440],
        max_attempts: 3,
        ..ContactPolicy::default()
    })
    .await;
    c.journey("check-in", "purchase", &[(1, "Check-in")]).await;
    let anna = c.customer("anna", "Europe/Moscow").await;
    let mut console = c.console().await;
    c.purchase(anna, "order-1").await;
    c.advance(DAY).await;
    c.run().await;
    take_and_record(&mut console, no_answer()).await;

    // Second attempt two hours later, not a minute sooner.
    c.advance(2 * HOUR - MINUTE).await;
    c.run().await;
    assert_eq!(
        statuses(&c.calls(anna).await),
        vec![CallStatus::Done, CallStatus::Scheduled]
    );
    c.advance(MINUTE).await;
    c.run().await;
    let second = take_and_record(&mut console, no_answer()).await;
    assert_eq!(second.outbound.unwrap().attempt, 2);
    assert_eq!(second.ticket.description, "Check-in (attempt 2)");

    // Third attempt a day later; then no more.
    c.advance(DAY).await;
    c.run().await;
    take_and_record(&mut console, no_answer()).await;
    c.advance(7 * DAY).await;
    c.run().await;

    let calls = c.calls(anna).await;
    let attempts: Vec<u32> = calls.iter().map(|x| x.attempt).collect();
    assert_eq!(attempts, vec![1, 2, 3]);
    assert!(calls.iter().all(|x| x.chain_id == calls[0].id));
    assert!(
        calls
            .iter()
            .all(|x| x.outcome == Some(CallResult::NoAnswer))
    );
    let last = calls[2].decisions.last().unwrap();
    assert_eq!(
        (last.action.as_str(), last.rule.as_deref()),
        ("stop", Some("attempts_exhausted"))
    );
}

async fn callback_is_made_at_the_requested_time_and_refusals_are_reported(mut c: Center) {
    let journey = c.journey("check-in", "purchase", &[(1, "Check-in")]).await;
    let anna = c.customer("anna", "Europe/Moscow").await;
    let mut console = c.console().await;
    c.purchase(anna, "order-1").await;
    c.advance(DAY).await;
    c.run().await;

    // A callback in the past is refused and changes nothing.
    let offer = next_offer(&mut console).await;
    console
        .command(Command::Accept {
            ticket_id: offer.ticket.id,
            version: offer.version,
        })
        .await;
    let refused = console
        .command(Command::CallOutcome {
            ticket_id: offer.ticket.id,
            outcome: CallOutcome {
                result: CallResult::CallbackRequested,
                reason_code: None,
                callback_at_ms: Some(c.now() - HOUR),
                note: String::new(),
                confirmation: None,
            },
        })
        .await;
    let ReplyResult::Error(error) = refused else {
        panic!("a callback in the past was accepted: {refused:?}")
    };
    assert_eq!(error.code, WsErrorCode::Validation);
    assert_eq!(c.only_call(anna).await.status, CallStatus::Fired);

    // Thursday 15:30 in Moscow, as the customer asked.
    let at = utc(2026, 3, 5, 12, 30);
    let recorded = console
        .command(Command::CallOutcome {
            ticket_id: offer.ticket.id,
            outcome: CallOutcome {
                result: CallResult::CallbackRequested,
                reason_code: None,
                callback_at_ms: Some(at),
                note: "Busy now".into(),
                confirmation: None,
            },
        })
        .await;
    assert!(matches!(recorded, ReplyResult::Ok { .. }), "{recorded:?}");
    c.advance_to(at - MINUTE).await;
    c.run().await;
    assert_eq!(
        statuses(&c.calls(anna).await),
        vec![CallStatus::Done, CallStatus::Scheduled]
    );
    c.advance(MINUTE).await;
    c.run().await;
    take_and_record(
        &mut console,
        CallOutcome {
            result: CallResult::Refused,
            reason_code: Some("switched_provider".into()),
            callback_at_ms: None,
            note: String::new(),
            confirmation: None,
        },
    )
    .await;

    let report = c
        .app
        .get(
            &format!(
                "/api/outbound/reports/outcomes?from_ms={}&to_ms={}",
                monday_morning(),
                c.now() + 1
            ),
            &c.app.admin_token,
        )
        .await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.body);
    let report: OutcomeReport = report.json();
    let refused: Vec<_> = report
        .reasons
        .iter()
        .filter(|r| r.result == CallResult::Refused)
        .collect();
    assert_eq!(refused.len(), 1, "{report:?}");
    assert_eq!(refused[0].reason_code, "switched_provider");
    assert_eq!(refused[0].journey_id, Some(journey));
    assert_eq!(refused[0].count, 1);
    // The same report as a spreadsheet: a line per journey, result, reason.
    let csv = c
        .app
        .get(
            &format!(
                "/api/outbound/reports/outcomes?from_ms={}&to_ms={}&format=csv",
                monday_morning(),
                c.now() + 1
            ),
            &c.app.admin_token,
        )
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(csv.content_type(), "text/csv; charset=utf-8");
    let text = csv.body.as_str().expect("CSV text");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("journey_id,result,reason_code,count"));
    assert_eq!(lines.count(), report.reasons.len());
    assert!(
        text.lines()
            .any(|l| l == format!("{journey},refused,switched_provider,1")),
        "{text}"
    );
}

async fn no_consent_or_do_not_call_means_no_call(mut c: Center) {
    c.journey("check-in", "purchase", &[(1, "Check-in")]).await;
    let anna = c.customer("anna", "Europe/Moscow").await;
    let boris = c.customer("boris", "Europe/Moscow").await;
    c.contact(anna, json!({ "consent_calls": false, "source": "phone" }))
        .await;
    c.purchase(anna, "order-1").await;
    assert_eq!(
        c.only_call(anna).await.stopped_by.as_deref(),
        Some("no_consent")
    );

    // Do-not-call set between planning and the due time.
    c.purchase(boris, "order-2").await;
    let profile = c
        .contact(boris, json!({ "do_not_call": true, "source": "phone" }))
        .await;
    let history = profile["consent_history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1]["source"], "phone");
    assert_eq!(history[1]["do_not_call"], true);
    c.advance(DAY).await;
    c.run().await;
    let call = c.only_call(boris).await;
    assert_eq!(call.status, CallStatus::Skipped);
    assert_eq!(call.stopped_by.as_deref(), Some("do_not_call"));
}

/// Saturday 7 March 2026, 03:00 UTC: Friday 22:00 in New York, Saturday
/// noon in Tokyo. New York moves to daylight-saving time on Sunday 8 March.
async fn calling_hours_hold_in_two_zones_across_daylight_saving(mut c: Center) {
    c.set_policy(&ContactPolicy {
        weekdays: vec![1, 2, 3, 4, 5, 6, 7],
        max_contacts: 5,
        ..ContactPolicy::default()
    })
    .await;
    c.journey("check-in", "purchase", &[(1, "Check-in")]).await;
    let ny = c.customer("ny", "America/New_York").await;
    let tokyo = c.customer("tokyo", "Asia/Tokyo").await;
    c.purchase(ny, "order-ny").await;
    c.purchase(tokyo, "order-tokyo").await;

    // A day later it is Saturday 22:00 in New York (too late) and Sunday
    // noon in Tokyo. New York's call moves to 09:00 on Sunday, which after
    // the change is 13:00 UTC, not 14:00.
    let tokyo_call = c.only_call(tokyo).await;
    assert_eq!(tokyo_call.due_at_ms, utc(2026, 3, 8, 3, 0));
    let ny_call = c.only_call(ny).await;
    assert_eq!(ny_call.due_at_ms, utc(2026, 3, 8, 13, 0));
    assert_eq!(ny_call.stopped_by.as_deref(), Some("quiet_hours"));
    assert_eq!(ny_call.decisions[0].phase, "scheduled");

    c.advance(DAY).await;
    c.run().await;
    assert_eq!(c.only_call(tokyo).await.status, CallStatus::Fired);
    assert_eq!(c.only_call(ny).await.status, CallStatus::Scheduled);
    c.advance_to(utc(2026, 3, 8, 12, 59)).await;
    c.run().await;
    assert_eq!(c.only_call(ny).await.status, CallStatus::Scheduled);
    c.advance(MINUTE).await;
    c.run().await;
    assert_eq!(
        c.only_call(ny).await.fired_at_ms,
        Some(utc(2026, 3, 8, 13, 0))
    );

    // A call that would fall due at night is planned for the next morning.
    c.set_policy(&ContactPolicy {
        weekdays: vec![1, 2, 3, 4, 5, 6, 7],
        call_from: "10:00".into(),
        max_contacts: 5,
        ..ContactPolicy::default()
    })
    .await;
    c.purchase(tokyo, "order-tokyo-2").await;
    // Due Monday 13:00 UTC = 22:00 in Tokyo: moved to Tuesday 10:00 JST (01:00 UTC).
    let second = c.calls(tokyo).await.remove(1);
    assert_eq!(second.due_at_ms, utc(2026, 3, 10, 1, 0));
}

async fn greeting_on_a_shared_date_every_year(mut c: Center) {
    c.journey("birthday", "shared_date", &[(0, "Birthday greeting")])
        .await;
    let anna = c.customer("anna", "Europe/Moscow").await;
    let shared = c
        .app
        .post(
            &format!("/api/customers/{anna}/dates"),
            &c.app.admin_token,
            &json!({ "external_id": "anna-birthday", "label": "birthday", "month": 3, "day": 5 }),
        )
        .await;
    assert_eq!(shared.status, StatusCode::CREATED, "{}", shared.body);
    // A retry of the same date changes nothing.
    let again = c
        .app
        .post(
            &format!("/api/customers/{anna}/dates"),
            &c.app.admin_token,
            &json!({ "external_id": "anna-birthday", "label": "birthday", "month": 3, "day": 5 }),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    // Thursday 5 March, at 09:00 in Moscow (06:00 UTC), not at midnight.
    let call = c.only_call(anna).await;
    assert_eq!(call.due_at_ms, utc(2026, 3, 5, 6, 0));
    c.advance_to(utc(2026, 3, 5, 6, 0)).await;
    c.run().await;
    let calls = c.calls(anna).await;
    assert_eq!(calls[0].status, CallStatus::Fired);
    // Next year's greeting is planned once this one is made.
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert_eq!(calls[1].due_at_ms, utc(2027, 3, 5, 6, 0));
}
