//! Snapshots of the engine's complete evaluation state, so the live engine can resume after
//! `kill -9` from its last snapshot and re-process the input after it with the same alerts.
//!
//! Format (integers little-endian, counts and lengths u32):
//!
//! - header, 24 bytes: magic `SGSNAP\r\n`, u32 format version, u32 CRC-32 (IEEE) of the body,
//!   u64 body length;
//! - body, in this order (each section is validated before the next is read):
//!   1. rules: version, lateness_ms, then each rule field by field (f64 as exact bits);
//!   2. counters: dead letters per [`Reason`], accepted, out-of-order, fired, resolved,
//!      retracted, max scan ts, watermark;
//!   3. carrier and location interners: each interned byte string in id order;
//!   4. evidence rings: layout (cap, width, metric of each column), ring count, raw u32 words;
//!   5. shipments: key arena, then one fixed 95-byte record per slot (77 in version 1, which
//!      had no scoring fields);
//!   6. threshold episodes, sorted by key (so equal states give equal bytes);
//!   7. dwell timers: near bucket, near timers sorted, far buckets in order;
//!   8. (version 2) carrier scoring: u8 on/off, then, if on, the lane statistics as
//!      [`LaneTable::encode`] writes them, length-prefixed; carriers are the ids of section 3.
//!
//! Compiled rules, the shipment hash table, lane models and scratch buffers are derived on
//! restore, not stored. The carrier interner is restored before rules compile, so
//! `where.carrier` ids match. A version-1 snapshot restores with scoring on and no lane
//! statistics: shipments in flight then have no lane until their next `shipment` event, and
//! no pickup time, so their deliveries are not counted.

mod rules;
mod wire;

use super::core::{Core, Counters, Episode};
use super::evidence::{Rings, CHUNK};
use super::scoring::Scoring;
use super::state::{Interner, Ship, Ships, NO_RING, SCORE_FLAGS};
use super::timers::{Timer, Timers};
use super::Engine;
use crate::error::Error;
use crate::event::{Reason, NONE_U8};
use crate::rules::RuleSet;
use crate::scoring::{is_province, LaneTable};
use std::collections::BTreeMap;
use std::sync::Arc;
pub(super) use wire::crc32;
use wire::{decode_err, Res, R, W};

/// `\r\n` makes a snapshot mangled by a text-mode copy fail on the magic, not deep inside.
const MAGIC: &[u8; 8] = b"SGSNAP\r\n";
const VERSION: u32 = 2;
/// The oldest version this build restores.
const OLDEST: u32 = 1;
const HEADER: usize = 24;
/// last_ts ×3, four masks, key_off, last_location, ring, two carriers, five u8 fields.
const SHIP_BYTES_V1: usize = 3 * 8 + 4 * 8 + 3 * 4 + 2 * 2 + 5;
/// Version 2 adds pickup ts, ETA minutes and six u8 scoring fields.
const SHIP_BYTES: usize = SHIP_BYTES_V1 + 8 + 4 + 6;
const TIMER_BYTES: usize = 8 + 4 + 1;
const EPISODE_BYTES: usize = 8 + 1 + 8 + 8;

pub(super) fn write(e: &Engine, out: &mut Vec<u8>) {
    let c = &e.core;
    let start = out.len();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&[0; 12]);
    let mut w = W(out);
    rules::put(&mut w, &c.set);
    w.len(e.rejected.len());
    e.rejected.iter().for_each(|&n| w.u64(n));
    let n = c.n;
    for v in [n.accepted, n.out_of_order, n.fired, n.resolved, n.retracted] {
        w.u64(v);
    }
    w.i64(c.max_scan_ts);
    w.i64(c.watermark);
    for interner in [&c.carriers, &c.locations] {
        let keys = interner.keys();
        w.len(keys.len());
        keys.iter().for_each(|k| w.bytes(k));
    }
    put_rings(&mut w, &c.rings);
    w.len(c.ships.len());
    w.bytes(c.ships.key_bytes());
    w.records(&c.ships.slots, SHIP_BYTES, put_ship);
    let mut eps: Vec<(u64, Episode)> = c.episodes.iter().map(|(&k, &v)| (k, v)).collect();
    // Sorted: hash map order depends on its history, and equal states must give equal bytes.
    eps.sort_unstable_by_key(|e| e.0);
    w.len(eps.len());
    for (k, ep) in eps {
        w.u64(k);
        w.u8(u8::from(ep.firing));
        w.i64(ep.start);
        w.f64(ep.peak);
    }
    let (near, near_bucket, far) = c.timers.parts();
    w.i64(near_bucket);
    put_timers(&mut w, &near);
    w.len(far.len());
    for (&b, ts) in far {
        w.i64(b);
        put_timers(&mut w, ts);
    }
    match &c.scoring {
        Some(sc) => {
            w.u8(1);
            let mut lanes = Vec::new();
            sc.table.encode(&mut lanes);
            w.bytes(&lanes);
        }
        None => w.u8(0),
    }
    let body = start + HEADER;
    let crc = crc32(&out[body..]);
    let len = (out.len() - body) as u64;
    out[start + 12..start + 16].copy_from_slice(&crc.to_le_bytes());
    out[start + 16..start + 24].copy_from_slice(&len.to_le_bytes());
}

