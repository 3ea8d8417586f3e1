//! Command line and configuration: every flag is also an environment variable.
//!
//! Precedence, highest first: **flag > environment variable > `.env` file > built-in default**.
//! clap reads the flag and then the environment variable named in `env = …`; the `.env` file is
//! loaded into the process environment *before* parsing, without overriding variables that are
//! already set ([`load_dotenv`]), which gives exactly that order with one mechanism. Twelve-factor
//! style: a container sets `PFD_*` variables, a developer keeps them in `.env`, a one-off run passes
//! flags.
//!
//! Every limit is explicit here, with its default and the reason for it, so that `--help` is the
//! reference for operators. Sizes accept `K`/`M`/`G` (powers of 1000) and `KiB`/`MiB`/`GiB`
//! (powers of 1024) suffixes; durations are milliseconds.
//!
//! `PFD_*` is pfd-host's namespace: a name that is neither a pfd-host flag's variable nor one of
//! the component's settings ([`pfd_core::config::SETTINGS`]) is a typo. In `.env` — a file that
//! exists only to configure pfd-host — it stops the start with the name and the closest known
//! one; in the process environment, which scripts and shells share, it is a warning
//! ([`unknown_settings`]). `pfd-host config` prints what `serve` would run with, and where each
//! value came from ([`crate::effective`]).

use crate::nn::{DeviceRequest, NnOptions};
use crate::ratelimit::{RateLimitBy, RateLimitConfig};
use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default listen address: loopback only, so a bare `pfd-host serve` never exposes the service;
/// containers set `PFD_LISTEN=0.0.0.0:3000`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";

/// Serve the pfd-edge component (a `wasi:http/proxy` component described by a Spin manifest).
#[derive(Debug, Parser)]
#[command(name = "pfd-host", version, about, propagate_version = true)]
pub struct Cli {
    /// Log format: human-readable lines or one JSON object per line. Filter with RUST_LOG
    /// (default `info`).
    #[arg(long, env = "PFD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human, global = true)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    Human,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Subcommands. `serve` is the server; the others are tools around it.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the component over HTTP.
    Serve(ServeArgs),
    /// GET a health URL; exit 0 on HTTP 200, 1 otherwise (for container HEALTHCHECKs).
    Healthcheck(HealthcheckArgs),
    /// Build step: pre-initialise the component's core module with wizer (used by
    /// `cargo xtask build-component`).
    Preinit(PreinitArgs),
    /// Load every model with ONNX Runtime on the requested device, run its reference vectors,
    /// compare the logits with CPU (and with the committed references) and print latencies.
    /// Exit 0 when all match.
    NnCheck(NnCheckArgs),
    /// Benchmark `/predict` and `/predict/batch` through pfd-host — wasi-nn → ONNX Runtime vs
    /// tract in wasm — against in-process ONNX Runtime on the same inputs; writes a Markdown table
    /// and an SVG plot.
    Bench(BenchArgs),
    /// Model tooling: `model validate` (structure + reference vectors on every backend) and
    /// `model compare` (sizes, agreement, latency of two models).
    Model(crate::model_tools::ModelArgs),
    /// Print the configuration `serve` would run with (same flags, environment and `.env`):
    /// every setting, its value (secrets redacted) and where it came from; the component's
    /// environment too. Exit 1, naming the setting, when one is invalid.
    Config(ConfigArgs),
}

/// `pfd-host config`.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// Output: aligned `NAME=value  # source` lines, or one JSON object.
    #[arg(long, value_enum, default_value_t = ConfigFormat::Text)]
    pub format: ConfigFormat,

    #[command(flatten)]
    pub serve: ServeArgs,
}

/// `pfd-host config --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConfigFormat {
    Text,
    Json,
}

