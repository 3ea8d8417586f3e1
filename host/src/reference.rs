//! Reference vectors: `reference.json` (logits, tolerances) and its raw inputs file
//! (little-endian float32, row-major `[count, length]`), as written by models/scripts/train.py
//! and quantize.py. The one reader of them, for every tool and test: [`Reference::load`] reads a
//! file, [`Reference::of_model`] a model folder's (the file its card names).

use anyhow::{bail, Context as _, Result};
use pfd_core::card::{ModelCard, CARD_FILE, REFERENCE_FILE};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
struct RawReference {
    inputs_file: String,
    count: usize,
    length: usize,
    logits: Vec<Vec<f32>>,
    #[serde(default)]
    predicted: Option<Vec<usize>>,
    #[serde(default)]
    labels: Option<Vec<usize>>,
    #[serde(default = "default_rtol")]
    rtol: f64,
    #[serde(default = "default_atol")]
    atol: f64,
}

fn default_rtol() -> f64 {
    1e-3
}
fn default_atol() -> f64 {
    1e-5
}

/// Loaded reference vectors.
#[derive(Debug, Clone)]
pub struct Reference {
    pub path: PathBuf,
    pub count: usize,
    pub length: usize,
    /// `count × length` samples.
    pub inputs: Vec<f32>,
    pub logits: Vec<Vec<f32>>,
    /// The expected class of each vector (from the file, else the argmax of its logits).
    pub predicted: Vec<usize>,
    /// True classes, when the file has them.
    pub labels: Option<Vec<usize>>,
    pub rtol: f64,
    pub atol: f64,
}

impl Reference {
    /// Reads `path` and its inputs file (relative to `path`'s folder).
    pub fn load(path: &Path) -> Result<Reference> {
        let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let raw: RawReference = serde_json::from_slice(&text).with_context(|| {
            format!(
                "{}: not a reference file (needs inputs_file, count, length, logits)",
                path.display()
            )
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let inputs_path = dir.join(&raw.inputs_file);
        let bytes = std::fs::read(&inputs_path)
            .with_context(|| format!("reading {}", inputs_path.display()))?;
        if raw.count == 0 || raw.length == 0 {
            bail!("{}: count and length must be positive", path.display());
        }
        let want = raw.count * raw.length * 4;
        if bytes.len() != want {
            bail!(
                "{}: {} vectors of {} float32 samples need {want} bytes, {} has {}",
                path.display(),
                raw.count,
                raw.length,
                inputs_path.display(),
                bytes.len()
            );
        }
        if raw.logits.len() != raw.count {
            bail!(
                "{}: {} rows of logits for {} vectors",
                path.display(),
                raw.logits.len(),
                raw.count
            );
        }
        let width = raw.logits[0].len();
        if width == 0 || raw.logits.iter().any(|r| r.len() != width) {
            bail!(
                "{}: logits rows must all have the same, non-zero length",
                path.display()
            );
        }
        let predicted = match raw.predicted {
            Some(p) if p.len() == raw.count => p,
            Some(p) => bail!(
                "{}: {} predicted classes for {} vectors",
                path.display(),
                p.len(),
                raw.count
            ),
            None => raw.logits.iter().map(|r| crate::eval::argmax(r)).collect(),
        };
        let labels = raw.labels.filter(|l| l.len() == raw.count);
        let inputs = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if !(raw.rtol >= 0.0 && raw.atol >= 0.0) {
            bail!("{}: rtol and atol must be >= 0", path.display());
        }
        Ok(Reference {
            path: path.to_path_buf(),
            count: raw.count,
            length: raw.length,
            inputs,
            logits: raw.logits,
            predicted,
            labels,
            rtol: raw.rtol,
            atol: raw.atol,
        })
    }

    /// The reference vectors of the model folder `model_dir`: the file its card's `reference.file`
    /// names, else [`REFERENCE_FILE`].
    pub fn of_model(model_dir: &Path) -> Result<Reference> {
        let card_path = model_dir.join(CARD_FILE);
        let file = match std::fs::read(&card_path) {
            Ok(bytes) => ModelCard::parse(&bytes)
                .with_context(|| format!("{}", card_path.display()))?
                .reference
                .map(|r| r.file),
            Err(_) => None,
        };
        Reference::load(&model_dir.join(file.as_deref().unwrap_or(REFERENCE_FILE)))
    }

    /// One slice per vector.
    pub fn records(&self) -> Vec<&[f32]> {
        self.inputs.chunks(self.length).collect()
    }

    /// Vector `i`.
    pub fn input(&self, i: usize) -> &[f32] {
        &self.inputs[i * self.length..(i + 1) * self.length]
    }

    /// The number of classes (logits per vector).
    pub fn classes(&self) -> usize {
        self.logits[0].len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_bundled_references_through_the_card() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/bearing-lstm");
        let r = Reference::of_model(&dir).unwrap();
        assert_eq!(r.path, dir.join(REFERENCE_FILE));
        assert_eq!(r.records().len(), r.logits.len());
        assert_eq!(r.records()[0].len(), r.length);
        assert_eq!(r.input(1), r.records()[1]);
        assert_eq!(r.logits[0].len(), 11);
    }

    #[test]
    fn the_card_names_the_reference_file() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/bearing-lstm");
        let dir = tempfile::tempdir().unwrap();
        let card = std::fs::read_to_string(src.join(CARD_FILE)).unwrap();
        let card = card.replace(
            "\"file\": \"reference.json\"",
            "\"file\": \"elsewhere.json\"",
        );
        assert!(card.contains("elsewhere.json"));
        std::fs::write(dir.path().join(CARD_FILE), card).unwrap();
        let e = Reference::of_model(dir.path()).unwrap_err();
        assert!(format!("{e:#}").contains("elsewhere.json"), "{e:#}");
        std::fs::copy(src.join(REFERENCE_FILE), dir.path().join("elsewhere.json")).unwrap();
        std::fs::copy(
            src.join("reference_inputs.f32"),
            dir.path().join("reference_inputs.f32"),
        )
        .unwrap();
        assert_eq!(
            Reference::of_model(dir.path()).unwrap().count,
            Reference::of_model(&src).unwrap().count
        );
    }
}
