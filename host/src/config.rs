//! Configuration shared by the commands: the flags more than one command takes ([`NnArgs`]),
//! their value types and parsers, and where settings come from.
//!
//! Precedence, highest first: **flag > environment variable > `.env` file > built-in default**.
//! clap reads the flag and then the environment variable named in `env = …`; the `.env` file is
//! loaded into the process environment *before* parsing, without overriding variables that are
//! already set ([`load_dotenv`]), which gives exactly that order with one mechanism. Twelve-factor
//! style: a container sets `PFD_*` variables, a developer keeps them in `.env`, a one-off run passes
//! flags.
//!
//! Each command's own flags live beside the command (`crate::commands::*`); every limit is
//! explicit there, with its default and the reason for it, so that `--help` is the reference for
//! operators. Sizes accept `K`/`M`/`G` (powers of 1000) and `KiB`/`MiB`/`GiB` (powers of 1024)
//! suffixes; durations are milliseconds.
//!
//! `PFD_*` is pfd-host's namespace: a name that is neither a pfd-host flag's variable nor one of
//! the component's settings ([`pfd_core::config::SETTINGS`]) nor one the project's own tooling sets
//! ([`TOOLING_VARIABLES`]) is a typo. In `.env` — a file that exists only to configure pfd-host — it
//! stops the start with the name and the closest known one; in the process environment, which
//! scripts and shells share, it is a warning ([`unknown_settings`]). `pfd-host config` prints what
//! `serve` would run with, and where each value came from (`crate::commands::config`).

use crate::nn::{DeviceRequest, NnOptions};
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

/// Default listen address: loopback only, so a bare `pfd-host serve` never exposes the service;
/// containers set `PFD_LISTEN=0.0.0.0:3000`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    Human,
    /// One JSON object per line, for log shippers.
    Json,
}

/// wasi-nn / ONNX Runtime settings (shared by `serve`, `nn-check` and `bench`).
#[derive(Debug, Clone, Args)]
pub struct NnArgs {
    /// Device for the wasi-nn graphs: `cuda` uses ONNX Runtime's CUDA execution provider and fails
    /// the start if it is unavailable; `auto` tries CUDA and falls back to CPU with a warning. The
    /// device that actually serves is logged and given to the guest as PFD_NN_DEVICE.
    #[arg(long, env = "PFD_DEVICE", value_enum, default_value_t = DeviceRequest::Auto)]
    pub device: DeviceRequest,

    /// Serve wasi-nn graphs (`on`), or none (`off`: `load-by-name` answers not-found and the
    /// guest runs its models with tract).
    #[arg(long, env = "PFD_NN", value_enum, default_value_t = Switch::On)]
    pub nn: Switch,

    /// Only these model folders become wasi-nn graphs (comma-separated; default: every
    /// `<models>/<name>/model.onnx`).
    #[arg(long, env = "PFD_NN_MODELS", value_delimiter = ',')]
    pub nn_models: Option<Vec<String>>,

    /// ONNX Runtime sessions per graph (concurrent runs of one graph). Default: the number of
    /// cores, so every core can run a request without oversubscription.
    #[arg(long, env = "PFD_NN_SESSIONS", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub nn_sessions: Option<u32>,

    /// Intra-op threads per session. Why 1: with a session per core, requests already use every
    /// core; a one-thread run of this model (~0.1 ms) would lose more to thread synchronisation
    /// than it gains. Raise it for big models at low concurrency.
    #[arg(long, env = "PFD_NN_INTRA_THREADS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub nn_intra_threads: u32,

    #[command(flatten)]
    pub ort: OrtLibArg,
}

/// `--ort-lib` (shared by every command that loads ONNX Runtime).
#[derive(Debug, Clone, Default, Args)]
pub struct OrtLibArg {
    /// The ONNX Runtime shared library (libonnxruntime.so*). Default: ORT_DYLIB_PATH, else the
    /// venv's onnxruntime wheel ($PFD_VENV or ~/.cache/pfd-edge/venv), else the system loader.
    #[arg(long, env = "PFD_ORT_LIB")]
    pub ort_lib: Option<PathBuf>,
}

