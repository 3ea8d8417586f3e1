//! `/predict` and `/predict/batch`: request decoding and validation, response schemas.
//!
//! Decoding takes a fast path and a slow path. The fast path deserialises straight into typed
//! structs (`Vec<f32>`, no intermediate JSON tree — a record is 102400 numbers). Only when that
//! fails do we parse the body into a [`serde_json::Value`] and walk it to explain, in pydantic's
//! terms, *every* field that is wrong. Success pays for one parse; errors pay for two, which is
//! fine because they are the rare case.
//!
//! After decoding, semantic checks run on the typed data: signal length, finiteness (NaN/±Inf
//! and values beyond f32's range are refused — a deliberate difference from LSTM_PFD, which let
//! them through), `return_top_k` in `1..=classes`, batch size.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::errors::{Loc, Rejection, ValidationError};
use crate::floats::Scanner;
use crate::postprocess::Probabilities;

/// Most errors listed in one 422 (a signal of 102400 strings must not produce 102400 entries).
pub const MAX_ERRORS: usize = 20;

/// What the validators need to know about the served model and the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub signal_length: usize,
    pub classes: usize,
    pub max_batch_size: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PredictRequest {
    pub signal: Vec<f32>,
    pub return_probabilities: bool,
    pub return_top_k: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BatchRequest {
    pub signals: Vec<Vec<f32>>,
    pub return_probabilities: bool,
    pub return_top_k: Option<usize>,
}

fn yes() -> bool {
    true
}

/// Samples as the fast decoder reads them (and as LSTM_PFD did: a Python float cast to float32):
/// the number correctly rounded to `f64`, then to `f32`. A value beyond `f32` becomes ±inf, which
/// validation refuses naming the sample; serde's own `f32` would refuse it as "number out of
/// range" instead — a different message for the same body whenever an unknown key sends it down
/// this path (found by the `lstm_pfd` fuzz target).
fn samples<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
    let wide = Vec::<f64>::deserialize(d)?;
    Ok(wide.into_iter().map(|x| x as f32).collect())
}

fn sample_lists<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Vec<f32>>, D::Error> {
    let wide = Vec::<Vec<f64>>::deserialize(d)?;
    Ok(wide
        .into_iter()
        .map(|s| s.into_iter().map(|x| x as f32).collect())
        .collect())
}

#[derive(Deserialize)]
struct PredictWire {
    #[serde(deserialize_with = "samples")]
    signal: Vec<f32>,
    #[serde(default = "yes")]
    return_probabilities: bool,
    #[serde(default)]
    return_top_k: Option<i64>,
}

#[derive(Deserialize)]
struct BatchWire {
    #[serde(deserialize_with = "sample_lists")]
    signals: Vec<Vec<f32>>,
    #[serde(default = "yes")]
    return_probabilities: bool,
    #[serde(default)]
    return_top_k: Option<i64>,
}

/// The fields of a request body and the shape each must have.
#[derive(Clone, Copy)]
enum Shape {
    Floats,
    ListOfFloats,
    Bool,
    OptionalInt,
}

const PREDICT_FIELDS: &[(&str, Shape, bool)] = &[
    ("signal", Shape::Floats, true),
    ("return_probabilities", Shape::Bool, false),
    ("return_top_k", Shape::OptionalInt, false),
];

const BATCH_FIELDS: &[(&str, Shape, bool)] = &[
    ("signals", Shape::ListOfFloats, true),
    ("return_probabilities", Shape::Bool, false),
    ("return_top_k", Shape::OptionalInt, false),
];

pub fn parse_predict(body: &[u8], limits: &Limits) -> Result<PredictRequest, Rejection> {
    let wire: PredictWire = match fast_predict(body, limits) {
        Some(wire) => wire,
        None => decode(body, PREDICT_FIELDS)?,
    };
    let mut errors = Vec::new();
    check_signal(
        &wire.signal,
        limits,
        &[Loc::Field("body"), Loc::Field("signal")],
        &mut errors,
    );
    let top_k = check_top_k(wire.return_top_k, limits, &mut errors);
    finish(errors)?;
    Ok(PredictRequest {
        signal: wire.signal,
        return_probabilities: wire.return_probabilities,
        return_top_k: top_k,
    })
}

