//! A monotone priority queue (radix heap) of `u64` keys. The simulator's clock never goes back,
//! so every key pushed is >= the last one popped; a radix heap then does each operation with a
//! few appends to short vectors instead of a binary heap's cache-missing sift over a million
//! entries — the difference between ~1 and several million events per second.

pub(crate) struct RadixHeap {
    /// The last key popped (or the floor given at creation).
    last: u64,
    /// Bucket 0 holds keys equal to `last`; bucket `i` holds keys whose highest bit differing
    /// from `last` is bit `i - 1`.
    buckets: Vec<Vec<u64>>,
    /// Bit `i - 1` set = bucket `i` (1..=64) is non-empty.
    nonempty: u64,
    len: usize,
}

impl RadixHeap {
    pub fn new(floor: u64) -> RadixHeap {
        RadixHeap {
            last: floor,
            buckets: (0..=64).map(|_| Vec::new()).collect(),
            nonempty: 0,
            len: 0,
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn capacity_bytes(&self) -> usize {
        self.buckets.iter().map(|b| b.capacity() * 8).sum()
    }

    #[inline]
    fn bucket(last: u64, key: u64) -> usize {
        64 - (key ^ last).leading_zeros() as usize
    }

    /// Push `key`; it must not be below the last key popped.
    #[inline]
    pub fn push(&mut self, key: u64) {
        debug_assert!(key >= self.last, "radix heap keys must be monotone");
        let b = Self::bucket(self.last, key);
        self.buckets[b].push(key);
        if b > 0 {
            self.nonempty |= 1 << (b - 1);
        }
        self.len += 1;
    }

    /// Remove and return the smallest key.
    pub fn pop(&mut self) -> Option<u64> {
        if self.buckets[0].is_empty() {
            if self.nonempty == 0 {
                return None;
            }
            let b = self.nonempty.trailing_zeros() as usize + 1;
            self.nonempty &= !(1 << (b - 1));
            let mut keys = std::mem::take(&mut self.buckets[b]);
            let min = keys.iter().copied().min().unwrap_or(self.last);
            self.last = min;
            // Every key here agrees with `min` above bit b - 1, so each lands in a lower bucket.
            for k in keys.drain(..) {
                let nb = Self::bucket(min, k);
                self.buckets[nb].push(k);
                if nb > 0 {
                    self.nonempty |= 1 << (nb - 1);
                }
            }
            self.buckets[b] = keys;
        }
        self.len -= 1;
        self.buckets[0].pop()
    }

    /// Call `f` on the keys most likely to be popped next (at most about `n`), without
    /// changing anything: the keys equal to the floor, then the lowest non-empty buckets while
    /// they are small enough to say. Lets the caller prefetch what it will touch.
    #[inline]
    pub fn peek_next(&self, n: usize, mut f: impl FnMut(u64)) {
        let mut left = n;
        for &k in self.buckets[0].iter().take(left) {
            f(k);
            left -= 1;
        }
        let mut mask = self.nonempty;
        while mask != 0 && left > 0 {
            let b = mask.trailing_zeros() as usize + 1;
            mask &= mask - 1;
            let keys = &self.buckets[b];
            for &k in keys.iter().take(left) {
                f(k);
            }
            if keys.len() >= left {
                break;
            }
            left -= keys.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::rng::{Rng, Stream};
    use std::collections::BinaryHeap;

    #[test]
    fn pops_in_order_like_a_binary_heap() {
        let mut rng = Rng::derive(3, Stream::Create, 0);
        let mut radix = RadixHeap::new(0);
        let mut reference = BinaryHeap::new();
        let mut now = 0u64;
        for step in 0..200_000u32 {
            if rng.chance(0.55) || radix.len() == 0 {
                let key = now + (rng.below(1 << 20) << 24 | u64::from(step));
                radix.push(key);
                reference.push(std::cmp::Reverse(key));
            } else {
                let k = radix.pop().unwrap();
                assert_eq!(Some(k), reference.pop().map(|r| r.0));
                now = k;
            }
        }
        while let Some(k) = radix.pop() {
            assert_eq!(Some(k), reference.pop().map(|r| r.0));
        }
        assert!(reference.is_empty());
    }
}
