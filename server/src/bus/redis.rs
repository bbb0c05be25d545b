//! Redis pub/sub bus: every node publishes [`BusMessage`]s as JSON on the
//! channel `<prefix>:bus` and every node subscribes to it.
//!
//! Publishing goes through a [`RedisConn`] (one server or a cluster). The
//! subscription is one dedicated pub/sub connection held by a background
//! task. On a Redis Cluster a plain `PUBLISH` reaches the subscribers of
//! every node, so the task subscribes on one node and, whenever that
//! connection drops, reconnects (with backoff) to the next node of the list.
//! Messages published while a node is disconnected are lost to it: the bus is
//! fire-and-forget, like the sockets it feeds.

use super::{Bus, BusMessage, Claim, STREAM_LEN, STREAM_TRIM_EVERY, Since};
use crate::redis_conn::{self, RedisConn, Target};
use async_trait::async_trait;
use callcenter_proto::ws::ServerEvent;
use futures::StreamExt;
use redis::Script;
use std::sync::LazyLock;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How often an idle subscription checks that its connection is alive.
const PING_EVERY: Duration = Duration::from_secs(15);
/// How long to wait for a connection, a subscription or a ping.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

pub struct RedisBus {
    conn: RedisConn,
    channel: String,
    prefix: String,
    /// This node's name in the periodic work's lease and in its agents'
    /// connections (random per start).
    node: String,
    /// Whether this node has said it is alive before (see [`Bus::beat`]).
    beaten: std::sync::atomic::AtomicBool,
    subscriber: JoinHandle<()>,
}

impl RedisBus {
    /// Connect, subscribe, and return the bus with the receiver of every
    /// message published on the channel (by any node, this one included).
    /// Fails if Redis cannot be reached now; later drops are retried forever.
    pub async fn start(
        url: &str,
        prefix: String,
    ) -> anyhow::Result<(RedisBus, mpsc::UnboundedReceiver<BusMessage>)> {
        let target = Target::parse(url)?;
        let nodes = match &target {
            Target::Single(url) => vec![url.clone()],
            Target::Cluster(nodes) => nodes.clone(),
        };
        let channel = format!("{prefix}:bus");
        let conn = redis_conn::connect_target(&target).await?;
        let pubsub = subscribe(&nodes[0], &channel).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let subscriber = tokio::spawn(run_subscriber(nodes, channel.clone(), pubsub, tx));
        Ok((
            RedisBus {
                conn,
                channel,
                prefix,
                node: uuid::Uuid::new_v4().simple().to_string(),
                beaten: std::sync::atomic::AtomicBool::new(false),
                subscriber,
            },
            rx,
        ))
    }
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        self.subscriber.abort();
    }
}

