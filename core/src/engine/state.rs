//! Keyed per-shipment state in compact memory.
//!
//! A shipment is a `u32` slot: its key bytes live in one arena, the hash table stores only slot
//! numbers, and the per-slot record ([`Ship`]) is a fixed 104-byte struct (77 for the rules, 26
//! for carrier scoring: lane, pickup time, shock episodes, the last published score, and hints:
//! the lane's index in the scoring state and where its last p50 and p90 were).
//! Threshold episodes and dwell alerts that are not idle are a bit each in the record; the rare
//! non-idle episode details live in a side map, so an idle shipment costs nothing per rule.

use crate::event::NONE_U8;
use hashbrown::HashTable;
use std::hash::BuildHasher;
use std::sync::Arc;

/// "No value yet" for per-kind last timestamps: any accepted ts is larger.
pub const NO_TS: i64 = i64::MIN;
/// "No evidence ring".
pub const NO_RING: u32 = u32::MAX;
/// "No score published" / "no ETA" in [`Ship::score_eta_min`].
pub const NO_ETA: u32 = u32::MAX;
/// "Lane not looked up" in [`Ship::score_lane`].
pub const NO_LANE: u32 = u32::MAX;

/// [`Ship::score_flags`]: DELIVERED or RETURNED_TO_SENDER seen; the shipment is no longer scored.
pub const SCORE_TERMINAL: u8 = 1;
/// [`Ship::score_flags`]: the pickup has been counted on the shipment's lane.
pub const SCORE_PICKUP_COUNTED: u8 = 2;
/// Flags a snapshot may hold.
pub const SCORE_FLAGS: u8 = SCORE_TERMINAL | SCORE_PICKUP_COUNTED;

/// One tracked shipment.
#[derive(Clone, Debug)]
pub struct Ship {
    /// Last accepted ts per kind (indexed by `Kind as usize`).
    pub last_ts: [i64; 3],
    /// Threshold rules (by threshold index) whose episode is pending or firing.
    pub thr_active: u64,
    /// Dwell rules (by dwell index) armed by the last scan.
    pub dwell_armed: u64,
    /// Dwell rules whose alert fired on the watermark and awaits the next scan.
    pub dwell_fired: u64,
    /// Dwell rules with a deadline in the timer queue (at most one per rule).
    pub dwell_queued: u64,
    pub key_off: u32,
    /// Interned location of the last scan (dwell evidence).
    pub last_location: u32,
    /// Evidence ring index, or [`NO_RING`].
    pub ring: u32,
    /// Carrier from the latest `shipment` event (0 = unknown); what `where.carrier` matches.
    pub attr_carrier: u16,
    /// Carrier last seen on any event (0 = unknown); what alerts report.
    pub seen_carrier: u16,
    pub key_len: u8,
    /// Status code of the last scan, or [`NONE_U8`].
    pub last_status: u8,
    /// Tier code from the latest `shipment` event, or [`NONE_U8`].
    pub tier: u8,
    /// 0/1 from the latest `shipment` event, or [`NONE_U8`].
    pub fragile: u8,
    /// A `shipment` event has been seen: `where` filters can match.
    pub attrs_known: bool,
    // Carrier scoring (`scoring.rs`).
    /// The first PICKED_UP scan's ts, or [`NO_TS`].
    pub pickup_ts: i64,
    /// The last published score's ETA (p50) in minutes since the epoch, or [`NO_ETA`].
    pub score_eta_min: u32,
    /// Origin and destination provinces from the latest `shipment` event (0 = unknown).
    pub origin: u8,
    pub dest: u8,
    /// Shock episodes so far (saturating).
    pub shocks: u8,
    /// The last published delay risk in 1/200 steps, or [`NONE_U8`] (unknown).
    pub score_delay: u8,
    /// The last published damage risk in 1/200 steps.
    pub score_damage: u8,
    /// [`SCORE_TERMINAL`], [`SCORE_PICKUP_COUNTED`].
    pub score_flags: u8,
    /// The shipment's lane in the engine's scoring state, looked up on first use and reset
    /// when the lane changes, or [`NO_LANE`]. Derived, so snapshots do not keep it (it fits
    /// the record's padding).
    pub score_lane: u32,
    /// The buckets the last rescore found the p50 and p90 in (0: none), where the next one's
    /// searches start ([`crate::scoring::LaneView::rescore`]). Hints, not kept by snapshots.
    pub score_hints: [u16; 2],
}

// The record's size is part of the state budget (`bench`'s bytes per shipment).
const _: () = assert!(std::mem::size_of::<Ship>() == 104);

impl Ship {
    pub(super) fn new(key_off: u32, key_len: u8) -> Ship {
        Ship {
            last_ts: [NO_TS; 3],
            thr_active: 0,
            dwell_armed: 0,
            dwell_fired: 0,
            dwell_queued: 0,
            key_off,
            last_location: 0,
            ring: NO_RING,
            attr_carrier: 0,
            seen_carrier: 0,
            key_len,
            last_status: NONE_U8,
            tier: NONE_U8,
            fragile: NONE_U8,
            attrs_known: false,
            pickup_ts: NO_TS,
            score_eta_min: NO_ETA,
            origin: 0,
            dest: 0,
            shocks: 0,
            score_delay: NONE_U8,
            score_damage: 0,
            score_flags: 0,
            score_lane: NO_LANE,
            score_hints: [0; 2],
        }
    }
}

/// Shipment key → slot.
#[derive(Default)]
pub struct Ships {
    pub slots: Vec<Ship>,
    keys: Vec<u8>,
    table: HashTable<u32>,
    hasher: foldhash::fast::FixedState,
}

