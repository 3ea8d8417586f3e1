//! `pfd-host model validate MODEL [--reference FILE]`.
//!
//! 1. **File**: read it; a file that does not decode as an ONNX protobuf (empty, truncated,
//!    corrupted, something else) fails here with the decoder's reason.
//! 2. **Card** (`model.json` next to `model.onnx`, or `--card`): parsed; its `sha256` and
//!    `size_bytes`, when present, must match the file (a stale card is a failure); without a card
//!    the LSTM_PFD defaults apply (11 classes, 102400 samples), as when serving.
//! 3. **Structure** ([`super::onnx_info::structure_checks`]): opset >= 14; one input `input`,
//!    float32, `[batch, 1, length]` with batch and length dynamic; an output `logits`, float32,
//!    `[batch, classes]` with the card's class count; every node input defined; the op list.
//! 4. **Inference** on the reference vectors (`reference.json` next to the model, or
//!    `--reference`), one vector at a time, on each backend (`--backend`, default all): logits
//!    within the reference's `|Δ| <= atol + rtol·|ref|`, and their argmax. A backend lacking an op
//!    is `unsupported: <op>`; ONNX Runtime missing from this machine is `unavailable`; neither
//!    fails the model as long as some backend runs it. Without reference vectors, a synthetic
//!    record checks that each backend runs and returns finite `[1, classes]` logits.
//!
//! Verdict: PASS when no check failed and at least one backend ran the model (and matched the
//! reference); exit 0 on PASS, 1 otherwise.

use super::backends::{self, Backend, BackendOptions, Load};
use super::files::{Card, ModelFiles};
use super::onnx_info::{self, Check, Level, Summary};
use crate::eval::{argmax, closeness, sha256_hex, Closeness};
use crate::reference::Reference;
use crate::report::short;
use anyhow::{Context as _, Result};
use clap::Args;
use pfd_core::card::ModelCard;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `pfd-host model validate`.
#[derive(Debug, Clone, Args)]
pub struct ValidateArgs {
    /// A model folder (`model.onnx`, `model.json`, `reference.json`) or an `.onnx` file.
    pub model: PathBuf,

    /// Reference vectors (`reference.json`, its inputs file beside it). Default: the model
    /// folder's `reference.json`, if any.
    #[arg(long)]
    pub reference: Option<PathBuf>,

    /// The model card. Default: the folder's `model.json`, if any.
    #[arg(long)]
    pub card: Option<PathBuf>,

    /// Backends to run (repeatable). Default: every backend; one that is not installed is then
    /// reported, not failed. Named explicitly, a backend that cannot run the model fails.
    #[arg(long = "backend", value_enum)]
    pub backends: Vec<Backend>,

    #[command(flatten)]
    pub ort: crate::config::OrtLibArg,
}

/// What one backend did with the model.
enum Outcome {
    /// Matched the reference (or, without one, ran and returned sane logits).
    Passed(String),
    Mismatch(String),
    Unsupported(Vec<String>),
    Unavailable(String),
    Failed(String),
}

struct Report {
    lines: Vec<(String, String)>,
    failures: Vec<String>,
}

impl Report {
    fn new() -> Report {
        Report {
            lines: Vec::new(),
            failures: Vec::new(),
        }
    }
    fn section(&mut self, title: impl Into<String>) {
        let t = title.into();
        println!("{t}");
        self.lines.push((String::new(), t));
    }
    fn line(&mut self, label: &str, text: impl Into<String>) {
        let text = text.into();
        println!("  {label:<11} {text}");
        if label == Level::Fail.label() {
            self.failures.push(text.clone());
        }
        self.lines.push((label.to_string(), text));
    }
    fn check(&mut self, c: &Check) {
        self.line(c.level.label(), c.text.clone());
    }
}

