#![no_main]
use std::sync::OnceLock;

static STORE: OnceLock<ota_sign_fuzz::ServerStore> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ota_sign_fuzz::server_request(STORE.get_or_init(ota_sign_fuzz::ServerStore::new), data)
});