/// `pfd-host preinit`.
#[derive(Debug, Clone, Args)]
pub struct PreinitArgs {
    /// The core module (wasm32-wasip1 reactor) exporting `wizer-initialize`.
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write the pre-initialised core module.
    #[arg(long)]
    pub output: PathBuf,
    /// The manifest whose mounts and environment the initialisation sees.
    #[arg(long, default_value = "spin.toml")]
    pub manifest: PathBuf,
}

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
    /// requests wait for a slot, up to the queue timeout.
    #[arg(long, env = "PFD_MAX_CONCURRENCY", default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=10_000))]
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

    /// Linear memory each freed instance slot keeps resident, reset with `memset` (only the
    /// pages the request dirtied, where the kernel has PAGEMAP_SCAN) instead of `madvise`.
    /// Why: after an `madvise` reset the next request in the slot faults every page back in, and
    /// each copy-on-write fault in a multi-threaded process costs a TLB-shootdown IPI to the
    /// other cores — ~48 % of the server's CPU under load before this setting. Measured on 2
    /// cores (scripts/load_bench.py, same run): `/predict` CPU per request 0.62–0.81x, OIP binary
    /// 0.64–0.70x, `/health` 0.62–0.92x of the `madvise` reset. Why 8 MiB: 4, 8 and 16 MiB
    /// measured alike for `/predict` (~5–8 MiB of guest memory dirtied), and the cost is RSS: every
    /// slot that has served keeps up to this much, so the bound is this × the peak number of
    /// concurrent instances (`--max-concurrency`). Pages beyond it (a `/predict/batch` grows a
    /// memory to hundreds of MB) are still returned to the OS. 0: always `madvise`.
    #[arg(long, env = "PFD_MEMORY_KEEP_RESIDENT", default_value = "8MiB", value_parser = parse_size_or_zero)]
    pub memory_keep_resident: u64,

    /// Table memory each freed slot keeps resident (reset with `memset`, like linear memory).
    /// Why 1 MiB: the component's function table (tens of thousands of 8-byte entries, filled
    /// lazily) otherwise faults back in on every request.
    #[arg(long, env = "PFD_TABLE_KEEP_RESIDENT", default_value = "1MiB", value_parser = parse_size_or_zero)]
    pub table_keep_resident: u64,

    /// Use Linux's PAGEMAP_SCAN ioctl (kernel ≥ 6.7) to reset only the pages a request dirtied
    /// (`auto`: when the kernel has it). Why: without it, a kept-resident slot is reset by
    /// `memset` of its whole kept range, touched or not.
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

/// wasi-nn / ONNX Runtime settings (shared by `serve`, `nn-check` and `bench`).
#[derive(Debug, Clone, Args)]
pub struct NnArgs {
    /// Device for the wasi-nn graphs: `cuda` uses ONNX Runtime's CUDA execution provider and fails
    /// the start if it is unavailable; `auto` tries CUDA and falls back to CPU with a warning. The
    /// device that actually serves is logged and given to the guest as PFD_NN_DEVICE.
    #[arg(long, env = "PFD_DEVICE", value_enum, default_value_t = DeviceRequest::Auto)]
    pub device: DeviceRequest,

    /// Serve wasi-nn graphs (`on`), or none (`off`: `load-by-name` answers not-found and the
    /// guest runs its models with tract).
    #[arg(long, env = "PFD_NN", value_enum, default_value_t = Switch::On)]
    pub nn: Switch,

    /// Only these model folders become wasi-nn graphs (comma-separated; default: every
    /// `<models>/<name>/model.onnx`).
    #[arg(long, env = "PFD_NN_MODELS", value_delimiter = ',')]
    pub nn_models: Option<Vec<String>>,

    /// ONNX Runtime sessions per graph (concurrent runs of one graph). Default: the number of
    /// cores, so every core can run a request without oversubscription.
    #[arg(long, env = "PFD_NN_SESSIONS", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub nn_sessions: Option<u32>,

