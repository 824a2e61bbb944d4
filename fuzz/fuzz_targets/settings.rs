#![no_main]
//! See `stevedore::fuzzing::settings` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| stevedore::fuzzing::settings(data));
