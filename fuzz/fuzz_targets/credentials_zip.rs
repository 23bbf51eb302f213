#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ota_sign_fuzz::credentials_zip(data));
