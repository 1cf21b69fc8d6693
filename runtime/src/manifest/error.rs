//! Errors of reading, parsing and validating a manifest.

use std::fmt;
use std::path::PathBuf;

/// One problem with one field, worded like the Kubernetes API server's field errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Field path as kubectl prints it, e.g. `spec.containers[0].image`.
    pub path: String,
    /// What is wrong, e.g. `Required value` or `Forbidden: not supported by podctl yet`.
    pub message: String,
}

impl FieldError {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why a manifest was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file (or stdin) could not be read.
    #[error("cannot read manifest {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The text is not well-formed YAML (or JSON).
    #[error("{file}:{line}:{column}: invalid YAML: {message}")]
    Syntax {
        file: String,
        line: u64,
        column: u64,
        message: String,
    },

    /// The file holds no document at all.
    #[error("{file}: the manifest is empty")]
    Empty { file: String },

    /// More than one YAML document; podctl runs exactly one pod per file for now.
    #[error("{file}:{line}: multi-document files are not supported yet: put one Pod in the file")]
    MultipleDocuments { file: String, line: u64 },

    /// `apiVersion`/`kind` missing or not `v1`/`Pod`.
    #[error("{file}: not a v1 Pod:{}", Bullets(errors))]
    NotAPod {
        file: String,
        errors: Vec<FieldError>,
    },

    /// Keys that the `v1 Pod` schema does not know, typically typos; every one is listed.
    #[error("{file}: strict decoding error:{}", Bullets(errors))]
    UnknownFields {
        file: String,
        /// One entry per unknown key, message `unknown field`.
        errors: Vec<FieldError>,
    },

    /// A value of the wrong type, e.g. a string where a port number belongs.
    #[error("{file}:{line}:{column}: {}{message}", Prefix(path))]
    WrongType {
        file: String,
        /// Field path; empty when the document itself has the wrong type.
        path: String,
        message: String,
        line: u64,
        column: u64,
    },

    /// The pod breaks validation rules (Kubernetes' or podctl's); all of them are listed.
    #[error("The Pod {pod:?} is invalid:{}", Bullets(errors))]
    Invalid {
        pod: String,
        errors: Vec<FieldError>,
    },
}

/// Renders field errors one per line, the way kubectl lists them.
struct Bullets<'a>(&'a [FieldError]);

impl fmt::Display for Bullets<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in self.0 {
            write!(f, "\n* {e}")?;
        }
        Ok(())
    }
}

/// `path: ` unless the path is empty (the document root).
struct Prefix<'a>(&'a str);

impl fmt::Display for Prefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, "{}: ", self.0)
        }
    }
}
