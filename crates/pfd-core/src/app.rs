//! What every route works with: the application ([`App`]: configuration and models), where models
//! come from ([`ModelStore`]), a model ready to serve ([`ServedModel`]), readiness, and the one
//! inference call all APIs go through ([`run_model`]). Below the handlers (`lstm_pfd`, `oip`,
//! `diagnose`) and the router, which all use it; it uses none of them.

use std::sync::OnceLock;
use std::time::Instant;

use crate::card::ModelCard;
use crate::config::Config;
use crate::engine::{BackendInfo, EngineError, InferenceEngine};
use crate::predict::Limits;
use crate::telemetry::InferenceRecord;

/// A model ready to serve: its card, the engine running it, and its file's size.
pub struct ServedModel {
    pub card: ModelCard,
    pub engine: Box<dyn InferenceEngine + Send + Sync>,
    pub file_size_bytes: u64,
    warmed: OnceLock<Result<(), EngineError>>,
}

impl ServedModel {
    pub fn new(
        card: ModelCard,
        engine: Box<dyn InferenceEngine + Send + Sync>,
        file_size_bytes: u64,
    ) -> Self {
        ServedModel {
            card,
            engine,
            file_size_bytes,
            warmed: OnceLock::new(),
        }
    }

    /// Runs one inference on a silent record, once; readiness waits for it.
    pub fn warm_up(&self) -> Result<(), EngineError> {
        self.warmed
            .get_or_init(|| {
                let zeros = vec![0.0; self.card.signal_length];
                self.engine
                    .predict_batch(&[&zeros], self.card.num_classes(), 1)
                    .map(drop)
            })
            .clone()
    }

    pub fn backend(&self) -> BackendInfo {
        self.engine.backend()
    }

    pub(crate) fn limits(&self, config: &Config) -> Limits {
        Limits {
            signal_length: self.card.signal_length,
            classes: self.card.num_classes(),
            max_batch_size: config.max_batch_size,
        }
    }
}

/// Where handlers get models from. The component loads lazily (or from a pre-initialised
/// snapshot); tests hand in fixed models.
pub trait ModelStore {
    /// The model called `name`, loading it on first use; `Err` says why it is unavailable.
    fn get(&self, name: &str) -> Result<&ServedModel, String>;

    /// The names of every model this store can be asked for (loaded or not), sorted: what
    /// `POST /v2/repository/index` lists. `Err` says why the store cannot be listed.
    fn names(&self) -> Result<Vec<String>, String>;

    /// Whether the files `name` is served from are still there and are what is served: a model
    /// in memory can outlive its files (removed, truncated, replaced), and readiness must say
    /// so. Stores without files (tests' fixed models) have nothing to check.
    fn check_files(&self, name: &str) -> Result<(), String> {
        let _ = name;
        Ok(())
    }
}

/// Whether `name` can serve: loaded, warmed up, and its files intact. What every readiness route
/// (`/health/ready`, `/v2/health/ready`, `/v2/models/{name}/ready`) asks.
pub fn readiness<'a>(models: &'a dyn ModelStore, name: &str) -> Result<&'a ServedModel, String> {
    let model = models.get(name)?;
    model.warm_up().map_err(|e| e.to_string())?;
    models.check_files(name)?;
    Ok(model)
}

/// The application a request is answered by: the configuration and the models.
pub struct App<'a> {
    pub config: &'a Config,
    pub models: &'a dyn ModelStore,
}

/// One engine call's results.
pub(crate) struct Inference {
    /// One row of logits per signal.
    pub logits: Vec<Vec<f32>>,
    /// Wall time of the call.
    pub ms: f64,
    /// What the host's metrics learn about it ([`telemetry`]).
    pub record: InferenceRecord,
}

/// Runs `signals` through model `name` (every API's inference goes through here).
pub(crate) fn run_model(
    app: &App,
    name: &str,
    m: &ServedModel,
    signals: &[&[f32]],
) -> Result<Inference, EngineError> {
    let start = Instant::now();
    let logits =
        m.engine
            .predict_batch(signals, m.card.num_classes(), app.config.engine_batch_size)?;
    let seconds = start.elapsed().as_secs_f64();
    let record = InferenceRecord::new(name, &m.backend(), seconds, &m.card.class_names, &logits);
    Ok(Inference {
        logits,
        ms: seconds * 1e3,
        record,
    })
}
