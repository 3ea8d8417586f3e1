//! The ONNX Runtime backend: wasmtime-wasi-nn's [`BackendGraph`] and [`BackendExecutionContext`]
//! over a pool of `ort` sessions.
//!
//! A [`OrtGraph`] owns its [`SessionPool`] and its [`GraphInfo`]; an execution context is a pointer
//! to the graph (creating one is free). `compute` first validates every input against the graph's
//! metadata — names, element type, rank, fixed dimensions, byte length — and only then checks out a
//! session and runs it, so a malformed request is an `invalid-argument` error naming the problem,
//! and nothing the guest sends can reach a panic or ONNX Runtime with a buffer of the wrong size.

use super::device::Device;
use super::error::NnError;
use super::graph_info::{ElementType, GraphInfo, TensorInfo};
use super::ort_lib;
use anyhow::{anyhow, Context as _, Result};
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::{Session, SessionInputValue};
use ort::value::{DynValue, PrimitiveTensorElementType, TensorElementType, TensorRef, ValueType};
use std::borrow::Cow;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use wasmtime_wasi_nn::backend::{
    BackendError, BackendExecutionContext, BackendGraph, Id, NamedTensor,
};
use wasmtime_wasi_nn::wit::TensorType;
use wasmtime_wasi_nn::{ExecutionContext, Tensor};

/// How each session is built.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    pub device: Device,
    /// Intra-op threads (1: the calling thread only, no thread pool).
    pub intra_threads: usize,
}

fn ort_err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("{e}")
}

/// One ONNX Runtime session for `model` (the bytes of a `.onnx` file). Used by the graphs, by
/// `nn-check` and by the benchmark's in-process baseline, so all three run the same configuration.
pub fn build_session(model: &[u8], opts: &SessionOptions) -> Result<Session> {
    let ort = ort_lib::loaded().ok_or_else(|| anyhow!("ONNX Runtime is not loaded"))?;
    let builder = Session::builder(&ort.env)
        .map_err(ort_err)?
        // All optimisations (ORT_ENABLE_ALL, 99), the level every ONNX Runtime release accepts
        // (`Level3` is ORT_ENABLE_LAYOUT, which releases before 1.23 reject); the graph is
        // optimised once per session at start, never per request.
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(ort_err)?
        .with_intra_threads(opts.intra_threads.max(1))
        .map_err(ort_err)?
        .with_inter_threads(1)
        .map_err(ort_err)?
        // Why no spinning: ONNX Runtime's pool threads busy-wait for work by default, which on a
        // 2-core edge node steals the cores the other requests' guests run on. With one intra-op
        // thread there is no pool and this changes nothing; it keeps `--nn-intra-threads N`
        // from burning CPU between requests.
        .with_intra_op_spinning(false)
        .map_err(ort_err)?
        .with_inter_op_spinning(false)
        .map_err(ort_err)?;
    let mut builder = match opts.device {
        // Why no CPU memory arena: ONNX Runtime's arena keeps its high-water mark for the
        // session's life, in every pooled session — after one 128-record `/predict/batch`,
        // pfd-host sat at 148 MiB against 88 before it (a 32 MiB arena region and ~40 MiB of
        // smaller ones, still there 11 s later). Without it each run's buffers come from malloc
        // and go back: 94 against 90 MiB, and `/predict` at conc 4 and 16 measured the same CPU
        // per request, interleaved (3.69–4.03 against 3.74–4.07 ms): a record's buffers are a
        // few hundred kB, which glibc serves from its heap without a page fault once warm.
        Device::Cpu => builder
            .with_execution_providers([ort::ep::CPU::default().with_arena_allocator(false).build()])
            .map_err(ort_err)?,
        Device::Cuda => with_cuda(builder)?,
    };
    builder.commit_from_memory(model).map_err(ort_err)
}

