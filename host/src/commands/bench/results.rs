//! What the bench measures for each path, shared by the measuring code and the report.

use crate::eval::percentile;

/// Target: the wasi-nn path's model time within this factor of in-process ONNX Runtime.
pub const TARGET_RATIO: f64 = 1.25;

/// One measured series.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Series {
    /// End-to-end (client) latencies, ms, sorted.
    pub e2e_ms: Vec<f64>,
    /// Model times reported by the guest (or measured in-process), ms, sorted.
    pub model_ms: Vec<f64>,
    /// Requests (or calls) per second with `concurrency` clients.
    pub throughput_rps: f64,
    /// Signals per request.
    pub signals: usize,
    /// The host's own time per wasi-nn compute (ms, sorted; empty when the path has none).
    pub host_compute_ms: Vec<f64>,
}

impl Series {
    pub fn e2e(&self, p: f64) -> f64 {
        percentile(&self.e2e_ms, p).unwrap_or(f64::NAN)
    }
    pub fn model(&self, p: f64) -> f64 {
        percentile(&self.model_ms, p).unwrap_or(f64::NAN)
    }
}

/// Results of one path (native / wasi-nn / tract).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PathResult {
    /// Short name (`native-ort`, `wasi-nn`, `tract`).
    pub key: &'static str,
    /// Table label.
    pub label: String,
    /// What `/health` says serves (`wasi-nn/onnx/cpu`, `tract/wasm`), or the in-process device.
    pub backend: String,
    pub single: Series,
    pub batch: Series,
    /// Correctness: reference vectors whose class matched / all, and the largest confidence error.
    pub classes_ok: usize,
    pub classes_total: usize,
    pub max_confidence_err: f64,
    pub correct: bool,
}
