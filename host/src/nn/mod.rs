//! wasi-nn for the guest, backed by ONNX Runtime on the host (CPU or CUDA).
//!
//! # Shape
//!
//! ```text
//!  guest ──wasi:nn──▶ wit.rs (the WIT glue: resources in the request's ResourceTable,
//!                       │      error codes + messages back to the guest)
//!                       ▼
//!                    registry.rs (NnRegistry: name → Graph, built once at start, Arc-shared by
//!                       │          every request; metadata for /model/info and metrics)
//!                       ▼
//!                    ort_backend.rs (OrtGraph: a pool of ONNX Runtime sessions per graph;
//!                                    validation before anything reaches ORT)
//!                       ▼
//!                    ort_lib.rs (which libonnxruntime to dlopen, and the process's ORT environment)
//! ```
//!
//! # Why our own backend and registry (not wasmtime-wasi-nn's `onnx` feature)
//!
//! wasmtime-wasi-nn 48 provides the wasi-nn types and backend traits this module implements
//! ([`wasmtime_wasi_nn::backend::BackendGraph`], [`wasmtime_wasi_nn::backend::BackendExecutionContext`],
//! [`wasmtime_wasi_nn::GraphRegistry`]). Its own ONNX backend is not used, for four reasons:
//! it pins `ort = 2.0.0-rc.10` and breaks with later releases; its in-memory registry loads
//! preloaded graphs on CPU only; it keeps one session per graph behind a mutex (every request on a
//! graph serialises); and its tensor conversion hits `unimplemented!` (a host panic) for any
//! non-f32 tensor.
//!
//! # Why our own WIT glue (not `wasmtime_wasi_nn::wit::add_to_linker`)
//!
//! Upstream's glue answers every backend failure of `compute` with the code `runtime-error` and
//! the message of [`wasmtime_wasi_nn::backend::BackendError`]'s top level only — always
//! "Failed while accessing backend" — so a guest sending a wrong dtype or shape could not be told
//! what is wrong. [`wit`] links the same `wasi:nn@0.2.0-rc-2024-10-28` interfaces (from the
//! repository's `wit/wasi-nn.wit`, the file the guest is built against) over the same upstream
//! resource types, and returns `invalid-argument` / `not-found` / `unsupported-operation` /
//! `runtime-error` with a message that names the problem.
//!
//! # Graphs: loaded once, shared by every instance
//!
//! [`setup`] loads every `<models>/<name>/model.onnx` once at start (`<models>` is the host
//! directory mounted at the guest's `PFD_MODEL_DIR`), into an immutable [`NnRegistry`] behind an
//! `Arc`. Each request's store gets a clone of that `Arc` — the per-request wasi-nn state is one
//! pointer; `load-by-name` is a hash lookup and an `Arc` clone. (`wasmtime serve` reloads its
//! graphs per instance; this host never does.)
//!
//! # Concurrency: a session pool per graph
//!
//! ONNX Runtime's `Run` is thread-safe, but `ort` requires `&mut Session`; one session behind a
//! lock would serialise every request on a graph. Each graph instead owns `--nn-sessions`
//! sessions (default: one per core), each with `--nn-intra-threads` intra-op threads (default 1),
//! and a `compute` checks one out for its duration. With N sessions of one thread each, N requests
//! run in parallel on N cores without oversubscription, and a single request's latency is that of a
//! one-thread run (this model's batch-1 run is ~0.1 ms: intra-op parallelism would cost more in
//! synchronisation than it saves). Raise `--nn-intra-threads` (and lower `--nn-sessions`) for
//! large models or large batches at low concurrency.
//!
//! Micro-batching (gathering concurrent batch-1 requests into one run with a bounded queue
//! delay) is not implemented: it trades latency (the queue delay) for throughput, and pays off on
//! a GPU, where one batch-32 run costs about as much as a batch-1 run. On CPU, this model's run
//! time grows linearly with the batch, so a pool of single-threaded sessions gets the same
//! throughput without adding a delay. The guest already batches `/predict/batch` itself
//! (`PFD_BATCH_SIZE`).
//!
//! # Never blocking the reactor
//!
//! The guest runs inside `call_async` on a tokio worker; wasi-nn's `compute` is a synchronous host
//! call on that worker thread (the guest's fiber cannot continue until it returns). The ORT run —
//! and waiting for a free session — happens under [`tokio::task::block_in_place`]: tokio hands the
//! worker's other tasks and its I/O driver to another thread for the duration, while the tensor
//! stays where it is (no copy, no channel, no wake-up). The alternative, an async host function
//! that ships the run to `spawn_blocking`, costs two thread hand-offs per call — as much as the
//! run itself for this model. Outside a multi-threaded runtime (tests, `nn-check`) the run is
//! simply inline. (Measured here: `block_in_place` adds a few microseconds to a 0.7 ms run.)
//!
//! A host call cannot be interrupted: a request whose deadline passes during its run (or while it
//! waits for a session) gets its 504 from the server's timer, and the run completes in the
//! background before the instance is torn down.
//!
//! # Device
//!
//! `--device cpu|cuda|auto` ([`DeviceRequest`]): `cuda` registers ONNX Runtime's CUDA execution
//! provider and fails the start if it cannot (library without CUDA, no GPU, binary built without
//! the `cuda` feature); `auto` tries CUDA and falls back to CPU with a warning; `cpu` uses the CPU.
//! The device that actually serves is logged, recorded in the registry, and given to the guest as
//! `PFD_NN_DEVICE` (its `/health` reports `wasi-nn/onnx/<device>`).
//!
//! # Without ONNX Runtime
//!
//! If no libonnxruntime can be loaded (see [`ort_lib`]) the host still serves: wasi-nn is linked
//! with an empty registry, `load-by-name` answers `not-found`, and the guest runs the model with
//! tract. Likewise with `--nn off`, which the end-to-end tests use to prove that fallback.

