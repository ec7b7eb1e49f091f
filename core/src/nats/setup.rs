//! Connecting, and making sure the streams, the rules bucket and the consumer exist.

use super::subjects::*;
use super::LiveConfig;
use crate::error::{Error, ErrorKind};
use async_nats::jetstream::{self, consumer, kv, stream};
use futures_util::StreamExt;
use std::collections::HashSet;
use std::time::Duration;

/// A NATS failure, with what we were doing and the client's reason.
#[cold]
pub fn nats_err(
    what: impl Into<String>,
    e: impl std::error::Error + Send + Sync + 'static,
) -> Error {
    Error::with_source(ErrorKind::Nats, what, e)
}

pub async fn connect(cfg: &LiveConfig, name: &str) -> Result<async_nats::Client, Error> {
    let mut opts = async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(Duration::from_secs(5));
    if let (Some(u), Some(p)) = (&cfg.user, &cfg.password) {
        opts = opts.user_and_password(u.clone(), p.clone());
    }
    // A cluster is given as comma-separated URLs.
    let servers: Vec<&str> = cfg.nats_url.split(',').map(str::trim).collect();
    opts.connect(servers)
        .await
        .map_err(|e| nats_err(format!("cannot connect to NATS at {}", cfg.nats_url), e))
}

fn stream_config(name: &str, subjects: &[&str], description: &str) -> stream::Config {
    stream::Config {
        name: name.to_string(),
        description: Some(description.to_string()),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        storage: stream::StorageType::File,
        // Publishers retry with the same Nats-Msg-Id; the engine's own restart does not rely
        // on this window (see `published_ids`).
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    }
}

/// Create `SG_EVENTS`, `SG_ALERTS`, `SG_DLQ` and `SG_SCORES` where they are missing; existing
/// streams are left as their operators configured them.
pub async fn ensure_streams(js: &jetstream::Context) -> Result<(), Error> {
    for (name, subjects, what) in [
        (
            EVENTS_STREAM,
            &EVENTS_SUBJECTS[..],
            "StreamGuard input: scans, sensor readings, shipments",
        ),
        (
            ALERTS_STREAM,
            &ALERTS_SUBJECTS[..],
            "StreamGuard alert records",
        ),
        (
            DLQ_STREAM,
            &DLQ_SUBJECTS[..],
            "StreamGuard rejected input, with its raw bytes",
        ),
    ] {
        js.get_or_create_stream(stream_config(name, subjects, what))
            .await
            .map_err(|e| nats_err(format!("cannot create or open stream {name}"), e))?;
    }
    // Scores are a live view (ClickHouse keeps their history): a week, then they go.
    let scores = stream::Config {
        retention: stream::RetentionPolicy::Limits,
        max_age: SCORES_MAX_AGE,
        ..stream_config(
            SCORES_STREAM,
            &SCORES_SUBJECTS,
            "StreamGuard shipment scores: ETA, delay and damage risk",
        )
    };
    js.get_or_create_stream(scores)
        .await
        .map_err(|e| nats_err(format!("cannot create or open stream {SCORES_STREAM}"), e))?;
    Ok(())
}

/// How long `SG_SCORES` keeps a record.
pub const SCORES_MAX_AGE: Duration = Duration::from_secs(7 * 86_400);

/// The `sg_lanes` bucket, created if missing: one value per worker, its latest lane table.
pub async fn lanes_bucket(js: &jetstream::Context) -> Result<kv::Store, Error> {
    match js.get_key_value(LANES_BUCKET).await {
        Ok(kv) => Ok(kv),
        Err(_) => js
            .create_key_value(kv::Config {
                bucket: LANES_BUCKET.to_string(),
                description: "StreamGuard lane statistics; key = engine worker (durable)"
                    .to_string(),
                history: 1,
                ..Default::default()
            })
            .await
            .map_err(|e| nats_err(format!("cannot create KV bucket {LANES_BUCKET}"), e)),
    }
}

pub async fn rules_bucket(js: &jetstream::Context) -> Result<kv::Store, Error> {
    match js.get_key_value(RULES_BUCKET).await {
        Ok(kv) => Ok(kv),
        Err(_) => js
            .create_key_value(kv::Config {
                bucket: RULES_BUCKET.to_string(),
                description: "StreamGuard rule sets; key 'active' is the live set".to_string(),
                history: 16,
                ..Default::default()
            })
            .await
            .map_err(|e| nats_err(format!("cannot create KV bucket {RULES_BUCKET}"), e)),
    }
}

/// The highest `SG_EVENTS` sequence the previous incarnation of `durable` was handed, so
/// recovery knows where re-processing ends and new input begins (0 if it never existed).
pub async fn previous_delivered(events: &stream::Stream, durable: &str) -> u64 {
    events
        .consumer_info(durable)
        .await
        .map(|i| i.delivered.stream_sequence)
        .unwrap_or(0)
}

/// (Re)create the durable consumer so it delivers from `after + 1`. The checkpoint, not the
/// server's ack floor, says where the state stands: a message acked after the last checkpoint
/// must still be re-processed, because its effect on the state was lost with the process.
pub async fn consumer_from(
    events: &stream::Stream,
    cfg: &LiveConfig,
    after: u64,
) -> Result<consumer::PullConsumer, Error> {
    let _ = events.delete_consumer(&cfg.durable).await;
    let deliver_policy = if after == 0 {
        consumer::DeliverPolicy::All
    } else {
        consumer::DeliverPolicy::ByStartSequence {
            start_sequence: after + 1,
        }
    };
    events
        .create_consumer(consumer::pull::Config {
            durable_name: Some(cfg.durable.clone()),
            description: Some("StreamGuard engine".to_string()),
            deliver_policy,
            ack_policy: consumer::AckPolicy::All,
            ack_wait: Duration::from_secs(60),
            max_ack_pending: (cfg.batch * 64) as i64,
            filter_subjects: cfg.filter_subjects.clone(),
            ..Default::default()
        })
        .await
        .map_err(|e| nats_err(format!("cannot create consumer {}", cfg.durable), e))
}

/// The `Nats-Msg-Id`s stored in `stream` after sequence `after`: what an earlier incarnation
/// published past its checkpoint. Re-processing skips these instead of publishing them again,
/// which keeps the output exactly-once even when the restart comes after JetStream's
/// duplicate window has closed.
pub async fn published_ids(
    js: &jetstream::Context,
    stream_name: &str,
    after: u64,
) -> Result<HashSet<String>, Error> {
    let mut ids = HashSet::new();
    let stream = js
        .get_stream(stream_name)
        .await
        .map_err(|e| nats_err(format!("cannot open stream {stream_name}"), e))?;
    let last = stream
        .get_info()
        .await
        .map_err(|e| nats_err(format!("cannot read stream {stream_name}"), e))?
        .state
        .last_sequence;
    if last <= after {
        return Ok(ids);
    }
    let reader = stream
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: after + 1,
            },
            headers_only: true,
            ..Default::default()
        })
        .await
        .map_err(|e| nats_err(format!("cannot read back stream {stream_name}"), e))?;
    let mut msgs = reader
        .messages()
        .await
        .map_err(|e| nats_err(format!("cannot read back stream {stream_name}"), e))?;
    while let Some(m) = msgs.next().await {
        let m = m.map_err(|e| nats_err(format!("reading back stream {stream_name}"), e))?;
        let seq = m.info().map(|i| i.stream_sequence).unwrap_or(last);
        if let Some(id) = m.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")) {
            ids.insert(id.as_str().to_string());
        }
        if seq >= last {
            break;
        }
    }
    Ok(ids)
}
