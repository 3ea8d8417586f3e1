//! The component's model store: `PFD_MODEL_DIR/<name>/model.onnx` (+ `model.json`, the card),
//! loaded on first use and kept for the instance's life.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use pfd_core::card::ModelCard;
use pfd_core::config::Config;
use pfd_core::router::{ModelStore, ServedModel};
use pfd_tract::TractEngine;

pub struct GuestModels {
    dir: String,
    /// Leaked on purpose: an instance lives for one request (or is a snapshot), and `&'static`
    /// entries let `get` hand out references without holding the lock.
    loaded: Mutex<BTreeMap<String, &'static Result<ServedModel, String>>>,
}

pub fn store(config: &Config) -> &'static GuestModels {
    static STORE: OnceLock<GuestModels> = OnceLock::new();
    STORE.get_or_init(|| GuestModels {
        dir: config.model_dir.clone(),
        loaded: Mutex::new(BTreeMap::new()),
    })
}

impl ModelStore for GuestModels {
    fn get(&self, name: &str) -> Result<&ServedModel, String> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        let entry = *loaded
            .entry(name.to_string())
            .or_insert_with(|| Box::leak(Box::new(load(Path::new(&self.dir), name))));
        entry.as_ref().map_err(Clone::clone)
    }
}

/// A model name is a folder name: no separators, no `..`.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\'])
}

fn load(dir: &Path, name: &str) -> Result<ServedModel, String> {
    if !valid_name(name) {
        return Err(format!("invalid model name {name:?}"));
    }
    let folder = dir.join(name);
    let card = match std::fs::read(folder.join("model.json")) {
        Ok(json) => ModelCard::parse(&json)
            .map_err(|e| format!("{}: {e}", folder.join("model.json").display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => ModelCard::fallback(name),
        Err(e) => return Err(format!("{}: {e}", folder.join("model.json").display())),
    };
    let onnx_path = folder.join("model.onnx");
    let onnx = std::fs::read(&onnx_path).map_err(|e| format!("{}: {e}", onnx_path.display()))?;
    let engine =
        TractEngine::load(&onnx, &card).map_err(|e| format!("{}: {e}", onnx_path.display()))?;
    Ok(ServedModel::new(card, Box::new(engine), onnx.len() as u64))
}