#[cfg(feature = "cuda")]
fn with_cuda(builder: SessionBuilder) -> Result<SessionBuilder> {
    // `error_on_failure`: a provider that cannot register must fail the session, not silently run
    // it on CPU (the device we report must be the device that serves).
    builder
        .with_execution_providers([ort::ep::CUDA::default().build().error_on_failure()])
        .map_err(ort_err)
}

#[cfg(not(feature = "cuda"))]
fn with_cuda(_builder: SessionBuilder) -> Result<SessionBuilder> {
    anyhow::bail!(
        "this pfd-host was built without the `cuda` feature (cargo build --features cuda)"
    )
}

/// Whether the loaded ONNX Runtime lists the CUDA execution provider (the probe used when there is
/// no graph to try a session with).
pub fn cuda_available() -> Result<()> {
    #[cfg(feature = "cuda")]
    {
        use ort::ep::ExecutionProvider as _;
        if ort::ep::CUDA::is_available().map_err(ort_err)? {
            return Ok(());
        }
        anyhow::bail!(
            "the loaded ONNX Runtime has no CUDA execution provider (install onnxruntime-gpu)"
        )
    }
    #[cfg(not(feature = "cuda"))]
    anyhow::bail!(
        "this pfd-host was built without the `cuda` feature (cargo build --features cuda)"
    )
}

/// Sessions of one graph, checked out one per run.
pub struct SessionPool {
    idle: Mutex<Vec<Session>>,
    returned: Condvar,
}

/// A checked-out session; back in the pool on drop.
pub struct PooledSession<'p> {
    pool: &'p SessionPool,
    session: Option<Session>,
}

impl SessionPool {
    pub fn new(sessions: Vec<Session>) -> Self {
        SessionPool {
            idle: Mutex::new(sessions),
            returned: Condvar::new(),
        }
    }

    /// A free session, waiting for one if all are busy. The wait is bounded by the runs ahead of
    /// it (each finishes), and by the server's deadline for the request as a whole.
    pub fn checkout(&self) -> PooledSession<'_> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(session) = idle.pop() {
                return PooledSession {
                    pool: self,
                    session: Some(session),
                };
            }
            idle = self.returned.wait(idle).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl std::ops::Deref for PooledSession<'_> {
    type Target = Session;
    fn deref(&self) -> &Session {
        self.session.as_ref().expect("present until drop")
    }
}

impl std::ops::DerefMut for PooledSession<'_> {
    fn deref_mut(&mut self) -> &mut Session {
        self.session.as_mut().expect("present until drop")
    }
}

impl Drop for PooledSession<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            self.pool
                .idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(s);
            self.pool.returned.notify_one();
        }
    }
}

/// A loaded graph: its metadata and its session pool. Cheap to clone (shared).
#[derive(Clone)]
pub struct OrtGraph(Arc<GraphInner>);

struct GraphInner {
    info: Arc<GraphInfo>,
    pool: SessionPool,
}

