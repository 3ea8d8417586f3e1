//! The `.env` reader pfd-host applies under its flags (dotenvy, as `config::load_dotenv` uses
//! it): any bytes give entries or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for item in dotenvy::from_read_iter(data) {
        if item.is_err() {
            break;
        }
    }
});
