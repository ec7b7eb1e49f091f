//! Every Rust error kind maps to one `streamguard.errors` class, in this one place.
//!
//! The classes are defined in Python (`python/streamguard/errors.py`) so that they can carry
//! structured attributes (`RuleError.rule`, `.field`) and inherit from `OSError`/`ValueError`
//! where that is what callers catch; the bindings import them on first use.

use crate::error::{Error, ErrorKind};
use crate::rules::RuleError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};

const MODULE: &str = "streamguard.errors";

fn class<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyType>>,
    name: &str,
) -> PyResult<&'py Bound<'py, PyType>> {
    cell.import(py, MODULE, name)
}

/// Instantiate `cls(message, **kwargs)` as a `PyErr`; a failure to build it is raised instead.
#[cold]
fn make(
    py: Python<'_>,
    cell: &'static PyOnceLock<Py<PyType>>,
    name: &str,
    message: String,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyErr {
    match class(py, cell, name).and_then(|cls| cls.call((message,), kwargs)) {
        Ok(obj) => PyErr::from_value(obj),
        Err(e) => e,
    }
}

static DECODE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static RULE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static CONFIG: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static IO: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static NATS: PyOnceLock<Py<PyType>> = PyOnceLock::new();

#[cold]
pub(crate) fn decode_error(py: Python<'_>, message: impl Into<String>) -> PyErr {
    make(py, &DECODE, "DecodeError", message.into(), None)
}

#[cold]
pub(crate) fn config_error(py: Python<'_>, message: impl Into<String>) -> PyErr {
    make(py, &CONFIG, "ConfigError", message.into(), None)
}

/// `RuleError(str(e), rule=e.rule, field=e.field)`: the location is passed structurally.
#[cold]
pub(crate) fn rule_error(py: Python<'_>, e: &RuleError) -> PyErr {
    let kwargs = PyDict::new(py);
    let set = kwargs
        .set_item("rule", e.rule.as_deref())
        .and_then(|()| kwargs.set_item("field", e.field.as_str()));
    if let Err(err) = set {
        return err;
    }
    make(py, &RULE, "RuleError", e.to_string(), Some(&kwargs))
}

/// The mapping of `crate::Error` kinds to `streamguard.errors` classes.
#[cold]
pub(crate) fn to_py(py: Python<'_>, e: &Error) -> PyErr {
    let message = e.to_string();
    match e.kind() {
        ErrorKind::Decode => make(py, &DECODE, "DecodeError", message, None),
        ErrorKind::Rule => make(py, &RULE, "RuleError", message, None),
        ErrorKind::Config => make(py, &CONFIG, "ConfigError", message, None),
        ErrorKind::Io => make(py, &IO, "StreamGuardIOError", message, None),
        ErrorKind::Nats => make(py, &NATS, "NatsError", message, None),
    }
}
