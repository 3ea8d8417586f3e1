//! `pfd-host nn-check`: does every model give the same logits on the requested device as on CPU,
//! and as the committed reference vectors? And how fast is it?
//!
//! For each `<models>/<name>/` with `model.onnx` and reference vectors (`reference.json` +
//! `reference_inputs.f32`, see models/scripts/README.md) it loads the graph twice through the
//! serving backend ([`OrtGraph`], so validation, tensor conversion and the session pool are
//! exercised as `serve` uses them) — once on CPU, once on the device `--device` resolves to —
//! runs every reference vector one by one and all of them as one batch, and compares
//! (`|a - b| <= atol + rtol·|b|`, with the tolerances recorded in the model's `reference.json`
//! unless `--rtol`/`--atol` say otherwise). It prints a table with the
//! largest differences and the batch-1 / batch-N latencies, and exits non-zero on any mismatch, on
//! a model that does not load, or when `--device cuda` has no CUDA. scripts/gpu-smoke.sh wraps it.

use crate::config::NnArgs;
use crate::eval::{argmax, closeness, percentile};
use crate::nn::ort_backend::{infer, OrtGraph, SessionOptions};
use crate::nn::{available_cores, ort_lib, Device, DeviceRequest};
use crate::reference::Reference;
use anyhow::{bail, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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

/// p50 and p99 of `f`'s duration over `n` runs (after two warm-up runs).
pub fn time(n: u32, mut f: impl FnMut() -> Result<()>) -> Result<(Duration, Duration)> {
    f()?;
    f()?;
    let mut times = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed());
    }
    times.sort();
    Ok((
        percentile(&times, 50.0).unwrap_or_default(),
        percentile(&times, 99.0).unwrap_or_default(),
    ))
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

/// `pfd-host nn-check`; `Ok(false)` when a check failed.
pub fn run(args: &NnCheckArgs) -> Result<bool> {
    let opts = args.nn.options();
    let ort = ort_lib::load(opts.ort_lib.as_deref())?;
    println!(
        "ONNX Runtime {} from {} ({})",
        ort.version,
        ort.path.display(),
        ort.how
    );
    let cpu_opts = SessionOptions {
        device: Device::Cpu,
        intra_threads: opts.intra_threads,
    };
    let mut device = match opts.device {
        DeviceRequest::Cpu => Device::Cpu,
        DeviceRequest::Cuda | DeviceRequest::Auto => Device::Cuda,
    };
    let models = crate::nn::discover(&args.models_dir)?;
    if models.is_empty() {
        bail!("no <name>/model.onnx under {}", args.models_dir.display());
    }
    let mut all_ok = true;
    let mut rows = Vec::new();
    for (name, path) in models {
        if let Some(wanted) = &opts.models {
            if !wanted.contains(&name) {
                continue;
            }
        }
        let refs = match Reference::of_model(path.parent().unwrap_or(Path::new("."))) {
            Ok(r) => r,
            Err(e) => {
                println!("{name}: skipped (no reference vectors: {e:#})");
                continue;
            }
        };
        let cpu = OrtGraph::load(&name, &path, &cpu_opts, 1)?;
        let dev = if device == Device::Cpu {
            cpu.clone()
        } else {
            let dev_opts = SessionOptions {
                device,
                intra_threads: opts.intra_threads,
            };
            match OrtGraph::load(&name, &path, &dev_opts, 1) {
                Ok(g) => g,
                Err(e) if opts.device == DeviceRequest::Auto => {
                    println!("--device auto: CUDA unavailable ({e:#}); checking CPU only");
                    device = Device::Cpu;
                    cpu.clone()
                }
                Err(e) => return Err(e.context(format!("{name}: loading on {device}"))),
            }
        };

        let (rtol, atol) = (
            args.rtol.unwrap_or(refs.rtol),
            args.atol.unwrap_or(refs.atol),
        );
        let mut max_vs_cpu = 0f64;
        let mut max_vs_ref = 0f64;
        let mut mismatches = Vec::new();
        for (i, x) in refs.records().into_iter().enumerate() {
            let on_cpu = infer(&cpu, &[x])?.remove(0);
            let on_dev = infer(&dev, &[x])?.remove(0);
            let dev_vs_cpu = closeness(&on_dev, &on_cpu, rtol, atol);
            let (ok_dev, d_dev) = (dev_vs_cpu.ok(), dev_vs_cpu.max_abs_diff);
            let cpu_vs_ref = closeness(&on_cpu, &refs.logits[i], rtol, atol);
            let (ok_ref, d_ref) = (cpu_vs_ref.ok(), cpu_vs_ref.max_abs_diff);
            max_vs_cpu = max_vs_cpu.max(d_dev);
            max_vs_ref = max_vs_ref.max(d_ref);
            if !ok_dev {
                mismatches.push(format!(
                    "vector {i}: {device} differs from CPU by {d_dev:.2e}"
                ));
            }
            if !ok_ref {
                mismatches.push(format!(
                    "vector {i}: CPU differs from the reference by {d_ref:.2e}"
                ));
            }
            if argmax(&on_dev) != refs.predicted[i] {
                mismatches.push(format!(
                    "vector {i}: class {} on {device}, reference {}",
                    argmax(&on_dev),
                    refs.predicted[i]
                ));
            }
        }
        // The whole set as one batch must give the same rows.
        let all = refs.records();
        let batch = infer(&dev, &all)?;
        for (i, row) in batch.iter().enumerate() {
            let row_vs_ref = closeness(row, &refs.logits[i], rtol, atol);
            let (ok, d) = (row_vs_ref.ok(), row_vs_ref.max_abs_diff);
            max_vs_ref = max_vs_ref.max(d);
            if !ok {
                mismatches.push(format!(
                    "vector {i} in a batch of {}: differs from the reference by {d:.2e}",
                    all.len()
                ));
            }
        }

        let one = [refs.input(0)];
        let (cpu1, _) = time(args.iterations, || infer(&cpu, &one).map(drop))?;
        let (dev1, dev1_p99) = time(args.iterations, || infer(&dev, &one).map(drop))?;
        let (dev_n, _) = time(args.iterations.div_ceil(4), || infer(&dev, &all).map(drop))?;
        let ok = mismatches.is_empty();
        all_ok &= ok;
        for m in &mismatches {
            println!("MISMATCH {name}: {m}");
        }
        rows.push(format!(
            "| {name} | {device} | {} | {rtol:.0e} / {atol:.0e} | {:.2e} | {:.2e} | {} | {} / {} | {} ({}) | {} |",
            refs.count,
            max_vs_cpu,
            max_vs_ref,
            ms(cpu1),
            ms(dev1),
            ms(dev1_p99),
            ms(dev_n),
            all.len(),
            if ok { "ok" } else { "FAIL" },
        ));
    }
    println!();
    println!(
        "| model | device | vectors | rtol / atol | max abs diff vs CPU | max abs diff vs reference | CPU batch-1 p50 ms | {device} batch-1 p50 / p99 ms | {device} batch-N p50 ms (N) | result |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    println!(
        "\n({} iterations; intra-op threads {}; {} cores)",
        args.iterations,
        opts.intra_threads,
        available_cores()
    );
    Ok(all_ok)
}