impl NnArgs {
    /// The options of `crate::nn::setup`.
    pub fn options(&self) -> NnOptions {
        NnOptions {
            enabled: self.nn == Switch::On,
            device: self.device,
            models: self.nn_models.clone(),
            sessions: self
                .nn_sessions
                .map_or_else(crate::nn::available_cores, |n| n as usize),
            intra_threads: self.nn_intra_threads as usize,
            ort_lib: self.ort.ort_lib.clone(),
        }
    }
}

/// `--nn on|off`, `--metrics on|off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

/// `--pagemap-scan auto|on|off`: use a kernel feature when present, always, or never.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Tristate {
    Auto,
    On,
    Off,
}

/// `$XDG_CACHE_HOME/pfd-edge/compiled`, else `$HOME/.cache/pfd-edge/compiled`.
pub fn default_cache_dir(
    xdg_cache_home: Option<PathBuf>,
    home: Option<PathBuf>,
) -> Option<PathBuf> {
    let base = xdg_cache_home
        .filter(|p| p.is_absolute())
        .or_else(|| home.map(|h| h.join(".cache")))?;
    Some(base.join("pfd-edge").join("compiled"))
}

/// What [`load_dotenv`] loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DotEnv {
    /// The file, when one was found.
    pub path: Option<PathBuf>,
    /// The variables it set (those not already in the environment), in file order.
    pub applied: Vec<String>,
}

/// Loads `.env` from the working directory (or `path`) into the process environment without
/// overriding variables already set. A malformed `.env` is an error (a silently ignored typo in a
/// secret is worse than a failed start).
pub fn load_dotenv(path: Option<&Path>) -> Result<DotEnv> {
    let iter = match path {
        Some(p) => dotenvy::from_path_iter(p).map(|i| (p.to_path_buf(), i)),
        None => dotenvy::dotenv_iter().map(|i| {
            let p = std::env::current_dir()
                .map(|d| d.join(".env"))
                .unwrap_or_else(|_| PathBuf::from(".env"));
            (p, i)
        }),
    };
    let (file, items) = match iter {
        Ok(found) => found,
        Err(e) if e.not_found() => return Ok(DotEnv::default()),
        Err(e) => return Err(e).context("cannot load .env"),
    };
    let mut applied = Vec::new();
    for item in items {
        let (key, value) = item.with_context(|| format!("cannot load {}", file.display()))?;
        if std::env::var_os(&key).is_none() {
            std::env::set_var(&key, value);
            applied.push(key);
        }
    }
    Ok(DotEnv {
        path: Some(file),
        applied,
    })
}

/// Variables pfd-host itself reads that are not flags: where ONNX Runtime's wheel lives.
const NON_FLAG_VARIABLES: &[&str] = &["PFD_VENV"];

/// Variables the project's own scripts, tests and CI set for the tools around pfd-host (cache
/// and binary locations, test switches, compose's bind address). pfd-host does not read them, but
/// they are in the environment whenever those scripts start it, so they are not typos.
pub const TOOLING_VARIABLES: &[&str] = &[
    "PFD_BIND",
    "PFD_CACHE",
    "PFD_E2E_KEEP_LOGS",
    "PFD_FUZZ_SECONDS",
    "PFD_HOST_BIN",
    "PFD_IMAGE_TAG",
    "PFD_K8S_VERSIONS",
    "PFD_REQUIRE_BROWSER",
    "PFD_REQUIRE_COMPONENT",
    "PFD_REQUIRE_WASMTIME",
    "PFD_TEST_OUTPUT",
    "PFD_VALIDATE_KEEP",
    "PFD_WASMTIME_BIN",
];

/// Every `PFD_*` name pfd-host knows: the variables of `cli`'s flags (all subcommands), the
/// component's settings, [`NON_FLAG_VARIABLES`] and [`TOOLING_VARIABLES`].
pub fn known_settings(cli: &clap::Command) -> Vec<String> {
    fn walk(cmd: &clap::Command, out: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            if let Some(env) = arg.get_env() {
                out.push(env.to_string_lossy().into_owned());
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut names = Vec::new();
    walk(cli, &mut names);
    names.extend(
        pfd_core::config::SETTINGS
            .iter()
            .map(|s| s.name.to_string()),
    );
    names.extend(
        NON_FLAG_VARIABLES
            .iter()
            .chain(TOOLING_VARIABLES)
            .map(|s| s.to_string()),
    );
    names.sort();
    names.dedup();
    names
}

/// An unknown `PFD_*` variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownSetting {
    pub name: String,
    /// Set by `.env` (an error) rather than the process environment (a warning).
    pub from_dotenv: bool,
    /// The closest known name, when one is close.
    pub suggestion: Option<String>,
}

impl std::fmt::Display for UnknownSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let origin = if self.from_dotenv {
            ".env"
        } else {
            "the environment"
        };
        write!(f, "unknown setting {} (from {origin})", self.name)?;
        match &self.suggestion {
            Some(s) => write!(f, "; did you mean {s}?"),
            None => write!(f, "; `pfd-host config` lists the settings"),
        }
    }
}

