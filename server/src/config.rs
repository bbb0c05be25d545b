//! Command line and environment: `callcenter serve | migrate | user ...`.
//! Every option is shown by `--help`; every one can also be set by its
//! environment variable.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;

#[derive(Parser, Debug)]
#[command(
    name = "callcenter",
    version,
    about = "Post-sale customer care call center"
)]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

// Parsed once at start: the size of the `serve` options does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP + WebSocket server (the default).
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// The compensation ledger.
    #[command(subcommand)]
    Ledger(LedgerCommand),
}

#[derive(Subcommand, Debug)]
pub enum LedgerCommand {
    /// Recompute the compensation ledger's hash chain; exits non-zero and names
    /// the first broken entry when it does not hold.
    Verify,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user; the password comes from CALLCENTER_USER_PASSWORD or is generated and printed once.
    Create {
        #[arg(long)]
        username: String,
        #[arg(long, value_parser = parse_role)]
        role: callcenter_proto::Role,
        #[arg(long)]
        display_name: Option<String>,
    },
    /// Disable a user: their sessions are revoked and their sockets closed.
    Disable {
        #[arg(long)]
        username: String,
    },
    /// Set a new password (from CALLCENTER_USER_PASSWORD, or generated and printed once).
    ResetPassword {
        #[arg(long)]
        username: String,
    },
}

fn parse_role(s: &str) -> Result<callcenter_proto::Role, String> {
    callcenter_proto::Role::parse(s)
        .ok_or_else(|| "expected one of: agent, supervisor, admin, integration".to_string())
}

#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// postgres://... or sqlite://... (the default is a SQLite file under ./data).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://data/callcenter.db",
        global = true
    )]
    pub database_url: String,
    /// Log format.
    #[arg(long, env = "CALLCENTER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "CALLCENTER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Live channel: seconds between the server's pings.
    #[arg(long, env = "CALLCENTER_WS_PING_SECONDS", default_value_t = 15)]
    pub ws_ping_seconds: u64,
    /// Live channel: a connection silent this long (no frame, no pong) is closed.
    #[arg(long, env = "CALLCENTER_WS_IDLE_SECONDS", default_value_t = 30)]
    pub ws_idle_seconds: u64,
    /// Live channel: commands per second per connection (bursts of twice that).
    #[arg(long, env = "CALLCENTER_WS_COMMANDS_PER_SECOND", default_value_t = 20)]
    pub ws_commands_per_second: u32,
    /// redis:// URL of the shared live state; redis+cluster://host:port,host:port for a
    /// Redis Cluster. Absent: in-process routing (one node only).
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key and channel (several deployments can share one Redis).
    #[arg(long, env = "CALLCENTER_REDIS_PREFIX", default_value = "cc")]
    pub redis_prefix: String,
    /// Several nodes: a node that has not said it is alive for this many seconds
    /// (it says so four times a second) is taken for dead, and its agents are
    /// marked absent (their tickets return after the queue's reconnect grace).
    #[arg(long, env = "CALLCENTER_NODE_SILENCE_SECONDS", default_value_t = 10)]
    pub node_silence_seconds: u64,
    /// `iss` of issued access tokens, required on every presented one.
    #[arg(long, env = "CALLCENTER_JWT_ISSUER", default_value = "callcenter")]
    pub jwt_issuer: String,
    /// `aud` of issued access tokens, required on every presented one.
    #[arg(
        long,
        env = "CALLCENTER_JWT_AUDIENCE",
        default_value = "callcenter-api"
    )]
    pub jwt_audience: String,
    /// PEM file of the Ed25519 private key that signs access tokens. Absent: a key
    /// generated once and kept in the database, shared by every node.
    #[arg(long, env = "CALLCENTER_JWT_PRIVATE_KEY_FILE")]
    pub jwt_private_key_file: Option<std::path::PathBuf>,
    /// Lifetime of access tokens, in seconds.
    #[arg(long, env = "CALLCENTER_ACCESS_TTL_SECONDS", default_value_t = 900)]
    pub access_ttl_seconds: u64,
    /// Lifetime of refresh tokens, in seconds.
    #[arg(long, env = "CALLCENTER_REFRESH_TTL_SECONDS", default_value_t = 14 * 24 * 3600)]
    pub refresh_ttl_seconds: u64,
    /// Origins allowed to open the WebSocket, comma-separated, matched exactly
    /// (e.g. https://desk.example.com). The server's own http://HOST:PORT is always allowed.
    #[arg(long, env = "CALLCENTER_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// Username of the first administrator, created on first start.
    #[arg(long, env = "CALLCENTER_ADMIN_USERNAME", default_value = "admin")]
    pub admin_username: String,
    /// Password of the first administrator; absent: one is generated and printed once.
    #[arg(long, env = "CALLCENTER_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// URL that receives a signed POST for every compensation grant and reversal.
    #[arg(long, env = "CALLCENTER_WEBHOOK_URL")]
    pub webhook_url: Option<String>,
    /// HMAC-SHA256 key of the webhook signature (16 characters or more).
    #[arg(long, env = "CALLCENTER_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// URL that receives a signed POST with each survey link the system makes
    /// when a resolved complaint's confirmation is due (the shop or CRM sends
    /// it to the customer). Absent: survey links are made by staff only.
    #[arg(long, env = "CALLCENTER_SURVEY_WEBHOOK_URL")]
    pub survey_webhook_url: Option<String>,
    /// The address customers reach this server at, for the links sent to them
    /// (e.g. https://care.example.com). Absent: http://<listen address>.
    #[arg(long, env = "CALLCENTER_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Transactions of the lifecycle's writes this node runs at once on
    /// PostgreSQL; the writes that queue up meanwhile share the next one
    /// (group commit). The embedded default always runs one.
    #[arg(long, env = "CALLCENTER_DB_WRITERS", default_value_t = crate::store::DEFAULT_WRITERS,
        value_parser = clap::value_parser!(u16).range(1..=64))]
    pub db_writers: u16,
}

impl Default for ServeArgs {
    fn default() -> Self {
        ServeArgs {
            listen: "127.0.0.1:8080".parse().expect("valid address"),
            redis_url: None,
            redis_prefix: "cc".into(),
            node_silence_seconds: 10,
            jwt_issuer: "callcenter".into(),
            jwt_audience: "callcenter-api".into(),
            jwt_private_key_file: None,
            access_ttl_seconds: 900,
            refresh_ttl_seconds: 14 * 24 * 3600,
            allowed_origins: Vec::new(),
            admin_username: "admin".into(),
            admin_password: None,
            webhook_url: None,
            webhook_secret: None,
            survey_webhook_url: None,
            public_url: None,
            ws_ping_seconds: 15,
            ws_idle_seconds: 30,
            ws_commands_per_second: 20,
            db_writers: crate::store::DEFAULT_WRITERS,
        }
    }
}
