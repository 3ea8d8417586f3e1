//! The wasi-nn error given back to the guest: a code and a message that names the problem.

/// The `wasi:nn/errors.error-code` of an [`NnError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The guest passed something the graph cannot take (wrong name, dtype, rank, shape, size).
    InvalidArgument,
    /// `load` with an encoding this host does not load.
    InvalidEncoding,
    /// No graph of that name.
    NotFound,
    /// A valid request this host does not support (FP16/BF16 tensors, guest-supplied graphs).
    UnsupportedOperation,
    /// ONNX Runtime failed.
    RuntimeError,
}

/// An error for the guest (the `wasi:nn/errors.error` resource).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NnError {
    pub kind: ErrorKind,
    pub message: String,
}

impl NnError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        NnError {
            kind,
            message: message.into(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::UnsupportedOperation, message)
    }
    pub fn runtime(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::RuntimeError, message)
    }
}

impl std::fmt::Display for NnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

impl std::error::Error for NnError {}

/// Carries an [`NnError`] through `wasmtime_wasi_nn`'s `BackendError` (the backend traits' error
/// type), so the WIT glue can recover the code and message.
impl From<NnError> for wasmtime_wasi_nn::backend::BackendError {
    fn from(e: NnError) -> Self {
        wasmtime_wasi_nn::backend::BackendError::BackendAccess(wasmtime::Error::from(e))
    }
}

/// The [`NnError`] inside a `BackendError`, or a runtime error describing any other failure (with
/// its whole cause chain, which `BackendError`'s own `Display` leaves out).
pub fn from_backend(e: &wasmtime_wasi_nn::backend::BackendError) -> NnError {
    use wasmtime_wasi_nn::backend::BackendError;
    match e {
        BackendError::BackendAccess(inner) => match inner.downcast_ref::<NnError>() {
            Some(nn) => nn.clone(),
            None => NnError::runtime(format!("{inner:#}")),
        },
        other => {
            let mut msg = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(s) = source {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                source = s.source();
            }
            NnError::runtime(msg)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_the_trip_through_backend_error() {
        let e = NnError::invalid("input \"x\": wrong shape");
        let back: wasmtime_wasi_nn::backend::BackendError = e.clone().into();
        assert_eq!(from_backend(&back), e);
        let other = wasmtime_wasi_nn::backend::BackendError::UnsupportedTensorType("FP16".into());
        let got = from_backend(&other);
        assert_eq!(got.kind, ErrorKind::RuntimeError);
        assert!(got.message.contains("FP16"), "{got}");
    }
}
