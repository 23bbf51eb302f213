//! The libats `ErrorRepresentation` error body (reference/reposerver.md §2.2):
//! `{"code","description","cause","errorId"}`.

use hyper::StatusCode;
use serde_json::{json, Value};

/// An HTTP error answered with the upstream error body.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The machine-readable `code` (upstream's `ErrorCode`).
    pub code: String,
    /// The human-readable `description`.
    pub description: String,
    /// `cause`: details (a list of errors, a remote error), or null.
    pub cause: Value,
}

impl ApiError {
    /// An error without a cause.
    pub fn new(status: StatusCode, code: &str, description: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.to_string(),
            description: description.into(),
            cause: Value::Null,
        }
    }

    /// The same error with `cause`.
    pub fn with_cause(mut self, cause: Value) -> Self {
        self.cause = cause;
        self
    }

    /// `400 invalid_entity`: a request body that does not decode.
    pub fn invalid_entity(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_entity", description)
    }

    /// `404 code`.
    pub fn not_found(code: &str, description: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, description)
    }

    /// `500 internal_server_error`: a failure of ours (I/O, signing), never the client's.
    pub fn internal(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            description,
        )
    }

    /// The error body as JSON.
    pub fn body(&self) -> Value {
        json!({
            "code": self.code,
            "description": self.description,
            "cause": self.cause,
            "errorId": error_id(),
        })
    }

    /// A keyserver error re-raised by the reposerver as `RemoteServiceError`: 502,
    /// same code and description, `cause` = the keyserver's whole error object.
    pub fn remote(inner: ApiError) -> Self {
        ApiError {
            status: StatusCode::BAD_GATEWAY,
            code: inner.code.clone(),
            description: inner.description.clone(),
            cause: inner.body(),
        }
    }
}

impl From<crate::Error> for ApiError {
    fn from(e: crate::Error) -> Self {
        ApiError::internal(e.to_string())
    }
}

/// A random UUID (version 4), as libats puts in `errorId`.
pub fn error_id() -> String {
    uuid_v4()
}

/// A random UUID, version 4 (repo ids, client ids, error ids); the nil-like
/// `00000000-0000-4000-8000-000000000000` if the system has no randomness.
pub fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    if crate::crypto::fill_random(&mut b).is_err() {
        return "00000000-0000-4000-8000-000000000000".into();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `n` random bytes as lower-case hex (tokens, upload ids, client secrets).
pub fn random_hex(n: usize) -> crate::Result<String> {
    let mut b = vec![0u8; n];
    crate::crypto::fill_random(&mut b)?;
    Ok(hex::encode(b))
}
