//! Fuzz target `tripe_words`: see `ave_fuzz::tripe_words`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ave_fuzz::tripe_words(data));
