//! The HTTP API as other systems and administrators use it: intake of
//! customers and purchases, validation problems, health, metrics and the
//! published descriptions of the API and the live channel.

mod support;

use reqwest::StatusCode;
use serde_json::json;
use support::TestApp;

on_every_backend!(
    customers_and_purchases_are_idempotent,
    bad_input_gets_a_problem_and_changes_nothing,
    admin_sets_up_users_agents_queues_and_categories,
);

async fn customers_and_purchases_are_idempotent(app: TestApp) {
    let (_id, shop) = app.user("shop", "integration").await;
    let customer = json!({ "external_id": "crm-1", "name": "Ivan Ivanov", "email": "ivan@example.com",
                           "tier": "silver", "value_minor": 50000, "timezone": "Asia/Yekaterinburg" });
    let created = app.post("/api/customers", &shop, &customer).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_i64().unwrap();
    let again = app.post("/api/customers", &shop, &customer).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["id"].as_i64(), Some(id));

    // An update by external id keeps the same customer.
    let mut renamed = customer.clone();
    renamed["tier"] = json!("gold");
    let updated = app.post("/api/customers", &shop, &renamed).await;
    assert_eq!(updated.body["id"].as_i64(), Some(id));
    assert_eq!(updated.body["tier"], "gold");

    let purchase = json!({ "external_id": "order-1", "product": "Vacuum cleaner", "amount_minor": 1999900,
                           "currency": "RUB", "purchased_at_ms": 1_700_000_000_000i64 });
    let path = format!("/api/customers/{id}/purchases");
    assert_eq!(
        app.post(&path, &shop, &purchase).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.post(&path, &shop, &purchase).await.status,
        StatusCode::OK
    );
    let mut changed = purchase.clone();
    changed["amount_minor"] = json!(1);
    let conflict = app.post(&path, &shop, &changed).await;
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    assert_eq!(conflict.content_type(), "application/problem+json");

    let fetched = app
        .get(&format!("/api/customers/{id}"), &app.admin_token)
        .await;
    assert_eq!(fetched.status, StatusCode::OK);
    let purchases = fetched.body["purchases"].as_array().unwrap();
    assert_eq!(purchases.len(), 1);
    assert_eq!(purchases[0]["product"], "Vacuum cleaner");
    assert_eq!(purchases[0]["amount_minor"], 1999900);

    // Integration users file complaints but do not read tickets.
    let (_q, category) = app.queue("care", &[], 30).await;
    let filed = app
        .complain(&shop, "ivr-1", id, category, "The vacuum stopped working")
        .await;
    assert_eq!(filed.status, StatusCode::CREATED);
    let ticket = filed.body["id"].as_i64().unwrap();
    assert_eq!(
        app.get(&format!("/api/tickets/{ticket}"), &shop)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

async fn bad_input_gets_a_problem_and_changes_nothing(app: TestApp) {
    let (_q, category) = app.queue("care", &[], 30).await;
    let customer = app.customer("crm-2").await;

    // Per-field validation errors.
    let reply = app
        .send(
            app.http
                .post(app.url("/api/complaints"))
                .bearer_auth(&app.admin_token)
                .header("Idempotency-Key", "bad-1")
                .json(&json!({ "customer_id": customer, "category_id": category, "description": "", "channel": "" })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.content_type(), "application/problem+json");
    assert_eq!(reply.body["type"], "/problems/validation");
    let fields: Vec<&str> = reply.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["description", "channel"]);

    // No idempotency key; unknown category; unknown customer; unknown field; broken JSON.
    let no_key = app
        .post(
            "/api/complaints",
            &app.admin_token,
            &json!({ "customer_id": customer, "category_id": category,
                                                            "description": "x", "channel": "web" }),
        )
        .await;
    assert_eq!(no_key.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(no_key.body["errors"][0]["field"], "Idempotency-Key");
    let unknown_category = app
        .complain(&app.admin_token, "bad-2", customer, 999_999, "x")
        .await;
    assert_eq!(unknown_category.body["errors"][0]["field"], "category_id");
    let unknown_customer = app
        .complain(&app.admin_token, "bad-3", 999_999, category, "x")
        .await;
    assert_eq!(unknown_customer.body["errors"][0]["field"], "customer_id");
    let extra = app
        .send(
            app.http
                .post(app.url("/api/complaints"))
                .bearer_auth(&app.admin_token)
                .header("Idempotency-Key", "bad-4")
                .json(
                    &json!({ "customer_id": customer, "category_id": category, "description": "x",
                               "channel": "web", "priority": "urgent" }),
                ),
        )
        .await;
    assert_eq!(extra.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        extra.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("priority"),
        "{}",
        extra.body
    );
    let broken = app
        .send(
            app.http
                .post(app.url("/api/complaints"))
                .bearer_auth(&app.admin_token)
                .header("Idempotency-Key", "bad-5")
                .header("Content-Type", "application/json")
                .body("{\"customer_id\": "),
        )
        .await;
    assert_eq!(broken.status, StatusCode::BAD_REQUEST);
    assert_eq!(broken.content_type(), "application/problem+json");

    // None of that stored a ticket: the next good complaint is ticket number one.
    let good = app
        .complain(
            &app.admin_token,
            "good-1",
            customer,
            category,
            "Door handle broke",
        )
        .await;
    assert_eq!(good.status, StatusCode::CREATED);
    let history = app
        .get(
            &format!("/api/tickets/{}/history", good.body["id"]),
            &app.admin_token,
        )
        .await;
    assert_eq!(history.body["ticket"]["description"], "Door handle broke");
    assert_eq!(good.body["id"], 1);

    // A duplicate queue name is a conflict and leaves the first queue intact.
    let dup = app
        .post(
            "/api/admin/queues",
            &app.admin_token,
            &json!({ "name": "care", "service_level_seconds": 5,
                                                               "offer_timeout_seconds": 5 }),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    let queues = app.get("/api/admin/queues", &app.admin_token).await;
    assert_eq!(queues.body.as_array().unwrap().len(), 1);
    assert_eq!(queues.body[0]["offer_timeout_seconds"], 30);
}

async fn admin_sets_up_users_agents_queues_and_categories(app: TestApp) {
    let weak = app
        .post(
            "/api/admin/users",
            &app.admin_token,
            &json!({ "username": "pavel", "role": "agent", "password": "short" }),
        )
        .await;
    assert_eq!(weak.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(weak.body["errors"][0]["field"], "password");

    let (agent_id, _token) = app
        .agent("pavel", &[("billing", 7), ("english", 4)], 2)
        .await;
    let agent = app
        .get(&format!("/api/admin/agents/{agent_id}"), &app.admin_token)
        .await;
    assert_eq!(agent.status, StatusCode::OK);
    assert_eq!(agent.body["profile"]["capacity_inbound"], 2);
    assert_eq!(
        agent.body["profile"]["skills"][0],
        json!({ "skill": "billing", "level": 7 })
    );
    assert_eq!(agent.body["profile"]["teams"], json!(["care"]));

    let bad_level = app
        .put(&format!("/api/admin/agents/{agent_id}"), &app.admin_token,
             &json!({ "skills": [{ "skill": "billing", "level": 11 }], "capacity_inbound": 1, "capacity_outbound": 1 }))
        .await;
    assert_eq!(bad_level.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_level.body["errors"][0]["field"], "skills[0].level");

    // Supervisors have no agent profile.
    let (sup, _t) = app.user("svetlana", "supervisor").await;
    let not_agent = app
        .put(
            &format!("/api/admin/agents/{sup}"),
            &app.admin_token,
            &json!({ "skills": [], "capacity_inbound": 1, "capacity_outbound": 1 }),
        )
        .await;
    assert_eq!(not_agent.status, StatusCode::CONFLICT);

    let (queue, category) = app.queue("billing", &[("billing", 5)], 15).await;
    let categories = app.get("/api/admin/categories", &app.admin_token).await;
    assert_eq!(categories.body[0]["id"].as_i64(), Some(category));
    assert_eq!(categories.body[0]["queue_id"].as_i64(), Some(queue));
    let orphan = app
        .post(
            "/api/admin/categories",
            &app.admin_token,
            &json!({ "name": "orphan", "queue_id": 4242 }),
        )
        .await;
    assert_eq!(orphan.status, StatusCode::UNPROCESSABLE_ENTITY);

    let users = app.get("/api/admin/users", &app.admin_token).await;
    let names: Vec<&str> = users
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "pavel", "svetlana"]);
}

#[tokio::test]
async fn health_metrics_and_published_descriptions() {
    let app = support::spawn_app(support::Storage::Sqlite, support::Live::Memory)
        .await
        .unwrap();
    let health = app.send(app.http.get(app.url("/healthz"))).await;
    assert_eq!(health.status, StatusCode::OK);
    let ready = app.send(app.http.get(app.url("/readyz"))).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["checks"].as_array().unwrap().len(), 2);

    let (_q, category) = app.queue("care", &[], 30).await;
    let customer = app.customer("crm-3").await;
    app.complain(&app.admin_token, "m-1", customer, category, "Noise")
        .await;
    let metrics = app.send(app.http.get(app.url("/metrics"))).await;
    let text = metrics.body.as_str().unwrap();
    assert!(
        text.contains("callcenter_tickets_created_total 1"),
        "{text}"
    );
    assert!(
        text.contains("callcenter_queue_waiting{queue=\"care\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("callcenter_http_requests_total{class=\"2xx\"}"),
        "{text}"
    );
    // The one complaint was the group commit's one write so far.
    assert!(
        text.contains("callcenter_db_group_writes_total 1\n"),
        "{text}"
    );
    // Where the filing's time went: written, put in line; nobody was free,
    // so nothing was delivered.
    let phases = |text: &str, phase: &str| {
        let count = format!("callcenter_filing_phase_seconds_count{{phase=\"{phase}\"}} ");
        let all =
            format!("callcenter_filing_phase_seconds_bucket{{phase=\"{phase}\",le=\"+Inf\"}} ");
        let read = |prefix: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(prefix))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{prefix} missing in {text}"))
        };
        assert_eq!(read(&count), read(&all), "{text}");
        read(&count)
    };
    assert_eq!(phases(text, "record"), 1);
    assert_eq!(phases(text, "routing"), 1);
    assert_eq!(phases(text, "delivery"), 0);
    // An agent free when the next complaint comes: it is offered at once.
    let (_agent, token) = app.agent("ana", &[], 2).await;
    let mut console = app.socket(&token).await;
    console.go_available().await;
    let first = console.next_offer().await;
    app.complain(&app.admin_token, "m-2", customer, category, "Hum")
        .await;
    let second = console.next_offer().await;
    assert_ne!(first.ticket.id, second.ticket.id);
    let metrics = app.send(app.http.get(app.url("/metrics"))).await;
    let text = metrics.body.as_str().unwrap();
    assert_eq!(phases(text, "record"), 2);
    assert_eq!(phases(text, "routing"), 2);
    assert_eq!(phases(text, "delivery"), 1);

    let openapi = app.send(app.http.get(app.url("/api/openapi.json"))).await;
    assert_eq!(openapi.status, StatusCode::OK);
    for path in [
        "/api/auth/login",
        "/api/complaints",
        "/api/tickets/{id}/history",
        "/api/admin/queues",
        "/api/customers",
    ] {
        assert!(
            openapi.body["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(
        openapi.body["components"]["schemas"]
            .get("ComplaintCreate")
            .is_some()
    );

    let schema = app.send(app.http.get(app.url("/api/ws-schema.json"))).await;
    assert_eq!(schema.body["protocol"], "1.0");
    let text = schema.body.to_string();
    for name in [
        "hello",
        "set_state",
        "accept",
        "offer",
        "offer_rescinded",
        "reply",
    ] {
        assert!(text.contains(name), "{name} missing from the socket schema");
    }

    let console = app.send(app.http.get(app.url("/"))).await;
    assert_eq!(console.status, StatusCode::OK);
    let missing = app.send(app.http.get(app.url("/no/such/page"))).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.content_type(), "application/problem+json");
}

/// On the embedded default another process may write to the same file (an
/// operator's `callcenter user create` while the server runs): a complaint
/// filed meanwhile waits for that write rather than failing with "database
/// is locked".
#[tokio::test]
async fn a_complaint_waits_while_another_process_writes_the_embedded_database() {
    let Some(app) = support::spawn_app(support::Storage::Sqlite, support::Live::Memory).await
    else {
        return;
    };
    let (_queue, category) = app.queue("billing", &[], 30).await;
    let customer = app.customer("shop-1").await;
    let operator = callcenter::store::Db::connect_only(&app.database_url)
        .await
        .unwrap();
    let command = operator.pool().begin_with("BEGIN IMMEDIATE").await.unwrap();
    let filing = app.complain(&app.admin_token, "k-1", customer, category, "Leaks");
    tokio::pin!(filing);
    let early = tokio::time::timeout(std::time::Duration::from_secs(1), &mut filing).await;
    assert!(
        early.is_err(),
        "answered while the other write held the file: {:?}",
        early.map(|r| r.body)
    );
    command.commit().await.unwrap();
    let filed = filing.await;
    assert_eq!(filed.status, StatusCode::CREATED, "{}", filed.body);
}
