//! The command line. `loadtest --help` documents every flag.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "loadtest",
    version,
    about = "A simulated call center against one or several callcenter nodes: \
             agents over real WebSockets, complaints over HTTP, invariant checks, figures.",
    long_about = "A simulated call center against one or several callcenter nodes.\n\n\
        With no --url, local server nodes are started (child processes of this binary): \
        the embedded default (SQLite in a temporary directory, in-process routing), or, \
        with --database-url and --redis-url, --spawn-nodes K nodes on PostgreSQL + Redis.\n\n\
        The run exits non-zero when any invariant is violated \
        (lost, double_offers, capacity_violations, resume_gaps)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Internal>,
    #[command(flatten)]
    pub load: LoadArgs,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Internal {
    /// Run one server node (used by the harness for its local nodes).
    #[command(hide = true)]
    Node(NodeArgs),
}

#[derive(Args, Debug, Clone)]
pub struct NodeArgs {
    #[arg(long)]
    pub database_url: String,
    #[arg(long)]
    pub redis_url: Option<String>,
    #[arg(long, default_value = "cc")]
    pub redis_prefix: String,
    #[arg(long, env = "LOADTEST_NODE_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: String,
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
    /// As `callcenter serve --db-writers` (read from the same variable, with
    /// the same bounds: a bad value stops the node with the reason).
    #[arg(long, env = "CALLCENTER_DB_WRITERS", default_value_t = callcenter::store::DEFAULT_WRITERS,
        value_parser = clap::value_parser!(u16).range(1..=64))]
    pub db_writers: u16,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Complaints at a fixed --rate for --duration seconds.
    Fixed,
    /// Raise the rate by --ramp-step every --ramp-step-seconds until p99 offer
    /// latency exceeds --p99-bound-ms (or throughput falls behind); report the
    /// highest rate within the bound.
    Ramp,
    /// Open --connections idle consoles and report server memory per connection.
    Connections,
    /// The bare routing path (enqueue → offer delivered → accept → release)
    /// against the routing layer directly, at saturation, on --redis-url (or in
    /// memory without it).
    Routing,
}

