//! wasi-nn end-to-end through the real `pfd-host` binary and the wasi-nn component
//! (`build/pfd-edge-nn.wasm`, or `PFD_TEST_NN_COMPONENT`): ONNX Runtime behind wasi-nn gives the
//! reference answers, the host picks the wasi-nn build by default, `--nn off` and a missing ONNX
//! Runtime fall back to tract in the guest (and say so), `--device cuda` without CUDA fails the
//! start, and 64 concurrent requests all succeed on the session pool.
//!
//! Without the component they print a note and pass; the tests that need ONNX Runtime look for the
//! library the way pfd-host does (`PFD_ORT_LIB`, `ORT_DYLIB_PATH`, the project venv) and print a
//! note and pass without it. The route-level suite over both builds lives in the workspace's
//! `tests/`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

mod common;
use common::{workspace, Server, Started};
use pfd_host::eval::{closeness, softmax};
use pfd_host::reference::Reference;

fn nn_component() -> Option<PathBuf> {
    let path = std::env::var_os("PFD_TEST_NN_COMPONENT")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("build/pfd-edge-nn.wasm"));
    if path.is_file() {
        Some(path)
    } else {
        eprintln!(
            "note: {} not built; skipping wasi-nn end-to-end test",
            path.display()
        );
        None
    }
}

/// libonnxruntime, found as pfd-host finds it (minus the system loader, which a test cannot
/// probe without loading it).
fn ort_library() -> Option<PathBuf> {
    let found = pfd_host::nn::ort_lib::library_file();
    if found.is_none() {
        eprintln!("note: no libonnxruntime (PFD_ORT_LIB / ORT_DYLIB_PATH / venv); skipping the ONNX Runtime part");
    }
    found
}

fn references() -> Reference {
    Reference::of_model(&workspace().join("models/bearing-lstm")).unwrap()
}

/// A cold compile plus ONNX Runtime's start can take a while; a cache hit is well under a second.
const START_TIMEOUT: Duration = Duration::from_secs(600);

fn start(args: &[&str]) -> Started {
    common::start(args, START_TIMEOUT)
}

fn serve(args: &[&str]) -> Server {
    common::serve(args, START_TIMEOUT)
}

impl Server {
    fn get(&self, path: &str) -> (u16, serde_json::Value) {
        request(self.addr, "GET", path, b"")
    }
    fn post(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        request(self.addr, "POST", path, body.to_string().as_bytes())
    }
    /// Every log line so far (startup included).
    fn logs(&mut self) -> String {
        // Guest output is forwarded asynchronously; give it a moment.
        std::thread::sleep(Duration::from_millis(200));
        self.startup.extend(self.logs.try_iter());
        self.startup.join("\n")
    }
}

/// One request per connection; the reply's status and JSON body (`null` when it is not JSON).
fn request(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, serde_json::Value) {
    let reply = common::request(
        addr,
        method,
        path,
        &[("Content-Type", "application/json")],
        body,
    );
    let json = serde_json::from_slice(&reply.body).unwrap_or(serde_json::Value::Null);
    (reply.status, json)
}

