//! The bench's report: the machine description, the Markdown table (`bench.md`) with each path's
//! ratios to the baseline, and the SVG plot (`bench.svg`).

use super::args::BenchArgs;
use super::results::{PathResult, TARGET_RATIO};
use crate::eval::percentile;
use crate::nn::Device;
use crate::report::{bar_chart, Bar, BarStyle, Machine};
use anyhow::{anyhow, Result};
use serde_json::{json, Value};
use std::path::Path;

/// What `bench.json` and `bench.md` say about the run's machine and ONNX Runtime.
pub(super) fn machine_description(
    version: &str,
    lib: &Path,
    device: Device,
    opts: &crate::nn::NnOptions,
    concurrency: u32,
) -> Value {
    let machine = Machine::detect();
    let cpu = machine
        .cpu
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let load_average = machine.load_average.unwrap_or_else(|| "?".into());
    json!({
        "cpu": cpu,
        "load_average": load_average,
        "cores": machine.cores,
        "os": std::env::consts::OS,
        "onnxruntime": version,
        "onnxruntime_library": lib.display().to_string(),
        "device": device.as_str(),
        "sessions_per_graph": opts.sessions,
        "intra_op_threads": opts.intra_threads,
        "concurrency": concurrency,
        "pfd_host": env!("CARGO_PKG_VERSION"),
    })
}

pub(super) fn markdown(results: &[PathResult], machine: &Value, args: &BenchArgs) -> String {
    let base = &results[0];
    let m = |k: &str| {
        machine
            .get(k)
            .map(|v| v.to_string().trim_matches('"').to_string())
            .unwrap_or_default()
    };
    let mut out = String::new();
    out.push_str("# pfd-host bench\n\n");
    out.push_str(&format!(
        "Machine: {} ({} cores, load average {} at start), ONNX Runtime {} on {} ({} session(s) per graph, {} intra-op thread(s)); \
         {} `/predict` and {} `/predict/batch` (batch {}) requests per path, latency with 1 client, \
         throughput with {} clients; loopback.\n\n",
        m("cpu"), m("cores"), m("load_average"), m("onnxruntime"), m("device"), m("sessions_per_graph"), m("intra_op_threads"),
        args.requests, args.batch_requests, args.batch, m("concurrency"),
    ));
    out.push_str(
        "Model time: the guest's `inference_time_ms` (`total_inference_time_ms` for a batch); \
                  for the baseline, one in-process `Session::run` (tensor in, logits out) in a tight loop. \
                  Host compute: pfd-host's own time in wasi-nn `compute` (validation, ONNX Runtime run, \
                  output), from its debug log; the rest of the wasi-nn model time is the tensor's trip \
                  between guest and host. Ratios are to the baseline's p50 for the same batch size.\n\n",
    );
    out.push_str("| path | route | backend | e2e p50 ms | e2e p99 ms | model p50 ms | model p99 ms | host compute p50 ms | model / baseline | e2e / baseline | throughput req/s | signals/s | reference vectors |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in results {
        for (route, s, b) in [
            ("/predict", &r.single, &base.single),
            ("/predict/batch", &r.batch, &base.batch),
        ] {
            let route = if r.key == "native-ort" {
                format!("run, batch {}", s.signals)
            } else {
                format!("`{route}` ({})", s.signals)
            };
            out.push_str(&format!(
                "| {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {:.2}x | {:.2}x | {:.1} | {:.1} | {}/{}{} |\n",
                r.label,
                route,
                r.backend,
                s.e2e(50.0),
                s.e2e(99.0),
                s.model(50.0),
                s.model(99.0),
                if s.host_compute_ms.is_empty() {
                    "—".to_string()
                } else {
                    format!("{:.3}", percentile(&s.host_compute_ms, 50.0).unwrap_or(f64::NAN))
                },
                s.model(50.0) / b.model(50.0),
                s.e2e(50.0) / b.model(50.0),
                s.throughput_rps,
                s.throughput_rps * s.signals as f64,
                r.classes_ok,
                r.classes_total,
                if r.correct { "" } else { " **MISMATCH**" },
            ));
        }
    }
    if let Some(nn) = results.iter().find(|r| r.key == "wasi-nn") {
        let one = nn.single.model(50.0) / base.single.model(50.0);
        let many = nn.batch.model(50.0) / base.batch.model(50.0);
        let verdict = |x: f64| if x <= TARGET_RATIO { "met" } else { "NOT met" };
        out.push_str(&format!(
            "\nTarget — wasi-nn model time within {TARGET_RATIO}x of in-process ONNX Runtime: \
             batch 1 {one:.2}x ({}), batch {} {many:.2}x ({}).\n",
            verdict(one),
            nn.batch.signals,
            verdict(many)
        ));
    }
    out
}

