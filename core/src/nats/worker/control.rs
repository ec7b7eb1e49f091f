//! The worker's other inputs: the clock (wall-clock watermark, stats), partition peers'
//! watermarks, and rule sets from the KV bucket.

use super::{now_ms, Worker};
use crate::error::Error;
use crate::nats::setup::nats_err;
use crate::nats::subjects::*;
use crate::nats::TimeMode;
use crate::rules::RuleSet;
use async_nats::jetstream::kv;
use bytes::Bytes;

impl Worker<'_> {
    /// Once a tick: the wall-clock watermark (spec §2) and the stats message.
    pub(super) async fn on_tick(&mut self) -> Result<(), Error> {
        if self.cfg.time == TimeMode::Wall && self.recovery.is_none() {
            let w = now_ms().saturating_sub(self.engine.rules().lateness_ms);
            if w > self.engine.stats().watermark {
                self.engine.advance_watermark(w, &mut self.alerts);
                self.dirty = true;
                self.lanes.dirty = true;
                if !self.alerts.is_empty() || !self.engine.scores().is_empty() {
                    self.publish_outputs(self.pos.last_seq, "").await?;
                    self.await_acks().await?;
                }
            }
        }
        self.report();
        let own = self.engine.stats().watermark;
        if own != i64::MIN {
            let msg = serde_json::json!({"durable": self.cfg.durable, "watermark": own});
            self.client
                .publish(WATERMARK_SUBJECT, Bytes::from(msg.to_string()))
                .await
                .map_err(|e| nats_err("cannot publish the watermark", e))?;
        }
        let stats = self.stats_json();
        self.client
            .publish(STATS_SUBJECT, Bytes::from(stats))
            .await
            .map_err(|e| nats_err("cannot publish stats", e))
    }

    /// A partitioned peer's watermark: ours moves up to it (never back). Held while recovering,
    /// like the wall clock, since the crashed run's view of its peers cannot be replayed.
    pub(super) async fn peer_watermark(&mut self, payload: &[u8]) -> Result<(), Error> {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) else {
            return Ok(());
        };
        let (Some(peer), Some(w)) = (v["durable"].as_str(), v["watermark"].as_i64()) else {
            return Ok(());
        };
        if peer == self.cfg.durable || self.recovery.is_some() {
            return Ok(());
        }
        if w > self.engine.stats().watermark {
            self.engine.advance_watermark(w, &mut self.alerts);
            self.dirty = true;
            self.lanes.dirty = true;
            if !self.alerts.is_empty() || !self.engine.scores().is_empty() {
                self.publish_outputs(self.pos.last_seq, "").await?;
                self.await_acks().await?;
            }
        }
        Ok(())
    }

    pub(super) async fn rules_changed(&mut self, entry: kv::Entry) -> Result<(), Error> {
        if entry.operation != kv::Operation::Put {
            // A deleted key leaves the running set in place: an engine without rules is a
            // silent engine, which is worse than a stale one.
            return Ok(());
        }
        match RuleSet::parse(&entry.value) {
            Ok(set) => {
                if &set != self.engine.rules() {
                    self.engine.replace_rules(set);
                    self.dirty = true;
                }
                let v = self.engine.rules().version;
                self.status.update(|s| {
                    s.rules_version = v;
                    s.rules_error = None;
                });
            }
            Err(e) => {
                let msg = serde_json::json!({
                    "revision": entry.revision,
                    "rule": e.rule,
                    "field": e.field,
                    "error": e.to_string(),
                    "running_version": self.engine.rules().version,
                });
                let text = e.to_string();
                self.status.update(|s| s.rules_error = Some(text));
                self.client
                    .publish(RULES_REJECTED_SUBJECT, Bytes::from(msg.to_string()))
                    .await
                    .map_err(|e| nats_err("cannot publish a rule-set rejection", e))?;
            }
        }
        Ok(())
    }
}
