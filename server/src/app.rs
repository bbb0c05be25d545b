//! Building the server from its configuration and running it until shutdown.

use crate::auth::{password, tokens};
use crate::bus::{Bus, BusMessage, LocalBus};
use crate::clock::{Clock, SystemClock};
use crate::config::ServeArgs;
use crate::desk::Desk;
use crate::metrics::Metrics;
use crate::routing::Routing;
use crate::routing::memory::MemoryRouting;
use crate::store::Db;
use crate::ws::hub::Hub;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use callcenter_proto::Role;
use callcenter_proto::ws::{CLOSE_GOING_AWAY, ServerEvent};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;

/// Largest HTTP request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Kernel send buffer per connection.
pub const SEND_BUFFER_BYTES: usize = 64 * 1024;
/// How often the deployment expires overdue offers and offers waiting
/// tickets (on the node holding the tick lease).
pub const TICK_INTERVAL: Duration = Duration::from_millis(250);
/// How long a node's lease on the periodic work lasts without renewal
/// (four ticks): the longest the deployment's timeouts wait when the node
/// running them dies.
pub const TICK_LEASE: Duration = Duration::from_secs(1);
/// How often the live queues are checked against the record.
pub const RECONCILE_INTERVAL: Duration = Duration::from_secs(30);

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub desk: Arc<Desk>,
    pub bus: Arc<dyn Bus>,
    pub hub: Arc<Hub>,
    pub tokens: Arc<tokens::TokenService>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub allowed_origins: Arc<Vec<String>>,
    pub shutdown: CancellationToken,
    /// Open live-channel connections, so shutdown can wait for each to hand
    /// its agent's work back.
    pub connections: tokio_util::task::TaskTracker,
    pub refresh_ttl_seconds: u64,
    pub live: LiveLimits,
    /// Today's quality figures for boards, read at most every few seconds.
    pub quality_today: Arc<crate::quality::board::TodayCache>,
}

/// Live-channel timings and limits.
#[derive(Clone, Copy, Debug)]
pub struct LiveLimits {
    pub ping: Duration,
    pub idle: Duration,
    pub commands_per_second: u32,
}

impl AppState {
    pub fn refresh_ttl_ms(&self) -> i64 {
        self.refresh_ttl_seconds as i64 * 1000
    }
}

/// Everything needed to run a node.
pub struct Config {
    pub database_url: String,
    pub serve: ServeArgs,
    pub clock: Arc<dyn Clock>,
}

impl Config {
    pub fn new(database_url: &str, serve: ServeArgs) -> Self {
        Config {
            database_url: database_url.to_string(),
            serve,
            clock: Arc::new(SystemClock),
        }
    }
}

/// Create the first administrator when there are no users yet. With no
/// password configured, one is generated and printed once (never logged).
pub async fn ensure_first_admin(
    db: &Db,
    serve: &ServeArgs,
    clock: &dyn Clock,
) -> anyhow::Result<()> {
    if db.count_users().await? > 0 {
        return Ok(());
    }
    let (pass, generated) = match &serve.admin_password {
        Some(p) => {
            password::validate(p).map_err(|m| anyhow::anyhow!("CALLCENTER_ADMIN_PASSWORD {m}"))?;
            (p.clone(), false)
        }
        None => (password::generate(), true),
    };
    let hash = password::hash_async(pass.clone()).await?;
    let username = &serve.admin_username;
    db.create_user(
        username,
        "Administrator",
        Role::Admin,
        &hash,
        clock.now_ms(),
    )
    .await?;
    if generated {
        println!(
            "created the first administrator: username {username:?}, one-time password {pass:?} (change it)"
        );
    } else {
        println!("created the first administrator {username:?} with the configured password");
    }
    Ok(())
}

async fn load_signing_key(db: &Db, serve: &ServeArgs, clock: &dyn Clock) -> anyhow::Result<String> {
    match &serve.jwt_private_key_file {
        Some(path) => std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!(
                "cannot read the JWT private key file {}: {e}",
                path.display()
            )
        }),
        None => Ok(db
            .signing_key(tokens::generate_private_key_pem, clock.now_ms())
            .await?),
    }
}

