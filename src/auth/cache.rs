//! Callers authenticated lately, so that a request does not read its token and user again
//! before its own work: on the simplest API path that read was one statement in three.
//!
//! An entry is trusted only while invalidations are heard. Triggers on the tables an
//! [`AuthUser`] is made of (users, memberships, customers, tokens) NOTIFY on
//! [`AUTH_CHANNEL`]; every server's listener then empties its cache, so a revoked token or a
//! deactivated user is refused within the notification's delay (milliseconds) everywhere.
//! While the listener is down, nothing is served from the cache: a notification missed then
//! would leave an entry stale for good. Changes made through this server also empty it at
//! once, before their response leaves (see [`AuthCache::clear`]).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::AuthUser;

/// The NOTIFY channel of changes to users, memberships, customers and tokens.
pub const AUTH_CHANNEL: &str = "webnet_auth";

/// How long an entry lives at most. A token records its use at most once a minute when it
/// is read from the database; this bounds how late `last_used_at` can be.
const TTL: Duration = Duration::from_secs(60);

/// Entries beyond which the cache starts afresh rather than grow (a flood of distinct
/// tokens, or sessions, cannot make it use more than a few megabytes).
const MAX_ENTRIES: usize = 10_000;

/// Recently authenticated callers by token hash and by session user. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct AuthCache {
    inner: Arc<RwLock<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Whether invalidations are being heard; nothing is served or stored otherwise.
    live: bool,
    /// Bumped by every invalidation: a lookup that started before one must not store what
    /// it read, which may predate the change.
    generation: u64,
    tokens: HashMap<String, Entry>,
    users: HashMap<i64, Entry>,
}

#[derive(Debug)]
struct Entry {
    user: AuthUser,
    until: Instant,
}

/// Taken before reading the database, handed back to store what was read.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

/// What an entry is keyed by.
#[derive(Debug, Clone, Copy)]
pub enum Key<'a> {
    /// An API token, by its hash.
    Token(&'a str),
    /// A browser session's user.
    SessionUser(i64),
}

impl AuthCache {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps inconsistent (each write is
        // one insert or clear), so a poisoned lock is still usable.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached caller for `key`, if any and still fresh.
    pub fn get(&self, key: Key<'_>) -> Option<AuthUser> {
        let inner = self.read();
        if !inner.live {
            return None;
        }
        let entry = match key {
            Key::Token(hash) => inner.tokens.get(hash),
            Key::SessionUser(id) => inner.users.get(&id),
        }?;
        (entry.until > Instant::now()).then(|| entry.user.clone())
    }

    /// A ticket to [`put`](Self::put) what is about to be read.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.read().generation)
    }

    /// Stores `user` for `key`, read after `ticket` was taken, unless an invalidation came in
    /// between. A token's entry ends no later than the token itself (`expires_at`).
    pub fn put(
        &self,
        ticket: Ticket,
        key: Key<'_>,
        user: &AuthUser,
        expires_at: Option<OffsetDateTime>,
    ) {
        let mut until = Instant::now() + TTL;
        if let Some(expires_at) = expires_at {
            let left = expires_at - OffsetDateTime::now_utc();
            let left = Duration::try_from(left).unwrap_or_default();
            until = until.min(Instant::now() + left);
        }
        let mut inner = self.write();
        if !inner.live || inner.generation != ticket.0 {
            return;
        }
        if inner.tokens.len() + inner.users.len() >= MAX_ENTRIES {
            inner.tokens.clear();
            inner.users.clear();
        }
        let entry = Entry {
            user: user.clone(),
            until,
        };
        match key {
            Key::Token(hash) => inner.tokens.insert(hash.to_owned(), entry),
            Key::SessionUser(id) => inner.users.insert(id, entry),
        };
    }

    /// Forgets every entry: an invalidation was heard, or this server changed a user, a
    /// membership, a customer or a token.
    pub fn clear(&self) {
        let mut inner = self.write();
        inner.generation += 1;
        inner.tokens.clear();
        inner.users.clear();
    }

    /// Whether invalidations are heard from now on (the listener is connected and listening)
    /// or no longer are. Either way the entries go: some change may have been missed.
    pub fn set_live(&self, live: bool) {
        let mut inner = self.write();
        inner.live = live;
        inner.generation += 1;
        inner.tokens.clear();
        inner.users.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{AuthMethod, Role};

    fn alice() -> AuthUser {
        AuthUser {
            id: 7,
            username: "alice".into(),
            role: Role::Operator,
            is_superuser: false,
            customers: Vec::new(),
            method: AuthMethod::Token,
            token: Some("ci".into()),
            client_addr: None,
        }
    }

    #[test]
    fn nothing_is_served_or_stored_while_invalidations_are_not_heard() {
        let cache = AuthCache::default();
        cache.put(cache.ticket(), Key::Token("h"), &alice(), None);
        assert!(cache.get(Key::Token("h")).is_none());
        cache.set_live(true);
        cache.put(cache.ticket(), Key::Token("h"), &alice(), None);
        assert_eq!(cache.get(Key::Token("h")).map(|u| u.id), Some(7));
        cache.set_live(false);
        assert!(cache.get(Key::Token("h")).is_none());
    }

    #[test]
    fn a_read_that_began_before_an_invalidation_is_not_stored() {
        let cache = AuthCache::default();
        cache.set_live(true);
        let ticket = cache.ticket();
        cache.clear();
        cache.put(ticket, Key::SessionUser(7), &alice(), None);
        assert!(cache.get(Key::SessionUser(7)).is_none());
        cache.put(cache.ticket(), Key::SessionUser(7), &alice(), None);
        assert!(cache.get(Key::SessionUser(7)).is_some());
        cache.clear();
        assert!(cache.get(Key::SessionUser(7)).is_none());
    }

    #[test]
    fn an_expired_token_is_not_served_from_the_cache() {
        let cache = AuthCache::default();
        cache.set_live(true);
        let past = OffsetDateTime::now_utc() - time::Duration::seconds(1);
        cache.put(cache.ticket(), Key::Token("old"), &alice(), Some(past));
        assert!(cache.get(Key::Token("old")).is_none());
        let soon = OffsetDateTime::now_utc() + time::Duration::hours(1);
        cache.put(cache.ticket(), Key::Token("new"), &alice(), Some(soon));
        assert!(cache.get(Key::Token("new")).is_some());
    }
}
