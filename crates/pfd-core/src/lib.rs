//! pfd-edge's shared core.
//!
//! Everything that defines *what the service answers* lives here, once, as plain Rust that
//! compiles natively and to `wasm32-wasip1`: the LSTM_PFD request/response schemas and their
//! validation ([`predict`]) and handlers ([`lstm_pfd`]), the Open Inference Protocol v2 ([`oip`]),
//! FastAPI-compatible error bodies ([`errors`]), the route table ([`router`]) over the application
//! and its models ([`app`]), softmax/top-k ([`postprocess`]),
//! model cards ([`card`]), settings ([`config`]), real recordings (`/diagnose`, [`diagnose`], on
//! top of the `pfd-signal` crate), which WASI preopen holds a path ([`mounts`]), the page for people ([`ui`])
//! and the [`engine::InferenceEngine`] trait that backends implement.
//!
//! The crate does no I/O. The Spin component (`src/`) and the native host (`host/`) are thin
//! adapters: they turn their HTTP types into [`http::Request`], hand it to
//! [`router::handle`], and write the [`http::Response`] back. That keeps the API semantics
//! testable natively in milliseconds and identical on every host.

pub mod app;
pub mod auth;
pub mod card;
pub mod config;
pub mod diagnose;
pub mod engine;
pub mod errors;
pub mod floats;
pub mod http;
pub mod lstm_pfd;
pub mod mounts;
pub mod oip;
pub mod postprocess;
pub mod predict;
pub mod router;
pub mod telemetry;
pub mod timefmt;
pub mod ui;

/// The version reported by `/`, `/health` and the OIP server metadata.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
