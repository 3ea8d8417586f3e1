//! The component runtime: engine configuration, the compiled-artifact cache, pre-instantiation and
//! the per-request store.
//!
//! # Cost model
//!
//! Serving a WASI 0.2 `wasi:http/proxy` component has three costs of very different sizes, and this
//! module arranges for each to be paid as rarely as possible:
//!
//! | work | cost for the pfd-edge component | paid |
//! |---|---|---|
//! | compile wasm → native code (Cranelift) | ~20 s for a 20 MB tract component | once per (component, wasmtime, engine settings), then cached on disk |
//! | link imports, type-check (`InstancePre`/`ProxyPre`) | milliseconds | once per process |
//! | instantiate (allocate memory, init data, tables) | tens of microseconds | once per request |
//!
//! **Compile once.** [`Runtime::load`] keys the compiled artifact by the SHA-256 of the wasm bytes,
//! the wasmtime version and the engine's compatibility hash (target CPU features, every codegen
//! setting such as epoch interruption), stores it with [`Component::serialize`] under
//! `<cache>/<key>.cwasm` (written to a temporary file and renamed, so a crash never leaves a torn
//! artifact behind), and on the next start maps it back with [`Component::deserialize_file`]. Any
//! problem with the cache (unreadable, from another build, corrupted) falls back to compiling:
//! the cache can make a start faster, never make it fail.
//!
//! **A fresh instance per request.** WASI 0.2 HTTP handlers get no cross-request state, and a fresh
//! instance means one request can never observe another's memory. It is affordable because of the
//! **pooling allocator** (instance slots, linear memories, tables and async stacks are reserved
//! once at start and recycled, so instantiation does no `mmap`) and **copy-on-write memory
//! initialisation** (the component's data segments — including a wizer snapshot holding an already
//! optimised model — are mapped from one shared image instead of copied into each instance).
//!
//! **Deadlines without cooperation.** A guest stuck in a loop never returns to the host, so a
//! timer on the host side alone cannot stop it. With *epoch interruption* Cranelift inserts a cheap
//! check of a global counter at function entries and loop headers; [`EpochTicker`] bumps the counter
//! every [`EPOCH_TICK`], and each store's deadline callback either yields to the async executor (so a
//! long inference never monopolises a runtime worker) or, past the request's deadline, traps with
//! [`Trap::Interrupt`] — which the server answers with 504.
//!
//! # Extending the host
//!
//! Host interfaces beyond WASI 0.2 and `wasi:http` (wasi-nn, see `crate::nn`) are linked in exactly
//! one place, [`add_host_interfaces`], and their per-request state lives in [`HostState`]. Linking
//! is checked against the component's imports once at start, so a component that needs an
//! interface this host lacks fails at start with the missing import named, never at the first
//! request.

use anyhow::{anyhow, Context as _, Result};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig, Store,
    StoreLimits, StoreLimitsBuilder, UpdateDeadline,
};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// The wasmtime release this host is built against (pinned in Cargo.toml). Part of the cache key:
/// artifacts are only valid for the exact wasmtime that produced them.
pub const WASMTIME_VERSION: &str = "48.0.8";

/// How often the epoch advances. Why 10 ms: the deadline resolves to ±10 ms (plenty for a 30 s
/// budget) and a long-running guest yields to the executor at least this often, while the ticker
/// thread costs ~100 wake-ups per second — nothing.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Tuning knobs for [`Runtime::load`], from the command line.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Most instances alive at once; the server admits at most this many requests.
    pub max_instances: u32,
    /// Most linear memory one instance may grow to, in bytes.
    pub max_instance_memory: u64,
    /// Where compiled artifacts live; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// How freed slots are reset (see [`SlotReuse`]).
    pub slot_reuse: SlotReuse,
}

