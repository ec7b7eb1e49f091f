//! `streamguard._core.LiveEngine` and `publish_feed`: the NATS side of the engine, driven from
//! Python. Both run on the module's one Tokio runtime; Python only starts, stops and observes.

use super::engine::stats_dict;
use super::errors;
use super::lanes::PyLaneTable;
use super::sim::PySimulator;
use crate::engine::alert::to_record_batch;
use crate::error::Error;
use crate::event::Format;
use crate::nats::publish::{publish_feed as run_feed, FeedConfig};
use crate::nats::store::{self, StoreLink};
use crate::nats::{self, LiveConfig, Phase, Status, TimeMode};
use crate::rules::RuleSet;
use crate::scoring::CodedLanes;
use arrow_pyarrow::ToPyArrow;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;
use tokio::sync::watch;
use tokio::task::JoinHandle;

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// The module's Tokio runtime: two workers, one per core of the target machine.
fn runtime() -> &'static Runtime {
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("streamguard-io")
            .enable_all()
            .build()
            .expect("cannot start the Tokio runtime")
    })
}

fn rules_bytes(rules: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(s) = rules.cast::<PyString>() {
        Ok(s.to_str()?.as_bytes().to_vec())
    } else if let Ok(b) = rules.cast::<PyBytes>() {
        Ok(b.as_bytes().to_vec())
    } else {
        Err(pyo3::exceptions::PyTypeError::new_err(
            "rules must be the rule-set JSON as str or bytes",
        ))
    }
}

/// The engine consuming `SG_EVENTS` from NATS in a background task.
#[pyclass(module = "streamguard._core", name = "LiveEngine")]
pub struct PyLive {
    cfg: LiveConfig,
    /// Hand evaluated input to a storage writer (`next_store_item` / `store_done`).
    store: bool,
    items: Option<Arc<Mutex<tokio::sync::mpsc::Receiver<store::StoreItem>>>>,
    done: Option<tokio::sync::mpsc::UnboundedSender<u64>>,
    status: Arc<Status>,
    stop: Option<watch::Sender<bool>>,
    task: Option<JoinHandle<Result<(), Error>>>,
    outcome: Option<Result<(), Error>>,
}

impl PyLive {
    /// Wait up to `timeout` for the task; true once it has finished (its outcome kept).
    fn join(&mut self, py: Python<'_>, timeout: Option<Duration>) -> bool {
        let Some(task) = self.task.as_mut() else {
            return true;
        };
        let done = py.detach(|| {
            runtime().block_on(async {
                match timeout {
                    Some(t) => tokio::time::timeout(t, task).await.ok(),
                    None => Some(task.await),
                }
            })
        });
        match done {
            Some(r) => {
                self.outcome = Some(r.unwrap_or_else(|e| {
                    Err(Error::new(
                        crate::error::ErrorKind::Nats,
                        format!("the engine task died: {e}"),
                    ))
                }));
                self.task = None;
                true
            }
            None => false,
        }
    }

    fn raise_outcome(&self, py: Python<'_>) -> PyResult<()> {
        match &self.outcome {
            Some(Err(e)) => Err(errors::to_py(py, e)),
            _ => Ok(()),
        }
    }
}

