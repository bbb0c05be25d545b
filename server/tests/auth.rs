//! The attack matrix: every forged, expired, misaddressed or misused token is
//! refused with 401 over HTTP and a 1008 close on the live channel; roles and
//! ticket ownership are enforced; foreign origins never get a socket.

mod support;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use callcenter_proto::ws::{ClientFrame, Command, ReplyResult, WsErrorCode};
use ed25519_dalek::Signer;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::TestApp;
use support::ws::{Ended, Socket, close_code};
use tokio_tungstenite::tungstenite::Message;

on_every_backend!(
    forged_and_misused_tokens_are_refused,
    logout_and_disable_revoke_tokens_and_close_sockets,
    roles_and_ticket_ownership_are_enforced,
);

/// The server's signing key, read from its database as only an insider could.
async fn signing_key(app: &TestApp) -> ed25519_dalek::SigningKey {
    use sqlx::{Connection, Row};
    sqlx::any::install_default_drivers();
    let url = if app.database_url.starts_with("sqlite") {
        format!("{}?mode=rw", app.database_url)
    } else {
        app.database_url.clone()
    };
    let mut conn = sqlx::AnyConnection::connect(&url).await.expect("db");
    let pem: String = sqlx::query("SELECT private_pem FROM signing_keys WHERE id = 'access'")
        .fetch_one(&mut conn)
        .await
        .expect("key")
        .try_get("private_pem")
        .expect("pem");
    ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).expect("key")
}

fn encode(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        B64.encode(serde_json::to_vec(header).unwrap()),
        B64.encode(serde_json::to_vec(claims).unwrap())
    )
}

fn signed(key: &ed25519_dalek::SigningKey, header: &Value, claims: &Value) -> String {
    let input = encode(header, claims);
    let signature = key.sign(input.as_bytes());
    format!("{input}.{}", B64.encode(signature.to_bytes()))
}

fn hs256(secret: &[u8], claims: &Value) -> String {
    use hmac_sha256::hmac;
    let input = encode(&json!({ "alg": "HS256", "typ": "JWT" }), claims);
    format!("{input}.{}", B64.encode(hmac(input.as_bytes(), secret)))
}

/// Minimal HMAC-SHA256 from sha2, so the test does not trust the code under test.
mod hmac_sha256 {
    use sha2::{Digest, Sha256};
    pub fn hmac(message: &[u8], key: &[u8]) -> [u8; 32] {
        let mut block = [0u8; 64];
        if key.len() > 64 {
            block[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let mut inner = Sha256::new();
        inner.update(block.map(|b| b ^ 0x36));
        inner.update(message);
        let mut outer = Sha256::new();
        outer.update(block.map(|b| b ^ 0x5c));
        outer.update(inner.finalize());
        outer.finalize().into()
    }
}

fn now_s(app: &TestApp) -> i64 {
    use callcenter::clock::Clock;
    app.clock.now_ms() / 1000
}

/// A token the HTTP API refuses with 401 problem+json, and the live channel with 1008.
async fn refused_everywhere(app: &TestApp, token: &str, what: &str) {
    let reply = app.get("/api/me", token).await;
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "{what}: {}",
        reply.body
    );
    assert_eq!(reply.content_type(), "application/problem+json", "{what}");
    assert_eq!(reply.body["type"], "/problems/unauthorized", "{what}");
    assert_eq!(
        reply
            .headers
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap()),
        Some("Bearer")
    );

    let mut stream = Socket::open(&app.ws_url()).await;
    let hello = ClientFrame::Hello {
        protocol: "1.0".into(),
        token: token.into(),
        resume_from: None,
    };
    stream
        .send(Message::Text(serde_json::to_string(&hello).unwrap().into()))
        .await
        .unwrap();
    let closed = loop {
        match tokio::time::timeout(support::ws::PATIENCE, stream.next())
            .await
            .expect("close in time")
        {
            Some(Ok(Message::Close(frame))) => break Ended::Closed(frame),
            Some(Ok(Message::Text(t))) => panic!("{what}: the socket answered {t}"),
            Some(Ok(_)) => continue,
            _ => break Ended::Dropped,
        }
    };
    assert_eq!(close_code(&closed), Some(1008), "{what}: {closed:?}");
}

