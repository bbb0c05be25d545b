//! Customers and their purchases, posted by the shop or CRM.

use super::{Db, StoreError, StoreResult, is_unique_violation};
use callcenter_proto::http::{Customer, CustomerUpsert, Purchase, PurchaseCreate, Ticket};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

const CUSTOMER_COLUMNS: &str = "id, external_id, name, email, phone, tier, value_minor, timezone";

/// A customer from a row's columns, named `{prefix}id`, `{prefix}name`, ...
fn customer_from_row(row: &AnyRow, prefix: &str) -> StoreResult<Customer> {
    let col = |name: &str| format!("{prefix}{name}");
    Ok(Customer {
        id: row.try_get(col("id").as_str())?,
        external_id: row.try_get(col("external_id").as_str())?,
        name: row.try_get(col("name").as_str())?,
        email: row.try_get(col("email").as_str())?,
        phone: row.try_get(col("phone").as_str())?,
        tier: row.try_get(col("tier").as_str())?,
        value_minor: row.try_get(col("value_minor").as_str())?,
        timezone: row.try_get(col("timezone").as_str())?,
        purchases: Vec::new(),
    })
}

/// A purchase from a row's columns, named `{prefix}id`, `{prefix}product`, ...
fn purchase_from_row(row: &AnyRow, prefix: &str) -> StoreResult<Purchase> {
    let col = |name: &str| format!("{prefix}{name}");
    Ok(Purchase {
        id: row.try_get(col("id").as_str())?,
        external_id: row.try_get(col("external_id").as_str())?,
        product: row.try_get(col("product").as_str())?,
        amount_minor: row.try_get(col("amount_minor").as_str())?,
        currency: row.try_get(col("currency").as_str())?,
        purchased_at_ms: row.try_get(col("purchased_at_ms").as_str())?,
    })
}

impl Db {
    /// Create or update a customer by external id. Returns the customer and
    /// whether it was created.
    pub async fn upsert_customer(
        &self,
        c: &CustomerUpsert,
        now_ms: i64,
    ) -> StoreResult<(Customer, bool)> {
        // Only decides 201 versus 200: a racing insert of the same customer is
        // still one row, thanks to the upsert.
        let existed = self.customer_id_by_external(&c.external_id).await.is_ok();
        let row = sqlx::query(&format!(
            "INSERT INTO customers (external_id, name, email, phone, tier, value_minor, timezone, \
                 created_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
             ON CONFLICT (external_id) DO UPDATE SET name = $2, email = $3, phone = $4, tier = $5, \
                 value_minor = $6, timezone = $7, updated_at_ms = $8 \
             RETURNING {CUSTOMER_COLUMNS}"
        ))
        .bind(&c.external_id)
        .bind(&c.name)
        .bind(&c.email)
        .bind(&c.phone)
        .bind(&c.tier)
        .bind(c.value_minor)
        .bind(&c.timezone)
        .bind(now_ms)
        .fetch_one(&self.pool)
        .await?;
        let created = !existed;
        let mut customer = customer_from_row(&row, "")?;
        customer.purchases = self.customer(customer.id).await?.purchases;
        Ok((customer, created))
    }

    /// A customer with their purchases, newest first.
    pub async fn customer(&self, id: i64) -> StoreResult<Customer> {
        let mut conn = self.pool.acquire().await?;
        customer_on(&mut conn, id).await
    }

    /// A ticket and its customer's card, in one statement (what an offer
    /// shows, what a compensation is decided on).
    pub async fn ticket_card(&self, ticket_id: i64) -> StoreResult<(Ticket, Customer)> {
        let ticket_columns = super::tickets::TICKET_COLUMNS
            .split(", ")
            .map(|c| format!("t.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = sqlx::query(&format!(
            "SELECT {ticket_columns}, {CARD_COLUMNS} FROM tickets t \
             JOIN customers c ON c.id = t.customer_id {PURCHASES_JOIN} \
             WHERE t.id = $1 {CARD_ORDER}"
        ))
        .bind(ticket_id)
        .fetch_all(&self.pool)
        .await?;
        let ticket = match rows.first() {
            Some(row) => super::tickets::ticket_from_row(row)?,
            None => return Err(StoreError::NotFound("ticket")),
        };
        let customer = card_from_rows(&rows)?.ok_or(StoreError::NotFound("customer"))?;
        Ok((ticket, customer))
    }

