//! The pfd-edge component: a thin Spin / `wasi:http` adapter around `pfd-core`.
//!
//! Each request arrives in a fresh instance (WASI 0.2 hosts — Spin, SpinKube's shim,
//! `wasmtime serve`, pfd-host — instantiate per request). The adapter converts the request,
//! reads the configuration from environment variables, and lets [`pfd_core::router::handle`]
//! answer. Models come from `PFD_MODEL_DIR` (mounted through `spin.toml`'s `files`) and are
//! served by the tract engine, in the guest; the default one is already in memory when the
//! shipped component was pre-initialised (see [`preinit`]).

mod files;
#[cfg(target_os = "wasi")]
mod libc_shim;
mod models;
#[cfg(target_os = "wasi")]
mod preinit;
#[cfg(feature = "wasi-nn")]
mod wasi_nn;

use std::sync::OnceLock;

use pfd_core::app::App;
use pfd_core::config::{Config, ConfigError};
use pfd_core::http::Request as CoreRequest;
use pfd_core::router;
use spin_sdk::http::{IncomingRequest, Request, Response};
use spin_sdk::http_component;

fn config() -> &'static Result<Config, ConfigError> {
    static CONFIG: OnceLock<Result<Config, ConfigError>> = OnceLock::new();
    CONFIG.get_or_init(Config::from_env)
}

/// Largest body the adapter pre-sizes its buffer for from `Content-Length`. Why a cap: the
/// header is the client's word; a lie must not make the guest reserve gigabytes up front (the
/// host bounds real bodies — pfd-host's `--max-body-bytes` is 256 MiB by default).
const MAX_PRESIZE: usize = 256 << 20;

/// Reads the request body into one buffer, sized from `Content-Length` when there is one.
/// Why not spin-sdk's `Request` conversion: it grows an empty `Vec` chunk by chunk, copying a
/// 1 MB body ~8 times through reallocations and touching twice its pages — each page a fresh
/// fault in a per-request instance.
async fn read_request(req: IncomingRequest) -> Result<Request, String> {
    use futures::TryStreamExt;
    let mut request = Request::builder()
        .method(req.method())
        .uri(req.uri())
        .headers(req.headers())
        .build();
    let announced = request
        .header("content-length")
        .and_then(|v| v.as_str()?.trim().parse::<usize>().ok());
    let body = request.body_mut();
    if let Some(n) = announced {
        // A failed reservation only means no pre-sizing; the read below still works.
        let _ = body.try_reserve_exact(n.min(MAX_PRESIZE));
    }
    let mut stream = req.into_body_stream();
    while let Some(chunk) = stream.try_next().await.map_err(|e| e.to_debug_string())? {
        body.extend_from_slice(&chunk);
    }
    Ok(request)
}

#[http_component]
async fn handle(incoming: IncomingRequest) -> Response {
    let response = match read_request(incoming).await {
        Ok(req) => answer(&req),
        Err(e) => pfd_core::errors::http_error(400, &format!("cannot read the request body: {e}")),
    };
    let mut builder = Response::builder();
    builder.status(response.status);
    for (name, value) in response.headers {
        builder.header(name, value);
    }
    builder.body(response.body).build()
}

/// Converts the request and lets the core answer.
fn answer(req: &Request) -> pfd_core::http::Response {
    let method = req.method().to_string();
    let headers: Vec<(String, String)> = req
        .headers()
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let core_req = CoreRequest {
        method: &method,
        path: req.path(),
        query: req.query(),
        headers: &headers,
        body: req.body(),
    };
    match config() {
        Ok(config) => router::handle(
            &App {
                config,
                models: models::store(config),
            },
            &core_req,
        ),
        Err(err) => router::handle_config_error(err, &core_req),
    }
}
