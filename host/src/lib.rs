//! `pfd-host`: the native host of the pfd-edge component, as a library and a thin binary.
//!
//! A small, purpose-built `wasmtime serve`: it reads the same `spin.toml` that `spin up` reads,
//! compiles the component once (and caches the machine code on disk), pre-instantiates it, and
//! serves every HTTP request from a fresh instance on the pooling allocator, under explicit limits —
//! body size, concurrency, a per-request deadline, memory per instance — with request-id-tagged
//! logs and a graceful shutdown.
//!
//! Layers, each depending only on those above it in this list:
//!
//! | module | what it is |
//! |---|---|
//! | [`allocator`] | glibc malloc settings (arena cap, trimming) |
//! | [`eval`], [`report`] | the tools' numerical and report helpers |
//! | [`reference`] | a model's reference vectors |
//! | [`manifest`] | `spin.toml`: component, files, environment, route |
//! | [`ratelimit`] | per-client GCRA rate limiting |
//! | [`nn`] | the wasi-nn host: ONNX Runtime graphs behind `wasi:nn` |
//! | [`config`] | flags shared by several commands, `.env`, unknown-setting checks |
//! | [`runtime`] | wasmtime: compile cache, pooling allocator, one instance per request |
//! | [`body`], [`metrics`], [`server`] | hyper: limits, admission, deadlines, `/metrics`, drain |
//! | [`commands`] | one file per subcommand, each with its flags; the CLI |
//!
//! The binary (`main.rs`) sets up the process and calls [`commands::run`].

pub mod allocator;
pub mod body;
pub mod commands;
pub mod config;
pub mod eval;
pub mod manifest;
pub mod metrics;
pub mod nn;
pub mod ratelimit;
pub mod reference;
pub mod report;
pub mod runtime;
pub mod server;
