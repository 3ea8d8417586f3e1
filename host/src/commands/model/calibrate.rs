//! `pfd-host model calibrate-unknown`: fits the "unknown condition" score of `/diagnose`.
//!
//! Runs calibration records (generator records the model was not trained on) through the
//! model with tract — the guest's own engine — computes each record's features with the very
//! function `/diagnose` uses ([`pfd_signal::unknown::features`]), and fits, per class the model
//! *predicted*, the mean and spread of every feature. The threshold is the `--quantile` of the
//! calibration records' own scores. Then it scores the `--heldout-file` records (in-distribution,
//! another seed) and any `--ood-file` records (conditions the model never saw) and reports the
//! share of each that is flagged.
//!
//! Prints the calibration as JSON (the model card's `"unknown"` object);
//! `models/scripts/calibrate_unknown.py` makes the records and writes it into `model.json`.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Args;
use pfd_core::engine::InferenceEngine;
use pfd_core::postprocess::argmax;
use pfd_signal::unknown::{self, Calibration, Features, FEATURE_NAMES};
use serde_json::json;

use super::compare::read_records_file;
use super::files::{Card, ModelFiles};

#[derive(Debug, Clone, Args)]
pub struct CalibrateArgs {
    /// The model: a folder holding model.onnx (+ model.json), or an .onnx file.
    pub model: PathBuf,
    /// Calibration records: raw little-endian float32 `[n, length]`, as `FILE` (at the card's
    /// rate) or `FILE:RATE` (one model window's duration at RATE Hz each, resampled as
    /// /diagnose resamples). Repeat it to calibrate on recordings of several rates.
    #[arg(long, required = true)]
    pub records_file: Vec<String>,
    /// In-distribution held-out records (another seed), `FILE[:RATE]`, repeatable: the flagged
    /// share is reported.
    #[arg(long)]
    pub heldout_file: Vec<String>,
    /// Out-of-distribution records: the flagged share is reported (labels in FILE.json name
    /// their kinds when it has `{"kinds": [...]}`).
    #[arg(long)]
    pub ood_file: Option<PathBuf>,
    /// The share of calibration records whose score stays under the threshold.
    #[arg(long, default_value_t = 0.99)]
    pub quantile: f64,
}

/// Features and predicted class of each record of `FILE[:RATE]` (resampled to the card's rate).
fn measure(
    engine: &dyn InferenceEngine,
    spec: &str,
    length: usize,
    classes: usize,
    rate: u32,
) -> Result<Vec<(Features, usize)>> {
    let (path, file_rate) = match spec.rsplit_once(':') {
        Some((p, r)) if r.parse::<u32>().is_ok() => (p, r.parse::<u32>()?),
        _ => (spec, rate),
    };
    let file_length = (length as f64 * file_rate as f64 / rate as f64).round() as usize;
    let records = read_records_file(std::path::Path::new(path), file_length)?;
    records
        .data
        .chunks_exact(file_length)
        .map(|raw| {
            let resampled = pfd_signal::resample::resample(raw.into(), file_rate as f64, rate)
                .map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
            let record = &resampled[..length.min(resampled.len())];
            let logits = engine
                .predict_batch(&[record], classes, 1)
                .context("running the model")?;
            let features = unknown::features(&[record], &logits, rate as f64);
            Ok((features, argmax(&logits[0])))
        })
        .collect()
}

fn measure_all(
    engine: &dyn InferenceEngine,
    specs: &[String],
    length: usize,
    classes: usize,
    rate: u32,
) -> Result<Vec<(Features, usize)>> {
    let mut all = Vec::new();
    for spec in specs {
        all.extend(measure(engine, spec, length, classes, rate)?);
    }
    Ok(all)
}

pub fn run(args: &CalibrateArgs) -> Result<bool> {
    let files = ModelFiles::resolve(&args.model, None)?;
    let card = match &files.card {
        Some(path) => Card::load(path)?.card,
        None => pfd_core::card::ModelCard::fallback(&files.name),
    };
    let onnx =
        std::fs::read(&files.onnx).with_context(|| format!("reading {}", files.onnx.display()))?;
    let engine = pfd_tract::TractEngine::load(&onnx, &card).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (length, classes, rate) = (card.signal_length, card.num_classes(), card.sample_rate_hz);
    let measured = measure_all(&engine, &args.records_file, length, classes, rate)?;
    let rows = |class: Option<usize>| -> Vec<[f64; 5]> {
        measured
            .iter()
            .filter(|(_, c)| class.is_none_or(|k| k == *c))
            .map(|(f, _)| f.values)
            .collect()
    };
    let mut calibration = Calibration {
        features: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
        classes: (0..classes)
            .map(|c| unknown::stats(&rows(Some(c))))
            .collect(),
        pooled: unknown::stats(&rows(None)),
        threshold: 0.0,
        provenance: serde_json::Value::Null,
    };
    let mut scores: Vec<f64> = measured
        .iter()
        .map(|(f, c)| calibration.score(f, *c))
        .collect();
    scores.sort_by(f64::total_cmp);
    let at = ((scores.len() as f64 * args.quantile).ceil() as usize).clamp(1, scores.len()) - 1;
    calibration.threshold = scores[at];

    let flagged_share = |specs: &[String]| -> Result<(usize, f64, Vec<bool>)> {
        let m = measure_all(&engine, specs, length, classes, rate)?;
        let flags: Vec<bool> = m
            .iter()
            .map(|(f, c)| calibration.score(f, *c) > calibration.threshold)
            .collect();
        let share = flags.iter().filter(|&&f| f).count() as f64 / flags.len() as f64;
        Ok((flags.len(), share, flags))
    };
    let mut provenance = json!({
        "tool": "pfd-host model calibrate-unknown (tract, the guest's engine)",
        "calibration_records": measured.len(),
        "quantile": args.quantile,
        "calibration_flagged_share": scores.iter().filter(|&&s| s > calibration.threshold).count() as f64 / scores.len() as f64,
    });
    if !args.heldout_file.is_empty() {
        let (n, share, _) = flagged_share(&args.heldout_file)?;
        provenance["heldout_records"] = json!(n);
        provenance["heldout_flagged_share"] = json!(share);
    }
    if let Some(path) = &args.ood_file {
        let (n, share, flags) = flagged_share(&[path.display().to_string()])?;
        provenance["ood_records"] = json!(n);
        provenance["ood_flagged_share_by_score_alone"] = json!(share);
        let side = PathBuf::from(format!("{}.json", path.display()));
        if let Some(kinds) = std::fs::read(&side)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| serde_json::from_value::<Vec<String>>(v.get("kinds")?.clone()).ok())
            .filter(|k| k.len() == n)
        {
            let mut by_kind = serde_json::Map::new();
            for (kind, flag) in kinds.iter().zip(&flags) {
                let entry = by_kind.entry(kind.clone()).or_insert(json!([0, 0]));
                entry[0] = json!(entry[0].as_u64().unwrap_or(0) + u64::from(*flag));
                entry[1] = json!(entry[1].as_u64().unwrap_or(0) + 1);
            }
            provenance["ood_flagged_by_kind"] = by_kind.into();
        }
    }
    calibration.provenance = provenance;
    println!("{}", serde_json::to_string_pretty(&calibration)?);
    Ok(true)
}
