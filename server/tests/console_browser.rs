//! The web console in a real browser: `console/e2e/console.mjs` drives
//! Debian's Chromium (playwright-core) against a real server started here.
//! An agent logs in, goes available, receives an offer created through the
//! API, accepts it with the keyboard, grants a compensation within authority,
//! asks for one above it that a supervisor approves on the live board, and
//! resolves; the agent's connection is cut and restored and the offer filed
//! meanwhile still arrives; no console errors. Screenshots of each screen go
//! to `test-artifacts/console/`.
//!
//! Needs `chromium` (or `CHROMIUM=<path>`) and `npm ci` in `console/e2e`;
//! without them the test skips with a message, unless `REQUIRE_SERVICES=1`.

mod support;

use callcenter_proto::TicketStatus;
use callcenter_proto::compensation::{LedgerEntry, LedgerEntryKind};
use callcenter_proto::http::TicketHistory;
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

    let second = result["second_ticket"].as_i64().expect("second ticket");
    let second = app
        .get(&format!("/api/tickets/{second}"), &app.admin_token)
        .await;
    assert_eq!(second.body["status"], "assigned", "{}", second.body);

    for screen in [
        "01-login",
        "03-offer",
        "05-ticket",
        "07-board-approval",
        "09-disconnected",
        "12-admin-compensation",
    ] {
        let png = artifacts.join(format!("{screen}.png"));
        assert!(
            png.metadata().is_ok_and(|m| m.len() > 1000),
            "screenshot {}",
            png.display()
        );
    }
}
