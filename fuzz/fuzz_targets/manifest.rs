#![no_main]
//! See `stevedore_oci::fuzzing::manifest` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| stevedore_oci::fuzzing::manifest(data));
