//! `streamguard._core.LaneTable`: an engine's lane statistics with carriers by code
//! ([`CodedLanes`]), to read estimates from, merge across partitions, and move as bytes.

use super::errors;
use crate::engine::score::province_code;
use crate::scoring::{province_of, CodedLanes, LaneEstimate, LaneKey};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

/// Lane statistics (see `streamguard.lanes`).
#[pyclass(module = "streamguard._core", name = "LaneTable")]
pub struct PyLaneTable {
    pub(crate) lanes: CodedLanes,
}

/// A region code's province, `LaneKey::ANY` for `None`; `ConfigError` if it names none.
fn province(py: Python<'_>, what: &str, region: Option<&str>) -> PyResult<u16> {
    match region {
        None => Ok(LaneKey::ANY),
        Some(r) => province_of(r.as_bytes()).ok_or_else(|| {
            errors::config_error(
                py,
                format!("{what}: '{r}' is not a region code (CN- and 2, 4 or 6 digits)"),
            )
        }),
    }
}

fn estimate_dict<'py>(py: Python<'py>, e: &LaneEstimate) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("p50_ms", e.p50_ms)?;
    d.set_item("p90_ms", e.p90_ms)?;
    d.set_item("on_time_rate", e.on_time_rate)?;
    d.set_item("dwell_per_shipment", e.dwell_per_shipment)?;
    d.set_item("shock_per_shipment", e.shock_per_shipment)?;
    d.set_item("shipments", e.shipments)?;
    d.set_item("lane_weight", e.lane_weight)?;
    Ok(d)
}

#[pymethods]
impl PyLaneTable {
    /// An empty table (default configuration).
    #[new]
    fn new(py: Python<'_>) -> PyResult<Self> {
        let lanes = CodedLanes::new(Default::default()).map_err(|e| errors::to_py(py, &e))?;
        Ok(PyLaneTable { lanes })
    }

    /// A table from `to_bytes()` output; `DecodeError` naming what is wrong otherwise.
    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        let lanes = py
            .detach(|| CodedLanes::decode(data))
            .map_err(|e| errors::to_py(py, &e))?;
        Ok(PyLaneTable { lanes })
    }

    /// The table's versioned, checksummed encoding (carriers by code).
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let mut out = Vec::new();
        py.detach(|| self.lanes.encode(&mut out));
        PyBytes::new(py, &out)
    }

    /// Add `other`'s statistics to this table (carriers matched by code), in place.
    fn merge(&mut self, py: Python<'_>, other: PyRef<'_, PyLaneTable>) -> PyResult<()> {
        let other = &other.lanes;
        let lanes = &mut self.lanes;
        py.detach(|| lanes.merge(other))
            .map_err(|e| errors::to_py(py, &e))
    }

    /// The smoothed estimate of (`carrier`, origin region, destination region), or of the
    /// carrier as a whole when both regions are None; None for a carrier without a delivery.
    #[pyo3(signature = (carrier, origin_region = None, dest_region = None))]
    fn estimate<'py>(
        &self,
        py: Python<'py>,
        carrier: &str,
        origin_region: Option<&str>,
        dest_region: Option<&str>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let origin = province(py, "origin_region", origin_region)?;
        let dest = province(py, "dest_region", dest_region)?;
        if (origin == LaneKey::ANY) != (dest == LaneKey::ANY) {
            return Err(errors::config_error(
                py,
                "origin_region and dest_region: give both (a lane) or neither (the carrier)",
            ));
        }
        self.lanes
            .estimate(carrier, origin, dest)
            .map(|e| estimate_dict(py, &e))
            .transpose()
    }

    /// Every lane's estimate, with `carrier`, `origin` and `dest` (`CN-` + province; None
    /// for a carrier's aggregate), in carrier-id then lane order; carriers without a
    /// delivery are left out.
    fn estimates<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for (code, key) in self.lanes.lanes() {
            let Some(e) = self.lanes.table().estimate(key) else {
                continue;
            };
            let d = estimate_dict(py, &e)?;
            d.set_item("carrier", code)?;
            let region = |p: u16| (p != LaneKey::ANY).then(|| province_code(p));
            d.set_item("origin", region(key.origin))?;
            d.set_item("dest", region(key.dest))?;
            out.append(d)?;
        }
        Ok(out)
    }

    /// Lanes held, carriers' aggregates included.
    fn __len__(&self) -> usize {
        self.lanes.table().len()
    }

    fn __repr__(&self) -> String {
        let carriers = self
            .lanes
            .lanes()
            .filter(|(_, k)| k.is_carrier_wide())
            .count();
        format!(
            "LaneTable(lanes={}, carriers={carriers})",
            self.lanes.table().len() - carriers
        )
    }
}
