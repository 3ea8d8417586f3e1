//! Which libonnxruntime to load, and the process's ONNX Runtime environment.
//!
//! pfd-host is built with `ort`'s `load-dynamic`: nothing is downloaded or linked at build time,
//! and the shared library is `dlopen`ed at start. The PyPI `onnxruntime` wheel ships it as
//! `onnxruntime/capi/libonnxruntime.so.<version>` (`onnxruntime-gpu` adds the CUDA provider
//! libraries next to it). The first of these that loads wins:
//!
//! 1. `--ort-lib` / `PFD_ORT_LIB` (a file; if it does not load, nothing else is tried: an
//!    explicit choice that silently fell back to another library would be a trap);
//! 2. `ORT_DYLIB_PATH` (the `ort` crate's own variable);
//! 3. the project venv: `$PFD_VENV`, else `~/.cache/pfd-edge/venv`, at
//!    `lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*` (newest version first);
//! 4. the system loader: `libonnxruntime.so`, then `libonnxruntime.so.1` (`LD_LIBRARY_PATH`,
//!    `ldconfig`; the container images put the library in `/usr/local/lib/pfd-edge` and set
//!    `LD_LIBRARY_PATH`).
//!
//! `ort` accepts any ONNX Runtime at least as new as the API version it is built for; pfd-host
//! enables no `api-*` feature, so that is API 17 (ONNX Runtime ≥ 1.17).
//!
//! Loading happens once per process (`ort` keeps the library for the life of the process); the
//! outcome — success or the reasons for failure — is cached.

use anyhow::{anyhow, Result};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The loaded ONNX Runtime.
pub struct OrtRuntime {
    /// The environment every session is created in.
    pub env: ort::environment::Environment,
    /// The library file (as given to the loader).
    pub path: PathBuf,
    /// `GetVersionString`, e.g. `1.22.1`.
    pub version: String,
    /// Which rule found it (see the module docs).
    pub how: &'static str,
}

static LOADED: OnceLock<Result<OrtRuntime, String>> = OnceLock::new();

/// Loads ONNX Runtime (once per process; later calls return the first outcome, whatever
/// `explicit` they pass).
pub fn load(explicit: Option<&Path>) -> Result<&'static OrtRuntime> {
    LOADED
        .get_or_init(|| load_uncached(explicit))
        .as_ref()
        .map_err(|e| anyhow!("{e}"))
}

/// The runtime loaded earlier, if any.
pub fn loaded() -> Option<&'static OrtRuntime> {
    LOADED.get().and_then(|r| r.as_ref().ok())
}

/// Every library [`load`] would try, in order: `explicit` (else `PFD_ORT_LIB`) alone when given,
/// else rules 2–4 of the module docs.
pub fn candidates_for(explicit: Option<&Path>) -> Vec<(PathBuf, &'static str)> {
    let explicit = explicit
        .map(Path::to_path_buf)
        .or_else(|| non_empty_env("PFD_ORT_LIB").map(PathBuf::from));
    match explicit {
        Some(p) => vec![(p, "--ort-lib / PFD_ORT_LIB")],
        None => candidates(
            non_empty_env("ORT_DYLIB_PATH").map(PathBuf::from),
            &venv_dir(),
        ),
    }
}

/// The first of [`candidates_for`]`(None)` that is a file on disk (the system loader's bare names
/// are not): where a test, which must not load the library into its own process, finds it.
pub fn library_file() -> Option<PathBuf> {
    candidates_for(None)
        .into_iter()
        .map(|(p, _)| p)
        .find(|p| p.components().count() > 1 && p.is_file())
}

fn load_uncached(explicit: Option<&Path>) -> Result<OrtRuntime, String> {
    let mut failures = Vec::new();
    for (path, how) in candidates_for(explicit) {
        match try_load(&path) {
            Ok((env, version)) => {
                return Ok(OrtRuntime {
                    env,
                    path,
                    version,
                    how,
                })
            }
            Err(e) => {
                tracing::debug!(library = %path.display(), how, error = %e, "ONNX Runtime candidate did not load");
                failures.push(format!("{} ({how}): {e}", path.display()));
            }
        }
    }
    Err(format!(
        "no usable ONNX Runtime library; tried: {}",
        failures.join("; ")
    ))
}

fn non_empty_env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

/// The project venv: `$PFD_VENV`, else `~/.cache/pfd-edge/venv` (as scripts/bootstrap.sh creates
/// it). Its onnxruntime wheel is a candidate here; `model compare` runs its python.
pub fn venv_dir() -> Option<PathBuf> {
    non_empty_env("PFD_VENV")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/pfd-edge/venv")))
}

