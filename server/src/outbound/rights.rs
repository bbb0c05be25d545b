//! Customer data rights: consent changes recorded with time and source; one
//! customer's data exported as JSON, or erased (personal fields replaced by
//! placeholders; ids, amounts, outcomes and the compensation ledger kept, so
//! history and aggregates stay whole).

use crate::desk::Desk;
use crate::error::{ApiError, ApiResult};
use callcenter_proto::http::TicketHistory;
use callcenter_proto::outbound::{ContactProfile, ContactProfileUpdate, CustomerExport};
use sqlx::Row;

/// The text that replaces erased personal data.
pub const ERASED: &str = "[erased]";

fn db_err(e: sqlx::Error) -> ApiError {
    ApiError::Internal(e.into())
}

impl Desk {
    /// Change consent, do-not-call, account status or the phone's validity.
    /// Consent and do-not-call changes are recorded with time and source.
    pub async fn update_contact_profile(
        &self,
        customer_id: i64,
        update: &ContactProfileUpdate,
        actor: i64,
    ) -> ApiResult<ContactProfile> {
        let now = self.clock.now_ms();
        let before = self.db.contact_profile(customer_id).await?;
        self.db.customer(customer_id).await?;
        if before.erased {
            return Err(ApiError::Conflict("this customer's data was erased".into()));
        }
        let consent = update.consent_calls.unwrap_or(before.consent_calls);
        let dnc = update.do_not_call.unwrap_or(before.do_not_call);
        let status = update
            .account_status
            .clone()
            .unwrap_or(before.account_status.clone());
        let phone_invalid = match update.phone_valid {
            Some(valid) => !valid,
            None => before.phone_invalid,
        };
        let mut tx = crate::store::begin(self.db.pool()).await.map_err(db_err)?;
        sqlx::query(
            "INSERT INTO contact_profiles (customer_id, consent_calls, do_not_call, account_status, \
                 phone_invalid, updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (customer_id) DO UPDATE SET consent_calls = $2, do_not_call = $3, \
                 account_status = $4, phone_invalid = $5, updated_at_ms = $6",
        )
        .bind(customer_id)
        .bind(i64::from(consent))
        .bind(i64::from(dnc))
        .bind(status.as_str())
        .bind(i64::from(phone_invalid))
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if consent != before.consent_calls || dnc != before.do_not_call {
            sqlx::query(
                "INSERT INTO consent_changes (customer_id, at_ms, source, actor_user_id, \
                     consent_calls, do_not_call) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(customer_id)
            .bind(now)
            .bind(update.source.trim())
            .bind(actor)
            .bind(i64::from(consent))
            .bind(i64::from(dnc))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(self.db.contact_profile(customer_id).await?)
    }

    /// Everything stored about one customer.
    pub async fn export_customer(&self, customer_id: i64) -> ApiResult<CustomerExport> {
        let customer = self.db.customer(customer_id).await?;
        let ticket_ids: Vec<i64> =
            sqlx::query("SELECT id FROM tickets WHERE customer_id = $1 ORDER BY id")
                .bind(customer_id)
                .fetch_all(self.db.pool())
                .await
                .map_err(db_err)?
                .iter()
                .map(|r| r.try_get("id"))
                .collect::<Result<_, _>>()
                .map_err(db_err)?;
        let mut tickets = Vec::with_capacity(ticket_ids.len());
        for id in ticket_ids {
            tickets.push(TicketHistory {
                ticket: self.db.ticket(id).await?,
                events: self.db.ticket_events(id).await?,
            });
        }
        let request_ids: Vec<i64> =
            sqlx::query("SELECT id FROM compensation_requests WHERE customer_id = $1 ORDER BY id")
                .bind(customer_id)
                .fetch_all(self.db.pool())
                .await
                .map_err(db_err)?
                .iter()
                .map(|r| r.try_get("id"))
                .collect::<Result<_, _>>()
                .map_err(db_err)?;
        let mut compensation_requests = Vec::with_capacity(request_ids.len());
        for id in request_ids {
            compensation_requests.push(self.db.compensation_request(id).await?);
        }
        Ok(CustomerExport {
            exported_at_ms: self.clock.now_ms(),
            customer,
            contact: self.db.contact_profile(customer_id).await?,
            memberships: self.db.memberships(customer_id).await?,
            shared_dates: self.db.shared_dates(customer_id).await?,
            tickets,
            outbound_calls: self.db.outbound_calls(Some(customer_id), 10_000).await?,
            compensation_requests,
        })
    }

    /// Erase one customer's personal data, in one transaction. Kept: ids,
    /// tier and value, purchase amounts, ticket kinds, times and outcome
    /// codes, consent history (the proof of what was allowed), and the
    /// compensation ledger, which is not touched at all (free-text notes of
    /// compensation requests are replaced). Planned calls are
    /// stopped with the rule `erased`.
    pub async fn erase_customer(&self, customer_id: i64, actor: i64) -> ApiResult<()> {
        let now = self.clock.now_ms();
        self.db.customer(customer_id).await?;
        let mut tx = crate::store::begin(self.db.pool()).await.map_err(db_err)?;
        // (statement, whether it takes the time as $2)
        let statements: [(&str, bool); 9] = [
            (
                "UPDATE customers SET external_id = 'erased-' || CAST(id AS TEXT), name = '[erased]', \
                 email = NULL, phone = NULL, timezone = NULL, updated_at_ms = $2 WHERE id = $1",
                true,
            ),
            (
                "UPDATE purchases SET external_id = 'erased-' || CAST(id AS TEXT) WHERE customer_id = $1",
                false,
            ),
            (
                "UPDATE memberships SET external_id = 'erased-' || CAST(id AS TEXT) WHERE customer_id = $1",
                false,
            ),
            ("DELETE FROM shared_dates WHERE customer_id = $1", false),
            // Free text of compensation requests (the append-only ledger
            // itself is never touched: its hash chain must stay whole).
            (
                "UPDATE compensation_requests SET note = '[erased]', decision_note = \
                     CASE WHEN decision_note IS NULL THEN NULL ELSE '[erased]' END, \
                     reversal_note = CASE WHEN reversal_note IS NULL THEN NULL ELSE '[erased]' END \
                 WHERE customer_id = $1",
                false,
            ),
            (
                "UPDATE tickets SET description = '[erased]', outcome_note = CASE WHEN outcome_note IS NULL \
                 THEN NULL ELSE '[erased]' END, updated_at_ms = $2 WHERE customer_id = $1",
                true,
            ),
            // Survey comments (issue 7); the answers themselves stay.
            (
                "UPDATE surveys SET comment = CASE WHEN comment IS NULL OR comment = '' THEN comment ELSE '[erased]' END \
                 WHERE ticket_id IN (SELECT id FROM tickets WHERE customer_id = $1)",
                false,
            ),
            (
                "INSERT INTO contact_profiles (customer_id, consent_calls, do_not_call, erased_at_ms, updated_at_ms) \
                 VALUES ($1, 0, 1, $2, $2) ON CONFLICT (customer_id) DO UPDATE SET consent_calls = 0, \
                 do_not_call = 1, erased_at_ms = $2, updated_at_ms = $2",
                true,
            ),
            (
                "UPDATE outbound_calls SET status = 'skipped', stopped_by = 'erased', stopped_until_ms = NULL, \
                 updated_at_ms = $2 WHERE customer_id = $1 AND status = 'scheduled'",
                true,
            ),
        ];
        for (sql, takes_time) in statements {
            let query = sqlx::query(sql).bind(customer_id);
            let query = if takes_time { query.bind(now) } else { query };
            query.execute(&mut *tx).await.map_err(db_err)?;
        }
        // Free text in the history (notes, descriptions, resolution notes)
        // goes; the kinds of steps, who and when stay.
        let events = sqlx::query(
            "SELECT e.id, e.kind, e.data FROM ticket_events e JOIN tickets t ON t.id = e.ticket_id \
             WHERE t.customer_id = $1",
        )
        .bind(customer_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        for e in events {
            let id: i64 = e.try_get("id").map_err(db_err)?;
            let data: String = e.try_get("data").map_err(db_err)?;
            let mut value: serde_json::Value =
                serde_json::from_str(&data).unwrap_or(serde_json::Value::Null);
            let mut changed = false;
            if let Some(map) = value.as_object_mut() {
                for field in ["text", "note", "description"] {
                    if map.contains_key(field) {
                        map.insert(field.into(), serde_json::Value::String(ERASED.into()));
                        changed = true;
                    }
                }
            }
            if changed {
                sqlx::query("UPDATE ticket_events SET data = $1 WHERE id = $2")
                    .bind(value.to_string())
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
        }
        sqlx::query("INSERT INTO erasures (customer_id, at_ms, actor_user_id) VALUES ($1, $2, $3)")
            .bind(customer_id)
            .bind(now)
            .bind(actor)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }
}
