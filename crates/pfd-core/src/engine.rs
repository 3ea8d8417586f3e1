//! The one inference API every backend implements.
//!
//! A backend runs a model on a contiguous `[batch, 1, length]` f32 buffer and returns the
//! `[batch, classes]` logits. Everything above that — chunking a request into engine-sized
//! batches, softmax, class names — is shared and lives here or in [`crate::postprocess`], so a
//! backend stays a thin adapter around its runtime (tract in the guest, wasi-nn on the host).

use std::fmt;

/// What actually serves a model, e.g. `tract` on `wasm`, or `wasi-nn/onnx` on `cuda`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendInfo {
    pub backend: String,
    pub device: String,
}

impl fmt::Display for BackendInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.backend, self.device)
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    #[error("model could not be loaded: {0}")]
    Load(String),
    #[error("inference failed: {0}")]
    Inference(String),
    #[error("model returned {got} values, expected {expected} (batch x classes)")]
    OutputShape { expected: usize, got: usize },
}

pub trait InferenceEngine {
    fn backend(&self) -> BackendInfo;

    /// Runs one batch: `input` holds `batch * length` samples, row-major `[batch, 1, length]`.
    /// Returns `batch * classes` logits.
    fn run(&self, input: &[f32], batch: usize, length: usize) -> Result<Vec<f32>, EngineError>;

    /// Logits for each signal, running at most `chunk` signals per engine call (bounded memory,
    /// and the batch size the backend was tuned for). All signals must have the same length.
    fn predict_batch(
        &self,
        signals: &[&[f32]],
        classes: usize,
        chunk: usize,
    ) -> Result<Vec<Vec<f32>>, EngineError> {
        let mut out = Vec::with_capacity(signals.len());
        let mut buffer = Vec::new();
        for group in signals.chunks(chunk.max(1)) {
            let length = group[0].len();
            debug_assert!(group.iter().all(|s| s.len() == length));
            buffer.clear();
            // Sized once, not grown by doubling: a /diagnose batch is ~10 MB, and each
            // reallocation would touch (and, in a fresh instance, fault in) new memory.
            buffer.reserve_exact(group.len() * length);
            for s in group {
                buffer.extend_from_slice(s);
            }
            let logits = self.run(&buffer, group.len(), length)?;
            if logits.len() != group.len() * classes {
                return Err(EngineError::OutputShape {
                    expected: group.len() * classes,
                    got: logits.len(),
                });
            }
            out.extend(logits.chunks(classes).map(<[f32]>::to_vec));
        }
        Ok(out)
    }
}

#[cfg(any(test, feature = "testing"))]
pub mod testing {
    //! A deterministic engine for router tests: logit `c` of a signal is `-(mean - c)^2`, so the
    //! predicted class is the signal's mean rounded to a class index.
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    pub struct MeanEngine {
        pub calls: AtomicUsize,
        pub classes: usize,
    }

    impl InferenceEngine for MeanEngine {
        fn backend(&self) -> BackendInfo {
            BackendInfo {
                backend: "mean".into(),
                device: "test".into(),
            }
        }
        fn run(&self, input: &[f32], batch: usize, length: usize) -> Result<Vec<f32>, EngineError> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            assert_eq!(input.len(), batch * length);
            Ok(input
                .chunks(length)
                .flat_map(|s| {
                    let mean = s.iter().sum::<f32>() / length as f32;
                    (0..self.classes).map(move |c| -(mean - c as f32).powi(2))
                })
                .collect())
        }
    }

    #[test]
    fn predict_batch_chunks() {
        let e = MeanEngine {
            classes: 3,
            ..Default::default()
        };
        let signals: Vec<Vec<f32>> = (0..5).map(|i| vec![(i % 3) as f32; 4]).collect();
        let refs: Vec<&[f32]> = signals.iter().map(Vec::as_slice).collect();
        let out = e.predict_batch(&refs, 3, 2).unwrap();
        assert_eq!(e.calls.load(Ordering::Relaxed), 3);
        assert_eq!(out.len(), 5);
        assert_eq!(out[4], vec![-1.0, 0.0, -1.0]);
    }
}