/// `max_items` of LSTM_PFD's batch schema (`signals: List[List[float]]`, 1..=128). It is part of
/// the pydantic model, so more signals are a 422 `too_long` whatever `MAX_BATCH_SIZE` says; the
/// handler's 400 "Batch size exceeds maximum (N)" only fires when the limit is set lower.
pub const SCHEMA_MAX_BATCH: usize = 128;

pub fn parse_batch(body: &[u8], limits: &Limits) -> Result<BatchRequest, Rejection> {
    let wire: BatchWire = match fast_batch(body, limits) {
        Some(wire) => wire,
        None => decode(body, BATCH_FIELDS)?,
    };
    if wire.signals.is_empty() {
        return Err(ValidationError::new(
            "too_short",
            vec![Loc::Field("body"), Loc::Field("signals")],
            "List should have at least 1 item after validation, not 0",
            json!([]),
        )
        .with_ctx(json!({"field_type": "List", "min_length": 1, "actual_length": 0}))
        .into());
    }
    let count = wire.signals.len();
    if count > SCHEMA_MAX_BATCH {
        return Err(ValidationError::new(
            "too_long",
            vec![Loc::Field("body"), Loc::Field("signals")],
            format!(
                "List should have at most {SCHEMA_MAX_BATCH} items after validation, not {count}"
            ),
            json!(format!("<list of {count} items elided>")),
        )
        .with_ctx(
            json!({"field_type": "List", "max_length": SCHEMA_MAX_BATCH, "actual_length": count}),
        )
        .into());
    }
    if count > limits.max_batch_size {
        return Err(Rejection::Http(
            400,
            format!("Batch size exceeds maximum ({})", limits.max_batch_size),
        ));
    }
    let mut errors = Vec::new();
    for (i, s) in wire.signals.iter().enumerate() {
        let loc = [Loc::Field("body"), Loc::Field("signals"), Loc::Index(i)];
        check_signal(s, limits, &loc, &mut errors);
    }
    let top_k = check_top_k(wire.return_top_k, limits, &mut errors);
    finish(errors)?;
    Ok(BatchRequest {
        signals: wire.signals,
        return_probabilities: wire.return_probabilities,
        return_top_k: top_k,
    })
}

fn finish(mut errors: Vec<ValidationError>) -> Result<(), Rejection> {
    if errors.is_empty() {
        return Ok(());
    }
    errors.truncate(MAX_ERRORS);
    Err(Rejection::Invalid(errors))
}

fn check_signal(signal: &[f32], limits: &Limits, loc: &[Loc], errors: &mut Vec<ValidationError>) {
    if signal.len() != limits.signal_length {
        errors.push(value_error(
            loc,
            format!(
                "Signal must be exactly {} samples long. Got {} samples. Please resample or pad your signal.",
                limits.signal_length,
                signal.len()
            ),
            signal,
        ));
    } else if let Some(i) = pfd_signal::formats::first_non_finite(signal) {
        errors.push(value_error(
            loc,
            format!(
                "Signal must contain only finite numbers. Sample {i} is {} (NaN, ±Inf and values beyond float32 range are refused).",
                signal[i]
            ),
            signal,
        ));
    }
}

fn value_error(loc: &[Loc], msg: String, signal: &[f32]) -> ValidationError {
    ValidationError::new(
        "value_error",
        loc.to_vec(),
        format!("Value error, {msg}"),
        summary(signal),
    )
    .with_ctx(json!({"error": {}}))
}

/// A signal echoed back in an error: short ones in full, long ones as a count.
fn summary(signal: &[f32]) -> Value {
    if signal.len() <= 16 {
        json!(signal
            .iter()
            .map(|&x| if x.is_finite() {
                json!(x)
            } else {
                json!(x.to_string())
            })
            .collect::<Vec<_>>())
    } else {
        json!(format!("<list of {} items elided>", signal.len()))
    }
}

fn check_top_k(
    k: Option<i64>,
    limits: &Limits,
    errors: &mut Vec<ValidationError>,
) -> Option<usize> {
    let k = k?;
    let loc = vec![Loc::Field("body"), Loc::Field("return_top_k")];
    if k < 1 {
        errors.push(
            ValidationError::new(
                "greater_than_equal",
                loc,
                "Input should be greater than or equal to 1",
                json!(k),
            )
            .with_ctx(json!({"ge": 1})),
        );
        None
    } else if k as usize > limits.classes {
        errors.push(
            ValidationError::new(
                "less_than_equal",
                loc,
                format!("Input should be less than or equal to {}", limits.classes),
                json!(k),
            )
            .with_ctx(json!({"le": limits.classes})),
        );
        None
    } else {
        Some(k as usize)
    }
}

