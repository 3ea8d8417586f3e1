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

use crate::config::BenchArgs;
use crate::nn::check::{self, load_references, References};
use crate::nn::ort_backend::{build_session, SessionOptions};
use crate::nn::{ort_lib, Device, DeviceRequest};
use anyhow::{anyhow, bail, Context as _, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;

/// Target: the wasi-nn path's model time within this factor of in-process ONNX Runtime.
const TARGET_RATIO: f64 = 1.25;

/// One measured series.
#[derive(Debug, Clone, Default, serde::Serialize)]
struct Series {
    /// End-to-end (client) latencies, ms, sorted.
    e2e_ms: Vec<f64>,
    /// Model times reported by the guest (or measured in-process), ms, sorted.
    model_ms: Vec<f64>,
    /// Requests (or calls) per second with `concurrency` clients.
    throughput_rps: f64,
    /// Signals per request.
    signals: usize,
    /// The host's own time per wasi-nn compute (ms, sorted; empty when the path has none).
    host_compute_ms: Vec<f64>,
}

impl Series {
    fn p(v: &[f64], p: f64) -> f64 {
        if v.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    }
    fn e2e(&self, p: f64) -> f64 {
        Self::p(&self.e2e_ms, p)
    }
    fn model(&self, p: f64) -> f64 {
        Self::p(&self.model_ms, p)
    }
}

/// Results of one path (native / wasi-nn / tract).
#[derive(Debug, Clone, serde::Serialize)]
struct PathResult {
    /// Short name (`native-ort`, `wasi-nn`, `tract`).
    key: &'static str,
    /// Table label.
    label: String,
    /// What `/health` says serves (`wasi-nn/onnx/cpu`, `tract/wasm`), or the in-process device.
    backend: String,
    single: Series,
    batch: Series,
    /// Correctness: reference vectors whose class matched / all, and the largest confidence error.
    classes_ok: usize,
    classes_total: usize,
    max_confidence_err: f64,
    correct: bool,
}

/// `pfd-host bench`.
pub async fn run(args: BenchArgs) -> Result<()> {
    let model_dir = args.models_dir.join(&args.model);
    let refs = Arc::new(load_references(&model_dir)?);
    let model_path = model_dir.join("model.onnx");
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
        .inputs
        .iter()
        .map(|x| Bytes::from(json!({ "signal": x, "return_probabilities": false }).to_string()))
        .collect();
    let batch_bodies: Vec<Bytes> = (0..2.min(args.batch_requests as usize))
        .map(|k| {
            let signals: Vec<&Vec<f32>> = (0..batch)
                .map(|i| &refs.inputs[(k * 5 + i) % refs.inputs.len()])
                .collect();
            Bytes::from(json!({ "signals": signals }).to_string())
        })
        .collect();

    let n1 = args.requests;
    let nb = args.batch_requests;
    let per_server = refs.inputs.len() as u64
        + 2 * u64::from(args.warmup)
        + 2 * u64::from(n1)
        + 2 * u64::from(nb);
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

/// The device the baseline (and the wasi-nn server) run on, resolved like `serve` does.
pub(crate) fn resolve_device(model: &[u8], opts: &crate::nn::NnOptions) -> Result<Device> {
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
fn native_baseline(
    model: &[u8],
    opts: &SessionOptions,
    refs: &References,
    n1: u32,
    nb: u32,
    batch: usize,
    concurrency: u32,
    bar: &ProgressBar,
) -> Result<PathResult> {
    let len = refs.length;
    let batch_input: Vec<f32> = (0..batch)
        .flat_map(|i| refs.inputs[i % refs.inputs.len()].iter().copied())
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
    for (i, x) in refs.inputs.iter().enumerate() {
        let logits = call(&mut session, x, 1)?;
        let (_, d) = check::allclose(&logits, &refs.logits[i], refs.rtol, refs.atol);
        max_err = max_err.max(d);
        classes_ok += usize::from(check::argmax(&logits) == refs.predicted[i]);
    }
    for _ in 0..20 {
        call(&mut session, &refs.inputs[0], 1)?;
    }
    let mut single = Series {
        signals: 1,
        ..Default::default()
    };
    for i in 0..n1 as usize {
        let t = Instant::now();
        call(&mut session, &refs.inputs[i % refs.inputs.len()], 1)?;
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
    single.throughput_rps = throughput(n1, &refs.inputs[0], 1)?;
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
        classes_total: refs.inputs.len(),
        max_confidence_err: max_err,
        correct: classes_ok == refs.inputs.len(),
    })
}

/// One in-process ONNX Runtime call: `data` in as a `[rows, 1, len]` tensor named `input`, the
/// `output` tensor's values out (the baseline here and the floor of `bench --floor`).
pub(crate) fn session_logits(
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
fn run_once(
    session: &mut ort::session::Session,
    data: &[f32],
    rows: usize,
    len: usize,
) -> Result<()> {
    let input = session.inputs()[0].name().to_string();
    let output = session.outputs()[0].name().to_string();
    session_logits(session, &input, &output, data, rows, len).map(drop)
}

/// A `pfd-host serve` child process.
struct Server {
    child: tokio::process::Child,
    addr: SocketAddr,
    /// The host's own time per wasi-nn `compute` (ms), from its debug log, in order.
    computes: Arc<std::sync::Mutex<Vec<f64>>>,
}

impl Server {
    async fn start(
        manifest: &Path,
        component: &Path,
        flags: &[String],
        log: &Path,
    ) -> Result<Server> {
        let exe = std::env::current_exe().context("locating pfd-host")?;
        let mut child = tokio::process::Command::new(exe)
            .arg("serve")
            .arg("--manifest")
            .arg(manifest)
            .arg("--component")
            .arg(component)
            .args(["--listen", "127.0.0.1:0"])
            .args(flags)
            .env("PFD_LOG_FORMAT", "json")
            // The host logs each wasi-nn compute (validation + ONNX Runtime + output) at debug:
            // the table splits the guest's model time into the host's part and the rest.
            .env("RUST_LOG", "info,pfd_host::nn::ort_backend=debug")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting pfd-host serve")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let mut file = tokio::fs::File::create(log)
            .await
            .with_context(|| format!("creating {}", log.display()))?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let computes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = computes.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = file.write_all(line.as_bytes()).await;
                let _ = file.write_all(b"\n").await;
                if line.contains("\"wasi-nn compute\"") {
                    if let Some(us) = serde_json::from_str::<Value>(&line)
                        .ok()
                        .and_then(|v| v.get("us").and_then(Value::as_f64))
                    {
                        sink.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(us / 1e3);
                    }
                    continue;
                }
                let _ = tx.send(line);
            }
            let _ = file.flush().await;
        });
        // A cold compile of the component takes a while; a cache hit well under a second.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
        let addr = loop {
            let line = tokio::time::timeout_at(deadline, rx.recv())
                .await
                .map_err(|_| {
                    anyhow!(
                        "pfd-host did not start listening within 600 s (see {})",
                        log.display()
                    )
                })?
                .ok_or_else(|| anyhow!("pfd-host exited during startup (see {})", log.display()))?;
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if let Some(listen) = v.get("listen").and_then(Value::as_str) {
                if v.get("message")
                    .and_then(Value::as_str)
                    .is_some_and(|m| m.starts_with("listening on"))
                {
                    break listen.parse::<SocketAddr>()?;
                }
            }
        };
        // Keep draining the log.
        tokio::spawn(async move { while rx.recv().await.is_some() {} });
        Ok(Server {
            child,
            addr,
            computes,
        })
    }

    /// How many computes the host has logged so far.
    fn computes_seen(&self) -> usize {
        self.computes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// The host compute times logged since `from`, sorted (waits briefly for the log to catch up).
    async fn computes_since(&self, from: usize, expected: usize) -> Vec<f64> {
        for _ in 0..50 {
            if self.computes_seen() >= from + expected {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let all = self.computes.lock().unwrap_or_else(|e| e.into_inner());
        let mut v = all.get(from..).unwrap_or_default().to_vec();
        v.sort_by(f64::total_cmp);
        v
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// A keep-alive HTTP/1.1 connection.
struct Client {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: String,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Result<Client> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Client {
            sender,
            host: addr.to_string(),
        })
    }

    async fn send(
        &mut self,
        method: http::Method,
        path: &str,
        body: Bytes,
    ) -> Result<(u16, Bytes)> {
        self.sender.ready().await?;
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, &self.host)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    /// POSTs `body` and returns (client latency ms, the model time the guest reports, ms).
    async fn predict(&mut self, path: &str, body: Bytes) -> Result<(f64, f64, Value)> {
        let t = Instant::now();
        let (status, bytes) = self.send(http::Method::POST, path, body).await?;
        let e2e = t.elapsed().as_secs_f64() * 1e3;
        if status != 200 {
            bail!(
                "{path} answered {status}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(500)])
            );
        }
        let v: Value = serde_json::from_slice(&bytes)?;
        let model = v
            .get("total_inference_time_ms")
            .or_else(|| v.get("inference_time_ms"))
            .and_then(Value::as_f64)
            .ok_or_else(|| anyhow!("{path}: no inference time in the response"))?;
        Ok((e2e, model, v))
    }
}

#[allow(clippy::too_many_arguments)]
async fn measure_server(
    server: &Server,
    key: &'static str,
    label: String,
    refs: &References,
    single_bodies: &[Bytes],
    batch_bodies: &[Bytes],
    args: &BenchArgs,
    concurrency: u32,
    bar: &ProgressBar,
) -> Result<PathResult> {
    let mut client = Client::connect(server.addr).await?;
    let (_, health) = client
        .send(http::Method::GET, "/health", Bytes::new())
        .await?;
    let health: Value = serde_json::from_slice(&health).unwrap_or(Value::Null);
    let backend = health
        .get("device")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_string();

    // Correctness on every reference vector.
    bar.set_message(format!("{key}: reference vectors"));
    let mut classes_ok = 0;
    let mut max_err = 0f64;
    for (i, x) in refs.inputs.iter().enumerate() {
        let body = Bytes::from(json!({ "signal": x, "return_probabilities": true }).to_string());
        let (_, _, v) = client.predict("/predict", body).await?;
        let class = v
            .get("predicted_class")
            .and_then(Value::as_u64)
            .unwrap_or(u64::MAX) as usize;
        let confidence = v
            .get("confidence")
            .and_then(Value::as_f64)
            .unwrap_or(f64::NAN);
        let want = softmax(&refs.logits[i]);
        let want_conf = want[refs.predicted[i]];
        let err = (confidence - want_conf).abs();
        max_err = max_err.max(err);
        if class == refs.predicted[i] && err <= refs.atol + refs.rtol * want_conf.abs() {
            classes_ok += 1;
        }
        bar.inc(1);
    }

    let mut measure =
        async |route: &str, bodies: &[Bytes], n: u32, signals: usize| -> Result<Series> {
            bar.set_message(format!("{key}: {route} warm-up"));
            for i in 0..args.warmup as usize {
                client
                    .predict(route, bodies[i % bodies.len()].clone())
                    .await?;
                bar.inc(1);
            }
            bar.set_message(format!("{key}: {route} latency"));
            let mut s = Series {
                signals,
                ..Default::default()
            };
            let seen = server.computes_seen();
            for i in 0..n as usize {
                let (e2e, model, _) = client
                    .predict(route, bodies[i % bodies.len()].clone())
                    .await?;
                s.e2e_ms.push(e2e);
                s.model_ms.push(model);
                bar.inc(1);
            }
            s.e2e_ms.sort_by(f64::total_cmp);
            s.model_ms.sort_by(f64::total_cmp);
            if key == "wasi-nn" {
                s.host_compute_ms = server.computes_since(seen, n as usize).await;
            }
            bar.set_message(format!("{key}: {route} throughput ({concurrency} clients)"));
            s.throughput_rps = throughput(server.addr, route, bodies, n, concurrency, bar).await?;
            Ok(s)
        };
    let single = measure("/predict", single_bodies, args.requests, 1).await?;
    let batch = measure(
        "/predict/batch",
        batch_bodies,
        args.batch_requests,
        args.batch as usize,
    )
    .await?;
    Ok(PathResult {
        key,
        label,
        backend,
        single,
        batch,
        classes_ok,
        classes_total: refs.inputs.len(),
        max_confidence_err: max_err,
        correct: classes_ok == refs.inputs.len(),
    })
}

/// `n` requests from `concurrency` clients; requests per second.
async fn throughput(
    addr: SocketAddr,
    route: &str,
    bodies: &[Bytes],
    n: u32,
    concurrency: u32,
    bar: &ProgressBar,
) -> Result<f64> {
    let left = Arc::new(AtomicU32::new(n));
    let mut clients = Vec::new();
    for _ in 0..concurrency {
        clients.push(Client::connect(addr).await?);
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (c, mut client) in clients.into_iter().enumerate() {
        let left = left.clone();
        let bodies = bodies.to_vec();
        let route = route.to_string();
        let bar = bar.clone();
        tasks.spawn(async move {
            let mut i = c;
            while left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1))
                .is_ok()
            {
                client
                    .predict(&route, bodies[i % bodies.len()].clone())
                    .await?;
                i += 1;
                bar.inc(1);
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(f64::from(n) / started.elapsed().as_secs_f64())
}

fn softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let exp: Vec<f64> = logits.iter().map(|&x| (f64::from(x) - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

fn machine_description(
    version: &str,
    lib: &Path,
    device: Device,
    opts: &crate::nn::NnOptions,
    concurrency: u32,
) -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let load_average = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into());
    json!({
        "cpu": cpu,
        "load_average": load_average,
        "cores": crate::nn::available_cores(),
        "os": std::env::consts::OS,
        "onnxruntime": version,
        "onnxruntime_library": lib.display().to_string(),
        "device": device.as_str(),
        "sessions_per_graph": opts.sessions,
        "intra_op_threads": opts.intra_threads,
        "concurrency": concurrency,
        "pfd_host": env!("CARGO_PKG_VERSION"),
    })
}

fn markdown(results: &[PathResult], machine: &Value, args: &BenchArgs) -> String {
    let base = &results[0];
    let m = |k: &str| {
        machine
            .get(k)
            .map(|v| v.to_string().trim_matches('"').to_string())
            .unwrap_or_default()
    };
    let mut out = String::new();
    out.push_str("# pfd-host bench\n\n");
    out.push_str(&format!(
        "Machine: {} ({} cores, load average {} at start), ONNX Runtime {} on {} ({} session(s) per graph, {} intra-op thread(s)); \
         {} `/predict` and {} `/predict/batch` (batch {}) requests per path, latency with 1 client, \
         throughput with {} clients; loopback.\n\n",
        m("cpu"), m("cores"), m("load_average"), m("onnxruntime"), m("device"), m("sessions_per_graph"), m("intra_op_threads"),
        args.requests, args.batch_requests, args.batch, m("concurrency"),
    ));
    out.push_str(
        "Model time: the guest's `inference_time_ms` (`total_inference_time_ms` for a batch); \
                  for the baseline, one in-process `Session::run` (tensor in, logits out) in a tight loop. \
                  Host compute: pfd-host's own time in wasi-nn `compute` (validation, ONNX Runtime run, \
                  output), from its debug log; the rest of the wasi-nn model time is the tensor's trip \
                  between guest and host. Ratios are to the baseline's p50 for the same batch size.\n\n",
    );
    out.push_str("| path | route | backend | e2e p50 ms | e2e p99 ms | model p50 ms | model p99 ms | host compute p50 ms | model / baseline | e2e / baseline | throughput req/s | signals/s | reference vectors |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in results {
        for (route, s, b) in [
            ("/predict", &r.single, &base.single),
            ("/predict/batch", &r.batch, &base.batch),
        ] {
            let route = if r.key == "native-ort" {
                format!("run, batch {}", s.signals)
            } else {
                format!("`{route}` ({})", s.signals)
            };
            out.push_str(&format!(
                "| {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {:.2}x | {:.2}x | {:.1} | {:.1} | {}/{}{} |\n",
                r.label,
                route,
                r.backend,
                s.e2e(50.0),
                s.e2e(99.0),
                s.model(50.0),
                s.model(99.0),
                if s.host_compute_ms.is_empty() {
                    "—".to_string()
                } else {
                    format!("{:.3}", Series::p(&s.host_compute_ms, 50.0))
                },
                s.model(50.0) / b.model(50.0),
                s.e2e(50.0) / b.model(50.0),
                s.throughput_rps,
                s.throughput_rps * s.signals as f64,
                r.classes_ok,
                r.classes_total,
                if r.correct { "" } else { " **MISMATCH**" },
            ));
        }
    }
    if let Some(nn) = results.iter().find(|r| r.key == "wasi-nn") {
        let one = nn.single.model(50.0) / base.single.model(50.0);
        let many = nn.batch.model(50.0) / base.batch.model(50.0);
        let verdict = |x: f64| if x <= TARGET_RATIO { "met" } else { "NOT met" };
        out.push_str(&format!(
            "\nTarget — wasi-nn model time within {TARGET_RATIO}x of in-process ONNX Runtime: \
             batch 1 {one:.2}x ({}), batch {} {many:.2}x ({}).\n",
            verdict(one),
            nn.batch.signals,
            verdict(many)
        ));
    }
    out
}

/// Bars per path: p50 host compute (wasi-nn), model and end-to-end time; one panel per route; log
/// scale.
fn plot(results: &[PathResult], path: &Path, batch: usize) -> Result<()> {
    use plotters::prelude::*;
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    let root = SVGBackend::new(path, (1200, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root
        .titled("pfd-host: p50 latency (ms, log scale)", ("sans-serif", 22))
        .map_err(|e| err(&e))?;
    let panels = root.split_evenly((1, 2));
    let colors = [
        RGBColor(90, 90, 90),
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
    ];
    for (panel, (title, pick)) in panels.iter().zip([
        ("/predict (1 signal)".to_string(), 0usize),
        (format!("/predict/batch ({batch} signals)"), 1usize),
    ]) {
        // Bars: for each path, model p50 then (for servers) end-to-end p50.
        let mut bars: Vec<(String, f64, RGBColor)> = Vec::new();
        for (i, r) in results.iter().enumerate() {
            let s = if pick == 0 { &r.single } else { &r.batch };
            let c = colors[i % colors.len()];
            if r.key == "native-ort" {
                bars.push(("ORT in-process".into(), s.model(50.0), c));
            } else {
                if !s.host_compute_ms.is_empty() {
                    let host = Series::p(&s.host_compute_ms, 50.0);
                    bars.push((format!("{} host", r.key), host, darken(c)));
                }
                bars.push((format!("{} model", r.key), s.model(50.0), c));
                bars.push((format!("{} e2e", r.key), s.e2e(50.0), lighten(c)));
            }
        }
        let max = bars.iter().map(|b| b.1).fold(f64::MIN_POSITIVE, f64::max) * 3.0;
        let min = bars
            .iter()
            .map(|b| b.1)
            .filter(|v| *v > 0.0)
            .fold(f64::MAX, f64::min)
            / 3.0;
        let labels: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
        let mut chart = ChartBuilder::on(panel)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(60)
            .y_label_area_size(60)
            .build_cartesian_2d(
                (0..bars.len().saturating_sub(1)).into_segmented(),
                (min..max).log_scale(),
            )
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_desc("ms")
            .x_labels(bars.len())
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                    labels.get(*i).cloned().unwrap_or_default()
                }
                SegmentValue::Last => String::new(),
            })
            .y_label_formatter(&|v| {
                let s = format!("{v:.3}");
                s.trim_end_matches('0').trim_end_matches('.').to_string()
            })
            .draw()
            .map_err(|e| err(&e))?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (_, v, c))| {
                let mut r = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), min),
                        (SegmentValue::Exact(i + 1), *v),
                    ],
                    c.filled(),
                );
                r.set_margin(0, 0, 8, 8);
                r
            }))
            .map_err(|e| err(&e))?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (_, v, _))| {
                Text::new(
                    format!("{v:.3}"),
                    (SegmentValue::CenterOf(i), *v * 1.15),
                    ("sans-serif", 13).into_font(),
                )
            }))
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// Halfway to black: the host-compute bar before its path's model-time bar.
fn darken(c: plotters::style::RGBColor) -> plotters::style::RGBColor {
    plotters::style::RGBColor(c.0 / 2, c.1 / 2, c.2 / 2)
}

