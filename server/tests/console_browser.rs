//! The web console in a real browser: `console/e2e/console.mjs` drives
//! Debian's Chromium (playwright-core) against a real server started here.
//! An agent logs in, takes a break with a reason and comes back, goes
//! available, is never shown the offer of a complaint withdrawn at once
//! (its rescind reaches the console first, as a busy server can send
//! them), declines an offer created through the API with the keyboard
//! and accepts it again, sees the customer card's history, grants a
//! compensation within authority, asks for one above it that a supervisor
//! approves on the live board, escalates (the supervisor sees it live and
//! hands it back), and resolves; the agent's connection is cut and restored
//! and the offer filed meanwhile still arrives; that ticket is escalated and
//! taken over by the supervisor; a third ends with a callback scheduled; an
//! outbound call is ended with its outcome buttons; an admin logs in with
//! the keyboard alone and gets a validation error. Contrast (measured),
//! visible focus, 1280×800 without sideways scrolling and no console errors
//! are checked in the page. Screenshots of each screen go to
//! `test-artifacts/console/`; this test checks the record behind them.
//!
//! Needs `chromium` (or `CHROMIUM=<path>`) and `npm ci` in `console/e2e`;
//! without them the test skips with a message, unless `REQUIRE_SERVICES=1`.

mod support;

