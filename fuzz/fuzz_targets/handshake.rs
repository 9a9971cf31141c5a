//! Fuzz target `handshake`: see `ave_fuzz::handshake`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ave_fuzz::handshake(data));
