//! `pfd-host`: the native host of the pfd-edge component.
//!
//! A small, purpose-built `wasmtime serve`: it reads the same `spin.toml` that `spin up` reads,
//! compiles the component once (and caches the machine code on disk), pre-instantiates it, and
//! serves every HTTP request from a fresh instance on the pooling allocator, under explicit limits —
//! body size, concurrency, a per-request deadline, memory per instance — with request-id-tagged
//! logs and a graceful shutdown. See `config` (flags and environment), `manifest` (spin.toml),
//! `runtime` (wasmtime) and `server` (hyper) for the design of each part.

mod allocator;
mod bench;
mod bench_floor;
mod body;
mod config;
mod effective;
mod healthcheck;
mod manifest;
mod metrics;
mod model_tools;
mod nn;
mod preinit;
mod ratelimit;
mod runtime;
mod server;

use anyhow::{bail, Context, Result};
use clap::{CommandFactory, FromArgMatches};
use config::{Cli, Command, DotEnv, LogFormat, ServeArgs};
use manifest::{Mount, Route};
use runtime::{CompileSource, GuestSetup, Runtime, RuntimeOptions};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn};

fn main() -> ExitCode {
    allocator::limit_arenas();
    // `.env` first, so that clap sees its values as environment variables (which flags override,
    // and which never override the real environment).
    let dotenv = config::load_dotenv(None);
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    init_logging(cli.log_format);
    let dotenv = match dotenv {
        Ok(d) => {
            if let Some(path) = &d.path {
                info!(path = %path.display(), applied = ?d.applied, "loaded .env");
            }
            d
        }
        Err(e) => {
            tracing::error!("{e:#}");
            return ExitCode::FAILURE;
        }
    };
    if matches!(cli.command, Command::Serve(_) | Command::Config(_)) {
        let names: Vec<String> = std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .collect();
        let unknown = config::unknown_settings(names.iter().map(String::as_str), &dotenv);
        for u in unknown.iter().filter(|u| !u.from_dotenv) {
            warn!("{u}");
        }
        if let Some(u) = unknown.iter().find(|u| u.from_dotenv) {
            tracing::error!("{u}");
            return ExitCode::FAILURE;
        }
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match cli.command {
        Command::Config(args) => {
            let sub = matches
                .subcommand_matches("config")
                .expect("parsed as config");
            match print_config(&args, &matches, sub, &dotenv) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve(args) => match runtime.block_on(serve(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Preinit(args) => {
            match runtime.block_on(preinit::run(&args.input, &args.output, &args.manifest)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::NnCheck(args) => match nn::check::run(&args) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                tracing::error!("{e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Model(args) => model_tools::run(args),
        Command::Bench(args) => {
            let result = match args.floor.clone() {
                Some(body) => bench_floor::run(&args, &body),
                None => runtime.block_on(bench::run(args)),
            };
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Healthcheck(args) => {
            let url = args.effective_url();
            match runtime.block_on(healthcheck::probe(
                &url,
                Duration::from_millis(args.timeout_ms),
            )) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("unhealthy: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    };
    // Don't wait for leftovers (a compile abandoned by a shutdown during startup, a guest instance
    // past the grace period): their work is moot once we exit.
    runtime.shutdown_timeout(Duration::from_millis(100));
    code
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: escape codes in a log file or a container log are noise.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

/// `pfd-host config`.
fn print_config(
    args: &config::ConfigArgs,
    top: &clap::ArgMatches,
    sub: &clap::ArgMatches,
    dotenv: &DotEnv,
) -> Result<()> {
    let component = effective::component(&args.serve)?;
    let host = effective::host_settings(&Cli::command(), top, sub, dotenv);
    let guest = effective::component_settings(&component, &args.serve, dotenv);
    print!("{}", effective::render(args.format, dotenv, &host, &guest));
    Ok(())
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
            let is_model = ["model.onnx", "model.json"]
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

async fn serve(args: ServeArgs) -> Result<()> {
    let started = Instant::now();
    // Signals are caught from the very start, so that a SIGTERM during a (possibly long, cold)
    // compile still ends in a clean exit 0 rather than the default kill.
    let signals = listen_for_signals()?;

    // What to run: the manifest (if present) and/or an explicit component, and the component's
    // settings, checked now (a bad one stops the start, naming it).
    let effective::Component {
        manifest,
        env: guest_env,
        config: guest_config,
    } = effective::component(&args)?;
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
        serve_metrics: args.metrics == config::Switch::On,
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
            ("whole", Some("model.onnx")),
            ("card-only", Some("model.json")),
            ("scripts", Some("generate.py")),
            (".hidden", Some("model.onnx")),
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
