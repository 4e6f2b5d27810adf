#![no_main]
//! See `tidb_gitops::fuzzing::placement_lock`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| tidb_gitops::fuzzing::placement_lock(data));
