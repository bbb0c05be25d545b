//! Users' event streams and command replies, kept in process for the
//! embedded default. [`super::redis::RedisBus`] keeps the same in Redis.

use callcenter_proto::ws::ServerEvent;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// How many recent events of a user's stream are kept for resuming.
pub const STREAM_LEN: usize = 1000;
/// A stream in Redis is trimmed back to [`STREAM_LEN`] every this many
/// events (one command saved on the others), so it may keep up to this many
/// minus one more.
pub const STREAM_TRIM_EVERY: u64 = 16;
/// How many command replies are remembered per user.
pub const REPLIES_KEPT: usize = 1000;

/// Where a new stream starts: wall-clock microseconds, so that a stream
/// begun again (after a restart or a lost Redis) numbers above every event
/// of the old one. Within a stream, numbers then go up by one.
pub fn stream_floor() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(1)
}

/// What a resuming console gets.
#[derive(Debug)]
pub enum Since {
    /// Every event after the resume point, in order (possibly none).
    Events(Vec<(u64, ServerEvent)>),
    /// Some events after the resume point are gone: send a snapshot.
    TooOld,
}

/// The outcome of claiming a request id.
#[derive(Debug, PartialEq)]
pub enum Claim {
    /// First time: run the command.
    New,
    /// Seen and answered: this is the stored reply (JSON).
    Done(String),
    /// Seen and still running (a duplicate sent in parallel).
    Running,
}

#[derive(Default)]
struct UserStream {
    last: u64,
    events: VecDeque<(u64, ServerEvent)>,
    replies: HashMap<String, Option<String>>,
    reply_order: VecDeque<String>,
}

/// A std mutex: each critical section is a few deque operations and never
/// awaits; one lock also orders a user's events.
#[derive(Default)]
pub struct MemoryStreams {
    users: Mutex<HashMap<i64, UserStream>>,
}

impl MemoryStreams {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, UserStream>> {
        self.users.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number the event, keep it, and hand it on while still holding the lock.
    pub fn append(
        &self,
        user_id: i64,
        event: ServerEvent,
        hand_on: impl FnOnce(u64, ServerEvent),
    ) -> u64 {
        let mut users = self.lock();
        let stream = users.entry(user_id).or_default();
        stream.last = if stream.last == 0 {
            stream_floor()
        } else {
            stream.last + 1
        };
        let seq = stream.last;
        stream.events.push_back((seq, event.clone()));
        while stream.events.len() > STREAM_LEN {
            stream.events.pop_front();
        }
        hand_on(seq, event);
        seq
    }

    pub fn since(&self, user_id: i64, after: u64) -> Since {
        let users = self.lock();
        let Some(stream) = users.get(&user_id) else {
            return if after == 0 {
                Since::Events(Vec::new())
            } else {
                Since::TooOld
            };
        };
        if after > stream.last {
            return Since::TooOld;
        }
        let oldest = stream
            .events
            .front()
            .map(|(s, _)| *s)
            .unwrap_or(stream.last + 1);
        if after + 1 < oldest {
            return Since::TooOld;
        }
        Since::Events(
            stream
                .events
                .iter()
                .filter(|(s, _)| *s > after)
                .cloned()
                .collect(),
        )
    }

    pub fn position(&self, user_id: i64) -> u64 {
        self.lock().get(&user_id).map(|s| s.last).unwrap_or(0)
    }

    pub fn claim(&self, user_id: i64, request_id: &str) -> Claim {
        let mut users = self.lock();
        let stream = users.entry(user_id).or_default();
        match stream.replies.get(request_id) {
            Some(Some(reply)) => Claim::Done(reply.clone()),
            Some(None) => Claim::Running,
            None => {
                stream.replies.insert(request_id.to_string(), None);
                stream.reply_order.push_back(request_id.to_string());
                while stream.reply_order.len() > REPLIES_KEPT {
                    if let Some(old) = stream.reply_order.pop_front() {
                        stream.replies.remove(&old);
                    }
                }
                Claim::New
            }
        }
    }

    pub fn finish(&self, user_id: i64, request_id: &str, reply: &str) {
        let mut users = self.lock();
        if let Some(slot) = users
            .entry(user_id)
            .or_default()
            .replies
            .get_mut(request_id)
        {
            *slot = Some(reply.to_string());
        }
    }
}