/// How a freed instance slot is reset for the next request: the pooling allocator's
/// keep-resident settings. The trade-off is page faults per request against RSS per warm slot;
/// the flags of `pfd-host serve` carry the measured reasons for their defaults.
#[derive(Debug, Clone, Copy)]
pub struct SlotReuse {
    /// Linear-memory bytes kept resident (reset with `memset`) per freed slot.
    pub memory_keep_resident: usize,
    /// Table bytes kept resident per freed slot.
    pub table_keep_resident: usize,
    /// PAGEMAP_SCAN: `None` = when the kernel has it.
    pub pagemap_scan: Option<bool>,
}

#[cfg(test)]
impl SlotReuse {
    /// wasmtime's own behaviour: every freed slot `madvise`d back to zero.
    pub const DECOMMIT: SlotReuse = SlotReuse {
        memory_keep_resident: 0,
        table_keep_resident: 0,
        pagemap_scan: Some(false),
    };
}

/// What the guest sees of the host: environment variables and read-only directories.
#[derive(Debug, Clone, Default)]
pub struct GuestSetup {
    /// Environment variables, in order.
    pub env: Vec<(String, String)>,
    /// `(host directory, guest path)` pairs, preopened read-only.
    pub preopens: Vec<(PathBuf, String)>,
    /// The wasi-nn graphs (loaded once, shared by every request; empty: `load-by-name` answers
    /// not-found and the guest falls back to tract).
    pub nn: Arc<crate::nn::NnRegistry>,
}

/// How the compiled component was obtained, for the startup log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompileSource {
    /// Mapped from the cache.
    CacheHit(PathBuf),
    /// Compiled, and stored in the cache at this path.
    CompiledAndCached(PathBuf),
    /// Compiled; the cache was disabled or could not be written (the reason).
    Compiled(Option<String>),
}

/// Startup measurements of [`Runtime::load`].
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Size of the `.wasm`.
    pub wasm_bytes: u64,
    /// Cache key (hex SHA-256).
    pub key: String,
    /// Where the compiled code came from.
    pub source: CompileSource,
    /// Time to obtain the compiled component (compile or cache load).
    pub compile_time: Duration,
    /// Time to link and pre-instantiate.
    pub link_time: Duration,
    /// Whether instances come from the pooling allocator (else on-demand, see the log).
    pub pooling: bool,
}

/// A loaded, linked component, ready to instantiate per request.
pub struct Runtime {
    engine: Engine,
    pre: ProxyPre<HostState>,
    guest: GuestSetup,
    max_instance_memory: usize,
    _ticker: EpochTicker,
}

impl Runtime {
    /// Builds the engine, obtains the compiled component (cache or compile), links it and
    /// pre-instantiates it.
    pub fn load(
        wasm_path: &Path,
        guest: GuestSetup,
        opts: &RuntimeOptions,
    ) -> Result<(Runtime, LoadReport)> {
        let (engine, pooling) = build_engine(opts)?;
        let wasm = std::fs::read(wasm_path)
            .with_context(|| format!("cannot read component {}", wasm_path.display()))?;
        // The preamble: `\0asm`, then version 1 (core module) or 0x0d + layer 1 (component).
        if !wasm.starts_with(b"\0asm\x0d\0\x01\0") {
            if wasm.starts_with(b"\0asm\x01\0\0\0") {
                anyhow::bail!(
                    "{} is a core wasm module, not a component: wrap it with the preview1 reactor adapter (the project's component build does)",
                    wasm_path.display()
                );
            }
            anyhow::bail!("{} is not a WebAssembly component", wasm_path.display());
        }
        let key = cache_key(&engine, &wasm);

        let started = Instant::now();
        let (component, source) =
            obtain_component(&engine, &wasm, &key, opts.cache_dir.as_deref())?;
        let compile_time = started.elapsed();

        let started = Instant::now();
        let mut linker = Linker::<HostState>::new(&engine);
        add_host_interfaces(&mut linker)?;
        let instance_pre = linker.instantiate_pre(&component).map_err(|e| {
            anyhow!(e).context(format!(
                "{} needs an import this host does not provide",
                wasm_path.display()
            ))
        })?;
        let pre = ProxyPre::new(instance_pre).map_err(|e| {
            anyhow!(e).context(format!(
                "{} does not export wasi:http/incoming-handler (is it a wasi:http/proxy component?)",
                wasm_path.display()
            ))
        })?;
        let link_time = started.elapsed();
        crate::allocator::release_free_heap();

        let ticker = EpochTicker::spawn(engine.clone(), EPOCH_TICK);
        let report = LoadReport {
            wasm_bytes: wasm.len() as u64,
            key,
            source,
            compile_time,
            link_time,
            pooling,
        };
        Ok((
            Runtime {
                engine,
                pre,
                guest,
                max_instance_memory: usize::try_from(opts.max_instance_memory)
                    .unwrap_or(usize::MAX),
                _ticker: ticker,
            },
            report,
        ))
    }

