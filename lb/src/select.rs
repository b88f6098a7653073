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
        let count = items.iter().filter(|item| usable(item)).count();
        if count == 0 {
            return None;
        }
        let nth = self.next.fetch_add(1, Ordering::Relaxed) % count;
        // Another thread may change an item's state between the two passes.
        items
            .iter()
            .filter(|item| usable(item))
            .nth(nth)
            .or_else(|| items.iter().find(|item| usable(item)))
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
