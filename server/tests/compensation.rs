//! Compensation authority, end to end on every backend: an agent grants
//! within their authority at once; above it a supervisor of their team
//! approves live over the socket; an undecided approval expires and the
//! agent is told; nobody approves their own request; policies are versioned,
//! validated and dry-run; retries grant once; the ledger's verifier names an
//! entry edited behind the application's back.

mod compensation_fixtures;
mod support;

use callcenter_proto::compensation::{
    CompensationRequest, CompensationStatus, DecisionOutcome, DryRunReport, LedgerEntry,
    LedgerEntryKind, LedgerVerification, PolicyVersion,
};
use callcenter_proto::http::TicketHistory;
use callcenter_proto::ws::{Command, ReplyResult, WsErrorCode};
use compensation_fixtures::*;
use reqwest::StatusCode;
use serde_json::json;
use support::TestApp;

on_every_backend!(
    grants_within_authority_and_live_approval_above_it,
    policies_are_validated_versioned_and_dry_run,
    retried_grant_is_decided_once,
    verifier_names_an_entry_edited_behind_the_applications_back,
);

async fn grants_within_authority_and_live_approval_above_it(app: TestApp) {
    publish(&app, &app.admin_token, &policy()).await;
    let (category, customer) = care_desk(&app).await;
    let (sam_id, sam_token) = supervisor(&app, "sam").await;
    let (sue_id, _sue_token) = supervisor(&app, "sue").await;
    let mut olga = agent_holding_ticket(&app, "olga", customer, category).await;
    let mut sam = app.socket(&sam_token).await;
    let sue_token = relogin(&app, "sue").await;
    let mut sue = app.socket(&sue_token).await;

    // Before asking, Olga sees what she may grant this customer now.
    let allowance = app
        .get(
            &format!("/api/compensation/allowance?ticket_id={}", olga.ticket_id),
            &olga.token,
        )
        .await;
    assert_eq!(allowance.status, StatusCode::OK, "{}", allowance.body);
    assert_eq!(allowance.body["policy_version"], 1);
    assert_eq!(allowance.body["per_grant_limit_minor"], 2000);
    assert_eq!(allowance.body["budget_day_remaining_minor"], 5000);
    assert_eq!(allowance.body["customer_cap_remaining_minor"], 30000);
    assert_eq!(allowance.body["may_grant_now_minor"], 2000);

    // Within her authority: granted at once, with the rule and the inputs.
    let granted = asked(&app, &olga.token, "g-1", &credit(olga.ticket_id, 1500)).await;
    assert_eq!(granted.status, CompensationStatus::Granted);
    assert_eq!(granted.policy_version, 1);
    assert_eq!(granted.rule, "roles.agent.within_authority");
    assert_eq!(granted.requested_by, olga.id);
    assert_eq!(granted.ticket_id, olga.ticket_id);
    assert_eq!(granted.inputs.customer_value_minor, 120_000);
    assert_eq!(granted.inputs.spent_day_minor, 0);
    assert_eq!(granted.inputs.per_grant_limit_minor, Some(2000));
    let after = app
        .get(
            &format!("/api/compensation/allowance?ticket_id={}", olga.ticket_id),
            &olga.token,
        )
        .await;
    assert_eq!(after.body["budget_day_remaining_minor"], 3500);
    assert_eq!(after.body["customer_cap_remaining_minor"], 28500);

    // Ten free days (30.00) are above her per-grant limit: the supervisors
    // of her team are asked live.
    let days = json!({ "ticket_id": olga.ticket_id, "kind": "free_days", "quantity": 10,
                       "reason_code": "broken_item", "note": "kettle broke twice" });
    let pending = asked(&app, &olga.token, "g-2", &days).await;
    assert_eq!(pending.status, CompensationStatus::Pending);
    assert_eq!(pending.cost_minor, 3000);
    assert_eq!(pending.rule, "roles.agent.per_grant.max_minor");
    assert_eq!(
        pending.expires_at_ms,
        Some(pending.created_at_ms + 15 * 60_000)
    );
    assert_eq!(pending_on(&mut sam, pending.id).await.cost_minor, 3000);
    pending_on(&mut sue, pending.id).await;
    let listed: Vec<CompensationRequest> = app
        .get("/api/compensation/approvals", &sam_token)
        .await
        .json();
    assert_eq!(
        listed.iter().map(|r| r.id).collect::<Vec<_>>(),
        [pending.id]
    );

    // A supervisor of another team neither lists nor decides it.
    let (tom_id, tom_token) = app.user("tom", "supervisor").await;
    let billing = app
        .put(
            &format!("/api/admin/supervisors/{tom_id}/teams"),
            &app.admin_token,
            &json!({ "teams": ["billing"] }),
        )
        .await;
    assert_eq!(billing.status, StatusCode::OK, "{}", billing.body);
    let toms: Vec<CompensationRequest> = app
        .get("/api/compensation/approvals", &tom_token)
        .await
        .json();
    assert!(toms.is_empty(), "{toms:?}");
    let by_tom = app
        .post(
            &format!("/api/compensation/requests/{}/decision", pending.id),
            &tom_token,
            &json!({ "approve": true }),
        )
        .await;
    assert_eq!(by_tom.status, StatusCode::FORBIDDEN, "{}", by_tom.body);

    // An agent cannot decide; Sam approves on the live channel; Olga is told.
    let by_agent = app
        .post(
            &format!("/api/compensation/requests/{}/decision", pending.id),
            &olga.token,
            &json!({ "approve": true }),
        )
        .await;
    assert_eq!(by_agent.status, StatusCode::FORBIDDEN);
    let reply = sam
        .command(Command::DecideCompensation {
            compensation_id: pending.id,
            approve: true,
            note: "loyal customer".into(),
        })
        .await;
    assert_eq!(reply, ReplyResult::Ok { ticket: None });
    let approved = decided_on(&mut olga.socket, pending.id).await;
    assert_eq!(approved.status, CompensationStatus::Approved);
    assert_eq!(approved.decided_by, Some(sam_id));
    assert_eq!(approved.decision_note.as_deref(), Some("loyal customer"));
    assert_eq!(approved.decision_policy_version, Some(1));
    assert_eq!(
        approved.decision_rule.as_deref(),
        Some("roles.supervisor.approval_within_authority")
    );
    assert_eq!(
        decided_on(&mut sue, pending.id).await.status,
        CompensationStatus::Approved
    );
    let twice = app
        .post(
            &format!("/api/compensation/requests/{}/decision", pending.id),
            &sue_token,
            &json!({ "approve": false }),
        )
        .await;
    assert_eq!(twice.status, StatusCode::CONFLICT, "{}", twice.body);

    // Nobody decides within 15 minutes: denied automatically, Olga is told.
    let late = asked(&app, &olga.token, "g-3", &credit(olga.ticket_id, 2500)).await;
    assert_eq!(late.status, CompensationStatus::Pending);
    pending_on(&mut sam, late.id).await;
    app.clock.advance_ms(15 * 60_000);
    let expired = decided_on(&mut olga.socket, late.id).await;
    assert_eq!(expired.status, CompensationStatus::Expired);
    assert_eq!(expired.decided_by, None);
    let too_late = sam
        .command(Command::DecideCompensation {
            compensation_id: late.id,
            approve: true,
            note: String::new(),
        })
        .await;
    let ReplyResult::Error(e) = too_late else {
        panic!("an expired request was decided: {too_late:?}")
    };
    assert_eq!(e.code, WsErrorCode::Conflict);

    // Sam asks past his own day budget: Sue is asked; Sam cannot approve himself.
    let sam_token = relogin(&app, "sam").await;
    let sams = asked(&app, &sam_token, "s-1", &credit(olga.ticket_id, 4000)).await;
    assert_eq!(sams.status, CompensationStatus::Pending);
    assert_eq!(sams.rule, "roles.supervisor.budget_per_day_minor");
    pending_on(&mut sue, sams.id).await;
    let own = sam
        .command(Command::DecideCompensation {
            compensation_id: sams.id,
            approve: true,
            note: "fine by me".into(),
        })
        .await;
    let ReplyResult::Error(e) = own else {
        panic!("self-approval was accepted: {own:?}")
    };
    assert_eq!(e.code, WsErrorCode::Forbidden);
    assert!(e.detail.contains("your own request"), "{}", e.detail);
    let deny = sue
        .command(Command::DecideCompensation {
            compensation_id: sams.id,
            approve: false,
            note: "too much for a late parcel".into(),
        })
        .await;
    assert_eq!(deny, ReplyResult::Ok { ticket: None });
    let denied = decided_on(&mut sam, sams.id).await;
    assert_eq!(denied.status, CompensationStatus::Denied);
    assert_eq!(denied.decided_by, Some(sue_id));

    // The ledger holds the two grants, each with its version and rule.
    let admin = relogin(&app, "admin").await;
    let ledger: Vec<LedgerEntry> = app
        .get("/api/admin/compensation/ledger", &admin)
        .await
        .json();
    let summary: Vec<(i64, i64, &str, Option<i64>)> = ledger
        .iter()
        .map(|e| (e.request_id, e.amount_minor, e.rule.as_str(), e.approved_by))
        .collect();
    assert_eq!(
        summary,
        [
            (granted.id, 1500, "roles.agent.within_authority", None),
            (
                pending.id,
                3000,
                "roles.supervisor.approval_within_authority",
                Some(sam_id)
            ),
        ]
    );
    assert!(ledger.iter().all(|e| e.policy_version == 1));

    // A reversal is a new entry; the grant stays.
    let reversed = app
        .post(
            &format!("/api/compensation/requests/{}/reversal", granted.id),
            &admin,
            &json!({ "note": "customer returned the order" }),
        )
        .await;
    assert_eq!(reversed.status, StatusCode::CREATED, "{}", reversed.body);
    let reversal: LedgerEntry = reversed.json();
    assert_eq!(reversal.kind, LedgerEntryKind::Reversal);
    assert_eq!(reversal.amount_minor, -1500);
    assert_eq!(reversal.prev_hash, ledger[1].hash);
    let again = app
        .post(
            &format!("/api/compensation/requests/{}/reversal", granted.id),
            &admin,
            &json!({ "note": "twice" }),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let verified: LedgerVerification = app
        .get("/api/admin/compensation/ledger/verify", &admin)
        .await
        .json();
    assert!(verified.ok, "{verified:?}");
    assert_eq!(verified.entries_checked, 3);

    // Spend by reason, agent, team and policy version (net of the reversal).
    let report = app
        .get(
            &format!(
                "/api/compensation/reports/spend?from_ms=0&to_ms={}",
                app.clock_now() + 1
            ),
            &admin,
        )
        .await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.body);
    assert_eq!(report.body["total_minor"], 3000);
    assert_eq!(
        report.body["by_reason"],
        json!([{ "key": "broken_item", "amount_minor": 3000, "grants": 1 },
               { "key": "late_delivery", "amount_minor": 0, "grants": 1 }])
    );
    assert_eq!(
        report.body["by_agent"],
        json!([{ "key": olga.id.to_string(), "amount_minor": 3000, "grants": 2 }])
    );
    assert_eq!(
        report.body["by_team"],
        json!([{ "key": "care", "amount_minor": 3000, "grants": 2 }])
    );
    assert_eq!(
        report.body["by_policy_version"],
        json!([{ "key": "1", "amount_minor": 3000, "grants": 2 }])
    );
    // The same report as a spreadsheet, for finance.
    let csv = app
        .send(
            app.http
                .get(app.url(&format!(
                    "/api/compensation/reports/spend?from_ms=0&to_ms={}",
                    app.clock_now() + 1
                )))
                .bearer_auth(&admin)
                .header("Accept", "text/csv"),
        )
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(csv.content_type(), "text/csv; charset=utf-8");
    assert!(
        csv.headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("compensation-spend-0-")
    );
    let olga_id = olga.id;
    assert_eq!(
        csv.body.as_str().expect("CSV text"),
        format!(
            "dimension,key,amount_minor,grants\n\
             reason,broken_item,3000,1\n\
             reason,late_delivery,0,1\n\
             agent,{olga_id},3000,2\n\
             team,care,3000,2\n\
             policy_version,1,3000,2\n\
             total,,3000,2\n"
        )
    );

    // The ticket's history shows the compensation steps.
    let history: TicketHistory = app
        .get(&format!("/api/tickets/{}/history", olga.ticket_id), &admin)
        .await
        .json();
    let steps: Vec<&str> = history
        .events
        .iter()
        .map(|e| e.kind.as_str())
        .filter(|k| k.starts_with("compensation"))
        .collect();
    assert_eq!(
        steps,
        [
            "compensation_requested",
            "compensation_requested",
            "compensation_decided",
            "compensation_requested",
            "compensation_expired",
            "compensation_requested",
            "compensation_decided",
            "compensation_reversed",
        ]
    );
}

