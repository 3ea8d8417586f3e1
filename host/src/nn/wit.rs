//! The `wasi:nn@0.2.0-rc-2024-10-28` imports, linked over wasmtime-wasi-nn's resource types
//! (`Graph`, `ExecutionContext`, `Tensor`) and this host's [`NnError`].
//!
//! Bindings are generated from `wit/wasi-nn.wit` at the repository root — the file the guest's
//! `wasi-nn` build is generated from (identical to wasmtime-wasi-nn 48's), so host and guest
//! cannot disagree on the interface. Why this glue instead of `wasmtime_wasi_nn::wit`: see the
//! `nn` module docs (error codes and messages).
//!
//! Every resource lives in the request's `ResourceTable` (the one WASI uses), so it dies with the
//! request's store. Graphs are `Arc` clones of the registry's; execution contexts and tensors are
//! per request.

use super::error::{from_backend, ErrorKind, NnError};
use super::registry::NnRegistry;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi_nn::GraphRegistry as _;

mod generated {
    wasmtime::component::bindgen!({
        world: "ml",
        path: "../wit/wasi-nn.wit",
        with: {
            "wasi:nn/graph.graph": wasmtime_wasi_nn::Graph,
            "wasi:nn/tensor.tensor": wasmtime_wasi_nn::Tensor,
            "wasi:nn/inference.graph-execution-context": wasmtime_wasi_nn::ExecutionContext,
            "wasi:nn/errors.error": crate::nn::error::NnError,
        },
        imports: { default: trappable },
    });
}

use generated::wasi::nn::{errors, graph, inference, tensor};

/// What the wasi-nn imports of one request see: its resource table and the shared registry.
pub struct NnView<'a> {
    table: &'a mut ResourceTable,
    registry: &'a NnRegistry,
}

impl<'a> NnView<'a> {
    pub fn new(table: &'a mut ResourceTable, registry: &'a NnRegistry) -> Self {
        NnView { table, registry }
    }

    /// Hands `e` to the guest as an `error` resource.
    fn fail<T>(&mut self, e: NnError) -> wasmtime::Result<Result<T, Resource<NnError>>> {
        match e.kind {
            // A missing graph is the normal way a guest learns to fall back to tract.
            ErrorKind::NotFound => tracing::debug!(code = ?e.kind, "wasi-nn: {}", e.message),
            _ => tracing::warn!(code = ?e.kind, "wasi-nn: {}", e.message),
        }
        Ok(Err(self.table.push(e)?))
    }
}

struct HasNn;

impl HasData for HasNn {
    type Data<'a> = NnView<'a>;
}

/// Links `wasi:nn/{tensor,graph,inference,errors}`.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> NnView<'_>,
) -> wasmtime::Result<()> {
    graph::add_to_linker::<T, HasNn>(linker, view)?;
    tensor::add_to_linker::<T, HasNn>(linker, view)?;
    inference::add_to_linker::<T, HasNn>(linker, view)?;
    errors::add_to_linker::<T, HasNn>(linker, view)?;
    Ok(())
}

fn to_upstream(t: tensor::TensorType) -> wasmtime_wasi_nn::wit::TensorType {
    use tensor::TensorType as G;
    use wasmtime_wasi_nn::wit::TensorType as U;
    match t {
        G::Fp16 => U::Fp16,
        G::Fp32 => U::Fp32,
        G::Fp64 => U::Fp64,
        G::Bf16 => U::Bf16,
        G::U8 => U::U8,
        G::I32 => U::I32,
        G::I64 => U::I64,
    }
}

fn from_upstream(t: wasmtime_wasi_nn::wit::TensorType) -> tensor::TensorType {
    use tensor::TensorType as G;
    use wasmtime_wasi_nn::wit::TensorType as U;
    match t {
        U::Fp16 => G::Fp16,
        U::Fp32 => G::Fp32,
        U::Fp64 => G::Fp64,
        U::Bf16 => G::Bf16,
        U::U8 => G::U8,
        U::I32 => G::I32,
        U::I64 => G::I64,
    }
}

impl graph::Host for NnView<'_> {
    fn load(
        &mut self,
        _builders: Vec<graph::GraphBuilder>,
        encoding: graph::GraphEncoding,
        _target: graph::ExecutionTarget,
    ) -> wasmtime::Result<Result<Resource<wasmtime_wasi_nn::Graph>, Resource<NnError>>> {
        let e = if matches!(encoding, graph::GraphEncoding::Onnx) {
            NnError::unsupported(
                "this host serves preloaded graphs only: use load-by-name with the model's name",
            )
        } else {
            NnError::new(
                ErrorKind::InvalidEncoding,
                format!("this host serves ONNX graphs only (asked for {encoding:?})"),
            )
        };
        self.fail(e)
    }

    fn load_by_name(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<Resource<wasmtime_wasi_nn::Graph>, Resource<NnError>>> {
        match self.registry.get(&name) {
            Some(g) => {
                let g = g.clone();
                Ok(Ok(self.table.push(g)?))
            }
            None => {
                let known: Vec<&str> = self.registry.names().collect();
                let why = if known.is_empty() {
                    "this host serves no wasi-nn graphs (--nn off, or no ONNX Runtime)".to_string()
                } else {
                    format!("its graphs: {}", known.join(", "))
                };
                self.fail(NnError::new(
                    ErrorKind::NotFound,
                    format!("no graph named {name:?}; {why}"),
                ))
            }
        }
    }
}

