//! `streamguard._core.Simulator` and the format helpers the tests and the CLI use.

use super::engine::{parse_format, parse_kind};
use super::errors;
use crate::event::{arrow, json, proto, DeadLetter, EventBatch, Format, Kind};
use crate::scoring::province_of;
use crate::sim::{SimConfig, Simulator};
use arrow_pyarrow::ToPyArrow;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

/// Encode `batch` in `format`. In JSON the invalid raw lines are spread evenly between the
/// rows (so a feed carries its bad events among good ones); the binary formats cannot carry
/// undecodable bytes, so they only hold the valid rows.
fn encode(batch: &EventBatch, invalid: &[Vec<u8>], format: Format, out: &mut Vec<u8>) {
    match format {
        Format::Json => {
            let n = batch.len();
            let mut next_invalid = 0;
            for i in 0..n {
                // Invalid line j of k goes before row floor((j + 1) * n / (k + 1)).
                while next_invalid < invalid.len()
                    && (next_invalid + 1) * n / (invalid.len() + 1) <= i
                {
                    push_line(out, &invalid[next_invalid]);
                    next_invalid += 1;
                }
                json::encode_row(batch, i, out);
            }
            for line in &invalid[next_invalid..] {
                push_line(out, line);
            }
        }
        Format::Protobuf => proto::encode(batch, 0..batch.len(), out),
        Format::Arrow => arrow::write_ipc(&arrow::to_record_batches(batch), out),
    }
}

fn push_line(out: &mut Vec<u8>, line: &[u8]) {
    out.extend_from_slice(line);
    if line.last() != Some(&b'\n') {
        out.push(b'\n');
    }
}

/// A copy of `batch` with its rows grouped by kind (kinds in first-seen order, rows in input
/// order within a kind): the order in which an Arrow IPC stream of one batch per kind is read.
fn grouped_by_kind(batch: &EventBatch) -> EventBatch {
    let mut order: Vec<u8> = Vec::new();
    for &k in &batch.kind {
        if !order.contains(&k) {
            order.push(k);
        }
    }
    let mut out = EventBatch::default();
    for k in order {
        for i in (0..batch.len()).filter(|&i| batch.kind[i] == k) {
            out.push(&batch.event(i));
        }
    }
    out
}

/// Province codes of region codes such as `CN-44` or `CN-440300`; the error names `field`.
fn provinces(py: Python<'_>, field: &str, regions: Option<Vec<String>>) -> PyResult<Vec<u16>> {
    regions
        .unwrap_or_default()
        .iter()
        .map(|r| {
            province_of(r.as_bytes()).ok_or_else(|| {
                errors::config_error(
                    py,
                    format!("sim: `{field}`: {r:?} is not a region code such as CN-44"),
                )
            })
        })
        .collect()
}

/// A seeded, realistic feed of shipment events, scans and sensor readings.
#[pyclass(module = "streamguard._core", name = "Simulator")]
pub struct PySimulator {
    pub(crate) sim: Simulator,
    batch: EventBatch,
    invalid: Vec<Vec<u8>>,
    out: Vec<u8>,
    emitted: u64,
    invalid_emitted: u64,
}

impl PySimulator {
    /// The next up to `max_events` events into `self.batch` / `self.invalid`; false at the end.
    fn fill(&mut self, py: Python<'_>, max_events: usize) -> PyResult<bool> {
        if max_events == 0 {
            return Err(errors::config_error(py, "max_events must be at least 1"));
        }
        let (sim, batch, invalid) = (&mut self.sim, &mut self.batch, &mut self.invalid);
        batch.clear();
        invalid.clear();
        py.detach(|| sim.next_batch(max_events, batch, invalid));
        self.emitted += self.batch.len() as u64;
        self.invalid_emitted += self.invalid.len() as u64;
        Ok(!(self.batch.is_empty() && self.invalid.is_empty()))
    }
}

