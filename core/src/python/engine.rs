//! `streamguard._core.Engine`: the Rust engine behind a Python object.
//!
//! Work on bytes and decoded Arrow batches runs with the GIL released; only the conversion of
//! inputs and results to and from Python objects holds it.

use super::errors;
use super::lanes::PyLaneTable;
use crate::engine::alert::{to_record_batch, Alert};
use crate::engine::score;
use crate::engine::{Engine, Stats};
use crate::event::{DeadLetter, Format, Kind, Reason};
use crate::rules::RuleSet;
use crate::scoring::ScoringConfig;
use arrow_array::ffi_stream::RecordBatchStreamReader;
use arrow_array::{make_array, Array, RecordBatch};
use arrow_pyarrow::{FromPyArrow, FromPyArrowUnchecked, ToPyArrow};
use arrow_schema::ArrowError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple, PyType};

pub(crate) fn parse_format(py: Python<'_>, format: &str) -> PyResult<Format> {
    Format::parse(format).ok_or_else(|| {
        errors::config_error(
            py,
            format!("unknown format '{format}' (expected json, protobuf or arrow)"),
        )
    })
}

pub(crate) fn parse_kind(py: Python<'_>, kind: Option<&str>) -> PyResult<Option<Kind>> {
    kind.map(|k| {
        Kind::parse(k.as_bytes()).ok_or_else(|| {
            errors::config_error(
                py,
                format!("unknown kind '{k}' (expected shipment, scan or sensor)"),
            )
        })
    })
    .transpose()
}

/// Rule-set JSON given as `str` or `bytes`, parsed and validated.
fn parse_rules(rules: &Bound<'_, PyAny>) -> PyResult<RuleSet> {
    let py = rules.py();
    let parsed = if let Ok(s) = rules.cast::<PyString>() {
        RuleSet::parse(s.to_str()?.as_bytes())
    } else if let Ok(b) = rules.cast::<PyBytes>() {
        RuleSet::parse(b.as_bytes())
    } else {
        return Err(pyo3::exceptions::PyTypeError::new_err(
            "rules must be the rule-set JSON as str or bytes",
        ));
    };
    parsed.map_err(|e| errors::rule_error(py, &e))
}

/// Append each alert as one JSON line.
fn write_ndjson(alerts: &[Alert], out: &mut Vec<u8>) {
    for a in alerts {
        a.write_json(out);
        out.push(b'\n');
    }
}

/// Arrow data from Python, imported without copying its buffers.
enum ArrowInput {
    Batch(RecordBatch),
    /// A `Table`, `RecordBatchReader` or other `__arrow_c_stream__` producer, read lazily.
    Stream(RecordBatchStreamReader),
}

fn arrow_input(obj: &Bound<'_, PyAny>) -> PyResult<ArrowInput> {
    static RECORD_BATCH: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    let py = obj.py();
    if obj.is_instance(RECORD_BATCH.import(py, "pyarrow", "RecordBatch")?)? {
        // SAFETY: nothing reads the batch before `check_batch` has validated it.
        let rb = unsafe { RecordBatch::from_pyarrow_bound_unchecked(obj) }.map_err(|e| {
            errors::decode_error(py, format!("cannot import the record batch: {e}"))
        })?;
        return Ok(ArrowInput::Batch(rb));
    }
    if !obj.hasattr("__arrow_c_stream__")? && !obj.hasattr("_export_to_c")? {
        return Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "expected a pyarrow RecordBatch, Table or RecordBatchReader, got {}",
            obj.get_type().name()?
        )));
    }
    let reader = RecordBatchStreamReader::from_pyarrow_bound(obj)
        .map_err(|e| errors::decode_error(py, format!("cannot read the Arrow stream: {e}")))?;
    Ok(ArrowInput::Stream(reader))
}

/// Validate an imported batch before the engine reads it: fully (offsets, UTF-8, …) by
/// default; with `full = false` (data the caller produced itself) only the buffer sizes and
/// offset bounds, which is O(columns) and still keeps every read in bounds.
fn check_batch(rb: &RecordBatch, full: bool) -> Result<(), ArrowError> {
    fn structural(a: &dyn Array) -> Result<(), ArrowError> {
        let data = a.to_data();
        data.validate()?;
        for child in data.child_data() {
            structural(make_array(child.clone()).as_ref())?;
        }
        Ok(())
    }
    rb.columns().iter().try_for_each(|c| {
        if full {
            c.to_data().validate_full()
        } else {
            structural(c.as_ref())
        }
    })
}

/// Evaluate one imported batch, or dead-letter it if it is not valid Arrow.
fn process_checked(
    engine: &mut Engine,
    rb: Result<RecordBatch, ArrowError>,
    full: bool,
    kind: Option<Kind>,
    alerts: &mut Vec<Alert>,
    dead: &mut Vec<DeadLetter>,
) {
    match rb.and_then(|rb| check_batch(&rb, full).map(|()| rb)) {
        Ok(rb) => engine.process_record_batch(&rb, kind, alerts, dead),
        Err(e) => {
            // Like any undecodable input: counted and surfaced, never fatal.
            let d = DeadLetter::new(Reason::Malformed, format!("invalid Arrow data: {e}"), &[]);
            engine.count_rejected(d.reason);
            dead.push(d);
        }
    }
}

