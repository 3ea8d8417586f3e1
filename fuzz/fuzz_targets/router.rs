//! Any request at all: method, path, headers and body from the input (separated by newlines),
//! through the real router. Every answer is a non-5xx with a JSON body (see `common::answer`).
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use pfd_core::http::Request;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |&b| b == b'\n');
    let method = String::from_utf8_lossy(parts.next().unwrap_or_default()).to_uppercase();
    let path = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let headers: Vec<(String, String)> = String::from_utf8_lossy(parts.next().unwrap_or_default())
        .split(';')
        .filter_map(|h| h.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = parts.next().unwrap_or_default();
    common::answer(&Request {
        method: &method,
        path: &path,
        query: "",
        headers: &headers,
        body,
    });
});