/// Start the node on `listener` and serve until `shutdown` completes; then
/// stop accepting, close sockets with a reason and hand this node's live
/// work back to the queues.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let clock = config.clock.clone();
    let serve = config.serve;
    let db = Db::connect_with_writers(&config.database_url, serve.db_writers.into()).await?;
    ensure_first_admin(&db, &serve, clock.as_ref()).await?;
    let key = load_signing_key(&db, &serve, clock.as_ref()).await?;
    let tokens = Arc::new(tokens::TokenService::new(
        &key,
        &serve.jwt_issuer,
        &serve.jwt_audience,
        serve.access_ttl_seconds,
        clock.clone(),
    )?);

    let (routing, bus, bus_rx): LiveState = match &serve.redis_url {
        Some(url) => connect_redis(url, &serve.redis_prefix).await?,
        None => {
            let (bus, rx) = LocalBus::new();
            (Arc::new(MemoryRouting::new()), Arc::new(bus), rx)
        }
    };

    let local = listener.local_addr()?;
    let mut allowed_origins = serve.allowed_origins.clone();
    allowed_origins.push(format!("http://{local}"));
    if local.ip().is_loopback() {
        allowed_origins.push(format!("http://localhost:{}", local.port()));
    }

    let metrics = Arc::new(Metrics::default());
    let hub = Arc::new(Hub::new());
    let desk = Arc::new(Desk {
        db: db.clone(),
        routing,
        bus: bus.clone(),
        clock: clock.clone(),
        metrics: metrics.clone(),
        due_index: crate::outbound::scheduler::connect(
            serve.redis_url.as_deref(),
            &serve.redis_prefix,
        )
        .await?,
        offered_in: Default::default(),
        missing_live: Default::default(),
        agent_gates: Default::default(),
        connections: Default::default(),
        connections_unrecorded: Default::default(),
    });
    let stop = CancellationToken::new();
    let state = AppState {
        db: db.clone(),
        desk: desk.clone(),
        bus,
        hub: hub.clone(),
        tokens,
        clock,
        metrics,
        allowed_origins: Arc::new(allowed_origins),
        shutdown: stop.clone(),
        connections: tokio_util::task::TaskTracker::new(),
        refresh_ttl_seconds: serve.refresh_ttl_seconds,
        live: LiveLimits {
            ping: Duration::from_secs(serve.ws_ping_seconds.max(1)),
            idle: Duration::from_secs(serve.ws_idle_seconds.max(2)),
            commands_per_second: serve.ws_commands_per_second.max(1),
        },
        quality_today: Arc::default(),
    };

    let queued = desk.reconcile().await?;
    desk.rebuild_due_index(true).await?;
    tracing::info!(queued, "live queues rebuilt from the database");
    // Alive before the first console connects here (the node running the
    // periodic work looks for agents connected to silent nodes).
    let node_silence = Duration::from_secs(serve.node_silence_seconds.max(1));
    state.bus.beat(node_silence).await?;
    let background = spawn_background(state.clone(), bus_rx, node_silence);
    let webhooks = crate::compensation::outbox::start(db.clone(), state.clock.clone(), &serve)?;
    let surveys = crate::quality::surveys::start(db.clone(), state.clock.clone(), &serve, local)?;
    let rollups = crate::quality::scorecards::start(db.clone());

    println!("listening on http://{local}");
    let app = router(state.clone());
    let stopping = stop.clone();
    // Console frames are small and latency matters: no Nagle delay. A modest
    // kernel send buffer per connection keeps a client that stops reading
    // from hiding behind megabytes of buffer before its own buffer fills
    // and the hub closes it (see `ws::hub`).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
        let _ = socket2::SockRef::from(&*tcp).set_send_buffer_size(SEND_BUFFER_BYTES);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            stopping.cancel();
        })
        .await?;

    // Sockets were told to close (1001) by the cancelled token; make sure
    // every agent connected here is taken out of routing even if their socket
    // task did not get to it.
    stop.cancel();
    hub.close_all(CLOSE_GOING_AWAY, "server shutting down");
    state.connections.close();
    if tokio::time::timeout(Duration::from_secs(10), state.connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish closing");
    }
    for agent in hub.agents() {
        desk.agent_disconnected(agent, || false).await;
    }
    background.abort();
    // Another node takes the periodic work over at its next tick.
    if let Err(e) = state.bus.step_down().await {
        tracing::warn!(error = %e, "could not hand the tick lease over");
    }
    webhooks.inspect(tokio::task::JoinHandle::abort);
    surveys.abort();
    rollups.abort();
    db.close().await;
    Ok(())
}

type LiveState = (
    Arc<dyn Routing>,
    Arc<dyn Bus>,
    mpsc::UnboundedReceiver<BusMessage>,
);

async fn connect_redis(url: &str, prefix: &str) -> anyhow::Result<LiveState> {
    let conn = crate::redis_conn::connect(url).await?;
    let routing = crate::routing::redis::RedisRouting::new(conn, prefix.to_string());
    let (bus, rx) = crate::bus::redis::RedisBus::start(url, prefix.to_string()).await?;
    Ok((Arc::new(routing), Arc::new(bus), rx))
}