pub(super) fn read(bytes: &[u8]) -> Result<Engine, Error> {
    let (version, body) = check_header(bytes)?;
    let ship_bytes = if version == 1 {
        SHIP_BYTES_V1
    } else {
        SHIP_BYTES
    };
    let mut r = R::new(body);
    r.section = "rules";
    let set = rules::get(&mut r)?;
    r.section = "counters";
    let mut rejected = [0; Reason::ALL.len()];
    if r.count(8)? != rejected.len() {
        return Err(decode_err(format!(
            "counters: dead letters by reason do not list this build's {} reasons",
            rejected.len()
        )));
    }
    for n in &mut rejected {
        *n = r.u64()?;
    }
    let mut core = Core::new(RuleSet::empty());
    let [accepted, out_of_order, fired, resolved, retracted] =
        [r.u64()?, r.u64()?, r.u64()?, r.u64()?, r.u64()?];
    core.n = Counters {
        accepted,
        out_of_order,
        fired,
        resolved,
        retracted,
    };
    core.max_scan_ts = r.i64()?;
    core.watermark = r.i64()?;
    r.section = "carriers";
    core.carriers = get_interner(&mut r)?;
    r.section = "locations";
    core.locations = get_interner(&mut r)?;

    let known = core.carriers.len();
    let (thr, dwell, layout) = core.compile(&set);
    if core.carriers.len() != known {
        return Err(decode_err(
            "rules: a where.carrier is missing from the carrier table",
        ));
    }
    r.section = "evidence rings";
    let (cap, width) = (r.u32()? as usize, r.u8()? as usize);
    let metric_of = r.take(width)?;
    if (cap, width, metric_of) != (layout.cap, layout.width, &layout.metric_of[..layout.width]) {
        return Err(decode_err(
            "evidence rings: layout does not match the rules",
        ));
    }
    let stride = layout.stride();
    let count = r.count(4 * stride)?;
    let mut chunks = Vec::with_capacity(count.div_ceil(CHUNK));
    for first in (0..count).step_by(CHUNK) {
        let mut chunk = vec![0u32; CHUNK * stride].into_boxed_slice();
        r.words(&mut chunk[..(count - first).min(CHUNK) * stride])?;
        chunks.push(chunk);
    }
    core.rings = Rings::from_chunks(layout, count as u32, chunks)
        .map_err(|e| decode_err(format!("evidence rings: {e}")))?;

    r.section = "shipments";
    let n = r.count(ship_bytes)?;
    let keys = r.bytes()?.to_vec();
    let records = r.take(n * ship_bytes)?;
    let mut slots = Vec::with_capacity(n);
    let limits = [
        thr.len(),
        dwell.len(),
        core.carriers.len(),
        core.locations.len(),
    ];
    for (i, rec) in records.chunks_exact(ship_bytes).enumerate() {
        let s = get_ship(rec);
        check_ship(&s, limits, core.rings.count())
            .map_err(|e| decode_err(format!("shipment {i}: {e}")))?;
        slots.push(s);
    }
    core.ships = Ships::from_parts(slots, keys).map_err(decode_err)?;

    r.section = "episodes";
    let n = r.count(EPISODE_BYTES)?;
    core.episodes = hashbrown::HashMap::with_capacity_and_hasher(n, Default::default());
    for _ in 0..n {
        let (key, firing, start, peak) = (r.u64()?, r.u8()?, r.i64()?, r.f64()?);
        let (slot, j) = ((key >> 8) as usize, (key & 0xff) as usize);
        let active = core.ships.slots.get(slot).map_or(0, |s| s.thr_active);
        if j >= thr.len() || active & (1 << j) == 0 || firing > 1 {
            return Err(decode_err(format!("episodes: {key:#x} has no active rule")));
        }
        let ep = Episode {
            firing: firing == 1,
            start,
            peak,
        };
        if core.episodes.insert(key, ep).is_some() {
            return Err(decode_err(format!("episodes: {key:#x} repeats")));
        }
    }

    r.section = "timers";
    let near_bucket = r.i64()?;
    let limits = (core.ships.len(), dwell.len());
    let near = get_timers(&mut r, limits)?;
    let mut far = BTreeMap::new();
    for _ in 0..r.count(12)? {
        let b = r.i64()?;
        if far.insert(b, get_timers(&mut r, limits)?).is_some() {
            return Err(decode_err(format!("timers: bucket {b} repeats")));
        }
    }
    core.timers = Timers::from_parts(near, near_bucket, far)
        .map_err(|e| decode_err(format!("timers: {e}")))?;
    r.section = "scoring";
    core.scoring = if version == 1 {
        Some(Box::new(Scoring::new(LaneTable::new(Default::default())?)))
    } else {
        get_scoring(&mut r, core.carriers.len())?
    };
    if !r.at_end() {
        return Err(decode_err(format!(
            "{} bytes after the last section",
            r.left()
        )));
    }
    core.thr = thr;
    core.dwell = dwell;
    core.set = Arc::new(set);
    Ok(Engine {
        core,
        batch: Default::default(),
        arrow: Default::default(),
        rejected,
        // Configuration, not state: the owner sets it again (`Engine::set_shard`).
        shard: None,
    })
}

