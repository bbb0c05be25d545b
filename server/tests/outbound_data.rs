//! Onboarding and data rights: a CSV import with bad rows (valid rows in,
//! invalid rows named with the reason, nothing half-imported), and one
//! customer's data exported as JSON and erased.

mod outbound_support;
mod support;

use callcenter_proto::outbound::{CallStatus, ContactPolicy, CustomerExport, ImportReport};
use outbound_support::*;
use reqwest::StatusCode;
use serde_json::json;
use support::Reply;

outbound_stories!(monday_morning();
    csv_import_keeps_valid_rows_and_names_bad_ones,
    customer_data_is_exported_then_erased,
    outbound_routes_are_authorized_and_validated,
);

async fn import(c: &Center, kind: &str, csv: &str) -> Reply {
    c.app
        .send(
            c.app
                .http
                .post(c.app.url(&format!("/api/import/{kind}")))
                .bearer_auth(&c.app.admin_token)
                .header("content-type", "text/csv")
                .body(csv.to_string()),
        )
        .await
}

async fn csv_import_keeps_valid_rows_and_names_bad_ones(c: Center) {
    c.journey("renewal", "membership_end", &[(7, "Renewal reminder")])
        .await;
    let customers = "\
external_id,name,email,phone,timezone,consent_calls
c-1,Anna Petrova,anna@example.com,+79000000001,Europe/Moscow,yes
c-2,,boris@example.com,+79000000002,Europe/Moscow,yes
c-3,Vera Ivanova,vera@example.com,+79000000003,Mars/Olympus,yes
c-4,Gleb Orlov,not-an-email,+79000000004,Europe/Moscow,no
c-5,Dina Sokolova,dina@example.com,+79000000005,Asia/Tokyo,1
c-1,Anna Again,anna2@example.com,+79000000006,Europe/Moscow,yes
";
    let reply = import(&c, "customers", customers).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let report: ImportReport = reply.json();
    assert_eq!((report.rows, report.imported), (6, 2), "{report:#?}");
    let named: Vec<(u64, Option<&str>)> = report
        .errors
        .iter()
        .map(|e| (e.line, e.field.as_deref()))
        .collect();
    assert_eq!(
        named,
        vec![
            (3, Some("name")),
            (4, Some("timezone")),
            (5, Some("email")),
            (7, Some("external_id")),
        ]
    );
    assert!(report.errors[1].message.contains("IANA"));

    // The valid rows are in, consent recorded as coming from the import;
    // nothing of the invalid rows is.
    let anna = c.app.get("/api/customers/1", &c.app.admin_token).await;
    assert_eq!(anna.body["name"], "Anna Petrova");
    let contact = c
        .app
        .get("/api/customers/1/contact", &c.app.admin_token)
        .await;
    assert_eq!(contact.body["consent_calls"], true);
    assert_eq!(contact.body["consent_history"][0]["source"], "import");
    let all = sqlx_count(&c, "SELECT COUNT(*) AS n FROM customers").await;
    assert_eq!(all, 2);

    // Memberships for the imported customers plan their reminders; a row
    // for an unknown customer or with a bad date is reported.
    let ends = monday_morning() + 30 * DAY;
    let memberships = format!(
        "customer_external_id,external_id,product,ends_at\n\
         c-1,m-1,Care plan,{ends}\n\
         c-9,m-2,Care plan,{ends}\n\
         c-5,m-3,Care plan,next spring\n\
         c-5,m-4,Care plan,2026-04-01\n"
    );
    let report: ImportReport = import(&c, "memberships", &memberships).await.json();
    assert_eq!(report.imported, 2, "{report:#?}");
    let reasons: Vec<(u64, String)> = report
        .errors
        .iter()
        .map(|e| (e.line, e.message.clone()))
        .collect();
    assert_eq!(reasons.len(), 2);
    assert_eq!(reasons[0].0, 3);
    assert!(reasons[0].1.contains("no customer"), "{reasons:?}");
    assert_eq!(reasons[1].0, 4);
    let planned = c.calls(1).await;
    assert_eq!(planned.len(), 1);
    assert_eq!(planned[0].due_at_ms, ends - 7 * DAY);

    // The same file again stores nothing twice.
    let again: ImportReport = import(&c, "memberships", &memberships).await.json();
    assert_eq!(again.errors.len(), 2);
    assert_eq!(
        sqlx_count(&c, "SELECT COUNT(*) AS n FROM memberships").await,
        2
    );
    assert_eq!(c.calls(1).await.len(), 1);

    // A file without the required columns is refused as a whole.
    let bad = import(
        &c,
        "purchases",
        "customer_external_id,product\nc-1,Kettle\n",
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    assert!(bad.content_type().starts_with("application/problem+json"));
    // Not CSV at all.
    let not_csv = c
        .app
        .post("/api/import/customers", &c.app.admin_token, &json!({}))
        .await;
    assert_eq!(not_csv.status, StatusCode::BAD_REQUEST);
    // Agents may not import.
    let (_, agent) = (c.agent_id, c.agent_token.clone());
    let forbidden = c
        .app
        .send(
            c.app
                .http
                .post(c.app.url("/api/import/customers"))
                .bearer_auth(&agent)
                .header("content-type", "text/csv")
                .body(customers),
        )
        .await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
}

async fn sqlx_count(c: &Center, sql: &str) -> i64 {
    use sqlx::{Connection, Row};
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&c.app.database_url)
        .await
        .expect("connect");
    let n: i64 = sqlx::query(sql)
        .fetch_one(&mut conn)
        .await
        .expect("count")
        .try_get("n")
        .expect("n");
    n
}

