#![no_main]
//! See `tidb_gitops::fuzzing::cluster_toml`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| tidb_gitops::fuzzing::cluster_toml(data));
