//! `POST /diagnose`: a real recording in, a diagnosis with its evidence out.
//!
//! The route adapts [`pfd_signal`] to the API: it reads the query and the `Content-Type`,
//! decodes the body ([`pfd_signal::formats`]), resamples it to the model card's rate, cuts the
//! card's windows at `hop_s` and runs them as one batch through the model's engine (the same
//! [`crate::app::run_model`] as every other route: wasi-nn or tract), then aggregates the
//! windows ([`pfd_signal::windows`]), scores the "unknown condition" ([`pfd_signal::unknown`])
//! and measures the physics evidence ([`pfd_signal::evidence`]).
//!
//! Errors use the LSTM_PFD error shape (`{"error", "detail", "timestamp"}`): 415 for formats,
//! codecs and dtypes it does not read, 413 for recordings longer than
//! `PFD_MAX_RECORD_SECONDS`, 422 for everything malformed or out of range, each message naming
//! the parameter, row, column or sample at fault.

use std::time::Instant;

use serde::Serialize;
use serde_json::json;

use pfd_signal::bearings::{self, BearingQuery};
use pfd_signal::formats::{self, DecodeOptions, Format};
use pfd_signal::windows::{self, MAX_WINDOWS};
use pfd_signal::{evidence, resample, spectrum, unknown, SignalError};

use crate::app::{run_model, App};
use crate::errors::http_error;
use crate::http::{Request, Response};
use crate::postprocess::{decide, Probabilities};

/// The query parameters `/diagnose` reads; any other is a 422 (a typo such as `samplerate`
/// would otherwise be ignored silently and the request answered with the wrong settings).
pub const PARAMETERS: &[(&str, &str)] = &[
    (
        "sample_rate",
        "Hz; required where the format does not carry it (CSV without time_column, NumPy, raw)",
    ),
    (
        "channel",
        "0-based channel of a WAV or 2-D NumPy recording (default 0)",
    ),
    (
        "column",
        "CSV value column: a header name or a 0-based index",
    ),
    (
        "time_column",
        "CSV column of times in seconds: gives the sample rate",
    ),
    ("dtype", "raw samples: f32 (default) or i16, little-endian"),
    (
        "rpm",
        "shaft speed, revolutions per minute: enables the shaft and bearing evidence",
    ),
    (
        "bearing",
        "a bearing of the table (6203 … 6208): enables the defect lines",
    ),
    ("balls", "rolling elements of a bearing not in the table"),
    ("ball_diameter_mm", "rolling-element diameter, mm"),
    ("pitch_diameter_mm", "pitch diameter, mm"),
    ("contact_angle_deg", "contact angle, degrees (default 0)"),
    ("hop_s", "window hop in seconds (default half a window)"),
    (
        "spectrum_max_hz",
        "return the envelope spectrum from 0 Hz to this frequency (at most 1024 points; it reaches at least 2.5 kHz)",
    ),
    (
        "model",
        "the model to run (default: the LSTM_PFD routes' model)",
    ),
];

/// The parsed query.
#[derive(Debug, Default)]
struct Query {
    decode: DecodeOptions,
    rpm: Option<f64>,
    bearing: BearingQuery,
    hop_s: Option<f64>,
    spectrum_max_hz: Option<f64>,
    model: Option<String>,
}

fn bad(message: impl Into<String>) -> SignalError {
    SignalError::Invalid(message.into())
}

fn number(name: &str, text: &str) -> Result<f64, SignalError> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| bad(format!("{name}={text:?} is not a number")))
}

fn positive(name: &str, text: &str) -> Result<f64, SignalError> {
    let v = number(name, text)?;
    if v > 0.0 {
        Ok(v)
    } else {
        Err(bad(format!("{name} must be positive, got {v}")))
    }
}

fn count(name: &str, text: &str) -> Result<usize, SignalError> {
    text.trim()
        .parse::<usize>()
        .map_err(|_| bad(format!("{name}={text:?} is not a whole number ≥ 0")))
}

