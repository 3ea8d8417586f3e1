//! Backend and registry tests on the real bundled model (`models/bearing-lstm`) and its reference
//! vectors, with the real ONNX Runtime when one is found (see `ort_lib`); without one they print a
//! note and pass (CI provides the library through the project venv or `PFD_ORT_LIB`).

use super::device::Device;
use super::error::ErrorKind;
use super::graph_info::ElementType;
use super::ort_lib;
use super::registry::NnRegistry;
use crate::eval::{argmax, closeness};
use crate::nn::ort_backend::{infer, OrtGraph, SessionOptions};
use crate::reference::Reference;
use pfd_core::card::MODEL_FILE;
use std::path::PathBuf;
use wasmtime_wasi_nn::backend::NamedTensor;
use wasmtime_wasi_nn::wit::TensorType;
use wasmtime_wasi_nn::{GraphRegistry as _, Tensor};

fn model_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/bearing-lstm")
}

/// The bundled graph on CPU with `sessions` sessions, or `None` (and a note) without ONNX Runtime.
fn graph(sessions: usize) -> Option<(OrtGraph, Reference)> {
    if let Err(e) = ort_lib::load(None) {
        eprintln!("note: no ONNX Runtime ({e:#}); skipping (set PFD_ORT_LIB or PFD_VENV)");
        return None;
    }
    let opts = SessionOptions {
        device: Device::Cpu,
        intra_threads: 1,
    };
    let g = OrtGraph::load(
        "bearing-lstm",
        &model_dir().join(MODEL_FILE),
        &opts,
        sessions,
    )
    .unwrap();
    Some((g, Reference::of_model(&model_dir()).unwrap()))
}

fn f32_tensor(dims: &[u32], values: &[f32]) -> Tensor {
    Tensor::new(
        dims.to_vec(),
        TensorType::Fp32,
        values.iter().flat_map(|x| x.to_le_bytes()).collect(),
    )
}

fn input(tensor: Tensor) -> Vec<NamedTensor> {
    vec![NamedTensor {
        name: "input".into(),
        tensor,
    }]
}

#[test]
fn metadata_describes_the_graph() {
    let Some((g, _)) = graph(2) else { return };
    let info = g.info();
    assert_eq!(info.name, "bearing-lstm");
    assert_eq!(info.device, Device::Cpu);
    assert_eq!(info.sessions, 2);
    assert_eq!(info.inputs.len(), 1);
    assert_eq!(info.inputs[0].name, "input");
    assert_eq!(info.inputs[0].dtype, ElementType::F32);
    assert_eq!(info.inputs[0].shape, [None, Some(1), None]);
    assert_eq!(info.outputs[0].name, "logits");
    assert_eq!(info.outputs[0].dtype, ElementType::F32);
    assert_eq!(info.outputs[0].shape.len(), 2);
    assert_eq!(info.outputs[0].shape[1], Some(11));
}

#[test]
fn reference_vectors_match_one_by_one_and_as_a_batch() {
    let Some((g, refs)) = graph(1) else { return };
    for (i, x) in refs.records().into_iter().enumerate() {
        let logits = infer(&g, &[x]).unwrap().remove(0);
        let c = closeness(&logits, &refs.logits[i], refs.rtol, refs.atol);
        let (ok, d) = (c.ok(), c.max_abs_diff);
        assert!(ok, "vector {i}: max diff {d}");
        assert_eq!(argmax(&logits), refs.predicted[i], "vector {i}");
    }
    let all = refs.records();
    let rows = infer(&g, &all).unwrap();
    assert_eq!(rows.len(), refs.count);
    for (i, row) in rows.iter().enumerate() {
        assert!(
            closeness(row, &refs.logits[i], refs.rtol, refs.atol).ok(),
            "batch row {i}"
        );
    }
}

