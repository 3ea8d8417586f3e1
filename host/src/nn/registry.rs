//! The graph registry: every graph the host serves, built once at start and shared (`Arc`) by every
//! request's wasi-nn state.
//!
//! It is immutable once built (no locks on the lookup path; [`GraphRegistry::get_mut`] is never
//! needed). Besides the `wasmtime_wasi_nn::Graph` handles given to guests it keeps each graph's
//! [`GraphInfo`] — tensor names, types and shapes, the device, the pool size — for the host's own
//! use (the startup log and `nn-check`).

use super::device::Device;
use super::graph_info::GraphInfo;
use super::ort_backend::OrtGraph;
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime_wasi_nn::{Graph, GraphRegistry};

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
