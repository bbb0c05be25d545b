//! Administration: users, agents' routing profiles, queues and categories.

use super::Check;
use crate::app::AppState;
use crate::auth::{AuthUser, password};
use crate::bus::BusMessage;
use crate::error::{ApiError, ApiJson, ApiResult};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, patch};
use callcenter_proto::Role;
use callcenter_proto::http::{
    Agent, AgentProfile, Category, CategorySpec, CreateUser, Problem, Queue, QueueSpec, UpdateUser,
    User,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/admin/users", get(list_users).post(create_user))
        .route("/api/admin/users/{id}", patch(update_user))
        .route("/api/admin/agents", get(list_agents))
        .route("/api/admin/agents/{id}", get(get_agent).put(put_agent))
        .route("/api/admin/queues", get(list_queues).post(create_queue))
        .route(
            "/api/admin/categories",
            get(list_categories).post(create_category),
        )
}

fn admin(user: &AuthUser) -> ApiResult<()> {
    user.require(&[Role::Admin])
}

fn staff(user: &AuthUser) -> ApiResult<()> {
    user.require(&[Role::Admin, Role::Supervisor])
}

#[utoipa::path(get, path = "/api/admin/users", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = [User]), (status = 403, body = Problem)))]
pub async fn list_users(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<ApiJson<Vec<User>>> {
    admin(&user)?;
    Ok(ApiJson(state.db.users().await?))
}

#[utoipa::path(post, path = "/api/admin/users", tag = "admin", security(("bearer" = [])), request_body = CreateUser,
    responses((status = 201, body = User), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_user(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<CreateUser>,
) -> ApiResult<(StatusCode, ApiJson<User>)> {
    admin(&user)?;
    let mut check = Check::new();
    check.text("username", &req.username, 64);
    check.that(
        req.username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c)),
        "username",
        "letters, digits and . _ - @ only",
    );
    if let Some(name) = &req.display_name {
        check.text("display_name", name, 120);
    }
    if let Err(m) = password::validate(&req.password) {
        check.that(false, "password", &m);
    }
    check.done()?;
    let hash = password::hash_async(req.password).await?;
    let display = req.display_name.unwrap_or_else(|| req.username.clone());
    let created = state
        .db
        .create_user(
            &req.username,
            &display,
            req.role,
            &hash,
            state.clock.now_ms(),
        )
        .await?;
    Ok((StatusCode::CREATED, ApiJson(created)))
}

/// Rename, disable (revoking every session and closing every socket) or
/// reset the password of a user.
#[utoipa::path(patch, path = "/api/admin/users/{id}", tag = "admin", security(("bearer" = [])), request_body = UpdateUser,
    params(("id" = i64, Path)), responses((status = 200, body = User), (status = 404, body = Problem)))]
pub async fn update_user(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
    ApiJson(req): ApiJson<UpdateUser>,
) -> ApiResult<ApiJson<User>> {
    admin(&user)?;
    let mut check = Check::new();
    if let Some(name) = &req.display_name {
        check.text("display_name", name, 120);
    }
    if let Some(p) = &req.password
        && let Err(m) = password::validate(p)
    {
        check.that(false, "password", &m);
    }
    check.that(
        !(req.disabled == Some(true) && id == user.user_id),
        "disabled",
        "you cannot disable yourself",
    );
    check.done()?;
    let hash = match req.password {
        Some(p) => Some(password::hash_async(p).await?),
        None => None,
    };
    let updated = state
        .db
        .update_user(
            id,
            req.display_name.as_deref(),
            req.disabled,
            hash.as_deref(),
        )
        .await?;
    if req.disabled == Some(true) || hash.is_some() {
        revoke_all(
            &state,
            id,
            if hash.is_some() {
                "password changed"
            } else {
                "account disabled"
            },
        )
        .await?;
    }
    Ok(ApiJson(updated))
}

/// End every session of a user and close their sockets on every node.
pub async fn revoke_all(state: &AppState, user_id: i64, reason: &str) -> ApiResult<()> {
    state
        .db
        .revoke_user_sessions(user_id, state.clock.now_ms())
        .await?;
    state
        .bus
        .publish(BusMessage::Revoke {
            user_id,
            session_id: None,
            reason: reason.into(),
        })
        .await?;
    Ok(())
}

