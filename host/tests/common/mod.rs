//! Shared by the integration tests.

use std::path::PathBuf;

/// The workspace root, from the `CARGO_MANIFEST_DIR` that `cargo test` sets when it *runs* the
/// test, not the one baked in when it was compiled: a shared target directory (CI caches one
/// outside the clone) reuses test binaries built from another checkout, and those must test this
/// checkout's files.
pub fn workspace() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir
        .join("..")
        .canonicalize()
        .expect("the workspace root exists")
}
