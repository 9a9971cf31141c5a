//! Conversions between JSON values (`serde_json::Value`) and Python objects.
//!
//! Results of RPC methods go through the original's `enforce_unicode` rules: byte strings
//! are decoded as ASCII with replacement, tuples become lists, dictionaries (profiles
//! included) become plain objects. Anything else cannot be sent and becomes the
//! original's `INTERNAL ERROR: OBJECT IS NOT JSON COMPATIBLE` exception.

use pyo3::{
    prelude::*,
    types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple},
};
use serde_json::{Map, Number, Value};

/// A JSON value as a Python object: `None`, `bool`, `int`, `float`, `str`, `list`, `dict`.
pub(crate) fn to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                PyFloat::new(py, n.as_f64().unwrap_or(f64::NAN)).into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, to_py(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

/// Why a Python object cannot travel as JSON: the object's `repr`.
#[derive(Debug)]
pub(crate) struct NotJson(pub(crate) String);

impl NotJson {
    /// The original's message for it.
    pub(crate) fn message(&self) -> String {
        format!("INTERNAL ERROR: OBJECT IS NOT JSON COMPATIBLE: {}", self.0)
    }
}

fn not_json(obj: &Bound<'_, PyAny>) -> NotJson {
    NotJson(obj.repr().map(|r| r.to_string()).unwrap_or_else(|_| "<object>".to_owned()))
}

/// A Python object as a JSON value, by the original's `enforce_unicode` rules.
pub(crate) fn to_value(obj: &Bound<'_, PyAny>) -> Result<Value, NotJson> {
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return s.extract::<String>().map(Value::String).map_err(|_| not_json(obj));
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::from(i));
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Value::from(u));
        }
        return Err(not_json(obj));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        // JSON has no NaN or infinities: they travel as null.
        return Ok(Number::from_f64(f.value()).map_or(Value::Null, Value::Number));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut map = Map::new();
        for (k, v) in d.iter() {
            let key = if let Ok(s) = k.cast::<PyString>() {
                s.extract::<String>().map_err(|_| not_json(&k))?
            } else if k.is_instance_of::<PyInt>() || k.is_instance_of::<PyFloat>() {
                k.str().map_err(|_| not_json(&k))?.to_string()
            } else {
                return Err(not_json(&k));
            };
            map.insert(key, to_value(&v)?);
        }
        return Ok(Value::Object(map));
    }
    if let Ok(l) = obj.cast::<PyList>() {
        return l.iter().map(|item| to_value(&item)).collect::<Result<_, _>>().map(Value::Array);
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return t.iter().map(|item| to_value(&item)).collect::<Result<_, _>>().map(Value::Array);
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        // The original decoded byte strings as ASCII, each other byte becoming U+FFFD.
        let text: String = b
            .as_bytes()
            .iter()
            .map(|&c| if c.is_ascii() { c as char } else { '\u{fffd}' })
            .collect();
        return Ok(Value::String(text));
    }
    Err(not_json(obj))
}

/// A Python object that must be JSON (call arguments): as [`to_value`], with a `TypeError`.
pub(crate) fn to_value_arg(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    to_value(obj).map_err(|e| {
        pyo3::exceptions::PyTypeError::new_err(format!("cannot send as JSON: {}", e.0))
    })
}
