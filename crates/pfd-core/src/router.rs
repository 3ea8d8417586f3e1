//! The route table, dispatch, API-key checks and route labels: [`handle`] is the whole HTTP API
//! as a pure function of (configuration, models, request). The component calls it for every
//! request, tests call it natively. Routes are a table, not a match ladder: a path that exists
//! with another method is a 405, an unknown path a 404. The handlers live with their API
//! ([`crate::lstm_pfd`], [`crate::oip`], [`crate::diagnose`], [`crate::ui`]).

use crate::app::App;
use crate::config::{Config, ConfigError};
use crate::errors::{self, http_error};
use crate::http::{normalize, Request, Response};
use crate::lstm_pfd::{
    health, live, live_response, model_info, openapi, predict_batch, predict_one, ready, welcome,
};
use crate::telemetry;

type Handler = fn(&App, &Request) -> Response;

struct Route {
    method: &'static str,
    path: &'static str,
    /// Whether the API key (when configured) is required.
    protected: bool,
    handler: Handler,
}

const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        path: "/",
        protected: false,
        handler: welcome,
    },
    Route {
        method: "GET",
        path: "/openapi.json",
        protected: false,
        handler: openapi,
    },
    Route {
        method: "GET",
        path: "/health",
        protected: false,
        handler: health,
    },
    Route {
        method: "GET",
        path: "/health/live",
        protected: false,
        handler: live,
    },
    Route {
        method: "GET",
        path: "/health/ready",
        protected: false,
        handler: ready,
    },
    Route {
        method: "GET",
        path: "/model/info",
        protected: true,
        handler: model_info,
    },
    Route {
        method: "POST",
        path: "/predict",
        protected: true,
        handler: predict_one,
    },
    Route {
        method: "POST",
        path: "/predict/batch",
        protected: true,
        handler: predict_batch,
    },
    Route {
        method: "POST",
        path: "/diagnose",
        protected: true,
        handler: crate::diagnose::diagnose,
    },
    Route {
        method: "GET",
        path: "/bearings",
        protected: false,
        handler: crate::diagnose::bearings,
    },
    // The page (static files: no key, so a browser can load it before the key is typed in).
    Route {
        method: "GET",
        path: "/ui",
        protected: false,
        handler: crate::ui::serve,
    },
    Route {
        method: "GET",
        path: "/ui/app.js",
        protected: false,
        handler: crate::ui::serve,
    },
    Route {
        method: "GET",
        path: "/ui/app.css",
        protected: false,
        handler: crate::ui::serve,
    },
];

/// Probe routes: what orchestrators poll. Never rate limited; left out of the SLIs.
pub const PROBES: &[&str] = &[
    "/health",
    "/health/live",
    "/health/ready",
    "/v2/health/live",
    "/v2/health/ready",
];

/// OIP routes that need no key: the server probes and server metadata (as in Triton).
const OIP_OPEN: &[&str] = &["/v2", "/v2/health/live", "/v2/health/ready"];

/// The `route` label of requests that match no route (one value, so that scanners probing random
/// paths cannot grow the metrics without bound).
pub const UNMATCHED: &str = "unmatched";

/// The message of every 401.
pub const UNAUTHORIZED: &str = "Invalid or missing API key";

enum Match {
    Found(&'static Route),
    WrongMethod,
    Unknown,
}

fn find(method: &str, path: &str) -> Match {
    let mut path_known = false;
    for route in ROUTES.iter().filter(|r| r.path == path) {
        path_known = true;
        if route.method == method || (route.method == "GET" && method == "HEAD") {
            return Match::Found(route);
        }
    }
    if path_known {
        Match::WrongMethod
    } else {
        Match::Unknown
    }
}

/// Whether `method path` needs an API key (when keys are configured): the protected rows of the
/// route table, and every OIP path but [`OIP_OPEN`]. Paths that answer 404/405 need none.
/// pfd-host asks this before reading a body; [`handle`] asks it again.
pub fn requires_api_key(method: &str, path: &str) -> bool {
    let path = normalize(path);
    if crate::oip::owns(path) {
        return !OIP_OPEN.contains(&path);
    }
    matches!(find(method, path), Match::Found(r) if r.protected)
}

/// The low-cardinality name of the route `path` belongs to, for metrics: the table's path, an OIP
/// template such as `/v2/models/{name}/infer`, or [`UNMATCHED`].
pub fn route_label(path: &str) -> &'static str {
    let path = normalize(path);
    if crate::oip::owns(path) {
        return crate::oip::route_label(path).unwrap_or(UNMATCHED);
    }
    ROUTES
        .iter()
        .find(|r| r.path == path)
        .map_or(UNMATCHED, |r| r.path)
}

