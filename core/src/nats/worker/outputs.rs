//! The worker's outputs: alert records, dead letters and score records published to
//! JetStream, their PubAcks awaited (bounded in flight, retried when slow), and skipped when
//! re-processing finds them already published; and the lane table put in KV `sg_lanes`.

use super::{Worker, MAX_IN_FLIGHT, PUBLISH_ATTEMPTS};
use crate::error::Error;
use crate::nats::setup::nats_err;
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::kv;
use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone, Copy)]
pub(super) enum Out {
    Alert,
    Dead,
    Score,
}

/// Publishing the lane table to KV `sg_lanes`.
pub(super) struct LanesSide {
    kv: Option<kv::Store>,
    /// The server's largest message: a bigger table is reported, not sent.
    max_payload: usize,
    /// Input was evaluated since the last put.
    pub dirty: bool,
    last: Option<Instant>,
    buf: Vec<u8>,
}

impl LanesSide {
    pub fn new(kv: Option<kv::Store>, max_payload: usize) -> LanesSide {
        LanesSide {
            kv,
            max_payload,
            dirty: false,
            last: None,
            buf: Vec::new(),
        }
    }
}

/// An output awaiting its PubAck, kept whole so it can be sent again.
pub(super) struct Pending {
    out: Out,
    fut: PublishAckFuture,
    subject: String,
    msg: PublishMessage,
}

