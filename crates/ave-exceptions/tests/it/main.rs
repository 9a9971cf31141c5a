//! Integration tests of `ave-exceptions`: the recorded vectors of the original and
//! property tests of the wire round trip.

mod properties;
mod vectors;

/// Reads one of the vector files recorded from the original (a copy of
/// `../shared/spec/vectors/`, checked to be identical by `cargo xtask tidy`).
fn vector(name: &str) -> serde_json::Value {
    let path = format!("{}/../../tests/data/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {path}: {e}"))
}