async fn customer_data_is_exported_then_erased(mut c: Center) {
    c.journey("check-in", "purchase", &[(3, "Check-in")]).await;
    let anna = c.customer("anna", "Europe/Moscow").await;
    c.purchase(anna, "order-1").await;
    let date = c
        .app
        .post(
            &format!("/api/customers/{anna}/dates"),
            &c.app.admin_token,
            &json!({ "external_id": "anna-birthday", "label": "birthday", "month": 7, "day": 14 }),
        )
        .await;
    assert_eq!(date.status, StatusCode::CREATED, "{}", date.body);
    let filed = c
        .app
        .complain(
            &c.app.admin_token,
            "k-1",
            anna,
            c.category,
            "Anna's kettle leaks at home",
        )
        .await;
    let ticket = filed.body["id"].as_i64().unwrap();
    c.advance(HOUR).await;

    let export = c
        .app
        .get(&format!("/api/customers/{anna}/export"), &c.app.admin_token)
        .await;
    assert_eq!(export.status, StatusCode::OK, "{}", export.body);
    let export: CustomerExport = export.json();
    assert_eq!(export.customer.name, "Customer anna");
    assert_eq!(export.customer.purchases.len(), 1);
    assert_eq!(export.shared_dates.len(), 1);
    assert_eq!(export.contact.consent_history.len(), 1);
    assert_eq!(export.contact.consent_history[0].source, "web_form");
    assert_eq!(export.tickets.len(), 1);
    assert_eq!(
        export.tickets[0].ticket.description,
        "Anna's kettle leaks at home"
    );
    assert!(!export.outbound_calls.is_empty());

    // Only admins handle data requests.
    let (_, supervisor) = c.app.user("sam", "supervisor").await;
    let denied = c
        .app
        .post(
            &format!("/api/customers/{anna}/erase"),
            &supervisor,
            &json!({}),
        )
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);

    let erased = c
        .app
        .post(
            &format!("/api/customers/{anna}/erase"),
            &c.app.admin_token,
            &json!({}),
        )
        .await;
    assert_eq!(erased.status, StatusCode::NO_CONTENT, "{}", erased.body);

    let after: CustomerExport = c
        .app
        .get(&format!("/api/customers/{anna}/export"), &c.app.admin_token)
        .await
        .json();
    // Personal data gone...
    assert_eq!(after.customer.name, "[erased]");
    assert_eq!(after.customer.email, None);
    assert_eq!(after.customer.phone, None);
    assert_eq!(after.customer.timezone, None);
    assert_ne!(after.customer.external_id, "anna");
    assert!(after.shared_dates.is_empty());
    assert_eq!(after.tickets[0].ticket.description, "[erased]");
    // ...aggregates and history kept: ids, tier, value, amounts, steps.
    assert_eq!(after.customer.id, anna);
    assert_eq!(after.customer.tier, "gold");
    assert_eq!(after.customer.value_minor, 50000);
    assert_eq!(after.customer.purchases[0].amount_minor, 49900);
    assert_eq!(after.tickets[0].ticket.id, ticket);
    assert_eq!(
        after.tickets[0].events.len(),
        export.tickets[0].events.len()
    );
    // Never called again: planned calls stopped, consent withdrawn.
    assert!(after.contact.erased && after.contact.do_not_call);
    assert!(
        after
            .outbound_calls
            .iter()
            .all(|x| x.status == CallStatus::Skipped)
    );
    c.advance(4 * DAY).await;
    c.run().await;
    assert!(
        c.calls(anna)
            .await
            .iter()
            .all(|x| x.status == CallStatus::Skipped && x.ticket_id.is_none())
    );
    // The old external id is free for a new customer record.
    let again = c.customer("anna", "Europe/Moscow").await;
    assert_ne!(again, anna);
}

