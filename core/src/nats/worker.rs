//! The live loop: pull a batch, evaluate it, publish its outputs, wait for their PubAcks, ack
//! the input, and now and then checkpoint.
//!
//! Exactly-once output across a crash rests on three facts:
//! 1. A checkpoint is taken only when every output of the input it covers is PubAck'ed.
//! 2. On start the consumer is re-created to deliver from the checkpoint's sequence + 1, so the
//!    state sees every message once (whatever the server's ack floor says).
//! 3. Outputs published between the checkpoint and the crash are read back from `SG_ALERTS`
//!    and `SG_DLQ` by their `Nats-Msg-Id`, and re-processing skips them instead of publishing
//!    them again. That does not depend on JetStream's duplicate window.
//!
//! Score records (`SG_SCORES`) are a live view, not evidence, and are not read back: there are
//! many of them (a quarter of the events of the simulated feed), and reading them back would
//! slow every restart. Re-processing publishes them again with the same `Nats-Msg-Id`, which
//! JetStream drops within its duplicate window (2 minutes); after a longer outage the stream
//! may hold a record twice (the same record; ClickHouse storage is still deduplicated by the
//! item's token). A lane's tail sums rebuilt at another moment after a restart may also round a
//! score differently (see `engine/scoring.rs`); the lane statistics are restored exactly.
//!
//! With scoring on, the engine's lane table (carriers by code) is put in KV `sg_lanes` under
//! the durable name at each checkpoint interval, so the control plane can merge the partitions.
//!
//! Evaluation is deterministic, so the re-processed input yields the same records, with the
//! same ids, as the run that crashed (in `--time event`; in `--time wall` the wall-clock
//! watermark is held still while recovering, since the crashed run's clock cannot be replayed).

use super::checkpoint::{self, Position};
use super::setup::{self, nats_err};
use super::status::{Phase, Status};
use super::store::{Journal, StoreItem, StoreSender};
use super::subjects::{self, *};
use super::LiveConfig;
use crate::engine::alert::Alert;
use crate::engine::score::ScoreRecord;
use crate::engine::Engine;
use crate::error::{Error, ErrorKind};
use crate::event::{DeadLetter, Format, Reason};
use crate::rules::RuleSet;
use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Outputs awaiting their PubAck before the oldest is waited for. async-nats admits 5000
/// unacknowledged publishes and then blocks the next one until an ack is *awaited*, so a
/// batch raising more alerts than that would wait on itself forever.
const MAX_IN_FLIGHT: usize = 4096;

/// Most bytes of input one pull asks for.
const PULL_BYTES: usize = 8 << 20;

/// Sends of one output before a missing PubAck stops the engine (30 s each).
const PUBLISH_ATTEMPTS: u32 = 5;

/// Consecutive consumer errors after which the engine gives up (heartbeats are every 5 s).
const MAX_CONSUMER_ERRORS: u32 = 12;

/// Run the live engine until `stop` turns true (or its sender is dropped). The final state is
/// checkpointed before returning. Progress and errors are reported through `status`.
pub async fn run(
    cfg: LiveConfig,
    status: Arc<Status>,
    mut stop: watch::Receiver<bool>,
    store: Option<StoreSender>,
) -> Result<(), Error> {
    let res = run_inner(&cfg, &status, &mut stop, store).await;
    status.update(|s| match &res {
        Ok(()) => s.phase = Phase::Stopped,
        Err(e) => {
            s.phase = Phase::Failed;
            s.error = Some(e.to_string());
        }
    });
    res
}

mod control;
mod outputs;
mod storage;

/// Outputs re-processing may find already published.
struct Recovery {
    ids: HashSet<String>,
    /// The last sequence the crashed run was handed; past it, input is new.
    until: u64,
}

struct Worker<'a> {
    cfg: &'a LiveConfig,
    status: &'a Status,
    client: async_nats::Client,
    js: jetstream::Context,
    engine: Engine,
    pos: Position,
    recovery: Option<Recovery>,
    alerts: Vec<Alert>,
    dead: Vec<DeadLetter>,
    scores: Vec<ScoreRecord>,
    acks: VecDeque<outputs::Pending>,
    json: Vec<u8>,
    ckpt_path: Option<PathBuf>,
    ckpt_buf: Vec<u8>,
    last_ckpt: Instant,
    dirty: bool,
    messages: u64,
    pending: u64,
    alerts_published: u64,
    dead_published: u64,
    scores_published: u64,
    recovered_skipped: u64,
    checkpoints: u64,
    store: Option<storage::StoreSide>,
    lanes: outputs::LanesSide,
}

