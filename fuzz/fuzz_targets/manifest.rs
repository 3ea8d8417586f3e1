//! pfd-host's `spin.toml` reader: any text is a manifest or a clear error, never a panic.
//!
//! The module is compiled in from the host's source rather than by depending on pfd-host: that
//! crate links wasmtime, cranelift and ONNX Runtime bindings, and instrumenting all of them for
//! coverage would make every fuzz build (CI's included) many minutes longer. The module is pure
//! (TOML, paths, globs), so compiling it here tests exactly the code pfd-host runs.
#![no_main]

#[allow(dead_code)]
#[path = "../../host/src/manifest.rs"]
mod manifest;

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Relative sources resolve against a directory that does not exist: nothing on this machine
    // is read, and missing paths are the reader's errors to report.
    let dir = Path::new("/nonexistent-pfd-fuzz");
    if let Ok(m) = manifest::AppManifest::parse(text, &dir.join("spin.toml"), dir) {
        let _ = m.route.path_info("/predict");
    }
    let _ = manifest::Route::parse(text);
});