    /// Intra-op threads per session. Why 1: with a session per core, requests already use every
    /// core; a one-thread run of this model (~0.1 ms) would lose more to thread synchronisation
    /// than it gains. Raise it for big models at low concurrency.
    #[arg(long, env = "PFD_NN_INTRA_THREADS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub nn_intra_threads: u32,

    /// The ONNX Runtime shared library (libonnxruntime.so*). Default: ORT_DYLIB_PATH, else the
    /// venv's onnxruntime wheel ($PFD_VENV or ~/.cache/pfd-edge/venv), else the system loader.
    #[arg(long, env = "PFD_ORT_LIB")]
    pub ort_lib: Option<PathBuf>,
}

impl NnArgs {
    /// The options of `crate::nn::setup`.
    pub fn options(&self) -> NnOptions {
        NnOptions {
            enabled: self.nn == Switch::On,
            device: self.device,
            models: self.nn_models.clone(),
            sessions: self
                .nn_sessions
                .map_or_else(crate::nn::available_cores, |n| n as usize),
            intra_threads: self.nn_intra_threads as usize,
            ort_lib: self.ort_lib.clone(),
        }
    }
}

/// `--nn on|off`, `--metrics on|off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

/// `--pagemap-scan auto|on|off`: use a kernel feature when present, always, or never.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Tristate {
    Auto,
    On,
    Off,
}

/// `pfd-host nn-check`.
#[derive(Debug, Clone, Args)]
pub struct NnCheckArgs {
    /// The model directory (`<name>/model.onnx`, `reference.json`, `reference_inputs.f32`).
    #[arg(long, env = "PFD_MODELS_DIR", default_value = "models")]
    pub models_dir: PathBuf,

    /// Timed runs per measurement (after a warm-up).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub iterations: u32,

    /// Relative tolerance of the logits against CPU and the references. Default: each model's
    /// own, recorded in its `reference.json` (an int8 model's is looser than an fp32 one's).
    #[arg(long)]
    pub rtol: Option<f64>,

    /// Absolute tolerance of the logits against CPU and the references. Default: each model's
    /// own, from its `reference.json`.
    #[arg(long)]
    pub atol: Option<f64>,

    #[command(flatten)]
    pub nn: NnArgs,
}

/// `pfd-host bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// `/predict` requests per measured path (each phase: sequential latency, then concurrent
    /// throughput).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub requests: u32,

    /// `/predict/batch` requests per measured path (each carries `--batch` signals, ~35 MB of
    /// JSON at 32).
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch_requests: u32,

    /// Signals per `/predict/batch` request.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=128))]
    pub batch: u32,

    /// Clients in flight in the throughput phase (default: the number of cores).
    #[arg(long)]
    pub concurrency: Option<u32>,

    /// Unmeasured requests before each measurement.
    #[arg(long, default_value_t = 20)]
    pub warmup: u32,

    /// Where the table (`bench.md`), the raw results (`bench.json`) and the plot (`bench.svg`) go.
    #[arg(long, default_value = "target/bench")]
    pub out: PathBuf,

    /// Manifest the servers are started with (its files and environment).
    #[arg(long, default_value = "spin.toml")]
    pub manifest: PathBuf,

    /// The wasi-nn component (served with ONNX Runtime).
    #[arg(long, default_value = "build/pfd-edge-nn.wasm")]
    pub nn_component: PathBuf,

    /// The tract-in-wasm component (default: the portable build; the wasi-nn build with
    /// `--nn off` when it is missing).
    #[arg(long, default_value = "build/pfd-edge.wasm")]
    pub tract_component: PathBuf,

    /// The model (folder under the model directory) whose reference vectors are the inputs.
    #[arg(long, default_value = "bearing-lstm")]
    pub model: String,

    /// The model directory.
    #[arg(long, default_value = "models")]
    pub models_dir: PathBuf,

    /// Only measure the native floor of this `/predict` JSON body (the guest's decoder compiled
    /// natively, then the in-process ONNX Runtime call; and the OIP binary equivalent) and print
    /// it as JSON — what `scripts/load_bench.py` divides the served paths by. No server starts.
    #[arg(long, value_name = "BODY")]
    pub floor: Option<PathBuf>,

    /// Seconds each floor measurement runs.
    #[arg(long, default_value_t = 5.0)]
    pub floor_seconds: f64,

    #[command(flatten)]
    pub nn: NnArgs,
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

