#![no_main]
//! See `tidb_gitops::fuzzing::pipeline`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| tidb_gitops::fuzzing::pipeline(data));
