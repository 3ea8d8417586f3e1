//! The component's model store: `PFD_MODEL_DIR/<name>/model.onnx` (+ `model.json`, the card).
//!
//! One engine API, two backends, chosen per model when it is first used in an instance:
//! - the `wasi-nn` build asks the host for a graph of the model's name (`load-by-name`) and,
//!   when the host has it, runs there (ONNX Runtime, CPU or CUDA);
//! - otherwise — portable build, host without that graph, or a host error — tract runs the
//!   model inside the guest. Pre-initialisation (see `preinit`) builds the tract plan of the
//!   default model ahead of time, so the fallback costs nothing either.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use pfd_core::app::{ModelStore, ServedModel};
use pfd_core::card::{ModelCard, CARD_FILE, MODEL_FILE};
use pfd_core::config::Config;
use pfd_tract::TractEngine;

use crate::files;

/// Entries are leaked on purpose: an instance lives for one request (or is a snapshot), and
/// `&'static` entries let `get` hand out references without holding a lock.
type Entry = &'static Result<ServedModel, String>;

pub struct GuestModels {
    dir: String,
    /// Models served by tract, built at pre-initialisation or on first use.
    tract: Mutex<BTreeMap<String, Entry>>,
    /// What each model in `tract` was built from, so readiness can tell whether the file is
    /// still the one in memory (the snapshot's copy outlives a file that is later removed,
    /// truncated or replaced).
    built_from: Mutex<BTreeMap<String, Fingerprint>>,
    /// Models served by the host's wasi-nn; `None` records a failed lookup (no retry in this
    /// instance). Always empty in the snapshot: pre-initialisation never calls wasi-nn.
    #[cfg(feature = "wasi-nn")]
    nn: Mutex<BTreeMap<String, Option<&'static ServedModel>>>,
    /// `PFD_NN_DEVICE` of the running instance (set per instance from its configuration).
    #[cfg_attr(not(feature = "wasi-nn"), allow(dead_code))]
    nn_device: Mutex<String>,
}

/// The store for `config.model_dir`. The first one created (at pre-initialisation, when the
/// component was snapshotted) is reused when the directory matches; a runtime configuration
/// naming another directory gets a store of its own.
pub fn store(config: &Config) -> &'static GuestModels {
    static FIRST: OnceLock<GuestModels> = OnceLock::new();
    static OTHER: OnceLock<GuestModels> = OnceLock::new();
    let new = || GuestModels {
        dir: config.model_dir.clone(),
        tract: Mutex::new(BTreeMap::new()),
        built_from: Mutex::new(BTreeMap::new()),
        #[cfg(feature = "wasi-nn")]
        nn: Mutex::new(BTreeMap::new()),
        nn_device: Mutex::new(String::new()),
    };
    let first = FIRST.get_or_init(new);
    let store = if first.dir == config.model_dir {
        first
    } else {
        OTHER.get_or_init(new)
    };
    *lock(&store.nn_device) = config.nn_device.clone();
    store
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl GuestModels {
    /// The model served by tract, loading it on first use.
    pub fn tract(&self, name: &str) -> Result<&ServedModel, String> {
        let mut tract = lock(&self.tract);
        let entry: Entry = tract.entry(name.to_string()).or_insert_with(|| {
            let loaded = load_tract(&self.dir, name).map(|(model, fingerprint)| {
                lock(&self.built_from).insert(name.to_string(), fingerprint);
                model
            });
            Box::leak(Box::new(loaded))
        });
        entry.as_ref().map_err(Clone::clone)
    }

    #[cfg(feature = "wasi-nn")]
    fn wasi_nn(&self, name: &str) -> Option<&'static ServedModel> {
        if let Some(known) = lock(&self.nn).get(name) {
            return *known;
        }
        let found = self
            .load_wasi_nn(name)
            .map_err(|e| eprintln!("wasi-nn: {e}; serving {name:?} with tract in the guest"))
            .ok();
        let entry = found.map(|m| &*Box::leak(Box::new(m)));
        lock(&self.nn).insert(name.to_string(), entry);
        entry
    }

    #[cfg(feature = "wasi-nn")]
    fn load_wasi_nn(&self, name: &str) -> Result<ServedModel, String> {
        let folder = model_folder(&self.dir, name)?;
        // The card and size are known already when the snapshot holds the tract model.
        let known = lock(&self.tract)
            .get(name)
            .and_then(|e| e.as_ref().ok())
            .map(|m| (m.card.clone(), m.file_size_bytes));
        let (card, size) = match known {
            Some(k) => k,
            None => (
                read_card(&folder, name)?,
                files::size(&format!("{folder}/{MODEL_FILE}")).unwrap_or(0),
            ),
        };
        let device = lock(&self.nn_device).clone();
        let engine =
            crate::wasi_nn::WasiNnEngine::load(name, &card.input.name, &card.output.name, &device)
                .map_err(|e| format!("graph {name:?}: {e}"))?;
        Ok(ServedModel::new(card, Box::new(engine), size))
    }
}

