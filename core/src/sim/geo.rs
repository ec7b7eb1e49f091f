//! China's province-level regions (GB/T 2260, `regions.csv`), with what a route needs: where
//! each capital is, how much parcel traffic it sends, which carrier hubs lie between two regions.

use std::sync::OnceLock;

/// A copy of `shared/data/regions.csv`, kept beside the code so the crate builds on its own;
/// a test compares it with the shared file when that is present.
pub(crate) const REGIONS_CSV: &str = include_str!("regions.csv");

/// Capital coordinates and relative parcel volume (share of national express traffic, rough),
/// per region code. Not in regions.csv, which only names the regions.
const GEO_FACTS: [(u32, f64, f64, f64); 31] = [
    (110000, 39.90, 116.41, 5.0),
    (120000, 39.13, 117.20, 2.0),
    (130000, 38.04, 114.51, 4.0),
    (140000, 37.87, 112.55, 1.8),
    (150000, 40.84, 111.75, 1.0),
    (210000, 41.80, 123.43, 2.5),
    (220000, 43.82, 125.32, 1.2),
    (230000, 45.80, 126.53, 1.5),
    (310000, 31.23, 121.47, 5.0),
    (320000, 32.06, 118.80, 8.0),
    (330000, 30.27, 120.16, 10.0),
    (340000, 31.82, 117.23, 3.5),
    (350000, 26.07, 119.30, 4.5),
    (360000, 28.68, 115.86, 2.5),
    (370000, 36.65, 117.12, 6.0),
    (410000, 34.75, 113.63, 5.0),
    (420000, 30.59, 114.31, 4.0),
    (430000, 28.23, 112.94, 3.5),
    (440000, 23.13, 113.26, 14.0),
    (450000, 22.82, 108.37, 2.5),
    (460000, 20.04, 110.20, 0.8),
    (500000, 29.56, 106.55, 2.5),
    (510000, 30.57, 104.07, 4.5),
    (520000, 26.65, 106.63, 1.5),
    (530000, 25.04, 102.71, 2.0),
    (540000, 29.65, 91.17, 0.2),
    (610000, 34.34, 108.94, 2.5),
    (620000, 36.06, 103.83, 0.8),
    (630000, 36.62, 101.78, 0.3),
    (640000, 38.49, 106.23, 0.4),
    (650000, 43.83, 87.62, 1.0),
];

/// Regions whose winters (and high plateaus) make sub-zero cargo plausible.
const COLD: [u32; 8] = [
    150000, 210000, 220000, 230000, 540000, 620000, 630000, 650000,
];
/// Provinces with the carriers' national sorting hubs (Wuhan, Zhengzhou, Hangzhou, Guangzhou…).
const HUBS: [u32; 10] = [
    420000, 410000, 330000, 440000, 510000, 610000, 320000, 110000, 370000, 500000,
];

#[derive(Clone, Debug)]
pub(crate) struct Region {
    /// The six-digit code, e.g. `440000`; events carry `CN-` + this.
    pub code: &'static str,
    /// Its first two digits, e.g. `44`: what [`crate::scoring::province_of`] reads.
    pub province: u16,
    pub name_zh: &'static str,
    pub remote: bool,
    pub cold: bool,
    pub lat: f64,
    pub lon: f64,
}

pub(crate) struct Geo {
    pub regions: Vec<Region>,
    /// Great-circle km between capitals, `dist[a * n + b]`.
    dist: Vec<f32>,
    /// Per (origin, dest): the four hubs with the smallest detour, best first.
    pub(super) hubs_between: Vec<[u8; 4]>,
    /// Relative parcel volume per region.
    pub(super) volume: Vec<f64>,
}

/// A shipment's path: origin, up to two transit hubs, destination (region indexes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Route {
    pub nodes: [u8; 4],
    pub n: u8,
    /// Origin or destination is a remote region (偏远地区): slower legs, later delivery.
    pub remote: bool,
    pub cold: bool,
}

impl Route {
    pub fn origin(&self) -> usize {
        self.nodes[0] as usize
    }

    pub fn dest(&self) -> usize {
        self.nodes[self.n as usize - 1] as usize
    }

