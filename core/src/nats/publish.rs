//! Publishing a simulated feed the way real sources do: each carrier sends one JSON scan per
//! message on `sg.scan.<carrier>`, each sensor gateway uploads batches (protobuf or Arrow) on
//! `sg.sensor.<gateway>`, and the control plane announces shipments on `sg.ship.<carrier>`.
//! Each source uses its own NATS user when credentials are given, as in the embedded stack.
//!
//! Used by `streamguard up --demo`, `streamguard simulate --nats` and `streamguard bench --nats`.

use super::setup::nats_err;
use super::subjects::{content_type, is_token, partition_of};
use crate::error::{Error, ErrorKind};
use crate::event::{arrow as arrow_ipc, json, proto, EventBatch, Format, Kind};
use crate::sim::Simulator;
use async_nats::jetstream::{self, context::PublishAckFuture};
use async_nats::HeaderMap;
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// PubAcks in flight before the publisher waits for the oldest; below async-nats's 5000, past
/// which a publish blocks until an ack is awaited (see `worker.rs`).
const ACK_WINDOW: usize = 4096;

#[derive(Clone, Debug)]
pub struct FeedConfig {
    pub nats_url: String,
    /// `(user, password)` by source: `carrier:<CODE>`, `gateway:<ID>`, `control`; `default`
    /// for any source not listed. Empty: connect without credentials.
    pub creds: HashMap<String, (String, String)>,
    /// Sensor gateways (`gw01`…); a shipment's readings always go through the same one.
    pub gateways: usize,
    /// The format of uploads (protobuf or Arrow).
    pub sensor_format: Format,
    /// Events per upload (gateways; carriers too when `batched`).
    pub upload: usize,
    /// Most events per second (None: as fast as possible).
    pub rate: Option<f64>,
    /// Wait for a JetStream PubAck on every message (durable, slower) instead of plain publish.
    pub acks: bool,
    /// Scans and shipment events in uploads too (per carrier subject), not one per message.
    pub batched: bool,
    /// A partitioned deployment of this many workers: one-event messages carry the shipment
    /// as a subject token (the server maps it to its partition), uploads are split by
    /// partition and published on `….batch.<p>`.
    pub partitions: Option<u32>,
    /// Publish the simulator's invalid raw lines too (on their carrier-less `sg.scan.SIM`).
    pub invalid: bool,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct FeedStats {
    pub events: u64,
    pub messages: u64,
    pub invalid: u64,
    pub bytes: u64,
    pub seconds: f64,
}

struct Source {
    client: async_nats::Client,
    js: jetstream::Context,
}

struct Publisher {
    cfg: FeedConfig,
    sources: HashMap<String, Source>,
    acks: VecDeque<PublishAckFuture>,
    stats: FeedStats,
}

impl Publisher {
    async fn source(&mut self, name: &str) -> Result<&Source, Error> {
        if !self.sources.contains_key(name) {
            let mut opts = async_nats::ConnectOptions::new()
                .name(format!("streamguard-sim {name}"))
                .connection_timeout(Duration::from_secs(5));
            let creds = self.cfg.creds.get(name).or(self.cfg.creds.get("default"));
            if let Some((u, p)) = creds {
                // Per-user inbox prefixes: a source may read only its own PubAcks.
                opts = opts
                    .user_and_password(u.clone(), p.clone())
                    .custom_inbox_prefix(format!("_INBOX_{u}"));
            }
            let servers: Vec<&str> = self.cfg.nats_url.split(',').map(str::trim).collect();
            let client = opts.connect(servers).await.map_err(|e| {
                nats_err(
                    format!("{name}: cannot connect to {}", self.cfg.nats_url),
                    e,
                )
            })?;
            let js = jetstream::ContextBuilder::new()
                .timeout(Duration::from_secs(30))
                .build(client.clone());
            self.sources.insert(name.to_string(), Source { client, js });
        }
        Ok(&self.sources[name])
    }

    async fn send(
        &mut self,
        source: &str,
        subject: String,
        format: Format,
        payload: Vec<u8>,
        events: u64,
    ) -> Result<(), Error> {
        let mut headers = HeaderMap::new();
        headers.insert("Content-Type", content_type(format));
        self.stats.bytes += payload.len() as u64;
        self.stats.messages += 1;
        self.stats.events += events;
        let acks = self.cfg.acks;
        let src = self.source(source).await?;
        if acks {
            let fut = src
                .js
                .publish_with_headers(subject, headers, Bytes::from(payload))
                .await
                .map_err(|e| nats_err(format!("{source}: cannot publish"), e))?;
            self.acks.push_back(fut);
            if self.acks.len() >= ACK_WINDOW {
                self.wait_oldest(source).await?;
            }
        } else {
            src.client
                .publish_with_headers(subject, headers, Bytes::from(payload))
                .await
                .map_err(|e| nats_err(format!("{source}: cannot publish"), e))?;
        }
        Ok(())
    }

