#![no_main]
//! See `stevedore::fuzzing::manifest` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| stevedore::fuzzing::manifest(data));
