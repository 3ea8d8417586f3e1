//! The Open Inference Protocol (KServe V2) REST API, as Triton and MLServer serve it, so stock
//! clients (`tritonclient.http`, KServe's) talk to pfd-edge unchanged.
//!
//! Routes (`{v}` is optional everywhere a model is named):
//! `GET /v2`, `/v2/health/live`, `/v2/health/ready`, `GET /v2/models/{name}[/versions/{v}]`,
//! `GET …/ready`, `POST …/infer`, and Triton's `POST /v2/repository/index` (the models there
//! are, each READY or UNAVAILABLE with its reason).
//!
//! Tensors travel as JSON (`data` flat or nested, row-major) or with Triton's binary tensor
//! extension: the body is a JSON header of `Inference-Header-Content-Length` bytes followed by
//! raw little-endian tensors, each input saying its size in `parameters.binary_data_size`;
//! outputs come back binary when the request asks (`parameters.binary_data` on an output, or
//! `binary_data_output` on the request). Errors are `{"error": "..."}` with Triton's status
//! mapping: 400 bad request, 404 unknown model/version, 500 inference failure, 503 not ready.
//!
//! Every model folder is addressable by name; its card provides the metadata. The model's one
//! input is `[batch, 1, length]` FP32 and its output `[batch, classes]` FP32 logits.

use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};

use crate::app::{readiness, run_model, App, ServedModel};
use crate::http::{Request, Response};
use crate::VERSION;

/// Extensions this server implements, as `GET /v2` lists them.
pub const EXTENSIONS: &[&str] = &["binary_tensor_data"];

const HEADER_LENGTH: &str = "inference-header-content-length";

/// Triton's error body, `{"error": message}`.
pub fn error(status: u16, message: impl Into<String>) -> Response {
    Response::json(status, &json!({ "error": message.into() }))
}

/// What a `/v2/...` path names.
#[derive(Debug, PartialEq)]
enum Target<'a> {
    Server,
    Live,
    Ready,
    RepositoryIndex,
    Model {
        name: &'a str,
        version: Option<&'a str>,
        action: Action,
    },
}

#[derive(Debug, PartialEq, Clone, Copy)]
enum Action {
    Metadata,
    Ready,
    Infer,
}

/// Parses `/v2/...`; `None` is an unknown path.
fn parse_path(path: &str) -> Option<Target<'_>> {
    let rest = path.strip_prefix("/v2")?;
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let target = match segments.as_slice() {
        [] => Target::Server,
        ["health", "live"] => Target::Live,
        ["health", "ready"] => Target::Ready,
        ["repository", "index"] => Target::RepositoryIndex,
        ["models", name, tail @ ..] => {
            let (version, tail) = match tail {
                ["versions", v, tail @ ..] => (Some(*v), tail),
                tail => (None, tail),
            };
            let action = match tail {
                [] => Action::Metadata,
                ["ready"] => Action::Ready,
                ["infer"] => Action::Infer,
                _ => return None,
            };
            Target::Model {
                name,
                version,
                action,
            }
        }
        _ => return None,
    };
    Some(target)
}

/// The route template of an OIP path (for metrics labels), or `None` for an unknown path.
pub fn route_label(path: &str) -> Option<&'static str> {
    Some(match parse_path(path)? {
        Target::Server => "/v2",
        Target::Live => "/v2/health/live",
        Target::Ready => "/v2/health/ready",
        Target::RepositoryIndex => "/v2/repository/index",
        Target::Model {
            version, action, ..
        } => match (version.is_some(), action) {
            (false, Action::Metadata) => "/v2/models/{name}",
            (false, Action::Ready) => "/v2/models/{name}/ready",
            (false, Action::Infer) => "/v2/models/{name}/infer",
            (true, Action::Metadata) => "/v2/models/{name}/versions/{version}",
            (true, Action::Ready) => "/v2/models/{name}/versions/{version}/ready",
            (true, Action::Infer) => "/v2/models/{name}/versions/{version}/infer",
        },
    })
}

