//! Connection scale: open many idle consoles (supervisor sockets that said
//! hello and got their snapshot) and report the server memory each costs.

use crate::agent::hello;
use crate::cli::LoadArgs;
use crate::nodes::unique;
use crate::run::Target;
use crate::setup::{self, Api, Plan};
use crate::summary::Summary;
use anyhow::Context;
use futures::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

pub async fn run(args: &LoadArgs, target: &Target) -> anyhow::Result<Summary> {
    let run = unique("lt").replace('_', "");
    let apis: Vec<Api> = target.urls.iter().map(|u| Api::new(u)).collect();
    let admin = apis[0]
        .login(&target.admin_user, &target.admin_password)
        .await
        .context("administrator login")?
        .access_token;
    // Consoles share a few users (a user may have several consoles open).
    let users = args.connections.clamp(1, 20);
    let world = setup::build(
        &apis[0],
        &admin,
        &Plan {
            run: &run,
            queues: 1,
            categories: 1,
            customers: 1,
            agents: 0,
            supervisors: users,
            capacity: 1,
            offer_timeout_seconds: args.offer_timeout_seconds,
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The lowest resident memory seen before the consoles open: right after
    // setup the allocator may still hold the password hashing's scratch
    // memory (tens of MiB), which would hide what a few thousand consoles
    // cost (2,000 of them read as 0 bytes each against that baseline).
    let after_setup: u64 = target.rss().iter().sum();
    let rss_before = match target.rss_at_start {
        Some(start) if start > 0 => after_setup.min(start),
        _ => after_setup,
    };

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let open = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let (opened_tx, mut opened_rx) = tokio::sync::mpsc::unbounded_channel::<bool>();
    let mut tasks = Vec::new();
    let gate = Arc::new(tokio::sync::Semaphore::new(64));
    for i in 0..args.connections {
        let url = apis[i % apis.len()].ws_url();
        let token = world.supervisors[i % users].access_token.clone();
        let mut stop = stop_rx.clone();
        let open = open.clone();
        let failed = failed.clone();
        let opened_tx = opened_tx.clone();
        let gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await;
            match hello(&url, &token, None).await {
                Ok((mut ws, _, _)) => {
                    drop(permit);
                    open.fetch_add(1, Ordering::Relaxed);
                    let _ = opened_tx.send(true);
                    // Read (answering pings) until told to stop.
                    loop {
                        tokio::select! {
                            m = ws.next() => match m {
                                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                                _ => {}
                            },
                            _ = stop.changed() => break,
                        }
                    }
                    let _ = ws.close(None).await;
                }
                Err(_) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    let _ = opened_tx.send(false);
                }
            }
        }));
    }
    drop(opened_tx);
    let mut answered = 0usize;
    let mut last_print = Instant::now();
    while answered < args.connections {
        if opened_rx.recv().await.is_none() {
            break;
        }
        answered += 1;
        if !args.quiet && last_print.elapsed() > Duration::from_secs(1) {
            last_print = Instant::now();
            eprintln!(
                "opened {} consoles ({} failed)",
                open.load(Ordering::Relaxed),
                failed.load(Ordering::Relaxed)
            );
        }
    }
    let open_time = started.elapsed();
    tokio::time::sleep(Duration::from_secs(args.duration.max(2))).await;
    let rss = target.rss();
    let rss_after: u64 = rss.iter().sum();
    let connections = open.load(Ordering::Relaxed);
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    let mut errors = std::collections::BTreeMap::new();
    let f = failed.load(Ordering::Relaxed);
    if f > 0 {
        errors.insert("connect".to_string(), f);
    }
    Ok(Summary {
        harness: env!("CARGO_PKG_VERSION").into(),
        mode: "connections".into(),
        started_at_ms: crate::shared::now_ms(),
        machine: crate::summary::machine(),
        backend: target.backend.clone(),
        supervisors: users,
        duration_s: open_time.as_secs_f64(),
        connections,
        server_rss_bytes: (!rss.is_empty()).then_some(rss_after),
        server_rss_bytes_per_node: rss,
        server_rss_bytes_at_start: target.rss_at_start,
        rss_per_connection_bytes: (connections > 0 && rss_before > 0)
            .then(|| rss_after.saturating_sub(rss_before) as f64 / connections as f64),
        errors,
        passed: f == 0,
        ..Summary::default()
    })
}