async fn policies_are_validated_versioned_and_dry_run(app: TestApp) {
    let (category, customer) = care_desk(&app).await;
    let olga = agent_holding_ticket(&app, "olga", customer, category).await;

    // No policy yet: nothing can be granted.
    let early = ask(&app, &olga.token, "e-1", &credit(olga.ticket_id, 100)).await;
    assert_eq!(early.status, StatusCode::CONFLICT, "{}", early.body);

    // An invalid document names its bad fields and stores nothing.
    let mut bad = policy();
    bad["currency"] = json!("euro");
    bad["roles"][0]["per_grant"] = json!({});
    bad["approval_timeout_minutes"] = json!(0);
    let refused = app
        .post("/api/admin/compensation/policies", &app.admin_token, &bad)
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.content_type(), "application/problem+json");
    let fields: Vec<&str> = refused.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["currency", "roles[0].per_grant", "approval_timeout_minutes"]
    );
    let none: Vec<PolicyVersion> = app
        .get("/api/admin/compensation/policies", &app.admin_token)
        .await
        .json();
    assert!(none.is_empty());
    let by_agent = app
        .post("/api/admin/compensation/policies", &olga.token, &policy())
        .await;
    assert_eq!(by_agent.status, StatusCode::FORBIDDEN);

    assert_eq!(publish(&app, &app.admin_token, &policy()).await, 1);
    let small = asked(&app, &olga.token, "v1-a", &credit(olga.ticket_id, 1500)).await;
    let big = asked(&app, &olga.token, "v1-b", &credit(olga.ticket_id, 3000)).await;
    assert_eq!(small.status, CompensationStatus::Granted);
    assert_eq!(big.status, CompensationStatus::Pending);
    // Bad input for the policy is refused before anything is stored.
    let wrong_reason = ask(
        &app,
        &olga.token,
        "v1-c",
        &json!({ "ticket_id": olga.ticket_id, "kind": "account_credit", "quantity": 100,
                 "reason_code": "felt_like_it", "note": "x" }),
    )
    .await;
    assert_eq!(wrong_reason.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(wrong_reason.body["errors"][0]["field"], "reason_code");

    // A dry run of a stricter draft shows which past decisions would change.
    let mut strict = policy();
    strict["roles"][0]["per_grant"] = json!({ "max_minor": 1000 });
    let dry = app
        .post(
            "/api/admin/compensation/dry-run",
            &app.admin_token,
            &json!({ "document": strict, "last": 10 }),
        )
        .await;
    assert_eq!(dry.status, StatusCode::OK, "{}", dry.body);
    let dry: DryRunReport = dry.json();
    assert_eq!((dry.evaluated, dry.unchanged), (2, 1));
    assert_eq!(dry.changes.len(), 1);
    assert_eq!(dry.changes[0].request_id, small.id);
    assert_eq!(dry.changes[0].was_status, CompensationStatus::Granted);
    assert_eq!(dry.changes[0].would_be, DecisionOutcome::NeedsApproval);
    assert_eq!(dry.changes[0].would_rule, "roles.agent.per_grant.max_minor");

    // Publishing a second version: the first stays readable, new grants use the second.
    let mut generous = policy();
    generous["roles"][0]["per_grant"] = json!({ "max_minor": 4000 });
    generous["forbidden_category_ids"] = json!([category + 1000]);
    assert_eq!(publish(&app, &app.admin_token, &generous).await, 2);
    let v1: PolicyVersion = app
        .get("/api/admin/compensation/policies/1", &app.admin_token)
        .await
        .json();
    assert_eq!(v1.document.roles[0].per_grant.max_minor, Some(2000));
    let versions: Vec<PolicyVersion> = app
        .get("/api/admin/compensation/policies", &app.admin_token)
        .await
        .json();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [2, 1]
    );
    let under_v2 = asked(&app, &olga.token, "v2-a", &credit(olga.ticket_id, 3000)).await;
    assert_eq!(under_v2.status, CompensationStatus::Granted);
    assert_eq!(under_v2.policy_version, 2);

    // A version that forbids this ticket's category refuses, and says so.
    let mut forbidding = policy();
    forbidding["forbidden_category_ids"] = json!([category]);
    assert_eq!(publish(&app, &app.admin_token, &forbidding).await, 3);
    let allowance = app
        .get(
            &format!("/api/compensation/allowance?ticket_id={}", olga.ticket_id),
            &olga.token,
        )
        .await;
    assert_eq!(allowance.body["category_forbidden"], true);
    assert_eq!(allowance.body["may_grant_now_minor"], 0);
    let forbidden = asked(&app, &olga.token, "v3-a", &credit(olga.ticket_id, 100)).await;
    assert_eq!(forbidden.status, CompensationStatus::Refused);
    assert_eq!(forbidden.rule, "forbidden_category");
    assert_eq!(forbidden.policy_version, 3);

    // The API and the live channel's schema describe it.
    let openapi = app.get("/api/openapi.json", &app.admin_token).await;
    for path in [
        "/api/admin/compensation/policies",
        "/api/admin/compensation/dry-run",
        "/api/compensation/allowance",
        "/api/compensation/requests",
        "/api/compensation/requests/{id}/decision",
        "/api/admin/compensation/ledger/verify",
    ] {
        assert!(
            openapi.body["paths"][path].is_object(),
            "{path} is not described"
        );
    }
    let schema = app.get("/api/ws-schema.json", &app.admin_token).await;
    let schema = schema.body.to_string();
    for name in [
        "decide_compensation",
        "compensation_pending",
        "compensation_decided",
    ] {
        assert!(schema.contains(name), "{name} is not in the socket schema");
    }
}

