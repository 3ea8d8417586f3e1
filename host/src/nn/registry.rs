//! The graph registry: every graph the host serves, built once at start and shared (`Arc`) by every
//! request's wasi-nn state.
//!
//! It is immutable once built (no locks on the lookup path; [`GraphRegistry::get_mut`] is never
//! needed). Besides the `wasmtime_wasi_nn::Graph` handles given to guests it keeps each graph's
//! [`GraphInfo`] — tensor names, types and shapes, the device, the pool size — for the host's own
//! use (startup log, `nn-check`, and later OIP model metadata and metrics).

use super::ort_backend::OrtGraph;
use super::Device;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use wasmtime_wasi_nn::{Graph, GraphRegistry};

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

/// The graphs served through wasi-nn (see the module docs).
#[derive(Default)]
pub struct NnRegistry {
    graphs: BTreeMap<String, Graph>,
    info: BTreeMap<String, Arc<GraphInfo>>,
    device: Option<Device>,
}

impl std::fmt::Debug for NnRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NnRegistry")
            .field("graphs", &self.graphs.keys().collect::<Vec<_>>())
            .field("device", &self.device)
            .finish()
    }
}

impl NnRegistry {
    /// An empty registry whose graphs will run on `device`.
    pub fn new(device: Device) -> Self {
        NnRegistry {
            device: Some(device),
            ..Default::default()
        }
    }

    /// Adds a loaded graph under its name.
    pub fn insert(&mut self, graph: OrtGraph) {
        let info = graph.info().clone();
        let name = info.name.clone();
        let boxed: Box<dyn wasmtime_wasi_nn::backend::BackendGraph> = Box::new(graph);
        self.graphs.insert(name.clone(), Graph::from(boxed));
        self.info.insert(name, info);
    }

    pub fn is_empty(&self) -> bool {
        self.graphs.is_empty()
    }

    /// Graph names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.graphs.keys().map(String::as_str)
    }

    /// A graph's description.
    pub fn info(&self, name: &str) -> Option<&Arc<GraphInfo>> {
        self.info.get(name)
    }

    /// The device serving the graphs (`None` for an empty registry).
    pub fn device(&self) -> Option<Device> {
        if self.is_empty() {
            None
        } else {
            self.device
        }
    }
}

impl GraphRegistry for NnRegistry {
    fn get(&self, name: &str) -> Option<&Graph> {
        self.graphs.get(name)
    }
    /// Never used by this host (graphs are immutable once loaded); provided for the trait.
    fn get_mut(&mut self, name: &str) -> Option<&mut Graph> {
        self.graphs.get_mut(name)
    }
}
