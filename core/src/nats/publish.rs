//! Publishing a simulated feed the way real sources do: each carrier sends one JSON scan per
//! message on `sg.scan.<carrier>`, each sensor gateway uploads batches (protobuf or Arrow) on
//! `sg.sensor.<gateway>`, and the control plane announces shipments on `sg.ship.<carrier>`.
//! Each source uses its own NATS user when credentials are given, as in the embedded stack.
//!
//! Used by `streamguard up --demo`, `streamguard simulate --nats` and `streamguard bench --nats`.

use super::setup::nats_err;
use super::subjects::content_type;
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

/// PubAcks in flight before the publisher waits for the oldest.
const ACK_WINDOW: usize = 8192;

#[derive(Clone, Debug)]
pub struct FeedConfig {
    pub nats_url: String,
    /// `(user, password)` by source: `carrier:<CODE>`, `gateway:<ID>`, `control`; `default`
    /// for any source not listed. Empty: connect without credentials.
    pub creds: HashMap<String, (String, String)>,
    /// Sensor gateways (`gw01`…); a shipment's readings always go through the same one.
    pub gateways: usize,
    pub sensor_format: Format,
    /// Readings per gateway upload.
    pub upload: usize,
    /// Most events per second (None: as fast as possible).
    pub rate: Option<f64>,
    /// Wait for a JetStream PubAck on every message (durable, slower) instead of plain publish.
    pub acks: bool,
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
            let client = opts
                .connect(self.cfg.nats_url.as_str())
                .await
                .map_err(|e| {
                    nats_err(
                        format!("{name}: cannot connect to {}", self.cfg.nats_url),
                        e,
                    )
                })?;
            let js = jetstream::new(client.clone());
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
    let gateways = cfg.gateways;
    let mut p = Publisher {
        cfg,
        sources: HashMap::new(),
        acks: VecDeque::new(),
        stats: FeedStats::default(),
    };
    let started = Instant::now();
    let mut batch = EventBatch::default();
    let mut invalid = Vec::new();
    // Readings waiting for their gateway's next upload, as row lists into `pending`.
    let mut pending = EventBatch::default();
    let mut by_gw: Vec<Vec<usize>> = vec![Vec::new(); gateways];
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
            let carrier = String::from_utf8_lossy(batch.carrier.get(i)).into_owned();
            match kind {
                Kind::Sensor => {
                    let g = gateway_of(batch.shipment.get(i), gateways);
                    by_gw[g].push(pending.len());
                    pending.push(&batch.event(i));
                    if by_gw[g].len() >= p.cfg.upload {
                        upload(&mut p, &pending, &mut by_gw[g], g).await?;
                    }
                }
                Kind::Scan | Kind::Shipment => {
                    line.clear();
                    json::encode_row(&batch, i, &mut line);
                    let (src, subject) = if kind == Kind::Scan {
                        (format!("carrier:{carrier}"), format!("sg.scan.{carrier}"))
                    } else {
                        ("control".to_string(), format!("sg.ship.{carrier}"))
                    };
                    p.send(&src, subject, Format::Json, line.clone(), 1).await?;
                }
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
        if by_gw.iter().all(Vec::is_empty) {
            pending.clear();
        }
        pace(&p, started).await;
    }
    for (g, rows) in by_gw.iter_mut().enumerate() {
        if !rows.is_empty() {
            upload(&mut p, &pending, rows, g).await?;
        }
    }
    pace(&p, started).await;
    p.finish().await?;
    p.stats.seconds = started.elapsed().as_secs_f64();
    Ok(p.stats)
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

/// One gateway upload of the readings listed in `rows`.
async fn upload(
    p: &mut Publisher,
    pending: &EventBatch,
    rows: &mut Vec<usize>,
    g: usize,
) -> Result<(), Error> {
    let mut body = Vec::new();
    let format = p.cfg.sensor_format;
    if format == Format::Protobuf {
        proto::encode(pending, rows.iter().copied(), &mut body);
    } else {
        let mut sub = EventBatch::default();
        rows.iter().for_each(|&i| sub.push(&pending.event(i)));
        arrow_ipc::write_ipc(&arrow_ipc::to_record_batches(&sub), &mut body);
    }
    let n = rows.len() as u64;
    rows.clear();
    let name = gateway_name(g);
    p.send(
        &format!("gateway:{name}"),
        format!("sg.sensor.{name}"),
        format,
        body,
        n,
    )
    .await
}
