//! Compensation in the record: policy versions, requests and their decisions,
//! budget counters, supervisors' teams, spend reports and webhook deliveries.

use crate::store::{Db, StoreError, StoreResult};
use callcenter_proto::compensation::{
    BonusKind, BudgetCharge, CompensationRequest, CompensationStatus, DecisionInputs,
    PolicyDocument, PolicyVersion, ReversalRecord, SpendLine, SpendReport, WebhookDelivery,
};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

pub(crate) const REQUEST_COLUMNS: &str = "id, ticket_id, customer_id, requested_by, kind, quantity, \
     order_amount_minor, cost_minor, reason_code, note, status, policy_version, rule, inputs, \
     decided_by, decision_note, decision_policy_version, decision_rule, decision_inputs, \
     created_at_ms, decided_at_ms, expires_at_ms, charged_day_scope, charged_month_scope, \
     charged_minor, reversed_by, reversed_at_ms, reversal_note, reversal_seq, \
     refunded_day_minor, refunded_month_minor";

const DAY_MS: i64 = 24 * 3600 * 1000;

fn corrupt(what: &'static str) -> StoreError {
    StoreError::NotFound(what)
}

pub(crate) fn request_from_row(row: &AnyRow) -> StoreResult<CompensationRequest> {
    let kind: String = row.try_get("kind")?;
    let status: String = row.try_get("status")?;
    let inputs: String = row.try_get("inputs")?;
    let decision_inputs: Option<String> = row.try_get("decision_inputs")?;
    let day_scope: Option<String> = row.try_get("charged_day_scope")?;
    let month_scope: Option<String> = row.try_get("charged_month_scope")?;
    let charged: Option<i64> = row.try_get("charged_minor")?;
    let budget_charge = match (day_scope, month_scope, charged) {
        (Some(day_scope), Some(month_scope), Some(amount_minor)) => Some(BudgetCharge {
            day_scope,
            month_scope,
            amount_minor,
        }),
        _ => None,
    };
    let reversed_at: Option<i64> = row.try_get("reversed_at_ms")?;
    let reversal_seq: Option<i64> = row.try_get("reversal_seq")?;
    let reversal = match (reversed_at, reversal_seq) {
        (Some(reversed_at_ms), Some(ledger_seq)) => Some(ReversalRecord {
            reversed_by: row.try_get("reversed_by")?,
            reversed_at_ms,
            note: row
                .try_get::<Option<String>, _>("reversal_note")?
                .unwrap_or_default(),
            ledger_seq,
            refunded_day_minor: row
                .try_get::<Option<i64>, _>("refunded_day_minor")?
                .unwrap_or(0),
            refunded_month_minor: row
                .try_get::<Option<i64>, _>("refunded_month_minor")?
                .unwrap_or(0),
        }),
        _ => None,
    };
    Ok(CompensationRequest {
        id: row.try_get("id")?,
        ticket_id: row.try_get("ticket_id")?,
        customer_id: row.try_get("customer_id")?,
        requested_by: row.try_get("requested_by")?,
        kind: BonusKind::parse(&kind).ok_or(corrupt("bonus kind"))?,
        quantity: row.try_get("quantity")?,
        order_amount_minor: row.try_get("order_amount_minor")?,
        cost_minor: row.try_get("cost_minor")?,
        reason_code: row.try_get("reason_code")?,
        note: row.try_get("note")?,
        status: CompensationStatus::parse(&status).ok_or(corrupt("compensation status"))?,
        policy_version: row.try_get("policy_version")?,
        rule: row.try_get("rule")?,
        inputs: serde_json::from_str::<DecisionInputs>(&inputs).unwrap_or_default(),
        decided_by: row.try_get("decided_by")?,
        decision_note: row.try_get("decision_note")?,
        decision_policy_version: row.try_get("decision_policy_version")?,
        decision_rule: row.try_get("decision_rule")?,
        decision_inputs: decision_inputs.and_then(|i| serde_json::from_str(&i).ok()),
        created_at_ms: row.try_get("created_at_ms")?,
        decided_at_ms: row.try_get("decided_at_ms")?,
        expires_at_ms: row.try_get("expires_at_ms")?,
        budget_charge,
        reversal,
    })
}