async fn forged_and_misused_tokens_are_refused(app: TestApp) {
    let (agent_id, agent_token) = app.agent("irina", &[], 1).await;
    let login = app.login("irina", support::AGENT_PASSWORD).await;
    let refresh = login["refresh_token"].as_str().unwrap().to_string();
    let key = signing_key(&app).await;
    let now = now_s(&app);
    let sid = {
        let payload = agent_token.split('.').nth(1).unwrap();
        let claims: Value = serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap();
        claims["sid"].as_str().unwrap().to_string()
    };
    let good = json!({ "sub": agent_id.to_string(), "iss": "callcenter", "aud": "callcenter-api",
                       "exp": now + 600, "nbf": now, "iat": now, "sid": sid, "role": "agent" });
    let eddsa = json!({ "alg": "EdDSA", "typ": "JWT" });

    // The forging kit works: a well-formed token signed with the key is accepted.
    let control = signed(&key, &eddsa, &good);
    assert_eq!(app.get("/api/me", &control).await.status, StatusCode::OK);
    assert_eq!(
        app.get("/api/me", &agent_token).await.status,
        StatusCode::OK
    );

    let with = |field: &str, value: Value| {
        let mut claims = good.clone();
        claims[field] = value;
        claims
    };
    let without = |field: &str| {
        let mut claims = good.clone();
        claims.as_object_mut().unwrap().remove(field);
        claims
    };

    // No token at all.
    let none = app.send(app.http.get(app.url("/api/me"))).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.content_type(), "application/problem+json");

    let cases: Vec<(&str, String)> = vec![
        (
            "expired",
            signed(&key, &eddsa, &with("exp", json!(now - 60))),
        ),
        (
            "nbf in the future",
            signed(&key, &eddsa, &with("nbf", json!(now + 3600))),
        ),
        (
            "exp as a string",
            signed(&key, &eddsa, &with("exp", json!((now + 600).to_string()))),
        ),
        ("no exp", signed(&key, &eddsa, &without("exp"))),
        ("no sub", signed(&key, &eddsa, &without("sub"))),
        (
            "wrong audience",
            signed(&key, &eddsa, &with("aud", json!("someone-else"))),
        ),
        (
            "wrong issuer",
            signed(&key, &eddsa, &with("iss", json!("evil"))),
        ),
        (
            "unknown session",
            signed(&key, &eddsa, &with("sid", json!("not-a-session"))),
        ),
        (
            "alg none",
            format!(
                "{}.",
                encode(&json!({ "alg": "none", "typ": "JWT" }), &good)
            ),
        ),
        ("alg none, signature kept", {
            let parts: Vec<&str> = control.split('.').collect();
            format!("{}.{}", encode(&json!({ "alg": "none" }), &good), parts[2])
        }),
        ("HS256 signed with the public key", {
            use ed25519_dalek::pkcs8::EncodePublicKey;
            let public_pem = key
                .verifying_key()
                .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
                .unwrap();
            hs256(public_pem.as_bytes(), &good)
        }),
        (
            "signed by another key",
            signed(
                &ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]),
                &eddsa,
                &good,
            ),
        ),
        ("tampered payload", {
            let parts: Vec<&str> = agent_token.split('.').collect();
            let mut claims: Value = serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
            claims["role"] = json!("admin");
            format!(
                "{}.{}.{}",
                parts[0],
                B64.encode(serde_json::to_vec(&claims).unwrap()),
                parts[2]
            )
        }),
        ("refresh token as access token", refresh.clone()),
        ("garbage", "not.a.token".into()),
    ];
    for (what, token) in &cases {
        refused_everywhere(&app, token, what).await;
    }

    // A real token expires with time (the injectable clock).
    app.clock.advance_ms(16 * 60 * 1000);
    refused_everywhere(&app, &agent_token, "expired after 15 minutes").await;

    // The refresh token still works once, and only once.
    let renewed = app
        .send(
            app.http
                .post(app.url("/api/auth/refresh"))
                .json(&json!({ "refresh_token": refresh })),
        )
        .await;
    assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.body);
    let fresh = renewed.body["access_token"].as_str().unwrap();
    assert_eq!(app.get("/api/me", fresh).await.status, StatusCode::OK);
    let reused = app
        .send(
            app.http
                .post(app.url("/api/auth/refresh"))
                .json(&json!({ "refresh_token": refresh })),
        )
        .await;
    assert_eq!(reused.status, StatusCode::UNAUTHORIZED);

    // Wrong password, unknown user: the same answer.
    let wrong = app
        .send(
            app.http
                .post(app.url("/api/auth/login"))
                .json(&json!({ "username": "irina", "password": "nope nope nope" })),
        )
        .await;
    let unknown = app
        .send(
            app.http
                .post(app.url("/api/auth/login"))
                .json(&json!({ "username": "nobody", "password": "nope nope nope" })),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.body["detail"], unknown.body["detail"]);
}

