//! `pfd-host bench --floor BODY`: the native floor of one `/predict` request, for
//! `scripts/load_bench.py` to divide every served path's CPU per request by (same run, same
//! machine, no server running).
//!
//! The floor is the work a request cannot avoid, done natively in this process, one request at a
//! time in a tight loop, the way the guest does it:
//!
//! * **`/predict`**: decode the JSON body with the guest's own decoder
//!   (`pfd_core::predict::parse_predict`, the same code compiled natively), then one ONNX Runtime
//!   `Session::run` on the signal (a session built with the server's settings) and the softmax
//!   and argmax of the answer.
//! * **OIP binary**: the tensor's little-endian bytes to `f32` (`pfd_signal::formats::f32_from_le_bytes`,
//!   as the guest does), the same `run`, the same read of the logits.
//!
//! What it leaves out (and a served request pays for): HTTP, the copy of the body into the
//! guest, instantiating the component, the guest's own code running as wasm rather than native,
//! and the tensor's trip through wasi-nn. The ratio of a served path to this floor is what
//! serving costs on top of the work itself.
//!
//! CPU per iteration is this process's user + system time (`getrusage`; the load bench takes the
//! same sum of the server from `/proc/<pid>/stat`) over the loop, divided by the iterations.
//! Prints one JSON object.

use super::args::BenchArgs;
use super::baseline::{resolve_device, session_logits};
use crate::nn::ort_backend::{build_session, SessionOptions};
use crate::nn::ort_lib;
use crate::nn::Device;
use anyhow::{anyhow, bail, Context as _, Result};
use pfd_core::card::MODEL_FILE;
use pfd_core::predict::{parse_predict, Limits};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

/// The model's bytes and an in-process ONNX Runtime session of them with the server's settings
/// (the device, ONNX Runtime and thread flags `serve` takes): what both floors run the model on.
pub(super) struct FloorSession {
    pub model: Vec<u8>,
    pub session: ort::session::Session,
    /// The graph's input and output names.
    pub input: String,
    pub output: String,
    pub device: Device,
    /// What the report says of it: ONNX Runtime's version, the device and the threads.
    pub describe: serde_json::Map<String, serde_json::Value>,
}

pub(super) fn floor_session(args: &BenchArgs) -> Result<FloorSession> {
    let model_path = args.models_dir.join(&args.model).join(MODEL_FILE);
    let model =
        std::fs::read(&model_path).with_context(|| format!("reading {}", model_path.display()))?;
    let opts = args.nn.options();
    let ort = ort_lib::load(opts.ort_lib.as_deref())
        .context("the floor needs ONNX Runtime (set --ort-lib / PFD_ORT_LIB)")?;
    let device = resolve_device(&model, &opts)?;
    let session = build_session(
        &model,
        &SessionOptions {
            device,
            intra_threads: opts.intra_threads,
        },
    )?;
    let describe = serde_json::Map::from_iter([
        ("onnxruntime".to_string(), json!(ort.version)),
        ("device".to_string(), json!(device.as_str())),
        ("intra_threads".to_string(), json!(opts.intra_threads)),
    ]);
    Ok(FloorSession {
        model,
        input: session.inputs()[0].name().to_string(),
        output: session.outputs()[0].name().to_string(),
        session,
        device,
        describe,
    })
}

pub fn run(args: &BenchArgs, body_path: &Path) -> Result<()> {
    let body =
        std::fs::read(body_path).with_context(|| format!("reading {}", body_path.display()))?;
    let FloorSession {
        mut session,
        describe,
        input,
        output,
        ..
    } = floor_session(args)?;
    let mut infer = |signal: &[f32]| -> Result<usize> {
        let logits = session_logits(&mut session, &input, &output, signal, 1, signal.len())?;
        Ok(pfd_core::postprocess::decide(&logits).class)
    };

    // The body's signal length is the model's: the floor decodes exactly what the server does.
    let probe = serde_json::from_slice::<serde_json::Value>(&body)
        .context("the floor body must be a /predict JSON body")?;
    let length = probe["signal"]
        .as_array()
        .map(Vec::len)
        .context("the floor body has no \"signal\" list")?;
    let limits = Limits {
        signal_length: length,
        classes: 0,
        max_batch_size: 1,
    };
    let decode = |body: &[u8]| -> Result<Vec<f32>> {
        parse_predict(body, &limits)
            .map(|r| r.signal)
            .map_err(|e| anyhow!("the floor body is not a valid /predict body: {e:?}"))
    };
    let signal = decode(&body)?;
    let tensor_bytes: Vec<u8> = signal.iter().flat_map(|v| v.to_le_bytes()).collect();

    let seconds = Duration::from_secs_f64(args.floor_seconds);
    let predict = measure(seconds, || {
        let signal = decode(std::hint::black_box(&body))?;
        infer(&signal)
    })?;
    let oip = measure(seconds, || {
        // The guest's own conversion of a binary tensor (the same function, compiled natively).
        let signal = pfd_signal::formats::f32_from_le_bytes(std::hint::black_box(&tensor_bytes));
        infer(&signal)
    })?;
    let decode_only = measure(seconds / 2, || {
        Ok(decode(std::hint::black_box(&body))?.len())
    })?;
    let mut report = describe;
    report.extend([
        ("body_bytes".to_string(), json!(body.len())),
        ("samples".to_string(), json!(length)),
        ("predict".to_string(), predict),
        ("oip_binary".to_string(), oip),
        ("decode".to_string(), decode_only),
    ]);
    println!("{}", serde_json::Value::Object(report));
    Ok(())
}

/// Runs `work` for `seconds` (after a few unmeasured calls); CPU and wall time per call.
pub(super) fn measure(
    seconds: Duration,
    mut work: impl FnMut() -> Result<usize>,
) -> Result<serde_json::Value> {
    for _ in 0..5 {
        work()?;
    }
    let (cpu0, t0) = (process_cpu_seconds()?, Instant::now());
    let mut n = 0u32;
    while t0.elapsed() < seconds || n < 10 {
        std::hint::black_box(work()?);
        n += 1;
    }
    let (cpu, wall) = (process_cpu_seconds()? - cpu0, t0.elapsed().as_secs_f64());
    Ok(json!({
        "iterations": n,
        "cpu_ms": cpu * 1e3 / f64::from(n),
        "wall_ms": wall * 1e3 / f64::from(n),
    }))
}

/// This process's user + system CPU time, seconds (`getrusage`, microsecond resolution).
pub(super) fn process_cpu_seconds() -> Result<f64> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: `usage` is a valid out-pointer for one `rusage`; RUSAGE_SELF is always valid.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) } != 0 {
        bail!("getrusage: {}", std::io::Error::last_os_error());
    }
    // SAFETY: getrusage returned 0, so it filled `usage`.
    let usage = unsafe { usage.assume_init() };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    Ok(seconds(usage.ru_utime) + seconds(usage.ru_stime))
}