/// Whether `path` is a probe ([`PROBES`]).
pub fn is_probe(path: &str) -> bool {
    PROBES.contains(&normalize(path))
}

/// Readiness routes: "send me traffic?" — what a host answers 503 on while it drains.
const READINESS: &[&str] = &["/health/ready", "/v2/health/ready"];

/// Whether `path` is a readiness route ([`READINESS`]).
pub fn is_readiness(path: &str) -> bool {
    READINESS.contains(&normalize(path))
}

/// An error in the shape of the API `path` belongs to: `{"error"}` for OIP (Triton's), the
/// LSTM_PFD shape otherwise. For errors made outside the handlers (401, and pfd-host's 413, 429,
/// 503, 504), so every error a client sees is one its API's decoder reads.
pub fn error_for(path: &str, status: u16, message: &str) -> Response {
    if crate::oip::owns(normalize(path)) {
        crate::oip::error(status, message)
    } else {
        http_error(status, message)
    }
}

/// Whether the request presents one of the configured keys (always true when none is).
fn authorized(config: &Config, req: &Request) -> bool {
    config.api_keys.is_empty()
        || crate::auth::presented(|name| req.header(name))
            .and_then(|key| crate::auth::matching_key(&config.api_keys, key))
            .is_some()
}

/// Answers one request: the API key first (before any handler reads the body), then the OIP
/// routes or the table; the inference record kept only when the host asked for it.
pub fn handle(app: &App, req: &Request) -> Response {
    telemetry::keep_if_requested(req, answer(app, req))
}

fn answer(app: &App, req: &Request) -> Response {
    let path = normalize(req.path);
    // Before anything reads the body: a bad body without a key is a 401, not a 422.
    if requires_api_key(req.method, path) && !authorized(app.config, req) {
        return error_for(path, 401, UNAUTHORIZED);
    }
    if crate::oip::owns(path) {
        return crate::oip::handle(app, &Request { path, ..*req });
    }
    match find(req.method, path) {
        Match::Found(route) => (route.handler)(app, req),
        Match::WrongMethod => errors::method_not_allowed(),
        Match::Unknown => errors::not_found(),
    }
}

