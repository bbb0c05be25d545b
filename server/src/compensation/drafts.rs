//! Stored, editable policy drafts. An admin creates a draft (often from the
//! version in force), edits it (every save is validated by the caller and
//! bumps its revision), dry-runs it against the last N requests and publishes
//! it: in one transaction the document becomes the next immutable version in
//! `compensation_policies` and the draft is frozen (a database trigger refuses
//! any later change). Edits and publishing name the revision they saw, so
//! nobody publishes or overwrites what someone else saved meanwhile.

use super::policy::{self, Situation};
use super::store::policy_from_row;
use crate::store::IdempotencyKey;
use crate::store::{Db, StoreError, StoreResult, is_unique_violation};
use callcenter_proto::Role;
use callcenter_proto::compensation::{
    CompensationStatus, DecisionOutcome, DryRunChange, DryRunReport, PolicyDocument, PolicyDraft,
    PolicyVersion,
};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

const DRAFT_COLUMNS: &str = "id, name, document, based_on_version, revision, created_by, \
     created_at_ms, updated_by, updated_at_ms, published_version, published_by, published_at_ms";

/// How many drafts the list returns (newest first).
pub const LIST_LIMIT: i64 = 500;

fn draft_from_row(row: &AnyRow) -> StoreResult<PolicyDraft> {
    let doc: String = row.try_get("document")?;
    Ok(PolicyDraft {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        document: serde_json::from_str::<PolicyDocument>(&doc)
            .map_err(|_| StoreError::NotFound("policy draft document"))?,
        based_on_version: row.try_get("based_on_version")?,
        revision: row.try_get("revision")?,
        created_by: row.try_get("created_by")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_by: row.try_get("updated_by")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
        published_version: row.try_get("published_version")?,
        published_by: row.try_get("published_by")?,
        published_at_ms: row.try_get("published_at_ms")?,
    })
}

fn text(doc: &PolicyDocument) -> StoreResult<String> {
    serde_json::to_string(doc).map_err(|e| StoreError::Conflict(e.to_string()))
}

/// The resource an idempotency key was first used for, if it was.
async fn claimed(db: &Db, idem: &IdempotencyKey<'_>) -> StoreResult<Option<i64>> {
    let row = sqlx::query(
        "SELECT request_hash, resource_id FROM idempotency_keys WHERE scope = $1 AND key = $2",
    )
    .bind(idem.scope)
    .bind(idem.key)
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else { return Ok(None) };
    if row.try_get::<String, _>("request_hash")? != idem.request_hash {
        return Err(StoreError::IdempotencyMismatch);
    }
    Ok(Some(row.try_get("resource_id")?))
}

