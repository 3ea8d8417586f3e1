//! The wasi-nn backend: inference delegated to the host (`wasi:nn@0.2.0-rc-2024-10-28`).
//!
//! Compiled only into the `wasi-nn` build (cargo feature): component imports cannot be
//! optional, so a component importing `wasi:nn` does not start on hosts without it (Spin,
//! SpinKube, plain `wasmtime serve`). pfd-host provides it, backed by ONNX Runtime on CPU or
//! CUDA with its graphs loaded once at start; the guest only names the graph
//! (`load-by-name`, the model's folder name) and exchanges tensors.
//!
//! The host's device is not visible through wasi-nn, so pfd-host tells the guest in
//! `PFD_NN_DEVICE`; `/health` reports `wasi-nn/onnx/<device>` from it.

use pfd_core::engine::{BackendInfo, EngineError, InferenceEngine};

wit_bindgen::generate!({
    path: "wit/wasi-nn.wit",
    world: "ml",
});

use wasi::nn::graph::{self, Graph};
use wasi::nn::tensor::{Tensor, TensorType};

pub struct WasiNnEngine {
    graph: Graph,
    input: String,
    output: String,
    device: String,
}

// SAFETY: the component is single-threaded (wasm32-wasip1 without threads); the handle is an
// index into the host's resource table, valid for the instance's life.
unsafe impl Send for WasiNnEngine {}
unsafe impl Sync for WasiNnEngine {}

fn describe(e: wasi::nn::errors::Error) -> String {
    format!("{:?}: {}", e.code(), e.data())
}

impl WasiNnEngine {
    /// The host's graph called `name`; `Err` when the host has no such graph (the caller
    /// falls back to tract).
    pub fn load(name: &str, input: &str, output: &str, device: &str) -> Result<Self, EngineError> {
        let graph = graph::load_by_name(name).map_err(|e| EngineError::Load(describe(e)))?;
        Ok(WasiNnEngine {
            graph,
            input: input.to_string(),
            output: output.to_string(),
            device: if device.is_empty() {
                "unknown".into()
            } else {
                device.to_string()
            },
        })
    }
}

impl InferenceEngine for WasiNnEngine {
    fn backend(&self) -> BackendInfo {
        BackendInfo {
            backend: "wasi-nn/onnx".into(),
            device: self.device.clone(),
        }
    }

    fn run(&self, input: &[f32], batch: usize, length: usize) -> Result<Vec<f32>, EngineError> {
        let err = |e| EngineError::Inference(describe(e));
        // wasi:nn tensors are little-endian bytes, and so is wasm32's memory: the f32s already are
        // the tensor, so hand their memory over instead of building a 400 kB copy per request.
        let bytes: &[u8] = bytemuck::cast_slice(input);
        let tensor = Tensor::new(&[batch as u32, 1, length as u32], TensorType::Fp32, bytes);
        let context = self.graph.init_execution_context().map_err(err)?;
        let outputs = context
            .compute(vec![(self.input.clone(), tensor)])
            .map_err(err)?;
        let (_, logits) = outputs
            .into_iter()
            .find(|(name, _)| *name == self.output)
            .ok_or_else(|| {
                EngineError::Inference(format!(
                    "the host returned no output named {:?}",
                    self.output
                ))
            })?;
        if logits.ty() != TensorType::Fp32 {
            return Err(EngineError::Inference(format!(
                "output {:?} is {:?}, expected FP32",
                self.output,
                logits.ty()
            )));
        }
        Ok(logits
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }
}