#[test]
fn outputs_are_wasi_nn_tensors() {
    let Some((g, refs)) = graph(1) else { return };
    let out = g
        .run(input(f32_tensor(
            &[1, 1, refs.length as u32],
            refs.input(0),
        )))
        .unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].name, "logits");
    assert_eq!(out[0].tensor.ty, TensorType::Fp32);
    assert_eq!(out[0].tensor.dimensions, [1, 11]);
    assert_eq!(out[0].tensor.data.len(), 11 * 4);
}

#[test]
fn misaligned_input_bytes_are_decoded_not_rejected() {
    let Some((_, refs)) = graph(1) else { return };
    let model = std::fs::read(model_dir().join(MODEL_FILE)).unwrap();
    let opts = SessionOptions {
        device: Device::Cpu,
        intra_threads: 1,
    };
    let mut session = crate::nn::ort_backend::build_session(&model, &opts).unwrap();
    let bytes: Vec<u8> = refs.input(3).iter().flat_map(|x| x.to_le_bytes()).collect();
    let dims = vec![1i64, 1, refs.length as i64];
    // Aligned: viewed in place. At an odd address: decoded into a new buffer. Same answer.
    let mut padded = vec![0u8; bytes.len() + 1];
    padded[1..].copy_from_slice(&bytes);
    for data in [&bytes[..], &padded[1..]] {
        let value =
            crate::nn::ort_backend::view::<f32, 4>(dims.clone(), data, f32::from_le_bytes).unwrap();
        let out = session
            .run(vec![(std::borrow::Cow::Borrowed("input"), value)])
            .unwrap();
        let (_, logits) = out["logits"].try_extract_tensor::<f32>().unwrap();
        assert!(closeness(logits, &refs.logits[3], refs.rtol, refs.atol).ok());
    }
}

#[test]
fn malformed_inputs_are_clear_errors_not_panics() {
    let Some((g, refs)) = graph(1) else { return };
    let len = refs.length as u32;
    let x = refs.input(0);
    let cases: Vec<(&str, Vec<NamedTensor>, ErrorKind, &str)> = vec![
        (
            "wrong dtype",
            input(Tensor::new(
                vec![1, 1, len],
                TensorType::I32,
                vec![0; len as usize * 4],
            )),
            ErrorKind::InvalidArgument,
            "tensor type I32, but the graph expects FP32",
        ),
        (
            "FP16",
            input(Tensor::new(
                vec![1, 1, len],
                TensorType::Fp16,
                vec![0; len as usize * 2],
            )),
            ErrorKind::InvalidArgument,
            "FP16",
        ),
        (
            "wrong rank",
            input(f32_tensor(&[1, len], x)),
            ErrorKind::InvalidArgument,
            "2 dimensions",
        ),
        (
            "wrong fixed dimension",
            input(f32_tensor(&[1, 2, len / 2], x)),
            ErrorKind::InvalidArgument,
            "dimension 1 is 2, but the graph expects 1",
        ),
        (
            "data shorter than the shape",
            input(f32_tensor(&[2, 1, len], x)),
            ErrorKind::InvalidArgument,
            "bytes of data",
        ),
        (
            "overflowing dimensions",
            input(Tensor::new(
                vec![u32::MAX, 1, u32::MAX],
                TensorType::Fp32,
                vec![],
            )),
            ErrorKind::InvalidArgument,
            "too large",
        ),
        (
            "missing input",
            vec![],
            ErrorKind::InvalidArgument,
            "missing input \"input\"",
        ),
        (
            "unknown input name",
            vec![NamedTensor {
                name: "signal".into(),
                tensor: f32_tensor(&[1, 1, len], x),
            }],
            ErrorKind::InvalidArgument,
            "no input named \"signal\"",
        ),
        (
            "input given twice",
            input(f32_tensor(&[1, 1, len], x))
                .into_iter()
                .chain(input(f32_tensor(&[1, 1, len], x)))
                .collect(),
            ErrorKind::InvalidArgument,
            "given twice",
        ),
        (
            "too short for the model (ONNX Runtime refuses)",
            input(f32_tensor(&[1, 1, 4], &x[..4])),
            ErrorKind::RuntimeError,
            "ONNX Runtime failed",
        ),
    ];
    for (what, inputs, kind, needle) in cases {
        let Err(e) = g.run(inputs) else {
            panic!("{what}: accepted")
        };
        assert_eq!(e.kind, kind, "{what}: {e}");
        assert!(e.message.contains(needle), "{what}: {e}");
    }
    // The graph still serves after all that.
    assert!(g.run(input(f32_tensor(&[1, 1, len], x))).is_ok());
}

