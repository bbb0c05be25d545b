//! The append-only ledger: every grant and reversal, each entry chained to the
//! previous one by SHA-256 over the previous hash and the entry's canonical
//! JSON (keys sorted, no spaces). The database refuses UPDATE and DELETE
//! (triggers); [`Db::verify_ledger`] recomputes the chain from the stored
//! columns, so an entry edited behind the application's back is named.

use crate::store::{Db, Dialect, StoreError, StoreResult};
use callcenter_proto::compensation::{
    BonusKind, LedgerEntry, LedgerEntryKind, LedgerVerification, WebhookEvent,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

pub(crate) const LEDGER_COLUMNS: &str = "seq, kind, request_id, ticket_id, customer_id, requested_by, \
     approved_by, bonus_kind, quantity, amount_minor, reason_code, policy_version, rule, note, \
     created_at_ms, prev_hash, hash";

/// JSON with object keys sorted at every level and no insignificant spaces.
pub fn canonical_json(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical_json(&map[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

/// The content an entry's hash covers: every field but the hashes.
fn content(e: &LedgerEntry) -> Value {
    serde_json::json!({
        "seq": e.seq,
        "kind": kind_str(e.kind),
        "request_id": e.request_id,
        "ticket_id": e.ticket_id,
        "customer_id": e.customer_id,
        "requested_by": e.requested_by,
        "approved_by": e.approved_by,
        "bonus_kind": e.bonus_kind.as_str(),
        "quantity": e.quantity,
        "amount_minor": e.amount_minor,
        "reason_code": e.reason_code,
        "policy_version": e.policy_version,
        "rule": e.rule,
        "note": e.note,
        "created_at_ms": e.created_at_ms,
    })
}

/// SHA-256 (hex) of `prev_hash`, a newline, and the entry's canonical JSON.
pub fn entry_hash(prev_hash: &str, e: &LedgerEntry) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(canonical_json(&content(e)).as_bytes());
    hex::encode(h.finalize())
}

fn kind_str(kind: LedgerEntryKind) -> &'static str {
    match kind {
        LedgerEntryKind::Grant => "grant",
        LedgerEntryKind::Reversal => "reversal",
    }
}

pub(crate) fn entry_from_row(row: &AnyRow) -> StoreResult<LedgerEntry> {
    let kind: String = row.try_get("kind")?;
    let bonus: String = row.try_get("bonus_kind")?;
    Ok(LedgerEntry {
        seq: row.try_get("seq")?,
        kind: match kind.as_str() {
            "reversal" => LedgerEntryKind::Reversal,
            _ => LedgerEntryKind::Grant,
        },
        request_id: row.try_get("request_id")?,
        ticket_id: row.try_get("ticket_id")?,
        customer_id: row.try_get("customer_id")?,
        requested_by: row.try_get("requested_by")?,
        approved_by: row.try_get("approved_by")?,
        // An unknown kind (a row edited by hand) still reads; its hash will not match.
        bonus_kind: BonusKind::parse(&bonus).unwrap_or(BonusKind::AccountCredit),
        quantity: row.try_get("quantity")?,
        amount_minor: row.try_get("amount_minor")?,
        reason_code: row.try_get("reason_code")?,
        policy_version: row.try_get("policy_version")?,
        rule: row.try_get("rule")?,
        note: row.try_get("note")?,
        created_at_ms: row.try_get("created_at_ms")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// Append an entry (its `seq`, `prev_hash` and `hash` are filled in here) and
/// its webhook event to the outbox, in the caller's transaction, as the
/// transaction's last writes: the ledger head's row lock is taken here and
/// held to the commit, so appends are serial across nodes while each holds
/// the one lock for two statements and the commit (what the decision read
/// and charged is held by [`lock_budgets`] meanwhile).
pub(crate) async fn append(
    tx: &mut Transaction<'static, Any>,
    dialect: Dialect,
    mut entry: LedgerEntry,
) -> StoreResult<LedgerEntry> {
    // The complaint's quality record counts what was spent on it (issue 7):
    // before the ledger's lock, so that lock is not held for it.
    crate::quality::retention::compensation_entered(tx, entry.ticket_id, entry.amount_minor)
        .await?;
    // Locked and read in one statement: after waiting for the lock the
    // update sees the head as the previous append left it.
    let head = sqlx::query(
        "UPDATE compensation_ledger_head SET last_seq = last_seq WHERE id = 1 \
         RETURNING last_seq, last_hash",
    )
    .fetch_one(&mut **tx)
    .await?;
    entry.seq = head.try_get::<i64, _>("last_seq")? + 1;
    entry.prev_hash = head.try_get("last_hash")?;
    entry.hash = entry_hash(&entry.prev_hash, &entry);
    let event = WebhookEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        kind: match entry.kind {
            LedgerEntryKind::Grant => "compensation.granted",
            LedgerEntryKind::Reversal => "compensation.reversed",
        }
        .into(),
        entry: entry.clone(),
    };
    let payload = serde_json::to_string(&event).map_err(|e| StoreError::Conflict(e.to_string()))?;
    let conflict = |e: sqlx::Error| {
        if crate::store::is_unique_violation(&e) {
            StoreError::Conflict(
                "this grant already has such a ledger entry, or the ledger moved on meanwhile"
                    .into(),
            )
        } else {
            e.into()
        }
    };
    let insert_entry = format!(
        "INSERT INTO compensation_ledger ({LEDGER_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
    );
    match dialect {
        // The entry, the head and the event in one statement.
        Dialect::Postgres => {
            let sql = format!(
                "WITH e AS ({insert_entry} RETURNING seq), \
                 h AS (UPDATE compensation_ledger_head SET last_seq = $1, last_hash = $17 \
                       WHERE id = 1 RETURNING id) \
                 INSERT INTO compensation_outbox \
                     (event_id, ledger_seq, payload, attempts, next_attempt_at_ms, created_at_ms) \
                 VALUES ($18, $1, $19, 0, $15, $15)"
            );
            bind_entry(sqlx::query(&sql), &entry)
                .bind(&event.event_id)
                .bind(&payload)
                .execute(&mut **tx)
                .await
                .map_err(conflict)?;
        }
        // No writes in a WITH: three statements, under the one writer's lock.
        Dialect::Sqlite => {
            bind_entry(sqlx::query(&insert_entry), &entry)
                .execute(&mut **tx)
                .await
                .map_err(conflict)?;
            sqlx::query(
                "UPDATE compensation_ledger_head SET last_seq = $1, last_hash = $2 WHERE id = 1",
            )
            .bind(entry.seq)
            .bind(&entry.hash)
            .execute(&mut **tx)
            .await?;
            sqlx::query(
                "INSERT INTO compensation_outbox \
                     (event_id, ledger_seq, payload, attempts, next_attempt_at_ms, created_at_ms) \
                 VALUES ($1, $2, $3, 0, $4, $4)",
            )
            .bind(&event.event_id)
            .bind(entry.seq)
            .bind(&payload)
            .bind(entry.created_at_ms)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(entry)
}

/// The entry's columns as `$1` to `$17`, in [`LEDGER_COLUMNS`] order.
fn bind_entry<'q>(
    query: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    e: &'q LedgerEntry,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    query
        .bind(e.seq)
        .bind(kind_str(e.kind))
        .bind(e.request_id)
        .bind(e.ticket_id)
        .bind(e.customer_id)
        .bind(e.requested_by)
        .bind(e.approved_by)
        .bind(e.bonus_kind.as_str())
        .bind(e.quantity)
        .bind(e.amount_minor)
        .bind(&e.reason_code)
        .bind(e.policy_version)
        .bind(&e.rule)
        .bind(&e.note)
        .bind(e.created_at_ms)
        .bind(&e.prev_hash)
        .bind(&e.hash)
}

/// Lock what a compensation decision reads and charges, to the end of its
/// transaction: the requester's budget counters (and their idempotency
/// keys) and the customer's 90-day spend, so decisions that share either
/// are decided one after another against fresh numbers, on any node, and
/// decisions that share neither run side by side. Always the requester
/// first, then the customer, then (in [`append`]) the ledger head: one
/// order, so no two decisions wait for each other. On PostgreSQL these are
/// transaction-scoped advisory locks (negative keys: the requester's even,
/// the customer's odd; other advisory locks use positive keys); SQLite has
/// one writer, which the transaction took when it began.
pub(crate) async fn lock_budgets(
    tx: &mut Transaction<'static, Any>,
    dialect: Dialect,
    requester: i64,
    customer_id: i64,
) -> StoreResult<()> {
    match dialect {
        Dialect::Postgres => {
            // Evaluated left to right: the requester's lock first.
            sqlx::query("SELECT pg_advisory_xact_lock($1) AS a, pg_advisory_xact_lock($2) AS b")
                .bind(requester.wrapping_mul(-2))
                .bind(customer_id.wrapping_mul(-2).wrapping_sub(1))
                .execute(&mut **tx)
                .await?;
        }
        // The transaction began IMMEDIATE: it holds the one writer already.
        Dialect::Sqlite => {}
    }
    Ok(())
}

const VERIFY_PAGE: i64 = 1000;

impl Db {
    /// Recompute the chain from the stored columns; name the first entry
    /// whose link or hash does not match, or a missing tail.
    pub async fn verify_ledger(&self) -> StoreResult<LedgerVerification> {
        let mut expected_seq = 1i64;
        let mut prev = GENESIS_HASH.to_string();
        let broken = |seq: i64, checked: i64, detail: String| LedgerVerification {
            ok: false,
            entries_checked: checked,
            first_broken_seq: Some(seq),
            detail: Some(detail),
        };
        loop {
            let rows = sqlx::query(&format!(
                "SELECT {LEDGER_COLUMNS} FROM compensation_ledger WHERE seq >= $1 ORDER BY seq LIMIT $2"
            ))
            .bind(expected_seq)
            .bind(VERIFY_PAGE)
            .fetch_all(self.pool())
            .await?;
            let page = rows.len() as i64;
            for row in &rows {
                let e = entry_from_row(row)?;
                let checked = expected_seq - 1;
                if e.seq != expected_seq {
                    return Ok(broken(
                        expected_seq,
                        checked,
                        format!("entry {expected_seq} is missing"),
                    ));
                }
                if e.prev_hash != prev {
                    return Ok(broken(
                        e.seq,
                        checked,
                        "its prev_hash is not the previous entry's hash".into(),
                    ));
                }
                if entry_hash(&prev, &e) != e.hash {
                    return Ok(broken(
                        e.seq,
                        checked,
                        "its content does not match its hash".into(),
                    ));
                }
                prev = e.hash;
                expected_seq += 1;
            }
            if page < VERIFY_PAGE {
                break;
            }
        }
        let checked = expected_seq - 1;
        let head =
            sqlx::query("SELECT last_seq, last_hash FROM compensation_ledger_head WHERE id = 1")
                .fetch_one(self.pool())
                .await?;
        let last_seq: i64 = head.try_get("last_seq")?;
        let last_hash: String = head.try_get("last_hash")?;
        if last_seq != checked || last_hash != prev {
            return Ok(broken(
                checked + 1,
                checked,
                format!("the chain ends at {checked} but the ledger head records {last_seq}"),
            ));
        }
        Ok(LedgerVerification {
            ok: true,
            entries_checked: checked,
            first_broken_seq: None,
            detail: None,
        })
    }

    /// Ledger entries after `after_seq`, oldest first, optionally of one customer.
    pub async fn ledger_entries(
        &self,
        customer_id: Option<i64>,
        after_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<LedgerEntry>> {
        let rows = match customer_id {
            Some(c) => sqlx::query(&format!(
                "SELECT {LEDGER_COLUMNS} FROM compensation_ledger WHERE customer_id = $1 AND seq > $2 \
                 ORDER BY seq LIMIT $3"
            ))
            .bind(c)
            .bind(after_seq)
            .bind(limit)
            .fetch_all(self.pool())
            .await?,
            None => sqlx::query(&format!(
                "SELECT {LEDGER_COLUMNS} FROM compensation_ledger WHERE seq > $1 ORDER BY seq LIMIT $2"
            ))
            .bind(after_seq)
            .bind(limit)
            .fetch_all(self.pool())
            .await?,
        };
        rows.iter().map(entry_from_row).collect()
    }
}

/// `callcenter ledger verify`.
pub async fn verify_command(database_url: &str) -> anyhow::Result<()> {
    let db = Db::connect(database_url).await?;
    let v = db.verify_ledger().await?;
    db.close().await;
    if v.ok {
        println!("the ledger holds: {} entries verified", v.entries_checked);
        Ok(())
    } else {
        anyhow::bail!(
            "the ledger is broken at entry {}: {} ({} entries before it verified)",
            v.first_broken_seq.unwrap_or(0),
            v.detail.unwrap_or_default(),
            v.entries_checked
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let v = serde_json::json!({"b": 1, "a": {"z": [3, {"y": null, "x": "é\"q"}], "c": true}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":true,"z":[3,{"x":"é\"q","y":null}]},"b":1}"#
        );
    }

    #[test]
    fn a_changed_field_changes_the_hash() {
        let e = LedgerEntry {
            seq: 1,
            kind: LedgerEntryKind::Grant,
            request_id: 1,
            ticket_id: 2,
            customer_id: 3,
            requested_by: 4,
            approved_by: None,
            bonus_kind: BonusKind::AccountCredit,
            quantity: 500,
            amount_minor: 500,
            reason_code: "late_delivery".into(),
            policy_version: 1,
            rule: "roles.agent.within_authority".into(),
            note: "sorry".into(),
            created_at_ms: 1_700_000_000_000,
            prev_hash: GENESIS_HASH.into(),
            hash: String::new(),
        };
        let h = entry_hash(GENESIS_HASH, &e);
        assert_eq!(h.len(), 64);
        assert_eq!(h, entry_hash(GENESIS_HASH, &e));
        let edited = LedgerEntry {
            amount_minor: 50_000,
            ..e.clone()
        };
        assert_ne!(h, entry_hash(GENESIS_HASH, &edited));
        assert_ne!(h, entry_hash(&h, &e));
    }
}