use callcenter_proto::TicketStatus;
use callcenter_proto::compensation::{LedgerEntry, LedgerEntryKind};
use callcenter_proto::http::TicketHistory;
use callcenter_proto::outbound::{CallResult, CallStatus, OutboundCall};
use reqwest::StatusCode;
use std::path::{Path, PathBuf};
use support::{ADMIN_PASSWORD, Live, Storage};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The browser and the script's packages, or why the test cannot run.
fn browser_setup() -> Result<PathBuf, String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Err(format!(
            "no Chromium at {chromium} (apt-get install chromium)"
        ));
    }
    let e2e = workspace().join("console/e2e");
    if !e2e.join("node_modules/playwright-core").exists() {
        return Err("console/e2e/node_modules is missing (run npm ci in console/e2e)".into());
    }
    match std::process::Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => Ok(e2e),
        _ => Err("node is not installed".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_and_supervisor_work_a_ticket_in_the_browser() {
    let e2e = match browser_setup() {
        Ok(dir) => dir,
        Err(why) if support::require_services() => {
            panic!("the browser test is required (REQUIRE_SERVICES=1): {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED: {why}; set REQUIRE_SERVICES=1 to make this a failure");
            return;
        }
    };
    let Some(app) = support::spawn_app(Storage::Sqlite, Live::Memory).await else {
        return;
    };
    let artifacts = workspace().join("test-artifacts/console");
    let run = tokio::process::Command::new("node")
        .arg(e2e.join("console.mjs"))
        .arg(&app.base)
        .arg(ADMIN_PASSWORD)
        .arg(&artifacts)
        .current_dir(&e2e)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(240), run)
        .await
        .expect("the browser script finished within 4 minutes")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the browser script failed:\n{stdout}\n{stderr}"
    );

    // What the browser did is in the record.
    let result: serde_json::Value = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .map(|json| serde_json::from_str(json).expect("result JSON"))
        .expect("the script reports its tickets");
    let withdrawn = result["withdrawn_ticket"]
        .as_i64()
        .expect("withdrawn ticket");
    let withdrawn: TicketHistory = app
        .get(
            &format!("/api/tickets/{withdrawn}/history"),
            &app.admin_token,
        )
        .await
        .json();
    assert_eq!(withdrawn.ticket.status, TicketStatus::Cancelled);
    let first = result["first_ticket"].as_i64().expect("first ticket");
    let history = app
        .get(&format!("/api/tickets/{first}/history"), &app.admin_token)
        .await;
    assert_eq!(history.status, StatusCode::OK, "{}", history.body);
    let history: TicketHistory = history.json();
    assert_eq!(history.ticket.status, TicketStatus::Resolved);
    let outcome = history.ticket.outcome.expect("an outcome");
    assert_eq!(outcome.code, "compensated");
    assert_eq!(outcome.note, "Credited and apologised");

    let ledger = app
        .get("/api/admin/compensation/ledger", &app.admin_token)
        .await;
    assert_eq!(ledger.status, StatusCode::OK, "{}", ledger.body);
    let ledger: Vec<LedgerEntry> = ledger.json();
    let grants: Vec<(i64, bool)> = ledger
        .iter()
        .filter(|e| e.kind == LedgerEntryKind::Grant && e.ticket_id == first)
        .map(|e| (e.amount_minor, e.approved_by.is_some()))
        .collect();
    assert_eq!(
        grants,
        vec![(1500, false), (5000, true)],
        "the agent's grant, then the approved one"
    );

    // Declined once with the keyboard, then accepted; escalated and handed
    // back with the supervisor's note.
    let kinds: Vec<&str> = history.events.iter().map(|e| e.kind.as_str()).collect();
    let declined = kinds
        .iter()
        .position(|k| *k == "declined")
        .expect("declined");
    let accepted = kinds
        .iter()
        .position(|k| *k == "accepted")
        .expect("accepted");
    assert!(declined < accepted, "{kinds:?}");
    let handed_back = history
        .events
        .iter()
        .find(|e| e.kind == "escalation_handed_back")
        .expect("handed back");
    assert_eq!(handed_back.data["note"], "Offer the repair first");
    let escalated = history
        .events
        .iter()
        .find(|e| e.kind == "escalated")
        .expect("escalated");
    assert_eq!(escalated.data["reason"], "Customer asks for a manager");

    // The ticket filed while the agent was away: escalated, taken over and
    // resolved by the supervisor.
    let second = result["second_ticket"].as_i64().expect("second ticket");
    let second: TicketHistory = app
        .get(&format!("/api/tickets/{second}/history"), &app.admin_token)
        .await
        .json();
    assert_eq!(second.ticket.status, TicketStatus::Resolved);
    assert_eq!(second.ticket.outcome.expect("outcome").code, "explained");
    let taken = second
        .events
        .iter()
        .find(|e| e.kind == "escalation_taken")
        .expect("taken over");
    let resolved = second
        .events
        .iter()
        .find(|e| e.kind == "resolved")
        .expect("resolved");
    assert_eq!(resolved.actor_user_id, taken.actor_user_id);
    assert_ne!(
        Some(taken.data["from_user_id"].as_i64().expect("from")),
        resolved.actor_user_id
    );

    // The third ended with a callback planned for the time chosen.
    let third_id = result["third_ticket"].as_i64().expect("third ticket");
    let third: TicketHistory = app
        .get(
            &format!("/api/tickets/{third_id}/history"),
            &app.admin_token,
        )
        .await
        .json();
    assert_eq!(third.ticket.status, TicketStatus::Resolved);
    let outcome = third.ticket.outcome.expect("outcome");
    assert_eq!(
        (outcome.code.as_str(), outcome.resolved),
        ("not_resolved", false)
    );
    let at = result["callback_at_ms"].as_i64().expect("callback time");
    let planned = third
        .events
        .iter()
        .find(|e| e.kind == "callback_scheduled")
        .expect("callback step");
    assert_eq!(planned.data["at_ms"], at);
    let anna = result["anna"].as_i64().expect("anna");
    let calls: Vec<OutboundCall> = app
        .get(
            &format!("/api/outbound/calls?customer_id={anna}"),
            &app.admin_token,
        )
        .await
        .json();
    let callback = calls
        .iter()
        .find(|c| c.status == CallStatus::Scheduled)
        .unwrap_or_else(|| panic!("a scheduled callback: {calls:?}"));
    assert_eq!(callback.due_at_ms, at);
    assert!(
        callback.purposes[0]
            .purpose
            .starts_with(&format!("Callback on complaint #{third_id}")),
        "{callback:?}"
    );
    assert_eq!(
        callback.purposes[0].script,
        "Check that the refund reached the card"
    );

    // The outbound call ended with the "Refused" button and its reason.
    let boris = result["boris"].as_i64().expect("boris");
    let calls: Vec<OutboundCall> = app
        .get(
            &format!("/api/outbound/calls?customer_id={boris}"),
            &app.admin_token,
        )
        .await
        .json();
    let refused = calls
        .iter()
        .find(|c| c.ticket_id == result["outbound_ticket"].as_i64())
        .unwrap_or_else(|| panic!("the outbound call: {calls:?}"));
    assert_eq!(refused.outcome, Some(CallResult::Refused));
    assert_eq!(refused.reason_code.as_deref(), Some("too_expensive"));

    for screen in [
        "01-login",
        "02-desk-break",
        "03-offer",
        "05-ticket",
        "07-board-approval",
        "08-board-escalation",
        "09-handed-back",
        "11-disconnected",
        "14-customer-history",
        "15-board-taken-over",
        "16-callback",
        "18-outbound-call",
        "19-keyboard-focus",
        "20-admin-compensation",
        "21-admin-validation",
    ] {
        let png = artifacts.join(format!("{screen}.png"));
        assert!(
            png.metadata().is_ok_and(|m| m.len() > 1000),
            "screenshot {}",
            png.display()
        );
    }
}
