//! `pfd-host model validate|compare`, through the real binary.
//!
//! The broken models are made here from the bundled ones (truncated bytes; the protobuf edited
//! with tract-onnx's prost types), never stored. ONNX Runtime is used when the host finds a
//! libonnxruntime (PFD_ORT_LIB, ORT_DYLIB_PATH, the venv at $PFD_VENV or ~/.cache/pfd-edge/venv);
//! without one the tests still run, on tract, and check that ONNX Runtime is reported as
//! unavailable rather than failed. The generator (for compare's fresh records) needs a Python with
//! numpy; without it compare runs on the reference vectors only.

// The model tools are the `tools` feature's (on by default).
#![cfg(feature = "tools")]

use pfd_core::card::{CARD_FILE, MODEL_FILE, REFERENCE_FILE};
use pfd_host::eval::sha256_hex;
use prost::Message as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use tract_onnx::pb;

const FP32: &str = "bearing-lstm";
const INT8: &str = "bearing-lstm-int8";

mod common;
use common::workspace as repo;

fn models() -> PathBuf {
    repo().join("models")
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ort_available(&self) -> bool {
        !self.stdout.contains("onnxruntime: unavailable")
    }
}

fn pfd_host(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_pfd-host"))
        .args(args)
        .current_dir(repo())
        .env("RUST_LOG", "warn")
        .output()
        .expect("running pfd-host");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !run.stderr.contains("panicked"),
        "pfd-host panicked:\n{}",
        run.stderr
    );
    run
}

fn validate(path: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["model", "validate", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    pfd_host(&args)
}

/// A copy of a bundled model folder with `model.onnx` replaced by `onnx`; the card's sha256 and
/// size are updated to the new bytes (so that only the intended defect is wrong).
fn folder_with(model: &str, onnx: &[u8]) -> tempfile::TempDir {
    let src = models().join(model);
    let dir = tempfile::tempdir().unwrap();
    for f in [REFERENCE_FILE, "reference_inputs.f32"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let mut card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join(CARD_FILE)).unwrap()).unwrap();
    card["sha256"] = sha256_hex(onnx).into();
    card["size_bytes"] = onnx.len().into();
    std::fs::write(
        dir.path().join(CARD_FILE),
        serde_json::to_vec_pretty(&card).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.path().join(MODEL_FILE), onnx).unwrap();
    dir
}

fn bundled_onnx(model: &str) -> Vec<u8> {
    std::fs::read(models().join(model).join(MODEL_FILE)).unwrap()
}

fn line_of<'a>(stdout: &'a str, needle: &str) -> Option<&'a str> {
    stdout.lines().find(|l| l.contains(needle))
}

#[test]
fn validate_passes_on_both_bundled_models() {
    for model in [FP32, INT8] {
        let run = validate(&models().join(model), &[]);
        assert_eq!(run.code, 0, "{model}:\n{}\n{}", run.stdout, run.stderr);
        assert!(
            run.stdout.contains("\nPASS: structure ok"),
            "{}",
            run.stdout
        );
        assert!(!run.stdout.contains("FAIL"), "{}", run.stdout);
        for expected in [
            "ai.onnx opset 17 (>= 14)",
            "input `input` float32 [batch, 1, length]: batch and length axes dynamic",
            "output `logits` float32 [batch, 11]: 11 classes = the card's class_names",
            "every node input defined",
            "sha256 and size match the file",
        ] {
            assert!(
                run.stdout.contains(expected),
                "{model}: no {expected:?} in\n{}",
                run.stdout
            );
        }
        let tract = line_of(&run.stdout, "tract (native): ").expect("a tract line");
        assert!(
            tract.trim_start().starts_with("ok")
                && tract.contains("11/11 vectors within tolerance"),
            "{tract}"
        );
        if run.ort_available() {
            let ort = line_of(&run.stdout, "(CPU): ").expect("an onnxruntime line");
            assert!(
                ort.trim_start().starts_with("ok")
                    && ort.contains("11/11 vectors within tolerance"),
                "{ort}"
            );
        }
    }
    // The int8 model is quantized: its graph carries int8 weights and Q/DQ ops.
    let run = validate(&models().join(INT8), &[]);
    assert!(run.stdout.contains("int8"), "{}", run.stdout);
    assert!(run.stdout.contains("DequantizeLinear"), "{}", run.stdout);
}