#[test]
fn concurrent_runs_share_the_pool() {
    let Some((g, refs)) = graph(2) else { return };
    std::thread::scope(|s| {
        for t in 0..6 {
            let (g, refs) = (&g, &refs);
            s.spawn(move || {
                for k in 0..4 {
                    let i = (t + k) % refs.count;
                    let logits = infer(g, &[refs.input(i)]).unwrap().remove(0);
                    assert!(closeness(&logits, &refs.logits[i], refs.rtol, refs.atol).ok());
                }
            });
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_under_block_in_place_on_the_server_runtime() {
    let Some((g, refs)) = graph(1) else { return };
    // As the server runs it: on a runtime worker, inside an async task.
    let logits = tokio::spawn(async move { infer(&g, &[refs.input(1)]).unwrap().remove(0) })
        .await
        .unwrap();
    assert_eq!(logits.len(), 11);
}

#[tokio::test(flavor = "current_thread")]
async fn runs_inline_on_a_current_thread_runtime() {
    let Some((g, refs)) = graph(1) else { return };
    assert_eq!(infer(&g, &[refs.input(1)]).unwrap()[0].len(), 11);
}

#[test]
fn the_registry_shares_graphs_by_name() {
    let Some((g, _)) = graph(1) else { return };
    let mut r = NnRegistry::new(Device::Cpu);
    assert_eq!(r.device(), None, "an empty registry serves on no device");
    r.insert(g);
    assert_eq!(r.names().collect::<Vec<_>>(), ["bearing-lstm"]);
    assert_eq!(r.device(), Some(Device::Cpu));
    assert!(r.get("bearing-lstm").is_some());
    assert!(r.get("nope").is_none());
    assert_eq!(r.info("bearing-lstm").unwrap().sessions, 1);
    // A graph handle from the registry makes execution contexts that compute.
    let ctx = r.get("bearing-lstm").unwrap().init_execution_context();
    assert!(ctx.is_ok());
}

#[test]
fn setup_loads_the_model_directory_once() {
    if ort_lib::load(None).is_err() {
        eprintln!("note: no ONNX Runtime; skipping");
        return;
    }
    let dir = model_dir().parent().unwrap().to_path_buf();
    let opts = crate::nn::NnOptions {
        enabled: true,
        device: crate::nn::DeviceRequest::Cpu,
        models: Some(vec!["bearing-lstm".into(), "not-there".into()]),
        sessions: 2,
        intra_threads: 1,
        ort_lib: None,
    };
    let s = crate::nn::setup(Some(&dir), &opts).unwrap();
    assert_eq!(s.device, Some(Device::Cpu));
    assert_eq!(s.registry.names().collect::<Vec<_>>(), ["bearing-lstm"]);
    // --device auto without CUDA (this build or this library) serves on CPU.
    let auto = crate::nn::NnOptions {
        device: crate::nn::DeviceRequest::Auto,
        ..opts.clone()
    };
    let s = crate::nn::setup(Some(&dir), &auto).unwrap();
    if !cfg!(feature = "cuda") {
        assert_eq!(s.device, Some(Device::Cpu));
    }
    // --device cuda without the feature fails the start with the reason.
    if !cfg!(feature = "cuda") {
        let cuda = crate::nn::NnOptions {
            device: crate::nn::DeviceRequest::Cuda,
            ..opts
        };
        let e = crate::nn::setup(Some(&dir), &cuda)
            .err()
            .expect("no CUDA here");
        assert!(format!("{e:#}").contains("cuda"), "{e:#}");
    }
}