async fn outbound_routes_are_authorized_and_validated(c: Center) {
    let admin = &c.app.admin_token;
    let agent = &c.agent_token;
    let anna = c.customer("anna", "Europe/Moscow").await;
    let journey = json!({ "name": "check-in", "trigger": "purchase", "category_id": c.category,
                          "steps": [{ "days": 3, "purpose": "Check-in", "script": "Ask." }] });

    // Roles.
    let cases = [
        c.app.get("/api/outbound/calls", agent).await,
        c.app.post("/api/admin/journeys", agent, &journey).await,
        c.app
            .put(
                "/api/admin/contact-policy",
                agent,
                &ContactPolicy::default(),
            )
            .await,
        c.app
            .post("/api/admin/outbound/run", agent, &json!({}))
            .await,
        c.app
            .get(&format!("/api/customers/{anna}/export"), agent)
            .await,
        c.app
            .put(
                &format!("/api/customers/{anna}/contact"),
                agent,
                &json!({ "account_status": "frozen", "source": "console" }),
            )
            .await,
    ];
    for reply in &cases {
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    }
    let unauthenticated = c
        .app
        .send(c.app.http.get(c.app.url("/api/outbound/calls")))
        .await;
    assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);
    // An agent records what the customer says about consent, with the source.
    let by_agent = c
        .app
        .put(
            &format!("/api/customers/{anna}/contact"),
            agent,
            &json!({ "do_not_call": true, "source": "phone" }),
        )
        .await;
    assert_eq!(by_agent.status, StatusCode::OK, "{}", by_agent.body);
    assert_eq!(
        by_agent.body["consent_history"][1]["actor_user_id"],
        c.agent_id
    );

    // Validation: problem+json naming the field, nothing stored.
    let fields = |reply: &Reply| -> Vec<String> {
        reply.body["errors"]
            .as_array()
            .map(|e| {
                e.iter()
                    .map(|f| f["field"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let no_steps = c
        .app
        .post(
            "/api/admin/journeys",
            admin,
            &json!({ "name": "empty", "trigger": "purchase", "category_id": c.category, "steps": [] }),
        )
        .await;
    assert_eq!(no_steps.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fields(&no_steps), vec!["steps"]);
    let no_category = c
        .app
        .post(
            "/api/admin/journeys",
            admin,
            &json!({ "name": "lost", "trigger": "purchase", "category_id": 999,
                     "steps": [{ "days": 1, "purpose": "x", "script": "y" }] }),
        )
        .await;
    assert_eq!(fields(&no_category), vec!["category_id"]);
    let listed = c.app.get("/api/admin/journeys", admin).await;
    assert_eq!(listed.body.as_array().map(Vec::len), Some(0));

    let bad_policy = c
        .app
        .put(
            "/api/admin/contact-policy",
            admin,
            &ContactPolicy {
                call_from: "21:00".into(),
                call_until: "09:00".into(),
                default_timezone: "Nowhere/City".into(),
                weekdays: vec![0, 8],
                ..ContactPolicy::default()
            },
        )
        .await;
    assert_eq!(bad_policy.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        fields(&bad_policy),
        vec!["weekdays", "call_until", "default_timezone"]
    );
    let policy: ContactPolicy = c.app.get("/api/admin/contact-policy", admin).await.json();
    assert_eq!(policy, ContactPolicy::default());

    let bad_query = c
        .app
        .get("/api/outbound/reports/outcomes?from_ms=soon", admin)
        .await;
    assert_eq!(bad_query.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad_query
            .content_type()
            .starts_with("application/problem+json")
    );

    // Memberships: unknown customer, idempotent retry, conflicting retry.
    let membership = json!({ "external_id": "plan-1", "product": "Care plan", "ends_at_ms": c.now() + 30 * DAY });
    let unknown = c
        .app
        .post("/api/customers/999/memberships", admin, &membership)
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let first = c
        .app
        .post(
            &format!("/api/customers/{anna}/memberships"),
            admin,
            &membership,
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let retry = c
        .app
        .post(
            &format!("/api/customers/{anna}/memberships"),
            admin,
            &membership,
        )
        .await;
    assert_eq!(retry.status, StatusCode::OK);
    assert_eq!(retry.body["id"], first.body["id"]);
    let changed = c
        .app
        .post(
            &format!("/api/customers/{anna}/memberships"),
            admin,
            &json!({ "external_id": "plan-1", "product": "Other plan", "ends_at_ms": c.now() }),
        )
        .await;
    assert_eq!(changed.status, StatusCode::CONFLICT);
    let bad_date = c
        .app
        .post(
            &format!("/api/customers/{anna}/dates"),
            admin,
            &json!({ "external_id": "d-1", "label": "birthday", "month": 2, "day": 30 }),
        )
        .await;
    assert_eq!(bad_date.status, StatusCode::UNPROCESSABLE_ENTITY);
}
