//! What the tools' reports (`bench`, `model compare`) share: the description of the machine a
//! measurement ran on, and the short number forms of their tables.

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
