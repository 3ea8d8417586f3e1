//! `pfd-host bench --diagnose-floor RECORDING`: the native floor of one `/diagnose` request, for
//! `scripts/diagnose_bench.py` to set every served build beside (same run, same machine, no
//! request served meanwhile).
//!
//! The floor is the guest's own route, `pfd_core::diagnose::diagnose`, compiled natively and
//! called in this process on the same body and query, one request at a time: decoding, the
//! survey, resampling, the windows through ONNX Runtime (an `ort` session with the server's
//! settings, in engine calls of the manifest's `PFD_BATCH_SIZE`, exactly as the guest's
//! `run_model` makes them), the unknown-condition features, the spectra and the evidence — and
//! the JSON answer. Nothing is re-implemented here: one place for that logic, so the floor cannot
//! drift from what is served. Its plans and resamplers are made first for the card, as
//! `pfd-host preinit` makes them in the component.
//!
//! What it leaves out (and a served request pays for): HTTP, the body's copy into the guest, a
//! fresh instance per request (whose memory is faulted in anew), the guest's code running as
//! wasm (128-bit SIMD, epoch-interruption checks) rather than native, and the windows' trip
//! through wasi-nn. A served build's total over this floor's is what serving the diagnosis as a
//! WASI component costs on top of the work itself; the floor's own total over its model time is
//! the best any build of this route can reach on this machine.
//!
//! Prints one JSON object: CPU and wall time per request, the medians of the route's own
//! `timing_ms` split, and what it answered last (the diagnosis, the window count, the defect
//! lines present — the same as the served build's, which a test checks — and its own split).

use super::args::BenchArgs;
use super::baseline::session_logits;
use super::floor::{floor_session, measure, FloorSession};
use crate::eval::percentile;
use crate::manifest::{AppManifest, GuestEnv};
use anyhow::{anyhow, bail, Context as _, Result};
use pfd_core::app::{App, ModelStore, ServedModel};
use pfd_core::card::{ModelCard, CARD_FILE};
use pfd_core::config::Config;
use pfd_core::engine::{BackendInfo, EngineError, InferenceEngine};
use pfd_core::http::Request;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// The timing split `/diagnose` reports (`timing_ms`), in its order.
const STAGES: [&str; 6] = [
    "decode", "resample", "model", "unknown", "evidence", "total",
];

/// ONNX Runtime in this process as a `pfd-core` engine: what wasi-nn gives the guest, without
/// the trip.
struct OrtEngine {
    session: Mutex<ort::session::Session>,
    input: String,
    output: String,
    device: String,
}

impl InferenceEngine for OrtEngine {
    fn backend(&self) -> BackendInfo {
        BackendInfo {
            backend: "native/onnx".into(),
            device: self.device.clone(),
        }
    }

    fn run(&self, input: &[f32], batch: usize, length: usize) -> Result<Vec<f32>, EngineError> {
        let mut session = self.session.lock().expect("one request at a time");
        session_logits(
            &mut session,
            &self.input,
            &self.output,
            input,
            batch,
            length,
        )
        .map_err(|e| EngineError::Inference(e.to_string()))
    }
}

/// The one model the floor serves, under its folder's name.
struct OneModel {
    name: String,
    model: ServedModel,
}

impl ModelStore for OneModel {
    fn get(&self, name: &str) -> Result<&ServedModel, String> {
        if name == self.name {
            Ok(&self.model)
        } else {
            Err(format!("the floor serves {:?} only", self.name))
        }
    }

    fn names(&self) -> Result<Vec<String>, String> {
        Ok(vec![self.name.clone()])
    }
}

pub fn run(args: &BenchArgs, recording: &Path) -> Result<()> {
    let body =
        std::fs::read(recording).with_context(|| format!("reading {}", recording.display()))?;
    let model_dir = args.models_dir.join(&args.model);
    let card_path = model_dir.join(CARD_FILE);
    let card = ModelCard::parse(
        &std::fs::read(&card_path).with_context(|| format!("reading {}", card_path.display()))?,
    )
    .map_err(|e| anyhow!("{}: {e}", card_path.display()))?;

    // The guest's settings (the manifest's environment, overridden like `serve` overrides it),
    // with the model asked for as the default one.
    let manifest = AppManifest::load(&args.manifest)?;
    let env = GuestEnv::resolve(&manifest.environment, |k| std::env::var(k).ok(), &[]);
    let mut vars: BTreeMap<String, String> = env.vars.into_iter().collect();
    vars.insert("PFD_MODEL".into(), args.model.clone());
    let config = Config::from_vars(&vars).map_err(|e| anyhow!("the manifest's settings: {e}"))?;

    let FloorSession {
        model,
        session,
        input,
        output,
        device,
        describe,
    } = floor_session(args)?;
    let engine = OrtEngine {
        input,
        output,
        session: Mutex::new(session),
        device: device.as_str().to_string(),
    };
    pfd_core::diagnose::prepare(&card);
    let store = OneModel {
        name: args.model.clone(),
        model: ServedModel::new(card, Box::new(engine), model.len() as u64),
    };
    let app = App {
        config: &config,
        models: &store,
    };
    let headers = vec![(
        "content-type".to_string(),
        args.diagnose_content_type.clone(),
    )];
    let request = Request {
        method: "POST",
        path: "/diagnose",
        query: &args.diagnose_query,
        headers: &headers,
        body: &body,
    };

    // Every call's answer is kept and read after the loop, so the measured CPU and wall time are
    // the route's alone; the last `iterations` are the measured ones (`measure` warms up with
    // calls of its own first).
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    let timed = measure(Duration::from_secs_f64(args.floor_seconds), || {
        let response = pfd_core::diagnose::diagnose(&app, std::hint::black_box(&request));
        if response.status != 200 {
            bail!(
                "/diagnose answered {}: {}",
                response.status,
                String::from_utf8_lossy(&response.body)
            );
        }
        bodies.push(response.body);
        Ok(bodies.len())
    })?;
    let measured = timed["iterations"].as_u64().unwrap_or(0) as usize;
    let answers = bodies[bodies.len() - measured..]
        .iter()
        .map(|b| serde_json::from_slice(b))
        .collect::<Result<Vec<serde_json::Value>, _>>()
        .context("/diagnose answered with a body that is not JSON")?;
    let split: serde_json::Map<String, serde_json::Value> = STAGES
        .iter()
        .map(|&stage| {
            let mut ms: Vec<f64> = answers
                .iter()
                .map(|a| a["timing_ms"][stage].as_f64().unwrap_or(f64::NAN))
                .collect();
            ms.sort_by(f64::total_cmp);
            (stage.to_string(), json!(percentile(&ms, 50.0)))
        })
        .collect();
    let last = answers.last().context("the floor made no measured call")?;
    let answered = json!({
        "diagnosis": last["diagnosis"],
        "windows": last["windows"].as_array().map(Vec::len),
        "present": last["evidence"]["bearing"]["present"],
        "timing_ms": last["timing_ms"],
    });
    let mut report = describe;
    report.extend([
        (
            "engine_batch_size".to_string(),
            json!(config.engine_batch_size),
        ),
        ("body_bytes".to_string(), json!(body.len())),
        ("requests".to_string(), timed["iterations"].clone()),
        ("cpu_ms".to_string(), timed["cpu_ms"].clone()),
        ("wall_ms".to_string(), timed["wall_ms"].clone()),
        ("timing_ms".to_string(), json!(split)),
        ("answer".to_string(), answered),
    ]);
    println!("{}", serde_json::Value::Object(report));
    Ok(())
}