/// Every route of this API: its method and the template [`route_label`] gives its paths
/// (`{name}` is the OpenAPI document's `{model}`). The router's OpenAPI test walks this table.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v2"),
    ("GET", "/v2/health/live"),
    ("GET", "/v2/health/ready"),
    ("POST", "/v2/repository/index"),
    ("GET", "/v2/models/{name}"),
    ("GET", "/v2/models/{name}/ready"),
    ("POST", "/v2/models/{name}/infer"),
    ("GET", "/v2/models/{name}/versions/{version}"),
    ("GET", "/v2/models/{name}/versions/{version}/ready"),
    ("POST", "/v2/models/{name}/versions/{version}/infer"),
];

/// Whether `path` belongs to this API (the router sends it here).
pub fn owns(path: &str) -> bool {
    path == "/v2" || path.starts_with("/v2/")
}

/// Answers one `/v2` request. Authentication has been checked by the router.
pub fn handle(app: &App, req: &Request) -> Response {
    let Some(target) = parse_path(req.path) else {
        return error(404, format!("unknown path {}", req.path));
    };
    let expected = match &target {
        Target::Model {
            action: Action::Infer,
            ..
        }
        | Target::RepositoryIndex => "POST",
        _ => "GET",
    };
    if req.method != expected && !(expected == "GET" && req.method == "HEAD") {
        return error(
            405,
            format!(
                "{} is not allowed on {}; use {expected}",
                req.method, req.path
            ),
        );
    }
    match target {
        Target::Server => Response::json(
            200,
            &json!({"name": "pfd-edge", "version": VERSION, "extensions": EXTENSIONS}),
        ),
        Target::Live => Response::json(200, &json!({"live": true})),
        Target::Ready => match readiness(app.models, &app.config.default_model) {
            Ok(_) => Response::json(200, &json!({"ready": true})),
            Err(reason) => Response::json(503, &json!({"ready": false, "error": reason})),
        },
        Target::RepositoryIndex => repository_index(app, req.body),
        Target::Model {
            name,
            version,
            action,
        } => {
            let model = match app.models.get(name) {
                Ok(m) => m,
                Err(reason) => {
                    return error(404, format!("model {name:?} is not available: {reason}"))
                }
            };
            if let Some(v) = version.filter(|v| *v != model.card.version) {
                return error(
                    404,
                    format!(
                        "model {name:?} has no version {v:?} (available: {:?})",
                        model.card.version
                    ),
                );
            }
            match action {
                Action::Metadata => Response::json(200, &metadata(name, model)),
                Action::Ready => match readiness(app.models, name) {
                    Ok(_) => Response::json(200, &json!({"name": name, "ready": true})),
                    Err(e) => error(503, format!("model {name:?} is not ready: {e}")),
                },
                Action::Infer => infer(app, name, model, req),
            }
        }
    }
}

/// Triton's repository index: every model of the store, `{"name", "version", "state"}` when it
/// can serve, `{"name", "state": "UNAVAILABLE", "reason"}` when it cannot. The optional body
/// `{"ready": true}` keeps only the models that can serve (as Triton's does).
fn repository_index(app: &App, body: &[u8]) -> Response {
    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct IndexRequest {
        #[serde(default)]
        ready: bool,
    }
    let request: IndexRequest = if body.iter().all(u8::is_ascii_whitespace) {
        IndexRequest::default()
    } else {
        match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => return error(400, format!("invalid repository index request: {e}")),
        }
    };
    let names = match app.models.names() {
        Ok(n) => n,
        Err(reason) => {
            return error(
                500,
                format!("the model repository cannot be read: {reason}"),
            )
        }
    };
    let entries: Vec<Value> = names
        .iter()
        .filter_map(|name| match app.models.get(name) {
            Ok(model) => {
                Some(json!({"name": name, "version": model.card.version, "state": "READY"}))
            }
            Err(_) if request.ready => None,
            Err(reason) => Some(json!({"name": name, "state": "UNAVAILABLE", "reason": reason})),
        })
        .collect();
    Response::json(200, &Value::Array(entries))
}

/// Model-card element types (NumPy's names, as `model.json` writes them) → the protocol's tensor
/// datatypes (KServe V2 / Triton).
const DATATYPES: &[(&str, &str)] = &[
    ("bool", "BOOL"),
    ("uint8", "UINT8"),
    ("uint16", "UINT16"),
    ("uint32", "UINT32"),
    ("uint64", "UINT64"),
    ("int8", "INT8"),
    ("int16", "INT16"),
    ("int32", "INT32"),
    ("int64", "INT64"),
    ("float16", "FP16"),
    ("bfloat16", "BF16"),
    ("float32", "FP32"),
    ("float64", "FP64"),
    ("string", "BYTES"),
];

