//! Fuzz target `frame`: see `ave_fuzz::frame`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ave_fuzz::frame(data));