/// Bars per path: p50 host compute (wasi-nn), model and end-to-end time; one panel per route; log
/// scale.
pub(super) fn plot(results: &[PathResult], path: &Path, batch: usize) -> Result<()> {
    use plotters::prelude::*;
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    let root = SVGBackend::new(path, (1200, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root
        .titled("pfd-host: p50 latency (ms, log scale)", ("sans-serif", 22))
        .map_err(|e| err(&e))?;
    let panels = root.split_evenly((1, 2));
    let colors = [
        RGBColor(90, 90, 90),
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
    ];
    for (panel, (title, pick)) in panels.iter().zip([
        ("/predict (1 signal)".to_string(), 0usize),
        (format!("/predict/batch ({batch} signals)"), 1usize),
    ]) {
        // Bars: for each path, model p50 then (for servers) end-to-end p50.
        let mut bars: Vec<Bar> = Vec::new();
        let mut bar = |label: String, value: f64, color: RGBColor| {
            bars.push(Bar {
                label,
                value,
                color,
            })
        };
        for (i, r) in results.iter().enumerate() {
            let s = if pick == 0 { &r.single } else { &r.batch };
            let c = colors[i % colors.len()];
            if r.key == "native-ort" {
                bar("ORT in-process".into(), s.model(50.0), c);
            } else {
                if !s.host_compute_ms.is_empty() {
                    let host = percentile(&s.host_compute_ms, 50.0).unwrap_or(f64::NAN);
                    bar(format!("{} host", r.key), host, darken(c));
                }
                bar(format!("{} model", r.key), s.model(50.0), c);
                bar(format!("{} e2e", r.key), s.e2e(50.0), lighten(c));
            }
        }
        let max = bars
            .iter()
            .map(|b| b.value)
            .fold(f64::MIN_POSITIVE, f64::max)
            * 3.0;
        let min = bars
            .iter()
            .map(|b| b.value)
            .filter(|v| *v > 0.0)
            .fold(f64::MAX, f64::min)
            / 3.0;
        let y_labels = |v: &f64| {
            let s = format!("{v:.3}");
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        };
        let style = BarStyle {
            caption: title,
            caption_size: 18,
            y_desc: "ms",
            x_label_area: 60,
            y_label_area: 60,
            bar_margin: 8,
            y_labels: Some(&y_labels),
        };
        let mut chart =
            bar_chart(panel, &style, &bars, (min..max).log_scale(), min).map_err(|e| err(&e))?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, b)| {
                Text::new(
                    format!("{:.3}", b.value),
                    (SegmentValue::CenterOf(i), b.value * 1.15),
                    ("sans-serif", 13).into_font(),
                )
            }))
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// Halfway to black: the host-compute bar before its path's model-time bar.
fn darken(c: plotters::style::RGBColor) -> plotters::style::RGBColor {
    plotters::style::RGBColor(c.0 / 2, c.1 / 2, c.2 / 2)
}

/// Halfway to white: the end-to-end bar next to its path's model-time bar.
fn lighten(c: plotters::style::RGBColor) -> plotters::style::RGBColor {
    let up = |x: u8| x + (255 - x) / 2;
    plotters::style::RGBColor(up(c.0), up(c.1), up(c.2))
}

#[cfg(test)]
mod tests {
    use super::super::results::Series;
    use super::*;
    use crate::config::{NnArgs, Switch};
    use crate::nn::{Device, DeviceRequest};
    use std::path::PathBuf;

    fn series(model: f64, e2e: f64, signals: usize, host: bool) -> Series {
        Series {
            e2e_ms: (0..100).map(|i| e2e + i as f64 * 0.01).collect(),
            model_ms: (0..100).map(|i| model + i as f64 * 0.001).collect(),
            throughput_rps: 100.0 / signals as f64,
            signals,
            host_compute_ms: if host { vec![model * 0.8] } else { vec![] },
        }
    }

    fn result(key: &'static str, model: f64, e2e: f64, correct: bool) -> PathResult {
        PathResult {
            key,
            label: key.to_string(),
            backend: format!("{key}/cpu"),
            single: series(model, e2e, 1, key == "wasi-nn"),
            batch: series(model * 30.0, e2e * 30.0, 32, key == "wasi-nn"),
            classes_ok: if correct { 11 } else { 10 },
            classes_total: 11,
            max_confidence_err: 0.0,
            correct,
        }
    }

    #[test]
    fn table_and_plot() {
        let results = vec![
            result("native-ort", 0.7, 0.7, true),
            result("wasi-nn", 0.8, 12.0, true),
            result("tract", 4.0, 16.0, false),
        ];
        let args = BenchArgs {
            requests: 100,
            batch_requests: 10,
            batch: 32,
            concurrency: Some(2),
            warmup: 1,
            out: PathBuf::from("unused"),
            manifest: PathBuf::from("spin.toml"),
            nn_component: PathBuf::from("x"),
            tract_component: PathBuf::from("y"),
            model: "m".into(),
            models_dir: PathBuf::from("models"),
            floor: None,
            diagnose_floor: None,
            diagnose_query: String::new(),
            diagnose_content_type: "audio/wav".into(),
            floor_seconds: 5.0,
            nn: NnArgs {
                device: DeviceRequest::Cpu,
                nn: Switch::On,
                nn_models: None,
                nn_sessions: None,
                nn_intra_threads: 1,
                ort: Default::default(),
            },
        };
        let opts = args.nn.options();
        let machine = machine_description("1.22.1", Path::new("/lib.so"), Device::Cpu, &opts, 2);
        let md = markdown(&results, &machine, &args);
        assert!(
            md.contains("| wasi-nn | `/predict` (1) | wasi-nn/cpu |"),
            "{md}"
        );
        assert!(md.contains("| 1.13x |"), "wasi-nn model ratio: {md}");
        assert!(md.contains("batch 1 1.13x (met)"), "{md}");
        assert!(md.contains("10/11 **MISMATCH**"), "{md}");
        let dir = tempfile::tempdir().unwrap();
        let svg = dir.path().join("bench.svg");
        plot(&results, &svg, 32).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.starts_with("<svg"));
        assert!(text.contains("wasi-nn model") && text.contains("tract e2e"));
        if let Some(keep) = std::env::var_os("PFD_BENCH_TEST_SVG") {
            std::fs::copy(&svg, keep).unwrap();
        }
    }
}