/// The protocol datatype of a card's element type; a name outside [`DATATYPES`] is reported as
/// the card spells it, upper-cased (metadata describes the model; it does not judge it).
pub fn datatype(card_dtype: &str) -> String {
    DATATYPES
        .iter()
        .find(|(card, _)| card.eq_ignore_ascii_case(card_dtype))
        .map_or_else(
            || card_dtype.to_ascii_uppercase(),
            |(_, oip)| oip.to_string(),
        )
}

fn metadata(name: &str, model: &ServedModel) -> Value {
    let card = &model.card;
    json!({
        "name": name,
        "versions": [card.version],
        "platform": format!("{}", model.backend()),
        "inputs": [{"name": card.input.name, "datatype": datatype(&card.input.dtype), "shape": [-1, 1, card.signal_length]}],
        "outputs": [{"name": card.output.name, "datatype": datatype(&card.output.dtype), "shape": [-1, card.num_classes()]}],
    })
}

/// An inference request; `D` is how tensor `data` is decoded: [`FastF32`] first, and the general
/// [`FlatF32`] only when that fails (so errors read exactly as they always did).
#[derive(Deserialize)]
#[serde(bound(deserialize = "D: Deserialize<'de>"))]
struct InferRequest<D> {
    #[serde(default)]
    id: Option<String>,
    inputs: Vec<InputTensor<D>>,
    #[serde(default)]
    outputs: Vec<RequestedOutput>,
    #[serde(default)]
    parameters: Parameters,
}

#[derive(Deserialize, Default)]
struct Parameters {
    #[serde(default)]
    binary_data_output: bool,
    #[serde(default)]
    binary_data_size: Option<usize>,
    #[serde(default)]
    binary_data: Option<bool>,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "D: Deserialize<'de>"))]
struct InputTensor<D> {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Parameters,
    #[serde(default)]
    data: Option<D>,
}

#[derive(Deserialize)]
struct RequestedOutput {
    name: String,
    #[serde(default)]
    parameters: Parameters,
}

/// Tensor data as JSON: numbers in flat or nested lists, flattened row-major while parsing
/// (no intermediate JSON tree for a 102400-sample record).
struct FlatF32(Vec<f32>);

/// Tensor data through the fast decoder ([`crate::floats`]): serde only skips over the raw
/// text (borrowed, no copy), the scanner decodes it. Anything the scanner refuses fails this
/// decode, and the request is parsed again with [`FlatF32`] for serde's own error.
struct FastF32(Vec<f32>);

impl<'de> Deserialize<'de> for FastF32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <&'de serde_json::value::RawValue>::deserialize(d)?;
        let text = raw.get().as_bytes();
        // Why len / 6: a six-decimal sample with its comma is 9–10 bytes, so this reserves a
        // little more than needed and the list never reallocates; its unused tail is never
        // touched, so it costs address space, not resident memory.
        crate::floats::parse_nested_f32(text, text.len() / 6)
            .map(FastF32)
            .ok_or_else(|| de::Error::custom("not a plain list of numbers"))
    }
}

impl From<FlatF32> for Vec<f32> {
    fn from(data: FlatF32) -> Self {
        data.0
    }
}

impl From<FastF32> for Vec<f32> {
    fn from(data: FastF32) -> Self {
        data.0
    }
}

/// Parses the request header: the fast decoder for `data`, the general one when it refuses.
fn parse_infer_request(header: &[u8]) -> Result<InferRequest<Vec<f32>>, serde_json::Error> {
    fn values<D: Into<Vec<f32>>>(r: InferRequest<D>) -> InferRequest<Vec<f32>> {
        InferRequest {
            id: r.id,
            inputs: r
                .inputs
                .into_iter()
                .map(|t| InputTensor {
                    name: t.name,
                    shape: t.shape,
                    datatype: t.datatype,
                    parameters: t.parameters,
                    data: t.data.map(Into::into),
                })
                .collect(),
            outputs: r.outputs,
            parameters: r.parameters,
        }
    }
    crate::predict::utf8_throughout(header)?;
    match serde_json::from_slice::<InferRequest<FastF32>>(header) {
        Ok(r) => Ok(values(r)),
        Err(_) => serde_json::from_slice::<InferRequest<FlatF32>>(header).map(values),
    }
}

