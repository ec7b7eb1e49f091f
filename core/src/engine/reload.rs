//! Hot reload (spec §3.3): a new rule set replaces the old one atomically. Rules whose id and
//! definition are unchanged keep their episodes and timers; changed or new rules start idle;
//! removed rules drop their state.

use super::core::{episode_key, Core, Head};
use std::sync::Arc;

/// For each old rule index, its index in the new table if the rule is unchanged.
fn carry(old: &[&Head], new: &[&Head]) -> Vec<Option<usize>> {
    old.iter()
        .map(|o| new.iter().position(|n| n.source == o.source))
        .collect()
}

/// Move the set bits of `mask` from old to new positions; bits of dropped rules vanish.
fn remap(mask: u64, map: &[Option<usize>]) -> u64 {
    let mut out = 0;
    for (old, new) in map.iter().enumerate() {
        if let Some(new) = new {
            if mask & (1 << old) != 0 {
                out |= 1 << new;
            }
        }
    }
    out
}

impl Core {
    /// Install `set`, carrying over the state of unchanged rules.
    pub(super) fn install(&mut self, set: crate::rules::RuleSet) {
        let (thr, dwell, layout) = self.compile(&set);
        let thr_map = carry(
            &self.thr.iter().map(|t| &t.head).collect::<Vec<_>>(),
            &thr.iter().map(|t| &t.head).collect::<Vec<_>>(),
        );
        let dwell_map = carry(
            &self.dwell.iter().map(|d| &d.head).collect::<Vec<_>>(),
            &dwell.iter().map(|d| &d.head).collect::<Vec<_>>(),
        );

        let mut episodes = std::mem::take(&mut self.episodes);
        let mut kept =
            hashbrown::HashMap::with_capacity_and_hasher(episodes.len(), Default::default());
        for (key, ep) in episodes.drain() {
            let (slot, old) = ((key >> 8) as u32, (key & 0xff) as usize);
            if let Some(Some(new)) = thr_map.get(old) {
                kept.insert(episode_key(slot, *new), ep);
            }
        }
        self.episodes = kept;

        self.timers.clear();
        for (slot, s) in self.ships.slots.iter_mut().enumerate() {
            s.thr_active = remap(s.thr_active, &thr_map);
            s.dwell_armed = remap(s.dwell_armed, &dwell_map);
            s.dwell_fired = remap(s.dwell_fired, &dwell_map);
            let pending = s.dwell_armed & !s.dwell_fired;
            s.dwell_queued = pending;
            for (j, d) in dwell.iter().enumerate() {
                if pending & (1 << j) != 0 {
                    let deadline = s.last_ts[crate::event::Kind::Scan as usize] + d.for_ms;
                    self.timers.push((deadline, slot as u32, j as u8));
                }
            }
        }
        self.rings.relayout(layout, &mut self.ships.slots);
        self.thr = thr;
        self.dwell = dwell;
        self.set = Arc::new(set);
    }
}
