//! A node's copy of what every ticket reads and an administrator rarely
//! changes: queues, categories, agents' skills and capacities, resolution
//! codes, quality settings, journeys, and live sessions.
//!
//! Without it one ticket's lifecycle read the same queue row a dozen times
//! (measured: 75 statements per lifecycle, 21 of them queue reads), which is
//! what kept the database from the issue-9 throughput.
//!
//! Correctness rests on three rules:
//! - a queue's and a category's definition never change once created, so a
//!   cached row is never stale; only the *lists* of them can grow;
//! - every change of the rest invalidates this node's copy in the writing
//!   call itself, and is announced on the bus so that every other node drops
//!   its copy too ([`crate::bus::BusMessage::Invalidate`], and `Revoke` for
//!   sessions);
//! - a read that raced an invalidation is not cached (the generation check),
//!   and every mutable entry also expires (a session after [`TTL`], the
//!   directory after [`DIRECTORY_TTL`]), which bounds a lost
//!   bus message (or a change made by the command-line tool while a node of
//!   the embedded default runs) to that long.

use callcenter_proto::http::{AgentProfile, Category, Queue, User};
use callcenter_proto::outbound::Journey;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How long a session may be served without being read again. Only a
/// backstop: a revocation empties every node's copy at once (on the revoking
/// node in the call, on the others through the bus), so this bounds a lost
/// bus message. Every command on a live channel checks its session: at 2 s
/// that was a read per agent every other command under load (0.7 reads per
/// ticket lifecycle at 200/s).
pub const TTL: Duration = Duration::from_secs(10);

/// Directory entries change only by an administrator, and every change is
/// announced on the bus: they may be served longer.
pub const DIRECTORY_TTL: Duration = Duration::from_secs(60);

/// Entries kept per map before the map is emptied (bounds memory when
/// many sessions come and go; a refill costs one read each).
const MAX_ENTRIES: usize = 50_000;

/// What changed, for invalidation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Queues, categories, agent profiles, resolution codes, settings.
    Directory,
    /// Sessions (a logout, a revocation, a disabled user).
    Sessions,
}

#[derive(Default)]
pub struct DirectoryCache {
    /// A std mutex: each use is a lookup or an insert of a cloned value and
    /// never awaits while held.
    inner: Mutex<Inner>,
    /// Where this node announces its invalidations to the other nodes (set
    /// once the bus is up; see `app::build`).
    announce: OnceLock<mpsc::UnboundedSender<Scope>>,
}

/// Entries that expire `ttl` after they were read from the record, kept
/// only if no invalidation happened while they were being read.
struct Timed<K, V> {
    ttl: Duration,
    entries: HashMap<K, (Instant, V)>,
}

impl<K: std::hash::Hash + Eq, V: Clone> Timed<K, V> {
    fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: HashMap::new(),
        }
    }

    fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        self.entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    fn put(&mut self, key: K, value: V) {
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.clear();
        }
        self.entries.insert(key, (Instant::now(), value));
    }
}

struct Inner {
    /// Bumped by every invalidation; a read that started before the bump
    /// does not store its result.
    generation: u64,
    /// Queues and categories never change once created: kept for good.
    queues: HashMap<i64, Queue>,
    categories: HashMap<i64, Category>,
    queue_list: Timed<(), Vec<Queue>>,
    profiles: Timed<i64, AgentProfile>,
    active_codes: Timed<String, bool>,
    settings: Timed<(), String>,
    journeys: Timed<String, Vec<Journey>>,
    sessions: Timed<(String, i64), User>,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            generation: 0,
            queues: HashMap::new(),
            categories: HashMap::new(),
            queue_list: Timed::new(DIRECTORY_TTL),
            profiles: Timed::new(DIRECTORY_TTL),
            active_codes: Timed::new(DIRECTORY_TTL),
            settings: Timed::new(DIRECTORY_TTL),
            journeys: Timed::new(DIRECTORY_TTL),
            sessions: Timed::new(TTL),
        }
    }
}

fn bounded<K, V>(map: &mut HashMap<K, V>) {
    if map.len() >= MAX_ENTRIES {
        map.clear();
    }
}