pub(crate) fn policy_from_row(row: &AnyRow) -> StoreResult<PolicyVersion> {
    let doc: String = row.try_get("document")?;
    Ok(PolicyVersion {
        version: row.try_get("version")?,
        document: serde_json::from_str::<PolicyDocument>(&doc)
            .map_err(|_| corrupt("policy document"))?,
        published_by: row.try_get("published_by")?,
        published_at_ms: row.try_get("published_at_ms")?,
    })
}

/// Days since 1970-01-01 → (year, month) in the proleptic Gregorian calendar.
fn year_month(days: i64) -> (i64, i64) {
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month)
}

/// The budget counters a grant at `now_ms` by `user_id` is charged to: its
/// UTC day and its UTC calendar month.
pub fn budget_scopes(user_id: i64, now_ms: i64) -> (String, String) {
    let days = now_ms.div_euclid(DAY_MS);
    let (y, m) = year_month(days);
    (
        format!("user:{user_id}:day:{days}"),
        format!("user:{user_id}:month:{y:04}-{m:02}"),
    )
}

/// The new request row, decided.
pub(crate) struct NewRequest<'a> {
    pub ticket_id: i64,
    pub customer_id: i64,
    pub requested_by: i64,
    pub kind: BonusKind,
    pub quantity: i64,
    pub order_amount_minor: Option<i64>,
    pub cost_minor: i64,
    pub reason_code: &'a str,
    pub note: &'a str,
    pub status: CompensationStatus,
    pub policy_version: i64,
    pub rule: &'a str,
    pub inputs: &'a DecisionInputs,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    /// Granted at once: the requester's (day, month) counters it is charged to.
    pub charged_to: Option<(&'a str, &'a str)>,
}

pub(crate) async fn insert_request(
    tx: &mut Transaction<'static, Any>,
    r: &NewRequest<'_>,
) -> StoreResult<CompensationRequest> {
    let inputs =
        serde_json::to_string(r.inputs).map_err(|e| StoreError::Conflict(e.to_string()))?;
    let row = sqlx::query(&format!(
        "INSERT INTO compensation_requests (ticket_id, customer_id, requested_by, kind, quantity, \
             order_amount_minor, cost_minor, reason_code, note, status, policy_version, rule, inputs, \
             created_at_ms, expires_at_ms, charged_day_scope, charged_month_scope, charged_minor) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
         RETURNING {REQUEST_COLUMNS}"
    ))
    .bind(r.ticket_id)
    .bind(r.customer_id)
    .bind(r.requested_by)
    .bind(r.kind.as_str())
    .bind(r.quantity)
    .bind(r.order_amount_minor)
    .bind(r.cost_minor)
    .bind(r.reason_code)
    .bind(r.note)
    .bind(r.status.as_str())
    .bind(r.policy_version)
    .bind(r.rule)
    .bind(inputs)
    .bind(r.created_at_ms)
    .bind(r.expires_at_ms)
    .bind(r.charged_to.map(|c| c.0))
    .bind(r.charged_to.map(|c| c.1))
    .bind(r.charged_to.map(|_| r.cost_minor))
    .fetch_one(&mut **tx)
    .await?;
    request_from_row(&row)
}