async fn retried_grant_is_decided_once(app: TestApp) {
    publish(&app, &app.admin_token, &policy()).await;
    let (category, customer) = care_desk(&app).await;
    let olga = agent_holding_ticket(&app, "olga", customer, category).await;

    let missing = app
        .post(
            "/api/compensation/requests",
            &olga.token,
            &credit(olga.ticket_id, 500),
        )
        .await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);

    let first = ask(&app, &olga.token, "once", &credit(olga.ticket_id, 500)).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let retry = ask(&app, &olga.token, "once", &credit(olga.ticket_id, 500)).await;
    assert_eq!(retry.status, StatusCode::OK);
    assert_eq!(retry.body["id"], first.body["id"]);
    let other_body = ask(&app, &olga.token, "once", &credit(olga.ticket_id, 700)).await;
    assert_eq!(other_body.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Ten parallel retries of one new key: one decision.
    let tries = (0..10)
        .map(|_| ask_meanwhile(&app, &olga.token, "burst", &credit(olga.ticket_id, 600)))
        .collect::<Vec<_>>();
    let mut ids = Vec::new();
    let mut created = 0;
    for t in tries {
        let (status, body) = t.await.expect("task");
        assert!(status.is_success(), "{status}: {body}");
        created += usize::from(status == StatusCode::CREATED);
        ids.push(body["id"].as_i64().expect("id"));
    }
    assert_eq!(created, 1);
    ids.dedup();
    assert_eq!(ids.len(), 1);

    let ledger: Vec<LedgerEntry> = app
        .get("/api/admin/compensation/ledger", &app.admin_token)
        .await
        .json();
    let amounts: Vec<i64> = ledger.iter().map(|e| e.amount_minor).collect();
    assert_eq!(amounts, [500, 600]);
    let allowance = app
        .get(
            &format!("/api/compensation/allowance?ticket_id={}", olga.ticket_id),
            &olga.token,
        )
        .await;
    assert_eq!(allowance.body["budget_day_remaining_minor"], 3900);
}

