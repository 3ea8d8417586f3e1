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
pub mod files;
pub mod onnx_info;
pub mod validate;

use clap::{Args, Subcommand};
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
