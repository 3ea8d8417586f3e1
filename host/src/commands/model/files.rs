//! A model as the model tools are given it (a folder or a bare `.onnx`), and its card.

use anyhow::{bail, Context as _, Result};
use pfd_core::card::{ModelCard, CARD_FILE, MODEL_FILE, REFERENCE_FILE};
use std::path::{Path, PathBuf};

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
            let f = path.join(MODEL_FILE);
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
        let is_folder_model = onnx.file_name().is_some_and(|n| n == MODEL_FILE);
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
            None if is_folder_model => Some(dir.join(CARD_FILE)).filter(|p| p.is_file()),
            None => None,
        };
        let reference = is_folder_model
            .then(|| dir.join(REFERENCE_FILE))
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
