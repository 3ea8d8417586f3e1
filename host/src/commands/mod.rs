//! The commands of `pfd-host`, one file each, each owning its flags: `serve` (the server) and
//! the tools around it. [`Cli`] is the command line; [`run`] dispatches a parsed one.
//!
//! Commands depend on the library's modules (`crate::server`, `crate::runtime`, …), never the
//! other way round; `config` (the effective configuration) builds on `serve`'s flags, which it
//! prints.

#[cfg(feature = "tools")]
pub mod bench;
pub mod config;
pub mod healthcheck;
#[cfg(feature = "tools")]
pub mod model;
pub mod nn_check;
pub mod preinit;
pub mod serve;

use crate::config::{DotEnv, LogFormat};
use clap::{ArgMatches, CommandFactory as _, Parser, Subcommand};
use std::process::ExitCode;
use std::time::Duration;

/// Serve the pfd-edge component (a `wasi:http/proxy` component described by a Spin manifest).
#[derive(Debug, Parser)]
#[command(name = "pfd-host", version, about, propagate_version = true)]
pub struct Cli {
    /// Log format: human-readable lines or one JSON object per line. Filter with RUST_LOG
    /// (default `info`).
    #[arg(long, env = "PFD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human, global = true)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands. `serve` is the server; the others are tools around it.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the component over HTTP.
    Serve(serve::ServeArgs),
    /// GET a health URL; exit 0 on HTTP 200, 1 otherwise (for container HEALTHCHECKs).
    Healthcheck(healthcheck::HealthcheckArgs),
    /// Build step: pre-initialise the component's core module with wizer (used by
    /// `cargo xtask build-component`).
    Preinit(preinit::PreinitArgs),
    /// Load every model with ONNX Runtime on the requested device, run its reference vectors,
    /// compare the logits with CPU (and with the committed references) and print latencies.
    /// Exit 0 when all match.
    NnCheck(nn_check::NnCheckArgs),
    /// Benchmark `/predict` and `/predict/batch` through pfd-host — wasi-nn → ONNX Runtime vs
    /// tract in wasm — against in-process ONNX Runtime on the same inputs; writes a Markdown table
    /// and an SVG plot.
    #[cfg(feature = "tools")]
    Bench(bench::BenchArgs),
    /// Model tooling: `model validate` (structure + reference vectors on every backend) and
    /// `model compare` (sizes, agreement, latency of two models).
    #[cfg(feature = "tools")]
    Model(model::ModelArgs),
    /// Print the configuration `serve` would run with (same flags, environment and `.env`):
    /// every setting, its value (secrets redacted) and where it came from; the component's
    /// environment too. Exit 1, naming the setting, when one is invalid.
    Config(config::ConfigArgs),
}

/// Runs the parsed command line (`matches` is what it was parsed from: `config` reads where each
/// value came from) and maps its outcome to the exit status.
pub fn run(cli: Cli, matches: &ArgMatches, dotenv: &DotEnv) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match cli.command {
        Command::Config(args) => {
            let sub = matches
                .subcommand_matches("config")
                .expect("parsed as config");
            exit_code(config::run(&args, &Cli::command(), matches, sub, dotenv))
        }
        Command::Serve(args) => exit_code(runtime.block_on(serve::run(args))),
        Command::Preinit(args) => exit_code(runtime.block_on(preinit::run(&args))),
        Command::NnCheck(args) => match nn_check::run(&args) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                tracing::error!("{e:#}");
                ExitCode::FAILURE
            }
        },
        #[cfg(feature = "tools")]
        Command::Model(args) => model::run(args),
        #[cfg(feature = "tools")]
        Command::Bench(args) => exit_code(bench::run(args, &runtime)),
        Command::Healthcheck(args) => match runtime.block_on(healthcheck::run(&args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("unhealthy: {e:#}");
                ExitCode::FAILURE
            }
        },
    };
    // Don't wait for leftovers (a compile abandoned by a shutdown during startup, a guest instance
    // past the grace period): their work is moot once we exit.
    runtime.shutdown_timeout(Duration::from_millis(100));
    code
}

