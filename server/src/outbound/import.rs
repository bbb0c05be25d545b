//! CSV import for onboarding an existing customer base: customers (with
//! consent), purchases, memberships and shared dates. Every row is checked
//! first; the valid rows are then stored in one transaction and the invalid
//! ones reported by line, column and reason (never part of a row). A repeat
//! of the same file stores nothing twice (external ids).

use super::journeys::Trigger;
use crate::desk::Desk;
use crate::error::{ApiError, ApiResult};
use callcenter_proto::outbound::{ImportReport, ImportRowError};
use chrono::{DateTime, NaiveDate};
use sqlx::Row;
use std::collections::{HashMap, HashSet};

/// Largest CSV body accepted.
pub const MAX_CSV_BYTES: usize = 2 * 1024 * 1024;
/// Most data rows in one import.
pub const MAX_ROWS: usize = 20_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportKind {
    Customers,
    Purchases,
    Memberships,
    Dates,
}

impl ImportKind {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "customers" => ImportKind::Customers,
            "purchases" => ImportKind::Purchases,
            "memberships" => ImportKind::Memberships,
            "dates" => ImportKind::Dates,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            ImportKind::Customers => "customers",
            ImportKind::Purchases => "purchases",
            ImportKind::Memberships => "memberships",
            ImportKind::Dates => "dates",
        }
    }

    /// Required columns, then optional ones.
    fn columns(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            ImportKind::Customers => (
                &["external_id", "name"],
                &[
                    "email",
                    "phone",
                    "tier",
                    "value_minor",
                    "timezone",
                    "consent_calls",
                    "do_not_call",
                ],
            ),
            ImportKind::Purchases => (
                &[
                    "customer_external_id",
                    "external_id",
                    "product",
                    "amount_minor",
                    "currency",
                    "purchased_at",
                ],
                &[],
            ),
            ImportKind::Memberships => (
                &["customer_external_id", "external_id", "product", "ends_at"],
                &[],
            ),
            ImportKind::Dates => (
                &["customer_external_id", "external_id", "label", "date"],
                &[],
            ),
        }
    }
}

struct CustomerRow {
    external_id: String,
    name: String,
    email: Option<String>,
    phone: Option<String>,
    tier: String,
    value_minor: i64,
    timezone: Option<String>,
    consent_calls: Option<bool>,
    do_not_call: Option<bool>,
}

enum Valid {
    Customer(CustomerRow),
    Purchase {
        customer_id: i64,
        external_id: String,
        product: String,
        amount_minor: i64,
        currency: String,
        at_ms: i64,
    },
    Membership {
        customer_id: i64,
        external_id: String,
        product: String,
        ends_at_ms: i64,
    },
    Date {
        customer_id: i64,
        external_id: String,
        label: String,
        month: u8,
        day: u8,
    },
}

struct RowError {
    field: Option<&'static str>,
    message: String,
}

fn bad(field: &'static str, message: impl Into<String>) -> RowError {
    RowError {
        field: Some(field),
        message: message.into(),
    }
}

/// A time as Unix milliseconds, RFC 3339 or a date (midnight UTC).
fn parse_time(s: &str) -> Option<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Some(ms);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
}

fn parse_flag(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Some(true),
        "0" | "false" | "no" => Some(false),
        _ => None,
    }
}

fn text(field: &'static str, value: Option<&str>, max: usize) -> Result<String, RowError> {
    let v = value.unwrap_or("").trim();
    let n = v.chars().count();
    if n == 0 || n > max {
        return Err(bad(field, format!("must be 1 to {max} characters")));
    }
    Ok(v.to_string())
}

