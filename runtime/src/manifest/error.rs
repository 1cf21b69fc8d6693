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

    /// `apiVersion`/`kind` missing, or not a kind podctl knows.
    #[error("{file}: not a Kubernetes object podctl reads:{}", Bullets(errors))]
    BadHeader {
        file: String,
        errors: Vec<FieldError>,
    },

    /// A file (or a set of files) holds more than one workload.
    #[error("{first} and {second} are both workloads: podctl runs one Pod per file")]
    SeveralWorkloads { first: String, second: String },

    /// The file holds no Pod to run.
    #[error("{file}: no Pod in the file (it holds only {kinds})")]
    NoPod { file: String, kinds: String },

    /// A `--configmap`/`--secret` file holds something else.
    #[error("{file}: {kind} {name:?} in a file given with --{flag}: it may hold {expected} objects only")]
    WrongKind {
        file: String,
        kind: String,
        name: String,
        flag: &'static str,
        expected: &'static str,
    },

    /// Two objects of one kind and name.
    #[error("{kind} {name:?} is given twice: in {first} and in {second}")]
    Duplicate {
        kind: String,
        name: String,
        first: String,
        second: String,
    },

    /// An object in another namespace than the pod's, which the pod could not see.
    #[error("{file}: {kind} {name:?} is in namespace {namespace:?}, the pod in {pod_namespace:?}: a pod sees only the objects of its own namespace")]
    OtherNamespace {
        file: String,
        kind: String,
        name: String,
        namespace: String,
        pod_namespace: String,
    },

    /// A cluster object skipped with a warning, refused under `--strict`.
    #[error("{file}: {kind} {name:?} has no meaning for pods on one host (refused under --strict; without it, skipped with a warning)")]
    Skipped {
        file: String,
        kind: String,
        name: String,
    },

    /// The pod refers to ConfigMaps, Secrets or keys that are not given (and not
    /// `optional`); the kubelet would fail its containers with `CreateContainerConfigError`.
    #[error("The {pod} refers to objects that are not given:{}", Bullets(errors))]
    MissingReferences {
        /// `Pod "web"`, `Deployment "web"` ...
        pod: String,
        errors: Vec<FieldError>,
    },

    /// Problems in several documents, each reported.
    #[error("{}", Lines(.0))]
    Several(Vec<ManifestError>),

    /// Keys that the object's schema does not know, typically typos; every one is listed.
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

    /// The object breaks validation rules (Kubernetes' or podctl's); all of them are listed.
    #[error("The {kind} {name:?} is invalid:{}", Bullets(errors))]
    Invalid {
        kind: &'static str,
        name: String,
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

/// Errors one after another, a line between.
struct Lines<'a>(&'a [ManifestError]);

impl fmt::Display for Lines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
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
