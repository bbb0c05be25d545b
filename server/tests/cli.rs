//! The `callcenter` binary as an operator runs it: help, first start on the
//! embedded default, login with the printed password, user commands, and a
//! clean stop on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_callcenter");

fn data_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cc_cli_{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(args: &[&str], database_url: &str, password: Option<&str>) -> (bool, String) {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env("DATABASE_URL", database_url)
        .env_remove("CALLCENTER_USER_PASSWORD")
        .env_remove("REDIS_URL");
    if let Some(p) = password {
        command.env("CALLCENTER_USER_PASSWORD", p);
    }
    let out = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A running server process, killed (and reaped) when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start the server; returns the process, its base URL and everything it
/// printed before listening.
fn start(database_url: &str) -> (Server, String, Vec<String>) {
    let mut child = Server(
        Command::new(BIN)
            .env("DATABASE_URL", database_url)
            .env("CALLCENTER_LISTEN", "127.0.0.1:0")
            .env_remove("CALLCENTER_ADMIN_PASSWORD")
            .env_remove("REDIS_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lines = Vec::new();
    let stdout = child.0.stdout.take().unwrap();
    let mut reader = BufReader::new(stdout);
    loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "the server exited: {lines:?}"
        );
        let line = line.trim().to_string();
        if let Some(url) = line.strip_prefix("listening on ") {
            let url = url.to_string();
            lines.push(line);
            return (child, url, lines);
        }
        lines.push(line);
    }
}

fn one_time_password(lines: &[String]) -> String {
    let line = lines
        .iter()
        .find(|l| l.contains("one-time password"))
        .expect("a printed password");
    line.split("one-time password \"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn help_lists_every_command_and_option() {
    let (ok, text) = run(&["--help"], "sqlite://unused.db", None);
    assert!(ok);
    for word in ["serve", "migrate", "user", "--database-url", "--log-format"] {
        assert!(text.contains(word), "{word} missing from --help:\n{text}");
    }
    let (ok, text) = run(&["serve", "--help"], "sqlite://unused.db", None);
    assert!(ok);
    for word in [
        "--listen",
        "CALLCENTER_LISTEN",
        "--redis-url",
        "REDIS_URL",
        "DATABASE_URL",
        "--jwt-issuer",
        "--jwt-audience",
        "--jwt-private-key-file",
        "--allowed-origins",
        "CALLCENTER_ADMIN_PASSWORD",
    ] {
        assert!(
            text.contains(word),
            "{word} missing from serve --help:\n{text}"
        );
    }
}

#[tokio::test]
async fn first_start_prints_a_password_that_logs_in_and_sigterm_stops_cleanly() {
    let dir = data_dir();
    let db = format!("sqlite://{}/cc.db", dir.display());
    let (migrated, text) = run(&["migrate"], &db, None);
    assert!(migrated, "{text}");

    let (child, url, lines) = start(&db);
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let password = one_time_password(&lines);
    assert!(password.len() >= 16);
    let http = reqwest::Client::new();
    let login = http
        .post(format!("{url}/api/auth/login"))
        .json(&serde_json::json!({ "username": "admin", "password": password }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let health = http.get(format!("{url}/readyz")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    // SIGTERM: the server stops accepting and exits successfully.
    let pid = child.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let (status, child) = tokio::task::spawn_blocking(move || {
        let mut child = child;
        (child.0.wait(), child)
    })
    .await
    .unwrap();
    let status = status.unwrap();
    drop(child);
    assert!(status.success(), "{status:?}");

    // A second start creates no second admin and prints no password.
    let (again, _url, lines) = start(&db);
    assert!(
        !lines.iter().any(|l| l.contains("one-time password")),
        "{lines:?}"
    );
    drop(again);
}

#[test]
fn user_commands_create_disable_and_reset() {
    let dir = data_dir();
    let db = format!("sqlite://{}/cc.db", dir.display());
    let (ok, text) = run(
        &["user", "create", "--username", "olga", "--role", "agent"],
        &db,
        None,
    );
    assert!(ok, "{text}");
    assert!(text.contains("one-time password: "), "{text}");
    let (ok, text) = run(
        &["user", "create", "--username", "olga", "--role", "agent"],
        &db,
        None,
    );
    assert!(!ok, "a second olga: {text}");
    let (ok, text) = run(
        &["user", "create", "--username", "x", "--role", "janitor"],
        &db,
        None,
    );
    assert!(!ok && text.contains("agent, supervisor, admin"), "{text}");
    let (ok, text) = run(
        &[
            "user",
            "create",
            "--username",
            "pavel",
            "--role",
            "supervisor",
        ],
        &db,
        Some("short"),
    );
    assert!(!ok && text.contains("at least 12"), "{text}");
    let (ok, text) = run(
        &["user", "reset-password", "--username", "olga"],
        &db,
        Some("a brand new password"),
    );
    assert!(ok, "{text}");
    assert!(
        !text.contains("a brand new password"),
        "the password was echoed: {text}"
    );
    let (ok, text) = run(&["user", "disable", "--username", "olga"], &db, None);
    assert!(ok, "{text}");
    let (ok, _) = run(&["user", "disable", "--username", "nobody"], &db, None);
    assert!(!ok);
}
