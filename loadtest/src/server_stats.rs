//! The cost of a run, counted by the servers themselves: Redis commands
//! (INFO commandstats), database transactions (pg_stat_database) and the
//! nodes' resident memory (/proc/<pid>/status).

use sqlx::{Connection, Row};
use std::collections::BTreeMap;

async fn pg(url: &str) -> anyhow::Result<sqlx::AnyConnection> {
    sqlx::any::install_default_drivers();
    Ok(sqlx::AnyConnection::connect(url).await?)
}

pub async fn create_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let mut conn = pg(admin_url).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    Ok(())
}

pub async fn drop_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let mut conn = pg(admin_url).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    Ok(())
}

/// Committed plus rolled-back transactions of the URL's database so far.
/// PostgreSQL publishes backends' counters about once a second: read after a
/// quiet second for an exact figure.
pub async fn pg_transactions(url: &str) -> anyhow::Result<i64> {
    let mut conn = pg(url).await?;
    let row = sqlx::query(
        "SELECT CAST(xact_commit + xact_rollback AS BIGINT) AS n FROM pg_stat_database \
         WHERE datname = current_database()",
    )
    .fetch_one(&mut conn)
    .await?;
    Ok(row.try_get("n")?)
}

async fn redis_conn(url: &str) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    Ok(redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?)
}

/// One section of the Redis server's `INFO`.
pub async fn redis_info(url: &str, section: &str) -> anyhow::Result<String> {
    let mut conn = redis_conn(url).await?;
    Ok(redis::cmd("INFO")
        .arg(section)
        .query_async(&mut conn)
        .await?)
}

/// Calls per command since the Redis server started (`INFO commandstats`).
pub async fn redis_commandstats(url: &str) -> anyhow::Result<BTreeMap<String, u64>> {
    Ok(parse_commandstats(&redis_info(url, "commandstats").await?))
}

pub fn parse_commandstats(info: &str) -> BTreeMap<String, u64> {
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_string(), calls))
        })
        .collect()
}

/// What happened between two commandstats readings, without the harness's
/// own INFO calls.
pub fn commandstats_delta(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter(|(name, _)| name.as_str() != "info")
        .map(|(name, n)| {
            (
                name.clone(),
                n - before.get(name).copied().unwrap_or(0).min(*n),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

pub async fn delete_redis_prefix(url: &str, prefix: &str) -> anyhow::Result<()> {
    let mut conn = redis_conn(url).await?;
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("*{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            redis::cmd("UNLINK")
                .arg(&keys)
                .query_async::<()>(&mut conn)
                .await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// Resident memory of a process on this machine, in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commandstats_are_read_per_command_and_subtracted() {
        let before = parse_commandstats(
            "# Commandstats\r\ncmdstat_evalsha:calls=10,usec=50,usec_per_call=5.00\r\n\
             cmdstat_info:calls=3,usec=1\r\n",
        );
        let after = parse_commandstats(
            "# Commandstats\r\ncmdstat_evalsha:calls=25,usec=90,usec_per_call=3.60\r\n\
             cmdstat_publish:calls=4,usec=8\r\ncmdstat_info:calls=4,usec=1\r\n",
        );
        let delta = commandstats_delta(&before, &after);
        assert_eq!(delta.get("evalsha"), Some(&15));
        assert_eq!(delta.get("publish"), Some(&4));
        assert_eq!(delta.get("info"), None);
    }
}
