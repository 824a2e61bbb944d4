#![no_main]
//! See `stevedore::fuzzing::resolve` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| stevedore::fuzzing::resolve(data));