impl OrtGraph {
    /// Loads `path` into `sessions` sessions (at least one).
    pub fn load(name: &str, path: &Path, opts: &SessionOptions, sessions: usize) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_bytes(name, path, &bytes, opts, sessions)
    }

    pub fn from_bytes(
        name: &str,
        path: &Path,
        model: &[u8],
        opts: &SessionOptions,
        sessions: usize,
    ) -> Result<Self> {
        let n = sessions.max(1);
        let mut pool = Vec::with_capacity(n);
        for _ in 0..n {
            pool.push(build_session(model, opts)?);
        }
        let first = &pool[0];
        let info = GraphInfo {
            name: name.to_string(),
            path: path.to_path_buf(),
            device: opts.device,
            sessions: n,
            inputs: first
                .inputs()
                .iter()
                .map(|o| tensor_info(o.name(), o.dtype()))
                .collect(),
            outputs: first
                .outputs()
                .iter()
                .map(|o| tensor_info(o.name(), o.dtype()))
                .collect(),
        };
        Ok(OrtGraph(Arc::new(GraphInner {
            info: Arc::new(info),
            pool: SessionPool::new(pool),
        })))
    }

    pub fn info(&self) -> &Arc<GraphInfo> {
        &self.0.info
    }

    /// Validates `inputs` and runs the graph (see the module docs); outputs in the graph's order.
    pub fn run(&self, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, NnError> {
        let started = std::time::Instant::now();
        let ordered = self.validate(inputs)?;
        let result = offload(|| self.run_validated(&ordered));
        tracing::debug!(
            graph = %self.0.info.name,
            us = started.elapsed().as_micros() as u64,
            ok = result.is_ok(),
            "wasi-nn compute"
        );
        result
    }

    /// Puts the inputs in the graph's order, or says precisely what is wrong with them.
    fn validate(&self, inputs: Vec<NamedTensor>) -> Result<Vec<(String, Tensor)>, NnError> {
        let info = &self.0.info;
        let expected = || describe_names(&info.inputs);
        let mut slots: Vec<Option<Tensor>> = vec![None; info.inputs.len()];
        for NamedTensor { name, tensor } in inputs {
            let Some(i) = info.inputs.iter().position(|t| t.name == name) else {
                return Err(NnError::invalid(format!(
                    "graph {:?} has no input named {name:?} (its inputs: {})",
                    info.name,
                    expected()
                )));
            };
            if slots[i].is_some() {
                return Err(NnError::invalid(format!("input {name:?} given twice")));
            }
            check_tensor(&info.inputs[i], &tensor)?;
            slots[i] = Some(tensor);
        }
        info.inputs
            .iter()
            .zip(slots)
            .map(|(t, slot)| {
                slot.map(|tensor| (t.name.clone(), tensor)).ok_or_else(|| {
                    NnError::invalid(format!(
                        "missing input {:?} (graph {:?} needs: {})",
                        t.name,
                        info.name,
                        expected()
                    ))
                })
            })
            .collect()
    }

    fn run_validated(&self, inputs: &[(String, Tensor)]) -> Result<Vec<NamedTensor>, NnError> {
        let info = &self.0.info;
        let values = inputs
            .iter()
            .map(|(name, t)| Ok((Cow::Borrowed(name.as_str()), input_value(t)?)))
            .collect::<Result<Vec<(Cow<'_, str>, SessionInputValue<'_>)>, NnError>>()?;
        let mut session = self.0.pool.checkout();
        let outputs = session.run(values).map_err(|e| {
            NnError::runtime(format!(
                "ONNX Runtime failed running graph {:?}: {e}",
                info.name
            ))
        })?;
        info.outputs
            .iter()
            .map(|t| {
                let value = outputs.get(&t.name).ok_or_else(|| {
                    NnError::runtime(format!("ONNX Runtime returned no output {:?}", t.name))
                })?;
                Ok(NamedTensor {
                    name: t.name.clone(),
                    tensor: output_tensor(&t.name, value)?,
                })
            })
            .collect()
    }
}

/// Runs `f` — which blocks: an ONNX Runtime run, or waiting for a session — without blocking the
/// async reactor: under `block_in_place` on a multi-threaded tokio runtime (the server), inline
/// anywhere else (tests, `nn-check`, the benchmark's baseline). See the module docs of `nn`.
pub fn offload<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

fn describe_names(tensors: &[TensorInfo]) -> String {
    tensors
        .iter()
        .map(TensorInfo::describe)
        .collect::<Vec<_>>()
        .join(", ")
}

fn tensor_info(name: &str, dtype: &ValueType) -> TensorInfo {
    match dtype {
        ValueType::Tensor { ty, shape, .. } => TensorInfo {
            name: name.to_string(),
            dtype: element_type(*ty),
            shape: shape.iter().map(|&d| u64::try_from(d).ok()).collect(),
        },
        _ => TensorInfo {
            name: name.to_string(),
            dtype: ElementType::Other,
            shape: Vec::new(),
        },
    }
}

