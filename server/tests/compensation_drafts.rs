//! Compensation policy drafts and budget charges, end to end on every
//! backend: an admin stores a draft (validated on every save, each bad field
//! named), edits it, dry-runs the stored draft, publishes it as a new
//! immutable version (the draft is then frozen; every version stays
//! readable); a supervisor's approval is charged to the requester's budgets
//! like a grant within authority (past them only on the approver's
//! authority, which the decision records); a reversal gives the budgets and
//! the customer's cap back, and is stored with the decision.

mod compensation_fixtures;
mod support;

use callcenter::clock::Clock;
use callcenter::compensation::store::budget_scopes;
use callcenter_proto::compensation::{
    CompensationRequest, CompensationStatus, DecisionOutcome, DryRunReport, LedgerEntry,
    LedgerEntryKind, PolicyDraft, PolicyVersion,
};
use compensation_fixtures::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Reply, TestApp};

on_every_backend!(
    drafts_are_validated_edited_dry_run_and_published,
    approved_grants_are_charged_and_reversals_give_back,
);

const DAY_MS: i64 = 24 * 3600 * 1000;

/// POST with an Idempotency-Key.
async fn post_once(app: &TestApp, token: &str, path: &str, key: &str, body: &Value) -> Reply {
    app.send(
        app.http
            .post(app.url(path))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(body),
    )
    .await
}

fn fields(reply: &Reply) -> Vec<String> {
    reply.body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no field errors: {}", reply.body))
        .iter()
        .map(|e| e["field"].as_str().expect("field").to_string())
        .collect()
}

