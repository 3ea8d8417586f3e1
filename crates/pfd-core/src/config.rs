//! The component's settings, read from environment variables (the one configuration channel
//! every host offers: `spin.toml`'s `environment`, pfd-host, SpinKube's `SpinApp`).
//!
//! Every setting is a row of [`SETTINGS`]: its name, the LSTM_PFD name it also answers to (so an
//! old `.env` keeps working), its default and its meaning. Any other `PFD_*` variable is an
//! error naming it, so a typo fails loudly instead of silently meaning "default".

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where model folders (`<name>/model.onnx`, `model.json`) are mounted.
    pub model_dir: String,
    /// The model LSTM_PFD routes use.
    pub default_model: String,
    /// When not empty, protected routes need one of these in `X-API-Key` (or
    /// `Authorization: Bearer`); see [`crate::auth`].
    pub api_keys: Vec<String>,
    /// Most signals one `/predict/batch` may carry (LSTM_PFD's MAX_BATCH_SIZE).
    pub max_batch_size: usize,
    /// The longest recording `/diagnose` accepts, seconds.
    pub max_record_seconds: usize,
    /// Signals per engine call: a batch is run in chunks of this size (LSTM_PFD's BATCH_SIZE).
    pub engine_batch_size: usize,
    /// Makes `/health` answer 503 while not ready (for probes that can only use `/health`).
    pub strict_health: bool,
    /// The device behind the host's wasi-nn, as pfd-host reports it (empty elsewhere).
    pub nn_device: String,
}

/// One configuration setting.
pub struct Setting {
    pub name: &'static str,
    /// The LSTM_PFD service's name for it, read when `name` is unset.
    pub legacy: Option<&'static str>,
    pub default: &'static str,
    pub help: &'static str,
    pub secret: bool,
}

pub const SETTINGS: &[Setting] = &[
    Setting {
        name: "PFD_MODEL_DIR",
        legacy: None,
        default: "/models",
        help: "directory holding one folder per model",
        secret: false,
    },
    Setting {
        name: "PFD_MODEL",
        legacy: None,
        default: "bearing-lstm",
        help: "model served by the LSTM_PFD routes",
        secret: false,
    },
    Setting {
        name: "PFD_API_KEY",
        legacy: Some("API_KEY"),
        default: "",
        help: "API key, or several separated by commas (rotation, per-key rate limits); empty disables authentication",
        secret: true,
    },
    Setting {
        name: "PFD_REQUIRE_AUTH",
        legacy: Some("REQUIRE_AUTHENTICATION"),
        default: "false",
        help: "require the API key (needs PFD_API_KEY)",
        secret: false,
    },
    Setting {
        name: "PFD_MAX_BATCH_SIZE",
        legacy: Some("MAX_BATCH_SIZE"),
        default: "128",
        help: "most signals per /predict/batch",
        secret: false,
    },
    // Why 8 and not LSTM_PFD's 32: on CPU this model's run time grows linearly with the batch,
    // so a larger chunk buys nothing, while the engine's buffers grow with it. One 128-record
    // /predict/batch on pfd-host peaked at 375-401 MiB RSS with chunks of 32 and 297 MiB with
    // chunks of 8 (2.15x the 138 MB body), in the same time (0.67 against 0.63 s). A GPU node
    // may want 32 again: there a batch costs about as much as one record.
    Setting {
        name: "PFD_BATCH_SIZE",
        legacy: Some("BATCH_SIZE"),
        default: "8",
        help: "signals per engine call",
        secret: false,
    },
    Setting {
        name: "PFD_MAX_RECORD_SECONDS",
        legacy: None,
        default: "600",
        help: "longest recording /diagnose accepts, in seconds (longer: 413)",
        secret: false,
    },
    Setting {
        name: "PFD_NN_DEVICE",
        legacy: None,
        default: "",
        help: "set by pfd-host: the device behind wasi-nn (cpu, cuda)",
        secret: false,
    },
    Setting {
        name: "PFD_STRICT_HEALTH",
        legacy: None,
        default: "false",
        help: "/health answers 503 until ready",
        secret: false,
    },
];

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid setting {name}: {reason}")]
pub struct ConfigError {
    pub name: String,
    pub reason: String,
}

