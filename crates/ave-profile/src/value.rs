//! Python's equality on decoded JSON values, and a hash consistent with it.
//!
//! Profiles travel as JSON and the original compares them with Python's `==`, under which
//! `1 == 1.0 == True` and containers compare element by element. [`py_eq`] is that
//! equality and [`py_hash`] a hash that agrees with it, so profiles can key hash maps.

use std::hash::{Hash, Hasher};

use serde_json::{Map, Number, Value};

/// Python's `==` on the objects `json.loads` would return.
pub(crate) fn py_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| py_eq(x, y))
        }
        (Value::Object(x), Value::Object(y)) => py_eq_map(x, y),
        _ => match (numeric(a), numeric(b)) {
            (Some(x), Some(y)) => x.equals(y),
            _ => false,
        },
    }
}

/// Python's `==` on two decoded JSON objects.
pub(crate) fn py_eq_map(x: &Map<String, Value>, y: &Map<String, Value>) -> bool {
    x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| py_eq(v, w)))
}

/// Feeds a value to a hasher so that `py_eq(a, b)` implies equal hashes.
pub(crate) fn py_hash<H: Hasher>(value: &Value, state: &mut H) {
    match value {
        Value::Null => state.write_u8(0),
        Value::String(s) => {
            state.write_u8(1);
            s.hash(state);
        }
        Value::Array(items) => {
            state.write_u8(2);
            state.write_usize(items.len());
            for item in items {
                py_hash(item, state);
            }
        }
        Value::Object(map) => py_hash_map(map, state),
        Value::Bool(_) | Value::Number(_) => {
            // Every number equal to another has the same f64 image (exact integers beyond
            // 2^53 may collide, which only costs a comparison).
            let x = numeric(value).map_or(0.0, Numeric::as_f64);
            state.write_u8(4);
            let x = if x == 0.0 { 0.0 } else { x };
            state.write_u64(x.to_bits());
        }
    }
}

/// [`py_hash`] for a decoded JSON object.
pub(crate) fn py_hash_map<H: Hasher>(map: &Map<String, Value>, state: &mut H) {
    // Order-independent: combine per-entry hashes commutatively.
    state.write_u8(3);
    state.write_usize(map.len());
    let mut sum: u64 = 0;
    for (k, v) in map {
        let mut entry = std::collections::hash_map::DefaultHasher::new();
        k.hash(&mut entry);
        py_hash(v, &mut entry);
        sum = sum.wrapping_add(entry.finish());
    }
    state.write_u64(sum);
}

/// A JSON number or boolean seen as a Python number.
#[derive(Clone, Copy)]
enum Numeric {
    Int(i128),
    Float(f64),
}

impl Numeric {
    fn as_f64(self) -> f64 {
        match self {
            Numeric::Int(i) => i as f64,
            Numeric::Float(f) => f,
        }
    }

    fn equals(self, other: Numeric) -> bool {
        match (self, other) {
            (Numeric::Int(x), Numeric::Int(y)) => x == y,
            (Numeric::Float(x), Numeric::Float(y)) => x == y,
            (Numeric::Int(i), Numeric::Float(f)) | (Numeric::Float(f), Numeric::Int(i)) => {
                // Exact comparison, as Python does between int and float.
                f.fract() == 0.0 && (-1.7e38..=1.7e38).contains(&f) && f as i128 == i
            }
        }
    }
}

fn numeric(value: &Value) -> Option<Numeric> {
    match value {
        Value::Bool(b) => Some(Numeric::Int(i128::from(*b))),
        Value::Number(n) => Some(number(n)),
        _ => None,
    }
}

fn number(n: &Number) -> Numeric {
    if let Some(i) = n.as_i64() {
        Numeric::Int(i128::from(i))
    } else if let Some(u) = n.as_u64() {
        Numeric::Int(i128::from(u))
    } else {
        Numeric::Float(n.as_f64().unwrap_or(f64::NAN))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::hash_map::DefaultHasher;

    use serde_json::json;

    use super::*;

    fn hash(v: &Value) -> u64 {
        let mut h = DefaultHasher::new();
        py_hash(v, &mut h);
        h.finish()
    }

    #[test]
    fn python_numeric_equality() {
        assert!(py_eq(&json!(1), &json!(1.0)));
        assert!(py_eq(&json!(true), &json!(1)));
        assert!(py_eq(&json!(false), &json!(0.0)));
        assert!(!py_eq(&json!(1), &json!(1.5)));
        assert!(!py_eq(&json!("1"), &json!(1)));
        assert!(!py_eq(&json!(null), &json!(0)));
        assert!(py_eq(&json!(u64::MAX), &json!(u64::MAX)));
        assert!(!py_eq(&json!(u64::MAX), &json!(i64::MAX)));
        assert!(py_eq(&json!([1, {"a": true}]), &json!([1.0, {"a": 1}])));
        assert!(!py_eq(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
    }

    #[test]
    fn hash_agrees_with_equality() {
        let pairs = [
            (json!(1), json!(1.0)),
            (json!(true), json!(1)),
            (json!(0), json!(-0.0)),
            (json!({"a": [1, 2], "b": "x"}), json!({"b": "x", "a": [1.0, 2]})),
        ];
        for (a, b) in pairs {
            assert!(py_eq(&a, &b));
            assert_eq!(hash(&a), hash(&b), "{a} vs {b}");
        }
        assert_ne!(hash(&json!("a")), hash(&json!("b")));
    }
}