/// Every reference vector gives the reference class, and a confidence within rtol 1e-3 / atol
/// 1e-5 of the reference logits' softmax; the batch route agrees.
fn assert_reference_answers(server: &Server) {
    let refs = references();
    for (i, x) in refs.records().into_iter().enumerate() {
        let (status, v) = server.post(
            "/predict",
            &serde_json::json!({ "signal": x, "return_probabilities": true }),
        );
        assert_eq!(status, 200, "vector {i}: {v}");
        assert_eq!(
            v["predicted_class"].as_u64().unwrap() as usize,
            refs.predicted[i],
            "vector {i}"
        );
        let want = f64::from(softmax(&refs.logits[i])[refs.predicted[i]]);
        let got = v["confidence"].as_f64().unwrap();
        assert!(
            (got - want).abs() <= 1e-5 + 1e-3 * want.abs(),
            "vector {i}: confidence {got}, reference {want}"
        );
    }
    let (status, v) = server.post(
        "/predict/batch",
        &serde_json::json!({ "signals": refs.records() }),
    );
    assert_eq!(status, 200, "{v}");
    let classes: Vec<usize> = v["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["predicted_class"].as_u64().unwrap() as usize)
        .collect();
    assert_eq!(classes, refs.predicted);
}

/// Every reference vector's logits, through OIP `/infer` in one batch, are the reference logits
/// within the references' own rtol/atol.
fn assert_reference_logits(server: &Server) {
    let refs = references();
    let data: Vec<f32> = refs.records().concat();
    let (status, v) = server.post(
        "/v2/models/bearing-lstm/infer",
        &serde_json::json!({"inputs": [{
            "name": "input",
            "shape": [refs.count, 1, refs.length],
            "datatype": "FP32",
            "data": data,
        }]}),
    );
    assert_eq!(status, 200, "{v}");
    let out = &v["outputs"][0];
    assert_eq!(
        out["shape"],
        serde_json::json!([refs.count, refs.classes()]),
        "{out}"
    );
    let logits: Vec<f32> = serde_json::from_value(out["data"].clone()).unwrap();
    for (i, want) in refs.logits.iter().enumerate() {
        let got = &logits[i * refs.classes()..(i + 1) * refs.classes()];
        let c = closeness(got, want, refs.rtol, refs.atol);
        assert!(c.ok(), "vector {i}: {c:?}\n got {got:?}\nwant {want:?}");
    }
}

#[test]
fn onnx_runtime_behind_wasi_nn_gives_the_reference_answers() {
    let (Some(_), Some(lib)) = (nn_component(), ort_library()) else {
        return;
    };
    // No --component: the manifest names the portable build, the host picks the wasi-nn build.
    let lib = lib.to_string_lossy().into_owned();
    let mut server = serve(&["--device", "cpu", "--ort-lib", &lib, "--nn-sessions", "2"]);
    let (status, health) = server.get("/health");
    assert_eq!(status, 200);
    assert_eq!(health["device"], "wasi-nn/onnx/cpu", "{health}");
    assert_reference_answers(&server);
    let logs = server.logs();
    assert!(logs.contains("serving the wasi-nn build"), "{logs}");
    assert!(logs.contains("wasi-nn graph loaded"), "{logs}");
    assert!(
        !logs.contains("with tract"),
        "no fallback expected:\n{logs}"
    );
}

#[test]
fn nn_off_falls_back_to_tract_and_says_so() {
    let Some(component) = nn_component() else {
        return;
    };
    let mut server = serve(&["--component", component.to_str().unwrap(), "--nn", "off"]);
    let (_, health) = server.get("/health");
    assert_eq!(health["device"], "tract/wasm", "{health}");
    assert_reference_answers(&server);
    assert_reference_logits(&server);
    let logs = server.logs();
    assert!(logs.contains("wasi-nn off"), "{logs}");
    // The guest reports its fallback (through its stderr, in the host log).
    assert!(logs.contains("with tract in the guest"), "{logs}");
}

#[test]
fn without_onnx_runtime_the_host_still_serves_with_tract() {
    let Some(component) = nn_component() else {
        return;
    };
    let mut server = serve(&[
        "--component",
        component.to_str().unwrap(),
        "--ort-lib",
        "/nonexistent/libonnxruntime.so",
    ]);
    let (status, health) = server.get("/health");
    assert_eq!(status, 200);
    assert_eq!(health["device"], "tract/wasm", "{health}");
    let refs = references();
    let (status, v) = server.post("/predict", &serde_json::json!({ "signal": refs.input(0) }));
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["predicted_class"].as_u64().unwrap() as usize,
        refs.predicted[0]
    );
    let logs = server.logs();
    assert!(logs.contains("wasi-nn has no graphs"), "{logs}");
}

#[test]
fn device_cuda_without_cuda_fails_the_start() {
    if cfg!(feature = "cuda") {
        eprintln!("note: built with CUDA support; whether CUDA works depends on the machine");
        return;
    }
    let Some(component) = nn_component() else {
        return;
    };
    match start(&[
        "--component",
        component.to_str().unwrap(),
        "--device",
        "cuda",
    ]) {
        Started::Listening(_) => panic!("--device cuda started without CUDA"),
        Started::Exited(status, lines) => {
            assert!(!status.success());
            let text = lines.join("\n");
            assert!(text.contains("--device cuda"), "{text}");
        }
    }
}

