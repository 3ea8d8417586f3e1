//! What an ONNX file declares, read from its protobuf with tract-onnx's prost-generated types
//! (`tract_onnx::pb`), and the structural checks pfd-edge needs of it.

use prost::Message as _;
use std::collections::{BTreeMap, BTreeSet};
use tract_onnx::pb;

/// The smallest default-domain opset pfd-edge accepts.
pub const MIN_OPSET: i64 = 14;
/// The input tensor pfd-edge feeds.
pub const INPUT_NAME: &str = "input";
/// The output tensor pfd-edge reads.
pub const OUTPUT_NAME: &str = "logits";

/// Decodes an `.onnx` file. Every failure — an empty file, bytes that are not a protobuf, a
/// truncated file, a protobuf that is not an ONNX model — is an error message, never a panic.
pub fn decode(bytes: &[u8]) -> Result<pb::ModelProto, String> {
    if bytes.is_empty() {
        return Err("the file is empty".into());
    }
    let model = pb::ModelProto::decode(bytes).map_err(|e| {
        format!(
            "protobuf decoding failed ({e}): the file is truncated, corrupted or not an ONNX model"
        )
    })?;
    if model.graph.is_none() {
        return Err(
            "the protobuf has no graph: not an ONNX model (or cut off before its graph)".into(),
        );
    }
    if model.ir_version <= 0 {
        return Err("the protobuf has no ir_version: not an ONNX model".into());
    }
    Ok(model)
}

/// One axis of a declared shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    Value(i64),
    Param(String),
    Unknown,
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dim::Value(v) => write!(f, "{v}"),
            Dim::Param(p) => f.write_str(p),
            Dim::Unknown => f.write_str("?"),
        }
    }
}

/// A graph input or output as declared.
#[derive(Debug, Clone)]
pub struct Decl {
    pub name: String,
    /// ONNX `TensorProto.DataType` (1 = float32); 0 when not a tensor or undeclared.
    pub elem_type: i32,
    /// `None` when the shape is not declared.
    pub dims: Option<Vec<Dim>>,
}

impl Decl {
    fn from_proto(v: &pb::ValueInfoProto) -> Decl {
        let tensor = v.r#type.as_ref().and_then(|t| match &t.value {
            Some(pb::type_proto::Value::TensorType(t)) => Some(t),
            _ => None,
        });
        let dims = tensor.and_then(|t| t.shape.as_ref()).map(|s| {
            s.dim
                .iter()
                .map(|d| match &d.value {
                    Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) => Dim::Value(*v),
                    Some(pb::tensor_shape_proto::dimension::Value::DimParam(p))
                        if !p.is_empty() =>
                    {
                        Dim::Param(p.clone())
                    }
                    _ => Dim::Unknown,
                })
                .collect()
        });
        Decl {
            name: v.name.clone(),
            elem_type: tensor.map_or(0, |t| t.elem_type),
            dims,
        }
    }

    /// `float32 [batch, 1, length]`.
    pub fn describe(&self) -> String {
        let shape = match &self.dims {
            Some(d) => format!(
                "[{}]",
                d.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => "(no shape)".into(),
        };
        format!("{} {shape}", dtype_name(self.elem_type))
    }
}

/// ONNX element type names.
pub fn dtype_name(t: i32) -> &'static str {
    match t {
        0 => "undefined",
        1 => "float32",
        2 => "uint8",
        3 => "int8",
        4 => "uint16",
        5 => "int16",
        6 => "int32",
        7 => "int64",
        8 => "string",
        9 => "bool",
        10 => "float16",
        11 => "float64",
        12 => "uint32",
        13 => "uint64",
        16 => "bfloat16",
        _ => "other",
    }
}

/// An operator as used in the graph.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct OpType {
    /// `""` for the default (ai.onnx) domain.
    pub domain: String,
    pub op_type: String,
}

impl std::fmt::Display for OpType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.domain.is_empty() {
            f.write_str(&self.op_type)
        } else {
            write!(f, "{}:{}", self.domain, self.op_type)
        }
    }
}

/// The facts validate and compare use.
#[derive(Debug, Clone)]
pub struct Summary {
    pub ir_version: i64,
    pub producer: String,
    /// `(domain, version)`; the default domain as `""`.
    pub opsets: Vec<(String, i64)>,
    /// Graph inputs that are not initializers.
    pub inputs: Vec<Decl>,
    pub outputs: Vec<Decl>,
    /// Every op of the graph and its subgraphs, with counts.
    pub ops: BTreeMap<OpType, usize>,
    pub nodes: usize,
    pub initializers: usize,
    /// Elements of all initializers (weights, scales, zero points…).
    pub initializer_elements: u64,
    /// Initializer elements by element type name.
    pub elements_by_dtype: BTreeMap<&'static str, u64>,
    /// Node inputs of the main graph that no graph input, initializer or node output defines.
    pub undefined_inputs: Vec<String>,
}

