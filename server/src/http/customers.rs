//! Customers and purchases, posted by the shop or CRM (idempotent by external id).

use super::Check;
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiJson, ApiResult};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use callcenter_proto::Role;
use callcenter_proto::http::{Customer, CustomerUpsert, Problem, Purchase, PurchaseCreate};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/customers", post(upsert_customer))
        .route("/api/customers/{id}", get(get_customer))
        .route("/api/customers/{id}/purchases", post(add_purchase))
}

const WRITERS: &[Role] = &[
    Role::Integration,
    Role::Admin,
    Role::Supervisor,
    Role::Agent,
];

/// Create or update a customer by `external_id`: 201 when created, 200 when updated.
#[utoipa::path(post, path = "/api/customers", tag = "customers", security(("bearer" = [])), request_body = CustomerUpsert,
    responses((status = 200, body = Customer), (status = 201, body = Customer), (status = 422, body = Problem)))]
pub async fn upsert_customer(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<CustomerUpsert>,
) -> ApiResult<(StatusCode, ApiJson<Customer>)> {
    user.require(WRITERS)?;
    let mut check = Check::new();
    check.text("external_id", &req.external_id, 128);
    check.text("name", &req.name, 200);
    check.text("tier", &req.tier, 32);
    check.that(req.value_minor >= 0, "value_minor", "must not be negative");
    if let Some(email) = &req.email {
        check.that(
            email.len() <= 254 && email.contains('@'),
            "email",
            "must be an email address",
        );
    }
    if let Some(phone) = &req.phone {
        check.text("phone", phone, 32);
    }
    if let Some(tz) = &req.timezone {
        check.text("timezone", tz, 64);
    }
    check.done()?;
    let (customer, created) = state.db.upsert_customer(&req, state.clock.now_ms()).await?;
    let status = crate::http::created_or_ok(created);
    Ok((status, ApiJson(customer)))
}

#[utoipa::path(get, path = "/api/customers/{id}", tag = "customers", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200, body = Customer), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_customer(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
) -> ApiResult<ApiJson<Customer>> {
    user.require(WRITERS)?;
    let customer = state.db.customer(id).await?;
    // An agent sees the card of a customer they are serving, nobody else's.
    if user.role == Role::Agent && !state.desk.agent_serves_customer(user.user_id, id).await? {
        return Err(ApiError::Forbidden(
            "you hold no ticket of this customer and are offered none",
        ));
    }
    Ok(ApiJson(customer))
}

/// Record a purchase, idempotent by its `external_id`.
#[utoipa::path(post, path = "/api/customers/{id}/purchases", tag = "customers", security(("bearer" = [])),
    request_body = PurchaseCreate, params(("id" = i64, Path)),
    responses((status = 201, body = Purchase), (status = 200, body = Purchase), (status = 409, body = Problem)))]
pub async fn add_purchase(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
    ApiJson(req): ApiJson<PurchaseCreate>,
) -> ApiResult<(StatusCode, ApiJson<Purchase>)> {
    user.require(&[Role::Integration, Role::Admin])?;
    let mut check = Check::new();
    check.text("external_id", &req.external_id, 128);
    check.text("product", &req.product, 200);
    check.that(
        req.amount_minor >= 0,
        "amount_minor",
        "must not be negative",
    );
    check.that(
        req.currency.len() == 3 && req.currency.chars().all(|c| c.is_ascii_uppercase()),
        "currency",
        "must be an ISO 4217 code such as EUR",
    );
    check.done()?;
    let at = req.purchased_at_ms.unwrap_or_else(|| state.clock.now_ms());
    let (purchase, created) = state.db.add_purchase(id, &req, at).await?;
    // Plans the `purchase` journeys' calls (check-ins after days of silence);
    // idempotent, so a retry also completes a planning that failed before.
    state
        .desk
        .purchase_recorded(id, purchase.id, purchase.purchased_at_ms)
        .await;
    let status = crate::http::created_or_ok(created);
    Ok((status, ApiJson(purchase)))
}