/// The version and body of a snapshot whose header, length and checksum are right.
fn check_header(bytes: &[u8]) -> Res<(u32, &[u8])> {
    if bytes.len() < HEADER {
        return Err(decode_err(format!(
            "truncated: {} bytes, the header alone is {HEADER}",
            bytes.len()
        )));
    }
    if &bytes[..8] != MAGIC {
        return Err(decode_err("not a StreamGuard snapshot (bad magic)"));
    }
    let mut h = R::new(&bytes[8..HEADER]);
    let (version, crc, len) = (h.u32()?, h.u32()?, h.u64()?);
    if !(OLDEST..=VERSION).contains(&version) {
        return Err(decode_err(format!(
            "format version {version} is not supported (this build reads {OLDEST} to {VERSION})"
        )));
    }
    let body = &bytes[HEADER..];
    if len != body.len() as u64 {
        return Err(decode_err(format!(
            "truncated or padded: header says {len} body bytes, got {}",
            body.len()
        )));
    }
    let got = crc32(body);
    if got != crc {
        return Err(decode_err(format!(
            "checksum mismatch (stored {crc:#010x}, computed {got:#010x}): the snapshot is corrupt"
        )));
    }
    Ok((version, body))
}

/// Section 8: scoring off, or the lane statistics (whose carriers must be interned).
fn get_scoring(r: &mut R<'_>, carriers: usize) -> Res<Option<Box<Scoring>>> {
    match r.u8()? {
        0 => Ok(None),
        1 => {
            let table = LaneTable::decode(r.bytes()?)
                .map_err(|e| decode_err(format!("scoring: {}", e.message())))?;
            if let Some((key, _)) = table
                .lanes()
                .find(|(k, _)| k.carrier == 0 || usize::from(k.carrier) >= carriers)
            {
                return Err(decode_err(format!(
                    "scoring: lane {key:?} names no carrier"
                )));
            }
            Ok(Some(Box::new(Scoring::new(table))))
        }
        v => Err(decode_err(format!("scoring: flag {v}"))),
    }
}

fn get_interner(r: &mut R<'_>) -> Res<Interner> {
    let n = r.count(4)?;
    let keys = (0..n).map(|_| r.bytes()).collect::<Res<Vec<&[u8]>>>()?;
    let section = r.section;
    Interner::from_keys(keys).map_err(|e| decode_err(format!("{section}: {e}")))
}

fn put_rings(w: &mut W<'_>, rings: &Rings) {
    let l = &rings.layout;
    w.u32(l.cap as u32);
    w.u8(l.width as u8);
    w.0.extend_from_slice(&l.metric_of[..l.width]);
    w.len(rings.count() as usize);
    rings.words().for_each(|c| w.words(c));
}

fn put_ship(s: &Ship, b: &mut [u8]) {
    let mut p = 0;
    let mut put = |x: &[u8]| {
        b[p..p + x.len()].copy_from_slice(x);
        p += x.len();
    };
    s.last_ts.iter().for_each(|t| put(&t.to_le_bytes()));
    for m in [s.thr_active, s.dwell_armed, s.dwell_fired, s.dwell_queued] {
        put(&m.to_le_bytes());
    }
    for v in [s.key_off, s.last_location, s.ring] {
        put(&v.to_le_bytes());
    }
    put(&s.attr_carrier.to_le_bytes());
    put(&s.seen_carrier.to_le_bytes());
    put(&[
        s.key_len,
        s.last_status,
        s.tier,
        s.fragile,
        u8::from(s.attrs_known),
    ]);
    put(&s.pickup_ts.to_le_bytes());
    put(&s.score_eta_min.to_le_bytes());
    put(&[
        s.origin,
        s.dest,
        s.shocks,
        s.score_delay,
        s.score_damage,
        s.score_flags,
    ]);
}