/// The keys of a request body, as the fast path sees them.
enum Key {
    Signals,
    ReturnProbabilities,
    ReturnTopK,
}

/// The fast path (see [`crate::floats`]): a scanner for exactly the request object's grammar —
/// the three known keys once each, in any order, numbers in their lists. `None` hands the body
/// to serde (unknown or duplicate keys, escapes, wrong types, anything unusual), which gives the
/// same answer it always did.
fn fast_object(
    body: &[u8],
    signals_key: &[u8],
    mut signals: impl FnMut(&mut Scanner) -> Option<()>,
) -> Option<(bool, Option<i64>)> {
    let mut s = Scanner::new(body);
    if !s.eat(b'{') {
        return None;
    }
    let (mut seen_signals, mut probabilities, mut top_k) = (false, None, None);
    if !s.eat(b'}') {
        loop {
            let key = match s.plain_string()? {
                k if k == signals_key => Key::Signals,
                b"return_probabilities" => Key::ReturnProbabilities,
                b"return_top_k" => Key::ReturnTopK,
                _ => return None,
            };
            if !s.eat(b':') {
                return None;
            }
            match key {
                Key::Signals if !seen_signals => {
                    signals(&mut s)?;
                    seen_signals = true;
                }
                Key::ReturnProbabilities if probabilities.is_none() => {
                    probabilities = Some(s.boolean()?)
                }
                Key::ReturnTopK if top_k.is_none() => top_k = Some(s.optional_integer()?),
                _ => return None, // a duplicate: serde's error names it
            }
            if s.eat(b',') {
                continue;
            }
            if s.eat(b'}') {
                break;
            }
            return None;
        }
    }
    (seen_signals && s.at_end()).then_some((probabilities.unwrap_or(true), top_k.flatten()))
}

fn fast_predict(body: &[u8], limits: &Limits) -> Option<PredictWire> {
    let mut signal = Vec::with_capacity(limits.signal_length);
    let (return_probabilities, return_top_k) =
        fast_object(body, b"signal", |s| s.f32_array(&mut signal))?;
    Some(PredictWire {
        signal,
        return_probabilities,
        return_top_k,
    })
}

fn fast_batch(body: &[u8], limits: &Limits) -> Option<BatchWire> {
    let mut signals = Vec::new();
    let (return_probabilities, return_top_k) = fast_object(body, b"signals", |s| {
        signals = s.f32_arrays(limits.signal_length)?;
        Some(())
    })?;
    Some(BatchWire {
        signals,
        return_probabilities,
        return_top_k,
    })
}

/// The fast decoders' contract, checked on any body (unit tests and the `lstm_pfd` fuzz target):
/// a body the fast path accepts, serde accepts too, with bit-identical values; a body it refuses
/// goes to serde, which decides. Panics on a disagreement; returns how many fast paths took it.
#[cfg(any(test, feature = "testing"))]
pub fn check_fast_paths_agree_with_serde(body: &[u8], limits: &Limits) -> usize {
    type Decoded = (Vec<Vec<u32>>, bool, Option<i64>);
    let bits = |s: &[f32]| s.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let predict = |w: PredictWire| -> Decoded {
        (
            vec![bits(&w.signal)],
            w.return_probabilities,
            w.return_top_k,
        )
    };
    let batch = |w: BatchWire| -> Decoded {
        let signals = w.signals.iter().map(|s| bits(s)).collect();
        (signals, w.return_probabilities, w.return_top_k)
    };
    let agree = |path: &str, fast: Decoded, slow: Result<Decoded, serde_json::Error>| {
        let text = String::from_utf8_lossy(body);
        match slow {
            Ok(slow) => assert_eq!(fast, slow, "{path}: {text}"),
            Err(e) => panic!("the fast {path} path accepted what serde refuses ({e}): {text}"),
        }
    };
    let mut taken = 0;
    if let Some(fast) = fast_predict(body, limits) {
        agree(
            "/predict",
            predict(fast),
            serde_json::from_slice(body).map(predict),
        );
        taken += 1;
    }
    if let Some(fast) = fast_batch(body, limits) {
        agree(
            "batch",
            batch(fast),
            serde_json::from_slice(body).map(batch),
        );
        taken += 1;
    }
    taken
}

