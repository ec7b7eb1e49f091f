//! [`CodedLanes`]: a lane table whose carriers are named by code, the form in which lane
//! statistics leave an engine. An engine interns carrier codes to ids in its own order, so two
//! engines (partitions, processes, a restart with another history) give the same carrier
//! different ids; a table that is exported, published or merged carries the code of every id
//! and a merge maps the other table's ids onto this one's by code.
//!
//! Format (little-endian): header, 24 bytes: magic `SGLANK\r\n`, u32 version, u32 CRC-32 of the
//! body, u64 body length; body: u32 code count, each code as u16 length + UTF-8 bytes (index =
//! carrier id; index 0 may be the empty "unknown" code), then the [`LaneTable::encode`] bytes.

use super::config::ScoringConfig;
use super::lane::{LaneEstimate, LaneKey};
use super::table::LaneTable;
use crate::error::{Error, ErrorKind};
use std::collections::HashMap;
use std::sync::Arc;

const MAGIC: &[u8; 8] = b"SGLANK\r\n";
const VERSION: u32 = 1;
const HEADER: usize = 24;

/// Lane statistics with carrier codes: export, merge across partitions, estimates by code.
#[derive(Clone, Debug)]
pub struct CodedLanes {
    /// Carrier id → code (id 0, if present, is the empty "unknown" code).
    codes: Vec<Arc<str>>,
    ids: HashMap<Arc<str>, u16>,
    table: LaneTable,
}

#[cold]
fn err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Decode, format!("lane table: {}", msg.into()))
}

impl CodedLanes {
    /// An empty table; `Config` error if `config` does not validate.
    pub fn new(config: ScoringConfig) -> Result<CodedLanes, Error> {
        Ok(CodedLanes {
            codes: vec![Arc::from("")],
            ids: HashMap::new(),
            table: LaneTable::new(config)?,
        })
    }

    /// `table` whose carrier id `i` is `codes[i]`. `Decode` error if a code repeats, or a lane's
    /// carrier has no code (or the empty one).
    pub fn from_parts(codes: Vec<Arc<str>>, table: LaneTable) -> Result<CodedLanes, Error> {
        if codes.len() > usize::from(u16::MAX) + 1 {
            return Err(err(format!("{} carrier codes", codes.len())));
        }
        let mut ids = HashMap::with_capacity(codes.len());
        for (i, c) in codes.iter().enumerate() {
            if c.is_empty() {
                continue;
            }
            if ids.insert(c.clone(), i as u16).is_some() {
                return Err(err(format!("carrier code '{c}' repeats")));
            }
        }
        if let Some((key, _)) = table.lanes().find(|(k, _)| {
            codes
                .get(usize::from(k.carrier))
                .is_none_or(|c| c.is_empty())
        }) {
            return Err(err(format!("lane {key:?} has no carrier code")));
        }
        Ok(CodedLanes { codes, ids, table })
    }

    pub fn table(&self) -> &LaneTable {
        &self.table
    }

    /// The code of carrier id `id`.
    pub fn code(&self, id: u16) -> Option<&str> {
        self.codes
            .get(usize::from(id))
            .map(|c| &**c)
            .filter(|c| !c.is_empty())
    }

    /// The id of carrier `code` in this table.
    pub fn carrier(&self, code: &str) -> Option<u16> {
        self.ids.get(code).copied()
    }

    /// The smoothed estimate of lane (`carrier`, `origin`, `dest`) (provinces, or
    /// [`LaneKey::ANY`] for the carrier-wide figure); `None` for an unknown carrier or one
    /// without a delivery.
    pub fn estimate(&self, carrier: &str, origin: u16, dest: u16) -> Option<LaneEstimate> {
        let id = self.carrier(carrier)?;
        self.table.estimate(LaneKey::new(id, origin, dest))
    }

