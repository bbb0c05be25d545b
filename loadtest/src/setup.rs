//! Setting up the simulated call center over the real HTTP API: queues,
//! categories, customers, agents, supervisors and an intake user.

use anyhow::{Context, bail};
use callcenter_proto::Role;
use callcenter_proto::http::{
    AgentProfile, Category, CategorySpec, CreateUser, CustomerUpsert, LoginRequest, Queue,
    SkillLevel, TokenPair, User,
};
use futures::StreamExt;
use reqwest::Client;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A password for every simulated user of a run (at least 12 characters).
pub const USER_PASSWORD: &str = "loadtest password 1";

#[derive(Clone)]
pub struct Api {
    pub http: Client,
    pub base: String,
}

impl Api {
    pub fn new(base: &str) -> Api {
        let http = Client::builder()
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .build()
            .expect("http client");
        Api {
            http,
            base: base.trim_end_matches('/').to_string(),
        }
    }

    pub fn ws_url(&self) -> String {
        let rest = self
            .base
            .strip_prefix("http://")
            .map(|r| format!("ws://{r}"))
            .or_else(|| {
                self.base
                    .strip_prefix("https://")
                    .map(|r| format!("wss://{r}"))
            })
            .unwrap_or_else(|| self.base.clone());
        format!("{rest}/ws")
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("{method} {path}: {status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("{method} {path}: {text}"))
    }

    pub async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        token: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        self.call(reqwest::Method::POST, path, Some(token), body)
            .await
    }

    pub async fn put_json<T: DeserializeOwned>(
        &self,
        path: &str,
        token: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        self.call(reqwest::Method::PUT, path, Some(token), body)
            .await
    }

    pub async fn login(&self, username: &str, password: &str) -> anyhow::Result<TokenPair> {
        self.call(
            reqwest::Method::POST,
            "/api/auth/login",
            None,
            &LoginRequest {
                username: username.into(),
                password: password.into(),
            },
        )
        .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> anyhow::Result<TokenPair> {
        self.call(
            reqwest::Method::POST,
            "/api/auth/refresh",
            None,
            &callcenter_proto::http::RefreshRequest {
                refresh_token: refresh_token.into(),
            },
        )
        .await
    }
}

/// A simulated user, logged in.
#[derive(Clone, Debug)]
pub struct Login {
    pub user_id: i64,
    pub username: String,
    pub access_token: String,
    pub refresh_token: String,
}

/// What the run set up.
pub struct World {
    pub queues: Vec<i64>,
    /// (category id, weight in the mix).
    pub categories: Vec<(i64, u32)>,
    pub customers: Vec<i64>,
    pub agents: Vec<Login>,
    pub supervisors: Vec<Login>,
    pub intake: Login,
}

pub struct Plan<'a> {
    pub run: &'a str,
    pub queues: usize,
    pub categories: usize,
    pub customers: usize,
    pub agents: usize,
    pub supervisors: usize,
    pub capacity: u32,
    pub offer_timeout_seconds: u32,
}

/// Create users with bounded parallelism (password hashing is the slow part).
async fn users(
    api: &Api,
    admin: &str,
    names: Vec<String>,
    role: Role,
) -> anyhow::Result<Vec<Login>> {
    let results: Vec<anyhow::Result<Login>> = futures::stream::iter(names)
        .map(|username| async move {
            let user: User = api
                .call(
                    reqwest::Method::POST,
                    "/api/admin/users",
                    Some(admin),
                    &CreateUser {
                        username: username.clone(),
                        display_name: None,
                        role,
                        password: USER_PASSWORD.into(),
                    },
                )
                .await?;
            let tokens = api.login(&username, USER_PASSWORD).await?;
            Ok(Login {
                user_id: user.id,
                username,
                access_token: tokens.access_token,
                refresh_token: tokens.refresh_token,
            })
        })
        .buffered(4)
        .collect()
        .await;
    results.into_iter().collect()
}

pub async fn build(api: &Api, admin: &str, plan: &Plan<'_>) -> anyhow::Result<World> {
    let run = plan.run;
    let mut queues = Vec::new();
    for q in 0..plan.queues.max(1) {
        // Only the fields the run cares about; the server's defaults for the
        // rest (strategy, priority rule, wrap-up, overflow, grace periods).
        let queue: Queue = api
            .call(
                reqwest::Method::POST,
                "/api/admin/queues",
                Some(admin),
                &serde_json::json!({
                    "name": format!("{run} queue {q}"),
                    "required_skills": [{ "skill": format!("{run}-skill-{q}"), "level": 1 }],
                    "service_level_seconds": 20,
                    "offer_timeout_seconds": plan.offer_timeout_seconds,
                }),
            )
            .await?;
        queues.push(queue.id);
    }
    let mut categories = Vec::new();
    for c in 0..plan.categories.max(1) {
        let category: Category = api
            .call(
                reqwest::Method::POST,
                "/api/admin/categories",
                Some(admin),
                &CategorySpec {
                    name: format!("{run} category {c}"),
                    queue_id: queues[c % queues.len()],
                    base_priority: [0, 30, 0, 120][c % 4],
                },
            )
            .await?;
        // A mix: the first categories are the common ones.
        categories.push((category.id, (plan.categories.max(1) - c) as u32));
    }
    let customers: Vec<anyhow::Result<i64>> = futures::stream::iter(0..plan.customers.max(1))
        .map(|i| async move {
            let (tier, value) = match i % 10 {
                0 => ("gold", 500_000),
                1..=3 => ("silver", 120_000),
                _ => ("standard", 20_000 + (i as i64 % 7) * 1_000),
            };
            let c: callcenter_proto::http::Customer = api
                .call(
                    reqwest::Method::POST,
                    "/api/customers",
                    Some(admin),
                    &CustomerUpsert {
                        external_id: format!("{run}-customer-{i}"),
                        name: format!("Customer {i}"),
                        email: None,
                        phone: None,
                        tier: tier.into(),
                        value_minor: value,
                        timezone: Some("Europe/Moscow".into()),
                    },
                )
                .await?;
            Ok(c.id)
        })
        .buffered(8)
        .collect()
        .await;
    let customers = customers.into_iter().collect::<anyhow::Result<Vec<_>>>()?;

    let agent_names = (0..plan.agents)
        .map(|i| format!("{run}-agent-{i}"))
        .collect();
    let agents = users(api, admin, agent_names, Role::Agent).await?;
    let skills: Vec<SkillLevel> = (0..queues.len())
        .map(|q| SkillLevel {
            skill: format!("{run}-skill-{q}"),
            level: 5,
        })
        .collect();
    let profiles: Vec<anyhow::Result<serde_json::Value>> = futures::stream::iter(&agents)
        .map(|a| {
            let path = format!("/api/admin/agents/{}", a.user_id);
            let profile = AgentProfile {
                skills: skills.clone(),
                teams: vec![format!("{run}-team")],
                capacity_inbound: plan.capacity,
                capacity_outbound: 1,
            };
            async move {
                api.call(reqwest::Method::PUT, &path, Some(admin), &profile)
                    .await
            }
        })
        .buffered(8)
        .collect()
        .await;
    for p in profiles {
        p?;
    }
    let supervisor_names = (0..plan.supervisors)
        .map(|i| format!("{run}-supervisor-{i}"))
        .collect();
    let supervisors = users(api, admin, supervisor_names, Role::Supervisor).await?;
    let intake = users(api, admin, vec![format!("{run}-intake")], Role::Integration)
        .await?
        .pop()
        .context("intake user")?;
    Ok(World {
        queues,
        categories,
        customers,
        agents,
        supervisors,
        intake,
    })
}