    /// The pre-instantiated component.
    pub fn pre(&self) -> &ProxyPre<HostState> {
        &self.pre
    }

    /// A fresh store for one request: its own WASI context (environment, read-only preopens, guest
    /// stdout/stderr forwarded to the log under `request_id`), memory limit and deadline.
    pub fn new_store(&self, request_id: &str, deadline: Instant) -> Result<Store<HostState>> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.envs(&self.guest.env);
        // Why: files are only read from read-only preopens of local disk, where a blocking read
        // is faster than a hop through the blocking thread pool.
        wasi.allow_blocking_current_thread(true);
        for (host, guest) in &self.guest.preopens {
            wasi.preopened_dir(host, guest, FsPerms::ReadOnly)
                .map_err(|e| anyhow!(e))
                .with_context(|| format!("cannot open {} for the guest", host.display()))?;
        }
        wasi.stdout(GuestLog::new(request_id, "stdout"));
        wasi.stderr(GuestLog::new(request_id, "stderr"));

        let limits = StoreLimitsBuilder::new()
            .memory_size(self.max_instance_memory)
            // Why not trap: a failed `memory.grow` returns -1 to the guest, whose allocator reports
            // out-of-memory in its own way (usually an abort → a 500 for this request only).
            .trap_on_grow_failure(false)
            .build();
        let state = HostState {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            hooks: DenyOutbound,
            limits,
            deadline,
            // One pointer per request: the graphs and their session pools are shared.
            nn: self.guest.nn.clone(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        // The callback runs each time the epoch passes the store's deadline, i.e. after every tick
        // of guest execution.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| {
            if Instant::now() >= ctx.data().deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        Ok(store)
    }
}

/// Every import the host provides. The single seam for new host interfaces; their per-request
/// state lives in [`HostState`].
pub fn add_host_interfaces(linker: &mut Linker<HostState>) -> Result<()> {
    // All of WASI 0.2 (a component made from a wasip1 module through the preview1 adapter imports
    // wasi:filesystem and wasi:cli/environment, which the proxy world alone lacks). Sockets are
    // linked but the context grants no network access.
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    // wasi:http/types and wasi:http/outgoing-handler (outbound requests are denied by DenyOutbound).
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    // wasi:nn (ONNX Runtime; see `crate::nn`). Always linked — with an empty registry when wasi-nn
    // is off or ONNX Runtime is missing — so the wasi-nn build always instantiates and falls back
    // to tract; a component that does not import it is unaffected.
    crate::nn::wit::add_to_linker(linker, HostState::nn_view)?;
    Ok(())
}

/// Per-request host state (the `T` of `Store<T>`).
pub struct HostState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: DenyOutbound,
    limits: StoreLimits,
    deadline: Instant,
    nn: Arc<crate::nn::NnRegistry>,
}