    pub async fn customer_id_by_external(&self, external_id: &str) -> StoreResult<i64> {
        Ok(
            sqlx::query("SELECT id FROM customers WHERE external_id = $1")
                .bind(external_id)
                .fetch_optional(&self.pool)
                .await?
                .ok_or(StoreError::NotFound("customer"))?
                .try_get("id")?,
        )
    }

    /// Record a purchase, idempotent by its external id: a repeat returns the
    /// stored purchase (and `false`), a repeat with different content is a conflict.
    pub async fn add_purchase(
        &self,
        customer_id: i64,
        p: &PurchaseCreate,
        purchased_at_ms: i64,
    ) -> StoreResult<(Purchase, bool)> {
        self.customer(customer_id).await?;
        let inserted = sqlx::query(
            "INSERT INTO purchases (customer_id, external_id, product, amount_minor, currency, purchased_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             RETURNING id, external_id, product, amount_minor, currency, purchased_at_ms",
        )
        .bind(customer_id)
        .bind(&p.external_id)
        .bind(&p.product)
        .bind(p.amount_minor)
        .bind(&p.currency)
        .bind(purchased_at_ms)
        .fetch_one(&self.pool)
        .await;
        match inserted {
            Ok(row) => Ok((purchase_from_row(&row, "")?, true)),
            Err(e) if is_unique_violation(&e) => {
                let row = sqlx::query(
                    "SELECT id, customer_id, external_id, product, amount_minor, currency, purchased_at_ms \
                     FROM purchases WHERE external_id = $1",
                )
                .bind(&p.external_id)
                .fetch_one(&self.pool)
                .await?;
                let stored = purchase_from_row(&row, "")?;
                let same = row.try_get::<i64, _>("customer_id")? == customer_id
                    && stored.product == p.product
                    && stored.amount_minor == p.amount_minor
                    && stored.currency == p.currency;
                if same {
                    Ok((stored, false))
                } else {
                    Err(StoreError::Conflict(format!(
                        "purchase {:?} is already recorded with different details",
                        p.external_id
                    )))
                }
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// A customer with their purchases (newest first), on a connection or in a
/// transaction: one statement.
pub(crate) async fn customer_on(conn: &mut AnyConnection, id: i64) -> StoreResult<Customer> {
    let rows = sqlx::query(&format!(
        "SELECT {CARD_COLUMNS} FROM customers c {PURCHASES_JOIN} WHERE c.id = $1 {CARD_ORDER}"
    ))
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    card_from_rows(&rows)?.ok_or(StoreError::NotFound("customer"))
}

/// A customer's card read with another row (say, a ticket's), one row per
/// purchase: the customer `c` as `c_*`, each of their newest purchases `p`
/// (at most 100; none: one row of NULLs) as `p_*`. The statement joins
/// [`PURCHASES_JOIN`] on its customer `c` and orders by [`CARD_ORDER`].
pub(crate) const CARD_COLUMNS: &str = "c.id AS c_id, c.external_id AS c_external_id, \
     c.name AS c_name, c.email AS c_email, c.phone AS c_phone, c.tier AS c_tier, \
     c.value_minor AS c_value_minor, c.timezone AS c_timezone, p.id AS p_id, \
     p.external_id AS p_external_id, p.product AS p_product, p.amount_minor AS p_amount_minor, \
     p.currency AS p_currency, p.purchased_at_ms AS p_purchased_at_ms";

/// The customer `c`'s newest purchases, as `p`.
pub(crate) const PURCHASES_JOIN: &str = "LEFT JOIN purchases p ON p.customer_id = c.id \
     AND p.id IN (SELECT n.id FROM purchases n WHERE n.customer_id = c.id \
         ORDER BY n.purchased_at_ms DESC, n.id DESC LIMIT 100)";

/// Newest purchase first.
pub(crate) const CARD_ORDER: &str = "ORDER BY p.purchased_at_ms DESC, p.id DESC";

/// The card from the rows of a statement with [`CARD_COLUMNS`]; None for
/// no rows.
pub(crate) fn card_from_rows(rows: &[AnyRow]) -> StoreResult<Option<Customer>> {
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let mut customer = customer_from_row(first, "c_")?;
    for row in rows {
        // No purchases: one row whose purchase columns are all NULL.
        if row.try_get::<Option<i64>, _>("p_id")?.is_some() {
            customer.purchases.push(purchase_from_row(row, "p_")?);
        }
    }
    Ok(Some(customer))
}
