//! The in-process baseline: the same ONNX Runtime library and session settings as the server's
//! wasi-nn backend, called directly — per-call latency and throughput, and the one session call
//! the floor (`floor.rs`) also makes.

use super::results::{PathResult, Series};
use crate::eval::{argmax, closeness};
use crate::nn::ort_backend::{build_session, SessionOptions};
use crate::nn::{Device, DeviceRequest};
use crate::reference::Reference;
use anyhow::{anyhow, Context as _, Result};
use indicatif::ProgressBar;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

/// The device the baseline (and the wasi-nn server) run on, resolved like `serve` does.
pub(super) fn resolve_device(model: &[u8], opts: &crate::nn::NnOptions) -> Result<Device> {
    Ok(match opts.device {
        DeviceRequest::Cpu => Device::Cpu,
        DeviceRequest::Cuda => {
            build_session(
                model,
                &SessionOptions {
                    device: Device::Cuda,
                    intra_threads: 1,
                },
            )
            .context("--device cuda")?;
            Device::Cuda
        }
        DeviceRequest::Auto => {
            match build_session(
                model,
                &SessionOptions {
                    device: Device::Cuda,
                    intra_threads: 1,
                },
            ) {
                Ok(_) => Device::Cuda,
                Err(_) => Device::Cpu,
            }
        }
    })
}

/// In-process ONNX Runtime: per-call latency for batch 1 and `batch`, then throughput with
/// `concurrency` threads, one session each.
#[allow(clippy::too_many_arguments)]
pub(super) fn native_baseline(
    model: &[u8],
    opts: &SessionOptions,
    refs: &Reference,
    n1: u32,
    nb: u32,
    batch: usize,
    concurrency: u32,
    bar: &ProgressBar,
) -> Result<PathResult> {
    let len = refs.length;
    let batch_input: Vec<f32> = (0..batch)
        .flat_map(|i| refs.input(i % refs.count).iter().copied())
        .collect();
    let mut session = build_session(model, opts)?;
    let input = session.inputs()[0].name().to_string();
    let output = session.outputs()[0].name().to_string();
    let call = |session: &mut ort::session::Session, data: &[f32], n: usize| {
        session_logits(session, &input, &output, data, n, len)
    };

    // Correctness of the baseline itself.
    let mut classes_ok = 0;
    let mut max_err = 0f64;
    for (i, x) in refs.records().into_iter().enumerate() {
        let logits = call(&mut session, x, 1)?;
        let d = closeness(&logits, &refs.logits[i], refs.rtol, refs.atol).max_abs_diff;
        max_err = max_err.max(d);
        classes_ok += usize::from(argmax(&logits) == refs.predicted[i]);
    }
    for _ in 0..20 {
        call(&mut session, refs.input(0), 1)?;
    }
    let mut single = Series {
        signals: 1,
        ..Default::default()
    };
    for i in 0..n1 as usize {
        let t = Instant::now();
        call(&mut session, refs.input(i % refs.count), 1)?;
        single.model_ms.push(t.elapsed().as_secs_f64() * 1e3);
        bar.inc(1);
    }
    let mut batched = Series {
        signals: batch,
        ..Default::default()
    };
    call(&mut session, &batch_input, batch)?;
    for _ in 0..nb {
        let t = Instant::now();
        call(&mut session, &batch_input, batch)?;
        batched.model_ms.push(t.elapsed().as_secs_f64() * 1e3);
        bar.inc(1);
    }
    single.e2e_ms = single.model_ms.clone();
    batched.e2e_ms = batched.model_ms.clone();

    // Throughput: `concurrency` threads, one session each, sharing the request count.
    let throughput = |n: u32, data: &[f32], rows: usize| -> Result<f64> {
        let left = AtomicU32::new(n);
        let sessions = (0..concurrency)
            .map(|_| build_session(model, opts))
            .collect::<Result<Vec<_>>>()?;
        let started = Instant::now();
        std::thread::scope(|scope| -> Result<()> {
            let handles: Vec<_> = sessions
                .into_iter()
                .map(|mut s| {
                    let left = &left;
                    scope.spawn(move || -> Result<()> {
                        while left
                            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                                v.checked_sub(1)
                            })
                            .is_ok()
                        {
                            run_once(&mut s, data, rows, len)?;
                            bar.inc(1);
                        }
                        Ok(())
                    })
                })
                .collect();
            for h in handles {
                h.join()
                    .map_err(|_| anyhow!("baseline thread panicked"))??;
            }
            Ok(())
        })?;
        Ok(f64::from(n) / started.elapsed().as_secs_f64())
    };
    single.throughput_rps = throughput(n1, refs.input(0), 1)?;
    batched.throughput_rps = throughput(nb, &batch_input, batch)?;

    for s in [&mut single, &mut batched] {
        s.e2e_ms.sort_by(f64::total_cmp);
        s.model_ms.sort_by(f64::total_cmp);
    }
    Ok(PathResult {
        key: "native-ort",
        label: "in-process ONNX Runtime (baseline)".into(),
        backend: format!("ort/{}", opts.device),
        single,
        batch: batched,
        classes_ok,
        classes_total: refs.count,
        max_confidence_err: max_err,
        correct: classes_ok == refs.count,
    })
}

/// One in-process ONNX Runtime call: `data` in as a `[rows, 1, len]` tensor named `input`, the
/// `output` tensor's values out (the baseline here and the floor of `bench --floor`).
pub(super) fn session_logits(
    session: &mut ort::session::Session,
    input: &str,
    output: &str,
    data: &[f32],
    rows: usize,
    len: usize,
) -> Result<Vec<f32>> {
    let value = ort::value::TensorRef::from_array_view(([rows, 1, len], data))
        .map_err(|e| anyhow!("{e}"))?;
    let out = session
        .run(vec![(
            std::borrow::Cow::Borrowed(input),
            ort::session::SessionInputValue::from(value),
        )])
        .map_err(|e| anyhow!("{e}"))?;
    let (_, logits) = out[output]
        .try_extract_tensor::<f32>()
        .map_err(|e| anyhow!("{e}"))?;
    Ok(logits.to_vec())
}

/// One baseline call outside the latency closure (used by the throughput threads).
pub(super) fn run_once(
    session: &mut ort::session::Session,
    data: &[f32],
    rows: usize,
    len: usize,
) -> Result<()> {
    let input = session.inputs()[0].name().to_string();
    let output = session.outputs()[0].name().to_string();
    session_logits(session, &input, &output, data, rows, len).map(drop)
}
