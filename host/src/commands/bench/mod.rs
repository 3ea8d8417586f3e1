//! `pfd-host bench`: `/predict` and `/predict/batch` through pfd-host — the wasi-nn build with
//! ONNX Runtime behind wasi-nn, and tract inside the wasm guest — against the floor: in-process
//! ONNX Runtime (the same library, a session with the same settings, created in this process) on
//! the same inputs. One command, one run.
//!
//! # What is measured
//!
//! * **Inputs**: the model's reference vectors (`models/<name>/reference.json` +
//!   `reference_inputs.f32`), cycled; `/predict/batch` bodies hold `--batch` of them. The JSON
//!   bodies are serialised once, before any timing (f32 values in their shortest round-trip form,
//!   so the guest decodes exactly the floats the baseline runs).
//! * **Correctness first**: every reference vector goes through each server once; the class must
//!   be the reference's and the confidence within rtol 1e-3 / atol 1e-5 of the reference logits'
//!   softmax. A mismatch is reported in the table (and the run fails).
//! * **Latency** (one client, one keep-alive connection, sequential): end-to-end p50/p99 as the
//!   client sees it, and *model time*: the guest's own `inference_time_ms`
//!   (`total_inference_time_ms` for a batch) — the part of the request spent in the engine, which
//!   for the wasi-nn path includes the tensor's trip to the host and back.
//! * **Throughput**: `--concurrency` clients (default: the cores), each on its own connection,
//!   until `--requests` (`--batch-requests`) are done; requests (signals) per second.
//! * **Baseline**: the same runs on an `ort` session in this process: per-call time (tensor
//!   creation, `run`, reading the output), and throughput with one session per client thread.
//!
//! Servers are child processes of this binary (`pfd-host serve` on a free loopback port, JSON logs
//! in `<out>/server-<path>.log`), started one at a time so that the paths never compete for the
//! CPU; the baseline runs while no server is up.
//!
//! # Output
//!
//! `<out>/bench.md` (the table, with ratios to the baseline and the 1.25x target of the wasi-nn
//! model time), `<out>/bench.json` (every number) and `<out>/bench.svg` (p50 model and end-to-end
//! times per path and route, log scale; drawn with plotters' SVG backend).

mod args;
mod baseline;
mod child;
mod diagnose_floor;
pub mod floor;
mod report;
mod results;
mod served;

pub use args::BenchArgs;

use crate::nn::ort_backend::SessionOptions;
use crate::nn::ort_lib;
use crate::reference::Reference;
use anyhow::{anyhow, bail, Context as _, Result};
use baseline::{native_baseline, resolve_device};
use bytes::Bytes;
use child::Server;
use indicatif::{ProgressBar, ProgressStyle};
use pfd_core::card::MODEL_FILE;
use report::{machine_description, markdown, plot};
use serde_json::json;
use served::measure_server;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `pfd-host bench`: a floor alone (`--floor BODY`, `--diagnose-floor RECORDING`), else the
/// whole comparison.
pub fn run(args: BenchArgs, runtime: &tokio::runtime::Runtime) -> Result<()> {
    match (args.floor.clone(), args.diagnose_floor.clone()) {
        (Some(body), _) => floor::run(&args, &body),
        (None, Some(recording)) => diagnose_floor::run(&args, &recording),
        (None, None) => runtime.block_on(measure(args)),
    }
}