impl DirectoryCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Store what `put` does to the cache only if nothing was invalidated
    /// since `generation` (read before the record was).
    fn put_if_current(&self, generation: u64, put: impl FnOnce(&mut Inner)) {
        let mut inner = self.lock();
        if inner.generation == generation {
            put(&mut inner);
        }
    }

    /// The generation to hand back to a `put_…` after reading the record.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Send this node's invalidations to `to` from now on.
    pub fn announce_to(&self, to: mpsc::UnboundedSender<Scope>) {
        let _ = self.announce.set(to);
    }

    /// Something in `scope` changed here: drop this node's copy and tell
    /// the other nodes to drop theirs.
    pub fn invalidate(&self, scope: Scope) {
        self.drop_local(scope);
        if let Some(tx) = self.announce.get() {
            let _ = tx.send(scope);
        }
    }

    /// Another node announced a change in `scope`.
    pub fn drop_local(&self, scope: Scope) {
        let mut inner = self.lock();
        inner.generation += 1;
        match scope {
            Scope::Directory => {
                inner.queue_list.entries.clear();
                inner.profiles.entries.clear();
                inner.active_codes.entries.clear();
                inner.settings.entries.clear();
                inner.journeys.entries.clear();
            }
            Scope::Sessions => inner.sessions.entries.clear(),
        }
    }

    pub fn queue(&self, id: i64) -> Option<Queue> {
        self.lock().queues.get(&id).cloned()
    }

    pub fn put_queue(&self, queue: &Queue) {
        let mut inner = self.lock();
        bounded(&mut inner.queues);
        inner.queues.insert(queue.id, queue.clone());
    }

    pub fn queues(&self) -> Option<Vec<Queue>> {
        self.lock().queue_list.get(&())
    }

    pub fn put_queues(&self, generation: u64, queues: &[Queue]) {
        let mut inner = self.lock();
        for q in queues {
            inner.queues.insert(q.id, q.clone());
        }
        if inner.generation == generation {
            inner.queue_list.put((), queues.to_vec());
        }
    }

    pub fn category(&self, id: i64) -> Option<Category> {
        self.lock().categories.get(&id).cloned()
    }

    pub fn put_category(&self, category: &Category) {
        let mut inner = self.lock();
        bounded(&mut inner.categories);
        inner.categories.insert(category.id, category.clone());
    }

    pub fn profile(&self, user_id: i64) -> Option<AgentProfile> {
        self.lock().profiles.get(&user_id)
    }

    pub fn put_profile(&self, generation: u64, user_id: i64, profile: &AgentProfile) {
        self.put_if_current(generation, |c| c.profiles.put(user_id, profile.clone()));
    }

    pub fn code_active(&self, code: &str) -> Option<bool> {
        self.lock().active_codes.get(code)
    }

    pub fn put_code_active(&self, generation: u64, code: &str, active: bool) {
        self.put_if_current(generation, |c| c.active_codes.put(code.to_string(), active));
    }

    /// The quality settings document, as stored.
    pub fn settings(&self) -> Option<String> {
        self.lock().settings.get(&())
    }

    pub fn put_settings(&self, generation: u64, document: &str) {
        self.put_if_current(generation, |c| c.settings.put((), document.to_string()));
    }

    /// The active journeys of a trigger kind.
    pub fn journeys(&self, trigger: &str) -> Option<Vec<Journey>> {
        self.lock().journeys.get(trigger)
    }

    pub fn put_journeys(&self, generation: u64, trigger: &str, journeys: &[Journey]) {
        self.put_if_current(generation, |c| {
            c.journeys.put(trigger.to_string(), journeys.to_vec())
        });
    }

    pub fn session(&self, session_id: &str, user_id: i64) -> Option<User> {
        self.lock().sessions.get(&(session_id.to_string(), user_id))
    }

    pub fn put_session(&self, generation: u64, session_id: &str, user: &User) {
        self.put_if_current(generation, |c| {
            c.sessions
                .put((session_id.to_string(), user.id), user.clone())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use callcenter_proto::Role;
    use callcenter_proto::http::User;

    fn user(id: i64) -> User {
        User {
            id,
            username: format!("u{id}"),
            display_name: "U".into(),
            role: Role::Agent,
            disabled: false,
        }
    }

    #[test]
    fn a_read_that_raced_a_revocation_is_not_kept() {
        let cache = DirectoryCache::default();
        let before = cache.generation();
        // The session is revoked while the read was in flight…
        cache.invalidate(Scope::Sessions);
        // …so the (now stale) row it returned is not cached.
        cache.put_session(before, "s1", &user(7));
        assert!(cache.session("s1", 7).is_none());

        let now = cache.generation();
        cache.put_session(now, "s1", &user(7));
        assert_eq!(cache.session("s1", 7).map(|u| u.id), Some(7));
        cache.invalidate(Scope::Sessions);
        assert!(cache.session("s1", 7).is_none());
    }

    #[test]
    fn directory_changes_drop_profiles_codes_and_lists_but_not_sessions() {
        let cache = DirectoryCache::default();
        let g = cache.generation();
        cache.put_code_active(g, "fixed", true);
        cache.put_session(g, "s", &user(1));
        cache.put_settings(g, "{}");
        cache.invalidate(Scope::Directory);
        assert_eq!(cache.code_active("fixed"), None);
        assert!(cache.settings().is_none());
        assert!(cache.session("s", 1).is_some());
    }
}
