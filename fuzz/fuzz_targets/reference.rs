#![no_main]
//! See `stevedore::fuzzing::reference` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| stevedore::fuzzing::reference(data));
