//! The tract backend: ONNX inference in pure Rust.
//!
//! This is the portable engine. Inside the wasm component it is the backend whenever the host
//! offers no wasi-nn (plain `spin up`, SpinKube, `wasmtime serve`) and the fallback when it
//! does; natively, `pfd-host model validate` uses it to check models.
//!
//! Loading parses the ONNX protobuf, pins the input to one record of the card's length, and
//! optimises the graph into a plan. The batch is pinned to 1 because tract's ONNX `LSTM`
//! expansion needs a concrete batch size (a symbolic one panics while wiring the scan);
//! a batch request runs the plan once per record, which costs the same arithmetic as a
//! batched run for this model's shapes and keeps one plan for every batch size.
//!
//! Parsing and optimising is the expensive part (milliseconds in wasm): it happens once per
//! instance, never per record.

use std::io::Cursor;
use std::sync::Arc;

use pfd_core::card::ModelCard;
use pfd_core::engine::{BackendInfo, EngineError, InferenceEngine};
use tract_onnx::prelude::*;

type Plan = Arc<TypedSimplePlan>;

pub struct TractEngine {
    plan: Plan,
}

fn load_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Load(format!("{e:#}"))
}

impl TractEngine {
    /// Parses and optimises `onnx` for one record of `card.signal_length` samples.
    pub fn load(onnx: &[u8], card: &ModelCard) -> Result<Self, EngineError> {
        let mut model = tract_onnx::onnx()
            .model_for_read(&mut Cursor::new(onnx))
            .map_err(load_err)?;
        model
            .set_input_fact(0, f32::fact([1, 1, card.signal_length]).into())
            .map_err(load_err)?;
        let plan = model
            .into_optimized()
            .map_err(load_err)?
            .into_runnable()
            .map_err(load_err)?;
        Ok(TractEngine { plan })
    }
}

impl InferenceEngine for TractEngine {
    fn backend(&self) -> BackendInfo {
        let device = if cfg!(target_arch = "wasm32") {
            "wasm"
        } else {
            "cpu"
        };
        BackendInfo {
            backend: "tract".into(),
            device: device.into(),
        }
    }

    fn run(&self, input: &[f32], batch: usize, length: usize) -> Result<Vec<f32>, EngineError> {
        let infer_err = |e: TractError| EngineError::Inference(format!("{e:#}"));
        let mut logits = Vec::new();
        for record in input.chunks(length).take(batch) {
            let tensor = Tensor::from_shape(&[1, 1, length], record).map_err(infer_err)?;
            let outputs = self
                .plan
                .run(tvec!(tensor.into_tvalue()))
                .map_err(infer_err)?;
            let view = outputs[0].try_as_plain_ram().map_err(infer_err)?;
            logits.extend_from_slice(view.as_slice::<f32>().map_err(infer_err)?);
        }
        Ok(logits)
    }
}

#[cfg(test)]
mod tests {
    //! The bundled model's reference vectors, through tract natively (the wasm path is covered
    //! end to end in `tests/`).
    use super::*;
    use pfd_core::card::{CARD_FILE, MODEL_FILE, REFERENCE_FILE};
    use std::path::PathBuf;

    fn model_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/bearing-lstm")
    }

    #[test]
    fn reproduces_reference_logits() {
        let dir = model_dir();
        let card = ModelCard::parse(&std::fs::read(dir.join(CARD_FILE)).unwrap()).unwrap();
        let engine =
            TractEngine::load(&std::fs::read(dir.join(MODEL_FILE)).unwrap(), &card).unwrap();
        let reference: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(REFERENCE_FILE)).unwrap()).unwrap();
        let raw = std::fs::read(dir.join(reference["inputs_file"].as_str().unwrap())).unwrap();
        let inputs: Vec<f32> = raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        let count = reference["count"].as_u64().unwrap() as usize;
        let (rtol, atol) = (
            reference["rtol"].as_f64().unwrap() as f32,
            reference["atol"].as_f64().unwrap() as f32,
        );
        let logits = engine.run(&inputs, count, card.signal_length).unwrap();
        let expected: Vec<f32> = reference["logits"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|row| {
                row.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap() as f32)
            })
            .collect();
        assert_eq!(logits.len(), expected.len());
        for (i, (got, want)) in logits.iter().zip(&expected).enumerate() {
            assert!(
                (got - want).abs() <= atol + rtol * want.abs(),
                "logit {i}: tract {got} vs reference {want}"
            );
        }
    }

    #[test]
    fn garbage_is_a_load_error_not_a_panic() {
        let card = ModelCard::fallback("x");
        assert!(matches!(
            TractEngine::load(b"not an onnx file", &card),
            Err(EngineError::Load(_))
        ));
        let onnx = std::fs::read(model_dir().join(MODEL_FILE)).unwrap();
        assert!(matches!(
            TractEngine::load(&onnx[..onnx.len() / 2], &card),
            Err(EngineError::Load(_))
        ));
    }
}