#[pymethods]
impl PyLive {
    #[new]
    #[pyo3(signature = (
        nats_url, *, rules = None, time = "wall", state_dir = None, user = None, password = None,
        durable = None, subjects = None, partition = None, batch = 1000, checkpoint_ms = 2000,
        tick_ms = 1000, store = false, scoring = true,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        nats_url: String,
        rules: Option<&Bound<'_, PyAny>>,
        time: &str,
        state_dir: Option<PathBuf>,
        user: Option<String>,
        password: Option<String>,
        durable: Option<String>,
        subjects: Option<Vec<String>>,
        partition: Option<(u32, u32)>,
        batch: usize,
        checkpoint_ms: u64,
        tick_ms: u64,
        store: bool,
        scoring: bool,
    ) -> PyResult<Self> {
        let mut cfg = LiveConfig::new(nats_url);
        cfg.scoring = scoring;
        if let Some(r) = rules {
            let bytes = rules_bytes(r)?;
            // A bad seed is refused here, with the rule and field named, not later in the task.
            RuleSet::parse(&bytes).map_err(|e| errors::rule_error(py, &e))?;
            cfg.rules_seed = Some(bytes);
        }
        cfg.time = TimeMode::parse(time).ok_or_else(|| {
            errors::config_error(
                py,
                format!("time: expected 'wall' or 'event', got '{time}'"),
            )
        })?;
        if batch == 0 || tick_ms == 0 {
            return Err(errors::config_error(
                py,
                "batch and tick_ms must be at least 1",
            ));
        }
        if let Some((k, n)) = partition {
            if n == 0 || k >= n {
                return Err(errors::config_error(
                    py,
                    format!("partition: expected (k, n) with 0 <= k < n, got ({k}, {n})"),
                ));
            }
        }
        // Each partition's worker has its own consumer (and checkpoint file).
        let durable = durable.unwrap_or_else(|| match partition {
            Some((k, _)) => format!("sg-engine-p{k}"),
            None => "sg-engine".to_string(),
        });
        if durable.is_empty() || durable.contains(['.', '*', '>', ' ']) {
            return Err(errors::config_error(
                py,
                format!("durable: '{durable}' is not a valid consumer name"),
            ));
        }
        cfg.state_dir = state_dir;
        cfg.user = user;
        cfg.password = password;
        cfg.durable = durable;
        cfg.partition = partition;
        match (subjects, partition) {
            (Some(s), _) => cfg.filter_subjects = s,
            (None, Some((k, _))) => cfg.filter_subjects = nats::subjects::partition_subjects(k),
            (None, None) => {}
        }
        cfg.batch = batch;
        cfg.checkpoint_every = Duration::from_millis(checkpoint_ms);
        cfg.tick = Duration::from_millis(tick_ms);
        Ok(PyLive {
            cfg,
            store,
            items: None,
            done: None,
            status: Arc::new(Status::default()),
            stop: None,
            task: None,
            outcome: None,
        })
    }

    /// Connect, set up streams and consumer, restore the checkpoint, and start consuming.
    /// Returns once the engine runs (or recovers); raises what stopped it from starting.
    #[pyo3(signature = (timeout = 60.0))]
    fn start(&mut self, py: Python<'_>, timeout: f64) -> PyResult<()> {
        if self.task.is_some() {
            return Err(errors::config_error(py, "the engine is already running"));
        }
        let (tx, rx) = watch::channel(false);
        self.status = Arc::new(Status::default());
        self.outcome = None;
        let sender = if self.store {
            let (sender, StoreLink { items, done }) = store::link();
            self.items = Some(Arc::new(Mutex::new(items)));
            self.done = Some(done);
            Some(sender)
        } else {
            None
        };
        let task = runtime().spawn(nats::run(self.cfg.clone(), self.status.clone(), rx, sender));
        self.stop = Some(tx);
        self.task = Some(task);
        let deadline = Instant::now() + Duration::from_secs_f64(timeout.max(0.0));
        loop {
            let phase = self.status.snapshot().phase;
            if phase == Phase::Stopped || phase == Phase::Failed {
                self.join(py, None);
                self.raise_outcome(py)?;
                return Err(errors::config_error(
                    py,
                    "the engine stopped while starting",
                ));
            }
            if phase != Phase::Starting {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(errors::config_error(
                    py,
                    format!("the engine did not start within {timeout} s"),
                ));
            }
            py.detach(|| std::thread::sleep(Duration::from_millis(5)));
            py.check_signals()?;
        }
    }

    /// Drain: finish the batch in hand, publish and ack it, checkpoint, disconnect. Raises the
    /// error that stopped the engine, if one did.
    #[pyo3(signature = (timeout = 30.0))]
    fn stop(&mut self, py: Python<'_>, timeout: f64) -> PyResult<()> {
        if let Some(tx) = &self.stop {
            let _ = tx.send(true);
        }
        if !self.join(py, Some(Duration::from_secs_f64(timeout.max(0.0)))) {
            return Err(errors::config_error(
                py,
                format!("the engine did not stop within {timeout} s"),
            ));
        }
        self.raise_outcome(py)
    }

    /// Wait up to `timeout` seconds (forever if None) for the engine to end; true if it has.
    #[pyo3(signature = (timeout = None))]
    fn wait(&mut self, py: Python<'_>, timeout: Option<f64>) -> bool {
        self.join(py, timeout.map(|t| Duration::from_secs_f64(t.max(0.0))))
    }

    #[getter]
    fn running(&self) -> bool {
        self.task.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Phase, engine counters, NATS position and output counts, the latest errors.
    fn status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.status.snapshot();
        let d = PyDict::new(py);
        d.set_item("phase", s.phase.as_str())?;
        d.set_item("durable", &self.cfg.durable)?;
        d.set_item("partition", self.cfg.partition)?;
        d.set_item("engine", stats_dict(py, &s.stats)?)?;
        d.set_item("messages", s.messages)?;
        d.set_item("last_seq", s.last_seq)?;
        d.set_item("pending", s.pending)?;
        d.set_item("alerts_published", s.alerts_published)?;
        d.set_item("dead_published", s.dead_published)?;
        d.set_item("scores_published", s.scores_published)?;
        d.set_item("lanes_error", s.lanes_error)?;
        d.set_item("recovered_skipped", s.recovered_skipped)?;
        d.set_item("checkpoints", s.checkpoints)?;
        d.set_item("rules_version", s.rules_version)?;
        d.set_item("rules_error", s.rules_error)?;
        d.set_item("error", s.error)?;
        Ok(d)
    }

    /// The storage side of a `store=True` engine, once started: hand it to one writer thread.
    fn store_feed(&self, py: Python<'_>) -> PyResult<PyStoreFeed> {
        match (&self.items, &self.done) {
            (Some(items), Some(done)) => Ok(PyStoreFeed {
                durable: self.cfg.durable.clone(),
                items: items.clone(),
                done: done.clone(),
                closed: Arc::new(AtomicBool::new(false)),
            }),
            _ => Err(errors::config_error(
                py,
                "no store feed: start an engine created with store=True first",
            )),
        }
    }

    /// The latest alert records published (oldest first), as JSON text.
    fn recent_alerts(&self) -> Vec<String> {
        self.status.recent_alerts()
    }

    /// The lane statistics as last put in KV `sg_lanes` (at each checkpoint interval and on
    /// stop); None before the first put, or with scoring off.
    fn lanes(&self, py: Python<'_>) -> PyResult<Option<PyLaneTable>> {
        let Some(bytes) = self.status.snapshot().lanes else {
            return Ok(None);
        };
        let lanes = py
            .detach(|| CodedLanes::decode(&bytes))
            .map_err(|e| errors::to_py(py, &e))?;
        Ok(Some(PyLaneTable { lanes }))
    }
}