/// Halfway to white: the end-to-end bar next to its path's model-time bar.
fn lighten(c: plotters::style::RGBColor) -> plotters::style::RGBColor {
    let up = |x: u8| x + (255 - x) / 2;
    plotters::style::RGBColor(up(c.0), up(c.1), up(c.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(model: f64, e2e: f64, signals: usize, host: bool) -> Series {
        Series {
            e2e_ms: (0..100).map(|i| e2e + i as f64 * 0.01).collect(),
            model_ms: (0..100).map(|i| model + i as f64 * 0.001).collect(),
            throughput_rps: 100.0 / signals as f64,
            signals,
            host_compute_ms: if host { vec![model * 0.8] } else { vec![] },
        }
    }

    fn result(key: &'static str, model: f64, e2e: f64, correct: bool) -> PathResult {
        PathResult {
            key,
            label: key.to_string(),
            backend: format!("{key}/cpu"),
            single: series(model, e2e, 1, key == "wasi-nn"),
            batch: series(model * 30.0, e2e * 30.0, 32, key == "wasi-nn"),
            classes_ok: if correct { 11 } else { 10 },
            classes_total: 11,
            max_confidence_err: 0.0,
            correct,
        }
    }

    #[test]
    fn table_and_plot() {
        let results = vec![
            result("native-ort", 0.7, 0.7, true),
            result("wasi-nn", 0.8, 12.0, true),
            result("tract", 4.0, 16.0, false),
        ];
        let args = BenchArgs {
            requests: 100,
            batch_requests: 10,
            batch: 32,
            concurrency: Some(2),
            warmup: 1,
            out: PathBuf::from("unused"),
            manifest: PathBuf::from("spin.toml"),
            nn_component: PathBuf::from("x"),
            tract_component: PathBuf::from("y"),
            model: "m".into(),
            models_dir: PathBuf::from("models"),
            floor: None,
            floor_seconds: 5.0,
            nn: crate::config::NnArgs {
                device: DeviceRequest::Cpu,
                nn: crate::config::Switch::On,
                nn_models: None,
                nn_sessions: None,
                nn_intra_threads: 1,
                ort_lib: None,
            },
        };
        let opts = args.nn.options();
        let machine = machine_description("1.22.1", Path::new("/lib.so"), Device::Cpu, &opts, 2);
        let md = markdown(&results, &machine, &args);
        assert!(
            md.contains("| wasi-nn | `/predict` (1) | wasi-nn/cpu |"),
            "{md}"
        );
        assert!(md.contains("| 1.13x |"), "wasi-nn model ratio: {md}");
        assert!(md.contains("batch 1 1.13x (met)"), "{md}");
        assert!(md.contains("10/11 **MISMATCH**"), "{md}");
        let dir = tempfile::tempdir().unwrap();
        let svg = dir.path().join("bench.svg");
        plot(&results, &svg, 32).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.starts_with("<svg"));
        assert!(text.contains("wasi-nn model") && text.contains("tract e2e"));
        if let Some(keep) = std::env::var_os("PFD_BENCH_TEST_SVG") {
            std::fs::copy(&svg, keep).unwrap();
        }
    }

    #[test]
    fn percentiles_and_softmax() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(Series::p(&v, 50.0), 50.0);
        assert_eq!(Series::p(&v, 99.0), 99.0);
        assert!(Series::p(&[], 50.0).is_nan());
        let p = softmax(&[0.0, 0.0]);
        assert!((p[0] - 0.5).abs() < 1e-12);
    }
}