async fn logout_and_disable_revoke_tokens_and_close_sockets(app: TestApp) {
    let (agent_id, token) = app.agent("kira", &[], 1).await;
    let second_login = app.login("kira", support::AGENT_PASSWORD).await;
    let other_token = second_login["access_token"].as_str().unwrap().to_string();
    let socket = app.socket(&token).await;
    let other_socket = app.socket(&other_token).await;

    // Logout ends this session only: its socket closes with 1008, its token stops working.
    let out = app
        .send(
            app.http
                .post(app.url("/api/auth/logout"))
                .bearer_auth(&token),
        )
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert_eq!(close_code(&socket.ended().await), Some(1008));
    assert_eq!(
        app.get("/api/me", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/api/me", &other_token).await.status,
        StatusCode::OK
    );

    // Disabling the user ends every session and closes every socket.
    let disabled = app
        .patch(
            &format!("/api/admin/users/{agent_id}"),
            &app.admin_token,
            &json!({ "disabled": true }),
        )
        .await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.body);
    assert_eq!(close_code(&other_socket.ended().await), Some(1008));
    assert_eq!(
        app.get("/api/me", &other_token).await.status,
        StatusCode::UNAUTHORIZED
    );
    let again = app
        .send(
            app.http
                .post(app.url("/api/auth/login"))
                .json(&json!({ "username": "kira", "password": support::AGENT_PASSWORD })),
        )
        .await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
}

async fn roles_and_ticket_ownership_are_enforced(app: TestApp) {
    let (_q, category) = app.queue("claims", &[], 30).await;
    let (_a, token_a) = app.agent("lena", &[], 1).await;
    let (_b, token_b) = app.agent("mark", &[], 1).await;
    let customer = app.customer("shop-99").await;

    // An agent on an admin route.
    for (path, body) in [
        (
            "/api/admin/users",
            json!({ "username": "x", "role": "admin", "password": "p".repeat(12) }),
        ),
        (
            "/api/admin/queues",
            json!({ "name": "q", "service_level_seconds": 10, "offer_timeout_seconds": 10 }),
        ),
    ] {
        let reply = app.post(path, &token_a, &body).await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{path}: {}",
            reply.body
        );
        assert_eq!(reply.body["type"], "/problems/forbidden");
    }
    assert_eq!(
        app.get("/api/admin/users", &token_a).await.status,
        StatusCode::FORBIDDEN
    );

    // Lena takes a ticket; Mark may neither read, resolve nor note it.
    let mut desk_a = app.socket(&token_a).await;
    desk_a
        .command(Command::SetState {
            state: callcenter_proto::AgentState::Available,
            reason: None,
        })
        .await;
    let filed = app
        .complain(
            &app.admin_token,
            "own-1",
            customer,
            category,
            "Missing part",
        )
        .await;
    let ticket_id = filed.body["id"].as_i64().unwrap();
    let offer = desk_a
        .until(|e| match e {
            callcenter_proto::ws::ServerEvent::Offer(o) => Some(o.clone()),
            _ => None,
        })
        .await;
    let mut desk_b = app.socket(&token_b).await;
    let stolen = desk_b
        .command(Command::Accept {
            ticket_id,
            version: offer.version,
        })
        .await;
    assert!(
        matches!(stolen, ReplyResult::Error(ref e) if e.code == WsErrorCode::OfferGone),
        "{stolen:?}"
    );
    let accepted = desk_a
        .command(Command::Accept {
            ticket_id,
            version: offer.version,
        })
        .await;
    assert!(matches!(accepted, ReplyResult::Ok { .. }), "{accepted:?}");

    assert_eq!(
        app.get(&format!("/api/tickets/{ticket_id}"), &token_b)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get(&format!("/api/tickets/{ticket_id}"), &token_a)
            .await
            .status,
        StatusCode::OK
    );
    let outcome = json!({ "code": "fixed", "resolved": true, "note": "" });
    let by_b = app
        .post(
            &format!("/api/tickets/{ticket_id}/resolve"),
            &token_b,
            &outcome,
        )
        .await;
    assert_eq!(by_b.status, StatusCode::FORBIDDEN, "{}", by_b.body);
    let note = desk_b
        .command(Command::Note {
            ticket_id,
            text: "mine now".into(),
        })
        .await;
    assert!(
        matches!(note, ReplyResult::Error(ref e) if e.code == WsErrorCode::Forbidden),
        "{note:?}"
    );
    let no_such = desk_b
        .command(Command::Note {
            ticket_id: ticket_id + 1_000_000,
            text: "nobody's".into(),
        })
        .await;
    assert!(
        matches!(no_such, ReplyResult::Error(ref e) if e.code == WsErrorCode::NotFound),
        "{no_such:?}"
    );
    // A supervisor's socket may not send agent commands.
    let (_s, supervisor) = app.user("sofia", "supervisor").await;
    let mut board = app.socket(&supervisor).await;
    let refused = board
        .command(Command::Accept {
            ticket_id,
            version: offer.version,
        })
        .await;
    assert!(
        matches!(refused, ReplyResult::Error(ref e) if e.code == WsErrorCode::Forbidden),
        "{refused:?}"
    );

    // The ticket is still Lena's and unresolved.
    let ticket = app
        .get(&format!("/api/tickets/{ticket_id}"), &app.admin_token)
        .await;
    assert_eq!(ticket.body["status"], "assigned");
    let by_a = app
        .post(
            &format!("/api/tickets/{ticket_id}/resolve"),
            &token_a,
            &outcome,
        )
        .await;
    assert_eq!(by_a.status, StatusCode::OK, "{}", by_a.body);
}