/// The `PFD_*` names among `vars` that pfd-host (whose command line is `cli`) does not know (see
/// the module docs).
pub fn unknown_settings<'a>(
    cli: &clap::Command,
    vars: impl IntoIterator<Item = &'a str>,
    dotenv: &DotEnv,
) -> Vec<UnknownSetting> {
    let known = known_settings(cli);
    vars.into_iter()
        .filter(|v| v.starts_with("PFD_") && !known.iter().any(|k| k == v))
        .map(|name| UnknownSetting {
            name: name.to_string(),
            from_dotenv: dotenv.applied.iter().any(|a| a == name),
            suggestion: known
                .iter()
                .map(|k| (edit_distance(k, name), k))
                .filter(|(d, _)| *d <= 3)
                .min()
                .map(|(_, k)| k.clone()),
        })
        .collect()
}

/// Levenshtein distance (for "did you mean").
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Parses a rate in requests per second: 0 (off) or a positive finite number up to 1e6.
pub(crate) fn parse_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=1e6).contains(&v) => Ok(v),
        Ok(v) => Err(format!(
            "{v} is not a rate (0 = off, or requests per second up to 1e6)"
        )),
        Err(e) => Err(format!("{s:?}: {e}")),
    }
}

/// Parses `KEY=VALUE`.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

pub(crate) fn parse_nonzero_ms(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(0) => Err("must be greater than 0".into()),
        Ok(v) => Ok(v),
        Err(e) => Err(format!("{s:?}: {e}")),
    }
}

/// Parses a byte size: `1048576`, `512K`, `256MiB`, `1GiB`, `1.5G`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    parse_size_inner(s).map_err(|e| format!("{e:#}"))
}

/// A size where 0 means "none" (the keep-resident settings).
pub fn parse_size_or_zero(s: &str) -> Result<u64, String> {
    if s.trim()
        .trim_end_matches(|c: char| c.is_ascii_alphabetic())
        .parse::<f64>()
        == Ok(0.0)
    {
        return Ok(0);
    }
    parse_size(s)
}

fn parse_size_inner(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        bail!("{s:?} is not a size (e.g. 1048576, 512KiB, 256MiB, 1GiB)");
    }
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "ki" | "kib" => 1 << 10,
        "mi" | "mib" => 1 << 20,
        "gi" | "gib" => 1 << 30,
        other => bail!("{s:?}: unknown size unit {other:?} (use K, M, G, KiB, MiB or GiB)"),
    };
    let value: f64 = num
        .parse()
        .with_context(|| format!("{s:?} is not a size"))?;
    let bytes = value * mult as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        bail!("{s:?} is out of range");
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_dotenv_is_fine_malformed_is_not() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            load_dotenv(Some(&dir.path().join("nope.env"))).unwrap(),
            DotEnv::default()
        );
        let bad = dir.path().join("bad.env");
        std::fs::write(&bad, "NOT A VALID LINE WITH 'QUOTE\n").unwrap();
        assert!(load_dotenv(Some(&bad)).is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_size("256MiB").unwrap(), 256 << 20);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("1 gib").unwrap(), 1 << 30);
        assert_eq!(parse_size("512K").unwrap(), 512_000);
        assert_eq!(parse_size("1.5G").unwrap(), 1_500_000_000);
        for bad in ["", "MiB", "12XB", "0", "-1", "1e400"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cache_dir_defaults() {
        assert_eq!(
            default_cache_dir(Some("/xdg".into()), Some("/home/u".into())),
            Some(PathBuf::from("/xdg/pfd-edge/compiled"))
        );
        assert_eq!(
            default_cache_dir(Some("relative".into()), Some("/home/u".into())),
            Some(PathBuf::from("/home/u/.cache/pfd-edge/compiled"))
        );
        assert_eq!(default_cache_dir(None, None), None);
    }
}
