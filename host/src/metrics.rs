//! Prometheus metrics, served at `/metrics` (OpenMetrics text).
//!
//! | metric | type | labels | source |
//! |---|---|---|---|
//! | `http_requests_total` | counter | `route`, `code` | every response pfd-host sends |
//! | `http_request_duration_seconds` | histogram | `route` | arrival → response head |
//! | `http_requests_in_flight` | gauge | | requests being handled |
//! | `inference_queue_depth` | gauge | | requests waiting for an instance slot |
//! | `http_request_body_in_flight_bytes` | gauge | | body bytes received and held by requests not yet answered ([`crate::body`]) |
//! | `inference_duration_seconds` | histogram | `model`, `backend` | the component's engine call |
//! | `inferences_total` | counter | `model`, `class` | signals, by predicted class |
//! | `model_loaded` | gauge | `model` | 1 when the model answers ready |
//!
//! **Labels stay bounded.** `route` is the route *template* (`/v2/models/{name}/infer`), from
//! the component's own route table ([`pfd_core::router::route_label`]); any path that matches no
//! route is `unmatched`, so a scanner cannot create series. `model` and `class` come from the
//! model folders and their cards.
//!
//! **Where inference numbers come from.** The model runs inside the component (tract) or behind
//! its wasi-nn calls, and an instance lives for one request, so the component reports each engine
//! call in a private response header ([`pfd_core::telemetry`]) that [`Metrics::record_inference`]
//! consumes. One definition of "inference time" covers both backends: the guest's wall time of the
//! engine call, host ONNX Runtime time included.
//!
//! **Why these buckets.** Requests span four orders of magnitude: a probe answers in ~0.5 ms, a
//! `/predict` in ~15 ms, a 128-signal batch in a few hundred ms, so buckets start at 100 µs and
//! grow ~2.5x per step. 0.5 s is a boundary on purpose: it is the latency SLO's threshold
//! (`deploy/prometheus/rules`), which makes the "slower than the SLO" ratio exact instead of
//! interpolated.
//!
//! `/metrics` is unauthenticated, like every Prometheus target: it reveals request counts and
//! timings, never payloads or keys. Turn it off with `--metrics off`, or keep the port private.

use std::time::Duration;

use pfd_core::telemetry::InferenceRecord;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The Content-Type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Latency buckets in seconds (see the module docs; 0.5 is the SLO threshold).
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EngineLabels {
    model: String,
    backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabels {
    model: String,
    class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS.iter().copied())
}