impl Ships {
    #[inline]
    pub fn key(&self, slot: u32) -> &[u8] {
        let s = &self.slots[slot as usize];
        &self.keys[s.key_off as usize..s.key_off as usize + s.key_len as usize]
    }

    /// The slot of `key`, created if new. `key` is 1–64 bytes (validated by the decoders).
    #[inline]
    pub fn slot(&mut self, key: &[u8]) -> u32 {
        let hash = self.hasher.hash_one(key);
        let (slots, keys) = (&self.slots, &self.keys);
        let eq = |&s: &u32| {
            let sh = &slots[s as usize];
            super::core::same_key(
                &keys[sh.key_off as usize..sh.key_off as usize + sh.key_len as usize],
                key,
            )
        };
        if let Some(&s) = self.table.find(hash, eq) {
            return s;
        }
        self.insert(hash, key)
    }

    #[cold]
    fn insert(&mut self, hash: u64, key: &[u8]) -> u32 {
        let slot = self.slots.len() as u32;
        let off = self.keys.len() as u32;
        self.keys.extend_from_slice(key);
        self.slots.push(Ship::new(off, key.len() as u8));
        let (slots, keys, hasher) = (&self.slots, &self.keys, &self.hasher);
        self.table.insert_unique(hash, slot, |&s| {
            let sh = &slots[s as usize];
            hasher.hash_one(&keys[sh.key_off as usize..sh.key_off as usize + sh.key_len as usize])
        });
        slot
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// The key arena (snapshots).
    pub fn key_bytes(&self) -> &[u8] {
        &self.keys
    }

    /// Rebuild from records and their key arena (snapshot restore); the hash table is derived.
    /// Fails on a key outside the arena, an empty or over-long key, or a repeated key.
    pub fn from_parts(slots: Vec<Ship>, keys: Vec<u8>) -> Result<Ships, String> {
        let hasher = foldhash::fast::FixedState::default();
        let mut table = HashTable::with_capacity(slots.len());
        for (slot, s) in slots.iter().enumerate() {
            let (off, len) = (s.key_off as usize, s.key_len as usize);
            let Some(key) = keys
                .get(off..off + len)
                .filter(|k| (1..=64).contains(&k.len()))
            else {
                return Err(format!(
                    "shipment {slot}: key {off}+{len} outside the key arena"
                ));
            };
            let key_of = |&t: &u32| {
                let t = &slots[t as usize];
                &keys[t.key_off as usize..t.key_off as usize + t.key_len as usize]
            };
            match table.entry(
                hasher.hash_one(key),
                |t| key_of(t) == key,
                |t| hasher.hash_one(key_of(t)),
            ) {
                hashbrown::hash_table::Entry::Vacant(v) => {
                    v.insert(slot as u32);
                }
                hashbrown::hash_table::Entry::Occupied(_) => {
                    return Err(format!(
                        "shipment {slot}: key repeats an earlier shipment's"
                    ));
                }
            }
        }
        Ok(Ships {
            slots,
            keys,
            table,
            hasher,
        })
    }

    /// Bytes held (capacity, not just length): records, key arena, hash table.
    pub fn bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Ship>()
            + self.keys.capacity()
            // hashbrown: one u32 plus one control byte per bucket.
            + self.table.capacity() * 5
    }
}

/// Interns small strings (carriers, locations) to integer ids; id 0 is the empty string.
/// Looked up by bytes, so the per-scan path does no UTF-8 check; decoders only hand out UTF-8.
pub struct Interner {
    names: Vec<Arc<str>>,
    ids: hashbrown::HashMap<Box<[u8]>, u32, foldhash::fast::FixedState>,
}

impl Default for Interner {
    fn default() -> Self {
        let mut ids = hashbrown::HashMap::default();
        ids.insert(Box::from(&b""[..]), 0);
        Interner {
            names: vec![Arc::from("")],
            ids,
        }
    }
}

impl Interner {
    #[inline]
    pub fn id(&mut self, s: &[u8]) -> u32 {
        if s.is_empty() {
            return 0;
        }
        match self.ids.get(s) {
            Some(&id) => id,
            None => self.add(s),
        }
    }

    #[cold]
    fn add(&mut self, s: &[u8]) -> u32 {
        let id = self.names.len() as u32;
        self.names.push(Arc::from(String::from_utf8_lossy(s)));
        self.ids.insert(Box::from(s), id);
        id
    }

    pub fn name(&self, id: u32) -> &Arc<str> {
        &self.names[id as usize]
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// The interned byte strings in id order, id 0 (the empty string) included (snapshots).
    pub fn keys(&self) -> Vec<&[u8]> {
        let mut keys = vec![&b""[..]; self.names.len()];
        for (k, &id) in &self.ids {
            keys[id as usize] = k;
        }
        keys
    }

    /// Rebuild from `keys` as [`Interner::keys`] lists them (snapshot restore).
    pub fn from_keys<'a>(keys: impl IntoIterator<Item = &'a [u8]>) -> Result<Interner, String> {
        let mut keys = keys.into_iter();
        if keys.next() != Some(&b""[..]) {
            return Err("entry 0 is not the empty string".into());
        }
        let mut it = Interner::default();
        for (i, k) in keys.enumerate() {
            if k.is_empty() || it.id(k) as usize != i + 1 {
                return Err(format!(
                    "entry {} is empty or repeats an earlier one",
                    i + 1
                ));
            }
        }
        Ok(it)
    }

    pub fn bytes(&self) -> usize {
        self.names.iter().map(|n| 2 * n.len() + 32).sum::<usize>() + self.ids.capacity() * 21
    }
}
