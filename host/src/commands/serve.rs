//! `pfd-host serve`: its flags ([`ServeArgs`]) and the start-up that wires the library's parts
//! together — the manifest and the component's settings ([`component`]), mounts, the listener
//! (bound before compiling, so a busy port fails in milliseconds), wasi-nn, the compiled component,
//! the server's limits — then serving until a signal, and a drain.

use crate::config::{
    default_cache_dir, parse_key_value, parse_nonzero_ms, parse_rate, parse_size,
    parse_size_or_zero, NnArgs, Switch, Tristate, DEFAULT_LISTEN,
};
use crate::manifest::{self, AppManifest, GuestEnv, Mount, Route};
use crate::ratelimit::{RateLimitBy, RateLimitConfig};
use crate::runtime::{CompileSource, GuestSetup, Runtime, RuntimeOptions};
use crate::{metrics, nn, ratelimit, server};
use anyhow::{bail, Context, Result};
use clap::Args;
use pfd_core::card::{CARD_FILE, MODEL_FILE};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// `pfd-host serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "PFD_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// Spin manifest (spin.toml, manifest version 2) naming the component, its files and its
    /// environment. Relative paths inside it resolve against its directory.
    #[arg(long, env = "PFD_MANIFEST", default_value = "spin.toml")]
    pub manifest: PathBuf,

    /// Component to serve instead of the manifest's `source` (the manifest's files, environment
    /// and route still apply when the manifest exists).
    #[arg(long, env = "PFD_COMPONENT")]
    pub component: Option<PathBuf>,

    /// Extra guest environment variable `KEY=VALUE` (repeatable); wins over the manifest and the
    /// host environment.
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub guest_env: Vec<(String, String)>,

    /// Largest accepted request body. Why 256 MiB: a full `/predict/batch` (128 records of 102400
    /// floats) is ~130 MB of JSON, and a limit must not reject the API's own largest request.
    /// Requests announcing more (Content-Length) get 413 before any instance is created; streamed
    /// bodies are counted and cut at the limit.
    #[arg(long, env = "PFD_MAX_BODY_BYTES", default_value = "256MiB", value_parser = parse_size)]
    pub max_body_bytes: u64,

    /// Most connections one client address may hold open at once (0: no cap); one more is
    /// answered 503 with `Retry-After` and closed. Why 256: twice the instance slots, so a busy
    /// client (a gateway pooling connections) is never capped before the slots run out, while one
    /// address cannot hold thousands of sockets (a slow-client attack from one host). Behind a
    /// load balancer or ingress every connection comes from its address: set 0 there (the Helm
    /// chart does) and cap at the ingress.
    #[arg(long, env = "PFD_MAX_CONNECTIONS_PER_CLIENT", default_value_t = 256)]
    pub max_connections_per_client: u32,

    /// Largest response body a guest may send. Why 64 MiB: the API's largest answer (a 128-record
    /// batch, OIP outputs, the OpenAPI document) is well under 1 MiB, so this is only reached by
    /// a runaway guest — which would otherwise stream until its deadline, tens of GB on a fast
    /// link. A response announcing more (Content-Length) is a 500 before its head is sent; a
    /// streamed one is cut at the limit (the status has gone, so the connection is aborted: an
    /// HTTP/1.1 client sees an incomplete body, never a short one passed as whole).
    #[arg(long, env = "PFD_MAX_RESPONSE_BYTES", default_value = "64MiB", value_parser = parse_size)]
    pub max_response_bytes: u64,

    /// Longest time a client may take to send its body, from arrival (within the request
    /// deadline); then 408. Why 20 s: the API's largest request, a 136 MB batch, needs ~11 s at
    /// 100 Mbit/s, and the remaining 10 s of the 30 s deadline serve it. Bodies are received by
    /// the host before an instance is taken, so a slow client holds no instance meanwhile.
    #[arg(long, env = "PFD_BODY_TIMEOUT_MS", default_value_t = 20_000, value_parser = parse_nonzero_ms)]
    pub body_timeout_ms: u64,

    /// Most request body bytes held at once, over all requests received or waiting for an
    /// instance (counted as they arrive, not as announced); a body that cannot get room before
    /// its timeout gets 503. Why 1 GiB: four of the largest bodies at once, well below a node's
    /// memory; at least `--max-body-bytes`.
    #[arg(long, env = "PFD_MAX_INFLIGHT_BODY_BYTES", default_value = "1GiB", value_parser = parse_size)]
    pub max_inflight_body_bytes: u64,

    /// Deadline for one request, from arrival to the guest's response (queueing included).
    /// Enforced inside the guest by epoch interruption, so a runaway computation is stopped too;
    /// answered with 504.
    #[arg(long, env = "PFD_REQUEST_TIMEOUT_MS", default_value_t = 30_000, value_parser = parse_nonzero_ms)]
    pub request_timeout_ms: u64,

    /// Most requests served at once (= live component instances = pooling-allocator slots). More
    /// requests wait for a slot, up to the queue timeout. Default: 4 per CPU this process may use
    /// (its cgroup's CPU limit in a container).
    #[arg(long, env = "PFD_MAX_CONCURRENCY", default_value_t = default_max_concurrency(), value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_CONCURRENCY)))]
    pub max_concurrency: u32,

    /// How long a request may wait for a free slot before it gets 503 (with `Retry-After`).
    /// Why bounded: an unbounded queue turns overload into timeouts for everyone; a quick 503 lets a
    /// load balancer retry elsewhere.
    #[arg(long, env = "PFD_QUEUE_TIMEOUT_MS", default_value_t = 5_000)]
    pub queue_timeout_ms: u64,

    /// Most linear memory one instance may grow to. Why 1 GiB: a full batch needs the ~130 MB body,
    /// its decoded floats (~52 MB) and the model's tensors, with room to spare; a runaway guest
    /// fails its own request instead of starving the host.
    #[arg(long, env = "PFD_MAX_INSTANCE_MEMORY_BYTES", default_value = "1GiB", value_parser = parse_size)]
    pub max_instance_memory_bytes: u64,

    /// Linear memory each freed instance slot keeps resident, reset in place (`memcpy` from the
    /// image, `memset` beyond it) instead of `madvise`. Why: after an `madvise` reset the next
    /// request in the slot faults every page back in, and each copy-on-write fault in a
    /// multi-threaded process costs a TLB-shootdown IPI to the other cores — ~48 % of the
    /// server's CPU under load before this setting. Measured on 2 cores (scripts/load_bench.py,
    /// same run): `/predict` CPU per request 0.62–0.81x, OIP binary 0.64–0.70x, `/health`
    /// 0.62–0.92x of the `madvise` reset.
    ///
    /// What a reset costs: PAGEMAP_SCAN (`--pagemap-scan`) finds the slot's private pages, but
    /// without userfaultfd write-protection (wasmtime does not register it) it cannot tell the
    /// pages this request wrote from those an earlier one did, so every reset copies every page
    /// the slot has ever written, up to this bound — paid by each later request in the slot,
    /// even `/health`. Why 4 MiB: a 1 MB `/predict` writes ~2 MiB of guest memory (520 page
    /// faults per request with `madvise`). Measured interleaved after a `/predict` load, 1/2/4/8
    /// MiB: `/predict` CPU per request at conc 4 7.13–7.27 / 6.24–6.48 / 6.08–6.22 / 6.27–6.48
    /// ms, `/health` at conc 1 0.48–0.52 / 0.58–0.62 / 0.60–0.62 / 0.62–0.72 ms — 1 MiB
    /// re-faults `/predict`'s pages; 2–8 MiB are alike within run-to-run noise (a second A/B,
    /// 4 against 8 MiB: `/predict` 5.99–6.31 against 5.93–6.27 ms, `/health` 0.641–0.646
    /// against 0.644–0.645). So the choice is the RSS bound (this × the peak number of
    /// concurrent instances, `--max-concurrency`): 4 MiB is twice `/predict`'s working set,
    /// half the previous 8. Pages beyond it (a `/predict/batch` grows a memory to hundreds of MB)
    /// are returned to the OS. 0: always `madvise`.
    #[arg(long, env = "PFD_MEMORY_KEEP_RESIDENT", default_value = "4MiB", value_parser = parse_size_or_zero)]
    pub memory_keep_resident: u64,

    /// Table memory each freed slot keeps resident (reset with `memset`, like linear memory).
    /// Why 1 MiB: the component's function table (tens of thousands of 8-byte entries, filled
    /// lazily) otherwise faults back in on every request.
    #[arg(long, env = "PFD_TABLE_KEEP_RESIDENT", default_value = "1MiB", value_parser = parse_size_or_zero)]
    pub table_keep_resident: u64,

    /// Use Linux's PAGEMAP_SCAN ioctl (kernel ≥ 6.7) to reset only the slot's written pages
    /// (`auto`: when the kernel has it). Why: without it, a kept-resident slot is reset by
    /// copying its whole kept range, touched or not. "Written" means by any request the slot
    /// has served, not only the last one (see `--memory-keep-resident`).
    #[arg(long, env = "PFD_PAGEMAP_SCAN", value_enum, default_value_t = Tristate::Auto)]
    pub pagemap_scan: Tristate,

    /// How often each model's readiness (loaded, files present and intact) is asked of the
    /// component for `model_loaded{model}`. Why 60 s: a model whose files disappear or break
    /// shows in `model_loaded` within a minute (the alert waits 5), for one short instance per
    /// model per minute; readiness probes (`/health/ready`) check the files on every call anyway.
    #[arg(long, env = "PFD_MODEL_PROBE_INTERVAL_MS", default_value_t = 60_000, value_parser = parse_nonzero_ms)]
    pub model_probe_interval_ms: u64,

    /// On SIGTERM/SIGINT: keep serving this long (readiness 503, `Connection: close` on every
    /// answer) before accepting stops. Why 5 s: Kubernetes takes a terminating pod out of its
    /// endpoints asynchronously, and kube-proxy/ingress updates land within a few seconds.
    #[arg(long, env = "PFD_DRAIN_DELAY_MS", default_value_t = 5_000)]
    pub drain_delay_ms: u64,

    /// After the drain delay: stop accepting, then give in-flight requests this long to finish.
    /// Why 20 s: drain 5 s + 20 s stays below Kubernetes' default 30 s termination grace, so
    /// pods exit cleanly before SIGKILL.
    #[arg(long, env = "PFD_SHUTDOWN_GRACE_MS", default_value_t = 20_000)]
    pub shutdown_grace_ms: u64,

    /// Directory for compiled components (`<sha256>.cwasm`). Default:
    /// `$XDG_CACHE_HOME/pfd-edge/compiled`, else `~/.cache/pfd-edge/compiled`.
    #[arg(long, env = "PFD_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Compile the component at every start instead of using the compiled-artifact cache.
    #[arg(long, env = "PFD_NO_CACHE")]
    pub no_cache: bool,

    /// Requests per second each client may make: the refill rate of its token bucket (fractions
    /// allowed, `0.5` is one every 2 s); 0 turns rate limiting off. Why off by default: the right
    /// number depends on what is in front (one gateway, or many devices calling directly) and a
    /// wrong default refuses real traffic. Probes and `/metrics` are never limited.
    #[arg(long, env = "PFD_RATE_LIMIT", default_value_t = 0.0, value_parser = parse_rate)]
    pub rate_limit: f64,

    /// Requests a client may send at once before the rate applies (its bucket size). Default:
    /// one second's worth, at least 1.
    #[arg(long, env = "PFD_RATE_LIMIT_BURST", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rate_limit_burst: Option<u32>,

    /// Who gets a bucket: each client address, or each API key (requests without a valid key
    /// fall back to their address).
    #[arg(long, env = "PFD_RATE_LIMIT_BY", value_enum, default_value_t = RateLimitBy::Client)]
    pub rate_limit_by: RateLimitBy,

    /// Take the client address from the last `X-Forwarded-For` entry, the one the proxy in front
    /// appended. Only behind a proxy you trust (an ingress): clients can send the header too.
    #[arg(long, env = "PFD_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,

    /// Answer `GET /metrics` with Prometheus metrics (`off`: the path goes to the component,
    /// which answers 404).
    #[arg(long, env = "PFD_METRICS", value_enum, default_value_t = Switch::On)]
    pub metrics: Switch,

    #[command(flatten)]
    pub nn: NnArgs,
}