/// Typed decoding with the explaining slow path on failure.
fn decode<T: for<'de> Deserialize<'de>>(
    body: &[u8],
    fields: &[(&'static str, Shape, bool)],
) -> Result<T, Rejection> {
    match serde_json::from_slice::<T>(body).and_then(|v| utf8_throughout(body).map(|()| v)) {
        Ok(v) => Ok(v),
        Err(fast) => Err(Rejection::Invalid(explain(body, fields, &fast))),
    }
}

/// Whether a JSON text serde accepted is UTF-8 all through (RFC 8259 §8.1), as LSTM_PFD's
/// decoder — which decodes the text before parsing it — requires: serde skips the strings of keys
/// it ignores without checking them. Only the serde path asks (the fast path accepts ASCII
/// numbers and known keys only); the error is serde's own, with its position.
pub(crate) fn utf8_throughout(text: &[u8]) -> Result<(), serde_json::Error> {
    if std::str::from_utf8(text).is_ok() {
        return Ok(());
    }
    // `Value` keeps every string, so it checks every string.
    serde_json::from_slice::<Value>(text).map(drop)
}

fn explain(
    body: &[u8],
    fields: &[(&'static str, Shape, bool)],
    fast: &serde_json::Error,
) -> Vec<ValidationError> {
    let body_loc = || vec![Loc::Field("body")];
    if body.iter().all(u8::is_ascii_whitespace) {
        return vec![ValidationError::new(
            "missing",
            body_loc(),
            "Field required",
            Value::Null,
        )];
    }
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            let mut loc = body_loc();
            loc.push(Loc::Index(byte_offset(body, e.line(), e.column())));
            let reason = if looks_like_non_finite(body, &e) {
                "NaN and Infinity are not valid JSON numbers; send finite numbers".to_string()
            } else {
                e.to_string()
            };
            return vec![
                ValidationError::new("json_invalid", loc, "JSON decode error", json!({}))
                    .with_ctx(json!({ "error": reason })),
            ];
        }
    };
    let Value::Object(map) = &value else {
        return vec![ValidationError::new(
            "model_attributes_type",
            body_loc(),
            "Input should be a valid dictionary or object to extract fields from",
            value,
        )];
    };
    let mut errors = Vec::new();
    for &(name, shape, required) in fields {
        let loc = vec![Loc::Field("body"), Loc::Field(name)];
        match map.get(name) {
            None if required => errors.push(ValidationError::new(
                "missing",
                loc,
                "Field required",
                value.clone(),
            )),
            None => {}
            Some(v) => check_shape(v, shape, loc, &mut errors),
        }
        if errors.len() >= MAX_ERRORS {
            break;
        }
    }
    if errors.is_empty() {
        // Valid JSON whose shape we accept but serde refused (e.g. a number beyond i64):
        // still a clear 422, never a 500.
        errors.push(ValidationError::new(
            "value_error",
            body_loc(),
            format!("Value error, {fast}"),
            Value::Null,
        ));
    }
    errors.truncate(MAX_ERRORS);
    errors
}

fn check_shape(v: &Value, shape: Shape, loc: Vec<Loc>, errors: &mut Vec<ValidationError>) {
    let list = |v: &Value, loc: &Vec<Loc>, errors: &mut Vec<ValidationError>| -> bool {
        if v.is_array() {
            true
        } else {
            errors.push(ValidationError::new(
                "list_type",
                loc.clone(),
                "Input should be a valid list",
                v.clone(),
            ));
            false
        }
    };
    match shape {
        Shape::Floats => {
            if list(v, &loc, errors) {
                for (i, x) in v.as_array().unwrap().iter().enumerate() {
                    if errors.len() >= MAX_ERRORS {
                        return;
                    }
                    if !x.is_number() {
                        let mut l = loc.clone();
                        l.push(Loc::Index(i));
                        errors.push(ValidationError::new(
                            "float_type",
                            l,
                            "Input should be a valid number",
                            x.clone(),
                        ));
                    }
                }
            }
        }
        Shape::ListOfFloats => {
            if list(v, &loc, errors) {
                for (i, s) in v.as_array().unwrap().iter().enumerate() {
                    let mut l = loc.clone();
                    l.push(Loc::Index(i));
                    check_shape(s, Shape::Floats, l, errors);
                }
            }
        }
        Shape::Bool => {
            if !v.is_boolean() {
                errors.push(ValidationError::new(
                    "bool_type",
                    loc,
                    "Input should be a valid boolean",
                    v.clone(),
                ));
            }
        }
        Shape::OptionalInt => {
            if !(v.is_null() || v.is_i64()) {
                let (kind, msg) = match v.as_f64() {
                    Some(f) if f.fract() != 0.0 => (
                        "int_from_float",
                        "Input should be a valid integer, got a number with a fractional part",
                    ),
                    _ => ("int_type", "Input should be a valid integer"),
                };
                errors.push(ValidationError::new(kind, loc, msg, v.clone()));
            }
        }
    }
}

fn looks_like_non_finite(body: &[u8], e: &serde_json::Error) -> bool {
    let at = byte_offset(body, e.line(), e.column());
    let rest = &body[at.saturating_sub(1).min(body.len())..];
    let rest = &rest[..rest.len().min(12)];
    [&b"NaN"[..], b"Infinity", b"-Infinity"]
        .iter()
        .any(|t| rest.windows(t.len()).any(|w| w == *t))
}

/// serde_json reports (line, column), both 1-based; FastAPI's `loc` carries a byte offset.
fn byte_offset(body: &[u8], line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (n, l) in body.split(|&b| b == b'\n').enumerate() {
        if n + 1 == line {
            return (offset + column.saturating_sub(1)).min(body.len());
        }
        offset += l.len() + 1;
    }
    body.len()
}

/// One prediction, as LSTM_PFD answered it.
#[derive(Debug, Clone, Serialize)]
pub struct PredictionResponse {
    pub predicted_class: usize,
    pub class_name: String,
    pub confidence: f32,
    pub probabilities: Option<Probabilities>,
    pub inference_time_ms: f64,
    pub timestamp: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct BatchPredictionResponse {
    pub predictions: Vec<PredictionResponse>,
    pub batch_size: usize,
    pub total_inference_time_ms: f64,
    pub average_inference_time_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        signal_length: 4,
        classes: 11,
        max_batch_size: 3,
    };

    fn invalid(r: Result<impl std::fmt::Debug, Rejection>) -> Vec<ValidationError> {
        match r {
            Err(Rejection::Invalid(e)) => e,
            other => panic!("expected 422, got {other:?}"),
        }
    }

    #[test]
    fn fast_path_agrees_with_serde_or_steps_aside() {
        // Every body the fast path accepts, serde accepts with bit-identical values; every body
        // it refuses goes to serde, which decides. Bodies: formatting, key order, optional
        // fields, and mutations that must be refused.
        let bodies: &[&[u8]] = &[
            br#"{"signal":[1,2,3.5,-4e2]}"#,
            br#" { "return_top_k" : 3 , "signal" : [ 0.1 , -0 , 1E-7, 123456789012345 ] } "#,
            b"{\n\"signal\":\t[0.000001,\r\n2],\"return_probabilities\":false}",
            br#"{"signal":[1],"return_top_k":null,"return_probabilities":true}"#,
            br#"{"signal":[]}"#,
            br#"{"signal":[1],"extra":1}"#,
            br#"{"signal":[1],"signal":[2]}"#,
            br#"{"signal":[1,]}"#,
            br#"{"signal":[1]"#,
            br#"{"signal":[1]} x"#,
            br#"{"signal":[1],}"#,
            br#"{"signal":["1"]}"#,
            br#"{"signal":[1e400]}"#,
            // Beyond f32 but not f64: both paths read ±inf (serde's own f32 refused it with
            // another message; found by the lstm_pfd fuzz target).
            br#"{"signal":[1e39]}"#,
            br#"{"signals":[[1,2,3,4],[7E96,2,0,1 ]],"return_top_k":1}"#,
            br#"{"signal":[NaN]}"#,
            br#"{"signal":[1],"return_top_k":2.0}"#,
            br#"{"signal":[1],"return_top_k":99999999999999999999}"#,
            br#"{"signal":[1],"return_probabilities":null}"#,
            br#"{"sig\u006eal":[1]}"#,
            br#"{"return_top_k":1}"#,
            br#"[[1,2]]"#,
            br#"{}"#,
            b"",
        ];
        let fast: usize = bodies
            .iter()
            .map(|body| check_fast_paths_agree_with_serde(body, &LIMITS))
            .sum();
        // The five well-formed bodies and the two beyond f32 (both paths read ±inf there, and
        // validation refuses it naming the sample).
        assert_eq!(fast, 7, "the well-formed bodies take the fast path");
    }

    #[test]
    fn fast_batch_matches_serde() {
        let body = br#"{"signals":[[1,2,3,4],[ -1.5e-3 ,0,0,1 ]],"return_top_k":2}"#;
        let fast = fast_batch(body, &LIMITS).unwrap();
        let slow: BatchWire = serde_json::from_slice(body).unwrap();
        assert_eq!(fast.signals, slow.signals);
        assert_eq!(fast.return_top_k, slow.return_top_k);
        assert!(fast_batch(br#"{"signals":[[1],[2,"x"]]}"#, &LIMITS).is_none());
        assert!(fast_batch(br#"{"signals":[1,2]}"#, &LIMITS).is_none());
    }

    #[test]
    fn invalid_utf8_anywhere_is_json_invalid_even_in_a_skipped_value() {
        for body in [
            &b"{\"signal\":[1,2,3,4],\"x\":\"\xff\"}"[..],
            b"{\"signal\xfe\":[1,2,3,4]}",
        ] {
            let e = invalid(parse_predict(body, &LIMITS));
            assert_eq!(e[0].kind, "json_invalid", "{e:?}");
        }
        assert!(parse_predict("{\"signal\":[1,2,3,4],\"x\":\"é\"}".as_bytes(), &LIMITS).is_ok());
    }

    #[test]
    fn accepts_valid_predict_with_defaults_and_unknown_keys() {
        let r = parse_predict(br#"{"signal":[1,2,3.5,-4e2],"extra":"ignored"}"#, &LIMITS).unwrap();
        assert_eq!(r.signal, vec![1.0, 2.0, 3.5, -400.0]);
        assert!(r.return_probabilities);
        assert_eq!(r.return_top_k, None);
    }

    #[test]
    fn wrong_length_message_matches_lstm_pfd() {
        let e = invalid(parse_predict(br#"{"signal":[1,2,3]}"#, &LIMITS));
        assert_eq!(e[0].kind, "value_error");
        assert_eq!(e[0].loc, vec![Loc::Field("body"), Loc::Field("signal")]);
        assert_eq!(
            e[0].msg,
            "Value error, Signal must be exactly 4 samples long. Got 3 samples. Please resample or pad your signal."
        );
    }

    #[test]
    fn non_finite_and_overflow_refused() {
        let e = invalid(parse_predict(br#"{"signal":[1,2,3,1e39]}"#, &LIMITS));
        assert!(e[0].msg.contains("Sample 3"), "{}", e[0].msg);
        // The same message when an unknown key sends the body down serde's path.
        let slow = invalid(parse_predict(br#"{"x":1,"signal":[1,2,3,1e39]}"#, &LIMITS));
        assert_eq!(slow[0].msg, e[0].msg);
        let e = invalid(parse_batch(br#"{"x":1,"signals":[[1,2,3,7E96]]}"#, &LIMITS));
        assert!(e[0].msg.contains("Sample 3"), "{}", e[0].msg);
        let e = invalid(parse_predict(br#"{"signal":[1,NaN,3,4]}"#, &LIMITS));
        assert_eq!(e[0].kind, "json_invalid");
        assert!(e[0].ctx.as_ref().unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("NaN"));
    }

    #[test]
    fn type_errors_are_explained_with_locations() {
        let e = invalid(parse_predict(
            br#"{"signal":[1,"x",3,null],"return_probabilities":"maybe"}"#,
            &LIMITS,
        ));
        let kinds: Vec<_> = e.iter().map(|e| (e.kind, e.loc.clone())).collect();
        assert_eq!(
            kinds,
            vec![
                (
                    "float_type",
                    vec![Loc::Field("body"), Loc::Field("signal"), Loc::Index(1)]
                ),
                (
                    "float_type",
                    vec![Loc::Field("body"), Loc::Field("signal"), Loc::Index(3)]
                ),
                (
                    "bool_type",
                    vec![Loc::Field("body"), Loc::Field("return_probabilities")]
                ),
            ]
        );
        assert_eq!(invalid(parse_predict(b"{}", &LIMITS))[0].kind, "missing");
        assert_eq!(invalid(parse_predict(b"", &LIMITS))[0].kind, "missing");
        assert_eq!(
            invalid(parse_predict(b"[1]", &LIMITS))[0].kind,
            "model_attributes_type"
        );
        assert_eq!(
            invalid(parse_predict(br#"{"signal":"abc"}"#, &LIMITS))[0].kind,
            "list_type"
        );
        let e = invalid(parse_predict(b"{\"signal\": [1,\n 2,", &LIMITS));
        assert_eq!(e[0].kind, "json_invalid");
        assert_eq!(e[0].loc[1], Loc::Index(17));
    }

    #[test]
    fn top_k_range() {
        let ok = parse_predict(br#"{"signal":[1,2,3,4],"return_top_k":11}"#, &LIMITS).unwrap();
        assert_eq!(ok.return_top_k, Some(11));
        for (k, kind) in [
            ("0", "greater_than_equal"),
            ("-2", "greater_than_equal"),
            ("12", "less_than_equal"),
            ("2.5", "int_from_float"),
            ("\"3\"", "int_type"),
        ] {
            let body = format!(r#"{{"signal":[1,2,3,4],"return_top_k":{k}}}"#);
            assert_eq!(
                invalid(parse_predict(body.as_bytes(), &LIMITS))[0].kind,
                kind,
                "k={k}"
            );
        }
    }

    #[test]
    fn batch_rules() {
        let ok = parse_batch(br#"{"signals":[[1,2,3,4],[5,6,7,8]]}"#, &LIMITS).unwrap();
        assert_eq!(ok.signals.len(), 2);
        assert_eq!(
            invalid(parse_batch(br#"{"signals":[]}"#, &LIMITS))[0].kind,
            "too_short"
        );
        let e = invalid(parse_batch(br#"{"signals":[[1,2,3,4],[1,2]]}"#, &LIMITS));
        assert_eq!(
            e[0].loc,
            vec![Loc::Field("body"), Loc::Field("signals"), Loc::Index(1)]
        );
        assert_eq!(
            parse_batch(br#"{"signals":[[1],[1],[1],[1]]}"#, &LIMITS).unwrap_err(),
            Rejection::Http(400, "Batch size exceeds maximum (3)".into())
        );
        let e = invalid(parse_batch(br#"{"signals":[[1,2,3,4],"x"]}"#, &LIMITS));
        assert_eq!(e[0].kind, "list_type");
    }

    #[test]
    fn more_signals_than_the_schema_allows_is_422_too_long_whatever_the_limit() {
        let body = |n: usize| format!(r#"{{"signals":[{}]}}"#, vec!["[1,2,3,4]"; n].join(","));
        for limit in [3, 128, 1000] {
            let limits = Limits {
                max_batch_size: limit,
                ..LIMITS
            };
            let e = invalid(parse_batch(body(129).as_bytes(), &limits));
            assert_eq!(e.len(), 1);
            assert_eq!(e[0].kind, "too_long");
            assert_eq!(e[0].loc, vec![Loc::Field("body"), Loc::Field("signals")]);
            assert_eq!(
                e[0].msg,
                "List should have at most 128 items after validation, not 129"
            );
            assert_eq!(e[0].ctx.as_ref().unwrap()["max_length"], 128);
        }
        // At the schema's bound only the configured limit applies.
        let limits = Limits {
            max_batch_size: 1000,
            ..LIMITS
        };
        assert_eq!(
            parse_batch(body(128).as_bytes(), &limits)
                .unwrap()
                .signals
                .len(),
            128
        );
    }

    #[test]
    fn error_count_is_capped() {
        let body = format!(r#"{{"signal":[{}]}}"#, vec!["\"s\""; 500].join(","));
        assert_eq!(
            invalid(parse_predict(body.as_bytes(), &LIMITS)).len(),
            MAX_ERRORS
        );
    }
}