fn optional(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

impl Desk {
    /// Import one CSV file of `kind`. `actor` is recorded on consent changes.
    pub async fn import_csv(
        &self,
        kind: ImportKind,
        body: &[u8],
        actor: i64,
    ) -> ApiResult<ImportReport> {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(false)
            .trim(csv::Trim::All)
            .from_reader(body);
        let headers = reader
            .headers()
            .map_err(|e| ApiError::BadRequest(format!("the CSV header cannot be read: {e}")))?
            .clone();
        let index: HashMap<&str, usize> = headers.iter().enumerate().map(|(i, h)| (h, i)).collect();
        let (required, optional_columns) = kind.columns();
        let missing: Vec<&str> = required
            .iter()
            .copied()
            .filter(|c| !index.contains_key(c))
            .collect();
        if !missing.is_empty() {
            return Err(ApiError::field(
                "header",
                format!("missing column(s): {}", missing.join(", ")),
            ));
        }
        if let Some(unknown) = headers
            .iter()
            .find(|h| !required.contains(h) && !optional_columns.contains(h))
        {
            return Err(ApiError::field(
                "header",
                format!("unknown column {unknown:?}"),
            ));
        }

        let mut rows = 0u32;
        let mut valid: Vec<Valid> = Vec::new();
        let mut errors: Vec<ImportRowError> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut customers: HashMap<String, Option<i64>> = HashMap::new();
        for record in reader.records() {
            rows += 1;
            if rows as usize > MAX_ROWS {
                return Err(ApiError::field(
                    "body",
                    format!("at most {MAX_ROWS} rows per import"),
                ));
            }
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    errors.push(ImportRowError {
                        line: e.position().map(|p| p.line()).unwrap_or(0),
                        field: None,
                        message: format!("unreadable row: {e}"),
                    });
                    continue;
                }
            };
            let line = record.position().map(|p| p.line()).unwrap_or(0);
            let fields: HashMap<String, String> = index
                .iter()
                .filter_map(|(c, i)| Some((c.to_string(), record.get(*i)?.to_string())))
                .collect();
            let checked = self
                .check_row(kind, &fields, &mut customers)
                .await
                .and_then(|row| {
                    let key = match &row {
                        Valid::Customer(c) => c.external_id.clone(),
                        Valid::Purchase { external_id, .. }
                        | Valid::Membership { external_id, .. }
                        | Valid::Date { external_id, .. } => external_id.clone(),
                    };
                    if seen.insert(key) {
                        Ok(row)
                    } else {
                        Err(bad("external_id", "appears twice in this file"))
                    }
                });
            match checked {
                Ok(row) => valid.push(row),
                Err(e) => errors.push(ImportRowError {
                    line,
                    field: e.field.map(str::to_string),
                    message: e.message,
                }),
            }
        }

        let imported = valid.len() as u32;
        let triggers = self.store_rows(&valid, actor).await?;
        for trigger in triggers {
            if let Err(e) = self.journeys_on(trigger).await {
                tracing::warn!(error = %e, "could not plan calls for an imported row");
            }
        }
        Ok(ImportReport {
            kind: kind.name().to_string(),
            rows,
            imported,
            errors,
        })
    }

    async fn customer_by_external(
        &self,
        cache: &mut HashMap<String, Option<i64>>,
        external_id: &str,
    ) -> Option<i64> {
        if let Some(hit) = cache.get(external_id) {
            return *hit;
        }
        let id = self.db.customer_id_by_external(external_id).await.ok();
        cache.insert(external_id.to_string(), id);
        id
    }

    /// Whether an external id is already used by another customer's row.
    async fn taken_by_other(
        &self,
        table: &str,
        external_id: &str,
        customer_id: i64,
    ) -> Result<bool, RowError> {
        let row = sqlx::query(&format!(
            "SELECT customer_id FROM {table} WHERE external_id = $1"
        ))
        .bind(external_id)
        .fetch_optional(self.db.pool())
        .await
        .map_err(|_| bad("external_id", "could not be checked; retry the import"))?;
        Ok(row
            .and_then(|r| r.try_get::<i64, _>("customer_id").ok())
            .is_some_and(|owner| owner != customer_id))
    }

    async fn check_row(
        &self,
        kind: ImportKind,
        fields: &HashMap<String, String>,
        customers: &mut HashMap<String, Option<i64>>,
    ) -> Result<Valid, RowError> {
        let get = |c: &str| fields.get(c).map(String::as_str);
        if kind == ImportKind::Customers {
            let external_id = text("external_id", get("external_id"), 128)?;
            let name = text("name", get("name"), 200)?;
            let email = optional(get("email")).map(str::to_string);
            if email
                .as_deref()
                .is_some_and(|e| e.len() > 254 || !e.contains('@'))
            {
                return Err(bad("email", "must be an email address"));
            }
            let phone = optional(get("phone")).map(str::to_string);
            if phone.as_deref().is_some_and(|p| p.chars().count() > 32) {
                return Err(bad("phone", "must be at most 32 characters"));
            }
            let tier = optional(get("tier")).unwrap_or("standard").to_string();
            if tier.chars().count() > 32 {
                return Err(bad("tier", "must be at most 32 characters"));
            }
            let value_minor =
                match optional(get("value_minor")) {
                    None => 0,
                    Some(v) => v.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| {
                        bad("value_minor", "must be a whole number, not negative")
                    })?,
                };
            let timezone = optional(get("timezone")).map(str::to_string);
            if timezone
                .as_deref()
                .is_some_and(|tz| tz.parse::<chrono_tz::Tz>().is_err())
            {
                return Err(bad(
                    "timezone",
                    "must be an IANA time zone such as Europe/Moscow",
                ));
            }
            let flag = |field: &'static str| match optional(get(field)) {
                None => Ok(None),
                Some(v) => parse_flag(v)
                    .map(Some)
                    .ok_or_else(|| bad(field, "must be 1/0, true/false or yes/no")),
            };
            return Ok(Valid::Customer(CustomerRow {
                external_id,
                name,
                email,
                phone,
                tier,
                value_minor,
                timezone,
                consent_calls: flag("consent_calls")?,
                do_not_call: flag("do_not_call")?,
            }));
        }
        let customer_external = text("customer_external_id", get("customer_external_id"), 128)?;
        let customer_id = self
            .customer_by_external(customers, &customer_external)
            .await
            .ok_or_else(|| bad("customer_external_id", "no customer has this external id"))?;
        let external_id = text("external_id", get("external_id"), 128)?;
        let table = match kind {
            ImportKind::Purchases => "purchases",
            ImportKind::Memberships => "memberships",
            _ => "shared_dates",
        };
        if self
            .taken_by_other(table, &external_id, customer_id)
            .await?
        {
            return Err(bad("external_id", "already recorded for another customer"));
        }
        Ok(match kind {
            ImportKind::Purchases => {
                let product = text("product", get("product"), 200)?;
                let amount_minor = get("amount_minor")
                    .and_then(|v| v.parse::<i64>().ok())
                    .filter(|v| *v >= 0)
                    .ok_or_else(|| bad("amount_minor", "must be a whole number, not negative"))?;
                let currency = get("currency").unwrap_or("").to_string();
                if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
                    return Err(bad("currency", "must be an ISO 4217 code such as EUR"));
                }
                let at_ms = get("purchased_at").and_then(parse_time).ok_or_else(|| {
                    bad("purchased_at", "must be RFC 3339, YYYY-MM-DD or Unix ms")
                })?;
                Valid::Purchase {
                    customer_id,
                    external_id,
                    product,
                    amount_minor,
                    currency,
                    at_ms,
                }
            }
            ImportKind::Memberships => {
                let product = text("product", get("product"), 200)?;
                let ends_at_ms = get("ends_at")
                    .and_then(parse_time)
                    .ok_or_else(|| bad("ends_at", "must be RFC 3339, YYYY-MM-DD or Unix ms"))?;
                Valid::Membership {
                    customer_id,
                    external_id,
                    product,
                    ends_at_ms,
                }
            }
            _ => {
                let label = text("label", get("label"), 64)?;
                let date = get("date").unwrap_or("");
                let (month, day) = date
                    .split_once('-')
                    .and_then(|(m, d)| Some((m.parse::<u8>().ok()?, d.parse::<u8>().ok()?)))
                    .filter(|(m, d)| valid_month_day(*m, *d))
                    .ok_or_else(|| bad("date", "must be MM-DD, a day that exists"))?;
                Valid::Date {
                    customer_id,
                    external_id,
                    label,
                    month,
                    day,
                }
            }
        })
    }

    /// Store the valid rows in one transaction; returns the journeys' triggers
    /// of the rows that are new.
    async fn store_rows(&self, rows: &[Valid], actor: i64) -> ApiResult<Vec<Trigger>> {
        let now = self.clock.now_ms();
        let db = |e: sqlx::Error| ApiError::Internal(e.into());
        let mut tx = crate::store::begin(self.db.pool()).await.map_err(db)?;
        let mut triggers = Vec::new();
        for row in rows {
            match row {
                Valid::Customer(c) => {
                    let r = sqlx::query(
                        "INSERT INTO customers (external_id, name, email, phone, tier, value_minor, \
                             timezone, created_at_ms, updated_at_ms) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
                         ON CONFLICT (external_id) DO UPDATE SET name = $2, email = $3, phone = $4, \
                             tier = $5, value_minor = $6, timezone = $7, updated_at_ms = $8 \
                         RETURNING id",
                    )
                    .bind(&c.external_id)
                    .bind(&c.name)
                    .bind(&c.email)
                    .bind(&c.phone)
                    .bind(&c.tier)
                    .bind(c.value_minor)
                    .bind(&c.timezone)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db)?;
                    let id: i64 = r.try_get("id").map_err(db)?;
                    if c.consent_calls.is_none() && c.do_not_call.is_none() {
                        continue;
                    }
                    let before = sqlx::query(
                        "SELECT consent_calls, do_not_call FROM contact_profiles WHERE customer_id = $1",
                    )
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?;
                    let (old_consent, old_dnc) = match before {
                        Some(b) => (
                            b.try_get::<i64, _>("consent_calls").map_err(db)? != 0,
                            b.try_get::<i64, _>("do_not_call").map_err(db)? != 0,
                        ),
                        None => (false, false),
                    };
                    let consent = c.consent_calls.unwrap_or(old_consent);
                    let dnc = c.do_not_call.unwrap_or(old_dnc);
                    sqlx::query(
                        "INSERT INTO contact_profiles (customer_id, consent_calls, do_not_call, updated_at_ms) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT (customer_id) DO UPDATE SET \
                             consent_calls = $2, do_not_call = $3, updated_at_ms = $4",
                    )
                    .bind(id)
                    .bind(i64::from(consent))
                    .bind(i64::from(dnc))
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                    if (consent, dnc) != (old_consent, old_dnc) {
                        sqlx::query(
                            "INSERT INTO consent_changes (customer_id, at_ms, source, actor_user_id, \
                                 consent_calls, do_not_call) VALUES ($1, $2, 'import', $3, $4, $5)",
                        )
                        .bind(id)
                        .bind(now)
                        .bind(actor)
                        .bind(i64::from(consent))
                        .bind(i64::from(dnc))
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                    }
                }
                Valid::Purchase {
                    customer_id,
                    external_id,
                    product,
                    amount_minor,
                    currency,
                    at_ms,
                } => {
                    let r = sqlx::query(
                        "INSERT INTO purchases (customer_id, external_id, product, amount_minor, currency, \
                             purchased_at_ms) VALUES ($1, $2, $3, $4, $5, $6) \
                         ON CONFLICT (external_id) DO NOTHING RETURNING id",
                    )
                    .bind(customer_id)
                    .bind(external_id)
                    .bind(product)
                    .bind(amount_minor)
                    .bind(currency)
                    .bind(at_ms)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?;
                    if let Some(r) = r {
                        triggers.push(Trigger::Purchase {
                            customer_id: *customer_id,
                            purchase_id: r.try_get("id").map_err(db)?,
                            at_ms: *at_ms,
                        });
                    }
                }
                Valid::Membership {
                    customer_id,
                    external_id,
                    product,
                    ends_at_ms,
                } => {
                    let r = sqlx::query(
                        "INSERT INTO memberships (customer_id, external_id, product, ends_at_ms, created_at_ms) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (external_id) DO NOTHING RETURNING id",
                    )
                    .bind(customer_id)
                    .bind(external_id)
                    .bind(product)
                    .bind(ends_at_ms)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?;
                    if let Some(r) = r {
                        triggers.push(Trigger::MembershipEnd {
                            customer_id: *customer_id,
                            membership_id: r.try_get("id").map_err(db)?,
                            ends_at_ms: *ends_at_ms,
                        });
                    }
                }
                Valid::Date {
                    customer_id,
                    external_id,
                    label,
                    month,
                    day,
                } => {
                    let r = sqlx::query(
                        "INSERT INTO shared_dates (customer_id, external_id, label, month, day, created_at_ms) \
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (external_id) DO NOTHING RETURNING id",
                    )
                    .bind(customer_id)
                    .bind(external_id)
                    .bind(label)
                    .bind(i64::from(*month))
                    .bind(i64::from(*day))
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?;
                    if let Some(r) = r {
                        triggers.push(Trigger::SharedDate {
                            customer_id: *customer_id,
                            date_id: r.try_get("id").map_err(db)?,
                            month: *month,
                            day: *day,
                            year: None,
                        });
                    }
                }
            }
        }
        tx.commit().await.map_err(db)?;
        Ok(triggers)
    }
}

/// Whether a month and day exist in some year (29 February does).
pub fn valid_month_day(month: u8, day: u8) -> bool {
    NaiveDate::from_ymd_opt(2024, u32::from(month), u32::from(day)).is_some()
}