#[tokio::test]
async fn foreign_origin_is_refused_before_the_upgrade() {
    let mut options = support::Options::new(support::Storage::Sqlite, support::Live::Memory);
    options.allowed_origins = vec!["https://desk.example.com".into()];
    let app = support::spawn_with(options).await.unwrap();
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    for (origin, allowed) in [
        ("https://evil.example.com", false),
        ("https://desk.example.com.evil.com", false),
        ("null", false),
        ("https://desk.example.com", true),
    ] {
        let mut request = app.ws_url().into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Origin", origin.parse().unwrap());
        let result = tokio_tungstenite::connect_async(request).await;
        match result {
            Ok(_) => assert!(allowed, "{origin} got a socket"),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert!(!allowed, "{origin} was refused");
                assert_eq!(response.status(), 403);
            }
            Err(e) => panic!("{origin}: {e}"),
        }
    }
}

#[tokio::test]
async fn unknown_protocol_version_and_silence_are_refused() {
    let app = support::spawn_app(support::Storage::Sqlite, support::Live::Memory)
        .await
        .unwrap();
    let (_id, token) = app.agent("nina", &[], 1).await;
    let mut stream = Socket::open(&app.ws_url()).await;
    let hello = ClientFrame::Hello {
        protocol: "2.0".into(),
        token,
        resume_from: None,
    };
    stream
        .send(Message::Text(serde_json::to_string(&hello).unwrap().into()))
        .await
        .unwrap();
    let Some(Ok(Message::Close(Some(frame)))) = stream.next().await else {
        panic!("expected a close")
    };
    assert_eq!(u16::from(frame.code), 4400);
    assert!(frame.reason.contains("1.0"), "{}", frame.reason);

    // A client that says nothing is closed after the hello timeout.
    let mut silent = Socket::open(&app.ws_url()).await;
    let Some(Ok(Message::Close(Some(frame)))) = silent.next().await else {
        panic!("expected a close")
    };
    assert_eq!(u16::from(frame.code), 1008);
}

#[tokio::test]
async fn oversized_frames_and_bodies_are_refused() {
    let app = support::spawn_app(support::Storage::Sqlite, support::Live::Memory)
        .await
        .unwrap();
    let (_id, token) = app.agent("olya", &[], 1).await;
    let mut socket = app.socket(&token).await;
    socket.send_text(&"x".repeat(64 * 1024)).await;
    assert!(matches!(
        socket.ended().await,
        Ended::Closed(_) | Ended::Dropped
    ));

    let big = json!({ "external_id": "c", "name": "x".repeat(100 * 1024) });
    let reply = app.post("/api/customers", &app.admin_token, &big).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.content_type(), "application/problem+json");
}
