//! Supervisor boards: a connection subscribes to queues and teams, gets their
//! figures at once, then again whenever they change, at most once per
//! [`BOARD_INTERVAL`] however many tickets change in between (coalescing).

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::ws::hub::Subscription;
use callcenter_proto::ws::{Board, ServerEvent};
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

/// How often boards are brought up to date.
pub const BOARD_INTERVAL: Duration = Duration::from_millis(200);

const MAX_QUEUES: usize = 50;
const MAX_TEAMS: usize = 20;

pub(super) async fn subscribe(
    state: &AppState,
    socket_id: u64,
    mut queues: Vec<i64>,
    mut teams: Vec<String>,
) -> ApiResult<()> {
    queues.sort_unstable();
    queues.dedup();
    teams.sort();
    teams.dedup();
    if queues.len() > MAX_QUEUES {
        return Err(ApiError::field(
            "queues",
            format!("at most {MAX_QUEUES} queues"),
        ));
    }
    if teams.len() > MAX_TEAMS || teams.iter().any(|t| t.is_empty() || t.len() > 64) {
        return Err(ApiError::field(
            "teams",
            format!("at most {MAX_TEAMS} team names of 1 to 64 characters"),
        ));
    }
    for &q in &queues {
        state
            .db
            .queue(q)
            .await
            .map_err(|_| ApiError::field("queues", format!("no queue has id {q}")))?;
    }
    let subscription = Subscription { queues, teams };
    state.hub.set_subscription(socket_id, subscription.clone());
    let (fingerprint, board) = figures(state, &subscription).await?;
    state
        .hub
        .send_board(socket_id, fingerprint, &Arc::new(ServerEvent::Board(board)));
    Ok(())
}

async fn figures(state: &AppState, subscription: &Subscription) -> anyhow::Result<(u64, Board)> {
    let now = state.clock.now_ms();
    let mut board = Board {
        queues: Vec::new(),
        teams: Vec::new(),
        quality: None,
        at_ms: now,
    };
    board.queues = state
        .db
        .queue_figures(&subscription.queues, now.div_euclid(crate::quality::DAY_MS))
        .await?;
    for team in &subscription.teams {
        board.teams.push(state.db.team_figures(team).await?);
    }
    // Today's quality: one reading per node every few seconds, shared by
    // every board (see `quality::board`).
    let today = state.quality_today.get(&state.db, now).await?;
    board.quality = Some(today.board(&subscription.queues));
    // The fingerprint leaves out the time of reading, so unchanged figures
    // send nothing.
    let mut hasher = DefaultHasher::new();
    serde_json::to_string(&(&board.queues, &board.teams, &board.quality))?.hash(&mut hasher);
    Ok((hasher.finish(), board))
}

/// Bring every board on this node up to date (called every [`BOARD_INTERVAL`]).
pub async fn publish_boards(state: &AppState) -> anyhow::Result<()> {
    let boards = state.hub.boards();
    if boards.is_empty() {
        return Ok(());
    }
    // Boards watching the same things share one reading.
    let mut readings: HashMap<Subscription, (u64, Arc<ServerEvent>)> = HashMap::new();
    for (socket_id, subscription) in boards {
        if !readings.contains_key(&subscription) {
            let (fingerprint, board) = figures(state, &subscription).await?;
            readings.insert(
                subscription.clone(),
                (fingerprint, Arc::new(ServerEvent::Board(board))),
            );
        }
        let (fingerprint, event) = &readings[&subscription];
        state.hub.send_board(socket_id, *fingerprint, event);
    }
    Ok(())
}
