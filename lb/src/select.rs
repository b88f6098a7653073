//! The choice of backend, apart from forwarding so it is testable without sockets:
//! round robin over the items that are usable right now.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Round robin over the usable items: the n-th pick takes the (n mod k)-th of the k
/// items usable at that moment, so a skipped item's share is spread evenly over the
/// others (taking "the next usable one after it" would double its neighbour's share).
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl RoundRobin {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next usable item of `items`, or `None` if none is usable.
    pub fn pick<'a, T>(&self, items: &'a [T], usable: impl Fn(&T) -> bool) -> Option<&'a T> {
        self.pick_index(items, usable).and_then(|i| items.get(i))
    }

    /// The index in `items` of the next usable item, or `None` if none is usable.
    pub fn pick_index<T>(&self, items: &[T], usable: impl Fn(&T) -> bool) -> Option<usize> {
        let ticket = self.next.fetch_add(1, Ordering::Relaxed);
        if items.len() <= 64 {
            // One pass: `usable` may take a lock, so ask each item once.
            let mut mask = 0u64;
            for (i, item) in items.iter().enumerate() {
                if usable(item) {
                    mask |= 1 << i;
                }
            }
            if mask == 0 {
                return None;
            }
            for _ in 0..ticket % mask.count_ones() as usize {
                mask &= mask - 1; // drop the lowest usable item
            }
            return Some(mask.trailing_zeros() as usize);
        }
        let count = items.iter().filter(|item| usable(item)).count();
        if count == 0 {
            return None;
        }
        // Another thread may change an item's state between the two passes.
        items
            .iter()
            .enumerate()
            .filter(|(_, item)| usable(item))
            .nth(ticket % count)
            .or_else(|| items.iter().enumerate().find(|(_, item)| usable(item)))
            .map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_evenly() {
        let rr = RoundRobin::new();
        let items = ["a", "b", "c"];
        let picks: Vec<_> = (0..6)
            .map(|_| *rr.pick(&items, |_| true).unwrap())
            .collect();
        assert_eq!(picks, ["a", "b", "c", "a", "b", "c"]);
    }

    #[test]
    fn skips_unusable_items() {
        let rr = RoundRobin::new();
        let items = ["a", "b", "c"];
        let picks: Vec<_> = (0..6)
            .map(|_| *rr.pick(&items, |i| *i != "b").unwrap())
            .collect();
        assert_eq!(picks, ["a", "c", "a", "c", "a", "c"]);
    }

    #[test]
    fn none_when_nothing_is_usable() {
        let rr = RoundRobin::new();
        assert!(rr.pick(&["a", "b"], |_| false).is_none());
        assert!(rr.pick::<&str>(&[], |_| true).is_none());
    }

    #[test]
    fn long_lists_rotate_evenly_too() {
        let rr = RoundRobin::new();
        let items: Vec<u32> = (0..100).collect();
        let mut counts = [0u32; 100];
        for _ in 0..500 {
            counts[*rr.pick(&items, |i| i % 2 == 0).unwrap() as usize] += 1;
        }
        for (i, c) in counts.iter().enumerate() {
            assert_eq!(*c, if i % 2 == 0 { 10 } else { 0 }, "item {i}");
        }
        let small: Vec<u32> = (0..64).collect();
        let mut counts = [0u32; 64];
        for _ in 0..320 {
            counts[*rr.pick(&small, |i| *i >= 32).unwrap() as usize] += 1;
        }
        assert!(counts[32..].iter().all(|c| *c == 10), "{counts:?}");
        assert!(counts[..32].iter().all(|c| *c == 0));
    }

    #[test]
    fn list_changes_keep_working() {
        let rr = RoundRobin::new();
        for _ in 0..5 {
            rr.pick(&["a", "b", "c", "d"], |_| true);
        }
        // A shorter list after a reload: still in range, still rotating.
        let picks: Vec<_> = (0..4)
            .map(|_| *rr.pick(&["x", "y"], |_| true).unwrap())
            .collect();
        assert_eq!(picks.iter().filter(|p| **p == "x").count(), 2);
    }
}