impl HostState {
    /// The wasi-nn imports' view: this request's resource table and the shared graphs.
    fn nn_view(&mut self) -> crate::nn::wit::NnView<'_> {
        crate::nn::wit::NnView::new(&mut self.table, &self.nn)
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// `wasi:http` hooks that refuse outbound requests. The pfd-edge guest never calls out; denying it
/// keeps the component sandboxed (and keeps TLS stacks out of this binary).
pub struct DenyOutbound;

impl wasmtime_wasi_http::WasiHttpHooks for DenyOutbound {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<
        dyn Future<
                Output = wasmtime_wasi_http::Result<(
                    http::Response<wasmtime_wasi_http::WasiBody>,
                    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
                )>,
            > + Send,
    > {
        tracing::warn!(uri = %request.uri(), "guest outbound HTTP request denied");
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}

/// Creates the engine: Cranelift, async, epoch interruption, the component model and the pooling
/// allocator sized from `opts` (falling back to on-demand allocation if the pool cannot be
/// reserved, e.g. under a tight `ulimit -v`). Returns the engine and whether pooling is on.
fn build_engine(opts: &RuntimeOptions) -> Result<(Engine, bool)> {
    let mut config = base_config();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling_config(opts)));
    match Engine::new(&config) {
        Ok(engine) => Ok((engine, true)),
        Err(e) => {
            tracing::warn!(error = %e, "pooling allocator unavailable; falling back to on-demand instance allocation (slower instantiation)");
            let mut config = base_config();
            config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
            Ok((Engine::new(&config).map_err(|e| anyhow!(e))?, false))
        }
    }
}

fn base_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    // Why: request deadlines that stop a guest mid-computation (see the module docs). Costs a
    // load+compare at loop headers and function entries, ~a few % of guest time.
    config.epoch_interruption(true);
    // Why Speed (the default, stated so it is not lost): the artifact is compiled once and cached,
    // so compile time matters far less than per-request execution time.
    config.cranelift_opt_level(OptLevel::Speed);
    // Why: Cranelift compiles functions in parallel; a cold start of a 20 MB component takes
    // roughly 1/cores of the time.
    config.parallel_compilation(true);
    // Why: data segments (and a wizer snapshot's whole heap) are mapped copy-on-write from the
    // compiled artifact instead of memcpy'd into every fresh instance.
    config.memory_init_cow(true);
    config
}

/// Pooling-allocator limits. Each slot's virtual address space is reserved up front and recycled;
/// physical memory is only committed when a guest touches it, so generous totals cost address
/// space, not RAM.
fn pooling_config(opts: &RuntimeOptions) -> PoolingAllocationConfig {
    let n = opts.max_instances;
    let mut pool = PoolingAllocationConfig::default();
    // Why = max concurrency: the server admits at most this many requests, each holding exactly one
    // component instance, so the pool can never run dry while a request is admitted.
    pool.total_component_instances(n);
    // Why 16: a wasip1 module wrapped with the preview1 adapter is ~4–6 core instances (main module,
    // adapter, the shim and fixup modules wit-component generates); 16 leaves room for a differently
    // built component without reserving much (metadata only).
    pool.max_core_instances_per_component(16);
    pool.total_core_instances(n.saturating_mul(16));
    // Why 2: the main module's memory, plus one for adapters or runtimes that bring their own.
    // Each memory slot reserves address space (4 GiB + guards for bounds-check elision), not RAM.
    pool.max_memories_per_component(2);
    pool.total_memories(n.saturating_mul(2));
    // Why 4 tables per component / 2 per module: the main module's function table, the shim's and
    // fixup's indirect-call tables, with one spare.
    pool.max_tables_per_component(4);
    pool.max_tables_per_module(2);
    pool.total_tables(n.saturating_mul(4));
    // Why 100 000 (default 20 000): a Rust module with tract has tens of thousands of
    // address-taken functions (trait-object vtables) in its table; 8 bytes each, committed lazily.
    pool.table_elements(100_000);
    // Why: the per-instance memory cap. A guest that grows past it sees `memory.grow` fail.
    pool.max_memory_size(usize::try_from(opts.max_instance_memory).unwrap_or(usize::MAX));
    // Why = max concurrency: every in-flight async call runs on its own fiber stack from the pool.
    pool.total_stacks(n);
    // Why = max concurrency: a GC heap per store if the component ever uses GC types (pfd-edge does
    // not; this only reserves metadata).
    pool.total_gc_heaps(n);
    // Why: keep slots affine to the one component we serve warm (their memory mappings, CoW image
    // and kept-resident pages stay set up), instead of the default 100 that would let cold slots
    // be touched first.
    pool.max_unused_warm_slots(n);
    let reuse = &opts.slot_reuse;
    pool.linear_memory_keep_resident(reuse.memory_keep_resident);
    pool.table_keep_resident(reuse.table_keep_resident);
    pool.pagemap_scan(match reuse.pagemap_scan {
        None => wasmtime::Enabled::Auto,
        Some(true) => wasmtime::Enabled::Yes,
        Some(false) => wasmtime::Enabled::No,
    });
    pool
}