impl graph::HostGraph for NnView<'_> {
    fn init_execution_context(
        &mut self,
        graph: Resource<wasmtime_wasi_nn::Graph>,
    ) -> wasmtime::Result<Result<Resource<wasmtime_wasi_nn::ExecutionContext>, Resource<NnError>>>
    {
        let result = self.table.get(&graph)?.init_execution_context();
        match result {
            Ok(ctx) => Ok(Ok(self.table.push(ctx)?)),
            Err(e) => self.fail(from_backend(&e)),
        }
    }

    fn drop(&mut self, graph: Resource<wasmtime_wasi_nn::Graph>) -> wasmtime::Result<()> {
        self.table.delete(graph)?;
        Ok(())
    }
}

impl inference::Host for NnView<'_> {}

impl inference::HostGraphExecutionContext for NnView<'_> {
    fn compute(
        &mut self,
        ctx: Resource<wasmtime_wasi_nn::ExecutionContext>,
        inputs: Vec<inference::NamedTensor>,
    ) -> wasmtime::Result<Result<Vec<inference::NamedTensor>, Resource<NnError>>> {
        let mut named = Vec::with_capacity(inputs.len());
        for (name, tensor) in inputs {
            // The list carries owned handles: the tensors are ours now (moved, not copied).
            let tensor = self.table.delete(tensor)?;
            named.push(wasmtime_wasi_nn::backend::NamedTensor { name, tensor });
        }
        let result = self.table.get_mut(&ctx)?.compute_with_io(named);
        match result {
            Ok(outputs) => {
                let mut out = Vec::with_capacity(outputs.len());
                for wasmtime_wasi_nn::backend::NamedTensor { name, tensor } in outputs {
                    out.push((name, self.table.push(tensor)?));
                }
                Ok(Ok(out))
            }
            Err(e) => self.fail(from_backend(&e)),
        }
    }

    fn drop(&mut self, ctx: Resource<wasmtime_wasi_nn::ExecutionContext>) -> wasmtime::Result<()> {
        self.table.delete(ctx)?;
        Ok(())
    }
}

impl tensor::Host for NnView<'_> {}

impl tensor::HostTensor for NnView<'_> {
    fn new(
        &mut self,
        dimensions: tensor::TensorDimensions,
        ty: tensor::TensorType,
        data: tensor::TensorData,
    ) -> wasmtime::Result<Resource<wasmtime_wasi_nn::Tensor>> {
        // Checked against the graph (and the data length against the dimensions) in `compute`: the
        // constructor cannot return an error.
        Ok(self.table.push(wasmtime_wasi_nn::Tensor::new(
            dimensions,
            to_upstream(ty),
            data,
        ))?)
    }

    fn dimensions(
        &mut self,
        t: Resource<wasmtime_wasi_nn::Tensor>,
    ) -> wasmtime::Result<tensor::TensorDimensions> {
        Ok(self.table.get(&t)?.dimensions.clone())
    }

    fn ty(
        &mut self,
        t: Resource<wasmtime_wasi_nn::Tensor>,
    ) -> wasmtime::Result<tensor::TensorType> {
        Ok(from_upstream(self.table.get(&t)?.ty))
    }

    fn data(
        &mut self,
        t: Resource<wasmtime_wasi_nn::Tensor>,
    ) -> wasmtime::Result<tensor::TensorData> {
        Ok(self.table.get(&t)?.data.clone())
    }

    fn drop(&mut self, t: Resource<wasmtime_wasi_nn::Tensor>) -> wasmtime::Result<()> {
        self.table.delete(t)?;
        Ok(())
    }
}

impl errors::Host for NnView<'_> {}

impl errors::HostError for NnView<'_> {
    fn code(&mut self, e: Resource<NnError>) -> wasmtime::Result<errors::ErrorCode> {
        Ok(match self.table.get(&e)?.kind {
            ErrorKind::InvalidArgument => errors::ErrorCode::InvalidArgument,
            ErrorKind::InvalidEncoding => errors::ErrorCode::InvalidEncoding,
            ErrorKind::NotFound => errors::ErrorCode::NotFound,
            ErrorKind::UnsupportedOperation => errors::ErrorCode::UnsupportedOperation,
            ErrorKind::RuntimeError => errors::ErrorCode::RuntimeError,
        })
    }

    fn data(&mut self, e: Resource<NnError>) -> wasmtime::Result<String> {
        Ok(self.table.get(&e)?.message.clone())
    }

    fn drop(&mut self, e: Resource<NnError>) -> wasmtime::Result<()> {
        self.table.delete(e)?;
        Ok(())
    }
}
