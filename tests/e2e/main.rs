//! End-to-end tests across crates, through the facade `ave` as users write it.
//!
//! One module per area; fixture programs live in `tests/fixtures/` and are started
//! through `env!("CARGO_BIN_EXE_<name>")`.

mod cmd;
mod facade;
mod persona;
mod process;
mod stress;
