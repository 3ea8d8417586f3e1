//! The pfd-edge component: a thin Spin / `wasi:http` adapter around `pfd-core`.
//!
//! Each request arrives in a fresh instance (WASI 0.2 hosts — Spin, SpinKube's shim,
//! `wasmtime serve`, pfd-host — instantiate per request). The adapter converts the request,
//! reads the configuration from environment variables, and lets [`pfd_core::router::handle`]
//! answer. Models come from `PFD_MODEL_DIR` (mounted through `spin.toml`'s `files`) and are
//! served by the tract engine, in the guest; the default one is already in memory when the
//! shipped component was pre-initialised (see [`preinit`]).

#[cfg(target_os = "wasi")]
mod libc_shim;
mod models;
#[cfg(target_os = "wasi")]
mod preinit;
#[cfg(feature = "wasi-nn")]
mod wasi_nn;

use std::sync::OnceLock;

use pfd_core::config::{Config, ConfigError};
use pfd_core::http::Request as CoreRequest;
use pfd_core::router::{self, App};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

fn config() -> &'static Result<Config, ConfigError> {
    static CONFIG: OnceLock<Result<Config, ConfigError>> = OnceLock::new();
    CONFIG.get_or_init(Config::from_env)
}

#[http_component]
fn handle(req: Request) -> Response {
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
        headers: &headers,
        body: req.body(),
    };
    let response = match config() {
        Ok(config) => router::handle(
            &App {
                config,
                models: models::store(config),
            },
            &core_req,
        ),
        Err(err) => router::handle_config_error(err, &core_req),
    };
    let mut builder = Response::builder();
    builder.status(response.status);
    for (name, value) in response.headers {
        builder.header(name, value);
    }
    builder.body(response.body).build()
}
