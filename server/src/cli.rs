//! The operator commands behind `callcenter`.

use crate::app::{self, Config};
use crate::auth::password;
use crate::bus::BusMessage;
use crate::clock::{Clock, SystemClock};
use crate::config::{Cli, Command, ServeArgs, UserCommand};
use crate::store::Db;

pub async fn main(cli: Cli) -> anyhow::Result<()> {
    let database_url = cli.common.database_url;
    match cli
        .command
        .unwrap_or(Command::Serve(ServeArgs::from_env_defaults()?))
    {
        Command::Serve(serve) => {
            let listener = tokio::net::TcpListener::bind(serve.listen).await?;
            app::run(
                listener,
                Config::new(&database_url, serve),
                shutdown_signal(),
            )
            .await
        }
        Command::Migrate => {
            Db::connect(&database_url).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::User(command) => user(&database_url, command).await,
        Command::Ledger(crate::config::LedgerCommand::Verify) => {
            crate::compensation::ledger::verify_command(&database_url).await
        }
    }
}

impl ServeArgs {
    /// `callcenter` with no subcommand means `callcenter serve`, with the
    /// serve options read from the environment.
    fn from_env_defaults() -> anyhow::Result<ServeArgs> {
        use clap::{Args, FromArgMatches};
        let matches =
            ServeArgs::augment_args(clap::Command::new("serve")).try_get_matches_from(["serve"])?;
        Ok(ServeArgs::from_arg_matches(&matches)?)
    }
}

fn password_from_env() -> anyhow::Result<(String, bool)> {
    match std::env::var("CALLCENTER_USER_PASSWORD") {
        Ok(p) => {
            password::validate(&p).map_err(|m| anyhow::anyhow!("CALLCENTER_USER_PASSWORD {m}"))?;
            Ok((p, false))
        }
        Err(_) => Ok((password::generate(), true)),
    }
}

async fn user(database_url: &str, command: UserCommand) -> anyhow::Result<()> {
    let db = Db::connect(database_url).await?;
    let now = SystemClock.now_ms();
    match command {
        UserCommand::Create {
            username,
            role,
            display_name,
        } => {
            let (pass, generated) = password_from_env()?;
            let hash = password::hash_async(pass.clone()).await?;
            let display = display_name.unwrap_or_else(|| username.clone());
            let user = db
                .create_user(&username, &display, role, &hash, now)
                .await?;
            println!(
                "created user {} ({}) with id {}",
                user.username,
                role.as_str(),
                user.id
            );
            if generated {
                println!("one-time password: {pass}");
            }
        }
        UserCommand::Disable { username } => {
            let user = db.user_by_username(&username).await?;
            db.update_user(user.id, None, Some(true), None).await?;
            db.revoke_user_sessions(user.id, now).await?;
            // Sockets open on running nodes learn of it through the bus when Redis is used.
            // Sockets open on running nodes learn of it through the bus.
            if let Ok(url) = std::env::var("REDIS_URL") {
                use crate::bus::Bus;
                let prefix =
                    std::env::var("CALLCENTER_REDIS_PREFIX").unwrap_or_else(|_| "cc".into());
                let (bus, _rx) = crate::bus::redis::RedisBus::start(&url, prefix).await?;
                bus.publish(BusMessage::Revoke {
                    user_id: user.id,
                    session_id: None,
                    reason: "account disabled".into(),
                })
                .await?;
            }
            println!("disabled {username}; their sessions are revoked");
        }
        UserCommand::ResetPassword { username } => {
            let user = db.user_by_username(&username).await?;
            let (pass, generated) = password_from_env()?;
            let hash = password::hash_async(pass.clone()).await?;
            db.update_user(user.id, None, None, Some(&hash)).await?;
            db.revoke_user_sessions(user.id, now).await?;
            println!("password of {username} reset; their sessions are revoked");
            if generated {
                println!("one-time password: {pass}");
            }
        }
    }
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
