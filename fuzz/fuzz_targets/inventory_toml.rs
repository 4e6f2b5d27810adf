#![no_main]
//! See `tidb_gitops::fuzzing::inventory_toml`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| tidb_gitops::fuzzing::inventory_toml(data));