/// Cache key: SHA-256 over the wasm bytes, the wasmtime version and the engine's compatibility
/// hash (CPU features and codegen settings), so any change that would make an artifact unusable
/// changes the file name rather than failing to load.
fn cache_key(engine: &Engine, wasm: &[u8]) -> String {
    let mut compat = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut compat);
    let mut h = Sha256::new();
    h.update(wasm);
    h.update(b"\0wasmtime-");
    h.update(WASMTIME_VERSION.as_bytes());
    h.update(b"\0");
    h.update(compat.finish().to_le_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn obtain_component(
    engine: &Engine,
    wasm: &[u8],
    key: &str,
    cache_dir: Option<&Path>,
) -> Result<(Component, CompileSource)> {
    let Some(dir) = cache_dir else {
        return Ok((
            compile(engine, wasm)?,
            CompileSource::Compiled(Some("cache disabled".into())),
        ));
    };
    let path = dir.join(format!("{key}.cwasm"));
    if path.is_file() {
        // SAFETY: `deserialize_file` trusts the file to be an artifact produced by
        // `Component::serialize` of this wasmtime and maps it as executable code. The cache
        // directory is written only by this host (atomically, via rename), is keyed by a digest of
        // the input, and is as trusted as the binary itself; wasmtime additionally checks the
        // header, version and engine compatibility and returns an error (→ recompile) on mismatch.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(c) => {
                touch(&path);
                return Ok((c, CompileSource::CacheHit(path)));
            }
            // The artifact is fine but the component does not fit this run's limits: compiling
            // again would fail the same way, only after wasting the compile time.
            Err(e) if is_pool_limit_error(&e) => return Err(limits_error(e)),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "compiled artifact unusable; recompiling");
            }
        }
    }
    let component = compile(engine, wasm)?;
    match store_artifact(&component, dir, &path) {
        Ok(()) => {
            prune_cache(dir, &path);
            // Why serve the artifact just stored rather than the compiled component in hand: the
            // stored one is mapped from the file (pages the kernel shares and can reclaim), the
            // compiled one is ~75 MB of anonymous heap for the server's lifetime — 185 against
            // 111 MiB RSS at ready, measured. SAFETY: as above; this host wrote the file just now.
            let component = match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(mapped) => mapped,
                Err(_) => component,
            };
            Ok((component, CompileSource::CompiledAndCached(path)))
        }
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %format!("{e:#}"), "cannot write the compiled-artifact cache; next start compiles again");
            Ok((component, CompileSource::Compiled(Some(format!("{e:#}")))))
        }
    }
}

fn compile(engine: &Engine, wasm: &[u8]) -> Result<Component> {
    Component::new(engine, wasm).map_err(|e| {
        if is_pool_limit_error(&e) {
            limits_error(e)
        } else {
            anyhow!(e).context("compiling component")
        }
    })
}

