//! Work queued per owner and handed out one owner at a time, so that an owner with a long
//! backlog delays another's next item by at most one item per other busy owner, not by its
//! whole backlog. The control threads take turns between principals (`control_thread`), an
//! event loop's helper threads between uids (`event_loop::helpers`).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// Items queued per owner `K`, in turn order.
pub(super) struct Turns<K, T> {
    queues: HashMap<K, VecDeque<T>>,
    /// The owners with queued items, in the order they are served.
    order: VecDeque<K>,
}

impl<K, T> Default for Turns<K, T> {
    fn default() -> Self {
        Turns {
            queues: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<K: Hash + Eq + Clone, T> Turns<K, T> {
    /// Queues `item` behind `owner`'s others; an owner without any joins the end of the turn
    /// order.
    pub(super) fn push(&mut self, owner: K, item: T) {
        match self.queues.get_mut(&owner) {
            Some(q) => q.push_back(item),
            None => {
                self.queues.insert(owner.clone(), VecDeque::from([item]));
                self.order.push_back(owner);
            }
        }
    }

    /// The oldest item of the owner whose turn it is; that owner goes to the end of the order
    /// if it has more.
    pub(super) fn next(&mut self) -> Option<T> {
        self.next_of(|_| true)
    }

    /// As [`Turns::next`], among the owners `eligible` accepts: the others keep their place
    /// in the order, ahead of the owner served.
    pub(super) fn next_of(&mut self, mut eligible: impl FnMut(&K) -> bool) -> Option<T> {
        let at = self.order.iter().position(&mut eligible)?;
        let owner = self.order.remove(at)?;
        let queue = self.queues.get_mut(&owner)?;
        let item = queue.pop_front();
        if queue.is_empty() {
            self.queues.remove(&owner);
        } else {
            self.order.push_back(owner);
        }
        item
    }

    /// Drops `owner`'s items that `keep` refuses (in their order), and the owner's place if
    /// none is left.
    pub(super) fn retain(&mut self, owner: &K, keep: impl FnMut(&T) -> bool) {
        let Some(queue) = self.queues.get_mut(owner) else {
            return;
        };
        queue.retain(keep);
        if queue.is_empty() {
            self.queues.remove(owner);
            self.order.retain(|k| k != owner);
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_serve_one_job_per_principal_in_turn_each_principals_in_order() {
        let mut t: Turns<Box<str>, String> = Turns::default();
        for i in 1..=3 {
            t.push("a".into(), format!("a{i}"));
        }
        t.push("b".into(), "b1".to_owned());
        t.push("c".into(), "c1".to_owned());
        t.push("b".into(), "b2".to_owned());
        let order: Vec<String> = std::iter::from_fn(|| t.next()).collect();
        assert_eq!(order, ["a1", "b1", "c1", "a2", "b2", "a3"]);
        assert!(
            t.is_empty() && t.queues.is_empty(),
            "nothing kept once served"
        );
        // A principal that comes back later joins the end of the order.
        t.push("b".into(), "b3".to_owned());
        t.push("a".into(), "a4".to_owned());
        assert_eq!(t.next().as_deref(), Some("b3"));
        assert_eq!(t.next().as_deref(), Some("a4"));
        assert_eq!(t.next(), None);
    }

    #[test]
    fn an_owner_passed_over_keeps_its_place_ahead_of_the_owner_served() {
        let mut t: Turns<u32, &str> = Turns::default();
        t.push(1, "1a");
        t.push(2, "2a");
        t.push(3, "3a");
        t.push(2, "2b");
        assert_eq!(t.next_of(|&k| k != 1), Some("2a"));
        assert_eq!(t.next_of(|&k| k == 7), None);
        // 1 was passed over: it is still first, then 3, then 2 (served, with more).
        let order: Vec<&str> = std::iter::from_fn(|| t.next()).collect();
        assert_eq!(order, ["1a", "3a", "2b"]);
    }

    #[test]
    fn retain_drops_an_owners_items_and_its_place_once_it_has_none() {
        let mut t: Turns<u32, (usize, &str)> = Turns::default();
        t.push(1, (10, "a"));
        t.push(1, (11, "b"));
        t.push(2, (20, "c"));
        t.push(1, (10, "d"));
        t.retain(&1, |&(slot, _)| slot != 10);
        assert_eq!(t.next(), Some((11, "b")));
        t.retain(&2, |_| false);
        assert!(t.is_empty() && t.queues.is_empty());
        t.retain(&9, |_| false);
        assert!(t.is_empty());
    }
}