impl ModelStore for GuestModels {
    /// The folders of the model directory that hold a `model.onnx`, sorted.
    fn names(&self) -> Result<Vec<String>, String> {
        let mut names: Vec<String> = files::subdirectories(&self.dir)
            .map_err(|e| format!("model directory {}: {e}", self.dir))?
            .into_iter()
            .filter(|name| {
                model_folder(&self.dir, name)
                    .is_ok_and(|folder| files::size(&format!("{folder}/{MODEL_FILE}")).is_ok())
            })
            .collect();
        names.sort();
        Ok(names)
    }

    fn get(&self, name: &str) -> Result<&ServedModel, String> {
        #[cfg(feature = "wasi-nn")]
        if let Some(model) = self.wasi_nn(name) {
            return Ok(model);
        }
        self.tract(name)
    }

    /// The model file must be there and be what is served: the bytes the in-memory tract model
    /// was built from, or — for a model this instance has not built (served by the host's
    /// wasi-nn) — a model tract can load. Costs a read and a hash of the file (or a load), which
    /// is why only readiness asks, never a prediction.
    fn check_files(&self, name: &str) -> Result<(), String> {
        let path = format!("{}/{MODEL_FILE}", model_folder(&self.dir, name)?);
        let onnx = files::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!("model file {path} is missing"),
            _ => format!("model file {path}: {e}"),
        })?;
        let on_disk = Fingerprint::of(&onnx);
        match lock(&self.built_from).get(name) {
            Some(in_memory) if *in_memory == on_disk => Ok(()),
            Some(in_memory) => Err(format!(
                "model file {path} ({} bytes) is not the one this component has in memory ({} bytes); restore it, or rebuild the component to serve the new file",
                on_disk.len, in_memory.len
            )),
            None => {
                let card = read_card(&model_folder(&self.dir, name)?, name)?;
                TractEngine::load(&onnx, &card)
                    .map(drop)
                    .map_err(|e| format!("model file {path} is not a loadable model: {e}"))
            }
        }
    }
}

/// A file's identity, for telling whether a file on disk is the one a model was built from.
/// `DefaultHasher::new()` is keyed identically in every instance of the same build, which is
/// all it needs: the snapshot and the running instance are the same code.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    len: u64,
    hash: u64,
}

impl Fingerprint {
    fn of(bytes: &[u8]) -> Self {
        use std::hash::Hasher;
        let mut h = std::hash::DefaultHasher::new();
        h.write(bytes);
        Fingerprint {
            len: bytes.len() as u64,
            hash: h.finish(),
        }
    }
}

/// `dir/name`, for a name that is a plain folder name (no separators, no `..`).
fn model_folder(dir: &str, name: &str) -> Result<String, String> {
    if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\']) {
        return Err(format!("invalid model name {name:?}"));
    }
    Ok(format!("{}/{name}", dir.trim_end_matches('/')))
}

fn read_card(folder: &str, name: &str) -> Result<ModelCard, String> {
    let path = format!("{folder}/{CARD_FILE}");
    match files::read(&path) {
        Ok(json) => ModelCard::parse(&json).map_err(|e| format!("{path}: {e}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ModelCard::fallback(name)),
        Err(e) => Err(format!("{path}: {e}")),
    }
}

fn load_tract(dir: &str, name: &str) -> Result<(ServedModel, Fingerprint), String> {
    let folder = model_folder(dir, name)?;
    let card = read_card(&folder, name)?;
    let onnx_path = format!("{folder}/{MODEL_FILE}");
    let onnx = files::read(&onnx_path).map_err(|e| format!("{onnx_path}: {e}"))?;
    let engine = TractEngine::load(&onnx, &card).map_err(|e| format!("{onnx_path}: {e}"))?;
    let model = ServedModel::new(card, Box::new(engine), onnx.len() as u64);
    Ok((model, Fingerprint::of(&onnx)))
}