/// Whether loading failed because the component exceeds the pooling allocator's per-instance
/// limits (wasmtime validates a component against them when it is loaded). wasmtime has no error
/// type for this, hence the message match; a miss only costs a recompile before the same error.
fn is_pool_limit_error(e: &wasmtime::Error) -> bool {
    format!("{e:#}").contains("pooling allocator")
}

fn limits_error(e: wasmtime::Error) -> anyhow::Error {
    anyhow!(e).context(
        "the component does not fit the per-instance limits (raise --max-instance-memory-bytes / PFD_MAX_INSTANCE_MEMORY_BYTES)",
    )
}

/// How many compiled artifacts the cache keeps. Why 8: each is ~3x the component (60+ MB for
/// pfd-edge); 8 covers the portable and wasi-nn builds across a few rebuilds without letting a
/// development machine's cache grow without bound.
const CACHE_KEEP: usize = 8;

/// Marks an artifact as recently used (its mtime), so pruning keeps the ones in use.
fn touch(path: &Path) {
    if let Ok(f) = std::fs::File::options().append(true).open(path) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}

/// Deletes all but the [`CACHE_KEEP`] most recently used artifacts (best effort).
fn prune_cache(dir: &Path, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut artifacts: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm") && p != keep)
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .collect();
    artifacts.sort_by_key(|a| std::cmp::Reverse(a.0));
    for (_, old) in artifacts.into_iter().skip(CACHE_KEEP.saturating_sub(1)) {
        tracing::info!(path = %old.display(), "pruning old compiled artifact");
        let _ = std::fs::remove_file(old);
    }
}

fn store_artifact(component: &Component, dir: &Path, path: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let bytes = component.serialize().map_err(|e| anyhow!(e))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        std::process::id(),
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
    // Why rename: atomic on one filesystem, so a concurrent reader (another replica sharing the
    // cache volume) sees either no artifact or a complete one.
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    Ok(())
}

/// Advances the engine's epoch every tick on a dedicated OS thread. Why a thread and not a tokio
/// task: when every runtime worker is busy running guest code, a tokio timer would not fire — which
/// is exactly when the deadline matters.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    fn spawn(engine: Engine, tick: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("pfd-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch thread");
        EpochTicker {
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Guest stdout/stderr, forwarded line by line to the host log (target `guest`), tagged with the
/// request id, so guest output lands in the same (possibly JSON) log stream as everything else.
#[derive(Clone)]
struct GuestLog {
    inner: Arc<GuestLogInner>,
}

struct GuestLogInner {
    request_id: String,
    stream: &'static str,
    partial: Mutex<Vec<u8>>,
}

/// Longest line kept before it is emitted anyway (a guest printing without newlines must not grow
/// host memory without bound).
const GUEST_LOG_MAX_LINE: usize = 16 * 1024;

impl GuestLog {
    fn new(request_id: &str, stream: &'static str) -> Self {
        GuestLog {
            inner: Arc::new(GuestLogInner {
                request_id: request_id.to_string(),
                stream,
                partial: Mutex::new(Vec::new()),
            }),
        }
    }

    fn write(&self, mut bytes: &[u8]) {
        let mut partial = self.inner.partial.lock().unwrap_or_else(|e| e.into_inner());
        while !bytes.is_empty() {
            match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    partial.extend_from_slice(&bytes[..i]);
                    self.emit(&partial);
                    partial.clear();
                    bytes = &bytes[i + 1..];
                }
                None => {
                    partial.extend_from_slice(bytes);
                    if partial.len() >= GUEST_LOG_MAX_LINE {
                        self.emit(&partial);
                        partial.clear();
                    }
                    break;
                }
            }
        }
    }

    fn emit(&self, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches('\r');
        tracing::info!(target: "guest", request_id = %self.inner.request_id, stream = self.inner.stream, "{line}");
    }
}

impl Drop for GuestLogInner {
    fn drop(&mut self) {
        let partial = self.partial.get_mut().unwrap_or_else(|e| e.into_inner());
        if !partial.is_empty() {
            let line = String::from_utf8_lossy(partial);
            tracing::info!(target: "guest", request_id = %self.request_id, stream = self.stream, "{line}");
        }
    }
}