/// The StreamGuard engine. `Engine(rules_json)`; see `streamguard.Engine` for the public API.
#[pyclass(module = "streamguard._core", name = "Engine")]
pub struct PyEngine {
    engine: Engine,
    /// Scratch reused across calls: the alerts of the current call.
    alerts: Vec<Alert>,
    /// Scratch reused across calls: NDJSON of the current call's alerts.
    json: Vec<u8>,
    /// Rejected inputs not yet taken by `take_dead_letters`.
    dead: Vec<DeadLetter>,
}

impl PyEngine {
    /// Run `f` on the engine with the GIL released, after clearing the per-call alerts and
    /// score events.
    fn run<F>(&mut self, py: Python<'_>, f: F)
    where
        F: FnOnce(&mut Engine, &mut Vec<Alert>, &mut Vec<DeadLetter>) + Send,
    {
        let (engine, alerts, dead) = (&mut self.engine, &mut self.alerts, &mut self.dead);
        alerts.clear();
        engine.clear_scores();
        py.detach(|| f(engine, alerts, dead));
    }

    fn alerts_arrow<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_record_batch(&self.alerts).to_pyarrow(py)
    }

    fn alerts_json<'py>(&mut self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let (alerts, json) = (&self.alerts, &mut self.json);
        json.clear();
        py.detach(|| write_ndjson(alerts, json));
        PyBytes::new(py, &self.json)
    }

    fn process_arrow_inner(
        &mut self,
        obj: &Bound<'_, PyAny>,
        kind: Option<&str>,
        validate: bool,
    ) -> PyResult<()> {
        let py = obj.py();
        let kind = parse_kind(py, kind)?;
        let input = arrow_input(obj)?;
        // The stream is read batch by batch with the GIL released: a large Table or a reader
        // over a file never sits in memory twice (pyarrow takes the GIL itself if it needs it).
        self.run(py, move |engine, alerts, dead| match input {
            ArrowInput::Batch(rb) => process_checked(engine, Ok(rb), validate, kind, alerts, dead),
            ArrowInput::Stream(reader) => {
                for rb in reader {
                    let failed = rb.is_err();
                    process_checked(engine, rb, validate, kind, alerts, dead);
                    if failed {
                        break;
                    }
                }
            }
        });
        Ok(())
    }

    fn process_bytes_inner(
        &mut self,
        py: Python<'_>,
        data: &[u8],
        format: &str,
        kind: Option<&str>,
    ) -> PyResult<()> {
        let format = parse_format(py, format)?;
        let kind = parse_kind(py, kind)?;
        self.run(py, |engine, alerts, dead| {
            engine.process_bytes(format, data, kind, alerts, dead)
        });
        Ok(())
    }
}

#[pymethods]
impl PyEngine {
    #[new]
    #[pyo3(signature = (rules_json, *, scoring = true))]
    fn new(rules_json: &Bound<'_, PyAny>, scoring: bool) -> PyResult<Self> {
        let py = rules_json.py();
        let rules = parse_rules(rules_json)?;
        let engine = Engine::with_scoring(rules, scoring.then(ScoringConfig::default))
            .map_err(|e| errors::to_py(py, &e))?;
        Ok(PyEngine {
            engine,
            alerts: Vec::new(),
            json: Vec::new(),
            dead: Vec::new(),
        })
    }

