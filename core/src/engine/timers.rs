//! Dwell deadlines as a two-level calendar queue.
//!
//! With a million shipments in flight a single binary heap of deadlines is mostly out of cache,
//! and every pop walks it. Here deadlines wait in ~65-second buckets (a `BTreeMap` of vectors,
//! touched once per push); only buckets the watermark has reached move into a small heap,
//! which pops them in exact (deadline, slot, rule) order.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

/// A dwell deadline: (deadline, slot, dwell rule index). Ties fire in slot then rule order.
pub(super) type Timer = (i64, u32, u8);

/// log2 of the bucket width in milliseconds (65.5 s).
const SHIFT: u32 = 16;

#[inline]
fn bucket(deadline: i64) -> i64 {
    deadline >> SHIFT
}

pub(super) struct Timers {
    /// Every timer in a bucket up to `near_bucket`.
    near: BinaryHeap<Reverse<Timer>>,
    near_bucket: i64,
    /// Later buckets, by bucket number.
    far: BTreeMap<i64, Vec<Timer>>,
    len: usize,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            near: BinaryHeap::new(),
            near_bucket: i64::MIN,
            far: BTreeMap::new(),
            len: 0,
        }
    }
}

impl Timers {
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn push(&mut self, t: Timer) {
        let b = bucket(t.0);
        if b <= self.near_bucket {
            self.near.push(Reverse(t));
        } else {
            self.far.entry(b).or_default().push(t);
        }
        self.len += 1;
    }

    /// The earliest timer with deadline ≤ `w`, removed; `None` if none is due.
    #[inline]
    pub fn pop_due(&mut self, w: i64) -> Option<Timer> {
        loop {
            if let Some(&Reverse(t)) = self.near.peek() {
                if t.0 <= w {
                    self.near.pop();
                    self.len -= 1;
                    return Some(t);
                }
                // Everything in `far` is later than anything in `near`.
                return None;
            }
            match self.far.first_key_value() {
                Some((&b, _)) if b <= bucket(w) => {
                    if let Some((b, ts)) = self.far.pop_first() {
                        self.near.extend(ts.into_iter().map(Reverse));
                        self.near_bucket = b;
                    }
                }
                _ => return None,
            }
        }
    }

    /// The queue as (near timers in order, near bucket, far buckets), for snapshots.
    pub fn parts(&self) -> (Vec<Timer>, i64, &BTreeMap<i64, Vec<Timer>>) {
        let mut near: Vec<Timer> = self.near.iter().map(|t| t.0).collect();
        // Sorted, so the same queue always gives the same bytes whatever the heap's layout.
        near.sort_unstable();
        (near, self.near_bucket, &self.far)
    }

    /// Rebuild from [`Timers::parts`] (snapshot restore). Fails if a timer sits in the wrong
    /// level or bucket, which would break the pop order.
    pub fn from_parts(
        near: Vec<Timer>,
        near_bucket: i64,
        far: BTreeMap<i64, Vec<Timer>>,
    ) -> Result<Timers, String> {
        if let Some(t) = near.iter().find(|t| bucket(t.0) > near_bucket) {
            return Err(format!(
                "near timer {t:?} is past the near bucket {near_bucket}"
            ));
        }
        for (&b, ts) in &far {
            if b <= near_bucket || ts.iter().any(|t| bucket(t.0) != b) {
                return Err(format!("far bucket {b} holds a timer of another bucket"));
            }
        }
        let len = near.len() + far.values().map(Vec::len).sum::<usize>();
        Ok(Timers {
            near: near.into_iter().map(Reverse).collect(),
            near_bucket,
            far,
            len,
        })
    }

    pub fn clear(&mut self) {
        *self = Timers::default();
    }

    /// Bytes held, by capacity.
    pub fn bytes(&self) -> usize {
        let t = std::mem::size_of::<Timer>();
        self.near.capacity() * t
            + self
                .far
                .values()
                .map(|v| v.capacity() * t + 48)
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_deadline_slot_rule_order_across_buckets() {
        let mut t = Timers::default();
        let day = 86_400_000;
        let input = [
            (day, 5, 0),
            (5, 9, 1),
            (5, 2, 3),
            (5, 2, 1),
            (70_000, 1, 0),
            (-3, 4, 0),
        ];
        input.iter().for_each(|&x| t.push(x));
        assert_eq!(t.pop_due(4), Some((-3, 4, 0)));
        assert_eq!(t.pop_due(4), None);
        // A late push into a bucket already in the near heap keeps the order.
        t.push((5, 1, 0));
        let got: Vec<Timer> = std::iter::from_fn(|| t.pop_due(100_000)).collect();
        assert_eq!(
            got,
            vec![(5, 1, 0), (5, 2, 1), (5, 2, 3), (5, 9, 1), (70_000, 1, 0)]
        );
        assert_eq!(t.len(), 1);
        assert_eq!(t.pop_due(i64::MAX), Some((86_400_000, 5, 0)));
        assert_eq!((t.len(), t.pop_due(i64::MAX)), (0, None));
    }

    #[test]
    fn matches_a_plain_heap() {
        let mut x = 0x2545f4914f6cdd1du64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let (mut t, mut h) = (Timers::default(), BinaryHeap::<Reverse<Timer>>::new());
        let mut w = 0i64;
        for _ in 0..20_000 {
            if rnd() % 3 == 0 {
                w += (rnd() % 200_000) as i64;
                loop {
                    let want = match h.peek() {
                        Some(&Reverse(top)) if top.0 <= w => h.pop().map(|Reverse(v)| v),
                        _ => None,
                    };
                    assert_eq!(t.pop_due(w), want);
                    if want.is_none() {
                        break;
                    }
                }
            } else {
                let item = (
                    w + (rnd() % 10_000_000) as i64 - 1_000_000,
                    (rnd() % 50) as u32,
                    (rnd() % 3) as u8,
                );
                t.push(item);
                h.push(Reverse(item));
            }
        }
    }
}