impl Drop for PyLive {
    fn drop(&mut self) {
        if let Some(tx) = &self.stop {
            let _ = tx.send(true);
        }
    }
}

/// Publish `sim`'s feed to NATS as carriers, gateways and the control plane would (see
/// `core/src/nats/publish.rs`). Returns counts and the elapsed seconds.
#[pyfunction]
#[pyo3(signature = (
    sim, nats_url, *, creds = None, gateways = 3, sensor_format = "protobuf", upload = 256,
    rate = None, max_events = None, acks = true, invalid = false, batched = false,
    partitions = None,
))]
#[allow(clippy::too_many_arguments)]
pub fn publish_feed<'py>(
    py: Python<'py>,
    sim: &mut PySimulator,
    nats_url: String,
    creds: Option<HashMap<String, (String, String)>>,
    gateways: usize,
    sensor_format: &str,
    upload: usize,
    rate: Option<f64>,
    max_events: Option<u64>,
    acks: bool,
    invalid: bool,
    batched: bool,
    partitions: Option<u32>,
) -> PyResult<Bound<'py, PyDict>> {
    let sensor_format = super::engine::parse_format(py, sensor_format)?;
    if sensor_format == Format::Json {
        return Err(errors::config_error(
            py,
            "sensor_format: gateways upload protobuf or arrow",
        ));
    }
    let cfg = FeedConfig {
        nats_url,
        creds: creds.unwrap_or_default(),
        gateways,
        sensor_format,
        upload,
        rate,
        acks,
        invalid,
        batched,
        partitions: partitions.filter(|&n| n > 1),
    };
    let sim = &mut sim.sim;
    let stats = py
        .detach(|| runtime().block_on(run_feed(cfg, sim, max_events, None)))
        .map_err(|e| errors::to_py(py, &e))?;
    let d = PyDict::new(py);
    d.set_item("events", stats.events)?;
    d.set_item("messages", stats.messages)?;
    d.set_item("invalid", stats.invalid)?;
    d.set_item("bytes", stats.bytes)?;
    d.set_item("seconds", stats.seconds)?;
    Ok(d)
}

