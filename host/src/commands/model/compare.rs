//! `pfd-host model compare A B`: two models side by side, every figure measured in this run.
//!
//! * **Size**: the two files' bytes, MB, the ratio A/B and B's reduction in percent.
//! * **Agreement** per backend: both models on the same inputs — A's reference vectors, and fresh
//!   records from the generator (`models/scripts/generator.py --raw-f32`, run with the project
//!   venv's Python; or `--records-file`) — argmax agreement, max |Δlogit|, and each model's
//!   accuracy where the inputs carry labels.
//! * **Latency** per backend: batch 1 (one record), `--runs` timed runs of each model after
//!   `--warmup`, interleaved run by run (alternating which model goes first) so both see the same
//!   machine load; p50/p95/p99 and the speedup A p50 / B p50.
//!
//! A progress bar runs on stderr; the Markdown report goes to stdout and to `<out>/compare.md`,
//! the raw figures to `<out>/compare.json`, the plot to `<out>/compare.svg`.

use super::backends::{self, Backend, BackendOptions, Load, Runner};
use super::files::{Card, ModelFiles};
use super::onnx_info::{self, Summary};
use crate::eval::{argmax, percentile, sha256_hex};
use crate::reference::Reference;
use crate::report::{bar_chart, short, Bar, BarStyle, Machine};
use anyhow::{anyhow, bail, Context as _, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use pfd_core::card::ModelCard;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `pfd-host model compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// Model A (the baseline): a model folder or an `.onnx` file.
    pub a: PathBuf,
    /// Model B (the candidate).
    pub b: PathBuf,

    /// Where compare.md, compare.json and compare.svg go.
    #[arg(long, default_value = "target/model-compare")]
    pub out: PathBuf,

    /// Fresh generator records to compare the models on (0: reference vectors only).
    #[arg(long, default_value_t = 110)]
    pub records: usize,

    /// Generator seed of the fresh records (record i: class i % 11 of make_dataset(…, seed)).
    /// The default is used by no training, test, reference or calibration set.
    #[arg(long, default_value_t = 8008)]
    pub seed: u64,

    /// Pre-generated records instead of running the generator: raw little-endian float32
    /// `[n, length]` (as `generator.py --raw-f32 FILE … > FILE.json` writes); labels from
    /// `<file>.json` (the generator's stdout) if present.
    #[arg(long)]
    pub records_file: Option<PathBuf>,

    /// The generator script. Default: models/scripts/generator.py under the working directory,
    /// else `<A's folder>/../scripts/generator.py`.
    #[arg(long)]
    pub generator: Option<PathBuf>,

    /// Python for the generator (needs numpy). Default: $PFD_VENV/bin/python, else
    /// ~/.cache/pfd-edge/venv/bin/python, else python3.
    #[arg(long)]
    pub python: Option<PathBuf>,

    /// Timed batch-1 runs per model and backend.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub runs: u32,

    /// Untimed runs per model and backend before timing.
    #[arg(long, default_value_t = 10)]
    pub warmup: u32,

    /// Backends to compare on (repeatable). Default: every backend available.
    #[arg(long = "backend", value_enum)]
    pub backends: Vec<Backend>,

    #[command(flatten)]
    pub ort: crate::config::OrtLibArg,
}

