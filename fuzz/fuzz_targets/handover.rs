//! Fuzz target `handover`: see `ave_fuzz::handover`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ave_fuzz::handover(data));
