//! One Redis connection type for a single server and for a Redis Cluster.
//!
//! URL forms accepted by [`connect`] (and [`Target::parse`]):
//! - `redis://[user:pass@]host:port[/db]`: one server (also `rediss://`,
//!   `unix://`, `redis+unix://`: anything the redis crate accepts);
//! - `redis+cluster://[user:pass@]host1:port1[,host2:port2,...]`: a Redis
//!   Cluster, given one or more seed nodes (the rest are discovered);
//! - `redis://host1:port1,host2:port2,...`: a comma-separated list of nodes is
//!   a cluster too (credentials, if any, written once in front apply to all).
//!
//! A cluster never has a database number, so a `/db` suffix is ignored there.
//! Both kinds reconnect by themselves: a command fails while the server is
//! unreachable and later commands go through once it is back.

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use std::time::Duration;

/// Each attempt to open a connection gives up after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A command without an answer after this long fails instead of hanging.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a URL points: one server or the seed nodes of a cluster, each as a
/// plain `redis://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Single(String),
    Cluster(Vec<String>),
}

impl Target {
    pub fn parse(url: &str) -> anyhow::Result<Target> {
        let url = url.trim();
        let (scheme, rest, cluster) = if let Some(rest) = url.strip_prefix("redis+cluster://") {
            ("redis", rest, true)
        } else if let Some(rest) = url.strip_prefix("rediss+cluster://") {
            ("rediss", rest, true)
        } else if let Some((scheme, rest)) = url.split_once("://") {
            // Commas in the host part (not in a password) list cluster nodes.
            let hosts = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
            (scheme, rest, hosts.contains(','))
        } else {
            anyhow::bail!("not a Redis URL: {url:?}");
        };
        if !cluster {
            return Ok(Target::Single(url.to_string()));
        }
        // `user:pass@` (if any) applies to every node; a `/db` suffix does not.
        let (auth, hosts) = match rest.rsplit_once('@') {
            Some((auth, hosts)) => (format!("{auth}@"), hosts),
            None => (String::new(), rest),
        };
        let hosts = hosts.split(['/', '?']).next().unwrap_or_default();
        let nodes: Vec<String> = hosts
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(|h| format!("{scheme}://{auth}{h}"))
            .collect();
        anyhow::ensure!(!nodes.is_empty(), "no cluster nodes in Redis URL");
        Ok(Target::Cluster(nodes))
    }
}

/// A connection to one Redis server or to a Redis Cluster. Cheap to clone:
/// clones share the underlying multiplexed connection(s).
#[derive(Clone)]
pub enum RedisConn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl RedisConn {
    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisConn::Cluster(_))
    }
}

/// Open a connection for `url` (see the module docs for the forms).
pub async fn connect(url: &str) -> anyhow::Result<RedisConn> {
    connect_target(&Target::parse(url)?).await
}

pub async fn connect_target(target: &Target) -> anyhow::Result<RedisConn> {
    match target {
        Target::Single(url) => {
            let client = redis::Client::open(url.as_str())?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(CONNECT_TIMEOUT)
                .set_response_timeout(RESPONSE_TIMEOUT);
            let manager = ConnectionManager::new_with_config(client, config).await?;
            Ok(RedisConn::Single(manager))
        }
        Target::Cluster(nodes) => {
            let client = ClusterClientBuilder::new(nodes.clone())
                .connection_timeout(CONNECT_TIMEOUT)
                .response_timeout(RESPONSE_TIMEOUT)
                .build()?;
            Ok(RedisConn::Cluster(client.get_async_connection().await?))
        }
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Single(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Single(c) => c.req_packed_commands(cmd, offset, count),
            RedisConn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(c) => c.get_db(),
            RedisConn::Cluster(c) => c.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Target;

    #[test]
    fn parses_single_and_cluster_urls() {
        assert_eq!(
            Target::parse("redis://127.0.0.1:6379/0").unwrap(),
            Target::Single("redis://127.0.0.1:6379/0".into())
        );
        assert_eq!(
            Target::parse("redis+cluster://a:1,b:2").unwrap(),
            Target::Cluster(vec!["redis://a:1".into(), "redis://b:2".into()])
        );
        assert_eq!(
            Target::parse("redis://u:p@a:1,b:2/0").unwrap(),
            Target::Cluster(vec!["redis://u:p@a:1".into(), "redis://u:p@b:2".into()])
        );
        assert_eq!(
            Target::parse("redis+cluster://a:1").unwrap(),
            Target::Cluster(vec!["redis://a:1".into()])
        );
        assert_eq!(
            Target::parse("redis://u:p,w@a:1").unwrap(),
            Target::Single("redis://u:p,w@a:1".into())
        );
        assert!(Target::parse("nonsense").is_err());
    }
}
