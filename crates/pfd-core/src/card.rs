//! Model cards: `models/<name>/model.json`, the facts about a model that the API reports
//! (class names, input spec, parameter count…). A bare `.onnx` dropped into `models/` without a
//! card is still servable: [`ModelCard::fallback`] describes it with the LSTM_PFD defaults.

use serde::Deserialize;

/// LSTM_PFD's classes, index → display name (the API returns display names).
pub const DEFAULT_CLASS_NAMES: [&str; 11] = [
    "Healthy",
    "Misalignment",
    "Imbalance",
    "Bearing Clearance",
    "Lubrication Issue",
    "Cavitation",
    "Wear",
    "Oil Whirl",
    "Misalignment + Imbalance",
    "Wear + Lubrication",
    "Cavitation + Clearance",
];

/// 5 s at 20480 Hz: the record length every LSTM_PFD client sends.
pub const DEFAULT_SIGNAL_LENGTH: usize = 102_400;
pub const DEFAULT_SAMPLE_RATE_HZ: u32 = 20_480;

/// A model folder's ONNX graph.
pub const MODEL_FILE: &str = "model.onnx";
/// A model folder's card.
pub const CARD_FILE: &str = "model.json";
/// A model folder's reference vectors (logits and tolerances; the inputs file it names).
pub const REFERENCE_FILE: &str = "reference.json";

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TensorSpec {
    pub name: String,
    #[serde(default = "default_dtype")]
    pub dtype: String,
}

fn default_dtype() -> String {
    "float32".into()
}

/// The subset of `model.json` the service uses; unknown keys are kept out of the way.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ModelCard {
    pub name: String,
    #[serde(default = "default_version")]
    pub version: String,
    #[serde(default = "default_model_type")]
    pub model_type: String,
    pub class_names: Vec<String>,
    #[serde(default = "default_signal_length")]
    pub signal_length: usize,
    #[serde(default = "default_sample_rate")]
    pub sample_rate_hz: u32,
    #[serde(default = "default_input")]
    pub input: TensorSpec,
    #[serde(default = "default_output")]
    pub output: TensorSpec,
    #[serde(default)]
    pub num_parameters: Option<u64>,
    #[serde(default)]
    pub reference: Option<ReferenceSpec>,
    /// The "unknown condition" calibration (`pfd-host model calibrate-unknown`); without it
    /// `/diagnose` applies only its input checks.
    #[serde(default)]
    pub unknown: Option<pfd_signal::unknown::Calibration>,
    /// The narrowest band, 0 to this many Hz, the model was trained and validated on (records
    /// low-passed like a lower-rate recorder's); `/diagnose` warns about recordings that hold
    /// less. Absent: [`sample_rate_hz`](Self::sample_rate_hz)` / 2`, a model trained on
    /// full-band records only.
    #[serde(default)]
    pub min_bandwidth_hz: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ReferenceSpec {
    pub file: String,
    #[serde(default = "default_rtol")]
    pub rtol: f32,
    #[serde(default = "default_atol")]
    pub atol: f32,
}

fn default_version() -> String {
    "1".into()
}
fn default_model_type() -> String {
    "onnx".into()
}
fn default_signal_length() -> usize {
    DEFAULT_SIGNAL_LENGTH
}
fn default_sample_rate() -> u32 {
    DEFAULT_SAMPLE_RATE_HZ
}
fn default_input() -> TensorSpec {
    TensorSpec {
        name: "input".into(),
        dtype: default_dtype(),
    }
}
fn default_output() -> TensorSpec {
    TensorSpec {
        name: "logits".into(),
        dtype: default_dtype(),
    }
}
fn default_rtol() -> f32 {
    1e-3
}
fn default_atol() -> f32 {
    1e-5
}

#[derive(Debug, thiserror::Error)]
pub enum CardError {
    #[error("model card is not valid JSON for a model card: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("model card lists no class names")]
    NoClasses,
    #[error("model card's signal_length is 0")]
    ZeroLength,
    #[error("model card's unknown-condition calibration does not fit: {0}")]
    Unknown(String),
}

impl ModelCard {
    /// Parses and checks a `model.json`.
    pub fn parse(json: &[u8]) -> Result<Self, CardError> {
        let card: ModelCard = serde_json::from_slice(json)?;
        if card.class_names.is_empty() {
            return Err(CardError::NoClasses);
        }
        if card.signal_length == 0 {
            return Err(CardError::ZeroLength);
        }
        if let Some(unknown) = &card.unknown {
            unknown
                .check(card.class_names.len())
                .map_err(CardError::Unknown)?;
        }
        Ok(card)
    }

    /// The card of a model that came without one: LSTM_PFD's classes and record length.
    pub fn fallback(name: &str) -> Self {
        ModelCard {
            name: name.to_string(),
            version: default_version(),
            model_type: default_model_type(),
            class_names: DEFAULT_CLASS_NAMES.iter().map(|s| s.to_string()).collect(),
            signal_length: DEFAULT_SIGNAL_LENGTH,
            sample_rate_hz: DEFAULT_SAMPLE_RATE_HZ,
            input: default_input(),
            output: default_output(),
            num_parameters: None,
            reference: None,
            unknown: None,
            min_bandwidth_hz: None,
        }
    }

    /// The narrowest recording band the model is known to handle (see
    /// [`min_bandwidth_hz`](Self::min_bandwidth_hz)).
    pub fn min_bandwidth_hz(&self) -> f64 {
        self.min_bandwidth_hz
            .unwrap_or(f64::from(self.sample_rate_hz) / 2.0)
    }

    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_minimal_card_with_defaults() {
        let c = ModelCard::parse(br#"{"name":"m","class_names":["a","b"],"extra":1}"#).unwrap();
        assert_eq!(c.num_classes(), 2);
        assert_eq!(c.signal_length, DEFAULT_SIGNAL_LENGTH);
        assert_eq!(c.input.name, "input");
        assert_eq!(c.output.name, "logits");
        assert_eq!(c.min_bandwidth_hz(), 10_240.0);
    }

    #[test]
    fn a_card_can_state_the_narrowest_band_it_was_validated_on() {
        let c = ModelCard::parse(br#"{"name":"m","class_names":["a"],"min_bandwidth_hz":6400}"#)
            .unwrap();
        assert_eq!(c.min_bandwidth_hz(), 6_400.0);
    }

    #[test]
    fn rejects_empty_classes_and_bad_json() {
        assert!(matches!(
            ModelCard::parse(br#"{"name":"m","class_names":[]}"#),
            Err(CardError::NoClasses)
        ));
        assert!(matches!(ModelCard::parse(b"{"), Err(CardError::Parse(_))));
    }

    #[test]
    fn fallback_has_lstm_pfd_classes() {
        let c = ModelCard::fallback("x");
        assert_eq!(c.num_classes(), 11);
        assert_eq!(c.class_names[10], "Cavitation + Clearance");
    }
}
