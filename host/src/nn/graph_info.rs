//! What the host knows about a loaded graph — its tensors' names, element types and shapes, its
//! device and session pool — apart from the backend that loads it ([`super::ort_backend`]) and the
//! registry that serves it ([`super::registry`]), which both use it.

use super::device::Device;
use std::path::PathBuf;

/// One graph's description.
#[derive(Debug, Clone)]
pub struct GraphInfo {
    /// The registry name: the model's folder name (what the guest passes to `load-by-name`).
    pub name: String,
    /// The `model.onnx` it was loaded from.
    pub path: PathBuf,
    /// The device its sessions run on.
    pub device: Device,
    /// Sessions in its pool (concurrent runs).
    pub sessions: usize,
    /// Graph inputs, in the model's order.
    pub inputs: Vec<TensorInfo>,
    /// Graph outputs, in the model's order.
    pub outputs: Vec<TensorInfo>,
}

/// One input or output of a graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// Element type.
    pub dtype: ElementType,
    /// Dimensions; `None` for a dynamic axis.
    pub shape: Vec<Option<u64>>,
}

/// Tensor element types, as ONNX names them (the subset wasi-nn can carry, plus `Other` for the
/// rest, which this host refuses with a clear error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementType {
    F16,
    F32,
    F64,
    Bf16,
    U8,
    I32,
    I64,
    Other,
}

impl ElementType {
    /// Bytes per element (0 for `Other`).
    pub fn size(self) -> usize {
        match self {
            ElementType::U8 => 1,
            ElementType::F16 | ElementType::Bf16 => 2,
            ElementType::F32 | ElementType::I32 => 4,
            ElementType::F64 | ElementType::I64 => 8,
            ElementType::Other => 0,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ElementType::F16 => "FP16",
            ElementType::F32 => "FP32",
            ElementType::F64 => "FP64",
            ElementType::Bf16 => "BF16",
            ElementType::U8 => "U8",
            ElementType::I32 => "I32",
            ElementType::I64 => "I64",
            ElementType::Other => "unsupported",
        }
    }
}

impl std::fmt::Display for ElementType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TensorInfo {
    /// `input: FP32 [?, 1, ?]`.
    pub fn describe(&self) -> String {
        let dims: Vec<String> = self
            .shape
            .iter()
            .map(|d| d.map_or("?".to_string(), |d| d.to_string()))
            .collect();
        format!("{}: {} [{}]", self.name, self.dtype, dims.join(", "))
    }
}

/// `input: FP32 [?, 1, ?]; …` for a log line.
pub fn describe_tensors(tensors: &[TensorInfo]) -> String {
    tensors
        .iter()
        .map(TensorInfo::describe)
        .collect::<Vec<_>>()
        .join("; ")
}