/// 0 on success; 1 with the error logged.
fn exit_code(outcome: anyhow::Result<()>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::serve::ServeArgs;
    use super::*;
    use crate::config::*;
    use crate::nn::DeviceRequest;
    use crate::ratelimit::RateLimitBy;
    use std::path::PathBuf;
    use std::sync::Mutex;
    use std::time::Duration;

    /// Tests touching the process environment run one at a time.
    static ENV_LOCK: Mutex<()> = Mutex::new(());

    const VARS: &[&str] = &[
        "PFD_LISTEN",
        "PFD_MANIFEST",
        "PFD_MAX_BODY_BYTES",
        "PFD_REQUEST_TIMEOUT_MS",
        "PFD_MAX_CONCURRENCY",
        "PFD_LOG_FORMAT",
        "PFD_CACHE_DIR",
        "PFD_NO_CACHE",
        "PFD_COMPONENT",
        // Not PFD_ORT_LIB: the wasi-nn tests in this binary read it to find ONNX Runtime.
        "PFD_DEVICE",
        "PFD_NN",
        "PFD_NN_MODELS",
        "PFD_NN_SESSIONS",
        "PFD_NN_INTRA_THREADS",
        "PFD_RATE_LIMIT",
        "PFD_RATE_LIMIT_BURST",
        "PFD_RATE_LIMIT_BY",
        "PFD_TRUST_FORWARDED_FOR",
        "PFD_METRICS",
        "PFD_MEMORY_KEEP_RESIDENT",
        "PFD_TABLE_KEEP_RESIDENT",
        "PFD_PAGEMAP_SCAN",
    ];

    fn clear() {
        for v in VARS {
            std::env::remove_var(v);
        }
    }

    fn serve(args: &[&str]) -> (Cli, ServeArgs) {
        let cli = Cli::try_parse_from(["pfd-host"].iter().chain(args)).unwrap();
        let Command::Serve(s) = &cli.command else {
            panic!("not serve")
        };
        let s = s.clone();
        (cli, s)
    }

    #[test]
    fn defaults() {
        let _g = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        clear();
        let (cli, s) = serve(&["serve"]);
        assert_eq!(cli.log_format, LogFormat::Human);
        assert_eq!(s.listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(s.manifest, PathBuf::from("spin.toml"));
        assert_eq!(s.component, None);
        assert_eq!(s.max_body_bytes, 256 << 20);
        assert_eq!(s.request_timeout(), Duration::from_secs(30));
        assert_eq!(s.max_concurrency, serve::default_max_concurrency());
        assert_eq!(s.max_instance_memory_bytes, 1 << 30);
        let reuse = s.slot_reuse();
        assert_eq!(reuse.memory_keep_resident, 4 << 20);
        assert_eq!(reuse.table_keep_resident, 1 << 20);
        assert_eq!(reuse.pagemap_scan, None);
        assert_eq!(parse_size_or_zero("0"), Ok(0));
        assert_eq!(parse_size_or_zero("0MiB"), Ok(0));
        assert_eq!(parse_size_or_zero("2MiB"), Ok(2 << 20));
        assert!(parse_size("0").is_err(), "other sizes stay non-zero");
        assert!(!s.no_cache);
        let nn = s.nn.options();
        assert!(nn.enabled);
        assert_eq!(nn.device, DeviceRequest::Auto);
        assert_eq!(nn.models, None);
        assert_eq!(nn.sessions, crate::nn::available_cores());
        assert_eq!(nn.intra_threads, 1);
    }

    #[test]
    fn nn_settings_from_flags_and_environment() {
        let _g = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        clear();
        std::env::set_var("PFD_DEVICE", "cuda");
        std::env::set_var("PFD_NN", "off");
        std::env::set_var("PFD_NN_MODELS", "a,b");
        std::env::set_var("PFD_NN_SESSIONS", "3");
        let (_, s) = serve(&["serve", "--nn-intra-threads", "2"]);
        let nn = s.nn.options();
        assert!(!nn.enabled);
        assert_eq!(nn.device, DeviceRequest::Cuda);
        assert_eq!(nn.models, Some(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(nn.sessions, 3);
        assert_eq!(nn.intra_threads, 2);
        let (_, s) = serve(&["serve", "--device", "cpu", "--nn", "on"]);
        assert_eq!(s.nn.options().device, DeviceRequest::Cpu);
        assert!(s.nn.options().enabled);
        clear();
        for bad in [
            &["pfd-host", "serve", "--device", "gpu"][..],
            &["pfd-host", "serve", "--nn-sessions", "0"],
            &["pfd-host", "serve", "--nn", "maybe"],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn flag_beats_env_beats_dotenv_beats_default() {
        let _g = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        clear();
        let dir = tempfile::tempdir().unwrap();
        let dotenv = dir.path().join(".env");
        std::fs::write(
            &dotenv,
            "PFD_LISTEN=127.0.0.1:4001\nPFD_MAX_CONCURRENCY=7\nPFD_REQUEST_TIMEOUT_MS=1111\nPFD_LOG_FORMAT=json\n",
        )
        .unwrap();
        // The process environment already has two of them: .env must not override those.
        std::env::set_var("PFD_LISTEN", "127.0.0.1:4002");
        std::env::set_var("PFD_MAX_CONCURRENCY", "9");
        let loaded = load_dotenv(Some(&dotenv)).unwrap();
        assert_eq!(loaded.path, Some(dotenv.clone()));
        assert_eq!(
            loaded.applied,
            ["PFD_REQUEST_TIMEOUT_MS", "PFD_LOG_FORMAT"],
            "only what the environment did not set"
        );

        let (cli, s) = serve(&["serve", "--listen", "127.0.0.1:4003"]);
        assert_eq!(s.listen, "127.0.0.1:4003".parse().unwrap(), "flag wins");
        assert_eq!(s.max_concurrency, 9, "env beats .env");
        assert_eq!(s.request_timeout_ms, 1111, ".env beats default");
        assert_eq!(
            cli.log_format,
            LogFormat::Json,
            ".env applies to global flags"
        );
        assert_eq!(s.max_body_bytes, 256 << 20, "default");

        let (_, s) = serve(&["serve"]);
        assert_eq!(
            s.listen,
            "127.0.0.1:4002".parse().unwrap(),
            "env beats .env"
        );
        clear();
    }

    #[test]
    fn invalid_settings_fail_naming_the_setting() {
        let _g = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        clear();
        std::env::set_var("PFD_MAX_BODY_BYTES", "lots");
        let err = Cli::try_parse_from(["pfd-host", "serve"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("max-body-bytes") && err.contains("lots"),
            "{err}"
        );
        clear();
        let err = Cli::try_parse_from(["pfd-host", "serve", "--request-timeout-ms", "0"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("request-timeout-ms"), "{err}");
        let err = Cli::try_parse_from(["pfd-host", "serve", "--max-concurrency", "0"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("max-concurrency"), "{err}");
        let err = Cli::try_parse_from(["pfd-host", "serve", "--env", "=x"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("KEY=VALUE"), "{err}");
    }

    #[test]
    fn rate_limit_settings() {
        let _g = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        clear();
        let (_, s) = serve(&["serve"]);
        assert_eq!(s.rate_limit_config(), None, "off by default");
        assert_eq!(s.metrics, Switch::On);
        let (_, s) = serve(&["serve", "--rate-limit", "2.5"]);
        let c = s.rate_limit_config().unwrap();
        assert_eq!(
            (c.rate, c.burst.get()),
            (2.5, 3),
            "burst: one second's worth"
        );
        assert_eq!(c.by, RateLimitBy::Client);
        assert!(!c.trust_forwarded_for);
        std::env::set_var("PFD_RATE_LIMIT", "0.1");
        std::env::set_var("PFD_RATE_LIMIT_BY", "api-key");
        std::env::set_var("PFD_TRUST_FORWARDED_FOR", "true");
        let (_, s) = serve(&["serve", "--rate-limit-burst", "20"]);
        let c = s.rate_limit_config().unwrap();
        assert_eq!((c.rate, c.burst.get()), (0.1, 20));
        assert_eq!(c.by, RateLimitBy::ApiKey);
        assert!(c.trust_forwarded_for);
        clear();
        for bad in [
            &["pfd-host", "serve", "--rate-limit=-1"][..],
            &["pfd-host", "serve", "--rate-limit", "fast"],
            &["pfd-host", "serve", "--rate-limit", "inf"],
            &["pfd-host", "serve", "--rate-limit-burst", "0"],
            &["pfd-host", "serve", "--rate-limit-by", "user"],
        ] {
            let err = Cli::try_parse_from(bad).unwrap_err().to_string();
            assert!(err.contains("rate-limit"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn unknown_pfd_names_are_reported_with_a_suggestion() {
        let dotenv = DotEnv {
            path: None,
            applied: vec!["PFD_MAX_BODY_BYTE".into()],
        };
        let found = unknown_settings(
            &Cli::command(),
            [
                "PFD_MAX_BODY_BYTE",
                "PFD_LISTN",
                "PFD_API_KEY",
                "PFD_HEALTHCHECK_URL",
                "PFD_VENV",
                "PFD_COMPLETELY_ELSE",
                "HOME",
            ],
            &dotenv,
        );
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[0].name, "PFD_MAX_BODY_BYTE");
        assert!(found[0].from_dotenv);
        assert_eq!(found[0].suggestion.as_deref(), Some("PFD_MAX_BODY_BYTES"));
        assert_eq!(
            found[1].to_string(),
            "unknown setting PFD_LISTN (from the environment); did you mean PFD_LISTEN?"
        );
        assert_eq!(found[2].suggestion, None);
        assert!(known_settings(&Cli::command()).contains(&"PFD_RATE_LIMIT".to_string()));
    }

    /// Every `PFD_*` name the project's own scripts, tests, CI and deploy files use is one
    /// pfd-host knows, so that running them draws no "unknown setting" warning. The names the
    /// tests misspell on purpose (to see the warning) are the exception.
    #[test]
    fn the_projects_own_variables_are_known() {
        const DELIBERATE_TYPOS: &[&str] = &["PFD_LISTN", "PFD_MAX_BODY_BYTE"];
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let known = known_settings(&Cli::command());
        let mut unknown = std::collections::BTreeSet::new();
        let mut scanned = 0;
        let mut stack: Vec<PathBuf> = ["scripts", "tests", ".ci", "deploy", "xtask/src"]
            .iter()
            .map(|d| root.join(d))
            .collect();
        while let Some(path) = stack.pop() {
            if path.is_dir() {
                for entry in std::fs::read_dir(&path).unwrap() {
                    stack.push(entry.unwrap().path());
                }
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue; // binary fixtures
            };
            scanned += 1;
            let bytes = text.as_bytes();
            let mut i = 0;
            while let Some(at) = text[i..].find("PFD_") {
                let start = i + at;
                let mut end = start + 4;
                while end < bytes.len()
                    && (bytes[end].is_ascii_uppercase()
                        || bytes[end].is_ascii_digit()
                        || bytes[end] == b'_')
                {
                    end += 1;
                }
                let name = &text[start..end];
                let word_start = start == 0
                    || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
                if word_start
                    && name.len() > 4
                    && !name.ends_with('_')
                    && !known.iter().any(|k| k == name)
                    && !DELIBERATE_TYPOS.contains(&name)
                {
                    unknown.insert(format!("{name} ({})", path.display()));
                }
                i = end;
            }
        }
        assert!(
            scanned > 20,
            "scanned only {scanned} files under {}",
            root.display()
        );
        assert!(unknown.is_empty(), "unknown PFD_* names: {unknown:#?}");
    }
}
