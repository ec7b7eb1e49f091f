//! A repair network over the geography: depots (repair centres) and the customer regions they
//! serve. It draws each shipment's route, and says in closed form how often each route comes up.

use super::geo::{Geo, Route};
use super::rng::{cumulative, Rng};

/// Where the repair centres are by default (Shenzhen, Shanghai, Chengdu, Beijing, Wuhan).
const REPAIR_CENTRES: [u16; 5] = [44, 31, 51, 11, 42];
/// A customer sends to (or hears back from) the nearest depot this often, else any depot.
const NEAREST_DEPOT: f64 = 0.8;
/// Share of shipments going to a depot (a device sent in for repair) rather than back.
const INBOUND: f64 = 0.55;

/// Where shipments go: depots (repair centres) and the customer regions they serve.
pub(crate) struct Network {
    depots: Vec<u8>,
    /// The depot nearest to each region.
    nearest_depot: Vec<u8>,
    /// Cumulative parcel-volume weights of the customer regions (0 elsewhere).
    customer_cum: Vec<f64>,
}

impl Geo {
    /// A repair network: `depots` and `customers` are province codes of this geography (empty:
    /// the five default repair centres; every region, by parcel volume).
    ///
    /// # Panics
    /// On a province the geography lacks ([`crate::sim::SimConfig::validate`] rules that out).
    pub fn network(&self, depots: &[u16], customers: &[u16]) -> Network {
        let n = self.regions.len();
        let region = |p: u16| self.region_of(p).expect("validated province") as u8;
        let provinces = if depots.is_empty() {
            &REPAIR_CENTRES[..]
        } else {
            depots
        };
        let mut depots: Vec<u8> = Vec::new();
        for r in provinces.iter().map(|&p| region(p)) {
            if !depots.contains(&r) {
                depots.push(r);
            }
        }
        let nearest_depot = (0..n)
            .map(|r| {
                *depots
                    .iter()
                    .min_by(|&&x, &&y| self.km(r, x as usize).total_cmp(&self.km(r, y as usize)))
                    .expect("at least one depot")
            })
            .collect();
        let weights = (0..n).map(|r| {
            let served = customers.is_empty() || customers.contains(&self.regions[r].province);
            if served {
                self.volume[r]
            } else {
                0.0
            }
        });
        Network {
            depots,
            nearest_depot,
            customer_cum: cumulative(weights),
        }
    }
    /// A mail-in repair route: a customer sends to a depot (usually the nearest), or a repaired
    /// device goes back; 55 % of shipments are inbound.
    pub fn draw_route(&self, net: &Network, rng: &mut Rng) -> Route {
        let customer = rng.weighted(&net.customer_cum);
        let centre = if rng.chance(NEAREST_DEPOT) {
            net.nearest_depot[customer] as usize
        } else {
            net.depots[rng.below(net.depots.len() as u64) as usize] as usize
        };
        let (o, d) = if rng.chance(INBOUND) {
            (customer, centre)
        } else {
            (centre, customer)
        };
        let km = self.km(o, d);
        let k = if o == d {
            0
        } else if km < 600.0 {
            usize::from(rng.chance(0.3))
        } else if km < 1500.0 {
            usize::from(rng.chance(0.7))
        } else {
            1 + usize::from(rng.chance(0.4))
        };
        let best = self.hubs_between[o * self.regions.len() + d];
        let mut hubs = [best[rng.below(3) as usize], 0];
        if k == 2 {
            let mut other = best[rng.below(4) as usize];
            if other == hubs[0] {
                other = if best[0] == hubs[0] { best[1] } else { best[0] };
            }
            hubs[1] = other;
            if self.km(o, hubs[1] as usize) < self.km(o, hubs[0] as usize) {
                hubs.swap(0, 1);
            }
        }
        let mut nodes = [o as u8; 4];
        nodes[1..=k].copy_from_slice(&hubs[..k]);
        nodes[k + 1] = d as u8;
        let (ro, rd) = (&self.regions[o], &self.regions[d]);
        Route {
            nodes,
            n: k as u8 + 2,
            remote: ro.remote || rd.remote,
            cold: nodes[..k + 2]
                .iter()
                .any(|&r| self.regions[r as usize].cold),
        }
    }
}

impl Network {
    /// The probability that a drawn route goes from region `o` to region `d`, at `[o * n + d]`
    /// (`n` regions): what [`Geo::draw_route`] does, in closed form.
    pub fn route_shares(&self) -> Vec<f64> {
        let n = self.nearest_depot.len();
        let total = self.customer_cum.last().copied().unwrap_or(0.0);
        let mut share = vec![0.0; n * n];
        let mut prev = 0.0;
        for (c, &cum) in self.customer_cum.iter().enumerate() {
            let p_customer = (cum - prev) / total;
            prev = cum;
            if p_customer <= 0.0 {
                continue;
            }
            let any = (1.0 - NEAREST_DEPOT) / self.depots.len() as f64;
            for &depot in &self.depots {
                let k = depot as usize;
                let near = if depot == self.nearest_depot[c] {
                    NEAREST_DEPOT
                } else {
                    0.0
                };
                let p = p_customer * (near + any);
                share[c * n + k] += p * INBOUND;
                share[k * n + c] += p * (1.0 - INBOUND);
            }
        }
        share
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::geo::geo;
    use crate::sim::rng::Stream;

    #[test]
    fn routes_are_well_formed() {
        let g = geo();
        let net = g.network(&[], &[]);
        let mut rng = Rng::derive(5, Stream::Ship, 0);
        let mut with_hubs = 0;
        for _ in 0..5000 {
            let r = g.draw_route(&net, &mut rng);
            assert!((2..=4).contains(&r.n));
            let inner = &r.nodes[1..r.n as usize - 1];
            assert!(inner
                .iter()
                .all(|&h| h as usize != r.origin() && h as usize != r.dest()));
            if inner.len() == 2 {
                assert_ne!(inner[0], inner[1]);
            }
            with_hubs += usize::from(!inner.is_empty());
        }
        assert!(with_hubs > 1000, "{with_hubs}");
    }

    #[test]
    fn route_shares_match_drawn_routes() {
        let g = geo();
        let n = g.regions.len();
        let net = g.network(&[44, 31], &[44, 31, 11, 65]);
        let share = net.route_shares();
        assert!((share.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        let mut rng = Rng::derive(6, Stream::Ship, 0);
        let mut count = vec![0u32; n * n];
        let draws = 40_000;
        for _ in 0..draws {
            let r = g.draw_route(&net, &mut rng);
            count[r.origin() * n + r.dest()] += 1;
        }
        for (i, &c) in count.iter().enumerate() {
            let (p, got) = (share[i], f64::from(c) / f64::from(draws));
            let sd = (p * (1.0 - p) / f64::from(draws)).sqrt();
            assert!((got - p).abs() <= 4.0 * sd + 1e-9, "{i}: {got} vs {p}");
            let (o, d) = (g.regions[i / n].province, g.regions[i % n].province);
            let (depot, customer) = (|p| [44, 31].contains(&p), |p| [44, 31, 11, 65].contains(&p));
            if p > 0.0 {
                assert!(
                    depot(o) && customer(d) || customer(o) && depot(d),
                    "{o} -> {d}"
                );
            }
        }
    }
}
