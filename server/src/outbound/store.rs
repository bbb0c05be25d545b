//! The outbound tables (migration 0003): contact profiles, memberships,
//! shared dates, journeys, the contact policy, scheduled calls and their
//! decisions. Same SQL on PostgreSQL and SQLite.

use crate::store::{Db, StoreError, StoreResult};
use callcenter_proto::outbound::{
    AccountStatus, CallPurpose, CallResult, CallStatus, ConsentChange, ContactPolicy,
    ContactProfile, Journey, JourneySpec, Membership, OutboundCall, PolicyDecision, SharedDate,
};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

const CALL_COLUMNS: &str = "id, customer_id, chain_id, journey_id, source_kind, source_id, \
     purposes, category_id, restricted_category_id, complaint_ticket_id, attempt, status, \
     due_at_ms, stopped_by, stopped_until_ms, merged_into, ticket_id, fired_at_ms, outcome, \
     reason_code";

/// A scheduled call as the scheduler works with it.
#[derive(Clone, Debug)]
pub struct CallRow {
    pub id: i64,
    pub customer_id: i64,
    pub chain_id: i64,
    pub journey_id: Option<i64>,
    pub source_kind: String,
    pub source_id: i64,
    pub purposes: Vec<CallPurpose>,
    pub category_id: i64,
    pub restricted_category_id: Option<i64>,
    pub complaint_ticket_id: Option<i64>,
    pub attempt: i64,
    pub status: CallStatus,
    pub due_at_ms: i64,
    pub stopped_by: Option<String>,
    pub stopped_until_ms: Option<i64>,
    pub merged_into: Option<i64>,
    pub ticket_id: Option<i64>,
    pub fired_at_ms: Option<i64>,
    pub outcome: Option<CallResult>,
    pub reason_code: Option<String>,
}

/// A call to plan; `dedupe_key` makes planning idempotent.
pub struct NewCall {
    pub dedupe_key: String,
    pub customer_id: i64,
    pub chain_id: Option<i64>,
    pub journey_id: Option<i64>,
    pub journey_version: Option<i64>,
    pub step_index: Option<i64>,
    pub source_kind: &'static str,
    pub source_id: i64,
    pub purposes: Vec<CallPurpose>,
    pub category_id: i64,
    pub restricted_category_id: Option<i64>,
    pub complaint_ticket_id: Option<i64>,
    pub attempt: i64,
    pub due_at_ms: i64,
}

/// What the contact policy needs to know about a customer.
pub struct CustomerFacts {
    pub profile: ContactProfile,
    pub timezone: Option<String>,
    pub open_complaints: Vec<i64>,
}

fn call_from_row(row: &AnyRow) -> StoreResult<CallRow> {
    let purposes: String = row.try_get("purposes")?;
    let status: String = row.try_get("status")?;
    let outcome: Option<String> = row.try_get("outcome")?;
    let id: i64 = row.try_get("id")?;
    Ok(CallRow {
        id,
        customer_id: row.try_get("customer_id")?,
        chain_id: row.try_get::<Option<i64>, _>("chain_id")?.unwrap_or(id),
        journey_id: row.try_get("journey_id")?,
        source_kind: row.try_get("source_kind")?,
        source_id: row.try_get("source_id")?,
        purposes: serde_json::from_str(&purposes).unwrap_or_default(),
        category_id: row.try_get("category_id")?,
        restricted_category_id: row.try_get("restricted_category_id")?,
        complaint_ticket_id: row.try_get("complaint_ticket_id")?,
        attempt: row.try_get("attempt")?,
        status: CallStatus::parse(&status).ok_or(StoreError::NotFound("call status"))?,
        due_at_ms: row.try_get("due_at_ms")?,
        stopped_by: row.try_get("stopped_by")?,
        stopped_until_ms: row.try_get("stopped_until_ms")?,
        merged_into: row.try_get("merged_into")?,
        ticket_id: row.try_get("ticket_id")?,
        fired_at_ms: row.try_get("fired_at_ms")?,
        outcome: outcome.as_deref().and_then(CallResult::parse),
        reason_code: row.try_get("reason_code")?,
    })
}

pub(crate) fn purposes_json(purposes: &[CallPurpose]) -> String {
    serde_json::to_string(purposes).unwrap_or_else(|_| "[]".into())
}

/// One policy decision on a call: which rule did what, until when.
pub(crate) struct Decision<'a> {
    /// `scheduled`, `due` or `outcome`.
    pub phase: &'a str,
    pub action: &'a str,
    pub rule: Option<&'a str>,
    pub until_ms: Option<i64>,
    pub detail: &'a str,
}