    /// Decode `data` (`format`: json, protobuf or arrow) and evaluate it; the alerts produced,
    /// in order, as a pyarrow RecordBatch. `kind` applies to events that do not name theirs.
    #[pyo3(signature = (data, format = "json", kind = None))]
    fn process_bytes<'py>(
        &mut self,
        py: Python<'py>,
        data: &[u8],
        format: &str,
        kind: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.process_bytes_inner(py, data, format, kind)?;
        self.alerts_arrow(py)
    }

    /// As `process_bytes`, but the alerts come back as NDJSON bytes (one object per line).
    #[pyo3(signature = (data, format = "json", kind = None))]
    fn process_bytes_json<'py>(
        &mut self,
        py: Python<'py>,
        data: &[u8],
        format: &str,
        kind: Option<&str>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        self.process_bytes_inner(py, data, format, kind)?;
        Ok(self.alerts_json(py))
    }

    /// Evaluate a pyarrow RecordBatch, Table or RecordBatchReader without copying it; the
    /// alerts as a pyarrow RecordBatch. Invalid Arrow data becomes a dead letter. `validate`
    /// False skips the O(rows) checks (UTF-8, every offset) for data you produced yourself.
    #[pyo3(signature = (data, kind = None, validate = true))]
    fn process_arrow<'py>(
        &mut self,
        data: &Bound<'py, PyAny>,
        kind: Option<&str>,
        validate: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.process_arrow_inner(data, kind, validate)?;
        self.alerts_arrow(data.py())
    }

    /// As `process_arrow`, but the alerts come back as NDJSON bytes.
    #[pyo3(signature = (data, kind = None, validate = true))]
    fn process_arrow_json<'py>(
        &mut self,
        data: &Bound<'py, PyAny>,
        kind: Option<&str>,
        validate: bool,
    ) -> PyResult<Bound<'py, PyBytes>> {
        self.process_arrow_inner(data, kind, validate)?;
        Ok(self.alerts_json(data.py()))
    }

    /// Advance the scan watermark to `ms` (never backwards); alerts of dwell timers now due.
    fn advance_watermark<'py>(&mut self, py: Python<'py>, ms: i64) -> PyResult<Bound<'py, PyAny>> {
        self.run(py, |engine, alerts, _| engine.advance_watermark(ms, alerts));
        self.alerts_arrow(py)
    }

    /// Replace the rule set atomically; unchanged rules keep their state. On a `RuleError`
    /// the running set stays in force.
    fn replace_rules(&mut self, rules_json: &Bound<'_, PyAny>) -> PyResult<()> {
        let rules = parse_rules(rules_json)?;
        self.engine.replace_rules(rules);
        Ok(())
    }

    /// Rejected inputs since the last call, oldest first: `(reason, detail, raw bytes)`.
    fn take_dead_letters<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items = self
            .dead
            .drain(..)
            .map(|d| {
                PyTuple::new(
                    py,
                    [
                        PyString::new(py, d.reason.as_str()).into_any(),
                        PyString::new(py, &d.detail).into_any(),
                        PyBytes::new(py, &d.raw).into_any(),
                    ],
                )
            })
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// Discard the pending dead letters (they stay counted in `stats()`); how many there were.
    fn drop_dead_letters(&mut self) -> usize {
        let n = self.dead.len();
        self.dead.clear();
        n
    }

    /// Counters: events in/accepted/out of order, rejected by reason, alerts by state,
    /// tracked shipments and their state bytes, the watermark and the rule-set version.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        stats_dict(py, &self.engine.stats())
    }

    /// The score records of the last call (process or advance_watermark) as a pyarrow
    /// RecordBatch: one per shipment whose ETA, delay or damage risk changed materially.
    fn scores<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let e = &self.engine;
        let records: Vec<_> = e.scores().iter().map(|s| e.score_record(s)).collect();
        score::to_record_batch(&records).to_pyarrow(py)
    }

    /// The lane statistics (a copy, carriers by code); `ConfigError` with scoring off.
    fn lanes(&self, py: Python<'_>) -> PyResult<PyLaneTable> {
        let engine = &self.engine;
        match py.detach(|| engine.lanes()) {
            Some(lanes) => Ok(PyLaneTable { lanes }),
            None => Err(errors::config_error(
                py,
                "carrier scoring is off: this engine keeps no lane statistics",
            )),
        }
    }

    /// Whether carrier scoring is on.
    #[getter]
    fn scoring(&self) -> bool {
        self.engine.scoring()
    }

    /// The running rule set's `version`.
    #[getter]
    fn rules_version(&self) -> i64 {
        self.engine.rules().version
    }

    /// The running rule set's `lateness_ms`.
    #[getter]
    fn lateness_ms(&self) -> i64 {
        self.engine.rules().lateness_ms
    }

    fn __repr__(&self) -> String {
        let s = self.engine.stats();
        format!(
            "Engine(rules_version={}, events_in={}, shipments={})",
            s.rules_version, s.events_in, s.shipments
        )
    }
}

/// `Engine.stats()` as a dict; the live engine's status reuses it.
pub(crate) fn stats_dict<'py>(py: Python<'py>, s: &Stats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);

    d.set_item("events_in", s.events_in)?;
    d.set_item("accepted", s.accepted)?;
    d.set_item("out_of_order", s.out_of_order)?;
    let rejected = PyDict::new(py);
    for (reason, n) in Reason::ALL.iter().zip(s.rejected.iter()) {
        rejected.set_item(reason.as_str(), n)?;
    }
    d.set_item("rejected", rejected)?;
    d.set_item("fired", s.fired)?;
    d.set_item("resolved", s.resolved)?;
    d.set_item("retracted", s.retracted)?;
    d.set_item("shipments", s.shipments)?;
    d.set_item("state_bytes", s.state_bytes)?;
    d.set_item("lanes", s.lanes)?;
    d.set_item("lane_bytes", s.lane_bytes)?;
    // i64::MIN is the engine's "no scan seen yet".
    d.set_item(
        "watermark",
        (s.watermark != i64::MIN).then_some(s.watermark),
    )?;
    d.set_item("rules_version", s.rules_version)?;
    Ok(d)
}
