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

use super::ort_backend::{OrtGraph, SessionOptions};
use super::{available_cores, ort_lib, Device, DeviceRequest};
use crate::config::NnCheckArgs;
use crate::model_tools::reference::Reference;
use anyhow::{bail, Context as _, Result};
use std::path::Path;
use std::time::{Duration, Instant};
use wasmtime_wasi_nn::backend::NamedTensor;
use wasmtime_wasi_nn::wit::TensorType;
use wasmtime_wasi_nn::Tensor;

/// A model's reference vectors.
#[derive(Debug, Clone)]
pub struct References {
    /// Samples per record.
    pub length: usize,
    /// One record per vector.
    pub inputs: Vec<Vec<f32>>,
    /// The expected logits of each vector.
    pub logits: Vec<Vec<f32>>,
    /// The expected class of each vector.
    pub predicted: Vec<usize>,
    /// Tolerances recorded with the references.
    pub rtol: f64,
    pub atol: f64,
}

/// Reads `<model_dir>/reference.json` and its inputs file (the one reference-file reader,
/// [`Reference::load`], split into one record per vector).
pub fn load_references(model_dir: &Path) -> Result<References> {
    let r = Reference::load(&model_dir.join("reference.json"))?;
    Ok(References {
        length: r.length,
        inputs: r.inputs.chunks(r.length).map(<[f32]>::to_vec).collect(),
        logits: r.logits,
        predicted: r.predicted,
        rtol: r.rtol,
        atol: r.atol,
    })
}

/// Whether `a` is within `atol + rtol·|b|` of `b` everywhere; and the largest `|a - b|`.
pub fn allclose(a: &[f32], b: &[f32], rtol: f64, atol: f64) -> (bool, f64) {
    if a.len() != b.len() {
        return (false, f64::INFINITY);
    }
    let mut ok = true;
    let mut max = 0f64;
    for (&x, &y) in a.iter().zip(b) {
        let d = (f64::from(x) - f64::from(y)).abs();
        max = max.max(d);
        if d.is_nan() || d > atol + rtol * f64::from(y).abs() {
            ok = false;
        }
    }
    (ok, max)
}

pub use pfd_core::postprocess::argmax;

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
    Ok((percentile(&times, 50.0), percentile(&times, 99.0)))
}

/// Nearest-rank percentile of sorted `v`.
pub fn percentile(v: &[Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
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
    let models = super::discover(&args.models_dir)?;
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
        let refs = match load_references(path.parent().unwrap_or(Path::new("."))) {
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
        for (i, x) in refs.inputs.iter().enumerate() {
            let on_cpu = infer(&cpu, &[x])?.remove(0);
            let on_dev = infer(&dev, &[x])?.remove(0);
            let (ok_dev, d_dev) = allclose(&on_dev, &on_cpu, rtol, atol);
            let (ok_ref, d_ref) = allclose(&on_cpu, &refs.logits[i], rtol, atol);
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
        let all: Vec<&[f32]> = refs.inputs.iter().map(Vec::as_slice).collect();
        let batch = infer(&dev, &all)?;
        for (i, row) in batch.iter().enumerate() {
            let (ok, d) = allclose(row, &refs.logits[i], rtol, atol);
            max_vs_ref = max_vs_ref.max(d);
            if !ok {
                mismatches.push(format!(
                    "vector {i} in a batch of {}: differs from the reference by {d:.2e}",
                    all.len()
                ));
            }
        }

        let one = [refs.inputs[0].as_slice()];
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
            refs.inputs.len(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerances_and_percentiles() {
        assert!(allclose(&[1.0, 2.0], &[1.0005, 2.0], 1e-3, 1e-5).0);
        assert!(!allclose(&[1.0, 2.0], &[1.01, 2.0], 1e-3, 1e-5).0);
        assert!(!allclose(&[0.0], &[f32::NAN], 1e-3, 1e-5).0);
        assert!(!allclose(&[0.0], &[0.0, 1.0], 1e-3, 1e-5).0);
        assert_eq!(argmax(&[0.1, 3.0, -1.0]), 1);
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&v, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&v[..1], 99.0), Duration::from_millis(1));
    }

    #[test]
    fn reads_the_bundled_references() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/bearing-lstm");
        let r = load_references(&dir).unwrap();
        assert_eq!(r.inputs.len(), r.logits.len());
        assert_eq!(r.inputs[0].len(), r.length);
        assert_eq!(r.logits[0].len(), 11);
    }
}