    /// Adds `other`'s statistics, its carriers mapped onto ours by code (new codes are added).
    /// `Config` error if the sketches' α or the half-life differ.
    pub fn merge(&mut self, other: &CodedLanes) -> Result<(), Error> {
        let mut map = vec![None; other.codes.len()];
        for (i, code) in other.codes.iter().enumerate() {
            if code.is_empty() {
                continue;
            }
            map[i] = Some(match self.ids.get(code) {
                Some(&id) => id,
                None => {
                    let id = u16::try_from(self.codes.len()).map_err(|_| {
                        Error::new(ErrorKind::Config, "lane table: more than 65,535 carriers")
                    })?;
                    self.codes.push(code.clone());
                    self.ids.insert(code.clone(), id);
                    id
                }
            });
        }
        let relabelled = other
            .table
            .relabel(|c| map.get(usize::from(c)).copied().flatten());
        self.table.merge(&relabelled)
    }

    /// Appends the encoding of `table` with carrier id `i` named `codes[i]` (what
    /// [`CodedLanes::encode`] writes, without building one).
    pub fn encode_parts<S: AsRef<str>>(codes: &[S], table: &LaneTable, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&[0; 12]);
        out.extend_from_slice(&(codes.len() as u32).to_le_bytes());
        for c in codes {
            let c = c.as_ref().as_bytes();
            let c = &c[..c.len().min(usize::from(u16::MAX))];
            out.extend_from_slice(&(c.len() as u16).to_le_bytes());
            out.extend_from_slice(c);
        }
        table.encode(out);
        let body = start + HEADER;
        let crc = crc32fast::hash(&out[body..]);
        let len = (out.len() - body) as u64;
        out[start + 12..start + 16].copy_from_slice(&crc.to_le_bytes());
        out[start + 16..start + 24].copy_from_slice(&len.to_le_bytes());
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        CodedLanes::encode_parts(&self.codes, &self.table, out);
    }

    /// Restores [`CodedLanes::encode`]'s bytes; `Decode` error naming what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<CodedLanes, Error> {
        if bytes.len() < HEADER || &bytes[..8] != MAGIC {
            return Err(err("not a coded lane table (bad magic)"));
        }
        let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        if word(8) != VERSION {
            return Err(err(format!(
                "format version {}, this build reads {VERSION}",
                word(8)
            )));
        }
        let body = &bytes[HEADER..];
        let len = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
        if len != body.len() as u64 {
            return Err(err(format!(
                "body is {} bytes, header says {len}",
                body.len()
            )));
        }
        if crc32fast::hash(body) != word(12) {
            return Err(err("checksum mismatch (corrupted)"));
        }
        let truncated = || err("truncated carrier codes");
        let n = body.get(..4).ok_or_else(truncated)?;
        let n = u32::from_le_bytes(n.try_into().expect("4 bytes")) as usize;
        if n.saturating_mul(2) > body.len() {
            return Err(truncated());
        }
        let mut pos = 4;
        let mut codes = Vec::with_capacity(n);
        for _ in 0..n {
            let l = body.get(pos..pos + 2).ok_or_else(truncated)?;
            let l = usize::from(u16::from_le_bytes([l[0], l[1]]));
            let c = body.get(pos + 2..pos + 2 + l).ok_or_else(truncated)?;
            let c = std::str::from_utf8(c).map_err(|_| err("a carrier code is not UTF-8"))?;
            codes.push(Arc::from(c));
            pos += 2 + l;
        }
        CodedLanes::from_parts(codes, LaneTable::decode(&body[pos..])?)
    }

    /// Every lane with its carrier's code, in key order (carrier-wide aggregates last).
    pub fn lanes(&self) -> impl Iterator<Item = (&str, LaneKey)> {
        self.table
            .lanes()
            .map(|(k, _)| (self.code(k.carrier).unwrap_or(""), k))
    }
}

