//! `pfd-host preinit`: pre-initialise the component's core module with wizer.
//!
//! A build step (run by `cargo xtask build-component`), hosted here because pfd-host already
//! links wasmtime: building a second wasmtime for the xtask would double the cold build.
//!
//! The core module is instantiated once with the same view of the world the component gets at
//! runtime from `spin.toml` — the manifest's directory mounts and environment — its
//! `wizer-initialize` export runs (the guest loads, optimises and warms up its default model),
//! and the memory is snapshotted into a new core module. Imports other than WASI preview 1
//! (`wasi:http`, `wasi:nn`…) are defined as traps: pre-initialisation must not use them, and a
//! guest that tried would fail the build loudly rather than snapshot a half-initialised state.

use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use tracing::info;
use wasmtime::{Config, Engine, Linker, Store};
use wasmtime_wasi::p1::{self, WasiP1Ctx};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};
use wasmtime_wizer::Wizer;

use crate::manifest::{AppManifest, Mount};
use clap::Args;
use std::path::PathBuf;

/// `pfd-host preinit`.
#[derive(Debug, Clone, Args)]
pub struct PreinitArgs {
    /// The core module (wasm32-wasip1 reactor) exporting `wizer-initialize`.
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write the pre-initialised core module.
    #[arg(long)]
    pub output: PathBuf,
    /// The manifest whose mounts and environment the initialisation sees.
    #[arg(long, default_value = "spin.toml")]
    pub manifest: PathBuf,
}

/// `pfd-host preinit`.
pub async fn run(args: &PreinitArgs) -> Result<()> {
    let (input, output, manifest_path) = (&args.input, &args.output, &args.manifest);
    let started = Instant::now();
    let manifest = AppManifest::load(manifest_path)?;
    let wasm = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;

    let engine = Engine::new(&Config::new()).map_err(|e| anyhow!("{e:#}"))?;

    let mut wasi = WasiCtxBuilder::new();
    wasi.inherit_stderr();
    for (k, v) in &manifest.environment {
        wasi.env(k, v);
    }
    for mount in &manifest.mounts {
        match mount {
            Mount::Dir { host, guest } => {
                wasi.preopened_dir(host, guest, FsPerms::ReadOnly)
                    .map_err(|e| anyhow!("mounting {} at {guest}: {e:#}", host.display()))?;
            }
            Mount::Glob { .. } => bail!("preinit supports directory mounts only (spin.toml `files` with source/destination)"),
        }
    }
    let mut store: Store<WasiP1Ctx> = Store::new(&engine, wasi.build_p1());
    let mut linker: Linker<WasiP1Ctx> = Linker::new(&engine);
    p1::add_to_linker_async(&mut linker, |cx| cx).map_err(|e| anyhow!("{e:#}"))?;

    let snapshot = Wizer::new()
        .run(&mut store, &wasm, async |store, module| {
            linker.define_unknown_imports_as_traps(module)?;
            linker.instantiate_async(store, module).await
        })
        .await
        .map_err(|e| anyhow!("pre-initialising the core module: {e:#}"))?;
    std::fs::write(output, &snapshot).with_context(|| format!("writing {}", output.display()))?;
    info!(
        input = %input.display(),
        output = %output.display(),
        input_bytes = wasm.len(),
        output_bytes = snapshot.len(),
        ms = started.elapsed().as_millis() as u64,
        "pre-initialised"
    );
    Ok(())
}
