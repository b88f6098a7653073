//! A bounded in-process cache of paste texts by path. Texts never change once written,
//! so an entry never goes stale; it only has to be evicted for room (oldest first).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

/// Texts by path, holding at most `capacity_bytes` of text. Entries larger than an
/// eighth of the capacity are not cached, so one huge paste cannot flush the rest.
pub struct TextCache {
    capacity_bytes: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<Arc<str>, Arc<str>>,
    order: VecDeque<Arc<str>>,
    bytes: usize,
}

impl TextCache {
    /// A cache of at most `capacity_bytes` of text; 0 disables caching.
    pub fn new(capacity_bytes: usize) -> Self {
        Self {
            capacity_bytes,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The text stored under `path`, if cached.
    pub fn get(&self, path: &str) -> Option<Arc<str>> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.map.get(path).cloned()
    }

    /// Caches `text` under `path` (if it fits) and returns it as shared text.
    pub fn insert(&self, path: &str, text: String) -> Arc<str> {
        let text: Arc<str> = Arc::from(text);
        let cost = text.len() + path.len();
        if self.capacity_bytes == 0 || cost > self.capacity_bytes / 8 {
            return text;
        }
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.map.contains_key(path) {
            return text;
        }
        while inner.bytes + cost > self.capacity_bytes {
            let Some(old) = inner.order.pop_front() else {
                break;
            };
            if let Some(old_text) = inner.map.remove(&old) {
                inner.bytes -= old_text.len() + old.len();
            }
        }
        let key: Arc<str> = Arc::from(path);
        inner.order.push_back(key.clone());
        inner.map.insert(key, text.clone());
        inner.bytes += cost;
        text
    }

    /// Bytes of text and keys held now.
    pub fn bytes(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_oldest_to_stay_within_capacity() {
        let cache = TextCache::new(80);
        cache.insert("a", "x".repeat(9));
        cache.insert("b", "y".repeat(9));
        assert_eq!(cache.bytes(), 20);
        for i in 0..10 {
            cache.insert(&format!("k{i}"), "z".repeat(8));
        }
        assert!(cache.bytes() <= 80);
        assert!(
            cache.get("a").is_none(),
            "the oldest entry is evicted first"
        );
        assert_eq!(cache.get("k9").as_deref(), Some("zzzzzzzz"));
    }

    #[test]
    fn large_entries_are_not_cached() {
        let cache = TextCache::new(80);
        let text = cache.insert("big", "q".repeat(50));
        assert_eq!(text.len(), 50);
        assert!(cache.get("big").is_none());
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn zero_capacity_disables_the_cache() {
        let cache = TextCache::new(0);
        cache.insert("a", "b".into());
        assert!(cache.get("a").is_none());
    }
}
