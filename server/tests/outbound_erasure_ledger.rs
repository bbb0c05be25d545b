//! Erasing a customer who was compensated: the compensation ledger stays
//! exactly as it was (its hash chain verifies, the entry still counts for
//! the customer's id), while the request's free-text note is erased.

mod compensation_fixtures;
mod support;

use callcenter_proto::compensation::{LedgerEntry, LedgerVerification};
use compensation_fixtures::*;
use reqwest::StatusCode;
use serde_json::json;
use support::TestApp;

on_every_backend!(erasure_keeps_the_compensation_ledger_whole);

async fn erasure_keeps_the_compensation_ledger_whole(app: TestApp) {
    publish(&app, &app.admin_token, &policy()).await;
    let (category, customer) = care_desk(&app).await;
    let olga = agent_holding_ticket(&app, "olga", customer, category).await;
    let granted = asked(&app, &olga.token, "grant-1", &credit(olga.ticket_id, 500)).await;
    let before: Vec<LedgerEntry> = app
        .get("/api/admin/compensation/ledger", &app.admin_token)
        .await
        .json();
    assert_eq!(before.len(), 1);

    let export = app
        .get(
            &format!("/api/customers/{customer}/export"),
            &app.admin_token,
        )
        .await;
    assert_eq!(export.status, StatusCode::OK, "{}", export.body);
    assert_eq!(export.body["compensation_requests"][0]["id"], granted.id);
    assert_eq!(
        export.body["compensation_requests"][0]["note"],
        "two weeks late"
    );

    let erased = app
        .post(
            &format!("/api/customers/{customer}/erase"),
            &app.admin_token,
            &json!({}),
        )
        .await;
    assert_eq!(erased.status, StatusCode::NO_CONTENT, "{}", erased.body);

    let after: Vec<LedgerEntry> = app
        .get("/api/admin/compensation/ledger", &app.admin_token)
        .await
        .json();
    assert_eq!(after, before);
    assert_eq!(after[0].customer_id, customer);
    let verified: LedgerVerification = app
        .get("/api/admin/compensation/ledger/verify", &app.admin_token)
        .await
        .json();
    assert!(verified.ok, "{verified:?}");
    assert_eq!(verified.entries_checked, 1);

    let request = app
        .get(
            &format!("/api/compensation/requests/{}", granted.id),
            &app.admin_token,
        )
        .await;
    assert_eq!(request.status, StatusCode::OK, "{}", request.body);
    assert_eq!(request.body["note"], "[erased]");
    assert_eq!(request.body["cost_minor"], 500);
    assert_eq!(request.body["customer_id"], customer);
}