pub(crate) async fn request_in(
    tx: &mut Transaction<'static, Any>,
    id: i64,
) -> StoreResult<CompensationRequest> {
    let row = sqlx::query(&format!(
        "SELECT {REQUEST_COLUMNS} FROM compensation_requests WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(StoreError::NotFound("compensation request"))?;
    request_from_row(&row)
}

/// What a user has spent in the counters (0 when a counter has no row yet).
pub(crate) async fn spent(tx: &mut Transaction<'static, Any>, scope: &str) -> StoreResult<i64> {
    Ok(
        sqlx::query("SELECT spent_minor FROM compensation_spend WHERE scope = $1")
            .bind(scope)
            .fetch_optional(&mut **tx)
            .await?
            .map(|r| r.try_get::<i64, _>("spent_minor"))
            .transpose()?
            .unwrap_or(0),
    )
}

/// Charge a counter; the table's check refuses spending past `cap_minor`
/// (the budget in force, or for an approval the new total it authorizes).
pub(crate) async fn charge(
    tx: &mut Transaction<'static, Any>,
    scope: &str,
    amount_minor: i64,
    cap_minor: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO compensation_spend (scope, spent_minor, cap_minor) VALUES ($1, $2, $3) \
         ON CONFLICT (scope) DO UPDATE SET spent_minor = compensation_spend.spent_minor + excluded.spent_minor, \
             cap_minor = excluded.cap_minor",
    )
    .bind(scope)
    .bind(amount_minor)
    .bind(cap_minor)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Give back to a counter what a reversed grant charged it, never more than
/// it holds (so it never goes below zero). Returns what was given back.
pub(crate) async fn refund(
    tx: &mut Transaction<'static, Any>,
    scope: &str,
    amount_minor: i64,
) -> StoreResult<i64> {
    let back = amount_minor.clamp(0, spent(tx, scope).await?);
    if back > 0 {
        sqlx::query(
            "UPDATE compensation_spend SET spent_minor = spent_minor - $1 \
             WHERE scope = $2 AND spent_minor >= $1",
        )
        .bind(back)
        .bind(scope)
        .execute(&mut **tx)
        .await?;
    }
    Ok(back)
}

/// What the customer received over the window from `since_ms`: every grant
/// made in it that has not been reversed (a reversal gives the whole grant
/// back, whenever it happens, and never more).
pub(crate) async fn customer_spent_since(
    tx: &mut Transaction<'static, Any>,
    customer_id: i64,
    since_ms: i64,
) -> StoreResult<i64> {
    let row = sqlx::query(
        "SELECT CAST(COALESCE(SUM(g.amount_minor), 0) AS BIGINT) AS total \
         FROM compensation_ledger g \
         WHERE g.customer_id = $1 AND g.created_at_ms > $2 AND g.kind = 'grant' \
           AND NOT EXISTS (SELECT 1 FROM compensation_ledger r \
                           WHERE r.request_id = g.request_id AND r.kind = 'reversal')",
    )
    .bind(customer_id)
    .bind(since_ms)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.try_get("total")?)
}

impl Db {
    pub async fn publish_policy(
        &self,
        document: &PolicyDocument,
        published_by: i64,
        now_ms: i64,
    ) -> StoreResult<PolicyVersion> {
        let text =
            serde_json::to_string(document).map_err(|e| StoreError::Conflict(e.to_string()))?;
        // Two admins publishing at once: the primary key lets one win; retry once.
        for _ in 0..3 {
            let inserted = sqlx::query(
                "INSERT INTO compensation_policies (version, document, published_by, published_at_ms) \
                 SELECT COALESCE(MAX(version), 0) + 1, $1, $2, $3 FROM compensation_policies \
                 RETURNING version, document, published_by, published_at_ms",
            )
            .bind(&text)
            .bind(published_by)
            .bind(now_ms)
            .fetch_one(self.pool())
            .await;
            match inserted {
                Ok(row) => return policy_from_row(&row),
                Err(e) if crate::store::is_unique_violation(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Conflict(
            "another version was published at the same time; try again".into(),
        ))
    }

    pub async fn policy_versions(&self) -> StoreResult<Vec<PolicyVersion>> {
        sqlx::query(
            "SELECT version, document, published_by, published_at_ms FROM compensation_policies \
             ORDER BY version DESC",
        )
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(policy_from_row)
        .collect()
    }

    pub async fn policy_version(&self, version: i64) -> StoreResult<PolicyVersion> {
        let row = sqlx::query(
            "SELECT version, document, published_by, published_at_ms FROM compensation_policies \
             WHERE version = $1",
        )
        .bind(version)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("policy version"))?;
        policy_from_row(&row)
    }

    /// The version in force: the latest published.
    pub async fn current_policy(&self) -> StoreResult<Option<PolicyVersion>> {
        sqlx::query(
            "SELECT version, document, published_by, published_at_ms FROM compensation_policies \
             ORDER BY version DESC LIMIT 1",
        )
        .fetch_optional(self.pool())
        .await?
        .map(|r| policy_from_row(&r))
        .transpose()
    }

    pub async fn compensation_request(&self, id: i64) -> StoreResult<CompensationRequest> {
        let row = sqlx::query(&format!(
            "SELECT {REQUEST_COLUMNS} FROM compensation_requests WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("compensation request"))?;
        request_from_row(&row)
    }

    /// The most recent requests, newest first (for dry runs).
    pub async fn recent_compensation_requests(
        &self,
        limit: i64,
    ) -> StoreResult<Vec<CompensationRequest>> {
        sqlx::query(&format!(
            "SELECT {REQUEST_COLUMNS} FROM compensation_requests ORDER BY id DESC LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(request_from_row)
        .collect()
    }

    pub async fn pending_compensation_requests(&self) -> StoreResult<Vec<CompensationRequest>> {
        sqlx::query(&format!(
            "SELECT {REQUEST_COLUMNS} FROM compensation_requests WHERE status = 'pending' ORDER BY id"
        ))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(request_from_row)
        .collect()
    }

    /// Deny every pending request past its deadline (and note it in each
    /// ticket's history); each is returned once, to the one node whose
    /// conditional update took it.
    pub async fn expire_compensation_requests(
        &self,
        now_ms: i64,
    ) -> StoreResult<Vec<CompensationRequest>> {
        let mut tx = crate::store::begin(self.pool()).await?;
        let expired = sqlx::query(&format!(
            "UPDATE compensation_requests SET status = 'expired', decided_at_ms = $1, \
                 decision_note = 'not decided in time' \
             WHERE status = 'pending' AND expires_at_ms <= $1 RETURNING {REQUEST_COLUMNS}"
        ))
        .bind(now_ms)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(request_from_row)
        .collect::<StoreResult<Vec<_>>>()?;
        for r in &expired {
            let data = serde_json::json!({ "compensation_id": r.id, "status": "expired" });
            sqlx::query(
                "INSERT INTO ticket_events (ticket_id, at_ms, actor_user_id, kind, data) \
                 VALUES ($1, $2, NULL, 'compensation_expired', $3)",
            )
            .bind(r.ticket_id)
            .bind(now_ms)
            .bind(data.to_string())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(expired)
    }

    /// A user's teams: agents' teams and the teams a supervisor decides for.
    pub async fn teams_of(&self, user_id: i64) -> StoreResult<Vec<String>> {
        sqlx::query(
            "SELECT team FROM agent_teams WHERE user_id = $1 \
             UNION SELECT team FROM supervisor_teams WHERE user_id = $1 ORDER BY team",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| Ok(r.try_get("team")?))
        .collect()
    }

    pub async fn supervisor_teams(&self, user_id: i64) -> StoreResult<Vec<String>> {
        sqlx::query("SELECT team FROM supervisor_teams WHERE user_id = $1 ORDER BY team")
            .bind(user_id)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| Ok(r.try_get("team")?))
            .collect()
    }

    /// Replace the teams a supervisor decides approvals for.
    pub async fn set_supervisor_teams(&self, user_id: i64, teams: &[String]) -> StoreResult<()> {
        let mut tx = crate::store::begin(self.pool()).await?;
        let role: Option<String> = sqlx::query("SELECT role FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get("role"))
            .transpose()?;
        match role.as_deref() {
            None => return Err(StoreError::NotFound("user")),
            Some("supervisor") => {}
            Some(_) => {
                return Err(StoreError::Conflict(
                    "only users with the supervisor role decide approvals for teams".into(),
                ));
            }
        }
        sqlx::query("DELETE FROM supervisor_teams WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        for t in teams {
            sqlx::query("INSERT INTO supervisor_teams (user_id, team) VALUES ($1, $2)")
                .bind(user_id)
                .bind(t)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every enabled supervisor.
    pub async fn all_supervisors(&self) -> StoreResult<Vec<i64>> {
        sqlx::query("SELECT id FROM users WHERE role = 'supervisor' AND disabled = 0 ORDER BY id")
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| Ok(r.try_get("id")?))
            .collect()
    }

    /// Supervisors (enabled) assigned to any of `teams`.
    pub async fn supervisors_of_teams(&self, teams: &[String]) -> StoreResult<Vec<i64>> {
        let mut ids = Vec::new();
        for team in teams {
            for r in sqlx::query(
                "SELECT s.user_id FROM supervisor_teams s JOIN users u ON u.id = s.user_id \
                 WHERE s.team = $1 AND u.disabled = 0 AND u.role = 'supervisor'",
            )
            .bind(team)
            .fetch_all(self.pool())
            .await?
            {
                ids.push(r.try_get::<i64, _>("user_id")?);
            }
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// Net spend over `[from_ms, to_ms)` by reason, requester, team and policy version.
    pub async fn spend_report(&self, from_ms: i64, to_ms: i64) -> StoreResult<SpendReport> {
        const SUMS: &str = "CAST(COALESCE(SUM(l.amount_minor), 0) AS BIGINT) AS amount, \
             CAST(COALESCE(SUM(CASE WHEN l.kind = 'grant' THEN 1 ELSE 0 END), 0) AS BIGINT) AS grants";
        let window = "l.created_at_ms >= $1 AND l.created_at_ms < $2";
        let lines = |rows: Vec<AnyRow>, text_key: bool| -> StoreResult<Vec<SpendLine>> {
            rows.iter()
                .map(|r| {
                    Ok(SpendLine {
                        key: if text_key {
                            r.try_get::<String, _>("k")?
                        } else {
                            r.try_get::<i64, _>("k")?.to_string()
                        },
                        amount_minor: r.try_get("amount")?,
                        grants: r.try_get("grants")?,
                    })
                })
                .collect()
        };
        let query = |group: &str, from: &str| {
            format!(
                "SELECT {group} AS k, {SUMS} FROM {from} WHERE {window} GROUP BY {group} ORDER BY {group}"
            )
        };
        let run = |sql: String| async move {
            sqlx::query(&sql)
                .bind(from_ms)
                .bind(to_ms)
                .fetch_all(self.pool())
                .await
        };
        let by_reason = lines(
            run(query("l.reason_code", "compensation_ledger l")).await?,
            true,
        )?;
        let by_agent = lines(
            run(query("l.requested_by", "compensation_ledger l")).await?,
            false,
        )?;
        let by_team = lines(
            run(query(
                "t.team",
                "compensation_ledger l JOIN (SELECT user_id, team FROM agent_teams \
                 UNION SELECT user_id, team FROM supervisor_teams) t ON t.user_id = l.requested_by",
            ))
            .await?,
            true,
        )?;
        let by_policy_version = lines(
            run(query("l.policy_version", "compensation_ledger l")).await?,
            false,
        )?;
        let total_minor = by_reason.iter().map(|l| l.amount_minor).sum();
        Ok(SpendReport {
            from_ms,
            to_ms,
            total_minor,
            by_reason,
            by_agent,
            by_team,
            by_policy_version,
        })
    }

    /// Every webhook delivery attempt, newest first.
    pub async fn webhook_deliveries(&self, limit: i64) -> StoreResult<Vec<WebhookDelivery>> {
        sqlx::query(
            "SELECT o.event_id, o.ledger_seq, d.attempt, d.at_ms, d.status_code, d.ok, d.error \
             FROM compensation_deliveries d JOIN compensation_outbox o ON o.id = d.outbox_id \
             ORDER BY d.id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| {
            Ok(WebhookDelivery {
                event_id: r.try_get("event_id")?,
                ledger_seq: r.try_get("ledger_seq")?,
                attempt: r.try_get("attempt")?,
                at_ms: r.try_get("at_ms")?,
                status_code: r.try_get("status_code")?,
                ok: r.try_get::<i64, _>("ok")? != 0,
                error: r.try_get("error")?,
            })
        })
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_periods_are_utc_days_and_months() {
        // 2026-11-23T18:00:00Z
        let t = 1_795_456_800_000;
        assert_eq!(
            budget_scopes(5, t),
            ("user:5:day:20780".into(), "user:5:month:2026-11".into())
        );
        assert_eq!(year_month(0), (1970, 1));
        assert_eq!(year_month(59), (1970, 3));
        assert_eq!(year_month(11_016), (2000, 2)); // 2000-02-29
        assert_eq!(year_month(11_017), (2000, 3));
    }
}