/// Record a decision, inside the caller's transaction.
pub(crate) async fn decide(
    tx: &mut Transaction<'static, Any>,
    call_id: i64,
    at_ms: i64,
    d: &Decision<'_>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO outbound_decisions (call_id, at_ms, phase, action, rule, until_ms, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(call_id)
    .bind(at_ms)
    .bind(d.phase)
    .bind(d.action)
    .bind(d.rule)
    .bind(d.until_ms)
    .bind(d.detail)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Db {
    // ----- the contact policy -----

    pub async fn contact_policy(&self) -> StoreResult<ContactPolicy> {
        let row = sqlx::query("SELECT definition FROM contact_policy WHERE id = 1")
            .fetch_optional(self.pool())
            .await?;
        Ok(match row {
            Some(r) => {
                serde_json::from_str(&r.try_get::<String, _>("definition")?).unwrap_or_default()
            }
            None => ContactPolicy::default(),
        })
    }

    pub async fn set_contact_policy(&self, p: &ContactPolicy, now_ms: i64) -> StoreResult<()> {
        let json = serde_json::to_string(p).unwrap_or_default();
        sqlx::query(
            "INSERT INTO contact_policy (id, definition, updated_at_ms) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO UPDATE SET definition = $1, updated_at_ms = $2",
        )
        .bind(json)
        .bind(now_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    // ----- journeys -----

    pub async fn create_journey(
        &self,
        spec: &JourneySpec,
        actor: i64,
        now_ms: i64,
    ) -> StoreResult<Journey> {
        let mut tx = crate::store::begin(self.pool()).await?;
        let row = sqlx::query(
            "INSERT INTO journeys (name, trigger_kind, active, current_version, created_at_ms) \
             VALUES ($1, $2, $3, 1, $4) RETURNING id",
        )
        .bind(&spec.name)
        .bind(spec.trigger.as_str())
        .bind(i64::from(spec.active))
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| unique_conflict(e, "a journey with this name exists"))?;
        let id: i64 = row.try_get("id")?;
        insert_version(&mut tx, id, 1, spec, actor, now_ms).await?;
        tx.commit().await?;
        self.cache()
            .invalidate(crate::store::cache::Scope::Directory);
        Ok(Journey {
            id,
            version: 1,
            spec: spec.clone(),
        })
    }

    /// A new version of a journey; calls already planned keep theirs.
    pub async fn update_journey(
        &self,
        id: i64,
        spec: &JourneySpec,
        actor: i64,
        now_ms: i64,
    ) -> StoreResult<Journey> {
        let mut tx = crate::store::begin(self.pool()).await?;
        let row = sqlx::query("SELECT current_version FROM journeys WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("journey"))?;
        let version = row.try_get::<i64, _>("current_version")? + 1;
        sqlx::query(
            "UPDATE journeys SET name = $1, trigger_kind = $2, active = $3, current_version = $4 \
             WHERE id = $5",
        )
        .bind(&spec.name)
        .bind(spec.trigger.as_str())
        .bind(i64::from(spec.active))
        .bind(version)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_conflict(e, "a journey with this name exists"))?;
        insert_version(&mut tx, id, version, spec, actor, now_ms).await?;
        tx.commit().await?;
        self.cache()
            .invalidate(crate::store::cache::Scope::Directory);
        Ok(Journey {
            id,
            version,
            spec: spec.clone(),
        })
    }

    /// Every journey at its current version; only active ones with `trigger`.
    /// The active journeys of a trigger (through the directory cache), or
    /// every journey (`None`, read from the record).
    pub async fn journeys(&self, trigger: Option<&str>) -> StoreResult<Vec<Journey>> {
        let Some(kind) = trigger else {
            return self.journeys_uncached(None).await;
        };
        if let Some(journeys) = self.cache().journeys(kind) {
            return Ok(journeys);
        }
        let generation = self.cache().generation();
        let journeys = self.journeys_uncached(Some(kind)).await?;
        self.cache().put_journeys(generation, kind, &journeys);
        Ok(journeys)
    }

    async fn journeys_uncached(&self, trigger: Option<&str>) -> StoreResult<Vec<Journey>> {
        let rows = sqlx::query(
            "SELECT j.id, j.current_version, v.definition FROM journeys j \
             JOIN journey_versions v ON v.journey_id = j.id AND v.version = j.current_version \
             WHERE $1 = '' OR (j.trigger_kind = $1 AND j.active = 1) ORDER BY j.id",
        )
        .bind(trigger.unwrap_or(""))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let definition: String = r.try_get("definition")?;
                Ok(Journey {
                    id: r.try_get("id")?,
                    version: r.try_get("current_version")?,
                    spec: serde_json::from_str(&definition)
                        .map_err(|_| StoreError::NotFound("journey definition"))?,
                })
            })
            .collect()
    }

    // ----- memberships and shared dates -----

    /// Record a membership, idempotent by external id.
    pub async fn add_membership(
        &self,
        customer_id: i64,
        external_id: &str,
        product: &str,
        ends_at_ms: i64,
        now_ms: i64,
    ) -> StoreResult<(Membership, bool)> {
        let inserted = sqlx::query(
            "INSERT INTO memberships (customer_id, external_id, product, ends_at_ms, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (external_id) DO NOTHING RETURNING id",
        )
        .bind(customer_id)
        .bind(external_id)
        .bind(product)
        .bind(ends_at_ms)
        .bind(now_ms)
        .fetch_optional(self.pool())
        .await?;
        let stored = self.membership_by_external(external_id).await?;
        let same = stored.customer_id == customer_id
            && stored.product == product
            && stored.ends_at_ms == ends_at_ms;
        if inserted.is_none() && !same {
            return Err(StoreError::Conflict(format!(
                "membership {external_id:?} is already recorded with different details"
            )));
        }
        Ok((stored, inserted.is_some()))
    }

    async fn membership_by_external(&self, external_id: &str) -> StoreResult<Membership> {
        let r = sqlx::query(
            "SELECT id, customer_id, external_id, product, ends_at_ms FROM memberships WHERE external_id = $1",
        )
        .bind(external_id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("membership"))?;
        membership_from_row(&r)
    }

    pub async fn memberships(&self, customer_id: i64) -> StoreResult<Vec<Membership>> {
        sqlx::query(
            "SELECT id, customer_id, external_id, product, ends_at_ms FROM memberships \
             WHERE customer_id = $1 ORDER BY id",
        )
        .bind(customer_id)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(membership_from_row)
        .collect()
    }

    /// Record a shared date, idempotent by external id.
    pub async fn add_shared_date(
        &self,
        customer_id: i64,
        external_id: &str,
        label: &str,
        month: u8,
        day: u8,
        now_ms: i64,
    ) -> StoreResult<(SharedDate, bool)> {
        let inserted = sqlx::query(
            "INSERT INTO shared_dates (customer_id, external_id, label, month, day, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (external_id) DO NOTHING RETURNING id",
        )
        .bind(customer_id)
        .bind(external_id)
        .bind(label)
        .bind(i64::from(month))
        .bind(i64::from(day))
        .bind(now_ms)
        .fetch_optional(self.pool())
        .await?;
        let r = sqlx::query(
            "SELECT id, customer_id, external_id, label, month, day FROM shared_dates WHERE external_id = $1",
        )
        .bind(external_id)
        .fetch_one(self.pool())
        .await?;
        let stored = date_from_row(&r)?;
        let same = stored.customer_id == customer_id
            && stored.label == label
            && stored.month == month
            && stored.day == day;
        if inserted.is_none() && !same {
            return Err(StoreError::Conflict(format!(
                "shared date {external_id:?} is already recorded with different details"
            )));
        }
        Ok((stored, inserted.is_some()))
    }

    pub async fn shared_dates(&self, customer_id: i64) -> StoreResult<Vec<SharedDate>> {
        sqlx::query(
            "SELECT id, customer_id, external_id, label, month, day FROM shared_dates \
             WHERE customer_id = $1 ORDER BY id",
        )
        .bind(customer_id)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(date_from_row)
        .collect()
    }

    pub async fn shared_date(&self, id: i64) -> StoreResult<SharedDate> {
        let r = sqlx::query(
            "SELECT id, customer_id, external_id, label, month, day FROM shared_dates WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("shared date"))?;
        date_from_row(&r)
    }

    // ----- contact profiles and consent -----

    pub async fn contact_profile(&self, customer_id: i64) -> StoreResult<ContactProfile> {
        let row = sqlx::query(
            "SELECT consent_calls, do_not_call, account_status, phone_invalid, erased_at_ms \
             FROM contact_profiles WHERE customer_id = $1",
        )
        .bind(customer_id)
        .fetch_optional(self.pool())
        .await?;
        let history = sqlx::query(
            "SELECT at_ms, source, actor_user_id, consent_calls, do_not_call FROM consent_changes \
             WHERE customer_id = $1 ORDER BY id",
        )
        .bind(customer_id)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| {
            Ok(ConsentChange {
                at_ms: r.try_get("at_ms")?,
                source: r.try_get("source")?,
                actor_user_id: r.try_get("actor_user_id")?,
                consent_calls: r.try_get::<i64, _>("consent_calls")? != 0,
                do_not_call: r.try_get::<i64, _>("do_not_call")? != 0,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
        let mut profile = ContactProfile {
            customer_id,
            consent_calls: false,
            do_not_call: false,
            account_status: AccountStatus::Active,
            phone_invalid: false,
            erased: false,
            consent_history: history,
        };
        if let Some(r) = row {
            let status: String = r.try_get("account_status")?;
            profile.consent_calls = r.try_get::<i64, _>("consent_calls")? != 0;
            profile.do_not_call = r.try_get::<i64, _>("do_not_call")? != 0;
            profile.account_status = AccountStatus::parse(&status).unwrap_or(AccountStatus::Active);
            profile.phone_invalid = r.try_get::<i64, _>("phone_invalid")? != 0;
            profile.erased = r.try_get::<Option<i64>, _>("erased_at_ms")?.is_some();
        }
        Ok(profile)
    }

    /// Everything the contact policy looks at, read now.
    pub async fn customer_facts(&self, customer_id: i64) -> StoreResult<CustomerFacts> {
        let profile = self.contact_profile(customer_id).await?;
        let timezone: Option<String> = sqlx::query("SELECT timezone FROM customers WHERE id = $1")
            .bind(customer_id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound("customer"))?
            .try_get("timezone")?;
        let open_complaints = sqlx::query(
            "SELECT id FROM tickets WHERE customer_id = $1 AND kind = 'inbound' \
             AND status IN ('queued', 'offered', 'assigned') ORDER BY id",
        )
        .bind(customer_id)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<Result<Vec<i64>, _>>()?;
        Ok(CustomerFacts {
            profile,
            timezone,
            open_complaints,
        })
    }

    /// When other conversations reached (or are reaching) the customer since
    /// `since_ms`: fired calls of other chains, except unanswered ones and
    /// wrong numbers.
    pub async fn contacts_since(
        &self,
        customer_id: i64,
        except_chain: i64,
        since_ms: i64,
    ) -> StoreResult<Vec<i64>> {
        Ok(sqlx::query(
            "SELECT fired_at_ms FROM outbound_calls WHERE customer_id = $1 \
             AND COALESCE(chain_id, id) <> $2 AND fired_at_ms IS NOT NULL AND fired_at_ms > $3 \
             AND (outcome IS NULL OR outcome NOT IN ('no_answer', 'wrong_number'))",
        )
        .bind(customer_id)
        .bind(except_chain)
        .bind(since_ms)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| r.try_get("fired_at_ms"))
        .collect::<Result<_, _>>()?)
    }

    // ----- calls -----

    /// Plan a call; None when its dedupe key was planned before.
    pub async fn insert_call(&self, c: &NewCall, now_ms: i64) -> StoreResult<Option<i64>> {
        let row = sqlx::query(
            "INSERT INTO outbound_calls (dedupe_key, customer_id, chain_id, journey_id, \
                 journey_version, step_index, source_kind, source_id, purposes, category_id, \
                 restricted_category_id, complaint_ticket_id, attempt, status, due_at_ms, \
                 created_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'scheduled', $14, $15, $15) \
             ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
        )
        .bind(&c.dedupe_key)
        .bind(c.customer_id)
        .bind(c.chain_id)
        .bind(c.journey_id)
        .bind(c.journey_version)
        .bind(c.step_index)
        .bind(c.source_kind)
        .bind(c.source_id)
        .bind(purposes_json(&c.purposes))
        .bind(c.category_id)
        .bind(c.restricted_category_id)
        .bind(c.complaint_ticket_id)
        .bind(c.attempt)
        .bind(c.due_at_ms)
        .bind(now_ms)
        .fetch_optional(self.pool())
        .await?;
        match row {
            Some(r) => Ok(Some(r.try_get("id")?)),
            None => Ok(None),
        }
    }

    pub async fn call(&self, id: i64) -> StoreResult<CallRow> {
        let r = sqlx::query(&format!(
            "SELECT {CALL_COLUMNS} FROM outbound_calls WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("outbound call"))?;
        call_from_row(&r)
    }

    pub async fn call_of_ticket(&self, ticket_id: i64) -> StoreResult<Option<CallRow>> {
        let r = sqlx::query(&format!(
            "SELECT {CALL_COLUMNS} FROM outbound_calls WHERE ticket_id = $1"
        ))
        .bind(ticket_id)
        .fetch_optional(self.pool())
        .await?;
        r.as_ref().map(call_from_row).transpose()
    }

    /// Scheduled calls, all of them or those due by `due_by_ms`, for the due index.
    pub async fn scheduled_calls(&self, due_by_ms: Option<i64>) -> StoreResult<Vec<(i64, i64)>> {
        sqlx::query(
            "SELECT id, due_at_ms FROM outbound_calls WHERE status = 'scheduled' \
             AND due_at_ms <= $1 ORDER BY due_at_ms, id",
        )
        .bind(due_by_ms.unwrap_or(i64::MAX))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("due_at_ms")?)))
        .collect()
    }

    /// A decision that does not fire the call: move it (`defer`, to
    /// `until_ms`) or stop it (`skip`), only if nobody else moved it since it
    /// was read.
    pub(crate) async fn settle_call(
        &self,
        call: &CallRow,
        d: &Decision<'_>,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let skip = d.action == "skip";
        let mut tx = crate::store::begin(self.pool()).await?;
        let done = sqlx::query(
            "UPDATE outbound_calls SET status = $1, due_at_ms = $2, stopped_by = $3, \
                 stopped_until_ms = $4, updated_at_ms = $5 \
             WHERE id = $6 AND status = 'scheduled' AND due_at_ms = $7",
        )
        .bind(if skip { "skipped" } else { "scheduled" })
        .bind(d.until_ms.unwrap_or(call.due_at_ms))
        .bind(d.rule)
        .bind(d.until_ms)
        .bind(now_ms)
        .bind(call.id)
        .bind(call.due_at_ms)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        decide(&mut tx, call.id, now_ms, d).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Calls of a customer (or every customer), newest first, with decisions.
    pub async fn outbound_calls(
        &self,
        customer_id: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<OutboundCall>> {
        let rows = sqlx::query(&format!(
            "SELECT {CALL_COLUMNS} FROM outbound_calls WHERE $1 = 0 OR customer_id = $1 \
             ORDER BY id DESC LIMIT $2"
        ))
        .bind(customer_id.unwrap_or(0))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut calls = Vec::with_capacity(rows.len());
        for r in &rows {
            let c = call_from_row(r)?;
            let decisions = self.decisions(c.id).await?;
            calls.push(OutboundCall {
                id: c.id,
                customer_id: c.customer_id,
                chain_id: c.chain_id,
                attempt: c.attempt as u32,
                status: c.status,
                due_at_ms: c.due_at_ms,
                purposes: c.purposes,
                stopped_by: c.stopped_by,
                stopped_until_ms: c.stopped_until_ms,
                merged_into: c.merged_into,
                ticket_id: c.ticket_id,
                fired_at_ms: c.fired_at_ms,
                outcome: c.outcome,
                reason_code: c.reason_code,
                decisions,
            });
        }
        Ok(calls)
    }

    async fn decisions(&self, call_id: i64) -> StoreResult<Vec<PolicyDecision>> {
        sqlx::query(
            "SELECT at_ms, phase, action, rule, until_ms, detail FROM outbound_decisions \
             WHERE call_id = $1 ORDER BY id",
        )
        .bind(call_id)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| {
            Ok(PolicyDecision {
                at_ms: r.try_get("at_ms")?,
                phase: r.try_get("phase")?,
                action: r.try_get("action")?,
                rule: r.try_get("rule")?,
                until_ms: r.try_get("until_ms")?,
                detail: r.try_get("detail")?,
            })
        })
        .collect()
    }
}

async fn insert_version(
    tx: &mut Transaction<'static, Any>,
    id: i64,
    version: i64,
    spec: &JourneySpec,
    actor: i64,
    now_ms: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO journey_versions (journey_id, version, definition, created_at_ms, actor_user_id) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(version)
    .bind(serde_json::to_string(spec).unwrap_or_default())
    .bind(now_ms)
    .bind(actor)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn unique_conflict(e: sqlx::Error, message: &str) -> StoreError {
    if matches!(&e, sqlx::Error::Database(d) if d.is_unique_violation()) {
        StoreError::Conflict(message.to_string())
    } else {
        e.into()
    }
}

fn membership_from_row(r: &AnyRow) -> StoreResult<Membership> {
    Ok(Membership {
        id: r.try_get("id")?,
        customer_id: r.try_get("customer_id")?,
        external_id: r.try_get("external_id")?,
        product: r.try_get("product")?,
        ends_at_ms: r.try_get("ends_at_ms")?,
    })
}

fn date_from_row(r: &AnyRow) -> StoreResult<SharedDate> {
    Ok(SharedDate {
        id: r.try_get("id")?,
        customer_id: r.try_get("customer_id")?,
        external_id: r.try_get("external_id")?,
        label: r.try_get("label")?,
        month: r.try_get::<i64, _>("month")? as u8,
        day: r.try_get::<i64, _>("day")? as u8,
    })
}
