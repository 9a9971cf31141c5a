//! Fuzz target `dispatch`: see `ave_fuzz::dispatch`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ave_fuzz::dispatch(data));
