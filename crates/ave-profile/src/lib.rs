//! AVE resource profiles (placeholder while the crate is written).