impl wasmtime_wasi::cli::IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for GuestLog {
    fn p2_stream(&self) -> Box<dyn wasmtime_wasi::p2::OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl wasmtime_wasi::p2::OutputStream for GuestLog {
    fn write(&mut self, bytes: bytes::Bytes) -> wasmtime_wasi::p2::StreamResult<()> {
        GuestLog::write(self, &bytes);
        Ok(())
    }
    fn flush(&mut self) -> wasmtime_wasi::p2::StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> wasmtime_wasi::p2::StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[async_trait::async_trait]
impl wasmtime_wasi::p2::Pollable for GuestLog {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for GuestLog {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        GuestLog::write(&self, buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_key_depends_on_bytes_and_engine() {
        let opts = RuntimeOptions {
            max_instances: 2,
            max_instance_memory: 64 << 20,
            cache_dir: None,
            slot_reuse: SlotReuse::DECOMMIT,
        };
        let (engine, _) = build_engine(&opts).unwrap();
        let a = cache_key(&engine, b"\0asm-a");
        assert_eq!(a, cache_key(&engine, b"\0asm-a"));
        assert_ne!(a, cache_key(&engine, b"\0asm-b"));
        assert_eq!(a.len(), 64);
        let mut other = Config::new();
        other.epoch_interruption(false);
        let other = Engine::new(&other).unwrap();
        assert_ne!(a, cache_key(&other, b"\0asm-a"));
    }

    /// A core module with 32 pages (2 MiB) of memory, `write(addr, value)` and `read(addr)`,
    /// hand-assembled (the host has no text-format parser, and needs none in production).
    const PEEK_POKE: &[u8] = &[
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
        0x01, 0x0b, 0x02, 0x60, 0x02, 0x7f, 0x7f, 0x00, 0x60, 0x01, 0x7f, 0x01, 0x7f, // types
        0x03, 0x03, 0x02, 0x00, 0x01, // functions
        0x05, 0x03, 0x01, 0x00, 0x20, // memory: min 32 pages
        0x07, 0x10, 0x02, 0x05, b'w', b'r', b'i', b't', b'e', 0x00, 0x00, 0x04, b'r', b'e', b'a',
        b'd', 0x00, 0x01, // exports
        0x0a, 0x13, 0x02, 0x09, 0x00, 0x20, 0x00, 0x20, 0x01, 0x36, 0x02, 0x00, 0x0b, 0x07, 0x00,
        0x20, 0x00, 0x28, 0x02, 0x00, 0x0b, // code
    ];

    #[test]
    fn a_reused_slot_never_shows_the_previous_instance_memory() {
        // The serving configuration's slot reuse (memory kept resident, reset by memset /
        // PAGEMAP_SCAN instead of madvise) must still hand every instance zeroed memory. One
        // slot, so the second instance provably reuses the first one's memory.
        for (reuse, what) in [
            (
                SlotReuse {
                    memory_keep_resident: 1 << 20,
                    table_keep_resident: 1 << 20,
                    pagemap_scan: None,
                },
                "keep-resident + pagemap_scan auto",
            ),
            (
                SlotReuse {
                    memory_keep_resident: 16 << 20,
                    table_keep_resident: 1 << 20,
                    pagemap_scan: Some(false),
                },
                "keep-resident, memset",
            ),
            (SlotReuse::DECOMMIT, "decommit"),
        ] {
            let (engine, pooling) = build_engine(&RuntimeOptions {
                max_instances: 1,
                max_instance_memory: 64 << 20,
                cache_dir: None,
                slot_reuse: reuse,
            })
            .unwrap();
            assert!(pooling, "{what}: the pooling allocator must be in use");
            let module = wasmtime::Module::new(&engine, PEEK_POKE).unwrap();
            // Inside the kept-resident MiB, at its edge, and beyond it (decommitted either way).
            let addrs = [
                0,
                100,
                4096 * 3,
                (1 << 20) - 4,
                (1 << 20) + 8192,
                (2 << 20) - 4,
            ];
            for round in 0..3i32 {
                let mut store = wasmtime::Store::new(&engine, ());
                store.set_epoch_deadline(1 << 40);
                let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
                let write = instance
                    .get_typed_func::<(i32, i32), ()>(&mut store, "write")
                    .unwrap();
                let read = instance
                    .get_typed_func::<i32, i32>(&mut store, "read")
                    .unwrap();
                for &a in &addrs {
                    let seen = read.call(&mut store, a).unwrap();
                    assert_eq!(
                        seen, 0,
                        "{what}, round {round}: address {a} leaked {seen:#x}"
                    );
                    write.call(&mut store, (a, 0x5eed_0000 | round)).unwrap();
                    assert_eq!(read.call(&mut store, a).unwrap(), 0x5eed_0000 | round);
                }
            }
        }
    }

    #[test]
    fn compiled_artifacts_are_cached_and_reused() {
        let (engine, _) = build_engine(&RuntimeOptions {
            max_instances: 2,
            max_instance_memory: 64 << 20,
            cache_dir: None,
            slot_reuse: SlotReuse::DECOMMIT,
        })
        .unwrap();
        // The smallest valid component: magic + component-model version/layer.
        let wasm = b"\0asm\x0d\0\x01\0";
        let dir = tempfile::tempdir().unwrap();
        let key = cache_key(&engine, wasm);
        let (_, first) = obtain_component(&engine, wasm, &key, Some(dir.path())).unwrap();
        let path = dir.path().join(format!("{key}.cwasm"));
        assert_eq!(first, CompileSource::CompiledAndCached(path.clone()));
        let (_, second) = obtain_component(&engine, wasm, &key, Some(dir.path())).unwrap();
        assert_eq!(second, CompileSource::CacheHit(path.clone()));
        // A corrupted artifact is recompiled and replaced, never fatal.
        std::fs::write(&path, b"garbage").unwrap();
        let (_, third) = obtain_component(&engine, wasm, &key, Some(dir.path())).unwrap();
        assert_eq!(third, CompileSource::CompiledAndCached(path.clone()));
        let (_, fourth) = obtain_component(&engine, wasm, &key, Some(dir.path())).unwrap();
        assert_eq!(fourth, CompileSource::CacheHit(path));
        // No temporary files left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn pruning_keeps_the_newest_artifacts() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::time::SystemTime::now() - Duration::from_secs(3600);
        for i in 0..12u64 {
            let p = dir.path().join(format!("{i:02}.cwasm"));
            std::fs::write(&p, b"x").unwrap();
            let f = std::fs::File::options().append(true).open(&p).unwrap();
            f.set_modified(base + Duration::from_secs(i)).unwrap();
        }
        std::fs::write(dir.path().join("unrelated.txt"), b"x").unwrap();
        let keep = dir.path().join("00.cwasm"); // the one just written, whatever its mtime
        prune_cache(dir.path(), &keep);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "00.cwasm",
                "05.cwasm",
                "06.cwasm",
                "07.cwasm",
                "08.cwasm",
                "09.cwasm",
                "10.cwasm",
                "11.cwasm",
                "unrelated.txt"
            ]
        );
    }

    #[test]
    fn rejects_core_modules_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("core.wasm");
        // The smallest valid core module: magic + version 1.
        std::fs::write(&path, b"\0asm\x01\0\0\0").unwrap();
        let opts = RuntimeOptions {
            max_instances: 2,
            max_instance_memory: 64 << 20,
            cache_dir: None,
            slot_reuse: SlotReuse::DECOMMIT,
        };
        let err = Runtime::load(&path, GuestSetup::default(), &opts)
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("core wasm module"), "{err:#}");
    }
}