async fn run_inner(
    cfg: &LiveConfig,
    status: &Status,
    stop: &mut watch::Receiver<bool>,
    store: Option<StoreSender>,
) -> Result<(), Error> {
    status.update(|s| s.phase = Phase::Starting);
    let client = setup::connect(cfg, "streamguard-engine").await?;
    // A busy server may take seconds to PubAck; the default of 5 s fails a healthy engine.
    let js = jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(30))
        .build(client.clone());
    setup::ensure_streams(&js).await?;
    let bucket = setup::rules_bucket(&js).await?;
    if let Some(seed) = &cfg.rules_seed {
        // `create` only writes an empty key: a set an operator saved since is not overwritten.
        let _ = bucket.create(RULES_KEY, Bytes::from(seed.clone())).await;
    }

    let ckpt_path = cfg
        .state_dir
        .as_ref()
        .map(|d| checkpoint::path(d, &cfg.durable));
    let restored = match &ckpt_path {
        Some(p) => checkpoint::load(p)?,
        None => None,
    };
    let (mut engine, pos) = match restored {
        Some(c) => (c.engine, c.position),
        None => (
            Engine::new(initial_rules(cfg, &bucket).await?),
            Position::default(),
        ),
    };
    engine.set_scoring(cfg.scoring);
    let lanes_kv = if cfg.scoring {
        Some(setup::lanes_bucket(&js).await?)
    } else {
        None
    };

    let events = js
        .get_stream(EVENTS_STREAM)
        .await
        .map_err(|e| nats_err(format!("cannot open stream {EVENTS_STREAM}"), e))?;
    let until = setup::previous_delivered(&events, &cfg.durable).await;
    let recovery = if until > pos.last_seq {
        status.update(|s| s.phase = Phase::Recovering);
        let mut ids = setup::published_ids(&js, ALERTS_STREAM, pos.alerts_seq).await?;
        ids.extend(setup::published_ids(&js, DLQ_STREAM, pos.dlq_seq).await?);
        Some(Recovery { ids, until })
    } else {
        None
    };
    let (store, mut stored) = match store {
        Some(s) => {
            let journal = cfg
                .state_dir
                .as_ref()
                .map(|d| Journal::new(d, &cfg.durable));
            let forced = match &journal {
                Some(j) => j.ends_after(pos.last_seq).map_err(|e| {
                    Error::with_source(ErrorKind::Io, "cannot read the storage journal", e)
                })?,
                None => Default::default(),
            };
            let side = storage::StoreSide {
                items: s.items,
                item: StoreItem::default(),
                journal,
                forced,
                held: Default::default(),
                alert_only: 0,
            };
            (Some(side), Some(s.done))
        }
        None => (None, None),
    };
    let consumer = setup::consumer_from(&events, cfg, pos.last_seq).await?;
    let mut input = consumer
        .stream()
        .max_messages_per_batch(cfg.batch)
        // Bounded in bytes too: a pull of 1000 uploads of 1000 events is ~60 MB, past the
        // server's 64 MB per-client limit, and a "slow consumer" loses PubAcks along with it.
        .max_bytes_per_batch(PULL_BYTES)
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await
        .map_err(|e| nats_err(format!("cannot consume with {}", cfg.durable), e))?;
    let mut peers = client
        .subscribe(WATERMARK_SUBJECT)
        .await
        .map_err(|e| nats_err(format!("cannot subscribe to {WATERMARK_SUBJECT}"), e))?;
    let mut rules = bucket
        .watch_with_history(RULES_KEY)
        .await
        .map_err(|e| nats_err(format!("cannot watch {RULES_BUCKET}/{RULES_KEY}"), e))?;

    let max_payload = client.server_info().max_payload;
    let mut w = Worker {
        cfg,
        status,
        client,
        js,
        engine,
        pos,
        recovery,
        alerts: Vec::new(),
        dead: Vec::new(),
        scores: Vec::new(),
        acks: VecDeque::new(),
        json: Vec::new(),
        ckpt_path,
        ckpt_buf: Vec::new(),
        last_ckpt: Instant::now(),
        dirty: false,
        messages: 0,
        pending: 0,
        alerts_published: 0,
        dead_published: 0,
        scores_published: 0,
        recovered_skipped: 0,
        checkpoints: 0,
        store,
        lanes: outputs::LanesSide::new(lanes_kv, max_payload),
    };
    w.report();

    let mut tick = tokio::time::interval(cfg.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut batch = Vec::with_capacity(cfg.batch);
    let mut errors = 0u32;
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            entry = rules.next() => match entry {
                Some(Ok(e)) => w.rules_changed(e).await?,
                Some(Err(e)) => return Err(nats_err("the rules watch failed", e)),
                None => return Err(Error::new(ErrorKind::Nats, "the rules watch ended")),
            },
            m = input.next() => match m {
                Some(Ok(first)) => {
                    errors = 0;
                    batch.push(first);
                    while batch.len() < cfg.batch {
                        match input.next().now_or_never() {
                            Some(Some(Ok(m))) => batch.push(m),
                            _ => break,
                        }
                    }
                    w.process(&batch).await?;
                    batch.clear();
                }
                Some(Err(e)) => {
                    errors += 1;
                    if errors >= MAX_CONSUMER_ERRORS {
                        return Err(nats_err("the consumer keeps failing", e));
                    }
                    let text = e.to_string();
                    status.update(|s| s.error = Some(text));
                }
                None => return Err(Error::new(ErrorKind::Nats, "the consumer's message stream ended")),
            },
            Some(seq) = storage::next_stored(&mut stored) => w.on_stored(seq).await?,
            Some(m) = peers.next() => w.peer_watermark(&m.payload).await?,
            _ = tick.tick() => w.on_tick().await?,
        }
        w.maybe_checkpoint(false, &mut stored).await?;
        w.maybe_publish_lanes(false).await?;
    }
    w.maybe_checkpoint(true, &mut stored).await?;
    w.maybe_publish_lanes(true).await?;
    w.report();
    w.client
        .flush()
        .await
        .map_err(|e| nats_err("cannot flush on stop", e))?;
    Ok(())
}