async fn drafts_are_validated_edited_dry_run_and_published(app: TestApp) {
    let admin = app.admin_token.clone();
    let (category, customer) = care_desk(&app).await;
    let olga = agent_holding_ticket(&app, "olga", customer, category).await;
    assert_eq!(publish(&app, &admin, &policy()).await, 1);
    let small = asked(&app, &olga.token, "a", &credit(olga.ticket_id, 1500)).await;
    let big = asked(&app, &olga.token, "b", &credit(olga.ticket_id, 2500)).await;
    assert_eq!(small.status, CompensationStatus::Granted);
    assert_eq!(big.status, CompensationStatus::Pending);

    // A draft with bad fields is refused, naming each of them; nothing is stored.
    let mut bad = policy();
    bad["currency"] = json!("euro");
    bad["roles"][0]["budget_per_day_minor"] = json!(-5);
    bad["reason_codes"] = json!(["Late Delivery"]);
    let refused = post_once(
        &app,
        &admin,
        "/api/admin/compensation/drafts",
        "d-bad",
        &json!({ "name": "", "document": bad }),
    )
    .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    assert_eq!(refused.content_type(), "application/problem+json");
    assert_eq!(
        fields(&refused),
        [
            "name",
            "document.currency",
            "document.roles[0].budget_per_day_minor",
            "document.reason_codes[0]",
        ]
    );
    let none: Vec<PolicyDraft> = app
        .get("/api/admin/compensation/drafts", &admin)
        .await
        .json();
    assert!(none.is_empty(), "{none:?}");

    // Only admins keep drafts; a create needs an Idempotency-Key.
    let body = json!({ "name": "Stricter agents", "document": policy(), "based_on_version": 1 });
    let by_agent = post_once(
        &app,
        &olga.token,
        "/api/admin/compensation/drafts",
        "x",
        &body,
    )
    .await;
    assert_eq!(by_agent.status, StatusCode::FORBIDDEN);
    let keyless = app
        .post("/api/admin/compensation/drafts", &admin, &body)
        .await;
    assert_eq!(keyless.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Created once, however often it is retried.
    let created = post_once(&app, &admin, "/api/admin/compensation/drafts", "d-1", &body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let draft: PolicyDraft = created.json();
    assert_eq!((draft.revision, draft.based_on_version), (1, Some(1)));
    assert_eq!(draft.published_version, None);
    let retried = post_once(&app, &admin, "/api/admin/compensation/drafts", "d-1", &body).await;
    assert_eq!(retried.status, StatusCode::OK);
    assert_eq!(retried.body["id"], draft.id);
    let other = json!({ "name": "Other", "document": policy() });
    let reused = post_once(
        &app,
        &admin,
        "/api/admin/compensation/drafts",
        "d-1",
        &other,
    )
    .await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Editing: a bad save is refused with its fields and changes nothing…
    let path = format!("/api/admin/compensation/drafts/{}", draft.id);
    let mut strict = policy();
    strict["roles"][0]["per_grant"] = json!({ "max_minor": 1000, "max_value_bp": 20000 });
    strict["approval_timeout_minutes"] = json!(0);
    let bad_save = app
        .put(&path, &admin, &json!({ "revision": 1, "document": strict }))
        .await;
    assert_eq!(
        bad_save.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        bad_save.body
    );
    assert_eq!(
        fields(&bad_save),
        [
            "document.roles[0].per_grant.max_value_bp",
            "document.approval_timeout_minutes"
        ]
    );
    let unchanged: PolicyDraft = app.get(&path, &admin).await.json();
    assert_eq!(unchanged.revision, 1);
    assert_eq!(unchanged.document.roles[0].per_grant.max_minor, Some(2000));

    // …a good one is stored as the next revision…
    strict["roles"][0]["per_grant"] = json!({ "max_minor": 1000 });
    strict["approval_timeout_minutes"] = json!(30);
    let saved = app
        .put(&path, &admin, &json!({ "revision": 1, "document": strict }))
        .await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    let saved: PolicyDraft = saved.json();
    assert_eq!(saved.revision, 2);
    assert_eq!(saved.name, "Stricter agents");
    assert_eq!(saved.document.roles[0].per_grant.max_minor, Some(1000));
    // …and a save from someone who had not seen it is refused.
    let stale = app
        .put(
            &path,
            &admin,
            &json!({ "revision": 1, "name": "Mine", "document": policy() }),
        )
        .await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{}", stale.body);
    let renamed = app
        .put(
            &path,
            &admin,
            &json!({ "revision": 2, "name": "Agents: 10.00 a grant", "document": strict }),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    assert_eq!(renamed.body["revision"], 3);

    // The stored draft's dry run: the 15.00 grant would have needed a supervisor.
    let dry = app
        .post(&format!("{path}/dry-run"), &admin, &json!({ "last": 10 }))
        .await;
    assert_eq!(dry.status, StatusCode::OK, "{}", dry.body);
    let dry: DryRunReport = dry.json();
    assert_eq!((dry.evaluated, dry.unchanged), (2, 1));
    assert_eq!(dry.changes[0].request_id, small.id);
    assert_eq!(dry.changes[0].was_status, CompensationStatus::Granted);
    assert_eq!(dry.changes[0].would_be, DecisionOutcome::NeedsApproval);
    assert_eq!(dry.changes[0].would_rule, "roles.agent.per_grant.max_minor");
    let too_many = app
        .post(&format!("{path}/dry-run"), &admin, &json!({ "last": 1001 }))
        .await;
    assert_eq!(fields(&too_many), ["last"]);

    // Publishing names the revision it saw and needs an Idempotency-Key.
    let publish_path = format!("{path}/publish");
    let outdated = post_once(
        &app,
        &admin,
        &publish_path,
        "p-0",
        &json!({ "revision": 2 }),
    )
    .await;
    assert_eq!(outdated.status, StatusCode::CONFLICT, "{}", outdated.body);
    let published = post_once(
        &app,
        &admin,
        &publish_path,
        "p-1",
        &json!({ "revision": 3 }),
    )
    .await;
    assert_eq!(published.status, StatusCode::CREATED, "{}", published.body);
    let v2: PolicyVersion = published.json();
    assert_eq!(v2.version, 2);
    assert_eq!(v2.document.roles[0].per_grant.max_minor, Some(1000));
    let again = post_once(
        &app,
        &admin,
        &publish_path,
        "p-1",
        &json!({ "revision": 3 }),
    )
    .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body["version"], 2);
    let twice = post_once(
        &app,
        &admin,
        &publish_path,
        "p-2",
        &json!({ "revision": 3 }),
    )
    .await;
    assert_eq!(twice.status, StatusCode::CONFLICT, "{}", twice.body);

    // The published draft is frozen, in the application and in the database.
    let frozen: PolicyDraft = app.get(&path, &admin).await.json();
    assert_eq!(frozen.published_version, Some(2));
    let edit_after = app
        .put(
            &path,
            &admin,
            &json!({ "revision": 3, "document": policy() }),
        )
        .await;
    assert_eq!(
        edit_after.status,
        StatusCode::CONFLICT,
        "{}",
        edit_after.body
    );
    assert!(
        edit_after.body["detail"]
            .as_str()
            .unwrap()
            .contains("published as version 2"),
        "{}",
        edit_after.body
    );
    refused_by_database(
        &app,
        &format!(
            "UPDATE compensation_policy_drafts SET document = '{{}}' WHERE id = {}",
            draft.id
        ),
    )
    .await;

    // The new version is in force; every earlier one stays readable.
    let now = asked(&app, &olga.token, "c", &credit(olga.ticket_id, 1500)).await;
    assert_eq!(now.status, CompensationStatus::Pending);
    assert_eq!(
        (now.policy_version, now.rule.as_str()),
        (2, "roles.agent.per_grant.max_minor")
    );
    let versions: Vec<PolicyVersion> = app
        .get("/api/admin/compensation/policies", &admin)
        .await
        .json();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [2, 1]
    );
    let v1: PolicyVersion = app
        .get("/api/admin/compensation/policies/1", &admin)
        .await
        .json();
    assert_eq!(v1.document.roles[0].per_grant.max_minor, Some(2000));

    // A new draft from version 2 is editable; the list shows both, newest first.
    let next = post_once(
        &app,
        &admin,
        "/api/admin/compensation/drafts",
        "d-2",
        &json!({ "name": "Next", "document": v2.document, "based_on_version": 2 }),
    )
    .await;
    assert_eq!(next.status, StatusCode::CREATED, "{}", next.body);
    let no_such = post_once(
        &app,
        &admin,
        "/api/admin/compensation/drafts",
        "d-3",
        &json!({ "name": "Ghost", "document": policy(), "based_on_version": 9 }),
    )
    .await;
    assert_eq!(fields(&no_such), ["based_on_version"]);
    let all: Vec<PolicyDraft> = app
        .get("/api/admin/compensation/drafts", &admin)
        .await
        .json();
    let listed: Vec<(i64, Option<i64>)> = all.iter().map(|d| (d.id, d.published_version)).collect();
    assert_eq!(
        listed,
        [
            (next.body["id"].as_i64().unwrap(), None),
            (draft.id, Some(2))
        ]
    );
    let missing = app
        .get("/api/admin/compensation/drafts/999999", &admin)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // The API describes the draft routes.
    let openapi = app.get("/api/openapi.json", &admin).await;
    for p in [
        "/api/admin/compensation/drafts",
        "/api/admin/compensation/drafts/{id}",
        "/api/admin/compensation/drafts/{id}/dry-run",
        "/api/admin/compensation/drafts/{id}/publish",
    ] {
        assert!(openapi.body["paths"][p].is_object(), "{p} is not described");
    }
}

/// Run a statement on the database directly and expect it refused.
async fn refused_by_database(app: &TestApp, statement: &str) {
    use sqlx::Connection;
    let mut db = app.database().await;
    let refused = sqlx::query(statement).execute(&mut db).await;
    let message = refused.expect_err(statement).to_string();
    assert!(message.contains("can no longer change"), "{message}");
    db.close().await.expect("close");
}

/// Run a statement on the database directly.
async fn behind_the_back(app: &TestApp, statement: &str) {
    use sqlx::Connection;
    let mut db = app.database().await;
    sqlx::query(statement)
        .execute(&mut db)
        .await
        .expect(statement);
    db.close().await.expect("close");
}

async fn allowance(app: &TestApp, holder: &Holder, token: &str) -> Value {
    let reply = app
        .get(
            &format!("/api/compensation/allowance?ticket_id={}", holder.ticket_id),
            token,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body
}

async fn decide(app: &TestApp, token: &str, id: i64, approve: bool) -> Reply {
    app.post(
        &format!("/api/compensation/requests/{id}/decision"),
        token,
        &json!({ "approve": approve, "note": "ok" }),
    )
    .await
}

async fn reverse(app: &TestApp, token: &str, id: i64) -> Reply {
    app.post(
        &format!("/api/compensation/requests/{id}/reversal"),
        token,
        &json!({ "note": "order returned" }),
    )
    .await
}

async fn approved_grants_are_charged_and_reversals_give_back(app: TestApp) {
    // Agents: 20.00 a grant, 50.00 a day, 400.00 a month; customers 300.00 in 90 days.
    publish(&app, &app.admin_token, &policy()).await;
    let (category, customer) = care_desk(&app).await;
    let (sam_id, sam) = supervisor(&app, "sam").await;
    let olga = agent_holding_ticket(&app, "olga", customer, category).await;

    let granted = asked(&app, &olga.token, "g-1", &credit(olga.ticket_id, 1500)).await;
    assert_eq!(granted.status, CompensationStatus::Granted);
    let charge = granted.budget_charge.clone().expect("charged");
    assert_eq!(charge.amount_minor, 1500);
    assert_eq!(
        charge.day_scope,
        format!("user:{}:day:{}", olga.id, granted.created_at_ms / DAY_MS)
    );

    // Above her per-grant limit, within her day budget: Sam approves, and the
    // approval is charged to Olga's budgets and the customer's cap.
    let above = asked(&app, &olga.token, "g-2", &credit(olga.ticket_id, 3000)).await;
    assert_eq!(above.status, CompensationStatus::Pending);
    let before = allowance(&app, &olga, &olga.token).await;
    assert_eq!(
        before["budget_day_remaining_minor"], 3500,
        "pending is not charged"
    );
    let approved: CompensationRequest = decide(&app, &sam, above.id, true).await.json();
    assert_eq!(approved.status, CompensationStatus::Approved);
    assert_eq!(
        approved.decision_rule.as_deref(),
        Some("roles.supervisor.approval_within_authority")
    );
    let inputs = approved.decision_inputs.clone().expect("approval inputs");
    assert_eq!(inputs.role, "supervisor");
    assert_eq!(inputs.requester_role.as_deref(), Some("agent"));
    assert_eq!(
        (inputs.budget_day_minor, inputs.spent_day_minor),
        (5000, 1500)
    );
    assert_eq!(inputs.customer_spent_90d_minor, 1500);
    assert_eq!(inputs.over_budget_day_minor, 0);
    assert_eq!(
        approved.budget_charge.as_ref().map(|c| c.amount_minor),
        Some(3000)
    );
    let after = allowance(&app, &olga, &olga.token).await;
    assert_eq!(after["budget_day_remaining_minor"], 500);
    assert_eq!(after["budget_month_remaining_minor"], 40000 - 4500);
    assert_eq!(after["customer_cap_remaining_minor"], 30000 - 4500);
    assert_eq!(after["may_grant_now_minor"], 500);

    // The next request sees what is left: 10.00 is now past her day budget.
    let next = asked(&app, &olga.token, "g-3", &credit(olga.ticket_id, 1000)).await;
    assert_eq!(next.status, CompensationStatus::Pending);
    assert_eq!(next.rule, "roles.agent.budget_per_day_minor");
    assert_eq!(next.inputs.spent_day_minor, 4500);
    // Sam's approval is the authority to go past it, and the decision says so.
    let over: CompensationRequest = decide(&app, &sam, next.id, true).await.json();
    assert_eq!(
        over.decision_rule.as_deref(),
        Some("roles.supervisor.approval_over_requester_budget")
    );
    let inputs = over.decision_inputs.clone().expect("approval inputs");
    assert_eq!(
        (inputs.spent_day_minor, inputs.over_budget_day_minor),
        (4500, 500)
    );
    assert_eq!(inputs.over_budget_month_minor, 0);
    let ledger: Vec<LedgerEntry> = app
        .get("/api/admin/compensation/ledger", &app.admin_token)
        .await
        .json();
    assert_eq!(
        ledger
            .last()
            .map(|e| (e.request_id, e.rule.as_str(), e.approved_by)),
        Some((
            next.id,
            "roles.supervisor.approval_over_requester_budget",
            Some(sam_id)
        ))
    );
    let spent_out = allowance(&app, &olga, &olga.token).await;
    assert_eq!(spent_out["budget_day_remaining_minor"], 0);
    assert_eq!(spent_out["budget_month_remaining_minor"], 40000 - 5500);
    assert_eq!(spent_out["customer_cap_remaining_minor"], 30000 - 5500);
    // Even the smallest grant now needs a supervisor.
    let tiny = asked(&app, &olga.token, "g-4", &credit(olga.ticket_id, 1)).await;
    assert_eq!(tiny.status, CompensationStatus::Pending);
    assert_eq!(tiny.inputs.spent_day_minor, 5500);

    // Reversing the approved 30.00 gives it back to her day and month and to
    // the customer's cap; the reversal is stored with the decision.
    let reversed = reverse(&app, &sam, above.id).await;
    assert_eq!(reversed.status, StatusCode::CREATED, "{}", reversed.body);
    let entry: LedgerEntry = reversed.json();
    assert_eq!(
        (entry.kind, entry.amount_minor),
        (LedgerEntryKind::Reversal, -3000)
    );
    let stored: CompensationRequest = app
        .get(&format!("/api/compensation/requests/{}", above.id), &sam)
        .await
        .json();
    let reversal = stored.reversal.expect("stored reversal");
    assert_eq!(reversal.reversed_by, Some(sam_id));
    assert_eq!(reversal.ledger_seq, entry.seq);
    assert_eq!(reversal.note, "order returned");
    assert_eq!(
        (reversal.refunded_day_minor, reversal.refunded_month_minor),
        (3000, 3000)
    );
    let refunded = allowance(&app, &olga, &olga.token).await;
    assert_eq!(refunded["budget_day_remaining_minor"], 2500);
    assert_eq!(refunded["budget_month_remaining_minor"], 40000 - 2500);
    assert_eq!(refunded["customer_cap_remaining_minor"], 30000 - 2500);
    let fits = asked(&app, &olga.token, "g-5", &credit(olga.ticket_id, 2000)).await;
    assert_eq!(fits.status, CompensationStatus::Granted);
    assert_eq!(fits.inputs.spent_day_minor, 2500);
    assert_eq!(
        reverse(&app, &sam, above.id).await.status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        reverse(&app, &sam, tiny.id).await.status,
        StatusCode::CONFLICT
    );

    // A day later: reversing yesterday's grant gives back to yesterday's day
    // counter and this month's, not to today's.
    app.clock.advance_ms(DAY_MS);
    let olga_token = relogin(&app, "olga").await;
    let sam = relogin(&app, "sam").await;
    let today = allowance(&app, &olga, &olga_token).await;
    assert_eq!(today["budget_day_remaining_minor"], 5000);
    let month_before = today["budget_month_remaining_minor"].as_i64().unwrap();
    assert_eq!(
        reverse(&app, &sam, granted.id).await.status,
        StatusCode::CREATED
    );
    let today = allowance(&app, &olga, &olga_token).await;
    assert_eq!(today["budget_day_remaining_minor"], 5000);
    let month_after = today["budget_month_remaining_minor"].as_i64().unwrap();
    let this_month = budget_scopes(olga.id, app.clock.now_ms()).1;
    if charge.month_scope == this_month {
        assert_eq!(month_after, month_before + 1500);
    } else {
        // The day moved into a new month: last month's counter got it back.
        assert_eq!(month_after, month_before);
    }

    // A counter lowered behind the application's back never goes below zero.
    let fits_charge = fits.budget_charge.clone().expect("charged");
    behind_the_back(
        &app,
        &format!(
            "UPDATE compensation_spend SET spent_minor = 700 WHERE scope = '{}'",
            fits_charge.day_scope
        ),
    )
    .await;
    assert_eq!(
        reverse(&app, &sam, fits.id).await.status,
        StatusCode::CREATED
    );
    let stored: CompensationRequest = app
        .get(&format!("/api/compensation/requests/{}", fits.id), &sam)
        .await
        .json();
    assert_eq!(stored.reversal.expect("reversal").refunded_day_minor, 700);

    // The cap counts a reversed grant neither before nor after the grant
    // leaves the 90-day window (its reversal never adds room of its own).
    let cap_now = allowance(&app, &olga, &olga_token).await["customer_cap_remaining_minor"]
        .as_i64()
        .unwrap();
    assert_eq!(
        cap_now,
        30000 - 1000,
        "only the over-budget approval still counts"
    );
    // Day-0 grants leave the window while the day-1 reversals are still in it.
    app.clock.advance_ms(89 * DAY_MS + DAY_MS / 2);
    let olga_token = relogin(&app, "olga").await;
    let later = allowance(&app, &olga, &olga_token).await;
    assert_eq!(later["customer_cap_remaining_minor"], 30000);
}