#[utoipa::path(get, path = "/api/admin/agents", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = [Agent])))]
pub async fn list_agents(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<ApiJson<Vec<Agent>>> {
    staff(&user)?;
    let mut agents = Vec::new();
    for id in state.db.agent_ids().await? {
        agents.push(Agent {
            user: state.db.user(id).await?,
            profile: state.db.agent_profile(id).await?,
        });
    }
    Ok(ApiJson(agents))
}

#[utoipa::path(get, path = "/api/admin/agents/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200, body = Agent), (status = 404, body = Problem)))]
pub async fn get_agent(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
) -> ApiResult<ApiJson<Agent>> {
    staff(&user)?;
    Ok(ApiJson(Agent {
        user: state.db.user(id).await?,
        profile: state.db.agent_profile(id).await?,
    }))
}

/// Set the skills, teams and capacity of a user with the agent role.
#[utoipa::path(put, path = "/api/admin/agents/{id}", tag = "admin", security(("bearer" = [])), request_body = AgentProfile,
    params(("id" = i64, Path)), responses((status = 200, body = Agent), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn put_agent(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
    ApiJson(profile): ApiJson<AgentProfile>,
) -> ApiResult<ApiJson<Agent>> {
    admin(&user)?;
    let mut check = Check::new();
    check.skills("skills", &profile.skills);
    check.that(profile.teams.len() <= 20, "teams", "at most 20 teams");
    for (i, t) in profile.teams.iter().enumerate() {
        check.text(&format!("teams[{i}]"), t, 64);
    }
    check.that(
        profile.capacity_inbound <= 50,
        "capacity_inbound",
        "must be 0 to 50",
    );
    check.that(
        profile.capacity_outbound <= 50,
        "capacity_outbound",
        "must be 0 to 50",
    );
    check.done()?;
    state.db.put_agent_profile(id, &profile).await?;
    Ok(ApiJson(Agent {
        user: state.db.user(id).await?,
        profile: state.db.agent_profile(id).await?,
    }))
}

#[utoipa::path(get, path = "/api/admin/queues", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = [Queue])))]
pub async fn list_queues(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<ApiJson<Vec<Queue>>> {
    staff(&user)?;
    Ok(ApiJson(state.db.queues().await?))
}

#[utoipa::path(post, path = "/api/admin/queues", tag = "admin", security(("bearer" = [])), request_body = QueueSpec,
    responses((status = 201, body = Queue), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_queue(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(spec): ApiJson<QueueSpec>,
) -> ApiResult<(StatusCode, ApiJson<Queue>)> {
    admin(&user)?;
    let mut check = Check::new();
    check.text("name", &spec.name, 100);
    check.skills("required_skills", &spec.required_skills);
    check.that(
        (1..=86_400).contains(&spec.service_level_seconds),
        "service_level_seconds",
        "must be 1 to 86400",
    );
    check.that(
        (5..=600).contains(&spec.offer_timeout_seconds),
        "offer_timeout_seconds",
        "must be 5 to 600",
    );
    check.done()?;
    Ok((
        StatusCode::CREATED,
        ApiJson(state.db.create_queue(&spec).await?),
    ))
}

#[utoipa::path(get, path = "/api/admin/categories", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = [Category])))]
pub async fn list_categories(
    State(state): State<AppState>,
    _user: AuthUser,
) -> ApiResult<ApiJson<Vec<Category>>> {
    Ok(ApiJson(state.db.categories().await?))
}

#[utoipa::path(post, path = "/api/admin/categories", tag = "admin", security(("bearer" = [])), request_body = CategorySpec,
    responses((status = 201, body = Category), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_category(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(spec): ApiJson<CategorySpec>,
) -> ApiResult<(StatusCode, ApiJson<Category>)> {
    admin(&user)?;
    let mut check = Check::new();
    check.text("name", &spec.name, 100);
    check.that(
        spec.base_priority <= 86_400,
        "base_priority",
        "must be 0 to 86400 seconds",
    );
    check.done()?;
    let category = state.db.create_category(&spec).await.map_err(|e| match e {
        crate::store::StoreError::NotFound("queue") => {
            ApiError::field("queue_id", "no queue has this id")
        }
        other => other.into(),
    })?;
    Ok((StatusCode::CREATED, ApiJson(category)))
}
