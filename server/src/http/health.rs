//! Liveness, readiness and metrics.

use crate::app::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use callcenter_proto::http::{Health, HealthCheck};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
pub async fn healthz() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok".into(),
        checks: Vec::new(),
    })
}

/// The database and the live routing state (Redis, when configured) answer.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, axum::Json<Health>) {
    let db = state.db.ping().await;
    let routing = state.desk.routing.ping().await;
    let checks = vec![
        HealthCheck {
            name: "database".into(),
            ok: db.is_ok(),
            detail: db.err().map(|e| e.to_string()),
        },
        HealthCheck {
            name: "routing".into(),
            ok: routing.is_ok(),
            detail: routing.err().map(|e| e.to_string()),
        },
    ];
    let ok = checks.iter().all(|c| c.ok);
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let health = Health {
        status: if ok { "ready" } else { "not ready" }.into(),
        checks,
    };
    (status, axum::Json(health))
}

/// Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut depths = Vec::new();
    if let Ok(queues) = state.db.queues().await {
        for q in queues {
            let waiting = state
                .desk
                .routing
                .waiting(q.id)
                .await
                .map(|w| w.len())
                .unwrap_or(0);
            let offered = state
                .desk
                .routing
                .offers(q.id)
                .await
                .map(|o| o.len())
                .unwrap_or(0);
            depths.push((q.spec.name, waiting, offered));
        }
    }
    let mut text = state.metrics.render(&depths);
    text.push_str(&format!(
        "# HELP callcenter_sockets_closed_slow_total Sockets closed because their client could not keep up.\n\
         # TYPE callcenter_sockets_closed_slow_total counter\ncallcenter_sockets_closed_slow_total {}\n",
        state.hub.slow_closed()
    ));
    // Group commit: works per transaction is the batching (1 at low load).
    let commits = state.db.group_commit().stats();
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    text.push_str(&format!(
        "# HELP callcenter_db_group_transactions_total Transactions of the node's group commit.\n\
         # TYPE callcenter_db_group_transactions_total counter\ncallcenter_db_group_transactions_total {}\n\
         # HELP callcenter_db_group_writes_total Writes those transactions held.\n\
         # TYPE callcenter_db_group_writes_total counter\ncallcenter_db_group_writes_total {}\n\
         # HELP callcenter_db_group_reruns_total Batches rolled back because one write failed, each write then run alone.\n\
         # TYPE callcenter_db_group_reruns_total counter\ncallcenter_db_group_reruns_total {}\n",
        load(&commits.transactions),
        load(&commits.works),
        load(&commits.batches_rerun),
    ));
    text.push_str(
        "# HELP callcenter_db_group_phase_seconds Time of the node's group commit: wait (a write \
         sent until a writer takes it into a transaction), batch (a transaction of the writer, \
         from its first statement to its answers, commit included).\n\
         # TYPE callcenter_db_group_phase_seconds histogram\n",
    );
    commits.wait.render(
        &mut text,
        "callcenter_db_group_phase_seconds",
        "phase=\"wait\"",
    );
    commits.batch.render(
        &mut text,
        "callcenter_db_group_phase_seconds",
        "phase=\"batch\"",
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