/// `$XDG_CACHE_HOME/pfd-edge/compiled`, else `$HOME/.cache/pfd-edge/compiled`.
pub fn default_cache_dir(
    xdg_cache_home: Option<PathBuf>,
    home: Option<PathBuf>,
) -> Option<PathBuf> {
    let base = xdg_cache_home
        .filter(|p| p.is_absolute())
        .or_else(|| home.map(|h| h.join(".cache")))?;
    Some(base.join("pfd-edge").join("compiled"))
}

/// `pfd-host healthcheck`.
#[derive(Debug, Clone, Args)]
pub struct HealthcheckArgs {
    /// URL to GET (http only). Default: `/health/ready` on the port of PFD_LISTEN (or 3000), via
    /// loopback.
    #[arg(long, env = "PFD_HEALTHCHECK_URL")]
    pub url: Option<String>,

    /// Give up after this long (connect + response).
    #[arg(long, env = "PFD_HEALTHCHECK_TIMEOUT_MS", default_value_t = 3_000)]
    pub timeout_ms: u64,
}

impl HealthcheckArgs {
    /// The URL to probe: `--url`, else derived from `PFD_LISTEN`, so a container that moves the
    /// port needs no second setting.
    pub fn effective_url(&self) -> String {
        if let Some(url) = &self.url {
            return url.clone();
        }
        let listen = std::env::var("PFD_LISTEN").unwrap_or_else(|_| DEFAULT_LISTEN.to_string());
        default_health_url(&listen)
    }
}

/// `http://<loopback>:<port>/health/ready` for a listen address; an unspecified address
/// (0.0.0.0 / ::) is probed on loopback.
pub fn default_health_url(listen: &str) -> String {
    match listen.parse::<SocketAddr>() {
        Ok(addr) => {
            let host = match addr {
                SocketAddr::V4(a) if a.ip().is_unspecified() => "127.0.0.1".to_string(),
                SocketAddr::V4(a) => a.ip().to_string(),
                SocketAddr::V6(a) if a.ip().is_unspecified() => "[::1]".to_string(),
                SocketAddr::V6(a) => format!("[{}]", a.ip()),
            };
            format!("http://{host}:{}/health/ready", addr.port())
        }
        Err(_) => "http://127.0.0.1:3000/health/ready".to_string(),
    }
}

/// What [`load_dotenv`] loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DotEnv {
    /// The file, when one was found.
    pub path: Option<PathBuf>,
    /// The variables it set (those not already in the environment), in file order.
    pub applied: Vec<String>,
}

/// Loads `.env` from the working directory (or `path`) into the process environment without
/// overriding variables already set. A malformed `.env` is an error (a silently ignored typo in a
/// secret is worse than a failed start).
pub fn load_dotenv(path: Option<&Path>) -> Result<DotEnv> {
    let iter = match path {
        Some(p) => dotenvy::from_path_iter(p).map(|i| (p.to_path_buf(), i)),
        None => dotenvy::dotenv_iter().map(|i| {
            let p = std::env::current_dir()
                .map(|d| d.join(".env"))
                .unwrap_or_else(|_| PathBuf::from(".env"));
            (p, i)
        }),
    };
    let (file, items) = match iter {
        Ok(found) => found,
        Err(e) if e.not_found() => return Ok(DotEnv::default()),
        Err(e) => return Err(e).context("cannot load .env"),
    };
    let mut applied = Vec::new();
    for item in items {
        let (key, value) = item.with_context(|| format!("cannot load {}", file.display()))?;
        if std::env::var_os(&key).is_none() {
            std::env::set_var(&key, value);
            applied.push(key);
        }
    }
    Ok(DotEnv {
        path: Some(file),
        applied,
    })
}

