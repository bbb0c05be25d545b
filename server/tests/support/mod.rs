//! Test support: start a real server on port 0 against a fresh database
//! (SQLite file or a new PostgreSQL database) and isolated Redis keys, and
//! talk to it over real HTTP and real WebSockets.
//!
//! Suites that need PostgreSQL or Redis skip (with a message) when the
//! service is unreachable, unless `REQUIRE_SERVICES=1`, which makes a missing
//! service a failure.

#![allow(dead_code)]

pub mod ws;

use callcenter::app::{Config, run};
use callcenter::clock::ManualClock;
use callcenter::config::ServeArgs;
use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::oneshot;

pub const ADMIN_PASSWORD: &str = "correct horse battery staple";
pub const AGENT_PASSWORD: &str = "agent password 123";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    Sqlite,
    Postgres,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Live {
    Memory,
    Redis,
}

pub fn require_services() -> bool {
    std::env::var("REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

pub fn postgres_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Skip (or, with REQUIRE_SERVICES=1, fail) when a service is missing.
fn unavailable(what: &str, error: impl std::fmt::Display) -> Option<String> {
    if require_services() {
        panic!("{what} is required (REQUIRE_SERVICES=1) but unreachable: {error}");
    }
    eprintln!(
        "SKIPPED: {what} unreachable ({error}); set REQUIRE_SERVICES=1 to make this a failure"
    );
    None
}

fn unique(prefix: &str) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "{prefix}_{secs}_{}",
        uuid::Uuid::new_v4().simple().to_string().split_at(12).0
    )
}

/// A fresh database URL for one test, or None when PostgreSQL is missing.
pub async fn fresh_database(storage: Storage) -> Option<String> {
    match storage {
        Storage::Sqlite => {
            remove_stale_sqlite_dirs();
            let dir = std::env::temp_dir().join(unique("cc_test"));
            std::fs::create_dir_all(&dir).expect("temp dir");
            Some(format!("sqlite://{}/callcenter.db", dir.display()))
        }
        Storage::Postgres => {
            use sqlx::Connection;
            sqlx::any::install_default_drivers();
            let admin_url = postgres_url();
            let mut conn = match sqlx::AnyConnection::connect(&admin_url).await {
                Ok(c) => c,
                Err(e) => return unavailable("PostgreSQL", e),
            };
            drop_stale_databases(&mut conn).await;
            let name = unique("cct");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .expect("create test database");
            let base = admin_url
                .rsplit_once('/')
                .map(|(b, _)| b)
                .unwrap_or(&admin_url);
            Some(format!("{base}/{name}"))
        }
    }
}

/// Whether a test resource named `<kind>_<unix seconds>_<random>` was
/// made more than two hours ago (by an earlier run: none lasts that long).
fn stale(name: &str) -> bool {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    name.rsplit('_')
        .nth(1)
        .and_then(|s| s.parse::<u64>().ok())
        .is_some_and(|made| now.saturating_sub(made) > 7200)
}

/// The SQLite files of earlier runs' tests (`cc_test_…` in the temporary
/// directory), removed once per test process.
fn remove_stale_sqlite_dirs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("cc_test_") && stale(&name) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    });
}

/// The Redis keys of earlier runs' tests (prefix `cct_…`; a node's live
/// state lives as long as Redis does), removed once per test process.
async fn remove_stale_redis_keys(conn: &mut redis::aio::MultiplexedConnection) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    let mut first = false;
    ONCE.call_once(|| first = true);
    if !first {
        return;
    }
    let mut cursor: u64 = 0;
    loop {
        let Ok((next, keys)): Result<(u64, Vec<String>), _> = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg("cct_*")
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut *conn)
            .await
        else {
            return;
        };
        let old: Vec<&String> = keys
            .iter()
            .filter(|k| k.split(':').next().is_some_and(stale))
            .collect();
        if !old.is_empty() {
            let _: Result<i64, _> = redis::cmd("UNLINK").arg(&old).query_async(&mut *conn).await;
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}