fn norm_domain(d: &str) -> String {
    if d == "ai.onnx" {
        String::new()
    } else {
        d.to_string()
    }
}

impl Summary {
    pub fn of(model: &pb::ModelProto) -> Summary {
        let empty = pb::GraphProto::default();
        let graph = model.graph.as_ref().unwrap_or(&empty);
        let init_names: BTreeSet<&str> = graph
            .initializer
            .iter()
            .map(|t| t.name.as_str())
            .chain(
                graph
                    .sparse_initializer
                    .iter()
                    .filter_map(|s| s.values.as_ref().map(|v| v.name.as_str())),
            )
            .collect();
        let mut defined: BTreeSet<&str> = init_names.clone();
        defined.extend(graph.input.iter().map(|i| i.name.as_str()));
        for n in &graph.node {
            defined.extend(n.output.iter().map(String::as_str));
        }
        let mut undefined = BTreeSet::new();
        for n in &graph.node {
            for i in &n.input {
                if !i.is_empty() && !defined.contains(i.as_str()) {
                    undefined.insert(i.clone());
                }
            }
        }
        for o in &graph.output {
            if !defined.contains(o.name.as_str()) {
                undefined.insert(o.name.clone());
            }
        }
        let mut ops = BTreeMap::new();
        let mut nodes = 0;
        count_ops(graph, &mut ops, &mut nodes);
        let mut elements_by_dtype = BTreeMap::new();
        let mut initializer_elements = 0u64;
        for t in &graph.initializer {
            let n: u64 = t.dims.iter().map(|&d| d.max(0) as u64).product();
            initializer_elements += n;
            *elements_by_dtype
                .entry(dtype_name(t.data_type))
                .or_insert(0) += n;
        }
        Summary {
            ir_version: model.ir_version,
            producer: format!("{} {}", model.producer_name, model.producer_version)
                .trim()
                .to_string(),
            opsets: model
                .opset_import
                .iter()
                .map(|o| (norm_domain(&o.domain), o.version))
                .collect(),
            inputs: graph
                .input
                .iter()
                .filter(|i| !init_names.contains(i.name.as_str()))
                .map(Decl::from_proto)
                .collect(),
            outputs: graph.output.iter().map(Decl::from_proto).collect(),
            ops,
            nodes,
            initializers: graph.initializer.len() + graph.sparse_initializer.len(),
            initializer_elements,
            elements_by_dtype,
            undefined_inputs: undefined.into_iter().collect(),
        }
    }

    /// The default domain's opset version.
    pub fn default_opset(&self) -> Option<i64> {
        self.opsets
            .iter()
            .filter(|(d, _)| d.is_empty())
            .map(|(_, v)| *v)
            .max()
    }