#[pymethods]
impl PySimulator {
    #[new]
    #[pyo3(signature = (
        seed = 1,
        shipments = 2_000,
        events = 100_000,
        invalid_rate = 0.001,
        start_ms = None,
        *,
        depots = None,
        customer_provinces = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        seed: u64,
        shipments: u64,
        events: u64,
        invalid_rate: f64,
        start_ms: Option<i64>,
        depots: Option<Vec<String>>,
        customer_provinces: Option<Vec<String>>,
    ) -> PyResult<Self> {
        if shipments == 0 {
            return Err(errors::config_error(
                py,
                "sim: `shipments` must be at least 1",
            ));
        }
        let config = SimConfig {
            seed,
            shipments,
            events,
            invalid_rate,
            start_ms: start_ms.unwrap_or(SimConfig::default().start_ms),
            depots: provinces(py, "depots", depots)?,
            customer_provinces: provinces(py, "customer_provinces", customer_provinces)?,
            ..SimConfig::default()
        };
        let sim = Simulator::try_new(config).map_err(|e| errors::to_py(py, &e))?;
        Ok(PySimulator {
            sim,
            batch: EventBatch::default(),
            invalid: Vec::new(),
            out: Vec::new(),
            emitted: 0,
            invalid_emitted: 0,
        })
    }

    /// The next up to `max_events` events encoded in `format` (json, protobuf or arrow), or
    /// None when the feed is exhausted. JSON chunks also carry the feed's invalid lines.
    #[pyo3(signature = (max_events, format = "json"))]
    fn next_chunk<'py>(
        &mut self,
        py: Python<'py>,
        max_events: usize,
        format: &str,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let format = parse_format(py, format)?;
        if !self.fill(py, max_events)? {
            return Ok(None);
        }
        let (batch, invalid, out) = (&self.batch, &self.invalid, &mut self.out);
        out.clear();
        py.detach(|| encode(batch, invalid, format, out));
        Ok(Some(PyBytes::new(py, &self.out)))
    }

    /// The next up to `max_events` valid events as pyarrow RecordBatches (one per kind, in
    /// first-seen kind order), or None when the feed is exhausted.
    fn next_record_batches<'py>(
        &mut self,
        py: Python<'py>,
        max_events: usize,
    ) -> PyResult<Option<Bound<'py, PyList>>> {
        if !self.fill(py, max_events)? {
            return Ok(None);
        }
        let batch = &self.batch;
        let rbs = py.detach(|| arrow::to_record_batches(batch));
        let items = rbs
            .iter()
            .map(|rb| rb.to_pyarrow(py))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(Some(PyList::new(py, items)?))
    }

    /// The ground truth of every lane the feed uses (carrier, origin and destination province
    /// as `CN-44`): true transit p50/p90 (PICKED_UP → DELIVERED, ms) and log-sd, damage and
    /// stall rates, share of shipments.
    fn lane_truths<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for t in self.sim.lane_truths() {
            let d = PyDict::new(py);
            d.set_item("carrier", t.carrier.code())?;
            d.set_item("origin", format!("CN-{}", t.origin))?;
            d.set_item("dest", format!("CN-{}", t.dest))?;
            d.set_item("p50_ms", t.p50_ms)?;
            d.set_item("p90_ms", t.p90_ms)?;
            d.set_item("sigma", t.sigma)?;
            d.set_item("damage_rate", t.damage_rate)?;
            d.set_item("stall_rate", t.stall_rate)?;
            d.set_item("share", t.share)?;
            out.append(d)?;
        }
        Ok(out)
    }

    /// Valid events produced so far.
    #[getter]
    fn events_emitted(&self) -> u64 {
        self.emitted
    }

    /// Invalid raw inputs produced so far (carried by JSON chunks only).
    #[getter]
    fn invalid_emitted(&self) -> u64 {
        self.invalid_emitted
    }
}

/// The simulator's example rule set (JSON text): every rule kind, `where` filters.
#[pyfunction]
pub fn example_rules() -> &'static str {
    crate::sim::example_rules()
}

/// Re-encode events from `src_format` (json or protobuf) to `dst_format`. Rejected input
/// events are dropped; the second item is how many. With `group_by_kind`, rows are grouped by
/// kind the way an Arrow stream of the same events is ordered.
#[pyfunction]
#[pyo3(signature = (data, src_format, dst_format, kind = None, group_by_kind = false))]
pub fn convert<'py>(
    py: Python<'py>,
    data: &[u8],
    src_format: &str,
    dst_format: &str,
    kind: Option<&str>,
    group_by_kind: bool,
) -> PyResult<(Bound<'py, PyBytes>, usize)> {
    let src = parse_format(py, src_format)?;
    let dst = parse_format(py, dst_format)?;
    let kind: Option<Kind> = parse_kind(py, kind)?;
    if src == Format::Arrow {
        return Err(errors::config_error(
            py,
            "convert reads json or protobuf, not arrow",
        ));
    }
    let (out, rejected) = py.detach(|| {
        let mut batch = EventBatch::default();
        let mut dead: Vec<DeadLetter> = Vec::new();
        match src {
            Format::Json => json::decode(data, kind, &mut batch, &mut dead),
            _ => proto::decode(data, &mut batch, &mut dead),
        }
        if group_by_kind {
            batch = grouped_by_kind(&batch);
        }
        let mut out = Vec::new();
        encode(&batch, &[], dst, &mut out);
        (out, dead.len())
    });
    Ok((PyBytes::new(py, &out), rejected))
}
