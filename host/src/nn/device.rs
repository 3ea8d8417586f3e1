//! The device serving wasi-nn graphs: what the operator asks for, and what serves.

/// The device the operator asks for (`--device` / `PFD_DEVICE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceRequest {
    /// ONNX Runtime's CPU execution provider.
    Cpu,
    /// ONNX Runtime's CUDA execution provider; the start fails if it is unavailable.
    Cuda,
    /// CUDA when available, else CPU (with a warning).
    Auto,
}

/// The device that actually serves the graphs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Cpu,
    Cuda,
}

impl Device {
    /// `cpu` / `cuda`: the value of the guest's `PFD_NN_DEVICE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
