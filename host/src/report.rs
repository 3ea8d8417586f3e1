//! What the tools' reports (`bench`, `model compare`) share: the description of the machine a
//! measurement ran on, the short number forms of their tables, and their SVG bar charts
//! ([`bar_chart`]: labelled bars on a segmented axis, linear or log scale, drawn with plotters).

#[cfg(feature = "tools")]
pub use bars::{bar_chart, Bar, BarChart, BarStyle};

/// The machine a measurement ran on, as far as the OS tells.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    /// `/proc/cpuinfo`'s first `model name` (Linux).
    pub cpu: Option<String>,
    /// The cores this process may use.
    pub cores: usize,
    /// The 1-minute load average when the run started (`/proc/loadavg`): a busy machine explains
    /// a slow run.
    pub load_average: Option<String>,
}

impl Machine {
    pub fn detect() -> Machine {
        Machine {
            cpu: std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            }),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            load_average: std::fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|s| s.split_whitespace().next().map(str::to_string)),
        }
    }

    /// `<cpu model>, <n> cores available, <arch>` (the CPU model when known).
    pub fn describe(&self) -> String {
        let arch = std::env::consts::ARCH;
        match &self.cpu {
            Some(c) => format!("{c}, {} cores available, {arch}", self.cores),
            None => format!("{} cores available, {arch}", self.cores),
        }
    }
}

/// A float in a short human form: `0`, `3.1e-6`, `0.0123`, `1.234`.
pub fn short(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if !v.is_finite() {
        format!("{v}")
    } else if v.abs() < 1e-3 {
        format!("{v:.1e}")
    } else if v.abs() < 1.0 {
        format!("{v:.4}")
    } else {
        format!("{v:.3}")
    }
}

/// The bar charts (plotters is a `tools` dependency).
#[cfg(feature = "tools")]
mod bars {
    use anyhow::{anyhow, Result};
    use plotters::coord::ranged1d::{AsRangedCoord, Ranged, SegmentedCoord, ValueFormatter};
    use plotters::coord::types::RangedCoordusize;
    use plotters::coord::Shift;
    use plotters::prelude::*;

    /// One bar of a [`bar_chart`].
    #[derive(Debug, Clone)]
    pub struct Bar {
        pub label: String,
        pub value: f64,
        pub color: RGBColor,
    }

    /// How a [`bar_chart`] looks.
    pub struct BarStyle<'f> {
        pub caption: String,
        pub caption_size: u32,
        pub y_desc: &'static str,
        pub x_label_area: u32,
        pub y_label_area: u32,
        /// Pixels left blank on each side of a bar.
        pub bar_margin: u32,
        /// The y-axis labels (plotters' default when `None`).
        pub y_labels: Option<&'f dyn Fn(&f64) -> String>,
    }

    /// A chart of [`bar_chart`]'s: bars `0..n` on a segmented x axis.
    pub type BarChart<'a, DB, Y> =
        ChartContext<'a, DB, Cartesian2d<SegmentedCoord<RangedCoordusize>, Y>>;

    /// Draws `bars` from `base` up on `area` — caption, mesh with each bar's label under it, the
    /// filled bars — and returns the chart, for values, marks or a legend on top.
    pub fn bar_chart<'a, DB, Y, R>(
        area: &DrawingArea<DB, Shift>,
        style: &BarStyle,
        bars: &[Bar],
        y_range: R,
        base: f64,
    ) -> Result<BarChart<'a, DB, Y>>
    where
        DB: DrawingBackend + 'a,
        R: AsRangedCoord<CoordDescType = Y, Value = f64>,
        Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        let err = |e: &dyn std::fmt::Display| anyhow!("{e}");
        let mut chart = ChartBuilder::on(area)
            .caption(&style.caption, ("sans-serif", style.caption_size))
            .margin(12)
            .x_label_area_size(style.x_label_area)
            .y_label_area_size(style.y_label_area)
            .build_cartesian_2d((0..bars.len().saturating_sub(1)).into_segmented(), y_range)
            .map_err(|e| err(&e))?;
        let labels: Vec<&str> = bars.iter().map(|b| b.label.as_str()).collect();
        let x_labels = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                labels.get(*i).map(|l| l.to_string()).unwrap_or_default()
            }
            SegmentValue::Last => String::new(),
        };
        let mut mesh = chart.configure_mesh();
        mesh.disable_x_mesh()
            .y_desc(style.y_desc)
            .x_labels(bars.len())
            .x_label_formatter(&x_labels);
        if let Some(f) = style.y_labels {
            mesh.y_label_formatter(f);
        }
        mesh.draw().map_err(|e| err(&e))?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, b)| {
                let mut r = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), base),
                        (SegmentValue::Exact(i + 1), b.value),
                    ],
                    b.color.filled(),
                );
                r.set_margin(0, 0, style.bar_margin, style.bar_margin);
                r
            }))
            .map_err(|e| err(&e))?;
        Ok(chart)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_forms() {
        assert_eq!(short(0.0), "0");
        assert_eq!(short(3.1e-6), "3.1e-6");
        assert_eq!(short(0.012345), "0.0123");
        assert_eq!(short(1.23456), "1.235");
        assert_eq!(short(f64::INFINITY), "inf");
    }

    #[test]
    fn machine_description_names_the_cores_and_arch() {
        let m = Machine {
            cpu: Some("Some CPU".into()),
            cores: 2,
            load_average: None,
        };
        assert_eq!(
            m.describe(),
            format!("Some CPU, 2 cores available, {}", std::env::consts::ARCH)
        );
        let m = Machine { cpu: None, ..m };
        assert!(m.describe().starts_with("2 cores available"));
    }
}