#[async_trait]
impl Bus for RedisBus {
    async fn publish(&self, message: BusMessage) -> anyhow::Result<()> {
        let payload = serde_json::to_string(&message)?;
        let _: i64 = redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(payload)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    async fn deliver(&self, user_id: i64, event: ServerEvent) -> anyhow::Result<u64> {
        let seq: u64 = DELIVER
            .key(self.user_key(user_id, "seq"))
            .key(self.user_key(user_id, "log"))
            .arg(&self.channel)
            .arg(serde_json::to_string(&event)?)
            .arg(STREAM_LEN)
            .arg(STREAM_TTL_SECONDS)
            .arg(user_id)
            .arg(super::streams::stream_floor())
            .arg(STREAM_TRIM_EVERY)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(seq)
    }

    async fn since(&self, user_id: i64, after: u64) -> anyhow::Result<Since> {
        let reply: Vec<redis::Value> = SINCE
            .key(self.user_key(user_id, "seq"))
            .key(self.user_key(user_id, "log"))
            .arg(after)
            .invoke_async(&mut self.conn.clone())
            .await?;
        let mut items = reply.into_iter();
        if !matches!(items.next(), Some(redis::Value::Int(1))) {
            return Ok(Since::TooOld);
        }
        let mut events = Vec::new();
        for item in items {
            let text: String = redis::from_redis_value(&item)?;
            let (seq, json) = text
                .split_once(' ')
                .ok_or_else(|| anyhow::anyhow!("malformed stream entry"))?;
            events.push((seq.parse()?, serde_json::from_str(json)?));
        }
        Ok(Since::Events(events))
    }

    async fn epoch(&self) -> anyhow::Result<String> {
        let epoch: String = EPOCH
            .key(format!("{}:epoch", self.prefix))
            .arg(uuid::Uuid::new_v4().simple().to_string())
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(epoch)
    }

    async fn position(&self, user_id: i64) -> anyhow::Result<u64> {
        let seq: Option<u64> = redis::cmd("GET")
            .arg(self.user_key(user_id, "seq"))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(seq.unwrap_or(0))
    }

    async fn claim_request(&self, user_id: i64, request_id: &str) -> anyhow::Result<Claim> {
        // One command for a first claim (the common case); a repeat reads
        // the stored reply with a second.
        let key = self.request_key(user_id, request_id);
        let claimed: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg("")
            .arg("NX")
            .arg("EX")
            .arg(REPLIES_TTL_SECONDS)
            .query_async(&mut self.conn.clone())
            .await?;
        if claimed.is_some() {
            return Ok(Claim::New);
        }
        let stored: Option<String> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(match stored {
            Some(reply) if !reply.is_empty() => Claim::Done(reply),
            // Running, or expired between the two commands: the caller
            // claims again.
            _ => Claim::Running,
        })
    }

    async fn finish_request(
        &self,
        user_id: i64,
        request_id: &str,
        reply: &str,
    ) -> anyhow::Result<()> {
        let _: () = redis::cmd("SET")
            .arg(self.request_key(user_id, request_id))
            .arg(reply)
            .arg("EX")
            .arg(REPLIES_TTL_SECONDS)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    async fn lead(&self, term: Duration) -> anyhow::Result<bool> {
        let held: i64 = LEAD
            .key(self.lease_key())
            .arg(&self.node)
            .arg(term.as_millis().max(1) as u64)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(held == 1)
    }

    async fn step_down(&self) -> anyhow::Result<()> {
        let _: i64 = STEP_DOWN
            .key(self.lease_key())
            .arg(&self.node)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    fn node(&self) -> &str {
        &self.node
    }

    async fn beat(&self, term: Duration) -> anyhow::Result<bool> {
        // One command: set the word with its term and read the one before.
        let before: Option<String> = redis::cmd("SET")
            .arg(self.node_key(&self.node))
            .arg(1)
            .arg("PX")
            .arg(term.as_millis().max(1) as u64)
            .arg("GET")
            .query_async(&mut self.conn.clone())
            .await?;
        let first = !self.beaten.swap(true, std::sync::atomic::Ordering::Relaxed);
        Ok(first || before.is_some())
    }

    async fn alive(&self, nodes: &[String]) -> anyhow::Result<Vec<bool>> {
        if nodes.is_empty() {
            return Ok(Vec::new());
        }
        // The nodes' keys share one hash slot: one MGET on a cluster too.
        let words: Vec<Option<String>> = redis::cmd("MGET")
            .arg(nodes.iter().map(|n| self.node_key(n)).collect::<Vec<_>>())
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(words.iter().map(Option::is_some).collect())
    }
}

/// How long a user's recent events are kept for resuming after their last event.
const STREAM_TTL_SECONDS: u64 = 3600;
/// How long a command's reply is remembered for a repeat of its request id
/// (a console resends its unanswered commands when it reconnects, within
/// seconds). Each reply is its own key with its own lifetime, so the memory
/// held is bounded by this window's commands, however long a user stays
/// active.
const REPLIES_TTL_SECONDS: u64 = 600;

static DELIVER: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/stream_deliver.lua")));
static SINCE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/stream_since.lua")));
static EPOCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "local e = redis.call('GET', KEYS[1]) \
         if not e then e = ARGV[1]; redis.call('SET', KEYS[1], e) end \
         return e",
    )
});