impl<'de> Deserialize<'de> for FlatF32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut out = Vec::new();
        d.deserialize_any(Flatten(&mut out))?;
        Ok(FlatF32(out))
    }
}

struct Flatten<'a>(&'a mut Vec<f32>);

impl<'de> Visitor<'de> for Flatten<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("numbers, in flat or nested lists")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.0.push(v as f32);
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.0.push(v as f32);
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.0.push(v as f32);
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if let Some(n) = seq.size_hint() {
            self.0.reserve(n);
        }
        while seq.next_element_seed(Flatten(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Flatten<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

/// Splits a request body into its JSON header and binary tail.
fn split_body<'a>(req: &Request<'a>) -> Result<(&'a [u8], &'a [u8]), Response> {
    match req.header(HEADER_LENGTH) {
        None => Ok((req.body, &[])),
        Some(v) => {
            let n: usize = v.trim().parse().map_err(|_| {
                error(
                    400,
                    format!("invalid Inference-Header-Content-Length {v:?}"),
                )
            })?;
            if n > req.body.len() {
                return Err(error(
                    400,
                    format!(
                        "Inference-Header-Content-Length {n} exceeds the body ({} bytes)",
                        req.body.len()
                    ),
                ));
            }
            Ok(req.body.split_at(n))
        }
    }
}

fn infer(app: &App, name: &str, model: &ServedModel, req: &Request) -> Response {
    let (header, mut binary) = match split_body(req) {
        Ok(parts) => parts,
        Err(response) => return response,
    };
    let mut request = match parse_infer_request(header) {
        Ok(r) => r,
        Err(e) => return error(400, format!("invalid inference request: {e}")),
    };
    let card = &model.card;
    let [input] = request.inputs.as_mut_slice() else {
        return error(
            400,
            format!(
                "model {name:?} takes exactly one input ({:?}), got {}",
                card.input.name,
                request.inputs.len()
            ),
        );
    };
    if input.name != card.input.name {
        return error(
            400,
            format!(
                "unexpected input {:?}; model {name:?} takes {:?}",
                input.name, card.input.name
            ),
        );
    }
    if input.datatype != "FP32" {
        return error(
            400,
            format!(
                "input {:?} must be FP32, got {}",
                input.name, input.datatype
            ),
        );
    }
    let length = card.signal_length as i64;
    let batch = match input.shape.as_slice() {
        [b, 1, l] if *b >= 1 && *l == length => *b as usize,
        _ => {
            return error(
                400,
                format!(
                    "input {:?} must have shape [batch, 1, {length}] with batch ≥ 1, got {:?}",
                    input.name, input.shape
                ),
            )
        }
    };
    if batch > app.config.max_batch_size {
        return error(
            400,
            format!(
                "batch {batch} exceeds the maximum ({})",
                app.config.max_batch_size
            ),
        );
    }
    let expected = batch * card.signal_length;
    let data: Vec<f32> = match (input.data.take(), input.parameters.binary_data_size) {
        (Some(values), None) => values,
        (None, Some(size)) => {
            if size != expected * 4 || binary.len() < size {
                return error(400, format!(
                    "input {:?}: binary_data_size {size} does not match shape {:?} x 4 bytes = {} (body has {} binary bytes)",
                    input.name, input.shape, expected * 4, binary.len()
                ));
            }
            let (bytes, rest) = binary.split_at(size);
            binary = rest;
            pfd_signal::formats::f32_from_le_bytes(bytes)
        }
        (Some(_), Some(_)) => {
            return error(
                400,
                format!("input {:?} has both data and binary_data_size", input.name),
            )
        }
        (None, None) => return error(400, format!("input {:?} has no data", input.name)),
    };
    if !binary.is_empty() {
        return error(
            400,
            format!("{} unexpected bytes after the binary inputs", binary.len()),
        );
    }
    if data.len() != expected {
        return error(
            400,
            format!(
                "input {:?}: shape {:?} needs {expected} values, got {}",
                input.name,
                input.shape,
                data.len()
            ),
        );
    }
    if let Some(i) = pfd_signal::formats::first_non_finite(&data) {
        return error(
            400,
            format!(
                "input {:?}: value {i} is {} (only finite numbers are accepted)",
                input.name, data[i]
            ),
        );
    }
    let wanted_binary = match request.outputs.as_slice() {
        [] => request.parameters.binary_data_output,
        outputs => {
            if let Some(other) = outputs.iter().find(|o| o.name != card.output.name) {
                return error(
                    400,
                    format!(
                        "unknown output {:?}; model {name:?} has {:?}",
                        other.name, card.output.name
                    ),
                );
            }
            outputs.iter().any(|o| {
                o.parameters
                    .binary_data
                    .unwrap_or(request.parameters.binary_data_output)
            })
        }
    };

    let signals: Vec<&[f32]> = data.chunks(card.signal_length).collect();
    let run = match run_model(app, name, model, &signals) {
        Ok(run) => run,
        Err(e) => return error(500, format!("inference failed: {e}")),
    };
    run.record.attach(respond(
        name,
        card,
        request.id.as_ref(),
        &run.logits.concat(),
        wanted_binary,
    ))
}

/// The inference response: logits as JSON data, or as a binary tensor after the JSON header.
fn respond(
    name: &str,
    card: &crate::card::ModelCard,
    id: Option<&String>,
    flat: &[f32],
    wanted_binary: bool,
) -> Response {
    let batch = flat.len() / card.num_classes().max(1);
    let shape = [batch, card.num_classes()];
    let mut output = json!({"name": card.output.name, "datatype": "FP32", "shape": shape});
    let mut response = json!({
        "model_name": name,
        "model_version": card.version,
        "outputs": [],
    });
    if let Some(id) = id {
        response["id"] = json!(id);
    }
    if !wanted_binary {
        output["data"] = json!(flat);
        response["outputs"] = json!([output]);
        return Response::json(200, &response);
    }
    let bytes: Vec<u8> = flat.iter().flat_map(|x| x.to_le_bytes()).collect();
    output["parameters"] = json!({"binary_data_size": bytes.len()});
    response["outputs"] = json!([output]);
    let mut body = serde_json::to_vec(&response).expect("serializable");
    let header_len = body.len();
    body.extend_from_slice(&bytes);
    Response {
        status: 200,
        headers: vec![("content-type", "application/octet-stream".into())],
        body,
    }
    .with_header("inference-header-content-length", header_len.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_dtypes_map_to_protocol_datatypes() {
        assert_eq!(datatype("float32"), "FP32");
        assert_eq!(datatype("float16"), "FP16");
        assert_eq!(datatype("int64"), "INT64");
        assert_eq!(datatype("string"), "BYTES");
        assert_eq!(datatype("Float64"), "FP64");
        assert_eq!(datatype("complex64"), "COMPLEX64");
        let names: Vec<&str> = DATATYPES.iter().map(|(c, _)| *c).collect();
        let mut sorted = names.clone();
        sorted.dedup();
        assert_eq!(names.len(), sorted.len(), "one row per card type");
    }

    #[test]
    fn paths() {
        assert_eq!(parse_path("/v2"), Some(Target::Server));
        assert_eq!(parse_path("/v2/health/ready"), Some(Target::Ready));
        assert_eq!(
            parse_path("/v2/models/m/versions/3/infer"),
            Some(Target::Model {
                name: "m",
                version: Some("3"),
                action: Action::Infer
            })
        );
        assert_eq!(
            parse_path("/v2/models/m/ready"),
            Some(Target::Model {
                name: "m",
                version: None,
                action: Action::Ready
            })
        );
        assert_eq!(
            parse_path("/v2/models/m/versions/1"),
            Some(Target::Model {
                name: "m",
                version: Some("1"),
                action: Action::Metadata
            })
        );
        assert_eq!(parse_path("/v2/models/m/explode"), None);
        assert_eq!(parse_path("/v2/nope"), None);
        assert!(owns("/v2") && owns("/v2/models") && !owns("/v20"));
    }

    #[test]
    fn flattens_nested_data() {
        let r: FlatF32 = serde_json::from_str("[[1, 2.5], [[3], -4e0]]").unwrap();
        assert_eq!(r.0, vec![1.0, 2.5, 3.0, -4.0]);
        assert!(serde_json::from_str::<FlatF32>(r#"[1, "x"]"#).is_err());
    }
}
