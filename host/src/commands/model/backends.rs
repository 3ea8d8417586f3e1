//! The inference backends the model tools run a model on, one record (batch 1) at a time:
//!
//! * **tract**, natively, through [`pfd_tract::TractEngine`] — the engine the wasm guest embeds
//!   (same crate, same version, same loading path), so what validates here loads in the guest;
//! * **onnxruntime** (CPU), through the host's wasi-nn loader ([`crate::nn::ort_lib`] finds and
//!   dlopens libonnxruntime; [`crate::nn::ort_backend::build_session`] builds the session with the
//!   serving configuration: graph optimisation level 3, one intra-op thread here).
//!
//! Before loading, each backend's support for the model's ops is checked where it can be known
//! (tract's ONNX op registry); ONNX Runtime's own refusals ("Could not find an implementation
//! for …", "No Op registered for …") are recognised in its error. Either way the outcome is
//! [`Load::Unsupported`] with the op names, which the tools report as `unsupported: <op>` rather
//! than as a failure of the model.

use super::onnx_info::Summary;
use crate::nn::ort_backend::{build_session, SessionOptions};
use crate::nn::{ort_lib, Device};
use anyhow::{anyhow, Result};
use pfd_core::card::ModelCard;
use pfd_core::engine::InferenceEngine;
use std::path::PathBuf;

/// A backend the tools can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Backend {
    /// tract (pure Rust; the wasm guest's engine), run natively.
    Tract,
    /// ONNX Runtime, CPU execution provider (the host's wasi-nn engine).
    Ort,
}

impl Backend {
    pub const ALL: [Backend; 2] = [Backend::Tract, Backend::Ort];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Tract => "tract",
            Backend::Ort => "onnxruntime",
        }
    }
}

/// Where to find ONNX Runtime (the `--ort-lib` flag; `None`: the loader's default search).
#[derive(Debug, Clone, Default)]
pub struct BackendOptions {
    pub ort_lib: Option<PathBuf>,
}

/// A loaded model on one backend.
pub trait Runner {
    /// The logits of one record (`[1, 1, length]` in, `[1, classes]` out).
    fn run1(&mut self, record: &[f32]) -> Result<Vec<f32>>;
    /// `tract (native)`, `onnxruntime 1.22.1 (CPU)`.
    fn describe(&self) -> String;
}

/// The outcome of loading a model on a backend.
pub enum Load {
    Ready(Box<dyn Runner>),
    /// The backend lacks these ops.
    Unsupported(Vec<String>),
    /// The backend itself is not available here (no ONNX Runtime library).
    Unavailable(String),
    /// The backend supports every op but could not load the model.
    Failed(String),
}

/// Loads `onnx` on `backend` for records of `length` samples.
pub fn load(
    backend: Backend,
    onnx: &[u8],
    summary: &Summary,
    length: usize,
    opts: &BackendOptions,
) -> Load {
    match backend {
        Backend::Tract => load_tract(onnx, summary, length),
        Backend::Ort => load_ort(onnx, opts),
    }
}

/// The model's ops that tract's ONNX front end does not know (tract looks ops up by name).
pub fn tract_unsupported(summary: &Summary) -> Vec<String> {
    let registry = tract_onnx::onnx().op_register;
    summary
        .ops
        .keys()
        .filter(|op| !registry.0.contains_key(&op.op_type))
        .map(ToString::to_string)
        .collect()
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

struct TractRunner {
    engine: pfd_tract::TractEngine,
    length: usize,
}

impl Runner for TractRunner {
    fn run1(&mut self, record: &[f32]) -> Result<Vec<f32>> {
        if record.len() != self.length {
            return Err(anyhow!(
                "tract's plan is built for {} samples, got {}",
                self.length,
                record.len()
            ));
        }
        let engine = &self.engine;
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            engine.run(record, 1, record.len())
        }))
        .map_err(|p| anyhow!("tract panicked: {}", panic_message(p)))?;
        out.map_err(|e| anyhow!("{e}"))
    }

    fn describe(&self) -> String {
        "tract (native)".into()
    }
}

fn load_tract(onnx: &[u8], summary: &Summary, length: usize) -> Load {
    let missing = tract_unsupported(summary);
    if !missing.is_empty() {
        return Load::Unsupported(missing);
    }
    let card = ModelCard {
        signal_length: length,
        ..ModelCard::fallback("model")
    };
    // tract may panic on graphs it half-supports; that is a load failure, not a crash.
    match std::panic::catch_unwind(|| pfd_tract::TractEngine::load(onnx, &card)) {
        Ok(Ok(engine)) => Load::Ready(Box::new(TractRunner { engine, length })),
        Ok(Err(e)) => Load::Failed(e.to_string()),
        Err(p) => Load::Failed(format!("tract panicked: {}", panic_message(p))),
    }
}

struct OrtRunner {
    session: ort::session::Session,
    input: String,
    output: String,
    version: String,
}