async fn verifier_names_an_entry_edited_behind_the_applications_back(app: TestApp) {
    use sqlx::Connection;
    publish(&app, &app.admin_token, &policy()).await;
    let (category, customer) = care_desk(&app).await;
    let olga = agent_holding_ticket(&app, "olga", customer, category).await;
    for (i, amount) in [300, 400, 500].into_iter().enumerate() {
        let r = asked(
            &app,
            &olga.token,
            &format!("k{i}"),
            &credit(olga.ticket_id, amount),
        )
        .await;
        assert_eq!(r.status, CompensationStatus::Granted);
    }
    let verified: LedgerVerification = app
        .get("/api/admin/compensation/ledger/verify", &app.admin_token)
        .await
        .json();
    assert!(verified.ok, "{verified:?}");
    callcenter::compensation::ledger::verify_command(&app.database_url)
        .await
        .expect("the untouched ledger verifies");

    // The database itself refuses to change or remove an entry.
    // (On SQLite the server's tick writes too: this waits for its lock.)
    let mut db = app.database().await;
    let postgres = app.database_url.starts_with("postgres");
    for statement in [
        "UPDATE compensation_ledger SET amount_minor = 99999 WHERE seq = 2",
        "DELETE FROM compensation_ledger WHERE seq = 3",
    ] {
        let refused = sqlx::query(statement).execute(&mut db).await;
        let message = refused.expect_err(statement).to_string();
        assert!(message.contains("append-only"), "{message}");
    }

    // Someone with the power to lift the guard edits entry 2 anyway.
    let lift = if postgres {
        "ALTER TABLE compensation_ledger DISABLE TRIGGER compensation_ledger_append_only"
    } else {
        "DROP TRIGGER compensation_ledger_no_update"
    };
    sqlx::query(lift).execute(&mut db).await.expect("lift");
    sqlx::query("UPDATE compensation_ledger SET amount_minor = 99999 WHERE seq = 2")
        .execute(&mut db)
        .await
        .expect("tamper");
    db.close().await.expect("close");

    let verified: LedgerVerification = app
        .get("/api/admin/compensation/ledger/verify", &app.admin_token)
        .await
        .json();
    assert!(!verified.ok);
    assert_eq!(verified.first_broken_seq, Some(2));
    assert_eq!(verified.entries_checked, 1);
    let by_agent = app
        .get("/api/admin/compensation/ledger/verify", &olga.token)
        .await;
    assert_eq!(by_agent.status, StatusCode::FORBIDDEN);
    let cli = callcenter::compensation::ledger::verify_command(&app.database_url)
        .await
        .expect_err("the command fails on a broken ledger");
    assert!(cli.to_string().contains("broken at entry 2"), "{cli}");
}

trait Now {
    fn clock_now(&self) -> i64;
}

impl Now for TestApp {
    fn clock_now(&self) -> i64 {
        use callcenter::clock::Clock;
        self.clock.now_ms()
    }
}
