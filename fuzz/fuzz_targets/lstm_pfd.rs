//! The LSTM_PFD body decoders (`/predict`, `/predict/batch`): the fast float decoder agrees bit
//! for bit with serde on every body it accepts, and parsing never panics. Signals of length 4,
//! so valid bodies are reachable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pfd_core::predict::{self, Limits};

const LIMITS: Limits = Limits {
    signal_length: 4,
    classes: 11,
    max_batch_size: 3,
};

fuzz_target!(|body: &[u8]| {
    predict::check_fast_paths_agree_with_serde(body, &LIMITS);
    let _ = predict::parse_predict(body, &LIMITS);
    let _ = predict::parse_batch(body, &LIMITS);
});
