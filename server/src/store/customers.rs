//! Customers and their purchases, posted by the shop or CRM.

use super::{Db, StoreError, StoreResult, is_unique_violation};
use callcenter_proto::http::{Customer, CustomerUpsert, Purchase, PurchaseCreate};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

const CUSTOMER_COLUMNS: &str = "id, external_id, name, email, phone, tier, value_minor, timezone";

fn customer_from_row(row: &AnyRow) -> StoreResult<Customer> {
    Ok(Customer {
        id: row.try_get("id")?,
        external_id: row.try_get("external_id")?,
        name: row.try_get("name")?,
        email: row.try_get("email")?,
        phone: row.try_get("phone")?,
        tier: row.try_get("tier")?,
        value_minor: row.try_get("value_minor")?,
        timezone: row.try_get("timezone")?,
        purchases: Vec::new(),
    })
}

fn purchase_from_row(row: &AnyRow) -> StoreResult<Purchase> {
    Ok(Purchase {
        id: row.try_get("id")?,
        external_id: row.try_get("external_id")?,
        product: row.try_get("product")?,
        amount_minor: row.try_get("amount_minor")?,
        currency: row.try_get("currency")?,
        purchased_at_ms: row.try_get("purchased_at_ms")?,
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
        let mut customer = customer_from_row(&row)?;
        customer.purchases = self.purchases(customer.id).await?;
        Ok((customer, created))
    }

    /// A customer with their purchases, newest first.
    pub async fn customer(&self, id: i64) -> StoreResult<Customer> {
        let mut conn = self.pool.acquire().await?;
        customer_on(&mut conn, id).await
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

    async fn purchases(&self, customer_id: i64) -> StoreResult<Vec<Purchase>> {
        let mut conn = self.pool.acquire().await?;
        purchases_on(&mut conn, customer_id).await
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
            Ok(row) => Ok((purchase_from_row(&row)?, true)),
            Err(e) if is_unique_violation(&e) => {
                let row = sqlx::query(
                    "SELECT id, customer_id, external_id, product, amount_minor, currency, purchased_at_ms \
                     FROM purchases WHERE external_id = $1",
                )
                .bind(&p.external_id)
                .fetch_one(&self.pool)
                .await?;
                let stored = purchase_from_row(&row)?;
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
/// transaction.
pub(crate) async fn customer_on(conn: &mut AnyConnection, id: i64) -> StoreResult<Customer> {
    let row = sqlx::query(&format!(
        "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::NotFound("customer"))?;
    let mut customer = customer_from_row(&row)?;
    customer.purchases = purchases_on(conn, id).await?;
    Ok(customer)
}

async fn purchases_on(conn: &mut AnyConnection, customer_id: i64) -> StoreResult<Vec<Purchase>> {
    sqlx::query(
        "SELECT id, external_id, product, amount_minor, currency, purchased_at_ms FROM purchases \
         WHERE customer_id = $1 ORDER BY purchased_at_ms DESC, id DESC LIMIT 100",
    )
    .bind(customer_id)
    .fetch_all(conn)
    .await?
    .iter()
    .map(purchase_from_row)
    .collect()
}