    async fn wait_oldest(&mut self, source: &str) -> Result<(), Error> {
        if let Some(f) = self.acks.pop_front() {
            f.await
                .map_err(|e| nats_err(format!("{source}: a message was not stored"), e))?;
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), Error> {
        while !self.acks.is_empty() {
            self.wait_oldest("feed").await?;
        }
        for (name, s) in &self.sources {
            s.client
                .flush()
                .await
                .map_err(|e| nats_err(format!("{name}: cannot flush"), e))?;
        }
        Ok(())
    }
}

/// The gateway that uploads a shipment's readings.
fn gateway_of(shipment: &[u8], gateways: usize) -> usize {
    (foldhash::fast::FixedState::with_seed(7).hash_one(shipment) % gateways as u64) as usize
}

pub fn gateway_name(i: usize) -> String {
    format!("gw{:02}", i + 1)
}

/// Events waiting for their source's next upload, by subject.
struct Bucket {
    source: String,
    subject: String,
    format: Format,
    rows: EventBatch,
}

/// Publish up to `max_events` events of `sim` (all of them if None), until the feed ends or
/// `stop` turns true.
pub async fn publish_feed(
    cfg: FeedConfig,
    sim: &mut Simulator,
    max_events: Option<u64>,
    stop: Option<watch::Receiver<bool>>,
) -> Result<FeedStats, Error> {
    if cfg.gateways == 0 || cfg.upload == 0 {
        return Err(Error::new(
            ErrorKind::Config,
            "feed: gateways and upload must be at least 1",
        ));
    }
    if cfg.sensor_format == Format::Json {
        return Err(Error::new(
            ErrorKind::Config,
            "feed: gateways upload protobuf or arrow, not json",
        ));
    }
    let mut p = Publisher {
        cfg,
        sources: HashMap::new(),
        acks: VecDeque::new(),
        stats: FeedStats::default(),
    };
    let started = Instant::now();
    let mut batch = EventBatch::default();
    let mut invalid = Vec::new();
    let mut buckets: Vec<Bucket> = Vec::new();
    let mut bucket_of: HashMap<(u8, Vec<u8>), usize> = HashMap::new();
    let mut line = Vec::new();
    let limit = max_events.unwrap_or(u64::MAX);
    let mut taken = 0u64;
    while taken < limit {
        if stop.as_ref().is_some_and(|s| *s.borrow()) {
            break;
        }
        let want = (limit - taken).min(4096) as usize;
        batch.clear();
        invalid.clear();
        if sim.next_batch(want, &mut batch, &mut invalid) == 0 && invalid.is_empty() {
            break;
        }
        taken += batch.len() as u64;
        for i in 0..batch.len() {
            let kind = Kind::from_u8(batch.kind[i]).unwrap_or(Kind::Scan);
            if kind != Kind::Sensor && !p.cfg.batched {
                // A carrier's feed: one JSON event per message.
                line.clear();
                json::encode_row(&batch, i, &mut line);
                let (src, mut subject) = source_of(&batch, i, kind, p.cfg.gateways);
                if let Some(n) = p.cfg.partitions {
                    let ship = batch.shipment.get(i);
                    if is_token(ship) {
                        subject.push('.');
                        subject.push_str(&String::from_utf8_lossy(ship));
                    } else {
                        subject.push_str(&format!(".batch.{}", partition_of(ship, n)));
                    }
                }
                p.send(&src, subject, Format::Json, line.clone(), 1).await?;
                continue;
            }
            // Uploads group events by their subject: a gateway, or (batched) a carrier.
            let mut key_token = if kind == Kind::Sensor {
                gateway_of(batch.shipment.get(i), p.cfg.gateways)
                    .to_le_bytes()
                    .to_vec()
            } else {
                batch.carrier.get(i).to_vec()
            };
            // Partitioned: one bucket per (source, partition), on `<subject>.batch.<p>`.
            let part = p
                .cfg
                .partitions
                .map(|n| partition_of(batch.shipment.get(i), n));
            if let Some(k) = part {
                key_token.extend_from_slice(&k.to_le_bytes());
            }
            let b = match bucket_of.get(&(kind as u8, key_token.clone())) {
                Some(&b) => b,
                None => {
                    let (source, mut subject) = source_of(&batch, i, kind, p.cfg.gateways);
                    if let Some(k) = part {
                        subject.push_str(&format!(".batch.{k}"));
                    }
                    buckets.push(Bucket {
                        source,
                        subject,
                        format: p.cfg.sensor_format,
                        rows: EventBatch::default(),
                    });
                    bucket_of.insert((kind as u8, key_token), buckets.len() - 1);
                    buckets.len() - 1
                }
            };
            buckets[b].rows.push_row(&batch, i);
            if buckets[b].rows.len() >= p.cfg.upload {
                upload(&mut p, &mut buckets[b]).await?;
            }
        }
        if p.cfg.invalid {
            for raw in &invalid {
                p.stats.invalid += 1;
                p.send(
                    "default",
                    "sg.scan.SIM".to_string(),
                    Format::Json,
                    raw.clone(),
                    0,
                )
                .await?;
            }
        }
        pace(&p, started).await;
    }
    for b in &mut buckets {
        if !b.rows.is_empty() {
            upload(&mut p, b).await?;
        }
    }
    pace(&p, started).await;
    p.finish().await?;
    p.stats.seconds = started.elapsed().as_secs_f64();
    Ok(p.stats)
}

/// The NATS user and subject that publish row `i`: its carrier's scans, its gateway's
/// readings, or the control plane's shipment events.
fn source_of(batch: &EventBatch, i: usize, kind: Kind, gateways: usize) -> (String, String) {
    let carrier = String::from_utf8_lossy(batch.carrier.get(i));
    match kind {
        Kind::Scan => (format!("carrier:{carrier}"), format!("sg.scan.{carrier}")),
        Kind::Shipment => ("control".to_string(), format!("sg.ship.{carrier}")),
        Kind::Sensor => {
            let g = gateway_name(gateway_of(batch.shipment.get(i), gateways));
            (format!("gateway:{g}"), format!("sg.sensor.{g}"))
        }
    }
}

/// Sleep until the events published so far are due at the configured rate.
async fn pace(p: &Publisher, started: Instant) {
    if let Some(rate) = p.cfg.rate {
        let due = Duration::from_secs_f64(p.stats.events as f64 / rate);
        let elapsed = started.elapsed();
        if due > elapsed {
            tokio::time::sleep(due - elapsed).await;
        }
    }
}

/// One upload of a bucket's events, in its format; the bucket is emptied.
async fn upload(p: &mut Publisher, b: &mut Bucket) -> Result<(), Error> {
    let mut body = Vec::new();
    if b.format == Format::Protobuf {
        proto::encode(&b.rows, 0..b.rows.len(), &mut body);
    } else {
        arrow_ipc::write_ipc(&arrow_ipc::to_record_batches(&b.rows), &mut body);
    }
    let n = b.rows.len() as u64;
    b.rows.clear();
    p.send(&b.source, b.subject.clone(), b.format, body, n)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimConfig;

    fn sim_batch() -> EventBatch {
        let mut sim = Simulator::new(SimConfig {
            shipments: 50,
            events: 3_000,
            ..SimConfig::default()
        });
        let (mut batch, mut invalid) = (EventBatch::default(), Vec::new());
        sim.next_batch(3_000, &mut batch, &mut invalid);
        batch
    }

    #[test]
    fn push_row_copies_every_column() {
        let src = sim_batch();
        let (mut by_row, mut by_event) = (EventBatch::default(), EventBatch::default());
        for i in (0..src.len()).rev() {
            by_row.push_row(&src, i);
            by_event.push(&src.event(i));
        }
        assert_eq!(by_row.len(), src.len());
        for i in 0..src.len() {
            assert_eq!(by_row.event(i), by_event.event(i));
        }
        assert_eq!(by_row.event(0), src.event(src.len() - 1));
    }

    #[test]
    fn each_shipment_has_one_gateway_and_sources_follow_the_kind() {
        let b = sim_batch();
        let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut kinds = [0usize; 3];
        for i in 0..b.len() {
            let kind = Kind::from_u8(b.kind[i]).unwrap();
            kinds[kind as usize] += 1;
            let (src, subject) = source_of(&b, i, kind, 3);
            match kind {
                Kind::Sensor => {
                    let g = gateway_of(b.shipment.get(i), 3);
                    assert_eq!(*seen.entry(b.shipment.get(i).to_vec()).or_insert(g), g);
                    assert_eq!(subject, format!("sg.sensor.{}", gateway_name(g)));
                    assert_eq!(src, format!("gateway:{}", gateway_name(g)));
                }
                Kind::Scan => {
                    let c = String::from_utf8_lossy(b.carrier.get(i));
                    assert_eq!(subject, format!("sg.scan.{c}"));
                    assert_eq!(src, format!("carrier:{c}"));
                }
                Kind::Shipment => assert_eq!(src, "control"),
            }
        }
        assert!(kinds.iter().all(|&n| n > 0), "{kinds:?}");
    }
}