/// The set to start from: KV's `active` key (seeded from `--rules` when empty), or else the
/// seed itself.
async fn initial_rules(cfg: &LiveConfig, bucket: &kv::Store) -> Result<RuleSet, Error> {
    let stored = bucket
        .get(RULES_KEY)
        .await
        .map_err(|e| nats_err(format!("cannot read {RULES_BUCKET}/{RULES_KEY}"), e))?;
    if let Some(bytes) = stored {
        match RuleSet::parse(&bytes) {
            Ok(set) => return Ok(set),
            Err(e) if cfg.rules_seed.is_none() => {
                return Err(Error::new(
                    ErrorKind::Rule,
                    format!("the rule set in {RULES_BUCKET}/{RULES_KEY} is invalid: {e}"),
                ))
            }
            Err(_) => {}
        }
    }
    match &cfg.rules_seed {
        Some(seed) => Ok(RuleSet::parse(seed)?),
        None => Err(Error::new(
            ErrorKind::Config,
            format!("no rule set: pass --rules FILE or put one in KV {RULES_BUCKET}/{RULES_KEY}"),
        )),
    }
}

async fn ack(m: &jetstream::Message) -> Result<(), Error> {
    m.ack()
        .await
        .map_err(|e| Error::new(ErrorKind::Nats, format!("cannot ack input: {e}")))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Worker<'_> {
    /// Evaluate a batch, publish its outputs, wait for their PubAcks, then ack the input.
    async fn process(&mut self, batch: &[jetstream::Message]) -> Result<(), Error> {
        for m in batch {
            let info = m.info().map_err(|e| {
                Error::new(
                    ErrorKind::Nats,
                    format!("a message without JetStream metadata: {e}"),
                )
            })?;
            let (seq, pending) = (info.stream_sequence, info.pending);
            self.pending = pending;
            if seq <= self.pos.last_seq {
                // Already in the state: a redelivery from before the consumer was re-created.
                continue;
            }
            self.evaluate(m, seq);
            self.publish_outputs(seq, &m.subject).await?;
            self.pos.last_seq = seq;
            self.messages += 1;
            self.dirty = true;
            self.lanes.dirty = true;
            if self.recovery.as_ref().is_some_and(|r| seq >= r.until) {
                self.recovery = None;
                self.status.update(|s| s.phase = Phase::Running);
            }
            if self.store_boundary(seq) {
                self.await_acks().await?;
                self.flush_store(Some(m.clone())).await?;
            }
        }
        self.await_acks().await?;
        let Some(last) = batch.last() else {
            return Ok(());
        };
        if self.store.is_some() {
            // Acked once stored (`on_stored`).
            if self.store_flush_due() {
                self.flush_store(Some(last.clone())).await?;
            }
        } else {
            // AckPolicy::All: acking the last message acks the batch.
            ack(last).await?;
        }
        self.report();
        Ok(())
    }

    /// Decode one message as its subject and Content-Type say, and evaluate it.
    fn evaluate(&mut self, m: &jetstream::Message, seq: u64) {
        let reject = |reason: Reason, detail: String| DeadLetter {
            reason,
            detail,
            raw: m.payload.to_vec(),
        };
        let Some(kind) = subjects::kind_of(&m.subject) else {
            let d = reject(
                Reason::BadKind,
                format!(
                    "subject '{}' is not sg.scan.<carrier>, sg.sensor.<gateway> or sg.ship.<carrier>",
                    m.subject
                ),
            );
            self.engine.count_rejected(d.reason);
            self.dead.push(d);
            return;
        };
        let ct = m
            .headers
            .as_ref()
            .and_then(|h| h.get("Content-Type"))
            .map(|v| v.as_str());
        let format = match subjects::format_of(ct) {
            Ok(f) => f,
            Err(why) => {
                let d = reject(Reason::Malformed, why);
                self.engine.count_rejected(d.reason);
                self.dead.push(d);
                return;
            }
        };
        if m.payload.is_empty() {
            let d = reject(Reason::Malformed, "empty message body".to_string());
            self.engine.count_rejected(d.reason);
            self.dead.push(d);
            return;
        }
        let Some(st) = self.store.as_mut() else {
            self.engine.process_bytes(
                format,
                &m.payload,
                Some(kind),
                &mut self.alerts,
                &mut self.dead,
            );
            return;
        };
        let mut kept = Vec::new();
        self.engine.process_bytes_kept(
            format,
            &m.payload,
            Some(kind),
            &mut self.alerts,
            &mut self.dead,
            Some(&mut kept),
        );
        st.item.cover(seq);
        if format == Format::Arrow {
            st.item.push_arrow(kept, kind, seq);
        } else {
            st.item.push_rows(self.engine.decoded(), seq);
        }
    }

    /// Checkpoint if due (or `force`d) and there is something new. Outputs are all acked here.
    async fn maybe_checkpoint(
        &mut self,
        force: bool,
        stored: &mut Option<tokio::sync::mpsc::UnboundedReceiver<u64>>,
    ) -> Result<(), Error> {
        if force {
            // Stopping: everything handed to storage is stored before we go.
            self.settle_store(stored).await?;
        }
        if self.ckpt_path.is_none()
            || !self.dirty
            || (!force && self.last_ckpt.elapsed() < self.cfg.checkpoint_every)
        {
            return Ok(());
        }
        // Mid-recovery the skip set is not in the checkpoint: a crash now must recover from the
        // older checkpoint again, whose read-back still covers every output since.
        if self.recovery.is_some() {
            return Ok(());
        }
        debug_assert!(self.acks.is_empty());
        // The state must not run ahead of storage: everything up to here is stored first.
        self.settle_store(stored).await?;
        let Some(path) = &self.ckpt_path else {
            return Ok(());
        };
        checkpoint::save(path, self.pos, &self.engine, &mut self.ckpt_buf)?;
        self.store_checkpointed()?;
        self.dirty = false;
        self.last_ckpt = Instant::now();
        self.checkpoints += 1;
        Ok(())
    }

    fn report(&self) {
        let stats = self.engine.stats();
        self.status.update(|s| {
            s.rules_version = stats.rules_version;
            s.stats = stats;
            s.messages = self.messages;
            s.last_seq = self.pos.last_seq;
            s.pending = self.pending;
            s.alerts_published = self.alerts_published;
            s.dead_published = self.dead_published;
            s.scores_published = self.scores_published;
            s.recovered_skipped = self.recovered_skipped;
            s.checkpoints = self.checkpoints;
            if s.phase == Phase::Starting {
                s.phase = if self.recovery.is_some() {
                    Phase::Recovering
                } else {
                    Phase::Running
                };
            }
        });
    }

    fn stats_json(&self) -> String {
        let s = self.engine.stats();
        let rejected: serde_json::Map<String, serde_json::Value> = Reason::ALL
            .iter()
            .map(|r| (r.as_str().to_string(), s.rejected[*r as usize].into()))
            .collect();
        serde_json::json!({
            "ts": now_ms(),
            "durable": self.cfg.durable,
            "messages": self.messages,
            "last_seq": self.pos.last_seq,
            "pending": self.pending,
            "events_in": s.events_in,
            "accepted": s.accepted,
            "out_of_order": s.out_of_order,
            "rejected": rejected,
            "fired": s.fired,
            "resolved": s.resolved,
            "retracted": s.retracted,
            "shipments": s.shipments,
            "state_bytes": s.state_bytes,
            "watermark": s.watermark,
            "rules_version": s.rules_version,
            "alerts_published": self.alerts_published,
            "dead_published": self.dead_published,
            "scores_published": self.scores_published,
            "lanes": s.lanes,
            "checkpoints": self.checkpoints,
        })
        .to_string()
    }
}
