//! The compensation part of the behaviour mix: a published policy, agents
//! asking for a grant on a share of their tickets (some within their
//! authority, some above it), supervisors approving what waits for them.

use crate::setup::Api;
use crate::shared::Shared;
use callcenter_proto::compensation::{BonusKind, CompensationRequest, GrantRequest};
use std::sync::Arc;

/// The most an agent may grant at once under the run's policy.
pub const AGENT_LIMIT_MINOR: i64 = 2_000;

/// Publish a policy for the run and put its supervisors on its team.
pub async fn prepare(
    api: &Api,
    admin: &str,
    team: &str,
    supervisors: &[i64],
) -> anyhow::Result<()> {
    let policy = serde_json::json!({
        "currency": "EUR",
        "bonus_kinds": [{ "kind": "account_credit", "max_quantity": 1_000_000 }],
        "roles": [
            { "role": "agent", "per_grant": { "max_minor": AGENT_LIMIT_MINOR },
              "budget_per_day_minor": 1_000_000_000i64, "budget_per_month_minor": 1_000_000_000i64 },
            { "role": "supervisor", "per_grant": { "max_minor": 100_000 },
              "budget_per_day_minor": 1_000_000_000i64, "budget_per_month_minor": 1_000_000_000i64 }
        ],
        "customer_cap_90d": { "max_minor": 1_000_000_000i64 },
        "reason_codes": ["late_delivery", "damaged_parcel"],
        "note_required": false,
        "forbidden_category_ids": [],
        "approval_timeout_minutes": 15
    });
    api.post_json::<serde_json::Value>("/api/admin/compensation/policies", admin, &policy)
        .await?;
    for id in supervisors {
        api.put_json::<serde_json::Value>(
            &format!("/api/admin/supervisors/{id}/teams"),
            admin,
            &serde_json::json!({ "teams": [team] }),
        )
        .await?;
    }
    Ok(())
}

/// Ask for a credit on a held ticket (idempotent by key); counts the answer.
pub fn ask(shared: Arc<Shared>, api: Api, token: String, ticket_id: i64, amount_minor: i64) {
    tokio::spawn(async move {
        let key = format!("{}-grant-{ticket_id}", shared.run);
        let request = GrantRequest {
            ticket_id,
            kind: BonusKind::AccountCredit,
            quantity: amount_minor,
            order_amount_minor: None,
            reason_code: "late_delivery".into(),
            note: "Parcel two weeks late".into(),
        };
        let answer = api
            .http
            .post(format!("{}/api/compensation/requests", api.base))
            .bearer_auth(&token)
            .header("Idempotency-Key", key)
            .json(&request)
            .send()
            .await;
        match answer {
            Ok(r) if r.status().is_success() => match r.json::<CompensationRequest>().await {
                Ok(c) => shared.action(format!("compensation_{}", c.status.as_str())),
                Err(_) => shared.error("compensation:bad_body"),
            },
            Ok(r) => shared.error(format!("compensation:{}", r.status().as_u16())),
            Err(_) => shared.error("compensation:network"),
        }
    });
}
