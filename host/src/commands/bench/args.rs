//! `pfd-host bench`'s flags.

use crate::config::NnArgs;
use clap::Args;
use std::path::PathBuf;

/// `pfd-host bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// `/predict` requests per measured path (each phase: sequential latency, then concurrent
    /// throughput).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub requests: u32,

    /// `/predict/batch` requests per measured path (each carries `--batch` signals, ~35 MB of
    /// JSON at 32).
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch_requests: u32,

    /// Signals per `/predict/batch` request.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=128))]
    pub batch: u32,

    /// Clients in flight in the throughput phase (default: the number of cores).
    #[arg(long)]
    pub concurrency: Option<u32>,

    /// Unmeasured requests before each measurement.
    #[arg(long, default_value_t = 20)]
    pub warmup: u32,

    /// Where the table (`bench.md`), the raw results (`bench.json`) and the plot (`bench.svg`) go.
    #[arg(long, default_value = "target/bench")]
    pub out: PathBuf,

    /// Manifest the servers are started with (its files and environment).
    #[arg(long, default_value = "spin.toml")]
    pub manifest: PathBuf,

    /// The wasi-nn component (served with ONNX Runtime).
    #[arg(long, default_value = "build/pfd-edge-nn.wasm")]
    pub nn_component: PathBuf,

    /// The tract-in-wasm component (default: the portable build; the wasi-nn build with
    /// `--nn off` when it is missing).
    #[arg(long, default_value = "build/pfd-edge.wasm")]
    pub tract_component: PathBuf,

    /// The model (folder under the model directory) whose reference vectors are the inputs.
    #[arg(long, default_value = "bearing-lstm")]
    pub model: String,

    /// The model directory.
    #[arg(long, default_value = "models")]
    pub models_dir: PathBuf,

    /// Only measure the native floor of this `/predict` JSON body (the guest's decoder compiled
    /// natively, then the in-process ONNX Runtime call; and the OIP binary equivalent) and print
    /// it as JSON — what `scripts/load_bench.py` divides the served paths by. No server starts.
    #[arg(long, value_name = "BODY")]
    pub floor: Option<PathBuf>,

    /// Only measure the native floor of one `/diagnose` request with this recording as its body
    /// (the guest's route compiled natively, the windows through in-process ONNX Runtime) and
    /// print it as JSON — what `scripts/diagnose_bench.py` sets the served builds beside. No
    /// server starts.
    #[arg(long, value_name = "RECORDING", conflicts_with = "floor")]
    pub diagnose_floor: Option<PathBuf>,

    /// The floor's `/diagnose` query string (without `?`), e.g. `rpm=1770&bearing=6205`.
    #[arg(long, default_value = "")]
    pub diagnose_query: String,

    /// The floor's `/diagnose` body's `Content-Type`.
    #[arg(long, default_value = "audio/wav")]
    pub diagnose_content_type: String,

    /// Seconds each floor measurement runs.
    #[arg(long, default_value_t = 5.0)]
    pub floor_seconds: f64,

    #[command(flatten)]
    pub nn: NnArgs,
}