fn element_type(t: TensorElementType) -> ElementType {
    match t {
        TensorElementType::Float32 => ElementType::F32,
        TensorElementType::Float64 => ElementType::F64,
        TensorElementType::Float16 => ElementType::F16,
        TensorElementType::Bfloat16 => ElementType::Bf16,
        TensorElementType::Uint8 => ElementType::U8,
        TensorElementType::Int32 => ElementType::I32,
        TensorElementType::Int64 => ElementType::I64,
        _ => ElementType::Other,
    }
}

/// The element type of a wasi-nn tensor type.
pub fn wasi_element_type(t: TensorType) -> ElementType {
    match t {
        TensorType::Fp16 => ElementType::F16,
        TensorType::Fp32 => ElementType::F32,
        TensorType::Fp64 => ElementType::F64,
        TensorType::Bf16 => ElementType::Bf16,
        TensorType::U8 => ElementType::U8,
        TensorType::I32 => ElementType::I32,
        TensorType::I64 => ElementType::I64,
    }
}

fn wasi_tensor_type(t: ElementType) -> Option<TensorType> {
    Some(match t {
        ElementType::F16 => TensorType::Fp16,
        ElementType::F32 => TensorType::Fp32,
        ElementType::F64 => TensorType::Fp64,
        ElementType::Bf16 => TensorType::Bf16,
        ElementType::U8 => TensorType::U8,
        ElementType::I32 => TensorType::I32,
        ElementType::I64 => TensorType::I64,
        ElementType::Other => return None,
    })
}

/// Checks one input tensor against the graph's description of it.
fn check_tensor(want: &TensorInfo, t: &Tensor) -> Result<(), NnError> {
    let name = &want.name;
    let got = wasi_element_type(t.ty);
    if want.dtype == ElementType::Other {
        return Err(NnError::unsupported(format!(
            "input {name:?} has an element type wasi-nn cannot carry"
        )));
    }
    if got != want.dtype {
        return Err(NnError::invalid(format!(
            "input {name:?}: tensor type {got}, but the graph expects {}",
            want.dtype
        )));
    }
    if matches!(got, ElementType::F16 | ElementType::Bf16) {
        return Err(NnError::unsupported(format!(
            "input {name:?}: {got} tensors are not supported by this host"
        )));
    }
    if t.dimensions.len() != want.shape.len() {
        return Err(NnError::invalid(format!(
            "input {name:?}: {} dimensions {:?}, but the graph expects {} ({})",
            t.dimensions.len(),
            t.dimensions,
            want.shape.len(),
            want.describe()
        )));
    }
    for (axis, (&have, want_dim)) in t.dimensions.iter().zip(&want.shape).enumerate() {
        if let Some(w) = want_dim {
            if u64::from(have) != *w {
                return Err(NnError::invalid(format!(
                    "input {name:?}: dimension {axis} is {have}, but the graph expects {w} ({})",
                    want.describe()
                )));
            }
        }
    }
    let elements = t
        .dimensions
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize));
    let bytes = elements.and_then(|n| n.checked_mul(got.size()));
    match bytes {
        Some(b) if b == t.data.len() => Ok(()),
        Some(b) => Err(NnError::invalid(format!(
            "input {name:?}: {} bytes of data, but {:?} {got} elements take {b}",
            t.data.len(),
            t.dimensions
        ))),
        None => Err(NnError::invalid(format!(
            "input {name:?}: dimensions {:?} are too large",
            t.dimensions
        ))),
    }
}

