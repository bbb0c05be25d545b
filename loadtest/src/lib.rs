//! The load harness: a simulated call center against one or several
//! callcenter nodes (see `loadtest --help` and the README's Performance
//! section).
//!
//! - [`run`]: a fixed-rate or ramp run (agents, supervisors, intake, checks);
//! - [`connections`]: idle consoles and server memory per connection;
//! - [`routing_bench`]: the bare routing path at saturation;
//! - [`checks`]: the invariants, from the clients' view;
//! - [`limits`]: what limits a run (filing phases on the nodes, CPU per part);
//! - [`summary`] and [`report`]: the JSON summary and the HTML report.

pub mod agent;
pub mod checks;
pub mod cli;
pub mod compensation;
pub mod connections;
pub mod intake;
pub mod limits;
pub mod nodes;
pub mod report;
pub mod routing_bench;
pub mod run;
pub mod server_stats;
pub mod setup;
pub mod shared;
pub mod stats;
pub mod summary;
pub mod supervisor;

use cli::{LoadArgs, Mode};
use summary::Summary;

/// Run what the arguments ask for and write the outputs; returns the summary.
pub async fn main_run(args: &LoadArgs) -> anyhow::Result<Summary> {
    let summary = match args.mode {
        Mode::Routing => routing_bench::run(args).await?,
        Mode::Fixed | Mode::Ramp | Mode::Connections => {
            let target = run::Target::open(args).await?;
            let result = match args.mode {
                Mode::Connections => connections::run(args, &target).await,
                _ => run::load(args, &target).await,
            };
            target.close().await;
            result?
        }
    };
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&summary)?)?;
    }
    if let Some(path) = &args.report {
        std::fs::write(path, report::html(&summary))?;
    }
    Ok(summary)
}