pub fn run(args: &ValidateArgs) -> Result<bool> {
    let files = ModelFiles::resolve(&args.model, args.card.as_deref())?;
    let bytes =
        std::fs::read(&files.onnx).with_context(|| format!("reading {}", files.onnx.display()))?;
    let sha = sha256_hex(&bytes);
    let mut r = Report::new();
    r.section(format!(
        "model validate: {} ({} bytes, sha256 {}…)",
        files.onnx.display(),
        bytes.len(),
        &sha[..16]
    ));

    // 1. the file
    let proto = match onnx_info::decode(&bytes) {
        Ok(p) => p,
        Err(e) => {
            r.line("FAIL", format!("not a valid ONNX model: {e}"));
            return Ok(verdict(&r, 0, 0, false));
        }
    };
    let summary = Summary::of(&proto);
    drop(proto);

    // 2. the card
    r.section("card");
    let card = match &files.card {
        Some(path) => match Card::load(path) {
            Ok(c) => {
                card_checks(&mut r, &c, &bytes, &sha);
                Some(c)
            }
            Err(e) => {
                r.line("FAIL", format!("{e:#}"));
                None
            }
        },
        None => {
            r.line(
                "info",
                "no model.json: the LSTM_PFD defaults apply (11 classes, 102400 samples)",
            );
            None
        }
    };
    let model_card = card
        .as_ref()
        .map(|c| c.card.clone())
        .unwrap_or_else(|| ModelCard::fallback(&files.name));
    let classes_from = if card.is_some() {
        "the card's class_names"
    } else {
        "the LSTM_PFD defaults"
    };

    // 3. structure
    r.section("structure");
    for c in onnx_info::structure_checks(&summary, model_card.num_classes(), classes_from) {
        r.check(&c);
    }
    if !summary.undefined_inputs.is_empty() {
        r.line("skipped", "inference: the graph is incomplete");
        return Ok(verdict(&r, 0, 0, false));
    }

    // 4. inference
    let reference_path = args.reference.clone().or(files.reference.clone());
    let reference = match &reference_path {
        Some(p) => match Reference::load(p) {
            Ok(reference) => Some(reference),
            Err(e) => {
                r.section("inference");
                r.line("FAIL", format!("reference vectors: {e:#}"));
                return Ok(verdict(&r, 0, 0, false));
            }
        },
        None => None,
    };
    let length = reference
        .as_ref()
        .map_or(model_card.signal_length, |x| x.length);
    match &reference {
        Some(x) => {
            r.section(format!(
                "inference: {} vectors × {} samples from {}, tolerance |Δ| <= {} + {}·|ref|",
                x.count,
                x.length,
                x.path.display(),
                x.atol,
                x.rtol
            ));
            if x.classes() != model_card.num_classes() {
                r.line(
                    "FAIL",
                    format!(
                        "the reference has {} logits per vector, {classes_from} {}",
                        x.classes(),
                        model_card.num_classes()
                    ),
                );
            }
        }
        None => {
            r.section(format!(
                "inference: no reference vectors (pass --reference): one synthetic record of {length} samples, checking shape and finiteness only"
            ));
        }
    }

    let explicit = !args.backends.is_empty();
    let chosen: Vec<Backend> = if explicit {
        let mut b = args.backends.clone();
        b.sort();
        b.dedup();
        b
    } else {
        Backend::ALL.to_vec()
    };
    let opts = BackendOptions {
        ort_lib: args.ort.ort_lib.clone(),
    };
    let mut ran = 0;
    let mut unsupported_everywhere = 0;
    for backend in &chosen {
        let outcome = run_backend(
            *backend,
            &bytes,
            &summary,
            length,
            reference.as_ref(),
            model_card.num_classes(),
            &opts,
        );
        let name = backend.name();
        match outcome {
            Outcome::Passed(text) => {
                ran += 1;
                r.line("ok", text);
            }
            Outcome::Mismatch(text) => {
                ran += 1;
                r.line("FAIL", text);
            }
            Outcome::Unsupported(ops) => {
                unsupported_everywhere += 1;
                let text = format!("{name}: unsupported: {}", ops.join(", "));
                if explicit {
                    r.line("FAIL", text);
                } else {
                    r.line("unsupported", text);
                }
            }
            Outcome::Unavailable(why) => {
                let text = format!("{name}: unavailable on this machine ({why})");
                if explicit {
                    r.line("FAIL", text);
                } else {
                    r.line("unavailable", text);
                }
            }
            Outcome::Failed(why) => r.line("FAIL", why),
        }
    }
    if ran == 0 {
        let why = if unsupported_everywhere > 0 {
            "no backend runs this model"
        } else {
            "no backend could run the model"
        };
        r.line("FAIL", why);
    }
    Ok(verdict(&r, ran, chosen.len(), reference.is_some()))
}

fn card_checks(r: &mut Report, c: &Card, bytes: &[u8], sha: &str) {
    let mut problems = Vec::new();
    if let Some(want) = c.json.get("sha256").and_then(|v| v.as_str()) {
        if !want.eq_ignore_ascii_case(sha) {
            problems.push(format!(
                "its sha256 {}… is not the file's {}… (a stale card: regenerate it with the model)",
                &want[..want.len().min(16)],
                &sha[..16]
            ));
        }
    }
    if let Some(want) = c.json.get("size_bytes").and_then(|v| v.as_u64()) {
        if want != bytes.len() as u64 {
            problems.push(format!(
                "its size_bytes {want} is not the file's {}",
                bytes.len()
            ));
        }
    }
    if let Some(n) = c.json.get("num_classes").and_then(|v| v.as_u64()) {
        if n as usize != c.card.num_classes() {
            problems.push(format!(
                "num_classes {n} but {} class_names",
                c.card.num_classes()
            ));
        }
    }
    if c.card.input.name != onnx_info::INPUT_NAME || c.card.output.name != onnx_info::OUTPUT_NAME {
        problems.push(format!(
            "it names the tensors `{}` → `{}`; pfd-edge uses `{}` → `{}`",
            c.card.input.name,
            c.card.output.name,
            onnx_info::INPUT_NAME,
            onnx_info::OUTPUT_NAME
        ));
    }
    if let Some(spec) = &c.card.reference {
        // The card says where the reference vectors are and with which tolerances; the file
        // carries its own. A card that drifted from its file misleads whoever reads the card.
        let path = c.path.parent().unwrap_or(Path::new(".")).join(&spec.file);
        match Reference::load(&path) {
            Ok(refs) if refs.rtol as f32 != spec.rtol || refs.atol as f32 != spec.atol => problems
                .push(format!(
                    "its reference tolerances (rtol {}, atol {}) are not {}'s (rtol {}, atol {})",
                    spec.rtol, spec.atol, spec.file, refs.rtol, refs.atol
                )),
            Ok(_) => {}
            Err(e) => problems.push(format!("its reference file: {e:#}")),
        }
    }
    let hashed = if c.json.get("sha256").is_some() {
        ", sha256 and size match the file"
    } else {
        " (no sha256 to check)"
    };
    if problems.is_empty() {
        r.line(
            "ok",
            format!(
                "{}: {} ({}), {} classes{hashed}",
                c.path.display(),
                c.card.name,
                c.card.model_type,
                c.card.num_classes()
            ),
        );
    } else {
        r.line(
            "FAIL",
            format!("{}: {}", c.path.display(), problems.join("; ")),
        );
    }
}