#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    /// What to run.
    #[arg(long, value_enum, default_value_t = Mode::Fixed)]
    pub mode: Mode,

    // ---- where it points
    /// A server node to load, e.g. http://127.0.0.1:8080 (repeat for several nodes).
    /// Absent: local nodes are started.
    #[arg(long = "url")]
    pub urls: Vec<String>,
    /// How many local nodes to start when no --url is given (more than one needs
    /// --database-url postgres://… and --redis-url).
    #[arg(long, default_value_t = 1)]
    pub spawn_nodes: usize,
    /// Database of the local nodes. A postgres:// URL names the server and a
    /// database to connect to: the run creates a fresh database next to it (dropped
    /// afterwards unless --keep-database). Absent: SQLite in a temporary directory.
    #[arg(long, env = "LOADTEST_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Redis of the local nodes (a fresh key prefix per run), and of --mode routing.
    /// Also read for INFO commandstats when loading remote nodes.
    #[arg(long, env = "LOADTEST_REDIS_URL")]
    pub redis_url: Option<String>,
    /// Keep the run's fresh PostgreSQL database instead of dropping it.
    #[arg(long)]
    pub keep_database: bool,
    /// PostgreSQL URL of the remote nodes' database, read for pg_stat_database
    /// (transactions per ticket) when loading --url nodes.
    #[arg(long)]
    pub stats_database_url: Option<String>,
    /// PIDs of the remote nodes' processes on this machine, for server RSS.
    #[arg(long = "server-pid")]
    pub server_pids: Vec<u32>,
    /// Administrator of remote nodes (local nodes get a generated one).
    #[arg(long, env = "LOADTEST_ADMIN_USER", default_value = "admin")]
    pub admin_user: String,
    #[arg(long, env = "LOADTEST_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,

    // ---- the load shape
    /// Simulated agents (each a WebSocket console plus HTTP).
    #[arg(long, default_value_t = 20)]
    pub agents: usize,
    /// Inbound capacity of each agent (tickets held or offered at once).
    #[arg(long, default_value_t = 1)]
    pub capacity: u32,
    /// Supervisors watching the queue boards.
    #[arg(long, default_value_t = 2)]
    pub supervisors: usize,
    /// Complaints per second (a Poisson stream); the starting rate in ramp mode.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Seconds of load (fixed mode), or of holding the consoles open (connections
    /// mode), or of saturation (routing mode).
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Queues (each with its own skill); every agent has every skill.
    #[arg(long, default_value_t = 2)]
    pub queues: usize,
    /// Complaint categories, spread over the queues with different priorities.
    #[arg(long, default_value_t = 4)]
    pub categories: usize,
    /// Customers, with tiers and yearly values drawn from a mix.
    #[arg(long, default_value_t = 100)]
    pub customers: usize,
    /// Seconds an agent has to accept an offer (the queues' offer timeout, 5..600).
    #[arg(long, default_value_t = 5)]
    pub offer_timeout_seconds: u32,

    // ---- the behaviour mix
    /// Mean time an agent takes to answer an offer, in ms (exponential).
    #[arg(long, default_value_t = 100)]
    pub think_ms: u64,
    /// Mean time an agent works a ticket before resolving it, in ms (exponential).
    #[arg(long, default_value_t = 500)]
    pub handle_ms: u64,
    /// Share of offers declined.
    #[arg(long, default_value_t = 0.05)]
    pub decline_fraction: f64,
    /// Share of offers left unanswered (they expire and go to someone else).
    #[arg(long, default_value_t = 0.02)]
    pub miss_fraction: f64,
    /// Share of tickets that get a note while being worked.
    #[arg(long, default_value_t = 0.1)]
    pub note_fraction: f64,
    /// Share of resolutions where the customer's problem was not solved.
    #[arg(long, default_value_t = 0.1)]
    pub unresolved_fraction: f64,
    /// Share of accepted tickets on which the agent asks for compensation (a
    /// third of the asks above the agent's authority, for a supervisor to
    /// approve). Needs the compensation API; skipped when it is missing.
    #[arg(long, default_value_t = 0.05)]
    pub compensation_fraction: f64,
    /// Share of agents who drop their connection once during the run and
    /// reconnect (resuming from the last event they processed).
    #[arg(long, default_value_t = 0.1)]
    pub reconnect_fraction: f64,
    /// How long a dropped agent stays away before reconnecting, in ms.
    #[arg(long, default_value_t = 300)]
    pub reconnect_delay_ms: u64,
    /// After the load stops, how long to wait for every ticket to end, in seconds
    /// (agents then accept every offer at once).
    #[arg(long, default_value_t = 60)]
    pub drain_seconds: u64,
    /// Complaint requests in flight at most (the intake waits beyond it, and
    /// reports how far behind schedule it fell).
    #[arg(long, default_value_t = 256)]
    pub max_inflight: usize,
    /// Seconds to let PostgreSQL's statistics settle before the idle-cost
    /// reading and after the drain (a backend publishes its transaction
    /// counts at most once a second, and an idle one after 10 s): 0 reads
    /// at once (short runs), less exact.
    #[arg(long, default_value_t = 11)]
    pub stats_settle_seconds: u64,
    /// Random seed (the same seed gives the same behaviour mix).
    #[arg(long)]
    pub seed: Option<u64>,

    // ---- ramp mode
    /// Rate added at each ramp step, per second.
    #[arg(long, default_value_t = 50.0)]
    pub ramp_step: f64,
    /// Seconds per ramp step.
    #[arg(long, default_value_t = 10)]
    pub ramp_step_seconds: u64,
    /// Highest rate the ramp tries.
    #[arg(long, default_value_t = 5000.0)]
    pub ramp_max: f64,
    /// The p99 offer latency bound of the ramp, in ms.
    #[arg(long, default_value_t = 25.0)]
    pub p99_bound_ms: f64,

    // ---- connections mode
    /// Idle consoles to open in connections mode.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,

    // ---- routing mode
    /// Simulated agents (claimers) in routing mode.
    #[arg(long, default_value_t = 64)]
    pub routing_agents: usize,
    /// Concurrent producers (enqueue loops) in routing mode. Dispatch runs
    /// as in the server: with each enqueue and with each release. Enough
    /// of them to keep the agents busy: each waits for its call's reply.
    #[arg(long, default_value_t = 16)]
    pub routing_producers: usize,

    // ---- output
    /// Write the summary as JSON (stable field names, see the README).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write a self-contained HTML report with charts.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
}