impl Runner for OrtRunner {
    fn run1(&mut self, record: &[f32]) -> Result<Vec<f32>> {
        let value = ort::value::TensorRef::from_array_view(([1usize, 1, record.len()], record))
            .map_err(|e| anyhow!("creating the input tensor: {e}"))?;
        let out = self
            .session
            .run(vec![(
                std::borrow::Cow::Borrowed(self.input.as_str()),
                ort::session::SessionInputValue::from(value),
            )])
            .map_err(|e| anyhow!("{e}"))?;
        let (_, logits) = out[self.output.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(|e| anyhow!("reading output {:?}: {e}", self.output))?;
        Ok(logits.to_vec())
    }

    fn describe(&self) -> String {
        format!("onnxruntime {} (CPU)", self.version)
    }
}

fn load_ort(onnx: &[u8], opts: &BackendOptions) -> Load {
    let ort = match ort_lib::load(opts.ort_lib.as_deref()) {
        Ok(o) => o,
        Err(e) => return Load::Unavailable(format!("{e:#}")),
    };
    let session_opts = SessionOptions {
        device: Device::Cpu,
        intra_threads: 1,
    };
    let session = match build_session(onnx, &session_opts) {
        Ok(s) => s,
        Err(e) => {
            let msg = format!("{e:#}");
            let ops = ort_unsupported_ops(&msg);
            return if ops.is_empty() {
                Load::Failed(msg)
            } else {
                Load::Unsupported(ops)
            };
        }
    };
    let input = match session.inputs().first() {
        Some(i) => i.name().to_string(),
        None => return Load::Failed("the session has no input".into()),
    };
    let output = session
        .outputs()
        .iter()
        .map(|o| o.name().to_string())
        .find(|n| n == super::onnx_info::OUTPUT_NAME)
        .or_else(|| session.outputs().first().map(|o| o.name().to_string()));
    let Some(output) = output else {
        return Load::Failed("the session has no output".into());
    };
    Load::Ready(Box::new(OrtRunner {
        session,
        input,
        output,
        version: ort_version(&ort.version, &ort.path),
    }))
}

/// A short ONNX Runtime version: the loader's when it is one (`1.22.1`), else the library file's
/// suffix (`libonnxruntime.so.1.32.0` → `1.32.0`; some builds report no release branch).
fn ort_version(reported: &str, path: &std::path::Path) -> String {
    if !reported.is_empty() && !reported.contains(char::is_whitespace) {
        return reported.to_string();
    }
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split_once(".so."))
        .map(|(_, v)| v.to_string())
        .filter(|v| v.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .unwrap_or_else(|| "(version unknown)".into())
}

/// The ops ONNX Runtime says it cannot run, from its error message.
pub fn ort_unsupported_ops(msg: &str) -> Vec<String> {
    let mut ops = Vec::new();
    let mut push = |op: &str| {
        let op = op
            .trim_matches(|c: char| c == '\'' || c == '"' || c == '`' || c.is_whitespace())
            .split('(')
            .next()
            .unwrap_or("")
            .to_string();
        if !op.is_empty() && !ops.contains(&op) {
            ops.push(op);
        }
    };
    for (pat, after) in [
        ("Could not find an implementation for ", true),
        ("No Op registered for ", true),
        (" is not a registered function/op", false),
    ] {
        let mut rest = msg;
        while let Some(at) = rest.find(pat) {
            if after {
                let tail = &rest[at + pat.len()..];
                push(tail.split_whitespace().next().unwrap_or(""));
            } else {
                let head = &rest[..at];
                push(head.rsplit(char::is_whitespace).next().unwrap_or(""));
            }
            rest = &rest[at + pat.len()..];
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_ort_refusals() {
        assert_eq!(
            ort_unsupported_ops(
                "Could not find an implementation for DynamicQuantizeLSTM(1) node with name 'lstm'"
            ),
            ["DynamicQuantizeLSTM"]
        );
        assert_eq!(
            ort_unsupported_ops("[ONNXRuntimeError] : 10 : INVALID_GRAPH : This is an invalid model. In Node, (\"n\", Foo, \"\", -1) : (\"x\": tensor(float),) -> (\"y\",) , Error No Op registered for Foo with domain_version of 17"),
            ["Foo"]
        );
        assert_eq!(
            ort_unsupported_ops("Fatal error: com.example:Bar(-1) is not a registered function/op"),
            ["com.example:Bar"]
        );
        assert!(ort_unsupported_ops("Protobuf parsing failed.").is_empty());
    }

    #[test]
    fn short_ort_versions() {
        let p = std::path::Path::new("/v/onnxruntime/capi/libonnxruntime.so.1.32.0");
        assert_eq!(ort_version("1.22.1", p), "1.22.1");
        assert_eq!(
            ort_version("ORT Build Info: git-branch=HEAD, build type=Release", p),
            "1.32.0"
        );
        assert_eq!(
            ort_version("x y", std::path::Path::new("libonnxruntime.so")),
            "(version unknown)"
        );
    }
}