#[test]
fn sixty_four_concurrent_requests_all_succeed_on_the_session_pool() {
    let (Some(component), Some(lib)) = (nn_component(), ort_library()) else {
        return;
    };
    let server = serve(&[
        "--component",
        component.to_str().unwrap(),
        "--device",
        "cpu",
        "--ort-lib",
        lib.to_str().unwrap(),
        "--nn-sessions",
        "2",
    ]);
    let refs = references();
    let bodies: Vec<Vec<u8>> = refs
        .records()
        .into_iter()
        .map(|x| serde_json::json!({ "signal": x }).to_string().into_bytes())
        .collect();
    let addr = server.addr;
    let barrier = std::sync::Barrier::new(64);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..64)
            .map(|i| {
                let (bodies, refs, barrier) = (&bodies, &refs, &barrier);
                s.spawn(move || {
                    let k = i % bodies.len();
                    barrier.wait();
                    let (status, v) = request(addr, "POST", "/predict", &bodies[k]);
                    assert_eq!(status, 200, "request {i}: {v}");
                    assert_eq!(
                        v["predicted_class"].as_u64().unwrap() as usize,
                        refs.predicted[k]
                    );
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
}

/// `pfd-host nn-check --device cpu` over `models_dir`.
fn nn_check_on_cpu(
    models_dir: &std::path::Path,
    ort_lib: &std::path::Path,
) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pfd-host"))
        .args([
            "nn-check",
            "--device",
            "cpu",
            "--iterations",
            "3",
            "--models-dir",
        ])
        .arg(models_dir)
        .arg("--ort-lib")
        .arg(ort_lib)
        .output()
        .expect("run pfd-host nn-check")
}

#[test]
fn nn_check_passes_every_model_on_cpu_with_its_own_tolerances() {
    let Some(lib) = ort_library() else {
        return;
    };
    let out = nn_check_on_cpu(&workspace().join("models"), &lib);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Each model is checked with the tolerances recorded in its reference.json.
    assert!(
        stdout.contains("| bearing-lstm | cpu | 11 | 1e-3 / 1e-5 |"),
        "{stdout}"
    );
    assert!(
        stdout.contains("| bearing-lstm-int8 | cpu | 11 | 1e-3 / 1e-2 |"),
        "{stdout}"
    );
    assert!(!stdout.contains("MISMATCH"), "{stdout}");

    // A reference that the model does not reproduce fails the check, naming the vector.
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("bearing-lstm");
    std::fs::create_dir(&model).unwrap();
    let source = workspace().join("models/bearing-lstm");
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, model.join(path.file_name().unwrap())).unwrap();
        }
    }
    let reference = model.join(pfd_core::card::REFERENCE_FILE);
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&reference).unwrap()).unwrap();
    let first = v["logits"][0][0].as_f64().unwrap();
    v["logits"][0][0] = serde_json::json!(first + 0.5);
    std::fs::write(&reference, v.to_string()).unwrap();
    let out = nn_check_on_cpu(dir.path(), &lib);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("MISMATCH bearing-lstm: vector 0: CPU differs from the reference"),
        "{stdout}"
    );
}

/// `pfd-host bench` on the CPU with this ONNX Runtime, the project's models and short floors.
#[cfg(feature = "tools")]
fn bench_floor_command(lib: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pfd-host"));
    command
        .args(["bench", "--device", "cpu", "--floor-seconds", "0.3"])
        .arg("--models-dir")
        .arg(workspace().join("models"))
        .arg("--ort-lib")
        .arg(lib);
    command
}

/// A floor's report: the one JSON object a successful `pfd-host bench` floor prints.
#[cfg(feature = "tools")]
fn floor_report(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(out.stdout.trim_ascii_end()).expect("one JSON object")
}