/// What a `store=True` engine hands its storage writer, and the way back ("stored"). Separate
/// from the engine object so the writer thread never holds the engine while it waits.
#[pyclass(module = "streamguard._core", name = "StoreFeed", frozen)]
pub struct PyStoreFeed {
    durable: String,
    items: Arc<Mutex<tokio::sync::mpsc::Receiver<store::StoreItem>>>,
    done: tokio::sync::mpsc::UnboundedSender<u64>,
    closed: Arc<AtomicBool>,
}

#[pymethods]
impl PyStoreFeed {
    /// The next item for storage (waiting up to `timeout` s), or None: a dict with `token`,
    /// `first_seq`, `last_seq`, `events` (pyarrow batches, one table's each, with `seq` and
    /// `idx`), `alerts` and `scores` (a batch each, or None) and `dead` (`(reason, detail,
    /// raw, subject, seq)`).
    /// Call `done(last_seq)` once it is stored: the input is acked then.
    #[pyo3(signature = (timeout = 0.2))]
    fn next_item<'py>(
        &self,
        py: Python<'py>,
        timeout: f64,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let items = self.items.clone();
        let wait = Duration::from_secs_f64(timeout.max(0.0));
        let item = py.detach(move || {
            let mut items = items.lock().unwrap_or_else(|p| p.into_inner());
            runtime().block_on(async { tokio::time::timeout(wait, items.recv()).await })
        });
        let item = match item {
            Ok(Some(item)) => item,
            Ok(None) => {
                self.closed.store(true, Ordering::Release);
                return Ok(None);
            }
            Err(_) => return Ok(None),
        };
        let d = PyDict::new(py);
        d.set_item("token", item.token(&self.durable))?;
        d.set_item("first_seq", item.first_seq)?;
        d.set_item("last_seq", item.last_seq)?;
        let batches = py.detach(|| item.event_batches());
        let events = batches
            .iter()
            .map(|rb| rb.to_pyarrow(py))
            .collect::<PyResult<Vec<_>>>()?;
        d.set_item("events", PyList::new(py, events)?)?;
        if item.alerts.is_empty() {
            d.set_item("alerts", py.None())?;
        } else {
            d.set_item("alerts", to_record_batch(&item.alerts).to_pyarrow(py)?)?;
        }
        if item.scores.is_empty() {
            d.set_item("scores", py.None())?;
        } else {
            let batch = crate::engine::score::to_record_batch(&item.scores);
            d.set_item("scores", batch.to_pyarrow(py)?)?;
        }
        let dead = item
            .dead
            .iter()
            .map(|(dl, subject, seq)| {
                (
                    dl.reason.as_str(),
                    dl.detail.as_str(),
                    PyBytes::new(py, &dl.raw),
                    subject.as_str(),
                    *seq,
                )
            })
            .collect::<Vec<_>>();
        d.set_item("dead", dead)?;
        Ok(Some(d))
    }

    /// Storage has stored the item ending at `last_seq`: its input may be acked.
    fn done(&self, last_seq: u64) {
        // A stopped engine no longer listens; nothing is lost, its input stays un-acked.
        let _ = self.done.send(last_seq);
    }

    /// True once the engine has ended and every item it handed over was taken.
    #[getter]
    fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}