/// `--max-concurrency`'s upper bound, which also caps its default.
pub const MAX_CONCURRENCY: u32 = 10_000;

/// `--max-concurrency`'s default: 4 instance slots per CPU.
///
/// Why not more: bodies are received before a request takes a slot (`body.rs`), so a slot is
/// held only while the guest and the model compute — CPU work, which more slots than cores only
/// interleave. And every slot that has served keeps its pages (`--memory-keep-resident`, plus
/// its mapping of the pre-initialised image), so the peak number of concurrent instances sets
/// the RSS the server keeps after a burst. Measured on 2 cores, `/predict` under wrk at 16 and
/// 64 connections, two rounds, 128 slots against 8: CPU per request 4.04–4.27 against
/// 3.96–4.13 ms, 405–437 against 433–448 req/s, RSS 10 s after the load 164–169 against
/// 119–126 MiB. Why 4 and not 1: a slot is also held while the response is written and while
/// a request waits for a pooled ONNX Runtime session, and a few spare slots keep a long
/// `/diagnose` from stalling the short requests behind it.
pub fn default_max_concurrency() -> u32 {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    u32::try_from(cpus.saturating_mul(4))
        .unwrap_or(u32::MAX)
        .clamp(4, MAX_CONCURRENCY)
}

impl ServeArgs {
    /// The rate limiter's settings, or `None` when rate limiting is off.
    pub fn rate_limit_config(&self) -> Option<RateLimitConfig> {
        if self.rate_limit == 0.0 {
            return None;
        }
        let one_second = (self.rate_limit.ceil() as u32).max(1);
        let burst = self.rate_limit_burst.unwrap_or(one_second);
        Some(RateLimitConfig {
            rate: self.rate_limit,
            burst: std::num::NonZeroU32::new(burst).unwrap_or(std::num::NonZeroU32::MIN),
            by: self.rate_limit_by,
            trust_forwarded_for: self.trust_forwarded_for,
        })
    }