/// The ordered candidate list after an explicit choice (rules 2–4 of the module docs).
pub fn candidates(
    ort_dylib_path: Option<PathBuf>,
    venv: &Option<PathBuf>,
) -> Vec<(PathBuf, &'static str)> {
    let mut out = Vec::new();
    if let Some(p) = ort_dylib_path {
        out.push((p, "ORT_DYLIB_PATH"));
    }
    if let Some(venv) = venv {
        for p in venv_libraries(venv) {
            out.push((p, "venv"));
        }
    }
    out.push((PathBuf::from("libonnxruntime.so"), "system loader"));
    out.push((PathBuf::from("libonnxruntime.so.1"), "system loader"));
    out
}

/// `<venv>/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*`, newest version first.
pub fn venv_libraries(venv: &Path) -> Vec<PathBuf> {
    let pattern = venv
        .join("lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*")
        .to_string_lossy()
        .into_owned();
    let mut found: Vec<PathBuf> = glob::glob(&pattern)
        .map(|paths| {
            paths
                .filter_map(|p| p.ok())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    // `libonnxruntime.so.1.22.1` > `libonnxruntime.so.1.9.0`: compare the numeric suffix.
    found.sort_by_key(|p| std::cmp::Reverse(version_key(p)));
    found
}

fn version_key(p: &Path) -> Vec<u64> {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name.split_once(".so")
        .map(|(_, v)| {
            v.split('.')
                .filter_map(|part| part.parse::<u64>().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn try_load(path: &Path) -> Result<(ort::environment::Environment, String), String> {
    // A path with a directory that does not exist would be resolved by the loader's search path
    // instead; say so plainly rather than loading something else.
    if path.components().count() > 1 && !path.exists() {
        return Err("no such file".into());
    }
    let builder = ort::init_from(path).map_err(|e| e.to_string())?;
    let env = builder
        .with_name("pfd-host")
        .with_telemetry(false)
        .build()
        .map_err(|e| e.to_string())?;
    // The library is loaded: `ort`'s API calls can no longer panic on a missing library.
    let version = version_string(path);
    Ok((env, version))
}

/// ONNX Runtime's version: from its build-info string (`… git-branch=rel-1.22.1, …`), else from
/// the library's file name (`libonnxruntime.so.1.32.0`), else the build-info string itself.
fn version_string(path: &Path) -> String {
    version_of(ort::info(), path)
}

fn version_of(info: &str, path: &Path) -> String {
    info.split(|c: char| c == ',' || c.is_whitespace())
        .find_map(|part| part.strip_prefix("git-branch=rel-"))
        .map(str::to_string)
        .or_else(|| {
            let v = version_key(path);
            (v.len() >= 2).then(|| v.iter().map(u64::to_string).collect::<Vec<_>>().join("."))
        })
        .unwrap_or_else(|| info.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_order_and_venv_search() {
        let tmp = tempfile::tempdir().unwrap();
        let capi = tmp
            .path()
            .join("lib/python3.12/site-packages/onnxruntime/capi");
        std::fs::create_dir_all(&capi).unwrap();
        for f in [
            "libonnxruntime.so.1.9.0",
            "libonnxruntime.so.1.22.1",
            "libonnxruntime_providers_shared.so",
        ] {
            std::fs::write(capi.join(f), b"").unwrap();
        }
        let venv = Some(tmp.path().to_path_buf());
        let c = candidates(Some(PathBuf::from("/x/libort.so")), &venv);
        let names: Vec<String> = c
            .iter()
            .map(|(p, how)| format!("{}:{how}", p.file_name().unwrap().to_string_lossy()))
            .collect();
        assert_eq!(
            names,
            [
                "libort.so:ORT_DYLIB_PATH",
                "libonnxruntime.so.1.22.1:venv",
                "libonnxruntime.so.1.9.0:venv",
                "libonnxruntime.so:system loader",
                "libonnxruntime.so.1:system loader",
            ]
        );
        assert_eq!(candidates(None, &None).len(), 2);
    }

    #[test]
    fn version_from_the_build_info_or_the_file_name() {
        let lib = Path::new("/v/onnxruntime/capi/libonnxruntime.so.1.32.0");
        let plain = Path::new("libonnxruntime.so");
        assert_eq!(
            version_of(
                "ORT Build Info: git-branch=rel-1.22.1, git-commit-id=abc, build type=Release",
                plain
            ),
            "1.22.1"
        );
        assert_eq!(
            version_of("ORT Build Info: git-branch=HEAD, build type=Release", lib),
            "1.32.0"
        );
        assert_eq!(version_of("custom build ", plain), "custom build");
    }

    #[test]
    fn a_missing_explicit_file_is_a_clear_error() {
        let err = try_load(Path::new("/nonexistent/libonnxruntime.so")).unwrap_err();
        assert!(err.contains("no such file"), "{err}");
    }
}