fn get_ship(b: &[u8]) -> Ship {
    let mut rec = wire::Rec { buf: b, pos: 0 };
    let i64s = |rec: &mut wire::Rec<'_>| i64::from_le_bytes(rec.get());
    let u64s = |rec: &mut wire::Rec<'_>| u64::from_le_bytes(rec.get());
    let u32s = |rec: &mut wire::Rec<'_>| u32::from_le_bytes(rec.get());
    let u16s = |rec: &mut wire::Rec<'_>| u16::from_le_bytes(rec.get());
    let last_ts = [i64s(&mut rec), i64s(&mut rec), i64s(&mut rec)];
    let [thr_active, dwell_armed, dwell_fired, dwell_queued] = [
        u64s(&mut rec),
        u64s(&mut rec),
        u64s(&mut rec),
        u64s(&mut rec),
    ];
    let [key_off, last_location, ring] = [u32s(&mut rec), u32s(&mut rec), u32s(&mut rec)];
    let [attr_carrier, seen_carrier] = [u16s(&mut rec), u16s(&mut rec)];
    let [key_len, last_status, tier, fragile, attrs_known] = rec.get::<5>();
    let mut s = Ship::new(key_off, key_len);
    if b.len() == SHIP_BYTES {
        s.pickup_ts = i64s(&mut rec);
        s.score_eta_min = u32s(&mut rec);
        [
            s.origin,
            s.dest,
            s.shocks,
            s.score_delay,
            s.score_damage,
            s.score_flags,
        ] = rec.get::<6>();
    }
    Ship {
        last_ts,
        thr_active,
        dwell_armed,
        dwell_fired,
        dwell_queued,
        key_off,
        last_location,
        ring,
        attr_carrier,
        seen_carrier,
        key_len,
        last_status,
        tier,
        fragile,
        attrs_known: attrs_known != 0,
        ..s
    }
}

/// Indexes the hot paths use unchecked must be in range: `[threshold rules, dwell rules,
/// carriers, locations]`, and `rings` allocated.
fn check_ship(s: &Ship, limits: [usize; 4], rings: u32) -> Result<(), String> {
    let fits = |mask: u64, n: usize| n >= 64 || mask >> n == 0;
    let [thr, dwell, carriers, locations] = limits;
    if !fits(s.thr_active, thr)
        || ![s.dwell_armed, s.dwell_fired, s.dwell_queued]
            .iter()
            .all(|&m| fits(m, dwell))
    {
        return Err("rule bits past the rule set".into());
    }
    if usize::from(s.attr_carrier.max(s.seen_carrier)) >= carriers
        || s.last_location as usize >= locations
    {
        return Err("carrier or location outside its table".into());
    }
    if s.ring != NO_RING && s.ring >= rings {
        return Err(format!("evidence ring {} not allocated", s.ring));
    }
    // `where.tier` tests `1 << tier` on a u8.
    if s.tier >= 8 && s.tier != NONE_U8 {
        return Err(format!("tier code {}", s.tier));
    }
    let province = |p: u8| p == 0 || is_province(u16::from(p));
    if !province(s.origin) || !province(s.dest) {
        return Err(format!("lane provinces {}, {}", s.origin, s.dest));
    }
    let risk = |r: u8| r <= 200 || r == NONE_U8;
    if s.score_flags & !SCORE_FLAGS != 0 || !risk(s.score_delay) || s.score_damage > 200 {
        return Err("scoring fields out of range".into());
    }
    Ok(())
}

fn put_timers(w: &mut W<'_>, ts: &[Timer]) {
    w.len(ts.len());
    w.records(ts, TIMER_BYTES, |&(deadline, slot, j), b| {
        b[..8].copy_from_slice(&deadline.to_le_bytes());
        b[8..12].copy_from_slice(&slot.to_le_bytes());
        b[12] = j;
    });
}

fn get_timers(r: &mut R<'_>, (ships, dwell): (usize, usize)) -> Res<Vec<Timer>> {
    let n = r.count(TIMER_BYTES)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = (r.i64()?, r.u32()?, r.u8()?);
        if t.1 as usize >= ships || t.2 as usize >= dwell {
            return Err(decode_err(format!(
                "timers: {t:?} names no shipment or rule"
            )));
        }
        out.push(t);
    }
    Ok(out)
}
