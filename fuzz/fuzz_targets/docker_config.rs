#![no_main]
//! See `stevedore::fuzzing::docker_config` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| stevedore::fuzzing::docker_config(data));