#[test]
fn validate_fails_clearly_on_truncated_and_garbage_files() {
    let bytes = bundled_onnx(FP32);
    for cut in [bytes.len() / 2, bytes.len() - 1000, 64] {
        let dir = folder_with(FP32, &bytes[..cut]);
        let run = validate(dir.path(), &[]);
        assert_eq!(run.code, 1, "cut {cut}:\n{}\n{}", run.stdout, run.stderr);
        assert!(
            run.stdout
                .contains("FAIL        not a valid ONNX model: protobuf decoding failed")
                && run.stdout.contains("truncated"),
            "cut {cut}:\n{}",
            run.stdout
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.onnx");
    std::fs::write(&garbage, b"\x08\x07this is not an onnx model\xff\xff\xff").unwrap();
    let run = validate(&garbage, &[]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout.contains("not a valid ONNX model"),
        "{}",
        run.stdout
    );
    let empty = dir.path().join("empty.onnx");
    std::fs::write(&empty, b"").unwrap();
    let run = validate(&empty, &[]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stdout.contains("the file is empty"), "{}", run.stdout);
    // A path that does not exist is a usage error (2), not a validation failure.
    let run = validate(&dir.path().join("missing"), &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("no such file or folder"),
        "{}",
        run.stderr
    );
}

#[test]
fn validate_fails_on_wrong_output_names() {
    let mut m = pb::ModelProto::decode(bundled_onnx(FP32).as_slice()).unwrap();
    let g = m.graph.as_mut().unwrap();
    for n in &mut g.node {
        for o in &mut n.output {
            if o == "logits" {
                *o = "probs".into();
            }
        }
    }
    g.output[0].name = "probs".into();
    let dir = folder_with(FP32, &m.encode_to_vec());
    let run = validate(dir.path(), &[]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let fail = line_of(
        &run.stdout,
        "output: the model has no output named `logits`",
    )
    .unwrap_or_else(|| panic!("{}", run.stdout));
    assert!(fail.trim_start().starts_with("FAIL"), "{fail}");
    assert!(fail.contains("(its outputs: `probs`)"), "{fail}");
    assert!(run.stdout.contains("FAIL: 1 problem(s):"), "{}", run.stdout);
}

#[test]
fn validate_fails_when_reference_vectors_do_not_match() {
    let src = models().join(FP32);
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        src.join("reference_inputs.f32"),
        dir.path().join("reference_inputs.f32"),
    )
    .unwrap();
    let mut reference: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join(REFERENCE_FILE)).unwrap()).unwrap();
    let v = reference["logits"][3][2].as_f64().unwrap();
    reference["logits"][3][2] = (v + 0.5).into();
    let path = dir.path().join(REFERENCE_FILE);
    std::fs::write(&path, serde_json::to_vec(&reference).unwrap()).unwrap();

    let run = validate(&src, &["--reference", path.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let tract = line_of(&run.stdout, "tract (native): ").unwrap();
    assert!(tract.trim_start().starts_with("FAIL"), "{tract}");
    assert!(
        tract.contains("1 of 121 logits outside the tolerance")
            && tract.contains("max |Δ| 0.5000 at vector 3, class 2"),
        "{tract}"
    );
    if run.ort_available() {
        let ort = line_of(&run.stdout, "(CPU): ").unwrap();
        assert!(
            ort.contains("1 of 121 logits outside the tolerance"),
            "{ort}"
        );
    }
}

#[test]
fn validate_fails_when_the_card_and_its_reference_file_disagree() {
    let dir = folder_with(FP32, &bundled_onnx(FP32));
    let card_path = dir.path().join(CARD_FILE);
    let mut card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&card_path).unwrap()).unwrap();
    let ok = validate(dir.path(), &[]);
    assert_eq!(ok.code, 0, "{}\n{}", ok.stdout, ok.stderr);
    card["reference"]["rtol"] = 0.5.into();
    std::fs::write(&card_path, serde_json::to_vec_pretty(&card).unwrap()).unwrap();
    let run = validate(dir.path(), &[]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let line =
        line_of(&run.stdout, "reference tolerances").unwrap_or_else(|| panic!("{}", run.stdout));
    assert!(line.trim_start().starts_with("FAIL"), "{line}");
    assert!(
        line.contains("rtol 0.5") && line.contains("rtol 0.001"),
        "{line}"
    );
}

#[test]
fn validate_reports_an_op_a_backend_lacks_as_unsupported() {
    // Route the normalised signal through Optional → OptionalGetElement (an identity that ONNX
    // Runtime runs and tract does not implement).
    let mut m = pb::ModelProto::decode(bundled_onnx(FP32).as_slice()).unwrap();
    let g = m.graph.as_mut().unwrap();
    let conv = g.node.iter().position(|n| n.op_type == "Conv").unwrap();
    let x = g.node[conv].input[0].clone();
    g.node[conv].input[0] = "x_unwrapped".into();
    let node = |op: &str, input: &str, output: &str| pb::NodeProto {
        op_type: op.into(),
        name: format!("test_{op}"),
        input: vec![input.into()],
        output: vec![output.into()],
        ..Default::default()
    };
    g.node
        .insert(conv, node("OptionalGetElement", "x_wrapped", "x_unwrapped"));
    g.node.insert(conv, node("Optional", &x, "x_wrapped"));
    let dir = folder_with(FP32, &m.encode_to_vec());

    let run = validate(dir.path(), &[]);
    let tract =
        line_of(&run.stdout, "tract: unsupported: ").unwrap_or_else(|| panic!("{}", run.stdout));
    assert!(tract.trim_start().starts_with("unsupported"), "{tract}");
    assert!(tract.contains("Optional, OptionalGetElement"), "{tract}");
    if run.ort_available() {
        // The model itself is fine: ONNX Runtime runs it and matches the references.
        assert_eq!(run.code, 0, "{}", run.stdout);
        assert!(
            run.stdout.contains("PASS: structure ok; 1 of 2 backend(s)"),
            "{}",
            run.stdout
        );
    } else {
        assert_eq!(run.code, 1, "{}", run.stdout);
        assert!(
            run.stdout.contains("no backend runs this model"),
            "{}",
            run.stdout
        );
    }

    // Asking for tract explicitly turns "unsupported" into a failure.
    let run = validate(dir.path(), &["--backend", "tract"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout
            .contains("FAIL        tract: unsupported: Optional, OptionalGetElement"),
        "{}",
        run.stdout
    );
}

/// `--records N` when the generator can run here (a Python with numpy), else 0.
fn records_arg() -> &'static str {
    let venv = std::env::var_os("PFD_VENV")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/pfd-edge/venv"))
        });
    let python = venv
        .map(|v| v.join("bin/python"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("python3"));
    let ok = Command::new(python)
        .args(["-c", "import numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        "22"
    } else {
        "0"
    }
}

fn compare(a: &str, b: &str, out: &Path, records: &str) -> (Run, serde_json::Value) {
    let a = models().join(a);
    let b = models().join(b);
    let run = pfd_host(&[
        "model",
        "compare",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--records",
        records,
        "--runs",
        "5",
        "--warmup",
        "1",
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let json = serde_json::from_slice(&std::fs::read(out.join("compare.json")).unwrap()).unwrap();
    (run, json)
}

#[test]
fn compare_a_model_with_itself_agrees_exactly() {
    let out = tempfile::tempdir().unwrap();
    let records = records_arg();
    let (run, json) = compare(FP32, FP32, out.path(), records);
    assert_eq!(json["sizes"]["ratio_a_over_b"].as_f64(), Some(1.0));
    assert_eq!(json["sizes"]["reduction_percent"].as_f64(), Some(0.0));
    let rows = json["agreement"].as_array().unwrap();
    let per_backend = if records == "0" { 1 } else { 2 };
    assert!(rows.len() >= per_backend, "{json}");
    for row in rows {
        assert_eq!(row["argmax_agreement"].as_f64(), Some(1.0), "{row}");
        assert_eq!(row["max_abs_logit_diff"].as_f64(), Some(0.0), "{row}");
    }
    assert!(rows.iter().any(|r| r["backend"] == "tract"));
    if records != "0" {
        assert!(rows.iter().any(|r| r["inputs"]
            .as_str()
            .unwrap()
            .starts_with("generator records (seed 8008")
            && r["n"] == 22));
    }
    assert!(
        run.stdout.contains("| 100.0 % (11/11) | 0 |"),
        "{}",
        run.stdout
    );
    assert!(!json["latency"].as_array().unwrap().is_empty());
}

#[test]
fn compare_fp32_and_int8_reports_the_measured_sizes() {
    let out = tempfile::tempdir().unwrap();
    let (run, json) = compare(FP32, INT8, out.path(), "0");
    let size = |m: &str| {
        std::fs::metadata(models().join(m).join(MODEL_FILE))
            .unwrap()
            .len()
    };
    let (a, b) = (size(FP32), size(INT8));
    assert!(
        run.stdout
            .contains(&format!("| {a} | {:.3} |", a as f64 / 1e6)),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains(&format!("| {b} | {:.3} |", b as f64 / 1e6)),
        "{}",
        run.stdout
    );
    let ratio = a as f64 / b as f64;
    let reduction = (1.0 - b as f64 / a as f64) * 100.0;
    assert!(
        run.stdout.contains(&format!(
            "B is **{ratio:.2}x** smaller than A (ratio A/B), a **{reduction:.1} %** reduction"
        )),
        "{}",
        run.stdout
    );
    assert_eq!(json["a"]["bytes"].as_u64(), Some(a));
    assert_eq!(json["b"]["bytes"].as_u64(), Some(b));
    assert!(
        ratio >= 2.5,
        "the int8 model must be >= 2.5x smaller ({ratio:.2}x)"
    );
    // Agreement and latency are computed: the two models differ a little, and every backend that
    // ran both has a latency row with a speedup.
    let rows = json["agreement"].as_array().unwrap();
    assert!(
        rows.iter()
            .all(|r| r["max_abs_logit_diff"].as_f64().unwrap() > 0.0),
        "{json}"
    );
    for l in json["latency"].as_array().unwrap() {
        assert!(l["speedup_p50"].as_f64().unwrap() > 0.0, "{l}");
        assert!(l["a_ms"]["p50"].as_f64().unwrap() > 0.0, "{l}");
    }
    let svg = std::fs::read_to_string(out.path().join("compare.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("batch-1 latency"),
        "{svg:.200}"
    );
    let md = std::fs::read_to_string(out.path().join("compare.md")).unwrap();
    assert!(
        md.contains("### Latency") && md.contains("| tract | A bearing-lstm |"),
        "{md}"
    );
}