/// Remember an idempotency key in the transaction that creates its resource;
/// false when a concurrent retry with the same key got there first.
async fn claim(
    tx: &mut Transaction<'static, Any>,
    idem: &IdempotencyKey<'_>,
    resource_id: i64,
    now_ms: i64,
) -> StoreResult<bool> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (scope, key, request_hash, resource_id, created_at_ms) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(idem.scope)
    .bind(idem.key)
    .bind(idem.request_hash)
    .bind(resource_id)
    .bind(now_ms)
    .execute(&mut **tx)
    .await;
    match inserted {
        Ok(_) => Ok(true),
        Err(e) if is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// A draft that is to be changed: it exists, is not published and is still
/// at the revision the caller saw; otherwise the conflict, in words.
fn why_not(draft: &PolicyDraft, revision: i64) -> StoreError {
    match draft.published_version {
        Some(v) => StoreError::Conflict(format!(
            "draft {} was published as version {v} and can no longer change; create a new draft",
            draft.id
        )),
        None => StoreError::Conflict(format!(
            "draft {} was saved meanwhile (revision {} now, you had {revision}); reload it",
            draft.id, draft.revision
        )),
    }
}

impl Db {
    /// Store a new (validated) draft once per idempotency key. Returns the
    /// draft and whether it was created now.
    pub async fn create_policy_draft(
        &self,
        name: &str,
        document: &PolicyDocument,
        based_on_version: Option<i64>,
        by: i64,
        now_ms: i64,
        idem: &IdempotencyKey<'_>,
    ) -> StoreResult<(PolicyDraft, bool)> {
        if let Some(id) = claimed(self, idem).await? {
            return Ok((self.policy_draft(id).await?, false));
        }
        let mut tx = crate::store::begin(self.pool()).await?;
        let row = sqlx::query(&format!(
            "INSERT INTO compensation_policy_drafts (name, document, based_on_version, revision, \
                 created_by, created_at_ms, updated_by, updated_at_ms) \
             VALUES ($1, $2, $3, 1, $4, $5, $4, $5) RETURNING {DRAFT_COLUMNS}"
        ))
        .bind(name)
        .bind(text(document)?)
        .bind(based_on_version)
        .bind(by)
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await?;
        let draft = draft_from_row(&row)?;
        if !claim(&mut tx, idem, draft.id, now_ms).await? {
            drop(tx);
            let id = claimed(self, idem)
                .await?
                .ok_or(StoreError::NotFound("policy draft"))?;
            return Ok((self.policy_draft(id).await?, false));
        }
        tx.commit().await?;
        Ok((draft, true))
    }

    /// Save an edited (validated) draft seen at `revision`.
    pub async fn update_policy_draft(
        &self,
        id: i64,
        revision: i64,
        name: Option<&str>,
        document: &PolicyDocument,
        by: i64,
        now_ms: i64,
    ) -> StoreResult<PolicyDraft> {
        let row = sqlx::query(&format!(
            "UPDATE compensation_policy_drafts SET name = COALESCE($1, name), document = $2, \
                 revision = revision + 1, updated_by = $3, updated_at_ms = $4 \
             WHERE id = $5 AND revision = $6 AND published_version IS NULL \
             RETURNING {DRAFT_COLUMNS}"
        ))
        .bind(name)
        .bind(text(document)?)
        .bind(by)
        .bind(now_ms)
        .bind(id)
        .bind(revision)
        .fetch_optional(self.pool())
        .await?;
        match row {
            Some(row) => draft_from_row(&row),
            None => Err(why_not(&self.policy_draft(id).await?, revision)),
        }
    }

    pub async fn policy_draft(&self, id: i64) -> StoreResult<PolicyDraft> {
        let row = sqlx::query(&format!(
            "SELECT {DRAFT_COLUMNS} FROM compensation_policy_drafts WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("policy draft"))?;
        draft_from_row(&row)
    }

    /// The most recent drafts, published ones included, newest first.
    pub async fn policy_drafts(&self) -> StoreResult<Vec<PolicyDraft>> {
        sqlx::query(&format!(
            "SELECT {DRAFT_COLUMNS} FROM compensation_policy_drafts ORDER BY id DESC LIMIT $1"
        ))
        .bind(LIST_LIMIT)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(draft_from_row)
        .collect()
    }

    /// Publish a draft seen at `revision` as the next version, once per
    /// idempotency key: the version and the frozen draft in one transaction.
    /// Returns the version and whether it was published now.
    pub async fn publish_policy_draft(
        &self,
        id: i64,
        revision: i64,
        by: i64,
        now_ms: i64,
        idem: &IdempotencyKey<'_>,
    ) -> StoreResult<(PolicyVersion, bool)> {
        if let Some(version) = claimed(self, idem).await? {
            return Ok((self.policy_version(version).await?, false));
        }
        // Two admins publishing different drafts at once race for the next
        // version number: the primary key lets one win; the other tries again.
        for _ in 0..3 {
            let mut tx = crate::store::begin(self.pool()).await?;
            // Take the draft's row lock; nothing changes it from here on.
            let locked = sqlx::query(
                "UPDATE compensation_policy_drafts SET revision = revision \
                 WHERE id = $1 AND revision = $2 AND published_version IS NULL",
            )
            .bind(id)
            .bind(revision)
            .execute(&mut *tx)
            .await?;
            if locked.rows_affected() != 1 {
                drop(tx);
                // A retry of this very request may have published it meanwhile.
                if let Some(version) = claimed(self, idem).await? {
                    return Ok((self.policy_version(version).await?, false));
                }
                return Err(why_not(&self.policy_draft(id).await?, revision));
            }
            let document: String =
                sqlx::query("SELECT document FROM compensation_policy_drafts WHERE id = $1")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("document")?;
            let inserted = sqlx::query(
                "INSERT INTO compensation_policies (version, document, published_by, published_at_ms) \
                 SELECT COALESCE(MAX(version), 0) + 1, $1, $2, $3 FROM compensation_policies \
                 RETURNING version, document, published_by, published_at_ms",
            )
            .bind(&document)
            .bind(by)
            .bind(now_ms)
            .fetch_one(&mut *tx)
            .await;
            let version = match inserted {
                Ok(row) => policy_from_row(&row)?,
                Err(e) if is_unique_violation(&e) => continue,
                Err(e) => return Err(e.into()),
            };
            sqlx::query(
                "UPDATE compensation_policy_drafts SET published_version = $1, published_by = $2, \
                     published_at_ms = $3 WHERE id = $4 AND published_version IS NULL",
            )
            .bind(version.version)
            .bind(by)
            .bind(now_ms)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            if !claim(&mut tx, idem, version.version, now_ms).await? {
                drop(tx);
                let version = claimed(self, idem)
                    .await?
                    .ok_or(StoreError::NotFound("policy version"))?;
                return Ok((self.policy_version(version).await?, false));
            }
            tx.commit().await?;
            return Ok((version, true));
        }
        Err(StoreError::Conflict(
            "another version was published at the same time; try again".into(),
        ))
    }

    /// Replay the last `last` requests under `draft`, with the inputs stored
    /// with each decision, and list those whose decision or rule would change.
    pub async fn dry_run(&self, draft: &PolicyDocument, last: u32) -> StoreResult<DryRunReport> {
        let requests = self.recent_compensation_requests(i64::from(last)).await?;
        let mut changes = Vec::new();
        for r in &requests {
            let i = &r.inputs;
            let decided =
                policy::cost(draft, r.kind, r.quantity, r.order_amount_minor).and_then(|cost| {
                    policy::check_reason(draft, &r.reason_code, &r.note).map(|()| cost)
                });
            let (would_be, would_rule, cost) = match decided {
                Err(unfit) => (DecisionOutcome::Refuse, unfit.rule, r.cost_minor),
                Ok(cost) => {
                    let v = policy::evaluate(
                        draft,
                        &Situation {
                            role: Role::parse(&i.role),
                            category_id: i.category_id,
                            customer_value_minor: i.customer_value_minor,
                            cost_minor: cost,
                            spent_day_minor: i.spent_day_minor,
                            spent_month_minor: i.spent_month_minor,
                            customer_spent_90d_minor: i.customer_spent_90d_minor,
                        },
                    );
                    (v.outcome, v.rule, cost)
                }
            };
            if would_be != as_outcome(r.status) || would_rule != r.rule {
                changes.push(DryRunChange {
                    request_id: r.id,
                    cost_minor: cost,
                    was_status: r.status,
                    was_rule: r.rule.clone(),
                    would_be,
                    would_rule,
                });
            }
        }
        let evaluated = requests.len() as u32;
        Ok(DryRunReport {
            evaluated,
            unchanged: evaluated - changes.len() as u32,
            changes,
        })
    }
}

/// What a request's status says about its request-time decision.
fn as_outcome(status: CompensationStatus) -> DecisionOutcome {
    match status {
        CompensationStatus::Granted => DecisionOutcome::Grant,
        CompensationStatus::Refused => DecisionOutcome::Refuse,
        CompensationStatus::Pending
        | CompensationStatus::Approved
        | CompensationStatus::Denied
        | CompensationStatus::Expired => DecisionOutcome::NeedsApproval,
    }
}
