//! Fuzz target `json`: see `ave_fuzz::json`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ave_fuzz::json(data));
