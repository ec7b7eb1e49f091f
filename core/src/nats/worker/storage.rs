//! The worker's side of storage (see `nats/store.rs`): cutting items, handing them over,
//! acking input once stored, and holding checkpoints until storage has caught up.

use super::{ack, Worker};
use crate::error::{Error, ErrorKind};
use crate::nats::store::{Journal, StoreItem};
use async_nats::jetstream;
use std::collections::VecDeque;
use tokio::sync::mpsc;

pub(super) struct StoreSide {
    pub items: mpsc::Sender<StoreItem>,
    /// The item being gathered.
    pub item: StoreItem,
    pub journal: Option<Journal>,
    /// Item ends journaled before a crash: re-processing cuts exactly there.
    pub forced: VecDeque<u64>,
    /// Handed-over items awaiting their "stored", oldest first, with the input message to
    /// ack then (none for an item of clock-driven alerts only).
    pub held: VecDeque<(u64, Option<jetstream::Message>)>,
    /// Items of clock-driven alerts only, handed over so far (their token's sequence).
    pub alert_only: u64,
}

/// The next "stored up to" from the writer; never resolves without storage.
pub(super) async fn next_stored(rx: &mut Option<mpsc::UnboundedReceiver<u64>>) -> Option<u64> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn gone() -> Error {
    Error::new(ErrorKind::Config, "the storage writer stopped")
}

impl Worker<'_> {
    /// Whether the message just processed ends a journaled item (re-processing after a crash).
    pub(super) fn store_boundary(&mut self, seq: u64) -> bool {
        let Some(st) = self.store.as_mut() else {
            return false;
        };
        if st.forced.front() == Some(&seq) {
            st.forced.pop_front();
            return true;
        }
        false
    }

    /// At a batch end: hand over what was gathered, unless a journaled end is still ahead.
    pub(super) fn store_flush_due(&self) -> bool {
        self.store
            .as_ref()
            .is_some_and(|st| st.forced.is_empty() && !st.item.is_empty())
    }

    /// Journal the item's range, then hand it over (waiting while the writer is behind).
    pub(super) async fn flush_store(
        &mut self,
        last: Option<jetstream::Message>,
    ) -> Result<(), Error> {
        let Some(st) = self.store.as_mut() else {
            return Ok(());
        };
        if st.item.is_empty() {
            if let Some(m) = last {
                ack(&m).await?;
            }
            return Ok(());
        }
        let mut item = std::mem::take(&mut st.item);
        if item.first_seq == 0 {
            // Only alerts the clock raised: no input range, a token of their own.
            st.alert_only += 1;
            item.first_seq = self.pos.last_seq;
            item.last_seq = self.pos.last_seq;
            item.label = format!("w{}", st.alert_only);
        } else if let Some(j) = &st.journal {
            j.append(item.first_seq, item.last_seq).map_err(|e| {
                Error::with_source(ErrorKind::Io, "cannot write the storage journal", e)
            })?;
        }
        let end = item.last_seq;
        st.items.send(item).await.map_err(|_| gone())?;
        st.held.push_back((end, last));
        Ok(())
    }

    /// The writer stored the oldest handed-over item: ack its input.
    pub(super) async fn on_stored(&mut self, seq: u64) -> Result<(), Error> {
        let Some(st) = self.store.as_mut() else {
            return Ok(());
        };
        let Some((end, msg)) = st.held.pop_front() else {
            return Err(Error::new(
                ErrorKind::Config,
                format!("storage confirmed sequence {seq}, but nothing was waiting"),
            ));
        };
        if end != seq {
            return Err(Error::new(
                ErrorKind::Config,
                format!("storage confirmed sequence {seq}, expected {end} (out of order)"),
            ));
        }
        if let Some(m) = msg {
            ack(&m).await?;
        }
        Ok(())
    }

    /// Hand over the item in progress and wait until every item is stored.
    pub(super) async fn settle_store(
        &mut self,
        stored: &mut Option<mpsc::UnboundedReceiver<u64>>,
    ) -> Result<(), Error> {
        if self.store.is_none() {
            return Ok(());
        }
        if self.store_flush_due() {
            self.flush_store(None).await?;
        }
        while self.store.as_ref().is_some_and(|st| !st.held.is_empty()) {
            let seq = next_stored(stored).await.ok_or_else(gone)?;
            self.on_stored(seq).await?;
        }
        Ok(())
    }

    /// A checkpoint now covers every journaled item.
    pub(super) fn store_checkpointed(&mut self) -> Result<(), Error> {
        if let Some(j) = self.store.as_ref().and_then(|st| st.journal.as_ref()) {
            j.reset().map_err(|e| {
                Error::with_source(ErrorKind::Io, "cannot reset the storage journal", e)
            })?;
        }
        Ok(())
    }
}