    /// The per-request deadline.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
    /// The bounded wait for a free instance slot.
    pub fn queue_timeout(&self) -> Duration {
        Duration::from_millis(self.queue_timeout_ms)
    }
    /// The body-receive timeout.
    pub fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.body_timeout_ms)
    }

    pub fn model_probe_interval(&self) -> Duration {
        Duration::from_millis(self.model_probe_interval_ms)
    }

    /// How long the server keeps serving after a shutdown request.
    pub fn drain_delay(&self) -> Duration {
        Duration::from_millis(self.drain_delay_ms)
    }

    /// The graceful-shutdown grace period.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
    /// The pooling allocator's slot-reuse settings.
    pub fn slot_reuse(&self) -> crate::runtime::SlotReuse {
        crate::runtime::SlotReuse {
            memory_keep_resident: usize::try_from(self.memory_keep_resident).unwrap_or(usize::MAX),
            table_keep_resident: usize::try_from(self.table_keep_resident).unwrap_or(usize::MAX),
            pagemap_scan: match self.pagemap_scan {
                Tristate::Auto => None,
                Tristate::On => Some(true),
                Tristate::Off => Some(false),
            },
        }
    }

    /// The compiled-artifact cache directory, or `None` when caching is off or no home is known.
    pub fn effective_cache_dir(&self) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        self.cache_dir.clone().or_else(|| {
            default_cache_dir(
                std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from),
                std::env::var_os("HOME").map(PathBuf::from),
            )
        })
    }
}