/// Test databases are named cct_<unix seconds>_<random>; drop those older
/// than two hours, left by earlier runs.
async fn drop_stale_databases(conn: &mut sqlx::AnyConnection) {
    use sqlx::Row;
    static ONCE: std::sync::Once = std::sync::Once::new();
    let mut first = false;
    ONCE.call_once(|| first = true);
    if !first {
        return;
    }
    let Ok(rows) = sqlx::query("SELECT datname FROM pg_database WHERE datname LIKE 'cct_%'")
        .fetch_all(&mut *conn)
        .await
    else {
        return;
    };
    for row in rows {
        let name: String = row.try_get("datname").unwrap_or_default();
        if stale(&name) {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut *conn)
                .await;
        }
    }
}

/// A reachable Redis URL, or None (skip) when Redis is missing.
pub async fn fresh_redis() -> Option<String> {
    let url = redis_url();
    let client = match redis::Client::open(url.as_str()) {
        Ok(c) => c,
        Err(e) => return unavailable("Redis", e),
    };
    match client.get_multiplexed_async_connection().await {
        Ok(mut conn) => match redis::cmd("PING").query_async::<String>(&mut conn).await {
            Ok(_) => {
                remove_stale_redis_keys(&mut conn).await;
                Some(url)
            }
            Err(e) => unavailable("Redis", e),
        },
        Err(e) => unavailable("Redis", e),
    }
}

/// A server node started for a test.
pub struct TestApp {
    pub base: String,
    pub addr: std::net::SocketAddr,
    pub http: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub database_url: String,
    pub redis: Option<(String, String)>,
    pub admin_token: String,
    pub tweak: Option<fn(&mut ServeArgs)>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// The node's own runtime, when it may crash (see [`TestApp::crash`]).
    runtime: Option<tokio::runtime::Runtime>,
}

pub struct Options {
    pub storage: Storage,
    pub live: Live,
    /// Join an existing deployment (database + Redis prefix) as another node.
    pub join: Option<(String, Option<(String, String)>)>,
    pub clock: Option<Arc<ManualClock>>,
    pub allowed_origins: Vec<String>,
    /// Adjust the node's options (timings, limits) before it starts.
    pub tweak: Option<fn(&mut ServeArgs)>,
    /// Compensation webhook receiver: (URL, HMAC secret).
    pub webhook: Option<(String, String)>,
    /// Run the node on a runtime of its own, so that the test can stop it
    /// the way a killed process stops ([`TestApp::crash`]).
    pub may_crash: bool,
}

impl Options {
    pub fn new(storage: Storage, live: Live) -> Self {
        Options {
            storage,
            live,
            join: None,
            clock: None,
            allowed_origins: Vec::new(),
            tweak: None,
            webhook: None,
            may_crash: false,
        }
    }
}

/// Start a node on a fresh database; None when a needed service is missing.
pub async fn spawn_app(storage: Storage, live: Live) -> Option<TestApp> {
    spawn_with(Options::new(storage, live)).await
}