    /// `Add×2, Conv×3, …`.
    pub fn ops_line(&self) -> String {
        self.ops
            .iter()
            .map(|(op, n)| {
                if *n == 1 {
                    op.to_string()
                } else {
                    format!("{op}×{n}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The class count declared by `logits` (its last axis), when fixed.
    #[cfg(test)]
    pub fn declared_classes(&self) -> Option<i64> {
        let out = self.outputs.iter().find(|o| o.name == OUTPUT_NAME)?;
        match out.dims.as_ref()?.last()? {
            Dim::Value(v) => Some(*v),
            _ => None,
        }
    }
}

fn count_ops(graph: &pb::GraphProto, ops: &mut BTreeMap<OpType, usize>, nodes: &mut usize) {
    for n in &graph.node {
        *nodes += 1;
        *ops.entry(OpType {
            domain: norm_domain(&n.domain),
            op_type: n.op_type.clone(),
        })
        .or_insert(0) += 1;
        for a in &n.attribute {
            if let Some(g) = &a.g {
                count_ops(g, ops, nodes);
            }
            for g in &a.graphs {
                count_ops(g, ops, nodes);
            }
        }
    }
}

/// Severity of a check line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    Info,
    Warn,
    Fail,
}

impl Level {
    pub fn label(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Check {
    pub level: Level,
    pub text: String,
}

impl Check {
    pub fn new(level: Level, text: impl Into<String>) -> Check {
        Check {
            level,
            text: text.into(),
        }
    }
}

/// The structural checks: opset, input, output (with `classes` from the card), graph integrity,
/// op list. `classes_from` names where `classes` comes from (for the messages).
pub fn structure_checks(s: &Summary, classes: usize, classes_from: &str) -> Vec<Check> {
    use Level::*;
    let mut out = Vec::new();

    // opset
    let others: Vec<String> = s
        .opsets
        .iter()
        .filter(|(d, _)| !d.is_empty())
        .map(|(d, v)| format!("{d} {v}"))
        .collect();
    let others = if others.is_empty() {
        String::new()
    } else {
        format!("; other domains: {}", others.join(", "))
    };
    match s.default_opset() {
        None => out.push(Check::new(
            Fail,
            "opset: the model imports no default-domain (ai.onnx) opset",
        )),
        Some(v) if v < MIN_OPSET => out.push(Check::new(
            Fail,
            format!(
                "opset: ai.onnx opset {v} is older than {MIN_OPSET} (re-export with opset_version >= {MIN_OPSET}){others}"
            ),
        )),
        Some(v) => out.push(Check::new(
            Ok,
            format!(
                "ONNX IR {}, ai.onnx opset {v} (>= {MIN_OPSET}){others}; producer: {}",
                s.ir_version,
                if s.producer.is_empty() { "?" } else { &s.producer }
            ),
        )),
    }

    // input
    let names = |v: &[Decl]| {
        v.iter()
            .map(|d| format!("`{}`", d.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match s.inputs.iter().find(|i| i.name == INPUT_NAME) {
        None => out.push(Check::new(
            Fail,
            format!(
                "input: the model has no input named `{INPUT_NAME}` (its inputs: {})",
                if s.inputs.is_empty() {
                    "none".into()
                } else {
                    names(&s.inputs)
                }
            ),
        )),
        Some(i) => {
            let mut problems = Vec::new();
            if s.inputs.len() > 1 {
                problems.push(format!(
                    "the model has {} inputs ({}); pfd-edge feeds only `{INPUT_NAME}`",
                    s.inputs.len(),
                    names(&s.inputs)
                ));
            }
            if i.elem_type != 1 {
                problems.push(format!(
                    "dtype is {}, expected float32",
                    dtype_name(i.elem_type)
                ));
            }
            match &i.dims {
                None => problems.push("no declared shape (expected [batch, 1, length])".into()),
                Some(d) if d.len() != 3 => {
                    problems.push(format!("rank {} (expected 3: [batch, 1, length])", d.len()))
                }
                Some(d) => {
                    if let Dim::Value(v) = d[0] {
                        problems.push(format!(
                            "the batch axis is fixed to {v} (export with a dynamic batch axis)"
                        ));
                    }
                    if let Dim::Value(v) = d[1] {
                        if v != 1 {
                            problems.push(format!("the channel axis is {v}, expected 1"));
                        }
                    }
                    if let Dim::Value(v) = d[2] {
                        problems.push(format!(
                            "the length axis is fixed to {v} (export with a dynamic length axis)"
                        ));
                    }
                }
            }
            if problems.is_empty() {
                out.push(Check::new(
                    Ok,
                    format!(
                        "input `{INPUT_NAME}` {}: batch and length axes dynamic",
                        i.describe()
                    ),
                ));
            } else {
                out.push(Check::new(
                    Fail,
                    format!(
                        "input `{INPUT_NAME}` {}: {}",
                        i.describe(),
                        problems.join("; ")
                    ),
                ));
            }
        }
    }

    // output
    match s.outputs.iter().find(|o| o.name == OUTPUT_NAME) {
        None => out.push(Check::new(
            Fail,
            format!(
                "output: the model has no output named `{OUTPUT_NAME}` (its outputs: {})",
                if s.outputs.is_empty() {
                    "none".into()
                } else {
                    names(&s.outputs)
                }
            ),
        )),
        Some(o) => {
            let mut problems = Vec::new();
            let mut warnings = Vec::new();
            if o.elem_type != 1 {
                problems.push(format!(
                    "dtype is {}, expected float32",
                    dtype_name(o.elem_type)
                ));
            }
            match &o.dims {
                None => problems.push("no declared shape (expected [batch, classes])".into()),
                Some(d) if d.len() != 2 => {
                    problems.push(format!("rank {} (expected 2: [batch, classes])", d.len()))
                }
                Some(d) => {
                    if let Dim::Value(v) = d[0] {
                        problems.push(format!("the batch axis is fixed to {v}"));
                    }
                    match d[1] {
                        Dim::Value(v) if v as usize != classes => problems.push(format!(
                            "{v} classes, but {classes_from} has {classes}"
                        )),
                        Dim::Value(_) => {}
                        _ => warnings.push(format!(
                            "the class axis is not fixed (checked at inference against {classes_from}'s {classes})"
                        )),
                    }
                }
            }
            if s.outputs.len() > 1 {
                warnings.push(format!(
                    "{} outputs ({}): only `{OUTPUT_NAME}` is read",
                    s.outputs.len(),
                    names(&s.outputs)
                ));
            }
            if !problems.is_empty() {
                out.push(Check::new(
                    Fail,
                    format!(
                        "output `{OUTPUT_NAME}` {}: {}",
                        o.describe(),
                        problems.join("; ")
                    ),
                ));
            } else {
                out.push(Check::new(
                    Ok,
                    format!(
                        "output `{OUTPUT_NAME}` {}: {classes} classes = {classes_from}",
                        o.describe()
                    ),
                ));
            }
            for w in warnings {
                out.push(Check::new(Warn, format!("output: {w}")));
            }
        }
    }

    // graph integrity
    if s.undefined_inputs.is_empty() {
        out.push(Check::new(
            Ok,
            format!(
                "graph: {} nodes, {} initializers ({} elements: {}), every node input defined",
                s.nodes,
                s.initializers,
                s.initializer_elements,
                s.elements_by_dtype
                    .iter()
                    .map(|(t, n)| format!("{n} {t}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    } else {
        let shown: Vec<&str> = s
            .undefined_inputs
            .iter()
            .take(8)
            .map(String::as_str)
            .collect();
        out.push(Check::new(
            Fail,
            format!(
                "graph: {} tensor(s) used but defined nowhere ({}{}): a truncated or hand-edited file?",
                s.undefined_inputs.len(),
                shown.join(", "),
                if s.undefined_inputs.len() > shown.len() { ", …" } else { "" }
            ),
        ));
    }
    out.push(Check::new(Info, format!("ops: {}", s.ops_line())));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundled() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../models/bearing-lstm/model.onnx"
        ))
        .unwrap()
    }

    #[test]
    fn the_bundled_model_passes() {
        let m = decode(&bundled()).unwrap();
        let s = Summary::of(&m);
        assert_eq!(s.default_opset(), Some(17));
        assert_eq!(s.declared_classes(), Some(11));
        assert!(s.undefined_inputs.is_empty());
        let checks = structure_checks(&s, 11, "the card");
        assert!(checks.iter().all(|c| c.level != Level::Fail), "{checks:?}");
        assert!(s.ops.keys().any(|o| o.op_type == "LSTM"));
    }

    #[test]
    fn garbage_and_truncation_are_errors() {
        assert!(decode(b"").unwrap_err().contains("empty"));
        assert!(decode(b"not an onnx file at all").is_err());
        let bytes = bundled();
        for cut in [1, 10, 100, bytes.len() / 2, bytes.len() - 3] {
            let r = decode(&bytes[..cut]);
            // Either the protobuf cannot be decoded, or what decodes is missing parts that the
            // structural checks catch.
            if let Ok(m) = r {
                let s = Summary::of(&m);
                let checks = structure_checks(&s, 11, "the card");
                assert!(
                    checks.iter().any(|c| c.level == Level::Fail),
                    "cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn wrong_names_classes_and_static_axes_fail() {
        let mut m = decode(&bundled()).unwrap();
        let g = m.graph.as_mut().unwrap();
        g.output[0].name = "probs".into();
        let s = Summary::of(&m);
        let text: Vec<String> = structure_checks(&s, 11, "the card")
            .into_iter()
            .filter(|c| c.level == Level::Fail)
            .map(|c| c.text)
            .collect();
        assert!(
            text.iter().any(|t| t.contains("no output named `logits`")),
            "{text:?}"
        );

        let m = decode(&bundled()).unwrap();
        let s = Summary::of(&m);
        let fails: Vec<String> = structure_checks(&s, 10, "the card")
            .into_iter()
            .filter(|c| c.level == Level::Fail)
            .map(|c| c.text)
            .collect();
        assert!(
            fails[0].contains("11 classes, but the card has 10"),
            "{fails:?}"
        );

        let mut m = decode(&bundled()).unwrap();
        let input = &mut m.graph.as_mut().unwrap().input[0];
        if let Some(pb::type_proto::Value::TensorType(t)) =
            input.r#type.as_mut().and_then(|t| t.value.as_mut())
        {
            t.shape.as_mut().unwrap().dim[2].value =
                Some(pb::tensor_shape_proto::dimension::Value::DimValue(102400));
        }
        let s = Summary::of(&m);
        let fails: Vec<String> = structure_checks(&s, 11, "the card")
            .into_iter()
            .filter(|c| c.level == Level::Fail)
            .map(|c| c.text)
            .collect();
        assert!(fails[0].contains("length axis is fixed"), "{fails:?}");
    }
}
