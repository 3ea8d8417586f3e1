//! The LSTM_PFD API's handlers (`/`, `/health`, `/health/live`, `/health/ready`, `/model/info`,
//! `/predict`, `/predict/batch`) and the service's OpenAPI document, as the route table
//! ([`crate::router`]) calls them. The schemas and their validation are [`crate::predict`]'s.

use std::time::Instant;

use serde_json::json;

use crate::app::{readiness, run_model, App, Inference, ServedModel};
use crate::errors::http_error;
use crate::http::{Request, Response};
use crate::postprocess::decide;
use crate::predict::{self, BatchPredictionResponse, PredictionResponse};
use crate::{timefmt, VERSION};

/// The OpenAPI 3.1 document of both APIs (checked against the routes by the test suites).
pub const OPENAPI: &str = include_str!("../api/openapi.json");

pub(crate) fn openapi(_: &App, _: &Request) -> Response {
    Response {
        status: 200,
        headers: vec![("content-type", "application/json".into())],
        body: OPENAPI.as_bytes().to_vec(),
    }
}

pub(crate) fn welcome(_: &App, _: &Request) -> Response {
    Response::json(
        200,
        &json!({
            "message": "Bearing Fault Diagnosis API (pfd-edge)",
            "version": VERSION,
            "docs": "/openapi.json",
            "health": "/health",
            "ui": "/ui",
        }),
    )
}

pub(crate) fn health(app: &App, _: &Request) -> Response {
    let model = app.models.get(&app.config.default_model);
    let loaded = model.is_ok();
    let status = if !loaded && app.config.strict_health {
        503
    } else {
        200
    };
    Response::json(
        status,
        &json!({
            "status": if loaded { "healthy" } else { "unhealthy" },
            "timestamp": timefmt::now(),
            "model_loaded": loaded,
            "device": model.map(|m| m.backend().to_string()).unwrap_or_else(|_| "none".into()),
            "version": VERSION,
        }),
    )
}

pub(crate) fn live_response() -> Response {
    Response::json(200, &json!({"status": "alive"}))
}

pub(crate) fn live(_: &App, _: &Request) -> Response {
    live_response()
}

pub(crate) fn ready(app: &App, _: &Request) -> Response {
    let name = &app.config.default_model;
    match readiness(app.models, name) {
        Ok(m) => Response::json(
            200,
            &json!({"status": "ready", "model": name, "device": m.backend().to_string()}),
        ),
        Err(reason) => Response::json(
            503,
            &json!({"status": "not ready", "model": name, "reason": reason}),
        ),
    }
}

pub(crate) fn model_info(app: &App, _: &Request) -> Response {
    let Ok(m) = app.models.get(&app.config.default_model) else {
        return http_error(503, "Model not loaded");
    };
    let card = &m.card;
    let class_names: serde_json::Map<String, serde_json::Value> = card
        .class_names
        .iter()
        .enumerate()
        .map(|(i, n)| (i.to_string(), json!(n)))
        .collect();
    Response::json(
        200,
        &json!({
            "model_name": card.name,
            "model_version": card.version,
            "model_type": card.model_type,
            "num_classes": card.num_classes(),
            "input_shape": [1, 1, card.signal_length],
            "sample_rate_hz": card.sample_rate_hz,
            "num_parameters": card.num_parameters,
            "model_size_mb": m.file_size_bytes as f64 / 1_048_576.0,
            "class_names": class_names,
            "backend": m.backend().backend,
            "device": m.backend().to_string(),
        }),
    )
}

/// [`run_model`] on the default model; `Err` is the response to send.
fn infer(app: &App, m: &ServedModel, signals: &[&[f32]]) -> Result<Inference, Response> {
    run_model(app, &app.config.default_model, m, signals)
        .map_err(|e| http_error(500, &format!("Inference failed: {e}")))
}

fn prediction(
    m: &ServedModel,
    logits: &[f32],
    probabilities: bool,
    top_k: Option<usize>,
    ms: f64,
) -> PredictionResponse {
    let d = decide(logits);
    PredictionResponse {
        predicted_class: d.class,
        class_name: m.card.class_names[d.class].clone(),
        confidence: d.confidence,
        probabilities: probabilities.then(|| d.named(&m.card.class_names, top_k)),
        inference_time_ms: ms,
        timestamp: timefmt::now(),
    }
}

pub(crate) fn predict_one(app: &App, req: &Request) -> Response {
    let Ok(m) = app.models.get(&app.config.default_model) else {
        return http_error(503, "Model not loaded");
    };
    let started = Instant::now();
    let body = match predict::parse_predict(req.body, &m.limits(app.config)) {
        Ok(b) => b,
        Err(rejection) => return rejection.into_response(),
    };
    let decode_ms = ms_since(started);
    match infer(app, m, &[&body.signal]) {
        Ok(run) => run.record.attach(timed_json(
            &prediction(
                m,
                &run.logits[0],
                body.return_probabilities,
                body.return_top_k,
                run.ms,
            ),
            decode_ms,
            run.ms,
        )),
        Err(response) => response,
    }
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// A 200 JSON response with a `Server-Timing` header splitting the guest's work into request
/// decoding, inference and response encoding (standard header; browsers' dev tools and
/// `scripts/latency.py` read it).
fn timed_json(value: &impl serde::Serialize, decode_ms: f64, infer_ms: f64) -> Response {
    let started = Instant::now();
    let response = Response::json(200, value);
    let timing = format!(
        "decode;dur={decode_ms:.3}, infer;dur={infer_ms:.3}, encode;dur={:.3}",
        ms_since(started)
    );
    response.with_header("server-timing", timing)
}

pub(crate) fn predict_batch(app: &App, req: &Request) -> Response {
    let Ok(m) = app.models.get(&app.config.default_model) else {
        return http_error(503, "Model not loaded");
    };
    let started = Instant::now();
    let body = match predict::parse_batch(req.body, &m.limits(app.config)) {
        Ok(b) => b,
        Err(rejection) => return rejection.into_response(),
    };
    let decode_ms = ms_since(started);
    let signals: Vec<&[f32]> = body.signals.iter().map(Vec::as_slice).collect();
    let run = match infer(app, m, &signals) {
        Ok(r) => r,
        Err(response) => return response,
    };
    let n = signals.len();
    let each_ms = run.ms / n as f64;
    run.record.attach(timed_json(
        &BatchPredictionResponse {
            predictions: run
                .logits
                .iter()
                .map(|l| prediction(m, l, body.return_probabilities, body.return_top_k, each_ms))
                .collect(),
            batch_size: n,
            total_inference_time_ms: run.ms,
            average_inference_time_ms: each_ms,
        },
        decode_ms,
        run.ms,
    ))
}
