//! One error type for the library. Every variant carries what a user needs to act:
//! the file, the JSON field, the role or the key id. [`Error::exit_code`] maps each
//! variant onto garage-sign 0.7.7's exit codes (reference/garage-sign.md §1.1).

use std::path::{Path, PathBuf};

/// garage-sign's exit codes.
pub mod exit {
    pub const OK: i32 = 0;
    /// An explained error (PastDate, invalid_root_role, TargetsPullError, ...).
    pub const EXPLAINED: i32 = 1;
    /// `targets push` got 412 `role_checksum_mismatch` or 428.
    pub const CHECKSUM: i32 = 2;
    /// Any other error.
    pub const OTHER: i32 = 3;
    /// The command line could not be parsed.
    pub const USAGE: i32 = 255;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Malformed input: `what` names the file and/or JSON field.
    #[error("{what}: {message}")]
    Invalid { what: String, message: String },

    /// A key could not be read, written or used.
    #[error("key {key}: {message}")]
    Key { key: String, message: String },

    /// Signatures or the root chain did not verify.
    #[error("{role}: {message}")]
    Verification { role: String, message: String },

    /// The computed expiry lies in the past and `--force` was not given.
    #[error("The metadata expiration date lies in the past ({expires}), use --force if you want to force this date")]
    PastDate { expires: String },

    /// Errors garage-sign explains and exits 1 for (e.g. TargetsPullError, invalid_root_role).
    #[error("{0}")]
    Explained(String),

    /// 412/428 on push: someone else pushed since our pull.
    #[error("{0}")]
    ChecksumConflict(String),

    /// Transport errors and unexpected server answers.
    #[error("{method} {url}: {message}")]
    Http {
        method: String,
        url: String,
        message: String,
    },

    /// A command-line combination garage-sign refuses at parse time.
    #[error("{0}")]
    Usage(String),

    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    pub fn invalid(what: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            what: what.into(),
            message: message.into(),
        }
    }

    pub fn key(key: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Key {
            key: key.into(),
            message: message.into(),
        }
    }

    pub fn verification(role: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Verification {
            role: role.into(),
            message: message.into(),
        }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::PastDate { .. } | Error::Explained(_) => exit::EXPLAINED,
            Error::ChecksumConflict(_) => exit::CHECKSUM,
            Error::Usage(_) => exit::USAGE,
            _ => exit::OTHER,
        }
    }
}

/// Attach a path to I/O results, as cargo does: every I/O error says which file.
pub trait IoContext<T> {
    fn with_path(self, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn with_path(self, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}

/// `serde_json::to_value`, with a failure reported (naming `what`) instead of becoming
/// a `null` that could be written as a role file.
pub fn to_json_value<T: serde::Serialize + ?Sized>(
    value: &T,
    what: &str,
) -> Result<serde_json::Value> {
    serde_json::to_value(value)
        .map_err(|e| Error::Other(format!("{what}: cannot encode as JSON: {e}")))
}
