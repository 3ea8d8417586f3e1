//! The Open Inference Protocol's infer parsers, JSON and binary: the first input byte picks the
//! form and the `Inference-Header-Content-Length` (any value, lies included), the rest is the
//! body. Every answer is a non-5xx with a JSON body (see `common::answer`).
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use pfd_core::http::Request;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    if selector & 1 == 1 {
        // Binary form: the header length is either near the body's JSON part or a lie.
        let length = match selector >> 1 {
            0 => "-1".to_string(),
            1 => "18446744073709551616".to_string(),
            n => (usize::from(n) * body.len() / 127).to_string(),
        };
        headers = vec![
            (
                "content-type".to_string(),
                "application/octet-stream".to_string(),
            ),
            ("inference-header-content-length".to_string(), length),
        ];
    }
    common::answer(&Request {
        method: "POST",
        path: "/v2/models/bearing-lstm/infer",
        query: "",
        headers: &headers,
        body,
    });
});