fn parse_query(query: &str) -> Result<Query, SignalError> {
    let mut q = Query::default();
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if !PARAMETERS.iter().any(|(n, _)| *n == name) {
            let known: Vec<&str> = PARAMETERS.iter().map(|(n, _)| *n).collect();
            return Err(bad(format!(
                "unknown query parameter {name:?}; /diagnose reads: {}",
                known.join(", ")
            )));
        }
        if seen.iter().any(|s| *s == name) {
            return Err(bad(format!("query parameter {name:?} is given twice")));
        }
        seen.push(name.to_string());
        let v = value.as_ref();
        match name.as_ref() {
            "sample_rate" => q.decode.sample_rate = Some(positive("sample_rate", v)?),
            "channel" => q.decode.channel = Some(count("channel", v)?),
            "column" => q.decode.column = Some(v.to_string()),
            "time_column" => q.decode.time_column = Some(v.to_string()),
            "dtype" => q.decode.dtype = Some(v.to_string()),
            "rpm" => q.rpm = Some(positive("rpm", v)?),
            "bearing" => q.bearing.name = Some(v.to_string()),
            "balls" => q.bearing.balls = Some(count("balls", v)? as u32),
            "ball_diameter_mm" => {
                q.bearing.ball_diameter_mm = Some(positive("ball_diameter_mm", v)?)
            }
            "pitch_diameter_mm" => {
                q.bearing.pitch_diameter_mm = Some(positive("pitch_diameter_mm", v)?)
            }
            "contact_angle_deg" => {
                q.bearing.contact_angle_deg = Some(number("contact_angle_deg", v)?)
            }
            "hop_s" => q.hop_s = Some(positive("hop_s", v)?),
            "spectrum_max_hz" => q.spectrum_max_hz = Some(positive("spectrum_max_hz", v)?),
            "model" => q.model = Some(v.to_string()),
            _ => unreachable!("every listed parameter is handled"),
        }
    }
    Ok(q)
}