/// Variables pfd-host itself reads that are not flags: where ONNX Runtime's wheel lives.
const NON_FLAG_VARIABLES: &[&str] = &["PFD_VENV"];

/// Every `PFD_*` name pfd-host knows: its flags' variables (all subcommands), the component's
/// settings, and [`NON_FLAG_VARIABLES`].
pub fn known_settings() -> Vec<String> {
    fn walk(cmd: &clap::Command, out: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            if let Some(env) = arg.get_env() {
                out.push(env.to_string_lossy().into_owned());
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut names = Vec::new();
    walk(&<Cli as clap::CommandFactory>::command(), &mut names);
    names.extend(
        pfd_core::config::SETTINGS
            .iter()
            .map(|s| s.name.to_string()),
    );
    names.extend(NON_FLAG_VARIABLES.iter().map(|s| s.to_string()));
    names.sort();
    names.dedup();
    names
}

/// An unknown `PFD_*` variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownSetting {
    pub name: String,
    /// Set by `.env` (an error) rather than the process environment (a warning).
    pub from_dotenv: bool,
    /// The closest known name, when one is close.
    pub suggestion: Option<String>,
}

impl std::fmt::Display for UnknownSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let origin = if self.from_dotenv {
            ".env"
        } else {
            "the environment"
        };
        write!(f, "unknown setting {} (from {origin})", self.name)?;
        match &self.suggestion {
            Some(s) => write!(f, "; did you mean {s}?"),
            None => write!(f, "; `pfd-host config` lists the settings"),
        }
    }
}

/// The `PFD_*` names among `vars` that pfd-host does not know (see the module docs).
pub fn unknown_settings<'a>(
    vars: impl IntoIterator<Item = &'a str>,
    dotenv: &DotEnv,
) -> Vec<UnknownSetting> {
    let known = known_settings();
    vars.into_iter()
        .filter(|v| v.starts_with("PFD_") && !known.iter().any(|k| k == v))
        .map(|name| UnknownSetting {
            name: name.to_string(),
            from_dotenv: dotenv.applied.iter().any(|a| a == name),
            suggestion: known
                .iter()
                .map(|k| (edit_distance(k, name), k))
                .filter(|(d, _)| *d <= 3)
                .min()
                .map(|(_, k)| k.clone()),
        })
        .collect()
}

/// Levenshtein distance (for "did you mean").
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Parses a rate in requests per second: 0 (off) or a positive finite number up to 1e6.
fn parse_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=1e6).contains(&v) => Ok(v),
        Ok(v) => Err(format!(
            "{v} is not a rate (0 = off, or requests per second up to 1e6)"
        )),
        Err(e) => Err(format!("{s:?}: {e}")),
    }
}

/// Parses `KEY=VALUE`.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

fn parse_nonzero_ms(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(0) => Err("must be greater than 0".into()),
        Ok(v) => Ok(v),
        Err(e) => Err(format!("{s:?}: {e}")),
    }
}

/// Parses a byte size: `1048576`, `512K`, `256MiB`, `1GiB`, `1.5G`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    parse_size_inner(s).map_err(|e| format!("{e:#}"))
}

/// A size where 0 means "none" (the keep-resident settings).
pub fn parse_size_or_zero(s: &str) -> Result<u64, String> {
    if s.trim()
        .trim_end_matches(|c: char| c.is_ascii_alphabetic())
        .parse::<f64>()
        == Ok(0.0)
    {
        return Ok(0);
    }
    parse_size(s)
}

