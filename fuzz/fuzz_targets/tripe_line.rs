//! Fuzz target `tripe_line`: see `ave_fuzz::tripe_line`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ave_fuzz::tripe_line(data));
