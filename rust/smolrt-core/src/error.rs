//! One error type for the whole core. Every error carries a stable [`ErrorCode`]; the Python,
//! gRPC and HTTP layers map codes (never message text) to their own error kinds.

use std::fmt;

/// Stable, machine-readable error codes. The string forms are part of the public API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The model file is missing, unreadable, malformed, hostile or of an unsupported architecture.
    ModelLoad,
    /// A request parameter or input is invalid (bad sampling values, prompt past the context...).
    InvalidRequest,
    /// A bounded resource is full (KV blocks, queue).
    ResourceExhausted,
    /// An id (sequence, session) that does not exist.
    NotFound,
    /// The request is valid but the target's state forbids it now (a session already busy).
    FailedPrecondition,
    /// The operation was cancelled.
    Cancelled,
    /// A bug: an invariant broke or a panic was caught.
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ModelLoad => "model_load",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::ResourceExhausted => "resource_exhausted",
            ErrorCode::NotFound => "not_found",
            ErrorCode::FailedPrecondition => "failed_precondition",
            ErrorCode::Cancelled => "cancelled",
            ErrorCode::Internal => "internal",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
    pub fn model_load(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ModelLoad, message)
    }
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }
    pub fn resource_exhausted(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ResourceExhausted, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for Error {}

/// candle errors only arise from our own tensor plumbing once a file has been validated, so they
/// are bugs, not user errors.
impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::internal(format!("tensor operation failed: {e}"))
    }
}