#[derive(Debug, Clone, Serialize)]
struct ModelInfo {
    name: String,
    path: String,
    bytes: u64,
    mb: f64,
    sha256: String,
    model_type: Option<String>,
    ops: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
struct Sizes {
    ratio_a_over_b: f64,
    reduction_percent: f64,
}

#[derive(Debug, Clone, Serialize)]
struct Agreement {
    backend: String,
    inputs: String,
    n: usize,
    argmax_agreement: f64,
    agree: usize,
    max_abs_logit_diff: f64,
    mean_abs_logit_diff: f64,
    accuracy_a: Option<f64>,
    accuracy_b: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
struct Latency {
    backend: String,
    runtime_a: String,
    runtime_b: String,
    runs: u32,
    a_ms: Percentiles,
    b_ms: Percentiles,
    speedup_p50: f64,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct Percentiles {
    p50: f64,
    p95: f64,
    p99: f64,
    mean: f64,
}

#[derive(Debug, Clone, Serialize)]
struct BackendNote {
    backend: String,
    note: String,
}

#[derive(Debug, Clone, Serialize)]
struct Results {
    a: ModelInfo,
    b: ModelInfo,
    sizes: Sizes,
    machine: String,
    record_length: usize,
    fresh_records: Option<String>,
    agreement: Vec<Agreement>,
    latency: Vec<Latency>,
    skipped: Vec<BackendNote>,
}

/// Fresh records: samples and (maybe) labels.
pub(crate) struct Records {
    pub what: String,
    /// `[n, length]`, row-major.
    pub data: Vec<f32>,
    pub labels: Option<Vec<usize>>,
}

/// Records from a raw little-endian float32 file `[n, length]`, with labels from `FILE.json`
/// (`{"labels": [...]}`, as `generator.py --raw-f32 FILE … > FILE.json` writes) when it has one
/// per record.
pub(crate) fn read_records_file(file: &Path, length: usize) -> Result<Records> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    if bytes.is_empty() || bytes.len() % (4 * length) != 0 {
        bail!(
            "{}: {} bytes is not a whole number of {length}-sample float32 records",
            file.display(),
            bytes.len()
        );
    }
    let data: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let n = data.len() / length;
    let side = PathBuf::from(format!("{}.json", file.display()));
    let labels = std::fs::read(&side)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| serde_json::from_value::<Vec<usize>>(v.get("labels")?.clone()).ok())
        .filter(|l| l.len() == n);
    Ok(Records {
        what: format!("{n} records from {}", file_name(file)),
        data,
        labels,
    })
}

pub fn run(args: &CompareArgs) -> Result<bool> {
    let fa = ModelFiles::resolve(&args.a, None)?;
    let fb = ModelFiles::resolve(&args.b, None)?;
    let (bytes_a, info_a, sum_a, card_a) = open(&fa)?;
    let (bytes_b, info_b, sum_b, card_b) = open(&fb)?;
    let length = card_a.signal_length;
    if card_b.signal_length != length {
        bail!(
            "the models take records of different lengths ({} and {})",
            length,
            card_b.signal_length
        );
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;

    let sizes = Sizes {
        ratio_a_over_b: info_a.bytes as f64 / info_b.bytes as f64,
        reduction_percent: (1.0 - info_b.bytes as f64 / info_a.bytes as f64) * 100.0,
    };

    // Inputs: A's reference vectors (else B's), and fresh records.
    let reference = match fa.reference.as_ref().or(fb.reference.as_ref()) {
        Some(p) => Some(Reference::load(p)?),
        None => None,
    };
    if let Some(r) = &reference {
        if r.length != length {
            bail!(
                "{} holds records of {} samples, the models take {length}",
                r.path.display(),
                r.length
            );
        }
    }
    let fresh = fresh_records(args, &fa, length)?;
    if reference.is_none() && fresh.is_none() {
        bail!("no inputs: the models have no reference vectors and no fresh records were made");
    }

    let chosen: Vec<Backend> = if args.backends.is_empty() {
        Backend::ALL.to_vec()
    } else {
        let mut b = args.backends.clone();
        b.sort();
        b.dedup();
        b
    };
    let n_ref = reference.as_ref().map_or(0, |r| r.count);
    let n_fresh = fresh.as_ref().map_or(0, |f| f.data.len() / length);
    let per_backend = 2 + 2 * (n_ref + n_fresh) as u64 + 2 * u64::from(args.warmup + args.runs);
    let bar = ProgressBar::new(per_backend * chosen.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {msg}")
            .expect("valid template"),
    );
    let opts = BackendOptions {
        ort_lib: args.ort.ort_lib.clone(),
    };

    let mut agreement = Vec::new();
    let mut latency = Vec::new();
    let mut skipped = Vec::new();
    for backend in &chosen {
        let name = backend.name();
        bar.set_message(format!("{name}: loading"));
        let ra = backends::load(*backend, &bytes_a, &sum_a, length, &opts);
        bar.inc(1);
        let rb = backends::load(*backend, &bytes_b, &sum_b, length, &opts);
        bar.inc(1);
        let (mut ra, mut rb) = match (ra, rb) {
            (Load::Ready(a), Load::Ready(b)) => (a, b),
            (a, b) => {
                let note = [("A", a), ("B", b)]
                    .into_iter()
                    .filter_map(|(which, l)| match l {
                        Load::Ready(_) => None,
                        Load::Unsupported(ops) => {
                            Some(format!("{which}: unsupported: {}", ops.join(", ")))
                        }
                        Load::Unavailable(why) => Some(format!("unavailable ({why})")),
                        Load::Failed(why) => Some(format!("{which}: cannot load: {why}")),
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                bar.inc(per_backend - 2);
                skipped.push(BackendNote {
                    backend: name.into(),
                    note,
                });
                continue;
            }
        };
        if let Some(r) = &reference {
            bar.set_message(format!("{name}: reference vectors"));
            agreement.push(agree(
                name,
                format!("reference vectors ({})", file_name(&r.path)),
                &mut *ra,
                &mut *rb,
                &r.inputs,
                length,
                r.labels.as_deref(),
                &bar,
            )?);
        }
        if let Some(f) = &fresh {
            bar.set_message(format!("{name}: fresh records"));
            agreement.push(agree(
                name,
                f.what.clone(),
                &mut *ra,
                &mut *rb,
                &f.data,
                length,
                f.labels.as_deref(),
                &bar,
            )?);
        }
        bar.set_message(format!("{name}: latency"));
        let inputs: &[f32] = match (&fresh, &reference) {
            (Some(f), _) => &f.data,
            (None, Some(r)) => &r.inputs,
            (None, None) => unreachable!(),
        };
        latency.push(time_pair(
            name,
            &mut *ra,
            &mut *rb,
            inputs,
            length,
            args.warmup,
            args.runs,
            &bar,
        )?);
    }
    bar.finish_and_clear();

    let results = Results {
        a: info_a,
        b: info_b,
        sizes,
        machine: Machine::detect().describe(),
        record_length: length,
        fresh_records: fresh.as_ref().map(|f| f.what.clone()),
        agreement,
        latency,
        skipped,
    };
    let md = markdown(&results, args);
    print!("{md}");
    let md_path = args.out.join("compare.md");
    std::fs::write(&md_path, &md).with_context(|| format!("writing {}", md_path.display()))?;
    let json_path = args.out.join("compare.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&results)?)
        .with_context(|| format!("writing {}", json_path.display()))?;
    let svg_path = args.out.join("compare.svg");
    plot(&results, &svg_path)?;
    println!(
        "\nwrote {}, {} and {}",
        md_path.display(),
        json_path.display(),
        svg_path.display()
    );
    Ok(results.agreement.iter().all(|a| a.n > 0) && !results.latency.is_empty())
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn open(f: &ModelFiles) -> Result<(Vec<u8>, ModelInfo, Summary, ModelCard)> {
    let bytes = std::fs::read(&f.onnx).with_context(|| format!("reading {}", f.onnx.display()))?;
    let proto = onnx_info::decode(&bytes)
        .map_err(|e| anyhow!("{}: not a valid ONNX model: {e}", f.onnx.display()))?;
    let summary = Summary::of(&proto);
    let card = match &f.card {
        Some(p) => Some(Card::load(p)?),
        None => None,
    };
    let model_card = card
        .as_ref()
        .map(|c| c.card.clone())
        .unwrap_or_else(|| ModelCard::fallback(&f.name));
    let info = ModelInfo {
        name: f.name.clone(),
        path: f.onnx.display().to_string(),
        bytes: bytes.len() as u64,
        mb: bytes.len() as f64 / 1e6,
        sha256: sha256_hex(&bytes),
        model_type: card.as_ref().map(|c| c.card.model_type.clone()),
        ops: summary.ops.keys().map(ToString::to_string).collect(),
    };
    Ok((bytes, info, summary, model_card))
}

fn python(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(v) = crate::nn::ort_lib::venv_dir() {
        let p = v.join("bin/python");
        if p.is_file() {
            return p;
        }
    }
    PathBuf::from("python3")
}

fn fresh_records(args: &CompareArgs, fa: &ModelFiles, length: usize) -> Result<Option<Records>> {
    if let Some(file) = &args.records_file {
        return read_records_file(file, length).map(Some);
    }
    if args.records == 0 {
        return Ok(None);
    }
    let generator = match &args.generator {
        Some(g) => g.clone(),
        None => {
            let here = PathBuf::from("models/scripts/generator.py");
            if here.is_file() {
                here
            } else {
                fa.dir.join("../scripts/generator.py")
            }
        }
    };
    if !generator.is_file() {
        bail!(
            "no generator at {} (pass --generator, --records-file, or --records 0)",
            generator.display()
        );
    }
    let py = python(args.python.as_deref());
    let tmp = tempfile::Builder::new()
        .prefix("pfd-compare-")
        .suffix(".f32")
        .tempfile()
        .context("creating a temporary file for the records")?;
    let out = std::process::Command::new(&py)
        .arg(&generator)
        .arg("--raw-f32")
        .arg(tmp.path())
        .args(["--count", &args.records.to_string()])
        .args(["--seed", &args.seed.to_string()])
        .args(["--length", &length.to_string()])
        .output()
        .with_context(|| format!("running {} {}", py.display(), generator.display()))?;
    if !out.status.success() {
        bail!(
            "{} {} --raw-f32 failed ({}): {}",
            py.display(),
            generator.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "reading the generator's output: {:?}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    let labels: Option<Vec<usize>> = meta
        .get("labels")
        .and_then(|l| serde_json::from_value(l.clone()).ok());
    let bytes = std::fs::read(tmp.path())?;
    if bytes.len() != args.records * length * 4 {
        bail!(
            "the generator wrote {} bytes, expected {}",
            bytes.len(),
            args.records * length * 4
        );
    }
    let data = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(Some(Records {
        what: format!("generator records (seed {}, all classes)", args.seed),
        data,
        labels,
    }))
}

#[allow(clippy::too_many_arguments)]
fn agree(
    backend: &str,
    inputs_name: String,
    ra: &mut dyn Runner,
    rb: &mut dyn Runner,
    inputs: &[f32],
    length: usize,
    labels: Option<&[usize]>,
    bar: &ProgressBar,
) -> Result<Agreement> {
    let n = inputs.len() / length;
    let mut same = 0;
    let mut max = 0f64;
    let mut sum = 0f64;
    let mut count = 0usize;
    let (mut ok_a, mut ok_b) = (0usize, 0usize);
    for (i, rec) in inputs.chunks(length).enumerate() {
        let la = ra
            .run1(rec)
            .with_context(|| format!("{backend}: A, record {i}"))?;
        bar.inc(1);
        let lb = rb
            .run1(rec)
            .with_context(|| format!("{backend}: B, record {i}"))?;
        bar.inc(1);
        if la.len() != lb.len() {
            bail!(
                "{backend}: the models give {} and {} logits per record",
                la.len(),
                lb.len()
            );
        }
        let (ca, cb) = (argmax(&la), argmax(&lb));
        same += usize::from(ca == cb);
        for (x, y) in la.iter().zip(&lb) {
            let d = (f64::from(*x) - f64::from(*y)).abs();
            max = max.max(if d.is_nan() { f64::INFINITY } else { d });
            sum += d;
            count += 1;
        }
        if let Some(l) = labels {
            ok_a += usize::from(ca == l[i]);
            ok_b += usize::from(cb == l[i]);
        }
    }
    Ok(Agreement {
        backend: backend.into(),
        inputs: inputs_name,
        n,
        argmax_agreement: same as f64 / n.max(1) as f64,
        agree: same,
        max_abs_logit_diff: max,
        mean_abs_logit_diff: sum / count.max(1) as f64,
        accuracy_a: labels.map(|_| ok_a as f64 / n.max(1) as f64),
        accuracy_b: labels.map(|_| ok_b as f64 / n.max(1) as f64),
    })
}

fn stats(mut v: Vec<f64>) -> Percentiles {
    v.sort_by(|a, b| a.total_cmp(b));
    Percentiles {
        p50: percentile(&v, 50.0).unwrap_or(f64::NAN),
        p95: percentile(&v, 95.0).unwrap_or(f64::NAN),
        p99: percentile(&v, 99.0).unwrap_or(f64::NAN),
        mean: v.iter().sum::<f64>() / v.len().max(1) as f64,
    }
}

#[allow(clippy::too_many_arguments)]
fn time_pair(
    backend: &str,
    ra: &mut dyn Runner,
    rb: &mut dyn Runner,
    inputs: &[f32],
    length: usize,
    warmup: u32,
    runs: u32,
    bar: &ProgressBar,
) -> Result<Latency> {
    let records: Vec<&[f32]> = inputs.chunks(length).collect();
    for i in 0..warmup as usize {
        let r = records[i % records.len()];
        ra.run1(r)?;
        rb.run1(r)?;
        bar.inc(2);
    }
    let mut ta = Vec::with_capacity(runs as usize);
    let mut tb = Vec::with_capacity(runs as usize);
    let time = |runner: &mut dyn Runner, r: &[f32]| -> Result<f64> {
        let t = Instant::now();
        let out = runner.run1(r)?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        std::hint::black_box(out);
        Ok(ms)
    };
    for i in 0..runs as usize {
        let r = records[i % records.len()];
        // Alternate which model goes first, so neither always runs on a warmer cache.
        if i % 2 == 0 {
            ta.push(time(ra, r)?);
            tb.push(time(rb, r)?);
        } else {
            tb.push(time(rb, r)?);
            ta.push(time(ra, r)?);
        }
        bar.inc(2);
    }
    let (a, b) = (stats(ta), stats(tb));
    Ok(Latency {
        backend: backend.into(),
        runtime_a: ra.describe(),
        runtime_b: rb.describe(),
        runs,
        speedup_p50: a.p50 / b.p50,
        a_ms: a,
        b_ms: b,
    })
}

fn pct(v: f64) -> String {
    format!("{:.1} %", v * 100.0)
}

fn markdown(r: &Results, args: &CompareArgs) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "## model compare: A = {} vs B = {}\n",
        r.a.name, r.b.name
    );
    let _ = writeln!(
        s,
        "Machine: {}. Inputs: records of {} samples, batch 1, one thread per backend.\n",
        r.machine, r.record_length
    );
    let _ = writeln!(s, "### Size\n");
    let _ = writeln!(s, "| | model | file | bytes | MB |");
    let _ = writeln!(s, "|---|---|---|---:|---:|");
    for (k, m) in [("A", &r.a), ("B", &r.b)] {
        let _ = writeln!(
            s,
            "| {k} | {}{} | `{}` | {} | {:.3} |",
            m.name,
            m.model_type
                .as_ref()
                .map(|t| format!(" ({t})"))
                .unwrap_or_default(),
            m.path,
            m.bytes,
            m.mb
        );
    }
    let _ = writeln!(
        s,
        "\nB is **{:.2}x** smaller than A (ratio A/B), a **{:.1} %** reduction.\n",
        r.sizes.ratio_a_over_b, r.sizes.reduction_percent
    );

    let _ = writeln!(s, "### Agreement (B vs A, same backend, same inputs)\n");
    let _ = writeln!(
        s,
        "| backend | inputs | n | argmax agreement | max abs Δlogit | mean abs Δlogit | accuracy A | accuracy B |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|");
    for a in &r.agreement {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} ({}/{}) | {} | {} | {} | {} |",
            a.backend,
            a.inputs,
            a.n,
            pct(a.argmax_agreement),
            a.agree,
            a.n,
            short(a.max_abs_logit_diff),
            short(a.mean_abs_logit_diff),
            a.accuracy_a.map(pct).unwrap_or_else(|| "–".into()),
            a.accuracy_b.map(pct).unwrap_or_else(|| "–".into()),
        );
    }
    if r.fresh_records.is_none() && args.records_file.is_none() {
        let _ = writeln!(s, "\n(no fresh records: `--records 0`)");
    }

    let _ = writeln!(
        s,
        "\n### Latency (batch 1, {} timed runs per model after {} warm-up, interleaved)\n",
        args.runs, args.warmup
    );
    let _ = writeln!(
        s,
        "| backend | model | runtime | p50 ms | p95 ms | p99 ms | speedup (A p50 / B p50) |"
    );
    let _ = writeln!(s, "|---|---|---|---:|---:|---:|---:|");
    for l in &r.latency {
        let _ = writeln!(
            s,
            "| {} | A {} | {} | {:.3} | {:.3} | {:.3} | |",
            l.backend, r.a.name, l.runtime_a, l.a_ms.p50, l.a_ms.p95, l.a_ms.p99
        );
        let _ = writeln!(
            s,
            "| {} | B {} | {} | {:.3} | {:.3} | {:.3} | **{:.2}x** |",
            l.backend, r.b.name, l.runtime_b, l.b_ms.p50, l.b_ms.p95, l.b_ms.p99, l.speedup_p50
        );
    }
    for k in &r.skipped {
        let _ = writeln!(s, "\n{}: not compared — {}", k.backend, k.note);
    }
    s
}

/// Two panels: file sizes, and latency per backend (p50 bars, p95/p99 marks).
fn plot(r: &Results, path: &Path) -> Result<()> {
    use plotters::prelude::*;
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    let root = SVGBackend::new(path, (1100, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root
        .titled(
            &format!("model compare: A = {} vs B = {}", r.a.name, r.b.name),
            ("sans-serif", 20),
        )
        .map_err(|e| err(&e))?;
    let (left, right) = root.split_horizontally(360);
    let colors = [RGBColor(31, 119, 180), RGBColor(255, 127, 14)];

    // Sizes (kB).
    let sizes = [(&r.a, colors[0]), (&r.b, colors[1])];
    let max_kb = r.a.bytes.max(r.b.bytes) as f64 / 1e3 * 1.2;
    let size_bars: Vec<Bar> = sizes
        .iter()
        .zip([format!("A {}", r.a.name), format!("B {}", r.b.name)])
        .map(|((m, c), label)| Bar {
            label,
            value: m.bytes as f64 / 1e3,
            color: *c,
        })
        .collect();
    let style = BarStyle {
        caption: format!(
            "file size (kB): {:.2}x smaller, -{:.1} %",
            r.sizes.ratio_a_over_b, r.sizes.reduction_percent
        ),
        caption_size: 15,
        y_desc: "kB",
        x_label_area: 40,
        y_label_area: 50,
        bar_margin: 20,
        y_labels: None,
    };
    let mut chart = bar_chart(&left, &style, &size_bars, 0.0..max_kb, 0.0).map_err(|e| err(&e))?;
    chart
        .draw_series(sizes.iter().enumerate().map(|(i, (m, _))| {
            Text::new(
                format!("{:.1}", m.bytes as f64 / 1e3),
                (
                    SegmentValue::CenterOf(i),
                    m.bytes as f64 / 1e3 + max_kb * 0.03,
                ),
                ("sans-serif", 13).into_font(),
            )
        }))
        .map_err(|e| err(&e))?;

    // Latency: for each backend, A then B.
    let mut bars: Vec<(String, Percentiles, RGBColor)> = Vec::new();
    for l in &r.latency {
        bars.push((format!("{} A", l.backend), l.a_ms, colors[0]));
        bars.push((
            format!("{} B ({:.2}x)", l.backend, l.speedup_p50),
            l.b_ms,
            colors[1],
        ));
    }
    let max_ms = bars
        .iter()
        .map(|b| b.1.p99)
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max)
        .max(1e-3)
        * 1.15;
    if bars.is_empty() {
        right
            .draw(&Text::new(
                "no backend ran both models: no latency",
                (40, 200),
                ("sans-serif", 16).into_font(),
            ))
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
        return Ok(());
    }
    let p50_bars: Vec<Bar> = bars
        .iter()
        .map(|(label, p, color)| Bar {
            label: label.clone(),
            value: p.p50,
            color: *color,
        })
        .collect();
    let y_labels = |v: &f64| format!("{v:.2}");
    let style = BarStyle {
        caption: "batch-1 latency (ms): bar = p50, marks = p95 / p99".into(),
        caption_size: 15,
        y_desc: "ms",
        x_label_area: 40,
        y_label_area: 55,
        bar_margin: 14,
        y_labels: Some(&y_labels),
    };
    let mut chart = bar_chart(&right, &style, &p50_bars, 0.0..max_ms, 0.0).map_err(|e| err(&e))?;
    for (pick, style) in [(0usize, BLACK.stroke_width(2)), (1, RED.stroke_width(2))] {
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (_, p, _))| {
                let v = if pick == 0 { p.p95 } else { p.p99 };
                PathElement::new(
                    vec![
                        (SegmentValue::CenterOf(i), v),
                        (SegmentValue::CenterOf(i), v),
                    ],
                    style,
                )
            }))
            .map_err(|e| err(&e))?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (_, p, _))| {
                let v = if pick == 0 { p.p95 } else { p.p99 };
                Circle::new((SegmentValue::CenterOf(i), v), 4, style.filled())
            }))
            .map_err(|e| err(&e))?
            .label(if pick == 0 { "p95" } else { "p99" })
            .legend(move |(x, y)| Circle::new((x, y), 4, style.filled()));
    }
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (_, p, _))| {
            Text::new(
                format!("{:.3}", p.p50),
                (SegmentValue::CenterOf(i), p.p50 * 0.5),
                ("sans-serif", 12).into_font(),
            )
        }))
        .map_err(|e| err(&e))?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