    pub fn node(&self, i: usize) -> usize {
        self.nodes[i.min(self.n as usize - 1)] as usize
    }
}

fn haversine_km(a: &Region, b: &Region) -> f64 {
    let (la1, la2) = (a.lat.to_radians(), b.lat.to_radians());
    let dla = la2 - la1;
    let dlo = (b.lon - a.lon).to_radians();
    let h = (dla / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlo / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().asin()
}

/// Parse the embedded CSV and join the coordinate table; panics only if the two embedded tables
/// disagree, which a unit test rules out.
fn build() -> Geo {
    let mut regions = Vec::new();
    let mut weights = Vec::new();
    for line in REGIONS_CSV.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let mut f = line.split(',');
        let (code, _name_en, name_zh, remote) = (
            f.next().unwrap_or(""),
            f.next().unwrap_or(""),
            f.next().unwrap_or(""),
            f.next().unwrap_or("").trim(),
        );
        let num: u32 = code.parse().expect("regions.csv: numeric code");
        let &(_, lat, lon, w) = GEO_FACTS
            .iter()
            .find(|g| g.0 == num)
            .expect("regions.csv: region without coordinates in geo.rs");
        regions.push(Region {
            code,
            province: (num / 10_000) as u16,
            name_zh,
            remote: remote == "1",
            cold: COLD.contains(&num),
            lat,
            lon,
        });
        weights.push(w);
    }
    let n = regions.len();
    let idx_of = |code: u32| {
        regions
            .iter()
            .position(|r| r.code.parse::<u32>().ok() == Some(code))
            .expect("known code") as u8
    };
    let mut dist = vec![0f32; n * n];
    for a in 0..n {
        for b in 0..n {
            dist[a * n + b] = haversine_km(&regions[a], &regions[b]) as f32;
        }
    }
    let hubs: Vec<u8> = HUBS.iter().map(|&c| idx_of(c)).collect();
    let mut hubs_between = Vec::with_capacity(n * n);
    for a in 0..n {
        for b in 0..n {
            let mut cand: Vec<(f32, u8)> = hubs
                .iter()
                .filter(|&&h| h as usize != a && h as usize != b)
                .map(|&h| {
                    let d = dist[a * n + h as usize] + dist[h as usize * n + b] - dist[a * n + b];
                    (d, h)
                })
                .collect();
            cand.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
            hubs_between.push([cand[0].1, cand[1].1, cand[2].1, cand[3].1]);
        }
    }
    Geo {
        regions,
        dist,
        hubs_between,
        volume: weights,
    }
}

pub(crate) fn geo() -> &'static Geo {
    static GEO: OnceLock<Geo> = OnceLock::new();
    GEO.get_or_init(build)
}

impl Geo {
    pub fn km(&self, a: usize, b: usize) -> f64 {
        f64::from(self.dist[a * self.regions.len() + b])
    }

    /// The region of a province code (`44`), if the geography has it.
    pub fn region_of(&self, province: u16) -> Option<usize> {
        self.regions.iter().position(|r| r.province == province)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_csv_region_has_facts_and_back() {
        let g = geo();
        assert_eq!(g.regions.len(), GEO_FACTS.len());
        assert!(g
            .regions
            .iter()
            .any(|r| r.code == "440000" && r.name_zh == "广东" && !r.remote));
        assert!(g.regions.iter().any(|r| r.code == "650000" && r.remote));
        // Guangzhou–Beijing is about 1,890 km.
        let (gd, bj) = (
            g.regions.iter().position(|r| r.code == "440000").unwrap(),
            g.regions.iter().position(|r| r.code == "110000").unwrap(),
        );
        assert!((1800.0..2000.0).contains(&g.km(gd, bj)));
    }

    #[test]
    fn embedded_csv_matches_shared_copy() {
        let shared =
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/regions.csv").to_string();
        match std::fs::read_to_string(&shared) {
            Ok(s) => assert_eq!(
                s, REGIONS_CSV,
                "core/src/sim/regions.csv drifted from {shared}"
            ),
            Err(_) => eprintln!("note: {shared} not found; embedded copy not compared"),
        }
    }
}