pub mod device;
pub mod error;
pub mod graph_info;
pub mod ort_backend;
pub mod ort_lib;
pub mod registry;
pub mod wit;

#[cfg(test)]
mod backend_tests;

pub use device::{Device, DeviceRequest};
pub use registry::NnRegistry;

use anyhow::{bail, Context as _, Result};
use pfd_core::card::MODEL_FILE;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tracing::{info, warn};

/// Everything that decides which graphs the host serves and how (from the command line).
#[derive(Debug, Clone)]
pub struct NnOptions {
    /// `--nn on|off`: whether to serve any wasi-nn graph.
    pub enabled: bool,
    /// `--device`.
    pub device: DeviceRequest,
    /// `--nn-models`: only these model folders (all when `None`).
    pub models: Option<Vec<String>>,
    /// `--nn-sessions`: ORT sessions per graph.
    pub sessions: usize,
    /// `--nn-intra-threads`: intra-op threads per session.
    pub intra_threads: usize,
    /// `--ort-lib`: an explicit libonnxruntime.
    pub ort_lib: Option<PathBuf>,
}

/// The number of cores this process may use (the default session-pool size).
pub fn available_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// The result of [`setup`]: the shared registry, and what serves it.
pub struct NnSetup {
    /// Shared by every request's store.
    pub registry: Arc<NnRegistry>,
    /// The device that serves the graphs; `None` when no graph is served (nn off, no ONNX Runtime).
    pub device: Option<Device>,
}

/// Loads ONNX Runtime and every graph under `models_dir` as `opts` say (see the module docs).
/// Fails only when the operator's explicit demand cannot be met (`--device cuda` without CUDA);
/// anything else degrades to fewer graphs, with a warning.
pub fn setup(models_dir: Option<&Path>, opts: &NnOptions) -> Result<NnSetup> {
    let none = || NnSetup {
        registry: Arc::new(NnRegistry::default()),
        device: None,
    };
    if !opts.enabled {
        info!("wasi-nn off (--nn off): no graphs served; the guest runs its models with tract");
        return Ok(none());
    }
    let ort = match ort_lib::load(opts.ort_lib.as_deref()) {
        Ok(ort) => ort,
        Err(e) => {
            if opts.device == DeviceRequest::Cuda {
                bail!("--device cuda: {e:#}");
            }
            warn!(
                "wasi-nn has no graphs: {e:#}; the guest runs its models with tract \
                 (set --ort-lib / PFD_ORT_LIB, or install onnxruntime in the venv)"
            );
            return Ok(none());
        }
    };
    info!(library = %ort.path.display(), version = %ort.version, how = ort.how, "ONNX Runtime loaded");

    let Some(dir) = models_dir else {
        warn!("no model directory is mounted at the guest's PFD_MODEL_DIR: wasi-nn has no graphs");
        return Ok(none());
    };
    let mut found = discover(dir)?;
    if let Some(wanted) = &opts.models {
        for w in wanted {
            if !found.iter().any(|(name, _)| name == w) {
                warn!(model = %w, dir = %dir.display(), "--nn-models names a model that is not in the model directory");
            }
        }
        found.retain(|(name, _)| wanted.contains(name));
    }

    let session_opts = |device| ort_backend::SessionOptions {
        device,
        intra_threads: opts.intra_threads,
    };
    let mut device = match opts.device {
        DeviceRequest::Cpu => Device::Cpu,
        DeviceRequest::Cuda | DeviceRequest::Auto => Device::Cuda,
    };
    // Whether CUDA works is only known once a session registers its provider: probe with the first
    // graph (or, with no graph, with an empty check of the provider list).
    if device == Device::Cuda {
        let probe = match found.first() {
            Some((_, path)) => std::fs::read(path)
                .with_context(|| format!("reading {}", path.display()))
                .and_then(|bytes| ort_backend::build_session(&bytes, &session_opts(Device::Cuda)))
                .map(drop),
            None => ort_backend::cuda_available(),
        };
        if let Err(e) = probe {
            if opts.device == DeviceRequest::Cuda {
                bail!(
                    "--device cuda: ONNX Runtime's CUDA execution provider is unavailable: {e:#}"
                );
            }
            warn!(error = %format!("{e:#}"), "--device auto: CUDA unavailable; serving on CPU");
            device = Device::Cpu;
        }
    }

    let mut registry = NnRegistry::new(device);
    for (name, path) in found {
        let started = Instant::now();
        match ort_backend::OrtGraph::load(&name, &path, &session_opts(device), opts.sessions) {
            Ok(graph) => {
                registry.insert(graph);
                let info = registry.info(&name).expect("just inserted");
                info!(
                    graph = %info.name,
                    path = %info.path.display(),
                    device = %info.device,
                    sessions = info.sessions,
                    intra_threads = opts.intra_threads,
                    inputs = %graph_info::describe_tensors(&info.inputs),
                    outputs = %graph_info::describe_tensors(&info.outputs),
                    ms = started.elapsed().as_millis() as u64,
                    "wasi-nn graph loaded"
                );
            }
            Err(e) if opts.device == DeviceRequest::Cuda => {
                return Err(e.context(format!("loading {} on CUDA", path.display())))
            }
            Err(e) => {
                warn!(graph = %name, path = %path.display(), error = %format!("{e:#}"), "cannot load the graph; the guest will run this model with tract");
            }
        }
    }
    if registry.is_empty() {
        warn!(dir = %dir.display(), "wasi-nn has no graphs (no loadable <name>/model.onnx)");
    } else {
        info!(device = %device, graphs = ?registry.names().collect::<Vec<_>>(), "wasi-nn ready");
    }
    Ok(NnSetup {
        device: registry.device(),
        registry: Arc::new(registry),
    })
}

