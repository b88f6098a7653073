//! The pastes a run has created, shared by all virtual clients: appended under a lock
//! on each successful write (rare next to reads), copied into each client's own list
//! only when it has grown, so reads pick a key without touching shared state.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use http::Uri;

/// A paste written by this run, enough to read it back and check its text.
#[derive(Debug)]
pub struct Key {
    pub id: String,
    /// `/pastes/{id}`, parsed once.
    pub uri: Uri,
    /// What the text was made from (see [`crate::text::Texts::text`]).
    pub nonce: u64,
    pub size: usize,
}

/// All keys created so far (warm-up included), oldest first.
#[derive(Debug, Default)]
pub struct KeyStore {
    keys: RwLock<Vec<Arc<Key>>>,
    len: AtomicUsize,
}

impl KeyStore {
    pub fn push(&self, key: Key) {
        let mut keys = match self.keys.write() {
            Ok(k) => k,
            Err(poisoned) => poisoned.into_inner(),
        };
        keys.push(Arc::new(key));
        self.len.store(keys.len(), Ordering::Release);
    }

    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Brings `local` up to date (it is always a prefix of the shared list).
    pub fn sync(&self, local: &mut Vec<Arc<Key>>) {
        if self.len() > local.len() {
            let keys = match self.keys.read() {
                Ok(k) => k,
                Err(poisoned) => poisoned.into_inner(),
            };
            local.extend_from_slice(&keys[local.len()..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u64) -> Key {
        Key {
            id: format!("id{i}"),
            uri: Uri::from_static("/pastes/x"),
            nonce: i,
            size: 30,
        }
    }

    #[test]
    fn local_copies_catch_up_in_order() {
        let store = KeyStore::default();
        let mut local = Vec::new();
        store.sync(&mut local);
        assert!(local.is_empty() && store.is_empty());
        store.push(key(1));
        store.push(key(2));
        store.sync(&mut local);
        store.push(key(3));
        store.sync(&mut local);
        let nonces: Vec<u64> = local.iter().map(|k| k.nonce).collect();
        assert_eq!(nonces, [1, 2, 3]);
        assert_eq!(store.len(), 3);
    }
}