fn err(name: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        name: name.to_string(),
        reason: reason.into(),
    }
}

impl Config {
    /// Reads the settings from `vars` (the environment as name → value).
    pub fn from_vars(vars: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
        for name in vars.keys().filter(|k| k.starts_with("PFD_")) {
            if !SETTINGS.iter().any(|s| s.name == name) {
                return Err(err(name, "unknown setting (known: see `pfd-host config`)"));
            }
        }
        let get = |name: &str| -> String {
            let s = SETTINGS
                .iter()
                .find(|s| s.name == name)
                .expect("listed setting");
            vars.get(s.name)
                .or_else(|| s.legacy.and_then(|l| vars.get(l)))
                .cloned()
                .unwrap_or_else(|| s.default.to_string())
        };
        let positive = |name: &str| -> Result<usize, ConfigError> {
            let v = get(name);
            match v.trim().parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(err(name, format!("expected a positive integer, got {v:?}"))),
            }
        };
        let flag = |name: &str| -> Result<bool, ConfigError> {
            let v = get(name);
            match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" | "" => Ok(false),
                _ => Err(err(name, format!("expected true or false, got {v:?}"))),
            }
        };
        let api_keys: Vec<String> = get("PFD_API_KEY")
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_string)
            .collect();
        let require = flag("PFD_REQUIRE_AUTH")?;
        if require && api_keys.is_empty() {
            return Err(err("PFD_REQUIRE_AUTH", "is true but PFD_API_KEY is empty"));
        }
        let model = get("PFD_MODEL");
        if model.is_empty() || model.contains(['/', '\\']) || model.starts_with('.') {
            return Err(err(
                "PFD_MODEL",
                format!("not a model folder name: {model:?}"),
            ));
        }
        Ok(Config {
            model_dir: get("PFD_MODEL_DIR"),
            default_model: model,
            // A key that is set is enforced even without PFD_REQUIRE_AUTH: serving a configured
            // key unchecked would be the surprising choice.
            api_keys,
            max_batch_size: positive("PFD_MAX_BATCH_SIZE")?,
            engine_batch_size: positive("PFD_BATCH_SIZE")?,
            strict_health: flag("PFD_STRICT_HEALTH")?,
            max_record_seconds: positive("PFD_MAX_RECORD_SECONDS")?,
            nn_device: get("PFD_NN_DEVICE"),
        })
    }

    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_vars(&std::env::vars().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults() {
        let c = Config::from_vars(&vars(&[])).unwrap();
        assert_eq!(c.model_dir, "/models");
        assert_eq!(c.default_model, "bearing-lstm");
        assert!(c.api_keys.is_empty());
        assert_eq!((c.max_batch_size, c.engine_batch_size), (128, 8));
    }

    #[test]
    fn legacy_names_and_precedence() {
        let c = Config::from_vars(&vars(&[("MAX_BATCH_SIZE", "8"), ("API_KEY", "k")])).unwrap();
        assert_eq!(c.max_batch_size, 8);
        assert_eq!(c.api_keys, ["k"]);
        let c = Config::from_vars(&vars(&[("PFD_API_KEY", " old , new ,")])).unwrap();
        assert_eq!(c.api_keys, ["old", "new"]);
        let c = Config::from_vars(&vars(&[
            ("MAX_BATCH_SIZE", "8"),
            ("PFD_MAX_BATCH_SIZE", "9"),
        ]))
        .unwrap();
        assert_eq!(c.max_batch_size, 9);
    }

    #[test]
    fn errors_name_the_setting() {
        for (k, v) in [
            ("PFD_MAX_BATCH_SIZE", "0"),
            ("PFD_BATCH_SIZE", "x"),
            ("PFD_STRICT_HEALTH", "maybe"),
            ("PFD_MODEL", "../x"),
            ("PFD_TYPO", "1"),
        ] {
            let e = Config::from_vars(&vars(&[(k, v)])).unwrap_err();
            assert_eq!(e.name, k, "{e}");
        }
        let e = Config::from_vars(&vars(&[("PFD_REQUIRE_AUTH", "true")])).unwrap_err();
        assert_eq!(e.name, "PFD_REQUIRE_AUTH");
    }
}