fn run_backend(
    backend: Backend,
    bytes: &[u8],
    summary: &Summary,
    length: usize,
    reference: Option<&Reference>,
    classes: usize,
    opts: &BackendOptions,
) -> Outcome {
    let started = Instant::now();
    let mut runner = match backends::load(backend, bytes, summary, length, opts) {
        Load::Ready(r) => r,
        Load::Unsupported(ops) => return Outcome::Unsupported(ops),
        Load::Unavailable(why) => return Outcome::Unavailable(why),
        Load::Failed(why) => {
            return Outcome::Failed(format!("{}: cannot load the model: {why}", backend.name()))
        }
    };
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    let who = runner.describe();
    let Some(x) = reference else {
        let record: Vec<f32> = (0..length)
            .map(|i| {
                let t = i as f32 / 20480.0;
                (2.0 * std::f32::consts::PI * 30.0 * t).sin()
                    + 0.1 * ((i * 7919) % 101) as f32 / 101.0
            })
            .collect();
        return match runner.run1(&record) {
            Err(e) => Outcome::Failed(format!("{who}: inference failed: {e:#}")),
            Ok(l) if l.len() != classes => Outcome::Mismatch(format!(
                "{who}: {} logits for one record, expected {classes}",
                l.len()
            )),
            Ok(l) if l.iter().any(|v| !v.is_finite()) => {
                Outcome::Mismatch(format!("{who}: non-finite logits {l:?}"))
            }
            Ok(_) => Outcome::Passed(format!(
                "{who}: ran one record, {classes} finite logits (no reference to compare) — load {load_ms:.0} ms"
            )),
        };
    };
    let run_started = Instant::now();
    let mut bad = 0usize;
    let mut worst = (0f64, 0usize, 0usize);
    let mut argmax_ok = 0usize;
    for i in 0..x.count {
        let got = match runner.run1(x.input(i)) {
            Ok(g) => g,
            Err(e) => {
                return Outcome::Failed(format!("{who}: inference failed on vector {i}: {e:#}"))
            }
        };
        if got.len() != x.classes() {
            return Outcome::Mismatch(format!(
                "{who}: vector {i} gave {} logits, the reference has {}",
                got.len(),
                x.classes()
            ));
        }
        let Closeness {
            outside: b,
            max_abs_diff: max,
            at,
        } = closeness(&got, &x.logits[i], x.rtol, x.atol);
        bad += b;
        if max > worst.0 || (max.is_infinite() && worst.0.is_finite()) {
            worst = (max, i, at);
        }
        argmax_ok += usize::from(argmax(&got) == x.predicted[i]);
    }
    let per = run_started.elapsed().as_secs_f64() * 1e3 / x.count as f64;
    let total = x.count * x.classes();
    if bad == 0 {
        Outcome::Passed(format!(
            "{who}: {}/{} vectors within tolerance (max |Δ| {}), argmax {argmax_ok}/{} = reference — load {load_ms:.0} ms, {per:.2} ms/vector",
            x.count,
            x.count,
            short(worst.0),
            x.count
        ))
    } else {
        Outcome::Mismatch(format!(
            "{who}: {bad} of {total} logits outside the tolerance (|Δ| <= {} + {}·|ref|); max |Δ| {} at vector {}, class {}; argmax {argmax_ok}/{} = reference",
            x.atol,
            x.rtol,
            short(worst.0),
            worst.1,
            worst.2,
            x.count
        ))
    }
}

fn verdict(r: &Report, ran: usize, tried: usize, with_reference: bool) -> bool {
    if r.failures.is_empty() {
        println!(
            "PASS: structure ok; {ran} of {tried} backend(s) ran the model{}",
            if with_reference {
                " and matched the reference"
            } else {
                " (no reference vectors: shape and finiteness only)"
            }
        );
        true
    } else {
        println!("FAIL: {} problem(s):", r.failures.len());
        for f in &r.failures {
            println!("  - {f}");
        }
        false
    }
}
