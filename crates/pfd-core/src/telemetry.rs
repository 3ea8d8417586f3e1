//! Inference telemetry from the component to its host.
//!
//! Only the component knows which model ran, on which backend (wasi-nn or tract in the guest),
//! for how long, and what it predicted; only the host can export metrics (an instance lives for
//! one request). So the component describes each inference in a response header,
//! [`RESPONSE_HEADER`], as a small JSON [`InferenceRecord`], and pfd-host turns it into
//! `inference_duration_seconds{model,backend}` and `inferences_total{model,class}`.
//!
//! The header is private between the two: the component adds it only when the request carries
//! [`REQUEST_HEADER`], which pfd-host sets after removing any client-sent copy, and pfd-host
//! removes the record before the response leaves. Under other hosts (`spin up`, SpinKube) clients
//! never see it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::engine::BackendInfo;
use crate::http::{Request, Response};
use crate::postprocess::argmax;

/// Request header by which a host asks for inference records.
pub const REQUEST_HEADER: &str = "pfd-telemetry";
/// Response header carrying one [`InferenceRecord`] (JSON, ASCII).
pub const RESPONSE_HEADER: &str = "pfd-inference";

/// One engine call as the component saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferenceRecord {
    /// The model's folder name.
    pub model: String,
    /// `backend/device`, as `/model/info` reports it (`tract/wasm`, `wasi-nn/onnx/cpu`…).
    pub backend: String,
    /// Wall time of the engine call (all signals of the request).
    pub seconds: f64,
    /// Predicted class name → number of signals predicted as it.
    pub classes: BTreeMap<String, u64>,
}

impl InferenceRecord {
    /// The record of one call that produced `logits` (one row per signal).
    pub fn new(
        model: &str,
        backend: &BackendInfo,
        seconds: f64,
        class_names: &[String],
        logits: &[Vec<f32>],
    ) -> Self {
        let mut classes = BTreeMap::new();
        for row in logits {
            let i = argmax(row);
            let name = class_names
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("class_{i}"));
            *classes.entry(name).or_insert(0) += 1;
        }
        InferenceRecord {
            model: model.to_string(),
            backend: backend.to_string(),
            seconds,
            classes,
        }
    }

    /// The header value: JSON with every non-ASCII character escaped (header values are ASCII).
    pub fn to_header(&self) -> String {
        let json = serde_json::to_string(self).expect("records always serialize");
        let mut out = String::with_capacity(json.len());
        for c in json.chars() {
            if c.is_ascii() {
                out.push(c);
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
        out
    }

    /// Parses a header value written by [`Self::to_header`].
    pub fn from_header(value: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(value)
    }

    /// Adds the record to `response`.
    pub fn attach(&self, response: Response) -> Response {
        response.with_header(RESPONSE_HEADER, self.to_header())
    }
}

/// Removes the record from `response` unless `req` asked for it.
pub fn keep_if_requested(req: &Request, mut response: Response) -> Response {
    if req.header(REQUEST_HEADER).is_none() {
        response
            .headers
            .retain(|(name, _)| *name != RESPONSE_HEADER);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_counts_classes_and_round_trips_as_ascii() {
        let names: Vec<String> = ["Healthy", "Défaut", "Ball"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let backend = BackendInfo {
            backend: "tract".into(),
            device: "wasm".into(),
        };
        let logits = vec![
            vec![0.0, 5.0, 1.0],
            vec![0.0, 7.0, 1.0],
            vec![9.0, 0.0, 1.0],
        ];
        let r = InferenceRecord::new("m", &backend, 0.25, &names, &logits);
        assert_eq!(r.backend, "tract/wasm");
        assert_eq!(r.classes["Défaut"], 2);
        assert_eq!(r.classes["Healthy"], 1);
        let header = r.to_header();
        assert!(header.is_ascii(), "{header}");
        assert_eq!(InferenceRecord::from_header(&header).unwrap(), r);
    }

    #[test]
    fn record_is_dropped_unless_requested() {
        let response = Response::json(200, &serde_json::json!({}))
            .with_header(RESPONSE_HEADER, "{}".to_string());
        let plain = Request {
            method: "GET",
            path: "/",
            query: "",
            headers: &[],
            body: b"",
        };
        let asked = [(REQUEST_HEADER.to_string(), "1".to_string())];
        let asking = Request {
            headers: &asked,
            ..plain
        };
        let kept = keep_if_requested(&asking, response.clone());
        assert!(kept.headers.iter().any(|(n, _)| *n == RESPONSE_HEADER));
        let dropped = keep_if_requested(&plain, response);
        assert!(!dropped.headers.iter().any(|(n, _)| *n == RESPONSE_HEADER));
    }
}
