//! cargo-fuzz wrapper of [`canary_fuzz::cloudwatch_answer`]; see `docs/reliability.md`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| canary_fuzz::cloudwatch_answer(data));
