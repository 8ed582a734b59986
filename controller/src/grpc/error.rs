//! One mapping from controller errors to gRPC statuses.

use crate::store::StoreError;
use tonic::{Code, Status};

/// Every error an RPC handler can return. `kind()` is a stable label for
/// logs; the status code and message follow from the variant.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Protocol(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    DeadlineExceeded(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    ResourceExhausted(String),
    #[error("the controller's database failed: {0}")]
    Store(#[from] StoreError),
}

impl ApiError {
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::InvalidArgument(_) => "invalid_argument",
            ApiError::NotFound(_) => "not_found",
            ApiError::Protocol(_) => "protocol",
            ApiError::FailedPrecondition(_) => "failed_precondition",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::DeadlineExceeded(_) => "deadline_exceeded",
            ApiError::Unauthenticated(_) => "unauthenticated",
            ApiError::PermissionDenied(_) => "permission_denied",
            ApiError::AlreadyExists(_) => "already_exists",
            ApiError::ResourceExhausted(_) => "resource_exhausted",
            ApiError::Store(_) => "store",
        }
    }

    fn code(&self) -> Code {
        match self {
            ApiError::InvalidArgument(_) | ApiError::Protocol(_) => Code::InvalidArgument,
            ApiError::NotFound(_) => Code::NotFound,
            ApiError::FailedPrecondition(_) => Code::FailedPrecondition,
            ApiError::Unavailable(_) => Code::Unavailable,
            ApiError::DeadlineExceeded(_) => Code::DeadlineExceeded,
            ApiError::Unauthenticated(_) => Code::Unauthenticated,
            ApiError::PermissionDenied(_) => Code::PermissionDenied,
            ApiError::AlreadyExists(_) => Code::AlreadyExists,
            ApiError::ResourceExhausted(_) => Code::ResourceExhausted,
            ApiError::Store(_) => Code::Unavailable,
        }
    }
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        if let ApiError::Store(store) = &error {
            tracing::error!(kind = error.kind(), error = %store, "request failed");
        }
        Status::new(error.code(), error.to_string())
    }
}

impl From<super::limits::OverLimit> for ApiError {
    fn from(over: super::limits::OverLimit) -> Self {
        ApiError::ResourceExhausted(over.to_string())
    }
}
