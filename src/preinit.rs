//! Pre-initialisation (wizer): the work every fresh instance would otherwise repeat.
//!
//! WASI 0.2 hosts instantiate the component per request, so without this every request pays
//! for parsing the ONNX file and optimising tract's plan (≈10 ms in wasm, more than the
//! inference itself). `pfd-host preinit` (driven by `cargo xtask build-component`) instantiates
//! the core module once, calls [`preinitialize`], and snapshots the resulting memory into a new
//! module: every instance then *starts* with the default model's plan built and warmed up.
//!
//! What the snapshot may and may not hold:
//! - the model store and its plan: yes — that is the point; `/diagnose`'s FFT plans, windows
//!   and resamplers for it too (`pfd_signal::plans`, only read after the snapshot);
//! - configuration: no — it is read per instance from the runtime environment, and the
//!   environment cache wasi-libc filled while we read `PFD_MODEL_DIR`/`PFD_MODEL` is dropped
//!   (`__wasilibc_deinitialize_environ`) so runtime variables (API keys…) are seen;
//! - wasi-libc's preopen table: it is filled by a libc constructor during `_initialize`, which
//!   wizer runs (and then removes), so the table in the snapshot is the pre-initialising host's
//!   and wrong for a host that mounts differently (Spin preopens its staging folder at `/`).
//!   The component therefore never opens files through it: [`crate::files`] asks the running
//!   host for its preopens on every read, so any mount layout that puts the models at
//!   `PFD_MODEL_DIR` works, and only models *not* in the snapshot are read at runtime.

use pfd_core::config::Config;

use crate::models;

extern "C" {
    /// wasi-libc: forget the cached environment so the next `getenv` reads the runtime's.
    fn __wasilibc_deinitialize_environ();
}

/// Called once, by wizer, never at runtime (wizer removes the export from the snapshot).
#[export_name = "wizer-initialize"]
pub extern "C" fn preinitialize() {
    if let Ok(config) = Config::from_env() {
        if let Ok(model) = models::store(&config).tract(&config.default_model) {
            // Warm-up runs tract's lazy one-time work (kernel selection, scratch buffers), so
            // readiness in a fresh instance costs nothing either.
            let _ = model.warm_up();
            // `/diagnose`'s FFT plans and windows for this model: twiddle factors are software
            // sin/cos in the guest, and each instance would otherwise compute them again.
            pfd_core::diagnose::prepare(&model.card);
        }
    }
    // SAFETY: called once, single-threaded, before any runtime code reads the environment.
    unsafe { __wasilibc_deinitialize_environ() };
}