/// An ORT value viewing a validated wasi-nn tensor.
fn input_value(t: &Tensor) -> Result<SessionInputValue<'_>, NnError> {
    let dims: Vec<i64> = t.dimensions.iter().map(|&d| i64::from(d)).collect();
    match wasi_element_type(t.ty) {
        ElementType::F32 => view::<f32, 4>(dims, &t.data, f32::from_le_bytes),
        ElementType::F64 => view::<f64, 8>(dims, &t.data, f64::from_le_bytes),
        ElementType::U8 => view::<u8, 1>(dims, &t.data, u8::from_le_bytes),
        ElementType::I32 => view::<i32, 4>(dims, &t.data, i32::from_le_bytes),
        ElementType::I64 => view::<i64, 8>(dims, &t.data, i64::from_le_bytes),
        other => Err(NnError::unsupported(format!(
            "{other} tensors are not supported by this host"
        ))),
    }
}

/// `data` (little-endian elements) as an ORT tensor of shape `dims`: borrowed in place when the
/// bytes are suitably aligned on a little-endian host (the usual case: no copy of a 13 MB batch),
/// decoded into a new buffer otherwise.
pub(super) fn view<T, const N: usize>(
    dims: Vec<i64>,
    data: &[u8],
    from_le: fn([u8; N]) -> T,
) -> Result<SessionInputValue<'_>, NnError>
where
    T: PrimitiveTensorElementType + Copy + std::fmt::Debug + 'static,
{
    let err = |e: ort::Error| NnError::runtime(format!("creating the input tensor: {e}"));
    if cfg!(target_endian = "little") {
        // SAFETY: `T` is a plain numeric type (f32, f64, u8, i32, i64) for which every bit pattern
        // is a valid value; `align_to` only reinterprets the correctly aligned middle part.
        let (head, body, tail) = unsafe { data.align_to::<T>() };
        if head.is_empty() && tail.is_empty() {
            return TensorRef::from_array_view((dims, body))
                .map(SessionInputValue::from)
                .map_err(err);
        }
    }
    let decoded: Vec<T> = data
        .chunks_exact(N)
        .map(|c| from_le(c.try_into().expect("chunks_exact")))
        .collect();
    ort::value::Tensor::from_array((dims, decoded))
        .map(SessionInputValue::from)
        .map_err(err)
}

/// A wasi-nn tensor (little-endian bytes) from an ORT output.
fn output_tensor(name: &str, value: &DynValue) -> Result<Tensor, NnError> {
    let ty = match value.dtype() {
        ValueType::Tensor { ty, .. } => element_type(*ty),
        _ => ElementType::Other,
    };
    let unsupported = || {
        NnError::unsupported(format!(
            "output {name:?} has an element type wasi-nn cannot carry"
        ))
    };
    let (dims, data) = match ty {
        ElementType::F32 => extract::<f32>(value, |x, out| out.extend(x.to_le_bytes()))?,
        ElementType::F64 => extract::<f64>(value, |x, out| out.extend(x.to_le_bytes()))?,
        ElementType::U8 => extract::<u8>(value, |x, out| out.push(x))?,
        ElementType::I32 => extract::<i32>(value, |x, out| out.extend(x.to_le_bytes()))?,
        ElementType::I64 => extract::<i64>(value, |x, out| out.extend(x.to_le_bytes()))?,
        _ => return Err(unsupported()),
    };
    let dimensions = dims
        .iter()
        .map(|&d| u32::try_from(d))
        .collect::<Result<Vec<u32>, _>>()
        .map_err(|_| NnError::runtime(format!("output {name:?} has dimensions {dims:?}")))?;
    Ok(Tensor::new(
        dimensions,
        wasi_tensor_type(ty).ok_or_else(unsupported)?,
        data,
    ))
}

fn extract<T: PrimitiveTensorElementType + Copy + std::fmt::Debug>(
    value: &DynValue,
    push_le: impl Fn(T, &mut Vec<u8>),
) -> Result<(Vec<i64>, Vec<u8>), NnError> {
    let (shape, data) = value
        .try_extract_tensor::<T>()
        .map_err(|e| NnError::runtime(format!("reading an output: {e}")))?;
    let mut bytes = Vec::with_capacity(std::mem::size_of_val(data));
    for &x in data {
        push_le(x, &mut bytes);
    }
    Ok((shape.to_vec(), bytes))
}