/// Every `<dir>/<name>/model.onnx`, sorted by name.
pub fn discover(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("reading model directory {}", dir.display()))?;
    let mut found: Vec<(String, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let model = e.path().join(MODEL_FILE);
            let name = e.file_name().to_str()?.to_string();
            model.is_file().then_some((name, model))
        })
        .collect();
    found.sort();
    Ok(found)
}

/// The host directory the guest sees at `guest_dir`, through the longest matching read-only mount
/// (`(host, guest)` pairs as preopened). `None` if no mount covers it.
pub fn host_dir_for(guest_dir: &str, mounts: &[(PathBuf, String)]) -> Option<PathBuf> {
    let want = normalise(guest_dir);
    mounts
        .iter()
        .filter_map(|(host, guest)| {
            let guest = normalise(guest);
            let rest = if guest.is_empty() {
                Some(want.as_str())
            } else if want == guest {
                Some("")
            } else {
                want.strip_prefix(&format!("{guest}/"))
            }?;
            Some((guest.len(), host.join(rest)))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, dir)| dir)
        .filter(|dir| dir.is_dir())
}

/// `/a/b/` → `a/b`; `/` → ``.
fn normalise(p: &str) -> String {
    p.trim_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_host_directory_of_the_guest_model_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let models = tmp.path().join("models");
        std::fs::create_dir_all(models.join("m")).unwrap();
        let staging = tmp.path().join("staging");
        std::fs::create_dir_all(staging.join("models")).unwrap();

        let mounts = vec![(models.clone(), "/models".to_string())];
        assert_eq!(host_dir_for("/models", &mounts), Some(models.clone()));
        assert_eq!(host_dir_for("/models/", &mounts), Some(models.clone()));
        assert_eq!(host_dir_for("/models/m", &mounts), Some(models.join("m")));
        assert_eq!(host_dir_for("/modelsx", &mounts), None);
        assert_eq!(host_dir_for("/other", &mounts), None);
        // A glob staging directory at `/`, and the longest match wins.
        let mounts = vec![
            (staging.clone(), "/".to_string()),
            (models.clone(), "/models".to_string()),
        ];
        assert_eq!(host_dir_for("/models", &mounts), Some(models));
        let mounts = vec![(staging.clone(), "/".to_string())];
        assert_eq!(
            host_dir_for("/models", &mounts),
            Some(staging.join("models"))
        );
    }

    #[test]
    fn discovers_model_folders() {
        let tmp = tempfile::tempdir().unwrap();
        for name in ["b", "a"] {
            std::fs::create_dir_all(tmp.path().join(name)).unwrap();
            std::fs::write(tmp.path().join(name).join(MODEL_FILE), b"x").unwrap();
        }
        std::fs::create_dir_all(tmp.path().join("no-model")).unwrap();
        std::fs::write(tmp.path().join("stray.onnx"), b"x").unwrap();
        let found = discover(tmp.path()).unwrap();
        let names: Vec<_> = found.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn nn_off_and_missing_library_serve_no_graphs() {
        let opts = NnOptions {
            enabled: false,
            device: DeviceRequest::Cuda,
            models: None,
            sessions: 1,
            intra_threads: 1,
            ort_lib: None,
        };
        let s = setup(None, &opts).unwrap();
        assert!(s.registry.is_empty());
        assert_eq!(s.device, None);
    }
}
