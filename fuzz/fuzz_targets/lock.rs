#![no_main]
//! See `stevedore::fuzzing::lock` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| stevedore::fuzzing::lock(data));