/// What every route but liveness answers when the configuration is invalid.
pub fn handle_config_error(err: &ConfigError, req: &Request) -> Response {
    if normalize(req.path) == "/health/live" {
        return live_response();
    }
    http_error(500, &format!("Invalid configuration: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{ModelStore, ServedModel};
    use crate::card::ModelCard;
    use crate::engine::testing::MeanEngine;
    use crate::lstm_pfd::OPENAPI;
    use crate::telemetry::InferenceRecord;
    use serde_json::Value;
    use std::collections::BTreeMap;

    struct Fixed(Option<ServedModel>);
    impl ModelStore for Fixed {
        fn get(&self, name: &str) -> Result<&ServedModel, String> {
            self.0
                .as_ref()
                .filter(|m| m.card.name == name)
                .ok_or_else(|| format!("no model {name}"))
        }
        fn names(&self) -> Result<Vec<String>, String> {
            Ok(self.0.iter().map(|m| m.card.name.clone()).collect())
        }
    }

    /// A model in memory whose files are gone.
    struct FilesGone(Fixed);
    impl ModelStore for FilesGone {
        fn get(&self, name: &str) -> Result<&ServedModel, String> {
            self.0.get(name)
        }
        fn names(&self) -> Result<Vec<String>, String> {
            self.0.names()
        }
        fn check_files(&self, name: &str) -> Result<(), String> {
            Err(format!("model file models/{name}/model.onnx is missing"))
        }
    }

    #[test]
    fn diagnose_windows_a_recording_and_answers_its_errors_in_the_api_shape() {
        let cfg = config(&[]);
        let store = Fixed(Some(model()));
        let ct = [("content-type", "application/json")];
        // 24 samples of 2.0 at the model's rate: windows of 8 at a hop of 4, every one class 2.
        let body = format!(
            r#"{{"signal": {:?}, "sample_rate": 20480}}"#,
            vec![2.0f32; 24]
        );
        let (status, v) = call(&cfg, &store, "POST", "/diagnose", &ct, &body);
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["diagnosis"]["class"], 2);
        assert_eq!(v["diagnosis"]["agreement"], 1.0);
        assert_eq!(v["windows"].as_array().unwrap().len(), 5);
        assert_eq!(v["windows"][1]["start_s"], 4.0 / 20480.0);
        assert_eq!(v["input"]["format"], "json");
        // A constant signal is a flat line: flagged whatever the network says.
        assert_eq!(v["unknown"]["flag"], true);
        assert!(v["unknown"]["reasons"][0]
            .as_str()
            .unwrap()
            .starts_with("flat line"));
        for (query, ct, body, status, message) in [
            ("", "image/png", "x", 415, "is not a recording format"),
            (
                "",
                "application/json",
                r#"{"signal": [1, 2], "sample_rate": 20480}"#,
                422,
                "the model needs at least",
            ),
            (
                "?rpm=0",
                "application/json",
                &body,
                422,
                "rpm must be positive",
            ),
            ("?bearing=6205", "application/json", &body, 422, "add rpm="),
            (
                "?rpm=1800&bearing=x",
                "application/json",
                &body,
                422,
                "known bearings: 6203",
            ),
            (
                "?model=nope",
                "application/json",
                &body,
                404,
                "\"nope\" is not available",
            ),
            (
                "?hop_s=0.0000001",
                "application/json",
                &format!(
                    r#"{{"signal": {:?}, "sample_rate": 20480}}"#,
                    vec![1.0f32; 20000]
                ),
                422,
                "at most 2048",
            ),
        ] {
            let (got, v) = call(
                &cfg,
                &store,
                "POST",
                &format!("/diagnose{query}"),
                &[("content-type", ct)],
                body,
            );
            assert_eq!(got, status, "{query} {ct}: {v}");
            assert!(
                v["error"].as_str().unwrap().contains(message),
                "{query}: {v}"
            );
            assert!(
                v["detail"]
                    .as_str()
                    .unwrap()
                    .starts_with(&status.to_string()),
                "{v}"
            );
        }
        let long = config(&[("PFD_MAX_RECORD_SECONDS", "1")]);
        let body = format!(r#"{{"signal": {:?}, "sample_rate": 8}}"#, vec![1.0f32; 24]);
        let (got, v) = call(&long, &store, "POST", "/diagnose", &ct, &body);
        assert_eq!(got, 413, "{v}");
    }

    #[test]
    fn diagnose_returns_the_envelope_spectrum_only_when_asked() {
        let cfg = config(&[]);
        let store = Fixed(Some(model()));
        let ct = [("content-type", "application/json")];
        let body = format!(
            r#"{{"signal": {:?}, "sample_rate": 20480}}"#,
            (0..4096).map(|i| (i % 7) as f32).collect::<Vec<_>>()
        );
        let (_, without) = call(&cfg, &store, "POST", "/diagnose", &ct, &body);
        assert!(without["evidence"].get("envelope_spectrum").is_none());
        let (status, v) = call(
            &cfg,
            &store,
            "POST",
            "/diagnose?spectrum_max_hz=300",
            &ct,
            &body,
        );
        assert_eq!(status, 200, "{v}");
        let e = &v["evidence"]["envelope_spectrum"];
        let step = e["step_hz"].as_f64().unwrap();
        let points = e["amplitude"].as_array().unwrap().len();
        assert_eq!(
            step,
            v["evidence"]["spectrum"]["resolution_hz"].as_f64().unwrap()
        );
        assert_eq!(e["max_hz"].as_f64().unwrap(), (points - 1) as f64 * step);
        assert!(e["max_hz"].as_f64().unwrap() <= 300.0 && e["max_hz"].as_f64().unwrap() > 290.0);
        let (status, v) = call(
            &cfg,
            &store,
            "POST",
            "/diagnose?spectrum_max_hz=-1",
            &ct,
            &body,
        );
        assert_eq!(status, 422, "{v}");
    }

    #[test]
    fn bearings_lists_the_table_with_defect_orders() {
        let (status, v) = call(&config(&[]), &Fixed(None), "GET", "/bearings", &[], "");
        assert_eq!(status, 200);
        let rows = v["bearings"].as_array().unwrap();
        assert_eq!(rows.len(), pfd_signal::bearings::TABLE.len());
        let b6205 = rows.iter().find(|r| r["name"] == "6205").unwrap();
        assert_eq!(b6205["balls"], 9);
        // CWRU's published 6205 drive-end orders: BPFO 3.5848, BPFI 5.4152.
        assert!((b6205["orders"]["bpfo"].as_f64().unwrap() - 3.5848).abs() < 1e-3);
        assert!((b6205["orders"]["bpfi"].as_f64().unwrap() - 5.4152).abs() < 1e-3);
    }

    #[test]
    fn repository_index_lists_models_with_their_state() {
        let cfg = config(&[]);
        let (status, v) = call(
            &cfg,
            &Fixed(Some(model())),
            "POST",
            "/v2/repository/index",
            &[],
            "",
        );
        assert_eq!(status, 200, "{v}");
        assert_eq!(
            v,
            serde_json::json!([{"name": "bearing-lstm", "version": "1", "state": "READY"}])
        );
        /// Lists a model it cannot load.
        struct Broken;
        impl ModelStore for Broken {
            fn get(&self, name: &str) -> Result<&ServedModel, String> {
                Err(format!("{name}: model.onnx is not an ONNX model"))
            }
            fn names(&self) -> Result<Vec<String>, String> {
                Ok(vec!["broken".into()])
            }
        }
        let (_, v) = call(&cfg, &Broken, "POST", "/v2/repository/index", &[], "");
        assert_eq!(v[0]["state"], "UNAVAILABLE");
        assert!(v[0]["reason"]
            .as_str()
            .unwrap()
            .contains("not an ONNX model"));
        let (_, v) = call(
            &cfg,
            &Broken,
            "POST",
            "/v2/repository/index",
            &[],
            r#"{"ready": true}"#,
        );
        assert_eq!(v, serde_json::json!([]));
        let (status, v) = call(&cfg, &Broken, "POST", "/v2/repository/index", &[], "{nope");
        assert_eq!(status, 400, "{v}");
        let (status, _) = call(&cfg, &Broken, "GET", "/v2/repository/index", &[], "");
        assert_eq!(status, 405);
        let keyed = config(&[("PFD_API_KEY", "k")]);
        let (status, _) = call(&keyed, &Broken, "POST", "/v2/repository/index", &[], "");
        assert_eq!(status, 401);
    }

    #[test]
    fn the_page_is_served_with_a_strict_policy_and_fetches_nothing_elsewhere() {
        let cfg = config(&[("PFD_API_KEY", "k")]);
        let store = Fixed(Some(model()));
        let app = App {
            config: &cfg,
            models: &store,
        };
        for (path, content_type, _) in crate::ui::FILES {
            for path in [path.to_string(), format!("{path}/")] {
                let r = handle(
                    &app,
                    &Request {
                        method: "GET",
                        path: &path,
                        query: "",
                        headers: &[],
                        body: b"",
                    },
                );
                assert_eq!(r.status, 200, "{path}: no key needed for the page");
                let header = |name: &str| {
                    r.headers
                        .iter()
                        .find(|(k, _)| *k == name)
                        .map(|(_, v)| v.as_str())
                };
                assert_eq!(header("content-type"), Some(*content_type));
                let csp = header("content-security-policy").unwrap();
                assert!(
                    csp.starts_with("default-src 'none'") && !csp.contains("unsafe"),
                    "{csp}"
                );
                assert_eq!(header("x-content-type-options"), Some("nosniff"));
            }
        }
        let size: usize = crate::ui::FILES.iter().map(|(_, _, c)| c.len()).sum();
        assert!(
            size < 200_000,
            "the page adds {size} bytes to the component"
        );
        for (path, _, contents) in crate::ui::FILES {
            // The only absolute URL is the SVG namespace (an identifier, never fetched); the page
            // links its own files by path.
            let absolute = contents.replace("http://www.w3.org/2000/svg", "");
            assert!(
                !absolute.contains("http://")
                    && !absolute.contains("https://")
                    && !absolute.contains("//cdn"),
                "{path} refers to another origin"
            );
        }
        let html = crate::ui::FILES[0].2;
        for linked in ["/ui/app.js", "/ui/app.css"] {
            assert!(html.contains(linked), "{linked}");
        }
        let (_, v) = call(&cfg, &store, "GET", "/", &[], "");
        assert_eq!(v["ui"], "/ui");
    }

    #[test]
    fn every_readiness_route_reports_missing_files_and_predictions_still_answer() {
        let cfg = config(&[]);
        let store = FilesGone(Fixed(Some(model())));
        for path in [
            "/health/ready",
            "/v2/health/ready",
            "/v2/models/bearing-lstm/ready",
        ] {
            let (status, body) = call(&cfg, &store, "GET", path, &[], "");
            assert_eq!(status, 503, "{path}: {body}");
            assert!(
                body.to_string().contains("model.onnx is missing"),
                "{path}: {body}"
            );
        }
        assert_eq!(call(&cfg, &store, "GET", "/health/live", &[], "").0, 200);
        let signal = format!("{{\"signal\": {:?}}}", vec![0.5f32; 8]);
        assert_eq!(call(&cfg, &store, "POST", "/predict", &[], &signal).0, 200);
    }

    fn model() -> ServedModel {
        let mut card = ModelCard::fallback("bearing-lstm");
        card.signal_length = 8;
        ServedModel::new(
            card,
            Box::new(MeanEngine {
                classes: 11,
                ..Default::default()
            }),
            2_097_152,
        )
    }

    fn config(extra: &[(&str, &str)]) -> Config {
        let vars: BTreeMap<String, String> = extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_vars(&vars).unwrap()
    }

    fn call(
        cfg: &Config,
        store: &dyn ModelStore,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, Value) {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let r = handle(
            &App {
                config: cfg,
                models: store,
            },
            &Request {
                method,
                path,
                query,
                headers: &headers,
                body: body.as_bytes(),
            },
        );
        (r.status, serde_json::from_slice(&r.body).unwrap())
    }

    #[test]
    fn model_metadata_reports_the_cards_datatypes() {
        let cfg = config(&[]);
        let (status, v) = call(
            &cfg,
            &Fixed(Some(model())),
            "GET",
            "/v2/models/bearing-lstm",
            &[],
            "",
        );
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["inputs"][0]["datatype"], "FP32");
        assert_eq!(v["outputs"][0]["datatype"], "FP32");
        let mut half = model();
        half.card.input.dtype = "float16".into();
        let (_, v) = call(
            &cfg,
            &Fixed(Some(half)),
            "GET",
            "/v2/models/bearing-lstm",
            &[],
            "",
        );
        assert_eq!(v["inputs"][0]["datatype"], "FP16", "{v}");
        assert_eq!(v["outputs"][0]["datatype"], "FP32", "{v}");
    }

    /// From the router's tables to the document: every route the router serves — the table's
    /// and the OIP API's — is documented with its method, and with a key requirement exactly
    /// when the router asks for one. (`tests/test_openapi.py` goes the other way: from the
    /// document to the running server.)
    #[test]
    fn openapi_documents_every_route() {
        let spec: Value = serde_json::from_str(OPENAPI).unwrap();
        assert_eq!(spec["info"]["version"], crate::VERSION);
        let cfg = config(&[]);
        let store = Fixed(Some(model()));
        let mut served: Vec<(&str, String, bool)> = ROUTES
            .iter()
            .map(|r| (r.method, r.path.to_string(), r.protected))
            .collect();
        for (method, label) in crate::oip::ROUTES {
            let concrete = label
                .replace("{name}", "bearing-lstm")
                .replace("{version}", "1");
            assert_eq!(
                crate::oip::route_label(&concrete),
                Some(*label),
                "{concrete}"
            );
            let (status, v) = call(&cfg, &store, method, &concrete, &[], "{}");
            assert!(
                status != 404 && status != 405,
                "{method} {concrete}: {status} {v}"
            );
            served.push((
                method,
                label.replace("{name}", "{model}"),
                requires_api_key(method, &concrete),
            ));
        }
        assert_eq!(served.len(), ROUTES.len() + 10);
        for (method, path, protected) in served {
            let op = &spec["paths"][&path][method.to_ascii_lowercase()];
            assert!(
                op.is_object(),
                "{method} {path} is served but not in api/openapi.json"
            );
            assert_eq!(
                op.get("security").is_some(),
                protected,
                "{method} {path}: security"
            );
        }
    }

    #[test]
    fn oip_infer_json_and_binary() {
        let (cfg, store) = (config(&[]), Fixed(Some(model())));
        let app = App {
            config: &cfg,
            models: &store,
        };
        let body = br#"{"id":"r1","inputs":[{"name":"input","shape":[2,1,8],"datatype":"FP32","data":[[2,2,2,2,2,2,2,2],[5,5,5,5,5,5,5,5]]}]}"#;
        let r = handle(
            &app,
            &Request {
                method: "POST",
                path: "/v2/models/bearing-lstm/infer",
                query: "",
                headers: &[],
                body,
            },
        );
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(r.status, 200, "{v}");
        assert_eq!(v["id"], "r1");
        assert_eq!(v["outputs"][0]["shape"], serde_json::json!([2, 11]));
        let data: Vec<f64> = v["outputs"][0]["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(data[2], 0.0); // logit of class 2 for a mean of 2
        assert_eq!(data[11 + 5], 0.0);

        // The same request with binary input and output.
        let header = br#"{"inputs":[{"name":"input","shape":[1,1,8],"datatype":"FP32","parameters":{"binary_data_size":32}}],"outputs":[{"name":"logits","parameters":{"binary_data":true}}]}"#;
        let mut body = header.to_vec();
        body.extend(std::iter::repeat_n(3f32.to_le_bytes(), 8).flatten());
        let headers = vec![(
            "inference-header-content-length".to_string(),
            header.len().to_string(),
        )];
        let r = handle(
            &app,
            &Request {
                method: "POST",
                path: "/v2/models/bearing-lstm/infer",
                query: "",
                headers: &headers,
                body: &body,
            },
        );
        assert_eq!(r.status, 200);
        let n: usize = r
            .headers
            .iter()
            .find(|(k, _)| *k == "inference-header-content-length")
            .unwrap()
            .1
            .parse()
            .unwrap();
        let json: Value = serde_json::from_slice(&r.body[..n]).unwrap();
        assert_eq!(json["outputs"][0]["parameters"]["binary_data_size"], 44);
        let logits: Vec<f32> = r.body[n..]
            .chunks(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(logits[3], 0.0);

        let bad = |path: &str, method: &str, body: &[u8]| {
            handle(
                &app,
                &Request {
                    method,
                    path,
                    query: "",
                    headers: &[],
                    body,
                },
            )
            .status
        };
        assert_eq!(bad("/v2/models/nope/infer", "POST", b"{}"), 404);
        assert_eq!(bad("/v2/models/bearing-lstm/versions/9", "GET", b""), 404);
        assert_eq!(bad("/v2/models/bearing-lstm/infer", "POST", br#"{"inputs":[{"name":"input","shape":[1,8],"datatype":"FP32","data":[1,1,1,1,1,1,1,1]}]}"#), 400);
        assert_eq!(bad("/v2/models/bearing-lstm/infer", "POST", br#"{"inputs":[{"name":"input","shape":[1,1,8],"datatype":"INT8","data":[1,1,1,1,1,1,1,1]}]}"#), 400);
        assert_eq!(
            bad(
                "/v2/models/bearing-lstm/infer",
                "POST",
                br#"{"inputs":[{"name":"input","shape":[1,1,8],"datatype":"FP32","data":[1,1]}]}"#
            ),
            400
        );
        assert_eq!(bad("/v2/models/bearing-lstm/infer", "POST", b"{nope"), 400);
        assert_eq!(bad("/v2/models/bearing-lstm/infer", "GET", b""), 405);
        assert_eq!(bad("/v2/models/bearing-lstm/ready", "GET", b""), 200);
        assert_eq!(bad("/v2", "GET", b""), 200);
    }

    #[test]
    fn predictions_carry_server_timing() {
        let (cfg, store) = (config(&[]), Fixed(Some(model())));
        let r = handle(
            &App {
                config: &cfg,
                models: &store,
            },
            &Request {
                method: "POST",
                path: "/predict",
                query: "",
                headers: &[],
                body: br#"{"signal":[1,1,1,1,1,1,1,1]}"#,
            },
        );
        let timing = &r
            .headers
            .iter()
            .find(|(k, _)| *k == "server-timing")
            .expect("server-timing")
            .1;
        let names: Vec<&str> = timing
            .split(", ")
            .map(|m| m.split(';').next().unwrap())
            .collect();
        assert_eq!(names, ["decode", "infer", "encode"], "{timing}");
    }

    #[test]
    fn predict_answers_the_contract() {
        let (cfg, store) = (config(&[]), Fixed(Some(model())));
        let (s, b) = call(
            &cfg,
            &store,
            "POST",
            "/predict",
            &[],
            r#"{"signal":[3,3,3,3,3,3,3,3],"return_top_k":2}"#,
        );
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["predicted_class"], 3);
        assert_eq!(b["class_name"], "Bearing Clearance");
        let probs = b["probabilities"].as_object().unwrap();
        assert_eq!(probs.len(), 2);
        assert_eq!(probs.keys().next().unwrap(), "Bearing Clearance");
        assert_eq!(b["confidence"], probs["Bearing Clearance"]);
        let (_, b) = call(
            &cfg,
            &store,
            "POST",
            "/predict",
            &[],
            r#"{"signal":[0,0,0,0,0,0,0,0],"return_probabilities":false}"#,
        );
        assert_eq!(b["probabilities"], Value::Null);
    }

    #[test]
    fn batch_splits_time_and_predicts_each() {
        let (cfg, store) = (config(&[("PFD_BATCH_SIZE", "2")]), Fixed(Some(model())));
        let (s, b) = call(
            &cfg,
            &store,
            "POST",
            "/predict/batch",
            &[],
            r#"{"signals":[[1,1,1,1,1,1,1,1],[2,2,2,2,2,2,2,2],[7,7,7,7,7,7,7,7]]}"#,
        );
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["batch_size"], 3);
        let classes: Vec<_> = b["predictions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["predicted_class"].as_u64().unwrap())
            .collect();
        assert_eq!(classes, [1, 2, 7]);
        let total = b["total_inference_time_ms"].as_f64().unwrap();
        assert!((b["average_inference_time_ms"].as_f64().unwrap() - total / 3.0).abs() < 1e-9);
    }

    #[test]
    fn route_labels_probes_and_key_requirements() {
        for (path, label) in [
            ("/predict", "/predict"),
            ("/predict/", "/predict"),
            ("/health/ready", "/health/ready"),
            ("/v2", "/v2"),
            ("/v2/models/bearing-lstm/infer", "/v2/models/{name}/infer"),
            (
                "/v2/models/x/versions/3/ready",
                "/v2/models/{name}/versions/{version}/ready",
            ),
            ("/v2/models/x/explain", UNMATCHED),
            ("/wp-login.php", UNMATCHED),
        ] {
            assert_eq!(route_label(path), label, "{path}");
        }
        assert!(is_probe("/health") && is_probe("/v2/health/ready/"));
        assert!(!is_probe("/predict") && !is_probe("/v2"));
        assert!(requires_api_key("POST", "/predict"));
        assert!(requires_api_key("POST", "/v2/models/m/infer"));
        assert!(requires_api_key("GET", "/v2/models/m"));
        assert!(!requires_api_key("GET", "/predict"), "a 405 needs no key");
        assert!(!requires_api_key("GET", "/health"));
        assert!(!requires_api_key("GET", "/v2/health/live"));
        assert!(!requires_api_key("GET", "/nope"));
        let oip: Value =
            serde_json::from_slice(&error_for("/v2/models/m/infer", 429, "slow down").body)
                .unwrap();
        assert_eq!(oip, serde_json::json!({"error": "slow down"}));
        let lstm: Value =
            serde_json::from_slice(&error_for("/predict", 429, "slow down").body).unwrap();
        assert_eq!(lstm["detail"], "429: slow down");
    }

    #[test]
    fn inference_records_reach_only_hosts_that_ask() {
        let (cfg, store) = (config(&[]), Fixed(Some(model())));
        let app = App {
            config: &cfg,
            models: &store,
        };
        let batch = br#"{"signals": [[2,2,2,2,2,2,2,2],[2,2,2,2,2,2,2,2],[5,5,5,5,5,5,5,5]]}"#;
        let asked = [(telemetry::REQUEST_HEADER.to_string(), "1".to_string())];
        let record_of = |headers: &[(String, String)], path: &str, body: &[u8]| {
            let r = handle(
                &app,
                &Request {
                    method: "POST",
                    path,
                    query: "",
                    headers,
                    body,
                },
            );
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            r.headers
                .iter()
                .find(|(n, _)| *n == telemetry::RESPONSE_HEADER)
                .map(|(_, v)| InferenceRecord::from_header(v).unwrap())
        };
        assert_eq!(record_of(&[], "/predict/batch", batch), None);
        let r = record_of(&asked, "/predict/batch", batch).unwrap();
        assert_eq!(r.model, "bearing-lstm");
        assert_eq!(r.backend, model().backend().to_string());
        let names = &model().card.class_names;
        assert_eq!(r.classes[&names[2]], 2);
        assert_eq!(r.classes[&names[5]], 1);
        assert!(r.seconds >= 0.0);
        let oip = br#"{"inputs":[{"name":"input","shape":[1,1,8],"datatype":"FP32","data":[7,7,7,7,7,7,7,7]}]}"#;
        let r = record_of(&asked, "/v2/models/bearing-lstm/infer", oip).unwrap();
        assert_eq!(r.classes[&names[7]], 1);
    }

    #[test]
    fn auth_routing_and_model_states() {
        let store = Fixed(Some(model()));
        let cfg = config(&[("PFD_API_KEY", "s3cret")]);
        assert_eq!(call(&cfg, &store, "GET", "/model/info", &[], "").0, 401);
        assert_eq!(
            call(
                &cfg,
                &store,
                "GET",
                "/model/info",
                &[("x-api-key", "nope")],
                ""
            )
            .0,
            401
        );
        assert_eq!(
            call(
                &cfg,
                &store,
                "GET",
                "/model/info",
                &[("x-api-key", "s3cret")],
                ""
            )
            .0,
            200
        );
        assert_eq!(
            call(
                &cfg,
                &store,
                "GET",
                "/model/info",
                &[("authorization", "Bearer s3cret")],
                ""
            )
            .0,
            200
        );
        // Auth comes before the body: a bad body without a key is a 401, not a 422.
        assert_eq!(call(&cfg, &store, "POST", "/predict", &[], "{").0, 401);
        assert_eq!(call(&cfg, &store, "GET", "/health", &[], "").0, 200);
        assert_eq!(
            call(&cfg, &store, "GET", "/nope", &[], "").1,
            serde_json::json!({"detail": "Not Found"})
        );
        assert_eq!(call(&cfg, &store, "GET", "/predict", &[], "").0, 405);
        assert_eq!(call(&cfg, &store, "DELETE", "/health", &[], "").0, 405);
        let (_, info) = call(
            &cfg,
            &store,
            "GET",
            "/model/info/",
            &[("x-api-key", "s3cret")],
            "",
        );
        assert_eq!(info["class_names"]["10"], "Cavitation + Clearance");
        assert_eq!(info["model_size_mb"], 2.0);

        let empty = Fixed(None);
        let cfg = config(&[]);
        let (s, h) = call(&cfg, &empty, "GET", "/health", &[], "");
        assert_eq!(
            (s, h["status"].as_str(), h["model_loaded"].as_bool()),
            (200, Some("unhealthy"), Some(false))
        );
        assert_eq!(
            call(
                &config(&[("PFD_STRICT_HEALTH", "1")]),
                &empty,
                "GET",
                "/health",
                &[],
                ""
            )
            .0,
            503
        );
        assert_eq!(call(&cfg, &empty, "GET", "/health/ready", &[], "").0, 503);
        assert_eq!(call(&cfg, &empty, "GET", "/health/live", &[], "").0, 200);
        let (s, e) = call(&cfg, &empty, "POST", "/predict", &[], "{}");
        assert_eq!((s, e["error"].as_str()), (503, Some("Model not loaded")));
        assert_eq!(call(&cfg, &store, "GET", "/health/ready", &[], "").0, 200);
    }
}