/// `pfd-host bench`.
pub async fn measure(args: BenchArgs) -> Result<()> {
    let model_dir = args.models_dir.join(&args.model);
    let refs = Arc::new(Reference::of_model(&model_dir)?);
    let model_path = model_dir.join(MODEL_FILE);
    let model =
        std::fs::read(&model_path).with_context(|| format!("reading {}", model_path.display()))?;
    if !args.nn_component.is_file() {
        bail!(
            "{} not found: build it first (cargo xtask build-component)",
            args.nn_component.display()
        );
    }
    let (tract_component, tract_flags): (PathBuf, &[&str]) = if args.tract_component.is_file() {
        (args.tract_component.clone(), &[])
    } else {
        eprintln!(
            "note: {} not found; measuring tract with {} --nn off",
            args.tract_component.display(),
            args.nn_component.display()
        );
        (args.nn_component.clone(), &["--nn", "off"])
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let concurrency = args
        .concurrency
        .unwrap_or(crate::nn::available_cores() as u32)
        .max(1);
    let batch = args.batch as usize;

    // ONNX Runtime for the baseline, on the device the server will use.
    let opts = args.nn.options();
    let ort = ort_lib::load(opts.ort_lib.as_deref())
        .context("the baseline needs ONNX Runtime (set --ort-lib / PFD_ORT_LIB)")?;
    let device = resolve_device(&model, &opts)?;
    let session_opts = SessionOptions {
        device,
        intra_threads: opts.intra_threads,
    };

    // Request bodies, serialised once.
    let single_bodies: Vec<Bytes> = refs
        .records()
        .into_iter()
        .map(|x| Bytes::from(json!({ "signal": x, "return_probabilities": false }).to_string()))
        .collect();
    let batch_bodies: Vec<Bytes> = (0..2.min(args.batch_requests as usize))
        .map(|k| {
            let signals: Vec<&[f32]> = (0..batch)
                .map(|i| refs.input((k * 5 + i) % refs.count))
                .collect();
            Bytes::from(json!({ "signals": signals }).to_string())
        })
        .collect();

    let n1 = args.requests;
    let nb = args.batch_requests;
    let per_server =
        refs.count as u64 + 2 * u64::from(args.warmup) + 2 * u64::from(n1) + 2 * u64::from(nb);
    let total = 2 * per_server + 2 * u64::from(n1) + 2 * u64::from(nb);
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {msg}")
            .map_err(|e| anyhow!("{e}"))?,
    );
    bar.enable_steady_tick(Duration::from_millis(200));

    let machine = machine_description(&ort.version, &ort.path, device, &opts, concurrency);

    // (c) the baseline, with no server running.
    bar.set_message(format!("in-process ONNX Runtime ({device})"));
    let native = {
        let model = model.clone();
        let refs = refs.clone();
        let bar = bar.clone();
        let opts = session_opts.clone();
        tokio::task::spawn_blocking(move || {
            native_baseline(&model, &opts, &refs, n1, nb, batch, concurrency, &bar)
        })
        .await??
    };

    // (a) wasi-nn → ONNX Runtime, (b) tract in wasm.
    let mut nn_flags: Vec<String> = vec![
        "--nn".into(),
        "on".into(),
        "--device".into(),
        device.as_str().into(),
        "--nn-intra-threads".into(),
        opts.intra_threads.to_string(),
        "--nn-sessions".into(),
        opts.sessions.to_string(),
        "--ort-lib".into(),
        ort.path.display().to_string(),
    ];
    if let Some(models) = &opts.models {
        nn_flags.push("--nn-models".into());
        nn_flags.push(models.join(","));
    }
    let plan: [(&'static str, String, PathBuf, Vec<String>); 2] = [
        (
            "wasi-nn",
            "wasi-nn → ONNX Runtime (pfd-host)".to_string(),
            args.nn_component.clone(),
            nn_flags,
        ),
        (
            "tract",
            "tract in wasm (pfd-host)".to_string(),
            tract_component,
            tract_flags.iter().map(|s| s.to_string()).collect(),
        ),
    ];
    let mut results = vec![native];
    for (key, label, component, flags) in plan {
        bar.set_message(format!(
            "{key}: starting pfd-host ({})",
            component.display()
        ));
        let log = args.out.join(format!("server-{key}.log"));
        let server = Server::start(&args.manifest, &component, &flags, &log).await?;
        let r = measure_server(
            &server,
            key,
            label,
            &refs,
            &single_bodies,
            &batch_bodies,
            &args,
            concurrency,
            &bar,
        )
        .await;
        server.stop().await;
        results.push(r?);
    }
    bar.finish_and_clear();

    let table = markdown(&results, &machine, &args);
    println!("{table}");
    std::fs::write(args.out.join("bench.md"), &table)?;
    std::fs::write(
        args.out.join("bench.json"),
        serde_json::to_string_pretty(&json!({ "machine": machine, "results": results }))?,
    )?;
    plot(&results, &args.out.join("bench.svg"), batch)?;
    eprintln!(
        "wrote {}, {} and {}",
        args.out.join("bench.md").display(),
        args.out.join("bench.json").display(),
        args.out.join("bench.svg").display()
    );
    if results.iter().any(|r| !r.correct) {
        bail!("a path gave a wrong answer on the reference vectors (see the table)");
    }
    Ok(())
}
