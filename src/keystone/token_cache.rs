//! Validated tokens remembered for `token_cache_time`, bounded in entries.
//!
//! Keys are SHA-256 digests of the tokens, so the cache never holds a usable
//! credential. When full, expired entries go first, then the oldest.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::TokenInfo;

type Key = [u8; 32];

pub struct TokenCache {
    ttl: Duration,
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<Key, (TokenInfo, Instant)>,
    /// Insertion order, for evicting the oldest.
    order: VecDeque<Key>,
}

impl TokenCache {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        TokenCache {
            ttl,
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn key(token: &str) -> Key {
        Sha256::digest(token.as_bytes()).into()
    }

    /// The token's data, if validated less than `ttl` ago.
    pub fn get(&self, token: &str) -> Option<TokenInfo> {
        if self.ttl.is_zero() {
            return None;
        }
        let key = Self::key(token);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match inner.entries.get(&key) {
            Some((info, until)) if *until > Instant::now() => Some(info.clone()),
            Some(_) => {
                inner.entries.remove(&key);
                None
            }
            None => None,
        }
    }

    pub fn insert(&self, token: &str, info: TokenInfo) {
        if self.ttl.is_zero() {
            return;
        }
        let key = Self::key(token);
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.entries.len() >= self.capacity && !inner.entries.contains_key(&key) {
            inner.entries.retain(|_, (_, until)| *until > now);
            while inner.entries.len() >= self.capacity {
                let Some(oldest) = inner.order.pop_front() else {
                    break;
                };
                inner.entries.remove(&oldest);
            }
        }
        if inner.entries.insert(key, (info, now + self.ttl)).is_none() {
            inner.order.push_back(key);
        }
        // Keys of entries already gone linger in `order`; keep it from growing
        // past a small multiple of the live entries.
        if inner.order.len() > 2 * self.capacity {
            let Inner { entries, order } = &mut *inner;
            order.retain(|k| entries.contains_key(k));
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().unwrap().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(user: &str) -> TokenInfo {
        TokenInfo {
            user_id: user.into(),
            project_id: None,
            roles: vec![],
            system_all: false,
            expires_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn bounded_and_oldest_first() {
        let cache = TokenCache::new(Duration::from_secs(60), 2);
        cache.insert("a", info("a"));
        cache.insert("b", info("b"));
        cache.insert("c", info("c"));
        assert_eq!(cache.len(), 2);
        assert!(cache.get("a").is_none());
        assert_eq!(cache.get("c").unwrap().user_id, "c");
        for i in 0..100 {
            cache.insert(&i.to_string(), info("x"));
        }
        assert_eq!(cache.len(), 2);
        assert!(cache.inner.lock().unwrap().order.len() <= 4);
    }

    #[test]
    fn entries_lapse_after_the_ttl() {
        let cache = TokenCache::new(Duration::from_millis(20), 10);
        cache.insert("a", info("a"));
        assert!(cache.get("a").is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert!(cache.get("a").is_none());
        let off = TokenCache::new(Duration::ZERO, 10);
        off.insert("a", info("a"));
        assert!(off.get("a").is_none());
    }
}
