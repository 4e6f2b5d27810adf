#![no_main]
//! See `tidb_gitops::fuzzing::observed_json`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| tidb_gitops::fuzzing::observed_json(data));