/// Take the lease if nobody holds it, or renew it if this node does.
static LEAD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "local holder = redis.call('GET', KEYS[1]) \
         if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end \
         if holder then return 0 end \
         redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) \
         return 1",
    )
});
/// Give the lease up, only if this node holds it.
static STEP_DOWN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end \
         return 0",
    )
});

impl RedisBus {
    /// The lease on the deployment's periodic work (see [`Bus::lead`]).
    fn lease_key(&self) -> String {
        format!("{}:lead", self.prefix)
    }

    /// A node's word that it is alive (see [`Bus::beat`]); every node's in
    /// one hash slot.
    fn node_key(&self, node: &str) -> String {
        format!("{}:{{nodes}}:{node}", self.prefix)
    }

    /// A key of one user's stream state, hash-tagged so every script on a
    /// user touches one cluster slot.
    fn user_key(&self, user_id: i64, what: &str) -> String {
        format!("{}:{{u:{user_id}}}:{what}", self.prefix)
    }

    /// The reply slot of one console command: "" while it runs, then its
    /// reply.
    fn request_key(&self, user_id: i64, request_id: &str) -> String {
        format!("{}:{{u:{user_id}}}:req:{request_id}", self.prefix)
    }
}

async fn subscribe(url: &str, channel: &str) -> anyhow::Result<redis::aio::PubSub> {
    let client = redis::Client::open(url)?;
    let mut pubsub = tokio::time::timeout(IO_TIMEOUT, client.get_async_pubsub()).await??;
    tokio::time::timeout(IO_TIMEOUT, pubsub.subscribe(channel)).await??;
    Ok(pubsub)
}

/// Forward messages until the receiver is gone; reconnect when the
/// connection drops, trying the nodes in turn.
async fn run_subscriber(
    nodes: Vec<String>,
    channel: String,
    first: redis::aio::PubSub,
    tx: mpsc::UnboundedSender<BusMessage>,
) {
    let mut pubsub = Some(first);
    let mut node = 0;
    let mut backoff = BACKOFF_MIN;
    loop {
        let current = match pubsub.take() {
            Some(p) => p,
            None => match subscribe(&nodes[node], &channel).await {
                Ok(p) => {
                    tracing::info!(channel, node = %redact(&nodes[node]), "bus resubscribed");
                    p
                }
                Err(e) => {
                    tracing::warn!(
                        channel, node = %redact(&nodes[node]), error = %e,
                        retry_in_ms = backoff.as_millis() as u64,
                        "bus subscription failed"
                    );
                    node = (node + 1) % nodes.len();
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            },
        };
        backoff = BACKOFF_MIN;
        match forward(current, &tx).await {
            Ended::ReceiverGone => return,
            Ended::Dropped(why) => {
                tracing::warn!(channel, node = %redact(&nodes[node]), why, "bus connection lost; reconnecting");
                node = (node + 1) % nodes.len();
            }
        }
    }
}

enum Ended {
    ReceiverGone,
    Dropped(String),
}

async fn forward(pubsub: redis::aio::PubSub, tx: &mpsc::UnboundedSender<BusMessage>) -> Ended {
    let (mut sink, mut stream) = pubsub.split();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.reset();
    loop {
        tokio::select! {
            msg = stream.next() => {
                let Some(msg) = msg else {
                    return Ended::Dropped("stream ended".into());
                };
                let payload: Vec<u8> = match msg.get_payload() {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(error = %e, "bus message without a payload");
                        continue;
                    }
                };
                match serde_json::from_slice::<BusMessage>(&payload) {
                    Ok(m) => {
                        if tx.send(m).is_err() {
                            return Ended::ReceiverGone;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "undecodable bus message"),
                }
            }
            _ = ping.tick() => {
                if tx.is_closed() {
                    return Ended::ReceiverGone;
                }
                match tokio::time::timeout(IO_TIMEOUT, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Ended::Dropped(format!("ping failed: {e}")),
                    Err(_) => return Ended::Dropped("ping timed out".into()),
                }
            }
        }
    }
}

/// A node URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://***@{host}"),
        _ => url.to_string(),
    }
}