fn spawn_background(
    state: AppState,
    mut bus_rx: mpsc::UnboundedReceiver<BusMessage>,
    node_silence: Duration,
) -> tokio::task::JoinHandle<()> {
    let hub = state.hub.clone();
    // This node's directory changes go out on the bus (see `store::cache`).
    let (announce_tx, mut announce_rx) = mpsc::unbounded_channel();
    state.db.cache().announce_to(announce_tx);
    tokio::spawn(async move {
        let fanout = async {
            while let Some(message) = bus_rx.recv().await {
                match &message {
                    BusMessage::Invalidate { scope } => state.db.cache().drop_local(*scope),
                    BusMessage::Revoke { .. } => state
                        .db
                        .cache()
                        .drop_local(crate::store::cache::Scope::Sessions),
                    BusMessage::Deliver { .. } => {}
                }
                // An offer shown to an agent connected here is answered
                // here: its queue is remembered (before the agent can see
                // it), so that the answer need not read the ticket to find
                // it, whichever node made the offer.
                if let BusMessage::Deliver { to, event, .. } = &message
                    && matches!(event.as_ref(), ServerEvent::Offer(_))
                    && hub.reaches(to)
                {
                    state.desk.offered_in.shown(event);
                }
                hub.dispatch(message);
            }
        };
        let announcer = async {
            while let Some(scope) = announce_rx.recv().await {
                if let Err(e) = state.bus.publish(BusMessage::Invalidate { scope }).await {
                    tracing::warn!(error = %e, "could not announce a directory change");
                }
            }
        };
        let boards = async {
            let mut tick = tokio::time::interval(crate::ws::BOARD_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = crate::ws::publish_boards(&state).await {
                    tracing::warn!(error = %e, "board update failed");
                }
            }
        };
        let ticker = async {
            let mut tick = tokio::time::interval(TICK_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut reconcile = tokio::time::interval(RECONCILE_INTERVAL);
            reconcile.tick().await;
            let mut epoch = None;
            // Until when this node checks, each tick, that the record still
            // holds its consoles (set by a lapse, see below).
            let mut check_until: Option<tokio::time::Instant> = None;
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if let Err(e) = rebuild_if_lost(&state, &mut epoch).await {
                            tracing::warn!(error = %e, "live state check failed");
                        }
                        // Every node says it is alive each tick; one whose
                        // word lapsed records its consoles' connections again
                        // (another node may have marked its agents absent),
                        // and checks them every tick for two terms more: the
                        // node running the periodic work may have read this
                        // node's name as silent just before it came back,
                        // and forget its consoles just after.
                        let lapsed = match state.bus.beat(node_silence).await {
                            Ok(alive) => !alive,
                            Err(e) => {
                                tracing::warn!(error = %e, "could not say this node is alive");
                                false
                            }
                        };
                        if lapsed {
                            tracing::warn!("this node was silent past its term; recording its connections again");
                            check_until = Some(tokio::time::Instant::now() + 2 * node_silence);
                        } else if check_until.is_some_and(|until| tokio::time::Instant::now() >= until) {
                            check_until = None;
                        }
                        // A connection the database refused to record is
                        // tried again each tick too.
                        let unrecorded = state.desk.take_unrecorded_connections();
                        if check_until.is_some() || unrecorded {
                            state.desk.reclaim_connections().await;
                        }
                        if lapsed {
                            state.metrics.node_lapses.inc();
                        }
                        // One node at a time runs the periodic work (it
                        // reads the record for due work on every tick); if
                        // the lease cannot be read, ticking anyway is safe
                        // (each expiry and move happens once however many
                        // nodes try it), only costlier.
                        let leading = state.bus.lead(TICK_LEASE).await.unwrap_or_else(|e| {
                            tracing::warn!(error = %e, "could not renew the tick lease");
                            true
                        });
                        if leading {
                            state.metrics.ticks.inc();
                            if let Err(e) = state.desk.tick().await {
                                tracing::warn!(error = %e, "routing tick failed");
                            }
                        }
                    },
                    _ = reconcile.tick() => if let Err(e) = state.desk.reconcile_quiet().await {
                        tracing::warn!(error = %e, "reconcile failed");
                    },
                }
            }
        };
        tokio::join!(fanout, announcer, ticker, boards);
    })
}

/// When the shared live state was lost (its epoch changed), rebuild it: the
/// waiting tickets from the record, and the readiness of the agents
/// connected to this node.
async fn rebuild_if_lost(state: &AppState, seen: &mut Option<String>) -> anyhow::Result<()> {
    let epoch = state.bus.epoch().await?;
    if seen.as_ref() == Some(&epoch) {
        return Ok(());
    }
    let lost = seen.is_some();
    *seen = Some(epoch);
    if lost {
        let queued = state.desk.reconcile().await?;
        tracing::warn!(
            queued,
            "the live state was lost; rebuilt it from the database"
        );
        for agent in state.hub.agents() {
            if state.db.agent_routing(agent).await?.state == callcenter_proto::AgentState::Available
            {
                state
                    .desk
                    .set_state(agent, callcenter_proto::AgentState::Available, None)
                    .await?;
            }
        }
    }
    Ok(())
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(crate::http::router())
        .route("/ws", axum::routing::get(crate::ws::upgrade))
        .fallback(console)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), count_status))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn count_status(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    state.metrics.record_status(response.status().as_u16());
    response
}

async fn console(request: Request) -> Response {
    match callcenter_console::asset(request.uri().path()) {
        Some(asset) => {
            let mut response = Response::new(Body::from(asset.body));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            );
            response
        }
        None => crate::error::ApiError::NotFound("page").into_response(),
    }
    .into_response()
}