impl LaneTable {
    /// A copy with carrier ids mapped by `map` (lanes of carriers it drops are left out, as
    /// are their SLA overrides). `map` must be one-to-one on the ids it keeps.
    pub fn relabel(&self, map: impl Fn(u16) -> Option<u16>) -> LaneTable {
        let mut config = self.config.clone();
        config.sla_overrides = config
            .sla_overrides
            .iter()
            .filter_map(|o| {
                map(o.carrier).map(|carrier| super::config::SlaOverride { carrier, ..*o })
            })
            .collect();
        let mut t = LaneTable::new(config).expect("a table's own configuration validates");
        t.decay = self.decay;
        for (key, stats) in self.keys.iter().zip(&self.stats) {
            if let Some(carrier) = map(key.carrier) {
                let i = t.create(LaneKey { carrier, ..*key });
                t.stats[i] = stats.clone();
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    /// Carriers "SF" and "JD" under the given ids; one delivery each on lane 31 → 11.
    fn coded(ids: [u16; 2], codes: &[&str], transit: [i64; 2]) -> CodedLanes {
        let mut t = LaneTable::new(ScoringConfig::default()).unwrap();
        for (id, tr) in ids.into_iter().zip(transit) {
            t.on_picked_up(LaneKey::new(id, 31, 11), 0);
            t.on_delivered(LaneKey::new(id, 31, 11), 0, tr, 72 * H);
        }
        CodedLanes::from_parts(codes.iter().map(|&c| Arc::from(c)).collect(), t).unwrap()
    }

    #[test]
    fn merge_maps_carriers_by_code() {
        // SF is id 1 here and id 2 there; JD the other way round.
        let mut a = coded([1, 2], &["", "SF", "JD"], [20 * H, 40 * H]);
        let b = coded([2, 1], &["", "JD", "SF"], [20 * H, 40 * H]);
        a.merge(&b).unwrap();
        let sf = a.estimate("SF", 31, 11).unwrap();
        let jd = a.estimate("JD", 31, 11).unwrap();
        // The older delivery of each has decayed a little (20 h of a 14-day half-life).
        assert!((sf.shipments - 2.0).abs() < 0.1, "{sf:?}");
        assert!((jd.shipments - 2.0).abs() < 0.1, "{jd:?}");
        assert!((sf.p50_ms / (20 * H) as f64 - 1.0).abs() < 0.01, "{sf:?}");
        assert!((jd.p50_ms / (40 * H) as f64 - 1.0).abs() < 0.01, "{jd:?}");
        assert_eq!(a.estimate("ZTO", 31, 11), None);
        // A carrier new to this table is added.
        let c = coded([1, 3], &["", "YTO", "", "SF"], [10 * H, 20 * H]);
        a.merge(&c).unwrap();
        assert!(a.estimate("YTO", 31, 11).is_some());
        assert!((a.estimate("SF", 31, 11).unwrap().shipments - 3.0).abs() < 0.2);
        assert_eq!(a.code(a.carrier("YTO").unwrap()), Some("YTO"));
    }

    #[test]
    fn round_trip_and_damage() {
        let a = coded([1, 2], &["", "SF", "JD"], [20 * H, 40 * H]);
        let mut bytes = Vec::new();
        a.encode(&mut bytes);
        let back = CodedLanes::decode(&bytes).unwrap();
        assert_eq!(back.estimate("JD", 31, 11), a.estimate("JD", 31, 11));
        let mut again = Vec::new();
        back.encode(&mut again);
        assert_eq!(again, bytes);
        assert_eq!(
            back.lanes().map(|(c, _)| c).collect::<Vec<_>>(),
            ["SF", "SF", "JD", "JD"]
        );
        for at in [0, 9, 14, 20, HEADER + 1, bytes.len() / 2, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x40;
            let e = CodedLanes::decode(&bad).expect_err("damage detected");
            assert_eq!(e.kind(), ErrorKind::Decode);
        }
        for len in [0, 10, HEADER, HEADER + 3, bytes.len() - 1] {
            assert!(CodedLanes::decode(&bytes[..len]).is_err(), "{len}");
        }
        // A lane whose carrier has no code, and a repeated code, are refused.
        let t = a.table().clone();
        assert!(CodedLanes::from_parts(vec![Arc::from(""), Arc::from("SF")], t.clone()).is_err());
        let twice = ["", "SF", "SF"].map(Arc::from).to_vec();
        assert!(CodedLanes::from_parts(twice, t).is_err());
    }
}