fn parse_size_inner(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        bail!("{s:?} is not a size (e.g. 1048576, 512KiB, 256MiB, 1GiB)");
    }
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "ki" | "kib" => 1 << 10,
        "mi" | "mib" => 1 << 20,
        "gi" | "gib" => 1 << 30,
        other => bail!("{s:?}: unknown size unit {other:?} (use K, M, G, KiB, MiB or GiB)"),
    };
    let value: f64 = num
        .parse()
        .with_context(|| format!("{s:?} is not a size"))?;
    let bytes = value * mult as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        bail!("{s:?} is out of range");
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Tests touching the process environment run one at a time.
    static ENV_LOCK: Mutex<()> = Mutex::new(());

    const VARS: &[&str] = &[
        "PFD_LISTEN",
        "PFD_MANIFEST",
        "PFD_MAX_BODY_BYTES",
        "PFD_REQUEST_TIMEOUT_MS",
        "PFD_MAX_CONCURRENCY",
        "PFD_LOG_FORMAT",
        "PFD_CACHE_DIR",
        "PFD_NO_CACHE",
        "PFD_COMPONENT",
        // Not PFD_ORT_LIB: the wasi-nn tests in this binary read it to find ONNX Runtime.
        "PFD_DEVICE",
        "PFD_NN",
        "PFD_NN_MODELS",
        "PFD_NN_SESSIONS",
        "PFD_NN_INTRA_THREADS",
        "PFD_RATE_LIMIT",
        "PFD_RATE_LIMIT_BURST",
        "PFD_RATE_LIMIT_BY",
        "PFD_TRUST_FORWARDED_FOR",
        "PFD_METRICS",
        "PFD_MEMORY_KEEP_RESIDENT",
        "PFD_TABLE_KEEP_RESIDENT",
        "PFD_PAGEMAP_SCAN",
    ];

    fn clear() {
        for v in VARS {
            std::env::remove_var(v);
        }
    }

    fn serve(args: &[&str]) -> (Cli, ServeArgs) {
        let cli = Cli::try_parse_from(["pfd-host"].iter().chain(args)).unwrap();
        let Command::Serve(s) = &cli.command else {
            panic!("not serve")
        };
        let s = s.clone();
        (cli, s)
    }

    #[test]
    fn defaults() {
        let _g = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        clear();
        let (cli, s) = serve(&["serve"]);
        assert_eq!(cli.log_format, LogFormat::Human);
        assert_eq!(s.listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(s.manifest, PathBuf::from("spin.toml"));
        assert_eq!(s.component, None);
        assert_eq!(s.max_body_bytes, 256 << 20);
        assert_eq!(s.request_timeout(), Duration::from_secs(30));
        assert_eq!(s.max_concurrency, 128);
        assert_eq!(s.max_instance_memory_bytes, 1 << 30);
        let reuse = s.slot_reuse();
        assert_eq!(reuse.memory_keep_resident, 8 << 20);
        assert_eq!(reuse.table_keep_resident, 1 << 20);
        assert_eq!(reuse.pagemap_scan, None);
        assert_eq!(parse_size_or_zero("0"), Ok(0));
        assert_eq!(parse_size_or_zero("0MiB"), Ok(0));
        assert_eq!(parse_size_or_zero("2MiB"), Ok(2 << 20));
        assert!(parse_size("0").is_err(), "other sizes stay non-zero");
        assert!(!s.no_cache);
        let nn = s.nn.options();
        assert!(nn.enabled);
        assert_eq!(nn.device, DeviceRequest::Auto);
        assert_eq!(nn.models, None);
        assert_eq!(nn.sessions, crate::nn::available_cores());
        assert_eq!(nn.intra_threads, 1);
    }

    #[test]
    fn nn_settings_from_flags_and_environment() {
        let _g = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        clear();
        std::env::set_var("PFD_DEVICE", "cuda");
        std::env::set_var("PFD_NN", "off");
        std::env::set_var("PFD_NN_MODELS", "a,b");
        std::env::set_var("PFD_NN_SESSIONS", "3");
        let (_, s) = serve(&["serve", "--nn-intra-threads", "2"]);
        let nn = s.nn.options();
        assert!(!nn.enabled);
        assert_eq!(nn.device, DeviceRequest::Cuda);
        assert_eq!(nn.models, Some(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(nn.sessions, 3);
        assert_eq!(nn.intra_threads, 2);
        let (_, s) = serve(&["serve", "--device", "cpu", "--nn", "on"]);
        assert_eq!(s.nn.options().device, DeviceRequest::Cpu);
        assert!(s.nn.options().enabled);
        clear();
        for bad in [
            &["pfd-host", "serve", "--device", "gpu"][..],
            &["pfd-host", "serve", "--nn-sessions", "0"],
            &["pfd-host", "serve", "--nn", "maybe"],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn flag_beats_env_beats_dotenv_beats_default() {
        let _g = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        clear();
        let dir = tempfile::tempdir().unwrap();
        let dotenv = dir.path().join(".env");
        std::fs::write(
            &dotenv,
            "PFD_LISTEN=127.0.0.1:4001\nPFD_MAX_CONCURRENCY=7\nPFD_REQUEST_TIMEOUT_MS=1111\nPFD_LOG_FORMAT=json\n",
        )
        .unwrap();
        // The process environment already has two of them: .env must not override those.
        std::env::set_var("PFD_LISTEN", "127.0.0.1:4002");
        std::env::set_var("PFD_MAX_CONCURRENCY", "9");
        let loaded = load_dotenv(Some(&dotenv)).unwrap();
        assert_eq!(loaded.path, Some(dotenv.clone()));
        assert_eq!(
            loaded.applied,
            ["PFD_REQUEST_TIMEOUT_MS", "PFD_LOG_FORMAT"],
            "only what the environment did not set"
        );

        let (cli, s) = serve(&["serve", "--listen", "127.0.0.1:4003"]);
        assert_eq!(s.listen, "127.0.0.1:4003".parse().unwrap(), "flag wins");
        assert_eq!(s.max_concurrency, 9, "env beats .env");
        assert_eq!(s.request_timeout_ms, 1111, ".env beats default");
        assert_eq!(
            cli.log_format,
            LogFormat::Json,
            ".env applies to global flags"
        );
        assert_eq!(s.max_body_bytes, 256 << 20, "default");

        let (_, s) = serve(&["serve"]);
        assert_eq!(
            s.listen,
            "127.0.0.1:4002".parse().unwrap(),
            "env beats .env"
        );
        clear();
    }

    #[test]
    fn invalid_settings_fail_naming_the_setting() {
        let _g = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        clear();
        std::env::set_var("PFD_MAX_BODY_BYTES", "lots");
        let err = Cli::try_parse_from(["pfd-host", "serve"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("max-body-bytes") && err.contains("lots"),
            "{err}"
        );
        clear();
        let err = Cli::try_parse_from(["pfd-host", "serve", "--request-timeout-ms", "0"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("request-timeout-ms"), "{err}");
        let err = Cli::try_parse_from(["pfd-host", "serve", "--max-concurrency", "0"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("max-concurrency"), "{err}");
        let err = Cli::try_parse_from(["pfd-host", "serve", "--env", "=x"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("KEY=VALUE"), "{err}");
    }

    #[test]
    fn missing_dotenv_is_fine_malformed_is_not() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            load_dotenv(Some(&dir.path().join("nope.env"))).unwrap(),
            DotEnv::default()
        );
        let bad = dir.path().join("bad.env");
        std::fs::write(&bad, "NOT A VALID LINE WITH 'QUOTE\n").unwrap();
        assert!(load_dotenv(Some(&bad)).is_err());
    }

    #[test]
    fn rate_limit_settings() {
        let _g = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        clear();
        let (_, s) = serve(&["serve"]);
        assert_eq!(s.rate_limit_config(), None, "off by default");
        assert_eq!(s.metrics, Switch::On);
        let (_, s) = serve(&["serve", "--rate-limit", "2.5"]);
        let c = s.rate_limit_config().unwrap();
        assert_eq!(
            (c.rate, c.burst.get()),
            (2.5, 3),
            "burst: one second's worth"
        );
        assert_eq!(c.by, RateLimitBy::Client);
        assert!(!c.trust_forwarded_for);
        std::env::set_var("PFD_RATE_LIMIT", "0.1");
        std::env::set_var("PFD_RATE_LIMIT_BY", "api-key");
        std::env::set_var("PFD_TRUST_FORWARDED_FOR", "true");
        let (_, s) = serve(&["serve", "--rate-limit-burst", "20"]);
        let c = s.rate_limit_config().unwrap();
        assert_eq!((c.rate, c.burst.get()), (0.1, 20));
        assert_eq!(c.by, RateLimitBy::ApiKey);
        assert!(c.trust_forwarded_for);
        clear();
        for bad in [
            &["pfd-host", "serve", "--rate-limit=-1"][..],
            &["pfd-host", "serve", "--rate-limit", "fast"],
            &["pfd-host", "serve", "--rate-limit", "inf"],
            &["pfd-host", "serve", "--rate-limit-burst", "0"],
            &["pfd-host", "serve", "--rate-limit-by", "user"],
        ] {
            let err = Cli::try_parse_from(bad).unwrap_err().to_string();
            assert!(err.contains("rate-limit"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn unknown_pfd_names_are_reported_with_a_suggestion() {
        let dotenv = DotEnv {
            path: None,
            applied: vec!["PFD_MAX_BODY_BYTE".into()],
        };
        let found = unknown_settings(
            [
                "PFD_MAX_BODY_BYTE",
                "PFD_LISTN",
                "PFD_API_KEY",
                "PFD_HEALTHCHECK_URL",
                "PFD_VENV",
                "PFD_COMPLETELY_ELSE",
                "HOME",
            ],
            &dotenv,
        );
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[0].name, "PFD_MAX_BODY_BYTE");
        assert!(found[0].from_dotenv);
        assert_eq!(found[0].suggestion.as_deref(), Some("PFD_MAX_BODY_BYTES"));
        assert_eq!(
            found[1].to_string(),
            "unknown setting PFD_LISTN (from the environment); did you mean PFD_LISTEN?"
        );
        assert_eq!(found[2].suggestion, None);
        assert!(known_settings().contains(&"PFD_RATE_LIMIT".to_string()));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_size("256MiB").unwrap(), 256 << 20);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("1 gib").unwrap(), 1 << 30);
        assert_eq!(parse_size("512K").unwrap(), 512_000);
        assert_eq!(parse_size("1.5G").unwrap(), 1_500_000_000);
        for bad in ["", "MiB", "12XB", "0", "-1", "1e400"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cache_dir_and_health_url_defaults() {
        assert_eq!(
            default_cache_dir(Some("/xdg".into()), Some("/home/u".into())),
            Some(PathBuf::from("/xdg/pfd-edge/compiled"))
        );
        assert_eq!(
            default_cache_dir(Some("relative".into()), Some("/home/u".into())),
            Some(PathBuf::from("/home/u/.cache/pfd-edge/compiled"))
        );
        assert_eq!(default_cache_dir(None, None), None);
        assert_eq!(
            default_health_url("0.0.0.0:8080"),
            "http://127.0.0.1:8080/health/ready"
        );
        assert_eq!(
            default_health_url("[::]:8080"),
            "http://[::1]:8080/health/ready"
        );
        assert_eq!(
            default_health_url("10.0.0.5:3000"),
            "http://10.0.0.5:3000/health/ready"
        );
    }
}