impl Worker<'_> {
    /// Send the pending alert records, dead letters (of input `seq`, for dead letters' ids) and
    /// score records.
    pub(super) async fn publish_outputs(&mut self, seq: u64, subject: &str) -> Result<(), Error> {
        let alerts = std::mem::take(&mut self.alerts);
        if let Some(st) = self.store.as_mut() {
            st.item.alerts.extend(alerts.iter().cloned());
        }
        for a in &alerts {
            let id = format!("{}:{}", a.id, a.state.as_str());
            if self.already_published(&id) {
                continue;
            }
            self.json.clear();
            a.write_json(&mut self.json);
            let msg = PublishMessage::build()
                .payload(Bytes::copy_from_slice(&self.json))
                .message_id(&id)
                .header("Content-Type", "application/json");
            self.send_output(Out::Alert, format!("sg.alert.{}", a.severity.as_str()), msg)
                .await?;
            self.alerts_published += 1;
            self.status
                .push_alert(String::from_utf8_lossy(&self.json).into_owned());
        }
        self.alerts = alerts;
        self.alerts.clear();

        let dead = std::mem::take(&mut self.dead);
        if let Some(st) = self.store.as_mut() {
            st.item
                .dead
                .extend(dead.iter().map(|d| (d.clone(), subject.to_string(), seq)));
        }
        for (i, d) in dead.iter().enumerate() {
            let id = format!("{seq}:{i}");
            if self.already_published(&id) {
                continue;
            }
            let msg = PublishMessage::build()
                .payload(Bytes::copy_from_slice(&d.raw))
                .message_id(&id)
                .header("Sg-Reason", d.reason.as_str())
                .header("Sg-Detail", d.detail.replace(['\r', '\n'], " ").as_str())
                .header("Sg-Subject", subject)
                .header("Sg-Seq", seq.to_string().as_str());
            self.send_output(Out::Dead, format!("sg.dlq.{}", d.reason.as_str()), msg)
                .await?;
            self.dead_published += 1;
        }
        self.dead = dead;
        self.dead.clear();

        self.engine.take_scores(&mut self.scores);
        let scores = std::mem::take(&mut self.scores);
        if let Some(st) = self.store.as_mut() {
            st.item.scores.extend(scores.iter().cloned());
        }
        for r in &scores {
            let id = r.msg_id();
            self.json.clear();
            r.write_json(&mut self.json);
            let msg = PublishMessage::build()
                .payload(Bytes::copy_from_slice(&self.json))
                .message_id(&id)
                .header("Content-Type", "application/json");
            // Shipment keys are printable ASCII; one that is no subject token is sent under
            // its hex form, so every record still lands in the stream.
            let subject = if crate::nats::subjects::is_token(r.shipment.as_bytes()) {
                format!("sg.score.{}", r.shipment)
            } else {
                format!("sg.score.x{}", hex(r.shipment.as_bytes()))
            };
            self.send_output(Out::Score, subject, msg).await?;
            self.scores_published += 1;
        }
        self.scores = scores;
        self.scores.clear();
        Ok(())
    }

    /// Put the lane table in KV `sg_lanes` if input was evaluated since the last put and the
    /// checkpoint interval has passed (or `force`). A table larger than the server's message
    /// limit is reported in the status, not sent.
    pub(super) async fn maybe_publish_lanes(&mut self, force: bool) -> Result<(), Error> {
        let due = self
            .lanes
            .last
            .is_none_or(|t| t.elapsed() >= self.cfg.checkpoint_every);
        if self.lanes.kv.is_none() || !self.lanes.dirty || !(force || due) {
            return Ok(());
        }
        let side = &mut self.lanes;
        side.buf.clear();
        if !self.engine.encode_lanes(&mut side.buf) {
            return Ok(());
        }
        side.dirty = false;
        side.last = Some(Instant::now());
        if side.buf.len() > side.max_payload {
            let text = format!(
                "lane table of {} bytes exceeds the server's max_payload of {} bytes: \
                 not put in KV",
                side.buf.len(),
                side.max_payload
            );
            self.status.update(|s| s.lanes_error = Some(text));
            return Ok(());
        }
        let bytes = Bytes::copy_from_slice(&side.buf);
        if let Some(kv) = &side.kv {
            kv.put(&self.cfg.durable, bytes.clone())
                .await
                .map_err(|e| {
                    nats_err(
                        format!("cannot put the lane table in KV {}", super::LANES_BUCKET),
                        e,
                    )
                })?;
        }
        let table = Arc::new(bytes.to_vec());
        self.status.update(|s| {
            s.lanes = Some(table);
            s.lanes_error = None;
        });
        Ok(())
    }

    pub(super) fn already_published(&mut self, id: &str) -> bool {
        let found = self.recovery.as_mut().is_some_and(|r| r.ids.remove(id));
        if found {
            self.recovered_skipped += 1;
        }
        found
    }

    /// Wait for every output's PubAck (the input may then be acked).
    pub(super) async fn await_acks(&mut self) -> Result<(), Error> {
        while !self.acks.is_empty() {
            self.await_oldest().await?;
        }
        Ok(())
    }

    pub(super) async fn bound_in_flight(&mut self) -> Result<(), Error> {
        while self.acks.len() > MAX_IN_FLIGHT {
            self.await_oldest().await?;
        }
        Ok(())
    }

    /// Publish one output to JetStream; its PubAck is awaited later (`await_acks`).
    pub(super) async fn send_output(
        &mut self,
        out: Out,
        subject: String,
        msg: PublishMessage,
    ) -> Result<(), Error> {
        let fut = self
            .js
            .send_publish(subject.clone(), msg.clone())
            .await
            .map_err(|e| nats_err(format!("cannot publish to {subject}"), e))?;
        self.acks.push_back(Pending {
            out,
            fut,
            subject,
            msg,
        });
        self.bound_in_flight().await
    }

    /// Wait for the oldest output's PubAck. A server too busy to answer in time gets the same
    /// message again (same `Nats-Msg-Id`, so it is stored once), a few times, before the
    /// engine gives up and stops with its input un-acked.
    pub(super) async fn await_oldest(&mut self) -> Result<(), Error> {
        let Some(p) = self.acks.pop_front() else {
            return Ok(());
        };
        let mut fut = p.fut;
        let mut attempt = 1;
        let ack = loop {
            match fut.await {
                Ok(ack) => break ack,
                Err(e) if attempt < PUBLISH_ATTEMPTS => {
                    attempt += 1;
                    let text = format!("retrying a publish to {}: {e}", p.subject);
                    self.status.update(|s| s.error = Some(text));
                    fut = self
                        .js
                        .send_publish(p.subject.clone(), p.msg.clone())
                        .await
                        .map_err(|e| nats_err(format!("cannot publish to {}", p.subject), e))?;
                }
                Err(e) => {
                    return Err(nats_err(
                        format!(
                            "an output to {} was not acknowledged by JetStream",
                            p.subject
                        ),
                        e,
                    ))
                }
            }
        };
        match p.out {
            Out::Alert => self.pos.alerts_seq = self.pos.alerts_seq.max(ack.sequence),
            Out::Dead => self.pos.dlq_seq = self.pos.dlq_seq.max(ack.sequence),
            // Not read back on recovery (see `worker.rs`): no position to keep.
            Out::Score => {}
        }
        Ok(())
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