pub async fn spawn_with(options: Options) -> Option<TestApp> {
    if std::env::var("RUST_LOG").is_ok() {
        let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    }
    let (database_url, redis) = match options.join {
        Some(joined) => joined,
        None => {
            let database_url = fresh_database(options.storage).await?;
            let redis = match options.live {
                Live::Memory => None,
                Live::Redis => Some((fresh_redis().await?, unique("cct"))),
            };
            (database_url, redis)
        }
    };
    let clock = options
        .clock
        .unwrap_or_else(|| Arc::new(ManualClock::starting_now()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    let mut serve = ServeArgs {
        listen: addr,
        redis_url: redis.as_ref().map(|(u, _)| u.clone()),
        redis_prefix: redis
            .as_ref()
            .map(|(_, p)| p.clone())
            .unwrap_or_else(|| "cc".into()),
        admin_password: Some(ADMIN_PASSWORD.into()),
        allowed_origins: options.allowed_origins,
        ..ServeArgs::default()
    };
    if let Some((url, secret)) = options.webhook {
        serve.webhook_url = Some(url);
        serve.webhook_secret = Some(secret);
    }
    if let Some(tweak) = options.tweak {
        tweak(&mut serve);
    }
    let mut config = Config::new(&database_url, serve);
    config.clock = clock.clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = async move {
        // Registered with the runtime the node runs on.
        let listener = tokio::net::TcpListener::from_std(listener)?;
        run(listener, config, async {
            let _ = stopped.await;
        })
        .await
    };
    let (task, runtime) = if options.may_crash {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the node");
        (runtime.spawn(server), Some(runtime))
    } else {
        (tokio::spawn(server), None)
    };
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    // Ready when /readyz answers 200.
    let mut ready = false;
    for _ in 0..200 {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await
            && r.status() == StatusCode::OK
        {
            ready = true;
            break;
        }
        if task.is_finished() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    if !ready {
        let result = task.await;
        panic!("the server did not become ready: {result:?}");
    }
    let mut app = TestApp {
        base,
        addr,
        http,
        clock,
        database_url,
        redis,
        admin_token: String::new(),
        tweak: options.tweak,
        stop: Some(stop),
        task: Some(task),
        runtime,
    };
    app.admin_token = app.login("admin", ADMIN_PASSWORD).await["access_token"]
        .as_str()
        .expect("admin token")
        .to_string();
    Some(app)
}

/// A JSON response: status, headers and body.
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_value(self.body.clone()).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

impl TestApp {
    /// Join this app's deployment with another node (same database and
    /// Redis, same clock and tweak); after [`TestApp::crash`], a restart.
    pub async fn another_node(&self) -> TestApp {
        let mut options = Options::new(Storage::Sqlite, Live::Memory);
        options.join = Some((self.database_url.clone(), self.redis.clone()));
        options.clock = Some(self.clock.clone());
        options.tweak = self.tweak;
        spawn_with(options).await.expect("another node")
    }

    /// A connection of its own to the node's database, as an operator's
    /// (or an intruder's) would be: on SQLite it waits for the node's write
    /// lock rather than fail.
    pub async fn database(&self) -> sqlx::AnyConnection {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut db = sqlx::AnyConnection::connect(&self.database_url)
            .await
            .expect("connect to the database");
        if !self.database_url.starts_with("postgres") {
            sqlx::query("PRAGMA busy_timeout = 5000")
                .execute(&mut db)
                .await
                .expect("busy timeout");
        }
        db
    }

    /// Another session holding a ticket's row in an open transaction
    /// (`SELECT … FOR UPDATE`, PostgreSQL), as a long transaction elsewhere
    /// would: work that needs the row waits until [`HeldRow::let_go`].
    pub async fn hold_ticket_row(&self, ticket_id: i64) -> HeldRow {
        let mut session = self.database().await;
        sqlx::query("BEGIN")
            .execute(&mut session)
            .await
            .expect("begin");
        sqlx::query("SELECT id FROM tickets WHERE id = $1 FOR UPDATE")
            .bind(ticket_id)
            .execute(&mut session)
            .await
            .expect("lock the ticket's row");
        HeldRow { session }
    }

    /// Until a session of the node's PostgreSQL database waits for a lock
    /// (another session holds a row the node's work needs).
    pub async fn until_a_session_waits_for_a_lock(&self) {
        let mut db = self.database().await;
        for _ in 0..500 {
            let waiting: i64 = sqlx::Row::get(
                &sqlx::query(
                    "SELECT COUNT(*) AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                     WHERE NOT l.granted AND a.datname = current_database()",
                )
                .fetch_one(&mut db)
                .await
                .expect("read pg_locks"),
                "n",
            );
            if waiting > 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("no session waited for a lock");
    }

    /// A counter or gauge of the node's `/metrics` (no labels).
    pub async fn metric(&self, name: &str) -> u64 {
        let metrics = self.send(self.http.get(self.url("/metrics"))).await;
        let text = metrics.body.as_str().expect("metrics text");
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("request");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.send(self.http.get(self.url(path)).bearer_auth(token))
            .await
    }

    pub async fn post(&self, path: &str, token: &str, body: &impl Serialize) -> Reply {
        self.send(self.http.post(self.url(path)).bearer_auth(token).json(body))
            .await
    }

    pub async fn put(&self, path: &str, token: &str, body: &impl Serialize) -> Reply {
        self.send(self.http.put(self.url(path)).bearer_auth(token).json(body))
            .await
    }

    pub async fn patch(&self, path: &str, token: &str, body: &impl Serialize) -> Reply {
        self.send(
            self.http
                .patch(self.url(path))
                .bearer_auth(token)
                .json(body),
        )
        .await
    }

    pub async fn login(&self, username: &str, password: &str) -> Value {
        let reply = self
            .send(
                self.http
                    .post(self.url("/api/auth/login"))
                    .json(&json!({ "username": username, "password": password })),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "login of {username}: {}",
            reply.body
        );
        reply.body
    }

    /// Create a user with a role and log them in; returns (user id, access token).
    pub async fn user(&self, username: &str, role: &str) -> (i64, String) {
        let created = self
            .post(
                "/api/admin/users",
                &self.admin_token,
                &json!({ "username": username, "role": role, "password": AGENT_PASSWORD }),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let id = created.body["id"].as_i64().expect("id");
        let token = self.login(username, AGENT_PASSWORD).await["access_token"]
            .as_str()
            .expect("token")
            .to_string();
        (id, token)
    }

    /// An agent with skills (name, level) and inbound capacity.
    pub async fn agent(
        &self,
        username: &str,
        skills: &[(&str, u8)],
        capacity: u32,
    ) -> (i64, String) {
        let (id, token) = self.user(username, "agent").await;
        let skills: Vec<Value> = skills
            .iter()
            .map(|(s, l)| json!({ "skill": s, "level": l }))
            .collect();
        let profile = self
            .put(
                &format!("/api/admin/agents/{id}"),
                &self.admin_token,
                &json!({ "skills": skills, "teams": ["care"], "capacity_inbound": capacity, "capacity_outbound": 1 }),
            )
            .await;
        assert_eq!(profile.status, StatusCode::OK, "{}", profile.body);
        (id, token)
    }

    /// A queue requiring skills, and a category routed to it; returns (queue id, category id).
    pub async fn queue(
        &self,
        name: &str,
        skills: &[(&str, u8)],
        offer_timeout_seconds: u32,
    ) -> (i64, i64) {
        let skills: Vec<Value> = skills
            .iter()
            .map(|(s, l)| json!({ "skill": s, "level": l }))
            .collect();
        let queue = self
            .post(
                "/api/admin/queues",
                &self.admin_token,
                &json!({ "name": name, "required_skills": skills, "service_level_seconds": 60,
                         "offer_timeout_seconds": offer_timeout_seconds }),
            )
            .await;
        assert_eq!(queue.status, StatusCode::CREATED, "{}", queue.body);
        let queue_id = queue.body["id"].as_i64().expect("queue id");
        let category = self
            .post(
                "/api/admin/categories",
                &self.admin_token,
                &json!({ "name": format!("{name} problems"), "queue_id": queue_id }),
            )
            .await;
        assert_eq!(category.status, StatusCode::CREATED, "{}", category.body);
        (queue_id, category.body["id"].as_i64().expect("category id"))
    }

    pub async fn customer(&self, external_id: &str) -> i64 {
        let reply = self
            .post(
                "/api/customers",
                &self.admin_token,
                &json!({ "external_id": external_id, "name": "Anna Petrova", "tier": "gold",
                         "value_minor": 120000, "timezone": "Europe/Moscow" }),
            )
            .await;
        assert!(reply.status.is_success(), "{}", reply.body);
        reply.body["id"].as_i64().expect("customer id")
    }

    /// File a complaint with an idempotency key; returns the reply.
    pub async fn complain(
        &self,
        token: &str,
        key: &str,
        customer_id: i64,
        category_id: i64,
        text: &str,
    ) -> Reply {
        self.send(
            self.http
                .post(self.url("/api/complaints"))
                .bearer_auth(token)
                .header("Idempotency-Key", key)
                .json(
                    &json!({ "customer_id": customer_id, "category_id": category_id,
                               "description": text, "channel": "phone" }),
                ),
        )
        .await
    }

    /// The steps of a ticket's history, oldest first, as an administrator
    /// reads them.
    pub async fn history_steps(&self, ticket_id: i64) -> Vec<String> {
        let reply = self
            .get(
                &format!("/api/tickets/{ticket_id}/history"),
                &self.admin_token,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let history: callcenter_proto::http::TicketHistory = reply.json();
        history.events.into_iter().map(|e| e.kind).collect()
    }

    /// Connect a console over the live channel and say hello.
    pub async fn socket(&self, token: &str) -> ws::Socket {
        ws::Socket::connect(&self.ws_url(), token).await
    }

    /// Stop the node and wait for it to finish its shutdown.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server run");
        }
    }

    /// Stop the node the way a killed process stops (needs
    /// [`Options::may_crash`]): its runtime goes away with every task where
    /// it stands, so nothing of its shutdown runs; its sockets and database
    /// connections close.
    pub fn crash(&mut self) {
        let runtime = self.runtime.take().expect("a node started with may_crash");
        runtime.shutdown_background();
        // Never told to stop: its shutdown must not run, not even half.
        std::mem::forget(self.stop.take());
        self.task.take();
    }
}

/// A node held stuck by [`TestApp::freeze`]; dropping it lets the node go on.
pub struct Frozen(Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>);

impl Drop for Frozen {
    fn drop(&mut self) {
        let (thawed, wake) = &*self.0;
        *thawed.lock().unwrap_or_else(|p| p.into_inner()) = true;
        wake.notify_all();
    }
}

impl TestApp {
    /// Hold the node stuck (needs [`Options::may_crash`]): each of its
    /// runtime's workers is kept busy, so it answers nothing, says nothing
    /// and notices nothing until the returned guard is dropped.
    pub fn freeze(&self) -> Frozen {
        let runtime = self
            .runtime
            .as_ref()
            .expect("a node started with may_crash");
        let frozen = Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        for _ in 0..runtime.metrics().num_workers() {
            let frozen = frozen.clone();
            runtime.spawn(async move {
                let (thawed, wake) = &*frozen;
                let mut thawed = thawed.lock().unwrap_or_else(|p| p.into_inner());
                while !*thawed {
                    thawed = wake.wait(thawed).unwrap_or_else(|p| p.into_inner());
                }
            });
        }
        Frozen(frozen)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // A runtime may not be dropped where the test awaits.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Run a story on every storage × live-state combination. Each test is named
/// `<story>::<combination>`, e.g. `first_ticket::postgres_redis`.
#[macro_export]
macro_rules! on_every_backend {
    (tweak = $tweak:ident; $($story:ident),* $(,)?) => {
        $(
            mod $story {
                use $crate::support::{Live, Options, Storage, spawn_with};

                async fn start(storage: Storage, live: Live) -> Option<$crate::support::TestApp> {
                    let mut options = Options::new(storage, live);
                    options.tweak = Some(super::$tweak);
                    spawn_with(options).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite_memory() {
                    if let Some(app) = start(Storage::Sqlite, Live::Memory).await { super::$story(app).await }
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres_memory() {
                    if let Some(app) = start(Storage::Postgres, Live::Memory).await { super::$story(app).await }
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite_redis() {
                    if let Some(app) = start(Storage::Sqlite, Live::Redis).await { super::$story(app).await }
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres_redis() {
                    if let Some(app) = start(Storage::Postgres, Live::Redis).await { super::$story(app).await }
                }
            }
        )*
    };
    ($($story:ident),* $(,)?) => {
        $(
            mod $story {
                use $crate::support::{Live, Storage, spawn_app};

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite_memory() {
                    if let Some(app) = spawn_app(Storage::Sqlite, Live::Memory).await { super::$story(app).await }
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres_memory() {
                    if let Some(app) = spawn_app(Storage::Postgres, Live::Memory).await { super::$story(app).await }
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite_redis() {
                    if let Some(app) = spawn_app(Storage::Sqlite, Live::Redis).await { super::$story(app).await }
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres_redis() {
                    if let Some(app) = spawn_app(Storage::Postgres, Live::Redis).await { super::$story(app).await }
                }
            }
        )*
    };
}

/// A ticket's row held by another session ([`TestApp::hold_ticket_row`]).
pub struct HeldRow {
    session: sqlx::AnyConnection,
}

impl HeldRow {
    /// End the other session's transaction: what waited for the row goes on.
    pub async fn let_go(mut self) {
        use sqlx::Connection;
        sqlx::query("ROLLBACK")
            .execute(&mut self.session)
            .await
            .expect("rollback");
        self.session.close().await.expect("close");
    }
}
