//! Integration tests of ave-persona that are safe in a test harness: lookups, and the
//! refusals that come before any change. The privilege drops themselves run in fixture
//! programs (`tests/e2e/persona.rs`), because they cannot be undone.

mod lookup;
