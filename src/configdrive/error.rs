//! Errors of the config-drive model. Each names the file (relative to the drive's root), the
//! place inside it (a JSON path such as `links[2].ethernet_mac_address`) and what was wanted, so
//! an operator can fix the deployer's input without reading seedpart's source.

use crate::fs::FsError;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Fs(#[from] FsError),

    /// No `openstack/latest` nor `openstack/YYYY-MM-DD` directory.
    #[error(
        "not an OpenStack config drive: no openstack/latest nor openstack/YYYY-MM-DD directory{found}"
    )]
    NoVersion {
        /// Empty, or `" (openstack/ holds: a, b)"`.
        found: String,
    },

    /// A required file is absent, or is a directory.
    #[error("{file}: {detail}")]
    Missing { file: String, detail: String },

    /// Not JSON at all. Line and column are 1-based, as editors count.
    #[error("{file}: malformed JSON at line {line}, column {column}: {msg}")]
    Syntax {
        file: String,
        line: usize,
        column: usize,
        msg: String,
    },

    /// Valid JSON, but a value of the wrong type or form.
    #[error("{file}: {path}: expected {expected}, found {found}")]
    Invalid {
        file: String,
        path: String,
        expected: String,
        found: String,
    },

    /// Well-formed values that contradict each other (a network naming a link that does not
    /// exist, a duplicate id, a `content_path` with no file behind it).
    #[error("{file}: {path}: {detail}")]
    Inconsistent {
        file: String,
        path: String,
        detail: String,
    },

    /// An Ironic configdrive blob that is none of the accepted forms.
    #[error("configdrive blob: {0}")]
    Blob(String),

    /// A compressed blob that inflates past the limit: refused before it fills memory.
    #[error(
        "configdrive blob: the gzip stream inflates past {limit} bytes (the limit for a config drive); refusing it"
    )]
    BlobTooLarge { limit: u64 },
}

impl ModelError {
    /// The drive-relative file the error is about, when there is one.
    pub fn file(&self) -> Option<&str> {
        match self {
            ModelError::Missing { file, .. }
            | ModelError::Syntax { file, .. }
            | ModelError::Invalid { file, .. }
            | ModelError::Inconsistent { file, .. } => Some(file),
            _ => None,
        }
    }

    /// The JSON path the error is about, when there is one.
    pub fn json_path(&self) -> Option<&str> {
        match self {
            ModelError::Invalid { path, .. } | ModelError::Inconsistent { path, .. } => Some(path),
            _ => None,
        }
    }
}