/// What the component will run with.
pub struct Component {
    pub manifest: Option<AppManifest>,
    pub env: GuestEnv,
    /// The component's settings, parsed as the component parses them.
    pub config: pfd_core::config::Config,
}

/// Loads the manifest (when present), resolves the guest environment and checks it.
pub fn component(args: &ServeArgs) -> Result<Component> {
    let manifest = if args.manifest.is_file() {
        Some(AppManifest::load(&args.manifest)?)
    } else if args.component.is_some() {
        None
    } else {
        bail!(
            "no manifest at {} (set --manifest / PFD_MANIFEST, or --component / PFD_COMPONENT)",
            args.manifest.display()
        );
    };
    let empty = BTreeMap::new();
    let env = GuestEnv::resolve(
        manifest.as_ref().map(|m| &m.environment).unwrap_or(&empty),
        |k| std::env::var(k).ok(),
        &args.guest_env,
    );
    let vars: BTreeMap<String, String> = env.vars.iter().cloned().collect();
    let config = pfd_core::config::Config::from_vars(&vars)
        .map_err(|e| anyhow::anyhow!("component environment: {e}"))?;
    Ok(Component {
        manifest,
        env,
        config,
    })
}

/// The models `model_loaded{model}` reports on, fixed at start: every folder of the model
/// directory with a model file or a card in it — a folder whose `model.onnx` is missing or broken
/// is exactly what the gauge must show as 0, so the card alone is enough — and the default model,
/// whether or not its folder exists (other folders, such as `scripts/`, are not models).
fn reported_models(models_dir: Option<&Path>, default_model: &str) -> Result<Vec<String>> {
    let mut names = vec![default_model.to_string()];
    if let Some(dir) = models_dir {
        let entries = std::fs::read_dir(dir)
            .with_context(|| format!("reading model directory {}", dir.display()))?;
        for entry in entries.filter_map(|e| e.ok()) {
            let path = entry.path();
            let is_model = [MODEL_FILE, CARD_FILE]
                .iter()
                .any(|f| path.join(f).is_file());
            match entry.file_name().to_str() {
                Some(name) if is_model && !name.starts_with('.') => names.push(name.to_string()),
                _ => {}
            }
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// `pfd-host serve`: runs until a shutdown signal, then drains.
pub async fn run(args: ServeArgs) -> Result<()> {
    let started = Instant::now();
    // Signals are caught from the very start, so that a SIGTERM during a (possibly long, cold)
    // compile still ends in a clean exit 0 rather than the default kill.
    let signals = listen_for_signals()?;

    // What to run: the manifest (if present) and/or an explicit component, and the component's
    // settings, checked now (a bad one stops the start, naming it).
    let Component {
        manifest,
        env: guest_env,
        config: guest_config,
    } = component(&args)?;
    match &manifest {
        Some(m) => {
            for w in &m.warnings {
                warn!(manifest = %args.manifest.display(), "{w}");
            }
        }
        None => {
            warn!(manifest = %args.manifest.display(), "no manifest: serving the component with no files, no environment, route /...");
        }
    }
    let component = match (&args.component, &manifest) {
        (Some(c), _) => c.clone(),
        (None, Some(m)) => default_component(&m.source),
        (None, None) => unreachable!(),
    };
    if !component.is_file() {
        bail!(
            "component {} not found (build it first, or point --component / PFD_COMPONENT at it)",
            component.display()
        );
    }
    let route = manifest
        .as_ref()
        .map(|m| m.route.clone())
        .unwrap_or(Route::Prefix(String::new()));

    if !guest_env.overridden.is_empty() {
        // Names only: values may be secrets.
        info!(keys = ?guest_env.overridden, "guest environment overridden from the host");
    }
    let mounts = manifest
        .as_ref()
        .map(|m| m.mounts.clone())
        .unwrap_or_default();
    let mut preopens = Vec::new();
    for mount in &mounts {
        if let Mount::Dir { host, guest } = mount {
            if !host.is_dir() {
                bail!("files: {} (for {guest}) is not a directory", host.display());
            }
            preopens.push((host.clone(), guest.clone()));
        }
    }
    // Glob `files` entries are copied once into a staging directory mounted at `/`; it lives as long
    // as the server (removed on exit).
    let staging = if mounts.iter().any(|m| matches!(m, Mount::Glob { .. })) {
        let dir = tempfile::Builder::new()
            .prefix("pfd-host-files-")
            .tempdir()
            .context("creating the staging directory for `files` globs")?;
        let n = manifest::stage_globs(&mounts, dir.path())?;
        info!(files = n, dir = %dir.path().display(), "staged files for the guest");
        preopens.push((dir.path().to_path_buf(), "/".to_string()));
        Some(dir)
    } else {
        None
    };
    for (host, guest) in &preopens {
        info!(host = %host.display(), guest = %guest, "guest mount (read-only)");
    }

    // Bind before compiling: a busy port should fail in milliseconds, not after a cold compile.
    let listener = server::bind(args.listen)?;

    // wasi-nn: ONNX Runtime and every graph, loaded once, before the component (the guest's
    // environment says which device serves).
    let model_dir = guest_env
        .vars
        .iter()
        .find(|(k, _)| k == "PFD_MODEL_DIR")
        .map_or("/models", |(_, v)| v.as_str());
    let models_dir = nn::host_dir_for(model_dir, &preopens);
    let model_names = reported_models(models_dir.as_deref(), &guest_config.default_model)?;
    let nn_opts = args.nn.options();
    let nn =
        tokio::task::spawn_blocking(move || nn::setup(models_dir.as_deref(), &nn_opts)).await??;
    let mut env = guest_env.vars;
    // The truth, whatever the manifest or the environment said.
    env.retain(|(k, _)| k != "PFD_NN_DEVICE");
    if let Some(device) = nn.device {
        env.push(("PFD_NN_DEVICE".to_string(), device.as_str().to_string()));
        env.sort();
    }

    let opts = RuntimeOptions {
        max_instances: args.max_concurrency,
        max_instance_memory: args.max_instance_memory_bytes,
        cache_dir: args.effective_cache_dir(),
        slot_reuse: args.slot_reuse(),
    };
    info!(component = %component.display(), cache_dir = ?opts.cache_dir, "loading component");
    let setup = GuestSetup {
        env,
        preopens,
        nn: nn.registry,
    };
    let load_path = component.clone();
    let loading = tokio::task::spawn_blocking(move || Runtime::load(&load_path, setup, &opts));
    let (rt, report) = tokio::select! {
        loaded = loading => loaded??,
        _ = shutdown_requested(signals.clone(), 1) => {
            info!("shutdown requested during startup; exiting");
            return Ok(());
        }
    };
    let (how, artifact) = match &report.source {
        CompileSource::CacheHit(p) => ("cache hit", p.display().to_string()),
        CompileSource::CompiledAndCached(p) => ("compiled and cached", p.display().to_string()),
        CompileSource::Compiled(why) => ("compiled (not cached)", why.clone().unwrap_or_default()),
    };
    info!(
        component = %component.display(),
        wasm_bytes = report.wasm_bytes,
        key = %&report.key[..16],
        how,
        artifact = %artifact,
        compile_ms = report.compile_time.as_millis() as u64,
        link_ms = report.link_time.as_millis() as u64,
        pooling = report.pooling,
        "component ready"
    );

    let cfg = server::ServerConfig {
        max_body_bytes: args.max_body_bytes,
        max_response_bytes: args.max_response_bytes,
        max_connections_per_client: args.max_connections_per_client,
        request_timeout: args.request_timeout(),
        queue_timeout: args.queue_timeout(),
        max_concurrency: args.max_concurrency,
        body_timeout: args.body_timeout(),
        max_inflight_body_bytes: args.max_inflight_body_bytes,
        drain_delay: args.drain_delay(),
        shutdown_grace: args.shutdown_grace(),
        api_keys: guest_config.api_keys.clone(),
        rate_limiter: args
            .rate_limit_config()
            .map(ratelimit::RateLimiter::new)
            .transpose()?
            .map(Arc::new),
        serve_metrics: args.metrics == Switch::On,
        models: model_names,
        model_probe_interval: args.model_probe_interval(),
    };
    if cfg.max_inflight_body_bytes < cfg.max_body_bytes {
        anyhow::bail!(
            "--max-inflight-body-bytes ({}) must be at least --max-body-bytes ({}): the largest body could never be received",
            cfg.max_inflight_body_bytes,
            cfg.max_body_bytes
        );
    }
    if let Some(limiter) = &cfg.rate_limiter {
        let c = limiter.config();
        info!(rate_per_s = c.rate, burst = c.burst.get(), by = ?c.by, trust_forwarded_for = c.trust_forwarded_for, "rate limiting on");
    }
    info!(
        listen = %listener.local_addr()?,
        route = %route.as_manifest_str(),
        max_concurrency = cfg.max_concurrency,
        max_body_bytes = cfg.max_body_bytes,
        request_timeout_ms = cfg.request_timeout.as_millis() as u64,
        startup_ms = started.elapsed().as_millis() as u64,
        "listening on http://{}",
        listener.local_addr()?
    );

    let rt = Arc::new(rt);
    let serving = server::serve(
        listener,
        rt.clone(),
        route,
        cfg,
        Arc::new(metrics::Metrics::new()),
        shutdown_requested(signals.clone(), 1),
    );
    tokio::pin!(serving);
    // A second signal while draining ends the process at once.
    tokio::select! {
        r = &mut serving => r?,
        _ = shutdown_requested(signals, 2) => {
            warn!("exiting without waiting for in-flight requests");
            return Ok(());
        }
    }
    drop(staging);
    info!("stopped");
    Ok(())
}

/// The component served when `--component` is not given: the manifest's `source`, except that the
/// portable build `<dir>/pfd-edge.wasm` gives way to the wasi-nn build `<dir>/pfd-edge-nn.wasm` when
/// that exists. Why: spin.toml names the portable build because Spin has no wasi:nn and a
/// component's imports cannot be optional; pfd-host provides wasi:nn, so it prefers the build that
/// runs the model in the host's ONNX Runtime (which still falls back to tract in the guest when a
/// graph is missing).
fn default_component(source: &std::path::Path) -> std::path::PathBuf {
    if source.file_name().is_some_and(|n| n == "pfd-edge.wasm") {
        let nn = source.with_file_name("pfd-edge-nn.wasm");
        if nn.is_file() {
            info!(manifest_source = %source.display(), component = %nn.display(), "serving the wasi-nn build next to the manifest's portable build (--component overrides)");
            return nn;
        }
    }
    source.to_path_buf()
}

/// Installs SIGTERM/SIGINT handlers now and counts the signals received (0, 1 = drain, 2 = stop).
fn listen_for_signals() -> Result<tokio::sync::watch::Receiver<u32>> {
    let (tx, rx) = tokio::sync::watch::channel(0u32);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        tokio::spawn(async move {
            let mut count = 0;
            loop {
                let name = tokio::select! {
                    Some(()) = term.recv() => "SIGTERM",
                    Some(()) = int.recv() => "SIGINT",
                    else => break,
                };
                count += 1;
                if count == 1 {
                    info!(signal = name, "shutdown requested");
                } else {
                    warn!(signal = name, "second shutdown signal");
                }
                if tx.send(count).is_err() {
                    break;
                }
            }
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        let mut count = 0;
        while tokio::signal::ctrl_c().await.is_ok() {
            count += 1;
            info!("shutdown requested (Ctrl-C)");
            if tx.send(count).is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

/// Resolves once at least `level` shutdown signals have arrived.
async fn shutdown_requested(mut signals: tokio::sync::watch::Receiver<u32>, level: u32) {
    if signals.wait_for(|&n| n >= level).await.is_err() {
        // The signal task is gone (cannot happen while the runtime lives): never resolve.
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_loaded_reports_model_folders_and_the_default_even_when_broken() {
        let dir = std::env::temp_dir().join(format!("pfd-reported-{}", std::process::id()));
        for (folder, file) in [
            ("whole", Some(MODEL_FILE)),
            ("card-only", Some(CARD_FILE)),
            ("scripts", Some("generate.py")),
            (".hidden", Some(MODEL_FILE)),
            ("empty", None),
        ] {
            std::fs::create_dir_all(dir.join(folder)).unwrap();
            if let Some(f) = file {
                std::fs::write(dir.join(folder).join(f), b"x").unwrap();
            }
        }
        let names = reported_models(Some(&dir), "default-gone").unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(names, ["card-only", "default-gone", "whole"]);
        assert_eq!(reported_models(None, "m").unwrap(), ["m"]);
    }
}
