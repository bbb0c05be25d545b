//! callcenter: a post-sale customer care call center.
//!
//! See ARCHITECTURE.md at the top of the repository for the bird's-eye view.

pub mod app;
pub mod auth;
pub mod bus;
pub mod cli;
pub mod clock;
pub mod compensation;
pub mod config;
pub mod desk;
pub mod error;
pub mod http;
pub mod metrics;
pub mod outbound;
pub mod quality;
pub mod redis_conn;
pub mod routing;
pub mod store;
pub mod telemetry;
pub mod ws;
