//! `pfd-host model validate|compare`: the checks a model owner runs before dropping a new
//! `.onnx` into `models/`.
//!
//! * [`validate`]: parses the ONNX protobuf (tract-onnx's prost types, [`onnx_info`]) and checks
//!   what pfd-edge relies on — opset, the `input`/`logits` tensors, their dtypes and dynamic axes,
//!   the class count against the card, a graph whose every node input is defined — then runs the
//!   reference vectors on every backend available ([`backends`]: tract natively, the engine the
//!   wasm guest embeds; ONNX Runtime through the host's wasi-nn loader) within the reference's
//!   rtol/atol. A backend that lacks one of the model's ops is reported as `unsupported: <op>`, not
//!   as a failure of the model, unless no backend runs it.
//! * [`compare`]: two models side by side — file sizes, argmax agreement and max |Δlogit| on the
//!   reference vectors and on fresh generator records, batch-1 latency percentiles and speedup per
//!   backend — as a Markdown table on stdout, plus `compare.md`, `compare.json` and an SVG plot.
//!
//! Exit status: 0 when the check passes, 1 when it fails (the report says why), 2 on a usage or
//! I/O error (a model path that does not exist, an unwritable `--out`).

pub mod backends;
pub mod calibrate;
pub mod compare;
pub mod onnx_info;
pub mod reference;
pub mod validate;

use anyhow::{bail, Context as _, Result};
use clap::{Args, Subcommand};
use pfd_core::card::ModelCard;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `pfd-host model …`.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    #[command(subcommand)]
    pub command: ModelCommand,
}

/// The model tools.
#[derive(Debug, Clone, Subcommand)]
pub enum ModelCommand {
    /// Check a model folder (or a bare .onnx): structure (opset, `input`/`logits` names, dtypes,
    /// dynamic batch/length axes, class count vs the card, graph integrity, op list), then the
    /// reference vectors on every available backend (tract, ONNX Runtime) within rtol/atol.
    /// Exit 0 when it passes, 1 when it does not.
    Validate(validate::ValidateArgs),
    /// Compare two models: sizes, argmax agreement and max |Δlogit| on the reference vectors and
    /// on fresh generator records, batch-1 latency p50/p95/p99 and speedup per backend. Prints a
    /// Markdown table; writes compare.md, compare.json and compare.svg to --out.
    Compare(compare::CompareArgs),
    /// Fit the unknown-condition score of /diagnose on calibration records (per predicted class:
    /// the features' mean and spread; the threshold at --quantile), report the flagged share of
    /// held-out and out-of-distribution records, and print the card's "unknown" object.
    CalibrateUnknown(calibrate::CalibrateArgs),
}

/// Runs a `model` subcommand and maps its outcome to the exit status.
pub fn run(args: ModelArgs) -> ExitCode {
    let outcome = match &args.command {
        ModelCommand::Validate(a) => validate::run(a),
        ModelCommand::Compare(a) => compare::run(a),
        ModelCommand::CalibrateUnknown(a) => calibrate::run(a),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// A model as given on the command line: a folder holding `model.onnx`, or an `.onnx` file.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    /// The `.onnx` file.
    pub onnx: PathBuf,
    /// Its folder.
    pub dir: PathBuf,
    /// The folder name for `<dir>/model.onnx`, else the file stem.
    pub name: String,
    /// The card: `--card`, else `<dir>/model.json` when the model is `<dir>/model.onnx` and the
    /// card exists.
    pub card: Option<PathBuf>,
    /// The default reference vectors: `<dir>/reference.json` for `<dir>/model.onnx`, if present.
    pub reference: Option<PathBuf>,
}

impl ModelFiles {
    /// Resolves `path` (a folder or an `.onnx` file); fails if there is no model file there.
    pub fn resolve(path: &Path, card: Option<&Path>) -> Result<Self> {
        let onnx = if path.is_dir() {
            let f = path.join("model.onnx");
            if !f.is_file() {
                bail!("{} is a folder without a model.onnx", path.display());
            }
            f
        } else if path.is_file() {
            path.to_path_buf()
        } else {
            bail!("{}: no such file or folder", path.display());
        };
        let dir = onnx
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        let is_folder_model = onnx.file_name().is_some_and(|n| n == "model.onnx");
        let name = if is_folder_model {
            std::fs::canonicalize(&dir)
                .ok()
                .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "model".into())
        } else {
            onnx.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "model".into())
        };
        let card = match card {
            Some(c) => Some(c.to_path_buf()),
            None if is_folder_model => Some(dir.join("model.json")).filter(|p| p.is_file()),
            None => None,
        };
        let reference = is_folder_model
            .then(|| dir.join("reference.json"))
            .filter(|p| p.is_file());
        Ok(ModelFiles {
            onnx,
            dir,
            name,
            card,
            reference,
        })
    }
}

/// A parsed card and its raw JSON (for the keys `ModelCard` does not carry: sha256, size_bytes…).
#[derive(Debug, Clone)]
pub struct Card {
    pub path: PathBuf,
    pub card: ModelCard,
    pub json: serde_json::Value,
}

impl Card {
    pub fn load(path: &Path) -> Result<Card> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let card = ModelCard::parse(&bytes).with_context(|| format!("{}", path.display()))?;
        let json = serde_json::from_slice(&bytes).with_context(|| format!("{}", path.display()))?;
        Ok(Card {
            path: path.to_path_buf(),
            card,
            json,
        })
    }
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `got` is within `atol + rtol·|want|` of `want`, element-wise (numpy's `allclose`, the
/// reference being `want`); returns the number of elements outside, and the largest |Δ| with its
/// index. Lengths must match (a length mismatch counts every element as outside).
pub fn compare_close(got: &[f32], want: &[f32], rtol: f64, atol: f64) -> (usize, f64, usize) {
    if got.len() != want.len() {
        return (want.len().max(got.len()), f64::INFINITY, 0);
    }
    let mut bad = 0;
    let mut max = 0f64;
    let mut at = 0;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let d = (f64::from(g) - f64::from(w)).abs();
        if d.is_nan() || d > atol + rtol * f64::from(w).abs() {
            bad += 1;
        }
        if d > max || d.is_nan() {
            max = if d.is_nan() { f64::INFINITY } else { d };
            at = i;
        }
    }
    (bad, max, at)
}

/// Index of the largest value (the first on ties; NaN never wins): the shared core's.
pub use pfd_core::postprocess::argmax;

/// Nearest-rank percentile of an ascending slice.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A float in a short human form: `0`, `3.1e-6`, `0.0123`, `1.234`.
pub fn short(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if !v.is_finite() {
        format!("{v}")
    } else if v.abs() < 1e-3 {
        format!("{v:.1e}")
    } else if v.abs() < 1.0 {
        format!("{v:.4}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closeness_is_numpy_allclose() {
        let (bad, max, at) = compare_close(&[1.0, 2.0005, 3.0], &[1.0, 2.0, 3.1], 1e-3, 1e-5);
        assert_eq!(bad, 1);
        assert!((max - 0.1).abs() < 1e-6);
        assert_eq!(at, 2);
        assert_eq!(compare_close(&[1.0], &[1.0, 2.0], 0.0, 0.0).0, 2);
        assert_eq!(compare_close(&[f32::NAN], &[1.0], 1.0, 1.0).0, 1);
    }

    #[test]
    fn argmax_and_percentiles() {
        assert_eq!(argmax(&[0.0, 3.0, 3.0, 1.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 1.0]), 1);
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v[..1], 99.0), 1.0);
        assert!(percentile(&[], 50.0).is_nan());
    }
}