impl BackendGraph for OrtGraph {
    fn init_execution_context(&self) -> Result<ExecutionContext, BackendError> {
        let ctx: Box<dyn BackendExecutionContext> = Box::new(OrtExecutionContext {
            graph: self.clone(),
            inputs: Vec::new(),
            outputs: Vec::new(),
        });
        Ok(ExecutionContext::from(ctx))
    }
}

/// A graph's execution context. The WIT API passes inputs and outputs with `compute`; the
/// older set-input / compute / get-output style (witx) is supported too, by index or by name.
pub struct OrtExecutionContext {
    graph: OrtGraph,
    inputs: Vec<NamedTensor>,
    outputs: Vec<NamedTensor>,
}

impl OrtExecutionContext {
    fn input_name(&self, id: &Id) -> Result<String, NnError> {
        let info = self.graph.info();
        match id {
            Id::Name(n) => Ok(n.clone()),
            Id::Index(i) => info
                .inputs
                .get(*i as usize)
                .map(|t| t.name.clone())
                .ok_or_else(|| {
                    NnError::invalid(format!(
                        "input index {i} out of range (graph {:?} has {})",
                        info.name,
                        info.inputs.len()
                    ))
                }),
        }
    }
}

impl BackendExecutionContext for OrtExecutionContext {
    fn set_input(&mut self, id: Id, tensor: &Tensor) -> Result<(), BackendError> {
        let name = self.input_name(&id)?;
        self.inputs.retain(|t| t.name != name);
        self.inputs.push(NamedTensor {
            name,
            tensor: tensor.clone(),
        });
        Ok(())
    }

    fn get_output(&mut self, id: Id) -> Result<Tensor, BackendError> {
        let found = match &id {
            Id::Index(i) => self.outputs.get(*i as usize),
            Id::Name(n) => self.outputs.iter().find(|t| &t.name == n),
        };
        found
            .map(|t| t.tensor.clone())
            .ok_or_else(|| NnError::invalid(format!("no output {id:?} (run compute first)")).into())
    }

    fn compute(
        &mut self,
        inputs: Option<Vec<NamedTensor>>,
    ) -> Result<Option<Vec<NamedTensor>>, BackendError> {
        match inputs {
            Some(inputs) => Ok(Some(self.graph.run(inputs)?)),
            None => {
                let inputs = std::mem::take(&mut self.inputs);
                self.outputs = self.graph.run(inputs)?;
                Ok(None)
            }
        }
    }
}

/// Runs `graph`'s first input with `records` (`[n, 1, length]`) and returns its first output, one
/// row per record.
pub fn infer(graph: &OrtGraph, records: &[&[f32]]) -> Result<Vec<Vec<f32>>> {
    let info = graph.info();
    let input = info.inputs.first().context("the graph has no input")?;
    let output = info.outputs.first().context("the graph has no output")?;
    let length = records.first().map_or(0, |r| r.len());
    let mut data = Vec::with_capacity(records.len() * length * 4);
    for r in records {
        for x in *r {
            data.extend_from_slice(&x.to_le_bytes());
        }
    }
    let tensor = Tensor::new(
        vec![records.len() as u32, 1, length as u32],
        TensorType::Fp32,
        data,
    );
    let outputs = graph
        .run(vec![NamedTensor {
            name: input.name.clone(),
            tensor,
        }])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let out = outputs
        .into_iter()
        .find(|t| t.name == output.name)
        .context("no output")?;
    let floats: Vec<f32> = out
        .tensor
        .data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let per = floats.len() / records.len().max(1);
    Ok(floats.chunks(per.max(1)).map(<[f32]>::to_vec).collect())
}