/// `pfd-host bench --floor BODY`: the native floor the load bench divides by — the guest's
/// decoder on the body plus the in-process ONNX Runtime call — reported as JSON with a CPU time
/// per request that is the decode's plus the model's; a body that is not a `/predict` body is an
/// error, not a floor of zero.
#[test]
#[cfg(feature = "tools")]
fn bench_floor_reports_the_native_work_of_a_predict_body() {
    let Some(lib) = ort_library() else { return };
    let refs = references();
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("predict.json");
    std::fs::write(
        &body,
        serde_json::json!({ "signal": refs.input(0) }).to_string(),
    )
    .unwrap();
    let floor = |body: &std::path::Path| {
        bench_floor_command(&lib)
            .arg("--floor")
            .arg(body)
            .output()
            .expect("run pfd-host bench --floor")
    };
    let report = floor_report(&floor(&body));
    assert_eq!(report["samples"], refs.input(0).len());
    let ms = |k: &str| report[k]["cpu_ms"].as_f64().unwrap();
    assert!(ms("decode") > 0.0 && ms("oip_binary") > 0.0, "{report}");
    // The /predict floor is the decode and the model call together. Not `predict > decode`:
    // the two are measured a few hundred ms apart, and on a shared 2-core machine a stall in
    // one of them (CI once measured decode 5.06 against predict 5.05 ms, both ~3x their usual)
    // is larger than the model's share; half of it still catches a floor that skipped work.
    assert!(ms("predict") > 0.5 * ms("decode"), "{report}");
    assert!(ms("predict") > 0.5 * ms("oip_binary"), "{report}");
    assert!(report["predict"]["iterations"].as_u64().unwrap() >= 10);

    std::fs::write(&body, br#"{"signal": [1, 2, "x"]}"#).unwrap();
    let out = floor(&body);
    assert!(!out.status.success(), "a bad body gave a floor");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a valid /predict body"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `pfd-host bench --diagnose-floor RECORDING`: the native floor `scripts/diagnose_bench.py` sets
/// the served builds beside is the guest's own `/diagnose` route compiled natively — so it answers
/// what the served wasi-nn component answers for the same body and query (diagnosis, confidence,
/// windows, defect lines), and reports a time split whose stages fit in its total; a recording the
/// route refuses is an error, not a floor.
#[test]
#[cfg(feature = "tools")]
fn bench_diagnose_floor_is_the_served_route_compiled_natively() {
    let (Some(_), Some(lib)) = (nn_component(), ort_library()) else {
        return;
    };
    let refs = references();
    // Two reference records back to back, declared at 25.6 kHz: every stage runs (resampling,
    // two windows, the bearing lines).
    let samples: Vec<f32> = [refs.input(0), refs.input(1)].concat();
    let body: Vec<u8> = samples.iter().flat_map(|v| v.to_le_bytes()).collect();
    let query = "sample_rate=25600&dtype=f32&rpm=1770&bearing=6205";
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("recording.f32");
    std::fs::write(&recording, &body).unwrap();
    let floor = |recording: &std::path::Path, content_type: &str| {
        bench_floor_command(&lib)
            .args([
                "--diagnose-query",
                query,
                "--diagnose-content-type",
                content_type,
            ])
            .arg("--manifest")
            .arg(workspace().join("spin.toml"))
            .arg("--diagnose-floor")
            .arg(recording)
            .output()
            .expect("run pfd-host bench --diagnose-floor")
    };
    let report = floor_report(&floor(&recording, "application/octet-stream"));
    let t = |k: &str| report["timing_ms"][k].as_f64().unwrap();
    let stages = ["decode", "resample", "model", "unknown", "evidence"];
    assert!(
        t("model") > 0.0 && t("resample") > 0.0 && t("evidence") > 0.0,
        "{report}"
    );
    // Each request's stages fit in its total, so each stage's median is at most the total's
    // (the medians' *sum* need not be: one run of five measured it 0.04 ms above).
    assert!(stages.iter().all(|s| t(s) <= t("total")), "{report}");
    let last = &report["answer"]["timing_ms"];
    let last_ms = |k: &str| last[k].as_f64().unwrap();
    assert!(
        stages.iter().map(|s| last_ms(s)).sum::<f64>() <= last_ms("total"),
        "{report}"
    );
    assert!(
        report["cpu_ms"].as_f64().unwrap() > 0.5 * t("total"),
        "{report}"
    );
    assert!(report["requests"].as_u64().unwrap() >= 5, "{report}");

    let lib_arg = lib.to_string_lossy().into_owned();
    let server = serve(&["--device", "cpu", "--ort-lib", &lib_arg]);
    let reply = common::request(
        server.addr,
        "POST",
        &format!("/diagnose?{query}"),
        &[("Content-Type", "application/octet-stream")],
        &body,
    );
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let served: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(served["model"]["device"], "wasi-nn/onnx/cpu", "{served}");
    let native = &report["answer"];
    assert_eq!(
        native["diagnosis"]["class_name"], served["diagnosis"]["class_name"],
        "native {native}\nserved {served}"
    );
    assert_eq!(native["windows"], 2);
    assert_eq!(served["windows"].as_array().unwrap().len(), 2);
    assert_eq!(native["present"], served["evidence"]["bearing"]["present"]);
    let (a, b) = (
        native["diagnosis"]["confidence"].as_f64().unwrap(),
        served["diagnosis"]["confidence"].as_f64().unwrap(),
    );
    assert!((a - b).abs() <= 1e-5 + 1e-3 * b, "native {a}, served {b}");

    std::fs::write(&recording, b"RIFF\x10\0\0\0WAVEfmt ").unwrap();
    let out = floor(&recording, "audio/wav");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a garbled WAV gave a floor");
    assert!(stderr.contains("/diagnose answered 4"), "{stderr}");
}
