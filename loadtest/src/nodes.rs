//! Local server nodes: child processes of this binary (`loadtest node …`), so
//! that each node's memory can be read from /proc and the harness's own
//! clients do not share the server's runtime.

use crate::cli::{LoadArgs, NodeArgs};
use anyhow::{Context, bail};
use callcenter::app::{Config, run};
use callcenter::config::{LogFormat, ServeArgs};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

/// Run one node until stdin closes (the harness ended) or Ctrl-C.
pub async fn serve(args: NodeArgs) -> anyhow::Result<()> {
    if std::env::var("RUST_LOG").is_err() {
        // SAFETY: set before any other thread reads the environment.
        unsafe { std::env::set_var("RUST_LOG", "warn") };
    }
    callcenter::telemetry::init(LogFormat::Text);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let serve = ServeArgs {
        listen: listener.local_addr()?,
        redis_url: args.redis_url,
        redis_prefix: args.redis_prefix,
        admin_password: Some(args.admin_password),
        db_writers: args.db_writers,
        ..ServeArgs::default()
    };
    let shutdown = async {
        let mut stdin = tokio::io::stdin();
        let mut sink = [0u8; 64];
        tokio::select! {
            _ = async { while stdin.read(&mut sink).await.is_ok_and(|n| n > 0) {} } => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    run(listener, Config::new(&args.database_url, serve), shutdown).await
}

/// What the harness started, and what to clean up.
pub struct LocalNodes {
    pub urls: Vec<String>,
    pub pids: Vec<u32>,
    pub database_url: String,
    pub redis: Option<(String, String)>,
    pub admin_password: String,
    children: Vec<Child>,
    temp_dir: Option<PathBuf>,
    fresh_database: Option<(String, String)>,
    keep_database: bool,
}

pub fn unique(prefix: &str) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}_{secs}_{}", &rand[..8])
}

impl LocalNodes {
    pub async fn start(args: &LoadArgs) -> anyhow::Result<LocalNodes> {
        if args.spawn_nodes == 0 {
            bail!("--spawn-nodes must be at least 1");
        }
        if args.spawn_nodes > 1 && args.redis_url.is_none() {
            bail!("several nodes share their live state through Redis: give --redis-url");
        }
        let mut nodes = LocalNodes {
            urls: Vec::new(),
            pids: Vec::new(),
            database_url: String::new(),
            redis: None,
            admin_password: format!("lt-{}", uuid::Uuid::new_v4().simple()),
            children: Vec::new(),
            temp_dir: None,
            fresh_database: None,
            keep_database: args.keep_database,
        };
        nodes.database_url = match &args.database_url {
            None => {
                if args.spawn_nodes > 1 {
                    bail!("several nodes share one database: give --database-url postgres://…");
                }
                let dir = std::env::temp_dir().join(unique("loadtest"));
                std::fs::create_dir_all(&dir)?;
                let url = format!("sqlite://{}/callcenter.db", dir.display());
                nodes.temp_dir = Some(dir);
                url
            }
            Some(url) if url.starts_with("postgres") => {
                let name = unique("lt");
                crate::server_stats::create_database(url, &name).await?;
                let base = url.rsplit_once('/').map(|(b, _)| b).unwrap_or(url);
                nodes.fresh_database = Some((url.clone(), name.clone()));
                format!("{base}/{name}")
            }
            Some(url) => url.clone(),
        };
        nodes.redis = args.redis_url.as_ref().map(|u| (u.clone(), unique("lt")));
        let exe = std::env::current_exe().context("the harness's own executable")?;
        for i in 0..args.spawn_nodes {
            let mut cmd = Command::new(&exe);
            cmd.arg("node")
                .arg("--database-url")
                .arg(&nodes.database_url)
                .env("LOADTEST_NODE_ADMIN_PASSWORD", &nodes.admin_password)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true);
            if let Some((url, prefix)) = &nodes.redis {
                cmd.arg("--redis-url")
                    .arg(url)
                    .arg("--redis-prefix")
                    .arg(prefix);
            }
            let mut child = cmd.spawn().context("start a local node")?;
            let stdout = child.stdout.take().context("node stdout")?;
            let mut lines = BufReader::new(stdout).lines();
            let url = tokio::time::timeout(Duration::from_secs(120), async {
                while let Some(line) = lines.next_line().await? {
                    if let Some(url) = line.strip_prefix("listening on ") {
                        return Ok::<_, anyhow::Error>(url.trim().to_string());
                    }
                }
                bail!("local node {i} exited before listening")
            })
            .await
            .context("local node did not start within 120 s")??;
            // Keep reading its stdout so that it never blocks on a full pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            nodes.pids.push(child.id().unwrap_or(0));
            nodes.urls.push(url);
            nodes.children.push(child);
        }
        Ok(nodes)
    }

    pub fn database_kind(&self) -> &'static str {
        if self.database_url.starts_with("postgres") {
            "postgres"
        } else {
            "sqlite"
        }
    }

    /// Stop the nodes (closing their stdin asks for a graceful shutdown) and
    /// remove what the run created.
    pub async fn stop(mut self) {
        for child in &mut self.children {
            drop(child.stdin.take());
        }
        for child in &mut self.children {
            if tokio::time::timeout(Duration::from_secs(15), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
        if let Some((url, prefix)) = &self.redis {
            let _ = crate::server_stats::delete_redis_prefix(url, prefix).await;
        }
        if let Some((admin_url, name)) = &self.fresh_database
            && !self.keep_database
        {
            let _ = crate::server_stats::drop_database(admin_url, name).await;
        }
        if let Some(dir) = &self.temp_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