/// The server's metrics (cheap to update from any task; see the module docs).
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: HistogramFamily<RouteLabels>,
    in_flight: Gauge,
    queue_depth: Gauge,
    body_bytes: Gauge,
    inference_duration: HistogramFamily<EngineLabels>,
    inferences: Family<ClassLabels, Counter>,
    model_loaded: Family<ModelLabels, Gauge>,
    connections_refused: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP responses sent, by route template and status code",
            requests.clone(),
        );
        let request_duration: HistogramFamily<RouteLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "http_request_duration",
            "Time from a request's arrival to its response head, by route template",
            Unit::Seconds,
            request_duration.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "http_requests_in_flight",
            "Requests being handled now",
            in_flight.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "inference_queue_depth",
            "Requests waiting for a free component instance slot (--max-concurrency)",
            queue_depth.clone(),
        );
        let body_bytes = Gauge::default();
        registry.register_with_unit(
            "http_request_body_in_flight",
            "Request body bytes received and held by requests not yet answered (--max-inflight-body-bytes)",
            Unit::Bytes,
            body_bytes.clone(),
        );
        let inference_duration: HistogramFamily<EngineLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "inference_duration",
            "Engine time of one inference call (all signals of a request), by model and backend",
            Unit::Seconds,
            inference_duration.clone(),
        );
        let inferences = Family::<ClassLabels, Counter>::default();
        registry.register(
            "inferences",
            "Signals classified, by model and predicted class",
            inferences.clone(),
        );
        let model_loaded = Family::<ModelLabels, Gauge>::default();
        registry.register(
            "model_loaded",
            "1 when the model is loaded and answers ready, 0 when it does not",
            model_loaded.clone(),
        );
        let connections_refused = Counter::default();
        registry.register(
            "http_connections_refused",
            "Connections closed at accept with a 503 because their client address already had --max-connections-per-client open",
            connections_refused.clone(),
        );
        Metrics {
            registry,
            requests,
            request_duration,
            in_flight,
            queue_depth,
            body_bytes,
            inference_duration,
            inferences,
            model_loaded,
            connections_refused,
        }
    }

    /// Counts one response.
    pub fn observe_request(&self, route: &'static str, code: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels { route, code })
            .inc();
        self.request_duration
            .get_or_create(&RouteLabels { route })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts one connection refused by the per-client cap.
    pub fn connection_refused(&self) {
        self.connections_refused.inc();
    }

    /// Marks a request in flight until the guard drops.
    pub fn in_flight(&self) -> GaugeGuard {
        GaugeGuard::new(&self.in_flight)
    }

    /// The gauge of in-flight request body bytes (kept by [`crate::body::BodyBudget`]).
    pub fn body_bytes(&self) -> Gauge {
        self.body_bytes.clone()
    }

    /// Marks a request as queued for an instance slot until the guard drops.
    pub fn queued(&self) -> GaugeGuard {
        GaugeGuard::new(&self.queue_depth)
    }

    /// Records one engine call reported by the component.
    pub fn record_inference(&self, record: &InferenceRecord) {
        self.inference_duration
            .get_or_create(&EngineLabels {
                model: record.model.clone(),
                backend: record.backend.clone(),
            })
            .observe(record.seconds);
        for (class, count) in &record.classes {
            self.inferences
                .get_or_create(&ClassLabels {
                    model: record.model.clone(),
                    class: class.clone(),
                })
                .inc_by(*count);
        }
        // It just ran, so it is loaded.
        self.set_model_loaded(&record.model, true);
    }

    /// Sets `model_loaded{model}`.
    pub fn set_model_loaded(&self, model: &str, loaded: bool) {
        self.model_loaded
            .get_or_create(&ModelLabels {
                model: model.to_string(),
            })
            .set(i64::from(loaded));
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Increments a gauge now and decrements it when dropped (so every exit path, cancellation
/// included, gives the count back).
pub struct GaugeGuard(Gauge);

impl GaugeGuard {
    fn new(gauge: &Gauge) -> Self {
        gauge.inc();
        GaugeGuard(gauge.clone())
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting {prefix:?} in\n{text}"))
    }

    #[test]
    fn names_labels_and_values() {
        let m = Metrics::new();
        m.observe_request("/predict", 200, Duration::from_millis(12));
        m.observe_request("/predict", 200, Duration::from_millis(700));
        m.observe_request("/predict", 422, Duration::from_micros(300));
        {
            let _a = m.in_flight();
            let _b = m.in_flight();
            let _q = m.queued();
            let text = m.encode();
            assert_eq!(
                line(&text, "http_requests_in_flight "),
                "http_requests_in_flight 2"
            );
            assert_eq!(
                line(&text, "inference_queue_depth "),
                "inference_queue_depth 1"
            );
        }
        m.record_inference(&InferenceRecord {
            model: "bearing-lstm".into(),
            backend: "tract/wasm".into(),
            seconds: 0.004,
            classes: BTreeMap::from([("Healthy".into(), 2), ("Ball Fault".into(), 1)]),
        });
        m.set_model_loaded("other", false);
        let text = m.encode();
        assert_eq!(
            line(&text, r#"http_requests_total{route="/predict",code="200"}"#),
            r#"http_requests_total{route="/predict",code="200"} 2"#
        );
        // 0.5 s is a bucket: one of the two 200s was slower than the SLO.
        assert_eq!(
            line(
                &text,
                r#"http_request_duration_seconds_bucket{le="0.5",route="/predict"}"#
            ),
            r#"http_request_duration_seconds_bucket{le="0.5",route="/predict"} 2"#
        );
        assert!(text
            .contains(r#"http_request_duration_seconds_bucket{le="0.0001",route="/predict"} 0"#));
        assert!(text.contains(r#"inferences_total{model="bearing-lstm",class="Ball Fault"} 1"#));
        assert!(text.contains(r#"inferences_total{model="bearing-lstm",class="Healthy"} 2"#));
        assert!(text.contains(
            r#"inference_duration_seconds_count{model="bearing-lstm",backend="tract/wasm"} 1"#
        ));
        assert!(text.contains(r#"model_loaded{model="bearing-lstm"} 1"#));
        assert!(text.contains(r#"model_loaded{model="other"} 0"#));
        assert_eq!(
            line(&text, "http_requests_in_flight "),
            "http_requests_in_flight 0"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
