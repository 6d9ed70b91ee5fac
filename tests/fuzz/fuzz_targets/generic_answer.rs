//! cargo-fuzz wrapper of [`canary_fuzz::generic_answer`]; see `docs/reliability.md`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| canary_fuzz::generic_answer(data));