#[derive(Serialize)]
struct WindowOut {
    start_s: f64,
    class: usize,
    class_name: String,
    confidence: f32,
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn error(e: SignalError) -> Response {
    http_error(e.status(), &e.to_string())
}

/// Makes the FFT plans, windows and resamplers `/diagnose` uses for `card`'s model ahead of its
/// first request ([`pfd_signal::prepare`]): the component calls it while it is pre-initialised.
pub fn prepare(card: &crate::card::ModelCard) {
    pfd_signal::prepare::for_model(card.sample_rate_hz, card.signal_length);
}

/// The handler of `GET /bearings`: the bearing table `/diagnose` knows (`bearing=`), each with
/// its geometry and its defect frequencies as orders of the shaft speed.
pub fn bearings(_: &App, _: &Request) -> Response {
    Response::json(200, &json!({ "bearings": evidence::bearing_table() }))
}

/// The handler of `POST /diagnose`.
pub fn diagnose(app: &App, req: &Request) -> Response {
    match run(app, req) {
        Ok(response) => response,
        Err(e) => error(e),
    }
}

fn run(app: &App, req: &Request) -> Result<Response, SignalError> {
    let started = Instant::now();
    let query = parse_query(req.query)?;
    let format = Format::from_content_type(req.header("content-type"))?;
    let bearing = bearings::resolve(&query.bearing)?;
    if bearing.is_some() && query.rpm.is_none() {
        return Err(bad("a bearing needs the shaft speed too: add rpm="));
    }
    let name = query
        .model
        .clone()
        .unwrap_or_else(|| app.config.default_model.clone());
    let model = match app.models.get(&name) {
        Ok(m) => m,
        Err(reason) if query.model.is_some() => {
            return Ok(http_error(
                404,
                &format!("model {name:?} is not available: {reason}"),
            ))
        }
        Err(_) => return Ok(http_error(503, "Model not loaded")),
    };
    let card = &model.card;

    let t = Instant::now();
    let recording = formats::decode(format, req.body, &query.decode)?;
    let sample_count = recording.samples.len();
    let duration_s = sample_count as f64 / recording.sample_rate;
    let max_s = app.config.max_record_seconds as f64;
    if duration_s > max_s {
        return Err(SignalError::TooLong(format!(
            "the recording is {duration_s:.1} s long; at most {max_s} s are accepted (PFD_MAX_RECORD_SECONDS)"
        )));
    }
    let decode_ms = ms(t);

    // What needs the recording as it came is measured first, so resampling can consume it:
    // an f32 recording's memory then holds the model's batch, and 16-bit PCM is never
    // converted as a whole (`Samples::Pcm16`: the survey and the resampler read the body in
    // blocks). Why it matters: each request is a fresh instance, and memory it never touched
    // before costs page faults (a 60 s, 48 kHz recording is 11.5 MB of f32). One survey (two
    // passes) serves the evidence's indicators and the unknown flag's input checks; its time
    // is counted in the evidence's.
    let t = Instant::now();
    let survey = evidence::survey(&recording.samples);
    let input_checks = unknown::checks(&survey);
    let evidence_input_ms = ms(t);

    let t = Instant::now();
    let rate = card.sample_rate_hz;
    let signal = resample::resample(recording.samples, recording.sample_rate, rate)?;
    let resample_ms = ms(t);
    let length = card.signal_length;
    if signal.len() < length {
        return Err(bad(format!(
            "the recording is {duration_s:.3} s long; the model needs at least {:.3} s ({length} samples at {rate} Hz)",
            length as f64 / rate as f64
        )));
    }
    let hop = match query.hop_s {
        Some(s) => ((s * rate as f64).round() as usize).max(1),
        None => length / 2,
    };
    let starts = windows::starts(signal.len(), length, hop);
    if starts.len() > MAX_WINDOWS {
        return Err(bad(format!(
            "hop_s={} would cut {} windows; at most {MAX_WINDOWS} are run per request: use a longer hop",
            hop as f64 / rate as f64,
            starts.len()
        )));
    }
    let slices: Vec<&[f32]> = starts.iter().map(|&s| &signal[s..s + length]).collect();

    let run = match run_model(app, &name, model, &slices) {
        Ok(r) => r,
        Err(e) => return Ok(http_error(500, &format!("Inference failed: {e}"))),
    };
    let decisions: Vec<_> = run.logits.iter().map(|l| decide(l)).collect();
    let probabilities: Vec<Vec<f32>> = decisions.iter().map(|d| d.probabilities.clone()).collect();
    let vote = windows::aggregate(&probabilities);
    let class_name = &card.class_names[vote.class];

    let t = Instant::now();
    let features = unknown::features(&slices, &run.logits, rate as f64);
    let verdict = unknown::verdict(
        card.unknown.as_ref(),
        &features,
        vote.class,
        class_name,
        input_checks,
    );
    let unknown_ms = ms(t);

    let t = Instant::now();
    let bandwidth_hz = (recording.sample_rate / 2.0).min(rate as f64 / 2.0);
    let spectra = spectrum::analyse(&signal, rate as f64, bandwidth_hz);
    let mut evidence = evidence::evidence(survey.indicators, &spectra, query.rpm, bearing.as_ref());
    evidence.envelope_spectrum = query
        .spectrum_max_hz
        .map(|hz| spectrum::excerpt(&spectra.envelope, spectra.resolution_hz, hz));
    let evidence_ms = ms(t) + evidence_input_ms;

    let mut warnings = Vec::new();
    let validated_hz = card.min_bandwidth_hz();
    if bandwidth_hz < validated_hz {
        warnings.push(format!(
            "the recording holds 0–{bandwidth_hz:.0} Hz, the model was validated on recordings holding at least 0–{validated_hz:.0} Hz: conditions that show above {bandwidth_hz:.0} Hz (lubrication, cavitation) are harder to tell"
        ));
    }
    let covered = starts.last().map_or(0, |s| s + length);
    let window_s = length as f64 / rate as f64;
    let body = json!({
        "diagnosis": {
            "class": vote.class,
            "class_name": class_name,
            "confidence": vote.confidence,
            "agreement": vote.agreement,
            "probabilities": Probabilities(
                card.class_names.iter().cloned().zip(vote.mean_probabilities.iter().copied()).collect()
            ),
        },
        "unknown": verdict,
        "windows": starts.iter().zip(&decisions).map(|(&s, d)| WindowOut {
            start_s: s as f64 / rate as f64,
            class: d.class,
            class_name: card.class_names[d.class].clone(),
            confidence: d.confidence,
        }).collect::<Vec<_>>(),
        "evidence": evidence,
        "input": {
            "format": recording.format.name(),
            "sample_rate": recording.sample_rate,
            "resampled_to": rate,
            "duration_s": duration_s,
            "channels": recording.channels,
            "channel_used": recording.channel_used,
            "samples": sample_count,
            "bandwidth_hz": bandwidth_hz,
            "window_s": window_s,
            "hop_s": hop as f64 / rate as f64,
            "covered_s": covered as f64 / rate as f64,
            "warnings": warnings,
        },
        "model": {
            "name": name,
            "version": card.version,
            "device": model.backend().to_string(),
        },
        "timing_ms": {
            "decode": decode_ms,
            "resample": resample_ms,
            "model": run.ms,
            "unknown": unknown_ms,
            "evidence": evidence_ms,
            "total": ms(started),
        },
    });
    let timing = format!(
        "decode;dur={decode_ms:.3}, resample;dur={resample_ms:.3}, infer;dur={:.3}, unknown;dur={unknown_ms:.3}, evidence;dur={evidence_ms:.3}",
        run.ms
    );
    Ok(run
        .record
        .attach(Response::json(200, &body).with_header("server-timing", timing)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_checked_parameter_by_parameter() {
        let q = parse_query("sample_rate=12800&column=accel%20x&rpm=1770&bearing=6205").unwrap();
        assert_eq!(q.decode.sample_rate, Some(12_800.0));
        assert_eq!(q.decode.column.as_deref(), Some("accel x"));
        assert_eq!(q.rpm, Some(1770.0));
        for (query, message) in [
            ("samplerate=1", "unknown query parameter \"samplerate\""),
            ("rpm=0", "rpm must be positive, got 0"),
            ("rpm=-5", "rpm must be positive"),
            ("sample_rate=abc", "sample_rate=\"abc\" is not a number"),
            ("sample_rate=inf", "is not a number"),
            ("channel=-1", "not a whole number"),
            ("rpm=1&rpm=2", "given twice"),
        ] {
            let e = parse_query(query).unwrap_err().to_string();
            assert!(e.contains(message), "{query}: {e}");
        }
    }
}
