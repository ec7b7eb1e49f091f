//! Evidence rings out of and back into engine snapshots (`engine/snapshot.rs`).

use super::{Layout, Rings, CHUNK};

impl Rings {
    /// Rings allocated so far.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The words of every allocated ring, chunk by chunk, in ring order.
    pub fn words(&self) -> impl Iterator<Item = &[u32]> {
        let (stride, mut left) = (self.layout.stride(), self.count as usize);
        self.chunks.iter().map(move |c| {
            let n = left.min(CHUNK);
            left -= n;
            &c[..n * stride]
        })
    }

    /// Rebuild `count` rings from chunks holding [`Rings::words`]' output, each zero-padded to
    /// [`CHUNK`] rings. Ring headers are checked, since the hot paths index by them unchecked.
    pub fn from_chunks(
        layout: Layout,
        count: u32,
        chunks: Vec<Box<[u32]>>,
    ) -> Result<Rings, String> {
        let cap = layout.cap;
        let sized = chunks.iter().all(|c| c.len() == CHUNK * layout.stride());
        if (count > 0 && layout.is_off())
            || !sized
            || chunks.len() != (count as usize).div_ceil(CHUNK)
        {
            return Err(format!("{count} rings do not fit the layout or the chunks"));
        }
        let rings = Rings {
            layout,
            chunks,
            count,
        };
        let bad = |id: &u32| {
            let h = rings.ring(*id)[2];
            (h >> 16) as usize > cap || (h & 0xffff) as usize >= cap
        };
        match (0..count).find(bad) {
            Some(id) => Err(format!("ring {id}: length or head past capacity {cap}")),
            None => Ok(rings),
        }
    }
}
