#![no_main]
//! See `stevedore::fuzzing::challenge` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| stevedore::fuzzing::challenge(data));
